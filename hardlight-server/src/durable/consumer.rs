//! One consumer's delivery state, with no I/O: which events are out and unacked, when each
//! is due again, and what the next round delivers, redelivers or gives up on. The pump
//! stores what this decides before it sends anything.

use std::collections::BTreeMap;

use tokio::time::{Duration, Instant};

use super::record::ConsumerRecord;

/// A consumer's progress and the deadlines of its unacked events.
#[derive(Debug)]
pub(crate) struct ConsumerState {
    record: ConsumerRecord,
    /// When each pending event is due for redelivery.
    due: BTreeMap<u64, Instant>,
    /// Changed since last stored (acks).
    dirty: bool,
}

/// What one round does: events to send again (seq, attempt), events given up on (seq,
/// attempts), and how many new events there is room for.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Round {
    pub(crate) redeliver: Vec<(u64, u32)>,
    pub(crate) dead: Vec<(u64, u32)>,
    pub(crate) room: usize,
}

impl ConsumerState {
    /// A consumer continuing from `record`: every event it had out is due now (its last
    /// delivery went to a connection that is gone).
    pub(crate) fn new(record: ConsumerRecord, now: Instant) -> Self {
        let due = record.pending.keys().map(|&seq| (seq, now)).collect();
        Self {
            record,
            due,
            dirty: false,
        }
    }

    /// The redeliveries due at `now` (each counted as an attempt), the events past
    /// `max_deliver` attempts (no longer pending), and the room for new events under
    /// `max_in_flight`.
    pub(crate) fn round(
        &mut self,
        now: Instant,
        ack_wait: Duration,
        max_deliver: u32,
        max_in_flight: usize,
    ) -> Round {
        let mut round = Round::default();
        let due: Vec<u64> = self
            .due
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(&seq, _)| seq)
            .collect();
        for seq in due {
            let attempts = self.record.pending.get(&seq).copied().unwrap_or(0);
            if attempts >= max_deliver {
                self.record.pending.remove(&seq);
                self.due.remove(&seq);
                round.dead.push((seq, attempts));
            } else {
                self.record.pending.insert(seq, attempts + 1);
                self.due.insert(seq, now + ack_wait);
                round.redeliver.push((seq, attempts + 1));
            }
        }
        round.room = max_in_flight.saturating_sub(self.record.pending.len());
        round
    }

    /// The last event delivered for the first time.
    pub(crate) fn delivered(&self) -> u64 {
        self.record.delivered
    }

    /// Records first deliveries of `seqs` (ascending, after [`ConsumerState::delivered`]).
    pub(crate) fn deliver(&mut self, seqs: &[u64], now: Instant, ack_wait: Duration) {
        for &seq in seqs {
            self.record.pending.insert(seq, 1);
            self.due.insert(seq, now + ack_wait);
            self.record.delivered = self.record.delivered.max(seq);
        }
    }

    /// Moves the first-delivery cursor past events that are gone (expired) up to `seq`.
    pub(crate) fn skip_to(&mut self, seq: u64) {
        self.record.delivered = self.record.delivered.max(seq);
    }

    /// Forgets a pending event that no longer exists (expired before its redelivery).
    pub(crate) fn forget(&mut self, seq: u64) {
        self.record.pending.remove(&seq);
        self.due.remove(&seq);
    }

    /// The consumer processed event `seq`; `false` if it was not pending (acked before,
    /// or given up on).
    pub(crate) fn ack(&mut self, seq: u64) -> bool {
        let pending = self.record.pending.remove(&seq).is_some();
        self.due.remove(&seq);
        self.dirty |= pending;
        pending
    }

    /// When the next pending event is due, if any is.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.due.values().min().copied()
    }

    /// The progress to store, and clears the "changed" mark.
    pub(crate) fn snapshot(&mut self) -> ConsumerRecord {
        self.dirty = false;
        self.record.clone()
    }

    /// Whether acks came in since the last snapshot.
    pub(crate) fn dirty(&self) -> bool {
        self.dirty
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(30);

    #[test]
    fn unacked_events_come_back_after_the_ack_wait_until_max_deliver() {
        let start = Instant::now();
        let mut state = ConsumerState::new(ConsumerRecord::default(), start);
        assert_eq!(state.round(start, WAIT, 2, 3).room, 3);
        state.deliver(&[1, 2, 3], start, WAIT);
        assert_eq!(
            state.round(start, WAIT, 2, 3),
            Round::default(),
            "full, nothing due"
        );
        assert!(state.ack(2));
        assert!(!state.ack(2), "acked once");
        assert_eq!(state.next_due(), Some(start + WAIT));
        let later = start + WAIT;
        let round = state.round(later, WAIT, 2, 3);
        assert_eq!(round.redeliver, vec![(1, 2), (3, 2)]);
        assert_eq!(round.room, 1);
        let round = state.round(later + WAIT, WAIT, 2, 3);
        assert_eq!(
            round.dead,
            vec![(1, 2), (3, 2)],
            "two attempts were the most"
        );
        assert_eq!(round.room, 3);
        assert_eq!(state.snapshot().floor(), 3);
    }

    #[test]
    fn a_consumer_that_comes_back_gets_its_unacked_events_at_once() {
        let now = Instant::now();
        let record = ConsumerRecord {
            delivered: 9,
            pending: [(4, 1), (8, 3)].into(),
        };
        let mut state = ConsumerState::new(record, now);
        let round = state.round(now, WAIT, 5, 10);
        assert_eq!(round.redeliver, vec![(4, 2), (8, 4)]);
        assert_eq!(state.delivered(), 9);
    }
}
