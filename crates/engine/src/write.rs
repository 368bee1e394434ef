//! Writes. Each public operation becomes one job of the group commit: it runs inside
//! the shared write transaction ([`Tx`]), where the documents, their index entries,
//! the catalog and the oplog entries change together.
//!
//! Every per-document change validates first (size, `_id`, unique indexes) and writes
//! after, so a failing document leaves nothing behind; earlier documents of an ordered
//! batch stay written, as in mongod.

use std::sync::Arc;

use bson::{doc, oid::ObjectId, Bson, DateTime, Document};
use eddy_codes::{ErrorCode, MongoError};
use eddy_query::collation::Collation;
use eddy_query::filter::Filter;
use eddy_query::update::{ApplyContext, Update};
use eddy_storage::{KvRead, StorageError, WriteBatch};

use crate::catalog::{self, CollectionMeta, IndexMeta, Namespace, ViewMeta};
use crate::changes::Logged;
use crate::oplog::{self, CatalogOp, Op, OplogEntry, SharedEntry};
use crate::plan::Query;
use crate::read::{self, id_key, Matched};
use crate::{capped, index, meta_keys, storage_err, tables, Engine};

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
    pub(crate) w: &'a mut WriteBatch<'b>,
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
}

impl Engine {
    /// Runs `f` inside the group commit and waits until its writes are durable (or
    /// failed). Oplog entries it logged are published to the hub before returning.
    pub(crate) fn execute<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Tx<'_, '_>) -> Result<R, MongoError> + Send + 'static,
    ) -> Result<R, MongoError> {
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
                let mut tx = Tx {
                    w: batch,
                    engine: &engine,
                    entries: Vec::new(),
                    wall: DateTime::now(),
                    bypass_validation: false,
                    multikey_written: std::collections::HashMap::new(),
                };
                let result = f(&mut tx);
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

    /// Inserts documents (`_id` added where missing).
    pub fn insert(
        self: &Arc<Self>,
        ns: Namespace,
        docs: Vec<Document>,
        ordered: bool,
    ) -> Result<WriteOutcome, MongoError> {
        self.insert_bypassing(ns, docs, ordered, false)
    }

    /// [`Engine::insert`], with the collection's validator skipped when
    /// `bypass_document_validation` (the command option of that name).
    pub fn insert_bypassing(
        self: &Arc<Self>,
        ns: Namespace,
        docs: Vec<Document>,
        ordered: bool,
        bypass_document_validation: bool,
    ) -> Result<WriteOutcome, MongoError> {
        self.execute(move |tx| {
            tx.bypass_validation = bypass_document_validation;
            let meta = tx.ensure_collection(&ns)?;
            let mut out = WriteOutcome::default();
            for (i, doc) in docs.into_iter().enumerate() {
                match tx.insert_doc(&meta, doc) {
                    Ok(_) => out.n += 1,
                    Err(e) => {
                        out.errors.push((i, e));
                        if ordered {
                            break;
                        }
                    }
                }
            }
            Ok(out)
        })
    }

    /// Runs the statements of an `update` command.
    pub fn update(
        self: &Arc<Self>,
        ns: Namespace,
        ops: Vec<UpdateOp>,
        ordered: bool,
    ) -> Result<WriteOutcome, MongoError> {
        catalog::validate_writable(&ns)?;
        self.execute(move |tx| {
            let mut out = WriteOutcome::default();
            for (i, op) in ops.into_iter().enumerate() {
                tx.bypass_validation = op.bypass_document_validation;
                match tx.update_one_statement(&ns, &op) {
                    Ok(stmt) => {
                        out.n += stmt.n;
                        out.n_modified += stmt.n_modified;
                        if let Some(id) = stmt.upserted {
                            out.upserted.push((i, id));
                        }
                    }
                    Err(e) => {
                        out.errors.push((i, e));
                        if ordered {
                            break;
                        }
                    }
                }
            }
            Ok(out)
        })
    }

    /// Runs the statements of a `delete` command.
    pub fn delete(
        self: &Arc<Self>,
        ns: Namespace,
        ops: Vec<DeleteOp>,
        ordered: bool,
    ) -> Result<WriteOutcome, MongoError> {
        self.execute(move |tx| {
            let mut out = WriteOutcome::default();
            for (i, op) in ops.into_iter().enumerate() {
                let res = (|| {
                    let filter =
                        Filter::parse_collated(&op.filter, &op.let_vars, op.collation.as_ref())?;
                    let Some(meta) = tx.collection(&ns)? else {
                        return Ok(0);
                    };
                    let limit = op.just_one.then_some(1);
                    let mut q = Query::new(&op.filter, &filter);
                    q.hint = op.hint.as_ref();
                    let matched = tx.matching(&meta, &q, limit)?;
                    let n = matched.len() as u64;
                    for m in matched {
                        tx.delete_doc(&meta, &m)?;
                    }
                    Ok(n)
                })();
                match res {
                    Ok(n) => out.n += n,
                    Err(e) => {
                        out.errors.push((i, e));
                        if ordered {
                            break;
                        }
                    }
                }
            }
            Ok(out)
        })
    }

    /// Finds one document (the first by `sort`) and updates or removes it.
    pub fn find_and_modify(
        self: &Arc<Self>,
        ns: Namespace,
        req: FindAndModify,
    ) -> Result<FindAndModifyOutcome, MongoError> {
        if !req.remove {
            catalog::validate_writable(&ns)?;
        }
        self.execute(move |tx| {
            tx.bypass_validation = req.bypass_document_validation;
            tx.find_and_modify(&ns, &req)
        })
    }

    /// Creates a collection; 48 NamespaceExists if it exists.
    pub fn create_collection(
        self: &Arc<Self>,
        ns: Namespace,
        options: Document,
    ) -> Result<(), MongoError> {
        catalog::validate_writable(&ns)?;
        self.execute(move |tx| {
            tx.check_free(&ns)?;
            tx.create_collection(&ns, options)?;
            Ok(())
        })
    }

    /// Creates a view of `view_on` (a collection or view of the same database, which
    /// need not exist yet); 48 NamespaceExists if the name is taken. The pipeline is
    /// the caller's to validate. Logged as `{create: view, viewOn, pipeline}` without a
    /// UUID, the command mongod's change streams rebuild from its `system.views` insert.
    pub fn create_view(
        self: &Arc<Self>,
        ns: Namespace,
        view_on: String,
        pipeline: Vec<Document>,
    ) -> Result<(), MongoError> {
        catalog::validate_writable(&ns)?;
        self.execute(move |tx| {
            tx.check_free(&ns)?;
            tx.check_view_chain(&ns, &view_on)?;
            let view = ViewMeta {
                ns: ns.clone(),
                view_on,
                pipeline,
            };
            catalog::put_view(tx.w, &view)?;
            let options = view.options();
            tx.log(&ns, None, Op::Catalog(&CatalogOp::Create { options }))
        })
    }

    /// Drops a collection or a view; the number of indexes a collection had, or `None`
    /// if it was a view or did not exist.
    pub fn drop_collection(self: &Arc<Self>, ns: Namespace) -> Result<Option<usize>, MongoError> {
        self.execute(move |tx| {
            if let Some(view) = catalog::view(&*tx.w, &ns)? {
                tx.drop_view(&view)?;
                return Ok(None);
            }
            let Some(meta) = tx.collection(&ns)? else {
                return Ok(None);
            };
            tx.drop_collection(&meta)?;
            Ok(Some(meta.indexes.len() + 1))
        })
    }

    /// Drops every collection of a database, then logs the database drop.
    pub fn drop_database(self: &Arc<Self>, db: String) -> Result<(), MongoError> {
        self.execute(move |tx| {
            let colls = catalog::list(&*tx.w, Some(&db))?;
            let views = catalog::list_views(&*tx.w, &db)?;
            if colls.is_empty() && views.is_empty() {
                return Ok(());
            }
            for view in &views {
                tx.drop_view(view)?;
            }
            for meta in &colls {
                tx.drop_collection(meta)?;
            }
            tx.log(
                &Namespace::new(db.clone(), "$cmd"),
                None,
                Op::Catalog(&CatalogOp::DropDatabase),
            )?;
            Ok(())
        })
    }

    /// Renames a collection (across databases too), optionally replacing the target.
    pub fn rename_collection(
        self: &Arc<Self>,
        from: Namespace,
        to: Namespace,
        drop_target: bool,
    ) -> Result<(), MongoError> {
        catalog::validate_writable(&to)?;
        self.execute(move |tx| {
            let Some(mut meta) = tx.collection(&from)? else {
                return Err(MongoError::new(
                    ErrorCode::NamespaceNotFound,
                    format!("Source collection {from} does not exist"),
                ));
            };
            if from == to {
                return Err(MongoError::new(
                    ErrorCode::IllegalOperation,
                    "Can't rename a collection to itself",
                ));
            }
            let mut dropped_target = Bson::Boolean(false);
            if let Some(target) = tx.collection(&to)? {
                if !drop_target {
                    return Err(MongoError::new(
                        ErrorCode::NamespaceExists,
                        "target namespace exists",
                    ));
                }
                dropped_target = target.uuid_bson();
                tx.drop_collection(&target)?;
            }
            catalog::remove(tx.w, &from)?;
            meta.ns = to.clone();
            catalog::put(tx.w, &meta)?;
            let op = CatalogOp::Rename {
                to: to.clone(),
                drop_target: (!matches!(dropped_target, Bson::Boolean(false)))
                    .then_some(dropped_target),
                stay_temp: false,
            };
            tx.log(&from, Some(&meta.uuid), Op::Catalog(&op))?;
            Ok(())
        })
    }

    /// Creates indexes (and the collection if missing). Returns
    /// `(numIndexesBefore, numIndexesAfter, createdCollectionAutomatically)`.
    pub fn create_indexes(
        self: &Arc<Self>,
        ns: Namespace,
        specs: Vec<Document>,
    ) -> Result<(usize, usize, bool), MongoError> {
        catalog::validate_writable(&ns)?;
        self.execute(move |tx| {
            let existed = tx.collection(&ns)?.is_some();
            let mut meta = tx.ensure_collection(&ns)?;
            let before = meta.indexes.len() + 1;
            for spec in specs {
                tx.create_index(&mut meta, spec)?;
            }
            Ok((before, meta.indexes.len() + 1, !existed))
        })
    }

    /// Drops the named indexes (`"*"`: all but `_id_`). Returns `nIndexesWas`.
    pub fn drop_indexes(
        self: &Arc<Self>,
        ns: Namespace,
        names: IndexSelector,
    ) -> Result<usize, MongoError> {
        self.execute(move |tx| {
            let Some(mut meta) = tx.collection(&ns)? else {
                return Err(MongoError::new(
                    ErrorCode::NamespaceNotFound,
                    format!("ns not found {ns}"),
                ));
            };
            let was = meta.indexes.len() + 1;
            let targets: Vec<IndexMeta> = match &names {
                IndexSelector::All => meta.indexes.clone(),
                IndexSelector::Names(names) => {
                    let mut out = Vec::new();
                    for name in names {
                        if name == "_id_" {
                            return Err(MongoError::new(
                                ErrorCode::InvalidOptions,
                                "cannot drop _id index",
                            ));
                        }
                        match meta.index(name) {
                            Some(i) => out.push(i.clone()),
                            None => {
                                return Err(MongoError::new(
                                    ErrorCode::IndexNotFound,
                                    format!("index not found with name [{name}]"),
                                ))
                            }
                        }
                    }
                    out
                }
                IndexSelector::KeyPattern(pattern) => {
                    if pattern == &doc! {"_id": 1} {
                        return Err(MongoError::new(
                            ErrorCode::InvalidOptions,
                            "cannot drop _id index",
                        ));
                    }
                    let found: Vec<IndexMeta> = meta
                        .indexes
                        .iter()
                        .filter(|i| catalog::same_key_pattern(&i.key_pattern(), pattern))
                        .cloned()
                        .collect();
                    match found.len() {
                        0 => {
                            return Err(MongoError::new(
                                ErrorCode::IndexNotFound,
                                format!(
                                    "can't find index with key: {}",
                                    crate::display_value(&Bson::Document(pattern.clone()))
                                ),
                            ))
                        }
                        1 => found,
                        _ => {
                            return Err(MongoError::new(
                                ErrorCode::AmbiguousIndexKeyPattern,
                                "index keyPattern matches more than one index",
                            ))
                        }
                    }
                }
            };
            for index in targets {
                tx.w.delete_table(&index::table(&index))
                    .map_err(storage_err)?;
                meta.indexes.retain(|i| i.id != index.id);
                catalog::put(tx.w, &meta)?;
                tx.log(
                    &ns,
                    Some(&meta.uuid),
                    Op::Catalog(&CatalogOp::DropIndexes {
                        name: index.name().to_owned(),
                        spec: index.spec.clone(),
                    }),
                )?;
            }
            Ok(was)
        })
    }

    /// Changes collection options (`collMod`). Returns the options before the change.
    pub fn coll_mod(
        self: &Arc<Self>,
        ns: Namespace,
        changes: Document,
    ) -> Result<Document, MongoError> {
        self.execute(move |tx| {
            if let Some(view) = catalog::view(&*tx.w, &ns)? {
                return tx.modify_view(view, changes);
            }
            if changes.contains_key("viewOn") || changes.contains_key("pipeline") {
                return Err(MongoError::new(
                    ErrorCode::InvalidOptions,
                    "option only supported on a view: viewOn or pipeline",
                ));
            }
            let Some(mut meta) = tx.collection(&ns)? else {
                return Err(MongoError::new(
                    ErrorCode::NamespaceNotFound,
                    format!("ns does not exist: {ns}"),
                ));
            };
            let before = meta.options.clone();
            for (k, v) in &changes {
                match k.as_str() {
                    // A new cap is applied by the next insert, as in mongod.
                    "cappedSize" | "cappedMax" if meta.cap().is_none() => {
                        return Err(MongoError::new(
                            ErrorCode::InvalidOptions,
                            format!("{k} can only be set on a capped collection"),
                        ))
                    }
                    "cappedSize" => {
                        meta.options.insert("size", v.clone());
                    }
                    // `cappedMax: 0` lifts the document limit.
                    "cappedMax" if matches!(v, Bson::Int32(0) | Bson::Int64(0)) => {
                        meta.options.remove("max");
                    }
                    "cappedMax" => {
                        meta.options.insert("max", v.clone());
                    }
                    _ => {
                        meta.options.insert(k.clone(), v.clone());
                    }
                }
            }
            catalog::put(tx.w, &meta)?;
            tx.log(
                &ns,
                Some(&meta.uuid),
                Op::Catalog(&CatalogOp::CollMod {
                    changes: changes.clone(),
                    old_options: before.clone(),
                }),
            )?;
            Ok(before)
        })
    }

    /// Trims the oldest oplog entries beyond the size cap (never those younger than the
    /// minimum retention, never the newest). At most `chunk` entries per call; returns
    /// how many were removed.
    pub fn trim_oplog(self: &Arc<Self>, chunk: usize) -> Result<usize, MongoError> {
        let cap = self.options.oplog_size_mb.saturating_mul(1024 * 1024);
        if self.oplog_bytes() <= cap {
            return Ok(0);
        }
        let min_keep_secs = (self.options.oplog_min_retention_hours * 3600.0) as u64;
        self.execute(move |tx| {
            let engine = tx.engine;
            let now = DateTime::now().timestamp_millis() / 1000;
            let newest =
                tx.w.last(tables::OPLOG)
                    .map_err(storage_err)?
                    .map(|(k, _)| k);
            let mut excess = engine.oplog_bytes().saturating_sub(cap);
            let mut doomed = Vec::new();
            let mut freed = 0u64;
            for entry in
                tx.w.scan(
                    tables::OPLOG,
                    std::ops::Bound::Unbounded,
                    std::ops::Bound::Unbounded,
                    false,
                )
                .map_err(storage_err)?
            {
                let (k, v) = entry.map_err(storage_err)?;
                if excess == 0 || doomed.len() >= chunk || Some(&k) == newest.as_ref() {
                    break;
                }
                let ts = crate::oplog::ts_of_key(&k)
                    .map(|t| t.time as i64)
                    .unwrap_or(0);
                if min_keep_secs > 0 && now - ts < min_keep_secs as i64 {
                    break;
                }
                let size = (k.len() + v.len()) as u64;
                excess = excess.saturating_sub(size);
                freed += size;
                doomed.push(k);
            }
            for k in &doomed {
                tx.w.delete(tables::OPLOG, k).map_err(storage_err)?;
            }
            engine.oplog_bytes.fetch_sub(
                freed.min(engine.oplog_bytes()),
                std::sync::atomic::Ordering::Relaxed,
            );
            Ok(doomed.len())
        })
    }
}

/// Which indexes `dropIndexes` names.
#[derive(Debug, Clone)]
pub enum IndexSelector {
    All,
    Names(Vec<String>),
    KeyPattern(Document),
}

struct StatementOutcome {
    n: u64,
    n_modified: u64,
    upserted: Option<Bson>,
}

impl Tx<'_, '_> {
    pub(crate) fn collection(&self, ns: &Namespace) -> Result<Option<CollectionMeta>, MongoError> {
        catalog::get(&*self.w, ns)
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

    /// The documents a write's query matches, read inside this transaction; the index
    /// its plan reads counts one use (`$indexStats`).
    fn matching(
        &self,
        meta: &CollectionMeta,
        q: &Query<'_>,
        limit: Option<usize>,
    ) -> Result<Vec<Matched>, MongoError> {
        let executed = read::execute(&*self.w, meta, q, limit)?;
        self.engine.usage.record(meta, &executed.plan);
        Ok(executed.docs)
    }

    fn create_collection(
        &mut self,
        ns: &Namespace,
        options: Document,
    ) -> Result<CollectionMeta, MongoError> {
        catalog::validate_writable(ns)?;
        let meta = CollectionMeta {
            ns: ns.clone(),
            id: self.next_id()?,
            uuid: catalog::new_uuid(),
            options: options.clone(),
            indexes: Vec::new(),
        };
        catalog::put(self.w, &meta)?;
        self.engine.usage.created(meta.id, 0);
        let mut options = options;
        if meta.clustered_index().is_none() {
            options.insert("idIndex", CollectionMeta::id_index_spec());
        }
        self.log(
            ns,
            Some(&meta.uuid),
            Op::Catalog(&CatalogOp::Create { options }),
        )?;
        Ok(meta)
    }

    /// 48 NamespaceExists unless `ns` names neither a collection nor a view.
    fn check_free(&self, ns: &Namespace) -> Result<(), MongoError> {
        if catalog::exists(&*self.w, ns)? {
            return Err(MongoError::new(
                ErrorCode::NamespaceExists,
                format!("Collection {ns} already exists."),
            ));
        }
        Ok(())
    }

    /// Checks that a view `ns` on `view_on` makes no cycle and a chain of at most
    /// [`catalog::MAX_VIEW_DEPTH`] views.
    fn check_view_chain(&self, ns: &Namespace, view_on: &str) -> Result<(), MongoError> {
        let mut depth = 1;
        let mut current = view_on.to_owned();
        loop {
            if current == ns.coll {
                return Err(MongoError::new(
                    ErrorCode::GraphContainsCycle,
                    format!("View cycle detected: [{ns} -> {}.{view_on}]", ns.db),
                ));
            }
            if depth > catalog::MAX_VIEW_DEPTH {
                return Err(MongoError::new(
                    ErrorCode::ViewDepthLimitExceeded,
                    format!(
                        "View depth too deep or view cycle detected. Maximum depth is {}",
                        catalog::MAX_VIEW_DEPTH
                    ),
                ));
            }
            match catalog::view(&*self.w, &Namespace::new(ns.db.clone(), current))? {
                Some(next) => current = next.view_on,
                None => return Ok(()),
            }
            depth += 1;
        }
    }

    /// Removes a view and logs `{drop: view}` (mongod reports a view's drop as `drop`).
    fn drop_view(&mut self, view: &ViewMeta) -> Result<(), MongoError> {
        catalog::remove(self.w, &view.ns)?;
        self.log(&view.ns, None, Op::Catalog(&CatalogOp::Drop))
    }

    /// `collMod` of a view: `viewOn` and/or `pipeline` replaced; any other change is
    /// refused as mongod does. Returns the options before the change.
    fn modify_view(
        &mut self,
        mut view: ViewMeta,
        changes: Document,
    ) -> Result<Document, MongoError> {
        let before = view.options();
        for (k, v) in &changes {
            match (k.as_str(), v) {
                ("viewOn", Bson::String(s)) => view.view_on = s.clone(),
                ("pipeline", Bson::Array(stages)) => {
                    view.pipeline = stages
                        .iter()
                        .filter_map(|s| s.as_document().cloned())
                        .collect();
                }
                _ => {
                    return Err(MongoError::new(
                        ErrorCode::InvalidOptions,
                        format!("option not supported on a view: {k}"),
                    ))
                }
            }
        }
        self.check_view_chain(&view.ns, &view.view_on)?;
        catalog::put_view(self.w, &view)?;
        self.log(
            &view.ns,
            None,
            Op::Catalog(&CatalogOp::CollMod {
                changes: view.options(),
                old_options: before.clone(),
            }),
        )?;
        Ok(before)
    }

    /// Records in the catalog that indexes of `ns` now hold arrays on more paths, in
    /// the same transaction as the index entries that show it (the planner relies on
    /// an index not marked multikey holding no array).
    fn record_multikey(
        &mut self,
        ns: &Namespace,
        news: index::MultikeyNews,
    ) -> Result<(), MongoError> {
        let mut changed = false;
        for (id, paths) in news {
            let written = self.multikey_written.entry(id).or_default();
            changed |= catalog::merge_multikey_paths(written, &paths);
        }
        if !changed {
            return Ok(());
        }
        let Some(mut meta) = self.collection(ns)? else {
            return Ok(());
        };
        let mut any = false;
        for index in &mut meta.indexes {
            if let Some(paths) = self.multikey_written.get(&index.id) {
                any |= index.add_multikey_paths(paths);
            }
        }
        if any {
            catalog::put(self.w, &meta)?;
        }
        Ok(())
    }

    /// The collection, created (with an oplog entry) if it does not exist.
    fn ensure_collection(&mut self, ns: &Namespace) -> Result<CollectionMeta, MongoError> {
        match self.collection(ns)? {
            Some(meta) => Ok(meta),
            None => self.create_collection(ns, Document::new()),
        }
    }

    fn drop_collection(&mut self, meta: &CollectionMeta) -> Result<(), MongoError> {
        self.w
            .delete_table(&meta.docs_table())
            .map_err(storage_err)?;
        if meta.cap().is_some() {
            for table in [capped::natural_table(meta), capped::records_table(meta)] {
                self.w.delete_table(&table).map_err(storage_err)?;
            }
        }
        for index in &meta.indexes {
            self.w
                .delete_table(&index::table(index))
                .map_err(storage_err)?;
        }
        catalog::remove(self.w, &meta.ns)?;
        self.log(&meta.ns, Some(&meta.uuid), Op::Catalog(&CatalogOp::Drop))
    }

    /// Checks a document about to be written against the collection's validator, as
    /// mongod's `validationLevel` / `validationAction` say: `old` is the document an
    /// update replaces (a `moderate` level lets updates of already-invalid documents
    /// through).
    fn check_validator(
        &self,
        meta: &CollectionMeta,
        new: &Document,
        old: Option<&Document>,
    ) -> Result<(), MongoError> {
        if self.bypass_validation {
            return Ok(());
        }
        let Ok(validator) = meta.options.get_document("validator") else {
            return Ok(());
        };
        let level = meta.options.get_str("validationLevel").unwrap_or("strict");
        if level == "off" || validator.is_empty() {
            return Ok(());
        }
        let filter = Filter::parse(validator)?;
        if level == "moderate" && old.is_some_and(|o| !filter.matches(o)) {
            return Ok(());
        }
        if filter.matches(new) {
            return Ok(());
        }
        let id = new.get("_id").cloned().unwrap_or(Bson::Null);
        if meta.options.get_str("validationAction").ok() == Some("warn") {
            tracing::warn!(ns = %meta.ns, id = %id, "Document would fail validation");
            return Ok(());
        }
        Err(MongoError::new(
            ErrorCode::DocumentValidationFailure,
            "Document failed validation",
        )
        .with_extra(doc! {"errInfo": {"failingDocumentId": id}}))
    }

    fn insert_doc(&mut self, meta: &CollectionMeta, doc: Document) -> Result<Bson, MongoError> {
        let doc = prepare_for_insert(doc)?;
        self.check_validator(meta, &doc, None)?;
        let id = doc
            .get("_id")
            .cloned()
            .expect("prepare_for_insert adds _id");
        let key = id_key(&id);
        if self
            .w
            .get(&meta.docs_table(), &key)
            .map_err(storage_err)?
            .is_some()
        {
            return Err(index::duplicate_key_error(
                meta,
                "_id_",
                &doc! {"_id": 1},
                &doc! {"_id": id},
            ));
        }
        index::check_unique(&*self.w, meta, &doc, &key)?;
        let bytes = encode_checked(&doc, |size| {
            // mongod's fixDocumentForInsert: BadValue, not BSONObjectTooLarge.
            MongoError::new(
                ErrorCode::BadValue,
                format!("object to insert too large. size in bytes: {size}, max size: {MAX_USER_DOC_SIZE}"),
            )
        })?;
        let cap = meta.cap();
        if let Some(cap) = &cap {
            capped::check_fits(cap, bytes.len())?;
        }
        let news = index::add_entries(self.w, meta, &doc, &key)?;
        self.record_multikey(&meta.ns, news)?;
        self.w
            .put(&meta.docs_table(), &key, &bytes)
            .map_err(storage_err)?;
        if let Some(cap) = &cap {
            let record_id = self.next_id()?;
            capped::record_insert(self.w, meta, &key, bytes.len(), record_id)?;
            self.truncate_capped(meta, cap)?;
        }
        let key = oplog::document_key(&id)?;
        let op = Op::Insert {
            key: &key,
            doc: raw_view(&bytes)?,
        };
        self.log(&meta.ns, Some(&meta.uuid), op)?;
        Ok(id)
    }

    /// Writes `new` over `old` and logs it as an update (with its description) or a
    /// replacement.
    fn rewrite_doc(
        &mut self,
        meta: &CollectionMeta,
        old: &Matched,
        new: Document,
        description: Option<Document>,
    ) -> Result<(), MongoError> {
        let old_id = old.doc.get("_id").cloned().unwrap_or(Bson::Null);
        match new.get("_id") {
            Some(id) if eddy_query::cmp::values_equal(id, &old_id) && std::mem::discriminant(id) == std::mem::discriminant(&old_id) => {}
            Some(id) => {
                return Err(MongoError::new(
                    ErrorCode::ImmutableField,
                    format!(
                        "After applying the update, the (immutable) field '_id' was found to have been altered to _id: {}",
                        crate::display_value(id)
                    ),
                ))
            }
            None => {
                return Err(MongoError::new(
                    ErrorCode::ImmutableField,
                    "After applying the update, the (immutable) field '_id' was found to have been removed",
                ))
            }
        }
        validate_stored(&new)?;
        self.check_validator(meta, &new, Some(&old.doc))?;
        let bytes = encode_checked(&new, |_| {
            MongoError::location(
                17419,
                format!("Resulting document after update is larger than {MAX_USER_DOC_SIZE}"),
            )
        })?;
        index::check_unique(&*self.w, meta, &new, &old.id_key)?;
        index::remove_entries(self.w, meta, &old.doc, &old.id_key)?;
        let news = index::add_entries(self.w, meta, &new, &old.id_key)?;
        self.record_multikey(&meta.ns, news)?;
        self.w
            .put(&meta.docs_table(), &old.id_key, &bytes)
            .map_err(storage_err)?;
        if meta.cap().is_some() {
            // mongod 6.0+ lets updates change a capped document's size; the cap is
            // enforced again by the next insert.
            capped::record_resize(self.w, meta, &old.id_key, bytes.len())?;
        }
        let images = meta.pre_and_post_images();
        let pre = match images {
            true => Some(oplog::raw_document(&old.doc)?),
            false => None,
        };
        let key = oplog::document_key(&old_id)?;
        let new = raw_view(&bytes)?;
        let description = description.as_ref().map(oplog::raw_document).transpose()?;
        let op = match &description {
            Some(description) => Op::Update {
                key: &key,
                description,
                pre: pre.as_deref(),
                post: images.then_some(new),
            },
            None => Op::Replace {
                key: &key,
                doc: new,
                pre: pre.as_deref(),
            },
        };
        self.log(&meta.ns, Some(&meta.uuid), op)
    }

    /// Removes the oldest documents of a capped collection while it is over its cap.
    /// Not logged: as in mongod 7.0, capped truncation is each node's own business, and
    /// change streams do not report it.
    fn truncate_capped(
        &mut self,
        meta: &CollectionMeta,
        cap: &capped::Cap,
    ) -> Result<(), MongoError> {
        while let Some(key) = capped::oldest_over_cap(self.w, meta, cap)? {
            self.remove_doc(meta, &key)?;
        }
        Ok(())
    }

    /// Removes a document, its index entries and its capped record, without logging.
    fn remove_doc(&mut self, meta: &CollectionMeta, id_key: &[u8]) -> Result<(), MongoError> {
        if let Some(bytes) = self
            .w
            .get(&meta.docs_table(), id_key)
            .map_err(storage_err)?
        {
            let doc = catalog::decode(&bytes)?;
            index::remove_entries(self.w, meta, &doc, id_key)?;
            self.w
                .delete(&meta.docs_table(), id_key)
                .map_err(storage_err)?;
        }
        if meta.cap().is_some() {
            capped::record_delete(self.w, meta, id_key)?;
        }
        Ok(())
    }

    fn delete_doc(&mut self, meta: &CollectionMeta, m: &Matched) -> Result<(), MongoError> {
        index::remove_entries(self.w, meta, &m.doc, &m.id_key)?;
        self.w
            .delete(&meta.docs_table(), &m.id_key)
            .map_err(storage_err)?;
        if meta.cap().is_some() {
            capped::record_delete(self.w, meta, &m.id_key)?;
        }
        let id = m.doc.get("_id").cloned().unwrap_or(Bson::Null);
        let pre = match meta.pre_and_post_images() {
            true => Some(oplog::raw_document(&m.doc)?),
            false => None,
        };
        let key = oplog::document_key(&id)?;
        let op = Op::Delete {
            key: &key,
            pre: pre.as_deref(),
        };
        self.log(&meta.ns, Some(&meta.uuid), op)
    }

    /// Applies `update` to a matched document; whether it changed.
    fn apply_update(
        &mut self,
        meta: &CollectionMeta,
        update: &Update,
        m: &Matched,
    ) -> Result<Option<Document>, MongoError> {
        let ctx = ApplyContext {
            matched: m.details.as_ref(),
            is_upsert_insert: false,
            now: self.wall,
        };
        let applied = update.apply(&m.doc, &ctx)?;
        if !applied.modified {
            return Ok(None);
        }
        // A pipeline update that mongod logs as a whole new document (no diff) is a
        // `replace` event, like a replacement.
        let logged_as_replace = update.is_replacement()
            || (matches!(update, Update::Pipeline(_)) && applied.diff.is_none());
        let description = (!logged_as_replace).then(|| applied.description.to_document(true));
        self.rewrite_doc(meta, m, applied.doc.clone(), description)?;
        Ok(Some(applied.doc))
    }

    /// The document an upsert inserts.
    fn upsert_document(
        &self,
        filter_doc: &Document,
        update: &Update,
    ) -> Result<Document, MongoError> {
        let seed = eddy_query::update::upsert_seed(filter_doc)?;
        let applied = update.apply(
            &seed,
            &ApplyContext {
                matched: None,
                is_upsert_insert: true,
                now: self.wall,
            },
        )?;
        let mut doc = applied.doc;
        if update.is_replacement() {
            if let (Some(id), None) = (seed.get("_id"), doc.get("_id")) {
                doc.insert("_id", id.clone());
            }
        }
        Ok(doc)
    }

    fn update_one_statement(
        &mut self,
        ns: &Namespace,
        op: &UpdateOp,
    ) -> Result<StatementOutcome, MongoError> {
        let filter = Filter::parse_collated(&op.filter, &op.let_vars, op.collation.as_ref())?;
        let update =
            Update::parse_with_vars(&op.update, op.array_filters.as_deref(), &op.let_vars)?;
        if op.multi && update.is_replacement() {
            return Err(MongoError::new(
                ErrorCode::FailedToParse,
                "multi update is not supported for replacement-style update",
            ));
        }
        let meta = match self.collection(ns)? {
            Some(meta) => Some(meta),
            None if op.upsert => Some(self.ensure_collection(ns)?),
            None => None,
        };
        let Some(meta) = meta else {
            return Ok(StatementOutcome {
                n: 0,
                n_modified: 0,
                upserted: None,
            });
        };
        let limit = (!op.multi).then_some(1);
        let mut q = Query::new(&op.filter, &filter);
        q.hint = op.hint.as_ref();
        let matched = self.matching(&meta, &q, limit)?;
        if matched.is_empty() {
            if !op.upsert {
                return Ok(StatementOutcome {
                    n: 0,
                    n_modified: 0,
                    upserted: None,
                });
            }
            let doc = self.upsert_document(&op.filter, &update)?;
            let id = self.insert_doc(&meta, doc)?;
            return Ok(StatementOutcome {
                n: 1,
                n_modified: 0,
                upserted: Some(id),
            });
        }
        let mut out = StatementOutcome {
            n: 0,
            n_modified: 0,
            upserted: None,
        };
        for m in &matched {
            out.n += 1;
            if self.apply_update(&meta, &update, m)?.is_some() {
                out.n_modified += 1;
            }
        }
        Ok(out)
    }

    fn find_and_modify(
        &mut self,
        ns: &Namespace,
        req: &FindAndModify,
    ) -> Result<FindAndModifyOutcome, MongoError> {
        let filter = Filter::parse_collated(&req.query, &req.let_vars, req.collation.as_ref())?;
        let update = match (&req.update, req.remove) {
            (Some(_), true) => {
                return Err(MongoError::new(
                    ErrorCode::FailedToParse,
                    "Cannot specify both an update and remove=true",
                ))
            }
            (None, false) => {
                return Err(MongoError::new(
                    ErrorCode::FailedToParse,
                    "Either an update or remove=true must be specified",
                ))
            }
            (Some(u), false) => Some(Update::parse_with_vars(
                u,
                req.array_filters.as_deref(),
                &req.let_vars,
            )?),
            (None, true) => None,
        };
        if req.remove && req.upsert {
            return Err(MongoError::new(
                ErrorCode::FailedToParse,
                "Cannot specify both upsert=true and remove=true",
            ));
        }
        let meta = match self.collection(ns)? {
            Some(meta) => Some(meta),
            None if req.upsert => Some(self.ensure_collection(ns)?),
            None => None,
        };
        let Some(meta) = meta else {
            return Ok(FindAndModifyOutcome::default());
        };
        // The first document in sort order (from an index when one gives the order).
        let sort = match &req.sort {
            Some(sort) if !sort.is_empty() => {
                Some(eddy_query::sort::SortSpec::parse(sort)?.with_collation(req.collation.clone()))
            }
            _ => None,
        };
        let mut q = Query::new(&req.query, &filter);
        q.sort = sort.as_ref();
        q.hint = req.hint.as_ref();
        let mut matched = self.matching(&meta, &q, Some(1))?;
        let Some(m) = matched.pop() else {
            let Some(update) = update.filter(|_| req.upsert) else {
                return Ok(FindAndModifyOutcome::default());
            };
            let doc = self.upsert_document(&req.query, &update)?;
            let id = self.insert_doc(&meta, doc.clone())?;
            let mut inserted = prepare_for_insert(doc)?;
            inserted.insert("_id", id.clone());
            return Ok(FindAndModifyOutcome {
                value: req.return_new.then_some(inserted),
                n: 1,
                updated_existing: false,
                upserted: Some(id),
            });
        };
        match update {
            None => {
                self.delete_doc(&meta, &m)?;
                Ok(FindAndModifyOutcome {
                    value: Some(m.doc),
                    n: 1,
                    updated_existing: false,
                    upserted: None,
                })
            }
            Some(update) => {
                let new = self.apply_update(&meta, &update, &m)?;
                let value = if req.return_new {
                    Some(new.unwrap_or_else(|| m.doc.clone()))
                } else {
                    Some(m.doc.clone())
                };
                Ok(FindAndModifyOutcome {
                    value,
                    n: 1,
                    updated_existing: true,
                    upserted: None,
                })
            }
        }
    }

    fn create_index(
        &mut self,
        meta: &mut CollectionMeta,
        spec: Document,
    ) -> Result<(), MongoError> {
        let spec = normalize_index_spec(spec)?;
        let name = spec.get_str("name").unwrap_or_default().to_owned();
        let key = spec.get_document("key").cloned().unwrap_or_default();
        if key == doc! {"_id": 1} {
            return Ok(());
        }
        if let Some(existing) = meta.index(&name) {
            if !catalog::same_key_pattern(&existing.key_pattern(), &key) {
                return Err(MongoError::new(
                    ErrorCode::IndexKeySpecsConflict,
                    format!(
                        "An existing index has the same name as the requested index. When index names are not specified, they are auto generated and can cause conflicts. Please refer to our documentation. Requested index: {}, existing index: {}",
                        crate::display_value(&Bson::Document(spec.clone())),
                        crate::display_value(&Bson::Document(existing.spec.clone()))
                    ),
                ));
            }
            if options_of(&existing.spec) != options_of(&spec) {
                return Err(MongoError::new(
                    ErrorCode::IndexOptionsConflict,
                    format!("An equivalent index already exists with the same name but different options. Requested index: {}, existing index: {}",
                        crate::display_value(&Bson::Document(spec.clone())),
                        crate::display_value(&Bson::Document(existing.spec.clone()))),
                ));
            }
            return Ok(());
        }
        if let Some(existing) = meta
            .indexes
            .iter()
            .find(|i| catalog::same_key_pattern(&i.key_pattern(), &key))
        {
            if options_of(&existing.spec) == options_of(&spec) {
                return Err(MongoError::new(
                    ErrorCode::IndexOptionsConflict,
                    format!(
                        "Index already exists with a different name: {}",
                        existing.name()
                    ),
                ));
            }
            return Err(MongoError::new(
                ErrorCode::IndexOptionsConflict,
                format!("An equivalent index already exists with a different name and options. Requested index: {}, existing index: {}",
                    crate::display_value(&Bson::Document(spec.clone())),
                    crate::display_value(&Bson::Document(existing.spec.clone()))),
            ));
        }
        let mut index = IndexMeta {
            id: self.next_id()?,
            spec: spec.clone(),
            multikey_paths: Some(vec![Vec::new(); key.len()]),
        };
        // Build: every document's keys, checking uniqueness as entries are added.
        let table = index::table(&index);
        let docs: Vec<(Vec<u8>, Vec<u8>)> = self
            .w
            .scan(
                &meta.docs_table(),
                std::ops::Bound::Unbounded,
                std::ops::Bound::Unbounded,
                false,
            )
            .map_err(storage_err)?
            .collect::<Result<_, _>>()
            .map_err(storage_err)?;
        let probe = CollectionMeta {
            indexes: vec![index.clone()],
            ..meta.clone()
        };
        for (id_key, bytes) in docs {
            let doc = catalog::decode(&bytes)?;
            if index.unique() {
                if let Err(e) = index::check_unique(&*self.w, &probe, &doc, &id_key) {
                    self.w.delete_table(&table).map_err(storage_err)?;
                    return Err(e);
                }
            }
            let paths = index::add_index_entries(self.w, &index, &doc, &id_key)?;
            index.add_multikey_paths(&paths);
        }
        self.engine.usage.created(meta.id, index.id);
        meta.indexes.push(index);
        catalog::put(self.w, meta)?;
        self.log(
            &meta.ns,
            Some(&meta.uuid),
            Op::Catalog(&CatalogOp::CreateIndexes { spec }),
        )
    }
}

/// The options of an index spec that make two indexes on the same key different.
fn options_of(spec: &Document) -> Document {
    let mut out = Document::new();
    for k in [
        "unique",
        "sparse",
        "partialFilterExpression",
        "expireAfterSeconds",
        "collation",
        "hidden",
    ] {
        if let Some(v) = spec.get(k) {
            if !(k != "partialFilterExpression" && matches!(v, Bson::Boolean(false))) {
                out.insert(k, v.clone());
            }
        }
    }
    out
}

/// The default name mongod gives an index: `a_1_b_-1`.
pub fn default_index_name(key: &Document) -> String {
    key.iter()
        .map(|(k, v)| {
            let dir = match v {
                Bson::Int32(n) => n.to_string(),
                Bson::Int64(n) => n.to_string(),
                Bson::Double(d) if d.fract() == 0.0 => format!("{}", *d as i64),
                Bson::Double(d) => d.to_string(),
                Bson::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("{k}_{dir}")
        })
        .collect::<Vec<_>>()
        .join("_")
}

/// Validates an index spec and puts it in the shape listIndexes shows.
fn normalize_index_spec(spec: Document) -> Result<Document, MongoError> {
    let key = match spec.get("key") {
        Some(Bson::Document(k)) => k.clone(),
        Some(_) => {
            return Err(MongoError::type_mismatch(
                "The field 'key' must be an object",
            ))
        }
        None => {
            return Err(MongoError::failed_to_parse(
                "The 'key' field is a required property of an index specification",
            ))
        }
    };
    if key.is_empty() {
        return Err(MongoError::new(
            ErrorCode::CannotCreateIndex,
            "Index keys cannot be empty.",
        ));
    }
    for (field, dir) in &key {
        if field.is_empty() {
            return Err(MongoError::new(
                ErrorCode::CannotCreateIndex,
                "Index key cannot be an empty field.",
            ));
        }
        match dir {
            Bson::Int32(n) if *n != 0 => {}
            Bson::Int64(n) if *n != 0 => {}
            Bson::Double(d) if *d != 0.0 && d.is_finite() => {}
            Bson::String(kind) => {
                return Err(MongoError::new(
                    ErrorCode::CannotCreateIndex,
                    format!("Eddy does not support '{kind}' indexes yet (field '{field}')"),
                ))
            }
            other => {
                return Err(MongoError::new(
                    ErrorCode::CannotCreateIndex,
                    format!("Values in the index key pattern can only be numbers or strings, found {field}: {}", crate::display_value(other)),
                ))
            }
        }
    }
    let name = match spec.get("name") {
        Some(Bson::String(n)) if !n.is_empty() => n.clone(),
        Some(Bson::String(_)) => {
            return Err(MongoError::new(
                ErrorCode::CannotCreateIndex,
                "The index name cannot be empty",
            ))
        }
        Some(_) => {
            return Err(MongoError::type_mismatch(
                "The field 'name' must be a string",
            ))
        }
        None => default_index_name(&key),
    };
    let mut out = doc! {"v": 2, "key": key, "name": name};
    for (k, v) in &spec {
        match k.as_str() {
            "key" | "name" | "v" | "ns" => {}
            // Deprecated and ignored since 3.0, still accepted by mongod 7.0.
            "dropDups" => {}
            "unique" | "sparse" | "hidden" | "background" => {
                out.insert(k.clone(), Bson::Boolean(v.as_bool().unwrap_or(false) || matches!(v, Bson::Int32(n) if *n != 0)));
            }
            "partialFilterExpression" => {
                let f = v.as_document().ok_or_else(|| MongoError::type_mismatch("partialFilterExpression must be an object"))?;
                Filter::parse(f)?;
                out.insert(k.clone(), v.clone());
            }
            "expireAfterSeconds" => {
                return Err(MongoError::new(ErrorCode::CannotCreateIndex, "Eddy does not support TTL indexes (expireAfterSeconds) yet"));
            }
            "collation" => {
                let simple = v.as_document().and_then(|d| d.get_str("locale").ok()) == Some("simple");
                if !simple {
                    return Err(MongoError::new(ErrorCode::CommandNotSupported, "Eddy supports only the simple collation"));
                }
            }
            other => {
                return Err(MongoError::new(
                    ErrorCode::InvalidIndexSpecificationOption,
                    format!("The field '{other}' is not valid for an index specification. Specification: {}", crate::display_value(&Bson::Document(spec.clone()))),
                ))
            }
        }
    }
    Ok(out)
}

/// Puts `_id` first (adding an ObjectId when missing) and validates the document.
pub fn prepare_for_insert(mut doc: Document) -> Result<Document, MongoError> {
    let id = doc
        .remove("_id")
        .unwrap_or_else(|| Bson::ObjectId(ObjectId::new()));
    match &id {
        Bson::Array(_) => {
            return Err(MongoError::new(
                ErrorCode::InvalidIdField,
                "The '_id' value cannot be of type array",
            ))
        }
        Bson::RegularExpression(_) => {
            return Err(MongoError::new(
                ErrorCode::InvalidIdField,
                "can't use a regex for _id",
            ))
        }
        Bson::Undefined => {
            return Err(MongoError::new(
                ErrorCode::InvalidIdField,
                "can't use a undefined for _id",
            ))
        }
        _ => {}
    }
    let mut out = Document::new();
    out.insert("_id", id);
    out.extend(doc);
    validate_stored(&out)?;
    Ok(out)
}

/// mongod's storage validation. Since 5.0, field names may start with `$` (inserts and
/// pipeline updates store them; update operators and replacements refuse them
/// earlier), except inside `_id`.
fn validate_stored(doc: &Document) -> Result<(), MongoError> {
    if let Some(Bson::Document(id)) = doc.get("_id") {
        for key in id.keys() {
            if key.starts_with('$') {
                return Err(MongoError::new(
                    ErrorCode::DollarPrefixedFieldName,
                    format!("_id fields may not contain '$'-prefixed fields: {key} is not valid for storage."),
                ));
            }
        }
    }
    Ok(())
}

/// Encodes a document, refusing it with `too_large(size)` when it exceeds the user size
/// limit (inserts and updates answer differently in mongod).
fn encode_checked(
    doc: &Document,
    too_large: impl FnOnce(usize) -> MongoError,
) -> Result<Vec<u8>, MongoError> {
    let bytes = catalog::encode(doc)?;
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
