//! Limits that bound what a peer can make the other side do.

use std::time::Duration;

/// Limits enforced on every connection. Defaults are listed on each field.
///
/// ```
/// use hardlight_core::Limits;
/// let limits = Limits { max_message_size: 1 << 20, ..Limits::default() };
/// assert_eq!(limits.max_concurrent_calls, 128);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame body, compressed or not, and largest decompressed body. Default 16 MiB.
    pub max_message_size: u32,
    /// Calls one connection may have in flight; further calls wait for a slot. Default 128.
    ///
    /// Over QUIC this is the connection's bidirectional stream window, and quinn keeps a
    /// slot for every stream the window allows: an idle QUIC connection costs the server
    /// about 45 KiB at 128 and 118 KiB at 1024 (`BENCHMARKS.md`). Raise it only for
    /// connections that really keep that many calls in flight.
    pub max_concurrent_calls: u32,
    /// Request bytes one connection may have buffered on the server across its calls.
    /// Default 64 MiB; must be at least `max_message_size`.
    pub max_inflight_bytes: u64,
    /// Time allowed from connection accept to a completed HardLight handshake. Default 10 s.
    pub handshake_timeout: Duration,
    /// A connection with no traffic for this long is closed. Default 30 s.
    pub idle_timeout: Duration,
    /// Keep-alive interval that holds a quiet connection open. Default 10 s.
    pub keep_alive: Duration,
    /// Longest a write to a peer may take (a push batch, a reply, a close): a peer that
    /// takes nothing for this long has stopped reading and is disconnected. Default 30 s.
    pub send_timeout: Duration,
    /// Events queued for one connection before the slow-consumer policy applies.
    /// Default 1024.
    pub max_queued_events: usize,
    /// Topics one connection may be subscribed to at once. Default 1024.
    pub max_subscriptions: usize,
    /// Connections a server holds at once, counted from accept. Default 10,000.
    pub max_connections: u32,
    /// Connections one IP address may hold at once. Default 256.
    pub max_connections_per_ip: u32,
    /// Calls one connection may start per second (a token bucket); `None`, the default,
    /// for no limit. Calls over it fail with `ErrorCode::RateLimited`.
    pub call_rate: Option<RateLimit>,
    /// How long the server keeps a session (handler, state, subscriptions, queued events)
    /// after its connection is lost, for the client to resume. Default 30 s; zero turns
    /// resumption off. At most `max_connections` sessions are kept at once; beyond that a
    /// lost session ends at once.
    pub resume_grace: Duration,
    /// Events already written to a connection that the server keeps for replay when the
    /// client resumes, in case they were lost with the connection. Default 256.
    pub max_replay_events: usize,
}

/// A token-bucket rate: `per_second` sustained, up to `burst` at once.
///
/// ```
/// use hardlight_core::{Limits, RateLimit};
/// let limits = Limits { call_rate: Some(RateLimit { per_second: 100, burst: 20 }), ..Limits::default() };
/// assert_eq!(limits.call_rate.map(|r| r.burst), Some(20));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Tokens added per second.
    pub per_second: u32,
    /// Most tokens held (calls allowed back to back).
    pub burst: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_size: 16 << 20,
            max_concurrent_calls: 128,
            max_inflight_bytes: 64 << 20,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            keep_alive: Duration::from_secs(10),
            send_timeout: Duration::from_secs(30),
            max_queued_events: 1024,
            max_subscriptions: 1024,
            max_connections: 10_000,
            max_connections_per_ip: 256,
            call_rate: None,
            resume_grace: Duration::from_secs(30),
            max_replay_events: 256,
        }
    }
}
