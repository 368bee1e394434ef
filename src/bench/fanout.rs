//! fanout: deliveries per second when every subscriber receives every event.
//!
//! One writer sends `--events` events back to back (each awaiting its ack) to N
//! subscribers; deliveries/s = events x subscribers / the time from the first send until
//! the last subscriber has the last event.

use anyhow::Result;
use serde::Serialize;
use serde_json::json;

use super::harness::{broadcast, Pacing};
use super::report::{cpu_pct, fmt_int, fmt_num, ratio, round3, Percentiles, Scenario, Table};
use super::system::{System, MAX_AWAIT_MS};
use super::Bench;

#[derive(Serialize)]
struct Row {
    system: System,
    streams: usize,
    events: usize,
    deliveries: usize,
    expected_deliveries: usize,
    complete: bool,
    /// First send to the last delivery.
    seconds: f64,
    /// The writer's rate (events acknowledged per second).
    events_per_s: f64,
    deliveries_per_s: f64,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
    /// CPU the bench's own clients used, % of one core over the configuration.
    client_cpu_pct: f64,
    /// Server CPU per delivery, microseconds (Eddy and Redis: one process each).
    server_us_per_delivery: Option<f64>,
}

pub async fn run(b: &mut Bench) -> Result<()> {
    let counts = b.counts(&[100, 1_000]);
    let events = b.args.events;
    b.need_fds(counts.iter().max().copied().unwrap_or(0))?;
    let mut sc = Scenario::new(json!({
        "streams": counts,
        "events_per_configuration": events,
        "pacing": "back to back, each write awaiting its ack",
    }));
    if counts.contains(&0) {
        sc.note("0 streams skipped: fan-out needs a subscriber");
    }
    let mut rows = Vec::new();
    for system in b.systems(&mut sc).await {
        for &n in counts.iter().filter(|&&n| n > 0) {
            if let Some(why) = b.skip(system, n) {
                sc.note(why);
                continue;
            }
            let (ep, instance) = b.endpoint(system, "fanout", n).await?;
            let pid = b.server_pid(system, instance.as_ref());
            let results = broadcast(
                &ep,
                n,
                &[Pacing::BackToBack],
                events,
                MAX_AWAIT_MS,
                b.timeout(),
                pid,
            )
            .await?;
            b.finish(instance).await?;
            for r in results {
                if !r.complete {
                    sc.note(format!(
                        "{system} {n} streams: only {} of {} deliveries within {} s of the last write",
                        r.deliveries, r.expected, b.args.timeout
                    ));
                }
                let p = Percentiles::of(&r.latencies_us);
                rows.push(Row {
                    system,
                    streams: n,
                    events,
                    deliveries: r.deliveries,
                    expected_deliveries: r.expected,
                    complete: r.complete,
                    seconds: round3(r.until_last_secs),
                    events_per_s: round3(events as f64 / r.writer_secs.max(1e-9)),
                    deliveries_per_s: round3(r.deliveries as f64 / r.until_last_secs.max(1e-9)),
                    latency_p50_ms: p.p50_ms,
                    latency_p99_ms: p.p99_ms,
                    client_cpu_pct: cpu_pct(r.client_cpu_secs, r.until_last_secs),
                    server_us_per_delivery: r
                        .server_cpu_secs
                        .map(|s| round3(s * 1e6 / r.deliveries.max(1) as f64)),
                });
            }
        }
    }
    let mut table = Table::new(&[
        "system",
        "streams",
        "events/s",
        "deliveries/s",
        "seconds",
        "p50 ms",
        "p99 ms",
        "client CPU",
        "server µs/delivery",
    ]);
    for r in &rows {
        table.push(vec![
            r.system.to_string(),
            fmt_int(r.streams),
            fmt_num(r.events_per_s),
            format!(
                "{}{}",
                fmt_num(r.deliveries_per_s),
                if r.complete { "" } else { " (incomplete)" }
            ),
            fmt_num(r.seconds),
            fmt_num(r.latency_p50_ms),
            fmt_num(r.latency_p99_ms),
            format!("{:.0}%", r.client_cpu_pct),
            r.server_us_per_delivery.map_or("-".into(), fmt_num),
        ]);
    }
    let get = |system: System| {
        rows.iter()
            .find(|r| r.system == system && r.streams == 1_000)
            .map(|r| r.deliveries_per_s)
    };
    sc.target(
        "fanout 1,000 streams: eddy deliveries/s / redis",
        ">= 1.0x",
        ratio(get(System::Eddy), get(System::Redis)),
        |v| v >= 1.0,
    );
    sc.target(
        "fanout 1,000 streams: eddy deliveries/s / postgres",
        ">= 10x",
        ratio(get(System::Eddy), get(System::Postgres)),
        |v| v >= 10.0,
    );
    for r in rows {
        sc.row(r);
    }
    b.emit(
        "fanout",
        &format!(
            "{events} events back to back from one writer, every subscriber receives every event"
        ),
        sc,
        &table,
    )
}
