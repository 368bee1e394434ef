//! `eddy bench`: throughput and latency figures measured side by side in one run.
//!
//! Each workload starts its own `eddy serve` (this same executable) on a free loopback
//! port with a fresh data directory, drives it with the official Rust driver, prints
//! its figures and stops the server. Absolute numbers drift on shared machines; the
//! ratios printed within one run are what to compare.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bson::{doc, Document};
use futures_util::StreamExt;
use mongodb::options::ClientOptions;
use mongodb::Client;

/// The workloads `eddy bench` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// Durable inserts, each awaiting its acknowledgement, with 1 and 16 clients.
    Insert,
    /// One writer, N change streams on the collection: delivery latency and rate.
    Fanout,
    /// One writer with 0 and then K change streams that never read: writer throughput and
    /// the server's resident memory, side by side.
    SlowConsumer,
    /// Finds by an indexed field against a collection scan, and the matcher's rate.
    Find,
    /// Everything above.
    All,
}

/// `eddy bench` arguments.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum, default_value = "all")]
    pub workload: Workload,
    /// Inserts per client count in the insert workload.
    #[arg(long, default_value_t = 20_000)]
    pub inserts: usize,
    /// Stream counts for the fan-out workload (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    pub streams: Vec<usize>,
    /// Events the writer makes per fan-out run.
    #[arg(long, default_value_t = 200)]
    pub events: usize,
    /// Idle streams in the slow-consumer workload (compared with none).
    #[arg(long, default_value_t = 1000)]
    pub idle_streams: usize,
    /// Documents the writer inserts per slow-consumer run (in batches of 100).
    #[arg(long, default_value_t = 20_000)]
    pub slow_inserts: usize,
    /// Documents loaded into each collection of the find workload.
    #[arg(long, default_value_t = 1_000_000)]
    pub docs: usize,
    /// Queries timed per kind (point, range) and collection in the find workload.
    #[arg(long, default_value_t = 100)]
    pub queries: usize,
}

/// A server started for one workload; killed on drop.
struct BenchServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl BenchServer {
    fn start() -> Result<BenchServer> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = tempfile::tempdir()?;
        let exe = std::env::current_exe().context("locating the eddy executable")?;
        let child = Command::new(exe)
            .args(["serve", "--port", &port.to_string(), "--dbpath"])
            .arg(dir.path())
            .arg("--quiet")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting eddy serve")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("eddy serve did not start listening on port {port}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(BenchServer {
            child,
            port,
            _dir: dir,
        })
    }

    async fn client(&self, pool: u32) -> Result<Client> {
        let mut options = ClientOptions::parse(format!(
            "mongodb://127.0.0.1:{}/?directConnection=true",
            self.port
        ))
        .await?;
        options.max_pool_size = Some(pool);
        Ok(Client::with_options(options)?)
    }
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs the chosen workloads and prints their figures; the process exit code.
pub async fn run(args: BenchArgs) -> Result<i32> {
    if matches!(args.workload, Workload::Insert | Workload::All) {
        insert(args.inserts).await?;
    }
    if matches!(args.workload, Workload::Fanout | Workload::All) {
        fanout(&args.streams, args.events).await?;
    }
    if matches!(args.workload, Workload::SlowConsumer | Workload::All) {
        slow_consumer(args.idle_streams, args.slow_inserts).await?;
    }
    if matches!(args.workload, Workload::Find | Workload::All) {
        find(args.docs, args.queries).await?;
    }
    Ok(0)
}

async fn insert(per_run: usize) -> Result<()> {
    println!("# durable inserts (each awaits its acknowledgement; w:majority = journaled)");
    println!(
        "{:>8} {:>12} {:>10} {:>10}",
        "clients", "inserts/s", "p50 ms", "p99 ms"
    );
    let mut rates = Vec::new();
    for clients in [1usize, 16] {
        let server = BenchServer::start()?;
        let client = server.client(clients as u32 + 2).await?;
        let coll = client.database("bench").collection::<Document>("insert");
        coll.insert_one(doc! {"warmup": true}).await?;
        let per_client = per_run / clients;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let coll = coll.clone();
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_client);
                for i in 0..per_client {
                    let t = Instant::now();
                    coll.insert_one(doc! {"c": c as i64, "i": i as i64, "pad": "x".repeat(200)})
                        .await?;
                    latencies.push(t.elapsed());
                }
                Ok::<_, mongodb::error::Error>(latencies)
            }));
        }
        let mut latencies = Vec::new();
        for t in tasks {
            latencies.extend(t.await??);
        }
        let elapsed = started.elapsed();
        latencies.sort();
        let rate = latencies.len() as f64 / elapsed.as_secs_f64();
        rates.push(rate);
        println!(
            "{clients:>8} {rate:>12.0} {:>10.2} {:>10.2}",
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99))
        );
    }
    if let [one, sixteen] = rates[..] {
        println!(
            "group commit speed-up (16 clients / 1 client): {:.1}x",
            sixteen / one
        );
    }
    Ok(())
}

async fn fanout(stream_counts: &[usize], events: usize) -> Result<()> {
    println!("# change-stream fan-out: one writer, N streams on the collection");
    println!(
        "{:>8} {:>10} {:>10} {:>14} {:>14}",
        "streams", "p50 ms", "p99 ms", "events/s", "deliveries/s"
    );
    for &streams in stream_counts {
        let server = BenchServer::start()?;
        let readers = server.client((streams as u32 + 8).max(16)).await?;
        let writer = server.client(4).await?;
        let coll = readers.database("bench").collection::<Document>("fanout");
        writer
            .database("bench")
            .create_collection("fanout")
            .await
            .context("creating the collection")?;
        let mut cursors = Vec::with_capacity(streams);
        for _ in 0..streams {
            cursors.push(coll.watch().max_await_time(Duration::from_secs(5)).await?);
        }
        let wcoll = writer.database("bench").collection::<Document>("fanout");
        let sent_at = Arc::new(std::sync::Mutex::new(Vec::<Instant>::with_capacity(events)));
        let mut tasks = Vec::new();
        for mut cursor in cursors {
            let sent_at = sent_at.clone();
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(events);
                let mut seen = 0usize;
                while seen < events {
                    match tokio::time::timeout(Duration::from_secs(60), cursor.next()).await {
                        Ok(Some(Ok(_event))) => {
                            let now = Instant::now();
                            let sent = sent_at.lock().map(|s| s.get(seen).copied()).ok().flatten();
                            if let Some(sent) = sent {
                                latencies.push(now.saturating_duration_since(sent));
                            }
                            seen += 1;
                        }
                        Ok(Some(Err(e))) => return Err(anyhow::Error::from(e)),
                        Ok(None) => break,
                        Err(_) => bail!("a stream saw only {seen} of {events} events in 60 s"),
                    }
                }
                Ok(latencies)
            }));
        }
        // Paced writes measure latency; the clock starts before the insert is sent.
        let started = Instant::now();
        for i in 0..events {
            sent_at
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .push(Instant::now());
            wcoll.insert_one(doc! {"i": i as i64}).await?;
            if streams <= 100 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        let mut latencies = Vec::new();
        for t in tasks {
            latencies.extend(t.await??);
        }
        let elapsed = started.elapsed();
        latencies.sort();
        println!(
            "{streams:>8} {:>10.2} {:>10.2} {:>14.0} {:>14.0}",
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99)),
            events as f64 / elapsed.as_secs_f64(),
            latencies.len() as f64 / elapsed.as_secs_f64()
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// slow-consumer: change streams that never read
// ---------------------------------------------------------------------------------

/// The resident set size of a process in kB (`/proc/<pid>/status`, Linux).
fn rss_kb(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("reading the server's /proc status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS in /proc status")
}

/// A writer inserting `inserts` documents with no stream, then with `idle` streams open
/// and never read: a stream keeps a position in the shared tail, not a queue of its
/// own, so neither the writer's rate nor the server's memory should depend on `idle`.
async fn slow_consumer(idle: usize, inserts: usize) -> Result<()> {
    println!("# slow consumers: one writer, change streams opened and never read");
    println!(
        "{:>12} {:>12} {:>14} {:>14} {:>12}",
        "idle streams", "inserts/s", "RSS before kB", "RSS after kB", "growth kB"
    );
    let mut results = Vec::new();
    for streams in [0, idle] {
        let server = BenchServer::start()?;
        let pid = server.child.id();
        let client = server.client(16).await?;
        let coll = client.database("bench").collection::<Document>("slow");
        coll.insert_one(doc! {"warmup": true}).await?;
        let mut open = Vec::with_capacity(streams);
        for _ in 0..streams {
            open.push(coll.watch().await?);
        }
        let before = rss_kb(pid)?;
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
        let after = rss_kb(pid)?;
        println!(
            "{streams:>12} {rate:>12.0} {before:>14} {after:>14} {:>12}",
            after.saturating_sub(before)
        );
        results.push((rate, after.saturating_sub(before)));
        drop(open);
    }
    if let [(rate0, grown0), (rate_k, grown_k)] = results[..] {
        println!(
            "with {idle} idle streams: writer rate {:.2}x, memory growth {:.2}x of the run without",
            rate_k / rate0,
            grown_k as f64 / grown0.max(1) as f64
        );
    }
    Ok(())
}

/// The documents of the find workload: `k` is a permutation of `0..n` (so index order
/// is not insertion order), `g` takes 100 values (a 1% filter), plus the fields of a
/// typical user record.
fn find_doc(i: usize, n: usize) -> Document {
    // 7919 is prime and does not divide any n used here, so i -> k is a bijection
    // unless n is a multiple of it.
    let k = if n.is_multiple_of(7919) {
        i
    } else {
        (i * 7919) % n
    };
    doc! {
        "_id": i as i64,
        "k": k as i64,
        "g": (i % 100) as i32,
        "name": format!("user{i}"),
        "age": (18 + i % 60) as i32,
        "status": if i.is_multiple_of(3) { "inactive" } else { "active" },
        "tags": ["a", if i.is_multiple_of(2) { "even" } else { "odd" }],
        "score": (i % 1000) as f64 / 10.0,
    }
}

/// Latencies of `queries` finds built by `filter(q)`, each collected whole.
async fn time_finds(
    coll: &mongodb::Collection<Document>,
    queries: usize,
    expect: usize,
    filter: impl Fn(usize) -> Document,
) -> Result<Vec<Duration>> {
    let mut latencies = Vec::with_capacity(queries);
    for q in 0..queries {
        let f = filter(q);
        let t = Instant::now();
        let mut cursor = coll.find(f.clone()).await?;
        let mut n = 0;
        while let Some(d) = cursor.next().await {
            d?;
            n += 1;
        }
        latencies.push(t.elapsed());
        if n != expect {
            bail!("{f} returned {n} documents, expected {expect}");
        }
    }
    latencies.sort();
    Ok(latencies)
}

async fn find(docs: usize, queries: usize) -> Result<()> {
    if docs < 100 {
        bail!("--docs must be at least 100");
    }
    println!("# find by an indexed field vs a collection scan ({docs} documents each)");
    let server = BenchServer::start()?;
    let client = server.client(8).await?;
    let db = client.database("bench");
    let indexed = db.collection::<Document>("indexed");
    let scanned = db.collection::<Document>("scanned");
    indexed
        .create_index(mongodb::IndexModel::builder().keys(doc! {"k": 1}).build())
        .await?;
    db.create_collection("scanned").await?;
    const BATCH: usize = 10_000;
    let started = Instant::now();
    let mut start = 0;
    while start < docs {
        let end = (start + BATCH).min(docs);
        let batch: Vec<Document> = (start..end).map(|i| find_doc(i, docs)).collect();
        indexed.insert_many(batch.clone()).await?;
        scanned.insert_many(batch).await?;
        start = end;
    }
    let load = started.elapsed();
    println!(
        "load: {docs} documents into each collection (batches of {BATCH}) in {:.1} s, {:.0} documents/s",
        load.as_secs_f64(),
        (2 * docs) as f64 / load.as_secs_f64()
    );
    // Spread the probes over the key space.
    let key = |q: usize| ((q * 104_729) % (docs - 10)) as i64;
    let point = |q: usize| doc! {"k": key(q)};
    let range = |q: usize| doc! {"k": {"$gte": key(q), "$lt": key(q) + 10}};
    println!(
        "{:<22} {:>22} {:>22} {:>10}",
        "query", "indexed p50/p99 ms", "scan p50/p99 ms", "speed-up"
    );
    for (name, expect, filter) in [
        ("point {k: v}", 1, &point as &dyn Fn(usize) -> Document),
        ("range {k: [v, v+10)}", 10, &range),
    ] {
        let with = time_finds(&indexed, queries, expect, filter).await?;
        let without = time_finds(&scanned, queries, expect, filter).await?;
        let mean =
            |v: &[Duration]| v.iter().map(|d| d.as_secs_f64()).sum::<f64>() / v.len().max(1) as f64;
        println!(
            "{name:<22} {:>10.3} / {:>9.3} {:>10.2} / {:>9.2} {:>9.0}x",
            ms(percentile(&with, 0.5)),
            ms(percentile(&with, 0.99)),
            ms(percentile(&without, 0.5)),
            ms(percentile(&without, 0.99)),
            mean(&without) / mean(&with).max(f64::MIN_POSITIVE)
        );
    }
    // A collection scan whose filter matches 1% of the documents, server side.
    let filter = doc! {"g": 42, "status": "active"};
    let expect = (0..docs).filter(|i| i % 100 == 42 && i % 3 != 0).count();
    let scans = 3;
    let t = Instant::now();
    time_finds(&scanned, scans, expect, |_| filter.clone()).await?;
    let per_scan = t.elapsed().as_secs_f64() / scans as f64;
    println!(
        "collection scan with {filter} ({expect} matches): {:.0} ms, {:.0} documents/s",
        per_scan * 1000.0,
        docs as f64 / per_scan
    );
    drop(server);
    matcher_rate(docs.min(200_000))
}

/// The matcher alone, in process: a typical `$match` over realistic documents.
fn matcher_rate(n: usize) -> Result<()> {
    use eddy_query::filter::Filter;
    let docs: Vec<Document> = (0..n).map(|i| find_doc(i, n)).collect();
    let spec = doc! {"status": "active", "age": {"$gte": 30, "$lt": 40}, "tags": "even"};
    let filter = Filter::parse(&spec)?;
    let rounds = 5;
    let t = Instant::now();
    let mut matched = 0usize;
    for _ in 0..rounds {
        matched += docs.iter().filter(|d| filter.matches(d)).count();
    }
    let elapsed = t.elapsed().as_secs_f64();
    println!(
        "matcher: {spec} over {n} documents x {rounds}: {:.0} documents/s ({} matches per round)",
        (n * rounds) as f64 / elapsed,
        matched / rounds
    );
    Ok(())
}
