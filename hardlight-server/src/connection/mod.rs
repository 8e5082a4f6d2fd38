//! One connection's lifecycle, whatever transport carries it: the HardLight handshake,
//! then calls and the push stream while live, then drain and end. Each transport
//! implements [`Link`]; the handshake deadline, shutdown and its deadline, takeover by a
//! resuming client, the slow-consumer close, the call table and whether the connection was
//! lost or closed are decided here, once.

mod calls;
mod deadline;
mod link;
pub(crate) mod mux;
mod streams;

pub(crate) use deadline::FrameDeadline;
pub(crate) use hardlight_core::woken::Woken;
pub(crate) use link::{CallIo, Ended, Incoming, Link, NoHello};

use std::{
    fmt::Display,
    future::{poll_fn, Future},
    pin::{pin, Pin},
    sync::Arc,
    task::Poll,
};

use futures_util::{future::OptionFuture, FutureExt};

use hardlight_core::{
    close::Close,
    handshake::{RejectCode, Rejection},
};
use tokio::time::{error::Elapsed, sleep_until, timeout_at, Instant, Sleep};
use tracing::debug;

use self::calls::{Calls, LocalSlot, Serving};
use crate::{
    handler::RpcHandler,
    session::{
        handshake::{accept, parse_hello, reject_frame, Accepted, Live, Peer, MAX_HELLO},
        push::PushEnd,
        resume::Sessions,
        ServerShared,
    },
    shutdown::{deadline_passed, requested},
};

/// Serves one connection to its end. The handshake (from the transport's accept, at
/// `deadline`) must complete in time; afterwards the connection lives until the peer
/// leaves, the server shuts down, a resuming client takes its session, or the client
/// reads too slowly.
pub(crate) async fn serve<H: RpcHandler, L: Link>(
    mut link: L,
    peer: Peer,
    deadline: Instant,
    sessions: Arc<Sessions<H>>,
    shared: Arc<ServerShared>,
) {
    let mut shutdown = shared.signals.deadline.subscribe();
    // the phases before and after the connection's live one run boxed: the connection's
    // task, which lives as long as the connection, is then only as large as what the
    // live phase holds (`BENCHMARKS.md`, idle connections)
    let starting = Box::pin(start(&mut link, peer, deadline, &sessions, &shared));
    // a peer that stalls its handshake or its push stream does not hold up the shutdown;
    // what the start gave is taken apart within one statement, so that none of it keeps
    // room in this future for the connection's life
    let mut live = match tokio::select! {
        started = starting => started,
        () = deadline_passed(&mut shutdown) => {
            link.close(Close::Shutdown, "server shut down");
            return Box::pin(link.finish(Ended::Closed)).await;
        }
    } {
        Start::Live(accepted, push) => accepted.go_live(push),
        Start::Ended(ended) => return Box::pin(link.finish(ended)).await,
    };
    debug!("connected");
    let ended = drive(&mut link, &mut live, &shared).await;
    debug!(?ended, "disconnected");
    Box::pin(live.end(ended == Ended::Lost)).await;
    Box::pin(link.finish(ended)).await;
}

/// The live phase of a connection whose transport handshake gave `accepted` (nothing if
/// it failed): [`serve`]'s future, made here to be awaited where it is returned, so that
/// no binding in the caller's future holds a second copy of it, or the link, for the
/// connection's life (`BENCHMARKS.md`, idle connections).
pub(crate) fn live<H: RpcHandler, L: Link>(
    accepted: Option<(L, Peer)>,
    deadline: Instant,
    sessions: Arc<Sessions<H>>,
    shared: Arc<ServerShared>,
) -> OptionFuture<impl Future<Output = ()>> {
    let serving = accepted.map(|(link, peer)| serve(link, peer, deadline, sessions, shared));
    OptionFuture::from(serving)
}

/// How a connection's start went.
enum Start<H: RpcHandler, P> {
    /// Handshake done and push stream open.
    Live(Accepted<H>, P),
    /// It ended before going live.
    Ended(Ended),
}

/// The handshake, then the push stream, both by `deadline`.
async fn start<H: RpcHandler, L: Link>(
    link: &mut L,
    peer: Peer,
    deadline: Instant,
    sessions: &Arc<Sessions<H>>,
    shared: &ServerShared,
) -> Start<H, L::Push> {
    let accepted = match timeout_at(deadline, handshake(link, peer, sessions, shared)).await {
        Ok(Some(accepted)) => accepted,
        Ok(None) => return Start::Ended(Ended::Closed),
        Err(_) => {
            debug!("HardLight handshake timed out");
            link.close(Close::Protocol, "handshake timed out");
            return Start::Ended(Ended::Closed);
        }
    };
    match timeout_at(deadline, link.open_push()).await {
        Ok(Some(push)) => Start::Live(accepted, push),
        _ => {
            debug!("cannot open the push stream");
            // the client has its Welcome: keep the session for it to resume
            accepted.abandon();
            link.close(Close::Protocol, "no push stream");
            Start::Ended(Ended::Lost)
        }
    }
}

/// Reads the `Hello` and answers it: `Welcome` (the handler is created or the session
/// resumed) or `Reject`.
async fn handshake<H: RpcHandler, L: Link>(
    link: &mut L,
    peer: Peer,
    sessions: &Arc<Sessions<H>>,
    shared: &ServerShared,
) -> Option<Accepted<H>> {
    let hello = match link.hello(MAX_HELLO).await {
        Ok((header, body)) => parse_hello(&header, &body),
        Err(NoHello::Gone) => {
            debug!("connection ended before the handshake");
            return None;
        }
        Err(NoHello::Invalid(reason)) => Err(Rejection {
            code: RejectCode::Malformed,
            reason,
        }),
    };
    let accepted = match hello {
        Ok(hello) => accept(&hello, sessions, shared, peer).await,
        Err(rejection) => Err(rejection),
    };
    match accepted {
        Ok(accepted) => {
            if link.welcome(accepted.welcome.clone()).await {
                Some(accepted)
            } else {
                debug!("the Welcome could not be sent");
                accepted.abandon();
                None
            }
        }
        Err(rejection) => {
            debug!(code = %rejection.code, reason = %rejection.reason, "handshake rejected");
            link.reject(reject_frame(&rejection), &rejection.code.to_string())
                .await;
            None
        }
    }
}

/// What a step of a connection's start (`what`: the TLS or QUIC handshake, the WebSocket
/// upgrade) gave by its deadline; `None`, logged, if it failed or the deadline passed.
pub(crate) fn by_deadline<T, E: Display>(
    step: Result<Result<T, E>, Elapsed>,
    what: &'static str,
) -> Option<T> {
    match step {
        Ok(Ok(value)) => Some(value),
        Ok(Err(error)) => {
            debug!(%error, "{what} failed");
            None
        }
        Err(_) => {
            debug!("{what} timed out");
            None
        }
    }
}

/// Serves calls until the connection ends; returns how it ended. The control arms are
/// polled beside the transport at all times: nothing a peer does or fails to do delays
/// the shutdown deadline, a takeover or the slow-consumer close.
async fn drive<H: RpcHandler, L: Link>(
    link: &mut L,
    live: &mut Live<H>,
    shared: &ServerShared,
) -> Ended {
    let serving = Serving {
        handler: Arc::clone(&live.handler),
        state: live.state.clone(),
        context: Arc::clone(&live.context),
    };
    let mut calls = Calls::new(shared.server_limits.max_concurrent_calls());
    let mut tally = serving.context.meter.tally();
    let mut shutdown = shared.signals.deadline.subscribe();
    // The control arms live across the loop's turns, and are polled only when one of them
    // has woken: not again for every frame read.
    let mut control = Woken::new();
    let mut requested = pin!(requested(&mut shutdown).fuse());
    let kick = Arc::clone(&live.kick);
    let mut kicked = pin!(kick.notified());
    let mut drain: Option<Pin<Box<Sleep>>> = None;
    loop {
        // what the link has read already, while no control arm has woken: no select! is
        // set up around each call of a message or chunk read together
        let now = match control.is_woken() {
            true => None,
            false => link.next_now(&serving.context),
        };
        // the control arms first, each time one has woken: a peer that keeps the link busy
        // delays none of them
        let incoming = match now {
            Some(incoming) => incoming,
            None => tokio::select! {
                biased;
                control = control.next(|cx| {
                    if drain.is_none() {
                        if let Poll::Ready(Some(deadline)) = requested.as_mut().poll(cx) {
                            return Poll::Ready(Control::Drain(deadline));
                        }
                    }
                    if let Some(sleep) = &mut drain {
                        if sleep.as_mut().poll(cx).is_ready() {
                            return Poll::Ready(Control::Deadline);
                        }
                    }
                    if kicked.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Control::TakenOver);
                    }
                    live.poll_push_ended(cx).map(Control::PushEnded)
                }) => match control {
                    Control::Drain(deadline) => {
                        drain = Some(Box::pin(sleep_until(deadline)));
                        live.go_away();
                        continue;
                    }
                    Control::Deadline => {
                        debug!(remaining = calls.len(), "shutdown deadline passed; cancelling calls");
                        link.close(Close::Shutdown, "server shut down");
                        return Ended::Closed;
                    }
                    Control::TakenOver => {
                        debug!("session taken over by a resuming connection");
                        link.close(Close::TakenOver, "session resumed on another connection");
                        return Ended::Lost;
                    }
                    Control::PushEnded(PushEnd::SlowConsumer) => {
                        debug!("event queue overflowed; disconnecting the slow client");
                        link.close(Close::SlowConsumer, "event queue overflowed");
                        return Ended::Closed;
                    }
                    Control::PushEnded(PushEnd::Stalled) => {
                        debug!("the client took no push frame within send_timeout; disconnecting");
                        link.close(Close::SlowConsumer, "the client stopped reading");
                        return Ended::Closed;
                    }
                    // the transport reports the end
                    Control::PushEnded(PushEnd::Gone) => continue,
                },
                incoming = async {
                    let mut next = pin!(link.next(&serving.context));
                    poll_fn(|cx| {
                        let polled = next.as_mut().poll(cx);
                        if polled.is_pending() {
                            calls.idle();
                        }
                        polled
                    })
                    .await
                } => incoming,
            },
        };
        match incoming {
            Incoming::Call(io) => {
                let draining = drain.is_some();
                let begin = |io, slot: LocalSlot<'_>, refused, spare: &mut _| {
                    serving.begin(io, slot, refused, spare, &mut tally)
                };
                if let Err(reason) = calls.start(io, draining, begin) {
                    debug!(%reason, "closing the connection");
                    link.close(Close::Protocol, &reason);
                    return Ended::Closed;
                }
            }
            Incoming::Cancel(id) => calls.cancel(id),
            Incoming::Ack { slot, seq } => live.ack(slot, seq),
            Incoming::Violation(close, reason) => {
                debug!(%close, %reason, "closing the connection");
                link.close(close, &reason);
                return Ended::Closed;
            }
            Incoming::Ended(ended) => return ended,
        }
    }
}

/// What woke a control arm of a live connection.
enum Control {
    /// Shutdown was requested, to complete by this deadline.
    Drain(Instant),
    /// The shutdown deadline passed.
    Deadline,
    /// A resuming client took the session over.
    TakenOver,
    /// The push stream ended.
    PushEnded(PushEnd),
}
