//! Durable emit throughput and emit → deliver latency: a HardLight server emits
//! timestamped events from concurrent emitters (each waiting for its emit: a durable emit
//! returns once synced to disk) while a client receives (and, for durable topics, acks)
//! them; beside it, in-memory topics, and with the `cluster` feature JetStream publishing
//! directly through `async-nats` to a `nats-server` that syncs every write.

use std::{net::SocketAddr, time::Duration};

use hardlight::{RecvError, Transport};

use crate::{
    stats::Latencies,
    systems::{hardlight_config, now_us, BenchClient},
    tls::Certificate,
};

/// One round's figures.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    /// Emits completed per second.
    pub emits_per_sec: f64,
    /// Emit → deliver latency, median, µs.
    pub p50_us: f64,
    /// Emit → deliver latency, 99th percentile, µs.
    pub p99_us: f64,
}

fn figures(events: u64, nanos: u64, latencies: &Latencies) -> Figures {
    Figures {
        emits_per_sec: events as f64 / (nanos as f64 / 1e9),
        p50_us: latencies.quantile_us(0.5),
        p99_us: latencies.quantile_us(0.99),
    }
}

/// `events` events of `size` bytes from `emitters` emitters on the server at `addr`,
/// durable or in memory, each emitter emitting at most once per `pace` if given, received
/// over QUIC.
pub async fn hardlight(
    addr: SocketAddr,
    cert: &Certificate,
    durable: bool,
    events: u64,
    size: u32,
    emitters: u32,
    pace: Option<Duration>,
) -> Figures {
    let config =
        hardlight_config(addr, cert, Transport::Quic).with_event_buffer(events as usize + 1024);
    let client = BenchClient::with_config(config);
    client.connect().await.expect("connect");
    let receiver = if durable {
        let mut subscription = client.durable().await.expect("durable");
        client.join_timed(true).await.expect("join");
        tokio::spawn(async move {
            let mut latencies = Latencies::default();
            while latencies.len() < events {
                let event = subscription.recv().await.expect("a durable event");
                if event.attempt == 1 {
                    latencies.record(since(event.payload.emitted_us));
                }
                event.ack().expect("ack");
            }
            latencies
        })
    } else {
        let mut subscription = client.subscribe().await.expect("subscribe");
        client.join_timed(false).await.expect("join");
        tokio::spawn(async move {
            let mut latencies = Latencies::default();
            while latencies.len() < events {
                match subscription.recv().await {
                    Ok(event) => latencies.record(since(event.payload.emitted_us)),
                    Err(RecvError::Lagged(n)) => panic!("{n} events lost"),
                    Err(error) => panic!("{error}"),
                }
            }
            latencies
        })
    };
    let nanos = client
        .emit_timed(
            events,
            size,
            emitters,
            durable,
            pace.map_or(0, |p| p.as_micros() as u64),
        )
        .await
        .expect("emit");
    let latencies = receiver.await.expect("receiver");
    client.disconnect().await;
    figures(events, nanos, &latencies)
}

fn since(emitted_us: u64) -> Duration {
    Duration::from_micros(now_us().saturating_sub(emitted_us))
}

/// The same through JetStream alone: `emitters` publishers each awaiting its publish's
/// acknowledgement (stored, and synced by a `nats-server` configured with
/// `sync_interval: always`), a pull consumer acking each message.
#[cfg(feature = "cluster")]
pub async fn jetstream(url: &str, round: usize, events: u64, size: u32, emitters: u32) -> Figures {
    use async_nats::jetstream::{self, consumer::pull, stream};
    use futures_util::StreamExt;

    let client = async_nats::connect(url).await.expect("connect to NATS");
    let js = jetstream::new(client);
    let name = format!("BENCH{round}");
    let subject = format!("bench.durable.{round}");
    let stream = js
        .create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .expect("create the stream");
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("bench".into()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            max_ack_pending: 100_000,
            ..Default::default()
        })
        .await
        .expect("create the consumer");
    let mut messages = consumer.messages().await.expect("messages");
    let receiver = tokio::spawn(async move {
        let mut latencies = Latencies::default();
        while latencies.len() < events {
            let message = messages
                .next()
                .await
                .expect("a message")
                .expect("a message");
            let stamp: [u8; 8] = message.payload[..8].try_into().expect("a timestamp");
            latencies.record(since(u64::from_le_bytes(stamp)));
            message.ack().await.expect("ack");
        }
        latencies
    });
    let started = std::time::Instant::now();
    let publishers: Vec<_> = (0..u64::from(emitters.max(1)))
        .map(|e| {
            let (js, subject) = (js.clone(), subject.clone());
            let emitters = u64::from(emitters.max(1));
            tokio::spawn(async move {
                for seq in (e..events).step_by(emitters as usize) {
                    let mut payload = vec![(seq % 251) as u8; size.max(8) as usize];
                    payload[..8].copy_from_slice(&now_us().to_le_bytes());
                    js.publish(subject.clone(), payload.into())
                        .await
                        .expect("publish")
                        .await
                        .expect("stored");
                }
            })
        })
        .collect();
    for publisher in publishers {
        publisher.await.expect("publisher");
    }
    let nanos = started.elapsed().as_nanos() as u64;
    let latencies = receiver.await.expect("receiver");
    js.delete_stream(&name).await.expect("delete the stream");
    figures(events, nanos, &latencies)
}
