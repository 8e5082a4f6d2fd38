//! Calls in flight by id, as the server keeps them for a connection that multiplexes
//! calls over one message channel (WebSocket, the QUIC call channel), without I/O. The
//! ids are the client's, so the table is a hash map seeded per table; what each call
//! waits with (its task) is the table's `T`. The client, which chooses its ids, indexes
//! its calls by them directly.

use std::collections::{hash_map::Entry, HashMap};

/// Call ids are chosen by the peer, so the table's hasher is seeded per table (no peer
/// can aim for collisions) and fast on `u64` keys (std's SipHash costs several times as
/// much per call).
type Hasher = foldhash::fast::RandomState;

/// Why a call could not be entered in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallRefused {
    /// A call with this id is already in flight.
    #[error("call id {0} is already in flight")]
    DuplicateId(u64),
    /// The connection is closed: no more calls.
    #[error("the connection is closed")]
    Closed,
}

/// The calls of one connection, by id.
///
/// ```
/// use hardlight_core::calls::{CallRefused, CallTable};
/// let mut calls = CallTable::new();
/// calls.insert(1, "waiting").unwrap();
/// assert_eq!(calls.insert(1, "again"), Err(CallRefused::DuplicateId(1)));
/// assert_eq!(calls.remove(1), Some("waiting"));
/// calls.insert(2, "cut off").unwrap();
/// assert_eq!(calls.close(), vec!["cut off"]);
/// assert_eq!(calls.insert(9, "late"), Err(CallRefused::Closed));
/// ```
#[derive(Debug)]
pub struct CallTable<T> {
    waiting: HashMap<u64, T, Hasher>,
    closed: bool,
}

impl<T> Default for CallTable<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> CallTable<T> {
    /// An empty, open table.
    pub fn new() -> Self {
        Self {
            waiting: HashMap::default(),
            closed: false,
        }
    }

    /// Enters call `id`, waiting with `waiter`.
    pub fn insert(&mut self, id: u64, waiter: T) -> Result<(), CallRefused> {
        if self.closed {
            return Err(CallRefused::Closed);
        }
        match self.waiting.entry(id) {
            Entry::Occupied(_) => Err(CallRefused::DuplicateId(id)),
            Entry::Vacant(slot) => {
                slot.insert(waiter);
                Ok(())
            }
        }
    }

    /// Takes call `id` out (its reply came, or it was cancelled).
    pub fn remove(&mut self, id: u64) -> Option<T> {
        self.waiting.remove(&id)
    }

    /// Takes call `id` out if `is_it` holds for its waiter (a newer call may have reused
    /// the id).
    pub fn remove_if(&mut self, id: u64, is_it: impl FnOnce(&T) -> bool) -> Option<T> {
        match self.waiting.entry(id) {
            Entry::Occupied(call) if is_it(call.get()) => Some(call.remove()),
            _ => None,
        }
    }

    /// Call `id`'s waiter.
    pub fn get(&self, id: u64) -> Option<&T> {
        self.waiting.get(&id)
    }

    /// Call `id`'s waiter, left in the table (a streaming call's, between its items).
    pub fn get_mut(&mut self, id: u64) -> Option<&mut T> {
        self.waiting.get_mut(&id)
    }

    /// Whether call `id` is in flight.
    pub fn contains(&self, id: u64) -> bool {
        self.waiting.contains_key(&id)
    }

    /// Calls in flight.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether no call is in flight.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Closes the table: returns every waiting call (to be failed) and refuses new ones.
    pub fn close(&mut self) -> Vec<T> {
        self.closed = true;
        self.waiting.drain().map(|(_, waiter)| waiter).collect()
    }
}
