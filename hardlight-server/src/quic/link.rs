//! A QUIC connection as a [`Link`]: the handshake on the first bidirectional stream,
//! which then stays open as the call channel (calls multiplexed by id, as over
//! WebSocket); a bidirectional stream of its own for each other call; a server-opened
//! unidirectional push stream.

use std::{
    future::{pending, poll_fn, Future},
    ops::Deref,
    pin::Pin,
    sync::Arc,
    task::Poll,
    time::Duration,
};

use bytes::Bytes as Shared;
use hardlight_core::{
    chunk_frames::ChunkFrames,
    close::Close,
    coalesce::Coalesced,
    codec::Bytes,
    frame::{FrameHeader, Kind, HEADER_LEN},
    held_items::HeldItems,
    io::{read_frame, ReadError},
    message::Framed,
    received::Received,
    stream::{no_items, Inbound},
    ErrorCode, Priority, ProtocolError,
};
use quinn::{ConnectionError, RecvStream, SendStream, ZeroRttAccepted};
use tokio::time::{timeout, Instant, Sleep};
use tracing::debug;

use crate::{
    connection::{
        mux::{Broken, Demux, Fed, FrameSink, MuxCall, Outgoing, Writer},
        CallIo, Ended, FrameDeadline, Incoming, Link, NoHello, Woken,
    },
    session::{
        dispatch::{both_shares, reserve, Call, Reservation, Unread},
        push::PushSink,
        CallEnv, ServerShared,
    },
    stats::ServerCounters,
};

use super::{
    session::{Accepting, Datagrams, QuicSession},
    validation::UnprovenHandshake,
    webtransport::Framing,
};

/// How long a rejected client gets to read its `Reject` before the connection closes.
const REJECT_LINGER: Duration = Duration::from_secs(2);

/// One QUIC connection (or WebTransport session) after its TLS handshake.
pub(crate) struct QuicLink {
    session: QuicSession,
    /// The handshake stream's sending half, until the answer is written.
    answer: Option<SendStream>,
    /// The handshake stream, once the `Welcome` is out.
    channel: Option<Channel>,
    /// Its receiving half, until then.
    hello: Option<RecvStream>,
    send_timeout: Duration,
    frame_read_timeout: Duration,
    max_message_size: u32,
    /// `ServerLimits::max_concurrent_calls`: the call channel's writer has room for each
    /// call's reply.
    max_calls: u32,
    /// Completes with the TLS handshake, until it has.
    handshake: Option<ZeroRttAccepted>,
    /// Counted as a handshake of a peer whose address is unproven, until it completes.
    unproven: Option<UnprovenHandshake>,
    counters: Arc<ServerCounters>,
    /// The call channel's replies, from its first call.
    writer: Option<Writer>,
    /// The next stream a client opens for a call of its own, once the connection is live.
    accepting: Option<Accepting>,
    /// Polls `accepting` and the writer's end only when one of them has woken.
    control: Woken,
}

impl QuicLink {
    pub(crate) fn new(
        session: QuicSession,
        handshake: Option<ZeroRttAccepted>,
        unproven: Option<UnprovenHandshake>,
        shared: &ServerShared,
    ) -> Self {
        let limits = &shared.limits;
        Self {
            session,
            answer: None,
            channel: None,
            hello: None,
            send_timeout: limits.send_timeout(),
            frame_read_timeout: limits.frame_read_timeout(),
            max_message_size: limits.max_message_size(),
            max_calls: shared.server_limits.max_concurrent_calls(),
            handshake,
            unproven,
            counters: Arc::clone(&shared.counters),
            writer: None,
            accepting: None,
            control: Woken::new(),
        }
    }

    /// Waits for the TLS handshake to complete (which proves the peer's address); `false`
    /// if it failed.
    async fn handshake_complete(&mut self) -> bool {
        if let Some(handshake) = self.handshake.take() {
            // on a server it resolves when the handshake completes or fails; its value
            // says nothing of 0-RTT there
            let _ = handshake.await;
            if self.session.conn.close_reason().is_some() {
                return false;
            }
        }
        self.unproven = None;
        true
    }

    async fn answer(&mut self, frame: &[u8]) -> Option<&mut SendStream> {
        let send = self.answer.as_mut()?;
        timeout(self.send_timeout, send.write_all(frame))
            .await
            .ok()?
            .ok()?;
        Some(send)
    }
}

impl Link for QuicLink {
    type Call<'e> = QuicCall<&'e CallEnv>;
    type Push = QuicPush;

    async fn hello(&mut self, max: u32) -> Result<(FrameHeader, Bytes), NoHello> {
        let (send, mut recv) = self.session.accept_bi().await.map_err(|_| NoHello::Gone)?;
        self.session
            .framing()
            .read_stream_header(&mut recv)
            .await
            .map_err(|e| NoHello::Invalid(format!("handshake stream: {e}")))?;
        if recv.is_0rtt() {
            // a replay of it cannot get here: the ticket it needs is single-use
            self.counters.zero_rtt_handshake();
        }
        self.answer = Some(send);
        // exactly the `Hello`: what follows it on the stream is the call channel's
        let hello = read_frame(&mut recv, max)
            .await
            .map_err(|e| NoHello::Invalid(format!("handshake: {e}")))?;
        self.hello = Some(recv);
        Ok(hello)
    }

    async fn welcome(&mut self, frame: Vec<u8>) -> bool {
        if self.answer(&frame).await.is_none() {
            return false;
        }
        // 0-RTT data is for the `Hello` alone: calls are read once the handshake is
        // complete, so none of them can be a replay
        if !self.handshake_complete().await {
            return false;
        }
        if let (Some(send), Some(recv)) = (self.answer.take(), self.hello.take()) {
            self.channel = Some(Channel {
                recv: Some((recv, ChunkFrames::new(self.max_message_size))),
                send: Some(send),
                demux: None,
                deadline: FrameDeadline::new(self.frame_read_timeout),
            });
        }
        true
    }

    async fn reject(&mut self, frame: Vec<u8>, reason: &str) {
        // wait (briefly) until the client has the reason, then close
        if let Some(send) = self.answer(&frame).await {
            if send.finish().is_ok() {
                let _ = timeout(REJECT_LINGER, send.stopped()).await;
            }
        }
        self.close(Close::Rejected, reason);
    }

    async fn open_push(&mut self) -> Option<QuicPush> {
        let stream = self.session.open_uni().await?;
        Some(QuicPush {
            stream,
            batch: Coalesced::default(),
            datagrams: self.session.datagrams(),
        })
    }

    async fn next<'e>(&mut self, context: &'e CallEnv) -> Incoming<QuicCall<&'e CallEnv>> {
        loop {
            let Self {
                session,
                channel,
                writer,
                accepting,
                control,
                ..
            } = self;
            // calls on streams of their own, polled when they have woken; the channel, where
            // most calls come, at every turn; its writer once the channel has nothing more
            // to read
            let accept = accepting.get_or_insert_with(|| session.accepting());
            let woke = control.next(|cx| accept.as_mut().poll(cx).map(Control::Accepted));
            let written = poll_fn(|cx| match writer {
                Some(writer) => writer.poll_ended(cx),
                None => Poll::Pending,
            });
            let read = tokio::select! {
                biased;
                woke = woke => woke,
                read = next_on(channel, context) => match read {
                    Some(read) => Control::Read(read),
                    None => continue,
                },
                () = written => Control::WriterEnded,
            };
            return match read {
                Control::Accepted(accepted) => {
                    *accepting = None;
                    match accepted {
                        Ok((send, recv)) => {
                            Incoming::Call(QuicCall::Stream(Box::new(StreamCall {
                                send,
                                recv: Some((recv, ChunkFrames::new(self.max_message_size))),
                                send_timeout: self.send_timeout,
                                framing: session.framing(),
                                held: HeldItems::default(),
                            })))
                        }
                        Err(error) => {
                            debug!(%error, "connection ended");
                            Incoming::Ended(ended(&error))
                        }
                    }
                }
                // the channel's writer ended with the connection still up: the client stopped
                // taking its replies (it did not read them within send_timeout, or stopped the
                // stream)
                Control::WriterEnded if session.conn.close_reason().is_none() => {
                    debug!("the call channel's writer stopped: a write failed or took longer than send_timeout");
                    Incoming::Violation(
                        Close::SlowConsumer,
                        "the client did not take its call channel's replies within send_timeout"
                            .into(),
                    )
                }
                Control::WriterEnded => Incoming::Ended(Ended::Lost),
                Control::Read(Read::Incoming(incoming)) => incoming.map(QuicCall::Channel),
                Control::Read(Read::First(header, body)) => {
                    // the channel's first call starts its writer (an idle connection has none)
                    let Some(channel) = channel else {
                        continue;
                    };
                    let Some(stream) = channel.send.take() else {
                        continue;
                    };
                    let started = Writer::start(
                        ChannelSink {
                            stream,
                            batch: Coalesced::default(),
                        },
                        self.send_timeout,
                        self.max_calls,
                    );
                    let demux = channel.demux.insert(Demux::new(&started, false));
                    *writer = Some(started);
                    match demux.frame(header, body, context) {
                        Some(incoming) => incoming.map(QuicCall::Channel),
                        None => continue,
                    }
                }
            };
        }
    }

    fn next_now<'e>(&mut self, context: &'e CallEnv) -> Option<Incoming<QuicCall<&'e CallEnv>>> {
        // a call on a stream of its own, or the connection's end, is seen to first
        if self.control.is_woken() {
            return None;
        }
        let Channel {
            recv: Some((_, reader)),
            demux: Some(demux),
            deadline,
            ..
        } = self.channel.as_mut()?
        else {
            return None;
        };
        while !demux.is_waiting() {
            let incoming = match reader.next_read()? {
                Ok((header, body)) => {
                    deadline.read();
                    demux.frame(header, body, context)
                }
                Err(error) => Some(broken(&error)),
            };
            if let Some(incoming) = incoming {
                return Some(incoming.map(QuicCall::Channel));
            }
        }
        None
    }

    fn close(&mut self, close: Close, reason: &str) {
        self.session.close(close, reason);
    }

    async fn finish(self, _ended: Ended) {}
}

/// The call channel: the handshake stream after the `Welcome`, carrying calls multiplexed
/// by id. Its writer (in [`QuicLink`]) starts with its first call: an idle connection has
/// none.
struct Channel {
    /// `None` once the client finished the stream (or reset it).
    recv: Option<(RecvStream, ChunkFrames)>,
    /// The sending half, until the writer takes it.
    send: Option<SendStream>,
    /// Once the writer has started.
    demux: Option<Demux>,
    deadline: FrameDeadline,
}

/// What woke [`QuicLink::next`].
enum Control<'e> {
    /// The client opened a stream for a call of its own, or the connection ended.
    Accepted(Result<(SendStream, RecvStream), ConnectionError>),
    /// The call channel's writer stopped.
    WriterEnded,
    Read(Read<'e>),
}

/// What the call channel gave.
enum Read<'e> {
    Incoming(Incoming<MuxCall<&'e CallEnv>>),
    /// The channel's first call, before its writer has started.
    First(FrameHeader, Received),
}

/// What a read on the channel gave.
enum Frame {
    Read(Result<(FrameHeader, Received), ReadError>),
    /// A frame began and did not complete within `Limits::frame_read_timeout`.
    Late(Duration),
}

/// The next call or cancellation on the channel, or `None` to read on. Pending while
/// there is nothing to read.
async fn next_on<'e>(channel: &mut Option<Channel>, context: &'e CallEnv) -> Option<Read<'e>> {
    let Some(channel) = channel else {
        return pending().await;
    };
    let Channel {
        recv,
        demux,
        deadline,
        ..
    } = channel;
    if let Some(demux) = demux.as_mut().filter(|demux| demux.is_waiting()) {
        // the client is not read while its call waits: QUIC flow control holds back the rest
        return demux.admitted(context).await.map(Read::Incoming);
    }
    let Some((stream, reader)) = recv.as_mut() else {
        return pending().await;
    };
    let read = poll_fn(|cx| {
        if let Poll::Ready(frame) = reader.poll_next(cx, stream) {
            deadline.read();
            return Poll::Ready(Frame::Read(frame));
        }
        deadline.poll_late(cx, reader.partial()).map(Frame::Late)
    })
    .await;
    let (header, body) = match read {
        Frame::Read(Ok(frame)) => frame,
        Frame::Read(Err(ReadError::Protocol(error))) => {
            return Some(Read::Incoming(broken(&error)));
        }
        Frame::Read(Err(error)) => {
            // finished or reset by the client: calls may still come on their own streams
            debug!(%error, "the client ended its call channel");
            *recv = None;
            return None;
        }
        Frame::Late(limit) => {
            return Some(Read::Incoming(Incoming::Violation(
                Close::SlowSender,
                ProtocolError::FrameTimeout { limit }.to_string(),
            )))
        }
    };
    match demux {
        Some(demux) => demux.frame(header, body, context).map(Read::Incoming),
        None => Some(Read::First(header, body)),
    }
}

/// The close for a frame on the call channel that breaks the protocol.
fn broken<'e>(error: &ProtocolError) -> Incoming<MuxCall<&'e CallEnv>> {
    Incoming::Violation(Close::for_frame(error), format!("call channel: {error}"))
}

/// The call channel's sending half as a writer's sink: a batch of replies is one stream
/// write.
struct ChannelSink {
    stream: SendStream,
    batch: Coalesced,
}

impl FrameSink for ChannelSink {
    async fn feed(&mut self, out: Outgoing) -> Result<Fed, Broken> {
        match out {
            Outgoing::Frame(frame, _) => self.batch.push(frame),
            Outgoing::Frames(frames) => frames.into_iter().for_each(|f| self.batch.push(f)),
            // one stream: a frame's pieces in order are the frame
            Outgoing::Pieces(pieces, _) => pieces
                .into_vec()
                .into_iter()
                .for_each(|p| self.batch.push(p)),
            // QUIC keeps the connection alive itself
            Outgoing::Ping | Outgoing::Pong(_) => {}
            Outgoing::Close(..) => {
                self.flush().await?;
                let _ = self.stream.finish();
                return Ok(Fed::Closed);
            }
        }
        Ok(Fed::More)
    }

    async fn flush(&mut self) -> Result<(), Broken> {
        let written = self.stream.write_all_chunks(self.batch.chunks()).await;
        self.batch.clear();
        written.map_err(|error| {
            debug!(%error, "call channel write failed");
            Broken
        })
    }
}

/// Whether a connection that failed with `error` was lost (so its session is kept for
/// resumption) rather than closed on purpose by either side.
fn ended(error: &ConnectionError) -> Ended {
    match error {
        ConnectionError::ApplicationClosed(_) | ConnectionError::LocallyClosed => Ended::Closed,
        _ => Ended::Lost,
    }
}

/// One call: on the call channel, or on a stream of its own (boxed: a channel call, the
/// most common, is moved several times on its way to its handler, and moves only its own
/// size).
pub(crate) enum QuicCall<E: Deref<Target = CallEnv>> {
    Channel(MuxCall<E>),
    Stream(Box<StreamCall>),
}

impl<E: Deref<Target = CallEnv> + Send> CallIo for QuicCall<E> {
    type Env = E;
    type Kept = QuicCall<Arc<CallEnv>>;

    fn keep(self, env: &Arc<CallEnv>) -> QuicCall<Arc<CallEnv>> {
        match self {
            Self::Channel(call) => QuicCall::Channel(call.keep(env)),
            Self::Stream(call) => QuicCall::Stream(call),
        }
    }

    fn id(&self) -> Option<u64> {
        match self {
            Self::Channel(call) => call.id(),
            Self::Stream(call) => call.id(),
        }
    }

    fn arrived(&self) -> usize {
        match self {
            Self::Channel(call) => call.arrived(),
            Self::Stream(call) => call.arrived(),
        }
    }

    async fn read(&mut self, context: &Arc<CallEnv>) -> Result<Call<Arc<CallEnv>>, Unread> {
        match self {
            Self::Channel(call) => call.read(context).await,
            Self::Stream(call) => call.read(context).await,
        }
    }

    fn read_now(&mut self) -> Option<Result<Call<E>, Unread>> {
        match self {
            Self::Channel(call) => call.read_now(),
            // read on its own task (its `read_now` has none)
            Self::Stream(_) => None,
        }
    }

    async fn abandoned(&mut self) {
        match self {
            Self::Channel(call) => call.abandoned().await,
            Self::Stream(call) => call.abandoned().await,
        }
    }

    fn inbound(&mut self, context: &Arc<CallEnv>) -> Inbound {
        match self {
            Self::Channel(call) => call.inbound(context),
            Self::Stream(call) => call.inbound(context),
        }
    }

    async fn send_item(&mut self, frame: Vec<u8>) -> bool {
        match self {
            Self::Channel(call) => call.send_item(frame).await,
            Self::Stream(call) => call.send_item(frame).await,
        }
    }

    async fn flush_items(&mut self) -> bool {
        match self {
            Self::Channel(call) => call.flush_items().await,
            Self::Stream(call) => call.flush_items().await,
        }
    }

    async fn reply(self, frame: Framed, done: impl FnOnce() + Send) {
        match self {
            Self::Channel(call) => call.reply(frame, done).await,
            Self::Stream(call) => call.reply(frame, done).await,
        }
    }

    fn reply_now(&mut self, frame: Framed) -> Result<(), Framed> {
        match self {
            Self::Channel(call) => call.reply_now(frame),
            Self::Stream(call) => call.reply_now(frame),
        }
    }
}

/// A call on a stream of its own: one `Call` frame in and the reply out; for a
/// streaming call, items either way before the reply.
pub(crate) struct StreamCall {
    send: SendStream,
    /// Until a call that takes the client's stream takes its items: the stream, and
    /// what was read of it past the frames taken.
    recv: Option<(RecvStream, ChunkFrames)>,
    send_timeout: Duration,
    /// How the stream is marked: its first bytes, and the codes it is stopped with.
    framing: Framing,
    /// A streaming call's items not written yet: those the handler has ready one after
    /// the other go in one write.
    held: HeldItems,
}

impl StreamCall {
    /// Writes `bytes` to the stream as one chunk, once the client's flow control lets it
    /// (QUIC's flow control is the stream's backpressure: waiting for it is not a stall).
    async fn write(&mut self, bytes: Vec<u8>) -> bool {
        self.send.write_chunk(bytes.into()).await.is_ok()
    }

    /// The call frame did not arrive within `limit`: the peer is told to stop sending it,
    /// and the call fails with `FrameTimeout`.
    fn late(&mut self, limit: Duration) -> Unread {
        self.stop(ErrorCode::FrameTimeout);
        ProtocolError::FrameTimeout { limit }.into()
    }

    /// The call's body is not read: the peer is told to stop sending it, with `code`.
    fn stop(&mut self, code: ErrorCode) {
        if let Some((recv, _)) = &mut self.recv {
            let _ = recv.stop(self.framing.stream_code(code.to_u16().into()));
        }
    }
}

impl CallIo for StreamCall {
    type Env = Arc<CallEnv>;
    type Kept = Self;

    fn keep(self, _: &Arc<CallEnv>) -> Self {
        self
    }

    fn id(&self) -> Option<u64> {
        None
    }

    fn arrived(&self) -> usize {
        // its task counts the frame as it reads it
        0
    }

    async fn read(&mut self, context: &Arc<CallEnv>) -> Result<Call<Arc<CallEnv>>, Unread> {
        let limit = context.limits.frame_read_timeout();
        let late = tokio::time::sleep(limit);
        tokio::pin!(late);
        let (recv, frames) = self.recv.as_mut().ok_or(ReadError::Finished)?;
        let framing = self.framing;
        let header = before(late.as_mut(), async {
            framing.read_stream_header(recv).await?;
            frames.header(recv).await
        })
        .await
        .ok_or_else(|| self.late(limit))??;
        // the reply (and items) go out at the call's priority
        let _ = self
            .send
            .set_priority(Priority::from_flags(header.flags).quic());
        context
            .meter
            .received(HEADER_LEN + header.body_len as usize);
        let reserved = reserve_body(context, &header, late.as_mut()).await;
        let reserved = reserved.inspect_err(|unread| {
            if matches!(unread, Unread::Overloaded(_)) {
                self.stop(ErrorCode::Overloaded);
            }
        })?;
        let (recv, frames) = self.recv.as_mut().ok_or(ReadError::Finished)?;
        let (header, body) = before(late, frames.next(recv))
            .await
            .ok_or_else(|| self.late(limit))??;
        Ok(Call::open(header, body, reserved)?)
    }

    fn read_now(&mut self) -> Option<Result<Call<Arc<CallEnv>>, Unread>> {
        None
    }

    async fn abandoned(&mut self) {
        let _ = self.send.stopped().await;
    }

    fn inbound(&mut self, context: &Arc<CallEnv>) -> Inbound {
        match self.recv.take() {
            Some((recv, frames)) => client_items(recv, frames, Arc::clone(context)),
            None => no_items(),
        }
    }

    async fn send_item(&mut self, frame: Vec<u8>) -> bool {
        for bytes in self.held.hold(frame).into_iter().flatten() {
            if !self.write(bytes).await {
                return false;
            }
        }
        true
    }

    async fn flush_items(&mut self) -> bool {
        let held = self.held.take();
        held.is_empty() || self.write(held).await
    }

    fn reply_now(&mut self, frame: Framed) -> Result<(), Framed> {
        // a stream write waits on the client's flow control
        Err(frame)
    }

    async fn reply(mut self, frame: Framed, done: impl FnOnce() + Send) {
        // the client's stream credit, not this count, bounds the calls on streams of
        // their own that wait for their reply to be written
        done();
        let written = match frame {
            // the items still held (the last the handler's stream had ready, or those of
            // a call that ended at its deadline) go before the reply, in the same write
            Framed::Whole(frame) => {
                let bytes = self.held.then(frame);
                timeout(self.send_timeout, self.send.write_chunk(bytes.into())).await
            }
            Framed::Pieces(pieces) => {
                let held = self.held.take();
                let mut chunks: Vec<Shared> = Vec::with_capacity(pieces.len() + 1);
                chunks.extend((!held.is_empty()).then(|| held.into()));
                chunks.extend(pieces.into_vec());
                timeout(self.send_timeout, self.send.write_all_chunks(&mut chunks)).await
            }
        };
        if let Ok(Ok(())) = written {
            let _ = self.send.finish();
        }
    }
}

/// The client's items on a streaming call's stream, read as the handler takes them: each
/// within its share of the connection's byte budget (held until the next is read) and,
/// once begun, whole within `frame_read_timeout`; the stream's end is the end of the
/// items. QUIC's flow control holds the client back meanwhile.
fn client_items(recv: RecvStream, frames: ChunkFrames, context: Arc<CallEnv>) -> Inbound {
    let max = context.limits.max_message_size();
    let state = (recv, frames, None::<Reservation<Arc<CallEnv>>>);
    Box::pin(futures_util::stream::unfold(Some(state), move |state| {
        let context = Arc::clone(&context);
        async move {
            let (mut recv, mut frames, held) = state?;
            drop(held);
            // the next item may be long in coming; once begun, it is whole within `limit`
            // (the wait for the server's budget aside)
            if let Err(error) = frames.begun(&mut recv).await {
                return item_failed(error).map(|error| (Err(error), None));
            }
            let limit = context.limits.frame_read_timeout();
            let late = tokio::time::sleep(limit);
            tokio::pin!(late);
            let header = match before(late.as_mut(), frames.header(&mut recv)).await {
                Some(Ok(header)) if header.kind == Kind::StreamItem => header,
                Some(Ok(header)) => {
                    let error = ProtocolError::UnexpectedKind {
                        expected: "StreamItem",
                        got: header.kind.name(),
                    };
                    return Some((Err(error), None));
                }
                Some(Err(error)) => return item_failed(error).map(|error| (Err(error), None)),
                None => return Some((Err(ProtocolError::FrameTimeout { limit }), None)),
            };
            context
                .meter
                .received(HEADER_LEN + header.body_len as usize);
            let reserved = reserve_body(&context, &header, late.as_mut()).await;
            let Ok(reserved) = reserved else {
                let error = ProtocolError::InvalidPayload(
                    "the server's memory budget cannot take this item".into(),
                );
                return Some((Err(error), None));
            };
            let item = match before(late, frames.next(&mut recv)).await {
                Some(Ok((header, body))) => body
                    .open(&header, context.compression_negotiated(), max)
                    .map(Received::into_aligned),
                Some(Err(error)) => Err(item_failed(error).unwrap_or(ProtocolError::StreamReset)),
                None => Err(ProtocolError::FrameTimeout { limit }),
            };
            match item {
                Ok(item) => Some((Ok(item), Some((recv, frames, Some(reserved))))),
                Err(error) => Some((Err(error), None)),
            }
        }
    }))
}

/// Reserves the memory budget's share for the body `header` announces. A wait for it is
/// the server's, not the peer's: it moves the frame's timer, `late`, back by as long.
async fn reserve_body(
    context: &Arc<CallEnv>,
    header: &FrameHeader,
    mut late: Pin<&mut Sleep>,
) -> Result<Reservation<Arc<CallEnv>>, Unread> {
    match context.budget.try_lend(header.body_len) {
        Ok(Some(lent)) => both_shares(context, lent),
        Ok(None) | Err(_) => {
            let waiting = Instant::now();
            let reserved = reserve(context, header).await;
            let deadline = late.deadline() + waiting.elapsed();
            late.as_mut().reset(deadline);
            reserved
        }
    }
}

/// `read`'s output, or `None` if `late` fires first (one timer for the reads of a frame).
async fn before<T>(late: Pin<&mut Sleep>, read: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        biased;
        value = read => Some(value),
        () = late => None,
    }
}

/// What a read of the client's items that failed with `error` ends them with: nothing
/// when the stream ended between items (their end), a reset stream as `StreamReset`.
fn item_failed(error: ReadError) -> Option<ProtocolError> {
    match error {
        ReadError::Finished => None,
        ReadError::Protocol(error) => Some(error),
        ReadError::Io(_) => Some(ProtocolError::StreamReset),
    }
}

/// The push stream.
pub(crate) struct QuicPush {
    stream: SendStream,
    batch: Coalesced,
    /// Where unreliable events go as datagrams, when the client takes them.
    datagrams: Option<Datagrams>,
}

impl PushSink for QuicPush {
    async fn write(&mut self, frames: Vec<Shared>) -> bool {
        frames.into_iter().for_each(|f| self.batch.push(f));
        let written = self.stream.write_all_chunks(self.batch.chunks()).await;
        self.batch.clear();
        written.is_ok()
    }

    fn datagrams(&self) -> Option<Datagrams> {
        self.datagrams.clone()
    }
}
