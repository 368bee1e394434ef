//! Document writes: insert, update, delete and findAndModify, and the per-document
//! steps they share (validation, index maintenance, capped bookkeeping, logging).

use std::sync::Arc;

use bson::{doc, oid::ObjectId, Bson, Document};
use eddy_codes::{ErrorCode, MongoError};
use eddy_query::filter::Filter;
use eddy_query::update::{ApplyContext, Update};

use super::{
    encode_checked, raw_view, DeleteOp, FindAndModify, FindAndModifyOutcome, RetryableWrite, Tx,
    UpdateOp, WriteOutcome, MAX_USER_DOC_SIZE,
};
use crate::catalog::{self, CollectionMeta, Namespace};
use crate::oplog::{self, Op};
use crate::plan::Query;
use crate::read::{id_key, Matched};
use crate::{capped, id_index, index, storage_err, timeseries, Engine};

impl Engine {
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
        self.insert_retryable(ns, docs, ordered, bypass_document_validation, None)
    }

    /// [`Engine::insert_bypassing`] as a retryable write when `retry` is given: a
    /// statement that ran in an earlier attempt counts as inserted and is not run again.
    pub fn insert_retryable(
        self: &Arc<Self>,
        ns: Namespace,
        docs: Vec<Document>,
        ordered: bool,
        bypass_document_validation: bool,
        retry: Option<RetryableWrite>,
    ) -> Result<WriteOutcome, MongoError> {
        self.execute_retryable(retry, move |tx| {
            tx.bypass_validation = bypass_document_validation;
            let meta = tx.ensure_collection(&ns)?;
            let mut out = WriteOutcome::default();
            for (i, doc) in docs.into_iter().enumerate() {
                if tx.executed(i).is_some() {
                    out.n += 1;
                    continue;
                }
                match tx
                    .before_statement(i)
                    .and_then(|()| tx.insert_doc(&meta, doc))
                {
                    Ok(_) => {
                        out.n += 1;
                        tx.record_statement(i, Document::new());
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

    /// Runs the statements of an `update` command.
    pub fn update(
        self: &Arc<Self>,
        ns: Namespace,
        ops: Vec<UpdateOp>,
        ordered: bool,
    ) -> Result<WriteOutcome, MongoError> {
        self.update_retryable(ns, ops, ordered, None)
    }

    /// [`Engine::update`] as a retryable write when `retry` is given: a statement that
    /// ran in an earlier attempt answers its recorded `n`, `nModified` and `upserted`.
    pub fn update_retryable(
        self: &Arc<Self>,
        ns: Namespace,
        ops: Vec<UpdateOp>,
        ordered: bool,
        retry: Option<RetryableWrite>,
    ) -> Result<WriteOutcome, MongoError> {
        catalog::validate_writable(&ns)?;
        self.execute_retryable(retry, move |tx| {
            let mut out = WriteOutcome::default();
            for (i, op) in ops.into_iter().enumerate() {
                let stmt = match tx.executed(i) {
                    Some(r) => Ok(StatementOutcome::from_record(&r)),
                    None => {
                        tx.bypass_validation = op.bypass_document_validation;
                        let logged = tx.logged();
                        let stmt = tx
                            .before_statement(i)
                            .and_then(|()| tx.update_one_statement(&ns, &op));
                        if let (Ok(stmt), true) = (&stmt, tx.logged() > logged) {
                            tx.record_statement(i, stmt.to_record());
                        }
                        stmt
                    }
                };
                match stmt {
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
        self.delete_retryable(ns, ops, ordered, None)
    }

    /// [`Engine::delete`] as a retryable write when `retry` is given: a statement that
    /// ran in an earlier attempt answers its recorded `n`.
    pub fn delete_retryable(
        self: &Arc<Self>,
        ns: Namespace,
        ops: Vec<DeleteOp>,
        ordered: bool,
        retry: Option<RetryableWrite>,
    ) -> Result<WriteOutcome, MongoError> {
        self.execute_retryable(retry, move |tx| {
            let mut out = WriteOutcome::default();
            for (i, op) in ops.into_iter().enumerate() {
                if let Some(r) = tx.executed(i) {
                    out.n += count(&r, "n");
                    continue;
                }
                let logged = tx.logged();
                let res = tx.before_statement(i).and_then(|()| {
                    let filter =
                        Filter::parse_find(&op.filter, &op.let_vars, op.collation.as_ref())?;
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
                });
                match res {
                    Ok(n) => {
                        if tx.logged() > logged {
                            tx.record_statement(i, doc! {"n": n as i64});
                        }
                        out.n += n;
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

    /// Finds one document (the first by `sort`) and updates or removes it.
    pub fn find_and_modify(
        self: &Arc<Self>,
        ns: Namespace,
        req: FindAndModify,
    ) -> Result<FindAndModifyOutcome, MongoError> {
        self.find_and_modify_retryable(ns, req, None)
    }

    /// [`Engine::find_and_modify`] as a retryable write when `retry` is given: when it
    /// ran in an earlier attempt, the recorded outcome (document and
    /// `lastErrorObject`) is the answer.
    pub fn find_and_modify_retryable(
        self: &Arc<Self>,
        ns: Namespace,
        req: FindAndModify,
        retry: Option<RetryableWrite>,
    ) -> Result<FindAndModifyOutcome, MongoError> {
        if !req.remove {
            catalog::validate_writable(&ns)?;
        }
        self.execute_retryable(retry, move |tx| {
            if let Some(r) = tx.executed(0) {
                return Ok(FindAndModifyOutcome::from_record(&r));
            }
            tx.before_statement(0)?;
            tx.bypass_validation = req.bypass_document_validation;
            let logged = tx.logged();
            let out = tx.find_and_modify(&ns, &req)?;
            if tx.logged() > logged {
                tx.record_statement(0, out.to_record());
            }
            Ok(out)
        })
    }
}

/// A count stored in a session record.
fn count(record: &Document, field: &str) -> u64 {
    record.get_i64(field).map_or(0, |n| n.max(0) as u64)
}

impl FindAndModifyOutcome {
    /// What the session record keeps of it (`super::retry`).
    fn to_record(&self) -> Document {
        let mut d = doc! {"n": self.n as i64, "updatedExisting": self.updated_existing};
        if let Some(v) = &self.value {
            d.insert("value", v.clone());
        }
        if let Some(id) = &self.upserted {
            d.insert("upserted", id.clone());
        }
        d
    }

    fn from_record(r: &Document) -> FindAndModifyOutcome {
        FindAndModifyOutcome {
            value: r.get_document("value").ok().cloned(),
            n: count(r, "n"),
            updated_existing: r.get_bool("updatedExisting").unwrap_or(false),
            upserted: r.get("upserted").cloned(),
        }
    }
}

impl StatementOutcome {
    fn to_record(&self) -> Document {
        let mut d = doc! {"n": self.n as i64, "nModified": self.n_modified as i64};
        if let Some(id) = &self.upserted {
            d.insert("upserted", id.clone());
        }
        d
    }

    fn from_record(r: &Document) -> StatementOutcome {
        StatementOutcome {
            n: count(r, "n"),
            n_modified: count(r, "nModified"),
            upserted: r.get("upserted").cloned(),
        }
    }
}

struct StatementOutcome {
    n: u64,
    n_modified: u64,
    upserted: Option<Bson>,
}

impl Tx<'_, '_> {
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
        self.check_not_capped_in_txn(meta)?;
        let doc = prepare_for_insert(doc)?;
        self.check_validator(meta, &doc, None)?;
        let id = doc
            .get("_id")
            .cloned()
            .expect("prepare_for_insert adds _id");
        // Measurements may share an `_id` (see `crate::timeseries`).
        let (key, unique_id) = match meta.timeseries() {
            Some(spec) => {
                timeseries::check_measurement(&spec, &doc)?;
                (timeseries::storage_key(&id, self.next_id()?), false)
            }
            None => (id_key(&id), true),
        };
        if unique_id
            && self
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
        if unique_id {
            id_index::check(&*self.w, meta, &id, &key)?;
        }
        index::check_unique(&*self.w, meta, &doc, None, &key)?;
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
        id_index::add(self.w, meta, &id, &key)?;
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
        self.log(&timeseries::logged_ns(meta), Some(&meta.uuid), op)?;
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
        self.check_not_capped_in_txn(meta)?;
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
        index::check_unique(&*self.w, meta, &new, Some(&old.doc), &old.id_key)?;
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
        self.log(&timeseries::logged_ns(meta), Some(&meta.uuid), op)
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
            let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
            id_index::remove(self.w, meta, &id, id_key)?;
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
        self.check_not_capped_in_txn(meta)?;
        index::remove_entries(self.w, meta, &m.doc, &m.id_key)?;
        let id = m.doc.get("_id").cloned().unwrap_or(Bson::Null);
        id_index::remove(self.w, meta, &id, &m.id_key)?;
        self.w
            .delete(&meta.docs_table(), &m.id_key)
            .map_err(storage_err)?;
        if meta.cap().is_some() {
            capped::record_delete(self.w, meta, &m.id_key)?;
        }
        let pre = match meta.pre_and_post_images() {
            true => Some(oplog::raw_document(&m.doc)?),
            false => None,
        };
        let key = oplog::document_key(&id)?;
        let op = Op::Delete {
            key: &key,
            pre: pre.as_deref(),
        };
        self.log(&timeseries::logged_ns(meta), Some(&meta.uuid), op)
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
        let filter = Filter::parse_find(&op.filter, &op.let_vars, op.collation.as_ref())?;
        let update =
            Update::parse_with_vars(&op.update, op.array_filters.as_deref(), &op.let_vars)?
                .collated(op.collation.as_ref());
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
        if let Some(spec) = meta.timeseries() {
            timeseries::check_update(&spec, op)?;
        }
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
        let filter = Filter::parse_find(&req.query, &req.let_vars, req.collation.as_ref())?;
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
            (Some(u), false) => Some(
                Update::parse_with_vars(u, req.array_filters.as_deref(), &req.let_vars)?
                    .collated(req.collation.as_ref()),
            ),
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
        if meta.timeseries().is_some() {
            // A view of its buckets in mongod 7.0, whose findAndModify takes collections
            // only (without `featureFlagTimeseriesUpdatesSupport`).
            return Err(MongoError::new(
                ErrorCode::CommandNotSupportedOnView,
                format!("Namespace {ns} is a view, not a collection"),
            ));
        }
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

/// mongod's storage validation of a document about to be stored. Since 5.0, field
/// names may start with `$` (inserts, upserts and pipeline updates store them at any
/// level; replacements and update operators refuse top-level ones earlier, in
/// [`eddy_query::update`]), except inside `_id` at any depth.
fn validate_stored(doc: &Document) -> Result<(), MongoError> {
    match doc.get("_id") {
        Some(id) => eddy_query::storage::validate_id(id),
        None => Ok(()),
    }
}
