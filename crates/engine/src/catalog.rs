//! The catalog: which collections exist, their options and their indexes.
//!
//! Stored in the `catalog` table, one entry per collection keyed by `db \0 coll`, so a
//! database's collections are one prefix scan and a write transaction sees the catalog
//! changes made earlier in the same group commit. A database exists while it holds a
//! collection (as in mongod, where `listDatabases` shows only non-empty databases).

use bson::{doc, spec::BinarySubtype, Binary, Bson, Document};
use eddy_codes::{ErrorCode, MongoError};
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

    pub fn sparse(&self) -> bool {
        self.spec.get_bool("sparse").unwrap_or(false)
    }

    pub fn partial_filter(&self) -> Option<&Document> {
        self.spec.get_document("partialFilterExpression").ok()
    }
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

    /// Every index spec, `_id_` first.
    pub fn index_specs(&self) -> Vec<Document> {
        let mut out = vec![Self::id_index_spec()];
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
            .map(|i| Bson::Document(doc! {"id": i.id as i64, "spec": i.spec.clone()}))
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
                Ok(IndexMeta {
                    id: i.get_i64("id").map_err(|_| corrupt())? as u64,
                    spec: i.get_document("spec").map_err(|_| corrupt())?.clone(),
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

/// A fresh random collection UUID.
pub fn new_uuid() -> Binary {
    Binary {
        subtype: BinarySubtype::Uuid,
        bytes: uuid::Uuid::new_v4().as_bytes().to_vec(),
    }
}

/// Reads a collection's catalog entry.
pub fn get(r: &impl KvRead, ns: &Namespace) -> Result<Option<CollectionMeta>, MongoError> {
    match r.get(tables::CATALOG, &ns.key()).map_err(storage_err)? {
        Some(bytes) => Ok(Some(CollectionMeta::from_document(&decode(&bytes)?)?)),
        None => Ok(None),
    }
}

/// Every collection of `db` (all databases when `None`), in name order.
pub fn list(r: &impl KvRead, db: Option<&str>) -> Result<Vec<CollectionMeta>, MongoError> {
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
        out.push(CollectionMeta::from_document(&decode(&v)?)?);
    }
    Ok(out)
}

/// Writes a collection's catalog entry.
pub fn put(w: &mut eddy_storage::WriteBatch<'_>, meta: &CollectionMeta) -> Result<(), MongoError> {
    let bytes = encode(&meta.to_document())?;
    w.put(tables::CATALOG, &meta.ns.key(), &bytes)
        .map_err(storage_err)
}

/// Removes a collection's catalog entry.
pub fn remove(w: &mut eddy_storage::WriteBatch<'_>, ns: &Namespace) -> Result<(), MongoError> {
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
            indexes: vec![IndexMeta {
                id: 8,
                spec: doc! {"v": 2, "key": {"a": 1}, "name": "a_1", "unique": true},
            }],
        };
        let back = CollectionMeta::from_document(&meta.to_document()).expect("decode");
        assert_eq!(back, meta);
        assert!(back.pre_and_post_images());
        assert!(back.indexes[0].unique());
    }
}
