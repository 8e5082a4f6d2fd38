//! Sessions, independent of the transport: the settings a server's connections share,
//! accepting the `Hello` (a new session or a resumed one), what a connection's calls
//! share, running a call, and the push stream.

pub(crate) mod dispatch;
pub(crate) mod handshake;
pub(crate) mod push;
pub(crate) mod resume;

use std::sync::Arc;

use std::{sync::Mutex, time::Instant};

use hardlight_core::{quota::Quota, Compression, ErrorCode, Limits, Outcome};

use crate::limits::ServerLimits;

use crate::{
    admission::Admission,
    auth::{Authenticator, ConnectionInfo},
    intercept::Interceptors,
    memory_budget::MemoryBudget,
    quic::Unproven,
    rate::TokenBucket,
    shutdown::Signals,
    stats::{Meter, ServerCounters},
    sync::lock,
    topics::{Hub, SlowConsumerPolicy},
};

/// Settings every connection of a server shares.
#[derive(Debug)]
pub(crate) struct ServerShared {
    pub(crate) limits: Limits,
    pub(crate) server_limits: ServerLimits,
    pub(crate) compression: Compression,
    pub(crate) signals: Arc<Signals>,
    pub(crate) hub: Arc<Hub>,
    pub(crate) slow_consumer: SlowConsumerPolicy,
    pub(crate) authenticator: Option<Arc<dyn Authenticator>>,
    pub(crate) interceptors: Interceptors,
    pub(crate) admission: Arc<Admission>,
    pub(crate) counters: Arc<ServerCounters>,
    /// QUIC handshakes in progress of peers whose address is not proven.
    pub(crate) unproven: Unproven,
}

/// What a connection's calls share after the handshake.
#[derive(Debug)]
pub(crate) struct CallEnv {
    pub(crate) limits: Limits,
    /// The compression negotiated for this connection.
    pub(crate) compression: Compression,
    /// Request bytes the connection may have buffered at once.
    pub(crate) budget: Arc<Quota>,
    /// The server's memory budget.
    pub(crate) memory: Arc<MemoryBudget>,
    /// Where the connection's activity is counted.
    pub(crate) meter: Meter,
    /// The call rate limit, if any: the session's, so that a reconnect that resumes the
    /// session does not refill it.
    rate: Option<CallRate>,
    /// The server's interceptors, run before every call.
    pub(crate) interceptors: Interceptors,
    /// Who is connected, for the interceptors.
    pub(crate) connection: ConnectionInfo,
}

/// A session's call-rate token bucket (`ServerLimits::call_rate`).
pub(crate) type CallRate = Arc<Mutex<TokenBucket>>;

/// A new session's token bucket, when the server limits the call rate.
pub(crate) fn call_rate(shared: &ServerShared) -> Option<CallRate> {
    shared
        .server_limits
        .call_rate()
        .map(|rate| Arc::new(Mutex::new(TokenBucket::new(rate))))
}

impl CallEnv {
    pub(crate) fn new(
        shared: &ServerShared,
        compression: Compression,
        meter: Meter,
        rate: Option<CallRate>,
        connection: ConnectionInfo,
    ) -> Self {
        let budget = shared.server_limits.max_inflight_bytes();
        Self {
            limits: shared.limits.clone(),
            compression,
            budget: Quota::new(usize::try_from(budget).unwrap_or(usize::MAX)),
            memory: Arc::clone(shared.counters.memory()),
            meter,
            rate,
            interceptors: shared.interceptors.clone(),
            connection,
        }
    }

    /// Admits one call under the rate limit, or gives the failure to reply with.
    pub(crate) fn admit_call(&self) -> Result<(), Outcome> {
        let Some(bucket) = &self.rate else {
            return Ok(());
        };
        let mut bucket = lock(bucket);
        if bucket.take(Instant::now()) {
            return Ok(());
        }
        let rate = bucket.limit();
        drop(bucket);
        self.meter.call_rate_limited();
        Err(Outcome::Failure(
            ErrorCode::RateLimited,
            format!(
                "call rate limit exceeded ({} calls/s, burst {}); retry later or raise ServerLimits::call_rate",
                rate.per_second, rate.burst
            ),
        ))
    }

    pub(crate) fn compression_negotiated(&self) -> bool {
        self.compression != Compression::None
    }
}
