//! Event fan-out: one emitter on the server, S subscribed connections here. Times from the
//! start request until every subscriber has received every event. The floor is an
//! in-process `tokio::sync::broadcast` channel with S receiver tasks.

use std::{net::SocketAddr, sync::Arc, time::Instant};

use futures_util::{future::join_all, stream, StreamExt};
use hardlight::{ClientConfig, Transport};

use crate::{
    systems::{hardlight_config, BenchClient, Tick},
    tls::Certificate,
};

/// Events/s delivered through HardLight over `transport` to `subscribers` connections.
pub async fn hardlight(
    addr: SocketAddr,
    cert: &Certificate,
    transport: Transport,
    subscribers: usize,
    events: u64,
    size: u32,
) -> f64 {
    let config = hardlight_config(addr, cert, transport).with_event_buffer(events as usize + 16);
    let clients = connected(vec![config; subscribers]).await;
    let mut receivers = Vec::new();
    for client in &clients {
        let mut events_stream = client.subscribe().await.expect("subscribe");
        client.join().await.expect("join");
        receivers.push(tokio::spawn(async move {
            for _ in 0..events {
                events_stream.recv().await.expect("no event lost");
            }
        }));
    }
    timed(&clients, receivers, events, size).await
}

/// Has the first client's server emit `events` events of `size` bytes, and returns the
/// events/s delivered once every receiver has had them all; disconnects the clients.
pub async fn timed(
    clients: &[BenchClient],
    receivers: Vec<tokio::task::JoinHandle<()>>,
    events: u64,
    size: u32,
) -> f64 {
    let started = Instant::now();
    clients[0].start(events, size).await.expect("start");
    join_all(receivers).await;
    let elapsed = started.elapsed();
    join_all(clients.iter().map(|c| c.disconnect())).await;
    (events * clients.len() as u64) as f64 / elapsed.as_secs_f64()
}

/// A client for each configuration, connected (64 connecting at a time).
pub async fn connected(configs: Vec<ClientConfig>) -> Vec<BenchClient> {
    stream::iter(configs)
        .map(|config| async move {
            let client = BenchClient::with_config(config);
            client.connect().await.expect("connect");
            client
        })
        .buffer_unordered(64)
        .collect()
        .await
}

/// Events/s delivered through an in-process broadcast channel to `subscribers` tasks.
pub async fn broadcast(subscribers: usize, events: u64, size: u32) -> f64 {
    let (tx, _) = tokio::sync::broadcast::channel::<Arc<Tick>>(events as usize + 16);
    let receivers: Vec<_> = (0..subscribers)
        .map(|_| {
            let mut rx = tx.subscribe();
            tokio::spawn(async move {
                for _ in 0..events {
                    rx.recv().await.expect("no event lost");
                }
            })
        })
        .collect();
    let started = Instant::now();
    for seq in 0..events {
        let _ = tx.send(Arc::new(Tick::new(seq, size, 0)));
    }
    join_all(receivers).await;
    (events * subscribers as u64) as f64 / started.elapsed().as_secs_f64()
}
