//! Instructions per call, counted by callgrind: deterministic where wall time is noisy.
//!
//! A measurement runs the client (`bench count-client …`) and its server child each under
//! `valgrind --tool=callgrind`, twice: once making `small` calls and once `large`. Setup
//! (process start, connecting, warm-up) is the same in both, so the difference divided by
//! `large − small` is what one call costs each side; the TLS handshake, whose cost depends
//! on whether a connection resumed a session, is not counted at all. The per-symbol
//! difference gives the functions that cost is spent in. A fan-out is counted the same
//! way (`bench count-fanout …`, two numbers of events): per event delivered to one
//! subscriber; and a streaming call (`bench count-stream …`, two numbers of items): per
//! item.
//!
//! Each side's locked operations (atomic read-modify-writes: instructions with a `lock`
//! prefix, or an `xchg` with memory, as `objdump -d` shows the executable) are counted
//! from the same runs: callgrind counts one as one instruction, though it costs tens of
//! cycles.

use std::{
    collections::{HashMap, HashSet},
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
    /// The client's and the server's locked operations per call, in the benchmark's own
    /// executable (not the C library).
    pub locked: (f64, f64),
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
    /// Executions of locked instructions.
    locked: u64,
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

/// The TLS handshake's functions (over TCP, tokio-rustls's; over QUIC, quinn's), left out
/// of every count: a connection that resumes a session skips verifying the server's
/// certificate (about 1.5 M instructions) and the server's signature, and how many of a
/// run's connections resume depends on when their tickets arrived, so a handshake's cost
/// would not cancel out between the two runs. None of them calls another.
const UNCOUNTED: [&str; 4] = [
    "*MidHandshake*as*Future*poll*",
    "*TlsConnector*connect_impl*",
    "*TlsSession*as*Session*read_handshake*",
    "*TlsSession*as*Session*write_handshake*",
];

/// callgrind's arguments: instructions counted by address, the handshake left out.
fn callgrind_args() -> Vec<String> {
    let mut args = vec![
        "--tool=callgrind".to_owned(),
        "--quiet".to_owned(),
        "--dump-instr=yes".to_owned(),
    ];
    args.extend(UNCOUNTED.map(|function| format!("--toggle-collect={function}")));
    // after them: each `--toggle-collect` turns counting at the start off
    args.push("--collect-atstart=yes".to_owned());
    args
}

/// Runs the counted client `args(n)` and its server, each under callgrind, for `n` =
/// `counts.0` then `counts.1`, and returns the difference per unit: `units` per count.
fn difference(
    prefix: &Path,
    (small, large): (usize, usize),
    units: usize,
    args: impl Fn(usize) -> Vec<String>,
) -> PerCall {
    let exe = std::env::current_exe()
        .and_then(|exe| exe.canonicalize())
        .expect("own executable");
    let locked = locked_instructions(&exe);
    let run = |count: usize| -> (Counted, Counted) {
        let prefix = PathBuf::from(format!("{}-{count}", prefix.display()));
        let client_out = prefix.with_extension("client");
        let server_out = prefix.with_extension("server");
        let status = Command::new("valgrind")
            .args(callgrind_args())
            .arg(format!("--callgrind-out-file={}", client_out.display()))
            .arg(&exe)
            .args(args(count))
            .arg("--no-pin")
            .env(
                "BENCH_SERVER_WRAPPER",
                format!(
                    "valgrind {} --callgrind-out-file={}",
                    callgrind_args().join(" "),
                    server_out.display()
                ),
            )
            .status()
            .expect("run valgrind (is it installed?)");
        assert!(status.success(), "the counted client failed: {status}");
        (
            read(&client_out, &exe, &locked),
            read(&server_out, &exe, &locked),
        )
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
    let locked_per_unit =
        |a: &Counted, b: &Counted| b.locked.saturating_sub(a.locked) as f64 / units;
    PerCall {
        client: per_unit(&client_small, &client_large),
        server: per_unit(&server_small, &server_large),
        locked: (
            locked_per_unit(&client_small, &client_large),
            locked_per_unit(&server_small, &server_large),
        ),
        top,
    }
}

/// The addresses of `exe`'s locked instructions: a `lock` prefix, or an `xchg` with a
/// memory operand (locked without one).
fn locked_instructions(exe: &Path) -> HashSet<u64> {
    let output = Command::new("objdump")
        .args(["-d", "--no-show-raw-insn"])
        .arg(exe)
        .output()
        .expect("run objdump (binutils)");
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .filter_map(|line| {
            let (address, rest) = line.trim_start().split_once(':')?;
            let mnemonic = rest.split_whitespace().next()?;
            let locked = mnemonic.starts_with("lock")
                || (mnemonic.starts_with("xchg") && rest.contains('('));
            locked.then(|| u64::from_str_radix(address, 16).ok())?
        })
        .collect()
}

/// How often the instructions at `locked` ran in `exe`, from a profile written with
/// `--dump-instr=yes`: each cost line's first position is an instruction's address
/// (absolute, or relative to the last line's), its last number how often it ran; the line
/// after a `calls=` line is a call's inclusive cost, not executions.
fn locked_executions(out: &Path, exe: &Path, locked: &HashSet<u64>) -> u64 {
    let text = std::fs::read_to_string(out).expect("read a callgrind profile");
    let mut objects = HashMap::new();
    let (mut in_exe, mut address, mut call_cost, mut executions) = (false, 0u64, false, 0u64);
    for line in text.lines() {
        if let Some(object) = line
            .strip_prefix("ob=")
            .or_else(|| line.strip_prefix("cob="))
        {
            // "(id) path" the first time, "(id)" after
            let (id, path) = object.split_once(' ').unwrap_or((object, ""));
            if !path.is_empty() {
                objects.insert(id.to_owned(), Path::new(path).canonicalize().ok());
            }
            if line.starts_with("ob=") {
                in_exe = objects.get(id).is_some_and(|p| p.as_deref() == Some(exe));
            }
            continue;
        }
        if line.starts_with("calls=") {
            call_cost = true;
            continue;
        }
        let mut fields = line.split_whitespace();
        let Some(position) = fields.next() else {
            continue;
        };
        let parsed = match position.as_bytes().first() {
            Some(b'*') => Some(address),
            Some(b'+') => number(&position[1..]).map(|step| address.wrapping_add(step)),
            Some(b'-') => number(&position[1..]).map(|step| address.wrapping_sub(step)),
            Some(b'0'..=b'9') => number(position),
            _ => None,
        };
        let Some(parsed) = parsed else {
            continue;
        };
        address = parsed;
        if std::mem::take(&mut call_cost) || !in_exe || !locked.contains(&address) {
            continue;
        }
        let ran = fields.last().and_then(|n| n.parse::<u64>().ok());
        executions += ran.unwrap_or(0);
    }
    executions
}

/// A position in a callgrind profile: hexadecimal with `0x`, decimal without.
fn number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// Reads a callgrind output file through `callgrind_annotate`: the program total and the
/// self cost of every function; and the executions of `exe`'s `locked` instructions.
fn read(out: &PathBuf, exe: &Path, locked: &HashSet<u64>) -> Counted {
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
    Counted {
        total,
        symbols,
        locked: locked_executions(out, exe, locked),
    }
}
