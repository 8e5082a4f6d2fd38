//! The QUIC transport: one bidirectional stream per call, state and events on a
//! server-opened unidirectional push stream.

mod connection;
pub(crate) mod tls;

pub(crate) use connection::{resolve, transport_failure, QuicConnection};
