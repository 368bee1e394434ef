//! latency: end to end, from the writer's clock before it sends the write to each
//! subscriber's clock when the event arrives. For Eddy and PostgreSQL the durable commit
//! is inside the figure; for Redis there is none to include.
//!
//! N subscribers (each on its own connection) receive every event; one writer sends
//! `--events` events at each `--rates` pace, awaiting each acknowledgement. Percentiles are
//! over every delivery (events x subscribers).

use anyhow::Result;
use serde::Serialize;
use serde_json::json;

use super::harness::{broadcast, Pacing};
use super::plot::Series;
use super::report::{cpu_pct, fmt_int, fmt_num, ratio, round3, Delivered, Scenario, Table};
use super::system::{System, MAX_AWAIT_MS};
use super::Bench;

#[derive(Serialize)]
struct Row {
    system: System,
    streams: usize,
    rate_per_s: f64,
    events: usize,
    #[serde(flatten)]
    delivered: Delivered,
    /// CPU the bench's own clients used, % of one core over the configuration.
    client_cpu_pct: f64,
    /// The same CPU per delivery, microseconds: beside the server's, what each delivery
    /// costs the machine both share (an Eddy subscriber also sends its next `getMore`).
    client_us_per_delivery: f64,
}

pub async fn run(b: &mut Bench) -> Result<()> {
    let counts: Vec<usize> = b.counts(&[1, 100, 1_000, 10_000]);
    let rates = b.args.rates.clone();
    let events = b.args.events;
    b.need_fds(counts.iter().max().copied().unwrap_or(0))?;
    let mut sc = Scenario::new(json!({
        "streams": counts,
        "rates_per_s": rates,
        "events_per_configuration": events,
        "max_await_ms": MAX_AWAIT_MS,
    }));
    if counts.contains(&0) {
        sc.note("0 streams skipped: latency needs a subscriber");
    }
    let phases: Vec<Pacing> = rates.iter().map(|&r| Pacing::Rate(r)).collect();
    let mut rows = Vec::new();
    for system in b.systems(&mut sc).await {
        for &n in counts.iter().filter(|&&n| n > 0) {
            if let Some(why) = b.skip(system, n) {
                sc.note(why);
                continue;
            }
            let (ep, instance) = b.endpoint(system, "latency", n).await?;
            let pid = b.server_pid(system, instance.as_ref());
            let results =
                broadcast(&ep, n, &phases, events, MAX_AWAIT_MS, b.timeout(), pid).await?;
            b.finish(instance).await?;
            for (rate, r) in rates.iter().zip(results) {
                if !r.complete {
                    sc.note(format!(
                        "{system} {n} streams at {rate}/s: only {} of {} deliveries within {} s of the last write",
                        r.deliveries, r.expected, b.args.timeout
                    ));
                }
                b.series.push(Series::new(
                    system,
                    format!("{n} stream{}, {rate}/s", if n == 1 { "" } else { "s" }),
                    &r.latencies_us,
                ));
                rows.push(Row {
                    system,
                    streams: n,
                    rate_per_s: *rate,
                    events,
                    delivered: r.delivered(),
                    client_cpu_pct: cpu_pct(r.client_cpu_secs, r.until_last_secs),
                    client_us_per_delivery: round3(
                        r.client_cpu_secs * 1e6 / r.deliveries.max(1) as f64,
                    ),
                });
            }
        }
    }
    let mut columns = vec!["system", "streams", "events/s"];
    columns.extend(Delivered::COLUMNS);
    columns.extend(["client CPU", "client µs/delivery", Delivered::CPU_COLUMN]);
    let mut table = Table::new(&columns);
    for r in &rows {
        let mut cells = vec![
            r.system.to_string(),
            fmt_int(r.streams),
            fmt_num(r.rate_per_s),
        ];
        cells.extend(r.delivered.cells());
        cells.extend([
            format!("{:.0}%", r.client_cpu_pct),
            fmt_num(r.client_us_per_delivery),
            r.delivered.cpu_cell(),
        ]);
        table.push(cells);
    }
    let get = |system: System, n: usize, rate: f64| {
        rows.iter()
            .find(|r| r.system == system && r.streams == n && r.rate_per_s == rate)
            .map(|r| r.delivered.latency)
    };
    let eddy = get(System::Eddy, 1_000, 20.0);
    let redis = get(System::Redis, 1_000, 20.0);
    let pg = get(System::Postgres, 1_000, 20.0);
    sc.target(
        "latency 1,000 streams, 20/s: eddy p50 / redis p50",
        "<= 1.0x",
        ratio(eddy.map(|p| p.p50_ms), redis.map(|p| p.p50_ms)),
        |v| v <= 1.0,
    );
    sc.target(
        "latency 1,000 streams, 20/s: eddy p99 / redis p99",
        "<= 1.0x",
        ratio(eddy.map(|p| p.p99_ms), redis.map(|p| p.p99_ms)),
        |v| v <= 1.0,
    );
    sc.target(
        "latency 1,000 streams, 20/s: eddy p99 / postgres p99",
        "<= 0.25x",
        ratio(eddy.map(|p| p.p99_ms), pg.map(|p| p.p99_ms)),
        |v| v <= 0.25,
    );
    for rate in if rates.is_empty() {
        vec![20.0]
    } else {
        rates.clone()
    } {
        sc.target(
            format!("latency 10,000 streams, {rate}/s: eddy p99 ms"),
            "<= 50 ms",
            get(System::Eddy, 10_000, rate).map(|p| p.p99_ms),
            |v| v <= 50.0,
        );
    }
    for r in rows {
        sc.row(r);
    }
    b.emit(
        "latency",
        &format!(
            "end to end (writer's clock before the send -> subscriber's clock on arrival), {events} events per configuration, one writer awaiting each ack"
        ),
        sc,
        &table,
    )
}
