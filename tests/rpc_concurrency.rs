//! Many calls on one connection, cancellation and timeouts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    future::{poll_fn, Future},
    task::Poll,
    time::Duration,
};

use common::TestServer;
use futures_util::future::join_all;
use hardlight::{RpcError, ServerLimits, Transport};

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

/// Calls past the server's limit wait in line for a slot; one that gives up there (its
/// timeout passes) is never sent: the server sees only the calls that had a slot, and
/// the slots of calls cancelled serve the call in line and the calls after.
async fn a_call_that_times_out_in_line_is_never_sent(transport: Transport) {
    let server = TestServer::start_with(|c| {
        c.with_server_limits(ServerLimits::default().with_max_concurrent_calls(2))
    })
    .await;
    let client = server.client_over(transport).await;
    let seen = client.calls_seen().await.unwrap();
    // two calls take both slots as they are first polled
    let mut holders: Vec<_> = (0..2).map(|_| Box::pin(client.sleep(600_000))).collect();
    for holder in &mut holders {
        let polled = poll_fn(|cx| Poll::Ready(holder.as_mut().poll(cx).is_pending())).await;
        assert!(polled, "a call sleeping for ten minutes is in flight");
    }
    // a call without a timeout waits in line, first
    let mut patient = Box::pin(client.add(4, 5, 6));
    let polled = poll_fn(|cx| Poll::Ready(patient.as_mut().poll(cx).is_pending())).await;
    assert!(polled, "no slot is free");
    let impatient = client.with_call_timeout(Some(Duration::from_millis(50)));
    for outcome in join_all((0..10).map(|i| impatient.add(i, i, i))).await {
        match outcome {
            Err(RpcError::DeadlineExceeded(_)) => {}
            other => panic!("expected the call in line to time out, got {other:?}"),
        }
    }
    // the holders, dropped, give their slots back, the first to the call in line: the
    // server reads their `Cancel`s before the calls that take their slots
    drop(holders);
    assert_eq!(patient.await.unwrap(), 15);
    assert_eq!(client.add(1, 2, 3).await.unwrap(), 6);
    assert_eq!(
        client.calls_seen().await.unwrap(),
        seen + 5,
        "the server saw this count, the two holders, the call in line, the call after them and this count: none of the calls that timed out in line"
    );
}

over_both_transports!(a_call_that_times_out_in_line_is_never_sent);

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
