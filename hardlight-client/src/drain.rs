//! Counting a connection's calls in flight, so that after the server's `GoAway` the client
//! closes once its last call has its reply.

use std::{
    ops::Deref,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
};

use hardlight_core::close::Close;

use crate::error::{CallError, TransportError};

/// The drain state of one connection; `close` ends it.
pub(crate) struct Drain {
    draining: AtomicBool,
    in_flight: AtomicUsize,
    close: Box<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for Drain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drain")
            .field("draining", &self.draining)
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

impl Drain {
    pub(crate) fn new(close: impl Fn() + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self {
            draining: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            close: Box::new(close),
        })
    }

    /// Counts a call as in flight until the guard drops; refused once draining. The guard
    /// borrows the drain: for a call whose future borrows its connection.
    pub(crate) fn enter(&self) -> Result<InFlight<&Self>, CallError> {
        self.count()?;
        Ok(InFlight(self))
    }

    /// [`enter`](Drain::enter), the guard holding the drain: for a call that outlives
    /// the borrow of its connection (a streaming call's items).
    pub(crate) fn enter_owned(self: &Arc<Self>) -> Result<InFlight<Arc<Self>>, CallError> {
        self.count()?;
        Ok(InFlight(Arc::clone(self)))
    }

    fn count(&self) -> Result<(), CallError> {
        if self.draining.load(Ordering::Acquire) {
            return Err(CallError::Transport(TransportError::closed(
                Some(Close::Shutdown),
                "server is shutting down",
            )));
        }
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// The server sent `GoAway`.
    pub(crate) fn go_away(&self) {
        self.draining.store(true, Ordering::Release);
        if self.in_flight.load(Ordering::Acquire) == 0 {
            (self.close)();
        }
    }
}

/// A call in flight; `D` is how it holds its connection's [`Drain`].
#[derive(Debug)]
pub(crate) struct InFlight<D: Deref<Target = Drain>>(D);

impl<D: Deref<Target = Drain>> Drop for InFlight<D> {
    fn drop(&mut self) {
        let left = self.0.in_flight.fetch_sub(1, Ordering::AcqRel) - 1;
        if left == 0 && self.0.draining.load(Ordering::Acquire) {
            (self.0.close)();
        }
    }
}
