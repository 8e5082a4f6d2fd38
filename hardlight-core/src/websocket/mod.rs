//! WebSocket framing (RFC 6455) without I/O, as the native server and client speak it:
//! messages cut from the bytes read ([`Decoder`]), and the headers and masks of the
//! frames written ([`header`], [`mask`]); with the `io` feature, both over a tokio byte
//! stream ([`MessageReader`], [`MessageWriter`]).
//!
//! HardLight sends binary messages only, each in one frame, and no extension is ever
//! negotiated. What it reads may come in fragments, with control frames between them, as
//! RFC 6455 allows any peer to send; a frame that breaks the RFC's rules is a
//! [`FramingError`] (close code `1002`), and a message above the receiver's limit is
//! refused from its first frame's header, before its bytes are read.
//!
//! ```
//! use bytes::BytesMut;
//! use hardlight_core::websocket::{header, mask, Decoded, Decoder, Message, Opcode, Role};
//!
//! // a client's frame: masked
//! let key = [1, 2, 3, 4];
//! let mut payload = b"call".to_vec();
//! mask(&mut payload, key);
//! let mut wire = BytesMut::new();
//! header(&mut wire, Opcode::Binary, payload.len(), Some(key));
//! wire.extend_from_slice(&payload);
//!
//! let mut server = Decoder::new(Role::Server, 1024);
//! let mut read = BytesMut::from(&wire[..3]);
//! assert!(matches!(server.decode(&mut read), Ok(Decoded::Need(_))));
//! read.extend_from_slice(&wire[3..]);
//! match server.decode(&mut read) {
//!     Ok(Decoded::Message(Message::Binary(bytes))) => assert_eq!(&bytes[..], b"call"),
//!     other => panic!("{other:?}"),
//! }
//! assert!(read.is_empty());
//! ```

mod decode;
mod encode;
#[cfg(feature = "io")]
mod read;
#[cfg(feature = "io")]
mod write;

pub use decode::{Decoded, Decoder, FramingError, Message};
pub use encode::{close_payload, frame, header, mask, Opcode, MAX_HEADER};
#[cfg(feature = "io")]
pub use read::{MessageReader, ReadError};
#[cfg(feature = "io")]
pub use write::MessageWriter;

/// Which end of a connection this is: a server reads masked frames and writes unmasked
/// ones, a client the reverse (RFC 6455, section 5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The end that accepted the upgrade.
    Server,
    /// The end that asked for it.
    Client,
}

/// The longest payload of a control frame (RFC 6455, section 5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;
