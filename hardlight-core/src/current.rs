//! The call a handler runs for — its method, deadline and context — reachable from
//! anywhere in the handler's future, so that calls made from inside it inherit the
//! remaining time and the trace (deadline and context propagation).
//!
//! The server runs every handler inside [`CurrentCall::scope`]; a task the handler spawns
//! is outside it unless the handler scopes that task too.

use std::{
    cell::RefCell,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use crate::context::{CallContext, TraceParent};

thread_local! {
    static CURRENT: RefCell<Option<CurrentCall>> = const { RefCell::new(None) };
}

/// The call being served: read it with [`CurrentCall::get`] inside a handler.
///
/// ```
/// use std::time::Duration;
/// use hardlight_core::{context::CallContext, current::CurrentCall};
/// let call = CurrentCall::new("transfer", Some(Duration::from_secs(2)), None, 0);
/// assert!(CurrentCall::get().is_none(), "outside any call");
/// let seen = futures_lite_block_on(call.scope(async {
///     let call = CurrentCall::get().unwrap();
///     (call.method(), call.remaining().unwrap() <= Duration::from_secs(2))
/// }));
/// assert_eq!(seen, ("transfer", true));
/// # fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let waker = std::task::Waker::noop();
/// #     let mut cx = std::task::Context::from_waker(waker);
/// #     let mut f = std::pin::pin!(f);
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct CurrentCall {
    method: &'static str,
    deadline: Option<Instant>,
    context: Option<Arc<CallContext>>,
    span_id: u64,
}

impl CurrentCall {
    /// A call of `method` with `budget` left from now, the caller's `context`, and
    /// `span_id` naming this call's span in the caller's trace (used only if the context
    /// carries a valid `traceparent`).
    #[inline]
    pub fn new(
        method: &'static str,
        budget: Option<Duration>,
        context: Option<CallContext>,
        span_id: u64,
    ) -> Self {
        Self {
            method,
            deadline: budget.and_then(|budget| Instant::now().checked_add(budget)),
            context: context.map(Arc::new),
            span_id,
        }
    }

    /// The call this code runs for, if it runs inside a handler (or inside a future the
    /// handler scoped with [`CurrentCall::scope`]).
    #[inline] // on every client call, most of them outside any handler
    pub fn get() -> Option<CurrentCall> {
        CURRENT.with(|current| current.borrow().clone())
    }

    /// Runs `future` as part of this call: [`CurrentCall::get`] inside it returns this
    /// call. For tasks a handler spawns: `tokio::spawn(call.scope(work))`.
    pub fn scope<F: Future>(self, future: F) -> Scoped<F> {
        Scoped {
            call: Some(self),
            future,
        }
    }

    /// The method's name.
    pub fn method(&self) -> &'static str {
        self.method
    }

    /// When the caller stops waiting, if it gave the call a deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The time left before the deadline (zero once it has passed), if there is one.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|deadline| deadline.saturating_duration_since(Instant::now()))
    }

    /// What the caller sent with the call, if anything.
    pub fn context(&self) -> Option<&CallContext> {
        self.context.as_deref()
    }

    /// The caller's trace, if its `traceparent` is valid.
    pub fn trace(&self) -> Option<TraceParent> {
        self.context.as_deref().and_then(CallContext::trace)
    }

    /// This call's span id in the caller's trace (the parent id of the calls it makes).
    pub fn span_id(&self) -> u64 {
        self.span_id
    }

    /// The context a call made from inside this one carries: the same entries and
    /// `tracestate`, and a `traceparent` naming this call's span as the parent (none if
    /// the caller's was not valid).
    pub fn outgoing_context(&self) -> Option<CallContext> {
        let mut context = self.context.as_deref()?.clone();
        context.traceparent = context
            .trace()
            .map(|trace| trace.child(self.span_id).to_string());
        Some(context)
    }
}

pin_project_lite::pin_project! {
    /// A future running as part of a call ([`CurrentCall::scope`]).
    #[derive(Debug)]
    pub struct Scoped<F> {
        call: Option<CurrentCall>,
        #[pin]
        future: F,
    }
}

impl<F> Scoped<F> {
    /// The future, out of its call's scope.
    pub fn into_inner(self) -> F {
        self.future
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _entered = Entered::enter(this.call);
        this.future.poll(cx)
    }
}

/// The call set as current for one poll, and put back when dropped (also when the poll
/// panics).
struct Entered<'a> {
    slot: &'a mut Option<CurrentCall>,
    outer: Option<CurrentCall>,
}

impl<'a> Entered<'a> {
    #[inline]
    fn enter(slot: &'a mut Option<CurrentCall>) -> Self {
        let outer = CURRENT.with(|current| current.replace(slot.take()));
        Self { slot, outer }
    }
}

impl Drop for Entered<'_> {
    #[inline]
    fn drop(&mut self) {
        let outer = self.outer.take();
        *self.slot = CURRENT.with(|current| current.replace(outer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: Future>(future: F) -> F::Output {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut future = std::pin::pin!(future);
        loop {
            if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
                return value;
            }
        }
    }

    #[test]
    fn scopes_nest_and_unwind() {
        let outer = CurrentCall::new("outer", None, None, 0);
        let inner = CurrentCall::new("inner", None, None, 0);
        let seen = block_on(outer.scope(async move {
            let before = CurrentCall::get().map(|c| c.method());
            let during = inner
                .scope(async { CurrentCall::get().map(|c| c.method()) })
                .await;
            let after = CurrentCall::get().map(|c| c.method());
            (before, during, after)
        }));
        assert_eq!(seen, (Some("outer"), Some("inner"), Some("outer")));
        assert!(CurrentCall::get().is_none());
        let panicked = std::panic::catch_unwind(|| {
            block_on(CurrentCall::new("boom", None, None, 0).scope(async { panic!("in a call") }))
        });
        assert!(panicked.is_err());
        assert!(CurrentCall::get().is_none(), "restored while unwinding");
    }

    #[test]
    fn outgoing_calls_are_children_of_this_span() {
        let context = CallContext::new()
            .with_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .with_tracestate("vendor=1")
            .with_entry("tenant", "a");
        let call = CurrentCall::new("m", None, Some(context), 0xabc);
        let out = call.outgoing_context().unwrap();
        assert_eq!(
            out.traceparent.as_deref(),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000abc-01")
        );
        assert_eq!(out.tracestate.as_deref(), Some("vendor=1"));
        assert_eq!(out.entry("tenant"), Some("a"));
        let untraced = CurrentCall::new(
            "m",
            None,
            Some(CallContext::new().with_traceparent("junk")),
            1,
        );
        assert_eq!(
            untraced.outgoing_context().unwrap().traceparent,
            None,
            "an invalid traceparent is ignored, not carried on"
        );
    }
}
