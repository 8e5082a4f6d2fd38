//! Accepting a TCP connection: TLS (unless plain WebSocket was configured), then the HTTP
//! upgrade with subprotocol `hardlight.<version>` (`hardlight.8`), bounded in size and time,
//! after which HardLight's own framing ([`hardlight_core::websocket`]) takes the stream.

use hardlight_core::TransportKind as Transport;
use std::{future::Future, net::SocketAddr, sync::Arc};

use hardlight_core::{handshake::websocket_subprotocol, PROTOCOL_VERSION};
use tokio::{
    io::{AsyncRead, AsyncWrite, DuplexStream},
    net::TcpStream,
    time::{timeout_at, Instant},
};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::{
    handshake::server::{ErrorResponse, Request, Response},
    http::{HeaderValue, StatusCode},
    protocol::WebSocketConfig,
};
use tracing::{info_span, Instrument};

use super::{bounded::Bounded, link::WsLink};
use crate::{
    admission::Connected,
    config::ServerConfig,
    connection::{self, by_deadline},
    error::ServerError,
    handler::RpcHandler,
    session::{handshake::Peer, resume::Sessions, ServerShared},
};

/// The address an in-process peer is counted under (`ServerLimits::max_connections_per_ip`).
pub(crate) const MEMORY_PEER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

/// Largest HTTP upgrade request read before the connection is dropped.
const MAX_UPGRADE_REQUEST: usize = 16 * 1024;

/// A TLS acceptor for the WebSocket listener (ALPN `http/1.1`).
pub(crate) fn tls_acceptor(config: &ServerConfig) -> Result<TlsAcceptor, ServerError> {
    let tls = config.rustls(b"http/1.1".to_vec())?;
    Ok(TlsAcceptor::from(Arc::new(tls)))
}

/// The upgrade's: tungstenite reads the request with buffers of its own, and would
/// allocate a frame read buffer (128 KiB by default) for a framing it never runs.
fn upgrade_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(0)
}

/// Serves one TCP connection to its end.
pub(crate) fn serve_tcp<H: RpcHandler>(
    stream: TcpStream,
    remote: SocketAddr,
    admitted: Connected,
    tls: Option<TlsAcceptor>,
    sessions: Arc<Sessions<H>>,
    shared: Arc<ServerShared>,
) -> impl Future<Output = ()> + Send {
    let span = info_span!("connection", transport = "websocket", %remote);
    async move {
        let _admitted = admitted;
        let _ = stream.set_nodelay(true);
        let deadline = Instant::now() + shared.server_limits.handshake_timeout();
        // the TLS handshake and the upgrade run boxed, freed when done, and the live
        // phase's future is made where it is awaited: the connection's task, which lives
        // as long as the connection, is then only as large as its live phase
        // (`BENCHMARKS.md`, idle connections)
        match tls {
            Some(acceptor) => {
                let accepted = timeout_at(deadline, Box::pin(acceptor.accept(stream))).await;
                if let Some(stream) = by_deadline(accepted, "TLS handshake") {
                    let upgraded = Box::pin(upgrade(stream, remote, deadline, &shared)).await;
                    connection::live(upgraded, deadline, sessions, shared).await;
                }
            }
            None => {
                let upgraded = Box::pin(upgrade(stream, remote, deadline, &shared)).await;
                connection::live(upgraded, deadline, sessions, shared).await;
            }
        }
    }
    .instrument(span)
}

/// The WebSocket upgrade by `deadline`: the link HardLight runs on, and who asked.
async fn upgrade<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    remote: SocketAddr,
    deadline: Instant,
    shared: &ServerShared,
) -> Option<(WsLink<Bounded<S>>, Peer)> {
    let (stream, budget) = Bounded::new(stream, MAX_UPGRADE_REQUEST);
    let mut headers = Vec::new();
    #[allow(clippy::result_large_err)] // the signature is tungstenite's callback
    let callback = |request: &Request, response: Response| {
        headers = request
            .headers()
            .iter()
            .filter_map(|(name, value)| {
                Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect();
        select_subprotocol(request, response)
    };
    // tungstenite refuses a request followed by more bytes in the same read (a client
    // waits for the answer, RFC 6455 section 4.1), so the stream it gives back has nothing
    // read ahead
    let accepting =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(upgrade_config()));
    let ws = by_deadline(timeout_at(deadline, accepting).await, "WebSocket upgrade")?;
    let peer = Peer {
        remote,
        transport: Transport::WebSocket,
        headers,
    };
    Some((WsLink::new(ws.into_inner(), budget, shared), peer))
}

/// Serves one in-process connection to its end: the WebSocket framing over memory, with
/// no TLS and no HTTP upgrade, then the same lifecycle as any other connection.
pub(crate) async fn serve_memory<H: RpcHandler>(
    stream: DuplexStream,
    _admitted: Connected,
    sessions: Arc<Sessions<H>>,
    shared: Arc<ServerShared>,
) {
    let span = info_span!("connection", transport = "memory");
    async move {
        let deadline = Instant::now() + shared.server_limits.handshake_timeout();
        let (stream, budget) = Bounded::new(stream, MAX_UPGRADE_REQUEST);
        let peer = Peer {
            remote: MEMORY_PEER,
            transport: Transport::Memory,
            headers: Vec::new(),
        };
        let link = WsLink::new(stream, budget, &shared);
        connection::serve(link, peer, deadline, sessions, shared).await;
    }
    .instrument(span)
    .await
}

/// Accepts the upgrade only for subprotocol `hardlight.<version>`, naming it in the answer.
#[allow(clippy::result_large_err)] // the signature is tungstenite's callback
fn select_subprotocol(
    request: &Request,
    mut response: Response,
) -> Result<Response, ErrorResponse> {
    let ours = websocket_subprotocol(PROTOCOL_VERSION);
    let offered = request
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == ours);
    if offered {
        if let Ok(value) = HeaderValue::from_str(&ours) {
            response
                .headers_mut()
                .insert("sec-websocket-protocol", value);
        }
        return Ok(response);
    }
    let reason =
        format!("this server speaks WebSocket subprotocol {ours}; the request did not offer it");
    let mut refusal = ErrorResponse::new(Some(reason));
    *refusal.status_mut() = StatusCode::BAD_REQUEST;
    Err(refusal)
}
