//! Stats snapshots for the server, each connection and the client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    board::{note, BoardServer},
    TestServer,
};
use hardlight::{Topic, Transport};

#[tokio::test]
async fn counters_for_server_connection_and_client() {
    let server = TestServer::start().await;
    let mut clients = Vec::new();
    for (n, transport) in [Transport::Quic, Transport::WebSocket]
        .into_iter()
        .enumerate()
    {
        let client = server.client_over(transport).await;
        for i in 0..3 {
            assert_eq!(client.add(i, 0, 0).await.unwrap(), i);
        }
        assert!(client.fail("on purpose".into()).await.is_err());
        // the handler's view of its own connection: 5 calls started, this one included
        assert_eq!(client.calls_seen().await.unwrap(), 5, "{transport:?}");
        let stats = client.stats();
        assert_eq!(
            (stats.calls, stats.calls_in_flight),
            (5, 0),
            "{transport:?}"
        );
        assert_eq!(stats.calls_failed, 0, "a handler error is not a failure");
        assert!(stats.bytes_sent > 0 && stats.bytes_received > 0);
        assert_eq!(stats.rtt.is_some(), transport == Transport::Quic);
        let server_stats = server.stats.snapshot();
        assert_eq!(server_stats.connections_open, n as u64 + 1);
        assert_eq!(server_stats.traffic.calls, 5 * (n as u64 + 1));
        assert!(server_stats.traffic.bytes_received > 0 && server_stats.traffic.bytes_sent > 0);
        clients.push(client);
    }
}

#[tokio::test]
async fn the_client_counts_the_events_it_receives() {
    let server = BoardServer::start(|c| c).await;
    for transport in [Transport::Quic, Transport::WebSocket] {
        let (client, mut events) = server.subscriber_via(transport, &["news"]).await;
        for seq in 0..10 {
            server
                .emitter
                .emit(&Topic::from("news"), note(0, seq))
                .await;
        }
        for seq in 0..10 {
            assert_eq!(events.recv().await.unwrap().payload.seq, seq);
        }
        let stats = client.stats();
        assert_eq!(
            (stats.events_received, stats.events_lost),
            (10, 0),
            "{transport:?}"
        );
    }
}
