//! WebSocket through the browser's `WebSocket` object, for the wasm client.

use std::sync::{Arc, Mutex};

use hardlight_core::{
    close::Close, coalesce::Coalesced, codec::realign, frame::FrameHeader,
    handshake::websocket_subprotocol, Service,
};
use js_sys::{ArrayBuffer, Uint8Array};
use tokio::sync::{mpsc, oneshot};
use wasm_bindgen::{closure::Closure, JsCast};
use web_sys::{BinaryType, CloseEvent, Event, MessageEvent, WebSocket};

use crate::{
    config::ClientConfig,
    connection::{Connected, Connection},
    error::{ConnectError, TransportError},
    handshake::{hello_frame, welcome},
    mux::{gather, Channel, Mux, Outgoing},
    pushes::{LastTopic, Pushes},
    sync::lock,
};

/// What the browser's callbacks report.
enum Incoming {
    Open,
    Binary(Vec<u8>),
    Text,
    Closed(TransportError),
}

/// An established browser WebSocket connection. The `WebSocket` object and its callbacks
/// live in the writer task; this holds only what calls need.
#[derive(Debug)]
pub(crate) struct BrowserConnection {
    pub(crate) channel: Channel,
    source: Mutex<Option<mpsc::UnboundedReceiver<Incoming>>>,
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Incoming")
    }
}

/// `wss://host:port/` for `host:port`; a `ws://` or `wss://` URL is used as given.
fn url(addr: &str) -> String {
    if addr.starts_with("ws://") || addr.starts_with("wss://") {
        addr.to_owned()
    } else {
        format!("wss://{addr}/")
    }
}

fn failure(config: &ClientConfig, reason: impl std::fmt::Display) -> ConnectError {
    ConnectError::Transport {
        addr: config.addr.clone(),
        reason: reason.to_string(),
    }
}

/// The browser's callbacks, kept alive as long as the socket is used.
struct Callbacks {
    ws: WebSocket,
    _open: Closure<dyn FnMut(Event)>,
    _message: Closure<dyn FnMut(MessageEvent)>,
    _close: Closure<dyn FnMut(CloseEvent)>,
    _error: Closure<dyn FnMut(Event)>,
}

impl Drop for Callbacks {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        self.ws.set_onerror(None);
        let _ = self.ws.close();
    }
}

fn open(
    config: &ClientConfig,
    tx: mpsc::UnboundedSender<Incoming>,
) -> Result<Callbacks, ConnectError> {
    let subprotocol = websocket_subprotocol(config.protocol_version);
    let ws = WebSocket::new_with_str(&url(&config.addr), &subprotocol)
        .map_err(|e| failure(config, format!("{e:?}")))?;
    ws.set_binary_type(BinaryType::Arraybuffer);
    let on_open = {
        let tx = tx.clone();
        Closure::<dyn FnMut(Event)>::new(move |_| {
            let _ = tx.send(Incoming::Open);
        })
    };
    let on_message = {
        let tx = tx.clone();
        Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let incoming = match event.data().dyn_into::<ArrayBuffer>() {
                Ok(buffer) => Incoming::Binary(Uint8Array::new(&buffer).to_vec()),
                Err(_) => Incoming::Text,
            };
            let _ = tx.send(incoming);
        })
    };
    let on_close = {
        let tx = tx.clone();
        Closure::<dyn FnMut(CloseEvent)>::new(move |event: CloseEvent| {
            let code = event.code();
            let _ = tx.send(Incoming::Closed(TransportError::closed(
                Close::from_websocket_code(code),
                format!("closed ({code}): {}", event.reason()),
            )));
        })
    };
    let on_error = Closure::<dyn FnMut(Event)>::new(move |_| {
        let _ = tx.send(Incoming::Closed(TransportError::closed(
            None,
            "WebSocket error",
        )));
    });
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    ws.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    Ok(Callbacks {
        ws,
        _open: on_open,
        _message: on_message,
        _close: on_close,
        _error: on_error,
    })
}

impl BrowserConnection {
    /// Opens the WebSocket (subprotocol `hardlight.<version>`) and runs the handshake.
    pub(crate) async fn connect<S: Service>(
        config: &ClientConfig,
    ) -> Result<Connected, ConnectError> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let callbacks = open(config, tx)?;
        match rx.recv().await {
            Some(Incoming::Open) => {}
            Some(Incoming::Closed(reason)) => return Err(failure(config, reason)),
            _ => return Err(failure(config, "the WebSocket did not open")),
        }
        let offered = websocket_subprotocol(config.protocol_version);
        if callbacks.ws.protocol() != offered {
            return Err(ConnectError::VersionMismatch { offered });
        }
        callbacks
            .ws
            .send_with_u8_array(&hello_frame::<S>(config)?)
            .map_err(|e| failure(config, format!("{e:?}")))?;
        let answer = match rx.recv().await {
            Some(Incoming::Binary(data)) => data,
            Some(Incoming::Closed(reason)) => return Err(failure(config, reason)),
            _ => return Err(failure(config, "unexpected handshake message")),
        };
        let (header, body) = FrameHeader::split(&answer, config.limits.max_message_size())?;
        let welcome = welcome(config, &header, realign(body))?;

        let (close, close_rx) = oneshot::channel();
        let (channel, out_rx) = Channel::new(&welcome, config, close);
        wasm_bindgen_futures::spawn_local(write_loop(callbacks, out_rx, close_rx));
        let established = Self {
            channel,
            source: Mutex::new(Some(rx)),
        };
        Ok(Connected {
            connection: Connection::Browser(Arc::new(established)),
            welcome,
            zero_rtt: false,
        })
    }

    /// Starts reading replies and pushes.
    pub(crate) fn start<S: Service>(&self, pushes: Pushes<S>) {
        if let Some(source) = lock(&self.source).take() {
            wasm_bindgen_futures::spawn_local(read_loop(
                source,
                Arc::clone(self.channel.mux()),
                pushes,
                self.channel.calls.reply_max,
            ));
        }
    }
}

/// Sends queued frames, packed into few messages.
async fn write_loop(callbacks: Callbacks, mut frames: Outgoing, mut close: oneshot::Receiver<()>) {
    let mut batch = Coalesced::default();
    'writing: loop {
        tokio::select! {
            more = gather(&mut batch, &mut frames) => {
                if !more {
                    break;
                }
                for message in batch.chunks() {
                    if callbacks.ws.send_with_u8_array(message).is_err() {
                        break 'writing;
                    }
                }
                batch.clear();
            },
            _ = &mut close => break,
        }
    }
    drop(callbacks);
}

async fn read_loop<S: Service>(
    mut source: mpsc::UnboundedReceiver<Incoming>,
    mux: Arc<Mux>,
    pushes: Pushes<S>,
    max: u32,
) {
    let mut last = LastTopic::default();
    let ended = loop {
        match source.recv().await {
            Some(Incoming::Binary(data)) => {
                if let Err(error) = super::route(data.into(), &mux, &pushes, &mut last, max) {
                    break TransportError::violation(&error);
                }
            }
            Some(Incoming::Text) => {
                break TransportError::closed(
                    Some(Close::Protocol),
                    "the server sent a text message",
                )
            }
            Some(Incoming::Open) => {}
            Some(Incoming::Closed(ended)) => break ended,
            None => break TransportError::closed(None, "connection closed"),
        }
    };
    pushes.disconnected(&ended);
    mux.close(ended);
}
