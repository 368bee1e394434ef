//! The command framework: a [`Command`] parses its request into a typed struct, then
//! applies it; [`Ctx`] is what a command may use; [`Reply`] is what it answers.
//!
//! `ok`, `$clusterTime` and `operationTime` are added by the dispatcher
//! ([`crate::dispatch`]), never by commands.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bson::{Document, RawDocumentBuf};
use eddy_codes::MongoError;
use eddy_engine::Engine;

use crate::cursor::{BatchRequest, CursorBatch, CursorOptions, CursorSource, MAX_BATCH_BYTES};
use crate::state::ServerState;

/// A command's answer, before `ok` and the cluster-time fields are appended.
///
/// A cursor reply keeps its batch apart (`cursor`): the reply is then
/// `{cursor: {...}, <body's fields>}`, and the connection splices the batch's documents
/// into the frame without copying them into intermediate documents first.
#[derive(Debug, Default)]
pub struct Reply {
    pub body: RawDocumentBuf,
    pub cursor: Option<CursorBatch>,
}

impl Reply {
    /// The whole reply as one document (for the rare paths that read replies).
    pub fn to_raw(&self) -> RawDocumentBuf {
        let Some(cursor) = &self.cursor else {
            return self.body.clone();
        };
        let mut whole = RawDocumentBuf::new();
        whole.append(bson::raw::cstr!("cursor"), cursor.to_document());
        for field in self.body.iter().flatten() {
            whole.append(field.0, field.1);
        }
        whole
    }
}

impl From<Document> for Reply {
    fn from(doc: Document) -> Reply {
        // Replies are built from documents the server made itself: they always encode
        // (keys without NUL bytes); an encoding failure would be a bug, so fall back to
        // an empty body rather than panic on a connection.
        Reply {
            body: RawDocumentBuf::try_from(&doc).unwrap_or_default(),
            cursor: None,
        }
    }
}

impl From<RawDocumentBuf> for Reply {
    fn from(body: RawDocumentBuf) -> Reply {
        Reply { body, cursor: None }
    }
}

pub type CommandResult = Result<Reply, MongoError>;

/// One command: parsed from its document, then applied.
pub trait Command: Sized + Send + 'static {
    fn parse(cmd: &Document, ctx: &Ctx) -> Result<Self, MongoError>;
    fn apply(self, ctx: Ctx) -> impl Future<Output = CommandResult> + Send;
}

/// What the server knows about one client connection.
#[derive(Debug)]
pub struct ConnInfo {
    /// mongod's connection number (`connectionId` in hello, `whatsmyuri`).
    pub id: i64,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// The `client` document of the first hello, if any.
    pub client: Mutex<Option<Document>>,
    /// The connection waits on a change stream (or an awaitData cursor): from its next
    /// request on it is served by the deliveries runtime (see `crate::deliveries`).
    pub awaits_data: std::sync::atomic::AtomicBool,
    /// Who the connection authenticated as (`--auth`).
    pub auth: crate::auth::ConnAuth,
    /// The compressors negotiated by the last hello naming `compression` (the client's
    /// order), which a hello without it reports again.
    pub compression: Mutex<Vec<eddy_wire::Compressor>>,
    /// The command it is running now (`currentOp`, `killOp`).
    pub(crate) op: Mutex<Option<Arc<crate::ops::Op>>>,
    /// Its current request's answer, when another thread may write it.
    pub(crate) answer: crate::answer::Answer,
}

impl ConnInfo {
    pub fn new(id: i64, peer: SocketAddr, local: SocketAddr) -> ConnInfo {
        ConnInfo {
            id,
            peer,
            local,
            client: Mutex::new(None),
            awaits_data: std::sync::atomic::AtomicBool::new(false),
            auth: crate::auth::ConnAuth::default(),
            compression: Mutex::new(Vec::new()),
            op: Mutex::new(None),
            answer: crate::answer::Answer::default(),
        }
    }

    /// `client.application.name` from the handshake (failpoints can be limited to it).
    pub fn app_name(&self) -> Option<String> {
        let client = self.client.lock().unwrap_or_else(|p| p.into_inner());
        client
            .as_ref()?
            .get_document("application")
            .ok()?
            .get_str("name")
            .ok()
            .map(str::to_owned)
    }
}

/// The context of one command invocation.
#[derive(Clone)]
pub struct Ctx {
    pub(crate) state: Arc<ServerState>,
    pub(crate) conn: Arc<ConnInfo>,
    /// `$db`.
    pub(crate) db: String,
    /// The session the command runs in, if any.
    pub(crate) session: Option<crate::state::SessionKey>,
    /// When a time-limited read's `maxTimeMS` runs out; a cursor it opens keeps what
    /// is left of it for its `getMore`s.
    pub(crate) deadline: Option<tokio::time::Instant>,
    /// The operation this is (`currentOp`); `None` when only parsing.
    pub(crate) op: Option<Arc<crate::ops::Op>>,
    /// The multi-document transaction the command runs in (`autocommit: false`).
    pub(crate) txn: Option<Arc<crate::transactions::TxnHandle>>,
    /// The retryable write the command is (`lsid` + `txnNumber`, outside a transaction).
    pub(crate) retryable: Option<eddy_engine::RetryableWrite>,
}

impl Ctx {
    /// The database the command runs on (`$db`).
    pub fn db(&self) -> &str {
        &self.db
    }

    /// The `maxTimeMS` deadline engine work stops at (`None`: no limit).
    pub fn deadline(&self) -> Option<eddy_codes::Deadline> {
        self.deadline.map(|d| eddy_codes::Deadline(d.into_std()))
    }

    /// The retryable write the command is, if it is one (for the engine's write).
    pub fn retryable(&self) -> Option<eddy_engine::RetryableWrite> {
        self.retryable.clone()
    }

    /// The transaction the command runs in, if any.
    pub fn txn(&self) -> Option<&Arc<crate::transactions::TxnHandle>> {
        self.txn.as_ref()
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.state.engine
    }

    pub fn state(&self) -> &Arc<ServerState> {
        &self.state
    }

    pub fn conn(&self) -> &Arc<ConnInfo> {
        &self.conn
    }

    pub fn session(&self) -> Option<&crate::state::SessionKey> {
        self.session.as_ref()
    }

    /// `user@db` of the authenticated user (with `--auth`).
    pub fn user(&self) -> Option<String> {
        if !self.state.config.auth {
            return None;
        }
        self.conn
            .auth
            .identity()
            .map(|i| format!("{}@{}", i.user, i.db))
    }

    /// Reads the first batch of `source` and, unless it is exhausted, registers it as a
    /// cursor: the reply `{cursor: {firstBatch, [postBatchResumeToken], id, ns}}`.
    pub async fn open_cursor(
        &self,
        ns: String,
        source: Box<dyn CursorSource>,
        options: CursorOptions,
        batch_size: Option<u32>,
    ) -> CommandResult {
        self.open_cursor_at(ns, source, options, batch_size, None)
            .await
    }

    /// [`Ctx::open_cursor`] for a snapshot read: the reply's cursor carries the
    /// snapshot's `atClusterTime`, as mongod's does.
    pub async fn open_cursor_at(
        &self,
        ns: String,
        mut source: Box<dyn CursorSource>,
        options: CursorOptions,
        batch_size: Option<u32>,
        at_cluster_time: Option<bson::Timestamp>,
    ) -> CommandResult {
        if options.await_data {
            self.conn
                .awaits_data
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let batch = source
            .next_batch(BatchRequest {
                batch_size,
                max_bytes: MAX_BATCH_BYTES,
                max_await: None,
                reply_to: None,
            })
            .await?;
        let id = if batch.exhausted {
            0
        } else {
            // As mongod: the `getMore`s of a cursor that does not await data share
            // what is left of the opening command's `maxTimeMS`.
            let budget = self
                .deadline
                .filter(|_| !options.await_data)
                .map(|d| d.saturating_duration_since(tokio::time::Instant::now()));
            let origin = crate::cursor::Origin {
                owner: self.user(),
                uid: self.conn.auth.session_uid(),
                command: self
                    .op
                    .as_ref()
                    .and_then(|op| op.command())
                    .map(ToOwned::to_owned),
            };
            let id = self.state.cursors.register_with_budget(
                ns.clone(),
                self.session.clone(),
                options,
                source,
                budget,
                origin,
            );
            self.state.cursors.first_batch(id, batch.docs.len());
            id
        };
        let mut cursor = CursorBatch::new("firstBatch", batch, id, &ns);
        if let Some(ts) = at_cluster_time {
            cursor.tail.append(bson::raw::cstr!("atClusterTime"), ts);
        }
        Ok(Reply {
            body: RawDocumentBuf::new(),
            cursor: Some(cursor),
        })
    }
}
