//! Graceful shutdown: stop accepting, tell clients, drain in-flight calls within a deadline.

use std::{sync::Arc, time::Duration};

use tokio::{sync::watch, time::Instant};

/// Signals shared between the server, its connections and [`ShutdownHandle`]s.
#[derive(Debug)]
pub(crate) struct Signals {
    /// `Some(deadline)` once shutdown was requested.
    pub(crate) deadline: watch::Sender<Option<Instant>>,
    /// `true` once `run()` has returned.
    pub(crate) finished: watch::Sender<bool>,
}

impl Signals {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            deadline: watch::Sender::new(None),
            finished: watch::Sender::new(false),
        })
    }
}

/// Waits until shutdown is requested and returns its deadline (`None` if the server is gone).
pub(crate) async fn requested(rx: &mut watch::Receiver<Option<Instant>>) -> Option<Instant> {
    rx.wait_for(Option::is_some)
        .await
        .ok()
        .and_then(|deadline| *deadline)
}

/// Completes once shutdown was requested and its deadline has passed; never if the server
/// is gone without one.
pub(crate) async fn deadline_passed(rx: &mut watch::Receiver<Option<Instant>>) {
    match requested(rx).await {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Stops a running server; cheap to clone and send to other tasks.
///
/// ```no_run
/// # use std::time::Duration;
/// # async fn demo(handle: hardlight_server::ShutdownHandle) {
/// // stop accepting, send GoAway to clients, give in-flight calls 5 s to finish
/// handle.shutdown(Duration::from_secs(5)).await;
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    pub(crate) signals: Arc<Signals>,
}

impl ShutdownHandle {
    /// Starts a graceful shutdown and waits until the server has stopped.
    ///
    /// New connections are refused at once; connected clients are told to make no new
    /// calls; in-flight calls get until `grace` has passed, after which their handlers are
    /// dropped and the remaining connections closed.
    pub async fn shutdown(&self, grace: Duration) {
        self.signal(grace);
        let mut finished = self.signals.finished.subscribe();
        // An error means the server was dropped without running: nothing left to wait for.
        let _ = finished.wait_for(|done| *done).await;
    }

    /// Starts a graceful shutdown without waiting for it to complete.
    pub fn signal(&self, grace: Duration) {
        let deadline = Instant::now() + grace;
        self.signals.deadline.send_if_modified(|current| {
            let first = current.is_none();
            if first {
                *current = Some(deadline);
            }
            first
        });
    }
}
