//! The server-wide memory budget (`ServerLimits::memory_budget`): bytes that peers can make
//! the server hold — call bodies in flight and decompressed, queued and replayable events,
//! parked sessions, subscribed topic names — are charged to it, and work that would pass it
//! is refused with `Overloaded` instead of growing.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

/// What a parked session is charged besides its queued events and topic names (which are
/// charged on their own): its handler, state and bookkeeping, estimated.
pub(crate) const PARKED_SESSION_BYTES: u64 = 8 << 10;

/// What one subscription is charged besides its topic name: its entries in the
/// connection's set and in the hub's list, estimated.
pub(crate) const SUBSCRIPTION_BYTES: u64 = 64;

/// The bytes charged now against the server's limit.
#[derive(Debug)]
pub(crate) struct MemoryBudget {
    limit: u64,
    used: AtomicU64,
    refused: AtomicU64,
    /// `hardlight_memory_charged_bytes`, taken from the recorder once.
    charged: metrics::Gauge,
}

/// The budget is exhausted: the work that asked is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exhausted {
    /// The server's `ServerLimits::memory_budget`.
    pub(crate) limit: u64,
}

impl Exhausted {
    /// What a refused call's caller is told.
    pub(crate) fn message(self) -> String {
        format!(
            "server overloaded: its memory budget ({} bytes, ServerLimits::memory_budget) is in use; retry later",
            self.limit
        )
    }
}

/// Bytes held against a [`MemoryBudget`] until dropped.
#[derive(Debug)]
pub(crate) struct Charge {
    budget: Arc<MemoryBudget>,
    bytes: AtomicU64,
}

impl MemoryBudget {
    pub(crate) fn new(limit: u64) -> Arc<Self> {
        Arc::new(Self {
            limit,
            ..Self::default()
        })
    }

    /// Charges `bytes` if they fit under the limit.
    pub(crate) fn charge(self: &Arc<Self>, bytes: u64) -> Result<Charge, Exhausted> {
        self.take(bytes)?;
        Ok(Charge {
            budget: Arc::clone(self),
            bytes: AtomicU64::new(bytes),
        })
    }

    /// Charges `bytes` whatever the budget holds: for what must never be refused, and is
    /// bounded by something else (gap notices: by the subscribers' event queues; durable
    /// deliveries: by each consumer's `max_in_flight`).
    pub(crate) fn charge_unchecked(self: &Arc<Self>, bytes: u64) -> Charge {
        let charge = Charge {
            budget: Arc::clone(self),
            bytes: AtomicU64::new(0),
        };
        charge.add(bytes);
        charge
    }

    /// Charges `bytes` if they fit under the limit, to be given back with
    /// [`release`](MemoryBudget::release): for a holder that keeps the count itself (a
    /// call's reservation), where a [`Charge`] holds it otherwise.
    pub(crate) fn take(&self, bytes: u64) -> Result<(), Exhausted> {
        let fits = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.limit)
            });
        if fits.is_err() {
            self.refused.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("hardlight_memory_refusals_total").increment(1);
            return Err(Exhausted { limit: self.limit });
        }
        self.charged.increment(bytes as f64);
        Ok(())
    }

    /// Bytes charged now.
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// Charges refused so far.
    pub(crate) fn refusals(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Gives back `bytes` charged with [`take`](MemoryBudget::take).
    pub(crate) fn release(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
        self.charged.decrement(bytes as f64);
    }
}

impl Default for MemoryBudget {
    /// No limit (what counters made outside a server use).
    fn default() -> Self {
        Self {
            limit: u64::MAX,
            used: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            charged: metrics::gauge!("hardlight_memory_charged_bytes"),
        }
    }
}

impl Charge {
    /// Adds `bytes` that are already held (a frame built from an event charged before):
    /// counted even past the limit, so that the next charge sees them.
    pub(crate) fn add(&self, bytes: u64) {
        self.budget.used.fetch_add(bytes, Ordering::AcqRel);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.budget.charged.increment(bytes as f64);
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.release(*self.bytes.get_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_up_to_the_limit_and_releases_on_drop() {
        let budget = MemoryBudget::new(100);
        let first = budget.charge(60).unwrap();
        assert_eq!(budget.charge(41).unwrap_err(), Exhausted { limit: 100 });
        let second = budget.charge(30).unwrap();
        assert!(budget.take(11).is_err());
        budget.take(10).unwrap();
        assert_eq!(budget.used(), 100);
        drop(first);
        budget.release(10);
        second.add(10);
        assert_eq!(budget.used(), 40);
        drop(second);
        assert_eq!((budget.used(), budget.refusals()), (0, 2));
        assert!(
            budget.charge(u64::MAX).is_err(),
            "no overflow past the limit"
        );
    }
}
