//! The mirrored connection state: snapshot at connect, read-your-writes, consistency.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestServer;
use futures_util::future::join_all;

#[tokio::test]
async fn state_shows_a_calls_writes_as_soon_as_it_returns() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let initial = client.state().await.unwrap();
    assert_eq!((initial.counter, initial.history.len()), (0, 0));
    for expected in 1..=50u32 {
        assert_eq!(client.increment(1).await.unwrap(), expected);
        // no polling, no sleep: the reply is only delivered after the state change
        let state = client.state().await.unwrap();
        assert_eq!(state.counter, expected);
        assert_eq!(state.history.last(), Some(&expected));
    }
    client.rename("kitchen".into()).await.unwrap();
    assert_eq!(client.state().await.unwrap().name, "kitchen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_converge_and_every_snapshot_is_consistent() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let mut watcher = client.watch_state();
    let observer = tokio::spawn(async move {
        let mut seen = 0;
        while let Some(state) = watcher.changed().await {
            // every snapshot is one the server had: history ends with the counter
            assert_eq!(state.history.len() as u32, state.counter);
            assert_eq!(state.history.last().copied().unwrap_or(0), state.counter);
            seen += 1;
            if state.counter == 200 {
                break;
            }
        }
        seen
    });
    let calls = (0..200).map(|_| {
        let client = client.clone();
        async move { client.increment(1).await.unwrap() }
    });
    let mut returned: Vec<u32> = join_all(calls).await;
    returned.sort_unstable();
    assert_eq!(returned, (1..=200).collect::<Vec<_>>());
    let state = client.state().await.unwrap();
    assert_eq!(state.counter, 200);
    assert_eq!(state.history, (1..=200).collect::<Vec<_>>());
    assert!(observer.await.unwrap() >= 1);
}

#[tokio::test]
async fn each_connection_has_its_own_state() {
    let server = TestServer::start().await;
    let a = server.client().await;
    let b = server.client().await;
    a.increment(5).await.unwrap();
    b.increment(7).await.unwrap();
    assert_eq!(a.state().await.unwrap().counter, 5);
    assert_eq!(b.state().await.unwrap().counter, 7);
}

#[tokio::test]
async fn reconnecting_starts_from_a_fresh_snapshot() {
    let server = TestServer::start().await;
    let client = server.client().await;
    client.increment(3).await.unwrap();
    client.disconnect().await;
    client.connect().await.unwrap();
    assert_eq!(client.state().await.unwrap().counter, 0);
    assert_eq!(client.increment(1).await.unwrap(), 1);
}
