//! The QUIC floors: raw quinn echoing the bytes, either on one bidirectional stream per
//! request, or pipelined on one long-lived stream ([`super::pipelined`]).

use std::{net::SocketAddr, sync::Arc};

use futures_util::{future::BoxFuture, FutureExt};

use super::{pipelined, Connection, Target, MAX_MESSAGE};
use crate::{child::announce, tls::Certificate};

const ALPN: &[u8] = b"echo";

/// How requests travel.
#[derive(Debug, Clone, Copy)]
pub(super) enum Streams {
    /// A bidirectional stream per request.
    PerRequest,
    /// All requests on one bidirectional stream, answered in order.
    Pipelined,
}

/// A raw quinn server on loopback speaking `alpn`, its address announced to the parent.
pub(super) fn endpoint(cert: &Certificate, alpn: &[u8]) -> quinn::Endpoint {
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(cert.server_config(alpn))
        .expect("QUIC TLS");
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(transport()));
    // the receive buffer HardLight's server asks for by default
    // (`ServerLimits::with_udp_receive_buffer`), so that neither drops what the other keeps
    let socket = std::net::UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind");
    socket2::SockRef::from(&socket)
        .set_recv_buffer_size(hardlight::ServerLimits::default().udp_receive_buffer())
        .expect("receive buffer");
    let endpoint = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(config),
        socket,
        Arc::new(quinn::TokioRuntime),
    )
    .expect("endpoint");
    announce(endpoint.local_addr().expect("address"));
    endpoint
}

/// A raw quinn connection to the server at `addr` speaking `alpn`, and its endpoint.
pub(super) async fn connection(
    addr: SocketAddr,
    cert: &Certificate,
    alpn: &[u8],
) -> (quinn::Connection, quinn::Endpoint) {
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(cert.client_config(alpn))
        .expect("QUIC TLS");
    let mut endpoint =
        quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))).expect("endpoint");
    let mut client = quinn::ClientConfig::new(Arc::new(crypto));
    client.transport_config(Arc::new(transport()));
    endpoint.set_default_client_config(client);
    let conn = endpoint
        .connect(addr, "localhost")
        .expect("connect")
        .await
        .expect("handshake");
    (conn, endpoint)
}

pub(super) async fn serve(cert: Certificate, streams: Streams) {
    let endpoint = endpoint(&cert, ALPN);
    while let Some(incoming) = endpoint.accept().await {
        tokio::spawn(async move {
            let Ok(conn) = incoming.await else { return };
            while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                tokio::spawn(async move {
                    match streams {
                        Streams::PerRequest => {
                            if let Ok(data) = recv.read_to_end(MAX_MESSAGE).await {
                                let _ = send.write_all(&data).await;
                                let _ = send.finish();
                            }
                        }
                        Streams::Pipelined => pipelined::serve(recv, send).await,
                    }
                });
            }
        });
    }
}

/// 128 streams, and keep-alives: an overloaded machine must not time the connection out.
fn transport() -> quinn::TransportConfig {
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(128u32.into())
        .keep_alive_interval(Some(std::time::Duration::from_secs(2)));
    transport
}

pub(super) async fn connect(addr: SocketAddr, cert: &Certificate, streams: Streams) -> Connection {
    let (conn, endpoint) = connection(addr, cert, ALPN).await;
    match streams {
        Streams::PerRequest => Arc::new(QuinnTarget {
            conn,
            _endpoint: endpoint,
        }),
        Streams::Pipelined => {
            let (send, recv) = conn.open_bi().await.expect("open the stream");
            pipelined::connect(recv, send, (conn, endpoint))
        }
    }
}

struct QuinnTarget {
    conn: quinn::Connection,
    _endpoint: quinn::Endpoint,
}

impl Target for QuinnTarget {
    fn call(&self, data: Vec<u8>) -> BoxFuture<'static, Vec<u8>> {
        let conn = self.conn.clone();
        async move {
            let (mut send, mut recv) = conn.open_bi().await.expect("open a stream");
            send.write_all(&data).await.expect("write");
            send.finish().expect("finish");
            recv.read_to_end(MAX_MESSAGE).await.expect("read")
        }
        .boxed()
    }
}
