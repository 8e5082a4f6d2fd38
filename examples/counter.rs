//! A server and two clients in one process: typed calls, a typed error, the synced
//! connection state, and events — every change to the shared counter is published on the
//! `counter` topic, which the server's topic notifier watches.
//!
//! Run with `cargo run --example counter`.

use std::{
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use hardlight::*;

/// Published on the `counter` topic whenever a client changes the shared counter.
#[codable]
#[derive(Debug, Clone, PartialEq)]
enum CounterEvent {
    Changed { by: String, value: u32 },
}

/// What the counter service can do.
#[rpc(events = CounterEvent)]
trait Counter {
    /// Names this connection and subscribes it to the `counter` topic.
    async fn watch(&self, name: String) -> HandlerResult<()>;
    /// Adds `amount` and returns the new value.
    async fn increment(&self, amount: u32) -> HandlerResult<u32>;
    /// Subtracts `amount`; fails if the counter would go below zero.
    async fn decrement(&self, amount: u32) -> HandlerResult<u32, CounterError>;
    /// The current value.
    async fn get(&self) -> HandlerResult<u32>;
}

/// The handler's own error type: the client receives it typed.
#[codable]
#[derive(Debug, Clone, PartialEq)]
enum CounterError {
    /// The counter cannot go below zero.
    WouldUnderflow { current: u32, requested: u32 },
}

impl std::fmt::Display for CounterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::WouldUnderflow { current, requested } => {
                write!(f, "cannot subtract {requested} from {current}")
            }
        }
    }
}

/// Per-connection state, owned by the server and mirrored by the client.
#[connection_state]
struct State {
    name: String,
    last_op: String,
}

/// The counter every connection shares.
#[derive(Default)]
struct Shared {
    counter: AtomicU32,
}

fn topic() -> Topic {
    Topic::from("counter")
}

#[rpc_handler(app = Shared)]
impl Counter for Handler {
    async fn watch(&self, name: String) -> HandlerResult<()> {
        self.subscriptions.add(&topic());
        self.state.write().await.name = name;
        Ok(())
    }

    async fn increment(&self, amount: u32) -> HandlerResult<u32> {
        let value = self.app.counter.fetch_add(amount, Ordering::SeqCst) + amount;
        self.changed(format!("+{amount}"), value).await;
        Ok(value)
    }

    async fn decrement(&self, amount: u32) -> HandlerResult<u32, CounterError> {
        let update = |current: u32| current.checked_sub(amount);
        match self
            .app
            .counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, update)
        {
            Ok(previous) => {
                let value = previous - amount;
                self.changed(format!("-{amount}"), value).await;
                Ok(value)
            }
            Err(current) => Err(CounterError::WouldUnderflow {
                current,
                requested: amount,
            }),
        }
    }

    async fn get(&self) -> HandlerResult<u32> {
        Ok(self.app.counter.load(Ordering::SeqCst))
    }
}

impl Handler {
    /// Records the change in this connection's state and tells every watcher.
    async fn changed(&self, op: String, value: u32) {
        let mut state = self.state.write().await;
        state.last_op = op;
        let by = state.name.clone();
        drop(state);
        self.events
            .emit(&topic(), CounterEvent::Changed { by, value })
            .await;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();

    let mut server = Server::new(
        ServerConfig::new_self_signed("127.0.0.1:0"),
        factory!(Handler, Shared::default()),
    );
    let addr = server.bind()?;
    let mut topics = server.get_topic_notifier();
    let emitter = server.get_event_emitter();
    let shutdown = server.shutdown_handle();
    let running = tokio::spawn(server.run());
    println!("server listening on {addr} (QUIC on UDP, WebSocket on TCP)");

    let alice = CounterClient::new_self_signed(addr.to_string(), Compression::default());
    let bob = CounterClient::new_self_signed(addr.to_string(), Compression::default());
    alice.connect().await?;
    bob.connect().await?;
    let mut events = bob.subscribe().await?;
    alice.watch("alice".into()).await?;
    bob.watch("bob".into()).await?;
    // the first subscriber created the topic
    println!("[server] {:?}", topics.recv().await);

    let value = alice.increment(5).await?;
    println!(
        "[alice] increment(5) -> {value}; my state: {:?}",
        alice.state().await?
    );
    let value = alice.decrement(2).await?;
    println!("[alice] decrement(2) -> {value}");
    match alice.decrement(10).await {
        Err(RpcError::Handler(error)) => {
            println!("[alice] decrement(10) -> handler error: {error}")
        }
        other => return Err(format!("expected a handler error, got {other:?}").into()),
    }
    // the server itself can publish too, from any task
    emitter
        .emit(
            &topic(),
            CounterEvent::Changed {
                by: "the server".into(),
                value: bob.get().await?,
            },
        )
        .await;
    for _ in 0..3 {
        let event = events.recv().await?;
        println!("[bob] event on `{}`: {:?}", event.topic, event.payload);
    }

    alice.disconnect().await;
    bob.disconnect().await;
    // the last subscriber left: the topic is gone
    println!("[server] {:?}", topics.recv().await);
    shutdown.shutdown(Duration::from_secs(5)).await;
    running.await??;
    println!("done");
    Ok(())
}
