//! A connection's handler lives exactly as long as the connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    probe::{count, wait_until, CALLS_CANCELLED, CALLS_STARTED, HANDLERS_DROPPED},
    start_probe,
};

#[tokio::test]
async fn a_disconnected_clients_handler_and_calls_are_dropped() {
    let (_addr, _shutdown, client) = start_probe(|c| c).await;
    assert_eq!(client.slow(1).await.unwrap(), 1);
    assert_eq!(count(&HANDLERS_DROPPED), 0);
    // a call still running when the client goes away
    let held = {
        let client = client.clone();
        tokio::spawn(async move { client.hold().await })
    };
    wait_until(|| count(&CALLS_STARTED) == 2).await;
    client.disconnect().await;
    assert!(held.await.unwrap().is_err(), "the in-flight call fails");
    wait_until(|| count(&CALLS_CANCELLED) == 1).await;
    wait_until(|| count(&HANDLERS_DROPPED) == 1).await;
}
