//! A thousand idle connections held at once, then closed: the server frees every
//! connection slot and session, and takes new connections as before.
//!
//! The verdict does not depend on the machine's speed: connects are patient (a lost
//! handshake under load is simply tried again), the idle timeout is far above anything a
//! loaded machine can delay a keep-alive by, and the waits end on the server's own
//! counters, with a deadline only as a safety net against a hang. What ten thousand idle
//! connections cost in memory is measured by the benchmark's `idle` workload
//! (BENCHMARKS.md), not here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{eventually_within, KitchenClient, TestServer};
use futures_util::{future::join_all, stream, StreamExt};
use hardlight::{ConnectError, Limits, ServerLimits, Transport};

/// Connections held at once: one in ten over WebSocket.
const COUNT: usize = 1_000;
/// Connects in progress at a time.
const CONCURRENT_CONNECTS: usize = 16;
/// Far above any scheduling delay: a live connection is never mistaken for a lost one, and
/// a connection whose close packet was lost is still released well within the safety net.
const IDLE: Duration = Duration::from_secs(60);
const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// Only a hang reaches this.
const SAFETY_NET: Duration = Duration::from_secs(600);

fn limits() -> Limits {
    Limits::default()
        .with_idle_timeout(IDLE)
        .with_keep_alive(KEEP_ALIVE)
}

/// Connects like any client would under load: a handshake lost or delayed past the connect
/// timeout is tried again; only a refusal by the server fails the test.
async fn connect_patiently(client: &KitchenClient) {
    loop {
        match client.connect().await {
            Ok(()) => return,
            Err(ConnectError::Timeout(_) | ConnectError::Transport { .. }) => {}
            Err(error) => panic!("connect: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_connections_are_held_then_freed() {
    // each QUIC client has its own UDP socket
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let server = TestServer::start_with(|c| {
        c.with_limits(limits()).with_server_limits(
            ServerLimits::default()
                .with_max_connections(2 * COUNT as u32)
                .with_max_connections_per_ip(2 * COUNT as u32)
                .with_resume_grace(Duration::ZERO),
        )
    })
    .await;
    let clients: Vec<KitchenClient> = stream::iter(0..COUNT)
        .map(|i| {
            let config = server
                .config()
                .with_connect_timeout(Duration::from_secs(30))
                .with_limits(limits())
                .with_transport(if i % 10 == 0 {
                    Transport::WebSocket
                } else {
                    Transport::Quic
                });
            async move {
                let client = KitchenClient::with_config(config);
                connect_patiently(&client).await;
                assert_eq!(client.add(1, 1, 1).await.unwrap(), 3);
                client
            }
        })
        .buffer_unordered(CONCURRENT_CONNECTS)
        .collect()
        .await;
    // a connect that timed out on the client may still have completed on the server:
    // such a connection ends when the server's handshake timeout or idle timeout expires
    eventually_within("all connections held at once", SAFETY_NET, || {
        server.stats.snapshot().connections_open == COUNT as u64
    })
    .await;
    let held = server.stats.snapshot();
    assert!(held.traffic.calls >= COUNT as u64);
    assert_eq!(held.traffic.calls_in_flight, 0);
    join_all(clients.iter().map(|c| c.disconnect())).await;
    drop(clients);
    // a close packet lost among the thousand leaves its connection to the idle timeout
    eventually_within("every connection released", SAFETY_NET, || {
        let stats = server.stats.snapshot();
        stats.connections_open == 0 && stats.sessions_parked == 0
    })
    .await;
    let again = server.client().await;
    assert_eq!(again.add(2, 2, 2).await.unwrap(), 6);
}
