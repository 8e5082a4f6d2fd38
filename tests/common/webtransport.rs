//! A raw WebTransport peer: HTTP/3 settings, the extended `CONNECT` and the session's
//! stream marks written by hand over quinn, to reach the server as a browser does and to
//! send what no browser would.

use std::borrow::Cow;

use hardlight::protocol::{
    codec::encode,
    frame::{FrameHeader, Kind},
    handshake::Hello,
    io::read_frame,
    message::encode_frame,
    Compression,
};
use wtransport_proto::{
    frame::{Frame, FrameKind},
    headers::Headers,
    settings::Settings,
    stream_header::StreamHeader,
    varint::VarInt,
};

use super::{raw::quic_connect, TestServer};

/// A QUIC connection speaking HTTP/3, with its `CONNECT` stream once sent.
pub struct WtPeer {
    pub endpoint: quinn::Endpoint,
    pub conn: quinn::Connection,
    /// The HTTP/3 control stream, kept open.
    _control: quinn::SendStream,
    /// The `CONNECT` stream.
    pub connect: Option<(quinn::SendStream, quinn::RecvStream)>,
    /// Bytes read on the `CONNECT` stream after the last whole frame.
    read_ahead: Vec<u8>,
}

/// Appends `value` as a QUIC variable-length integer.
pub fn varint(out: &mut Vec<u8>, value: u64) {
    let _ = wtransport_proto::bytes::BytesWriter::put_varint(
        out,
        VarInt::try_from_u64(value).expect("a varint"),
    );
}

impl WtPeer {
    /// Connects to `server` with ALPN `h3` and sends the client's HTTP/3 settings.
    pub async fn connect(server: &TestServer) -> Result<Self, quinn::ConnectionError> {
        let (endpoint, conn) = quic_connect(server, b"h3".to_vec()).await;
        let conn = conn?;
        let mut control = conn.open_uni().await.expect("control stream");
        let mut bytes = Vec::new();
        StreamHeader::new_control()
            .write(&mut bytes)
            .expect("header");
        let settings = Settings::builder()
            .qpack_max_table_capacity(VarInt::from_u32(0))
            .qpack_blocked_streams(VarInt::from_u32(0))
            .enable_webtransport()
            .enable_h3_datagrams()
            .build();
        settings
            .generate_frame()
            .write(&mut bytes)
            .expect("settings");
        control.write_all(&bytes).await.expect("settings");
        Ok(Self {
            endpoint,
            conn,
            _control: control,
            connect: None,
            read_ahead: Vec::new(),
        })
    }

    /// Sends a request whose HEADERS frame carries `block` as its encoded field section.
    pub async fn send_header_block(&mut self, block: &[u8]) {
        let mut bytes = Vec::new();
        Frame::new_headers(Cow::Borrowed(block))
            .write(&mut bytes)
            .expect("headers");
        let (mut send, recv) = self.conn.open_bi().await.expect("request stream");
        send.write_all(&bytes).await.expect("request");
        self.connect = Some((send, recv));
    }

    /// Sends an extended `CONNECT` to `path` with `headers` besides the pseudo-headers,
    /// and returns the response's `:status`.
    pub async fn request(&mut self, path: &str, headers: &[(&str, &str)]) -> u16 {
        let mut fields = vec![
            (":method", "CONNECT"),
            (":scheme", "https"),
            (":authority", "localhost"),
            (":path", path),
            (":protocol", "webtransport"),
        ];
        fields.extend_from_slice(headers);
        let block: Headers = fields.into_iter().collect();
        let mut bytes = Vec::new();
        block.generate_frame().write(&mut bytes).expect("headers");
        let (mut send, mut recv) = self.conn.open_bi().await.expect("CONNECT stream");
        send.write_all(&bytes).await.expect("CONNECT");
        let frame = read_h3_frame(&mut recv, &mut self.read_ahead).await;
        assert!(matches!(frame.kind(), FrameKind::Headers));
        let response = Headers::with_frame(&frame).expect("a header block");
        let status = response.get(":status").expect(":status").parse().unwrap();
        self.connect = Some((send, recv));
        status
    }

    /// The session id: the `CONNECT` stream's id.
    pub fn session(&self) -> u64 {
        let (send, _) = self.connect.as_ref().expect("CONNECT sent");
        u64::from(send.id())
    }

    /// Opens a bidirectional stream of the session (marked with its id).
    pub async fn open_bi(&self) -> (quinn::SendStream, quinn::RecvStream) {
        let (mut send, recv) = self.conn.open_bi().await.expect("a stream");
        let mut mark = Vec::new();
        varint(&mut mark, 0x41);
        varint(&mut mark, self.session());
        send.write_all(&mark).await.expect("mark");
        (send, recv)
    }

    /// Sends `hello` on a new stream of the session and returns the server's answer.
    pub async fn hello(
        &self,
        hello: &Hello,
    ) -> (quinn::SendStream, quinn::RecvStream, FrameHeader, Vec<u8>) {
        let (mut send, mut recv) = self.open_bi().await;
        let frame = encode_frame(
            FrameHeader::new(Kind::Hello, 0),
            &encode(hello).expect("encode"),
            Compression::None,
        )
        .expect("frame");
        send.write_all(&frame).await.expect("hello");
        let (header, body) = read_frame(&mut recv, 1 << 20).await.expect("an answer");
        (send, recv, header, body.to_vec())
    }

    /// The next frame on the `CONNECT` stream (a capsule comes in a DATA frame).
    pub async fn connect_frame(&mut self) -> Frame<'static> {
        let (_, recv) = self.connect.as_mut().expect("CONNECT sent");
        read_h3_frame(recv, &mut self.read_ahead).await
    }
}

/// Reads one whole HTTP/3 frame, `buffer` holding what was read beyond the last one.
pub async fn read_h3_frame(recv: &mut quinn::RecvStream, buffer: &mut Vec<u8>) -> Frame<'static> {
    loop {
        let mut reader: &[u8] = buffer;
        if let Some(frame) = Frame::read(&mut reader).expect("an HTTP/3 frame") {
            let consumed = buffer.len() - reader.len();
            let kind = frame.kind();
            let payload = frame.payload().to_vec();
            drop(frame);
            buffer.drain(..consumed);
            return match kind {
                FrameKind::Headers => Frame::new_headers(Cow::Owned(payload)),
                FrameKind::Data => Frame::new_data(Cow::Owned(payload)),
                other => panic!("unexpected frame {other:?}"),
            };
        }
        let chunk = recv
            .read_chunk(4096, true)
            .await
            .expect("read")
            .expect("more of the frame");
        buffer.extend_from_slice(&chunk.bytes);
    }
}
