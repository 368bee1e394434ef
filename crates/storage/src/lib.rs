//! Eddy's embedded storage: redb behind a small byte-oriented interface, with our own
//! group commit.
//!
//! Layout:
//! - [`Store`] opens the database file (through a [`StorageBackend`] seam, so tests can
//!   inject I/O failures) and hands out read [`Snapshot`]s and the single [`WriteBatch`].
//! - [`KvRead`] is the read interface shared by snapshots and the write batch, so engine
//!   code that looks things up (indexes, the catalog) runs the same way inside a write.
//! - [`Committer`] is the group-commit thread: writers submit [`Job`]s; the committer runs
//!   every job queued at that moment inside one write transaction, makes it durable with
//!   one fsync, and only then runs each job's completion (in submission order).
//! - The journal (`journal.rs`) is how a group is made durable: its writes are appended to
//!   a file and synced, and redb commits the group without a sync. About once a second a
//!   group is a *checkpoint*: a durable redb commit that records how far the journal is
//!   applied, whose fsync the syncer thread pays (`backend.rs`) while groups go on. At
//!   start-up the records after the last checkpoint are applied again.
//!
//! Invariants:
//! - A completion runs after its job's writes are durable, or with the error that
//!   prevented it; never before.
//! - After a failed commit the store refuses every later write (fail-stop): a failed
//!   fsync may have left the file's durable state unknown, and acknowledging anything
//!   after it could acknowledge what is lost. Reads keep working on the last commit.
//! - A group is visible to readers only once its journal record is synced: nothing
//!   anyone reads (a change event above all) can be lost by a crash.
//! - Every write goes through [`WriteBatch`], which logs it for the journal, so replaying
//!   the records from a checkpoint's state rebuilds exactly the state that was acknowledged.
//!
//! The engine above decides what the tables and keys mean; this crate only stores bytes.

mod backend;
mod committer;
mod journal;
mod overlay;

use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};

use backend::SyncGate;
use journal::Journal;

pub use backend::{FaultInjector, FaultyBackend};
pub use committer::{Committer, CommitterStats, Completion, Job};
pub use overlay::{Changes, Overlay};
pub use redb::StorageBackend;

/// A storage failure.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The database file could not be opened or created.
    #[error("cannot open the database: {0}")]
    Open(String),
    /// A read or write inside a transaction failed.
    #[error("storage error: {0}")]
    Io(String),
    /// Making a transaction durable failed; the store now refuses writes.
    #[error("commit failed, writes are refused until restart: {0}")]
    Commit(String),
    /// An earlier commit failed; writes are refused until the server restarts.
    #[error("the store refuses writes after an earlier failure: {0}")]
    Failed(String),
    /// The committer has shut down.
    #[error("the store is closed")]
    Closed,
}

type Result<T, E = StorageError> = std::result::Result<T, E>;

fn io(e: impl std::fmt::Display) -> StorageError {
    StorageError::Io(e.to_string())
}

fn table(name: &str) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
    TableDefinition::new(name)
}

/// A key-value pair read from a table.
pub type Entry = (Vec<u8>, Vec<u8>);

/// A boxed iterator over a key range.
pub type EntryIter<'a> = Box<dyn Iterator<Item = Result<Entry>> + 'a>;

/// Reads shared by a read snapshot and the write batch.
pub trait KvRead {
    /// The value under `key` in `table` (a missing table reads as empty).
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// The entries of `table` within the bounds, in key order (or reversed).
    fn scan(
        &self,
        table: &str,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        reverse: bool,
    ) -> Result<EntryIter<'_>>;
    /// How many entries `table` holds.
    fn len(&self, table: &str) -> Result<u64>;

    /// Whether `table` is empty.
    fn is_empty(&self, table: &str) -> Result<bool> {
        Ok(self.len(table)? == 0)
    }

    /// Every entry of `table`, in key order (or reversed).
    fn scan_all(&self, table: &str, reverse: bool) -> Result<EntryIter<'_>> {
        self.scan(table, Bound::Unbounded, Bound::Unbounded, reverse)
    }

    /// The last entry of `table`.
    fn last(&self, table: &str) -> Result<Option<Entry>> {
        self.scan_all(table, true)?.next().transpose()
    }

    /// The first entry of `table`.
    fn first(&self, table: &str) -> Result<Option<Entry>> {
        self.scan_all(table, false)?.next().transpose()
    }
}

/// Writes, shared by the group commit's [`WriteBatch`] and a transaction's
/// [`Overlay`], so the engine's write path runs the same way on either.
pub trait KvWrite: KvRead {
    /// Stores `value` under `key`, replacing what was there.
    fn put(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<()>;
    /// Removes `key`; whether it was there.
    fn delete(&mut self, table: &str, key: &[u8]) -> Result<bool>;
    /// Removes at most `limit` entries within the bounds; how many were removed.
    fn delete_range(
        &mut self,
        table: &str,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        limit: usize,
    ) -> Result<usize>;
    /// Drops a whole table; whether it existed.
    fn delete_table(&mut self, table: &str) -> Result<bool>;
}

/// The bounds covering every key that starts with `prefix`.
pub fn prefix_bounds(prefix: &[u8]) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let start = Bound::Included(prefix.to_vec());
    let mut end = prefix.to_vec();
    // The smallest key greater than every key with this prefix: increment the last
    // byte that is not 0xFF and cut after it.
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return (start, Bound::Excluded(end));
        }
    }
    (start, Bound::Unbounded)
}

/// The embedded database.
pub struct Store {
    db: Database,
    /// Set when a commit failed: the reason, reported to every later writer.
    failed: Mutex<Option<String>>,
    /// How groups are made durable, unless each redb commit syncs (the bench's reference).
    journal: Option<Mutex<Journal>>,
    /// The database file's fsyncs (only a journaled store defers one); sealed when the
    /// store fails.
    gate: Arc<SyncGate>,
    /// Checkpoints taken since the store opened.
    checkpoints: AtomicU64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the database file at `path` and its journal beside it,
    /// applying what the journal holds after the last checkpoint.
    pub fn open(path: &Path) -> Result<Arc<Store>> {
        Self::open_with_faults(path, FaultInjector::new())
    }

    /// [`Store::open`], with the I/O of the database file and the journal going through
    /// `faults` so that tests can make it fail.
    pub fn open_with_faults(path: &Path, faults: Arc<FaultInjector>) -> Result<Arc<Store>> {
        let backend = Self::backend(path, faults.clone())?;
        let gate = backend.gate();
        let db = Self::database(backend)?;
        let open_err = |e: std::io::Error| StorageError::Open(format!("{}: {e}", path.display()));
        let files = Journal::open_files(path).map_err(open_err)?;
        let (epoch, applied) = Self::position(&db)?;
        let records = Journal::read(&files, epoch, applied).map_err(open_err)?;
        // The next epoch: any number but the last one (time and pid are enough).
        let next_epoch = {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            let e = nanos ^ (u64::from(std::process::id()) << 32);
            if e == epoch || e == 0 {
                e.wrapping_add(1).max(1)
            } else {
                e
            }
        };
        let last = records.last().map_or(applied, |r| r.seq);
        let txn = db.begin_write().map_err(io)?;
        let mut batch = WriteBatch::new(&txn, false);
        for r in &records {
            journal::apply(&r.payload, &mut batch)?;
        }
        drop(batch);
        put_position(&txn, (next_epoch, last))?;
        txn.commit()
            .map_err(|e| StorageError::Open(e.to_string()))?;
        if !records.is_empty() {
            tracing::info!(
                records = records.len(),
                through = last,
                "applied the journal after the last checkpoint"
            );
        }
        let store = Arc::new(Store {
            db,
            failed: Mutex::new(None),
            journal: Some(Mutex::new(
                Journal::new(files, next_epoch, last, faults).map_err(open_err)?,
            )),
            gate: gate.clone(),
            checkpoints: AtomicU64::new(0),
        });
        let weak: Weak<Store> = Arc::downgrade(&store);
        std::thread::Builder::new()
            .name("eddy-syncer".into())
            .spawn(move || {
                gate.run_syncer(|reason| {
                    if let Some(store) = weak.upgrade() {
                        store.set_failed(reason);
                    }
                })
            })
            .map_err(|e| StorageError::Open(format!("spawning the syncer thread: {e}")))?;
        Ok(store)
    }

    /// Opens the database file at `path` without a journal: every group's redb commit
    /// syncs the file itself. `eddy bench insert` measures this as redb's own rate.
    pub fn open_unjournaled(path: &Path) -> Result<Arc<Store>> {
        let backend = Self::backend(path, FaultInjector::new())?;
        let gate = backend.gate();
        Ok(Arc::new(Store {
            db: Self::database(backend)?,
            failed: Mutex::new(None),
            journal: None,
            gate,
            checkpoints: AtomicU64::new(0),
        }))
    }

    fn backend(path: &Path, faults: Arc<FaultInjector>) -> Result<FaultyBackend> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| StorageError::Open(format!("{}: {e}", path.display())))?;
        FaultyBackend::new(file, faults).map_err(|e| StorageError::Open(e.to_string()))
    }

    fn database(backend: FaultyBackend) -> Result<Database> {
        Database::builder()
            .create_with_backend(backend)
            .map_err(|e| StorageError::Open(e.to_string()))
    }

    /// The journal's epoch and the last `seq` the durable state holds (0, 0 if none).
    fn position(db: &Database) -> Result<(u64, u64)> {
        let txn = db.begin_read().map_err(io)?;
        let t = match txn.open_table(table(journal::TABLE)) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok((0, 0)),
            Err(e) => return Err(io(e)),
        };
        let Some(v) = t.get(journal::POSITION).map_err(io)? else {
            return Ok((0, 0));
        };
        let v = v.value();
        let word = |i: usize| {
            v.get(i..i + 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_le_bytes)
                .ok_or_else(|| StorageError::Open("a malformed journal position".into()))
        };
        Ok((word(0)?, word(8)?))
    }

    /// A consistent read snapshot of the last commit. It never blocks the writer.
    pub fn snapshot(&self) -> Result<Snapshot> {
        let txn = self.db.begin_read().map_err(io)?;
        Ok(Snapshot { txn: Arc::new(txn) })
    }

    /// Why writes are refused, if an earlier commit failed.
    pub fn failure(&self) -> Option<String> {
        self.failed
            .lock()
            .map(|f| f.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn set_failed(&self, reason: String) {
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        if failed.is_none() {
            tracing::error!(%reason, "commit failed; refusing writes until restart");
            self.gate.fail(&reason);
            *failed = Some(reason);
        }
    }

    /// A batch over `txn`, logging its writes if the store has a journal.
    fn batch<'t>(&self, txn: &'t redb::WriteTransaction) -> WriteBatch<'t> {
        WriteBatch::new(txn, self.journal.is_some())
    }

    /// Commits a group's transaction: its journal record synced, then redb's commit
    /// without a sync (or, when a checkpoint is overdue, with one the syncer pays).
    /// Without a journal, redb's commit syncs. Fails the store if the group's durability
    /// is unknown.
    fn commit(&self, mut txn: redb::WriteTransaction, log: Option<Vec<u8>>) -> Result<()> {
        let Some(journal) = &self.journal else {
            return txn.commit().map_err(|e| self.commit_failed(&e));
        };
        let mut journal = journal.lock().unwrap_or_else(|p| p.into_inner());
        let checkpoint = journal.checkpoint_overdue();
        if let Err(e) = journal.append(log.as_deref().unwrap_or_default()) {
            let _ = txn.abort();
            return Err(self.commit_failed(&format!("journal: {e}")));
        }
        if checkpoint {
            self.commit_checkpoint(txn, &mut journal)
        } else {
            txn.set_durability(Durability::None)
                .map_err(|e| self.commit_failed(&e))?;
            txn.commit().map_err(|e| self.commit_failed(&e))
        }
    }

    /// How long the committer may wait for work before it should take a checkpoint
    /// (`None`: nothing to checkpoint).
    pub(crate) fn until_checkpoint(&self) -> Option<std::time::Duration> {
        let journal = self.journal.as_ref()?;
        if self.failure().is_some() {
            return None;
        }
        journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .until_checkpoint()
    }

    /// A checkpoint of its own (the committer, idle): a transaction that only records how
    /// far the journal is applied, committed durably with the sync left to the syncer.
    pub(crate) fn idle_checkpoint(&self) -> Result<()> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        if let Some(reason) = self.failure() {
            return Err(StorageError::Failed(reason));
        }
        let txn = self.db.begin_write().map_err(io)?;
        let mut journal = journal.lock().unwrap_or_else(|p| p.into_inner());
        self.commit_checkpoint(txn, &mut journal)
    }

    /// Commits `txn` as a checkpoint through the journal's last record, the file's sync
    /// owed to the syncer; later records go to the other journal file, whose records the
    /// previous checkpoint covers: its sync is paid first, if the syncer has not yet.
    fn commit_checkpoint(&self, txn: redb::WriteTransaction, journal: &mut Journal) -> Result<()> {
        let position = (journal.epoch(), journal.last_seq);
        if let Err(e) = self
            .gate
            .settle()
            .map_err(io)
            .and_then(|()| put_position(&txn, position))
        {
            let _ = txn.abort();
            return Err(self.commit_failed(&e));
        }
        self.gate.defer(true);
        let committed = txn.commit();
        self.gate.defer(false);
        committed.map_err(|e| self.commit_failed(&e))?;
        journal.switch();
        self.checkpoints.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Checkpoints taken since the store opened (durable redb commits whose sync the
    /// syncer pays; see "The journal and checkpoints" in ARCHITECTURE.md).
    pub fn checkpoints(&self) -> u64 {
        self.checkpoints.load(Ordering::Relaxed)
    }

    /// Fails the store for a commit whose outcome is unknown.
    fn commit_failed(&self, e: &dyn std::fmt::Display) -> StorageError {
        let reason = e.to_string();
        self.set_failed(reason.clone());
        StorageError::Commit(reason)
    }

    /// Runs `f` in one durable write transaction outside the committer, synced before it
    /// returns. Used at start-up (format version, recovery) before the committer runs,
    /// and at shutdown.
    pub fn write_now<R>(&self, f: impl FnOnce(&mut WriteBatch<'_>) -> R) -> Result<R> {
        if let Some(reason) = self.failure() {
            return Err(StorageError::Failed(reason));
        }
        let txn = self.db.begin_write().map_err(io)?;
        let mut batch = WriteBatch::new(&txn, false);
        let out = f(&mut batch);
        if let Some(err) = batch.poisoned.take() {
            let _ = txn.abort();
            return Err(err);
        }
        drop(batch);
        if let Some(journal) = &self.journal {
            // A durable commit holds every group before it: the journal is applied up to
            // its last record (the committer cannot be between a record and its commit
            // while this transaction is open).
            let journal = journal.lock().unwrap_or_else(|p| p.into_inner());
            put_position(&txn, (journal.epoch(), journal.last_seq))?;
        }
        txn.commit().map_err(|e| self.commit_failed(&e))?;
        Ok(out)
    }

    /// A checkpoint outside the committer, synced before it returns (at shutdown: the
    /// next start-up then has nothing to apply).
    pub fn checkpoint(&self) -> Result<()> {
        self.write_now(|_| ())
    }

    /// Whether every fsync of the database file asked for so far is paid (tests).
    pub fn is_synced(&self) -> bool {
        self.gate.is_settled()
    }
}

impl Drop for Store {
    /// A last checkpoint, so that redb's own commit when it closes (which would make the
    /// groups durable without recording how far the journal is applied) has nothing to
    /// do; none once the store has failed (the gate then keeps redb off the file).
    fn drop(&mut self) {
        if self.journal.is_some() && self.failure().is_none() {
            if let Err(e) = self.checkpoint() {
                tracing::error!(error = %e, "the last checkpoint failed; the journal keeps every acknowledged write");
            }
        }
        self.gate.close();
    }
}

/// Records in `txn` that the journal of `epoch` is applied through `seq`.
fn put_position(txn: &redb::WriteTransaction, (epoch, seq): (u64, u64)) -> Result<()> {
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&epoch.to_le_bytes());
    v[8..].copy_from_slice(&seq.to_le_bytes());
    let mut t = txn.open_table(table(journal::TABLE)).map_err(io)?;
    t.insert(journal::POSITION, v.as_slice()).map_err(io)?;
    Ok(())
}

/// A read-only, consistent view of the last commit. Clones share one redb read
/// transaction (one MVCC version), so a snapshot can be kept and read again later.
#[derive(Clone)]
pub struct Snapshot {
    txn: Arc<redb::ReadTransaction>,
}

impl KvRead for Snapshot {
    fn get(&self, name: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let t = match self.txn.open_table(table(name)) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        Ok(t.get(key).map_err(io)?.map(|v| v.value().to_vec()))
    }

    fn scan(
        &self,
        name: &str,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        reverse: bool,
    ) -> Result<EntryIter<'_>> {
        let t = match self.txn.open_table(table(name)) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Box::new(std::iter::empty())),
            Err(e) => return Err(io(e)),
        };
        let range = t
            .range::<&[u8]>((as_ref_bound(&start), as_ref_bound(&end)))
            .map_err(io)?;
        let map = |r: std::result::Result<_, redb::StorageError>| {
            r.map(
                |(k, v): (redb::AccessGuard<'_, &[u8]>, redb::AccessGuard<'_, &[u8]>)| {
                    (k.value().to_vec(), v.value().to_vec())
                },
            )
            .map_err(io)
        };
        if reverse {
            Ok(Box::new(range.rev().map(map)))
        } else {
            Ok(Box::new(range.map(map)))
        }
    }

    fn len(&self, name: &str) -> Result<u64> {
        match self.txn.open_table(table(name)) {
            Ok(t) => t.len().map_err(io),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(io(e)),
        }
    }
}

fn as_ref_bound(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// The open write transaction, handed to each [`Job`] in turn. Later jobs see the
/// writes of earlier ones. A storage failure poisons the batch: the whole transaction
/// is then aborted and every job in it is told so.
pub struct WriteBatch<'t> {
    txn: &'t redb::WriteTransaction,
    poisoned: Option<StorageError>,
    /// The writes so far, for the journal (when the store has one).
    log: Option<Vec<u8>>,
}

impl<'t> WriteBatch<'t> {
    fn new(txn: &'t redb::WriteTransaction, logged: bool) -> WriteBatch<'t> {
        WriteBatch {
            txn,
            poisoned: None,
            log: logged.then(Vec::new),
        }
    }

    fn poison(&mut self, e: StorageError) -> StorageError {
        if self.poisoned.is_none() {
            self.poisoned = Some(e.clone());
        }
        e
    }

    /// Stores `value` under `key`, replacing what was there.
    pub fn put(&mut self, name: &str, key: &[u8], value: &[u8]) -> Result<()> {
        if let Some(log) = &mut self.log {
            journal::log_put(log, name, key, value);
        }
        let res = (|| {
            let mut t = self.txn.open_table(table(name)).map_err(io)?;
            t.insert(key, value).map_err(io)?;
            Ok(())
        })();
        res.map_err(|e| self.poison(e))
    }

    /// Removes `key`; whether it was there.
    pub fn delete(&mut self, name: &str, key: &[u8]) -> Result<bool> {
        if let Some(log) = &mut self.log {
            journal::log_delete(log, name, key);
        }
        let res = (|| {
            let mut t = self.txn.open_table(table(name)).map_err(io)?;
            let removed = t.remove(key).map_err(io)?.is_some();
            Ok(removed)
        })();
        res.map_err(|e| self.poison(e))
    }

    /// Removes the entries within the bounds for which `remove` says so, at most
    /// `limit` of them; how many were removed.
    pub fn delete_range(
        &mut self,
        name: &str,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        limit: usize,
    ) -> Result<usize> {
        if let Some(log) = &mut self.log {
            journal::log_delete_range(log, name, &start, &end, limit);
        }
        let res = (|| {
            let mut t = match self.txn.open_table(table(name)) {
                Ok(t) => t,
                Err(e) => return Err(io(e)),
            };
            let mut removed = 0usize;
            t.retain_in::<&[u8], _>((as_ref_bound(&start), as_ref_bound(&end)), |_, _| {
                if removed < limit {
                    removed += 1;
                    false
                } else {
                    true
                }
            })
            .map_err(io)?;
            Ok(removed)
        })();
        res.map_err(|e| self.poison(e))
    }

    /// Drops a whole table; whether it existed.
    pub fn delete_table(&mut self, name: &str) -> Result<bool> {
        if let Some(log) = &mut self.log {
            journal::log_delete_table(log, name);
        }
        let res = self.txn.delete_table(table(name)).map_err(io);
        res.map_err(|e| self.poison(e))
    }
}

impl KvWrite for WriteBatch<'_> {
    fn put(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<()> {
        WriteBatch::put(self, table, key, value)
    }

    fn delete(&mut self, table: &str, key: &[u8]) -> Result<bool> {
        WriteBatch::delete(self, table, key)
    }

    fn delete_range(
        &mut self,
        table: &str,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        limit: usize,
    ) -> Result<usize> {
        WriteBatch::delete_range(self, table, start, end, limit)
    }

    fn delete_table(&mut self, table: &str) -> Result<bool> {
        WriteBatch::delete_table(self, table)
    }
}

impl KvRead for WriteBatch<'_> {
    fn get(&self, name: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        // Opening a table in a write transaction creates it when missing; an empty
        // table reads the same as none, and the engine drops tables it retires.
        let t = self.txn.open_table(table(name)).map_err(io)?;
        let value = t.get(key).map_err(io)?.map(|v| v.value().to_vec());
        Ok(value)
    }

    fn scan(
        &self,
        name: &str,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        reverse: bool,
    ) -> Result<EntryIter<'_>> {
        // A write-transaction table borrows the transaction; collect the range so the
        // table handle can be closed before the next write opens it again.
        let t = self.txn.open_table(table(name)).map_err(io)?;
        let range = t
            .range::<&[u8]>((as_ref_bound(&start), as_ref_bound(&end)))
            .map_err(io)?;
        let mut out = Vec::new();
        let push = |out: &mut Vec<Result<Entry>>, r: std::result::Result<_, redb::StorageError>| {
            out.push(
                r.map(
                    |(k, v): (redb::AccessGuard<'_, &[u8]>, redb::AccessGuard<'_, &[u8]>)| {
                        (k.value().to_vec(), v.value().to_vec())
                    },
                )
                .map_err(io),
            )
        };
        if reverse {
            for r in range.rev() {
                push(&mut out, r);
            }
        } else {
            for r in range {
                push(&mut out, r);
            }
        }
        Ok(Box::new(out.into_iter()))
    }

    fn len(&self, name: &str) -> Result<u64> {
        let t = self.txn.open_table(table(name)).map_err(io)?;
        t.len().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Arc<Store>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db.redb")).expect("open");
        (dir, store)
    }

    /// Submits a job putting `key` in table `t`; waits for its outcome.
    fn put(committer: &Committer, key: u32) -> Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        committer
            .submit(Box::new(
                move |b: Result<&mut WriteBatch<'_>, StorageError>| {
                    let res = b.and_then(|b| b.put("t", &key.to_be_bytes(), b"v"));
                    Box::new(move |outcome: Result<()>| {
                        let _ = tx.send(res.and(outcome));
                    })
                },
            ))
            .expect("submit");
        rx.recv().expect("completion")
    }

    /// The keys of table `t` in redb's durable state alone (the journal not applied).
    fn durable_keys(path: &Path) -> Vec<u32> {
        let db = Database::open(path).expect("redb opens the file");
        let txn = db.begin_read().expect("read");
        let t = match txn.open_table(table("t")) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Vec::new(),
            Err(e) => panic!("{e}"),
        };
        t.iter()
            .expect("iter")
            .map(|e| {
                let (k, _) = e.expect("entry");
                u32::from_be_bytes(k.value().try_into().expect("key"))
            })
            .collect()
    }

    fn keys(store: &Store) -> Vec<u32> {
        store
            .snapshot()
            .expect("snapshot")
            .scan_all("t", false)
            .expect("scan")
            .map(|e| u32::from_be_bytes(e.expect("entry").0.try_into().expect("key")))
            .collect()
    }

    /// Groups acknowledged from their journal records alone (no checkpoint since the
    /// store opened) come back when it opens again after failing, and only the journal
    /// has them; the write that hit the fault may or may not.
    #[test]
    fn acknowledged_groups_come_back_from_the_journal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db.redb");
        let faults = FaultInjector::new();
        let store = Store::open_with_faults(&path, faults.clone()).expect("open");
        let mut committer = Committer::start(store.clone());
        for k in 0..20 {
            put(&committer, k).expect("acknowledged");
        }
        faults
            .fail_sync
            .store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(matches!(put(&committer, 100), Err(StorageError::Commit(_))));
        assert!(matches!(put(&committer, 101), Err(StorageError::Failed(_))));
        committer.shutdown();
        drop(committer);
        drop(store);
        // Failed: no last checkpoint, and redb wrote nothing when it closed.
        assert!(durable_keys(&path).is_empty());
        let store = Store::open(&path).expect("reopen");
        let found = keys(&store);
        let acked: Vec<u32> = (0..20).collect();
        assert!(
            found == acked || found == [acked.clone(), vec![100]].concat(),
            "{found:?}"
        );
        // The replay was made durable, and writes go on.
        let committer = Committer::start(store.clone());
        put(&committer, 200).expect("a write after the replay");
        drop(committer);
        drop(store);
        assert!(durable_keys(&path).ends_with(&[200]));
    }

    /// An idle committer takes a checkpoint a second after the last: redb's own state is
    /// then durable (its sync paid by the syncer), and the groups after it still come
    /// back from the journal.
    #[test]
    fn an_idle_checkpoint_is_durable_and_later_groups_come_from_the_journal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db.redb");
        let faults = FaultInjector::new();
        let store = Store::open_with_faults(&path, faults.clone()).expect("open");
        let mut committer = Committer::start(store.clone());
        put(&committer, 1).expect("acknowledged");
        put(&committer, 2).expect("acknowledged");
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let waited = std::time::Instant::now();
        while !store.is_synced() {
            assert!(
                waited.elapsed().as_secs() < 10,
                "the syncer never paid the sync"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        put(&committer, 3).expect("acknowledged");
        put(&committer, 4).expect("acknowledged");
        faults
            .fail_sync
            .store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(put(&committer, 5).is_err());
        committer.shutdown();
        drop(committer);
        drop(store);
        assert_eq!(durable_keys(&path), vec![1, 2]);
        let store = Store::open(&path).expect("reopen");
        let found = keys(&store);
        assert!(
            found == [1, 2, 3, 4] || found == [1, 2, 3, 4, 5],
            "{found:?}"
        );
    }

    /// A clean close takes a last checkpoint: redb's file alone holds everything.
    #[test]
    fn a_clean_close_leaves_nothing_to_apply() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db.redb");
        let store = Store::open(&path).expect("open");
        let mut committer = Committer::start(store.clone());
        for k in 0..5 {
            put(&committer, k).expect("acknowledged");
        }
        committer.shutdown();
        drop(committer);
        drop(store);
        assert_eq!(durable_keys(&path), vec![0, 1, 2, 3, 4]);
    }

    /// One write of a group, for the replay property.
    #[derive(Debug, Clone)]
    enum W {
        Put(u8, u8, u8),
        Delete(u8, u8),
        DeleteRange(u8, u8, u8, usize),
        DeleteTable(u8),
    }

    fn w() -> impl proptest::strategy::Strategy<Value = W> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (0..3u8, 0..16u8, any::<u8>()).prop_map(|(t, k, v)| W::Put(t, k, v)),
            2 => (0..3u8, 0..16u8).prop_map(|(t, k)| W::Delete(t, k)),
            1 => (0..3u8, 0..16u8, 0..16u8, 0..4usize).prop_map(|(t, a, b, n)| W::DeleteRange(t, a, b, n)),
            1 => (0..3u8).prop_map(W::DeleteTable),
        ]
    }

    type Model = std::collections::BTreeMap<(u8, u8), u8>;

    fn apply_model(model: &mut Model, w: &W) {
        match *w {
            W::Put(t, k, v) => {
                model.insert((t, k), v);
            }
            W::Delete(t, k) => {
                model.remove(&(t, k));
            }
            W::DeleteRange(t, a, b, n) => {
                let doomed: Vec<_> = model
                    .range((t, a)..(t, b.max(a)))
                    .take(n)
                    .map(|(k, _)| *k)
                    .collect();
                for k in doomed {
                    model.remove(&k);
                }
            }
            W::DeleteTable(t) => model.retain(|(mt, _), _| *mt != t),
        }
    }

    fn apply_batch(b: &mut WriteBatch<'_>, w: &W) -> Result<()> {
        let name = |t: u8| format!("t{t}");
        match *w {
            W::Put(t, k, v) => b.put(&name(t), &[k], &[v]),
            W::Delete(t, k) => b.delete(&name(t), &[k]).map(drop),
            W::DeleteRange(t, a, c, n) => b
                .delete_range(
                    &name(t),
                    Bound::Included(vec![a]),
                    Bound::Excluded(vec![c.max(a)]),
                    n,
                )
                .map(drop),
            W::DeleteTable(t) => b.delete_table(&name(t)).map(drop),
        }
    }

    fn contents(store: &Store) -> Model {
        let snap = store.snapshot().expect("snapshot");
        let mut out = Model::new();
        for t in 0..3u8 {
            for e in snap.scan_all(&format!("t{t}"), false).expect("scan") {
                let (k, v) = e.expect("entry");
                out.insert((t, k[0]), v[0]);
            }
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Whatever the groups and wherever the checkpoints fall between them, a store
        /// that fails and opens again holds exactly what the acknowledged groups wrote:
        /// the last checkpoint's state and the journal's records after it, applied once.
        #[test]
        fn a_reopened_store_holds_exactly_the_acknowledged_groups(
            groups in proptest::collection::vec(
                (proptest::collection::vec(w(), 1..6), proptest::bool::weighted(0.2)),
                1..24,
            )
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("db.redb");
            let faults = FaultInjector::new();
            let store = Store::open_with_faults(&path, faults.clone()).expect("open");
            let mut committer = Committer::start(store.clone());
            let mut model = Model::new();
            for (writes, checkpoint_after) in &groups {
                let (tx, rx) = std::sync::mpsc::channel();
                let job_writes = writes.clone();
                committer
                    .submit(Box::new(move |b: Result<&mut WriteBatch<'_>, StorageError>| {
                        let res = b.and_then(|b| job_writes.iter().try_for_each(|w| apply_batch(b, w)));
                        Box::new(move |outcome: Result<()>| {
                            let _ = tx.send(res.and(outcome));
                        })
                    }))
                    .expect("submit");
                rx.recv().expect("completion").expect("acknowledged");
                for w in writes {
                    apply_model(&mut model, w);
                }
                if *checkpoint_after {
                    store.idle_checkpoint().expect("checkpoint");
                }
            }
            proptest::prop_assert_eq!(&contents(&store), &model);
            faults.fail_sync.store(true, std::sync::atomic::Ordering::Relaxed);
            proptest::prop_assert!(put(&committer, 9).is_err());
            committer.shutdown();
            drop(committer);
            drop(store);
            let store = Store::open(&path).expect("reopen");
            // The failed write was a put into table `t`, which the model does not read.
            proptest::prop_assert_eq!(contents(&store), model);
        }
    }

    #[test]
    fn failed_fsync_refuses_later_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let faults = FaultInjector::new();
        let store =
            Store::open_with_faults(&dir.path().join("db.redb"), faults.clone()).expect("open");
        store
            .write_now(|b| b.put("t", b"a", b"1"))
            .expect("commit")
            .expect("put");
        faults
            .fail_sync
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let err = store.write_now(|b| b.put("t", b"b", b"2"));
        assert!(matches!(err, Err(StorageError::Commit(_))), "{err:?}");
        faults
            .fail_sync
            .store(false, std::sync::atomic::Ordering::Relaxed);
        // Even with the disk healthy again, nothing more is acknowledged.
        let err = store.write_now(|b| b.put("t", b"c", b"3"));
        assert!(matches!(err, Err(StorageError::Failed(_))), "{err:?}");
        // Reads still see the last good commit.
        let snap = store.snapshot().expect("snapshot");
        assert_eq!(snap.get("t", b"a").expect("get"), Some(b"1".to_vec()));
    }

    #[test]
    fn write_then_read() {
        let (_dir, store) = store();
        store
            .write_now(|b| {
                b.put("t", b"a", b"1")?;
                b.put("t", b"b", b"2")?;
                b.put("t", b"c", b"3")
            })
            .expect("commit")
            .expect("put");
        let snap = store.snapshot().expect("snapshot");
        assert_eq!(snap.get("t", b"b").expect("get"), Some(b"2".to_vec()));
        assert_eq!(snap.get("missing", b"b").expect("get"), None);
        let keys: Vec<_> = snap
            .scan("t", Bound::Excluded(b"a".to_vec()), Bound::Unbounded, true)
            .expect("scan")
            .map(|e| e.expect("entry").0)
            .collect();
        assert_eq!(keys, vec![b"c".to_vec(), b"b".to_vec()]);
        assert_eq!(
            snap.last("t").expect("last").map(|e| e.0),
            Some(b"c".to_vec())
        );
    }

    #[test]
    fn snapshot_is_isolated_from_later_commits() {
        let (_dir, store) = store();
        store
            .write_now(|b| b.put("t", b"a", b"1"))
            .expect("commit")
            .expect("put");
        let snap = store.snapshot().expect("snapshot");
        store
            .write_now(|b| b.put("t", b"a", b"2"))
            .expect("commit")
            .expect("put");
        assert_eq!(snap.get("t", b"a").expect("get"), Some(b"1".to_vec()));
    }

    #[test]
    fn delete_range_respects_limit() {
        let (_dir, store) = store();
        store
            .write_now(|b| {
                for i in 0u8..10 {
                    b.put("log", &[i], b"x")?;
                }
                Ok::<_, StorageError>(())
            })
            .expect("commit")
            .expect("put");
        let removed = store
            .write_now(|b| b.delete_range("log", Bound::Unbounded, Bound::Excluded(vec![8]), 5))
            .expect("commit")
            .expect("delete");
        assert_eq!(removed, 5);
        let snap = store.snapshot().expect("snapshot");
        assert_eq!(snap.len("log").expect("len"), 5);
        assert_eq!(
            snap.first("log").expect("first").map(|e| e.0),
            Some(vec![5])
        );
    }

    #[test]
    fn prefix_bounds_cover_the_prefix() {
        let (s, e) = prefix_bounds(b"ab");
        assert_eq!(s, Bound::Included(b"ab".to_vec()));
        assert_eq!(e, Bound::Excluded(b"ac".to_vec()));
        let (_, e) = prefix_bounds(&[1, 0xFF]);
        assert_eq!(e, Bound::Excluded(vec![2]));
        let (_, e) = prefix_bounds(&[0xFF]);
        assert_eq!(e, Bound::Unbounded);
    }
}
