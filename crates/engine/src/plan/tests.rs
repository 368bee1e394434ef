use super::*;
use crate::catalog::{self, Namespace};
use bson::doc;

fn index(id: u64, spec: Document, multikey_paths: Option<Vec<Vec<usize>>>) -> IndexMeta {
    IndexMeta {
        id,
        spec,
        multikey_paths,
    }
}

/// A collection with: a_1; b_1_c_-1 (compound, descending c); tags_1 (multikey);
/// s_1 (sparse); p_1 (partial on {p: {$gt: 0}}); h_1 (hidden); u_1 (unique).
fn meta() -> CollectionMeta {
    CollectionMeta {
        ns: Namespace::new("d", "c"),
        id: 1,
        uuid: catalog::new_uuid(),
        options: Document::new(),
        indexes: vec![
            index(
                2,
                doc! {"v": 2, "key": {"a": 1}, "name": "a_1"},
                Some(vec![vec![]]),
            ),
            index(
                3,
                doc! {"v": 2, "key": {"b": 1, "c": -1}, "name": "b_1_c_-1"},
                Some(vec![vec![], vec![]]),
            ),
            index(
                4,
                doc! {"v": 2, "key": {"tags": 1}, "name": "tags_1"},
                Some(vec![vec![0]]),
            ),
            index(
                5,
                doc! {"v": 2, "key": {"s": 1}, "name": "s_1", "sparse": true},
                Some(vec![vec![]]),
            ),
            index(
                6,
                doc! {"v": 2, "key": {"p": 1}, "name": "p_1", "partialFilterExpression": {"p": {"$gt": 0}}},
                Some(vec![vec![]]),
            ),
            index(
                7,
                doc! {"v": 2, "key": {"h": 1}, "name": "h_1", "hidden": true},
                Some(vec![vec![]]),
            ),
            index(
                8,
                doc! {"v": 2, "key": {"u": 1}, "name": "u_1", "unique": true},
                Some(vec![vec![]]),
            ),
            // Written before multikey tracking: every field may be multikey.
            index(9, doc! {"v": 2, "key": {"old": 1}, "name": "old_1"}, None),
        ],
    }
}

/// What a plan looks like in a test table: the access and, for index scans, the
/// index, direction and explain bounds; and whether it yields the sort's order.
fn describe(plan: &Plan) -> String {
    let access = match &plan.access {
        Access::CollScan(d) => format!("COLLSCAN {}", d.name()),
        Access::IdHack(v) => format!("IDHACK {v}"),
        Access::Text(s) => format!("TEXT {} {:?}", s.name, s.search.terms_for_bounds),
        Access::IndexScan(s) => {
            let bounds: Vec<String> = s
                .explain_bounds()
                .iter()
                .map(|(k, v)| {
                    let shown: Vec<&str> = v
                        .as_array()
                        .map(|a| a.iter().filter_map(Bson::as_str).collect())
                        .unwrap_or_default();
                    format!("{k}: {}", shown.join(" | "))
                })
                .collect();
            format!(
                "IXSCAN {} {} {}",
                s.name,
                s.direction.name(),
                bounds.join(" ")
            )
        }
    };
    if plan.sorted {
        access
    } else {
        format!("{access} +SORT")
    }
}

fn plan_for(
    filter: Document,
    sort: Option<Document>,
    hint: Option<Bson>,
) -> Result<Plan, MongoError> {
    let m = meta();
    let f = Filter::parse(&filter).expect("filter");
    let sort = sort.map(|s| SortSpec::parse(&s).expect("sort"));
    let mut q = Query::new(&filter, &f);
    q.sort = sort.as_ref();
    q.hint = hint.as_ref();
    plan(&m, &q)
}

#[test]
fn plans_follow_the_filter_sort_and_hint() {
    let cases: Vec<(Document, Option<Document>, Option<Bson>, &str)> = vec![
        (doc! {}, None, None, "COLLSCAN forward"),
        (doc! {}, Some(doc! {"z": 1}), None, "COLLSCAN forward +SORT"),
        (doc! {"_id": 5}, None, None, "IDHACK 5"),
        (doc! {"_id": {"$eq": "x"}}, None, None, "IDHACK \"x\""),
        (
            doc! {"_id": {"$in": [2, 1]}},
            None,
            None,
            "IXSCAN _id_ forward _id: [1, 1] | [2, 2]",
        ),
        (
            doc! {"_id": {"$gt": 5}},
            None,
            None,
            "IXSCAN _id_ forward _id: (5, inf.0]",
        ),
        (
            doc! {"_id": 5, "a": 1},
            None,
            None,
            "IXSCAN _id_ forward _id: [5, 5]",
        ),
        (doc! {"a": 5}, None, None, "IXSCAN a_1 forward a: [5, 5]"),
        (
            doc! {"a": {"$gt": 1, "$lt": 5}},
            None,
            None,
            "IXSCAN a_1 forward a: (1, 5)",
        ),
        (
            doc! {"a": {"$lt": "m"}},
            None,
            None,
            "IXSCAN a_1 forward a: [\"\", \"m\")",
        ),
        (doc! {"a": null}, None, None, "COLLSCAN forward"),
        (doc! {"a": {"$ne": 1}}, None, None, "COLLSCAN forward"),
        (
            doc! {"$or": [{"a": 1}, {"a": 2}]},
            None,
            None,
            "COLLSCAN forward",
        ),
        // Index order serves the sort, forward or backward, after an equality prefix.
        (
            doc! {},
            Some(doc! {"a": 1}),
            None,
            "IXSCAN a_1 forward a: [MinKey, MaxKey]",
        ),
        (
            doc! {},
            Some(doc! {"a": -1}),
            None,
            "IXSCAN a_1 backward a: [MaxKey, MinKey]",
        ),
        (
            doc! {"a": {"$gte": 3}},
            Some(doc! {"a": -1}),
            None,
            "IXSCAN a_1 backward a: [inf.0, 3]",
        ),
        (
            doc! {"a": {"$in": [1, 2]}},
            Some(doc! {"a": 1}),
            None,
            "IXSCAN a_1 forward a: [1, 1] | [2, 2]",
        ),
        (
            doc! {"b": 1},
            Some(doc! {"c": -1}),
            None,
            "IXSCAN b_1_c_-1 forward b: [1, 1] c: [MaxKey, MinKey]",
        ),
        (
            doc! {"b": 1},
            Some(doc! {"c": 1}),
            None,
            "IXSCAN b_1_c_-1 backward b: [1, 1] c: [MinKey, MaxKey]",
        ),
        (
            doc! {"b": 1, "c": {"$gt": 5}},
            Some(doc! {"b": 1, "c": -1}),
            None,
            "IXSCAN b_1_c_-1 forward b: [1, 1] c: [inf.0, 5)",
        ),
        (
            doc! {"b": {"$in": [1, 2]}},
            Some(doc! {"c": 1}),
            None,
            "IXSCAN b_1_c_-1 forward b: [1, 1] | [2, 2] c: [MaxKey, MinKey] +SORT",
        ),
        (
            doc! {},
            Some(doc! {"b": 1, "c": 1}),
            None,
            "COLLSCAN forward +SORT",
        ),
        (
            doc! {},
            Some(doc! {"b": -1, "c": 1}),
            None,
            "IXSCAN b_1_c_-1 backward b: [MaxKey, MinKey] c: [MinKey, MaxKey]",
        ),
        (doc! {"c": 5}, None, None, "COLLSCAN forward"),
        // Equalities on more fields win; then a range; then the sort.
        (
            doc! {"a": 1, "b": 2, "c": 3},
            None,
            None,
            "IXSCAN b_1_c_-1 forward b: [2, 2] c: [3, 3]",
        ),
        (
            doc! {"a": {"$gt": 1}, "b": 2},
            None,
            None,
            "IXSCAN b_1_c_-1 forward b: [2, 2] c: [MaxKey, MinKey]",
        ),
        (
            doc! {"a": {"$gt": 1}},
            Some(doc! {"b": 1}),
            None,
            "IXSCAN a_1 forward a: (1, inf.0] +SORT",
        ),
        (
            doc! {"u": 1, "a": 1},
            None,
            None,
            "IXSCAN u_1 forward u: [1, 1]",
        ),
        // Multikey: bounds of one predicate, never the index's order.
        (
            doc! {"tags": {"$gt": 1, "$lt": 5}},
            None,
            None,
            "IXSCAN tags_1 forward tags: (1, inf.0]",
        ),
        (
            doc! {"tags": {"$elemMatch": {"$gt": 1, "$lt": 5}}},
            None,
            None,
            "IXSCAN tags_1 forward tags: (1, 5)",
        ),
        (
            doc! {},
            Some(doc! {"tags": 1}),
            None,
            "COLLSCAN forward +SORT",
        ),
        (
            doc! {"tags": 3},
            Some(doc! {"tags": 1}),
            None,
            "IXSCAN tags_1 forward tags: [3, 3] +SORT",
        ),
        (
            doc! {"old": {"$gt": 1, "$lt": 5}},
            None,
            None,
            "IXSCAN old_1 forward old: (1, inf.0]",
        ),
        (
            doc! {},
            Some(doc! {"old": 1}),
            None,
            "COLLSCAN forward +SORT",
        ),
        // Sparse only when bounded, partial only when implied, hidden never.
        (doc! {"s": 5}, None, None, "IXSCAN s_1 forward s: [5, 5]"),
        (doc! {}, Some(doc! {"s": 1}), None, "COLLSCAN forward +SORT"),
        (doc! {"p": 5}, None, None, "IXSCAN p_1 forward p: [5, 5]"),
        (doc! {"p": {"$gte": 0}}, None, None, "COLLSCAN forward"),
        (
            doc! {"p": {"$gte": 1}},
            Some(doc! {"p": 1}),
            None,
            "IXSCAN p_1 forward p: [1, inf.0]",
        ),
        (doc! {"h": 5}, None, None, "COLLSCAN forward"),
        // Hints force the plan.
        (
            doc! {"a": 5},
            None,
            Some(Bson::Document(doc! {"$natural": -1})),
            "COLLSCAN backward",
        ),
        (
            doc! {"a": 5},
            None,
            Some(Bson::String("b_1_c_-1".into())),
            "IXSCAN b_1_c_-1 forward b: [MinKey, MaxKey] c: [MaxKey, MinKey]",
        ),
        (
            doc! {"a": 5},
            None,
            Some(Bson::Document(doc! {"a": 1.0})),
            "IXSCAN a_1 forward a: [5, 5]",
        ),
        (
            doc! {"_id": 5},
            None,
            Some(Bson::String("_id_".into())),
            "IXSCAN _id_ forward _id: [5, 5]",
        ),
        (
            doc! {},
            None,
            Some(Bson::String("s_1".into())),
            "IXSCAN s_1 forward s: [MinKey, MaxKey]",
        ),
        (
            doc! {"p": -1},
            Some(doc! {"p": -1}),
            Some(Bson::String("p_1".into())),
            "IXSCAN p_1 forward p: [-1, -1]",
        ),
        (
            doc! {"a": 5},
            None,
            Some(Bson::Document(doc! {})),
            "IXSCAN a_1 forward a: [5, 5]",
        ),
    ];
    for (filter, sort, hint, want) in cases {
        let got = plan_for(filter.clone(), sort.clone(), hint.clone()).expect("plan");
        assert_eq!(
            describe(&got),
            want,
            "filter {filter:?} sort {sort:?} hint {hint:?}"
        );
    }
}

#[test]
fn bad_hints_fail_as_in_mongod() {
    for hint in [
        Bson::String("nope".into()),
        Bson::String("h_1".into()),
        Bson::Document(doc! {"a": -1}),
        Bson::Document(doc! {"_id": -1}),
        Bson::Document(doc! {"h": 1}),
    ] {
        let err = plan_for(doc! {}, None, Some(hint.clone())).expect_err("bad hint");
        assert_eq!(err.code, ErrorCode::BadValue.code(), "{hint:?}");
        assert!(err
            .message
            .ends_with("hint provided does not correspond to an existing index"));
    }
    let err =
        plan_for(doc! {}, None, Some(Bson::Document(doc! {"$natural": 2}))).expect_err("natural");
    assert_eq!(
        err.message,
        "$natural hint cannot be set to a value other than -1 or 1."
    );
}

fn min_max(
    min: Option<Document>,
    max: Option<Document>,
    hint: Option<Bson>,
    sort: Option<Document>,
) -> Result<Plan, MongoError> {
    let m = meta();
    let filter = doc! {};
    let f = Filter::parse(&filter).expect("filter");
    let sort = sort.map(|s| SortSpec::parse(&s).expect("sort"));
    let mut q = Query::new(&filter, &f);
    q.sort = sort.as_ref();
    q.hint = hint.as_ref();
    q.min = min.as_ref();
    q.max = max.as_ref();
    plan(&m, &q)
}

#[test]
fn min_max_need_a_matching_hint() {
    let code = |r: Result<Plan, MongoError>| r.expect_err("error").code;
    assert_eq!(code(min_max(Some(doc! {"a": 1}), None, None, None)), 51173);
    assert_eq!(
        code(min_max(
            Some(doc! {"a": 1}),
            None,
            Some(Bson::Document(doc! {"$natural": 1})),
            None
        )),
        ErrorCode::NoQueryExecutionPlans.code()
    );
    let bc = Some(Bson::String("b_1_c_-1".into()));
    assert_eq!(
        code(min_max(Some(doc! {"b": 1}), None, bc.clone(), None)),
        51174
    );
    assert_eq!(
        code(min_max(Some(doc! {"c": 1, "b": 1}), None, bc.clone(), None)),
        51174
    );
    let a = Some(Bson::String("a_1".into()));
    assert_eq!(
        code(min_max(
            Some(doc! {"a": 6}),
            Some(doc! {"a": 3}),
            a.clone(),
            None
        )),
        51175
    );
    assert_eq!(
        code(min_max(
            Some(doc! {"a": 2}),
            Some(doc! {"a": 2}),
            a.clone(),
            None
        )),
        51175
    );
    // With a descending field, "min" comes first in the index's order.
    assert!(min_max(
        Some(doc! {"b": 1, "c": 5}),
        Some(doc! {"b": 1, "c": 1}),
        bc.clone(),
        None
    )
    .is_ok());
    assert_eq!(
        code(min_max(
            Some(doc! {"b": 1, "c": 1}),
            Some(doc! {"b": 1, "c": 5}),
            bc,
            None
        )),
        51175
    );
    let p = min_max(Some(doc! {"a": 2}), None, a.clone(), Some(doc! {"a": -1})).expect("plan");
    assert_eq!(describe(&p), "IXSCAN a_1 backward ");
    let p = min_max(None, Some(doc! {"a": 2}), a, Some(doc! {"z": 1})).expect("plan");
    assert_eq!(describe(&p), "IXSCAN a_1 forward  +SORT");
}

#[test]
fn byte_ranges_cover_exactly_the_bounds() {
    // Every encoded key inside a range has its field values inside the intervals, and
    // the other way round, for ascending and descending fields.
    let values: Vec<Bson> = vec![
        Bson::MinKey,
        Bson::Null,
        Bson::Int32(-3),
        Bson::Double(0.5),
        Bson::Int64(1),
        Bson::Int32(2),
        Bson::Double(7.0),
        Bson::String(String::new()),
        Bson::String("b".into()),
        Bson::String("b\u{0}".into()),
        Bson::Document(doc! {"x": 1}),
        Bson::Boolean(true),
        Bson::MaxKey,
    ];
    let interval_sets: Vec<Vec<Interval>> = vec![
        vec![Interval::point(Bson::Int32(1))],
        vec![
            Interval::point(Bson::Int32(1)),
            Interval::point(Bson::String("b".into())),
        ],
        vec![Interval {
            start: Bson::Int32(1),
            start_inclusive: false,
            end: Bson::Int32(7),
            end_inclusive: true,
        }],
        vec![Interval {
            start: Bson::String(String::new()),
            start_inclusive: true,
            end: Bson::Document(Document::new()),
            end_inclusive: false,
        }],
        vec![Interval::all()],
        vec![],
    ];
    for descending in [false, true] {
        for first in &interval_sets {
            for second in &interval_sets {
                let fields = vec![("x".to_owned(), descending), ("y".to_owned(), !descending)];
                let bounds = vec![Some(first.clone()), Some(second.clone())];
                let ranges = byte_ranges(&fields, &bounds, None);
                for v in &values {
                    for w in &values {
                        let k = key::encode_key(&[(v, descending), (w, !descending)]);
                        let inside = ranges.iter().any(|r| {
                            std::ops::RangeBounds::contains(&(r.0.clone(), r.1.clone()), &k)
                        });
                        let in_first = first.iter().any(|i| i.contains(v));
                        let in_second = second.iter().any(|i| i.contains(w));
                        let points = first.iter().all(Interval::is_point);
                        // The second field is narrowed only after equalities on the first.
                        let want = in_first && (!points || in_second);
                        assert_eq!(
                            inside, want,
                            "{v:?} {w:?} desc={descending} {first:?} {second:?}"
                        );
                    }
                }
            }
        }
    }
}

/// Indexes under collations: `w_1` (en, strength 2), `w_simple` (same key, simple).
#[test]
fn an_index_serves_strings_only_under_its_collation() {
    let ci = doc! {"locale": "en", "strength": 2};
    let ci_spec = eddy_query::collation::Collation::normalize(&ci)
        .expect("valid")
        .expect("not simple");
    let m = CollectionMeta {
        ns: Namespace::new("d", "c"),
        id: 1,
        uuid: catalog::new_uuid(),
        options: Document::new(),
        indexes: vec![
            index(
                2,
                doc! {"v": 2, "key": {"w": 1}, "name": "w_1", "collation": ci_spec},
                Some(vec![vec![]]),
            ),
            index(
                3,
                doc! {"v": 2, "key": {"w": 1}, "name": "w_simple"},
                Some(vec![vec![]]),
            ),
        ],
    };
    let (collation, other) = collation_and_another(&ci);
    let run = |filter: Document, sort: Option<Document>, c: Option<&Arc<Collation>>| {
        let f = Filter::parse_collated(&filter, &[], c).expect("filter");
        let sort = sort.map(|s| {
            SortSpec::parse(&s)
                .expect("sort")
                .with_collation(c.cloned())
        });
        let mut q = Query::new(&filter, &f);
        q.sort = sort.as_ref();
        describe(&plan(&m, &q).expect("plan"))
    };
    // The query's collation picks the index of that collation.
    assert_eq!(
        run(doc! {"w": "a"}, None, Some(&collation)),
        "IXSCAN w_1 forward w: [\"a\", \"a\"]"
    );
    assert_eq!(
        run(doc! {"w": "a"}, None, None),
        "IXSCAN w_simple forward w: [\"a\", \"a\"]"
    );
    // Another collation: no index bounds its strings; numbers use either.
    assert_eq!(run(doc! {"w": "a"}, None, Some(&other)), "COLLSCAN forward");
    assert!(run(doc! {"w": 5}, None, Some(&other)).starts_with("IXSCAN w_1 forward w: [5, 5]"));
    // A regex bounds every string under a collation (no prefix in sort-key order).
    assert_eq!(
        run(doc! {"w": {"$regex": "^ab"}}, None, Some(&collation)),
        "IXSCAN w_1 forward w: [\"\", {}) | [/^ab/, /^ab/]"
    );
    // Separate predicates are not intersected under a collation.
    assert_eq!(
        run(doc! {"w": {"$gt": "a", "$lt": "B"}}, None, Some(&collation)),
        "IXSCAN w_1 forward w: (\"a\", {})"
    );
    // The sort is served by the index of its collation only.
    assert_eq!(
        run(doc! {}, Some(doc! {"w": -1}), Some(&collation)),
        "IXSCAN w_1 backward w: [MaxKey, MinKey]"
    );
    assert_eq!(
        run(doc! {}, Some(doc! {"w": 1}), Some(&other)),
        "COLLSCAN forward +SORT"
    );
    // `_id` is keyed by bytes: a collated string `_id` is no IDHACK.
    assert_eq!(
        run(doc! {"_id": "x"}, None, Some(&collation)),
        "COLLSCAN forward"
    );
    assert_eq!(run(doc! {"_id": 3}, None, Some(&collation)), "IDHACK 3");
}

/// The collation of `spec` and another one (French), both parsed.
fn collation_and_another(spec: &Document) -> (Arc<Collation>, Arc<Collation>) {
    let parse = |spec: &Document| {
        eddy_query::collation::Collation::parse(spec)
            .expect("valid")
            .expect("not simple")
    };
    (parse(spec), parse(&doc! {"locale": "fr"}))
}

/// A collection with a default collation: a string `_id` under that collation is an
/// IDHACK (through the collated `_id` index, `crate::id_index`), and a hashed index of
/// that collation serves collated equalities on strings.
#[test]
fn a_collated_collection_s_id_and_hashed_index_serve_its_collation() {
    let ci = eddy_query::collation::Collation::normalize(&doc! {"locale": "en", "strength": 2})
        .expect("valid")
        .expect("not simple");
    let m = CollectionMeta {
        ns: Namespace::new("d", "c"),
        id: 1,
        uuid: catalog::new_uuid(),
        options: doc! {"collation": ci.clone()},
        indexes: vec![index(
            2,
            doc! {"v": 2, "key": {"h": "hashed"}, "name": "h_hashed", "collation": ci.clone()},
            Some(vec![vec![]]),
        )],
    };
    let (collation, other) = collation_and_another(&ci);
    let run = |filter: Document, c: Option<&Arc<Collation>>| {
        let f = Filter::parse_collated(&filter, &[], c).expect("filter");
        describe(&plan(&m, &Query::new(&filter, &f)).expect("plan"))
    };
    assert_eq!(run(doc! {"_id": "x"}, Some(&collation)), "IDHACK \"x\"");
    assert_eq!(run(doc! {"_id": "x"}, None), "IDHACK \"x\"");
    assert_eq!(run(doc! {"_id": "x"}, Some(&other)), "COLLSCAN forward");
    let hashed =
        |v: &str| eddy_query::hashed::hash64_collated(&Bson::String(v.into()), Some(&collation));
    assert_eq!(hashed("ABC"), hashed("abc"));
    assert_eq!(
        run(doc! {"h": "ABC"}, Some(&collation)),
        format!("IXSCAN h_hashed forward h: [{0}, {0}]", hashed("abc"))
    );
    assert_eq!(run(doc! {"h": "ABC"}, None), "COLLSCAN forward");
    assert!(run(doc! {"h": 5}, Some(&other)).starts_with("IXSCAN h_hashed"));
}
