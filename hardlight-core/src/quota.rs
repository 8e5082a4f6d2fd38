//! A count of units (a connection's call slots, its bytes in flight) that takers hold
//! and give back, each with one atomic operation while nobody waits. Takers that find
//! too few wait in a fair line (first come, first served: a large taker is not passed by
//! small ones behind it), and while any waits, units given back go to the line first:
//! only what it holds beyond its takers' needs is anyone's. A semaphore alone takes its
//! waiter list's lock on every give-back to look for waiters.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use hardlight_core::quota::Quota;
//! let quota = Quota::new(100);
//! let share = quota.try_take(60).unwrap().expect("60 of 100 are free");
//! assert!(quota.try_take(50).unwrap().is_none(), "40 are left");
//! drop(share);
//! assert_eq!(quota.take(100).await.unwrap().units(), 100);
//! # });
//! ```

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use tokio::sync::Semaphore;

/// A count of units shared by takers.
#[derive(Debug)]
pub struct Quota {
    /// Units free to take without waiting (while nobody waits).
    free: AtomicUsize,
    /// Takers in line.
    waiting: AtomicUsize,
    /// The line: units handed over to waiting takers, in the order they came; closed
    /// with the quota.
    line: Semaphore,
}

/// The quota is closed: its owner (a connection) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

/// Units taken from a [`Quota`], given back when dropped.
#[derive(Debug)]
pub struct Held {
    quota: Arc<Quota>,
    units: usize,
}

impl Held {
    /// The units held.
    pub fn units(&self) -> usize {
        self.units
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.quota.give_back(self.units);
    }
}

/// Units lent by a [`Quota`] to a taker that borrows it, given back when dropped: a
/// [`Held`] without a count of the quota's owners taken and dropped for it.
#[derive(Debug)]
pub struct Lent<'a> {
    quota: &'a Quota,
    units: usize,
}

impl Lent<'_> {
    /// Hands the units over without giving them back: whoever ends up holding them gives
    /// them back with [`Quota::give_back`] (a queue's reader, for many at once).
    #[inline]
    pub fn into_units(mut self) -> usize {
        std::mem::take(&mut self.units)
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        self.quota.give_back(self.units);
    }
}

impl Quota {
    /// `units` units, all free (at most [`Semaphore::MAX_PERMITS`]).
    pub fn new(units: usize) -> Arc<Self> {
        Arc::new(Self {
            free: AtomicUsize::new(units.min(Semaphore::MAX_PERMITS)),
            waiting: AtomicUsize::new(0),
            line: Semaphore::new(0),
        })
    }

    /// `units` if they are free now: free, or handed to the line beyond what those
    /// waiting in it need.
    pub fn try_take(self: &Arc<Self>, units: u32) -> Result<Option<Held>, Closed> {
        Ok(self.try_lend(units)?.map(|lent| self.hold(lent)))
    }

    /// [`try_take`](Quota::try_take) for a taker that borrows the quota.
    #[inline]
    pub fn try_lend(&self, units: u32) -> Result<Option<Lent<'_>>, Closed> {
        if self.line.is_closed() {
            return Err(Closed);
        }
        let lent = if self.waiting.load(Ordering::SeqCst) == 0 {
            self.free
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |free| {
                    free.checked_sub(units as usize)
                })
                .is_ok()
        } else {
            // the line serves its takers first: what it holds beyond them is anyone's
            self.line
                .try_acquire_many(units)
                .map(|spare| spare.forget())
                .is_ok()
        };
        // made only if lent: a `Lent` dropped gives its units back
        Ok(lent.then(|| Lent {
            quota: self,
            units: units as usize,
        }))
    }

    /// `units`, once they are free and those who waited before have theirs. Units more
    /// than the quota holds are never granted: the caller bounds what it asks for.
    /// Cancel-safe: dropped before it completes, it holds nothing.
    pub async fn take(self: &Arc<Self>, units: u32) -> Result<Held, Closed> {
        Ok(self.hold(self.lend(units).await?))
    }

    /// [`take`](Quota::take) for a taker that borrows the quota.
    pub async fn lend(&self, units: u32) -> Result<Lent<'_>, Closed> {
        if let Some(lent) = self.try_lend(units)? {
            return Ok(lent);
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _in_line = InLine(self);
        // the free units (given back before this taker counted itself, or too few for
        // it) go to the line, where those ahead of it are served first
        self.hand_over();
        let handed = self.line.acquire_many(units).await.map_err(|_| Closed)?;
        handed.forget();
        Ok(Lent {
            quota: self,
            units: units as usize,
        })
    }

    /// The units of `lent` (by this quota), held with a count of the quota's owners: for
    /// a taker that goes on without the quota's owner.
    pub fn hold(self: &Arc<Self>, lent: Lent<'_>) -> Held {
        debug_assert!(std::ptr::eq(lent.quota, &**self));
        Held {
            quota: Arc::clone(self),
            units: lent.into_units(),
        }
    }

    /// Gives back `units` taken earlier (by a [`Lent`] handed over with
    /// [`Lent::into_units`]).
    #[inline]
    pub fn give_back(&self, units: usize) {
        if units == 0 {
            return;
        }
        // counted free before the line is looked at, while a taker joining the line counts
        // itself before it looks for free units: one of the two sees the other
        self.free.fetch_add(units, Ordering::SeqCst);
        self.hand_over();
    }

    /// While takers wait, free units go to the line.
    fn hand_over(&self) {
        if self.waiting.load(Ordering::SeqCst) == 0 {
            return;
        }
        let free = self.free.swap(0, Ordering::SeqCst);
        if free > 0 {
            self.line.add_permits(free);
        }
    }

    /// No more units: waiting takers, and later ones, get [`Closed`].
    pub fn close(&self) {
        self.line.close();
    }

    /// Units free now (free or handed to the line and not yet taken).
    pub fn available(&self) -> usize {
        self.free.load(Ordering::SeqCst) + self.line.available_permits()
    }
}

/// A taker counted in line until it leaves it (with its units, or dropped). The last to
/// leave takes back the units handed over that nobody took.
struct InLine<'a>(&'a Quota);

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        let quota = self.0;
        if quota.waiting.fetch_sub(1, Ordering::SeqCst) != 1 {
            return;
        }
        let left = quota.line.available_permits();
        let taken = quota.line.forget_permits(left);
        quota.free.fetch_add(taken, Ordering::SeqCst);
        // a taker that joined the line meanwhile gets them back
        quota.hand_over();
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
    fn units_are_taken_and_given_back() {
        let quota = Quota::new(2);
        let first = quota.try_take(1).unwrap().unwrap();
        let _second = quota.try_take(1).unwrap().unwrap();
        assert!(quota.try_take(1).unwrap().is_none());
        drop(first);
        assert_eq!(quota.available(), 1);
        assert!(quota.try_take(1).unwrap().is_some());
        assert_eq!(quota.available(), 1);
    }

    #[test]
    fn lent_units_are_given_back_when_dropped_or_kept_when_handed_over() {
        let quota = Quota::new(2);
        let lent = quota.try_lend(2).unwrap().unwrap();
        assert!(quota.try_lend(1).unwrap().is_none());
        drop(lent);
        assert_eq!(quota.available(), 2);
        let handed = quota.try_lend(1).unwrap().unwrap().into_units();
        assert_eq!((handed, quota.available()), (1, 1));
        quota.give_back(handed);
        assert_eq!(quota.available(), 2);
    }

    #[test]
    fn waiting_takers_are_served_in_the_order_they_came_and_newcomers_wait_behind() {
        let quota = Quota::new(1);
        let held = quota.try_take(1).unwrap().unwrap();
        let mut first = pin!(quota.take(1));
        let mut second = pin!(quota.take(1));
        assert!(poll_once(first.as_mut()).is_pending());
        assert!(poll_once(second.as_mut()).is_pending());
        drop(held);
        // the unit given back is the first waiter's, not a newcomer's
        assert!(quota.try_take(1).unwrap().is_none());
        assert!(poll_once(second.as_mut()).is_pending());
        let Poll::Ready(Ok(first_share)) = poll_once(first.as_mut()) else {
            panic!("the first in line gets the unit");
        };
        drop(first_share);
        assert!(matches!(poll_once(second.as_mut()), Poll::Ready(Ok(_))));
        // nobody waits: units are taken without the line again
        assert_eq!(quota.waiting.load(Ordering::SeqCst), 0);
        assert_eq!(quota.available(), 1);
        assert!(quota.try_take(1).unwrap().is_some());
    }

    #[test]
    fn units_beyond_what_the_line_needs_are_anyones() {
        let quota = Quota::new(3);
        let held = quota.try_take(3).unwrap().unwrap();
        let mut waiting = pin!(quota.take(1));
        assert!(poll_once(waiting.as_mut()).is_pending());
        drop(held);
        // one of the three is the waiting taker's; the other two are free to a newcomer
        let newcomer = quota.try_take(2).unwrap().expect("two units to spare");
        assert!(quota.try_take(1).unwrap().is_none());
        let Poll::Ready(Ok(first)) = poll_once(waiting.as_mut()) else {
            panic!("the waiting taker has its unit");
        };
        drop(newcomer);
        assert_eq!(quota.available(), 2);
        drop(first);
        assert_eq!(quota.available(), 3);
    }

    #[test]
    fn a_large_taker_is_not_passed_by_small_ones_behind_it() {
        let quota = Quota::new(10);
        let held = quota.try_take(8).unwrap().unwrap();
        let mut large = pin!(quota.take(10));
        assert!(poll_once(large.as_mut()).is_pending());
        // 2 units are free, but a taker is in line: a small one waits behind it
        let mut small = pin!(quota.take(1));
        assert!(poll_once(small.as_mut()).is_pending());
        assert!(quota.try_take(1).unwrap().is_none());
        drop(held);
        assert!(poll_once(small.as_mut()).is_pending());
        let Poll::Ready(Ok(all)) = poll_once(large.as_mut()) else {
            panic!("the large taker, first in line, gets its units");
        };
        assert_eq!(all.units(), 10);
        assert!(poll_once(small.as_mut()).is_pending());
        drop(all);
        assert!(matches!(poll_once(small.as_mut()), Poll::Ready(Ok(_))));
    }

    #[test]
    fn a_waiting_taker_dropped_leaves_its_units_to_the_others() {
        let quota = Quota::new(1);
        let held = quota.try_take(1).unwrap().unwrap();
        let mut first = Box::pin(quota.take(1));
        assert!(poll_once(first.as_mut()).is_pending());
        drop(held);
        // handed to the line, then the only taker in it leaves
        drop(first);
        assert_eq!(quota.waiting.load(Ordering::SeqCst), 0);
        assert!(
            quota.try_take(1).unwrap().is_some(),
            "the unit is free again"
        );
    }

    #[test]
    fn closing_fails_waiting_and_later_takers() {
        let quota = Quota::new(1);
        let _held = quota.try_take(1).unwrap().unwrap();
        let mut waiting = pin!(quota.take(1));
        assert!(poll_once(waiting.as_mut()).is_pending());
        quota.close();
        assert!(matches!(
            poll_once(waiting.as_mut()),
            Poll::Ready(Err(Closed))
        ));
        assert_eq!(quota.try_take(1).unwrap_err(), Closed);
    }
}
