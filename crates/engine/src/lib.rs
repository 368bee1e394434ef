//! The engine: collections, indexes and the oplog on top of the embedded store, and
//! the change hub that every change stream shares.
//!
//! Layout:
//! - [`catalog`]: which collections exist, their options and indexes;
//! - [`index`]: index key generation and maintenance;
//! - [`oplog`]: the entry written with every change, in the same transaction;
//! - [`clock`]: the cluster clock that orders all writes;
//! - [`hub`]: the in-memory tail of the oplog that change streams read;
//! - [`write`]: the write operations, run inside the group commit;
//! - [`plan`]: query planning (which index, which bounds, which direction);
//! - [`read`]: snapshots, and running plans;
//! - [`exec`]: queries, aggregation pipelines (`$out`, `$merge`, views) over readers.
//!
//! The data flow of a write: a command calls an [`Engine`] method, which submits a job
//! to the committer thread and waits. The committer runs the job inside the shared
//! write transaction (catalog, documents, index entries and oplog entries change
//! together), commits the group with one fsync, then publishes the group's oplog
//! entries to the hub (waking change streams) and only then answers the writer. So an
//! acknowledged write is durable, and a change stream never sees a write that is not.

pub mod capped;
pub mod catalog;
pub mod changes;
pub mod clock;
pub mod collations;
pub mod exec;
pub mod geo;
pub mod hashed;
pub mod hub;
pub mod id_index;
pub mod index;
pub mod oplog;
pub mod plan;
pub mod read;
pub mod snapshots;
pub mod timeseries;
pub mod txn;
pub mod usage;
pub mod users;
pub mod validate;
pub mod wildcard;
pub mod write;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bson::{Bson, Timestamp};
use eddy_codes::{ErrorCode, MongoError};
use eddy_storage::{Committer, KvRead, StorageError, Store};

pub use catalog::{CollectionMeta, IndexMeta, Namespace, ResolvedView, ViewMeta};
pub use hub::{ChangeHub, TailRead};
pub use oplog::{CatalogOp, Op, OplogEntry, SharedEntry};
pub use read::Reader;
pub use txn::Transaction;
pub use write::{
    DeleteOp, FindAndModify, FindAndModifyOutcome, RetryableWrite, StatementHook, UpdateOp,
    WriteOutcome,
};

/// The version of the on-disk format. A store written by another version is refused
/// rather than misread.
///
/// It lives in the `meta` table under `format_version`, a big-endian i64, written by
/// the first open of a store and checked by every later one. A store without the key
/// is taken as version 1 and gets the key: every build has written it on first open,
/// so such a store can only be one no engine has opened yet. Any other value (older,
/// newer or unreadable, read as 0) is refused with 12 UnsupportedFormat naming it.
pub const FORMAT_VERSION: i64 = 1;

/// Table names.
pub(crate) mod tables {
    pub const META: &str = "meta";
    pub const CATALOG: &str = "catalog";
    pub const OPLOG: &str = "oplog";
    /// The session records of retryable writes (`write::retry`).
    pub const SESSIONS: &str = "sessions";

    pub fn docs(id: u64) -> String {
        format!("d.{id}")
    }

    pub fn index(id: u64) -> String {
        format!("x.{id}")
    }

    /// The collated `_id` index of a collection with a default collation
    /// (`crate::id_index`).
    pub fn collated_id(id: u64) -> String {
        format!("i.{id}")
    }
}

/// How often the oplog's size is checked against its cap.
const TRIM_INTERVAL: Duration = Duration::from_millis(500);
/// The most oplog entries one trimming transaction removes.
const TRIM_CHUNK: usize = 10_000;

/// Keys of the `meta` table.
mod meta_keys {
    pub const FORMAT_VERSION: &[u8] = b"format_version";
    pub const NEXT_ID: &[u8] = b"next_id";
    /// Present once the hashed indexes with a collation hold hashes of collation keys
    /// (`hashed::rekey_collated`; earlier builds hashed the simple values).
    pub const COLLATED_HASHES: &[u8] = b"collated_hashes";
}

/// How the engine is opened.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// The data directory (created if missing).
    pub dbpath: PathBuf,
    /// The oplog's size cap in megabytes (`--oplogSize`).
    pub oplog_size_mb: u64,
    /// The oplog's minimum retention in hours (`--oplogMinRetentionHours`, 0 = none).
    pub oplog_min_retention_hours: f64,
    /// How many recent oplog entries the change hub keeps in memory.
    pub hub_capacity: usize,
    /// I/O fault switches (tests); `None` in production.
    pub faults: Option<Arc<eddy_storage::FaultInjector>>,
}

impl EngineOptions {
    pub fn new(dbpath: impl Into<PathBuf>) -> EngineOptions {
        EngineOptions {
            dbpath: dbpath.into(),
            oplog_size_mb: 1024,
            oplog_min_retention_hours: 0.0,
            hub_capacity: 100_000,
            faults: None,
        }
    }
}

/// The engine, shared by every connection.
pub struct Engine {
    pub(crate) store: Arc<Store>,
    /// The group-commit thread; `None` once closed. Writers take the read lock to
    /// submit, `close` the write lock to stop it.
    committer: RwLock<Option<Committer>>,
    /// The committer's counters (`GET /metrics`).
    commit_stats: Arc<eddy_storage::CommitterStats>,
    pub(crate) clock: clock::ClusterClock,
    hub: ChangeHub,
    pub(crate) options: EngineOptions,
    /// The next internal table id; only the committer thread advances it.
    pub(crate) next_id: AtomicU64,
    /// Approximate bytes held by the oplog (sum of entry sizes).
    pub(crate) oplog_bytes: AtomicU64,
    /// The newest oplog timestamp (packed) trimmed since start, set before the trimming
    /// commits: a stream reading storage from a position before it may have lost entries
    /// ([`Engine::read_oplog`]).
    pub(crate) trimmed_through: AtomicU64,
    started: Instant,
    /// Snapshots kept for snapshot reads at their cluster time.
    snapshots: snapshots::SnapshotHistory,
    /// Index uses since start (`$indexStats`).
    usage: usage::IndexUsage,
    /// Writes to users and roles since start (see `users`).
    security_version: AtomicU64,
    /// Keys written by open multi-document transactions (see `txn`).
    claims: Arc<txn::Claims>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("dbpath", &self.options.dbpath)
            .finish_non_exhaustive()
    }
}

/// Converts a storage failure into the error a client sees.
pub(crate) fn storage_err(e: StorageError) -> MongoError {
    match e {
        StorageError::Commit(_) | StorageError::Failed(_) => MongoError::new(
            ErrorCode::InternalError,
            format!("{e}; the server refuses writes until it is restarted"),
        ),
        StorageError::Closed => MongoError::new(ErrorCode::ShutdownInProgress, e.to_string()),
        other => MongoError::new(ErrorCode::InternalError, other.to_string()),
    }
}

impl Engine {
    /// Opens (or creates) the store in `options.dbpath` and starts the committer.
    pub fn open(options: EngineOptions) -> Result<Arc<Engine>, MongoError> {
        std::fs::create_dir_all(&options.dbpath).map_err(|e| {
            MongoError::new(
                ErrorCode::InternalError,
                format!("cannot create dbpath {}: {e}", options.dbpath.display()),
            )
        })?;
        let path = options.dbpath.join("eddy.redb");
        let store = match &options.faults {
            Some(faults) => Store::open_with_faults(&path, faults.clone()),
            None => Store::open(&path),
        }
        .map_err(|e| {
            MongoError::new(
                ErrorCode::DBPathInUse,
                format!("{e} (is another eddy using {}?)", options.dbpath.display()),
            )
        })?;

        // Format version and the internal id counter.
        let (next_id, last_ts, oplog_bytes) = store
            .write_now(|w| -> Result<(u64, Timestamp, u64), MongoError> {
                match w.get(tables::META, meta_keys::FORMAT_VERSION).map_err(storage_err)? {
                    Some(v) => {
                        let found = i64::from_be_bytes(v.as_slice().try_into().unwrap_or([0; 8]));
                        if found != FORMAT_VERSION {
                            return Err(MongoError::new(
                                ErrorCode::UnsupportedFormat,
                                format!(
                                    "the data files have format version {found}; this eddy reads version {FORMAT_VERSION}"
                                ),
                            ));
                        }
                    }
                    None => w
                        .put(
                            tables::META,
                            meta_keys::FORMAT_VERSION,
                            &FORMAT_VERSION.to_be_bytes(),
                        )
                        .map_err(storage_err)?,
                }
                let next_id = w
                    .get(tables::META, meta_keys::NEXT_ID)
                    .map_err(storage_err)?
                    .and_then(|v| v.as_slice().try_into().ok().map(u64::from_be_bytes))
                    .unwrap_or(1);
                let last_ts = w
                    .last(tables::OPLOG)
                    .map_err(storage_err)?
                    .and_then(|(k, _)| oplog::ts_of_key(&k))
                    .unwrap_or(Timestamp {
                        time: 0,
                        increment: 0,
                    });
                let mut bytes = 0u64;
                for entry in w
                    .scan_all(tables::OPLOG, false)
                    .map_err(storage_err)?
                {
                    let (k, v) = entry.map_err(storage_err)?;
                    bytes += (k.len() + v.len()) as u64;
                }
                // Collated `_id` indexes a store from before them lacks.
                let built = id_index::rebuild_missing(w)?;
                if built > 0 {
                    tracing::info!(collections = built, "built collated _id indexes");
                }
                if w
                    .get(tables::META, meta_keys::COLLATED_HASHES)
                    .map_err(storage_err)?
                    .is_none()
                {
                    let rebuilt = hashed::rekey_collated(w)?;
                    if rebuilt > 0 {
                        tracing::info!(indexes = rebuilt, "rebuilt collated hashed indexes");
                    }
                    w.put(tables::META, meta_keys::COLLATED_HASHES, b"1")
                        .map_err(storage_err)?;
                }
                Ok((next_id, last_ts, bytes))
            })
            .map_err(storage_err)??;

        let committer = Committer::start(store.clone());
        let engine = Arc::new(Engine {
            store,
            commit_stats: committer.shared_stats(),
            committer: RwLock::new(Some(committer)),
            clock: clock::ClusterClock::resume_after(last_ts),
            hub: ChangeHub::new(options.hub_capacity, last_ts),
            next_id: AtomicU64::new(next_id),
            oplog_bytes: AtomicU64::new(oplog_bytes),
            trimmed_through: AtomicU64::new(0),
            options,
            started: Instant::now(),
            snapshots: snapshots::SnapshotHistory::default(),
            usage: usage::IndexUsage::default(),
            security_version: AtomicU64::new(0),
            claims: Arc::default(),
        });
        tracing::info!(
            dbpath = %engine.options.dbpath.display(),
            last_op = ?last_ts,
            "storage opened"
        );
        engine.start_trimmer();
        Ok(engine)
    }

    /// Starts the background thread that keeps the oplog within its size cap. It holds
    /// only a weak reference, so it ends when the engine is dropped or closed.
    fn start_trimmer(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("eddy-oplog-trim".into())
            .spawn(move || loop {
                std::thread::sleep(TRIM_INTERVAL);
                let Some(engine) = weak.upgrade() else { return };
                if engine.is_closed() {
                    return;
                }
                // Trim in bounded chunks so that writers interleave with the trimming.
                loop {
                    match engine.trim_oplog(TRIM_CHUNK) {
                        Ok(0) => break,
                        Ok(n) => tracing::debug!(removed = n, "oplog trimmed"),
                        Err(e) => {
                            tracing::warn!(error = %e, "oplog trimming failed");
                            break;
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the oplog trimmer");
        }
    }

    fn is_closed(&self) -> bool {
        self.committer.read().map(|c| c.is_none()).unwrap_or(true)
    }

    /// The newest durable operation time (`operationTime`).
    pub fn last_op_time(&self) -> Timestamp {
        self.clock.committed()
    }

    /// The time to report as `$clusterTime` when nothing newer is known.
    pub fn cluster_time(&self) -> Timestamp {
        self.clock.cluster_time()
    }

    /// The change hub.
    pub fn hub(&self) -> &ChangeHub {
        &self.hub
    }

    /// The storage engine's name for `serverStatus.storageEngine.name`.
    pub fn storage_engine_name(&self) -> &'static str {
        "redb"
    }

    /// How long the engine has been open.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The data directory.
    pub fn dbpath(&self) -> &std::path::Path {
        &self.options.dbpath
    }

    /// Why writes are refused, if a commit failed.
    pub fn write_failure(&self) -> Option<String> {
        self.store.failure()
    }

    /// A consistent read snapshot.
    /// How often each index served an operation since start (`$indexStats`).
    pub fn index_usage(&self) -> &usage::IndexUsage {
        &self.usage
    }

    /// A consistent read snapshot; inside a transaction's scope (`txn`), the
    /// transaction's view: its snapshot and its own writes.
    pub fn reader(&self) -> Result<Reader, MongoError> {
        if let Some(reader) = self.transaction_reader() {
            return Ok(reader);
        }
        Ok(Reader::new(self.store.snapshot().map_err(storage_err)?))
    }

    /// Stops the committer after it has committed what is queued.
    pub fn close(&self) {
        let committer = self
            .committer
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(mut committer) = committer {
            committer.shutdown();
            tracing::info!("storage closed");
        }
    }

    pub(crate) fn submit(&self, job: eddy_storage::Job) -> Result<(), MongoError> {
        let guard = self.committer.read().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(c) => c.submit(job).map_err(storage_err),
            None => Err(MongoError::new(
                ErrorCode::ShutdownInProgress,
                "The server is shutting down",
            )),
        }
    }

    /// Entries strictly after `after`, at most `max`, oldest first: from the hub when
    /// it holds the position, else from storage. From storage, 286
    /// ChangeStreamHistoryLost when entries after `after` may have been trimmed away
    /// (the oldest retained entry is newer than `after`, and trimming since start removed
    /// an entry newer than `after`): a reader behind the retained history learns it
    /// rather than skipping what it missed. The hub never loses entries between its
    /// floor and its newest, so reads it serves are whole.
    pub fn read_oplog(&self, after: Timestamp, max: usize) -> Result<Vec<SharedEntry>, MongoError> {
        if let TailRead::Entries(entries) = self.hub.read_after(after, max) {
            return Ok(entries);
        }
        let snap = self.store.snapshot().map_err(storage_err)?;
        let oldest = snap
            .first(tables::OPLOG)
            .map_err(storage_err)?
            .and_then(|(k, _)| oplog::ts_of_key(&k));
        let position = clock::pack(after);
        if oldest.is_some_and(|o| clock::pack(o) > position)
            && self.trimmed_through.load(Ordering::Acquire) > position
        {
            return Err(changes::history_lost());
        }
        let mut out = Vec::new();
        for entry in snap
            .scan(
                tables::OPLOG,
                std::ops::Bound::Excluded(oplog::key_of(after).to_vec()),
                std::ops::Bound::Unbounded,
                false,
            )
            .map_err(storage_err)?
        {
            let (_, v) = entry.map_err(storage_err)?;
            out.push(Arc::new(changes::Logged::new(OplogEntry::decode(v)?)));
            if out.len() >= max {
                break;
            }
        }
        Ok(out)
    }

    /// The oldest timestamp still in the oplog (resume points before it are lost).
    pub fn oplog_start(&self) -> Result<Option<Timestamp>, MongoError> {
        let snap = self.store.snapshot().map_err(storage_err)?;
        Ok(snap
            .first(tables::OPLOG)
            .map_err(storage_err)?
            .and_then(|(k, _)| oplog::ts_of_key(&k)))
    }

    /// The group committer's counters: commits, jobs, group sizes, commit latency.
    pub fn commit_stats(&self) -> &eddy_storage::CommitterStats {
        &self.commit_stats
    }

    /// Checkpoints the store has taken since it opened.
    pub fn checkpoints(&self) -> u64 {
        self.store.checkpoints()
    }

    /// Bytes held by the oplog (approximate).
    pub fn oplog_bytes(&self) -> u64 {
        self.oplog_bytes.load(Ordering::Relaxed)
    }
}

/// A value as mongod prints it inside error messages (`{ _id: 1 }`, `"x"`,
/// `ObjectId('...')`).
pub fn display_value(v: &Bson) -> String {
    match v {
        Bson::String(s) => format!("\"{s}\""),
        Bson::ObjectId(o) => format!("ObjectId('{o}')"),
        Bson::Int32(n) => n.to_string(),
        Bson::Int64(n) => n.to_string(),
        Bson::Double(d) => {
            if d.fract() == 0.0 && d.is_finite() {
                format!("{d:.1}")
            } else {
                d.to_string()
            }
        }
        Bson::Null => "null".into(),
        Bson::Boolean(b) => b.to_string(),
        Bson::Document(d) => {
            let inner: Vec<String> = d
                .iter()
                .map(|(k, v)| format!("{k}: {}", display_value(v)))
                .collect();
            if inner.is_empty() {
                "{}".into()
            } else {
                format!("{{ {} }}", inner.join(", "))
            }
        }
        Bson::Array(a) => {
            let inner: Vec<String> = a.iter().map(display_value).collect();
            format!("[ {} ]", inner.join(", "))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store file of a data directory.
    fn store_path(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("eddy.redb")
    }

    /// The raw `format_version` value in `meta`, read without the engine.
    fn stored_version(dir: &tempfile::TempDir) -> Option<Vec<u8>> {
        let store = Store::open(&store_path(dir)).expect("store");
        store
            .snapshot()
            .expect("snapshot")
            .get(tables::META, meta_keys::FORMAT_VERSION)
            .expect("get")
    }

    /// Writes `value` as the `format_version` of a store, without the engine.
    fn put_version(dir: &tempfile::TempDir, value: &[u8]) {
        let store = Store::open(&store_path(dir)).expect("store");
        store
            .write_now(|w| w.put(tables::META, meta_keys::FORMAT_VERSION, value))
            .expect("write")
            .expect("put");
    }

    fn open(dir: &tempfile::TempDir) -> Result<Arc<Engine>, MongoError> {
        Engine::open(EngineOptions::new(dir.path()))
    }

    #[test]
    fn a_new_store_records_the_format_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        open(&dir).expect("open").close();
        assert_eq!(
            stored_version(&dir),
            Some(FORMAT_VERSION.to_be_bytes().to_vec())
        );
        // And opens again.
        open(&dir).expect("reopen").close();
    }

    #[test]
    fn a_store_without_the_key_is_taken_as_today_s_format() {
        // Every build so far wrote the key on its first open, so a store without it
        // holds nothing older: it is adopted as version 1 and the key is written.
        let dir = tempfile::tempdir().expect("tempdir");
        drop(Store::open(&store_path(&dir)).expect("an empty store"));
        assert_eq!(stored_version(&dir), None);
        open(&dir).expect("open").close();
        assert_eq!(stored_version(&dir), Some(1i64.to_be_bytes().to_vec()));
    }

    #[test]
    fn a_newer_format_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        open(&dir).expect("open").close();
        put_version(&dir, &(FORMAT_VERSION + 1).to_be_bytes());
        let e = open(&dir).expect_err("a newer format must be refused");
        assert_eq!(e.code, ErrorCode::UnsupportedFormat.code());
        assert!(
            e.message.contains(&format!(
                "format version {}; this eddy reads version {FORMAT_VERSION}",
                FORMAT_VERSION + 1
            )),
            "{}",
            e.message
        );
        // Refusing leaves the store as it was.
        assert_eq!(
            stored_version(&dir),
            Some((FORMAT_VERSION + 1).to_be_bytes().to_vec())
        );
    }

    #[test]
    fn an_older_or_unreadable_version_is_refused() {
        for value in [0i64.to_be_bytes().to_vec(), vec![1, 2, 3]] {
            let dir = tempfile::tempdir().expect("tempdir");
            put_version(&dir, &value);
            let e = open(&dir).expect_err("refused");
            assert_eq!(e.code, ErrorCode::UnsupportedFormat.code());
            assert!(e.message.contains("format version 0"), "{}", e.message);
        }
    }
}
