//! What a call carries besides its arguments: the time budget and the call context, each
//! the handle's own (`with_call_timeout`, `with_context`) or inherited from the call being
//! served when a handler makes the call (deadline and trace propagation).

use std::{borrow::Cow, time::Duration};

use hardlight_core::{context::CallContext, current::CurrentCall};

/// The budget and context of one call.
#[derive(Debug)]
pub(crate) struct Propagated<'a> {
    /// At most the handle's timeout and, inside a handler, the handler's remaining time.
    pub(crate) budget: Option<Duration>,
    pub(crate) context: Option<Cow<'a, CallContext>>,
}

impl<'a> Propagated<'a> {
    /// What a call from a handle with `timeout` and `context` carries, made inside the
    /// call `current` (if any).
    pub(crate) fn new(
        timeout: Option<Duration>,
        context: Option<&'a CallContext>,
        current: Option<&CurrentCall>,
    ) -> Self {
        let Some(current) = current else {
            // outside a handler (most calls): only the handle's own
            return Self {
                budget: timeout,
                context: context.map(Cow::Borrowed),
            };
        };
        let remaining = current.remaining();
        let budget = match (timeout, remaining) {
            (Some(own), Some(left)) => Some(own.min(left)),
            (own, left) => own.or(left),
        };
        let inherited = current.outgoing_context();
        let context = match (context, inherited) {
            // the handle's own entries, in the trace of the call being served
            (Some(own), Some(inherited)) if own.traceparent.is_none() => {
                let mut merged = own.clone();
                merged.traceparent = inherited.traceparent;
                merged.tracestate = merged.tracestate.or(inherited.tracestate);
                Some(Cow::Owned(merged))
            }
            (Some(own), _) => Some(Cow::Borrowed(own)),
            (None, inherited) => inherited.map(Cow::Owned),
        };
        Self { budget, context }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_shorter_of_the_timeout_and_the_remaining_time() {
        let serving = CurrentCall::new("m", Some(Duration::from_secs(1)), None, 0);
        let own = Some(Duration::from_secs(5));
        let budget = Propagated::new(own, None, Some(&serving)).budget.unwrap();
        assert!(budget <= Duration::from_secs(1));
        let short = Some(Duration::from_millis(10));
        assert_eq!(Propagated::new(short, None, Some(&serving)).budget, short);
        assert_eq!(Propagated::new(own, None, None).budget, own);
        let untimed = CurrentCall::new("m", None, None, 0);
        assert_eq!(Propagated::new(None, None, Some(&untimed)).budget, None);
    }

    #[test]
    fn contexts_inherit_the_trace() {
        let serving = CurrentCall::new(
            "m",
            None,
            Some(
                CallContext::new()
                    .with_traceparent(PARENT)
                    .with_entry("tenant", "a"),
            ),
            0x77,
        );
        let inherited = Propagated::new(None, None, Some(&serving)).context.unwrap();
        assert_eq!(inherited.entry("tenant"), Some("a"));
        let child = inherited.trace().unwrap();
        assert_eq!(child.parent_id(), "0000000000000077");
        let own = CallContext::new().with_entry("tenant", "b");
        let merged = Propagated::new(None, Some(&own), Some(&serving))
            .context
            .unwrap();
        assert_eq!(merged.entry("tenant"), Some("b"));
        assert_eq!(merged.trace(), Some(child));
        assert!(Propagated::new(None, None, None).context.is_none());
    }
}
