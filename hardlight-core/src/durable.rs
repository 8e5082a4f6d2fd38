//! Durable events on the wire: their positions and the body of a `Durable` frame.
//!
//! A durable topic stores each event at a **position**: the store's epoch (a random number
//! drawn when the store was created) and a sequence number, from 1, per topic. A client
//! that holds a position from one store never replays it against another: the epochs
//! differ and the server refuses the position.

use std::fmt;

use crate::Topic;

/// Where a durable event is stored: `seq` within its topic, in the store of `epoch`.
///
/// Sequence numbers of one topic grow by one per stored event; comparing positions makes
/// sense only within one epoch.
///
/// ```
/// use hardlight_core::durable::Position;
/// let position = Position { epoch: 7, seq: 42 };
/// assert_eq!(position.to_string(), "7:42");
/// assert!(position.follows(Position { epoch: 7, seq: 41 }));
/// assert!(!position.follows(Position { epoch: 8, seq: 41 }));
/// ```
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub struct Position {
    /// The store's epoch: a new store (deleted, lost or recreated) has a new one.
    pub epoch: u64,
    /// The event's number in its topic, from 1; 0 is "before the first event".
    pub seq: u64,
}

impl crate::schema::Schema for Position {
    fn describe(layout: &mut crate::schema::Layout) {
        layout.named::<Self>("Position", |l| {
            l.structure(&[
                ("epoch", <u64 as crate::schema::Schema>::describe),
                ("seq", <u64 as crate::schema::Schema>::describe),
            ])
        });
    }
}

impl Position {
    /// Whether this position comes after `other` in the same store.
    pub fn follows(self, other: Position) -> bool {
        self.epoch == other.epoch && self.seq > other.seq
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.epoch, self.seq)
    }
}

/// The body of a `Durable` frame: one delivery of a stored event to a consumer. The frame's
/// `id` is the event's sequence number and its `aux` the consumer's slot on the
/// connection, which the client's `Ack` repeats.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Delivery {
    /// The topic the event was emitted on.
    pub topic: Topic,
    /// The consumer it is delivered for.
    pub consumer: String,
    /// The store's epoch ([`Position::epoch`]).
    pub epoch: u64,
    /// 1 for the first delivery to this consumer, 2 for the first redelivery, and so on.
    pub attempt: u32,
    /// The id the emitter gave the event, if any (the key of deduplication).
    pub id: Option<String>,
    /// The event: an archive of the service's event type.
    pub event: Vec<u8>,
}
