//! Errors of the server runtime.

/// Why the server could not start or keep running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The configured address could not be resolved.
    #[error("cannot resolve server address `{addr}`: {reason}")]
    Address {
        /// The address as configured.
        addr: String,
        /// What went wrong.
        reason: String,
    },
    /// The certificate or key was unusable.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The UDP socket could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The resolved address.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The configuration is inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
}
