//! Several frames in one WebSocket message (PROTOCOL.md §1 Transport and negotiation):
//! the server takes them in order, refuses a message cut inside a frame, accepts packed
//! messages up to `MAX_PACKED_MESSAGE` whatever its `max_message_size`, and sends nothing
//! larger packed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{collections::BTreeMap, time::Duration};

use common::{
    raw_ws::{close_code, handshaken, next_frame},
    TestServer,
};
use futures_util::SinkExt;
use hardlight::{
    protocol::{
        codec::{decode, encode},
        frame::{FrameHeader, Kind, HEADER_LEN, MAX_PACKED_MESSAGE},
        message::encode_frame,
        Compression,
    },
    Limits,
};
use tokio_tungstenite::tungstenite::Message;

/// Only a hang reaches this.
const SAFETY_NET: Duration = Duration::from_secs(60);

/// Method 1 of the kitchen service: `add(a, b, c)`.
const ADD: u16 = 1;
/// Method 0: `echo_bytes(data)`.
const ECHO_BYTES: u16 = 0;

fn call<A: hardlight::Codable>(method: u16, id: u64, args: &A) -> Vec<u8> {
    let header = FrameHeader::new(Kind::Call, 0).with_aux(method).with_id(id);
    encode_frame(header, &encode(args).unwrap(), Compression::None).unwrap()
}

fn cancel(id: u64) -> Vec<u8> {
    FrameHeader::new(Kind::Cancel, 0)
        .with_id(id)
        .encode()
        .to_vec()
}

/// A server whose frames are at most 1 KiB: packed messages may still be 16 KiB.
async fn server() -> TestServer {
    TestServer::start_with(|c| c.with_limits(Limits::default().with_max_message_size(1024))).await
}

#[tokio::test]
async fn calls_packed_in_one_message_are_each_answered() {
    let server = server().await;
    let mut ws = handshaken(&server).await;
    let message: Vec<u8> = (1..=40u64)
        .flat_map(|id| call(ADD, id, &(id as i64, 1i64, 1i64)))
        .collect();
    ws.send(Message::Binary(message.into())).await.unwrap();
    let mut sums = BTreeMap::new();
    while sums.len() < 40 {
        let (header, body) = next_frame(&mut ws).await;
        assert_eq!(header.kind, Kind::ReplyOk);
        sums.insert(header.id, decode::<i64>(&body).unwrap());
    }
    assert_eq!(sums, (1..=40).map(|id| (id, id as i64 + 2)).collect());
}

#[tokio::test]
async fn the_server_packs_no_more_than_max_packed_message() {
    let server = server().await;
    let mut ws = handshaken(&server).await;
    // 60 replies of ~900 bytes, queued together: more than one packed message's worth
    let message: Vec<u8> = (1..=15u64)
        .flat_map(|id| call(ECHO_BYTES, id, &(vec![id as u8; 900],)))
        .collect();
    for _ in 0..4 {
        ws.send(Message::Binary(message.clone().into()))
            .await
            .unwrap();
    }
    let mut replies = 0;
    while replies < 60 {
        let next = tokio::time::timeout(SAFETY_NET, futures_util::StreamExt::next(&mut *ws));
        let message = match next.await.expect("no message from the server") {
            Some(Ok(Message::Binary(message))) => message,
            Some(Ok(_)) => continue,
            other => panic!("the connection ended: {other:?}"),
        };
        assert!(
            message.len() <= MAX_PACKED_MESSAGE,
            "a message of {} bytes",
            message.len()
        );
        let mut rest = &message[..];
        while !rest.is_empty() {
            let (header, body, after) = FrameHeader::split_first(rest, 1024).unwrap();
            if header.kind == Kind::ReplyOk {
                assert_eq!(
                    decode::<Vec<u8>>(body).unwrap(),
                    vec![(header.id) as u8; 900]
                );
                replies += 1;
            }
            rest = after;
        }
    }
}

#[tokio::test]
async fn a_packed_message_of_exactly_max_packed_message_is_read() {
    let server = server().await;
    let mut ws = handshaken(&server).await;
    // one call, then cancellations of calls that do not exist, up to exactly 16 KiB
    let mut pad = 0;
    let first = loop {
        let first = call(ECHO_BYTES, 1, &(vec![0u8; pad],));
        if (MAX_PACKED_MESSAGE - first.len()).is_multiple_of(HEADER_LEN) {
            break first;
        }
        pad += 1;
    };
    let mut message = first;
    while message.len() < MAX_PACKED_MESSAGE {
        message.extend(cancel(1_000));
    }
    assert_eq!(message.len(), MAX_PACKED_MESSAGE);
    ws.send(Message::Binary(message.into())).await.unwrap();
    let (header, body) = next_frame(&mut ws).await;
    assert_eq!((header.kind, header.id), (Kind::ReplyOk, 1));
    assert_eq!(decode::<Vec<u8>>(&body).unwrap(), vec![0u8; pad]);
}

/// The close code a fresh connection gets for sending `message`.
async fn closed_for(message: Vec<u8>) -> Option<u16> {
    let server = server().await;
    let mut ws = handshaken(&server).await;
    let _ = ws.send(Message::Binary(message.into())).await;
    close_code(&mut ws).await
}

#[tokio::test]
async fn a_message_one_byte_above_max_packed_message_is_too_big() {
    let mut message = Vec::new();
    while message.len() < MAX_PACKED_MESSAGE {
        message.extend(cancel(1_000));
    }
    message.truncate(MAX_PACKED_MESSAGE);
    message.push(0);
    assert_eq!(closed_for(message).await, Some(1009));
}

#[tokio::test]
async fn a_message_cut_inside_its_last_frame_is_a_protocol_error() {
    let mut message = call(ADD, 1, &(1i64, 2i64, 3i64));
    let second = call(ADD, 2, &(1i64, 2i64, 3i64));
    message.extend_from_slice(&second[..second.len() - 1]);
    assert_eq!(closed_for(message).await, Some(1002));
}

#[tokio::test]
async fn an_empty_message_is_a_protocol_error() {
    assert_eq!(closed_for(Vec::new()).await, Some(1002));
}

#[tokio::test]
async fn a_frame_above_max_message_size_is_too_big_even_when_packed() {
    // the second frame's header names a body above the limit: refused before it is read
    let mut message = call(ADD, 1, &(1i64, 2i64, 3i64));
    message.extend(call(ECHO_BYTES, 2, &(vec![0u8; 2048],)));
    assert_eq!(closed_for(message).await, Some(1009));
}
