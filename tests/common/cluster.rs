//! Board servers in a cluster over a real `nats-server`.

use std::time::Duration;

use hardlight::*;

use super::{
    board::{BoardClient, BoardServer, Note},
    eventually,
};

/// Events a cluster test server queues per connection, and its clients buffer: enough for
/// every event of a test, so that nothing is lost to a slow reader.
pub const ROOMY: usize = 32_768;

/// A board server in the cluster of the NATS server at `url`; `adjust` may change the
/// cluster's settings. Its link to NATS comes up in the background ([`linked`] waits for
/// it): a client subscribing before then is told of a gap once it is up.
pub async fn node(url: &str, adjust: impl FnOnce(ClusterConfig) -> ClusterConfig) -> BoardServer {
    let cluster = adjust(ClusterConfig::nats(url));
    BoardServer::start(|config| {
        config.with_cluster(cluster).with_server_limits(
            ServerLimits::default()
                .with_max_queued_events(ROOMY)
                .with_max_queued_bytes(64 << 20),
        )
    })
    .await
}

/// The server's cluster link now.
pub fn link(server: &BoardServer) -> ClusterStats {
    server
        .stats
        .snapshot()
        .cluster
        .expect("a clustered server has cluster stats")
}

/// Waits until the server is connected to NATS and subscribed there to `topics` topics.
pub async fn linked(server: &BoardServer, topics: u64) {
    eventually("the server linked to NATS with its topics", || {
        let link = link(server);
        link.connected && link.topics_subscribed == topics
    })
    .await;
}

/// A connected client, its handler subscribed to `topic`, with its event stream.
pub async fn subscriber(server: &BoardServer, topic: &[u8]) -> (BoardClient, Subscription<Note>) {
    let config = server
        .config_via(server.addr, Transport::Quic)
        .with_connect_timeout(Duration::from_secs(60))
        .with_event_buffer(ROOMY);
    let client = BoardClient::with_config(config);
    client.connect().await.expect("connect");
    let events = client.subscribe().await.expect("subscribe");
    assert!(client.join_bytes(topic.to_vec()).await.expect("join"));
    (client, events)
}

/// The next event, or the loss notice; panics after 60 s (only a hang gets there).
pub async fn next(events: &mut Subscription<Note>) -> Result<Event<Note>, RecvError> {
    tokio::time::timeout(Duration::from_secs(60), events.recv())
        .await
        .expect("an event or a notice within 60 s")
}

/// Receives until `want` says an event is the one awaited, skipping others; panics on a
/// notice of loss.
pub async fn until(events: &mut Subscription<Note>, want: impl Fn(&Note) -> bool) -> Note {
    loop {
        let event = next(events).await.expect("an event, not a notice");
        if want(&event.payload) {
            return event.payload;
        }
    }
}

/// Receives until the first gap notice for `topic`, skipping events; panics on any other
/// notice.
pub async fn gap(events: &mut Subscription<Note>, topic: &[u8]) {
    loop {
        match next(events).await {
            Ok(_) => {}
            Err(RecvError::Gap(t)) if t == Topic::from(topic) => return,
            Err(other) => panic!("expected a gap of {topic:?}, got {other:?}"),
        }
    }
}
