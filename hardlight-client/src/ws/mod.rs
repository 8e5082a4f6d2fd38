//! The WebSocket transport: the same frames, one per binary message, calls multiplexed by
//! id.

mod native;

pub(crate) use native::WsSession;
