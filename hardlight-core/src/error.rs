//! Protocol errors and the error codes carried on the wire.

use std::fmt;

/// A violation of the wire protocol, found while decoding bytes from a peer.
///
/// Every variant names what was wrong and, where a limit was hit, the setting to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A frame header announced a body larger than allowed.
    #[error("frame body of {len} bytes exceeds max_message_size ({max} bytes); raise Limits::max_message_size on both peers if this is intended")]
    FrameTooLarge {
        /// Announced length.
        len: u64,
        /// The limit in force.
        max: u32,
    },
    /// The stream or message ended before a whole frame arrived.
    #[error("truncated frame: expected {expected} bytes, got {got}")]
    Truncated {
        /// Bytes expected.
        expected: u64,
        /// Bytes received.
        got: u64,
    },
    /// Bytes followed a frame that travels alone in its message: the handshake's (the
    /// first WebSocket message each way) or an unreliable event's datagram.
    #[error("{0} bytes after a frame that travels alone in its message")]
    TrailingBytes(u64),
    /// The frame kind byte is not one this version knows.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// Reserved flag bits were set.
    #[error("unknown frame flags {0:#04x}")]
    UnknownFlags(u8),
    /// A frame of a kind that is not allowed at this point of the conversation.
    #[error("unexpected {got} frame, expected {expected}")]
    UnexpectedKind {
        /// What the protocol allows here.
        expected: &'static str,
        /// The kind received.
        got: &'static str,
    },
    /// The body failed rkyv validation (bytecheck) or did not match the expected type.
    #[error("invalid payload: {0}")]
    InvalidPayload(String),
    /// A compressed body inflates past the limit (a compression bomb or a misconfigured peer).
    #[error("decompressed body exceeds max_message_size ({max} bytes)")]
    DecompressedTooLarge {
        /// The limit in force.
        max: u32,
    },
    /// The compressed body is not valid zstd.
    #[error("invalid compressed body: {0}")]
    Compression(String),
    /// A compressed frame arrived although compression was not negotiated.
    #[error("compressed frame received but compression was not negotiated")]
    CompressionNotNegotiated,
    /// The bytes do not form a frame header.
    #[error("malformed frame")]
    Malformed,
    /// A peer sent more of a streaming call's items than the call's window allows
    /// ([`crate::stream::STREAM_WINDOW`]) before the receiver granted room for them.
    #[error("streaming call {id} received more than its window of {window} bytes before granting credit")]
    StreamWindowExceeded {
        /// The call.
        id: u64,
        /// The window in force.
        window: u32,
    },
    /// The peer reset its stream before the end of a streaming call's items.
    #[error("the peer reset the stream before the end of its items")]
    StreamReset,
    /// A frame did not arrive whole within the deadline (a peer that announces a frame and
    /// then sends it slowly, or not at all).
    #[error("frame not received within frame_read_timeout ({limit:?}); raise Limits::frame_read_timeout if the peer's link is this slow")]
    FrameTimeout {
        /// The limit in force.
        limit: std::time::Duration,
    },
}

impl ProtocolError {
    /// The wire code reported to the peer for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            Self::DecompressedTooLarge { .. } => ErrorCode::DecompressedTooLarge,
            Self::InvalidPayload(_) => ErrorCode::InvalidPayload,
            Self::Compression(_) | Self::CompressionNotNegotiated => ErrorCode::Compression,
            Self::FrameTimeout { .. } => ErrorCode::FrameTimeout,
            Self::Truncated { .. }
            | Self::TrailingBytes(_)
            | Self::UnknownKind(_)
            | Self::UnknownFlags(_)
            | Self::UnexpectedKind { .. }
            | Self::StreamWindowExceeded { .. }
            | Self::StreamReset
            | Self::Malformed => ErrorCode::Malformed,
        }
    }
}

macro_rules! codes {
    ($($(#[$doc:meta])* $name:ident = $value:literal => $text:literal,)*) => {
        /// Why the server failed a call, as carried in a `ReplyFailure` frame's `aux`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[$doc])* $name,)*
            /// A code this version does not know (from a newer peer).
            Unknown(u16),
        }

        impl ErrorCode {
            /// The wire value.
            pub fn to_u16(self) -> u16 {
                match self {
                    $(Self::$name => $value,)*
                    Self::Unknown(v) => v,
                }
            }

            /// Decodes a wire value; unknown values are kept as [`ErrorCode::Unknown`].
            pub fn from_u16(value: u16) -> Self {
                match value {
                    $($value => Self::$name,)*
                    v => Self::Unknown(v),
                }
            }
        }

        impl fmt::Display for ErrorCode {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $(Self::$name => f.write_str($text),)*
                    Self::Unknown(v) => write!(f, "unknown error code {v}"),
                }
            }
        }
    };
}

codes! {
    /// The frame could not be parsed (bad header, truncated, unexpected kind).
    Malformed = 1 => "malformed frame",
    /// The frame exceeded the maximum message size.
    FrameTooLarge = 2 => "frame too large",
    /// The body failed validation against the expected type.
    InvalidPayload = 3 => "invalid payload",
    /// The method index is not part of the service.
    UnknownMethod = 4 => "unknown method",
    /// The body decompressed past the maximum message size.
    DecompressedTooLarge = 5 => "decompressed body too large",
    /// The compressed body was invalid or compression was not negotiated.
    Compression = 6 => "compression error",
    /// The handler panicked; only this call failed.
    HandlerPanicked = 7 => "handler panicked",
    /// The server is shutting down and takes no new calls.
    ShuttingDown = 8 => "server shutting down",
    /// The server could not encode the reply.
    Internal = 9 => "internal server error",
    /// The connection already has `max_concurrent_calls` calls in flight, or the call's
    /// bytes do not fit the connection's or the server's memory budget
    /// (`max_inflight_bytes`, `memory_budget`); retry later.
    Overloaded = 10 => "server overloaded",
    /// The connection exceeded its call rate limit (`ServerLimits::call_rate`); retry later.
    RateLimited = 11 => "call rate limit exceeded",
    /// The call's frame did not arrive whole within `Limits::frame_read_timeout`.
    FrameTimeout = 12 => "call frame not received in time",
    /// The call's time budget ran out before its handler returned; the handler was
    /// dropped.
    DeadlineExceeded = 13 => "deadline exceeded",
    /// An interceptor of the server's refused the call: the caller may not make it.
    PermissionDenied = 14 => "permission denied",
    /// An interceptor of the server's refused the call: a quota of the caller's is spent;
    /// retry later.
    QuotaExceeded = 15 => "quota exceeded",
}
