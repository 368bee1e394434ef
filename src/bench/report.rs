//! Results: what each scenario measured (rows), the targets beside them (PASS/MISS,
//! a report, never an exit code), printed as tables or serialized as one JSON document.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

/// The whole run, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct Report {
    pub eddy_version: &'static str,
    /// `"started"` (a server per configuration, this same executable) or the `--uri`.
    pub eddy_server: String,
    /// `redis` and `postgres`: whether each baseline ran, its version or why not.
    pub baselines: Map<String, Value>,
    /// Scenario name -> its [`Scenario`], in the order they ran.
    pub scenarios: Map<String, Value>,
}

/// One scenario's figures.
#[derive(Debug, Default, Serialize)]
pub struct Scenario {
    /// The counts, pacing and durations it ran with.
    pub config: Map<String, Value>,
    /// One object per measured (system, configuration).
    pub rows: Vec<Value>,
    pub targets: Vec<Target>,
    /// Skipped configurations and other remarks, with their reason.
    pub notes: Vec<String>,
}

impl Scenario {
    pub fn new(config: Value) -> Scenario {
        Scenario {
            config: match config {
                Value::Object(m) => m,
                _ => Map::new(),
            },
            ..Scenario::default()
        }
    }

    pub fn row(&mut self, row: impl Serialize) {
        self.rows
            .push(serde_json::to_value(row).unwrap_or(Value::Null));
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// A target whose value is `value` and that passes when `pass(value)`; `None` when
    /// the configuration it applies to was not measured (`why` says what is missing).
    pub fn target(
        &mut self,
        what: impl Into<String>,
        goal: impl Into<String>,
        value: Option<f64>,
        pass: impl Fn(f64) -> bool,
    ) {
        let status = match value {
            Some(v) if v.is_finite() && pass(v) => Status::Pass,
            Some(_) => Status::Miss,
            None => Status::NotMeasured,
        };
        self.targets.push(Target {
            what: what.into(),
            goal: goal.into(),
            value: value.map(round3),
            status,
        });
    }
}

/// One of the targets and where this run stands.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub what: String,
    pub goal: String,
    pub value: Option<f64>,
    pub status: Status,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status {
    #[serde(rename = "PASS")]
    Pass,
    #[serde(rename = "MISS")]
    Miss,
    /// The configuration the target is about was not part of this run.
    #[serde(rename = "not measured")]
    NotMeasured,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Pass => "PASS",
            Status::Miss => "MISS",
            Status::NotMeasured => "not measured",
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self.value.map(fmt_num).unwrap_or_else(|| "-".into());
        write!(
            f,
            "{:<4} {} (target {}): {}",
            match self.status {
                Status::Pass => "PASS",
                Status::Miss => "MISS",
                Status::NotMeasured => "n/a",
            },
            self.what,
            self.goal,
            value
        )?;
        if self.status == Status::NotMeasured {
            f.write_str(" [not measured in this run]")?;
        }
        Ok(())
    }
}

/// A plain text table with right-aligned columns.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn push(&mut self, row: Vec<String>) {
        debug_assert_eq!(
            row.len(),
            self.headers.len(),
            "a row as wide as the headers"
        );
        self.rows.push(row);
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.len()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(cell.len());
                }
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: &[String]| -> fmt::Result {
            let mut first = true;
            for (cell, w) in cells.iter().zip(&widths) {
                if !first {
                    f.write_str("  ")?;
                }
                first = false;
                write!(f, "{cell:>w$}")?;
            }
            writeln!(f)
        };
        line(f, &self.headers)?;
        for row in &self.rows {
            line(f, row)?;
        }
        Ok(())
    }
}

/// A figure for a table: thousands separated, decimals only where they matter.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let a = v.abs();
    if a >= 1000.0 {
        let s = format!("{:.0}", a);
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if v < 0.0 {
            out.insert(0, '-');
        }
        out
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A count for a table, thousands separated.
pub fn fmt_int(v: impl TryInto<i64>) -> String {
    let v = v.try_into().unwrap_or(i64::MAX);
    fmt_num(v as f64)
        .split('.')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Rounded for JSON: three decimals are below any figure's noise.
pub fn round3(v: f64) -> f64 {
    if v.is_finite() {
        (v * 1000.0).round() / 1000.0
    } else {
        0.0
    }
}

/// Latency percentiles in milliseconds, from latencies in microseconds (sorted).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    pub fn of(sorted_us: &[u32]) -> Percentiles {
        Percentiles {
            p50_ms: round3(percentile_ms(sorted_us, 0.5)),
            p99_ms: round3(percentile_ms(sorted_us, 0.99)),
            p999_ms: round3(percentile_ms(sorted_us, 0.999)),
            max_ms: round3(sorted_us.last().map_or(0.0, |&u| f64::from(u) / 1000.0)),
        }
    }
}

/// What one configuration of a latency scenario delivered: counts, latency percentiles
/// and the server's CPU per delivery, as the `latency` and `sse` tables show them.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Delivered {
    pub deliveries: usize,
    pub expected_deliveries: usize,
    /// Every subscriber received every event before the timeout.
    pub complete: bool,
    #[serde(flatten)]
    pub latency: Percentiles,
    /// Server CPU per delivery, microseconds (when the server is one known process).
    pub server_us_per_delivery: Option<f64>,
}

impl Delivered {
    /// The table columns [`Delivered::cells`] fills, in order (the server's CPU last).
    pub const COLUMNS: [&'static str; 5] = ["deliveries", "p50 ms", "p99 ms", "p999 ms", "max ms"];
    pub const CPU_COLUMN: &'static str = "server µs/delivery";

    pub fn new(
        latencies_us: &[u32],
        deliveries: usize,
        expected_deliveries: usize,
        complete: bool,
        server_cpu_secs: Option<f64>,
    ) -> Delivered {
        Delivered {
            deliveries,
            expected_deliveries,
            complete,
            latency: Percentiles::of(latencies_us),
            server_us_per_delivery: server_cpu_secs
                .map(|s| round3(s * 1e6 / deliveries.max(1) as f64)),
        }
    }

    /// The cells of [`Delivered::COLUMNS`].
    pub fn cells(&self) -> Vec<String> {
        vec![
            format!(
                "{}{}",
                fmt_int(self.deliveries),
                if self.complete { "" } else { " (incomplete)" }
            ),
            fmt_num(self.latency.p50_ms),
            fmt_num(self.latency.p99_ms),
            fmt_num(self.latency.p999_ms),
            fmt_num(self.latency.max_ms),
        ]
    }

    /// The cell of [`Delivered::CPU_COLUMN`].
    pub fn cpu_cell(&self) -> String {
        self.server_us_per_delivery.map_or("-".into(), fmt_num)
    }
}

/// The `p` quantile (nearest rank) of sorted microseconds, in milliseconds.
pub fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted_us.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted_us.len()) - 1;
    sorted_us.get(i).map_or(0.0, |&u| f64::from(u) / 1000.0)
}

/// Microseconds of a duration, saturating (a latency above 71 minutes is not a latency).
pub fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// `a / b`, or `None` when either is missing or `b` is 0.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// CPU seconds over wall seconds, as a percentage of one core (rounded).
pub fn cpu_pct(cpu_secs: f64, wall_secs: f64) -> f64 {
    if wall_secs > 0.0 {
        round3(100.0 * cpu_secs / wall_secs)
    } else {
        0.0
    }
}
