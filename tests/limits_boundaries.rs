//! Every limit at its boundary: just under passes, just over fails with a typed error.
//! (Message and decompressed sizes: `wire_malformed` and `transport_suite`; concurrent
//! calls: `rpc_concurrency`; the WebSocket upgrade and handshake timeouts: `ws_malformed`
//! and `auth_handshake`; the QUIC handshake timeout: `fault_network`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{eventually, raw::RawPeer, KitchenClient, TestServer};
use hardlight::{
    protocol::{
        codec::encode,
        frame::{FrameHeader, Kind, FLAG_COMPRESSED},
    },
    ConnectError, ErrorCode, Limits, ProtocolError, RateLimit, RejectCode, RpcError, ServerLimits,
    Transport,
};

async fn connect(server: &TestServer, transport: Transport) -> Result<KitchenClient, ConnectError> {
    let client = KitchenClient::with_config(server.config().with_transport(transport));
    client.connect().await.map(|()| client)
}

#[tokio::test]
async fn max_connections_admits_up_to_the_limit_and_frees_slots() {
    let server = TestServer::start_with(|c| {
        c.with_server_limits(ServerLimits::default().with_max_connections(3))
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            connect(&server, Transport::Quic)
                .await
                .expect("under the limit"),
        );
    }
    match connect(&server, Transport::Quic).await {
        Err(ConnectError::Rejected { code, reason }) => {
            assert_eq!(code, RejectCode::Overloaded);
            assert!(reason.contains("connection limit"), "{reason}");
        }
        other => panic!("expected Overloaded, got {other:?}"),
    }
    assert!(
        connect(&server, Transport::WebSocket).await.is_err(),
        "the cap covers both transports"
    );
    held.pop().unwrap().disconnect().await;
    // the slot comes back once the server has seen the close
    eventually("the slot freed", || {
        server.stats.snapshot().connections_open == 2
    })
    .await;
    connect(&server, Transport::Quic)
        .await
        .expect("a freed slot admits a new connection");
}

#[tokio::test]
async fn max_connections_per_ip_caps_one_address() {
    let server = TestServer::start_with(|c| {
        c.with_server_limits(ServerLimits::default().with_max_connections_per_ip(2))
    })
    .await;
    let _a = connect(&server, Transport::Quic).await.expect("first");
    let _b = connect(&server, Transport::WebSocket)
        .await
        .expect("second");
    match connect(&server, Transport::Quic).await {
        Err(ConnectError::Rejected { code, .. }) => assert_eq!(code, RejectCode::Overloaded),
        other => panic!("expected Overloaded, got {other:?}"),
    }
}

#[tokio::test]
async fn the_call_rate_limit_allows_the_burst_then_refuses() {
    let server = TestServer::start_with(|c| {
        // no refill: the verdict cannot depend on how fast the calls are made
        c.with_server_limits(ServerLimits::default().with_call_rate(Some(RateLimit {
            per_second: 0,
            burst: 5,
        })))
    })
    .await;
    for transport in [Transport::Quic, Transport::WebSocket] {
        let client = server.client_over(transport).await;
        for i in 0..5 {
            assert_eq!(client.add(i, 0, 0).await.unwrap(), i, "within the burst");
        }
        match client.add(1, 1, 1).await {
            Err(
                error @ RpcError::Remote {
                    code: ErrorCode::RateLimited,
                    ..
                },
            ) => {
                assert!(error.is_retriable());
                assert!(
                    error.to_string().contains("ServerLimits::call_rate"),
                    "{error}"
                );
            }
            other => panic!("{transport:?}: expected RateLimited, got {other:?}"),
        }
        assert_eq!(client.calls_seen().await.ok(), None, "still limited");
    }
}

#[tokio::test]
async fn the_call_rate_limit_is_checked_before_the_body_is_decompressed() {
    let server = TestServer::start_with(|c| {
        c.with_server_limits(ServerLimits::default().with_call_rate(Some(RateLimit {
            per_second: 0,
            burst: 1,
        })))
    })
    .await;
    let peer = RawPeer::connect(&server).await; // offers zstd
                                                // a body flagged compressed that is not zstd
    let garbage = [0x5au8; 32];
    let call = FrameHeader::new(Kind::Call, garbage.len() as u32)
        .with_aux(0)
        .with_flags(FLAG_COMPRESSED);
    let mut frame = call.encode().to_vec();
    frame.extend_from_slice(&garbage);
    // the one token admits the first call, whose body then fails to decompress; the second
    // is refused before its body is looked at
    assert_eq!(peer.expect_failure(&frame).await.0, ErrorCode::Compression);
    assert_eq!(peer.expect_failure(&frame).await.0, ErrorCode::RateLimited);
}

#[tokio::test]
async fn max_subscriptions_is_enforced_per_connection() {
    let server = TestServer::start_with(|c| {
        c.with_server_limits(ServerLimits::default().with_max_subscriptions(4))
    })
    .await;
    let client = server.client().await;
    let topics = |range: std::ops::Range<u32>| range.map(|i| format!("t{i}")).collect();
    assert_eq!(client.subscribe_to(topics(0..4)).await.unwrap(), 4);
    assert_eq!(
        client.subscribe_to(topics(0..4)).await.unwrap(),
        0,
        "already subscribed: no new slot needed"
    );
    match client.subscribe_to(topics(4..5)).await {
        Err(RpcError::Handler(error)) => {
            assert!(error.to_string().contains("max_subscriptions"), "{error}")
        }
        other => panic!("expected the subscription limit, got {other:?}"),
    }
    let other = server.client().await;
    assert_eq!(
        other.subscribe_to(topics(0..4)).await.unwrap(),
        4,
        "the limit is per connection"
    );
}

/// The largest `echo_bytes` payload whose call body fits in `max`.
fn largest_payload(max: u32) -> usize {
    let mut n = max as usize;
    while encode(&(vec![0u8; n],)).unwrap().len() > max as usize {
        n -= 1;
    }
    n
}

#[tokio::test]
async fn max_message_size_passes_at_the_limit_and_refuses_one_byte_over() {
    const MAX: u32 = 64 * 1024;
    let server =
        TestServer::start_with(|c| c.with_limits(Limits::default().with_max_message_size(MAX)))
            .await;
    let n = largest_payload(MAX);
    for transport in [Transport::Quic, Transport::WebSocket] {
        let client = KitchenClient::with_config(
            server
                .config()
                .with_transport(transport)
                .with_compression(hardlight::Compression::None)
                .with_limits(Limits::default().with_max_message_size(1 << 20)),
        );
        client.connect().await.unwrap();
        // a reply of the same payload is the same size as the call: both fit
        assert_eq!(client.echo_bytes(vec![1; n]).await.unwrap().len(), n);
        match client.echo_bytes(vec![1; n + 8]).await {
            Err(RpcError::Protocol(ProtocolError::FrameTooLarge { max, .. })) => {
                assert_eq!(max, MAX)
            }
            other => panic!("{transport:?}: expected FrameTooLarge, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_zero_keep_alive_counts_as_the_shortest_and_serves() {
    let zero = || Limits::default().with_keep_alive(Duration::ZERO);
    assert_eq!(zero().keep_alive(), Duration::from_millis(100));
    let server = TestServer::start_with(|c| c.with_limits(zero())).await;
    for transport in [Transport::Quic, Transport::WebSocket] {
        let client = KitchenClient::with_config(
            server
                .config()
                .with_transport(transport)
                .with_limits(zero()),
        );
        client.connect().await.unwrap();
        assert_eq!(client.add(1, 2, 3).await.unwrap(), 6, "{transport:?}");
    }
}

#[tokio::test]
async fn keep_alives_hold_a_quiet_connection_past_the_idle_timeout() {
    // (a peer that goes silent is closed by the idle timeout: `fault_network`)
    // sixteen keep-alives per idle timeout: only a pause of several seconds could lose one
    let short = || {
        Limits::default()
            .with_idle_timeout(Duration::from_secs(4))
            .with_keep_alive(Duration::from_millis(250))
    };
    let server = TestServer::start_with(|c| c.with_limits(short())).await;
    let quiet = |transport: Transport| {
        let server = &server;
        async move {
            let client = KitchenClient::with_config(
                server
                    .config()
                    .with_transport(transport)
                    .with_limits(short())
                    .with_reconnect(None),
            );
            client.connect().await.unwrap();
            tokio::time::sleep(Duration::from_secs(9)).await;
            assert_eq!(
                client.add(1, 2, 3).await.unwrap(),
                6,
                "{transport:?}: kept alive"
            );
            assert_eq!(client.stats().reconnects, 0, "{transport:?}: never lost");
        }
    };
    tokio::join!(quiet(Transport::Quic), quiet(Transport::WebSocket));
}

#[tokio::test]
async fn the_in_flight_byte_budget_makes_calls_wait_instead_of_failing() {
    let server = TestServer::start_with(|c| {
        c.with_limits(Limits::default().with_max_message_size(64 * 1024))
            .with_server_limits(ServerLimits::default().with_max_inflight_bytes(100 * 1024))
    })
    .await;
    let client = KitchenClient::with_config(
        server
            .config()
            .with_transport(Transport::Quic)
            .with_compression(hardlight::Compression::None),
    );
    client.connect().await.unwrap();
    let (done_tx, mut done) = tokio::sync::mpsc::unbounded_channel();
    let call = |name: &'static str, size: usize, millis: u64| {
        let (client, done_tx) = (client.clone(), done_tx.clone());
        tokio::spawn(async move {
            let held = client.hold(vec![0; size], millis).await.unwrap();
            assert_eq!(held, size);
            done_tx.send(name).unwrap();
        })
    };
    // the first call holds 60 KiB of the 100 KiB budget until it is cancelled
    let first = call("first", 60 * 1024, 3_600_000);
    eventually("the first call running", || {
        server.stats.snapshot().traffic.calls_in_flight == 1
    })
    .await;
    // 30 KiB more fits under the budget and runs at once
    call("fits", 30 * 1024, 0).await.unwrap();
    assert_eq!(done.recv().await, Some("fits"));
    // another 60 KiB does not fit: once the server has its header, it waits for budget
    let before = server.stats.snapshot().traffic.bytes_received;
    let waits = call("waits", 60 * 1024, 0);
    eventually("the third call announced", || {
        server.stats.snapshot().traffic.bytes_received >= before + 60 * 1024
    })
    .await;
    assert_eq!(
        server.stats.snapshot().traffic.calls_in_flight,
        1,
        "the third call waits for budget instead of running"
    );
    assert!(!waits.is_finished());
    // cancelling the first call gives its budget back: the third runs, without an error
    first.abort();
    waits.await.unwrap();
    assert_eq!(done.recv().await, Some("waits"));
}

#[tokio::test]
async fn a_hello_up_to_64_kib_is_read_and_a_larger_one_refused() {
    use hardlight::protocol::{
        codec::encode,
        frame::{FrameHeader, Kind},
        io::read_frame,
    };
    let server = TestServer::start().await;
    for (token_len, accepted) in [(60 * 1024, true), (64 * 1024, false)] {
        let mut hello = common::raw::kitchen_hello(vec![]);
        hello.token = Some(vec![7; token_len]);
        let body = encode(&hello).unwrap();
        let (_endpoint, conn) = common::raw::quic_connect(&server, b"hardlight/8".to_vec()).await;
        let conn = conn.unwrap();
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        let mut frame = FrameHeader::new(Kind::Hello, body.len() as u32)
            .encode()
            .to_vec();
        frame.extend_from_slice(&body);
        send.write_all(&frame).await.unwrap();
        send.finish().unwrap();
        // the answer is one frame: after a `Welcome` the stream stays open as the call channel
        let (header, _) = read_frame(&mut recv, 1 << 20).await.unwrap();
        if accepted {
            assert_eq!(header.kind, Kind::Welcome, "{} B token", token_len);
        } else {
            assert_eq!(header.kind, Kind::Reject, "{} B token", token_len);
            assert_eq!(RejectCode::from_u16(header.aux), RejectCode::Malformed);
        }
    }
}
