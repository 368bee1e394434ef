//! `eddy`: a MongoDB-7.0-compatible document database built around change streams.
//!
//! This binary is the top of the dependency graph: it parses the command line (clap), sets up
//! logging (`cli::logging`: tracing-subscriber, `RUST_LOG` respected) and dispatches to `serve`
//! (the server, from `eddy-server`), `watch` and `demo` (clients built on the official `mongodb`
//! driver, usable against any MongoDB deployment).

mod bench;
mod cli;
mod limits;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cli::{demo::DemoArgs, serve::ServeArgs, signal::Shutdown, watch::WatchArgs};

/// mimalloc instead of the system allocator: connections migrate between worker threads,
/// so memory is often freed on another thread than the one that allocated it, which
/// glibc's malloc serializes on its arena locks (measured: a tenth of the server's time
/// in lock waits with 1,000 change streams; see docs/ARCHITECTURE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SERVE_EXAMPLES: &str = "\
Examples:
  eddy serve                                   # 127.0.0.1:27017, data in ./eddy-data, replica set rs0
  eddy serve --port 27018 --dbpath /tmp/eddy --replSet test-change-streams
  eddy serve --bind_ip 127.0.0.1,::1 --setParameter enableTestCommands=1
  eddy serve --config /etc/eddy.conf --port 27019   # flags override the file
  RUST_LOG=eddy_server=debug eddy serve

Then point any MongoDB driver at it:
  export CHANGE_STREAM_DB=mongodb://localhost:27017
";

const WATCH_EXAMPLES: &str = "\
Examples:
  # The tutorial's change_streams.py: print every change to changestream.collection
  eddy watch --db changestream --coll collection
  # Only inserts
  eddy watch --db changestream --coll collection --match '{\"operationType\": \"insert\"}'
  # All databases, full documents for updates, one JSON document per line
  eddy watch mongodb://localhost:27017 --full-document updateLookup --format ndjson
  # Survive restarts: continue exactly after the last printed event
  eddy watch --db changestream --coll collection --checkpoint watch.token
  # Start from a cluster time the oplog still holds
  eddy watch --db changestream --start-at-operation-time 1705000000,1

Exit codes: 0 stopped normally (Ctrl-C, invalidate, --max-events, --idle-exit);
1 error; 2 the stream cannot be resumed (e.g. ChangeStreamHistoryLost).
";

const DEMO_EXAMPLES: &str = "\
Examples:
  # The tutorial's test.py: insert, update, replace, delete, drop on changestream.collection
  eddy demo
  # 1000 mixed insert/update/replace/delete operations at 100 per second
  eddy demo --count 1000 --rate 100
  # Against another deployment and namespace
  eddy demo mongodb://db.example:27017 --db shop --coll orders --rate 20
";

const BENCH_EXAMPLES: &str = "\
Examples:
  eddy bench                                   # all six fan-out scenarios, with Redis and PostgreSQL beside Eddy
  eddy bench all --json --plot latency.svg > bench.json
  eddy bench latency --streams 1,1000 --rates 20 --events 100
  eddy bench write-impact --streams 1000 --duration 5
  eddy bench fanout --uri mongodb://127.0.0.1:27017   # an Eddy that is already running
  eddy bench catchup --catchup-events 100000
  eddy bench insert --inserts 20000 --no-baselines
  eddy bench find --docs 100000 --queries 50   # indexed finds vs collection scans, matcher rate
  eddy bench slow-consumer --idle-streams 1000

Baselines (Redis pub/sub, PostgreSQL 15 LISTEN/NOTIFY) run when installed: bash scripts/setup-bench.sh
A smoke run of every scenario in seconds:
  eddy bench all --streams 4 --events 20 --duration 1 --catchup-events 2000 --memory-streams 20 --inserts 500
";

#[derive(Parser, Debug)]
#[command(
    name = "eddy",
    version,
    about = "A MongoDB-compatible document database built around change streams"
)]
struct Cli {
    /// More log output (-v debug, -vv trace); RUST_LOG overrides
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    /// Only log warnings and errors
    #[arg(long, global = true, conflicts_with = "verbose")]
    quiet: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the database server (a one-member replica set, so change streams work)
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
    /// Print change events, like the tutorial's change_streams.py, with resume and retry
    #[command(after_help = WATCH_EXAMPLES)]
    Watch(WatchArgs),
    /// Perform the tutorial's writes, or a steady mixed load
    #[command(after_help = DEMO_EXAMPLES)]
    Demo(DemoArgs),
    /// Measure change-stream fan-out against Redis and PostgreSQL, inserts, finds (starts its own servers)
    #[command(after_help = BENCH_EXAMPLES)]
    Bench(bench::BenchArgs),
}

/// Runs `body` in a multi-threaded tokio runtime with the SIGINT/SIGTERM handler installed;
/// its result is the process's exit code.
pub(crate) fn block_on<F, Fut>(body: F) -> anyhow::Result<i32>
where
    F: FnOnce(Shutdown) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<i32>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    let result = runtime.block_on(async move {
        let shutdown = Shutdown::install()?;
        body(shutdown).await
    });
    // Do not wait for driver background tasks (monitors) to notice the runtime is going away.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    result
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let cli = Cli::parse();
    // Logs go to stderr: `eddy watch` owns stdout for events.
    let init_logging = || {
        cli::logging::init(
            cli::logging::default_filter(cli.verbose, cli.quiet),
            cli::logging::Destination::Stderr,
            cli::logging::LogFormat::Text,
        )
    };
    let result = match cli.command {
        // `serve` sets up its own logging: the destination comes from its flags or config file.
        Command::Serve(args) => return cli::serve::main(args, argv, cli.verbose, cli.quiet),
        Command::Watch(args) => {
            init_logging();
            block_on(|shutdown| cli::watch::run(args, shutdown))
        }
        Command::Demo(args) => {
            init_logging();
            block_on(|shutdown| cli::demo::run(args, shutdown))
        }
        Command::Bench(args) => {
            init_logging();
            block_on(|shutdown| bench::run(args, shutdown))
        }
    };
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("eddy: {e:#}");
            ExitCode::FAILURE
        }
    }
}
