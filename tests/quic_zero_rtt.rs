//! 0-RTT over QUIC: a client that reconnects to a server whose session ticket it holds
//! sends its `Hello` as 0-RTT data and the server accepts it (quinn's accepted-0-RTT
//! signal, on both sides), also when it resumes its session after losing the connection;
//! turned off, it does not; a captured 0-RTT flight replayed to the server gets no
//! `Welcome` and resumes nothing, as the ticket it carries is single-use.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{
    eventually,
    udp_proxy::{Faults, UdpProxy},
    KitchenClient, TestServer,
};
use hardlight::*;

fn via(server: &TestServer, addr: std::net::SocketAddr) -> ClientConfig {
    server
        .config_via(addr, Transport::Quic)
        .with_reconnect(None)
}

#[tokio::test]
async fn a_reconnection_sends_its_hello_in_0rtt() {
    let server = TestServer::start().await;
    let client = KitchenClient::with_config(via(&server, server.addr));
    client.connect().await.unwrap();
    assert_eq!(client.add(1, 2, 3).await.unwrap(), 6);
    assert_eq!(
        client.stats().zero_rtt_accepted,
        0,
        "a fresh connection is 1-RTT"
    );
    assert_eq!(server.stats.snapshot().zero_rtt_handshakes, 0);

    client.disconnect().await;
    client.connect().await.unwrap();
    assert_eq!(client.add(4, 5, 6).await.unwrap(), 15);
    assert_eq!(client.stats().zero_rtt_accepted, 1);
    assert_eq!(server.stats.snapshot().zero_rtt_handshakes, 1);
    // state and calls work as on any connection
    assert_eq!(client.increment(2).await.unwrap(), 2);
    assert_eq!(client.state().await.unwrap().counter, 2);
}

#[tokio::test]
async fn without_0rtt_a_reconnection_waits_for_the_handshake() {
    let server = TestServer::start().await;
    let client = KitchenClient::with_config(via(&server, server.addr).with_zero_rtt(false));
    client.connect().await.unwrap();
    client.disconnect().await;
    client.connect().await.unwrap();
    assert_eq!(client.add(1, 1, 1).await.unwrap(), 3);
    assert_eq!(client.stats().zero_rtt_accepted, 0);
    assert_eq!(server.stats.snapshot().zero_rtt_handshakes, 0);
}

#[tokio::test]
async fn a_replayed_0rtt_hello_gets_no_welcome() {
    let server = TestServer::start_with(|c| {
        c.with_server_limits(ServerLimits::default().with_handshake_timeout(Duration::from_secs(1)))
    })
    .await;
    let proxy = UdpProxy::start(server.addr, 7).await;
    let client = KitchenClient::with_config(via(&server, proxy.addr));
    client.connect().await.unwrap();
    client.add(0, 0, 0).await.unwrap();
    client.disconnect().await;

    proxy.record();
    client.connect().await.unwrap();
    client.add(0, 0, 0).await.unwrap();
    assert_eq!(client.stats().zero_rtt_accepted, 1);
    client.disconnect().await;
    replay_until_refused(&proxy, &server).await;
    let after = server.stats.snapshot();
    assert_eq!(
        after.zero_rtt_handshakes, 1,
        "the replayed Hello was not read"
    );
    assert_eq!(after.sessions_resumed, 0);
    assert_eq!(after.handshakes_rejected, 0);
}

/// Sends `proxy`'s recorded packets again until the server takes them as a new
/// connection attempt, then waits for that attempt to end (it cannot complete).
async fn replay_until_refused(proxy: &UdpProxy, server: &TestServer) {
    let stats = || server.stats.snapshot();
    eventually("the client's connections end", || {
        stats().connections_open == 0
    })
    .await;
    let accepted = stats().connections_accepted;
    common::eventually_async(
        "the replay reaches the server as a new connection",
        || async {
            proxy.replay().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            stats().connections_accepted > accepted
        },
    )
    .await;
    eventually("the replayed attempts end", || {
        stats().connections_open == 0
    })
    .await;
}

#[tokio::test]
async fn a_resumption_goes_in_0rtt_and_its_replay_resumes_nothing() {
    let limits = Limits::default()
        .with_idle_timeout(Duration::from_secs(3))
        .with_keep_alive(Duration::from_millis(200));
    let server = TestServer::start_with(|c| {
        c.with_limits(limits.clone()).with_server_limits(
            ServerLimits::default().with_handshake_timeout(Duration::from_secs(1)),
        )
    })
    .await;
    let proxy = UdpProxy::start(server.addr, 5).await;
    // the first attempt waits at least a second after the loss is noticed: the proxy is
    // healed by then, so that no attempt uses up a ticket in the blackhole
    let reconnect = Reconnect {
        initial_delay: Duration::from_secs(2),
        max_delay: Duration::from_secs(2),
        max_attempts: None,
    };
    let client = KitchenClient::with_config(
        via(&server, proxy.addr)
            .with_limits(limits)
            .with_reconnect(Some(reconnect)),
    );
    client.connect().await.unwrap();
    assert_eq!(client.increment(5).await.unwrap(), 5);
    let mut status = client.watch_status();

    proxy.set(Faults {
        blackhole: true,
        ..Faults::default()
    });
    status
        .wait_for(|s| matches!(s, ConnectionStatus::Reconnecting { .. }))
        .await
        .unwrap();
    proxy.set(Faults::default());
    proxy.record();
    let resumed = status
        .wait_for(ConnectionStatus::is_connected)
        .await
        .unwrap()
        .clone();
    assert!(
        matches!(resumed, ConnectionStatus::Connected { resumed: true, .. }),
        "{resumed:?}"
    );
    assert_eq!(client.stats().zero_rtt_accepted, 1);
    assert_eq!(server.stats.snapshot().zero_rtt_handshakes, 1);
    assert_eq!(server.stats.snapshot().sessions_resumed, 1);
    assert_eq!(client.increment(1).await.unwrap(), 6, "the session's state");

    client.disconnect().await;
    replay_until_refused(&proxy, &server).await;
    let after = server.stats.snapshot();
    assert_eq!(
        after.zero_rtt_handshakes, 1,
        "the replayed Hello was not read"
    );
    assert_eq!(after.sessions_resumed, 1, "resumed once");
}
