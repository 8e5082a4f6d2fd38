//! How durable topics are stored and delivered: where the store is, the retention of each
//! topic, and the delivery bounds of each consumer.

use std::{path::PathBuf, time::Duration};

use hardlight_core::Topic;

/// Durable topics: events stored on disk before `emit_durable` returns, delivered to
/// named consumers at least once until acked
/// ([`ServerConfig::with_durable`](crate::ServerConfig::with_durable)).
///
/// The store is one file (`path`), created on first start; a server restarted on the same
/// file continues where it stopped. Deleting the file starts a new store with a new epoch,
/// and positions from the old one are refused (`docs/PROTOCOL.md` §11 Durable topics).
///
/// ```
/// use std::time::Duration;
/// use hardlight_server::{DurableConfig, ServerConfig, TopicPolicy};
///
/// let durable = DurableConfig::new("/var/lib/chat/events.redb")
///     .with_ack_wait(Duration::from_secs(10))
///     .with_max_deliver(3)
///     .with_policy_for("inbox/", TopicPolicy::default().with_max_age(Duration::from_secs(86_400)));
/// let config = ServerConfig::new_self_signed("0.0.0.0:8080").with_durable(durable);
/// ```
#[derive(Debug, Clone)]
pub struct DurableConfig {
    pub(crate) path: PathBuf,
    pub(crate) ack_wait: Duration,
    pub(crate) max_deliver: u32,
    pub(crate) max_in_flight: usize,
    pub(crate) dedup_window: Duration,
    pub(crate) max_bytes: u64,
    pub(crate) max_consumers_per_connection: usize,
    pub(crate) default_policy: TopicPolicy,
    /// Policies by topic prefix; the longest matching prefix wins.
    pub(crate) policies: Vec<(Topic, TopicPolicy)>,
    pub(crate) sweep_interval: Duration,
    /// Test-only: commits are not synced, so an `Ok` emit is not stored yet.
    pub(crate) unsynced: bool,
    /// Stored in the cluster's JetStream rather than at `path`.
    #[cfg(feature = "nats")]
    pub(crate) jetstream: bool,
}

impl DurableConfig {
    /// Durable topics stored in the file at `path` (created with the store), with the
    /// defaults below.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            ack_wait: Duration::from_secs(30),
            max_deliver: 5,
            max_in_flight: 256,
            dedup_window: Duration::from_secs(120),
            max_bytes: 1 << 30,
            max_consumers_per_connection: 16,
            default_policy: TopicPolicy::default(),
            policies: Vec::new(),
            sweep_interval: Duration::from_secs(1),
            unsynced: false,
            #[cfg(feature = "nats")]
            jetstream: false,
        }
    }

    /// Durable topics stored in the cluster's NATS JetStream (the server must have
    /// `ServerConfig::with_cluster`), shared by every server of the service: a consumer
    /// goes on through any of them from the same ack floor. One stream holds them all
    /// (`docs/PROTOCOL.md` §11 Durable topics): JetStream applies the default
    /// [`TopicPolicy`] to every topic, removes events by age and limits only (not once
    /// acked), and counts TTLs in whole seconds. Run JetStream with
    /// `sync_interval: always` for an `Ok` emit to survive a NATS crash as with the
    /// embedded store.
    ///
    /// ```
    /// use hardlight_server::{ClusterConfig, DurableConfig, ServerConfig};
    /// let config = ServerConfig::new_self_signed("0.0.0.0:8080")
    ///     .with_cluster(ClusterConfig::nats("nats://10.0.0.5:4222"))
    ///     .with_durable(DurableConfig::jetstream());
    /// ```
    #[cfg(feature = "nats")]
    pub fn jetstream() -> Self {
        Self {
            jetstream: true,
            ..Self::new(PathBuf::new())
        }
    }

    /// How long a delivered event may stay unacked before it is delivered again (default
    /// 30 s; at least 10 ms).
    pub fn with_ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait.max(Duration::from_millis(10));
        self
    }

    /// Deliveries of one event to one consumer before it goes to the consumer's dead
    /// letters instead (default 5; at least 1).
    pub fn with_max_deliver(mut self, max_deliver: u32) -> Self {
        self.max_deliver = max_deliver.max(1);
        self
    }

    /// Events delivered to one consumer and not yet acked (default 256; at least 1). A
    /// consumer at the limit gets no new event until it acks one or an ack wait passes;
    /// the server holds at most this many of its events in memory.
    pub fn with_max_in_flight(mut self, max_in_flight: usize) -> Self {
        self.max_in_flight = max_in_flight.max(1);
        self
    }

    /// How long an emit's id is remembered (default 2 min): an emit with an id stored
    /// within the window is not stored again, and returns the first one's position.
    pub fn with_dedup_window(mut self, window: Duration) -> Self {
        self.dedup_window = window;
        self
    }

    /// Bytes of events the store holds in all, dead letters included (default 1 GiB):
    /// past it emits are refused with `DurableError::StoreFull`.
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Durable subscriptions one connection may hold (default 16).
    pub fn with_max_consumers_per_connection(mut self, max: usize) -> Self {
        self.max_consumers_per_connection = max;
        self
    }

    /// The retention of topics no [`DurableConfig::with_policy_for`] prefix matches.
    pub fn with_policy(mut self, policy: TopicPolicy) -> Self {
        self.default_policy = policy;
        self
    }

    /// The retention of topics starting with `prefix` (the longest matching prefix wins).
    pub fn with_policy_for(mut self, prefix: impl Into<Topic>, policy: TopicPolicy) -> Self {
        self.policies.push((prefix.into(), policy));
        self
    }

    /// How often expired events and dedup entries are removed (default 1 s). Expired
    /// events are never delivered, whenever they are removed.
    pub fn with_sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// **Breaks durability; for testing the tests only**: commits are not synced, so an
    /// emit returns `Ok` before its event is stored and a crash loses it.
    #[doc(hidden)]
    pub fn __unsynced_for_tests(mut self) -> Self {
        self.unsynced = true;
        self
    }

    /// The policy of `topic`.
    pub(crate) fn policy(&self, topic: &Topic) -> &TopicPolicy {
        self.policies
            .iter()
            .filter(|(prefix, _)| topic.as_bytes().starts_with(prefix.as_bytes()))
            .max_by_key(|(prefix, _)| prefix.as_bytes().len())
            .map_or(&self.default_policy, |(_, policy)| policy)
    }
}

/// How long a durable topic keeps its events and how many it holds.
///
/// An event leaves its topic when it expires, or when every consumer of the topic has
/// acked it (a topic without consumers keeps its events for the first one). A full topic
/// refuses emits (`DurableError::TopicFull`): nothing stored is dropped to make room.
///
/// ```
/// use std::time::Duration;
/// use hardlight_server::TopicPolicy;
/// let policy = TopicPolicy::default()
///     .with_max_age(Duration::from_secs(3600))
///     .with_max_events(10_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicPolicy {
    /// Events expire this long after they are stored (an emit may ask for less).
    pub max_age: Option<Duration>,
    /// Events the topic holds at once (default 100,000).
    pub max_events: u64,
    /// Bytes of events the topic holds at once (default 64 MiB).
    pub max_bytes: u64,
    /// Dead letters kept per consumer of the topic (default 1,024): past it the oldest is
    /// removed.
    pub max_dead_letters: u64,
}

impl Default for TopicPolicy {
    fn default() -> Self {
        Self {
            max_age: None,
            max_events: 100_000,
            max_bytes: 64 << 20,
            max_dead_letters: 1024,
        }
    }
}

impl TopicPolicy {
    /// Sets [`TopicPolicy::max_age`].
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// Sets [`TopicPolicy::max_events`].
    pub fn with_max_events(mut self, max_events: u64) -> Self {
        self.max_events = max_events;
        self
    }

    /// Sets [`TopicPolicy::max_bytes`].
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Sets [`TopicPolicy::max_dead_letters`].
    pub fn with_max_dead_letters(mut self, max: u64) -> Self {
        self.max_dead_letters = max;
        self
    }
}
