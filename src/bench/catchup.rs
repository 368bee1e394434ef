//! catchup: how fast a stream that was away reads what it missed.
//!
//! Loads `--catchup-events` documents of ~200 bytes with `insert` commands of
//! `--catchup-batch` documents each (each document is one oplog entry, so one event), then
//! opens one stream resuming from before the load (`startAtOperationTime` = the
//! `operationTime` of the collection's `create`) and reads raw batches (`getMore` without
//! `batchSize`: up to 16 MB each), counting the events in each reply without decoding them,
//! until it has them all.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use bson::oid::ObjectId;
use bson::raw::RawBsonRef;
use bson::{rawdoc, RawDocumentBuf};
use serde::Serialize;
use serde_json::json;

use super::eddy::DB;
use super::harness::bar;
use super::mongo::{ChangeStream, MongoConn, StreamOptions};
use super::report::{fmt_int, fmt_num, round3, Scenario, Table};
use super::system::System;
use super::Bench;

/// Connections loading in parallel (the machine has 2 cores).
const LOADERS: usize = 2;

#[derive(Serialize)]
struct Row {
    system: System,
    events: usize,
    load_seconds: f64,
    load_docs_per_s: f64,
    read_seconds: f64,
    events_read: usize,
    events_per_s: f64,
    batches: usize,
    mb_per_s: f64,
}

pub async fn run(b: &mut Bench) -> Result<()> {
    let n = b.args.catchup_events;
    let batch = b.args.catchup_batch.max(1);
    let mut sc = Scenario::new(json!({
        "events": n,
        "insert_batch": batch,
        "document_bytes": 200,
        "loaders": LOADERS,
    }));
    let (_, instance) = b.endpoint(System::Eddy, "catchup", n).await?;
    let instance = instance.context("an Eddy endpoint has its instance")?;
    let start_at = instance
        .created_at
        .context("the server's create reply had no operationTime to resume from")?;
    let (addr, coll) = (instance.addr, instance.coll.clone());

    // Load.
    let pb = bar(n as u64, format!("eddy: loading {n} events"));
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let loaders: Vec<_> = (0..LOADERS)
        .map(|_| {
            let (next, coll, pb) = (next.clone(), coll.clone(), pb.clone());
            tokio::spawn(async move {
                let mut conn = MongoConn::connect(addr).await?;
                let pad = "x".repeat(160);
                loop {
                    let first = next.fetch_add(batch, Ordering::Relaxed);
                    if first >= n {
                        return Ok::<_, anyhow::Error>(());
                    }
                    let docs: Vec<RawDocumentBuf> = (first..(first + batch).min(n))
                        .map(|i| rawdoc! {"_id": ObjectId::new(), "i": i as i64, "pad": pad.as_str()})
                        .collect();
                    conn.insert(DB, &coll, &docs).await?;
                    pb.inc(docs.len() as u64);
                }
            })
        })
        .collect();
    for l in loaders {
        l.await.context("a loader panicked")??;
    }
    let load_secs = started.elapsed().as_secs_f64();
    pb.finish_and_clear();

    // Read it all back through one stream.
    let pb = bar(n as u64, "eddy: one stream catching up".into());
    let started = Instant::now();
    let mut stream = ChangeStream::open(
        addr,
        StreamOptions {
            db: DB,
            coll: &coll,
            filter: None,
            start_at: Some(start_at),
            max_await_ms: 1_000,
        },
    )
    .await?;
    let mut read = stream.batch()?.into_iter().count();
    if let Some(first) = stream.batch()?.into_iter().next() {
        if let RawBsonRef::Document(e) = first? {
            let op = e.get_str("operationType").unwrap_or("?");
            if op != "insert" {
                sc.note(format!("the first event read was a {op}, not an insert"));
            }
        }
    }
    let mut batches = 1;
    let mut bytes = stream.reply_len();
    let mut last_progress = Instant::now();
    while read < n {
        stream.request().await?;
        stream.read().await?;
        let got = stream.batch()?.into_iter().count();
        read += got;
        batches += 1;
        bytes += stream.reply_len();
        pb.set_position(read as u64);
        if got > 0 {
            last_progress = Instant::now();
        } else if last_progress.elapsed() > b.timeout() {
            bail!(
                "catch-up stalled: {read} of {n} events, none for {} s",
                b.args.timeout
            );
        }
    }
    let read_secs = started.elapsed().as_secs_f64();
    pb.finish_and_clear();
    drop(stream);
    b.finish(Some(instance)).await?;

    let row = Row {
        system: System::Eddy,
        events: n,
        load_seconds: round3(load_secs),
        load_docs_per_s: round3(n as f64 / load_secs.max(1e-9)),
        read_seconds: round3(read_secs),
        events_read: read,
        events_per_s: round3(read as f64 / read_secs.max(1e-9)),
        batches,
        mb_per_s: round3(bytes as f64 / 1e6 / read_secs.max(1e-9)),
    };
    let mut table = Table::new(&[
        "system",
        "events",
        "load docs/s",
        "read s",
        "events/s",
        "batches",
        "MB/s",
    ]);
    table.push(vec![
        row.system.to_string(),
        fmt_int(row.events),
        fmt_num(row.load_docs_per_s),
        fmt_num(row.read_seconds),
        fmt_num(row.events_per_s),
        fmt_int(row.batches),
        fmt_num(row.mb_per_s),
    ]);
    sc.target(
        "catchup: events/s read by one resuming stream",
        ">= 500,000/s",
        Some(row.events_per_s),
        |v| v >= 500_000.0,
    );
    sc.row(row);
    b.emit(
        "catchup",
        &format!(
            "{n} events loaded ({batch} documents per insert), then one stream resumes from before the load and reads raw batches"
        ),
        sc,
        &table,
    )
}
