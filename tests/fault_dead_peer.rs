//! A server that dies without a word (SIGKILL: no close, no reset over UDP) fails the
//! client's call in flight within `Limits::idle_timeout`, the dead-peer bound (6 s by
//! default), over QUIC; over WebSocket the kernel resets the TCP connection at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{
    child::{announce_and_serve, is_child, ChildServer},
    KitchenClient, TestServer,
};
use hardlight::*;

/// The child's server (returns at once unless run as the child).
#[tokio::test]
async fn serve_kitchen() {
    if !is_child() {
        return;
    }
    let server = TestServer::start().await;
    announce_and_serve(server.addr, &server.certificate_pem).await;
}

async fn a_killed_server_fails_the_call_in_flight(transport: Transport) {
    let mut child = ChildServer::spawn("serve_kitchen");
    let client = KitchenClient::with_config(child.config(transport));
    client.connect().await.unwrap();
    assert_eq!(client.add(1, 2, 3).await.unwrap(), 6);
    let call = tokio::spawn(async move { client.sleep(600_000).await });
    child.kill();
    // only a hang reaches this: the bound is the default idle timeout, 6 s
    let outcome = tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("the call in flight fails once the server is found dead")
        .unwrap();
    match outcome {
        Err(error @ RpcError::Transport(_)) => assert!(error.is_retriable()),
        other => panic!("expected a transport failure, got {other:?}"),
    }
}

over_both_transports!(a_killed_server_fails_the_call_in_flight);
