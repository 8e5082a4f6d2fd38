//! A streaming call's items held to be written to a QUIC stream together.
//!
//! quinn keeps each write to a stream as a segment of the stream's send buffer, and looks
//! through the segments not yet acknowledged for every packet it fills: items written one
//! by one make each packet cost more the more are in flight. Either side of a streaming
//! call over QUIC holds the items it has ready one after the other and writes them as one
//! chunk, and writes what it holds as soon as no next item is ready, so that no item
//! waits for one that is not there.

use std::mem;

/// Bytes of items written at once, when they are ready together.
pub const ITEMS_WRITTEN_TOGETHER: usize = 16 * 1024;

/// Items' frames held for one write. Between writes less than [`ITEMS_WRITTEN_TOGETHER`]
/// bytes are held; a write of held items carries at most that and one item below it.
///
/// ```
/// use hardlight_core::held_items::{HeldItems, ITEMS_WRITTEN_TOGETHER};
/// let mut held = HeldItems::default();
/// // small items are held
/// assert_eq!(held.hold(vec![1; 100]), [None, None]);
/// assert_eq!(held.hold(vec![2; 100]), [None, None]);
/// // a large one goes after them, as it is
/// let large = vec![3; ITEMS_WRITTEN_TOGETHER];
/// let [before, after] = held.hold(large.clone());
/// assert_eq!(before.map(|b| b.len()), Some(200));
/// assert_eq!(after, Some(large));
/// assert!(held.take().is_empty());
/// ```
#[derive(Debug, Default)]
pub struct HeldItems {
    held: Vec<u8>,
}

impl HeldItems {
    /// Holds `frame`, and gives what is to be written now, in order: nothing while the
    /// items held stay below [`ITEMS_WRITTEN_TOGETHER`]; everything held once they reach
    /// it; and a frame that large by itself after those held before it, as it is.
    pub fn hold(&mut self, frame: Vec<u8>) -> [Option<Vec<u8>>; 2] {
        if frame.len() >= ITEMS_WRITTEN_TOGETHER {
            return [self.take_some(), Some(frame)];
        }
        self.held.extend_from_slice(&frame);
        if self.held.len() < ITEMS_WRITTEN_TOGETHER {
            return [None, None];
        }
        [self.take_some(), None]
    }

    /// Takes everything held (empty when nothing is).
    pub fn take(&mut self) -> Vec<u8> {
        mem::take(&mut self.held)
    }

    /// `frame` after everything held, as one write: a reply after the items before it.
    pub fn then(&mut self, frame: Vec<u8>) -> Vec<u8> {
        match self.take_some() {
            None => frame,
            Some(mut held) => {
                held.extend_from_slice(&frame);
                held
            }
        }
    }

    fn take_some(&mut self) -> Option<Vec<u8>> {
        (!self.held.is_empty()).then(|| self.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_written_once_they_reach_the_size_in_the_order_held() {
        let mut held = HeldItems::default();
        let item = |n: u8| vec![n; ITEMS_WRITTEN_TOGETHER / 4];
        for n in 0..3 {
            assert_eq!(held.hold(item(n)), [None, None]);
        }
        let [all, none] = held.hold(item(3));
        assert_eq!(none, None);
        assert_eq!(all.unwrap(), [item(0), item(1), item(2), item(3)].concat());
        assert!(held.take().is_empty());
    }

    #[test]
    fn a_reply_goes_after_the_items_held() {
        let mut held = HeldItems::default();
        assert_eq!(held.then(vec![9]), [9]);
        let _ = held.hold(vec![1, 2]);
        assert_eq!(held.then(vec![9]), [1, 2, 9]);
        assert!(held.take().is_empty());
    }
}
