//! The handshake: `Hello` from the client, `Welcome` or `Reject` from the server.

use std::fmt;

use crate::{
    compression::Compression,
    schema::{SchemaItem, ServiceSchema},
    state::StateBatch,
    text::truncated,
};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 8;

/// Most schema parts a `Hello` carries (the hash covers every part; these only name the
/// first that differs).
pub const MAX_SCHEMA_ITEMS: usize = 256;

/// Longest part name a `Hello` carries, in bytes.
pub const MAX_SCHEMA_ITEM_NAME: usize = 128;

/// The ALPN protocol id (QUIC) and WebSocket subprotocol for a protocol version.
///
/// ```
/// assert_eq!(hardlight_core::handshake::alpn(1), b"hardlight/1".to_vec());
/// ```
pub fn alpn(version: u16) -> Vec<u8> {
    format!("hardlight/{version}").into_bytes()
}

/// The WebSocket subprotocol for a protocol version: `hardlight.<version>`.
///
/// Not `hardlight/<version>` like the ALPN id: a subprotocol must be an HTTP token, which
/// cannot contain `/`, and browsers refuse to open a WebSocket that offers one.
///
/// ```
/// assert_eq!(hardlight_core::handshake::websocket_subprotocol(1), "hardlight.1");
/// ```
pub fn websocket_subprotocol(version: u16) -> String {
    format!("hardlight.{version}")
}

/// The path of the WebTransport session for a protocol version: `/hardlight/<version>`
/// (the request is `CONNECT https://host:port/hardlight/<version>`).
///
/// ```
/// assert_eq!(hardlight_core::handshake::webtransport_path(8), "/hardlight/8");
/// ```
pub fn webtransport_path(version: u16) -> String {
    format!("/hardlight/{version}")
}

/// The client's first message. Its `Debug` leaves out the token and the session id.
#[derive(Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Hello {
    /// Protocol version the client speaks.
    pub version: u16,
    /// Schema hash of the client's service: every method, the state and the events, through
    /// the layout of every type they reach.
    pub schema_hash: u64,
    /// The fingerprints of the service's parts, so that the server can name the first one
    /// that differs (at most [`MAX_SCHEMA_ITEMS`]).
    pub schema_items: Vec<SchemaItem>,
    /// Name of the client's service, for error messages.
    pub service: String,
    /// Compression algorithm ids the client accepts, in preference order.
    pub compression: Vec<u8>,
    /// An optional authentication token.
    pub token: Option<Vec<u8>>,
    /// The session to resume after a lost connection, if any.
    pub resume: Option<Resume>,
}

/// A reconnecting client's request to get its session back. Its `Debug` leaves out the
/// session id.
///
/// ```
/// use hardlight_core::handshake::Resume;
/// let resume = Resume { session_id: [42; 16], events_received: 3 };
/// assert_eq!(format!("{resume:?}"), "Resume { events_received: 3, .. }");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Resume {
    /// The `session_id` of the session's `Welcome` (a secret: it is sent only over TLS).
    pub session_id: [u8; 16],
    /// How many events the client accounted for in this session, so the server can replay
    /// the rest: one per `Event` frame, and `n` per `Lagged` frame reporting `n` lost.
    pub events_received: u64,
}

/// The server's answer to a valid `Hello`. Its `Debug` leaves out the session id.
#[derive(Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Welcome {
    /// Identifies this session.
    pub session_id: [u8; 16],
    /// The compression id both sides use (0: none).
    pub compression: u8,
    /// Largest message the server accepts.
    pub max_message_size: u32,
    /// Calls the server lets this connection have in flight.
    pub max_concurrent_calls: u32,
    /// The full connection state; the mirror starts from it.
    pub state: StateBatch,
    /// The state version `state` corresponds to.
    pub state_version: u64,
    /// Whether this connection resumed the session the client asked for (same handler,
    /// state and subscriptions); `false` for a new session.
    pub resumed: bool,
}

impl fmt::Debug for Hello {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hello")
            .field("version", &self.version)
            .field("schema_hash", &self.schema_hash)
            .field("schema_items", &self.schema_items.len())
            .field("service", &self.service)
            .field("compression", &self.compression)
            .field("token", &self.token.as_ref().map(|_| ".."))
            .field("resume", &self.resume)
            .finish()
    }
}

impl fmt::Debug for Resume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resume")
            .field("events_received", &self.events_received)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Welcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Welcome")
            .field("compression", &self.compression)
            .field("max_message_size", &self.max_message_size)
            .field("max_concurrent_calls", &self.max_concurrent_calls)
            .field("state", &self.state)
            .field("state_version", &self.state_version)
            .field("resumed", &self.resumed)
            .finish_non_exhaustive()
    }
}

/// Why the server refused a handshake, carried in a `Reject` frame's `aux`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectCode {
    /// The client speaks another protocol version.
    VersionMismatch,
    /// The client was built from another service definition.
    SchemaMismatch,
    /// Authentication failed.
    Unauthorized,
    /// The server is at capacity.
    Overloaded,
    /// The server is shutting down.
    ShuttingDown,
    /// The handshake bytes were invalid.
    Malformed,
    /// The server failed to set up the connection.
    Internal,
    /// A code this version does not know.
    Unknown(u16),
}

impl RejectCode {
    /// The wire value.
    pub fn to_u16(self) -> u16 {
        match self {
            Self::VersionMismatch => 1,
            Self::SchemaMismatch => 2,
            Self::Unauthorized => 3,
            Self::Overloaded => 4,
            Self::ShuttingDown => 5,
            Self::Malformed => 6,
            Self::Internal => 7,
            Self::Unknown(v) => v,
        }
    }

    /// Decodes a wire value.
    pub fn from_u16(value: u16) -> Self {
        match value {
            1 => Self::VersionMismatch,
            2 => Self::SchemaMismatch,
            3 => Self::Unauthorized,
            4 => Self::Overloaded,
            5 => Self::ShuttingDown,
            6 => Self::Malformed,
            7 => Self::Internal,
            v => Self::Unknown(v),
        }
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::VersionMismatch => f.write_str("protocol version mismatch"),
            Self::SchemaMismatch => f.write_str("service schema mismatch"),
            Self::Unauthorized => f.write_str("unauthorized"),
            Self::Overloaded => f.write_str("server overloaded"),
            Self::ShuttingDown => f.write_str("server shutting down"),
            Self::Malformed => f.write_str("malformed handshake"),
            Self::Internal => f.write_str("server error during handshake"),
            Self::Unknown(v) => write!(f, "unknown reject code {v}"),
        }
    }
}

/// A refusal: code plus a human-readable reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Why.
    pub code: RejectCode,
    /// Details for the client's error message.
    pub reason: String,
}

/// What the server settled on for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// Compression both sides use, or [`Compression::None`].
    pub compression: Compression,
}

/// The server's check of a `Hello` (sans-IO): version, schema, compression.
///
/// ```
/// use hardlight_core::{handshake::*, Compression};
/// use hardlight_core::schema::ServiceSchema;
/// let schema = ServiceSchema { hash: 42, items: vec![] };
/// let hello = Hello::new("Counter", &schema, Compression::default());
/// assert!(check_hello(&hello, "Counter", &schema, Compression::default()).is_ok());
/// let other = ServiceSchema { hash: 43, items: vec![] };
/// let err = check_hello(&hello, "Counter", &other, Compression::default()).unwrap_err();
/// assert_eq!(err.code, RejectCode::SchemaMismatch);
/// ```
pub fn check_hello(
    hello: &Hello,
    service: &str,
    schema: &ServiceSchema,
    server_compression: Compression,
) -> Result<Negotiated, Rejection> {
    if hello.version != PROTOCOL_VERSION {
        return Err(Rejection {
            code: RejectCode::VersionMismatch,
            reason: format!(
                "client speaks protocol version {}, server speaks {PROTOCOL_VERSION}",
                hello.version
            ),
        });
    }
    if hello.schema_hash != schema.hash {
        let difference = match schema.first_difference(&hello.schema_items) {
            Some(item) => format!("; the first part that differs is `{}`", item.name),
            None => String::new(),
        };
        return Err(Rejection {
            code: RejectCode::SchemaMismatch,
            reason: format!(
                "client service `{}` (schema {:016x}) does not match server service `{service}` (schema {:016x}){difference}; build both from the same #[rpc] trait, #[connection_state] and #[codable] types",
                hello.service, hello.schema_hash, schema.hash
            ),
        });
    }
    let compression = if server_compression
        .offers()
        .iter()
        .any(|id| hello.compression.contains(id))
    {
        server_compression
    } else {
        Compression::None
    };
    Ok(Negotiated { compression })
}

impl Hello {
    /// A `Hello` for service `service` with `schema`, offering `compression`; no token,
    /// no session to resume.
    pub fn new(service: &str, schema: &ServiceSchema, compression: Compression) -> Self {
        let schema_items = schema
            .items
            .iter()
            .take(MAX_SCHEMA_ITEMS)
            .map(|item| SchemaItem {
                name: truncated(&item.name, MAX_SCHEMA_ITEM_NAME).to_owned(),
                fingerprint: item.fingerprint,
            })
            .collect();
        Self {
            version: PROTOCOL_VERSION,
            schema_hash: schema.hash,
            schema_items,
            service: service.to_owned(),
            compression: compression.offers(),
            token: None,
            resume: None,
        }
    }
}

impl Welcome {
    /// The compression the client uses for this connection, given what it asked for.
    pub fn compression_for(&self, requested: Compression) -> Compression {
        if self.compression != 0 && requested.offers().contains(&self.compression) {
            requested
        } else {
            Compression::None
        }
    }
}
