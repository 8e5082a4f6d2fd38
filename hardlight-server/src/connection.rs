//! One client connection: handshake, then calls and the push stream until it ends.

use std::sync::Arc;

use hardlight_core::{
    codec::{decode, encode},
    frame::{FrameHeader, Kind},
    handshake::{check_hello, Hello, RejectCode, Rejection, Welcome},
    io::read_frame,
    message::encode_frame,
    Compression, Limits, Service,
};
use quinn::{Connection, Incoming, SendStream};
use tokio::{
    sync::{watch, Semaphore},
    task::JoinSet,
    time::{sleep_until, timeout, timeout_at, Instant},
};
use tracing::{debug, info_span, warn, Instrument};

use crate::{
    call::{budget, reply_frame, serve_call},
    handler::{Factory, Handler, HandlerContext, StateOf},
    push::push_loop,
    shutdown::Signals,
    state_handle::StateHandle,
    topics::{EventEmitter, Hub, Outbox, SlowConsumerPolicy, Subscriptions},
};

/// QUIC application close codes used by the server.
pub(crate) mod close {
    use quinn::VarInt;
    /// The handshake was rejected; the reason was sent in a `Reject` frame.
    pub(crate) const REJECTED: VarInt = VarInt::from_u32(0x10);
    /// The server shut down.
    pub(crate) const SHUTDOWN: VarInt = VarInt::from_u32(0x11);
    /// The peer broke the protocol outside a call.
    pub(crate) const PROTOCOL: VarInt = VarInt::from_u32(0x12);
    /// The client read events too slowly (slow-consumer policy `Disconnect`).
    pub(crate) const SLOW_CONSUMER: VarInt = VarInt::from_u32(0x13);
}

/// Largest `Hello` the server reads: a handshake is small; this bounds pre-auth memory.
const MAX_HELLO: u32 = 64 * 1024;

/// Settings every connection of a server shares.
#[derive(Debug)]
pub(crate) struct ServerShared {
    pub(crate) limits: Limits,
    pub(crate) compression: Compression,
    pub(crate) signals: Arc<Signals>,
    pub(crate) hub: Arc<Hub>,
    pub(crate) slow_consumer: SlowConsumerPolicy,
}

/// What a connection's calls share after the handshake.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) limits: Limits,
    /// The compression negotiated for this connection.
    pub(crate) compression: Compression,
    /// Request bytes the connection may have buffered at once.
    pub(crate) budget: Arc<Semaphore>,
}

impl Session {
    pub(crate) fn compression_negotiated(&self) -> bool {
        self.compression != Compression::None
    }
}

/// Drives one incoming connection to its end. Everything it spawned is aborted when it
/// returns, and the handler is dropped with the last call task.
pub(crate) async fn serve_connection<H: Handler>(
    incoming: Incoming,
    factory: Factory<H>,
    shared: Arc<ServerShared>,
) {
    let remote = incoming.remote_address();
    let span = info_span!("connection", %remote);
    async move {
        let deadline = Instant::now() + shared.limits.handshake_timeout;
        let connecting = match incoming.accept() {
            Ok(connecting) => connecting,
            Err(error) => return debug!(%error, "incoming connection failed"),
        };
        let conn = match timeout_at(deadline, connecting).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(error)) => return debug!(%error, "QUIC handshake failed"),
            Err(_) => return debug!("QUIC handshake timed out"),
        };
        let accepted = timeout_at(deadline, handshake(&conn, &factory, &shared)).await;
        match accepted {
            Ok(Some(accepted)) => {
                debug!("connected");
                run_session(conn, accepted, &shared).await;
                debug!("disconnected");
            }
            Ok(None) => {}
            Err(_) => {
                debug!("HardLight handshake timed out");
                conn.close(close::PROTOCOL, b"handshake timed out");
            }
        }
    }
    .instrument(span)
    .await
}

struct Accepted<H: Handler> {
    handler: Arc<H>,
    state: StateHandle<StateOf<H>>,
    session: Arc<Session>,
    outbox: Arc<Outbox>,
    subscriptions: Subscriptions,
}

/// Reads `Hello`, answers `Welcome` (creating the handler) or `Reject`.
async fn handshake<H: Handler>(
    conn: &Connection,
    factory: &Factory<H>,
    shared: &ServerShared,
) -> Option<Accepted<H>> {
    let (mut send, mut recv) = conn.accept_bi().await.ok()?;
    let hello = match read_frame(&mut recv, MAX_HELLO).await {
        Ok((header, body)) if header.kind == Kind::Hello => decode::<Hello>(&body)
            .map_err(|e| rejection(RejectCode::Malformed, format!("invalid Hello: {e}"))),
        Ok((header, _)) => Err(rejection(
            RejectCode::Malformed,
            format!("expected Hello, got {}", header.kind.name()),
        )),
        Err(e) => Err(rejection(RejectCode::Malformed, format!("handshake: {e}"))),
    };
    let service = <H::Service as Service>::NAME;
    let schema = <H::Service as Service>::SCHEMA_HASH;
    let negotiated = hello.and_then(|hello| {
        if shared.signals.deadline.borrow().is_some() {
            return Err(rejection(
                RejectCode::ShuttingDown,
                "server is shutting down".into(),
            ));
        }
        check_hello(&hello, service, schema, shared.compression)
    });
    let negotiated = match negotiated {
        Ok(negotiated) => negotiated,
        Err(rejection) => {
            debug!(code = %rejection.code, reason = %rejection.reason, "handshake rejected");
            reject(conn, send, rejection).await;
            return None;
        }
    };
    let state = match StateHandle::new(StateOf::<H>::default()) {
        Ok(state) => state,
        Err(error) => {
            warn!(%error, "initial connection state does not serialize");
            conn.close(close::PROTOCOL, b"server state error");
            return None;
        }
    };
    let outbox = Outbox::new(shared.limits.max_queued_events, shared.slow_consumer);
    let subscriptions = Subscriptions::new(Arc::clone(&shared.hub), Arc::clone(&outbox));
    let handler = factory.create(HandlerContext {
        state: state.clone(),
        subscriptions: subscriptions.clone(),
        events: EventEmitter::new(
            Arc::clone(&shared.hub),
            shared.compression,
            shared.limits.max_message_size,
        ),
    });
    let (state_version, snapshot) = state.snapshot().await;
    let welcome = Welcome {
        session_id: rand::random(),
        compression: negotiated
            .compression
            .offers()
            .first()
            .copied()
            .unwrap_or(0),
        max_message_size: shared.limits.max_message_size,
        max_concurrent_calls: shared.limits.max_concurrent_calls,
        state: snapshot,
        state_version,
    };
    let frame = encode(&welcome).and_then(|body| {
        encode_frame(
            FrameHeader::new(Kind::Welcome, 0),
            &body,
            negotiated.compression,
        )
    });
    let frame = match frame {
        Ok(frame) => frame,
        Err(error) => {
            warn!(%error, "cannot encode Welcome");
            conn.close(close::PROTOCOL, b"server state error");
            return None;
        }
    };
    send.write_all(&frame).await.ok()?;
    send.finish().ok()?;
    Some(Accepted {
        handler,
        state,
        outbox,
        subscriptions,
        session: Arc::new(Session {
            limits: shared.limits.clone(),
            compression: negotiated.compression,
            budget: budget(shared.limits.max_inflight_bytes),
        }),
    })
}

fn rejection(code: RejectCode, reason: String) -> Rejection {
    Rejection { code, reason }
}

/// Sends `Reject`, waits (briefly) for the client to receive it, then closes.
async fn reject(conn: &Connection, mut send: SendStream, rejection: Rejection) {
    let body = encode(&rejection.reason).unwrap_or_default();
    let header = FrameHeader::new(Kind::Reject, 0).with_aux(rejection.code.to_u16());
    if let Ok(frame) = encode_frame(header, &body, Compression::None) {
        if send.write_all(&frame).await.is_ok() && send.finish().is_ok() {
            let _ = timeout(std::time::Duration::from_secs(2), send.stopped()).await;
        }
    }
    conn.close(close::REJECTED, rejection.code.to_string().as_bytes());
}

/// Serves calls until the connection ends or a shutdown's deadline passes.
async fn run_session<H: Handler>(conn: Connection, accepted: Accepted<H>, shared: &ServerShared) {
    let Accepted {
        handler,
        state,
        session,
        outbox,
        subscriptions,
    } = accepted;
    let mut shutdown = shared.signals.deadline.subscribe();
    let (go_away, go_away_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    match conn.open_uni().await {
        Ok(push) => {
            tasks.spawn(push_loop(
                push,
                conn.clone(),
                state.clone(),
                outbox,
                Arc::clone(&session),
                go_away_rx,
            ));
        }
        Err(error) => {
            subscriptions.close();
            return debug!(%error, "cannot open the push stream");
        }
    }
    let mut calls = JoinSet::new();
    let mut drain_deadline: Option<Instant> = None;
    loop {
        tokio::select! {
            stream = conn.accept_bi() => match stream {
                Ok((send, recv)) if drain_deadline.is_none() => {
                    calls.spawn(serve_call(
                        Arc::clone(&handler),
                        state.clone(),
                        Arc::clone(&session),
                        send,
                        recv,
                    ));
                }
                Ok((mut send, _recv)) => {
                    let refusal = hardlight_core::Outcome::Failure(
                        hardlight_core::ErrorCode::ShuttingDown,
                        "server is shutting down; call not run".into(),
                    );
                    let frame = reply_frame(0, state.version(), refusal, &session);
                    tasks.spawn(async move {
                        if send.write_all(&frame).await.is_ok() {
                            let _ = send.finish();
                        }
                    });
                }
                Err(error) => {
                    debug!(%error, "connection ended");
                    break;
                }
            },
            Ok(deadline) = shutdown.wait_for(Option::is_some), if drain_deadline.is_none() => {
                drain_deadline = *deadline;
                let _ = go_away.send(true);
            }
            () = sleep_until(drain_deadline.unwrap_or_else(Instant::now)), if drain_deadline.is_some() => {
                debug!(remaining = calls.len(), "shutdown deadline passed; cancelling calls");
                conn.close(close::SHUTDOWN, b"server shut down");
                break;
            }
            Some(_) = calls.join_next() => {}
        }
    }
    subscriptions.close();
}
