//! find: finds by an indexed field against the same finds by collection scan, `$text`
//! through a text index against a regex scan for the same word, geo queries through a
//! `2dsphere` index against a collection scan, and the matcher's rate in process. Always on a server this run starts; uses the official driver.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use bson::{doc, Document};
use futures_util::StreamExt;
use serde_json::json;

use super::eddy::BenchServer;
use super::report::{fmt_num, percentile_ms, round3, Scenario, Table};
use super::Bench;

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

/// A point of the geo workload: spread over a city-sized box (about 50 x 45 km) by a
/// fixed low-discrepancy sequence, so every run has the same data.
fn geo_point(i: usize) -> (f64, f64) {
    let u = (i as f64 * 0.618_033_988_749_895).fract();
    let v = (i as f64 * 0.754_877_666_246_693).fract();
    (-74.3 + 0.6 * u, 40.5 + 0.4 * v)
}

fn geo_doc(i: usize) -> Document {
    let (x, y) = geo_point(i);
    doc! {"_id": i as i64, "loc": {"type": "Point", "coordinates": [x, y]}, "g": (i % 100) as i32}
}

/// Latencies (µs, ascending) of `queries` finds built by `filter(q)`, each collected whole.
async fn time_finds(
    coll: &mongodb::Collection<Document>,
    queries: usize,
    expect: usize,
    filter: impl Fn(usize) -> Document,
) -> Result<Vec<u32>> {
    time_finds_limited(coll, queries, None, |q| (filter(q), expect)).await
}

/// [`time_finds`] with a limit and an expected count per query.
async fn time_finds_limited(
    coll: &mongodb::Collection<Document>,
    queries: usize,
    limit: Option<i64>,
    filter: impl Fn(usize) -> (Document, usize),
) -> Result<Vec<u32>> {
    let mut latencies = Vec::with_capacity(queries);
    for q in 0..queries {
        let (f, expect) = filter(q);
        let t = Instant::now();
        let mut find = coll.find(f.clone());
        if let Some(l) = limit {
            find = find.limit(l);
        }
        let mut cursor = find.await?;
        let mut n = 0;
        while let Some(d) = cursor.next().await {
            d?;
            n += 1;
        }
        latencies.push(super::report::micros(t.elapsed()));
        if n != expect {
            bail!("{f} returned {n} documents, expected {expect}");
        }
    }
    latencies.sort_unstable();
    Ok(latencies)
}

fn mean_secs(v: &[u32]) -> f64 {
    v.iter().map(|&u| f64::from(u) / 1e6).sum::<f64>() / v.len().max(1) as f64
}

pub async fn run(b: &mut Bench) -> Result<()> {
    let (docs, queries) = (b.args.docs, b.args.queries);
    if docs < 100 {
        bail!("--docs must be at least 100");
    }
    let mut sc = Scenario::new(json!({"docs": docs, "queries": queries}));
    if b.uri.is_some() {
        sc.note("always runs on a server of its own (--uri is not used)");
    }
    let server = BenchServer::start().await?;
    let client = server.client(8).await?;
    let db = client.database("bench");
    let indexed = db.collection::<Document>("indexed");
    let scanned = db.collection::<Document>("scanned");
    indexed
        .create_index(mongodb::IndexModel::builder().keys(doc! {"k": 1}).build())
        .await?;
    db.create_collection("scanned").await?;
    const BATCH: usize = 10_000;
    let pb = super::harness::bar(docs as u64, format!("eddy: loading {docs} documents twice"));
    let started = Instant::now();
    let mut start = 0;
    while start < docs {
        let end = (start + BATCH).min(docs);
        let batch: Vec<Document> = (start..end).map(|i| find_doc(i, docs)).collect();
        indexed.insert_many(batch.clone()).await?;
        scanned.insert_many(batch).await?;
        pb.set_position(end as u64);
        start = end;
    }
    pb.finish_and_clear();
    let load = started.elapsed();
    sc.row(json!({
        "measure": "load",
        "documents": 2 * docs,
        "seconds": round3(load.as_secs_f64()),
        "docs_per_s": round3((2 * docs) as f64 / load.as_secs_f64()),
    }));
    sc.note(format!(
        "load: {docs} documents into each collection (batches of {BATCH}) in {:.1} s, {:.0} documents/s",
        load.as_secs_f64(),
        (2 * docs) as f64 / load.as_secs_f64()
    ));
    // Spread the probes over the key space.
    let key = |q: usize| ((q * 104_729) % (docs - 10)) as i64;
    let point = |q: usize| doc! {"k": key(q)};
    let range = |q: usize| doc! {"k": {"$gte": key(q), "$lt": key(q) + 10}};
    let mut table = Table::new(&[
        "query",
        "indexed p50 ms",
        "indexed p99 ms",
        "scan p50 ms",
        "scan p99 ms",
        "speed-up",
    ]);
    for (name, expect, filter) in [
        ("point {k: v}", 1, &point as &dyn Fn(usize) -> Document),
        ("range {k: [v, v+10)}", 10, &range),
    ] {
        let with = time_finds(&indexed, queries, expect, filter).await?;
        let without = time_finds(&scanned, queries, expect, filter).await?;
        report_pair(name, &with, &without, &mut table, &mut sc);
    }
    text_search(&db, docs, queries, &mut table, &mut sc).await?;
    // A collection scan whose filter matches 1% of the documents, server side.
    let filter = doc! {"g": 42, "status": "active"};
    let expect = (0..docs).filter(|i| i % 100 == 42 && i % 3 != 0).count();
    let scans = 3;
    let t = Instant::now();
    time_finds(&scanned, scans, expect, |_| filter.clone()).await?;
    let per_scan = t.elapsed().as_secs_f64() / scans as f64;
    sc.row(json!({
        "measure": "collection scan, 1% match",
        "ms": round3(per_scan * 1000.0),
        "docs_per_s": round3(docs as f64 / per_scan),
    }));
    sc.note(format!(
        "collection scan with {filter} ({expect} matches): {:.0} ms, {:.0} documents/s",
        per_scan * 1000.0,
        docs as f64 / per_scan
    ));
    geo(&db, docs, queries, &mut sc, &mut table).await?;
    drop(server);
    let (rate, n, rounds, matched, spec) = matcher_rate(docs.min(200_000))?;
    sc.row(json!({"measure": "matcher", "documents": n * rounds, "docs_per_s": round3(rate)}));
    sc.note(format!(
        "matcher: {spec} over {n} documents x {rounds}: {rate:.0} documents/s ({matched} matches per round)"
    ));
    b.emit(
        "find",
        &format!("find by an indexed field vs a collection scan ({docs} documents each)"),
        sc,
        &table,
    )
}

/// The words of document `i` of the text workload: two of 1,000 words `w<j>` (so a word
/// is in about 0.2% of the documents) among ordinary ones.
fn text_doc(i: usize) -> Document {
    let (a, b) = text_words(i);
    doc! {"_id": i as i64, "bio": format!("user {i} likes w{a} and w{b} on weekends")}
}

fn text_words(i: usize) -> (usize, usize) {
    (i % 1000, (i * 7 + 3) % 1000)
}

/// One indexed-vs-scan row, in the table and the JSON: the two latency distributions
/// (µs, ascending) and the ratio of their means.
fn report_pair(name: &str, with: &[u32], without: &[u32], table: &mut Table, sc: &mut Scenario) {
    let speedup = mean_secs(without) / mean_secs(with).max(f64::MIN_POSITIVE);
    table.push(vec![
        name.to_string(),
        format!("{:.3}", percentile_ms(with, 0.5)),
        format!("{:.3}", percentile_ms(with, 0.99)),
        format!("{:.2}", percentile_ms(without, 0.5)),
        format!("{:.2}", percentile_ms(without, 0.99)),
        format!("{}x", fmt_num(speedup)),
    ]);
    sc.row(json!({
        "measure": name,
        "indexed_p50_ms": round3(percentile_ms(with, 0.5)),
        "indexed_p99_ms": round3(percentile_ms(with, 0.99)),
        "scan_p50_ms": round3(percentile_ms(without, 0.5)),
        "scan_p99_ms": round3(percentile_ms(without, 0.99)),
        "speedup": round3(speedup),
    }));
}

/// The same `docs` documents (`make(i)`) in `<name>_indexed`, which has an index on
/// `keys`, and in `<name>_scanned`, which has none: an indexed query against a scan.
async fn load_twice(
    db: &mongodb::Database,
    name: &str,
    keys: Document,
    docs: usize,
    make: fn(usize) -> Document,
    sc: &mut Scenario,
) -> Result<(mongodb::Collection<Document>, mongodb::Collection<Document>)> {
    let indexed = db.collection::<Document>(&format!("{name}_indexed"));
    let scanned = db.collection::<Document>(&format!("{name}_scanned"));
    let index = mongodb::IndexModel::builder().keys(keys.clone()).build();
    indexed.create_index(index).await?;
    db.create_collection(scanned.name()).await?;
    const BATCH: usize = 10_000;
    let pb = super::harness::bar(
        docs as u64,
        format!("eddy: loading {docs} {name} documents twice"),
    );
    let started = Instant::now();
    let mut start = 0;
    while start < docs {
        let end = (start + BATCH).min(docs);
        let batch: Vec<Document> = (start..end).map(make).collect();
        indexed.insert_many(batch.clone()).await?;
        scanned.insert_many(batch).await?;
        pb.set_position(end as u64);
        start = end;
    }
    pb.finish_and_clear();
    sc.note(format!(
        "{name} load: {docs} documents into a collection with the index {keys} and one without in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    Ok((indexed, scanned))
}

/// `$text` through a text index against the same word found by a collection scan with
/// a regex, on `docs` documents each.
async fn text_search(
    db: &mongodb::Database,
    docs: usize,
    queries: usize,
    table: &mut Table,
    sc: &mut Scenario,
) -> Result<()> {
    let (indexed, scanned) =
        load_twice(db, "text", doc! {"bio": "text"}, docs, text_doc, sc).await?;
    // Queries cycle over a few words, each with the number of documents holding it.
    let words: Vec<usize> = (0..queries.clamp(1, 20)).map(|q| (q * 37) % 1000).collect();
    let counts: Vec<usize> = words
        .iter()
        .map(|w| {
            (0..docs)
                .filter(|i| {
                    let (a, b) = text_words(*i);
                    a == *w || b == *w
                })
                .count()
        })
        .collect();
    let mut with = Vec::with_capacity(queries);
    let mut without = Vec::with_capacity(queries);
    for q in 0..queries {
        let i = q % words.len();
        let w = words[i];
        with.extend(
            time_finds(
                &indexed,
                1,
                counts[i],
                |_| doc! {"$text": {"$search": format!("w{w}")}},
            )
            .await?,
        );
        without.extend(
            time_finds(&scanned, 1, counts[i], |_| {
                doc! {"bio": {"$regex": format!("\\bw{w}\\b")}}
            })
            .await?,
        );
    }
    with.sort_unstable();
    without.sort_unstable();
    report_pair("text {$text: w} vs regex scan", &with, &without, table, sc);
    Ok(())
}

/// The geo rows: `$geoWithin` (a 500 m `$centerSphere`, a small polygon) through a
/// `2dsphere` index against the same queries by collection scan, and `$near` with a
/// limit of 10 (which needs the index) against the scan of the same 500 m circle.
async fn geo(
    db: &mongodb::Database,
    docs: usize,
    queries: usize,
    sc: &mut Scenario,
    table: &mut Table,
) -> Result<()> {
    use eddy_query::filter::Filter;
    let (indexed, scanned) =
        load_twice(db, "geo", doc! {"loc": "2dsphere"}, docs, geo_doc, sc).await?;
    // Probes at points of the data set; expected counts from the matcher in process.
    let all: Vec<Document> = (0..docs).map(geo_doc).collect();
    let center = |q: usize| geo_point((q * 7_919) % docs);
    let circle = |q: usize| {
        let (x, y) = center(q);
        doc! {"loc": {"$geoWithin": {"$centerSphere": [[x, y], 500.0 / 6_378_100.0]}}}
    };
    let square = |q: usize| {
        let (x, y) = center(q);
        let ring = bson::bson!([[
            [x, y],
            [x + 0.005, y],
            [x + 0.005, y + 0.004],
            [x, y + 0.004],
            [x, y]
        ]]);
        doc! {"loc": {"$geoWithin": {"$geometry": {"type": "Polygon", "coordinates": ring}}}}
    };
    let counted = |f: &dyn Fn(usize) -> Document| -> Result<Vec<usize>> {
        (0..queries)
            .map(|q| {
                let filter = Filter::parse(&f(q))?;
                Ok(all.iter().filter(|d| filter.matches(d)).count())
            })
            .collect()
    };
    let near = |q: usize| {
        let (x, y) = center(q);
        doc! {"loc": {"$near": {"$geometry": {"type": "Point", "coordinates": [x, y]}}}}
    };
    let circles = counted(&circle)?;
    let squares = counted(&square)?;
    let near_expect = docs.min(10);
    for (name, indexed_q, scan_q, limit) in [
        (
            "$geoWithin $centerSphere 500 m",
            &(|q| (circle(q), circles[q])) as &dyn Fn(usize) -> (Document, usize),
            &(|q| (circle(q), circles[q])) as &dyn Fn(usize) -> (Document, usize),
            None,
        ),
        (
            "$geoWithin $geometry polygon",
            &(|q| (square(q), squares[q])),
            &(|q| (square(q), squares[q])),
            None,
        ),
        (
            "$near limit 10 (scan: the 500 m circle)",
            &(|q| (near(q), near_expect)),
            &(|q| (circle(q), circles[q])),
            Some(10),
        ),
    ] {
        let with = time_finds_limited(&indexed, queries, limit, indexed_q).await?;
        let without = time_finds_limited(&scanned, queries, None, scan_q).await?;
        report_pair(name, &with, &without, table, sc);
    }
    Ok(())
}

/// The matcher alone, in process: a typical `$match` over realistic documents.
fn matcher_rate(n: usize) -> Result<(f64, usize, usize, usize, Document)> {
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
    let elapsed = t.elapsed().max(Duration::from_nanos(1)).as_secs_f64();
    Ok((
        (n * rounds) as f64 / elapsed,
        n,
        rounds,
        matched / rounds,
        spec,
    ))
}
