//! A QUIC connection to a HardLight server: small calls multiplexed on the call channel
//! (the handshake stream, kept open), the others on a bidirectional stream each, pushes on
//! the server's unidirectional stream.

use std::{net::SocketAddr, sync::Arc, task::Waker, time::Duration};

use hardlight_core::{
    chunk_frames::ChunkFrames,
    close::Close,
    coalesce::Coalesced,
    codec::Bytes,
    frame::FrameHeader,
    handshake::alpn,
    held_items::HeldItems,
    io::{read_frame, FrameReader, ReadError},
    received::Received,
    ProtocolError, Service,
};
use quinn::{
    crypto::rustls::QuicClientConfig, ConnectionError, RecvStream, SendStream, TransportErrorCode,
    VarInt,
};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::{
    calls::{priority_of, rides_channel, Calls, Exchange, Exchanged, CHANNEL_MAX},
    config::ClientConfig,
    connection::{Connected, Connection},
    drain::Drain,
    error::{CallError, ConnectError, TlsConfigError, TransportError},
    handshake::{hello_frame, welcome},
    mux::{gather, Mux, Outgoing},
    pushes::{LastTopic, Pushes},
    streaming::ItemSource,
    sync::lock,
};

/// TLS alert `no_application_protocol` (120), as a QUIC crypto error code.
const NO_APPLICATION_PROTOCOL: u8 = 120;
/// Close code the client uses for a normal close.
const CLOSE_NORMAL: VarInt = VarInt::from_u32(Close::Normal.quic_code());
/// Close code the client uses when the server broke the protocol.
const CLOSE_PROTOCOL: VarInt = VarInt::from_u32(Close::Protocol.quic_code());

/// Unreliable events received as datagrams and not yet read, in bytes, before quinn
/// drops the oldest.
const DATAGRAM_RECEIVE_BUFFER: usize = 64 * 1024;

/// An established QUIC connection.
#[derive(Debug)]
pub(crate) struct QuicConnection {
    pub(crate) conn: quinn::Connection,
    endpoint: quinn::Endpoint,
    pub(crate) calls: Calls<Streams>,
    /// The push stream's reader and the datagrams'.
    push: std::sync::Mutex<Option<[JoinHandle<()>; 2]>>,
    /// The call channel's writer and reader.
    channel: [JoinHandle<()>; 2],
}

/// Calls over QUIC: multiplexed on the call channel, or on a bidirectional stream each.
#[derive(Debug)]
pub(crate) struct Streams {
    conn: quinn::Connection,
    mux: Arc<Mux>,
    /// Largest call frame sent on the channel (0: none is).
    channel_max: usize,
}

impl Drop for QuicConnection {
    fn drop(&mut self) {
        for task in lock(&self.push).take().into_iter().flatten() {
            task.abort();
        }
        for task in &self.channel {
            task.abort();
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
        let tls = config.quic_tls.get(config)?;
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
        let connecting = endpoint
            .connect_with(client, addr, config.server_name())
            .map_err(|e| transport_failure(&config.addr, e))?;
        let hello = hello_frame::<S>(config)?;
        let (conn, zero_rtt, (send, recv, header, body)) = match connecting.into_0rtt() {
            Ok((conn, accepted)) => {
                // the `Hello` goes in 0-RTT; if the server refuses 0-RTT, the stream never
                // reached it, and the `Hello` goes again once the handshake is complete
                let (early, accepted) = {
                    let mut accepted = accepted;
                    let early = handshake(&conn, &hello, config);
                    tokio::pin!(early);
                    tokio::select! {
                        answer = &mut early => (Some(answer), accepted.await),
                        accepted = &mut accepted => match accepted {
                            true => (Some(early.await), true),
                            false => (None, false),
                        },
                    }
                };
                match early {
                    Some(Ok(answer)) => (conn, accepted, answer),
                    None | Some(Err(_)) if !accepted && conn.close_reason().is_none() => {
                        let answer = handshake(&conn, &hello, config).await?;
                        (conn, false, answer)
                    }
                    early => {
                        return Err(match (early, conn.close_reason()) {
                            (_, Some(reason)) => connection_failure(&config.addr, &offered, reason),
                            (Some(Err(error)), None) => error,
                            (_, None) => transport_failure(
                                &config.addr,
                                "the handshake did not complete after 0-RTT",
                            ),
                        })
                    }
                }
            }
            Err(connecting) => {
                let conn = connecting
                    .await
                    .map_err(|e| connection_failure(&config.addr, &offered, e))?;
                let answer = handshake(&conn, &hello, config).await?;
                (conn, false, answer)
            }
        };
        let welcome = welcome(config, &header, body).inspect_err(|_| {
            conn.close(CLOSE_NORMAL, b"handshake refused");
        })?;
        let close_conn = conn.clone();
        let drain = Drain::new(move || close_conn.close(CLOSE_NORMAL, b"server shutting down"));
        let (mux, frames) = Mux::new(welcome.max_concurrent_calls);
        let channel = [
            tokio::spawn(channel_writer(send, frames, config.limits.send_timeout())),
            tokio::spawn(channel_reader(
                conn.clone(),
                recv,
                Arc::clone(&mux),
                config.limits.max_message_size(),
            )),
        ];
        let streams = Streams {
            conn: conn.clone(),
            mux,
            channel_max: if config.stream_per_call {
                0
            } else {
                CHANNEL_MAX
            },
        };
        let established = Self {
            calls: Calls::new(streams, drain, &welcome, config),
            conn,
            endpoint,
            push: std::sync::Mutex::new(None),
            channel,
        };
        Ok(Connected {
            connection: Connection::Quic(Arc::new(established)),
            welcome,
            zero_rtt,
        })
    }

    /// Starts reading the push stream and the datagrams.
    pub(crate) fn start<S: Service>(&self, pushes: Pushes<S>) {
        let pushes = Arc::new(pushes);
        let datagrams = tokio::spawn(datagram_reader(self.conn.clone(), Arc::clone(&pushes)));
        let task = tokio::spawn(push_reader(self.conn.clone(), pushes));
        *lock(&self.push) = Some([task, datagrams]);
    }

    /// Closes the connection and waits briefly for the close to reach the server.
    pub(crate) async fn close(&self) {
        self.conn.close(CLOSE_NORMAL, b"client disconnected");
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
    }
}

impl Exchange for Streams {
    async fn open_stream(
        &self,
        frame: Vec<u8>,
        reply_max: u32,
        sends_items: bool,
    ) -> Result<ItemSource, CallError> {
        Ok(ItemSource::Quic(
            self.open_items(frame, reply_max, sends_items).await?,
        ))
    }

    /// Sends a small call of normal priority on the call channel (dropping the future
    /// sends `Cancel`), any other on a stream of its own with the call's send priority
    /// (dropping the future stops the stream); either way the server cancels the call.
    fn exchange(&self, frame: Vec<u8>, reply_max: u32, waker: Waker) -> Exchanged<'_> {
        if rides_channel(&frame, self.channel_max) {
            return self.mux.call(frame, waker);
        }
        Exchanged::Boxed(Box::pin(self.exchange_on_stream(frame, reply_max)))
    }
}

/// A streaming call on a QUIC stream of its own: its items and reply are read as the
/// application asks for them, so QUIC's flow control holds the server back. Dropped
/// before the reply, the stream is stopped and the server cancels the call.
#[derive(Debug)]
pub(crate) struct QuicItems {
    /// The call's sending side, for a call that sends items, until a sender takes it.
    send: Option<SendStream>,
    recv: RecvStream,
    reader: FrameReader,
    conn: quinn::Connection,
    _slot: crate::mux::Slot,
}

impl QuicItems {
    /// The next item or the reply.
    pub(crate) async fn next(&mut self) -> Result<(FrameHeader, Bytes), CallError> {
        match self.reader.next(&mut self.recv).await {
            Ok(frame) => Ok(frame),
            Err(ReadError::Finished) => Err(CallError::Cancelled),
            Err(ReadError::Protocol(e)) => Err(CallError::Protocol(e)),
            Err(ReadError::Io(e)) => Err(stream_failed(&self.conn, e)),
        }
    }

    /// What sends the client's items of this call.
    pub(crate) fn sender(&mut self) -> Option<QuicSender> {
        Some(QuicSender {
            send: self.send.take()?,
            conn: self.conn.clone(),
            held: HeldItems::default(),
        })
    }
}

/// Sends the client's items of a streaming call on its QUIC stream, paced by QUIC's flow
/// control.
#[derive(Debug)]
pub(crate) struct QuicSender {
    send: SendStream,
    conn: quinn::Connection,
    /// Items not written yet: those ready one after the other go in one write.
    held: HeldItems,
}

impl QuicSender {
    /// Sends an item's frame: held with those before it while they are small, written
    /// once they are not or [`QuicSender::flush`] is called.
    pub(crate) async fn send(&mut self, frame: Vec<u8>) -> Result<(), CallError> {
        for bytes in self.held.hold(frame).into_iter().flatten() {
            self.write(bytes).await?;
        }
        Ok(())
    }

    /// Writes the items held: no next item is ready.
    pub(crate) async fn flush(&mut self) -> Result<(), CallError> {
        let held = self.held.take();
        if held.is_empty() {
            return Ok(());
        }
        self.write(held).await
    }

    async fn write(&mut self, bytes: Vec<u8>) -> Result<(), CallError> {
        self.send
            .write_chunk(bytes.into())
            .await
            .map_err(|e| stream_failed(&self.conn, e))
    }

    /// The items are all sent (and flushed): the end of the client's side of the stream.
    pub(crate) async fn end(mut self) {
        let _ = self.send.finish();
    }

    /// The items cannot all be sent: the stream is reset, so that the server does not
    /// take the items sent as all of them.
    pub(crate) fn fail(mut self, _error: CallError) {
        let _ = self.send.reset(VarInt::from_u32(0));
    }
}

impl Streams {
    /// A call on a QUIC stream of its own.
    async fn exchange_on_stream(
        &self,
        frame: Vec<u8>,
        reply_max: u32,
    ) -> Result<(FrameHeader, Received), CallError> {
        let _slot = self.mux.slot().await?;
        let (mut send, mut recv) = self.conn.open_bi().await.map_err(|e| self.lost(e))?;
        let _ = send.set_priority(priority_of(&frame).quic());
        // handed to quinn as it is, not copied into its send buffer
        send.write_chunk(frame.into())
            .await
            .map_err(|e| self.stream_failed(e))?;
        let _ = send.finish();
        // the reply is cut from quinn's chunks: appended to its body as they arrive, or
        // a slice of the one it arrived whole in
        match ChunkFrames::new(reply_max).next(&mut recv).await {
            Ok(frame) => Ok(frame),
            Err(ReadError::Finished) => Err(CallError::Cancelled),
            Err(ReadError::Protocol(e)) => Err(CallError::Protocol(e)),
            Err(ReadError::Io(e)) => Err(self.stream_failed(e)),
        }
    }

    /// Streaming calls always go on a stream of their own.
    async fn open_items(
        &self,
        frame: Vec<u8>,
        reply_max: u32,
        sends_items: bool,
    ) -> Result<QuicItems, CallError> {
        let slot = self.mux.slot().await?;
        let (mut send, recv) = self.conn.open_bi().await.map_err(|e| self.lost(e))?;
        let _ = send.set_priority(priority_of(&frame).quic());
        send.write_chunk(frame.into())
            .await
            .map_err(|e| self.stream_failed(e))?;
        if !sends_items {
            let _ = send.finish();
        }
        Ok(QuicItems {
            send: sends_items.then_some(send),
            recv,
            reader: FrameReader::new(reply_max),
            conn: self.conn.clone(),
            _slot: slot,
        })
    }

    /// Queues a frame that is not a call (an `Ack`) on the call channel.
    pub(crate) fn send(&self, frame: Vec<u8>) -> bool {
        self.mux.send(frame)
    }

    fn lost(&self, error: ConnectionError) -> CallError {
        CallError::Transport(closed(&error))
    }

    fn stream_failed(&self, error: impl std::fmt::Display) -> CallError {
        stream_failed(&self.conn, error)
    }
}

/// A stream of `conn` failed with `error`: the connection's end, if that was it.
fn stream_failed(conn: &quinn::Connection, error: impl std::fmt::Display) -> CallError {
    match conn.close_reason() {
        Some(reason) => CallError::Transport(closed(&reason)),
        None => CallError::Transport(TransportError::Stream(error.to_string())),
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

/// Writes the call channel's frames, everything queued as one stream write; a write that
/// takes longer than `send_timeout` (a server that stopped reading) ends the writer.
async fn channel_writer(mut send: SendStream, mut frames: Outgoing, send_timeout: Duration) {
    let mut batch = Coalesced::default();
    while gather(&mut batch, &mut frames).await {
        let written =
            tokio::time::timeout(send_timeout, send.write_all_chunks(batch.chunks())).await;
        batch.clear();
        if !matches!(written, Ok(Ok(()))) {
            debug!("call channel write failed or stalled");
            return;
        }
    }
}

/// Routes the call channel's replies to their calls until the connection ends; then the
/// calls still waiting fail. Anything but a reply there breaks the protocol.
async fn channel_reader(conn: quinn::Connection, mut recv: RecvStream, mux: Arc<Mux>, max: u32) {
    let mut frames = ChunkFrames::new(max);
    let violation = loop {
        match frames.next(&mut recv).await {
            Ok((header, body)) => {
                if let Err(error) = mux.deliver_reply(header, body) {
                    break Some(error);
                }
            }
            Err(ReadError::Protocol(error)) => break Some(error),
            Err(error) => {
                debug!(%error, "call channel ended");
                break None;
            }
        }
    };
    let ended = match violation {
        Some(error) => {
            warn!(%error, "server broke the protocol on the call channel; closing");
            conn.close(CLOSE_PROTOCOL, b"protocol error on the call channel");
            TransportError::violation(&error)
        }
        None => match conn.close_reason() {
            Some(reason) => closed(&reason),
            None => TransportError::closed(None, "the server ended the call channel"),
        },
    };
    mux.close(ended);
}

/// Reads the server's push stream until the connection ends, then marks the connection
/// disconnected. A protocol violation on it closes the connection.
async fn push_reader<S: Service>(conn: quinn::Connection, pushes: Arc<Pushes<S>>) {
    if let Err(error) = read_pushes(&conn, &pushes).await {
        warn!(%error, "server broke the protocol on the push stream; closing");
        conn.close(CLOSE_PROTOCOL, b"protocol error on push stream");
    }
    let reason = conn.closed().await;
    pushes.disconnected(&closed(&reason));
}

/// Reads the server's datagrams, unreliable events each, until the connection ends. One
/// that is not a valid `Unreliable` frame closes the connection.
async fn datagram_reader<S: Service>(conn: quinn::Connection, pushes: Arc<Pushes<S>>) {
    let mut last = LastTopic::default();
    while let Ok(datagram) = conn.read_datagram().await {
        if let Err(error) = pushes.datagram(&mut last, datagram) {
            warn!(%error, "server sent an invalid datagram; closing");
            conn.close(CLOSE_PROTOCOL, b"protocol error in a datagram");
            return;
        }
    }
}

async fn read_pushes<S: Service>(
    conn: &quinn::Connection,
    pushes: &Pushes<S>,
) -> Result<(), ProtocolError> {
    let Ok(mut push) = conn.accept_uni().await else {
        return Ok(());
    };
    let mut frames = ChunkFrames::new(pushes.max);
    let mut last = LastTopic::default();
    loop {
        match frames.next(&mut push).await {
            Ok((header, body)) => pushes.handle(&mut last, &header, body)?,
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
        // unreliable events from the server: a limit, not an allocation
        .datagram_receive_buffer_size(Some(DATAGRAM_RECEIVE_BUFFER))
        .max_idle_timeout(Some(idle))
        .keep_alive_interval(Some(config.limits.keep_alive()));
    Ok(transport)
}

/// Sends the `Hello` on a new stream and reads exactly the answer: the call channel's
/// replies follow it on the stream.
async fn handshake(
    conn: &quinn::Connection,
    hello: &[u8],
    config: &ClientConfig,
) -> Result<(SendStream, RecvStream, FrameHeader, Bytes), ConnectError> {
    let closed = |e: &dyn std::fmt::Display| transport_failure(&config.addr, e);
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| closed(&e))?;
    send.write_all(hello).await.map_err(|e| closed(&e))?;
    match read_frame(&mut recv, config.limits.max_message_size()).await {
        Ok((header, body)) => Ok((send, recv, header, body)),
        Err(ReadError::Protocol(e)) => Err(e.into()),
        Err(e) => Err(closed(&e)),
    }
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
