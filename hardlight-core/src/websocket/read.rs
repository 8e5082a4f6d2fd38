//! Messages read from a byte stream: a [`Decoder`] over a read buffer that grows with
//! what the peer sent, by the rule of [`crate::read_growth`].

use std::{
    future::poll_fn,
    io,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::BytesMut;
use tokio::io::AsyncRead;
use tokio_util::io::poll_read_buf;

use super::{Decoded, Decoder, FramingError, Message};
use crate::read_growth::room_ahead;

/// The room made for each read at least: a small call's message, and what an idle
/// connection's buffer holds.
const READ_AT_LEAST: usize = 1024;

/// Why reading a message failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The peer broke RFC 6455's rules or sent a message above the limit.
    #[error(transparent)]
    Framing(#[from] FramingError),
    /// The stream failed, or ended in the middle of a message.
    #[error("reading the WebSocket failed: {0}")]
    Io(#[from] io::Error),
}

/// Reads messages from `io`.
///
/// The read buffer grows to hold the frame being read, but to at most twice what the peer
/// has sent of it (eight times, past 64 KiB), and 1 KiB: a header announcing a large frame
/// reserves nothing by itself. The payload of a message in one frame is handed on without
/// a copy.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use bytes::BytesMut;
/// use hardlight_core::websocket::{header, Decoder, Message, MessageReader, Opcode, Role};
///
/// let mut wire = Vec::new();
/// header(&mut wire, Opcode::Binary, 2, None);
/// wire.extend_from_slice(b"hi");
/// let mut reader =
///     MessageReader::new(&wire[..], Decoder::new(Role::Client, 1024), BytesMut::new());
/// assert!(matches!(reader.next().await, Some(Ok(Message::Binary(b))) if &b[..] == b"hi"));
/// assert!(reader.next().await.is_none());
/// # });
/// ```
#[derive(Debug)]
pub struct MessageReader<R> {
    io: R,
    read: BytesMut,
    decoder: Decoder,
}

impl<R: AsyncRead + Unpin> MessageReader<R> {
    /// Reads from `io` with `decoder`, after the bytes `read` already holds (those read
    /// past the HTTP upgrade).
    pub fn new(io: R, decoder: Decoder, read: BytesMut) -> Self {
        Self { io, read, decoder }
    }

    /// The next message; `None` when the stream ended between messages.
    pub async fn next(&mut self) -> Option<Result<Message, ReadError>> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Polls for the next message; `None` when the stream ended between messages.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, ReadError>>> {
        loop {
            let need = match self.decoder.decode(&mut self.read) {
                Ok(Decoded::Message(message)) => return Poll::Ready(Some(Ok(message))),
                Ok(Decoded::Need(need)) => need,
                Err(error) => return Poll::Ready(Some(Err(error.into()))),
            };
            // room for what the frame needs, within a few times what was read of it
            let read = self.read.len();
            self.read
                .reserve(need.min(room_ahead(read).max(READ_AT_LEAST)));
            match poll_read_buf(Pin::new(&mut self.io), cx, &mut self.read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) if !self.in_message() => return Poll::Ready(None),
                Poll::Ready(Ok(0)) => {
                    let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
                    return Poll::Ready(Some(Err(eof.into())));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(error)) => return Poll::Ready(Some(Err(error.into()))),
            }
        }
    }

    /// Whether part of a message was read: the peer is in the middle of one.
    pub fn in_message(&self) -> bool {
        !self.read.is_empty() || self.decoder.in_message()
    }
}
