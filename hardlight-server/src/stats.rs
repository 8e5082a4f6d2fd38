//! Counters for the server and each connection, read as snapshots and reported through
//! the `metrics` facade (names `hardlight_*`; install any recorder, e.g. the Prometheus
//! exporter behind the `prometheus` feature).

use std::{
    collections::HashMap,
    sync::{
        atomic::{
            AtomicBool, AtomicU64,
            Ordering::{Acquire, Relaxed, Release},
        },
        Arc, Mutex,
    },
};

use hardlight_core::TransportKind as Transport;

use crate::{memory_budget::MemoryBudget, sync::lock};

/// A snapshot of a server's counters, from [`Server::stats`](crate::Server::stats) or a
/// [`StatsHandle`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Connections open now (from accept, including those still in their handshake).
    pub connections_open: u64,
    /// Connections accepted since start.
    pub connections_accepted: u64,
    /// Connections refused at accept by `max_connections` or `max_connections_per_ip`.
    pub connections_refused: u64,
    /// QUIC connection attempts answered with a Retry, to prove their source address
    /// (`ServerLimits::address_validation`) before they count.
    pub address_validations: u64,
    /// Handshakes rejected (version, schema, authentication, shutdown, malformed).
    pub handshakes_rejected: u64,
    /// QUIC handshakes whose `Hello` came as 0-RTT data (a reconnecting client with a
    /// session ticket of this server), answered before the TLS handshake completed.
    pub zero_rtt_handshakes: u64,
    /// Sessions kept after their connection was lost, waiting to be resumed.
    pub sessions_parked: u64,
    /// Sessions resumed by a reconnecting client.
    pub sessions_resumed: u64,
    /// Parked sessions whose grace period (`ServerLimits::resume_grace`) ended without a
    /// resumption.
    pub sessions_expired: u64,
    /// Bytes charged now to `ServerLimits::memory_budget`: call bodies in flight, queued
    /// and replayable events, parked sessions, subscribed topic names.
    pub memory_charged: u64,
    /// Work refused because `ServerLimits::memory_budget` was spent: calls, emits,
    /// subscriptions and sessions that could not be parked.
    pub memory_refusals: u64,
    /// Calls, bytes and dropped events of all connections.
    pub traffic: TrafficStats,
    /// The durable topics, when the server has them (`ServerConfig::with_durable`).
    pub durable: Option<crate::DurableStats>,
    /// The cluster link, when the server has one (`ServerConfig::with_cluster`).
    #[cfg(feature = "nats")]
    pub cluster: Option<crate::ClusterStats>,
}

/// Calls, bytes and dropped events: of a whole server ([`ServerStats::traffic`]) or of one
/// connection (`self.connection.stats()` in a handler, across resumptions).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrafficStats {
    /// Calls started.
    pub calls: u64,
    /// Calls running now.
    pub calls_in_flight: u64,
    /// Calls that ended in a failure (not a handler's own error).
    pub calls_failed: u64,
    /// Calls refused by `ServerLimits::call_rate`.
    pub calls_rate_limited: u64,
    /// HardLight frame bytes received (call frames).
    pub bytes_received: u64,
    /// HardLight frame bytes sent (replies, state, events).
    pub bytes_sent: u64,
    /// Events dropped from slow clients' queues.
    pub events_dropped: u64,
    /// Unreliable events (`EventEmitter::emit_unreliable`) sent as QUIC datagrams.
    pub unreliable_datagrams: u64,
    /// Unreliable events sent on the push stream (or over WebSocket): too large for a
    /// datagram, or the client takes none, and nothing else was waiting.
    pub unreliable_inline: u64,
    /// Unreliable events dropped because the connection was busy: events were queued,
    /// or a newer unreliable event replaced one not yet sent. Not counted as lost events
    /// and never reported as `Lagged`.
    pub unreliable_dropped: u64,
}

#[derive(Debug, Default)]
struct Calls {
    /// The calls counted by any task of the connection.
    served: Served,
    /// The calls a connection's own task serves where they arrive, written by one
    /// [`Tally`] at a time.
    own: Served,
    /// A tally holds `own`.
    own_taken: AtomicBool,
    rate_limited: AtomicU64,
    events_dropped: AtomicU64,
    unreliable_datagrams: AtomicU64,
    unreliable_inline: AtomicU64,
    unreliable_dropped: AtomicU64,
}

/// Counts of a connection's calls and their bytes.
#[derive(Debug, Default)]
struct Served {
    started: AtomicU64,
    finished: AtomicU64,
    failed: AtomicU64,
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
}

impl TrafficStats {
    /// Both counts added up.
    fn plus(self, other: TrafficStats) -> TrafficStats {
        TrafficStats {
            calls: self.calls + other.calls,
            calls_in_flight: self.calls_in_flight + other.calls_in_flight,
            calls_failed: self.calls_failed + other.calls_failed,
            calls_rate_limited: self.calls_rate_limited + other.calls_rate_limited,
            bytes_received: self.bytes_received + other.bytes_received,
            bytes_sent: self.bytes_sent + other.bytes_sent,
            events_dropped: self.events_dropped + other.events_dropped,
            unreliable_datagrams: self.unreliable_datagrams + other.unreliable_datagrams,
            unreliable_inline: self.unreliable_inline + other.unreliable_inline,
            unreliable_dropped: self.unreliable_dropped + other.unreliable_dropped,
        }
    }
}

impl Calls {
    fn snapshot(&self) -> TrafficStats {
        let both = |pick: fn(&Served) -> &AtomicU64| {
            pick(&self.served).load(Relaxed) + pick(&self.own).load(Relaxed)
        };
        let started = both(|s| &s.started);
        TrafficStats {
            calls: started,
            calls_in_flight: started.saturating_sub(both(|s| &s.finished)),
            calls_failed: both(|s| &s.failed),
            calls_rate_limited: self.rate_limited.load(Relaxed),
            bytes_received: both(|s| &s.bytes_received),
            bytes_sent: both(|s| &s.bytes_sent),
            events_dropped: self.events_dropped.load(Relaxed),
            unreliable_datagrams: self.unreliable_datagrams.load(Relaxed),
            unreliable_inline: self.unreliable_inline.load(Relaxed),
            unreliable_dropped: self.unreliable_dropped.load(Relaxed),
        }
    }
}

/// The `metrics` handles of what is counted on every call, taken from the recorder once,
/// when the server is built (so install the recorder before), instead of looked up by
/// name on every call.
#[derive(Debug)]
struct Reported {
    calls: metrics::Counter,
    calls_in_flight: metrics::Gauge,
    calls_failed: metrics::Counter,
    calls_rate_limited: metrics::Counter,
    bytes_received: metrics::Counter,
    bytes_sent: metrics::Counter,
}

impl Default for Reported {
    fn default() -> Self {
        Self {
            calls: metrics::counter!("hardlight_calls_total"),
            calls_in_flight: metrics::gauge!("hardlight_calls_in_flight"),
            calls_failed: metrics::counter!("hardlight_calls_failed_total"),
            calls_rate_limited: metrics::counter!("hardlight_calls_rate_limited_total"),
            bytes_received: metrics::counter!("hardlight_bytes_received_total"),
            bytes_sent: metrics::counter!("hardlight_bytes_sent_total"),
        }
    }
}

/// The server's traffic: counted by each connection alone (a counter every connection's
/// calls add to would take a locked operation of every call twice, and be written by every
/// thread), summed when read.
#[derive(Debug, Default)]
struct Traffic {
    /// The counters of the connections that have them now, by key.
    live: HashMap<u64, Arc<Calls>>,
    /// What the connections whose counters are gone counted.
    ended: TrafficStats,
    /// The key of the next connection's counters.
    next: u64,
}

/// The server-wide counters.
#[derive(Debug, Default)]
pub(crate) struct ServerCounters {
    traffic: Mutex<Traffic>,
    reported: Reported,
    open: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    retried: AtomicU64,
    rejected: AtomicU64,
    zero_rtt: AtomicU64,
    parked: AtomicU64,
    resumed: AtomicU64,
    expired: AtomicU64,
    memory: Arc<MemoryBudget>,
    #[cfg(feature = "nats")]
    cluster: Option<Arc<crate::cluster::ClusterCounters>>,
    durable: Option<Arc<crate::durable::DurableCounters>>,
}

/// How a parked session left the parked set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unparked {
    /// A reconnecting client took it back.
    Resumed,
    /// Its grace period ended.
    Expired,
    /// The server shut down.
    ShutDown,
}

/// Where one connection's activity is counted: its own counters, which the server's sum,
/// and the `metrics` the server reports.
#[derive(Debug, Clone)]
pub(crate) struct Meter {
    server: Arc<ServerCounters>,
    connection: Arc<ConnectionCounters>,
}

/// One connection's counters, part of the server's while they exist.
#[derive(Debug)]
pub(crate) struct ConnectionCounters {
    calls: Arc<Calls>,
    server: Arc<ServerCounters>,
    key: u64,
}

impl Drop for ConnectionCounters {
    fn drop(&mut self) {
        let mut traffic = lock(&self.server.traffic);
        traffic.live.remove(&self.key);
        // under the lock: a snapshot counts them once, here or there
        traffic.ended = traffic.ended.plus(self.calls.snapshot());
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Relaxed);
}

impl ServerCounters {
    /// The counters of a server whose memory is charged to `memory`.
    pub(crate) fn new(memory: Arc<MemoryBudget>) -> Self {
        Self {
            memory,
            ..Self::default()
        }
    }

    /// Counts the cluster link's activity too.
    #[cfg(feature = "nats")]
    pub(crate) fn with_cluster(mut self, cluster: Arc<crate::cluster::ClusterCounters>) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// Counts the durable topics' activity too.
    pub(crate) fn with_durable(mut self, durable: Arc<crate::durable::DurableCounters>) -> Self {
        self.durable = Some(durable);
        self
    }

    /// The server's memory budget.
    pub(crate) fn memory(&self) -> &Arc<MemoryBudget> {
        &self.memory
    }

    pub(crate) fn connection_opened(&self, transport: Transport) {
        add(&self.open, 1);
        add(&self.accepted, 1);
        metrics::gauge!("hardlight_connections_open").increment(1.0);
        metrics::counter!("hardlight_connections_total", "transport" => transport.name())
            .increment(1);
    }

    pub(crate) fn connection_closed(&self) {
        self.open.fetch_sub(1, Relaxed);
        metrics::gauge!("hardlight_connections_open").decrement(1.0);
    }

    pub(crate) fn zero_rtt_handshake(&self) {
        add(&self.zero_rtt, 1);
        metrics::counter!("hardlight_zero_rtt_handshakes_total").increment(1);
    }

    pub(crate) fn connection_refused(&self, reason: &'static str) {
        add(&self.refused, 1);
        metrics::counter!("hardlight_connections_refused_total", "reason" => reason).increment(1);
    }

    pub(crate) fn address_validation_sent(&self) {
        add(&self.retried, 1);
        metrics::counter!("hardlight_address_validations_total").increment(1);
    }

    pub(crate) fn handshake_rejected(&self, code: &'static str) {
        add(&self.rejected, 1);
        metrics::counter!("hardlight_handshakes_rejected_total", "code" => code).increment(1);
    }

    /// Sessions parked now.
    pub(crate) fn parked(&self) -> u64 {
        self.parked.load(Relaxed)
    }

    pub(crate) fn session_parked(&self) {
        add(&self.parked, 1);
        metrics::gauge!("hardlight_sessions_parked").increment(1.0);
    }

    pub(crate) fn session_unparked(&self, how: Unparked) {
        self.parked.fetch_sub(1, Relaxed);
        metrics::gauge!("hardlight_sessions_parked").decrement(1.0);
        match how {
            Unparked::Resumed => {
                add(&self.resumed, 1);
                metrics::counter!("hardlight_sessions_resumed_total").increment(1);
            }
            Unparked::Expired => {
                add(&self.expired, 1);
                metrics::counter!("hardlight_sessions_expired_total").increment(1);
            }
            Unparked::ShutDown => {}
        }
    }

    /// The traffic of every connection, those gone too.
    fn traffic(&self) -> TrafficStats {
        let traffic = lock(&self.traffic);
        traffic
            .live
            .values()
            .fold(traffic.ended, |sum, calls| sum.plus(calls.snapshot()))
    }

    pub(crate) fn snapshot(&self) -> ServerStats {
        ServerStats {
            connections_open: self.open.load(Relaxed),
            connections_accepted: self.accepted.load(Relaxed),
            connections_refused: self.refused.load(Relaxed),
            address_validations: self.retried.load(Relaxed),
            handshakes_rejected: self.rejected.load(Relaxed),
            zero_rtt_handshakes: self.zero_rtt.load(Relaxed),
            sessions_parked: self.parked.load(Relaxed),
            sessions_resumed: self.resumed.load(Relaxed),
            sessions_expired: self.expired.load(Relaxed),
            memory_charged: self.memory.used(),
            memory_refusals: self.memory.refusals(),
            traffic: self.traffic(),
            #[cfg(feature = "nats")]
            cluster: self.cluster.as_ref().map(|c| c.snapshot()),
            durable: self.durable.as_ref().map(|d| d.snapshot()),
        }
    }
}

impl Meter {
    pub(crate) fn new(server: Arc<ServerCounters>) -> Self {
        let calls = Arc::new(Calls::default());
        let key = {
            let mut traffic = lock(&server.traffic);
            let key = traffic.next;
            traffic.next += 1;
            traffic.live.insert(key, Arc::clone(&calls));
            key
        };
        Self {
            connection: Arc::new(ConnectionCounters {
                calls,
                server: Arc::clone(&server),
                key,
            }),
            server,
        }
    }

    /// Counts on the connection's counters (the server's sum them).
    fn count(&self, f: impl Fn(&Calls)) {
        f(&self.connection.calls);
    }

    /// Adds `n` to the call counter `pick` names, in `lane`.
    fn add_served(&self, lane: Lane, pick: fn(&Served) -> &AtomicU64, n: u64) {
        let calls = &self.connection.calls;
        match lane {
            Lane::Shared => add(pick(&calls.served), n),
            Lane::Own => {
                // no other thread writes it: the one tally that holds `own` counts here
                let counter = pick(&calls.own);
                counter.store(counter.load(Relaxed) + n, Relaxed);
            }
        }
    }

    fn call_started_in(&self, lane: Lane) {
        self.add_served(lane, |s| &s.started, 1);
        let reported = &self.server.reported;
        reported.calls.increment(1);
        reported.calls_in_flight.increment(1.0);
    }

    fn call_finished_in(&self, lane: Lane, failed: bool) {
        self.add_served(lane, |s| &s.finished, 1);
        let reported = &self.server.reported;
        reported.calls_in_flight.decrement(1.0);
        if failed {
            self.add_served(lane, |s| &s.failed, 1);
            reported.calls_failed.increment(1);
        }
    }

    fn received_in(&self, lane: Lane, bytes: usize) {
        self.add_served(lane, |s| &s.bytes_received, bytes as u64);
        self.server.reported.bytes_received.increment(bytes as u64);
    }

    fn sent_in(&self, lane: Lane, bytes: usize) {
        self.add_served(lane, |s| &s.bytes_sent, bytes as u64);
        self.server.reported.bytes_sent.increment(bytes as u64);
    }

    pub(crate) fn call_started(&self) {
        self.call_started_in(Lane::Shared);
    }

    pub(crate) fn call_finished(&self, failed: bool) {
        self.call_finished_in(Lane::Shared, failed);
    }

    /// The counting handle of a connection's own task ([`Tally`]).
    pub(crate) fn tally(&self) -> Tally {
        let lane = match self.connection.calls.own_taken.swap(true, Acquire) {
            false => Lane::Own,
            true => Lane::Shared,
        };
        Tally {
            meter: self.clone(),
            lane,
        }
    }

    pub(crate) fn call_rate_limited(&self) {
        self.count(|c| add(&c.rate_limited, 1));
        self.server.reported.calls_rate_limited.increment(1);
    }

    pub(crate) fn received(&self, bytes: usize) {
        self.received_in(Lane::Shared, bytes);
    }

    pub(crate) fn sent(&self, bytes: usize) {
        self.sent_in(Lane::Shared, bytes);
    }

    pub(crate) fn events_dropped(&self, n: u64) {
        self.count(|c| add(&c.events_dropped, n));
        metrics::counter!("hardlight_events_dropped_total").increment(n);
    }

    /// An unreliable event was sent: as a datagram, or inline on the push stream.
    pub(crate) fn unreliable_sent(&self, datagram: bool) {
        if datagram {
            self.count(|c| add(&c.unreliable_datagrams, 1));
        } else {
            self.count(|c| add(&c.unreliable_inline, 1));
        }
        metrics::counter!("hardlight_unreliable_sent_total").increment(1);
    }

    /// An unreliable event was dropped: the connection was busy.
    pub(crate) fn unreliable_dropped(&self) {
        self.count(|c| add(&c.unreliable_dropped, 1));
        metrics::counter!("hardlight_unreliable_dropped_total").increment(1);
    }

    pub(crate) fn connection(&self) -> TrafficStats {
        self.connection.calls.snapshot()
    }
}

/// What a connection's own task counts of the calls it serves where they arrive (started,
/// finished, call and reply bytes), on counters of the connection's that this handle alone
/// writes while it holds them: each count a plain load and store, where counters that
/// every task of the connection writes take a locked operation. Counts of the same
/// connection as its [`Meter`]'s, summed with them when read. A second connection of the
/// same session (a resumption while the last one winds down) finds them held, and counts
/// as any task does.
pub(crate) struct Tally {
    meter: Meter,
    /// `Own` while this handle holds the connection's `own` counters.
    lane: Lane,
}

/// Which of a connection's two sets of call counters a count goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    /// The counters every task of the connection writes (a locked operation each).
    Shared,
    /// The connection's own task's, written by the one [`Tally`] that holds them.
    Own,
}

impl Tally {
    pub(crate) fn call_started(&mut self) {
        self.meter.call_started_in(self.lane);
    }

    pub(crate) fn call_finished(&mut self, failed: bool) {
        self.meter.call_finished_in(self.lane, failed);
    }

    pub(crate) fn received(&mut self, bytes: usize) {
        self.meter.received_in(self.lane, bytes);
    }

    pub(crate) fn sent(&mut self, bytes: usize) {
        self.meter.sent_in(self.lane, bytes);
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        if self.lane == Lane::Own {
            // what it counted is seen by the next tally that takes them
            self.meter.connection.calls.own_taken.store(false, Release);
        }
    }
}

/// Reads a server's [`ServerStats`] while it runs (`Server::stats_handle`).
#[derive(Debug, Clone)]
pub struct StatsHandle {
    pub(crate) counters: Arc<ServerCounters>,
}

impl StatsHandle {
    /// The counters now.
    pub fn snapshot(&self) -> ServerStats {
        self.counters.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_counts_every_connection_those_gone_too() {
        let server = Arc::new(ServerCounters::default());
        let first = Meter::new(Arc::clone(&server));
        let second = Meter::new(Arc::clone(&server));
        first.call_started();
        first.received(10);
        second.call_started();
        second.call_finished(true);
        second.sent(5);
        let traffic = server.snapshot().traffic;
        assert_eq!(
            (
                traffic.calls,
                traffic.calls_in_flight,
                traffic.calls_failed,
                traffic.bytes_received,
                traffic.bytes_sent,
            ),
            (2, 1, 1, 10, 5)
        );
        assert_eq!(first.connection().calls, 1);
        // a connection's counters go with its last meter; the server keeps their counts
        drop(second);
        assert_eq!(server.snapshot().traffic, traffic);
        first.call_finished(false);
        drop(first);
        let ended = server.snapshot().traffic;
        assert_eq!((ended.calls, ended.calls_in_flight), (2, 0));
        assert!(lock(&server.traffic).live.is_empty());
    }

    #[test]
    fn a_tally_counts_with_its_connection_and_hands_its_counters_on() {
        let server = Arc::new(ServerCounters::default());
        let meter = Meter::new(Arc::clone(&server));
        let mut first = meter.tally();
        // a second connection of the session while the first still counts
        let mut second = meter.tally();
        assert_eq!((first.lane, second.lane), (Lane::Own, Lane::Shared));
        first.received(4);
        first.call_started();
        first.sent(7);
        second.call_started();
        second.call_finished(true);
        // a call started by the connection's task and finished by a task of its own
        meter.call_finished(false);
        let traffic = meter.connection();
        assert_eq!(
            (
                traffic.calls,
                traffic.calls_in_flight,
                traffic.calls_failed,
                traffic.bytes_sent
            ),
            (2, 0, 1, 7)
        );
        drop(first);
        let mut third = meter.tally();
        assert_eq!(third.lane, Lane::Own, "the counters are free again");
        third.call_started();
        third.call_finished(false);
        third.sent(3);
        drop((second, third));
        let traffic = server.snapshot().traffic;
        assert_eq!((traffic.calls, traffic.calls_in_flight), (3, 0));
        assert_eq!((traffic.bytes_received, traffic.bytes_sent), (4, 10));
    }
}
