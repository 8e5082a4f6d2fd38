//! Client configuration: where to connect, whom to trust, compression and timeouts.

use std::time::Duration;

use hardlight_core::{addr::host_part, Compression, Limits, PROTOCOL_VERSION};

/// Which certificates the client accepts from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Trust {
    /// The operating system's root certificates (the default).
    SystemRoots,
    /// The CA certificates in this PEM bundle only.
    CaPem(Vec<u8>),
    /// **Insecure**: accept any certificate. For development against a self-signed
    /// server only; anyone on the path can impersonate the server.
    InsecureAcceptAny,
}

/// Which transport `connect()` uses.
///
/// In the browser (the `wasm` feature) QUIC means WebTransport, the browser's QUIC, and
/// [`Transport::Auto`] falls back to WebSocket where the browser has no WebTransport or
/// it fails or stalls (see [`ClientConfig::with_quic_head_start`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// QUIC only (WebTransport in the browser).
    Quic,
    /// WebSocket only (TCP + TLS), e.g. where UDP is blocked.
    WebSocket,
    /// Both, racing: QUIC first, WebSocket after a head start for QUIC (see
    /// [`ClientConfig::with_quic_head_start`]); the first to connect is kept (the default).
    #[default]
    Auto,
}

pub use hardlight_core::TransportKind;

/// How a client connects.
///
/// ```
/// use hardlight_client::ClientConfig;
/// use std::time::Duration;
/// let config = ClientConfig::new("example.com:443")
///     .with_call_timeout(Some(Duration::from_secs(5)));
/// assert_eq!(config.addr(), "example.com:443");
/// ```
#[derive(Clone)]
pub struct ClientConfig {
    pub(crate) addr: String,
    pub(crate) server_name: Option<String>,
    pub(crate) trust: Trust,
    pub(crate) compression: Compression,
    pub(crate) call_timeout: Option<Duration>,
    pub(crate) connect_timeout: Duration,
    pub(crate) limits: Limits,
    pub(crate) protocol_version: u16,
    pub(crate) event_buffer: usize,
    pub(crate) transport: Transport,
    pub(crate) quic_head_start: Duration,
    pub(crate) stream_per_call: bool,
    pub(crate) token: Option<Vec<u8>>,
    /// Certificates a browser accepts for WebTransport by their SHA-256 hash.
    pub(crate) certificate_hashes: Vec<[u8; 32]>,
    pub(crate) reconnect: Option<Reconnect>,
    /// Set per attempt by the reconnect loop, never by users.
    pub(crate) resume: Option<hardlight_core::handshake::Resume>,
    /// In-process instead of over the network.
    #[cfg(feature = "native")]
    pub(crate) memory: Option<hardlight_core::memory::InMemory>,
    /// Whether a reconnection sends its `Hello` in 0-RTT.
    #[cfg(feature = "native")]
    pub(crate) zero_rtt: bool,
    /// The QUIC TLS configuration (and the session tickets servers issued), built on
    /// first use and shared by the config's clones.
    #[cfg(feature = "native")]
    pub(crate) quic_tls: crate::quic::QuicTls,
}

/// Leaves out the token and the session being resumed.
impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("addr", &self.addr)
            .field("server_name", &self.server_name)
            .field("trust", &self.trust)
            .field("compression", &self.compression)
            .field("call_timeout", &self.call_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("limits", &self.limits)
            .field("protocol_version", &self.protocol_version)
            .field("event_buffer", &self.event_buffer)
            .field("transport", &self.transport)
            .field("quic_head_start", &self.quic_head_start)
            .field("token", &self.token.as_ref().map(|_| ".."))
            .field("reconnect", &self.reconnect)
            .field("resume", &self.resume)
            .finish_non_exhaustive()
    }
}

/// How a client reconnects after losing its connection: jittered exponential backoff.
/// The default retries forever, starting at 100 ms and doubling up to 10 s; each wait is
/// drawn uniformly from its upper half, so that many clients do not reconnect in step.
///
/// ```
/// use hardlight_client::{ClientConfig, Reconnect};
/// use std::time::Duration;
/// let config = ClientConfig::new("example.com:443").with_reconnect(Some(Reconnect {
///     max_attempts: Some(20),
///     ..Reconnect::default()
/// }));
/// # let _ = config;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconnect {
    /// The first wait.
    pub initial_delay: Duration,
    /// The longest wait.
    pub max_delay: Duration,
    /// Attempts before giving up (`None`: never give up).
    pub max_attempts: Option<u32>,
}

impl Default for Reconnect {
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            max_attempts: None,
        }
    }
}

impl Reconnect {
    /// The wait before attempt `attempt` (1-based), given a uniform `random` in [0, 1).
    ///
    /// ```
    /// use hardlight_client::Reconnect;
    /// use std::time::Duration;
    /// let policy = Reconnect::default();
    /// assert_eq!(policy.delay(1, 0.0), Duration::from_millis(50));
    /// assert!(policy.delay(3, 0.999) > Duration::from_millis(399));
    /// assert!(policy.delay(3, 0.999) <= Duration::from_millis(400));
    /// assert!(policy.delay(40, 0.999) <= Duration::from_secs(10));
    /// ```
    pub fn delay(&self, attempt: u32, random: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30);
        let ceiling = self
            .initial_delay
            .saturating_mul(1 << exponent)
            .min(self.max_delay);
        ceiling.mul_f64(0.5 + random.clamp(0.0, 1.0) / 2.0)
    }
}

impl ClientConfig {
    /// Connect to `addr` (`host:port`), verifying the server against the system roots.
    pub fn new(addr: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            server_name: None,
            trust: Trust::SystemRoots,
            compression: Compression::default(),
            call_timeout: None,
            connect_timeout: Duration::from_secs(10),
            limits: Limits::default(),
            protocol_version: PROTOCOL_VERSION,
            event_buffer: 1024,
            transport: Transport::Auto,
            quic_head_start: Duration::from_millis(250),
            stream_per_call: false,
            token: None,
            certificate_hashes: Vec::new(),
            reconnect: Some(Reconnect::default()),
            resume: None,
            #[cfg(feature = "native")]
            memory: None,
            #[cfg(feature = "native")]
            zero_rtt: true,
            #[cfg(feature = "native")]
            quic_tls: Default::default(),
        }
    }

    /// Connect in-process, over memory, to the server `memory` came from
    /// (`Server::in_memory`): the same protocol, handshake, limits and lifecycle as over
    /// the network, with no socket. For tests of applications.
    ///
    /// ```no_run
    /// # fn demo(memory: hardlight_core::memory::InMemory) {
    /// let config = hardlight_client::ClientConfig::in_memory(memory);
    /// # let _ = config;
    /// # }
    /// ```
    #[cfg(feature = "native")]
    pub fn in_memory(memory: hardlight_core::memory::InMemory) -> Self {
        Self {
            memory: Some(memory),
            ..Self::new("memory")
        }
    }

    /// Sends `token` in the handshake, for the server's authenticator.
    pub fn with_token(mut self, token: impl Into<Vec<u8>>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// How to reconnect after a lost connection; `None` to stay disconnected.
    pub fn with_reconnect(mut self, reconnect: Option<Reconnect>) -> Self {
        self.reconnect = reconnect;
        self
    }

    /// Trust only the CA certificates in this PEM bundle.
    pub fn with_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.trust = Trust::CaPem(pem.into());
        #[cfg(feature = "native")]
        {
            self.quic_tls = Default::default();
        }
        self
    }

    /// Sets which certificates to trust.
    pub fn with_trust(mut self, trust: Trust) -> Self {
        self.trust = trust;
        #[cfg(feature = "native")]
        {
            self.quic_tls = Default::default();
        }
        self
    }

    /// In the browser, accept over WebTransport the server certificate whose SHA-256 hash
    /// is `hash` (the server's `ServerConfig::certificate_sha256`), as browsers allow for
    /// a self-signed ECDSA certificate valid for at most 14 days
    /// (`ServerConfig::new_self_signed` makes one). This is how a development page
    /// reaches a development server over QUIC; the browser's WebSocket still trusts only
    /// what the browser trusts. May be given several times (e.g. across a certificate
    /// rotation). Native clients verify certificates by [`Trust`] and ignore it.
    ///
    /// ```
    /// let hash = [0u8; 32]; // from the server, e.g. embedded in the page
    /// let config = hardlight_client::ClientConfig::new("localhost:4433").with_certificate_hash(hash);
    /// # let _ = config;
    /// ```
    pub fn with_certificate_hash(mut self, hash: [u8; 32]) -> Self {
        self.certificate_hashes.push(hash);
        self
    }

    /// **Insecure**: accept any server certificate (development with self-signed servers).
    pub fn insecure_accept_any_certificate(self) -> Self {
        self.with_trust(Trust::InsecureAcceptAny)
    }

    /// The name the certificate must be valid for; defaults to the host part of the address.
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// The compression to offer.
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// A deadline for every call (`None`: calls wait as long as the connection lives).
    pub fn with_call_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// A deadline for `connect()`. Default 10 s.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Limits on what the client accepts (reply size) and its keep-alive/idle timing.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Which transport to use. Default [`Transport::Auto`].
    pub fn with_transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// With [`Transport::Auto`], how long QUIC may try alone before WebSocket starts
    /// racing it. Default 250 ms. In the browser this also bounds what a WebTransport
    /// that never opens (some browsers' implementations stall) costs: WebSocket starts
    /// after it, and the first to connect wins.
    pub fn with_quic_head_start(mut self, head_start: Duration) -> Self {
        self.quic_head_start = head_start;
        self
    }

    /// Over QUIC, send every call on a stream of its own, as calls above 16 KiB always
    /// are, instead of multiplexing small calls on the call channel. Under packet loss a
    /// call then never waits for the retransmission of another call's packet; each call
    /// costs about twice the CPU. Default `false` (`docs/PROTOCOL.md`,
    /// §1 Transport and negotiation).
    ///
    /// ```
    /// let config = hardlight_client::ClientConfig::new("example.com:4433").with_stream_per_call(true);
    /// # let _ = config;
    /// ```
    pub fn with_stream_per_call(mut self, stream_per_call: bool) -> Self {
        self.stream_per_call = stream_per_call;
        self
    }

    /// Whether a reconnection (or a new client made from a clone of this config) to a
    /// QUIC server that issued a TLS session ticket sends its `Hello` as 0-RTT data, so
    /// that the first reply comes one round trip sooner. Default on. No call is ever sent
    /// in 0-RTT (an attacker could replay it); the server takes the 0-RTT `Hello` only
    /// once, as its tickets are single-use (docs/PROTOCOL.md §1 Transport and negotiation). Off, a reconnection
    /// still resumes the TLS session, in one round trip.
    ///
    /// ```
    /// let config = hardlight_client::ClientConfig::new("example.com:4433").with_zero_rtt(false);
    /// # let _ = config;
    /// ```
    #[cfg_attr(not(feature = "native"), allow(unused_mut))]
    pub fn with_zero_rtt(mut self, zero_rtt: bool) -> Self {
        #[cfg(feature = "native")]
        {
            self.zero_rtt = zero_rtt;
            self.quic_tls = Default::default();
        }
        #[cfg(not(feature = "native"))]
        let _ = zero_rtt;
        self
    }

    /// Events buffered for each subscription before the slowest one lags. Default 1024.
    pub fn with_event_buffer(mut self, events: usize) -> Self {
        self.event_buffer = events.max(1);
        self
    }

    /// Speak another protocol version (only for testing version negotiation).
    #[doc(hidden)]
    pub fn with_protocol_version(mut self, version: u16) -> Self {
        self.protocol_version = version;
        #[cfg(feature = "native")]
        {
            self.quic_tls = Default::default();
        }
        self
    }

    /// The address to connect to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The server name used for certificate verification.
    pub fn server_name(&self) -> &str {
        self.server_name
            .as_deref()
            .or_else(|| host_part(&self.addr))
            .unwrap_or(&self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_leaves_out_the_token_and_the_session() {
        let mut config = ClientConfig::new("example.com:443").with_token("s3cret");
        config.resume = Some(hardlight_core::handshake::Resume {
            session_id: [0xab; 16],
            events_received: 0,
        });
        let shown = format!("{config:?}");
        assert!(!shown.contains("115, 51"), "{shown}"); // "s3" as bytes
        assert!(!shown.contains("171"), "{shown}"); // 0xab
        assert!(shown.contains("example.com:443"));
    }
}
