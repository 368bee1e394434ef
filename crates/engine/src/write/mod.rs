//! Writes. Each public operation becomes one job of the group commit: it runs inside
//! the shared write transaction ([`Tx`]), where the documents, their index entries,
//! the catalog and the oplog entries change together.
//!
//! Every per-document change validates first (size, `_id`, unique indexes) and writes
//! after, so a failing document leaves nothing behind; earlier documents of an ordered
//! batch stay written, as in mongod.
//!
//! This module holds the transaction type and what every write shares; the writes
//! themselves are split by concern:
//! - [`documents`]: insert, update, delete and findAndModify;
//! - [`catalog`]: collections and views (create, drop, rename, collMod);
//! - [`indexes`]: createIndexes and dropIndexes;
//! - [`retention`]: trimming the oplog to its size cap.

mod catalog;
mod documents;
mod indexes;
mod retention;
mod retry;
mod ttl;

use std::sync::Arc;

use bson::{Bson, DateTime, Document};
use eddy_codes::{ErrorCode, MongoError};
use eddy_query::collation::Collation;
use eddy_storage::{KvWrite, StorageError, WriteBatch};

use crate::catalog::{CollectionMeta, Namespace};
use crate::changes::Logged;
use crate::oplog::{Op, OplogEntry, SharedEntry};
use crate::plan::Query;
use crate::read::{self, Matched};
use crate::{meta_keys, storage_err, tables, Engine};

pub use documents::prepare_for_insert;
pub use indexes::{default_index_name, IndexSelector};
pub use retry::{RetryableWrite, StatementHook};

/// The largest document a user may store (BSONObjectMaxUserSize).
pub const MAX_USER_DOC_SIZE: usize = 16 * 1024 * 1024;

/// The outcome of an insert, update or delete batch.
#[derive(Debug, Default, Clone)]
pub struct WriteOutcome {
    /// Documents inserted, matched (update) or deleted.
    pub n: u64,
    /// Documents changed by an update.
    pub n_modified: u64,
    /// `(index in the batch, _id)` of each upserted document.
    pub upserted: Vec<(usize, Bson)>,
    /// `(index in the batch, error)` of each failed operation.
    pub errors: Vec<(usize, MongoError)>,
}

/// One statement of an `update` command.
#[derive(Debug, Clone, Default)]
pub struct UpdateOp {
    pub filter: Document,
    /// A replacement or operator document, or a pipeline (array).
    pub update: Bson,
    pub multi: bool,
    pub upsert: bool,
    pub array_filters: Option<Vec<Document>>,
    /// The command's evaluated `let` variables (for `$expr` and pipeline updates).
    pub let_vars: Vec<(String, Bson)>,
    /// The statement's collation for its query (`None`: simple).
    pub collation: Option<Arc<Collation>>,
    /// The command's `bypassDocumentValidation`.
    pub bypass_document_validation: bool,
    /// The index to read the matching documents through (`hint`), as for `find`.
    pub hint: Option<Bson>,
}

/// One statement of a `delete` command.
#[derive(Debug, Clone, Default)]
pub struct DeleteOp {
    pub filter: Document,
    /// `limit: 1` deletes one matching document; `limit: 0` all.
    pub just_one: bool,
    /// The command's evaluated `let` variables (for `$expr`).
    pub let_vars: Vec<(String, Bson)>,
    /// The statement's collation for its query (`None`: simple).
    pub collation: Option<Arc<Collation>>,
    /// The index to read the matching documents through (`hint`), as for `find`.
    pub hint: Option<Bson>,
}

/// A `findAndModify` request.
#[derive(Debug, Clone, Default)]
pub struct FindAndModify {
    pub query: Document,
    pub sort: Option<Document>,
    pub remove: bool,
    pub update: Option<Bson>,
    /// Return the document after the change (else before it).
    pub return_new: bool,
    pub upsert: bool,
    pub array_filters: Option<Vec<Document>>,
    /// The command's evaluated `let` variables (for `$expr` and pipeline updates).
    pub let_vars: Vec<(String, Bson)>,
    /// The collation of the query and the sort (`None`: simple).
    pub collation: Option<Arc<Collation>>,
    /// The command's `bypassDocumentValidation`.
    pub bypass_document_validation: bool,
    /// The index to read the matching documents through (`hint`), as for `find`.
    pub hint: Option<Bson>,
}

/// What `findAndModify` did.
#[derive(Debug, Clone, Default)]
pub struct FindAndModifyOutcome {
    pub value: Option<Document>,
    /// `lastErrorObject.n`.
    pub n: u64,
    pub updated_existing: bool,
    pub upserted: Option<Bson>,
}

/// The shared write transaction as one job sees it.
pub struct Tx<'a, 'b> {
    /// The group commit's batch, or a multi-document transaction's overlay.
    pub(crate) w: &'a mut (dyn KvWrite + 'b),
    /// Inside a multi-document transaction: entries are logged without a time (the
    /// commit stamps them) and not written to the oplog table yet; capped collections
    /// refuse writes.
    pub(crate) in_txn: bool,
    /// Inside a transaction, its snapshot: what existed before it began.
    pub(crate) txn_base: Option<&'a eddy_storage::Snapshot>,
    engine: &'a Engine,
    entries: Vec<SharedEntry>,
    wall: DateTime,
    /// `bypassDocumentValidation` of the statement being run: collection validators
    /// are not checked.
    bypass_validation: bool,
    /// Multikey components this job already wrote to the catalog, per index id: a
    /// statement holds its collection's entry from before its own writes, so without
    /// this every array document of a batch would rewrite the catalog entry again.
    multikey_written: std::collections::HashMap<u64, Vec<Vec<usize>>>,
    /// The retryable write this job runs (see [`retry`]).
    retry: Option<retry::RetryRun>,
}

impl Engine {
    /// Runs `f` inside the group commit and waits until its writes are durable (or
    /// failed). Oplog entries it logged are published to the hub before returning.
    pub(crate) fn execute<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Tx<'_, '_>) -> Result<R, MongoError> + Send + 'static,
    ) -> Result<R, MongoError> {
        self.execute_retryable(None, f)
    }

    /// [`Engine::execute`] for a write that may be a retryable write: its session
    /// record is read and written in the same job (see [`retry`]).
    pub(crate) fn execute_retryable<R: Send + 'static>(
        self: &Arc<Self>,
        retry: Option<RetryableWrite>,
        f: impl FnOnce(&mut Tx<'_, '_>) -> Result<R, MongoError> + Send + 'static,
    ) -> Result<R, MongoError> {
        if crate::txn::in_scope() {
            if retry.is_some() {
                return Err(MongoError::internal(
                    "a retryable write cannot run inside a transaction",
                ));
            }
            // A statement of a multi-document transaction: its overlay, not the batch.
            return self.run_in_current(f);
        }
        let (reply_tx, reply_rx) = std::sync::mpsc::sync_channel::<Result<R, MongoError>>(1);
        let engine = self.clone();
        self.submit(Box::new(
            move |batch: Result<&mut WriteBatch<'_>, StorageError>| {
                let batch = match batch {
                    Ok(batch) => batch,
                    Err(e) => {
                        return Box::new(move |_| {
                            let _ = reply_tx.send(Err(storage_err(e)));
                        })
                    }
                };
                let mut tx = Tx::new(batch, &engine, None);
                let result = match retry {
                    Some(spec) => match tx.begin_retry(spec) {
                        // The statements that ran are recorded even when the command
                        // failed after them: their writes commit all the same.
                        Ok(()) => {
                            let result = f(&mut tx);
                            let recorded = tx.finish_retry();
                            recorded.and(result)
                        }
                        Err(e) => Err(e),
                    },
                    None => f(&mut tx),
                };
                let entries = std::mem::take(&mut tx.entries);
                let engine = engine.clone();
                Box::new(move |outcome: Result<(), StorageError>| match outcome {
                    Ok(()) => {
                        if let Some(last) = entries.last() {
                            engine.clock.set_committed(last.ts);
                        }
                        // Readable before the answer, woken after it.
                        engine.hub().append(&entries);
                        let _ = reply_tx.send(result);
                        engine.hub().wake(&entries);
                    }
                    Err(e) => {
                        let _ = reply_tx.send(Err(storage_err(e)));
                    }
                })
            },
        ))?;
        reply_rx
            .recv()
            .map_err(|_| MongoError::new(ErrorCode::ShutdownInProgress, "the committer stopped"))?
    }
}

impl<'a, 'b> Tx<'a, 'b> {
    pub(crate) fn new(
        w: &'a mut (dyn KvWrite + 'b),
        engine: &'a Engine,
        txn_base: Option<&'a eddy_storage::Snapshot>,
    ) -> Self {
        Tx {
            w,
            in_txn: txn_base.is_some(),
            txn_base,
            engine,
            entries: Vec::new(),
            wall: DateTime::now(),
            bypass_validation: false,
            multikey_written: std::collections::HashMap::new(),
            retry: None,
        }
    }

    /// The entries logged so far (taken by the caller).
    pub(crate) fn take_entries(&mut self) -> Vec<SharedEntry> {
        std::mem::take(&mut self.entries)
    }
}

impl Tx<'_, '_> {
    /// Capped collections take no writes inside a transaction (mongod 4.2+).
    /// Time-series collections take none either (mongod 7.0: reads only).
    pub(crate) fn check_not_capped_in_txn(&self, meta: &CollectionMeta) -> Result<(), MongoError> {
        if self.in_txn && meta.timeseries().is_some() {
            return Err(MongoError::new(
                ErrorCode::OperationNotSupportedInTransaction,
                format!(
                    "Cannot write to time-series collection '{}' in a multi-document transaction.",
                    meta.ns
                ),
            ));
        }
        if self.in_txn && meta.cap().is_some() {
            return Err(MongoError::new(
                ErrorCode::OperationNotSupportedInTransaction,
                format!(
                    "Collection '{}' is a capped collection. Writes in transactions are not supported on capped collections.",
                    meta.ns
                ),
            ));
        }
        Ok(())
    }

    pub(crate) fn collection(&self, ns: &Namespace) -> Result<Option<CollectionMeta>, MongoError> {
        crate::catalog::get(&*self.w, ns)
    }

    fn next_id(&mut self) -> Result<u64, MongoError> {
        let id = self
            .engine
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.w
            .put(tables::META, meta_keys::NEXT_ID, &(id + 1).to_be_bytes())
            .map_err(storage_err)?;
        Ok(id)
    }

    /// Assigns the next timestamp and writes an oplog entry.
    fn log(
        &mut self,
        ns: &Namespace,
        uuid: Option<&bson::Binary>,
        op: Op<'_>,
    ) -> Result<(), MongoError> {
        if self.in_txn {
            // Stamped at commit (`crate::txn`), when the transaction's time is known.
            let placeholder = bson::Timestamp {
                time: 0,
                increment: 0,
            };
            let entry = OplogEntry::new(placeholder, self.wall, ns, uuid, op)?;
            self.entries.push(Arc::new(Logged::new(entry)));
            return Ok(());
        }
        let entry = OplogEntry::new(self.engine.clock.tick(), self.wall, ns, uuid, op)?;
        self.w
            .put(tables::OPLOG, &entry.key(), entry.bytes())
            .map_err(storage_err)?;
        self.engine.oplog_bytes.fetch_add(
            (entry.bytes().len() + 8) as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        self.entries.push(Arc::new(Logged::new(entry)));
        Ok(())
    }

    /// The documents a write's query matches, read inside this transaction (nearest
    /// first for a `$near` without a sort, as mongod: a single-document write takes the
    /// nearest); the index its plan reads counts one use (`$indexStats`).
    fn matching(
        &self,
        meta: &CollectionMeta,
        q: &Query<'_>,
        limit: Option<usize>,
    ) -> Result<Vec<Matched>, MongoError> {
        let executed = match q.filter.near() {
            Some((path, near)) if q.sort.is_none() => {
                let mut found =
                    crate::exec::query::near_query(&*self.w, meta, q, path, near, limit)?;
                found.docs.truncate(limit.unwrap_or(usize::MAX));
                found
            }
            _ => read::execute(&*self.w, meta, q, limit)?,
        };
        self.engine.usage.record(meta, &executed.plan);
        Ok(executed.docs)
    }
}

/// Encodes a document, refusing it with `too_large(size)` when it exceeds the user size
/// limit (inserts and updates answer differently in mongod).
fn encode_checked(
    doc: &Document,
    too_large: impl FnOnce(usize) -> MongoError,
) -> Result<Vec<u8>, MongoError> {
    let bytes = crate::catalog::encode(doc)?;
    if bytes.len() > MAX_USER_DOC_SIZE {
        return Err(too_large(bytes.len()));
    }
    Ok(bytes)
}

/// A document's encoded bytes as BSON to log (they were encoded from a `Document` here).
fn raw_view(bytes: &[u8]) -> Result<&bson::RawDocument, MongoError> {
    bson::RawDocument::from_bytes(bytes)
        .map_err(|e| MongoError::internal(format!("cannot encode BSON: {e}")))
}
