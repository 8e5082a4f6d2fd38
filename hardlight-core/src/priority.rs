//! Call priorities: whose data goes first when calls share a connection.
//!
//! A call's priority travels in bits 3–4 of its `Call` frame's flags and applies to
//! everything the call sends either way: its request and items from the client, its
//! items and reply from the server. Over QUIC each level is a stream send priority, so a
//! low-priority transfer's packets wait while a higher-priority call has data to send;
//! over WebSocket the server's writer sends queued frames highest priority first.

use crate::frame::FLAG_PRIORITY;

/// How urgently a call's data is sent, relative to the other calls of its connection.
///
/// Set per method (`#[rpc(priority = "low")]` on a trait method) or per call
/// (`client.with_priority(Priority::High)`); the default is [`Priority::Normal`].
///
/// ```
/// use hardlight_core::priority::Priority;
/// assert!(Priority::High > Priority::Normal && Priority::Low > Priority::Background);
/// for priority in [Priority::Background, Priority::Low, Priority::Normal, Priority::High] {
///     assert_eq!(Priority::from_flags(priority.flags()), priority);
/// }
/// assert_eq!(Priority::Normal.flags(), 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Priority {
    /// Bulk work that may wait for everything else (wire value 3, QUIC priority −2).
    Background,
    /// Large transfers that must not hold up interactive calls (wire value 2, QUIC −1).
    Low,
    /// Every call unless told otherwise (wire value 0, QUIC 0).
    #[default]
    Normal,
    /// Small, latency-sensitive calls (wire value 1, QUIC 1).
    High,
}

impl Priority {
    /// The flag bits that carry this priority on a `Call` frame.
    pub fn flags(self) -> u8 {
        let value: u8 = match self {
            Self::Normal => 0,
            Self::High => 1,
            Self::Low => 2,
            Self::Background => 3,
        };
        value << FLAG_PRIORITY.trailing_zeros()
    }

    /// The priority a `Call` frame's `flags` carry.
    pub fn from_flags(flags: u8) -> Self {
        match (flags & FLAG_PRIORITY) >> FLAG_PRIORITY.trailing_zeros() {
            1 => Self::High,
            2 => Self::Low,
            3 => Self::Background,
            _ => Self::Normal,
        }
    }

    /// The QUIC stream send priority of a call at this level (higher is sent first).
    pub fn quic(self) -> i32 {
        match self {
            Self::Background => -2,
            Self::Low => -1,
            Self::Normal => 0,
            Self::High => 1,
        }
    }
}
