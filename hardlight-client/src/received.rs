//! A received frame's body: read into an aligned buffer of its own, or the part of the
//! WebSocket message it came in, shared with the message's other frames.

use std::ops::Deref;

use hardlight_core::codec::{realign, Bytes};

/// The body of a received frame.
#[derive(Debug)]
pub(crate) enum Received {
    /// Read into a buffer of its own, aligned for decoding in place.
    Aligned(Bytes),
    /// Where it lies in its message: decoding copies a small one to the stack to align
    /// it, rather than into a buffer allocated for it.
    Shared(bytes::Bytes),
}

impl Received {
    /// The body in an aligned buffer of its own.
    pub(crate) fn into_aligned(self) -> Bytes {
        match self {
            Self::Aligned(body) => body,
            Self::Shared(body) => realign(&body),
        }
    }
}

impl Deref for Received {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Self::Aligned(body) => body,
            Self::Shared(body) => body,
        }
    }
}
