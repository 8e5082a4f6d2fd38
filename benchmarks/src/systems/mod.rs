//! The systems under test: each can serve (in a child process) and connect (here).

mod hardlight;
mod pipelined;
mod quinn_echo;
pub mod streams;
#[cfg(feature = "peers")]
mod tarpc_echo;
mod tls_echo;
#[cfg(feature = "peers")]
mod tonic_echo;

use std::{net::SocketAddr, sync::Arc};

use futures_util::future::BoxFuture;

pub use self::hardlight::{
    client_config as hardlight_config, now_us, serve as serve_hardlight, BenchClient, Serving, Tick,
};
use crate::tls::Certificate;

/// A connection to one system: echoes bytes.
pub trait Target: Send + Sync {
    /// Sends `data` and resolves to the echoed bytes. Panics on failure: a benchmark with a
    /// failed call measures nothing.
    fn call(&self, data: Vec<u8>) -> BoxFuture<'static, Vec<u8>>;
}

/// A connected target.
pub type Connection = Arc<dyn Target>;

/// One system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum System {
    /// raw quinn, one bidirectional stream per request (the QUIC floor of latency).
    QuinnFloor,
    /// raw quinn, requests pipelined on one stream (the QUIC floor of throughput and CPU).
    QuinnPipelined,
    /// Length-prefixed echo over TLS 1.3 on TCP, pipelined (the TCP floor).
    TlsFloor,
    /// HardLight over QUIC.
    HardLightQuic,
    /// HardLight over WebSocket (TLS).
    HardLightWebSocket,
    /// HardLight over QUIC, echoing a [`Blob`](::hardlight::Blob) (decoded without a copy).
    HardLightQuicBlob,
    /// HardLight over WebSocket, echoing a [`Blob`](::hardlight::Blob).
    HardLightWebSocketBlob,
    /// tonic unary over TLS.
    TonicTls,
    /// tonic unary over cleartext HTTP/2.
    TonicH2c,
    /// tarpc over TCP (bincode, no TLS).
    Tarpc,
}

impl System {
    /// The systems this build can run: the peers only with the `peers` feature.
    pub fn available() -> Vec<Self> {
        let mut all = vec![
            Self::QuinnFloor,
            Self::QuinnPipelined,
            Self::TlsFloor,
            Self::HardLightQuic,
            Self::HardLightWebSocket,
        ];
        if cfg!(feature = "peers") {
            all.extend([Self::TonicTls, Self::TonicH2c, Self::Tarpc]);
        }
        all
    }

    /// The name shown in tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::QuinnFloor => "raw quinn, stream per request",
            Self::QuinnPipelined => "raw quinn, pipelined (QUIC floor)",
            Self::TlsFloor => "raw TLS/TCP (TCP floor)",
            Self::HardLightQuic => "HardLight QUIC",
            Self::HardLightWebSocket => "HardLight WebSocket",
            Self::HardLightQuicBlob => "HardLight QUIC, Blob",
            Self::HardLightWebSocketBlob => "HardLight WebSocket, Blob",
            Self::TonicTls => "tonic TLS",
            Self::TonicH2c => "tonic h2c",
            Self::Tarpc => "tarpc TCP",
        }
    }

    /// The identifier used on the command line and in JSON.
    pub fn key(self) -> &'static str {
        match self {
            Self::QuinnFloor => "quinn",
            Self::QuinnPipelined => "quinn-pipelined",
            Self::TlsFloor => "tls",
            Self::HardLightQuic => "hardlight-quic",
            Self::HardLightWebSocket => "hardlight-ws",
            Self::HardLightQuicBlob => "hardlight-quic-blob",
            Self::HardLightWebSocketBlob => "hardlight-ws-blob",
            Self::TonicTls => "tonic-tls",
            Self::TonicH2c => "tonic-h2c",
            Self::Tarpc => "tarpc",
        }
    }

    /// The system named `key`.
    pub fn from_key(key: &str) -> Option<Self> {
        [
            Self::QuinnFloor,
            Self::QuinnPipelined,
            Self::TlsFloor,
            Self::HardLightQuic,
            Self::HardLightWebSocket,
            Self::HardLightQuicBlob,
            Self::HardLightWebSocketBlob,
            Self::TonicTls,
            Self::TonicH2c,
            Self::Tarpc,
        ]
        .into_iter()
        .find(|s| s.key() == key)
    }

    /// The transport floor this system is compared with: for QUIC the pipelined stream,
    /// which is what HardLight's call channel does (the stream-per-request floor is shown
    /// beside it, for latency).
    pub fn floor(self) -> Self {
        match self {
            Self::QuinnFloor
            | Self::QuinnPipelined
            | Self::HardLightQuic
            | Self::HardLightQuicBlob => Self::QuinnPipelined,
            _ => Self::TlsFloor,
        }
    }

    /// Serves this system on loopback; prints the address first. Runs in the child process.
    pub async fn serve(self, cert: Certificate) {
        match self {
            Self::QuinnFloor => quinn_echo::serve(cert, quinn_echo::Streams::PerRequest).await,
            Self::QuinnPipelined => quinn_echo::serve(cert, quinn_echo::Streams::Pipelined).await,
            Self::TlsFloor => tls_echo::serve(cert).await,
            Self::HardLightQuic
            | Self::HardLightWebSocket
            | Self::HardLightQuicBlob
            | Self::HardLightWebSocketBlob => hardlight::serve(cert, Serving::default()).await,
            #[cfg(feature = "peers")]
            Self::TonicTls => tonic_echo::serve(Some(cert)).await,
            #[cfg(feature = "peers")]
            Self::TonicH2c => tonic_echo::serve(None).await,
            #[cfg(feature = "peers")]
            Self::Tarpc => tarpc_echo::serve().await,
            #[cfg(not(feature = "peers"))]
            Self::TonicTls | Self::TonicH2c | Self::Tarpc => {
                panic!("{} needs the `peers` feature", self.name())
            }
        }
    }

    /// Opens one connection to this system's server at `addr`.
    pub async fn connect(self, addr: SocketAddr, cert: &Certificate) -> Connection {
        match self {
            Self::QuinnFloor => {
                quinn_echo::connect(addr, cert, quinn_echo::Streams::PerRequest).await
            }
            Self::QuinnPipelined => {
                quinn_echo::connect(addr, cert, quinn_echo::Streams::Pipelined).await
            }
            Self::TlsFloor => tls_echo::connect(addr, cert).await,
            Self::HardLightQuic => {
                hardlight::connect(addr, cert, ::hardlight::Transport::Quic, false).await
            }
            Self::HardLightWebSocket => {
                hardlight::connect(addr, cert, ::hardlight::Transport::WebSocket, false).await
            }
            Self::HardLightQuicBlob => {
                hardlight::connect(addr, cert, ::hardlight::Transport::Quic, true).await
            }
            Self::HardLightWebSocketBlob => {
                hardlight::connect(addr, cert, ::hardlight::Transport::WebSocket, true).await
            }
            #[cfg(feature = "peers")]
            Self::TonicTls => tonic_echo::connect(addr, Some(cert)).await,
            #[cfg(feature = "peers")]
            Self::TonicH2c => tonic_echo::connect(addr, None).await,
            #[cfg(feature = "peers")]
            Self::Tarpc => tarpc_echo::connect(addr).await,
            #[cfg(not(feature = "peers"))]
            Self::TonicTls | Self::TonicH2c | Self::Tarpc => {
                panic!("{} needs the `peers` feature", self.name())
            }
        }
    }
}

/// The largest message any system must carry (4 MiB payloads plus framing).
pub const MAX_MESSAGE: usize = 8 << 20;
