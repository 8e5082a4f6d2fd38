//! The performance targets, checked against one run's tables: each HardLight figure next
//! to its floor or its bar, the ratio, and whether the bar is met. A target whose tables
//! did not run (say `instructions` was not in `--only`) says which workload it needs.

use crate::{
    report::{number, Table},
    stats::Summary,
    systems::System,
};

/// The workloads the targets are checked on (`--only targets`).
pub const WORKLOADS: [&str; 4] = ["rpc", "fanout", "idle", "instructions"];

const QUIC: System = System::HardLightQuic;
const WEBSOCKET: System = System::HardLightWebSocket;
const QUINN: System = System::QuinnFloor;
const QUINN_PIPELINED: System = System::QuinnPipelined;
const TLS: System = System::TlsFloor;
/// The row of `nats-server`'s own fan-out in the fan-out table.
pub const NATS_FANOUT: &str = "nats-server (NATS core, 1 publisher)";

/// One target: what is compared, and the result if measured.
struct Check {
    target: String,
    result: Result<Outcome, Missing>,
}

/// Why a target could not be checked.
enum Missing {
    /// Its workload did not run.
    Workload(&'static str),
    /// A system it compares did not run.
    System(System),
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Workload(workload) => write!(f, "add `{workload}` to `--only`"),
            Self::System(system) => write!(f, "add `{}` to `--systems`", system.key()),
        }
    }
}

struct Outcome {
    measured: String,
    value: f64,
    bar: f64,
    /// Whether `value` is a ratio to a floor or a figure against an absolute bar.
    relative: bool,
    /// Whether higher values are better (`value ≥ bar`) or lower (`value ≤ bar`).
    at_least: bool,
}

impl Outcome {
    fn met(&self) -> bool {
        if self.at_least {
            self.value >= self.bar
        } else {
            self.value <= self.bar
        }
    }
}

/// A workload's table, by id, and which workload makes it.
type Workload = (&'static str, &'static str);

/// Table `id`'s column `metric`.
fn column<'a>(
    tables: &'a [Table],
    (id, workload): Workload,
    metric: &str,
) -> Result<(&'a Table, usize), Missing> {
    let table = tables
        .iter()
        .find(|t| t.id() == id)
        .ok_or(Missing::Workload(workload))?;
    let metric = table
        .metric_index(metric)
        .ok_or(Missing::Workload(workload))?;
    Ok((table, metric))
}

/// `system`'s summary in column `metric` of `table`.
fn summary(table: &Table, metric: usize, system: System) -> Result<Summary, Missing> {
    table
        .summary(system.name(), metric)
        .ok_or(Missing::System(system))
}

/// `row / floor` on `metric` of the workload's table, against `bar`.
fn ratio(
    tables: &[Table],
    workload: Workload,
    metric: &str,
    (row, floor): (System, System),
    bar: f64,
    at_least: bool,
) -> Result<Outcome, Missing> {
    let (table, metric) = column(tables, workload, metric)?;
    let mine = summary(table, metric, row)?.median;
    let theirs = summary(table, metric, floor)?.median;
    Ok(Outcome {
        measured: format!("{} vs {} {}", number(mine), number(theirs), table.unit()),
        value: mine / theirs,
        bar,
        relative: true,
        at_least,
    })
}

/// A median of `metric` of the workload's table against an absolute `bar`, with the
/// rows `beside` that ran shown next to it.
fn absolute(
    tables: &[Table],
    workload: Workload,
    metric: &str,
    row: System,
    (bar, at_least): (f64, bool),
    beside: &[&str],
) -> Result<Outcome, Missing> {
    let (table, metric) = column(tables, workload, metric)?;
    let value = summary(table, metric, row)?.median;
    let mut measured = format!("{} {}", number(value), table.unit());
    for (name, other) in beside
        .iter()
        .filter_map(|b| Some((b, table.median(b, metric)?)))
    {
        measured.push_str(&format!("; {name}: {}", number(other)));
    }
    Ok(Outcome {
        measured,
        value,
        bar,
        relative: false,
        at_least,
    })
}

/// The round-to-round spread (max − min over the median) of `row` over `floor`'s.
fn spread(
    tables: &[Table],
    workload: Workload,
    metric: &str,
    (row, floor): (System, System),
) -> Result<Outcome, Missing> {
    let (table, metric) = column(tables, workload, metric)?;
    let relative = |system| summary(table, metric, system).map(|s| (s.max - s.min) / s.median);
    let (mine, theirs) = (relative(row)?, relative(floor)?);
    Ok(Outcome {
        measured: format!("±{:.0}% vs ±{:.0}%", mine * 50.0, theirs * 50.0),
        // a floor that did not move at all is given 1% of its median
        value: mine / theirs.max(0.01),
        bar: 2.0,
        relative: true,
        at_least: false,
    })
}

/// Every target against `tables`, as markdown.
pub fn markdown(tables: &[Table]) -> String {
    const RATE: Workload = ("unary_throughput", "rpc");
    const LATENCY: Workload = ("unary_latency", "rpc");
    const PAYLOAD: Workload = ("payload_throughput", "rpc");
    const INSTRUCTIONS: Workload = ("instructions", "instructions");
    const FANOUT: Workload = ("fanout", "fanout");
    const IDLE: Workload = ("idle_rss", "idle");
    const TRANSPORTS: [(System, System, &str); 2] = [
        (QUIC, QUINN_PIPELINED, "QUIC"),
        (WEBSOCKET, TLS, "WebSocket"),
    ];
    let mut checks = vec![
        Check {
            target: "calls/s at 64 in flight, QUIC: ≥ 0.7× raw quinn pipelined".into(),
            result: ratio(
                tables,
                RATE,
                "64 in flight",
                (QUIC, QUINN_PIPELINED),
                0.7,
                true,
            ),
        },
        Check {
            target: "calls/s at 64 in flight, WebSocket: ≥ 0.6× raw TLS".into(),
            result: ratio(tables, RATE, "64 in flight", (WEBSOCKET, TLS), 0.6, true),
        },
    ];
    for (row, floor, over) in TRANSPORTS {
        checks.push(Check {
            target: format!("calls/s spread between rounds, {over}: ≤ 2× the floor's"),
            result: spread(tables, RATE, "64 in flight", (row, floor)),
        });
    }
    checks.extend([
        Check {
            target: "sequential p50, QUIC: ≤ 1.1× raw quinn stream per request".into(),
            result: ratio(tables, LATENCY, "p50", (QUIC, QUINN), 1.1, false),
        },
        Check {
            target: "sequential p50, WebSocket: ≤ 1.1× raw TLS".into(),
            result: ratio(tables, LATENCY, "p50", (WEBSOCKET, TLS), 1.1, false),
        },
    ]);
    for (row, floor, over) in TRANSPORTS {
        for side in ["client", "server"] {
            checks.push(Check {
                target: format!(
                    "instructions per call, {over} {side}: ≤ 1.5× the pipelined floor's"
                ),
                result: ratio(tables, INSTRUCTIONS, side, (row, floor), 1.5, false),
            });
        }
    }
    for (row, floor, over) in TRANSPORTS {
        checks.push(Check {
            target: format!("4 MiB payloads, {over}: ≥ 0.8× the floor's MB/s"),
            result: ratio(tables, PAYLOAD, "4 MiB", (row, floor), 0.8, true),
        });
    }
    for (row, _, over) in TRANSPORTS {
        checks.push(Check {
            target: format!("fan-out to 1,000 subscribers, {over}: ≥ 1.5 M deliveries/s"),
            result: absolute(
                tables,
                FANOUT,
                "1 → 1000",
                row,
                (1.5e6, true),
                &[NATS_FANOUT],
            ),
        });
    }
    for (row, _, over) in TRANSPORTS {
        // quinn's own share: its connections alone, configured as each floor is
        let floors: &[&str] = if row == QUIC {
            &[QUINN.name(), QUINN_PIPELINED.name()]
        } else {
            &[TLS.name()]
        };
        checks.push(Check {
            target: format!("idle connection, {over}: ≤ 24 KiB of server memory"),
            result: absolute(tables, IDLE, "1000 connections", row, (24.0, false), floors),
        });
    }
    let mut out = String::from(
        "### Against the targets\n\n| target | measured | ratio or value | met |\n|---|---|---:|---|\n",
    );
    for check in &checks {
        match &check.result {
            Ok(outcome) => {
                let shown = if outcome.relative {
                    format!("{:.2}×", outcome.value)
                } else {
                    format!("{:.2}× the bar", outcome.value / outcome.bar)
                };
                let met = if outcome.met() { "yes" } else { "**no**" };
                out.push_str(&format!(
                    "| {} | {} | {shown} | {met} |\n",
                    check.target, outcome.measured
                ));
            }
            Err(missing) => out.push_str(&format!(
                "| {} | not measured: {missing} | — | — |\n",
                check.target
            )),
        }
    }
    out.push_str("\nMedians of this run's rounds; the floors ran in the same rounds.\n");
    out
}
