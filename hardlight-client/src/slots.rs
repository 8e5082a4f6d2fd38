//! The in-flight limit of one connection's calls: a count of free slots that a call takes
//! and gives back with one atomic operation each. Only a call that finds no slot free
//! waits, told when one is given back; a semaphore would take a lock on every give-back
//! to look for waiters.

use std::{
    pin::pin,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
};

use tokio::sync::Notify;

/// The slots of one connection.
#[derive(Debug)]
pub(crate) struct Slots {
    free: AtomicUsize,
    /// Calls waiting for a slot: a slot given back tells one of them.
    waiting: AtomicUsize,
    closed: AtomicBool,
    given_back: Notify,
}

/// The slots are closed: the connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

/// One slot, given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    slots: Arc<Slots>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // a waiter counts itself before it looks for a slot, and a slot is counted free
        // before its waiters are looked for: one of the two sees the other
        self.slots.free.fetch_add(1, Ordering::SeqCst);
        if self.slots.waiting.load(Ordering::SeqCst) > 0 {
            self.slots.given_back.notify_one();
        }
    }
}

impl Slots {
    /// `count` slots, all free.
    pub(crate) fn new(count: usize) -> Arc<Self> {
        Arc::new(Self {
            free: AtomicUsize::new(count),
            waiting: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            given_back: Notify::new(),
        })
    }

    /// A slot if one is free now.
    pub(crate) fn try_take(self: &Arc<Self>) -> Result<Option<Slot>, Closed> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Closed);
        }
        let mut free = self.free.load(Ordering::SeqCst);
        loop {
            if free == 0 {
                return Ok(None);
            }
            match self.free.compare_exchange_weak(
                free,
                free - 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => {
                    return Ok(Some(Slot {
                        slots: Arc::clone(self),
                    }))
                }
                Err(now) => free = now,
            }
        }
    }

    /// A slot, once one is free.
    pub(crate) async fn take(self: &Arc<Self>) -> Result<Slot, Closed> {
        if let Some(slot) = self.try_take()? {
            return Ok(slot);
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _counted = Waiting(self);
        loop {
            let mut told = pin!(self.given_back.notified());
            // from here a slot given back (or the close) wakes this call
            told.as_mut().enable();
            if let Some(slot) = self.try_take()? {
                return Ok(slot);
            }
            told.await;
        }
    }

    /// No more slots: waiting calls, and later ones, get [`Closed`].
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.given_back.notify_waiters();
    }

    /// Slots free now.
    #[cfg(test)]
    pub(crate) fn free(&self) -> usize {
        self.free.load(Ordering::SeqCst)
    }
}

/// A call counted among the waiting until it stops waiting (it took a slot, or was
/// dropped).
struct Waiting<'a>(&'a Slots);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
        // a slot given back for this call while it was leaving goes to another
        if self.0.free.load(Ordering::SeqCst) > 0 && self.0.waiting.load(Ordering::SeqCst) > 0 {
            self.0.given_back.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{future::Future, task::Poll};

    use super::*;

    fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        future.poll(&mut cx)
    }

    #[test]
    fn slots_are_taken_and_given_back() {
        let slots = Slots::new(2);
        let first = slots.try_take().unwrap().unwrap();
        let _second = slots.try_take().unwrap().unwrap();
        assert!(slots.try_take().unwrap().is_none());
        drop(first);
        assert_eq!(slots.free(), 1);
        assert!(slots.try_take().unwrap().is_some());
        assert_eq!(slots.free(), 1);
    }

    #[test]
    fn a_waiting_call_gets_the_slot_given_back() {
        let slots = Slots::new(1);
        let held = slots.try_take().unwrap().unwrap();
        let mut waiting = pin!(slots.take());
        assert!(poll_once(waiting.as_mut()).is_pending());
        drop(held);
        match poll_once(waiting.as_mut()) {
            Poll::Ready(Ok(_slot)) => {}
            other => panic!("expected the slot, got {other:?}"),
        }
        assert_eq!(slots.waiting.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_waiting_call_dropped_passes_its_turn_on() {
        let slots = Slots::new(1);
        let held = slots.try_take().unwrap().unwrap();
        let mut first = Box::pin(slots.take());
        let mut second = pin!(slots.take());
        assert!(poll_once(first.as_mut()).is_pending());
        assert!(poll_once(second.as_mut()).is_pending());
        drop(held);
        drop(first);
        assert!(matches!(poll_once(second.as_mut()), Poll::Ready(Ok(_))));
    }

    #[test]
    fn closing_fails_waiting_and_later_calls() {
        let slots = Slots::new(1);
        let _held = slots.try_take().unwrap().unwrap();
        let mut waiting = pin!(slots.take());
        assert!(poll_once(waiting.as_mut()).is_pending());
        slots.close();
        assert!(matches!(
            poll_once(waiting.as_mut()),
            Poll::Ready(Err(Closed))
        ));
        assert_eq!(slots.try_take().unwrap_err(), Closed);
    }
}
