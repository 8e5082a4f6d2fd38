//! Streaming calls: the typed streams of items a handler returns and takes, what they are
//! on the wire, and the flow-control window of a stream on a multiplexed connection.

use std::{
    fmt,
    pin::Pin,
    task::{Context, Poll},
};

use futures_util::{Stream, StreamExt};
use tokio::sync::{Semaphore, TryAcquireError};

use crate::{
    codec::{Bytes, Codable},
    error::{ErrorCode, ProtocolError},
    message::Body,
    received::Received,
    schema::{Layout, Schema},
    service::Outcome,
    HandlerError,
};

/// Bytes of one direction of a streaming call that may be sent and not yet credited by
/// the receiver, on a multiplexed connection (WebSocket, in-process): 256 KiB. An item
/// counts as its whole frame, or as the whole window if larger (so one item of any
/// allowed size can go when nothing is outstanding). Over QUIC each streaming call has a
/// stream of its own, and QUIC's flow control does this.
pub const STREAM_WINDOW: u32 = 256 * 1024;

/// Which way a method streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StreamKind {
    /// A plain call: arguments in, one result out.
    Unary,
    /// The method returns a stream (`HandlerResult<Streaming<T>>`).
    Server,
    /// An argument is a stream (`items: Streaming<T>`); one result out.
    Client,
    /// Both.
    Bidirectional,
}

impl StreamKind {
    /// Whether the call is a streaming call (its `Call` has the `STREAM` flag).
    pub fn is_streaming(self) -> bool {
        self != Self::Unary
    }

    /// Whether the client sends items.
    pub fn takes_stream(self) -> bool {
        matches!(self, Self::Client | Self::Bidirectional)
    }
}

/// The items a client sends on a streaming call, as archives, in order; the end of the
/// stream is the end of the client's items.
pub type Inbound = Pin<Box<dyn Stream<Item = Result<Bytes, ProtocolError>> + Send>>;

/// A client stream without items. Used by generated code.
#[doc(hidden)]
pub fn no_items() -> Inbound {
    Box::pin(futures_util::stream::empty())
}

/// What an item of `frame_len` bytes counts against a stream's window.
///
/// ```
/// use hardlight_core::stream::{window_cost, STREAM_WINDOW};
/// assert_eq!(window_cost(100), 100);
/// assert_eq!(window_cost(10 * STREAM_WINDOW as usize), STREAM_WINDOW);
/// ```
pub fn window_cost(frame_len: usize) -> u32 {
    u32::try_from(frame_len)
        .unwrap_or(u32::MAX)
        .min(STREAM_WINDOW)
}

/// Takes the room of an item of `frame_len` bytes from a stream's send window (`credit`,
/// a semaphore of [`STREAM_WINDOW`] bytes that the receiver's credit refills), waiting
/// until it is there; `false` once the window is closed. Most items fit at once: only one
/// that must wait sets up the semaphore's wait.
///
/// ```
/// use hardlight_core::stream::{take_window, STREAM_WINDOW};
/// use tokio::sync::Semaphore;
/// # futures_util::FutureExt::now_or_never(async {
/// let credit = Semaphore::new(STREAM_WINDOW as usize);
/// assert!(take_window(&credit, 1000).await);
/// assert_eq!(credit.available_permits(), STREAM_WINDOW as usize - 1000);
/// credit.close();
/// assert!(!take_window(&credit, 1000).await);
/// # }).unwrap();
/// ```
pub async fn take_window(credit: &Semaphore, frame_len: usize) -> bool {
    let cost = window_cost(frame_len);
    let room = match credit.try_acquire_many(cost) {
        Err(TryAcquireError::NoPermits) => credit.acquire_many(cost).await.ok(),
        taken => taken.ok(),
    };
    match room {
        Some(room) => {
            room.forget();
            true
        }
        None => false,
    }
}

/// The items a streaming method produces: any `Stream` of `T` (or of `Result<T, E>`, an
/// `Err` ending the call with that error), boxed.
///
/// In an `#[rpc]` trait, a method returning `HandlerResult<Streaming<T>>` streams `T`s to
/// the caller, whose generated client method returns a `CallStream` of them.
///
/// ```
/// use hardlight_core::{stream::Streaming, HandlerError};
/// use futures_util::{stream, StreamExt};
/// let counting: Streaming<u32> = Streaming::new(stream::iter(1..=3));
/// let failing: Streaming<u32> = Streaming::try_new(stream::iter([
///     Ok(1),
///     Err(HandlerError::new("the source went away")),
/// ]));
/// # let _ = (counting, failing);
/// ```
pub struct Streaming<T, E = HandlerError> {
    items: Pin<Box<dyn Stream<Item = Result<T, E>> + Send>>,
}

impl<T: Send + 'static, E: Send + 'static> Streaming<T, E> {
    /// Streams every item of `items`.
    pub fn new(items: impl Stream<Item = T> + Send + 'static) -> Self {
        Self {
            items: Box::pin(items.map(Ok)),
        }
    }

    /// Streams the items of `items` up to the first `Err`, which ends the call with that
    /// error.
    pub fn try_new(items: impl Stream<Item = Result<T, E>> + Send + 'static) -> Self {
        Self {
            items: Box::pin(items),
        }
    }
}

impl<T: Codable + Send + 'static> Streaming<T> {
    /// The client's items of a streaming call, decoded as they are taken; an item that
    /// does not validate as a `T` is an `Err` (and the call fails with `InvalidPayload`).
    /// Used by generated code.
    #[doc(hidden)]
    pub fn decoding(inbound: Inbound) -> Self {
        Self {
            items: Box::pin(inbound.map(|item| {
                item.and_then(|bytes| Received::Aligned(bytes).decode::<T>())
                    .map_err(|error| {
                        HandlerError::new(format!("an item of the call's stream: {error}"))
                    })
            })),
        }
    }
}

impl<T, E> Stream for Streaming<T, E> {
    type Item = Result<T, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.items.as_mut().poll_next(cx)
    }
}

impl<T, E> fmt::Debug for Streaming<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Streaming")
    }
}

impl<T: Schema, E: 'static> Schema for Streaming<T, E> {
    fn describe(layout: &mut Layout) {
        layout.container("Streaming", &[T::describe]);
    }
}

/// A streaming call's items as archives, each `Ok`; an `Err` is the call's final outcome
/// (the handler's error, or a failure to encode an item) and ends it.
pub type ItemStream = Pin<Box<dyn Stream<Item = Result<Body, Outcome>> + Send>>;

/// Archives the items of `items` as they come.
pub fn encode_items<T, E>(items: Streaming<T, E>) -> ItemStream
where
    T: Codable + Send + 'static,
    E: Codable + Send + 'static,
{
    Box::pin(items.map(|item| match item {
        Ok(item) => {
            Body::encode(&item).map_err(|e| Outcome::Failure(ErrorCode::Internal, e.to_string()))
        }
        Err(error) => Err(Outcome::from_result::<(), E>(Err(error))),
    }))
}
