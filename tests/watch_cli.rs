//! `eddy watch` and `eddy demo` end to end: both run as child processes of this test against a
//! real `eddy serve`, exactly as a user runs the tutorial's two programs in two terminals.
//!
//! What is pinned: the tutorial's six events in order in the default output (pymongo's
//! `json_util.dumps` shapes, and, when `.work/venv` exists, parsed back by pymongo's
//! `json_util.loads`), `--match`, and `--checkpoint` delivering every event exactly once in
//! order across a Ctrl-C'd and restarted watcher and across a kill -9'd and restarted server.
//! Every scenario also runs against a server started with another `--replSet` name, so the
//! driver's replica-set discovery path is exercised, not just `rs0`.
//!
//! Nothing may hang: every wait has a deadline, and children are SIGKILLed on drop.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::{json, Value};

/// How long any single expected event, log line or child exit may take.
const WAIT: Duration = Duration::from_secs(30);

/// A running `eddy watch` / `eddy demo`: stdout and stderr are read line by line in threads.
struct Eddy {
    child: Child,
    what: String,
    stdout: Receiver<String>,
    stderr_lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Eddy {
    fn spawn(args: &[&str]) -> Eddy {
        let bin = env!("CARGO_BIN_EXE_eddy");
        let mut child = Command::new(bin)
            .args(args)
            .env_remove("CHANGE_STREAM_DB")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {bin}: {e}"));
        let out = child.stdout.take().expect("piped stdout");
        let err = child.stderr.take().expect("piped stderr");
        let (tx, stdout) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(l) = line else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let (etx, stderr_lines) = mpsc::channel();
        let buf = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(l) = line else { break };
                if let Ok(mut b) = buf.lock() {
                    b.push_str(&l);
                    b.push('\n');
                }
                let _ = etx.send(l);
            }
        });
        Eddy {
            child,
            what: format!("eddy {}", args.join(" ")),
            stdout,
            stderr_lines,
            stderr,
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits for a stderr line containing `needle`.
    fn wait_stderr(&self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr_lines.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return,
                Ok(_) => {}
                Err(_) => panic!(
                    "{}: no stderr line containing {needle:?} within {WAIT:?}; stderr:\n{}",
                    self.what,
                    self.stderr()
                ),
            }
        }
    }

    /// The next non-empty stdout line, or `None` once stdout is closed.
    fn next_line(&self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(l) if l.is_empty() => {}
                Ok(l) => return Some(l),
                Err(RecvTimeoutError::Disconnected) => return None,
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{}: no output within {timeout:?}; stderr:\n{}",
                    self.what,
                    self.stderr()
                ),
            }
        }
    }

    /// The next event printed by `eddy watch`, parsed as JSON, with its raw line.
    fn next_event(&self) -> (String, Value) {
        let line = self.next_line(WAIT).unwrap_or_else(|| {
            panic!(
                "{}: stdout closed while an event was expected; stderr:\n{}",
                self.what,
                self.stderr()
            )
        });
        let v = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {line}", self.what));
        (line, v)
    }

    /// Sends a signal with kill(1) (the workspace forbids unsafe, so no libc).
    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill {sig} {}", self.child.id());
    }

    /// Waits for the process to exit.
    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "{} did not exit within {WAIT:?}; stderr:\n{}",
                    self.what,
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The remaining stdout lines (including empty ones) after the process exited.
    fn rest_of_stdout(&self) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(l) = self.stdout.recv_timeout(WAIT) {
            out.push(l);
        }
        out
    }
}

impl Drop for Eddy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- {} stderr:\n{}----", self.what, self.stderr());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `eddy watch <uri> args...` and waits until its change stream is open.
fn watch(uri: &str, args: &[&str]) -> Eddy {
    let mut all = vec!["watch", uri];
    all.extend_from_slice(args);
    let w = Eddy::spawn(&all);
    w.wait_stderr("watching");
    w
}

/// Runs `eddy demo <uri> args...` to completion (exit 0); returns its stdout lines.
fn demo(uri: &str, args: &[&str]) -> Vec<String> {
    let mut all = vec!["demo", uri];
    all.extend_from_slice(args);
    let mut d = Eddy::spawn(&all);
    let status = d.wait();
    let out = d.rest_of_stdout();
    assert!(
        status.success(),
        "{} failed ({status}); stdout:\n{}\nstderr:\n{}",
        d.what,
        out.join("\n"),
        d.stderr()
    );
    out
}

fn server(repl_set: &str) -> TestServer {
    TestServer::start_with(&["--replSet", repl_set])
}

fn get<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| &v[k])
}

/// `(operationType, documentKey._id)` of an event.
fn key(v: &Value) -> (String, Option<i64>) {
    (
        v["operationType"].as_str().unwrap_or("?").to_owned(),
        v["documentKey"]["_id"].as_i64(),
    )
}

/// The `_id._data` resume token string of an event.
fn token(v: &Value) -> String {
    get(v, "_id._data")
        .as_str()
        .unwrap_or_else(|| panic!("event without a string _id._data: {v}"))
        .to_owned()
}

/// `(operationType, _id)` of each operation `eddy demo --count` printed (`[i/N] op({"_id": k, ...`).
fn demo_ops(lines: &[String]) -> Vec<(String, Option<i64>)> {
    lines
        .iter()
        .filter(|l| l.starts_with('['))
        .map(|l| {
            let (_, rest) = l.split_once("] ").expect("[i/N] prefix");
            let (op, args) = rest.split_once('(').expect("op(args)");
            let kind = op.strip_suffix("_one").expect("*_one operation").to_owned();
            let id = args
                .strip_prefix("{\"_id\": ")
                .and_then(|a| a.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse().ok());
            assert!(id.is_some(), "no _id in {l:?}");
            (kind, id)
        })
        .collect()
}

/// Checks that pymongo's `bson.json_util.loads` parses every line, and that `dumps` of the
/// result gives the line back byte for byte (the default format *is* `dumps`' output).
/// Skipped, saying why, when the test harness's `.work/venv` is absent.
fn check_with_pymongo(lines: &[String]) {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".work/venv/bin/python");
    if !python.exists() {
        eprintln!(
            "skipping the pymongo json_util.loads check: {} does not exist \
             (scripts/setup-python.sh creates it)",
            python.display()
        );
        return;
    }
    let script = "import sys\n\
        from bson import json_util\n\
        bad = 0\n\
        for line in sys.stdin.read().splitlines():\n\
        \x20   doc = json_util.loads(line)\n\
        \x20   again = json_util.dumps(doc)\n\
        \x20   if again != line:\n\
        \x20       bad += 1\n\
        \x20       print('eddy:   ' + line)\n\
        \x20       print('pymongo:' + again)\n\
        sys.exit(1 if bad else 0)\n";
    let mut child = Command::new(&python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {}: {e}", python.display()));
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(format!("{}\n", lines.join("\n")).as_bytes())
        .expect("writing to python");
    drop(stdin);
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("python did not finish within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(
        status.success(),
        "pymongo's json_util disagrees with eddy watch's output:\n{out}{err}"
    );
}

/// The shapes pymongo's relaxed `dumps` gives a change event's BSON-specific fields.
fn check_extended_json(v: &Value) {
    let data = token(v);
    assert!(
        !data.is_empty() && data.chars().all(|c| c.is_ascii_hexdigit()),
        "_id._data is not hex: {v}"
    );
    let ts = &v["clusterTime"]["$timestamp"];
    assert!(
        ts["t"].is_u64() && ts["i"].is_u64(),
        "clusterTime is not {{\"$timestamp\": {{\"t\": .., \"i\": ..}}}}: {v}"
    );
    let date = v["wallTime"]["$date"]
        .as_str()
        .unwrap_or_else(|| panic!("wallTime is not a relaxed {{\"$date\": \"ISO-8601\"}}: {v}"));
    assert!(
        date.len() >= 20 && date.ends_with('Z') && date.as_bytes()[10] == b'T',
        "wallTime {date:?} is not ISO-8601 UTC"
    );
}

fn tutorial_events(repl_set: &str) {
    let server = server(repl_set);
    let uri = server.uri();
    let mut w = watch(&uri, &["--db", "changestream", "--coll", "collection"]);
    let said = demo(&uri, &[]);
    for op in [
        "insert_one(",
        "update_one(",
        "replace_one(",
        "delete_one(",
        "drop()",
    ] {
        assert!(
            said.iter().any(|l| l.starts_with(op)),
            "eddy demo did not say it ran {op}..: {said:?}"
        );
    }

    let events: Vec<(String, Value)> = (0..6).map(|_| w.next_event()).collect();
    // After the invalidate the tutorial's loop ends: so does `eddy watch`, with exit code 0.
    let status = w.wait();
    assert_eq!(status.code(), Some(0), "stderr:\n{}", w.stderr());
    let trailing = w.rest_of_stdout();
    assert!(
        trailing.iter().all(String::is_empty),
        "output after the invalidate: {trailing:?}"
    );

    let kinds: Vec<&str> = events
        .iter()
        .map(|(_, v)| v["operationType"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        kinds,
        [
            "insert",
            "update",
            "replace",
            "delete",
            "drop",
            "invalidate"
        ]
    );
    for (_, v) in &events {
        check_extended_json(v);
    }
    let ns = json!({"db": "changestream", "coll": "collection"});
    for (_, v) in &events[..5] {
        assert_eq!(v["ns"], ns, "{v}");
    }
    let ev = |i: usize| &events[i].1;
    assert_eq!(ev(0)["fullDocument"], json!({"_id": 1, "hello": "world"}));
    assert_eq!(ev(0)["documentKey"], json!({"_id": 1}));
    assert_eq!(
        ev(1)["updateDescription"],
        json!({"updatedFields": {"hello": "mars"}, "removedFields": [], "truncatedArrays": []})
    );
    assert_eq!(ev(2)["fullDocument"], json!({"_id": 1, "bye": "world"}));
    assert_eq!(ev(3)["documentKey"], json!({"_id": 1}));
    // Resume tokens sort in event order.
    let tokens: Vec<String> = events.iter().map(|(_, v)| token(v)).collect();
    assert!(tokens.windows(2).all(|t| t[0] < t[1]), "{tokens:?}");

    let lines: Vec<String> = events.into_iter().map(|(l, _)| l).collect();
    check_with_pymongo(&lines);
}

#[test]
fn tutorial_events_in_default_format() {
    tutorial_events("rs0");
}

#[test]
fn tutorial_events_other_repl_set_name() {
    tutorial_events("other");
}

fn match_on_operation_type(repl_set: &str) {
    let server = server(repl_set);
    let uri = server.uri();
    let mut w = watch(
        &uri,
        &[
            "--db",
            "changestream",
            "--coll",
            "collection",
            "--match",
            r#"{"operationType": {"$in": ["insert", "replace"]}}"#,
            "--max-events",
            "2",
        ],
    );
    demo(&uri, &[]);
    let got: Vec<Value> = (0..2).map(|_| w.next_event().1).collect();
    assert_eq!(w.wait().code(), Some(0), "stderr:\n{}", w.stderr());
    assert!(w.rest_of_stdout().iter().all(String::is_empty));
    assert_eq!(
        got.iter().map(key).collect::<Vec<_>>(),
        [
            ("insert".to_owned(), Some(1)),
            ("replace".to_owned(), Some(1))
        ]
    );
    assert_eq!(got[1]["fullDocument"], json!({"_id": 1, "bye": "world"}));
}

#[test]
fn match_on_operation_type_rs0() {
    match_on_operation_type("rs0");
}

#[test]
fn match_on_operation_type_other_repl_set_name() {
    match_on_operation_type("other");
}

/// Reads events from `w` until `all` holds `total` of them.
fn read_until(w: &Eddy, all: &mut Vec<Value>, total: usize) {
    while all.len() < total {
        all.push(w.next_event().1);
    }
}

/// The concatenated output of all watchers is the demo's operations, each exactly once, in
/// order, with strictly increasing resume tokens.
fn assert_exactly_once(events: &[Value], ops: &[(String, Option<i64>)]) {
    let got: Vec<_> = events.iter().map(key).collect();
    assert_eq!(got.len(), ops.len(), "event count");
    for (i, (g, want)) in got.iter().zip(ops).enumerate() {
        assert_eq!(g, want, "event {i} of {}", ops.len());
    }
    let tokens: Vec<String> = events.iter().map(token).collect();
    assert!(
        tokens.windows(2).all(|t| t[0] < t[1]),
        "tokens not strictly increasing"
    );
}

fn checkpoint_across_watch_restarts(repl_set: &str) {
    const N: usize = 60;
    let server = server(repl_set);
    let uri = server.uri();
    let dir = tempfile::tempdir().expect("tempdir");
    let cp = dir.path().join("watch.token");
    let cp_arg = cp.display().to_string();
    let args = [
        "--db",
        "changestream",
        "--coll",
        "collection",
        "--checkpoint",
        cp_arg.as_str(),
    ];

    let mut events = Vec::new();
    let mut w = watch(&uri, &args);
    // The load runs while watchers come and go; its output says what it did, in order.
    let count = N.to_string();
    let load = std::thread::spawn({
        let uri = uri.clone();
        move || demo(&uri, &["--count", &count, "--rate", "40"])
    });
    for stop_after in [15, 35] {
        read_until(&w, &mut events, stop_after);
        // Ctrl-C: exits 0 once the current event's checkpoint is on disk.
        w.signal("-INT");
        assert_eq!(w.wait().code(), Some(0), "stderr:\n{}", w.stderr());
        // Events printed before the signal was handled are part of the output too.
        for l in w.rest_of_stdout().into_iter().filter(|l| !l.is_empty()) {
            events.push(serde_json::from_str(&l).expect("JSON event"));
        }
        assert!(cp.exists(), "no checkpoint file after Ctrl-C");
        w = watch(&uri, &args);
    }
    let ops = demo_ops(&load.join().expect("demo thread"));
    assert_eq!(ops.len(), N);
    read_until(&w, &mut events, N);
    w.signal("-INT");
    assert_eq!(w.wait().code(), Some(0));
    assert!(w.rest_of_stdout().iter().all(String::is_empty));
    assert_exactly_once(&events, &ops);
}

#[test]
fn checkpoint_across_watch_restarts_rs0() {
    checkpoint_across_watch_restarts("rs0");
}

#[test]
fn checkpoint_across_watch_restarts_other_repl_set_name() {
    checkpoint_across_watch_restarts("other");
}

fn checkpoint_across_server_kill9(repl_set: &str) {
    const N: usize = 40;
    let mut server = server(repl_set);
    let uri = server.uri();
    let dir = tempfile::tempdir().expect("tempdir");
    let cp = dir.path().join("watch.token");
    let cp_arg = cp.display().to_string();
    let mut w = watch(
        &uri,
        &[
            "--db",
            "changestream",
            "--coll",
            "collection",
            "--checkpoint",
            &cp_arg,
        ],
    );
    let mut events = Vec::new();
    let count = N.to_string();
    let load = std::thread::spawn({
        let uri = uri.clone();
        move || demo(&uri, &["--count", &count, "--rate", "50"])
    });
    read_until(&w, &mut events, 10);
    // Freeze the watcher mid-stream, let the load finish, then kill -9 and restart the server
    // underneath it: its connection is gone and the rest of the events are only in the oplog.
    w.signal("-STOP");
    let ops = demo_ops(&load.join().expect("demo thread"));
    assert_eq!(ops.len(), N);
    server.kill9();
    server.start_again();
    w.signal("-CONT");
    read_until(&w, &mut events, N);
    w.signal("-INT");
    assert_eq!(w.wait().code(), Some(0), "stderr:\n{}", w.stderr());
    assert!(w.rest_of_stdout().iter().all(String::is_empty));
    assert_exactly_once(&events, &ops);
}

#[test]
fn checkpoint_across_server_kill9_rs0() {
    checkpoint_across_server_kill9("rs0");
}

#[test]
fn checkpoint_across_server_kill9_other_repl_set_name() {
    checkpoint_across_server_kill9("other");
}

#[test]
fn help_texts_have_examples() {
    for sub in ["watch", "demo"] {
        let out = Command::new(env!("CARGO_BIN_EXE_eddy"))
            .args([sub, "--help"])
            .output()
            .expect("running eddy --help");
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Examples:"), "eddy {sub} --help:\n{text}");
        assert!(text.contains(&format!("eddy {sub}")), "{text}");
    }
}

/// Writes with the Rust driver (the tests above use `eddy demo`; this one needs big documents).
fn insert_docs(uri: &str, docs: Vec<bson::Document>) {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(async {
        let client = mongodb::Client::with_uri_str(uri).await.expect("client");
        let coll = client
            .database("changestream")
            .collection::<bson::Document>("collection");
        for d in docs {
            coll.insert_one(d).await.expect("insert_one");
        }
    });
}

#[test]
fn history_lost_exits_2_and_says_how_to_start_again() {
    let server = TestServer::start_with(&["--replSet", "rs0", "--oplogSize", "1"]);
    let uri = server.uri();
    let dir = tempfile::tempdir().expect("tempdir");
    let cp = dir.path().join("watch.token");
    let cp_arg = cp.display().to_string();
    let scope = ["--db", "changestream", "--coll", "collection"];
    let mut w = watch(
        &uri,
        &[&scope[..], &["--checkpoint", &cp_arg, "--max-events", "1"]].concat(),
    );
    insert_docs(&uri, vec![bson::doc! {"_id": 0}]);
    assert_eq!(w.next_event().1["documentKey"], json!({"_id": 0}));
    assert_eq!(w.wait().code(), Some(0), "stderr:\n{}", w.stderr());

    // ~8 MB of oplog through a 1 MB oplog: the checkpointed event is trimmed away.
    let pad = "x".repeat(200_000);
    insert_docs(
        &uri,
        (1..40)
            .map(|i| bson::doc! {"_id": i, "pad": &pad})
            .collect(),
    );
    // Trimming may lag the writes a little: retry from a copy of the checkpoint (a watcher
    // that can still resume would print, and checkpoint, an event) until the server says so.
    let deadline = Instant::now() + WAIT;
    loop {
        let attempt = dir.path().join("attempt.token");
        std::fs::copy(&cp, &attempt).expect("copying the checkpoint");
        let attempt_arg = attempt.display().to_string();
        let mut w = Eddy::spawn(
            &[
                &["watch", uri.as_str()][..],
                &scope,
                &["--checkpoint", &attempt_arg, "--max-events", "1"],
            ]
            .concat(),
        );
        let status = w.wait();
        if status.code() == Some(2) {
            let err = w.stderr();
            assert!(err.contains("ChangeStreamHistoryLost"), "{err}");
            assert!(
                err.contains(&format!("delete the checkpoint file {attempt_arg}")),
                "{err}"
            );
            assert!(
                !err.contains("server response"),
                "raw driver internals: {err}"
            );
            assert!(w.rest_of_stdout().is_empty());
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never got ChangeStreamHistoryLost; last exit {status}, stderr:\n{}",
            w.stderr()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
