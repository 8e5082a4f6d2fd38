//! The lock helpers, shared with the client.

pub(crate) use hardlight_core::sync::{lock, read, write};
