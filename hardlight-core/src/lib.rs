//! The HardLight protocol without I/O: frames, the rkyv codec, compression, the
//! handshake, state batches, topics, limits and errors.
//!
//! Nothing here touches a socket or spawns a task; the server and client crates drive
//! these pieces over QUIC or WebSocket. The wire format is specified in
//! `docs/PROTOCOL.md`.

pub mod addr;
pub mod blob;
#[cfg(feature = "io")]
pub mod byte_stream;
pub mod calls;
#[cfg(feature = "io")]
pub mod chunk_frames;
pub mod close;
#[cfg(feature = "coalesce")]
pub mod coalesce;
pub mod codec;
pub mod compression;
pub mod context;
pub mod current;
pub mod decoder;
pub mod durable;
pub mod error;
pub mod frame;
pub mod handler_error;
pub mod handshake;
pub mod held_items;
#[cfg(feature = "io")]
pub mod io;
pub mod limits;
#[cfg(feature = "io")]
pub mod memory;
pub mod message;
pub mod priority;
pub mod queue;
pub mod quota;
pub mod read_growth;
pub mod received;
pub mod schema;
pub mod service;
pub mod spare;
pub mod state;
pub mod stream;
pub mod sync;
pub mod text;
pub mod topic;
#[cfg(feature = "io")]
pub mod wait;
pub mod websocket;
pub mod woken;

pub use blob::Blob;
pub use codec::Codable;
pub use compression::Compression;
pub use context::CallContext;
pub use current::CurrentCall;
pub use error::{ErrorCode, ProtocolError};
pub use handler_error::{HandlerError, HandlerResult};
pub use handshake::{RejectCode, PROTOCOL_VERSION};
pub use limits::Limits;
pub use priority::Priority;
pub use rkyv;
pub use schema::Schema;
pub use service::{Outcome, Service};
pub use state::ConnectionState;
pub use stream::Streaming;
pub use topic::Topic;

/// The transport a connection uses: `Client::transport` on the client, the
/// authenticator's request and `ConnectionInfo::transport` on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportKind {
    /// QUIC over UDP.
    Quic,
    /// WebSocket over TCP.
    WebSocket,
    /// A WebTransport session (HTTP/3 over QUIC), as browsers connect over QUIC.
    WebTransport,
    /// In-process, over memory (`memory::InMemory`, with the `io` feature).
    Memory,
}

impl TransportKind {
    /// A short lowercase name, for logs and metric labels.
    ///
    /// ```
    /// assert_eq!(hardlight_core::TransportKind::WebSocket.name(), "websocket");
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            Self::Quic => "quic",
            Self::WebSocket => "websocket",
            Self::WebTransport => "webtransport",
            Self::Memory => "memory",
        }
    }
}
