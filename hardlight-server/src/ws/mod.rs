//! The WebSocket transport, on TCP port P beside QUIC on UDP port P: the same frames, one
//! per binary message, calls multiplexed by id.

mod bounded;
mod connection;
mod listener;

pub(crate) use listener::{serve_tcp, tls_acceptor};

/// WebSocket close codes the server uses.
pub(crate) mod close {
    /// The server shut down.
    pub(crate) const GOING_AWAY: u16 = 1001;
    /// The peer broke the protocol (a frame that does not parse, a bad handshake).
    pub(crate) const PROTOCOL: u16 = 1002;
    /// A text message: HardLight speaks binary only.
    pub(crate) const UNSUPPORTED_DATA: u16 = 1003;
    /// The handshake was rejected, or the client read its events too slowly.
    pub(crate) const POLICY: u16 = 1008;
    /// A message above the size limit.
    pub(crate) const TOO_BIG: u16 = 1009;
}
