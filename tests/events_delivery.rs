//! Events reach every subscriber, exactly once, in emission order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::board::{note, BoardServer, Note};
use futures_util::{future::join_all, stream, StreamExt};
use hardlight::{RecvError, ServerLimits, Subscription, Topic, Transport};

/// Receives `count` events, failing on any loss.
async fn receive(events: &mut Subscription<Note>, count: usize) -> Vec<Note> {
    let mut got = Vec::with_capacity(count);
    while got.len() < count {
        let event = tokio::time::timeout(Duration::from_secs(60), events.recv())
            .await
            .expect("events stopped arriving")
            .expect("no loss while nobody is slow");
        got.push(event.payload);
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_subscribers_each_get_every_event_in_order() {
    const SUBSCRIBERS: usize = 1000;
    const EVENTS: u64 = 20;
    // every subscriber comes from 127.0.0.1: lift the per-address cap (256 by default);
    // a thousand handshakes on a loaded machine may take longer than the default timeout
    let server = BoardServer::start(|c| {
        c.with_server_limits(
            ServerLimits::default()
                .with_max_connections_per_ip(2_000)
                .with_handshake_timeout(Duration::from_secs(60)),
        )
    })
    .await;
    let subscribers: Vec<_> = stream::iter((0..SUBSCRIBERS).map(|_| server.subscriber("fanout")))
        .buffer_unordered(16)
        .collect()
        .await;
    let topic = Topic::from("fanout");
    let mut receivers = Vec::new();
    for (client, mut events) in subscribers {
        receivers.push(tokio::spawn(async move {
            let got = receive(&mut events, EVENTS as usize).await;
            drop(client);
            got
        }));
    }
    for seq in 0..EVENTS {
        assert_eq!(server.emitter.emit(&topic, note(0, seq)).await, SUBSCRIBERS);
    }
    let expected: Vec<Note> = (0..EVENTS).map(|seq| note(0, seq)).collect();
    for receiver in receivers {
        assert_eq!(receiver.await.unwrap(), expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_emitters_deliver_exactly_once_in_each_emitters_order() {
    const EMITTERS: u32 = 4;
    const PER_EMITTER: u64 = 200;
    let server = BoardServer::start(|c| c).await;
    let mut subscribers = join_all((0..5).map(|_| server.subscriber("many"))).await;
    // one emitter is a client calling a handler that emits through `self.events`
    let poster = server.client().await;
    let emitters = (0..EMITTERS).map(|from| {
        let emitter = server.emitter.clone();
        let poster = poster.clone();
        tokio::spawn(async move {
            for seq in 0..PER_EMITTER {
                if from == 0 {
                    poster.post("many".into(), note(from, seq)).await.unwrap();
                } else {
                    emitter.emit(&Topic::from("many"), note(from, seq)).await;
                }
            }
        })
    });
    // read while emitting: nobody is slow
    let total = (u64::from(EMITTERS) * PER_EMITTER) as usize;
    let readers = subscribers
        .iter_mut()
        .map(|(_, events)| receive(events, total));
    let (received, _) = tokio::join!(join_all(readers), join_all(emitters));
    for got in received {
        for from in 0..EMITTERS {
            let seqs: Vec<u64> = got
                .iter()
                .filter(|n| n.from == from)
                .map(|n| n.seq)
                .collect();
            assert_eq!(seqs, (0..PER_EMITTER).collect::<Vec<_>>(), "emitter {from}");
        }
    }
    for (_, events) in &mut subscribers {
        assert!(
            tokio::time::timeout(Duration::from_millis(100), events.recv())
                .await
                .is_err(),
            "no duplicates after the last event"
        );
    }
}

#[tokio::test]
async fn subscriptions_can_filter_by_topic_and_only_subscribed_topics_arrive() {
    let server = BoardServer::start(|c| c).await;
    let (client, events) = server.subscriber("a").await;
    assert!(client.join("b".into()).await.unwrap());
    assert!(!client.join("b".into()).await.unwrap(), "already joined");
    assert_eq!(client.state().await.unwrap().joined, vec!["a", "b"]);
    let mut only_b = client.subscribe().await.unwrap().only("b");
    let mut all = events;
    server.emitter.emit(&"c".into(), note(9, 9)).await; // not subscribed
    server.emitter.emit(&"a".into(), note(1, 0)).await;
    server.emitter.emit(&"b".into(), note(2, 0)).await;
    let first = all.recv().await.unwrap();
    assert_eq!((first.topic, first.payload), (Topic::from("a"), note(1, 0)));
    assert_eq!(all.recv().await.unwrap().topic, Topic::from("b"));
    assert_eq!(only_b.recv().await.unwrap().payload, note(2, 0));
    assert!(client.leave("a".into()).await.unwrap());
    assert_eq!(server.emitter.emit(&"a".into(), note(1, 1)).await, 0);
}

#[tokio::test]
async fn each_event_carries_its_own_topic_when_topics_alternate_on_either_transport() {
    let server = BoardServer::start(|c| c).await;
    for transport in [Transport::Quic, Transport::WebSocket] {
        let (client, mut events) = server.subscriber_via(transport, &["a", "b"]).await;
        // runs of one topic, and changes, packed into messages and chunks as they come
        let topics = ["a", "a", "b", "a", "b", "b", "b", "a"];
        for (seq, topic) in topics.iter().enumerate() {
            server
                .emitter
                .emit(&(*topic).into(), note(0, seq as u64))
                .await;
        }
        for (seq, topic) in topics.iter().enumerate() {
            let event = events.recv().await.unwrap();
            assert_eq!(
                (event.topic, event.payload),
                (Topic::from(*topic), note(0, seq as u64)),
                "{transport:?}"
            );
        }
        client.disconnect().await;
    }
}

#[tokio::test]
async fn a_lagging_subscription_reports_its_loss() {
    let server = BoardServer::start(|c| c).await;
    let client = hardlight::ClientConfig::new(server.addr.to_string())
        .insecure_accept_any_certificate()
        .with_event_buffer(4);
    let client = common::board::BoardClient::with_config(client);
    client.connect().await.unwrap();
    let mut events = client.subscribe().await.unwrap();
    client.join("t".into()).await.unwrap();
    let mut fast = client.subscribe().await.unwrap();
    for seq in 0..10 {
        server.emitter.emit(&"t".into(), note(0, seq)).await;
        // `fast` keeps up; `events` does not read at all
        assert_eq!(fast.recv().await.unwrap().payload.seq, seq);
    }
    assert_eq!(events.recv().await, Err(RecvError::Lagged(6)));
    assert_eq!(events.recv().await.unwrap().payload.seq, 6);
}
