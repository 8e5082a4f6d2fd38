//! What both peers of a connection hold to: the largest message, liveness timing and the
//! write deadline. (What a server admits and holds per peer is `ServerLimits`, in the
//! server crate.)

use std::time::Duration;

/// The shortest keep-alive interval: a shorter one is raised to it.
const MIN_KEEP_ALIVE: Duration = Duration::from_millis(100);

/// Per-connection limits both peers apply: given to the server with
/// `ServerConfig::with_limits` and to a client with `ClientConfig::with_limits`.
///
/// ```
/// use hardlight_core::Limits;
/// use std::time::Duration;
/// let limits = Limits::default()
///     .with_max_message_size(1 << 20)
///     .with_idle_timeout(Duration::from_secs(60));
/// assert_eq!(limits.max_message_size(), 1 << 20);
/// assert_eq!(limits.keep_alive(), Duration::from_secs(2));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    max_message_size: u32,
    idle_timeout: Duration,
    keep_alive: Duration,
    send_timeout: Duration,
    frame_read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_size: 16 << 20,
            idle_timeout: Duration::from_secs(6),
            keep_alive: Duration::from_secs(2),
            send_timeout: Duration::from_secs(30),
            frame_read_timeout: Duration::from_secs(30),
        }
    }
}

impl Limits {
    /// Largest frame body, compressed or not, and largest decompressed body. Default
    /// 16 MiB. Memory: one message of this size is held while it is read and opened (and
    /// the server's per-connection byte budget must hold at least one). A WebSocket
    /// message packing several small frames may hold up to
    /// [`MAX_PACKED_MESSAGE`](crate::frame::MAX_PACKED_MESSAGE) (16 KiB) whatever this is.
    pub fn with_max_message_size(mut self, bytes: u32) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// A connection with nothing from the peer for this long is lost: the bound on
    /// noticing a peer that died without closing (a killed process, a vanished network),
    /// which fails the calls in flight on it. Default 6 s, three keep-alive intervals, so
    /// that a lost keep-alive or two is not taken for a dead peer. Over QUIC both peers
    /// take the smaller of their two values; over WebSocket each applies its own. Raise it
    /// (with `keep_alive`) for links that go silent for longer, e.g. mobile networks.
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Keep-alive interval that holds a quiet connection open and shows the peer is alive.
    /// Default 2 s; anything below 100 ms (zero included) counts as 100 ms. Costs one
    /// small packet and its acknowledgement per interval per quiet connection (over QUIC
    /// whichever peer's timer runs out first sends it, and any packet received restarts
    /// both; over WebSocket the server pings and the client answers), none while traffic
    /// flows. Keep it well below `idle_timeout`.
    pub fn with_keep_alive(mut self, interval: Duration) -> Self {
        self.keep_alive = interval;
        self
    }

    /// Longest a write to the peer may take (a push batch, a reply, a close): a peer that
    /// takes nothing for this long has stopped reading and is disconnected. Default 30 s.
    /// Memory: what was queued for such a peer is held at most this long.
    pub fn with_send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// Longest the server waits for a frame it has begun to read: over QUIC a call's whole
    /// `Call` frame from the moment its stream opens (not counting any wait for the
    /// connection's byte budget), over WebSocket a message from the first of its bytes
    /// that a read finds. A call frame late over QUIC fails that call with
    /// `FrameTimeout`; a late message over WebSocket closes the connection (`SlowSender`).
    /// Default 30 s. Memory: bounds how long a peer that announces a frame and then
    /// trickles it, or stops, holds a call slot and the bytes it sent. Raise it with
    /// `max_message_size` for large messages over slow links (16 MiB in 30 s needs
    /// 4.5 Mbit/s).
    pub fn with_frame_read_timeout(mut self, timeout: Duration) -> Self {
        self.frame_read_timeout = timeout;
        self
    }

    /// See [`Limits::with_max_message_size`].
    pub fn max_message_size(&self) -> u32 {
        self.max_message_size
    }

    /// See [`Limits::with_idle_timeout`].
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// See [`Limits::with_keep_alive`].
    pub fn keep_alive(&self) -> Duration {
        self.keep_alive.max(MIN_KEEP_ALIVE)
    }

    /// See [`Limits::with_send_timeout`].
    pub fn send_timeout(&self) -> Duration {
        self.send_timeout
    }

    /// See [`Limits::with_frame_read_timeout`].
    pub fn frame_read_timeout(&self) -> Duration {
        self.frame_read_timeout
    }
}
