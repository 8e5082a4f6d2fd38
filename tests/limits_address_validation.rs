//! QUIC address validation: a peer takes a connection slot only once it has answered a
//! Retry from its address, so Initial packets from spoofed sources cannot fill
//! `max_connections_per_ip` (or `max_connections`) for anyone; and a peer that migrates
//! to another address keeps counting where it was admitted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{
    eventually,
    raw::RawPeer,
    udp_proxy::{Faults, UdpProxy},
    KitchenClient, TestServer,
};
use hardlight::{AddressValidation, Limits, ServerLimits, Transport};
use tokio::task::JoinHandle;

/// One connection per address; a handshake that stalls is not cut off during the test
/// (neither by the handshake timeout nor by the QUIC idle timeout, which applies from the
/// first packet).
async fn one_per_address(validation: AddressValidation) -> TestServer {
    per_address(1, validation).await
}

async fn per_address(connections: u32, validation: AddressValidation) -> TestServer {
    TestServer::start_with(|c| {
        c.with_limits(Limits::default().with_idle_timeout(Duration::from_secs(600)))
            .with_server_limits(
                ServerLimits::default()
                    .with_max_connections_per_ip(connections)
                    .with_handshake_timeout(Duration::from_secs(600))
                    .with_address_validation(validation),
            )
    })
    .await
}

/// A QUIC client of which only the first packet reaches the server: to the server, what
/// an Initial from a spoofed source address looks like (the proxy, like the client, is
/// on 127.0.0.1).
async fn stuck_peer(server: &TestServer) -> (UdpProxy, JoinHandle<()>) {
    let proxy = UdpProxy::start(server.addr, 1).await;
    proxy.set(Faults {
        client_packets: Some(1),
        ..Faults::default()
    });
    let config = server
        .config_via(proxy.addr, Transport::Quic)
        .with_reconnect(None);
    let task = tokio::spawn(async move {
        let _ = KitchenClient::with_config(config).connect().await;
    });
    (proxy, task)
}

fn quic_client(server: &TestServer) -> KitchenClient {
    KitchenClient::with_config(
        server
            .config()
            .with_transport(Transport::Quic)
            .with_reconnect(None),
    )
}

#[tokio::test]
async fn a_peer_that_never_proves_its_address_takes_no_slot() {
    let server = one_per_address(AddressValidation::Always).await;
    let (_proxy, stuck) = stuck_peer(&server).await;
    eventually("the stuck peer was sent a Retry", || {
        server.stats.snapshot().address_validations >= 1
    })
    .await;
    let client = quic_client(&server);
    client.connect().await.unwrap();
    assert_eq!(client.add(1, 2, 3).await.unwrap(), 6);
    assert_eq!(server.stats.snapshot().connections_open, 1);
    stuck.abort();
}

#[tokio::test]
async fn without_validation_such_a_peer_holds_its_address_slot() {
    let server = one_per_address(AddressValidation::Off).await;
    let (_proxy, stuck) = stuck_peer(&server).await;
    eventually("the stuck handshake holds a slot", || {
        server.stats.snapshot().connections_open == 1
    })
    .await;
    assert!(quic_client(&server).connect().await.is_err());
    assert_eq!(server.stats.snapshot().address_validations, 0);
    stuck.abort();
}

#[tokio::test]
async fn a_migrated_connection_keeps_its_count_at_the_address_it_came_from() {
    let server = one_per_address(AddressValidation::Always).await;
    let peer = RawPeer::connect(&server).await; // from 127.0.0.1
                                                // move the connection to 127.0.0.2 (all of 127/8 is loopback) and use it there
    let socket = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    peer.endpoint.rebind(socket).unwrap();
    let (code, _) = peer.expect_failure(&unknown_method_call()).await;
    assert_eq!(code, hardlight::ErrorCode::UnknownMethod);
    // 127.0.0.1 still holds its one connection; 127.0.0.2 has none of its own
    assert!(quic_client(&server).connect().await.is_err());
    assert_eq!(server.stats.snapshot().connections_open, 1);
}

/// A whole call of a method the service does not have: answered at once.
fn unknown_method_call() -> Vec<u8> {
    hardlight::protocol::frame::FrameHeader::new(hardlight::protocol::frame::Kind::Call, 0)
        .with_aux(u16::MAX)
        .encode()
        .to_vec()
}

/// By default a Retry is asked for only once unproven handshakes are in progress: with
/// the threshold at 1, the stuck peer's attempt gets none and holds its slot, and the
/// real client, arriving while it is in progress, proves its address and gets the other.
#[tokio::test]
async fn when_busy_only_attempts_past_the_unproven_threshold_are_retried() {
    let server = per_address(2, AddressValidation::WhenBusy { handshakes: 1 }).await;
    let client = quic_client(&server);
    client.connect().await.unwrap();
    client.disconnect().await;
    assert_eq!(
        server.stats.snapshot().address_validations,
        0,
        "no Retry while no unproven handshake is in progress"
    );
    eventually("the first connection is gone", || {
        server.stats.snapshot().connections_open == 0
    })
    .await;
    let (_proxy, stuck) = stuck_peer(&server).await;
    eventually("the stuck peer holds a slot", || {
        server.stats.snapshot().connections_open == 1
    })
    .await;
    assert_eq!(server.stats.snapshot().address_validations, 0);
    let client = quic_client(&server);
    client.connect().await.unwrap();
    assert_eq!(client.add(1, 2, 3).await.unwrap(), 6);
    assert_eq!(server.stats.snapshot().address_validations, 1);
    stuck.abort();
}
