//! A connection's calls in flight: each on its own task, counted until just before its
//! client can have its reply (once the multiplexed writer has room for it, or as it is
//! written to the call's own QUIC stream, whose credit bounds those), so that a client
//! that makes its next call on a reply never finds the server still counting the last;
//! found by id for cancellation, refused when the connection is draining, already has
//! the id, or is at `ServerLimits::max_concurrent_calls`.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc, Mutex,
};

use hardlight_core::{calls::CallTable, io::ReadError, ErrorCode, Outcome};
use tokio::task::{AbortHandle, JoinSet};
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
    tasks: JoinSet<()>,
    table: Arc<Table>,
    max: usize,
}

#[derive(Default)]
struct Table {
    /// Calls counted in flight: serving, or writing their reply or refusal. A peer that
    /// does not read its replies runs into the limits, instead of piling up tasks.
    in_flight: AtomicUsize,
    /// Calls with an id, for `Cancel` and the duplicate-id check.
    by_id: Mutex<CallTable<AbortHandle>>,
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
            tasks: JoinSet::new(),
            table: Arc::default(),
            max: max_concurrent_calls.max(1) as usize,
        }
    }

    /// Calls on their tasks now.
    pub(super) fn len(&self) -> usize {
        self.tasks.len()
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
        let mut by_id = lock(&self.table.by_id);
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
        let slot = Slot::take(&self.table, id);
        let (handler, state, context) = (
            Arc::clone(&serving.handler),
            serving.state.clone(),
            Arc::clone(&serving.context),
        );
        let register = refused.is_none();
        // the id is in the table before the task can run and take it out again
        let abort = self.tasks.spawn(async move {
            match refused {
                Some(outcome) => {
                    let frame = reply_frame(id.unwrap_or(0), state.version(), outcome, &context);
                    io.reply(frame, move || drop(slot)).await;
                }
                None => serve(io, handler, state, context, slot).await,
            }
        });
        if let (Some(id), true) = (id, register) {
            // checked above, and the table is closed only with the connection
            let _ = by_id.insert(id, abort);
        }
        Ok(())
    }

    /// The client cancelled call `id`: its task, and the handler future with it, is
    /// dropped.
    pub(super) fn cancel(&mut self, id: u64) {
        if let Some(call) = lock(&self.table.by_id).remove(id) {
            call.abort();
        }
    }

    /// Completes when a call's task has ended (`None` when there are none).
    pub(super) async fn reap(&mut self) -> Option<()> {
        self.tasks.join_next().await.map(|_| ())
    }
}

/// A call counted in flight until dropped: just before its client can have its reply, or
/// when its task is aborted.
struct Slot {
    table: Arc<Table>,
    id: Option<u64>,
}

impl Slot {
    fn take(table: &Arc<Table>, id: Option<u64>) -> Self {
        table.in_flight.fetch_add(1, Ordering::AcqRel);
        Self {
            table: Arc::clone(table),
            id,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.table.in_flight.fetch_sub(1, Ordering::AcqRel);
        let Some(id) = self.id else {
            return;
        };
        // only this task's own entry: a newer call may have reused the id
        let this = tokio::task::try_id();
        lock(&self.table.by_id).remove_if(id, |call| Some(call.id()) == this);
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
