//! WebSocket over TLS with tokio-tungstenite, for native clients.

use std::sync::{Arc, Mutex};

use futures_util::{
    stream::{SplitSink, SplitStream},
    SinkExt, StreamExt,
};
use hardlight_core::{
    close::Close, coalesce::Coalesced, codec::realign, frame::FrameHeader,
    handshake::websocket_subprotocol, memory::InMemory, Service, TransportKind,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
    sync::oneshot,
    task::JoinHandle,
};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::{
    tungstenite::{
        client::IntoClientRequest,
        http::HeaderValue,
        protocol::{Role, WebSocketConfig},
        Message,
    },
    WebSocketStream,
};
use tracing::debug;

use crate::{
    config::ClientConfig,
    connection::{Connected, Connection},
    error::{ConnectError, TlsConfigError, TransportError},
    handshake::{hello_frame, welcome},
    mux::{gather, Channel, Mux, Outgoing},
    pushes::Pushes,
    quic::{resolve, tls::client_config, transport_failure},
    sync::lock,
};

/// A byte stream a WebSocket runs over: TLS over TCP, or memory.
trait Carrier: AsyncRead + AsyncWrite + Send + Unpin + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + std::fmt::Debug> Carrier for T {}

type Ws = WebSocketStream<Box<dyn Carrier>>;

/// An established WebSocket connection.
#[derive(Debug)]
pub(crate) struct WsConnection {
    pub(crate) channel: Channel,
    /// The receiving half, until `start` hands it to the reader task.
    source: Mutex<Option<SplitStream<Ws>>>,
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
        let ws_config = websocket_config(config);
        let tls: Box<dyn Carrier> = Box::new(tls);
        let (ws, _response) =
            tokio_tungstenite::client_async_with_config(request, tls, Some(ws_config))
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
        Self::handshake::<S>(ws, config, TransportKind::WebSocket).await
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
        let ws =
            WebSocketStream::from_raw_socket(stream, Role::Client, Some(websocket_config(config)))
                .await;
        Self::handshake::<S>(ws, config, TransportKind::Memory).await
    }

    /// Runs the HardLight handshake over an open WebSocket.
    async fn handshake<S: Service>(
        ws: Ws,
        config: &ClientConfig,
        kind: TransportKind,
    ) -> Result<Connected, ConnectError> {
        let failure = |e: &dyn std::fmt::Display| transport_failure(&config.addr, e);
        let (mut sink, mut source) = ws.split();
        sink.send(Message::Binary(hello_frame::<S>(config)?.into()))
            .await
            .map_err(|e| failure(&e))?;
        let answer = match source.next().await {
            Some(Ok(Message::Binary(data))) => data,
            Some(Ok(other)) => {
                return Err(failure(&format!("unexpected handshake message {other:?}")))
            }
            Some(Err(e)) => return Err(failure(&e)),
            None => return Err(failure(&"connection closed during the handshake")),
        };
        let (header, body) = FrameHeader::split(&answer, config.limits.max_message_size())?;
        let welcome = welcome(config, &header, realign(body))?;

        let (close, close_rx) = oneshot::channel();
        let (channel, out_rx) = Channel::new(&welcome, config, close);
        let writer = tokio::spawn(write_loop(
            sink,
            out_rx,
            close_rx,
            config.limits.send_timeout(),
        ));
        let established = Self {
            channel,
            source: Mutex::new(Some(source)),
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
        if let Some(source) = lock(&self.source).take() {
            let reader = tokio::spawn(read_loop(
                source,
                Arc::clone(self.channel.mux()),
                pushes,
                self.channel.calls.reply_max,
                self.idle_timeout,
            ));
            *lock(&self.reader) = Some(reader);
        }
    }
}

fn websocket_config(config: &ClientConfig) -> WebSocketConfig {
    let max = hardlight_core::frame::max_websocket_message(config.limits.max_message_size());
    let mut ws = WebSocketConfig::default();
    // tungstenite zero-fills this much before every read, also before reads that find
    // nothing, and holds it for the connection's life: 2 KiB keeps that cheap for small
    // calls and idle connections (4 KiB cost a few hundred instructions per call, client
    // and server, and 2.2 KiB per idle connection on the server) and costs large messages
    // nothing measurable (they are read in more, equally full, reads).
    ws.read_buffer_size = 2 * 1024;
    ws.write_buffer_size = 16 * 1024;
    ws.max_write_buffer_size = max + 64 * 1024;
    ws.max_message_size = Some(max);
    ws.max_frame_size = Some(max);
    ws
}

/// Sends queued frames, packed into few messages and flushed once per batch; a batch that
/// takes longer than `send_timeout` to write (a server that stopped reading) ends the
/// writer.
async fn write_loop(
    mut sink: SplitSink<Ws, Message>,
    mut frames: Outgoing,
    mut close: oneshot::Receiver<()>,
    send_timeout: std::time::Duration,
) {
    let mut batch = Coalesced::default();
    loop {
        tokio::select! {
            biased;
            _ = &mut close => break,
            more = gather(&mut batch, &mut frames) => {
                if !more {
                    break;
                }
                let written = tokio::time::timeout(send_timeout, write_batch(&mut sink, &mut batch));
                if !matches!(written.await, Ok(Ok(()))) {
                    return;
                }
            }
        }
    }
    let _ = tokio::time::timeout(send_timeout, sink.send(Message::Close(None))).await;
}

/// Writes `batch`, a message per chunk, then flushes.
async fn write_batch(
    sink: &mut SplitSink<Ws, Message>,
    batch: &mut Coalesced,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    for message in batch.chunks() {
        sink.feed(Message::Binary(std::mem::take(message))).await?;
    }
    batch.clear();
    sink.flush().await
}

async fn read_loop<S: Service>(
    mut source: SplitStream<Ws>,
    mux: Arc<Mux>,
    pushes: Pushes<S>,
    max: u32,
    idle_timeout: std::time::Duration,
) {
    let ended = loop {
        let Ok(next) = tokio::time::timeout(idle_timeout, source.next()).await else {
            break TransportError::closed(
                None,
                format!("nothing from the server for {idle_timeout:?} (Limits::idle_timeout); connection lost"),
            );
        };
        let data = match next {
            Some(Ok(Message::Binary(data))) => data,
            Some(Ok(Message::Close(frame))) => {
                break match frame {
                    Some(frame) => {
                        let code = u16::from(frame.code);
                        TransportError::closed(
                            Close::from_websocket_code(code),
                            format!("closed by the server ({code}): {}", frame.reason),
                        )
                    }
                    None => TransportError::closed(None, "closed by the server"),
                };
            }
            Some(Ok(_)) => continue,
            Some(Err(error)) => break TransportError::closed(None, error.to_string()),
            None => break TransportError::closed(None, "connection closed"),
        };
        if let Err(error) = super::route(&data, &mux, &pushes, max) {
            debug!(%error, "server broke the protocol; closing");
            break TransportError::violation(&error);
        }
    };
    pushes.disconnected(&ended);
    mux.close(ended);
}
