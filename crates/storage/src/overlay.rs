//! A transaction's private writes over a read snapshot.
//!
//! A multi-document transaction reads one snapshot and its own writes, and nobody
//! else sees those writes until it commits. [`Overlay`] is that view: a [`Snapshot`]
//! (or any [`KvRead`]) plus the puts and deletes made so far, kept in memory in key
//! order per table. Reads merge the two; writes only touch the in-memory part. At
//! commit the engine replays the [`Changes`] into the group commit's [`WriteBatch`]
//! (`Changes::apply`), so a transaction's writes reach the file in one durable commit.
//!
//! The changes sit behind an `Arc` and are copied on write: a read of the transaction
//! keeps a frozen view (`Overlay::clone`) for as long as it needs one, at the cost of
//! one reference count while nobody writes.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use crate::{Entry, EntryIter, KvRead, KvWrite, Result, WriteBatch};

/// The writes of one table: `None` is a delete. `cleared`: the table was dropped
/// first, so the base holds nothing of it.
#[derive(Debug, Clone, Default)]
struct TableChanges {
    cleared: bool,
    keys: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

/// Every write of a transaction, by table.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    tables: BTreeMap<String, TableChanges>,
}

impl Changes {
    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// Every written key, with its new value (`None`: deleted), table by table.
    pub fn writes(&self) -> impl Iterator<Item = (&str, &[u8], Option<&[u8]>)> {
        self.tables.iter().flat_map(|(t, c)| {
            c.keys
                .iter()
                .map(move |(k, v)| (t.as_str(), k.as_slice(), v.as_deref()))
        })
    }

    /// The tables dropped (then maybe written again) by the transaction.
    pub fn cleared_tables(&self) -> impl Iterator<Item = &str> {
        self.tables
            .iter()
            .filter(|(_, c)| c.cleared)
            .map(|(t, _)| t.as_str())
    }

    /// Replays the writes into the group commit's batch.
    pub fn apply(&self, w: &mut WriteBatch<'_>) -> Result<()> {
        for (table, changes) in &self.tables {
            if changes.cleared {
                w.delete_table(table)?;
            }
            for (k, v) in &changes.keys {
                match v {
                    Some(v) => w.put(table, k, v)?,
                    None => {
                        w.delete(table, k)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A base view plus a transaction's own writes.
#[derive(Clone)]
pub struct Overlay<R> {
    base: R,
    changes: Arc<Changes>,
}

impl<R: KvRead> Overlay<R> {
    /// An overlay with no writes yet.
    pub fn new(base: R) -> Overlay<R> {
        Overlay {
            base,
            changes: Arc::new(Changes::default()),
        }
    }

    /// The writes so far.
    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    /// The base view.
    pub fn base(&self) -> &R {
        &self.base
    }

    fn table(&self, name: &str) -> Option<&TableChanges> {
        self.changes.tables.get(name)
    }

    fn table_mut(&mut self, name: &str) -> &mut TableChanges {
        Arc::make_mut(&mut self.changes)
            .tables
            .entry(name.to_owned())
            .or_default()
    }

    fn base_has(&self, name: &str, key: &[u8]) -> Result<bool> {
        if self.table(name).is_some_and(|t| t.cleared) {
            return Ok(false);
        }
        Ok(self.base.get(name, key)?.is_some())
    }
}

fn in_bounds(key: &[u8], start: &Bound<Vec<u8>>, end: &Bound<Vec<u8>>) -> bool {
    let after_start = match start {
        Bound::Included(s) => key >= s.as_slice(),
        Bound::Excluded(s) => key > s.as_slice(),
        Bound::Unbounded => true,
    };
    let before_end = match end {
        Bound::Included(e) => key <= e.as_slice(),
        Bound::Excluded(e) => key < e.as_slice(),
        Bound::Unbounded => true,
    };
    after_start && before_end
}

/// A key written by the transaction, with its value (`None`: deleted).
type OwnEntry = (Vec<u8>, Option<Vec<u8>>);

/// Merges the base's entries with the overlay's (which win on equal keys, and hide
/// deleted ones), both in the same direction.
struct Merge<'a> {
    base: std::iter::Peekable<EntryIter<'a>>,
    own: std::iter::Peekable<std::vec::IntoIter<OwnEntry>>,
    reverse: bool,
}

impl Iterator for Merge<'_> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let take_own = match (self.base.peek(), self.own.peek()) {
                (None, None) => return None,
                (Some(Err(_)), _) => return self.base.next(),
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (Some(Ok((bk, _))), Some((ok, _))) => {
                    if bk == ok {
                        // The transaction's write replaces the base's entry.
                        self.base.next();
                        true
                    } else {
                        (ok < bk) != self.reverse
                    }
                }
            };
            if !take_own {
                return self.base.next();
            }
            match self.own.next() {
                Some((k, Some(v))) => return Some(Ok((k, v))),
                Some((_, None)) => continue,
                None => return None,
            }
        }
    }
}

impl<R: KvRead> KvRead for Overlay<R> {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(t) = self.table(table) {
            if let Some(v) = t.keys.get(key) {
                return Ok(v.clone());
            }
            if t.cleared {
                return Ok(None);
            }
        }
        self.base.get(table, key)
    }

    fn scan(
        &self,
        table: &str,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        reverse: bool,
    ) -> Result<EntryIter<'_>> {
        let Some(t) = self.table(table) else {
            return self.base.scan(table, start, end, reverse);
        };
        // A filter rather than `BTreeMap::range`, which panics on an empty range.
        let mut own: Vec<OwnEntry> = t
            .keys
            .iter()
            .filter(|(k, _)| in_bounds(k, &start, &end))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if reverse {
            own.reverse();
        }
        let base: EntryIter<'_> = match t.cleared {
            true => Box::new(std::iter::empty()),
            false => self.base.scan(table, start, end, reverse)?,
        };
        Ok(Box::new(Merge {
            base: base.peekable(),
            own: own.into_iter().peekable(),
            reverse,
        }))
    }

    fn len(&self, table: &str) -> Result<u64> {
        let Some(t) = self.table(table) else {
            return self.base.len(table);
        };
        let mut n: i64 = match t.cleared {
            true => 0,
            false => self.base.len(table)? as i64,
        };
        for (k, v) in &t.keys {
            let in_base = !t.cleared && self.base.get(table, k)?.is_some();
            match (in_base, v.is_some()) {
                (false, true) => n += 1,
                (true, false) => n -= 1,
                _ => {}
            }
        }
        Ok(n.max(0) as u64)
    }
}

impl<R: KvRead> KvWrite for Overlay<R> {
    fn put(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.table_mut(table)
            .keys
            .insert(key.to_vec(), Some(value.to_vec()));
        Ok(())
    }

    fn delete(&mut self, table: &str, key: &[u8]) -> Result<bool> {
        let existed = self.get(table, key)?.is_some();
        let base_has = self.base_has(table, key)?;
        let t = self.table_mut(table);
        match base_has {
            // Hide the base's entry.
            true => {
                t.keys.insert(key.to_vec(), None);
            }
            // Only the transaction wrote it: forget the write.
            false => {
                t.keys.remove(key);
            }
        }
        Ok(existed)
    }

    fn delete_range(
        &mut self,
        table: &str,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        limit: usize,
    ) -> Result<usize> {
        let keys: Vec<Vec<u8>> = self
            .scan(table, start, end, false)?
            .take(limit)
            .map(|e| e.map(|(k, _)| k))
            .collect::<Result<_>>()?;
        for k in &keys {
            self.delete(table, k)?;
        }
        Ok(keys.len())
    }

    fn delete_table(&mut self, table: &str) -> Result<bool> {
        let existed = !self.is_empty(table)?;
        let t = self.table_mut(table);
        t.cleared = true;
        t.keys.clear();
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    fn keys(r: &impl KvRead, reverse: bool) -> Vec<(Vec<u8>, Vec<u8>)> {
        r.scan_all("t", reverse)
            .expect("scan")
            .map(|e| e.expect("entry"))
            .collect()
    }

    #[test]
    fn reads_merge_the_snapshot_with_the_transaction_s_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db.redb")).expect("open");
        store
            .write_now(|b| {
                for k in [b"a", b"c", b"e"] {
                    b.put("t", k, b"base")?;
                }
                Ok::<_, crate::StorageError>(())
            })
            .expect("commit")
            .expect("put");
        let mut o = Overlay::new(store.snapshot().expect("snapshot"));
        o.put("t", b"b", b"own").expect("put");
        o.put("t", b"c", b"own").expect("put");
        assert!(o.delete("t", b"e").expect("delete"));
        assert!(!o.delete("t", b"z").expect("delete"));
        let frozen = o.clone();
        o.put("t", b"d", b"later").expect("put");
        let got = keys(&frozen, false);
        assert_eq!(
            got,
            vec![
                (b"a".to_vec(), b"base".to_vec()),
                (b"b".to_vec(), b"own".to_vec()),
                (b"c".to_vec(), b"own".to_vec()),
            ]
        );
        let rev: Vec<_> = keys(&o, true).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            rev,
            vec![b"d".to_vec(), b"c".to_vec(), b"b".to_vec(), b"a".to_vec()]
        );
        assert_eq!(o.len("t").expect("len"), 4);
        assert_eq!(
            o.scan(
                "t",
                Bound::Excluded(b"b".to_vec()),
                Bound::Included(b"d".to_vec()),
                false
            )
            .expect("scan")
            .count(),
            2
        );
        // Nobody else sees the writes until they are applied.
        assert_eq!(
            store.snapshot().expect("s").get("t", b"b").expect("get"),
            None
        );
        store
            .write_now(|b| o.changes().apply(b))
            .expect("commit")
            .expect("apply");
        assert_eq!(keys(&store.snapshot().expect("s"), false), keys(&o, false));
    }

    #[test]
    fn a_dropped_table_hides_the_base() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db.redb")).expect("open");
        store
            .write_now(|b| b.put("t", b"a", b"1"))
            .expect("commit")
            .expect("put");
        let mut o = Overlay::new(store.snapshot().expect("snapshot"));
        assert!(o.delete_table("t").expect("drop"));
        o.put("t", b"b", b"2").expect("put");
        assert_eq!(o.get("t", b"a").expect("get"), None);
        assert_eq!(o.len("t").expect("len"), 1);
        assert_eq!(o.changes().cleared_tables().collect::<Vec<_>>(), vec!["t"]);
    }
}
