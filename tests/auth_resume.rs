//! A session resumes only for the identity that opened it: another authenticated identity
//! presenting its id gets a session of its own, and the owner's connection is left alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    raw::{hello, kitchen_hello, quic_connect_to},
    TestServer,
};
use hardlight::{
    protocol::{
        codec::decode,
        frame::{FrameHeader, Kind},
        handshake::{alpn, Resume, Welcome},
        io::read_frame,
        ErrorCode, PROTOCOL_VERSION,
    },
    AuthError, AuthRequest, Identity,
};

/// `alice-token` is alice, `bob-token` is bob.
async fn authenticate(request: AuthRequest) -> Result<Identity, AuthError> {
    match request.token.as_deref() {
        Some(b"alice-token") => Ok(Identity::new("alice")),
        Some(b"bob-token") => Ok(Identity::new("bob")),
        _ => Err(AuthError::new("unknown token")),
    }
}

struct Peer {
    conn: quinn::Connection,
    _endpoint: quinn::Endpoint,
    welcome: Welcome,
}

async fn connect(server: &TestServer, token: &[u8], resume: Option<[u8; 16]>) -> Peer {
    let (endpoint, conn) =
        quic_connect_to(server.addr, &server.certificate_pem, alpn(PROTOCOL_VERSION)).await;
    let conn = conn.unwrap();
    let mut request = kitchen_hello(vec![]);
    request.token = Some(token.to_vec());
    request.resume = resume.map(|session_id| Resume {
        session_id,
        events_received: 0,
    });
    let (header, body) = hello(&conn, &request).await;
    assert_eq!(header.kind, Kind::Welcome);
    Peer {
        conn,
        _endpoint: endpoint,
        welcome: decode(&body).unwrap(),
    }
}

/// The connection still serves calls: one to a method the service lacks gets its typed
/// failure.
async fn still_served(peer: &Peer) -> bool {
    let Ok((mut send, mut recv)) = peer.conn.open_bi().await else {
        return false;
    };
    let call = FrameHeader::new(Kind::Call, 0).with_aux(u16::MAX).encode();
    if send.write_all(&call).await.is_err() || send.finish().is_err() {
        return false;
    }
    match read_frame(&mut recv, 1 << 20).await {
        Ok((header, _)) => ErrorCode::from_u16(header.aux) == ErrorCode::UnknownMethod,
        Err(_) => false,
    }
}

#[tokio::test]
async fn another_identity_cannot_resume_a_session() {
    let server = TestServer::start_with(|c| c.with_authenticator(authenticate)).await;
    let alice = connect(&server, b"alice-token", None).await;
    let session = alice.welcome.session_id;

    let bob = connect(&server, b"bob-token", Some(session)).await;
    assert!(!bob.welcome.resumed, "bob must not get alice's session");
    assert_ne!(bob.welcome.session_id, session);
    assert!(
        still_served(&alice).await,
        "alice's connection was left alone"
    );

    // the same identity does take it over (so the refusal above is the identity check)
    let alice_again = connect(&server, b"alice-token", Some(session)).await;
    assert!(alice_again.welcome.resumed);
    assert_eq!(alice_again.welcome.session_id, session);
    assert!(still_served(&bob).await);
}
