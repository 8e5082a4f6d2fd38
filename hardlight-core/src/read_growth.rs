//! How far ahead of what a peer sent a read buffer may grow, one rule for every frame
//! read (a QUIC stream's [`crate::decoder::FrameDecoder`], a WebSocket's message reader).
//!
//! A buffer that grows only as bytes arrive holds memory in proportion to what the peer
//! sent; one that grows by doubling copies and faults in about twice a large message's
//! size on its way there. Past [`LARGE`] bytes read the buffer may grow to
//! [`LARGE_GROWTH`] times what was read, so a message of megabytes is reallocated twice
//! or three times, not a dozen, while a header announcing a large frame still makes the
//! reader hold no more than its first read needs (at most one
//! [`crate::decoder::BODY_CHUNK`]).

/// Once this much of a frame was read, the buffer may grow to [`LARGE_GROWTH`] times
/// that; below it, to twice what was read.
pub const LARGE: usize = 64 * 1024;

/// How many times what was read of a large frame its buffer may grow to.
pub const LARGE_GROWTH: usize = 8;

/// Room a buffer holding `read` bytes of a frame may have beyond them.
///
/// ```
/// use hardlight_core::read_growth::{room_ahead, LARGE, LARGE_GROWTH};
/// assert_eq!(room_ahead(0), 0);
/// assert_eq!(room_ahead(1000), 1000);
/// assert_eq!(room_ahead(LARGE), LARGE * (LARGE_GROWTH - 1));
/// ```
pub const fn room_ahead(read: usize) -> usize {
    if read < LARGE {
        read
    } else {
        read.saturating_mul(LARGE_GROWTH - 1)
    }
}
