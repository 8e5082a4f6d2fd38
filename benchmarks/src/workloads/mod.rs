//! The workloads. Each takes connected systems and returns one round's figures.

pub mod closed_loop;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod durable;
pub mod fanout;
pub mod handshakes;
pub mod idle;
pub mod instructions;
pub mod lossy;
pub mod open_loop;
pub mod quic_features;
pub mod streaming;
