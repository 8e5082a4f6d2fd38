//! Messages cut from the bytes read: frames checked against RFC 6455's rules and the
//! receiver's limit, unmasked in place, fragments joined.

use bytes::{Buf, Bytes, BytesMut};

use super::{encode::mask, Role, MAX_CONTROL_PAYLOAD};
use crate::{codec::ALIGN, frame::MAX_PACKED_MESSAGE};

const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// A message read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// A binary message: HardLight's frames.
    Binary(Bytes),
    /// A ping, with the payload its pong must carry.
    Ping(Bytes),
    /// A pong.
    Pong,
    /// The peer's close, with its code and reason if it gave them.
    Close(Option<u16>, String),
}

/// What [`Decoder::decode`] found in the bytes read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A message, taken from the bytes read.
    Message(Message),
    /// The frame begun needs at least this many more bytes.
    Need(usize),
}

/// A frame that breaks RFC 6455's rules, or a message above the receiver's limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// A message (or the fragments of one so far) above the receiver's limit.
    #[error(
        "a WebSocket message of {size} bytes or more is above the limit of {max}; raise \
         Limits::max_message_size on both peers if this is intended"
    )]
    TooBig {
        /// The message's size as far as it is known.
        size: u64,
        /// The receiver's limit.
        max: usize,
    },
    /// A text message, refused at its first frame's header: HardLight speaks binary only
    /// (close code `1003`).
    #[error("text messages are not part of the HardLight protocol; send binary frames")]
    Text,
    /// A client sent a frame without a mask.
    #[error("a client's WebSocket frame was not masked (RFC 6455, section 5.1)")]
    Unmasked,
    /// A server sent a masked frame.
    #[error("a server's WebSocket frame was masked (RFC 6455, section 5.1)")]
    Masked,
    /// Reserved bits set: no extension is negotiated.
    #[error("WebSocket reserved bits set ({0:#05b}) with no extension negotiated")]
    ReservedBits(u8),
    /// An opcode RFC 6455 reserves.
    #[error("WebSocket opcode {0:#x} is reserved")]
    ReservedOpcode(u8),
    /// A control frame fragmented, or above 125 bytes.
    #[error("a WebSocket control frame was fragmented or holds more than 125 bytes")]
    BadControlFrame,
    /// A continuation frame with no message begun.
    #[error("a WebSocket continuation frame came with no message begun")]
    UnexpectedContinuation,
    /// A data frame began a message while the last one had fragments to come.
    #[error("a WebSocket message began before the last one ended")]
    UnfinishedMessage,
    /// A 64-bit length with its most significant bit set.
    #[error("a WebSocket frame's length has its most significant bit set")]
    BadLength,
    /// A close frame of one byte, a code no endpoint may send, or a reason that is not
    /// UTF-8.
    #[error("a WebSocket close frame's payload is malformed")]
    BadClose,
}

/// Cuts messages from the bytes read on one connection.
#[derive(Debug)]
pub struct Decoder {
    role: Role,
    max_message: usize,
    /// The fragments so far of a message that has more to come.
    partial: Option<BytesMut>,
    /// The header of a large frame whose payload is still arriving, taken off the bytes
    /// read: the payload begins at their start ([`Decoder::await_payload`]).
    arriving: Option<Head>,
}

/// A frame's header, parsed.
#[derive(Debug, Clone, Copy)]
struct Head {
    fin: bool,
    opcode: u8,
    len: u64,
    key: Option<[u8; 4]>,
    /// The header's own length.
    size: usize,
}

impl Decoder {
    /// A decoder for `role`'s end that refuses messages above `max_message` bytes.
    pub fn new(role: Role, max_message: usize) -> Self {
        Self {
            role,
            max_message,
            partial: None,
            arriving: None,
        }
    }

    /// Whether a message has fragments or a payload to come.
    pub fn in_message(&self) -> bool {
        self.partial.is_some() || self.arriving.is_some()
    }

    /// The next message whole in `read`, taken from it (its payload shares `read`'s
    /// buffer when it came in one frame), or how many more bytes its frame needs.
    /// Control frames between a message's fragments come out as they are read.
    pub fn decode(&mut self, read: &mut BytesMut) -> Result<Decoded, FramingError> {
        loop {
            let head = match self.arriving {
                Some(head) => head,
                None => match self.head(read)? {
                    Ok(head) => head,
                    Err(need) => return Ok(Decoded::Need(need)),
                },
            };
            if head.opcode == TEXT {
                return Err(FramingError::Text);
            }
            // `head` checked `len` against the limit, which fits in memory
            let len = head.len as usize;
            let whole = head.size + len;
            if read.len() < whole {
                let need = whole - read.len();
                if self.arriving.is_none() && len > MAX_PACKED_MESSAGE {
                    self.await_payload(read, head);
                }
                return Ok(Decoded::Need(need));
            }
            self.arriving = None;
            let start = payload_start(read, head.size, whole);
            read.advance(start);
            let mut payload = read.split_to(len);
            // what the payload's move left behind
            read.advance(whole - start - len);
            if let Some(key) = head.key {
                mask(&mut payload, key);
            }
            let message = match head.opcode {
                BINARY if head.fin => Message::Binary(payload.freeze()),
                BINARY => {
                    self.partial = Some(payload);
                    continue;
                }
                CONTINUATION => {
                    let Some(mut partial) = self.partial.take() else {
                        return Err(FramingError::UnexpectedContinuation);
                    };
                    partial.extend_from_slice(&payload);
                    if !head.fin {
                        self.partial = Some(partial);
                        continue;
                    }
                    Message::Binary(partial.freeze())
                }
                PING => Message::Ping(payload.freeze()),
                PONG => Message::Pong,
                _ => {
                    let (code, reason) = close_code(&payload)?;
                    Message::Close(code, reason)
                }
            };
            return Ok(Decoded::Message(message));
        }
    }

    /// Takes the header of a large frame whose payload is still arriving off `read`,
    /// first moving what arrived of the payload (one read's worth at most) to an address
    /// aligned as a buffer of its own would be: back over the header where it leaves room,
    /// on otherwise. The payload then begins at the start of the bytes read, where the
    /// reads to come leave it aligned (a buffer growing by reallocation keeps where its
    /// bytes begin, or moves them to its own aligned start), so that its archive decodes
    /// where it lies without the payload's move once it is whole.
    fn await_payload(&mut self, read: &mut BytesMut, head: Head) {
        let arrived = read.len() - head.size;
        read.reserve(ALIGN);
        let misaligned = (read.as_ptr() as usize + head.size) % ALIGN;
        let start = if misaligned <= head.size {
            head.size - misaligned
        } else {
            let start = head.size + ALIGN - misaligned;
            read.resize(start + arrived, 0);
            start
        };
        read.copy_within(head.size..head.size + arrived, start);
        read.truncate(start + arrived);
        read.advance(start);
        self.arriving = Some(Head { size: 0, ..head });
    }

    /// The header at the start of `read`, checked, or how many more bytes it needs.
    fn head(&self, read: &[u8]) -> Result<Result<Head, usize>, FramingError> {
        let [first, second, ..] = *read else {
            return Ok(Err(2 - read.len()));
        };
        let reserved = (first >> 4) & 0b111;
        if reserved != 0 {
            return Err(FramingError::ReservedBits(reserved));
        }
        let fin = first & 0x80 != 0;
        let opcode = first & 0x0F;
        let masked = second & 0x80 != 0;
        match (self.role, masked) {
            (Role::Server, false) => return Err(FramingError::Unmasked),
            (Role::Client, true) => return Err(FramingError::Masked),
            _ => {}
        }
        match opcode {
            CONTINUATION if self.partial.is_none() => {
                return Err(FramingError::UnexpectedContinuation)
            }
            TEXT | BINARY if self.partial.is_some() => return Err(FramingError::UnfinishedMessage),
            CONTINUATION | TEXT | BINARY => {}
            CLOSE | PING | PONG if !fin || second & 0x7F > MAX_CONTROL_PAYLOAD as u8 => {
                return Err(FramingError::BadControlFrame)
            }
            CLOSE | PING | PONG => {}
            _ => return Err(FramingError::ReservedOpcode(opcode)),
        }
        let (len, at) = match second & 0x7F {
            126 => match read.get(2..4) {
                Some(&[high, low]) => (u16::from_be_bytes([high, low]).into(), 4),
                _ => return Ok(Err(4 - read.len())),
            },
            127 => match read.get(2..10).map(<[u8; 8]>::try_from) {
                Some(Ok(bytes)) => (u64::from_be_bytes(bytes), 10),
                _ => return Ok(Err(10 - read.len())),
            },
            len => (u64::from(len), 2),
        };
        if len >> 63 != 0 {
            return Err(FramingError::BadLength);
        }
        let so_far = self.partial.as_ref().map_or(0, |p| p.len() as u64);
        if opcode < CLOSE && so_far + len > self.max_message as u64 {
            return Err(FramingError::TooBig {
                size: so_far + len,
                max: self.max_message,
            });
        }
        let (key, size) = if masked {
            match read.get(at..at + 4).map(<[u8; 4]>::try_from) {
                Some(Ok(key)) => (Some(key), at + 4),
                _ => return Ok(Err(at + 4 - read.len())),
            }
        } else {
            (None, at)
        };
        Ok(Ok(Head {
            fin,
            opcode,
            len,
            key,
            size,
        }))
    }
}

/// Where the payload of the frame whole at the start of `read` begins, after its header of
/// `size` bytes. A payload above [`MAX_PACKED_MESSAGE`] (one HardLight frame, never
/// several) is moved back over the header to an address aligned as a buffer of its own
/// would be, where that is room enough, so that its archive decodes where it lies
/// (otherwise it is copied to a new buffer to be aligned). Smaller ones stay: packed
/// frames lie at any offset in their message anyway.
fn payload_start(read: &mut BytesMut, size: usize, whole: usize) -> usize {
    let misaligned = (read.as_ptr() as usize + size) % ALIGN;
    if whole - size <= MAX_PACKED_MESSAGE || misaligned == 0 || misaligned > size {
        return size;
    }
    read.copy_within(size..whole, size - misaligned);
    size - misaligned
}

/// A close frame's code (RFC 6455, sections 5.5.1 and 7.4) and reason, checked.
fn close_code(payload: &[u8]) -> Result<(Option<u16>, String), FramingError> {
    let (code, reason) = match payload {
        [] => return Ok((None, String::new())),
        [high, low, reason @ ..] => (u16::from_be_bytes([*high, *low]), reason),
        [_] => return Err(FramingError::BadClose),
    };
    let sendable = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
    match std::str::from_utf8(reason) {
        Ok(reason) if sendable => Ok((Some(code), reason.to_owned())),
        _ => Err(FramingError::BadClose),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::websocket::{frame, header, Opcode};
    use bytes::BufMut;

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A frame as a client writes it, with `first` its first byte as given.
    fn raw(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        frame(&mut out, Opcode::Binary, payload, Some(KEY));
        out[0] = first;
        out
    }

    fn decode_all(decoder: &mut Decoder, bytes: &[u8]) -> Result<Vec<Message>, FramingError> {
        let mut read = BytesMut::from(bytes);
        let mut messages = Vec::new();
        loop {
            match decoder.decode(&mut read)? {
                Decoded::Message(message) => messages.push(message),
                Decoded::Need(_) => return Ok(messages),
            }
        }
    }

    fn server() -> Decoder {
        Decoder::new(Role::Server, 1 << 20)
    }

    #[test]
    fn fragments_join_with_control_frames_between() {
        let mut wire = raw(0x02, b"hel");
        wire.extend(raw(0x89, b"ping!"));
        wire.extend(raw(0x00, b"lo, "));
        wire.extend(raw(0x80, b"world"));
        let messages = decode_all(&mut server(), &wire).unwrap();
        assert_eq!(
            messages,
            [
                Message::Ping(Bytes::from_static(b"ping!")),
                Message::Binary(Bytes::from_static(b"hello, world")),
            ]
        );
    }

    #[test]
    fn every_length_encoding_reads_back_a_byte_at_a_time() {
        for len in [0, 1, 125, 126, 65_535, 65_536, 200_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let wire = raw(0x82, &payload);
            let mut decoder = server();
            let mut read = BytesMut::new();
            let mut got = None;
            for (i, byte) in wire.iter().enumerate() {
                read.put_u8(*byte);
                match decoder.decode(&mut read).unwrap() {
                    Decoded::Message(message) => {
                        assert_eq!(i, wire.len() - 1, "complete before its last byte");
                        got = Some(message);
                    }
                    Decoded::Need(need) => assert!(need >= 1 && i + need < wire.len()),
                }
            }
            assert_eq!(got, Some(Message::Binary(payload.into())), "length {len}");
        }
    }

    #[test]
    fn rule_breaking_frames_are_refused() {
        let unmasked = [0x82, 0x01, 0x00];
        let cases: [(Vec<u8>, FramingError); 9] = [
            (unmasked.to_vec(), FramingError::Unmasked),
            (raw(0xC2, b"x"), FramingError::ReservedBits(0b100)),
            (raw(0x83, b"x"), FramingError::ReservedOpcode(3)),
            (raw(0x8B, b""), FramingError::ReservedOpcode(0xB)),
            (raw(0x09, b""), FramingError::BadControlFrame),
            (raw(0x89, &[0; 126]), FramingError::BadControlFrame),
            (raw(0x80, b"x"), FramingError::UnexpectedContinuation),
            (
                [raw(0x02, b"a"), raw(0x82, b"b")].concat(),
                FramingError::UnfinishedMessage,
            ),
            (raw(0x88, &[0x03]), FramingError::BadClose),
        ];
        for (wire, error) in cases {
            assert_eq!(decode_all(&mut server(), &wire), Err(error));
        }
        let mut client = Decoder::new(Role::Client, 1024);
        assert_eq!(
            decode_all(&mut client, &raw(0x82, b"x")),
            Err(FramingError::Masked)
        );
    }

    #[test]
    fn close_codes_and_reasons_are_checked() {
        let close = |code: u16, reason: &[u8]| {
            let payload = [&code.to_be_bytes()[..], reason].concat();
            decode_all(&mut server(), &raw(0x88, &payload))
        };
        assert_eq!(
            close(1000, b"bye"),
            Ok(vec![Message::Close(Some(1000), "bye".into())])
        );
        assert_eq!(
            close(4015, b""),
            Ok(vec![Message::Close(Some(4015), String::new())])
        );
        assert_eq!(close(1005, b""), Err(FramingError::BadClose));
        assert_eq!(close(999, b""), Err(FramingError::BadClose));
        assert_eq!(close(1000, &[0xff]), Err(FramingError::BadClose));
        assert_eq!(
            decode_all(&mut server(), &raw(0x88, b"")),
            Ok(vec![Message::Close(None, String::new())])
        );
    }

    #[test]
    fn a_message_above_the_limit_is_refused_from_its_header() {
        let mut decoder = Decoder::new(Role::Server, 100);
        // only the header of a 101-byte frame: refused before its payload is read
        let whole = raw(0x82, &[0; 101]);
        let mut read = BytesMut::from(&whole[..8]);
        assert_eq!(
            decoder.decode(&mut read),
            Err(FramingError::TooBig {
                size: 101,
                max: 100
            })
        );
        // fragments count together
        let mut decoder = Decoder::new(Role::Server, 100);
        let wire = [raw(0x02, &[0; 60]), raw(0x80, &[0; 41])].concat();
        assert_eq!(
            decode_all(&mut decoder, &wire),
            Err(FramingError::TooBig {
                size: 101,
                max: 100
            })
        );
        // exactly the limit is taken
        let mut decoder = Decoder::new(Role::Server, 100);
        let wire = [raw(0x02, &[0; 60]), raw(0x80, &[0; 40])].concat();
        assert_eq!(
            decode_all(&mut decoder, &wire),
            Ok(vec![Message::Binary(vec![0; 100].into())])
        );
    }

    #[test]
    fn a_payload_of_one_frame_lies_aligned_where_its_header_leaves_room() {
        for len in [16_385, 70_000] {
            for offset in 0..16 {
                let wire = raw(0x82, &vec![7; len]);
                let mut read = BytesMut::with_capacity(16 + wire.len());
                read.extend_from_slice(&vec![0; offset]);
                read.extend_from_slice(&wire);
                read.advance(offset);
                let frame_at = read.as_ptr() as usize;
                let Ok(Decoded::Message(Message::Binary(payload))) = server().decode(&mut read)
                else {
                    panic!("a message");
                };
                assert_eq!(payload, vec![7; len]);
                // the header (6, 8 or 14 bytes) leaves room unless the misalignment is larger
                let header = wire.len() - len;
                if (frame_at + header) % ALIGN <= header {
                    assert_eq!(payload.as_ptr() as usize % ALIGN, 0, "{len} at {offset}");
                }
            }
        }
    }

    #[test]
    fn a_large_payload_arriving_in_pieces_lies_aligned_once_whole() {
        let payload: Vec<u8> = (0..70_000).map(|i| (i % 251) as u8).collect();
        let mut wire = raw(0x82, &payload);
        wire.extend(raw(0x82, b"next"));
        for piece in [1, 700, 4096] {
            for offset in 0..ALIGN {
                let mut decoder = server();
                let mut read = BytesMut::with_capacity(64);
                read.extend_from_slice(&[0; ALIGN][..offset]);
                read.advance(offset);
                let mut messages = Vec::new();
                for chunk in wire.chunks(piece) {
                    read.extend_from_slice(chunk);
                    while let Decoded::Message(message) = decoder.decode(&mut read).unwrap() {
                        messages.push(message);
                    }
                }
                let Some(Message::Binary(first)) = messages.first() else {
                    panic!("a message");
                };
                assert_eq!(first.as_ptr() as usize % ALIGN, 0, "{piece} at {offset}");
                assert_eq!(
                    messages,
                    [
                        Message::Binary(payload.clone().into()),
                        Message::Binary(Bytes::from_static(b"next"))
                    ]
                );
                assert!(!decoder.in_message() && read.is_empty());
            }
        }
    }

    #[test]
    fn text_is_seen_at_its_header() {
        let wire = raw(0x81, b"hello");
        let mut read = BytesMut::from(&wire[..6]);
        assert_eq!(server().decode(&mut read), Err(FramingError::Text));
    }

    #[test]
    fn a_server_frame_reads_back_on_the_client() {
        let mut wire = Vec::new();
        header(&mut wire, Opcode::Pong, 3, None);
        wire.extend_from_slice(b"abc");
        header(&mut wire, Opcode::Binary, 2, None);
        wire.extend_from_slice(b"hi");
        let mut client = Decoder::new(Role::Client, 1024);
        assert_eq!(
            decode_all(&mut client, &wire),
            Ok(vec![
                Message::Pong,
                Message::Binary(Bytes::from_static(b"hi"))
            ])
        );
    }
}
