//! Frames written together, in as few chunks as possible: small frames are copied into
//! one buffer, large ones passed on as they are. A transport that keeps a chunk per write
//! (quinn's stream send buffer, which walks its chunks to build each packet) then does its
//! per-chunk work once per batch rather than once per frame, and no large frame is copied.

use bytes::{Bytes, BytesMut};

/// Frames below this size are copied together; larger ones stay chunks of their own.
pub const COALESCE_BELOW: usize = 4 * 1024;

/// A batch of frames to write in order.
///
/// ```
/// use hardlight_core::coalesce::Coalesced;
/// let mut batch = Coalesced::default();
/// batch.push(vec![1u8; 10]);
/// batch.push(vec![2u8; 20]);
/// batch.push(vec![3u8; 64 * 1024]);
/// batch.push(vec![4u8; 5]);
/// let chunks = batch.chunks();
/// // the two small frames in one chunk, the large one alone, then the last small one
/// assert_eq!(chunks.iter().map(|c| c.len()).collect::<Vec<_>>(), [30, 64 * 1024, 5]);
/// batch.clear();
/// assert!(batch.is_empty());
/// ```
#[derive(Debug, Default)]
pub struct Coalesced {
    chunks: Vec<Bytes>,
    small: BytesMut,
}

impl Coalesced {
    /// Adds `frame` after what the batch holds.
    pub fn push<F: AsRef<[u8]> + Into<Bytes>>(&mut self, frame: F) {
        if frame.as_ref().len() < COALESCE_BELOW {
            self.small.extend_from_slice(frame.as_ref());
        } else {
            self.seal();
            self.chunks.push(frame.into());
        }
    }

    /// Whether nothing was pushed since the last [`Coalesced::clear`].
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty() && self.small.is_empty()
    }

    /// The batch as chunks, in order, for a vectored write (which may empty them).
    pub fn chunks(&mut self) -> &mut [Bytes] {
        self.seal();
        &mut self.chunks
    }

    /// Empties the batch; the small frames' buffer is reused once the transport lets go
    /// of what was written from it.
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.small.clear();
    }

    fn seal(&mut self) {
        if !self.small.is_empty() {
            self.chunks.push(self.small.split().freeze());
        }
    }
}
