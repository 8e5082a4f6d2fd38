//! One suite, run over each transport: RPC, state, events and errors behave the same over
//! QUIC and over WebSocket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{collections::HashMap, time::Duration};

use common::{board::note, AppError, Point, Shape, TestServer};
use futures_util::future::join_all;
use hardlight::{Compression, ErrorCode, Limits, RpcError, Topic, Transport, TransportKind};

over_both_transports!(
    multi_thread:
    typed_calls,
    large_payloads,
    application_errors_and_panics,
    concurrent_calls,
    read_your_writes,
    events_in_order,
    call_timeouts_cancel,
    oversized_calls_are_refused,
);

fn expected_kind(transport: Transport) -> TransportKind {
    match transport {
        Transport::Quic => TransportKind::Quic,
        _ => TransportKind::WebSocket,
    }
}

async fn typed_calls(transport: Transport) {
    let server = TestServer::start().await;
    let client = server.client_over(transport).await;
    assert_eq!(client.transport(), Some(expected_kind(transport)));
    assert_eq!(client.add(1, 2, 3).await.unwrap(), 6);
    let shape = Shape::Polygon(vec![Point {
        x: 1,
        y: 2,
        label: Some("p".into()),
    }]);
    assert_eq!(
        client.maybe(Some(shape.clone())).await.unwrap(),
        Some(shape)
    );
    let tags = HashMap::from([("k".to_owned(), 7u32)]);
    let (_, inverted) = client.transform(vec![], tags).await.unwrap();
    assert_eq!(inverted.get(&7).map(String::as_str), Some("k"));
}

async fn large_payloads(transport: Transport) {
    let server = TestServer::start().await;
    let client = server.client_over(transport).await;
    let random: Vec<u8> = (0..4 << 20).map(|_| rand::random::<u8>()).collect();
    assert_eq!(client.echo_bytes(random.clone()).await.unwrap(), random);
    let patterned: Vec<u8> = (0..1u32 << 20).map(|i| (i % 7) as u8).collect();
    assert_eq!(
        client.echo_bytes(patterned.clone()).await.unwrap(),
        patterned
    );
}

async fn application_errors_and_panics(transport: Transport) {
    let server = TestServer::start().await;
    let client = server.client_over(transport).await;
    assert!(matches!(
        client.lookup("x".into()).await,
        Err(RpcError::Handler(AppError::NotFound { .. }))
    ));
    match client.explode().await {
        Err(RpcError::Remote { code, .. }) => assert_eq!(code, ErrorCode::HandlerPanicked),
        other => panic!("expected a panic report, got {other:?}"),
    }
    assert_eq!(client.add(1, 1, 1).await.unwrap(), 3);
}

async fn concurrent_calls(transport: Transport) {
    let server = TestServer::start().await;
    let client = server.client_over(transport).await;
    let calls = (0..500i64).map(|i| {
        let client = client.clone();
        async move { (i, client.add(i, 1, 0).await.unwrap()) }
    });
    for (i, sum) in join_all(calls).await {
        assert_eq!(sum, i + 1);
    }
}

async fn read_your_writes(transport: Transport) {
    let server = TestServer::start().await;
    let client = server.client_over(transport).await;
    for expected in 1..=20u32 {
        client.increment(1).await.unwrap();
        assert_eq!(client.state().await.unwrap().counter, expected);
    }
}

async fn events_in_order(transport: Transport) {
    let server = common::board::BoardServer::start(|c| c).await;
    let client = common::board::BoardClient::with_config(
        hardlight::ClientConfig::new(server.addr.to_string())
            .insecure_accept_any_certificate()
            .with_transport(transport),
    );
    client.connect().await.unwrap();
    let mut events = client.subscribe().await.unwrap();
    client.join("t".into()).await.unwrap();
    for seq in 0..100 {
        server.emitter.emit(&Topic::from("t"), note(1, seq)).await;
    }
    for seq in 0..100 {
        assert_eq!(events.recv().await.unwrap().payload, note(1, seq));
    }
}

async fn call_timeouts_cancel(transport: Transport) {
    let server = TestServer::start().await;
    let client = server.client_over(transport).await;
    let impatient = client.with_call_timeout(Some(Duration::from_millis(50)));
    assert!(matches!(
        impatient.sleep(60_000).await,
        Err(RpcError::DeadlineExceeded(_))
    ));
    assert_eq!(client.sleep(1).await.unwrap(), 1);
}

async fn oversized_calls_are_refused(transport: Transport) {
    let server = TestServer::start_with(|c| {
        c.with_compression(Compression::None)
            .with_limits(Limits::default().with_max_message_size(64 * 1024))
    })
    .await;
    let client = server.client_over(transport).await;
    let just_under = vec![1u8; 60 * 1024];
    assert_eq!(
        client.echo_bytes(just_under.clone()).await.unwrap(),
        just_under
    );
    let over = vec![1u8; 70 * 1024];
    let error = client.echo_bytes(over).await.unwrap_err();
    assert!(
        matches!(
            error,
            RpcError::Protocol(hardlight::ProtocolError::FrameTooLarge { .. })
        ),
        "{error:?}"
    );
    assert_eq!(
        client.add(1, 2, 3).await.unwrap(),
        6,
        "the connection lives on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_falls_back_to_websocket_when_quic_is_unavailable() {
    let server = TestServer::start_with(|c| c.without_quic()).await;
    let client = hardlight_client_auto(&server);
    client.connect().await.unwrap();
    assert_eq!(client.transport(), Some(TransportKind::WebSocket));
    assert_eq!(client.add(2, 2, 2).await.unwrap(), 6);
    client.increment(5).await.unwrap();
    assert_eq!(client.state().await.unwrap().counter, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_prefers_quic_when_both_work() {
    let server = TestServer::start().await;
    // a head start longer than any handshake here: the preference is tested, not speed
    let client = common::KitchenClient::with_config(
        server
            .config()
            .with_transport(Transport::Auto)
            .with_quic_head_start(Duration::from_secs(10))
            .with_connect_timeout(Duration::from_secs(20)),
    );
    client.connect().await.unwrap();
    assert_eq!(client.transport(), Some(TransportKind::Quic));
}

#[tokio::test]
async fn websocket_only_servers_refuse_quic_clients_clearly() {
    let server = TestServer::start_with(|c| c.without_quic()).await;
    let client = common::KitchenClient::with_config(
        server
            .config()
            .with_transport(Transport::Quic)
            .with_connect_timeout(Duration::from_secs(2)),
    );
    assert!(client.connect().await.is_err());
}

fn hardlight_client_auto(server: &TestServer) -> common::KitchenClient {
    common::KitchenClient::with_config(server.config().with_transport(Transport::Auto))
}
