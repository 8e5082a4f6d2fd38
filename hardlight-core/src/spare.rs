//! What encoding keeps for reuse on each thread: frame buffers, and the scratch arena
//! the archiver works in.
//!
//! Calls in flight together encode their frames together and are written together: 64
//! replies are built, queued, and freed at once by the writer that copies them into one
//! batch. The system allocator keeps a few freed buffers of a size at hand per thread
//! (glibc: 7) and takes a slower path for the rest, both when freeing them and when
//! allocating the next 64. A [`Body`](crate::message::Body) takes its buffer from here,
//! and a batch gives it back once it has copied the frame.
//!
//! At most [`KEPT`] buffers of [`CAPACITY`] bytes each are kept per thread (35 KiB); a
//! buffer that grew past its first capacity is freed as usual. The arena (rkyv's scratch
//! space, which most values never use) starts at 2 KiB and keeps its largest block, as
//! rkyv's own per-thread arena does; it sits beside the buffers so that an encoding
//! reaches both at once.

use std::cell::RefCell;

use rkyv::ser::allocator::Arena;

use crate::{codec::ENCODE_CAPACITY, frame::HEADER_LEN};

/// The capacity a body's buffer starts with: a frame header and a small archive.
pub const CAPACITY: usize = HEADER_LEN + ENCODE_CAPACITY;

/// Buffers kept per thread: as many as calls in flight together write at once, up to a
/// connection's default limit of calls in flight (`max_concurrent_calls`, 128).
pub const KEPT: usize = 128;

/// What one thread keeps.
#[derive(Default)]
struct Kept {
    buffers: Vec<Vec<u8>>,
    /// Made at the thread's first encoding.
    arena: Option<Arena>,
}

thread_local! {
    static SPARE: RefCell<Kept> = const {
        RefCell::new(Kept {
            buffers: Vec::new(),
            arena: None,
        })
    };
}

/// Runs `encode` with an empty buffer of [`CAPACITY`] bytes and the scratch arena.
pub(crate) fn with_buffer<R>(encode: impl FnOnce(Vec<u8>, &mut Arena) -> R) -> R {
    with_kept(|kept| {
        let buffer = kept
            .buffers
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(CAPACITY));
        encode(buffer, kept.arena.get_or_insert_with(Arena::new))
    })
}

/// Runs `encode` with the scratch arena.
pub(crate) fn with_arena<R>(encode: impl FnOnce(&mut Arena) -> R) -> R {
    with_kept(|kept| encode(kept.arena.get_or_insert_with(Arena::new)))
}

/// Runs `f` with what this thread keeps, or with nothing kept where that is in use (an
/// encoding within an encoding) or gone (the thread is ending).
fn with_kept<R>(f: impl FnOnce(&mut Kept) -> R) -> R {
    let mut f = Some(f);
    let done = SPARE
        .try_with(|kept| {
            let mut kept = kept.try_borrow_mut().ok()?;
            f.take().map(|f| f(&mut kept))
        })
        .ok()
        .flatten();
    match (done, f) {
        (Some(done), _) => done,
        (None, Some(f)) => f(&mut Kept::default()),
        (None, None) => unreachable!("`f` is taken only to run it"),
    }
}

/// Keeps `buffer` for [`with_buffer`] if it has [`CAPACITY`] bytes and fewer than
/// [`KEPT`] are kept; frees it otherwise.
#[inline]
pub(crate) fn give_back(mut buffer: Vec<u8>) {
    if buffer.capacity() != CAPACITY {
        return;
    }
    buffer.clear();
    with_kept(|kept| {
        if kept.buffers.len() < KEPT {
            kept.buffers.push(buffer);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_buffers_of_the_first_capacity_are_kept_and_only_so_many() {
        let kept = || SPARE.with(|spare| spare.borrow().buffers.len());
        let before = kept();
        give_back(Vec::with_capacity(CAPACITY * 2));
        assert_eq!(kept(), before);
        for _ in 0..2 * KEPT {
            let mut buffer = Vec::with_capacity(CAPACITY);
            buffer.push(1);
            give_back(buffer);
        }
        assert_eq!(kept(), KEPT);
        with_buffer(|buffer, _| assert!(buffer.is_empty() && buffer.capacity() == CAPACITY));
        assert_eq!(kept(), KEPT - 1);
    }

    #[test]
    fn an_encoding_within_an_encoding_gets_its_own_buffer_and_arena() {
        let outer = with_buffer(|mut outer, arena| {
            outer.push(1);
            let _ = arena.acquire();
            // the thread's are in use: the inner one works with fresh ones
            let inner = with_buffer(|mut inner, arena| {
                let _ = arena.acquire();
                inner.push(2);
                inner
            });
            outer.extend(inner);
            outer
        });
        assert_eq!(outer, [1, 2]);
    }
}
