//! The QUIC transport: one bidirectional stream per call, state on a server-opened
//! unidirectional push stream.

mod session;
mod tls;

pub(crate) use session::QuicSession;
