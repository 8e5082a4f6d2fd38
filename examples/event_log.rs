//! A durable event log with namespaces: a token grants a client its namespaces; the client
//! fetches a namespace's events and acks each one it has processed. The server is then
//! restarted on the same store, and the events the client had not acked are delivered
//! again, marked as redeliveries, while the acked ones are not.
//!
//! Run with `cargo run --example event_log`.

use std::{path::Path, time::Duration};

use hardlight::*;

/// An event in a namespace's log.
#[codable]
#[derive(Debug, Clone, PartialEq)]
struct LogEvent {
    kind: String,
    detail: String,
}

/// Why a call was refused.
#[codable]
#[derive(Debug, Clone, PartialEq)]
enum LogError {
    /// The token does not grant this namespace.
    Forbidden { namespace: String },
    /// The store refused or failed.
    Store(String),
}

impl std::fmt::Display for LogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

#[rpc(events = LogEvent)]
trait EventLog {
    /// Appends an event to `namespace`'s log.
    async fn publish(
        &self,
        namespace: String,
        event: LogEvent,
    ) -> HandlerResult<Position, LogError>;
    /// Delivers `namespace`'s events to this connection, from what it has not acked.
    async fn fetch(&self, namespace: String) -> HandlerResult<Position, LogError>;
}

/// Per-connection state: the namespaces this connection fetches.
#[connection_state]
struct State {
    fetching: Vec<String>,
}

/// What a token grants.
struct Grants {
    namespaces: Vec<String>,
}

#[rpc_handler]
impl EventLog for Handler {
    async fn publish(
        &self,
        namespace: String,
        event: LogEvent,
    ) -> HandlerResult<Position, LogError> {
        self.allowed(&namespace)?;
        let stored = self
            .events
            .emit_durable(&log(&namespace), event, EmitOptions::default())
            .await
            .map_err(|e| LogError::Store(e.to_string()))?;
        Ok(stored.position)
    }

    async fn fetch(&self, namespace: String) -> HandlerResult<Position, LogError> {
        self.allowed(&namespace)?;
        // one consumer per client and namespace: its acks are its progress
        let consumer = format!("{}:{namespace}", self.connection.identity().subject());
        let floor = self
            .subscriptions
            .add_durable(&log(&namespace), &consumer, StartAt::AckFloor)
            .await
            .map_err(|e| LogError::Store(e.to_string()))?;
        self.state.write().await.fetching.push(namespace);
        Ok(floor)
    }
}

impl Handler {
    fn allowed(&self, namespace: &str) -> Result<(), LogError> {
        let grants = self.connection.identity().claims::<Grants>();
        if grants.is_some_and(|g| g.namespaces.iter().any(|n| n == namespace)) {
            Ok(())
        } else {
            Err(LogError::Forbidden {
                namespace: namespace.to_owned(),
            })
        }
    }
}

fn log(namespace: &str) -> Topic {
    Topic::from(format!("log/{namespace}"))
}

/// Starts a server on `store` with certificate and key `identity`; returns its address and
/// its shutdown handle.
async fn start(
    store: &Path,
    (cert, key): &(String, String),
) -> Result<(std::net::SocketAddr, ShutdownHandle), Box<dyn std::error::Error>> {
    let config = ServerConfig::from_pem("127.0.0.1:0", cert.as_bytes(), key.as_bytes())?
        .with_durable(DurableConfig::new(store).with_ack_wait(Duration::from_secs(30)))
        .with_authenticator(|request: AuthRequest| async move {
            // a token registry: "worker-token" reads and writes `orders` and `audit`
            match request.token.as_deref() {
                Some(b"worker-token") => Ok(Identity::new("worker").with_claims(Grants {
                    namespaces: vec!["orders".into(), "audit".into()],
                })),
                _ => Err(AuthError::new("unknown token")),
            }
        });
    let mut server = Server::new(config, factory!(Handler));
    let addr = server.bind()?;
    let shutdown = server.shutdown_handle();
    tokio::spawn(server.run());
    Ok((addr, shutdown))
}

/// A client of the server at `addr`, with the worker's token.
fn worker(addr: std::net::SocketAddr, cert: &str) -> EventLogClient {
    EventLogClient::with_config(
        ClientConfig::new(addr.to_string())
            .with_ca_pem(cert.to_owned())
            .with_token(b"worker-token".to_vec()),
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("hardlight-event-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store = dir.join("log.redb");
    // one certificate for both runs of the server, so that the client trusts both
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])?;
    let identity = (certified.cert.pem(), certified.key_pair.serialize_pem());
    let (addr, shutdown) = start(&store, &identity).await?;
    let worker = self::worker(addr, &identity.0);
    worker.connect().await?;
    for (kind, detail) in [
        ("created", "order 1"),
        ("paid", "order 1"),
        ("shipped", "order 1"),
    ] {
        let event = LogEvent {
            kind: kind.into(),
            detail: detail.into(),
        };
        worker.publish("orders".into(), event).await?;
    }
    match worker
        .publish(
            "payroll".into(),
            LogEvent {
                kind: "x".into(),
                detail: "y".into(),
            },
        )
        .await
    {
        Err(RpcError::Handler(LogError::Forbidden { namespace })) => {
            println!("[worker] may not publish to {namespace}")
        }
        other => println!("[worker] unexpected: {other:?}"),
    }

    let mut events = worker.durable().await?;
    worker.fetch("orders".into()).await?;
    // process two of the three events, then the server goes down
    for _ in 0..2 {
        let event = events.recv().await?;
        println!(
            "[worker] processed {} {} (attempt {})",
            event.payload.kind, event.payload.detail, event.attempt
        );
        event.ack()?;
    }
    let unprocessed = events.recv().await?;
    println!(
        "[worker] received {} but crashed before processing it",
        unprocessed.payload.kind
    );
    // a call after the acks is read after them: they are applied
    worker.fetch("audit".into()).await?;
    drop((events, worker));
    shutdown.shutdown(Duration::from_secs(1)).await;
    println!("[server] restarted on the same store");

    let (addr, shutdown) = start(&store, &identity).await?;
    let worker = self::worker(addr, &identity.0);
    worker.connect().await?;
    let mut events = worker.durable().await?;
    worker.fetch("orders".into()).await?;
    let again = events.recv().await?;
    println!(
        "[worker] redelivered: {} {} (attempt {}, redelivery: {}, at {})",
        again.payload.kind,
        again.payload.detail,
        again.attempt,
        again.is_redelivery(),
        again.position
    );
    again.ack()?;

    drop((events, worker));
    shutdown.shutdown(Duration::from_secs(1)).await;
    std::fs::remove_dir_all(&dir)?;
    println!("done");
    Ok(())
}
