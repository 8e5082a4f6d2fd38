//! Turning a reply frame into the call's typed result.

use hardlight_core::{
    codec::{decode, Codable},
    frame::{FrameHeader, Kind},
    ErrorCode, ProtocolError,
};

use crate::error::RpcError;

/// Decodes a reply: the return value, the handler's error, or the server's failure.
pub(crate) fn decode_reply<T: Codable, E: Codable>(
    header: &FrameHeader,
    body: &[u8],
) -> Result<T, RpcError<E>> {
    match header.kind {
        Kind::ReplyOk => Ok(decode::<T>(body)?),
        Kind::ReplyHandlerError => Err(RpcError::Handler(decode::<E>(body)?)),
        Kind::ReplyFailure => Err(RpcError::Remote {
            code: ErrorCode::from_u16(header.aux),
            message: decode::<String>(body)
                .unwrap_or_else(|e| format!("(unreadable message: {e})")),
        }),
        other => Err(RpcError::Protocol(ProtocolError::UnexpectedKind {
            expected: "a reply",
            got: other.name(),
        })),
    }
}
