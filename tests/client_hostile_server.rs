//! The client against a server that breaks its promises: a reply announcing a state
//! version that never comes fails the call with `FrameTimeout` after
//! `Limits::frame_read_timeout`, even with no call timeout set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::KitchenClient;
use futures_util::{SinkExt, StreamExt};
use hardlight::{
    protocol::{
        codec::encode,
        frame::{FrameHeader, Kind},
        handshake::Welcome,
        memory::InMemory,
        message::encode_frame,
        state::StateBatch,
        Compression, ProtocolError,
    },
    ClientConfig, Limits, RpcError,
};
use tokio_tungstenite::{
    tungstenite::{protocol::Role, Message},
    WebSocketStream,
};

const LIMIT: Duration = Duration::from_millis(200);

fn frame(header: FrameHeader, body: &[u8]) -> Message {
    Message::Binary(
        encode_frame(header, body, Compression::None)
            .unwrap()
            .into(),
    )
}

#[tokio::test]
async fn a_reply_whose_state_never_comes_fails_the_call_in_time() {
    let (way_in, incoming) = InMemory::pair();
    // the hostile server: a proper Welcome, then a reply claiming state version 1,000
    tokio::spawn(async move {
        let stream = incoming.accept().await.unwrap();
        let mut ws = WebSocketStream::from_raw_socket(stream, Role::Server, None).await;
        let _hello = ws.next().await.unwrap().unwrap();
        let welcome = Welcome {
            session_id: [7; 16],
            compression: 0,
            max_message_size: 1 << 20,
            max_concurrent_calls: 8,
            state: StateBatch::default(),
            state_version: 0,
            resumed: false,
        };
        let welcome = encode(&welcome).unwrap();
        ws.send(frame(FrameHeader::new(Kind::Welcome, 0), &welcome))
            .await
            .unwrap();
        while let Some(Ok(Message::Binary(call))) = ws.next().await {
            let (header, _) = FrameHeader::split(&call, 1 << 20).unwrap();
            let reply = FrameHeader::new(Kind::ReplyOk, 0)
                .with_id(header.id)
                .with_seq(1_000);
            ws.send(frame(reply, &encode(&6i64).unwrap()))
                .await
                .unwrap();
        }
    });
    let client = KitchenClient::with_config(
        ClientConfig::in_memory(way_in)
            .with_limits(Limits::default().with_frame_read_timeout(LIMIT))
            .with_reconnect(None),
    );
    client.connect().await.unwrap();
    match client.add(1, 2, 3).await {
        Err(RpcError::Protocol(ProtocolError::FrameTimeout { limit })) => assert_eq!(limit, LIMIT),
        other => panic!("expected FrameTimeout, got {other:?}"),
    }
}
