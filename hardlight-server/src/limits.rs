//! What a server admits and holds per peer: connections, calls, bytes, subscriptions,
//! queued events, parked sessions and the handshake's deadline.

use std::time::Duration;

/// The largest receive buffer `ServerLimits::with_udp_receive_buffer` asks for (the
/// socket option is a C `int`, which the kernel doubles).
const MAX_UDP_RECEIVE_BUFFER: usize = 1 << 30;

/// The server's admission policy and per-peer allowances, beside the [`Limits`] both peers
/// share; given with `ServerConfig::with_server_limits`. Each setter says what the limit
/// costs in memory or slots.
///
/// ```
/// use hardlight_server::ServerLimits;
/// let limits = ServerLimits::default().with_max_connections_per_ip(16);
/// assert_eq!(limits.max_connections_per_ip(), 16);
/// assert_eq!(limits.max_concurrent_calls(), 128);
/// ```
///
/// [`Limits`]: hardlight_core::Limits
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    max_connections: u32,
    max_connections_per_ip: u32,
    ipv6_prefix_len: u8,
    address_validation: AddressValidation,
    handshake_timeout: Duration,
    max_concurrent_calls: u32,
    max_call_streams: u32,
    max_inflight_bytes: u64,
    memory_budget: u64,
    call_rate: Option<RateLimit>,
    max_subscriptions: usize,
    max_queued_events: usize,
    max_queued_bytes: usize,
    max_replay_events: usize,
    resume_grace: Duration,
    udp_receive_buffer: usize,
}

/// When a QUIC peer must answer a Retry, proving it receives packets at its source
/// address, before it takes a connection slot (`ServerLimits::with_address_validation`).
///
/// ```
/// use hardlight_server::{AddressValidation, ServerLimits};
/// let limits = ServerLimits::default().with_address_validation(AddressValidation::Always);
/// assert_eq!(limits.address_validation(), AddressValidation::Always);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddressValidation {
    /// Never: a spoofer can hold slots of any address until each handshake times out.
    Off,
    /// Always: every new connection costs one more round trip.
    Always,
    /// Once `handshakes` handshakes of unproven peers are in progress: no round trip
    /// while the server is not under attack, and no more than `handshakes` slots for
    /// spoofed sources when it is. Keep it below `max_connections_per_ip`, so that a
    /// peer whose address is spoofed still gets a slot once it proves it.
    WhenBusy {
        /// Handshakes of unproven peers in progress at which Retry begins.
        handshakes: u32,
    },
}

/// A token-bucket rate: `per_second` sustained, up to `burst` at once.
///
/// ```
/// use hardlight_server::{RateLimit, ServerLimits};
/// let limits = ServerLimits::default().with_call_rate(Some(RateLimit { per_second: 100, burst: 20 }));
/// assert_eq!(limits.call_rate().map(|r| r.burst), Some(20));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Tokens added per second.
    pub per_second: u32,
    /// Most tokens held (calls allowed back to back).
    pub burst: u32,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_connections_per_ip: 256,
            ipv6_prefix_len: 64,
            address_validation: AddressValidation::WhenBusy { handshakes: 64 },
            handshake_timeout: Duration::from_secs(10),
            max_concurrent_calls: 128,
            max_call_streams: 16,
            max_inflight_bytes: 64 << 20,
            memory_budget: 1 << 30,
            call_rate: None,
            max_subscriptions: 1024,
            max_queued_events: 1024,
            max_queued_bytes: 16 << 20,
            max_replay_events: 256,
            resume_grace: Duration::from_secs(30),
            udp_receive_buffer: 4 << 20,
        }
    }
}

impl ServerLimits {
    /// Connections the server holds at once, counted from accept (handshakes included).
    /// Default 10,000. Slots: one per connection; memory: an idle connection costs about
    /// 45 KiB over QUIC and 42 KiB over WebSocket (`BENCHMARKS.md`).
    pub fn with_max_connections(mut self, connections: u32) -> Self {
        self.max_connections = connections;
        self
    }

    /// Connections one IP address may hold at once, and sessions it — or, with an
    /// authenticator, one identity — may have parked for resumption. Default 256 (clients behind one NAT share it). IPv6 peers count per
    /// network of [`ServerLimits::with_ipv6_prefix_len`].
    pub fn with_max_connections_per_ip(mut self, connections: u32) -> Self {
        self.max_connections_per_ip = connections;
        self
    }

    /// The IPv6 prefix that counts as one address for `max_connections_per_ip`. Default
    /// 64: a host is usually given a whole /64, so counting single addresses would let one
    /// host take 2^64 shares. At most 128 (each address on its own).
    pub fn with_ipv6_prefix_len(mut self, bits: u8) -> Self {
        self.ipv6_prefix_len = bits.min(128);
        self
    }

    /// When a QUIC peer must prove it owns its source address (a Retry round trip) before
    /// it takes a connection slot. Default [`AddressValidation::WhenBusy`] with 64
    /// handshakes: peers whose address is not proven (spoofed Initials among them) hold
    /// at most 64 slots at once, each until its handshake completes, fails or times out;
    /// past that, every new peer answers a Retry first. (TCP proves the address with its
    /// own handshake.)
    pub fn with_address_validation(mut self, validation: AddressValidation) -> Self {
        self.address_validation = validation;
        self
    }

    /// Time from accept to a completed HardLight handshake (TLS, WebSocket upgrade,
    /// `Hello`, authentication, `Welcome`). Default 10 s: a peer that stalls holds its
    /// connection slot at most this long.
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Calls one connection may have in flight, over QUIC on the call channel and on
    /// streams of their own together; further calls wait for a slot. Default 128. Memory:
    /// each call holds its request until its handler returns (bounded by
    /// [`ServerLimits::with_max_inflight_bytes`]) and a task of about 1 KiB.
    pub fn with_max_concurrent_calls(mut self, calls: u32) -> Self {
        self.max_concurrent_calls = calls;
        self
    }

    /// QUIC streams one connection may have open for calls of their own (calls above
    /// 16 KiB, or every call of a client configured with
    /// `ClientConfig::with_stream_per_call`), beside the call channel; past it, such calls
    /// wait for a stream. Default 16, at most `max_concurrent_calls`. Memory: quinn keeps
    /// a slot of about 80 bytes for every stream it allows, open or not, so this sets
    /// part of an idle QUIC connection's cost (about 40 KiB at 16, 118 KiB at 1024:
    /// `BENCHMARKS.md`).
    pub fn with_max_call_streams(mut self, streams: u32) -> Self {
        self.max_call_streams = streams;
        self
    }

    /// Request bytes one connection may have buffered across its calls, each held until
    /// its handler returns: the body as received, plus what a compressed body opens to
    /// (a call that would pass it then fails with `ErrorCode::Overloaded`). Default
    /// 64 MiB; at least `Limits::max_message_size`. A call waits for its raw body's share
    /// before the server reads the body.
    pub fn with_max_inflight_bytes(mut self, bytes: u64) -> Self {
        self.max_inflight_bytes = bytes;
        self
    }

    /// Bytes all peers together may make the server hold: call bodies in flight (as
    /// received and opened), queued and replayable events (each once, however many
    /// subscribers share it), parked sessions (8 KiB each besides their events) and
    /// subscribed topic names. Work that would pass it is refused, not queued: a call fails
    /// with `ErrorCode::Overloaded` (retriable), an emit with `EmitError::Overloaded`, a
    /// subscription with `SubscribeError::Overloaded`, and a lost connection's session is
    /// ended instead of parked. Default 1 GiB; set it to the share of the process's memory
    /// peers may fill (a quarter of a container's limit, say). Memory the server uses for
    /// itself — connection buffers, quinn's and the TLS state, about 45 KiB per idle
    /// connection — is bounded by `max_connections` instead.
    pub fn with_memory_budget(mut self, bytes: u64) -> Self {
        self.memory_budget = bytes;
        self
    }

    /// Calls one session may start per second (a token bucket, kept when a reconnecting
    /// client resumes the session); `None`, the default, for no limit. Calls over it fail
    /// with `ErrorCode::RateLimited`, before their body is decompressed or validated.
    pub fn with_call_rate(mut self, rate: Option<RateLimit>) -> Self {
        self.call_rate = rate;
        self
    }

    /// Topics one connection may be subscribed to at once. Default 1024. Memory: one
    /// topic name and one hub entry each.
    pub fn with_max_subscriptions(mut self, topics: usize) -> Self {
        self.max_subscriptions = topics;
        self
    }

    /// Events queued for one connection before the slow-consumer policy applies. Default
    /// 1024. Memory: the queued events are shared with every other subscriber; this
    /// bounds how many one slow connection keeps alive.
    pub fn with_max_queued_events(mut self, events: usize) -> Self {
        self.max_queued_events = events;
        self
    }

    /// Bytes of events queued for one connection before the slow-consumer policy applies,
    /// beside `max_queued_events`. Default 16 MiB. An event larger than this still goes to
    /// a connection with nothing queued.
    pub fn with_max_queued_bytes(mut self, bytes: usize) -> Self {
        self.max_queued_bytes = bytes;
        self
    }

    /// Events already written that are kept for replay when the client resumes, in case
    /// they were lost with the connection. Default 256 (shared with subscribers, as above).
    pub fn with_max_replay_events(mut self, events: usize) -> Self {
        self.max_replay_events = events;
        self
    }

    /// How long a session (handler, state, subscriptions, queued events) is kept after its
    /// connection is lost, for the client to resume. Default 30 s; zero turns resumption
    /// off. At most `max_connections` sessions are parked at once.
    pub fn with_resume_grace(mut self, grace: Duration) -> Self {
        self.resume_grace = grace;
        self
    }

    /// The receive buffer asked of the kernel for the QUIC socket (`SO_RCVBUF`), in
    /// bytes: the datagrams of every QUIC connection wait there while the endpoint is
    /// busy, and past it the kernel drops them: their peers resend what they count lost
    /// and slow down, as QUIC's congestion control does on loss. Default 4 MiB, at most
    /// 1 GiB; 0 leaves the system's default. Memory: kernel memory, taken only by
    /// datagrams waiting to be read. Linux grants at most `net.core.rmem_max` (often
    /// 208 KiB), and the server logs a warning at bind when it was granted less than
    /// asked (`docs/OPERATIONS.md`, "Limits").
    ///
    /// ```
    /// use hardlight_server::ServerLimits;
    /// let limits = ServerLimits::default().with_udp_receive_buffer(8 << 20);
    /// assert_eq!(limits.udp_receive_buffer(), 8 << 20);
    /// ```
    pub fn with_udp_receive_buffer(mut self, bytes: usize) -> Self {
        self.udp_receive_buffer = bytes.min(MAX_UDP_RECEIVE_BUFFER);
        self
    }

    /// See [`ServerLimits::with_max_connections`].
    pub fn max_connections(&self) -> u32 {
        self.max_connections
    }

    /// See [`ServerLimits::with_max_connections_per_ip`].
    pub fn max_connections_per_ip(&self) -> u32 {
        self.max_connections_per_ip
    }

    /// See [`ServerLimits::with_ipv6_prefix_len`].
    pub fn ipv6_prefix_len(&self) -> u8 {
        self.ipv6_prefix_len
    }

    /// See [`ServerLimits::with_address_validation`].
    pub fn address_validation(&self) -> AddressValidation {
        self.address_validation
    }

    /// See [`ServerLimits::with_handshake_timeout`].
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// See [`ServerLimits::with_max_concurrent_calls`].
    pub fn max_concurrent_calls(&self) -> u32 {
        self.max_concurrent_calls
    }

    /// See [`ServerLimits::with_max_call_streams`].
    pub fn max_call_streams(&self) -> u32 {
        self.max_call_streams.min(self.max_concurrent_calls)
    }

    /// See [`ServerLimits::with_max_inflight_bytes`].
    pub fn max_inflight_bytes(&self) -> u64 {
        self.max_inflight_bytes
    }

    /// See [`ServerLimits::with_memory_budget`].
    pub fn memory_budget(&self) -> u64 {
        self.memory_budget
    }

    /// See [`ServerLimits::with_call_rate`].
    pub fn call_rate(&self) -> Option<RateLimit> {
        self.call_rate
    }

    /// See [`ServerLimits::with_max_subscriptions`].
    pub fn max_subscriptions(&self) -> usize {
        self.max_subscriptions
    }

    /// See [`ServerLimits::with_max_queued_events`].
    pub fn max_queued_events(&self) -> usize {
        self.max_queued_events
    }

    /// See [`ServerLimits::with_max_queued_bytes`].
    pub fn max_queued_bytes(&self) -> usize {
        self.max_queued_bytes
    }

    /// See [`ServerLimits::with_max_replay_events`].
    pub fn max_replay_events(&self) -> usize {
        self.max_replay_events
    }

    /// See [`ServerLimits::with_resume_grace`].
    pub fn resume_grace(&self) -> Duration {
        self.resume_grace
    }

    /// See [`ServerLimits::with_udp_receive_buffer`].
    pub fn udp_receive_buffer(&self) -> usize {
        self.udp_receive_buffer
    }
}
