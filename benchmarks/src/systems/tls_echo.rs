//! The TCP floor: TLS 1.3 over TCP, length-prefixed echo, requests pipelined on one
//! connection and answered in order; responses are flushed once the server has no more
//! requests buffered.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use futures_util::{future::BoxFuture, FutureExt};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter},
    net::{TcpListener, TcpStream},
    sync::{mpsc, oneshot},
};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::{Connection, Target, MAX_MESSAGE};
use crate::{child::announce, tls::Certificate};

const ALPN: &[u8] = b"echo";

pub(super) async fn serve(cert: Certificate) {
    let acceptor = TlsAcceptor::from(Arc::new(cert.server_config(ALPN)));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    announce(listener.local_addr().expect("address"));
    while let Ok((tcp, _)) = listener.accept().await {
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let (read, write) = tokio::io::split(tls);
            let (mut read, mut write) = (BufReader::new(read), BufWriter::new(write));
            while let Ok(data) = read_message(&mut read).await {
                if write_message(&mut write, &data).await.is_err() {
                    return;
                }
                if read.buffer().is_empty() && write.flush().await.is_err() {
                    return;
                }
            }
        });
    }
}

async fn read_message(read: &mut (impl AsyncReadExt + Unpin)) -> std::io::Result<Vec<u8>> {
    let len = read.read_u32().await? as usize;
    if len > MAX_MESSAGE {
        return Err(std::io::Error::other("message too large"));
    }
    let mut data = vec![0; len];
    read.read_exact(&mut data).await?;
    Ok(data)
}

async fn write_message(
    write: &mut (impl AsyncWriteExt + Unpin),
    data: &[u8],
) -> std::io::Result<()> {
    write.write_u32(data.len() as u32).await?;
    write.write_all(data).await
}

type Pending = Arc<Mutex<VecDeque<oneshot::Sender<Vec<u8>>>>>;

pub(super) async fn connect(addr: SocketAddr, cert: &Certificate) -> Connection {
    let connector = TlsConnector::from(Arc::new(cert.client_config(ALPN)));
    let tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("server name");
    let tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let (read, write) = tokio::io::split(tls);
    let pending: Pending = Arc::default();
    let replies = Arc::clone(&pending);
    let reader = tokio::spawn(async move {
        let mut read = BufReader::new(read);
        while let Ok(data) = read_message(&mut read).await {
            let next = replies.lock().expect("pending replies").pop_front();
            if let Some(reply) = next {
                let _ = reply.send(data);
            }
        }
    });
    // One writer task: it writes every request queued so far, then flushes once.
    let (requests, mut queued) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(async move {
        let mut write = BufWriter::new(write);
        while let Some(data) = queued.recv().await {
            let mut next = Some(data);
            while let Some(data) = next {
                if write_message(&mut write, &data).await.is_err() {
                    return;
                }
                next = queued.try_recv().ok();
            }
            if write.flush().await.is_err() {
                return;
            }
        }
    });
    Arc::new(TlsTarget {
        requests,
        pending,
        tasks: [reader, writer],
    })
}

struct TlsTarget {
    requests: mpsc::UnboundedSender<Vec<u8>>,
    pending: Pending,
    tasks: [tokio::task::JoinHandle<()>; 2],
}

impl Drop for TlsTarget {
    fn drop(&mut self) {
        self.tasks.iter().for_each(tokio::task::JoinHandle::abort);
    }
}

impl Target for TlsTarget {
    fn call(&self, data: Vec<u8>) -> BoxFuture<'static, Vec<u8>> {
        let (tx, rx) = oneshot::channel();
        {
            // queue the reply slot and the request under one lock, so their orders agree
            let mut pending = self.pending.lock().expect("pending replies");
            pending.push_back(tx);
            self.requests.send(data).expect("writer running");
        }
        async move { rx.await.expect("reply") }.boxed()
    }
}
