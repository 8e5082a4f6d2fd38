//! WebTransport in the browser: the protocol exactly as over QUIC natively — the
//! handshake stream kept open as the call channel (small calls multiplexed by id), every
//! other call on a bidirectional stream of its own, pushes on the server's
//! unidirectional stream, unreliable events as datagrams (`docs/PROTOCOL.md`,
//! §1 Transport and negotiation).
//!
//! The browser's objects cannot leave the thread's event loop, so they live in local
//! tasks: the connection hands them frames and calls through channels.

mod js;

use std::{
    sync::{Arc, Mutex},
    task::Waker,
};

use hardlight_core::{
    close::Close,
    codec::Bytes,
    frame::{FrameHeader, Kind},
    handshake::webtransport_path,
    received::Received,
    ProtocolError, Service,
};
use tokio::sync::{mpsc, oneshot};

use self::js::{FrameStream, Session, Unread, WebTransport, Writer};
use crate::{
    calls::{priority_of, rides_channel, Calls, Exchange, Exchanged, CHANNEL_MAX},
    config::ClientConfig,
    connection::{Connected, Connection},
    error::{CallError, ConnectError, TransportError},
    handshake::{hello_frame, welcome},
    mux::{CloseSwitch, Mux, Outgoing, Slot},
    pushes::{LastTopic, Pushes},
    streaming::ItemSource,
    sync::lock,
};

pub(crate) use self::js::supported;

/// Frames of a call on a stream of its own read ahead of the application: one, so that
/// a stream the application does not read holds the server back.
const READ_AHEAD: usize = 1;

/// What starts the push and datagram readers once the mirror holds the snapshot.
type Start = Box<dyn FnOnce(&WebTransport)>;

/// An established WebTransport session.
pub(crate) struct WtConnection {
    pub(crate) calls: Calls<WtStreams>,
    /// Fired or dropped, the session closes.
    close: Arc<CloseSwitch>,
    /// Taken by `start`.
    start: Mutex<Option<oneshot::Sender<Start>>>,
}

impl std::fmt::Debug for WtConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WtConnection")
            .field("calls", &self.calls)
            .finish_non_exhaustive()
    }
}

/// Calls over WebTransport: multiplexed on the call channel, or on a stream each.
#[derive(Debug)]
pub(crate) struct WtStreams {
    mux: Arc<Mux>,
    /// Calls for the session's task to put on streams of their own.
    streams: mpsc::UnboundedSender<StreamCall>,
}

/// A call on a stream of its own, for the session's task to carry.
struct StreamCall {
    frame: Vec<u8>,
    reply_max: u32,
    /// The call's frames back: items, then the reply.
    frames: mpsc::Sender<Result<(FrameHeader, Bytes), CallError>>,
    /// The client's items, for a call that sends them.
    items: Option<mpsc::Receiver<ItemOp>>,
}

/// What the client does with its items.
#[derive(Debug)]
pub(crate) enum ItemOp {
    Item(Vec<u8>),
    End,
    Fail,
}

/// The URL of the session for `config`: `https://host:port/hardlight/<version>`, the
/// host and port taken from the address (`host:port`, `wss://host:port/…`, or
/// `ws://host:port/…`: QUIC has TLS of its own even where the WebSocket is plain behind
/// a proxy); `None` for any other scheme.
fn url(config: &ClientConfig) -> Option<String> {
    let addr = &config.addr;
    let authority = match addr.split_once("://") {
        Some(("ws" | "wss" | "https", rest)) => rest.split('/').next()?,
        Some(_) => return None,
        None => addr.as_str(),
    };
    Some(format!(
        "https://{authority}{}",
        webtransport_path(config.protocol_version)
    ))
}

fn failure(config: &ClientConfig, reason: impl std::fmt::Display) -> ConnectError {
    ConnectError::Transport {
        addr: config.addr.clone(),
        reason: format!("WebTransport: {reason}"),
    }
}

/// The transport error for a session that ended with `code` and `reason`.
fn ended((code, reason): (Option<u32>, String)) -> TransportError {
    let close = code.and_then(|code| Close::from_quic_code(code.into()));
    TransportError::closed(close, reason)
}

impl WtConnection {
    /// Whether `connect` can be tried for `config` in this browser.
    pub(crate) fn available(config: &ClientConfig) -> bool {
        supported() && url(config).is_some()
    }

    /// Opens the session and runs the handshake on its first stream.
    pub(crate) async fn connect<S: Service>(
        config: &ClientConfig,
    ) -> Result<Connected, ConnectError> {
        if !supported() {
            return Err(failure(config, "this browser has none"));
        }
        let url = url(config).ok_or_else(|| failure(config, "needs a TLS address"))?;
        let session = Session::connect(&url, &config.certificate_hashes)
            .await
            .map_err(|e| failure(config, e))?;
        let reply_max = config.limits.max_message_size();
        let (writer, mut reader) = session
            .0
            .open_bi(0, reply_max)
            .await
            .map_err(|e| failure(config, e))?;
        writer
            .write(&hello_frame::<S>(config)?)
            .await
            .map_err(|e| failure(config, e))?;
        let (header, body) = match reader.next().await {
            Ok(frame) => frame,
            Err(Unread::Protocol(error)) => return Err(error.into()),
            Err(Unread::Finished) => return Err(failure(config, "the server ended the handshake")),
            Err(Unread::Failed(reason)) => return Err(failure(config, reason)),
        };
        let welcome = welcome(config, &header, body)?;

        let (close, close_rx) = oneshot::channel();
        let (start, start_rx) = oneshot::channel();
        let (streams, stream_rx) = mpsc::unbounded_channel();
        let (mux, frames) = Mux::new(welcome.max_concurrent_calls);
        let close = CloseSwitch::new(close);
        let drain = mux.drain(&close);
        let transport = session.0.clone();
        wasm_bindgen_futures::spawn_local(channel_writer(writer, frames));
        wasm_bindgen_futures::spawn_local(channel_reader(
            transport.clone(),
            reader,
            Arc::clone(&mux),
        ));
        wasm_bindgen_futures::spawn_local(run(session, stream_rx, close_rx, start_rx));
        let streams = WtStreams { mux, streams };
        let established = Self {
            calls: Calls::new(streams, drain, &welcome, config),
            close,
            start: Mutex::new(Some(start)),
        };
        // the page's one thread: what starts the readers holds the page's callbacks, which
        // are not `Send`, and `Connection` holds every transport in an `Arc`
        #[allow(clippy::arc_with_non_send_sync)]
        let established = Arc::new(established);
        Ok(Connected {
            connection: Connection::WebTransport(established),
            welcome,
            zero_rtt: false,
        })
    }

    /// Starts reading the push stream and the datagrams.
    pub(crate) fn start<S: Service>(&self, pushes: Pushes<S>) {
        let Some(start) = lock(&self.start).take() else {
            return;
        };
        let begin: Start = Box::new(move |session: &WebTransport| {
            let pushes = Arc::new(pushes);
            wasm_bindgen_futures::spawn_local(datagram_reader(
                session.clone(),
                Arc::clone(&pushes),
            ));
            wasm_bindgen_futures::spawn_local(push_reader(session.clone(), pushes));
        });
        let _ = start.send(begin);
    }

    /// Closes the session; calls in flight fail.
    pub(crate) fn close(&self) {
        self.close.flip();
        self.calls.transport.mux.close(TransportError::closed(
            Some(Close::Normal),
            "client disconnected",
        ));
    }

    /// Queues a frame that is not a call (an `Ack`) on the call channel.
    pub(crate) fn send(&self, frame: Vec<u8>) -> bool {
        self.calls.transport.mux.send(frame)
    }
}

/// The session's task: puts calls on streams of their own and starts the readers, until
/// the connection closes it (or is dropped).
async fn run(
    session: Session,
    mut streams: mpsc::UnboundedReceiver<StreamCall>,
    mut close: oneshot::Receiver<()>,
    mut start: oneshot::Receiver<Start>,
) {
    let mut started = false;
    loop {
        tokio::select! {
            call = streams.recv() => match call {
                Some(call) => wasm_bindgen_futures::spawn_local(stream_call(session.0.clone(), call)),
                None => break,
            },
            begin = &mut start, if !started => {
                started = true;
                if let Ok(begin) = begin {
                    begin(&session.0);
                }
            }
            _ = &mut close => break,
        }
    }
}

impl Exchange for WtStreams {
    async fn open_stream(
        &self,
        frame: Vec<u8>,
        reply_max: u32,
        sends_items: bool,
    ) -> Result<ItemSource, CallError> {
        let slot = self.mux.slot().await?;
        Ok(ItemSource::Piped(self.piped(
            frame,
            reply_max,
            sends_items,
            slot,
        )?))
    }

    /// A small call of normal priority on the call channel (dropping the future sends
    /// `Cancel`), any other on a stream of its own (dropping the future resets it);
    /// either way the server cancels the call.
    fn exchange(&self, frame: Vec<u8>, reply_max: u32, waker: Waker) -> Exchanged<'_> {
        if rides_channel(&frame, CHANNEL_MAX) {
            return self.mux.call(frame, waker);
        }
        Exchanged::Boxed(Box::pin(self.exchange_piped(frame, reply_max)))
    }
}

impl WtStreams {
    /// A call on a stream of its own.
    async fn exchange_piped(
        &self,
        frame: Vec<u8>,
        reply_max: u32,
    ) -> Result<(FrameHeader, Received), CallError> {
        let slot = self.mux.slot().await?;
        let (header, body) = self.piped(frame, reply_max, false, slot)?.next().await?;
        Ok((header, Received::Aligned(body)))
    }

    /// Hands a call to the session's task for a stream of its own.
    fn piped(
        &self,
        frame: Vec<u8>,
        reply_max: u32,
        sends_items: bool,
        slot: Slot,
    ) -> Result<PipedItems, CallError> {
        let (frames_tx, frames) = mpsc::channel(READ_AHEAD);
        let (items_tx, items) = match sends_items {
            true => {
                let (tx, rx) = mpsc::channel(1);
                (Some(tx), Some(rx))
            }
            false => (None, None),
        };
        let call = StreamCall {
            frame,
            reply_max,
            frames: frames_tx,
            items,
        };
        self.streams.send(call).map_err(|_| self.mux.closed())?;
        Ok(PipedItems {
            frames,
            items: items_tx,
            mux: Arc::clone(&self.mux),
            _slot: slot,
        })
    }
}

/// A call on a stream of its own, carried by the session's task: its items and reply
/// as the application asks for them. Dropped before the reply, the stream is reset and
/// the server cancels the call.
#[derive(Debug)]
pub(crate) struct PipedItems {
    frames: mpsc::Receiver<Result<(FrameHeader, Bytes), CallError>>,
    items: Option<mpsc::Sender<ItemOp>>,
    mux: Arc<Mux>,
    _slot: Slot,
}

impl PipedItems {
    /// The next item or the reply.
    pub(crate) async fn next(&mut self) -> Result<(FrameHeader, Bytes), CallError> {
        self.frames
            .recv()
            .await
            .unwrap_or_else(|| Err(self.mux.closed()))
    }

    /// What sends the client's items of this call.
    pub(crate) fn sender(&mut self) -> Option<PipedSender> {
        Some(PipedSender {
            items: self.items.take()?,
            mux: Arc::clone(&self.mux),
        })
    }
}

/// Sends the client's items of a call on a stream of its own, paced by the stream.
#[derive(Debug)]
pub(crate) struct PipedSender {
    items: mpsc::Sender<ItemOp>,
    mux: Arc<Mux>,
}

impl PipedSender {
    pub(crate) async fn send(&mut self, frame: Vec<u8>) -> Result<(), CallError> {
        self.items
            .send(ItemOp::Item(frame))
            .await
            .map_err(|_| self.mux.closed())
    }

    pub(crate) async fn end(self) {
        let _ = self.items.send(ItemOp::End).await;
    }

    pub(crate) fn fail(self, _error: CallError) {
        let _ = self.items.try_send(ItemOp::Fail);
    }
}

/// Carries one call on a stream of its own: the call frame, the client's items if it
/// sends them, and the server's frames back until the reply. The stream is reset if
/// the call is dropped first.
async fn stream_call(session: WebTransport, call: StreamCall) {
    let StreamCall {
        frame,
        reply_max,
        frames,
        mut items,
    } = call;
    let failed = |reason: String| -> Result<(FrameHeader, Bytes), CallError> {
        Err(CallError::Transport(TransportError::Stream(reason)))
    };
    let (writer, mut reader) = match session.open_bi(priority_of(&frame).quic(), reply_max).await {
        Ok(stream) => stream,
        Err(reason) => return drop(frames.send(failed(reason)).await),
    };
    if let Err(reason) = writer.write(&frame).await {
        return drop(frames.send(failed(reason)).await);
    }
    if items.is_none() {
        writer.finish();
    }
    loop {
        let item = async {
            match items.as_mut() {
                Some(items) => items.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            frame = reader.next() => {
                let (frame, last) = match frame {
                    Ok(frame) => {
                        let last = frame.0.kind != Kind::StreamItem;
                        (Ok(frame), last)
                    }
                    Err(Unread::Finished) => (Err(CallError::Cancelled), true),
                    Err(Unread::Protocol(error)) => (Err(CallError::Protocol(error)), true),
                    Err(Unread::Failed(reason)) => (failed(reason), true),
                };
                if frames.send(frame).await.is_err() {
                    break;
                }
                if last {
                    return;
                }
            }
            op = item => match op {
                Some(ItemOp::Item(item)) => {
                    if writer.write(&item).await.is_err() {
                        items = None;
                    }
                }
                Some(ItemOp::End) => {
                    writer.finish();
                    items = None;
                }
                Some(ItemOp::Fail) | None => {
                    // not all the items: the server must not take these as all of them
                    writer.abort();
                    items = None;
                }
            },
            () = frames.closed() => break,
        }
    }
    // dropped before its reply: the server cancels the call
    reader.cancel();
    writer.abort();
}

/// Writes the call channel's frames, everything queued as one write.
async fn channel_writer(writer: Writer, mut frames: Outgoing) {
    let mut batch = Vec::new();
    while let Some(queued) = frames.next_batch().await {
        batch.clear();
        queued
            .drain(..)
            .for_each(|frame| batch.extend_from_slice(&frame));
        if writer.write(&batch).await.is_err() {
            return;
        }
    }
}

/// Routes the call channel's replies to their calls until the session ends; then the
/// calls still waiting fail. Anything but a reply there breaks the protocol.
async fn channel_reader(session: WebTransport, mut reader: FrameStream, mux: Arc<Mux>) {
    let violation = loop {
        match reader.next().await {
            Ok((header, body)) => {
                if let Err(error) = mux.deliver_reply(header, Received::Aligned(body)) {
                    break Some(error);
                }
            }
            Err(Unread::Protocol(error)) => break Some(error),
            Err(_) => break None,
        }
    };
    let reason = match violation {
        Some(error) => {
            tracing::warn!(%error, "server broke the protocol on the call channel; closing");
            session.close(
                Close::Protocol.quic_code(),
                "protocol error on the call channel",
            );
            TransportError::violation(&error)
        }
        None => ended(session.ended().await),
    };
    mux.close(reason);
}

/// Reads the server's push stream until the session ends, then marks the connection
/// disconnected. A protocol violation on it closes the session.
async fn push_reader<S: Service>(session: WebTransport, pushes: Arc<Pushes<S>>) {
    if let Err(error) = read_pushes(&session, &pushes).await {
        tracing::warn!(%error, "server broke the protocol on the push stream; closing");
        session.close(Close::Protocol.quic_code(), "protocol error on push stream");
    }
    let reason = ended(session.ended().await);
    pushes.disconnected(&reason);
}

async fn read_pushes<S: Service>(
    session: &WebTransport,
    pushes: &Pushes<S>,
) -> Result<(), ProtocolError> {
    let Ok(stream) = session.accept_uni().await else {
        return Ok(());
    };
    let Ok(mut reader) = FrameStream::new(&stream, pushes.max) else {
        return Ok(());
    };
    let mut last = LastTopic::default();
    loop {
        match reader.next().await {
            Ok((header, body)) => pushes.handle(&mut last, &header, Received::Aligned(body))?,
            Err(Unread::Protocol(error)) => return Err(error),
            Err(_) => return Ok(()),
        }
    }
}

/// Reads the server's datagrams, unreliable events each, until the session ends. One
/// that is not a valid `Unreliable` frame closes the session.
async fn datagram_reader<S: Service>(session: WebTransport, pushes: Arc<Pushes<S>>) {
    let Ok(reader) = session.datagrams_reader() else {
        return;
    };
    let mut last = LastTopic::default();
    while let Some(datagram) = js::read_datagram(&reader).await {
        if let Err(error) = pushes.datagram(&mut last, datagram.into()) {
            tracing::warn!(%error, "server sent an invalid datagram; closing");
            session.close(Close::Protocol.quic_code(), "protocol error in a datagram");
            return;
        }
    }
}
