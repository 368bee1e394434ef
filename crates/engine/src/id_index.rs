//! The collated `_id` index of a collection with a default collation.
//!
//! mongod's `_id` index takes the collection's default collation: in a collection
//! created with `{locale: "en", strength: 2}`, `{_id: "A"}` beside `{_id: "a"}` is a
//! duplicate key (E11000 on `_id_`), and `find({_id: "A"})` under that collation finds
//! `"a"` through the index (IDHACK). Eddy's documents table stays keyed by the bytes of
//! `_id` (its order is the collection scan's, change events' `documentKey` is the
//! stored `_id`); beside it, such a collection keeps this table, keyed by the collated
//! encoding of `_id`, valued by the documents-table key (the unique layout of
//! `crate::index`: two transactions writing `_id`s equal under the collation write the
//! same key, so the later one meets a 112 WriteConflict, as for any unique index).
//!
//! Its entries are written in the same write transaction as the document (inserts add
//! one, deletes, capped truncation and TTL remove it; updates cannot change `_id`), so
//! a crash leaves both or neither. A store written before this table existed gets it
//! at open ([`rebuild_missing`]). Time-series collections (whose measurements may share
//! an `_id`) have none.

use std::sync::Arc;

use bson::{doc, Bson};
use eddy_codes::MongoError;
use eddy_query::collation::Collation;
use eddy_query::key;
use eddy_storage::{KvRead, KvWrite};

use crate::catalog::{self, CollectionMeta};
use crate::{index, storage_err, tables};

/// The collation of the collection's `_id` index when it is not simple (the
/// collection then has this table).
pub fn collation(meta: &CollectionMeta) -> Option<Arc<Collation>> {
    if meta.timeseries().is_some() {
        return None;
    }
    meta.collation()
}

/// The table of the collection's collated `_id` index.
pub fn table(meta: &CollectionMeta) -> String {
    tables::collated_id(meta.id)
}

/// The collated key of an `_id` (a prefix of its entries).
pub fn key_of(id: &Bson, c: &Collation) -> Vec<u8> {
    key::encode_key_collated(&[(id, false)], Some(c))
}

/// The documents-table key of the document whose `_id` equals `id` under `c` (the
/// collection's collation).
pub fn lookup(
    r: &(impl KvRead + ?Sized),
    meta: &CollectionMeta,
    c: &Collation,
    id: &Bson,
) -> Result<Option<Vec<u8>>, MongoError> {
    r.get(&table(meta), &key_of(id, c)).map_err(storage_err)
}

/// mongod's duplicate key error on `_id_` when another document's `_id` equals `id`
/// under the collection's collation. `id_key` is the writing document's own key.
pub fn check(
    r: &(impl KvRead + ?Sized),
    meta: &CollectionMeta,
    id: &Bson,
    id_key: &[u8],
) -> Result<(), MongoError> {
    let Some(c) = collation(meta) else {
        return Ok(());
    };
    if lookup(r, meta, &c, id)?.is_some_and(|owner| owner != id_key) {
        return Err(index::duplicate_key_error_collated(
            meta,
            "_id_",
            &doc! {"_id": 1},
            &doc! {"_id": id.clone()},
            Some(&c),
        ));
    }
    Ok(())
}

/// Adds the entry of a document with `_id` `id` stored under `id_key`.
pub fn add(
    w: &mut (impl KvWrite + ?Sized),
    meta: &CollectionMeta,
    id: &Bson,
    id_key: &[u8],
) -> Result<(), MongoError> {
    if let Some(c) = collation(meta) {
        w.put(&table(meta), &key_of(id, &c), id_key)
            .map_err(storage_err)?;
    }
    Ok(())
}

/// Removes the entry of a document with `_id` `id` stored under `id_key`.
pub fn remove(
    w: &mut (impl KvWrite + ?Sized),
    meta: &CollectionMeta,
    id: &Bson,
    id_key: &[u8],
) -> Result<(), MongoError> {
    if let Some(c) = collation(meta) {
        let k = key_of(id, &c);
        // Only its own entry (see `rebuild_missing` for a store with duplicates).
        if lookup(&*w, meta, &c, id)?.is_some_and(|owner| owner == id_key) {
            w.delete(&table(meta), &k).map_err(storage_err)?;
        }
    }
    Ok(())
}

/// Builds the table of every collated collection whose table does not hold one entry
/// per document (a store from before it existed); how many it built. Such a store may
/// hold `_id`s equal under the collation, which no build refused then: the first in
/// `_id` order keeps the entry (a collated lookup finds it alone; new duplicates are
/// refused), and a warning names the collection.
pub fn rebuild_missing(w: &mut (impl KvWrite + ?Sized)) -> Result<usize, MongoError> {
    let mut built = 0;
    for meta in catalog::list(&*w, None)? {
        if collation(&meta).is_none() {
            continue;
        }
        let t = table(&meta);
        let docs = w.len(&meta.docs_table()).map_err(storage_err)?;
        if w.len(&t).map_err(storage_err)? == docs {
            continue;
        }
        w.delete_table(&t).map_err(storage_err)?;
        let all: Vec<(Vec<u8>, Vec<u8>)> = w
            .scan_all(&meta.docs_table(), false)
            .map_err(storage_err)?
            .collect::<Result<_, _>>()
            .map_err(storage_err)?;
        let mut duplicates = 0u64;
        for (id_key, bytes) in all {
            let doc = catalog::decode(&bytes)?;
            let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
            if check(&*w, &meta, &id, &id_key).is_err() {
                duplicates += 1;
                continue;
            }
            add(w, &meta, &id, &id_key)?;
        }
        if duplicates > 0 {
            tracing::warn!(
                ns = %meta.ns,
                duplicates,
                "_id values equal under the collection's collation, from an older build"
            );
        }
        built += 1;
    }
    Ok(built)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{DeleteOp, Engine, EngineOptions, Namespace};
    use bson::{doc, Document};
    use eddy_storage::Store;

    pub(crate) fn open(dir: &tempfile::TempDir) -> Arc<Engine> {
        Engine::open(EngineOptions::new(dir.path())).expect("open")
    }

    /// A collection `db.ci` with a case-insensitive default collation.
    pub(crate) fn setup(engine: &Arc<Engine>) -> Namespace {
        let ns = Namespace::new("db", "ci");
        engine
            .create_collection(
                ns.clone(),
                doc! {"collation": {"locale": "en", "strength": 2}},
            )
            .expect("create");
        ns
    }

    pub(crate) fn meta(engine: &Arc<Engine>, ns: &Namespace) -> CollectionMeta {
        engine
            .reader()
            .expect("reader")
            .collection(ns)
            .expect("catalog")
            .expect("exists")
    }

    /// The stored `_id` the collated index finds for `id`.
    fn found(dir: &tempfile::TempDir, meta: &CollectionMeta, id: &str) -> Option<Bson> {
        let store = Store::open(&dir.path().join("eddy.redb")).expect("store");
        let snap = store.snapshot().expect("snapshot");
        let c = collation(meta).expect("collated");
        lookup(&snap, meta, &c, &Bson::String(id.into()))
            .expect("lookup")
            .map(|k| {
                let bytes = snap
                    .get(&meta.docs_table(), &k)
                    .expect("get")
                    .expect("document");
                catalog::decode(&bytes)
                    .expect("decode")
                    .get("_id")
                    .cloned()
                    .expect("_id")
            })
    }

    fn codes(errors: &[(usize, MongoError)]) -> Vec<(usize, i32)> {
        errors.iter().map(|(i, e)| (*i, e.code)).collect()
    }

    #[test]
    fn case_variants_of_an_id_are_duplicates_and_deletes_free_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = open(&dir);
        let ns = setup(&engine);
        let docs: Vec<Document> = ["a", "b", "A", "c"]
            .iter()
            .map(|s| doc! {"_id": *s})
            .collect();
        let out = engine.insert(ns.clone(), docs, false).expect("insert");
        assert_eq!(out.n, 3);
        assert_eq!(codes(&out.errors), vec![(2, 11000)]);
        let message = &out.errors[0].1.message;
        assert!(
            message.starts_with(
                "E11000 duplicate key error collection: db.ci index: _id_ collation: { locale: \"en\""
            ),
            "{message}"
        );
        assert!(message.contains(" dup key: { _id: \"0x"), "{message}");
        let extra = out.errors[0].1.extra.as_ref().expect("extra");
        assert_eq!(
            extra.get_document("keyValue").ok(),
            Some(&doc! {"_id": "A"})
        );
        assert_eq!(
            extra
                .get_document("collation")
                .ok()
                .and_then(|c| c.get_i32("strength").ok()),
            Some(2)
        );
        let delete = DeleteOp {
            filter: doc! {"_id": "B"},
            just_one: true,
            collation: Collation::parse(&doc! {"locale": "en", "strength": 2}).expect("c"),
            ..Default::default()
        };
        assert_eq!(
            engine
                .delete(ns.clone(), vec![delete], true)
                .expect("delete")
                .n,
            1
        );
        let out = engine
            .insert(ns.clone(), vec![doc! {"_id": "B"}], true)
            .expect("insert");
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        let m = meta(&engine, &ns);
        engine.close();
        drop(engine);
        assert_eq!(found(&dir, &m, "A"), Some(Bson::String("a".into())));
        assert_eq!(found(&dir, &m, "b"), Some(Bson::String("B".into())));
        assert!(found(&dir, &m, "d").is_none());
    }

    #[test]
    fn a_store_without_the_table_gets_it_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = open(&dir);
        let ns = setup(&engine);
        engine
            .insert(ns.clone(), vec![doc! {"_id": "x"}, doc! {"_id": 1}], true)
            .expect("insert");
        let m = meta(&engine, &ns);
        engine.close();
        drop(engine);
        // As a build from before the table left it.
        let store = Store::open(&dir.path().join("eddy.redb")).expect("store");
        store
            .write_now(|w| w.delete_table(&table(&m)))
            .expect("write")
            .expect("delete");
        drop(store);
        assert!(found(&dir, &m, "X").is_none());
        let engine = open(&dir);
        let out = engine
            .insert(ns.clone(), vec![doc! {"_id": "X"}], true)
            .expect("insert");
        assert_eq!(codes(&out.errors), vec![(0, 11000)]);
        engine.close();
        drop(engine);
        assert_eq!(found(&dir, &m, "X"), Some(Bson::String("x".into())));
    }

    #[test]
    fn a_transaction_writes_the_entry_with_its_document() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = open(&dir);
        let ns = setup(&engine);
        let (txn, _) = engine.begin_transaction(None).expect("begin");
        let (out, txn) = txn.scope(|| {
            engine.insert(
                ns.clone(),
                vec![doc! {"_id": "t"}, doc! {"_id": "T"}],
                false,
            )
        });
        assert_eq!(codes(&out.expect("insert").errors), vec![(1, 11000)]);
        // Nothing is visible outside before the commit.
        let out = engine
            .insert(ns.clone(), vec![doc! {"_id": "T"}], true)
            .expect("insert");
        assert!(out.errors.is_empty());
        let lsid = bson::RawDocumentBuf::try_from(&doc! {"id": 1}).expect("lsid");
        let committed = txn.commit(&engine, lsid, 1);
        assert_eq!(committed.expect_err("write conflict on the key").code, 112);
    }
}
