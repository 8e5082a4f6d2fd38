//! Deadlines and call context on the wire: the server drops a handler at its call's
//! deadline, a handler reads its remaining time and its caller's context, and a call a
//! handler makes inherits both (the trace across servers' spans: `call_trace_spans`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{
    raw::hello_for,
    raw_ws::{call_message, handshaken_to, next_frame, RawWs},
    relay::{__RelayService, Node, Seen, TRANSPORTS},
};
use futures_util::SinkExt;
use hardlight::{
    protocol::{
        codec::{decode, encode},
        context::{budget_to_seq, MAX_CONTEXT_LEN},
        frame::{Kind, FLAG_CONTEXT},
    },
    *,
};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_handler_past_its_deadline_is_dropped_and_the_caller_gets_deadline_exceeded() {
    for transport in TRANSPORTS {
        let node = Node::start();
        let client = node.client(transport).await;
        let budget = Duration::from_millis(200);
        match client.with_call_timeout(Some(budget)).hold().await {
            Err(RpcError::DeadlineExceeded(limit)) => assert_eq!(limit, budget),
            other => panic!("{transport:?}: expected DeadlineExceeded, got {other:?}"),
        }
        common::eventually("the handler dropped", || node.dropped() == 1).await;
        assert!(client.seen().await.is_ok(), "{transport:?}: serves on");
    }
}

async fn raw_peer(node: &Node) -> RawWs {
    handshaken_to(
        node.running.addr,
        &node.running.certificate_pem,
        &hello_for::<__RelayService>(vec![]),
    )
    .await
}

fn call_frame(method: u16, id: u64, budget: Option<Duration>, body: &[u8], flags: u8) -> Message {
    call_message(method, id, budget_to_seq(budget), flags, body)
}

const HOLD: u16 = 0;
const SEEN: u16 = 1;

/// A peer that sends a budget and never cancels: the server ends the call by itself.
#[tokio::test]
async fn the_server_keeps_the_deadline_without_the_client() {
    let node = Node::start();
    let mut ws = raw_peer(&node).await;
    let args = encode(&()).unwrap();
    ws.send(call_frame(
        HOLD,
        1,
        Some(Duration::from_millis(100)),
        &args,
        0,
    ))
    .await
    .unwrap();
    let (header, body) = next_frame(&mut ws).await;
    assert_eq!((header.kind, header.id), (Kind::ReplyFailure, 1));
    assert_eq!(ErrorCode::from_u16(header.aux), ErrorCode::DeadlineExceeded);
    let message: String = decode(&body).unwrap();
    assert!(message.contains("100ms"), "{message}");
    assert_eq!(
        node.dropped(),
        1,
        "the handler was dropped before the reply"
    );
    // no budget: the call runs to its end
    ws.send(call_frame(SEEN, 2, None, &args, 0)).await.unwrap();
    let (header, body) = next_frame(&mut ws).await;
    assert_eq!((header.kind, header.id), (Kind::ReplyOk, 2));
    assert_eq!(decode::<Seen>(&body).unwrap().remaining_micros, None);
}

#[tokio::test]
async fn a_handler_reads_its_remaining_time() {
    let node = Node::start();
    let client = node.client(Transport::Quic).await;
    let budget = Duration::from_secs(30);
    let seen = client.with_call_timeout(Some(budget)).seen().await.unwrap();
    let remaining = seen.remaining_micros.expect("a deadline");
    assert!(remaining > 0 && remaining <= budget.as_micros() as u64);
    assert_eq!(client.seen().await.unwrap().remaining_micros, None);
}

/// A handler's deadline ends the call it makes downstream too: server B drops its handler.
#[tokio::test]
async fn an_inherited_deadline_ends_the_downstream_call() {
    for transport in TRANSPORTS {
        let (a, b) = (Node::start(), Node::start());
        a.relay_to(&b, transport).await;
        let client = a.client(transport).await;
        let budget = Duration::from_millis(300);
        let result = client.with_call_timeout(Some(budget)).relay_hold().await;
        assert!(
            matches!(result, Err(RpcError::DeadlineExceeded(limit)) if limit == budget),
            "{transport:?}: {result:?}"
        );
        common::eventually("the downstream handler dropped", || b.dropped() == 1).await;
    }
}

fn context_of_len(len: usize) -> CallContext {
    let base = encode(&CallContext::new().with_entry("k", ""))
        .unwrap()
        .len();
    let mut value = "v".repeat(len.saturating_sub(base));
    // a string's archived length grows past its inline size; trim to the exact size
    while encode(&CallContext::new().with_entry("k", value.clone()))
        .unwrap()
        .len()
        > len
    {
        value.pop();
    }
    CallContext::new().with_entry("k", value)
}

#[tokio::test]
async fn a_context_at_the_limit_travels_and_one_past_it_is_refused_before_sending() {
    let node = Node::start();
    for transport in TRANSPORTS {
        let client = node.client(transport).await;
        let largest = context_of_len(MAX_CONTEXT_LEN);
        assert_eq!(encode(&largest).unwrap().len(), MAX_CONTEXT_LEN);
        let seen = client.with_context(largest.clone()).seen().await.unwrap();
        assert_eq!(seen.entries, largest.entries);

        let mut over = largest;
        over.entries[0].1.push_str("vvvvvvvv");
        assert!(encode(&over).unwrap().len() > MAX_CONTEXT_LEN);
        match client.with_context(over).seen().await {
            Err(RpcError::Protocol(ProtocolError::InvalidPayload(message))) => {
                assert!(message.contains("MAX_CONTEXT_LEN"), "{message}")
            }
            other => panic!("{transport:?}: expected InvalidPayload, got {other:?}"),
        }
        assert!(client.seen().await.is_ok());
    }
}

/// Contexts a hostile peer builds by hand: refused with `InvalidPayload`, and the
/// connection serves on.
#[tokio::test]
async fn malformed_contexts_are_refused_per_call() {
    let node = Node::start();
    let mut ws = raw_peer(&node).await;
    let args = encode(&()).unwrap();
    let mut past_the_end = args.to_vec();
    past_the_end.extend_from_slice(&[0; 12]);
    past_the_end.extend_from_slice(&u32::MAX.to_le_bytes());
    let mut too_large = args.to_vec();
    too_large.resize(args.len().next_multiple_of(16), 0);
    too_large.extend_from_slice(&encode(&context_of_len(MAX_CONTEXT_LEN + 64)).unwrap());
    too_large.extend_from_slice(&(args.len() as u32).to_le_bytes());
    let mut not_a_context = args.to_vec();
    not_a_context.resize(args.len().next_multiple_of(16), 0);
    not_a_context.extend_from_slice(&[0xff; 32]);
    not_a_context.extend_from_slice(&(args.len() as u32).to_le_bytes());
    for (id, body) in [
        (1, past_the_end),
        (2, too_large),
        (3, not_a_context),
        (4, vec![1]),
    ] {
        ws.send(call_frame(SEEN, id, None, &body, FLAG_CONTEXT))
            .await
            .unwrap();
        let (header, _) = next_frame(&mut ws).await;
        assert_eq!((header.kind, header.id), (Kind::ReplyFailure, id));
        assert_eq!(
            ErrorCode::from_u16(header.aux),
            ErrorCode::InvalidPayload,
            "call {id}"
        );
    }
    ws.send(call_frame(SEEN, 5, None, &args, 0)).await.unwrap();
    assert_eq!(next_frame(&mut ws).await.0.kind, Kind::ReplyOk);
}
