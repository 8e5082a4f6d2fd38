//! Deadlines and call context on the wire: the server drops a handler at its call's
//! deadline, a handler reads its remaining time and its caller's context, and a call a
//! handler makes inherits both — over two hops, with the trace linking the servers' spans.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, OnceLock,
    },
    time::Duration,
};

use common::{
    raw::hello_for,
    raw_ws::{call_message, handshaken_to, next_frame, RawWs},
    Running,
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
use tracing_subscriber::{layer::SubscriberExt, registry::LookupSpan, Layer};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// What a handler saw of its call.
#[codable]
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    remaining_micros: Option<u64>,
    trace_id: Option<String>,
    parent_id: Option<String>,
    span_id: String,
    entries: Vec<(String, String)>,
}

/// Calls that report what they see of their deadline and context, and relay to another server.
#[rpc(state = ())]
pub trait Relay {
    /// Never returns; counts its drops.
    async fn hold(&self) -> HandlerResult<()>;
    /// What this call sees.
    async fn seen(&self) -> HandlerResult<Seen>;
    /// What this call sees, and what the downstream server's call sees when this one makes
    /// it.
    async fn relay(&self) -> HandlerResult<(Seen, Seen)>;
    /// Calls `hold` downstream.
    async fn relay_hold(&self) -> HandlerResult<()>;
}

/// What every handler of a server shares.
#[derive(Default)]
pub struct Shared {
    dropped: AtomicUsize,
    downstream: OnceLock<RelayClient>,
}

struct CountDrop<'a>(&'a AtomicUsize);

impl Drop for CountDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn seen_now() -> Seen {
    let call = CurrentCall::get().expect("inside a call");
    let trace = call.trace();
    Seen {
        remaining_micros: call.remaining().map(|r| r.as_micros() as u64),
        trace_id: trace.map(|t| t.trace_id()),
        parent_id: trace.map(|t| t.parent_id()),
        span_id: format!("{:016x}", call.span_id()),
        entries: call
            .context()
            .map(|c| c.entries.clone())
            .unwrap_or_default(),
    }
}

fn downstream_failed(error: RpcError) -> HandlerError {
    HandlerError::new(match error {
        RpcError::DeadlineExceeded(_) => "downstream: deadline exceeded".to_owned(),
        other => format!("downstream: {other}"),
    })
}

#[rpc_handler(pub, app = Shared)]
impl Relay for RelayHandler {
    async fn hold(&self) -> HandlerResult<()> {
        let _counted = CountDrop(&self.app.dropped);
        std::future::pending::<()>().await;
        Ok(())
    }

    async fn seen(&self) -> HandlerResult<Seen> {
        Ok(seen_now())
    }

    async fn relay(&self) -> HandlerResult<(Seen, Seen)> {
        let mine = seen_now();
        let downstream = self.app.downstream.get().expect("a downstream server");
        let theirs = downstream.seen().await.map_err(downstream_failed)?;
        Ok((mine, theirs))
    }

    async fn relay_hold(&self) -> HandlerResult<()> {
        let downstream = self.app.downstream.get().expect("a downstream server");
        downstream.hold().await.map_err(downstream_failed)
    }
}

struct Node {
    running: Running<()>,
    shared: Arc<Shared>,
}

impl Node {
    fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let running = common::run(
            ServerConfig::new_self_signed("127.0.0.1:0"),
            Factory::<RelayHandler>::with_shared_app(Arc::clone(&shared)),
        );
        Self { running, shared }
    }

    async fn client(&self, transport: Transport) -> RelayClient {
        let client = RelayClient::with_config(common::config_via(
            self.running.addr,
            &self.running.certificate_pem,
            transport,
        ));
        client.connect().await.expect("connect");
        client
    }

    /// This node's handlers call `downstream` over `transport`.
    async fn relay_to(&self, downstream: &Node, transport: Transport) {
        let client = downstream.client(transport).await;
        assert!(self.shared.downstream.set(client).is_ok());
    }

    fn dropped(&self) -> usize {
        self.shared.dropped.load(Ordering::SeqCst)
    }
}

const TRANSPORTS: [Transport; 2] = [Transport::Quic, Transport::WebSocket];

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

/// Records the fields of every `call` span.
#[derive(Clone, Default)]
struct CallSpans(Arc<Mutex<HashMap<u64, HashMap<String, String>>>>);

struct Fields<'a>(&'a mut HashMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for CallSpans {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if attrs.metadata().name() == "call" {
            let mut fields = HashMap::new();
            attrs.record(&mut Fields(&mut fields));
            self.0.lock().unwrap().insert(id.into_u64(), fields);
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if let Some(fields) = self.0.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(fields));
        }
    }
}

impl CallSpans {
    /// The fields of the `call` spans of `method`.
    fn of(&self, method: &str) -> Vec<HashMap<String, String>> {
        let spans = self.0.lock().unwrap();
        spans
            .values()
            .filter(|fields| fields.get("method").map(String::as_str) == Some(method))
            .cloned()
            .collect()
    }
}

/// client → server A (`relay`) → server B (`seen`): B gets no more than A had left, the
/// caller's entries, and a trace whose parent is A's span; B's span shows the trace.
#[tokio::test]
async fn deadline_and_trace_propagate_over_two_hops() {
    // this test's runtime runs on this thread, and with it both servers' tasks
    let spans = CallSpans::default();
    let _subscriber =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
    for transport in TRANSPORTS {
        let (a, b) = (Node::start(), Node::start());
        a.relay_to(&b, transport).await;
        let client = a.client(transport).await;
        let budget = Duration::from_secs(30);
        let context = CallContext::new()
            .with_traceparent(TRACEPARENT)
            .with_entry("request-id", "r-17");
        let (at_a, at_b) = client
            .with_call_timeout(Some(budget))
            .with_context(context)
            .relay()
            .await
            .unwrap();

        let (left_a, left_b) = (
            at_a.remaining_micros.unwrap(),
            at_b.remaining_micros.unwrap(),
        );
        assert!(
            left_a <= budget.as_micros() as u64,
            "{transport:?}: {left_a}"
        );
        assert!(
            left_b <= left_a,
            "{transport:?}: B has no more than A had left ({left_b} > {left_a} µs)"
        );

        let entries = vec![("request-id".to_owned(), "r-17".to_owned())];
        assert_eq!(at_a.trace_id.as_deref(), Some(TRACE_ID));
        assert_eq!(at_a.parent_id.as_deref(), Some("00f067aa0ba902b7"));
        assert_eq!(at_a.entries, entries);
        assert_eq!(at_b.trace_id.as_deref(), Some(TRACE_ID));
        assert_eq!(
            at_b.parent_id.as_deref(),
            Some(at_a.span_id.as_str()),
            "B's parent is A's span"
        );
        assert_eq!(at_b.entries, entries);
        assert_ne!(at_b.span_id, at_a.span_id);

        let b_spans = spans.of("seen");
        let b_span = b_spans
            .iter()
            .find(|fields| fields.get("span_id") == Some(&at_b.span_id))
            .unwrap_or_else(|| panic!("{transport:?}: no span of B's call in {b_spans:?}"));
        assert_eq!(b_span.get("trace_id").map(String::as_str), Some(TRACE_ID));
        assert_eq!(b_span.get("parent_id"), Some(&at_a.span_id));
    }
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
