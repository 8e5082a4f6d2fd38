//! A connection's bounded queue of events waiting for the push stream.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
};

use tokio::sync::Notify;

use super::emitter::EncodedEvent;
use crate::{stats::Meter, sync::lock};

/// What happens when a client reads events slower than they are emitted and its queue
/// (`ServerLimits::max_queued_events`) is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlowConsumerPolicy {
    /// Drop the oldest queued event; the client receives the number lost (`Lagged`)
    /// before the next event it gets.
    #[default]
    DropOldest,
    /// Close the slow client's connection.
    Disconnect,
}

/// The events queued for one connection, bounded by `capacity`, and the last `replay`
/// push frames taken, kept in case the connection is lost before the client read them.
#[derive(Debug)]
pub(crate) struct Outbox {
    queue: Mutex<Queue>,
    ready: Notify,
    overflow: Notify,
    capacity: usize,
    replay: usize,
    policy: SlowConsumerPolicy,
    meter: Meter,
}

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Arc<EncodedEvent>>,
    lost: u64,
    overflowed: bool,
    /// `Event` and `Lagged` frames taken so far (the client counts the ones it received).
    taken: u64,
    /// The last frames taken; the first of them was frame number `taken - sent.len()`.
    sent: VecDeque<Sent>,
}

/// A push frame taken for the client: an event, or a loss report.
#[derive(Debug, Clone)]
enum Sent {
    Event(Arc<EncodedEvent>),
    Lost(u64),
}

/// What the push stream takes from an outbox in one go.
#[derive(Debug, Default)]
pub(crate) struct Taken {
    /// Events dropped since the last take.
    pub(crate) lost: u64,
    /// Events to send, oldest first.
    pub(crate) events: Vec<Arc<EncodedEvent>>,
    /// The queue overflowed under [`SlowConsumerPolicy::Disconnect`].
    pub(crate) overflowed: bool,
}

impl Outbox {
    pub(crate) fn new(
        capacity: usize,
        replay: usize,
        policy: SlowConsumerPolicy,
        meter: Meter,
    ) -> Arc<Self> {
        Arc::new(Self {
            queue: Mutex::new(Queue::default()),
            ready: Notify::new(),
            overflow: Notify::new(),
            capacity: capacity.max(1),
            replay,
            policy,
            meter,
        })
    }

    /// Queues an event without waiting; a full queue applies the policy.
    pub(crate) fn push(&self, event: Arc<EncodedEvent>) {
        let mut queue = self.lock();
        if queue.overflowed {
            return;
        }
        if queue.items.len() >= self.capacity {
            match self.policy {
                SlowConsumerPolicy::DropOldest => {
                    queue.items.pop_front();
                    queue.lost += 1;
                    self.meter.events_dropped(1);
                }
                SlowConsumerPolicy::Disconnect => {
                    queue.overflowed = true;
                    queue.items.clear();
                    drop(queue);
                    self.ready.notify_one();
                    self.overflow.notify_waiters();
                    return;
                }
            }
        }
        queue.items.push_back(event);
        drop(queue);
        self.ready.notify_one();
    }

    /// Waits until something is queued (or lost), then takes up to `max` events.
    pub(crate) async fn take(&self, max: usize) -> Taken {
        loop {
            {
                let mut queue = self.lock();
                if queue.overflowed {
                    return Taken {
                        overflowed: true,
                        ..Taken::default()
                    };
                }
                if !queue.items.is_empty() || queue.lost > 0 {
                    let n = queue.items.len().min(max);
                    let taken = Taken {
                        lost: std::mem::take(&mut queue.lost),
                        events: queue.items.drain(..n).collect(),
                        overflowed: false,
                    };
                    self.remember(&mut queue, &taken);
                    return taken;
                }
            }
            self.ready.notified().await;
        }
    }

    /// Records the frames of `taken` (a `Lagged` first if anything was lost) for replay.
    fn remember(&self, queue: &mut Queue, taken: &Taken) {
        let lagged = (taken.lost > 0).then_some(Sent::Lost(taken.lost));
        let events = taken.events.iter().map(|e| Sent::Event(Arc::clone(e)));
        for sent in lagged.into_iter().chain(events) {
            queue.taken += 1;
            if self.replay == 0 {
                continue;
            }
            if queue.sent.len() == self.replay {
                queue.sent.pop_front();
            }
            queue.sent.push_back(sent);
        }
    }

    /// A client resuming the session received the first `received` frames taken: queue
    /// the rest again, in order, ahead of newer events. Frames no longer kept for replay
    /// are reported as lost.
    pub(crate) fn rewind(&self, received: u64) {
        let mut queue = self.lock();
        let received = received.min(queue.taken);
        let first_kept = queue.taken - queue.sent.len() as u64;
        let mut lost = first_kept.saturating_sub(received);
        let skip = received.saturating_sub(first_kept) as usize;
        let mut replay = Vec::new();
        for sent in queue.sent.drain(..).skip(skip) {
            match sent {
                Sent::Lost(n) => lost += n,
                Sent::Event(event) => replay.push(event),
            }
        }
        for event in replay.into_iter().rev() {
            queue.items.push_front(event);
        }
        queue.lost += lost;
        queue.taken = received;
        drop(queue);
        self.ready.notify_one();
    }

    /// Completes once the queue has overflowed under [`SlowConsumerPolicy::Disconnect`],
    /// even while the push stream is blocked writing to a client that stopped reading.
    pub(crate) async fn overflowed(&self) {
        loop {
            let overflow = self.overflow.notified();
            if self.lock().overflowed {
                return;
            }
            overflow.await;
        }
    }

    /// Events currently queued.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().items.len()
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        lock(&self.queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hardlight_core::{codec::Bytes, Compression};

    fn event() -> Arc<EncodedEvent> {
        Arc::new(EncodedEvent::new(Bytes::new(), Compression::None))
    }

    fn outbox(capacity: usize, replay: usize, policy: SlowConsumerPolicy) -> Arc<Outbox> {
        let meter = Meter::new(Arc::default());
        Outbox::new(capacity, replay, policy, meter)
    }

    #[test]
    fn rewind_requeues_what_the_client_missed_and_reports_the_rest_lost() {
        let outbox = outbox(100, 4, SlowConsumerPolicy::DropOldest);
        let events: Vec<_> = (0..6).map(|_| event()).collect();
        for e in &events {
            outbox.push(Arc::clone(e));
        }
        let taken = block_on(outbox.take(100));
        assert_eq!(taken.events.len(), 6);
        // the client got 3 of the 6; only the last 4 are kept, so 1 is lost
        outbox.rewind(3);
        let again = block_on(outbox.take(100));
        assert_eq!(again.lost, 0, "frames 4..6 are still kept");
        assert_eq!(again.events.len(), 3);
        assert!(Arc::ptr_eq(&again.events[0], &events[3]));
        // after the resume the client got one more of them
        outbox.rewind(4);
        let last = block_on(outbox.take(100));
        assert_eq!((last.lost, last.events.len()), (0, 2));
        assert!(Arc::ptr_eq(&last.events[0], &events[4]));
    }

    #[test]
    fn rewind_past_the_replay_window_reports_the_loss() {
        let outbox = outbox(100, 4, SlowConsumerPolicy::DropOldest);
        for _ in 0..6 {
            outbox.push(event());
        }
        let _ = block_on(outbox.take(100));
        outbox.rewind(0);
        let again = block_on(outbox.take(100));
        assert_eq!((again.lost, again.events.len()), (2, 4));
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn drop_oldest_counts_losses_and_stays_bounded() {
        let outbox = outbox(3, 0, SlowConsumerPolicy::DropOldest);
        for _ in 0..10 {
            outbox.push(event());
        }
        assert_eq!(outbox.len(), 3);
        let taken = block_on(outbox.take(100));
        assert_eq!(
            (taken.lost, taken.events.len(), taken.overflowed),
            (7, 3, false)
        );
    }

    #[test]
    fn disconnect_policy_flags_overflow() {
        let outbox = outbox(2, 0, SlowConsumerPolicy::Disconnect);
        for _ in 0..3 {
            outbox.push(event());
        }
        assert_eq!(outbox.len(), 0);
        assert!(block_on(outbox.take(100)).overflowed);
    }
}
