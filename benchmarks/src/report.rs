//! Results: one table per workload, printed as markdown with ratios, and as JSON.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::stats::Summary;

/// The peers every row is also compared with, when they ran.
const PEERS: [&str; 2] = ["tonic TLS", "tarpc TCP"];

/// One workload's results: rows (systems) × metrics (columns), several rounds each.
#[derive(Debug)]
pub struct Table {
    id: &'static str,
    title: String,
    unit: &'static str,
    higher_is_better: bool,
    metrics: Vec<String>,
    /// The metric the ratio columns are computed on.
    headline: usize,
    rows: Vec<Row>,
}

#[derive(Debug)]
struct Row {
    name: String,
    floor: Option<String>,
    values: Vec<Vec<f64>>,
}

/// A ratio of one row's median to a reference row's median.
#[derive(Debug, Serialize)]
pub struct Ratio {
    /// The reference row.
    pub to: String,
    /// This row's median divided by the reference's median.
    pub ratio: f64,
}

#[derive(Serialize)]
struct JsonMetric {
    metric: String,
    summary: Summary,
    rounds: Vec<f64>,
    ratios: Vec<Ratio>,
}

#[derive(Serialize)]
struct JsonRow {
    system: String,
    floor: Option<String>,
    metrics: Vec<JsonMetric>,
}

/// The JSON form of a table.
#[derive(Serialize)]
pub struct JsonTable {
    id: &'static str,
    title: String,
    unit: &'static str,
    higher_is_better: bool,
    rows: Vec<JsonRow>,
}

impl Table {
    /// A table of `metrics` in `unit`; ratios are shown for the first metric.
    pub fn new(
        id: &'static str,
        title: impl Into<String>,
        unit: &'static str,
        higher_is_better: bool,
        metrics: &[&str],
    ) -> Self {
        Self {
            id,
            title: title.into(),
            unit,
            higher_is_better,
            metrics: metrics.iter().map(|m| (*m).to_owned()).collect(),
            headline: 0,
            rows: Vec::new(),
        }
    }

    /// Shows the ratio columns for metric `index` instead of the first.
    pub fn with_headline(mut self, index: usize) -> Self {
        self.headline = index;
        self
    }

    /// Records one round's `value` of `metric` for the row `name`, compared with `floor`.
    pub fn record(&mut self, name: &str, floor: Option<&str>, metric: usize, value: f64) {
        let index = match self.rows.iter().position(|r| r.name == name) {
            Some(index) => index,
            None => {
                self.rows.push(Row {
                    name: name.to_owned(),
                    floor: floor.filter(|f| *f != name).map(str::to_owned),
                    values: vec![Vec::new(); self.metrics.len()],
                });
                self.rows.len() - 1
            }
        };
        self.rows[index].values[metric].push(value);
    }

    /// The median of `metric` for row `name`.
    pub fn median(&self, name: &str, metric: usize) -> Option<f64> {
        self.summary(name, metric).map(|s| s.median)
    }

    /// The median and spread of `metric` for row `name`.
    pub fn summary(&self, name: &str, metric: usize) -> Option<Summary> {
        let row = self.rows.iter().find(|r| r.name == name)?;
        let values = &row.values[metric];
        (!values.is_empty()).then(|| Summary::of(values))
    }

    /// The table's identifier (as in the JSON).
    pub fn id(&self) -> &'static str {
        self.id
    }

    /// The unit of its figures.
    pub fn unit(&self) -> &'static str {
        self.unit
    }

    /// The index of the metric (column) named `name`.
    pub fn metric_index(&self, name: &str) -> Option<usize> {
        self.metrics.iter().position(|m| m == name)
    }

    fn ratios(&self, row: &Row, metric: usize) -> Vec<Ratio> {
        let Some(mine) = self.median(&row.name, metric) else {
            return Vec::new();
        };
        row.floor
            .iter()
            .map(String::as_str)
            .chain(PEERS)
            .filter(|to| *to != row.name)
            .filter_map(|to| {
                let theirs = self.median(to, metric)?;
                Some(Ratio {
                    to: to.to_owned(),
                    ratio: mine / theirs,
                })
            })
            .collect()
    }

    /// The table as markdown: median (min–max) per metric, then the headline metric's
    /// ratios to the row's floor and to the peers.
    pub fn markdown(&self) -> String {
        let mut out = format!("### {} ({})\n\n", self.title, self.unit);
        let peers: Vec<&str> = PEERS
            .into_iter()
            .filter(|p| self.rows.iter().any(|r| r.name == *p))
            .collect();
        let ratio_of = if self.metrics.len() > 1 {
            format!(" ({})", self.metrics[self.headline])
        } else {
            String::new()
        };
        out.push_str("| system |");
        for metric in &self.metrics {
            out.push_str(&format!(" {metric} |"));
        }
        out.push_str(&format!(" × floor{ratio_of} |"));
        for peer in &peers {
            out.push_str(&format!(" × {peer}{ratio_of} |"));
        }
        out.push_str("\n|---|");
        for _ in 0..self.metrics.len() + 1 + peers.len() {
            out.push_str("---:|");
        }
        out.push('\n');
        for row in &self.rows {
            out.push_str(&format!("| {} |", row.name));
            for values in &row.values {
                out.push_str(&format!(" {} |", cell(values)));
            }
            let ratios = self.ratios(row, self.headline);
            let ratio = |to: Option<&str>| {
                to.and_then(|to| ratios.iter().find(|r| r.to == to))
                    .map_or_else(|| "—".to_owned(), |r| format!("{:.2}×", r.ratio))
            };
            out.push_str(&format!(" {} |", ratio(row.floor.as_deref())));
            for peer in &peers {
                out.push_str(&format!(" {} |", ratio(Some(peer))));
            }
            out.push('\n');
        }
        let better = if self.higher_is_better {
            "higher"
        } else {
            "lower"
        };
        out.push_str(&format!(
            "\nMedian across rounds (min–max); {better} is better. A ratio is this row's median over the reference's.\n"
        ));
        out
    }

    /// The table as JSON, every round and every ratio included.
    pub fn json(&self) -> JsonTable {
        JsonTable {
            id: self.id,
            title: self.title.clone(),
            unit: self.unit,
            higher_is_better: self.higher_is_better,
            rows: self
                .rows
                .iter()
                .map(|row| JsonRow {
                    system: row.name.clone(),
                    floor: row.floor.clone(),
                    metrics: self
                        .metrics
                        .iter()
                        .enumerate()
                        .map(|(i, metric)| JsonMetric {
                            metric: metric.clone(),
                            summary: Summary::of(&row.values[i]),
                            rounds: row.values[i].clone(),
                            ratios: self.ratios(row, i),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

fn cell(values: &[f64]) -> String {
    if values.is_empty() {
        return "—".to_owned();
    }
    let s = Summary::of(values);
    if values.len() == 1 {
        return number(s.median);
    }
    format!("{} ({}–{})", number(s.median), number(s.min), number(s.max))
}

/// A figure as the tables print it: grouped thousands, or 3 significant digits.
pub fn number(value: f64) -> String {
    if value.abs() >= 100.0 {
        let digits = format!("{:.0}", value);
        let (sign, digits) = digits
            .strip_prefix('-')
            .map_or(("", digits.as_str()), |d| ("-", d));
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        format!("{sign}{grouped}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// Every table of a run, for the JSON file.
#[derive(Serialize)]
pub struct Run {
    /// How the run was configured.
    pub settings: BTreeMap<&'static str, String>,
    /// The tables.
    pub tables: Vec<JsonTable>,
}
