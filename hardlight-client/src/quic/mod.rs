//! The QUIC transport: one bidirectional stream per call, state and events on a
//! server-opened unidirectional push stream.

mod session;
pub(crate) mod tls;

pub(crate) use session::{resolve, transport_failure, QuicSession};
