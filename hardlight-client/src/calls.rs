//! The call side of a connection, whatever transport carries it: the drain after
//! `GoAway`, encoding and compression, the server's size limit, and opening the reply. A
//! transport only moves the call frame out and its reply frame back ([`Exchange`]).

use std::{future::Future, sync::Arc};

use hardlight_core::{
    codec::Bytes,
    frame::{FrameHeader, HEADER_LEN},
    handshake::Welcome,
    message::{encode_frame, open_aligned_body},
    Compression, ProtocolError,
};

use crate::{config::ClientConfig, drain::Drain, error::CallError};

/// Carries one call frame to the server and its reply frame back (still compressed).
/// Dropping the future cancels the call on the server.
pub(crate) trait Exchange: Send + Sync {
    fn exchange(
        &self,
        frame: Vec<u8>,
        reply_max: u32,
    ) -> impl Future<Output = Result<(FrameHeader, Bytes), CallError>> + Send;
}

/// A connection's calls over transport `T`.
#[derive(Debug)]
pub(crate) struct Calls<T> {
    pub(crate) transport: T,
    pub(crate) drain: Arc<Drain>,
    compression: Compression,
    /// Largest call the server accepts.
    server_max: u32,
    /// Largest reply (and push) the client accepts.
    pub(crate) reply_max: u32,
}

impl<T: Exchange> Calls<T> {
    /// The calls of a connection whose handshake returned `welcome`; `drain` closes it
    /// after `GoAway` once its last call has its reply.
    pub(crate) fn new(
        transport: T,
        drain: Arc<Drain>,
        welcome: &Welcome,
        config: &ClientConfig,
    ) -> Self {
        Self {
            transport,
            drain,
            compression: welcome.compression_for(config.compression),
            server_max: welcome.max_message_size,
            reply_max: config.limits.max_message_size(),
        }
    }

    /// Makes the call `header` (method, budget, flags) with body `args` and returns its
    /// opened reply frame. Dropping the future cancels it.
    pub(crate) async fn call(
        &self,
        header: FrameHeader,
        args: &[u8],
    ) -> Result<(FrameHeader, Bytes), CallError> {
        let _in_flight = self.drain.enter()?;
        let frame = encode_frame(header, args, self.compression)?;
        // refused here rather than by the server, which would close the connection
        let body_len = frame.len().saturating_sub(HEADER_LEN);
        if body_len > self.server_max as usize {
            return Err(CallError::Protocol(ProtocolError::FrameTooLarge {
                len: body_len as u64,
                max: self.server_max,
            }));
        }
        let (header, body) = self.transport.exchange(frame, self.reply_max).await?;
        let compressed = self.compression != Compression::None;
        let body = open_aligned_body(&header, body, compressed, self.reply_max)?;
        Ok((header, body))
    }
}
