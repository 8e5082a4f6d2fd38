//! How a server joins a cluster: the NATS servers, the subject namespace and the bounds.

use std::{fmt, sync::Arc, time::Duration};

use async_nats::ConnectOptions;

/// A function that adds the application's settings (credentials, TLS, a name) to the
/// NATS connection options.
type Options = Arc<dyn Fn(ConnectOptions) -> ConnectOptions + Send + Sync>;

/// Topics shared by several servers through NATS: events emitted on one server reach the
/// subscribers of their topic on every server of the cluster
/// ([`ServerConfig::with_cluster`](crate::ServerConfig::with_cluster)).
///
/// Each server subscribes in NATS only to the topics it has subscribers for, publishes
/// each event once, and delivers its own events to its own subscribers directly, never
/// through NATS. Delivery across servers is at most once, in order per emitting server and
/// topic; whatever may have been lost is reported to the subscribers concerned as a gap
/// (`RecvError::Gap` on the client). A server whose NATS is unreachable serves and delivers
/// locally, and reconnects and resubscribes by itself. `docs/PROTOCOL.md` §10 Clusters over NATS specifies
/// the subjects and messages.
///
/// ```
/// use std::time::Duration;
/// use hardlight_server::{ClusterConfig, ServerConfig};
///
/// let cluster = ClusterConfig::nats("nats://10.0.0.5:4222")
///     .with_server("nats://10.0.0.6:4222")
///     .with_subject_prefix("chat")
///     .with_linger(Duration::from_secs(5));
/// let config = ServerConfig::new_self_signed("0.0.0.0:8080").with_cluster(cluster);
/// ```
#[derive(Clone)]
pub struct ClusterConfig {
    pub(crate) servers: Vec<String>,
    pub(crate) prefix: String,
    pub(crate) linger: Duration,
    pub(crate) forward_queue: usize,
    pub(crate) ping_interval: Duration,
    pub(crate) receive_buffer: usize,
    pub(crate) options: Option<Options>,
}

impl ClusterConfig {
    /// A cluster through the NATS server at `url` (e.g. `nats://127.0.0.1:4222`; `tls://`
    /// for TLS), with the defaults below.
    pub fn nats(url: impl Into<String>) -> Self {
        Self {
            servers: vec![url.into()],
            prefix: "hardlight".into(),
            linger: Duration::from_secs(2),
            forward_queue: 16_384,
            ping_interval: Duration::from_secs(2),
            receive_buffer: 8192,
            options: None,
        }
    }

    /// Another NATS server of the same NATS cluster, to connect to when the others fail.
    pub fn with_server(mut self, url: impl Into<String>) -> Self {
        self.servers.push(url.into());
        self
    }

    /// The first tokens of every subject this server uses (default `hardlight`): one or
    /// more non-empty tokens separated by `.`, of letters, digits, `-` and `_`. Servers of
    /// one service share a prefix; give every other service (or deployment) sharing the
    /// NATS servers its own.
    pub fn with_subject_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long the server stays subscribed in NATS to a topic that lost its last local
    /// subscriber (default 2 s), so that a topic whose subscribers come and go does not
    /// subscribe and unsubscribe each time. Events of the topic arriving meanwhile are
    /// received and dropped.
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Events waiting to be published to NATS (default 16,384). Each holds its serialized
    /// event, charged to `ServerLimits::memory_budget`; an event that finds the queue full
    /// is not published, and the other servers' subscribers of its topic are told of a gap.
    pub fn with_forward_queue(mut self, events: usize) -> Self {
        self.forward_queue = events.max(1);
        self
    }

    /// How often the server pings NATS when nothing else flows (default 2 s). A NATS server
    /// that answers no ping for two intervals counts as lost: the bound on how late a
    /// silent failure is noticed and reported as gaps.
    pub fn with_ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval;
        self
    }

    /// Events of one topic received from NATS and not yet handed to the local subscribers'
    /// queues (default 8,192). The server hands them over as fast as they come, so the
    /// buffer fills only while it is starved of CPU; what overflows is dropped by NATS's
    /// client and reported as a gap. Memory: at most this many events of up to NATS's
    /// `max_payload` each, per subscribed topic, though in practice a handful.
    pub fn with_receive_buffer(mut self, events: usize) -> Self {
        self.receive_buffer = events.max(1);
        self
    }

    /// Adds settings to the NATS connection options: credentials, TLS roots, a client
    /// name. HardLight sets its own event callback, `no_echo`, the ping interval and
    /// retrying the first connection, over whatever this sets.
    ///
    /// ```
    /// use hardlight_server::{cluster::async_nats, ClusterConfig};
    /// let cluster = ClusterConfig::nats("tls://nats.internal:4222")
    ///     .with_connect_options(|options| options.user_and_password("svc".into(), "secret".into()));
    /// ```
    pub fn with_connect_options(
        mut self,
        options: impl Fn(ConnectOptions) -> ConnectOptions + Send + Sync + 'static,
    ) -> Self {
        self.options = Some(Arc::new(options));
        self
    }
}

impl fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterConfig")
            // URLs may carry credentials
            .field("servers", &self.servers.len())
            .field("prefix", &self.prefix)
            .field("linger", &self.linger)
            .field("forward_queue", &self.forward_queue)
            .field("ping_interval", &self.ping_interval)
            .field("receive_buffer", &self.receive_buffer)
            .finish_non_exhaustive()
    }
}
