//! Reading frames from a byte stream as a state machine fed bytes, with no I/O: the
//! transport reads into the buffer the decoder hands out and reports how much arrived.
//!
//! The header is checked against the size limit as soon as it is whole, and the body
//! buffer grows with the bytes that actually arrived, by the rule of
//! [`crate::read_growth`] and at least a [`BODY_CHUNK`] at a time: a peer that announces
//! a large body and sends nothing makes the reader hold at most one chunk, not the
//! announced size.

use crate::{
    codec::Bytes,
    error::ProtocolError,
    frame::{FrameHeader, HEADER_LEN},
    read_growth::room_ahead,
};

/// Most body bytes the decoder asks for at a time, and the least room it makes for them.
pub const BODY_CHUNK: usize = 64 * 1024;

/// Reassembles one frame at a time from the bytes of a stream.
///
/// ```
/// use hardlight_core::{decoder::FrameDecoder, frame::{FrameHeader, Kind}, message::encode_frame, Compression};
/// let frame = encode_frame(FrameHeader::new(Kind::Call, 0), b"hello", Compression::None).unwrap();
/// let mut decoder = FrameDecoder::new(1024);
/// // the bytes may arrive in pieces of any size
/// let mut input = &frame[..];
/// assert!(decoder.feed(&mut &input[..10]).unwrap().is_none());
/// input = &input[10..];
/// let (header, body) = decoder.feed(&mut input).unwrap().unwrap();
/// assert_eq!((header.kind, &body[..]), (Kind::Call, &b"hello"[..]));
/// assert!(input.is_empty());
/// ```
#[derive(Debug)]
pub struct FrameDecoder {
    max_body: u32,
    state: State,
}

#[derive(Debug)]
enum State {
    Header {
        bytes: [u8; HEADER_LEN],
        len: usize,
    },
    /// `body[..have]` arrived; `buffer` may have grown `body` beyond it by one chunk, and
    /// its capacity by [`room_ahead`] (never past the announced length).
    Body {
        header: FrameHeader,
        body: Bytes,
        have: usize,
    },
}

const START: State = State::Header {
    bytes: [0; HEADER_LEN],
    len: 0,
};

impl FrameDecoder {
    /// A decoder refusing bodies above `max_body` bytes.
    pub fn new(max_body: u32) -> Self {
        Self {
            max_body,
            state: START,
        }
    }

    /// The header of the frame being read, once it is whole (checked).
    pub fn header(&self) -> Option<&FrameHeader> {
        match &self.state {
            State::Header { .. } => None,
            State::Body { header, .. } => Some(header),
        }
    }

    /// Bytes of the current frame received so far (0 between frames).
    pub fn received(&self) -> usize {
        match &self.state {
            State::Header { len, .. } => *len,
            State::Body { have, .. } => HEADER_LEN + have,
        }
    }

    /// Where the next bytes go: never more than the current frame still needs, so a read
    /// into it never takes bytes of the next frame, and never more than [`BODY_CHUNK`] of
    /// body. Report what was written with [`FrameDecoder::filled`].
    pub fn buffer(&mut self) -> &mut [u8] {
        match &mut self.state {
            State::Header { bytes, len } => &mut bytes[*len..],
            State::Body { header, body, have } => {
                let announced = header.body_len as usize;
                let want = (announced - *have).min(BODY_CHUNK);
                grow(body, *have, *have + want, announced);
                body.resize(*have + want, 0);
                &mut body[*have..]
            }
        }
    }

    /// `n` bytes were written at the start of the last [`FrameDecoder::buffer`]. Fails
    /// when a header just completed is invalid or announces too large a body.
    pub fn filled(&mut self, n: usize) -> Result<(), ProtocolError> {
        match &mut self.state {
            State::Header { bytes, len } => {
                *len = (*len + n).min(HEADER_LEN);
                if *len == HEADER_LEN {
                    let header = FrameHeader::parse(bytes, self.max_body)?;
                    self.state = State::Body {
                        header,
                        body: Bytes::new(),
                        have: 0,
                    };
                }
            }
            State::Body { body, have, .. } => *have = (*have + n).min(body.len()),
        }
        Ok(())
    }

    /// The frame, if it is whole; the decoder then starts on the next one.
    pub fn take(&mut self) -> Option<(FrameHeader, Bytes)> {
        let State::Body { header, body, have } = &mut self.state else {
            return None;
        };
        if *have < header.body_len as usize {
            return None;
        }
        // `buffer` never grows the body past what the header announced
        let header = *header;
        let body = std::mem::take(body);
        self.state = START;
        Some((header, body))
    }

    /// Feeds bytes from `input`, advancing it past what was taken, until a frame is whole
    /// or `input` is used up.
    pub fn feed(
        &mut self,
        input: &mut &[u8],
    ) -> Result<Option<(FrameHeader, Bytes)>, ProtocolError> {
        loop {
            if let Some(frame) = self.take() {
                return Ok(Some(frame));
            }
            if input.is_empty() {
                return Ok(None);
            }
            match &mut self.state {
                // the bytes are appended as they are, with no zeroed room to copy into
                State::Body { header, body, have } => {
                    let announced = header.body_len as usize;
                    let n = (announced - *have).min(input.len());
                    grow(body, *have + n, *have + n, announced);
                    // drops room `buffer` offered that was not filled
                    body.resize(*have, 0);
                    body.extend_from_slice(&input[..n]);
                    *have += n;
                    *input = &input[n..];
                }
                State::Header { .. } => self.feed_header(input)?,
            }
        }
    }

    /// Feeds the bytes of the current frame's header from `input`, advancing it past what
    /// was taken, and none of its body: the header is whole and checked once
    /// [`FrameDecoder::header`] has it.
    pub fn feed_header(&mut self, input: &mut &[u8]) -> Result<(), ProtocolError> {
        if let State::Header { bytes, len } = &mut self.state {
            let n = (HEADER_LEN - *len).min(input.len());
            bytes[*len..*len + n].copy_from_slice(&input[..n]);
            *input = &input[n..];
            self.filled(n)?;
        }
        Ok(())
    }
}

/// Makes room in `body` for the `announced` body's bytes up to `end`, `arrived` of them
/// in hand: at least one [`BODY_CHUNK`], and as far past what arrived as [`room_ahead`]
/// allows, exactly, so that the last growth of a large body ends at its length, not at
/// the next power of two.
fn grow(body: &mut Bytes, arrived: usize, end: usize, announced: usize) {
    if body.capacity() < end {
        let to = arrived
            .saturating_add(room_ahead(arrived))
            .max(end)
            .max(BODY_CHUNK)
            .min(announced);
        body.reserve_exact(to.saturating_sub(body.len()));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{frame::Kind, message::encode_frame, Compression};

    #[test]
    fn frames_arrive_byte_by_byte_and_back_to_back() {
        let mut stream = Vec::new();
        for body in [&b""[..], b"a", &[7u8; 3 * BODY_CHUNK + 5]] {
            stream.extend(
                encode_frame(FrameHeader::new(Kind::Event, 0), body, Compression::None).unwrap(),
            );
        }
        for step in [1, 7, 4096, stream.len()] {
            let mut decoder = FrameDecoder::new(1 << 20);
            let mut lens = Vec::new();
            for chunk in stream.chunks(step) {
                let mut input = chunk;
                while !input.is_empty() {
                    if let Some((header, body)) = decoder.feed(&mut input).unwrap() {
                        assert_eq!(header.body_len as usize, body.len());
                        lens.push(body.len());
                    }
                }
            }
            assert_eq!(lens, vec![0, 1, 3 * BODY_CHUNK + 5], "step {step}");
            assert_eq!(decoder.received(), 0);
        }
    }

    #[test]
    fn memory_follows_the_bytes_that_arrived() {
        let mut decoder = FrameDecoder::new(u32::MAX);
        let header = FrameHeader::new(Kind::Call, 16 << 20).encode();
        assert!(decoder.feed(&mut &header[..]).unwrap().is_none());
        assert_eq!(decoder.header().map(|h| h.body_len), Some(16 << 20));
        // one chunk is offered, not the 16 MiB announced
        assert_eq!(decoder.buffer().len(), BODY_CHUNK);
        decoder.filled(10).unwrap();
        assert!(decoder.take().is_none());
        assert_eq!(decoder.received(), HEADER_LEN + 10);
    }

    /// What the buffer holds follows the rule of `read_growth`, and a large body's last
    /// growth ends at its length.
    #[test]
    fn capacity_grows_by_the_read_growth_rule() {
        let len = 4 << 20;
        let mut decoder = FrameDecoder::new(u32::MAX);
        let header = FrameHeader::new(Kind::Call, len as u32).encode();
        assert!(decoder.feed(&mut &header[..]).unwrap().is_none());
        let mut capacities = Vec::new();
        let mut have = 0;
        while have < len {
            let n = decoder.buffer().len();
            have += n;
            decoder.filled(n).unwrap();
            let State::Body { body, .. } = &decoder.state else {
                unreachable!()
            };
            assert!(body.capacity() <= (have + room_ahead(have)).max(BODY_CHUNK));
            if capacities.last() != Some(&body.capacity()) {
                capacities.push(body.capacity());
            }
        }
        // 64 KiB, 512 KiB, then the body's length: two reallocations
        assert_eq!(capacities, vec![BODY_CHUNK, 8 * BODY_CHUNK, len]);
        assert_eq!(decoder.take().unwrap().1.len(), len);
        // fed in pieces of a QUIC packet's size, as quinn hands them over: as few
        let mut decoder = FrameDecoder::new(u32::MAX);
        assert!(decoder.feed(&mut &header[..]).unwrap().is_none());
        let body = vec![7u8; len];
        let mut capacities = Vec::new();
        for (i, piece) in body.chunks(1200).enumerate() {
            let got = decoder.feed(&mut &piece[..]).unwrap();
            let have = (i * 1200 + piece.len()).min(len);
            let capacity = match (&decoder.state, got) {
                (State::Body { body, .. }, None) => body.capacity(),
                (_, Some((_, whole))) => whole.capacity(),
                _ => unreachable!(),
            };
            assert!(capacity <= (have + room_ahead(have)).max(BODY_CHUNK));
            if capacities.last() != Some(&capacity) {
                capacities.push(capacity);
            }
        }
        assert_eq!(capacities.len(), 3, "{capacities:?}");
        assert_eq!(capacities.last(), Some(&len));
    }

    #[test]
    fn an_oversized_header_is_refused_at_once() {
        let mut decoder = FrameDecoder::new(1024);
        let header = FrameHeader::new(Kind::Call, 1025).encode();
        assert!(matches!(
            decoder.feed(&mut &header[..]),
            Err(ProtocolError::FrameTooLarge {
                len: 1025,
                max: 1024
            })
        ));
    }
}
