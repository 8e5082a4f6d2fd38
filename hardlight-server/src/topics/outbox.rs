//! A connection's bounded queue of events waiting for the push stream.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
};

use tokio::sync::Notify;

use super::emitter::EncodedEvent;
use crate::sync::lock;

/// What happens when a client reads events slower than they are emitted and its queue
/// (`ServerConfig::with_event_queue`) is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlowConsumerPolicy {
    /// Drop the oldest queued event; the client receives the number lost (`Lagged`)
    /// before the next event it gets.
    #[default]
    DropOldest,
    /// Close the slow client's connection.
    Disconnect,
}

/// The events queued for one connection, bounded by `capacity`.
#[derive(Debug)]
pub(crate) struct Outbox {
    queue: Mutex<Queue>,
    ready: Notify,
    overflow: Notify,
    capacity: usize,
    policy: SlowConsumerPolicy,
}

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Arc<EncodedEvent>>,
    lost: u64,
    overflowed: bool,
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
    pub(crate) fn new(capacity: usize, policy: SlowConsumerPolicy) -> Arc<Self> {
        Arc::new(Self {
            queue: Mutex::new(Queue::default()),
            ready: Notify::new(),
            overflow: Notify::new(),
            capacity: capacity.max(1),
            policy,
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
                    return Taken {
                        lost: std::mem::take(&mut queue.lost),
                        events: queue.items.drain(..n).collect(),
                        overflowed: false,
                    };
                }
            }
            self.ready.notified().await;
        }
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

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn drop_oldest_counts_losses_and_stays_bounded() {
        let outbox = Outbox::new(3, SlowConsumerPolicy::DropOldest);
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
        let outbox = Outbox::new(2, SlowConsumerPolicy::Disconnect);
        for _ in 0..3 {
            outbox.push(event());
        }
        assert_eq!(outbox.len(), 0);
        assert!(block_on(outbox.take(100)).overflowed);
    }
}
