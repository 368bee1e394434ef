//! Update-then-match round trips (proptest): whatever an update operator writes, the
//! matcher must then see, and the change-stream `updateDescription` the update engine
//! reports must replay the old document into the new one.
//!
//! Documents are random trees over the field names `a`, `b`, `c` (nested documents up to
//! three levels, scalar leaves and small integer arrays); updates are random single
//! operators on random dotted paths over the same names. An update mongod would refuse
//! (a path through a scalar, `$inc` of a string, ...) is allowed to fail; one that
//! succeeds must satisfy the property of its operator.

use bson::{doc, Bson, Document};
use eddy_query::cmp::{compare, values_equal};
use eddy_query::filter::Filter;
use eddy_query::path::get_path;
use eddy_query::update::{ApplyContext, Update};
use eddy_query::UpdateDescription;
use proptest::prelude::*;

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![Just("a"), Just("b"), Just("c")].prop_map(str::to_owned)
}

fn arb_path() -> impl Strategy<Value = String> {
    prop::collection::vec(arb_key(), 1..=3).prop_map(|k| k.join("."))
}

fn arb_scalar() -> impl Strategy<Value = Bson> {
    prop_oneof![
        (-5i32..5).prop_map(Bson::Int32),
        (-10i32..10).prop_map(|n| Bson::Double(f64::from(n) / 4.0)),
        prop_oneof![Just("x"), Just("y"), Just("")].prop_map(|s| Bson::String(s.to_owned())),
        any::<bool>().prop_map(Bson::Boolean),
        Just(Bson::Null),
    ]
}

fn arb_value() -> impl Strategy<Value = Bson> {
    prop_oneof![
        4 => arb_scalar(),
        1 => prop::collection::vec((-3i32..3).prop_map(Bson::Int32), 0..4).prop_map(Bson::Array),
        1 => prop::collection::btree_map(arb_key(), arb_scalar(), 0..3)
            .prop_map(|m| Bson::Document(m.into_iter().collect())),
    ]
}

fn arb_tree() -> impl Strategy<Value = Bson> {
    arb_value().prop_recursive(3, 24, 3, |inner| {
        prop::collection::btree_map(arb_key(), inner, 0..4)
            .prop_map(|m| Bson::Document(m.into_iter().collect()))
    })
}

fn arb_doc() -> impl Strategy<Value = Document> {
    prop::collection::btree_map(arb_key(), arb_tree(), 0..4).prop_map(|m| {
        let mut d = doc! {"_id": 1};
        d.extend(m);
        d
    })
}

#[derive(Debug, Clone)]
enum Op {
    Set(String, Bson),
    Unset(String),
    Inc(String, i32),
    Mul(String, i32),
    Min(String, Bson),
    Max(String, Bson),
    Push(String, Bson),
    AddToSet(String, Bson),
    Pop(String, bool),
    Pull(String, Bson),
    Rename(String, String),
}

impl Op {
    fn spec(&self) -> Document {
        match self {
            Op::Set(p, v) => doc! {"$set": {p: v.clone()}},
            Op::Unset(p) => doc! {"$unset": {p: ""}},
            Op::Inc(p, n) => doc! {"$inc": {p: *n}},
            Op::Mul(p, n) => doc! {"$mul": {p: *n}},
            Op::Min(p, v) => doc! {"$min": {p: v.clone()}},
            Op::Max(p, v) => doc! {"$max": {p: v.clone()}},
            Op::Push(p, v) => doc! {"$push": {p: v.clone()}},
            Op::AddToSet(p, v) => doc! {"$addToSet": {p: v.clone()}},
            Op::Pop(p, first) => doc! {"$pop": {p: if *first { -1 } else { 1 }}},
            Op::Pull(p, v) => doc! {"$pull": {p: v.clone()}},
            Op::Rename(p, q) => doc! {"$rename": {p: q.clone()}},
        }
    }
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (arb_path(), arb_value()).prop_map(|(p, v)| Op::Set(p, v)),
        arb_path().prop_map(Op::Unset),
        (arb_path(), -3i32..4).prop_map(|(p, n)| Op::Inc(p, n)),
        (arb_path(), -3i32..4).prop_map(|(p, n)| Op::Mul(p, n)),
        (arb_path(), arb_value()).prop_map(|(p, v)| Op::Min(p, v)),
        (arb_path(), arb_value()).prop_map(|(p, v)| Op::Max(p, v)),
        (arb_path(), arb_value()).prop_map(|(p, v)| Op::Push(p, v)),
        (arb_path(), arb_value()).prop_map(|(p, v)| Op::AddToSet(p, v)),
        (arb_path(), any::<bool>()).prop_map(|(p, f)| Op::Pop(p, f)),
        (arb_path(), arb_scalar()).prop_map(|(p, v)| Op::Pull(p, v)),
        (arb_path(), arb_path()).prop_map(|(p, q)| Op::Rename(p, q)),
    ]
}

fn matches(filter: Document, doc: &Document) -> bool {
    Filter::parse(&filter)
        .unwrap_or_else(|e| panic!("filter {filter:?}: {e:?}"))
        .matches(doc)
}

/// The value at a path that crosses no array (the generator puts arrays only at leaves,
/// so a path reaching one stops there or fails).
fn plain_get(doc: &Document, path: &str) -> Option<Bson> {
    get_path(doc, path).cloned()
}

/// Replays an `updateDescription` on the old document as a change-stream consumer
/// would: truncate arrays, then unset the removed fields, then set the updated ones.
fn replay(old: &Document, d: &UpdateDescription) -> Document {
    let mut doc = old.clone();
    let ctx = ApplyContext {
        matched: None,
        is_upsert_insert: false,
        now: bson::DateTime::now(),
    };
    let mut apply = |spec: Document| {
        let update = Update::parse(&Bson::Document(spec.clone()), None)
            .unwrap_or_else(|e| panic!("replay {spec:?}: {e:?}"));
        doc = update
            .apply(&doc, &ctx)
            .unwrap_or_else(|e| panic!("replay {spec:?} on {doc:?}: {e:?}"))
            .doc;
    };
    for (path, size) in &d.truncated_arrays {
        apply(doc! {"$push": {path: {"$each": [], "$slice": i64::from(*size)}}});
    }
    if !d.removed_fields.is_empty() {
        let unset: Document = d
            .removed_fields
            .iter()
            .map(|p| (p.clone(), Bson::String(String::new())))
            .collect();
        apply(doc! {"$unset": unset});
    }
    if !d.updated_fields.is_empty() {
        apply(doc! {"$set": d.updated_fields.clone()});
    }
    doc
}

/// Documents equal up to the order of fields (a replayed `$set` appends new fields in
/// the description's order, which need not be the update tree's).
fn same_fields(a: &Document, b: &Document) -> bool {
    fn norm(v: &Bson) -> Bson {
        match v {
            Bson::Document(d) => {
                let mut fields: Vec<(String, Bson)> =
                    d.iter().map(|(k, v)| (k.clone(), norm(v))).collect();
                fields.sort_by(|x, y| x.0.cmp(&y.0));
                Bson::Document(fields.into_iter().collect())
            }
            Bson::Array(items) => Bson::Array(items.iter().map(norm).collect()),
            other => other.clone(),
        }
    }
    norm(&Bson::Document(a.clone())) == norm(&Bson::Document(b.clone()))
}

fn numeric(v: &Bson) -> Option<f64> {
    match v {
        Bson::Int32(n) => Some(f64::from(*n)),
        Bson::Int64(n) => Some(*n as f64),
        Bson::Double(d) => Some(*d),
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn what_an_update_writes_the_matcher_sees(old in arb_doc(), op in arb_op()) {
        let spec = op.spec();
        let Ok(update) = Update::parse(&Bson::Document(spec.clone()), None) else {
            return Ok(());
        };
        let ctx = ApplyContext { matched: None, is_upsert_insert: false, now: bson::DateTime::now() };
        let Ok(applied) = update.apply(&old, &ctx) else {
            return Ok(());
        };
        let new = &applied.doc;
        match &op {
            Op::Set(p, v) => {
                prop_assert!(matches(doc! {p: {"$eq": v.clone()}}, new), "{:?} -> {:?}", spec, new);
            }
            Op::Unset(p) => {
                prop_assert!(matches(doc! {p: {"$exists": false}}, new), "{:?} -> {:?}", spec, new);
            }
            Op::Inc(p, n) | Op::Mul(p, n) => {
                let before = plain_get(&old, p);
                let start = before.as_ref().map_or(Some(0.0), numeric);
                if let Some(start) = start {
                    let expected = match op {
                        Op::Inc(..) => start + f64::from(*n),
                        _ if before.is_none() => 0.0,
                        _ => start * f64::from(*n),
                    };
                    prop_assert!(
                        matches(doc! {p: {"$eq": expected}}, new),
                        "{:?} on {:?} -> {:?}", spec, old, new
                    );
                }
            }
            Op::Min(p, v) | Op::Max(p, v) => {
                let after = plain_get(new, p);
                prop_assert!(after.is_some(), "{:?} -> {:?}", spec, new);
                let after = after.unwrap_or(Bson::Null);
                let order = compare(&after, v);
                if matches!(op, Op::Min(..)) {
                    prop_assert!(order != std::cmp::Ordering::Greater, "{:?} -> {:?}", spec, new);
                } else {
                    prop_assert!(order != std::cmp::Ordering::Less, "{:?} -> {:?}", spec, new);
                }
                let cmp_op = if matches!(op, Op::Min(..)) { "$lte" } else { "$gte" };
                let path_expr = format!("${p}");
                prop_assert!(
                    matches(doc! {"$expr": {cmp_op: [path_expr, {"$literal": v.clone()}]}}, new),
                    "{:?} -> {:?}", spec, new
                );
            }
            Op::Push(p, v) | Op::AddToSet(p, v) => {
                let before_len = match plain_get(&old, p) {
                    Some(Bson::Array(a)) => a.len(),
                    _ => 0,
                };
                prop_assert!(matches(doc! {p: {"$eq": v.clone()}}, new) || matches(doc! {p: v.clone()}, new),
                    "{:?} on {:?} -> {:?}", spec, old, new);
                let after_len = match plain_get(new, p) {
                    Some(Bson::Array(a)) => a.len(),
                    other => return Err(TestCaseError::fail(format!("{spec:?}: not an array: {other:?}"))),
                };
                if matches!(op, Op::Push(..)) {
                    prop_assert_eq!(after_len, before_len + 1);
                } else {
                    prop_assert!(after_len == before_len || after_len == before_len + 1);
                }
            }
            Op::Pop(p, _) => {
                if let Some(Bson::Array(a)) = plain_get(&old, p) {
                    let size = a.len().saturating_sub(1) as i64;
                    prop_assert!(matches(doc! {p: {"$size": size}}, new), "{:?} -> {:?}", spec, new);
                }
            }
            Op::Pull(p, v) => {
                if let Some(Bson::Array(_)) = plain_get(new, p) {
                    prop_assert!(!matches(doc! {p: {"$eq": v.clone()}}, new), "{:?} -> {:?}", spec, new);
                }
            }
            Op::Rename(p, q) => {
                if let Some(x) = plain_get(&old, p) {
                    prop_assert!(matches(doc! {p: {"$exists": false}}, new), "{:?} -> {:?}", spec, new);
                    let moved = plain_get(new, q);
                    prop_assert!(moved.as_ref().is_some_and(|m| values_equal(m, &x)),
                        "{:?} on {:?} -> {:?}", spec, old, new);
                }
            }
        }
        // The change-stream description replays the old document into the new one.
        let replayed = replay(&old, &applied.description);
        prop_assert!(same_fields(&replayed, new),
            "{:?} on {:?}: description {:?} replays to {:?}, not {:?}",
            spec, old, applied.description, replayed, new);
        // `modified` is exactly "the document's bytes changed" (mongod compares
        // binary values: 0.0 becoming -0.0 is a modification).
        let bytes = |d: &Document| bson::RawDocumentBuf::try_from(d).expect("encodable").into_bytes();
        prop_assert_eq!(applied.modified, bytes(&old) != bytes(new), "{:?} on {:?}", spec, old);
    }

    #[test]
    fn an_upsert_seed_matches_its_query(pairs in prop::collection::btree_map(arb_path(), arb_scalar(), 1..4)) {
        let query: Document = pairs.into_iter().collect();
        let Ok(seed) = eddy_query::update::upsert_seed(&query) else {
            return Ok(());
        };
        let mut with_id = seed.clone();
        if !with_id.contains_key("_id") {
            with_id.insert("_id", 1);
        }
        prop_assert!(matches(query.clone(), &with_id), "{:?} seeds {:?}", query, seed);
    }
}
