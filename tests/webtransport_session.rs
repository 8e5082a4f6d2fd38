//! WebTransport sessions on the QUIC endpoint, reached by a raw HTTP/3 peer as a browser
//! reaches them (headless Chromium does in `browser_chromium.rs`): the session carries
//! the protocol with its streams marked, the `CONNECT` request's headers reach the
//! authenticator, the server closes a session with a capsule naming its close code, and
//! what is not a HardLight session (or not HTTP/3 at all) is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{
    raw::{kitchen_hello, quic_connect},
    webtransport::{varint, WtPeer},
    TestServer,
};
use hardlight::{
    protocol::{
        close::Close,
        frame::Kind,
        handshake::{webtransport_path, Hello},
        PROTOCOL_VERSION,
    },
    *,
};

/// The code the server closed `peer`'s connection with.
async fn close_code(peer: &WtPeer) -> u32 {
    match peer.conn.closed().await {
        quinn::ConnectionError::ApplicationClosed(close) => {
            u32::try_from(close.error_code.into_inner()).unwrap()
        }
        other => panic!("expected the server to close the connection, got {other}"),
    }
}

/// The path of this protocol version's sessions.
fn path() -> String {
    webtransport_path(PROTOCOL_VERSION)
}

#[tokio::test]
async fn a_session_carries_the_protocol_and_its_headers_reach_the_authenticator() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&seen);
    let server = TestServer::start_with(move |config| {
        config.with_authenticator(move |request: AuthRequest| {
            let recorded = Arc::clone(&recorded);
            async move {
                recorded.lock().unwrap().push((
                    request.transport,
                    request.origin().map(str::to_owned),
                    request.header("x-app").map(str::to_owned),
                ));
                Ok(Identity::anonymous())
            }
        })
    })
    .await;
    let mut peer = WtPeer::connect(&server).await.expect("h3 connection");
    let status = peer
        .request(
            &path(),
            &[("origin", "https://app.example"), ("x-app", "demo")],
        )
        .await;
    assert_eq!(status, 200);
    let (_send, _recv, header, _) = peer.hello(&kitchen_hello(vec![])).await;
    assert_eq!(header.kind, Kind::Welcome);
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        [(
            TransportKind::WebTransport,
            Some("https://app.example".to_owned()),
            Some("demo".to_owned())
        )]
    );

    // the server's unidirectional streams: its HTTP/3 control stream, and the push
    // stream, marked as the session's
    let mut marks = Vec::new();
    for _ in 0..2 {
        let mut stream = peer.conn.accept_uni().await.expect("a stream");
        let mut first = [0u8; 1];
        stream.read_exact(&mut first).await.expect("its first byte");
        if first[0] == 0x00 {
            marks.push(vec![0x00]);
            continue;
        }
        let mut rest = [0u8; 2];
        stream.read_exact(&mut rest).await.expect("its mark");
        marks.push(vec![first[0], rest[0], rest[1]]);
    }
    marks.sort();
    let mut push = vec![0x40, 0x54];
    varint(&mut push, peer.session());
    assert_eq!(marks, [vec![0x00], push]);
}

#[tokio::test]
async fn a_refused_hello_closes_the_session_with_a_capsule_naming_the_code() {
    let server = TestServer::start().await;
    let mut peer = WtPeer::connect(&server).await.expect("h3 connection");
    assert_eq!(peer.request(&path(), &[]).await, 200);
    let valid = kitchen_hello(vec![]);
    let hello = Hello {
        schema_hash: valid.schema_hash ^ 1,
        ..valid
    };
    let (_send, _recv, header, _) = peer.hello(&hello).await;
    assert_eq!(header.kind, Kind::Reject);
    // CLOSE_WEBTRANSPORT_SESSION in a DATA frame: type, length, code, reason
    let frame = peer.connect_frame().await;
    let capsule = frame.payload();
    assert_eq!(&capsule[..2], [0x68, 0x43]);
    let code = u32::from_be_bytes(capsule[3..7].try_into().unwrap());
    assert_eq!(code, Close::Rejected.quic_code());
    assert!(!capsule[7..].is_empty(), "the capsule carries the reason");
}

#[tokio::test]
async fn a_connect_to_another_version_is_answered_404_and_closed() {
    let server = TestServer::start().await;
    let mut peer = WtPeer::connect(&server).await.expect("h3 connection");
    let status = peer
        .request(&webtransport_path(PROTOCOL_VERSION + 1), &[])
        .await;
    assert_eq!(status, 404);
    assert_eq!(close_code(&peer).await, Close::Rejected.quic_code());
}

#[tokio::test]
async fn a_peer_that_never_opens_a_session_is_closed_at_the_handshake_timeout() {
    let server = TestServer::start_with(|config| {
        config.with_server_limits(
            ServerLimits::default().with_handshake_timeout(Duration::from_millis(300)),
        )
    })
    .await;
    let peer = WtPeer::connect(&server).await.expect("h3 connection");
    assert_eq!(close_code(&peer).await, Close::Protocol.quic_code());
}

#[tokio::test]
async fn a_server_without_webtransport_does_not_speak_http3() {
    let server = TestServer::start_with(ServerConfig::without_webtransport).await;
    let (_endpoint, conn) = quic_connect(&server, b"h3".to_vec()).await;
    match conn {
        Err(quinn::ConnectionError::ConnectionClosed(close)) => {
            // TLS alert no_application_protocol
            assert_eq!(
                close.error_code,
                quinn::TransportErrorCode::crypto(120),
                "{close:?}"
            )
        }
        other => panic!("expected the handshake to fail, got {other:?}"),
    }
    // HardLight's own protocol is served as ever
    let client = server.client_over(Transport::Quic).await;
    assert!(client.is_connected());
}

#[tokio::test]
async fn a_hostile_header_block_is_refused_and_the_server_goes_on() {
    let server = TestServer::start().await;
    let mut peer = WtPeer::connect(&server).await.expect("h3 connection");
    // the QPACK prefix, then a literal field name whose length runs on for 10 empty
    // continuation bytes before a non-empty one: its bits land beyond 64
    let mut block = vec![0x00, 0x00, 0x27];
    block.extend_from_slice(&[0x80; 10]);
    block.push(0x01);
    peer.send_header_block(&block).await;
    assert_eq!(close_code(&peer).await, Close::Rejected.quic_code());
    // and a well-formed session after it is served
    let mut peer = WtPeer::connect(&server).await.expect("h3 connection");
    assert_eq!(peer.request(&path(), &[]).await, 200);
    let (_send, _recv, header, _) = peer.hello(&kitchen_hello(vec![])).await;
    assert_eq!(header.kind, Kind::Welcome);
}
