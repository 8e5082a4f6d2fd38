//! A server in a child process, so that a test can kill it (SIGKILL, no close) or watch it
//! survive what would crash it. The child is this test binary run again with only one
//! test selected, the serving test, and `CHILD_ENV` set; without it that test returns at
//! once.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
};

use hardlight::*;

/// Set in the child's environment only: the serving test serves instead of returning.
const CHILD_ENV: &str = "HARDLIGHT_TEST_CHILD_SERVER";
/// The line prefix the child announces its address and certificate with.
const ANNOUNCE: &str = "hardlight-child-server";

/// Whether this process is a child started by [`ChildServer::spawn`].
pub fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// In the child: tells the parent where the server is, then serves until killed.
pub async fn announce_and_serve(addr: SocketAddr, certificate_pem: &str) -> ! {
    println!("{ANNOUNCE} {addr} {}", certificate_pem.replace('\n', "|"));
    std::future::pending().await
}

/// A server running in a child process; killed when dropped.
pub struct ChildServer {
    child: Child,
    pub addr: SocketAddr,
    pub certificate_pem: String,
}

impl ChildServer {
    /// Runs test `serving` of this binary in a child process and waits for its server's
    /// announcement.
    pub fn spawn(serving: &str) -> Self {
        Self::spawn_with(serving, &[])
    }

    /// Like [`ChildServer::spawn`], with `env` added to the child's environment.
    pub fn spawn_with(serving: &str, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([serving, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, "1")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        // the test harness may have begun the line ("test serving ... ")
        let line = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| Some(line.split_once(ANNOUNCE)?.1.to_owned()))
            .expect("the child server announces itself");
        let mut parts = line.trim_start().splitn(2, ' ');
        let addr = parts.next().unwrap().parse().unwrap();
        let certificate_pem = parts.next().unwrap().replace('|', "\n");
        Self {
            child,
            addr,
            certificate_pem,
        }
    }

    /// A client configuration for this server over `transport`.
    pub fn config(&self, transport: Transport) -> ClientConfig {
        ClientConfig::new(self.addr.to_string())
            .with_ca_pem(self.certificate_pem.clone())
            .with_transport(transport)
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Kills the process with SIGKILL: no close reaches its peers.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
