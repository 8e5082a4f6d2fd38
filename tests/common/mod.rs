//! A service exercising every kind of type, and helpers to run it on loopback.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    time::Duration,
};

use hardlight::*;

pub mod board;
pub mod child;
#[cfg(feature = "nats")]
pub mod cluster;
pub mod ledger;
pub mod nats;
pub mod nats_process;
pub mod probe;
pub mod raw;
pub mod raw_ws;
pub mod relay;
pub mod tcp_proxy;
pub mod udp_proxy;
pub mod webtransport;

/// Instantiates each scenario `name(transport)` as two tests, `name::quic` and
/// `name::websocket`; `multi_thread:` before the names runs them on two worker threads.
#[macro_export]
macro_rules! over_both_transports {
    (@tests #[$test:meta] $($name:ident),*) => {
        $(
            mod $name {
                #[$test]
                async fn quic() {
                    super::$name(hardlight::Transport::Quic).await
                }

                #[$test]
                async fn websocket() {
                    super::$name(hardlight::Transport::WebSocket).await
                }
            }
        )*
    };
    (multi_thread: $($name:ident),* $(,)?) => {
        $crate::over_both_transports!(
            @tests #[tokio::test(flavor = "multi_thread", worker_threads = 2)] $($name),*
        );
    };
    ($($name:ident),* $(,)?) => {
        $crate::over_both_transports!(@tests #[tokio::test] $($name),*);
    };
}

/// Waits until `condition` holds, checking every 10 ms; panics after 60 s as a safety net (only a hang reaches it).
pub async fn eventually(what: &str, condition: impl Fn() -> bool) {
    eventually_within(what, Duration::from_secs(60), condition).await;
}

/// Waits until the async `condition` holds, checking every 10 ms; panics after 60 s as a
/// safety net (only a hang reaches it).
pub async fn eventually_async<F: std::future::Future<Output = bool>>(
    what: &str,
    condition: impl Fn() -> F,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} never happened");
}

/// Waits until `condition` holds, checking every 10 ms; panics after `limit`.
pub async fn eventually_within(what: &str, limit: Duration, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} never happened");
}

#[codable]
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub x: i64,
    pub y: i64,
    pub label: Option<String>,
}

#[codable]
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Circle { center: Point, radius: f64 },
    Polygon(Vec<Point>),
    Empty,
}

#[codable]
#[derive(Debug, Clone, PartialEq)]
pub enum AppError {
    NotFound { key: String },
    Invalid(String),
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

#[rpc]
pub trait Kitchen {
    async fn echo_bytes(&self, data: Vec<u8>) -> HandlerResult<Vec<u8>>;
    async fn add(&self, a: i64, b: i64, c: i64) -> HandlerResult<i64>;
    async fn describe(&self, shape: Shape, scale: Option<f64>) -> HandlerResult<String>;
    async fn transform(
        &self,
        points: Vec<Point>,
        tags: HashMap<String, u32>,
    ) -> HandlerResult<(Vec<Point>, BTreeMap<u32, String>)>;
    async fn maybe(&self, value: Option<Shape>) -> HandlerResult<Option<Shape>>;
    async fn lookup(&self, key: String) -> HandlerResult<u32, AppError>;
    async fn fail(&self, message: String) -> HandlerResult<()>;
    async fn explode(&self) -> HandlerResult<u32>;
    async fn increment(&self, amount: u32) -> HandlerResult<u32>;
    async fn rename(&self, name: String) -> HandlerResult<()>;
    async fn sleep(&self, millis: u64) -> HandlerResult<u64>;
    /// The subject of the connection's identity.
    async fn whoami(&self) -> HandlerResult<String>;
    /// Subscribes to each topic; fails past `ServerLimits::max_subscriptions`.
    async fn subscribe_to(&self, topics: Vec<String>) -> HandlerResult<u32>;
    /// Calls this connection has started, by the server's count.
    async fn calls_seen(&self) -> HandlerResult<u64>;
    /// Holds `data` (and so its share of the connection's byte budget) for `millis`.
    async fn hold(&self, data: Vec<u8>, millis: u64) -> HandlerResult<usize>;
}

#[connection_state]
pub struct State {
    pub counter: u32,
    pub history: Vec<u32>,
    pub name: String,
}

#[rpc_handler(pub)]
impl Kitchen for Handler {
    async fn echo_bytes(&self, data: Vec<u8>) -> HandlerResult<Vec<u8>> {
        Ok(data)
    }

    async fn add(&self, a: i64, b: i64, c: i64) -> HandlerResult<i64> {
        Ok(a + b + c)
    }

    async fn describe(&self, shape: Shape, scale: Option<f64>) -> HandlerResult<String> {
        let scale = scale.unwrap_or(1.0);
        Ok(match shape {
            Shape::Circle { center, radius } => {
                format!(
                    "circle at ({}, {}) r={}",
                    center.x,
                    center.y,
                    radius * scale
                )
            }
            Shape::Polygon(points) => format!("polygon of {} points", points.len()),
            Shape::Empty => "empty".into(),
        })
    }

    async fn transform(
        &self,
        points: Vec<Point>,
        tags: HashMap<String, u32>,
    ) -> HandlerResult<(Vec<Point>, BTreeMap<u32, String>)> {
        let moved = points
            .into_iter()
            .map(|p| Point {
                x: p.x + 1,
                y: p.y - 1,
                label: p.label.map(|l| l.to_uppercase()),
            })
            .collect();
        let inverted = tags.into_iter().map(|(k, v)| (v, k)).collect();
        Ok((moved, inverted))
    }

    async fn maybe(&self, value: Option<Shape>) -> HandlerResult<Option<Shape>> {
        Ok(value)
    }

    async fn lookup(&self, key: String) -> HandlerResult<u32, AppError> {
        match key.as_str() {
            "one" => Ok(1),
            "" => Err(AppError::Invalid("empty key".into())),
            _ => Err(AppError::NotFound { key }),
        }
    }

    async fn fail(&self, message: String) -> HandlerResult<()> {
        Err(HandlerError::new(message))
    }

    async fn explode(&self) -> HandlerResult<u32> {
        panic!("handler exploded on purpose")
    }

    async fn increment(&self, amount: u32) -> HandlerResult<u32> {
        let mut state = self.state.write().await;
        state.counter += amount;
        let counter = state.counter;
        state.history.push(counter);
        Ok(counter)
    }

    async fn rename(&self, name: String) -> HandlerResult<()> {
        self.state.write().await.name = name;
        Ok(())
    }

    async fn sleep(&self, millis: u64) -> HandlerResult<u64> {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        Ok(millis)
    }

    async fn whoami(&self) -> HandlerResult<String> {
        Ok(self.connection.identity().subject().to_owned())
    }

    async fn subscribe_to(&self, topics: Vec<String>) -> HandlerResult<u32> {
        let mut added = 0;
        for topic in topics {
            if self
                .subscriptions
                .try_add(&Topic::from(topic))
                .map_err(|e| HandlerError::new(e.to_string()))?
            {
                added += 1;
            }
        }
        Ok(added)
    }

    async fn calls_seen(&self) -> HandlerResult<u64> {
        Ok(self.connection.stats().calls)
    }

    async fn hold(&self, data: Vec<u8>, millis: u64) -> HandlerResult<usize> {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        Ok(data.len())
    }
}

/// Starts a `Probe` server; returns its address, shutdown handle and a connected client.
pub async fn start_probe(
    adjust: impl FnOnce(ServerConfig) -> ServerConfig,
) -> (SocketAddr, ShutdownHandle, probe::ProbeClient) {
    let mut server = Server::new(
        adjust(ServerConfig::new_self_signed("127.0.0.1:0")),
        factory!(probe::ProbeHandler),
    );
    let addr = server.bind().expect("bind");
    let shutdown = server.shutdown_handle();
    tokio::spawn(server.run());
    let client = probe::ProbeClient::new_self_signed(addr.to_string(), Compression::default());
    client.connect().await.expect("connect");
    (addr, shutdown, client)
}

/// A client configuration for a server with certificate `certificate_pem` (for
/// `localhost`) reached at `addr`, e.g. through a proxy, over `transport`.
pub fn config_via(addr: SocketAddr, certificate_pem: &str, transport: Transport) -> ClientConfig {
    ClientConfig::new(addr.to_string())
        .with_ca_pem(certificate_pem.to_owned())
        .with_server_name("localhost")
        .with_transport(transport)
}

/// A server of one of the test services, running on loopback.
pub struct Running<E> {
    pub addr: SocketAddr,
    pub certificate_pem: String,
    pub shutdown: ShutdownHandle,
    pub emitter: EventEmitter<E>,
    pub notifier: TopicNotifier,
    pub stats: StatsHandle,
    /// The in-process way to the server.
    pub memory: protocol::memory::InMemory,
}

/// Binds a server of `factory`'s handlers with `config` and runs it in the background.
pub fn run<H: RpcHandler>(
    config: ServerConfig,
    factory: Factory<H>,
) -> Running<<H::Service as Service>::Event> {
    let certificate_pem = config.certificate_pem().expect("certificate");
    let mut server = Server::new(config, factory);
    let addr = server.bind().expect("bind");
    let running = Running {
        addr,
        certificate_pem,
        shutdown: server.shutdown_handle(),
        emitter: server.get_event_emitter(),
        notifier: server.get_topic_notifier(),
        stats: server.stats_handle(),
        memory: server.in_memory(),
    };
    tokio::spawn(server.run());
    running
}

/// A running server for tests.
pub struct TestServer {
    pub addr: SocketAddr,
    pub shutdown: ShutdownHandle,
    pub certificate_pem: String,
    pub stats: StatsHandle,
    /// The in-process way to the server.
    pub memory: protocol::memory::InMemory,
}

/// A way to reach a test server: over one of the network transports, or in-process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Quic,
    WebSocket,
    Memory,
}

impl TestServer {
    /// Starts a `Kitchen` server on an ephemeral loopback port.
    pub async fn start() -> Self {
        Self::start_with(|config| config).await
    }

    /// Starts a `Kitchen` server with an adjusted configuration.
    pub async fn start_with(adjust: impl FnOnce(ServerConfig) -> ServerConfig) -> Self {
        let config = adjust(ServerConfig::new_self_signed("127.0.0.1:0"));
        let certificate_pem = config.certificate_pem().expect("certificate");
        let mut server = Server::new(config, factory!(Handler));
        let addr = server.bind().expect("bind");
        let shutdown = server.shutdown_handle();
        let stats = server.stats_handle();
        let memory = server.in_memory();
        tokio::spawn(server.run());
        Self {
            addr,
            shutdown,
            certificate_pem,
            stats,
            memory,
        }
    }

    /// A client configuration reaching this server `via` a transport.
    pub fn config_for(&self, via: Via) -> ClientConfig {
        match via {
            Via::Quic => self.config().with_transport(Transport::Quic),
            Via::WebSocket => self.config().with_transport(Transport::WebSocket),
            Via::Memory => ClientConfig::in_memory(self.memory.clone()),
        }
    }

    /// A client reaching this server `via` a transport, connected.
    pub async fn client_for(&self, via: Via) -> KitchenClient {
        let client = KitchenClient::with_config(self.config_for(via));
        client.connect().await.expect("connect");
        client
    }

    /// A client over QUIC that trusts this server's certificate, connected.
    pub async fn client(&self) -> KitchenClient {
        self.client_over(Transport::Quic).await
    }

    /// A client over `transport` that trusts this server's certificate, connected.
    pub async fn client_over(&self, transport: Transport) -> KitchenClient {
        let client = KitchenClient::with_config(self.config().with_transport(transport));
        client.connect().await.expect("connect");
        client
    }

    /// A client configuration trusting this server's certificate.
    pub fn config(&self) -> ClientConfig {
        ClientConfig::new(self.addr.to_string()).with_ca_pem(self.certificate_pem.clone())
    }

    /// A client configuration for reaching this server at `addr` (e.g. a proxy) over
    /// `transport`.
    pub fn config_via(&self, addr: SocketAddr, transport: Transport) -> ClientConfig {
        config_via(addr, &self.certificate_pem, transport)
    }
}
