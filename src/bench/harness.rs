//! Driving many clients at once, the same way for every system.
//!
//! - [`SubscriberSet`]: N subscribers, one task and one TCP connection each, opened at a
//!   bounded rate (a burst of 10,000 connects would overflow the listen backlog and
//!   measure SYN retries). The set is ready when every subscriber is waiting (for Eddy:
//!   its first `getMore` sent). With a [`Tracking`], each subscriber matches every event
//!   it receives to the moment its write was sent.
//! - [`broadcast`]: one publisher sends numbered events (paced or back to back, each
//!   awaiting its ack) to a tracking set: latency and deliveries per phase.
//! - [`writers`]: K publishers writing as fast as their acks come back, for a duration
//!   or a count: writes per second and ack latency.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use super::process::{cpu_secs_of, own_cpu_secs};
use super::report::{micros, Delivered};
use super::system::{Endpoint, Interest, Publisher, Subscriber};

/// Subscribers connecting at the same moment.
const CONNECT_CONCURRENCY: usize = 32;

/// A progress bar on stderr. When stderr is not a terminal (a log, CI) the bar is not
/// drawn and its message is printed as a line instead, so a long run still shows where
/// it is.
pub fn bar(len: u64, msg: String) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        eprintln!("eddy bench: {msg}");
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg:<46} [{bar:30}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(msg);
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

/// Where each event was sent, and who has received what, shared by the publisher and
/// the subscribers of one [`broadcast`].
pub struct Tracking {
    base: Instant,
    events_per_phase: usize,
    phases: usize,
    /// Per sequence number: nanoseconds after `base` when its write was sent, plus one
    /// (0: not sent yet).
    sent_ns: Vec<AtomicU64>,
    /// Per phase: subscribers that have received all of its events.
    done: Vec<AtomicUsize>,
}

impl Tracking {
    pub fn new(events_per_phase: usize, phases: usize) -> Tracking {
        Tracking {
            base: Instant::now(),
            events_per_phase,
            phases,
            sent_ns: (0..events_per_phase * phases)
                .map(|_| AtomicU64::new(0))
                .collect(),
            done: (0..phases).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// What one subscriber saw, per phase.
struct Seen {
    latencies_us: Vec<Vec<u32>>,
    received: Vec<usize>,
    /// When the last event of the phase arrived (ns after the tracking base).
    last_ns: Vec<u64>,
}

struct Shared {
    ready: AtomicUsize,
    failure: Mutex<Option<String>>,
}

impl Shared {
    fn fail(&self, e: &anyhow::Error) {
        let mut f = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(format!("{e:#}"));
        }
    }

    fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// N subscribers, each on its own task and connection.
pub struct SubscriberSet {
    tasks: Vec<JoinHandle<Result<Seen>>>,
    stop: watch::Sender<bool>,
    shared: Arc<Shared>,
}

impl SubscriberSet {
    /// Opens `n` subscribers and waits until each is waiting for events (or `timeout`).
    pub async fn open(
        ep: &Endpoint,
        n: usize,
        interest: impl Fn(usize) -> Interest,
        tracking: Option<Arc<Tracking>>,
        max_await_ms: i64,
        timeout: Duration,
    ) -> Result<SubscriberSet> {
        let (stop, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            ready: AtomicUsize::new(0),
            failure: Mutex::new(None),
        });
        let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
        let tasks = (0..n)
            .map(|i| {
                tokio::spawn(subscriber(
                    ep.clone(),
                    interest(i),
                    max_await_ms,
                    gate.clone(),
                    shared.clone(),
                    tracking.clone(),
                    stop_rx.clone(),
                ))
            })
            .collect();
        let set = SubscriberSet {
            tasks,
            stop,
            shared,
        };
        if n == 0 {
            return Ok(set);
        }
        let pb = bar(
            n as u64,
            format!("{}: opening {n} subscribers", ep.system()),
        );
        let deadline = Instant::now() + timeout;
        loop {
            let ready = set.shared.ready.load(Ordering::Acquire);
            pb.set_position(ready as u64);
            if ready == n {
                break;
            }
            set.check()?;
            if Instant::now() > deadline {
                bail!(
                    "{}: only {ready} of {n} subscribers were waiting after {timeout:?}",
                    ep.system()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        pb.finish_and_clear();
        Ok(set)
    }

    /// The first subscriber error, if any.
    pub fn check(&self) -> Result<()> {
        match self.shared.failure() {
            Some(e) => Err(anyhow!("a subscriber failed: {e}")),
            None => Ok(()),
        }
    }

    /// Stops every subscriber (closing its connection) and collects what each saw.
    async fn close(self) -> Result<Vec<Seen>> {
        let _ = self.stop.send(true);
        let mut seen = Vec::with_capacity(self.tasks.len());
        for t in self.tasks {
            seen.push(t.await.context("a subscriber task panicked")??);
        }
        Ok(seen)
    }

    /// Stops every subscriber; for sets whose deliveries are not tracked.
    pub async fn shutdown(self) -> Result<()> {
        self.close().await.map(drop)
    }
}

async fn subscriber(
    ep: Endpoint,
    interest: Interest,
    max_await_ms: i64,
    gate: Arc<Semaphore>,
    shared: Arc<Shared>,
    tracking: Option<Arc<Tracking>>,
    mut stop: watch::Receiver<bool>,
) -> Result<Seen> {
    let phases = tracking.as_ref().map_or(0, |t| t.phases);
    let mut seen = Seen {
        latencies_us: (0..phases)
            .map(|_| Vec::with_capacity(tracking.as_ref().map_or(0, |t| t.events_per_phase)))
            .collect(),
        received: vec![0; phases],
        last_ns: vec![0; phases],
    };
    let permit = gate.acquire_owned().await?;
    let opened = tokio::select! {
        _ = stop.changed() => return Ok(seen),
        s = Subscriber::open(&ep, interest, max_await_ms) => s,
    };
    let mut sub = match opened {
        Ok(s) => s,
        Err(e) => {
            shared.fail(&e);
            return Err(e);
        }
    };
    drop(permit);
    shared.ready.fetch_add(1, Ordering::AcqRel);
    let total = tracking.as_ref().map(|t| t.events_per_phase * t.phases);
    let mut received = 0usize;
    let mut seqs = Vec::new();
    loop {
        if Some(received) == total {
            // Everything arrived: keep the connection open (closing it now would load the
            // server while the others still receive) until the set is closed.
            let _ = stop.changed().await;
            break;
        }
        let next = tokio::select! {
            biased;
            _ = stop.changed() => None,
            r = sub.next(&mut seqs) => Some(r),
        };
        let at = match next {
            None => break,
            Some(Ok(at)) => at,
            Some(Err(_)) if *stop.borrow() => break,
            Some(Err(e)) => {
                shared.fail(&e);
                return Err(e);
            }
        };
        let Some(t) = &tracking else {
            seqs.clear();
            continue;
        };
        let at_ns =
            u64::try_from(at.saturating_duration_since(t.base).as_nanos()).unwrap_or(u64::MAX);
        for seq in seqs.drain(..) {
            let Ok(seq) = usize::try_from(seq) else {
                continue;
            };
            let phase = seq / t.events_per_phase.max(1);
            let Some(sent) = t.sent_ns.get(seq).map(|s| s.load(Ordering::Acquire)) else {
                continue;
            };
            if let (Some(lat), Some(count), Some(last)) = (
                seen.latencies_us.get_mut(phase),
                seen.received.get_mut(phase),
                seen.last_ns.get_mut(phase),
            ) {
                if sent > 0 {
                    lat.push(micros(Duration::from_nanos(at_ns.saturating_sub(sent - 1))));
                }
                *count += 1;
                *last = at_ns;
                received += 1;
                if *count == t.events_per_phase {
                    if let Some(d) = t.done.get(phase) {
                        d.fetch_add(1, Ordering::AcqRel);
                    }
                }
            }
        }
    }
    Ok(seen)
}

/// How one publisher paces a phase.
#[derive(Debug, Clone, Copy)]
pub enum Pacing {
    /// Events per second, on a fixed schedule (a late ack makes the next send late).
    Rate(f64),
    /// Each event sent as soon as the previous one was acknowledged.
    BackToBack,
}

/// One phase of a [`broadcast`].
#[derive(Debug, Clone)]
pub struct PhaseResult {
    /// End-to-end latencies of every delivery, microseconds, ascending.
    pub latencies_us: Vec<u32>,
    pub deliveries: usize,
    pub expected: usize,
    /// From the first send to the last acknowledgement.
    pub writer_secs: f64,
    /// From the first send until the last subscriber had the last event.
    pub until_last_secs: f64,
    /// Every subscriber got every event before the timeout.
    pub complete: bool,
    /// CPU seconds the bench process (its clients) used during the phase.
    pub client_cpu_secs: f64,
    /// CPU seconds the server used during the phase, when it is one known process.
    pub server_cpu_secs: Option<f64>,
}

impl PhaseResult {
    /// What the phase delivered, as the latency tables show it.
    pub fn delivered(&self) -> Delivered {
        Delivered::new(
            &self.latencies_us,
            self.deliveries,
            self.expected,
            self.complete,
            self.server_cpu_secs,
        )
    }
}

/// Opens `n` subscribers that each receive every event, then for each phase publishes
/// `events` numbered events from one connection and waits until every subscriber has
/// them all (or `timeout` after the last write).
pub async fn broadcast(
    ep: &Endpoint,
    n: usize,
    phases: &[Pacing],
    events: usize,
    max_await_ms: i64,
    timeout: Duration,
    server_pid: Option<u32>,
) -> Result<Vec<PhaseResult>> {
    let tracking = Arc::new(Tracking::new(events, phases.len()));
    let subs = SubscriberSet::open(
        ep,
        n,
        |_| Interest::Everything,
        Some(tracking.clone()),
        max_await_ms,
        timeout,
    )
    .await?;
    let mut publisher = Publisher::open(ep, None).await?;
    let mut timing = Vec::with_capacity(phases.len());
    for (p, pacing) in phases.iter().enumerate() {
        let what = match pacing {
            Pacing::Rate(r) => format!("{r}/s"),
            Pacing::BackToBack => "back to back".into(),
        };
        let pb = bar(
            events as u64,
            format!("{}: {n} subscribers, events {what}", ep.system()),
        );
        let start = Instant::now();
        let start_ns = tracking.now_ns();
        let cpu_before = own_cpu_secs();
        let server_before = server_pid.and_then(cpu_secs_of);
        for k in 0..events {
            if let Pacing::Rate(rate) = pacing {
                let at = start + Duration::from_secs_f64(k as f64 / rate);
                tokio::time::sleep_until(at.into()).await;
            }
            let seq = p * events + k;
            if let Some(slot) = tracking.sent_ns.get(seq) {
                slot.store(tracking.now_ns() + 1, Ordering::Release);
            }
            publisher.publish(seq as u64).await?;
            pb.inc(1);
            if k % 64 == 0 {
                subs.check()?;
            }
        }
        let writer_secs = start.elapsed().as_secs_f64();
        pb.finish_and_clear();
        let pb = bar(
            n as u64,
            format!("{}: {n} subscribers receiving", ep.system()),
        );
        let deadline = Instant::now() + timeout;
        let done = tracking
            .done
            .get(p)
            .context("a phase without its counter")?;
        let complete = loop {
            let d = done.load(Ordering::Acquire);
            pb.set_position(d as u64);
            if d >= n {
                break true;
            }
            subs.check()?;
            if Instant::now() > deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        pb.finish_and_clear();
        let server_cpu = server_before
            .zip(server_pid.and_then(cpu_secs_of))
            .map(|(before, after)| after - before);
        timing.push((
            start_ns,
            writer_secs,
            complete,
            own_cpu_secs() - cpu_before,
            server_cpu,
        ));
    }
    let seen = subs.close().await?;
    let mut out = Vec::with_capacity(phases.len());
    for (p, (start_ns, writer_secs, complete, client_cpu_secs, server_cpu_secs)) in
        timing.into_iter().enumerate()
    {
        let mut latencies_us = Vec::with_capacity(n * events);
        let mut deliveries = 0;
        let mut last_ns = start_ns;
        for s in &seen {
            if let Some(l) = s.latencies_us.get(p) {
                latencies_us.extend_from_slice(l);
            }
            deliveries += s.received.get(p).copied().unwrap_or(0);
            last_ns = last_ns.max(s.last_ns.get(p).copied().unwrap_or(0));
        }
        latencies_us.sort_unstable();
        out.push(PhaseResult {
            latencies_us,
            deliveries,
            expected: n * events,
            writer_secs,
            until_last_secs: Duration::from_nanos(last_ns.saturating_sub(start_ns)).as_secs_f64(),
            complete,
            client_cpu_secs,
            server_cpu_secs,
        });
    }
    Ok(out)
}

/// When [`writers`] stop.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    Elapsed(Duration),
    Count(usize),
}

/// What [`writers`] achieved.
#[derive(Debug, Clone)]
pub struct WriteResult {
    pub writes: usize,
    /// From the common start until the last counted write was acknowledged.
    pub secs: f64,
    /// Ack latency of each write, microseconds, ascending.
    pub latencies_us: Vec<u32>,
    /// CPU seconds the bench process (its clients) used meanwhile.
    pub client_cpu_secs: f64,
}

impl WriteResult {
    pub fn per_sec(&self) -> f64 {
        if self.secs > 0.0 {
            self.writes as f64 / self.secs
        } else {
            0.0
        }
    }
}

/// One writer's ack latencies and when its last counted write was acknowledged.
type WriterDone = (Vec<u32>, Instant);

/// `k` publishers on their own connections, each writing one event at a time and
/// awaiting its ack, all starting together, until the duration or count is reached.
pub async fn writers(
    ep: &Endpoint,
    k: usize,
    until: Until,
    pad: Option<usize>,
) -> Result<WriteResult> {
    let mut publishers = Vec::with_capacity(k);
    for _ in 0..k {
        publishers.push(Publisher::open(ep, pad).await?);
    }
    let issued = Arc::new(AtomicUsize::new(0));
    let completed = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let cpu_before = own_cpu_secs();
    let (len, msg) = match until {
        Until::Elapsed(d) => (
            d.as_millis() as u64,
            format!("{}: {k} writers for {d:?}", ep.system()),
        ),
        Until::Count(n) => (
            n as u64,
            format!("{}: {k} writers, {n} writes", ep.system()),
        ),
    };
    let pb = bar(len, msg);
    let tasks: Vec<JoinHandle<Result<WriterDone>>> = publishers
        .into_iter()
        .map(|mut publisher| {
            let issued = issued.clone();
            let completed = completed.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut last = start;
                loop {
                    let seq = issued.fetch_add(1, Ordering::Relaxed);
                    match until {
                        Until::Count(n) if seq >= n => break,
                        Until::Elapsed(d) if start.elapsed() >= d => break,
                        _ => {}
                    }
                    let t = Instant::now();
                    publisher.publish(seq as u64).await?;
                    last = Instant::now();
                    latencies.push(micros(last - t));
                    completed.fetch_add(1, Ordering::Relaxed);
                }
                Ok((latencies, last))
            })
        })
        .collect();
    let ticker = {
        let pb = pb.clone();
        let completed = completed.clone();
        tokio::spawn(async move {
            loop {
                match until {
                    Until::Elapsed(d) => pb.set_position(start.elapsed().min(d).as_millis() as u64),
                    Until::Count(_) => pb.set_position(completed.load(Ordering::Relaxed) as u64),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let mut latencies_us = Vec::new();
    let mut last = start;
    let mut failure = None;
    for t in tasks {
        match t.await.context("a writer task panicked")? {
            Ok((l, end)) => {
                latencies_us.extend(l);
                last = last.max(end);
            }
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    ticker.abort();
    pb.finish_and_clear();
    if let Some(e) = failure {
        return Err(e.context(format!("a {} writer failed", ep.system())));
    }
    latencies_us.sort_unstable();
    Ok(WriteResult {
        writes: latencies_us.len(),
        secs: (last - start).as_secs_f64(),
        latencies_us,
        client_cpu_secs: own_cpu_secs() - cpu_before,
    })
}
