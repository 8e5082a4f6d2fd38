//! Bad input over WebSocket gets a clear close code or is cut off by a timeout; the server
//! never panics and keeps serving a well-behaved client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{
    raw_ws::{close_code, handshaken, next_frame, tls, upgrade},
    TestServer,
};
use futures_util::SinkExt;
use hardlight::{
    protocol::{
        codec::{decode, encode},
        frame::{FrameHeader, Kind},
        message::encode_frame,
        Compression, ErrorCode,
    },
    Limits, ServerLimits, Transport,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

/// Only a hang reaches this.
const SAFETY_NET: Duration = Duration::from_secs(60);

async fn server() -> TestServer {
    TestServer::start_with(|c| c.with_limits(Limits::default().with_max_message_size(64 * 1024)))
        .await
}

#[tokio::test]
async fn text_messages_are_refused_with_unsupported_data() {
    let server = server().await;
    let mut ws = handshaken(&server).await;
    ws.send(Message::Text("hello?".into())).await.unwrap();
    assert_eq!(close_code(&mut ws).await, Some(1003));
}

#[tokio::test]
async fn oversized_messages_are_refused_with_too_big() {
    let server = server().await;
    let mut ws = handshaken(&server).await;
    let _ = ws.send(Message::Binary(vec![0u8; 200 * 1024].into())).await;
    assert_eq!(close_code(&mut ws).await, Some(1009));
}

#[tokio::test]
async fn garbage_bytes_are_a_protocol_error() {
    let server = server().await;
    let mut ws = handshaken(&server).await;
    ws.send(Message::Binary(vec![0xde, 0xad, 0xbe, 0xef].into()))
        .await
        .unwrap();
    assert_eq!(close_code(&mut ws).await, Some(1002));
}

#[tokio::test]
async fn bad_calls_get_typed_replies_and_the_connection_lives_on() {
    let server = server().await;
    let mut ws = handshaken(&server).await;
    // unknown method, then invalid arguments: each a failure reply for its call id
    for (id, method, body) in [(7u64, 999u16, vec![]), (8, 1, vec![0xff; 9])] {
        let call = FrameHeader::new(Kind::Call, 0).with_aux(method).with_id(id);
        ws.send(Message::Binary(
            encode_frame(call, &body, Compression::None).unwrap().into(),
        ))
        .await
        .unwrap();
    }
    let mut codes = Vec::new();
    while codes.len() < 2 {
        let (header, body) = next_frame(&mut ws).await;
        if header.kind == Kind::ReplyFailure {
            decode::<String>(&body).unwrap();
            codes.push((header.id, ErrorCode::from_u16(header.aux)));
        }
    }
    codes.sort_by_key(|(id, _)| *id);
    assert_eq!(
        codes,
        vec![
            (7, ErrorCode::UnknownMethod),
            (8, ErrorCode::InvalidPayload)
        ]
    );
    // a valid call still works on the same connection
    let call = FrameHeader::new(Kind::Call, 0).with_aux(1).with_id(9);
    let args = encode(&(1i64, 2i64, 3i64)).unwrap();
    ws.send(Message::Binary(
        encode_frame(call, &args, Compression::None).unwrap().into(),
    ))
    .await
    .unwrap();
    loop {
        let (header, body) = next_frame(&mut ws).await;
        if header.kind == Kind::ReplyOk {
            assert_eq!((header.id, decode::<i64>(&body).unwrap()), (9, 6));
            break;
        }
    }
}

#[tokio::test]
async fn a_binary_hello_is_required() {
    let server = server().await;
    let mut ws = upgrade(&server, "hardlight.8").await.unwrap();
    ws.send(Message::Text("hi".into())).await.unwrap();
    assert_eq!(close_code(&mut ws).await, Some(1008));
}

#[tokio::test]
async fn another_subprotocol_is_refused_at_the_upgrade() {
    let server = server().await;
    match upgrade(&server, "hardlight.9").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400)
        }
        other => panic!("expected HTTP 400, got {:?}", other.map(|_| ())),
    }
}

/// Writes an upgrade request that never ends, a byte at a time with a pause after each,
/// until the server hangs up.
async fn trickle(server: &TestServer, pause: Duration) {
    let mut stream = tls(server).await;
    let start = b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nX-Padding: ";
    for byte in start.iter().chain(std::iter::repeat(&b'a')) {
        if stream.write_all(&[*byte]).await.is_err() || stream.flush().await.is_err() {
            return;
        }
        tokio::time::sleep(pause).await;
        // the server closing shows up as end of stream
        let mut probe = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(1), stream.read(&mut probe)).await
        {
            return;
        }
    }
}

#[tokio::test]
async fn a_trickled_upgrade_is_cut_off_by_the_handshake_timeout() {
    // at 20 bytes a second the 16 KiB upgrade limit would take 800 s: only the handshake
    // timeout ends this
    let server = TestServer::start_with(|c| {
        c.with_server_limits(ServerLimits::default().with_handshake_timeout(Duration::from_secs(2)))
    })
    .await;
    tokio::time::timeout(SAFETY_NET, trickle(&server, Duration::from_millis(50)))
        .await
        .expect("the server kept waiting for a trickled upgrade");
    // and it still serves a well-behaved client
    let client = server.client_over(Transport::WebSocket).await;
    assert_eq!(client.add(1, 2, 3).await.unwrap(), 6);
}

#[tokio::test]
async fn an_oversized_upgrade_request_is_cut_off() {
    let server = server().await;
    let mut stream = tls(&server).await;
    let mut request = b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Padding: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', 64 * 1024));
    let _ = stream.write_all(&request).await;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(SAFETY_NET, stream.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the server did not hang up");
    assert!(rest.is_empty() || !rest.starts_with(b"HTTP/1.1 101"));
}

#[tokio::test]
async fn a_large_message_before_the_handshake_is_refused() {
    // the session would accept 64 KiB messages, but before the handshake only a Hello's
    // worth (64 KiB plus framing) is read: an unauthenticated peer cannot make it buffer more
    let server =
        TestServer::start_with(|c| c.with_limits(Limits::default().with_max_message_size(1 << 20)))
            .await;
    let mut ws = upgrade(&server, "hardlight.8").await.unwrap();
    let _ = ws.send(Message::Binary(vec![0u8; 512 * 1024].into())).await;
    let ended = tokio::time::timeout(SAFETY_NET, close_code(&mut ws)).await;
    // cut off mid-message (no close frame), not read whole and then rejected (1008)
    assert_eq!(
        ended.ok(),
        Some(None),
        "the server read a huge pre-handshake message"
    );
    let client = server.client_over(Transport::WebSocket).await;
    assert_eq!(client.add(1, 2, 3).await.unwrap(), 6);
}
