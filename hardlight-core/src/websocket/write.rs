//! Messages written to a byte stream: HardLight's frames packed into few binary messages
//! in the write buffer itself, other messages between them; masked where a client writes.

use std::io::{self, IoSlice};

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::{frame as whole_frame, header, mask, Opcode, Role, MAX_HEADER};
use crate::coalesce::{Frame, COALESCE_BELOW, MAX_CHUNK};

/// Payloads below this size are copied into the write buffer; a server writes larger ones
/// from where they are, beside their header (a client masks them where they are when it
/// owns them).
const COPY_BELOW: usize = 16 * 1024;

/// The write buffer is written out once its whole messages make this much (and at every
/// flush): it holds at most that and the message being packed.
const WRITE_AT: usize = 16 * 1024;

/// Writes messages to `io`.
///
/// Frames below [`COALESCE_BELOW`] bytes are packed together into binary messages of at
/// most [`MAX_CHUNK`] bytes, each frame copied once, into the write buffer, where the
/// message's header is put in front of them when it ends; larger frames travel alone
/// (`PROTOCOL.md` §1 Transport and negotiation, packing). The buffer is written out once its whole messages make
/// 16 KiB, and at every [`flush`](Self::flush).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use hardlight_core::websocket::{MessageWriter, Role};
///
/// let mut wire = Vec::new();
/// let mut writer = MessageWriter::new(&mut wire, Role::Server);
/// writer.frame(vec![1u8; 10]).await.unwrap();
/// writer.frame(vec![2u8; 20]).await.unwrap();
/// writer.flush().await.unwrap();
/// // one message of both frames: a two-byte header, then 30 bytes
/// assert_eq!(&wire[..2], [0x82, 30]);
/// assert_eq!(wire.len(), 32);
/// # });
/// ```
#[derive(Debug)]
pub struct MessageWriter<W> {
    io: W,
    role: Role,
    /// Whole messages with their headers, then the message being packed.
    out: Vec<u8>,
    /// Where the message being packed begins in `out`: room kept for its header.
    open: Option<usize>,
}

impl<W: AsyncWrite + Unpin> MessageWriter<W> {
    /// A writer for `role`'s end of the connection.
    pub fn new(io: W, role: Role) -> Self {
        Self {
            io,
            role,
            out: Vec::new(),
            open: None,
        }
    }

    /// Adds `frame` to the message being packed, or writes it as a message of its own.
    pub async fn frame<F: Frame>(&mut self, frame: F) -> io::Result<()> {
        let len = frame.as_ref().len();
        if len >= COALESCE_BELOW {
            return self.large(frame).await;
        }
        if let Some(start) = self.open {
            if self.out.len() - (start + self.kept()) + len > MAX_CHUNK {
                self.seal();
                if self.out.len() >= WRITE_AT {
                    self.write_out(&[]).await?;
                }
            }
        }
        if self.open.is_none() {
            self.open = Some(self.out.len());
            self.out.extend_from_slice(&[0; 6][..self.kept()]);
        }
        self.out.extend_from_slice(frame.as_ref());
        frame.copied();
        Ok(())
    }

    /// Writes a frame given in pieces ([`Framed::Pieces`](crate::message::Framed)) as a
    /// message of its own: a server writes large pieces from where they are, beside what
    /// it buffered; a client copies them behind the header to mask them.
    pub async fn pieces(&mut self, pieces: &[Bytes]) -> io::Result<()> {
        self.seal();
        let len = pieces.iter().map(Bytes::len).sum();
        let key = self.key();
        header(&mut self.out, Opcode::Binary, len, key);
        if let Some(key) = key {
            let payload = self.out.len();
            pieces
                .iter()
                .for_each(|piece| self.out.extend_from_slice(piece));
            mask(&mut self.out[payload..], key);
            return self.write_if_full().await;
        }
        for piece in pieces {
            if piece.len() < COPY_BELOW {
                self.out.extend_from_slice(piece);
            } else {
                self.write_out(piece).await?;
            }
        }
        self.write_if_full().await
    }

    /// Ends the message being packed: the next frame begins another.
    pub fn seal(&mut self) {
        let Some(start) = self.open.take() else {
            return;
        };
        let payload = start + self.kept();
        let key = self.key();
        if let Some(key) = key {
            mask(&mut self.out[payload..], key);
        }
        let mut head = [0; MAX_HEADER];
        let mut rest = &mut head[..];
        header(&mut rest, Opcode::Binary, self.out.len() - payload, key);
        let used = MAX_HEADER - rest.len();
        if used == payload - start {
            self.out[start..payload].copy_from_slice(&head[..used]);
        } else {
            // a header longer than the room kept (a length above 125) moves the payload on
            self.out
                .splice(start..payload, head[..used].iter().copied());
        }
    }

    /// Writes a message of `payload` of its own (a control message, say), after those
    /// before it.
    pub async fn message(&mut self, opcode: Opcode, payload: &[u8]) -> io::Result<()> {
        self.seal();
        let key = self.key();
        if key.is_none() && payload.len() >= COPY_BELOW {
            header(&mut self.out, opcode, payload.len(), key);
            return self.write_out(payload).await;
        }
        whole_frame(&mut self.out, opcode, payload, key);
        self.write_if_full().await
    }

    /// Writes out what is buffered and flushes the stream.
    pub async fn flush(&mut self) -> io::Result<()> {
        self.seal();
        if !self.out.is_empty() {
            self.write_out(&[]).await?;
        }
        self.io.flush().await
    }

    /// A frame that travels alone: a client masks one too large to copy where it lies,
    /// when nothing else holds it.
    async fn large<F: Frame>(&mut self, frame: F) -> io::Result<()> {
        if self.role == Role::Server || frame.as_ref().len() < COPY_BELOW {
            let written = self.message(Opcode::Binary, frame.as_ref()).await;
            frame.copied();
            return written;
        }
        self.seal();
        let key = rand::random();
        let payload: Bytes = frame.into();
        match payload.try_into_mut() {
            Ok(mut owned) => {
                header(&mut self.out, Opcode::Binary, owned.len(), Some(key));
                mask(&mut owned, key);
                self.write_out(&owned).await
            }
            Err(shared) => {
                whole_frame(&mut self.out, Opcode::Binary, &shared, Some(key));
                self.write_if_full().await
            }
        }
    }

    /// Writes the write buffer out once it holds [`WRITE_AT`] bytes.
    async fn write_if_full(&mut self) -> io::Result<()> {
        if self.out.len() >= WRITE_AT {
            self.write_out(&[]).await?;
        }
        Ok(())
    }

    /// Writes the write buffer, then `after`.
    async fn write_out(&mut self, after: &[u8]) -> io::Result<()> {
        if after.is_empty() {
            // a plain write: rustls gathers a vectored one through an allocation
            self.io.write_all(&self.out).await?;
        } else {
            write_both(&mut self.io, &self.out, after).await?;
        }
        self.out.clear();
        Ok(())
    }

    /// The room kept for a packed message's header: the two bytes of a length up to 125,
    /// and a client's mask.
    fn kept(&self) -> usize {
        match self.role {
            Role::Server => 2,
            Role::Client => 6,
        }
    }

    /// A new mask for a client's message (RFC 6455, section 5.3); `None` for a server's.
    fn key(&self) -> Option<[u8; 4]> {
        match self.role {
            Role::Server => None,
            Role::Client => Some(rand::random()),
        }
    }
}

/// Writes `first`, then `second`, with vectored writes.
async fn write_both<W: AsyncWrite + Unpin>(
    io: &mut W,
    mut first: &[u8],
    mut second: &[u8],
) -> io::Result<()> {
    while !first.is_empty() || !second.is_empty() {
        let written = io
            .write_vectored(&[IoSlice::new(first), IoSlice::new(second)])
            .await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let from_first = written.min(first.len());
        first = &first[from_first..];
        second = &second[written - from_first..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::websocket::{Decoded, Decoder, Message};

    /// What `frames` make on the wire, written by `role` and read back by its peer.
    async fn round_trip(role: Role, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut wire = Vec::new();
        let mut writer = MessageWriter::new(&mut wire, role);
        for frame in frames {
            writer.frame(frame.clone()).await.unwrap();
        }
        writer.message(Opcode::Ping, b"p").await.unwrap();
        writer.flush().await.unwrap();
        read_back(role, &wire)
    }

    /// The binary messages on `wire`, written by `role`, as its peer reads them.
    fn read_back(role: Role, wire: &[u8]) -> Vec<Vec<u8>> {
        let peer = match role {
            Role::Server => Role::Client,
            Role::Client => Role::Server,
        };
        let mut decoder = Decoder::new(peer, 1 << 20);
        let mut read = BytesMut::from(wire);
        let mut messages = Vec::new();
        while let Decoded::Message(message) = decoder.decode(&mut read).unwrap() {
            match message {
                Message::Binary(bytes) => messages.push(bytes.to_vec()),
                Message::Ping(payload) => assert_eq!(&payload[..], b"p"),
                other => panic!("{other:?}"),
            }
        }
        assert!(read.is_empty());
        messages
    }

    #[tokio::test]
    async fn frames_pack_into_messages_both_ways() {
        // small frames together up to 16 KiB, larger ones alone, every length encoding
        let frames: Vec<Vec<u8>> = [10, 200, 4000, 4000, 4000, 4000, 4000, 5, 70_000, 1, 125]
            .iter()
            .enumerate()
            .map(|(i, &len)| vec![i as u8; len])
            .collect();
        for role in [Role::Server, Role::Client] {
            let messages = round_trip(role, &frames).await;
            let lens: Vec<usize> = messages.iter().map(Vec::len).collect();
            assert_eq!(lens, [10 + 200 + 4 * 4000, 4000 + 5, 70_000, 126]);
            assert_eq!(messages.concat(), frames.concat(), "{role:?}");
        }
    }

    #[tokio::test]
    async fn a_frame_in_pieces_is_one_message_between_the_others_both_ways() {
        let pieces: Vec<Bytes> = [30, 20_000, 8, 0, 70_000, 3]
            .iter()
            .enumerate()
            .map(|(i, &len)| Bytes::from(vec![i as u8 + 1; len]))
            .collect();
        let whole = pieces.concat();
        for role in [Role::Server, Role::Client] {
            let mut wire = Vec::new();
            let mut writer = MessageWriter::new(&mut wire, role);
            writer.frame(vec![9u8; 10]).await.unwrap();
            writer.pieces(&pieces).await.unwrap();
            writer.frame(vec![7u8; 10]).await.unwrap();
            writer.flush().await.unwrap();
            let messages = read_back(role, &wire);
            assert_eq!(
                messages,
                [vec![9u8; 10], whole.clone(), vec![7u8; 10]],
                "{role:?}"
            );
        }
    }
}
