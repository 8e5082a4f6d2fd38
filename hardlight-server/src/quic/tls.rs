//! The QUIC endpoint configuration built from a [`ServerConfig`].

use std::sync::Arc;

use hardlight_core::{handshake::alpn, Limits, PROTOCOL_VERSION};
use quinn::{crypto::rustls::QuicServerConfig, IdleTimeout, VarInt};

use crate::{
    config::ServerConfig,
    error::{ServerError, TlsError},
    limits::ServerLimits,
};

/// Per-stream receive window: large enough for multi-MiB payloads at loopback speed.
const STREAM_WINDOW: u32 = 1 << 20;

pub(crate) fn quinn_config(config: &ServerConfig) -> Result<quinn::ServerConfig, ServerError> {
    let mut tls = config.rustls(alpn(PROTOCOL_VERSION))?;
    tls.max_early_data_size = 0;
    let crypto = QuicServerConfig::try_from(tls).map_err(TlsError::Quic)?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(Arc::new(transport(&config.limits, &config.server_limits)?));
    Ok(server)
}

/// Stream limits chosen with memory in mind: the call channel and calls on streams of
/// their own are bidirectional streams, capped at one more than `max_call_streams`; clients open no unidirectional streams; the connection-wide
/// receive window caps what one peer can make the server buffer in the transport.
fn transport(
    limits: &Limits,
    server_limits: &ServerLimits,
) -> Result<quinn::TransportConfig, ServerError> {
    let mut transport = quinn::TransportConfig::default();
    let idle = IdleTimeout::try_from(limits.idle_timeout())
        .map_err(|_| ServerError::IdleTimeoutTooLarge(limits.idle_timeout()))?;
    let inflight = server_limits.max_inflight_bytes();
    let receive_window = u64::from(STREAM_WINDOW).max(inflight.min(16 << 20));
    transport
        .max_concurrent_bidi_streams(VarInt::from_u32(
            server_limits.max_call_streams().saturating_add(1),
        ))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .stream_receive_window(VarInt::from_u32(STREAM_WINDOW))
        .receive_window(VarInt::from_u64(receive_window).unwrap_or(VarInt::MAX))
        .send_window(receive_window)
        .max_idle_timeout(Some(idle))
        .keep_alive_interval(Some(limits.keep_alive()))
        // HardLight sends no unreliable datagrams: reserve no buffers for them
        .datagram_receive_buffer_size(None)
        .datagram_send_buffer_size(0);
    Ok(transport)
}
