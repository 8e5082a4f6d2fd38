//! The QUIC transport: handshake on the first bidirectional stream, which stays open as
//! the call channel; calls also on bidirectional streams of their own; a server-opened
//! unidirectional push stream.

mod accept;
mod link;
mod tls;
mod validation;

pub(crate) use accept::serve_connection;
pub(crate) use tls::quinn_config;
pub(crate) use validation::{validated, Unproven};
