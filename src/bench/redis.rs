//! Redis pub/sub, the speed reference: a `redis-server` started for the run (no persistence)
//! and a minimal RESP client (`SUBSCRIBE`, `PUBLISH`, `PING`) over one TCP connection.
//!
//! Redis keeps nothing: a subscriber that is away misses what was published meanwhile.
//! Its figures say how fast delivery alone can be on this machine, not what a durable
//! stream with resume costs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;

use super::process::{find_in_path, free_port, stop_child};

/// A `redis-server` of this run; stopped on drop.
pub struct RedisServer {
    child: Child,
    pub addr: SocketAddr,
    pub version: String,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The `redis-server` executable, or why there is none.
    pub fn locate(name: &str) -> Result<PathBuf, String> {
        find_in_path(name).ok_or_else(|| format!("{name} not found in PATH"))
    }

    /// Starts `redis-server` on a free loopback port, persistence off, room for
    /// `max_clients` connections.
    pub async fn start(exe: &PathBuf, max_clients: usize) -> Result<RedisServer> {
        let version = Command::new(exe)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        let port = free_port()?;
        let dir = tempfile::tempdir()?;
        let child = Command::new(exe)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--maxclients", &max_clients.to_string()])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let server = RedisServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            version,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut c) = RedisConn::connect(server.addr).await {
                if c.ping().await.is_ok() {
                    return Ok(server);
                }
            }
            if Instant::now() > deadline {
                bail!("redis-server did not answer PING on port {port}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        stop_child(&mut self.child, None);
    }
}

/// A RESP value, as far as this client needs them (no nested arrays).
#[derive(Debug)]
enum Resp {
    Simple(Vec<u8>),
    Int(i64),
    Bulk(Option<Vec<u8>>),
}

/// One connection to Redis.
pub struct RedisConn {
    io: BufStream<TcpStream>,
    line: Vec<u8>,
}

impl RedisConn {
    pub async fn connect(addr: SocketAddr) -> Result<RedisConn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to redis at {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(RedisConn {
            io: BufStream::with_capacity(1024, 1024, stream),
            line: Vec::with_capacity(64),
        })
    }

    async fn send(&mut self, args: &[&[u8]]) -> Result<()> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.io.write_all(&out).await?;
        self.io.flush().await?;
        Ok(())
    }

    /// One line without its CRLF.
    async fn read_line(&mut self) -> Result<&[u8]> {
        self.line.clear();
        let n = self.io.read_until(b'\n', &mut self.line).await?;
        if n == 0 {
            bail!("redis closed the connection");
        }
        let body = self
            .line
            .strip_suffix(b"\r\n")
            .context("a RESP line without CRLF")?;
        Ok(body)
    }

    async fn read_scalar(&mut self) -> Result<Resp> {
        let line = self.read_line().await?;
        let (kind, rest) = line.split_first().context("an empty RESP line")?;
        let int = |b: &[u8]| -> Result<i64> {
            std::str::from_utf8(b)?
                .parse::<i64>()
                .context("a RESP integer")
        };
        match kind {
            b'+' => Ok(Resp::Simple(rest.to_vec())),
            b'-' => bail!("redis error: {}", String::from_utf8_lossy(rest)),
            b':' => Ok(Resp::Int(int(rest)?)),
            b'$' => {
                let len = int(rest)?;
                let Ok(len) = usize::try_from(len) else {
                    return Ok(Resp::Bulk(None));
                };
                let mut data = vec![0; len + 2];
                self.io.read_exact(&mut data).await?;
                data.truncate(len);
                Ok(Resp::Bulk(Some(data)))
            }
            other => bail!("unexpected RESP type {:?}", *other as char),
        }
    }

    /// An array of scalars (a pub/sub push or a subscribe confirmation).
    async fn read_array(&mut self) -> Result<Vec<Resp>> {
        let line = self.read_line().await?;
        let count = match line.split_first() {
            Some((b'*', n)) => std::str::from_utf8(n)?.parse::<usize>()?,
            Some((b'-', msg)) => bail!("redis error: {}", String::from_utf8_lossy(msg)),
            _ => bail!(
                "expected a RESP array, got {}",
                String::from_utf8_lossy(line)
            ),
        };
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(self.read_scalar().await?);
        }
        Ok(items)
    }

    pub async fn ping(&mut self) -> Result<()> {
        self.send(&[b"PING"]).await?;
        match self.read_scalar().await? {
            Resp::Simple(s) if s == b"PONG" => Ok(()),
            other => bail!("PING answered {other:?}"),
        }
    }

    /// `SUBSCRIBE channel`, waiting for the confirmation.
    pub async fn subscribe(&mut self, channel: &str) -> Result<()> {
        self.send(&[b"SUBSCRIBE", channel.as_bytes()]).await?;
        let reply = self.read_array().await?;
        match reply.first() {
            Some(Resp::Bulk(Some(kind))) if kind == b"subscribe" => Ok(()),
            _ => bail!("SUBSCRIBE answered {reply:?}"),
        }
    }

    /// The payload of the next pub/sub message.
    pub async fn next_message(&mut self) -> Result<Vec<u8>> {
        loop {
            let mut push = self.read_array().await?;
            if let (Some(Resp::Bulk(Some(kind))), 3) = (push.first(), push.len()) {
                if kind == b"message" {
                    if let Some(Resp::Bulk(Some(payload))) = push.pop() {
                        return Ok(payload);
                    }
                }
            }
        }
    }

    /// `PUBLISH channel payload`, awaiting its integer reply (the receivers reached).
    pub async fn publish(&mut self, channel: &str, payload: &[u8]) -> Result<i64> {
        self.send(&[b"PUBLISH", channel.as_bytes(), payload])
            .await?;
        match self.read_scalar().await? {
            Resp::Int(n) => Ok(n),
            other => bail!("PUBLISH answered {other:?}"),
        }
    }
}
