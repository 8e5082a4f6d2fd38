//! WebTransport over HTTP/3 (ALPN `h3`) on the QUIC endpoint: the HTTP/3 settings, the
//! extended `CONNECT` that opens the session, and how the session's streams and
//! datagrams are marked. Once the session is open it carries the HardLight protocol
//! exactly as a QUIC connection of its own does (`docs/PROTOCOL.md`,
//! §1 Transport and negotiation).
//!
//! One session per connection: the server allows one, and HTTP/3 requests other than
//! the session's `CONNECT` are refused.
//!
//! The HTTP/3 pieces — `SETTINGS`, QPACK header blocks, stream types — are encoded and
//! parsed by `wtransport-proto`, which does no I/O; this module drives them on the one
//! quinn endpoint that also serves native connections. The alternatives did not fit:
//! `web-transport-quinn` keeps only the `CONNECT` request's URL, so the authenticator
//! could not see `Origin`; `wtransport` runs an endpoint of its own, which cannot share
//! the UDP port with native HardLight on one endpoint selecting by ALPN;
//! `h3-webtransport` is marked experimental and brings a whole HTTP/3 server for one
//! request.

use std::{panic::AssertUnwindSafe, time::Duration};

use futures_util::{stream::FuturesUnordered, StreamExt};
use hardlight_core::{handshake::webtransport_path, text::truncated};
use quinn::{Connection, RecvStream, SendStream, VarInt};
use tokio::{sync::oneshot, task::JoinHandle, time::timeout};
use tracing::debug;
use wtransport_proto::{
    frame::{Frame, FrameKind},
    headers::Headers,
    session::{SessionRequest, SessionResponse},
    settings::Settings,
    stream_header::{StreamHeader, StreamKind},
    varint::VarInt as WtVarInt,
};

/// The ALPN of HTTP/3, which WebTransport runs on.
pub(crate) const ALPN: &[u8] = b"h3";

/// The largest `CONNECT` request read, in bytes: its header block is small.
const MAX_CONNECT: usize = 8 * 1024;

/// HTTP/3's `H3_NO_ERROR`: the connection closes after its session did.
const H3_NO_ERROR: u32 = 0x100;
/// `H3_STREAM_CREATION_ERROR`: a stream of a kind the server does not take.
const H3_STREAM_CREATION_ERROR: u32 = 0x103;
/// `H3_CLOSED_CRITICAL_STREAM`: the client ended its control stream.
const H3_CLOSED_CRITICAL_STREAM: u32 = 0x104;

/// The HTTP/3 code of WebTransport stream error 0.
const FIRST_STREAM_CODE: u64 = 0x52e4_a40f_a8db;
/// Capsule type of `CLOSE_WEBTRANSPORT_SESSION`.
const CLOSE_SESSION_CAPSULE: u64 = 0x2843;
/// Frame type of a bidirectional WebTransport stream's first bytes.
const WEBTRANSPORT_STREAM: u64 = 0x41;
/// Longest close reason a `CLOSE_WEBTRANSPORT_SESSION` capsule carries.
const MAX_CLOSE_REASON: usize = 1024;

/// How long a closing session waits for the client to take its close capsule before the
/// connection closes anyway.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// How a WebTransport session marks what it carries: the session id on each stream it
/// opens and each datagram; stream error codes mapped into HTTP/3's range. Natively
/// (`None`) nothing is marked.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Framing(Option<u64>);

impl Framing {
    /// The marks of the session opened by the `CONNECT` on stream `session`.
    fn session(session: u64) -> Self {
        Self(Some(session))
    }

    /// The code a stream is reset or stopped with for application code `code`: as is
    /// natively; in the range HTTP/3 reserves for WebTransport in a session (the browser
    /// reports the original code).
    pub(crate) fn stream_code(self, code: u32) -> VarInt {
        match self.0 {
            None => VarInt::from_u32(code),
            Some(_) => {
                let code = u64::from(code);
                VarInt::from_u64(FIRST_STREAM_CODE + code + code / 0x1e).unwrap_or(VarInt::MAX)
            }
        }
    }

    /// What the server writes first on a unidirectional stream it opens.
    pub(crate) fn uni_header(self) -> Vec<u8> {
        let mut header = Vec::new();
        if let Some(session) = self.0 {
            put_varint(&mut header, 0x54);
            put_varint(&mut header, session);
        }
        header
    }

    /// What precedes every datagram's payload: the session's quarter stream id.
    pub(crate) fn datagram_prefix(self) -> Vec<u8> {
        let mut prefix = Vec::new();
        if let Some(session) = self.0 {
            put_varint(&mut prefix, session / 4);
        }
        prefix
    }

    /// Reads the first bytes of a bidirectional stream the client opened: in a session,
    /// the WebTransport stream type and this session's id; natively nothing.
    pub(crate) async fn read_stream_header(
        self,
        recv: &mut RecvStream,
    ) -> Result<(), hardlight_core::io::ReadError> {
        let Some(session) = self.0 else {
            return Ok(());
        };
        let kind = read_varint(recv).await?;
        let id = read_varint(recv).await?;
        if kind != WEBTRANSPORT_STREAM || id != session {
            return Err(hardlight_core::ProtocolError::UnexpectedKind {
                expected: "a WebTransport stream of this session",
                got: "another stream",
            }
            .into());
        }
        Ok(())
    }
}

/// Reads one QUIC variable-length integer.
async fn read_varint(recv: &mut RecvStream) -> Result<u64, hardlight_core::io::ReadError> {
    use hardlight_core::io::ReadError;
    let mut bytes = [0u8; 8];
    let ended = |error: quinn::ReadExactError| match error {
        quinn::ReadExactError::FinishedEarly(0) => ReadError::Finished,
        quinn::ReadExactError::FinishedEarly(_) => hardlight_core::ProtocolError::Malformed.into(),
        quinn::ReadExactError::ReadError(error) => ReadError::Io(error.into()),
    };
    recv.read_exact(&mut bytes[..1]).await.map_err(ended)?;
    let len = 1usize << (bytes[0] >> 6);
    bytes[0] &= 0x3f;
    recv.read_exact(&mut bytes[1..len])
        .await
        .map_err(|error| match error {
            quinn::ReadExactError::FinishedEarly(_) => {
                ReadError::Protocol(hardlight_core::ProtocolError::Malformed)
            }
            other => ended(other),
        })?;
    Ok(bytes[..len]
        .iter()
        .fold(0u64, |value, &byte| (value << 8) | u64::from(byte)))
}

/// Appends `value` (below 2^62) as a QUIC variable-length integer.
fn put_varint(out: &mut Vec<u8>, value: u64) {
    match value {
        0..=0x3f => out.push(value as u8),
        0x40..=0x3fff => out.extend_from_slice(&((value as u16) | 0x4000).to_be_bytes()),
        0x4000..=0x3fff_ffff => {
            out.extend_from_slice(&((value as u32) | 0x8000_0000).to_be_bytes());
        }
        _ => out.extend_from_slice(&(value | 0xc000_0000_0000_0000).to_be_bytes()),
    }
}

/// Why no session opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refused {
    /// The connection ended first.
    #[error("the connection ended before its WebTransport session opened")]
    Gone,
    /// The client's HTTP/3 broke the protocol or asked for something else.
    #[error("{0}")]
    Invalid(&'static str),
    /// The client asked for another path (another protocol version, or not HardLight).
    #[error("CONNECT to {0}, not this server's protocol version")]
    Path(String),
}

/// A session's HTTP/3 side, for as long as the session lives: the control streams both
/// ways (held open, as HTTP/3 requires), the `CONNECT` stream, and the task that watches
/// them.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) framing: Framing,
    /// The `CONNECT` stream's sending half, which carries the close capsule.
    connect: Option<SendStream>,
    task: JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An opened session: what HardLight runs on, and the `CONNECT` request's headers
/// (lower-case names, the pseudo-headers left out) for the authenticator.
pub(crate) struct Opened {
    pub(crate) session: Session,
    pub(crate) headers: Vec<(String, String)>,
}

/// Opens the WebTransport session of connection `conn` (ALPN `h3`) for protocol
/// `version`: sends the server's HTTP/3 settings, takes the client's control streams and
/// its extended `CONNECT` to the path of `version` (`webtransport_path`), and answers
/// it.
pub(crate) async fn open(conn: &Connection, version: u16) -> Result<Opened, Refused> {
    let mut control = conn.open_uni().await.map_err(|_| Refused::Gone)?;
    let mut settings = Vec::new();
    write(&StreamHeader::new_control(), &mut settings);
    let frame = Settings::builder()
        .qpack_max_table_capacity(WtVarInt::from_u32(0))
        .qpack_blocked_streams(WtVarInt::from_u32(0))
        .enable_connect_protocol()
        .enable_webtransport()
        .enable_h3_datagrams()
        .webtransport_max_sessions(WtVarInt::from_u32(1))
        .build();
    write_frame(&frame.generate_frame(), &mut settings);
    control
        .write_all(&settings)
        .await
        .map_err(|_| Refused::Gone)?;

    // the client's control and QPACK streams are taken (and kept) from the start: the
    // client may wait for nothing before sending its CONNECT
    let (connect_tx, connect_rx) = oneshot::channel();
    let task = tokio::spawn(watch(conn.clone(), control, connect_rx));
    let opened = async {
        let (mut send, mut recv) = conn.accept_bi().await.map_err(|_| Refused::Gone)?;
        let request = read_connect(&mut recv).await?;
        let path = request.path().to_owned();
        if path.split('?').next() != Some(webtransport_path(version).as_str()) {
            let mut answer = Vec::new();
            write_frame(
                &SessionResponse::not_found().headers().generate_frame(),
                &mut answer,
            );
            // the client gets its answer (or a short linger passes) before the close
            if send.write_all(&answer).await.is_ok() && send.finish().is_ok() {
                let _ = timeout(CLOSE_LINGER, send.stopped()).await;
            }
            return Err(Refused::Path(path));
        }
        let mut answer = Vec::new();
        write_frame(
            &SessionResponse::ok().headers().generate_frame(),
            &mut answer,
        );
        send.write_all(&answer).await.map_err(|_| Refused::Gone)?;
        let session = u64::from(send.id());
        let headers = request
            .headers()
            .as_ref()
            .iter()
            .filter(|(name, _)| !name.starts_with(':'))
            .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
            .collect();
        let _ = connect_tx.send(recv);
        Ok((send, session, headers))
    };
    match opened.await {
        Ok((send, session, headers)) => Ok(Opened {
            session: Session {
                framing: Framing::session(session),
                connect: Some(send),
                task,
            },
            headers,
        }),
        Err(refused) => {
            task.abort();
            Err(refused)
        }
    }
}

/// Reads the client's extended `CONNECT` request (after any frames of reserved types,
/// which HTTP/3 peers send to exercise the extension points).
async fn read_connect(recv: &mut RecvStream) -> Result<SessionRequest, Refused> {
    let mut buffer = Vec::new();
    let mut offset = 0;
    loop {
        let mut reader: &[u8] = &buffer[offset..];
        match Frame::read(&mut reader) {
            Ok(Some(frame)) => match frame.kind() {
                FrameKind::Headers => {
                    // the QPACK decoder shifts an integer's continuation bytes without a
                    // bound, which overflows (and panics, where overflow is checked) on
                    // a long one: whatever it does with a hostile block, the block is
                    // refused and the server goes on
                    let decoded =
                        std::panic::catch_unwind(AssertUnwindSafe(|| Headers::with_frame(&frame)));
                    let headers = decoded
                        .ok()
                        .and_then(Result::ok)
                        .ok_or(Refused::Invalid("an invalid CONNECT header block"))?;
                    return SessionRequest::try_from(headers)
                        .map_err(|_| Refused::Invalid("not a WebTransport CONNECT request"));
                }
                FrameKind::Exercise(_) => {
                    offset = buffer.len() - reader.len();
                    continue;
                }
                _ => return Err(Refused::Invalid("a request stream without headers")),
            },
            Ok(None) if buffer.len() < MAX_CONNECT => {}
            Ok(None) => return Err(Refused::Invalid("a CONNECT request over its size limit")),
            Err(_) => return Err(Refused::Invalid("a malformed HTTP/3 frame")),
        }
        let chunk = recv
            .read_chunk(MAX_CONNECT - buffer.len(), true)
            .await
            .map_err(|_| Refused::Gone)?
            .ok_or(Refused::Invalid("the CONNECT request stream ended early"))?;
        buffer.extend_from_slice(&chunk.bytes);
    }
}

/// Watches the session's HTTP/3 streams until the connection ends: takes the client's
/// unidirectional streams (its control and QPACK streams are read and discarded, any
/// other is refused), holds the server's control stream open, and closes the connection
/// when the client ends the session (its close capsule or the end of the `CONNECT`
/// stream) or its control stream.
async fn watch(conn: Connection, _control: SendStream, connect: oneshot::Receiver<RecvStream>) {
    let mut streams = FuturesUnordered::new();
    let connect = async {
        match connect.await {
            Ok(mut recv) => {
                // a client's capsules are not interpreted: either way the session is over
                let _ = drain(&mut recv).await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::pin!(connect);
    loop {
        tokio::select! {
            accepted = conn.accept_uni() => match accepted {
                Ok(recv) => streams.push(uni_stream(recv)),
                Err(_) => return,
            },
            Some(critical) = streams.next(), if !streams.is_empty() => if critical {
                debug!("the client ended an HTTP/3 control stream");
                conn.close(VarInt::from_u32(H3_CLOSED_CRITICAL_STREAM), b"critical stream closed");
                return;
            },
            () = &mut connect => {
                debug!("the client closed its WebTransport session");
                conn.close(VarInt::from_u32(H3_NO_ERROR), b"session closed");
                return;
            }
        }
    }
}

/// Serves one unidirectional stream from the client to its end; `true` if it was one
/// HTTP/3 keeps open for the connection's life.
async fn uni_stream(mut recv: RecvStream) -> bool {
    let mut header = [0u8; StreamHeader::MAX_SIZE];
    let mut len = 0;
    let kind = loop {
        let mut reader: &[u8] = &header[..len];
        match StreamHeader::read(&mut reader) {
            Ok(Some(parsed)) => break Some(parsed.kind()),
            Ok(None) if len < header.len() => {}
            _ => break None,
        }
        match recv.read(&mut header[len..len + 1]).await {
            Ok(Some(1)) => len += 1,
            _ => return false,
        }
    };
    match kind {
        Some(StreamKind::Control | StreamKind::QPackEncoder | StreamKind::QPackDecoder) => {
            // the server's QPACK table holds nothing: these carry nothing to act on
            let _ = drain(&mut recv).await;
            true
        }
        Some(StreamKind::WebTransport) => {
            // HardLight clients open none
            let _ = recv.stop(Framing::session(0).stream_code(0));
            false
        }
        _ => {
            let _ = recv.stop(VarInt::from_u32(H3_STREAM_CREATION_ERROR));
            false
        }
    }
}

/// Reads a stream to its end, keeping nothing.
async fn drain(recv: &mut RecvStream) -> Result<(), quinn::ReadError> {
    while recv.read_chunk(64 * 1024, true).await?.is_some() {}
    Ok(())
}

impl Session {
    /// Closes the session with `code` and `reason`: the close capsule on the `CONNECT`
    /// stream, then, once the client has it (or after a short linger), the connection.
    pub(crate) fn close(&mut self, conn: &Connection, code: u32, reason: &str) {
        let Some(mut send) = self.connect.take() else {
            return;
        };
        let reason = truncated(reason, MAX_CLOSE_REASON).as_bytes();
        let mut capsule = Vec::with_capacity(reason.len() + 16);
        put_varint(&mut capsule, CLOSE_SESSION_CAPSULE);
        put_varint(&mut capsule, 4 + reason.len() as u64);
        capsule.extend_from_slice(&code.to_be_bytes());
        capsule.extend_from_slice(reason);
        let mut data = Vec::with_capacity(capsule.len() + 16);
        put_varint(&mut data, 0);
        put_varint(&mut data, capsule.len() as u64);
        data.extend_from_slice(&capsule);
        let conn = conn.clone();
        tokio::spawn(async move {
            let _ = timeout(CLOSE_LINGER, async {
                if send.write_all(&data).await.is_ok() && send.finish().is_ok() {
                    // the client closes the connection once it has the capsule
                    conn.closed().await;
                }
            })
            .await;
            conn.close(VarInt::from_u32(H3_NO_ERROR), b"session closed");
        });
    }
}

fn write(header: &StreamHeader, out: &mut Vec<u8>) {
    // writing into a growable buffer cannot run out of room
    let _ = header.write(out);
}

fn write_frame(frame: &Frame<'_>, out: &mut Vec<u8>) {
    let _ = frame.write(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use wtransport_proto::bytes::BytesReader;

    #[test]
    fn varints_encode_as_quic_does() {
        for (value, bytes) in [
            (0x25u64, &[0x25u8][..]),
            (0x41, &[0x40, 0x41]),
            (0x2843, &[0x68, 0x43]),
            (15_293, &[0x7b, 0xbd]),
            (494_878_333, &[0x9d, 0x7f, 0x3e, 0x7d]),
            (
                151_288_809_941_952_652,
                &[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c],
            ),
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(out, bytes, "{value}");
            let mut reader: &[u8] = &out;
            assert_eq!(reader.get_varint().map(WtVarInt::into_inner), Some(value));
        }
    }

    #[test]
    fn stream_codes_skip_the_reserved_code_points() {
        let framing = Framing::session(0);
        assert_eq!(framing.stream_code(0).into_inner(), 0x52e4_a40f_a8db);
        // every 0x1f-th code point is reserved for greasing
        assert_eq!(
            framing.stream_code(0x1e).into_inner(),
            0x52e4_a40f_a8db + 0x1f
        );
        assert_eq!(Framing::default().stream_code(7).into_inner(), 7);
    }

    #[test]
    fn a_session_marks_its_streams_and_datagrams() {
        let framing = Framing::session(4);
        assert_eq!(framing.uni_header(), [0x40, 0x54, 0x04]);
        assert_eq!(framing.datagram_prefix(), [0x01]);
        assert!(Framing::default().uni_header().is_empty());
        assert!(Framing::default().datagram_prefix().is_empty());
    }
}
