//! The QUIC transport: small calls multiplexed on the call channel, larger ones on a
//! bidirectional stream each, state and events on a server-opened unidirectional push
//! stream.

mod connection;
pub(crate) mod tls;

pub(crate) use connection::{resolve, transport_failure, QuicConnection, QuicItems, QuicSender};
pub(crate) use tls::QuicTls;
