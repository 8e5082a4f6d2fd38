//! The performance targets, checked against one run's tables: each HardLight figure next
//! to its floor or its bar, the ratio, and whether the bar is met. A target whose tables
//! did not run (say `instructions` was not in `--only`) says which workload it needs.

use crate::report::Table;

const QUIC: &str = "HardLight QUIC";
const WEBSOCKET: &str = "HardLight WebSocket";
const QUINN: &str = "raw quinn, stream per request";
const QUINN_PIPELINED: &str = "raw quinn, pipelined (QUIC floor)";
const TLS: &str = "raw TLS/TCP (TCP floor)";
/// The row of `nats-server`'s own fan-out in the fan-out table.
pub const NATS_FANOUT: &str = "nats-server (NATS core, 1 publisher)";

/// One target: what is compared, the bar, and the result if measured.
struct Check {
    target: String,
    result: Result<Outcome, &'static str>,
}

struct Outcome {
    measured: String,
    value: f64,
    bar: f64,
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

fn find<'a>(tables: &'a [Table], id: &str) -> Option<&'a Table> {
    tables.iter().find(|t| t.id() == id)
}

/// `row / floor` on `metric` of table `id`, against `bar`.
fn ratio(
    tables: &[Table],
    (id, needs): (&str, &'static str),
    metric: &str,
    (row, floor): (&str, &str),
    bar: f64,
    at_least: bool,
) -> Result<Outcome, &'static str> {
    let table = find(tables, id).ok_or(needs)?;
    let metric = table.metric_index(metric).ok_or(needs)?;
    let mine = table.median(row, metric).ok_or(needs)?;
    let theirs = table.median(floor, metric).ok_or(needs)?;
    Ok(Outcome {
        measured: format!("{} vs {} {}", number(mine), number(theirs), table.unit()),
        value: mine / theirs,
        bar,
        at_least,
    })
}

/// A median of `metric` of table `id` against an absolute `bar`.
fn absolute(
    tables: &[Table],
    (id, needs): (&str, &'static str),
    metric: &str,
    row: &str,
    (bar, at_least): (f64, bool),
    beside: &[&str],
) -> Result<Outcome, &'static str> {
    let table = find(tables, id).ok_or(needs)?;
    let metric = table.metric_index(metric).ok_or(needs)?;
    let value = table.median(row, metric).ok_or(needs)?;
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
        at_least,
    })
}

/// The round-to-round spread (max − min over the median) of `row` over `floor`'s.
fn spread(
    tables: &[Table],
    id: &str,
    metric: &str,
    (row, floor): (&str, &str),
) -> Result<Outcome, &'static str> {
    const NEEDS: &str = "rpc";
    let table = find(tables, id).ok_or(NEEDS)?;
    let metric = table.metric_index(metric).ok_or(NEEDS)?;
    let relative = |name: &str| {
        table
            .summary(name, metric)
            .map(|s| (s.max - s.min) / s.median)
    };
    let (mine, theirs) = (relative(row).ok_or(NEEDS)?, relative(floor).ok_or(NEEDS)?);
    Ok(Outcome {
        measured: format!("±{:.0}% vs ±{:.0}%", mine * 50.0, theirs * 50.0),
        // a floor that did not move at all is given 1% of its median
        value: mine / theirs.max(0.01),
        bar: 2.0,
        at_least: false,
    })
}

/// Every target against `tables`, as markdown.
pub fn markdown(tables: &[Table]) -> String {
    const RATE: (&str, &str) = ("unary_throughput", "rpc");
    const LATENCY: (&str, &str) = ("unary_latency", "rpc");
    const PAYLOAD: (&str, &str) = ("payload_throughput", "rpc");
    const INSTRUCTIONS: (&str, &str) = ("instructions", "instructions");
    const FANOUT: (&str, &str) = ("fanout", "fanout");
    const IDLE: (&str, &str) = ("idle_rss", "idle");
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
        Check {
            target: "calls/s spread between rounds, QUIC: ≤ 2× the floor's".into(),
            result: spread(tables, RATE.0, "64 in flight", (QUIC, QUINN_PIPELINED)),
        },
        Check {
            target: "calls/s spread between rounds, WebSocket: ≤ 2× the floor's".into(),
            result: spread(tables, RATE.0, "64 in flight", (WEBSOCKET, TLS)),
        },
        Check {
            target: "sequential p50, QUIC: ≤ 1.1× raw quinn stream per request".into(),
            result: ratio(tables, LATENCY, "p50", (QUIC, QUINN), 1.1, false),
        },
        Check {
            target: "sequential p50, WebSocket: ≤ 1.1× raw TLS".into(),
            result: ratio(tables, LATENCY, "p50", (WEBSOCKET, TLS), 1.1, false),
        },
    ];
    for (row, floor, over) in [
        (QUIC, QUINN_PIPELINED, "QUIC"),
        (WEBSOCKET, TLS, "WebSocket"),
    ] {
        for side in ["client", "server"] {
            checks.push(Check {
                target: format!(
                    "instructions per call, {over} {side}: ≤ 1.5× the pipelined floor's"
                ),
                result: ratio(tables, INSTRUCTIONS, side, (row, floor), 1.5, false),
            });
        }
    }
    for (row, floor, over) in [
        (QUIC, QUINN_PIPELINED, "QUIC"),
        (WEBSOCKET, TLS, "WebSocket"),
    ] {
        checks.push(Check {
            target: format!("4 MiB payloads, {over}: ≥ 0.8× the floor's MB/s"),
            result: ratio(tables, PAYLOAD, "4 MiB", (row, floor), 0.8, true),
        });
    }
    for (row, over) in [(QUIC, "QUIC"), (WEBSOCKET, "WebSocket")] {
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
    for (row, over) in [(QUIC, "QUIC"), (WEBSOCKET, "WebSocket")] {
        // quinn's own share: its connections alone, configured as each floor is
        let floors: &[&str] = if row == QUIC {
            &[QUINN, QUINN_PIPELINED]
        } else {
            &[TLS]
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
                // a ratio to a floor, or a figure over its absolute bar
                let shown = if outcome.bar >= 10.0 {
                    format!("{:.2}× the bar", outcome.value / outcome.bar)
                } else {
                    format!("{:.2}×", outcome.value)
                };
                let met = if outcome.met() { "yes" } else { "**no**" };
                out.push_str(&format!(
                    "| {} | {} | {shown} | {met} |\n",
                    check.target, outcome.measured
                ));
            }
            Err(needs) => out.push_str(&format!(
                "| {} | not measured: add `{needs}` to `--only` | — | — |\n",
                check.target
            )),
        }
    }
    out.push_str("\nMedians of this run's rounds; the floors ran in the same rounds.\n");
    out
}

fn number(value: f64) -> String {
    crate::report::number(value)
}
