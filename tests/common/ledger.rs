//! A durable-topic service: handlers store numbered entries durably, attach the connection
//! to named consumers, and read dead letters.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use hardlight::*;

#[codable]
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub n: u64,
}

/// Why a ledger call was refused: the server's typed errors, by name.
#[codable]
#[derive(Debug, Clone, PartialEq)]
pub enum LedgerError {
    TopicFull,
    StoreFull,
    EpochMismatch { epoch: u64 },
    PositionAhead { last: Position },
    TooMany,
    Other(String),
}

impl std::fmt::Display for LedgerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

#[codable]
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StartFrom {
    AckFloor,
    After(Position),
    Newest,
}

#[rpc(state = LedgerState, events = Entry)]
pub trait Ledger {
    /// Stores entry `n` durably in `topic` (with `id` and a TTL of `ttl_ms`, if given).
    async fn append(
        &self,
        topic: String,
        n: u64,
        id: Option<String>,
        ttl_ms: Option<u64>,
    ) -> HandlerResult<(Position, bool), LedgerError>;
    /// Attaches this connection to `consumer` of `topic`; returns its ack floor.
    async fn consume(
        &self,
        topic: String,
        consumer: String,
        from: StartFrom,
    ) -> HandlerResult<Position, LedgerError>;
    /// Detaches `consumer` of `topic` from this connection.
    async fn release(&self, topic: String, consumer: String) -> HandlerResult<bool>;
    /// The dead letters of `topic`: (consumer, entry, attempts).
    async fn dead_letters(&self, topic: String) -> HandlerResult<Vec<(String, u64, u32)>>;
}

#[connection_state]
pub struct LedgerState {
    pub appended: u64,
}

#[rpc_handler(pub)]
impl Ledger for LedgerHandler {
    async fn append(
        &self,
        topic: String,
        n: u64,
        id: Option<String>,
        ttl_ms: Option<u64>,
    ) -> HandlerResult<(Position, bool), LedgerError> {
        let mut options = EmitOptions::default();
        if let Some(id) = id {
            options = options.with_id(id);
        }
        if let Some(ttl) = ttl_ms {
            options = options.with_ttl(Duration::from_millis(ttl));
        }
        match self
            .events
            .emit_durable(&Topic::from(topic), Entry { n }, options)
            .await
        {
            Ok(emitted) => Ok((emitted.position, emitted.duplicate)),
            Err(DurableError::TopicFull { .. }) => Err(LedgerError::TopicFull),
            Err(DurableError::StoreFull { .. }) => Err(LedgerError::StoreFull),
            Err(other) => Err(LedgerError::Other(other.to_string())),
        }
    }

    async fn consume(
        &self,
        topic: String,
        consumer: String,
        from: StartFrom,
    ) -> HandlerResult<Position, LedgerError> {
        let start = match from {
            StartFrom::AckFloor => StartAt::AckFloor,
            StartFrom::After(position) => StartAt::After(position),
            StartFrom::Newest => StartAt::Newest,
        };
        match self
            .subscriptions
            .add_durable(&Topic::from(topic), &consumer, start)
            .await
        {
            Ok(floor) => Ok(floor),
            Err(DurableSubscribeError::EpochMismatch { epoch, .. }) => {
                Err(LedgerError::EpochMismatch { epoch })
            }
            Err(DurableSubscribeError::PositionAhead { last, .. }) => {
                Err(LedgerError::PositionAhead { last })
            }
            Err(DurableSubscribeError::TooMany { .. }) => Err(LedgerError::TooMany),
            Err(other) => Err(LedgerError::Other(other.to_string())),
        }
    }

    async fn release(&self, topic: String, consumer: String) -> HandlerResult<bool> {
        Ok(self
            .subscriptions
            .remove_durable(&Topic::from(topic), &consumer))
    }

    async fn dead_letters(&self, topic: String) -> HandlerResult<Vec<(String, u64, u32)>> {
        let letters = self
            .events
            .dead_letters(&Topic::from(topic))
            .await
            .map_err(|e| HandlerError::new(e.to_string()))?;
        Ok(letters
            .into_iter()
            .map(|l| (l.consumer, l.event.n, l.attempts))
            .collect())
    }
}

/// A directory for a test's store, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "hardlight-{name}-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        Self(dir)
    }

    /// The store file in it.
    pub fn store(&self) -> PathBuf {
        self.0.join("events.redb")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running ledger server.
pub type LedgerServer = super::Running<Entry>;

impl LedgerServer {
    /// A ledger server storing in `store`, its durable configuration adjusted.
    pub async fn start(
        store: PathBuf,
        adjust: impl FnOnce(DurableConfig) -> DurableConfig,
    ) -> Self {
        let config = ServerConfig::new_self_signed("127.0.0.1:0")
            .with_durable(adjust(DurableConfig::new(store)));
        Self::start_with(config).await
    }

    /// A ledger server with `config`.
    pub async fn start_with(config: ServerConfig) -> Self {
        super::run(config, factory!(LedgerHandler))
    }

    /// A connected client over `transport`.
    pub async fn client(&self, transport: Transport) -> LedgerClient {
        connect(self.addr, &self.certificate_pem, transport).await
    }

    /// Stops the server and waits until it has stopped (its store is closed with it).
    pub async fn stop(self) {
        self.shutdown.shutdown(Duration::from_secs(5)).await;
    }
}

/// A ledger client connected to `addr` over `transport`, patient with a loaded machine.
pub async fn connect(
    addr: SocketAddr,
    certificate_pem: &str,
    transport: Transport,
) -> LedgerClient {
    let config = super::config_via(addr, certificate_pem, transport)
        .with_connect_timeout(Duration::from_secs(60));
    let client = LedgerClient::with_config(config);
    client.connect().await.expect("connect");
    client
}

/// The next durable event; panics after 60 s (only a hang gets there).
pub async fn next(events: &mut DurableSubscription<Entry>) -> DurableEvent<Entry> {
    tokio::time::timeout(Duration::from_secs(60), events.recv())
        .await
        .expect("a durable event within 60 s")
        .expect("a durable event")
}
