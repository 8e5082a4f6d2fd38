//! A WebSocket connection as a [`Link`]: one or more frames per binary message, calls
//! multiplexed by id, replies and pushes through one writer, driven by the connection's
//! task, whose every write has a deadline and packs the frames written together into few
//! messages.

use std::{
    future::{pending, poll_fn},
    io,
    task::Poll,
    time::Duration,
};

use bytes::{Bytes as Shared, BytesMut};
use hardlight_core::{
    close::Close,
    codec::{realign, Bytes},
    frame::{max_websocket_message, FrameHeader},
    received::Received,
    wait::IdleLimit,
    websocket::{
        close_payload, Decoder, FramingError, Message, MessageReader, MessageWriter, Opcode,
        ReadError, Role,
    },
    ProtocolError,
};
use tokio::{
    io::{split, AsyncRead, AsyncWrite, ReadHalf},
    time::{timeout, Interval, MissedTickBehavior},
};
use tracing::debug;

use super::bounded::Budget;
use crate::{
    connection::{
        mux::{Broken, Demux, Fed, FrameSink, MuxCall, Outgoing, QueuedPush, Writer},
        Ended, FrameDeadline, Incoming, Link, NoHello, Woken,
    },
    session::{CallEnv, ServerShared},
};

/// WebSocket framing and read-ahead allowed beyond the `Hello` itself.
const HELLO_SLACK: usize = 16 * 1024;

/// How long a closing connection waits for the client to take its close frame.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// One upgraded WebSocket connection.
pub(crate) struct WsLink<S> {
    source: MessageReader<ReadHalf<S>>,
    /// The frames of the last message read that were not taken yet.
    unread: Shared,
    /// Replies, pushes, keep-alives and the close, written in batches once the peer has
    /// nothing more to read.
    writer: Writer,
    /// Incoming frames as calls and cancellations.
    demux: Demux,
    /// What the peer may make the server read before its `Hello` is accepted.
    budget: Budget,
    /// `Limits::frame_read_timeout` for the message being read.
    deadline: FrameDeadline,
    keep_alive: Interval,
    /// Polls the keep-alive only when it has woken.
    control: Woken,
    /// `Limits::idle_timeout`: one timer per quiet period, not one per message.
    idle: IdleLimit,
    /// The server sent a close frame, which the peer should get to read.
    closing: bool,
    /// The close frame, when the writer's queue had no room for it.
    unsent_close: Option<Outgoing>,
    /// The peer sent its close frame.
    peer_closed: bool,
}

/// The next message from `source`, or [`Read::Late`] when one began and stalled.
async fn read<R: AsyncRead + Unpin>(
    source: &mut MessageReader<R>,
    deadline: &mut FrameDeadline,
) -> Read {
    poll_fn(|cx| {
        if let Poll::Ready(message) = source.poll_next(cx) {
            deadline.read();
            return Poll::Ready(Read::Message(message));
        }
        deadline.poll_late(cx, source.in_message()).map(Read::Late)
    })
    .await
}

/// What reading the next message gave.
enum Read {
    /// A message, an error, or the end of the stream.
    Message(Option<Result<Message, ReadError>>),
    /// A message began and did not complete within the limit.
    Late(Duration),
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> WsLink<S> {
    /// The link of an upgraded connection whose reads `budget` bounds until the `Hello`.
    pub(crate) fn new(stream: S, budget: Budget, shared: &ServerShared) -> Self {
        let limits = &shared.limits;
        let (source, sink) = split(stream);
        let decoder = Decoder::new(
            Role::Server,
            max_websocket_message(limits.max_message_size()),
        );
        let source = MessageReader::new(source, decoder, BytesMut::new());
        let sink = WsSink {
            writer: MessageWriter::new(sink, Role::Server),
            greeted: false,
        };
        let writer = Writer::start(
            sink,
            limits.send_timeout(),
            shared.server_limits.max_concurrent_calls(),
        );
        let mut keep_alive = tokio::time::interval(limits.keep_alive());
        keep_alive.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            source,
            unread: Shared::new(),
            demux: Demux::new(&writer, true),
            writer,
            budget,
            deadline: FrameDeadline::new(limits.frame_read_timeout()),
            keep_alive,
            control: Woken::new(),
            idle: IdleLimit::new(limits.idle_timeout()),
            closing: false,
            unsent_close: None,
            peer_closed: false,
        }
    }

    fn ping(&self) {
        if self.writer.try_send(Outgoing::Ping).is_err() {
            debug!("writer backed up; keep-alive skipped");
        }
    }

    /// The writer stopped: the connection's end.
    fn writer_ended<'e>(&self) -> Incoming<MuxCall<&'e CallEnv>> {
        debug!("the writer stopped: a write failed or took longer than send_timeout");
        Incoming::Ended(Ended::Lost)
    }

    /// One message from the peer, as the driver sees it; `None` to read on.
    fn receive<'e>(
        &mut self,
        message: Option<Result<Message, ReadError>>,
        context: &'e CallEnv,
    ) -> Option<Incoming<MuxCall<&'e CallEnv>>> {
        let data = match message {
            Some(Ok(Message::Binary(data))) => data,
            Some(Ok(Message::Close(..))) => {
                self.peer_closed = true;
                // answered with a close of our own (RFC 6455, section 5.5.1)
                self.close(Close::Normal, "");
                return Some(Incoming::Ended(Ended::Closed));
            }
            Some(Ok(Message::Ping(payload))) => {
                if self.writer.try_send(Outgoing::Pong(payload)).is_err() {
                    debug!("writer backed up; pong skipped");
                }
                return None;
            }
            Some(Ok(_)) => return None,
            Some(Err(ReadError::Framing(error))) => {
                let close = match error {
                    FramingError::TooBig { .. } => Close::TooBig,
                    FramingError::Text => Close::UnsupportedData,
                    _ => Close::Protocol,
                };
                return Some(Incoming::Violation(close, error.to_string()));
            }
            Some(Err(error)) => {
                debug!(%error, "connection failed");
                return Some(Incoming::Ended(Ended::Lost));
            }
            None => return Some(Incoming::Ended(Ended::Lost)),
        };
        self.unread = data;
        self.next_frame(context)
    }

    /// The next frame of the message being read, as the driver sees it; `None` to go on.
    fn next_frame<'e>(&mut self, context: &'e CallEnv) -> Option<Incoming<MuxCall<&'e CallEnv>>> {
        let max = context.limits.max_message_size();
        // the message's last frame leaves nothing of its buffer (a slice of the read
        // buffer) in `unread`, which the next read would otherwise have to leave alone
        let (header, body) = match FrameHeader::split_off_first(&mut self.unread, max) {
            Ok(frame) => frame,
            Err(error) => {
                self.unread = Shared::new();
                return Some(Incoming::Violation(
                    Close::for_frame(&error),
                    error.to_string(),
                ));
            }
        };
        self.demux.frame(header, Received::Shared(body), context)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Link for WsLink<S> {
    type Call<'e> = MuxCall<&'e CallEnv>;
    type Push = QueuedPush;

    async fn hello(&mut self, max: u32) -> Result<(FrameHeader, Bytes), NoHello> {
        // before the handshake a peer gets no more than a `Hello`'s worth of reading, as
        // over QUIC, whatever message size the session will allow
        self.budget.reset(max as usize + HELLO_SLACK);
        let message = loop {
            match self.source.next().await {
                Some(Ok(Message::Ping(_) | Message::Pong)) => {}
                message => break message,
            }
        };
        match message {
            Some(Ok(Message::Binary(data))) => FrameHeader::split(&data, max)
                .map(|(header, body)| (header, realign(body)))
                .map_err(|e| NoHello::Invalid(format!("handshake: {e}"))),
            Some(Err(ReadError::Framing(FramingError::Text))) => Err(NoHello::Invalid(
                "the HardLight handshake is a binary message".into(),
            )),
            _ => Err(NoHello::Gone),
        }
    }

    async fn welcome(&mut self, frame: Vec<u8>) -> bool {
        self.budget.lift();
        self.idle.heard();
        self.writer.send(Outgoing::frame(frame)).await
    }

    async fn reject(&mut self, frame: Vec<u8>, reason: &str) {
        self.writer.send(Outgoing::frame(frame)).await;
        self.close(Close::Rejected, reason);
    }

    async fn open_push(&mut self) -> Option<QueuedPush> {
        Some(self.writer.push_sink())
    }

    async fn next<'e>(&mut self, context: &'e CallEnv) -> Incoming<MuxCall<&'e CallEnv>> {
        loop {
            // the rest of the last message's frames first, unless a call waits
            if let Some(incoming) = self.next_now(context) {
                return incoming;
            }
            // the pings before the peer, when they have woken: a peer that always has more
            // to read does not delay them
            let keep_alive = &mut self.keep_alive;
            let ping = self.control.next(|cx| keep_alive.poll_tick(cx).map(drop));
            // the writer once the peer has nothing more to read
            let writer = &mut self.writer;
            let written = poll_fn(|cx| writer.poll_ended(cx));
            if self.demux.is_waiting() {
                // the peer is not read while its call waits: TCP holds back the rest
                tokio::select! {
                    biased;
                    () = ping => self.ping(),
                    incoming = self.demux.admitted(context) => match incoming {
                        Some(incoming) => return incoming,
                        None => continue,
                    },
                    () = written => return self.writer_ended(),
                }
                continue;
            }
            // the idle timeout last, so that it never fires with a message waiting
            tokio::select! {
                biased;
                () = ping => self.ping(),
                read = read(&mut self.source, &mut self.deadline) => {
                    let message = match read {
                        Read::Message(message) => message,
                        Read::Late(limit) => return Incoming::Violation(
                            Close::SlowSender,
                            ProtocolError::FrameTimeout { limit }.to_string(),
                        ),
                    };
                    self.idle.heard();
                    if let Some(incoming) = self.receive(message, context) {
                        return incoming;
                    }
                }
                () = written => return self.writer_ended(),
                () = poll_fn(|cx| self.idle.poll_expired(cx)) => {
                    debug!(idle = ?self.idle.limit(), "nothing from the client within the idle timeout; connection lost");
                    return Incoming::Ended(Ended::Lost);
                }
            }
        }
    }

    fn next_now<'e>(&mut self, context: &'e CallEnv) -> Option<Incoming<MuxCall<&'e CallEnv>>> {
        while !self.unread.is_empty() && !self.demux.is_waiting() {
            if let Some(incoming) = self.next_frame(context) {
                return Some(incoming);
            }
        }
        None
    }

    fn close(&mut self, close: Close, reason: &str) {
        if self.closing {
            return;
        }
        self.closing = true;
        // a full queue (a call's items queued faster than they are written, or a peer
        // that does not read) takes the close in `finish`, within the linger
        self.unsent_close = self
            .writer
            .try_send(Outgoing::Close(close, reason.into()))
            .err();
    }

    async fn finish(self, ended: Ended) {
        let Self {
            mut source,
            writer,
            demux,
            closing,
            unsent_close,
            peer_closed,
            ..
        } = self;
        drop(demux);
        // let the writer deliver a final close frame, and the client read it before the
        // socket closes (closing with unread input would reset the connection and lose the
        // frame); a peer that neither reads nor closes is dropped after the linger
        let linger = async {
            writer.finish(unsent_close).await;
            if closing && ended != Ended::Lost && !peer_closed {
                // until the client answers with its close; if the stream cannot tell (it
                // failed on the message that made us close), wait out the linger
                loop {
                    match source.next().await {
                        Some(Ok(Message::Close(..))) => break,
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => pending::<()>().await,
                    }
                }
            }
        };
        let _ = timeout(CLOSE_LINGER, linger).await;
    }
}

/// The WebSocket as a writer's sink: frames packed into few messages
/// ([`MessageWriter`]), one flush per batch. The first frame, the handshake's answer, goes
/// alone.
struct WsSink<W> {
    writer: MessageWriter<W>,
    /// The handshake's answer went out.
    greeted: bool,
}

impl<W: AsyncWrite + Unpin + Send + 'static> FrameSink for WsSink<W> {
    async fn feed(&mut self, out: Outgoing) -> Result<Fed, Broken> {
        let writer = &mut self.writer;
        match out {
            Outgoing::Frame(frame, _) => {
                writer.frame(frame).await.map_err(broken)?;
                if !self.greeted {
                    // the handshake's answer, which travels alone
                    self.greeted = true;
                    writer.seal();
                }
            }
            Outgoing::Frames(frames) => {
                for frame in frames {
                    writer.frame(frame).await.map_err(broken)?;
                }
            }
            Outgoing::Pieces(pieces, _) => writer.pieces(&pieces).await.map_err(broken)?,
            Outgoing::Ping => writer.message(Opcode::Ping, &[]).await.map_err(broken)?,
            Outgoing::Pong(payload) => writer
                .message(Opcode::Pong, &payload)
                .await
                .map_err(broken)?,
            Outgoing::Close(close, reason) => {
                let payload = close_payload(close.websocket_code(), &reason);
                writer
                    .message(Opcode::Close, &payload)
                    .await
                    .map_err(broken)?;
                writer.flush().await.map_err(broken)?;
                return Ok(Fed::Closed);
            }
        }
        Ok(Fed::More)
    }

    async fn flush(&mut self) -> Result<(), Broken> {
        self.writer.flush().await.map_err(broken)
    }
}

fn broken(error: io::Error) -> Broken {
    debug!(%error, "write failed");
    Broken
}
