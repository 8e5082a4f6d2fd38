//! A server running in a child process of the benchmark.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::OnceLock,
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

/// Where the benchmark's processes run, from its command line: the client on the first
/// core and every server on the last (the default), all of them on the first core
/// (`--one-core`), or wherever the scheduler puts them (`--no-pin`). The cores are those
/// the benchmark was started on; its servers are told them (`--cores=`), since each
/// inherits the affinity of a client that has already pinned itself to one core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The client on one core, every server on another: each side has a core of its
    /// own, and a reply wakes a process on the other core.
    Apart {
        /// The client's core.
        client: usize,
        /// The servers' core.
        server: usize,
    },
    /// Client and servers share one core: a call's wall time is the CPU both sides
    /// spend on it, with no wake-up across cores.
    OneCore(usize),
    /// No pinning (also where there is a single core to run on).
    Unpinned,
}

impl Placement {
    /// The placement of this process: decided by the first call, which the benchmark
    /// makes before it pins itself.
    pub fn get() -> Self {
        static PLACEMENT: OnceLock<Placement> = OnceLock::new();
        *PLACEMENT.get_or_init(Self::from_args)
    }

    fn from_args() -> Self {
        let args: Vec<String> = std::env::args().collect();
        if args.iter().any(|a| a == "--no-pin") {
            return Self::Unpinned;
        }
        let cores = match args.iter().find_map(|a| a.strip_prefix("--cores=")) {
            Some(list) => cpu_list(list),
            None => core_affinity::get_core_ids()
                .unwrap_or_default()
                .into_iter()
                .map(|core| core.id)
                .collect(),
        };
        let (Some(&first), Some(&last)) = (cores.first(), cores.last()) else {
            return Self::Unpinned;
        };
        if args.iter().any(|a| a == "--one-core") {
            Self::OneCore(first)
        } else if first == last {
            Self::Unpinned
        } else {
            Self::Apart {
                client: first,
                server: last,
            }
        }
    }

    /// The arguments that ask a child process for this placement.
    pub fn args(self) -> Vec<String> {
        match self {
            Self::Apart { client, server } => vec![format!("--cores={client},{server}")],
            Self::OneCore(core) => vec!["--one-core".into(), format!("--cores={core}")],
            Self::Unpinned => vec!["--no-pin".into()],
        }
    }

    /// The core a server (`server`) or the client runs on; `None` when unpinned.
    pub fn core(self, server: bool) -> Option<usize> {
        match self {
            Self::Apart { server: core, .. } if server => Some(core),
            Self::Apart { client: core, .. } | Self::OneCore(core) => Some(core),
            Self::Unpinned => None,
        }
    }

    /// Pins the calling thread (and the threads it starts afterwards) to its core.
    pub fn pin(self, server: bool) {
        if let Some(id) = self.core(server) {
            core_affinity::set_for_current(core_affinity::CoreId { id });
        }
    }

    /// Moves every thread of the server process `pid` (one this benchmark did not build,
    /// such as `nats-server`) to the servers' core, with `taskset`.
    pub fn place_server(self, pid: u32) {
        if let Some(core) = self.core(true) {
            let _ = Command::new("taskset")
                .args(["-a", "-p", "-c", &core.to_string(), &pid.to_string()])
                .stdout(Stdio::null())
                .status();
        }
    }
}

/// The cores of a CPU list such as `0-3,8,10-11`, as the kernel writes them.
fn cpu_list(list: &str) -> Vec<usize> {
    let mut cores = Vec::new();
    for range in list.trim().split(',') {
        let mut ends = range.split('-').map(|n| n.parse::<usize>().ok());
        match (ends.next().flatten(), ends.next().flatten()) {
            (Some(from), Some(to)) => cores.extend(from..=to),
            (Some(one), None) => cores.push(one),
            _ => {}
        }
    }
    cores
}

#[cfg(test)]
mod tests {
    use super::cpu_list;

    #[test]
    fn a_cpu_list_gives_every_core_it_names() {
        assert_eq!(cpu_list("0-1\n"), [0, 1]);
        assert_eq!(cpu_list("0"), [0]);
        assert_eq!(cpu_list("0-2,4,6-7"), [0, 1, 2, 4, 6, 7]);
        assert_eq!(cpu_list(""), [] as [usize; 0]);
    }
}
