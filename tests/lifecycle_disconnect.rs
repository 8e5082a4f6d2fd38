//! A connection's handler lives exactly as long as the connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use hardlight::Priority;

use common::{
    probe::{count, wait_until, CALLS_CANCELLED, CALLS_STARTED, HANDLERS_DROPPED},
    start_probe,
};

#[tokio::test]
async fn a_disconnected_clients_handler_and_calls_are_dropped() {
    let (_addr, _shutdown, client) = start_probe(|c| c).await;
    assert_eq!(client.slow(1).await.unwrap(), 1);
    assert_eq!(count(&HANDLERS_DROPPED), 0);
    // calls still running when the client goes away: one on the connection's call
    // channel, one (not of normal priority) on a QUIC stream of its own
    let held = {
        let client = client.clone();
        tokio::spawn(async move { client.hold().await })
    };
    let held_on_stream = {
        let client = client.with_priority(Priority::Low);
        tokio::spawn(async move { client.hold().await })
    };
    wait_until(|| count(&CALLS_STARTED) == 3).await;
    client.disconnect().await;
    assert!(held.await.unwrap().is_err(), "the in-flight call fails");
    assert!(
        held_on_stream.await.unwrap().is_err(),
        "and the one on its stream"
    );
    wait_until(|| count(&CALLS_CANCELLED) == 2).await;
    wait_until(|| count(&HANDLERS_DROPPED) == 1).await;
}
