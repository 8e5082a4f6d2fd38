//! The client's event buffer: what its connections' push readers hand to every
//! subscription, in order, holding at most `ClientConfig::with_event_buffer` values; a
//! subscription that falls further behind is told how many it missed.
//!
//! Each value is kept until every subscription that existed when it arrived has read or
//! passed it; the last one to read it takes it (no copy, no shared box), the others get a
//! clone. A subscription passes over what it does not want without cloning it.

use std::{
    collections::VecDeque,
    future::poll_fn,
    sync::{Arc, Mutex, MutexGuard},
    task::{Poll, Waker},
};

use crate::sync::lock;

/// Wakers woken per turn of the lock while a value is sent.
const WAKE_BATCH: usize = 16;

/// Why a subscription got no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missed {
    /// This many values were dropped before the subscription read them.
    Lagged(u64),
    /// Every sender is gone and the subscription has read all that was left.
    Closed,
}

/// Puts values in the buffer; cloned for each connection of the client.
pub(crate) struct Sender<T> {
    shared: Arc<Mutex<State<T>>>,
}

/// One subscription's place in the buffer.
pub(crate) struct Receiver<T> {
    shared: Arc<Mutex<State<T>>>,
    /// The position of the next value it reads.
    next: u64,
    /// Its index among the wakers.
    waker: usize,
}

struct State<T> {
    /// Oldest first; `slots[0]` is at position `first`.
    slots: VecDeque<Slot<T>>,
    first: u64,
    capacity: usize,
    senders: usize,
    /// Each receiver's waker while it waits, by index (`None` also for free indices):
    /// one index per receiver.
    wakers: Vec<Option<Waker>>,
    /// Indices of `wakers` free for the next receiver.
    free: Vec<usize>,
    /// How many of `wakers` are set.
    waiting: usize,
}

struct Slot<T> {
    /// `None` once every receiver that counts in `unread` has read it.
    value: Option<T>,
    /// Receivers still to read or pass it.
    unread: usize,
}

/// A buffer of `capacity` values (at least one), and its first sender.
pub(crate) fn buffer<T>(capacity: usize) -> Sender<T> {
    let state = State {
        slots: VecDeque::new(),
        first: 0,
        capacity: capacity.max(1),
        senders: 1,
        wakers: Vec::new(),
        free: Vec::new(),
        waiting: 0,
    };
    Sender {
        shared: Arc::new(Mutex::new(state)),
    }
}

impl<T> State<T> {
    /// The receivers there are.
    fn receivers(&self) -> usize {
        self.wakers.len() - self.free.len()
    }

    /// Drops the slots at the front that nobody is left to read.
    fn trim(&mut self) {
        while self.slots.front().is_some_and(|slot| slot.unread == 0) {
            self.slots.pop_front();
            self.first += 1;
        }
    }

    /// Takes up to `WAKE_BATCH` wakers; `true` if more are left.
    fn take_wakers(&mut self, batch: &mut [Option<Waker>; WAKE_BATCH]) -> bool {
        let mut taken = 0;
        for waker in &mut self.wakers {
            if taken == WAKE_BATCH {
                break;
            }
            if let Some(waker) = waker.take() {
                batch[taken] = Some(waker);
                taken += 1;
            }
        }
        self.waiting -= taken;
        self.waiting > 0
    }
}

/// Wakes every receiver waiting on `shared` (whose lock `state` is), a batch at a time,
/// none while the lock is held.
fn wake_all<'a, T>(shared: &'a Mutex<State<T>>, mut state: MutexGuard<'a, State<T>>) {
    // most values are sent while nobody waits: no batch is made (or dropped) for them
    if state.waiting == 0 {
        return;
    }
    let mut batch: [Option<Waker>; WAKE_BATCH] = Default::default();
    loop {
        let more = state.take_wakers(&mut batch);
        drop(state);
        for waker in batch.iter_mut().filter_map(Option::take) {
            waker.wake();
        }
        if !more {
            return;
        }
        state = lock(shared);
    }
}

impl<T> Sender<T> {
    /// Appends `value` for every current receiver (dropping the oldest value if the buffer
    /// is full) and wakes those that wait. With no receiver, `value` is dropped.
    pub(crate) fn send(&self, value: T) {
        let mut state = lock(&self.shared);
        let unread = state.receivers();
        if unread == 0 {
            return;
        }
        state.slots.push_back(Slot {
            value: Some(value),
            unread,
        });
        if state.slots.len() > state.capacity {
            state.slots.pop_front();
            state.first += 1;
        }
        wake_all(&self.shared, state);
    }

    /// A receiver of the values sent from now on.
    pub(crate) fn subscribe(&self) -> Receiver<T> {
        let mut state = lock(&self.shared);
        let waker = match state.free.pop() {
            Some(index) => index,
            None => {
                state.wakers.push(None);
                state.wakers.len() - 1
            }
        };
        Receiver {
            next: state.first + state.slots.len() as u64,
            shared: Arc::clone(&self.shared),
            waker,
        }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        lock(&self.shared).senders += 1;
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = lock(&self.shared);
        state.senders -= 1;
        if state.senders == 0 {
            wake_all(&self.shared, state);
        }
    }
}

impl<T: Clone> Receiver<T> {
    /// The next value that `wants` accepts; those it refuses are passed over (neither
    /// cloned nor taken). Cancel-safe: nothing is read unless a value is returned.
    pub(crate) async fn recv_where(&mut self, wants: impl Fn(&T) -> bool) -> Result<T, Missed> {
        poll_fn(|cx| {
            let mut state = lock(&self.shared);
            if self.next < state.first {
                let missed = state.first - self.next;
                self.next = state.first;
                return Poll::Ready(Err(Missed::Lagged(missed)));
            }
            let mut found = None;
            while let Some(slot) = usize::try_from(self.next - state.first)
                .ok()
                .and_then(|index| state.slots.get_mut(index))
            {
                self.next += 1;
                slot.unread -= 1;
                let wanted = slot.value.as_ref().is_some_and(&wants);
                let last = slot.unread == 0;
                if wanted {
                    found = if last {
                        slot.value.take()
                    } else {
                        slot.value.clone()
                    };
                } else if last {
                    slot.value = None;
                }
                if found.is_some() {
                    break;
                }
            }
            state.trim();
            if let Some(value) = found {
                return Poll::Ready(Ok(value));
            }
            if state.senders == 0 {
                return Poll::Ready(Err(Missed::Closed));
            }
            let index = self.waker;
            match &mut state.wakers[index] {
                Some(waker) => waker.clone_from(cx.waker()),
                empty => {
                    *empty = Some(cx.waker().clone());
                    state.waiting += 1;
                }
            }
            Poll::Pending
        })
        .await
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = lock(&self.shared);
        let start = usize::try_from(self.next.saturating_sub(state.first)).unwrap_or(usize::MAX);
        for slot in state.slots.iter_mut().skip(start) {
            slot.unread -= 1;
            if slot.unread == 0 {
                slot.value = None;
            }
        }
        state.trim();
        if state.wakers[self.waker].take().is_some() {
            state.waiting -= 1;
        }
        state.free.push(self.waker);
    }
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use super::*;

    /// The next value `wants` accepts, if one is there now.
    fn ready_where<T: Clone>(
        rx: &mut Receiver<T>,
        wants: impl Fn(&T) -> bool,
    ) -> Option<Result<T, Missed>> {
        futures_util::FutureExt::now_or_never(rx.recv_where(wants))
    }

    fn ready<T: Clone>(rx: &mut Receiver<T>) -> Option<Result<T, Missed>> {
        ready_where(rx, |_| true)
    }

    /// A buffer of `capacity` with two receivers.
    fn two_receivers(capacity: usize) -> (Sender<i32>, Receiver<i32>, Receiver<i32>) {
        let tx = buffer(capacity);
        let (a, b) = (tx.subscribe(), tx.subscribe());
        (tx, a, b)
    }

    #[test]
    fn every_receiver_reads_every_value_in_order_the_last_one_taking_it() {
        let tx = buffer(8);
        let (mut a, mut b) = (tx.subscribe(), tx.subscribe());
        for n in 0..3 {
            tx.send(Arc::new(n));
        }
        let first = ready(&mut a).unwrap().unwrap();
        // `b` has not read it: `a` got a clone of what the buffer still holds
        assert_eq!(Arc::strong_count(&first), 2);
        let last = ready(&mut b).unwrap().unwrap();
        drop(first);
        // `b` was the last: it took the buffer's own
        assert_eq!(Arc::strong_count(&last), 1);
        for rx in [&mut a, &mut b] {
            assert_eq!(*ready(rx).unwrap().unwrap(), 1);
            assert_eq!(*ready(rx).unwrap().unwrap(), 2);
            assert!(ready(rx).is_none());
        }
        assert!(lock(&tx.shared).slots.is_empty());
    }

    #[test]
    fn a_receiver_sees_only_what_is_sent_after_it_subscribes() {
        let tx = buffer(8);
        let mut early = tx.subscribe();
        tx.send(1);
        let mut late = tx.subscribe();
        tx.send(2);
        assert_eq!(ready(&mut early), Some(Ok(1)));
        assert_eq!(ready(&mut early), Some(Ok(2)));
        assert_eq!(ready(&mut late), Some(Ok(2)));
        assert!(lock(&tx.shared).slots.is_empty());
    }

    #[test]
    fn a_receiver_that_falls_behind_is_told_how_many_it_missed() {
        let (tx, mut slow, mut fast) = two_receivers(2);
        for n in 0..5 {
            tx.send(n);
            assert_eq!(ready(&mut fast), Some(Ok(n)));
        }
        assert_eq!(ready(&mut slow), Some(Err(Missed::Lagged(3))));
        assert_eq!(ready(&mut slow), Some(Ok(3)));
        assert_eq!(ready(&mut slow), Some(Ok(4)));
        assert!(ready(&mut slow).is_none());
    }

    #[test]
    fn values_passed_over_are_not_read_and_dropped_when_nobody_is_left() {
        let (tx, mut odd, mut all) = two_receivers(8);
        for n in 0..4 {
            tx.send(n);
        }
        let odd_only = |n: &i32| n % 2 == 1;
        let odd_ones = [
            ready_where(&mut odd, odd_only),
            ready_where(&mut odd, odd_only),
        ];
        assert_eq!(odd_ones, [Some(Ok(1)), Some(Ok(3))]);
        for n in 0..4 {
            assert_eq!(ready(&mut all), Some(Ok(n)));
        }
        assert!(lock(&tx.shared).slots.is_empty());
    }

    #[test]
    fn a_dropped_receiver_releases_what_it_did_not_read_and_its_waker() {
        let tx = buffer(8);
        let mut kept = tx.subscribe();
        let dropped = tx.subscribe();
        tx.send(Arc::new(0));
        let value = ready(&mut kept).unwrap().unwrap();
        assert_eq!(Arc::strong_count(&value), 2);
        drop(dropped);
        assert_eq!(Arc::strong_count(&value), 1);
        assert!(lock(&tx.shared).slots.is_empty());
        // its index is used again
        let _again = tx.subscribe();
        assert_eq!(lock(&tx.shared).wakers.len(), 2);
    }

    #[test]
    fn with_no_receiver_a_value_is_dropped_at_once() {
        let tx = buffer(8);
        let value = Arc::new(0);
        tx.send(Arc::clone(&value));
        assert_eq!(Arc::strong_count(&value), 1);
    }

    /// Counts its wakes.
    struct Counter(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn a_waiting_receiver_is_woken_by_a_send_and_told_when_the_senders_are_gone() {
        let counter = Arc::new(Counter(Default::default()));
        let waker = Waker::from(Arc::clone(&counter));
        let mut cx = std::task::Context::from_waker(&waker);
        let woken = || counter.0.load(std::sync::atomic::Ordering::SeqCst);
        let tx = buffer(8);
        let mut rx = tx.subscribe();
        {
            let mut next = std::pin::pin!(rx.recv_where(|_| true));
            assert!(next.as_mut().poll(&mut cx).is_pending());
            tx.send(7);
            assert_eq!(woken(), 1);
            assert_eq!(next.as_mut().poll(&mut cx), Poll::Ready(Ok(7)));
        }
        let other = tx.clone();
        let mut next = std::pin::pin!(rx.recv_where(|_| true));
        assert!(next.as_mut().poll(&mut cx).is_pending());
        drop(tx);
        assert_eq!(woken(), 1, "a sender is left");
        drop(other);
        assert_eq!(woken(), 2);
        assert_eq!(
            next.as_mut().poll(&mut cx),
            Poll::Ready(Err(Missed::Closed))
        );
    }
}
