//! Query planning: which access path reads a collection for a query.
//!
//! The candidates are a collection scan, a point read of one `_id` (mongod's IDHACK),
//! and a scan of any index (the `_id` index is the documents table itself, which is
//! keyed by the encoded `_id`) over the bounds the filter places on its key fields
//! ([`eddy_query::bounds`]). The choice is deterministic, in this order of preference:
//!
//! 1. `hint`: `{$natural: 1 | -1}` forces a collection scan in that direction; an index
//!    name or key pattern forces that index (bounded by the filter where it can be,
//!    else the whole index), as mongod does even for sparse and partial indexes;
//! 2. `min`/`max` (which need a hint): a scan of the hinted index from `min`
//!    (inclusive) to `max` (exclusive), in the index's key order;
//! 3. a query that is exactly `{_id: <value>}`: IDHACK;
//! 4. the index with the best score: a unique index with every key field bound by
//!    equalities; then the most leading key fields bound by equalities (`$eq`, `$in`);
//!    then a range on the next field; then whether it yields the sort's order (forward
//!    or backward); then the fewest key fields; then the earliest created (`_id` first).
//!    An index qualifies if its leading field is bounded or it yields the sort's order;
//!    a sparse index only when bounded (its bounds then exclude missing fields), a
//!    partial index only when the filter implies its `partialFilterExpression`
//!    ([`eddy_query::bounds::implies`]), a hidden index never;
//! 5. otherwise a forward collection scan.
//!
//! A query with `$text` is planned apart ([`Access::Text`]): it reads the collection's
//! text index (27 IndexNotFound without one) for each word of its `$search`, under
//! equalities on the index's prefix fields; text indexes serve nothing else.
//!
//! A hashed key field (`crate::hashed`) is bounded only by equalities, as the points of
//! their values' hashes, and serves no sort. A wildcard index (`crate::wildcard`) is
//! offered once per path of the filter's top-level conjunction that it indexes and whose
//! values the filter bounds to scalars, as a scan of `($_path, value)` keys (between a
//! compound wildcard index's regular fields), and a compound one whose leading regular
//! field is bounded also as a read of every path; a wildcard read never qualifies by a
//! sort alone.
//!
//! Geo indexes (`2dsphere`, `2d`: `crate::geo`) qualify only when the filter's
//! `$geoWithin`/`$geoIntersects` bounds one of their geo fields (their keys are cells,
//! never values, so no other predicate bounds them and they serve no sort). A `$near`
//! is planned first of all: the first visible geo index on its path that can measure
//! its distances, over the cells within its `$maxDistance`, else 291; the caller
//! orders by distance.
//!
//! An index yields the sort's order when the sort's fields, less those bound to a
//! single value by the filter, are the key fields that follow that single-value prefix,
//! all in the key pattern's directions or all reversed, and none of those key fields
//! has ever held an array (a multikey field sorts by its smallest or largest element,
//! not by each index entry). Documents with equal sort keys still come out in `_id`
//! order (see `read.rs`), so every plan returns the same sequence for the same query.

use std::ops::Bound;
use std::sync::Arc;

use bson::{Bson, Document};
use eddy_codes::{Deadline, ErrorCode, MongoError};
use eddy_query::bounds::{self, Interval};
use eddy_query::collation::{self, Collation};
use eddy_query::filter::Filter;
use eddy_query::key;
use eddy_query::sort::SortSpec;
use eddy_query::text::{TextSearch, TextSpec};
use eddy_storage::prefix_bounds;

use crate::catalog::{self, CollectionMeta, IndexMeta};
use crate::geo::{self, GeoField};
use crate::index;

/// The most byte ranges one index scan is split into; past this, later key fields are
/// scanned whole (the filter still applies to every document).
const MAX_RANGES: usize = 4096;

/// A range of keys of a table: `(start, end)`.
pub type KeyRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// Which way a scan walks its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Backward,
}

impl Direction {
    /// explain's `direction`.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Forward => "forward",
            Direction::Backward => "backward",
        }
    }
}

/// What a query asks of the planner.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    pub filter_doc: &'a Document,
    pub filter: &'a Filter,
    pub sort: Option<&'a SortSpec>,
    /// `find`'s `hint` (a name or a key pattern; `{}` is no hint).
    pub hint: Option<&'a Bson>,
    /// `find`'s `min`/`max` (empty documents count as absent).
    pub min: Option<&'a Document>,
    pub max: Option<&'a Document>,
    /// Whether the query skips documents (mongod's IDHACK does not serve those).
    pub skip: bool,
    /// A `maxTimeMS` deadline: running the plan stops with 50 MaxTimeMSExpired after it.
    pub deadline: Option<Deadline>,
    /// Keep the index entry each document was found through (`returnKey`).
    pub return_key: bool,
}

impl<'a> Query<'a> {
    /// A query with only a filter.
    pub fn new(filter_doc: &'a Document, filter: &'a Filter) -> Query<'a> {
        Query {
            filter_doc,
            filter,
            sort: None,
            hint: None,
            min: None,
            max: None,
            skip: false,
            deadline: None,
            return_key: false,
        }
    }
}

/// How a query reads a collection.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub access: Access,
    /// Whether documents come out in the query's sort order, so that no in-memory
    /// sort is needed (always true without a sort).
    pub sorted: bool,
}

/// The access path of a [`Plan`].
#[derive(Debug, Clone, PartialEq)]
pub enum Access {
    /// Every document, in `_id` order (or reversed).
    CollScan(Direction),
    /// The one document with this `_id`.
    IdHack(Bson),
    /// Entries of an index within byte ranges, each document fetched.
    IndexScan(Box<IndexScan>),
    /// A `$text` query: the text index's entries for each word, each document found
    /// fetched once, checked against the phrases and negations, and scored.
    Text(Box<TextScan>),
}

/// The reads of a `$text` query (mongod's `TEXT_MATCH` over `TEXT_OR` over `IXSCAN`s).
#[derive(Debug, Clone, PartialEq)]
pub struct TextScan {
    pub table: String,
    pub name: String,
    pub key_pattern: Document,
    /// The text index's specification, as stored.
    pub spec: Document,
    /// The equality values of the index's prefix fields (explain's `indexPrefix`),
    /// with their directions.
    pub prefix: Vec<(String, Bson, bool)>,
    /// The words looked up, and what a document found must also satisfy.
    pub search: TextSearch,
}

impl TextScan {
    /// The key prefix of the entries for each word looked up.
    pub fn term_prefixes(&self) -> Vec<Vec<u8>> {
        let prefix: Vec<(Bson, bool)> = self
            .prefix
            .iter()
            .map(|(_, v, d)| (v.clone(), *d))
            .collect();
        self.search
            .terms_for_bounds
            .iter()
            .map(|t| index::text_term_prefix(&prefix, t))
            .collect()
    }
}

/// The bounds of one key field, as explain shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldBounds {
    pub field: String,
    pub descending: bool,
    /// Ascending in value order.
    pub intervals: Vec<Interval>,
}

/// A scan of one index.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexScan {
    /// The index's table; `None` for the `_id` index (the documents table).
    pub table: Option<String>,
    pub name: String,
    pub key_pattern: Document,
    /// The index's collation as explain shows it (`None`: simple).
    pub collation: Option<Document>,
    pub multikey_paths: Option<Vec<Vec<usize>>>,
    pub unique: bool,
    pub sparse: bool,
    pub partial: bool,
    pub direction: Direction,
    /// Per key field; `None` for a `min`/`max` scan (a plain key range).
    pub bounds: Option<Vec<FieldBounds>>,
    /// The key ranges read, ascending and disjoint (walked in reverse when backward).
    pub ranges: Vec<KeyRange>,
    /// Whether a document may be met through several entries though no key field is
    /// multikey: a wildcard read (`crate::wildcard`), whose ranges may hold several
    /// paths' entries of one document.
    pub dedup: bool,
}

impl IndexScan {
    /// Whether a document may have several entries in the scanned ranges.
    pub fn is_multikey(&self) -> bool {
        match &self.multikey_paths {
            Some(paths) => paths.iter().any(|p| !p.is_empty()),
            None => self.table.is_some(),
        }
    }

    /// explain's `indexBounds`: per field, mongod's interval strings oriented along the
    /// scan (a descending field, or a backward scan, lists them from high to low).
    pub fn explain_bounds(&self) -> Document {
        let mut out = Document::new();
        for fb in self.bounds.iter().flatten() {
            let reversed = fb.descending != (self.direction == Direction::Backward);
            let mut shown: Vec<Bson> = fb
                .intervals
                .iter()
                .map(|i| Bson::String(i.to_mongo_string(reversed)))
                .collect();
            if reversed {
                shown.reverse();
            }
            out.insert(fb.field.clone(), shown);
        }
        out
    }

    /// explain's `multiKeyPaths` (`{"a.b": ["a"]}`), when they are known.
    pub fn explain_multikey_paths(&self) -> Option<Document> {
        let paths = self.multikey_paths.as_ref()?;
        let mut out = Document::new();
        for (i, (field, _)) in self.key_pattern.iter().enumerate() {
            let parts: Vec<&str> = field.split('.').collect();
            let shown: Vec<Bson> = paths
                .get(i)
                .map(Vec::as_slice)
                .unwrap_or(&[])
                .iter()
                .map(|c| Bson::String(parts[..(*c + 1).min(parts.len())].join(".")))
                .collect();
            out.insert(field.clone(), shown);
        }
        Some(out)
    }
}

/// A hint resolved against the collection.
#[derive(Debug, Clone, Copy)]
pub enum Hinted<'m> {
    Natural(Direction),
    Id,
    Index(&'m IndexMeta),
}

/// mongod's wording for an error the planner returns to `find`.
fn planner_error(code: ErrorCode, msg: &str) -> MongoError {
    MongoError::new(
        code,
        format!("error processing query: planner returned error :: caused by :: {msg}"),
    )
}

fn planner_location(code: i32, msg: &str) -> MongoError {
    MongoError::location(
        code,
        format!("error processing query: planner returned error :: caused by :: {msg}"),
    )
}

fn bad_hint() -> MongoError {
    planner_error(
        ErrorCode::BadValue,
        "hint provided does not correspond to an existing index",
    )
}

/// Resolves a hint: `None` for no hint (`{}`). A name or pattern naming no index (or
/// a hidden one) fails as in mongod.
pub fn resolve_hint<'m>(
    meta: &'m CollectionMeta,
    hint: &Bson,
) -> Result<Option<Hinted<'m>>, MongoError> {
    let visible = || meta.indexes.iter().filter(|i| !i.hidden());
    match hint {
        Bson::String(name) if name == "_id_" => Ok(Some(Hinted::Id)),
        Bson::String(name) => visible()
            .find(|i| i.name() == name)
            .map(|i| Some(Hinted::Index(i)))
            .ok_or_else(bad_hint),
        Bson::Document(pattern) if pattern.is_empty() => Ok(None),
        Bson::Document(pattern) => {
            if let Some(v) = pattern.get("$natural") {
                return natural_direction(v, "hint").map(|d| Some(Hinted::Natural(d)));
            }
            if catalog::same_key_pattern(pattern, &bson::doc! {"_id": 1}) {
                return Ok(Some(Hinted::Id));
            }
            visible()
                .find(|i| catalog::same_key_pattern(&i.key_pattern(), pattern))
                .map(|i| Some(Hinted::Index(i)))
                .ok_or_else(bad_hint)
        }
        _ => Err(MongoError::new(
            ErrorCode::FailedToParse,
            "hint must be a string or an object",
        )),
    }
}

/// The direction of `{$natural: 1 | -1}` (in a `hint` or a `sort`).
pub fn natural_direction(v: &Bson, what: &str) -> Result<Direction, MongoError> {
    let n = match v {
        Bson::Int32(n) => f64::from(*n),
        Bson::Int64(n) => *n as f64,
        Bson::Double(d) => *d,
        _ => f64::NAN,
    };
    if n == 1.0 {
        Ok(Direction::Forward)
    } else if n == -1.0 {
        Ok(Direction::Backward)
    } else {
        Err(MongoError::bad_value(format!(
            "$natural {what} cannot be set to a value other than -1 or 1."
        )))
    }
}

/// What a candidate reads of a wildcard index.
struct WildcardRead {
    /// The position of `$_path` among the candidate's fields (the wildcard term's in
    /// the key pattern); the path's value follows it.
    at: usize,
    /// The one path read (`None`: every path, for a compound wildcard index's
    /// regular fields).
    path: Option<String>,
}

/// An index as the planner sees it.
struct Candidate<'m> {
    index: Option<&'m IndexMeta>,
    name: String,
    /// `(path, descending)` in key order.
    fields: Vec<(String, bool)>,
    multikey: Vec<bool>,
    /// Per key field, its geo kind (`None`: an ordinary field).
    geo: Vec<Option<GeoField>>,
    /// Per key field, whether it is hashed (`crate::hashed`).
    hashed: Vec<bool>,
    /// For a wildcard index, what this candidate reads of it (`crate::wildcard`).
    wildcard: Option<WildcardRead>,
    /// The index's collation (`None`: simple; always so for `_id`, whose table is
    /// keyed by bytes).
    collation: Option<Arc<Collation>>,
}

impl<'m> Candidate<'m> {
    fn id() -> Candidate<'static> {
        Candidate {
            index: None,
            name: "_id_".into(),
            fields: vec![("_id".into(), false)],
            multikey: vec![false],
            geo: vec![None],
            hashed: vec![false],
            wildcard: None,
            collation: None,
        }
    }

    fn of(index: &'m IndexMeta) -> Candidate<'m> {
        let fields: Vec<(String, bool)> = index
            .key_pattern()
            .iter()
            .map(|(f, d)| (f.clone(), index::is_descending(d)))
            .collect();
        let geo: Vec<Option<GeoField>> = index
            .key_pattern()
            .values()
            .map(|d| geo::field_kind(index, d))
            .collect();
        let hashed: Vec<bool> = index
            .key_pattern()
            .values()
            .map(crate::hashed::is_hashed)
            .collect();
        // A geo or hashed field never serves a sort nor intersects bounds, as a
        // multikey one.
        let multikey = (0..fields.len())
            .map(|i| index.field_multikey(i) || geo[i].is_some() || hashed[i])
            .collect();
        Candidate {
            index: Some(index),
            name: index.name().to_owned(),
            fields,
            multikey,
            geo,
            hashed,
            wildcard: None,
            collation: index.collation(),
        }
    }

    /// A wildcard index read for one query path (`Some`), or, for a compound wildcard
    /// index, for its regular fields alone (`None`: every path, and the documents
    /// holding none, whose `$_path` is MinKey). Its fields are the key's parts: the
    /// regular fields around `$_path` and the path's value (named by the path, or by
    /// the wildcard term when every path is read).
    fn wildcard(index: &'m IndexMeta, at: usize, path: Option<&str>) -> Candidate<'m> {
        let pattern = index.key_pattern();
        let mut fields = Vec::with_capacity(pattern.len() + 1);
        let mut multikey = Vec::with_capacity(pattern.len() + 1);
        for (i, (field, direction)) in pattern.iter().enumerate() {
            let descending = index::is_descending(direction);
            if i == at {
                fields.push(("$_path".to_owned(), false));
                fields.push((path.unwrap_or(field).to_owned(), descending));
                // The index records whether any path held an array, not which.
                multikey.push(false);
                multikey.push(index.field_multikey(i));
            } else {
                fields.push((field.clone(), descending));
                multikey.push(index.field_multikey(i));
            }
        }
        let n = fields.len();
        Candidate {
            index: Some(index),
            name: index.name().to_owned(),
            fields,
            multikey,
            geo: vec![None; n],
            hashed: vec![false; n],
            wildcard: Some(WildcardRead {
                at,
                path: path.map(str::to_owned),
            }),
            collation: index.collation(),
        }
    }

    /// The candidates a wildcard index offers a filter: one per path of its top-level
    /// conjunction that the index keeps and whose values the filter bounds; and, for a
    /// compound wildcard index whose leading regular field the filter bounds (and some
    /// regular field away from null), one read of every path (mongod's `$_path:
    /// [MinKey, MinKey], ["", {})`).
    fn wildcards(index: &'m IndexMeta, q: &Query<'_>) -> Vec<Candidate<'m>> {
        let Some(at) = crate::wildcard::wildcard_position(index) else {
            return Vec::new();
        };
        let projection = crate::wildcard::Projection::of(index);
        let mut paths = Vec::new();
        crate::wildcard::query_paths(q.filter_doc, &mut paths);
        let mut out: Vec<Candidate<'m>> = paths
            .into_iter()
            .filter(|p| projection.keeps(p))
            .map(|p| Candidate::wildcard(index, at, Some(&p)))
            .filter(|c| c.bounds(q.filter)[at + 1].is_some())
            .collect();
        if at > 0 {
            // The index is sparse: a document with none of its paths nor regular fields
            // is not in it, so some regular field's bounds must exclude a missing one.
            let all = Candidate::wildcard(index, at, None);
            let b = all.bounds(q.filter);
            let excludes_missing = b.iter().enumerate().any(|(i, f)| {
                i != at
                    && i != at + 1
                    && f.as_ref()
                        .is_some_and(|f| !f.iter().any(|iv| iv.contains(&Bson::Null)))
            });
            if b[0].is_some() && excludes_missing {
                out.push(all);
            }
        }
        out
    }

    /// Whether the index's collation is `other` (`None`: simple).
    fn collated_as(&self, other: Option<&Arc<Collation>>) -> bool {
        collation::same(self.collation.as_deref(), other.map(|c| &**c))
    }

    fn unique(&self) -> bool {
        self.index.is_none_or(IndexMeta::unique)
    }

    /// The bounds the filter places on each key field (`None`: unbounded).
    ///
    /// Under a collation: an index of the query's collation is bounded by its collated
    /// comparisons; an index of another collation only where the bounds hold no
    /// string (its string keys are in another order), as mongod.
    fn bounds(&self, filter: &Filter) -> Vec<Option<Vec<Interval>>> {
        let same = self.collated_as(filter.collation());
        let collated = same && self.collation.is_some();
        // Bounds holding strings serve an index of another collation than the query's
        // nothing: its string keys are in another order. Nor do empty bounds, which may
        // come from strings that differ in bytes but not under the query's collation.
        let string_free = |b: &Vec<Interval>| {
            !b.is_empty()
                && !b
                    .iter()
                    .any(|iv| holds_string(&iv.start) || holds_string(&iv.end))
        };
        if let Some(w) = &self.wildcard {
            return self
                .fields
                .iter()
                .zip(&self.multikey)
                .enumerate()
                .map(|(i, ((path, _), multikey))| {
                    if i == w.at {
                        return Some(match &w.path {
                            Some(p) => vec![Interval::point(Bson::String(p.clone()))],
                            None => crate::wildcard::all_paths(),
                        });
                    }
                    if i == w.at + 1 {
                        return w.path.as_ref().and_then(|p| {
                            crate::wildcard::value_bounds(filter, p, *multikey, collated)
                                .filter(|b| same || string_free(b))
                        });
                    }
                    plannable_path(path)
                        .then(|| bounds::path_bounds_under(filter, path, *multikey, collated))
                        .flatten()
                        .filter(|b| same || string_free(b))
                })
                .collect();
        }
        self.fields
            .iter()
            .zip(&self.multikey)
            .zip(&self.geo)
            .zip(&self.hashed)
            .map(|((((path, _), multikey), geo), hashed)| match geo {
                Some(kind) => geo::bounds(filter, path, *kind),
                // Hashes are of collation keys: see `crate::hashed::bounds`.
                None if *hashed => plannable_path(path)
                    .then(|| crate::hashed::bounds(filter, path, self.collation.as_deref()))
                    .flatten(),
                None => plannable_path(path)
                    .then(|| bounds::path_bounds_under(filter, path, *multikey, collated))
                    .flatten()
                    .filter(|b| same || string_free(b)),
            })
            .collect()
    }

    /// The direction in which this index yields `sort`'s order given the bounds, if it
    /// does (see the module doc).
    fn sort_direction(
        &self,
        bounds: &[Option<Vec<Interval>>],
        sort: &SortSpec,
    ) -> Option<Direction> {
        // Strings in the index are in its collation's order, the sort's only if same.
        if !self.collated_as(sort.collation()) {
            return None;
        }
        let single =
            |b: &Option<Vec<Interval>>| b.as_ref().is_some_and(|b| b.len() == 1 && b[0].is_point());
        let prefix = bounds.iter().take_while(|b| single(b)).count();
        let constant = |f: &str| {
            self.fields[..prefix]
                .iter()
                .zip(&self.multikey)
                .any(|((name, _), multikey)| name == f && !multikey)
        };
        let mut direction = None;
        for (t, (field, ascending)) in sort
            .fields()
            .iter()
            .filter(|(f, _)| !constant(f))
            .enumerate()
        {
            let (name, descending) = self.fields.get(prefix + t)?;
            if name != field || self.multikey[prefix + t] {
                return None;
            }
            let d = if *ascending != *descending {
                Direction::Forward
            } else {
                Direction::Backward
            };
            if *direction.get_or_insert(d) != d {
                return None;
            }
        }
        Some(direction.unwrap_or(Direction::Forward))
    }

    fn scan(
        &self,
        direction: Direction,
        bounds: Vec<Option<Vec<Interval>>>,
        ranges: Vec<KeyRange>,
        with_bounds: bool,
    ) -> IndexScan {
        // An all-paths wildcard read shows no value field (mongod's `{.., $_path: 1, ..}`).
        let hidden = self
            .wildcard
            .as_ref()
            .filter(|w| w.path.is_none())
            .map(|w| w.at + 1);
        let shown = with_bounds.then(|| {
            self.fields
                .iter()
                .zip(bounds)
                .enumerate()
                .filter(|(i, _)| Some(*i) != hidden)
                .map(|(_, ((field, descending), b))| FieldBounds {
                    field: field.clone(),
                    descending: *descending,
                    intervals: b.unwrap_or_else(|| vec![Interval::all()]),
                })
                .collect()
        });
        IndexScan {
            table: self.index.map(index::table),
            name: self.name.clone(),
            key_pattern: match (self.index, &self.wildcard) {
                (Some(i), Some(w)) => {
                    let mut out = Document::new();
                    for (n, (field, dir)) in i.key_pattern().into_iter().enumerate() {
                        if n != w.at {
                            out.insert(field, dir);
                            continue;
                        }
                        out.insert("$_path", 1);
                        if let Some(path) = &w.path {
                            out.insert(path.clone(), dir);
                        }
                    }
                    out
                }
                (Some(i), None) => i.key_pattern(),
                (None, _) => bson::doc! {"_id": 1},
            },
            collation: self.collation.as_ref().map(|c| c.spec().clone()),
            multikey_paths: match (self.index, &self.wildcard) {
                // Whether any path held an array is all the index records: shown on the
                // path's last component.
                (Some(i), Some(w)) => {
                    let mut out = Vec::new();
                    for n in 0..i.key_pattern().len() {
                        if n != w.at {
                            out.push(
                                i.multikey_paths
                                    .as_ref()
                                    .and_then(|p| p.get(n).cloned())
                                    .unwrap_or_default(),
                            );
                            continue;
                        }
                        out.push(Vec::new());
                        if let Some(path) = &w.path {
                            out.push(if i.field_multikey(n) {
                                vec![path.split('.').count() - 1]
                            } else {
                                Vec::new()
                            });
                        }
                    }
                    Some(out)
                }
                (Some(i), None) => i.multikey_paths.clone(),
                (None, _) => Some(vec![Vec::new()]),
            },
            // The ranges of a compound wildcard read may hold several paths' entries of
            // one document.
            dedup: self.wildcard.is_some(),
            unique: self.unique(),
            sparse: self.index.is_some_and(IndexMeta::sparse),
            partial: self.index.is_some_and(|i| i.partial_filter().is_some()),
            direction,
            bounds: shown,
            ranges,
        }
    }
}

/// Whether the planner derives bounds for a key path: numeric components (`a.0`) index
/// array positions and field names alike, so they are scanned whole.
fn plannable_path(path: &str) -> bool {
    !path
        .split('.')
        .any(|c| c.is_empty() || c.starts_with('$') || c.bytes().all(|b| b.is_ascii_digit()))
}

/// Chooses how to read `meta` for `q` (see the module doc).
pub fn plan(meta: &CollectionMeta, q: &Query<'_>) -> Result<Plan, MongoError> {
    if let Some(text) = q.filter.text() {
        return text_plan(meta, q, text);
    }
    let hinted = match q.hint {
        Some(h) => resolve_hint(meta, h)?,
        None => None,
    };
    if matches!(hinted, Some(Hinted::Index(i)) if i.is_text()) {
        // A text index holds words: it answers `$text` and nothing else.
        return Err(bad_hint());
    }
    let unsorted = q.sort.is_none_or(SortSpec::is_empty);
    if q.min.is_some() || q.max.is_some() {
        return min_max_plan(q, hinted, unsorted);
    }
    if let Some((path, near)) = q.filter.near() {
        return near_plan(meta, q, path, near, unsorted);
    }
    match hinted {
        Some(Hinted::Natural(direction)) => {
            return Ok(Plan {
                access: Access::CollScan(direction),
                sorted: unsorted,
            })
        }
        Some(Hinted::Id) => return Ok(index_plan(&Candidate::id(), q, unsorted)),
        Some(Hinted::Index(i)) if crate::wildcard::wildcard_position(i).is_some() => {
            // A hinted wildcard index reads the first path the filter bounds in it; a
            // compound one, failing that, every path under its regular fields' bounds.
            let at = crate::wildcard::wildcard_position(i).unwrap_or(0);
            let c = Candidate::wildcards(i, q)
                .into_iter()
                .next()
                .or_else(|| (i.key_pattern().len() > 1).then(|| Candidate::wildcard(i, at, None)))
                .ok_or_else(bad_hint)?;
            return Ok(index_plan(&c, q, unsorted));
        }
        Some(Hinted::Index(i)) => return Ok(index_plan(&Candidate::of(i), q, unsorted)),
        None => {}
    }
    // A time-series collection's measurements may share an `_id`: no point read.
    if !q.skip && meta.timeseries().is_none() {
        if let Some(id) = id_hack(meta, q) {
            return Ok(Plan {
                access: Access::IdHack(id),
                sorted: true,
            });
        }
    }
    let mut best: Option<(Score, Plan)> = None;
    // A text index holds words, not values: only `$text` reads it.
    let candidates = std::iter::once(Candidate::id()).chain(
        meta.indexes
            .iter()
            .filter(|i| !i.hidden() && !i.is_text())
            .flat_map(|i| {
                if crate::wildcard::wildcard_position(i).is_some() {
                    Candidate::wildcards(i, q)
                } else {
                    vec![Candidate::of(i)]
                }
            }),
    );
    for (position, c) in candidates.enumerate() {
        if let Some(partial) = c.index.and_then(IndexMeta::partial_filter) {
            if !bounds::implies(q.filter_doc, q.filter, partial) {
                continue;
            }
        }
        let b = c.bounds(q.filter);
        // A geo index holds only documents with geometry: some geo field must be bounded.
        if c.geo.iter().any(Option::is_some)
            && !c
                .geo
                .iter()
                .zip(&b)
                .any(|(g, b)| g.is_some() && b.is_some())
        {
            continue;
        }
        let points = b
            .iter()
            .take_while(|f| f.as_ref().is_some_and(|f| f.iter().all(Interval::is_point)))
            .count();
        let range = b.get(points).is_some_and(Option::is_some);
        let bounded = points > 0 || range;
        // A wildcard scan's `$_path` point says nothing of the values: count it out, so
        // that a regular index on the path ties with it (and, older, wins).
        let points = points.saturating_sub(usize::from(
            c.wildcard.as_ref().is_some_and(|w| w.at < points),
        ));
        let sort_direction = match q.sort {
            Some(s) if !s.is_empty() => c.sort_direction(&b, s),
            _ => None,
        };
        // A wildcard read qualifies by its bounds only (mongod's compound wildcard
        // indexes are sparse, and an unbounded scan meets each document once a path).
        if !bounded
            && (sort_direction.is_none()
                || c.index.is_some_and(IndexMeta::sparse)
                || c.wildcard.is_some())
        {
            continue;
        }
        let score = Score {
            unique_point: c.unique() && points == c.fields.len(),
            points,
            range,
            sorts: sort_direction.is_some(),
            fewer_fields: usize::MAX - c.fields.len(),
            earlier: usize::MAX - position,
        };
        if best.as_ref().is_some_and(|(s, _)| *s >= score) {
            continue;
        }
        let direction = sort_direction.unwrap_or(Direction::Forward);
        let ranges = byte_ranges(&c.fields, &b, c.collation.as_deref());
        let plan = Plan {
            access: Access::IndexScan(Box::new(c.scan(direction, b, ranges, true))),
            sorted: unsorted || sort_direction.is_some(),
        };
        best = Some((score, plan));
    }
    Ok(best.map(|(_, p)| p).unwrap_or(Plan {
        access: Access::CollScan(Direction::Forward),
        sorted: unsorted,
    }))
}

/// The plan of a `$text` query: the collection's text index (27 IndexNotFound without
/// one), with equalities on its prefix fields in the query's top-level conjunction
/// (mongod's `FTSSpec::getIndexPrefix`). Results come in `_id` order, sorted in memory
/// when the query has a sort.
fn text_plan(
    meta: &CollectionMeta,
    q: &Query<'_>,
    text: &eddy_query::text::TextQuery,
) -> Result<Plan, MongoError> {
    let Some(index) = meta.indexes.iter().find(|i| i.is_text() && !i.hidden()) else {
        return Err(MongoError::new(
            ErrorCode::IndexNotFound,
            "text index required for $text query",
        ));
    };
    if let Some(Hinted::Index(h)) = match q.hint {
        Some(h) => resolve_hint(meta, h)?,
        None => None,
    } {
        if h.id != index.id {
            return Err(planner_error(
                ErrorCode::BadValue,
                "hint provided does not correspond to an existing index",
            ));
        }
    }
    let spec = TextSpec::from_index_spec(&index.spec)?;
    let search = text.resolve(&spec)?;
    let mut prefix = Vec::with_capacity(spec.prefix.len());
    for (field, direction) in &spec.prefix {
        let value = equality_on(q.filter_doc, field).ok_or_else(|| {
            planner_error(
                ErrorCode::BadValue,
                "failed to use text index to satisfy $text query (if text index is compound, are equality predicates given for all prefix fields?)",
            )
        })?;
        prefix.push((field.clone(), value, index::is_descending(direction)));
    }
    Ok(Plan {
        access: Access::Text(Box::new(TextScan {
            table: index::table(index),
            name: index.name().to_owned(),
            key_pattern: index.key_pattern(),
            spec: index.spec.clone(),
            prefix,
            search,
        })),
        sorted: q.sort.is_none_or(SortSpec::is_empty),
    })
}

/// The value of an equality on `field` in a query's top-level conjunction (`{f: v}`
/// or `{f: {$eq: v}}`, also inside top-level `$and`s).
fn equality_on(query: &Document, field: &str) -> Option<Bson> {
    for (k, v) in query {
        if k == "$and" {
            if let Bson::Array(items) = v {
                for item in items {
                    if let Some(found) = item.as_document().and_then(|d| equality_on(d, field)) {
                        return Some(found);
                    }
                }
            }
            continue;
        }
        if k != field {
            continue;
        }
        return match v {
            Bson::Document(d) if d.keys().next().is_some_and(|k| k.starts_with('$')) => {
                (d.len() == 1).then(|| d.get("$eq").cloned()).flatten()
            }
            Bson::Array(_) | Bson::RegularExpression(_) => None,
            other => Some(other.clone()),
        };
    }
    None
}

/// A `$near` on `path`: the first visible geo index that measures its distances.
fn near_plan(
    meta: &CollectionMeta,
    q: &Query<'_>,
    path: &str,
    near: &eddy_query::geo::query::Near,
    unsorted: bool,
) -> Result<Plan, MongoError> {
    for index in meta.indexes.iter().filter(|i| !i.hidden()) {
        let c = Candidate::of(index);
        let Some(pos) = c.fields.iter().position(|(f, _)| f == path) else {
            continue;
        };
        let Some(kind) = c.geo[pos].filter(|k| geo::serves_near(*k, near)) else {
            continue;
        };
        let mut b = c.bounds(q.filter);
        b[pos] = Some(geo::near_bounds(kind, near));
        let ranges = byte_ranges(&c.fields, &b, c.collation.as_deref());
        return Ok(Plan {
            access: Access::IndexScan(Box::new(c.scan(Direction::Forward, b, ranges, true))),
            // The caller orders by distance when there is no sort.
            sorted: unsorted,
        });
    }
    Err(eddy_query::filter::no_geo_near_index())
}

/// How good an index plan is; compared field by field, larger is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Score {
    unique_point: bool,
    points: usize,
    range: bool,
    sorts: bool,
    fewer_fields: usize,
    earlier: usize,
}

/// A plan over a hinted index: bounded where the filter bounds it, else whole.
fn index_plan(c: &Candidate<'_>, q: &Query<'_>, unsorted: bool) -> Plan {
    let b = c.bounds(q.filter);
    let sort_direction = match q.sort {
        Some(s) if !s.is_empty() => c.sort_direction(&b, s),
        _ => None,
    };
    let ranges = byte_ranges(&c.fields, &b, c.collation.as_deref());
    Plan {
        access: Access::IndexScan(Box::new(c.scan(
            sort_direction.unwrap_or(Direction::Forward),
            b,
            ranges,
            true,
        ))),
        sorted: unsorted || sort_direction.is_some(),
    }
}

/// `find`'s `min`/`max` (mongod's `finishMinObj`/`finishMaxObj` and their checks).
fn min_max_plan(
    q: &Query<'_>,
    hinted: Option<Hinted<'_>>,
    unsorted: bool,
) -> Result<Plan, MongoError> {
    let c = match hinted {
        Some(Hinted::Natural(_)) => {
            return Err(planner_error(
                ErrorCode::NoQueryExecutionPlans,
                "min and max are incompatible with $natural",
            ))
        }
        Some(Hinted::Id) => Candidate::id(),
        Some(Hinted::Index(i)) => Candidate::of(i),
        None => {
            return Err(planner_location(
                51173,
                "When using min()/max() a hint of which index to use must be provided",
            ))
        }
    };
    let compatible = |obj: &Document| {
        obj.len() == c.fields.len() && obj.keys().zip(&c.fields).all(|(k, (f, _))| k == f)
    };
    if !q.min.is_none_or(compatible) || !q.max.is_none_or(compatible) {
        return Err(planner_location(
            51174,
            "The index chosen is not compatible with min/max",
        ));
    }
    // An absent end is the lowest (highest) key in the index's order: MinKey on an
    // ascending field, MaxKey on a descending one.
    let finish = |obj: Option<&Document>, low: bool| -> Vec<u8> {
        let mut out = Vec::new();
        for (i, (_, descending)) in c.fields.iter().enumerate() {
            let v = match obj.and_then(|o| o.iter().nth(i)) {
                Some((_, v)) => v.clone(),
                None if low != *descending => Bson::MinKey,
                None => Bson::MaxKey,
            };
            encode_part(&v, *descending, c.collation.as_deref(), &mut out);
        }
        out
    };
    let start = finish(q.min, true);
    let end = finish(q.max, false);
    if start >= end {
        return Err(planner_location(
            51175,
            "The value provided for min() does not come before the value provided for max() in the hinted index",
        ));
    }
    let unbounded = vec![None; c.fields.len()];
    let sort_direction = match q.sort {
        Some(s) if !s.is_empty() => c.sort_direction(&unbounded, s),
        _ => None,
    };
    let ranges = vec![(Bound::Included(start), Bound::Excluded(end))];
    Ok(Plan {
        access: Access::IndexScan(Box::new(c.scan(
            sort_direction.unwrap_or(Direction::Forward),
            unbounded,
            ranges,
            false,
        ))),
        sorted: unsorted || sort_direction.is_some(),
    })
}

/// The `_id` of a query that is exactly `{_id: v}` or `{_id: {$eq: v}}` (mongod's
/// `isSimpleIdQuery`), for values one key lookup answers exactly.
fn id_hack(meta: &CollectionMeta, q: &Query<'_>) -> Option<Bson> {
    if q.filter_doc.len() != 1 {
        return None;
    }
    let v = match q.filter_doc.get("_id")? {
        Bson::Document(d) if d.keys().next().is_some_and(|k| k.starts_with('$')) => {
            if d.len() != 1 {
                return None;
            }
            d.get("$eq")?
        }
        v => v,
    };
    let exact = !matches!(
        v,
        Bson::Null
            | Bson::Undefined
            | Bson::Array(_)
            | Bson::MinKey
            | Bson::MaxKey
            | Bson::RegularExpression(_)
    );
    // The `_id` table is keyed by bytes: a collated query finds other strings equal,
    // which only the collated `_id` index of a collection of the query's collation
    // (`crate::id_index`) finds by a point read.
    let collated = q.filter.collation().is_some()
        && holds_string(v)
        && !collation::same(
            q.filter.collation().map(|c| &**c),
            crate::id_index::collation(meta).as_deref(),
        );
    (exact && !collated).then(|| v.clone())
}

/// Whether a value is or holds a string (which a collation compares).
pub(crate) fn holds_string(v: &Bson) -> bool {
    match v {
        Bson::String(_) | Bson::Symbol(_) => true,
        Bson::Document(d) => d.values().any(holds_string),
        Bson::Array(a) => a.iter().any(holds_string),
        Bson::JavaScriptCodeWithScope(c) => c.scope.values().any(holds_string),
        _ => false,
    }
}

fn encode_part(v: &Bson, descending: bool, collation: Option<&Collation>, out: &mut Vec<u8>) {
    if descending {
        key::encode_value_collated_desc(v, collation, out);
    } else {
        key::encode_value_collated(v, collation, out);
    }
}

/// The smallest key above every key starting with `prefix` (`None`: there is none).
fn after(prefix: &[u8]) -> Option<Vec<u8>> {
    match prefix_bounds(prefix).1 {
        Bound::Excluded(k) => Some(k),
        _ => None,
    }
}

/// The byte range of keys starting with `prefix` whose next part lies in `iv`.
fn interval_range(
    prefix: &[u8],
    iv: &Interval,
    descending: bool,
    collation: Option<&Collation>,
) -> Option<KeyRange> {
    // A descending part is the bitwise inverse, so the interval's ends swap.
    let ((lo, lo_inc), (hi, hi_inc)) = if descending {
        ((&iv.end, iv.end_inclusive), (&iv.start, iv.start_inclusive))
    } else {
        ((&iv.start, iv.start_inclusive), (&iv.end, iv.end_inclusive))
    };
    let mut low = prefix.to_vec();
    encode_part(lo, descending, collation, &mut low);
    let mut high = prefix.to_vec();
    encode_part(hi, descending, collation, &mut high);
    let start = if lo_inc { low } else { after(&low)? };
    let end = if hi_inc {
        match after(&high) {
            Some(k) => Bound::Excluded(k),
            None => Bound::Unbounded,
        }
    } else {
        Bound::Excluded(high)
    };
    if let Bound::Excluded(e) = &end {
        if start >= *e {
            return None;
        }
    }
    Some((Bound::Included(start), end))
}

/// The key ranges covering the bounds: every combination of the equality values of the
/// leading fields, then the intervals of the first other field; later fields are not
/// narrowed (the filter still applies).
fn byte_ranges(
    fields: &[(String, bool)],
    bounds: &[Option<Vec<Interval>>],
    collation: Option<&Collation>,
) -> Vec<KeyRange> {
    let all = [Interval::all()];
    let mut prefixes: Vec<Vec<u8>> = vec![Vec::new()];
    for ((_, descending), b) in fields.iter().zip(bounds) {
        let intervals: &[Interval] = b.as_deref().unwrap_or(&all);
        let points = intervals.iter().all(Interval::is_point);
        if points && prefixes.len() * intervals.len() <= MAX_RANGES {
            let mut next = Vec::with_capacity(prefixes.len() * intervals.len());
            for p in &prefixes {
                for iv in intervals {
                    let mut k = p.clone();
                    encode_part(&iv.start, *descending, collation, &mut k);
                    next.push(k);
                }
            }
            prefixes = next;
            continue;
        }
        let intervals = if prefixes.len() * intervals.len() > MAX_RANGES {
            &all[..]
        } else {
            intervals
        };
        let mut out: Vec<_> = prefixes
            .iter()
            .flat_map(|p| {
                intervals
                    .iter()
                    .filter_map(|iv| interval_range(p, iv, *descending, collation))
            })
            .collect();
        sort_ranges(&mut out);
        return out;
    }
    let mut out: Vec<_> = prefixes.iter().map(|p| prefix_bounds(p)).collect();
    sort_ranges(&mut out);
    out
}

fn sort_ranges(ranges: &mut [KeyRange]) {
    ranges.sort_by(|a, b| match (&a.0, &b.0) {
        (Bound::Included(x), Bound::Included(y)) => x.cmp(y),
        _ => std::cmp::Ordering::Equal,
    });
}

#[cfg(test)]
mod tests;
