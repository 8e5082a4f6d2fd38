//! Durable topics on JetStream (`DurableConfig::jetstream`): servers of a cluster share
//! them, a consumer goes on through another server from its ack floor, and what JetStream
//! acknowledged at emit survives `kill -9` of a `nats-server` that syncs every write.
#![cfg(feature = "nats")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{collections::BTreeSet, time::Duration};

use common::{
    ledger::{next, LedgerClient, LedgerServer, StartFrom, TempDir},
    nats::NatsServer,
};
use hardlight::*;

const TOPIC: &str = "numbers";

/// A `nats-server` with JetStream storing in `dir` and syncing every write.
async fn jetstream(dir: &TempDir) -> Option<NatsServer> {
    let store = dir.0.join("jetstream");
    NatsServer::start_with(&format!(
        "jetstream {{ store_dir: {store:?}, sync_interval: always }}"
    ))
    .await
}

/// A ledger server whose durable topics are in `nats`'s JetStream.
async fn server(
    nats: &NatsServer,
    adjust: impl FnOnce(DurableConfig) -> DurableConfig,
) -> LedgerServer {
    let config = ServerConfig::new_self_signed("127.0.0.1:0")
        .with_cluster(ClusterConfig::nats(nats.url()).with_subject_prefix("durable"))
        .with_durable(adjust(DurableConfig::jetstream()));
    LedgerServer::start_with(config).await
}

async fn append(
    client: &LedgerClient,
    n: u64,
) -> Result<Position, RpcError<common::ledger::LedgerError>> {
    client
        .append(TOPIC.into(), n, Some(n.to_string()), None)
        .await
        .map(|(position, _)| position)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_moves_to_another_server_and_survives_a_nats_crash() {
    let dir = TempDir::new("cluster-durable");
    let Some(mut nats) = jetstream(&dir).await else {
        return;
    };
    let a = server(&nats, |c| c).await;
    let b = server(&nats, |c| c).await;

    // through A: 30 numbers stored, the first 10 consumed and acked
    let client = a.client(Transport::Quic).await;
    let mut events = client.durable().await.unwrap();
    client
        .consume(TOPIC.into(), "reader".into(), StartFrom::AckFloor)
        .await
        .unwrap();
    let mut ok = BTreeSet::new();
    let mut epoch = None;
    for n in 1..=30 {
        let position = append(&client, n).await.expect("stored");
        assert_eq!(*epoch.get_or_insert(position.epoch), position.epoch);
        ok.insert(n);
    }
    for n in 1..=10 {
        let event = next(&mut events).await;
        assert_eq!((event.payload.n, event.attempt), (n, 1));
        event.ack().unwrap();
    }
    // the acks are read before this call, and passed on to JetStream in order
    client.dead_letters(TOPIC.into()).await.unwrap();
    client.disconnect().await;

    // through B: the same consumer goes on after its ack floor
    let client = b.client(Transport::WebSocket).await;
    let mut events = client.durable().await.unwrap();
    let floor = client
        .consume(TOPIC.into(), "reader".into(), StartFrom::AckFloor)
        .await
        .unwrap();
    assert_eq!(
        floor,
        Position {
            epoch: epoch.unwrap(),
            seq: floor.seq
        }
    );
    // what A's client processed, then B's
    let mut seen: BTreeSet<u64> = (1..=10).collect();
    while !(11..=30).all(|n| seen.contains(&n)) {
        let event = next(&mut events).await;
        assert!(
            event.payload.n > 10,
            "{} was acked through A",
            event.payload.n
        );
        seen.insert(event.payload.n);
        event.ack().unwrap();
    }

    // NATS killed and restarted on its store: emits fail meanwhile, none of what it
    // acknowledged is lost
    nats.kill();
    assert!(
        append(&client, 31).await.is_err(),
        "nothing is stored without NATS"
    );
    nats.restart().await;
    for n in 31..=40 {
        let stored = loop {
            match append(&client, n).await {
                Ok(position) => break position,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        assert_eq!(stored.epoch, epoch.unwrap(), "the same stream");
        ok.insert(n);
    }
    // delivered at once to the pull made when NATS came back, not left to the ack wait
    while !ok.iter().all(|n| seen.contains(n)) {
        let event = next(&mut events).await;
        if event.payload.n > 30 {
            assert_eq!(
                event.attempt, 1,
                "{} was stored after the restart: its first delivery reached the client",
                event.payload.n
            );
        }
        seen.insert(event.payload.n);
        event.ack().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_deduplicates_redelivers_and_keeps_dead_letters() {
    let dir = TempDir::new("cluster-durable-dead");
    let Some(nats) = jetstream(&dir).await else {
        return;
    };
    let server = server(&nats, |c| {
        c.with_ack_wait(Duration::from_millis(200))
            .with_max_deliver(2)
    })
    .await;
    let client = server.client(Transport::Quic).await;
    let (first, duplicate) = client
        .append(TOPIC.into(), 1, Some("one".into()), None)
        .await
        .unwrap();
    assert!(!duplicate);
    let (again, duplicate) = client
        .append(TOPIC.into(), 1, Some("one".into()), None)
        .await
        .unwrap();
    assert_eq!((again, duplicate), (first, true));
    let mut events = client.durable().await.unwrap();
    client
        .consume(TOPIC.into(), "reader".into(), StartFrom::AckFloor)
        .await
        .unwrap();
    let delivered = next(&mut events).await;
    assert_eq!(
        (delivered.payload.n, delivered.attempt, delivered.position),
        (1, 1, first)
    );
    assert_eq!(delivered.id.as_deref(), Some("one"));
    let redelivered = next(&mut events).await;
    assert_eq!((redelivered.attempt, redelivered.position), (2, first));
    // never acked: past max_deliver it moves to the dead letters
    common::eventually_async("the event among the dead letters", || async {
        client.dead_letters(TOPIC.into()).await.unwrap() == vec![("reader".to_owned(), 1, 2)]
    })
    .await;
    client.append(TOPIC.into(), 2, None, None).await.unwrap();
    let after = next(&mut events).await;
    assert_eq!(
        (after.payload.n, after.attempt),
        (2, 1),
        "1 is not delivered again"
    );
}
