//! Secondary indexes: key generation and maintenance.
//!
//! An index is a table whose keys are the order-preserving encodings of the indexed
//! values (see `eddy_query::key`). A unique index maps `key -> _id key`; a non-unique
//! index maps `key ++ _id key -> _id key`, so equal values still make distinct
//! entries. Index entries change in the same transaction as the document.
//!
//! Key generation follows mongod's: a dotted path traverses arrays; an array value
//! makes the index multikey with one entry per element (an empty array indexes as
//! `undefined`); a missing field indexes as `null` (sparse indexes skip documents
//! missing every indexed field); two array-valued fields in one compound key are
//! refused (171 CannotIndexParallelArrays). A `2dsphere` or `2d` key field holds cell
//! ids or geohashes instead of the value (see `crate::geo`), a `hashed` one the value's
//! hash (see `crate::hashed`).

use bson::{doc, Bson, Document};
use eddy_codes::{ErrorCode, MongoError};
use eddy_query::filter::Filter;
use eddy_query::key;
use eddy_query::text::TextSpec;
use eddy_storage::{KvRead, KvWrite};

use crate::catalog::{CollectionMeta, IndexMeta};
use crate::{storage_err, tables};

/// The index's table.
pub fn table(index: &IndexMeta) -> String {
    tables::index(index.id)
}

/// The values a document holds at `path`, with mongod's array expansion, and the
/// positions of the path components at which an array was met (empty: not multikey).
fn values_at(doc: &Document, path: &str) -> (Vec<Bson>, Vec<usize>) {
    let mut out = Vec::new();
    let mut arrays = Vec::new();
    let components: Vec<&str> = path.split('.').collect();
    collect(
        &Bson::Document(doc.clone()),
        &components,
        components.len(),
        &mut out,
        &mut arrays,
    );
    if out.is_empty() {
        out.push(Bson::Null);
    }
    arrays.sort_unstable();
    arrays.dedup();
    (out, arrays)
}

/// `total` is the number of components of the whole path, so the array met with
/// `path` left is at component `total - path.len() - 1`.
fn collect(
    value: &Bson,
    path: &[&str],
    total: usize,
    out: &mut Vec<Bson>,
    arrays: &mut Vec<usize>,
) {
    let Some((first, rest)) = path.split_first() else {
        match value {
            Bson::Array(items) => {
                arrays.push(total.saturating_sub(1));
                if items.is_empty() {
                    out.push(Bson::Undefined);
                }
                for item in items {
                    if !out.iter().any(|v| eddy_query::cmp::values_equal(v, item)) {
                        out.push(item.clone());
                    }
                }
            }
            other => out.push(other.clone()),
        }
        return;
    };
    match value {
        Bson::Document(d) => {
            if let Some(child) = d.get(*first) {
                collect(child, rest, total, out, arrays);
            }
        }
        Bson::Array(items) => {
            arrays.push(total.saturating_sub(path.len() + 1));
            if let Ok(i) = first.parse::<usize>() {
                if let Some(item) = items.get(i) {
                    collect(item, rest, total, out, arrays);
                    return;
                }
            }
            for item in items {
                if let Bson::Document(_) = item {
                    collect(item, path, total, out, arrays);
                }
            }
        }
        _ => {}
    }
}

/// The encoded keys a document contributes to an index (empty when a sparse or
/// partial index skips it).
pub fn keys_for(index: &IndexMeta, doc: &Document) -> Result<Vec<Vec<u8>>, MongoError> {
    Ok(keys_and_paths(index, doc)?.0)
}

/// Per key field, the path components at which a document held an array.
pub type MultikeyPaths = Vec<Vec<usize>>;

/// [`keys_for`], with the multikey path components the document shows for each key
/// field (all empty when the index skips the document).
pub fn keys_and_paths(
    index: &IndexMeta,
    doc: &Document,
) -> Result<(Vec<Vec<u8>>, MultikeyPaths), MongoError> {
    let mut encoded = Vec::new();
    let collation = index.collation();
    let paths = for_each_key(index, doc, |parts| {
        encoded.push(key::encode_key_collated(parts, collation.as_deref()))
    })?;
    encoded.sort();
    encoded.dedup();
    Ok((encoded, paths))
}

/// The values (one per key field) of the entry `entry` that `doc`, stored under
/// `id_key`, has in `index`: what `returnKey` shows. `None` when the document has no
/// such entry.
pub fn entry_values(
    index: &IndexMeta,
    doc: &Document,
    id_key: &[u8],
    entry: &[u8],
) -> Result<Option<Vec<Bson>>, MongoError> {
    let mut found = None;
    let collation = index.collation();
    for_each_key(index, doc, |parts| {
        let k = key::encode_key_collated(parts, collation.as_deref());
        if found.is_none() && entry_key(index, k, id_key) == entry {
            found = Some(parts.iter().map(|(v, _)| (*v).clone()).collect());
        }
    })?;
    Ok(found)
}

/// Calls `f` with each key tuple (a value and its direction per key field) `doc`
/// contributes to `index` (none when a sparse or partial index skips it), and returns
/// the multikey path components per key field.
fn for_each_key(
    index: &IndexMeta,
    doc: &Document,
    mut f: impl FnMut(&[(&Bson, bool)]),
) -> Result<MultikeyPaths, MongoError> {
    let pattern = index.key_pattern();
    let no_paths = || vec![Vec::new(); pattern.len()];
    if let Some(filter) = index.partial_filter() {
        let filter = Filter::parse(filter)?;
        if !filter.matches(doc) {
            return Ok(no_paths());
        }
    }
    if let Some(spec) = index.text_spec() {
        for_each_text_key(&spec, doc, &mut f)?;
        return Ok(no_paths());
    }
    if let Some(at) = crate::wildcard::wildcard_position(index) {
        return for_each_wildcard_key(index, &pattern, at, doc, &mut f);
    }
    if crate::hashed::is_hashed_index(index) {
        // One key per document, never multikey (arrays are refused).
        if let Some(parts) = crate::hashed::key(index, doc)? {
            let parts: Vec<(&Bson, bool)> = parts.iter().map(|(v, d)| (v, *d)).collect();
            f(&parts);
        }
        return Ok(no_paths());
    }
    let mut per_field: Vec<(Vec<Bson>, bool)> = Vec::with_capacity(pattern.len());
    let mut paths = Vec::with_capacity(pattern.len());
    let mut any_present = false;
    let mut array_fields = Vec::new();
    // Geo fields: whether the index has any, and whether the document has geometry in one.
    let (mut geo_fields, mut geo_present) = (false, false);
    for (field, direction) in &pattern {
        if let Some(kind) = crate::geo::field_kind(index, direction) {
            geo_fields = true;
            let keys = crate::geo::field_keys(kind, doc, field)?;
            geo_present |= keys.is_some();
            let keys = keys.unwrap_or_else(|| vec![Bson::Null]);
            // A geometry under several cells reads as multikey (the planner deduplicates).
            let components = field.split('.').count() - 1;
            paths.push(if keys.len() > 1 {
                vec![components]
            } else {
                Vec::new()
            });
            per_field.push((keys, false));
            continue;
        }
        let (values, arrays) = values_at(doc, field);
        let multikey = !arrays.is_empty();
        if multikey && values.len() > 1 {
            array_fields.push(field.clone());
        }
        if eddy_query::path::get_path(doc, field).is_some() || multikey {
            any_present = true;
        }
        per_field.push((values, is_descending(direction)));
        paths.push(arrays);
    }
    if (index.sparse() && !any_present) || (geo_fields && !geo_present) {
        return Ok(no_paths());
    }
    if array_fields.len() > 1 {
        return Err(MongoError::new(
            ErrorCode::CannotIndexParallelArrays,
            format!(
                "cannot index parallel arrays [{}] [{}]",
                array_fields[1], array_fields[0]
            ),
        ));
    }
    // Cartesian product (at most one field has several values).
    let mut keys: Vec<Vec<(&Bson, bool)>> = vec![Vec::new()];
    for (values, desc) in &per_field {
        let mut next = Vec::with_capacity(keys.len() * values.len());
        for prefix in &keys {
            for v in values {
                let mut k = prefix.clone();
                k.push((v, *desc));
                next.push(k);
            }
        }
        keys = next;
    }
    for parts in &keys {
        f(parts);
    }
    Ok(paths)
}

/// A wildcard index's keys (see `crate::wildcard`): per indexed leaf, the regular
/// fields' values around `(path, value)` in key pattern order (the value in the
/// wildcard term's direction). A compound wildcard index is sparse, as mongod's: a
/// document none of whose leaves it indexes is held under `(MinKey, MinKey)` if it has
/// one of the regular fields, else not at all; and it refuses an array along a regular
/// field's path (mongod: its regular fields are single-key).
fn for_each_wildcard_key(
    index: &IndexMeta,
    pattern: &Document,
    at: usize,
    doc: &Document,
    f: &mut impl FnMut(&[(&Bson, bool)]),
) -> Result<MultikeyPaths, MongoError> {
    let mut regular: Vec<(Bson, bool)> = Vec::with_capacity(pattern.len() - 1);
    let mut any_regular = false;
    let mut desc = false;
    for (i, (field, direction)) in pattern.iter().enumerate() {
        if i == at {
            desc = is_descending(direction);
            continue;
        }
        any_regular |= eddy_query::path::get_path(doc, field).is_some();
        let (mut values, arrays) = values_at(doc, field);
        if !arrays.is_empty() {
            return Err(MongoError::location(
                7246301,
                format!(
                    "Compound wildcard indexes do not allow multikey regular fields, but '{field}' holds an array"
                ),
            ));
        }
        regular.push((values.pop().unwrap_or(Bson::Null), is_descending(direction)));
    }
    let mut leaves: Vec<(Bson, Bson)> = Vec::new();
    let multikey = crate::wildcard::for_each_key(index, doc, |path, v| {
        leaves.push((Bson::String(path.to_owned()), v.clone()));
    });
    if leaves.is_empty() && any_regular {
        leaves.push((Bson::MinKey, Bson::MinKey));
    }
    for (path, v) in &leaves {
        let mut parts: Vec<(&Bson, bool)> = Vec::with_capacity(pattern.len() + 1);
        parts.extend(regular[..at].iter().map(|(v, d)| (v, *d)));
        parts.push((path, false));
        parts.push((v, desc));
        parts.extend(regular[at..].iter().map(|(v, d)| (v, *d)));
        f(&parts);
    }
    let mut paths = vec![Vec::new(); pattern.len()];
    if multikey {
        paths[at] = vec![0];
    }
    Ok(paths)
}

/// A text index's keys (mongod's `FTSIndexFormat::getKeys`): one per word of the
/// document, `(prefix values, word, score, suffix values)`; prefix and suffix fields
/// must not hold arrays (16675).
fn for_each_text_key(
    spec: &TextSpec,
    doc: &Document,
    f: &mut impl FnMut(&[(&Bson, bool)]),
) -> Result<(), MongoError> {
    let extra = |fields: &[(String, Bson)]| -> Result<Vec<(Bson, bool)>, MongoError> {
        fields
            .iter()
            .map(|(field, direction)| {
                let v = eddy_query::path::get_path(doc, field)
                    .cloned()
                    .unwrap_or(Bson::Null);
                if matches!(v, Bson::Array(_)) {
                    return Err(MongoError::location(
                        16675,
                        "cannot have a multi-key as a prefix to a text index",
                    ));
                }
                Ok((v, is_descending(direction)))
            })
            .collect()
    };
    let prefix = extra(&spec.prefix)?;
    let suffix = extra(&spec.suffix)?;
    for (term, score) in spec.term_scores(doc)? {
        let term = Bson::String(term);
        let score = Bson::Double(score);
        let mut parts: Vec<(&Bson, bool)> = prefix.iter().map(|(v, d)| (v, *d)).collect();
        parts.push((&term, false));
        parts.push((&score, false));
        parts.extend(suffix.iter().map(|(v, d)| (v, *d)));
        f(&parts);
    }
    Ok(())
}

/// The key prefix of a text index's entries for `word` under the prefix fields'
/// values `prefix` (each with its direction).
pub fn text_term_prefix(prefix: &[(Bson, bool)], word: &str) -> Vec<u8> {
    let term = Bson::String(word.to_owned());
    let mut parts: Vec<(&Bson, bool)> = prefix.iter().map(|(v, d)| (v, *d)).collect();
    parts.push((&term, false));
    key::encode_key(&parts)
}

/// Whether a key pattern direction is descending (`-1`).
pub fn is_descending(direction: &Bson) -> bool {
    match direction {
        Bson::Int32(n) => *n < 0,
        Bson::Int64(n) => *n < 0,
        Bson::Double(n) => *n < 0.0,
        _ => false,
    }
}

/// The `keyValue` of a duplicate-key error: the indexed fields and their values.
fn key_value(index: &IndexMeta, doc: &Document) -> Document {
    let mut out = Document::new();
    for (field, _) in &index.key_pattern() {
        let v = eddy_query::path::get_path(doc, field)
            .cloned()
            .unwrap_or(Bson::Null);
        out.insert(field.clone(), v);
    }
    out
}

/// mongod's duplicate key error for `doc` on `index` of `meta`.
pub fn duplicate_key_error(
    meta: &CollectionMeta,
    index_name: &str,
    pattern: &Document,
    value: &Document,
) -> MongoError {
    duplicate_key_error_collated(meta, index_name, pattern, value, None)
}

/// [`duplicate_key_error`] on an index with `collation` (`None`: simple), as mongod's
/// `buildDupKeyErrorStatus` words it: ` collation: {spec}` after the index name, each
/// string of the key shown as `0x` and the hex of its collation key (the index holds
/// those, not the strings), and the spec as the reply's `collation`. `keyValue` keeps
/// the values written (mongod's holds its collation keys).
pub fn duplicate_key_error_collated(
    meta: &CollectionMeta,
    index_name: &str,
    pattern: &Document,
    value: &Document,
    collation: Option<&eddy_query::collation::Collation>,
) -> MongoError {
    let shown: Vec<String> = value
        .iter()
        .map(|(k, v)| match (v, collation) {
            (Bson::String(s), Some(c)) => {
                let mut key = Vec::new();
                c.write_sort_key(s, &mut key);
                let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
                format!("{k}: \"0x{hex}\"")
            }
            _ => format!("{k}: {}", crate::display_value(v)),
        })
        .collect();
    let collation_part = match collation {
        Some(c) => format!(
            " collation: {}",
            crate::display_value(&Bson::Document(c.spec().clone()))
        ),
        None => String::new(),
    };
    let mut extra = doc! {"keyPattern": pattern.clone(), "keyValue": value.clone()};
    if let Some(c) = collation {
        extra.insert("collation", c.spec().clone());
    }
    MongoError::new(
        ErrorCode::DuplicateKey,
        format!(
            "E11000 duplicate key error collection: {} index: {}{} dup key: {{ {} }}",
            meta.ns,
            index_name,
            collation_part,
            shown.join(", ")
        ),
    )
    .with_extra(extra)
}

/// Checks that writing `doc` (whose `_id` key is `id_key`) over `old` (an update's
/// document before, `None` for an insert) breaks no unique index, and adds no key
/// another document holds to a `prepareUnique` one (mongod checks only the keys a
/// write adds there: duplicates from before the flag may stay).
pub fn check_unique(
    r: &(impl KvRead + ?Sized),
    meta: &CollectionMeta,
    doc: &Document,
    old: Option<&Document>,
    id_key: &[u8],
) -> Result<(), MongoError> {
    let duplicate = |index: &IndexMeta| {
        duplicate_key_error_collated(
            meta,
            index.name(),
            &index.key_pattern(),
            &key_value(index, doc),
            index.collation().as_deref(),
        )
    };
    for index in &meta.indexes {
        if index.unique() {
            for k in keys_for(index, doc)? {
                if let Some(owner) = r.get(&table(index), &k).map_err(storage_err)? {
                    if owner != id_key {
                        return Err(duplicate(index));
                    }
                }
            }
        } else if index.prepare_unique() {
            let had = match old {
                Some(old) => keys_for(index, old)?,
                None => Vec::new(),
            };
            for k in keys_for(index, doc)?
                .into_iter()
                .filter(|k| !had.contains(k))
            {
                let (start, end) = eddy_storage::prefix_bounds(&k);
                for entry in r
                    .scan(&table(index), start, end, false)
                    .map_err(storage_err)?
                {
                    let (_, owner) = entry.map_err(storage_err)?;
                    if owner != id_key {
                        return Err(duplicate(index));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The documents (by `_id` key) that share a key of `index`, in groups: what stops
/// `collMod` from making it unique. The index must have the non-unique layout (key,
/// then `_id` key).
pub fn duplicates(
    r: &(impl KvRead + ?Sized),
    index: &IndexMeta,
) -> Result<Vec<Vec<Vec<u8>>>, MongoError> {
    let mut groups = Vec::new();
    let (mut run, mut run_key): (Vec<Vec<u8>>, Option<Vec<u8>>) = (Vec::new(), None);
    for entry in r.scan_all(&table(index), false).map_err(storage_err)? {
        let (entry_key, owner) = entry.map_err(storage_err)?;
        let key = &entry_key[..entry_key.len() - owner.len()];
        if run_key.as_deref() != Some(key) {
            if run.len() > 1 {
                groups.push(std::mem::take(&mut run));
            }
            run.clear();
            run_key = Some(key.to_vec());
        }
        run.push(owner);
    }
    if run.len() > 1 {
        groups.push(run);
    }
    Ok(groups)
}

/// Rewrites `index`'s entries in the unique layout (key alone, `_id` key as value), the
/// index having just become unique.
pub fn rewrite_unique(
    w: &mut (impl KvWrite + ?Sized),
    index: &IndexMeta,
) -> Result<(), MongoError> {
    let t = table(index);
    let entries: Vec<(Vec<u8>, Vec<u8>)> = w
        .scan_all(&t, false)
        .map_err(storage_err)?
        .collect::<Result<_, _>>()
        .map_err(storage_err)?;
    for (entry_key, owner) in entries {
        w.delete(&t, &entry_key).map_err(storage_err)?;
        let key = &entry_key[..entry_key.len() - owner.len()];
        w.put(&t, key, &owner).map_err(storage_err)?;
    }
    Ok(())
}

/// Multikey path components a write found beyond what an index recorded:
/// `(index id, per-field components)`, for the caller to merge into the catalog.
pub type MultikeyNews = Vec<(u64, MultikeyPaths)>;

/// Adds a document's entries to every index; what they newly showed to be multikey.
pub fn add_entries(
    w: &mut (impl KvWrite + ?Sized),
    meta: &CollectionMeta,
    doc: &Document,
    id_key: &[u8],
) -> Result<MultikeyNews, MongoError> {
    let mut news = Vec::new();
    for index in &meta.indexes {
        let paths = add_index_entries(w, index, doc, id_key)?;
        if index.lacks_multikey_paths(&paths) {
            news.push((index.id, paths));
        }
    }
    Ok(news)
}

/// Adds a document's entries to one index; the multikey components it showed.
pub fn add_index_entries(
    w: &mut (impl KvWrite + ?Sized),
    index: &IndexMeta,
    doc: &Document,
    id_key: &[u8],
) -> Result<MultikeyPaths, MongoError> {
    let t = table(index);
    let (keys, paths) = keys_and_paths(index, doc)?;
    for k in keys {
        let entry_key = entry_key(index, k, id_key);
        w.put(&t, &entry_key, id_key).map_err(storage_err)?;
    }
    Ok(paths)
}

/// Removes a document's entries from every index.
pub fn remove_entries(
    w: &mut (impl KvWrite + ?Sized),
    meta: &CollectionMeta,
    doc: &Document,
    id_key: &[u8],
) -> Result<(), MongoError> {
    for index in &meta.indexes {
        let t = table(index);
        for k in keys_for(index, doc)? {
            let entry_key = entry_key(index, k, id_key);
            w.delete(&t, &entry_key).map_err(storage_err)?;
        }
    }
    Ok(())
}

pub(crate) fn entry_key(index: &IndexMeta, mut k: Vec<u8>, id_key: &[u8]) -> Vec<u8> {
    if !index.unique() {
        k.extend_from_slice(id_key);
    }
    k
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An index of `spec` for unit tests (no document held an array yet).
    pub(crate) fn index(spec: Document) -> IndexMeta {
        IndexMeta {
            id: 1,
            spec,
            multikey_paths: Some(Vec::new()),
        }
    }

    #[test]
    fn arrays_make_one_key_per_element() {
        let i = index(doc! {"key": {"tags": 1}, "name": "tags_1"});
        let keys = keys_for(&i, &doc! {"tags": ["a", "b", "a"]}).expect("keys");
        assert_eq!(keys.len(), 2);
        let keys = keys_for(&i, &doc! {"other": 1}).expect("keys");
        assert_eq!(keys, vec![key::encode_key(&[(&Bson::Null, false)])]);
    }

    #[test]
    fn dotted_paths_traverse_arrays() {
        let (values, arrays) = values_at(&doc! {"a": [{"b": 1}, {"b": 2}, {"c": 3}]}, "a.b");
        assert_eq!(arrays, vec![0]);
        assert_eq!(values, vec![Bson::Int32(1), Bson::Int32(2)]);
        let (_, arrays) = values_at(&doc! {"a": [{"b": [1]}]}, "a.b");
        assert_eq!(arrays, vec![0, 1]);
        let (_, arrays) = values_at(&doc! {"a": {"b": []}}, "a.b");
        assert_eq!(arrays, vec![1]);
        let (_, arrays) = values_at(&doc! {"a": {"b": 1}}, "a.b");
        assert!(arrays.is_empty());
    }

    #[test]
    fn parallel_arrays_are_refused() {
        let i = index(doc! {"key": {"a": 1, "b": 1}, "name": "a_1_b_1"});
        let err = keys_for(&i, &doc! {"a": [1, 2], "b": [3, 4]}).expect_err("parallel");
        assert_eq!(err.code, ErrorCode::CannotIndexParallelArrays.code());
        assert_eq!(
            keys_for(&i, &doc! {"a": [1, 2], "b": 3}).expect("ok").len(),
            2
        );
    }

    #[test]
    fn sparse_and_partial_indexes_skip_documents() {
        let sparse = index(doc! {"key": {"a": 1}, "name": "a_1", "sparse": true});
        assert!(keys_for(&sparse, &doc! {"b": 1}).expect("keys").is_empty());
        let partial = index(
            doc! {"key": {"a": 1}, "name": "a_1", "partialFilterExpression": {"a": {"$gt": 5}}},
        );
        assert!(keys_for(&partial, &doc! {"a": 1}).expect("keys").is_empty());
        assert_eq!(keys_for(&partial, &doc! {"a": 6}).expect("keys").len(), 1);
    }
}
