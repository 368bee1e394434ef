//! sse: delivery latency through the HTTP change-stream gateway (`eddy serve --http-port`,
//! `GET /v1/watch/bench/{coll}` as Server-Sent Events), next to the wire protocol's figure
//! for the same number of streams on the same server.
//!
//! N SSE clients, each on its own connection, read the collection's events as a browser's
//! `EventSource` would (raw HTTP/1.1, one `text/event-stream` response each); one writer
//! sends `--events` durable inserts at each `--rates` pace, awaiting each acknowledgement.
//! Latency is end to end, from the writer's clock before the send to the client's clock
//! when the event's `data:` line arrives. Then the same N, paces and events through
//! change streams waiting in `getMore` (the latency scenario's subscribers).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use super::eddy::{BenchServer, DB};
use super::harness::{bar, broadcast, Pacing};
use super::mongo::MongoConn;
use super::process::cpu_secs_of;
use super::report::{fmt_int, fmt_num, Delivered, Scenario, Table};
use super::system::{Endpoint, Publisher, MAX_AWAIT_MS};
use super::Bench;

/// SSE clients connecting at once.
const CONNECT_CONCURRENCY: usize = 32;

#[derive(Serialize)]
struct Row {
    /// `sse` or `wire`.
    transport: &'static str,
    streams: usize,
    rate_per_s: f64,
    events: usize,
    #[serde(flatten)]
    delivered: Delivered,
}

pub async fn run(b: &mut Bench) -> Result<()> {
    let counts: Vec<usize> = b.counts(&[1_000]);
    let rates = b.args.rates.clone();
    let events = b.args.events;
    b.need_fds(counts.iter().max().copied().unwrap_or(0))?;
    let mut sc = Scenario::new(json!({
        "streams": counts,
        "rates_per_s": rates,
        "events_per_configuration": events,
    }));
    let mut rows = Vec::new();
    if b.uri.is_some() {
        sc.note("sse needs a server the bench starts with --http-port: skipped with --uri");
    } else {
        for &n in counts.iter().filter(|&&n| n > 0) {
            let server = BenchServer::start_with_http().await?;
            let http = server.http.context("the server has no HTTP port")?;
            let coll = format!("sse_{n}");
            MongoConn::connect(server.addr)
                .await?
                .create(DB, &coll)
                .await?;
            let ep = Endpoint::Eddy {
                addr: server.addr,
                coll: coll.clone(),
            };
            for &rate in &rates {
                let r =
                    sse_phase(&ep, http, &coll, n, rate, events, b.timeout(), server.pid()).await?;
                if !r.complete {
                    sc.note(format!(
                        "sse {n} clients at {rate}/s: only {} of {} deliveries within {} s of the last write",
                        r.deliveries,
                        n * events,
                        b.args.timeout
                    ));
                }
                rows.push(Row {
                    transport: "sse",
                    streams: n,
                    rate_per_s: rate,
                    events,
                    delivered: Delivered::new(
                        &r.latencies_us,
                        r.deliveries,
                        n * events,
                        r.complete,
                        r.server_cpu_secs,
                    ),
                });
            }
            let phases: Vec<Pacing> = rates.iter().map(|&r| Pacing::Rate(r)).collect();
            let wire = broadcast(
                &ep,
                n,
                &phases,
                events,
                MAX_AWAIT_MS,
                b.timeout(),
                Some(server.pid()),
            )
            .await?;
            for (rate, r) in rates.iter().zip(wire) {
                rows.push(Row {
                    transport: "wire",
                    streams: n,
                    rate_per_s: *rate,
                    events,
                    delivered: r.delivered(),
                });
            }
        }
    }
    let mut columns = vec!["transport", "streams", "events/s"];
    columns.extend(Delivered::COLUMNS);
    columns.push(Delivered::CPU_COLUMN);
    let mut table = Table::new(&columns);
    for r in &rows {
        let mut cells = vec![
            r.transport.to_owned(),
            fmt_int(r.streams),
            fmt_num(r.rate_per_s),
        ];
        cells.extend(r.delivered.cells());
        cells.push(r.delivered.cpu_cell());
        table.push(cells);
    }
    for r in rows {
        sc.row(r);
    }
    b.emit(
        "sse",
        &format!(
            "end to end through the HTTP gateway (Server-Sent Events) and through getMore, {events} events per configuration, one writer awaiting each ack"
        ),
        sc,
        &table,
    )
}

/// What the SSE clients of one pace saw.
struct SsePhase {
    /// Every delivery's latency, microseconds, ascending.
    latencies_us: Vec<u32>,
    deliveries: usize,
    complete: bool,
    server_cpu_secs: Option<f64>,
}

#[allow(clippy::too_many_arguments)]
async fn sse_phase(
    ep: &Endpoint,
    http: SocketAddr,
    coll: &str,
    n: usize,
    rate: f64,
    events: usize,
    timeout: Duration,
    server_pid: u32,
) -> Result<SsePhase> {
    let base = Instant::now();
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..events).map(|_| AtomicU64::new(0)).collect());
    let ready = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let path = format!("/v1/watch/{DB}/{coll}");
    let clients: Vec<_> = (0..n)
        .map(|_| {
            tokio::spawn(client(
                http,
                path.clone(),
                events,
                base,
                sent.clone(),
                ready.clone(),
                gate.clone(),
            ))
        })
        .collect();
    let pb = bar(n as u64, format!("eddy sse: opening {n} clients"));
    let deadline = Instant::now() + timeout;
    while ready.load(Ordering::Acquire) < n {
        pb.set_position(ready.load(Ordering::Acquire) as u64);
        if clients.iter().any(|c| c.is_finished()) {
            bail!("an SSE client ended before the writes began");
        }
        if Instant::now() > deadline {
            bail!(
                "only {} of {n} SSE clients were open after {timeout:?}",
                ready.load(Ordering::Acquire)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pb.finish_and_clear();
    let mut publisher = Publisher::open(ep, None).await?;
    let server_before = cpu_secs_of(server_pid);
    let pb = bar(
        events as u64,
        format!("eddy sse: {n} clients, events {rate}/s"),
    );
    let start = Instant::now();
    for (k, slot) in sent.iter().enumerate() {
        let at = start + Duration::from_secs_f64(k as f64 / rate);
        tokio::time::sleep_until(at.into()).await;
        slot.store(nanos_since(base) + 1, Ordering::Release);
        publisher.publish(k as u64).await?;
        pb.inc(1);
    }
    pb.finish_and_clear();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut latencies_us = Vec::with_capacity(n * events);
    let mut complete = true;
    for c in clients {
        let mut c = c;
        match tokio::time::timeout_at(deadline, &mut c).await {
            Ok(joined) => {
                let got = joined.context("an SSE client panicked")??;
                complete &= got.len() == events;
                latencies_us.extend(got);
            }
            Err(_) => {
                complete = false;
                c.abort();
            }
        }
    }
    let server_cpu_secs = server_before
        .zip(cpu_secs_of(server_pid))
        .map(|(before, after)| after - before);
    latencies_us.sort_unstable();
    Ok(SsePhase {
        deliveries: latencies_us.len(),
        latencies_us,
        complete,
        server_cpu_secs,
    })
}

fn nanos_since(base: Instant) -> u64 {
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// One SSE client: opens the stream, counts itself ready at the opening heartbeat, then
/// reads `events` insert events; the latency of each, microseconds.
async fn client(
    http: SocketAddr,
    path: String,
    events: usize,
    base: Instant,
    sent: Arc<Vec<AtomicU64>>,
    ready: Arc<AtomicUsize>,
    gate: Arc<Semaphore>,
) -> Result<Vec<u32>> {
    // Connecting clients are limited; an open one gives its place back.
    let mut permit = Some(gate.acquire_owned().await?);
    let mut stream = TcpStream::connect(http).await?;
    stream.set_nodelay(true)?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut lines = BufReader::new(stream).lines();
    let status = lines.next_line().await?.unwrap_or_default();
    if !status.starts_with("HTTP/1.1 200") {
        bail!("the gateway answered {status}");
    }
    let mut counted = false;
    let mut latencies = Vec::with_capacity(events);
    let mut name = String::new();
    while latencies.len() < events {
        let Some(line) = lines.next_line().await? else {
            bail!("the event stream ended");
        };
        if let Some(event) = line.strip_prefix("event: ") {
            name = event.to_owned();
        } else if let Some(data) = line.strip_prefix("data: ") {
            if name == "heartbeat" && !counted {
                counted = true;
                ready.fetch_add(1, Ordering::AcqRel);
                permit.take();
            } else if name == "insert" {
                let seq = seq_of(data).context("an insert event without its seq")?;
                let sent_ns = sent.get(seq).map_or(0, |s| s.load(Ordering::Acquire));
                if sent_ns > 0 {
                    let ns = nanos_since(base).saturating_sub(sent_ns - 1);
                    latencies.push(u32::try_from(ns / 1_000).unwrap_or(u32::MAX));
                }
            }
        } else if line.is_empty() {
            name.clear();
        }
    }
    Ok(latencies)
}

/// The `seq` of an event's canonical Extended JSON (`"seq":{"$numberLong":"17"}`).
fn seq_of(data: &str) -> Option<usize> {
    const KEY: &str = r#""seq":{"$numberLong":""#;
    let rest = &data[data.find(KEY)? + KEY.len()..];
    rest[..rest.find('"')?].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_is_read_from_canonical_extended_json() {
        assert_eq!(
            seq_of(r#"{"fullDocument":{"_id":{"$oid":"x"},"seq":{"$numberLong":"17"},"tag":"w"}}"#),
            Some(17)
        );
        assert_eq!(seq_of(r#"{"a":1}"#), None);
    }
}
