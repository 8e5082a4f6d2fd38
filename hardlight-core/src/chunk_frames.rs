//! Frames cut from the chunks a stream delivers (quinn's received data: the call
//! channel on either side, a call's stream of its own): a frame that arrived whole in one
//! chunk is handed over as a slice of it ([`Received::Shared`]: taken at once, it keeps
//! its chunk only a moment); one split between chunks is assembled by a
//! [`FrameDecoder`], as any stream's frames are. No copy into a read-ahead buffer, no
//! buffer allocated per frame.

use std::{
    future::poll_fn,
    io,
    task::{ready, Context, Poll},
};

use bytes::{Buf, Bytes as Shared};

use crate::{
    decoder::FrameDecoder,
    frame::{FrameHeader, HEADER_LEN},
    io::ReadError,
    received::Received,
    ProtocolError,
};

/// Where chunks come from: polled for the next one, `None` once the stream has ended.
/// Implemented for closures, e.g. one that polls a quinn `RecvStream::read_chunk`.
pub trait ChunkSource {
    /// Polls for the next chunk.
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Shared>>>;
}

impl<F> ChunkSource for F
where
    F: FnMut(&mut Context<'_>) -> Poll<io::Result<Option<Shared>>>,
{
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Shared>>> {
        self(cx)
    }
}

/// The chunks quinn received, in order (feature `quinn`).
#[cfg(feature = "quinn")]
impl ChunkSource for quinn::RecvStream {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Shared>>> {
        // cancel-safe: a read that is not ready registers the waker, and is dropped
        let read = std::future::Future::poll(std::pin::pin!(self.read_chunk(usize::MAX, true)), cx);
        read.map(|read| {
            read.map(|chunk| chunk.map(|chunk| chunk.bytes))
                .map_err(io::Error::from)
        })
    }
}

/// The frames of one stream, read chunk by chunk.
///
/// ```
/// use std::task::Poll;
/// use hardlight_core::{chunk_frames::ChunkFrames, frame::{FrameHeader, Kind}, io::ReadError, message::encode_frame, Compression};
/// # futures_util::FutureExt::now_or_never(async {
/// let frame = encode_frame(FrameHeader::new(Kind::ReplyOk, 0).with_id(7), b"seven", Compression::None).unwrap();
/// let mut chunks = vec![bytes::Bytes::from(frame.to_vec())].into_iter();
/// let mut source = |_: &mut std::task::Context<'_>| Poll::Ready(Ok(chunks.next()));
/// let mut frames = ChunkFrames::new(1024);
/// let (header, body) = frames.next(&mut source).await.unwrap();
/// assert_eq!((header.id, &body[..]), (7, &b"seven"[..]));
/// assert!(matches!(frames.next(&mut source).await, Err(ReadError::Finished)));
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct ChunkFrames {
    decoder: FrameDecoder,
    /// What the last chunk holds past the frames taken from it.
    rest: Shared,
    max_body: u32,
}

impl ChunkFrames {
    /// Frames of bodies up to `max_body` bytes.
    pub fn new(max_body: u32) -> Self {
        Self {
            decoder: FrameDecoder::new(max_body),
            rest: Shared::new(),
            max_body,
        }
    }

    /// Whether bytes arrived that no whole frame has used up yet: a frame is on its way.
    pub fn partial(&self) -> bool {
        self.decoder.received() > 0 || !self.rest.is_empty()
    }

    /// The next frame from `source` (still compressed if flagged).
    pub async fn next(
        &mut self,
        source: &mut impl ChunkSource,
    ) -> Result<(FrameHeader, Received), ReadError> {
        poll_fn(|cx| self.poll_next(cx, source)).await
    }

    /// Polls for the next frame from `source`.
    pub fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        source: &mut impl ChunkSource,
    ) -> Poll<Result<(FrameHeader, Received), ReadError>> {
        loop {
            if let Some(frame) = self.cut()? {
                return Poll::Ready(Ok(frame));
            }
            ready!(self.poll_chunk(cx, source))?;
        }
    }

    /// Waits until bytes of the next frame have arrived (at once if some have): a reader
    /// that gives a frame, once begun, a limited time to arrive whole starts its clock
    /// here. Fails as [`ChunkFrames::next`] does when the stream ends first.
    pub async fn begun(&mut self, source: &mut impl ChunkSource) -> Result<(), ReadError> {
        poll_fn(|cx| {
            while !self.partial() {
                ready!(self.poll_chunk(cx, source))?;
            }
            Poll::Ready(Ok(()))
        })
        .await
    }

    /// The header of the next frame once it is whole and checked, the frame not cut yet:
    /// what arrived of its body stays where it is until [`ChunkFrames::next`] takes it.
    /// For a reader that makes room for a body before it takes it.
    pub async fn header(
        &mut self,
        source: &mut impl ChunkSource,
    ) -> Result<FrameHeader, ReadError> {
        poll_fn(|cx| self.poll_header(cx, source)).await
    }

    /// Polls for the header of the next frame (see [`ChunkFrames::header`]).
    pub fn poll_header(
        &mut self,
        cx: &mut Context<'_>,
        source: &mut impl ChunkSource,
    ) -> Poll<Result<FrameHeader, ReadError>> {
        loop {
            if let Some(header) = self.decoder.header() {
                return Poll::Ready(Ok(*header));
            }
            if self.decoder.received() == 0 {
                if let Some(head) = self.rest.first_chunk::<HEADER_LEN>() {
                    let header = FrameHeader::parse(head, self.max_body)?;
                    return Poll::Ready(Ok(header));
                }
            }
            // a header split between chunks: the decoder takes the part that arrived
            let mut input = &self.rest[..];
            let before = input.len();
            self.decoder.feed_header(&mut input)?;
            self.rest.advance(before - input.len());
            if self.rest.is_empty() && self.decoder.header().is_none() {
                ready!(self.poll_chunk(cx, source))?;
            }
        }
    }

    /// Polls `source` for the next chunk, all of the last one used.
    fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
        source: &mut impl ChunkSource,
    ) -> Poll<Result<(), ReadError>> {
        // the chunk's memory is not kept while the stream is quiet
        self.rest = Shared::new();
        Poll::Ready(match ready!(source.poll_chunk(cx)) {
            Ok(Some(chunk)) => {
                self.rest = chunk;
                Ok(())
            }
            Ok(None) => Err(ReadError::ended(&self.decoder)),
            Err(error) => Err(ReadError::Io(error)),
        })
    }

    /// The next frame, if it is whole in what was read already: no reading.
    pub fn next_read(&mut self) -> Option<Result<(FrameHeader, Received), ProtocolError>> {
        self.cut().transpose()
    }

    /// A whole frame out of what was read, if there is one.
    fn cut(&mut self) -> Result<Option<(FrameHeader, Received)>, ProtocolError> {
        // between frames, a frame whole in the chunk is a slice of it
        if self.decoder.received() == 0 {
            match FrameHeader::split_off_first(&mut self.rest, self.max_body) {
                Ok((header, body)) => return Ok(Some((header, Received::Shared(body)))),
                // not whole in this chunk: the decoder takes what there is
                Err(ProtocolError::Truncated { .. }) => {}
                Err(broken) => return Err(broken),
            }
        }
        let mut input = &self.rest[..];
        let before = input.len();
        let frame = self.decoder.feed(&mut input);
        let used = before - input.len();
        self.rest.advance(used);
        Ok(frame?.map(|(header, body)| (header, Received::Aligned(body))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{frame::Kind, message::encode_frame, Compression};

    fn reply(id: u64, body: &[u8]) -> Vec<u8> {
        let header = FrameHeader::new(Kind::ReplyOk, 0).with_id(id);
        encode_frame(header, body, Compression::None)
            .unwrap()
            .to_vec()
    }

    /// Every frame cut from `chunks`, fed one after another.
    fn cut_all(frames: &mut ChunkFrames, chunks: &[&[u8]]) -> Vec<(u64, Vec<u8>, bool)> {
        let mut out = Vec::new();
        for chunk in chunks {
            frames.rest = Shared::copy_from_slice(chunk);
            while let Some((header, body)) = frames.cut().unwrap() {
                let shared = matches!(body, Received::Shared(_));
                out.push((header.id, body.to_vec(), shared));
            }
        }
        out
    }

    #[test]
    fn whole_frames_are_slices_of_their_chunk() {
        let mut chunk = reply(1, b"one");
        chunk.extend(reply(2, &[]));
        chunk.extend(reply(3, b"three"));
        let cut = cut_all(&mut ChunkFrames::new(64), &[&chunk]);
        assert_eq!(
            cut,
            vec![
                (1, b"one".to_vec(), true),
                (2, vec![], true),
                (3, b"three".to_vec(), true)
            ]
        );
    }

    #[test]
    fn a_frame_split_between_chunks_is_assembled() {
        let body: Vec<u8> = (0..100).collect();
        let mut bytes = reply(1, b"first");
        let second_starts = bytes.len();
        bytes.extend(reply(2, &body));
        bytes.extend(reply(3, b"last"));
        // split inside the second frame's header, then inside its body
        let (a, rest) = bytes.split_at(second_starts + 10);
        let (b, c) = rest.split_at(40);
        let mut frames = ChunkFrames::new(1024);
        let cut = cut_all(&mut frames, &[a, b, c]);
        assert_eq!(
            cut,
            vec![
                (1, b"first".to_vec(), true),
                (2, body, false),
                (3, b"last".to_vec(), true)
            ]
        );
        assert!(matches!(
            ReadError::ended(&frames.decoder),
            ReadError::Finished
        ));
    }

    #[test]
    fn a_header_over_the_limit_or_a_stream_cut_short_is_refused() {
        let large = reply(1, &[0; 100]);
        let mut frames = ChunkFrames::new(99);
        frames.rest = Shared::from(large.clone());
        assert!(matches!(
            frames.cut(),
            Err(ProtocolError::FrameTooLarge { len: 100, max: 99 })
        ));
        let mut frames = ChunkFrames::new(100);
        frames.rest = Shared::copy_from_slice(&large[..50]);
        assert!(frames.cut().unwrap().is_none());
        assert!(matches!(
            ReadError::ended(&frames.decoder),
            ReadError::Protocol(ProtocolError::Truncated {
                expected: 124,
                got: 50
            })
        ));
    }

    /// The header comes first, whole in a chunk or split between chunks, and the frame
    /// after it is cut as `next` cuts any: a slice of its chunk, or assembled.
    #[test]
    fn a_header_is_read_before_its_frame_is_cut() {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let body: Vec<u8> = (0..100).collect();
        let frame = reply(9, &body);
        for split in [0, 5, HEADER_LEN, HEADER_LEN + 40, frame.len()] {
            let mut chunks = vec![
                Shared::copy_from_slice(&frame[..split]),
                Shared::copy_from_slice(&frame[split..]),
            ]
            .into_iter();
            let mut source =
                |_: &mut std::task::Context<'_>| std::task::Poll::Ready(Ok(chunks.next()));
            let mut frames = ChunkFrames::new(1024);
            let std::task::Poll::Ready(Ok(header)) = frames.poll_header(&mut cx, &mut source)
            else {
                panic!("the header, split at {split}");
            };
            assert_eq!((header.id, header.body_len), (9, 100), "split at {split}");
            let std::task::Poll::Ready(Ok((cut, got))) = frames.poll_next(&mut cx, &mut source)
            else {
                panic!("the frame, split at {split}");
            };
            assert_eq!((cut, &got[..]), (header, &body[..]), "split at {split}");
            let whole = matches!(got, Received::Shared(_));
            assert_eq!(
                whole,
                split == 0 || split == frame.len(),
                "split at {split}"
            );
            assert!(!frames.partial());
        }
        // a header over the limit is refused before any of its body is taken
        let mut chunks = vec![Shared::from(frame)].into_iter();
        let mut source = |_: &mut std::task::Context<'_>| std::task::Poll::Ready(Ok(chunks.next()));
        assert!(matches!(
            ChunkFrames::new(99).poll_header(&mut cx, &mut source),
            std::task::Poll::Ready(Err(ReadError::Protocol(ProtocolError::FrameTooLarge {
                len: 100,
                max: 99
            })))
        ));
    }

    #[test]
    fn next_read_cuts_what_was_read_and_never_reads() {
        let mut bytes = reply(1, b"one");
        let second = reply(2, b"two");
        bytes.extend(&second[..7]);
        let mut frames = ChunkFrames::new(64);
        assert!(frames.next_read().is_none(), "nothing read yet");
        frames.rest = Shared::from(bytes);
        let (header, body) = frames.next_read().unwrap().unwrap();
        assert_eq!((header.id, &body[..]), (1, &b"one"[..]));
        // the second frame is not whole: it waits for the next chunk, which poll_next reads
        assert!(frames.next_read().is_none());
        assert!(frames.partial());
        let mut rest = Some(Shared::copy_from_slice(&second[7..]));
        let mut source = |_: &mut std::task::Context<'_>| std::task::Poll::Ready(Ok(rest.take()));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let std::task::Poll::Ready(Ok((header, body))) = frames.poll_next(&mut cx, &mut source)
        else {
            panic!("the second frame, completed by the next chunk");
        };
        assert_eq!((header.id, &body[..]), (2, &b"two"[..]));
        // a header over the limit is refused as poll_next refuses it
        frames.rest = Shared::from(reply(3, &[0; 100]));
        assert!(matches!(
            frames.next_read(),
            Some(Err(ProtocolError::FrameTooLarge { len: 100, max: 64 }))
        ));
    }
}
