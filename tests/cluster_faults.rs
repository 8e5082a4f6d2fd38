//! A cluster whose NATS fails: killed mid-stream, down when the servers start, or lost by
//! one server only. Local delivery never stops, whatever may have been lost across servers
//! is reported as a gap, and cross-server delivery comes back by itself. A session does
//! not move between servers: a client resuming on another server is told `SessionReset`.
#![cfg(feature = "nats")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    board::{note, BoardServer, Note},
    cluster::{gap, link, linked, next, node, subscriber},
    eventually,
    nats::NatsServer,
    tcp_proxy::TcpProxy,
    udp_proxy::UdpProxy,
};
use hardlight::*;

/// Receives events of `from` until `last`, in order from `first`, skipping gap notices
/// and other emitters' events.
async fn sequence(events: &mut Subscription<Note>, from: u32, first: u64, last: u64) {
    sequence_after(events, from, first, first, last).await;
}

/// Like [`sequence`], where events of `from` before `first` may come first (some of them,
/// in order).
async fn sequence_after(
    events: &mut Subscription<Note>,
    from: u32,
    after: u64,
    first: u64,
    last: u64,
) {
    let mut want = after;
    while want <= last {
        match next(events).await {
            Ok(event) if event.payload.from == from => {
                let seq = event.payload.seq;
                if seq < first {
                    assert!(seq >= want, "emitter {from}'s events in order");
                } else {
                    assert_eq!(
                        seq,
                        want.max(first),
                        "emitter {from}'s events in order, all of them from {first}"
                    );
                }
                want = seq + 1;
            }
            Ok(_) | Err(RecvError::Gap(_)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
}

/// Waits until the server has lost NATS at least `interruptions` times and is linked again.
async fn relinked(server: &BoardServer, interruptions: u64) {
    eventually("the server linked to NATS again", || {
        let link = link(server);
        link.connected && link.interruptions >= interruptions
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_killed_mid_stream_local_delivery_goes_on_gaps_are_reported_and_delivery_resumes() {
    let Some(mut nats) = NatsServer::start().await else {
        return;
    };
    let (a, b) = (
        node(&nats.url(), |c| c).await,
        node(&nats.url(), |c| c).await,
    );
    let (_on_a, mut at_a) = subscriber(&a, b"feed").await;
    let (_on_b, mut at_b) = subscriber(&b, b"feed").await;
    linked(&a, 1).await;
    linked(&b, 1).await;
    let topic = Topic::from("feed");
    for seq in 0..100 {
        a.emitter.try_emit(&topic, note(0, seq)).unwrap();
    }
    sequence(&mut at_b, 0, 0, 99).await;

    nats.kill();
    // the remote subscriber is told events from the other server may be missing
    gap(&mut at_b, b"feed").await;
    // local delivery goes on, on both servers
    for seq in 100..200 {
        a.emitter.try_emit(&topic, note(0, seq)).unwrap();
        b.emitter.try_emit(&topic, note(1, seq)).unwrap();
    }
    sequence(&mut at_a, 0, 0, 199).await;
    sequence(&mut at_b, 1, 100, 199).await;

    nats.restart().await;
    relinked(&a, 1).await;
    relinked(&b, 1).await;
    for seq in 200..300 {
        a.emitter.try_emit(&topic, note(0, seq)).unwrap();
    }
    // events emitted while NATS was away may come late, or not at all (reported by the
    // gap that came when the link was back); those emitted since come, all of them
    sequence_after(&mut at_b, 0, 100, 200, 299).await;
    assert!(
        link(&b).gaps >= 2,
        "a gap when the link went down, and when it came back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_start_without_nats_serve_locally_and_join_when_it_comes() {
    let Some(mut nats) = NatsServer::start().await else {
        return;
    };
    nats.kill();
    let (a, b) = (
        node(&nats.url(), |c| c).await,
        node(&nats.url(), |c| c).await,
    );
    let (_on_a, mut at_a) = subscriber(&a, b"feed").await;
    let (_on_b, mut at_b) = subscriber(&b, b"feed").await;
    let topic = Topic::from("feed");
    for seq in 0..10 {
        a.emitter.try_emit(&topic, note(0, seq)).unwrap();
    }
    sequence(&mut at_a, 0, 0, 9).await;
    assert!(!link(&a).connected);

    nats.restart().await;
    relinked(&a, 0).await;
    relinked(&b, 0).await;
    // subscribed while NATS was away: told that events from elsewhere may be missing
    gap(&mut at_b, b"feed").await;
    for seq in 10..20 {
        a.emitter.try_emit(&topic, note(0, seq)).unwrap();
    }
    // those emitted before may come late (queued for NATS meanwhile)
    sequence_after(&mut at_b, 0, 0, 10, 19).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_a_server_could_not_forward_are_announced_as_gaps_to_the_others() {
    let Some(nats) = NatsServer::start().await else {
        return;
    };
    // the first server reaches NATS through a link of its own, cut below; the second's
    // link stays up throughout
    let own = TcpProxy::start(nats.addr()).await;
    let a = node(&format!("nats://{}", own.addr), |c| {
        c.with_forward_queue(16)
    })
    .await;
    let b = node(&nats.url(), |c| c).await;
    let (_on_b, mut at_b) = subscriber(&b, b"feed").await;
    linked(&a, 0).await;
    linked(&b, 1).await;
    let topic = Topic::from("feed");
    a.emitter.try_emit(&topic, note(0, 0)).unwrap();
    sequence(&mut at_b, 0, 0, 0).await;

    own.cut();
    eventually("the first server noticed", || !link(&a).connected).await;
    // more than NATS's client and the forward queue hold: some are dropped
    for seq in 1..=3000 {
        a.emitter.try_emit(&topic, note(0, seq)).unwrap();
    }
    assert!(link(&a).events_dropped > 0);
    own.heal();
    relinked(&a, 1).await;
    // the second server never lost NATS, yet its subscriber learns of the loss
    gap(&mut at_b, b"feed").await;
    assert_eq!(link(&b).interruptions, 0);
    a.emitter.try_emit(&topic, note(1, 0)).unwrap();
    loop {
        match next(&mut at_b).await {
            Ok(event) if event.payload.from == 1 => break,
            Ok(_) | Err(RecvError::Gap(_)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_resumed_on_another_server_is_reset_and_rejoins_the_cluster() {
    let Some(nats) = NatsServer::start().await else {
        return;
    };
    let (a, b) = (
        node(&nats.url(), |c| c).await,
        node(&nats.url(), |c| c).await,
    );
    let front = UdpProxy::start(a.addr, 7).await;
    let via = front.addr;
    let client = common::board::BoardClient::with_config(
        a.config_via(via, Transport::Quic)
            .with_trust(Trust::InsecureAcceptAny)
            .with_connect_timeout(std::time::Duration::from_secs(60)),
    );
    client.connect().await.unwrap();
    let mut events = client.subscribe().await.unwrap();
    assert!(client.join("feed".into()).await.unwrap());
    linked(&a, 1).await;

    // the path now leads to the other server: the client's connection is lost (the
    // other server knows nothing of it) and its reconnection, resuming, reaches it
    let mut status = client.watch_status();
    status
        .wait_for(|s| matches!(s, ConnectionStatus::Connected { .. }))
        .await
        .unwrap();
    front.retarget(b.addr);
    status
        .wait_for(|s| matches!(s, ConnectionStatus::Reconnecting { .. }))
        .await
        .unwrap();
    let back = status
        .wait_for(|s| matches!(s, ConnectionStatus::Connected { .. }))
        .await
        .unwrap()
        .clone();
    assert!(
        matches!(back, ConnectionStatus::Connected { resumed: false, .. }),
        "sessions live on the server that made them: {back:?}"
    );
    loop {
        match next(&mut events).await {
            Err(RecvError::SessionReset) => break,
            Err(RecvError::Gap(_)) | Ok(_) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        client.join("feed".into()).await.unwrap(),
        "joined again on the other server"
    );
    linked(&b, 1).await;
    let c = node(&nats.url(), |c| c).await;
    linked(&c, 0).await;
    c.emitter.try_emit(&"feed".into(), note(2, 0)).unwrap();
    sequence(&mut events, 2, 0, 0).await;
}
