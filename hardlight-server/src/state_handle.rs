//! The server-owned connection state that handlers read and write.

use std::{
    ops::{Deref, DerefMut},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard,
    },
};

use hardlight_core::{
    state::{StateBatch, StateTracker},
    ConnectionState, ProtocolError,
};
use tokio::sync::{Notify, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::sync::lock;

/// A handle to one connection's state, as `self.state` in handlers.
///
/// Writes are synced to the client: when a [`StateWriteGuard`] is dropped, the fields
/// it changed are queued for the client, and the reply of the call that made the write
/// is only delivered after them.
///
pub struct StateHandle<S> {
    shared: Arc<Shared<S>>,
}

struct Shared<S> {
    value: RwLock<S>,
    tracker: Mutex<StateTracker>,
    /// The tracker's version, stored under its lock as a write records it: read for
    /// every reply without the lock.
    version: AtomicU64,
    changed: Notify,
}

impl<S> Clone for StateHandle<S> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: ConnectionState> StateHandle<S> {
    pub(crate) fn new(initial: S) -> Result<Self, ProtocolError> {
        let tracker = StateTracker::new(&initial)?;
        Ok(Self {
            shared: Arc::new(Shared {
                value: RwLock::new(initial),
                version: AtomicU64::new(tracker.version()),
                tracker: Mutex::new(tracker),
                changed: Notify::new(),
            }),
        })
    }

    /// Shared read access.
    pub async fn read(&self) -> RwLockReadGuard<'_, S> {
        self.shared.value.read().await
    }

    /// Exclusive write access; changes are sent to the client when the guard drops.
    pub async fn write(&self) -> StateWriteGuard<'_, S> {
        StateWriteGuard {
            guard: self.shared.value.write().await,
            shared: &self.shared,
        }
    }

    /// The version of the last write that changed something.
    pub(crate) fn version(&self) -> u64 {
        self.shared.version.load(Ordering::Acquire)
    }

    /// A full snapshot and its version (for the handshake); clears pending changes.
    pub(crate) async fn snapshot(&self) -> (u64, StateBatch) {
        let _value = self.shared.value.read().await;
        self.tracker().snapshot()
    }

    /// Waits until a write changed something, then takes the coalesced changes.
    pub(crate) async fn next_batch(&self) -> (u64, StateBatch) {
        loop {
            if let Some(batch) = self.tracker().take_pending() {
                return batch;
            }
            self.shared.changed.notified().await;
        }
    }

    fn tracker(&self) -> MutexGuard<'_, StateTracker> {
        lock(&self.shared.tracker)
    }
}

/// Write access to the connection state; derefs to the state.
///
/// On drop (while still holding the lock, so versions follow write order) the changed
/// fields are recorded for the client.
pub struct StateWriteGuard<'a, S: ConnectionState> {
    guard: RwLockWriteGuard<'a, S>,
    shared: &'a Shared<S>,
}

impl<S: ConnectionState> Deref for StateWriteGuard<'_, S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.guard
    }
}

impl<S: ConnectionState> DerefMut for StateWriteGuard<'_, S> {
    fn deref_mut(&mut self) -> &mut S {
        &mut self.guard
    }
}

impl<S: ConnectionState> Drop for StateWriteGuard<'_, S> {
    fn drop(&mut self) {
        let mut tracker = lock(&self.shared.tracker);
        let recorded = tracker.record(&*self.guard);
        self.shared
            .version
            .store(tracker.version(), Ordering::Release);
        drop(tracker);
        match recorded {
            Ok(true) => self.shared.changed.notify_one(),
            Ok(false) => {}
            Err(error) => {
                tracing::error!(%error, "connection state field failed to serialize; change not synced")
            }
        }
    }
}
