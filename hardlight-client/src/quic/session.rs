//! A QUIC connection to a HardLight server, after a successful handshake.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use hardlight_core::{
    codec::{decode, encode, Bytes},
    frame::{FrameHeader, Kind},
    handshake::{alpn, Hello, RejectCode, Welcome},
    io::{read_frame, ReadError},
    message::{encode_frame, open_aligned_body},
    state::StateBatch,
    Compression, ProtocolError, Service, Topic,
};
use quinn::{crypto::rustls::QuicClientConfig, ConnectionError, TransportErrorCode, VarInt};
use tokio::{
    sync::{broadcast, watch},
    task::JoinHandle,
};
use tracing::{debug, warn};

use super::tls::client_config;
use crate::{
    config::ClientConfig,
    error::{CallError, ConnectError, TransportError},
    events::{Event, Pushed},
    mirror::{apply, mark_disconnected, Mirror},
};

/// TLS alert `no_application_protocol` (120), as a QUIC crypto error code.
const NO_APPLICATION_PROTOCOL: u8 = 120;
/// Close code the client uses for a normal close.
const CLOSE_NORMAL: VarInt = VarInt::from_u32(0);
/// Close code the client uses when the server broke the protocol.
const CLOSE_PROTOCOL: VarInt = VarInt::from_u32(0x12);

/// An established QUIC session.
#[derive(Debug)]
pub(crate) struct QuicSession {
    conn: quinn::Connection,
    endpoint: quinn::Endpoint,
    compression: Compression,
    /// Largest call the server accepts.
    server_max: u32,
    /// Largest reply the client accepts.
    reply_max: u32,
    pub(crate) generation: u64,
    draining: AtomicBool,
    in_flight: AtomicUsize,
    push: JoinHandle<()>,
}

impl Drop for QuicSession {
    fn drop(&mut self) {
        self.push.abort();
    }
}

impl QuicSession {
    /// Connects, runs the handshake and starts the push-stream reader.
    pub(crate) async fn connect<S: Service>(
        config: &ClientConfig,
        generation: u64,
        mirror: Arc<watch::Sender<Mirror<S::State>>>,
        events: broadcast::Sender<Pushed<S::Event>>,
    ) -> Result<Arc<Self>, ConnectError> {
        let addr = resolve(&config.addr).await?;
        let offered = alpn(config.protocol_version);
        let tls = client_config(&config.trust, offered.clone())?;
        let crypto =
            QuicClientConfig::try_from(tls).map_err(|e| ConnectError::Tls(e.to_string()))?;
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

        let (max_message_size, welcome) = handshake::<S>(&conn, config).await?;
        let mut state = S::State::default();
        welcome.state.apply_to(&mut state)?;
        mirror.send_modify(|m| {
            *m = Mirror {
                generation,
                connected: true,
                version: welcome.state_version,
                state: Arc::new(state),
            }
        });
        let compression = welcome.compression_for(config.compression);
        let session = Arc::new_cyclic(|weak: &std::sync::Weak<Self>| {
            let push = tokio::spawn(push_reader::<S>(
                conn.clone(),
                Pushes {
                    session: weak.clone(),
                    mirror,
                    events,
                    generation,
                    compressed: compression != Compression::None,
                    max: config.limits.max_message_size,
                },
            ));
            Self {
                conn,
                endpoint,
                compression,
                server_max: max_message_size,
                reply_max: config.limits.max_message_size,
                generation,
                draining: AtomicBool::new(false),
                in_flight: AtomicUsize::new(0),
                push,
            }
        });
        Ok(session)
    }

    /// Sends a call on its own stream and reads its reply frame. Dropping the future
    /// stops the stream, which cancels the call on the server.
    pub(crate) async fn call(
        &self,
        method: u16,
        args: &[u8],
    ) -> Result<(FrameHeader, Bytes), CallError> {
        if self.draining.load(Ordering::Acquire) {
            return Err(CallError::Transport(TransportError::Closed(
                "server is shutting down".into(),
            )));
        }
        let _guard = InFlight::enter(self);
        let header = FrameHeader::new(Kind::Call, 0).with_aux(method);
        let frame = encode_frame(header, args, self.compression)?;
        let body_len = frame.len() - hardlight_core::frame::HEADER_LEN;
        if body_len > self.server_max as usize {
            return Err(CallError::Protocol(ProtocolError::FrameTooLarge {
                len: body_len as u64,
                max: self.server_max,
            }));
        }
        let (mut send, mut recv) = self.conn.open_bi().await.map_err(|e| self.lost(e))?;
        send.write_all(&frame)
            .await
            .map_err(|e| self.stream_failed(e))?;
        let _ = send.finish();
        let (header, body) = match read_frame(&mut recv, self.reply_max).await {
            Ok(frame) => frame,
            Err(ReadError::Finished) => return Err(CallError::Cancelled),
            Err(ReadError::Protocol(e)) => return Err(CallError::Protocol(e)),
            Err(ReadError::Io(e)) => return Err(self.stream_failed(e)),
        };
        let body = open_aligned_body(
            &header,
            body,
            self.compression != Compression::None,
            self.reply_max,
        )?;
        Ok((header, body))
    }

    /// Closes the connection and waits briefly for the close to reach the server.
    pub(crate) async fn close(&self) {
        self.conn.close(CLOSE_NORMAL, b"client disconnected");
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
    }

    fn lost(&self, error: ConnectionError) -> CallError {
        CallError::Transport(TransportError::Closed(error.to_string()))
    }

    fn stream_failed(&self, error: impl std::fmt::Display) -> CallError {
        match self.conn.close_reason() {
            Some(reason) => CallError::Transport(TransportError::Closed(reason.to_string())),
            None => CallError::Transport(TransportError::Stream(error.to_string())),
        }
    }

    /// The server sent `GoAway`: make no new calls; close once in-flight calls are done.
    fn go_away(&self) {
        self.draining.store(true, Ordering::Release);
        if self.in_flight.load(Ordering::Acquire) == 0 {
            self.conn.close(CLOSE_NORMAL, b"server shutting down");
        }
    }
}

/// Counts a call as in flight for its lifetime.
struct InFlight<'a>(&'a QuicSession);

impl<'a> InFlight<'a> {
    fn enter(session: &'a QuicSession) -> Self {
        session.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(session)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let left = self.0.in_flight.fetch_sub(1, Ordering::AcqRel) - 1;
        if left == 0 && self.0.draining.load(Ordering::Acquire) {
            self.0.conn.close(CLOSE_NORMAL, b"server shutting down");
        }
    }
}

async fn handshake<S: Service>(
    conn: &quinn::Connection,
    config: &ClientConfig,
) -> Result<(u32, Welcome), ConnectError> {
    let hello = Hello {
        version: config.protocol_version,
        schema_hash: S::SCHEMA_HASH,
        service: S::NAME.to_owned(),
        compression: config.compression.offers(),
        token: None,
    };
    let closed = |e: &dyn std::fmt::Display| ConnectError::Transport {
        addr: config.addr.clone(),
        reason: e.to_string(),
    };
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| closed(&e))?;
    let frame = encode_frame(
        FrameHeader::new(Kind::Hello, 0),
        &encode(&hello)?,
        Compression::None,
    )?;
    send.write_all(&frame).await.map_err(|e| closed(&e))?;
    let _ = send.finish();
    let max = config.limits.max_message_size;
    let (header, body) = match read_frame(&mut recv, max).await {
        Ok(frame) => frame,
        Err(ReadError::Protocol(e)) => return Err(e.into()),
        Err(e) => return Err(closed(&e)),
    };
    let body = open_aligned_body(&header, body, !config.compression.offers().is_empty(), max)?;
    match header.kind {
        Kind::Welcome => {
            let welcome = decode::<Welcome>(&body)?;
            Ok((welcome.max_message_size, welcome))
        }
        Kind::Reject => {
            let reason = decode::<String>(&body).unwrap_or_default();
            conn.close(CLOSE_NORMAL, b"rejected");
            Err(ConnectError::Rejected {
                code: RejectCode::from_u16(header.aux),
                reason,
            })
        }
        other => Err(ProtocolError::UnexpectedKind {
            expected: "Welcome or Reject",
            got: other.name(),
        }
        .into()),
    }
}

/// Reads the server's push stream until the connection ends, then marks the mirror
/// disconnected. A protocol violation on it closes the connection.
async fn push_reader<S: Service>(conn: quinn::Connection, pushes: Pushes<S>) {
    if let Err(error) = pushes.read(&conn).await {
        warn!(%error, "server broke the protocol on the push stream; closing");
        conn.close(CLOSE_PROTOCOL, b"protocol error on push stream");
    }
    conn.closed().await;
    mark_disconnected(&pushes.mirror, pushes.generation);
}

/// Where the push-stream reader delivers what it reads.
struct Pushes<S: Service> {
    session: std::sync::Weak<QuicSession>,
    mirror: Arc<watch::Sender<Mirror<S::State>>>,
    events: broadcast::Sender<Pushed<S::Event>>,
    generation: u64,
    compressed: bool,
    max: u32,
}

impl<S: Service> Pushes<S> {
    async fn read(&self, conn: &quinn::Connection) -> Result<(), ProtocolError> {
        let Ok(mut push) = conn.accept_uni().await else {
            return Ok(());
        };
        loop {
            let (header, body) = match read_frame(&mut push, self.max).await {
                Ok(frame) => frame,
                Err(ReadError::Protocol(e)) => return Err(e),
                Err(error) => {
                    debug!(%error, "push stream ended");
                    return Ok(());
                }
            };
            let body = open_aligned_body(&header, body, self.compressed, self.max)?;
            match header.kind {
                Kind::State => apply(
                    &self.mirror,
                    self.generation,
                    header.seq,
                    &decode::<StateBatch>(&body)?,
                )?,
                Kind::Event => {
                    let (topic, payload) = decode::<(Topic, S::Event)>(&body)?;
                    // with no subscription there is nobody to deliver to or tell
                    let _ = self
                        .events
                        .send(Pushed::Event(Arc::new(Event { topic, payload })));
                }
                Kind::Lagged => {
                    let _ = self.events.send(Pushed::Lost(header.id));
                }
                Kind::GoAway => {
                    if let Some(session) = self.session.upgrade() {
                        session.go_away();
                    }
                }
                other => {
                    return Err(ProtocolError::UnexpectedKind {
                        expected: "State, Event, Lagged or GoAway",
                        got: other.name(),
                    })
                }
            }
        }
    }
}

fn transport(config: &ClientConfig) -> Result<quinn::TransportConfig, ConnectError> {
    let mut transport = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(config.limits.idle_timeout)
        .map_err(|_| ConnectError::Tls("idle_timeout is too large for QUIC".into()))?;
    transport
        .max_concurrent_uni_streams(VarInt::from_u32(4))
        .max_concurrent_bidi_streams(VarInt::from_u32(0))
        .stream_receive_window(VarInt::from_u32(1 << 20))
        .receive_window(VarInt::from_u32(16 << 20))
        .max_idle_timeout(Some(idle))
        .keep_alive_interval(Some(config.limits.keep_alive));
    Ok(transport)
}

async fn resolve(addr: &str) -> Result<SocketAddr, ConnectError> {
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

fn transport_failure(addr: &str, error: impl std::fmt::Display) -> ConnectError {
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
        ConnectionError::TimedOut => transport_failure(
            addr,
            "timed out: no answer over QUIC (is the server running, and is UDP reachable?)",
        ),
        _ => transport_failure(addr, error),
    }
}
