//! Accepting a QUIC connection: the TLS handshake within the handshake timeout, then, by
//! the protocol it negotiated, HardLight on the connection itself or in a WebTransport
//! session on it, the connection's lifecycle on a [`QuicLink`] either way.

use std::{future::Future, sync::Arc};

use hardlight_core::{close::Close, TransportKind as Transport, PROTOCOL_VERSION};
use quinn::{crypto::rustls::HandshakeData, Incoming, VarInt};
use tokio::time::{timeout_at, Instant};
use tracing::{debug, info_span, Instrument};

use super::{link::QuicLink, session::QuicSession, validation::UnprovenHandshake, webtransport};
use crate::{
    admission::Connected,
    connection::{self, by_deadline},
    handler::RpcHandler,
    session::{handshake::Peer, resume::Sessions, ServerShared},
};

const QUIC_HANDSHAKE: &str = "QUIC handshake";

/// Serves one incoming connection to its end. Everything it spawned is aborted when it
/// returns, and the handler is dropped with the last call task.
///
/// The QUIC handshake runs boxed, freed when done, and the future returned captures none
/// of what only the handshake needs: the connection's task, which lives as long as the
/// connection, is then only as large as its live phase (`BENCHMARKS.md`, idle
/// connections).
pub(crate) fn serve_connection<H: RpcHandler>(
    incoming: Incoming,
    (admitted, unproven): (Connected, Option<UnprovenHandshake>),
    sessions: Arc<Sessions<H>>,
    shared: Arc<ServerShared>,
) -> impl Future<Output = ()> + Send {
    let remote = incoming.remote_address();
    let span = info_span!("connection", transport = "quic", %remote);
    let deadline = Instant::now() + shared.server_limits.handshake_timeout();
    let accepting = Box::pin(accept(incoming, unproven, deadline, Arc::clone(&shared)));
    async move {
        let _admitted = admitted;
        connection::live(accepting.await, deadline, sessions, shared).await;
    }
    .instrument(span)
}

/// The QUIC handshake by `deadline`, then the link HardLight runs on: the connection
/// itself, or the WebTransport session the client opened on it.
async fn accept(
    incoming: Incoming,
    unproven: Option<UnprovenHandshake>,
    deadline: Instant,
    shared: Arc<ServerShared>,
) -> Option<(QuicLink, Peer)> {
    let remote = incoming.remote_address();
    let mut connecting = match incoming.accept() {
        Ok(connecting) => connecting,
        Err(error) => {
            debug!(%error, "incoming connection failed");
            return None;
        }
    };
    // the protocol the client chose, once its whole ClientHello is in (it can take more
    // than one packet)
    let data = timeout_at(deadline, connecting.handshake_data()).await;
    let webtransport = is_webtransport(by_deadline(data, QUIC_HANDSHAKE)?);
    // at once, so that a `Hello` sent in 0-RTT is answered in 0.5-RTT; calls wait for the
    // handshake to complete (`QuicLink::welcome`), as does a fresh `Hello`, which can only
    // come in 1-RTT
    let (conn, handshake) = match connecting.into_0rtt() {
        Ok((conn, done)) => (conn, Some(done)),
        Err(connecting) => (
            by_deadline(timeout_at(deadline, connecting).await, QUIC_HANDSHAKE)?,
            None,
        ),
    };
    if !webtransport {
        let peer = Peer {
            remote,
            transport: Transport::Quic,
            headers: Vec::new(),
        };
        let link = QuicLink::new(QuicSession::native(conn), handshake, unproven, &shared);
        return Some((link, peer));
    }
    // the session's CONNECT stream stays open beside the call streams
    let streams = shared.server_limits.max_call_streams().saturating_add(2);
    conn.set_max_concurrent_bi_streams(VarInt::from_u32(streams));
    // a session's CONNECT is read once the handshake is complete
    if let Some(handshake) = handshake {
        let done = timeout_at(deadline, handshake).await;
        let done = done.map(|_| conn.close_reason().map_or(Ok(()), Err));
        by_deadline(done, QUIC_HANDSHAKE)?;
    }
    drop(unproven);
    let opened = match timeout_at(deadline, webtransport::open(&conn, PROTOCOL_VERSION)).await {
        Ok(Ok(opened)) => opened,
        Ok(Err(refused)) => {
            debug!(%refused, "WebTransport session refused");
            conn.close(VarInt::from_u32(Close::Rejected.quic_code()), b"no session");
            return None;
        }
        Err(_) => {
            debug!("WebTransport session not opened in time");
            conn.close(VarInt::from_u32(Close::Protocol.quic_code()), b"timed out");
            return None;
        }
    };
    debug!("WebTransport session open");
    let peer = Peer {
        remote,
        transport: Transport::WebTransport,
        headers: opened.headers,
    };
    let session = QuicSession::webtransport(conn, opened.session);
    Some((QuicLink::new(session, None, None, &shared), peer))
}

/// Whether the client negotiated HTTP/3 (a WebTransport session) rather than HardLight.
fn is_webtransport(handshake: Box<dyn std::any::Any>) -> bool {
    handshake
        .downcast::<HandshakeData>()
        .ok()
        .and_then(|data| data.protocol)
        .is_some_and(|protocol| protocol == webtransport::ALPN)
}
