//! Capped collections: a size (and optionally a document count) cap, insertion order.
//!
//! A capped collection stores its documents like any other (`d.<id>`, keyed by the
//! encoded `_id`, so `_id` lookups, indexes and every write path are shared), plus two
//! tables of its own that only capped collections have, so ordinary collections pay
//! nothing:
//!
//! | table | key | value |
//! |---|---|---|
//! | `n.<id>` | record id, big-endian u64 (insertion order) | encoded `_id` |
//! | `n.<id>` | the empty key (sorts first) | total BSON bytes of the documents, big-endian u64 |
//! | `r.<id>` | encoded `_id` | record id (8 bytes) ++ the document's BSON size (8 bytes) |
//!
//! Record ids come from the store-wide `next_id` counter, so they only grow, are never
//! reused (not even after the collection empties) and a tailable cursor can hold one as
//! its position. An insert past the cap removes the oldest documents (lowest record
//! ids) in the same transaction; as in mongod 7.0, where each node truncates capped
//! collections itself, those removals are not logged, so change streams do not see them.

use std::ops::Bound;

use bson::{Bson, Document};
use eddy_codes::{ErrorCode, MongoError};
use eddy_storage::{KvRead, KvWrite};

use crate::catalog::{self, CollectionMeta};
use crate::storage_err;

/// The key under which `n.<id>` keeps the collection's total size.
const SIZE_KEY: &[u8] = b"";

/// mongod's largest capped size (1 PB).
pub const MAX_CAPPED_SIZE: i64 = 1 << 50;
/// mongod's largest `max` (documents): below 2^31.
pub const MAX_CAPPED_DOCS: i64 = 0x7fff_ffff;

/// A capped collection's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    /// Bytes (sum of BSON document sizes).
    pub size: u64,
    /// Documents (`None`: no count limit).
    pub max: Option<u64>,
}

impl Cap {
    /// The cap recorded in a collection's options (`{capped: true, size, max?}`).
    pub fn of(options: &Document) -> Option<Cap> {
        if !matches!(options.get("capped"), Some(Bson::Boolean(true))) {
            return None;
        }
        let number = |k: &str| match options.get(k) {
            Some(Bson::Int32(n)) => Some(i64::from(*n)),
            Some(Bson::Int64(n)) => Some(*n),
            Some(Bson::Double(n)) => Some(*n as i64),
            _ => None,
        };
        Some(Cap {
            size: number("size").unwrap_or(0).max(0) as u64,
            max: number("max").filter(|m| *m > 0).map(|m| m as u64),
        })
    }
}

/// mongod's rounding of a capped `size`: up to a multiple of 256 bytes.
pub fn round_size(size: i64) -> i64 {
    (size.saturating_add(0xff)) & !0xff
}

/// A size or max as the catalog stores it: int32 when it fits, else int64 (mongod's
/// `appendNumber`).
pub fn number(n: i64) -> Bson {
    match i32::try_from(n) {
        Ok(n) => Bson::Int32(n),
        Err(_) => Bson::Int64(n),
    }
}

pub(crate) fn natural_table(meta: &CollectionMeta) -> String {
    format!("n.{}", meta.id)
}

/// Whether a key of the natural table is a record id (the other key holds the size).
pub(crate) fn is_record_key(key: &[u8]) -> bool {
    key.len() == 8
}

pub(crate) fn records_table(meta: &CollectionMeta) -> String {
    format!("r.{}", meta.id)
}

fn be(bytes: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    let n = bytes.len().min(8);
    a[..n].copy_from_slice(&bytes[..n]);
    u64::from_be_bytes(a)
}

/// The total BSON bytes of a capped collection's documents.
pub fn total_size(r: &(impl KvRead + ?Sized), meta: &CollectionMeta) -> Result<u64, MongoError> {
    Ok(r.get(&natural_table(meta), SIZE_KEY)
        .map_err(storage_err)?
        .map_or(0, |v| be(&v)))
}

fn set_total(
    w: &mut (impl KvWrite + ?Sized),
    meta: &CollectionMeta,
    size: u64,
) -> Result<(), MongoError> {
    w.put(&natural_table(meta), SIZE_KEY, &size.to_be_bytes())
        .map_err(storage_err)
}

/// 2 BadValue for a document larger than the whole cap (mongod's wording).
pub fn check_fits(cap: &Cap, len: usize) -> Result<(), MongoError> {
    if len as u64 > cap.size {
        return Err(MongoError::new(
            ErrorCode::BadValue,
            "object to insert exceeds cappedMaxSize",
        ));
    }
    Ok(())
}

/// Records a newly inserted document (already in `d.<id>`) at the end of the natural
/// order under `record_id`.
pub(crate) fn record_insert(
    w: &mut (impl KvWrite + ?Sized),
    meta: &CollectionMeta,
    id_key: &[u8],
    len: usize,
    record_id: u64,
) -> Result<(), MongoError> {
    w.put(&natural_table(meta), &record_id.to_be_bytes(), id_key)
        .map_err(storage_err)?;
    let mut v = record_id.to_be_bytes().to_vec();
    v.extend_from_slice(&(len as u64).to_be_bytes());
    w.put(&records_table(meta), id_key, &v)
        .map_err(storage_err)?;
    let total = total_size(&*w, meta)? + len as u64;
    set_total(w, meta, total)
}

/// Forgets a removed document (its `d.<id>` entry is the caller's).
pub(crate) fn record_delete(
    w: &mut (impl KvWrite + ?Sized),
    meta: &CollectionMeta,
    id_key: &[u8],
) -> Result<(), MongoError> {
    let Some(v) = w.get(&records_table(meta), id_key).map_err(storage_err)? else {
        return Ok(());
    };
    let (record_id, len) = (be(&v[..8.min(v.len())]), be(v.get(8..).unwrap_or(&[])));
    w.delete(&records_table(meta), id_key)
        .map_err(storage_err)?;
    w.delete(&natural_table(meta), &record_id.to_be_bytes())
        .map_err(storage_err)?;
    let total = total_size(&*w, meta)?.saturating_sub(len);
    set_total(w, meta, total)
}

/// Records a document's new size after an update (its place in the order stays).
pub(crate) fn record_resize(
    w: &mut (impl KvWrite + ?Sized),
    meta: &CollectionMeta,
    id_key: &[u8],
    new_len: usize,
) -> Result<(), MongoError> {
    let Some(v) = w.get(&records_table(meta), id_key).map_err(storage_err)? else {
        return Ok(());
    };
    let old_len = be(v.get(8..).unwrap_or(&[]));
    let mut nv = v.get(..8).unwrap_or(&[0; 8]).to_vec();
    nv.extend_from_slice(&(new_len as u64).to_be_bytes());
    w.put(&records_table(meta), id_key, &nv)
        .map_err(storage_err)?;
    let total = (total_size(&*w, meta)? + new_len as u64).saturating_sub(old_len);
    set_total(w, meta, total)
}

/// The `_id` key of the oldest document, when the collection is over its cap.
pub(crate) fn oldest_over_cap(
    w: &(impl KvRead + ?Sized),
    meta: &CollectionMeta,
    cap: &Cap,
) -> Result<Option<Vec<u8>>, MongoError> {
    let count = w.len(&meta.docs_table()).map_err(storage_err)?;
    let over = total_size(w, meta)? > cap.size || cap.max.is_some_and(|m| count > m);
    if !over {
        return Ok(None);
    }
    Ok(natural_after(w, meta, 0, false, 1)?
        .into_iter()
        .next()
        .map(|(_, k)| k))
}

/// Up to `limit` `(record id, _id key)` pairs in natural order after record id `after`
/// (forward) or before it (`reverse`, where 0 means "from the end").
pub fn natural_after(
    r: &(impl KvRead + ?Sized),
    meta: &CollectionMeta,
    after: u64,
    reverse: bool,
    limit: usize,
) -> Result<Vec<(u64, Vec<u8>)>, MongoError> {
    let (start, end) = if reverse {
        let end = if after == 0 {
            Bound::Unbounded
        } else {
            Bound::Excluded(after.to_be_bytes().to_vec())
        };
        (Bound::Excluded(SIZE_KEY.to_vec()), end)
    } else {
        (
            Bound::Excluded(after.to_be_bytes().to_vec()),
            Bound::Unbounded,
        )
    };
    let mut out = Vec::new();
    for entry in r
        .scan(&natural_table(meta), start, end, reverse)
        .map_err(storage_err)?
    {
        if out.len() >= limit {
            break;
        }
        let (k, v) = entry.map_err(storage_err)?;
        if is_record_key(&k) {
            out.push((be(&k), v));
        }
    }
    Ok(out)
}

/// The record id of a document, by its `_id` key.
pub fn record_id(
    r: &(impl KvRead + ?Sized),
    meta: &CollectionMeta,
    id_key: &[u8],
) -> Result<Option<u64>, MongoError> {
    Ok(r.get(&records_table(meta), id_key)
        .map_err(storage_err)?
        .map(|v| be(&v[..8.min(v.len())])))
}

/// The oldest record id still present.
pub fn first_record(
    r: &(impl KvRead + ?Sized),
    meta: &CollectionMeta,
) -> Result<Option<u64>, MongoError> {
    Ok(natural_after(r, meta, 0, false, 1)?
        .first()
        .map(|(id, _)| *id))
}

/// The documents after record id `after`, in insertion order, at most `limit`.
pub fn read_after(
    r: &(impl KvRead + ?Sized),
    meta: &CollectionMeta,
    after: u64,
    limit: usize,
) -> Result<Vec<(u64, Document)>, MongoError> {
    let mut out = Vec::new();
    for (rid, key) in natural_after(r, meta, after, false, limit)? {
        if let Some(bytes) = r.get(&meta.docs_table(), &key).map_err(storage_err)? {
            out.push((rid, catalog::decode(&bytes)?));
        }
    }
    Ok(out)
}

impl crate::Reader {
    /// Every document of a collection in natural order: insertion order for a capped
    /// collection, `_id` order (a scan) for any other.
    pub fn natural(&self, meta: &CollectionMeta) -> Result<Vec<Document>, MongoError> {
        if meta.cap().is_none() {
            return self.scan(meta)?.collect();
        }
        Ok(read_after(self.snap(), meta, 0, usize::MAX)?
            .into_iter()
            .map(|(_, doc)| doc)
            .collect())
    }

    /// The documents of a capped collection after record id `after`, oldest first, at
    /// most `limit`, with their record ids.
    pub fn capped_after(
        &self,
        meta: &CollectionMeta,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Document)>, MongoError> {
        read_after(self.snap(), meta, after, limit)
    }

    /// The oldest record id of a capped collection still present.
    pub fn capped_first(&self, meta: &CollectionMeta) -> Result<Option<u64>, MongoError> {
        first_record(self.snap(), meta)
    }

    /// Whether a capped collection still holds record id `id`.
    pub fn capped_has(&self, meta: &CollectionMeta, id: u64) -> Result<bool, MongoError> {
        Ok(self
            .snap()
            .get(&natural_table(meta), &id.to_be_bytes())
            .map_err(storage_err)?
            .is_some())
    }

    /// The total BSON bytes of a capped collection.
    pub fn capped_size(&self, meta: &CollectionMeta) -> Result<u64, MongoError> {
        total_size(self.snap(), meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_up_to_256() {
        assert_eq!(round_size(1), 256);
        assert_eq!(round_size(256), 256);
        assert_eq!(round_size(4096), 4096);
        assert_eq!(round_size(1000), 1024);
    }

    #[test]
    fn cap_from_options() {
        assert_eq!(Cap::of(&bson::doc! {"capped": false, "size": 10}), None);
        assert_eq!(
            Cap::of(&bson::doc! {"capped": true, "size": 4096, "max": 3}),
            Some(Cap {
                size: 4096,
                max: Some(3)
            })
        );
    }
}
