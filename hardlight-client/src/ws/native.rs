//! WebSocket over TLS for native clients: the upgrade by tungstenite, then HardLight's own
//! framing ([`hardlight_core::websocket`]).

use std::{
    future::poll_fn,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    task::{Context, Poll},
};

use bytes::{Bytes, BytesMut};
use futures_util::{task::AtomicWaker, FutureExt};
use hardlight_core::{
    close::Close,
    codec::realign,
    frame::{max_websocket_message, FrameHeader},
    handshake::websocket_subprotocol,
    memory::InMemory,
    wait::{IdleLimit, WaitLimit},
    websocket::{Decoder, Message, MessageReader, MessageWriter, Opcode, Role},
    woken::Woken,
    Service, TransportKind,
};
use tokio::{
    io::{split, AsyncRead, AsyncWrite, ReadHalf, WriteHalf},
    net::TcpStream,
    sync::oneshot,
    task::JoinHandle,
};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::{
    client::IntoClientRequest, http::HeaderValue, protocol::WebSocketConfig,
};
use tracing::debug;

use crate::{
    config::ClientConfig,
    connection::{Connected, Connection},
    error::{ConnectError, TlsConfigError, TransportError},
    handshake::{hello_frame, welcome},
    mux::{Channel, Mux, Outgoing},
    pushes::{LastTopic, Pushes},
    quic::{resolve, tls::client_config, transport_failure},
    sync::lock,
};

/// A byte stream a WebSocket runs over: TLS over TCP, or memory.
trait Carrier: AsyncRead + AsyncWrite + Send + Unpin + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + std::fmt::Debug> Carrier for T {}

type Source = MessageReader<ReadHalf<Box<dyn Carrier>>>;
type Sink = MessageWriter<WriteHalf<Box<dyn Carrier>>>;

/// An established WebSocket connection.
#[derive(Debug)]
pub(crate) struct WsConnection {
    pub(crate) channel: Channel,
    /// The receiving half, until `start` hands it to the reader task, with where that task
    /// leaves the payload of the server's last ping for the writer to answer.
    source: Mutex<Option<(Source, Arc<Pings>)>>,
    /// Sends queued frames; after `channel.close()`, the close frame, then it ends.
    writer: Mutex<Option<JoinHandle<()>>>,
    reader: Mutex<Option<JoinHandle<()>>>,
    /// With nothing from the server for this long (it pings), the connection is lost.
    idle_timeout: std::time::Duration,
    /// WebSocket over TCP, or in-process.
    pub(crate) kind: TransportKind,
}

impl Drop for WsConnection {
    fn drop(&mut self) {
        for task in [&self.writer, &self.reader] {
            if let Some(task) = lock(task).take() {
                task.abort();
            }
        }
    }
}

impl WsConnection {
    /// Connects over TCP + TLS, upgrades with subprotocol `hardlight.<version>` and runs
    /// the handshake.
    pub(crate) async fn connect<S: Service>(
        config: &ClientConfig,
    ) -> Result<Connected, ConnectError> {
        let failure = |e: &dyn std::fmt::Display| transport_failure(&config.addr, e);
        let addr = resolve(&config.addr).await?;
        let tcp = TcpStream::connect(addr).await.map_err(|e| failure(&e))?;
        let _ = tcp.set_nodelay(true);
        let tls = TlsConnector::from(Arc::new(client_config(
            &config.trust,
            b"http/1.1".to_vec(),
        )?));
        let name = rustls::pki_types::ServerName::try_from(config.server_name().to_owned())
            .map_err(|_| TlsConfigError::ServerName(config.server_name().to_owned()))?;
        let tls = tls.connect(name, tcp).await.map_err(|e| failure(&e))?;

        let subprotocol = websocket_subprotocol(config.protocol_version);
        let mut request = format!("wss://{}/", config.addr)
            .into_client_request()
            .map_err(|e| failure(&e))?;
        let offered = HeaderValue::from_str(&subprotocol).map_err(|e| failure(&e))?;
        request
            .headers_mut()
            .insert("sec-websocket-protocol", offered);
        // tungstenite's frame buffers would go unused
        let upgrade_config = WebSocketConfig::default().read_buffer_size(0);
        let tls: Box<dyn Carrier> = Box::new(tls);
        let (ws, _response) =
            tokio_tungstenite::client_async_with_config(request, tls, Some(upgrade_config))
                .await
                .map_err(|e| match e {
                    tokio_tungstenite::tungstenite::Error::Http(response)
                        if response.status() == 400 =>
                    {
                        ConnectError::VersionMismatch {
                            offered: subprotocol.clone(),
                        }
                    }
                    other => failure(&other),
                })?;
        // the server says nothing before the `Hello`, so nothing was read past the
        // upgrade's answer
        Self::handshake::<S>(ws.into_inner(), config, TransportKind::WebSocket).await
    }

    /// Connects in-process to the server `memory` leads to and runs the handshake.
    pub(crate) async fn connect_in_memory<S: Service>(
        memory: &InMemory,
        config: &ClientConfig,
    ) -> Result<Connected, ConnectError> {
        let stream: Box<dyn Carrier> = Box::new(
            memory
                .connect()
                .ok_or_else(|| transport_failure(&config.addr, "the in-process server is gone"))?,
        );
        Self::handshake::<S>(stream, config, TransportKind::Memory).await
    }

    /// Runs the HardLight handshake over an open WebSocket.
    async fn handshake<S: Service>(
        stream: Box<dyn Carrier>,
        config: &ClientConfig,
        kind: TransportKind,
    ) -> Result<Connected, ConnectError> {
        let failure = |e: &dyn std::fmt::Display| transport_failure(&config.addr, e);
        let (source, sink) = split(stream);
        let max = max_websocket_message(config.limits.max_message_size());
        let mut source =
            MessageReader::new(source, Decoder::new(Role::Client, max), BytesMut::new());
        let mut sink = MessageWriter::new(sink, Role::Client);
        let hello = hello_frame::<S>(config)?;
        sink.message(Opcode::Binary, &hello)
            .await
            .map_err(|e| failure(&e))?;
        sink.flush().await.map_err(|e| failure(&e))?;
        let answer = loop {
            match source.next().await {
                Some(Ok(Message::Binary(data))) => break data,
                Some(Ok(Message::Ping(_) | Message::Pong)) => {}
                Some(Ok(other)) => {
                    return Err(failure(&format!("unexpected handshake message {other:?}")))
                }
                Some(Err(e)) => return Err(failure(&e)),
                None => return Err(failure(&"connection closed during the handshake")),
            }
        };
        let (header, body) = FrameHeader::split(&answer, config.limits.max_message_size())?;
        let welcome = welcome(config, &header, realign(body))?;

        let (close, close_rx) = oneshot::channel();
        let (channel, out_rx) = Channel::new(&welcome, config, close);
        let pings = Arc::new(Pings::default());
        let writer = tokio::spawn(write_loop(
            sink,
            out_rx,
            Arc::clone(&pings),
            close_rx,
            config.limits.send_timeout(),
        ));
        let established = Self {
            channel,
            source: Mutex::new(Some((source, pings))),
            writer: Mutex::new(Some(writer)),
            reader: Mutex::new(None),
            idle_timeout: config.limits.idle_timeout(),
            kind,
        };
        Ok(Connected {
            connection: Connection::WebSocket(Arc::new(established)),
            welcome,
            zero_rtt: false,
        })
    }

    /// Closes the connection with a WebSocket close frame, waiting briefly for the writer
    /// to send it (so the server sees a clean close, not a lost connection).
    pub(crate) async fn close(&self) {
        self.channel.close();
        let writer = lock(&self.writer).take();
        if let Some(writer) = writer {
            let abort = writer.abort_handle();
            if tokio::time::timeout(std::time::Duration::from_secs(1), writer)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    /// Starts reading replies and pushes.
    pub(crate) fn start<S: Service>(&self, pushes: Pushes<S>) {
        if let Some((source, pings)) = lock(&self.source).take() {
            let reader = tokio::spawn(read_loop(
                source,
                pings,
                Arc::clone(self.channel.mux()),
                pushes,
                self.channel.calls.reply_max,
                self.idle_timeout,
            ));
            *lock(&self.reader) = Some(reader);
        }
    }
}

/// The payload of the server's last ping, handed from the reader task to the writer,
/// which answers it: only the last ping needs its answer (RFC 6455, section 5.5.3).
#[derive(Debug, Default)]
struct Pings {
    last: Mutex<Option<Bytes>>,
    /// `last` holds a ping not answered yet: the writer looks no further otherwise.
    unanswered: AtomicBool,
    writer: AtomicWaker,
}

impl Pings {
    /// The server pinged with `payload`.
    fn ping(&self, payload: Bytes) {
        *lock(&self.last) = Some(payload);
        self.unanswered.store(true, Ordering::Release);
        self.writer.wake();
    }

    /// The payload of the last ping, once one is unanswered.
    fn poll_unanswered(&self, cx: &mut Context<'_>) -> Poll<Bytes> {
        self.writer.register(cx.waker());
        if !self.unanswered.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        lock(&self.last).take().map_or(Poll::Pending, Poll::Ready)
    }
}

/// Sends queued frames, packed into few messages and flushed once per batch, and the
/// answers to the server's pings; a batch that takes longer than `send_timeout` to write
/// (a server that stopped reading) ends the writer.
async fn write_loop(
    mut sink: Sink,
    mut frames: Outgoing,
    pings: Arc<Pings>,
    mut close: oneshot::Receiver<()>,
    send_timeout: std::time::Duration,
) {
    let mut limit = WaitLimit::new(send_timeout);
    // the close and the pings are looked at only once one of them has woken: not at every
    // batch of frames
    let mut control = Woken::new();
    loop {
        let written = tokio::select! {
            biased;
            pinged = control.next(|cx| match close.poll_unpin(cx) {
                Poll::Ready(_) => Poll::Ready(None),
                Poll::Pending => pings.poll_unanswered(cx).map(Some),
            }) => {
                let Some(payload) = pinged else {
                    break;
                };
                let pong = async {
                    sink.message(Opcode::Pong, &payload).await?;
                    sink.flush().await
                };
                limit.run(pong).await
            }
            queued = frames.next_batch() => {
                let Some(queued) = queued else {
                    break;
                };
                let batch = async {
                    for frame in queued.drain(..) {
                        sink.frame(frame).await?;
                    }
                    sink.flush().await
                };
                limit.run(batch).await
            }
        };
        if !matches!(written, Some(Ok(()))) {
            return;
        }
    }
    let close = async {
        sink.message(Opcode::Close, &[]).await?;
        sink.flush().await
    };
    let _ = limit.run(close).await;
}

async fn read_loop<S: Service>(
    mut source: Source,
    pings: Arc<Pings>,
    mux: Arc<Mux>,
    pushes: Pushes<S>,
    max: u32,
    idle_timeout: std::time::Duration,
) {
    let mut idle = IdleLimit::new(idle_timeout);
    let mut last = LastTopic::default();
    let ended = loop {
        let next = poll_fn(|cx| match source.poll_next(cx) {
            Poll::Ready(next) => Poll::Ready(Some(next)),
            Poll::Pending => idle.poll_expired(cx).map(|()| None),
        })
        .await;
        let Some(next) = next else {
            break TransportError::closed(
                None,
                format!("nothing from the server for {idle_timeout:?} (Limits::idle_timeout); connection lost"),
            );
        };
        idle.heard();
        let data = match next {
            Some(Ok(Message::Binary(data))) => data,
            Some(Ok(Message::Close(Some(code), reason))) => {
                break TransportError::closed(
                    Close::from_websocket_code(code),
                    format!("closed by the server ({code}): {reason}"),
                )
            }
            Some(Ok(Message::Close(None, _))) => {
                break TransportError::closed(None, "closed by the server")
            }
            Some(Ok(Message::Ping(payload))) => {
                pings.ping(payload);
                continue;
            }
            Some(Ok(_)) => continue,
            Some(Err(error)) => break TransportError::closed(None, error.to_string()),
            None => break TransportError::closed(None, "connection closed"),
        };
        if let Err(error) = super::route(data, &mux, &pushes, &mut last, max) {
            debug!(%error, "server broke the protocol; closing");
            break TransportError::violation(&error);
        }
    };
    pushes.disconnected(&ended);
    mux.close(ended);
}
