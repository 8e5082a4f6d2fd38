//! Many calls on one connection, cancellation and timeouts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::TestServer;
use futures_util::future::join_all;
use hardlight::{RpcError, ServerLimits};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_calls_on_one_connection() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let calls = (0..1000i64).map(|i| {
        let client = client.clone();
        async move { (i, client.add(i, i, 1).await) }
    });
    let results = join_all(calls).await;
    assert_eq!(results.len(), 1000);
    for (i, result) in results {
        assert_eq!(result.unwrap(), 2 * i + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_the_stream_limit_wait_for_a_slot() {
    let server = TestServer::start_with(|c| {
        c.with_server_limits(ServerLimits::default().with_max_concurrent_calls(8))
    })
    .await;
    let client = server.client().await;
    let calls = (0..64u64).map(|i| {
        let client = client.clone();
        async move { client.sleep(i % 5).await }
    });
    for (i, result) in join_all(calls).await.into_iter().enumerate() {
        assert_eq!(result.unwrap(), i as u64 % 5);
    }
}

#[tokio::test]
async fn a_call_timeout_is_reported_as_such() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let impatient = client.with_call_timeout(Some(Duration::from_millis(50)));
    match impatient.sleep(60_000).await {
        Err(RpcError::DeadlineExceeded(limit)) => assert_eq!(limit, Duration::from_millis(50)),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(
        client.add(2, 2, 2).await.unwrap(),
        6,
        "connection still usable"
    );
}
