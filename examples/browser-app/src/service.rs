//! The service of the browser example, shared as source with the example's server.

use hardlight::*;

/// A line in the room.
#[codable]
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub from: String,
    pub text: String,
}

#[rpc(state = Visitor, events = Line)]
pub trait Lobby {
    /// Enters the lobby as `name`.
    async fn enter(&self, name: String) -> HandlerResult<u32>;
    /// Says something to everyone in the lobby.
    async fn say(&self, text: String) -> HandlerResult<()>;
}

/// Per-connection state, mirrored in the page.
#[connection_state]
pub struct Visitor {
    pub name: String,
    pub said: u32,
}
