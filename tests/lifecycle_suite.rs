//! One lifecycle suite, run over QUIC, WebSocket and the in-process transport: the one
//! connection driver behaves the same whatever carries it — calls, cancellation, a closed
//! connection ending its session, graceful shutdown and its deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{eventually, KitchenClient, TestServer, Via};
use futures_util::future::join_all;
use hardlight::{RpcError, TransportKind};

/// Instantiates each scenario `name(via)` as `name::quic`, `name::websocket` and
/// `name::memory`.
macro_rules! over_every_transport {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use super::Via;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn quic() {
                    super::$name(Via::Quic).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn websocket() {
                    super::$name(Via::WebSocket).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn memory() {
                    super::$name(Via::Memory).await
                }
            }
        )*
    };
}

over_every_transport!(
    calls_state_and_concurrency,
    a_cancelled_call_is_dropped_on_the_server,
    a_closed_connection_ends_its_session,
    shutdown_drains_in_flight_calls_then_refuses_new_ones,
    the_shutdown_deadline_cancels_running_calls,
);

fn kind(via: Via) -> TransportKind {
    match via {
        Via::Quic => TransportKind::Quic,
        Via::WebSocket => TransportKind::WebSocket,
        Via::Memory => TransportKind::Memory,
    }
}

async fn calls_state_and_concurrency(via: Via) {
    let server = TestServer::start().await;
    let client = server.client_for(via).await;
    assert_eq!(client.transport(), Some(kind(via)));
    assert_eq!(client.increment(2).await.unwrap(), 2);
    assert_eq!(client.state().await.unwrap().counter, 2, "read-your-writes");
    let sums = join_all((0..300).map(|i| {
        let client = client.clone();
        async move { client.add(i, 1, 0).await.unwrap() }
    }))
    .await;
    assert_eq!(sums, (1..=300).collect::<Vec<i64>>());
}

async fn a_cancelled_call_is_dropped_on_the_server(via: Via) {
    let server = TestServer::start().await;
    let client = server.client_for(via).await;
    let impatient = client.with_call_timeout(Some(Duration::from_secs(3)));
    assert!(matches!(
        impatient.sleep(3_600_000).await,
        Err(RpcError::DeadlineExceeded(_))
    ));
    // the handler future was dropped: the call no longer runs
    eventually("the cancelled call dropped", || {
        server.stats.snapshot().traffic.calls_in_flight == 0
    })
    .await;
    assert_eq!(client.add(1, 2, 3).await.unwrap(), 6);
}

async fn a_closed_connection_ends_its_session(via: Via) {
    let server = TestServer::start().await;
    let client = server.client_for(via).await;
    assert_eq!(client.subscribe_to(vec!["t".into()]).await.unwrap(), 1);
    client.disconnect().await;
    eventually("the connection and its session ended", || {
        let stats = server.stats.snapshot();
        stats.connections_open == 0 && stats.sessions_parked == 0
    })
    .await;
}

async fn shutdown_drains_in_flight_calls_then_refuses_new_ones(via: Via) {
    let server = TestServer::start().await;
    let client = server.client_for(via).await;
    let in_flight = {
        let client = client.clone();
        tokio::spawn(async move { client.sleep(300).await })
    };
    eventually("the call running", || {
        server.stats.snapshot().traffic.calls_in_flight == 1
    })
    .await;
    // the client closes once its last call has its reply: the shutdown ends then, long
    // before its deadline
    let shutdown = server.shutdown.shutdown(Duration::from_secs(3600));
    tokio::time::timeout(Duration::from_secs(60), shutdown)
        .await
        .expect(
            "the drained client closed its connection; the shutdown did not wait out its deadline",
        );
    assert_eq!(
        in_flight.await.unwrap().unwrap(),
        300,
        "drained, not cut off"
    );
    let late = KitchenClient::with_config(
        server
            .config_for(via)
            .with_reconnect(None)
            .with_connect_timeout(Duration::from_secs(10)),
    );
    assert!(
        late.connect().await.is_err(),
        "no connections after shutdown"
    );
}

async fn the_shutdown_deadline_cancels_running_calls(via: Via) {
    let server = TestServer::start().await;
    let client = server.client_for(via).await;
    let stuck = {
        let client = client.clone();
        tokio::spawn(async move { client.sleep(3_600_000).await })
    };
    eventually("the call running", || {
        server.stats.snapshot().traffic.calls_in_flight == 1
    })
    .await;
    server.shutdown.shutdown(Duration::from_millis(100)).await;
    let error = stuck.await.unwrap().unwrap_err();
    assert!(error.is_retriable(), "{error:?}");
    assert_eq!(server.stats.snapshot().traffic.calls_in_flight, 0);
}
