//! Event fan-out throughput: one emitter, 1 / 100 / 1,000 subscribed connections.
//!
//! `cargo run --release -p hardlight-benchmarks --bin fanout [-- --rounds 3 --deliveries 1000000 --size 64]`
//!
//! The server (hub and emitter) runs in a child process; all subscriber connections run in
//! this process. Each round emits E events to a topic with S subscribers (E·S ≈ the
//! requested deliveries) as fast as the emitter can, and times from the start request until
//! every subscriber has received all E events. The floor is an in-process
//! `tokio::sync::broadcast` channel with S receiver tasks. Systems are interleaved round by
//! round; the median and spread across rounds are reported.

// A benchmark aborts on any failure: a partial measurement would be misleading.
#![allow(clippy::expect_used)]

use std::time::{Duration, Instant};

use futures_util::{future::join_all, stream, StreamExt};
use hardlight::*;
use hardlight_benchmarks::{ChildServer, Summary};

#[codable]
#[derive(Debug, Clone)]
struct Tick {
    seq: u64,
    data: Vec<u8>,
}

#[rpc(state = (), events = Tick)]
trait Fanout {
    /// Subscribes this connection to the benchmark topic.
    async fn join(&self) -> HandlerResult<()>;
    /// Emits `count` events of `size` payload bytes, as fast as possible, in the background.
    async fn start(&self, count: u64, size: u32) -> HandlerResult<()>;
}

#[rpc_handler]
impl Fanout for Handler {
    async fn join(&self) -> HandlerResult<()> {
        self.subscriptions.add(&Topic::from("bench"));
        Ok(())
    }

    async fn start(&self, count: u64, size: u32) -> HandlerResult<()> {
        let events = self.events.clone();
        tokio::spawn(async move {
            let topic = Topic::from("bench");
            for seq in 0..count {
                let data = vec![(seq % 251) as u8; size as usize];
                events.emit(&topic, Tick { seq, data }).await;
            }
        });
        Ok(())
    }
}

struct Options {
    rounds: usize,
    deliveries: u64,
    size: u32,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    Options {
        rounds: value("--rounds", 3) as usize,
        deliveries: value("--deliveries", 1_000_000),
        size: value("--size", 64) as u32,
    }
}

async fn serve(queue: usize) -> Result<(), Box<dyn std::error::Error>> {
    let config = ServerConfig::new_self_signed("127.0.0.1:0")
        .with_compression(Compression::None)
        .with_limits(Limits {
            max_queued_events: queue,
            ..Limits::default()
        });
    let mut server = Server::new(config, factory!(Handler));
    println!("{}", server.bind()?);
    server.run().await?;
    Ok(())
}

/// Events/s delivered through HardLight to `subscribers` connections.
async fn hardlight_round(server: &ChildServer, subscribers: usize, events: u64, size: u32) -> f64 {
    let config = ClientConfig::new(server.addr.to_string())
        .insecure_accept_any_certificate()
        .with_compression(Compression::None)
        .with_event_buffer(events as usize + 16);
    let clients: Vec<FanoutClient> = stream::iter(0..subscribers)
        .map(|_| {
            let config = config.clone();
            async move {
                let client = FanoutClient::with_config(config);
                client.connect().await.expect("connect");
                client
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let mut receivers = Vec::new();
    for client in &clients {
        let mut events_stream = client.subscribe().await.expect("subscribe");
        client.join().await.expect("join");
        receivers.push(tokio::spawn(async move {
            for _ in 0..events {
                events_stream.recv().await.expect("no loss");
            }
        }));
    }
    let started = Instant::now();
    clients[0].start(events, size).await.expect("start");
    join_all(receivers).await;
    let elapsed = started.elapsed();
    join_all(clients.iter().map(|c| c.disconnect())).await;
    (events * subscribers as u64) as f64 / elapsed.as_secs_f64()
}

/// Events/s delivered through an in-process broadcast channel to `subscribers` tasks.
async fn broadcast_round(subscribers: usize, events: u64, size: u32) -> f64 {
    let (tx, _) = tokio::sync::broadcast::channel::<std::sync::Arc<Tick>>(events as usize + 16);
    let receivers: Vec<_> = (0..subscribers)
        .map(|_| {
            let mut rx = tx.subscribe();
            tokio::spawn(async move {
                for _ in 0..events {
                    rx.recv().await.expect("no loss");
                }
            })
        })
        .collect();
    let started = Instant::now();
    for seq in 0..events {
        let data = vec![(seq % 251) as u8; size as usize];
        let _ = tx.send(std::sync::Arc::new(Tick { seq, data }));
    }
    join_all(receivers).await;
    (events * subscribers as u64) as f64 / started.elapsed().as_secs_f64()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.get(1).map(String::as_str) == Some("serve") {
        let queue = args.get(2).and_then(|q| q.parse().ok()).unwrap_or(1 << 20);
        return runtime.block_on(serve(queue));
    }
    let opts = options();
    runtime.block_on(async {
        println!("fan-out: {} rounds, ~{} deliveries per round, {} B payload", opts.rounds, opts.deliveries, opts.size);
        println!();
        println!("| subscribers | events | HardLight (QUIC) events/s | broadcast floor events/s | HardLight / floor |");
        println!("|---:|---:|---:|---:|---:|");
        for subscribers in [1usize, 100, 1000] {
            let events = (opts.deliveries / subscribers as u64).max(1);
            let server = ChildServer::spawn(&["serve", &(events + 16).to_string()])?;
            let (mut ours, mut floor) = (Vec::new(), Vec::new());
            for _ in 0..opts.rounds {
                ours.push(hardlight_round(&server, subscribers, events, opts.size).await);
                floor.push(broadcast_round(subscribers, events, opts.size).await);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let (ours, floor) = (Summary::of(&ours), Summary::of(&floor));
            println!(
                "| 1 → {subscribers} | {events} | {:.0} ({:.0}–{:.0}) | {:.0} ({:.0}–{:.0}) | {:.3} |",
                ours.median, ours.min, ours.max, floor.median, floor.min, floor.max,
                ours.median / floor.median
            );
        }
        Ok(())
    })
}
