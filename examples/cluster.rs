//! Three servers of one chat service joined on NATS, a client on each: everyone hears
//! everyone, whichever server they are connected to.
//!
//! Start a NATS server (`nats-server -a 127.0.0.1`), then run
//! `cargo run --example cluster --features nats`. It uses the NATS server at `NATS_URL`,
//! `nats://127.0.0.1:4222` by default.

use std::time::Duration;

use hardlight::*;

/// What travels on a room's topic.
#[codable]
#[derive(Debug, Clone, PartialEq)]
enum ChatEvent {
    Said { from: String, text: String },
}

#[rpc(events = ChatEvent)]
trait Chat {
    /// Joins `room` as `name`.
    async fn join(&self, room: String, name: String) -> HandlerResult<()>;
    /// Says `text` in the room.
    async fn say(&self, text: String) -> HandlerResult<()>;
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
        state.name = name;
        state.room = room;
        Ok(())
    }

    async fn say(&self, text: String) -> HandlerResult<()> {
        let state = self.state.read().await;
        let said = ChatEvent::Said {
            from: state.name.clone(),
            text,
        };
        // the same call as on a single server: the cluster carries it to the others
        self.events.emit(&state.room, said).await;
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    println!("NATS at {url}");

    let mut servers = Vec::new();
    for n in 1..=3 {
        let config = ServerConfig::new_self_signed("127.0.0.1:0")
            .with_cluster(ClusterConfig::nats(url.clone()).with_subject_prefix("chat-example"));
        let mut server = Server::new(config, factory!(Handler));
        let addr = server.bind()?;
        let stats = server.stats_handle();
        tokio::spawn(server.run());
        println!("server {n} on {addr}");
        servers.push((addr, stats));
    }

    // every server linked to NATS before anyone joins (a member who joins earlier is told
    // of a gap once the link is up: events from the other servers before it are missing)
    linked(&servers, 0, &url).await?;
    let names = ["ada", "grace", "linus"];
    let mut members = Vec::new();
    for (name, (addr, _)) in names.iter().zip(&servers) {
        let client = ChatClient::new_self_signed(addr.to_string(), Compression::default());
        client.connect().await?;
        let events = client.subscribe().await?;
        client.join("lobby".into(), (*name).into()).await?;
        members.push((*name, client, events));
    }
    // each server subscribes to the room in NATS once a member joined it there
    linked(&servers, 1, &url).await?;

    for (name, client, _) in &members {
        client.say(format!("hello from {name}")).await?;
    }
    for (name, _, events) in &mut members {
        let mut heard = 0;
        while heard < names.len() {
            match tokio::time::timeout(Duration::from_secs(30), events.recv()).await? {
                Ok(event) => {
                    let ChatEvent::Said { from, text } = event.payload;
                    println!("[{name}] {from}: {text}");
                    heard += 1;
                }
                Err(notice) => println!("[{name}] {notice}"),
            }
        }
    }
    for (index, (_, stats)) in servers.iter().enumerate() {
        if let Some(link) = stats.snapshot().cluster {
            println!(
                "server {}: {} events forwarded, {} received from the others",
                index + 1,
                link.events_forwarded,
                link.events_received
            );
        }
    }
    println!("done");
    Ok(())
}

/// Waits until every server is linked to NATS with `topics` topics subscribed there.
async fn linked(
    servers: &[(std::net::SocketAddr, StatsHandle)],
    topics: u64,
    url: &str,
) -> Result<(), String> {
    let all = async {
        for (_, stats) in servers {
            while !stats
                .snapshot()
                .cluster
                .is_some_and(|c| c.connected && c.topics_subscribed == topics)
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), all)
        .await
        .map_err(|_| format!("no NATS at {url}: start nats-server, or set NATS_URL"))
}
