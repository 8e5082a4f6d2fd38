//! The NATS connection: its options, and its state as HardLight follows it.

use std::sync::Arc;

use async_nats::{Client, ConnectOptions, Event};
use tokio::sync::watch;
use tracing::{info, warn};

use super::config::ClusterConfig;

/// Commands (publishes, subscriptions) the NATS client queues before a publish waits.
const CLIENT_CAPACITY: usize = 1024;

/// The NATS connection's state, as its events tell it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LinkState {
    /// Connected now.
    pub(crate) connected: bool,
    /// Connections lost so far: whatever was in flight on one may be lost.
    pub(crate) interruptions: u64,
    /// Times a subscription's buffer overflowed and NATS's client dropped messages.
    pub(crate) overflows: u64,
}

/// Starts connecting to the cluster's NATS servers, in the background: the server serves
/// locally until NATS is reachable, and reconnects (resubscribing) whenever it is lost.
pub(crate) async fn connect(
    config: &ClusterConfig,
    state: Arc<watch::Sender<LinkState>>,
) -> Result<Client, async_nats::ConnectError> {
    let base = match &config.options {
        Some(options) => options(ConnectOptions::new()),
        None => ConnectOptions::new(),
    };
    base.no_echo()
        .retry_on_initial_connect()
        .ping_interval(config.ping_interval)
        // round trips (requests) wait no longer than a lost connection takes to notice
        .request_timeout(Some(config.ping_interval * 2))
        .subscription_capacity(config.receive_buffer)
        .client_capacity(CLIENT_CAPACITY)
        .event_callback(move |event| {
            let state = Arc::clone(&state);
            async move { observe(&state, event) }
        })
        .connect(config.servers.clone())
        .await
}

fn observe(state: &watch::Sender<LinkState>, event: Event) {
    match event {
        Event::Connected => {
            info!("cluster link connected to NATS");
            state.send_modify(|s| s.connected = true);
        }
        Event::Disconnected | Event::Closed => {
            warn!(%event, "cluster link to NATS lost: gaps reported, reconnecting");
            state.send_modify(|s| {
                s.connected = false;
                s.interruptions += 1;
            });
        }
        Event::SlowConsumer(_) => {
            warn!("cluster link dropped messages of a slow subscription: gaps reported");
            state.send_modify(|s| s.overflows += 1);
        }
        other => info!(event = %other, "cluster link"),
    }
}

/// Asks NATS for a round trip on `subject`, which nobody subscribes to: NATS answers "no
/// responders" once it has processed everything this connection sent before the request.
/// `false` if no answer came (the connection was lost, or the request timed out).
pub(crate) async fn round_trip(client: &Client, subject: String) -> bool {
    match client.request(subject, bytes::Bytes::new()).await {
        Ok(_) => true,
        Err(error) => error.kind() == async_nats::RequestErrorKind::NoResponders,
    }
}
