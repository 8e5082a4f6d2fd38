//! The HardLight client runtime.
//!
//! [`Client`] connects to a HardLight server over QUIC, runs the handshake (protocol
//! version, schema hash, compression), sends each call on its own stream and mirrors the
//! connection state the server pushes. Generated clients (`#[rpc] trait Counter` gives
//! `CounterClient`) deref to it.

mod client;
mod config;
mod error;
mod events;
mod mirror;
mod quic;
mod reply;

pub use client::Client;
pub use config::{ClientConfig, Trust};
pub use error::{ConnectError, RpcError, TransportError};
pub use events::{Event, RecvError, Subscription};
pub use mirror::StateWatcher;
