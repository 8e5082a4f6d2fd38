//! The QUIC transport: handshake on the first bidirectional stream, one bidirectional
//! stream per call, a server-opened unidirectional push stream.

mod accept;
mod link;
mod tls;
mod validation;

pub(crate) use accept::serve_connection;
pub(crate) use tls::quinn_config;
pub(crate) use validation::{validated, Unproven};
