//! Why a durable emit or subscription failed.

use std::sync::Arc;

use hardlight_core::{durable::Position, ProtocolError, Topic};

/// The durable store failed: the disk, or a record it cannot read.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The storage engine failed (the disk is full or failing, the file is not a store).
    #[error("durable store failed: {0}")]
    Engine(#[source] Arc<redb::Error>),
    /// A stored record does not decode: the file was changed by something else.
    #[error("durable store holds a record it cannot read ({0})")]
    Corrupt(&'static str),
    /// JetStream (`DurableConfig::jetstream`) is unreachable, or refused the request.
    #[error("JetStream is unavailable or refused the request")]
    Unavailable(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// `DurableConfig::jetstream` needs the server to be in a cluster
    /// (`ServerConfig::with_cluster`).
    #[error("DurableConfig::jetstream needs ServerConfig::with_cluster")]
    NoCluster,
    /// The store's writer has stopped (the server is shutting down, or the store failed
    /// earlier).
    #[error("the durable store is closed")]
    Closed,
}

impl<E: Into<redb::Error>> From<E> for StoreError {
    fn from(error: E) -> Self {
        Self::Engine(Arc::new(error.into()))
    }
}

/// Why a durable event was not stored.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DurableError {
    /// The server has no durable store: configure one with `ServerConfig::with_durable`
    /// (and bind or run the server).
    #[error("no durable store: configure one with ServerConfig::with_durable")]
    NotConfigured,
    /// The serialized event is larger than `Limits::max_message_size`.
    #[error("event of {size} bytes is larger than Limits::max_message_size ({max})")]
    TooLarge {
        /// The serialized event's size.
        size: usize,
        /// The limit.
        max: u32,
    },
    /// The event failed to serialize.
    #[error("event failed to serialize")]
    Encode(#[source] ProtocolError),
    /// The emit's id is longer than `MAX_ID_LEN` bytes.
    #[error("event id of {len} bytes is longer than {max} (EmitOptions::with_id)")]
    IdTooLong {
        /// The id's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A stored event (a dead letter) does not decode as the service's event type.
    #[error("a stored event does not decode as the service's event type")]
    Decode(#[source] ProtocolError),
    /// The topic holds as many events or bytes as its `TopicPolicy` allows, until its
    /// consumers ack or its events expire. Retriable later.
    #[error("durable topic {topic} is full ({events} events, {bytes} bytes; TopicPolicy::max_events and max_bytes)")]
    TopicFull {
        /// The topic.
        topic: Topic,
        /// Events it holds.
        events: u64,
        /// Bytes it holds.
        bytes: u64,
    },
    /// The store holds `DurableConfig::with_max_bytes` bytes. Retriable later.
    #[error("durable store is full ({max} bytes, DurableConfig::with_max_bytes)")]
    StoreFull {
        /// The limit.
        max: u64,
    },
    /// The store failed; the event may not be stored.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a durable subscription was refused.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DurableSubscribeError {
    /// The server has no durable store (`ServerConfig::with_durable`).
    #[error("no durable store: configure one with ServerConfig::with_durable")]
    NotConfigured,
    /// The connection holds `DurableConfig::with_max_consumers_per_connection` durable
    /// subscriptions already.
    #[error("the connection already holds {max} durable subscriptions (DurableConfig::with_max_consumers_per_connection)")]
    TooMany {
        /// The limit.
        max: usize,
    },
    /// The position is from another store (deleted, lost or recreated since): its events
    /// are not this store's. Resynchronize, then subscribe from the store's ack floor or
    /// newest event.
    #[error(
        "position {asked} is from another store (this store's epoch is {epoch}); resynchronize"
    )]
    EpochMismatch {
        /// The position asked for.
        asked: Position,
        /// This store's epoch.
        epoch: u64,
    },
    /// The position is past the topic's last event.
    #[error("position {asked} is past the topic's last event ({last})")]
    PositionAhead {
        /// The position asked for.
        asked: Position,
        /// The topic's last event.
        last: Position,
    },
    /// The connection has ended.
    #[error("the connection has ended")]
    Ended,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
