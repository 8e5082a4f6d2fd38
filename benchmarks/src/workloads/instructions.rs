//! Instructions per call, counted by callgrind: deterministic where wall time is noisy.
//!
//! A measurement runs the client (`bench count-client …`) and its server child each under
//! `valgrind --tool=callgrind`, twice: once making `small` calls and once `large`. Setup
//! (process start, TLS, handshake, warm-up) is the same in both, so the difference divided
//! by `large − small` is what one call costs each side. The per-symbol difference gives the
//! functions that cost is spent in. A fan-out is counted the same way
//! (`bench count-fanout …`, two numbers of events): per event delivered to one subscriber;
//! and a streaming call (`bench count-stream …`, two numbers of items): per item.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Command,
};

use crate::systems::System;

/// What one call costs, in instructions.
#[derive(Debug, Clone)]
pub struct PerCall {
    /// The client process's instructions per call.
    pub client: f64,
    /// The server process's instructions per call.
    pub server: f64,
    /// The costliest functions (self cost, client and server together), per call.
    pub top: Vec<(String, f64)>,
}

impl PerCall {
    /// Client plus server.
    pub fn total(&self) -> f64 {
        self.client + self.server
    }
}

/// Counts one side's instructions for one run: the callgrind output files it wrote.
struct Counted {
    total: u64,
    symbols: HashMap<String, u64>,
}

/// What the counted client does.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// The calls of the small run, then of the large one.
    pub calls: (usize, usize),
    /// Calls in flight at a time.
    pub in_flight: usize,
    /// Bytes each call echoes.
    pub size: usize,
}

/// Runs `system` under callgrind with `load`'s small then large number of calls, and
/// returns the difference per call. `work` is the directory the callgrind profiles are
/// written to (`<system>-<calls>.client` and `.server`, for `callgrind_annotate`); `certs`
/// the certificate directory the server reads.
pub fn measure(system: System, load: Load, certs: &Path, work: &Path) -> PerCall {
    let Load {
        calls,
        in_flight,
        size,
    } = load;
    difference(&work.join(system.key()), calls, 1, |calls| {
        vec![
            "count-client".into(),
            system.key().into(),
            calls.to_string(),
            in_flight.to_string(),
            size.to_string(),
            certs.display().to_string(),
        ]
    })
}

/// Runs a fan-out of `events.0` then `events.1` 64 B events to `subscribers` connections
/// over `transport` (`quic` or `websocket`) under callgrind, and returns the difference
/// per event delivered (one event to one subscriber). Profiles are written to `work` as
/// `fanout-<transport>-<events>.client` and `.server`.
pub fn measure_deliveries(
    transport: &str,
    subscribers: usize,
    events: (usize, usize),
    certs: &Path,
    work: &Path,
) -> PerCall {
    let prefix = work.join(format!("fanout-{transport}"));
    difference(&prefix, events, subscribers, |events| {
        vec![
            "count-fanout".into(),
            transport.into(),
            subscribers.to_string(),
            events.to_string(),
            certs.display().to_string(),
        ]
    })
}

/// Runs a streaming call of `items.0` then `items.1` items of `size` bytes on `system`
/// (a [`StreamSystem`](crate::systems::streams::StreamSystem) key) under callgrind, and
/// returns the difference per item. Profiles are written to `work` as
/// `items-<system>-<items>.client` and `.server`.
pub fn measure_items(
    system: &str,
    items: (usize, usize),
    size: usize,
    certs: &Path,
    work: &Path,
) -> PerCall {
    let prefix = work.join(format!("items-{system}"));
    difference(&prefix, items, 1, |items| {
        vec![
            "count-stream".into(),
            system.into(),
            items.to_string(),
            size.to_string(),
            certs.display().to_string(),
        ]
    })
}

/// Runs the counted client `args(n)` and its server, each under callgrind, for `n` =
/// `counts.0` then `counts.1`, and returns the difference per unit: `units` per count.
fn difference(
    prefix: &Path,
    (small, large): (usize, usize),
    units: usize,
    args: impl Fn(usize) -> Vec<String>,
) -> PerCall {
    let run = |count: usize| -> (Counted, Counted) {
        let prefix = PathBuf::from(format!("{}-{count}", prefix.display()));
        let client_out = prefix.with_extension("client");
        let server_out = prefix.with_extension("server");
        let exe = std::env::current_exe().expect("own executable");
        let status = Command::new("valgrind")
            .args(["--tool=callgrind", "--quiet"])
            .arg(format!("--callgrind-out-file={}", client_out.display()))
            .arg(exe)
            .args(args(count))
            .arg("--no-pin")
            .env(
                "BENCH_SERVER_WRAPPER",
                format!(
                    "valgrind --tool=callgrind --quiet --callgrind-out-file={}",
                    server_out.display()
                ),
            )
            .status()
            .expect("run valgrind (is it installed?)");
        assert!(status.success(), "the counted client failed: {status}");
        (read(&client_out), read(&server_out))
    };
    let (client_small, server_small) = run(small);
    let (client_large, server_large) = run(large);
    let units = ((large - small) * units) as f64;
    let per_unit = |a: &Counted, b: &Counted| b.total.saturating_sub(a.total) as f64 / units;
    let mut top: HashMap<String, f64> = HashMap::new();
    for (a, b) in [
        (&client_small, &client_large),
        (&server_small, &server_large),
    ] {
        for (symbol, cost) in &b.symbols {
            let before = a.symbols.get(symbol).copied().unwrap_or(0);
            *top.entry(symbol.clone()).or_default() += (*cost as f64 - before as f64) / units;
        }
    }
    let mut top: Vec<(String, f64)> = top.into_iter().collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    top.truncate(15);
    PerCall {
        client: per_unit(&client_small, &client_large),
        server: per_unit(&server_small, &server_large),
        top,
    }
}

/// Reads a callgrind output file through `callgrind_annotate`: the program total and the
/// self cost of every function.
fn read(out: &PathBuf) -> Counted {
    let output = Command::new("callgrind_annotate")
        .args(["--threshold=100", "--inclusive=no", "--auto=no"])
        .arg(out)
        .output()
        .expect("run callgrind_annotate");
    let text = String::from_utf8_lossy(&output.stdout);
    let mut total = 0;
    let mut symbols = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        let Some((count, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(count) = count.replace(',', "").parse::<u64>() else {
            continue;
        };
        // "(12.34%)  file:function [object]"
        let Some((_, symbol)) = rest.split_once(')') else {
            continue;
        };
        let symbol = symbol.trim();
        if symbol == "PROGRAM TOTALS" {
            total = count;
        } else {
            let name = symbol.split(" [").next().unwrap_or(symbol);
            // the file is before the first colon; the function may contain more
            let name = name.split_once(':').map_or(name, |(_, f)| f);
            *symbols.entry(name.to_owned()).or_default() += count;
        }
    }
    assert!(total > 0, "no totals in {}", out.display());
    Counted { total, symbols }
}
