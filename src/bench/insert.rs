//! insert: durable inserts into Eddy against what its storage can do, in the same run.
//!
//! Eddy: `--writers` connections insert `--inserts` documents (~300 bytes) in all, one per
//! command, each awaiting its acknowledgement. The reference is figure W5 of
//! STORAGE-FIGURES.md, measured with the project's own storage: redb behind
//! `eddy_storage::Store` with one `eddy_storage::Committer` thread, `--writers` threads each
//! submitting a document (12 random key bytes, 300-byte value) plus an oplog entry (8-byte
//! increasing key, 300-byte value) and waiting for its durable completion. The ratio says
//! how much of the storage's rate the server keeps.
//!
//! Beside them, on the same Eddy server: `--writers` clients running multi-document
//! transactions of 3 inserts each (`startTransaction` on the first, then
//! `commitTransaction`), `--inserts` / 3 transactions in all; the row gives
//! transactions/s, writes/s and the latency of a whole transaction.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use bson::{rawdoc, RawDocumentBuf};
use eddy_storage::{Committer, StorageError, Store, WriteBatch};
use serde::Serialize;
use serde_json::json;

use super::harness::{bar, writers, Until};
use super::mongo::MongoConn;
use super::plot::Series;
use super::report::{fmt_int, fmt_num, micros, ratio, round3, Percentiles, Scenario, Table};
use super::system::{Endpoint, System};
use super::Bench;

/// Padding that makes an Eddy insert document about 300 bytes, as the reference's values.
const DOC_PAD: usize = 250;
const VALUE_BYTES: usize = 300;

/// Writes per transaction in the transactions row.
const TXN_WRITES: usize = 3;

#[derive(Serialize)]
struct Row {
    system: System,
    /// `"inserts"`, or `"transactions"` (3 inserts each).
    kind: &'static str,
    clients: usize,
    inserts: usize,
    seconds: f64,
    inserts_per_s: f64,
    ack_p50_ms: f64,
    ack_p99_ms: f64,
}

#[derive(Serialize)]
struct TxnRow {
    system: System,
    kind: &'static str,
    clients: usize,
    transactions: usize,
    writes_per_transaction: usize,
    seconds: f64,
    transactions_per_s: f64,
    writes_per_s: f64,
    /// From the first statement to the commit's reply.
    txn_p50_ms: f64,
    txn_p99_ms: f64,
}

pub async fn run(b: &mut Bench) -> Result<()> {
    let n = b.args.inserts;
    let k = b.args.writers;
    let mut sc = Scenario::new(json!({
        "clients": k,
        "inserts": n,
        "document_bytes": VALUE_BYTES,
    }));
    let (ep, instance) = b.endpoint(System::Eddy, "insert", n).await?;
    let eddy = writers(&ep, k, Until::Count(n), Some(DOC_PAD)).await?;
    let txns = (n / TXN_WRITES).max(1);
    let (txn_secs, txn_lat) = transactions(&ep, k, txns).await?;
    b.finish(instance).await?;
    let reference = tokio::task::spawn_blocking(move || redb_committer(k, n))
        .await
        .context("the redb reference panicked")??;
    let mut rows = Vec::new();
    for (system, secs, lat) in [
        (System::Eddy, eddy.secs, eddy.latencies_us),
        (System::RedbCommitter, reference.0, reference.1),
    ] {
        let p = Percentiles::of(&lat);
        b.series.push(Series::new(
            system,
            format!("insert ack, {k} clients"),
            &lat,
        ));
        rows.push(Row {
            system,
            kind: "inserts",
            clients: k,
            inserts: lat.len(),
            seconds: round3(secs),
            inserts_per_s: round3(lat.len() as f64 / secs.max(1e-9)),
            ack_p50_ms: p.p50_ms,
            ack_p99_ms: p.p99_ms,
        });
    }
    let p = Percentiles::of(&txn_lat);
    b.series.push(Series::new(
        System::Eddy,
        format!("transaction ({TXN_WRITES} inserts) ack, {k} clients"),
        &txn_lat,
    ));
    let txn_row = TxnRow {
        system: System::Eddy,
        kind: "transactions",
        clients: k,
        transactions: txn_lat.len(),
        writes_per_transaction: TXN_WRITES,
        seconds: round3(txn_secs),
        transactions_per_s: round3(txn_lat.len() as f64 / txn_secs.max(1e-9)),
        writes_per_s: round3((txn_lat.len() * TXN_WRITES) as f64 / txn_secs.max(1e-9)),
        txn_p50_ms: p.p50_ms,
        txn_p99_ms: p.p99_ms,
    };
    let mut table = Table::new(&[
        "system",
        "clients",
        "what",
        "per s",
        "writes/s",
        "ack p50 ms",
        "ack p99 ms",
    ]);
    for r in &rows {
        table.push(vec![
            r.system.to_string(),
            fmt_int(r.clients),
            "inserts".to_owned(),
            fmt_num(r.inserts_per_s),
            fmt_num(r.inserts_per_s),
            fmt_num(r.ack_p50_ms),
            fmt_num(r.ack_p99_ms),
        ]);
    }
    table.push(vec![
        txn_row.system.to_string(),
        fmt_int(txn_row.clients),
        format!("transactions ({TXN_WRITES} inserts)"),
        fmt_num(txn_row.transactions_per_s),
        fmt_num(txn_row.writes_per_s),
        fmt_num(txn_row.txn_p50_ms),
        fmt_num(txn_row.txn_p99_ms),
    ]);
    let rate = |s: System| rows.iter().find(|r| r.system == s).map(|r| r.inserts_per_s);
    sc.target(
        "insert: eddy inserts/s / redb committer (W5)",
        ">= 0.7x",
        ratio(rate(System::Eddy), rate(System::RedbCommitter)),
        |v| v >= 0.7,
    );
    for r in rows {
        sc.row(r);
    }
    sc.row(txn_row);
    b.emit(
        "insert",
        &format!("{n} durable inserts from {k} clients, each awaiting its ack; the reference is redb with one committer thread (doc + oplog entry per write); then {txns} transactions of {TXN_WRITES} inserts from {k} clients"),
        sc,
        &table,
    )
}

/// `k` clients on their own connections run `total` transactions of [`TXN_WRITES`]
/// inserts against Eddy; (seconds, whole-transaction latencies).
async fn transactions(ep: &Endpoint, k: usize, total: usize) -> Result<(f64, Vec<u32>)> {
    let Endpoint::Eddy { addr, coll } = ep else {
        anyhow::bail!("transactions run against Eddy only");
    };
    let coll = format!("{coll}_txn");
    let mut conns = Vec::with_capacity(k);
    for _ in 0..k {
        conns.push(MongoConn::connect(*addr).await?);
    }
    // Created outside any transaction first, as an application would.
    conns[0].create(super::eddy::DB, &coll).await?;
    let pad = "x".repeat(DOC_PAD);
    let tickets = Arc::new(AtomicUsize::new(0));
    let pb = bar(
        total as u64,
        format!("eddy: {k} clients, {total} transactions"),
    );
    let started = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            let (tickets, pad, coll, pb) = (tickets.clone(), pad.clone(), coll.clone(), pb.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let t = tickets.fetch_add(1, Ordering::Relaxed);
                    if t >= total {
                        break;
                    }
                    let docs: Vec<RawDocumentBuf> = (0..TXN_WRITES)
                        .map(|i| rawdoc! {"t": t as i64, "i": i as i32, "pad": pad.as_str()})
                        .collect();
                    let t0 = Instant::now();
                    conn.transaction(super::eddy::DB, &coll, &docs).await?;
                    latencies.push(micros(t0.elapsed()));
                    pb.inc(1);
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(total);
    for t in tasks {
        latencies.extend(t.await.context("a transaction client panicked")??);
    }
    let secs = started.elapsed().as_secs_f64();
    pb.finish_and_clear();
    latencies.sort_unstable();
    Ok((secs, latencies))
}

/// A small deterministic generator for the reference's random keys (splitmix64).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn bytes(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(v.get(..chunk.len()).unwrap_or_default());
        }
    }
}

/// W5: `threads` clients, `total` writes through one committer; (seconds, ack latencies).
fn redb_committer(threads: usize, total: usize) -> Result<(f64, Vec<u32>)> {
    let dir = tempfile::tempdir()?;
    let store = Store::open_unjournaled(&dir.path().join("reference.redb"))?;
    let committer = Committer::start(store);
    let mut rng = SplitMix(0x5EED);
    let mut value = vec![0u8; VALUE_BYTES];
    rng.bytes(&mut value);
    let value: Arc<[u8]> = value.into();
    let oplog_seq = Arc::new(AtomicU64::new(0));
    let tickets = AtomicUsize::new(0);
    let pb = bar(
        total as u64,
        format!("redb committer: {threads} threads, {total} writes"),
    );
    let started = Instant::now();
    let results: Vec<Result<Vec<u32>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (committer, value, oplog_seq, tickets, pb) = (
                    &committer,
                    value.clone(),
                    oplog_seq.clone(),
                    &tickets,
                    pb.clone(),
                );
                s.spawn(move || -> Result<Vec<u32>> {
                    let mut rng = SplitMix(t as u64 + 1);
                    let mut latencies = Vec::new();
                    while tickets.fetch_add(1, Ordering::Relaxed) < total {
                        let mut key = [0u8; 12];
                        rng.bytes(&mut key);
                        let (value, oplog_seq) = (value.clone(), oplog_seq.clone());
                        let (tx, rx) = mpsc::sync_channel(1);
                        let t0 = Instant::now();
                        committer.submit(Box::new(
                            move |batch: Result<&mut WriteBatch<'_>, StorageError>| {
                                let res = batch.and_then(|b| {
                                    b.put("docs", &key, &value)?;
                                    // Jobs run one after another on the committer thread:
                                    // the oplog key increases in commit order.
                                    let seq = oplog_seq.fetch_add(1, Ordering::Relaxed);
                                    b.put("oplog", &seq.to_be_bytes(), &value)
                                });
                                Box::new(move |outcome: Result<(), StorageError>| {
                                    let _ = tx.send(res.and(outcome));
                                })
                            },
                        ))?;
                        rx.recv()
                            .map_err(|_| anyhow!("the committer dropped a completion"))??;
                        latencies.push(micros(t0.elapsed()));
                        pb.inc(1);
                    }
                    Ok(latencies)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("a reference thread panicked")))
            })
            .collect()
    });
    let secs = started.elapsed().as_secs_f64();
    pb.finish_and_clear();
    let mut latencies = Vec::with_capacity(total);
    for r in results {
        latencies.extend(r?);
    }
    latencies.sort_unstable();
    Ok((secs, latencies))
}
