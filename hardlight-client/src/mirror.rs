//! The client's mirror of the connection state.

use std::sync::Arc;

use hardlight_core::{state::StateBatch, ConnectionState, ProtocolError};
use tokio::sync::watch;

/// The mirrored state plus what calls need to wait for it.
#[derive(Debug)]
pub(crate) struct Mirror<S> {
    /// Which connection the state belongs to; bumped by every `connect()`.
    pub(crate) generation: u64,
    /// Whether that connection is still up.
    pub(crate) connected: bool,
    /// The server state version the mirror shows.
    pub(crate) version: u64,
    /// The state itself, shared with readers.
    pub(crate) state: Arc<S>,
}

impl<S: ConnectionState> Mirror<S> {
    pub(crate) fn new() -> Self {
        Self {
            generation: 0,
            connected: false,
            version: 0,
            state: Arc::new(S::default()),
        }
    }
}

/// Applies a batch at `version` to the mirror of connection `generation`; all fields
/// become visible together or, if the batch is invalid, none.
pub(crate) fn apply<S: ConnectionState>(
    mirror: &watch::Sender<Mirror<S>>,
    generation: u64,
    version: u64,
    batch: &StateBatch,
) -> Result<(), ProtocolError> {
    let mut result = Ok(());
    mirror.send_if_modified(|m| {
        if m.generation != generation || version <= m.version {
            return false;
        }
        let mut next = S::clone(&m.state);
        match batch.apply_to(&mut next) {
            Ok(()) => {
                m.state = Arc::new(next);
                m.version = version;
                true
            }
            Err(e) => {
                result = Err(e);
                false
            }
        }
    });
    result
}

/// Marks connection `generation` as gone, waking calls waiting for its state.
pub(crate) fn mark_disconnected<S>(mirror: &watch::Sender<Mirror<S>>, generation: u64) {
    mirror.send_if_modified(|m| {
        let current = m.generation == generation && m.connected;
        if current {
            m.connected = false;
        }
        current
    });
}

/// Live view of the mirrored state; see `Client::watch_state`.
///
/// ```no_run
/// # async fn demo<S: hardlight_core::ConnectionState + std::fmt::Debug>(mut watcher: hardlight_client::StateWatcher<S>) {
/// while let Some(state) = watcher.changed().await {
///     println!("state is now {state:?}");
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct StateWatcher<S> {
    pub(crate) rx: watch::Receiver<Mirror<S>>,
}

impl<S: ConnectionState> StateWatcher<S> {
    /// The state now.
    pub fn current(&self) -> Arc<S> {
        Arc::clone(&self.rx.borrow().state)
    }

    /// Waits for the next change and returns the new state; `None` once the client is dropped.
    pub async fn changed(&mut self) -> Option<Arc<S>> {
        self.rx.changed().await.ok()?;
        Some(self.current())
    }
}
