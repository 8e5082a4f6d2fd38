//! A lossy network between client and server (a UDP proxy that drops, duplicates and
//! reorders packets from a fixed seed), peers that vanish, and a QUIC handshake that never
//! finishes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{
    board::{note, BoardClient, BoardServer},
    eventually,
    udp_proxy::{Faults, UdpProxy},
    KitchenClient, TestServer,
};
use futures_util::future::join_all;
use hardlight::{AddressValidation, Limits, ServerLimits, Topic, Transport};

#[tokio::test]
async fn calls_and_events_complete_over_a_lossy_reordering_duplicating_network() {
    let server = BoardServer::start(|c| c).await;
    let proxy = UdpProxy::start(server.addr, 7).await;
    let client = BoardClient::with_config(server.config_via(proxy.addr, Transport::Quic));
    client.connect().await.expect("connect through the proxy");
    let mut events = client.subscribe().await.unwrap();
    assert!(client.join("weather".into()).await.unwrap());
    proxy.set(Faults {
        drop: 0.05,
        duplicate: 0.05,
        reorder: 0.10,
        ..Faults::default()
    });
    // concurrent calls, each on its own stream
    let posts = (0..50u64).map(|seq| {
        let client = client.clone();
        async move { client.post("other".into(), note(1, seq)).await }
    });
    for result in join_all(posts).await {
        assert_eq!(result.unwrap(), 0, "nobody is subscribed to `other`");
    }
    // events from the server arrive complete and in order
    let topic = Topic::from("weather");
    for seq in 0..200 {
        server.emitter.emit(&topic, note(2, seq)).await;
    }
    for seq in 0..200 {
        let event = events.recv().await.expect("no event lost");
        assert_eq!(event.payload.seq, seq);
    }
    assert_eq!(
        client.state().await.unwrap().joined,
        vec!["weather".to_owned()]
    );
}

#[tokio::test]
async fn a_quic_handshake_that_never_finishes_is_cut_off() {
    // without address validation the first Initial is admitted at once (with it, such a
    // peer never gets a slot: `limits_address_validation`); what is tested here is the
    // handshake deadline of an admitted connection
    let server = TestServer::start_with(|c| {
        c.with_server_limits(
            ServerLimits::default()
                .with_handshake_timeout(Duration::from_millis(300))
                .with_address_validation(AddressValidation::Off),
        )
    })
    .await;
    let proxy = UdpProxy::start(server.addr, 1).await;
    // only the client's first packet (its Initial) ever reaches the server
    proxy.set(Faults {
        client_packets: Some(1),
        ..Faults::default()
    });
    let client = KitchenClient::with_config(
        server
            .config_via(proxy.addr, Transport::Quic)
            .with_reconnect(None)
            .with_connect_timeout(Duration::from_secs(2)),
    );
    let connecting = tokio::spawn(async move { client.connect().await });
    eventually("the server accepting the connection", || {
        server.stats.snapshot().connections_accepted == 1
    })
    .await;
    eventually("the server dropping the unfinished handshake", || {
        server.stats.snapshot().connections_open == 0
    })
    .await;
    assert!(connecting.await.unwrap().is_err());
}

#[tokio::test]
async fn a_peer_that_vanishes_is_closed_by_the_idle_timeout() {
    let server = TestServer::start_with(|c| {
        // fifteen keep-alives per idle timeout: a live connection is never mistaken for a
        // silent one, however loaded the machine
        c.with_limits(
            Limits::default()
                .with_idle_timeout(Duration::from_secs(3))
                .with_keep_alive(Duration::from_millis(200)),
        )
        .with_server_limits(ServerLimits::default().with_resume_grace(Duration::ZERO))
    })
    .await;
    let proxy = UdpProxy::start(server.addr, 2).await;
    let client = KitchenClient::with_config(
        server
            .config_via(proxy.addr, Transport::Quic)
            .with_reconnect(None),
    );
    client.connect().await.unwrap();
    assert_eq!(client.add(1, 1, 1).await.unwrap(), 3);
    assert_eq!(server.stats.snapshot().connections_open, 1);
    proxy.set(Faults {
        blackhole: true,
        ..Faults::default()
    });
    eventually("the server closing the silent connection", || {
        server.stats.snapshot().connections_open == 0
    })
    .await;
}
