#![doc = include_str!("../docs/crate.md")]

pub use hardlight_core::{
    context::TraceParent, durable::Position, Blob, CallContext, Codable, Compression,
    ConnectionState, CurrentCall, ErrorCode, HandlerError, HandlerResult, Limits, Priority,
    ProtocolError, RejectCode, Service, Streaming, Topic, TransportKind, PROTOCOL_VERSION,
};
pub use hardlight_macros::{codable, connection_state, factory, rpc, rpc_handler};

#[cfg(any(feature = "client", feature = "wasm"))]
pub use hardlight_client::{
    AckError, CallStream, Client, ClientConfig, ClientStats, ConnectError, ConnectionStatus,
    DurableEvent, DurableSubscription, Event, Reconnect, RecvError, RpcError, StateWatcher,
    StatusError, StatusWatcher, StreamSnapshot, Subscription, TlsConfigError, Transport,
    TransportError, Trust,
};
#[cfg(feature = "server")]
pub use hardlight_server::{
    AddressValidation, AuthError, AuthRequest, Authenticator, ConnectionInfo, DeadLetter,
    DurableConfig, DurableError, DurableStats, DurableSubscribeError, EmitError, EmitOptions,
    Emitted, EventEmitter, Factory, HandlerContext, Identity, InterceptedCall, Interceptor,
    RateLimit, Refusal, RpcHandler, Server, ServerConfig, ServerError, ServerLimits, ServerStats,
    ShutdownHandle, SlowConsumerPolicy, StartAt, StateHandle, StateWriteGuard, StatsHandle,
    StoreError, SubscribeError, Subscriptions, TlsError, TopicInfo, TopicNotification,
    TopicNotifier, TopicPolicy, TrafficStats, WebSocketMode, SELF_SIGNED_VALIDITY,
};

#[cfg(feature = "prometheus")]
pub use hardlight_server::prometheus;

#[cfg(feature = "nats")]
pub use hardlight_server::{cluster, ClusterConfig, ClusterStats};

/// Raw byte streams over streaming calls: `AsyncRead`s sent as chunks and read back,
/// pipes, per-operation deadlines.
#[cfg(any(feature = "client", feature = "server"))]
pub use hardlight_core::byte_stream;

/// The protocol building blocks (frames, codec, handshake), for tools and tests that
/// speak the wire format directly.
pub use hardlight_core as protocol;

/// Items the macros' generated code refers to. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use core::result::Result::{self, Err, Ok};
    pub use futures_util::Stream;
    #[cfg(any(feature = "client", feature = "wasm"))]
    pub use hardlight_client::{CallStream, Client, ClientConfig, RpcError};
    pub use hardlight_core::{
        codec::{decode, encode, Bytes, Codable},
        received::Received,
        rkyv,
        schema::{Layout, Schema, ServiceSchema},
        service::{HandlerFuture, Outcome, Service, ServiceOf},
        state::{unknown_field, ConnectionState},
        stream::{encode_items, no_items, Inbound, StreamKind},
        CallContext, Compression, HandlerError, Priority, ProtocolError, Streaming,
    };
    #[cfg(feature = "server")]
    pub use hardlight_server::{
        ConnectionInfo, EventEmitter, Factory, HandlerContext, RpcHandler, StateHandle,
        Subscriptions,
    };

    pub use crate::__cfg_client as cfg_client;
}

/// Emits its input only when a client feature (`client` or `wasm`) is on.
#[doc(hidden)]
#[cfg(any(feature = "client", feature = "wasm"))]
#[macro_export]
macro_rules! __cfg_client {
    ($($item:tt)*) => { $($item)* };
}

/// Emits its input only when a client feature (`client` or `wasm`) is on.
#[doc(hidden)]
#[cfg(not(any(feature = "client", feature = "wasm")))]
#[macro_export]
macro_rules! __cfg_client {
    ($($item:tt)*) => {};
}
