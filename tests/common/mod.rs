//! Shared helper for Eddy's integration tests (`mod common;` in a `tests/*.rs` file).
//!
//! [`TestServer`] runs the real `eddy` binary that Cargo built for this package
//! (`CARGO_BIN_EXE_eddy`) as `eddy serve --port <free port> --dbpath <temp dir>
//! --setParameter enableTestCommands=1 [extra args]`, bound to loopback. Its stdout and stderr go
//! to `eddy.log` in the temp dir; the log's tail is printed when a test panics while the server
//! is alive, and on every start failure. Dropping the server kills it (SIGKILL) and removes the
//! temp dir. `stop`/`kill9`/`restart` keep the port and dbpath so durability can be tested.
//!
//! Nothing here may hang a test run: start-up waits at most [`START_TIMEOUT`], a clean stop at
//! most [`STOP_TIMEOUT`] before SIGKILL, and clients use short server-selection timeouts.

#![allow(dead_code)] // each test binary uses a different subset of the helpers

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a started server gets to accept TCP connections.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a SIGTERM'd server gets to exit before it is SIGKILLed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A running (or stopped) `eddy serve` process with its own port and dbpath.
pub struct TestServer {
    child: Option<Child>,
    port: u16,
    extra_args: Vec<String>,
    dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts `eddy serve` with the default arguments (standalone, test commands enabled).
    pub fn start() -> TestServer {
        Self::start_with(&[])
    }

    /// Starts the server as the primary of the one-member replica set `rs0`.
    pub fn start_replset() -> TestServer {
        Self::start_with(&["--replSet", "rs0"])
    }

    /// Starts `eddy serve` with `args` appended to the default arguments.
    pub fn start_with(args: &[&str]) -> TestServer {
        let dir = tempfile::Builder::new()
            .prefix("eddy-test-")
            .tempdir()
            .expect("creating a temp dir for the test server");
        std::fs::create_dir_all(dir.path().join("db")).expect("creating the dbpath");
        let mut server = TestServer {
            child: None,
            port: free_port(),
            extra_args: args.iter().map(|s| s.to_string()).collect(),
            dir,
        };
        server.spawn();
        server
    }

    /// The port the server listens on (stable across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The database directory (stable across restarts).
    pub fn dbpath(&self) -> PathBuf {
        self.dir.path().join("db")
    }

    /// Path of the log file holding the server's stdout and stderr.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("eddy.log")
    }

    /// `mongodb://localhost:<port>/?serverSelectionTimeoutMS=10000`.
    pub fn uri(&self) -> String {
        format!(
            "mongodb://localhost:{}/?serverSelectionTimeoutMS=10000",
            self.port
        )
    }

    /// The same with `directConnection=true` (talks to this one server, no discovery).
    pub fn direct_uri(&self) -> String {
        format!("{}&directConnection=true", self.uri())
    }

    /// A driver client using [`TestServer::uri`] (topology discovered from `hello`).
    pub async fn client(&self) -> mongodb::Client {
        mongodb::Client::with_uri_str(self.uri())
            .await
            .expect("parsing the test server's URI")
    }

    /// A driver client using [`TestServer::direct_uri`].
    pub async fn direct_client(&self) -> mongodb::Client {
        mongodb::Client::with_uri_str(self.direct_uri())
            .await
            .expect("parsing the test server's URI")
    }

    /// The server process id (to read its `/proc/<pid>/status`), while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the server process is running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Clean shutdown: SIGTERM, then wait (SIGKILL after [`STOP_TIMEOUT`], which panics).
    /// Returns the exit code (`None` if killed by a signal).
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        // std has no portable SIGTERM and the workspace forbids unsafe (libc): use kill(1).
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while sent && Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "eddy did not exit within {STOP_TIMEOUT:?} of SIGTERM; log:\n{}",
            self.log_tail(60)
        );
    }

    /// SIGKILL: the process gets no chance to flush anything not already durable.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server if it runs (SIGTERM) and starts it again on the same port and dbpath.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Starts the server again after [`TestServer::kill9`] or [`TestServer::stop`].
    pub fn start_again(&mut self) {
        assert!(
            !self.is_running(),
            "start_again: the server is still running"
        );
        self.spawn();
    }

    /// The last `lines` lines of the server log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn spawn(&mut self) {
        let bin = env!("CARGO_BIN_EXE_eddy");
        let dbpath = self.dbpath();
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--port".into(),
            self.port.to_string(),
            "--dbpath".into(),
            dbpath.display().to_string(),
            "--setParameter".into(),
            "enableTestCommands=1".into(),
        ];
        args.extend(self.extra_args.iter().cloned());
        let log = open_log(&self.log_path(), &format!("{bin} {}", args.join(" ")));
        let log_err = log.try_clone().expect("cloning the log file handle");
        let child = Command::new(bin)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {bin}: {e}"));
        self.child = Some(child);
        self.wait_until_accepting();
    }

    fn wait_until_accepting(&mut self) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    panic!(
                        "eddy exited ({status}) before accepting connections on port {}; log:\n{}",
                        self.port,
                        self.log_tail(60)
                    );
                }
            }
            if Instant::now() >= deadline {
                self.kill9();
                panic!(
                    "eddy did not accept connections on port {} within {START_TIMEOUT:?}; log:\n{}",
                    self.port,
                    self.log_tail(60)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- eddy log (port {}, {}):\n{}\n----",
                self.port,
                self.log_path().display(),
                self.log_tail(80)
            );
        }
        self.kill9();
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("binding an ephemeral port");
    listener
        .local_addr()
        .expect("reading the ephemeral port")
        .port()
}

fn open_log(path: &Path, command_line: &str) -> File {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    let _ = writeln!(file, "\n=== start: {command_line}");
    file
}

/// Every document of a cursor, in order.
pub async fn collect(mut cursor: mongodb::Cursor<bson::Document>) -> Vec<bson::Document> {
    let mut out = Vec::new();
    while cursor.advance().await.expect("cursor advance") {
        out.push(cursor.deserialize_current().expect("decoding a document"));
    }
    out
}

/// The documents of a cursor reply's `firstBatch` (`{cursor: {firstBatch: [...]}}`).
pub fn first_batch(reply: &bson::Document) -> Vec<bson::Document> {
    reply
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .expect("a cursor reply with a firstBatch")
        .iter()
        .map(|d| d.as_document().expect("a document").clone())
        .collect()
}

/// The server's error code of a command error, or of the first write error.
pub fn error_code(e: &mongodb::error::Error) -> Option<i32> {
    use mongodb::error::{ErrorKind, WriteFailure};
    match e.kind.as_ref() {
        ErrorKind::Command(c) => Some(c.code),
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        ErrorKind::InsertMany(m) => m
            .write_errors
            .as_ref()
            .and_then(|w| w.first())
            .map(|w| w.code),
        _ => None,
    }
}

/// The integer `_id`s of documents, in order.
pub fn ids(docs: &[bson::Document]) -> Vec<i32> {
    docs.iter()
        .map(|d| d.get_i32("_id").expect("integer _id"))
        .collect()
}

/// The cursor id of a raw cursor reply (`{cursor: {id, ...}}`).
pub fn cursor_id(reply: &bson::Document) -> i64 {
    reply
        .get_document("cursor")
        .and_then(|c| c.get_i64("id"))
        .expect("cursor id")
}

/// Reads a change stream's next event, failing the test after 10 s.
pub async fn next_event<T>(stream: &mut mongodb::change_stream::ChangeStream<T>) -> T
where
    T: serde::de::DeserializeOwned + Unpin + Send + Sync,
{
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            if let Some(e) = stream.next_if_any().await.expect("getMore") {
                return e;
            }
        }
    })
    .await
    .expect("an event within 10 s")
}
