//! Frame buffers kept for reuse on the thread that let them go.
//!
//! Calls in flight together encode their frames together and are written together: 64
//! replies are built, queued, and freed at once by the writer that copies them into one
//! batch. The system allocator keeps a few freed buffers of a size at hand per thread
//! (glibc: 7) and takes a slower path for the rest, both when freeing them and when
//! allocating the next 64. A [`Body`](crate::message::Body) takes its buffer from here,
//! and a batch gives it back once it has copied the frame.
//!
//! At most [`KEPT`] buffers of [`CAPACITY`] bytes each are kept per thread (18 KiB); a
//! buffer that grew past its first capacity is freed as usual.

use std::cell::RefCell;

use crate::{codec::ENCODE_CAPACITY, frame::HEADER_LEN};

/// The capacity a body's buffer starts with: a frame header and a small archive.
pub const CAPACITY: usize = HEADER_LEN + ENCODE_CAPACITY;

/// Buffers kept per thread: as many as calls in flight together write at once.
pub const KEPT: usize = 64;

thread_local! {
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer of [`CAPACITY`] bytes.
pub(crate) fn take() -> Vec<u8> {
    SPARE
        .try_with(|spare| spare.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_else(|| Vec::with_capacity(CAPACITY))
}

/// Keeps `buffer` for [`take`] if it has [`CAPACITY`] bytes and fewer than [`KEPT`] are
/// kept; frees it otherwise.
pub(crate) fn give_back(mut buffer: Vec<u8>) {
    if buffer.capacity() != CAPACITY {
        return;
    }
    buffer.clear();
    let _ = SPARE.try_with(|spare| {
        let mut spare = spare.borrow_mut();
        if spare.len() < KEPT {
            spare.push(buffer);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_buffers_of_the_first_capacity_are_kept_and_only_so_many() {
        let kept = SPARE.with(|spare| spare.borrow().len());
        give_back(Vec::with_capacity(CAPACITY * 2));
        assert_eq!(SPARE.with(|spare| spare.borrow().len()), kept);
        for _ in 0..2 * KEPT {
            let mut buffer = Vec::with_capacity(CAPACITY);
            buffer.push(1);
            give_back(buffer);
        }
        assert_eq!(SPARE.with(|spare| spare.borrow().len()), KEPT);
        let buffer = take();
        assert!(buffer.is_empty() && buffer.capacity() == CAPACITY);
    }
}
