//! Ten thousand idle connections held, then closed: the server frees every connection
//! slot, session and call. (What an idle connection costs in memory is measured by the
//! `idle` workload of the benchmark suite; see BENCHMARKS.md.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{eventually_within, KitchenClient, TestServer};
use futures_util::{future::join_all, stream, StreamExt};
use hardlight::{Limits, Transport};

/// Silence after which a connection counts as lost (a close packet can be lost among
/// thousands), and the keep-alive that prevents it for live ones.
const IDLE: Duration = Duration::from_secs(15);
const KEEP_ALIVE: Duration = Duration::from_secs(3);

/// Connections to hold; `HARDLIGHT_IDLE_CONNECTIONS` overrides.
fn count() -> usize {
    std::env::var("HARDLIGHT_IDLE_CONNECTIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_connections_are_held_then_freed() {
    let count = count();
    // each client has its own UDP socket
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let server = TestServer::start_with(|c| {
        c.with_limits(Limits {
            max_connections: 2 * count as u32,
            max_connections_per_ip: 2 * count as u32,
            // a close packet lost among thousands must not hold a connection for long
            idle_timeout: IDLE,
            keep_alive: KEEP_ALIVE,
            resume_grace: Duration::ZERO,
            ..Limits::default()
        })
    })
    .await;
    let clients: Vec<KitchenClient> = stream::iter(0..count)
        .map(|i| {
            // a loaded debug build on two cores may lose and retransmit handshake packets
            let config = server
                .config()
                .with_connect_timeout(Duration::from_secs(60))
                .with_limits(Limits {
                    idle_timeout: IDLE,
                    keep_alive: KEEP_ALIVE,
                    ..Limits::default()
                })
                .with_transport(if i % 10 == 0 {
                    Transport::WebSocket
                } else {
                    Transport::Quic
                });
            async move {
                let client = KitchenClient::with_config(config);
                // under this load a handshake can be lost; like any client, try again
                let mut attempts = 0;
                while let Err(error) = client.connect().await {
                    attempts += 1;
                    assert!(attempts < 3, "connect: {error}");
                }
                assert_eq!(client.add(1, 1, 1).await.unwrap(), 3);
                client
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    // (a connection starved past its idle timeout under this load reconnects by itself)
    eventually_within("all connections held at once", IDLE * 2, || {
        server.stats.snapshot().connections_open == count as u64
    })
    .await;
    let held = server.stats.snapshot();
    assert!(held.traffic.calls >= count as u64);
    assert_eq!(held.traffic.calls_in_flight, 0);
    join_all(clients.iter().map(|c| c.disconnect())).await;
    drop(clients);
    eventually_within("every connection released", IDLE * 3, || {
        let stats = server.stats.snapshot();
        stats.connections_open == 0 && stats.sessions_parked == 0
    })
    .await;
    // and the server takes new connections as before
    let again = server.client().await;
    assert_eq!(again.add(2, 2, 2).await.unwrap(), 6);
}
