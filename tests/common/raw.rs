//! A raw QUIC peer that speaks HardLight frames by hand, to send what no client would.

use std::{net::SocketAddr, sync::Arc};

use hardlight::protocol::{
    codec::{decode, encode},
    frame::{FrameHeader, Kind},
    handshake::{alpn, Hello, Welcome},
    io::read_frame,
    message::encode_frame,
    Compression, ErrorCode, Service, PROTOCOL_VERSION,
};
use quinn::crypto::rustls::QuicClientConfig;
use rustls::pki_types::{pem::PemObject, CertificateDer};

use super::{__KitchenService, TestServer};

/// A raw connection that has completed the HardLight handshake.
pub struct RawPeer {
    pub conn: quinn::Connection,
    pub endpoint: quinn::Endpoint,
}

/// A QUIC connection to `server` offering ALPN `protocol`, before any HardLight message.
pub async fn quic_connect(
    server: &TestServer,
    protocol: Vec<u8>,
) -> (
    quinn::Endpoint,
    Result<quinn::Connection, quinn::ConnectionError>,
) {
    quic_connect_to(server.addr, &server.certificate_pem, protocol).await
}

/// A QUIC connection to `addr`, trusting `certificate_pem`, offering ALPN `protocol`.
pub async fn quic_connect_to(
    addr: SocketAddr,
    certificate_pem: &str,
    protocol: Vec<u8>,
) -> (
    quinn::Endpoint,
    Result<quinn::Connection, quinn::ConnectionError>,
) {
    quic_connect_with(
        addr,
        certificate_pem,
        protocol,
        quinn::TransportConfig::default(),
    )
    .await
}

/// Like [`quic_connect_to`], with the client's own transport settings (stream limits,
/// windows).
pub async fn quic_connect_with(
    addr: SocketAddr,
    certificate_pem: &str,
    protocol: Vec<u8>,
    transport: quinn::TransportConfig,
) -> (
    quinn::Endpoint,
    Result<quinn::Connection, quinn::ConnectionError>,
) {
    let mut roots = rustls::RootCertStore::empty();
    let cert = CertificateDer::from_pem_slice(certificate_pem.as_bytes()).expect("pem");
    roots.add(cert).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![protocol];
    let crypto = QuicClientConfig::try_from(tls).expect("quic tls");
    let mut client = quinn::ClientConfig::new(Arc::new(crypto));
    client.transport_config(Arc::new(transport));
    let endpoint =
        quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))).expect("endpoint");
    let conn = endpoint
        .connect_with(client, addr, "localhost")
        .expect("connect")
        .await;
    (endpoint, conn)
}

/// Sends a `Hello` and returns the server's answer frame; the handshake stream is then
/// finished and dropped (no calls on the call channel).
pub async fn hello(conn: &quinn::Connection, hello: &Hello) -> (FrameHeader, Vec<u8>) {
    let (mut channel, answer) = handshake(conn, hello).await;
    channel.send.finish().expect("finish");
    answer
}

/// The handshake stream, which after a `Welcome` is the call channel.
pub struct RawChannel {
    pub send: quinn::SendStream,
    pub recv: quinn::RecvStream,
}

impl RawChannel {
    /// The next frame the server sent on the channel.
    pub async fn read(&mut self) -> (FrameHeader, Vec<u8>) {
        let (header, body) = read_frame(&mut self.recv, 1 << 24).await.expect("a frame");
        (header, body.to_vec())
    }
}

/// Sends a `Hello` and returns the handshake stream, still open, with the server's answer.
pub async fn handshake(
    conn: &quinn::Connection,
    hello: &Hello,
) -> (RawChannel, (FrameHeader, Vec<u8>)) {
    let (mut send, recv) = conn.open_bi().await.expect("open handshake stream");
    let frame = encode_frame(
        FrameHeader::new(Kind::Hello, 0),
        &encode(hello).expect("encode"),
        Compression::None,
    )
    .expect("frame");
    send.write_all(&frame).await.expect("send hello");
    let mut channel = RawChannel { send, recv };
    let answer = channel.read().await;
    (channel, answer)
}

/// Sends `bytes` on an open call stream (then finishes it) and returns the reply's frame
/// header and body.
pub async fn exchange_on(
    (mut send, mut recv): (quinn::SendStream, quinn::RecvStream),
    bytes: &[u8],
) -> (FrameHeader, Vec<u8>) {
    send.write_all(bytes).await.expect("write");
    send.finish().expect("finish");
    let (header, body) = read_frame(&mut recv, 1 << 24).await.expect("reply");
    (header, body.to_vec())
}

/// A valid `Hello` for the test service.
pub fn kitchen_hello(compression: Vec<u8>) -> Hello {
    hello_for::<__KitchenService>(compression)
}

/// A valid `Hello` for service `S`.
pub fn hello_for<S: Service>(compression: Vec<u8>) -> Hello {
    Hello {
        compression,
        ..Hello::new(S::NAME, S::schema(), Compression::None)
    }
}

impl RawPeer {
    /// Connects to the `Kitchen` test server and completes the handshake (offering zstd).
    pub async fn connect(server: &TestServer) -> Self {
        let hello = kitchen_hello(Compression::default().offers());
        Self::connect_to(server.addr, &server.certificate_pem, &hello).await
    }

    /// Connects to `addr` and completes the handshake with `hello`.
    pub async fn connect_to(addr: SocketAddr, certificate_pem: &str, hello_msg: &Hello) -> Self {
        let (endpoint, conn) = quic_connect_to(addr, certificate_pem, alpn(PROTOCOL_VERSION)).await;
        let conn = conn.expect("quic connect");
        let (header, body) = hello(&conn, hello_msg).await;
        assert_eq!(header.kind, Kind::Welcome);
        decode::<Welcome>(&body).expect("welcome");
        // the push stream shows up with the first state change; these tests ignore it
        Self { conn, endpoint }
    }

    /// Connects to the `Kitchen` test server, completes the handshake (offering no
    /// compression) and keeps the call channel.
    pub async fn connect_with_channel(server: &TestServer) -> (Self, RawChannel) {
        let (endpoint, conn) = quic_connect(server, alpn(PROTOCOL_VERSION)).await;
        let conn = conn.expect("quic connect");
        let (channel, (header, _)) = handshake(&conn, &kitchen_hello(vec![])).await;
        assert_eq!(header.kind, Kind::Welcome);
        (Self { conn, endpoint }, channel)
    }

    /// The code and reason the server closed the connection with.
    pub async fn closed(&self) -> (u64, String) {
        match self.conn.closed().await {
            quinn::ConnectionError::ApplicationClosed(close) => (
                close.error_code.into_inner(),
                String::from_utf8_lossy(&close.reason).into_owned(),
            ),
            other => panic!("expected the server to close the connection, got {other}"),
        }
    }

    /// Sends `bytes` on a new call stream (then finishes it) and returns the reply's
    /// frame header and body.
    pub async fn exchange(&self, bytes: &[u8]) -> (FrameHeader, Vec<u8>) {
        let stream = self.conn.open_bi().await.expect("open call stream");
        exchange_on(stream, bytes).await
    }

    /// Like [`RawPeer::exchange`], expecting a failure reply; returns its code and message.
    pub async fn expect_failure(&self, bytes: &[u8]) -> (ErrorCode, String) {
        let (header, body) = self.exchange(bytes).await;
        assert_eq!(header.kind, Kind::ReplyFailure, "expected a failure reply");
        (
            ErrorCode::from_u16(header.aux),
            decode::<String>(&body).expect("message"),
        )
    }
}
