//! Accepting a `Hello`: version, schema and compression checks, then the connection's
//! handler, state, event queue and subscriptions, and the `Welcome` to send.

use hardlight_core::TransportKind as Transport;
use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
};

use hardlight_core::{
    codec::{decode, encode},
    frame::{FrameHeader, Kind},
    handshake::{check_hello, Hello, RejectCode, Rejection, Welcome},
    message::encode_frame,
    Compression, Service,
};

use tokio::{
    sync::{watch, Notify},
    task::JoinHandle,
};

use super::{
    call_rate,
    push::{push_loop, PushEnd, PushSink},
    resume::{Session, Sessions},
    CallEnv, ServerShared,
};
use crate::{
    auth::{AuthRequest, ConnectionInfo, Identity},
    handler::{HandlerContext, RpcHandler, StateOf},
    state_handle::StateHandle,
    stats::Meter,
    topics::{Bounds, EventEmitter, Outbox, Subscriptions},
};

/// Who is connecting, as the transport knows it.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub(crate) remote: std::net::SocketAddr,
    pub(crate) transport: Transport,
    /// The WebSocket upgrade or WebTransport `CONNECT` request's headers (empty over
    /// QUIC).
    pub(crate) headers: Vec<(String, String)>,
}

/// Largest `Hello` the server reads: a handshake is small; this bounds pre-auth memory.
pub(crate) const MAX_HELLO: u32 = 64 * 1024;

/// A connection whose handshake succeeded. Dropped before it goes live, its session ends.
pub(crate) struct Accepted<H: RpcHandler> {
    session: Option<Session<H>>,
    sessions: Arc<Sessions<H>>,
    pub(crate) context: Arc<CallEnv>,
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
/// [`Live::end`] parks or closes the session; dropping it without `end` closes it.
pub(crate) struct Live<H: RpcHandler> {
    pub(crate) handler: Arc<H>,
    pub(crate) state: StateHandle<StateOf<H>>,
    pub(crate) context: Arc<CallEnv>,
    /// Notified when a resuming client takes this session over.
    pub(crate) kick: Arc<Notify>,
    session: Option<Session<H>>,
    sessions: Arc<Sessions<H>>,
    go_away: watch::Sender<bool>,
    /// The push loop, which must stop before the session moves on; `None` once it ended.
    push: Option<JoinHandle<PushEnd>>,
}

impl<H: RpcHandler> Accepted<H> {
    /// Starts the push stream on `sink` and returns the live connection.
    pub(crate) fn go_live<P: PushSink + 'static>(mut self, sink: P) -> Live<H> {
        let (go_away, go_away_rx) = watch::channel(false);
        let Some(session) = self.session.take() else {
            unreachable!("an Accepted always holds its session until it goes live or is dropped")
        };
        let push = tokio::spawn(push_loop(
            sink,
            session.state.clone(),
            Arc::clone(&session.outbox),
            Arc::clone(&self.context),
            go_away_rx,
        ));
        let kick = Arc::new(Notify::new());
        self.sessions
            .attach(session.id, &session.owner, Arc::clone(&kick));
        Live {
            handler: Arc::clone(&session.handler),
            state: session.state.clone(),
            context: Arc::clone(&self.context),
            kick,
            session: Some(session),
            sessions: Arc::clone(&self.sessions),
            go_away,
            push: Some(push),
        }
    }

    /// Gives up on a connection that could not start after its `Welcome` was prepared:
    /// the session is parked, so the client may still resume it.
    pub(crate) fn abandon(mut self) {
        if let Some(session) = self.session.take() {
            self.sessions.detach(session, true);
        }
    }
}

impl<H: RpcHandler> Drop for Accepted<H> {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            self.sessions.detach(session, false);
        }
    }
}

impl<H: RpcHandler> Live<H> {
    /// The client acked durable event `seq` of the consumer in `slot`.
    pub(crate) fn ack(&self, slot: u16, seq: u64) {
        if let Some(session) = &self.session {
            session.subscriptions.ack(slot, seq);
        }
    }

    /// Tells the client the server is shutting down (`GoAway` on the push stream).
    pub(crate) fn go_away(&self) {
        let _ = self.go_away.send(true);
    }

    /// Ready when the push loop ends, with why; then never again.
    pub(crate) fn poll_push_ended(&mut self, cx: &mut Context<'_>) -> Poll<PushEnd> {
        let Some(push) = &mut self.push else {
            return Poll::Pending;
        };
        let end = ready!(Pin::new(push).poll(cx)).unwrap_or(PushEnd::Gone);
        self.push = None;
        Poll::Ready(end)
    }

    /// The connection ended: `lost` (dropped by the network or taken over, not closed by
    /// either side) parks the session for resumption; otherwise it closes. The push loop
    /// is stopped first, so that nothing takes the session's events for a dead connection
    /// once a resumed one may be reading them.
    pub(crate) async fn end(mut self, lost: bool) {
        if let Some(push) = self.push.take() {
            push.abort();
            let _ = push.await;
        }
        if let Some(session) = self.session.take() {
            let shutting_down = *self.go_away.borrow();
            self.sessions.detach(session, lost && !shutting_down);
        }
    }
}

impl<H: RpcHandler> Drop for Live<H> {
    fn drop(&mut self) {
        if let Some(push) = &self.push {
            push.abort();
        }
        if let Some(session) = self.session.take() {
            self.sessions.detach(session, false);
        }
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

/// Accepts `hello` for service `H` from `peer`: checks version, schema and compression,
/// authenticates, then resumes the requested session or creates a new one. On success the
/// `Welcome` (with the full state snapshot) is ready to send.
pub(crate) async fn accept<H: RpcHandler>(
    hello: &Hello,
    sessions: &Arc<Sessions<H>>,
    shared: &ServerShared,
    peer: Peer,
) -> Result<Accepted<H>, Rejection> {
    let result = admit(hello, sessions, shared, peer).await;
    if let Err(rejection) = &result {
        shared
            .counters
            .handshake_rejected(reject_label(rejection.code));
    }
    result
}

async fn admit<H: RpcHandler>(
    hello: &Hello,
    sessions: &Arc<Sessions<H>>,
    shared: &ServerShared,
    peer: Peer,
) -> Result<Accepted<H>, Rejection> {
    if shared.signals.deadline.borrow().is_some() {
        return Err(rejection(
            RejectCode::ShuttingDown,
            "server is shutting down",
        ));
    }
    let service = <H::Service as Service>::NAME;
    let schema = <H::Service as Service>::schema();
    let negotiated = check_hello(hello, service, schema, shared.compression)?;
    let identity = match &shared.authenticator {
        Some(authenticator) => {
            let request = AuthRequest {
                token: hello.token.clone(),
                remote: peer.remote,
                transport: peer.transport,
                headers: peer.headers,
            };
            authenticator
                .authenticate(request)
                .await
                .map_err(|e| rejection(RejectCode::Unauthorized, e.reason))?
        }
        None => Identity::anonymous(),
    };
    let resumed = match hello.resume {
        Some(resume) => sessions
            .resume(resume.session_id, identity.subject())
            .await
            .inspect(|session| session.outbox.rewind(resume.events_received)),
        None => None,
    };
    let is_resumed = resumed.is_some();
    let connection = ConnectionInfo::new(identity, peer.remote, peer.transport);
    let caller = connection.clone();
    let address = shared.admission.address(peer.remote.ip());
    let session = match resumed {
        Some(session) => Session { address, ..session },
        None => new_session(sessions, shared, connection, address)?,
    };
    let (state_version, snapshot) = session.state.snapshot().await;
    let welcome = Welcome {
        session_id: session.id,
        compression: negotiated
            .compression
            .offers()
            .first()
            .copied()
            .unwrap_or(0),
        max_message_size: shared.limits.max_message_size(),
        max_concurrent_calls: shared.server_limits.max_concurrent_calls(),
        state: snapshot,
        state_version,
        resumed: is_resumed,
    };
    let context = Arc::new(CallEnv::new(
        shared,
        negotiated.compression,
        session.meter.clone(),
        session.rate.clone(),
        caller.with_meter(session.meter.clone()),
    ));
    let welcome = encode(&welcome).and_then(|body| {
        encode_frame(
            FrameHeader::new(Kind::Welcome, 0),
            &body,
            negotiated.compression,
        )
    });
    match welcome {
        Ok(welcome) => Ok(Accepted {
            session: Some(session),
            sessions: Arc::clone(sessions),
            context,
            welcome,
        }),
        Err(error) => {
            sessions.detach(session, is_resumed);
            Err(rejection(RejectCode::Internal, error.to_string()))
        }
    }
}

/// A new session: its state, event queue, subscriptions and handler.
fn new_session<H: RpcHandler>(
    sessions: &Sessions<H>,
    shared: &ServerShared,
    connection: ConnectionInfo,
    address: std::net::IpAddr,
) -> Result<Session<H>, Rejection> {
    let state = StateHandle::new(StateOf::<H>::default())
        .map_err(|e| rejection(RejectCode::Internal, e.to_string()))?;
    let meter = Meter::new(Arc::clone(&shared.counters));
    let limits = &shared.server_limits;
    let bounds = Bounds {
        events: limits.max_queued_events(),
        bytes: limits.max_queued_bytes(),
        replay: limits.max_replay_events(),
    };
    let outbox = Outbox::new(bounds, shared.slow_consumer, meter.clone());
    let subscriptions = Subscriptions::new(
        Arc::clone(&shared.hub),
        Arc::clone(&outbox),
        shared.server_limits.max_subscriptions(),
    );
    let owner = connection.identity().subject().to_owned();
    let connection = connection.with_meter(meter.clone());
    let handler = sessions.factory.create(HandlerContext {
        state: state.clone(),
        subscriptions: subscriptions.clone(),
        events: EventEmitter::new(
            Arc::clone(&shared.hub),
            shared.compression,
            shared.limits.max_message_size(),
        ),
        connection,
    });
    Ok(Session {
        id: rand::random(),
        owner,
        address,
        handler,
        state,
        outbox,
        subscriptions,
        meter,
        rate: call_rate(shared),
    })
}

fn reject_label(code: RejectCode) -> &'static str {
    match code {
        RejectCode::VersionMismatch => "version_mismatch",
        RejectCode::SchemaMismatch => "schema_mismatch",
        RejectCode::Unauthorized => "unauthorized",
        RejectCode::Overloaded => "overloaded",
        RejectCode::ShuttingDown => "shutting_down",
        RejectCode::Malformed => "malformed",
        RejectCode::Internal => "internal",
        _ => "other",
    }
}

/// The `Reject` frame for a refusal.
pub(crate) fn reject_frame(rejection: &Rejection) -> Vec<u8> {
    let body = encode(&rejection.reason).unwrap_or_default();
    let header = FrameHeader::new(Kind::Reject, 0).with_aux(rejection.code.to_u16());
    encode_frame(header, &body, Compression::None).unwrap_or_default()
}
