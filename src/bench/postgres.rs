//! PostgreSQL 15 LISTEN/NOTIFY, the durable baseline: a server started for the run
//! (`initdb -A trust`, `synchronous_commit=on`, one table whose `AFTER INSERT ... FOR EACH
//! ROW` trigger calls `pg_notify`) and a minimal protocol-v3 client over one TCP
//! connection (StartupMessage with trust auth, simple Query, NotificationResponse).
//!
//! Every listener is a backend process in PostgreSQL, so listener counts are bounded by
//! `max_connections` and by the machine; the scenarios skip PostgreSQL above a flag.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rustix::process::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;

use super::process::{free_port, is_executable, is_root, stop_child, user_ids};

/// The channel the trigger notifies.
pub const CHANNEL: &str = "events";

/// The table and the trigger every insert goes through.
const SCHEMA: &str = "\
CREATE TABLE events (seq bigint NOT NULL, payload text NOT NULL);
CREATE FUNCTION notify_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('events', NEW.seq::text || '|' || NEW.payload);
    RETURN NULL;
END $$;
CREATE TRIGGER events_notify AFTER INSERT ON events FOR EACH ROW EXECUTE FUNCTION notify_event();";

/// A PostgreSQL server of this run; stopped on drop.
pub struct PgServer {
    child: Child,
    pub addr: SocketAddr,
    pub version: String,
    /// The postmaster's pid (the child is `runuser` when running as root).
    postmaster: Option<i32>,
    pub max_connections: usize,
    _dir: tempfile::TempDir,
}

impl PgServer {
    /// Checks that `bin` holds `initdb` and `postgres`.
    pub fn locate(bin: &Path) -> Result<PathBuf, String> {
        for exe in ["initdb", "postgres"] {
            if !is_executable(&bin.join(exe)) {
                return Err(format!("{} not found", bin.join(exe).display()));
            }
        }
        Ok(bin.to_path_buf())
    }

    /// `initdb` into a fresh directory and start `postgres` on a free loopback port.
    /// As root, both run as the `postgres` user (PostgreSQL refuses root), through
    /// `runuser`, in a directory that user owns.
    pub async fn start(bin: &Path, max_connections: usize) -> Result<PgServer> {
        let dir = tempfile::tempdir()?;
        let root = is_root();
        if root {
            let (uid, gid) = user_ids("postgres").context(
                "PostgreSQL refuses to run as root, and there is no postgres user to run it as",
            )?;
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .context("handing the data directory to the postgres user")?;
        }
        let as_pg = |exe: &str| -> Command {
            let exe = bin.join(exe);
            if root {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(exe);
                c
            } else {
                Command::new(exe)
            }
        };
        let data = dir.path().join("data");
        let out = as_pg("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync"])
            .args(["-E", "UTF8", "--locale=C"])
            .stdin(Stdio::null())
            .output()
            .context("running initdb")?;
        if !out.status.success() {
            bail!(
                "initdb failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let version = Command::new(bin.join("postgres"))
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        let port = free_port()?;
        let log = std::fs::File::create(dir.path().join("postgres.log"))?;
        let child = as_pg("postgres")
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", &format!("max_connections={max_connections}")])
            .args(["-c", "synchronous_commit=on"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting postgres")?;
        let mut server = PgServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            version,
            postmaster: None,
            max_connections,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut conn = loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                let log = std::fs::read_to_string(server._dir.path().join("postgres.log"))
                    .unwrap_or_default();
                bail!("postgres exited at start ({status}): {}", log.trim());
            }
            match PgConn::connect(server.addr).await {
                Ok(c) => break c,
                Err(e) if Instant::now() > deadline => {
                    return Err(e.context(format!("postgres did not start on port {port}")))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        server.postmaster = std::fs::read_to_string(data.join("postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().and_then(|l| l.trim().parse().ok()));
        conn.query(SCHEMA).await.context("creating the schema")?;
        Ok(server)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // SIGQUIT: immediate shutdown, no checkpoint; the data directory is thrown away.
        let pid = self.postmaster.unwrap_or(self.child.id() as i32);
        stop_child(&mut self.child, Some((pid, Signal::QUIT)));
    }
}

/// One backend connection.
pub struct PgConn {
    io: BufStream<TcpStream>,
    body: Vec<u8>,
}

impl PgConn {
    /// Connects as `postgres` to database `postgres` (trust authentication).
    pub async fn connect(addr: SocketAddr) -> Result<PgConn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to postgres at {addr}"))?;
        stream.set_nodelay(true)?;
        let mut conn = PgConn {
            io: BufStream::with_capacity(2048, 1024, stream),
            body: Vec::with_capacity(256),
        };
        let mut startup = Vec::with_capacity(64);
        startup.extend_from_slice(&0i32.to_be_bytes());
        startup.extend_from_slice(&196_608i32.to_be_bytes()); // protocol 3.0
        for s in ["user", "postgres", "database", "postgres"] {
            startup.extend_from_slice(s.as_bytes());
            startup.push(0);
        }
        startup.push(0);
        let len = i32::try_from(startup.len())?.to_be_bytes();
        startup[..4].copy_from_slice(&len);
        conn.io.write_all(&startup).await?;
        conn.io.flush().await?;
        loop {
            match conn.read_message().await? {
                b'R' => {
                    let code = conn
                        .body
                        .get(..4)
                        .and_then(|b| <[u8; 4]>::try_from(b).ok())
                        .map(i32::from_be_bytes);
                    if code != Some(0) {
                        bail!("postgres asks for authentication (code {code:?}); expected trust");
                    }
                }
                b'Z' => return Ok(conn),
                b'E' => bail!("postgres refused the connection: {}", conn.error_message()),
                _ => {} // ParameterStatus, BackendKeyData, notices
            }
        }
    }

    /// Reads one message: its type; its body is left in `self.body`.
    async fn read_message(&mut self) -> Result<u8> {
        let kind = self
            .io
            .read_u8()
            .await
            .context("postgres closed the connection")?;
        let len = self.io.read_i32().await?;
        let len = usize::try_from(len)
            .ok()
            .and_then(|l| l.checked_sub(4))
            .context("a bad message length")?;
        self.body.resize(len, 0);
        self.io.read_exact(&mut self.body).await?;
        Ok(kind)
    }

    /// The `M` field of the ErrorResponse in `self.body`.
    fn error_message(&self) -> String {
        self.body
            .split(|&b| b == 0)
            .find_map(|f| f.strip_prefix(b"M"))
            .map(|m| String::from_utf8_lossy(m).into_owned())
            .unwrap_or_else(|| "unknown error".into())
    }

    /// Runs SQL with the simple query protocol, up to ReadyForQuery.
    pub async fn query(&mut self, sql: &str) -> Result<()> {
        let mut msg = Vec::with_capacity(sql.len() + 6);
        msg.push(b'Q');
        msg.extend_from_slice(&i32::try_from(sql.len() + 5)?.to_be_bytes());
        msg.extend_from_slice(sql.as_bytes());
        msg.push(0);
        self.io.write_all(&msg).await?;
        self.io.flush().await?;
        let mut error = None;
        loop {
            match self.read_message().await? {
                b'E' => error = Some(self.error_message()),
                b'Z' => break,
                _ => {} // CommandComplete, rows, notices, notifications
            }
        }
        match error {
            Some(e) => bail!("postgres: {e} (in {})", sql.lines().next().unwrap_or("")),
            None => Ok(()),
        }
    }

    /// The payload of the next NotificationResponse.
    pub async fn next_notification(&mut self) -> Result<&[u8]> {
        while self.read_message().await? != b'A' {}
        // int32 sender pid, channel, payload (both NUL-terminated).
        let mut fields = self.body.get(4..).unwrap_or_default().split(|&b| b == 0);
        let _channel = fields.next();
        fields.next().context("a notification without a payload")
    }
}
