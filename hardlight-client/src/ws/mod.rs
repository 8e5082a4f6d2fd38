//! The WebSocket transport: the same frames, one or more per binary message, calls
//! multiplexed by id. Natively with HardLight's own framing after tokio-tungstenite's
//! upgrade, in the browser through its `WebSocket`.

#[cfg(all(feature = "wasm", not(feature = "native")))]
mod browser;
#[cfg(feature = "native")]
mod native;

#[cfg(all(feature = "wasm", not(feature = "native")))]
pub(crate) use browser::BrowserConnection;
#[cfg(feature = "native")]
pub(crate) use native::WsConnection;

use bytes::Bytes as Shared;
use hardlight_core::{
    codec::realign,
    frame::{FrameHeader, Kind},
    ProtocolError, Service,
};

use hardlight_core::received::Received;

use crate::{
    mux::Mux,
    pushes::{LastTopic, Pushes},
};

/// Routes one received message, frame by frame: replies to their calls, everything else
/// to the pushes (`last`: the topic of the last event the connection's reader decoded).
fn route<S: Service>(
    message: Shared,
    mux: &Mux,
    pushes: &Pushes<S>,
    last: &mut LastTopic,
    max: u32,
) -> Result<(), ProtocolError> {
    let mut rest = message;
    loop {
        let (header, body) = FrameHeader::split_off_first(&mut rest, max)?;
        match header.kind {
            // a reply is taken at once by its call: it may keep its message a moment
            Kind::ReplyOk | Kind::ReplyHandlerError | Kind::ReplyFailure => {
                mux.deliver(header, Received::Shared(body))?
            }
            // an item waits until the application reads it, charged to its stream's
            // window at its own size: it must not keep a packed message alive
            Kind::StreamItem => mux.deliver(header, Received::Aligned(realign(&body)))?,
            Kind::StreamCredit if body.is_empty() => mux.credit(header.id, header.seq)?,
            // a push is decoded at once, where it lies
            _ => pushes.handle(last, &header, Received::Shared(body))?,
        }
        if rest.is_empty() {
            return Ok(());
        }
    }
}
