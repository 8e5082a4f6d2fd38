//! A server running in a child process of the benchmark.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
};

/// A server running in a child process; killed on drop.
#[derive(Debug)]
pub struct ChildServer {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl ChildServer {
    /// Runs this executable with `args`; the child prints its address as its first line.
    pub fn spawn(args: &[&str]) -> Self {
        let exe = std::env::current_exe().expect("own executable");
        // BENCH_SERVER_WRAPPER runs the server under a tool, e.g. "valgrind --tool=massif".
        let wrapper = std::env::var("BENCH_SERVER_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut command = match words.next() {
            Some(tool) => {
                let mut command = Command::new(tool);
                command.args(words).arg(exe);
                command
            }
            None => Command::new(exe),
        };
        let mut child = command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn a server process");
        let stdout = child.stdout.take().expect("child stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the server's address");
        let addr = line
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("server printed {line:?} instead of an address: {e}"));
        Self { child, addr }
    }

    /// The child's resident set size in KiB (Linux `/proc`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc status")
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        // Closing stdin asks the server to exit (see `exit_with_parent`); kill it if it
        // has not after 30 s (a server under valgrind takes a while to write its profile).
        drop(self.child.stdin.take());
        for _ in 0..600 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Exits this (server) process once its stdin closes: when the benchmark drops its
/// [`ChildServer`], or when the benchmark itself dies.
pub fn exit_with_parent() {
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        std::process::exit(0);
    });
}

/// Prints the address a server listens on, as [`ChildServer::spawn`] expects.
pub fn announce(addr: SocketAddr) {
    use std::io::Write;
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{addr}");
    let _ = out.flush();
}

/// Pins the calling thread (and the threads it starts afterwards) to the last core when
/// `server` is true and to the first core otherwise, so that client and server never share
/// a core and run-to-run variance from migration is gone. Does nothing on a single core.
pub fn pin(server: bool) {
    let Some(cores) = core_affinity::get_core_ids() else {
        return;
    };
    if cores.len() < 2 {
        return;
    }
    let core = if server {
        cores[cores.len() - 1]
    } else {
        cores[0]
    };
    core_affinity::set_for_current(core);
}
