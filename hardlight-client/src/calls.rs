//! The call side of a connection, whatever transport carries it: the drain after
//! `GoAway`, encoding and compression, the server's size limit, and opening the reply. A
//! transport only moves the call frame out and its reply frame back ([`Exchange`]).

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll, Waker},
};

use hardlight_core::{
    codec::Bytes,
    frame::{FrameHeader, Kind, HEADER_LEN},
    handshake::Welcome,
    message::{open_aligned_body, open_body, Body},
    received::Received,
    Compression, Priority, ProtocolError,
};

use crate::{
    config::ClientConfig,
    drain::{Drain, InFlight},
    error::CallError,
    mux::MuxReply,
    streaming::{ItemSink, ItemSource},
};

/// A reply frame: its header and its body, as received.
pub(crate) type Reply = (FrameHeader, Received);

/// Largest call frame sent on a QUIC or WebTransport call channel: a larger one would
/// hold up the calls behind it, and gets a stream of its own.
pub(crate) const CHANNEL_MAX: usize = 16 * 1024;

/// Whether a unary call frame goes on the call channel (no larger than `channel_max`,
/// of normal priority) rather than on a stream of its own.
pub(crate) fn rides_channel(frame: &[u8], channel_max: usize) -> bool {
    frame.len() <= channel_max && priority_of(frame) == Priority::Normal
}

/// The priority a call frame carries in its flags.
pub(crate) fn priority_of(frame: &[u8]) -> Priority {
    frame
        .get(5)
        .map_or(Priority::Normal, |&flags| Priority::from_flags(flags))
}

/// Carries one call frame to the server and its reply frame back (still compressed).
pub(crate) trait Exchange: Send + Sync {
    /// Sends `frame` now if it can go at once, and gives the future of its reply, which
    /// `waker` (the calling task's) is woken for; dropping the future cancels the call on
    /// the server.
    fn exchange(&self, frame: Vec<u8>, reply_max: u32, waker: Waker) -> Exchanged<'_>;

    /// Starts a streaming call: sends its frame and returns where its items and reply
    /// arrive. Dropping that cancels the call on the server.
    fn open_stream(
        &self,
        frame: Vec<u8>,
        reply_max: u32,
        sends_items: bool,
    ) -> impl Future<Output = Result<ItemSource, CallError>> + Send;
}

/// A connection's calls over transport `T`.
#[derive(Debug)]
pub(crate) struct Calls<T> {
    pub(crate) transport: T,
    pub(crate) drain: Arc<Drain>,
    compression: Compression,
    /// Largest call the server accepts.
    server_max: u32,
    /// Largest reply (and push) the client accepts.
    pub(crate) reply_max: u32,
}

impl<T: Exchange> Calls<T> {
    /// The calls of a connection whose handshake returned `welcome`; `drain` closes it
    /// after `GoAway` once its last call has its reply.
    pub(crate) fn new(
        transport: T,
        drain: Arc<Drain>,
        welcome: &Welcome,
        config: &ClientConfig,
    ) -> Self {
        Self {
            transport,
            drain,
            compression: welcome.compression_for(config.compression),
            server_max: welcome.max_message_size,
            reply_max: config.limits.max_message_size(),
        }
    }

    /// Makes the call `header` (method, budget, flags) with body `args`, sent now if it can
    /// go at once, and gives the future of its opened reply frame, for which `waker` is
    /// woken. Dropping the future cancels the call.
    pub(crate) fn call(
        &self,
        header: FrameHeader,
        args: Body,
        waker: Waker,
    ) -> Result<Replied<'_>, CallError> {
        let in_flight = self.drain.enter()?;
        let frame = self.frame(header, args)?;
        Ok(Replied {
            exchanged: self.transport.exchange(frame, self.reply_max, waker),
            compressed: self.compressed(),
            max: self.reply_max,
            _in_flight: in_flight,
        })
    }

    /// Starts the streaming call `header` with body `args` (whose items the client
    /// sends, if `sends_items`); its items and reply come from the returned stream,
    /// opened.
    pub(crate) async fn stream(
        &self,
        header: FrameHeader,
        args: Body,
        sends_items: bool,
    ) -> Result<OpenedItems, CallError> {
        let in_flight = self.drain.enter_owned()?;
        let frame = self.frame(header, args)?;
        let source = self
            .transport
            .open_stream(frame, self.reply_max, sends_items)
            .await?;
        Ok(OpenedItems {
            source,
            _in_flight: in_flight,
            compression: self.compression,
            server_max: self.server_max,
            max: self.reply_max,
        })
    }

    /// The frame of a call, refused here if it is larger than the server accepts (the
    /// server would close the connection).
    fn frame(&self, header: FrameHeader, args: Body) -> Result<Vec<u8>, CallError> {
        framed(header, args, self.compression, self.server_max)
    }

    fn compressed(&self) -> bool {
        self.compression != Compression::None
    }
}

/// A call's reply on its way, as a transport carries it.
///
/// A multiplexed call, the common one, waits for its reply (or its slot) in the call table
/// and carries only its id: its future is small, since an application that spawns its
/// calls, or boxes them, copies it once per call.
pub(crate) enum Exchanged<'a> {
    /// Sent on a multiplexed channel, or in line to be: its reply comes to the call table.
    Mux(MuxReply<'a>),
    /// On a stream of its own: boxed, so that a multiplexed call does not carry the room
    /// of one.
    Boxed(Pin<Box<dyn Future<Output = Result<Reply, CallError>> + Send + 'a>>),
    /// Failed before it was sent.
    Failed(Option<CallError>),
}

impl Exchanged<'_> {
    /// The call failed before it was sent.
    pub(crate) fn failed(error: CallError) -> Self {
        Self::Failed(Some(error))
    }
}

impl Future for Exchanged<'_> {
    type Output = Result<Reply, CallError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Self::Mux(reply) => Pin::new(reply).poll(cx),
            Self::Boxed(future) => future.as_mut().poll(cx),
            // once only: a future is not polled after it completes
            Self::Failed(error) => error.take().map_or(Poll::Pending, |e| Poll::Ready(Err(e))),
        }
    }
}

/// A call's reply frame, opened, on its way ([`Calls::call`]); the call is counted in
/// flight for the drain after `GoAway` until this drops.
pub(crate) struct Replied<'a> {
    exchanged: Exchanged<'a>,
    /// Compression was negotiated: a compressed reply is expected.
    compressed: bool,
    /// Largest reply the client accepts.
    max: u32,
    _in_flight: InFlight<&'a Drain>,
}

impl Future for Replied<'_> {
    type Output = Result<Reply, CallError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let (header, body) = ready!(Pin::new(&mut this.exchanged).poll(cx))?;
        if !header.is_compressed() {
            return Poll::Ready(Ok((header, body)));
        }
        let body = open_body(&header, &body, this.compressed, this.max)?;
        Poll::Ready(Ok((header, Received::Aligned(body))))
    }
}

/// The frame of `body`, refused here if its body is larger than the server accepts
/// (`server_max`: the server would close the connection).
fn framed(
    header: FrameHeader,
    body: Body,
    compression: Compression,
    server_max: u32,
) -> Result<Vec<u8>, CallError> {
    let frame = body.frame(header, compression)?;
    let body_len = frame.len().saturating_sub(HEADER_LEN);
    if body_len > server_max as usize {
        return Err(CallError::Protocol(ProtocolError::FrameTooLarge {
            len: body_len as u64,
            max: server_max,
        }));
    }
    Ok(frame)
}

/// Sends the client's items of a streaming call: framed, compressed when it pays, and
/// refused here if larger than the server accepts.
#[derive(Debug)]
pub(crate) struct ItemSender {
    sink: ItemSink,
    compression: Compression,
    server_max: u32,
}

impl ItemSender {
    /// Sends `item` once the server has room for it.
    pub(crate) async fn send(&mut self, item: Body) -> Result<(), CallError> {
        let header = FrameHeader::new(Kind::StreamItem, 0);
        let frame = framed(header, item, self.compression, self.server_max)?;
        self.sink.send(frame).await
    }

    /// Sends the items held to go together (over QUIC): no next item is ready, or there
    /// is none.
    pub(crate) async fn flush(&mut self) -> Result<(), CallError> {
        self.sink.flush().await
    }

    /// The items are all sent.
    pub(crate) async fn end(self) {
        self.sink.end().await;
    }

    /// The items cannot all be sent: the call fails with `error`.
    pub(crate) fn fail(self, error: CallError) {
        self.sink.fail(error);
    }
}

/// A streaming call's items and reply, their bodies opened; counted in flight for the
/// drain after `GoAway` until dropped.
#[derive(Debug)]
pub(crate) struct OpenedItems {
    source: ItemSource,
    _in_flight: InFlight<Arc<Drain>>,
    compression: Compression,
    /// Largest item the server accepts.
    server_max: u32,
    /// Largest item and reply the client accepts.
    max: u32,
}

impl OpenedItems {
    /// The next item or the reply, and its size on the wire.
    pub(crate) async fn next(&mut self) -> Result<(FrameHeader, Bytes, usize), CallError> {
        let (header, body) = self.source.next().await?;
        let wire = HEADER_LEN + header.body_len as usize;
        let compressed = self.compression != Compression::None;
        let body = open_aligned_body(&header, body, compressed, self.max)?;
        Ok((header, body, wire))
    }

    /// What sends the client's items, for a call that sends them (once).
    pub(crate) fn sender(&mut self) -> Option<ItemSender> {
        Some(ItemSender {
            sink: self.source.sink()?,
            compression: self.compression,
            server_max: self.server_max,
        })
    }

    /// The application took an item of `frame_len` bytes on the wire.
    pub(crate) async fn took(&mut self, frame_len: usize) -> Result<(), CallError> {
        self.source.took(frame_len).await
    }
}
