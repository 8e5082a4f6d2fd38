//! A connection's bounded queue of events waiting for the push stream.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
};

use tokio::sync::Notify;

use super::encoded::EncodedEvent;
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

/// How much an [`Outbox`] holds: events queued (by count and by bytes) and push frames
/// kept for replay.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// `ServerLimits::max_queued_events`.
    pub(crate) events: usize,
    /// `ServerLimits::max_queued_bytes`.
    pub(crate) bytes: usize,
    /// `ServerLimits::max_replay_events`.
    pub(crate) replay: usize,
}

/// The events queued for one connection, bounded by count and bytes, and the last
/// `replay` push frames taken, kept in case the connection is lost before the client read
/// them.
#[derive(Debug)]
pub(crate) struct Outbox {
    queue: Mutex<Queue>,
    ready: Notify,
    overflow: Notify,
    bounds: Bounds,
    policy: SlowConsumerPolicy,
    meter: Meter,
}

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Arc<EncodedEvent>>,
    /// Bytes of `items`.
    bytes: usize,
    lost: u64,
    overflowed: bool,
    /// Events taken so far, as the client counts them: one per `Event` frame, `n` per
    /// `Lagged` frame of `n`.
    taken: u64,
    /// The last frames taken, worth `sent_weight` events: the first of them starts at
    /// event number `taken - sent_weight`.
    sent: VecDeque<Sent>,
    sent_weight: u64,
    unreliable: Unreliable,
}

/// The unreliable events of the connection now serving the session.
#[derive(Debug, Default)]
struct Unreliable {
    /// Whether a connection serves the session.
    attached: bool,
    /// Where unreliable events go as datagrams, when the client takes them.
    datagrams: Option<crate::quic::Datagrams>,
    /// Whether the connection negotiated compression.
    compressed: bool,
    /// Unreliable events sent on the connection so far: the next one's `id` is one more.
    sent: u64,
    /// The one waiting for the push stream, which takes it only when no event is queued.
    waiting: Option<Arc<EncodedEvent>>,
}

impl Unreliable {
    /// The waiting event, numbered.
    fn take_waiting(&mut self) -> Option<(u64, Arc<EncodedEvent>)> {
        let event = self.waiting.take()?;
        self.sent += 1;
        Some((self.sent, event))
    }
}

/// A push frame taken for the client: an event, or a loss report.
#[derive(Debug, Clone)]
enum Sent {
    Event(Arc<EncodedEvent>),
    Lost(u64),
}

impl Sent {
    /// The events this frame accounts for.
    fn weight(&self) -> u64 {
        match self {
            Self::Event(_) => 1,
            Self::Lost(n) => *n,
        }
    }
}

/// What the push stream takes from an outbox in one go.
#[derive(Debug, Default)]
pub(crate) struct Taken {
    /// Events dropped since the last take.
    pub(crate) lost: u64,
    /// Events to send, oldest first.
    pub(crate) events: Vec<Arc<EncodedEvent>>,
    /// An unreliable event to send after them, and its number on the connection.
    pub(crate) unreliable: Option<(u64, Arc<EncodedEvent>)>,
    /// The queue overflowed under [`SlowConsumerPolicy::Disconnect`].
    pub(crate) overflowed: bool,
}

impl Outbox {
    pub(crate) fn new(bounds: Bounds, policy: SlowConsumerPolicy, meter: Meter) -> Arc<Self> {
        Arc::new(Self {
            queue: Mutex::new(Queue::default()),
            ready: Notify::new(),
            overflow: Notify::new(),
            bounds: Bounds {
                events: bounds.events.max(1),
                ..bounds
            },
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
        let size = event.size();
        while queue.items.len() >= self.bounds.events
            || (!queue.items.is_empty() && queue.bytes + size > self.bounds.bytes)
        {
            match self.policy {
                SlowConsumerPolicy::DropOldest => {
                    if let Some(oldest) = queue.items.pop_front() {
                        queue.bytes -= oldest.size();
                    }
                    queue.lost += 1;
                    self.meter.events_dropped(1);
                }
                SlowConsumerPolicy::Disconnect => {
                    queue.overflowed = true;
                    queue.items.clear();
                    queue.bytes = 0;
                    drop(queue);
                    self.ready.notify_one();
                    self.overflow.notify_waiters();
                    return;
                }
            }
        }
        queue.bytes += size;
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
                if !queue.items.is_empty() || queue.lost > 0 || queue.unreliable.waiting.is_some() {
                    let n = queue.items.len().min(max);
                    let events: Vec<_> = queue.items.drain(..n).collect();
                    queue.bytes -= events.iter().map(|e| e.size()).sum::<usize>();
                    let unreliable = if queue.items.is_empty() {
                        queue.unreliable.take_waiting()
                    } else {
                        None
                    };
                    let taken = Taken {
                        lost: std::mem::take(&mut queue.lost),
                        events,
                        unreliable,
                        overflowed: false,
                    };
                    self.remember(&mut queue, &taken);
                    return taken;
                }
            }
            self.ready.notified().await;
        }
    }

    /// A connection starts serving the session: unreliable events go to it, as datagrams
    /// when `datagrams` is given, numbered from 1.
    pub(crate) fn attach(&self, datagrams: Option<crate::quic::Datagrams>, compressed: bool) {
        let mut queue = self.lock();
        queue.unreliable = Unreliable {
            attached: true,
            datagrams,
            compressed,
            ..Unreliable::default()
        };
    }

    /// The connection stopped serving the session: unreliable events are dropped until
    /// the next one attaches.
    pub(crate) fn detach(&self) {
        self.lock().unreliable = Unreliable::default();
    }

    /// Offers an unreliable event: sent at once as a QUIC datagram when the client takes
    /// them and it fits; otherwise it waits for the push stream only while no event is
    /// queued, in a single place where a newer unreliable event replaces it. Whatever is
    /// not sent is dropped (and counted), never queued and never reported as lost.
    pub(crate) fn offer(&self, event: &Arc<EncodedEvent>) {
        let mut queue = self.lock();
        let unreliable = &mut queue.unreliable;
        if let Some(datagrams) = &unreliable.datagrams {
            let frame = event.unreliable_frame(unreliable.compressed, unreliable.sent + 1);
            if datagrams.max_size().is_some_and(|max| frame.len() <= max) {
                // quinn drops the oldest datagram when its send buffer is full: a loss the
                // client sees as a gap in the numbers, like one in the network
                match datagrams.send(frame) {
                    Ok(()) => {
                        unreliable.sent += 1;
                        self.meter.unreliable_sent(true);
                    }
                    Err(error) => {
                        tracing::debug!(%error, "unreliable event dropped");
                        self.meter.unreliable_dropped();
                    }
                }
                return;
            }
        }
        let idle = queue.items.is_empty() && queue.lost == 0 && !queue.overflowed;
        if !idle || !queue.unreliable.attached {
            self.meter.unreliable_dropped();
            return;
        }
        if queue
            .unreliable
            .waiting
            .replace(Arc::clone(event))
            .is_some()
        {
            self.meter.unreliable_dropped();
        }
        drop(queue);
        self.ready.notify_one();
    }

    /// Records the frames of `taken` (a `Lagged` first if anything was lost) for replay.
    fn remember(&self, queue: &mut Queue, taken: &Taken) {
        let lagged = (taken.lost > 0).then_some(Sent::Lost(taken.lost));
        let events = taken.events.iter().map(|e| Sent::Event(Arc::clone(e)));
        for sent in lagged.into_iter().chain(events) {
            queue.taken += sent.weight();
            if self.bounds.replay == 0 {
                continue;
            }
            if queue.sent.len() == self.bounds.replay {
                if let Some(oldest) = queue.sent.pop_front() {
                    queue.sent_weight -= oldest.weight();
                }
            }
            queue.sent_weight += sent.weight();
            queue.sent.push_back(sent);
        }
    }

    /// A client resuming the session accounted for the first `received` events taken:
    /// queue the frames after them again, in order, ahead of newer events. Events no
    /// longer kept for replay, and those reported lost after `received`, are reported as
    /// lost in one number.
    pub(crate) fn rewind(&self, received: u64) {
        let mut queue = self.lock();
        let received = received.min(queue.taken);
        let mut position = queue.taken - queue.sent_weight;
        let mut lost = position.saturating_sub(received);
        let mut replay = Vec::new();
        for sent in queue.sent.drain(..) {
            let end = position + sent.weight();
            if end > received {
                match sent {
                    Sent::Lost(_) => lost += end - position.max(received),
                    Sent::Event(event) => replay.push(event),
                }
            }
            position = end;
        }
        queue.sent_weight = 0;
        for event in replay.into_iter().rev() {
            queue.bytes += event.size();
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

    /// Counts an unreliable event sent on the push stream.
    pub(crate) fn unreliable_inline(&self) {
        self.meter.unreliable_sent(false);
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        lock(&self.queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory_budget::MemoryBudget;
    use hardlight_core::Compression;

    fn event() -> Arc<EncodedEvent> {
        sized(0)
    }

    fn sized(bytes: usize) -> Arc<EncodedEvent> {
        let charge = Arc::new(MemoryBudget::default()).charge(0).unwrap();
        Arc::new(EncodedEvent::event(
            bytes::Bytes::from(vec![0; bytes]),
            Compression::None,
            charge,
        ))
    }

    fn outbox(capacity: usize, replay: usize, policy: SlowConsumerPolicy) -> Arc<Outbox> {
        bounded(capacity, usize::MAX, replay, policy)
    }

    fn bounded(
        events: usize,
        bytes: usize,
        replay: usize,
        policy: SlowConsumerPolicy,
    ) -> Arc<Outbox> {
        let meter = Meter::new(Arc::default());
        let bounds = Bounds {
            events,
            bytes,
            replay,
        };
        Outbox::new(bounds, policy, meter)
    }

    #[test]
    fn the_queue_is_bounded_by_bytes_and_always_takes_one_event() {
        let outbox = bounded(100, 1000, 0, SlowConsumerPolicy::DropOldest);
        for _ in 0..5 {
            outbox.push(sized(300));
        }
        assert_eq!(
            outbox.len(),
            3,
            "3 × 300 bytes fit in 1000, a fourth does not"
        );
        let taken = block_on(outbox.take(100));
        assert_eq!((taken.lost, taken.events.len()), (2, 3));
        outbox.push(sized(5000));
        assert_eq!(
            outbox.len(),
            1,
            "an event above the bound goes to an empty queue"
        );
        outbox.push(sized(1));
        assert_eq!(outbox.len(), 1, "and is dropped for the next one");
        let slow = bounded(100, 1000, 0, SlowConsumerPolicy::Disconnect);
        for _ in 0..4 {
            slow.push(sized(300));
        }
        assert!(block_on(slow.take(100)).overflowed);
    }

    #[test]
    fn a_lagged_frame_counts_its_events_when_replayed_or_lost() {
        // the client counts 3 events, a Lagged of 4, 3 events: 10; with the last two
        // frames kept for replay (events 8 and 9), a client that had the first three
        // events only lost the Lagged's 4 and the event after it
        let outbox = with_lag(2);
        outbox.rewind(3);
        let again = block_on(outbox.take(100));
        assert_eq!((again.lost, again.events.len()), (5, 2));
        // with every frame kept, a client that got the Lagged frame (3 + 4 = 7) misses
        // only what follows it
        let outbox = with_lag(10);
        outbox.rewind(7);
        let again = block_on(outbox.take(100));
        assert_eq!((again.lost, again.events.len()), (0, 3));
    }

    /// 3 events taken, then a `Lagged` of 4 and 3 events (a queue of 3), the last
    /// `replay` frames kept.
    fn with_lag(replay: usize) -> Arc<Outbox> {
        let outbox = outbox(3, replay, SlowConsumerPolicy::DropOldest);
        for _ in 0..3 {
            outbox.push(event());
        }
        let _ = block_on(outbox.take(100));
        for _ in 0..7 {
            outbox.push(event());
        }
        let taken = block_on(outbox.take(100));
        assert_eq!((taken.lost, taken.events.len()), (4, 3));
        outbox
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
