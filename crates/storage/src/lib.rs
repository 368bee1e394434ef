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
//!
//! Invariants:
//! - A completion runs after its job's writes are durable, or with the error that
//!   prevented it; never before.
//! - After a failed commit the store refuses every later write (fail-stop): a failed
//!   fsync may have left the file's durable state unknown, and acknowledging anything
//!   after it could acknowledge what is lost. Reads keep working on the last commit.
//!
//! The engine above decides what the tables and keys mean; this crate only stores bytes.

mod backend;
mod committer;
mod overlay;

use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

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
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the database file at `path`.
    pub fn open(path: &Path) -> Result<Arc<Store>> {
        Self::open_with_faults(path, FaultInjector::new())
    }

    /// Opens (or creates) the database file at `path`, with its I/O going through
    /// `faults` so that tests can make it fail.
    pub fn open_with_faults(path: &Path, faults: Arc<FaultInjector>) -> Result<Arc<Store>> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| StorageError::Open(format!("{}: {e}", path.display())))?;
        let backend =
            FaultyBackend::new(file, faults).map_err(|e| StorageError::Open(e.to_string()))?;
        Self::open_with_backend(backend)
    }

    /// Opens the database through a custom backend.
    pub fn open_with_backend(backend: impl StorageBackend) -> Result<Arc<Store>> {
        let db = Database::builder()
            .create_with_backend(backend)
            .map_err(|e| StorageError::Open(e.to_string()))?;
        Ok(Self::from_db(db))
    }

    fn from_db(db: Database) -> Arc<Store> {
        Arc::new(Store {
            db,
            failed: Mutex::new(None),
        })
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
            *failed = Some(reason);
        }
    }

    /// Runs `f` in one durable write transaction outside the committer. Used at start-up
    /// (format version, recovery) before the committer runs.
    pub fn write_now<R>(&self, f: impl FnOnce(&mut WriteBatch<'_>) -> R) -> Result<R> {
        if let Some(reason) = self.failure() {
            return Err(StorageError::Failed(reason));
        }
        let txn = self.db.begin_write().map_err(io)?;
        let mut batch = WriteBatch {
            txn: &txn,
            poisoned: None,
        };
        let out = f(&mut batch);
        if let Some(err) = batch.poisoned.take() {
            let _ = txn.abort();
            return Err(err);
        }
        txn.commit().map_err(|e| {
            let reason = e.to_string();
            self.set_failed(reason.clone());
            StorageError::Commit(reason)
        })?;
        Ok(out)
    }
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
}

impl WriteBatch<'_> {
    fn poison(&mut self, e: StorageError) -> StorageError {
        if self.poisoned.is_none() {
            self.poisoned = Some(e.clone());
        }
        e
    }

    /// Stores `value` under `key`, replacing what was there.
    pub fn put(&mut self, name: &str, key: &[u8], value: &[u8]) -> Result<()> {
        let res = (|| {
            let mut t = self.txn.open_table(table(name)).map_err(io)?;
            t.insert(key, value).map_err(io)?;
            Ok(())
        })();
        res.map_err(|e| self.poison(e))
    }

    /// Removes `key`; whether it was there.
    pub fn delete(&mut self, name: &str, key: &[u8]) -> Result<bool> {
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
