//! The server: binds QUIC on UDP port P and WebSocket on TCP port P, and accepts
//! connections on both until shut down.

use hardlight_core::{
    memory::{InMemory, MemoryIncoming},
    TransportKind as Transport,
};
use std::{
    future::pending,
    net::{SocketAddr, ToSocketAddrs},
    sync::Arc,
    time::Duration,
};

use tokio::{io::DuplexStream, net::TcpListener, task::JoinSet, time::timeout};
use tracing::{debug, info, info_span, Instrument};

use crate::{
    admission::{Admission, Connected, Refused},
    config::{ServerConfig, WebSocketMode},
    durable::Durable,
    error::ServerError,
    handler::{EventOf, Factory, RpcHandler},
    intercept::Interceptors,
    memory_budget::MemoryBudget,
    quic::{bind_udp, quinn_config, serve_connection, validated, Unproven},
    session::{resume::Sessions, ServerShared},
    shutdown::{ShutdownHandle, Signals},
    stats::{ServerCounters, ServerStats, StatsHandle},
    topics::{EventEmitter, Hub, TopicNotifier},
    ws::{serve_memory, serve_tcp, tls_acceptor, MEMORY_PEER},
};

/// Attempts at finding a port number free on both UDP and TCP when binding port 0.
const BIND_ATTEMPTS: usize = 16;

/// A HardLight server for handlers of type `H`.
///
/// ```no_run
/// # use hardlight_server::{Server, ServerConfig, Factory, RpcHandler};
/// # async fn demo<H: RpcHandler>(factory: Factory<H>) -> Result<(), hardlight_server::ServerError> {
/// let mut server = Server::new(ServerConfig::new_self_signed("127.0.0.1:0"), factory);
/// let addr = server.bind()?;            // optional: learn an ephemeral port before running
/// let shutdown = server.shutdown_handle();
/// tokio::spawn(server.run());
/// println!("listening on {addr} (QUIC on UDP, WebSocket on TCP)");
/// shutdown.shutdown(std::time::Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
pub struct Server<H: RpcHandler> {
    config: ServerConfig,
    factory: Factory<H>,
    bound: Option<Bound>,
    signals: Arc<Signals>,
    hub: Arc<Hub>,
    counters: Arc<ServerCounters>,
    /// The in-process way in, once asked for.
    memory: Option<(InMemory, MemoryIncoming)>,
    /// The server's part in a cluster, if configured.
    #[cfg(feature = "nats")]
    cluster: Option<crate::cluster::Cluster>,
}

struct Bound {
    addr: SocketAddr,
    quic: Option<quinn::Endpoint>,
    tcp: Option<TcpListener>,
}

impl<H: RpcHandler> Server<H> {
    /// A server that will serve `factory`'s handlers with `config`; nothing is bound yet.
    pub fn new(config: ServerConfig, factory: Factory<H>) -> Self {
        let memory = MemoryBudget::new(config.server_limits.memory_budget());
        let counters = ServerCounters::new(Arc::clone(&memory));
        #[cfg(feature = "nats")]
        let cluster = config.cluster.clone().map(|cluster| {
            let schema = <H::Service as hardlight_core::Service>::schema().hash;
            crate::cluster::Cluster::new::<EventOf<H>>(cluster, schema)
        });
        #[cfg(feature = "nats")]
        let (hub, counters) = match &cluster {
            Some(cluster) => (
                Hub::clustered(memory, Arc::clone(cluster.outbound())),
                counters.with_cluster(Arc::clone(cluster.counters())),
            ),
            None => (Hub::new(memory), counters),
        };
        #[cfg(not(feature = "nats"))]
        let hub = Hub::new(memory);
        let counters = match config.durable.clone() {
            Some(durable) => {
                let memory = Arc::clone(hub.memory());
                let durable = Durable::new(durable, memory, config.compression);
                #[cfg(feature = "nats")]
                if let Some(cluster) = &config.cluster {
                    durable.join_cluster(cluster);
                }
                let counters = counters.with_durable(Arc::clone(&durable.counters));
                hub.set_durable(durable);
                counters
            }
            None => counters,
        };
        Self {
            config,
            factory,
            bound: None,
            signals: Signals::new(),
            hub,
            counters: Arc::new(counters),
            memory: None,
            #[cfg(feature = "nats")]
            cluster,
        }
    }

    /// An in-process way to this server, for clients built with
    /// `ClientConfig::in_memory`: connections over memory, with the same handshake,
    /// limits and lifecycle as over the network and no socket. Call before `run()`; every
    /// call returns a handle on the same way in.
    pub fn in_memory(&mut self) -> InMemory {
        let (way_in, _) = self.memory.get_or_insert_with(InMemory::pair);
        way_in.clone()
    }

    /// The server's counters now.
    pub fn stats(&self) -> ServerStats {
        self.counters.snapshot()
    }

    /// Reads the server's counters while it runs (`run` consumes the server).
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle {
            counters: Arc::clone(&self.counters),
        }
    }

    /// An emitter of events to this server's topics; call as often as needed.
    pub fn get_event_emitter(&self) -> EventEmitter<EventOf<H>> {
        EventEmitter::new(
            Arc::clone(&self.hub),
            self.config.compression,
            self.config.limits.max_message_size(),
        )
    }

    /// Receives [`TopicNotification::Created`](crate::TopicNotification) when a topic
    /// gains its first subscriber and `Removed` when it loses its last; call as often as
    /// needed, each notifier receives every notification.
    pub fn get_topic_notifier(&self) -> TopicNotifier {
        self.hub.notifier()
    }

    /// Binds now (within a tokio runtime) and returns the local address: QUIC listens on
    /// its UDP port and WebSocket on the TCP port of the same number. For port 0 a number
    /// free on both is chosen. `run()` binds if this was not called.
    pub fn bind(&mut self) -> Result<SocketAddr, ServerError> {
        if let Some(bound) = &self.bound {
            return Ok(bound.addr);
        }
        let bound = self.bind_checked()?;
        let local = bound.addr;
        self.bound = Some(bound);
        Ok(local)
    }

    /// Checks the configuration and binds both listeners.
    fn bind_checked(&self) -> Result<Bound, ServerError> {
        let (max_message_size, max_inflight_bytes) = (
            self.config.limits.max_message_size(),
            self.config.server_limits.max_inflight_bytes(),
        );
        if u64::from(max_message_size) > max_inflight_bytes {
            return Err(ServerError::MessageAboveBudget {
                max_message_size,
                max_inflight_bytes,
            });
        }
        #[cfg(feature = "nats")]
        if let Some(cluster) = &self.cluster {
            cluster.check()?;
        }
        if let Some(durable) = self.hub.durable() {
            durable.open().map_err(|source| ServerError::DurableStore {
                path: durable.config.path.clone(),
                source,
            })?;
        }
        if !self.config.quic
            && self.config.websocket == WebSocketMode::Disabled
            && self.memory.is_none()
        {
            return Err(ServerError::NoTransport);
        }
        let addr = resolve(&self.config.addr)?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.bind_once(addr) {
                Err(ServerError::Bind { source, .. })
                    if addr.port() == 0
                        && attempts < BIND_ATTEMPTS
                        && source.kind() == std::io::ErrorKind::AddrInUse => {}
                other => return other,
            }
        }
    }

    fn bind_once(&self, addr: SocketAddr) -> Result<Bound, ServerError> {
        let quic = if self.config.quic {
            let server_config = quinn_config(&self.config)?;
            let endpoint = bind_udp(addr, self.config.server_limits.udp_receive_buffer())
                .and_then(|socket| {
                    quinn::Endpoint::new(
                        quinn::EndpointConfig::default(),
                        Some(server_config),
                        socket,
                        Arc::new(quinn::TokioRuntime),
                    )
                })
                .map_err(|source| ServerError::Bind { addr, source })?;
            Some(endpoint)
        } else {
            None
        };
        let port = match &quic {
            Some(endpoint) => endpoint
                .local_addr()
                .map_err(|source| ServerError::Bind { addr, source })?
                .port(),
            None => addr.port(),
        };
        let tcp = if self.config.websocket == WebSocketMode::Disabled {
            None
        } else {
            let tcp_addr = SocketAddr::new(addr.ip(), port);
            let listener = std::net::TcpListener::bind(tcp_addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .and_then(TcpListener::from_std)
                .map_err(|source| ServerError::Bind {
                    addr: tcp_addr,
                    source,
                })?;
            Some(listener)
        };
        let port = match &tcp {
            Some(listener) => listener
                .local_addr()
                .map_err(|source| ServerError::Bind { addr, source })?
                .port(),
            None => port,
        };
        Ok(Bound {
            addr: SocketAddr::new(addr.ip(), port),
            quic,
            tcp,
        })
    }

    /// A handle that shuts this server down gracefully.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            signals: Arc::clone(&self.signals),
        }
    }

    /// Serves until shut down through a [`ShutdownHandle`].
    pub async fn run(mut self) -> Result<(), ServerError> {
        let Bound { addr, quic, tcp } = match self.bound.take() {
            Some(bound) => bound,
            None => self.bind_checked()?,
        };
        let tls = match self.config.websocket {
            WebSocketMode::Tls => Some(tls_acceptor(&self.config)?),
            WebSocketMode::PlainBehindTlsProxy | WebSocketMode::Disabled => None,
        };
        let server_limits = &self.config.server_limits;
        let shared = Arc::new(ServerShared {
            limits: self.config.limits.clone(),
            server_limits: server_limits.clone(),
            compression: self.config.compression,
            signals: Arc::clone(&self.signals),
            hub: Arc::clone(&self.hub),
            slow_consumer: self.config.slow_consumer,
            authenticator: self.config.authenticator.clone(),
            interceptors: Interceptors::new(self.config.interceptors.clone()),
            admission: Admission::new(
                server_limits.max_connections(),
                server_limits.max_connections_per_ip(),
                server_limits.ipv6_prefix_len(),
            ),
            counters: Arc::clone(&self.counters),
            unproven: Unproven::default(),
        });
        let sessions = Sessions::new(
            self.factory.clone(),
            server_limits.resume_grace(),
            (
                server_limits.max_connections(),
                server_limits.max_connections_per_ip(),
            ),
            self.config.authenticator.is_some(),
            Arc::clone(&self.counters),
        );
        let memory = self.memory.take().map(|(_, incoming)| incoming);
        // the cluster link's tasks, aborted when `run` ends
        #[cfg(feature = "nats")]
        let cluster = self
            .cluster
            .as_ref()
            .map(|cluster| cluster.start(&self.hub, self.config.compression))
            .transpose()?;
        // removes expired durable events, until `run` ends
        let sweeper = self
            .hub
            .durable()
            .map(|durable| AbortOnDrop(durable.sweeper()));
        let span = info_span!("server", %addr);
        async {
            info!(quic = quic.is_some(), websocket = ?self.config.websocket, "listening");
            let mut connections = JoinSet::new();
            let mut shutdown = self.signals.deadline.subscribe();
            loop {
                tokio::select! {
                    incoming = accept_quic(quic.as_ref()) => match incoming {
                        Some(incoming) => {
                            let Some((incoming, unproven)) = validated(incoming, &shared) else { continue };
                            match admit(&shared, incoming.remote_address(), Transport::Quic) {
                                Some(slot) => {
                                    connections.spawn(serve_connection(incoming, (slot, unproven), Arc::clone(&sessions), Arc::clone(&shared)));
                                }
                                None => incoming.refuse(),
                            }
                        }
                        None => break,
                    },
                    accepted = accept_tcp(tcp.as_ref()) => match accepted {
                        Ok((stream, remote)) => if let Some(slot) = admit(&shared, remote, Transport::WebSocket) {
                            connections.spawn(serve_tcp(stream, remote, slot, tls.clone(), Arc::clone(&sessions), Arc::clone(&shared)));
                        },
                        Err(error) => tracing::warn!(%error, "TCP accept failed"),
                    },
                    Some(stream) = accept_memory(memory.as_ref()) => {
                        if let Some(slot) = admit(&shared, MEMORY_PEER, Transport::Memory) {
                            connections.spawn(serve_memory(stream, slot, Arc::clone(&sessions), Arc::clone(&shared)));
                        }
                    }
                    _ = shutdown.wait_for(Option::is_some) => break,
                    Some(_) = connections.join_next() => {}
                }
            }
            info!(connections = connections.len(), "shutting down");
            drop(tcp);
            drop(memory);
            if let Some(endpoint) = &quic {
                endpoint.set_server_config(None);
            }
            while connections.join_next().await.is_some() {}
            sessions.close_all();
            if let Some(durable) = self.hub.durable() {
                durable.close().await;
            }
            if let Some(endpoint) = &quic {
                let _ = timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
            }
            #[cfg(feature = "nats")]
            drop(cluster);
            drop(sweeper);
            info!("stopped");
        }
        .instrument(span)
        .await;
        self.signals.finished.send_replace(true);
        Ok(())
    }
}

/// A place for a new connection from `remote`, or `None` (counted and logged) when the
/// server or that address is at its connection limit.
fn admit(shared: &ServerShared, remote: SocketAddr, transport: Transport) -> Option<Connected> {
    match shared.admission.admit(remote.ip()) {
        Ok(slot) => Some(Connected::new(
            slot,
            transport,
            Arc::clone(&shared.counters),
        )),
        Err(refused) => {
            let (reason, limit) = match refused {
                Refused::Server => ("max_connections", shared.server_limits.max_connections()),
                Refused::Address => (
                    "max_connections_per_ip",
                    shared.server_limits.max_connections_per_ip(),
                ),
            };
            debug!(%remote, ?transport, limit, "connection refused: Limits::{reason} reached");
            shared.counters.connection_refused(reason);
            None
        }
    }
}

async fn accept_quic(endpoint: Option<&quinn::Endpoint>) -> Option<quinn::Incoming> {
    match endpoint {
        Some(endpoint) => endpoint.accept().await,
        None => pending().await,
    }
}

async fn accept_memory(incoming: Option<&MemoryIncoming>) -> Option<DuplexStream> {
    match incoming {
        Some(incoming) => incoming.accept().await,
        None => pending().await,
    }
}

async fn accept_tcp(
    listener: Option<&TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => pending().await,
    }
}

fn resolve(addr: &str) -> Result<SocketAddr, ServerError> {
    let failed = |source| ServerError::Address {
        addr: addr.to_owned(),
        source,
    };
    addr.to_socket_addrs()
        .map_err(failed)?
        .next()
        .ok_or_else(|| {
            failed(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "resolves to no address",
            ))
        })
}

/// A task aborted when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
