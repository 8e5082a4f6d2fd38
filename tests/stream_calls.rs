//! Streaming calls of all three kinds over QUIC, WebSocket and in-process: items in order
//! with the state written before each, typed errors, cancellation, deadlines, a consumer
//! that stops reading (on either side) holding back only its own stream, and 10,000
//! streams on one connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use common::{
    raw::{hello_for, RawPeer},
    raw_ws::{call_message, handshaken_to, next_frame, RawWs},
    Running,
};
use futures_util::{stream, SinkExt, StreamExt};
use hardlight::{
    protocol::{
        codec::{decode, encode},
        frame::{FrameHeader, Kind, FLAG_STREAM},
        io::read_frame,
        message::encode_frame,
        stream::STREAM_WINDOW,
    },
    *,
};
use tokio_tungstenite::tungstenite::Message;

/// What the feed's handlers tell their client.
#[connection_state]
pub struct FeedState {
    /// The last number sent.
    pub sent: u64,
}

/// Streams of numbers and bytes.
#[rpc(state = FeedState)]
pub trait Feed {
    /// `count` numbers from `from`; the state's `sent` is each number before it goes.
    async fn count(&self, from: u64, count: u64) -> HandlerResult<Streaming<u64>>;
    /// `count` numbers, then the handler's error.
    async fn fail_after(&self, count: u64) -> HandlerResult<Streaming<u64>>;
    /// The handler's error before any item.
    async fn refuse(&self) -> HandlerResult<Streaming<u64>>;
    /// Items of `size` bytes without end, counting those made and the stream's drop.
    async fn firehose(&self, size: u32) -> HandlerResult<Streaming<Vec<u8>>>;
    /// One item, then nothing for ever.
    async fn stall(&self) -> HandlerResult<Streaming<u64>>;
    /// A plain call.
    async fn ping(&self) -> HandlerResult<u32>;
    /// `count` numbers from `from`, writing no state.
    async fn numbers(&self, from: u64, count: u64) -> HandlerResult<Streaming<u64>>;
    /// The sum of the client's numbers, under `label`; the state's `sent` is the count.
    async fn sum(&self, label: String, numbers: Streaming<u64>) -> HandlerResult<(String, u64)>;
    /// Each of the client's numbers doubled, as it comes.
    async fn double(&self, numbers: Streaming<u64>) -> HandlerResult<Streaming<u64>>;
    /// Reads `take` of the client's items and returns without reading the rest.
    async fn take(&self, take: u64, items: Streaming<Vec<u8>>) -> HandlerResult<u64>;
    /// Reads none of the client's items, and never returns.
    async fn ignore(&self, items: Streaming<Vec<u8>>) -> HandlerResult<u64>;
}

/// What the handlers of one server count.
#[derive(Default)]
pub struct Counts {
    made: AtomicU64,
    dropped: AtomicU64,
}

struct CountDrop(Arc<Counts>);

impl Drop for CountDrop {
    fn drop(&mut self) {
        self.0.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

#[rpc_handler(pub, app = Counts)]
impl Feed for FeedHandler {
    async fn count(&self, from: u64, count: u64) -> HandlerResult<Streaming<u64>> {
        let state = self.state.clone();
        Ok(Streaming::new(stream::unfold(from, move |n| {
            let state = state.clone();
            async move {
                if n >= from + count {
                    return None;
                }
                state.write().await.sent = n;
                Some((n, n + 1))
            }
        })))
    }

    async fn fail_after(&self, count: u64) -> HandlerResult<Streaming<u64>> {
        let items = (0..count)
            .map(Ok)
            .chain([Err(HandlerError::new("the source went away"))]);
        Ok(Streaming::try_new(stream::iter(items)))
    }

    async fn refuse(&self) -> HandlerResult<Streaming<u64>> {
        Err(HandlerError::new("no stream for you"))
    }

    async fn firehose(&self, size: u32) -> HandlerResult<Streaming<Vec<u8>>> {
        let counts = Arc::clone(&self.app);
        let guard = CountDrop(Arc::clone(&self.app));
        Ok(Streaming::new(stream::repeat_with(move || {
            let _held = &guard;
            counts.made.fetch_add(1, Ordering::SeqCst);
            vec![7u8; size as usize]
        })))
    }

    async fn stall(&self) -> HandlerResult<Streaming<u64>> {
        Ok(Streaming::new(stream::iter([1]).chain(stream::pending())))
    }

    async fn ping(&self) -> HandlerResult<u32> {
        Ok(1)
    }

    async fn numbers(&self, from: u64, count: u64) -> HandlerResult<Streaming<u64>> {
        Ok(Streaming::new(stream::iter(from..from + count)))
    }

    async fn sum(
        &self,
        label: String,
        mut numbers: Streaming<u64>,
    ) -> HandlerResult<(String, u64)> {
        let (mut sum, mut count) = (0, 0);
        while let Some(n) = numbers.next().await {
            sum += n?;
            count += 1;
        }
        self.state.write().await.sent = count;
        Ok((label, sum))
    }

    async fn double(&self, numbers: Streaming<u64>) -> HandlerResult<Streaming<u64>> {
        Ok(Streaming::try_new(numbers.map(|n| n.map(|n| 2 * n))))
    }

    async fn take(&self, take: u64, mut items: Streaming<Vec<u8>>) -> HandlerResult<u64> {
        for _ in 0..take {
            items.next().await.transpose()?;
        }
        Ok(take)
    }

    async fn ignore(&self, _items: Streaming<Vec<u8>>) -> HandlerResult<u64> {
        std::future::pending().await
    }
}

struct Node {
    running: Running<()>,
    counts: Arc<Counts>,
}

#[derive(Debug, Clone, Copy)]
enum Via {
    Quic,
    WebSocket,
    Memory,
}

const VIAS: [Via; 3] = [Via::Quic, Via::WebSocket, Via::Memory];

impl Node {
    fn start() -> Self {
        Self::start_with(|config| config)
    }

    fn start_with(adjust: impl FnOnce(ServerConfig) -> ServerConfig) -> Self {
        let counts = Arc::new(Counts::default());
        let running = common::run(
            adjust(ServerConfig::new_self_signed("127.0.0.1:0")),
            Factory::<FeedHandler>::with_shared_app(Arc::clone(&counts)),
        );
        Self { running, counts }
    }

    fn config(&self, via: Via) -> ClientConfig {
        let over = |transport| {
            common::config_via(self.running.addr, &self.running.certificate_pem, transport)
        };
        match via {
            Via::Quic => over(Transport::Quic),
            Via::WebSocket => over(Transport::WebSocket),
            Via::Memory => ClientConfig::in_memory(self.running.memory.clone()),
        }
    }

    async fn client(&self, via: Via) -> FeedClient {
        let client = FeedClient::with_config(self.config(via));
        client.connect().await.unwrap();
        client
    }

    fn made(&self) -> u64 {
        self.counts.made.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn items_arrive_in_order_after_the_state_written_before_them() {
    let node = Node::start();
    for via in VIAS {
        let client = node.client(via).await;
        let mut items = client.count(10, 200).await.unwrap();
        let mut expected = 10;
        while let Some(item) = items.next().await {
            let item = item.unwrap();
            assert_eq!(item, expected, "{via:?}");
            let sent = client.state().await.unwrap().sent;
            assert!(
                sent >= item,
                "{via:?}: item {item} came before its state ({sent})"
            );
            expected += 1;
        }
        assert_eq!(expected, 210, "{via:?}: every item, then the end");
        assert_eq!(client.ping().await.unwrap(), 1);
    }
}

#[tokio::test]
async fn handler_errors_end_the_stream_typed() {
    let node = Node::start();
    for via in VIAS {
        let client = node.client(via).await;
        let items: Vec<_> = client.fail_after(3).await.unwrap().collect().await;
        assert_eq!(items.len(), 4, "{via:?}");
        assert!(items[..3].iter().all(Result::is_ok));
        match &items[3] {
            Err(RpcError::Handler(error)) => assert_eq!(error.message(), "the source went away"),
            other => panic!("{via:?}: expected the handler's error, got {other:?}"),
        }
        let refused: Vec<_> = client.refuse().await.unwrap().collect().await;
        assert!(
            matches!(&refused[..], [Err(RpcError::Handler(e))] if e.message() == "no stream for you"),
            "{via:?}: {refused:?}"
        );
    }
}

#[tokio::test]
async fn dropping_the_stream_drops_the_handlers_stream() {
    for via in VIAS {
        let node = Node::start();
        let client = node.client(via).await;
        let mut items = client.firehose(100).await.unwrap();
        assert_eq!(items.next().await.unwrap().unwrap().len(), 100);
        drop(items);
        common::eventually("the handler's stream dropped", || {
            node.counts.dropped.load(Ordering::SeqCst) == 1
        })
        .await;
        assert_eq!(client.ping().await.unwrap(), 1, "{via:?}");
    }
}

#[tokio::test]
async fn a_stream_past_its_deadline_ends_with_deadline_exceeded() {
    let node = Node::start();
    for via in VIAS {
        let client = node.client(via).await;
        let budget = Duration::from_millis(300);
        let mut items = client
            .with_call_timeout(Some(budget))
            .stall()
            .await
            .unwrap();
        assert_eq!(items.next().await.unwrap().unwrap(), 1);
        match items.next().await {
            Some(Err(RpcError::DeadlineExceeded(limit))) => assert_eq!(limit, budget),
            other => panic!("{via:?}: expected DeadlineExceeded, got {other:?}"),
        }
        assert!(items.next().await.is_none());
    }
}

/// Item size in the slow-consumer test, and what an item's frame counts against the
/// window: the archived vector (length, then the bytes, padded) and the frame header.
const ITEM: u32 = 1000;
const ITEM_FRAME: u64 = 24 + 8 + 1000;
/// The client's QUIC stream receive window (`ClientConfig`'s transport).
const QUIC_STREAM_WINDOW: u64 = 1 << 20;
/// Bytes of items either side writes to a QUIC stream at once (README, limits: "a
/// streaming call's items written together").
const QUIC_ITEMS_WRITTEN_TOGETHER: u64 = 16 * 1024;

/// The most items of `ITEM` bytes a stalled stream's sender makes: those in the
/// receiver's window (over QUIC `quic_window`), one more, and those waiting for room: over
/// QUIC the items written together, over a multiplexed connection one.
fn stalled_bound(via: Via, quic_window: u64) -> u64 {
    match via {
        Via::Quic => {
            quic_window / ITEM_FRAME + 1 + QUIC_ITEMS_WRITTEN_TOGETHER.div_ceil(ITEM_FRAME)
        }
        Via::WebSocket | Via::Memory => u64::from(STREAM_WINDOW) / ITEM_FRAME + 2,
    }
}

/// A consumer that stops reading one stream: the connection's other calls and streams
/// complete, and the server makes no more of the stalled stream's items than its window
/// holds (plus the one waiting for room).
#[tokio::test]
async fn a_consumer_that_stops_reading_holds_back_only_its_stream() {
    for via in VIAS {
        let node = Node::start();
        let client = node.client(via).await;
        let mut stalled = client.firehose(ITEM).await.unwrap();
        assert_eq!(stalled.next().await.unwrap().unwrap().len(), ITEM as usize);

        assert_eq!(client.ping().await.unwrap(), 1, "{via:?}");
        let other: Vec<u64> = client
            .count(0, 2_000)
            .await
            .unwrap()
            .map(Result::unwrap)
            .collect()
            .await;
        assert_eq!(other.len(), 2_000, "{via:?}");
        assert_eq!(client.ping().await.unwrap(), 1, "{via:?}");

        // in the window, the one the client took, and those waiting for room
        let bound = stalled_bound(via, QUIC_STREAM_WINDOW);
        let made = node.made();
        assert!(
            made <= bound,
            "{via:?}: {made} items made for a consumer that took one (bound {bound})"
        );
        assert!(made > 1, "{via:?}: the stream ran ahead into its window");
        drop(stalled);
    }
}

#[tokio::test]
async fn client_streaming_sums_every_item() {
    let node = Node::start();
    for via in VIAS {
        let client = node.client(via).await;
        let (label, sum) = client
            .sum("total".into(), stream::iter(1..=1_000))
            .await
            .unwrap();
        assert_eq!((label.as_str(), sum), ("total", 500_500), "{via:?}");
        assert_eq!(
            client.state().await.unwrap().sent,
            1_000,
            "{via:?}: state before the reply"
        );
        let (_, none) = client.sum("empty".into(), stream::empty()).await.unwrap();
        assert_eq!(none, 0);
    }
}

/// Items go both ways at once: each doubled number comes back before the next is sent.
#[tokio::test]
async fn bidirectional_items_come_back_as_they_go() {
    let node = Node::start();
    for via in VIAS {
        let client = node.client(via).await;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let input = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|n| (n, rx)) });
        let mut doubled = client.double(input).await.unwrap();
        for n in 0..100 {
            tx.send(n).unwrap();
            assert_eq!(doubled.next().await.unwrap().unwrap(), 2 * n, "{via:?}");
        }
        let seen = doubled.observe();
        assert_eq!(
            (seen.items_sent, seen.items_received),
            (100, 100),
            "{via:?}"
        );
        assert!(!seen.sent_end && !seen.received_end && seen.last_error.is_none());
        assert!(seen.bytes_received >= 100 * 24 && seen.bytes_sent >= 100 * 24);
        assert_eq!(client.stats().streams_open, 1, "{via:?}");
        drop(tx);
        assert!(
            doubled.next().await.is_none(),
            "{via:?}: the end of ours ends theirs"
        );
        let seen = doubled.observe();
        assert!(seen.sent_end && seen.received_end, "{via:?}: {seen:?}");
        drop(doubled);
        assert_eq!(client.stats().streams_open, 0, "{via:?}");
    }
}

/// The handler's reply ends a client-streaming call, also with the client's items not
/// all sent.
#[tokio::test]
async fn the_reply_ends_an_upload_early() {
    let node = Node::start();
    for via in VIAS {
        let client = node.client(via).await;
        let endless = stream::repeat_with(|| vec![1u8; 100]);
        assert_eq!(client.take(5, endless).await.unwrap(), 5, "{via:?}");
        assert_eq!(client.ping().await.unwrap(), 1);
    }
}

/// The server's QUIC stream receive window (`ServerConfig`'s transport).
const SERVER_QUIC_STREAM_WINDOW: u64 = 1 << 20;

/// A handler that does not read the client's stream: the client sends no more than the
/// window holds, the connection's other calls complete, and the deadline ends the call.
#[tokio::test]
async fn a_handler_that_stops_reading_holds_back_only_its_client_stream() {
    for via in VIAS {
        let node = Node::start();
        let client = node.client(via).await;
        let produced = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&produced);
        let endless = stream::repeat_with(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            vec![7u8; ITEM as usize]
        });
        let impatient = client.with_call_timeout(Some(Duration::from_secs(2)));
        let stuck = impatient.ignore(endless);
        let others = async {
            assert_eq!(client.ping().await.unwrap(), 1, "{via:?}");
            let total: u64 = client
                .numbers(0, 1_000)
                .await
                .unwrap()
                .map(Result::unwrap)
                .fold(0, |sum, n| async move { sum + n })
                .await;
            assert_eq!(total, 499_500, "{via:?}");
        };
        let (stuck, ()) = tokio::join!(stuck, others);
        assert!(
            matches!(stuck, Err(RpcError::DeadlineExceeded(_))),
            "{via:?}: {stuck:?}"
        );
        // in the window, and those waiting for room
        let bound = stalled_bound(via, SERVER_QUIC_STREAM_WINDOW);
        let sent = produced.load(Ordering::SeqCst);
        assert!(
            sent <= bound,
            "{via:?}: {sent} items sent to a handler that read none (bound {bound})"
        );
        assert!(sent > 1, "{via:?}");
    }
}

#[tokio::test]
async fn ten_thousand_streams_on_one_connection() {
    const STREAMS: u32 = 10_000;
    let node = Node::start_with(|config| {
        config.with_server_limits(
            ServerLimits::default()
                .with_max_concurrent_calls(STREAMS)
                .with_max_call_streams(STREAMS),
        )
    });
    for via in [Via::Quic, Via::WebSocket] {
        let client = node.client(via).await;
        let opened =
            futures_util::future::join_all((0..u64::from(STREAMS)).map(|n| client.numbers(n, 3)))
                .await;
        let totals = futures_util::future::join_all(opened.into_iter().map(|items| async {
            items
                .unwrap()
                .map(|n| n.unwrap_or_else(|e| panic!("{via:?}: {e}")))
                .fold(0u64, |sum, n| async move { sum + n })
                .await
        }))
        .await;
        for (n, total) in totals.into_iter().enumerate() {
            let n = n as u64;
            assert_eq!(total, 3 * n + 3, "{via:?}: stream {n}");
        }
    }
}

async fn raw_peer(node: &Node) -> RawWs {
    handshaken_to(
        node.running.addr,
        &node.running.certificate_pem,
        &hello_for::<__FeedService>(vec![]),
    )
    .await
}

async fn next_kind(ws: &mut RawWs) -> FrameHeader {
    next_frame(ws).await.0
}

const COUNT: u16 = 0;
const PING: u16 = 5;

/// The STREAM flag must match the method: a streaming call of a plain method, or a plain
/// call of a streaming method, is refused and the connection serves on.
#[tokio::test]
async fn the_stream_flag_must_match_the_method() {
    let node = Node::start();
    let mut ws = raw_peer(&node).await;
    let call =
        |method: u16, id: u64, flags: u8, body: &[u8]| call_message(method, id, 0, flags, body);
    let unit = encode(&()).unwrap();
    let counting = encode(&(0u64, 1u64)).unwrap();
    for (method, flags, body, id) in [(PING, FLAG_STREAM, &unit, 1), (COUNT, 0, &counting, 2)] {
        ws.send(call(method, id, flags, body)).await.unwrap();
        let reply = next_kind(&mut ws).await;
        assert_eq!((reply.kind, reply.id), (Kind::ReplyFailure, id));
        assert_eq!(ErrorCode::from_u16(reply.aux), ErrorCode::Malformed);
    }
    ws.send(call(COUNT, 3, FLAG_STREAM, &counting))
        .await
        .unwrap();
    assert_eq!(next_kind(&mut ws).await.kind, Kind::StreamItem);
    assert_eq!(next_kind(&mut ws).await.kind, Kind::ReplyOk);
    // credit for more than is outstanding breaks the protocol
    ws.send(call(
        COUNT,
        4,
        FLAG_STREAM,
        &encode(&(0u64, 1_000_000u64)).unwrap(),
    ))
    .await
    .unwrap();
    assert_eq!(next_kind(&mut ws).await.kind, Kind::StreamItem);
    let credit = FrameHeader::new(Kind::StreamCredit, 0)
        .with_id(4)
        .with_seq(u64::from(STREAM_WINDOW) + 1);
    ws.send(Message::Binary(credit.encode().to_vec().into()))
        .await
        .unwrap();
    assert_eq!(common::raw_ws::close_code(&mut ws).await, Some(1002));
}

const STALL: u16 = 4;

/// An id is the call's while it is served: a second call with the id of one still waiting
/// is refused, and the connection serves on; the id of a call that has been answered, or
/// cancelled, is free again.
#[tokio::test]
async fn an_id_in_use_is_refused_and_an_answered_one_is_free() {
    let node = Node::start();
    let mut ws = raw_peer(&node).await;
    let unit = encode(&()).unwrap();
    ws.send(call_message(STALL, 7, 0, FLAG_STREAM, &unit))
        .await
        .unwrap();
    // its one item, then it waits
    let item = next_kind(&mut ws).await;
    assert_eq!((item.kind, item.id), (Kind::StreamItem, 7));
    ws.send(call_message(PING, 7, 0, 0, &unit)).await.unwrap();
    let reply = next_kind(&mut ws).await;
    assert_eq!((reply.kind, reply.id), (Kind::ReplyFailure, 7));
    assert_eq!(ErrorCode::from_u16(reply.aux), ErrorCode::Malformed);
    for _ in 0..2 {
        ws.send(call_message(PING, 8, 0, 0, &unit)).await.unwrap();
        let reply = next_kind(&mut ws).await;
        assert_eq!((reply.kind, reply.id), (Kind::ReplyOk, 8));
    }
    // with the waiting call cancelled, no call waits: its id is free
    let cancel = FrameHeader::new(Kind::Cancel, 0).with_id(7);
    ws.send(Message::Binary(cancel.encode().to_vec().into()))
        .await
        .unwrap();
    ws.send(call_message(PING, 7, 0, 0, &unit)).await.unwrap();
    let reply = next_kind(&mut ws).await;
    assert_eq!((reply.kind, reply.id), (Kind::ReplyOk, 7));
}

const IGNORE: u16 = 10;

/// A client that sends more of its items than the call's window: the connection is
/// closed, the server having held no more than the window.
#[tokio::test]
async fn items_past_the_window_break_the_protocol() {
    let node = Node::start();
    let mut ws = raw_peer(&node).await;
    let header = FrameHeader::new(Kind::Call, 0)
        .with_aux(IGNORE)
        .with_id(1)
        .with_flags(FLAG_STREAM);
    let call = encode_frame(header, &encode(&()).unwrap(), Compression::None).unwrap();
    ws.send(Message::Binary(call.into())).await.unwrap();
    let item = encode(&vec![7u8; ITEM as usize]).unwrap();
    let frame = encode_frame(
        FrameHeader::new(Kind::StreamItem, 0).with_id(1),
        &item,
        Compression::None,
    )
    .unwrap();
    let fit = u64::from(STREAM_WINDOW) / frame.len() as u64;
    for _ in 0..=fit {
        if ws
            .send(Message::Binary(frame.clone().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    assert_eq!(common::raw_ws::close_code(&mut ws).await, Some(1002));
}

const TAKE: u16 = 9;

/// A client's item, once begun, is whole within `frame_read_timeout`, its header too: over
/// QUIC, an item stalled a few bytes into its header fails the handler's read with
/// `FrameTimeout`, which this handler returns as its error.
#[tokio::test]
async fn quic_an_item_stalled_in_its_header_fails_its_call() {
    let limit = Duration::from_millis(200);
    let node =
        Node::start_with(|c| c.with_limits(Limits::default().with_frame_read_timeout(limit)));
    let hello = hello_for::<__FeedService>(vec![]);
    let peer = RawPeer::connect_to(node.running.addr, &node.running.certificate_pem, &hello).await;
    let (mut send, mut recv) = peer.conn.open_bi().await.unwrap();
    let header = FrameHeader::new(Kind::Call, 0)
        .with_aux(TAKE)
        .with_flags(FLAG_STREAM);
    let call = encode_frame(header, &encode(&(1u64,)).unwrap(), Compression::None).unwrap();
    send.write_all(&call).await.unwrap();
    // 10 of an item header's 24 bytes, then nothing: the stream stays open
    let item = FrameHeader::new(Kind::StreamItem, 8).encode();
    send.write_all(&item[..10]).await.unwrap();
    let (reply, body) = read_frame(&mut recv, 1 << 20).await.unwrap();
    assert_eq!(reply.kind, Kind::ReplyHandlerError);
    let error = decode::<HandlerError>(&body).unwrap();
    assert!(error.message().contains("frame_read_timeout"), "{error}");
}
