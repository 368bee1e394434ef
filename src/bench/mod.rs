//! `eddy bench`: what change-stream fan-out costs, measured the way drivers load a server,
//! beside the systems a user might pick instead, in one run.
//!
//! Eddy runs as `eddy serve` (this same executable) started per configuration on a free
//! loopback port with a fresh data directory, or is an external server (`--uri`). The
//! baselines, Redis pub/sub (fast, keeps nothing) and PostgreSQL 15 LISTEN/NOTIFY from a
//! trigger (durable, `synchronous_commit=on`), are started by the bench itself on free
//! loopback ports with temporary data directories, when their binaries are installed
//! (`bash scripts/setup-bench.sh`). All three are driven by small raw-protocol clients,
//! one TCP connection per stream, subscriber or listener, so that the client side costs
//! little CPU on a small machine and the three systems are loaded identically.
//!
//! Absolute numbers drift on shared machines; the ratios within one run are what to
//! compare. Targets (issue 12) are printed beside the figures as PASS/MISS: a report,
//! never the exit code.
//!
//! # Layout
//! - `mod.rs`: flags, the run (which scenarios, which systems, output).
//! - Scenarios, one file each: `write_impact`, `latency`, `fanout`, `catchup`, `memory`,
//!   `insert`, `sse` (the HTTP gateway), and the older `find` and `slow_consumer` (official
//!   driver).
//! - `harness`: many subscribers and publishers on their own connections, latency
//!   tracking, writer loops. `system`: one face for the three systems.
//! - Clients and servers: `mongo` (OP_MSG via `eddy-wire`, replies as raw BSON), `eddy`
//!   (the server under test), `redis` (RESP), `postgres` (protocol v3), `process`
//!   (ports, child processes, rlimits, RSS).
//! - Output: `report` (rows, targets, tables, JSON), `plot` (SVG of the latency CDFs).

mod catchup;
mod eddy;
mod fanout;
mod find;
mod harness;
mod insert;
mod latency;
mod memory;
mod mongo;
mod plot;
mod postgres;
mod process;
mod redis;
mod report;
mod slow_consumer;
mod sse;
mod system;
mod write_impact;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};

use crate::cli::signal::Shutdown;
use eddy::EddyInstance;
use postgres::PgServer;
use redis::RedisServer;
use report::{Report, Scenario, Status, Table, Target};
use system::{Endpoint, System};

/// The workloads `eddy bench` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// 16 writers' inserts/s with 0, 1,000 and 10,000 idle streams that never match.
    WriteImpact,
    /// End-to-end latency (p50/p99/p999) at 1..10,000 streams, paced at 20 and 200 events/s.
    Latency,
    /// Deliveries/s at 100 and 1,000 streams, events back to back.
    Fanout,
    /// One stream resuming from before 1,000,000 events: events/s read.
    Catchup,
    /// Server RSS per idle stream waiting in getMore (10,000 streams).
    Memory,
    /// 16 clients' durable inserts/s against redb with one committer thread (W5).
    Insert,
    /// Finds by an indexed field against collection scans, and the matcher's rate.
    Find,
    /// One writer with 0 and then K change streams that never read: rate and RSS.
    SlowConsumer,
    /// Delivery latency through the HTTP gateway (Server-Sent Events) at 1,000 clients,
    /// beside getMore's on the same server.
    Sse,
    /// write-impact, latency, fanout, catchup, memory and insert (not find, slow-consumer, sse).
    All,
}

/// `eddy bench` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum, default_value = "all")]
    pub workload: Workload,
    /// Measure this running Eddy (mongodb://host:port on this machine) instead of starting one.
    #[arg(long, value_name = "URI")]
    pub uri: Option<String>,
    /// Print the results as one JSON document on stdout instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Write the latency distributions (CDFs, log-scale ms) to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Stream counts, for every scenario that has them [write-impact: 1000,10000 (0 always
    /// runs as the reference); latency: 1,100,1000,10000; fanout: 100,1000].
    #[arg(long, value_delimiter = ',', value_name = "N,N,..")]
    pub streams: Option<Vec<usize>>,
    /// Events per configuration in latency and fanout.
    #[arg(long, default_value_t = 200)]
    pub events: usize,
    /// Paces of the latency scenario, events per second.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "20,200",
        value_name = "R,R,.."
    )]
    pub rates: Vec<f64>,
    /// Seconds of writing per stream count in write-impact.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub duration: f64,
    /// Writer connections in write-impact, clients in insert.
    #[arg(long, default_value_t = 16)]
    pub writers: usize,
    /// Events loaded before the catching-up stream opens.
    #[arg(long, default_value_t = 1_000_000)]
    pub catchup_events: usize,
    /// Documents per insert command while loading catchup's events.
    #[arg(long, default_value_t = 1_000)]
    pub catchup_batch: usize,
    /// Idle streams whose memory is measured.
    #[arg(long, default_value_t = 10_000)]
    pub memory_streams: usize,
    /// Durable inserts in the insert scenario (for Eddy, and the same for the reference).
    #[arg(long, default_value_t = 50_000)]
    pub inserts: usize,
    /// Leave out Redis and PostgreSQL.
    #[arg(long)]
    pub no_baselines: bool,
    /// Above this many listeners PostgreSQL is skipped (a backend process per connection).
    #[arg(long, default_value_t = 1_000, value_name = "N")]
    pub pg_max_connections: usize,
    /// PostgreSQL's bin directory (initdb, postgres).
    #[arg(long, default_value = "/usr/lib/postgresql/15/bin", value_name = "DIR")]
    pub pg_bin: PathBuf,
    /// The redis-server executable.
    #[arg(long, default_value = "redis-server", value_name = "PATH")]
    pub redis_server: String,
    /// Seconds to wait for subscribers to connect, or for deliveries after the last write,
    /// before a configuration is reported incomplete.
    #[arg(long, default_value_t = 120.0, value_name = "SECS")]
    pub timeout: f64,
    /// Idle streams in slow-consumer (compared with none).
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

/// A baseline server: started on first use, kept for the run.
enum Baseline<T> {
    /// Installed, not needed yet.
    Ready(PathBuf),
    Running(T),
    /// Not installed, failed to start, or `--no-baselines`: why.
    Unavailable(String),
}

/// The state of one run.
pub struct Bench {
    pub args: BenchArgs,
    /// The external server of `--uri`.
    pub uri: Option<SocketAddr>,
    redis: Baseline<RedisServer>,
    postgres: Baseline<PgServer>,
    /// Latency distributions for `--plot`.
    pub series: Vec<plot::Series>,
    report: Report,
    /// Every scenario's targets, for the summary.
    targets: Vec<Target>,
    open_files: u64,
    /// Distinguishes this run's collections on an external server.
    run_id: u32,
}

const INSTALL_HINT: &str = "install with: bash scripts/setup-bench.sh";

impl Bench {
    /// The stream counts of a scenario: `--streams`, or its defaults.
    fn counts(&self, default: &[usize]) -> Vec<usize> {
        let mut v = self
            .args
            .streams
            .clone()
            .unwrap_or_else(|| default.to_vec());
        v.sort_unstable();
        v.dedup();
        v
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.args.timeout.max(1.0))
    }

    /// Fails clearly when `connections` sockets (plus slack) cannot be opened.
    fn need_fds(&self, connections: usize) -> Result<()> {
        let need = connections as u64 + 256;
        if self.open_files < need {
            bail!(
                "{connections} connections need about {need} open files, but this process may open {} (ulimit -n; the hard limit is the most it can raise itself to): raise the limit or use smaller --streams / --memory-streams",
                self.open_files
            );
        }
        Ok(())
    }

    /// The systems a scenario runs: Eddy, then each baseline that is available (started
    /// now if needed); a note for each that is not.
    async fn systems(&mut self, sc: &mut Scenario) -> Vec<System> {
        let mut out = vec![System::Eddy];
        let max = self.max_streams();
        let writers = self.args.writers;
        if let Baseline::Ready(exe) = &self.redis {
            let exe = exe.clone();
            self.redis = match RedisServer::start(&exe, max + writers + 128).await {
                Ok(s) => Baseline::Running(s),
                Err(e) => Baseline::Unavailable(format!("redis-server failed to start: {e:#}")),
            };
        }
        if let Baseline::Ready(bin) = &self.postgres {
            let bin = bin.clone();
            let conns = max.min(self.args.pg_max_connections) + writers + 50;
            self.postgres = match PgServer::start(&bin, conns).await {
                Ok(s) => Baseline::Running(s),
                Err(e) => Baseline::Unavailable(format!("postgres failed to start: {e:#}")),
            };
        }
        for (system, state) in [
            (System::Redis, self.redis_state()),
            (System::Postgres, self.postgres_state()),
        ] {
            match state {
                Ok(()) => out.push(system),
                Err(why) => sc.note(format!("{system}: unavailable ({why})")),
            }
        }
        out
    }

    fn redis_state(&self) -> Result<(), String> {
        match &self.redis {
            Baseline::Running(_) => Ok(()),
            Baseline::Ready(_) => Err("not started".into()),
            Baseline::Unavailable(why) => Err(why.clone()),
        }
    }

    fn postgres_state(&self) -> Result<(), String> {
        match &self.postgres {
            Baseline::Running(_) => Ok(()),
            Baseline::Ready(_) => Err("not started".into()),
            Baseline::Unavailable(why) => Err(why.clone()),
        }
    }

    /// The most streams any scenario of this run opens at once (sizes the baselines).
    fn max_streams(&self) -> usize {
        let defaults: &[usize] = match self.args.workload {
            Workload::WriteImpact => &[10_000],
            Workload::Latency => &[10_000],
            Workload::Fanout => &[1_000],
            _ => &[10_000],
        };
        self.args
            .streams
            .as_ref()
            .map_or(defaults, |v| v.as_slice())
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
    }

    /// Why `system` is skipped at `n` streams, if it is.
    fn skip(&self, system: System, n: usize) -> Option<String> {
        let cap = self.args.pg_max_connections;
        (system == System::Postgres && n > cap).then(|| {
            format!(
                "postgres: {n} listeners skipped: above --pg-max-connections {cap} (a backend process per connection)"
            )
        })
    }

    /// Where `system` is reached for one configuration; for Eddy, a fresh server (or a
    /// fresh collection on the `--uri` server), kept alive by the returned instance.
    async fn endpoint(
        &self,
        system: System,
        scenario: &str,
        n: usize,
    ) -> Result<(Endpoint, Option<EddyInstance>)> {
        match system {
            System::Eddy | System::RedbCommitter => {
                let coll = format!("{scenario}_{n}_{}", self.run_id);
                let inst = EddyInstance::new(self.uri, coll).await?;
                let ep = Endpoint::Eddy {
                    addr: inst.addr,
                    coll: inst.coll.clone(),
                };
                Ok((ep, Some(inst)))
            }
            System::Redis => match &self.redis {
                Baseline::Running(s) => Ok((Endpoint::Redis(s.addr), None)),
                _ => bail!("redis is not running"),
            },
            System::Postgres => match &self.postgres {
                Baseline::Running(s) => Ok((Endpoint::Postgres(s.addr), None)),
                _ => bail!("postgres is not running"),
            },
        }
    }

    /// The process serving `system` in a configuration, when it is one process the bench
    /// started (Eddy, Redis; not PostgreSQL's backend per connection, nor `--uri`).
    fn server_pid(&self, system: System, instance: Option<&EddyInstance>) -> Option<u32> {
        match system {
            System::Eddy | System::RedbCommitter => instance?.server.as_ref().map(|s| s.pid()),
            System::Redis => match &self.redis {
                Baseline::Running(s) => Some(s.pid()),
                _ => None,
            },
            System::Postgres => None,
        }
    }

    /// Ends a configuration: a started server stops; on an external one the collection
    /// is dropped, after the streams' last `getMore`s have expired (they are held up to
    /// their `maxTimeMS` after their connections closed).
    async fn finish(&self, instance: Option<EddyInstance>) -> Result<()> {
        if let Some(inst) = instance {
            if inst.server.is_none() {
                tokio::time::sleep(Duration::from_millis(system::MAX_AWAIT_MS as u64 + 500)).await;
            }
            inst.finish().await?;
        }
        Ok(())
    }

    /// Records a scenario's figures, and prints them unless `--json`.
    fn emit(&mut self, name: &str, heading: &str, sc: Scenario, table: &Table) -> Result<()> {
        if !self.args.json {
            println!("\n## {name}: {heading}");
            let config: Vec<String> = sc.config.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!("config: {}", config.join(" "));
            if !table.is_empty() {
                print!("{table}");
            }
            for t in &sc.targets {
                println!("{t}");
            }
            for n in &sc.notes {
                println!("note: {n}");
            }
        }
        self.targets.extend(sc.targets.iter().cloned());
        self.report
            .scenarios
            .insert(name.to_owned(), serde_json::to_value(sc)?);
        Ok(())
    }

    fn baselines_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        let entry = |running: Option<String>, why: Option<&String>| match (running, why) {
            (Some(version), _) => json!({"available": true, "version": version}),
            (None, Some(why)) => {
                json!({"available": false, "reason": why, "install": "bash scripts/setup-bench.sh"})
            }
            (None, None) => json!({"available": true, "started": false}),
        };
        m.insert(
            "redis".into(),
            match &self.redis {
                Baseline::Running(s) => entry(Some(s.version.clone()), None),
                Baseline::Unavailable(w) => entry(None, Some(w)),
                Baseline::Ready(_) => entry(None, None),
            },
        );
        m.insert(
            "postgres".into(),
            match &self.postgres {
                Baseline::Running(s) => {
                    let mut v = entry(Some(s.version.clone()), None);
                    v["max_connections"] = json!(s.max_connections);
                    v
                }
                Baseline::Unavailable(w) => entry(None, Some(w)),
                Baseline::Ready(_) => entry(None, None),
            },
        );
        m
    }
}

/// Runs the chosen workloads and prints their figures; the process exit code.
pub async fn run(args: BenchArgs, mut shutdown: Shutdown) -> Result<i32> {
    check_args(&args)?;
    let (open_files, hard) = crate::limits::raise_open_files_limit();
    let uri = match &args.uri {
        Some(u) => Some(eddy::parse_uri(u).await?),
        None => None,
    };
    fn unavailable<T>(why: String) -> Baseline<T> {
        Baseline::Unavailable(format!("{why}; {INSTALL_HINT}"))
    }
    let (redis, postgres) = if args.no_baselines {
        (
            Baseline::Unavailable("--no-baselines".into()),
            Baseline::Unavailable("--no-baselines".into()),
        )
    } else {
        (
            RedisServer::locate(&args.redis_server).map_or_else(unavailable, Baseline::Ready),
            PgServer::locate(&args.pg_bin).map_or_else(unavailable, Baseline::Ready),
        )
    };
    let mut bench = Bench {
        report: Report {
            eddy_version: env!("CARGO_PKG_VERSION"),
            eddy_server: args.uri.clone().unwrap_or_else(|| "started".into()),
            baselines: Map::new(),
            scenarios: Map::new(),
        },
        uri,
        redis,
        postgres,
        series: Vec::new(),
        targets: Vec::new(),
        open_files,
        run_id: std::process::id(),
        args,
    };
    if !bench.args.json {
        println!(
            "eddy bench: Eddy {} ({}), open-files limit {open_files} (hard {})",
            env!("CARGO_PKG_VERSION"),
            bench
                .uri
                .map_or("a server per configuration".to_string(), |a| format!(
                    "--uri {a}"
                )),
            hard.map_or("unlimited".into(), |h| h.to_string())
        );
        for (name, state) in [
            ("redis", bench.redis_state()),
            ("postgres", bench.postgres_state()),
        ] {
            if let Err(why) = state {
                if why != "not started" {
                    println!("baseline {name}: unavailable ({why})");
                }
            }
        }
    }
    let result = tokio::select! {
        r = run_workloads(&mut bench) => r,
        _ = shutdown.wait() => Err(anyhow::anyhow!("interrupted")),
    };
    result?;
    bench.report.baselines = bench.baselines_json();
    if let Some(path) = &bench.args.plot {
        let svg = plot::svg("eddy bench: latency distributions", &bench.series);
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("eddy bench: latency plot written to {}", path.display());
    }
    if bench.args.json {
        println!("{}", serde_json::to_string_pretty(&bench.report)?);
    } else {
        print_summary(&bench.targets);
    }
    Ok(0)
}

/// Sizes that would make a scenario meaningless (or wait for events that never come).
fn check_args(a: &BenchArgs) -> Result<()> {
    for (flag, n) in [
        ("--events", a.events),
        ("--writers", a.writers),
        ("--catchup-events", a.catchup_events),
        ("--catchup-batch", a.catchup_batch),
        ("--memory-streams", a.memory_streams),
        ("--inserts", a.inserts),
    ] {
        if n == 0 {
            bail!("{flag} must be at least 1");
        }
    }
    if !(a.duration > 0.0 && a.duration.is_finite()) {
        bail!("--duration must be a positive number of seconds");
    }
    if a.rates.is_empty() || a.rates.iter().any(|r| !(*r > 0.0 && r.is_finite())) {
        bail!("--rates must be positive events per second");
    }
    Ok(())
}

async fn run_workloads(b: &mut Bench) -> Result<()> {
    use Workload::*;
    let w = b.args.workload;
    let chosen = |x: Workload| w == x || (w == All && !matches!(x, Find | SlowConsumer | Sse));
    if chosen(WriteImpact) {
        write_impact::run(b).await?;
    }
    if chosen(Latency) {
        latency::run(b).await?;
    }
    if chosen(Fanout) {
        fanout::run(b).await?;
    }
    if chosen(Catchup) {
        catchup::run(b).await?;
    }
    if chosen(Memory) {
        memory::run(b).await?;
    }
    if chosen(Insert) {
        insert::run(b).await?;
    }
    if chosen(Find) {
        find::run(b).await?;
    }
    if chosen(SlowConsumer) {
        slow_consumer::run(b).await?;
    }
    if chosen(Sse) {
        sse::run(b).await?;
    }
    Ok(())
}

/// Every target of the run in one place.
fn print_summary(targets: &[Target]) {
    if targets.is_empty() {
        return;
    }
    println!("\n## targets (issue 12)");
    for t in targets {
        println!("{t}");
    }
    let pass = targets.iter().filter(|t| t.status == Status::Pass).count();
    let miss = targets.iter().filter(|t| t.status == Status::Miss).count();
    println!(
        "{pass} PASS, {miss} MISS, {} not measured",
        targets.len() - pass - miss
    );
}
