//! Dropping a call's future, or its timeout, cancels the call on the server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{
    probe::{count, wait_until, CALLS_CANCELLED, CALLS_STARTED},
    start_probe,
};
use hardlight::RpcError;

#[tokio::test]
async fn dropped_and_timed_out_calls_drop_the_handler_future() {
    let (_addr, _shutdown, client) = start_probe(|c| c).await;

    // drop the future once the handler is running
    let call = {
        let client = client.clone();
        tokio::spawn(async move { client.hold().await })
    };
    wait_until(|| count(&CALLS_STARTED) == 1).await;
    call.abort();
    wait_until(|| count(&CALLS_CANCELLED) == 1).await;

    // a per-call timeout does the same (long enough for the server to have started the call)
    let impatient = client.with_call_timeout(Some(Duration::from_secs(3)));
    assert!(matches!(
        impatient.hold().await,
        Err(RpcError::DeadlineExceeded(_))
    ));
    wait_until(|| count(&CALLS_CANCELLED) == 2).await;
    assert_eq!(count(&CALLS_STARTED), 2);

    // the connection is unaffected
    assert_eq!(client.slow(1).await.unwrap(), 1);
    assert_eq!(client.state().await.unwrap().calls, 1);
}
