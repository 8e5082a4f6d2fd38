//! The handshake refuses what does not match, with clear errors at `connect()`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    raw::{hello, kitchen_hello, quic_connect},
    KitchenClient, TestServer,
};
use hardlight::{
    protocol::{codec::decode, frame::Kind, handshake::alpn, PROTOCOL_VERSION},
    *,
};

/// A different service: same state type, other methods.
mod other {
    use hardlight::*;

    use super::common::State;

    #[rpc]
    pub trait Kitchen {
        async fn add(&self, a: i64, b: i64) -> HandlerResult<i64>;
    }
}

#[tokio::test]
async fn a_client_of_another_trait_gets_a_schema_mismatch() {
    let server = TestServer::start().await;
    let client = other::KitchenClient::with_config(
        ClientConfig::new(server.addr.to_string()).with_ca_pem(server.certificate_pem.clone()),
    );
    match client.connect().await {
        Err(ConnectError::Rejected { code, reason }) => {
            assert_eq!(code, RejectCode::SchemaMismatch);
            assert!(reason.contains("Kitchen"), "{reason}");
        }
        other => panic!("expected a schema mismatch, got {other:?}"),
    }
    assert!(!client.is_connected());
}

#[tokio::test]
async fn a_client_of_another_protocol_version_gets_a_version_mismatch() {
    let server = TestServer::start().await;
    let client = KitchenClient::with_config(
        ClientConfig::new(server.addr.to_string())
            .with_ca_pem(server.certificate_pem.clone())
            .with_protocol_version(PROTOCOL_VERSION + 1),
    );
    match client.connect().await {
        Err(ConnectError::VersionMismatch { offered }) => {
            assert_eq!(offered, format!("hardlight/{}", PROTOCOL_VERSION + 1))
        }
        other => panic!("expected a version mismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn a_hello_with_another_version_is_rejected() {
    let server = TestServer::start().await;
    let (_endpoint, conn) = quic_connect(&server, alpn(PROTOCOL_VERSION)).await;
    let conn = conn.unwrap();
    let mut hello_next = kitchen_hello(vec![]);
    hello_next.version = PROTOCOL_VERSION + 1;
    let (header, body) = hello(&conn, &hello_next).await;
    assert_eq!(header.kind, Kind::Reject);
    assert_eq!(
        RejectCode::from_u16(header.aux),
        RejectCode::VersionMismatch
    );
    let reason = decode::<String>(&body).unwrap();
    assert!(
        reason.contains(&format!("version {}", PROTOCOL_VERSION + 1)),
        "{reason}"
    );
}

#[tokio::test]
async fn a_garbage_hello_is_rejected_as_malformed() {
    let server = TestServer::start().await;
    let (_endpoint, conn) = quic_connect(&server, alpn(PROTOCOL_VERSION)).await;
    let conn = conn.unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&[0xde, 0xad, 0xbe, 0xef]).await.unwrap();
    send.finish().unwrap();
    let (header, _) = hardlight::protocol::io::read_frame(&mut recv, 1 << 20)
        .await
        .unwrap();
    assert_eq!(header.kind, Kind::Reject);
    assert_eq!(RejectCode::from_u16(header.aux), RejectCode::Malformed);
    // and the server still serves everyone else
    let client = server.client().await;
    assert_eq!(client.add(1, 2, 3).await.unwrap(), 6);
}

#[tokio::test]
async fn the_server_certificate_is_verified() {
    let server = TestServer::start().await;
    // trusted through the CA PEM: works (TestServer::client does exactly this)
    server.client().await;
    // system roots do not know a self-signed certificate: refused
    let strict = KitchenClient::new(server.addr.to_string());
    match strict.connect().await {
        Err(ConnectError::Transport { reason, .. }) => {
            assert!(reason.to_lowercase().contains("certificate"), "{reason}")
        }
        Err(ConnectError::Tls(TlsConfigError::NoSystemRoots { .. })) => {}
        other => panic!("expected a certificate failure, got {other:?}"),
    }
    // a CA that did not sign the server's certificate: refused
    let stranger = ServerConfig::new_self_signed("127.0.0.1:0")
        .certificate_pem()
        .unwrap();
    let wrong_ca = KitchenClient::with_config(
        ClientConfig::new(server.addr.to_string()).with_ca_pem(stranger),
    );
    assert!(matches!(
        wrong_ca.connect().await,
        Err(ConnectError::Transport { .. })
    ));
    // the explicit insecure mode accepts it
    let insecure = KitchenClient::new_self_signed(server.addr.to_string(), Compression::default());
    insecure.connect().await.unwrap();
    assert_eq!(insecure.add(1, 1, 1).await.unwrap(), 3);
}

#[tokio::test]
async fn a_bad_ca_pem_is_a_tls_error() {
    let client =
        KitchenClient::with_config(ClientConfig::new("127.0.0.1:9").with_ca_pem("not a pem"));
    assert!(matches!(client.connect().await, Err(ConnectError::Tls(_))));
}

#[tokio::test]
async fn a_server_from_pem_files_serves_clients_that_trust_its_ca() {
    let ca = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert_pem, key_pem) = (ca.cert.pem(), ca.key_pair.serialize_pem());
    let config =
        ServerConfig::from_pem("127.0.0.1:0", cert_pem.as_bytes(), key_pem.as_bytes()).unwrap();
    let mut server = Server::new(config, factory!(common::Handler));
    let addr = server.bind().unwrap();
    tokio::spawn(server.run());
    let client = KitchenClient::with_config(
        ClientConfig::new(addr.to_string())
            .with_server_name("localhost")
            .with_ca_pem(cert_pem.clone()),
    );
    client.connect().await.unwrap();
    assert_eq!(client.add(1, 2, 3).await.unwrap(), 6);
    assert!(matches!(
        ServerConfig::from_pem("127.0.0.1:0", b"", key_pem.as_bytes()),
        Err(ServerError::Tls(_))
    ));
    assert!(matches!(
        ServerConfig::from_pem("127.0.0.1:0", cert_pem.as_bytes(), b"garbage"),
        Err(ServerError::Tls(_))
    ));
}
