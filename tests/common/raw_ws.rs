//! A raw WebSocket peer (TLS + tungstenite) that sends what no client would.

use std::{
    collections::VecDeque,
    ops::{Deref, DerefMut},
    sync::Arc,
};

use futures_util::{SinkExt, StreamExt};
use hardlight::protocol::{
    codec::encode,
    frame::{FrameHeader, Kind},
    message::encode_frame,
    Compression,
};
use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::{client::TlsStream, TlsConnector};
use tokio_tungstenite::{
    tungstenite::{client::IntoClientRequest, http::HeaderValue, Message},
    WebSocketStream,
};

use super::{raw::kitchen_hello, TestServer};

/// A raw WebSocket connection, and the frames of the last message read that were not
/// taken yet (a message holds one or more frames). Derefs to the WebSocket to send or
/// read whole messages.
pub struct RawWs {
    ws: WebSocketStream<TlsStream<TcpStream>>,
    unread: VecDeque<(FrameHeader, Vec<u8>)>,
}

impl Deref for RawWs {
    type Target = WebSocketStream<TlsStream<TcpStream>>;

    fn deref(&self) -> &Self::Target {
        &self.ws
    }
}

impl DerefMut for RawWs {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.ws
    }
}

/// A TLS connection to the server's TCP port, before any HTTP.
pub async fn tls(server: &TestServer) -> TlsStream<TcpStream> {
    tls_to(server.addr, &server.certificate_pem).await
}

/// A TLS connection to `addr`'s TCP port trusting `certificate_pem`, before any HTTP.
pub async fn tls_to(addr: std::net::SocketAddr, certificate_pem: &str) -> TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(certificate_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// Upgrades offering `subprotocol`.
pub async fn upgrade(
    server: &TestServer,
    subprotocol: &str,
) -> Result<RawWs, tokio_tungstenite::tungstenite::Error> {
    upgrade_to(server.addr, &server.certificate_pem, subprotocol).await
}

/// Upgrades a connection to `addr` offering `subprotocol`.
pub async fn upgrade_to(
    addr: std::net::SocketAddr,
    certificate_pem: &str,
    subprotocol: &str,
) -> Result<RawWs, tokio_tungstenite::tungstenite::Error> {
    let mut request = format!("wss://localhost:{}/", addr.port())
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_str(subprotocol).unwrap(),
    );
    tokio_tungstenite::client_async(request, tls_to(addr, certificate_pem).await)
        .await
        .map(|(ws, _)| RawWs {
            ws,
            unread: VecDeque::new(),
        })
}

/// Upgrades and completes the HardLight handshake.
pub async fn handshaken(server: &TestServer) -> RawWs {
    handshaken_to(server.addr, &server.certificate_pem, &kitchen_hello(vec![])).await
}

/// Upgrades a connection to `addr` and completes the HardLight handshake with `hello`.
pub async fn handshaken_to(
    addr: std::net::SocketAddr,
    certificate_pem: &str,
    hello: &hardlight::protocol::handshake::Hello,
) -> RawWs {
    let subprotocol = hardlight::protocol::handshake::websocket_subprotocol(
        hardlight::protocol::PROTOCOL_VERSION,
    );
    let mut ws = upgrade_to(addr, certificate_pem, &subprotocol)
        .await
        .unwrap();
    let hello = encode_frame(
        FrameHeader::new(Kind::Hello, 0),
        &encode(hello).unwrap(),
        Compression::None,
    )
    .unwrap();
    ws.send(Message::Binary(hello.into())).await.unwrap();
    match ws.next().await {
        Some(Ok(Message::Binary(welcome))) => assert_eq!(welcome[4], Kind::Welcome as u8),
        other => panic!("expected Welcome, got {other:?}"),
    }
    ws
}

/// Reads until the server's close frame; returns its code.
pub async fn close_code(ws: &mut RawWs) -> Option<u16> {
    while let Some(message) = ws.next().await {
        match message {
            Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
    None
}

/// A `Call` of `method` with id `id`, `seq` (its time budget), `flags` and `body` (the
/// archived arguments, maybe followed by a call context), as a WebSocket message.
pub fn call_message(method: u16, id: u64, seq: u64, flags: u8, body: &[u8]) -> Message {
    let header = FrameHeader::new(Kind::Call, 0)
        .with_aux(method)
        .with_id(id)
        .with_seq(seq)
        .with_flags(flags);
    Message::Binary(
        encode_frame(header, body, Compression::None)
            .unwrap()
            .into(),
    )
}

/// The next frame from the server that is not a state batch: its header and body.
/// Panics if none comes within 60 s (only a hang reaches that).
pub async fn next_frame(ws: &mut RawWs) -> (FrameHeader, Vec<u8>) {
    loop {
        while let Some((header, body)) = ws.unread.pop_front() {
            if header.kind != Kind::State {
                return (header, body);
            }
        }
        match tokio::time::timeout(std::time::Duration::from_secs(60), ws.next()).await {
            Ok(Some(Ok(Message::Binary(bytes)))) => {
                let mut rest = &bytes[..];
                while !rest.is_empty() {
                    let (header, body, after) = FrameHeader::split_first(rest, u32::MAX).unwrap();
                    ws.unread.push_back((header, body.to_vec()));
                    rest = after;
                }
            }
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a frame, got {other:?}"),
        }
    }
}
