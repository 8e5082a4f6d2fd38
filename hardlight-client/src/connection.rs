//! A live connection, whichever transport carries it.

use std::{sync::Arc, task::Waker};

use hardlight_core::{frame::FrameHeader, handshake::Welcome, message::Body, Service};

use crate::{
    calls::{OpenedItems, Replied},
    config::TransportKind,
    drain::Drain,
    error::CallError,
    pushes::Pushes,
};

#[cfg(feature = "native")]
use crate::{quic::QuicConnection, ws::WsConnection};
#[cfg(all(feature = "wasm", not(feature = "native")))]
use crate::{webtransport::WtConnection, ws::BrowserConnection};

/// A connection whose handshake succeeded, not yet reading pushes.
pub(crate) struct Connected {
    pub(crate) connection: Connection,
    pub(crate) welcome: Welcome,
    /// The `Hello` went in 0-RTT and the server accepted it.
    pub(crate) zero_rtt: bool,
}

/// One live connection.
#[derive(Debug, Clone)]
pub(crate) enum Connection {
    /// QUIC: calls on the call channel or on streams of their own.
    #[cfg(feature = "native")]
    Quic(Arc<QuicConnection>),
    /// WebSocket: calls multiplexed by id.
    #[cfg(feature = "native")]
    WebSocket(Arc<WsConnection>),
    /// The browser's WebSocket.
    #[cfg(all(feature = "wasm", not(feature = "native")))]
    Browser(Arc<BrowserConnection>),
    /// The browser's WebTransport.
    #[cfg(all(feature = "wasm", not(feature = "native")))]
    WebTransport(Arc<WtConnection>),
}

impl Connection {
    /// Which transport this is.
    pub(crate) fn kind(&self) -> TransportKind {
        match self {
            #[cfg(feature = "native")]
            Self::Quic(_) => TransportKind::Quic,
            #[cfg(feature = "native")]
            Self::WebSocket(s) => s.kind,
            #[cfg(all(feature = "wasm", not(feature = "native")))]
            Self::Browser(_) => TransportKind::WebSocket,
            #[cfg(all(feature = "wasm", not(feature = "native")))]
            Self::WebTransport(_) => TransportKind::WebTransport,
        }
    }

    /// The smoothed round-trip time, where the transport measures it (QUIC).
    pub(crate) fn rtt(&self) -> Option<std::time::Duration> {
        match self {
            #[cfg(feature = "native")]
            Self::Quic(s) => Some(s.conn.rtt()),
            #[cfg(feature = "native")]
            Self::WebSocket(_) => None,
            #[cfg(all(feature = "wasm", not(feature = "native")))]
            Self::Browser(_) | Self::WebTransport(_) => None,
        }
    }

    /// The drain state (calls in flight, `GoAway`).
    pub(crate) fn drain(&self) -> Arc<Drain> {
        match self {
            #[cfg(feature = "native")]
            Self::Quic(s) => Arc::clone(&s.calls.drain),
            #[cfg(feature = "native")]
            Self::WebSocket(s) => Arc::clone(&s.channel.calls.drain),
            #[cfg(all(feature = "wasm", not(feature = "native")))]
            Self::Browser(s) => Arc::clone(&s.channel.calls.drain),
            #[cfg(all(feature = "wasm", not(feature = "native")))]
            Self::WebTransport(s) => Arc::clone(&s.calls.drain),
        }
    }

    /// Starts delivering pushes (after the mirror holds the `Welcome` snapshot).
    pub(crate) fn start<S: Service>(&self, pushes: Pushes<S>) {
        match self {
            #[cfg(feature = "native")]
            Self::Quic(s) => s.start(pushes),
            #[cfg(feature = "native")]
            Self::WebSocket(s) => s.start(pushes),
            #[cfg(all(feature = "wasm", not(feature = "native")))]
            Self::Browser(s) => s.start(pushes),
            #[cfg(all(feature = "wasm", not(feature = "native")))]
            Self::WebTransport(s) => s.start(pushes),
        }
    }

    /// Makes the call `header` with body `args`, sent now if it can go at once, and gives
    /// the future of its (opened) reply frame, for which `waker` is woken.
    pub(crate) fn call(
        &self,
        header: FrameHeader,
        args: Body,
        waker: Waker,
    ) -> Result<Replied<'_>, CallError> {
        match self {
            #[cfg(feature = "native")]
            Self::Quic(s) => s.calls.call(header, args, waker),
            #[cfg(feature = "native")]
            Self::WebSocket(s) => s.channel.calls.call(header, args, waker),
            #[cfg(all(feature = "wasm", not(feature = "native")))]
            Self::Browser(s) => s.channel.calls.call(header, args, waker),
            #[cfg(all(feature = "wasm", not(feature = "native")))]
            Self::WebTransport(s) => s.calls.call(header, args, waker),
        }
    }

    /// Starts the streaming call `header` with body `args`, whose items the client sends
    /// if `sends_items`.
    pub(crate) async fn stream(
        &self,
        header: FrameHeader,
        args: Body,
        sends_items: bool,
    ) -> Result<OpenedItems, CallError> {
        match self {
            #[cfg(feature = "native")]
            Self::Quic(s) => s.calls.stream(header, args, sends_items).await,
            #[cfg(feature = "native")]
            Self::WebSocket(s) => s.channel.calls.stream(header, args, sends_items).await,
            #[cfg(all(feature = "wasm", not(feature = "native")))]
            Self::Browser(s) => s.channel.calls.stream(header, args, sends_items).await,
            #[cfg(all(feature = "wasm", not(feature = "native")))]
            Self::WebTransport(s) => s.calls.stream(header, args, sends_items).await,
        }
    }

    /// Queues a frame outside any call (an `Ack`) without waiting; `false` if the queue
    /// to the server is full or the connection is gone.
    pub(crate) fn send(&self, frame: Vec<u8>) -> bool {
        match self {
            #[cfg(feature = "native")]
            Self::Quic(s) => s.calls.transport.send(frame),
            #[cfg(feature = "native")]
            Self::WebSocket(s) => s.channel.mux().send(frame),
            #[cfg(all(feature = "wasm", not(feature = "native")))]
            Self::Browser(s) => s.channel.mux().send(frame),
            #[cfg(all(feature = "wasm", not(feature = "native")))]
            Self::WebTransport(s) => s.send(frame),
        }
    }

    /// Closes the connection.
    pub(crate) async fn close(&self) {
        match self {
            #[cfg(feature = "native")]
            Self::Quic(s) => s.close().await,
            #[cfg(feature = "native")]
            Self::WebSocket(s) => s.close().await,
            #[cfg(all(feature = "wasm", not(feature = "native")))]
            Self::Browser(s) => s.channel.close(),
            #[cfg(all(feature = "wasm", not(feature = "native")))]
            Self::WebTransport(s) => s.close(),
        }
    }
}
