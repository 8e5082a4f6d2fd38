//! Stats snapshots for the server, each connection and the client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestServer;
use hardlight::Transport;

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
