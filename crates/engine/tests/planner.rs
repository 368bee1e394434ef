//! The planner's correctness property: whatever plan serves a query (the planner's own
//! choice, or any index forced by a hint), it returns exactly what a full collection
//! scan, the matcher and an in-memory sort return. Random small collections hold
//! numbers, strings, null, missing fields, arrays (multikey), sub-documents, regexes
//! and NaN; random queries combine equalities, ranges, `$in`, `$elemMatch`, regexes,
//! negations, sorts and limits; indexes (ascending, descending, compound, sparse, partial,
//! wildcard, compound wildcard, wildcard under a collation) are created
//! before and after the documents, and some documents are updated afterwards, so both
//! ways of learning that an index is multikey are exercised.

use std::sync::Arc;

use bson::{doc, Bson, Document};
use eddy_engine::plan::Query;
use eddy_engine::read::{id_key, Matched};
use eddy_engine::{Engine, EngineOptions, Namespace, UpdateOp};
use eddy_query::filter::Filter;
use eddy_query::sort::SortSpec;
use proptest::prelude::*;

fn ns() -> Namespace {
    Namespace::new("db", "c")
}

/// A scalar from a small domain, so that queries hit documents often.
fn scalar() -> impl Strategy<Value = Bson> {
    prop_oneof![
        4 => (-2i32..4).prop_map(Bson::Int32),
        1 => (-2i64..4).prop_map(Bson::Int64),
        2 => prop_oneof![Just(1.5), Just(2.0), Just(-0.5), Just(f64::INFINITY)].prop_map(Bson::Double),
        1 => Just(Bson::Double(f64::NAN)),
        3 => prop_oneof![Just(""), Just("a"), Just("b"), Just("ab"), Just("A"), Just("Ab")].prop_map(|s| Bson::String(s.into())),
        1 => Just(Bson::Null),
        1 => any::<bool>().prop_map(Bson::Boolean),
        1 => (0i32..2).prop_map(|x| Bson::Document(doc! {"x": x})),
    ]
}

/// A scalar stored in a document: also regex values, which queries cannot compare to.
fn stored_scalar() -> impl Strategy<Value = Bson> {
    prop_oneof![
        12 => scalar(),
        1 => prop_oneof![Just("^a"), Just("b")].prop_map(|p| Bson::RegularExpression(bson::Regex {
            pattern: p.try_into().expect("cstr"),
            options: "".try_into().expect("cstr"),
        })),
    ]
}

/// A field value: a scalar, or (when arrays are allowed) an array of scalars, maybe
/// nested or of sub-documents.
fn value(arrays: bool) -> BoxedStrategy<Bson> {
    if !arrays {
        return stored_scalar().boxed();
    }
    prop_oneof![
        5 => stored_scalar(),
        2 => prop::collection::vec(stored_scalar(), 0..4).prop_map(Bson::Array),
        1 => prop::collection::vec(stored_scalar(), 0..3)
            .prop_map(|v| Bson::Array(vec![Bson::Array(v), Bson::Int32(1)])),
    ]
    .boxed()
}

/// `c` is a sub-document `{d: v}`, an array of them, or a scalar.
fn c_value(arrays: bool) -> BoxedStrategy<Bson> {
    let sub = scalar().prop_map(|d| Bson::Document(doc! {"d": d}));
    if !arrays {
        return prop_oneof![3 => sub, 1 => scalar(), 1 => Just(Bson::Document(doc! {}))].boxed();
    }
    prop_oneof![
        3 => sub,
        1 => scalar(),
        2 => prop::collection::vec(
            prop_oneof![scalar().prop_map(|d| Bson::Document(doc! {"d": d})), scalar()],
            0..3
        )
        .prop_map(Bson::Array),
    ]
    .boxed()
}

/// A document without parallel arrays on the compound keys used here: `a` is never an
/// array together with `b` or `c`.
fn document(arrays: bool) -> impl Strategy<Value = Document> {
    (
        prop::option::weighted(0.85, value(arrays)),
        prop::option::weighted(0.85, value(arrays)),
        prop::option::weighted(0.6, c_value(arrays)),
    )
        .prop_map(|(a, b, c)| {
            let mut d = Document::new();
            let both_arrays = matches!((&a, &b), (Some(Bson::Array(_)), Some(Bson::Array(_))));
            if let Some(a) = a {
                d.insert("a", a);
            }
            if let Some(b) = b {
                if both_arrays {
                    d.insert("b", Bson::Int32(0));
                } else {
                    d.insert("b", b);
                }
            }
            if let Some(c) = c {
                // `{c.d: -1, a: 1}` would meet parallel arrays.
                if matches!((d.get("a"), &c), (Some(Bson::Array(_)), Bson::Array(_))) {
                    d.insert("c", doc! {"d": 0});
                } else {
                    d.insert("c", c);
                }
            }
            d
        })
}

/// One predicate on a path.
fn predicate() -> impl Strategy<Value = Bson> {
    let cmp = prop_oneof![
        Just("$eq"),
        Just("$gt"),
        Just("$gte"),
        Just("$lt"),
        Just("$lte")
    ];
    prop_oneof![
        4 => scalar(),
        4 => (cmp.clone(), scalar()).prop_map(|(op, v)| Bson::Document(doc! {op: v})),
        3 => (
            prop_oneof![Just("$gt"), Just("$gte")],
            scalar(),
            prop_oneof![Just("$lt"), Just("$lte")],
            scalar()
        )
            .prop_map(|(lo, a, hi, b)| Bson::Document(doc! {lo: a, hi: b})),
        2 => prop::collection::vec(scalar(), 0..4).prop_map(|v| Bson::Document(doc! {"$in": v})),
        1 => (cmp, scalar(), prop_oneof![Just("$lt"), Just("$gte")], scalar())
            .prop_map(|(o1, a, o2, b)| Bson::Document(doc! {"$elemMatch": {o1: a, o2: b}})),
        1 => scalar().prop_map(|v| Bson::Document(doc! {"$ne": v})),
        1 => any::<bool>().prop_map(|e| Bson::Document(doc! {"$exists": e})),
        1 => prop::collection::vec(scalar(), 1..3).prop_map(|v| Bson::Document(doc! {"$all": v})),
        1 => prop::collection::vec(scalar(), 0..2).prop_map(Bson::Array),
        2 => (
            prop_oneof![Just("^a"), Just("^ab"), Just("b"), Just("^"), Just("^a|b"), Just("^ab?"), Just("\\Aa")],
            prop_oneof![Just(""), Just("i"), Just("m")]
        )
            .prop_map(|(p, o)| Bson::Document(doc! {"$regex": p, "$options": o})),
    ]
}

fn path() -> impl Strategy<Value = &'static str> {
    prop_oneof![4 => Just("a"), 3 => Just("b"), 2 => Just("c.d"), 1 => Just("_id")]
}

/// A filter: a conjunction of predicates, sometimes two on one path through `$and`.
fn filter() -> impl Strategy<Value = Document> {
    prop::collection::vec((path(), predicate()), 0..3).prop_map(|preds| {
        let mut d = Document::new();
        let mut and = Vec::new();
        for (p, v) in preds {
            if d.contains_key(p) {
                and.push(Bson::Document(doc! {p: v}));
            } else {
                d.insert(p, v);
            }
        }
        if !and.is_empty() {
            d.insert("$and", and);
        }
        d
    })
}

fn sort() -> impl Strategy<Value = Option<Document>> {
    prop::option::weighted(
        0.6,
        prop_oneof![
            Just(doc! {"a": 1}),
            Just(doc! {"a": -1}),
            Just(doc! {"b": 1}),
            Just(doc! {"a": 1, "b": 1}),
            Just(doc! {"a": 1, "b": -1}),
            Just(doc! {"a": -1, "b": 1}),
            Just(doc! {"b": -1, "a": 1}),
            Just(doc! {"c.d": 1}),
            Just(doc! {"_id": -1}),
        ],
    )
}

/// Index specs with distinct key patterns (Eddy, like mongod, refuses two indexes on
/// one pattern).
fn index_specs() -> impl Strategy<Value = Vec<Document>> {
    let pool = vec![
        doc! {"key": {"a": 1}, "name": "a_1"},
        doc! {"key": {"a": -1}, "name": "a_-1", "sparse": true},
        doc! {"key": {"b": 1}, "name": "b_1", "partialFilterExpression": {"b": {"$gt": 0}}},
        doc! {"key": {"b": -1}, "name": "b_-1"},
        doc! {"key": {"a": 1, "b": 1}, "name": "a_1_b_1"},
        doc! {"key": {"a": 1, "b": -1}, "name": "a_1_b_-1"},
        doc! {"key": {"b": -1, "a": 1}, "name": "b_-1_a_1"},
        doc! {"key": {"c.d": 1}, "name": "c.d_1"},
        doc! {"key": {"c.d": -1, "a": 1}, "name": "c.d_-1_a_1"},
        doc! {"key": {"$**": 1}, "name": "$**_1"},
        doc! {"key": {"c.$**": -1}, "name": "c.$**_-1"},
        // Compound wildcard indexes (their regular fields never hold arrays: `_id`).
        doc! {"key": {"_id": 1, "c.$**": 1}, "name": "_id_1_c.$**_1"},
        doc! {"key": {"$**": -1, "_id": 1}, "name": "$**_-1__id_1", "wildcardProjection": {"a": 1, "c": 1}},
        doc! {"key": {"$**": 1}, "name": "$**_ci", "collation": {"locale": "en", "strength": 2}},
        // Same key patterns under a case-insensitive collation (the queries' own, or not).
        doc! {"key": {"a": 1}, "name": "a_ci", "collation": {"locale": "en", "strength": 2}},
        doc! {"key": {"b": -1, "a": 1}, "name": "b_a_ci", "collation": {"locale": "en", "strength": 2}},
    ];
    prop::sample::subsequence(pool, 0..=14).prop_shuffle()
}

#[derive(Debug, Clone)]
struct Case {
    docs: Vec<Document>,
    /// How many of the indexes exist before the documents are inserted.
    early: usize,
    indexes: Vec<Document>,
    /// `(document number, new a)`: updates after the indexes exist.
    updates: Vec<(usize, Bson)>,
    queries: Vec<(Document, Option<Document>, Option<usize>)>,
    /// The queries run under `{locale: "en", strength: 2}` (else simple).
    collated: bool,
}

fn case() -> impl Strategy<Value = Case> {
    any::<bool>().prop_flat_map(|arrays| {
        (
            prop::collection::vec(document(arrays), 0..25),
            0usize..10,
            index_specs(),
            prop::collection::vec((0usize..25, value(arrays)), 0..3),
            prop::collection::vec(
                (filter(), sort(), prop::option::weighted(0.4, 1usize..6)),
                1..8,
            ),
            any::<bool>(),
        )
            .prop_map(|(docs, early, indexes, updates, queries, collated)| Case {
                docs,
                early,
                indexes,
                updates,
                queries,
                collated,
            })
    })
}

/// What a full scan, the matcher and a stable in-memory sort return (ties in `_id`
/// order, as every plan returns them).
fn reference(
    all: &[Document],
    filter: &Filter,
    sort: Option<&SortSpec>,
    limit: Option<usize>,
) -> Vec<Document> {
    let mut out: Vec<Document> = all.iter().filter(|d| filter.matches(d)).cloned().collect();
    if let Some(sort) = sort {
        out.sort_by(|x, y| sort.compare(x, y));
    }
    if let Some(l) = limit {
        out.truncate(l);
    }
    out
}

fn ids(docs: &[Matched]) -> Vec<Bson> {
    docs.iter()
        .map(|m| m.doc.get("_id").cloned().unwrap_or(Bson::Null))
        .collect()
}

fn sorted_ids(mut v: Vec<Bson>) -> Vec<Bson> {
    v.sort_by_key(id_key);
    v
}

fn check(case: Case) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine: Arc<Engine> = Engine::open(EngineOptions::new(dir.path())).expect("open");
    let early = case.early.min(case.indexes.len());
    engine
        .create_collection(ns(), Document::new())
        .expect("create");
    if early > 0 {
        engine
            .create_indexes(ns(), case.indexes[..early].to_vec())
            .expect("early indexes");
    }
    let docs: Vec<Document> = case
        .docs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut with_id = doc! {"_id": i as i32};
            with_id.extend(d.clone());
            with_id
        })
        .collect();
    if !docs.is_empty() {
        let out = engine.insert(ns(), docs.clone(), false).expect("insert");
        prop_assert!(out.errors.is_empty(), "insert errors {:?}", out.errors);
    }
    if early < case.indexes.len() {
        engine
            .create_indexes(ns(), case.indexes[early..].to_vec())
            .expect("late indexes");
    }
    let updates: Vec<UpdateOp> = case
        .updates
        .iter()
        .map(|(i, a)| UpdateOp {
            filter: doc! {"_id": *i as i32},
            update: Bson::Document(doc! {"$set": {"a": a.clone(), "b": 1, "c": {"d": 1}}}),
            ..UpdateOp::default()
        })
        .collect();
    if !updates.is_empty() {
        let out = engine.update(ns(), updates, true).expect("update");
        prop_assert!(out.errors.is_empty(), "update errors {:?}", out.errors);
    }
    let r = engine.reader().expect("reader");
    let meta = r.collection(&ns()).expect("catalog").expect("collection");
    let all: Vec<Document> = r
        .scan(&meta)
        .expect("scan")
        .map(|d| d.expect("doc"))
        .collect();
    // Which indexes hold every document, so that a hint on them is complete (a wildcard
    // index holds only the paths a document has).
    let complete: Vec<String> = std::iter::once("_id_".to_owned())
        .chain(
            meta.indexes
                .iter()
                .filter(|i| {
                    !i.sparse()
                        && i.partial_filter().is_none()
                        && eddy_engine::wildcard::wildcard_field(i).is_none()
                })
                .map(|i| i.name().to_owned()),
        )
        .collect();
    let collation = case.collated.then(|| {
        eddy_query::collation::Collation::parse(&doc! {"locale": "en", "strength": 2})
            .expect("valid")
            .expect("not simple")
    });
    for (filter_doc, sort_doc, limit) in &case.queries {
        let filter = Filter::parse_collated(filter_doc, &[], collation.as_ref()).expect("filter");
        let sort = sort_doc.as_ref().map(|s| {
            SortSpec::parse(s)
                .expect("sort")
                .with_collation(collation.clone())
        });
        let want = reference(&all, &filter, sort.as_ref(), *limit);
        let want_ids: Vec<Bson> = want
            .iter()
            .map(|d| d.get("_id").cloned().unwrap_or(Bson::Null))
            .collect();
        let everything = reference(&all, &filter, None, None);
        let every_id: Vec<Bson> = sorted_ids(
            everything
                .iter()
                .map(|d| d.get("_id").cloned().unwrap_or(Bson::Null))
                .collect(),
        );
        let hints: Vec<Option<Bson>> = std::iter::once(None)
            .chain(complete.iter().map(|n| Some(Bson::String(n.clone()))))
            .chain(std::iter::once(Some(Bson::Document(doc! {"$natural": -1}))))
            .collect();
        for hint in &hints {
            let mut q = Query::new(filter_doc, &filter);
            q.sort = sort.as_ref();
            q.hint = hint.as_ref();
            let got = r.query(&meta, &q, *limit).expect("execute");
            let got_ids = ids(&got.docs);
            let context = || {
                format!(
                    "filter {filter_doc:?} sort {sort_doc:?} limit {limit:?} hint {hint:?}\nplan {:?}\nindexes {:?}",
                    got.plan.access,
                    meta.indexes.iter().map(|i| (i.name(), i.multikey_paths.clone())).collect::<Vec<_>>()
                )
            };
            if sort.is_some() {
                prop_assert_eq!(&got_ids, &want_ids, "{}", context());
            } else if limit.is_some() {
                // Without a sort any `limit` matches will do, in plan order.
                prop_assert_eq!(got_ids.len(), want_ids.len(), "{}", context());
                for id in &got_ids {
                    prop_assert!(every_id.contains(id), "{} returned {:?}", context(), id);
                }
                let distinct = sorted_ids(got_ids.clone());
                let mut dedup = distinct.clone();
                dedup.dedup();
                prop_assert_eq!(distinct, dedup, "{}", context());
            } else {
                prop_assert_eq!(sorted_ids(got_ids), every_id.clone(), "{}", context());
            }
        }
    }
    Ok(())
}

proptest! {
    // PROPTEST_CASES=5000 for a longer run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]
    #[test]
    fn every_plan_returns_what_a_full_scan_returns(c in case()) {
        check(c)?;
    }
}

/// A few hand-picked shapes the random cases may rarely hit.
#[test]
fn multikey_ranges_and_sorts() {
    let case = Case {
        docs: vec![
            doc! {"a": [0, 10]},
            doc! {"a": 3},
            doc! {"a": [2, 4], "b": "x"},
            doc! {"a": []},
            doc! {"c": [{"d": 1}, {"e": 2}]},
            doc! {"a": [[1, 2]], "b": 5},
            doc! {"a": "ab", "c": {"d": [1, 3]}},
        ],
        early: 2,
        indexes: vec![
            doc! {"key": {"a": 1}, "name": "a_1"},
            doc! {"key": {"a": -1, "b": 1}, "name": "a_-1_b_1"},
            doc! {"key": {"c.d": 1}, "name": "c.d_1"},
        ],
        updates: vec![(1, Bson::Array(vec![Bson::Int32(7), Bson::Int32(-1)]))],
        queries: vec![
            (doc! {"a": {"$gt": 1, "$lt": 5}}, None, None),
            (doc! {"a": {"$elemMatch": {"$gt": 1, "$lt": 5}}}, None, None),
            (doc! {"a": {"$gt": 1}}, Some(doc! {"a": 1}), Some(2)),
            (doc! {"a": {"$gte": 0}}, Some(doc! {"a": -1, "b": 1}), None),
            (doc! {"c.d": {"$gte": 1}}, Some(doc! {"c.d": 1}), None),
            (doc! {"c.d": null}, None, None),
            (doc! {"a": {"$all": [2, 4]}}, None, None),
            (doc! {}, Some(doc! {"a": 1}), Some(3)),
        ],
        collated: false,
    };
    check(case).expect("property holds");
}

/// Sorts in memory with a small limit keep only the best documents as they go; many
/// equal keys make the cut between kept and dropped ones fall inside runs of ties.
#[test]
fn in_memory_sorts_with_small_limits() {
    let mut x: u64 = 7;
    let mut next = move |m: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    let docs: Vec<Document> = (0..400)
        .map(|_| {
            let b = match next(4) {
                0 => Bson::Int32(next(5) as i32),
                1 => Bson::String(format!("s{}", next(3))),
                2 => Bson::Array(vec![
                    Bson::Int32(next(5) as i32),
                    Bson::Int32(next(5) as i32),
                ]),
                _ => Bson::Null,
            };
            doc! {"a": next(3) as i32, "b": b}
        })
        .collect();
    let mut queries = Vec::new();
    for limit in [1, 3, 7, 40] {
        for sort in [
            doc! {"b": 1},
            doc! {"b": -1, "a": 1},
            doc! {"a": -1, "b": 1},
        ] {
            queries.push((doc! {}, Some(sort.clone()), Some(limit)));
            queries.push((doc! {"a": {"$gte": 1}}, Some(sort), Some(limit)));
        }
    }
    let case = Case {
        docs,
        early: 0,
        indexes: vec![doc! {"key": {"a": 1}, "name": "a_1"}],
        updates: vec![],
        queries,
        collated: false,
    };
    check(case).expect("property holds");
}
