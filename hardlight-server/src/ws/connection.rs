//! One WebSocket connection after the upgrade: handshake, then multiplexed calls and the
//! push frames until it ends.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use futures_util::{stream::SplitSink, SinkExt, StreamExt};
use hardlight_core::{
    codec,
    frame::{FrameHeader, Kind},
    handshake::Rejection,
    ErrorCode, Outcome, ProtocolError, RejectCode,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::{mpsc, Notify},
    task::{AbortHandle, JoinSet},
    time::{sleep_until, timeout_at, Instant},
};
use tokio_tungstenite::{
    tungstenite::{protocol::CloseFrame, Error as WsError, Message},
    WebSocketStream,
};
use tracing::debug;

use super::{bounded::Budget, close};
use crate::{
    handler::RpcHandler,
    session::{
        dispatch::{refusal, reply_frame, reserve, Call},
        handshake::{accept, parse_hello, reject_frame, Accepted, Live, Peer, MAX_HELLO},
        push::PushSink,
        resume::Sessions,
        ServerShared,
    },
    shutdown::requested,
    sync::lock,
};

/// WebSocket framing and read-ahead allowed beyond the `Hello` itself.
const HELLO_SLACK: usize = 16 * 1024;

/// How long a closing connection waits for the client to take its close frame.
const CLOSE_LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// Writes queued ahead of a slow socket before senders wait.
const OUTGOING_QUEUE: usize = 64;

/// What the writer task sends.
enum Outgoing {
    Frames(Vec<Bytes>),
    /// A keep-alive; the client (or browser) answers with a pong.
    Ping,
    Close(u16, String),
}

/// Serves an upgraded connection: `Hello` first (before `deadline`), then calls.
pub(crate) async fn serve_ws<H: RpcHandler, S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    ws: WebSocketStream<S>,
    budget: Budget,
    deadline: Instant,
    sessions: Arc<Sessions<H>>,
    shared: Arc<ServerShared>,
    peer: Peer,
) {
    // before the handshake a peer gets no more than a `Hello`'s worth of reading, as over
    // QUIC, whatever message size the session will allow
    budget.reset(MAX_HELLO as usize + HELLO_SLACK);
    let (sink, mut source) = ws.split();
    let (tx, rx) = mpsc::channel(OUTGOING_QUEUE);
    let mut tasks = JoinSet::new();
    tasks.spawn(write_loop(sink, rx));
    let accepted = match timeout_at(deadline, source.next()).await {
        Ok(Some(Ok(Message::Binary(data)))) => {
            match timeout_at(deadline, hello::<H>(&data, &sessions, &shared, peer)).await {
                Ok(accepted) => accepted,
                Err(_) => Err(Rejection {
                    code: RejectCode::Internal,
                    reason: "handshake timed out (authentication took too long)".into(),
                }),
            }
        }
        Ok(Some(Ok(Message::Text(_)))) => {
            Err(rejection("the HardLight handshake is a binary message"))
        }
        Ok(_) => return debug!("connection ended before the handshake"),
        Err(_) => {
            let _ = tx
                .send(Outgoing::Close(close::POLICY, "handshake timed out".into()))
                .await;
            return debug!("HardLight handshake timed out");
        }
    };
    match accepted {
        Ok(accepted) => {
            budget.lift();
            let welcome = Bytes::from(accepted.welcome.clone());
            if tx.send(Outgoing::Frames(vec![welcome])).await.is_ok() {
                debug!("connected");
                run_session(source, tx, tasks, accepted, &shared).await;
                debug!("disconnected");
            }
        }
        Err(rejection) => {
            debug!(code = %rejection.code, reason = %rejection.reason, "handshake rejected");
            let frame = Bytes::from(reject_frame(&rejection));
            let _ = tx.send(Outgoing::Frames(vec![frame])).await;
            let _ = tx
                .send(Outgoing::Close(close::POLICY, rejection.code.to_string()))
                .await;
            drop(tx);
            while tasks.join_next().await.is_some() {}
        }
    }
}

fn rejection(reason: &str) -> Rejection {
    Rejection {
        code: RejectCode::Malformed,
        reason: reason.into(),
    }
}

async fn hello<H: RpcHandler>(
    data: &[u8],
    sessions: &Arc<Sessions<H>>,
    shared: &ServerShared,
    peer: Peer,
) -> Result<Accepted<H>, Rejection> {
    let (header, body) =
        FrameHeader::split(data, MAX_HELLO).map_err(|e| rejection(&format!("handshake: {e}")))?;
    let hello = parse_hello(&header, body)?;
    accept(&hello, sessions, shared, peer).await
}

/// The push frames over WebSocket: queued for the writer task.
struct WsPush {
    tx: mpsc::Sender<Outgoing>,
    kill: Arc<Notify>,
}

impl PushSink for WsPush {
    async fn write(&mut self, frames: Vec<Bytes>) -> bool {
        self.tx.send(Outgoing::Frames(frames)).await.is_ok()
    }

    fn disconnect_slow_consumer(&mut self) {
        // the writer may be blocked on the socket: end the connection from the reader side
        self.kill.notify_one();
    }
}

/// What the reader loop needs to start calls.
struct Calls<H: RpcHandler> {
    live: Live<H>,
    tx: mpsc::Sender<Outgoing>,
    running: JoinSet<()>,
    /// The calls in flight: each task removes its own entry before it queues its reply, so
    /// the count and the duplicate-id check never depend on when the task is reaped.
    by_id: Arc<Mutex<HashMap<u64, AbortHandle>>>,
}

async fn run_session<H: RpcHandler, S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    mut source: futures_util::stream::SplitStream<WebSocketStream<S>>,
    tx: mpsc::Sender<Outgoing>,
    mut tasks: JoinSet<()>,
    accepted: Accepted<H>,
    shared: &ServerShared,
) {
    let kill = Arc::new(Notify::new());
    let sink = WsPush {
        tx: tx.clone(),
        kill: Arc::clone(&kill),
    };
    let mut calls = Calls {
        live: accepted.go_live(sink),
        tx,
        running: JoinSet::new(),
        by_id: Arc::default(),
    };
    let mut shutdown = shared.signals.deadline.subscribe();
    let mut drain_deadline: Option<Instant> = None;
    // whether the connection was lost rather than closed (keeps the session to resume)
    let mut lost = false;
    // whether the server sent a close frame (and so should let the client read it)
    let mut closed_by_us = true;
    let kick = Arc::clone(&calls.live.kick);
    let limits = &shared.limits;
    let mut keep_alive = tokio::time::interval(limits.keep_alive);
    keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = Instant::now();
    loop {
        tokio::select! {
            message = source.next() => {
                heard = Instant::now();
                let verdict = match message {
                    Some(Ok(Message::Binary(data))) => calls.receive(data, drain_deadline.is_some()).await,
                    Some(Ok(Message::Text(_))) => Err((
                        close::UNSUPPORTED_DATA,
                        "text messages are not part of the HardLight protocol; send binary frames".into(),
                    )),
                    Some(Ok(Message::Close(_))) => {
                        closed_by_us = false;
                        break;
                    }
                    None => {
                        lost = true;
                        break;
                    }
                    Some(Ok(_)) => Ok(()), // ping/pong, answered by tungstenite
                    Some(Err(WsError::Capacity(error))) => Err((close::TOO_BIG, format!("{error}; raise Limits::max_message_size on both peers if this is intended"))),
                    Some(Err(error)) => {
                        debug!(%error, "connection failed");
                        lost = true;
                        break;
                    }
                };
                if let Err((code, reason)) = verdict {
                    debug!(code, %reason, "closing the connection");
                    let _ = calls.tx.send(Outgoing::Close(code, reason)).await;
                    break;
                }
            }
            Some(deadline) = requested(&mut shutdown), if drain_deadline.is_none() => {
                drain_deadline = Some(deadline);
                calls.live.go_away();
            }
            () = sleep_until(drain_deadline.unwrap_or_else(Instant::now)), if drain_deadline.is_some() => {
                debug!(remaining = calls.running.len(), "shutdown deadline passed; cancelling calls");
                let _ = calls.tx.send(Outgoing::Close(close::GOING_AWAY, "server shut down".into())).await;
                break;
            }
            () = kill.notified() => break,
            _ = keep_alive.tick() => {
                if calls.tx.try_send(Outgoing::Ping).is_err() {
                    debug!("writer backed up; keep-alive skipped");
                }
            }
            () = sleep_until(heard + limits.idle_timeout) => {
                debug!(idle = ?limits.idle_timeout, "nothing from the client within the idle timeout; connection lost");
                lost = true;
                break;
            }
            () = kick.notified() => {
                debug!("session taken over by a resuming connection");
                let _ = calls.tx.send(Outgoing::Close(close::GOING_AWAY, "session resumed on another connection".into())).await;
                lost = true;
                break;
            }
            Some(_) = calls.running.join_next() => {}
        }
    }
    calls.running.abort_all();
    let Calls { live, tx, .. } = calls;
    live.end(lost).await;
    drop(tx);
    // let the writer deliver a final close frame, and the client read it before the socket
    // closes (closing with unread input would reset the connection and lose the frame);
    // a peer that neither reads nor closes is dropped after the linger
    let linger = async {
        while tasks.join_next().await.is_some() {}
        if closed_by_us && !lost {
            // until the client answers with its close; if the stream cannot tell (it
            // failed on the message that made us close), wait out the linger
            loop {
                match source.next().await {
                    Some(Ok(Message::Close(_))) => break,
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => std::future::pending::<()>().await,
                }
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_LINGER, linger).await;
}

impl<H: RpcHandler> Calls<H> {
    /// Handles one binary message from the client. An error closes the connection with the
    /// given code and reason: only for frames that cannot be attributed to a call.
    async fn receive(&mut self, data: Bytes, draining: bool) -> Result<(), (u16, String)> {
        let max = self.live.session.limits.max_message_size;
        let (header, body) =
            FrameHeader::split(&data, max).map_err(|e| (close::PROTOCOL, e.to_string()))?;
        match header.kind {
            Kind::Call => {
                let outcome = if draining {
                    Some(Outcome::Failure(
                        ErrorCode::ShuttingDown,
                        "server is shutting down; call not run".into(),
                    ))
                } else if lock(&self.by_id).contains_key(&header.id) {
                    Some(Outcome::Failure(
                        ErrorCode::Malformed,
                        format!("call id {} is already in flight", header.id),
                    ))
                } else if lock(&self.by_id).len()
                    >= self.live.session.limits.max_concurrent_calls as usize
                {
                    Some(Outcome::Failure(
                        ErrorCode::Overloaded,
                        format!(
                            "more than max_concurrent_calls ({}) in flight",
                            self.live.session.limits.max_concurrent_calls
                        ),
                    ))
                } else {
                    self.start(header, body).await.err().map(|e| refusal(&e))
                };
                if let Some(outcome) = outcome {
                    self.reply(header.id, outcome).await;
                }
                Ok(())
            }
            Kind::Cancel => {
                if let Some(call) = lock(&self.by_id).remove(&header.id) {
                    call.abort();
                }
                Ok(())
            }
            other => Err((
                close::PROTOCOL,
                format!("unexpected {} frame from a client", other.name()),
            )),
        }
    }

    async fn start(&mut self, header: FrameHeader, body: &[u8]) -> Result<(), ProtocolError> {
        let budget = reserve(&self.live.session, &header).await?;
        let call = Call::open(&self.live.session, header, codec::realign(body), budget)?;
        let (handler, state, session, tx) = (
            Arc::clone(&self.live.handler),
            self.live.state.clone(),
            Arc::clone(&self.live.session),
            self.tx.clone(),
        );
        let id = header.id;
        let by_id = Arc::clone(&self.by_id);
        // the entry is in the map before the task can remove it
        let mut in_flight = lock(&self.by_id);
        let abort = self.running.spawn(async move {
            // cancellation is by abort: the task, and the handler future with it, is dropped
            let outcome = call
                .run(handler, &session, std::future::pending::<()>())
                .await;
            {
                let mut in_flight = lock(&by_id);
                if in_flight
                    .get(&id)
                    .is_some_and(|call| call.id() == tokio::task::id())
                {
                    in_flight.remove(&id);
                }
            }
            if let Some(outcome) = outcome {
                let frame = reply_frame(id, state.version(), outcome, &session);
                let _ = tx.send(Outgoing::Frames(vec![frame.into()])).await;
            }
        });
        in_flight.insert(id, abort);
        Ok(())
    }

    async fn reply(&self, id: u64, outcome: Outcome) {
        let frame = reply_frame(id, self.live.state.version(), outcome, &self.live.session);
        let _ = self.tx.send(Outgoing::Frames(vec![frame.into()])).await;
    }
}

/// Sends queued messages, flushing once per batch.
async fn write_loop<S: AsyncRead + AsyncWrite + Unpin>(
    mut sink: SplitSink<WebSocketStream<S>, Message>,
    mut rx: mpsc::Receiver<Outgoing>,
) {
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(out) = next.take() {
            match out {
                Outgoing::Frames(frames) => {
                    for frame in frames {
                        if sink.feed(Message::Binary(frame)).await.is_err() {
                            return;
                        }
                    }
                }
                Outgoing::Ping => {
                    if sink.feed(Message::Ping(Bytes::new())).await.is_err() {
                        return;
                    }
                }
                Outgoing::Close(code, reason) => {
                    let frame = CloseFrame {
                        code: code.into(),
                        reason: reason.into(),
                    };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    return;
                }
            }
            next = rx.try_recv().ok();
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
}
