//! The client's counters.

use std::{
    sync::atomic::{AtomicU64, Ordering::Relaxed},
    time::Duration,
};

/// A snapshot of a client's counters (`client.stats()`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientStats {
    /// Calls made.
    pub calls: u64,
    /// Calls not yet finished.
    pub calls_in_flight: u64,
    /// Calls that failed other than with the handler's own error.
    pub calls_failed: u64,
    /// Streaming calls open: opened and neither ended nor dropped.
    pub streams_open: u64,
    /// Frame bytes of calls sent (before compression).
    pub bytes_sent: u64,
    /// Frame bytes of replies received.
    pub bytes_received: u64,
    /// Events received.
    pub events_received: u64,
    /// Events the server reported lost (slow reading, or gone before a resumption).
    pub events_lost: u64,
    /// Gaps the server reported in topics' events from other servers
    /// ([`RecvError::Gap`](crate::RecvError::Gap)).
    pub gaps: u64,
    /// Durable events received (redeliveries included).
    pub durable_received: u64,
    /// Unreliable events received (`Event::unreliable`), however they came.
    pub unreliable_received: u64,
    /// Of those, the ones that came as QUIC datagrams.
    pub unreliable_datagrams: u64,
    /// Unreliable events the server sent that never arrived, as far as the numbers of
    /// the ones that did tell (a loss after the last one received is not yet known).
    /// Expected, and never reported as lost events.
    pub unreliable_lost: u64,
    /// Connections whose handshake went in 0-RTT, accepted by the server (QUIC, on a
    /// reconnection to a server that issued this client a session ticket).
    pub zero_rtt_accepted: u64,
    /// Reconnections made after a lost connection.
    pub reconnects: u64,
    /// The current connection's smoothed round-trip time (QUIC only).
    pub rtt: Option<Duration>,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) calls: AtomicU64,
    pub(crate) finished: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) streams_opened: AtomicU64,
    pub(crate) streams_closed: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
    pub(crate) events_received: AtomicU64,
    pub(crate) events_lost: AtomicU64,
    pub(crate) gaps: AtomicU64,
    pub(crate) durable_received: AtomicU64,
    pub(crate) unreliable_received: AtomicU64,
    pub(crate) unreliable_datagrams: AtomicU64,
    pub(crate) unreliable_lost: AtomicU64,
    pub(crate) zero_rtt_accepted: AtomicU64,
    pub(crate) reconnects: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self, rtt: Option<Duration>) -> ClientStats {
        let calls = self.calls.load(Relaxed);
        ClientStats {
            calls,
            calls_in_flight: calls.saturating_sub(self.finished.load(Relaxed)),
            calls_failed: self.failed.load(Relaxed),
            streams_open: self
                .streams_opened
                .load(Relaxed)
                .saturating_sub(self.streams_closed.load(Relaxed)),
            bytes_sent: self.bytes_sent.load(Relaxed),
            bytes_received: self.bytes_received.load(Relaxed),
            events_received: self.events_received.load(Relaxed),
            events_lost: self.events_lost.load(Relaxed),
            gaps: self.gaps.load(Relaxed),
            durable_received: self.durable_received.load(Relaxed),
            unreliable_received: self.unreliable_received.load(Relaxed),
            unreliable_datagrams: self.unreliable_datagrams.load(Relaxed),
            unreliable_lost: self.unreliable_lost.load(Relaxed),
            zero_rtt_accepted: self.zero_rtt_accepted.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            rtt,
        }
    }
}
