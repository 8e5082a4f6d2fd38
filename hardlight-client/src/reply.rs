//! Turning a reply frame into the call's typed result.

use hardlight_core::{
    codec::{decode, Codable},
    frame::{FrameHeader, Kind},
    received::Received,
    ErrorCode, ProtocolError,
};

use crate::error::RpcError;

/// Decodes a reply: the return value (sharing the body's buffer with its large
/// [`Blob`](hardlight_core::Blob)s), the handler's error, or the server's failure.
pub(crate) fn decode_reply<T: Codable, E: Codable>(
    header: &FrameHeader,
    body: Received,
) -> Result<T, RpcError<E>> {
    match header.kind {
        Kind::ReplyOk => Ok(body.decode::<T>()?),
        Kind::ReplyHandlerError => Err(RpcError::Handler(body.decode::<E>()?)),
        Kind::ReplyFailure => Err(RpcError::Remote {
            code: ErrorCode::from_u16(header.aux),
            message: decode::<String>(&body)
                .unwrap_or_else(|e| format!("(unreadable message: {e})")),
        }),
        other => Err(RpcError::Protocol(ProtocolError::UnexpectedKind {
            expected: "a reply",
            got: other.name(),
        })),
    }
}
