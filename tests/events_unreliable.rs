//! Unreliable events (`emit_unreliable`): over QUIC they go as datagrams (asserted from
//! the server's stats) and arrive marked unreliable; while the connection has events
//! queued they are dropped, not queued, and never reported as lost events; when it is idle
//! they go on the push stream (and over WebSocket); over a lossy path some are lost while
//! every reliable event on the same connection arrives, in order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::udp_proxy::{Faults, UdpProxy};
use hardlight::*;

/// No state.
#[connection_state]
pub struct State {}

/// A topic of numbered updates.
#[rpc(events = u64)]
pub trait Updates {
    /// Subscribes the connection to `topic`.
    async fn join(&self, topic: String) -> HandlerResult<()>;
}

#[rpc_handler(pub)]
impl Updates for UpdatesHandler {
    async fn join(&self, topic: String) -> HandlerResult<()> {
        self.subscriptions.add(&Topic::from(topic));
        Ok(())
    }
}

fn start() -> common::Running<u64> {
    common::run(
        ServerConfig::new_self_signed("127.0.0.1:0"),
        factory!(UpdatesHandler),
    )
}

async fn joined(
    server: &common::Running<u64>,
    addr: std::net::SocketAddr,
    transport: Transport,
) -> (UpdatesClient, Subscription<u64>) {
    let client =
        UpdatesClient::with_config(common::config_via(addr, &server.certificate_pem, transport));
    client.connect().await.unwrap();
    let events = client.subscribe().await.unwrap();
    client.join("pos".into()).await.unwrap();
    (client, events)
}

fn topic() -> Topic {
    Topic::from("pos")
}

#[tokio::test]
async fn over_quic_they_go_as_datagrams() {
    let server = start();
    let (client, mut events) = joined(&server, server.addr, Transport::Quic).await;
    for n in 0..20 {
        assert_eq!(server.emitter.emit_unreliable(&topic(), n), 1);
    }
    let traffic = server.stats.snapshot().traffic;
    assert_eq!(traffic.unreliable_datagrams, 20, "{traffic:?}");
    assert_eq!(traffic.unreliable_inline, 0);
    let first = events.recv().await.unwrap();
    assert!(first.unreliable);
    // a reliable event after them arrives whatever became of them
    server.emitter.emit(&topic(), 100).await;
    loop {
        let event = events.recv().await.unwrap();
        if !event.unreliable {
            assert_eq!(event.payload, 100);
            break;
        }
    }
    let stats = client.stats();
    assert!(stats.unreliable_received >= 1);
    assert_eq!(stats.unreliable_received, stats.unreliable_datagrams);
    assert_eq!(stats.events_lost, 0);
}

/// On a current-thread runtime nothing runs between the emits below: the connection's
/// queue holds the reliable events when the unreliable one comes.
async fn dropped_when_busy_sent_when_idle(transport: Transport) {
    let server = start();
    let (client, mut events) = joined(&server, server.addr, transport).await;
    for n in 0..50 {
        server.emitter.try_emit(&topic(), n).unwrap();
    }
    server.emitter.emit_unreliable(&topic(), 1000);
    for n in 0..50 {
        let event = events.recv().await.expect("never Lagged");
        assert!(!event.unreliable);
        assert_eq!(event.payload, n);
    }
    let traffic = server.stats.snapshot().traffic;
    assert_eq!(traffic.unreliable_dropped, 1);
    assert_eq!(traffic.events_dropped, 0);

    // idle now: the newer of two unreliable events replaces the older, and goes inline
    server.emitter.emit_unreliable(&topic(), 2000);
    server.emitter.emit_unreliable(&topic(), 2001);
    let event = events.recv().await.unwrap();
    assert!(event.unreliable);
    assert_eq!(event.payload, 2001);
    let traffic = server.stats.snapshot().traffic;
    assert_eq!(traffic.unreliable_dropped, 2);
    assert_eq!(traffic.unreliable_inline, 1);
    let stats = client.stats();
    assert_eq!(stats.events_lost, 0);
    assert_eq!(stats.unreliable_received, 1);
}

#[tokio::test]
async fn over_websocket_they_are_dropped_when_busy_and_sent_when_idle() {
    dropped_when_busy_sent_when_idle(Transport::WebSocket).await;
}

#[tokio::test]
async fn in_process_they_are_dropped_when_busy() {
    let server = start();
    let client = UpdatesClient::with_config(ClientConfig::in_memory(server.memory.clone()));
    client.connect().await.unwrap();
    let mut events = client.subscribe().await.unwrap();
    client.join("pos".into()).await.unwrap();
    for n in 0..10 {
        server.emitter.try_emit(&topic(), n).unwrap();
    }
    server.emitter.emit_unreliable(&topic(), 1000);
    for n in 0..10 {
        assert_eq!(events.recv().await.unwrap().payload, n);
    }
    assert_eq!(server.stats.snapshot().traffic.unreliable_dropped, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_a_lossy_path_some_are_lost_and_reliable_events_all_arrive_in_order() {
    let server = start();
    let proxy = UdpProxy::start(server.addr, 11).await;
    let (client, mut events) = joined(&server, proxy.addr, Transport::Quic).await;
    proxy.set(Faults {
        drop: 0.2,
        ..Faults::default()
    });
    const N: u64 = 200;
    for n in 0..N {
        server.emitter.emit(&topic(), n).await;
        server.emitter.emit_unreliable(&topic(), 10_000 + n);
        // spread over many packets, so that the proxy's losses reach some datagrams: a
        // run of 50 packets all passing a 20 % loss has odds of about 1 in 70,000
        if n % 4 == 3 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
    let mut next = 0;
    let mut unreliable = 0;
    while next < N {
        let event = events.recv().await.expect("reliable events are never lost");
        if event.unreliable {
            unreliable += 1;
        } else {
            assert_eq!(event.payload, next);
            next += 1;
        }
    }
    assert_eq!(server.stats.snapshot().traffic.unreliable_datagrams, N);
    let stats = client.stats();
    assert!(stats.unreliable_received < N, "some were lost: {stats:?}");
    assert!(stats.unreliable_received + stats.unreliable_lost <= N);
    assert!(unreliable <= stats.unreliable_received);
    assert_eq!(stats.events_lost, 0);
}
