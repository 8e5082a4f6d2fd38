//! Topics shared by three servers over a real `nats-server`: every subscriber, whichever
//! server it is on, receives every event of its topics exactly once, in each emitter's
//! order; any topic bytes travel; a server receives from NATS only the topics it has
//! subscribers for.
#![cfg(feature = "nats")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;

use common::{
    board::note,
    cluster::{link, linked, next, node, subscriber, until},
    eventually,
    nats::NatsServer,
};
use hardlight::*;

/// Events each of the two emitters sends.
const EACH: u64 = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscriber_on_every_server_gets_every_event_once_in_emitter_order() {
    let Some(nats) = NatsServer::start().await else {
        return;
    };
    // every event fits the receive buffer: none is lost to a server starved of CPU
    let roomy = |c: ClusterConfig| c.with_receive_buffer(4 * EACH as usize);
    let servers = [
        node(&nats.url(), roomy).await,
        node(&nats.url(), roomy).await,
        node(&nats.url(), roomy).await,
    ];
    // linked before anyone subscribes: no subscriber is told of a gap at the start
    for server in &servers {
        linked(server, 0).await;
    }
    let mut subscribers = Vec::new();
    for server in &servers {
        for _ in 0..2 {
            subscribers.push(subscriber(server, b"feed").await);
        }
    }
    for server in &servers {
        linked(server, 1).await;
    }
    // two emitters, on the first and second servers, interleaved
    let (a, b) = (&servers[0].emitter, &servers[1].emitter);
    let topic = Topic::from("feed");
    for seq in 0..=EACH {
        a.try_emit(&topic, note(0, seq)).unwrap();
        b.try_emit(&topic, note(1, seq)).unwrap();
    }
    for (_client, events) in &mut subscribers {
        let mut expected: HashMap<u32, u64> = HashMap::from([(0, 0), (1, 0)]);
        while expected.values().any(|&seq| seq <= EACH) {
            let event = next(events).await.expect("no event lost");
            assert_eq!(event.topic, topic);
            let (from, seq) = (event.payload.from, event.payload.seq);
            let want = expected.get_mut(&from).expect("a known emitter");
            assert_eq!(
                seq, *want,
                "emitter {from}'s events arrive once each, in order"
            );
            *want += 1;
        }
    }
    for server in &servers[..2] {
        // counted once the publish is queued, which may come after the event arrived
        eventually("every event counted as forwarded", || {
            link(server).events_forwarded == EACH + 1
        })
        .await;
    }
    // each server received the other emitting servers' events, and nothing of its own
    assert_eq!(link(&servers[0]).events_received, EACH + 1);
    assert_eq!(link(&servers[1]).events_received, EACH + 1);
    assert_eq!(link(&servers[2]).events_received, 2 * (EACH + 1));
    for server in &servers {
        let link = link(server);
        assert_eq!(
            (link.events_dropped, link.events_rejected, link.gaps),
            (0, 0, 0)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_topic_bytes_travel_between_servers() {
    let Some(nats) = NatsServer::start().await else {
        return;
    };
    let (a, b) = (
        node(&nats.url(), |c| c).await,
        node(&nats.url(), |c| c).await,
    );
    linked(&a, 0).await;
    linked(&b, 0).await;
    let topics: Vec<Vec<u8>> = vec![
        b".".to_vec(),
        b"*".to_vec(),
        b">".to_vec(),
        b" ".to_vec(),
        b"\0".to_vec(),
        vec![0xff],
        b"$JS.API.x".to_vec(),
        b"a..b".to_vec(),
        vec![b'k'; 4096],
    ];
    let mut subscribers = Vec::new();
    for topic in &topics {
        subscribers.push(subscriber(&b, topic).await);
    }
    linked(&b, topics.len() as u64).await;
    for (n, topic) in topics.iter().enumerate() {
        a.emitter
            .try_emit(&Topic::from(topic.clone()), note(0, n as u64))
            .unwrap();
    }
    for (n, (topic, (_client, events))) in topics.iter().zip(&mut subscribers).enumerate() {
        let event = next(events).await.expect("the event");
        assert_eq!(event.topic, Topic::from(topic.clone()));
        assert_eq!(event.payload.seq, n as u64, "only its own topic's event");
    }
    assert_eq!(link(&b).events_received, topics.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_receives_only_the_topics_it_has_subscribers_for() {
    let Some(nats) = NatsServer::start().await else {
        return;
    };
    let linger = std::time::Duration::from_millis(200);
    let (a, b) = (
        node(&nats.url(), |c| c.with_linger(linger)).await,
        node(&nats.url(), |c| c.with_linger(linger)).await,
    );
    let (c, d) = (
        node(&nats.url(), |c| c).await,
        node(&nats.url(), |c| c).await,
    );
    for server in [&a, &b, &c, &d] {
        linked(server, 0).await;
    }
    let (client, mut events) = subscriber(&b, b"wanted").await;
    let (_other, mut elsewhere) = subscriber(&d, b"elsewhere").await;
    linked(&b, 1).await;
    linked(&d, 1).await;
    for seq in 0..100 {
        a.emitter.try_emit(&"wanted".into(), note(0, seq)).unwrap();
        a.emitter
            .try_emit(&"unwanted".into(), note(0, seq))
            .unwrap();
    }
    a.emitter.try_emit(&"elsewhere".into(), note(1, 0)).unwrap();
    until(&mut events, |n| n.seq == 99).await;
    until(&mut elsewhere, |n| n.from == 1).await;
    eventually("every event counted as forwarded", || {
        link(&a).events_forwarded == 201
    })
    .await;
    assert_eq!(link(&b).events_received, 100, "only `wanted`");
    assert_eq!(link(&d).events_received, 1, "only `elsewhere`");
    assert_eq!(link(&c).events_received, 0, "no subscriber, no traffic");

    // the last subscriber leaves: after the linger the server unsubscribes in NATS
    assert!(client.leave("wanted".into()).await.unwrap());
    linked(&b, 0).await;
    for seq in 100..200 {
        a.emitter.try_emit(&"wanted".into(), note(0, seq)).unwrap();
    }
    a.emitter.try_emit(&"elsewhere".into(), note(1, 1)).unwrap();
    until(&mut elsewhere, |n| n.seq == 1).await;
    assert_eq!(link(&b).events_received, 100, "nothing after unsubscribing");
    let _ = next;
}
