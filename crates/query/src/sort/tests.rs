use std::cmp::Ordering;

use bson::{doc, Bson, Document};
use proptest::prelude::*;

use super::SortSpec;
use crate::cmp::tests::arb_bson;

fn spec(s: Document) -> SortSpec {
    SortSpec::parse(&s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

/// Sorts documents (stably) and returns their `_id`s.
fn order(s: Document, docs: &[Document]) -> Vec<i32> {
    let spec = spec(s);
    let mut docs = docs.to_vec();
    docs.sort_by(|a, b| spec.compare(a, b));
    docs.iter()
        .map(|d| d.get_i32("_id").expect("_id"))
        .collect()
}

#[test]
fn parse() {
    let s = spec(doc! {"a": 1, "b.c": -1, "d": 1.5, "e": Bson::Int64(-1),
    "f": Bson::Decimal128("-1".parse().expect("decimal")), "g": -1.9});
    let fields: Vec<(&str, bool)> = s.fields().iter().map(|(p, a)| (p.as_str(), *a)).collect();
    assert_eq!(
        fields,
        vec![
            ("a", true),
            ("b.c", false),
            ("d", true),
            ("e", false),
            ("f", false),
            ("g", false)
        ]
    );
    assert!(spec(doc! {}).is_empty());

    let cases: Vec<(Document, i32, &str)> = vec![
        (
            doc! {"a": "x"},
            15974,
            "Illegal key in $sort specification: a: \"x\"",
        ),
        (
            doc! {"a": true},
            15974,
            "Illegal key in $sort specification: a: true",
        ),
        (
            doc! {"a": Bson::Null},
            15974,
            "Illegal key in $sort specification: a: null",
        ),
        (
            doc! {"a": [1]},
            15974,
            "Illegal key in $sort specification: a: [ 1 ]",
        ),
        (
            doc! {"a": 2},
            15975,
            "$sort key ordering must be 1 (for ascending) or -1 (for descending)",
        ),
        (
            doc! {"a": 0},
            15975,
            "$sort key ordering must be 1 (for ascending) or -1 (for descending)",
        ),
        (
            doc! {"a": 0.5},
            15975,
            "$sort key ordering must be 1 (for ascending) or -1 (for descending)",
        ),
        (
            doc! {"a": f64::NAN},
            15975,
            "$sort key ordering must be 1 (for ascending) or -1 (for descending)",
        ),
        (
            doc! {"a": {"$meta": "foo"}},
            31138,
            "Illegal $meta sort: $meta: \"foo\"",
        ),
        (
            doc! {"a": {"$meta": 1}},
            31138,
            "Illegal $meta sort: $meta: 1",
        ),
        (
            doc! {"a": {"$foo": 1}},
            17312,
            "$meta is the only expression supported by $sort right now",
        ),
        (
            doc! {"a": {}},
            17312,
            "$meta is the only expression supported by $sort right now",
        ),
        (
            doc! {"a": {"$meta": "textScore", "b": 1}},
            9,
            "Cannot have additional keys in a $meta sort specification",
        ),
        (
            doc! {"": 1},
            40352,
            "FieldPath cannot be constructed with empty string",
        ),
        (doc! {"a.": 1}, 40353, "FieldPath must not end with a '.'."),
        (
            doc! {"a..b": 1},
            15998,
            "FieldPath field names may not be empty strings.",
        ),
        (
            doc! {"$a": 1},
            16410,
            "FieldPath field names may not start with '$'. Consider using $getField or $setField.",
        ),
    ];
    for (s, code, msg) in cases {
        let e = SortSpec::parse(&s).expect_err("refused");
        assert_eq!((e.code, e.message.as_str()), (code, msg), "{s:?}");
    }
    let e = SortSpec::parse(&doc! {"a": {"$meta": "randVal"}}).expect_err("refused");
    assert_eq!(e.code, 115);
    let by_score = SortSpec::parse(&doc! {"a": {"$meta": "textScore"}, "b": 1}).expect("textScore");
    assert!(by_score.uses_text_score());
    let score = crate::meta::TEXT_SCORE;
    let (low, high) = (doc! {score: 0.75, "b": 1}, doc! {score: 1.5, "b": 2});
    assert_eq!(by_score.compare(&high, &low), std::cmp::Ordering::Less);
    let e = SortSpec::parse_stage(&doc! {}).expect_err("refused");
    assert_eq!(
        (e.code, e.message.as_str()),
        (15976, "$sort stage must have at least one sort key")
    );
    assert!(SortSpec::parse_stage(&doc! {"a": 1}).is_ok());
}

#[test]
fn scalar_and_array_keys() {
    let docs = vec![
        doc! {"_id": 1, "a": 3},
        doc! {"_id": 2, "a": [1, 5]},
        doc! {"_id": 3, "a": Bson::Null},
        doc! {"_id": 4},
        doc! {"_id": 5, "a": []},
        doc! {"_id": 6, "a": "s"},
        doc! {"_id": 7, "a": 2},
        doc! {"_id": 8, "a": [[0], 4]},
        doc! {"_id": 9, "a": {"x": 1}},
    ];
    // Ascending: smallest element; [] (undefined) before null and missing; a nested
    // array compares whole (above every number).
    assert_eq!(order(doc! {"a": 1}, &docs), vec![5, 3, 4, 2, 7, 1, 8, 6, 9]);
    // Descending: largest element.
    assert_eq!(
        order(doc! {"a": -1}, &docs),
        vec![8, 9, 6, 2, 1, 7, 3, 4, 5]
    );
}

#[test]
fn dotted_paths() {
    let docs = [
        doc! {"_id": 1, "a": [{"b": 5}, {"b": 2}]},
        doc! {"_id": 2, "a": [{"b": 5}, {"c": 1}]},
        doc! {"_id": 3, "a": {"b": 3}},
        doc! {"_id": 4, "a": [{"b": [7, 0.5]}, 1]},
        doc! {"_id": 5, "a": 4},
        doc! {"_id": 6, "a": [[{"b": -1}]]},
    ];
    let s = spec(doc! {"a.b": 1});
    let keys: Vec<Bson> = docs
        .iter()
        .map(|d| s.key(d).expect("key")[0].clone())
        .collect();
    assert_eq!(
        keys,
        vec![
            Bson::Int32(2),
            Bson::Null,
            Bson::Int32(3),
            Bson::Null, // the element 1 has no b
            Bson::Null,
            Bson::Null, // nested arrays are not entered
        ]
    );
    let s = spec(doc! {"a.b": -1});
    let keys: Vec<Bson> = docs
        .iter()
        .map(|d| s.key(d).expect("key")[0].clone())
        .collect();
    assert_eq!(
        keys,
        vec![
            Bson::Int32(5),
            Bson::Int32(5),
            Bson::Int32(3),
            Bson::Int32(7),
            Bson::Null,
            Bson::Null
        ]
    );
    // A numeric component names an element.
    let s = spec(doc! {"a.1": 1});
    assert_eq!(
        s.key(&doc! {"a": [5, 1]}).expect("key"),
        vec![Bson::Int32(1)]
    );
    assert_eq!(s.key(&doc! {"a": [5]}).expect("key"), vec![Bson::Null]);
    assert_eq!(
        s.key(&doc! {"a": {"1": "x"}}).expect("key"),
        vec![Bson::String("x".into())]
    );
    let s = spec(doc! {"a.0.b": 1});
    assert_eq!(
        s.key(&doc! {"a": [{"b": 9}, {"b": 1}]}).expect("key"),
        vec![Bson::Int32(9)]
    );
}

#[test]
fn compound_keys() {
    let docs = vec![
        doc! {"_id": 1, "a": 1, "b": 1},
        doc! {"_id": 2, "a": 1, "b": 2},
        doc! {"_id": 3, "a": 0, "b": 0},
        doc! {"_id": 4, "b": 5},
        doc! {"_id": 5, "a": [2, 0], "b": 9},
    ];
    assert_eq!(order(doc! {"a": 1, "b": -1}, &docs), vec![4, 5, 3, 2, 1]);
    assert_eq!(order(doc! {"a": -1, "b": 1}, &docs), vec![5, 1, 2, 3, 4]);
    // Fields under one array take their values from the same element: the key is the
    // smallest (x, y) pair, not the smallest x with the smallest y.
    let s = spec(doc! {"a.x": 1, "a.y": 1});
    assert_eq!(
        s.key(&doc! {"a": [{"x": 2, "y": 0}, {"x": 1, "y": 5}]})
            .expect("key"),
        vec![Bson::Int32(1), Bson::Int32(5)]
    );
    let s = spec(doc! {"a.x": 1, "a.y": -1});
    assert_eq!(
        s.key(&doc! {"a": [{"x": 1, "y": 0}, {"x": 1, "y": 5}, {"x": 3, "y": 9}]})
            .expect("key"),
        vec![Bson::Int32(1), Bson::Int32(5)]
    );
    // A field and a path below it share the array too.
    let s = spec(doc! {"a": -1, "a.y": 1});
    assert_eq!(
        s.key(&doc! {"a": [{"y": 3}, {"y": 1}]}).expect("key"),
        vec![Bson::Document(doc! {"y": 3}), Bson::Int32(3)]
    );
    // An empty array under a path is null; at the end of one, undefined.
    let s = spec(doc! {"a": 1, "a.b": 1});
    assert_eq!(
        s.key(&doc! {"a": []}).expect("key"),
        vec![Bson::Undefined, Bson::Null]
    );
}

#[test]
fn parallel_arrays() {
    let s = spec(doc! {"a": 1, "b": 1});
    let e = s
        .key(&doc! {"a": [1, 2], "b": [3, 4]})
        .expect_err("parallel");
    assert_eq!(
        (e.code, e.message.as_str()),
        (2, "cannot sort with keys that are parallel arrays")
    );
    // One array is fine, and two arrays reached through one are not parallel.
    assert!(s.key(&doc! {"a": [1, 2], "b": 3}).is_ok());
    let s = spec(doc! {"a.b": 1, "a.c": 1});
    assert!(s.key(&doc! {"a": [{"b": [1, 2], "c": 1}]}).is_ok());
    assert!(s.key(&doc! {"a": [{"b": [1, 2], "c": [1]}]}).is_err());
    // compare still orders them, field by field.
    let s = spec(doc! {"a": 1, "b": -1});
    assert_eq!(
        s.compare(&doc! {"a": [1, 2], "b": [3, 4]}, &doc! {"a": 1, "b": 4}),
        Ordering::Equal
    );
    assert_eq!(
        s.compare(&doc! {"a": [1, 2], "b": [3, 4]}, &doc! {"a": 1, "b": 5}),
        Ordering::Greater
    );
}

fn arb_doc() -> impl Strategy<Value = Document> {
    (
        proptest::option::of(arb_bson()),
        proptest::option::of(arb_bson()),
    )
        .prop_map(|(a, b)| {
            let mut d = Document::new();
            if let Some(a) = a {
                d.insert("a", a);
            }
            if let Some(b) = b {
                d.insert("b", b);
            }
            d
        })
}

fn arb_spec() -> impl Strategy<Value = SortSpec> {
    prop_oneof![
        Just(doc! {"a": 1}),
        Just(doc! {"a": -1}),
        Just(doc! {"a.b": 1}),
        Just(doc! {"a.a": -1, "a.b": 1}),
        Just(doc! {"a": 1, "b": -1}),
        Just(doc! {"a": -1, "a.c": 1}),
        Just(doc! {"a.0": 1, "b": 1}),
    ]
    .prop_map(spec)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]
    #[test]
    fn compare_is_a_total_order(s in arb_spec(), x in arb_doc(), y in arb_doc(), z in arb_doc()) {
        prop_assert_eq!(s.compare(&x, &x), Ordering::Equal);
        let xy = s.compare(&x, &y);
        prop_assert_eq!(xy, s.compare(&y, &x).reverse());
        let yz = s.compare(&y, &z);
        let xz = s.compare(&x, &z);
        if xy != Ordering::Greater && yz != Ordering::Greater {
            prop_assert_ne!(xz, Ordering::Greater);
        }
        if xy == Ordering::Equal && yz == Ordering::Equal {
            prop_assert_eq!(xz, Ordering::Equal);
        }
        let mut v = [x, y, z];
        v.sort_by(|a, b| s.compare(a, b));
    }
}
