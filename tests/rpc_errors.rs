//! Errors: typed application errors, panicking handlers, calls without a connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{AppError, KitchenClient, TestServer};
use hardlight::{ErrorCode, RpcError};

#[tokio::test]
async fn application_errors_arrive_typed() {
    let server = TestServer::start().await;
    let client = server.client().await;
    assert_eq!(client.lookup("one".into()).await.unwrap(), 1);
    match client.lookup("two".into()).await {
        Err(RpcError::Handler(AppError::NotFound { key })) => assert_eq!(key, "two"),
        other => panic!("expected a typed NotFound, got {other:?}"),
    }
    match client.lookup(String::new()).await {
        Err(RpcError::Handler(AppError::Invalid(reason))) => assert_eq!(reason, "empty key"),
        other => panic!("expected a typed Invalid, got {other:?}"),
    }
    match client.fail("nope".into()).await {
        Err(RpcError::Handler(error)) => assert_eq!(error.message(), "nope"),
        other => panic!("expected a HandlerError, got {other:?}"),
    }
}

#[tokio::test]
async fn a_panicking_handler_fails_only_its_call() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let (exploded, slow) = tokio::join!(client.explode(), client.sleep(50));
    match exploded {
        Err(RpcError::Remote { code, message }) => {
            assert_eq!(code, ErrorCode::HandlerPanicked);
            assert!(message.contains("exploded on purpose"), "{message}");
        }
        other => panic!("expected HandlerPanicked, got {other:?}"),
    }
    assert_eq!(slow.unwrap(), 50, "a concurrent call is unaffected");
    assert_eq!(
        client.add(1, 1, 1).await.unwrap(),
        3,
        "the connection lives on"
    );
    assert!(client.is_connected());
}

#[tokio::test]
async fn calls_before_connect_fail_clearly() {
    let client = KitchenClient::new_self_signed("127.0.0.1:9", hardlight::Compression::None);
    assert!(matches!(
        client.add(1, 2, 3).await,
        Err(RpcError::NotConnected)
    ));
    assert!(matches!(client.state().await, Err(RpcError::NotConnected)));
}

#[tokio::test]
async fn calls_after_disconnect_fail_clearly() {
    let server = TestServer::start().await;
    let client = server.client().await;
    client.disconnect().await;
    assert!(!client.is_connected());
    let error = client.add(1, 2, 3).await.unwrap_err();
    assert!(matches!(error, RpcError::NotConnected), "{error:?}");
    assert!(error.is_retriable());
}
