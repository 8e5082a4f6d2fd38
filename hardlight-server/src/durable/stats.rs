//! Durable topics' counters: in [`ServerStats::durable`](crate::ServerStats) and as
//! `hardlight_durable_*` metrics.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A snapshot of a server's durable topics (`ServerStats::durable`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DurableStats {
    /// Events stored by emits.
    pub events_stored: u64,
    /// Emits that found their id stored within the dedup window and stored nothing.
    pub duplicates: u64,
    /// First deliveries of events to consumers.
    pub deliveries: u64,
    /// Redeliveries (after an ack wait, or to a consumer attached again).
    pub redeliveries: u64,
    /// Acks received from clients.
    pub acks: u64,
    /// Events moved to dead letters after `max_deliver` deliveries.
    pub dead_letters: u64,
}

/// The counters behind [`DurableStats`].
#[derive(Debug, Default)]
pub(crate) struct DurableCounters {
    stored: AtomicU64,
    duplicates: AtomicU64,
    deliveries: AtomicU64,
    redeliveries: AtomicU64,
    acks: AtomicU64,
    dead_letters: AtomicU64,
}

impl DurableCounters {
    pub(crate) fn emitted(&self, duplicate: bool) {
        if duplicate {
            self.duplicates.fetch_add(1, Relaxed);
            metrics::counter!("hardlight_durable_duplicates_total").increment(1);
        } else {
            self.stored.fetch_add(1, Relaxed);
            metrics::counter!("hardlight_durable_events_stored_total").increment(1);
        }
    }

    pub(crate) fn delivered(&self, attempt: u32) {
        if attempt > 1 {
            self.redeliveries.fetch_add(1, Relaxed);
            metrics::counter!("hardlight_durable_redeliveries_total").increment(1);
        } else {
            self.deliveries.fetch_add(1, Relaxed);
            metrics::counter!("hardlight_durable_deliveries_total").increment(1);
        }
    }

    pub(crate) fn acked(&self) {
        self.acks.fetch_add(1, Relaxed);
        metrics::counter!("hardlight_durable_acks_total").increment(1);
    }

    pub(crate) fn buried(&self, n: usize) {
        self.dead_letters.fetch_add(n as u64, Relaxed);
        metrics::counter!("hardlight_durable_dead_letters_total").increment(n as u64);
    }

    pub(crate) fn snapshot(&self) -> DurableStats {
        DurableStats {
            events_stored: self.stored.load(Relaxed),
            duplicates: self.duplicates.load(Relaxed),
            deliveries: self.deliveries.load(Relaxed),
            redeliveries: self.redeliveries.load(Relaxed),
            acks: self.acks.load(Relaxed),
            dead_letters: self.dead_letters.load(Relaxed),
        }
    }
}
