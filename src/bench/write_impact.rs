//! write-impact: what open streams cost the writers.
//!
//! 16 writer connections insert for a fixed duration, each awaiting its acknowledgement,
//! with 0 and then N change streams open. Each stream has its own connection, waits in
//! `getMore` (`maxTimeMS` 5000, re-issued as soon as it returns) and its own `$match` that
//! no write satisfies: half on `documentKey._id`, half on `fullDocument.tag`. A server
//! that decides who can match before waking anyone pays nothing per stream; one that
//! wakes every stream on every write pays N. The clock starts once every stream has sent
//! its first `getMore`. Baselines: Redis `PUBLISH` with N subscribers on other channels,
//! PostgreSQL `INSERT` + trigger `pg_notify` with N listeners on other channels.

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;
use serde_json::json;

use super::harness::{writers, SubscriberSet, Until};
use super::report::{cpu_pct, fmt_int, fmt_num, ratio, round3, Percentiles, Scenario, Table};
use super::system::{Interest, System, MAX_AWAIT_MS};
use super::Bench;

#[derive(Serialize)]
struct Row {
    system: System,
    streams: usize,
    writers: usize,
    duration_s: f64,
    /// Inserts (Eddy, PostgreSQL) or PUBLISHes (Redis) acknowledged.
    writes: usize,
    writes_per_s: f64,
    /// `writes_per_s` over the same system's with 0 streams.
    ratio_to_0: Option<f64>,
    ack_p50_ms: f64,
    ack_p99_ms: f64,
    /// CPU the bench's own clients used, % of one core while writing.
    client_cpu_pct: f64,
}

pub async fn run(b: &mut Bench) -> Result<()> {
    let mut counts = vec![0];
    counts.extend(b.counts(&[1_000, 10_000]).into_iter().filter(|&n| n > 0));
    counts.dedup();
    let duration = Duration::from_secs_f64(b.args.duration);
    let k = b.args.writers;
    b.need_fds(counts.iter().max().copied().unwrap_or(0) + k)?;
    let mut sc = Scenario::new(json!({
        "writers": k,
        "duration_s": b.args.duration,
        "streams": counts,
        "max_await_ms": MAX_AWAIT_MS,
        "filters": "half {documentKey._id: never-<i>}, half {fullDocument.tag: never-<i>}",
    }));
    let mut rows: Vec<Row> = Vec::new();
    for system in b.systems(&mut sc).await {
        let mut base: Option<f64> = None;
        for &n in &counts {
            if let Some(why) = b.skip(system, n) {
                sc.note(why);
                continue;
            }
            let (ep, instance) = b.endpoint(system, "write_impact", n).await?;
            let subs =
                SubscriberSet::open(&ep, n, Interest::Nothing, None, MAX_AWAIT_MS, b.timeout())
                    .await?;
            let result = writers(&ep, k, Until::Elapsed(duration), None).await?;
            subs.check()?;
            subs.shutdown().await?;
            b.finish(instance).await?;
            let rate = result.per_sec();
            if n == 0 {
                base = Some(rate);
            }
            let p = Percentiles::of(&result.latencies_us);
            rows.push(Row {
                system,
                streams: n,
                writers: k,
                duration_s: round3(result.secs),
                writes: result.writes,
                writes_per_s: round3(rate),
                ratio_to_0: ratio(Some(rate), base).map(round3),
                ack_p50_ms: p.p50_ms,
                ack_p99_ms: p.p99_ms,
                client_cpu_pct: cpu_pct(result.client_cpu_secs, result.secs),
            });
        }
    }
    let mut table = Table::new(&[
        "system",
        "streams",
        "writes/s",
        "vs 0 streams",
        "ack p50 ms",
        "ack p99 ms",
        "client CPU",
    ]);
    for r in &rows {
        table.push(vec![
            r.system.to_string(),
            fmt_int(r.streams),
            fmt_num(r.writes_per_s),
            r.ratio_to_0.map_or("-".into(), |x| format!("{x:.2}x")),
            fmt_num(r.ack_p50_ms),
            fmt_num(r.ack_p99_ms),
            format!("{:.0}%", r.client_cpu_pct),
        ]);
    }
    let eddy_ratio = |n: usize| {
        rows.iter()
            .find(|r| r.system == System::Eddy && r.streams == n)
            .and_then(|r| r.ratio_to_0)
    };
    sc.target(
        "eddy writes/s with 10,000 idle streams vs 0",
        ">= 0.90x",
        eddy_ratio(10_000),
        |v| v >= 0.9,
    );
    sc.target(
        "eddy writes/s with 1,000 idle streams vs 0",
        ">= 0.95x",
        eddy_ratio(1_000),
        |v| v >= 0.95,
    );
    for r in rows {
        sc.row(r);
    }
    b.emit(
        "write-impact",
        &format!(
            "{k} writers, durable inserts (Redis: PUBLISH) for {} s each, with N streams that never match, each waiting in getMore",
            b.args.duration
        ),
        sc,
        &table,
    )
}
