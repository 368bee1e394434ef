//! The operation log: one entry per changed document or catalog change, written in
//! the same transaction as the change itself, keyed by its cluster timestamp.
//!
//! In memory an entry is typed: [`Op`] says what happened, documents stay the BSON
//! bytes they were written as (an insert logs the very bytes stored in the collection),
//! so reading an entry back, and building a change event from it, copies bytes instead
//! of decoding and re-encoding documents. On disk an entry is one BSON document,
//! `{ts, wall, op, ns, o, ui?, o2?, pre?, post?}` (`op` one of `i u r d c`; `o` the
//! document, the update description or the command; `o2` the document key, or the
//! command's extra details), the same layout since format version 1.
//!
//! The entry is shaped so a change event can be built from it without reading anything
//! else: updates carry the `updateDescription` computed when the update ran, and
//! collections with `changeStreamPreAndPostImages` carry exact pre- and post-images.

use std::sync::Arc;

use bson::raw::{cstr, RawDocument, RawDocumentBuf};
use bson::{doc, Binary, Bson, DateTime, Document, RawBsonRef, Timestamp};
use eddy_codes::{ErrorCode, MongoError};

use crate::catalog::Namespace;
use crate::clock;

/// What an entry records.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// A document was inserted.
    Insert {
        /// `{_id: ...}`.
        key: RawDocumentBuf,
        doc: RawDocumentBuf,
    },
    /// A document was updated with operators.
    Update {
        key: RawDocumentBuf,
        /// The event's `updateDescription` (`updatedFields`, `removedFields`,
        /// `truncatedArrays`, `disambiguatedPaths`).
        description: RawDocumentBuf,
        /// The document before and after, when the collection records images.
        pre: Option<RawDocumentBuf>,
        post: Option<RawDocumentBuf>,
    },
    /// A document was replaced by `doc`.
    Replace {
        key: RawDocumentBuf,
        doc: RawDocumentBuf,
        pre: Option<RawDocumentBuf>,
    },
    /// A document was deleted.
    Delete {
        key: RawDocumentBuf,
        pre: Option<RawDocumentBuf>,
    },
    /// The catalog changed.
    Catalog(CatalogOp),
}

/// A catalog change, on the entry's namespace.
#[derive(Debug, Clone, PartialEq)]
pub enum CatalogOp {
    /// A collection (with its UUID) or a view (without) was created; `options` are the
    /// `create` command's fields after the name (`idIndex`, `viewOn`, ...).
    Create { options: Document },
    /// A collection or view was dropped.
    Drop,
    /// The collection was renamed to `to`, replacing the collection whose UUID is
    /// `drop_target` if there was one.
    Rename {
        to: Namespace,
        drop_target: Option<Bson>,
        stay_temp: bool,
    },
    /// The whole database was dropped (the namespace is `<db>.$cmd`).
    DropDatabase,
    /// An index was built; `spec` is its specification.
    CreateIndexes { spec: Document },
    /// The index `name` (specification `spec`) was dropped.
    DropIndexes { name: String, spec: Document },
    /// Collection (or view) options changed: the `collMod` fields, and all options before.
    CollMod {
        changes: Document,
        old_options: Document,
    },
}

impl Op {
    /// The one-letter code of the on-disk form.
    fn code(&self) -> &'static str {
        match self {
            Op::Insert { .. } => "i",
            Op::Update { .. } => "u",
            Op::Replace { .. } => "r",
            Op::Delete { .. } => "d",
            Op::Catalog(_) => "c",
        }
    }

    /// The document key of a document operation.
    pub fn document_key(&self) -> Option<&RawDocument> {
        match self {
            Op::Insert { key, .. }
            | Op::Update { key, .. }
            | Op::Replace { key, .. }
            | Op::Delete { key, .. } => Some(key),
            Op::Catalog(_) => None,
        }
    }

    /// The pre-image of an update, replacement or delete, when recorded.
    pub fn pre_image(&self) -> Option<&RawDocument> {
        match self {
            Op::Update { pre, .. } | Op::Replace { pre, .. } | Op::Delete { pre, .. } => {
                pre.as_deref()
            }
            _ => None,
        }
    }

    /// Whether this is a document operation that can carry a pre-image.
    pub fn changes_existing_document(&self) -> bool {
        matches!(
            self,
            Op::Update { .. } | Op::Replace { .. } | Op::Delete { .. }
        )
    }
}

/// One oplog entry.
#[derive(Debug, Clone, PartialEq)]
pub struct OplogEntry {
    pub ts: Timestamp,
    pub wall: DateTime,
    pub ns: Namespace,
    /// The collection's UUID (absent for database-level commands and views).
    pub uuid: Option<Binary>,
    pub op: Op,
}

/// An entry as the change hub hands it out: decoded once and shared by every stream
/// that reads it, with the change events built from it (see `changes::event`).
pub type SharedEntry = Arc<crate::changes::event::Logged>;

fn corrupt(what: &str) -> MongoError {
    MongoError::new(
        ErrorCode::DataCorruptionDetected,
        format!("corrupt oplog entry: {what}"),
    )
}

/// `{<name>: <value>, ...rest}`: the command document of a catalog change.
fn command(name: &str, value: impl Into<Bson>, rest: &Document) -> Document {
    let mut o = Document::new();
    o.insert(name, value.into());
    o.extend(rest.clone());
    o
}

fn raw(d: &Document) -> Result<RawDocumentBuf, MongoError> {
    RawDocumentBuf::try_from(d)
        .map_err(|e| MongoError::internal(format!("cannot encode BSON: {e}")))
}

impl OplogEntry {
    /// The storage key: the packed timestamp, big-endian, so keys sort in time order.
    pub fn key(&self) -> [u8; 8] {
        key_of(self.ts)
    }

    /// The on-disk form.
    pub fn encode(&self) -> Result<Vec<u8>, MongoError> {
        let mut d = RawDocumentBuf::new();
        d.append(cstr!("ts"), self.ts);
        d.append(cstr!("wall"), self.wall);
        d.append(cstr!("op"), self.op.code());
        d.append(cstr!("ns"), self.ns.to_string());
        // `o`, then `ui`, `o2`, `pre`, `post`, in this order.
        let (o, o2, pre, post): (
            RawDocumentBuf,
            Option<RawDocumentBuf>,
            Option<&RawDocumentBuf>,
            Option<&RawDocumentBuf>,
        ) = match &self.op {
            Op::Insert { key, doc } => (doc.clone(), Some(key.clone()), None, None),
            Op::Update {
                key,
                description,
                pre,
                post,
            } => (
                description.clone(),
                Some(key.clone()),
                pre.as_ref(),
                post.as_ref(),
            ),
            Op::Replace { key, doc, pre } => (doc.clone(), Some(key.clone()), pre.as_ref(), None),
            Op::Delete { key, pre } => {
                (RawDocumentBuf::new(), Some(key.clone()), pre.as_ref(), None)
            }
            Op::Catalog(c) => {
                let coll = self.ns.coll.as_str();
                let (o, o2) = match c {
                    CatalogOp::Create { options } => (command("create", coll, options), None),
                    CatalogOp::Drop => (doc! {"drop": coll}, None),
                    CatalogOp::Rename {
                        to,
                        drop_target,
                        stay_temp,
                    } => {
                        let mut o = doc! {
                            "renameCollection": self.ns.to_string(),
                            "to": to.to_string(),
                            "stayTemp": *stay_temp,
                        };
                        if let Some(t) = drop_target {
                            o.insert("dropTarget", t.clone());
                        }
                        (o, None)
                    }
                    CatalogOp::DropDatabase => (doc! {"dropDatabase": 1}, None),
                    CatalogOp::CreateIndexes { spec } => {
                        (command("createIndexes", coll, spec), None)
                    }
                    CatalogOp::DropIndexes { name, spec } => {
                        (doc! {"dropIndexes": coll, "index": name}, Some(raw(spec)?))
                    }
                    CatalogOp::CollMod {
                        changes,
                        old_options,
                    } => (
                        command("collMod", coll, changes),
                        Some(raw(&doc! {"collectionOptions_old": old_options.clone()})?),
                    ),
                };
                (raw(&o)?, o2, None, None)
            }
        };
        d.append(cstr!("o"), o);
        if let Some(uuid) = &self.uuid {
            d.append(cstr!("ui"), uuid.clone());
        }
        if let Some(o2) = o2 {
            d.append(cstr!("o2"), o2);
        }
        if let Some(pre) = pre {
            d.append(cstr!("pre"), pre);
        }
        if let Some(post) = post {
            d.append(cstr!("post"), post);
        }
        Ok(d.into_bytes())
    }

    /// Reads the on-disk form.
    pub fn decode(bytes: &[u8]) -> Result<OplogEntry, MongoError> {
        let d = RawDocument::from_bytes(bytes).map_err(|_| corrupt("not BSON"))?;
        let sub = |key: &str| -> Result<Option<RawDocumentBuf>, MongoError> {
            match d.get(key).map_err(|_| corrupt(key))? {
                Some(RawBsonRef::Document(doc)) => Ok(Some(doc.to_owned())),
                Some(_) => Err(corrupt(key)),
                None => Ok(None),
            }
        };
        let ns = d.get_str("ns").map_err(|_| corrupt("ns"))?;
        let ns = match ns.split_once('.') {
            Some((db, coll)) => Namespace::new(db, coll),
            None => Namespace::new(ns, ""),
        };
        let o = sub("o")?.ok_or_else(|| corrupt("o"))?;
        let key = || sub("o2")?.ok_or_else(|| corrupt("o2"));
        let op = match d.get_str("op").map_err(|_| corrupt("op"))? {
            "i" => Op::Insert {
                key: key()?,
                doc: o,
            },
            "u" => Op::Update {
                key: key()?,
                description: o,
                pre: sub("pre")?,
                post: sub("post")?,
            },
            "r" => Op::Replace {
                key: key()?,
                doc: o,
                pre: sub("pre")?,
            },
            "d" => Op::Delete {
                key: key()?,
                pre: sub("pre")?,
            },
            "c" => {
                let o = Document::try_from(o.as_ref()).map_err(|_| corrupt("o"))?;
                let o2 = match sub("o2")? {
                    Some(o2) => Some(Document::try_from(o2.as_ref()).map_err(|_| corrupt("o2"))?),
                    None => None,
                };
                Op::Catalog(decode_catalog(o, o2)?)
            }
            _ => return Err(corrupt("op")),
        };
        Ok(OplogEntry {
            ts: d.get_timestamp("ts").map_err(|_| corrupt("ts"))?,
            wall: d.get_datetime("wall").map_err(|_| corrupt("wall"))?,
            ns,
            uuid: match d.get("ui").map_err(|_| corrupt("ui"))? {
                Some(RawBsonRef::Binary(b)) => Some(b.to_binary()),
                _ => None,
            },
            op,
        })
    }
}

/// The catalog change recorded as command `o` (with details `o2`).
fn decode_catalog(mut o: Document, o2: Option<Document>) -> Result<CatalogOp, MongoError> {
    let Some(name) = o.keys().next().cloned() else {
        return Err(corrupt("empty command"));
    };
    o.remove(&name);
    Ok(match name.as_str() {
        "create" => CatalogOp::Create { options: o },
        "drop" => CatalogOp::Drop,
        "renameCollection" => CatalogOp::Rename {
            to: o
                .get_str("to")
                .ok()
                .and_then(|t| Namespace::parse(t).ok())
                .ok_or_else(|| corrupt("renameCollection.to"))?,
            drop_target: o.get("dropTarget").cloned(),
            stay_temp: o.get_bool("stayTemp").unwrap_or(false),
        },
        "dropDatabase" => CatalogOp::DropDatabase,
        "createIndexes" => CatalogOp::CreateIndexes { spec: o },
        "dropIndexes" => CatalogOp::DropIndexes {
            name: o.get_str("index").unwrap_or_default().to_owned(),
            spec: o2.unwrap_or_default(),
        },
        "collMod" => CatalogOp::CollMod {
            changes: o,
            old_options: o2
                .and_then(|d| d.get_document("collectionOptions_old").ok().cloned())
                .unwrap_or_default(),
        },
        _ => return Err(corrupt("unknown command")),
    })
}

/// The storage key of the entry at `ts`.
pub fn key_of(ts: Timestamp) -> [u8; 8] {
    clock::pack(ts).to_be_bytes()
}

/// The timestamp of a storage key.
pub fn ts_of_key(key: &[u8]) -> Option<Timestamp> {
    let bytes: [u8; 8] = key.try_into().ok()?;
    Some(clock::unpack(u64::from_be_bytes(bytes)))
}

/// `{_id: id}` as the document key of an entry.
pub fn document_key(id: &Bson) -> Result<RawDocumentBuf, MongoError> {
    let mut key = RawDocumentBuf::new();
    let id = bson::RawBson::try_from(id.clone())
        .map_err(|e| MongoError::internal(format!("cannot encode an _id: {e}")))?;
    key.append(cstr!("_id"), id);
    Ok(key)
}

/// A document as the BSON an entry holds.
pub fn raw_document(d: &Document) -> Result<RawDocumentBuf, MongoError> {
    raw(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(op: Op, uuid: Option<Binary>) {
        let e = OplogEntry {
            ts: Timestamp {
                time: 10,
                increment: 2,
            },
            wall: DateTime::from_millis(10_000),
            ns: Namespace::new("db", "c.d"),
            uuid,
            op,
        };
        let back = OplogEntry::decode(&e.encode().expect("encode")).expect("decode");
        assert_eq!(back, e);
        assert_eq!(ts_of_key(&e.key()), Some(e.ts));
    }

    fn r(d: Document) -> RawDocumentBuf {
        raw(&d).expect("encode")
    }

    #[test]
    fn entries_round_trip() {
        let uuid = Some(crate::catalog::new_uuid());
        let key = r(doc! {"_id": 1});
        round_trip(
            Op::Update {
                key: key.clone(),
                description: r(
                    doc! {"updatedFields": {"a": 1}, "removedFields": [], "truncatedArrays": []},
                ),
                pre: Some(r(doc! {"_id": 1, "a": 0})),
                post: Some(r(doc! {"_id": 1, "a": 1})),
            },
            uuid.clone(),
        );
        round_trip(
            Op::Insert {
                key: key.clone(),
                doc: r(doc! {"_id": 1, "x": "y"}),
            },
            uuid.clone(),
        );
        round_trip(
            Op::Replace {
                key: key.clone(),
                doc: r(doc! {"_id": 1}),
                pre: None,
            },
            uuid.clone(),
        );
        round_trip(Op::Delete { key, pre: None }, uuid.clone());
        for c in [
            CatalogOp::Create {
                options: doc! {"idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"}},
            },
            CatalogOp::Drop,
            CatalogOp::Rename {
                to: Namespace::new("db2", "e"),
                drop_target: Some(Bson::Binary(crate::catalog::new_uuid())),
                stay_temp: false,
            },
            CatalogOp::CreateIndexes {
                spec: doc! {"v": 2, "key": {"a": 1}, "name": "a_1"},
            },
            CatalogOp::DropIndexes {
                name: "a_1".into(),
                spec: doc! {"v": 2, "key": {"a": 1}, "name": "a_1"},
            },
            CatalogOp::CollMod {
                changes: doc! {"validator": {}},
                old_options: doc! {"capped": false},
            },
        ] {
            round_trip(Op::Catalog(c), uuid.clone());
        }
        round_trip(Op::Catalog(CatalogOp::DropDatabase), None);
    }

    /// The on-disk layout is a public format: an entry encodes to exactly the document
    /// format version 1 has always written.
    #[test]
    fn the_disk_layout_is_unchanged() {
        let uuid = crate::catalog::new_uuid();
        let e = OplogEntry {
            ts: Timestamp {
                time: 3,
                increment: 4,
            },
            wall: DateTime::from_millis(5),
            ns: Namespace::new("db", "c"),
            uuid: Some(uuid.clone()),
            op: Op::Catalog(CatalogOp::DropIndexes {
                name: "a_1".into(),
                spec: doc! {"key": {"a": 1}},
            }),
        };
        let expected = doc! {
            "ts": Timestamp { time: 3, increment: 4 },
            "wall": DateTime::from_millis(5),
            "op": "c",
            "ns": "db.c",
            "o": {"dropIndexes": "c", "index": "a_1"},
            "ui": uuid.clone(),
            "o2": {"key": {"a": 1}},
        };
        assert_eq!(
            e.encode().expect("encode"),
            expected.to_vec().expect("encode")
        );
        let u = OplogEntry {
            op: Op::Update {
                key: r(doc! {"_id": 1}),
                description: r(doc! {"updatedFields": {"a": 1}}),
                pre: Some(r(doc! {"_id": 1})),
                post: Some(r(doc! {"_id": 1, "a": 1})),
            },
            ..e
        };
        let expected = doc! {
            "ts": Timestamp { time: 3, increment: 4 },
            "wall": DateTime::from_millis(5),
            "op": "u",
            "ns": "db.c",
            "o": {"updatedFields": {"a": 1}},
            "ui": uuid,
            "o2": {"_id": 1},
            "pre": {"_id": 1},
            "post": {"_id": 1, "a": 1},
        };
        assert_eq!(
            u.encode().expect("encode"),
            expected.to_vec().expect("encode")
        );
    }
}
