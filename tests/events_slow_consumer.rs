//! A client that stops reading its push stream: bounded queue, losses reported or the
//! client disconnected, and every other subscriber still gets every event.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{
    board::{__BoardService, note, BoardClient, BoardServer, Note},
    raw::{hello_for, RawPeer},
};
use hardlight::{
    protocol::{
        codec::{decode, encode},
        frame::{FrameHeader, Kind},
        io::read_frame,
        message::encode_frame,
    },
    Compression, ServerLimits, SlowConsumerPolicy, Subscription, Topic,
};

const QUEUE: usize = 16;
const BATCH: u64 = 8;
const EVENTS: u64 = 600;

async fn server(policy: SlowConsumerPolicy) -> BoardServer {
    BoardServer::start(|c| {
        c.with_compression(Compression::None)
            .with_slow_consumer_policy(policy)
            .with_server_limits(ServerLimits::default().with_max_queued_events(QUEUE))
    })
    .await
}

/// A raw peer subscribed to `topic` that never reads its push stream.
async fn stalled_peer(server: &BoardServer, topic: &str) -> RawPeer {
    let hello = hello_for::<__BoardService>(vec![]);
    let peer = RawPeer::connect_to(server.addr, &server.certificate_pem, &hello).await;
    let join = FrameHeader::new(Kind::Call, 0).with_aux(0);
    let args = encode(&(topic.to_owned(),)).unwrap();
    let (header, _) = peer
        .exchange(&encode_frame(join, &args, Compression::None).unwrap())
        .await;
    assert_eq!(header.kind, Kind::ReplyOk);
    peer
}

/// 4 KiB of text that does not compress.
fn bulky(seq: u64) -> Note {
    let text = (0..4096)
        .map(|_| char::from(b'a' + rand::random::<u8>() % 26))
        .collect();
    Note {
        text,
        ..note(0, seq)
    }
}

/// Emits in batches no larger than the queue, waiting after each until every healthy
/// subscriber has it: the healthy ones are never slow, the stalled one always is.
async fn emit_all(server: &BoardServer, healthy: &mut [(BoardClient, Subscription<Note>)]) {
    let topic = Topic::from("news");
    for start in (0..EVENTS).step_by(BATCH as usize) {
        for seq in start..start + BATCH {
            server.emitter.emit(&topic, bulky(seq)).await;
        }
        for (_, events) in healthy.iter_mut() {
            for seq in start..start + BATCH {
                let event = tokio::time::timeout(Duration::from_secs(30), events.recv())
                    .await
                    .expect("healthy subscriber starved")
                    .expect("healthy subscriber lost an event");
                assert_eq!(event.payload.seq, seq);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_bounds_the_queue_and_reports_every_loss() {
    let server = server(SlowConsumerPolicy::DropOldest).await;
    let mut healthy = vec![
        server.subscriber("news").await,
        server.subscriber("news").await,
    ];
    let stalled = stalled_peer(&server, "news").await;
    emit_all(&server, &mut healthy).await;

    // now the stalled peer reads everything it was sent
    let mut push = stalled.conn.accept_uni().await.unwrap();
    let (mut received, mut lost, mut last_seq) = (0u64, 0u64, None);
    while received + lost < EVENTS {
        let (header, body) =
            tokio::time::timeout(Duration::from_secs(60), read_frame(&mut push, 1 << 24))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "push stream stalled at received={received} lost={lost} last={last_seq:?}"
                    )
                })
                .unwrap();
        match header.kind {
            Kind::Event => {
                let (_, note) = decode::<(Topic, Note)>(&body).unwrap();
                assert!(last_seq < Some(note.seq), "events stay in order");
                last_seq = Some(note.seq);
                received += 1;
            }
            Kind::Lagged => lost += header.id,
            Kind::State => {} // the join's state change
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        received + lost,
        EVENTS,
        "every event delivered or reported lost"
    );
    assert!(lost > 0, "the stalled peer overflowed its queue");
    assert_eq!(
        last_seq,
        Some(EVENTS - 1),
        "the newest events are the ones kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disconnect_policy_closes_only_the_slow_client() {
    let server = server(SlowConsumerPolicy::Disconnect).await;
    let mut healthy = vec![
        server.subscriber("news").await,
        server.subscriber("news").await,
    ];
    let stalled = stalled_peer(&server, "news").await;
    emit_all(&server, &mut healthy).await;
    let reason = tokio::time::timeout(Duration::from_secs(30), stalled.conn.closed())
        .await
        .expect("the slow client was not disconnected");
    match reason {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(
                close.error_code,
                quinn::VarInt::from_u32(
                    hardlight::protocol::close::Close::SlowConsumer.quic_code()
                )
            )
        }
        other => panic!("unexpected close: {other:?}"),
    }
    for (client, _) in &healthy {
        assert!(client.is_connected());
    }
}
