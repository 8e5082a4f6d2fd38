//! `nats-server` processes for cluster tests. Each test starts its own, on a free loopback
//! port, behind a TCP proxy that HardLight servers connect through: killing the process
//! (SIGKILL) and starting another one at the proxy's address is a NATS restart as clients
//! see it, with no port reused.
//!
//! `nats-server` must be on `PATH` (`.ci/run` installs it); without it a test is skipped,
//! except under CI, where it fails.

use std::{net::SocketAddr, path::PathBuf, process::Child};

use super::{
    nats_process::{installed, spawn},
    tcp_proxy::TcpProxy,
};

/// A `nats-server` reached through a proxy; killed when dropped.
pub struct NatsServer {
    proxy: TcpProxy,
    child: Option<Child>,
    config: Option<PathBuf>,
}

impl NatsServer {
    /// A `nats-server` with its defaults, or `None` (the test is to be skipped) where none
    /// is installed outside CI.
    pub async fn start() -> Option<Self> {
        Self::start_with("").await
    }

    /// A `nats-server` with `config` (its configuration file's syntax, e.g.
    /// `max_payload: 4096`).
    pub async fn start_with(config: &str) -> Option<Self> {
        if !installed() {
            assert!(
                std::env::var_os("CI").is_none(),
                "nats-server is not installed (.ci/run installs it)"
            );
            eprintln!("skipped: nats-server is not installed (.ci/run installs it)");
            return None;
        }
        let config = (!config.is_empty()).then(|| {
            let path = std::env::temp_dir().join(format!(
                "hardlight-nats-{}-{}.conf",
                std::process::id(),
                rand::random::<u64>()
            ));
            std::fs::write(&path, config).expect("write the nats-server configuration");
            path
        });
        let (child, addr) = spawn(config.as_ref());
        let proxy = TcpProxy::start(addr).await;
        Some(Self {
            proxy,
            child: Some(child),
            config,
        })
    }

    /// The URL HardLight servers connect to (the proxy's).
    pub fn url(&self) -> String {
        format!("nats://{}", self.proxy.addr)
    }

    /// The proxy, to cut one server's connections (`TcpProxy::cut`) — use a proxy of its
    /// own in front of this one for that — or to see where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.proxy.addr
    }

    /// Kills the process (SIGKILL): every connection to it ends at once, and new ones are
    /// refused until [`NatsServer::restart`].
    pub fn kill(&mut self) {
        self.proxy.cut();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a new process (with the same configuration) at the proxy's address.
    pub async fn restart(&mut self) {
        self.kill();
        let (child, addr) = spawn(self.config.as_ref());
        self.child = Some(child);
        self.proxy.retarget(addr);
        self.proxy.heal();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        if let Some(config) = &self.config {
            let _ = std::fs::remove_file(config);
        }
    }
}
