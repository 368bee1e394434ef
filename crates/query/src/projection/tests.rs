//! Projection cases from the MongoDB manual ("Project Fields to Return from Query",
//! `$slice`, `$elemMatch` and `$` projection pages), array edge cases, and mongod's
//! parse errors.

use bson::{doc, Bson, Document};

use super::Projection;
use crate::filter::Filter;

fn project(spec: Document, d: Document) -> Document {
    Projection::parse(&spec)
        .unwrap_or_else(|e| panic!("parse {spec:?}: {e}"))
        .apply(&d, None)
        .unwrap_or_else(|e| panic!("apply {spec:?}: {e}"))
}

/// Projects with the match details the query records for `d`.
fn project_query(spec: Document, query: Document, d: Document) -> Result<Document, (i32, String)> {
    let filter = Filter::parse(&query).expect("query parses");
    let details = filter.matches_details(&d).expect("query matches");
    let p = Projection::parse_with_query(&spec, &query).map_err(|e| (e.code, e.message))?;
    p.apply(&d, Some(&details)).map_err(|e| (e.code, e.message))
}

fn parse_err(spec: Document) -> (i32, String) {
    match Projection::parse(&spec) {
        Ok(p) => panic!("{spec:?} parsed: {p:?}"),
        Err(e) => (e.code, e.message),
    }
}

fn journal() -> Document {
    doc! {"_id": 1, "item": "journal", "status": "A", "size": {"h": 14, "w": 21, "uom": "cm"},
    "instock": [{"warehouse": "A", "qty": 5}]}
}

fn postcard() -> Document {
    doc! {"_id": 5, "item": "postcard", "status": "A", "size": {"h": 10, "w": 15.25, "uom": "cm"},
    "instock": [{"warehouse": "B", "qty": 15}, {"warehouse": "C", "qty": 35}]}
}

#[test]
fn manual_project_fields() {
    let cases: Vec<(Document, Document, Document)> = vec![
        // Return the specified fields and the _id field only.
        (
            doc! {"item": 1, "status": 1},
            journal(),
            doc! {"_id": 1, "item": "journal", "status": "A"},
        ),
        // Suppress _id.
        (
            doc! {"item": 1, "status": 1, "_id": 0},
            journal(),
            doc! {"item": "journal", "status": "A"},
        ),
        // Return all but the excluded fields.
        (
            doc! {"status": 0, "instock": 0},
            journal(),
            doc! {"_id": 1, "item": "journal", "size": {"h": 14, "w": 21, "uom": "cm"}},
        ),
        // Specific fields in embedded documents, dotted and embedded forms.
        (
            doc! {"item": 1, "status": 1, "size.uom": 1},
            journal(),
            doc! {"_id": 1, "item": "journal", "status": "A", "size": {"uom": "cm"}},
        ),
        (
            doc! {"item": 1, "status": 1, "size": {"uom": 1}},
            journal(),
            doc! {"_id": 1, "item": "journal", "status": "A", "size": {"uom": "cm"}},
        ),
        // Suppress specific fields in embedded documents.
        (
            doc! {"size.uom": 0},
            journal(),
            doc! {"_id": 1, "item": "journal", "status": "A", "size": {"h": 14, "w": 21},
            "instock": [{"warehouse": "A", "qty": 5}]},
        ),
        (
            doc! {"size": {"uom": 0}},
            journal(),
            doc! {"_id": 1, "item": "journal", "status": "A", "size": {"h": 14, "w": 21},
            "instock": [{"warehouse": "A", "qty": 5}]},
        ),
        // Projection on embedded documents in an array.
        (
            doc! {"item": 1, "status": 1, "instock.qty": 1},
            postcard(),
            doc! {"_id": 5, "item": "postcard", "status": "A", "instock": [{"qty": 15}, {"qty": 35}]},
        ),
        // Project specific array elements: $slice -1.
        (
            doc! {"item": 1, "status": 1, "instock": {"$slice": -1}},
            postcard(),
            doc! {"_id": 5, "item": "postcard", "status": "A", "instock": [{"warehouse": "C", "qty": 35}]},
        ),
        // Literal values are inclusions of a computed field, appended.
        (
            doc! {"item": 1, "label": "x", "flag": true},
            journal(),
            doc! {"_id": 1, "item": "journal", "label": "x"},
        ),
        // The field order of the result is the document's, not the projection's.
        (
            doc! {"status": 1, "item": 1},
            journal(),
            doc! {"_id": 1, "item": "journal", "status": "A"},
        ),
    ];
    for (spec, d, want) in cases {
        assert_eq!(project(spec.clone(), d), want, "{spec:?}");
    }
}

#[test]
fn id_and_kinds() {
    let d = doc! {"_id": 1, "a": 1, "b": 2};
    let cases: Vec<(Document, Document, bool)> = vec![
        (doc! {}, d.clone(), false),
        (doc! {"_id": 0}, doc! {"a": 1, "b": 2}, false),
        (doc! {"_id": 1}, doc! {"_id": 1}, true),
        (doc! {"_id": 1, "a": 0}, doc! {"_id": 1, "b": 2}, false),
        (doc! {"_id": 0, "a": 1}, doc! {"a": 1}, true),
        (doc! {"a": true}, doc! {"_id": 1, "a": 1}, true),
        (doc! {"a": false}, doc! {"_id": 1, "b": 2}, false),
        (doc! {"a": 5}, doc! {"_id": 1, "a": 1}, true),
        (doc! {"a": -1}, doc! {"_id": 1, "a": 1}, true),
        (doc! {"a": 0.0}, doc! {"_id": 1, "b": 2}, false),
        (doc! {"a": 0.5}, doc! {"_id": 1, "a": 1}, true),
        (doc! {"a": Bson::Int64(0)}, doc! {"_id": 1, "b": 2}, false),
        (
            doc! {"a": Bson::Decimal128("0".parse().expect("decimal"))},
            doc! {"_id": 1, "b": 2},
            false,
        ),
        (doc! {"a": 1, "c": 1}, doc! {"_id": 1, "a": 1}, true),
        (doc! {"c": 0}, d.clone(), false),
    ];
    for (spec, want, inclusion) in cases {
        let p = Projection::parse(&spec).expect("parses");
        assert_eq!(p.is_inclusion(), inclusion, "{spec:?}");
        assert_eq!(p.apply(&d, None).expect("applies"), want, "{spec:?}");
    }
    // _id paths count as specifying _id: no default inclusion of the whole _id.
    assert_eq!(
        project(
            doc! {"_id.x": 1, "a": 1},
            doc! {"_id": {"x": 1, "y": 2}, "a": 1, "b": 1}
        ),
        doc! {"_id": {"x": 1}, "a": 1}
    );
    assert_eq!(
        project(doc! {"_id.x": 0}, doc! {"_id": {"x": 1, "y": 2}, "a": 1}),
        doc! {"_id": {"y": 2}, "a": 1}
    );
    // A missing _id is not invented.
    assert_eq!(project(doc! {"a": 1}, doc! {"a": 1, "b": 2}), doc! {"a": 1});
}

#[test]
fn arrays_of_subdocuments() {
    let d =
        doc! {"_id": 1, "a": [1, {"b": 2, "c": 3}, {"c": 4}, [{"b": 5, "c": 6}, 7], "s"], "z": 0};
    let cases: Vec<(Document, Document)> = vec![
        // Inclusion keeps documents (even emptied), recurses into nested arrays, and
        // drops everything else.
        (
            doc! {"a.b": 1},
            doc! {"_id": 1, "a": [{"b": 2}, {}, [{"b": 5}]]},
        ),
        (
            doc! {"a": {"b": 1}},
            doc! {"_id": 1, "a": [{"b": 2}, {}, [{"b": 5}]]},
        ),
        // Exclusion keeps non-documents as they are.
        (
            doc! {"a.b": 0},
            doc! {"_id": 1, "a": [1, {"c": 3}, {"c": 4}, [{"c": 6}, 7], "s"], "z": 0},
        ),
        (
            doc! {"a.b": 1, "a.c": 1},
            doc! {"_id": 1, "a": [{"b": 2, "c": 3}, {"c": 4}, [{"b": 5, "c": 6}]]},
        ),
    ];
    for (spec, want) in cases {
        assert_eq!(project(spec.clone(), d.clone()), want, "{spec:?}");
    }
    // A scalar where a sub-projection expects a document: dropped by inclusion, kept
    // by exclusion.
    assert_eq!(
        project(doc! {"a.b": 1}, doc! {"_id": 1, "a": 5}),
        doc! {"_id": 1}
    );
    assert_eq!(
        project(doc! {"a.b": 0}, doc! {"_id": 1, "a": 5}),
        doc! {"_id": 1, "a": 5}
    );
    // Missing paths.
    assert_eq!(
        project(doc! {"x.y": 1}, doc! {"_id": 1, "a": 5}),
        doc! {"_id": 1}
    );
    assert_eq!(
        project(doc! {"a.b.c": 1}, doc! {"_id": 1, "a": {"b": {"d": 1}}}),
        doc! {"_id": 1, "a": {"b": {}}}
    );
    // Mixed embedded and dotted forms merge.
    assert_eq!(
        project(
            doc! {"a": {"b": 1}, "a.c": 1},
            doc! {"_id": 1, "a": {"c": 1, "b": 2, "d": 3}}
        ),
        doc! {"_id": 1, "a": {"c": 1, "b": 2}}
    );
}

#[test]
fn computed_literals() {
    let cases: Vec<(Document, Document, Document)> = vec![
        (
            doc! {"a": "x"},
            doc! {"_id": 1, "a": 1, "b": 2},
            doc! {"_id": 1, "a": "x"},
        ),
        (
            doc! {"b": 1, "a": "x"},
            doc! {"a": 1, "b": 2, "_id": 1},
            doc! {"b": 2, "_id": 1, "a": "x"},
        ),
        (
            doc! {"a": Bson::Null},
            doc! {"_id": 1},
            doc! {"_id": 1, "a": Bson::Null},
        ),
        (
            doc! {"a": [1, "two"]},
            doc! {"_id": 1},
            doc! {"_id": 1, "a": [1, "two"]},
        ),
        // Below a path: into documents, into each array element, over scalars.
        (
            doc! {"a.b": "x"},
            doc! {"_id": 1},
            doc! {"_id": 1, "a": {"b": "x"}},
        ),
        (
            doc! {"a.b": "x"},
            doc! {"_id": 1, "a": 5},
            doc! {"_id": 1, "a": {"b": "x"}},
        ),
        (
            doc! {"a.b": "x", "a.c": 1},
            doc! {"_id": 1, "a": {"c": 1, "d": 2}},
            doc! {"_id": 1, "a": {"c": 1, "b": "x"}},
        ),
        (
            doc! {"a.b": "x"},
            doc! {"_id": 1, "a": [1, {"c": 1}]},
            doc! {"_id": 1, "a": [{"b": "x"}]},
        ),
        (
            doc! {"_id": "id"},
            doc! {"_id": 1, "a": 1},
            doc! {"_id": "id"},
        ),
    ];
    for (spec, d, want) in cases {
        assert_eq!(project(spec.clone(), d), want, "{spec:?}");
    }
}

fn posts() -> Document {
    doc! {"_id": 1, "title": "Bagels are not croissants.", "comments": [1, 2, 3, 4, 5], "n": 1}
}

#[test]
fn find_slice() {
    let cases: Vec<(Bson, Vec<i32>)> = vec![
        (Bson::Int32(1), vec![1]),
        (Bson::Int32(-1), vec![5]),
        (Bson::Int32(2), vec![1, 2]),
        (Bson::Int32(-2), vec![4, 5]),
        (Bson::Int32(10), vec![1, 2, 3, 4, 5]),
        (Bson::Int32(-10), vec![1, 2, 3, 4, 5]),
        (Bson::Int32(0), vec![]),
        (Bson::Double(1.9), vec![1]),
        (Bson::Int64(3), vec![1, 2, 3]),
        (bson::bson!([1, 2]), vec![2, 3]),
        (bson::bson!([-2, 1]), vec![4]),
        (bson::bson!([-2, 5]), vec![4, 5]),
        (bson::bson!([-10, 2]), vec![1, 2]),
        (bson::bson!([10, 2]), vec![]),
        (bson::bson!([0, 10]), vec![1, 2, 3, 4, 5]),
    ];
    for (arg, want) in cases {
        let spec = doc! {"comments": {"$slice": arg.clone()}};
        let p = Projection::parse(&spec).expect("parses");
        // Alone, $slice is an exclusion projection: the other fields stay.
        assert!(!p.is_inclusion());
        let got = p.apply(&posts(), None).expect("applies");
        let mut expected = posts();
        expected.insert("comments", want.clone());
        assert_eq!(got, expected, "{arg:?}");
    }
    // With an inclusion it is an inclusion; with _id: 1 too.
    assert_eq!(
        project(doc! {"comments": {"$slice": 1}, "title": 1}, posts()),
        doc! {"_id": 1, "title": "Bagels are not croissants.", "comments": [1]}
    );
    assert_eq!(
        project(doc! {"_id": 1, "comments": {"$slice": 1}}, posts()),
        doc! {"_id": 1, "comments": [1]}
    );
    assert_eq!(
        project(doc! {"_id": 0, "comments": {"$slice": -1}}, posts()),
        doc! {"title": "Bagels are not croissants.", "comments": [5], "n": 1}
    );
    assert_eq!(
        project(doc! {"n": 0, "comments": {"$slice": -1}}, posts()),
        doc! {"_id": 1, "title": "Bagels are not croissants.", "comments": [5]}
    );
    // Manual: $slice of an embedded array in an inclusion returns only that path...
    let socks = doc! {"_id": 1, "item": "socks", "qty": 100, "details": {"colors": ["blue", "red"], "sizes": ["S", "M", "L"]}};
    assert_eq!(
        project(
            doc! {"qty": 1, "details.colors": {"$slice": 1}},
            socks.clone()
        ),
        doc! {"_id": 1, "qty": 100, "details": {"colors": ["blue"]}}
    );
    // ... and in an exclusion the rest of the embedded document.
    assert_eq!(
        project(doc! {"_id": 0, "details.colors": {"$slice": 1}}, socks),
        doc! {"item": "socks", "qty": 100, "details": {"colors": ["blue"], "sizes": ["S", "M", "L"]}}
    );
    // Through arrays of documents; non-arrays untouched.
    assert_eq!(
        project(
            doc! {"a.b": {"$slice": 1}},
            doc! {"a": [{"b": [1, 2]}, {"b": [3, 4]}, {"b": 5}, 7, [[1, 2]]]}
        ),
        doc! {"a": [{"b": [1]}, {"b": [3]}, {"b": 5}, 7, [[1, 2]]]}
    );
    assert_eq!(
        project(doc! {"a": {"$slice": 1}}, doc! {"a": 5}),
        doc! {"a": 5}
    );
    assert_eq!(
        project(doc! {"a": {"$slice": 1}}, doc! {"b": 5}),
        doc! {"b": 5}
    );
    assert_eq!(
        project(doc! {"a": {"$slice": 1}}, doc! {"a": [[1, 2], 3]}),
        doc! {"a": [[1, 2]]}
    );
}

fn schools() -> Vec<Document> {
    vec![
        doc! {"_id": 1, "zipcode": "63109", "students": [
        {"name": "john", "school": 102, "age": 10},
        {"name": "jess", "school": 102, "age": 11},
        {"name": "jeff", "school": 108, "age": 15}]},
        doc! {"_id": 2, "zipcode": "63110", "students": [
        {"name": "ajax", "school": 100, "age": 7},
        {"name": "achilles", "school": 100, "age": 8}]},
        doc! {"_id": 3, "zipcode": "63109", "students": [
        {"name": "ajax", "school": 100, "age": 7},
        {"name": "achilles", "school": 100, "age": 8}],
        "athletics": ["swimming", "basketball", "football"]},
        doc! {"_id": 4, "zipcode": "63109", "students": [
        {"name": "barney", "school": 102, "age": 7},
        {"name": "ruth", "school": 102, "age": 16}]},
    ]
}

#[test]
fn elem_match() {
    let p = Projection::parse(&doc! {"students": {"$elemMatch": {"school": 102}}}).expect("parses");
    assert!(p.is_inclusion());
    let got: Vec<Document> = schools()
        .iter()
        .map(|d| p.apply(d, None).expect("applies"))
        .collect();
    assert_eq!(
        got,
        vec![
            doc! {"_id": 1, "students": [{"name": "john", "school": 102, "age": 10}]},
            doc! {"_id": 2},
            doc! {"_id": 3},
            doc! {"_id": 4, "students": [{"name": "barney", "school": 102, "age": 7}]},
        ]
    );
    let p =
        Projection::parse(&doc! {"students": {"$elemMatch": {"school": 102, "age": {"$gt": 10}}}})
            .expect("parses");
    let got: Vec<Document> = schools()
        .iter()
        .map(|d| p.apply(d, None).expect("applies"))
        .collect();
    assert_eq!(
        got[0],
        doc! {"_id": 1, "students": [{"name": "jess", "school": 102, "age": 11}]}
    );
    assert_eq!(
        got[3],
        doc! {"_id": 4, "students": [{"name": "ruth", "school": 102, "age": 16}]}
    );

    // Manual: the $elemMatch field comes after the other included fields.
    let player = doc! {"_id": 1, "name": "player1",
    "games": [{"game": "abc", "score": 8}, {"game": "xyz", "score": 5}],
    "joined": "2020-01-01", "lastLogin": "2020-05-01"};
    assert_eq!(
        project(
            doc! {"games": {"$elemMatch": {"score": {"$gt": 5}}}, "joined": 1, "lastLogin": 1},
            player.clone()
        ),
        doc! {"_id": 1, "joined": "2020-01-01", "lastLogin": "2020-05-01",
        "games": [{"game": "abc", "score": 8}]}
    );
    // _id: 0 with $elemMatch is still an inclusion.
    assert_eq!(
        project(
            doc! {"_id": 0, "games": {"$elemMatch": {"score": 5}}},
            player.clone()
        ),
        doc! {"games": [{"game": "xyz", "score": 5}]}
    );
    // In an exclusion projection the field is replaced in place, or removed.
    assert_eq!(
        project(
            doc! {"name": 0, "games": {"$elemMatch": {"score": 5}}},
            player.clone()
        ),
        doc! {"_id": 1, "games": [{"game": "xyz", "score": 5}], "joined": "2020-01-01", "lastLogin": "2020-05-01"}
    );
    assert_eq!(
        project(
            doc! {"name": 0, "games": {"$elemMatch": {"score": 99}}},
            player
        ),
        doc! {"_id": 1, "joined": "2020-01-01", "lastLogin": "2020-05-01"}
    );
    // Scalars and non-arrays.
    assert_eq!(
        project(
            doc! {"a": {"$elemMatch": {"$gt": 1}}},
            doc! {"_id": 1, "a": [1, 2, 3]}
        ),
        doc! {"_id": 1, "a": [2]}
    );
    assert_eq!(
        project(
            doc! {"a": {"$elemMatch": {"$gt": 1}}},
            doc! {"_id": 1, "a": 5}
        ),
        doc! {"_id": 1}
    );
}

#[test]
fn positional() {
    // Manual: the first element of grades matching the query.
    let d = doc! {"_id": 1, "semester": 1, "grades": [70, 87, 90]};
    assert_eq!(
        project_query(
            doc! {"grades.$": 1},
            doc! {"semester": 1, "grades": {"$gte": 85}},
            d
        ),
        Ok(doc! {"_id": 1, "grades": [87]})
    );
    let d = doc! {"_id": 7, "semester": 3, "grades": [
    {"grade": 80, "mean": 75, "std": 8},
    {"grade": 85, "mean": 90, "std": 5},
    {"grade": 90, "mean": 85, "std": 3}]};
    assert_eq!(
        project_query(
            doc! {"grades.$": 1},
            doc! {"grades.mean": {"$gt": 70}},
            d.clone()
        ),
        Ok(doc! {"_id": 7, "grades": [{"grade": 80, "mean": 75, "std": 8}]})
    );
    assert_eq!(
        project_query(
            doc! {"semester": 1, "grades.$": 1},
            doc! {"grades": {"$elemMatch": {"mean": {"$gt": 80}, "std": {"$lt": 5}}}},
            d.clone()
        ),
        Ok(doc! {"_id": 7, "semester": 3, "grades": [{"grade": 90, "mean": 85, "std": 3}]})
    );
    // A path below the $ is ignored; a nested array.
    assert_eq!(
        project_query(doc! {"grades.$.mean": 1}, doc! {"grades.grade": 85}, d),
        Ok(doc! {"_id": 7, "grades": [{"grade": 85, "mean": 90, "std": 5}]})
    );
    assert_eq!(
        project_query(
            doc! {"a.b.$": 1},
            doc! {"a.b": 3},
            doc! {"_id": 1, "a": {"b": [1, 3], "c": 1}}
        ),
        Ok(doc! {"_id": 1, "a": {"b": [3]}})
    );
    // No array on the path: left alone.
    assert_eq!(
        project_query(doc! {"a.$": 1}, doc! {"a": 5}, doc! {"_id": 1, "a": 5}),
        Ok(doc! {"_id": 1, "a": 5})
    );
    // The query matched the array without recording a position.
    assert_eq!(
        project_query(
            doc! {"a.$": 1},
            doc! {"a": [1, 2]},
            doc! {"_id": 1, "a": [1, 2]}
        ),
        Err((
            51246,
            "positional operator '.$' couldn't find a matching element in the array".to_owned()
        ))
    );
    // Without details at all.
    let p = Projection::parse(&doc! {"a.$": 1}).expect("parses");
    assert!(p.has_positional());
    assert_eq!(
        p.apply(&doc! {"a": [1]}, None).map_err(|e| e.code),
        Err(51246)
    );
    // The query has no predicate on the projected field.
    assert_eq!(
        project_query(
            doc! {"b.$": 1},
            doc! {"a": 1},
            doc! {"_id": 1, "a": 1, "b": [1]}
        ),
        Err((
            31277,
            "Positional projection 'b.$' does not match the query document.".to_owned()
        ))
    );
    assert!(project_query(
        doc! {"b.$": 1},
        doc! {"$or": [{"x": 1}, {"b.c": 1}]},
        doc! {"_id": 1, "x": 2, "b": [{"c": 1}]}
    )
    .is_ok());
}

#[test]
fn parse_errors() {
    let cases: Vec<(Document, i32, &str)> = vec![
        (
            doc! {"a": 1, "b": 0},
            31254,
            "Cannot do exclusion on field b in inclusion projection",
        ),
        (
            doc! {"a": 0, "b": 1},
            31253,
            "Cannot do inclusion on field b in exclusion projection",
        ),
        (
            doc! {"a": 0, "b": "x"},
            31310,
            "Cannot use an expression b: \"x\" in an exclusion projection",
        ),
        (
            doc! {"a": 0, "b.c": true},
            31253,
            "Cannot do inclusion on field b.c in exclusion projection",
        ),
        (
            doc! {"a": {"b": 1, "c": 0}},
            31254,
            "Cannot do exclusion on field c in inclusion projection",
        ),
        (
            doc! {"a": {"_id": 0}, "b": 1},
            31253,
            "Cannot do inclusion on field b in exclusion projection",
        ),
        (
            doc! {"a": 1, "a.b": 1},
            31249,
            "Path collision at a.b remaining portion b",
        ),
        (doc! {"a.b": 1, "a": 1}, 31250, "Path collision at a"),
        (
            doc! {"a.b": 1, "a.b.c": 1},
            31249,
            "Path collision at a.b.c remaining portion b.c",
        ),
        (doc! {"a.b": 1, "a": {"c": 1}}, 31250, "Path collision at a"),
        (
            doc! {"a.b": {"$slice": 1}, "a.b.c": 1},
            31249,
            "Path collision at a.b.c remaining portion b.c",
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
        (
            doc! {"a": {}},
            51270,
            "An empty sub-projection is not a valid value. Found empty object at path a",
        ),
        (
            doc! {"a": {"b": {}}},
            51270,
            "An empty sub-projection is not a valid value. Found empty object at path a.b",
        ),
        (
            doc! {"a": {"$slice": 1, "b": 1}},
            16410,
            "FieldPath field names may not start with '$'. Consider using $getField or $setField.",
        ),
        (
            doc! {"a": {"$elemMatch": 1}},
            31274,
            "elemMatch: Invalid argument, object required, but got int",
        ),
        (
            doc! {"a.b": {"$elemMatch": {"x": 1}}},
            31275,
            "Cannot use $elemMatch projection on a nested field.",
        ),
        (
            doc! {"a": {"b": {"$elemMatch": {"x": 1}}}},
            31275,
            "Cannot use $elemMatch projection on a nested field.",
        ),
        (
            doc! {"a.$": 1, "b": {"$elemMatch": {"x": 1}}},
            31255,
            "Cannot specify positional operator and $elemMatch.",
        ),
        (
            doc! {"b": {"$elemMatch": {"x": 1}}, "a.$": 1},
            31256,
            "Cannot specify positional operator and $elemMatch.",
        ),
        (
            doc! {"a.$": 1, "b.$": 1},
            31276,
            "Cannot specify more than one positional projection per query.",
        ),
        (
            doc! {"a.$.b.$": 1},
            31287,
            "Cannot use positional operator twice: a.$.b.$",
        ),
        (doc! {"a.$.": 1}, 31270, "Path cannot end with '.$.'"),
        (
            doc! {"a.$": {"$slice": 1}},
            31271,
            "positional projection cannot be used with an expression or sub object",
        ),
        (
            doc! {"a.$": "x"},
            31308,
            "positional projection cannot be used with a literal",
        ),
        (
            doc! {"a.$": 0},
            16410,
            "FieldPath field names may not start with '$'. Consider using $getField or $setField.",
        ),
        (
            doc! {"a": {"$meta": 1}},
            17307,
            "$meta only supports string arguments",
        ),
        (
            doc! {"a": {"$meta": "foo"}},
            17308,
            "Unsupported argument to $meta: foo",
        ),
        (
            doc! {"a": {"$meta": "searchScore"}},
            115,
            "$meta \"searchScore\" is not supported: Eddy has no Atlas Search",
        ),
        (
            doc! {"a": {"$meta": "indexKey"}},
            115,
            "$meta \"indexKey\" is not supported: Eddy does not expose this metadata",
        ),
        (
            doc! {"a": {"$meta": "recordId"}},
            115,
            "$meta \"recordId\" is not supported: Eddy does not expose this metadata",
        ),
    ];
    for (spec, code, msg) in cases {
        assert_eq!(parse_err(spec.clone()), (code, msg.to_owned()), "{spec:?}");
    }
    // Expressions in an exclusion projection (the expression module is not consulted).
    assert_eq!(parse_err(doc! {"b": 0, "a": {"$add": [1]}}).0, 31252);
    // A bad find $slice falls back to the $slice expression and reports both.
    let (_, msg) = parse_err(doc! {"a": {"$slice": [1]}});
    assert!(
        msg.starts_with(
            "Invalid $slice syntax. The given syntax { $slice: [ 1 ] } did not match the find() \
             syntax because :: Location31272: $slice array argument should be of form [skip, limit] \
             :: The given syntax did not match the expression $slice syntax. :: caused by :: "
        ),
        "{msg}"
    );
    for (arg, prefix) in [
        (
            bson::bson!(["x", 1]),
            "Location31257: $slice expects the skip argument to be a number, got string",
        ),
        (
            bson::bson!([1, "x"]),
            "Location31258: $slice expects the limit argument to be a number, got string",
        ),
        (
            bson::bson!([1, 0]),
            "Location31259: $slice limit must be positive, got 0",
        ),
        (
            bson::bson!([1, -1]),
            "Location31259: $slice limit must be positive, got -1",
        ),
        (
            Bson::String("x".into()),
            "Location31273: $slice only supports numbers and [skip, limit] arrays",
        ),
    ] {
        // Arguments that are valid `$slice` *expression* syntax parse, as in mongod,
        // and fail when evaluated; the others fail at parse time with both reasons.
        let spec = doc! {"a": {"$slice": arg.clone()}};
        match Projection::parse(&spec) {
            Err(e) => assert!(e.message.contains(prefix), "{arg:?}: {}", e.message),
            Ok(p) => assert!(
                p.apply(&doc! {"a": [1, 2]}, None).is_err(),
                "{arg:?} evaluated"
            ),
        }
    }
    // {a: {$id: 1}} is a sub-projection of the DBRef field, not an expression.
    assert_eq!(
        project(
            doc! {"r": {"$id": 1}},
            doc! {"_id": 1, "r": {"$ref": "c", "$id": 5}}
        ),
        doc! {"_id": 1, "r": {"$id": 5}}
    );
}

#[test]
fn aggregation_dialect() {
    let err = |spec: Document| {
        let e = Projection::parse_aggregation(&spec).expect_err("refused");
        (e.code, e.message)
    };
    assert_eq!(
        err(doc! {"a.$": 1}),
        (31324, "Invalid $project :: caused by :: Cannot use positional projection in aggregation projection".to_owned())
    );
    assert_eq!(
        err(doc! {"a": {"$elemMatch": {"x": 1}}}),
        (
            168,
            "Invalid $project :: caused by :: Cannot use $elemMatch in this context".to_owned()
        )
    );
    assert_eq!(
        err(doc! {}),
        (51272, "Invalid $project :: caused by :: projection specification must have at least one field".to_owned())
    );
    assert_eq!(err(doc! {"a": 1, "b": 0}).0, 31254);
    let p = Projection::parse_aggregation(&doc! {"a.b": 1, "_id": 0}).expect("parses");
    assert!(p.is_inclusion());
    assert_eq!(
        p.apply(&doc! {"_id": 1, "a": [{"b": 1, "c": 2}, 3]}, None)
            .expect("applies"),
        doc! {"a": [{"b": 1}]}
    );
    let p = Projection::parse_aggregation(&doc! {"a": 0}).expect("parses");
    assert!(!p.is_inclusion());
}
