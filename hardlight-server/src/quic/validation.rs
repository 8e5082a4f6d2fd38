//! Address validation (`ServerLimits::address_validation`): which QUIC connection attempts
//! must answer a Retry before they take a slot, and how many handshakes of peers whose
//! address is not proven are in progress.

use std::sync::{
    atomic::{AtomicU32, Ordering},
    Arc,
};

use quinn::Incoming;

use crate::{limits::AddressValidation, session::ServerShared};

/// Handshakes in progress of peers whose source address is not proven.
#[derive(Debug, Default)]
pub(crate) struct Unproven(Arc<AtomicU32>);

/// One such handshake, counted until dropped: when the QUIC handshake completes (which
/// proves the address), fails or times out.
#[derive(Debug)]
pub(crate) struct UnprovenHandshake(Arc<AtomicU32>);

impl Drop for UnprovenHandshake {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Unproven {
    fn count(&self) -> UnprovenHandshake {
        self.0.fetch_add(1, Ordering::AcqRel);
        UnprovenHandshake(Arc::clone(&self.0))
    }

    fn len(&self) -> u32 {
        self.0.load(Ordering::Acquire)
    }
}

/// A connection attempt that may take a slot now: its address proven, or no proof needed
/// yet (then counted as unproven until its handshake ends). Otherwise it gets a Retry,
/// which a peer that spoofed its address never answers, and `None`: it takes no slot.
pub(crate) fn validated(
    incoming: Incoming,
    shared: &ServerShared,
) -> Option<(Incoming, Option<UnprovenHandshake>)> {
    if incoming.remote_address_validated() {
        return Some((incoming, None));
    }
    let retry = match shared.server_limits.address_validation() {
        AddressValidation::Off => false,
        AddressValidation::Always => true,
        AddressValidation::WhenBusy { handshakes } => shared.unproven.len() >= handshakes,
    };
    if !retry {
        let counted = shared.unproven.count();
        return Some((incoming, Some(counted)));
    }
    shared.counters.address_validation_sent();
    // `retry` fails only when the attempt already carried a retry token (then it counts
    // as validated and never gets here)
    if let Err(error) = incoming.retry() {
        error.into_incoming().refuse();
    }
    None
}
