//! Server configuration: address, TLS identity, limits and compression.

use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};

use hardlight_core::{addr::host_part, Compression, Limits};

use std::sync::Arc;

use crate::{
    auth::Authenticator,
    error::{ServerError, TlsError},
    intercept::Interceptor,
    limits::ServerLimits,
    topics::SlowConsumerPolicy,
};

/// How a server is set up.
///
/// ```
/// use hardlight_server::{ServerConfig, ServerLimits};
/// use hardlight_core::Limits;
/// let config = ServerConfig::new_self_signed("localhost:8080")
///     .with_limits(Limits::default().with_max_message_size(1 << 20))
///     .with_server_limits(ServerLimits::default().with_max_connections_per_ip(16));
/// assert!(config.certificate_pem().unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
/// ```
#[derive(Debug)]
pub struct ServerConfig {
    pub(crate) addr: String,
    pub(crate) identity: Result<Identity, Arc<TlsError>>,
    pub(crate) limits: Limits,
    pub(crate) server_limits: ServerLimits,
    pub(crate) compression: Compression,
    pub(crate) slow_consumer: SlowConsumerPolicy,
    pub(crate) quic: bool,
    pub(crate) webtransport: bool,
    pub(crate) websocket: WebSocketMode,
    pub(crate) authenticator: Option<Arc<dyn Authenticator>>,
    pub(crate) interceptors: Vec<Arc<dyn Interceptor>>,
    #[cfg(feature = "nats")]
    pub(crate) cluster: Option<crate::ClusterConfig>,
    pub(crate) durable: Option<crate::DurableConfig>,
}

/// How the server serves WebSocket on TCP port P (beside QUIC on UDP port P).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WebSocketMode {
    /// WebSocket over TLS (`wss://`), with the server's certificate (the default).
    #[default]
    Tls,
    /// Plain WebSocket (`ws://`), **only** for deployments where a proxy in front of the
    /// server terminates TLS: the traffic between proxy and server is unencrypted.
    PlainBehindTlsProxy,
    /// No WebSocket listener.
    Disabled,
}

#[derive(Debug)]
pub(crate) struct Identity {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
}

impl ServerConfig {
    /// A server on `addr` with a freshly generated self-signed certificate for
    /// `localhost`, `127.0.0.1`, `::1` and the host part of `addr`: ECDSA P-256, valid
    /// for [`SELF_SIGNED_VALIDITY`] from an hour ago, as browsers require of a certificate
    /// they accept by its hash ([`ServerConfig::certificate_sha256`]).
    ///
    /// For development: clients must opt into trusting it (`new_self_signed` on the client
    /// skips verification; or pass [`ServerConfig::certificate_pem`] to the client as CA;
    /// a browser page passes the hash to the wasm client).
    pub fn new_self_signed(addr: impl Into<String>) -> Self {
        let addr = addr.into();
        let mut names = vec!["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
        if let Some(host) = host_part(&addr) {
            if !names.iter().any(|n| n == host) {
                names.push(host.to_owned());
            }
        }
        let identity = self_signed(names).map_err(|e| Arc::new(TlsError::SelfSigned(e)));
        Self::with_identity(addr, identity)
    }

    /// A server on `addr` presenting a PEM certificate chain (leaf first) and its PEM
    /// private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem(
        addr: impl Into<String>,
        cert_chain_pem: &[u8],
        key_pem: &[u8],
    ) -> Result<Self, ServerError> {
        let chain = CertificateDer::pem_slice_iter(cert_chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(TlsError::CertificatePem)?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate.into());
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(TlsError::KeyPem)?;
        Ok(Self::with_identity(
            addr.into(),
            Ok(Identity { chain, key }),
        ))
    }

    fn with_identity(addr: String, identity: Result<Identity, Arc<TlsError>>) -> Self {
        Self {
            addr,
            identity,
            limits: Limits::default(),
            server_limits: ServerLimits::default(),
            compression: Compression::default(),
            slow_consumer: SlowConsumerPolicy::default(),
            quic: true,
            webtransport: true,
            websocket: WebSocketMode::default(),
            authenticator: None,
            interceptors: Vec::new(),
            #[cfg(feature = "nats")]
            cluster: None,
            durable: None,
        }
    }

    /// Authenticates every connection with `authenticator` during the handshake (see
    /// [`Authenticator`]); without one every connection is [`Identity::anonymous`].
    ///
    /// [`Identity::anonymous`]: crate::Identity::anonymous
    pub fn with_authenticator(mut self, authenticator: impl Authenticator) -> Self {
        self.authenticator = Some(Arc::new(authenticator));
        self
    }

    /// Runs `interceptor` before every call, after those added before it (see
    /// [`Interceptor`]): it sees the method, the caller's identity, deadline and context,
    /// and may refuse the call with a [`Refusal`](crate::Refusal) before its arguments
    /// are validated.
    pub fn with_interceptor(mut self, interceptor: impl Interceptor) -> Self {
        self.interceptors.push(Arc::new(interceptor));
        self
    }

    /// Replaces the limits both peers of a connection hold to (message size, liveness,
    /// write deadline).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Replaces what the server admits and holds per peer (connections, calls, bytes,
    /// subscriptions, events, parked sessions, the handshake deadline).
    pub fn with_server_limits(mut self, limits: ServerLimits) -> Self {
        self.server_limits = limits;
        self
    }

    /// Sets what compression the server accepts ([`Compression::None`] refuses it).
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// What to do with a client whose event queue (`ServerLimits::max_queued_events`) is
    /// full.
    pub fn with_slow_consumer_policy(mut self, policy: SlowConsumerPolicy) -> Self {
        self.slow_consumer = policy;
        self
    }

    /// Serves no QUIC (WebSocket only), e.g. where UDP cannot be used.
    pub fn without_quic(mut self) -> Self {
        self.quic = false;
        self
    }

    /// Serves no WebTransport: browsers then connect over WebSocket only. By default the
    /// QUIC endpoint also accepts WebTransport sessions (HTTP/3, ALPN `h3`) carrying the
    /// same protocol, with the same limits and authentication, which is how browsers use
    /// QUIC. Every connection then allows three unidirectional streams (HTTP/3's control
    /// streams, a few hundred bytes), and a session's one more bidirectional stream (its
    /// `CONNECT` stream).
    pub fn without_webtransport(mut self) -> Self {
        self.webtransport = false;
        self
    }

    /// Gives the server durable topics, stored in an embedded store at
    /// [`DurableConfig`](crate::DurableConfig)'s path: handlers emit with
    /// `EventEmitter::emit_durable` and subscribe connections with
    /// `Subscriptions::add_durable`; every stored event reaches each consumer at least
    /// once until it acks. The store is opened when the server binds.
    pub fn with_durable(mut self, durable: crate::DurableConfig) -> Self {
        self.durable = Some(durable);
        self
    }

    /// Shares this server's topics with the other servers of a cluster, through NATS: an
    /// event emitted on any of them reaches the subscribers of its topic on all of them
    /// ([`ClusterConfig`](crate::ClusterConfig) says how, and what is guaranteed). Handlers
    /// and emitters do not change. The server starts even while NATS is unreachable,
    /// serving and delivering locally, and connects when it can.
    #[cfg(feature = "nats")]
    pub fn with_cluster(mut self, cluster: crate::ClusterConfig) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// How to serve WebSocket on the TCP port of the same number.
    pub fn with_websocket(mut self, mode: WebSocketMode) -> Self {
        self.websocket = mode;
        self
    }

    /// The limits both peers hold to.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// What the server admits and holds per peer.
    pub fn server_limits(&self) -> &ServerLimits {
        &self.server_limits
    }

    /// A TLS 1.3 rustls configuration with this identity, offering ALPN `alpn`.
    pub(crate) fn rustls(&self, alpn: Vec<u8>) -> Result<rustls::ServerConfig, ServerError> {
        let identity = self
            .identity
            .as_ref()
            .map_err(|e| ServerError::Tls(Arc::clone(e)))?;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(TlsError::Rustls)?
            .with_no_client_auth()
            .with_single_cert(identity.chain.clone(), identity.key.clone_key())
            .map_err(TlsError::Rustls)?;
        tls.alpn_protocols = vec![alpn];
        Ok(tls)
    }

    /// The leaf certificate in PEM, e.g. to hand a self-signed certificate to clients
    /// as their CA. `None` if the identity could not be created.
    pub fn certificate_pem(&self) -> Option<String> {
        let leaf = self.identity.as_ref().ok()?.chain.first()?;
        Some(pem::encode(&pem::Pem::new("CERTIFICATE", leaf.to_vec())))
    }

    /// The SHA-256 hash of the leaf certificate: what a browser page passes to the wasm
    /// client (`ClientConfig::with_certificate_hash`) to reach a server with a
    /// self-signed certificate over WebTransport. Browsers accept a certificate by its
    /// hash only if it is ECDSA and valid for at most 14 days, as
    /// [`ServerConfig::new_self_signed`] makes it. `None` if the identity could not be
    /// created.
    ///
    /// ```
    /// use hardlight_server::ServerConfig;
    /// let config = ServerConfig::new_self_signed("localhost:8080");
    /// assert_eq!(config.certificate_sha256().unwrap().len(), 32);
    /// ```
    pub fn certificate_sha256(&self) -> Option<[u8; 32]> {
        let leaf = self.identity.as_ref().ok()?.chain.first()?;
        ring::digest::digest(&ring::digest::SHA256, leaf)
            .as_ref()
            .try_into()
            .ok()
    }

    /// [`ServerConfig::certificate_sha256`] in lower-case hex, as a page embeds it.
    ///
    /// ```
    /// use hardlight_server::ServerConfig;
    /// let config = ServerConfig::new_self_signed("localhost:8080");
    /// assert_eq!(config.certificate_sha256_hex().unwrap().len(), 64);
    /// ```
    pub fn certificate_sha256_hex(&self) -> Option<String> {
        let hash = self.certificate_sha256()?;
        Some(hash.iter().map(|byte| format!("{byte:02x}")).collect())
    }
}

/// How long a certificate made by [`ServerConfig::new_self_signed`] is valid: browsers
/// accept a self-signed certificate by its hash only for a validity of at most 14 days.
/// A development server running longer needs a new one (a restart makes it).
pub const SELF_SIGNED_VALIDITY: std::time::Duration =
    std::time::Duration::from_secs(13 * 24 * 60 * 60);

/// A self-signed ECDSA P-256 certificate for `names`, valid from an hour ago for
/// [`SELF_SIGNED_VALIDITY`].
fn self_signed(names: Vec<String>) -> Result<Identity, rcgen::Error> {
    let mut params = rcgen::CertificateParams::new(names)?;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + SELF_SIGNED_VALIDITY;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = params.self_signed(&key)?;
    Ok(Identity {
        chain: vec![cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trips_through_the_parser() {
        let config = ServerConfig::new_self_signed("127.0.0.1:0");
        let pem = config.certificate_pem().unwrap();
        let parsed = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        assert_eq!(&parsed, &config.identity.unwrap().chain[0]);
    }
}
