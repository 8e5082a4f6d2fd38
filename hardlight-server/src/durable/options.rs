//! What an application says when it emits durably or subscribes durably, and what it gets
//! back.

use std::time::Duration;

use hardlight_core::durable::Position;

/// Longest id an emit may carry, in bytes.
pub const MAX_ID_LEN: usize = 256;

/// How a durable event is emitted: its id (for deduplication) and its time to live.
///
/// ```
/// use std::time::Duration;
/// use hardlight_server::EmitOptions;
/// let options = EmitOptions::default()
///     .with_id("order-1234")
///     .with_ttl(Duration::from_secs(3600));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmitOptions {
    pub(crate) id: Option<String>,
    pub(crate) ttl: Option<Duration>,
}

impl EmitOptions {
    /// An id for the event (at most 256 bytes): an emit with an id already stored in the
    /// same topic within the dedup window (`DurableConfig::with_dedup_window`) is not
    /// stored again and returns the first one's position, so a producer may retry an emit
    /// whose answer it did not get. Consumers receive the id with the event.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// How long the event lives: once expired it is never delivered and its space is
    /// reclaimed. The topic's `TopicPolicy::max_age`, if shorter, wins.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

/// A durable event that is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Emitted {
    /// Where it is stored.
    pub position: Position,
    /// An event with the same id was stored within the dedup window: `position` is that
    /// event's, and nothing new was stored.
    pub duplicate: bool,
}

/// Where a durable subscription starts delivering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartAt {
    /// Where the named consumer stands: its unacked events first (as redeliveries), then
    /// the events after the last one it was sent. A new consumer starts at the topic's
    /// oldest stored event.
    AckFloor,
    /// The events after `position` (which must be from this store): the consumer's
    /// progress is replaced, as if everything up to `position` were acked.
    After(Position),
    /// Only events stored from now on.
    Newest,
}

/// An event a consumer did not ack in `DurableConfig::with_max_deliver` deliveries.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DeadLetter<E> {
    /// The consumer that gave up on it.
    pub consumer: String,
    /// Where the event was stored.
    pub position: Position,
    /// How many times it was delivered.
    pub attempts: u32,
    /// The emitter's id, if any.
    pub id: Option<String>,
    /// The event.
    pub event: E,
}

/// What a durable topic holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicInfo {
    /// Its last stored event's position (`seq` 0 before the first).
    pub last: Position,
    /// Events it holds.
    pub events: u64,
    /// Bytes its events take in the store.
    pub bytes: u64,
}
