//! Starting `nats-server` on a free loopback port: for the cluster tests and the cluster
//! benchmark (which includes this file).

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
};

/// Whether `nats-server` is on `PATH`.
pub fn installed() -> bool {
    Command::new("nats-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Starts `nats-server` (with the configuration file `config`, if any) on a free loopback
/// port, and reads the port from its log.
pub fn spawn(config: Option<&PathBuf>) -> (Child, SocketAddr) {
    let mut command = Command::new("nats-server");
    command.args(["-a", "127.0.0.1", "-p", "-1"]);
    if let Some(config) = config {
        command.arg("-c").arg(config);
    }
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start nats-server");
    let mut log = BufReader::new(child.stderr.take().expect("its log"));
    let mut line = String::new();
    let addr = loop {
        line.clear();
        let read = log.read_line(&mut line).expect("read its log");
        assert!(read > 0, "nats-server ended before listening");
        if let Some(at) = line.split("Listening for client connections on ").nth(1) {
            break at.trim().parse().expect("a socket address");
        }
    };
    // keep reading the log, so that the process never blocks on a full pipe
    std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
    (child, addr)
}
