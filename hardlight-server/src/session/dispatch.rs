//! Running one call: its arguments opened, the handler run (panics caught, cancellation
//! honoured) and the outcome framed as a reply.

use std::{
    future::Future,
    mem,
    ops::Deref,
    panic::{self, AssertUnwindSafe},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use futures_util::{FutureExt, StreamExt};
use hardlight_core::{
    context::{budget_from_seq, split_context},
    current::{CurrentCall, Scoped},
    frame::{FrameHeader, Kind, FLAG_STREAM},
    io::ReadError,
    message::{Body, Framed},
    quota::Lent,
    received::Received,
    service::HandlerFuture,
    stream::{ItemStream, StreamKind},
    CallContext, ConnectionState, ErrorCode, Outcome, ProtocolError, Service,
};
use tracing::{debug, Instrument, Span};

use super::CallEnv;
use crate::{
    connection::CallIo,
    handler::{RpcHandler, StateOf},
    memory_budget::Exhausted,
    state_handle::StateHandle,
    stats::Tally,
};

/// A call ready to run: its header, its body as received (maybe compressed), and the
/// bytes it holds until the handler finishes, through `E` (see [`Reservation`]).
pub(crate) struct Call<E: Deref<Target = CallEnv>> {
    pub(crate) header: FrameHeader,
    raw: Received,
    reserved: Reservation<E>,
}

/// Why a call was not read: its frame or stream failed, or the server had no memory for
/// it.
#[derive(Debug)]
pub(crate) enum Unread {
    /// The frame broke the protocol, the stream ended or failed.
    Frame(ReadError),
    /// The server's memory budget could not take the call's body.
    Overloaded(Exhausted),
}

impl<E: Into<ReadError>> From<E> for Unread {
    fn from(error: E) -> Self {
        Self::Frame(error.into())
    }
}

/// A call's bytes: of the connection's budget (`ServerLimits::max_inflight_bytes`) and
/// of the server's (`ServerLimits::memory_budget`), held until its handler returns and
/// given back through `E`, its connection's [`CallEnv`]: borrowed by a call the
/// connection's task serves in its first poll, shared by one that goes on
/// ([`Reservation::held_by`]). Either way the call holds no count of the budgets' owners.
pub(crate) struct Reservation<E: Deref<Target = CallEnv>> {
    env: E,
    /// Units of `env.budget`.
    connection: usize,
    /// Bytes of `env.memory`.
    server: u64,
}

impl<E: Deref<Target = CallEnv>> Reservation<E> {
    /// A share of the connection's budget, `lent` by `env.budget`; none of the server's
    /// yet ([`Reservation::with_server_share`]).
    pub(crate) fn connection_share(env: E, lent: Lent<'_>) -> Self {
        Self {
            connection: lent.into_units(),
            server: 0,
            env,
        }
    }

    /// The server's share, as many bytes as the connection's; refused at once if the
    /// server's budget is spent (never waited for: what holds it may be other
    /// connections' calls, events or sessions), and the connection's given back then.
    pub(crate) fn with_server_share(mut self) -> Result<Self, Exhausted> {
        let bytes = self.connection as u64;
        self.env.memory.take(bytes)?;
        self.server = bytes;
        Ok(self)
    }

    /// `bytes` more, of both budgets, taken at once or refused: what a compressed body
    /// grows to when opened.
    fn grow(&mut self, bytes: usize) -> Result<(), Outcome> {
        let connection = u32::try_from(bytes)
            .ok()
            .and_then(|n| self.env.budget.try_lend(n).ok().flatten())
            .ok_or_else(|| {
                Outcome::Failure(
                    ErrorCode::Overloaded,
                    format!(
                        "the connection's calls in flight hold its byte budget \
                         (ServerLimits::max_inflight_bytes) and this call's body opens to {bytes} bytes; retry later"
                    ),
                )
            })?;
        self.env.memory.take(bytes as u64).map_err(overloaded)?;
        self.connection += connection.into_units();
        self.server += bytes as u64;
        Ok(())
    }

    /// The same bytes, held through `env` from here on (by a call that goes on after its
    /// first poll).
    pub(crate) fn held_by(mut self, env: Arc<CallEnv>) -> Reservation<Arc<CallEnv>> {
        // handed over: this one, emptied, gives back nothing
        Reservation {
            env,
            connection: mem::take(&mut self.connection),
            server: mem::take(&mut self.server),
        }
    }
}

impl<E: Deref<Target = CallEnv>> Drop for Reservation<E> {
    fn drop(&mut self) {
        self.env.budget.give_back(self.connection);
        if self.server > 0 {
            self.env.memory.release(self.server);
        }
    }
}

/// Lends `header.body_len` bytes of the connection's budget for a call, waiting for
/// earlier calls to release theirs if needed. Cancel-safe: dropped before it completes,
/// it holds nothing.
pub(crate) async fn connection_share<'a>(
    context: &'a CallEnv,
    header: &FrameHeader,
) -> Result<Lent<'a>, ProtocolError> {
    context
        .budget
        .lend(header.body_len)
        .await
        .map_err(|_| ProtocolError::Malformed)
}

/// [`connection_share`], then the server's share.
pub(crate) async fn reserve(
    context: &Arc<CallEnv>,
    header: &FrameHeader,
) -> Result<Reservation<Arc<CallEnv>>, Unread> {
    let lent = connection_share(context, header).await?;
    both_shares(context, lent)
}

/// The reservation of a call on a task of its own whose share of the connection's budget
/// is `lent`: the server's share taken too, or both refused.
pub(crate) fn both_shares(
    context: &Arc<CallEnv>,
    lent: Lent<'_>,
) -> Result<Reservation<Arc<CallEnv>>, Unread> {
    Reservation::connection_share(Arc::clone(context), lent)
        .with_server_share()
        .map_err(Unread::Overloaded)
}

/// The outcome for a call the server's memory budget refused.
pub(crate) fn overloaded(exhausted: Exhausted) -> Outcome {
    Outcome::Failure(ErrorCode::Overloaded, exhausted.message())
}

impl<E: Deref<Target = CallEnv>> Call<E> {
    /// A received `Call` frame; its body is opened only once the call is admitted.
    pub(crate) fn open(
        header: FrameHeader,
        raw: Received,
        reserved: Reservation<E>,
    ) -> Result<Self, ProtocolError> {
        if header.kind != Kind::Call {
            return Err(ProtocolError::UnexpectedKind {
                expected: "Call",
                got: header.kind.name(),
            });
        }
        Ok(Self {
            header,
            raw,
            reserved,
        })
    }

    /// The same call, its bytes held through `env` from here on (see
    /// [`Reservation::held_by`]).
    pub(crate) fn held_by(self, env: Arc<CallEnv>) -> Call<Arc<CallEnv>> {
        Call {
            header: self.header,
            raw: self.raw,
            reserved: self.reserved.held_by(env),
        }
    }

    /// Runs the handler, catching a panic, once the call is [prepared](Call::prepare). A
    /// streaming call's items go out through `io` as they come. Returns `None` if the
    /// client abandons the call first, in which case the handler future (or its stream)
    /// has been dropped.
    pub(crate) async fn run<H: RpcHandler, C: CallIo>(
        self,
        handler: Arc<H>,
        context: &Arc<CallEnv>,
        io: &mut C,
        state: &StateHandle<StateOf<H>>,
    ) -> Option<Outcome> {
        match self.prepare(handler, context) {
            Ok(prepared) => prepared.run(context, io, state).await,
            Err(refused) => Some(refused),
        }
    }

    /// Everything before the handler runs: the rate limit — checked before the body is
    /// decompressed or validated, so that refused calls cost no more than their reading —
    /// the body opened (both budgets take what a compressed body opens to), the caller's
    /// context split off, the method's kind checked against the frame, the call's
    /// deadline and span. `Err` is the outcome to reply with instead.
    pub(crate) fn prepare<H: RpcHandler>(
        self,
        handler: Arc<H>,
        context: &CallEnv,
    ) -> Result<Prepared<H, E>, Outcome> {
        let Self {
            header,
            raw,
            mut reserved,
        } = self;
        context.admit_call()?;
        let compressed = header.is_compressed();
        let mut args = raw
            .open(
                &header,
                context.compression_negotiated(),
                context.limits.max_message_size(),
            )
            .map_err(|error| refusal(&error))?;
        // the raw body stays charged: it stands for the decoded arguments, which the
        // handler holds once the archive is dropped
        if compressed {
            reserved.grow(args.len())?;
        }
        let call_context = split_context(&header, &mut args).map_err(|error| refusal(&error))?;
        let method = <H::Service as Service>::method_name(header.aux);
        let streaming = header.flags & FLAG_STREAM != 0;
        let kind = <H::Service as Service>::stream_kind(header.aux);
        if streaming != kind.is_streaming() {
            return Err(Outcome::Failure(
                ErrorCode::Malformed,
                format!(
                    "`{method}` {} a stream: call it with the STREAM flag {}",
                    if streaming {
                        "does not return"
                    } else {
                        "returns"
                    },
                    if streaming { "clear" } else { "set" },
                ),
            ));
        }
        let trace = call_context.as_ref().and_then(CallContext::trace);
        // a span of the caller's trace gets an id of its own, which the calls the handler
        // makes carry as their parent
        let span_id = trace.map_or(0, |_| rand::random::<u64>().max(1));
        let budget = budget_from_seq(header.seq);
        let call = CurrentCall::new(method, budget, call_context, span_id);
        let span = tracing::debug_span!(
            "call",
            id = header.id,
            method,
            trace_id = tracing::field::Empty,
            parent_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
        );
        if let Some(trace) = trace {
            span.record("trace_id", trace.trace_id());
            span.record("parent_id", trace.parent_id());
            span.record("span_id", format!("{span_id:016x}"));
        }
        if !context.interceptors.is_empty() {
            // the handler decodes its arguments in its first poll, before the connection
            // reads on; interceptors may wait first, so the arguments get a buffer of
            // their own rather than hold the message they came in
            args = Received::Aligned(args.into_aligned());
        }
        Ok(Prepared {
            handler,
            header,
            args,
            reserved,
            kind,
            call,
            span,
            budget,
        })
    }
}

/// A call ready for its handler: what [`Call::prepare`] found.
pub(crate) struct Prepared<H, E: Deref<Target = CallEnv>> {
    handler: Arc<H>,
    header: FrameHeader,
    args: Received,
    /// The call's bytes, held until its handler returns.
    reserved: Reservation<E>,
    kind: StreamKind,
    call: CurrentCall,
    span: Span,
    budget: Option<Duration>,
}

/// How a handler's first poll went ([`Prepared::first_poll`]).
pub(crate) enum Polled<H, E: Deref<Target = CallEnv>> {
    /// The handler returned (or panicked): the outcome to reply with.
    Done(Outcome),
    /// The handler waits: [`Waiting::run`] goes on with it.
    Waiting(Waiting),
    /// Not a plain call: [`Prepared::run`] runs it in full.
    Full(Prepared<H, E>),
}

impl<H: RpcHandler, E: Deref<Target = CallEnv>> Prepared<H, E> {
    /// The call's id.
    pub(crate) fn id(&self) -> u64 {
        self.header.id
    }

    /// The same call, its bytes held through `env` from here on (see
    /// [`Reservation::held_by`]).
    pub(crate) fn held_by(self, env: Arc<CallEnv>) -> Prepared<H, Arc<CallEnv>> {
        Prepared {
            handler: self.handler,
            header: self.header,
            args: self.args,
            reserved: self.reserved.held_by(env),
            kind: self.kind,
            call: self.call,
            span: self.span,
            budget: self.budget,
        }
    }

    /// Polls the handler of a plain call — unary, no interceptors, no span recorded — once,
    /// here and now, in the call's scope, a panic caught: most handlers complete then, and
    /// their call needs no future of its own around the handler's. Its future is put in
    /// `spare` (in its allocation, if the layouts agree), which keeps it if it completes.
    /// `tally` is the connection's task's, which this runs on: it counts the call.
    pub(crate) fn first_poll(
        self,
        context: &Arc<CallEnv>,
        spare: &mut HandlerFuture,
        tally: &mut Tally,
    ) -> Polled<H, E> {
        let plain = self.kind == StreamKind::Unary
            && context.interceptors.is_empty()
            && self.span.is_disabled();
        if !plain {
            return Polled::Full(self);
        }
        let Self {
            handler,
            header,
            args,
            reserved,
            call,
            budget,
            ..
        } = self;
        let deadline = call.deadline();
        tally.call_started();
        handler.dispatch(header.aux, args, None, spare);
        let mut handling = call.scope(mem::take(spare));
        let mut cx = Context::from_waker(Waker::noop());
        let polled =
            panic::catch_unwind(AssertUnwindSafe(|| Pin::new(&mut handling).poll(&mut cx)));
        let outcome = match polled {
            Ok(Poll::Pending) => {
                return Polled::Waiting(Waiting {
                    id: header.id,
                    handling,
                    reserved: reserved.held_by(Arc::clone(context)),
                    // started here, counted to its end there, or until dropped unrun
                    running: Running::started(Arc::clone(context)),
                    deadline,
                    budget,
                });
            }
            Ok(Poll::Ready(outcome)) => {
                *spare = handling.into_inner();
                outcome
            }
            Err(panic) => panicked(panic),
        };
        tally.call_finished(matches!(outcome, Outcome::Failure(..)));
        Polled::Done(outcome)
    }

    /// Runs the interceptors, then the handler (its stream too), within the call's
    /// deadline and span.
    pub(crate) async fn run<C: CallIo>(
        self,
        context: &Arc<CallEnv>,
        io: &mut C,
        state: &StateHandle<StateOf<H>>,
    ) -> Option<Outcome> {
        let Self {
            handler,
            header,
            args,
            reserved,
            kind,
            call,
            span,
            budget,
        } = self;
        let deadline = call.deadline();
        let mut running = Running::start(&**context);
        // made where it is awaited: a future moved into a wrapper (the deadline's
        // `select!`, the span's `Instrumented`) is copied, and most calls need neither
        let run = || async {
            if !context.interceptors.is_empty() {
                let service = <H::Service as Service>::NAME;
                // boxed, like the streaming below: what only some calls run does not
                // enlarge every call's task
                let check = context
                    .interceptors
                    .check(service, &context.connection, &call);
                if let Err(refused) = Box::pin(check).await {
                    return Some(refused);
                }
            }
            let inbound = kind.takes_stream().then(|| io.inbound(context));
            let mut dispatch = HandlerFuture::default();
            handler.dispatch(header.aux, args, inbound, &mut dispatch);
            match handled(call.clone().scope(dispatch), io).await? {
                Outcome::Stream(items) => {
                    // so is its stream; boxed, so as not to enlarge every call's task
                    let sending = send_items(items, io, header.id, state, context);
                    let sending = AssertUnwindSafe(call.clone().scope(sending)).catch_unwind();
                    Box::pin(sending)
                        .await
                        .unwrap_or_else(|panic| Some(panicked(panic)))
                }
                done => Some(done),
            }
        };
        let outcome = if span.is_disabled() {
            bounded(deadline, budget, run).await
        } else {
            bounded(deadline, budget, run).instrument(span).await
        };
        running.end(outcome.as_ref());
        drop(reserved);
        outcome
    }
}

/// A plain call whose handler waited in its first poll.
pub(crate) struct Waiting {
    id: u64,
    handling: Scoped<HandlerFuture>,
    reserved: Reservation<Arc<CallEnv>>,
    running: Running<Arc<CallEnv>>,
    deadline: Option<Instant>,
    budget: Option<Duration>,
}

impl Waiting {
    /// The call's id.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Goes on with the handler, within the call's deadline.
    pub(crate) async fn run<C: CallIo>(self, io: &mut C) -> Option<Outcome> {
        let Self {
            handling,
            reserved,
            mut running,
            deadline,
            budget,
            ..
        } = self;
        let outcome = bounded(deadline, budget, || handled(handling, io)).await;
        running.end(outcome.as_ref());
        drop(reserved);
        outcome
    }
}

/// The handler's outcome, its panic caught, or `None` if the client abandons the call
/// first (the handler is dropped then).
async fn handled<C: CallIo>(handling: Scoped<HandlerFuture>, io: &mut C) -> Option<Outcome> {
    tokio::select! {
        biased;
        outcome = AssertUnwindSafe(handling).catch_unwind() => Some(outcome.unwrap_or_else(panicked)),
        () = io.abandoned() => None,
    }
}

/// `run()`, cut short at `deadline` (the call's time `budget` from its arrival).
async fn bounded<F: Future<Output = Option<Outcome>>>(
    deadline: Option<Instant>,
    budget: Option<Duration>,
    run: impl FnOnce() -> F,
) -> Option<Outcome> {
    let Some(deadline) = deadline else {
        return run().await;
    };
    tokio::select! {
        biased;
        outcome = run() => outcome,
        // boxed: a timer in place would enlarge every call's task
        () = Box::pin(tokio::time::sleep_until(deadline.into())) => {
            debug!("call dropped at its deadline");
            Some(Outcome::Failure(
                ErrorCode::DeadlineExceeded,
                format!("the call's time budget of {:?} ran out", budget.unwrap_or_default()),
            ))
        }
    }
}

/// Item bytes a streaming call encodes and sends before it lets the other tasks of its
/// thread run (other calls, other connections): what a small call can wait behind.
const YIELD_EVERY: usize = 64 * 1024;

/// Sends a streaming call's items as the handler's stream yields them, each tagged with
/// the state version when it goes and waiting for the client's room; the final outcome
/// when the stream ends (or `None` when the client abandons the call). Items the stream
/// has ready one after the other may go together ([`CallIo::send_item`]); those held go
/// once it has none ready, or with the reply (`CallIo::reply`) once it ends.
async fn send_items<S: ConnectionState, C: CallIo>(
    mut items: ItemStream,
    io: &mut C,
    id: u64,
    state: &StateHandle<S>,
    context: &CallEnv,
) -> Option<Outcome> {
    let mut since_yield = 0;
    loop {
        if since_yield >= YIELD_EVERY {
            // a handler's stream that is always ready, into a transport that always takes
            // more, would otherwise hold the thread for the whole stream
            since_yield = 0;
            tokio::task::yield_now().await;
        }
        let next = match items.next().now_or_never() {
            Some(next) => next,
            None => {
                if !io.flush_items().await {
                    return None;
                }
                tokio::select! {
                    next = items.next() => next,
                    () = io.abandoned() => return None,
                }
            }
        };
        let item = match next {
            Some(Ok(item)) => item,
            Some(Err(end)) => return Some(end),
            None => return Some(Outcome::from_result::<(), ()>(Ok(()))),
        };
        let header = FrameHeader::new(Kind::StreamItem, 0)
            .with_id(id)
            .with_seq(state.version());
        since_yield += item.len();
        let frame = match item.frame(header, context.compression) {
            Ok(frame) => frame,
            Err(error) => return Some(Outcome::Failure(ErrorCode::Internal, error.to_string())),
        };
        let len = frame.len();
        if !io.send_item(frame).await {
            return None;
        }
        context.meter.sent(len);
    }
}

/// A call counted as running until dropped: also when its task is aborted (cancelled by
/// the client, or at a shutdown deadline) before the handler returns, or before it ran
/// on after its first poll. `E` is how it holds its connection's [`CallEnv`].
struct Running<E: Deref<Target = CallEnv>> {
    context: E,
    failed: bool,
}

impl<E: Deref<Target = CallEnv>> Running<E> {
    fn start(context: E) -> Self {
        context.meter.call_started();
        Self::started(context)
    }

    /// A call whose start was counted already (by the connection's task, in its first
    /// poll).
    fn started(context: E) -> Self {
        Self {
            context,
            failed: false,
        }
    }

    /// The call ended with `outcome` (`None`: its client abandoned it).
    fn end(&mut self, outcome: Option<&Outcome>) {
        if outcome.is_none() {
            debug!("call cancelled by the client");
        }
        self.failed = matches!(outcome, Some(Outcome::Failure(..)));
    }
}

impl<E: Deref<Target = CallEnv>> Drop for Running<E> {
    fn drop(&mut self) {
        self.context.meter.call_finished(self.failed);
    }
}

/// The outcome of a handler that panicked.
fn panicked(panic: Box<dyn std::any::Any + Send>) -> Outcome {
    let message = panic_message(panic.as_ref());
    tracing::warn!(%message, "handler panicked");
    Outcome::Failure(ErrorCode::HandlerPanicked, message)
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "handler panicked".into())
}

/// Frames an outcome as the reply to call `id`, tagged with state version `seq` (its bytes
/// counted sent by the caller).
pub(crate) fn reply_frame(id: u64, seq: u64, outcome: Outcome, context: &CallEnv) -> Framed {
    let (header, body) = match outcome {
        Outcome::Ok(body) => (FrameHeader::new(Kind::ReplyOk, 0), body),
        Outcome::HandlerError(body) => (FrameHeader::new(Kind::ReplyHandlerError, 0), body),
        Outcome::Failure(code, message) => failure_parts(code, &message),
        // a stream's items are sent by `send_items`, which ends with another outcome
        Outcome::Stream(_) => failure_parts(ErrorCode::Internal, "a stream as a reply"),
    };
    let header = header.with_id(id).with_seq(seq);
    body.framed(header, context.compression)
        .unwrap_or_else(|error| {
            let (header, body) = failure_parts(ErrorCode::Internal, &error.to_string());
            // a failure frame carries a short message: it always fits a frame
            Framed::Whole(
                body.frame(header.with_id(id).with_seq(seq), context.compression)
                    .unwrap_or_default(),
            )
        })
}

/// The outcome for a call refused because of `error` in its frame.
pub(crate) fn refusal(error: &ProtocolError) -> Outcome {
    Outcome::Failure(error.code(), error.to_string())
}

fn failure_parts(code: ErrorCode, message: &str) -> (FrameHeader, Body) {
    let body = Body::encode(&message.to_owned()).unwrap_or_default();
    (
        FrameHeader::new(Kind::ReplyFailure, 0).with_aux(code.to_u16()),
        body,
    )
}
