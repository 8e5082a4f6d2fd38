//! The QUIC transport: handshake on the first bidirectional stream, which stays open as
//! the call channel; calls also on bidirectional streams of their own; a server-opened
//! unidirectional push stream; unreliable events as datagrams. The same, marked, in a
//! WebTransport session (ALPN `h3`) on the same endpoint.

mod accept;
mod link;
mod session;
mod socket;
mod tls;
mod validation;
mod webtransport;

pub(crate) use accept::serve_connection;
pub(crate) use session::Datagrams;
pub(crate) use socket::bind_udp;
pub(crate) use tls::quinn_config;
pub(crate) use validation::{validated, Unproven};
