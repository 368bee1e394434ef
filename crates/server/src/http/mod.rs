//! The HTTP port (`eddy serve --http-port P`, off by default, on the same addresses as
//! the MongoDB port):
//!
//! - `GET /metrics`: the server's counters in Prometheus's text format ([`metrics`]);
//! - `GET /v1/watch[/{db}[/{coll}]]`: a change stream as Server-Sent Events, opened and
//!   read with the same `aggregate` / `getMore` commands a driver sends ([`watch`]);
//! - `GET /`: a live viewer of change streams, static files compiled into the binary
//!   ([`page`]).
//!
//! Requests are parsed with `httparse` ([`request`]); a connection answers one request
//! and closes (`Connection: close`), which is all a scraper needs and what a stream of
//! events is anyway. A request head must arrive within [`request::HEAD_TIMEOUT`] and fit
//! in [`request::MAX_HEAD`] bytes. With `--tlsMode` the port speaks TLS as the MongoDB
//! port does. With `--auth` the same users apply: a request needs HTTP Basic
//! credentials of a user (of `admin`, or of the database named by the `authSource`
//! query parameter), checked against the stored SCRAM credentials (401 without them);
//! `/metrics` then needs `serverStatus` on the cluster (`clusterMonitor`), a change
//! stream what the same stream needs on the wire (403 without).

pub mod metrics;
mod page;
pub mod request;
pub mod sse;
mod watch;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

pub use metrics::metrics;
use request::{Head, HeadError};

use crate::auth::{Action, Identity, Resource};
use crate::state::ServerState;

/// Accepts HTTP connections until the task is aborted. Each connection's task joins
/// `connections`, so a shutdown ends open event streams with the wire connections.
pub async fn accept_loop(
    state: Arc<ServerState>,
    listener: TcpListener,
    tls: crate::connection::Tls,
    connections: Arc<Mutex<JoinSet<()>>>,
) {
    // Open HTTP connections (event streams last): at most `--maxConns`, apart from the
    // MongoDB port's, so that neither can take all of the process's file descriptors.
    let open = Arc::new(AtomicU32::new(0));
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let max = state.config.max_incoming_connections;
                if open.load(Ordering::Relaxed) >= max {
                    tracing::warn!(%peer, max, "http connection refused because too many are open");
                    drop(stream);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let local = stream.local_addr().unwrap_or(peer);
                let state = Arc::clone(&state);
                let tls = tls.clone();
                let counted = Open::new(&open);
                let task = async move {
                    let _counted = counted;
                    let (mode, acceptor) = match &tls {
                        Some((mode, acceptor)) => (*mode, Some(acceptor)),
                        None => (crate::tls::TlsMode::Disabled, None),
                    };
                    let served = match crate::tls::establish(stream, mode, acceptor).await {
                        Ok(socket) => serve(&state, Peer { peer, local }, socket).await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = served {
                        tracing::debug!(%peer, error = %e, "http connection ended");
                    }
                };
                let mut set = connections.lock().unwrap_or_else(|p| p.into_inner());
                while set.try_join_next().is_some() {}
                set.spawn(task);
            }
            Err(e) => {
                tracing::warn!(error = %e, "http accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Counts one open HTTP connection while it lives.
struct Open(Arc<AtomicU32>);

impl Open {
    fn new(open: &Arc<AtomicU32>) -> Open {
        open.fetch_add(1, Ordering::Relaxed);
        Open(Arc::clone(open))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The two ends of an HTTP connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer {
    pub peer: SocketAddr,
    pub local: SocketAddr,
}

/// A whole response: status, content type, body and the few headers that vary.
pub(crate) struct Response {
    status: u16,
    content_type: &'static str,
    body: Cow<'static, [u8]>,
    /// `Allow` header of a 405.
    allow: Option<&'static str>,
    /// `WWW-Authenticate` header of a 401.
    challenge: bool,
    /// The viewer page's headers (caching, content security policy).
    page: bool,
}

impl Response {
    pub(crate) fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: Cow::Owned(body.into().into_bytes()),
            allow: None,
            challenge: false,
            page: false,
        }
    }

    /// A JSON body (the gateway's errors).
    pub(crate) fn json(status: u16, body: String) -> Response {
        Response {
            content_type: "application/json",
            ..Response::text(status, body)
        }
    }

    fn unauthorized() -> Response {
        Response {
            challenge: true,
            ..Response::text(401, "authentication required\n")
        }
    }

    fn method_not_allowed(allow: &'static str) -> Response {
        Response {
            allow: Some(allow),
            ..Response::text(405, format!("use {allow}\n"))
        }
    }

    /// Writes the response and closes the connection (`HEAD`: without the body).
    pub(crate) async fn write<S: AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        head_only: bool,
    ) -> std::io::Result<()> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        if let Some(allow) = self.allow {
            out.push_str(&format!("Allow: {allow}\r\n"));
        }
        if self.challenge {
            out.push_str("WWW-Authenticate: Basic realm=\"eddy\", charset=\"UTF-8\"\r\n");
        }
        if self.page {
            out.push_str(page::HEADERS);
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        if !head_only {
            bytes.extend_from_slice(&self.body);
        }
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    }
}

/// The reason phrase of the statuses the port answers with.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// What a request asks for.
enum Route {
    Metrics,
    Page(&'static page::Asset),
    Watch(watch::Scope),
    NotFound,
}

fn route(head: &Head) -> Route {
    let segments: Vec<&str> = head.segments.iter().map(String::as_str).collect();
    match segments.as_slice() {
        ["metrics"] => Route::Metrics,
        ["v1", "watch", rest @ ..] => match watch::Scope::of(rest) {
            Some(scope) => Route::Watch(scope),
            None => Route::NotFound,
        },
        path => match page::asset(path) {
            Some(asset) => Route::Page(asset),
            None => Route::NotFound,
        },
    }
}

async fn serve<S>(state: &Arc<ServerState>, peer: Peer, mut stream: S) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let head = tokio::time::timeout(request::HEAD_TIMEOUT, request::read_head(&mut stream))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?;
    let head = match head {
        Ok(head) => head,
        Err(HeadError::Io(e)) => return Err(e),
        Err(HeadError::TooLarge) => {
            return Response::text(431, "request head too large\n")
                .write(&mut stream, false)
                .await
        }
        Err(e @ HeadError::Malformed(_)) => {
            return Response::text(400, format!("{e}\n"))
                .write(&mut stream, false)
                .await
        }
    };
    let head_only = head.method == "HEAD";
    let route = route(&head);
    let allowed = match &route {
        Route::Watch(_) => head.method == "GET",
        _ => matches!(head.method.as_str(), "GET" | "HEAD"),
    };
    if !allowed {
        let allow = match route {
            Route::Watch(_) => "GET",
            _ => "GET, HEAD",
        };
        return Response::method_not_allowed(allow)
            .write(&mut stream, false)
            .await;
    }
    if let Route::NotFound = route {
        return Response::text(404, "not found\n")
            .write(&mut stream, head_only)
            .await;
    }
    let identity = match authenticate(state, &head).await {
        Ok(identity) => identity,
        Err(refused) => return refused.write(&mut stream, head_only).await,
    };
    let response = match route {
        Route::Metrics => match identity {
            Some(identity) if !identity.may(&Resource::Cluster, Action::ServerStatus) => {
                Response::text(403, "not authorized\n")
            }
            _ => Response {
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                ..Response::text(200, metrics(state))
            },
        },
        Route::Page(asset) => Response {
            content_type: asset.content_type,
            body: Cow::Borrowed(asset.body.as_bytes()),
            page: true,
            ..Response::text(200, "")
        },
        Route::Watch(scope) => {
            return watch::serve(state, peer, scope, &head, identity, stream).await;
        }
        Route::NotFound => Response::text(404, "not found\n"),
    };
    response.write(&mut stream, head_only).await
}

/// Under `--auth`: the user named by the request's Basic credentials (of the database
/// in the `authSource` query parameter, `admin` by default), or the 401 refusal.
/// Without `--auth`: `None`.
async fn authenticate(state: &Arc<ServerState>, head: &Head) -> Result<Option<Identity>, Response> {
    if !state.config.auth {
        return Ok(None);
    }
    let (user, password) = head
        .authorization
        .as_deref()
        .and_then(basic_credentials)
        .ok_or_else(Response::unauthorized)?;
    let db = head.param("authSource").unwrap_or("admin").to_owned();
    let engine = Arc::clone(&state.engine);
    // Deriving the salted password is deliberately slow: off the async workers.
    tokio::task::spawn_blocking(move || {
        crate::auth::authenticate_password(&engine, &db, &user, &password)
    })
    .await
    .ok()
    .and_then(Result::ok)
    .map(Some)
    .ok_or_else(Response::unauthorized)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_decoded() {
        assert_eq!(
            basic_credentials("Basic YWRtaW46czNjcjp0"),
            Some(("admin".into(), "s3cr:t".into()))
        );
        assert_eq!(basic_credentials("Bearer abc"), None);
        assert_eq!(basic_credentials("Basic !!!"), None);
    }

    #[test]
    fn routes() {
        let head = |path: &[&str]| Head {
            method: "GET".into(),
            segments: path.iter().map(|s| s.to_string()).collect(),
            ..Head::default()
        };
        assert!(matches!(route(&head(&["metrics"])), Route::Metrics));
        assert!(matches!(route(&head(&[])), Route::Page(_)));
        assert!(matches!(
            route(&head(&["v1", "watch"])),
            Route::Watch(watch::Scope::Cluster)
        ));
        assert!(matches!(
            route(&head(&["v1", "watch", "a", "b", "c"])),
            Route::NotFound
        ));
        assert!(matches!(route(&head(&["nope"])), Route::NotFound));
    }
}
