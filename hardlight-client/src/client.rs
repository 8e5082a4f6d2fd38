//! The generic client that every generated `XClient` wraps.

use std::{
    fmt,
    future::{poll_fn, Future},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, Weak,
    },
    task::Poll,
    time::Duration,
};

use futures_util::{future::Either, FutureExt, Stream, StreamExt};
use hardlight_core::{
    codec::Codable,
    context::{append_context, budget_to_seq, CallContext},
    current::CurrentCall,
    frame::{FrameHeader, Kind, FLAG_STREAM, HEADER_LEN},
    handshake::Resume,
    message::Body,
    priority::Priority,
    received::Received,
    Compression, ConnectionState, ProtocolError, RejectCode, Service,
};
use tokio::sync::watch;

use crate::{
    calls::{ItemSender, OpenedItems},
    config::{ClientConfig, Reconnect, TransportKind},
    connect::connect,
    connection::Connection,
    durable::{AckRoute, DurableSubscription},
    error::{CallError, ConnectError, RpcError, TransportError},
    event_buffer::{self, Sender},
    events::{Pushed, Subscription},
    mirror::{mark_disconnected, Mirror, StateWatcher},
    propagate::Propagated,
    pushes::Pushes,
    reply::decode_reply,
    rt::{self, OnEnd},
    stats::{ClientStats, Counters},
    status::{ConnectionStatus, StatusError, StatusWatcher},
    streaming::{typed, CallStream, Observed},
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
    context: Option<Arc<CallContext>>,
    /// The priority of this handle's calls (`None`: each method's own).
    priority: Option<Priority>,
}

struct Inner<S: Service> {
    config: ClientConfig,
    /// The live connection and the mirror generation it feeds.
    connection: Mutex<Option<(u64, Connection)>>,
    mirror: Arc<watch::Sender<Mirror<S::State>>>,
    events: Sender<Pushed<S::Event>>,
    status: watch::Sender<ConnectionStatus>,
    /// The server session to resume after a lost connection.
    session: Mutex<Option<Session>>,
    /// Whether the application wants to be connected (`connect` until `disconnect`).
    wanted: AtomicBool,
    /// One connection attempt at a time (the application's and the reconnect loop's).
    connecting: tokio::sync::Mutex<()>,
    counters: Arc<Counters>,
    /// Where acks of durable events go.
    acks: Arc<AckRoute>,
}

/// The server session this client holds, across reconnections.
#[derive(Debug, Clone)]
struct Session {
    session_id: [u8; 16],
    /// Events accounted for in the session (`Event` frames, and the count of each
    /// `Lagged`).
    received: Arc<AtomicU64>,
}

impl<S: Service> Clone for Client<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            call_timeout: self.call_timeout,
            context: self.context.clone(),
            priority: self.priority,
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
                connection: Mutex::new(None),
                mirror: Arc::new(watch::Sender::new(Mirror::new())),
                events: event_buffer::buffer(config.event_buffer),
                status: watch::Sender::new(ConnectionStatus::Disconnected { error: None }),
                session: Mutex::new(None),
                wanted: AtomicBool::new(false),
                connecting: tokio::sync::Mutex::new(()),
                counters: Arc::default(),
                acks: Arc::default(),
                config,
            }),
            call_timeout,
            context: None,
            priority: None,
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
    ///
    /// If the connection is lost later, the client reconnects on its own (see
    /// [`ClientConfig::with_reconnect`]) and resumes its session when the server still
    /// has it; [`Client::watch_status`] follows this.
    pub async fn connect(&self) -> Result<(), ConnectError> {
        self.inner.wanted.store(true, Ordering::SeqCst);
        let result = Inner::establish(&self.inner).await;
        if let Err(error) = &result {
            self.inner
                .status
                .send_replace(ConnectionStatus::Disconnected {
                    error: Some(StatusError::Connect(error.clone())),
                });
        }
        result
    }

    /// Closes the connection and stops reconnecting; in-flight calls fail with a
    /// transport error.
    pub async fn disconnect(&self) {
        self.inner.wanted.store(false, Ordering::SeqCst);
        let connection = lock(&self.inner.connection).take();
        if let Some((generation, connection)) = connection {
            connection.close().await;
            mark_disconnected(&self.inner.mirror, generation);
        }
        *lock(&self.inner.session) = None;
        self.inner.acks.clear();
        self.inner
            .status
            .send_replace(ConnectionStatus::Disconnected { error: None });
    }

    /// Whether the client has a live connection.
    pub fn is_connected(&self) -> bool {
        self.live_connection().is_some()
    }

    /// The transport of the live connection, if any.
    pub fn transport(&self) -> Option<TransportKind> {
        self.live_connection()
            .map(|(_, connection)| connection.kind())
    }

    /// The connection's status now.
    pub fn status(&self) -> ConnectionStatus {
        self.inner.status.borrow().clone()
    }

    /// Follows the connection's status: connected, lost and reconnecting, resumed or new
    /// session, given up.
    pub fn watch_status(&self) -> StatusWatcher {
        StatusWatcher {
            rx: self.inner.status.subscribe(),
        }
    }

    /// The client's counters now, and the connection's round-trip time (QUIC only).
    pub fn stats(&self) -> ClientStats {
        let rtt = self
            .live_connection()
            .and_then(|(_, connection)| connection.rtt());
        self.inner.counters.snapshot(rtt)
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
    /// want: events received while no subscription exists are not kept. It survives
    /// reconnections.
    pub async fn subscribe(&self) -> Result<Subscription<S::Event>, RpcError> {
        if self.inner.mirror.borrow().generation == 0 {
            return Err(RpcError::NotConnected);
        }
        Ok(Subscription {
            rx: self.inner.events.subscribe(),
            topic: None,
        })
    }

    /// A stream of the durable events of the consumers the server's handler attached to
    /// this connection (see [`DurableSubscription`]); ack each once processed. Create it
    /// before the call that subscribes: deliveries received while no stream exists are
    /// not kept (they come again after the ack wait). It survives reconnections.
    pub async fn durable(&self) -> Result<DurableSubscription<S::Event>, RpcError> {
        if self.inner.mirror.borrow().generation == 0 {
            return Err(RpcError::NotConnected);
        }
        Ok(DurableSubscription::new(self.inner.events.subscribe()))
    }

    /// A handle on the same connection whose calls have `timeout` to complete (`None`:
    /// no deadline). The deadline travels with each call: the server drops the handler
    /// when it passes, and a call the handler makes gets at most the time left. Past it
    /// the call fails with [`RpcError::DeadlineExceeded`] and is cancelled on the server.
    pub fn with_call_timeout(&self, timeout: Option<Duration>) -> Self {
        Self {
            call_timeout: timeout,
            ..self.clone()
        }
    }

    /// A handle on the same connection whose calls carry `context` (trace context,
    /// entries of the caller's), which the handler reads with `CurrentCall::context`.
    /// Made inside a handler, a call carries the served call's context unless the
    /// handle has one, and its trace in any case.
    ///
    /// ```
    /// # use hardlight_client::Client;
    /// # use hardlight_core::{context::CallContext, Service};
    /// # fn traced<S: Service>(client: &Client<S>) -> Client<S> {
    /// client.with_context(
    ///     CallContext::new()
    ///         .with_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    ///         .with_entry("request-id", "r-17"),
    /// )
    /// # }
    /// ```
    pub fn with_context(&self, context: CallContext) -> Self {
        Self {
            context: (!context.is_empty()).then(|| Arc::new(context)),
            ..self.clone()
        }
    }

    /// A handle on the same connection whose calls have `priority`, whatever their
    /// method's own (`#[rpc(priority = ..)]`). Over QUIC a call that is not
    /// [`Priority::Normal`] goes on a stream of its own with that send priority on both
    /// sides; over WebSocket the server writes queued frames highest priority first. A
    /// large low-priority transfer then does not hold up small high-priority calls.
    ///
    /// ```
    /// # use hardlight_client::Client;
    /// # use hardlight_core::{Priority, Service};
    /// # fn bulk<S: Service>(client: &Client<S>) -> Client<S> {
    /// client.with_priority(Priority::Low)
    /// # }
    /// ```
    pub fn with_priority(&self, priority: Priority) -> Self {
        Self {
            priority: Some(priority),
            ..self.clone()
        }
    }

    /// The priority of a call of `method` from this handle.
    fn priority(&self, method: u16) -> Priority {
        self.priority.unwrap_or_else(|| S::priority(method))
    }

    /// Makes a call. Used by generated clients.
    ///
    /// Not an `async fn`, which would hold `args` twice. The call's budget, context and
    /// frame are made in its first poll and not kept beside the call while it waits: an
    /// application that spawns or boxes its calls copies the call's future once per call,
    /// and its calls in flight hold their futures side by side.
    #[doc(hidden)]
    #[allow(clippy::manual_async_fn)] // an `async fn` would hold `args` twice
    pub fn __call<'a, A: Codable + 'a, T: Codable + 'a, E: Codable + 'a>(
        &'a self,
        method: u16,
        args: A,
    ) -> impl Future<Output = Result<T, RpcError<E>>> + 'a {
        async move {
            let counters = &self.inner.counters;
            counters.calls.fetch_add(1, Ordering::Relaxed);
            let (budget, frame) = self.call_frame(method, &args, 0);
            // without a budget (most calls) the call is awaited as it is: not moved into a
            // wrapper first, which is a copy of its future per call
            let result = match budget {
                None => self.call(frame).await,
                budget => within(budget, self.call(frame)).await,
            };
            counters.finished.fetch_add(1, Ordering::Relaxed);
            if matches!(&result, Err(e) if !matches!(e, RpcError::Handler(_))) {
                counters.failed.fetch_add(1, Ordering::Relaxed);
            }
            result
        }
    }

    /// Starts a server-streaming call. Used by generated clients.
    #[doc(hidden)]
    pub async fn __stream<A, T, E>(
        &self,
        method: u16,
        args: A,
    ) -> Result<CallStream<T, E>, RpcError<E>>
    where
        A: Codable,
        T: Codable + Send + 'static,
        E: Codable + Send + 'static,
    {
        let open = self.open_streaming(method, &args, false).await?;
        Ok(self.typed(open))
    }

    /// Starts a bidirectional streaming call, sending `items` as the server takes them.
    /// Used by generated clients.
    #[doc(hidden)]
    pub async fn __exchange<A, I, T, E>(
        &self,
        method: u16,
        args: A,
        items: impl Stream<Item = I> + Send + 'static,
    ) -> Result<CallStream<T, E>, RpcError<E>>
    where
        A: Codable,
        I: Codable + Send + 'static,
        T: Codable + Send + 'static,
        E: Codable + Send + 'static,
    {
        let mut open = self.open_streaming(method, &args, true).await?;
        if let Some(sender) = open.items.sender() {
            rt::spawn(send_all(sender, items, open.observed.clone()));
        }
        Ok(self.typed(open))
    }

    /// Makes a client-streaming call: sends `items` as the server takes them and returns
    /// the handler's result. Used by generated clients.
    #[doc(hidden)]
    pub async fn __upload<A, I, T, E>(
        &self,
        method: u16,
        args: A,
        items: impl Stream<Item = I> + Send + 'static,
    ) -> Result<T, RpcError<E>>
    where
        A: Codable,
        I: Codable + Send + 'static,
        T: Codable,
        E: Codable,
    {
        let Open {
            items: mut opened,
            generation,
            budget,
            observed,
        } = self.open_streaming(method, &args, true).await?;
        let sender = opened.sender();
        let limit = self.inner.config.limits.frame_read_timeout();
        let reply = async {
            let (header, body, _) = opened.next().await?;
            wait_for_version(&self.inner.mirror, generation, header.seq, limit).await?;
            decode_reply::<T, E>(&header, Received::Aligned(body))
        };
        // the reply may come before every item is sent (the handler failed, say): it
        // ends the call, and the sending with it
        let sending = async {
            if let Some(sender) = sender {
                send_all(sender, items, observed).await;
            }
            std::future::pending::<()>().await;
        };
        let exchange = async {
            tokio::select! {
                biased;
                reply = reply => reply,
                () = sending => unreachable!("sending never completes"),
            }
        };
        within(budget, exchange).await
    }

    /// Opens a streaming call of `method` with `args`, with its budget and context;
    /// counted as a call once open (or failed).
    async fn open_streaming<A: Codable, E>(
        &self,
        method: u16,
        args: &A,
        sends_items: bool,
    ) -> Result<Open, RpcError<E>> {
        let counters = &self.inner.counters;
        counters.calls.fetch_add(1, Ordering::Relaxed);
        let (budget, frame) = self.call_frame(method, args, FLAG_STREAM);
        let opened = async {
            if budget.is_some_and(|budget| budget.is_zero()) {
                return Err(RpcError::DeadlineExceeded(Duration::ZERO));
            }
            let (generation, connection) = self.live_connection().ok_or(RpcError::NotConnected)?;
            let (header, args) = frame?;
            counters
                .bytes_sent
                .fetch_add((HEADER_LEN + args.len()) as u64, Ordering::Relaxed);
            let items = connection.stream(header, args, sends_items).await?;
            Ok(Open {
                items,
                generation,
                budget,
                observed: Observed::open(counters, sends_items),
            })
        }
        .await;
        counters.finished.fetch_add(1, Ordering::Relaxed);
        if opened.is_err() {
            counters.failed.fetch_add(1, Ordering::Relaxed);
        }
        opened
    }

    /// The typed items of an open streaming call.
    fn typed<T, E>(&self, open: Open) -> CallStream<T, E>
    where
        T: Codable + Send + 'static,
        E: Codable + Send + 'static,
    {
        let mirror = Arc::clone(&self.inner.mirror);
        let limit = self.inner.config.limits.frame_read_timeout();
        let generation = open.generation;
        let wait = move |version| {
            let mirror = Arc::clone(&mirror);
            async move { wait_for_version(&mirror, generation, version, limit).await }
        };
        typed(
            open.items,
            open.budget,
            wait,
            Arc::clone(&self.inner.counters),
            open.observed,
        )
    }

    /// The budget of a call of `method` with `args`, made here (inside a handler, at most
    /// what is left of the handler's), and the call's frame: `flags` and the method's
    /// priority, the budget and the call context.
    fn call_frame<A: Codable>(
        &self,
        method: u16,
        args: &A,
        flags: u8,
    ) -> (Option<Duration>, Result<(FrameHeader, Body), ProtocolError>) {
        let current = CurrentCall::get();
        let propagated =
            Propagated::new(self.call_timeout, self.context.as_deref(), current.as_ref());
        let frame = Body::encode(args).and_then(|mut args| {
            let context = match &propagated.context {
                Some(context) => append_context(&mut args, context)?,
                None => 0,
            };
            let header = FrameHeader::new(Kind::Call, 0)
                .with_aux(method)
                .with_seq(budget_to_seq(propagated.budget))
                .with_flags(flags | self.priority(method).flags() | context);
            Ok((header, args))
        });
        (propagated.budget, frame)
    }

    /// Sends call `frame` on the live connection, and decodes its reply once the state
    /// changes sent before it are applied.
    #[allow(clippy::manual_async_fn)] // an `async fn` would hold `frame` twice
    fn call<'a, T: Codable + 'a, E: Codable + 'a>(
        &'a self,
        frame: Result<(FrameHeader, Body), ProtocolError>,
    ) -> impl Future<Output = Result<T, RpcError<E>>> + 'a {
        async move {
            // the call waits with this poll's waker from the start
            let waker = poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
            let (header, args) = frame?;
            let (generation, connection) = self.live_connection().ok_or(RpcError::NotConnected)?;
            let counters = &self.inner.counters;
            counters
                .bytes_sent
                .fetch_add((HEADER_LEN + args.len()) as u64, Ordering::Relaxed);
            let replied = connection.call(header, args, waker)?;
            let (header, body) = replied.await?;
            counters
                .bytes_received
                .fetch_add((HEADER_LEN + body.len()) as u64, Ordering::Relaxed);
            let limit = self.inner.config.limits.frame_read_timeout();
            wait_for_version(&self.inner.mirror, generation, header.seq, limit).await?;
            decode_reply(&header, body)
        }
    }

    fn live_connection(&self) -> Option<(u64, Connection)> {
        self.inner.live_connection()
    }
}

impl<S: Service> Inner<S> {
    /// The connection in the slot: it holds one only while its mirror shows it connected
    /// (put there once the mirror is, taken out before the mirror shows it gone).
    fn live_connection(&self) -> Option<(u64, Connection)> {
        lock(&self.connection).clone()
    }

    /// Connects unless connected, resuming the previous session if there is one.
    async fn establish(inner: &Arc<Self>) -> Result<(), ConnectError> {
        let _one_at_a_time = inner.connecting.lock().await;
        if inner.live_connection().is_some() {
            return Ok(());
        }
        let session = lock(&inner.session).clone();
        let mut config = inner.config.clone();
        config.resume = session.as_ref().map(|held| Resume {
            session_id: held.session_id,
            events_received: held.received.load(Ordering::SeqCst),
        });
        let connected = connect::<S>(&config).await?;
        let welcome = &connected.welcome;
        let mut state = S::State::default();
        welcome.state.apply_to(&mut state)?;
        let resumed = welcome.resumed;
        let received = match (&session, resumed) {
            (Some(session), true) => Arc::clone(&session.received),
            _ => Arc::new(AtomicU64::new(0)),
        };
        if session.is_some() {
            inner.counters.reconnects.fetch_add(1, Ordering::Relaxed);
            if !resumed {
                // the server's subscriptions and queued events went with the old session
                inner.events.send(Pushed::Reset);
            }
        }
        *lock(&inner.session) = Some(Session {
            session_id: welcome.session_id,
            received: Arc::clone(&received),
        });
        let mut generation = 0;
        inner.mirror.send_modify(|m| {
            generation = m.generation + 1;
            *m = Mirror {
                generation,
                connected: true,
                version: welcome.state_version,
                state: Arc::new(state),
            };
        });
        let weak = Arc::downgrade(inner);
        let on_end: OnEnd = Arc::new(move |reason: TransportError| {
            if let Some(inner) = weak.upgrade() {
                Inner::lost(&inner, generation, reason);
            }
        });
        if connected.zero_rtt {
            inner
                .counters
                .zero_rtt_accepted
                .fetch_add(1, Ordering::Relaxed);
        }
        let connection = connected.connection;
        let transport = connection.kind();
        connection.start(Pushes::<S> {
            mirror: Arc::clone(&inner.mirror),
            events: inner.events.clone(),
            drain: connection.drain(),
            generation,
            compressed: welcome.compression_for(config.compression) != Compression::None,
            max: config.limits.max_message_size(),
            received,
            counters: Arc::clone(&inner.counters),
            on_end,
            acks: Arc::clone(&inner.acks),
            session: welcome.session_id,
            unreliable_seen: AtomicU64::new(0),
        });
        inner.acks.set(welcome.session_id, connection.clone());
        let previous = lock(&inner.connection).replace((generation, connection));
        inner
            .status
            .send_replace(ConnectionStatus::Connected { transport, resumed });
        if let Some((_, previous)) = previous {
            previous.close().await;
        }
        Ok(())
    }

    /// Connection `generation` ended: unless it was closed on purpose (or replaced), start
    /// reconnecting.
    fn lost(inner: &Arc<Self>, generation: u64, reason: TransportError) {
        {
            let mut connection = lock(&inner.connection);
            let current = connection.as_ref().is_some_and(|(g, _)| *g == generation);
            if !current || !inner.wanted.load(Ordering::SeqCst) {
                return;
            }
            *connection = None;
        }
        tracing::debug!(%reason, "connection lost");
        let error = StatusError::Lost(reason);
        match inner.config.reconnect {
            Some(policy) => rt::spawn(reconnect(Arc::downgrade(inner), policy, error)),
            None => {
                inner
                    .status
                    .send_replace(ConnectionStatus::Disconnected { error: Some(error) });
            }
        }
    }
}

/// Reconnects with jittered exponential backoff until connected, told to stop, refused
/// for a reason retrying cannot fix, or out of attempts.
async fn reconnect<S: Service>(inner: Weak<Inner<S>>, policy: Reconnect, mut error: StatusError) {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let Some(strong) = inner.upgrade() else {
            return;
        };
        if !strong.wanted.load(Ordering::SeqCst) {
            return;
        }
        if policy.max_attempts.is_some_and(|max| attempt > max) {
            strong.status.send_replace(ConnectionStatus::Disconnected {
                error: Some(StatusError::GaveUp {
                    attempts: attempt - 1,
                    last: Box::new(error),
                }),
            });
            return;
        }
        strong.status.send_replace(ConnectionStatus::Reconnecting {
            attempt,
            error: error.clone(),
        });
        drop(strong);
        rt::sleep(policy.delay(attempt, rt::random())).await;
        let Some(strong) = inner.upgrade() else {
            return;
        };
        if !strong.wanted.load(Ordering::SeqCst) {
            return;
        }
        match Inner::establish(&strong).await {
            Ok(()) => return,
            Err(e) if !retriable(&e) => {
                strong.status.send_replace(ConnectionStatus::Disconnected {
                    error: Some(StatusError::Connect(e)),
                });
                return;
            }
            Err(e) => error = StatusError::Connect(e),
        }
    }
}

/// Runs `call` within `budget` (none: without a deadline): past it, or when the server
/// says so, the call fails with `DeadlineExceeded`; a budget already spent fails it at
/// once. Not an `async fn`, which would hold `call` twice.
fn within<T, E>(
    budget: Option<Duration>,
    call: impl Future<Output = Result<T, RpcError<E>>>,
) -> impl Future<Output = Result<T, RpcError<E>>> {
    match budget {
        None => Either::Left(call),
        Some(budget) if budget.is_zero() => Either::Right(Either::Left(std::future::ready(Err(
            RpcError::DeadlineExceeded(budget),
        )))),
        // boxed: a call without a budget does not carry a timer's room
        Some(budget) => Either::Right(Either::Right(Box::pin(rt::timeout(budget, call).map(
            move |timed| {
                timed
                    .unwrap_or(Err(RpcError::DeadlineExceeded(budget)))
                    .map_err(|error| error.past(budget))
            },
        )))),
    }
}

/// A streaming call, open.
struct Open {
    items: OpenedItems,
    /// The mirror generation of its connection.
    generation: u64,
    budget: Option<Duration>,
    observed: Observed,
}

/// Sends `items` on a streaming call as the server takes them, then their end; a failure
/// to send one fails the call. Items ready one after the other are sent together (over
/// QUIC, in one write): those held go as soon as the next is not ready.
async fn send_all<I: Codable>(
    mut sender: ItemSender,
    items: impl Stream<Item = I>,
    observed: Observed,
) {
    let mut items = std::pin::pin!(items);
    loop {
        let next = match items.next().now_or_never() {
            Some(next) => next,
            None => match sender.flush().await {
                Ok(()) => items.next().await,
                Err(error) => return failed(sender, error, &observed),
            },
        };
        let Some(item) = next else { break };
        let sent = match Body::encode(&item) {
            Ok(item) => {
                let len = item.len();
                sender.send(item).await.map(|()| len)
            }
            Err(error) => Err(error.into()),
        };
        match sent {
            Ok(len) => observed.update(|seen| {
                seen.items_sent += 1;
                seen.bytes_sent += (HEADER_LEN + len) as u64;
            }),
            Err(error) => return failed(sender, error, &observed),
        }
    }
    if let Err(error) = sender.flush().await {
        return failed(sender, error, &observed);
    }
    sender.end().await;
    observed.update(|seen| seen.sent_end = true);
}

/// A streaming call's item could not be sent: the call fails with `error`.
fn failed(sender: ItemSender, error: CallError, observed: &Observed) {
    tracing::debug!(?error, "a streaming call's item could not be sent");
    let described = RpcError::<()>::from(error.clone()).describe();
    observed.update(|seen| {
        seen.sent_end = true;
        seen.last_error = Some(described);
    });
    sender.fail(error);
}

/// Whether another connection attempt can succeed where this one failed.
fn retriable(error: &ConnectError) -> bool {
    match error {
        ConnectError::Rejected { code, .. } => {
            matches!(
                code,
                RejectCode::Overloaded | RejectCode::ShuttingDown | RejectCode::Internal
            )
        }
        ConnectError::VersionMismatch { .. }
        | ConnectError::Tls(_)
        | ConnectError::IdleTimeoutTooLarge(_)
        | ConnectError::Protocol(_) => false,
        _ => true,
    }
}

/// Read-your-writes: waits until the mirror shows state `version`, which the server sent
/// before the reply — for at most `limit` (`Limits::frame_read_timeout`), so that a server
/// announcing a version it never sends cannot hold the call forever.
fn wait_for_version<S: ConnectionState>(
    mirror: &watch::Sender<Mirror<S>>,
    generation: u64,
    version: u64,
    limit: Duration,
) -> impl Future<Output = Result<(), CallError>> + '_ {
    let reached =
        move |m: &Mirror<S>| m.generation != generation || !m.connected || m.version >= version;
    let applied = move |m: &Mirror<S>| {
        if m.generation == generation && m.version >= version {
            Ok(())
        } else {
            Err(CallError::Transport(TransportError::closed(
                None,
                "connection closed before the call's state changes arrived",
            )))
        }
    };
    if version == 0 {
        // the session's state was never written: there is nothing to wait for, on this
        // connection or another
        return Either::Left(std::future::ready(Ok(())));
    }
    // most replies find their state already applied: no receiver to subscribe (and
    // whose drop, the last, wakes the sender's waiters), no timer, and no room in every
    // call's future for one (boxed)
    {
        let now = mirror.borrow();
        if reached(&now) {
            return Either::Left(std::future::ready(applied(&now)));
        }
    }
    Either::Right(Box::pin(async move {
        // `wait_for` looks at the value first: a change made since is not missed
        let mut rx = mirror.subscribe();
        let now = rt::timeout(limit, rx.wait_for(reached))
            .await
            .map_err(|_| CallError::Protocol(ProtocolError::FrameTimeout { limit }))?
            .map_err(|_| CallError::NotConnected)?;
        applied(&now)
    }))
}
