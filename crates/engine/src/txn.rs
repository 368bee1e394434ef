//! Multi-document transactions.
//!
//! A [`Transaction`] is a read snapshot plus an [`Overlay`] of its own writes. Its
//! statements run the ordinary write path (`write::Tx`) against the overlay instead of
//! the group commit's batch, so every check (unique indexes, validators, `_id`) and
//! every index entry is computed exactly as for a write outside a transaction; their
//! oplog entries are kept aside without a time. Reads inside the transaction read the
//! overlay: the snapshot and the transaction's own writes.
//!
//! How the server runs a statement in a transaction: it moves the transaction into
//! [`Transaction::scope`] on the blocking thread that runs the command; while the
//! scope lasts, the engine's write methods ([`Engine::insert`], `update`, ...) and its
//! readers ([`Engine::reader`], `exec::open_reader`) on that thread act on the
//! transaction, so no command needs a second code path.
//!
//! Write conflicts, as mongod's: after each statement, every key it wrote for the
//! first time is *claimed* in the engine's claim table. A key claimed by another live
//! transaction, or changed by a commit after this transaction's snapshot, is a 112
//! WriteConflict for the statement (the later writer fails, at its write).
//!
//! Commit ([`Transaction::commit`]) is one job of the group commit: it checks, against
//! the current state in the batch, that no key the transaction wrote changed since its
//! snapshot (a write outside any transaction does not wait for claims, so this is what
//! keeps it from being lost), replays the writes, and writes the oplog entries at
//! `n` consecutive ticks of one second (operation `i` at the commit time + `i`), each
//! carrying the session's `lsid`, the `txnNumber` and its `txnOpIndex`. They are
//! durable together with the writes, in one fsync, and published to the change hub only
//! after it, as every write's entries: no stream ever sees part of a transaction, nor
//! anything of one that aborted (an aborted transaction is dropped, and only ever
//! existed in memory). Claims are released once the commit's fate is known.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bson::{RawDocumentBuf, Timestamp};
use eddy_codes::{labels, ErrorCode, MongoError};
use eddy_storage::{KvRead, KvWrite, Overlay, Snapshot, StorageError, WriteBatch};

use crate::changes::Logged;
use crate::oplog::SharedEntry;
use crate::read::Reader;
use crate::write::Tx;
use crate::{meta_keys, storage_err, tables, Engine};

/// A key of a table.
type Key = (String, Vec<u8>);

/// Which live transaction wrote which keys.
#[derive(Debug, Default)]
pub(crate) struct Claims {
    owners: Mutex<HashMap<Key, u64>>,
    next_id: AtomicU64,
}

impl Claims {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, u64>> {
        self.owners.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// mongod's error for a write that conflicts with another transaction's.
pub fn write_conflict() -> MongoError {
    MongoError::new(
        ErrorCode::WriteConflict,
        "Write conflict during plan execution and yielding is disabled. :: Please retry your operation or multi-document transaction.",
    )
    .with_label(labels::TRANSIENT_TRANSACTION_ERROR)
}

/// An open transaction: its snapshot, its writes, its pending oplog entries.
pub struct Transaction {
    id: u64,
    view: Overlay<Snapshot>,
    /// Logged so far, with a placeholder time.
    entries: Vec<SharedEntry>,
    /// The keys this transaction claimed.
    claimed: HashSet<Key>,
    claims: Arc<Claims>,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("id", &self.id)
            .field("operations", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if self.claimed.is_empty() {
            return;
        }
        let mut owners = self.claims.lock();
        for key in self.claimed.drain() {
            if owners.get(&key) == Some(&self.id) {
                owners.remove(&key);
            }
        }
    }
}

thread_local! {
    /// The transaction a statement runs in on this thread (see [`Transaction::scope`]).
    static CURRENT: RefCell<Option<Transaction>> = const { RefCell::new(None) };
}

/// Whether a statement on this thread runs in a transaction.
pub fn in_scope() -> bool {
    CURRENT.with(|c| c.borrow().is_some())
}

/// Runs `f` on the current thread's transaction, if a scope installed one.
pub(crate) fn with_current<R>(f: impl FnOnce(&mut Transaction) -> R) -> Option<R> {
    // Taken out for the call, so that `f` may itself call into the engine.
    let mut txn = CURRENT.with(|c| c.borrow_mut().take())?;
    let out = f(&mut txn);
    CURRENT.with(|c| *c.borrow_mut() = Some(txn));
    Some(out)
}

impl Engine {
    /// Starts a transaction reading the newest commit, or, with `at`, the state at
    /// that cluster time (`readConcern: {level: "snapshot", atClusterTime}`); the
    /// transaction's read time.
    pub fn begin_transaction(
        &self,
        at: Option<Timestamp>,
    ) -> Result<(Transaction, Timestamp), MongoError> {
        let (reader, ts) = match at {
            Some(at) => self.snapshot_reader(Some(at))?,
            None => {
                let snap = self.store.snapshot().map_err(storage_err)?;
                (Reader::new(snap), self.last_op_time())
            }
        };
        let snap = reader
            .into_snapshot()
            .ok_or_else(|| MongoError::internal("a transaction cannot start inside another"))?;
        Ok((
            Transaction {
                id: self.claims.next_id.fetch_add(1, Ordering::Relaxed),
                view: Overlay::new(snap),
                entries: Vec::new(),
                claimed: HashSet::new(),
                claims: Arc::clone(&self.claims),
            },
            ts,
        ))
    }

    /// The reader of a statement: the current transaction's view inside a
    /// [`Transaction::scope`], else a fresh snapshot.
    pub(crate) fn transaction_reader(&self) -> Option<Reader> {
        with_current(|txn| Reader::of_transaction(txn.view.clone()))
    }

    /// Runs a write statement inside the current transaction (see [`in_scope`]).
    pub(crate) fn run_in_current<R>(
        &self,
        f: impl FnOnce(&mut Tx<'_, '_>) -> Result<R, MongoError>,
    ) -> Result<R, MongoError> {
        with_current(|txn| txn.run(self, f))
            .unwrap_or_else(|| Err(MongoError::internal("no transaction in this scope")))
    }
}

impl Transaction {
    /// Runs `f` with this transaction as the current thread's (see the module doc),
    /// then hands the transaction back.
    pub fn scope<R>(self, f: impl FnOnce() -> R) -> (R, Transaction) {
        let previous = CURRENT.with(|c| c.borrow_mut().replace(self));
        let out = f();
        let txn = CURRENT
            .with(|c| std::mem::replace(&mut *c.borrow_mut(), previous))
            .expect("the scope's transaction is put back after every use");
        (out, txn)
    }

    /// How many operations (change events) the transaction has logged.
    pub fn operations(&self) -> usize {
        self.entries.len()
    }

    /// Whether the transaction wrote anything.
    pub fn is_read_only(&self) -> bool {
        self.entries.is_empty() && self.view.changes().is_empty()
    }

    fn run<R>(
        &mut self,
        engine: &Engine,
        f: impl FnOnce(&mut Tx<'_, '_>) -> Result<R, MongoError>,
    ) -> Result<R, MongoError> {
        let base = self.view.base().clone();
        let mut tx = Tx::new(&mut self.view, engine, Some(&base));
        let result = f(&mut tx);
        let entries = tx.take_entries();
        drop(tx);
        self.entries.extend(entries);
        self.claim(engine)?;
        result
    }

    /// Claims the keys written since the last statement: 112 when another live
    /// transaction holds one, or a commit changed it after this snapshot.
    fn claim(&mut self, engine: &Engine) -> Result<(), MongoError> {
        let new: Vec<Key> = self
            .view
            .changes()
            .writes()
            .filter(|(t, _, _)| *t != tables::META)
            .filter(|(t, k, _)| !self.claimed.contains(&(t.to_string(), k.to_vec())))
            .map(|(t, k, _)| (t.to_owned(), k.to_vec()))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let latest = engine.store.snapshot().map_err(storage_err)?;
        let mut owners = self.claims.lock();
        for key in &new {
            if owners.get(key).is_some_and(|owner| *owner != self.id) {
                return Err(write_conflict());
            }
        }
        for (t, k) in &new {
            let now = latest.get(t, k).map_err(storage_err)?;
            let then = self.view.base().get(t, k).map_err(storage_err)?;
            if now != then {
                return Err(write_conflict());
            }
        }
        for key in new {
            owners.insert(key.clone(), self.id);
            self.claimed.insert(key);
        }
        Ok(())
    }

    /// Commits: the writes and their oplog entries in one durable group commit. Returns
    /// the commit's cluster time (`None` for a transaction that wrote nothing). `lsid`
    /// is the session's `{id, uid}`, logged with every operation.
    pub fn commit(
        self,
        engine: &Arc<Engine>,
        lsid: RawDocumentBuf,
        txn_number: i64,
    ) -> Result<Option<Timestamp>, MongoError> {
        if self.is_read_only() {
            return Ok(None);
        }
        let (reply_tx, reply_rx) =
            std::sync::mpsc::sync_channel::<Result<Option<Timestamp>, MongoError>>(1);
        let job_engine = Arc::clone(engine);
        engine.submit(Box::new(
            move |batch: Result<&mut WriteBatch<'_>, StorageError>| {
                let engine = job_engine;
                let applied = match batch {
                    Ok(batch) => self.apply(&engine, batch, &lsid, txn_number),
                    Err(e) => Err(storage_err(e)),
                };
                Box::new(move |outcome: Result<(), StorageError>| {
                    // The transaction (and its claims) lives until its fate is known.
                    let txn = self;
                    match (outcome, applied) {
                        (Ok(()), Ok(entries)) => {
                            let commit = entries.first().map(|e| e.ts);
                            if let Some(last) = entries.last() {
                                engine.clock.set_committed(last.ts);
                            }
                            engine.hub().append(&entries);
                            drop(txn);
                            let _ = reply_tx.send(Ok(commit));
                            engine.hub().wake(&entries);
                        }
                        (Ok(()), Err(e)) => {
                            drop(txn);
                            let _ = reply_tx.send(Err(e));
                        }
                        (Err(e), _) => {
                            drop(txn);
                            let _ = reply_tx.send(Err(storage_err(e)));
                        }
                    }
                })
            },
        ))?;
        reply_rx
            .recv()
            .map_err(|_| MongoError::new(ErrorCode::ShutdownInProgress, "the committer stopped"))?
    }

    /// The commit job's work inside the group's write transaction: the entries it
    /// logged, stamped. A conflict leaves the batch untouched.
    fn apply(
        &self,
        engine: &Engine,
        w: &mut WriteBatch<'_>,
        lsid: &RawDocumentBuf,
        txn_number: i64,
    ) -> Result<Vec<SharedEntry>, MongoError> {
        let changes = self.view.changes();
        for (t, k, _) in changes.writes() {
            if t == tables::META {
                continue;
            }
            let now = w.get(t, k).map_err(storage_err)?;
            let then = self.view.base().get(t, k).map_err(storage_err)?;
            if now != then {
                return Err(write_conflict());
            }
        }
        changes.apply(w).map_err(storage_err)?;
        // Ids the transaction took (new collections, indexes) came from the shared
        // counter, which only grows: store its value, not the snapshot's view of it.
        let next_id = engine.next_id.load(Ordering::Relaxed);
        KvWrite::put(w, tables::META, meta_keys::NEXT_ID, &next_id.to_be_bytes())
            .map_err(storage_err)?;
        let n = u32::try_from(self.entries.len())
            .map_err(|_| MongoError::internal("too many operations in one transaction"))?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let first = engine.clock.tick_many(n);
        let mut out = Vec::with_capacity(self.entries.len());
        for (i, entry) in self.entries.iter().enumerate() {
            let ts = Timestamp {
                time: first.time,
                increment: first.increment + i as u32,
            };
            let stamped = entry.restamp(ts, lsid, txn_number, i as u32)?;
            KvWrite::put(w, tables::OPLOG, &stamped.key(), stamped.bytes()).map_err(storage_err)?;
            engine
                .oplog_bytes
                .fetch_add((stamped.bytes().len() + 8) as u64, Ordering::Relaxed);
            out.push(Arc::new(Logged::new(stamped)));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EngineOptions, Namespace};
    use bson::doc;

    fn engine() -> (tempfile::TempDir, Arc<Engine>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(EngineOptions::new(dir.path())).expect("open");
        (dir, engine)
    }

    fn lsid() -> RawDocumentBuf {
        RawDocumentBuf::try_from(&doc! {"id": 1}).expect("lsid")
    }

    fn count(engine: &Arc<Engine>, ns: &Namespace) -> usize {
        let reader = engine.reader().expect("reader");
        match reader.collection(ns).expect("catalog") {
            Some(meta) => reader.scan(&meta).expect("scan").count(),
            None => 0,
        }
    }

    #[test]
    fn writes_are_invisible_until_commit_and_then_all_there() {
        let (_dir, engine) = engine();
        let ns = Namespace::new("db", "c");
        engine
            .insert(ns.clone(), vec![doc! {"_id": 0}], true)
            .expect("insert");
        let (txn, _) = engine.begin_transaction(None).expect("begin");
        let (seen, txn) = txn.scope(|| {
            let e = &engine;
            e.insert(ns.clone(), vec![doc! {"_id": 1}, doc! {"_id": 2}], true)
                .expect("insert in txn");
            count(e, &ns)
        });
        assert_eq!(seen, 3, "the transaction reads its own writes");
        assert_eq!(count(&engine, &ns), 1, "nobody else does");
        assert_eq!(txn.operations(), 2);
        let before = engine.last_op_time();
        let ts = txn
            .commit(&engine, lsid(), 7)
            .expect("commit")
            .expect("a time");
        assert_eq!(count(&engine, &ns), 3);
        let entries = engine
            .read_oplog(before, 10)
            .expect("oplog")
            .into_iter()
            .collect::<Vec<_>>();
        assert_eq!(entries.len(), 2);
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(e.cluster_time(), ts);
            let (_, n, index) = e.transaction().expect("transaction fields");
            assert_eq!((n, index), (7, i as u32));
        }
    }

    #[test]
    fn the_later_writer_of_a_document_conflicts() {
        let (_dir, engine) = engine();
        let ns = Namespace::new("db", "c");
        engine
            .insert(ns.clone(), vec![doc! {"_id": 1, "n": 0}], true)
            .expect("insert");
        let update = |n: i32| crate::UpdateOp {
            filter: doc! {"_id": 1},
            update: bson::Bson::Document(doc! {"$set": {"n": n}}),
            ..Default::default()
        };
        let (a, _) = engine.begin_transaction(None).expect("begin");
        let (b, _) = engine.begin_transaction(None).expect("begin");
        let (r, a) = a.scope(|| engine.update(ns.clone(), vec![update(1)], true));
        r.expect("first writer");
        let (r, b) = b.scope(|| engine.update(ns.clone(), vec![update(2)], true));
        let err = r.expect_err("second writer conflicts");
        assert_eq!(err.code, ErrorCode::WriteConflict.code());
        assert!(err
            .labels
            .iter()
            .any(|l| l == labels::TRANSIENT_TRANSACTION_ERROR));
        drop(b);
        a.commit(&engine, lsid(), 1).expect("commit");
        // A transaction that started before that commit cannot write the document.
        let (c, _) = engine.begin_transaction(None).expect("begin");
        let (d, _) = engine.begin_transaction(None).expect("begin");
        let (r, c) = c.scope(|| engine.update(ns.clone(), vec![update(3)], true));
        r.expect("c writes");
        c.commit(&engine, lsid(), 2).expect("commit");
        let (r, _d) = d.scope(|| engine.update(ns.clone(), vec![update(4)], true));
        assert_eq!(r.expect_err("stale").code, ErrorCode::WriteConflict.code());
    }

    #[test]
    fn a_write_outside_transactions_wins_and_the_commit_conflicts() {
        let (_dir, engine) = engine();
        let ns = Namespace::new("db", "c");
        engine
            .insert(ns.clone(), vec![doc! {"_id": 1}], true)
            .expect("insert");
        let (txn, _) = engine.begin_transaction(None).expect("begin");
        let (r, txn) = txn.scope(|| {
            engine.delete(
                ns.clone(),
                vec![crate::DeleteOp {
                    filter: doc! {"_id": 1},
                    ..Default::default()
                }],
                true,
            )
        });
        r.expect("delete in txn");
        engine
            .update(
                ns.clone(),
                vec![crate::UpdateOp {
                    filter: doc! {"_id": 1},
                    update: bson::Bson::Document(doc! {"$set": {"x": 1}}),
                    ..Default::default()
                }],
                true,
            )
            .expect("plain update");
        let err = txn.commit(&engine, lsid(), 1).expect_err("conflict");
        assert_eq!(err.code, ErrorCode::WriteConflict.code());
        assert_eq!(count(&engine, &ns), 1);
    }
}
