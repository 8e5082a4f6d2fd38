//! Store-and-forward to a recipient who is offline: a sender posts messages with a time
//! to live to bob's inbox while bob is not connected; bob connects later, fetches what is
//! still there and acks it. A message whose TTL ran out is gone, never delivered.
//!
//! Run with `cargo run --example inbox`.

use std::time::Duration;

use hardlight::*;

/// A message in an inbox.
#[codable]
#[derive(Debug, Clone, PartialEq)]
struct Message {
    from: String,
    text: String,
}

#[rpc(events = Message)]
trait Inbox {
    /// Posts `text` to `to`'s inbox, kept for `ttl_secs`; returns its position.
    async fn post(&self, to: String, text: String, ttl_secs: u64) -> HandlerResult<Position>;
    /// Starts delivering this connection's own inbox, from what it has not acked.
    async fn open(&self) -> HandlerResult<()>;
}

/// Per-connection state: whether the inbox is open.
#[connection_state]
struct State {
    open: bool,
}

#[rpc_handler]
impl Inbox for Handler {
    async fn post(&self, to: String, text: String, ttl_secs: u64) -> HandlerResult<Position> {
        let from = self.connection.identity().subject().to_owned();
        let options = EmitOptions::default().with_ttl(Duration::from_secs(ttl_secs));
        let stored = self
            .events
            .emit_durable(&inbox(&to), Message { from, text }, options)
            .await?;
        Ok(stored.position)
    }

    async fn open(&self) -> HandlerResult<()> {
        // the authenticated user reads their own inbox, as the consumer of their name
        let me = self.connection.identity().subject().to_owned();
        self.subscriptions
            .add_durable(&inbox(&me), &me, StartAt::AckFloor)
            .await?;
        self.state.write().await.open = true;
        Ok(())
    }
}

fn inbox(user: &str) -> Topic {
    Topic::from(format!("inbox/{user}"))
}

/// A client for `user` (the token is the user's name: a stand-in for real credentials).
fn client(addr: std::net::SocketAddr, certificate: &str, user: &str) -> InboxClient {
    InboxClient::with_config(
        ClientConfig::new(addr.to_string())
            .with_ca_pem(certificate.to_owned())
            .with_token(user.as_bytes().to_vec()),
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("hardlight-inbox-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = ServerConfig::new_self_signed("127.0.0.1:0")
        .with_durable(DurableConfig::new(dir.join("inbox.redb")))
        .with_authenticator(|request: AuthRequest| async move {
            let user = request.token.and_then(|t| String::from_utf8(t).ok());
            user.filter(|u| !u.is_empty())
                .map(Identity::new)
                .ok_or_else(|| AuthError::new("a user name is required"))
        });
    let certificate = config.certificate_pem().ok_or("no certificate")?;
    let mut server = Server::new(config, factory!(Handler));
    let addr = server.bind()?;
    let shutdown = server.shutdown_handle();
    tokio::spawn(server.run());

    // alice posts while bob is offline: one message for a day, one for 50 ms
    let alice = client(addr, &certificate, "alice");
    alice.connect().await?;
    let kept = alice
        .post("bob".into(), "lunch at noon?".into(), 86_400)
        .await?;
    println!("[alice] posted to bob's inbox at {kept}");
    let brief = alice.post("bob".into(), "knock knock".into(), 0).await?;
    println!("[alice] posted a message that expires at once, at {brief}");
    alice.disconnect().await;

    // later, bob connects and fetches what is still there
    tokio::time::sleep(Duration::from_millis(100)).await;
    let bob = client(addr, &certificate, "bob");
    bob.connect().await?;
    let mut messages = bob.durable().await?;
    bob.open().await?;
    let message = messages.recv().await?;
    println!(
        "[bob] {} says {:?} (attempt {}, at {})",
        message.payload.from, message.payload.text, message.attempt, message.position
    );
    message.ack()?;
    // a post after bob opened his inbox arrives while he is connected
    alice.connect().await?;
    alice.post("bob".into(), "see you".into(), 3600).await?;
    let next = messages.recv().await?;
    println!("[bob] {} says {:?}", next.payload.from, next.payload.text);
    next.ack()?;
    println!("[bob] the expired message never arrived");

    drop((alice, bob));
    shutdown.shutdown(Duration::from_secs(1)).await;
    std::fs::remove_dir_all(&dir)?;
    println!("done");
    Ok(())
}
