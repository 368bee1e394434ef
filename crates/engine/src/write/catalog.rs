//! Catalog writes: creating and dropping collections and views, dropping a database,
//! renaming a collection, `collMod`, and the checks a view chain must pass.

use std::sync::Arc;

use bson::{doc, Bson, Document};
use eddy_codes::{ErrorCode, MongoError};

use super::Tx;
use crate::catalog::{self, CollectionMeta, Namespace, ViewMeta};
use crate::oplog::{CatalogOp, Op};
use crate::{capped, index, storage_err, Engine};

impl Engine {
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

    /// Changes collection, view or index options (`collMod`). Returns the fields its reply
    /// adds (`expireAfterSeconds_old`/`_new`, `hidden_old`/`_new` for an index).
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
            let mut reply = Document::new();
            let mut index_before = None;
            for (k, v) in &changes {
                match k.as_str() {
                    "index" => {
                        let spec = v.as_document().cloned().unwrap_or_default();
                        let (old, fields) = modify_index(&mut meta, &spec)?;
                        index_before = Some(old);
                        reply.extend(fields);
                    }
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
                    old_options: before,
                    old_index_options: index_before,
                }),
            )?;
            Ok(reply)
        })
    }
}

/// `collMod`'s `index: {name | keyPattern, expireAfterSeconds?, hidden?}` (checked by the
/// command): the index's options before (for the oplog's `o2`), and the reply's
/// `expireAfterSeconds_old`/`_new` and `hidden_old`/`_new`, as mongod's.
fn modify_index(
    meta: &mut CollectionMeta,
    spec: &Document,
) -> Result<(Document, Document), MongoError> {
    let target = match (spec.get_str("name"), spec.get_document("keyPattern")) {
        (Ok(name), _) => meta
            .indexes
            .iter()
            .position(|i| i.spec.get_str("name").ok() == Some(name)),
        (_, Ok(key)) => meta
            .indexes
            .iter()
            .position(|i| catalog::same_key_pattern(&i.key_pattern(), key)),
        _ => None,
    };
    let id_index = spec.get_str("name").ok() == Some("_id_")
        || spec.get_document("keyPattern").ok() == Some(&doc! {"_id": 1});
    if id_index {
        let why = match spec.contains_key("hidden") {
            true => (ErrorCode::BadValue, "can't hide _id index"),
            false => (
                ErrorCode::InvalidOptions,
                "the _id field does not support TTL indexes",
            ),
        };
        return Err(MongoError::new(why.0, why.1));
    }
    let Some(at) = target else {
        let which = match spec.get("name") {
            Some(name) => crate::display_value(name),
            None => crate::display_value(spec.get("keyPattern").unwrap_or(&Bson::Null)),
        };
        return Err(MongoError::new(
            ErrorCode::IndexNotFound,
            format!("cannot find index {which} for ns {}", meta.ns),
        ));
    };
    let index = &mut meta.indexes[at];
    let mut old = Document::new();
    let mut reply = Document::new();
    if let Some(seconds) = spec.get("expireAfterSeconds") {
        if index.key_pattern().len() != 1 {
            return Err(MongoError::new(
                ErrorCode::InvalidOptions,
                "TTL indexes are single-field indexes, compound indexes do not support TTL",
            ));
        }
        if let Some(was) = index.spec.get("expireAfterSeconds") {
            old.insert("expireAfterSeconds", was.clone());
            reply.insert("expireAfterSeconds_old", was.clone());
        }
        reply.insert("expireAfterSeconds_new", seconds.clone());
        index.spec.insert("expireAfterSeconds", seconds.clone());
    }
    if let Some(hidden) = spec.get("hidden") {
        let was = index.spec.get_bool("hidden").unwrap_or(false);
        let now = hidden.as_bool().unwrap_or(false);
        old.insert("hidden", was);
        reply.insert("hidden_old", was);
        reply.insert("hidden_new", now);
        match now {
            true => index.spec.insert("hidden", true),
            false => index.spec.remove("hidden"),
        };
    }
    Ok((old, reply))
}

impl Tx<'_, '_> {
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
                old_options: before,
                old_index_options: None,
            }),
        )?;
        // A view's collMod replies with nothing more than `ok`.
        Ok(Document::new())
    }

    /// The collection, created (with an oplog entry) if it does not exist.
    pub(super) fn ensure_collection(
        &mut self,
        ns: &Namespace,
    ) -> Result<CollectionMeta, MongoError> {
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
}
