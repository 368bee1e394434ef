//! `GET /v1/watch[/{db}[/{coll}]]`: a change stream as Server-Sent Events.
//!
//! The gateway is a client inside the server. It turns the request into the `aggregate`
//! command a driver sends to open the same stream (`{aggregate: coll | 1, pipeline:
//! [{$changeStream: {...}}, ...]}` on the database, or on `admin` with
//! `allChangesForCluster` for the whole deployment) and runs it, then its `getMore`s,
//! through the dispatcher ([`crate::dispatch::execute_typed`]) on a connection of its
//! own. So the stream is the wire protocol's, with the same parsing and errors, the same
//! authorization (`find` + `changeStream` on what it watches), the same cursor (listed by
//! `$currentOp`, counted by `serverStatus` and `/metrics`) and the same wake-ups from the
//! hub's dispatcher; nothing here knows how events are made.
//!
//! Query parameters: `match` (a `$match` document as Extended JSON) or `pipeline` (an
//! array of stages), `fullDocument`, `fullDocumentBeforeChange`, `showExpandedEvents`,
//! `resumeAfter` / `startAfter` (a token as sent in `id:`), `heartbeatMS` (how long a
//! `getMore` waits for events before a heartbeat, 10 s by default) and `authSource`.
//!
//! The response (`text/event-stream`):
//! - each change event is an SSE event whose `id:` is its resume token (`_id._data`),
//!   whose `event:` is its `operationType` and whose `data:` is the event as canonical
//!   Extended JSON;
//! - a `heartbeat` event carries the post-batch resume token in `id:` and `data:` when a
//!   `getMore` found nothing (and once when the stream opens), so an `EventSource`
//!   reconnecting after a quiet period resumes from there rather than rescanning;
//! - `Last-Event-ID` (what an `EventSource` sends when it reconnects) resumes exactly
//!   after that event (`resumeAfter`), over any `resumeAfter` / `startAfter` parameter;
//! - an error once the stream is open (its resume point fell out of the retained
//!   history: 286 ChangeStreamHistoryLost, also when the resume point of the request
//!   itself is gone) is an `error` event with mongod's `code`, `codeName`, `errmsg` and
//!   the `resumeToken` it concerns, and the response ends; an error of the request (a
//!   bad pipeline, a bad token) is HTTP 400 with the error as JSON, a missing privilege
//!   403.
//!
//! Memory is bounded per stream: one `getMore` batch ([`BATCH_SIZE`] events, 16 MB at
//! most) is read only after the previous one was written to the socket, so a slow
//! reader slows its own stream and nothing else.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use bson::{doc, Bson, Document, RawDocument};
use eddy_codes::{labels, ErrorCode, MongoError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::request::Head;
use super::{sse, Peer, Response};
use crate::auth::Identity;
use crate::command::ConnInfo;
use crate::cursor::{BatchDoc, CursorBatch};
use crate::dispatch;
use crate::state::ServerState;

/// Events per `getMore`: what one stream holds in memory at most (with the 16 MB cap of
/// a batch).
pub const BATCH_SIZE: i32 = 100;
/// How long a `getMore` waits for events before the stream sends a heartbeat.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);
/// The `heartbeatMS` a request may ask for.
const HEARTBEAT_RANGE: std::ops::RangeInclusive<u64> = 10..=300_000;
/// How long an `EventSource` waits before reconnecting (`retry:`).
const RECONNECT_MILLIS: u64 = 1000;
/// The query parameters the gateway knows.
const PARAMETERS: &[&str] = &[
    "match",
    "pipeline",
    "fullDocument",
    "fullDocumentBeforeChange",
    "showExpandedEvents",
    "resumeAfter",
    "startAfter",
    "heartbeatMS",
    "authSource",
];

/// What a stream watches.
#[derive(Debug, Clone, PartialEq)]
pub enum Scope {
    /// `/v1/watch`: every database (`watch()` on a client).
    Cluster,
    /// `/v1/watch/{db}` (`db.watch()`).
    Database(String),
    /// `/v1/watch/{db}/{coll}` (`coll.watch()`).
    Collection(String, String),
}

impl Scope {
    /// The scope of the path segments after `/v1/watch` (`None`: no such path).
    pub fn of(rest: &[&str]) -> Option<Scope> {
        match rest {
            [] => Some(Scope::Cluster),
            [db] => Some(Scope::Database((*db).to_owned())),
            [db, coll] => Some(Scope::Collection((*db).to_owned(), (*coll).to_owned())),
            _ => None,
        }
    }
}

/// A parsed watch request: what the `aggregate` command is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchRequest {
    scope: Scope,
    /// The `$changeStream` stage's options (without the resume point).
    options: Document,
    /// Where to start: `resumeAfter` or `startAfter` and its token.
    start: Option<(&'static str, Bson)>,
    /// The stages after `$changeStream`.
    stages: Vec<Bson>,
    heartbeat: Duration,
}

impl WatchRequest {
    /// Reads the request's query parameters and `Last-Event-ID`. Errors are mongod's
    /// kinds of errors for the same mistakes in a command (2 BadValue, 9 FailedToParse,
    /// 14 TypeMismatch); the stages and options themselves are checked by `aggregate`.
    pub fn parse(scope: Scope, head: &Head) -> Result<WatchRequest, MongoError> {
        for (i, (name, _)) in head.query.iter().enumerate() {
            if !PARAMETERS.contains(&name.as_str()) {
                return Err(MongoError::bad_value(format!(
                    "unknown query parameter '{name}'; known: {}",
                    PARAMETERS.join(", ")
                )));
            }
            if head.query[..i].iter().any(|(other, _)| other == name) {
                return Err(MongoError::bad_value(format!(
                    "query parameter '{name}' given more than once"
                )));
            }
        }
        let stages = match (head.param("match"), head.param("pipeline")) {
            (Some(_), Some(_)) => {
                return Err(MongoError::bad_value(
                    "give either 'match' or 'pipeline', not both",
                ))
            }
            (Some(text), None) => match extended_json("match", text)? {
                Bson::Document(filter) => vec![Bson::Document(doc! {"$match": filter})],
                other => {
                    return Err(MongoError::type_mismatch(format!(
                        "'match' must be an object, not {}",
                        crate::args::type_name(&other)
                    )))
                }
            },
            (None, Some(text)) => match extended_json("pipeline", text)? {
                Bson::Array(stages) => stages,
                other => {
                    return Err(MongoError::type_mismatch(format!(
                        "'pipeline' must be an array of stages, not {}",
                        crate::args::type_name(&other)
                    )))
                }
            },
            (None, None) => Vec::new(),
        };
        let mut options = Document::new();
        for name in ["fullDocument", "fullDocumentBeforeChange"] {
            if let Some(value) = head.param(name) {
                options.insert(name, value);
            }
        }
        if let Some(value) = head.param("showExpandedEvents") {
            let on = match value {
                "true" | "1" | "" => true,
                "false" | "0" => false,
                other => {
                    return Err(MongoError::bad_value(format!(
                        "'showExpandedEvents' must be true or false, not '{other}'"
                    )))
                }
            };
            options.insert("showExpandedEvents", on);
        }
        // An `EventSource` reconnecting names the last event it received: that wins over
        // the URL's own starting point, which it repeats unchanged.
        let start = match &head.last_event_id {
            Some(id) => Some(("resumeAfter", token_from_text(id)?)),
            None => match (head.param("resumeAfter"), head.param("startAfter")) {
                (Some(_), Some(_)) => return Err(MongoError::location(
                    50865,
                    "Do not specify both 'startAfter' and 'resumeAfter' in a $changeStream stage.",
                )),
                (Some(t), None) => Some(("resumeAfter", token_from_text(t)?)),
                (None, Some(t)) => Some(("startAfter", token_from_text(t)?)),
                (None, None) => None,
            },
        };
        let heartbeat = match head.param("heartbeatMS") {
            None => DEFAULT_HEARTBEAT,
            Some(text) => match text.parse::<u64>() {
                Ok(ms) if HEARTBEAT_RANGE.contains(&ms) => Duration::from_millis(ms),
                _ => {
                    return Err(MongoError::bad_value(format!(
                        "'heartbeatMS' must be an integer from {} to {}, not '{text}'",
                        HEARTBEAT_RANGE.start(),
                        HEARTBEAT_RANGE.end()
                    )))
                }
            },
        };
        Ok(WatchRequest {
            scope,
            options,
            start,
            stages,
            heartbeat,
        })
    }

    /// The `aggregate` command that opens the stream, resuming after `resume` when given
    /// (a stream reopened after its cursor was lost), else from the request's start.
    fn aggregate(&self, resume: Option<&Bson>) -> Document {
        let mut stage = self.options.clone();
        match (resume, &self.start) {
            (Some(token), _) => {
                stage.insert("resumeAfter", token.clone());
            }
            (None, Some((how, token))) => {
                stage.insert(*how, token.clone());
            }
            (None, None) => {}
        }
        let (db, target) = match &self.scope {
            Scope::Cluster => {
                stage.insert("allChangesForCluster", true);
                ("admin", Bson::Int32(1))
            }
            Scope::Database(db) => (db.as_str(), Bson::Int32(1)),
            Scope::Collection(db, coll) => (db.as_str(), Bson::String(coll.clone())),
        };
        let mut pipeline = vec![Bson::Document(doc! {"$changeStream": stage})];
        pipeline.extend(self.stages.iter().cloned());
        // `batchSize: 0`: the opening reply only names the cursor and the starting point,
        // which the stream sends as its first heartbeat.
        doc! {
            "aggregate": target,
            "pipeline": pipeline,
            "cursor": {"batchSize": 0},
            "$db": db,
        }
    }
}

/// Extended JSON (canonical or relaxed) from a query parameter, keys in their order.
fn extended_json(name: &str, text: &str) -> Result<Bson, MongoError> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| MongoError::failed_to_parse(format!("'{name}' is not valid JSON: {e}")))?;
    Bson::try_from(value).map_err(|e| {
        MongoError::failed_to_parse(format!("'{name}' is not valid Extended JSON: {e}"))
    })
}

/// A resume token as the stream sends it in `id:`: the `_data` string of the usual
/// `{_data: "<hex>"}`, else (a token of another shape) its canonical Extended JSON.
pub fn token_text(token: &RawDocument) -> String {
    let mut fields = token.iter();
    if let (Some(Ok((key, value))), None) = (fields.next(), fields.next()) {
        if let (Some(data), "_data") = (value.as_str(), key.as_str()) {
            return data.to_owned();
        }
    }
    match bson::Document::try_from(token) {
        Ok(doc) => Bson::Document(doc).into_canonical_extjson().to_string(),
        Err(_) => String::new(),
    }
}

/// The token of a `Last-Event-ID`, `resumeAfter` or `startAfter`: [`token_text`] read
/// back. The engine checks it (260 InvalidResumeToken).
pub fn token_from_text(text: &str) -> Result<Bson, MongoError> {
    let text = text.trim();
    if text.starts_with('{') {
        extended_json("resume token", text)
    } else {
        Ok(Bson::Document(doc! {"_data": text}))
    }
}

/// The HTTP status of an error that stops a stream before it opens.
fn status_of(err: &MongoError) -> u16 {
    match err.error_code() {
        Some(ErrorCode::Unauthorized) => 403,
        Some(ErrorCode::ShutdownInProgress | ErrorCode::InterruptedAtShutdown) => 503,
        Some(ErrorCode::InternalError) => 500,
        _ => 400,
    }
}

/// The error's reply document (`ok`, `errmsg`, `code`, `codeName`, `errorLabels`) as
/// relaxed Extended JSON, plus the resume token it concerns.
fn error_json(err: &MongoError, token: Option<&Bson>) -> String {
    let mut reply = err.to_reply();
    if let Some(token) = token {
        reply.insert("resumeToken", token.clone());
    }
    Bson::Document(reply).into_relaxed_extjson().to_string()
}

/// Serves one watch request to its end.
pub(super) async fn serve<S>(
    state: &Arc<ServerState>,
    peer: Peer,
    scope: Scope,
    head: &Head,
    identity: Option<Identity>,
    stream: S,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let request = match WatchRequest::parse(scope, head) {
        Ok(request) => request,
        Err(e) => {
            return Response::json(400, error_json(&e, None))
                .write(&mut writer, false)
                .await
        }
    };
    let gateway = Gateway::connect(state, peer, identity);
    let opened = gateway.open(&request, None).await;
    let mut cursor = match opened {
        Ok(cursor) => cursor,
        Err(e) if e.is(ErrorCode::ChangeStreamHistoryLost) => {
            // The resume point is gone: tell the stream's reader in the stream (an
            // `EventSource` cannot read the body of an error response).
            let token = request.start.as_ref().map(|(_, t)| t);
            let mut out = Vec::new();
            sse::event(&mut out, None, Some("error"), &error_json(&e, token));
            writer.write_all(STREAM_HEAD.as_bytes()).await?;
            writer.write_all(&out).await?;
            return writer.shutdown().await;
        }
        Err(e) => {
            return Response::json(status_of(&e), error_json(&e, None))
                .write(&mut writer, false)
                .await
        }
    };
    let mut out = STREAM_HEAD.as_bytes().to_vec();
    sse::retry(&mut out, RECONNECT_MILLIS);
    let mut last = cursor.post_batch_token.clone();
    heartbeat(&mut out, last.as_ref());
    writer.write_all(&out).await?;
    writer.flush().await?;
    let ended = loop {
        // Read the next batch only once the last one is written: a slow reader holds
        // one batch, and its stream waits for it.
        let next = tokio::select! {
            next = gateway.get_more(&cursor, request.heartbeat) => next,
            () = closed(&mut reader) => break Ended::ClientLeft,
        };
        let batch = match next {
            Ok(Some(batch)) => batch,
            // The server is going away, or a failpoint closed the connection: end
            // without an `error` event, and the `EventSource` reconnects.
            Ok(None) => break Ended::Closed,
            Err(e) if e.is(ErrorCode::CursorNotFound) => {
                // The cursor was reaped or killed: reopen it where the stream stands.
                match gateway.open(&request, last.as_ref()).await {
                    Ok(reopened) => {
                        cursor = reopened;
                        continue;
                    }
                    Err(e) => break Ended::Failed(e),
                }
            }
            Err(e) if resumable(&e) => break Ended::Closed,
            Err(e) => break Ended::Failed(e),
        };
        let mut out = Vec::new();
        for event in &batch.events {
            let (id, name, data) = event_frame(event)?;
            sse::event(&mut out, id.as_deref(), name, &data);
            if let Ok(token) = event.raw().get_document("_id") {
                last = bson::Document::try_from(token).ok().map(Bson::Document);
            }
        }
        let moved = batch.post_batch_token.is_some() && batch.post_batch_token != last;
        if batch.events.is_empty() || moved {
            last = batch.post_batch_token.clone().or(last);
            heartbeat(&mut out, last.as_ref());
        }
        writer.write_all(&out).await?;
        writer.flush().await?;
        if batch.exhausted {
            // `invalidate`: the stream is over (resuming after it is an error, as on the
            // wire; `startAfter` its token starts a new one).
            break Ended::Exhausted;
        }
        cursor.post_batch_token = batch.post_batch_token;
    };
    if !matches!(ended, Ended::Exhausted) {
        gateway.kill(&cursor).await;
    }
    match ended {
        Ended::Failed(e) => {
            let mut out = Vec::new();
            sse::event(
                &mut out,
                None,
                Some("error"),
                &error_json(&e, last.as_ref()),
            );
            writer.write_all(&out).await?;
            writer.shutdown().await
        }
        Ended::ClientLeft => Ok(()),
        Ended::Closed | Ended::Exhausted => writer.shutdown().await,
    }
}

/// The response head of an event stream. Its body ends when the connection closes.
const STREAM_HEAD: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n\
Cache-Control: no-cache, no-store\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\n";

/// Why a stream ended.
enum Ended {
    /// The client closed its connection.
    ClientLeft,
    /// A resumable error or the server's shutdown: close, the client resumes.
    Closed,
    /// The stream was invalidated.
    Exhausted,
    /// An error the stream cannot continue after.
    Failed(MongoError),
}

/// Whether a driver would resume after this `getMore` error (the change streams
/// specification); an `EventSource` does when the response just ends.
fn resumable(err: &MongoError) -> bool {
    err.labels
        .iter()
        .any(|l| l == labels::RESUMABLE_CHANGE_STREAM_ERROR)
        || eddy_codes::category::is_resumable_change_stream(err.code)
}

/// A heartbeat: the post-batch resume token in `id:` (so an `EventSource` resumes from
/// it) and in `data:`.
fn heartbeat(out: &mut Vec<u8>, token: Option<&Bson>) {
    let Some(token) = token else { return };
    let id = match token {
        Bson::Document(d) => bson::RawDocumentBuf::try_from(d)
            .map(|raw| token_text(&raw))
            .unwrap_or_default(),
        _ => String::new(),
    };
    let data = Bson::Document(doc! {"postBatchResumeToken": token.clone()})
        .into_canonical_extjson()
        .to_string();
    sse::event(out, Some(&id), Some("heartbeat"), &data);
}

/// An event's `id:`, `event:` and `data:` (a shared event's JSON is written once for
/// every stream).
fn event_frame(event: &BatchDoc) -> std::io::Result<(Option<String>, Option<&str>, Cow<'_, str>)> {
    let raw = event.raw();
    let id = raw.get_document("_id").ok().map(token_text);
    let name = raw.get_str("operationType").ok();
    let data = event.canonical_extjson().map_err(std::io::Error::other)?;
    Ok((id, name, data))
}

/// Resolves when the client closes its side (anything it sends is ignored).
async fn closed<R: AsyncRead + Unpin>(reader: &mut R) {
    let mut scrap = [0u8; 256];
    loop {
        match reader.read(&mut scrap).await {
            Ok(0) | Err(_) => return,
            Ok(_) => continue,
        }
    }
}

/// The gateway's connection inside the server: a [`ConnInfo`] of its own (listed by
/// `$currentOp` while it lives), authenticated as the request's user.
struct Gateway {
    state: Arc<ServerState>,
    conn: Arc<ConnInfo>,
}

/// An open cursor of the gateway.
struct Cursor {
    id: i64,
    /// `$db` and `collection` of its `getMore`s, from the cursor's `ns`.
    db: String,
    coll: String,
    post_batch_token: Option<Bson>,
}

/// One `getMore`'s answer.
struct Batch {
    events: Vec<BatchDoc>,
    post_batch_token: Option<Bson>,
    /// The cursor is closed (after `invalidate`).
    exhausted: bool,
}

impl Gateway {
    fn connect(state: &Arc<ServerState>, peer: Peer, identity: Option<Identity>) -> Gateway {
        let id = state
            .next_connection_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let conn = Arc::new(ConnInfo::new(id, peer.peer, peer.local));
        conn.auth.set_identity(identity);
        *conn.client.lock().unwrap_or_else(|p| p.into_inner()) = Some(doc! {
            "application": {"name": "eddy http gateway"},
            "driver": {"name": "eddy http gateway", "version": crate::VERSION},
        });
        state.ops.connected(&conn);
        Gateway {
            state: Arc::clone(state),
            conn,
        }
    }

    async fn run(&self, cmd: Document) -> Result<Option<CursorBatch>, MongoError> {
        let outcome = dispatch::execute_typed(&self.state, &self.conn, cmd).await?;
        if outcome.close {
            return Ok(None);
        }
        outcome
            .reply
            .cursor
            .map(Some)
            .ok_or_else(|| MongoError::internal("the change stream's reply has no cursor"))
    }

    async fn open(
        &self,
        request: &WatchRequest,
        resume: Option<&Bson>,
    ) -> Result<Cursor, MongoError> {
        let first = self
            .run(request.aggregate(resume))
            .await?
            .ok_or_else(|| MongoError::new(ErrorCode::HostUnreachable, "connection closed"))?;
        let ns = first.tail.get_str("ns").unwrap_or_default().to_owned();
        let (db, coll) = ns.split_once('.').unwrap_or((ns.as_str(), ""));
        Ok(Cursor {
            id: first.id(),
            db: db.to_owned(),
            coll: coll.to_owned(),
            post_batch_token: post_batch_token(&first),
        })
    }

    /// The next batch (`None`: the connection was to be closed).
    async fn get_more(&self, cursor: &Cursor, wait: Duration) -> Result<Option<Batch>, MongoError> {
        let cmd = doc! {
            "getMore": cursor.id,
            "collection": cursor.coll.as_str(),
            "batchSize": BATCH_SIZE,
            "maxTimeMS": i64::try_from(wait.as_millis()).unwrap_or(i64::MAX),
            "$db": cursor.db.as_str(),
        };
        let Some(reply) = self.run(cmd).await? else {
            return Ok(None);
        };
        let post_batch_token = post_batch_token(&reply);
        let exhausted = reply.id() == 0;
        Ok(Some(Batch {
            events: reply.docs,
            post_batch_token,
            exhausted,
        }))
    }

    /// Kills the cursor (the stream ended before it did).
    async fn kill(&self, cursor: &Cursor) {
        let cmd = doc! {
            "killCursors": cursor.coll.as_str(),
            "cursors": [cursor.id],
            "$db": cursor.db.as_str(),
        };
        if let Err(e) = dispatch::execute_typed(&self.state, &self.conn, cmd).await {
            tracing::debug!(error = %e, "killCursors of an ended event stream failed");
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.state.ops.disconnected(self.conn.id);
    }
}

fn post_batch_token(batch: &CursorBatch) -> Option<Bson> {
    let token = batch.tail.get_document("postBatchResumeToken").ok()?;
    bson::Document::try_from(token).ok().map(Bson::Document)
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_engine::changes::Event;

    fn head(query: &[(&str, &str)], last_event_id: Option<&str>) -> Head {
        Head {
            method: "GET".into(),
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            last_event_id: last_event_id.map(str::to_owned),
            ..Head::default()
        }
    }

    fn coll() -> Scope {
        Scope::Collection("app".into(), "events".into())
    }

    #[test]
    fn a_request_becomes_the_drivers_aggregate() {
        let req = WatchRequest::parse(
            coll(),
            &head(
                &[
                    ("match", r#"{"operationType": "insert", "fullDocument.n": {"$gt": {"$numberLong": "5"}}}"#),
                    ("fullDocument", "updateLookup"),
                ],
                None,
            ),
        )
        .expect("parses");
        assert_eq!(
            req.aggregate(None),
            doc! {
                "aggregate": "events",
                "pipeline": [
                    {"$changeStream": {"fullDocument": "updateLookup"}},
                    {"$match": {"operationType": "insert", "fullDocument.n": {"$gt": 5_i64}}},
                ],
                "cursor": {"batchSize": 0},
                "$db": "app",
            }
        );
        let cluster = WatchRequest::parse(Scope::Cluster, &head(&[], None)).expect("parses");
        assert_eq!(
            cluster.aggregate(None),
            doc! {
                "aggregate": 1,
                "pipeline": [{"$changeStream": {"allChangesForCluster": true}}],
                "cursor": {"batchSize": 0},
                "$db": "admin",
            }
        );
        let db = WatchRequest::parse(
            Scope::Database("app".into()),
            &head(&[("pipeline", r#"[{"$project": {"b": 0, "a": 0}}]"#)], None),
        )
        .expect("parses");
        // Key order survives the JSON.
        assert_eq!(
            db.aggregate(None).get_array("pipeline").expect("pipeline")[1],
            Bson::Document(doc! {"$project": {"b": 0, "a": 0}})
        );
    }

    #[test]
    fn last_event_id_wins_over_the_urls_start() {
        let req = WatchRequest::parse(coll(), &head(&[("startAfter", "82aa")], Some("82bb")))
            .expect("parses");
        let stage = |cmd: Document| {
            cmd.get_array("pipeline").expect("pipeline")[0]
                .as_document()
                .expect("stage")
                .get_document("$changeStream")
                .expect("spec")
                .clone()
        };
        assert_eq!(
            stage(req.aggregate(None)),
            doc! {"resumeAfter": {"_data": "82bb"}}
        );
        let req =
            WatchRequest::parse(coll(), &head(&[("startAfter", "82aa")], None)).expect("parses");
        assert_eq!(
            stage(req.aggregate(None)),
            doc! {"startAfter": {"_data": "82aa"}}
        );
        // A reopened cursor resumes where the stream stands.
        let here = Bson::Document(doc! {"_data": "82cc"});
        assert_eq!(
            stage(req.aggregate(Some(&here))),
            doc! {"resumeAfter": {"_data": "82cc"}}
        );
    }

    #[test]
    fn mistakes_are_refused_with_mongods_codes() {
        let err = |query: &[(&str, &str)]| {
            WatchRequest::parse(coll(), &head(query, None))
                .expect_err("refused")
                .code
        };
        assert_eq!(err(&[("match", "{")]), 9);
        assert_eq!(err(&[("match", "[1]")]), 14);
        assert_eq!(err(&[("pipeline", "{}")]), 14);
        assert_eq!(err(&[("match", "{}"), ("pipeline", "[]")]), 2);
        assert_eq!(err(&[("nope", "1")]), 2);
        assert_eq!(err(&[("fullDocument", "a"), ("fullDocument", "b")]), 2);
        assert_eq!(err(&[("heartbeatMS", "5")]), 2);
        assert_eq!(err(&[("showExpandedEvents", "maybe")]), 2);
        assert_eq!(err(&[("resumeAfter", "82"), ("startAfter", "82")]), 50865);
    }

    #[test]
    fn tokens_travel_as_their_data_string() {
        let raw = bson::rawdoc! {"_data": "8264AB"};
        assert_eq!(token_text(&raw), "8264AB");
        assert_eq!(
            token_from_text("8264AB").expect("token"),
            Bson::Document(doc! {"_data": "8264AB"})
        );
        let odd = bson::rawdoc! {"_data": "82", "x": 1};
        let text = token_text(&odd);
        assert!(text.starts_with('{'), "{text}");
        assert_eq!(
            token_from_text(&text).expect("token"),
            Bson::Document(doc! {"_data": "82", "x": 1})
        );
    }

    #[test]
    fn events_are_framed_with_their_token_and_type() {
        let event = bson::rawdoc! {
            "_id": {"_data": "82ab"},
            "operationType": "insert",
            "documentKey": {"_id": 1},
        };
        let json = r#"{"_id":{"_data":"82ab"},"operationType":"insert","documentKey":{"_id":{"$numberInt":"1"}}}"#;
        let owned = BatchDoc::Owned(event.clone());
        let (id, name, data) = event_frame(&owned).expect("frame");
        assert_eq!(id.as_deref(), Some("82ab"));
        assert_eq!(name, Some("insert"));
        assert_eq!(data, json);
        // A shared event's text is written once: every frame borrows the same string.
        let shared = Arc::new(Event::new(event));
        let (a, b) = (
            BatchDoc::Shared(Arc::clone(&shared)),
            BatchDoc::Shared(shared),
        );
        let (_, _, first) = event_frame(&a).expect("frame");
        let (_, _, second) = event_frame(&b).expect("frame");
        assert_eq!(first, json);
        assert!(
            matches!((&first, &second), (Cow::Borrowed(x), Cow::Borrowed(y)) if std::ptr::eq(*x, *y))
        );
    }

    #[test]
    fn statuses() {
        assert_eq!(
            status_of(&MongoError::new(ErrorCode::Unauthorized, "")),
            403
        );
        assert_eq!(status_of(&MongoError::location(40324, "")), 400);
        let lost = MongoError::new(ErrorCode::ChangeStreamHistoryLost, "gone");
        assert_eq!(
            error_json(&lost, Some(&Bson::Document(doc! {"_data": "82"}))),
            r#"{"ok":0.0,"errmsg":"gone","code":286,"codeName":"ChangeStreamHistoryLost","resumeToken":{"_data":"82"}}"#
        );
    }
}
