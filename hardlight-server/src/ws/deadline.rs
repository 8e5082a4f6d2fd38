//! `Limits::frame_read_timeout` over WebSocket: a message whose first bytes have arrived
//! must be whole within the limit, or the connection closes (`SlowSender`).
//!
//! The clock starts at the first read that brings bytes after the last whole message (the
//! [`Budget`] sees every read), so a peer that stops halfway, or trickles a message, holds
//! what it sent for at most the limit. Any whole message stops the clock, control frames
//! included: a peer that interleaves pings between the fragments of one message restarts
//! it each time, yet never holds more than `max_message_size`.

use std::{
    future::{poll_fn, Future},
    pin::Pin,
    task::Poll,
    time::Duration,
};

use futures_util::{stream::SplitStream, StreamExt};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    time::{sleep, Instant, Sleep},
};
use tokio_tungstenite::{
    tungstenite::{Error as WsError, Message},
    WebSocketStream,
};

use super::bounded::Budget;

/// The deadline of the message being read, when one has begun.
pub(crate) struct MessageDeadline {
    limit: Duration,
    /// Allocated the first time a message arrives in parts; reused after.
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

/// What reading the next message gave.
pub(crate) enum Read {
    /// A message, an error, or the end of the stream.
    Message(Option<Result<Message, WsError>>),
    /// A message began and did not complete within the limit.
    Late(Duration),
}

impl MessageDeadline {
    pub(crate) fn new(limit: Duration) -> Self {
        Self {
            limit,
            timer: None,
            armed: false,
        }
    }

    /// The next message from `source`, or [`Read::Late`] when one began and stalled.
    pub(crate) fn read<'a, S: AsyncRead + AsyncWrite + Unpin>(
        &'a mut self,
        source: &'a mut SplitStream<WebSocketStream<S>>,
        budget: &'a Budget,
    ) -> impl Future<Output = Read> + 'a {
        poll_fn(move |cx| {
            if let Poll::Ready(message) = source.poll_next_unpin(cx) {
                budget.message_read();
                self.armed = false;
                return Poll::Ready(Read::Message(message));
            }
            if !budget.partial() {
                return Poll::Pending;
            }
            let limit = self.limit;
            let timer = self.timer.get_or_insert_with(|| Box::pin(sleep(limit)));
            if !self.armed {
                timer.as_mut().reset(Instant::now() + limit);
                self.armed = true;
            }
            match timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Read::Late(self.limit)),
                Poll::Pending => Poll::Pending,
            }
        })
    }
}
