//! The QUIC transport: handshake on the first bidirectional stream, one bidirectional
//! stream per call, a server-opened unidirectional push stream.

mod call;
mod connection;
mod tls;

pub(crate) use connection::serve_connection;
pub(crate) use tls::quinn_config;

/// QUIC application close codes used by the server.
pub(crate) mod close {
    use quinn::VarInt;
    /// The handshake was rejected; the reason was sent in a `Reject` frame.
    pub(crate) const REJECTED: VarInt = VarInt::from_u32(0x10);
    /// The server shut down.
    pub(crate) const SHUTDOWN: VarInt = VarInt::from_u32(0x11);
    /// The peer broke the protocol outside a call.
    pub(crate) const PROTOCOL: VarInt = VarInt::from_u32(0x12);
    /// The client read events too slowly (slow-consumer policy `Disconnect`).
    pub(crate) const SLOW_CONSUMER: VarInt = VarInt::from_u32(0x13);
    /// A reconnecting client resumed this connection's session elsewhere.
    pub(crate) const TAKEN_OVER: VarInt = VarInt::from_u32(0x14);
}
