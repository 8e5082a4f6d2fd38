//! The QUIC socket's receive buffer (`ServerLimits::with_udp_receive_buffer`): a size the
//! kernel grants goes unreported; one above the kernel's cap still serves, and the server
//! says at bind that it got less, naming the setting. (Alone in its test binary: a
//! thread-local subscriber must not race other tests registering the same callsites.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    fmt::Debug,
    sync::{Arc, Mutex},
};

use common::TestServer;
use hardlight::{ServerLimits, Transport};
use tracing::{field::Field, Event, Level, Subscriber};
use tracing_subscriber::{layer::Context, prelude::*, Layer};

/// The warnings logged, with their fields.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

impl<S: Subscriber> Layer<S> for Warnings {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if *event.metadata().level() != Level::WARN {
            return;
        }
        let mut fields = String::new();
        event.record(&mut |field: &Field, value: &dyn Debug| {
            fields.push_str(&format!(" {}={:?}", field.name(), value));
        });
        self.0.lock().unwrap().push(fields);
    }
}

impl Warnings {
    /// The warnings about the QUIC socket's receive buffer.
    fn about_the_receive_buffer(&self) -> Vec<String> {
        let all = self.0.lock().unwrap();
        all.iter()
            .filter(|w| w.contains("udp_receive_buffer"))
            .cloned()
            .collect()
    }
}

/// The largest receive buffer a socket may ask this kernel for (Linux grants up to
/// twice this, for its bookkeeping).
fn kernel_cap() -> usize {
    std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

async fn serving_with(receive_buffer: usize) -> TestServer {
    let server = TestServer::start_with(|c| {
        c.with_server_limits(ServerLimits::default().with_udp_receive_buffer(receive_buffer))
    })
    .await;
    let client = server.client_over(Transport::Quic).await;
    assert_eq!(client.add(1, 2, 3).await.unwrap(), 6);
    server
}

#[tokio::test]
async fn a_receive_buffer_within_the_cap_is_granted_and_one_beyond_is_reported() {
    let warnings = Warnings::default();
    let _guard = tracing_subscriber::registry()
        .with(warnings.clone())
        .set_default();

    // 64 KiB: below every kernel's cap
    let _within = serving_with(64 << 10).await;
    assert_eq!(warnings.about_the_receive_buffer(), Vec::<String>::new());

    // the most the setting takes, more than a kernel grants unless its cap was raised
    // to half a GiB
    let asked = 1 << 30;
    let _beyond = serving_with(asked).await;
    let reported = warnings.about_the_receive_buffer();
    if 2 * kernel_cap() < asked {
        assert_eq!(reported.len(), 1, "{reported:?}");
        assert!(
            reported[0].contains(&format!("asked={asked}")),
            "{reported:?}"
        );
        assert!(reported[0].contains("net.core.rmem_max"), "{reported:?}");
    } else {
        assert_eq!(reported, Vec::<String>::new());
    }
}

#[test]
fn the_setting_takes_at_most_a_gib() {
    let limits = ServerLimits::default().with_udp_receive_buffer(usize::MAX);
    assert_eq!(limits.udp_receive_buffer(), 1 << 30);
    assert_eq!(ServerLimits::default().udp_receive_buffer(), 4 << 20);
}
