//! A cluster's bounds and checks: an event NATS would refuse is refused at `emit`; an
//! event the receiving server's memory budget cannot take is a gap; events of another
//! schema are dropped and counted; a bad configuration fails at bind.
#![cfg(feature = "nats")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    board::{note, BoardServer, Note},
    cluster::{gap, link, linked, next, node, subscriber},
    nats::NatsServer,
};
use hardlight::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_above_the_nats_max_payload_is_refused_at_emit() {
    let Some(nats) = NatsServer::start_with("max_payload: 4096").await else {
        return;
    };
    let a = node(&nats.url(), |c| c).await;
    linked(&a, 0).await;
    let big = Note {
        from: 0,
        seq: 0,
        text: "x".repeat(5000),
    };
    match a.emitter.try_emit(&"feed".into(), big) {
        Err(EmitError::TooLargeForCluster { size, max }) => {
            assert_eq!(max, 4096);
            assert!(
                size > 5000,
                "the size NATS counts, headers included: {size}"
            );
        }
        other => panic!("expected TooLargeForCluster, got {other:?}"),
    }
    a.emitter.try_emit(&"feed".into(), note(0, 1)).unwrap();
    common::eventually("the small event forwarded", || {
        link(&a).events_forwarded == 1
    })
    .await;
    assert_eq!(link(&a).events_dropped, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_the_receiving_server_cannot_hold_is_reported_as_a_gap() {
    let Some(nats) = NatsServer::start().await else {
        return;
    };
    let a = node(&nats.url(), |c| c).await;
    let b = BoardServer::start(|config| {
        config
            .with_cluster(ClusterConfig::nats(nats.url()))
            .with_server_limits(ServerLimits::default().with_memory_budget(64 << 10))
    })
    .await;
    linked(&a, 0).await;
    linked(&b, 0).await;
    let (_client, mut events) = subscriber(&b, b"feed").await;
    linked(&b, 1).await;
    let big = Note {
        from: 0,
        seq: 0,
        text: "x".repeat(100 << 10),
    };
    a.emitter.try_emit(&"feed".into(), big.clone()).unwrap();
    a.emitter.try_emit(&"feed".into(), big).unwrap();
    a.emitter.try_emit(&"feed".into(), note(0, 1)).unwrap();
    gap(&mut events, b"feed").await;
    let event = next(&mut events)
        .await
        .expect("the small event, one gap for both losses");
    assert_eq!(event.payload.seq, 1);
    let stats = link(&b);
    assert_eq!(
        (stats.events_received, stats.events_dropped, stats.gaps),
        (3, 2, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_from_a_server_of_another_schema_are_dropped_and_counted() {
    let Some(nats) = NatsServer::start().await else {
        return;
    };
    // a server of another service (events of type `()`) on the same subjects
    let config =
        ServerConfig::new_self_signed("127.0.0.1:0").with_cluster(ClusterConfig::nats(nats.url()));
    let mut other = Server::new(config, factory!(common::Handler));
    other.bind().unwrap();
    let (stranger, other_stats) = (other.get_event_emitter(), other.stats_handle());
    tokio::spawn(other.run());
    let b = node(&nats.url(), |c| c).await;
    linked(&b, 0).await;
    let (_client, mut events) = subscriber(&b, b"feed").await;
    linked(&b, 1).await;
    common::eventually("the other server linked", || {
        other_stats.snapshot().cluster.is_some_and(|c| c.connected)
    })
    .await;
    let a = node(&nats.url(), |c| c).await;
    linked(&a, 0).await;
    stranger.try_emit(&"feed".into(), ()).unwrap();
    a.emitter.try_emit(&"feed".into(), note(0, 7)).unwrap();
    let event = next(&mut events).await.expect("the event of this schema");
    assert_eq!(
        event.payload.seq, 7,
        "the other schema's event is not delivered"
    );
    // the two servers' events travel independently: the stranger's may come later
    common::eventually("the other schema's event counted", || {
        link(&b).events_rejected == 1
    })
    .await;
}

#[tokio::test]
async fn a_bad_cluster_configuration_fails_at_bind() {
    let bind = |cluster: ClusterConfig| {
        let config = ServerConfig::new_self_signed("127.0.0.1:0").with_cluster(cluster);
        Server::new(config, factory!(common::board::BoardHandler)).bind()
    };
    match bind(ClusterConfig::nats("nats://127.0.0.1:4222").with_subject_prefix("a.*")) {
        Err(ServerError::ClusterPrefix { prefix }) => assert_eq!(prefix, "a.*"),
        other => panic!("expected ClusterPrefix, got {other:?}"),
    }
    match bind(ClusterConfig::nats("nats://127.0.0.1:4222").with_server("nats://[::1")) {
        Err(ServerError::ClusterAddress { url, .. }) => assert_eq!(url, "nats://[::1"),
        other => panic!("expected ClusterAddress, got {other:?}"),
    }
}
