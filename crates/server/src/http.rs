//! The HTTP port (`eddy serve --http-port P`, off by default, on the same addresses as
//! the MongoDB port): `GET /metrics`, the server's counters in Prometheus's text format
//! (0.0.4).
//!
//! Requests are parsed with `httparse`; a connection answers one request and closes
//! (`Connection: close`), which is all a scraper needs. A request head must arrive
//! within [`HEAD_TIMEOUT`] and fit in [`MAX_HEAD`] bytes. With `--tlsMode` the port
//! speaks TLS as the MongoDB port does. With `--auth`, the same users apply: a request
//! needs HTTP Basic credentials of a user of `admin` whose roles allow `serverStatus`
//! (`clusterMonitor`), checked against the stored SCRAM credentials (401 without them,
//! 403 without the privilege).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use eddy_metrics::Exposition;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::auth::{Action, Resource};
use crate::state::ServerState;

/// The largest request head accepted (431 past it).
const MAX_HEAD: usize = 16 * 1024;
/// How long a client may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts HTTP connections until the task is aborted.
pub async fn accept_loop(
    state: Arc<ServerState>,
    listener: TcpListener,
    tls: crate::connection::Tls,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let state = Arc::clone(&state);
                let tls = tls.clone();
                tokio::spawn(async move {
                    let (mode, acceptor) = match &tls {
                        Some((mode, acceptor)) => (*mode, Some(acceptor)),
                        None => (crate::tls::TlsMode::Disabled, None),
                    };
                    let served = match crate::tls::establish(stream, mode, acceptor).await {
                        Ok(socket) => serve(&state, socket).await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = served {
                        tracing::debug!(%peer, error = %e, "http connection ended");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "http accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// A response: status, content type, body.
struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    body: String,
    /// `Allow` header of a 405.
    allow: Option<&'static str>,
    /// `WWW-Authenticate` header of a 401.
    challenge: bool,
}

impl Response {
    fn text(status: u16, reason: &'static str, body: impl Into<String>) -> Response {
        Response {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
            allow: None,
            challenge: false,
        }
    }
}

/// A parsed request head: what routing needs.
#[derive(Default)]
struct Head {
    method: String,
    path: String,
    /// The `Authorization` header.
    authorization: Option<String>,
    /// Malformed, or larger than [`MAX_HEAD`].
    bad: Option<Response>,
}

async fn serve<S>(state: &Arc<ServerState>, mut stream: S) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let head = tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let head_only = head.method == "HEAD";
    let response = match head.bad {
        Some(bad) => bad,
        None => match authorize(state, head.authorization.as_deref()).await {
            Some(refused) => refused,
            None => route(state, &head.method, &head.path),
        },
    };
    write(&mut stream, &response, head_only).await
}

async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Head> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        if buf.len() >= MAX_HEAD {
            return Ok(Head {
                bad: Some(Response::text(
                    431,
                    "Request Header Fields Too Large",
                    "request head too large\n",
                )),
                ..Head::default()
            });
        }
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => {
                let authorization = req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("authorization"))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
                    .map(str::to_owned);
                return Ok(Head {
                    method: req.method.unwrap_or_default().to_owned(),
                    path: req.path.unwrap_or_default().to_owned(),
                    authorization,
                    bad: None,
                });
            }
            Ok(httparse::Status::Partial) => continue,
            Err(_) => {
                return Ok(Head {
                    bad: Some(Response::text(400, "Bad Request", "malformed request\n")),
                    ..Head::default()
                })
            }
        }
    }
}

/// Under `--auth`: `None` when the request's Basic credentials name a user of `admin`
/// allowed `serverStatus`, else the refusal.
async fn authorize(state: &Arc<ServerState>, authorization: Option<&str>) -> Option<Response> {
    if !state.config.auth {
        return None;
    }
    let unauthorized = || Response {
        challenge: true,
        ..Response::text(401, "Unauthorized", "authentication required\n")
    };
    let (user, password) = match authorization.and_then(basic_credentials) {
        Some(pair) => pair,
        None => return Some(unauthorized()),
    };
    let engine = Arc::clone(&state.engine);
    // Deriving the salted password is deliberately slow: off the async workers.
    let identity = tokio::task::spawn_blocking(move || {
        crate::auth::authenticate_password(&engine, "admin", &user, &password)
    })
    .await
    .ok()
    .and_then(Result::ok);
    match identity {
        None => Some(unauthorized()),
        Some(identity) if identity.may(&Resource::Cluster, Action::ServerStatus) => None,
        Some(_) => Some(Response::text(403, "Forbidden", "not authorized\n")),
    }
}

/// `Basic base64(user:password)`.
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn route(state: &ServerState, method: &str, path: &str) -> Response {
    // The query string does not change what is served.
    let path = path.split('?').next().unwrap_or_default();
    match path {
        "/metrics" => match method {
            "GET" | "HEAD" => Response {
                status: 200,
                reason: "OK",
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: metrics(state),
                allow: None,
                challenge: false,
            },
            _ => Response {
                allow: Some("GET, HEAD"),
                ..Response::text(405, "Method Not Allowed", "use GET\n")
            },
        },
        _ => Response::text(404, "Not Found", "not found\n"),
    }
}

async fn write<S: AsyncWrite + Unpin>(
    stream: &mut S,
    r: &Response,
    head_only: bool,
) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        r.status,
        r.reason,
        r.content_type,
        r.body.len()
    );
    if let Some(allow) = r.allow {
        out.push_str(&format!("Allow: {allow}\r\n"));
    }
    if r.challenge {
        out.push_str("WWW-Authenticate: Basic realm=\"eddy\", charset=\"UTF-8\"\r\n");
    }
    out.push_str("\r\n");
    if !head_only {
        out.push_str(&r.body);
    }
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await
}

/// Every counter, in Prometheus's text format.
pub fn metrics(state: &ServerState) -> String {
    let mut e = Exposition::new();
    let engine = &state.engine;
    e.single(
        "eddy_uptime_seconds",
        "gauge",
        "Seconds since the server started.",
        state.started.elapsed().as_secs_f64(),
    );
    e.single(
        "eddy_resident_memory_bytes",
        "gauge",
        "Resident set size of the server process.",
        (crate::ops::process_memory_kib().0 * 1024) as f64,
    );
    e.single(
        "eddy_connections",
        "gauge",
        "Open client connections.",
        state.connections_current.load(Ordering::Relaxed) as f64,
    );
    e.single(
        "eddy_connections_created_total",
        "counter",
        "Client connections accepted since start.",
        state.connections_total.load(Ordering::Relaxed) as f64,
    );
    state.ops.write_metrics(&mut e);
    let (opened, open, _, _) = state.cursors.metrics();
    e.single(
        "eddy_cursors_open",
        "gauge",
        "Open cursors, change streams included.",
        open as f64,
    );
    e.single(
        "eddy_cursors_opened_total",
        "counter",
        "Cursors opened since start.",
        opened as f64,
    );
    e.single(
        "eddy_change_streams_open",
        "gauge",
        "Open change streams (and other awaitData cursors).",
        state.cursors.awaiting_data() as f64,
    );
    e.single(
        "eddy_change_streams_waiting",
        "gauge",
        "Change streams waiting in a getMore for an event.",
        engine.hub().waiters() as f64,
    );
    e.single(
        "eddy_change_events_built_total",
        "counter",
        "Change events built (once per oplog entry and event shape).",
        eddy_engine::changes::EVENTS_BUILT.load(Ordering::Relaxed) as f64,
    );
    e.single(
        "eddy_change_events_delivered_total",
        "counter",
        "Change events returned to streams (once per stream).",
        eddy_engine::changes::EVENTS_DELIVERED.load(Ordering::Relaxed) as f64,
    );
    let commits = engine.commit_stats();
    e.single(
        "eddy_commits_total",
        "counter",
        "Durable group commits (one fsync each).",
        commits.commits.load(Ordering::Relaxed) as f64,
    );
    e.single(
        "eddy_commit_jobs_total",
        "counter",
        "Write jobs committed.",
        commits.jobs.load(Ordering::Relaxed) as f64,
    );
    e.family(
        "eddy_commit_group_size",
        "histogram",
        "Write jobs per group commit.",
    )
    .histogram("eddy_commit_group_size", &[], &commits.group_size);
    e.family(
        "eddy_commit_duration_seconds",
        "histogram",
        "Time to commit a group (its fsync included).",
    )
    .histogram("eddy_commit_duration_seconds", &[], &commits.commit_latency);
    e.single(
        "eddy_oplog_bytes",
        "gauge",
        "Approximate bytes held by the oplog.",
        engine.oplog_bytes() as f64,
    );
    let newest = engine.last_op_time().time;
    let window = match engine.oplog_start() {
        Ok(Some(oldest)) if newest >= oldest.time => f64::from(newest - oldest.time),
        _ => 0.0,
    };
    e.single(
        "eddy_oplog_window_seconds",
        "gauge",
        "Seconds between the oldest and the newest oplog entry (how far back a stream can resume).",
        window,
    );
    e.finish()
}
