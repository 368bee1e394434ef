//! Index bounds: which index keys can hold the documents a query matches (mongod's
//! `IndexBoundsBuilder`), and whether one query implies another (mongod's
//! `expression::isSubsetOf`, which decides when a partial index may serve a query).
//!
//! The planner's rule is that bounds may be wider than exact but never narrower: the
//! engine applies the whole filter to every document it fetches, so a bound only has to
//! contain the key of every document the matcher would accept. Hence the choices here:
//!
//! * comparisons are type-bracketed as in the matcher: `{$gt: 5}` only matches numbers,
//!   so its bounds are `(5, inf.0]`; `{$lt: "m"}` gives `["", "m")`;
//! * anything that can match a missing field or `null` (`{a: null}`, `$lte: null`,
//!   `$in` holding `null`, `$exists`, negations) gives no bounds: an array of
//!   sub-documents some of which lack the field indexes no `null` key for them;
//! * arrays as values (`{a: [1, 2]}`) and `MinKey`/`MaxKey` give no bounds; a regex
//!   gives the strings starting with its literal prefix when it is anchored (`/^ab/`
//!   is `["ab", "ac")`), else all strings, plus the regex value itself;
//! * several predicates on one path are intersected only when the index holds no array
//!   on that path: for `{a: {$gt: 1, $lt: 5}}` an array `[0, 10]` matches (each element
//!   satisfies one predicate) although no element lies in `(1, 5)`, so on a multikey
//!   path one predicate's bounds are used alone, as mongod does;
//! * `$elemMatch` on values (`{a: {$elemMatch: {$gt: 1, $lt: 5}}}`) is one element
//!   satisfying every predicate, so its predicates always intersect.
//!
//! Intervals are kept in ascending value order ([`cmp::compare`]); the engine turns them
//! into byte ranges of the key encoding ([`crate::key`]) and reverses them for
//! descending key fields and backward scans.

use std::cmp::Ordering;

use bson::{Bson, Document};

use crate::cmp::{self, compare, type_bracket};
use crate::filter::{CmpOp, Expr, Filter, Leaf, Node};
use crate::regex::MongoRegex;
use crate::util;

/// One interval of values, `start <= end` in mongod's order.
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    pub start: Bson,
    pub start_inclusive: bool,
    pub end: Bson,
    pub end_inclusive: bool,
}

impl Interval {
    /// `[v, v]`.
    pub fn point(v: Bson) -> Interval {
        Interval {
            start: v.clone(),
            start_inclusive: true,
            end: v,
            end_inclusive: true,
        }
    }

    /// `[MinKey, MaxKey]`: every key.
    pub fn all() -> Interval {
        Interval {
            start: Bson::MinKey,
            start_inclusive: true,
            end: Bson::MaxKey,
            end_inclusive: true,
        }
    }

    /// Whether this is `[v, v]`.
    pub fn is_point(&self) -> bool {
        self.start_inclusive && self.end_inclusive && compare(&self.start, &self.end).is_eq()
    }

    /// Whether this is `[MinKey, MaxKey]`.
    pub fn is_all(&self) -> bool {
        matches!(self.start, Bson::MinKey)
            && matches!(self.end, Bson::MaxKey)
            && self.start_inclusive
            && self.end_inclusive
    }

    /// Whether no value lies inside.
    pub fn is_empty(&self) -> bool {
        match compare(&self.start, &self.end) {
            Ordering::Greater => true,
            Ordering::Equal => !(self.start_inclusive && self.end_inclusive),
            Ordering::Less => false,
        }
    }

    /// Whether `v` lies inside.
    pub fn contains(&self, v: &Bson) -> bool {
        let lo = compare(v, &self.start);
        let hi = compare(v, &self.end);
        (lo.is_gt() || (lo.is_eq() && self.start_inclusive))
            && (hi.is_lt() || (hi.is_eq() && self.end_inclusive))
    }

    /// mongod's `Interval::toString`: `[1, 5)`, `(5, inf.0]`, `["a", {})`. With
    /// `reversed` (a descending key field, or a backward scan of an ascending one) the
    /// interval is shown from its end to its start, as mongod orients bounds along the
    /// scan.
    pub fn to_mongo_string(&self, reversed: bool) -> String {
        let (a, a_inc, b, b_inc) = if reversed {
            (
                &self.end,
                self.end_inclusive,
                &self.start,
                self.start_inclusive,
            )
        } else {
            (
                &self.start,
                self.start_inclusive,
                &self.end,
                self.end_inclusive,
            )
        };
        format!(
            "{}{}, {}{}",
            if a_inc { "[" } else { "(" },
            util::bson_to_string(a),
            util::bson_to_string(b),
            if b_inc { "]" } else { ")" }
        )
    }

    fn intersect(&self, other: &Interval) -> Interval {
        let (start, start_inclusive) = match compare(&self.start, &other.start) {
            Ordering::Less => (other.start.clone(), other.start_inclusive),
            Ordering::Greater => (self.start.clone(), self.start_inclusive),
            Ordering::Equal => (
                self.start.clone(),
                self.start_inclusive && other.start_inclusive,
            ),
        };
        let (end, end_inclusive) = match compare(&self.end, &other.end) {
            Ordering::Less => (self.end.clone(), self.end_inclusive),
            Ordering::Greater => (other.end.clone(), other.end_inclusive),
            Ordering::Equal => (self.end.clone(), self.end_inclusive && other.end_inclusive),
        };
        Interval {
            start,
            start_inclusive,
            end,
            end_inclusive,
        }
    }
}

/// The intersection of two ascending, disjoint interval lists (itself ascending and
/// disjoint).
pub fn intersect(a: &[Interval], b: &[Interval]) -> Vec<Interval> {
    let mut out = Vec::new();
    for x in a {
        for y in b {
            let i = x.intersect(y);
            if !i.is_empty() {
                out.push(i);
            }
        }
    }
    out.sort_by(|x, y| compare(&x.start, &y.start).then(y.start_inclusive.cmp(&x.start_inclusive)));
    out
}

/// The bounds the conjunction of `filter` places on `path`: `None` when it places none
/// an index can use (the whole index must then be scanned on that field). `multikey`
/// says whether the index holds an array anywhere along `path`, which forbids
/// intersecting the bounds of separate predicates (see the module doc).
pub fn path_bounds(filter: &Filter, path: &str, multikey: bool) -> Option<Vec<Interval>> {
    path_bounds_under(filter, path, multikey, false)
}

/// [`path_bounds`] for an index whose collation is the query's (`collated`: a
/// non-simple one): its collated comparisons bound the field as plain ones do (the
/// index holds sort keys, in the collation's order), a regex bounds every string (a
/// literal prefix means nothing in sort-key order), and separate predicates are not
/// intersected (intervals are ordered by bytes, not by the collation).
pub fn path_bounds_under(
    filter: &Filter,
    path: &str,
    multikey: bool,
    collated: bool,
) -> Option<Vec<Interval>> {
    let mut leaves = Vec::new();
    conjunct_leaves(&filter.root, path, &mut leaves);
    let mut lists: Vec<Vec<Interval>> = leaves
        .into_iter()
        .filter_map(|l| leaf_bounds(l, collated))
        .collect();
    if lists.is_empty() {
        return None;
    }
    if multikey || collated {
        // One predicate alone: the most selective kind, equalities before ranges.
        let best = lists
            .iter()
            .position(|l| l.iter().all(Interval::is_point))
            .unwrap_or(0);
        return Some(lists.swap_remove(best));
    }
    let mut acc = lists.remove(0);
    for l in &lists {
        acc = intersect(&acc, l);
    }
    Some(acc)
}

/// The leaves that must all hold for `path`: through `$and` and single-clause `$or`.
fn conjunct_leaves<'a>(e: &'a Expr, path: &str, out: &mut Vec<&'a Leaf>) {
    match e {
        Expr::And(children) => {
            for c in children {
                conjunct_leaves(c, path, out);
            }
        }
        Expr::Or(children) if children.len() == 1 => conjunct_leaves(&children[0], path, out),
        Expr::Path(p, leaf) if p == path => out.push(leaf),
        _ => {}
    }
}

/// The top-level conjuncts of a query (through `$and` and single-clause `$or`).
fn conjuncts<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match e {
        Expr::And(children) => {
            for c in children {
                conjuncts(c, out);
            }
        }
        Expr::Or(children) if children.len() == 1 => conjuncts(&children[0], out),
        other => out.push(other),
    }
}

/// Whether an equality to `v` can be looked up as one index key: not `null` (which
/// also matches missing fields), not an array (which also matches arrays holding it as
/// an element), not MinKey/MaxKey.
fn pointable(v: &Bson) -> bool {
    !matches!(
        v,
        Bson::Null | Bson::Undefined | Bson::Array(_) | Bson::MinKey | Bson::MaxKey
    )
}

fn is_nan(v: &Bson) -> bool {
    matches!(cmp::Num::from_bson(v), Some(cmp::Num::NaN))
}

/// The lowest and highest keys of `v`'s type bracket, as mongod bounds a one-sided
/// comparison; `None` for brackets whose comparisons are not worth an index.
fn bracket(v: &Bson) -> Option<((Bson, bool), (Bson, bool))> {
    use bson::oid::ObjectId;
    Some(match type_bracket(v) {
        10 => (
            (Bson::Double(f64::NEG_INFINITY), true),
            (Bson::Double(f64::INFINITY), true),
        ),
        15 => (
            (Bson::String(String::new()), true),
            (Bson::Document(Document::new()), false),
        ),
        20 => (
            (Bson::Document(Document::new()), true),
            (Bson::Array(Vec::new()), false),
        ),
        30 => (
            (
                Bson::Binary(bson::Binary {
                    subtype: bson::spec::BinarySubtype::Generic,
                    bytes: Vec::new(),
                }),
                true,
            ),
            (Bson::ObjectId(ObjectId::from([0; 12])), false),
        ),
        35 => (
            (Bson::ObjectId(ObjectId::from([0; 12])), true),
            (Bson::ObjectId(ObjectId::from([0xFF; 12])), true),
        ),
        40 => ((Bson::Boolean(false), true), (Bson::Boolean(true), true)),
        45 => (
            (Bson::DateTime(bson::DateTime::from_millis(i64::MIN)), true),
            (Bson::DateTime(bson::DateTime::from_millis(i64::MAX)), true),
        ),
        47 => (
            (
                Bson::Timestamp(bson::Timestamp {
                    time: 0,
                    increment: 0,
                }),
                true,
            ),
            (
                Bson::Timestamp(bson::Timestamp {
                    time: u32::MAX,
                    increment: u32::MAX,
                }),
                true,
            ),
        ),
        _ => return None,
    })
}

/// The bounds of one comparison `op v` within `v`'s bracket.
fn comparison_bounds(op: CmpOp, v: &Bson) -> Option<Vec<Interval>> {
    if op == CmpOp::Eq {
        return pointable(v).then(|| vec![Interval::point(v.clone())]);
    }
    if !pointable(v) || is_nan(v) {
        return None;
    }
    let ((lo, lo_inc), (hi, hi_inc)) = bracket(v)?;
    let i = match op {
        CmpOp::Gt => Interval {
            start: v.clone(),
            start_inclusive: false,
            end: hi,
            end_inclusive: hi_inc,
        },
        CmpOp::Gte => Interval {
            start: v.clone(),
            start_inclusive: true,
            end: hi,
            end_inclusive: hi_inc,
        },
        CmpOp::Lt => Interval {
            start: lo,
            start_inclusive: lo_inc,
            end: v.clone(),
            end_inclusive: false,
        },
        CmpOp::Lte => Interval {
            start: lo,
            start_inclusive: lo_inc,
            end: v.clone(),
            end_inclusive: true,
        },
        CmpOp::Eq => unreachable!("handled above"),
    };
    Some(if i.is_empty() { Vec::new() } else { vec![i] })
}

/// The bounds of one leaf, `None` when it gives none.
fn leaf_bounds(leaf: &Leaf, collated: bool) -> Option<Vec<Interval>> {
    match leaf {
        Leaf::Cmp(op, v) => comparison_bounds(*op, v),
        Leaf::Collated(op, v, _) if collated => comparison_bounds(*op, v),
        Leaf::Regex(r) if collated => {
            // Every string, and the regex value itself (no string to collate in it).
            let mut b = regex_bounds(r);
            b[0] = Interval {
                start: Bson::String(String::new()),
                start_inclusive: true,
                end: Bson::Document(Document::new()),
                end_inclusive: false,
            };
            Some(b)
        }
        Leaf::In(set) => {
            if set.has_null || !set.regexes.is_empty() || !set.values.iter().all(pointable) {
                return None;
            }
            // Sorted and distinct by the parser.
            Some(set.values.iter().cloned().map(Interval::point).collect())
        }
        Leaf::Regex(r) => Some(regex_bounds(r)),
        Leaf::ElemMatchValue(nodes) => {
            // One element satisfies every predicate: their bounds intersect (under a
            // collation, the first bounded one stands alone).
            let mut acc: Option<Vec<Interval>> = None;
            for n in nodes {
                let Node::Leaf(l) = n else { continue };
                if let Some(b) = leaf_bounds(l, collated) {
                    acc = Some(match acc {
                        None => b,
                        Some(_) if collated => continue,
                        Some(a) => intersect(&a, &b),
                    });
                }
            }
            acc
        }
        _ => None,
    }
}

/// Whether every document `query` matches is also matched by `other` (used to decide
/// that a partial index holds every document a query can match). Conservative: `false`
/// whenever it cannot be shown. Each conjunct of `other` must be implied by one
/// conjunct of `query` on the same path, or be textually identical to one of the raw
/// query's top-level conjuncts.
pub fn implies(query_doc: &Document, query: &Filter, other_doc: &Document) -> bool {
    let mut query_leaves = Vec::new();
    conjuncts(&query.root, &mut query_leaves);
    let raw_conjuncts = raw_conjuncts(query_doc);
    other_doc.iter().all(|(k, v)| {
        if raw_conjuncts.iter().any(|(qk, qv)| *qk == k && *qv == v) {
            return true;
        }
        let Ok(part) = Filter::parse(&bson::doc! {k.clone(): v.clone()}) else {
            return false;
        };
        let mut needed = Vec::new();
        conjuncts(&part.root, &mut needed);
        needed.iter().all(|n| match n {
            Expr::AlwaysTrue => true,
            Expr::Path(p, leaf) => query_leaves.iter().any(|q| match q {
                Expr::Path(qp, qleaf) => qp == p && leaf_implies(qleaf, leaf),
                _ => false,
            }),
            _ => false,
        })
    })
}

/// The top-level `(field, value)` pairs of a raw query, through top-level `$and`s.
fn raw_conjuncts(query: &Document) -> Vec<(&String, &Bson)> {
    let mut out = Vec::new();
    for (k, v) in query {
        match (k.as_str(), v) {
            ("$and", Bson::Array(items)) => {
                for item in items {
                    if let Bson::Document(d) = item {
                        out.extend(raw_conjuncts(d));
                    }
                }
            }
            _ => out.push((k, v)),
        }
    }
    out
}

/// The bounds of a regex: the strings starting with its literal prefix when it is
/// anchored (`/^abc/` gives `["abc", "abd")`), else every string; and the regex value
/// itself, which the matcher accepts too.
fn regex_bounds(r: &MongoRegex) -> Vec<Interval> {
    let all_strings = Interval {
        start: Bson::String(String::new()),
        start_inclusive: true,
        end: Bson::Document(Document::new()),
        end_inclusive: false,
    };
    let strings = match simple_prefix(&r.pattern, &r.options) {
        Some(prefix) if !prefix.is_empty() => prefix_interval(&prefix).unwrap_or(all_strings),
        _ => all_strings,
    };
    let mut out = vec![strings];
    // A pattern holding NUL cannot be stored as a BSON regex, so no document holds it.
    if let (Ok(pattern), Ok(options)) =
        (r.pattern.as_str().try_into(), r.options.as_str().try_into())
    {
        out.push(Interval::point(Bson::RegularExpression(bson::Regex {
            pattern,
            options,
        })));
    }
    out
}

/// The literal text every match of `pattern` starts with, when it is anchored at the
/// start of the string (mongod's `simpleRegex`): `^` or `\A`, no alternation, no
/// case-insensitive, multi-line or extended flag. `None` when not anchored.
fn simple_prefix(pattern: &str, options: &str) -> Option<String> {
    if options.contains(['i', 'm', 'x']) || pattern.contains('|') {
        return None;
    }
    let rest = pattern
        .strip_prefix('^')
        .or_else(|| pattern.strip_prefix("\\A"))?;
    let mut prefix = String::new();
    for c in rest.chars() {
        if "\\^$.[]|()?*+{}".contains(c) {
            // A quantifier makes the character before it optional.
            if matches!(c, '?' | '*' | '{') {
                prefix.pop();
            }
            break;
        }
        prefix.push(c);
    }
    Some(prefix)
}

/// `[prefix, successor)`: every string starting with `prefix` (UTF-8 orders bytewise
/// as code points, so the prefix with its last character incremented bounds them).
fn prefix_interval(prefix: &str) -> Option<Interval> {
    let mut chars: Vec<char> = prefix.chars().collect();
    loop {
        let last = chars.pop()?;
        let next = (u32::from(last) + 1..=0x10FFFF).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            break;
        }
    }
    Some(Interval {
        start: Bson::String(prefix.to_owned()),
        start_inclusive: true,
        end: Bson::String(chars.into_iter().collect()),
        end_inclusive: false,
    })
}

/// Whether a value satisfying comparison `q` of the query on some path is guaranteed to
/// satisfy `p` on the same path (both existential over the path's values).
fn leaf_implies(q: &Leaf, p: &Leaf) -> bool {
    // Values with special semantics are compared only for identical predicates.
    let plain = |v: &Bson| pointable(v) && !is_nan(v) && !matches!(v, Bson::RegularExpression(_));
    match (q, p) {
        (_, Leaf::Exists) => match q {
            Leaf::Cmp(_, v) => plain(v),
            Leaf::In(set) => !set.has_null && set.values.iter().all(plain),
            Leaf::Exists | Leaf::Regex(_) | Leaf::Size(_) => true,
            Leaf::ElemMatchObject(_) | Leaf::ElemMatchValue(_) => true,
            _ => false,
        },
        (Leaf::Cmp(CmpOp::Eq, v), Leaf::Cmp(op, w)) if plain(v) && plain(w) => {
            crate::filter::cmp_matches(*op, Some(v), w)
        }
        (Leaf::Cmp(CmpOp::Eq, v), Leaf::In(set)) if plain(v) => {
            set.values.iter().any(|w| plain(w) && compare(v, w).is_eq())
        }
        (Leaf::In(set), _) if !set.has_null && set.regexes.is_empty() => {
            !set.values.is_empty()
                && set
                    .values
                    .iter()
                    .all(|v| leaf_implies(&Leaf::Cmp(CmpOp::Eq, v.clone()), p))
        }
        (Leaf::Cmp(qop, v), Leaf::Cmp(pop, w))
            if plain(v) && plain(w) && type_bracket(v) == type_bracket(w) =>
        {
            let o = compare(v, w);
            match (qop, pop) {
                // x > v (or >= v) with v >= w gives x > w only when one side is strict.
                (CmpOp::Gt, CmpOp::Gt | CmpOp::Gte) => o.is_ge(),
                (CmpOp::Gte, CmpOp::Gt) => o.is_gt(),
                (CmpOp::Gte, CmpOp::Gte) => o.is_ge(),
                (CmpOp::Lt, CmpOp::Lt | CmpOp::Lte) => o.is_le(),
                (CmpOp::Lte, CmpOp::Lt) => o.is_lt(),
                (CmpOp::Lte, CmpOp::Lte) => o.is_le(),
                _ => false,
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
