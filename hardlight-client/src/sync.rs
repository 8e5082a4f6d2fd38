//! The lock helper, shared with the server.

pub(crate) use hardlight_core::sync::lock;
