//! Accepting a `Hello`: version, schema and compression checks, then the connection's
//! handler, state, event queue and subscriptions, and the `Welcome` to send.

use std::sync::Arc;

use hardlight_core::{
    codec::{decode, encode},
    frame::{FrameHeader, Kind},
    handshake::{check_hello, Hello, RejectCode, Rejection, Welcome},
    message::encode_frame,
    Compression, Service,
};

use tokio::{sync::watch, task::JoinSet};

use super::{
    push::{push_loop, PushSink},
    ServerShared, Session,
};
use crate::{
    handler::{Factory, Handler, HandlerContext, StateOf},
    state_handle::StateHandle,
    topics::{EventEmitter, Outbox, Subscriptions},
};

/// Largest `Hello` the server reads: a handshake is small; this bounds pre-auth memory.
pub(crate) const MAX_HELLO: u32 = 64 * 1024;

/// A connection whose handshake succeeded.
pub(crate) struct Accepted<H: Handler> {
    pub(crate) handler: Arc<H>,
    pub(crate) state: StateHandle<StateOf<H>>,
    pub(crate) session: Arc<Session>,
    pub(crate) outbox: Arc<Outbox>,
    pub(crate) subscriptions: Subscriptions,
    /// The `Welcome` frame to send.
    pub(crate) welcome: Vec<u8>,
}

fn rejection(code: RejectCode, reason: impl Into<String>) -> Rejection {
    Rejection {
        code,
        reason: reason.into(),
    }
}

/// A connection being served: what its calls need, and the switch that sends `GoAway`.
/// Dropping it ends the connection's subscriptions, whatever path the connection left by.
pub(crate) struct Live<H: Handler> {
    pub(crate) handler: Arc<H>,
    pub(crate) state: StateHandle<StateOf<H>>,
    pub(crate) session: Arc<Session>,
    subscriptions: Subscriptions,
    go_away: watch::Sender<bool>,
}

impl<H: Handler> Accepted<H> {
    /// Starts the push stream on `sink` (as a task in `tasks`) and returns the live
    /// connection.
    pub(crate) fn go_live<P: PushSink + 'static>(
        self,
        sink: P,
        tasks: &mut JoinSet<()>,
    ) -> Live<H> {
        let (go_away, go_away_rx) = watch::channel(false);
        tasks.spawn(push_loop(
            sink,
            self.state.clone(),
            self.outbox,
            Arc::clone(&self.session),
            go_away_rx,
        ));
        Live {
            handler: self.handler,
            state: self.state,
            session: self.session,
            subscriptions: self.subscriptions,
            go_away,
        }
    }
}

impl<H: Handler> Accepted<H> {
    /// Gives up on a connection that could not start: ends any subscriptions the new
    /// handler made.
    pub(crate) fn abandon(self) {
        self.subscriptions.close();
    }
}

impl<H: Handler> Live<H> {
    /// Tells the client the server is shutting down (`GoAway` on the push stream).
    pub(crate) fn go_away(&self) {
        let _ = self.go_away.send(true);
    }
}

impl<H: Handler> Drop for Live<H> {
    fn drop(&mut self) {
        self.subscriptions.close();
    }
}

/// Checks that a received frame is a valid `Hello`.
pub(crate) fn parse_hello(header: &FrameHeader, body: &[u8]) -> Result<Hello, Rejection> {
    if header.kind != Kind::Hello {
        return Err(rejection(
            RejectCode::Malformed,
            format!("expected Hello, got {}", header.kind.name()),
        ));
    }
    decode::<Hello>(body)
        .map_err(|e| rejection(RejectCode::Malformed, format!("invalid Hello: {e}")))
}

/// Accepts `hello` for service `H`: on success the handler exists and the `Welcome`
/// (with the full state snapshot) is ready to send.
pub(crate) async fn accept<H: Handler>(
    hello: &Hello,
    factory: &Factory<H>,
    shared: &ServerShared,
) -> Result<Accepted<H>, Rejection> {
    if shared.signals.deadline.borrow().is_some() {
        return Err(rejection(
            RejectCode::ShuttingDown,
            "server is shutting down",
        ));
    }
    let service = <H::Service as Service>::NAME;
    let schema = <H::Service as Service>::SCHEMA_HASH;
    let negotiated = check_hello(hello, service, schema, shared.compression)?;
    let internal = |e: &dyn std::fmt::Display| rejection(RejectCode::Internal, e.to_string());
    let state = StateHandle::new(StateOf::<H>::default()).map_err(|e| internal(&e))?;
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
    let welcome = encode(&welcome)
        .and_then(|body| {
            encode_frame(
                FrameHeader::new(Kind::Welcome, 0),
                &body,
                negotiated.compression,
            )
        })
        .map_err(|e| internal(&e))?;
    Ok(Accepted {
        handler,
        state,
        session: Arc::new(Session::new(&shared.limits, negotiated.compression)),
        outbox,
        subscriptions,
        welcome,
    })
}

/// The `Reject` frame for a refusal.
pub(crate) fn reject_frame(rejection: &Rejection) -> Vec<u8> {
    let body = encode(&rejection.reason).unwrap_or_default();
    let header = FrameHeader::new(Kind::Reject, 0).with_aux(rejection.code.to_u16());
    encode_frame(header, &body, Compression::None).unwrap_or_default()
}
