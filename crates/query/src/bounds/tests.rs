use super::*;
use bson::{doc, oid::ObjectId, DateTime};

/// The bounds of `filter` on `path`, as mongod's interval strings (ascending).
fn shown(filter: Document, path: &str, multikey: bool) -> Option<Vec<String>> {
    let f = Filter::parse(&filter).expect("filter parses");
    path_bounds(&f, path, multikey).map(|l| l.iter().map(|i| i.to_mongo_string(false)).collect())
}

fn regex(pattern: &str) -> Bson {
    Bson::RegularExpression(bson::Regex {
        pattern: pattern.try_into().expect("cstr"),
        options: "".try_into().expect("cstr"),
    })
}

fn strs(v: &[&str]) -> Option<Vec<String>> {
    Some(v.iter().map(|s| (*s).to_owned()).collect())
}

#[test]
fn bounds_follow_mongod() {
    let oid = ObjectId::parse_str("65a1b2c3d4e5f60718293a4b").expect("oid");
    let cases: Vec<(Document, bool, Option<Vec<String>>)> = vec![
        // Equalities and $in.
        (doc! {"a": 5}, false, strs(&["[5, 5]"])),
        (doc! {"a": {"$eq": "x"}}, false, strs(&["[\"x\", \"x\"]"])),
        (
            doc! {"a": {"$in": [3, 1, 2, 1.0]}},
            false,
            strs(&["[1, 1]", "[2, 2]", "[3, 3]"]),
        ),
        (doc! {"a": {"$in": []}}, false, strs(&[])),
        (doc! {"a": {"x": 1}}, false, strs(&["[{ x: 1 }, { x: 1 }]"])),
        (doc! {"a": f64::NAN}, false, strs(&["[nan.0, nan.0]"])),
        // Ranges stay in the type bracket of their operand.
        (doc! {"a": {"$gt": 5}}, false, strs(&["(5, inf.0]"])),
        (doc! {"a": {"$gte": 5}}, false, strs(&["[5, inf.0]"])),
        (doc! {"a": {"$lt": 5}}, false, strs(&["[-inf.0, 5)"])),
        (doc! {"a": {"$lte": 5.5}}, false, strs(&["[-inf.0, 5.5]"])),
        (doc! {"a": {"$gt": 1, "$lt": 5}}, false, strs(&["(1, 5)"])),
        (
            doc! {"a": {"$gte": "b", "$lt": "d"}},
            false,
            strs(&["[\"b\", \"d\")"]),
        ),
        (doc! {"a": {"$lt": "m"}}, false, strs(&["[\"\", \"m\")"])),
        (doc! {"a": {"$gt": "m"}}, false, strs(&["(\"m\", {})"])),
        (
            doc! {"a": {"$gt": {"x": 1}}},
            false,
            strs(&["({ x: 1 }, [])"]),
        ),
        (doc! {"a": {"$gte": false}}, false, strs(&["[false, true]"])),
        (
            doc! {"a": {"$gt": DateTime::from_millis(5)}},
            false,
            Some(vec![format!(
                "({}, {}]",
                util::bson_to_string(&Bson::DateTime(DateTime::from_millis(5))),
                util::bson_to_string(&Bson::DateTime(DateTime::from_millis(i64::MAX)))
            )]),
        ),
        (
            doc! {"a": {"$lte": oid}},
            false,
            Some(vec![format!(
                "[{}, {}]",
                util::bson_to_string(&Bson::ObjectId(ObjectId::from([0; 12]))),
                util::bson_to_string(&Bson::ObjectId(oid))
            )]),
        ),
        // Different brackets never overlap: nothing can match.
        (doc! {"a": {"$gt": 5, "$lt": "z"}}, false, strs(&[])),
        (doc! {"a": {"$gt": 5, "$lt": 1}}, false, strs(&[])),
        // Intersections of points and ranges.
        (
            doc! {"a": {"$in": [1, 2, 3]}, "$and": [{"a": {"$gte": 2}}]},
            false,
            strs(&["[2, 2]", "[3, 3]"]),
        ),
        (doc! {"$and": [{"a": 1}, {"a": 2}]}, false, strs(&[])),
        (doc! {"$or": [{"a": 1}]}, false, strs(&["[1, 1]"])),
        (doc! {"a": {"$all": [1, 2]}}, false, strs(&[])),
        // Multikey paths never intersect separate predicates: one of them is used.
        (
            doc! {"a": {"$gt": 1, "$lt": 5}},
            true,
            strs(&["(1, inf.0]"]),
        ),
        (doc! {"$and": [{"a": 1}, {"a": 2}]}, true, strs(&["[1, 1]"])),
        (doc! {"a": {"$all": [1, 2]}}, true, strs(&["[1, 1]"])),
        (
            doc! {"a": {"$gte": 2}, "$and": [{"a": {"$in": [1, 2, 3]}}]},
            true,
            strs(&["[1, 1]", "[2, 2]", "[3, 3]"]),
        ),
        // ... but one element's $elemMatch predicates do.
        (
            doc! {"a": {"$elemMatch": {"$gt": 1, "$lt": 5}}},
            true,
            strs(&["(1, 5)"]),
        ),
        // Anything that can match null, missing or arrays gives no bounds.
        (doc! {"a": null}, false, None),
        (doc! {"a": {"$lte": null}}, false, None),
        (doc! {"a": {"$gte": null}}, false, None),
        (doc! {"a": {"$in": [1, null]}}, false, None),
        (doc! {"a": [1, 2]}, false, None),
        (doc! {"a": {"$in": [[1], 2]}}, false, None),
        (doc! {"a": {"$gt": [1]}}, false, None),
        (doc! {"a": {"$exists": true}}, false, None),
        (doc! {"a": {"$ne": 1}}, false, None),
        (doc! {"a": {"$nin": [1]}}, false, None),
        (doc! {"a": {"$not": {"$gt": 1}}}, false, None),
        (doc! {"a": {"$gt": Bson::MinKey}}, false, None),
        (doc! {"a": {"$lt": Bson::MaxKey}}, false, None),
        (doc! {"a": {"$gt": f64::NAN}}, false, None),
        (doc! {"a": {"$type": "string"}}, false, None),
        // Regexes: the strings with their anchored literal prefix, and the regex itself.
        (
            doc! {"a": {"$regex": "^x"}},
            false,
            strs(&["[\"x\", \"y\")", "[/^x/, /^x/]"]),
        ),
        (
            doc! {"a": regex("^ab*c")},
            false,
            strs(&["[\"a\", \"b\")", "[/^ab*c/, /^ab*c/]"]),
        ),
        (
            doc! {"a": regex("^ab+c")},
            false,
            strs(&["[\"ab\", \"ac\")", "[/^ab+c/, /^ab+c/]"]),
        ),
        (
            doc! {"a": regex("\\Aq.")},
            false,
            strs(&["[\"q\", \"r\")", "[/\\Aq./, /\\Aq./]"]),
        ),
        (
            doc! {"a": regex("b")},
            false,
            strs(&["[\"\", {})", "[/b/, /b/]"]),
        ),
        (
            doc! {"a": regex("^")},
            false,
            strs(&["[\"\", {})", "[/^/, /^/]"]),
        ),
        (
            doc! {"a": regex("^a|^b")},
            false,
            strs(&["[\"\", {})", "[/^a|^b/, /^a|^b/]"]),
        ),
        (
            doc! {"a": {"$regex": "^x", "$options": "i"}},
            false,
            strs(&["[\"\", {})", "[/^x/i, /^x/i]"]),
        ),
        (
            doc! {"a": {"$regex": "^x", "$options": "m"}},
            false,
            strs(&["[\"\", {})", "[/^x/m, /^x/m]"]),
        ),
        (
            doc! {"a": regex("^\u{10FFFF}")},
            false,
            strs(&["[\"\", {})", "[/^\u{10FFFF}/, /^\u{10FFFF}/]"]),
        ),
        (
            doc! {"a": regex("^a\u{10FFFF}")},
            false,
            strs(&[
                "[\"a\u{10FFFF}\", \"b\")",
                "[/^a\u{10FFFF}/, /^a\u{10FFFF}/]",
            ]),
        ),
        (
            doc! {"a": regex("^\u{D7FF}")},
            false,
            strs(&["[\"\u{D7FF}\", \"\u{E000}\")", "[/^\u{D7FF}/, /^\u{D7FF}/]"]),
        ),
        (
            doc! {"a": {"$gt": 5}, "$and": [{"a": regex("^x")}]},
            false,
            strs(&[]),
        ),
        (doc! {"a": {"$in": [1, regex("x")]}}, true, None),
        (
            doc! {"a": {"$eq": regex("x")}},
            false,
            strs(&["[/x/, /x/]"]),
        ),
        (doc! {"$or": [{"a": 1}, {"a": 2}]}, false, None),
        (doc! {"$nor": [{"a": 1}]}, false, None),
        (doc! {"b": 1}, false, None),
        (doc! {"a.b": 1}, false, None),
    ];
    for (filter, multikey, want) in cases {
        assert_eq!(
            shown(filter.clone(), "a", multikey),
            want,
            "{filter:?} multikey={multikey}"
        );
    }
    assert_eq!(
        shown(doc! {"a.b": {"$gt": 1}}, "a.b", false),
        strs(&["(1, inf.0]"])
    );
}

#[test]
fn intervals_print_and_reverse_as_mongod() {
    let i = Interval {
        start: Bson::Int32(1),
        start_inclusive: true,
        end: Bson::Int32(5),
        end_inclusive: false,
    };
    assert_eq!(i.to_mongo_string(false), "[1, 5)");
    assert_eq!(i.to_mongo_string(true), "(5, 1]");
    assert_eq!(Interval::all().to_mongo_string(false), "[MinKey, MaxKey]");
    assert_eq!(Interval::all().to_mongo_string(true), "[MaxKey, MinKey]");
    assert!(Interval::point(Bson::Int32(1)).is_point());
    assert!(!i.is_point() && !i.is_empty());
    assert!(i.contains(&Bson::Double(4.5)) && !i.contains(&Bson::Int32(5)));
}

#[test]
fn implication_decides_partial_index_use() {
    let cases: Vec<(Document, Document, bool)> = vec![
        // pymongo's test_index_filter.
        (doc! {"x": 6, "a": 1}, doc! {"a": {"$lte": 1.5}}, true),
        (
            doc! {"x": {"$gt": 1}, "a": 1},
            doc! {"a": {"$lte": 1.5}},
            true,
        ),
        (
            doc! {"x": 6, "a": {"$lte": 1}},
            doc! {"a": {"$lte": 1.5}},
            true,
        ),
        (
            doc! {"x": 6, "a": {"$lte": 1.6}},
            doc! {"a": {"$lte": 1.5}},
            false,
        ),
        (doc! {"x": 6}, doc! {"a": {"$lte": 1.5}}, false),
        // Ranges.
        (doc! {"a": {"$lt": 1.5}}, doc! {"a": {"$lte": 1.5}}, true),
        (doc! {"a": {"$lte": 1.5}}, doc! {"a": {"$lt": 1.5}}, false),
        (doc! {"a": {"$gt": 6}}, doc! {"a": {"$gt": 5}}, true),
        (doc! {"a": {"$gte": 5}}, doc! {"a": {"$gt": 5}}, false),
        (doc! {"a": {"$gte": 6}}, doc! {"a": {"$gt": 5}}, true),
        (doc! {"a": {"$gt": 5}}, doc! {"a": {"$gte": 5}}, true),
        (doc! {"a": {"$gt": 5}}, doc! {"a": {"$lt": 10}}, false),
        (
            doc! {"a": {"$gt": 5, "$lt": 7}},
            doc! {"a": {"$lt": 10}},
            true,
        ),
        // Other brackets never imply a numeric comparison.
        (doc! {"a": "s"}, doc! {"a": {"$lte": 1.5}}, false),
        (doc! {"a": {"$lt": "s"}}, doc! {"a": {"$lte": 1.5}}, false),
        // $in: every value must imply it.
        (
            doc! {"a": {"$in": [1, 1.2]}},
            doc! {"a": {"$lte": 1.5}},
            true,
        ),
        (
            doc! {"a": {"$in": [1, 2]}},
            doc! {"a": {"$lte": 1.5}},
            false,
        ),
        (doc! {"a": 2}, doc! {"a": {"$in": [1, 2]}}, true),
        (
            doc! {"a": {"$in": [2, 1]}},
            doc! {"a": {"$in": [1, 2, 3]}},
            true,
        ),
        (
            doc! {"a": {"$in": [2, 4]}},
            doc! {"a": {"$in": [1, 2, 3]}},
            false,
        ),
        // $exists: true.
        (doc! {"a": 5}, doc! {"a": {"$exists": true}}, true),
        (doc! {"a": {"$gt": 1}}, doc! {"a": {"$exists": true}}, true),
        (doc! {"a": null}, doc! {"a": {"$exists": true}}, false),
        (
            doc! {"a": {"$in": [1, null]}},
            doc! {"a": {"$exists": true}},
            false,
        ),
        (
            doc! {"a": {"$gt": Bson::MinKey}},
            doc! {"a": {"$exists": true}},
            false,
        ),
        (doc! {"b": 1}, doc! {"a": {"$exists": true}}, false),
        // Several conjuncts must each be implied.
        (
            doc! {"a": 1, "b": 2},
            doc! {"a": {"$gte": 1}, "b": {"$gte": 1}},
            true,
        ),
        (
            doc! {"a": 1},
            doc! {"a": {"$gte": 1}, "b": {"$gte": 1}},
            false,
        ),
        (
            doc! {"$and": [{"a": 1}, {"b": 2}]},
            doc! {"a": 1, "b": {"$gt": 0}},
            true,
        ),
        // Null and arrays only when identical.
        (doc! {"a": null}, doc! {"a": null}, true),
        (doc! {"a": [1]}, doc! {"a": [1]}, true),
        (doc! {"a": [1]}, doc! {"a": {"$gte": 1}}, false),
        // Anything else only when identical.
        (
            doc! {"a": {"$type": "string"}, "b": 1},
            doc! {"a": {"$type": "string"}},
            true,
        ),
        (
            doc! {"a": {"$type": "int"}},
            doc! {"a": {"$type": "string"}},
            false,
        ),
        (
            doc! {"$or": [{"a": 1}, {"b": 1}], "c": 1},
            doc! {"$or": [{"a": 1}, {"b": 1}]},
            true,
        ),
        (
            doc! {"$or": [{"a": 1}, {"b": 1}]},
            doc! {"$or": [{"a": 1}, {"b": 2}]},
            false,
        ),
        (doc! {"a": 1}, doc! {}, true),
    ];
    for (query, partial, want) in cases {
        let f = Filter::parse(&query).expect("query parses");
        assert_eq!(
            implies(&query, &f, &partial),
            want,
            "{query:?} => {partial:?}"
        );
    }
}
