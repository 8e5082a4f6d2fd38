//! The HardLight server runtime.
//!
//! A [`Server`] accepts QUIC connections (ALPN `hardlight/1`), runs the HardLight
//! handshake, creates one [`Handler`] per connection through its [`Factory`], serves each
//! call on its own bidirectional stream, and syncs the connection state to the client
//! over a server-opened push stream. Users reach all of this through the `hardlight`
//! crate and its macros.

mod call;
mod config;
mod connection;
mod error;
mod handler;
mod push;
mod server;
mod shutdown;
mod state_handle;
mod sync;
mod tls;
mod topics;

pub use config::ServerConfig;
pub use error::ServerError;
pub use handler::{EventOf, Factory, Handler, HandlerContext, StateOf};
pub use server::Server;
pub use shutdown::ShutdownHandle;
pub use state_handle::{StateHandle, StateWriteGuard};
pub use topics::{
    EventEmitter, SlowConsumerPolicy, Subscriptions, TopicNotification, TopicNotifier,
};
