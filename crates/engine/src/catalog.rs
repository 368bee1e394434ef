//! The catalog: which collections exist, their options and their indexes.
//!
//! Stored in the `catalog` table, one entry per collection keyed by `db \0 coll`, so a
//! database's collections are one prefix scan and a write transaction sees the catalog
//! changes made earlier in the same group commit. A database exists while it holds a
//! collection (as in mongod, where `listDatabases` shows only non-empty databases).
//!
//! A view shares the collections' key space (a name is a collection or a view, never
//! both) but is its own kind of entry, `{db, coll, view: {viewOn, pipeline}}`, with no
//! tables behind it. [`get`] refuses a view with 166 CommandNotSupportedOnView, so a
//! path that does not know about views (writes, index DDL, rename) refuses them as
//! mongod does instead of mistaking them for a missing collection; reads that go
//! through views ask for [`view`] first.

use std::sync::Arc;

use bson::{doc, spec::BinarySubtype, Binary, Bson, Document};
use eddy_codes::{ErrorCode, MongoError};
use eddy_query::collation::Collation;
use eddy_storage::{prefix_bounds, KvRead};

use crate::{storage_err, tables};

/// The longest database name mongod accepts.
const MAX_DB_NAME: usize = 64;
/// The longest full namespace (`db.coll`) mongod accepts.
const MAX_NS_LEN: usize = 255;

/// `db.coll`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace {
    pub db: String,
    pub coll: String,
}

impl Namespace {
    pub fn new(db: impl Into<String>, coll: impl Into<String>) -> Namespace {
        Namespace {
            db: db.into(),
            coll: coll.into(),
        }
    }

    /// Parses `db.coll` (the collection part may contain dots).
    pub fn parse(full: &str) -> Result<Namespace, MongoError> {
        match full.split_once('.') {
            Some((db, coll)) if !db.is_empty() && !coll.is_empty() => Ok(Namespace::new(db, coll)),
            _ => Err(MongoError::new(
                ErrorCode::InvalidNamespace,
                format!("Invalid namespace specified '{full}'"),
            )),
        }
    }

    /// The catalog key: `db \0 coll`.
    pub fn key(&self) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.db.len() + self.coll.len() + 1);
        k.extend_from_slice(self.db.as_bytes());
        k.push(0);
        k.extend_from_slice(self.coll.as_bytes());
        k
    }

    fn from_key(key: &[u8]) -> Option<Namespace> {
        let pos = key.iter().position(|b| *b == 0)?;
        let db = std::str::from_utf8(&key[..pos]).ok()?;
        let coll = std::str::from_utf8(&key[pos + 1..]).ok()?;
        Some(Namespace::new(db, coll))
    }

    /// Whether this is a `system.*` collection (written only by the server).
    pub fn is_system(&self) -> bool {
        self.coll.starts_with("system.")
    }
}

impl std::fmt::Display for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.db, self.coll)
    }
}

/// Checks a database name as mongod does for user databases.
pub fn validate_db_name(db: &str) -> Result<(), MongoError> {
    if db.is_empty() {
        return Err(MongoError::new(
            ErrorCode::InvalidNamespace,
            "Invalid empty database name",
        ));
    }
    if db.len() >= MAX_DB_NAME {
        return Err(MongoError::new(
            ErrorCode::InvalidNamespace,
            format!("db name is too long: {db}"),
        ));
    }
    if let Some(c) = db
        .chars()
        .find(|c| matches!(c, '/' | '\\' | '.' | ' ' | '"' | '$' | '\0'))
    {
        return Err(MongoError::new(
            ErrorCode::InvalidNamespace,
            format!("Invalid database name: '{db}' (contains {c:?})"),
        ));
    }
    Ok(())
}

/// Checks a namespace a user may write to (create, insert, rename into).
pub fn validate_writable(ns: &Namespace) -> Result<(), MongoError> {
    validate_db_name(&ns.db)?;
    let invalid = |why: &str| {
        MongoError::new(
            ErrorCode::InvalidNamespace,
            format!("Invalid collection name: {}: {why}", ns.coll),
        )
    };
    if ns.coll.is_empty() {
        return Err(MongoError::new(
            ErrorCode::InvalidNamespace,
            format!("Invalid namespace specified '{}.'", ns.db),
        ));
    }
    if ns.coll.contains('$') {
        return Err(invalid("collection names cannot contain '$'"));
    }
    if ns.coll.contains('\0') {
        return Err(invalid("collection names cannot contain null characters"));
    }
    if ns.coll.starts_with('.') || ns.coll.ends_with('.') {
        return Err(MongoError::new(
            ErrorCode::InvalidNamespace,
            format!("Invalid namespace specified '{ns}'"),
        ));
    }
    if ns.db.len() + 1 + ns.coll.len() > MAX_NS_LEN {
        return Err(MongoError::new(
            ErrorCode::InvalidNamespace,
            format!("Fully qualified namespace is too long. Namespace: {ns} Max: {MAX_NS_LEN}"),
        ));
    }
    if ns.is_system() {
        return Err(MongoError::new(
            ErrorCode::InvalidNamespace,
            format!("Invalid system namespace: {ns}"),
        ));
    }
    if ns.db == "local" || ns.db == "config" {
        // mongod reserves these for replication and sharding state.
        return Err(MongoError::new(
            ErrorCode::InvalidNamespace,
            format!("Cannot write to the reserved database '{}' on Eddy", ns.db),
        ));
    }
    Ok(())
}

/// One secondary index (the `_id` index is implicit: the collection's own table).
#[derive(Debug, Clone, PartialEq)]
pub struct IndexMeta {
    /// Internal id naming the index's table.
    pub id: u64,
    /// The spec as `listIndexes` shows it: `{v: 2, key, name, unique?, sparse?, ...}`.
    pub spec: Document,
    /// Per key field, the positions of the path components at which some document held
    /// an array (mongod's `multikeyPaths`: `[[0], []]` for `{a: 1, b: 1}` when some `a`
    /// was an array). Only ever grows, like mongod's. `None` for indexes written by a
    /// build that did not record it: the planner must then assume every field multikey.
    pub multikey_paths: Option<Vec<Vec<usize>>>,
}

impl IndexMeta {
    pub fn name(&self) -> &str {
        self.spec.get_str("name").unwrap_or("")
    }

    pub fn key_pattern(&self) -> Document {
        self.spec.get_document("key").cloned().unwrap_or_default()
    }

    pub fn unique(&self) -> bool {
        self.spec.get_bool("unique").unwrap_or(false)
    }

    /// `prepareUnique` (mongod 6.0+): the index refuses new duplicate keys, though it
    /// may still hold old ones (so its entries keep the non-unique layout).
    pub fn prepare_unique(&self) -> bool {
        self.spec.get_bool("prepareUnique").unwrap_or(false)
    }

    pub fn sparse(&self) -> bool {
        self.spec.get_bool("sparse").unwrap_or(false)
    }

    pub fn partial_filter(&self) -> Option<&Document> {
        self.spec.get_document("partialFilterExpression").ok()
    }

    pub fn hidden(&self) -> bool {
        self.spec.get_bool("hidden").unwrap_or(false)
    }

    /// The index's collation (`None`: simple): its keys hold the collation's sort keys
    /// for strings.
    pub fn collation(&self) -> Option<Arc<Collation>> {
        stored_collation(&self.spec)
    }

    /// Whether this is a text index (its key holds `_fts: "text"`).
    pub fn is_text(&self) -> bool {
        self.spec
            .get_document("key")
            .is_ok_and(|k| k.get_str("_fts").ok() == Some("text"))
    }

    /// A text index's specification (`None` for other indexes).
    pub fn text_spec(&self) -> Option<eddy_query::text::TextSpec> {
        if !self.is_text() {
            return None;
        }
        eddy_query::text::TextSpec::from_index_spec(&self.spec).ok()
    }

    /// Whether some document held an array along key field `i`'s path (or this is not
    /// known).
    pub fn field_multikey(&self, i: usize) -> bool {
        match &self.multikey_paths {
            Some(paths) => paths.get(i).is_none_or(|p| !p.is_empty()),
            None => true,
        }
    }

    /// Whether any key field is (or may be) multikey: `isMultiKey` in explain.
    pub fn is_multikey(&self) -> bool {
        (0..self.key_pattern().len().max(1)).any(|i| self.field_multikey(i))
    }

    /// Whether `seen` holds multikey components this index has not recorded.
    pub fn lacks_multikey_paths(&self, seen: &[Vec<usize>]) -> bool {
        let Some(paths) = &self.multikey_paths else {
            return false;
        };
        seen.iter().enumerate().any(|(i, new)| {
            let have = paths.get(i).map(Vec::as_slice).unwrap_or(&[]);
            new.iter().any(|c| !have.contains(c))
        })
    }

    /// Merges newly seen multikey components; whether anything was new.
    pub fn add_multikey_paths(&mut self, seen: &[Vec<usize>]) -> bool {
        match &mut self.multikey_paths {
            Some(paths) => merge_multikey_paths(paths, seen),
            None => false,
        }
    }
}

/// Whether two key patterns name the same index: the same fields in the same order with
/// directions that compare equal (`{a: 1}` is `{a: 1.0}`, `{a: 1, b: 1}` is not
/// `{b: 1, a: 1}`), as mongod's `woCompare` decides. (`Document`'s `==` ignores order.)
pub fn same_key_pattern(a: &Document, b: &Document) -> bool {
    eddy_query::cmp::compare_documents(a, b).is_eq()
}

/// Merges per-field multikey components `seen` into `have`; whether anything was new.
pub fn merge_multikey_paths(have: &mut Vec<Vec<usize>>, seen: &[Vec<usize>]) -> bool {
    let mut changed = false;
    if have.len() < seen.len() {
        have.resize(seen.len(), Vec::new());
    }
    for (have, new) in have.iter_mut().zip(seen) {
        for c in new {
            if !have.contains(c) {
                have.push(*c);
                have.sort_unstable();
                changed = true;
            }
        }
    }
    changed
}

/// A collection as the catalog records it.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionMeta {
    pub ns: Namespace,
    /// Internal id naming the collection's tables.
    pub id: u64,
    /// The collection UUID (`info.uuid`, change events' `collectionUUID`).
    pub uuid: Binary,
    /// Options as given to `create` (and changed by `collMod`).
    pub options: Document,
    pub indexes: Vec<IndexMeta>,
}

impl CollectionMeta {
    /// Whether change events carry exact pre- and post-images for this collection.
    pub fn pre_and_post_images(&self) -> bool {
        self.options
            .get_document("changeStreamPreAndPostImages")
            .ok()
            .and_then(|d| d.get_bool("enabled").ok())
            .unwrap_or(false)
    }

    /// The cap of a capped collection (`None` for an ordinary one).
    pub fn cap(&self) -> Option<crate::capped::Cap> {
        crate::capped::Cap::of(&self.options)
    }

    /// The collection's default collation (`None`: simple), for operations and index
    /// builds that give none.
    pub fn collation(&self) -> Option<Arc<Collation>> {
        stored_collation(&self.options)
    }

    /// The table holding the documents.
    pub fn docs_table(&self) -> String {
        tables::docs(self.id)
    }

    pub fn index(&self, name: &str) -> Option<&IndexMeta> {
        self.indexes.iter().find(|i| i.name() == name)
    }

    /// The `_id` index spec, as listIndexes shows it.
    pub fn id_index_spec() -> Document {
        doc! {"v": 2, "key": {"_id": 1}, "name": "_id_"}
    }

    /// The `clusteredIndex` option of a collection created clustered by `_id` (every
    /// collection is stored that way; this one also says so).
    pub fn clustered_index(&self) -> Option<&Document> {
        self.options.get_document("clusteredIndex").ok()
    }

    /// The spec of the `_id` index as listIndexes shows it: for a clustered collection,
    /// its clustered index.
    pub fn primary_index_spec(&self) -> Document {
        match self.clustered_index() {
            Some(clustered) => {
                let mut spec = clustered.clone();
                spec.insert("clustered", true);
                spec
            }
            None => {
                let mut spec = Self::id_index_spec();
                // The `_id` index of a collection with a default collation has it too.
                if let Ok(c) = self.options.get_document("collation") {
                    spec.insert("collation", c.clone());
                }
                spec
            }
        }
    }

    /// Every index spec, `_id_` (or the clustered index) first; a time-series
    /// collection has no `_id` index (as in mongod, where `_id` is not indexed).
    pub fn index_specs(&self) -> Vec<Document> {
        let mut out = match self.options.contains_key("timeseries") {
            true => Vec::new(),
            false => vec![self.primary_index_spec()],
        };
        out.extend(self.indexes.iter().map(|i| i.spec.clone()));
        out
    }

    pub fn uuid_bson(&self) -> Bson {
        Bson::Binary(self.uuid.clone())
    }

    pub(crate) fn to_document(&self) -> Document {
        let indexes: Vec<Bson> = self
            .indexes
            .iter()
            .map(|i| {
                let mut d = doc! {"id": i.id as i64, "spec": i.spec.clone()};
                if let Some(paths) = &i.multikey_paths {
                    let paths: Vec<Bson> = paths
                        .iter()
                        .map(|p| Bson::Array(p.iter().map(|c| Bson::Int32(*c as i32)).collect()))
                        .collect();
                    d.insert("multikeyPaths", paths);
                }
                Bson::Document(d)
            })
            .collect();
        doc! {
            "db": &self.ns.db,
            "coll": &self.ns.coll,
            "id": self.id as i64,
            "uuid": self.uuid.clone(),
            "options": self.options.clone(),
            "indexes": indexes,
        }
    }

    pub(crate) fn from_document(d: &Document) -> Result<CollectionMeta, MongoError> {
        let corrupt = || MongoError::new(ErrorCode::DataCorruptionDetected, "bad catalog entry");
        let indexes = d
            .get_array("indexes")
            .map_err(|_| corrupt())?
            .iter()
            .map(|i| {
                let i = i.as_document().ok_or_else(corrupt)?;
                // Entries written before multikey tracking have no `multikeyPaths`.
                let multikey_paths = match i.get("multikeyPaths") {
                    None => None,
                    Some(Bson::Array(fields)) => Some(
                        fields
                            .iter()
                            .map(|f| match f {
                                Bson::Array(cs) => cs
                                    .iter()
                                    .map(|c| match c {
                                        Bson::Int32(n) if *n >= 0 => Ok(*n as usize),
                                        _ => Err(corrupt()),
                                    })
                                    .collect::<Result<Vec<usize>, MongoError>>(),
                                _ => Err(corrupt()),
                            })
                            .collect::<Result<Vec<_>, MongoError>>()?,
                    ),
                    Some(_) => return Err(corrupt()),
                };
                Ok(IndexMeta {
                    id: i.get_i64("id").map_err(|_| corrupt())? as u64,
                    spec: i.get_document("spec").map_err(|_| corrupt())?.clone(),
                    multikey_paths,
                })
            })
            .collect::<Result<Vec<_>, MongoError>>()?;
        Ok(CollectionMeta {
            ns: Namespace::new(
                d.get_str("db").map_err(|_| corrupt())?,
                d.get_str("coll").map_err(|_| corrupt())?,
            ),
            id: d.get_i64("id").map_err(|_| corrupt())? as u64,
            uuid: match d.get("uuid") {
                Some(Bson::Binary(b)) => b.clone(),
                _ => return Err(corrupt()),
            },
            options: d.get_document("options").map_err(|_| corrupt())?.clone(),
            indexes,
        })
    }
}

/// The longest chain of views mongod resolves (`kMaxViewDepth`).
pub const MAX_VIEW_DEPTH: usize = 20;

/// A (non-materialized) view: a pipeline over another collection or view of the same
/// database, run at read time.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewMeta {
    pub ns: Namespace,
    /// The collection or view it reads, in the same database.
    pub view_on: String,
    pub pipeline: Vec<Document>,
    /// The view's default collation, normalized (`None`: simple); operations on the
    /// view run under it and may not name another.
    pub collation: Option<Document>,
}

impl ViewMeta {
    /// `{viewOn, pipeline}`: the view's `listCollections` options and its `create` event's
    /// `operationDescription`.
    pub fn options(&self) -> Document {
        let mut out = doc! {"viewOn": &self.view_on, "pipeline": self.pipeline_bson()};
        if let Some(c) = &self.collation {
            out.insert("collation", c.clone());
        }
        out
    }

    /// The view's default collation, parsed (`None`: simple).
    pub fn default_collation(&self) -> Option<Arc<Collation>> {
        self.collation.as_ref().and_then(Collation::stored)
    }

    fn pipeline_bson(&self) -> Vec<Bson> {
        self.pipeline.iter().cloned().map(Bson::Document).collect()
    }

    fn to_document(&self) -> Document {
        doc! {"db": &self.ns.db, "coll": &self.ns.coll, "view": self.options()}
    }

    fn from_document(d: &Document) -> Result<Option<ViewMeta>, MongoError> {
        let Ok(view) = d.get_document("view") else {
            return Ok(None);
        };
        let corrupt = || MongoError::new(ErrorCode::DataCorruptionDetected, "bad view entry");
        let pipeline = view
            .get_array("pipeline")
            .map_err(|_| corrupt())?
            .iter()
            .map(|s| s.as_document().cloned().ok_or_else(corrupt))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(ViewMeta {
            ns: Namespace::new(
                d.get_str("db").map_err(|_| corrupt())?,
                d.get_str("coll").map_err(|_| corrupt())?,
            ),
            view_on: view.get_str("viewOn").map_err(|_| corrupt())?.to_owned(),
            pipeline,
            collation: view.get_document("collation").ok().cloned(),
        }))
    }
}

/// The error for a collection operation on a view (mongod's wording).
pub fn not_a_collection(ns: &Namespace) -> MongoError {
    MongoError::new(
        ErrorCode::CommandNotSupportedOnView,
        format!("Namespace {ns} is a view, not a collection"),
    )
}

/// A view resolved to what it finally reads: the source collection's namespace and the
/// pipelines of the chain, innermost first, concatenated.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedView {
    pub source: Namespace,
    pub pipeline: Vec<Document>,
}

/// Resolves `ns` if it is a view (`None` for a collection or nothing). A chain longer
/// than [`MAX_VIEW_DEPTH`] or a cycle fails with 165 ViewDepthLimitExceeded.
pub fn resolve_view(
    r: &(impl KvRead + ?Sized),
    ns: &Namespace,
) -> Result<Option<ResolvedView>, MongoError> {
    let Some(mut v) = view(r, ns)? else {
        return Ok(None);
    };
    let mut stages: Vec<Vec<Document>> = Vec::new();
    loop {
        if stages.len() >= MAX_VIEW_DEPTH {
            return Err(MongoError::new(
                ErrorCode::ViewDepthLimitExceeded,
                format!(
                    "View depth too deep or view cycle detected. Maximum depth is {MAX_VIEW_DEPTH}"
                ),
            ));
        }
        stages.push(std::mem::take(&mut v.pipeline));
        let source = Namespace::new(ns.db.clone(), v.view_on.clone());
        match view(r, &source)? {
            Some(next) => v = next,
            None => {
                return Ok(Some(ResolvedView {
                    source,
                    pipeline: stages.into_iter().rev().flatten().collect(),
                }))
            }
        }
    }
}

/// The parsed `collation` field of a stored spec or options document.
fn stored_collation(d: &Document) -> Option<Arc<Collation>> {
    d.get_document("collation").ok().and_then(Collation::stored)
}

/// The default collation of the collection or view `ns` (`None`: simple, or nothing
/// there): what an operation without its own `collation` runs under.
pub fn default_collation(
    r: &(impl KvRead + ?Sized),
    ns: &Namespace,
) -> Result<Option<Arc<Collation>>, MongoError> {
    match r.get(tables::CATALOG, &ns.key()).map_err(storage_err)? {
        Some(bytes) => {
            let d = decode(&bytes)?;
            Ok(match ViewMeta::from_document(&d)? {
                Some(v) => v.default_collation(),
                None => CollectionMeta::from_document(&d)?.collation(),
            })
        }
        None => Ok(None),
    }
}

/// A fresh random collection UUID.
pub fn new_uuid() -> Binary {
    Binary {
        subtype: BinarySubtype::Uuid,
        bytes: uuid::Uuid::new_v4().as_bytes().to_vec(),
    }
}

/// Reads a collection's catalog entry; 166 CommandNotSupportedOnView if `ns` is a view.
pub fn get(
    r: &(impl KvRead + ?Sized),
    ns: &Namespace,
) -> Result<Option<CollectionMeta>, MongoError> {
    match r.get(tables::CATALOG, &ns.key()).map_err(storage_err)? {
        Some(bytes) => {
            let d = decode(&bytes)?;
            if d.contains_key("view") {
                return Err(not_a_collection(ns));
            }
            Ok(Some(CollectionMeta::from_document(&d)?))
        }
        None => Ok(None),
    }
}

/// Reads a view's catalog entry (`None` for a collection or nothing).
pub fn view(r: &(impl KvRead + ?Sized), ns: &Namespace) -> Result<Option<ViewMeta>, MongoError> {
    match r.get(tables::CATALOG, &ns.key()).map_err(storage_err)? {
        Some(bytes) => ViewMeta::from_document(&decode(&bytes)?),
        None => Ok(None),
    }
}

/// Whether `ns` names a collection or a view.
pub fn exists(r: &(impl KvRead + ?Sized), ns: &Namespace) -> Result<bool, MongoError> {
    Ok(r.get(tables::CATALOG, &ns.key())
        .map_err(storage_err)?
        .is_some())
}

/// Every view of `db`, in name order.
pub fn list_views(r: &(impl KvRead + ?Sized), db: &str) -> Result<Vec<ViewMeta>, MongoError> {
    let mut p = db.as_bytes().to_vec();
    p.push(0);
    let (start, end) = prefix_bounds(&p);
    let mut out = Vec::new();
    for entry in r
        .scan(tables::CATALOG, start, end, false)
        .map_err(storage_err)?
    {
        let (_, v) = entry.map_err(storage_err)?;
        if let Some(view) = ViewMeta::from_document(&decode(&v)?)? {
            out.push(view);
        }
    }
    Ok(out)
}

/// Writes a view's catalog entry.
pub fn put_view(
    w: &mut (impl eddy_storage::KvWrite + ?Sized),
    view: &ViewMeta,
) -> Result<(), MongoError> {
    let bytes = encode(&view.to_document())?;
    w.put(tables::CATALOG, &view.ns.key(), &bytes)
        .map_err(storage_err)
}

/// Every collection (not view) of `db` (all databases when `None`), in name order.
pub fn list(
    r: &(impl KvRead + ?Sized),
    db: Option<&str>,
) -> Result<Vec<CollectionMeta>, MongoError> {
    let (start, end) = match db {
        Some(db) => {
            let mut p = db.as_bytes().to_vec();
            p.push(0);
            prefix_bounds(&p)
        }
        None => (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded),
    };
    let mut out = Vec::new();
    for entry in r
        .scan(tables::CATALOG, start, end, false)
        .map_err(storage_err)?
    {
        let (k, v) = entry.map_err(storage_err)?;
        if Namespace::from_key(&k).is_none() {
            continue;
        }
        let d = decode(&v)?;
        if d.contains_key("view") {
            continue;
        }
        out.push(CollectionMeta::from_document(&d)?);
    }
    Ok(out)
}

/// Writes a collection's catalog entry.
pub fn put(
    w: &mut (impl eddy_storage::KvWrite + ?Sized),
    meta: &CollectionMeta,
) -> Result<(), MongoError> {
    let bytes = encode(&meta.to_document())?;
    w.put(tables::CATALOG, &meta.ns.key(), &bytes)
        .map_err(storage_err)
}

/// Removes a collection's or a view's catalog entry.
pub fn remove(
    w: &mut (impl eddy_storage::KvWrite + ?Sized),
    ns: &Namespace,
) -> Result<(), MongoError> {
    w.delete(tables::CATALOG, &ns.key()).map_err(storage_err)?;
    Ok(())
}

pub(crate) fn encode(d: &Document) -> Result<Vec<u8>, MongoError> {
    d.to_vec()
        .map_err(|e| MongoError::internal(format!("cannot encode BSON: {e}")))
}

pub(crate) fn decode(bytes: &[u8]) -> Result<Document, MongoError> {
    Document::from_reader(bytes).map_err(|e| {
        MongoError::new(
            ErrorCode::DataCorruptionDetected,
            format!("stored BSON is corrupt: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_parse_and_validate() {
        let ns = Namespace::parse("db.a.b").expect("ns");
        assert_eq!(ns.coll, "a.b");
        assert!(Namespace::parse("nodot").is_err());
        assert!(validate_writable(&Namespace::new("db", "ok")).is_ok());
        for bad in ["a$b", "system.users", ".x", ""] {
            let err = validate_writable(&Namespace::new("db", bad)).expect_err(bad);
            assert_eq!(err.code, ErrorCode::InvalidNamespace.code());
        }
        assert!(validate_db_name("a.b").is_err());
        assert!(validate_db_name("a b").is_err());
    }

    #[test]
    fn catalog_entry_round_trips() {
        let meta = CollectionMeta {
            ns: Namespace::new("d", "c"),
            id: 7,
            uuid: new_uuid(),
            options: doc! {"changeStreamPreAndPostImages": {"enabled": true}},
            indexes: vec![
                IndexMeta {
                    id: 8,
                    spec: doc! {"v": 2, "key": {"a": 1}, "name": "a_1", "unique": true},
                    multikey_paths: Some(vec![vec![]]),
                },
                IndexMeta {
                    id: 9,
                    spec: doc! {"v": 2, "key": {"b.c": 1, "d": -1}, "name": "b.c_1_d_-1"},
                    multikey_paths: Some(vec![vec![0, 1], vec![]]),
                },
            ],
        };
        let back = CollectionMeta::from_document(&meta.to_document()).expect("decode");
        assert_eq!(back, meta);
        assert!(back.pre_and_post_images());
        assert!(back.indexes[0].unique());
        assert!(!back.indexes[0].is_multikey());
        assert!(back.indexes[1].field_multikey(0));
        assert!(!back.indexes[1].field_multikey(1));
    }

    #[test]
    fn entries_without_multikey_paths_are_assumed_multikey() {
        // The shape written before multikey tracking existed.
        let old = doc! {
            "db": "d", "coll": "c", "id": 7_i64, "uuid": new_uuid(), "options": {},
            "indexes": [{"id": 8_i64, "spec": {"v": 2, "key": {"a": 1, "b": 1}, "name": "a_1_b_1"}}],
        };
        let meta = CollectionMeta::from_document(&old).expect("decode");
        let index = &meta.indexes[0];
        assert_eq!(index.multikey_paths, None);
        assert!(index.field_multikey(0) && index.field_multikey(1) && index.is_multikey());
        // And it stays unknown when written back.
        let again = CollectionMeta::from_document(&meta.to_document()).expect("decode");
        assert_eq!(again.indexes[0].multikey_paths, None);
    }
}
