//! The cluster link's counters: in [`ServerStats::cluster`](crate::ServerStats) and as
//! `hardlight_cluster_*` metrics.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// A snapshot of a server's cluster link (`ServerStats::cluster`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterStats {
    /// Connected to NATS now, with every subscription in place.
    pub connected: bool,
    /// Times the connection to NATS was lost.
    pub interruptions: u64,
    /// Topics subscribed in NATS now (those with local subscribers, and those lingering
    /// after their last one left).
    pub topics_subscribed: u64,
    /// Events published to NATS.
    pub events_forwarded: u64,
    /// Events received from NATS (whether or not a local subscriber was left to take them).
    pub events_received: u64,
    /// Events not forwarded or not delivered: the forward queue was full, a publish
    /// failed, or a received event did not fit `ServerLimits::memory_budget`. Each is
    /// reported as a gap to the subscribers concerned.
    pub events_dropped: u64,
    /// Messages received and refused: from a server with another schema hash, or not a
    /// valid event.
    pub events_rejected: u64,
    /// Gap notices queued for local subscribers (one per subscriber and topic).
    pub gaps: u64,
}

/// The counters behind [`ClusterStats`].
#[derive(Debug, Default)]
pub(crate) struct ClusterCounters {
    connected: AtomicBool,
    interruptions: AtomicU64,
    topics: AtomicU64,
    forwarded: AtomicU64,
    received: AtomicU64,
    dropped: AtomicU64,
    rejected: AtomicU64,
    gaps: AtomicU64,
}

impl ClusterCounters {
    pub(crate) fn set_connected(&self, connected: bool) {
        let was = self.connected.swap(connected, Relaxed);
        if was && !connected {
            self.interruptions.fetch_add(1, Relaxed);
            metrics::counter!("hardlight_cluster_interruptions_total").increment(1);
        }
        metrics::gauge!("hardlight_cluster_connected").set(if connected { 1.0 } else { 0.0 });
    }

    pub(crate) fn set_topics(&self, topics: usize) {
        self.topics.store(topics as u64, Relaxed);
        metrics::gauge!("hardlight_cluster_topics").set(topics as f64);
    }

    pub(crate) fn forwarded(&self) {
        self.forwarded.fetch_add(1, Relaxed);
        metrics::counter!("hardlight_cluster_events_forwarded_total").increment(1);
    }

    pub(crate) fn received(&self) {
        self.received.fetch_add(1, Relaxed);
        metrics::counter!("hardlight_cluster_events_received_total").increment(1);
    }

    pub(crate) fn dropped(&self) {
        self.dropped.fetch_add(1, Relaxed);
        metrics::counter!("hardlight_cluster_events_dropped_total").increment(1);
    }

    pub(crate) fn rejected(&self) {
        self.rejected.fetch_add(1, Relaxed);
        metrics::counter!("hardlight_cluster_events_rejected_total").increment(1);
    }

    pub(crate) fn gaps(&self, n: usize) {
        self.gaps.fetch_add(n as u64, Relaxed);
        metrics::counter!("hardlight_cluster_gaps_total").increment(n as u64);
    }

    pub(crate) fn snapshot(&self) -> ClusterStats {
        ClusterStats {
            connected: self.connected.load(Relaxed),
            interruptions: self.interruptions.load(Relaxed),
            topics_subscribed: self.topics.load(Relaxed),
            events_forwarded: self.forwarded.load(Relaxed),
            events_received: self.received.load(Relaxed),
            events_dropped: self.dropped.load(Relaxed),
            events_rejected: self.rejected.load(Relaxed),
            gaps: self.gaps.load(Relaxed),
        }
    }
}
