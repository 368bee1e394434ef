//! The Eddy under test: a server this run starts (`eddy serve`, this same executable, on a
//! free loopback port with a fresh data directory) or an external one given by `--uri`.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bson::Timestamp;
use mongodb::options::ClientOptions;
use mongodb::Client;

use super::mongo::MongoConn;
use super::process::{free_port, stop_child};

/// The database every scenario writes in.
pub const DB: &str = "bench";

/// A server started for one configuration; killed on drop.
pub struct BenchServer {
    child: Child,
    pub addr: SocketAddr,
    /// Its `--http-port` (the `sse` scenario), if started with one.
    pub http: Option<SocketAddr>,
    _dir: tempfile::TempDir,
}

impl BenchServer {
    pub async fn start() -> Result<BenchServer> {
        BenchServer::launch(None).await
    }

    /// A server that also serves HTTP (the change-stream gateway).
    pub async fn start_with_http() -> Result<BenchServer> {
        BenchServer::launch(Some(free_port()?)).await
    }

    async fn launch(http_port: Option<u16>) -> Result<BenchServer> {
        let port = free_port()?;
        let dir = tempfile::tempdir()?;
        let exe = std::env::current_exe().context("locating the eddy executable")?;
        let mut command = Command::new(exe);
        command
            .args(["serve", "--port", &port.to_string(), "--dbpath"])
            .arg(dir.path())
            .arg("--quiet");
        if let Some(http) = http_port {
            command.args(["--http-port", &http.to_string()]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting eddy serve")?;
        let mut server = BenchServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            http: http_port.map(|p| SocketAddr::from(([127, 0, 0, 1], p))),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(server.addr).await.is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                bail!("eddy serve exited at start: {status}");
            }
            if Instant::now() > deadline {
                bail!("eddy serve did not start listening on port {port}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(server)
    }

    /// The server's process id (for its resident memory).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A driver client (the `find` and `slow-consumer` workloads use the official driver).
    pub async fn client(&self, pool: u32) -> Result<Client> {
        let mut options =
            ClientOptions::parse(format!("mongodb://{}/?directConnection=true", self.addr)).await?;
        options.max_pool_size = Some(pool);
        Ok(Client::with_options(options)?)
    }
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        stop_child(&mut self.child, None);
    }
}

/// `--uri mongodb://host[:port][/...]` as a loopback socket address: the bench talks
/// only to this machine.
pub async fn parse_uri(uri: &str) -> Result<SocketAddr> {
    let rest = uri
        .strip_prefix("mongodb://")
        .context("--uri must start with mongodb://")?;
    let hostport = rest.split(['/', '?']).next().unwrap_or_default();
    if hostport.contains(',') || hostport.contains('@') {
        bail!("--uri must name one host, without credentials");
    }
    let hostport = if hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !hostport.ends_with(']')
    {
        hostport.to_owned()
    } else {
        format!("{hostport}:27017")
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&hostport)
        .await
        .with_context(|| format!("resolving {hostport}"))?
        .collect();
    let addr = addrs
        .iter()
        .find(|a| a.ip().is_loopback())
        .copied()
        .with_context(|| {
            format!("{hostport} is not a loopback address: eddy bench only talks to this machine")
        })?;
    MongoConn::connect(addr)
        .await
        .with_context(|| format!("connecting to {uri}"))?;
    Ok(addr)
}

/// One Eddy to measure in one configuration, and the collection it uses.
pub struct EddyInstance {
    pub addr: SocketAddr,
    /// The server this run started for the configuration; `None` with `--uri`.
    pub server: Option<BenchServer>,
    pub coll: String,
    /// The `operationTime` of the collection's `create`: a `startAtOperationTime` before
    /// any write of the configuration.
    pub created_at: Option<Timestamp>,
}

impl EddyInstance {
    /// A fresh server (or the `--uri` one) with `coll` created.
    pub async fn new(uri: Option<SocketAddr>, coll: String) -> Result<EddyInstance> {
        let (addr, server) = match uri {
            Some(addr) => (addr, None),
            None => {
                let s = BenchServer::start().await?;
                (s.addr, Some(s))
            }
        };
        let mut conn = MongoConn::connect(addr).await?;
        let created_at = conn.create(DB, &coll).await?;
        Ok(EddyInstance {
            addr,
            server,
            coll,
            created_at,
        })
    }

    /// Drops the collection on an external server (a started one goes away whole).
    pub async fn finish(self) -> Result<()> {
        if self.server.is_none() {
            let mut conn = MongoConn::connect(self.addr).await?;
            conn.drop_collection(DB, &self.coll).await?;
        }
        Ok(())
    }
}
