//! Retryable writes: the session record (mongod's `config.transactions`).
//!
//! A write command with `lsid` and `txnNumber` outside a transaction is a retryable
//! write: each of its statements (`stmtId`: its index in the batch, unless the command
//! gives `stmtIds`) runs at most once for that `(session, txnNumber)`. The engine keeps
//! one record per session in the `sessions` table: the newest `txnNumber`, the time of
//! its last write (`lastWriteOpTime`, `lastWriteDate`) and, for each statement that
//! executed, what it did (an update's `n`/`nModified`/`upserted`, a delete's `n`, a
//! findAndModify's document and `lastErrorObject`). mongod keeps only the statement
//! ids and rebuilds the outcomes from the oplog (with pre/post images for
//! findAndModify); Eddy stores the outcomes in the record instead, so the oplog's
//! size cap never loses them.
//!
//! The record is read and written inside the write's own group-commit job
//! ([`Tx::begin_retry`], [`Tx::finish_retry`]): the statements' writes and the record
//! saying they ran become durable in the same storage commit, so a crash leaves both
//! or neither, and a retry after a restart finds exactly what happened. A retry runs
//! only the statements the record does not list and answers the others from it.

use std::collections::HashMap;
use std::sync::Arc;

use bson::{doc, Bson, Document};
use eddy_codes::{ErrorCode, MongoError};
use eddy_storage::KvRead;

use super::Tx;
use crate::{storage_err, tables};

/// Called before each statement of a retryable write that is about to run (not one
/// that already ran): an error fails that statement without running it. The server's
/// `onPrimaryTransactionalWrite` failpoint is one.
pub type StatementHook = Arc<dyn Fn(i32) -> Option<MongoError> + Send + Sync>;

/// A write command's retryable-write identity.
#[derive(Clone)]
pub struct RetryableWrite {
    /// The session's key in the `sessions` table (its `lsid.id` and user digest).
    pub key: Vec<u8>,
    /// The session as the record shows it (`{id, uid}`).
    pub lsid: Document,
    pub txn_number: i64,
    /// The command's `stmtIds` (else each statement's index).
    pub stmt_ids: Option<Vec<i32>>,
    pub hook: Option<StatementHook>,
}

impl std::fmt::Debug for RetryableWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryableWrite")
            .field("txn_number", &self.txn_number)
            .field("stmt_ids", &self.stmt_ids)
            .finish_non_exhaustive()
    }
}

/// A retryable write as it runs in its job: what earlier attempts did, what this one did.
pub(crate) struct RetryRun {
    spec: RetryableWrite,
    /// Statements of this `txnNumber` executed by earlier attempts, by `stmtId`.
    done: HashMap<i32, Document>,
    /// Statements executed by this attempt.
    new: Vec<(i32, Document)>,
}

impl RetryRun {
    fn stmt_id(&self, i: usize) -> i32 {
        self.spec
            .stmt_ids
            .as_ref()
            .and_then(|ids| ids.get(i).copied())
            .unwrap_or(i as i32)
    }
}

/// mongod's 225 for a `txnNumber` below the session's newest.
fn too_old(txn: i64, newest: i64) -> MongoError {
    MongoError::new(
        ErrorCode::TransactionTooOld,
        format!("Retryable write with txnNumber {txn} is prohibited on session because a newer retryable write with txnNumber {newest} has already started on this session."),
    )
}

/// The session record stored under `key`, if any.
pub(crate) fn read_record(r: &dyn KvRead, key: &[u8]) -> Result<Option<Document>, MongoError> {
    let Some(bytes) = r.get(tables::SESSIONS, key).map_err(storage_err)? else {
        return Ok(None);
    };
    crate::catalog::decode(&bytes).map(Some)
}

fn txn_num(record: &Document) -> i64 {
    record.get_i64("txnNum").unwrap_or(i64::MIN)
}

impl crate::Engine {
    /// The newest `txnNumber` of a retryable write the session's durable record holds
    /// (`None`: the session never made one).
    pub fn session_txn_number(&self, key: &[u8]) -> Result<Option<i64>, MongoError> {
        let snap = self.store.snapshot().map_err(storage_err)?;
        Ok(read_record(&snap, key)?.map(|r| txn_num(&r)))
    }

    /// Removes the records of sessions whose last retryable write is older than
    /// `timeout` and that `live` does not name (mongod reaps `config.transactions`
    /// with the sessions); how many. A record written again meanwhile stays.
    pub fn reap_session_records(
        self: &Arc<Self>,
        timeout: std::time::Duration,
        live: impl Fn(&[u8]) -> bool,
    ) -> Result<usize, MongoError> {
        let cutoff = bson::DateTime::now().timestamp_millis()
            - i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        let snap = self.store.snapshot().map_err(storage_err)?;
        let mut stale = Vec::new();
        for entry in snap
            .scan_all(tables::SESSIONS, false)
            .map_err(storage_err)?
        {
            let (key, bytes) = entry.map_err(storage_err)?;
            let record = crate::catalog::decode(&bytes)?;
            let written = record
                .get_datetime("lastWriteDate")
                .map_or(0, |d| d.timestamp_millis());
            if written < cutoff && !live(&key) {
                stale.push((key, written));
            }
        }
        if stale.is_empty() {
            return Ok(0);
        }
        self.execute(move |tx| {
            let mut n = 0;
            for (key, written) in stale {
                let again = read_record(&*tx.w, &key)?.and_then(|r| {
                    r.get_datetime("lastWriteDate")
                        .ok()
                        .map(|d| d.timestamp_millis())
                });
                if again == Some(written) {
                    tx.w.delete(tables::SESSIONS, &key).map_err(storage_err)?;
                    n += 1;
                }
            }
            Ok(n)
        })
    }

    /// The durable session record (`{_id, txnNum, lastWriteOpTime, lastWriteDate,
    /// stmts: [{stmtId, result}]}`), for tests and diagnostics.
    pub fn session_record(&self, key: &[u8]) -> Result<Option<Document>, MongoError> {
        let snap = self.store.snapshot().map_err(storage_err)?;
        read_record(&snap, key)
    }
}

impl Tx<'_, '_> {
    /// Loads the session's record for this retryable write: 225 TransactionTooOld for a
    /// number below the record's.
    pub(crate) fn begin_retry(&mut self, spec: RetryableWrite) -> Result<(), MongoError> {
        let mut done = HashMap::new();
        if let Some(record) = read_record(&*self.w, &spec.key)? {
            let newest = txn_num(&record);
            if newest > spec.txn_number {
                return Err(too_old(spec.txn_number, newest));
            }
            if newest == spec.txn_number {
                for s in record.get_array("stmts").into_iter().flatten() {
                    if let Bson::Document(s) = s {
                        if let Ok(id) = s.get_i32("stmtId") {
                            let result = s.get_document("result").cloned().unwrap_or_default();
                            done.insert(id, result);
                        }
                    }
                }
            }
        }
        self.retry = Some(RetryRun {
            spec,
            done,
            new: Vec::new(),
        });
        Ok(())
    }

    /// What statement `i` did in an earlier attempt, if it ran.
    pub(crate) fn executed(&self, i: usize) -> Option<Document> {
        let run = self.retry.as_ref()?;
        run.done.get(&run.stmt_id(i)).cloned()
    }

    /// Statement `i` is about to run: the hook may fail it.
    pub(crate) fn before_statement(&self, i: usize) -> Result<(), MongoError> {
        let Some(run) = &self.retry else {
            return Ok(());
        };
        match run.spec.hook.as_ref().and_then(|h| h(run.stmt_id(i))) {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// How many oplog entries the job has logged (a statement that logged none wrote
    /// nothing, and is not recorded: a retry runs it again, as mongod does).
    pub(crate) fn logged(&self) -> usize {
        self.entries.len()
    }

    /// Records that statement `i` ran, with what a retry answers for it.
    pub(crate) fn record_statement(&mut self, i: usize, result: Document) {
        if let Some(run) = &mut self.retry {
            let id = run.stmt_id(i);
            run.new.push((id, result));
        }
    }

    /// Writes the session record in this job, when this attempt ran any statement.
    pub(crate) fn finish_retry(&mut self) -> Result<(), MongoError> {
        let Some(run) = self.retry.take() else {
            return Ok(());
        };
        if run.new.is_empty() {
            return Ok(());
        }
        let op_time = self
            .entries
            .last()
            .map(|e| e.ts)
            .unwrap_or_else(|| self.engine.last_op_time());
        let mut stmts: Vec<(i32, Document)> = run.done.into_iter().chain(run.new).collect();
        stmts.sort_by_key(|(id, _)| *id);
        let record = doc! {
            "_id": run.spec.lsid,
            "txnNum": run.spec.txn_number,
            "lastWriteOpTime": {"ts": op_time, "t": 1_i64},
            "lastWriteDate": self.wall,
            "stmts": stmts
                .into_iter()
                .map(|(id, result)| Bson::Document(doc! {"stmtId": id, "result": result}))
                .collect::<Vec<_>>(),
        };
        let bytes = crate::catalog::encode(&record)?;
        self.w
            .put(tables::SESSIONS, &run.spec.key, &bytes)
            .map_err(storage_err)
    }
}
