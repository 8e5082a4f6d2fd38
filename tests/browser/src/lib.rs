//! The service the browser test uses; the native side of the test serves it.

pub mod service;
