//! The browser's `WebTransport`, bound directly (the bindings web-sys ships for it need
//! an unstable configuration flag), and its streams as frames and writes.

use hardlight_core::{
    codec::Bytes,
    decoder::FrameDecoder,
    frame::{FrameHeader, HEADER_LEN},
    ProtocolError,
};
use js_sys::{Array, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::{prelude::wasm_bindgen, JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    ReadableStream, ReadableStreamDefaultReader, WritableStream, WritableStreamDefaultWriter,
};

#[wasm_bindgen]
extern "C" {
    /// A WebTransport session.
    #[derive(Debug, Clone)]
    pub(crate) type WebTransport;

    #[wasm_bindgen(catch, constructor)]
    fn new(url: &str, options: &Object) -> Result<WebTransport, JsValue>;

    #[wasm_bindgen(method, getter)]
    fn ready(this: &WebTransport) -> Promise;

    #[wasm_bindgen(method, getter)]
    fn closed(this: &WebTransport) -> Promise;

    #[wasm_bindgen(method, js_name = createBidirectionalStream)]
    fn create_bidirectional_stream(this: &WebTransport, options: &Object) -> Promise;

    #[wasm_bindgen(method, getter, js_name = incomingUnidirectionalStreams)]
    fn incoming_unidirectional_streams(this: &WebTransport) -> ReadableStream;

    #[wasm_bindgen(method, getter)]
    fn datagrams(this: &WebTransport) -> Object;

    #[wasm_bindgen(method, catch, js_name = close)]
    fn close_with(this: &WebTransport, info: &Object) -> Result<(), JsValue>;
}

/// Why a stream or the session failed, as the browser said it.
pub(crate) fn describe(error: &JsValue) -> String {
    Reflect::get(error, &"message".into())
        .ok()
        .and_then(|message| message.as_string())
        .or_else(|| error.as_string())
        .unwrap_or_else(|| format!("{error:?}"))
}

fn set(object: &Object, key: &str, value: &JsValue) {
    // setting a property on a plain object cannot fail
    let _ = Reflect::set(object, &key.into(), value);
}

/// Whether this browser has WebTransport at all.
pub(crate) fn supported() -> bool {
    Reflect::get(&js_sys::global(), &"WebTransport".into())
        .is_ok_and(|constructor| constructor.is_function())
}

/// A session, closed when dropped (a connection attempt given up, a connection gone).
#[derive(Debug)]
pub(crate) struct Session(pub(crate) WebTransport);

impl Drop for Session {
    fn drop(&mut self) {
        self.0.close(
            hardlight_core::close::Close::Normal.quic_code(),
            "client disconnected",
        );
    }
}

impl Session {
    /// Opens a session to `url`, accepting the server's certificate by one of `hashes`
    /// (SHA-256) when given, otherwise by the browser's own verification.
    pub(crate) async fn connect(url: &str, hashes: &[[u8; 32]]) -> Result<Self, String> {
        let options = Object::new();
        // HTTP/3 only: no fallback to HTTP/2, which would lose datagrams
        set(&options, "requireUnreliable", &JsValue::TRUE);
        if !hashes.is_empty() {
            let list = hashes
                .iter()
                .map(|hash| {
                    let entry = Object::new();
                    set(&entry, "algorithm", &"sha-256".into());
                    set(&entry, "value", &Uint8Array::from(&hash[..]));
                    JsValue::from(entry)
                })
                .collect::<Array>();
            set(&options, "serverCertificateHashes", &list);
        }
        let session = Self(WebTransport::new(url, &options).map_err(|e| describe(&e))?);
        JsFuture::from(session.0.ready())
            .await
            .map_err(|e| describe(&e))?;
        Ok(session)
    }
}

impl WebTransport {
    /// Opens a bidirectional stream; a non-zero `send_order` sends it before (above zero)
    /// or after (below) the streams of order zero.
    pub(crate) async fn open_bi(
        &self,
        send_order: i32,
        max: u32,
    ) -> Result<(Writer, FrameStream), String> {
        let options = Object::new();
        if send_order != 0 {
            set(&options, "sendOrder", &send_order.into());
        }
        let stream = JsFuture::from(self.create_bidirectional_stream(&options))
            .await
            .map_err(|e| describe(&e))?;
        let readable: ReadableStream = property(&stream, "readable")?;
        let writable: WritableStream = property(&stream, "writable")?;
        Ok((Writer::new(&writable)?, FrameStream::new(&readable, max)?))
    }

    /// The first unidirectional stream the server opens.
    pub(crate) async fn accept_uni(&self) -> Result<ReadableStream, String> {
        let streams = ReadableStreamDefaultReader::new(&self.incoming_unidirectional_streams())
            .map_err(|e| describe(&e))?;
        let next = read(&streams).await?;
        streams.release_lock();
        next.ok_or_else(|| "the session ended".to_owned())?
            .dyn_into::<ReadableStream>()
            .map_err(|_| "not a stream".to_owned())
    }

    /// The datagrams the server sends, one chunk each.
    pub(crate) fn datagrams_reader(&self) -> Result<ReadableStreamDefaultReader, String> {
        let readable: ReadableStream = property(&self.datagrams(), "readable")?;
        ReadableStreamDefaultReader::new(&readable).map_err(|e| describe(&e))
    }

    /// Waits for the session's end: the server's close code and reason, or the failure.
    pub(crate) async fn ended(&self) -> (Option<u32>, String) {
        match JsFuture::from(self.closed()).await {
            Ok(info) => {
                let code = Reflect::get(&info, &"closeCode".into())
                    .ok()
                    .and_then(|code| code.as_f64())
                    .map(|code| code as u32);
                let reason = Reflect::get(&info, &"reason".into())
                    .ok()
                    .and_then(|reason| reason.as_string())
                    .unwrap_or_default();
                (code, reason)
            }
            Err(error) => (None, describe(&error)),
        }
    }

    /// Closes the session with `code` and `reason`.
    pub(crate) fn close(&self, code: u32, reason: &str) {
        let info = Object::new();
        set(&info, "closeCode", &code.into());
        set(&info, "reason", &reason.into());
        // closing a closed session throws: it is closed either way
        let _ = self.close_with(&info);
    }
}

fn property<T: JsCast>(object: &JsValue, key: &str) -> Result<T, String> {
    Reflect::get(object, &key.into())
        .map_err(|e| describe(&e))?
        .dyn_into::<T>()
        .map_err(|_| format!("no {key}"))
}

/// The next chunk of `reader`, `None` at its end.
async fn read(reader: &ReadableStreamDefaultReader) -> Result<Option<JsValue>, String> {
    chunk(JsFuture::from(reader.read()).await)
}

/// The chunk a read gave, `None` at the stream's end.
fn chunk(result: Result<JsValue, JsValue>) -> Result<Option<JsValue>, String> {
    let result = result.map_err(|e| describe(&e))?;
    let done = Reflect::get(&result, &"done".into())
        .map_err(|e| describe(&e))?
        .is_truthy();
    if done {
        return Ok(None);
    }
    Reflect::get(&result, &"value".into())
        .map(Some)
        .map_err(|e| describe(&e))
}

/// The next datagram of `reader`, `None` at the session's end.
pub(crate) async fn read_datagram(reader: &ReadableStreamDefaultReader) -> Option<Vec<u8>> {
    let chunk = read(reader).await.ok()??;
    Some(chunk.dyn_into::<Uint8Array>().ok()?.to_vec())
}

/// What reading a frame from a stream gave instead of one.
#[derive(Debug)]
pub(crate) enum Unread {
    /// The stream ended cleanly between frames.
    Finished,
    /// The bytes broke the protocol.
    Protocol(ProtocolError),
    /// The stream or the session failed.
    Failed(String),
}

/// A stream read as frames. Reading is cancel-safe: a read the browser has not
/// answered yet, and a frame begun, are kept for the next call.
#[derive(Debug)]
pub(crate) struct FrameStream {
    reader: ReadableStreamDefaultReader,
    decoder: FrameDecoder,
    /// Bytes read and not yet fed to a frame.
    pending: Vec<u8>,
    /// The read asked of the browser and not yet answered.
    read: Option<JsFuture>,
}

impl FrameStream {
    /// Reads `stream` as frames of at most `max` body bytes.
    pub(crate) fn new(stream: &ReadableStream, max: u32) -> Result<Self, String> {
        Ok(Self {
            reader: ReadableStreamDefaultReader::new(stream).map_err(|e| describe(&e))?,
            decoder: FrameDecoder::new(max),
            pending: Vec::new(),
            read: None,
        })
    }

    /// The next frame.
    pub(crate) async fn next(&mut self) -> Result<(FrameHeader, Bytes), Unread> {
        loop {
            if !self.pending.is_empty() {
                let mut input = &self.pending[..];
                let frame = self.decoder.feed(&mut input).map_err(Unread::Protocol)?;
                let used = self.pending.len() - input.len();
                self.pending.drain(..used);
                if let Some(frame) = frame {
                    return Ok(frame);
                }
            }
            let reader = &self.reader;
            let read = self
                .read
                .get_or_insert_with(|| JsFuture::from(reader.read()));
            let result = read.await;
            self.read = None;
            match chunk(result).map_err(Unread::Failed)? {
                Some(chunk) => {
                    let chunk = chunk
                        .dyn_into::<Uint8Array>()
                        .map_err(|_| Unread::Failed("a chunk that is not bytes".into()))?;
                    self.pending = chunk.to_vec();
                }
                None if self.decoder.received() > 0 => {
                    let expected = self.decoder.header().map_or(HEADER_LEN as u64, |h| {
                        HEADER_LEN as u64 + u64::from(h.body_len)
                    });
                    return Err(Unread::Protocol(ProtocolError::Truncated {
                        expected,
                        got: self.decoder.received() as u64,
                    }));
                }
                None => return Err(Unread::Finished),
            }
        }
    }

    /// Stops reading: the server is told to stop sending.
    pub(crate) fn cancel(&self) {
        let _ = self.reader.cancel();
    }
}

/// A stream's sending side.
#[derive(Debug)]
pub(crate) struct Writer(WritableStreamDefaultWriter);

impl Writer {
    fn new(stream: &WritableStream) -> Result<Self, String> {
        stream.get_writer().map(Self).map_err(|e| describe(&e))
    }

    /// Writes `bytes`, once the stream has room for them.
    pub(crate) async fn write(&self, bytes: &[u8]) -> Result<(), String> {
        JsFuture::from(self.0.write_with_chunk(&Uint8Array::from(bytes)))
            .await
            .map(drop)
            .map_err(|e| describe(&e))
    }

    /// Ends the stream after what was written.
    pub(crate) fn finish(&self) {
        let _ = self.0.close();
    }

    /// Resets the stream: the server is told the rest will not come.
    pub(crate) fn abort(&self) {
        let _ = self.0.abort();
    }
}
