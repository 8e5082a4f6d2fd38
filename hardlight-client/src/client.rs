//! The generic client that every generated `XClient` wraps.

use std::{
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use hardlight_core::{
    codec::{encode, Codable},
    Compression, ConnectionState, Service,
};
use tokio::sync::{broadcast, watch};

use crate::{
    config::{ClientConfig, TransportKind},
    connect::connect,
    error::{CallError, ConnectError, RpcError, TransportError},
    events::{Pushed, Subscription},
    mirror::{mark_disconnected, Mirror, StateWatcher},
    pushes::Pushes,
    reply::decode_reply,
    rt,
    session::Session,
    sync::lock,
};

/// A client of service `S`: connects, makes typed calls, mirrors the connection state and
/// receives events.
///
/// `#[rpc]` generates a wrapper (`CounterClient` for `trait Counter`) that derefs to this
/// type and adds one async method per RPC method. Clones share the connection.
pub struct Client<S: Service> {
    inner: Arc<Inner<S>>,
    call_timeout: Option<Duration>,
}

struct Inner<S: Service> {
    config: ClientConfig,
    /// The live session and the mirror generation it feeds.
    session: Mutex<Option<(u64, Session)>>,
    mirror: Arc<watch::Sender<Mirror<S::State>>>,
    events: broadcast::Sender<Pushed<S::Event>>,
}

impl<S: Service> Clone for Client<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            call_timeout: self.call_timeout,
        }
    }
}

impl<S: Service> fmt::Debug for Client<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("service", &S::NAME)
            .field("addr", &self.inner.config.addr)
            .field("transport", &self.transport())
            .finish()
    }
}

impl<S: Service> Client<S> {
    /// A client with this configuration; nothing happens until [`Client::connect`].
    pub fn with_config(config: ClientConfig) -> Self {
        let call_timeout = config.call_timeout;
        Self {
            inner: Arc::new(Inner {
                session: Mutex::new(None),
                mirror: Arc::new(watch::Sender::new(Mirror::new())),
                events: broadcast::Sender::new(config.event_buffer),
                config,
            }),
            call_timeout,
        }
    }

    /// A client for `addr` verifying the server against the system roots.
    pub fn new(addr: impl Into<String>) -> Self {
        Self::with_config(ClientConfig::new(addr))
    }

    /// **Insecure, for development**: a client for `addr` that accepts any certificate,
    /// as presented by `ServerConfig::new_self_signed`.
    pub fn new_self_signed(addr: impl Into<String>, compression: Compression) -> Self {
        Self::with_config(
            ClientConfig::new(addr)
                .insecure_accept_any_certificate()
                .with_compression(compression),
        )
    }

    /// Connects (over the configured [`Transport`](crate::Transport): by default QUIC
    /// first, WebSocket as fallback) and runs the handshake. Afterwards [`Client::state`]
    /// holds the server's state snapshot and [`Client::transport`] says which transport
    /// won. Does nothing if already connected.
    pub async fn connect(&self) -> Result<(), ConnectError> {
        if self.live_session().is_some() {
            return Ok(());
        }
        let config = &self.inner.config;
        let connected = connect::<S>(config).await?;
        let mut state = S::State::default();
        connected.welcome.state.apply_to(&mut state)?;
        let mut generation = 0;
        self.inner.mirror.send_modify(|m| {
            generation = m.generation + 1;
            *m = Mirror {
                generation,
                connected: true,
                version: connected.welcome.state_version,
                state: Arc::new(state),
            };
        });
        let session = connected.session;
        session.start(Pushes::<S> {
            mirror: Arc::clone(&self.inner.mirror),
            events: self.inner.events.clone(),
            drain: session.drain(),
            generation,
            compressed: connected.welcome.compression_for(config.compression) != Compression::None,
            max: config.limits.max_message_size,
        });
        let previous = lock(&self.inner.session).replace((generation, session));
        if let Some((_, previous)) = previous {
            previous.close().await;
        }
        Ok(())
    }

    /// Closes the connection; in-flight calls fail with a transport error.
    pub async fn disconnect(&self) {
        let session = lock(&self.inner.session).take();
        if let Some((generation, session)) = session {
            session.close().await;
            mark_disconnected(&self.inner.mirror, generation);
        }
    }

    /// Whether the client has a live connection.
    pub fn is_connected(&self) -> bool {
        self.live_session().is_some()
    }

    /// The transport of the live connection, if any.
    pub fn transport(&self) -> Option<TransportKind> {
        self.live_session().map(|(_, session)| session.kind())
    }

    /// The mirrored connection state: a snapshot the server actually had, including every
    /// write made by calls that have returned.
    pub async fn state(&self) -> Result<Arc<S::State>, RpcError> {
        let mirror = self.inner.mirror.borrow();
        if mirror.generation == 0 {
            return Err(RpcError::NotConnected);
        }
        Ok(Arc::clone(&mirror.state))
    }

    /// A live view of the mirrored state that wakes on every change.
    pub fn watch_state(&self) -> StateWatcher<S::State> {
        StateWatcher {
            rx: self.inner.mirror.subscribe(),
        }
    }

    /// A stream of the events of the topics the server's handler subscribed this
    /// connection to (see [`Subscription`]). Create it before the calls whose events you
    /// want: events received while no subscription exists are not kept.
    pub async fn subscribe(&self) -> Result<Subscription<S::Event>, RpcError> {
        if self.inner.mirror.borrow().generation == 0 {
            return Err(RpcError::NotConnected);
        }
        Ok(Subscription {
            rx: self.inner.events.subscribe(),
            topic: None,
        })
    }

    /// A handle on the same connection whose calls time out after `timeout`
    /// (`None`: no deadline). A timed-out call is cancelled on the server.
    pub fn with_call_timeout(&self, timeout: Option<Duration>) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            call_timeout: timeout,
        }
    }

    /// Makes a call. Used by generated clients.
    #[doc(hidden)]
    pub async fn __call<A: Codable, T: Codable, E: Codable>(
        &self,
        method: u16,
        args: A,
    ) -> Result<T, RpcError<E>> {
        let call = self.call(method, &args);
        match self.call_timeout {
            None => call.await,
            Some(limit) => rt::timeout(limit, call)
                .await
                .unwrap_or(Err(RpcError::Timeout(limit))),
        }
    }

    async fn call<A: Codable, T: Codable, E: Codable>(
        &self,
        method: u16,
        args: &A,
    ) -> Result<T, RpcError<E>> {
        let (generation, session) = self.live_session().ok_or(RpcError::NotConnected)?;
        let args = encode(args)?;
        let (header, body) = session.call(method, &args).await?;
        wait_for_version(&self.inner.mirror, generation, header.seq).await?;
        decode_reply(&header, &body)
    }

    fn live_session(&self) -> Option<(u64, Session)> {
        let (generation, session) = lock(&self.inner.session).clone()?;
        let mirror = self.inner.mirror.borrow();
        (mirror.generation == generation && mirror.connected).then_some((generation, session))
    }
}

/// Read-your-writes: waits until the mirror shows state `version`, which the server sent
/// before the reply.
async fn wait_for_version<S: ConnectionState>(
    mirror: &watch::Sender<Mirror<S>>,
    generation: u64,
    version: u64,
) -> Result<(), CallError> {
    let mut rx = mirror.subscribe();
    let mirror = rx
        .wait_for(|m| m.generation != generation || !m.connected || m.version >= version)
        .await
        .map_err(|_| CallError::NotConnected)?;
    if mirror.generation == generation && mirror.version >= version {
        Ok(())
    } else {
        Err(CallError::Transport(TransportError::Closed(
            "connection closed before the call's state changes arrived".into(),
        )))
    }
}
