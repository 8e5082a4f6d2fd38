//! Assembling frames for sending and opening received bodies.

use crate::{
    codec::{encode_into, encode_lending, realign, Bytes, Codable, LentBlob},
    compression::{self, Compression},
    error::ProtocolError,
    frame::{FrameHeader, FLAG_COMPRESSED, HEADER_LEN},
    received::Received,
    spare,
};

/// An archive encoded behind room for its frame header, so that framing it writes the
/// header in place: no second buffer, no copy.
///
/// ```
/// use hardlight_core::{codec::decode, frame::{FrameHeader, Kind, HEADER_LEN}, message::Body, Compression};
/// let body = Body::encode(&(7u32, String::from("seven"))).unwrap();
/// let len = body.len();
/// let frame = body.frame(FrameHeader::new(Kind::Call, 0).with_id(1), Compression::None).unwrap();
/// let (header, archive) = FrameHeader::split(&frame, 1024).unwrap();
/// assert_eq!(header.body_len as usize, len);
/// assert_eq!(decode::<(u32, String)>(archive).unwrap(), (7, "seven".into()));
/// ```
pub struct Body {
    /// The frame header's room, then the archive (less the blobs lent).
    frame: Vec<u8>,
    /// Blobs the archive lends rather than holds ([`Body::encode_lending`]), each with the
    /// place in `frame` where its bytes belong, in order.
    lent: Option<Box<[LentBlob]>>,
}

impl Body {
    /// Archives `value`.
    ///
    /// Fails only if the value's own serialization fails (see [`encode`](crate::codec::encode)).
    pub fn encode<T: Codable>(value: &T) -> Result<Self, ProtocolError> {
        spare::with_buffer(|mut buffer, arena| {
            buffer.resize(HEADER_LEN, 0);
            encode_into(value, buffer, arena).map(|frame| Self { frame, lent: None })
        })
    }

    /// Archives `value`, lending it the bytes of its [`Blob`](crate::Blob)s of at least
    /// [`SHARED_FROM`](crate::blob::SHARED_FROM) bytes rather than copying them:
    /// [`framed`](Self::framed) gives the frame in pieces, the blobs' own bytes among them.
    ///
    /// ```
    /// use hardlight_core::{frame::{FrameHeader, Kind}, message::{Body, Framed}, Blob, Compression};
    /// let blob = Blob::from(vec![1u8; 1 << 20]);
    /// let body = Body::encode_lending(&(blob.clone(), 7u32)).unwrap();
    /// let framed = body.framed(FrameHeader::new(Kind::ReplyOk, 0), Compression::None).unwrap();
    /// let Framed::Pieces(pieces) = framed else { panic!("not lent") };
    /// // the blob's bytes, where they were
    /// assert!(pieces.iter().any(|piece| piece.as_ptr() == blob.as_ptr()));
    /// ```
    pub fn encode_lending<T: Codable>(value: &T) -> Result<Self, ProtocolError> {
        spare::with_buffer(|mut buffer, arena| {
            buffer.resize(HEADER_LEN, 0);
            let (frame, lent) = encode_lending(value, buffer, arena)?;
            let lent = (!lent.is_empty()).then(|| lent.into_boxed_slice());
            Ok(Self { frame, lent })
        })
    }

    /// The archive, whole (the blobs it lends copied into it first).
    pub fn archive(&mut self) -> &[u8] {
        self.make_whole();
        &self.frame[HEADER_LEN..]
    }

    /// The archive's length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        let own = self.frame.len() - HEADER_LEN;
        match &self.lent {
            None => own,
            Some(lent) => own + lent_len(lent),
        }
    }

    /// Whether the archive is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pads the archive with zeros to `len` bytes, then appends `bytes`.
    pub(crate) fn pad_and_extend(&mut self, len: usize, bytes: &[&[u8]]) {
        self.make_whole();
        self.frame.resize(HEADER_LEN + len, 0);
        for bytes in bytes {
            self.frame.extend_from_slice(bytes);
        }
    }

    /// The complete frame: `header` then the archive, compressed when `compression` says
    /// it pays. The header's `body_len` and compressed flag are set here.
    #[inline]
    pub fn frame(
        mut self,
        header: FrameHeader,
        compression: Compression,
    ) -> Result<Vec<u8>, ProtocolError> {
        self.make_whole();
        if let Some(packed) = compression.compress(&self.frame[HEADER_LEN..]) {
            spare::give_back(self.frame);
            return assemble(header, header.flags | FLAG_COMPRESSED, &packed);
        }
        let header = header_of(header, self.len(), header.flags & !FLAG_COMPRESSED)?;
        self.frame[..HEADER_LEN].copy_from_slice(&header);
        Ok(self.frame)
    }

    /// The complete frame as [`frame`](Self::frame) makes it, in pieces if the archive
    /// lends blobs and is not to be compressed (a body to compress is made whole first).
    #[inline]
    pub fn framed(
        self,
        header: FrameHeader,
        compression: Compression,
    ) -> Result<Framed, ProtocolError> {
        match self.lent {
            Some(_) if !compression.applies_to(self.len()) => self.pieces(header),
            _ => self.frame(header, compression).map(Framed::Whole),
        }
    }

    /// The frame in pieces: the archive's own bytes cut where the blobs it lends go.
    #[cold]
    fn pieces(self, header: FrameHeader) -> Result<Framed, ProtocolError> {
        let len = self.len();
        let Self { mut frame, lent } = self;
        let lent = lent.map(<[LentBlob]>::into_vec).unwrap_or_default();
        let header = header_of(header, len, header.flags & !FLAG_COMPRESSED)?;
        frame[..HEADER_LEN].copy_from_slice(&header);
        let mut own = bytes::Bytes::from(frame);
        let mut pieces = Vec::with_capacity(2 * lent.len() + 1);
        let mut taken = 0;
        for (at, blob) in lent {
            pieces.push(own.split_to(at - taken));
            taken = at;
            pieces.push(blob);
        }
        pieces.push(own);
        pieces.retain(|piece| !piece.is_empty());
        Ok(Framed::Pieces(pieces.into_boxed_slice()))
    }

    /// Copies the blobs the archive lends into it, where they belong.
    #[inline]
    fn make_whole(&mut self) {
        if let Some(lent) = self.lent.take() {
            self.take_in(&lent);
        }
    }

    #[cold]
    fn take_in(&mut self, lent: &[LentBlob]) {
        let mut whole = Vec::with_capacity(self.frame.len() + lent_len(lent));
        let mut from = 0;
        for (at, blob) in lent.iter() {
            whole.extend_from_slice(&self.frame[from..*at]);
            whole.extend_from_slice(blob);
            from = *at;
        }
        whole.extend_from_slice(&self.frame[from..]);
        self.frame = whole;
    }
}

/// The bytes of the blobs `lent`.
fn lent_len(lent: &[LentBlob]) -> usize {
    lent.iter().map(|(_, blob)| blob.len()).sum()
}

/// A frame ready to send: one buffer, or pieces where the frame carries blobs sent from
/// where they lie ([`Body::framed`]).
#[derive(Debug)]
pub enum Framed {
    /// The whole frame.
    Whole(Vec<u8>),
    /// The frame's bytes in order: its header and archive around the blobs' own bytes.
    Pieces(Box<[bytes::Bytes]>),
}

impl Framed {
    /// The frame's length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Self::Whole(frame) => frame.len(),
            Self::Pieces(pieces) => pieces.iter().map(bytes::Bytes::len).sum(),
        }
    }

    /// Whether the frame is empty (never, once made).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An empty archive.
impl Default for Body {
    fn default() -> Self {
        Self {
            frame: vec![0; HEADER_LEN],
            lent: None,
        }
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Body").field(&self.len()).finish()
    }
}

/// Builds a complete frame from an archive held elsewhere: header then body, compressed
/// when `compression` says it pays. [`Body::frame`] frames an archive without copying it.
///
/// The header's `body_len` and compressed flag are set here.
///
/// ```
/// use hardlight_core::{frame::{FrameHeader, Kind}, message::encode_frame, Compression};
/// let frame = encode_frame(FrameHeader::new(Kind::Call, 0).with_id(1), b"abc", Compression::None).unwrap();
/// assert_eq!(frame.len(), hardlight_core::frame::HEADER_LEN + 3);
/// ```
pub fn encode_frame(
    header: FrameHeader,
    body: &[u8],
    compression: Compression,
) -> Result<Vec<u8>, ProtocolError> {
    match compression.compress(body) {
        Some(packed) => assemble(header, header.flags | FLAG_COMPRESSED, &packed),
        None => assemble(header, header.flags & !FLAG_COMPRESSED, body),
    }
}

/// `header` (with `body_len` set, and `flags`) then `body`.
fn assemble(header: FrameHeader, flags: u8, body: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let header = header_of(header, body.len(), flags)?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(body);
    Ok(out)
}

/// The encoded `header` of a body of `len` bytes, with `flags`.
fn header_of(
    header: FrameHeader,
    len: usize,
    flags: u8,
) -> Result<[u8; HEADER_LEN], ProtocolError> {
    let body_len = u32::try_from(len).map_err(|_| ProtocolError::FrameTooLarge {
        len: len as u64,
        max: u32::MAX,
    })?;
    Ok(FrameHeader {
        body_len,
        flags,
        ..header
    }
    .encode())
}

/// Turns a received body into the aligned archive bytes: decompressed (bounded by `max`)
/// when flagged, which is only allowed if compression was negotiated.
pub fn open_body(
    header: &FrameHeader,
    raw: &[u8],
    compression_negotiated: bool,
    max: u32,
) -> Result<Bytes, ProtocolError> {
    if !header.is_compressed() {
        return Ok(realign(raw));
    }
    if !compression_negotiated {
        return Err(ProtocolError::CompressionNotNegotiated);
    }
    compression::decompress(raw, max)
}

/// [`Received::open`] for a body already read into an aligned buffer of its own.
pub fn open_aligned_body(
    header: &FrameHeader,
    raw: Bytes,
    compression_negotiated: bool,
    max: u32,
) -> Result<Bytes, ProtocolError> {
    Received::Aligned(raw)
        .open(header, compression_negotiated, max)
        .map(Received::into_aligned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        codec::{decode, encode},
        frame::{FrameHeader, Kind},
    };

    /// Values whose archives pad for alignment: the frame header's room must not move
    /// the padding, which counts from the archive's start.
    #[test]
    fn a_body_archives_as_encode_does() {
        type Value = (u8, Vec<u64>, String, Option<(u16, u128)>);
        for value in [
            (
                1u8,
                vec![2u64, 3],
                String::from("four"),
                Some((5u16, 6u128)),
            ),
            (0, Vec::new(), String::new(), None),
            (7, vec![8; 100], "x".repeat(1000), Some((9, u128::MAX))),
        ] {
            let mut body = Body::encode(&value).unwrap();
            assert_eq!(body.archive(), &encode(&value).unwrap()[..]);
            let frame = body
                .frame(
                    FrameHeader::new(Kind::ReplyOk, 0).with_id(3),
                    Compression::None,
                )
                .unwrap();
            let (header, archive) = FrameHeader::split(&frame, u32::MAX).unwrap();
            assert_eq!((header.kind, header.id), (Kind::ReplyOk, 3));
            assert_eq!(decode::<Value>(archive).unwrap(), value);
        }
    }

    #[test]
    fn a_body_that_pays_to_compress_is_framed_compressed() {
        let body = Body::encode(&vec![0u8; 64 * 1024]).unwrap();
        let compression = Compression::Zstd {
            level: 1,
            min_size: 1024,
        };
        let frame = body
            .frame(FrameHeader::new(Kind::ReplyOk, 0), compression)
            .unwrap();
        let (header, raw) = FrameHeader::split(&frame, u32::MAX).unwrap();
        assert!(header.is_compressed() && raw.len() < 1024);
        let opened = open_body(&header, raw, true, u32::MAX).unwrap();
        assert_eq!(decode::<Vec<u8>>(&opened).unwrap(), vec![0u8; 64 * 1024]);
    }

    /// A value with blobs on both sides of the line from which they are lent, and other
    /// fields between them.
    fn lending() -> (Vec<crate::Blob>, u8, String) {
        let blob = |len: usize, fill: u8| crate::Blob::from(vec![fill; len]);
        (
            vec![
                blob(crate::blob::SHARED_FROM, 1),
                blob(100, 2),
                blob(3 * crate::blob::SHARED_FROM + 5, 3),
            ],
            4,
            "five".into(),
        )
    }

    #[test]
    fn a_body_lends_its_large_blobs_and_frames_as_if_it_held_them() {
        let value = lending();
        let whole = Body::encode(&value).unwrap();
        let lending = Body::encode_lending(&value).unwrap();
        assert_eq!(lending.len(), whole.len());
        let header = FrameHeader::new(Kind::ReplyOk, 0).with_id(3);
        let expected = whole.frame(header, Compression::None).unwrap();
        let Framed::Pieces(pieces) = lending.framed(header, Compression::None).unwrap() else {
            panic!("the large blobs were copied");
        };
        // the two large blobs are pieces of their own, where they were
        for large in [&value.0[0], &value.0[2]] {
            assert!(pieces.iter().any(|piece| piece.as_ptr() == large.as_ptr()));
        }
        assert_eq!(pieces.concat(), expected);
        assert_eq!(Framed::Pieces(pieces).len(), expected.len());
    }

    #[test]
    fn a_lending_body_made_whole_is_the_body_that_holds_its_blobs() {
        let value = lending();
        let whole = Body::encode(&value).unwrap();
        let header = FrameHeader::new(Kind::ReplyOk, 0);
        let expected = whole.frame(header, Compression::None).unwrap();
        // framed whole, compressed, and with a call context appended
        let lending = Body::encode_lending(&value).unwrap();
        assert_eq!(lending.frame(header, Compression::None).unwrap(), expected);
        let compression = Compression::Zstd {
            level: 1,
            min_size: 1024,
        };
        let Framed::Whole(packed) = Body::encode_lending(&value)
            .unwrap()
            .framed(header, compression)
            .unwrap()
        else {
            panic!("a compressed body is one frame");
        };
        let (header, raw) = FrameHeader::split(&packed, u32::MAX).unwrap();
        let opened = open_body(&header, raw, true, u32::MAX).unwrap();
        assert_eq!(
            decode::<(Vec<crate::Blob>, u8, String)>(&opened).unwrap(),
            value
        );
        let mut lending = Body::encode_lending(&value).unwrap();
        assert_eq!(lending.archive(), &expected[HEADER_LEN..]);
    }

    #[test]
    fn small_blobs_and_plain_bodies_are_one_frame() {
        let header = FrameHeader::new(Kind::ReplyOk, 0);
        for body in [
            Body::encode_lending(&crate::Blob::from(vec![1u8; crate::blob::SHARED_FROM - 1])),
            Body::encode(&crate::Blob::from(vec![1u8; crate::blob::SHARED_FROM])),
            Body::encode_lending(&vec![1u8; crate::blob::SHARED_FROM]),
        ] {
            let framed = body.unwrap().framed(header, Compression::None).unwrap();
            assert!(matches!(framed, Framed::Whole(_)));
        }
    }
}
