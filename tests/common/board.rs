//! A pub/sub service: handlers subscribe their connection to topics and publish notes.

use std::net::SocketAddr;

use hardlight::*;

#[codable]
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    /// Which emitter sent it.
    pub from: u32,
    /// Position in that emitter's sequence.
    pub seq: u64,
    pub text: String,
}

#[rpc(state = BoardState, events = Note)]
pub trait Board {
    /// Subscribes this connection to `topic`.
    async fn join(&self, topic: String) -> HandlerResult<bool>;
    /// Subscribes this connection to `topic`, given as bytes.
    async fn join_bytes(&self, topic: Vec<u8>) -> HandlerResult<bool>;
    /// Unsubscribes this connection from `topic`.
    async fn leave(&self, topic: String) -> HandlerResult<bool>;
    /// Publishes `note` on `topic`; returns how many connections it was queued for.
    async fn post(&self, topic: String, note: Note) -> HandlerResult<usize>;
}

#[connection_state]
pub struct BoardState {
    pub joined: Vec<String>,
}

#[rpc_handler(pub)]
impl Board for BoardHandler {
    async fn join(&self, topic: String) -> HandlerResult<bool> {
        let added = self.subscriptions.add(&Topic::from(topic.as_str()));
        if added {
            self.state.write().await.joined.push(topic);
        }
        Ok(added)
    }

    async fn join_bytes(&self, topic: Vec<u8>) -> HandlerResult<bool> {
        Ok(self.subscriptions.add(&Topic::from(topic)))
    }

    async fn leave(&self, topic: String) -> HandlerResult<bool> {
        let removed = self.subscriptions.remove(&Topic::from(topic.as_str()));
        self.state.write().await.joined.retain(|t| *t != topic);
        Ok(removed)
    }

    async fn post(&self, topic: String, note: Note) -> HandlerResult<usize> {
        Ok(self.events.emit(&Topic::from(topic), note).await)
    }
}

/// A running board server.
pub type BoardServer = super::Running<Note>;

impl BoardServer {
    /// The next topic change; panics after 60 s (only a hang gets there).
    pub async fn next_change(&mut self) -> TopicNotification {
        tokio::time::timeout(std::time::Duration::from_secs(60), self.notifier.recv())
            .await
            .expect("a topic change within 60 s")
            .expect("notifier closed")
    }

    pub async fn start(adjust: impl FnOnce(ServerConfig) -> ServerConfig) -> Self {
        let config = adjust(ServerConfig::new_self_signed("127.0.0.1:0"));
        super::run(config, factory!(BoardHandler))
    }

    /// A client configuration for reaching this server at `addr` (e.g. through a proxy).
    pub fn config_via(&self, addr: SocketAddr, transport: Transport) -> ClientConfig {
        super::config_via(addr, &self.certificate_pem, transport)
    }

    /// A connected client over QUIC, patient enough for a loaded machine.
    pub async fn client(&self) -> BoardClient {
        self.client_via(Transport::Quic).await
    }

    /// A connected client over `transport`, patient enough for a loaded machine.
    pub async fn client_via(&self, transport: Transport) -> BoardClient {
        let config = self
            .config_via(self.addr, transport)
            .with_connect_timeout(std::time::Duration::from_secs(60));
        let client = BoardClient::with_config(config);
        client.connect().await.expect("connect");
        client
    }

    /// A connected client subscribed (by its handler) to `topic`, with its event stream.
    pub async fn subscriber(&self, topic: &str) -> (BoardClient, Subscription<Note>) {
        self.subscriber_via(Transport::Quic, &[topic]).await
    }

    /// A client connected over `transport`, its event stream open, then subscribed (by its
    /// handler) to each of `topics`.
    pub async fn subscriber_via(
        &self,
        transport: Transport,
        topics: &[&str],
    ) -> (BoardClient, Subscription<Note>) {
        let client = self.client_via(transport).await;
        let events = client.subscribe().await.expect("subscribe");
        for topic in topics {
            assert!(client.join((*topic).to_owned()).await.expect("join"));
        }
        (client, events)
    }
}

/// A note from emitter `from` numbered `seq`.
pub fn note(from: u32, seq: u64) -> Note {
    Note {
        from,
        seq,
        text: format!("note {seq} from {from}"),
    }
}
