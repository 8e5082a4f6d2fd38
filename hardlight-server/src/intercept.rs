//! Interceptors: checks of the application's that run before every call (authorization,
//! auditing, quotas) and may refuse it with a typed error instead of running the handler.

use std::{fmt, sync::Arc, time::Duration, time::Instant};

use hardlight_core::{
    context::CallContext, current::CurrentCall, service::BoxFuture, ErrorCode, Outcome,
};

use crate::auth::{ConnectionInfo, Identity};

/// A check run before every call, after the call rate limit and before the call's
/// arguments are validated; a refusal is the call's reply and its handler does not run.
/// Interceptors run in the order they were added and the first refusal wins.
///
/// A plain closure over the call is an interceptor; implement the trait for checks that
/// wait (a quota kept in a database):
///
/// ```
/// use hardlight_server::{InterceptedCall, Interceptor, Refusal, ServerConfig};
/// use hardlight_core::service::BoxFuture;
///
/// // read-only callers may call only `get_*` methods
/// let config = ServerConfig::new_self_signed("127.0.0.1:0").with_interceptor(
///     |call: &InterceptedCall<'_>| {
///         if call.identity().subject() == "reader" && !call.method().starts_with("get_") {
///             return Err(Refusal::permission_denied(format!("{} is read-only", call.identity().subject())));
///         }
///         Ok(())
///     },
/// );
///
/// struct Quota;
/// impl Interceptor for Quota {
///     fn intercept<'a>(&'a self, call: InterceptedCall<'a>) -> BoxFuture<'a, Result<(), Refusal>> {
///         Box::pin(async move {
///             // e.g. ask a quota service about call.identity().subject()
///             Ok(())
///         })
///     }
/// }
/// let config = config.with_interceptor(Quota);
/// ```
pub trait Interceptor: Send + Sync + 'static {
    /// Admits the call, or refuses it.
    fn intercept<'a>(&'a self, call: InterceptedCall<'a>) -> BoxFuture<'a, Result<(), Refusal>>;
}

impl fmt::Debug for dyn Interceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Interceptor")
    }
}

impl<F> Interceptor for F
where
    F: for<'a> Fn(&InterceptedCall<'a>) -> Result<(), Refusal> + Send + Sync + 'static,
{
    fn intercept<'a>(&'a self, call: InterceptedCall<'a>) -> BoxFuture<'a, Result<(), Refusal>> {
        let verdict = self(&call);
        Box::pin(std::future::ready(verdict))
    }
}

/// The call an [`Interceptor`] decides on.
#[derive(Debug, Clone, Copy)]
pub struct InterceptedCall<'a> {
    service: &'static str,
    connection: &'a ConnectionInfo,
    call: &'a CurrentCall,
}

impl<'a> InterceptedCall<'a> {
    /// The service's name (its `#[rpc]` trait).
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// The method's name.
    pub fn method(&self) -> &'static str {
        self.call.method()
    }

    /// Who is calling (the authenticator's identity).
    pub fn identity(&self) -> &'a Identity {
        self.connection.identity()
    }

    /// The caller's connection: address, transport, counters.
    pub fn connection(&self) -> &'a ConnectionInfo {
        self.connection
    }

    /// When the caller stops waiting, if it gave a deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.call.deadline()
    }

    /// The time left before the deadline, if there is one.
    pub fn remaining(&self) -> Option<Duration> {
        self.call.remaining()
    }

    /// What the caller sent with the call (trace context, entries).
    pub fn context(&self) -> Option<&'a CallContext> {
        self.call.context()
    }
}

/// Why an [`Interceptor`] refused a call; the caller gets the matching error code
/// (`ErrorCode::PermissionDenied`, `ErrorCode::QuotaExceeded`) and the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The caller may not make this call.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// A quota of the caller's is spent; it may retry later.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
}

impl Refusal {
    /// The caller may not make this call, because `reason`.
    pub fn permission_denied(reason: impl Into<String>) -> Self {
        Self::PermissionDenied(reason.into())
    }

    /// A quota of the caller's is spent, as `reason` says.
    pub fn quota_exceeded(reason: impl Into<String>) -> Self {
        Self::QuotaExceeded(reason.into())
    }

    fn into_outcome(self) -> Outcome {
        match self {
            Self::PermissionDenied(reason) => Outcome::Failure(ErrorCode::PermissionDenied, reason),
            Self::QuotaExceeded(reason) => Outcome::Failure(ErrorCode::QuotaExceeded, reason),
        }
    }
}

/// A server's interceptors, in order.
#[derive(Clone, Default)]
pub(crate) struct Interceptors(Arc<[Arc<dyn Interceptor>]>);

impl fmt::Debug for Interceptors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Interceptors({})", self.0.len())
    }
}

impl Interceptors {
    pub(crate) fn new(list: Vec<Arc<dyn Interceptor>>) -> Self {
        Self(list.into())
    }

    /// Runs every interceptor on `call` until one refuses it; the refusal as the call's
    /// outcome.
    pub(crate) async fn check(
        &self,
        service: &'static str,
        connection: &ConnectionInfo,
        call: &CurrentCall,
    ) -> Result<(), Outcome> {
        for interceptor in self.0.iter() {
            let intercepted = InterceptedCall {
                service,
                connection,
                call,
            };
            interceptor
                .intercept(intercepted)
                .await
                .map_err(Refusal::into_outcome)?;
        }
        Ok(())
    }

    /// Whether there are none (the common case: nothing to run).
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
