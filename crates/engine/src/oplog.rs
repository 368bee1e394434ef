//! The operation log: one entry per changed document or catalog change, written in
//! the same transaction as the change itself, keyed by its cluster timestamp.
//!
//! The entry is Eddy's own format (documented in docs/storage-format.md), shaped so a
//! change event can be built from it without reading anything else: updates carry the
//! `updateDescription` computed when the update ran, and collections with
//! `changeStreamPreAndPostImages` carry exact pre- and post-images.

use std::sync::Arc;

use bson::{doc, Binary, Bson, DateTime, Document, Timestamp};
use eddy_codes::{ErrorCode, MongoError};

use crate::catalog::{self, Namespace};
use crate::clock;

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// A document was inserted; `o` is the document.
    Insert,
    /// A document was updated with operators; `o` is the update description.
    Update,
    /// A document was replaced; `o` is the new document.
    Replace,
    /// A document was deleted.
    Delete,
    /// A catalog change; `o` is the command (`{drop: coll}`, `{create: coll, ...}`, ...).
    Command,
}

impl OpKind {
    fn code(self) -> &'static str {
        match self {
            OpKind::Insert => "i",
            OpKind::Update => "u",
            OpKind::Replace => "r",
            OpKind::Delete => "d",
            OpKind::Command => "c",
        }
    }

    fn from_code(code: &str) -> Option<OpKind> {
        Some(match code {
            "i" => OpKind::Insert,
            "u" => OpKind::Update,
            "r" => OpKind::Replace,
            "d" => OpKind::Delete,
            "c" => OpKind::Command,
            _ => return None,
        })
    }
}

/// One oplog entry, decoded once and shared by every stream that reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct OplogEntry {
    pub ts: Timestamp,
    pub wall: DateTime,
    pub op: OpKind,
    pub ns: Namespace,
    /// The collection's UUID (absent for database-level commands).
    pub uuid: Option<Binary>,
    /// The document (insert, replace), the update description (update) or the
    /// command (catalog change).
    pub o: Document,
    /// The document key `{_id}` for document operations.
    pub document_key: Option<Document>,
    /// The document before the change, when the collection records images.
    pub pre_image: Option<Document>,
    /// The document after an update, when the collection records images.
    pub post_image: Option<Document>,
}

/// The shared, immutable form that the change hub hands out.
pub type SharedEntry = Arc<OplogEntry>;

impl OplogEntry {
    /// The storage key: the packed timestamp, big-endian, so keys sort in time order.
    pub fn key(&self) -> [u8; 8] {
        key_of(self.ts)
    }

    /// The command name of a catalog change (`drop`, `create`, `renameCollection`, ...).
    pub fn command_name(&self) -> Option<&str> {
        match self.op {
            OpKind::Command => self.o.keys().next().map(String::as_str),
            _ => None,
        }
    }

    pub fn to_document(&self) -> Document {
        let mut d = doc! {
            "ts": self.ts,
            "wall": self.wall,
            "op": self.op.code(),
            "ns": self.ns.to_string(),
            "o": self.o.clone(),
        };
        if let Some(uuid) = &self.uuid {
            d.insert("ui", uuid.clone());
        }
        if let Some(k) = &self.document_key {
            d.insert("o2", k.clone());
        }
        if let Some(pre) = &self.pre_image {
            d.insert("pre", pre.clone());
        }
        if let Some(post) = &self.post_image {
            d.insert("post", post.clone());
        }
        d
    }

    pub fn encode(&self) -> Result<Vec<u8>, MongoError> {
        catalog::encode(&self.to_document())
    }

    pub fn decode(bytes: &[u8]) -> Result<OplogEntry, MongoError> {
        let d = catalog::decode(bytes)?;
        let corrupt = |what: &str| {
            MongoError::new(
                ErrorCode::DataCorruptionDetected,
                format!("corrupt oplog entry: {what}"),
            )
        };
        let ns = d.get_str("ns").map_err(|_| corrupt("ns"))?;
        Ok(OplogEntry {
            ts: d.get_timestamp("ts").map_err(|_| corrupt("ts"))?,
            wall: *d.get_datetime("wall").map_err(|_| corrupt("wall"))?,
            op: d
                .get_str("op")
                .ok()
                .and_then(OpKind::from_code)
                .ok_or_else(|| corrupt("op"))?,
            ns: match ns.split_once('.') {
                Some((db, coll)) => Namespace::new(db, coll),
                None => Namespace::new(ns, ""),
            },
            uuid: match d.get("ui") {
                Some(Bson::Binary(b)) => Some(b.clone()),
                _ => None,
            },
            o: d.get_document("o").map_err(|_| corrupt("o"))?.clone(),
            document_key: d.get_document("o2").ok().cloned(),
            pre_image: d.get_document("pre").ok().cloned(),
            post_image: d.get_document("post").ok().cloned(),
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let e = OplogEntry {
            ts: Timestamp {
                time: 10,
                increment: 2,
            },
            wall: DateTime::from_millis(10_000),
            op: OpKind::Update,
            ns: Namespace::new("db", "c.d"),
            uuid: Some(catalog::new_uuid()),
            o: doc! {"updatedFields": {"a": 1}, "removedFields": [], "truncatedArrays": []},
            document_key: Some(doc! {"_id": 1}),
            pre_image: Some(doc! {"_id": 1, "a": 0}),
            post_image: Some(doc! {"_id": 1, "a": 1}),
        };
        let back = OplogEntry::decode(&e.encode().expect("encode")).expect("decode");
        assert_eq!(back, e);
        assert_eq!(ts_of_key(&e.key()), Some(e.ts));
    }
}
