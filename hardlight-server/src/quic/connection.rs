//! One QUIC connection: handshake, then calls and the push stream until it ends.

use hardlight_core::TransportKind as Transport;
use std::sync::Arc;

use bytes::Bytes;
use hardlight_core::{io::read_frame, ErrorCode, Outcome};
use quinn::{Connection, ConnectionError, Incoming, SendStream};
use tokio::{
    task::JoinSet,
    time::{sleep_until, timeout, timeout_at, Instant},
};
use tracing::{debug, info_span, Instrument};

use super::{call::serve_call, close};
use crate::{
    admission::Connected,
    handler::RpcHandler,
    session::{
        dispatch::reply_frame,
        handshake::{accept, parse_hello, reject_frame, Accepted, Peer, MAX_HELLO},
        push::PushSink,
        resume::Sessions,
        ServerShared,
    },
    shutdown::requested,
};

/// Drives one incoming connection to its end. Everything it spawned is aborted when it
/// returns, and the handler is dropped with the last call task.
pub(crate) async fn serve_connection<H: RpcHandler>(
    incoming: Incoming,
    _admitted: Connected,
    sessions: Arc<Sessions<H>>,
    shared: Arc<ServerShared>,
) {
    let remote = incoming.remote_address();
    let span = info_span!("connection", transport = "quic", %remote);
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
        match timeout_at(deadline, handshake(&conn, &sessions, &shared, remote)).await {
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

/// Reads `Hello` on the first stream, answers `Welcome` (creating the handler) or `Reject`.
async fn handshake<H: RpcHandler>(
    conn: &Connection,
    sessions: &Arc<Sessions<H>>,
    shared: &ServerShared,
    remote: std::net::SocketAddr,
) -> Option<Accepted<H>> {
    let (mut send, mut recv) = conn.accept_bi().await.ok()?;
    let hello = match read_frame(&mut recv, MAX_HELLO).await {
        Ok((header, body)) => parse_hello(&header, &body),
        Err(e) => Err(hardlight_core::handshake::Rejection {
            code: hardlight_core::RejectCode::Malformed,
            reason: format!("handshake: {e}"),
        }),
    };
    let accepted = match hello {
        Ok(hello) => {
            let peer = Peer {
                remote,
                transport: Transport::Quic,
                headers: Vec::new(),
            };
            accept(&hello, sessions, shared, peer).await
        }
        Err(rejection) => Err(rejection),
    };
    match accepted {
        Ok(accepted) => {
            send.write_all(&accepted.welcome).await.ok()?;
            send.finish().ok()?;
            Some(accepted)
        }
        Err(rejection) => {
            debug!(code = %rejection.code, reason = %rejection.reason, "handshake rejected");
            // wait (briefly) until the client has the reason, then close
            if send.write_all(&reject_frame(&rejection)).await.is_ok() && send.finish().is_ok() {
                let _ = timeout(std::time::Duration::from_secs(2), send.stopped()).await;
            }
            conn.close(close::REJECTED, rejection.code.to_string().as_bytes());
            None
        }
    }
}

/// The push stream over QUIC.
struct QuicPush {
    stream: SendStream,
    conn: Connection,
}

impl PushSink for QuicPush {
    async fn write(&mut self, mut frames: Vec<Bytes>) -> bool {
        self.stream.write_all_chunks(&mut frames).await.is_ok()
    }

    fn disconnect_slow_consumer(&mut self) {
        self.conn
            .close(close::SLOW_CONSUMER, b"event queue overflowed");
    }
}

/// Serves calls until the connection ends or a shutdown's deadline passes.
async fn run_session<H: RpcHandler>(
    conn: Connection,
    accepted: Accepted<H>,
    shared: &ServerShared,
) {
    let mut shutdown = shared.signals.deadline.subscribe();
    let mut tasks = JoinSet::new();
    let live = match conn.open_uni().await {
        Ok(stream) => {
            let sink = QuicPush {
                stream,
                conn: conn.clone(),
            };
            accepted.go_live(sink)
        }
        Err(error) => {
            accepted.abandon();
            return debug!(%error, "cannot open the push stream");
        }
    };
    let mut calls = JoinSet::new();
    let mut drain_deadline: Option<Instant> = None;
    let mut lost = false;
    loop {
        tokio::select! {
            stream = conn.accept_bi() => match stream {
                Ok((send, recv)) if drain_deadline.is_none() => {
                    calls.spawn(serve_call(
                        Arc::clone(&live.handler),
                        live.state.clone(),
                        Arc::clone(&live.session),
                        send,
                        recv,
                    ));
                }
                Ok((mut send, _recv)) => {
                    let refusal = Outcome::Failure(
                        ErrorCode::ShuttingDown,
                        "server is shutting down; call not run".into(),
                    );
                    let frame = reply_frame(0, live.state.version(), refusal, &live.session);
                    tasks.spawn(async move {
                        if send.write_all(&frame).await.is_ok() {
                            let _ = send.finish();
                        }
                    });
                }
                Err(error) => {
                    debug!(%error, "connection ended");
                    lost = is_lost(&error);
                    break;
                }
            },
            () = live.kick.notified() => {
                debug!("session taken over by a resuming connection");
                conn.close(close::TAKEN_OVER, b"session resumed on another connection");
                lost = true;
                break;
            }
            Some(deadline) = requested(&mut shutdown), if drain_deadline.is_none() => {
                drain_deadline = Some(deadline);
                live.go_away();
            }
            () = sleep_until(drain_deadline.unwrap_or_else(Instant::now)), if drain_deadline.is_some() => {
                debug!(remaining = calls.len(), "shutdown deadline passed; cancelling calls");
                conn.close(close::SHUTDOWN, b"server shut down");
                break;
            }
            Some(_) = calls.join_next() => {}
        }
    }
    calls.abort_all();
    live.end(lost).await;
}

/// Whether a connection that failed with `error` was lost (so its session is kept for
/// resumption) rather than closed on purpose by either side.
fn is_lost(error: &ConnectionError) -> bool {
    !matches!(
        error,
        ConnectionError::ApplicationClosed(_) | ConnectionError::LocallyClosed
    )
}
