//! The in-process transport: connections to a server over memory instead of sockets,
//! carrying the WebSocket framing of the protocol, with the same handshake, limits and
//! lifecycle as the network transports — for tests of applications and of HardLight
//! itself, with nothing bound and nothing to time out on.

use tokio::{
    io::DuplexStream,
    sync::{mpsc, Mutex},
};

/// Bytes buffered in each direction of an in-process connection.
pub const MEMORY_BUFFER: usize = 64 * 1024;

/// Opens in-process connections to a server; from `Server::in_memory()`, for
/// `ClientConfig::in_memory`. Cheap to clone.
#[derive(Debug, Clone)]
pub struct InMemory {
    tx: mpsc::UnboundedSender<DuplexStream>,
}

/// The server's side of [`InMemory`]: where its connections arrive.
#[derive(Debug)]
pub struct MemoryIncoming {
    rx: Mutex<mpsc::UnboundedReceiver<DuplexStream>>,
}

impl InMemory {
    /// A way in and the server's side of it.
    ///
    /// ```
    /// let (way_in, incoming) = hardlight_core::memory::InMemory::pair();
    /// assert!(way_in.connect().is_some());
    /// drop(incoming);
    /// assert!(way_in.connect().is_none(), "the server is gone");
    /// ```
    pub fn pair() -> (Self, MemoryIncoming) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, MemoryIncoming { rx: Mutex::new(rx) })
    }

    /// Opens a connection: the client's end of it, or `None` if the server is gone.
    pub fn connect(&self) -> Option<DuplexStream> {
        let (client, server) = tokio::io::duplex(MEMORY_BUFFER);
        self.tx.send(server).ok().map(|()| client)
    }
}

impl MemoryIncoming {
    /// The next connection's server end; `None` once every [`InMemory`] is dropped.
    pub async fn accept(&self) -> Option<DuplexStream> {
        self.rx.lock().await.recv().await
    }
}
