//! A QUIC connection to a HardLight server: one bidirectional stream per call, pushes on
//! the server's unidirectional stream.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use hardlight_core::{
    close::Close,
    codec::Bytes,
    frame::FrameHeader,
    handshake::alpn,
    io::{read_frame, ReadError},
    ProtocolError, Service,
};
use quinn::{crypto::rustls::QuicClientConfig, ConnectionError, TransportErrorCode, VarInt};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::tls::client_config;
use crate::{
    calls::{Calls, Exchange},
    config::ClientConfig,
    connection::{Connected, Connection},
    drain::Drain,
    error::{CallError, ConnectError, TlsConfigError, TransportError},
    handshake::{hello_frame, welcome},
    pushes::Pushes,
    sync::lock,
};

/// TLS alert `no_application_protocol` (120), as a QUIC crypto error code.
const NO_APPLICATION_PROTOCOL: u8 = 120;
/// Close code the client uses for a normal close.
const CLOSE_NORMAL: VarInt = VarInt::from_u32(Close::Normal.quic_code());
/// Close code the client uses when the server broke the protocol.
const CLOSE_PROTOCOL: VarInt = VarInt::from_u32(Close::Protocol.quic_code());

/// An established QUIC connection.
#[derive(Debug)]
pub(crate) struct QuicConnection {
    pub(crate) conn: quinn::Connection,
    endpoint: quinn::Endpoint,
    pub(crate) calls: Calls<Streams>,
    push: std::sync::Mutex<Option<JoinHandle<()>>>,
}

/// Calls over QUIC: a bidirectional stream each.
#[derive(Debug)]
pub(crate) struct Streams {
    conn: quinn::Connection,
}

impl Drop for QuicConnection {
    fn drop(&mut self) {
        if let Some(push) = lock(&self.push).take() {
            push.abort();
        }
    }
}

impl QuicConnection {
    /// Connects and runs the handshake.
    pub(crate) async fn connect<S: Service>(
        config: &ClientConfig,
    ) -> Result<Connected, ConnectError> {
        let addr = resolve(&config.addr).await?;
        let offered = alpn(config.protocol_version);
        let tls = client_config(&config.trust, offered.clone())?;
        let crypto =
            QuicClientConfig::try_from(tls).map_err(|e| TlsConfigError::Quic(Arc::new(e)))?;
        let mut client = quinn::ClientConfig::new(Arc::new(crypto));
        client.transport_config(Arc::new(transport(config)?));
        let bind: SocketAddr = if addr.is_ipv6() {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let endpoint =
            quinn::Endpoint::client(bind).map_err(|e| transport_failure(&config.addr, e))?;
        let conn = endpoint
            .connect_with(client, addr, config.server_name())
            .map_err(|e| transport_failure(&config.addr, e))?
            .await
            .map_err(|e| connection_failure(&config.addr, &offered, e))?;

        let closed = |e: &dyn std::fmt::Display| transport_failure(&config.addr, e);
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| closed(&e))?;
        send.write_all(&hello_frame::<S>(config)?)
            .await
            .map_err(|e| closed(&e))?;
        let _ = send.finish();
        let (header, body) = match read_frame(&mut recv, config.limits.max_message_size()).await {
            Ok(frame) => frame,
            Err(ReadError::Protocol(e)) => return Err(e.into()),
            Err(e) => return Err(closed(&e)),
        };
        let welcome = welcome(config, &header, body).inspect_err(|_| {
            conn.close(CLOSE_NORMAL, b"handshake refused");
        })?;
        let close_conn = conn.clone();
        let drain = Drain::new(move || close_conn.close(CLOSE_NORMAL, b"server shutting down"));
        let streams = Streams { conn: conn.clone() };
        let established = Self {
            calls: Calls::new(streams, drain, &welcome, config),
            conn,
            endpoint,
            push: std::sync::Mutex::new(None),
        };
        Ok(Connected {
            connection: Connection::Quic(Arc::new(established)),
            welcome,
        })
    }

    /// Starts reading the push stream.
    pub(crate) fn start<S: Service>(&self, pushes: Pushes<S>) {
        let task = tokio::spawn(push_reader(self.conn.clone(), pushes));
        *lock(&self.push) = Some(task);
    }

    /// Closes the connection and waits briefly for the close to reach the server.
    pub(crate) async fn close(&self) {
        self.conn.close(CLOSE_NORMAL, b"client disconnected");
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
    }
}

impl Exchange for Streams {
    /// Sends the call on its own stream and reads its reply frame. Dropping the future
    /// stops the stream, which cancels the call on the server.
    async fn exchange(
        &self,
        frame: Vec<u8>,
        reply_max: u32,
    ) -> Result<(FrameHeader, Bytes), CallError> {
        let (mut send, mut recv) = self.conn.open_bi().await.map_err(|e| self.lost(e))?;
        send.write_all(&frame)
            .await
            .map_err(|e| self.stream_failed(e))?;
        let _ = send.finish();
        match read_frame(&mut recv, reply_max).await {
            Ok(frame) => Ok(frame),
            Err(ReadError::Finished) => Err(CallError::Cancelled),
            Err(ReadError::Protocol(e)) => Err(CallError::Protocol(e)),
            Err(ReadError::Io(e)) => Err(self.stream_failed(e)),
        }
    }
}

impl Streams {
    fn lost(&self, error: ConnectionError) -> CallError {
        CallError::Transport(closed(&error))
    }

    fn stream_failed(&self, error: impl std::fmt::Display) -> CallError {
        match self.conn.close_reason() {
            Some(reason) => CallError::Transport(closed(&reason)),
            None => CallError::Transport(TransportError::Stream(error.to_string())),
        }
    }
}

/// The transport error for a QUIC connection that ended with `error`, with the server's
/// reason when it closed with one of HardLight's codes.
fn closed(error: &ConnectionError) -> TransportError {
    let close = match error {
        ConnectionError::ApplicationClosed(frame) => {
            Close::from_quic_code(frame.error_code.into_inner())
        }
        ConnectionError::LocallyClosed => Some(Close::Normal),
        _ => None,
    };
    TransportError::closed(close, error.to_string())
}

/// Reads the server's push stream until the connection ends, then marks the connection
/// disconnected. A protocol violation on it closes the connection.
async fn push_reader<S: Service>(conn: quinn::Connection, pushes: Pushes<S>) {
    if let Err(error) = read_pushes(&conn, &pushes).await {
        warn!(%error, "server broke the protocol on the push stream; closing");
        conn.close(CLOSE_PROTOCOL, b"protocol error on push stream");
    }
    let reason = conn.closed().await;
    pushes.disconnected(&closed(&reason));
}

async fn read_pushes<S: Service>(
    conn: &quinn::Connection,
    pushes: &Pushes<S>,
) -> Result<(), ProtocolError> {
    let Ok(mut push) = conn.accept_uni().await else {
        return Ok(());
    };
    loop {
        match read_frame(&mut push, pushes.max).await {
            Ok((header, body)) => pushes.handle(&header, body)?,
            Err(ReadError::Protocol(e)) => return Err(e),
            Err(error) => {
                debug!(%error, "push stream ended");
                return Ok(());
            }
        }
    }
}

fn transport(config: &ClientConfig) -> Result<quinn::TransportConfig, ConnectError> {
    let mut transport = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(config.limits.idle_timeout())
        .map_err(|_| ConnectError::IdleTimeoutTooLarge(config.limits.idle_timeout()))?;
    transport
        .max_concurrent_uni_streams(VarInt::from_u32(4))
        .max_concurrent_bidi_streams(VarInt::from_u32(0))
        .stream_receive_window(VarInt::from_u32(1 << 20))
        .receive_window(VarInt::from_u32(16 << 20))
        .max_idle_timeout(Some(idle))
        .keep_alive_interval(Some(config.limits.keep_alive()));
    Ok(transport)
}

/// Resolves `host:port` to its first address.
pub(crate) async fn resolve(addr: &str) -> Result<SocketAddr, ConnectError> {
    let failure = |reason: String| ConnectError::Address {
        addr: addr.to_owned(),
        reason,
    };
    tokio::net::lookup_host(addr)
        .await
        .map_err(|e| failure(e.to_string()))?
        .next()
        .ok_or_else(|| failure("resolves to no address".into()))
}

/// A connection failure at `addr`.
pub(crate) fn transport_failure(addr: &str, error: impl std::fmt::Display) -> ConnectError {
    ConnectError::Transport {
        addr: addr.to_owned(),
        reason: error.to_string(),
    }
}

fn connection_failure(addr: &str, offered: &[u8], error: ConnectionError) -> ConnectError {
    match &error {
        ConnectionError::ConnectionClosed(close)
            if close.error_code == TransportErrorCode::crypto(NO_APPLICATION_PROTOCOL) =>
        {
            ConnectError::VersionMismatch {
                offered: String::from_utf8_lossy(offered).into_owned(),
            }
        }
        ConnectionError::ConnectionClosed(close)
            if close.error_code == TransportErrorCode::CONNECTION_REFUSED =>
        {
            ConnectError::Rejected {
                code: hardlight_core::RejectCode::Overloaded,
                reason: "the server refused the connection: it is at its connection limit (in total or for this address)".into(),
            }
        }
        ConnectionError::TimedOut => transport_failure(
            addr,
            "timed out: no answer over QUIC (is the server running, and is UDP reachable?)",
        ),
        _ => transport_failure(addr, error),
    }
}
