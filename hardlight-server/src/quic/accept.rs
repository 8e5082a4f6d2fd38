//! Accepting a QUIC connection: the TLS handshake within the handshake timeout, then the
//! connection's lifecycle on a [`QuicLink`].

use std::sync::Arc;

use hardlight_core::TransportKind as Transport;
use quinn::Incoming;
use tokio::time::{timeout_at, Instant};
use tracing::{debug, info_span, Instrument};

use super::{link::QuicLink, validation::UnprovenHandshake};
use crate::{
    admission::Connected,
    connection,
    handler::RpcHandler,
    session::{handshake::Peer, resume::Sessions, ServerShared},
};

/// Serves one incoming connection to its end. Everything it spawned is aborted when it
/// returns, and the handler is dropped with the last call task.
pub(crate) async fn serve_connection<H: RpcHandler>(
    incoming: Incoming,
    (_admitted, unproven): (Connected, Option<UnprovenHandshake>),
    sessions: Arc<Sessions<H>>,
    shared: Arc<ServerShared>,
) {
    let remote = incoming.remote_address();
    let span = info_span!("connection", transport = "quic", %remote);
    async move {
        let deadline = Instant::now() + shared.server_limits.handshake_timeout();
        let connecting = match incoming.accept() {
            Ok(connecting) => connecting,
            Err(error) => return debug!(%error, "incoming connection failed"),
        };
        // at once, so that a `Hello` sent in 0-RTT is answered in 0.5-RTT; calls wait for
        // the handshake to complete (`QuicLink::welcome`), as does a fresh `Hello`, which
        // can only come in 1-RTT
        let (conn, handshake) = match connecting.into_0rtt() {
            Ok((conn, done)) => (conn, Some(done)),
            Err(connecting) => match timeout_at(deadline, connecting).await {
                Ok(Ok(conn)) => (conn, None),
                Ok(Err(error)) => return debug!(%error, "QUIC handshake failed"),
                Err(_) => return debug!("QUIC handshake timed out"),
            },
        };
        let peer = Peer {
            remote,
            transport: Transport::Quic,
            headers: Vec::new(),
        };
        let link = QuicLink::new(conn, handshake, unproven, &shared);
        connection::serve(link, peer, deadline, sessions, shared).await;
    }
    .instrument(span)
    .await
}
