//! The server: binds the QUIC endpoint and accepts connections until shut down.

use std::{
    net::{SocketAddr, ToSocketAddrs},
    sync::Arc,
    time::Duration,
};

use tokio::{task::JoinSet, time::timeout};
use tracing::{info, info_span, Instrument};

use crate::{
    config::ServerConfig,
    connection::{serve_connection, ServerShared},
    error::ServerError,
    handler::{EventOf, Factory, Handler},
    shutdown::{ShutdownHandle, Signals},
    tls::quinn_config,
    topics::{EventEmitter, Hub, TopicNotifier},
};

/// A HardLight server for handlers of type `H`.
///
/// ```no_run
/// # use hardlight_server::{Server, ServerConfig, Factory, Handler};
/// # async fn demo<H: Handler>(factory: Factory<H>) -> Result<(), hardlight_server::ServerError> {
/// let mut server = Server::new(ServerConfig::new_self_signed("127.0.0.1:0"), factory);
/// let addr = server.bind()?;            // optional: learn an ephemeral port before running
/// let shutdown = server.shutdown_handle();
/// tokio::spawn(server.run());
/// println!("listening on {addr}");
/// shutdown.shutdown(std::time::Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
pub struct Server<H: Handler> {
    config: ServerConfig,
    factory: Factory<H>,
    endpoint: Option<quinn::Endpoint>,
    signals: Arc<Signals>,
    hub: Arc<Hub>,
}

impl<H: Handler> Server<H> {
    /// A server that will serve `factory`'s handlers with `config`; nothing is bound yet.
    pub fn new(config: ServerConfig, factory: Factory<H>) -> Self {
        Self {
            config,
            factory,
            endpoint: None,
            signals: Signals::new(),
            hub: Hub::new(),
        }
    }

    /// An emitter of events to this server's topics; call as often as needed.
    pub fn get_event_emitter(&self) -> EventEmitter<EventOf<H>> {
        EventEmitter::new(
            Arc::clone(&self.hub),
            self.config.compression,
            self.config.limits.max_message_size,
        )
    }

    /// Receives [`TopicNotification::Created`](crate::TopicNotification) when a topic
    /// gains its first subscriber and `Removed` when it loses its last; call as often as
    /// needed, each notifier receives every notification.
    pub fn get_topic_notifier(&self) -> TopicNotifier {
        self.hub.notifier()
    }

    /// Binds the UDP socket now (must be called within a tokio runtime) and returns the
    /// local address, e.g. to learn the port chosen for `:0`. `run()` binds if this was
    /// not called.
    pub fn bind(&mut self) -> Result<SocketAddr, ServerError> {
        if let Some(endpoint) = &self.endpoint {
            return local_addr(endpoint);
        }
        let limits = &self.config.limits;
        if u64::from(limits.max_message_size) > limits.max_inflight_bytes {
            return Err(ServerError::Config(format!(
                "max_message_size ({}) exceeds max_inflight_bytes ({}); a call of the maximum size could never be read",
                limits.max_message_size, limits.max_inflight_bytes
            )));
        }
        let addr = resolve(&self.config.addr)?;
        let endpoint = quinn::Endpoint::server(quinn_config(&self.config)?, addr)
            .map_err(|source| ServerError::Bind { addr, source })?;
        let bound = local_addr(&endpoint)?;
        self.endpoint = Some(endpoint);
        Ok(bound)
    }

    /// A handle that shuts this server down gracefully.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            signals: Arc::clone(&self.signals),
        }
    }

    /// Serves until shut down through a [`ShutdownHandle`].
    pub async fn run(mut self) -> Result<(), ServerError> {
        self.bind()?;
        let Some(endpoint) = self.endpoint.take() else {
            return Err(ServerError::Config("endpoint missing after bind".into()));
        };
        let addr = local_addr(&endpoint)?;
        let shared = Arc::new(ServerShared {
            limits: self.config.limits.clone(),
            compression: self.config.compression,
            signals: Arc::clone(&self.signals),
            hub: Arc::clone(&self.hub),
            slow_consumer: self.config.slow_consumer,
        });
        let span = info_span!("server", %addr);
        async {
            info!("listening");
            let mut connections = JoinSet::new();
            let mut shutdown = self.signals.deadline.subscribe();
            loop {
                tokio::select! {
                    incoming = endpoint.accept() => match incoming {
                        Some(incoming) => {
                            connections.spawn(serve_connection(incoming, self.factory.clone(), Arc::clone(&shared)));
                        }
                        None => break,
                    },
                    _ = shutdown.wait_for(Option::is_some) => break,
                    Some(_) = connections.join_next() => {}
                }
            }
            info!(connections = connections.len(), "shutting down");
            endpoint.set_server_config(None);
            while connections.join_next().await.is_some() {}
            let _ = timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
            info!("stopped");
        }
        .instrument(span)
        .await;
        self.signals.finished.send_replace(true);
        Ok(())
    }
}

fn resolve(addr: &str) -> Result<SocketAddr, ServerError> {
    addr.to_socket_addrs()
        .map_err(|e| ServerError::Address {
            addr: addr.to_owned(),
            reason: e.to_string(),
        })?
        .next()
        .ok_or_else(|| ServerError::Address {
            addr: addr.to_owned(),
            reason: "resolves to no address".into(),
        })
}

fn local_addr(endpoint: &quinn::Endpoint) -> Result<SocketAddr, ServerError> {
    endpoint
        .local_addr()
        .map_err(|e| ServerError::Config(format!("cannot read the bound address: {e}")))
}
