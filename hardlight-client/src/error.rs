//! The errors a client reports: of a call, and of `connect()`.

use std::time::Duration;

use hardlight_core::{close::Close, handshake::RejectCode, ErrorCode, HandlerError, ProtocolError};

/// Why a call failed. `E` is the handler's own error type (`HandlerError` by default).
///
/// ```
/// use hardlight_client::RpcError;
/// use hardlight_core::HandlerError;
/// let e: RpcError = RpcError::Handler(HandlerError::new("no such user"));
/// assert_eq!(e.to_string(), "handler error: no such user");
/// assert!(!e.is_retriable());
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError<E = HandlerError> {
    /// The handler ran and returned its own error.
    #[error("handler error: {0}")]
    Handler(E),
    /// The server failed the call without (successfully) running the handler, or the
    /// handler panicked.
    #[error("server failed the call ({code}): {message}")]
    Remote {
        /// What went wrong.
        code: ErrorCode,
        /// Details from the server.
        message: String,
    },
    /// The server's reply broke the protocol (e.g. it did not validate as the expected type).
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// The connection failed or was closed while the call was in flight.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The call's time budget (its timeout, or the time its caller had left) ran out; the
    /// call was cancelled on the server. Carries the budget.
    #[error("deadline exceeded: the call's budget of {0:?} ran out")]
    DeadlineExceeded(Duration),
    /// The server ended the call without replying (e.g. it stopped at a shutdown deadline).
    #[error("call cancelled by the server")]
    Cancelled,
    /// `connect()` has not succeeded, or the client was disconnected.
    #[error("not connected: call connect() first")]
    NotConnected,
}

impl<E> RpcError<E> {
    /// The server's `DeadlineExceeded` failure as the caller's own, carrying `budget`;
    /// any other error as it is.
    pub(crate) fn past(self, budget: Duration) -> Self {
        match self {
            Self::Remote {
                code: ErrorCode::DeadlineExceeded,
                ..
            } => Self::DeadlineExceeded(budget),
            other => other,
        }
    }

    /// What went wrong, for people, whatever the handler's error type.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Handler(_) => "the handler returned its error".into(),
            Self::Remote { code, message } => format!("server failed the call ({code}): {message}"),
            Self::Protocol(error) => format!("protocol error: {error}"),
            Self::Transport(error) => error.to_string(),
            Self::DeadlineExceeded(budget) => {
                format!("deadline exceeded: the call's budget of {budget:?} ran out")
            }
            Self::Cancelled => "call cancelled by the server".into(),
            Self::NotConnected => "not connected".into(),
        }
    }

    /// Whether the same call may succeed if tried again (after reconnecting, or later):
    /// true for transport failures, timeouts, cancellations, a server shutting down or
    /// overloaded, and the call rate limit. HardLight never retries a call by itself.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Transport(_)
            | Self::DeadlineExceeded(_)
            | Self::Cancelled
            | Self::NotConnected => true,
            Self::Remote { code, .. } => {
                matches!(
                    code,
                    ErrorCode::ShuttingDown
                        | ErrorCode::Overloaded
                        | ErrorCode::RateLimited
                        | ErrorCode::QuotaExceeded
                )
            }
            Self::Handler(_) | Self::Protocol(_) => false,
        }
    }
}

/// A transport-level failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The connection was closed, by either side or by a timeout.
    #[error("connection closed: {reason}")]
    Closed {
        /// Why, when the server gave one of HardLight's reasons (`Close::Shutdown`,
        /// `Close::SlowConsumer`, ...); `None` for a lost connection or an unknown code.
        close: Option<Close>,
        /// What happened, for people.
        reason: String,
    },
    /// A stream failed while the connection was still up.
    #[error("stream failed: {0}")]
    Stream(String),
}

impl TransportError {
    /// A closed connection, with the server's reason if it gave one.
    pub(crate) fn closed(close: Option<Close>, reason: impl Into<String>) -> Self {
        Self::Closed {
            close,
            reason: reason.into(),
        }
    }

    /// A connection the client closed because the server broke the protocol.
    pub(crate) fn violation(error: &hardlight_core::ProtocolError) -> Self {
        Self::closed(
            Some(Close::Protocol),
            format!("protocol error from the server: {error}"),
        )
    }
}

/// Why `connect()` failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The address could not be resolved.
    #[error("cannot resolve `{addr}`: {reason}")]
    Address {
        /// The configured address.
        addr: String,
        /// What went wrong.
        reason: String,
    },
    /// The TLS configuration could not be built (e.g. an unreadable CA PEM).
    #[error("TLS configuration")]
    Tls(#[source] TlsConfigError),
    /// The client configuration cannot be used (a setting out of range).
    #[error("invalid client configuration: Limits::idle_timeout ({0:?}) is too large for QUIC")]
    IdleTimeoutTooLarge(Duration),
    /// The connection could not be established (unreachable, certificate refused, ...).
    #[error("cannot connect to {addr}: {reason}")]
    Transport {
        /// The address tried.
        addr: String,
        /// What the transport reported.
        reason: String,
    },
    /// The server does not speak the client's protocol version.
    #[error("the server does not speak {offered}; upgrade the older of client and server")]
    VersionMismatch {
        /// The protocol the client offered, e.g. `hardlight/8`.
        offered: String,
    },
    /// The server refused the handshake (schema mismatch, auth, shutting down, ...).
    #[error("server rejected the connection ({code}): {reason}")]
    Rejected {
        /// Why, as a code.
        code: RejectCode,
        /// Details from the server.
        reason: String,
    },
    /// The server's handshake messages broke the protocol.
    #[error("protocol error during handshake: {0}")]
    Protocol(#[from] ProtocolError),
    /// The connection or handshake took longer than the connect timeout.
    #[error("connect timed out after {0:?}")]
    Timeout(Duration),
}

/// What was wrong with the client's TLS configuration.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// The CA PEM (`ClientConfig::with_ca_pem`) could not be read.
    #[cfg(feature = "native")]
    #[error("the CA PEM is unreadable")]
    CaPem(#[source] std::sync::Arc<rustls::pki_types::pem::Error>),
    /// A certificate in the CA PEM was refused as a root.
    #[cfg(feature = "native")]
    #[error("a CA certificate was refused")]
    CaCertificate(#[source] std::sync::Arc<rustls::Error>),
    /// The CA PEM holds no `CERTIFICATE` block.
    #[error("the CA PEM holds no CERTIFICATE block")]
    NoCaCertificate,
    /// No usable system root certificates: install ca-certificates or configure a CA PEM
    /// (`ClientConfig::with_ca_pem`).
    #[error("no usable system root certificates ({errors} errors loading them)")]
    NoSystemRoots {
        /// Errors met while loading them.
        errors: usize,
    },
    /// The server name (`ClientConfig::with_server_name`, or the address's host) is not
    /// a valid DNS name or IP address.
    #[error("invalid server name `{0}`")]
    ServerName(String),
    /// rustls refused the configuration.
    #[cfg(feature = "native")]
    #[error("rustls refused the configuration")]
    Rustls(#[source] std::sync::Arc<rustls::Error>),
    /// QUIC cannot use the TLS configuration.
    #[cfg(feature = "native")]
    #[error("QUIC cannot use this TLS configuration")]
    Quic(#[source] std::sync::Arc<quinn::crypto::rustls::NoInitialCipherSuite>),
}

impl From<TlsConfigError> for ConnectError {
    fn from(error: TlsConfigError) -> Self {
        Self::Tls(error)
    }
}

/// A failed call before the reply is decoded, independent of the handler's error type.
#[derive(Debug, Clone)]
pub(crate) enum CallError {
    Transport(TransportError),
    Protocol(ProtocolError),
    /// The server ended the call without replying (QUIC: a finished stream).
    #[cfg_attr(not(feature = "native"), allow(dead_code))]
    Cancelled,
    NotConnected,
}

impl<E> From<CallError> for RpcError<E> {
    fn from(error: CallError) -> Self {
        match error {
            CallError::Transport(e) => Self::Transport(e),
            CallError::Protocol(e) => Self::Protocol(e),
            CallError::Cancelled => Self::Cancelled,
            CallError::NotConnected => Self::NotConnected,
        }
    }
}

impl From<ProtocolError> for CallError {
    fn from(error: ProtocolError) -> Self {
        Self::Protocol(error)
    }
}
