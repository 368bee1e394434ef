//! Catalog writes: creating and dropping collections and views, dropping a database,
//! renaming a collection, `collMod`, and the checks a view chain must pass.

use std::sync::Arc;

use bson::{doc, Bson, Document};
use eddy_codes::{ErrorCode, MongoError};
use eddy_query::collation;

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
            let mut meta = tx.create_collection(&ns, options)?;
            // mongod 6.3+ gives a time-series collection with a `metaField` an index on
            // `{<metaField>: 1, <timeField>: 1}`.
            let default_index = meta.timeseries().and_then(|spec| {
                let m = spec.meta_field?;
                Some(doc! {"key": {m: 1, spec.time_field: 1}})
            });
            if let Some(spec) = default_index {
                tx.create_index(&mut meta, spec)?;
            }
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
        self.create_view_collated(ns, view_on, pipeline, None)
    }

    /// [`Engine::create_view`] with the view's default collation (normalized; `None`:
    /// simple). A view on a view must have that view's collation, and a view others are
    /// defined on must have theirs (167 OptionNotSupportedOnView, as mongod).
    pub fn create_view_collated(
        self: &Arc<Self>,
        ns: Namespace,
        view_on: String,
        pipeline: Vec<Document>,
        collation: Option<Document>,
    ) -> Result<(), MongoError> {
        catalog::validate_writable(&ns)?;
        self.execute(move |tx| {
            tx.check_free(&ns)?;
            tx.check_view_chain(&ns, &view_on)?;
            let view = ViewMeta {
                ns: ns.clone(),
                view_on,
                pipeline,
                collation,
            };
            tx.check_view_collations(&view)?;
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
    /// Views, and time-series collections (views of their buckets in mongod), are
    /// neither renamed nor replaced, as in mongod 7.0 (166 for a source, 48 for a
    /// target).
    pub fn rename_collection(
        self: &Arc<Self>,
        from: Namespace,
        to: Namespace,
        drop_target: bool,
    ) -> Result<(), MongoError> {
        self.rename(from, to, drop_target, false)
    }

    /// [`Engine::rename_collection`]; `internal` (`$out`, `convertToCapped`) lets a
    /// temporary time-series collection replace the one it was filled for.
    pub(crate) fn rename(
        self: &Arc<Self>,
        from: Namespace,
        to: Namespace,
        drop_target: bool,
        internal: bool,
    ) -> Result<(), MongoError> {
        catalog::validate_writable(&to)?;
        self.execute(move |tx| {
            // A view, or a time-series collection (a view of its buckets in mongod).
            let is_view = |tx: &Tx<'_, '_>, ns: &Namespace| -> Result<bool, MongoError> {
                Ok(catalog::view(&*tx.w, ns)?.is_some()
                    || tx.collection(ns)?.is_some_and(|m| m.timeseries().is_some()))
            };
            if !internal && is_view(tx, &from)? {
                return Err(MongoError::new(
                    ErrorCode::CommandNotSupportedOnView,
                    format!("cannot rename view: {from}"),
                ));
            }
            let Some(mut meta) = tx.collection(&from)? else {
                return Err(MongoError::new(
                    ErrorCode::NamespaceNotFound,
                    format!("Source collection {from} does not exist"),
                ));
            };
            if !internal && is_view(tx, &to)? {
                return Err(MongoError::new(
                    ErrorCode::NamespaceExists,
                    format!("a view already exists with that name: {to}"),
                ));
            }
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
            if changes.get_bool("dryRun").unwrap_or(false) {
                return dry_run(&*tx.w, &meta, &changes);
            }
            let timeseries = meta.timeseries().is_some();
            let before = meta.options.clone();
            let mut reply = Document::new();
            let mut index_before = None;
            for (k, v) in &changes {
                match k.as_str() {
                    "dryRun" => {}
                    "validator"
                    | "validationLevel"
                    | "validationAction"
                    | "changeStreamPreAndPostImages"
                        if timeseries =>
                    {
                        return Err(MongoError::new(
                            ErrorCode::InvalidOptions,
                            format!("option not supported on a time-series collection: {k}"),
                        ))
                    }
                    "index"
                        if timeseries
                            && v.as_document()
                                .is_some_and(|i| i.contains_key("expireAfterSeconds")) =>
                    {
                        return Err(MongoError::new(
                            ErrorCode::InvalidOptions,
                            "TTL indexes are not supported for time-series collections. Please refer to the documentation and use the top-level 'expireAfterSeconds' option instead",
                        ))
                    }
                    "expireAfterSeconds" => {
                        if !timeseries && meta.clustered_index().is_none() {
                            return Err(MongoError::new(
                                ErrorCode::InvalidOptions,
                                "'expireAfterSeconds' option is only supported on collections clustered by _id",
                            ));
                        }
                        match crate::timeseries::collection_expiry(v)? {
                            Some(seconds) => {
                                meta.options.insert("expireAfterSeconds", seconds);
                            }
                            None => {
                                meta.options.remove("expireAfterSeconds");
                            }
                        }
                    }
                    "timeseries" => {
                        let Ok(current) = meta.options.get_document("timeseries") else {
                            return Err(MongoError::new(
                                ErrorCode::InvalidOptions,
                                "option only supported on a time-series collection: timeseries",
                            ));
                        };
                        let change = v.as_document().cloned().unwrap_or_default();
                        if let Some(options) = crate::timeseries::modify_options(current, &change)? {
                            meta.options.insert("timeseries", options);
                        }
                    }
                    "index" => {
                        let spec = v.as_document().cloned().unwrap_or_default();
                        let change = modify_index(&*tx.w, &mut meta, &spec)?;
                        let index_changes =
                            ["expireAfterSeconds", "hidden", "unique", "prepareUnique"]
                                .iter()
                                .filter(|k| spec.contains_key(k))
                                .count();
                        if change.prepare_unique && (changes.len() > 1 || index_changes > 1) {
                            return Err(MongoError::new(
                                ErrorCode::InvalidOptions,
                                "prepareUnique cannot be combined with any other modification.",
                            ));
                        }
                        if let Some(at) = change.made_unique {
                            index::rewrite_unique(tx.w, &meta.indexes[at])?;
                        }
                        index_before = Some(change.old);
                        reply.extend(change.reply);
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

/// What `collMod` did to an index.
struct IndexChange {
    /// The index's options before (for the oplog's `o2`).
    old: Document,
    /// The reply's `expireAfterSeconds_old`/`_new`, `hidden_old`/`_new`,
    /// `prepareUnique_old`/`_new` and `unique_new`, as mongod's.
    reply: Document,
    /// `prepareUnique` changed (it cannot come with other modifications).
    prepare_unique: bool,
    /// The position of the index that became unique: its entries take the unique layout.
    made_unique: Option<usize>,
}

/// The index `collMod`'s `index: {name | keyPattern, ...}` names (27 IndexNotFound).
fn target_index(meta: &CollectionMeta, spec: &Document) -> Result<usize, MongoError> {
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
    target.ok_or_else(|| {
        let which = match spec.get("name") {
            Some(name) => crate::display_value(name),
            None => crate::display_value(spec.get("keyPattern").unwrap_or(&Bson::Null)),
        };
        MongoError::new(
            ErrorCode::IndexNotFound,
            format!("cannot find index {which} for ns {}", meta.ns),
        )
    })
}

/// 359 CannotConvertIndexToUnique, with the `_id`s of each group of documents sharing a
/// key (`violations: [{ids: [...]}]`), when `index` holds duplicates.
fn check_convertible(
    r: &(impl eddy_storage::KvRead + ?Sized),
    meta: &CollectionMeta,
    index: &catalog::IndexMeta,
) -> Result<(), MongoError> {
    let groups = index::duplicates(r, index)?;
    if groups.is_empty() {
        return Ok(());
    }
    let mut violations = Vec::with_capacity(groups.len());
    for group in groups {
        let mut ids = Vec::with_capacity(group.len());
        for id_key in group {
            let bytes = r
                .get(&meta.docs_table(), &id_key)
                .map_err(storage_err)?
                .unwrap_or_default();
            let doc = catalog::decode(&bytes)?;
            ids.push(doc.get("_id").cloned().unwrap_or(Bson::Null));
        }
        violations.push(doc! {"ids": ids});
    }
    Err(MongoError::new(
        ErrorCode::CannotConvertIndexToUnique,
        "Cannot convert the index to unique. Please resolve conflicting documents before running collMod again.",
    )
    .with_extra(doc! {"violations": violations}))
}

/// `collMod` with `dryRun: true`: only `index: {..., unique: true}`, checked for
/// duplicates and not applied (mongod's `_processCollModDryRunMode`).
fn dry_run(
    r: &(impl eddy_storage::KvRead + ?Sized),
    meta: &CollectionMeta,
    changes: &Document,
) -> Result<Document, MongoError> {
    let invalid = |why: &str| MongoError::new(ErrorCode::InvalidOptions, why.to_owned());
    let Ok(spec) = changes.get_document("index") else {
        return Err(invalid(
            "dry run mode requires an valid index modification.",
        ));
    };
    if !spec.get_bool("unique").unwrap_or(false) {
        return Err(invalid(
            "dry run mode requires an index modification with unique: true.",
        ));
    }
    // What the command asks besides `unique` (`dryRun` itself is none).
    let others = changes
        .keys()
        .filter(|k| !matches!(k.as_str(), "index" | "dryRun"))
        .count()
        + ["expireAfterSeconds", "hidden", "prepareUnique"]
            .iter()
            .filter(|k| spec.contains_key(k))
            .count();
    let at = target_index(meta, spec)?;
    let index = &meta.indexes[at];
    if !index.unique() && !index.prepare_unique() {
        return Err(invalid(
            "Cannot make index unique with 'prepareUnique=false'. Run collMod to set it first.",
        ));
    }
    if others > 0 {
        return Err(invalid(
            "unique: true cannot be combined with any other modification in dry run mode.",
        ));
    }
    if !index.unique() {
        check_convertible(r, meta, index)?;
    }
    Ok(Document::new())
}

/// `collMod`'s `index: {name | keyPattern, expireAfterSeconds?, hidden?, prepareUnique?,
/// unique?}` (checked by the command), applied as mongod's `processCollModIndexRequest`:
/// setting an option to what it is already is a no-op; `unique: true` needs
/// `prepareUnique` first and no duplicates, then clears it.
fn modify_index(
    r: &(impl eddy_storage::KvRead + ?Sized),
    meta: &mut CollectionMeta,
    spec: &Document,
) -> Result<IndexChange, MongoError> {
    let id_index = spec.get_str("name").ok() == Some("_id_")
        || spec.get_document("keyPattern").ok() == Some(&doc! {"_id": 1});
    if id_index && (spec.contains_key("hidden") || spec.contains_key("expireAfterSeconds")) {
        let why = match spec.contains_key("hidden") {
            true => (ErrorCode::BadValue, "can't hide _id index"),
            false => (
                ErrorCode::InvalidOptions,
                "the _id field does not support TTL indexes",
            ),
        };
        return Err(MongoError::new(why.0, why.1));
    }
    let at = target_index(meta, spec)?;
    let mut change = IndexChange {
        old: Document::new(),
        reply: Document::new(),
        prepare_unique: false,
        made_unique: None,
    };
    let index = &meta.indexes[at];
    // Hashed and wildcard keys are not the values (1 and 1.5 hash alike): such an index
    // refuses to become unique as its creation would (16764, 67).
    let asks_unique = spec
        .get("unique")
        .is_some_and(|u| u.as_bool() != Some(false))
        || spec.get_bool("prepareUnique").unwrap_or(false);
    if asks_unique {
        let unique = doc! {"unique": true};
        crate::hashed::check_spec(&index.key_pattern(), &unique)?;
        crate::wildcard::check_spec(&index.key_pattern(), &unique)?;
    }
    if let Some(unique) = spec.get("unique") {
        if unique.as_bool() == Some(false) {
            return Err(MongoError::new(
                ErrorCode::BadValue,
                "Cannot make index non-unique",
            ));
        }
        if !index.unique() {
            if !index.prepare_unique() {
                return Err(MongoError::new(
                    ErrorCode::InvalidOptions,
                    "Cannot make index unique with 'prepareUnique=false'. Run collMod to set it first.",
                ));
            }
            check_convertible(r, meta, index)?;
            change.made_unique = Some(at);
        }
    }
    let index = &mut meta.indexes[at];
    if let Some(seconds) = spec.get("expireAfterSeconds") {
        if index.key_pattern().len() != 1 {
            return Err(MongoError::new(
                ErrorCode::InvalidOptions,
                "TTL indexes are single-field indexes, compound indexes do not support TTL",
            ));
        }
        if let Some(was) = index.spec.get("expireAfterSeconds") {
            change.old.insert("expireAfterSeconds", was.clone());
            change.reply.insert("expireAfterSeconds_old", was.clone());
        }
        change
            .reply
            .insert("expireAfterSeconds_new", seconds.clone());
        index.spec.insert("expireAfterSeconds", seconds.clone());
    }
    if let Some(hidden) = spec.get("hidden") {
        let was = index.spec.get_bool("hidden").unwrap_or(false);
        let now = hidden.as_bool().unwrap_or(false);
        change.old.insert("hidden", was);
        change.reply.insert("hidden_old", was);
        change.reply.insert("hidden_new", now);
        match now {
            true => index.spec.insert("hidden", true),
            false => index.spec.remove("hidden"),
        };
    }
    if change.made_unique.is_some() {
        change.old.insert("unique", false);
        change.old.insert("prepareUnique", true);
        change.reply.insert("unique_new", true);
        index.spec.insert("unique", true);
        index.spec.remove("prepareUnique");
    } else if let Some(now) = spec.get("prepareUnique").and_then(Bson::as_bool) {
        let was = index.prepare_unique();
        if was != now && !index.unique() {
            change.prepare_unique = true;
            change.old.insert("prepareUnique", was);
            change.reply.insert("prepareUnique_old", was);
            change.reply.insert("prepareUnique_new", now);
            match now {
                true => index.spec.insert("prepareUnique", true),
                false => index.spec.remove("prepareUnique"),
            };
        }
    }
    Ok(change)
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
            options.insert("idIndex", meta.primary_index_spec());
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

    /// mongod's rule for views' default collations: a view defined on a view has its
    /// collation, and so does every view defined on this one.
    fn check_view_collations(&self, view: &ViewMeta) -> Result<(), MongoError> {
        let mine = view.default_collation();
        let on = Namespace::new(view.ns.db.clone(), view.view_on.clone());
        let mismatch = |other: &Namespace| {
            MongoError::new(
                ErrorCode::OptionNotSupportedOnView,
                format!(
                    "View {} has conflicting collation with view {other}",
                    view.ns
                ),
            )
        };
        if let Some(under) = catalog::view(&*self.w, &on)? {
            if !collation::same(mine.as_deref(), under.default_collation().as_deref()) {
                return Err(mismatch(&on));
            }
        }
        for other in catalog::list_views(&*self.w, &view.ns.db)? {
            if other.view_on == view.ns.coll
                && !collation::same(mine.as_deref(), other.default_collation().as_deref())
            {
                return Err(mismatch(&other.ns));
            }
        }
        Ok(())
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
                // mongod checks this one for a time-series collection, not for a view.
                ("timeseries", _) => {
                    return Err(MongoError::new(
                        ErrorCode::InvalidOptions,
                        "option only supported on a time-series collection: timeseries",
                    ))
                }
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
        self.check_view_collations(&view)?;
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
        self.w
            .delete_table(&crate::id_index::table(meta))
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
