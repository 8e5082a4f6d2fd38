//! Frames written together, in as few chunks as possible: small frames are copied together
//! into chunks of at most [`MAX_CHUNK`] bytes, large ones passed on as they are. A
//! transport that does work per chunk then does it once per batch rather than once per
//! frame, and no large frame is copied: quinn's stream send buffer walks its chunks to
//! build each packet, and over the browser's WebSocket every chunk is one message
//! (`PROTOCOL.md` §1 Transport and negotiation), which the browser frames and masks once
//! for many calls. Native WebSocket peers pack the same way, in their write buffer
//! ([`MessageWriter`](crate::websocket::MessageWriter), with the `io` feature).

use bytes::{Bytes, BytesMut};

/// Frames below this size are copied together; larger ones stay chunks of their own.
pub const COALESCE_BELOW: usize = 4 * 1024;

/// The most bytes frames copied together make: the largest WebSocket message holding more
/// than one frame, which every receiver accepts whatever its `max_message_size`.
pub const MAX_CHUNK: usize = crate::frame::MAX_PACKED_MESSAGE;

/// A frame a batch takes: its bytes are copied, or passed on as they are.
pub trait Frame: AsRef<[u8]> + Into<Bytes> {
    /// Its bytes were copied into the batch: it is no longer needed.
    fn copied(self);
}

/// A frame shared with other batches (a push to many connections).
impl Frame for Bytes {
    fn copied(self) {}
}

/// A frame built for this batch: once copied, its buffer is kept for the next frame
/// built on this thread ([`spare`](crate::spare)).
impl Frame for Vec<u8> {
    fn copied(self) {
        crate::spare::give_back(self);
    }
}

/// A batch of frames to write in order.
///
/// ```
/// use hardlight_core::coalesce::Coalesced;
/// let mut batch = Coalesced::default();
/// // a batch of one frame is that frame, not a copy
/// batch.push(vec![0u8; 10]);
/// assert_eq!(batch.chunks().len(), 1);
/// batch.clear();
/// batch.push(vec![1u8; 10]);
/// batch.push(vec![2u8; 20]);
/// batch.push(vec![3u8; 64 * 1024]);
/// batch.push(vec![4u8; 5]);
/// for _ in 0..5 {
///     batch.push(vec![5u8; 4000]);
/// }
/// let chunks = batch.chunks();
/// // the two small frames in one chunk, the large one alone, then small ones together
/// // up to `MAX_CHUNK` (16 KiB)
/// assert_eq!(
///     chunks.iter().map(|c| c.len()).collect::<Vec<_>>(),
///     [30, 64 * 1024, 5 + 4 * 4000, 4000]
/// );
/// batch.clear();
/// assert!(batch.is_empty());
/// ```
#[derive(Debug, Default)]
pub struct Coalesced {
    /// The batch's only frame, as it came: a batch of one frame (a quiet connection's
    /// every write) is neither copied nor makes the batch's buffers grow.
    single: Option<Bytes>,
    chunks: Vec<Bytes>,
    small: BytesMut,
}

impl Coalesced {
    /// Adds `frame` after what the batch holds.
    pub fn push<F: Frame>(&mut self, frame: F) {
        if self.is_empty() {
            self.single = Some(frame.into());
            return;
        }
        if let Some(first) = self.single.take() {
            self.add(first);
        }
        self.add(frame);
    }

    fn add<F: Frame>(&mut self, frame: F) {
        let len = frame.as_ref().len();
        if len < COALESCE_BELOW {
            if self.small.len() + len > MAX_CHUNK {
                self.seal();
            }
            self.small.extend_from_slice(frame.as_ref());
            frame.copied();
        } else {
            self.seal();
            self.chunks.push(frame.into());
        }
    }

    /// Whether nothing was pushed since the last [`Coalesced::clear`].
    pub fn is_empty(&self) -> bool {
        self.single.is_none() && self.chunks.is_empty() && self.small.is_empty()
    }

    /// The batch as chunks, in order, for a vectored write (which may empty them).
    pub fn chunks(&mut self) -> &mut [Bytes] {
        if self.single.is_some() {
            return self.single.as_mut_slice();
        }
        self.seal();
        &mut self.chunks
    }

    /// Empties the batch; the small frames' buffer is reused once the transport lets go
    /// of what was written from it.
    pub fn clear(&mut self) {
        self.single = None;
        self.chunks.clear();
        self.small.clear();
    }

    fn seal(&mut self) {
        if !self.small.is_empty() {
            self.chunks.push(self.small.split().freeze());
        }
    }
}
