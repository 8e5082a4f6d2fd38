//! The WebSocket transport, on TCP port P beside QUIC on UDP port P: the same frames, one
//! or more per binary message, calls multiplexed by id.

mod bounded;
mod link;
mod listener;

pub(crate) use listener::{serve_memory, serve_tcp, tls_acceptor, MEMORY_PEER};
