//! The QUIC call channel (`docs/PROTOCOL.md`, §1 Transport and negotiation): after the
//! `Welcome` the handshake stream carries calls multiplexed by id, beside calls on streams
//! of their own; what a peer may not do on it closes the connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;

use common::{
    eventually,
    raw::{exchange_on, RawPeer},
    KitchenClient, TestServer, Via,
};
use hardlight::{
    protocol::{
        close::Close,
        codec::{decode, encode},
        frame::{FrameHeader, Kind},
        message::encode_frame,
        ErrorCode,
    },
    Compression, Limits, ServerLimits,
};

/// Method indices of the `Kitchen` test service.
const ADD: u16 = 1;
const SLEEP: u16 = 10;

/// A `Call` frame for method `method` with id `id` and these arguments.
fn call_frame<A: hardlight::Codable>(method: u16, id: u64, args: &A) -> Vec<u8> {
    let header = FrameHeader::new(Kind::Call, 0).with_aux(method).with_id(id);
    encode_frame(header, &encode(args).unwrap(), Compression::None).unwrap()
}

#[tokio::test]
async fn calls_on_the_channel_are_answered_by_id() {
    let server = TestServer::start().await;
    let (peer, mut channel) = RawPeer::connect_with_channel(&server).await;
    // three calls in one write, while a fourth is on a stream of its own
    let mut calls = Vec::new();
    for id in [7u64, 8, 9] {
        calls.extend(call_frame(ADD, id, &(id as i64, 1i64, 0i64)));
    }
    channel.send.write_all(&calls).await.unwrap();
    let (header, body) = peer
        .exchange(&call_frame(ADD, 1, &(40i64, 2i64, 0i64)))
        .await;
    assert_eq!(header.kind, Kind::ReplyOk);
    assert_eq!(decode::<i64>(&body).unwrap(), 42);
    let mut answers = HashMap::new();
    for _ in 0..3 {
        let (header, body) = channel.read().await;
        assert_eq!(header.kind, Kind::ReplyOk);
        answers.insert(header.id, decode::<i64>(&body).unwrap());
    }
    assert_eq!(answers, HashMap::from([(7, 8), (8, 9), (9, 10)]));
}

#[tokio::test]
async fn calls_on_the_channel_and_on_streams_share_max_concurrent_calls_and_cancel_by_id() {
    let server = TestServer::start_with(|c| {
        c.with_server_limits(ServerLimits::default().with_max_concurrent_calls(1))
    })
    .await;
    let (peer, mut channel) = RawPeer::connect_with_channel(&server).await;
    let sleeping = call_frame(SLEEP, 5, &(600_000u64,));
    channel.send.write_all(&sleeping).await.unwrap();
    eventually("the call running", || {
        server.stats.snapshot().traffic.calls_in_flight == 1
    })
    .await;
    // the one slot is taken: a call on its own stream is refused
    let (code, message) = peer
        .expect_failure(&call_frame(ADD, 1, &(1i64, 2i64, 3i64)))
        .await;
    assert_eq!(code, ErrorCode::Overloaded, "{message}");
    assert!(message.contains("max_concurrent_calls"), "{message}");
    // `Cancel` on the channel drops the handler and frees the slot
    let cancel = FrameHeader::new(Kind::Cancel, 0).with_id(5).encode();
    channel.send.write_all(&cancel).await.unwrap();
    eventually("the call cancelled", || {
        server.stats.snapshot().traffic.calls_in_flight == 0
    })
    .await;
    let (header, body) = peer
        .exchange(&call_frame(ADD, 2, &(1i64, 2i64, 3i64)))
        .await;
    assert_eq!(header.kind, Kind::ReplyOk);
    assert_eq!(decode::<i64>(&body).unwrap(), 6);
}

#[tokio::test]
async fn calls_on_streams_of_their_own_past_max_call_streams_wait_for_a_stream() {
    use futures_util::FutureExt;
    let server = TestServer::start_with(|c| {
        c.with_server_limits(ServerLimits::default().with_max_call_streams(2))
    })
    .await;
    let peer = RawPeer::connect(&server).await;
    // the handshake stream (the channel) took one of the three the server allows
    let mut open = Vec::new();
    for _ in 0..2 {
        open.push(
            peer.conn
                .open_bi()
                .now_or_never()
                .expect("a stream")
                .unwrap(),
        );
    }
    assert!(
        peer.conn.open_bi().now_or_never().is_none(),
        "a third call stream is beyond max_call_streams"
    );
    // a call finished on one of them gives its stream back
    let add = call_frame(ADD, 1, &(1i64, 2i64, 3i64));
    let (header, _) = exchange_on(open.pop().unwrap(), &add).await;
    assert_eq!(header.kind, Kind::ReplyOk);
    let (header, _) = exchange_on(peer.conn.open_bi().await.unwrap(), &add).await;
    assert_eq!(header.kind, Kind::ReplyOk);
}

#[tokio::test]
async fn an_oversized_frame_on_the_channel_closes_the_connection() {
    let server =
        TestServer::start_with(|c| c.with_limits(Limits::default().with_max_message_size(1024)))
            .await;
    let (peer, mut channel) = RawPeer::connect_with_channel(&server).await;
    // the header alone: the server cannot skip a body on an ordered channel
    let header = FrameHeader::new(Kind::Call, 1025).with_id(1).encode();
    channel.send.write_all(&header).await.unwrap();
    let (code, reason) = peer.closed().await;
    assert_eq!(code, u64::from(Close::TooBig.quic_code()));
    assert!(reason.contains("1025"), "{reason}");
}

#[tokio::test]
async fn a_frame_a_client_may_not_send_on_the_channel_closes_the_connection() {
    let server = TestServer::start().await;
    let (peer, mut channel) = RawPeer::connect_with_channel(&server).await;
    let hello_again = FrameHeader::new(Kind::Hello, 0).encode();
    channel.send.write_all(&hello_again).await.unwrap();
    let (code, reason) = peer.closed().await;
    assert_eq!(code, u64::from(Close::Protocol.quic_code()));
    assert!(reason.contains("Hello"), "{reason}");
}

#[tokio::test]
async fn the_client_sends_small_calls_on_the_channel_and_large_ones_on_streams() {
    let server = TestServer::start().await;
    for stream_per_call in [false, true] {
        let client = KitchenClient::with_config(
            server
                .config_for(Via::Quic)
                .with_stream_per_call(stream_per_call),
        );
        client.connect().await.unwrap();
        // below and above the 16 KiB a call may have on the channel, concurrently
        let small = vec![1u8; 100];
        let large = vec![2u8; 64 * 1024];
        let (a, b, c) = tokio::join!(
            client.echo_bytes(small.clone()),
            client.echo_bytes(large.clone()),
            client.add(1, 2, 3),
        );
        assert_eq!(a.unwrap(), small, "stream_per_call {stream_per_call}");
        assert_eq!(b.unwrap(), large, "stream_per_call {stream_per_call}");
        assert_eq!(c.unwrap(), 6, "stream_per_call {stream_per_call}");
        client.disconnect().await;
    }
}
