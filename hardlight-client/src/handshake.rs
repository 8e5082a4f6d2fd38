//! The client's half of the handshake, independent of the transport.

use hardlight_core::{
    codec::{decode, encode, Bytes},
    frame::{FrameHeader, Kind},
    handshake::{Hello, RejectCode, Welcome},
    message::{encode_frame, open_aligned_body},
    Compression, ProtocolError, Service,
};

use crate::{config::ClientConfig, error::ConnectError};

/// The `Hello` frame for service `S`.
pub(crate) fn hello_frame<S: Service>(config: &ClientConfig) -> Result<Vec<u8>, ConnectError> {
    let hello = Hello {
        version: config.protocol_version,
        token: config.token.clone(),
        resume: config.resume,
        ..Hello::new(S::NAME, S::schema(), config.compression)
    };
    Ok(encode_frame(
        FrameHeader::new(Kind::Hello, 0),
        &encode(&hello)?,
        Compression::None,
    )?)
}

/// Reads the server's answer: a `Welcome`, or the reason it refused.
pub(crate) fn welcome(
    config: &ClientConfig,
    header: &FrameHeader,
    body: Bytes,
) -> Result<Welcome, ConnectError> {
    let max = config.limits.max_message_size();
    let body = open_aligned_body(header, body, !config.compression.offers().is_empty(), max)?;
    match header.kind {
        Kind::Welcome => Ok(decode::<Welcome>(&body)?),
        Kind::Reject => Err(ConnectError::Rejected {
            code: RejectCode::from_u16(header.aux),
            reason: decode::<String>(&body).unwrap_or_default(),
        }),
        other => Err(ProtocolError::UnexpectedKind {
            expected: "Welcome or Reject",
            got: other.name(),
        }
        .into()),
    }
}
