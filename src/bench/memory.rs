//! memory: what an idle stream costs the server.
//!
//! The server's resident memory (`VmRSS`) before and after opening `--memory-streams`
//! streams, each on its own connection and waiting in `getMore` (`maxTimeMS` 60000, and
//! nothing is written). The connection is part of the cost: a driver holds one per
//! waiting stream. Only for a server this run started (its pid is known).

use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::json;

use super::harness::SubscriberSet;
use super::process::rss_kib;
use super::report::{fmt_int, fmt_num, round3, Scenario, Table};
use super::system::{Interest, System};
use super::Bench;

/// How long an idle stream's `getMore` is held.
const IDLE_AWAIT_MS: i64 = 60_000;

#[derive(Serialize)]
struct Row {
    system: System,
    streams: usize,
    rss_before_kib: u64,
    rss_after_kib: u64,
    kib_per_stream: f64,
}

pub async fn run(b: &mut Bench) -> Result<()> {
    let n = b.args.memory_streams;
    let mut sc = Scenario::new(json!({"streams": n, "max_await_ms": IDLE_AWAIT_MS}));
    let mut table = Table::new(&[
        "system",
        "streams",
        "RSS before KiB",
        "RSS after KiB",
        "KiB/stream",
    ]);
    if b.uri.is_some() {
        sc.note("skipped: the server's memory is read from /proc/<pid>, only for a server this bench starts (not with --uri)");
        sc.target(
            "memory: KiB per idle waiting stream",
            "<= 16 KiB",
            None,
            |v| v <= 16.0,
        );
        return b.emit("memory", "server RSS with idle streams", sc, &table);
    }
    b.need_fds(n)?;
    let (ep, instance) = b.endpoint(System::Eddy, "memory", n).await?;
    let pid = instance
        .as_ref()
        .and_then(|i| i.server.as_ref())
        .map(|s| s.pid())
        .context("a started server")?;
    // Let the start-up settle (and the collection's creation) before the first reading.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(pid)?;
    let subs = SubscriberSet::open(
        &ep,
        n,
        |_| Interest::Everything,
        None,
        IDLE_AWAIT_MS,
        b.timeout(),
    )
    .await?;
    // Every getMore was sent; give the server a moment to have taken them all in.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    subs.check()?;
    let after = rss_kib(pid)?;
    subs.shutdown().await?;
    b.finish(instance).await?;
    let per = (after as f64 - before as f64) / n.max(1) as f64;
    let row = Row {
        system: System::Eddy,
        streams: n,
        rss_before_kib: before,
        rss_after_kib: after,
        kib_per_stream: round3(per),
    };
    table.push(vec![
        row.system.to_string(),
        fmt_int(n),
        fmt_int(before),
        fmt_int(after),
        fmt_num(per),
    ]);
    sc.target(
        "memory: KiB per idle waiting stream",
        "<= 16 KiB",
        Some(per),
        |v| v <= 16.0,
    );
    sc.row(row);
    b.emit(
        "memory",
        &format!("server RSS before and after {n} idle streams, each on its own connection waiting in getMore"),
        sc,
        &table,
    )
}
