//! Hashed indexes (`{a: "hashed"}`, or compound with exactly one hashed field anywhere
//! in the key pattern, as mongod 7.0 allows): the spec checks, the keys a document
//! gives them, and the bounds an equality places on a hashed field.
//!
//! A hashed field's key is `eddy_query::hashed::hash64` of the value (an Int64, so the
//! ordinary key encoding, byte ranges and scans serve it); the other fields keep their
//! values. As in mongod's `getHashKeys`, a document is refused with 16766 when any key
//! field's path meets an array (so a hashed index is never multikey), a missing field
//! keys as `null` (hashed), and a sparse hashed index skips documents missing every
//! key field. Only equalities (`$eq`, `$in`) bound a hashed field: their values'
//! hashes are points; ranges, and sorts, cannot use it.
//!
//! In an index with a collation the hashed field hashes a string's collation key
//! (`eddy_query::hashed::hash64_collated`, as mongod), so an equality under the same
//! collation reads it; under another collation only equalities on values without
//! strings do (whose hashes no collation changes).

use bson::{Bson, Document};
use eddy_codes::{ErrorCode, MongoError};
use eddy_query::bounds::{self, Interval};
use eddy_query::collation::Collation;
use eddy_query::filter::Filter;
use eddy_query::hashed::hash64_collated;

use crate::catalog::IndexMeta;

/// Whether a key pattern direction is `"hashed"`.
pub fn is_hashed(direction: &Bson) -> bool {
    matches!(direction, Bson::String(s) if s == "hashed")
}

/// Whether the index has a hashed key field.
pub fn is_hashed_index(index: &IndexMeta) -> bool {
    index.key_pattern().values().any(is_hashed)
}

/// mongod's checks on a key pattern with a hashed field: one hashed field at most
/// (31303), no other index plugin beside it (67), no `unique` (16764).
pub fn check_spec(key: &Document, spec: &Document) -> Result<(), MongoError> {
    let hashed = key.values().filter(|d| is_hashed(d)).count();
    if hashed == 0 {
        return Ok(());
    }
    let other_plugin = key
        .values()
        .any(|d| matches!(d, Bson::String(s) if s != "hashed"));
    if other_plugin {
        return Err(MongoError::new(
            ErrorCode::CannotCreateIndex,
            "Can't use more than one index plugin for a single index.",
        ));
    }
    if hashed > 1 {
        return Err(MongoError::location(
            31303,
            format!(
                "A maximum of one index field is allowed to be hashed but found {hashed} for 'key' {}",
                crate::display_value(&Bson::Document(key.clone()))
            ),
        ));
    }
    let unique = match spec.get("unique") {
        Some(Bson::Boolean(b)) => *b,
        Some(v) => eddy_query::util::number_as_f64(v).is_some_and(|n| n != 0.0),
        None => false,
    };
    if unique {
        return Err(MongoError::location(
            16764,
            "Currently hashed indexes cannot guarantee uniqueness. Use a regular index.",
        ));
    }
    Ok(())
}

/// The value at `path` (mongod's `extractElementAtPathOrArrayAlongPath`): `Err` with
/// the path up to the first array met, `Ok(None)` when missing.
fn value_at<'d>(doc: &'d Document, path: &str) -> Result<Option<&'d Bson>, String> {
    let mut current: Option<&Bson> = None;
    let mut walked: Vec<&str> = Vec::new();
    for part in path.split('.') {
        let next = match current {
            None => doc.get(part),
            Some(Bson::Document(d)) => d.get(part),
            Some(Bson::Array(_)) => return Err(walked.join(".")),
            Some(_) => None,
        };
        walked.push(part);
        match next {
            Some(v) => current = Some(v),
            None => return Ok(None),
        }
    }
    match current {
        Some(Bson::Array(_)) => Err(walked.join(".")),
        other => Ok(other),
    }
}

/// The one key (a value per key field, with its direction) `doc` gives a hashed index:
/// `None` when a sparse index skips it.
pub fn key(index: &IndexMeta, doc: &Document) -> Result<Option<Vec<(Bson, bool)>>, MongoError> {
    let mut out = Vec::new();
    let mut present = false;
    let collation = index.collation();
    for (field, direction) in &index.key_pattern() {
        let v = value_at(doc, field).map_err(|at| {
            MongoError::location(
                16766,
                format!(
                    "Error: hashed indexes do not currently support array values. Found array at path: {at}"
                ),
            )
        })?;
        present |= v.is_some();
        let v = v.cloned().unwrap_or(Bson::Null);
        if is_hashed(direction) {
            out.push((
                Bson::Int64(hash64_collated(&v, collation.as_deref())),
                false,
            ));
        } else {
            out.push((v, crate::index::is_descending(direction)));
        }
    }
    if index.sparse() && !present {
        return Ok(None);
    }
    Ok(Some(out))
}

/// The bounds on a hashed field at `path` of an index with `collation` (`None`:
/// simple): the hashes of the filter's equality values on it, ascending; `None`
/// (unbounded) unless the filter bounds the path by points that index can serve.
///
/// Under the index's own collation the points are the collated predicates' (one
/// predicate alone, as `path_bounds_under` gives them: two strings equal under the
/// collation must not intersect to nothing by their bytes); under another, only points
/// holding no string serve, as their hashes are the same in every collation.
pub fn bounds(filter: &Filter, path: &str, collation: Option<&Collation>) -> Option<Vec<Interval>> {
    let same = eddy_query::collation::same(collation, filter.collation().map(|c| &**c));
    let b = if same && collation.is_some() {
        bounds::path_bounds_under(filter, path, false, true)?
    } else {
        bounds::path_bounds(filter, path, false)?
    };
    if !b.iter().all(Interval::is_point) {
        return None;
    }
    if !same && (b.is_empty() || b.iter().any(|iv| holds_string(&iv.start))) {
        return None;
    }
    let mut hashes: Vec<i64> = b
        .iter()
        .map(|iv| hash64_collated(&iv.start, collation))
        .collect();
    hashes.sort_unstable();
    hashes.dedup();
    Some(
        hashes
            .into_iter()
            .map(|h| Interval::point(Bson::Int64(h)))
            .collect(),
    )
}

/// Rebuilds the entries of every hashed index with a collation (a store from before
/// their hashes were of collation keys held hashes of the simple values); how many.
/// Run once per store, at open (see `Engine::open`).
pub fn rekey_collated(w: &mut (impl eddy_storage::KvWrite + ?Sized)) -> Result<usize, MongoError> {
    use crate::storage_err;
    let mut rebuilt = 0;
    for meta in crate::catalog::list(&*w, None)? {
        let stale: Vec<&IndexMeta> = meta
            .indexes
            .iter()
            .filter(|i| is_hashed_index(i) && i.collation().is_some())
            .collect();
        if stale.is_empty() {
            continue;
        }
        let docs: Vec<(Vec<u8>, Vec<u8>)> = w
            .scan_all(&meta.docs_table(), false)
            .map_err(storage_err)?
            .collect::<Result<_, _>>()
            .map_err(storage_err)?;
        for index in stale {
            w.delete_table(&crate::index::table(index))
                .map_err(storage_err)?;
            for (id_key, bytes) in &docs {
                let doc = crate::catalog::decode(bytes)?;
                crate::index::add_index_entries(w, index, &doc, id_key)?;
            }
            rebuilt += 1;
        }
    }
    Ok(rebuilt)
}

/// Whether a value holds a string anywhere (its hash then depends on the collation).
fn holds_string(v: &Bson) -> bool {
    match v {
        Bson::String(_) => true,
        Bson::Document(d) => d.values().any(holds_string),
        Bson::Array(a) => a.iter().any(holds_string),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::tests::index;
    use bson::doc;
    use eddy_query::hashed::hash64;
    use std::sync::Arc;

    fn ci() -> Arc<Collation> {
        Collation::parse(&doc! {"locale": "en", "strength": 2})
            .expect("spec")
            .expect("not simple")
    }

    #[test]
    fn keys_hash_the_hashed_field_only() {
        let i = index(doc! {"key": {"a": 1, "b": "hashed"}, "name": "a_1_b_hashed"});
        let k = key(&i, &doc! {"a": 5, "b": "x"})
            .expect("key")
            .expect("indexed");
        assert_eq!(k[0], (Bson::Int32(5), false));
        assert_eq!(
            k[1],
            (Bson::Int64(hash64(&Bson::String("x".into()))), false)
        );
        let k = key(&i, &doc! {"c": 1}).expect("key").expect("indexed");
        assert_eq!(k[1].0, Bson::Int64(hash64(&Bson::Null)));
    }

    #[test]
    fn arrays_are_refused_with_their_path() {
        let i = index(doc! {"key": {"a.b": "hashed"}, "name": "a.b_hashed"});
        let e = key(&i, &doc! {"a": [{"b": 1}]}).expect_err("array");
        assert_eq!(e.code, 16766);
        assert!(
            e.message.ends_with("Found array at path: a"),
            "{}",
            e.message
        );
        let e = key(&i, &doc! {"a": {"b": [1]}}).expect_err("array");
        assert!(
            e.message.ends_with("Found array at path: a.b"),
            "{}",
            e.message
        );
        assert!(key(&i, &doc! {"a": 1})
            .expect("scalar on the way")
            .is_some());
    }

    #[test]
    fn sparse_skips_documents_missing_every_field() {
        let i = index(doc! {"key": {"a": "hashed"}, "name": "a_hashed", "sparse": true});
        assert!(key(&i, &doc! {"b": 1}).expect("key").is_none());
        assert!(key(&i, &doc! {"a": null}).expect("key").is_some());
    }

    #[test]
    fn specs_are_checked() {
        let two = check_spec(&doc! {"a": "hashed", "b": "hashed"}, &doc! {}).expect_err("two");
        assert_eq!(two.code, 31303);
        let unique = check_spec(&doc! {"a": "hashed"}, &doc! {"unique": true}).expect_err("u");
        assert_eq!(unique.code, 16764);
        let plugin = check_spec(&doc! {"a": "hashed", "b": "2d"}, &doc! {}).expect_err("2d");
        assert_eq!(plugin.code, ErrorCode::CannotCreateIndex.code());
        assert!(check_spec(&doc! {"a": 1, "b": "hashed", "c": -1}, &doc! {}).is_ok());
    }

    #[test]
    fn equalities_bound_a_hashed_field() {
        let f = Filter::parse(&doc! {"a": {"$in": [1, 1.0, 2]}}).expect("filter");
        let b = bounds(&f, "a", None).expect("bounded");
        assert_eq!(b.len(), 2);
        let f = Filter::parse(&doc! {"a": {"$gt": 1}}).expect("filter");
        assert!(bounds(&f, "a", None).is_none());
    }

    #[test]
    fn a_store_with_simple_hashes_is_rekeyed_once_at_open() {
        use crate::{Engine, EngineOptions, Namespace};
        use eddy_storage::{KvRead, Store};
        let dir = tempfile::tempdir().expect("tempdir");
        let open = || Engine::open(EngineOptions::new(dir.path())).expect("open");
        let engine = open();
        let ns = Namespace::new("db", "h");
        engine
            .create_indexes(
                ns.clone(),
                vec![doc! {"key": {"a": "hashed"}, "name": "a_hashed", "collation": {"locale": "en", "strength": 2}}],
            )
            .expect("index");
        engine
            .insert(ns.clone(), vec![doc! {"_id": 1, "a": "X"}], true)
            .expect("insert");
        let meta = engine
            .reader()
            .expect("reader")
            .collection(&ns)
            .expect("catalog")
            .expect("exists");
        let index = meta.index("a_hashed").expect("index").clone();
        engine.close();
        drop(engine);
        let path = dir.path().join("eddy.redb");
        let entries = |store: &Store| {
            let snap = store.snapshot().expect("snapshot");
            snap.scan_all(&crate::index::table(&index), false)
                .expect("scan")
                .map(|e| e.expect("entry").0)
                .collect::<Vec<_>>()
        };
        let store = Store::open(&path).expect("store");
        let collated = entries(&store);
        assert_eq!(collated.len(), 1);
        // As an older build left it: the simple value's hash, and no marker.
        let simple = crate::index::entry_key(
            &index,
            eddy_query::key::encode_key(&[(
                &Bson::Int64(hash64(&Bson::String("X".into()))),
                false,
            )]),
            &crate::read::id_key(&Bson::Int32(1)),
        );
        store
            .write_now(|w| -> Result<(), eddy_storage::StorageError> {
                w.delete_table(&crate::index::table(&index))?;
                w.put(
                    &crate::index::table(&index),
                    &simple,
                    &crate::read::id_key(&Bson::Int32(1)),
                )?;
                w.delete(crate::tables::META, b"collated_hashes")?;
                Ok(())
            })
            .expect("write")
            .expect("rewrite");
        assert_eq!(entries(&store), vec![simple]);
        drop(store);
        open().close();
        let store = Store::open(&path).expect("store");
        assert_eq!(entries(&store), collated);
    }

    #[test]
    fn a_collated_index_hashes_collation_keys() {
        let c = ci();
        let i = index(doc! {
            "key": {"a": "hashed"}, "name": "a_hashed", "collation": c.spec().clone()
        });
        let key_of = |v: &str| {
            key(&i, &doc! {"a": v}).expect("key").expect("indexed")[0]
                .0
                .clone()
        };
        assert_eq!(key_of("ABC"), key_of("abc"));
        assert_ne!(
            key_of("abc"),
            Bson::Int64(hash64(&Bson::String("abc".into())))
        );
    }

    #[test]
    fn collated_equalities_bound_an_index_of_their_collation() {
        let c = ci();
        let parse = |q: Document, coll: Option<&Arc<Collation>>| {
            Filter::parse_collated(&q, &[], coll).expect("filter")
        };
        // Same collation: the collation key's hash; "A" and "a" do not intersect to nothing.
        let f = parse(doc! {"a": "ABC"}, Some(&c));
        let want = Interval::point(Bson::Int64(hash64_collated(
            &Bson::String("abc".into()),
            Some(&c),
        )));
        assert_eq!(bounds(&f, "a", Some(&c)), Some(vec![want.clone()]));
        let f = parse(doc! {"$and": [{"a": "ABC"}, {"a": "abc"}]}, Some(&c));
        assert_eq!(bounds(&f, "a", Some(&c)), Some(vec![want]));
        // Another collation: strings do not serve, numbers do.
        assert!(bounds(&parse(doc! {"a": "abc"}, None), "a", Some(&c)).is_none());
        assert!(bounds(&parse(doc! {"a": "abc"}, Some(&c)), "a", None).is_none());
        assert!(bounds(&parse(doc! {"a": {"b": "x"}}, Some(&c)), "a", None).is_none());
        assert_eq!(
            bounds(&parse(doc! {"a": 5}, Some(&c)), "a", None),
            Some(vec![Interval::point(Bson::Int64(hash64(&Bson::Int32(5))))])
        );
        assert!(bounds(&parse(doc! {"a": {"$in": []}}, Some(&c)), "a", None).is_none());
    }
}
