//! Reads: snapshots, and running a query's plan ([`crate::plan`]).
//!
//! The full filter is applied to every document a plan reads, so a plan only ever
//! narrows what is read, never what matches. The same code serves reads (on a
//! snapshot) and writes (inside the write transaction) through `KvRead`.
//!
//! Order of results: a plan that yields the sort's order streams documents, and a
//! `limit` stops the scan early; one that does not is sorted in memory. Either way,
//! documents with equal sort keys come out in `_id` order, so the same query returns
//! the same sequence whichever index (or none) serves it. Without a sort, documents
//! come in the plan's order (index order, or for a collection scan `_id` order, or
//! insertion order for a capped collection).

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashSet};

use bson::{Bson, Document};
use eddy_codes::{Deadline, MongoError};
use eddy_query::filter::{Filter, MatchDetails};
use eddy_query::key;
use eddy_query::meta::{self, TEXT_SCORE};
use eddy_query::sort::SortSpec;
use eddy_query::text::TextSpec;
use eddy_storage::{KvRead, Overlay, Snapshot};

use crate::capped;
use crate::catalog::{self, CollectionMeta, Namespace};
use crate::plan::{self, Access, Direction, Plan, Query, TextScan};
use crate::storage_err;

/// A document that matched, with its storage key and match details.
#[derive(Debug, Clone)]
pub struct Matched {
    pub id_key: Vec<u8>,
    pub doc: Document,
    pub details: Option<MatchDetails>,
    /// The secondary index entry the document was found through, kept when the query
    /// asks for it (`returnKey`).
    pub entry: Option<Vec<u8>>,
    /// The text score, for a document a `$text` query found.
    pub score: Option<f64>,
    /// The distance and location a `$near` query (or `$geoNear`) ordered it by.
    pub near: Option<(f64, Bson)>,
}

impl Matched {
    /// Whether the read left metadata for `{$meta: ...}` (a text score, a distance).
    pub fn has_metadata(&self) -> bool {
        self.score.is_some() || self.near.is_some()
    }

    /// Writes the read's metadata into `doc` as metadata fields ([`eddy_query::meta`]),
    /// for the projection or the stages to read; the reply strips them.
    pub fn add_metadata(&self, doc: &mut Document) {
        if let Some(score) = self.score {
            doc.insert(meta::TEXT_SCORE, score);
        }
        if let Some((distance, point)) = &self.near {
            doc.insert(meta::GEO_NEAR_DISTANCE, *distance);
            doc.insert(meta::GEO_NEAR_POINT, point.clone());
        }
    }
}

/// The encoded `_id` key of a value.
pub fn id_key(id: &Bson) -> Vec<u8> {
    let mut out = Vec::new();
    key::encode_value(id, &mut out);
    out
}

/// The collation under which an IDHACK of `id` reads the collated `_id` index: the
/// collection's, when the query runs under it and `id` holds a string (other values
/// have the same key in the documents table).
fn collated_id(
    meta: &CollectionMeta,
    filter: &Filter,
    id: &Bson,
) -> Option<std::sync::Arc<eddy_query::collation::Collation>> {
    let c = crate::id_index::collation(meta)?;
    let same = eddy_query::collation::same(filter.collation().map(|f| &**f), Some(&c));
    (same && plan::holds_string(id)).then_some(c)
}

/// What running a plan read (explain's `executionStats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecStats {
    /// Index entries read (the `_id` index: documents-table keys of a range scan).
    pub keys_examined: u64,
    /// Documents read and tested against the filter.
    pub docs_examined: u64,
}

/// The outcome of [`execute`]: the plan and what it found.
#[derive(Debug, Clone)]
pub struct Executed {
    pub plan: Plan,
    /// In the query's order, at most `limit` of them.
    pub docs: Vec<Matched>,
    pub stats: ExecStats,
}

/// The documents of `meta` matching `filter`, in plan order, at most `limit` of them
/// (the write paths' reader).
pub fn matching(
    r: &(impl KvRead + ?Sized),
    meta: &CollectionMeta,
    filter_doc: &Document,
    filter: &Filter,
    limit: Option<usize>,
) -> Result<Vec<Matched>, MongoError> {
    Ok(execute(r, meta, &Query::new(filter_doc, filter), limit)?.docs)
}

/// Plans `q` and runs the plan: the first `limit` matching documents in the query's
/// order (see the module doc).
pub fn execute(
    r: &(impl KvRead + ?Sized),
    meta: &CollectionMeta,
    q: &Query<'_>,
    limit: Option<usize>,
) -> Result<Executed, MongoError> {
    let plan = plan::plan(meta, q)?;
    let mut sink = Sink {
        filter: q.filter,
        sort: q.sort.filter(|s| !s.is_empty()),
        streamed: plan.sorted,
        limit: limit.unwrap_or(usize::MAX),
        out: Vec::new(),
        run: Vec::new(),
        stats: ExecStats::default(),
        deadline: q.deadline,
        keep_entries: q.return_key,
    };
    let docs = meta.docs_table();
    match &plan.access {
        Access::CollScan(direction) if meta.cap().is_some() => {
            // A capped collection's natural order is insertion order: its record ids.
            let backward = *direction == Direction::Backward;
            for entry in r
                .scan_all(&capped::natural_table(meta), backward)
                .map_err(storage_err)?
            {
                let (record, k) = entry.map_err(storage_err)?;
                if !capped::is_record_key(&record) {
                    continue;
                }
                if let Some(v) = r.get(&docs, &k).map_err(storage_err)? {
                    if sink.push(k, &v, None)? {
                        break;
                    }
                }
            }
        }
        Access::CollScan(direction) => {
            let backward = *direction == Direction::Backward;
            for entry in r.scan_all(&docs, backward).map_err(storage_err)? {
                let (k, v) = entry.map_err(storage_err)?;
                if sink.push(k, &v, None)? {
                    break;
                }
            }
        }
        Access::IdHack(id) => match collated_id(meta, q.filter, id) {
            // Under the collection's collation, through its collated `_id` index.
            Some(c) => {
                if let Some(k) = crate::id_index::lookup(r, meta, &c, id)? {
                    if let Some(v) = r.get(&docs, &k).map_err(storage_err)? {
                        sink.stats.keys_examined += 1;
                        sink.push(k, &v, None)?;
                    }
                }
            }
            None => {
                let k = id_key(id);
                if let Some(v) = r.get(&docs, &k).map_err(storage_err)? {
                    sink.stats.keys_examined += 1;
                    sink.push(k, &v, None)?;
                }
            }
        },
        // Read below, once the other arms have let go of the sink.
        Access::Text(_) => {}
        Access::IndexScan(scan) => {
            let backward = scan.direction == Direction::Backward;
            let dedup = scan.is_multikey() || scan.dedup || scan.ranges.len() > 1;
            let mut seen: HashSet<Vec<u8>> = HashSet::new();
            let mut ranges: Vec<_> = scan.ranges.iter().collect();
            if backward {
                ranges.reverse();
            }
            'ranges: for (start, end) in ranges {
                let table = scan.table.as_deref().unwrap_or(&docs);
                for entry in r
                    .scan(table, start.clone(), end.clone(), backward)
                    .map_err(storage_err)?
                {
                    let (k, v) = entry.map_err(storage_err)?;
                    sink.stats.keys_examined += 1;
                    let stop = match &scan.table {
                        // The `_id` index is the documents table: the entry is the document.
                        None => sink.push(k, &v, None)?,
                        Some(_) => {
                            if dedup && !seen.insert(v.clone()) {
                                continue;
                            }
                            match r.get(&docs, &v).map_err(storage_err)? {
                                Some(bytes) => sink.push(v, &bytes, Some(k))?,
                                None => false,
                            }
                        }
                    };
                    if stop {
                        break 'ranges;
                    }
                }
            }
        }
    }
    if let Access::Text(scan) = &plan.access {
        read_text(r, &docs, scan, &mut sink)?;
    }
    let stats = sink.stats;
    Ok(Executed {
        plan,
        docs: sink.finish(),
        stats,
    })
}

/// Runs a text plan: every entry of each word looked up gives a document (fetched once,
/// in `_id` order), which must match the `$text` clause's phrases and negations
/// (mongod's `TEXT_MATCH`) and the rest of the filter; its score is the sum of its
/// scores for the words looked up, computed from the document as the index computed
/// them.
fn read_text(
    r: &(impl KvRead + ?Sized),
    docs: &str,
    scan: &TextScan,
    sink: &mut Sink<'_>,
) -> Result<(), MongoError> {
    let spec = TextSpec::from_index_spec(&scan.spec)?;
    let mut found: BTreeSet<Vec<u8>> = BTreeSet::new();
    for prefix in scan.term_prefixes() {
        let (start, end) = eddy_storage::prefix_bounds(&prefix);
        for entry in r
            .scan(&scan.table, start, end, false)
            .map_err(storage_err)?
        {
            let (_, id_key) = entry.map_err(storage_err)?;
            sink.stats.keys_examined += 1;
            found.insert(id_key);
        }
    }
    for id_key in found {
        if sink.stats.docs_examined.is_multiple_of(DEADLINE_EVERY) {
            Deadline::check_opt(sink.deadline)?;
        }
        let Some(bytes) = r.get(docs, &id_key).map_err(storage_err)? else {
            continue;
        };
        sink.stats.docs_examined += 1;
        let doc = catalog::decode(&bytes)?;
        if !scan.search.matches(&spec, &doc)? {
            continue;
        }
        let score = eddy_query::text::score(&spec, &scan.search, &doc)?;
        if sink.push_scored(id_key, doc, score)? {
            break;
        }
    }
    Ok(())
}

/// What `returnKey` shows for a document `plan` found: the values of the index key it
/// was found through, named by the key pattern's fields (`{}` for a collection scan).
pub fn index_key(meta: &CollectionMeta, plan: &Plan, m: &Matched) -> Result<Document, MongoError> {
    let scan = match &plan.access {
        // A text index's entries are words, which returnKey does not show.
        Access::CollScan(_) | Access::Text(_) => return Ok(Document::new()),
        Access::IdHack(_) => None,
        Access::IndexScan(scan) => scan.table.as_ref().map(|_| scan),
    };
    let Some(scan) = scan else {
        // The `_id` index: the key is the `_id`.
        let id = m.doc.get("_id").cloned().unwrap_or(Bson::Null);
        return Ok(bson::doc! {"_id": id});
    };
    let index = meta
        .index(&scan.name)
        .ok_or_else(|| MongoError::internal(format!("index {} of the plan is gone", scan.name)))?;
    let values = match &m.entry {
        Some(entry) => crate::index::entry_values(index, &m.doc, &m.id_key, entry)?,
        None => None,
    };
    let mut values = values.ok_or_else(|| {
        MongoError::internal(format!("no entry of index {} for the document", scan.name))
    })?;
    // A read of every path of a compound wildcard index shows no value field.
    if values.len() > scan.key_pattern.len() {
        if let Some(at) = crate::wildcard::wildcard_position(index) {
            values.remove(at + 1);
        }
    }
    Ok(scan.key_pattern.keys().cloned().zip(values).collect())
}

/// Collects matching documents in the query's order.
struct Sink<'a> {
    filter: &'a Filter,
    sort: Option<&'a SortSpec>,
    /// Whether documents arrive in sort order (or there is no sort).
    streamed: bool,
    limit: usize,
    /// Finished results (streamed), or every match with its sort key (in memory).
    out: Vec<Matched>,
    /// Matches with equal sort keys not yet put in `_id` order, or (in memory) all of
    /// them.
    run: Vec<(Vec<Bson>, Matched)>,
    stats: ExecStats,
    deadline: Option<Deadline>,
    /// Whether matches keep the index entry they were found through.
    keep_entries: bool,
}

/// How many documents a scan reads between two looks at its deadline.
const DEADLINE_EVERY: u64 = 128;

impl Sink<'_> {
    /// Takes one document read by the plan; whether the scan can stop.
    /// `entry`: the secondary index entry that led to the document.
    fn push(
        &mut self,
        id_key: Vec<u8>,
        bytes: &[u8],
        entry: Option<Vec<u8>>,
    ) -> Result<bool, MongoError> {
        if self.stats.docs_examined.is_multiple_of(DEADLINE_EVERY) {
            Deadline::check_opt(self.deadline)?;
        }
        self.stats.docs_examined += 1;
        let doc = catalog::decode(bytes)?;
        let Some(details) = self.filter.matches_details(&doc) else {
            return Ok(false);
        };
        let m = Matched {
            id_key,
            doc,
            details: Some(details),
            entry: entry.filter(|_| self.keep_entries),
            score: None,
            near: None,
        };
        self.take(m)
    }

    /// Takes a document the text plan found and scored, already checked against the
    /// `$text` clause; whether the scan can stop.
    fn push_scored(
        &mut self,
        id_key: Vec<u8>,
        doc: Document,
        score: f64,
    ) -> Result<bool, MongoError> {
        let Some(details) = self.filter.matches_details(&doc) else {
            return Ok(false);
        };
        let mut doc = doc;
        if self.sort.is_some_and(SortSpec::uses_text_score) {
            doc.insert(TEXT_SCORE, score);
        }
        self.take(Matched {
            id_key,
            doc,
            details: Some(details),
            entry: None,
            score: Some(score),
            near: None,
        })
    }

    /// Files a match in the query's order.
    fn take(&mut self, m: Matched) -> Result<bool, MongoError> {
        let Some(sort) = self.sort else {
            self.out.push(m);
            return Ok(self.out.len() >= self.limit);
        };
        let key = sort.key_total(&m.doc);
        if self.streamed {
            let new_run = self
                .run
                .first()
                .is_some_and(|(k, _)| sort.compare_keys(k, &key) != Ordering::Equal);
            if new_run {
                self.flush_run();
                if self.out.len() >= self.limit {
                    return Ok(true);
                }
            }
        }
        self.run.push((key, m));
        if !self.streamed && self.limit < usize::MAX && self.run.len() >= 2 * self.limit + 64 {
            // Only the first `limit` in sort order can be returned: keep memory bounded.
            self.sort_in_memory(sort);
            self.run.truncate(self.limit);
        }
        Ok(false)
    }

    /// Orders the collected matches by (sort key, `_id`).
    fn sort_in_memory(&mut self, sort: &SortSpec) {
        self.run.sort_by(|a, b| {
            sort.compare_keys(&a.0, &b.0)
                .then_with(|| a.1.id_key.cmp(&b.1.id_key))
        });
    }

    fn flush_run(&mut self) {
        self.run.sort_by(|a, b| a.1.id_key.cmp(&b.1.id_key));
        self.out.extend(self.run.drain(..).map(|(_, m)| m));
    }

    fn finish(mut self) -> Vec<Matched> {
        if let (Some(sort), false) = (self.sort, self.streamed) {
            self.sort_in_memory(sort);
            self.out.extend(self.run.drain(..).map(|(_, m)| m));
        } else {
            self.flush_run();
        }
        self.out.truncate(self.limit);
        // The score field served the sort; the score itself is in `Matched::score`.
        for m in &mut self.out {
            if m.score.is_some() {
                m.doc.remove(TEXT_SCORE);
            }
        }
        self.out
    }
}

/// What a [`Reader`] reads: a snapshot, or a transaction's snapshot with its own
/// writes (`crate::txn`).
#[derive(Clone)]
pub(crate) enum View {
    Snapshot(Snapshot),
    Transaction(Overlay<Snapshot>),
}

impl KvRead for View {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, eddy_storage::StorageError> {
        match self {
            View::Snapshot(s) => s.get(table, key),
            View::Transaction(o) => o.get(table, key),
        }
    }

    fn scan(
        &self,
        table: &str,
        start: std::ops::Bound<Vec<u8>>,
        end: std::ops::Bound<Vec<u8>>,
        reverse: bool,
    ) -> Result<eddy_storage::EntryIter<'_>, eddy_storage::StorageError> {
        match self {
            View::Snapshot(s) => s.scan(table, start, end, reverse),
            View::Transaction(o) => o.scan(table, start, end, reverse),
        }
    }

    fn len(&self, table: &str) -> Result<u64, eddy_storage::StorageError> {
        match self {
            View::Snapshot(s) => s.len(table),
            View::Transaction(o) => o.len(table),
        }
    }
}

/// A consistent read view of the whole database.
pub struct Reader {
    snap: View,
}

impl Reader {
    pub(crate) fn new(snap: Snapshot) -> Reader {
        Reader {
            snap: View::Snapshot(snap),
        }
    }

    /// A transaction's view: its snapshot and its own writes so far.
    pub(crate) fn of_transaction(view: Overlay<Snapshot>) -> Reader {
        Reader {
            snap: View::Transaction(view),
        }
    }

    /// The snapshot of a reader that is one (not a transaction's view).
    pub(crate) fn into_snapshot(self) -> Option<Snapshot> {
        match self.snap {
            View::Snapshot(s) => Some(s),
            View::Transaction(_) => None,
        }
    }

    /// Whether this reads inside a multi-document transaction.
    pub fn in_transaction(&self) -> bool {
        matches!(self.snap, View::Transaction(_))
    }

    /// The view itself, for reads kept in their own modules (`capped`).
    pub(crate) fn snap(&self) -> &View {
        &self.snap
    }

    /// A collection's catalog entry. `system.buckets.<name>` of a time-series
    /// collection is listed but holds no buckets in Eddy: reading it is refused (115)
    /// rather than answered as an empty collection.
    pub fn collection(&self, ns: &Namespace) -> Result<Option<CollectionMeta>, MongoError> {
        if let Some(base) = ns.coll.strip_prefix("system.buckets.") {
            let base = Namespace::new(ns.db.clone(), base);
            if catalog::get(&self.snap, &base)?.is_some_and(|m| m.timeseries().is_some()) {
                return Err(MongoError::new(
                    eddy_codes::ErrorCode::CommandNotSupported,
                    format!("Eddy keeps no buckets: {ns} cannot be read (see {base})"),
                ));
            }
        }
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
        self.table_bytes(&meta.docs_table(), |_, v| v.len())
    }

    /// The bytes of each index, by name, in the order `listIndexes` gives them: for
    /// `_id_` the documents table's keys (collections are clustered by `_id`), for the
    /// others their entries (keys and values).
    pub fn index_sizes(&self, meta: &CollectionMeta) -> Result<Vec<(String, u64)>, MongoError> {
        let id_name = meta
            .primary_index_spec()
            .get_str("name")
            .unwrap_or("_id_")
            .to_owned();
        let mut out = vec![(
            id_name,
            self.table_bytes(&meta.docs_table(), |k, _| k.len())?,
        )];
        if meta.timeseries().is_some() {
            // No `_id` index (see `CollectionMeta::index_specs`).
            out.clear();
        }
        for index in &meta.indexes {
            let bytes = self.table_bytes(&crate::index::table(index), |k, v| k.len() + v.len())?;
            out.push((index.name().to_owned(), bytes));
        }
        Ok(out)
    }

    /// The bytes of the users and roles (what mongod keeps in `admin.system.users` and
    /// `admin.system.roles`).
    pub fn users_and_roles_bytes(&self) -> Result<u64, MongoError> {
        let mut total = 0;
        // A missing table reads as empty.
        for table in ["users", "roles"] {
            total += self.table_bytes(table, |k, v| k.len() + v.len())?;
        }
        Ok(total)
    }

    /// The sum of `size(key, value)` over a table's entries.
    fn table_bytes(
        &self,
        table: &str,
        size: impl Fn(&[u8], &[u8]) -> usize,
    ) -> Result<u64, MongoError> {
        let mut total = 0u64;
        for entry in self.snap.scan_all(table, false).map_err(storage_err)? {
            let (k, v) = entry.map_err(storage_err)?;
            total += size(&k, &v) as u64;
        }
        Ok(total)
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
        let filter = Filter::parse(filter_doc)?;
        matching(&self.snap, meta, filter_doc, &filter, limit)
    }

    /// Plans and runs a query on this snapshot (see [`execute`]).
    pub fn query(
        &self,
        meta: &CollectionMeta,
        q: &Query<'_>,
        limit: Option<usize>,
    ) -> Result<Executed, MongoError> {
        execute(&self.snap, meta, q, limit)
    }

    /// What the reader reads, for the functions that read any store.
    pub(crate) fn kv(&self) -> &View {
        &self.snap
    }

    /// Every document of a collection, in `_id` order.
    pub fn scan(
        &self,
        meta: &CollectionMeta,
    ) -> Result<impl Iterator<Item = Result<Document, MongoError>> + '_, MongoError> {
        Ok(self
            .snap
            .scan_all(&meta.docs_table(), false)
            .map_err(storage_err)?
            .map(|e| {
                e.map_err(storage_err)
                    .and_then(|(_, v)| catalog::decode(&v))
            }))
    }
}
