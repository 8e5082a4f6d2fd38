//! A small service exercising calls, typed errors, state, events, durable events and
//! streaming calls from the browser.
//! Shared as source with the native test that serves it.

use hardlight::*;

/// What is published to a room, or stored in the durable `notes` topic.
#[codable]
#[derive(Debug, Clone, PartialEq)]
pub enum Shout {
    /// Someone said something.
    Said { from: String, text: String },
    /// A note kept until read.
    Note(String),
}

/// The handler's own error.
#[codable]
#[derive(Debug, Clone, PartialEq)]
pub enum BrowserError {
    /// Shouts are limited in length.
    TooLong { limit: u32 },
}

impl std::fmt::Display for BrowserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLong { limit } => write!(f, "shouts are at most {limit} characters"),
        }
    }
}

#[rpc(state = BrowserState, events = Shout)]
pub trait Room {
    /// Adds two numbers.
    async fn add(&self, a: i32, b: i32) -> HandlerResult<i32>;
    /// Joins `room` as `name` (subscribes this connection to the room's topic).
    async fn join(&self, room: String, name: String) -> HandlerResult<()>;
    /// Publishes `text` to the room; returns how many shouts this connection made.
    async fn shout(&self, text: String) -> HandlerResult<u32, BrowserError>;
    /// Stores `text` in the durable `notes` topic; returns its position.
    async fn note(&self, text: String) -> HandlerResult<Position>;
    /// Attaches this connection to the `notes` consumer `reader`; returns its ack floor.
    async fn read_notes(&self) -> HandlerResult<Position>;
    /// Emits an unreliable `Said` from "wave" to the connection's room, then a reliable
    /// `Note("waved")` after it.
    async fn wave(&self) -> HandlerResult<()>;
    /// Streams `chunks` chunks of 64 KiB.
    async fn bulk(&self, chunks: u32) -> HandlerResult<Streaming<Vec<u8>>>;
    /// Streams 1 to `to`, setting the state's `counted` to each number before it goes.
    async fn count_to(&self, to: u32) -> HandlerResult<Streaming<u32>>;
    /// The total length of the client's words.
    async fn measure(&self, words: Streaming<String>) -> HandlerResult<u32>;
    /// Each of the client's words in upper case, as it comes.
    async fn shout_back(&self, words: Streaming<String>) -> HandlerResult<Streaming<String>>;
}

/// Per-connection state, mirrored in the browser.
#[connection_state]
pub struct BrowserState {
    pub name: String,
    pub room: String,
    pub shouts: u32,
    pub counted: u32,
}
