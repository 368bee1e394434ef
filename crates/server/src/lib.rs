//! eddy-server: the network front of Eddy. It accepts MongoDB driver connections on
//! TCP, frames messages with `eddy-wire`, runs commands against `eddy-engine` and
//! answers as the primary of a one-member MongoDB 7.0 replica set.
//!
//! Layout:
//! - [`connection`]: one task per socket; framing, OP_MSG / OP_QUERY, exhaust;
//! - [`dispatch`]: the generic rules every command goes through (sessions, retryable
//!   writes, failpoints, write concern) and the reply's `ok` / `$clusterTime` /
//!   `operationTime`;
//! - [`commands`]: one file per command behind one name -> handler table;
//! - [`command`]: the `Command` trait (parse, then apply) and its context `Ctx`;
//! - [`cursor`]: cursor sources and the server-wide cursor registry;
//! - [`failpoint`]: `configureFailPoint` for driver test suites;
//! - [`http`]: the optional HTTP port (`GET /metrics`, change streams as Server-Sent
//!   Events at `/v1/watch`, the live viewer page at `/`);
//! - [`ops`]: operations in progress (`currentOp`, `killOp`), open connections and the
//!   command counters of `serverStatus`;
//! - [`state`]: what all connections share.
//!
//! Only this crate knows about sockets; only the engine knows about storage.
#![forbid(unsafe_code)]
// Every fallible function here returns the workspace-wide `MongoError` (code, message,
// labels, extra fields), a plain struct shared by all layers.
#![allow(clippy::result_large_err)]

pub mod answer;
pub mod args;
pub mod auth;
pub mod command;
pub mod commands;
pub mod connection;
pub mod cursor;
pub mod deliveries;
pub mod dispatch;
pub mod failpoint;
pub mod http;
pub mod ops;
pub mod state;
pub mod tls;
pub mod transactions;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eddy_engine::{Engine, EngineOptions};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

pub use state::{ServerConfig, ServerState};

/// The MongoDB version Eddy presents (`buildInfo.version`, `serverStatus.version`).
pub const VERSION: &str = "7.0.14";

/// How often idle cursors and expired sessions are cleaned up.
const REAP_INTERVAL: Duration = Duration::from_secs(5);

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error("cannot open the data files: {0}")]
    Storage(eddy_codes::MongoError),
    #[error("TLS: {0}")]
    Tls(tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// A server bound to its addresses, ready to run.
pub struct Server {
    state: Arc<ServerState>,
    listeners: Vec<TcpListener>,
    /// `--http-port`'s listeners.
    http: Vec<TcpListener>,
    tls: connection::Tls,
}

impl Server {
    /// Opens the store and binds every address of `config.bind` on `config.port`.
    pub async fn bind(config: ServerConfig, engine: EngineOptions) -> Result<Server, ServeError> {
        let engine = tokio::task::spawn_blocking(move || Engine::open(engine))
            .await
            .map_err(|e| ServeError::Storage(eddy_codes::MongoError::internal(e.to_string())))?
            .map_err(ServeError::Storage)?;
        let tls = match &config.tls {
            Some(t) if t.mode != tls::TlsMode::Disabled => match tls::acceptor(t) {
                Ok(acceptor) => Some((t.mode, acceptor)),
                Err(e) => {
                    engine.close();
                    return Err(ServeError::Tls(e));
                }
            },
            _ => None,
        };
        let mut listeners = Vec::new();
        let mut http = Vec::new();
        let ports =
            std::iter::once((config.port, false)).chain(config.http_port.map(|p| (p, true)));
        for (port, is_http) in ports {
            for host in &config.bind {
                let addr = if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                };
                let listener = TcpListener::bind(&addr).await.map_err(|source| {
                    engine.close();
                    ServeError::Bind {
                        addr: addr.clone(),
                        source,
                    }
                })?;
                if is_http {
                    tracing::info!(address = %host, port, "http listening");
                    http.push(listener);
                } else {
                    // mongod's message and log id (23015), so JSON logs read as mongod's.
                    tracing::info!(id = 23015, address = %host, port, "Listening on");
                    listeners.push(listener);
                }
            }
        }
        Ok(Server {
            state: Arc::new(ServerState::new(config, engine)),
            listeners,
            http,
            tls,
        })
    }

    /// The addresses actually bound (useful with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    pub fn state(&self) -> &Arc<ServerState> {
        &self.state
    }

    /// Serves until `shutdown` resolves or a `shutdown` command arrives; then stops
    /// accepting, ends the connections and closes the store (after the committer has
    /// committed what was queued).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let state = self.state;
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let mut acceptors = JoinSet::new();
        for listener in self.listeners {
            acceptors.spawn(accept_loop(
                Arc::clone(&state),
                listener,
                self.tls.clone(),
                Arc::clone(&connections),
            ));
        }
        for listener in self.http {
            acceptors.spawn(http::accept_loop(
                Arc::clone(&state),
                listener,
                self.tls.clone(),
                Arc::clone(&connections),
            ));
        }
        let reaper = tokio::spawn(reap_loop(Arc::clone(&state)));
        let ttl = tokio::spawn(ttl_loop(Arc::clone(&state)));
        tokio::select! {
            _ = shutdown => tracing::info!("shutting down"),
            _ = state.shutdown.notified() => tracing::info!("shutting down (shutdown command)"),
        }
        acceptors.abort_all();
        reaper.abort();
        ttl.abort();
        let mut conns = std::mem::take(&mut *connections.lock().unwrap_or_else(|p| p.into_inner()));
        conns.abort_all();
        while conns.join_next().await.is_some() {}
        state.deliveries.end_connections().await;
        let engine = Arc::clone(&state.engine);
        let _ = tokio::task::spawn_blocking(move || engine.close()).await;
        tracing::info!("shutdown complete");
    }
}

async fn accept_loop(
    state: Arc<ServerState>,
    listener: TcpListener,
    tls: connection::Tls,
    connections: Arc<Mutex<JoinSet<()>>>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let max = i64::from(state.config.max_incoming_connections);
        if state.connections_current.load(Ordering::Relaxed) >= max {
            tracing::warn!(%peer, max, "connection refused because too many open connections");
            drop(stream);
            continue;
        }
        let local = stream.local_addr().unwrap_or(peer);
        let id = state.next_connection_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(command::ConnInfo::new(id, peer, local));
        let counted = connection::Counted::new(Arc::clone(&state), &conn);
        state.connections_total.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(connection = id, %peer, "connection accepted");
        let st = Arc::clone(&state);
        let mut set = connections.lock().unwrap_or_else(|p| p.into_inner());
        // Finished connections are collected here so the set stays small.
        while set.try_join_next().is_some() {}
        set.spawn(connection::serve(st, stream, tls.clone(), conn, counted));
    }
}

/// The TTL monitor: every `ttlMonitorSleepSecs`, one pass over the TTL indexes
/// ([`eddy_engine::Engine::expire_ttl`]) on the blocking pool, while
/// `ttlMonitorEnabled` holds (it can be changed at runtime).
async fn ttl_loop(state: Arc<ServerState>) {
    let mut last = std::time::Instant::now();
    loop {
        // Waits in steps of at most a second, so a new `ttlMonitorSleepSecs` counts
        // from the last pass at once.
        let secs = state.ttl.sleep_secs.load(Ordering::Relaxed);
        let wait = Duration::from_secs(secs).max(Duration::from_millis(100));
        let elapsed = last.elapsed();
        if elapsed < wait {
            tokio::time::sleep((wait - elapsed).min(Duration::from_secs(1))).await;
            continue;
        }
        last = std::time::Instant::now();
        if !state.ttl.enabled.load(Ordering::Relaxed) {
            continue;
        }
        let engine = Arc::clone(&state.engine);
        let pass =
            tokio::task::spawn_blocking(move || engine.expire_ttl(bson::DateTime::now())).await;
        match pass {
            Ok(Ok(deleted)) => {
                state.ttl.passes.fetch_add(1, Ordering::Relaxed);
                state.ttl.deleted.fetch_add(deleted, Ordering::Relaxed);
                if deleted > 0 {
                    tracing::debug!(deleted, "TTL monitor deleted expired documents");
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "TTL monitor pass failed"),
            Err(e) => tracing::warn!(error = %e, "TTL monitor pass did not finish"),
        }
    }
}

async fn reap_loop(state: Arc<ServerState>) {
    let session_timeout = state.config.session_timeout();
    let mut records_reaped_at = std::time::Instant::now();
    loop {
        // Half the shorter timeout when it is short, so an idle cursor goes within 1.5
        // timeouts (tests use a second); never a busy loop for `cursorTimeoutMillis=0`.
        let interval = REAP_INTERVAL
            .min(state.cursors.timeout() / 2)
            .min(session_timeout / 2)
            .min(state.txn_lifetime.get() / 2)
            .max(Duration::from_millis(10));
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            // A new `cursorTimeoutMillis`: sleep again by it.
            () = state.cursors.timeout_changed.notified() => continue,
            // A new `transactionLifetimeLimitSeconds` too.
            () = state.txn_lifetime.changed.notified() => continue,
        }
        let cursors = state.cursors.reap();
        state
            .cursors_timed_out
            .fetch_add(cursors as u64, Ordering::Relaxed);
        // An expired session takes its cursors with it, as mongod's session reaper does.
        let sessions = state.sessions.expire(session_timeout);
        let killed = state.cursors.kill_sessions(&sessions);
        let aborted = state.sessions.abort_expired_transactions();
        if aborted > 0 {
            tracing::info!(
                aborted,
                "aborted transactions that exceeded transactionLifetimeLimitSeconds"
            );
        }
        // The retryable-write records of expired sessions (also of sessions from before
        // a restart), at most once a minute or once a session timeout.
        if records_reaped_at.elapsed() >= session_timeout.min(Duration::from_secs(60)) {
            records_reaped_at = std::time::Instant::now();
            let st = Arc::clone(&state);
            let reaped = tokio::task::spawn_blocking(move || {
                let live = st.sessions.durable_keys();
                st.engine
                    .reap_session_records(session_timeout, |key| live.contains(key))
            })
            .await;
            match reaped {
                Ok(Ok(n)) if n > 0 => tracing::debug!(n, "reaped retryable-write session records"),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "reaping session records failed"),
                Err(e) => tracing::warn!(error = %e, "reaping session records did not finish"),
            }
        }
        if cursors + sessions.len() > 0 {
            tracing::debug!(
                cursors,
                sessions = sessions.len(),
                session_cursors = killed,
                "reaped idle cursors and expired sessions"
            );
        }
    }
}
