//! `--plot FILE.svg`: the latency distributions of the run as cumulative distribution
//! curves, one per configuration, on a logarithmic millisecond axis. Hand-written SVG:
//! axes with decade ticks, a grid, dashed guides at p50/p99, a legend.

use std::fmt::Write;

use super::system::System;

/// One latency distribution to draw.
pub struct Series {
    /// The configuration, without the system: curves of the same configuration share a
    /// color (and differ by dash), so the systems compare at a glance.
    pub config: String,
    pub system: System,
    /// Quantiles in milliseconds, ascending (see [`Series::new`]).
    pub points: Vec<f64>,
}

impl Series {
    /// Keeps at most 400 quantiles of `sorted_us` (microseconds, ascending): plenty for a
    /// curve, small for a file.
    pub fn new(system: System, config: String, sorted_us: &[u32]) -> Series {
        let n = sorted_us.len();
        let keep = n.min(400);
        let points = (0..keep)
            .filter_map(|k| {
                let i = if keep <= 1 {
                    n.saturating_sub(1)
                } else {
                    k * (n - 1) / (keep - 1)
                };
                sorted_us
                    .get(i)
                    .map(|&u| (f64::from(u) / 1000.0).max(0.001))
            })
            .collect();
        Series {
            config,
            system,
            points,
        }
    }
}

const PALETTE: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The SVG document.
pub fn svg(title: &str, series: &[Series]) -> String {
    let (left, top, plot_w, plot_h): (f64, f64, f64, f64) = (70.0, 40.0, 640.0, 400.0);
    let legend_x = left + plot_w + 30.0;
    let legend_rows = series.len().max(1) as f64;
    let width = legend_x + 330.0;
    let height = (top + plot_h + 60.0).max(top + 20.0 + legend_rows * 18.0 + 20.0);
    let all = series.iter().flat_map(|s| s.points.iter().copied());
    let (lo, hi) = all.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo_dec, hi_dec) = if lo <= hi {
        (
            lo.log10().floor() as i32,
            (hi.log10().ceil() as i32).max(lo.log10().floor() as i32 + 1),
        )
    } else {
        (-1, 2)
    };
    let x_of =
        |ms: f64| left + (ms.log10() - f64::from(lo_dec)) / f64::from(hi_dec - lo_dec) * plot_w;
    let y_of = |q: f64| top + (1.0 - q) * plot_h;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#,
        left + plot_w / 2.0,
        escape(title)
    );
    // Grid and ticks: decades (and 2x, 5x minor lines) on x, quarters on y.
    for d in lo_dec..=hi_dec {
        let base = 10f64.powi(d);
        let x = x_of(base);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{}" stroke="#ccc"/>"##,
            top + plot_h
        );
        let label = if d < 0 {
            format!("{base:.*}", (-d) as usize)
        } else {
            format!("{base:.0}")
        };
        let _ = writeln!(
            out,
            r#"<text x="{x:.1}" y="{}" text-anchor="middle">{label}</text>"#,
            top + plot_h + 18.0
        );
        if d < hi_dec {
            for m in [2.0, 5.0] {
                let x = x_of(base * m);
                let _ = writeln!(
                    out,
                    r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{}" stroke="#eee"/>"##,
                    top + plot_h
                );
            }
        }
    }
    for q in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let y = y_of(q);
        let _ = writeln!(
            out,
            r##"<line x1="{left}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ccc"/>"##,
            left + plot_w
        );
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{q}</text>"#,
            left - 6.0,
            y + 4.0
        );
    }
    for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
        let y = y_of(q);
        let _ = writeln!(
            out,
            r##"<line x1="{left}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#999" stroke-dasharray="2,3"/>"##,
            left + plot_w
        );
        let _ = writeln!(
            out,
            r##"<text x="{}" y="{:.1}" fill="#666">{name}</text>"##,
            left + plot_w + 4.0,
            y + 4.0
        );
    }
    let _ = writeln!(
        out,
        r#"<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="black"/>"#
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">latency, ms (log scale)</text>"#,
        left + plot_w / 2.0,
        top + plot_h + 40.0
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate(18,{}) rotate(-90)" text-anchor="middle">fraction at or below</text>"#,
        top + plot_h / 2.0
    );
    if series.is_empty() {
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle">no latency distributions were measured in this run</text>"#,
            left + plot_w / 2.0,
            top + plot_h / 2.0
        );
    }
    // The curves, then the legend.
    let mut configs: Vec<&str> = Vec::new();
    for (i, s) in series.iter().enumerate() {
        let c = configs
            .iter()
            .position(|c| *c == s.config)
            .unwrap_or_else(|| {
                configs.push(&s.config);
                configs.len() - 1
            });
        let color = PALETTE.get(c % PALETTE.len()).copied().unwrap_or("black");
        let dash = dash(s.system);
        let n = s.points.len();
        let mut pts = String::new();
        for (k, &ms) in s.points.iter().enumerate() {
            let q = (k + 1) as f64 / n as f64;
            let _ = write!(pts, "{:.1},{:.1} ", x_of(ms), y_of(q));
        }
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.6" stroke-dasharray="{dash}" points="{}"/>"#,
            pts.trim_end()
        );
        let y = top + 10.0 + i as f64 * 18.0;
        let _ = writeln!(
            out,
            r#"<line x1="{legend_x}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}"/>"#,
            legend_x + 28.0
        );
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{:.1}">{}</text>"#,
            legend_x + 34.0,
            y + 4.0,
            escape(&format!("{} {}", s.system, s.config))
        );
    }
    out.push_str("</svg>\n");
    out
}

/// Eddy solid, Redis dashed, PostgreSQL dotted, redb dash-dot.
fn dash(system: System) -> &'static str {
    match system {
        System::Eddy => "none",
        System::Redis => "7,4",
        System::Postgres => "2,3",
        System::RedbCommitter => "8,3,2,3",
    }
}
