//! `Limits::frame_read_timeout` on a connection that carries many frames one after
//! another (a WebSocket connection, the QUIC call channel): a frame whose first bytes
//! have arrived must be whole within the limit, or the connection closes (`SlowSender`).
//!
//! The clock starts when bytes have arrived that no whole frame has used up yet, so a
//! peer that stops halfway, or trickles a frame, holds what it sent for at most the
//! limit. Any whole message stops the clock (over WebSocket control frames too: a peer
//! that interleaves pings between the fragments of one message restarts it each time, yet
//! never holds more than `max_message_size`).

use std::{
    task::{Context, Poll},
    time::Duration,
};

use hardlight_core::wait::WaitLimit;

/// The deadline of the frame being read, when one has begun.
pub(crate) struct FrameDeadline(WaitLimit);

impl FrameDeadline {
    pub(crate) fn new(limit: Duration) -> Self {
        Self(WaitLimit::new(limit))
    }

    /// A whole frame (or message) was read: the clock stops.
    pub(crate) fn read(&mut self) {
        self.0.stop();
    }

    /// After a read that is still pending: completes with the limit once a frame has been
    /// `partial` for that long.
    pub(crate) fn poll_late(&mut self, cx: &mut Context<'_>, partial: bool) -> Poll<Duration> {
        if !partial {
            return Poll::Pending;
        }
        self.0.poll_expired(cx).map(|()| self.0.limit())
    }
}
