//! Durable topics as clients see them: positions in order, acks, redelivery after the ack
//! wait, dead letters after `max_deliver`, TTL, dedup, retention limits, takeover, and
//! positions refused by a store with another epoch.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::ledger::{next, LedgerClient, LedgerError, LedgerServer, StartFrom, TempDir};
use hardlight::*;

const TOPIC: &str = "log";

/// A ledger server on a new store (durable configuration adjusted) and a client over QUIC.
async fn start(
    name: &str,
    adjust: impl FnOnce(DurableConfig) -> DurableConfig,
) -> (TempDir, LedgerServer, LedgerClient) {
    let dir = TempDir::new(name);
    let server = LedgerServer::start(dir.store(), adjust).await;
    let client = server.client(Transport::Quic).await;
    (dir, server, client)
}

async fn append(client: &LedgerClient, n: u64) -> Position {
    client
        .append(TOPIC.into(), n, None, None)
        .await
        .expect("append")
        .0
}

async fn consume(client: &LedgerClient, consumer: &str) -> Position {
    client
        .consume(TOPIC.into(), consumer.into(), StartFrom::AckFloor)
        .await
        .expect("consume")
}

async fn delivered_in_order_and_acked_events_are_not_redelivered(transport: Transport) {
    let dir = TempDir::new("durable-order");
    let server = LedgerServer::start(dir.store(), |c| c).await;
    let client = server.client(transport).await;
    let mut events = client.durable().await.unwrap();
    let floor = consume(&client, "reader").await;
    assert_eq!(floor.seq, 0, "a new consumer starts before the first event");
    let mut positions = Vec::new();
    for n in 1..=20 {
        positions.push(append(&client, n).await);
    }
    for (n, position) in (1..=20).zip(&positions) {
        let event = next(&mut events).await;
        assert_eq!((event.payload.n, event.position), (n, *position));
        assert_eq!((event.attempt, event.is_redelivery()), (1, false));
        assert_eq!(
            (event.topic.clone(), event.consumer.as_str()),
            (Topic::from(TOPIC), "reader")
        );
        event.ack().unwrap();
    }
    // acks have no reply; a call after them on the same connection is read after them
    client.dead_letters(TOPIC.into()).await.unwrap();
    // a new connection of the consumer takes it over once its progress is stored, and
    // starts after them
    let again = server.client(transport).await;
    let mut events = again.durable().await.unwrap();
    assert_eq!(consume(&again, "reader").await, positions[19]);
    append(&client, 21).await;
    assert_eq!(
        next(&mut events).await.payload.n,
        21,
        "nothing acked comes again"
    );
    server.stop().await;
}

over_both_transports!(delivered_in_order_and_acked_events_are_not_redelivered);

#[tokio::test]
async fn an_unacked_event_is_redelivered_after_the_ack_wait_with_its_id_and_position() {
    let (_dir, server, client) = start("durable-redeliver", |c| {
        c.with_ack_wait(Duration::from_millis(100))
    })
    .await;
    let mut events = client.durable().await.unwrap();
    consume(&client, "reader").await;
    client
        .append(TOPIC.into(), 1, Some("first".into()), None)
        .await
        .unwrap();
    let first = next(&mut events).await;
    assert_eq!((first.payload.n, first.attempt), (1, 1));
    let again = next(&mut events).await;
    assert_eq!(
        (again.payload.n, again.attempt, again.is_redelivery()),
        (1, 2, true)
    );
    assert_eq!(
        (again.position, again.id.as_deref()),
        (first.position, Some("first"))
    );
    again.ack().unwrap();
    append(&client, 2).await;
    let after = next(&mut events).await;
    assert_eq!((after.payload.n, after.attempt), (2, 1), "1 was acked");
    server.stop().await;
}

#[tokio::test]
async fn past_max_deliver_an_event_goes_to_the_dead_letters() {
    let (_dir, server, client) = start("durable-dead", |c| {
        c.with_ack_wait(Duration::from_millis(50))
            .with_max_deliver(2)
    })
    .await;
    let mut events = client.durable().await.unwrap();
    consume(&client, "reader").await;
    append(&client, 1).await;
    assert_eq!(next(&mut events).await.attempt, 1);
    assert_eq!(next(&mut events).await.attempt, 2);
    // never acked: after the second delivery's ack wait it is given up on
    common::eventually_async("the event among the dead letters", || async {
        client.dead_letters(TOPIC.into()).await.unwrap() == vec![("reader".to_owned(), 1, 2)]
    })
    .await;
    append(&client, 2).await;
    let after = next(&mut events).await;
    assert_eq!(
        (after.payload.n, after.attempt),
        (2, 1),
        "1 is not delivered again"
    );
    // the counters (and `hardlight_durable_*` metrics) saw the same
    let stats = server.stats.snapshot().durable.expect("durable stats");
    assert_eq!(
        (
            stats.events_stored,
            stats.deliveries,
            stats.redeliveries,
            stats.dead_letters,
            stats.acks
        ),
        (2, 2, 1, 1, 0)
    );
    server.stop().await;
}

#[tokio::test]
async fn an_expired_event_is_never_delivered_and_its_space_is_reclaimed() {
    let (_dir, server, client) = start("durable-ttl", |c| {
        c.with_sweep_interval(Duration::from_millis(20))
    })
    .await;
    client
        .append(TOPIC.into(), 1, None, Some(30))
        .await
        .unwrap();
    let topic = Topic::from(TOPIC);
    let info = server.emitter.topic_info(&topic).await.unwrap();
    assert_eq!((info.events, info.last.seq), (1, 1));
    assert!(info.bytes > 0);
    // the sweep removes it once expired
    common::eventually_async("the expired event removed", || async {
        server.emitter.topic_info(&topic).await.unwrap().events == 0
    })
    .await;
    assert_eq!(server.emitter.topic_info(&topic).await.unwrap().bytes, 0);
    append(&client, 2).await;
    let mut events = client.durable().await.unwrap();
    consume(&client, "late").await;
    assert_eq!(next(&mut events).await.payload.n, 2, "1 expired unseen");
    server.stop().await;
}

#[tokio::test]
async fn an_expired_event_is_not_delivered_even_before_the_sweep() {
    let (_dir, server, client) = start("durable-ttl-unswept", |c| {
        c.with_sweep_interval(Duration::from_secs(3600))
    })
    .await;
    client.append(TOPIC.into(), 1, None, Some(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    append(&client, 2).await;
    let mut events = client.durable().await.unwrap();
    consume(&client, "late").await;
    assert_eq!(next(&mut events).await.payload.n, 2);
    server.stop().await;
}

#[tokio::test]
async fn an_emit_repeated_with_its_id_is_stored_once() {
    let (_dir, server, client) = start("durable-dedup", |c| c).await;
    let (first, duplicate) = client
        .append(TOPIC.into(), 1, Some("order-1".into()), None)
        .await
        .unwrap();
    assert!(!duplicate);
    let (again, duplicate) = client
        .append(TOPIC.into(), 1, Some("order-1".into()), None)
        .await
        .unwrap();
    assert_eq!((again, duplicate), (first, true));
    append(&client, 2).await;
    let mut events = client.durable().await.unwrap();
    consume(&client, "reader").await;
    assert_eq!(next(&mut events).await.payload.n, 1);
    assert_eq!(next(&mut events).await.payload.n, 2, "1 was stored once");
    server.stop().await;
}

#[tokio::test]
async fn an_id_outside_the_dedup_window_is_stored_again() {
    let (_dir, server, client) = start("durable-dedup-window", |c| {
        c.with_dedup_window(Duration::from_millis(20))
            .with_sweep_interval(Duration::from_millis(20))
    })
    .await;
    let (first, _) = client
        .append(TOPIC.into(), 1, Some("k".into()), None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (second, duplicate) = client
        .append(TOPIC.into(), 1, Some("k".into()), None)
        .await
        .unwrap();
    assert!(!duplicate);
    assert_eq!(second.seq, first.seq + 1);
    server.stop().await;
}

#[tokio::test]
async fn a_full_topic_refuses_emits_until_its_consumers_ack() {
    let (_dir, server, client) = start("durable-full", |c| {
        c.with_policy(TopicPolicy::default().with_max_events(3))
    })
    .await;
    let mut events = client.durable().await.unwrap();
    consume(&client, "reader").await;
    for n in 1..=3 {
        append(&client, n).await;
    }
    assert!(matches!(
        client.append(TOPIC.into(), 4, None, None).await,
        Err(RpcError::Handler(LedgerError::TopicFull))
    ));
    for _ in 1..=3 {
        next(&mut events).await.ack().unwrap();
    }
    // acked by the topic's only consumer, the events leave the store
    common::eventually_async("the acked events released", || async {
        client.append(TOPIC.into(), 4, None, None).await.is_ok()
    })
    .await;
    assert_eq!(next(&mut events).await.payload.n, 4);
    server.stop().await;
}

#[tokio::test]
async fn a_full_store_refuses_emits() {
    let (_dir, server, client) = start("durable-store-full", |c| c.with_max_bytes(64)).await;
    let mut stored = 0;
    let refusal = loop {
        match client.append(TOPIC.into(), stored, None, None).await {
            Ok(_) => stored += 1,
            Err(error) => break error,
        }
    };
    assert!(matches!(refusal, RpcError::Handler(LedgerError::StoreFull)));
    assert!(stored >= 1, "one event fits 64 bytes");
    server.stop().await;
}

#[tokio::test]
async fn a_consumer_at_max_in_flight_gets_redeliveries_before_new_events() {
    let (_dir, server, client) = start("durable-in-flight", |c| {
        c.with_max_in_flight(2)
            .with_ack_wait(Duration::from_millis(50))
    })
    .await;
    let mut events = client.durable().await.unwrap();
    consume(&client, "reader").await;
    for n in 1..=3 {
        append(&client, n).await;
    }
    let got: Vec<(u64, u32)> = {
        let mut got = Vec::new();
        for _ in 0..4 {
            let event = next(&mut events).await;
            got.push((event.payload.n, event.attempt));
        }
        got
    };
    assert_eq!(
        got,
        vec![(1, 1), (2, 1), (1, 2), (2, 2)],
        "3 waits for room"
    );
    // acking makes room for 3
    loop {
        let event = next(&mut events).await;
        if event.payload.n == 3 {
            assert_eq!(event.attempt, 1);
            break;
        }
        event.ack().unwrap();
    }
    server.stop().await;
}

#[tokio::test]
async fn a_consumer_taken_over_by_another_connection_gets_its_unacked_events_there() {
    let (_dir, server, first) = start("durable-takeover", |c| c).await;
    let mut first_events = first.durable().await.unwrap();
    consume(&first, "reader").await;
    append(&first, 1).await;
    let unacked = next(&mut first_events).await;
    assert_eq!(unacked.attempt, 1);
    let second = server.client(Transport::WebSocket).await;
    let mut second_events = second.durable().await.unwrap();
    consume(&second, "reader").await;
    let redelivered = next(&mut second_events).await;
    assert_eq!(
        (
            redelivered.payload.n,
            redelivered.attempt,
            redelivered.position
        ),
        (1, 2, unacked.position)
    );
    redelivered.ack().unwrap();
    append(&first, 2).await;
    assert_eq!(next(&mut second_events).await.payload.n, 2);
    server.stop().await;
}

#[tokio::test]
async fn durable_subscriptions_per_connection_are_limited() {
    let (_dir, server, client) =
        start("durable-many", |c| c.with_max_consumers_per_connection(1)).await;
    consume(&client, "a").await;
    assert!(matches!(
        client
            .consume(TOPIC.into(), "b".into(), StartFrom::AckFloor)
            .await,
        Err(RpcError::Handler(LedgerError::TooMany))
    ));
    // the same consumer again takes its own slot
    consume(&client, "a").await;
    assert!(client.release(TOPIC.into(), "a".into()).await.unwrap());
    consume(&client, "b").await;
    server.stop().await;
}

#[tokio::test]
async fn starting_after_a_position_or_at_the_newest_event() {
    let (_dir, server, client) = start("durable-start", |c| c).await;
    let positions = [append(&client, 1).await, append(&client, 2).await];
    let mut events = client.durable().await.unwrap();
    let floor = client
        .consume(
            TOPIC.into(),
            "from-1".into(),
            StartFrom::After(positions[0]),
        )
        .await
        .unwrap();
    assert_eq!(floor, positions[0]);
    assert_eq!(next(&mut events).await.payload.n, 2);
    client
        .consume(TOPIC.into(), "newest".into(), StartFrom::Newest)
        .await
        .unwrap();
    append(&client, 3).await;
    let mut got: Vec<(String, u64)> = Vec::new();
    for _ in 0..2 {
        let event = next(&mut events).await;
        got.push((event.consumer.clone(), event.payload.n));
    }
    got.sort();
    assert_eq!(got, vec![("from-1".into(), 3), ("newest".into(), 3)]);
    let ahead = Position {
        seq: 99,
        ..positions[0]
    };
    assert!(matches!(
        client
            .consume(TOPIC.into(), "x".into(), StartFrom::After(ahead))
            .await,
        Err(RpcError::Handler(LedgerError::PositionAhead { last })) if last.seq == 3
    ));
    server.stop().await;
}

#[tokio::test]
async fn a_position_from_a_deleted_store_is_refused_with_the_new_epoch() {
    let (dir, server, client) = start("durable-epoch", |c| c).await;
    let old = append(&client, 1).await;
    drop(client);
    server.stop().await;
    // the same store again: the same epoch, and the position still means the same
    let server = LedgerServer::start(dir.store(), |c| c).await;
    let client = server.client(Transport::Quic).await;
    let floor = client
        .consume(TOPIC.into(), "reader".into(), StartFrom::After(old))
        .await
        .unwrap();
    assert_eq!(floor, old);
    drop(client);
    server.stop().await;
    std::fs::remove_file(dir.store()).unwrap();
    let server = LedgerServer::start(dir.store(), |c| c).await;
    let client = server.client(Transport::Quic).await;
    let new = append(&client, 1).await;
    assert_ne!(new.epoch, old.epoch, "a new store has a new epoch");
    assert!(matches!(
        client
            .consume(TOPIC.into(), "reader".into(), StartFrom::After(old))
            .await,
        Err(RpcError::Handler(LedgerError::EpochMismatch { epoch })) if epoch == new.epoch
    ));
    server.stop().await;
}
