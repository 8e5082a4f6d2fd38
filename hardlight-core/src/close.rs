//! Why a connection was closed, and the code that says so on each transport
//! (`docs/PROTOCOL.md` §9 Close codes).

use std::fmt;

use crate::error::ProtocolError;

/// Why a connection was closed.
///
/// ```
/// use hardlight_core::close::Close;
/// assert_eq!(Close::SlowConsumer.quic_code(), 0x13);
/// assert_eq!(Close::from_quic_code(0x13), Some(Close::SlowConsumer));
/// assert_eq!(Close::Shutdown.websocket_code(), 1001);
/// assert_eq!(Close::from_websocket_code(4014), Some(Close::TakenOver));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Close {
    /// A normal close by either side (the client disconnecting).
    Normal,
    /// The server rejected the handshake; the reason was sent in a `Reject` frame.
    Rejected,
    /// The server shut down.
    Shutdown,
    /// The peer broke the protocol outside a call.
    Protocol,
    /// The client read too slowly: its event queue overflowed under the `Disconnect`
    /// policy, or it took nothing the server wrote for `Limits::send_timeout`.
    SlowConsumer,
    /// A reconnecting client resumed this connection's session on another connection.
    TakenOver,
    /// A message above the size limit (WebSocket; over QUIC a call's own reply says so).
    TooBig,
    /// A text message (WebSocket): HardLight speaks binary only.
    UnsupportedData,
    /// A message the peer began did not arrive whole within `Limits::frame_read_timeout`
    /// (WebSocket; over QUIC only that call fails).
    SlowSender,
}

impl Close {
    /// The close for a frame that breaks the protocol: [`Close::TooBig`] for one over the
    /// size limit, [`Close::Protocol`] for any other.
    ///
    /// ```
    /// use hardlight_core::{close::Close, ProtocolError};
    /// let large = ProtocolError::FrameTooLarge { len: 100, max: 99 };
    /// assert_eq!(Close::for_frame(&large), Close::TooBig);
    /// assert_eq!(Close::for_frame(&ProtocolError::Malformed), Close::Protocol);
    /// ```
    pub fn for_frame(error: &ProtocolError) -> Self {
        match error {
            ProtocolError::FrameTooLarge { .. } => Self::TooBig,
            _ => Self::Protocol,
        }
    }

    /// The QUIC application error code.
    pub const fn quic_code(self) -> u32 {
        match self {
            Self::Normal => 0x00,
            Self::Rejected => 0x10,
            Self::Shutdown => 0x11,
            Self::Protocol | Self::TooBig | Self::UnsupportedData => 0x12,
            Self::SlowConsumer => 0x13,
            Self::TakenOver => 0x14,
            Self::SlowSender => 0x15,
        }
    }

    /// The reason a QUIC application error code stands for, if it is one of HardLight's.
    pub const fn from_quic_code(code: u64) -> Option<Self> {
        Some(match code {
            0x00 => Self::Normal,
            0x10 => Self::Rejected,
            0x11 => Self::Shutdown,
            0x12 => Self::Protocol,
            0x13 => Self::SlowConsumer,
            0x14 => Self::TakenOver,
            0x15 => Self::SlowSender,
            _ => return None,
        })
    }

    /// The WebSocket close code: the standard one where RFC 6455 (section 7.4.1) has it,
    /// one of the private-use range where HardLight's reason has none.
    pub const fn websocket_code(self) -> u16 {
        match self {
            Self::Normal => 1000,
            Self::Shutdown => 1001,
            Self::Protocol => 1002,
            Self::UnsupportedData => 1003,
            Self::Rejected => 1008,
            Self::TooBig => 1009,
            Self::SlowConsumer => 4013,
            Self::TakenOver => 4014,
            Self::SlowSender => 4015,
        }
    }

    /// The reason a WebSocket close code stands for, if it is one of HardLight's.
    pub const fn from_websocket_code(code: u16) -> Option<Self> {
        Some(match code {
            1000 => Self::Normal,
            1001 => Self::Shutdown,
            1002 => Self::Protocol,
            1003 => Self::UnsupportedData,
            1008 => Self::Rejected,
            1009 => Self::TooBig,
            4013 => Self::SlowConsumer,
            4014 => Self::TakenOver,
            4015 => Self::SlowSender,
            _ => return None,
        })
    }
}

impl fmt::Display for Close {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Normal => "closed normally",
            Self::Rejected => "handshake rejected",
            Self::Shutdown => "server shut down",
            Self::Protocol => "protocol violation",
            Self::SlowConsumer => "the client read too slowly",
            Self::TakenOver => "session resumed on another connection",
            Self::TooBig => "message too big",
            Self::UnsupportedData => "text messages are not part of the protocol",
            Self::SlowSender => "a message did not arrive within frame_read_timeout",
        })
    }
}
