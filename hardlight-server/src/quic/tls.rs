//! The QUIC endpoint configuration built from a [`ServerConfig`].

use std::sync::Arc;

use hardlight_core::{handshake::alpn, PROTOCOL_VERSION};
use quinn::{crypto::rustls::QuicServerConfig, IdleTimeout, VarInt};

use super::webtransport;
use crate::{
    config::ServerConfig,
    error::{ServerError, TlsError},
};

/// Unreliable events waiting to go out as datagrams, per connection, before the oldest
/// is dropped.
const DATAGRAM_SEND_BUFFER: usize = 64 * 1024;

/// Datagrams from a client held, in bytes (it has no reason to send any).
const DATAGRAM_RECEIVE_BUFFER: usize = 1200;

/// TLS sessions kept for resumption and 0-RTT, server-wide (a few hundred bytes each);
/// beyond it the oldest are forgotten, and their clients reconnect in one round trip.
const TLS_SESSIONS: usize = 4096;

/// The unidirectional streams an HTTP/3 client keeps open: control, QPACK encoder and
/// decoder.
const H3_CLIENT_STREAMS: u32 = 3;

/// Per-stream receive window: large enough for multi-MiB payloads at loopback speed.
const STREAM_WINDOW: u32 = 1 << 20;

pub(crate) fn quinn_config(config: &ServerConfig) -> Result<quinn::ServerConfig, ServerError> {
    let mut tls = config.rustls(alpn(PROTOCOL_VERSION))?;
    if config.webtransport {
        tls.alpn_protocols.push(webtransport::ALPN.to_vec());
    }
    // 0-RTT for reconnecting clients (quinn takes u32::MAX to mean "allowed"). rustls
    // accepts early data only with tickets stored here, each taken on use: a replayed
    // ClientHello finds its ticket gone and gets a full handshake, its 0-RTT data unread
    tls.max_early_data_size = u32::MAX;
    tls.session_storage = rustls::server::ServerSessionMemoryCache::new(TLS_SESSIONS);
    let crypto = QuicServerConfig::try_from(tls).map_err(TlsError::Quic)?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(Arc::new(transport(config)?));
    Ok(server)
}

/// Stream limits chosen with memory in mind: the call channel and calls on streams of
/// their own are bidirectional streams, capped at one more than `max_call_streams` (a
/// WebTransport session's connection gets one more once its protocol is known, for the
/// session's `CONNECT` stream); clients open no unidirectional streams but, for
/// WebTransport, HTTP/3's control and QPACK streams; the connection-wide receive window
/// caps what one peer can make the server buffer in the transport.
fn transport(config: &ServerConfig) -> Result<quinn::TransportConfig, ServerError> {
    let (limits, server_limits) = (&config.limits, &config.server_limits);
    let h3_streams = match config.webtransport {
        true => H3_CLIENT_STREAMS,
        false => 0,
    };
    let mut transport = quinn::TransportConfig::default();
    let idle = IdleTimeout::try_from(limits.idle_timeout())
        .map_err(|_| ServerError::IdleTimeoutTooLarge(limits.idle_timeout()))?;
    let inflight = server_limits.max_inflight_bytes();
    let receive_window = u64::from(STREAM_WINDOW).max(inflight.min(16 << 20));
    transport
        .max_concurrent_bidi_streams(VarInt::from_u32(
            server_limits.max_call_streams().saturating_add(1),
        ))
        .max_concurrent_uni_streams(VarInt::from_u32(h3_streams))
        .stream_receive_window(VarInt::from_u32(STREAM_WINDOW))
        .receive_window(VarInt::from_u64(receive_window).unwrap_or(VarInt::MAX))
        .send_window(receive_window)
        .max_idle_timeout(Some(idle))
        .keep_alive_interval(Some(limits.keep_alive()))
        // unreliable events go out as datagrams, at most DATAGRAM_SEND_BUFFER bytes of them
        // waiting per connection (a limit, not an allocation: an idle connection holds
        // none). quinn sends datagrams only with a receive buffer: clients send none, and
        // what a hostile one sends is held up to its small size, never read, the oldest
        // dropped
        .datagram_receive_buffer_size(Some(DATAGRAM_RECEIVE_BUFFER))
        .datagram_send_buffer_size(DATAGRAM_SEND_BUFFER);
    Ok(transport)
}
