//! The calls a client has in flight on one multiplexed connection, by the ids it gave
//! them. The client chooses its ids, so it chooses them to index the table: call `id`
//! lives at `id % capacity`. An id whose place is taken (by a call still in flight from
//! long ago) is skipped, so ids only grow and are never reused on a connection, and
//! every lookup is one index and one comparison: no hashing, no probing. The table
//! doubles as calls come (calls waiting for a slot are in it too), and gives back what a
//! burst grew it to: after as many calls ended as it has places, if it never held more
//! than an eighth of them meanwhile, it shrinks to four times the most it held (or more,
//! for the calls' ids to keep different places). Calls in flight together come and go in
//! waves (all replies of a batch taken, then as many calls made), so the most it held,
//! not the calls at the moment, tells the room it needs.

use hardlight_core::calls::CallRefused;

/// Places the table starts with.
const FIRST_CAPACITY: usize = 16;

/// Calls in flight by id, each waiting with a `T`.
#[derive(Debug)]
pub(crate) struct Outstanding<T> {
    /// `places[id % places.len()]`: a power-of-two count, at least twice the calls in it.
    places: Vec<Option<(u64, T)>>,
    /// The next id to try; ids start at 1 (0 marks a frame of no call).
    next_id: u64,
    len: usize,
    /// The most calls in the table since the places were last looked at.
    peak: usize,
    /// Calls ended since the places were last looked at.
    ended: usize,
    closed: bool,
}

impl<T> Outstanding<T> {
    /// An empty, open table.
    pub(crate) fn new() -> Self {
        Self {
            places: Vec::new(),
            next_id: 1,
            len: 0,
            peak: 0,
            ended: 0,
            closed: false,
        }
    }

    /// Enters a call waiting with `waiter`; returns its id.
    pub(crate) fn insert(&mut self, waiter: T) -> Result<u64, CallRefused> {
        if self.closed {
            return Err(CallRefused::Closed);
        }
        if 2 * (self.len + 1) > self.places.len() {
            self.grow();
        }
        // at most half the places are taken: a free one is never far
        let mask = self.places.len() as u64 - 1;
        loop {
            let id = self.next_id;
            self.next_id = id.wrapping_add(1).max(1);
            let place = &mut self.places[(id & mask) as usize];
            if place.is_none() {
                *place = Some((id, waiter));
                self.len += 1;
                self.peak = self.peak.max(self.len);
                return Ok(id);
            }
        }
    }

    /// Doubles the places. Calls in different places keep different places: their ids
    /// differ in the bits that chose them, which the larger mask keeps.
    fn grow(&mut self) {
        self.move_to((2 * self.places.len()).max(FIRST_CAPACITY));
    }

    /// Moves every call to its place among `capacity` (a power of two) places.
    fn move_to(&mut self, capacity: usize) {
        let old = std::mem::take(&mut self.places);
        self.places.resize_with(capacity, || None);
        let mask = capacity as u64 - 1;
        for (id, waiter) in old.into_iter().flatten() {
            self.places[(id & mask) as usize] = Some((id, waiter));
        }
    }

    /// As many calls ended as there are places: if the table never held more than an
    /// eighth of them meanwhile, the places shrink to four times the most it held (a power
    /// of two, at least [`FIRST_CAPACITY`]), or to the first size above that where no two
    /// calls' ids share a place (a call in flight from long ago). A look costs at most a
    /// few passes over the places, paid for by the calls that ended before it. Out of
    /// line: the removal it follows stays small.
    #[cold]
    #[inline(never)]
    fn look_at_places(&mut self) {
        let peak = std::mem::replace(&mut self.peak, self.len);
        self.ended = 0;
        let mut capacity = (4 * peak).next_power_of_two().max(FIRST_CAPACITY);
        if 8 * peak > self.places.len() || capacity >= self.places.len() {
            return;
        }
        while capacity < self.places.len() {
            let mask = capacity as u64 - 1;
            let mut taken = vec![false; capacity];
            let fits = self
                .places
                .iter()
                .flatten()
                .all(|(id, _)| !std::mem::replace(&mut taken[(id & mask) as usize], true));
            if fits {
                return self.move_to(capacity);
            }
            capacity *= 2;
        }
    }

    /// Where call `id` would be; `None` before the first call.
    fn index(&self, id: u64) -> Option<usize> {
        let mask = (self.places.len() as u64).checked_sub(1)?;
        Some((id & mask) as usize)
    }

    /// Call `id`'s waiter.
    pub(crate) fn get(&self, id: u64) -> Option<&T> {
        match self.places.get(self.index(id)?)? {
            Some((held, waiter)) if *held == id => Some(waiter),
            _ => None,
        }
    }

    /// Call `id`'s waiter, left in the table.
    pub(crate) fn get_mut(&mut self, id: u64) -> Option<&mut T> {
        let index = self.index(id)?;
        match self.places.get_mut(index)? {
            Some((held, waiter)) if *held == id => Some(waiter),
            _ => None,
        }
    }

    /// Takes call `id` out (its reply came, or it was dropped).
    pub(crate) fn remove(&mut self, id: u64) -> Option<T> {
        let index = self.index(id)?;
        let place = self.places.get_mut(index)?;
        if !matches!(place, Some((held, _)) if *held == id) {
            return None;
        }
        self.len -= 1;
        let waiter = place.take().map(|(_, waiter)| waiter);
        self.ended += 1;
        if self.ended >= self.places.len() {
            self.look_at_places();
        }
        waiter
    }

    /// Whether the table is closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Calls in flight.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Closes the table: returns every waiting call (to be failed) and refuses new ones.
    pub(crate) fn close(&mut self) -> Vec<T> {
        self.closed = true;
        self.len = 0;
        std::mem::take(&mut self.places)
            .into_iter()
            .flatten()
            .map(|(_, waiter)| waiter)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_grow_and_name_their_calls() {
        let mut calls = Outstanding::new();
        let first = calls.insert("first").unwrap();
        let second = calls.insert("second").unwrap();
        assert!(first >= 1 && second > first);
        assert_eq!(calls.get(first), Some(&"first"));
        assert_eq!(calls.remove(first), Some("first"));
        assert_eq!(calls.get(first), None);
        assert_eq!(calls.remove(first), None);
        // an id never issued, or issued to a call gone, finds nothing
        assert_eq!(calls.get(second + FIRST_CAPACITY as u64), None);
        assert_eq!(calls.get(0), None);
        let third = calls.insert("third").unwrap();
        assert!(third > second);
        assert_eq!(calls.close().len(), 2);
        assert_eq!(calls.insert("late"), Err(CallRefused::Closed));
        assert_eq!(calls.get(third), None);
    }

    #[test]
    fn a_call_in_flight_keeps_its_place_and_its_id_is_never_reissued() {
        let mut calls = Outstanding::new();
        let long = calls.insert(u64::MAX).unwrap();
        let mut issued = vec![long];
        // many short calls pass the long one's place again and again
        for _ in 0..10 * FIRST_CAPACITY {
            let id = calls.insert(0).unwrap();
            assert!(id > *issued.last().unwrap(), "ids only grow");
            assert_eq!(calls.remove(id), Some(0));
            issued.push(id);
        }
        assert_eq!(calls.get(long), Some(&u64::MAX));
        assert_eq!(calls.len(), 1);
    }

    #[test]
    fn growing_keeps_every_call_findable() {
        let mut calls = Outstanding::new();
        let ids: Vec<u64> = (0..1000).map(|n| calls.insert(n).unwrap()).collect();
        // free every other call, then fill again past the next growth
        for id in ids.iter().step_by(2) {
            assert!(calls.remove(*id).is_some());
        }
        let more: Vec<u64> = (0..1500)
            .map(|n| calls.insert(10_000 + n).unwrap())
            .collect();
        for (n, id) in ids.iter().enumerate().skip(1).step_by(2) {
            assert_eq!(calls.get(*id), Some(&(n as u64)));
        }
        for (n, id) in more.iter().enumerate() {
            assert_eq!(calls.get(*id), Some(&(10_000 + n as u64)));
        }
        assert_eq!(calls.len(), 500 + 1500);
        assert!(calls.places.len() >= 2 * calls.len());
    }

    /// Calls made and ended one at a time, `n` of them, beside those in the table.
    fn steady(calls: &mut Outstanding<u64>, n: usize) {
        for _ in 0..n {
            let id = calls.insert(0).unwrap();
            assert_eq!(calls.remove(id), Some(0));
        }
    }

    #[test]
    fn after_a_burst_the_places_shrink_and_every_call_left_is_found() {
        let mut calls = Outstanding::new();
        let ids: Vec<u64> = (0..10_000).map(|n| calls.insert(n).unwrap()).collect();
        let grown = calls.places.len();
        assert!(grown >= 20_000);
        // all but the last few end, and calls go on one at a time
        for id in &ids[..9_990] {
            assert!(calls.remove(*id).is_some());
        }
        assert_eq!(calls.places.len(), grown, "a burst's end is not yet quiet");
        steady(&mut calls, 2 * grown);
        assert!(calls.places.len() <= 64, "{} places", calls.places.len());
        for (n, id) in ids.iter().enumerate().skip(9_990) {
            assert_eq!(calls.get(*id), Some(&(n as u64)));
        }
        let next = calls.insert(0).unwrap();
        assert!(next > *ids.last().unwrap(), "ids only grow");
        assert!(calls.places.len() >= 2 * calls.len());
    }

    #[test]
    fn calls_that_come_and_go_in_waves_keep_their_room() {
        let mut calls = Outstanding::new();
        for _ in 0..1_000 {
            let wave: Vec<u64> = (0..64).map(|n| calls.insert(n).unwrap()).collect();
            let places = calls.places.len();
            wave.iter()
                .for_each(|id| assert!(calls.remove(*id).is_some()));
            assert_eq!(calls.places.len(), places, "no shrinking between waves");
        }
        assert_eq!(calls.places.len(), 128);
    }

    #[test]
    fn the_places_do_not_shrink_onto_two_calls_of_one_place() {
        let mut calls = Outstanding::new();
        let ids: Vec<u64> = (0..1_000).map(|n| calls.insert(n).unwrap()).collect();
        // the first call and one 16 ids later would share a place among 16
        let (first, later) = (ids[0], ids[16]);
        for id in ids.iter().filter(|&&id| id != first && id != later) {
            assert!(calls.remove(*id).is_some());
        }
        steady(&mut calls, 10_000);
        assert_eq!(calls.places.len(), 2 * FIRST_CAPACITY);
        assert_eq!(calls.get(first), Some(&0));
        assert_eq!(calls.get(later), Some(&16));
        // with the later one gone, the table shrinks to its first size
        assert!(calls.remove(later).is_some());
        steady(&mut calls, 100);
        assert_eq!(calls.places.len(), FIRST_CAPACITY);
        assert_eq!(calls.get(first), Some(&0));
    }
}
