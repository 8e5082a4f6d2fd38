//! A TCP proxy whose connections can be cut, as a network failure would: both sides see
//! their connection end without a WebSocket close.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
};

use tokio::{
    net::{TcpListener, TcpStream},
    task::{AbortHandle, JoinHandle},
};

/// A running proxy; stops on drop.
pub struct TcpProxy {
    pub addr: SocketAddr,
    pipes: Arc<Mutex<Vec<AbortHandle>>>,
    down: Arc<AtomicBool>,
    server: Arc<Mutex<SocketAddr>>,
    task: JoinHandle<()>,
}

impl TcpProxy {
    /// Proxies to `server`.
    pub async fn start(server: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pipes: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let registry = Arc::clone(&pipes);
        let down = Arc::new(AtomicBool::new(false));
        let refusing = Arc::clone(&down);
        let server = Arc::new(Mutex::new(server));
        let upstream_addr = Arc::clone(&server);
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if refusing.load(Ordering::SeqCst) {
                    continue; // dropped: the network is down
                }
                let server = *upstream_addr.lock().unwrap();
                let pipe = tokio::spawn(async move {
                    if let Ok(mut upstream) = TcpStream::connect(server).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
                registry.lock().unwrap().push(pipe.abort_handle());
            }
        });
        Self {
            addr,
            pipes,
            down,
            server,
            task,
        }
    }

    /// Connects new connections to `server` from now on, as if the old server's host had
    /// come back under a new port (clients keep the proxy's address).
    pub fn retarget(&self, server: SocketAddr) {
        *self.server.lock().unwrap() = server;
    }

    /// Cuts every connection open now and refuses new ones until [`TcpProxy::heal`].
    pub fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for pipe in self.pipes.lock().unwrap().drain(..) {
            pipe.abort();
        }
    }

    /// Lets connections through again.
    pub fn heal(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}
