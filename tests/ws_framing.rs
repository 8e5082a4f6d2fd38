//! The server's WebSocket framing against RFC 6455: what breaks its rules closes the
//! connection with `1002`, a message above the limit is refused at its first header, and a
//! message may come in fragments with control frames between them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{
    raw_ws::{close_code, handshaken, next_frame, RawWs},
    TestServer,
};
use futures_util::{SinkExt, StreamExt};
use hardlight::{
    protocol::{
        codec::{decode, encode},
        frame::{FrameHeader, Kind},
        message::encode_frame,
        websocket::{self, header, Opcode},
        Compression,
    },
    Limits,
};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::{
    protocol::{frame::coding::CloseCode, CloseFrame},
    Message,
};

/// Only a hang reaches this.
const SAFETY_NET: Duration = Duration::from_secs(60);

const KEY: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

async fn server() -> TestServer {
    TestServer::start_with(|c| c.with_limits(Limits::default().with_max_message_size(64 * 1024)))
        .await
}

/// A client's frame with `first` as its first byte (FIN, reserved bits and opcode).
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    websocket::frame(&mut out, Opcode::Binary, payload, Some(KEY));
    out[0] = first;
    out
}

/// Writes `bytes` under the WebSocket, as they are.
async fn write_raw(ws: &mut RawWs, bytes: &[u8]) {
    let stream = ws.get_mut();
    stream.write_all(bytes).await.unwrap();
    stream.flush().await.unwrap();
}

/// A call of the test service's `add(1, 2, 3)`, as one HardLight frame.
fn add_call(id: u64) -> Vec<u8> {
    let call = FrameHeader::new(Kind::Call, 0).with_aux(1).with_id(id);
    encode_frame(
        call,
        &encode(&(1i64, 2i64, 3i64)).unwrap(),
        Compression::None,
    )
    .unwrap()
}

#[tokio::test]
async fn frames_that_break_the_rules_close_with_protocol_error() {
    let server = server().await;
    let mut unmasked = Vec::new();
    header(&mut unmasked, Opcode::Binary, 1, None);
    unmasked.push(0);
    let cases = [
        ("unmasked", unmasked),
        ("reserved bit", frame(0xC2, b"x")),
        ("reserved opcode", frame(0x83, b"x")),
        ("fragmented ping", frame(0x09, b"")),
        ("ping above 125 bytes", frame(0x89, &[0; 126])),
        ("continuation with no message", frame(0x80, b"x")),
        (
            "close code no peer sends",
            frame(0x88, &1005u16.to_be_bytes()),
        ),
    ];
    for (case, bytes) in cases {
        let mut ws = handshaken(&server).await;
        write_raw(&mut ws, &bytes).await;
        let code = tokio::time::timeout(SAFETY_NET, close_code(&mut ws)).await;
        assert_eq!(code.unwrap(), Some(1002), "{case}");
    }
    // the server serves on
    let mut ws = handshaken(&server).await;
    ws.send(Message::Binary(add_call(1).into())).await.unwrap();
    loop {
        let (header, body) = tokio::time::timeout(SAFETY_NET, next_frame(&mut ws))
            .await
            .unwrap();
        if header.kind == Kind::ReplyOk {
            assert_eq!((header.id, decode::<i64>(&body).unwrap()), (1, 6));
            break;
        }
    }
}

#[tokio::test]
async fn a_message_above_the_limit_is_refused_at_its_header() {
    let server = server().await;
    let mut ws = handshaken(&server).await;
    // the header of a 1 GiB message, and nothing of its payload
    let mut head = Vec::new();
    header(&mut head, Opcode::Binary, 1 << 30, Some(KEY));
    write_raw(&mut ws, &head).await;
    let code = tokio::time::timeout(SAFETY_NET, close_code(&mut ws)).await;
    assert_eq!(code.unwrap(), Some(1009));
}

#[tokio::test]
async fn a_call_in_fragments_with_a_ping_between_is_served_and_the_ping_answered() {
    let server = server().await;
    let mut ws = handshaken(&server).await;
    let call = add_call(7);
    let (first, rest) = call.split_at(5);
    let (middle, last) = rest.split_at(rest.len() / 2);
    let wire = [
        frame(0x02, first),
        frame(0x89, b"are you there"),
        frame(0x00, middle),
        frame(0x80, last),
    ]
    .concat();
    write_raw(&mut ws, &wire).await;
    let (mut pong, mut reply) = (None, None);
    while pong.is_none() || reply.is_none() {
        match tokio::time::timeout(SAFETY_NET, ws.next()).await.unwrap() {
            Some(Ok(Message::Pong(payload))) => pong = Some(payload.to_vec()),
            Some(Ok(Message::Binary(bytes))) => {
                // a message holds one or more frames
                let mut rest = &bytes[..];
                while !rest.is_empty() {
                    let (header, body, after) = FrameHeader::split_first(rest, u32::MAX).unwrap();
                    if header.kind == Kind::ReplyOk {
                        reply = Some((header.id, decode::<i64>(body).unwrap()));
                    }
                    rest = after;
                }
            }
            Some(Ok(_)) => {}
            other => panic!("expected a pong and a reply, got {other:?}"),
        }
    }
    assert_eq!(pong.unwrap(), b"are you there");
    assert_eq!(reply.unwrap(), (7, 6));
}

#[tokio::test]
async fn a_close_is_answered_with_a_close() {
    let server = server().await;
    let mut ws = handshaken(&server).await;
    let close = CloseFrame {
        code: CloseCode::Normal,
        reason: "done".into(),
    };
    ws.send(Message::Close(Some(close))).await.unwrap();
    let code = tokio::time::timeout(SAFETY_NET, close_code(&mut ws)).await;
    assert_eq!(code.unwrap(), Some(1000));
}
