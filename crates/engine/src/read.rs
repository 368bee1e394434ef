//! Reads: snapshots, query planning and scans.
//!
//! Planning is deliberately simple and predictable: an equality (or `$in`) on `_id`
//! reads those documents directly; otherwise an equality on the leading field of a
//! secondary index scans that index's matching entries; otherwise the whole
//! collection is scanned. The full filter is applied to every candidate, so a plan
//! only ever narrows what is read, never what matches. The same planner serves reads
//! (on a snapshot) and writes (inside the write transaction) through `KvRead`.

use std::ops::Bound;

use bson::{Bson, Document};
use eddy_codes::MongoError;
use eddy_query::filter::{Filter, MatchDetails};
use eddy_query::key;
use eddy_storage::{prefix_bounds, KvRead, Snapshot};

use crate::catalog::{self, CollectionMeta, IndexMeta, Namespace};
use crate::{index, storage_err};

/// How a query reads a collection.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Point reads of these `_id` values.
    IdLookup(Vec<Bson>),
    /// Entries of a secondary index whose leading field equals a value.
    IndexEquality { index: String, values: Vec<Bson> },
    /// Every document.
    CollectionScan,
}

impl Plan {
    /// The stage name `explain` reports.
    pub fn stage(&self) -> &'static str {
        match self {
            Plan::IdLookup(_) => "IDHACK",
            Plan::IndexEquality { .. } => "IXSCAN",
            Plan::CollectionScan => "COLLSCAN",
        }
    }

    pub fn index_name(&self) -> Option<&str> {
        match self {
            Plan::IdLookup(_) => Some("_id_"),
            Plan::IndexEquality { index, .. } => Some(index),
            Plan::CollectionScan => None,
        }
    }
}

/// A value an index lookup can serve exactly: scalars whose equality semantics are
/// plain (no null-matches-missing, no array-matches-element, no regex).
fn indexable_equality(v: &Bson) -> bool {
    !matches!(
        v,
        Bson::Null
            | Bson::Undefined
            | Bson::Array(_)
            | Bson::Document(_)
            | Bson::RegularExpression(_)
            | Bson::MinKey
            | Bson::MaxKey
    )
}

/// The values a top-level field of the filter must equal, when the filter says so
/// plainly (`{f: v}`, `{f: {$eq: v}}`, `{f: {$in: [...]}}`).
fn equality_values(filter: &Document, field: &str) -> Option<Vec<Bson>> {
    let cond = filter.get(field)?;
    match cond {
        Bson::Document(d) if d.keys().next().is_some_and(|k| k.starts_with('$')) => {
            if d.len() != 1 {
                return None;
            }
            if let Some(v) = d.get("$eq") {
                return indexable_equality(v).then(|| vec![v.clone()]);
            }
            if let Some(Bson::Array(values)) = d.get("$in") {
                return values
                    .iter()
                    .all(indexable_equality)
                    .then(|| values.clone());
            }
            None
        }
        v => indexable_equality(v).then(|| vec![v.clone()]),
    }
}

/// Chooses how to read `meta` for `filter`.
pub fn plan(meta: &CollectionMeta, filter: &Document) -> Plan {
    if let Some(ids) = equality_values(filter, "_id") {
        return Plan::IdLookup(ids);
    }
    for index in &meta.indexes {
        if index.partial_filter().is_some() || index.sparse() {
            continue;
        }
        let Some((first, _)) = index
            .spec
            .get_document("key")
            .ok()
            .and_then(|k| k.iter().next())
        else {
            continue;
        };
        if let Some(values) = equality_values(filter, first) {
            return Plan::IndexEquality {
                index: index.name().to_owned(),
                values,
            };
        }
    }
    Plan::CollectionScan
}

/// A document that matched, with its storage key and match details.
#[derive(Debug, Clone)]
pub struct Matched {
    pub id_key: Vec<u8>,
    pub doc: Document,
    pub details: Option<MatchDetails>,
}

/// The encoded `_id` key of a value.
pub fn id_key(id: &Bson) -> Vec<u8> {
    let mut out = Vec::new();
    key::encode_value(id, &mut out);
    out
}

/// The documents of `meta` matching `filter`, in `_id` order for scans, at most
/// `limit` of them.
pub fn matching(
    r: &impl KvRead,
    meta: &CollectionMeta,
    filter_doc: &Document,
    filter: &Filter,
    limit: Option<usize>,
) -> Result<Vec<Matched>, MongoError> {
    let table = meta.docs_table();
    let mut out = Vec::new();
    let full = |out: &Vec<Matched>| limit.is_some_and(|l| out.len() >= l);
    let consider =
        |out: &mut Vec<Matched>, id_key: Vec<u8>, bytes: &[u8]| -> Result<(), MongoError> {
            let doc = catalog::decode(bytes)?;
            if let Some(details) = filter.matches_details(&doc) {
                out.push(Matched {
                    id_key,
                    doc,
                    details: Some(details),
                });
            }
            Ok(())
        };
    // Indexes order strings by bytes: a query comparing strings under a collation
    // reads every document.
    let plan = if filter.is_collated() {
        Plan::CollectionScan
    } else {
        plan(meta, filter_doc)
    };
    match plan {
        Plan::IdLookup(ids) => {
            let mut keys: Vec<Vec<u8>> = ids.iter().map(id_key).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                if full(&out) {
                    break;
                }
                if let Some(bytes) = r.get(&table, &k).map_err(storage_err)? {
                    consider(&mut out, k, &bytes)?;
                }
            }
        }
        Plan::IndexEquality { index, values } => {
            let index = meta
                .index(&index)
                .expect("the plan names an index of this collection");
            let mut id_keys = index_lookup(r, index, &values)?;
            id_keys.sort();
            id_keys.dedup();
            for k in id_keys {
                if full(&out) {
                    break;
                }
                if let Some(bytes) = r.get(&table, &k).map_err(storage_err)? {
                    consider(&mut out, k, &bytes)?;
                }
            }
        }
        Plan::CollectionScan => {
            for entry in r
                .scan(&table, Bound::Unbounded, Bound::Unbounded, false)
                .map_err(storage_err)?
            {
                if full(&out) {
                    break;
                }
                let (k, v) = entry.map_err(storage_err)?;
                consider(&mut out, k, &v)?;
            }
        }
    }
    Ok(out)
}

/// The `_id` keys of the entries of `index` whose leading field equals one of `values`.
fn index_lookup(
    r: &impl KvRead,
    index: &IndexMeta,
    values: &[Bson],
) -> Result<Vec<Vec<u8>>, MongoError> {
    let descending = index
        .spec
        .get_document("key")
        .ok()
        .and_then(|k| {
            k.iter().next().map(|(_, d)| {
                matches!(d, Bson::Int32(n) if *n < 0)
                    || matches!(d, Bson::Int64(n) if *n < 0)
                    || matches!(d, Bson::Double(n) if *n < 0.0)
            })
        })
        .unwrap_or(false);
    let table = index::table(index);
    let mut out = Vec::new();
    for v in values {
        let prefix = key::encode_key(&[(v, descending)]);
        let (start, end) = prefix_bounds(&prefix);
        for entry in r.scan(&table, start, end, false).map_err(storage_err)? {
            let (_, id) = entry.map_err(storage_err)?;
            out.push(id);
        }
    }
    Ok(out)
}

/// A consistent read view of the whole database.
pub struct Reader {
    snap: Snapshot,
}

impl Reader {
    pub(crate) fn new(snap: Snapshot) -> Reader {
        Reader { snap }
    }

    /// The snapshot itself, for reads kept in their own modules (`capped`).
    pub(crate) fn snap(&self) -> &Snapshot {
        &self.snap
    }

    /// A collection's catalog entry.
    pub fn collection(&self, ns: &Namespace) -> Result<Option<CollectionMeta>, MongoError> {
        catalog::get(&self.snap, ns)
    }

    /// A view's catalog entry (`None` for a collection or nothing).
    pub fn view(&self, ns: &Namespace) -> Result<Option<catalog::ViewMeta>, MongoError> {
        catalog::view(&self.snap, ns)
    }

    /// `ns` resolved to its source collection and pipeline, if it is a view.
    pub fn resolve_view(
        &self,
        ns: &Namespace,
    ) -> Result<Option<catalog::ResolvedView>, MongoError> {
        catalog::resolve_view(&self.snap, ns)
    }

    /// The views of `db`, in name order.
    pub fn views(&self, db: &str) -> Result<Vec<catalog::ViewMeta>, MongoError> {
        catalog::list_views(&self.snap, db)
    }

    /// The collections of `db` (of every database when `None`), in name order.
    pub fn collections(&self, db: Option<&str>) -> Result<Vec<CollectionMeta>, MongoError> {
        catalog::list(&self.snap, db)
    }

    /// The databases holding at least one collection, in name order.
    pub fn databases(&self) -> Result<Vec<String>, MongoError> {
        let mut dbs: Vec<String> = self
            .collections(None)?
            .into_iter()
            .map(|c| c.ns.db)
            .collect();
        dbs.dedup();
        Ok(dbs)
    }

    /// The number of documents in a collection.
    pub fn count(&self, meta: &CollectionMeta) -> Result<u64, MongoError> {
        self.snap.len(&meta.docs_table()).map_err(storage_err)
    }

    /// Approximate bytes of a collection's documents (sum of BSON sizes).
    pub fn data_size(&self, meta: &CollectionMeta) -> Result<u64, MongoError> {
        let mut size = 0u64;
        for entry in self
            .snap
            .scan(
                &meta.docs_table(),
                Bound::Unbounded,
                Bound::Unbounded,
                false,
            )
            .map_err(storage_err)?
        {
            let (_, v) = entry.map_err(storage_err)?;
            size += v.len() as u64;
        }
        Ok(size)
    }

    /// The document with this `_id`.
    pub fn get_by_id(
        &self,
        meta: &CollectionMeta,
        id: &Bson,
    ) -> Result<Option<Document>, MongoError> {
        match self
            .snap
            .get(&meta.docs_table(), &id_key(id))
            .map_err(storage_err)?
        {
            Some(bytes) => Ok(Some(catalog::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// The documents matching `filter_doc`, planned as [`plan`] says.
    pub fn find(
        &self,
        meta: &CollectionMeta,
        filter_doc: &Document,
        limit: Option<usize>,
    ) -> Result<Vec<Matched>, MongoError> {
        self.find_with_vars(meta, filter_doc, &[], limit)
    }

    /// [`Reader::find`] with a command's `let` variables in scope of the filter's
    /// `$expr`.
    pub fn find_with_vars(
        &self,
        meta: &CollectionMeta,
        filter_doc: &Document,
        vars: &[(String, Bson)],
        limit: Option<usize>,
    ) -> Result<Vec<Matched>, MongoError> {
        self.find_collated(meta, filter_doc, vars, None, limit)
    }

    /// [`Reader::find_with_vars`] with the filter's string comparisons under
    /// `collation` (`None`: simple).
    pub fn find_collated(
        &self,
        meta: &CollectionMeta,
        filter_doc: &Document,
        vars: &[(String, Bson)],
        collation: Option<&std::sync::Arc<eddy_query::collation::Collation>>,
        limit: Option<usize>,
    ) -> Result<Vec<Matched>, MongoError> {
        let filter = Filter::parse_collated(filter_doc, vars, collation)?;
        matching(&self.snap, meta, filter_doc, &filter, limit)
    }

    /// Every document of a collection, in `_id` order.
    pub fn scan(
        &self,
        meta: &CollectionMeta,
    ) -> Result<impl Iterator<Item = Result<Document, MongoError>> + '_, MongoError> {
        Ok(self
            .snap
            .scan(
                &meta.docs_table(),
                Bound::Unbounded,
                Bound::Unbounded,
                false,
            )
            .map_err(storage_err)?
            .map(|e| {
                e.map_err(storage_err)
                    .and_then(|(_, v)| catalog::decode(&v))
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn meta() -> CollectionMeta {
        CollectionMeta {
            ns: Namespace::new("d", "c"),
            id: 1,
            uuid: catalog::new_uuid(),
            options: Document::new(),
            indexes: vec![IndexMeta {
                id: 2,
                spec: doc! {"v": 2, "key": {"a": 1}, "name": "a_1"},
            }],
        }
    }

    #[test]
    fn plans_follow_the_filter() {
        let m = meta();
        assert_eq!(
            plan(&m, &doc! {"_id": 1}),
            Plan::IdLookup(vec![Bson::Int32(1)])
        );
        assert_eq!(
            plan(&m, &doc! {"_id": {"$in": [1, 2]}}),
            Plan::IdLookup(vec![Bson::Int32(1), Bson::Int32(2)])
        );
        assert_eq!(plan(&m, &doc! {"a": "x", "b": 1}).stage(), "IXSCAN");
        assert_eq!(plan(&m, &doc! {"a": null}).stage(), "COLLSCAN");
        assert_eq!(plan(&m, &doc! {"a": {"$gt": 1}}).stage(), "COLLSCAN");
        assert_eq!(plan(&m, &doc! {"_id": {"a": 1}}).stage(), "COLLSCAN");
        assert_eq!(plan(&m, &doc! {"b": 1}).stage(), "COLLSCAN");
    }
}
