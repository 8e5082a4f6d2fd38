//! The trace of a call across two servers, as their `call` spans record it: server B's
//! span names the caller's trace and server A's span as its parent. On its own in this
//! process: the span capture is a subscriber of this test's thread, and `tracing` caches,
//! per process, whether a span is wanted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::relay::{Node, TRACEPARENT, TRACE_ID, TRANSPORTS};
use hardlight::*;
use tracing_subscriber::{layer::SubscriberExt, registry::LookupSpan, Layer};

/// Records the fields of every `call` span.
#[derive(Clone, Default)]
struct CallSpans(Arc<Mutex<HashMap<u64, HashMap<String, String>>>>);

struct Fields<'a>(&'a mut HashMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for CallSpans {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if attrs.metadata().name() == "call" {
            let mut fields = HashMap::new();
            attrs.record(&mut Fields(&mut fields));
            self.0.lock().unwrap().insert(id.into_u64(), fields);
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if let Some(fields) = self.0.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(fields));
        }
    }
}

impl CallSpans {
    /// The fields of the `call` spans of `method`.
    fn of(&self, method: &str) -> Vec<HashMap<String, String>> {
        let spans = self.0.lock().unwrap();
        spans
            .values()
            .filter(|fields| fields.get("method").map(String::as_str) == Some(method))
            .cloned()
            .collect()
    }
}

/// client → server A (`relay`) → server B (`seen`): B gets no more than A had left, the
/// caller's entries, and a trace whose parent is A's span; B's span shows the trace.
#[tokio::test]
async fn deadline_and_trace_propagate_over_two_hops() {
    // this test's runtime runs on this thread, and with it both servers' tasks
    let spans = CallSpans::default();
    let _subscriber =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
    for transport in TRANSPORTS {
        let (a, b) = (Node::start(), Node::start());
        a.relay_to(&b, transport).await;
        let client = a.client(transport).await;
        let budget = Duration::from_secs(30);
        let context = CallContext::new()
            .with_traceparent(TRACEPARENT)
            .with_entry("request-id", "r-17");
        let (at_a, at_b) = client
            .with_call_timeout(Some(budget))
            .with_context(context)
            .relay()
            .await
            .unwrap();

        let (left_a, left_b) = (
            at_a.remaining_micros.unwrap(),
            at_b.remaining_micros.unwrap(),
        );
        assert!(
            left_a <= budget.as_micros() as u64,
            "{transport:?}: {left_a}"
        );
        assert!(
            left_b <= left_a,
            "{transport:?}: B has no more than A had left ({left_b} > {left_a} µs)"
        );

        let entries = vec![("request-id".to_owned(), "r-17".to_owned())];
        assert_eq!(at_a.trace_id.as_deref(), Some(TRACE_ID));
        assert_eq!(at_a.parent_id.as_deref(), Some("00f067aa0ba902b7"));
        assert_eq!(at_a.entries, entries);
        assert_eq!(at_b.trace_id.as_deref(), Some(TRACE_ID));
        assert_eq!(
            at_b.parent_id.as_deref(),
            Some(at_a.span_id.as_str()),
            "B's parent is A's span"
        );
        assert_eq!(at_b.entries, entries);
        assert_ne!(at_b.span_id, at_a.span_id);

        let b_spans = spans.of("seen");
        let b_span = b_spans
            .iter()
            .find(|fields| fields.get("span_id") == Some(&at_b.span_id))
            .unwrap_or_else(|| panic!("{transport:?}: no span of B's call in {b_spans:?}"));
        assert_eq!(b_span.get("trace_id").map(String::as_str), Some(TRACE_ID));
        assert_eq!(b_span.get("parent_id"), Some(&at_a.span_id));
    }
}
