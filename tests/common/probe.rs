//! A service whose handlers report their lifecycle through process-wide counters.
//! Each test binary has its own copy of these statics.

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use hardlight::*;
use tokio::sync::Notify;

pub static HANDLERS_DROPPED: AtomicUsize = AtomicUsize::new(0);
pub static CALLS_STARTED: AtomicUsize = AtomicUsize::new(0);
pub static CALLS_CANCELLED: AtomicUsize = AtomicUsize::new(0);
static CHANGED: Notify = Notify::const_new();

fn bump(counter: &AtomicUsize) {
    counter.fetch_add(1, Ordering::SeqCst);
    CHANGED.notify_waiters();
}

pub fn count(counter: &AtomicUsize) -> usize {
    counter.load(Ordering::SeqCst)
}

/// Waits until `condition` holds (a counter moved); panics after 60 s as a safety net.
pub async fn wait_until(condition: impl Fn() -> bool) {
    let wait = async {
        loop {
            let changed = CHANGED.notified();
            if condition() {
                return;
            }
            changed.await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .expect("condition never became true");
}

#[rpc(state = ProbeState)]
pub trait Probe {
    /// Never returns on its own; counts its cancellation.
    async fn hold(&self) -> HandlerResult<()>;
    /// Returns after `millis`.
    async fn slow(&self, millis: u64) -> HandlerResult<u64>;
}

#[connection_state]
pub struct ProbeState {
    pub calls: u32,
}

#[rpc_handler(pub)]
impl Probe for ProbeHandler {
    async fn hold(&self) -> HandlerResult<()> {
        let _guard = CancelGuard;
        bump(&CALLS_STARTED);
        std::future::pending::<()>().await;
        Ok(())
    }

    async fn slow(&self, millis: u64) -> HandlerResult<u64> {
        self.state.write().await.calls += 1;
        bump(&CALLS_STARTED);
        tokio::time::sleep(Duration::from_millis(millis)).await;
        Ok(millis)
    }
}

impl Drop for ProbeHandler {
    fn drop(&mut self) {
        bump(&HANDLERS_DROPPED);
    }
}

/// Counts a handler future dropped before completion.
struct CancelGuard;

impl Drop for CancelGuard {
    fn drop(&mut self) {
        bump(&CALLS_CANCELLED);
    }
}
