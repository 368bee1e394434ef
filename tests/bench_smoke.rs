//! `eddy bench` end to end in tiny configurations: every scenario runs to its end against
//! the servers it starts and reports its figures in `--json`.
//!
//! The baselines (Redis, PostgreSQL 15) are measured when their binaries are installed
//! (`bash scripts/setup-bench.sh`), and then their figures are checked too; otherwise the
//! JSON must say they are unavailable and how to install them. One test points the bench
//! at binaries that do not exist, so the "unavailable" path is checked on every machine.
//!
//! Nothing may hang: each run has a deadline, and a child still running then is killed.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The most one tiny run may take (they take a few seconds).
const DEADLINE: Duration = Duration::from_secs(90);

fn redis_installed() -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|d| d.join("redis-server").is_file())
    })
}

fn postgres_installed() -> bool {
    let bin = Path::new("/usr/lib/postgresql/15/bin");
    bin.join("postgres").is_file() && bin.join("initdb").is_file()
}

/// Runs `eddy bench ARGS --json` and returns the parsed JSON.
fn bench(args: &[&str]) -> Value {
    let mut child = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .arg("bench")
        .args(args)
        .args(["--json", "--timeout", "30"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning eddy bench");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for eddy bench") {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "eddy bench {args:?} still running after {DEADLINE:?}; stderr:\n{}",
                err.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = out.join().expect("stdout reader");
    let stderr = err.join().expect("stderr reader");
    assert!(
        status.success(),
        "eddy bench {args:?} failed ({status}):\n{stderr}\n{stdout}"
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("eddy bench {args:?}: not JSON ({e}):\n{stdout}"))
}

fn scenario<'a>(json: &'a Value, name: &str) -> &'a Value {
    let sc = &json["scenarios"][name];
    assert!(sc.is_object(), "no scenario {name} in {json:#}");
    for key in ["config", "rows", "targets", "notes"] {
        assert!(!sc[key].is_null(), "{name} has no {key}: {sc:#}");
    }
    sc
}

fn rows<'a>(sc: &'a Value, system: &str) -> Vec<&'a Value> {
    sc["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["system"] == system)
        .collect()
}

/// Every named field of `row` is a number above 0.
fn positive(row: &Value, keys: &[&str]) {
    for k in keys {
        let v = row[*k].as_f64();
        assert!(v.is_some_and(|v| v > 0.0), "{k} is not > 0 in {row:#}");
    }
}

/// The baseline figures when installed, else the unavailability report.
fn check_baselines(json: &Value, sc: &Value, check: impl Fn(&str, &[&Value])) {
    for (system, installed) in [
        ("redis", redis_installed()),
        ("postgres", postgres_installed()),
    ] {
        let info = &json["baselines"][system];
        if installed {
            assert_eq!(info["available"], true, "{system}: {info:#}");
            check(system, &rows(sc, system));
        } else {
            assert_eq!(info["available"], false, "{system}: {info:#}");
            assert!(
                info["install"]
                    .as_str()
                    .is_some_and(|s| s.contains("setup-bench.sh")),
                "{info:#}"
            );
            assert!(rows(sc, system).is_empty());
            let notes = sc["notes"].to_string();
            assert!(notes.contains(&format!("{system}: unavailable")), "{notes}");
        }
    }
}

#[test]
fn write_impact() {
    let json = bench(&[
        "write-impact",
        "--streams",
        "6",
        "--duration",
        "0.5",
        "--writers",
        "4",
    ]);
    let sc = scenario(&json, "write-impact");
    let eddy = rows(sc, "eddy");
    assert_eq!(eddy.len(), 2, "0 and 6 streams: {sc:#}");
    assert_eq!(eddy[0]["streams"], 0);
    assert_eq!(eddy[1]["streams"], 6);
    for r in &eddy {
        positive(
            r,
            &[
                "writes",
                "writes_per_s",
                "ratio_to_0",
                "ack_p50_ms",
                "duration_s",
            ],
        );
    }
    assert_eq!(sc["targets"].as_array().map(Vec::len), Some(2));
    check_baselines(&json, sc, |system, rows| {
        assert_eq!(rows.len(), 2, "{system}: {sc:#}");
        for r in rows {
            positive(r, &["writes", "writes_per_s", "ratio_to_0"]);
        }
    });
}

#[test]
fn latency_and_plot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let svg = dir.path().join("latency.svg");
    let json = bench(&[
        "latency",
        "--streams",
        "1,5",
        "--events",
        "10",
        "--rates",
        "100,400",
        "--plot",
        svg.to_str().expect("utf-8 path"),
    ]);
    let sc = scenario(&json, "latency");
    let check = |system: &str, rows: &[&Value]| {
        assert_eq!(rows.len(), 4, "{system}: 2 stream counts x 2 rates: {sc:#}");
        for r in rows {
            positive(r, &["p50_ms", "p99_ms", "p999_ms", "max_ms", "deliveries"]);
            assert_eq!(r["complete"], true, "{r:#}");
            assert_eq!(r["deliveries"], r["expected_deliveries"], "{r:#}");
            assert!(r["p50_ms"].as_f64() <= r["p99_ms"].as_f64(), "{r:#}");
            assert!(
                r["client_us_per_delivery"].as_f64() >= Some(0.0),
                "the clients' CPU per delivery: {r:#}"
            );
        }
    };
    check("eddy", &rows(sc, "eddy"));
    check_baselines(&json, sc, check);
    let svg = std::fs::read_to_string(&svg).expect("the plot was written");
    assert!(svg.starts_with("<svg"), "{svg}");
    assert!(svg.contains("<polyline") && svg.contains("eddy 5 streams, 100/s"));
}

#[test]
fn fanout() {
    let json = bench(&["fanout", "--streams", "5", "--events", "20"]);
    let sc = scenario(&json, "fanout");
    let check = |system: &str, rows: &[&Value]| {
        assert_eq!(rows.len(), 1, "{system}: {sc:#}");
        positive(rows[0], &["deliveries_per_s", "events_per_s", "seconds"]);
        assert_eq!(rows[0]["deliveries"], 100, "{system}: {sc:#}");
    };
    check("eddy", &rows(sc, "eddy"));
    check_baselines(&json, sc, check);
    assert_eq!(sc["targets"].as_array().map(Vec::len), Some(2));
}

#[test]
fn catchup_memory_insert() {
    let json = bench(&[
        "all",
        "--no-baselines",
        "--streams",
        "2",
        "--events",
        "5",
        "--duration",
        "0.3",
        "--writers",
        "4",
        "--catchup-events",
        "3000",
        "--catchup-batch",
        "500",
        "--memory-streams",
        "20",
        "--inserts",
        "400",
    ]);
    for name in ["write-impact", "latency", "fanout"] {
        scenario(&json, name);
    }
    let catchup = scenario(&json, "catchup");
    let row = rows(catchup, "eddy")[0];
    positive(
        row,
        &["events_per_s", "load_docs_per_s", "batches", "mb_per_s"],
    );
    assert_eq!(row["events_read"], 3000, "{row:#}");
    let memory = scenario(&json, "memory");
    let row = rows(memory, "eddy")[0];
    positive(row, &["rss_before_kib", "rss_after_kib", "kib_per_stream"]);
    assert_eq!(row["streams"], 20);
    let insert = scenario(&json, "insert");
    for system in ["eddy", "redb-committer"] {
        let r: Vec<_> = rows(insert, system)
            .into_iter()
            .filter(|r| r["kind"] == "inserts")
            .collect();
        assert_eq!(r.len(), 1, "{system}: {insert:#}");
        positive(r[0], &["inserts_per_s", "ack_p50_ms", "ack_p99_ms"]);
        assert_eq!(r[0]["inserts"], 400);
    }
    // The transactions row: 400 / 3 transactions of 3 inserts each.
    let txn: Vec<_> = rows(insert, "eddy")
        .into_iter()
        .filter(|r| r["kind"] == "transactions")
        .collect();
    assert_eq!(txn.len(), 1, "{insert:#}");
    positive(
        txn[0],
        &[
            "transactions_per_s",
            "writes_per_s",
            "txn_p50_ms",
            "txn_p99_ms",
        ],
    );
    assert_eq!(txn[0]["transactions"], 133);
    assert_eq!(txn[0]["writes_per_transaction"], 3);
    let target = &insert["targets"][0];
    assert!(
        target["value"].as_f64().is_some_and(|v| v > 0.0),
        "{target:#}"
    );
    assert!(["PASS", "MISS"].contains(&target["status"].as_str().unwrap_or("")));
    for system in ["redis", "postgres"] {
        assert_eq!(json["baselines"][system]["available"], false);
    }
}

#[test]
fn missing_baselines_are_reported() {
    let json = bench(&[
        "fanout",
        "--streams",
        "2",
        "--events",
        "5",
        "--redis-server",
        "/nonexistent/redis-server",
        "--pg-bin",
        "/nonexistent/bin",
    ]);
    let sc = scenario(&json, "fanout");
    assert_eq!(rows(sc, "eddy").len(), 1);
    for system in ["redis", "postgres"] {
        let info = &json["baselines"][system];
        assert_eq!(info["available"], false, "{info:#}");
        assert!(info["reason"]
            .as_str()
            .is_some_and(|r| r.contains("/nonexistent")));
        assert_eq!(info["install"], "bash scripts/setup-bench.sh");
        assert!(sc["notes"]
            .to_string()
            .contains(&format!("{system}: unavailable")));
    }
}

#[test]
fn find_and_slow_consumer() {
    let json = bench(&["find", "--docs", "1000", "--queries", "3"]);
    let sc = scenario(&json, "find");
    let rows = sc["rows"].as_array().expect("rows");
    // load, two finds, the scan, the text row, three geo queries, the matcher.
    assert_eq!(rows.len(), 9, "{sc:#}");
    let text = rows
        .iter()
        .find(|r| r["measure"] == "text {$text: w} vs regex scan")
        .expect("the text row");
    positive(text, &["indexed_p50_ms", "scan_p50_ms", "speedup"]);
    let json = bench(&[
        "slow-consumer",
        "--idle-streams",
        "5",
        "--slow-inserts",
        "300",
    ]);
    let sc = scenario(&json, "slow-consumer");
    let rows = sc["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2);
    for r in rows {
        positive(r, &["inserts_per_s", "rss_before_kib", "rss_after_kib"]);
    }
}

#[test]
fn sse_beside_the_wire() {
    let json = bench(&[
        "sse",
        "--streams",
        "4",
        "--events",
        "20",
        "--rates",
        "100",
        "--no-baselines",
    ]);
    let sc = scenario(&json, "sse");
    let rows = sc["rows"].as_array().expect("rows");
    let transports: Vec<&str> = rows
        .iter()
        .filter_map(|r| r["transport"].as_str())
        .collect();
    assert_eq!(transports, ["sse", "wire"], "{sc:#}");
    for r in rows {
        assert_eq!(r["deliveries"], 80, "{r:#}");
        assert_eq!(r["complete"], true, "{r:#}");
        positive(r, &["p50_ms", "p99_ms", "max_ms"]);
    }
}
