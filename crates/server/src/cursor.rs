//! Cursors: what `find`, `aggregate`, `listCollections`, ... leave open for `getMore`.
//!
//! A cursor is a [`CursorSource`] (anything that can produce the next batch) kept in the
//! server-wide [`CursorRegistry`] under a random positive 64-bit id with the namespace and
//! session it belongs to. A `getMore` checks the cursor out (a second concurrent `getMore`
//! on the same cursor gets 143 CursorInUse, as mongod), asks for one batch and checks it
//! back in; an exhausted cursor is removed. Idle cursors are reaped after
//! `cursorTimeoutMillis` (10 minutes by default, as mongod).

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bson::raw::cstr;
use bson::{Document, RawArrayBuf, RawDocument, RawDocumentBuf};
use eddy_codes::{ErrorCode, MongoError};
use eddy_engine::changes::{event, Event};
use futures_util::future::BoxFuture;

use crate::state::SessionKey;

/// mongod's limit on the documents of one reply batch (16 MiB): a batch stops before the
/// document that would cross it, but always holds at least one document.
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// What a `getMore` (or the opening command) asks of a source.
#[derive(Debug, Clone)]
pub struct BatchRequest {
    /// At most this many documents (`None`: as many as fit in `max_bytes`).
    pub batch_size: Option<u32>,
    /// At most this many bytes of documents.
    pub max_bytes: usize,
    /// For awaitData cursors (change streams): how long to wait for data when there is
    /// none. `None` answers at once.
    pub max_await: Option<Duration>,
    /// Where a batch found after waiting may be answered by the thread that found it
    /// (`crate::answer`): the connection then sends nothing more for the request.
    pub reply_to: Option<crate::answer::ReplyTo>,
}

/// A document of a batch: the cursor's own, or shared with other cursors (a change
/// event built once for every stream that returns it), copied into the reply as is.
pub enum BatchDoc {
    Owned(RawDocumentBuf),
    Shared(Arc<Event>),
}

impl BatchDoc {
    pub fn raw(&self) -> &RawDocument {
        match self {
            BatchDoc::Owned(d) => d,
            BatchDoc::Shared(e) => e.raw(),
        }
    }

    /// The document as canonical Extended JSON; a shared event's is written once for
    /// every stream that sends it.
    pub fn canonical_extjson(&self) -> Result<Cow<'_, str>, MongoError> {
        match self {
            BatchDoc::Owned(d) => event::canonical_extjson(d).map(Cow::Owned),
            BatchDoc::Shared(e) => e.canonical_extjson().map(Cow::Borrowed),
        }
    }
}

impl std::fmt::Debug for BatchDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.raw().fmt(f)
    }
}

impl From<RawDocumentBuf> for BatchDoc {
    fn from(d: RawDocumentBuf) -> BatchDoc {
        BatchDoc::Owned(d)
    }
}

/// One batch from a source.
#[derive(Debug, Default)]
pub struct Batch {
    pub docs: Vec<BatchDoc>,
    /// Nothing follows: the cursor closes (id 0 in the reply).
    pub exhausted: bool,
    /// Change streams: the token to resume after this batch.
    pub post_batch_resume_token: Option<RawDocumentBuf>,
}

/// Something a cursor reads from.
pub trait CursorSource: Send {
    fn next_batch<'a>(&'a mut self, req: BatchRequest) -> BoxFuture<'a, Result<Batch, MongoError>>;
}

/// How a cursor behaves.
#[derive(Debug, Clone, Copy, Default)]
pub struct CursorOptions {
    /// A tailable awaitData cursor (change streams): `getMore` waits for data up to
    /// `maxTimeMS` (default 1 s) and an empty batch does not close it.
    pub await_data: bool,
    /// `noCursorTimeout`: never reaped for idleness.
    pub no_timeout: bool,
}

impl CursorOptions {
    pub fn change_stream() -> CursorOptions {
        CursorOptions {
            await_data: true,
            no_timeout: false,
        }
    }
}

/// A cursor over documents computed up front.
pub struct VecCursor {
    docs: VecDeque<RawDocumentBuf>,
    /// mongod's streaming plans (a collection or index scan) learn that they are done
    /// only when asked for a document past the last one: a batch that ends exactly on
    /// the last document leaves the cursor open, and the next `getMore` returns an
    /// empty batch and closes it. Blocking plans (a sort, a reached limit, an `_id`
    /// lookup) know, and close with the last document.
    lazy_eof: bool,
}

impl VecCursor {
    pub fn from_documents(docs: Vec<Document>) -> Result<VecCursor, MongoError> {
        let docs = docs
            .iter()
            .map(|d| {
                RawDocumentBuf::try_from(d).map_err(|e| {
                    MongoError::internal(format!("cannot encode a result document: {e}"))
                })
            })
            .collect::<Result<VecDeque<_>, _>>()?;
        Ok(VecCursor {
            docs,
            lazy_eof: false,
        })
    }

    pub fn from_raw(docs: Vec<RawDocumentBuf>) -> VecCursor {
        VecCursor {
            docs: docs.into(),
            lazy_eof: false,
        }
    }

    /// The cursor of a streaming plan (see `lazy_eof`).
    pub fn streaming(mut self) -> VecCursor {
        self.lazy_eof = true;
        self
    }
}

impl CursorSource for VecCursor {
    fn next_batch<'a>(&'a mut self, req: BatchRequest) -> BoxFuture<'a, Result<Batch, MongoError>> {
        let max_docs = req.batch_size.map_or(usize::MAX, |n| n as usize);
        let mut batch = Batch::default();
        let mut bytes = 0usize;
        while batch.docs.len() < max_docs {
            let Some(next) = self.docs.front() else { break };
            let len = next.as_bytes().len();
            if !batch.docs.is_empty() && bytes + len > req.max_bytes {
                break;
            }
            bytes += len;
            if let Some(doc) = self.docs.pop_front() {
                batch.docs.push(doc.into());
            }
        }
        // A streaming plan has seen its end only if it stopped for want of documents.
        batch.exhausted = self.docs.is_empty() && !(self.lazy_eof && batch.docs.len() == max_docs);
        Box::pin(std::future::ready(Ok(batch)))
    }
}

/// A registered cursor.
struct Slot {
    ns: String,
    /// The session that opened it, if any.
    session: Option<SessionKey>,
    options: CursorOptions,
    /// `None` while a `getMore` has it checked out.
    source: Option<Box<dyn CursorSource>>,
    /// The `getMore` that has it checked out was answered already (`crate::answer`) and
    /// is still doing its bookkeeping: the client's next `getMore` waits for it.
    answered: bool,
    last_used: Instant,
    /// What is left of the opening command's `maxTimeMS` for the `getMore`s.
    budget: Option<Duration>,
    /// Who opened it and how (`$currentOp`).
    origin: Origin,
    created: bson::DateTime,
    /// Wall-clock time of the last `getMore` (or of the opening command).
    last_access: bson::DateTime,
    docs_returned: u64,
    batches_returned: u64,
}

/// Why a cursor could not be checked out.
enum Busy {
    /// Its previous `getMore` was answered and is finishing: wait for it.
    Answered,
    Failed(MongoError),
}

fn in_use(id: i64) -> MongoError {
    MongoError::new(
        ErrorCode::CursorInUse,
        format!("cursor id {id} is already in use"),
    )
}

/// Who opened a cursor, with which command.
#[derive(Debug, Default, Clone)]
pub struct Origin {
    /// `user@db` of the authenticated user that opened it (`--auth`): only that user
    /// may read or kill it.
    pub owner: Option<String>,
    /// The digest of that user (`crate::auth::session_user_digest`): whose it is in
    /// `$currentOp`.
    pub uid: [u8; 32],
    /// The opening command (`originatingCommand`), as BSON: a decoded document would
    /// cost an idle change stream several times its bytes.
    pub command: Option<RawDocumentBuf>,
}

impl Slot {
    fn describe(&self, id: i64) -> Document {
        let mut d = bson::doc! {
            "cursorId": id,
            "createdDate": self.created,
            "lastAccessDate": self.last_access,
            "nDocsReturned": self.docs_returned as i64,
            "nBatchesReturned": self.batches_returned as i64,
            "noCursorTimeout": self.options.no_timeout,
            "tailable": self.options.await_data,
            "awaitData": self.options.await_data,
        };
        if let Some(cmd) = self
            .origin
            .command
            .as_ref()
            .and_then(|c| Document::try_from(c.as_ref()).ok())
        {
            d.insert("originatingCommand", cmd);
        }
        d
    }
}

/// Every open cursor of the server.
pub struct CursorRegistry {
    slots: Mutex<HashMap<i64, Slot>>,
    /// `cursorTimeoutMillis`, settable at runtime (`setParameter`).
    timeout_ms: std::sync::atomic::AtomicU64,
    /// Woken when the timeout changes, so the reaper sleeps by the new one.
    pub timeout_changed: tokio::sync::Notify,
    /// Cursors registered since start (`metrics.cursor.totalOpened`).
    opened: std::sync::atomic::AtomicU64,
    /// Woken when a cursor answered early is checked back in or removed.
    returned: tokio::sync::Notify,
}

/// A cursor checked out for one `getMore`.
pub struct CheckedOut {
    pub id: i64,
    pub ns: String,
    pub options: CursorOptions,
    pub source: Box<dyn CursorSource>,
    /// What is left of the opening command's `maxTimeMS` (the `getMore` spends it).
    pub budget: Option<Duration>,
}

impl CursorRegistry {
    pub fn new(timeout: Duration) -> CursorRegistry {
        CursorRegistry {
            slots: Mutex::new(HashMap::new()),
            timeout_ms: std::sync::atomic::AtomicU64::new(
                u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            ),
            timeout_changed: tokio::sync::Notify::new(),
            returned: tokio::sync::Notify::new(),
            opened: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a cursor and returns its new id (random, positive, never 0).
    pub fn register(
        &self,
        ns: String,
        session: Option<SessionKey>,
        options: CursorOptions,
        source: Box<dyn CursorSource>,
    ) -> i64 {
        self.register_with_budget(ns, session, options, source, None, Origin::default())
    }

    /// [`CursorRegistry::register`] with a `maxTimeMS` budget for its `getMore`s.
    pub fn register_with_budget(
        &self,
        ns: String,
        session: Option<SessionKey>,
        options: CursorOptions,
        source: Box<dyn CursorSource>,
        budget: Option<Duration>,
        origin: Origin,
    ) -> i64 {
        self.opened
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut slots = self.lock();
        let id = loop {
            let candidate = (uuid::Uuid::new_v4().as_u64_pair().0 >> 1) as i64;
            if candidate != 0 && !slots.contains_key(&candidate) {
                break candidate;
            }
        };
        slots.insert(
            id,
            Slot {
                ns,
                session,
                options,
                source: Some(source),
                answered: false,
                last_used: Instant::now(),
                budget,
                origin,
                created: bson::DateTime::now(),
                last_access: bson::DateTime::now(),
                docs_returned: 0,
                batches_returned: 1,
            },
        );
        id
    }

    /// Checks a cursor out for a `getMore` on `ns` by `user` (`user@db` with `--auth`).
    pub fn check_out(
        &self,
        id: i64,
        ns: &str,
        user: Option<&str>,
    ) -> Result<CheckedOut, MongoError> {
        self.try_check_out(id, ns, user).map_err(|busy| match busy {
            Busy::Answered => in_use(id),
            Busy::Failed(e) => e,
        })
    }

    /// [`CursorRegistry::check_out`] for a `getMore`: a cursor whose previous `getMore`
    /// was answered ahead of its bookkeeping (`crate::answer`) is waited for, since the
    /// client sent this one after it had that answer, as mongod's client never finds
    /// its cursor in use after a reply.
    pub async fn check_out_after_answer(
        &self,
        id: i64,
        ns: &str,
        user: Option<&str>,
    ) -> Result<CheckedOut, MongoError> {
        loop {
            let returned = self.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            match self.try_check_out(id, ns, user) {
                Ok(cursor) => return Ok(cursor),
                Err(Busy::Answered) => returned.await,
                Err(Busy::Failed(e)) => return Err(e),
            }
        }
    }

    fn try_check_out(&self, id: i64, ns: &str, user: Option<&str>) -> Result<CheckedOut, Busy> {
        let mut slots = self.lock();
        let Some(slot) = slots.get_mut(&id) else {
            return Err(Busy::Failed(MongoError::new(
                ErrorCode::CursorNotFound,
                format!("cursor id {id} not found"),
            )));
        };
        if slot.origin.owner.is_some() && slot.origin.owner.as_deref() != user {
            return Err(Busy::Failed(MongoError::new(
                ErrorCode::Unauthorized,
                format!("cursor id {id} was not created by the authenticated user"),
            )));
        }
        if slot.ns != ns {
            return Err(Busy::Failed(MongoError::new(
                ErrorCode::Unauthorized,
                format!(
                    "Requested getMore on namespace '{ns}', but cursor belongs to a different namespace {}",
                    slot.ns
                ),
            )));
        }
        let Some(source) = slot.source.take() else {
            return Err(if slot.answered {
                Busy::Answered
            } else {
                Busy::Failed(in_use(id))
            });
        };
        slot.last_used = Instant::now();
        Ok(CheckedOut {
            id,
            ns: slot.ns.clone(),
            options: slot.options,
            source,
            budget: slot.budget,
        })
    }

    /// The `getMore` that has cursor `id` checked out is being answered ahead of its
    /// bookkeeping (`crate::answer`).
    pub fn answered_early(&self, id: i64) {
        if let Some(slot) = self.lock().get_mut(&id) {
            slot.answered = slot.source.is_none();
        }
    }

    /// Returns a checked-out cursor that has just returned `docs` documents; a cursor
    /// killed meanwhile stays killed.
    pub fn check_in(&self, cursor: CheckedOut, docs: usize) {
        if let Some(slot) = self.lock().get_mut(&cursor.id) {
            if std::mem::take(&mut slot.answered) {
                self.returned.notify_waiters();
            }
            slot.source = Some(cursor.source);
            slot.budget = cursor.budget;
            slot.last_used = Instant::now();
            slot.last_access = bson::DateTime::now();
            slot.docs_returned += docs as u64;
            slot.batches_returned += 1;
        }
    }

    /// Counts a first batch (the opening command's) of a cursor just registered.
    pub fn first_batch(&self, id: i64, docs: usize) {
        if let Some(slot) = self.lock().get_mut(&id) {
            slot.docs_returned = docs as u64;
        }
    }

    /// The `cursor` field `$currentOp` shows for a cursor.
    pub fn describe(&self, id: i64) -> Option<Document> {
        self.lock().get(&id).map(|slot| slot.describe(id))
    }

    /// `$currentOp`'s idle cursors (open, no `getMore` reading them), each with the
    /// digest of the user it belongs to.
    pub fn idle(&self, host: &str) -> Vec<([u8; 32], Document)> {
        let slots = self.lock();
        let mut ids: Vec<&i64> = slots
            .iter()
            .filter(|(_, s)| s.source.is_some())
            .map(|(id, _)| id)
            .collect();
        ids.sort();
        ids.into_iter()
            .filter_map(|id| {
                let slot = slots.get(id)?;
                let mut d = bson::doc! {"type": "idleCursor", "host": host, "ns": slot.ns.clone()};
                if let Some(session) = &slot.session {
                    d.insert("lsid", session.to_document());
                }
                d.insert("cursor", slot.describe(*id));
                Some((slot.origin.uid, d))
            })
            .collect()
    }

    /// Removes a cursor (exhausted, failed or killed). Returns whether it existed.
    pub fn remove(&self, id: i64) -> bool {
        let removed = self.lock().remove(&id);
        if removed.as_ref().is_some_and(|slot| slot.answered) {
            self.returned.notify_waiters();
        }
        removed.is_some()
    }

    /// `killCursors` on `ns` by `user`: the ids that were killed and those not found
    /// (another user's cursor counts as not found).
    pub fn kill(&self, ns: &str, ids: &[i64], user: Option<&str>) -> (Vec<i64>, Vec<i64>) {
        let mut slots = self.lock();
        let (mut killed, mut not_found) = (Vec::new(), Vec::new());
        for id in ids {
            match slots.get(id) {
                Some(slot)
                    if slot.ns == ns
                        && (slot.origin.owner.is_none()
                            || slot.origin.owner.as_deref() == user) =>
                {
                    slots.remove(id);
                    killed.push(*id);
                }
                _ => not_found.push(*id),
            }
        }
        // A getMore waiting for one of them learns it is gone.
        self.returned.notify_waiters();
        (killed, not_found)
    }

    /// Kills every cursor opened by one of these sessions (`endSessions`).
    pub fn kill_sessions(&self, sessions: &[SessionKey]) -> usize {
        self.kill_where(|key| sessions.contains(key))
    }

    /// Kills every cursor opened in a session of the users with these digests, or in
    /// any session (`killAllSessions`).
    pub fn kill_sessions_of_users(&self, uids: Option<&[[u8; 32]]>) -> usize {
        self.kill_where(|key| uids.is_none_or(|uids| uids.contains(&key.uid())))
    }

    fn kill_where(&self, doomed: impl Fn(&SessionKey) -> bool) -> usize {
        let mut slots = self.lock();
        let before = slots.len();
        slots.retain(|_, s| !s.session.as_ref().is_some_and(&doomed));
        self.returned.notify_waiters();
        before - slots.len()
    }

    /// Removes cursors idle for longer than the timeout; returns how many.
    pub fn reap(&self) -> usize {
        let timeout = self.timeout();
        let mut slots = self.lock();
        let before = slots.len();
        // A cursor checked out by a getMore whose connection went away is never checked
        // back in: its slot goes the same way as an idle one.
        slots.retain(|_, s| s.options.no_timeout || s.last_used.elapsed() < timeout);
        self.returned.notify_waiters();
        before - slots.len()
    }

    /// `serverStatus.metrics.cursor`'s counts: opened since start, and of the open
    /// ones, all, those without a timeout and those a `getMore` is reading (pinned).
    pub fn metrics(&self) -> (u64, usize, usize, usize) {
        let slots = self.lock();
        let no_timeout = slots.values().filter(|s| s.options.no_timeout).count();
        let pinned = slots.values().filter(|s| s.source.is_none()).count();
        (
            self.opened.load(std::sync::atomic::Ordering::Relaxed),
            slots.len(),
            no_timeout,
            pinned,
        )
    }

    /// Open awaitData cursors (change streams).
    pub fn awaiting_data(&self) -> usize {
        self.lock()
            .values()
            .filter(|s| s.options.await_data)
            .count()
    }

    /// Open cursors.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How long an idle cursor lives.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Changes how long an idle cursor lives (`setParameter: {cursorTimeoutMillis}`); the
    /// reaper uses it from its next round.
    pub fn set_timeout(&self, timeout: Duration) {
        self.timeout_ms.store(
            u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
        self.timeout_changed.notify_one();
    }
}

/// The `cursor` field of a reply: `{firstBatch|nextBatch: [docs], [postBatchResumeToken],
/// id, ns, ...}`, with the documents kept as they are until the reply is written.
#[derive(Debug)]
pub struct CursorBatch {
    /// `firstBatch` or `nextBatch`.
    pub batch_field: &'static str,
    pub docs: Vec<BatchDoc>,
    /// The fields after the batch: `postBatchResumeToken`, `id`, `ns`, ...
    pub tail: RawDocumentBuf,
}

impl CursorBatch {
    pub fn new(batch_field: &'static str, batch: Batch, id: i64, ns: &str) -> CursorBatch {
        CursorBatch {
            batch_field,
            tail: CursorBatch::tail(batch.post_batch_resume_token.as_deref(), id, ns),
            docs: batch.docs,
        }
    }

    /// The cursor's fields after its documents.
    pub fn tail(
        post_batch_resume_token: Option<&RawDocument>,
        id: i64,
        ns: &str,
    ) -> RawDocumentBuf {
        let mut tail = RawDocumentBuf::new();
        if let Some(token) = post_batch_resume_token {
            tail.append(cstr!("postBatchResumeToken"), token);
        }
        tail.append(cstr!("id"), id);
        tail.append(cstr!("ns"), ns);
        tail
    }

    /// The cursor id (0 once exhausted).
    pub fn id(&self) -> i64 {
        self.tail.get_i64("id").unwrap_or(0)
    }

    /// The cursor sub-document, materialized.
    pub fn to_document(&self) -> RawDocumentBuf {
        let mut docs = RawArrayBuf::new();
        for d in &self.docs {
            docs.push(d.raw());
        }
        let mut cursor = RawDocumentBuf::new();
        let field = <&bson::raw::CStr>::try_from(self.batch_field).unwrap_or(cstr!("nextBatch"));
        cursor.append(field, docs);
        for (k, v) in self.tail.iter().flatten() {
            cursor.append(k, v);
        }
        cursor
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn request(n: Option<u32>) -> BatchRequest {
        BatchRequest {
            batch_size: n,
            max_bytes: MAX_BATCH_BYTES,
            max_await: None,
            reply_to: None,
        }
    }

    #[tokio::test]
    async fn vec_cursor_batches() {
        let mut c =
            VecCursor::from_documents((0..5).map(|i| doc! {"_id": i}).collect()).expect("encode");
        let b = c.next_batch(request(Some(2))).await.expect("batch");
        assert_eq!((b.docs.len(), b.exhausted), (2, false));
        let b = c.next_batch(request(None)).await.expect("batch");
        assert_eq!((b.docs.len(), b.exhausted), (3, true));
    }

    #[tokio::test]
    async fn streaming_cursor_learns_its_end_one_batch_late() {
        let docs = || (0..4).map(|i| doc! {"_id": i}).collect::<Vec<_>>();
        let mut c = VecCursor::from_documents(docs())
            .expect("encode")
            .streaming();
        let b = c.next_batch(request(Some(2))).await.expect("batch");
        assert_eq!((b.docs.len(), b.exhausted), (2, false));
        // The last two documents fill the batch exactly: not known to be the end yet.
        let b = c.next_batch(request(Some(2))).await.expect("batch");
        assert_eq!((b.docs.len(), b.exhausted), (2, false));
        let b = c.next_batch(request(Some(2))).await.expect("batch");
        assert_eq!((b.docs.len(), b.exhausted), (0, true));
        // A batch with room to spare sees the end.
        let mut c = VecCursor::from_documents(docs())
            .expect("encode")
            .streaming();
        let b = c.next_batch(request(Some(10))).await.expect("batch");
        assert_eq!((b.docs.len(), b.exhausted), (4, true));
    }

    #[tokio::test]
    async fn byte_limit_keeps_at_least_one() {
        let mut c = VecCursor::from_documents(vec![doc! {"a": "x".repeat(100)}, doc! {"a": 1}])
            .expect("encode");
        let b = c
            .next_batch(BatchRequest {
                batch_size: None,
                max_bytes: 10,
                max_await: None,
                reply_to: None,
            })
            .await
            .expect("batch");
        assert_eq!(b.docs.len(), 1);
    }

    #[test]
    fn registry_rules() {
        let reg = CursorRegistry::new(Duration::from_secs(600));
        let id = reg.register(
            "db.c".into(),
            None,
            CursorOptions::default(),
            Box::new(VecCursor::from_raw(vec![])),
        );
        assert!(id > 0);
        assert_eq!(
            reg.check_out(id, "db.other", None).err().map(|e| e.code),
            Some(13)
        );
        let c = reg.check_out(id, "db.c", None).expect("check out");
        assert_eq!(
            reg.check_out(id, "db.c", None).err().map(|e| e.code),
            Some(143)
        );
        reg.check_in(c, 0);
        assert_eq!(reg.kill("db.c", &[id, 7], None), (vec![id], vec![7]));
        assert_eq!(
            reg.check_out(id, "db.c", None).err().map(|e| e.code),
            Some(43)
        );
    }

    #[test]
    fn idle_and_abandoned_cursors_are_reaped() {
        let reg = CursorRegistry::new(Duration::from_millis(0));
        let empty = || Box::new(VecCursor::from_raw(vec![]));
        let idle = reg.register("db.c".into(), None, CursorOptions::default(), empty());
        let abandoned = reg.register("db.c".into(), None, CursorOptions::default(), empty());
        let pinned = CursorOptions {
            no_timeout: true,
            ..CursorOptions::default()
        };
        let kept = reg.register("db.c".into(), None, pinned, empty());
        let lost = reg.check_out(abandoned, "db.c", None).expect("check out");
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(reg.reap(), 2);
        // Checking a reaped cursor back in does not bring it back.
        reg.check_in(lost, 0);
        assert_eq!(
            reg.check_out(idle, "db.c", None).err().map(|e| e.code),
            Some(43)
        );
        assert_eq!(
            reg.check_out(abandoned, "db.c", None).err().map(|e| e.code),
            Some(43)
        );
        assert!(reg.check_out(kept, "db.c", None).is_ok());
    }
}
