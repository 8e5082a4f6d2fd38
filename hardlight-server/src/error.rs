//! Errors of the server runtime.

use std::{sync::Arc, time::Duration};

/// Why the server could not start or keep running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The configured address could not be resolved.
    #[error("cannot resolve server address `{addr}`")]
    Address {
        /// The address as configured.
        addr: String,
        /// What the resolver reported.
        source: std::io::Error,
    },
    /// The certificate or key was unusable.
    #[error("TLS setup failed")]
    Tls(#[source] Arc<TlsError>),
    /// The UDP or TCP socket could not be bound.
    #[error("cannot bind {addr}")]
    Bind {
        /// The resolved address.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A call of the largest allowed size could never be read: raise
    /// `ServerLimits::max_inflight_bytes` or lower `Limits::max_message_size`.
    #[error(
        "Limits::max_message_size ({max_message_size}) exceeds ServerLimits::max_inflight_bytes \
         ({max_inflight_bytes}): a call of the maximum size could never be read"
    )]
    MessageAboveBudget {
        /// The configured largest message.
        max_message_size: u32,
        /// The configured per-connection byte budget.
        max_inflight_bytes: u64,
    },
    /// Nothing to serve on: QUIC and WebSocket are both disabled
    /// (`ServerConfig::without_quic`, `WebSocketMode::Disabled`) and no in-process way
    /// was asked for (`Server::in_memory`).
    #[error("both QUIC and WebSocket are disabled and no in-process way was asked for")]
    NoTransport,
    /// `Limits::idle_timeout` is above what QUIC can express (2^62 ms).
    #[error("Limits::idle_timeout ({0:?}) is too large for QUIC")]
    IdleTimeoutTooLarge(Duration),
    /// A NATS server URL of the cluster is not one (`ClusterConfig::nats`,
    /// `ClusterConfig::with_server`).
    #[cfg(feature = "nats")]
    #[error("cluster NATS server URL `{url}` is not valid (ClusterConfig::nats, ClusterConfig::with_server)")]
    ClusterAddress {
        /// The URL as configured.
        url: String,
        /// Why it is not valid.
        source: std::io::Error,
    },
    /// The durable store could not be opened (`DurableConfig::new`'s path).
    #[error("durable store {} could not be opened (DurableConfig::new)", path.display())]
    DurableStore {
        /// The store's path.
        path: std::path::PathBuf,
        /// Why.
        source: crate::StoreError,
    },
    /// The cluster's subject prefix is not one or more `.`-separated tokens of letters,
    /// digits, `-` and `_`, of at most 64 characters (`ClusterConfig::with_subject_prefix`).
    #[cfg(feature = "nats")]
    #[error("cluster subject prefix {prefix:?} is not one or more `.`-separated tokens of letters, digits, `-` and `_` of at most 64 characters (ClusterConfig::with_subject_prefix)")]
    ClusterPrefix {
        /// The prefix as configured.
        prefix: String,
    },
    /// The metrics exporter could not be installed (another recorder is installed, or its
    /// listener could not bind).
    #[error("cannot install the Prometheus exporter")]
    Metrics(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What was wrong with the server's TLS identity.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The certificate chain PEM could not be read.
    #[error("the certificate chain PEM is unreadable")]
    CertificatePem(#[source] rustls::pki_types::pem::Error),
    /// The certificate chain PEM holds no `CERTIFICATE` block.
    #[error("the certificate chain PEM holds no CERTIFICATE block")]
    NoCertificate,
    /// The private key PEM could not be read.
    #[error("the private key PEM is unreadable")]
    KeyPem(#[source] rustls::pki_types::pem::Error),
    /// A self-signed certificate could not be generated.
    #[error("cannot generate a self-signed certificate")]
    SelfSigned(#[source] rcgen::Error),
    /// rustls refused the certificate, the key or the configuration.
    #[error("rustls refused the certificate or key")]
    Rustls(#[source] rustls::Error),
    /// QUIC cannot use the TLS configuration (no TLS 1.3 cipher suite usable as QUIC's
    /// initial one).
    #[error("QUIC cannot use this TLS configuration")]
    Quic(#[source] quinn::crypto::rustls::NoInitialCipherSuite),
}

impl From<TlsError> for ServerError {
    fn from(error: TlsError) -> Self {
        Self::Tls(Arc::new(error))
    }
}
