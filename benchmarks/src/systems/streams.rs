//! Server-streaming systems: a request for `count` items of `size` bytes, answered on one
//! stream. HardLight over QUIC and WebSocket; raw quinn writing length-prefixed items on
//! one bidirectional stream (the floor); tonic server streaming over TLS (the peer).

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use futures_util::StreamExt;

use super::hardlight::{client_config, BenchClient};
use crate::tls::Certificate;

const ALPN: &[u8] = b"items";

/// A streaming system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamSystem {
    /// Raw quinn: the items length-prefixed on one bidirectional stream.
    Quinn,
    /// HardLight over QUIC: a streaming call, a stream of its own.
    HardLightQuic,
    /// HardLight over WebSocket: a streaming call with its credit window.
    HardLightWebSocket,
    /// tonic server streaming over TLS (HTTP/2).
    TonicTls,
    /// HardLight over QUIC, the other way: the client's items on a streaming call.
    HardLightQuicUpload,
    /// HardLight over WebSocket, the other way.
    HardLightWebSocketUpload,
}

impl StreamSystem {
    /// The systems this build can run: tonic only with the `peers` feature.
    pub fn available() -> Vec<Self> {
        let mut all = vec![Self::Quinn, Self::HardLightQuic, Self::HardLightWebSocket];
        if cfg!(feature = "peers") {
            all.push(Self::TonicTls);
        }
        all
    }

    /// HardLight's systems the other way, client to server (not in [`Self::available`]:
    /// counted per item only).
    pub fn uploads() -> [Self; 2] {
        [Self::HardLightQuicUpload, Self::HardLightWebSocketUpload]
    }

    /// The name shown in tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Quinn => "raw quinn, one stream (QUIC floor)",
            Self::HardLightQuic => "HardLight QUIC, streaming call",
            Self::HardLightWebSocket => "HardLight WebSocket, streaming call",
            Self::TonicTls => "tonic TLS, server streaming",
            Self::HardLightQuicUpload => "HardLight QUIC, the client's items",
            Self::HardLightWebSocketUpload => "HardLight WebSocket, the client's items",
        }
    }

    /// The identifier used on the command line (`bench count-stream <key> …`).
    pub fn key(self) -> &'static str {
        match self {
            Self::Quinn => "quinn",
            Self::HardLightQuic => "hardlight-quic",
            Self::HardLightWebSocket => "hardlight-ws",
            Self::TonicTls => "tonic-tls",
            Self::HardLightQuicUpload => "hardlight-quic-upload",
            Self::HardLightWebSocketUpload => "hardlight-ws-upload",
        }
    }

    /// The system named `key`.
    pub fn from_key(key: &str) -> Option<Self> {
        [
            Self::Quinn,
            Self::HardLightQuic,
            Self::HardLightWebSocket,
            Self::TonicTls,
            Self::HardLightQuicUpload,
            Self::HardLightWebSocketUpload,
        ]
        .into_iter()
        .find(|s| s.key() == key)
    }

    /// The child-process key of its server (`bench serve <key>`).
    pub fn server_key(self) -> &'static str {
        match self {
            Self::Quinn => "quinn-items",
            Self::HardLightQuic
            | Self::HardLightWebSocket
            | Self::HardLightQuicUpload
            | Self::HardLightWebSocketUpload => "hardlight-quic",
            Self::TonicTls => "tonic-tls",
        }
    }

    /// Connects to its server at `addr`.
    pub async fn connect(self, addr: SocketAddr, cert: &Certificate) -> Streamer {
        match self {
            Self::Quinn => Streamer::Quinn(quinn_connect(addr, cert).await),
            Self::HardLightQuic
            | Self::HardLightWebSocket
            | Self::HardLightQuicUpload
            | Self::HardLightWebSocketUpload => {
                let transport = match self {
                    Self::HardLightQuic | Self::HardLightQuicUpload => hardlight::Transport::Quic,
                    _ => hardlight::Transport::WebSocket,
                };
                let client = BenchClient::with_config(client_config(addr, cert, transport));
                client.connect().await.expect("connect");
                match self {
                    Self::HardLightQuicUpload | Self::HardLightWebSocketUpload => {
                        Streamer::HardLightUpload(client)
                    }
                    _ => Streamer::HardLight(client),
                }
            }
            #[cfg(feature = "peers")]
            Self::TonicTls => Streamer::Tonic(super::tonic_echo::channel(addr, Some(cert)).await),
            #[cfg(not(feature = "peers"))]
            Self::TonicTls => panic!("tonic needs the `peers` feature"),
        }
    }
}

/// A connection that drains streams.
pub enum Streamer {
    /// A QUIC connection (and its endpoint).
    Quinn((quinn::Connection, quinn::Endpoint)),
    /// A HardLight client.
    HardLight(BenchClient),
    /// A HardLight client sending the items.
    HardLightUpload(BenchClient),
    /// A tonic channel.
    #[cfg(feature = "peers")]
    Tonic(tonic::transport::Channel),
}

impl Streamer {
    /// Opens a stream of `count` items of `size` bytes and reads it to its end (or, the
    /// other way, sends it to its end and has the server count it): the time to the first
    /// item (zero the other way), and to the end.
    pub async fn drain(&self, count: u64, size: u32) -> (Duration, Duration) {
        match self {
            Self::Quinn((conn, _)) => quinn_drain(conn, count, size).await,
            Self::HardLight(client) => {
                let started = Instant::now();
                let mut items = client.items(count, size).await.expect("items");
                let mut first = None;
                let mut seen = 0;
                while let Some(item) = items.next().await {
                    first.get_or_insert_with(|| started.elapsed());
                    assert_eq!(item.expect("an item").len(), size as usize);
                    seen += 1;
                }
                assert_eq!(seen, count);
                (first.unwrap_or_default(), started.elapsed())
            }
            Self::HardLightUpload(client) => {
                let started = Instant::now();
                let item = vec![7u8; size as usize];
                let items = futures_util::stream::iter((0..count).map(move |_| item.clone()));
                assert_eq!(client.upload(items).await.expect("upload"), count);
                (Duration::ZERO, started.elapsed())
            }
            #[cfg(feature = "peers")]
            Self::Tonic(channel) => super::tonic_echo::drain_items(channel, count, size).await,
        }
    }
}

/// The request's 12 bytes: `count` then `size`, little-endian.
pub fn request(count: u64, size: u32) -> Vec<u8> {
    let mut request = count.to_le_bytes().to_vec();
    request.extend_from_slice(&size.to_le_bytes());
    request
}

/// `(count, size)` of a request; zeros for a malformed one.
pub fn parse_request(data: &[u8]) -> (u64, u32) {
    match (data.get(..8), data.get(8..12)) {
        (Some(count), Some(size)) => (
            u64::from_le_bytes(count.try_into().unwrap_or_default()),
            u32::from_le_bytes(size.try_into().unwrap_or_default()),
        ),
        _ => (0, 0),
    }
}

/// Serves the raw quinn floor: each bidirectional stream carries one request, answered
/// with its items, each a u32 length and the bytes.
pub async fn quinn_serve(cert: Certificate) {
    let endpoint = super::quinn_echo::endpoint(&cert, ALPN);
    while let Some(incoming) = endpoint.accept().await {
        tokio::spawn(async move {
            let Ok(conn) = incoming.await else { return };
            while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                tokio::spawn(async move {
                    let Ok(request) = recv.read_to_end(64).await else {
                        return;
                    };
                    let (count, size) = parse_request(&request);
                    let mut item = (size).to_le_bytes().to_vec();
                    item.resize(4 + size as usize, 7);
                    for _ in 0..count {
                        if send.write_all(&item).await.is_err() {
                            return;
                        }
                    }
                    let _ = send.finish();
                });
            }
        });
    }
}

async fn quinn_connect(
    addr: SocketAddr,
    cert: &Certificate,
) -> (quinn::Connection, quinn::Endpoint) {
    super::quinn_echo::connection(addr, cert, ALPN).await
}

async fn quinn_drain(conn: &quinn::Connection, count: u64, size: u32) -> (Duration, Duration) {
    let started = Instant::now();
    let (mut send, mut recv) = conn.open_bi().await.expect("open a stream");
    send.write_all(&request(count, size)).await.expect("write");
    send.finish().expect("finish");
    // the floor reads whatever has arrived, without parsing items one by one
    let item = 4 + u64::from(size);
    let total = count * item;
    let mut received = 0u64;
    let mut first = None;
    while let Some(chunk) = recv
        .read_chunk(usize::MAX, true)
        .await
        .expect("the stream's bytes")
    {
        received += chunk.bytes.len() as u64;
        if received >= item {
            first.get_or_insert_with(|| started.elapsed());
        }
    }
    assert_eq!(received, total);
    (first.unwrap_or_default(), started.elapsed())
}
