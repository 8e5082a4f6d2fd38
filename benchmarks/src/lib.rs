//! HardLight's benchmark suite: the same workloads against HardLight (QUIC and WebSocket),
//! the transport floors (raw quinn, raw TLS over TCP) and, with the `peers` feature, tonic
//! (TLS and h2c) and tarpc. See `BENCHMARKS.md` at the repository root.

// A benchmark aborts on any failure: a partial measurement would be misleading.
#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod child;
pub mod report;
pub mod stats;
pub mod systems;
pub mod targets;
pub mod tls;
pub mod workloads;
