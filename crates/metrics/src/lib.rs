//! eddy-metrics: the counters every layer keeps (storage: commits and fsyncs; engine:
//! change events; server: commands), as lock-free atomics, and the Prometheus text
//! format the server exports them in (`GET /metrics`).
//!
//! It sits at the bottom of the dependency graph with `eddy-codes`: storage, engine and
//! server each own their counters and depend on this crate alone for the types.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The most buckets a histogram has (its last, `+Inf`, is implicit).
const MAX_BUCKETS: usize = 16;

/// Upper bounds, in seconds, of a latency histogram: 100 µs to 10 s.
pub const LATENCY_SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];

/// Upper bounds of a histogram of sizes (a commit group's jobs): powers of two to 1,024.
pub const SIZES: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// A histogram with fixed upper bounds, as Prometheus keeps them: a count per bucket
/// (not cumulative here; the exposition sums them), the number of observations and
/// their sum.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    buckets: [AtomicU64; MAX_BUCKETS],
    count: AtomicU64,
    /// The sum of observations, in millionths of their unit (µs for seconds).
    sum_millionths: AtomicU64,
}

impl Histogram {
    /// A histogram over `bounds` (ascending, at most 15 of them).
    pub const fn new(bounds: &'static [f64]) -> Histogram {
        assert!(bounds.len() < MAX_BUCKETS);
        Histogram {
            bounds,
            buckets: [const { AtomicU64::new(0) }; MAX_BUCKETS],
            count: AtomicU64::new(0),
            sum_millionths: AtomicU64::new(0),
        }
    }

    /// A latency histogram (seconds).
    pub const fn latency() -> Histogram {
        Histogram::new(LATENCY_SECONDS)
    }

    pub fn observe(&self, value: f64) {
        let i = self
            .bounds
            .iter()
            .position(|&b| value <= b)
            .unwrap_or(self.bounds.len());
        if let Some(bucket) = self.buckets.get(i) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_millionths
            .fetch_add((value * 1e6).max(0.0) as u64, Ordering::Relaxed);
    }

    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The sum of observations.
    pub fn sum(&self) -> f64 {
        self.sum_millionths.load(Ordering::Relaxed) as f64 / 1e6
    }
}

/// A Prometheus text exposition (format 0.0.4) being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// `# HELP` and `# TYPE` of a metric family; its samples follow.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Exposition {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        self
    }

    /// One sample; `labels` as `(name, value)` pairs.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Exposition {
        self.out.push_str(name);
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {}", number(value));
        self
    }

    /// A whole family of one sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) -> &mut Exposition {
        self.family(name, kind, help).sample(name, &[], value)
    }

    /// A histogram's samples (`_bucket` cumulative with `le`, `_sum`, `_count`).
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        h: &Histogram,
    ) -> &mut Exposition {
        let mut cumulative = 0;
        for (i, bound) in h
            .bounds
            .iter()
            .map(|b| number(*b))
            .chain([String::from("+Inf")])
            .enumerate()
        {
            cumulative += h.buckets.get(i).map_or(0, |b| b.load(Ordering::Relaxed));
            let _ = write!(self.out, "{name}_bucket");
            write_labels(&mut self.out, labels, Some(&bound));
            let _ = writeln!(self.out, " {cumulative}");
        }
        let _ = write!(self.out, "{name}_sum");
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {}", number(h.sum()));
        let _ = write!(self.out, "{name}_count");
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {}", h.count());
        self
    }

    pub fn finish(self) -> String {
        self.out
    }
}

fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (k, v) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
        if !first {
            out.push(',');
        }
        first = false;
        let _ = write!(out, "{k}=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

/// A sample value as Prometheus writes it (integers without a fraction).
fn number(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_in_the_exposition() {
        let h = Histogram::new(&[0.001, 0.01]);
        h.observe(0.0005);
        h.observe(0.005);
        h.observe(0.005);
        h.observe(3.0);
        let mut e = Exposition::new();
        e.family("x_seconds", "histogram", "test").histogram(
            "x_seconds",
            &[("command", "find")],
            &h,
        );
        let text = e.finish();
        assert!(
            text.contains("x_seconds_bucket{command=\"find\",le=\"0.001\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("x_seconds_bucket{command=\"find\",le=\"0.01\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("x_seconds_bucket{command=\"find\",le=\"+Inf\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("x_seconds_count{command=\"find\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("x_seconds_sum{command=\"find\"} 3.0105\n"),
            "{text}"
        );
    }

    #[test]
    fn labels_are_escaped() {
        let mut e = Exposition::new();
        e.sample("m", &[("a", "q\"b\\c\nd")], 2.0);
        assert_eq!(e.finish(), "m{a=\"q\\\"b\\\\c\\nd\"} 2\n");
    }
}
