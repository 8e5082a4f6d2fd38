//! The HardLight server runtime.
//!
//! A [`Server`] listens for QUIC on UDP port P (ALPN `hardlight/8`) and for WebSocket on
//! TCP port P (subprotocol `hardlight.8`), runs the HardLight handshake, creates one
//! [`RpcHandler`] per connection through its [`Factory`], serves calls (one QUIC stream each,
//! or multiplexed by id over WebSocket), syncs the connection state and delivers topic
//! events. Users reach all of this through the `hardlight` crate and its macros.

mod admission;
mod auth;
#[cfg(feature = "nats")]
pub mod cluster;
mod config;
mod connection;
mod durable;
mod error;
mod handler;
mod intercept;
mod limits;
mod memory_budget;
#[cfg(feature = "prometheus")]
pub mod prometheus;
mod quic;
mod rate;
mod server;
mod session;
mod shutdown;
mod state_handle;
mod stats;
mod sync;
mod topics;
mod ws;

pub use auth::{AuthError, AuthRequest, Authenticator, ConnectionInfo, Identity};
#[cfg(feature = "nats")]
pub use cluster::{ClusterConfig, ClusterStats};
pub use config::{ServerConfig, WebSocketMode, SELF_SIGNED_VALIDITY};
pub use durable::{
    DeadLetter, DurableConfig, DurableError, DurableStats, DurableSubscribeError, EmitOptions,
    Emitted, StartAt, StoreError, TopicInfo, TopicPolicy, MAX_ID_LEN,
};
pub use error::{ServerError, TlsError};
pub use handler::{EventOf, Factory, HandlerContext, RpcHandler, StateOf};
pub use intercept::{InterceptedCall, Interceptor, Refusal};
pub use limits::{AddressValidation, RateLimit, ServerLimits};
pub use server::Server;
pub use shutdown::ShutdownHandle;
pub use state_handle::{StateHandle, StateWriteGuard};
pub use stats::{ServerStats, StatsHandle, TrafficStats};
pub use topics::{
    EmitError, EventEmitter, SlowConsumerPolicy, SubscribeError, Subscriptions, TopicNotification,
    TopicNotifier,
};
