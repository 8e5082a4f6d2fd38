//! Tracing spans per connection and per call. (Alone in its test binary: a thread-local
//! subscriber must not race other tests registering the same callsites.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::TestServer;
use tracing::{
    span::{Attributes, Id},
    Subscriber,
};
use tracing_subscriber::{layer::Context, prelude::*, registry::LookupSpan, Layer};

/// Records the name and fields of every span created.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<String>>>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
        let mut fields = String::new();
        attrs.record(
            &mut |field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
                fields.push_str(&format!(" {}={:?}", field.name(), value));
            },
        );
        self.0
            .lock()
            .unwrap()
            .push(format!("{}{}", attrs.metadata().name(), fields));
    }
}

#[tokio::test]
async fn connections_and_calls_run_in_spans() {
    let spans = Spans::default();
    let _guard = tracing_subscriber::registry()
        .with(
            spans
                .clone()
                .with_filter(tracing_subscriber::filter::LevelFilter::DEBUG),
        )
        .set_default();
    let server = TestServer::start().await;
    let client = server.client().await;
    assert_eq!(client.add(1, 2, 3).await.unwrap(), 6);
    let spans = spans.0.lock().unwrap().clone();
    assert!(
        spans
            .iter()
            .any(|s| s.starts_with("connection") && s.contains("transport=\"quic\"")),
        "{spans:?}"
    );
    assert!(
        spans
            .iter()
            .any(|s| s.starts_with("call") && s.contains("method=\"add\"")),
        "{spans:?}"
    );
}
