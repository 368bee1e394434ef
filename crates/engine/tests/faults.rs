//! Storage faults through the engine's public API: an fsync that fails and a disk that
//! is full, injected with `eddy_storage::FaultInjector` (`EngineOptions.faults`).
//!
//! What must hold, for each fault: the write that hit it is not acknowledged; every later
//! write is refused with an error that says why, even once the disk is healthy again;
//! reads keep working; and a fresh engine on the same files (no faults) holds every write
//! acknowledged before the failure, with its oplog entry, and none of the refused ones.
//! The write that hit the fault itself has an unknown outcome (its journal record may have
//! reached the disk before the fsync failed, or its checkpoint failed after the record was
//! synced), so it may or may not be there after reopening; either way its document and its
//! oplog entry agree. A store that failed takes no last checkpoint, so the reopening
//! applies its journal.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bson::{doc, Bson, Document, Timestamp};
use eddy_codes::{ErrorCode, MongoError};
use eddy_engine::{DeleteOp, Engine, EngineOptions, Namespace, Op, UpdateOp};
use eddy_storage::FaultInjector;

fn ns() -> Namespace {
    Namespace::new("db", "c")
}

fn open(dir: &tempfile::TempDir, faults: Option<Arc<FaultInjector>>) -> Arc<Engine> {
    let mut options = EngineOptions::new(dir.path());
    options.faults = faults;
    Engine::open(options).expect("open engine")
}

fn docs(engine: &Engine) -> Vec<Document> {
    let r = engine.reader().expect("reader");
    match r.collection(&ns()).expect("catalog") {
        Some(meta) => r
            .scan(&meta)
            .expect("scan")
            .map(|d| d.expect("doc"))
            .collect(),
        None => Vec::new(),
    }
}

fn ids(docs: &[Document]) -> BTreeSet<i64> {
    docs.iter()
        .map(|d| match d.get("_id") {
            Some(Bson::Int32(n)) => i64::from(*n),
            Some(Bson::Int64(n)) => *n,
            other => panic!("unexpected _id {other:?}"),
        })
        .collect()
}

/// The `_id`s of the documents inserted according to the oplog, minus those deleted.
fn ids_from_oplog(engine: &Engine) -> BTreeSet<i64> {
    let entries = engine
        .read_oplog(
            Timestamp {
                time: 0,
                increment: 0,
            },
            1_000_000,
        )
        .expect("read oplog");
    let mut out = BTreeSet::new();
    for e in entries.iter().filter(|e| e.ns() == ns()) {
        let id = e
            .op()
            .document_key()
            .and_then(|k| k.get("_id").ok().flatten())
            .and_then(|v| Bson::try_from(v).ok())
            .and_then(|v| v.as_i64_lossy());
        match (e.op(), id) {
            (Op::Insert { .. }, Some(id)) => {
                out.insert(id);
            }
            (Op::Delete { .. }, Some(id)) => {
                out.remove(&id);
            }
            _ => {}
        }
    }
    out
}

trait AsI64Lossy {
    fn as_i64_lossy(&self) -> Option<i64>;
}

impl AsI64Lossy for Bson {
    fn as_i64_lossy(&self) -> Option<i64> {
        match self {
            Bson::Int32(n) => Some(i64::from(*n)),
            Bson::Int64(n) => Some(*n),
            _ => None,
        }
    }
}

fn insert(engine: &Arc<Engine>, id: i64, payload: usize) -> Result<(), MongoError> {
    let out = engine.insert(
        ns(),
        vec![doc! {"_id": id, "pad": "x".repeat(payload)}],
        true,
    )?;
    match out.errors.into_iter().next() {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

/// The error a write gets once the store has failed: a clear message, not a hang or an ack.
fn assert_refused(res: Result<impl std::fmt::Debug, MongoError>, what: &str) {
    let err = res.expect_err(&format!("{what} must be refused after the failure"));
    assert_eq!(err.code, ErrorCode::InternalError.code(), "{what}: {err:?}");
    assert!(
        err.message.contains("refuses writes"),
        "{what}: the error must say writes are refused: {}",
        err.message
    );
}

/// One fault scenario: acknowledged writes, then `arm` and a write that must fail, then
/// (with the disk healthy again) writes that must be refused, reads that must work, and a
/// reopen that must show exactly the acknowledged state.
fn scenario(arm: impl Fn(&FaultInjector), disarm: impl Fn(&FaultInjector), payload: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let faults = FaultInjector::new();
    let engine = open(&dir, Some(faults.clone()));

    // Acknowledged before the failure: ten inserts, an update, a delete.
    for id in 0..10 {
        insert(&engine, id, payload).expect("insert before the fault");
    }
    let upd = engine
        .update(
            ns(),
            vec![UpdateOp {
                filter: doc! {"_id": 0},
                update: Bson::Document(doc! {"$set": {"updated": true}}),
                multi: false,
                upsert: false,
                array_filters: None,
                let_vars: Vec::new(),
                ..Default::default()
            }],
            true,
        )
        .expect("update before the fault");
    assert_eq!(upd.n_modified, 1);
    let del = engine
        .delete(
            ns(),
            vec![DeleteOp {
                filter: doc! {"_id": 9},
                just_one: true,
                let_vars: Vec::new(),
                ..Default::default()
            }],
            true,
        )
        .expect("delete before the fault");
    assert_eq!(del.n, 1);
    let acked: BTreeSet<i64> = (0..9).collect();
    let last_acked = engine.last_op_time();

    // The write that hits the fault is not acknowledged.
    arm(&faults);
    let err = insert(&engine, 100, payload).expect_err("the write hitting the fault must fail");
    assert_eq!(err.code, ErrorCode::InternalError.code(), "{err:?}");
    assert!(
        engine.write_failure().is_some(),
        "the store must be in its failed state after {err:?}"
    );
    assert_eq!(
        engine.last_op_time(),
        last_acked,
        "operationTime must not move past the last durable write"
    );

    // Healthy disk again: still nothing is acknowledged until a restart.
    disarm(&faults);
    assert_refused(insert(&engine, 101, payload), "an insert");
    assert_refused(
        engine.update(
            ns(),
            vec![UpdateOp {
                filter: doc! {"_id": 1},
                update: Bson::Document(doc! {"$set": {"late": true}}),
                multi: false,
                upsert: false,
                array_filters: None,
                let_vars: Vec::new(),
                ..Default::default()
            }],
            true,
        ),
        "an update",
    );
    assert_refused(
        engine.delete(
            ns(),
            vec![DeleteOp {
                filter: doc! {"_id": 2},
                just_one: true,
                let_vars: Vec::new(),
                ..Default::default()
            }],
            true,
        ),
        "a delete",
    );
    assert_refused(
        engine.create_collection(Namespace::new("db", "other"), Document::new()),
        "a create",
    );

    // Reads keep working and show the acknowledged state (the failed write aside).
    let seen = docs(&engine);
    let seen_ids = ids(&seen);
    assert!(
        acked.is_subset(&seen_ids),
        "reads lost acked writes: {seen_ids:?}"
    );
    assert!(!seen_ids.contains(&101));
    assert!(seen.iter().all(|d| !d.contains_key("late")));

    engine.close();
    drop(engine);

    // A fresh engine on the same files, without faults.
    let engine = open(&dir, None);
    let after = docs(&engine);
    let after_ids = ids(&after);
    let extra: BTreeSet<i64> = after_ids.difference(&acked).copied().collect();
    assert!(
        extra.is_empty() || extra == BTreeSet::from([100]),
        "after reopening: only the write that hit the fault may be there besides the acked ones, found {after_ids:?}"
    );
    assert!(
        acked.is_subset(&after_ids),
        "acked writes lost: {after_ids:?}"
    );
    let first = after
        .iter()
        .find(|d| d.get("_id") == Some(&Bson::Int64(0)))
        .expect("document 0");
    assert_eq!(
        first.get_bool("updated").ok(),
        Some(true),
        "the acked update was lost"
    );
    assert!(after.iter().all(|d| !d.contains_key("late")));
    // Every surviving document has its oplog entry, and no entry names a lost document.
    assert_eq!(ids_from_oplog(&engine), after_ids);
    // The clock continues after the newest durable entry, and writes work again.
    assert!(engine.last_op_time() >= last_acked);
    insert(&engine, 200, payload).expect("writes work after the restart");
    assert!(engine.last_op_time() > last_acked);
}

#[test]
fn failed_fsync_is_not_acknowledged_and_stops_writes() {
    scenario(
        |f| f.fail_sync.store(true, Ordering::Relaxed),
        |f| f.fail_sync.store(false, Ordering::Relaxed),
        10,
    );
}

#[test]
fn full_disk_is_not_acknowledged_and_stops_writes() {
    scenario(
        |f| f.disk_full.store(true, Ordering::Relaxed),
        |f| f.disk_full.store(false, Ordering::Relaxed),
        10,
    );
}

/// A document large enough that redb writes pages (and grows the file) before the commit,
/// so the full disk is met inside the transaction rather than by the commit itself.
#[test]
fn full_disk_inside_a_large_transaction_stops_writes() {
    scenario(
        |f| f.disk_full.store(true, Ordering::Relaxed),
        |f| f.disk_full.store(false, Ordering::Relaxed),
        4 * 1024 * 1024,
    );
}

/// The group's journal write fails: nothing of it reaches redb.
#[test]
fn failed_journal_write_stops_writes() {
    scenario(
        |f| f.fail_writes_after.store(1, Ordering::Relaxed),
        |f| f.fail_writes_after.store(0, Ordering::Relaxed),
        64 * 1024,
    );
}

/// A checkpoint's page write fails: the committer, idle, takes one a second after the
/// last, so the fault is armed and then waited on; the insert after it is refused.
#[test]
fn failed_write_during_a_checkpoint_stops_writes() {
    scenario(
        |f| {
            f.fail_writes_after.store(1, Ordering::Relaxed);
            std::thread::sleep(std::time::Duration::from_millis(1100));
            assert!(
                f.writes_failed.load(Ordering::Relaxed) > 0,
                "the idle committer's checkpoint met the fault"
            );
        },
        |f| f.fail_writes_after.store(0, Ordering::Relaxed),
        64 * 1024,
    );
}

/// Many writers sharing group commits while the fsync starts failing: every write that
/// was acknowledged survives a reopen, and once a writer saw the failure it is refused
/// from then on.
#[test]
fn concurrent_writers_around_a_failed_fsync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let faults = FaultInjector::new();
    let engine = open(&dir, Some(faults.clone()));
    let writers: Vec<_> = (0..8i64)
        .map(|t| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                for i in 0.. {
                    let id = t * 1_000_000 + i;
                    match insert(&engine, id, 100) {
                        Ok(()) => acked.push(id),
                        Err(_) => {
                            // Fail-stop: the next attempt is refused too.
                            assert_refused(insert(&engine, id + 1, 100), "a later insert");
                            return (acked, id);
                        }
                    }
                }
                unreachable!("the loop ends at the first error")
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(200));
    faults.fail_sync.store(true, Ordering::Relaxed);
    let mut acked = BTreeSet::new();
    let mut failed = BTreeSet::new();
    for w in writers {
        let (a, f) = w.join().expect("writer thread");
        acked.extend(a);
        failed.insert(f);
    }
    assert!(
        acked.len() >= 8,
        "the writers made progress before the fault"
    );
    engine.close();
    drop(engine);

    let engine = open(&dir, None);
    let after = ids(&docs(&engine));
    let lost: Vec<_> = acked.difference(&after).collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    let unexplained: Vec<_> = after
        .difference(&acked)
        .filter(|id| !failed.contains(id))
        .collect();
    assert!(
        unexplained.is_empty(),
        "documents present that were neither acknowledged nor in flight: {unexplained:?}"
    );
    assert_eq!(ids_from_oplog(&engine), after);
}
