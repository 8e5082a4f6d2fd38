//! Authenticating a connection during the handshake, and what handlers learn about their
//! connection.

use std::{any::Any, fmt, future::Future, net::SocketAddr, sync::Arc};

use hardlight_core::{service::BoxFuture, TransportKind as Transport};

use crate::stats::{Meter, TrafficStats};

/// What the server knows about a connecting client when it authenticates it.
///
/// ```
/// # use hardlight_server::AuthRequest;
/// fn describe(request: &AuthRequest) -> String {
///     let origin = request.header("origin").unwrap_or("-");
///     format!("{} over {:?}, origin {origin}", request.remote, request.transport)
/// }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AuthRequest {
    /// The token from the client's `Hello` (`ClientConfig::with_token`), if any.
    pub token: Option<Vec<u8>>,
    /// The client's address.
    pub remote: SocketAddr,
    /// The transport it came over.
    pub transport: Transport,
    /// Over WebSocket, the HTTP upgrade request's headers; over WebTransport, the
    /// `CONNECT` request's (names lower-case, pseudo-headers left out; a browser sends
    /// `origin`). Empty over QUIC.
    pub headers: Vec<(String, String)>,
}

impl AuthRequest {
    /// The first value of header `name` (case-insensitive), WebSocket and WebTransport
    /// only.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `Origin` header of a browser's WebSocket upgrade or WebTransport `CONNECT`.
    pub fn origin(&self) -> Option<&str> {
        self.header("origin")
    }
}

/// Who a connection belongs to, as the authenticator decided. Handlers read it through
/// `self.connection.identity()`.
///
/// ```
/// # use hardlight_server::Identity;
/// #[derive(Debug)]
/// struct Claims { admin: bool }
/// let id = Identity::new("alice").with_claims(Claims { admin: true });
/// assert_eq!(id.subject(), "alice");
/// assert!(id.claims::<Claims>().is_some_and(|c| c.admin));
/// ```
#[derive(Clone, Default)]
pub struct Identity {
    subject: String,
    claims: Option<Arc<dyn Any + Send + Sync>>,
}

impl Identity {
    /// An identity named `subject` (a user id, a service name, ...).
    pub fn new(subject: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            claims: None,
        }
    }

    /// The identity of connections when no authenticator is configured: subject
    /// `"anonymous"`.
    pub fn anonymous() -> Self {
        Self::new("anonymous")
    }

    /// Attaches application data (roles, tenant, ...), read back with [`Identity::claims`].
    pub fn with_claims<T: Any + Send + Sync>(mut self, claims: T) -> Self {
        self.claims = Some(Arc::new(claims));
        self
    }

    /// The subject.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The attached claims, if they are a `T`.
    pub fn claims<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.claims.as_deref()?.downcast_ref()
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("subject", &self.subject)
            .field("claims", &self.claims.is_some())
            .finish()
    }
}

/// An authenticator's refusal; the client receives `reason` as
/// `ConnectError::Rejected { code: RejectCode::Unauthorized, reason }`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unauthorized: {reason}")]
pub struct AuthError {
    /// Told to the client: keep secrets out of it.
    pub reason: String,
}

impl AuthError {
    /// A refusal with `reason`.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

/// Decides whether a connection may proceed, after the version and schema checks and
/// before the connection's handler is created. It runs within
/// `ServerLimits::handshake_timeout`.
///
/// Any `Fn(AuthRequest) -> impl Future<Output = Result<Identity, AuthError>>` is one:
///
/// ```
/// # use hardlight_server::{AuthError, AuthRequest, Identity, ServerConfig};
/// let config = ServerConfig::new_self_signed("127.0.0.1:0").with_authenticator(
///     |request: AuthRequest| async move {
///         match request.token.as_deref() {
///             Some(b"secret") => Ok(Identity::new("alice")),
///             _ => Err(AuthError::new("a valid token is required")),
///         }
///     },
/// );
/// ```
pub trait Authenticator: Send + Sync + 'static {
    /// Accepts with an identity, or refuses with a reason for the client.
    fn authenticate(&self, request: AuthRequest)
        -> BoxFuture<'static, Result<Identity, AuthError>>;
}

impl fmt::Debug for dyn Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Authenticator")
    }
}

impl<F, Fut> Authenticator for F
where
    F: Fn(AuthRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Identity, AuthError>> + Send + 'static,
{
    fn authenticate(
        &self,
        request: AuthRequest,
    ) -> BoxFuture<'static, Result<Identity, AuthError>> {
        Box::pin(self(request))
    }
}

/// What a handler knows about its connection: `self.connection` in `#[rpc_handler]`
/// methods.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    identity: Identity,
    remote: SocketAddr,
    transport: Transport,
    meter: Option<Meter>,
}

impl ConnectionInfo {
    pub(crate) fn new(identity: Identity, remote: SocketAddr, transport: Transport) -> Self {
        Self {
            identity,
            remote,
            transport,
            meter: None,
        }
    }

    pub(crate) fn with_meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// This connection's counters (calls, bytes, dropped events), across resumptions.
    pub fn stats(&self) -> TrafficStats {
        self.meter
            .as_ref()
            .map(Meter::connection)
            .unwrap_or_default()
    }

    /// Who the authenticator said this is ([`Identity::anonymous`] without one).
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The client's address when the session started.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// The transport the session started on.
    pub fn transport(&self) -> Transport {
        self.transport
    }
}
