//! Length-prefixed echo, requests pipelined on one ordered byte stream and answered in
//! order; responses are flushed once the server has no more requests buffered. The TCP
//! floor runs it over TLS, the pipelined QUIC floor over one quinn stream.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use futures_util::{future::BoxFuture, FutureExt};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter},
    sync::{mpsc, oneshot},
};

use super::{Connection, Target, MAX_MESSAGE};

/// Serves one stream until it ends.
pub(super) async fn serve(read: impl AsyncRead + Unpin, write: impl AsyncWrite + Unpin) {
    let (mut read, mut write) = (BufReader::new(read), BufWriter::new(write));
    while let Ok(data) = read_message(&mut read).await {
        if write_message(&mut write, &data).await.is_err() {
            return;
        }
        if read.buffer().is_empty() && write.flush().await.is_err() {
            return;
        }
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

/// A client of one stream: a reader task matching responses to requests in order, and a
/// writer task that writes every request queued so far, then flushes once. `keep` is held
/// as long as the connection (its endpoint, say).
pub(super) fn connect(
    read: impl AsyncRead + Unpin + Send + 'static,
    write: impl AsyncWrite + Unpin + Send + 'static,
    keep: impl Send + Sync + 'static,
) -> Connection {
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
    Arc::new(Pipelined {
        requests,
        pending,
        tasks: [reader, writer],
        _keep: Box::new(keep),
    })
}

struct Pipelined {
    requests: mpsc::UnboundedSender<Vec<u8>>,
    pending: Pending,
    tasks: [tokio::task::JoinHandle<()>; 2],
    _keep: Box<dyn Send + Sync>,
}

impl Drop for Pipelined {
    fn drop(&mut self) {
        self.tasks.iter().for_each(tokio::task::JoinHandle::abort);
    }
}

impl Target for Pipelined {
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
