//! slow-consumer: change streams that never read.
//!
//! A writer inserts `--slow-inserts` documents (batches of 100) with no stream, then with
//! `--idle-streams` streams open and never read: a stream keeps a position in the shared
//! tail, not a queue of its own, so neither the writer's rate nor the server's memory
//! should depend on how many there are. Always on a server this run starts (its memory
//! is read from /proc); uses the official driver.

use std::time::Instant;

use anyhow::Result;
use bson::{doc, Document};
use serde::Serialize;
use serde_json::json;

use super::eddy::BenchServer;
use super::process::rss_kib;
use super::report::{fmt_int, fmt_num, round3, Scenario, Table};
use super::Bench;

#[derive(Serialize)]
struct Row {
    idle_streams: usize,
    inserts_per_s: f64,
    rss_before_kib: u64,
    rss_after_kib: u64,
    growth_kib: u64,
}

pub async fn run(b: &mut Bench) -> Result<()> {
    let (idle, inserts) = (b.args.idle_streams, b.args.slow_inserts);
    let mut sc =
        Scenario::new(json!({"idle_streams": idle, "inserts": inserts, "insert_batch": 100}));
    if b.uri.is_some() {
        sc.note("always runs on a server of its own (--uri is not used)");
    }
    let mut table = Table::new(&[
        "idle streams",
        "inserts/s",
        "RSS before KiB",
        "RSS after KiB",
        "growth KiB",
    ]);
    let mut results = Vec::new();
    for streams in [0, idle] {
        let server = BenchServer::start().await?;
        let pid = server.pid();
        let client = server.client(16).await?;
        let coll = client.database("bench").collection::<Document>("slow");
        coll.insert_one(doc! {"warmup": true}).await?;
        let mut open = Vec::with_capacity(streams);
        for _ in 0..streams {
            open.push(coll.watch().await?);
        }
        let before = rss_kib(pid)?;
        let started = Instant::now();
        let mut written = 0;
        while written < inserts {
            let n = (inserts - written).min(100);
            let docs: Vec<Document> = (written..written + n)
                .map(|i| doc! {"i": i as i64, "pad": "x".repeat(200)})
                .collect();
            coll.insert_many(docs).await?;
            written += n;
        }
        let rate = inserts as f64 / started.elapsed().as_secs_f64();
        let after = rss_kib(pid)?;
        let growth = after.saturating_sub(before);
        table.push(vec![
            fmt_int(streams),
            fmt_num(rate),
            fmt_int(before),
            fmt_int(after),
            fmt_int(growth),
        ]);
        sc.row(Row {
            idle_streams: streams,
            inserts_per_s: round3(rate),
            rss_before_kib: before,
            rss_after_kib: after,
            growth_kib: growth,
        });
        results.push((rate, growth));
        drop(open);
    }
    if let [(rate0, grown0), (rate_k, grown_k)] = results[..] {
        sc.note(format!(
            "with {idle} idle streams: writer rate {:.2}x, memory growth {:.2}x of the run without",
            rate_k / rate0,
            grown_k as f64 / grown0.max(1) as f64
        ));
    }
    b.emit(
        "slow-consumer",
        "one writer (batches of 100), change streams opened and never read",
        sc,
        &table,
    )
}
