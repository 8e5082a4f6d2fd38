//! What a HardLight connection over QUIC runs on: a QUIC connection of its own (ALPN
//! `hardlight/N`) or a WebTransport session that owns its QUIC connection (ALPN `h3`).
//! Both carry the same streams and datagrams; a session only marks them
//! ([`Framing`]) and closes with a capsule before the connection.

use std::{future::Future, pin::Pin};

use bytes::{BufMut, Bytes as Shared, BytesMut};
use hardlight_core::close::Close;
use quinn::{Connection, ConnectionError, RecvStream, SendStream, VarInt};

use super::webtransport::{self, Framing};

/// The next bidirectional stream a client opens.
pub(crate) type Accepting = Pin<
    Box<dyn Future<Output = Result<(SendStream, RecvStream), ConnectionError>> + Send + 'static>,
>;

/// A QUIC connection, or the WebTransport session on it.
#[derive(Debug)]
pub(crate) struct QuicSession {
    pub(crate) conn: Connection,
    webtransport: Option<webtransport::Session>,
}

impl QuicSession {
    /// HardLight on a QUIC connection of its own.
    pub(crate) fn native(conn: Connection) -> Self {
        Self {
            conn,
            webtransport: None,
        }
    }

    /// HardLight in WebTransport session `session` on `conn`.
    pub(crate) fn webtransport(conn: Connection, session: webtransport::Session) -> Self {
        Self {
            conn,
            webtransport: Some(session),
        }
    }

    /// How streams and datagrams are marked.
    pub(crate) fn framing(&self) -> Framing {
        self.webtransport
            .as_ref()
            .map_or_else(Framing::default, |session| session.framing)
    }

    /// The next bidirectional stream the client opens (its first bytes not yet read: see
    /// [`Framing::read_stream_header`]).
    pub(crate) async fn accept_bi(&self) -> Result<(SendStream, RecvStream), ConnectionError> {
        self.conn.accept_bi().await
    }

    /// [`QuicSession::accept_bi`] as a future of its own, which lives across the polls of
    /// the connection's loop.
    pub(crate) fn accepting(&self) -> Accepting {
        let conn = self.conn.clone();
        Box::pin(async move { conn.accept_bi().await })
    }

    /// Opens a unidirectional stream, marked as the session's.
    pub(crate) async fn open_uni(&self) -> Option<SendStream> {
        let mut stream = self.conn.open_uni().await.ok()?;
        let header = self.framing().uni_header();
        if !header.is_empty() {
            stream.write_all(&header).await.ok()?;
        }
        Some(stream)
    }

    /// Where unreliable events go as datagrams, if the client takes them.
    pub(crate) fn datagrams(&self) -> Option<Datagrams> {
        self.conn.max_datagram_size()?;
        Some(Datagrams {
            conn: self.conn.clone(),
            prefix: self.framing().datagram_prefix().into(),
        })
    }

    /// Closes with HardLight's `close` and `reason`.
    pub(crate) fn close(&mut self, close: Close, reason: &str) {
        match &mut self.webtransport {
            None => self
                .conn
                .close(VarInt::from_u32(close.quic_code()), reason.as_bytes()),
            Some(session) => session.close(&self.conn, close.quic_code(), reason),
        }
    }
}

/// Sends datagrams on a connection, marked as its session's.
#[derive(Debug, Clone)]
pub(crate) struct Datagrams {
    conn: Connection,
    prefix: Shared,
}

impl Datagrams {
    /// The largest payload a datagram can carry now, if the client still takes them.
    pub(crate) fn max_size(&self) -> Option<usize> {
        self.conn
            .max_datagram_size()
            .map(|max| max.saturating_sub(self.prefix.len()))
    }

    /// Sends `payload` as one datagram (quinn drops the oldest waiting when its send
    /// buffer is full).
    pub(crate) fn send(&self, payload: Shared) -> Result<(), quinn::SendDatagramError> {
        if self.prefix.is_empty() {
            return self.conn.send_datagram(payload);
        }
        let mut datagram = BytesMut::with_capacity(self.prefix.len() + payload.len());
        datagram.put_slice(&self.prefix);
        datagram.put_slice(&payload);
        self.conn.send_datagram(datagram.freeze())
    }
}
