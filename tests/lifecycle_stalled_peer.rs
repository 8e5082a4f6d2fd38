//! A peer that stops reading cannot hold the server: over QUIC and over WebSocket,
//! `shutdown` returns within its deadline, and the idle timeout and the slow-consumer
//! close (of the push stream, of the QUIC call channel) still end the connection. The verdicts are what happens, never how fast: the
//! waits only have a safety net against a hang.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{
    board::{__BoardService, BoardServer},
    eventually,
    raw::{handshake, hello, hello_for, kitchen_hello, quic_connect_with},
    raw_ws::{handshaken, handshaken_to, RawWs},
    TestServer,
};
use futures_util::{SinkExt, StreamExt};
use hardlight::{
    protocol::{
        close::Close,
        codec::encode,
        frame::{FrameHeader, Kind},
        handshake::alpn,
        message::encode_frame,
        PROTOCOL_VERSION,
    },
    Compression, Limits, ServerLimits, SlowConsumerPolicy, Topic,
};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

/// Only a hang reaches this.
const SAFETY_NET: Duration = Duration::from_secs(60);

/// A `Call` frame for method `method` with id `id` and these arguments.
fn call_frame<A: hardlight::Codable>(method: u16, id: u64, args: &A) -> Vec<u8> {
    let header = FrameHeader::new(Kind::Call, 0).with_aux(method).with_id(id);
    encode_frame(header, &encode(args).unwrap(), Compression::None).unwrap()
}

/// A raw QUIC connection to `server` with the client's own transport settings.
async fn quic_peer(
    server: &TestServer,
    transport: quinn::TransportConfig,
) -> (quinn::Endpoint, quinn::Connection) {
    let protocol = alpn(PROTOCOL_VERSION);
    let (endpoint, conn) =
        quic_connect_with(server.addr, &server.certificate_pem, protocol, transport).await;
    (endpoint, conn.unwrap())
}

/// Shuts `server` down with a 100 ms deadline; panics if that does not return.
async fn shut_down_despite(server: &TestServer, peer: &str) {
    let shutdown = server.shutdown.shutdown(Duration::from_millis(100));
    if timeout(SAFETY_NET, shutdown).await.is_err() {
        panic!("shutdown waited for {peer}");
    }
}

#[tokio::test]
async fn quic_a_peer_that_allows_no_push_stream_does_not_hold_up_shutdown() {
    let server = TestServer::start().await;
    // the server can never open its push stream to this peer
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_uni_streams(0u32.into());
    let (_endpoint, conn) = quic_peer(&server, transport).await;
    let (header, _) = hello(&conn, &kitchen_hello(vec![])).await;
    assert_eq!(header.kind, Kind::Welcome);
    shut_down_despite(&server, "a peer that allows no push stream").await;
}

#[tokio::test]
async fn quic_a_peer_with_a_closed_receive_window_does_not_hold_up_shutdown() {
    let server = TestServer::start().await;
    // nothing the server writes on a stream can reach this peer beyond a few bytes
    let mut transport = quinn::TransportConfig::default();
    transport
        .stream_receive_window(64u32.into())
        .receive_window(64u32.into());
    let (_endpoint, conn) = quic_peer(&server, transport).await;
    // the `Welcome` does not fit in the window: the server's answer stalls
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    let hello = encode_frame(
        FrameHeader::new(Kind::Hello, 0),
        &encode(&kitchen_hello(vec![])).unwrap(),
        Compression::None,
    )
    .unwrap();
    send.write_all(&hello).await.unwrap();
    send.finish().unwrap();
    eventually("the connection admitted", || {
        server.stats.snapshot().connections_open == 1
    })
    .await;
    shut_down_despite(&server, "a peer whose window is closed").await;
}

/// Fills the server's writer towards `ws` with replies it never reads: 50 MiB of echoes,
/// more than the sockets' buffers and the writer's queue hold, so that they all back up.
async fn back_up_the_writer(ws: &mut RawWs) {
    let payload = vec![7u8; 256 * 1024];
    for id in 1..=200 {
        // method 0: `echo_bytes`
        ws.send(Message::Binary(
            call_frame(0, id, &(payload.clone(),)).into(),
        ))
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn quic_a_peer_that_stops_reading_its_call_channel_is_closed_as_a_slow_consumer() {
    let server = TestServer::start_with(|c| {
        c.with_limits(Limits::default().with_send_timeout(Duration::from_millis(500)))
    })
    .await;
    let mut transport = quinn::TransportConfig::default();
    transport.stream_receive_window((64u32 * 1024).into());
    let (_endpoint, conn) = quic_peer(&server, transport).await;
    let (mut channel, (header, _)) = handshake(&conn, &kitchen_hello(vec![])).await;
    assert_eq!(header.kind, Kind::Welcome);
    // 1 MiB of replies for a peer that takes 64 KiB of them and reads nothing
    for id in 1..=128 {
        let call = call_frame(0, id, &(vec![7u8; 8 * 1024],));
        channel.send.write_all(&call).await.unwrap();
    }
    let closed = timeout(SAFETY_NET, conn.closed()).await.unwrap();
    match closed {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(
                close.error_code.into_inner(),
                u64::from(Close::SlowConsumer.quic_code())
            );
        }
        other => panic!("expected a slow-consumer close, got {other}"),
    }
}

#[tokio::test]
async fn websocket_a_peer_that_stops_reading_does_not_hold_up_shutdown() {
    let server = TestServer::start().await;
    let mut ws = handshaken(&server).await;
    back_up_the_writer(&mut ws).await;
    // once shutdown starts, every new call is refused: the refusals cannot be written
    // either, and must not keep the server from its deadline
    server.shutdown.signal(Duration::from_millis(100));
    for id in 1000..1010 {
        let _ = ws
            .send(Message::Binary(
                call_frame(1, id, &(1i64, 2i64, 3i64)).into(),
            ))
            .await;
    }
    shut_down_despite(&server, "a peer that stopped reading").await;
}

#[tokio::test]
async fn websocket_a_peer_that_stops_reading_and_falls_silent_is_closed_by_the_idle_timeout() {
    let server = TestServer::start_with(|c| {
        c.with_limits(Limits::default().with_idle_timeout(Duration::from_secs(2)))
            .with_server_limits(ServerLimits::default().with_resume_grace(Duration::ZERO))
    })
    .await;
    let mut ws = handshaken(&server).await;
    back_up_the_writer(&mut ws).await;
    eventually("the silent peer closed", || {
        server.stats.snapshot().connections_open == 0
    })
    .await;
    drop(ws);
}

#[tokio::test]
async fn websocket_a_peer_that_stops_reading_is_closed_as_a_slow_consumer() {
    let server = BoardServer::start(|c| {
        c.with_slow_consumer_policy(SlowConsumerPolicy::Disconnect)
            .with_compression(Compression::None)
            .with_server_limits(
                ServerLimits::default()
                    .with_max_queued_events(16)
                    .with_resume_grace(Duration::ZERO),
            )
    })
    .await;
    let hello = hello_for::<__BoardService>(vec![]);
    let mut ws = handshaken_to(server.addr, &server.certificate_pem, &hello).await;
    // method 0: `join`
    ws.send(Message::Binary(
        call_frame(0, 1, &("news".to_owned(),)).into(),
    ))
    .await
    .unwrap();
    loop {
        let message = timeout(SAFETY_NET, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Binary(data) = message {
            if data[4] == Kind::ReplyOk as u8 {
                break;
            }
        }
    }
    // from now on the peer reads nothing: events back up beyond the sockets' buffers and
    // the queue overflows
    let topic = Topic::from("news");
    for seq in 0..1024 {
        let text = "x".repeat(64 * 1024);
        let note = common::board::Note { from: 0, seq, text };
        server.emitter.emit(&topic, note).await;
        if server.stats.snapshot().connections_open == 0 {
            break;
        }
    }
    eventually("the slow consumer closed", || {
        server.stats.snapshot().connections_open == 0
    })
    .await;
    drop(ws);
}
