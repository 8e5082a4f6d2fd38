//! A connection's calls in flight. Each runs on a task of its own, which nothing joins:
//! the table keeps every call's abort handle, so that a `Cancel` or the connection's end
//! drops the handler, and a call that ends wakes nobody. A call is counted in flight until
//! just before its client can have its reply (once the multiplexed writer has room for
//! it, or as it is written to the call's own QUIC stream, whose credit bounds those), so
//! that a client that makes its next call on a reply never finds the server still
//! counting the last. Calls are found by id for cancellation, and refused when the
//! connection is draining, already has the id, or is at
//! `ServerLimits::max_concurrent_calls`.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc, Mutex,
};

use hardlight_core::{calls::CallTable, io::ReadError, ErrorCode, Outcome};
use tokio::task::AbortHandle;
use tracing::debug;

use super::link::CallIo;
use crate::{
    handler::{RpcHandler, StateOf},
    session::{
        dispatch::{overloaded, refusal, reply_frame, Unread},
        CallEnv,
    },
    state_handle::StateHandle,
    sync::lock,
};

/// The calls of one connection.
pub(super) struct Calls {
    table: Arc<Table>,
    max: usize,
}

#[derive(Default)]
struct Table {
    /// Calls counted in flight: serving, or writing their reply or refusal. A peer that
    /// does not read its replies runs into the limits, instead of piling up tasks.
    in_flight: AtomicUsize,
    /// The calls being served, to be aborted.
    running: Mutex<Running>,
}

#[derive(Default)]
struct Running {
    /// Calls with an id, for `Cancel` and the duplicate-id check.
    by_id: CallTable<AbortHandle>,
    /// Calls without one (on QUIC streams of their own), by a serial number.
    unnamed: CallTable<AbortHandle>,
}

/// Where a call's abort handle is kept.
#[derive(Clone, Copy)]
enum Entry {
    /// In `by_id`, unless the call was refused.
    Id(u64),
    /// In `unnamed` under this serial number.
    Serial(u64),
}

/// What every call of the connection runs against.
pub(super) struct Serving<H: RpcHandler> {
    pub(super) handler: Arc<H>,
    pub(super) state: StateHandle<StateOf<H>>,
    pub(super) context: Arc<CallEnv>,
}

impl Calls {
    pub(super) fn new(max_concurrent_calls: u32) -> Self {
        Self {
            table: Arc::default(),
            max: max_concurrent_calls.max(1) as usize,
        }
    }

    /// Calls being served now (not counting those only writing their reply).
    pub(super) fn len(&self) -> usize {
        let running = lock(&self.table.running);
        running.by_id.len() + running.unnamed.len()
    }

    /// Starts serving `io`, or refusing it. `Err` when the peer keeps twice the allowed
    /// calls in flight: a client that honours `Welcome.max_concurrent_calls` never does.
    pub(super) fn start<H: RpcHandler, C: CallIo>(
        &mut self,
        io: C,
        serving: &Serving<H>,
        draining: bool,
    ) -> Result<(), String> {
        let in_flight = self.table.in_flight.load(Ordering::Acquire);
        if in_flight >= 2 * self.max {
            return Err(format!(
                "more than twice max_concurrent_calls ({}) calls in flight",
                self.max
            ));
        }
        let id = io.id();
        let mut running = lock(&self.table.running);
        let by_id = &running.by_id;
        let refused = if draining {
            Some(Outcome::Failure(
                ErrorCode::ShuttingDown,
                "server is shutting down; call not run".into(),
            ))
        } else if id.is_some_and(|id| by_id.contains(id)) {
            Some(Outcome::Failure(
                ErrorCode::Malformed,
                format!("call id {} is already in flight", id.unwrap_or(0)),
            ))
        } else if in_flight >= self.max {
            Some(Outcome::Failure(
                ErrorCode::Overloaded,
                format!("more than max_concurrent_calls ({}) in flight", self.max),
            ))
        } else {
            None
        };
        let entry = match id {
            Some(id) => Entry::Id(id),
            None => Entry::Serial(running.unnamed.next_id()),
        };
        let slot = Slot::take(&self.table, entry);
        let (handler, state, context) = (
            Arc::clone(&serving.handler),
            serving.state.clone(),
            Arc::clone(&serving.context),
        );
        let register = refused.is_none();
        // the call is in the table before its task can run and take it out again. Its
        // future (about 1.5 KiB) is boxed: the runtime moves what it is given into the
        // task and its states, and a box is moved as a pointer
        let abort = tokio::spawn(Box::pin(async move {
            match refused {
                Some(outcome) => {
                    let frame = reply_frame(id.unwrap_or(0), state.version(), outcome, &context);
                    io.reply(frame, move || drop(slot)).await;
                }
                None => serve(io, handler, state, context, slot).await,
            }
        }))
        .abort_handle();
        // a refused call is not entered: it runs no handler, and its id may be another's
        // checked above, and the tables are closed only with the connection
        let _ = match (entry, register) {
            (Entry::Id(id), true) => running.by_id.insert(id, abort),
            (Entry::Serial(serial), _) => running.unnamed.insert(serial, abort),
            (Entry::Id(_), false) => Ok(()),
        };
        Ok(())
    }

    /// The client cancelled call `id`: its task, and the handler future with it, is
    /// dropped.
    pub(super) fn cancel(&mut self, id: u64) {
        if let Some(call) = lock(&self.table.running).by_id.remove(id) {
            call.abort();
        }
    }
}

impl Drop for Calls {
    /// The connection ended: every call still being served is dropped with it.
    fn drop(&mut self) {
        let mut running = lock(&self.table.running);
        let (named, unnamed) = (running.by_id.close(), running.unnamed.close());
        drop(running);
        for call in named.into_iter().chain(unnamed) {
            call.abort();
        }
    }
}

/// A call counted in flight until dropped: just before its client can have its reply, or
/// when its task is aborted.
struct Slot {
    table: Arc<Table>,
    entry: Entry,
}

impl Slot {
    fn take(table: &Arc<Table>, entry: Entry) -> Self {
        table.in_flight.fetch_add(1, Ordering::AcqRel);
        Self {
            table: Arc::clone(table),
            entry,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.table.in_flight.fetch_sub(1, Ordering::AcqRel);
        let mut running = lock(&self.table.running);
        match self.entry {
            Entry::Id(id) => {
                // only this task's own entry: a newer call may have reused the id
                let this = tokio::task::try_id();
                running.by_id.remove_if(id, |call| Some(call.id()) == this);
            }
            Entry::Serial(serial) => {
                running.unnamed.remove(serial);
            }
        }
    }
}

/// Serves one call to completion: every failure becomes a `ReplyFailure`, except a
/// transport failure, which ends the call silently.
async fn serve<H: RpcHandler, C: CallIo>(
    mut io: C,
    handler: Arc<H>,
    state: StateHandle<StateOf<H>>,
    context: Arc<CallEnv>,
    slot: Slot,
) {
    let (id, outcome) = match io.read(&context).await {
        Ok(call) => {
            let id = call.header.id;
            match call.run(handler, &context, &mut io, &state).await {
                Some(outcome) => (id, outcome),
                None => return,
            }
        }
        Err(Unread::Frame(ReadError::Io(error))) => {
            return debug!(%error, "call stream failed before the call was read");
        }
        Err(Unread::Frame(ReadError::Finished)) => (
            0,
            Outcome::Failure(ErrorCode::Malformed, "call stream carried no frame".into()),
        ),
        Err(Unread::Frame(ReadError::Protocol(error))) => {
            debug!(%error, "rejected call frame");
            (io.id().unwrap_or(0), refusal(&error))
        }
        Err(Unread::Overloaded(exhausted)) => {
            debug!("call refused: the memory budget is spent");
            (io.id().unwrap_or(0), overloaded(exhausted))
        }
    };
    let frame = reply_frame(id, state.version(), outcome, &context);
    io.reply(frame, move || drop(slot)).await;
}
