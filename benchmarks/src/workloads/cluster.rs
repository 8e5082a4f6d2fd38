//! Cross-server fan-out: one emitter on the first of several HardLight servers clustered
//! over NATS, subscribers spread over all of them. The floor is NATS itself: one
//! publisher and as many `async-nats` subscriber connections, through the same
//! `nats-server`.

use std::{
    net::SocketAddr,
    process::Child,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::{future::join_all, stream, StreamExt};
use hardlight::{RecvError, Transport};
use tokio::sync::Notify;

use super::fanout;
use crate::{systems::hardlight_config, tls::Certificate};

#[allow(unreachable_pub, dead_code)]
#[path = "../../../tests/common/nats_process.rs"]
mod nats_process;

/// A `nats-server` for the run, on a free loopback port; stopped on drop.
#[derive(Debug)]
pub struct Nats {
    child: Child,
    /// Its URL.
    pub url: String,
}

impl Nats {
    /// Starts `nats-server` from `PATH`, or `None` where it is not installed.
    pub fn start() -> Option<Self> {
        Self::start_with(None)
    }

    /// Starts `nats-server` with JetStream storing in `dir` and syncing every write to
    /// disk before acknowledging it (`sync_interval: always`, as a durable emit is synced),
    /// or `None` where it is not installed.
    pub fn start_jetstream(dir: &std::path::Path) -> Option<Self> {
        let config = dir.join("nats.conf");
        let store = dir.join("jetstream");
        std::fs::write(
            &config,
            format!("jetstream {{ store_dir: {store:?}, sync_interval: always }}\n"),
        )
        .expect("write the NATS configuration");
        Self::start_with(Some(&config))
    }

    fn start_with(config: Option<&std::path::PathBuf>) -> Option<Self> {
        if !nats_process::installed() {
            return None;
        }
        let (child, addr) = nats_process::spawn(config);
        crate::child::Placement::get().place_server(child.id());
        Some(Self {
            child,
            url: format!("nats://{addr}"),
        })
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Events/s delivered to `subscribers` connections spread over `servers` (round robin),
/// `events` events of `size` bytes emitted on the first server.
pub async fn hardlight(
    servers: &[SocketAddr],
    cert: &Certificate,
    subscribers: usize,
    events: u64,
    size: u32,
) -> f64 {
    let configs = (0..subscribers)
        .map(|i| {
            hardlight_config(servers[i % servers.len()], cert, Transport::Quic)
                .with_event_buffer(events as usize + 1024)
        })
        .collect();
    let clients = fanout::connected(configs).await;
    let ready = Arc::new(AtomicUsize::new(0));
    let woken = Arc::new(Notify::new());
    let mut receivers = Vec::new();
    for client in &clients {
        let mut subscription = client.subscribe().await.expect("subscribe");
        client.join().await.expect("join");
        let (ready, woken) = (Arc::clone(&ready), Arc::clone(&woken));
        receivers.push(tokio::spawn(async move {
            // warm-up events (no payload) until this subscriber is reached across servers
            let mut warm = false;
            let mut received = 0;
            while received < events {
                match subscription.recv().await {
                    Ok(event) if event.payload.data.is_empty() => {
                        if !warm {
                            warm = true;
                            ready.fetch_add(1, Ordering::SeqCst);
                            woken.notify_one();
                        }
                    }
                    Ok(_) => received += 1,
                    Err(RecvError::Gap(_)) if !warm => {}
                    Err(error) => panic!("fan-out lost events: {error}"),
                }
            }
        }));
    }
    // warm up until every subscriber is reached: the servers' NATS subscriptions are in
    // place
    while ready.load(Ordering::SeqCst) < subscribers {
        clients[0].start(1, 0).await.expect("warm up");
        let _ = tokio::time::timeout(Duration::from_millis(200), woken.notified()).await;
    }
    fanout::timed(&clients, receivers, events, size).await
}

/// Events/s delivered by NATS alone: one publisher, `subscribers` subscriber connections.
pub async fn nats(url: &str, subscribers: usize, events: u64, size: u32) -> f64 {
    // room for every event in each subscription: async-nats drops a message that finds
    // its subscription's queue full (65,536 by default), and a publisher sharing the
    // runtime outruns one subscriber, which would then wait forever for what it lost
    let capacity = events as usize + 16;
    let clients: Vec<async_nats::Client> = stream::iter(0..subscribers)
        .map(|_| async move {
            async_nats::ConnectOptions::new()
                .subscription_capacity(capacity)
                .connect(url)
                .await
                .expect("connect to NATS")
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let mut receivers = Vec::new();
    for client in &clients {
        let mut subscription = client.subscribe("bench.floor").await.expect("subscribe");
        client.flush().await.expect("flush");
        receivers.push(tokio::spawn(async move {
            // how many arrived, and when the last did: a message nats-server dropped (it
            // cuts off a slow consumer) is reported, not waited for
            let mut last = None;
            let mut received = 0;
            while received < events {
                match tokio::time::timeout(SILENCE, subscription.next()).await {
                    Ok(Some(_)) => {
                        received += 1;
                        last = Some(Instant::now());
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            (received, last)
        }));
    }
    let publisher = async_nats::connect(url).await.expect("connect to NATS");
    // a round trip on every subscriber's connection: its subscription is in place
    join_all(
        clients
            .iter()
            .map(|c| c.request("bench.sync", Bytes::new())),
    )
    .await;
    let started = Instant::now();
    for seq in 0..events {
        let payload = Bytes::from(vec![(seq % 251) as u8; size as usize]);
        publisher
            .publish("bench.floor", payload)
            .await
            .expect("publish");
    }
    publisher.flush().await.expect("flush");
    let (mut delivered, mut finished) = (0, started);
    for (received, last) in join_all(receivers).await.into_iter().flatten() {
        delivered += received;
        finished = finished.max(last.unwrap_or(started));
    }
    let expected = events * subscribers as u64;
    if delivered < expected {
        eprintln!(
            "[bench] NATS fan-out: {} of {expected} messages lost (slow consumer); the rate counts those delivered",
            expected - delivered
        );
    }
    match finished.duration_since(started).as_secs_f64() {
        0.0 => 0.0,
        elapsed => delivered as f64 / elapsed,
    }
}

/// How long a NATS subscriber waits for a message before it counts the rest as lost.
const SILENCE: std::time::Duration = std::time::Duration::from_secs(5);
