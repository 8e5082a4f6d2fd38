//! Authentication during the handshake: tokens, the peer's address, WebSocket headers and
//! Origin, identities for handlers, refusals the client receives typed, and a slow
//! authenticator cut off by the handshake timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{KitchenClient, TestServer};
use futures_util::{SinkExt, StreamExt};
use hardlight::{
    protocol::{
        codec::{decode, encode},
        frame::{FrameHeader, Kind},
        message::encode_frame,
    },
    AuthError, AuthRequest, Compression, ConnectError, Identity, RejectCode, ServerLimits,
    Transport, TransportKind,
};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue, Message};

/// Accepts token `alice-token` as `alice`; refuses everything else, and browsers from any
/// origin but `https://app.example`.
async fn authenticate(request: AuthRequest) -> Result<Identity, AuthError> {
    if let Some(origin) = request.origin() {
        if origin != "https://app.example" {
            return Err(AuthError::new(format!("origin {origin} is not allowed")));
        }
    }
    match request.token.as_deref() {
        Some(b"alice-token") => Ok(Identity::new("alice")),
        Some(_) => Err(AuthError::new("unknown token")),
        None => Err(AuthError::new("a token is required")),
    }
}

async fn server() -> TestServer {
    TestServer::start_with(|c| c.with_authenticator(authenticate)).await
}

#[tokio::test]
async fn a_valid_token_connects_and_handlers_see_the_identity() {
    let server = server().await;
    for transport in [Transport::Quic, Transport::WebSocket] {
        let client = KitchenClient::with_config(
            server
                .config()
                .with_transport(transport)
                .with_token("alice-token"),
        );
        client.connect().await.expect("connect");
        assert_eq!(client.whoami().await.unwrap(), "alice", "{transport:?}");
    }
}

#[tokio::test]
async fn without_an_authenticator_everyone_is_anonymous() {
    let server = TestServer::start().await;
    let client = server.client().await;
    assert_eq!(client.whoami().await.unwrap(), "anonymous");
}

#[tokio::test]
async fn refusals_reach_the_client_typed_with_the_reason() {
    let server = server().await;
    for transport in [Transport::Quic, Transport::WebSocket] {
        for (token, reason) in [
            (None, "a token is required"),
            (Some("mallory"), "unknown token"),
        ] {
            let mut config = server.config().with_transport(transport);
            if let Some(token) = token {
                config = config.with_token(token);
            }
            let client = KitchenClient::with_config(config);
            match client.connect().await {
                Err(ConnectError::Rejected { code, reason: got }) => {
                    assert_eq!(code, RejectCode::Unauthorized, "{transport:?}");
                    assert_eq!(got, reason, "{transport:?}");
                }
                other => panic!("{transport:?}: expected a rejection, got {other:?}"),
            }
            assert!(!client.is_connected());
        }
    }
}

/// A raw WebSocket handshake with `origin`: the server's answer to a `Hello` carrying
/// `alice-token`.
async fn hello_from_origin(server: &TestServer, origin: &str) -> (Kind, u16, String) {
    let mut request = format!("wss://localhost:{}/", server.addr.port())
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    headers.insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("hardlight.8"),
    );
    headers.insert("origin", HeaderValue::from_str(origin).unwrap());
    let tls = common::raw_ws::tls(server).await;
    let (mut ws, _) = tokio_tungstenite::client_async(request, tls).await.unwrap();
    let mut hello = common::raw::kitchen_hello(vec![]);
    hello.token = Some(b"alice-token".to_vec());
    let frame = encode_frame(
        FrameHeader::new(Kind::Hello, 0),
        &encode(&hello).unwrap(),
        Compression::None,
    )
    .unwrap();
    ws.send(Message::Binary(frame.into())).await.unwrap();
    let Some(Ok(Message::Binary(reply))) = ws.next().await else {
        panic!("no handshake answer");
    };
    let (header, body) = FrameHeader::split(&reply, 1 << 20).unwrap();
    let reason = if header.kind == Kind::Reject {
        decode::<String>(body).unwrap()
    } else {
        String::new()
    };
    (header.kind, header.aux, reason)
}

#[tokio::test]
async fn the_authenticator_sees_websocket_headers_and_origin() {
    let server = server().await;
    let (kind, _, _) = hello_from_origin(&server, "https://app.example").await;
    assert_eq!(kind, Kind::Welcome);
    let (kind, code, reason) = hello_from_origin(&server, "https://evil.example").await;
    assert_eq!(kind, Kind::Reject);
    assert_eq!(RejectCode::from_u16(code), RejectCode::Unauthorized);
    assert_eq!(reason, "origin https://evil.example is not allowed");
}

#[tokio::test]
async fn the_authenticator_sees_the_peer_and_transport() {
    let seen: Arc<Mutex<Vec<AuthRequest>>> = Arc::default();
    let record = Arc::clone(&seen);
    let server = TestServer::start_with(move |c| {
        c.with_authenticator(move |request: AuthRequest| {
            record.lock().unwrap().push(request);
            async { Ok(Identity::new("someone")) }
        })
    })
    .await;
    server.client_over(Transport::Quic).await;
    server.client_over(Transport::WebSocket).await;
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].transport, TransportKind::Quic);
    assert!(seen[0].headers.is_empty());
    assert_eq!(seen[1].transport, TransportKind::WebSocket);
    assert_eq!(
        seen[1].header("sec-websocket-protocol"),
        Some("hardlight.8"),
        "upgrade headers reach the authenticator"
    );
    for request in seen.iter() {
        assert!(request.remote.ip().is_loopback());
    }
}

#[tokio::test]
async fn a_slow_authenticator_is_cut_off_by_the_handshake_timeout() {
    let server = TestServer::start_with(|c| {
        c.with_server_limits(
            ServerLimits::default().with_handshake_timeout(Duration::from_millis(300)),
        )
        .with_authenticator(|_: AuthRequest| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(Identity::anonymous())
        })
    })
    .await;
    for transport in [Transport::Quic, Transport::WebSocket] {
        let client = KitchenClient::with_config(server.config().with_transport(transport));
        let error = client
            .connect()
            .await
            .expect_err("the handshake must time out");
        assert!(
            !matches!(error, ConnectError::Timeout(_)),
            "{transport:?}: the server, not the client's connect timeout, ends it: {error}"
        );
    }
}
