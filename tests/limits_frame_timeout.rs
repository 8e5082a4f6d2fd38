//! `Limits::frame_read_timeout`: a peer that announces a frame and stops sending it holds
//! its call slot and bytes only until the deadline — on a QUIC stream of its own that call
//! fails with `FrameTimeout` and the connection serves on; on the QUIC call channel and
//! over WebSocket the connection closes with `SlowSender`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{
    raw::RawPeer,
    raw_ws::{close_code, handshaken},
    TestServer,
};
use hardlight::{
    protocol::{
        close::Close,
        frame::{FrameHeader, Kind},
        io::read_frame,
        ErrorCode,
    },
    Limits, ServerLimits,
};
use tokio::io::AsyncWriteExt;

const LIMIT: Duration = Duration::from_millis(200);

/// One call slot per connection, so a call that kept its slot would refuse the next.
async fn server() -> TestServer {
    TestServer::start_with(|c| {
        c.with_limits(Limits::default().with_frame_read_timeout(LIMIT))
            .with_server_limits(ServerLimits::default().with_max_concurrent_calls(1))
    })
    .await
}

/// A `Call` header announcing 1,000 body bytes, and the first 10 of them.
fn half_a_call() -> Vec<u8> {
    let mut bytes = FrameHeader::new(Kind::Call, 1_000)
        .with_aux(u16::MAX)
        .with_id(1)
        .encode()
        .to_vec();
    bytes.extend_from_slice(&[0; 10]);
    bytes
}

/// A whole call of a method the service does not have: served at once with
/// `UnknownMethod`, so it shows that the connection has a free call slot.
fn unknown_method_call() -> Vec<u8> {
    FrameHeader::new(Kind::Call, 0)
        .with_aux(u16::MAX)
        .with_id(2)
        .encode()
        .to_vec()
}

#[tokio::test]
async fn quic_a_stalled_call_frame_fails_that_call_and_frees_its_slot() {
    let server = server().await;
    let peer = RawPeer::connect(&server).await;
    let (mut send, mut recv) = peer.conn.open_bi().await.unwrap();
    send.write_all(&half_a_call()).await.unwrap();
    // the stream stays open and silent
    let (header, _) = read_frame(&mut recv, 1 << 20).await.unwrap();
    assert_eq!(header.kind, Kind::ReplyFailure);
    assert_eq!(ErrorCode::from_u16(header.aux), ErrorCode::FrameTimeout);
    // the server stopped reading the stream (STOP_SENDING); resetting it, as a client
    // does with a failed call, closes the stream and gives the stream window its slot back
    let _ = send.reset(0u32.into());
    let (code, message) = peer.expect_failure(&unknown_method_call()).await;
    assert_eq!(code, ErrorCode::UnknownMethod, "{message}");
}

#[tokio::test]
async fn quic_a_stalled_frame_on_the_call_channel_closes_the_connection_with_slow_sender() {
    let server = server().await;
    // the channel carries other calls' frames: it cannot skip a stalled one
    let (peer, mut channel) = RawPeer::connect_with_channel(&server).await;
    channel.send.write_all(&half_a_call()).await.unwrap();
    let (code, reason) = peer.closed().await;
    assert_eq!(code, u64::from(Close::SlowSender.quic_code()));
    assert!(reason.contains("frame_read_timeout"), "{reason}");
}

#[tokio::test]
async fn websocket_a_stalled_message_closes_the_connection_with_slow_sender() {
    let server = server().await;
    let mut ws = handshaken(&server).await;
    // a masked binary frame announcing 1,000 payload bytes, and 10 of them
    let mut frame = vec![0x82, 0x80 | 126, 0x03, 0xe8, 1, 2, 3, 4];
    frame.extend_from_slice(&[0; 10]);
    let tls = ws.get_mut();
    tls.write_all(&frame).await.unwrap();
    tls.flush().await.unwrap();
    assert_eq!(
        close_code(&mut ws).await,
        Some(Close::SlowSender.websocket_code())
    );
}
