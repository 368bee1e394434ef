//! The operation log: one entry per changed document or catalog change, written in
//! the same transaction as the change itself, keyed by its cluster timestamp.
//!
//! On disk an entry is one BSON document, `{ts, wall, op, ns, o, ui?, o2?, pre?, post?}`
//! (`op` one of `i u r d c`; `o` the document, the update description or the command;
//! `o2` the document key, or the command's extra details), the same layout since
//! format version 1.
//!
//! In memory an [`OplogEntry`] *is* those bytes, with where each part lies in them:
//! decoding one is a single pass over its fields that allocates nothing but a catalog
//! change, and [`OplogEntry::op`] hands out its documents as borrowed BSON. An insert
//! logs the very bytes stored in the collection, and a change event is built by
//! copying parts of an entry, never by decoding and re-encoding documents; catching up
//! on a million entries costs a million buffers, not a million decoded documents.
//!
//! The entry is shaped so a change event can be built from it without reading anything
//! else: updates carry the `updateDescription` computed when the update ran, and
//! collections with `changeStreamPreAndPostImages` carry exact pre- and post-images.

use std::ops::Range;
use std::sync::Arc;

use bson::raw::{cstr, RawDocument, RawDocumentBuf};
use bson::spec::BinarySubtype;
use bson::{doc, Binary, Bson, DateTime, Document, RawBinaryRef, RawBsonRef, Timestamp};
use eddy_codes::{ErrorCode, MongoError};

use crate::catalog::Namespace;
use crate::clock;

/// What an entry records, its documents borrowed from the entry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op<'a> {
    /// A document was inserted.
    Insert {
        /// `{_id: ...}`.
        key: &'a RawDocument,
        doc: &'a RawDocument,
    },
    /// A document was updated with operators.
    Update {
        key: &'a RawDocument,
        /// The event's `updateDescription` (`updatedFields`, `removedFields`,
        /// `truncatedArrays`, `disambiguatedPaths`).
        description: &'a RawDocument,
        /// The document before and after, when the collection records images.
        pre: Option<&'a RawDocument>,
        post: Option<&'a RawDocument>,
    },
    /// A document was replaced by `doc`.
    Replace {
        key: &'a RawDocument,
        doc: &'a RawDocument,
        pre: Option<&'a RawDocument>,
    },
    /// A document was deleted.
    Delete {
        key: &'a RawDocument,
        pre: Option<&'a RawDocument>,
    },
    /// The catalog changed.
    Catalog(&'a CatalogOp),
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
    /// Collection (or view) options changed: the `collMod` fields, and all options before;
    /// for a change of an index (`index: {...}`), that index's options before
    /// (`expireAfterSeconds`, `hidden`).
    CollMod {
        changes: Document,
        old_options: Document,
        old_index_options: Option<Document>,
    },
}

impl<'a> Op<'a> {
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
    pub fn document_key(&self) -> Option<&'a RawDocument> {
        match *self {
            Op::Insert { key, .. }
            | Op::Update { key, .. }
            | Op::Replace { key, .. }
            | Op::Delete { key, .. } => Some(key),
            Op::Catalog(_) => None,
        }
    }

    /// The pre-image of an update, replacement or delete, when recorded.
    pub fn pre_image(&self) -> Option<&'a RawDocument> {
        match *self {
            Op::Update { pre, .. } | Op::Replace { pre, .. } | Op::Delete { pre, .. } => pre,
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

/// Where an entry's parts lie in its bytes.
#[derive(Debug, Clone, PartialEq)]
enum Layout {
    Insert {
        key: Range<usize>,
        doc: Range<usize>,
    },
    Update {
        key: Range<usize>,
        description: Range<usize>,
        pre: Option<Range<usize>>,
        post: Option<Range<usize>>,
    },
    Replace {
        key: Range<usize>,
        doc: Range<usize>,
        pre: Option<Range<usize>>,
    },
    Delete {
        key: Range<usize>,
        pre: Option<Range<usize>>,
    },
    Catalog(CatalogOp),
}

/// A namespace borrowed from an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NsRef<'a> {
    pub db: &'a str,
    pub coll: &'a str,
    /// `db.coll`.
    pub full: &'a str,
}

impl NsRef<'_> {
    /// Whether the collection is a `system.*` one.
    pub fn is_system(&self) -> bool {
        self.coll.starts_with("system.")
    }

    pub fn to_namespace(&self) -> Namespace {
        Namespace::new(self.db, self.coll)
    }
}

impl PartialEq<Namespace> for NsRef<'_> {
    fn eq(&self, other: &Namespace) -> bool {
        self.db == other.db && self.coll == other.coll
    }
}

/// One oplog entry: its stored BSON, and where its parts lie in it.
#[derive(Clone, PartialEq)]
pub struct OplogEntry {
    bytes: Vec<u8>,
    pub ts: Timestamp,
    pub wall: DateTime,
    /// The `db.coll` string, and where its dot is.
    ns: Range<usize>,
    dot: usize,
    /// The collection's UUID (absent for database-level commands and views).
    uuid: Option<[u8; 16]>,
    layout: Layout,
    /// Of an operation of a multi-document transaction: where its `lsid` lies, its
    /// `txnNumber` and its index in the transaction (`txnOpIndex`).
    txn: Option<(Range<usize>, i64, u32)>,
}

impl std::fmt::Debug for OplogEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OplogEntry")
            .field("ts", &self.ts)
            .field("ns", &self.ns().full)
            .field("op", &self.op())
            .finish_non_exhaustive()
    }
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

/// Where `part` (a slice of `whole`) lies in `whole`.
fn range_in(whole: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - whole.as_ptr() as usize;
    start..start + part.len()
}

impl OplogEntry {
    /// A new entry (the write path): encoded once, in the on-disk form.
    pub fn new(
        ts: Timestamp,
        wall: DateTime,
        ns: &Namespace,
        uuid: Option<&Binary>,
        op: Op<'_>,
    ) -> Result<OplogEntry, MongoError> {
        let mut d = RawDocumentBuf::new();
        d.append(cstr!("ts"), ts);
        d.append(cstr!("wall"), wall);
        d.append(cstr!("op"), op.code());
        d.append(cstr!("ns"), ns.to_string());
        // `o`, then `ui`, `o2`, `pre`, `post`, in this order.
        let empty = RawDocumentBuf::new();
        let command_parts;
        let (o, o2, pre, post): (
            &RawDocument,
            Option<&RawDocument>,
            Option<&RawDocument>,
            Option<&RawDocument>,
        ) = match op {
            Op::Insert { key, doc } => (doc, Some(key), None, None),
            Op::Update {
                key,
                description,
                pre,
                post,
            } => (description, Some(key), pre, post),
            Op::Replace { key, doc, pre } => (doc, Some(key), pre, None),
            Op::Delete { key, pre } => (&empty, Some(key), pre, None),
            Op::Catalog(c) => {
                command_parts = catalog_command(ns, c)?;
                (
                    command_parts.0.as_ref(),
                    command_parts.1.as_deref(),
                    None,
                    None,
                )
            }
        };
        d.append(cstr!("o"), o);
        if let Some(uuid) = uuid {
            d.append(cstr!("ui"), uuid);
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
        OplogEntry::decode(d.into_bytes())
    }

    /// Reads the on-disk form (taking the bytes as the entry's own).
    pub fn decode(bytes: Vec<u8>) -> Result<OplogEntry, MongoError> {
        let d = RawDocument::from_bytes(&bytes).map_err(|_| corrupt("not BSON"))?;
        // One pass over the fields, noting where each part lies.
        let (mut ts, mut wall, mut op, mut ns, mut uuid) = (None, None, None, None, None);
        let (mut o, mut o2, mut pre, mut post) = (None, None, None, None);
        let (mut lsid, mut txn_number, mut txn_op_index) = (None, None, None);
        for field in d.iter() {
            let (key, value) = field.map_err(|_| corrupt("not BSON"))?;
            match (key.as_str(), value) {
                ("ts", RawBsonRef::Timestamp(t)) => ts = Some(t),
                ("wall", RawBsonRef::DateTime(w)) => wall = Some(w),
                ("op", RawBsonRef::String(s)) => op = Some(s),
                ("ns", RawBsonRef::String(s)) => ns = Some(s),
                ("ui", RawBsonRef::Binary(b)) => {
                    uuid = Some(<[u8; 16]>::try_from(b.bytes).map_err(|_| corrupt("ui"))?)
                }
                ("o", RawBsonRef::Document(doc)) => o = Some(doc),
                ("o2", RawBsonRef::Document(doc)) => o2 = Some(doc),
                ("pre", RawBsonRef::Document(doc)) => pre = Some(doc),
                ("post", RawBsonRef::Document(doc)) => post = Some(doc),
                ("lsid", RawBsonRef::Document(doc)) => lsid = Some(doc),
                ("txnNumber", RawBsonRef::Int64(n)) => txn_number = Some(n),
                ("txnOpIndex", RawBsonRef::Int32(i)) => {
                    txn_op_index = Some(u32::try_from(i).map_err(|_| corrupt("txnOpIndex"))?)
                }
                (other, _) => return Err(corrupt(other)),
            }
        }
        let at = |doc: &RawDocument| range_in(&bytes, doc.as_bytes());
        let ns = ns.ok_or_else(|| corrupt("ns"))?;
        let dot = ns.find('.').unwrap_or(ns.len());
        let o = o.ok_or_else(|| corrupt("o"))?;
        let key = || o2.map(at).ok_or_else(|| corrupt("o2"));
        let layout = match op.ok_or_else(|| corrupt("op"))? {
            "i" => Layout::Insert {
                key: key()?,
                doc: at(o),
            },
            "u" => Layout::Update {
                key: key()?,
                description: at(o),
                pre: pre.map(at),
                post: post.map(at),
            },
            "r" => Layout::Replace {
                key: key()?,
                doc: at(o),
                pre: pre.map(at),
            },
            "d" => Layout::Delete {
                key: key()?,
                pre: pre.map(at),
            },
            "c" => {
                let o = Document::try_from(o).map_err(|_| corrupt("o"))?;
                let o2 = match o2 {
                    Some(o2) => Some(Document::try_from(o2).map_err(|_| corrupt("o2"))?),
                    None => None,
                };
                Layout::Catalog(decode_catalog(o, o2)?)
            }
            _ => return Err(corrupt("op")),
        };
        let txn = match (lsid, txn_number, txn_op_index) {
            (Some(lsid), Some(n), Some(i)) => Some((at(lsid), n, i)),
            (None, None, None) => None,
            _ => return Err(corrupt("lsid")),
        };
        let ns = range_in(&bytes, ns.as_bytes());
        Ok(OplogEntry {
            txn,
            ts: ts.ok_or_else(|| corrupt("ts"))?,
            wall: wall.ok_or_else(|| corrupt("wall"))?,
            dot: ns.start + dot,
            ns,
            uuid,
            layout,
            bytes,
        })
    }

    /// The entry of one operation of a committed transaction: this entry (logged with
    /// a placeholder time while the transaction ran) at `ts`, with the session's
    /// `lsid`, the `txnNumber` and the operation's index in the transaction.
    pub fn restamp(
        &self,
        ts: Timestamp,
        lsid: &RawDocument,
        txn_number: i64,
        index: u32,
    ) -> Result<OplogEntry, MongoError> {
        let mut d = RawDocumentBuf::new();
        d.append(cstr!("ts"), ts);
        let old = RawDocument::from_bytes(&self.bytes).map_err(|_| corrupt("not BSON"))?;
        for field in old.iter() {
            let (key, value) = field.map_err(|_| corrupt("not BSON"))?;
            if key.as_str() != "ts" {
                d.append(key, value);
            }
        }
        d.append(cstr!("lsid"), lsid);
        d.append(cstr!("txnNumber"), txn_number);
        d.append(cstr!("txnOpIndex"), index as i32);
        OplogEntry::decode(d.into_bytes())
    }

    /// The `lsid`, `txnNumber` and `txnOpIndex` of an operation of a transaction.
    pub fn transaction(&self) -> Option<(&RawDocument, i64, u32)> {
        self.txn.as_ref().map(|(lsid, n, i)| {
            let lsid = RawDocument::from_bytes(&self.bytes[lsid.clone()])
                .expect("validated when the entry was decoded");
            (lsid, *n, *i)
        })
    }

    /// The event's `clusterTime`: the entry's own time, or for an operation of a
    /// transaction the transaction's commit time. A transaction's operations take
    /// consecutive ticks within one second from its commit time on (see
    /// `ClusterClock::tick_many`), so operation `i` lies at commit + `i`, and its
    /// position (the resume token's time) names its `txnOpIndex`.
    pub fn cluster_time(&self) -> Timestamp {
        match &self.txn {
            Some((_, _, i)) => Timestamp {
                time: self.ts.time,
                increment: self.ts.increment.saturating_sub(*i),
            },
            None => self.ts,
        }
    }

    /// The stored form.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The storage key: the packed timestamp, big-endian, so keys sort in time order.
    pub fn key(&self) -> [u8; 8] {
        key_of(self.ts)
    }

    /// The namespace (`<db>.$cmd` for a database-level command).
    pub fn ns(&self) -> NsRef<'_> {
        let text = |r: Range<usize>| {
            std::str::from_utf8(&self.bytes[r]).expect("validated when the entry was decoded")
        };
        let full = text(self.ns.clone());
        NsRef {
            db: text(self.ns.start..self.dot),
            coll: text((self.dot + 1).min(self.ns.end)..self.ns.end),
            full,
        }
    }

    /// The collection's UUID (absent for database-level commands and views).
    pub fn uuid(&self) -> Option<RawBinaryRef<'_>> {
        self.uuid.as_ref().map(|bytes| RawBinaryRef {
            subtype: BinarySubtype::Uuid,
            bytes,
        })
    }

    /// Whether the entry is of the collection with this UUID.
    pub fn is_of(&self, uuid: &Binary) -> bool {
        self.uuid
            .as_ref()
            .is_some_and(|u| uuid.subtype == BinarySubtype::Uuid && u[..] == uuid.bytes[..])
    }

    /// What the entry records.
    pub fn op(&self) -> Op<'_> {
        let doc = |r: &Range<usize>| {
            RawDocument::from_bytes(&self.bytes[r.clone()])
                .expect("validated when the entry was decoded")
        };
        match &self.layout {
            Layout::Insert { key, doc: d } => Op::Insert {
                key: doc(key),
                doc: doc(d),
            },
            Layout::Update {
                key,
                description,
                pre,
                post,
            } => Op::Update {
                key: doc(key),
                description: doc(description),
                pre: pre.as_ref().map(doc),
                post: post.as_ref().map(doc),
            },
            Layout::Replace { key, doc: d, pre } => Op::Replace {
                key: doc(key),
                doc: doc(d),
                pre: pre.as_ref().map(doc),
            },
            Layout::Delete { key, pre } => Op::Delete {
                key: doc(key),
                pre: pre.as_ref().map(doc),
            },
            Layout::Catalog(c) => Op::Catalog(c),
        }
    }
}

/// The `o` (and `o2`) of a catalog change on `ns`.
fn catalog_command(
    ns: &Namespace,
    c: &CatalogOp,
) -> Result<(RawDocumentBuf, Option<RawDocumentBuf>), MongoError> {
    let coll = ns.coll.as_str();
    let (o, o2) = match c {
        CatalogOp::Create { options } => (command("create", coll, options), None),
        CatalogOp::Drop => (doc! {"drop": coll}, None),
        CatalogOp::Rename {
            to,
            drop_target,
            stay_temp,
        } => {
            let mut o = doc! {
                "renameCollection": ns.to_string(),
                "to": to.to_string(),
                "stayTemp": *stay_temp,
            };
            if let Some(t) = drop_target {
                o.insert("dropTarget", t.clone());
            }
            (o, None)
        }
        CatalogOp::DropDatabase => (doc! {"dropDatabase": 1}, None),
        CatalogOp::CreateIndexes { spec } => (command("createIndexes", coll, spec), None),
        CatalogOp::DropIndexes { name, spec } => (
            doc! {"dropIndexes": coll, "index": name},
            Some(spec.clone()),
        ),
        CatalogOp::CollMod {
            changes,
            old_options,
            old_index_options,
        } => {
            // mongod's `o2`: the index's old options beside the collection's, each as
            // `<option>_old`.
            let mut o2 = doc! {"collectionOptions_old": old_options.clone()};
            for (k, v) in old_index_options.iter().flatten() {
                o2.insert(format!("{k}_old"), v.clone());
            }
            (command("collMod", coll, changes), Some(o2))
        }
    };
    Ok((raw(&o)?, o2.as_ref().map(raw).transpose()?))
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
        "collMod" => {
            let o2 = o2.unwrap_or_default();
            let old_index_options: Document = o2
                .iter()
                .filter_map(|(k, v)| {
                    let option = k.strip_suffix("_old")?;
                    (option != "collectionOptions").then(|| (option.to_owned(), v.clone()))
                })
                .collect();
            CatalogOp::CollMod {
                old_options: o2
                    .get_document("collectionOptions_old")
                    .cloned()
                    .unwrap_or_default(),
                old_index_options: o.contains_key("index").then_some(old_index_options),
                changes: o,
            }
        }
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

    fn ts() -> Timestamp {
        Timestamp {
            time: 10,
            increment: 2,
        }
    }

    fn round_trip(op: Op<'_>, uuid: Option<&Binary>) {
        let ns = Namespace::new("db", "c.d");
        let e =
            OplogEntry::new(ts(), DateTime::from_millis(10_000), &ns, uuid, op).expect("encode");
        assert_eq!(e.op(), op);
        assert_eq!(e.ns(), ns);
        assert_eq!(
            (e.ns().db, e.ns().coll, e.ns().full),
            ("db", "c.d", "db.c.d")
        );
        assert_eq!(e.uuid().map(|u| u.to_binary()).as_ref(), uuid);
        let back = OplogEntry::decode(e.bytes().to_vec()).expect("decode");
        assert_eq!(back, e);
        assert_eq!(back.op(), op);
        assert_eq!(ts_of_key(&e.key()), Some(e.ts));
    }

    fn r(d: Document) -> RawDocumentBuf {
        raw(&d).expect("encode")
    }

    #[test]
    fn entries_round_trip() {
        let uuid = crate::catalog::new_uuid();
        let key = r(doc! {"_id": 1});
        let (desc, pre, post) = (
            r(doc! {"updatedFields": {"a": 1}, "removedFields": [], "truncatedArrays": []}),
            r(doc! {"_id": 1, "a": 0}),
            r(doc! {"_id": 1, "a": 1}),
        );
        round_trip(
            Op::Update {
                key: &key,
                description: &desc,
                pre: Some(&pre),
                post: Some(&post),
            },
            Some(&uuid),
        );
        round_trip(
            Op::Insert {
                key: &key,
                doc: &post,
            },
            Some(&uuid),
        );
        round_trip(
            Op::Replace {
                key: &key,
                doc: &post,
                pre: None,
            },
            Some(&uuid),
        );
        round_trip(
            Op::Delete {
                key: &key,
                pre: None,
            },
            Some(&uuid),
        );
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
                old_index_options: None,
            },
            CatalogOp::CollMod {
                changes: doc! {"index": {"name": "at_1", "expireAfterSeconds": 5}},
                old_options: doc! {},
                old_index_options: Some(doc! {"expireAfterSeconds": 60, "hidden": false}),
            },
        ] {
            round_trip(Op::Catalog(&c), Some(&uuid));
        }
        round_trip(Op::Catalog(&CatalogOp::DropDatabase), None);
    }

    /// The on-disk layout is a public format: an entry encodes to exactly the document
    /// format version 1 has always written.
    #[test]
    fn the_disk_layout_is_unchanged() {
        let uuid = crate::catalog::new_uuid();
        let (ts, wall, ns) = (
            Timestamp {
                time: 3,
                increment: 4,
            },
            DateTime::from_millis(5),
            Namespace::new("db", "c"),
        );
        let drop = CatalogOp::DropIndexes {
            name: "a_1".into(),
            spec: doc! {"key": {"a": 1}},
        };
        let e = OplogEntry::new(ts, wall, &ns, Some(&uuid), Op::Catalog(&drop)).expect("encode");
        let expected = doc! {
            "ts": ts,
            "wall": wall,
            "op": "c",
            "ns": "db.c",
            "o": {"dropIndexes": "c", "index": "a_1"},
            "ui": uuid.clone(),
            "o2": {"key": {"a": 1}},
        };
        assert_eq!(e.bytes(), expected.to_vec().expect("encode"));
        let (key, desc, pre, post) = (
            r(doc! {"_id": 1}),
            r(doc! {"updatedFields": {"a": 1}}),
            r(doc! {"_id": 1}),
            r(doc! {"_id": 1, "a": 1}),
        );
        let update = Op::Update {
            key: &key,
            description: &desc,
            pre: Some(&pre),
            post: Some(&post),
        };
        let u = OplogEntry::new(ts, wall, &ns, Some(&uuid), update).expect("encode");
        let expected = doc! {
            "ts": ts,
            "wall": wall,
            "op": "u",
            "ns": "db.c",
            "o": {"updatedFields": {"a": 1}},
            "ui": uuid,
            "o2": {"_id": 1},
            "pre": {"_id": 1},
            "post": {"_id": 1, "a": 1},
        };
        assert_eq!(u.bytes(), expected.to_vec().expect("encode"));
    }
}
