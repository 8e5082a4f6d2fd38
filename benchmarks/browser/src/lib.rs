//! The service the browser benchmark calls; the native side of the benchmark serves it.

use hardlight::*;

/// No state.
#[connection_state]
pub struct State {}

/// Echoes bytes.
#[rpc]
pub trait Echo {
    /// Returns `data`.
    async fn echo(&self, data: Vec<u8>) -> HandlerResult<Vec<u8>>;
}
