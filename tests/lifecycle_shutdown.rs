//! Graceful shutdown: in-flight calls finish, new work is refused, stragglers are cut off
//! at the deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{
    probe::{count, wait_until, ProbeClient, CALLS_CANCELLED, CALLS_STARTED, HANDLERS_DROPPED},
    start_probe,
};
use hardlight::{Compression, ConnectError};

/// One test: the scenarios share the probe's process-wide counters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown() {
    drains_in_flight_calls_then_refuses_connections().await;
    cancels_calls_still_running_at_the_deadline().await;
}

async fn drains_in_flight_calls_then_refuses_connections() {
    let (addr, shutdown, client) = start_probe(|c| c).await;
    let in_flight = {
        let client = client.clone();
        tokio::spawn(async move { client.slow(300).await })
    };
    wait_until(|| count(&CALLS_STARTED) == 1).await;
    shutdown.shutdown(Duration::from_secs(10)).await;
    assert_eq!(
        in_flight.await.unwrap().unwrap(),
        300,
        "the in-flight call completed"
    );
    assert_eq!(count(&CALLS_CANCELLED), 0);
    wait_until(|| count(&HANDLERS_DROPPED) == 1).await;
    assert!(client.slow(1).await.is_err(), "no calls after shutdown");
    let late = ProbeClient::with_config(
        hardlight::ClientConfig::new(addr.to_string())
            .insecure_accept_any_certificate()
            .with_compression(Compression::None)
            .with_connect_timeout(Duration::from_secs(1)),
    );
    assert!(matches!(
        late.connect().await,
        Err(ConnectError::Transport { .. } | ConnectError::Timeout(_))
    ));
}

async fn cancels_calls_still_running_at_the_deadline() {
    let (_addr, shutdown, client) = start_probe(|c| c).await;
    let stuck = {
        let client = client.clone();
        tokio::spawn(async move { client.hold().await })
    };
    wait_until(|| count(&CALLS_STARTED) == 2).await;
    shutdown.shutdown(Duration::from_millis(200)).await;
    let error = stuck.await.unwrap().unwrap_err();
    assert!(error.is_retriable(), "{error:?}");
    wait_until(|| count(&CALLS_CANCELLED) == 1).await;
    wait_until(|| count(&HANDLERS_DROPPED) == 2).await;
}
