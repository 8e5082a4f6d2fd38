//! What a connection is after its handshake, independent of the transport: the shared
//! settings, accepting the `Hello`, running calls and the push stream.

pub(crate) mod dispatch;
pub(crate) mod handshake;
pub(crate) mod push;

use std::sync::Arc;

use hardlight_core::{Compression, Limits};
use tokio::sync::Semaphore;

use crate::{
    shutdown::Signals,
    topics::{Hub, SlowConsumerPolicy},
};

/// Settings every connection of a server shares.
#[derive(Debug)]
pub(crate) struct ServerShared {
    pub(crate) limits: Limits,
    pub(crate) compression: Compression,
    pub(crate) signals: Arc<Signals>,
    pub(crate) hub: Arc<Hub>,
    pub(crate) slow_consumer: SlowConsumerPolicy,
}

/// What a connection's calls share after the handshake.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) limits: Limits,
    /// The compression negotiated for this connection.
    pub(crate) compression: Compression,
    /// Request bytes the connection may have buffered at once.
    pub(crate) budget: Arc<Semaphore>,
}

impl Session {
    pub(crate) fn new(limits: &Limits, compression: Compression) -> Self {
        Self {
            limits: limits.clone(),
            compression,
            budget: Arc::new(Semaphore::new(
                limits.max_inflight_bytes.min(Semaphore::MAX_PERMITS as u64) as usize,
            )),
        }
    }

    pub(crate) fn compression_negotiated(&self) -> bool {
        self.compression != Compression::None
    }
}
