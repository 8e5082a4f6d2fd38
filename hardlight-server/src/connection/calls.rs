//! A connection's calls in flight. A call is started where it arrives, in the
//! connection's task. A multiplexed call (read with the frames before it) whose handler
//! completes in its first poll is served there and then: prepared, its handler polled
//! once, its reply queued, with no future of its own around the handler's. Any other call
//! gets a future, polled once there too; one that waits is moved, boxed, to a task of its
//! own, which nothing joins: the table keeps its abort handle, so that a `Cancel` or the
//! connection's end drops the handler, and a call that ends wakes nobody. A call is
//! counted in flight until just before its client can have its reply (once the
//! multiplexed writer has room for it, or as it is written to the call's own QUIC stream,
//! whose credit bounds those), so that a client that makes its next call on a reply never
//! finds the server still counting the last; a call cancelled by `Cancel` stops counting
//! as the `Cancel` is read, so that the call the client sends after it finds its slot.
//! Calls that wait are found by id for cancellation (one that completes where it arrives
//! is never entered in the table), and calls are refused when the connection is draining,
//! already has the id, or is at `ServerLimits::max_concurrent_calls`.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use futures_util::FutureExt;
use hardlight_core::{
    calls::CallTable, io::ReadError, message::Framed, service::HandlerFuture, ErrorCode, Outcome,
};
use tokio::task::AbortHandle;
use tracing::debug;

use super::link::CallIo;
use crate::{
    handler::{RpcHandler, StateOf},
    session::{
        dispatch::{overloaded, refusal, reply_frame, Polled, Prepared, Unread, Waiting},
        CallEnv,
    },
    state_handle::StateHandle,
    stats::Tally,
    sync::lock,
};

/// The calls of one connection, whose futures are `F`.
pub(super) struct Calls<F> {
    table: Arc<Table>,
    max: usize,
    /// The box of a call future that completed in its first poll, for the next to reuse: a
    /// burst of calls read together allocates one. Dropped when the connection waits on
    /// its peer ([`Calls::idle`]): an idle connection holds none.
    spare: Option<Pin<Box<F>>>,
    /// Likewise, the box of a handler's future that completed in its first poll.
    handling: HandlerFuture,
    /// The last call's serial number (0: none yet).
    serial: u64,
}

#[derive(Default)]
struct Table {
    /// Calls counted in flight: serving, or writing their reply or refusal, once beyond
    /// their first poll ([`LocalSlot`]), until their slot is given back or their `Cancel`
    /// is read (their task may end later). A peer that does not read its replies runs
    /// into the limits, instead of piling up tasks.
    in_flight: AtomicUsize,
    /// The calls being served, to be aborted.
    running: Mutex<Running>,
    /// Calls in `running.by_id`. Only the connection's task enters calls there: while
    /// there are none, a call's id needs no look-up (and no lock) to be told apart.
    named: AtomicUsize,
    /// The serial number of the call in its first poll, until it gives its slot back
    /// there (0: none). A call enters `running` only if that poll leaves it waiting: one
    /// that completes there (most do) takes the table's lock only to tell its id from
    /// those of calls that wait, if any do.
    polling: AtomicU64,
}

#[derive(Default)]
struct Running {
    /// Calls with an id, for `Cancel` and the duplicate-id check.
    by_id: CallTable<Entry>,
    /// Calls without one (on QUIC streams of their own), by serial number.
    unnamed: CallTable<Option<AbortHandle>>,
}

/// A call being served.
struct Entry {
    /// Tells this call from a newer one that reuses its id.
    serial: u64,
    /// Its task's, once it has one.
    abort: Option<AbortHandle>,
}

/// Where a call is in the table.
#[derive(Clone, Copy)]
enum Key {
    /// In `by_id`.
    Id { id: u64, serial: u64 },
    /// In `unnamed`.
    Serial(u64),
    /// Nowhere: a refused call, which runs no handler (and its id may be another's); it
    /// only writes its refusal, which the connection's end cuts short.
    None,
}

/// What every call of the connection runs against.
pub(super) struct Serving<H: RpcHandler> {
    pub(super) handler: Arc<H>,
    pub(super) state: StateHandle<StateOf<H>>,
    pub(super) context: Arc<CallEnv>,
}

impl<H: RpcHandler> Serving<H> {
    /// Starts call `io` (or only its refusal), as far as it goes at once: a call read with
    /// the frames before it whose handler completes in its first poll is served here, its
    /// reply queued, with no future of its own, and counted on the connection's task's
    /// `tally`. What is left, if anything, is the future to go on with.
    pub(super) fn begin<C: CallIo>(
        &self,
        mut io: C,
        slot: LocalSlot<'_>,
        refused: Option<Outcome>,
        spare: &mut HandlerFuture,
        tally: &mut Tally,
    ) -> Started<impl Future<Output = ()> + Send + 'static> {
        match io.arrived() {
            0 => {}
            arrived => tally.received(arrived),
        }
        if let Some(refused) = refused {
            return Started::Poll(self.serve(io, slot, Begin::Refused(refused)));
        }
        let Some(read) = io.read_now() else {
            return Started::Poll(self.serve(io, slot, Begin::Read));
        };
        let (id, outcome) = match read {
            Ok(call) => {
                let id = call.header.id;
                match call.prepare(Arc::clone(&self.handler), &self.context) {
                    Err(refused) => (id, refused),
                    Ok(prepared) => match prepared.first_poll(&self.context, spare, tally) {
                        Polled::Done(outcome) => (id, outcome),
                        Polled::Waiting(waiting) => {
                            return Started::Spawn(self.serve(io, slot, Begin::Waiting(waiting)))
                        }
                        Polled::Full(prepared) => {
                            let prepared = prepared.held_by(Arc::clone(&self.context));
                            return Started::Poll(self.serve(io, slot, Begin::Prepared(prepared)));
                        }
                    },
                }
            }
            Err(unread) => match unread_reply(io.id(), unread) {
                Some(reply) => reply,
                None => return Started::Done,
            },
        };
        let frame = reply_frame(id, self.state.version(), outcome, &self.context);
        tally.sent(frame.len());
        match io.reply_now(frame) {
            Ok(()) => Started::Done,
            Err(frame) => Started::Spawn(self.serve(io, slot, Begin::Reply(frame))),
        }
    }

    /// The future of a call that goes on beyond its first poll: it keeps its slot, and
    /// holds what it borrowed of the connection through the connection's shared parts.
    fn serve<C: CallIo>(
        &self,
        io: C,
        slot: LocalSlot<'_>,
        begin: Begin<H>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let (handler, state, context) = (
            Arc::clone(&self.handler),
            self.state.clone(),
            Arc::clone(&self.context),
        );
        serve(
            io.keep(&context),
            handler,
            state,
            context,
            slot.keep(),
            begin,
        )
    }
}

/// How far [`Serving::begin`] took a call.
pub(super) enum Started<F> {
    /// Served: its reply is queued (or it has none to send).
    Done,
    /// To be polled at once, and on a task of its own if it waits then.
    Poll(F),
    /// Waiting already: to go on on a task of its own.
    Spawn(F),
}

/// Where a call's future starts.
enum Begin<H> {
    /// Nothing done yet: the call is read, then run.
    Read,
    /// Refused before it was read: only the refusal is sent.
    Refused(Outcome),
    /// Read and prepared, to run in full (interceptors, streaming, a span to record).
    Prepared(Prepared<H, Arc<CallEnv>>),
    /// Its handler waited in its first poll.
    Waiting(Waiting),
    /// Its reply, framed, waits for room.
    Reply(Framed),
}

impl<F: Future<Output = ()> + Send + 'static> Calls<F> {
    pub(super) fn new(max_concurrent_calls: u32) -> Self {
        Self {
            table: Arc::default(),
            max: max_concurrent_calls.max(1) as usize,
            spare: None,
            handling: HandlerFuture::default(),
            serial: 0,
        }
    }

    /// The connection waits on its peer: the spare box goes.
    pub(super) fn idle(&mut self) {
        self.spare = None;
        self.handling = HandlerFuture::default();
    }

    /// Calls being served now (not counting those only writing their reply).
    pub(super) fn len(&self) -> usize {
        let running = lock(&self.table.running);
        running.by_id.len() + running.unnamed.len()
    }

    /// Starts serving `io` with `begin` (which [`Serving::begin`] is), or refusing it.
    /// `Err` when the peer keeps twice the allowed calls in flight: a client that honours
    /// `Welcome.max_concurrent_calls` never does.
    pub(super) fn start<C: CallIo>(
        &mut self,
        io: C,
        draining: bool,
        begin: impl FnOnce(C, LocalSlot<'_>, Option<Outcome>, &mut HandlerFuture) -> Started<F>,
    ) -> Result<(), String> {
        let in_flight = self.table.in_flight.load(Ordering::Acquire);
        if in_flight >= 2 * self.max {
            return Err(format!(
                "more than twice max_concurrent_calls ({}) calls in flight",
                self.max
            ));
        }
        let id = io.id();
        let refused = if draining {
            Some(Outcome::Failure(
                ErrorCode::ShuttingDown,
                "server is shutting down; call not run".into(),
            ))
        } else if id.is_some_and(|id| self.is_running(id)) {
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
        self.serial = self.serial.wrapping_add(1).max(1);
        let serial = self.serial;
        let key = match (id, &refused) {
            (Some(id), None) => Key::Id { id, serial },
            (None, None) => Key::Serial(serial),
            (_, Some(_)) => Key::None,
        };
        // Its first poll, here. Whatever it waits on then is polled again, with the
        // task's waker, when the task starts.
        self.table.polling.store(serial, Ordering::Relaxed);
        let (call, poll) = match begin(
            io,
            LocalSlot::take(&self.table, key),
            refused,
            &mut self.handling,
        ) {
            Started::Done => {
                self.table.polling.store(0, Ordering::Relaxed);
                return Ok(());
            }
            Started::Poll(call) => (call, true),
            Started::Spawn(call) => (call, false),
        };
        // Boxed: it may move to a task, and a box moves as a pointer. In the spare box
        // if there is one (the call it held has completed).
        let mut call = match self.spare.take() {
            Some(mut spare) => {
                spare.set(call);
                spare
            }
            None => Box::pin(call),
        };
        let completed = poll && call.as_mut().now_or_never().is_some();
        let given_back = self.table.polling.swap(0, Ordering::Relaxed) != serial;
        if completed {
            self.spare = Some(call);
            return Ok(());
        }
        if !given_back {
            // it waits: entered in the table before it can run elsewhere and give its
            // slot back; the tables are closed only with the connection
            let mut running = lock(&self.table.running);
            match key {
                Key::Id { id, serial } => {
                    let entry = Entry {
                        serial,
                        abort: None,
                    };
                    if running.by_id.insert(id, entry).is_ok() {
                        self.table.named.fetch_add(1, Ordering::AcqRel);
                    }
                }
                Key::Serial(serial) => {
                    let _ = running.unnamed.insert(serial, None);
                }
                Key::None => {}
            }
        }
        let abort = tokio::spawn(call).abort_handle();
        // unless it has already given its slot back (its reply is going out)
        let mut running = lock(&self.table.running);
        match key {
            Key::Id { id, serial } => {
                if let Some(entry) = running.by_id.get_mut(id).filter(|e| e.serial == serial) {
                    entry.abort = Some(abort);
                }
            }
            Key::Serial(serial) => {
                if let Some(entry) = running.unnamed.get_mut(serial) {
                    *entry = Some(abort);
                }
            }
            Key::None => {}
        }
        Ok(())
    }

    /// The client cancelled call `id`: its task, and the handler future with it, is
    /// dropped, and its slot is free at once: a call the client sends after the `Cancel`
    /// may take it, though the task ends later. (A call without a task has completed: its
    /// entry is gone.)
    pub(super) fn cancel(&mut self, id: u64) {
        let Some(entry) = self.table.remove_named(id, |_| true) else {
            return;
        };
        // its `Slot`, which finds its entry gone, does not count it again
        self.table.in_flight.fetch_sub(1, Ordering::AcqRel);
        if let Some(abort) = entry.abort {
            abort.abort();
        }
    }

    /// Whether a call with `id` is being served.
    fn is_running(&self, id: u64) -> bool {
        self.table.named.load(Ordering::Acquire) > 0 && lock(&self.table.running).by_id.contains(id)
    }
}

impl Table {
    /// Takes call `id` out of `by_id` if `is_it` holds for its entry.
    fn remove_named(&self, id: u64, is_it: impl FnOnce(&Entry) -> bool) -> Option<Entry> {
        let removed = lock(&self.running).by_id.remove_if(id, is_it);
        if removed.is_some() {
            self.named.fetch_sub(1, Ordering::AcqRel);
        }
        removed
    }
}

impl<F> Drop for Calls<F> {
    /// The connection ended: every call still being served is dropped with it.
    fn drop(&mut self) {
        let mut running = lock(&self.table.running);
        let named = running.by_id.close();
        let unnamed = running.unnamed.close();
        drop(running);
        let named = named.into_iter().filter_map(|entry| entry.abort);
        for abort in named.chain(unnamed.into_iter().flatten()) {
            abort.abort();
        }
    }
}

/// A call's slot, as the connection's task holds it in its first poll: given back there
/// (dropped), or kept by the call that goes on ([`LocalSlot::keep`]). It is counted in
/// flight only once kept: the count is read by the connection's task alone, in
/// [`Calls::start`], never while that task holds a `LocalSlot`. One given back there was
/// never entered in the table either, and takes no share of it.
pub(super) struct LocalSlot<'a> {
    table: &'a Arc<Table>,
    key: Key,
}

impl<'a> LocalSlot<'a> {
    fn take(table: &'a Arc<Table>, key: Key) -> Self {
        Self { table, key }
    }

    /// The slot of a call that goes on beyond its first poll, counted in flight until
    /// dropped.
    fn keep(self) -> Slot {
        self.table.in_flight.fetch_add(1, Ordering::AcqRel);
        Slot {
            table: Arc::clone(self.table),
            key: self.key,
        }
    }
}

/// A call counted in flight until dropped: just before its client can have its reply, or
/// when its task is aborted.
pub(super) struct Slot {
    table: Arc<Table>,
    key: Key,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let serial = match self.key {
            Key::Id { serial, .. } | Key::Serial(serial) => serial,
            Key::None => return self.give_back(),
        };
        // given back in its first poll (on the connection's thread, which set `polling`;
        // a task elsewhere was spawned after it was reset): never entered in the table
        let in_first_poll =
            self.table
                .polling
                .compare_exchange(serial, 0, Ordering::Relaxed, Ordering::Relaxed);
        if in_first_poll.is_ok() {
            return self.give_back();
        }
        match self.key {
            Key::Id { id, serial } => {
                // only this call's own entry: a newer call may have reused the id. One
                // cancelled has given its slot back already.
                if self
                    .table
                    .remove_named(id, |entry| entry.serial == serial)
                    .is_some()
                {
                    self.give_back();
                }
            }
            Key::Serial(serial) => {
                self.give_back();
                lock(&self.table.running).unnamed.remove(serial);
            }
            Key::None => {}
        }
    }
}

impl Slot {
    fn give_back(&self) {
        self.table.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves one call to completion from where `begin` says, or only its refusal: every
/// failure becomes a `ReplyFailure`, except a transport failure, which ends the call
/// silently.
async fn serve<H: RpcHandler, C: CallIo<Env = Arc<CallEnv>>>(
    mut io: C,
    handler: Arc<H>,
    state: StateHandle<StateOf<H>>,
    context: Arc<CallEnv>,
    slot: Slot,
    begin: Begin<H>,
) {
    let (id, outcome) = match begin {
        Begin::Reply(frame) => return io.reply(frame, move || drop(slot)).await,
        // a refused call reads nothing and runs no handler: it only gets its refusal
        Begin::Refused(refused) => (io.id().unwrap_or(0), refused),
        Begin::Prepared(prepared) => {
            let id = prepared.id();
            match prepared.run(&context, &mut io, &state).await {
                Some(outcome) => (id, outcome),
                None => return,
            }
        }
        Begin::Waiting(waiting) => {
            let id = waiting.id();
            match waiting.run(&mut io).await {
                Some(outcome) => (id, outcome),
                None => return,
            }
        }
        Begin::Read => match io.read(&context).await {
            Ok(call) => {
                let id = call.header.id;
                match call.run(handler, &context, &mut io, &state).await {
                    Some(outcome) => (id, outcome),
                    None => return,
                }
            }
            Err(unread) => match unread_reply(io.id(), unread) {
                Some(reply) => reply,
                None => return,
            },
        },
    };
    let frame = reply_frame(id, state.version(), outcome, &context);
    context.meter.sent(frame.len());
    io.reply(frame, move || drop(slot)).await;
}

/// The reply to a call that could not be read (`id`: the transport's, if it has one),
/// unless its transport failed: then there is nobody to reply to.
fn unread_reply(id: Option<u64>, unread: Unread) -> Option<(u64, Outcome)> {
    match unread {
        Unread::Frame(ReadError::Io(error)) => {
            debug!(%error, "call stream failed before the call was read");
            None
        }
        Unread::Frame(ReadError::Finished) => Some((
            0,
            Outcome::Failure(ErrorCode::Malformed, "call stream carried no frame".into()),
        )),
        Unread::Frame(ReadError::Protocol(error)) => {
            debug!(%error, "rejected call frame");
            Some((id.unwrap_or(0), refusal(&error)))
        }
        Unread::Overloaded(exhausted) => {
            debug!("call refused: the memory budget is spent");
            Some((id.unwrap_or(0), overloaded(exhausted)))
        }
    }
}
