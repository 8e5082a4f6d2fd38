//! A multiplexed connection's call slots (as many as the server's `max_concurrent_calls`)
//! and the line of those waiting for one, first come, first served. Kept beside the call
//! table, under its lock: a call takes its slot and its place in the table at once, and
//! a call that ends hands its slot to the first in line. A call in line is then sent by
//! the multiplexer at once, with no task woken and nothing allocated for the wait (woken
//! only if the writer's queue is full); a taker of a slot for a call on a stream of its
//! own is woken.
//!
//! Those in line are named by their ids in the call table. One that leaves before its
//! turn (its call dropped) stays in the line until it is reached or the line is swept:
//! once at least 32 have left, and they are half the line, it keeps only those still
//! waiting.

use std::collections::VecDeque;

/// Line entries gone before a sweep is worth its pass over the line.
const SWEEP_AFTER: usize = 32;

/// Slots free, and who waits for one.
#[derive(Debug)]
pub(crate) struct Slots {
    /// Slots no call holds. While any is free, nobody waits.
    free: usize,
    /// Ids waiting for a slot, in the order they came; some may be gone.
    line: VecDeque<u64>,
    /// Ids that left the line since it was last swept (some may have been reached since).
    gone: usize,
}

impl Slots {
    /// `slots` slots, all free.
    pub(crate) fn new(slots: usize) -> Self {
        Self {
            free: slots,
            line: VecDeque::new(),
            gone: 0,
        }
    }

    /// Takes a free slot; `false` if none is: the taker joins the line.
    pub(crate) fn take(&mut self) -> bool {
        let free = self.free > 0;
        if free {
            self.free -= 1;
        }
        free
    }

    /// `id` waits for a slot, behind those already waiting.
    pub(crate) fn join(&mut self, id: u64) {
        self.line.push_back(id);
    }

    /// A slot is given back: the first of those in line for which `waiting` holds gets it
    /// (returned), or it is free.
    pub(crate) fn pass_on(&mut self, mut waiting: impl FnMut(u64) -> bool) -> Option<u64> {
        while let Some(id) = self.line.pop_front() {
            if waiting(id) {
                return Some(id);
            }
        }
        self.free += 1;
        self.gone = 0;
        None
    }

    /// An id left the line before its turn; `waiting` tells those still in it, for a
    /// sweep.
    pub(crate) fn left(&mut self, waiting: impl FnMut(&u64) -> bool) {
        self.gone += 1;
        if self.gone >= SWEEP_AFTER && 2 * self.gone >= self.line.len() {
            self.line.retain(waiting);
            self.gone = 0;
        }
    }

    /// The connection closed: nobody waits any more.
    pub(crate) fn close(&mut self) {
        self.line = VecDeque::new();
        self.gone = 0;
    }

    /// Slots free now.
    #[cfg(test)]
    pub(crate) fn free(&self) -> usize {
        self.free
    }

    /// Entries in the line, gone ones included.
    #[cfg(test)]
    pub(crate) fn in_line(&self) -> usize {
        self.line.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn slots_are_taken_until_none_is_free_and_given_back_to_the_line_in_order() {
        let mut slots = Slots::new(2);
        assert!(slots.take() && slots.take());
        assert!(!slots.take());
        slots.join(7);
        slots.join(8);
        assert_eq!(slots.pass_on(|_| true), Some(7));
        assert_eq!(slots.pass_on(|_| true), Some(8));
        assert_eq!(slots.free(), 0);
        assert_eq!(slots.pass_on(|_| true), None);
        assert_eq!(slots.free(), 1);
        assert!(slots.take());
    }

    #[test]
    fn those_gone_from_the_line_are_passed_over() {
        let mut slots = Slots::new(0);
        (1..=3).for_each(|id| slots.join(id));
        let waiting: HashSet<u64> = [3].into();
        slots.left(|id| waiting.contains(id));
        slots.left(|id| waiting.contains(id));
        assert_eq!(slots.pass_on(|id| waiting.contains(&id)), Some(3));
        assert_eq!(slots.pass_on(|id| waiting.contains(&id)), None);
        assert_eq!(slots.free(), 1);
    }

    #[test]
    fn a_line_mostly_gone_is_swept() {
        let mut slots = Slots::new(0);
        let ids = 1..=(4 * SWEEP_AFTER as u64);
        ids.clone().for_each(|id| slots.join(id));
        // all but the last leave: the line is swept as soon as those gone are half of it
        let last = 4 * SWEEP_AFTER as u64;
        let mut gone = HashSet::new();
        for id in ids.take(4 * SWEEP_AFTER - 1) {
            gone.insert(id);
            slots.left(|id| !gone.contains(id));
        }
        assert!(slots.in_line() < 2 * SWEEP_AFTER);
        assert_eq!(slots.pass_on(|id| !gone.contains(&id)), Some(last));
    }
}
