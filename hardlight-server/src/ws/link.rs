//! A WebSocket connection as a [`Link`]: one frame per binary message, calls multiplexed
//! by id, replies and pushes through one writer task whose every write has a deadline.

use std::{future::pending, pin::Pin, sync::Arc, time::Duration};

use bytes::Bytes as Shared;
use futures_util::{
    stream::{SplitSink, SplitStream},
    SinkExt, StreamExt,
};
use hardlight_core::{
    close::Close,
    codec::{realign, Bytes},
    frame::{FrameHeader, Kind},
    Limits, ProtocolError,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::{mpsc, OwnedSemaphorePermit},
    task::JoinHandle,
    time::{sleep_until, timeout, Instant, Interval, MissedTickBehavior, Sleep},
};
use tokio_tungstenite::{
    tungstenite::{protocol::CloseFrame, Error as WsError, Message},
    WebSocketStream,
};
use tracing::debug;

use super::{
    bounded::Budget,
    deadline::{MessageDeadline, Read},
};
use crate::{
    connection::{CallIo, Ended, Incoming, Link, NoHello},
    session::{
        dispatch::{connection_share, Call, Reservation, Unread},
        push::PushSink,
        CallContext,
    },
};

/// WebSocket framing and read-ahead allowed beyond the `Hello` itself.
const HELLO_SLACK: usize = 16 * 1024;

/// How long a closing connection waits for the client to take its close frame.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Writes queued ahead of a slow socket before senders wait.
const OUTGOING_QUEUE: usize = 64;

/// What the writer task sends.
enum Outgoing {
    /// A reply or the handshake's answer.
    Frame(Shared),
    /// Pushed frames (state updates and events), in order.
    Frames(Vec<Shared>),
    /// A keep-alive; the client (or browser) answers with a pong.
    Ping,
    Close(Close, String),
}

/// One upgraded WebSocket connection.
pub(crate) struct WsLink<S> {
    source: SplitStream<WebSocketStream<S>>,
    tx: mpsc::Sender<Outgoing>,
    /// The writer task; `None` once it ended (a write failed or stalled).
    writer: Option<JoinHandle<()>>,
    /// What the peer may make the server read before its `Hello` is accepted; and whether
    /// it is in the middle of a message.
    budget: Budget,
    /// `Limits::frame_read_timeout` for the message being read.
    deadline: MessageDeadline,
    keep_alive: Interval,
    /// When the peer was last heard from.
    heard: Instant,
    /// Fires at the idle deadline as it stood when last set; moved on only when it fires
    /// (one timer per idle period, not one per message).
    idle: Pin<Box<Sleep>>,
    idle_timeout: Duration,
    send_timeout: Duration,
    /// A call read and waiting for its share of the connection's byte budget.
    waiting: Option<(FrameHeader, Bytes)>,
    /// The server sent a close frame, which the peer should get to read.
    closing: bool,
    /// The peer sent its close frame.
    peer_closed: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> WsLink<S> {
    /// The link of an upgraded connection whose reads `budget` bounds until the `Hello`.
    pub(crate) fn new(ws: WebSocketStream<S>, budget: Budget, limits: &Limits) -> Self {
        // the upgrade request's bytes are not part of any message
        budget.message_read();
        let (sink, source) = ws.split();
        let (tx, rx) = mpsc::channel(OUTGOING_QUEUE);
        let writer = tokio::spawn(write_loop(sink, rx, limits.send_timeout()));
        let mut keep_alive = tokio::time::interval(limits.keep_alive());
        keep_alive.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            source,
            tx,
            writer: Some(writer),
            budget,
            deadline: MessageDeadline::new(limits.frame_read_timeout()),
            keep_alive,
            heard: Instant::now(),
            idle: Box::pin(sleep_until(Instant::now() + limits.idle_timeout())),
            idle_timeout: limits.idle_timeout(),
            send_timeout: limits.send_timeout(),
            waiting: None,
            closing: false,
            peer_closed: false,
        }
    }

    async fn send(&self, outgoing: Outgoing) -> bool {
        matches!(
            timeout(self.send_timeout, self.tx.send(outgoing)).await,
            Ok(Ok(()))
        )
    }

    fn ping(&self) {
        if self.tx.try_send(Outgoing::Ping).is_err() {
            debug!("writer backed up; keep-alive skipped");
        }
    }

    /// One message from the peer, as the driver sees it; `None` to read on.
    fn receive(
        &mut self,
        message: Option<Result<Message, WsError>>,
        context: &CallContext,
    ) -> Option<Incoming<WsCall>> {
        let data = match message {
            Some(Ok(Message::Binary(data))) => data,
            Some(Ok(Message::Text(_))) => {
                return Some(Incoming::Violation(
                    Close::UnsupportedData,
                    "text messages are not part of the HardLight protocol; send binary frames"
                        .into(),
                ))
            }
            Some(Ok(Message::Close(_))) => {
                self.peer_closed = true;
                return Some(Incoming::Ended(Ended::Closed));
            }
            // ping/pong, answered by tungstenite
            Some(Ok(_)) => return None,
            Some(Err(WsError::Capacity(error))) => {
                return Some(Incoming::Violation(
                    Close::TooBig,
                    format!(
                        "{error}; raise Limits::max_message_size on both peers if this is intended"
                    ),
                ))
            }
            Some(Err(error)) => {
                debug!(%error, "connection failed");
                return Some(Incoming::Ended(Ended::Lost));
            }
            None => return Some(Incoming::Ended(Ended::Lost)),
        };
        let (header, body) = match FrameHeader::split(&data, context.limits.max_message_size()) {
            Ok(frame) => frame,
            Err(error) => return Some(Incoming::Violation(Close::Protocol, error.to_string())),
        };
        match header.kind {
            Kind::Call => {
                context.meter.received(data.len());
                let body = realign(body);
                // most calls fit the budget at once; the others wait, and the peer with them
                match Arc::clone(&context.budget).try_acquire_many_owned(header.body_len) {
                    Ok(permit) => Some(Incoming::Call(WsCall {
                        header,
                        body,
                        permit: Some(permit),
                        tx: self.tx.clone(),
                        send_timeout: self.send_timeout,
                    })),
                    Err(_) => {
                        self.waiting = Some((header, body));
                        None
                    }
                }
            }
            Kind::Cancel => Some(Incoming::Cancel(header.id)),
            other => Some(Incoming::Violation(
                Close::Protocol,
                format!("unexpected {} frame from a client", other.name()),
            )),
        }
    }
}

/// Completes when the writer task has ended; then never again.
async fn writer_ended(writer: &mut Option<JoinHandle<()>>) {
    match writer {
        Some(task) => {
            let _ = task.await;
            *writer = None;
        }
        None => pending().await,
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Link for WsLink<S> {
    type Call = WsCall;
    type Push = WsPush;

    async fn hello(&mut self, max: u32) -> Result<(FrameHeader, Bytes), NoHello> {
        // before the handshake a peer gets no more than a `Hello`'s worth of reading, as
        // over QUIC, whatever message size the session will allow
        self.budget.reset(max as usize + HELLO_SLACK);
        let message = self.source.next().await;
        self.budget.message_read();
        match message {
            Some(Ok(Message::Binary(data))) => FrameHeader::split(&data, max)
                .map(|(header, body)| (header, realign(body)))
                .map_err(|e| NoHello::Invalid(format!("handshake: {e}"))),
            Some(Ok(Message::Text(_))) => Err(NoHello::Invalid(
                "the HardLight handshake is a binary message".into(),
            )),
            _ => Err(NoHello::Gone),
        }
    }

    async fn welcome(&mut self, frame: Vec<u8>) -> bool {
        self.budget.lift();
        self.heard = Instant::now();
        self.send(Outgoing::Frame(frame.into())).await
    }

    async fn reject(&mut self, frame: Vec<u8>, reason: &str) {
        self.send(Outgoing::Frame(frame.into())).await;
        self.close(Close::Rejected, reason);
    }

    async fn open_push(&mut self) -> Option<WsPush> {
        Some(WsPush {
            tx: self.tx.clone(),
        })
    }

    async fn next(&mut self, context: &CallContext) -> Incoming<WsCall> {
        loop {
            if let Some((header, _)) = &self.waiting {
                // the peer is not read while its call waits: TCP holds back the rest
                tokio::select! {
                    permit = connection_share(context, header) => {
                        let Some((header, body)) = self.waiting.take() else {
                            continue;
                        };
                        return match permit {
                            Ok(permit) => Incoming::Call(WsCall {
                                header,
                                body,
                                permit: Some(permit),
                                tx: self.tx.clone(),
                                send_timeout: self.send_timeout,
                            }),
                            Err(error) => Incoming::Violation(Close::Protocol, error.to_string()),
                        };
                    }
                    _ = self.keep_alive.tick() => self.ping(),
                    () = writer_ended(&mut self.writer) => return Incoming::Ended(Ended::Lost),
                }
                continue;
            }
            tokio::select! {
                read = self.deadline.read(&mut self.source, &self.budget) => {
                    let message = match read {
                        Read::Message(message) => message,
                        Read::Late(limit) => return Incoming::Violation(
                            Close::SlowSender,
                            ProtocolError::FrameTimeout { limit }.to_string(),
                        ),
                    };
                    self.heard = Instant::now();
                    if let Some(incoming) = self.receive(message, context) {
                        return incoming;
                    }
                }
                _ = self.keep_alive.tick() => self.ping(),
                () = self.idle.as_mut() => {
                    let deadline = self.heard + self.idle_timeout;
                    if deadline > Instant::now() {
                        self.idle.as_mut().reset(deadline);
                        continue;
                    }
                    debug!(idle = ?self.idle_timeout, "nothing from the client within the idle timeout; connection lost");
                    return Incoming::Ended(Ended::Lost);
                }
                () = writer_ended(&mut self.writer) => {
                    debug!("the writer stopped: a write failed or took longer than send_timeout");
                    return Incoming::Ended(Ended::Lost);
                }
            }
        }
    }

    fn close(&mut self, close: Close, reason: &str) {
        self.closing = true;
        if self
            .tx
            .try_send(Outgoing::Close(close, reason.into()))
            .is_err()
        {
            // the writer is backed up on a peer that does not read: drop the connection
            if let Some(writer) = &self.writer {
                writer.abort();
            }
        }
    }

    async fn finish(self, ended: Ended) {
        let Self {
            mut source,
            tx,
            writer,
            closing,
            peer_closed,
            ..
        } = self;
        drop(tx);
        // let the writer deliver a final close frame, and the client read it before the
        // socket closes (closing with unread input would reset the connection and lose the
        // frame); a peer that neither reads nor closes is dropped after the linger
        let abort = writer.as_ref().map(JoinHandle::abort_handle);
        let linger = async {
            if let Some(writer) = writer {
                let _ = writer.await;
            }
            if closing && ended != Ended::Lost && !peer_closed {
                // until the client answers with its close; if the stream cannot tell (it
                // failed on the message that made us close), wait out the linger
                loop {
                    match source.next().await {
                        Some(Ok(Message::Close(_))) => break,
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => pending::<()>().await,
                    }
                }
            }
        };
        if timeout(CLOSE_LINGER, linger).await.is_err() {
            if let Some(abort) = abort {
                abort.abort();
            }
        }
    }
}

/// One call: its frame, read and within the byte budget.
pub(crate) struct WsCall {
    header: FrameHeader,
    body: Bytes,
    permit: Option<OwnedSemaphorePermit>,
    tx: mpsc::Sender<Outgoing>,
    send_timeout: Duration,
}

impl CallIo for WsCall {
    fn id(&self) -> Option<u64> {
        Some(self.header.id)
    }

    async fn read(&mut self, context: &CallContext) -> Result<Call, Unread> {
        let share = self.permit.take().ok_or(ProtocolError::Malformed)?;
        let reserved = Reservation::new(share, context).map_err(Unread::Overloaded)?;
        let body = std::mem::take(&mut self.body);
        Ok(Call::open(self.header, body, reserved)?)
    }

    async fn abandoned(&mut self) {
        // cancelled by `Cancel`, which aborts the call's task
        pending().await
    }

    async fn reply(self, frame: Vec<u8>) {
        let reply = Outgoing::Frame(frame.into());
        // only a writer backed up on a peer that does not read needs the deadline (boxed:
        // the rare wait would otherwise enlarge every call's task)
        if let Err(mpsc::error::TrySendError::Full(reply)) = self.tx.try_send(reply) {
            let _ = Box::pin(timeout(self.send_timeout, self.tx.send(reply))).await;
        }
    }
}

/// The push frames: queued for the writer task.
pub(crate) struct WsPush {
    tx: mpsc::Sender<Outgoing>,
}

impl PushSink for WsPush {
    async fn write(&mut self, frames: Vec<Shared>) -> bool {
        self.tx.send(Outgoing::Frames(frames)).await.is_ok()
    }
}

/// Sends queued messages, flushing once per batch; every batch must be written within
/// `send_timeout`, or the writer stops and the connection counts as lost.
async fn write_loop<S: AsyncRead + AsyncWrite + Unpin>(
    mut sink: SplitSink<WebSocketStream<S>, Message>,
    mut rx: mpsc::Receiver<Outgoing>,
    send_timeout: Duration,
) {
    while let Some(first) = rx.recv().await {
        match timeout(send_timeout, write_batch(&mut sink, first, &mut rx)).await {
            Ok(Ok(Batch::Written)) => {}
            Ok(Ok(Batch::Closed)) | Ok(Err(_)) | Err(_) => return,
        }
    }
}

/// How a batch of writes ended.
enum Batch {
    Written,
    /// The close frame went out: nothing more to write.
    Closed,
}

/// Writes `first` and whatever else is queued, then flushes.
async fn write_batch<S: AsyncRead + AsyncWrite + Unpin>(
    sink: &mut SplitSink<WebSocketStream<S>, Message>,
    first: Outgoing,
    rx: &mut mpsc::Receiver<Outgoing>,
) -> Result<Batch, WsError> {
    let mut next = Some(first);
    while let Some(out) = next.take() {
        match out {
            Outgoing::Frame(frame) => sink.feed(Message::Binary(frame)).await?,
            Outgoing::Frames(frames) => {
                for frame in frames {
                    sink.feed(Message::Binary(frame)).await?;
                }
            }
            Outgoing::Ping => sink.feed(Message::Ping(Shared::new())).await?,
            Outgoing::Close(close, reason) => {
                let frame = CloseFrame {
                    code: close.websocket_code().into(),
                    reason: reason.into(),
                };
                sink.send(Message::Close(Some(frame))).await?;
                return Ok(Batch::Closed);
            }
        }
        next = rx.try_recv().ok();
    }
    sink.flush().await?;
    Ok(Batch::Written)
}
