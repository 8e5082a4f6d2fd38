//! A chat room: several clients join a topic, post messages through an RPC, and every
//! member receives them live as events. The connection state holds each member's name.
//!
//! Run with `cargo run --example chat`.

use std::time::Duration;

use hardlight::*;

/// What travels on the room's topic.
#[codable]
#[derive(Debug, Clone, PartialEq)]
enum ChatEvent {
    Joined { name: String },
    Message { from: String, text: String },
    Left { name: String },
}

#[rpc(events = ChatEvent)]
trait Chat {
    /// Joins `room` as `name`.
    async fn join(&self, room: String, name: String) -> HandlerResult<()>;
    /// Posts `text` to the room; returns how many members it reached.
    async fn say(&self, text: String) -> HandlerResult<usize>;
    /// Leaves the room.
    async fn leave(&self) -> HandlerResult<()>;
}

#[connection_state]
struct State {
    name: String,
    room: Topic,
}

#[rpc_handler]
impl Chat for Handler {
    async fn join(&self, room: String, name: String) -> HandlerResult<()> {
        let room = Topic::from(room);
        self.subscriptions.add(&room);
        let mut state = self.state.write().await;
        state.name = name.clone();
        state.room = room.clone();
        drop(state);
        self.events.emit(&room, ChatEvent::Joined { name }).await;
        Ok(())
    }

    async fn say(&self, text: String) -> HandlerResult<usize> {
        let state = self.state.read().await;
        if state.room.is_empty() {
            return Err(HandlerError::new("join a room first"));
        }
        let event = ChatEvent::Message {
            from: state.name.clone(),
            text,
        };
        Ok(self.events.emit(&state.room, event).await)
    }

    async fn leave(&self) -> HandlerResult<()> {
        let state = self.state.read().await;
        self.subscriptions.remove(&state.room);
        let name = state.name.clone();
        self.events
            .emit(&state.room, ChatEvent::Left { name })
            .await;
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut server = Server::new(
        ServerConfig::new_self_signed("127.0.0.1:0"),
        factory!(Handler),
    );
    let addr = server.bind()?.to_string();
    let mut topics = server.get_topic_notifier();
    let shutdown = server.shutdown_handle();
    let running = tokio::spawn(server.run());
    tokio::spawn(async move {
        while let Some(change) = topics.recv().await {
            println!("[server] topic change: {change:?}");
        }
    });

    let names = ["ada", "grace", "linus"];
    let mut members = Vec::new();
    for name in names {
        let client = ChatClient::new_self_signed(addr.clone(), Compression::default());
        client.connect().await?;
        let mut events = client.subscribe().await?;
        client.join("lobby".into(), name.into()).await?;
        println!("[{name}] joined; my state: {:?}", client.state().await?);
        // each member prints what it receives until the room goes quiet
        let printer = tokio::spawn(async move {
            let mut seen = 0;
            while let Ok(Ok(event)) =
                tokio::time::timeout(Duration::from_millis(500), events.recv()).await
            {
                println!("[{name}] <{}> {:?}", event.topic, event.payload);
                seen += 1;
            }
            seen
        });
        members.push((name, client, printer));
    }

    for (name, client, _) in &members {
        let reached = client.say(format!("hello from {name}")).await?;
        println!("[{name}] said hello to {reached} members");
    }
    members[2].1.leave().await?;

    for (name, client, printer) in members {
        let seen = printer.await?;
        println!("[{name}] received {seen} events");
        client.disconnect().await;
    }
    shutdown.shutdown(Duration::from_secs(5)).await;
    running.await??;
    Ok(())
}
