//! Streaming calls on the client: where a call's items come from on each transport, and
//! the typed stream the application reads them from.

use std::{
    fmt,
    pin::Pin,
    sync::{atomic::Ordering, Arc},
    task::{Context, Poll},
    time::Duration,
};

use futures_util::{
    future::{self, Either},
    Stream,
};
use hardlight_core::{
    codec::{Bytes, Codable},
    frame::{FrameHeader, Kind},
    received::Received,
    HandlerError,
};

#[cfg(feature = "native")]
use crate::quic::{QuicItems, QuicSender};
#[cfg(all(feature = "wasm", not(feature = "native")))]
use crate::webtransport::{PipedItems, PipedSender};
use crate::{
    calls::OpenedItems,
    error::{CallError, RpcError},
    mux::{MuxSender, MuxStream},
    reply::decode_reply,
    rt,
    stats::Counters,
};

/// Where a streaming call's items and reply arrive.
#[derive(Debug)]
pub(crate) enum ItemSource {
    /// Multiplexed by id with the connection's other calls, paced by the call's window.
    Channel(MuxStream),
    /// A QUIC stream of its own, paced by QUIC's flow control.
    #[cfg(feature = "native")]
    Quic(QuicItems),
    /// A WebTransport stream of its own, carried by the session's task.
    #[cfg(all(feature = "wasm", not(feature = "native")))]
    Piped(PipedItems),
}

impl ItemSource {
    /// The next item or the reply.
    pub(crate) async fn next(&mut self) -> Result<(FrameHeader, Bytes), CallError> {
        match self {
            Self::Channel(items) => items
                .next()
                .await
                .map(|(header, body)| (header, body.into_aligned())),
            #[cfg(feature = "native")]
            Self::Quic(items) => items.next().await,
            #[cfg(all(feature = "wasm", not(feature = "native")))]
            Self::Piped(items) => items.next().await,
        }
    }

    /// What sends the client's items of this call (once).
    pub(crate) fn sink(&mut self) -> Option<ItemSink> {
        match self {
            Self::Channel(items) => items.sender().map(ItemSink::Channel),
            #[cfg(feature = "native")]
            Self::Quic(items) => items.sender().map(ItemSink::Quic),
            #[cfg(all(feature = "wasm", not(feature = "native")))]
            Self::Piped(items) => items.sender().map(ItemSink::Piped),
        }
    }

    /// The application took an item of `frame_len` bytes on the wire: room for more.
    pub(crate) async fn took(&mut self, frame_len: usize) -> Result<(), CallError> {
        match self {
            Self::Channel(items) => items.took(frame_len).await,
            // reading the stream is what makes room
            #[cfg(feature = "native")]
            Self::Quic(_) => Ok(()),
            #[cfg(all(feature = "wasm", not(feature = "native")))]
            Self::Piped(_) => Ok(()),
        }
    }
}

/// Where the client's items of a streaming call go.
#[derive(Debug)]
pub(crate) enum ItemSink {
    /// Multiplexed, within the call's window.
    Channel(MuxSender),
    /// The call's QUIC stream.
    #[cfg(feature = "native")]
    Quic(QuicSender),
    /// The call's WebTransport stream.
    #[cfg(all(feature = "wasm", not(feature = "native")))]
    Piped(PipedSender),
}

impl ItemSink {
    pub(crate) async fn send(&mut self, frame: Vec<u8>) -> Result<(), CallError> {
        match self {
            Self::Channel(sink) => sink.send(frame).await,
            #[cfg(feature = "native")]
            Self::Quic(sink) => sink.send(frame).await,
            #[cfg(all(feature = "wasm", not(feature = "native")))]
            Self::Piped(sink) => sink.send(frame).await,
        }
    }

    /// Writes the items a sink holds to write together (QUIC): no next item is ready.
    pub(crate) async fn flush(&mut self) -> Result<(), CallError> {
        match self {
            #[cfg(feature = "native")]
            Self::Quic(sink) => sink.flush().await,
            _ => Ok(()),
        }
    }

    pub(crate) async fn end(self) {
        match self {
            Self::Channel(sink) => sink.end().await,
            #[cfg(feature = "native")]
            Self::Quic(sink) => sink.end().await,
            #[cfg(all(feature = "wasm", not(feature = "native")))]
            Self::Piped(sink) => sink.end().await,
        }
    }

    pub(crate) fn fail(self, error: CallError) {
        match self {
            Self::Channel(sink) => sink.fail(error),
            #[cfg(feature = "native")]
            Self::Quic(sink) => sink.fail(error),
            #[cfg(all(feature = "wasm", not(feature = "native")))]
            Self::Piped(sink) => sink.fail(error),
        }
    }
}

#[cfg(feature = "native")]
type Items<T, E> = Pin<Box<dyn Stream<Item = Result<T, RpcError<E>>> + Send>>;
#[cfg(not(feature = "native"))]
type Items<T, E> = Pin<Box<dyn Stream<Item = Result<T, RpcError<E>>>>>;

/// The items of a streaming call, as the server's handler yields them: each `Ok(item)`,
/// then the end of the stream — or one `Err` and then the end, if the handler failed,
/// the call's deadline passed or the connection was lost.
///
/// The server sends items only as fast as this stream is read: a stream nobody reads
/// holds the server back (within a window of 256 KiB, or QUIC's flow control) without
/// holding up the connection's other calls. Dropping it cancels the call on the server.
/// State written by the handler before it yielded an item is in the client's mirror when
/// the item comes out.
///
/// ```no_run
/// # use futures_util::StreamExt;
/// # async fn watch(mut ticks: hardlight_client::CallStream<u64>) {
/// while let Some(tick) = ticks.next().await {
///     match tick {
///         Ok(tick) => println!("tick {tick}"),
///         Err(error) => eprintln!("the stream failed: {error}"),
///     }
/// }
/// # }
/// ```
pub struct CallStream<T, E = HandlerError> {
    items: Items<T, E>,
    observed: Observed,
}

impl<T, E> CallStream<T, E> {
    pub(crate) fn new(items: Items<T, E>, observed: Observed) -> Self {
        Self { items, observed }
    }

    /// What this call has moved so far, and whether each side has ended.
    ///
    /// ```no_run
    /// # async fn watch(ticks: hardlight_client::CallStream<u64>) {
    /// let seen = ticks.observe();
    /// println!("{} items, {} bytes, ended: {}", seen.items_received, seen.bytes_received, seen.received_end);
    /// # }
    /// ```
    pub fn observe(&self) -> StreamSnapshot {
        self.observed.snapshot()
    }
}

#[cfg(feature = "native")]
impl<E: Send + 'static> CallStream<Vec<u8>, E> {
    /// The items read as raw bytes, for bulk transfer: an `AsyncRead` whose errors carry
    /// the call's error as their message. Wrap it in
    /// [`WithDeadline`](hardlight_core::byte_stream::WithDeadline) to give each read a
    /// deadline.
    pub fn into_reader(self) -> impl tokio::io::AsyncRead + Send + Unpin {
        use futures_util::StreamExt;
        hardlight_core::byte_stream::byte_reader(
            self.map(|chunk| chunk.map_err(|error| error.describe())),
        )
    }
}

/// A streaming call's counters and state, as a plain value ([`CallStream::observe`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamSnapshot {
    /// Items received from the server.
    pub items_received: u64,
    /// Frame bytes of those items, as received.
    pub bytes_received: u64,
    /// The client's items sent.
    pub items_sent: u64,
    /// Frame bytes of those items, as sent.
    pub bytes_sent: u64,
    /// The server's side has ended: its reply came (or the call failed).
    pub received_end: bool,
    /// The client's side has ended: every item sent, or sending failed (or there are none
    /// to send).
    pub sent_end: bool,
    /// The last error, for people.
    pub last_error: Option<String>,
}

/// A streaming call's snapshot, shared by its reading and sending sides, and its place
/// in the client's count of open streams until dropped.
#[derive(Debug, Clone)]
pub(crate) struct Observed(Arc<ObservedInner>);

#[derive(Debug)]
struct ObservedInner {
    snapshot: std::sync::Mutex<StreamSnapshot>,
    counters: Arc<Counters>,
}

impl Observed {
    /// A streaming call just opened, counted among the client's open streams.
    pub(crate) fn open(counters: &Arc<Counters>, sends_items: bool) -> Self {
        counters.streams_opened.fetch_add(1, Ordering::Relaxed);
        let snapshot = StreamSnapshot {
            sent_end: !sends_items,
            ..StreamSnapshot::default()
        };
        Self(Arc::new(ObservedInner {
            snapshot: std::sync::Mutex::new(snapshot),
            counters: Arc::clone(counters),
        }))
    }

    pub(crate) fn snapshot(&self) -> StreamSnapshot {
        crate::sync::lock(&self.0.snapshot).clone()
    }

    pub(crate) fn update(&self, change: impl FnOnce(&mut StreamSnapshot)) {
        change(&mut crate::sync::lock(&self.0.snapshot));
    }
}

impl Drop for ObservedInner {
    fn drop(&mut self) {
        self.counters.streams_closed.fetch_add(1, Ordering::Relaxed);
    }
}

impl<T, E> Stream for CallStream<T, E> {
    type Item = Result<T, RpcError<E>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.items.as_mut().poll_next(cx)
    }
}

impl<T, E> fmt::Debug for CallStream<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CallStream")
    }
}

#[cfg(feature = "native")]
type Sleep = Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
#[cfg(not(feature = "native"))]
type Sleep = Pin<Box<dyn std::future::Future<Output = ()>>>;

/// `Send` natively, where streams are polled on any thread; nothing in the browser, whose
/// timers and sockets live on its one thread.
#[cfg(feature = "native")]
pub(crate) trait MaybeSend: Send {}
#[cfg(feature = "native")]
impl<T: Send> MaybeSend for T {}
/// `Send` natively, where streams are polled on any thread; nothing in the browser, whose
/// timers and sockets live on its one thread.
#[cfg(not(feature = "native"))]
pub(crate) trait MaybeSend {}
#[cfg(not(feature = "native"))]
impl<T> MaybeSend for T {}

/// A streaming call in progress, between two items.
struct Flow<W> {
    opened: OpenedItems,
    /// Completes when the call's budget has run out.
    deadline: Option<Sleep>,
    /// Waits until the mirror holds a state version.
    wait: W,
    counters: Arc<Counters>,
    observed: Observed,
    /// Item bytes handed out since the stream last let other tasks run.
    since_yield: usize,
}

/// Item bytes a streaming call hands out before it lets the other tasks of its executor
/// run: items that keep arriving faster than they are read would otherwise hold the
/// thread (and the replies of other calls waiting on it) until the stream ends.
const YIELD_EVERY: usize = 64 * 1024;

/// The typed items of the streaming call `opened`, each handed out once the mirror holds
/// the state version it was sent at (`wait`), within `budget`.
pub(crate) fn typed<T, E, W, F>(
    opened: OpenedItems,
    budget: Option<Duration>,
    wait: W,
    counters: Arc<Counters>,
    observed: Observed,
) -> CallStream<T, E>
where
    T: Codable + Send + 'static,
    E: Codable + Send + 'static,
    W: Fn(u64) -> F + MaybeSend + 'static,
    F: std::future::Future<Output = Result<(), CallError>> + MaybeSend,
{
    let flow = Flow {
        opened,
        deadline: budget.map(|budget| -> Sleep { Box::pin(rt::sleep(budget)) }),
        wait,
        counters,
        observed: observed.clone(),
        since_yield: 0,
    };
    let items = futures_util::stream::unfold(Some(flow), move |flow| async move {
        let flow = flow?;
        let observed = flow.observed.clone();
        let next = next_item::<T, E, W, F>(flow, budget).await;
        observed.update(|seen| match &next {
            Some((Ok(_), _)) => seen.items_received += 1,
            Some((Err(error), _)) => {
                seen.received_end = true;
                seen.last_error = Some(error.describe());
            }
            None => seen.received_end = true,
        });
        next
    });
    CallStream::new(Box::pin(items), observed)
}

/// The next of a streaming call's items: `None` at its end; an error ends it.
async fn next_item<T, E, W, F>(
    mut flow: Flow<W>,
    budget: Option<Duration>,
) -> Option<(Result<T, RpcError<E>>, Option<Flow<W>>)>
where
    T: Codable + Send + 'static,
    E: Codable + Send + 'static,
    W: Fn(u64) -> F + MaybeSend + 'static,
    F: std::future::Future<Output = Result<(), CallError>> + MaybeSend,
{
    {
        if flow.since_yield >= YIELD_EVERY {
            flow.since_yield = 0;
            rt::yield_now().await;
        }
        let next = match flow.deadline.as_mut() {
            None => flow.opened.next().await,
            Some(deadline) => {
                match future::select(std::pin::pin!(flow.opened.next()), deadline.as_mut()).await {
                    Either::Left((next, _)) => next,
                    Either::Right(((), _)) => {
                        let budget = budget.unwrap_or_default();
                        return Some((Err(RpcError::DeadlineExceeded(budget)), None));
                    }
                }
            }
        };
        let (header, body, wire) = match next {
            Ok(frame) => frame,
            Err(error) => return Some((Err(error.into()), None)),
        };
        flow.counters
            .bytes_received
            .fetch_add(wire as u64, Ordering::Relaxed);
        if header.kind == Kind::StreamItem {
            flow.observed
                .update(|seen| seen.bytes_received += wire as u64);
        }
        if let Err(error) = (flow.wait)(header.seq).await {
            return Some((Err(error.into()), None));
        }
        if header.kind != Kind::StreamItem {
            return match decode_reply::<(), E>(&header, Received::Aligned(body)) {
                Ok(()) => None,
                Err(error) => Some((Err(error.past(budget.unwrap_or_default())), None)),
            };
        }
        if let Err(error) = flow.opened.took(wire).await {
            return Some((Err(error.into()), None));
        }
        flow.since_yield += body.len();
        match Received::Aligned(body).decode::<T>() {
            Ok(item) => Some((Ok(item), Some(flow))),
            Err(error) => Some((Err(error.into()), None)),
        }
    }
}
