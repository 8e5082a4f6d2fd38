//! The HardLight client runtime.
//!
//! [`Client`] connects to a HardLight server over QUIC or WebSocket (racing them by
//! default), runs the handshake (protocol version, schema hash, compression), makes typed
//! calls, mirrors the connection state the server pushes and receives topic events.
//! Generated clients (`#[rpc] trait Counter` gives `CounterClient`) deref to it.

mod calls;
mod client;
mod config;
mod connect;
mod connection;
mod drain;
mod durable;
mod error;
mod event_buffer;
mod events;
mod handshake;
mod mirror;
mod mux;
mod outstanding;
mod propagate;
mod pushes;
#[cfg(feature = "native")]
mod quic;
mod reply;
mod rt;
mod slots;
mod stats;
mod status;
mod streaming;
mod sync;
#[cfg(all(feature = "wasm", not(feature = "native")))]
mod webtransport;
mod ws;

#[cfg(not(any(feature = "native", feature = "wasm")))]
compile_error!(
    "hardlight-client needs the `native` feature (tokio) or the `wasm` feature (browser)"
);

pub use client::Client;
pub use config::{ClientConfig, Reconnect, Transport, TransportKind, Trust};
pub use durable::{AckError, DurableEvent, DurableSubscription};
pub use error::{ConnectError, RpcError, TlsConfigError, TransportError};
pub use events::{Event, RecvError, Subscription};
pub use mirror::StateWatcher;
pub use stats::ClientStats;
pub use status::{ConnectionStatus, StatusError, StatusWatcher};
pub use streaming::{CallStream, StreamSnapshot};
