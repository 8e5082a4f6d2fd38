//! The in-flight limit of one connection's calls: a count of free slots that a call takes
//! and gives back with one atomic operation each while no call waits. Calls that find no
//! slot wait in line (a fair semaphore, first come first served), and while any call
//! waits, a slot given back goes to the line, not to whichever call comes next. A
//! semaphore alone would take a lock on every give-back to look for waiters.

use std::sync::{
    atomic::{AtomicBool, AtomicUsize, Ordering},
    Arc,
};

use tokio::sync::Semaphore;

/// The slots of one connection.
#[derive(Debug)]
pub(crate) struct Slots {
    /// Slots free to take without waiting (while no call waits).
    free: AtomicUsize,
    /// Calls in line.
    waiting: AtomicUsize,
    closed: AtomicBool,
    /// The line: slots handed over to waiting calls, in the order they came.
    line: Semaphore,
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
        // counted free before the line is looked at, while a call joining the line counts
        // itself before it looks for a free slot: one of the two sees the other
        self.slots.free.fetch_add(1, Ordering::SeqCst);
        self.slots.hand_over();
    }
}

impl Slots {
    /// `count` slots, all free.
    pub(crate) fn new(count: usize) -> Arc<Self> {
        Arc::new(Self {
            free: AtomicUsize::new(count),
            waiting: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            line: Semaphore::new(0),
        })
    }

    /// A slot if one is free now and no call is waiting for one.
    pub(crate) fn try_take(self: &Arc<Self>) -> Result<Option<Slot>, Closed> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Closed);
        }
        if self.waiting.load(Ordering::SeqCst) > 0 {
            return Ok(None);
        }
        Ok(self.take_free())
    }

    /// A free slot, if there is one.
    fn take_free(self: &Arc<Self>) -> Option<Slot> {
        self.free
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |free| {
                free.checked_sub(1)
            })
            .ok()
            .map(|_| Slot {
                slots: Arc::clone(self),
            })
    }

    /// A slot, once one is free and the calls that waited before this one have theirs.
    pub(crate) async fn take(self: &Arc<Self>) -> Result<Slot, Closed> {
        if let Some(slot) = self.try_take()? {
            return Ok(slot);
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _in_line = InLine(self);
        // a slot given back before this call counted itself is still free
        if let Some(slot) = self.take_free() {
            return Ok(slot);
        }
        let handed = self.line.acquire().await.map_err(|_| Closed)?;
        handed.forget();
        Ok(Slot {
            slots: Arc::clone(self),
        })
    }

    /// While calls wait, free slots go to the line.
    fn hand_over(&self) {
        if self.waiting.load(Ordering::SeqCst) == 0 {
            return;
        }
        let free = self.free.swap(0, Ordering::SeqCst);
        if free > 0 {
            self.line.add_permits(free);
        }
    }

    /// No more slots: waiting calls, and later ones, get [`Closed`].
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.line.close();
    }

    /// Slots free now.
    #[cfg(test)]
    pub(crate) fn free(&self) -> usize {
        self.free.load(Ordering::SeqCst) + self.line.available_permits()
    }
}

/// A call counted in line until it leaves it (with a slot, or dropped). The last to
/// leave takes back the slots handed over that no call took.
struct InLine<'a>(&'a Slots);

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        let slots = self.0;
        if slots.waiting.fetch_sub(1, Ordering::SeqCst) != 1 {
            return;
        }
        let left = slots.line.available_permits();
        let taken = slots.line.forget_permits(left);
        slots.free.fetch_add(taken, Ordering::SeqCst);
        // a call that joined the line meanwhile gets them back
        slots.hand_over();
    }
}

#[cfg(test)]
mod tests {
    use std::{future::Future, pin::pin, task::Poll};

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
    fn waiting_calls_get_slots_in_the_order_they_came_and_newcomers_wait_behind() {
        let slots = Slots::new(1);
        let held = slots.try_take().unwrap().unwrap();
        let mut first = pin!(slots.take());
        let mut second = pin!(slots.take());
        assert!(poll_once(first.as_mut()).is_pending());
        assert!(poll_once(second.as_mut()).is_pending());
        drop(held);
        // the slot given back is the first waiter's, not a newcomer's
        assert!(slots.try_take().unwrap().is_none());
        assert!(poll_once(second.as_mut()).is_pending());
        let Poll::Ready(Ok(first_slot)) = poll_once(first.as_mut()) else {
            panic!("the first call in line gets the slot");
        };
        drop(first_slot);
        assert!(matches!(poll_once(second.as_mut()), Poll::Ready(Ok(_))));
        // nobody waits: slots are taken without the line again
        assert_eq!(slots.waiting.load(Ordering::SeqCst), 0);
        assert_eq!(slots.free(), 1);
        assert!(slots.try_take().unwrap().is_some());
    }

    #[test]
    fn a_waiting_call_dropped_leaves_its_slot_to_the_others() {
        let slots = Slots::new(1);
        let held = slots.try_take().unwrap().unwrap();
        let mut first = Box::pin(slots.take());
        assert!(poll_once(first.as_mut()).is_pending());
        drop(held);
        // handed to the line, then the only call in it leaves
        drop(first);
        assert_eq!(slots.waiting.load(Ordering::SeqCst), 0);
        assert!(
            slots.try_take().unwrap().is_some(),
            "the slot is free again"
        );
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
