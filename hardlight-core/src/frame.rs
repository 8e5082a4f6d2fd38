//! The fixed-size frame header that prefixes every HardLight message.
//!
//! ```text
//! offset size field
//!      0    4 body_len  u32 LE, bytes of body after this header (compressed size if compressed)
//!      4    1 kind      message kind, see [`Kind`]
//!      5    1 flags     bit 0: body is zstd-compressed; bit 1 (calls only): the body ends
//!                      with a call context; bit 2 (calls only): a streaming call;
//!                      bits 3-4 (calls only): the call's priority; other bits must be zero
//!      6    2 aux       u16 LE, kind-specific (method index, error code, ...)
//!      8    8 id        u64 LE, call id (calls, replies, cancels), a count (lagged) or a
//!                      position (durable events, acks)
//!     16    8 seq       u64 LE, state version (replies, state batches) or a call's time
//!                      budget in microseconds
//! ```
//!
//! Parsing is pure: [`FrameHeader::parse`] checks the size limit before anything
//! is allocated for the body.

use crate::error::ProtocolError;

/// Size in bytes of every frame header.
pub const HEADER_LEN: usize = 24;

/// The most bytes a WebSocket message holding more than one frame carries
/// (`PROTOCOL.md` §1 Transport and negotiation): a sender packs small frames written
/// together into messages of at most this size.
pub const MAX_PACKED_MESSAGE: usize = 16 * 1024;

/// The largest WebSocket message a receiver accepts: one frame of the largest body it
/// takes, or frames packed together, whichever is larger.
///
/// ```
/// use hardlight_core::frame::{max_websocket_message, HEADER_LEN, MAX_PACKED_MESSAGE};
/// assert_eq!(max_websocket_message(1 << 20), (1 << 20) + HEADER_LEN);
/// assert_eq!(max_websocket_message(100), MAX_PACKED_MESSAGE);
/// ```
pub fn max_websocket_message(max_body: u32) -> usize {
    (max_body as usize + HEADER_LEN).max(MAX_PACKED_MESSAGE)
}

/// Flag bit: the body is zstd-compressed.
pub const FLAG_COMPRESSED: u8 = 0b0000_0001;
/// Flag bit, on `Call` frames only: the body ends with a call context
/// ([`crate::context`]).
pub const FLAG_CONTEXT: u8 = 0b0000_0010;
/// Flag bit, on `Call` frames only: a streaming call ([`crate::stream`]), answered with
/// `StreamItem` frames before its reply.
pub const FLAG_STREAM: u8 = 0b0000_0100;
/// Flag bits 3–4, on `Call` frames only: the call's priority
/// ([`crate::priority::Priority`]; 0 = normal).
pub const FLAG_PRIORITY: u8 = 0b0001_1000;
const KNOWN_FLAGS: u8 = FLAG_COMPRESSED | FLAG_CONTEXT | FLAG_STREAM | FLAG_PRIORITY;
/// Flags only `Call` frames may carry.
const CALL_FLAGS: u8 = FLAG_CONTEXT | FLAG_STREAM | FLAG_PRIORITY;

macro_rules! kinds {
    ($($(#[$doc:meta])* $name:ident = $value:literal,)*) => {
        /// The kind of a frame; decides how `aux`, `id`, `seq` and the body are read.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum Kind {
            $($(#[$doc])* $name = $value,)*
        }

        impl Kind {
            /// The kind's name, for messages.
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$name => stringify!($name),)*
                }
            }

            /// Decodes a kind byte.
            pub fn from_u8(value: u8) -> Option<Self> {
                match value {
                    $($value => Some(Self::$name),)*
                    _ => None,
                }
            }
        }
    };
}

kinds! {
    /// Client → server, first message: version, schema hash, compression offers, token.
    Hello = 1,
    /// Server → client: the handshake succeeded; carries the full state snapshot.
    Welcome = 2,
    /// Server → client: the handshake failed; `aux` is a [`crate::RejectCode`].
    Reject = 3,
    /// Client → server: a call; `aux` = method index, `id` = call id, `seq` = its time
    /// budget in microseconds (0: none), body = arguments (and, with [`FLAG_CONTEXT`], the
    /// call context).
    Call = 4,
    /// Client → server: cancel call `id` (multiplexed transports only).
    Cancel = 5,
    /// Server → client: the call succeeded; body = return value, `seq` = state version.
    ReplyOk = 6,
    /// Server → client: the handler returned its own error; body = that error.
    ReplyHandlerError = 7,
    /// Server → client: the call failed; `aux` = [`crate::ErrorCode`], body = message.
    ReplyFailure = 8,
    /// Server → client: a state batch; `seq` = the version it brings the mirror to.
    State = 9,
    /// Server → client: an event on a topic.
    Event = 10,
    /// Server → client: `id` events were dropped for this connection.
    Lagged = 11,
    /// Server → client: the server is shutting down; make no new calls.
    GoAway = 12,
    /// Server → client: events of one topic may be missing here (the server's link to
    /// the other servers of its cluster was interrupted); body = the archived topic.
    Gap = 13,
    /// Server → client: a durable event for one of the connection's consumers; `aux` =
    /// the consumer's slot, `id` = the event's position in its topic, body = an archived
    /// [`crate::durable::Delivery`].
    Durable = 14,
    /// Client → server: the durable event at position `id` of the consumer in slot `aux`
    /// is processed; body empty.
    Ack = 15,
    /// Either way: an item of streaming call `id`; body = the item's archive, `seq` = the
    /// state version (server → client) or 0.
    StreamItem = 16,
    /// Either way, on multiplexed connections: `seq` more bytes of streaming call `id`'s
    /// items may be sent ([`crate::stream::STREAM_WINDOW`]); body empty.
    StreamCredit = 17,
    /// Client → server, on multiplexed connections: the client's items of streaming call
    /// `id` are all sent (over QUIC, the end of the call's stream says so); body empty.
    StreamEnd = 18,
    /// Server → client: an event sent unreliably (`EventEmitter::emit_unreliable`): as a
    /// QUIC datagram, or on the push stream only when nothing else waits there; `id` =
    /// the connection's count of such events so far (gaps tell the client how many were
    /// lost), body as `Event`'s.
    Unreliable = 19,
}

/// A parsed frame header.
///
/// ```
/// use hardlight_core::frame::{FrameHeader, Kind, HEADER_LEN};
/// let header = FrameHeader::new(Kind::Call, 11).with_aux(2).with_id(7);
/// let bytes = header.encode();
/// assert_eq!(bytes.len(), HEADER_LEN);
/// assert_eq!(FrameHeader::parse(&bytes, 1024).unwrap(), header);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Length of the body that follows, as sent (compressed length if compressed).
    pub body_len: u32,
    /// What the frame is.
    pub kind: Kind,
    /// Flag bits ([`FLAG_COMPRESSED`]).
    pub flags: u8,
    /// Kind-specific 16-bit field.
    pub aux: u16,
    /// Call id or count.
    pub id: u64,
    /// State version.
    pub seq: u64,
}

impl FrameHeader {
    /// A header of `kind` with a body of `body_len` bytes and every other field zero.
    pub fn new(kind: Kind, body_len: u32) -> Self {
        Self {
            body_len,
            kind,
            flags: 0,
            aux: 0,
            id: 0,
            seq: 0,
        }
    }

    /// Sets `aux`.
    pub fn with_aux(mut self, aux: u16) -> Self {
        self.aux = aux;
        self
    }

    /// Sets `id`.
    pub fn with_id(mut self, id: u64) -> Self {
        self.id = id;
        self
    }

    /// Sets `seq`.
    pub fn with_seq(mut self, seq: u64) -> Self {
        self.seq = seq;
        self
    }

    /// Sets `flags`.
    pub fn with_flags(mut self, flags: u8) -> Self {
        self.flags = flags;
        self
    }

    /// Whether the body is compressed.
    pub fn is_compressed(&self) -> bool {
        self.flags & FLAG_COMPRESSED != 0
    }

    /// Serializes the header.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&self.body_len.to_le_bytes());
        out[4] = self.kind as u8;
        out[5] = self.flags;
        out[6..8].copy_from_slice(&self.aux.to_le_bytes());
        out[8..16].copy_from_slice(&self.id.to_le_bytes());
        out[16..24].copy_from_slice(&self.seq.to_le_bytes());
        out
    }

    /// Parses and checks a header: known kind, known flags, body within `max_body`.
    ///
    /// ```
    /// use hardlight_core::{frame::{FrameHeader, Kind}, ProtocolError};
    /// let bytes = FrameHeader::new(Kind::Call, 4096).encode();
    /// assert!(matches!(
    ///     FrameHeader::parse(&bytes, 1024),
    ///     Err(ProtocolError::FrameTooLarge { len: 4096, max: 1024 })
    /// ));
    /// ```
    #[inline]
    pub fn parse(bytes: &[u8; HEADER_LEN], max_body: u32) -> Result<Self, ProtocolError> {
        let [l0, l1, l2, l3, kind, flags, a0, a1, rest @ ..] = *bytes;
        let body_len = u32::from_le_bytes([l0, l1, l2, l3]);
        let kind = Kind::from_u8(kind).ok_or(ProtocolError::UnknownKind(kind))?;
        if flags & !KNOWN_FLAGS != 0 || (flags & CALL_FLAGS != 0 && kind != Kind::Call) {
            return Err(ProtocolError::UnknownFlags(flags));
        }
        if body_len > max_body {
            return Err(ProtocolError::FrameTooLarge {
                len: u64::from(body_len),
                max: max_body,
            });
        }
        let (id, seq) = rest.split_at(8);
        Ok(Self {
            body_len,
            kind,
            flags,
            aux: u16::from_le_bytes([a0, a1]),
            id: u64::from_le_bytes(id.try_into().map_err(|_| ProtocolError::Malformed)?),
            seq: u64::from_le_bytes(seq.try_into().map_err(|_| ProtocolError::Malformed)?),
        })
    }

    /// Sets the `id` of the encoded frame `frame` in place (a frame too short to hold a
    /// header is left alone).
    ///
    /// ```
    /// use hardlight_core::frame::{FrameHeader, Kind};
    /// let mut frame = FrameHeader::new(Kind::Call, 0).encode().to_vec();
    /// FrameHeader::set_id(&mut frame, 9);
    /// assert_eq!(FrameHeader::split(&frame, 0).unwrap().0.id, 9);
    /// ```
    pub fn set_id(frame: &mut [u8], id: u64) {
        if let Some(field) = frame.get_mut(8..16) {
            field.copy_from_slice(&id.to_le_bytes());
        }
    }

    /// Parses `bytes` as exactly one frame, for a message that holds one alone (the
    /// handshake's, a datagram). Returns the header and the body slice.
    pub fn split(bytes: &[u8], max_body: u32) -> Result<(Self, &[u8]), ProtocolError> {
        match Self::split_first(bytes, max_body)? {
            (header, body, []) => Ok((header, body)),
            (_, _, rest) => Err(ProtocolError::TrailingBytes(rest.len() as u64)),
        }
    }

    /// Parses the frame at the start of `bytes`, for transports that deliver whole
    /// messages of one or more frames (WebSocket, in
    /// `PROTOCOL.md` §1 Transport and negotiation). Returns the header, the body slice and
    /// the bytes after the frame (the message's next frames, if any).
    ///
    /// ```
    /// use hardlight_core::frame::{FrameHeader, Kind};
    /// let mut message = FrameHeader::new(Kind::Cancel, 0).with_id(1).encode().to_vec();
    /// message.extend_from_slice(&FrameHeader::new(Kind::Cancel, 0).with_id(2).encode());
    /// let (first, _, rest) = FrameHeader::split_first(&message, 0).unwrap();
    /// let (second, _, rest) = FrameHeader::split_first(rest, 0).unwrap();
    /// assert_eq!((first.id, second.id, rest.len()), (1, 2, 0));
    /// ```
    #[inline]
    pub fn split_first(bytes: &[u8], max_body: u32) -> Result<(Self, &[u8], &[u8]), ProtocolError> {
        let (head, after) =
            bytes
                .split_first_chunk::<HEADER_LEN>()
                .ok_or(ProtocolError::Truncated {
                    expected: HEADER_LEN as u64,
                    got: bytes.len() as u64,
                })?;
        let header = Self::parse(head, max_body)?;
        let (body, rest) = after
            .split_at_checked(header.body_len as usize)
            .ok_or_else(|| ProtocolError::Truncated {
                expected: u64::from(header.body_len),
                got: after.len() as u64,
            })?;
        Ok((header, body, rest))
    }

    /// [`split_first`](Self::split_first) on shared bytes: the first frame's header and
    /// its body, which shares `bytes`' buffer; `bytes` keeps what follows the frame (and
    /// lets go of the buffer with the last frame). On `Err`, `bytes` is left as it was.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use hardlight_core::frame::{FrameHeader, Kind};
    /// let mut message = FrameHeader::new(Kind::Cancel, 2).with_id(1).encode().to_vec();
    /// message.extend_from_slice(b"ab");
    /// message.extend_from_slice(&FrameHeader::new(Kind::Cancel, 0).with_id(2).encode());
    /// let mut message = Bytes::from(message);
    /// let (first, body) = FrameHeader::split_off_first(&mut message, 8).unwrap();
    /// assert_eq!((first.id, &body[..]), (1, &b"ab"[..]));
    /// let (second, _) = FrameHeader::split_off_first(&mut message, 8).unwrap();
    /// assert_eq!((second.id, message.len()), (2, 0));
    /// ```
    #[inline]
    pub fn split_off_first(
        bytes: &mut bytes::Bytes,
        max_body: u32,
    ) -> Result<(Self, bytes::Bytes), ProtocolError> {
        let (header, body, _) = Self::split_first(bytes, max_body)?;
        let len = body.len();
        let mut frame = bytes.split_to(HEADER_LEN + len);
        bytes::Buf::advance(&mut frame, HEADER_LEN);
        Ok((header, frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `frame` fuzz target: a whole frame whose header, encoded again, must
    /// parse on its own (the target first checked it with `split`, which needs the body).
    #[test]
    fn a_split_header_round_trips_without_its_body() {
        let frame: &[u8] = &[
            0x1d, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x91, 0x00, 0x00, 0x1d, 0x00, 0x00, 0x00, 0x0a,
            0x00, 0x58, 0x58, 0x58, 0x58, 0x58, 0x91, 0x00, 0x00, 0x00, 0xf0, 0xf0, 0xff, 0xff,
            0x01, 0x00, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x16, 0xf0, 0xf0, 0x00, 0xf0, 0xf0, 0xff,
            0xff, 0x01, 0x00, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x16, 0xf0, 0xf0,
        ];
        let (header, body) = FrameHeader::split(frame, 1 << 20).unwrap();
        assert_eq!(
            (header.kind, header.body_len, body.len()),
            (Kind::Event, 29, 29)
        );
        let again = header.encode();
        assert_eq!(again[..], frame[..HEADER_LEN]);
        assert_eq!(FrameHeader::parse(&again, 1 << 20), Ok(header));
        assert!(
            FrameHeader::split(&again, 1 << 20).is_err(),
            "no body: truncated"
        );
    }

    #[test]
    fn rejects_unknown_kind_and_flags() {
        let mut bytes = FrameHeader::new(Kind::Call, 0).encode();
        bytes[4] = 200;
        assert_eq!(
            FrameHeader::parse(&bytes, 10),
            Err(ProtocolError::UnknownKind(200))
        );
        let mut bytes = FrameHeader::new(Kind::ReplyOk, 0).encode();
        bytes[5] = FLAG_CONTEXT;
        assert_eq!(
            FrameHeader::parse(&bytes, 10),
            Err(ProtocolError::UnknownFlags(FLAG_CONTEXT)),
            "a call context on anything but a call"
        );
        let mut bytes = FrameHeader::new(Kind::Call, 0).encode();
        bytes[5] = 0x80;
        assert_eq!(
            FrameHeader::parse(&bytes, 10),
            Err(ProtocolError::UnknownFlags(0x80))
        );
    }

    #[test]
    fn split_checks_body_length() {
        let mut msg = FrameHeader::new(Kind::Call, 3).encode().to_vec();
        msg.extend_from_slice(&[1, 2]);
        assert!(matches!(
            FrameHeader::split(&msg, 10),
            Err(ProtocolError::Truncated {
                expected: 3,
                got: 2
            })
        ));
        msg.push(3);
        let (header, body) = FrameHeader::split(&msg, 10).unwrap();
        assert_eq!(header.body_len, 3);
        assert_eq!(body, &[1, 2, 3]);
        msg.push(4);
        assert_eq!(
            FrameHeader::split(&msg, 10),
            Err(ProtocolError::TrailingBytes(1))
        );
    }

    #[test]
    fn split_first_walks_a_message_frame_by_frame() {
        let mut message = Vec::new();
        for (id, body) in [(1u64, &b"ab"[..]), (2, b""), (3, b"xyz")] {
            let header = FrameHeader::new(Kind::Call, body.len() as u32).with_id(id);
            message.extend_from_slice(&header.encode());
            message.extend_from_slice(body);
        }
        let mut rest = &message[..];
        let mut seen = Vec::new();
        while !rest.is_empty() {
            let (header, body, after) = FrameHeader::split_first(rest, 10).unwrap();
            seen.push((header.id, body.to_vec()));
            rest = after;
        }
        assert_eq!(
            seen,
            [(1, b"ab".to_vec()), (2, vec![]), (3, b"xyz".to_vec())]
        );
        // a message cut inside its last frame's header, then inside its body
        let cut = FrameHeader::split_first(&message[..message.len() - 3 - 10], 10)
            .and_then(|(_, _, rest)| FrameHeader::split_first(rest, 10))
            .and_then(|(_, _, rest)| FrameHeader::split_first(rest, 10));
        assert_eq!(
            cut,
            Err(ProtocolError::Truncated {
                expected: HEADER_LEN as u64,
                got: 14
            })
        );
        let cut = FrameHeader::split_first(&message[26 + 24..message.len() - 1], 10);
        assert_eq!(
            cut,
            Err(ProtocolError::Truncated {
                expected: 3,
                got: 2
            })
        );
    }
}
