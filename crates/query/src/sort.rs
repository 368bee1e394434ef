//! Sort specifications (`find`'s `sort`, the `$sort` stage) and mongod's sort keys.
//!
//! Parsing follows mongod 7.0's `SortPattern`: each value is a number whose integer
//! part is 1 or -1, or `{$meta: ..}`: `textScore` sorts by the text score (descending) that a
//! `$text` query's plan puts in each document's metadata field
//! ([`crate::meta::TEXT_SCORE`]); the others Eddy refuses honestly (no
//! `$search`, no `randVal`).
//!
//! A document's sort key is what mongod's `SortKeyGenerator` computes: the keys an
//! index on the sort pattern would hold for the document (one per array element,
//! arrays on a path expanded, elements of one array shared by the fields under it),
//! and of those the first in sort order. So an ascending sort on an array uses its
//! smallest element and a descending one its largest; a missing field is `null`; an
//! empty array at the end of a path is `undefined` (below `null`); arrays nested in
//! an array are compared whole. Two different arrays under two sort fields are
//! "parallel arrays", an error mongod raises (2 "cannot sort with keys that are
//! parallel arrays"): [`SortSpec::key`] returns it; [`SortSpec::compare`], which must
//! be total, falls back to taking each field's key alone.

use std::cmp::Ordering;

use bson::{Bson, Document};
use eddy_codes::{ErrorCode, MongoError};

use std::sync::Arc;

use crate::cmp::compare_collated;
use crate::collation::Collation;
use crate::path::array_index;
use crate::projection::field_path;
use crate::util;

/// `$meta` sorts mongod 7.0 accepts that Eddy cannot serve (`textScore` it can).
const KNOWN_META_SORTS: &[&str] = &["randVal", "searchScore", "geoNearDistance"];

/// A parsed sort specification.
#[derive(Debug, Clone)]
pub struct SortSpec {
    /// `(path, ascending)` in specification order.
    fields: Vec<(String, bool)>,
    /// Each field's path, split.
    paths: Vec<Vec<String>>,
    /// Strings order under this collation (`None`: byte order).
    collation: Option<Arc<Collation>>,
}

impl SortSpec {
    /// Parses a `find` sort. An empty specification is valid (no sort).
    pub fn parse(spec: &Document) -> Result<SortSpec, MongoError> {
        let mut fields = Vec::with_capacity(spec.len());
        let mut paths = Vec::with_capacity(spec.len());
        for (name, value) in spec {
            if let Bson::Document(meta) = value {
                if meta.len() == 1 && meta.get_str("$meta").ok() == Some("textScore") {
                    // The text score (descending), which the text plan puts in each
                    // document's metadata field.
                    paths.push(vec![crate::meta::TEXT_SCORE.to_owned()]);
                    fields.push((crate::meta::TEXT_SCORE.to_owned(), false));
                    continue;
                }
                return Err(meta_sort_error(meta));
            }
            if !crate::cmp::is_number(value) {
                return Err(MongoError::location(
                    15974,
                    format!(
                        "Illegal key in $sort specification: {}",
                        util::elem_to_string(name, value)
                    ),
                ));
            }
            let direction = safe_number_long(value);
            if direction != 1 && direction != -1 {
                return Err(MongoError::location(
                    15975,
                    "$sort key ordering must be 1 (for ascending) or -1 (for descending)",
                ));
            }
            paths.push(field_path(name)?);
            fields.push((name.clone(), direction == 1));
        }
        Ok(SortSpec {
            fields,
            paths,
            collation: None,
        })
    }

    /// Parses the specification of a `$sort` stage, which must name a key.
    pub fn parse_stage(spec: &Document) -> Result<SortSpec, MongoError> {
        if spec.is_empty() {
            return Err(MongoError::location(
                15976,
                "$sort stage must have at least one sort key",
            ));
        }
        SortSpec::parse(spec)
    }

    /// Whether the sort orders by `{$meta: "textScore"}`.
    pub fn uses_text_score(&self) -> bool {
        self.fields
            .iter()
            .any(|(f, _)| f == crate::meta::TEXT_SCORE)
    }

    /// `(path, ascending)` pairs in specification order.
    pub fn fields(&self) -> &[(String, bool)] {
        &self.fields
    }

    /// Whether there is nothing to sort by.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The sort key of `doc`: one value per field. Errors on parallel arrays, as
    /// mongod does.
    pub fn key(&self, doc: &Document) -> Result<Vec<Bson>, MongoError> {
        let fields: Vec<(usize, &[String])> = self
            .paths
            .iter()
            .enumerate()
            .map(|(i, p)| (i, p.as_slice()))
            .collect();
        let mut fixed = vec![Bson::Null; self.paths.len()];
        let mut best: Option<Vec<Bson>> = None;
        generate(Some(doc), &fields, &mut fixed, &mut |k| {
            if best
                .as_ref()
                .is_none_or(|b| self.compare_keys(k, b) == Ordering::Less)
            {
                best = Some(k.to_vec());
            }
        })
        .map_err(|Parallel| {
            MongoError::new(
                ErrorCode::BadValue,
                "cannot sort with keys that are parallel arrays",
            )
        })?;
        Ok(best.unwrap_or(fixed))
    }

    /// The same sort with strings ordered by `collation` (`None`: byte order).
    pub fn with_collation(mut self, collation: Option<Arc<Collation>>) -> SortSpec {
        self.collation = collation;
        self
    }

    /// The collation strings sort under (`None`: byte order).
    pub fn collation(&self) -> Option<&Arc<Collation>> {
        self.collation.as_ref()
    }

    /// Whether strings sort under a non-simple collation (an index cannot serve it).
    pub fn is_collated(&self) -> bool {
        self.collation.is_some()
    }

    fn compare_values(&self, a: &Bson, b: &Bson) -> Ordering {
        compare_collated(a, b, self.collation.as_deref())
    }

    /// Compares two keys from [`SortSpec::key`] in sort order.
    pub fn compare_keys(&self, a: &[Bson], b: &[Bson]) -> Ordering {
        self.compare_keys_under(a, b, self.collation.as_deref())
    }

    /// [`SortSpec::compare_keys`] with strings under `collation` (`None`: byte order)
    /// rather than the spec's own: a `sortBy` inside a stage (`$setWindowFields`,
    /// `$top`, ...) orders under the collation of the pipeline it runs in.
    pub fn compare_keys_under(
        &self,
        a: &[Bson],
        b: &[Bson],
        collation: Option<&Collation>,
    ) -> Ordering {
        for (i, (_, ascending)) in self.fields.iter().enumerate() {
            let (Some(x), Some(y)) = (a.get(i), b.get(i)) else {
                break;
            };
            let ord = compare_collated(x, y, collation);
            let ord = if *ascending { ord } else { ord.reverse() };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    }

    /// Compares two documents in sort order; documents with equal keys are `Equal`.
    /// A total order: documents with parallel arrays (which [`SortSpec::key`] refuses)
    /// are keyed field by field instead.
    pub fn compare(&self, a: &Document, b: &Document) -> Ordering {
        self.compare_keys(&self.key_lossy(a), &self.key_lossy(b))
    }

    /// The sort key of `doc` as [`SortSpec::compare`] orders documents: [`SortSpec::key`],
    /// or with parallel arrays each field's own key. Compare keys with
    /// [`SortSpec::compare_keys`].
    pub fn key_total(&self, doc: &Document) -> Vec<Bson> {
        self.key_lossy(doc)
    }

    /// [`SortSpec::key`], or when it fails each field's own key.
    fn key_lossy(&self, doc: &Document) -> Vec<Bson> {
        if let Ok(k) = self.key(doc) {
            return k;
        }
        self.paths
            .iter()
            .zip(&self.fields)
            .map(|(path, (_, ascending))| {
                let mut fixed = vec![Bson::Null];
                let mut best: Option<Bson> = None;
                let single = [(0usize, path.as_slice())];
                // One field cannot meet parallel arrays.
                let _ = generate(Some(doc), &single, &mut fixed, &mut |k| {
                    let better = best.as_ref().is_none_or(|b| {
                        let ord = self.compare_values(&k[0], b);
                        if *ascending {
                            ord == Ordering::Less
                        } else {
                            ord == Ordering::Greater
                        }
                    });
                    if better {
                        best = Some(k[0].clone());
                    }
                });
                best.unwrap_or(Bson::Null)
            })
            .collect()
    }
}

/// Two sort fields reached two different arrays.
struct Parallel;

/// One field's walk that stopped at an array.
struct ArrayHit<'a> {
    field: usize,
    /// The path components consumed to reach the array (its identity in `obj`).
    prefix: &'a [String],
    items: &'a [Bson],
    /// What is left of the path below the array.
    rest: &'a [String],
}

/// Emits every key an index on `fields` would hold for `obj` (mongod's
/// `BtreeKeyGenerator::getKeys`), with `fixed` holding the values found so far.
/// `obj` is `None` below a non-document array element: every field is then null.
fn generate<'a>(
    obj: Option<&'a Document>,
    fields: &[(usize, &'a [String])],
    fixed: &mut [Bson],
    emit: &mut dyn FnMut(&[Bson]),
) -> Result<(), Parallel> {
    let mut hits: Vec<ArrayHit<'a>> = Vec::new();
    for &(field, path) in fields {
        if let Some(hit) = walk(obj, field, path, fixed) {
            if let Some(first) = hits.first() {
                if first.prefix != hit.prefix {
                    return Err(Parallel);
                }
            }
            hits.push(hit);
        }
    }
    let Some(first) = hits.first() else {
        emit(fixed);
        return Ok(());
    };
    let items = first.items;
    let deeper: Vec<(usize, &'a [String])> = hits
        .iter()
        .filter(|h| !h.rest.is_empty())
        .map(|h| (h.field, h.rest))
        .collect();
    if items.is_empty() {
        for h in hits.iter().filter(|h| h.rest.is_empty()) {
            fixed[h.field] = Bson::Undefined;
        }
        return generate(None, &deeper, fixed, emit);
    }
    for item in items {
        for h in hits.iter().filter(|h| h.rest.is_empty()) {
            fixed[h.field] = item.clone();
        }
        let sub = match item {
            Bson::Document(d) => Some(d),
            _ => None,
        };
        generate(sub, &deeper, fixed, emit)?;
    }
    Ok(())
}

/// Follows `path` through documents (and numeric components into arrays) from `obj`,
/// setting `fixed[field]` when it ends at a value or nowhere (null), or returns the
/// array it stopped at.
fn walk<'a>(
    obj: Option<&'a Document>,
    field: usize,
    path: &'a [String],
    fixed: &mut [Bson],
) -> Option<ArrayHit<'a>> {
    let mut cur = obj;
    let mut i = 0;
    loop {
        let found = cur.and_then(|d| d.get(&path[i]));
        let last = i + 1 == path.len();
        match found {
            None => {
                fixed[field] = Bson::Null;
                return None;
            }
            Some(Bson::Array(items)) => {
                // A numeric component names one element: no expansion (`a.0`).
                if let Some(elem) = path
                    .get(i + 1)
                    .and_then(|c| array_index(c))
                    .and_then(|n| items.get(n))
                {
                    let after = i + 2 == path.len();
                    match elem {
                        Bson::Array(inner) => {
                            return Some(ArrayHit {
                                field,
                                prefix: &path[..i + 2],
                                items: inner,
                                rest: &path[i + 2..],
                            });
                        }
                        _ if after => {
                            fixed[field] = elem.clone();
                            return None;
                        }
                        Bson::Document(d) => {
                            cur = Some(d);
                            i += 2;
                            continue;
                        }
                        _ => {
                            fixed[field] = Bson::Null;
                            return None;
                        }
                    }
                }
                return Some(ArrayHit {
                    field,
                    prefix: &path[..=i],
                    items,
                    rest: &path[i + 1..],
                });
            }
            Some(v) if last => {
                fixed[field] = v.clone();
                return None;
            }
            Some(Bson::Document(d)) => {
                cur = Some(d);
                i += 1;
            }
            Some(_) => {
                fixed[field] = Bson::Null;
                return None;
            }
        }
    }
}

/// `{field: {$meta: ..}}`: mongod's shape errors, then an honest refusal.
fn meta_sort_error(meta: &Document) -> MongoError {
    let Some((name, arg)) = meta.iter().next().filter(|(k, _)| k.as_str() == "$meta") else {
        return MongoError::location(
            17312,
            "$meta is the only expression supported by $sort right now",
        );
    };
    if meta.len() != 1 {
        return MongoError::new(
            ErrorCode::FailedToParse,
            "Cannot have additional keys in a $meta sort specification",
        );
    }
    match arg {
        Bson::String(s) if KNOWN_META_SORTS.contains(&s.as_str()) => {
            let why = match s.as_str() {
                "geoNearDistance" => "$near and $geoNear already answer nearest first",
                _ => "Eddy has no $search or random scores",
            };
            MongoError::new(
                ErrorCode::CommandNotSupported,
                format!("sorting by $meta \"{s}\" is not supported: {why}"),
            )
        }
        _ => MongoError::location(
            31138,
            format!("Illegal $meta sort: {}", util::elem_to_string(name, arg)),
        ),
    }
}

/// `BSONElement::safeNumberLong`: truncates toward zero, NaN is 0, out of range saturates.
fn safe_number_long(v: &Bson) -> i64 {
    match v {
        Bson::Int32(i) => i64::from(*i),
        Bson::Int64(i) => *i,
        // `as` truncates toward zero, saturates, and maps NaN to 0.
        _ => util::number_as_f64(v).map_or(0, |d| d as i64),
    }
}

#[cfg(test)]
mod tests;
