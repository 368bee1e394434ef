//! Table-driven tests of the expression language, mostly the examples of the MongoDB
//! manual's operator pages plus null/missing/array edge cases and mongod's errors.

use bson::{doc, Bson, Document};

use super::*;

fn dec(s: &str) -> Bson {
    Bson::Decimal128(s.parse().expect("test decimal"))
}

fn eval_in(expr: Bson, root: &Document) -> Result<Option<Bson>, MongoError> {
    let env = Env {
        now: bson::DateTime::from_millis(1_700_000_000_000),
        cluster_time: Some(bson::Timestamp {
            time: 1,
            increment: 2,
        }),
        vars: vec![("uservar".into(), Bson::Int32(42))],
        collation: None,
    };
    Expr::parse_with_vars(&expr, &["uservar".to_owned()])?.evaluate(root, &env)
}

/// Evaluates `expr` against `root` and compares with `want` (`None` = missing),
/// requiring the same BSON type, not just mongod equality.
pub(super) fn check(root: &Document, cases: &[(Bson, Option<Bson>)]) {
    for (expr, want) in cases {
        let got = eval_in(expr.clone(), root);
        match got {
            Ok(got) => assert_eq!(format!("{got:?}"), format!("{want:?}"), "{expr:?}"),
            Err(e) => panic!("{expr:?}: unexpected error {} {}", e.code, e.message),
        }
    }
}

/// Checks that each expression fails with the code (and message, when not empty).
pub(super) fn check_err(root: &Document, cases: &[(Bson, i32, &str)]) {
    for (expr, code, msg) in cases {
        match eval_in(expr.clone(), root) {
            Ok(v) => panic!("{expr:?}: expected error {code}, got {v:?}"),
            Err(e) => {
                assert_eq!(e.code, *code, "{expr:?}: {}", e.message);
                if !msg.is_empty() {
                    assert_eq!(e.message, *msg, "{expr:?}");
                }
            }
        }
    }
}

fn b(v: impl Into<Bson>) -> Option<Bson> {
    Some(v.into())
}

#[test]
fn literals_paths_and_variables() {
    let root = doc! {
        "a": 1, "s": "x", "n": null,
        "o": {"p": {"q": 5}},
        "arr": [{"b": 1}, {"b": [2, 3]}, {"c": 1}, 7, [{"b": 9}]],
        "nums": [1, 2, 3],
    };
    check(
        &root,
        &[
            (Bson::Int32(5), b(5)),
            (Bson::String("plain".into()), b("plain")),
            (Bson::String("$a".into()), b(1)),
            (Bson::String("$missing".into()), None),
            (Bson::String("$o.p.q".into()), b(5)),
            (Bson::String("$o.p.zz".into()), None),
            (Bson::String("$a.b".into()), None),
            // Arrays of documents map the rest of the path, skipping missing values and
            // non-documents (nested arrays are not entered).
            (
                Bson::String("$arr.b".into()),
                b(vec![Bson::Int32(1), Bson::Array(vec![2.into(), 3.into()])]),
            ),
            // Numeric components do not index arrays in expressions.
            (Bson::String("$nums.0".into()), b(Vec::<Bson>::new())),
            (Bson::String("$$CURRENT.a".into()), b(1)),
            (Bson::String("$$ROOT.o.p".into()), b(doc! {"q": 5})),
            (Bson::String("$$REMOVE".into()), None),
            (
                Bson::String("$$NOW".into()),
                b(bson::DateTime::from_millis(1_700_000_000_000)),
            ),
            (
                Bson::String("$$CLUSTER_TIME".into()),
                b(bson::Timestamp {
                    time: 1,
                    increment: 2,
                }),
            ),
            (Bson::String("$$KEEP".into()), b(KEEP)),
            (Bson::String("$$PRUNE".into()), b(PRUNE)),
            (Bson::String("$$DESCEND".into()), b(DESCEND)),
            (Bson::String("$$uservar".into()), b(42)),
            (doc! {"$literal": "$a"}.into(), b("$a")),
            (
                doc! {"$literal": {"$add": [1, 2]}}.into(),
                b(doc! {"$add": [1, 2]}),
            ),
            (doc! {"$const": 1}.into(), b(1)),
            // Expression objects drop missing fields; arrays turn them into null.
            (
                doc! {"x": "$a", "y": "$missing", "z": {"w": "$s"}}.into(),
                b(doc! {"x": 1, "z": {"w": "x"}}),
            ),
            (
                Bson::Array(vec!["$a".into(), "$missing".into(), "$n".into()]),
                b(vec![Bson::Int32(1), Bson::Null, Bson::Null]),
            ),
            (doc! {}.into(), b(doc! {})),
        ],
    );
    check_err(
        &root,
        &[
            (
                Bson::String("$".into()),
                16872,
                "'$' by itself is not a valid FieldPath",
            ),
            (
                Bson::String("$a..b".into()),
                15998,
                "FieldPath field names may not be empty strings.",
            ),
            (Bson::String("$a.$b".into()), 16410, ""),
            (
                Bson::String("$$undefinedVar".into()),
                17276,
                "Use of undefined variable: undefinedVar",
            ),
            (
                Bson::String("$$".into()),
                16866,
                "empty variable names are not allowed",
            ),
            (
                Bson::String("$$a-b".into()),
                16868,
                "'a-b' contains an invalid character for a variable name: '-'",
            ),
            (doc! {"$add": [1], "x": 1}.into(), 15983, ""),
            (doc! {"x": 1, "$add": [1]}.into(), 16410, ""),
            (
                doc! {"a.b": 1}.into(),
                16412,
                "FieldPath field names may not contain '.'. Consider using $getField or $setField.",
            ),
            (doc! {"": 1}.into(), 15998, ""),
            (
                doc! {"$foo": 1}.into(),
                168,
                "Unrecognized expression '$foo'",
            ),
            (
                doc! {"$function": {}}.into(),
                115,
                "Eddy does not support the expression operator $function",
            ),
            (doc! {"$meta": "randVal"}.into(), 115, ""),
        ],
    );
}

#[test]
fn constants() {
    let c = |v: Bson| Expr::parse(&v).expect("parse").is_constant();
    assert!(c(doc! {"$add": [1, 2]}.into()));
    assert!(c(doc! {"x": [1, {"$literal": "$a"}]}.into()));
    assert!(!c(doc! {"$add": [1, "$a"]}.into()));
    assert!(!c(Bson::String("$$ROOT".into())));
    assert!(!c(Bson::String("$$NOW".into())));
}

#[test]
fn comparison() {
    let root = doc! {"qty": 250, "n": null};
    check(
        &root,
        &[
            (doc! {"$cmp": ["$qty", 250]}.into(), b(0)),
            (doc! {"$cmp": ["$qty", 300]}.into(), b(-1)),
            (doc! {"$cmp": ["$qty", 100]}.into(), b(1)),
            (doc! {"$eq": ["$qty", 250.0]}.into(), b(true)),
            (doc! {"$ne": ["$qty", 250]}.into(), b(false)),
            (doc! {"$gt": ["$qty", 250]}.into(), b(false)),
            (doc! {"$gte": ["$qty", 250]}.into(), b(true)),
            (doc! {"$lt": ["$qty", 300]}.into(), b(true)),
            (doc! {"$lte": ["$qty", 200]}.into(), b(false)),
            // Missing is below null and not equal to it; null equals null.
            (doc! {"$eq": ["$missing", null]}.into(), b(false)),
            (doc! {"$lt": ["$missing", null]}.into(), b(true)),
            (doc! {"$eq": ["$n", null]}.into(), b(true)),
            (doc! {"$eq": ["$missing", "$alsoMissing"]}.into(), b(true)),
            // Cross-type order: numbers < strings.
            (doc! {"$lt": [5, "a"]}.into(), b(true)),
        ],
    );
    check_err(
        &root,
        &[
            (
                doc! {"$eq": [1]}.into(),
                16020,
                "Expression $eq takes exactly 2 arguments. 1 were passed in.",
            ),
            (doc! {"$cmp": 1}.into(), 16020, ""),
        ],
    );
}

#[test]
fn boolean() {
    let root = doc! {"qty": 250};
    check(
        &root,
        &[
            (
                doc! {"$and": [{"$gt": ["$qty", 100]}, {"$lt": ["$qty", 250]}]}.into(),
                b(false),
            ),
            (doc! {"$and": [1, "green"]}.into(), b(true)),
            (doc! {"$and": []}.into(), b(true)),
            (doc! {"$and": [[]]}.into(), b(true)),
            (doc! {"$and": [null, true]}.into(), b(false)),
            (doc! {"$and": [0, true]}.into(), b(false)),
            (
                doc! {"$or": [{"$gt": ["$qty", 250]}, {"$lt": ["$qty", 200]}]}.into(),
                b(false),
            ),
            (doc! {"$or": []}.into(), b(false)),
            (doc! {"$or": [null, 0, "$missing", 1]}.into(), b(true)),
            (doc! {"$not": [{"$gt": ["$qty", 250]}]}.into(), b(true)),
            (doc! {"$not": [[false]]}.into(), b(false)),
            (doc! {"$not": [null]}.into(), b(true)),
            (doc! {"$not": "$missing"}.into(), b(true)),
            // $and short-circuits: the division by zero is never evaluated.
            (doc! {"$and": [false, {"$divide": [1, 0]}]}.into(), b(false)),
        ],
    );
    check_err(&root, &[(doc! {"$not": [1, 2]}.into(), 16020, "")]);
}

#[test]
fn conditional() {
    let root = doc! {"qty": 300, "desc": null, "x": "y"};
    check(
        &root,
        &[
            (
                doc! {"$cond": {"if": {"$gte": ["$qty", 250]}, "then": 30, "else": 20}}.into(),
                b(30),
            ),
            (
                doc! {"$cond": [{"$gte": ["$qty", 500]}, 30, 20]}.into(),
                b(20),
            ),
            (doc! {"$cond": ["$missing", 1, "$missing"]}.into(), None),
            (
                doc! {"$ifNull": ["$desc", "Unspecified"]}.into(),
                b("Unspecified"),
            ),
            (doc! {"$ifNull": ["$missing", "$desc", "$x"]}.into(), b("y")),
            (doc! {"$ifNull": ["$missing", "$alsoMissing"]}.into(), None),
            (doc! {"$ifNull": ["$qty", "$x"]}.into(), b(300)),
            (
                doc! {"$switch": {"branches": [
                    {"case": {"$lt": ["$qty", 100]}, "then": "low"},
                    {"case": {"$lt": ["$qty", 500]}, "then": "mid"},
                ], "default": "high"}}
                .into(),
                b("mid"),
            ),
            (
                doc! {"$switch": {"branches": [{"case": false, "then": 1}], "default": "$missing"}}
                    .into(),
                None,
            ),
        ],
    );
    check_err(
        &root,
        &[
            (
                doc! {"$cond": {"if": 1, "then": 2}}.into(),
                17082,
                "Missing 'else' parameter to $cond",
            ),
            (
                doc! {"$cond": {"if": 1, "then": 2, "else": 3, "x": 1}}.into(),
                17083,
                "Unrecognized parameter to $cond: x",
            ),
            (doc! {"$cond": [1, 2]}.into(), 16020, ""),
            (
                doc! {"$ifNull": ["$a"]}.into(),
                1257300,
                "$ifNull needs at least two arguments, had: 1",
            ),
            (
                doc! {"$switch": {"branches": []}}.into(),
                40068,
                "$switch requires at least one branch.",
            ),
            (
                doc! {"$switch": {"branches": [{"case": false, "then": 1}]}}.into(),
                40066,
                "",
            ),
            (
                doc! {"$switch": 1}.into(),
                40060,
                "$switch requires an object as an argument, found: int",
            ),
            (
                doc! {"$switch": {"branches": [{"case": 1}]}}.into(),
                40065,
                "",
            ),
            (
                doc! {"$switch": {"branches": [{"case": 1, "then": 1, "x": 1}]}}.into(),
                40063,
                "",
            ),
        ],
    );
}

#[test]
fn arithmetic() {
    let date = bson::DateTime::from_millis(1_393_660_800_000); // 2014-03-01
    let root = doc! {"price": 10, "fee": 2, "date": date, "l": i64::MAX, "i": i32::MAX};
    check(
        &root,
        &[
            (doc! {"$add": ["$price", "$fee"]}.into(), b(12)),
            (doc! {"$add": [1, 2.5]}.into(), b(3.5)),
            (doc! {"$add": [1, 2i64]}.into(), b(3i64)),
            (doc! {"$add": []}.into(), b(0)),
            (doc! {"$add": ["$i", 1]}.into(), b(2_147_483_648i64)),
            (doc! {"$add": ["$l", 1]}.into(), b(9.223_372_036_854_776e18)),
            (doc! {"$add": [1, null]}.into(), b(Bson::Null)),
            (doc! {"$add": [1, "$missing"]}.into(), b(Bson::Null)),
            (
                doc! {"$add": [dec("1.1"), dec("2.2")]}.into(),
                b(dec("3.3")),
            ),
            (doc! {"$add": [dec("1"), 2]}.into(), b(dec("3"))),
            (
                doc! {"$add": ["$date", 3 * 24 * 60 * 60000]}.into(),
                b(bson::DateTime::from_millis(1_393_660_800_000 + 259_200_000)),
            ),
            (
                doc! {"$add": [1.5, "$date"]}.into(),
                b(bson::DateTime::from_millis(1_393_660_800_002)),
            ),
            (doc! {"$subtract": [5, 3]}.into(), b(2)),
            (doc! {"$subtract": [5.5, 3]}.into(), b(2.5)),
            (
                doc! {"$subtract": [i64::MIN, 1]}.into(),
                b(-9.223_372_036_854_776e18),
            ),
            (
                doc! {"$subtract": ["$date", 5 * 60 * 1000]}.into(),
                b(bson::DateTime::from_millis(1_393_660_800_000 - 300_000)),
            ),
            (doc! {"$subtract": ["$date", "$date"]}.into(), b(0i64)),
            (doc! {"$subtract": [null, 1]}.into(), b(Bson::Null)),
            (doc! {"$multiply": ["$price", 3]}.into(), b(30)),
            (doc! {"$multiply": ["$i", 2]}.into(), b(4_294_967_294i64)),
            (
                doc! {"$multiply": ["$l", 2]}.into(),
                b(1.8446744073709552e19),
            ),
            (doc! {"$multiply": [dec("1.5"), 2]}.into(), b(dec("3.0"))),
            (doc! {"$multiply": []}.into(), b(1)),
            (doc! {"$divide": [9, 2]}.into(), b(4.5)),
            (doc! {"$divide": [8, 2]}.into(), b(4.0)),
            (doc! {"$divide": [dec("1"), 4]}.into(), b(dec("0.25"))),
            (doc! {"$divide": ["$missing", 0]}.into(), b(Bson::Null)),
            (doc! {"$mod": [80, 7]}.into(), b(3)),
            (doc! {"$mod": [-5, 3]}.into(), b(-2)),
            (doc! {"$mod": [5.5, 2]}.into(), b(1.5)),
            (doc! {"$mod": [5i64, 3]}.into(), b(2i64)),
            (doc! {"$mod": [5, 3.0]}.into(), b(2)),
            (doc! {"$mod": [dec("5.5"), 2]}.into(), b(dec("1.5"))),
            (doc! {"$abs": -1}.into(), b(1)),
            (doc! {"$abs": -1.5}.into(), b(1.5)),
            (doc! {"$abs": i32::MIN}.into(), b(2_147_483_648i64)),
            (doc! {"$abs": null}.into(), b(Bson::Null)),
            (doc! {"$ceil": 7.80}.into(), b(8.0)),
            (doc! {"$ceil": -2.8}.into(), b(-2.0)),
            (doc! {"$ceil": 1}.into(), b(1)),
            (doc! {"$floor": -2.8}.into(), b(-3.0)),
            (doc! {"$floor": dec("-2.8")}.into(), b(dec("-3"))),
            (doc! {"$round": [10.5, 0]}.into(), b(10.0)),
            (doc! {"$round": [11.5, 0]}.into(), b(12.0)),
            (doc! {"$round": [19.25, 1]}.into(), b(19.2)),
            (doc! {"$round": [28.73, -1]}.into(), b(30.0)),
            (doc! {"$round": [34.32, -2]}.into(), b(0.0)),
            (doc! {"$round": [1234, -2]}.into(), b(1200)),
            (doc! {"$round": [1250, -2]}.into(), b(1200)),
            (doc! {"$round": [dec("1.2345"), 2]}.into(), b(dec("1.23"))),
            (doc! {"$round": "$missing"}.into(), b(Bson::Null)),
            (doc! {"$trunc": [19.25, 1]}.into(), b(19.2)),
            (doc! {"$trunc": [-19.99, 0]}.into(), b(-19.0)),
            (doc! {"$trunc": [1299, -2]}.into(), b(1200)),
            (doc! {"$trunc": 5.7}.into(), b(5.0)),
            (doc! {"$exp": 0}.into(), b(1.0)),
            (doc! {"$ln": 1}.into(), b(0.0)),
            (doc! {"$log": [100, 10]}.into(), b(2.0)),
            (doc! {"$log10": 1000}.into(), b(3.0)),
            (doc! {"$pow": [5, 0]}.into(), b(1)),
            (doc! {"$pow": [5, 2]}.into(), b(25)),
            (doc! {"$pow": [5, -2]}.into(), b(0.04)),
            (doc! {"$pow": [-5, 0.5]}.into(), b(f64::NAN)),
            (doc! {"$pow": [2, 40]}.into(), b(1_099_511_627_776i64)),
            (doc! {"$pow": [2i64, 3]}.into(), b(8i64)),
            (doc! {"$pow": [2, 64]}.into(), b(1.8446744073709552e19)),
            (doc! {"$sqrt": 25}.into(), b(5.0)),
            (doc! {"$sqrt": null}.into(), b(Bson::Null)),
            (doc! {"$bitAnd": [12, 10]}.into(), b(8)),
            (doc! {"$bitOr": [12, 10i64]}.into(), b(14i64)),
            (doc! {"$bitXor": [12, 10]}.into(), b(6)),
            (doc! {"$bitNot": 0}.into(), b(-1)),
            (doc! {"$sin": 0}.into(), b(0.0)),
            (
                doc! {"$degreesToRadians": 180}.into(),
                b(std::f64::consts::PI),
            ),
        ],
    );
    check_err(
        &root,
        &[
            (
                doc! {"$add": [1, "a"]}.into(),
                14,
                "$add only supports numeric or date types, not string",
            ),
            (
                doc! {"$add": ["$date", "$date"]}.into(),
                16612,
                "only one date allowed in an $add expression",
            ),
            (
                doc! {"$subtract": [1, "a"]}.into(),
                14,
                "can't $subtract string from int",
            ),
            (
                doc! {"$subtract": ["$date", "a"]}.into(),
                14,
                "can't $subtract string from Date",
            ),
            (
                doc! {"$multiply": [1, "a"]}.into(),
                14,
                "$multiply only supports numeric types, not string",
            ),
            (doc! {"$divide": [1, 0]}.into(), 2, "can't $divide by zero"),
            (
                doc! {"$divide": [dec("1"), 0]}.into(),
                2,
                "can't $divide by zero",
            ),
            (
                doc! {"$divide": [1, "a"]}.into(),
                14,
                "$divide only supports numeric types, not int and string",
            ),
            (doc! {"$mod": [1, 0]}.into(), 16610, "can't $mod by zero"),
            (
                doc! {"$mod": [1, "a"]}.into(),
                16611,
                "$mod only supports numeric types, not int and string",
            ),
            (
                doc! {"$abs": "a"}.into(),
                28765,
                "$abs only supports numeric types, not string",
            ),
            (
                doc! {"$abs": i64::MIN}.into(),
                28680,
                "can't take $abs of long long min",
            ),
            (
                doc! {"$ln": 0}.into(),
                28766,
                "$ln's argument must be a positive number, but is 0",
            ),
            (
                doc! {"$log10": -1}.into(),
                28761,
                "$log10's argument must be a positive number, but is -1",
            ),
            (
                doc! {"$log": [10, 1]}.into(),
                28759,
                "$log's base must be a positive number not equal to 1, but is 1",
            ),
            (
                doc! {"$log": ["a", 1]}.into(),
                28756,
                "$log's argument must be numeric, not string",
            ),
            (
                doc! {"$sqrt": -1}.into(),
                28714,
                "$sqrt's argument must be greater than or equal to 0",
            ),
            (
                doc! {"$pow": [0, -1]}.into(),
                28764,
                "$pow cannot take a base of 0 and a negative exponent",
            ),
            (
                doc! {"$pow": ["a", 1]}.into(),
                28762,
                "$pow's base must be numeric, not string",
            ),
            (
                doc! {"$round": ["a", 1]}.into(),
                51081,
                "$round only supports numeric types, not string",
            ),
            (doc! {"$round": [1, 1.5]}.into(), 51082, ""),
            (
                doc! {"$round": [1, 101]}.into(),
                51083,
                "cannot apply $round with precision value 101 value must be in [-20, 100]",
            ),
            (
                doc! {"$round": [1, 2, 3]}.into(),
                28667,
                "Expression $round takes at least 1 arguments, and at most 2. 3 were passed in.",
            ),
            (
                doc! {"$acos": 2}.into(),
                50989,
                "cannot apply $acos to 2, value must be in [-1,1]",
            ),
            (
                doc! {"$bitAnd": [1, 1.5]}.into(),
                14,
                "$bitAnd only supports int and long operands.",
            ),
        ],
    );
}

#[test]
fn type_and_let() {
    let root = doc! {"a": 1, "b": [1, 2], "total": 10, "discounted": true};
    check(
        &root,
        &[
            (doc! {"$type": "a"}.into(), b("string")),
            (doc! {"$type": "$a"}.into(), b("int")),
            (doc! {"$type": "$missing"}.into(), b("missing")),
            (doc! {"$type": ["$b"]}.into(), b("array")),
            (doc! {"$type": [[1, 2]]}.into(), b("array")),
            (doc! {"$type": null}.into(), b("null")),
            (doc! {"$type": 1i64}.into(), b("long")),
            (doc! {"$type": dec("1")}.into(), b("decimal")),
            (doc! {"$isNumber": "$a"}.into(), b(true)),
            (doc! {"$isNumber": "1"}.into(), b(false)),
            (doc! {"$isNumber": "$missing"}.into(), b(false)),
            (
                doc! {"$let": {
                    "vars": {"total": {"$add": ["$total", 1]}, "discounted": {"$cond": {"if": "$discounted", "then": 0.9, "else": 1}}},
                    "in": {"$multiply": ["$$total", "$$discounted"]}
                }}
                .into(),
                b(9.9),
            ),
            // Nested scopes shadow; the definitions see only the outer scope.
            (
                doc! {"$let": {"vars": {"x": 1}, "in": {"$let": {"vars": {"x": {"$add": ["$$x", 1]}}, "in": "$$x"}}}}.into(),
                b(2),
            ),
            (doc! {"$let": {"vars": {"o": {"p": [{"q": 1}, {"q": 2}]}}, "in": "$$o.p.q"}}.into(), b(vec![Bson::Int32(1), Bson::Int32(2)])),
            // Rebinding CURRENT changes what "$field" means.
            (doc! {"$let": {"vars": {"CURRENT": {"a": 7}}, "in": "$a"}}.into(), b(7)),
            (doc! {"$let": {"vars": {"x": "$missing"}, "in": "$$x"}}.into(), None),
        ],
    );
    check_err(
        &root,
        &[
            (
                doc! {"$let": 1}.into(),
                16874,
                "$let only supports an object as its argument",
            ),
            (
                doc! {"$let": {"vars": {}}}.into(),
                16877,
                "Missing 'in' parameter to $let",
            ),
            (
                doc! {"$let": {"in": 1}}.into(),
                16876,
                "Missing 'vars' parameter to $let",
            ),
            (
                doc! {"$let": {"vars": {}, "in": 1, "x": 1}}.into(),
                16875,
                "Unrecognized parameter to $let: x",
            ),
            (
                doc! {"$let": {"vars": {"ROOT": 1}, "in": 1}}.into(),
                16867,
                "'ROOT' starts with an invalid character for a user variable name",
            ),
            (
                doc! {"$let": {"vars": {"x": "$$x"}, "in": 1}}.into(),
                17276,
                "Use of undefined variable: x",
            ),
            (
                doc! {"$let": {"vars": {"x": 1}, "in": "$$y"}}.into(),
                17276,
                "Use of undefined variable: y",
            ),
            (
                doc! {"$type": [1, 2]}.into(),
                16020,
                "Expression $type takes exactly 1 arguments. 2 were passed in.",
            ),
        ],
    );
}

#[test]
fn expr_in_filter() {
    use crate::filter::Filter;
    let f = Filter::parse(&doc! {"$expr": {"$gt": ["$spent", "$budget"]}}).expect("parse");
    assert!(f.matches(&doc! {"spent": 5, "budget": 3}));
    assert!(!f.matches(&doc! {"spent": 1, "budget": 3}));
    let f = Filter::parse(&doc! {"$expr": "$flag"}).expect("parse");
    assert!(f.matches(&doc! {"flag": 1}));
    assert!(!f.matches(&doc! {"flag": 0}));
    assert!(!f.matches(&doc! {}));
}

fn dt(ms: i64) -> Bson {
    Bson::DateTime(bson::DateTime::from_millis(ms))
}

#[test]
fn strings() {
    let root = doc! {"item": "ABC1", "description": "product 1", "s": "cafétéria", "n": null, "city": "Berkeley, CA"};
    check(
        &root,
        &[
            (doc! {"$concat": ["$item", " - ", "$description"]}.into(), b("ABC1 - product 1")),
            (doc! {"$concat": ["a", null]}.into(), b(Bson::Null)),
            (doc! {"$concat": ["a", "$missing"]}.into(), b(Bson::Null)),
            (doc! {"$concat": []}.into(), b("")),
            (doc! {"$substr": ["$item", 0, 2]}.into(), b("AB")),
            (doc! {"$substrBytes": ["$item", 2, -1]}.into(), b("C1")),
            (doc! {"$substrBytes": ["$item", 10, 2]}.into(), b("")),
            (doc! {"$substrBytes": [12345, 1, 2]}.into(), b("23")),
            (doc! {"$substrCP": ["$s", 0, 4]}.into(), b("café")),
            (doc! {"$substrCP": ["$s", 3, 3]}.into(), b("été")),
            (doc! {"$strLenBytes": "$s"}.into(), b(11)),
            (doc! {"$strLenCP": "$s"}.into(), b(9)),
            (doc! {"$toLower": "$item"}.into(), b("abc1")),
            (doc! {"$toUpper": "$description"}.into(), b("PRODUCT 1")),
            (doc! {"$toUpper": null}.into(), b("")),
            (doc! {"$toLower": 1.5}.into(), b("1.5")),
            (doc! {"$trim": {"input": "  ggggoodbyeeeee  "}}.into(), b("ggggoodbyeeeee")),
            (doc! {"$trim": {"input": "ggggoodbyeeeee", "chars": "ge"}}.into(), b("oodby")),
            (doc! {"$ltrim": {"input": "  x  "}}.into(), b("x  ")),
            (doc! {"$rtrim": {"input": "  x  "}}.into(), b("  x")),
            (doc! {"$trim": {"input": "$n"}}.into(), b(Bson::Null)),
            (doc! {"$split": ["$city", ", "]}.into(), b(vec![Bson::from("Berkeley"), Bson::from("CA")])),
            (doc! {"$split": ["abc", "x"]}.into(), b(vec![Bson::from("abc")])),
            (doc! {"$split": [null, "x"]}.into(), b(Bson::Null)),
            (doc! {"$indexOfBytes": ["cafeteria", "e"]}.into(), b(3)),
            (doc! {"$indexOfBytes": ["cafétéria", "t"]}.into(), b(5)),
            (doc! {"$indexOfCP": ["cafétéria", "t"]}.into(), b(4)),
            (doc! {"$indexOfCP": ["cafétéria", "é", 4]}.into(), b(5)),
            (doc! {"$indexOfBytes": ["foo", "o", 0, 1]}.into(), b(-1)),
            (doc! {"$indexOfBytes": ["foo", "x"]}.into(), b(-1)),
            (doc! {"$indexOfBytes": [null, "x"]}.into(), b(Bson::Null)),
            (doc! {"$indexOfCP": ["", ""]}.into(), b(0)),
            (doc! {"$strcasecmp": ["$item", "abc1"]}.into(), b(0)),
            (doc! {"$strcasecmp": ["a", "B"]}.into(), b(-1)),
            (doc! {"$replaceOne": {"input": "blue paint blue", "find": "blue", "replacement": "red"}}.into(), b("red paint blue")),
            (doc! {"$replaceAll": {"input": "blue paint blue", "find": "blue", "replacement": "red"}}.into(), b("red paint red")),
            (doc! {"$replaceAll": {"input": "ab", "find": "", "replacement": "-"}}.into(), b("-a-b-")),
            (doc! {"$replaceOne": {"input": null, "find": "a", "replacement": "b"}}.into(), b(Bson::Null)),
            (doc! {"$regexMatch": {"input": "$description", "regex": "PRODUCT", "options": "i"}}.into(), b(true)),
            (doc! {"$regexMatch": {"input": "$missing", "regex": "x"}}.into(), b(false)),
            (
                doc! {"$regexFind": {"input": "$description", "regex": "(o)(x)?"}}.into(),
                b(doc! {"match": "o", "idx": 2, "captures": ["o", null]}),
            ),
            (doc! {"$regexFind": {"input": "abc", "regex": "z"}}.into(), b(Bson::Null)),
            (
                doc! {"$regexFindAll": {"input": "cafés cost", "regex": "c(\\w)"}}.into(),
                b(vec![
                    Bson::Document(doc! {"match": "ca", "idx": 0, "captures": ["a"]}),
                    Bson::Document(doc! {"match": "co", "idx": 6, "captures": ["o"]}),
                ]),
            ),
            (doc! {"$regexFindAll": {"input": null, "regex": "x"}}.into(), b(Vec::<Bson>::new())),
            (
                doc! {"$regexFindAll": {"input": "ab", "regex": ""}}.into(),
                b(vec![
                    Bson::Document(doc! {"match": "", "idx": 0, "captures": []}),
                    Bson::Document(doc! {"match": "", "idx": 1, "captures": []}),
                ]),
            ),
        ],
    );
    check_err(
        &root,
        &[
            (doc! {"$concat": ["a", 1]}.into(), 16702, "$concat only supports strings, not int"),
            (doc! {"$strLenCP": 1}.into(), 34471, "$strLenCP requires a string argument, found: int"),
            (doc! {"$strLenBytes": "$missing"}.into(), 34473, "$strLenBytes requires a string argument, found: missing"),
            (doc! {"$substrBytes": ["$s", 4, 1]}.into(), 28656, ""),
            (doc! {"$substrBytes": ["$s", 0, 4]}.into(), 28657, ""),
            (doc! {"$substrBytes": ["a", "x", 1]}.into(), 16034, ""),
            (doc! {"$substrCP": ["a", 0, -1]}.into(), 34454, "$substrCP: length must be a nonnegative integer."),
            (doc! {"$toUpper": [[1]]}.into(), 16007, "can't convert from BSON type array to String"),
            (doc! {"$split": ["a", ""]}.into(), 40087, "$split requires a non-empty separator"),
            (doc! {"$split": [1, "a"]}.into(), 40085, ""),
            (doc! {"$indexOfBytes": ["a", 1]}.into(), 40092, "$indexOfBytes requires a string as the second argument, found: int"),
            (doc! {"$indexOfCP": ["a", "a", -1]}.into(), 40097, "$indexOfCP requires a nonnegative starting index, found: -1"),
            (doc! {"$indexOfCP": ["a", "a", 1.5]}.into(), 40096, ""),
            (doc! {"$trim": {"chars": "a"}}.into(), 50695, "$trim requires an 'input' field"),
            (doc! {"$trim": {"input": 1}}.into(), 50699, "$trim requires its input to be a string, got 1 (of type int) instead."),
            (doc! {"$trim": {"input": "a", "x": 1}}.into(), 50694, "$trim found an unknown argument: x"),
            (doc! {"$trim": "a"}.into(), 50696, "$trim only supports an object as an argument, found string"),
            (doc! {"$replaceOne": {"input": "a", "find": 1, "replacement": "b"}}.into(), 51745, "$replaceOne requires that 'find' be a string, found: 1"),
            (doc! {"$replaceAll": {"input": "a", "find": "a"}}.into(), 51747, "$replaceAll requires 'replacement' to be specified"),
            (doc! {"$regexMatch": {"input": 1, "regex": "a"}}.into(), 51104, "$regexMatch needs 'input' to be of type string"),
            (doc! {"$regexMatch": {"input": "a"}}.into(), 31023, "$regexMatch requires 'regex' parameter"),
            (doc! {"$regexFind": {"input": "a", "regex": "a", "options": "z"}}.into(), 51108, ""),
            (doc! {"$regexFind": {"input": "a", "regex": "("}}.into(), 51111, ""),
            (doc! {"$regexFind": {"input": "a", "regex": bson::Regex { pattern: "a".try_into().expect("c"), options: "i".try_into().expect("c") }, "options": "m"}}.into(), 51107, ""),
        ],
    );
}

#[test]
fn arrays() {
    let root = doc! {
        "favorites": ["chocolate", "cake", "butter", "apples"],
        "n": null, "nums": [1, 2, 3, 4, 5], "e": [],
        "items": [{"name": "pen", "price": 2}, {"name": "ink", "price": 10}],
    };
    let arr = |v: Vec<Bson>| b(v);
    let ints = |v: &[i32]| b(v.iter().map(|x| Bson::Int32(*x)).collect::<Vec<_>>());
    check(
        &root,
        &[
            (doc! {"$arrayElemAt": ["$favorites", 0]}.into(), b("chocolate")),
            (doc! {"$arrayElemAt": ["$favorites", -1]}.into(), b("apples")),
            (doc! {"$arrayElemAt": ["$favorites", 10]}.into(), None),
            (doc! {"$arrayElemAt": ["$favorites", -10]}.into(), None),
            (doc! {"$arrayElemAt": ["$n", 0]}.into(), b(Bson::Null)),
            (doc! {"$first": "$favorites"}.into(), b("chocolate")),
            (doc! {"$last": "$favorites"}.into(), b("apples")),
            (doc! {"$first": "$e"}.into(), None),
            (doc! {"$first": "$missing"}.into(), b(Bson::Null)),
            (doc! {"$concatArrays": [[1, 2], [3], "$e"]}.into(), ints(&[1, 2, 3])),
            (doc! {"$concatArrays": [[1], null]}.into(), b(Bson::Null)),
            (doc! {"$in": [2, "$nums"]}.into(), b(true)),
            (doc! {"$in": ["x", "$nums"]}.into(), b(false)),
            (doc! {"$in": [2.0, [1, 2i64]]}.into(), b(true)),
            (doc! {"$indexOfArray": ["$favorites", "cake"]}.into(), b(1)),
            (doc! {"$indexOfArray": ["$nums", 3, 0, 2]}.into(), b(-1)),
            (doc! {"$indexOfArray": ["$nums", 3, 1]}.into(), b(2)),
            (doc! {"$indexOfArray": [null, 3]}.into(), b(Bson::Null)),
            (doc! {"$isArray": ["$nums"]}.into(), b(true)),
            (doc! {"$isArray": "$missing"}.into(), b(false)),
            (doc! {"$range": [0, 10, 2]}.into(), ints(&[0, 2, 4, 6, 8])),
            (doc! {"$range": [10, 0, -2]}.into(), ints(&[10, 8, 6, 4, 2])),
            (doc! {"$range": [0, 10, -2]}.into(), ints(&[])),
            (doc! {"$range": [0, 5]}.into(), ints(&[0, 1, 2, 3, 4])),
            (doc! {"$reverseArray": "$nums"}.into(), ints(&[5, 4, 3, 2, 1])),
            (doc! {"$reverseArray": "$missing"}.into(), b(Bson::Null)),
            (doc! {"$size": "$favorites"}.into(), b(4)),
            (doc! {"$slice": ["$nums", 2]}.into(), ints(&[1, 2])),
            (doc! {"$slice": ["$nums", -2]}.into(), ints(&[4, 5])),
            (doc! {"$slice": ["$nums", 1, 2]}.into(), ints(&[2, 3])),
            (doc! {"$slice": ["$nums", -20, 2]}.into(), ints(&[1, 2])),
            (doc! {"$slice": ["$nums", 15, 2]}.into(), ints(&[])),
            (doc! {"$slice": [null, 1]}.into(), b(Bson::Null)),
            (doc! {"$arrayToObject": [[["item", "abc123"], ["qty", 25]]]}.into(), b(doc! {"item": "abc123", "qty": 25})),
            (doc! {"$arrayToObject": [[{"k": "item", "v": "abc123"}, {"k": "qty", "v": 25}, {"k": "item", "v": 1}]]}.into(), b(doc! {"item": 1, "qty": 25})),
            (doc! {"$arrayToObject": "$e"}.into(), b(doc! {})),
            (doc! {"$objectToArray": {"a": 1, "b": {"c": 2}}}.into(), arr(vec![Bson::Document(doc! {"k": "a", "v": 1}), Bson::Document(doc! {"k": "b", "v": {"c": 2}})])),
            (doc! {"$objectToArray": "$missing"}.into(), b(Bson::Null)),
            (
                doc! {"$map": {"input": "$nums", "as": "x", "in": {"$multiply": ["$$x", 10]}}}.into(),
                ints(&[10, 20, 30, 40, 50]),
            ),
            (doc! {"$map": {"input": "$items", "in": "$$this.name"}}.into(), arr(vec!["pen".into(), "ink".into()])),
            (doc! {"$map": {"input": [1, 2], "in": "$$this.missing"}}.into(), arr(vec![Bson::Null, Bson::Null])),
            (doc! {"$map": {"input": "$missing", "in": 1}}.into(), b(Bson::Null)),
            (
                doc! {"$filter": {"input": "$items", "as": "item", "cond": {"$gte": ["$$item.price", 5]}}}.into(),
                arr(vec![Bson::Document(doc! {"name": "ink", "price": 10})]),
            ),
            (doc! {"$filter": {"input": "$nums", "cond": {"$gt": ["$$this", 1]}, "limit": 2}}.into(), ints(&[2, 3])),
            (doc! {"$filter": {"input": "$nums", "cond": true, "limit": null}}.into(), ints(&[1, 2, 3, 4, 5])),
            (
                doc! {"$reduce": {"input": ["a", "b", "c"], "initialValue": "", "in": {"$concat": ["$$value", "$$this"]}}}.into(),
                b("abc"),
            ),
            (
                doc! {"$reduce": {"input": [1, 2, 3, 4], "initialValue": {"sum": 5, "product": 2},
                    "in": {"sum": {"$add": ["$$value.sum", "$$this"]}, "product": {"$multiply": ["$$value.product", "$$this"]}}}}
                .into(),
                b(doc! {"sum": 15, "product": 48}),
            ),
            (doc! {"$reduce": {"input": [[3, 4], [5, 6]], "initialValue": [1, 2], "in": {"$concatArrays": ["$$value", "$$this"]}}}.into(), ints(&[1, 2, 3, 4, 5, 6])),
            (doc! {"$reduce": {"input": "$e", "initialValue": 7, "in": 0}}.into(), b(7)),
            (doc! {"$zip": {"inputs": [["a", "b"], [1, 2, 3]]}}.into(), arr(vec![Bson::Array(vec!["a".into(), 1.into()]), Bson::Array(vec!["b".into(), 2.into()])])),
            (
                doc! {"$zip": {"inputs": [[1], [2, 3]], "useLongestLength": true, "defaults": ["x", "y"]}}.into(),
                arr(vec![Bson::Array(vec![1.into(), 2.into()]), Bson::Array(vec!["x".into(), 3.into()])]),
            ),
            (doc! {"$zip": {"inputs": ["$missing", [1]]}}.into(), b(Bson::Null)),
            (doc! {"$sortArray": {"input": [3, 1, 2], "sortBy": 1}}.into(), ints(&[1, 2, 3])),
            (doc! {"$sortArray": {"input": [3, 1, 2], "sortBy": -1}}.into(), ints(&[3, 2, 1])),
            (
                doc! {"$sortArray": {"input": "$items", "sortBy": {"price": -1}}}.into(),
                arr(vec![Bson::Document(doc! {"name": "ink", "price": 10}), Bson::Document(doc! {"name": "pen", "price": 2})]),
            ),
            (doc! {"$firstN": {"input": "$nums", "n": 2}}.into(), ints(&[1, 2])),
            (doc! {"$lastN": {"input": "$nums", "n": 2}}.into(), ints(&[4, 5])),
            (doc! {"$maxN": {"input": [3, null, 7, 1], "n": 2}}.into(), ints(&[7, 3])),
            (doc! {"$minN": {"input": [3, null, 7, 1], "n": 2}}.into(), ints(&[1, 3])),
        ],
    );
    check_err(
        &root,
        &[
            (
                doc! {"$arrayElemAt": [1, 0]}.into(),
                28689,
                "$arrayElemAt's first argument must be an array, but is int",
            ),
            (doc! {"$arrayElemAt": ["$nums", "a"]}.into(), 28690, ""),
            (
                doc! {"$arrayElemAt": ["$nums", 1.5]}.into(),
                28691,
                "$arrayElemAt's second argument must be representable as a 32-bit integer: 1.5",
            ),
            (
                doc! {"$first": 1}.into(),
                28689,
                "$first's argument must be an array, but is int",
            ),
            (
                doc! {"$concatArrays": [[1], 1]}.into(),
                28664,
                "$concatArrays only supports arrays, not int",
            ),
            (
                doc! {"$in": [1, "$missing"]}.into(),
                40081,
                "$in requires an array as a second argument, found: missing",
            ),
            (
                doc! {"$size": "$missing"}.into(),
                17124,
                "The argument to $size must be an array, but was of type: missing",
            ),
            (doc! {"$size": [1, 2]}.into(), 16020, ""),
            (
                doc! {"$range": [0, "a"]}.into(),
                34445,
                "$range requires a numeric ending value, found value of type: string",
            ),
            (
                doc! {"$range": [0, 1, 0]}.into(),
                34449,
                "$range requires a non-zero step value",
            ),
            (
                doc! {"$slice": ["$nums", 1, 0]}.into(),
                28729,
                "Third argument to $slice must be positive: 0",
            ),
            (
                doc! {"$arrayToObject": [[1]]}.into(),
                40398,
                "Unrecognised input type format for $arrayToObject: int",
            ),
            (doc! {"$arrayToObject": [[["a"]]]}.into(), 40397, ""),
            (
                doc! {"$objectToArray": 1}.into(),
                40390,
                "$objectToArray requires a document input, found: int",
            ),
            (
                doc! {"$map": {"input": 1, "in": 1}}.into(),
                16883,
                "input to $map must be an array not int",
            ),
            (
                doc! {"$map": {"input": [], "as": "Bad", "in": 1}}.into(),
                16867,
                "",
            ),
            (
                doc! {"$map": {"input": []}}.into(),
                16882,
                "Missing 'in' parameter to $map",
            ),
            (doc! {"$map": {"input": [], "in": "$$y"}}.into(), 17276, ""),
            (
                doc! {"$filter": {"input": 1, "cond": true}}.into(),
                28651,
                "input to $filter must be an array not int",
            ),
            (
                doc! {"$filter": {"input": [1], "cond": true, "limit": 0}}.into(),
                327392,
                "",
            ),
            (
                doc! {"$filter": {"input": [1]}}.into(),
                28650,
                "Missing 'cond' parameter to $filter",
            ),
            (
                doc! {"$reduce": {"input": 1, "initialValue": 0, "in": 1}}.into(),
                40080,
                "$reduce requires that 'input' be an array, found: 1",
            ),
            (doc! {"$reduce": {"input": [], "in": 1}}.into(), 40078, ""),
            (
                doc! {"$zip": {"inputs": [1]}}.into(),
                34468,
                "$zip found a non-array expression in input: 1",
            ),
            (
                doc! {"$zip": {"inputs": [[1]], "defaults": [1]}}.into(),
                34466,
                "",
            ),
            (
                doc! {"$sortArray": {"input": 1, "sortBy": 1}}.into(),
                2942504,
                "",
            ),
            (
                doc! {"$sortArray": {"input": [], "sortBy": 2}}.into(),
                2942506,
                "",
            ),
            (
                doc! {"$sortArray": {"input": []}}.into(),
                2942503,
                "$sortArray requires 'sortBy' to be specified",
            ),
            (doc! {"$firstN": {"input": [1], "n": 0}}.into(), 5787908, ""),
        ],
    );
}

#[test]
fn sets_objects_and_accumulators() {
    let root = doc! {"a": ["red", "blue"], "b": ["blue", "red", "red"], "n": null, "o": {"x": 1, "a.b": 2, "$price": 3}};
    let ints = |v: &[i32]| b(v.iter().map(|x| Bson::Int32(*x)).collect::<Vec<_>>());
    check(
        &root,
        &[
            (doc! {"$setEquals": ["$a", "$b"]}.into(), b(true)),
            (doc! {"$setEquals": [[1], [1, 2]]}.into(), b(false)),
            (
                doc! {"$setIntersection": [[3, 1, 2, 1], [2, 3, 4]]}.into(),
                ints(&[2, 3]),
            ),
            (doc! {"$setIntersection": []}.into(), ints(&[])),
            (doc! {"$setIntersection": [[1], null]}.into(), b(Bson::Null)),
            (
                doc! {"$setUnion": [[3, 1], [2, 1]]}.into(),
                ints(&[1, 2, 3]),
            ),
            (
                doc! {"$setDifference": [[1, 2, 3, 2], [2]]}.into(),
                ints(&[1, 3]),
            ),
            (doc! {"$setDifference": ["$n", [2]]}.into(), b(Bson::Null)),
            (doc! {"$setIsSubset": ["$a", "$b"]}.into(), b(true)),
            (doc! {"$setIsSubset": [[1, 5], [1, 2]]}.into(), b(false)),
            (doc! {"$anyElementTrue": [[0, null, 1]]}.into(), b(true)),
            (doc! {"$anyElementTrue": [[]]}.into(), b(false)),
            (doc! {"$allElementsTrue": [[true, 1, "x"]]}.into(), b(true)),
            (doc! {"$allElementsTrue": [[[false]]]}.into(), b(true)),
            (doc! {"$allElementsTrue": [[null]]}.into(), b(false)),
            (
                doc! {"$mergeObjects": [{"a": 1}, null, {"a": 2, "b": 3}]}.into(),
                b(doc! {"a": 2, "b": 3}),
            ),
            (
                doc! {"$mergeObjects": [[{"a": 1}, {"b": 2}]]}.into(),
                b(doc! {"a": 1, "b": 2}),
            ),
            (doc! {"$mergeObjects": "$missing"}.into(), b(doc! {})),
            (
                doc! {"$getField": "a"}.into(),
                b(vec![Bson::from("red"), Bson::from("blue")]),
            ),
            (
                doc! {"$getField": {"field": "a.b", "input": "$o"}}.into(),
                b(2),
            ),
            (
                doc! {"$getField": {"field": {"$literal": "$price"}, "input": "$o"}}.into(),
                b(3),
            ),
            (
                doc! {"$getField": {"field": "x", "input": "$missing"}}.into(),
                None,
            ),
            (
                doc! {"$getField": {"field": "x", "input": null}}.into(),
                b(Bson::Null),
            ),
            (doc! {"$getField": {"field": "x", "input": 5}}.into(), None),
            (
                doc! {"$setField": {"field": "y", "input": "$o", "value": 9}}.into(),
                b(doc! {"x": 1, "a.b": 2, "$price": 3, "y": 9}),
            ),
            (
                doc! {"$setField": {"field": "x", "input": {"x": 1, "z": 2}, "value": "$$REMOVE"}}
                    .into(),
                b(doc! {"z": 2}),
            ),
            (
                doc! {"$unsetField": {"field": "a.b", "input": "$o"}}.into(),
                b(doc! {"x": 1, "$price": 3}),
            ),
            (
                doc! {"$setField": {"field": "y", "input": null, "value": 1}}.into(),
                b(Bson::Null),
            ),
            (doc! {"$sum": [1, 2.5, "x", null]}.into(), b(3.5)),
            (doc! {"$sum": [[1, 2, 3]]}.into(), b(6)),
            (doc! {"$sum": "$missing"}.into(), b(0)),
            (doc! {"$sum": [i32::MAX, 1]}.into(), b(2_147_483_648i64)),
            (doc! {"$sum": [1, 2i64]}.into(), b(3i64)),
            (doc! {"$sum": [dec("1.5"), 1]}.into(), b(dec("2.5"))),
            (doc! {"$avg": [[1, 2, 3, 4]]}.into(), b(2.5)),
            (doc! {"$avg": ["a", null]}.into(), b(Bson::Null)),
            (doc! {"$min": [5, 1, null, "$missing"]}.into(), b(1)),
            (doc! {"$max": [[5, 1, "a"]]}.into(), b("a")),
            (doc! {"$max": [null, "$missing"]}.into(), b(Bson::Null)),
            (
                doc! {"$stdDevPop": [[1, 2, 3, 4]]}.into(),
                b(1.118033988749895),
            ),
            (doc! {"$stdDevSamp": [[1]]}.into(), b(Bson::Null)),
        ],
    );
    check_err(
        &root,
        &[
            (doc! {"$setEquals": [[1]]}.into(), 17045, ""),
            (
                doc! {"$setEquals": [[1], 1]}.into(),
                17044,
                "All operands of $setEquals must be arrays. 2-th argument is of type: int",
            ),
            (doc! {"$setUnion": [[1], 1]}.into(), 17043, ""),
            (doc! {"$setIsSubset": [null, [1]]}.into(), 17046, ""),
            (
                doc! {"$anyElementTrue": 1}.into(),
                17041,
                "$anyElementTrue's argument must be an array, but is int",
            ),
            (doc! {"$allElementsTrue": [1]}.into(), 17040, ""),
            (
                doc! {"$mergeObjects": [1]}.into(),
                40400,
                "$mergeObjects requires object inputs, but input 1 is of type int",
            ),
            (
                doc! {"$getField": {"field": "$x", "input": {}}}.into(),
                5654600,
                "",
            ),
            (
                doc! {"$getField": {"field": 1, "input": {}}}.into(),
                5654602,
                "$getField requires 'field' to evaluate to type String, but got int",
            ),
            (
                doc! {"$getField": {"field": {"$concat": ["a", "b"]}, "input": {}}}.into(),
                5654601,
                "",
            ),
            (
                doc! {"$getField": {"input": {}}}.into(),
                3041702,
                "$getField requires 'field' to be specified",
            ),
            (
                doc! {"$setField": {"field": "a", "input": 1, "value": 1}}.into(),
                4161105,
                "",
            ),
            (
                doc! {"$setField": {"field": "a", "input": {}}}.into(),
                4161103,
                "",
            ),
            (
                doc! {"$unsetField": {"field": "a", "input": {}, "value": 1}}.into(),
                4161101,
                "",
            ),
        ],
    );
}

#[test]
fn conversions() {
    let oid = bson::oid::ObjectId::parse_str("5ab9cbfa31c2ab715d42129e").expect("oid");
    let root = doc! {"oid": oid, "s": "5ab9cbfa31c2ab715d42129e"};
    check(
        &root,
        &[
            (
                doc! {"$convert": {"input": "$missing", "to": "int", "onNull": "none"}}.into(),
                b("none"),
            ),
            (
                doc! {"$convert": {"input": "$missing", "to": "int"}}.into(),
                b(Bson::Null),
            ),
            (
                doc! {"$convert": {"input": "abc", "to": "int", "onError": -1}}.into(),
                b(-1),
            ),
            (doc! {"$convert": {"input": "5", "to": 16}}.into(), b(5)),
            (
                doc! {"$convert": {"input": 1, "to": null}}.into(),
                b(Bson::Null),
            ),
            (doc! {"$toBool": 0}.into(), b(false)),
            (doc! {"$toBool": "false"}.into(), b(true)),
            (doc! {"$toBool": ""}.into(), b(true)),
            (doc! {"$toBool": null}.into(), b(Bson::Null)),
            (doc! {"$toInt": 5.9}.into(), b(5)),
            (doc! {"$toInt": "100"}.into(), b(100)),
            (doc! {"$toInt": true}.into(), b(1)),
            (doc! {"$toInt": dec("-5.5")}.into(), b(-5)),
            (doc! {"$toLong": dt(100)}.into(), b(100i64)),
            (doc! {"$toLong": "-9223372036854775808"}.into(), b(i64::MIN)),
            (doc! {"$toDouble": "5.5"}.into(), b(5.5)),
            (
                doc! {"$toDouble": dt(1522039108044)}.into(),
                b(1522039108044.0),
            ),
            (doc! {"$toDouble": false}.into(), b(0.0)),
            (doc! {"$toDecimal": 2.5}.into(), b(dec("2.50000000000000"))),
            (doc! {"$toDecimal": "1.23"}.into(), b(dec("1.23"))),
            (doc! {"$toDecimal": 5}.into(), b(dec("5"))),
            (doc! {"$toString": 2.5}.into(), b("2.5")),
            (doc! {"$toString": 10i64}.into(), b("10")),
            (doc! {"$toString": true}.into(), b("true")),
            (
                doc! {"$toString": "$oid"}.into(),
                b("5ab9cbfa31c2ab715d42129e"),
            ),
            (
                doc! {"$toString": dt(1522039108044)}.into(),
                b("2018-03-26T04:38:28.044Z"),
            ),
            (doc! {"$toString": dec("1.20")}.into(), b("1.20")),
            (doc! {"$toObjectId": "$s"}.into(), b(oid)),
            (doc! {"$toDate": "2018-03-03"}.into(), b(dt(1520035200000))),
            (
                doc! {"$toDate": "2018-03-20 11:00:06 +0500"}.into(),
                b(dt(1521525606000)),
            ),
            (doc! {"$toDate": 120000000000.5}.into(), b(dt(120000000000))),
            (
                doc! {"$toDate": 1253372036000i64}.into(),
                b(dt(1253372036000)),
            ),
            (doc! {"$toDate": "$oid"}.into(), b(dt(1522125818000))),
            (
                doc! {"$toDate": bson::Timestamp { time: 10, increment: 1 }}.into(),
                b(dt(10000)),
            ),
        ],
    );
    check_err(
        &root,
        &[
            (doc! {"$toInt": "abc"}.into(), 241, "Failed to parse number 'abc' in $convert with no onError value: Did not consume whole string."),
            (doc! {"$toInt": "0x10"}.into(), 241, "Illegal hexadecimal input in $convert with no onError value: 0x10"),
            (doc! {"$toInt": 1e10}.into(), 241, "Conversion would overflow target type in $convert with no onError value: 1e+10"),
            (doc! {"$toInt": f64::NAN}.into(), 241, "Attempt to convert NaN value to integer type in $convert with no onError value"),
            (doc! {"$toInt": dt(0)}.into(), 241, "Unsupported conversion from date to int in $convert with no onError value"),
            (doc! {"$toObjectId": "abc"}.into(), 241, ""),
            (doc! {"$toDate": "not a date"}.into(), 241, ""),
            (doc! {"$convert": {"input": {}, "to": "object"}}.into(), 241, "Unsupported conversion from object to object in $convert with no onError value"),
            (doc! {"$convert": {"input": 1, "to": "foo"}}.into(), 2, "Unknown type name: foo"),
            (doc! {"$convert": {"input": 1, "to": 100}}.into(), 9, "In $convert, numeric value for 'to' does not correspond to a BSON type: 100"),
            (doc! {"$convert": {"input": 1, "to": true}}.into(), 9, "$convert's 'to' argument must be a string or number, but is bool"),
            (doc! {"$convert": {"input": 1}}.into(), 9, "Missing 'to' parameter to $convert"),
            (doc! {"$convert": {"input": 1, "to": "int", "x": 1}}.into(), 9, "$convert found an unknown argument: x"),
            (doc! {"$convert": 1}.into(), 9, "$convert expects an object of named arguments but found: int"),
            (doc! {"$toInt": [1, 2]}.into(), 50723, "$toInt requires a single argument, got 2"),
        ],
    );
}

#[test]
fn dates() {
    // 2014-01-01T08:15:39.736Z, a Wednesday.
    let d = 1_388_564_139_736i64;
    let root = doc! {"date": dt(d), "n": null};
    check(
        &root,
        &[
            (doc! {"$year": "$date"}.into(), b(2014)),
            (doc! {"$month": "$date"}.into(), b(1)),
            (doc! {"$dayOfMonth": "$date"}.into(), b(1)),
            (doc! {"$hour": "$date"}.into(), b(8)),
            (doc! {"$minute": "$date"}.into(), b(15)),
            (doc! {"$second": "$date"}.into(), b(39)),
            (doc! {"$millisecond": "$date"}.into(), b(736)),
            (doc! {"$dayOfYear": "$date"}.into(), b(1)),
            (doc! {"$dayOfWeek": "$date"}.into(), b(4)),
            (doc! {"$week": "$date"}.into(), b(0)),
            (doc! {"$isoWeek": "$date"}.into(), b(1)),
            (doc! {"$isoWeekYear": "$date"}.into(), b(2014i64)),
            (doc! {"$isoDayOfWeek": "$date"}.into(), b(3)),
            (doc! {"$isoWeekYear": dt(1_293_840_000_000)}.into(), b(2010i64)), // 2011-01-01
            (doc! {"$hour": {"date": "$date", "timezone": "-05:00"}}.into(), b(3)),
            (doc! {"$hour": {"date": "$date", "timezone": "+0530"}}.into(), b(13)),
            (doc! {"$hour": {"date": "$date", "timezone": "UTC"}}.into(), b(8)),
            (doc! {"$hour": ["$date"]}.into(), b(8)),
            (doc! {"$year": "$n"}.into(), b(Bson::Null)),
            (doc! {"$year": {"date": "$date", "timezone": null}}.into(), b(Bson::Null)),
            (doc! {"$year": bson::Timestamp { time: 1_388_564_139, increment: 0 }}.into(), b(2014)),
            (doc! {"$dateToString": {"format": "%Y-%m-%d", "date": "$date"}}.into(), b("2014-01-01")),
            (doc! {"$dateToString": {"format": "%H:%M:%S:%L%z", "date": "$date", "timezone": "+04:30"}}.into(), b("12:45:39:736+0430")),
            (doc! {"$dateToString": {"format": "%j %w %u %U %V %G %Z %%", "date": "$date"}}.into(), b("001 4 3 00 01 2014 +0 %")),
            (doc! {"$dateToString": {"format": "%b %B", "date": "$date"}}.into(), b("Jan January")),
            (doc! {"$dateToString": {"date": "$date"}}.into(), b("2014-01-01T08:15:39.736Z")),
            (doc! {"$dateToString": {"date": "$missing", "onNull": "none"}}.into(), b("none")),
            (doc! {"$dateToString": {"date": "$date", "format": null}}.into(), b(Bson::Null)),
            (doc! {"$dateFromString": {"dateString": "2017-02-08T12:10:40.787"}}.into(), b(dt(1_486_555_840_787))),
            (doc! {"$dateFromString": {"dateString": "2017-02-08T12:10:40.787", "timezone": "+01:00"}}.into(), b(dt(1_486_552_240_787))),
            (doc! {"$dateFromString": {"dateString": "2017-02-08T12:10:40Z"}}.into(), b(dt(1_486_555_840_000))),
            (doc! {"$dateFromString": {"dateString": "15-06-2018", "format": "%d-%m-%Y"}}.into(), b(dt(1_529_020_800_000))),
            (doc! {"$dateFromString": {"dateString": "garbage", "onError": "bad"}}.into(), b("bad")),
            (doc! {"$dateFromString": {"dateString": null, "onNull": 0}}.into(), b(0)),
            (
                doc! {"$dateToParts": {"date": "$date"}}.into(),
                b(doc! {"year": 2014, "month": 1, "day": 1, "hour": 8, "minute": 15, "second": 39, "millisecond": 736}),
            ),
            (
                doc! {"$dateToParts": {"date": "$date", "iso8601": true}}.into(),
                b(doc! {"isoWeekYear": 2014, "isoWeek": 1, "isoDayOfWeek": 3, "hour": 8, "minute": 15, "second": 39, "millisecond": 736}),
            ),
            (doc! {"$dateFromParts": {"year": 2017, "month": 2, "day": 8, "hour": 12}}.into(), b(dt(1_486_555_200_000))),
            (doc! {"$dateFromParts": {"year": 2017, "month": 14, "day": 1}}.into(), b(dt(1_517_443_200_000))),
            (doc! {"$dateFromParts": {"year": 2017, "month": 2, "day": 0}}.into(), b(dt(1_485_820_800_000))),
            (doc! {"$dateFromParts": {"isoWeekYear": 2017, "isoWeek": 6, "isoDayOfWeek": 3, "hour": 12}}.into(), b(dt(1_486_555_200_000))),
            (doc! {"$dateFromParts": {"year": 2017, "hour": 12, "timezone": "-05:00"}}.into(), b(dt(1_483_290_000_000))),
            (doc! {"$dateFromParts": {"year": "$missing"}}.into(), b(Bson::Null)),
            (doc! {"$dateAdd": {"startDate": "$date", "unit": "day", "amount": 3}}.into(), b(dt(d + 3 * 86_400_000))),
            (doc! {"$dateAdd": {"startDate": dt(1_580_428_800_000), "unit": "month", "amount": 1}}.into(), b(dt(1_582_934_400_000))), // 2020-01-31 -> 2020-02-29
            (doc! {"$dateSubtract": {"startDate": "$date", "unit": "hour", "amount": 8}}.into(), b(dt(d - 8 * 3_600_000))),
            (doc! {"$dateAdd": {"startDate": "$n", "unit": "day", "amount": 1}}.into(), b(Bson::Null)),
            (doc! {"$dateDiff": {"startDate": dt(1_609_459_199_000), "endDate": dt(1_609_459_200_000), "unit": "year"}}.into(), b(1i64)), // 2020-12-31T23:59:59 -> 2021-01-01
            (doc! {"$dateDiff": {"startDate": "$date", "endDate": dt(d + 86_400_000 * 10), "unit": "day"}}.into(), b(10i64)),
            (doc! {"$dateDiff": {"startDate": "$date", "endDate": dt(d + 86_400_000 * 10), "unit": "week"}}.into(), b(1i64)),
            (doc! {"$dateDiff": {"startDate": "$date", "endDate": dt(d + 86_400_000 * 10), "unit": "week", "startOfWeek": "thursday"}}.into(), b(2i64)),
            (doc! {"$dateDiff": {"startDate": "$date", "endDate": dt(d - 1000), "unit": "millisecond"}}.into(), b(-1000i64)),
            (doc! {"$dateTrunc": {"date": "$date", "unit": "day"}}.into(), b(dt(1_388_534_400_000))),
            (doc! {"$dateTrunc": {"date": "$date", "unit": "hour", "binSize": 6}}.into(), b(dt(1_388_534_400_000 + 6 * 3_600_000))),
            (doc! {"$dateTrunc": {"date": "$date", "unit": "month"}}.into(), b(dt(1_388_534_400_000))),
            (doc! {"$dateTrunc": {"date": "$date", "unit": "year", "binSize": 5}}.into(), b(dt(1_262_304_000_000))), // 2010-01-01
            (doc! {"$dateTrunc": {"date": "$date", "unit": "week"}}.into(), b(dt(1_388_275_200_000))), // Sunday 2013-12-29
            (doc! {"$dateTrunc": {"date": "$date", "unit": "week", "startOfWeek": "monday"}}.into(), b(dt(1_388_361_600_000))),
        ],
    );
    check_err(
        &root,
        &[
            (doc! {"$year": "abc"}.into(), 16006, "can't convert from BSON type string to Date"),
            (doc! {"$year": {"date": "$date", "timezone": "America/New_York"}}.into(), 40485, "unrecognized time zone identifier: \"America/New_York\""),
            (doc! {"$year": {"date": "$date", "timezone": 5}}.into(), 40517, "timezone must evaluate to a string, found int"),
            (doc! {"$year": {"date": "$date", "x": 1}}.into(), 40535, "unrecognized option to $year: \"x\""),
            (doc! {"$year": {"timezone": "UTC"}}.into(), 40539, ""),
            (doc! {"$year": [1, 2]}.into(), 40536, "$year accepts exactly one argument if given an array, but was given 2"),
            (doc! {"$dateToString": {"format": "%Y"}}.into(), 18628, "Missing 'date' parameter to $dateToString"),
            (doc! {"$dateToString": {"date": "$date", "format": "%Q"}}.into(), 18536, "Invalid format character '%Q' in format string"),
            (doc! {"$dateToString": {"date": "$date", "format": "abc%"}}.into(), 18535, "Unmatched '%' at end of format string"),
            (doc! {"$dateToString": {"date": "$date", "format": 1}}.into(), 18533, ""),
            (doc! {"$dateToString": {"date": "$date", "x": 1}}.into(), 18534, "Unrecognized argument to $dateToString: x"),
            (doc! {"$dateFromString": {"dateString": "garbage"}}.into(), 241, ""),
            (doc! {"$dateFromString": {"dateString": 5}}.into(), 241, ""),
            (doc! {"$dateFromString": {}}.into(), 40542, "Missing 'dateString' parameter to $dateFromString"),
            (doc! {"$dateFromParts": {"month": 1}}.into(), 40516, ""),
            (doc! {"$dateFromParts": {"year": 2017, "isoWeek": 1}}.into(), 40489, ""),
            (doc! {"$dateFromParts": {"year": 2017, "month": 1.5}}.into(), 40515, ""),
            (doc! {"$dateFromParts": {"year": 2017, "month": 40000}}.into(), 31034, "'month' must evaluate to a value in the range [-32768, 32767]; value 40000 is not in range"),
            (doc! {"$dateFromParts": {"year": 0}}.into(), 40523, "'year' must evaluate to an integer in the range 1 to 9999, found 0"),
            (doc! {"$dateAdd": {"startDate": "$date", "unit": "day"}}.into(), 5166402, "$dateAdd requires startDate, unit, and amount to be present"),
            (doc! {"$dateAdd": {"startDate": 1, "unit": "day", "amount": 1}}.into(), 5166403, ""),
            (doc! {"$dateAdd": {"startDate": "$date", "unit": "days", "amount": 1}}.into(), 5439014, ""),
            (doc! {"$dateAdd": {"startDate": "$date", "unit": "day", "amount": 1.5}}.into(), 5166405, "$dateAdd expects integer amount of time units"),
            (doc! {"$dateDiff": {"startDate": "$date", "endDate": 1, "unit": "day"}}.into(), 5166307, "$dateDiff requires 'endDate' to be a date, but got int"),
            (doc! {"$dateDiff": {"startDate": "$date", "unit": "day"}}.into(), 5166304, "Missing 'endDate' parameter to $dateDiff"),
            (doc! {"$dateDiff": {"startDate": "$date", "endDate": "$date", "unit": "week", "startOfWeek": "funday"}}.into(), 5439016, ""),
            (doc! {"$dateTrunc": {"date": "$date", "unit": "day", "binSize": 0}}.into(), 5439018, ""),
            (doc! {"$dateTrunc": {"date": 1, "unit": "day"}}.into(), 5439012, "$dateTrunc requires 'date' to be a date, but got int"),
        ],
    );
}

#[test]
fn let_vars_in_filter_expr() {
    use crate::filter::Filter;
    let vars = evaluate_let(&doc! {"id": 1, "two": {"$add": ["$$id", 1]}}, &Env::new())
        .expect("let evaluates");
    assert_eq!(vars.len(), 2);
    assert_eq!(vars[0], ("id".to_owned(), Bson::Int32(1)));
    assert_eq!(vars[1].0, "two");
    assert_eq!(crate::util::number_as_f64(&vars[1].1), Some(2.0));
    let f =
        Filter::parse_with_vars(&doc! {"$expr": {"$eq": ["$_id", "$$id"]}}, &vars).expect("parse");
    assert!(f.matches(&doc! {"_id": 1}));
    assert!(!f.matches(&doc! {"_id": 2}));
    // Through $and/$or, and alongside $$NOW.
    let f = Filter::parse_with_vars(
        &doc! {"$or": [{"$and": [{"$expr": {"$eq": ["$x", "$$two"]}}]}, {"$expr": {"$lt": ["$$NOW", "$d"]}}]},
        &vars,
    )
    .expect("parse");
    assert!(f.matches(&doc! {"x": 2}));
    assert!(!f.matches(&doc! {"x": 3}));
    // Without the variables, the name is undefined.
    let e = Filter::parse(&doc! {"$expr": {"$eq": ["$_id", "$$id"]}}).expect_err("undefined");
    assert_eq!(e.code, 17276);
}

#[test]
fn let_spec_errors() {
    let e = evaluate_let(&doc! {"Id": 1}, &Env::new()).expect_err("uppercase");
    assert_eq!(e.code, 16867);
    let e = evaluate_let(&doc! {"a-b": 1}, &Env::new()).expect_err("bad char");
    assert_eq!(e.code, 16868);
    let e = evaluate_let(&doc! {"a": "$$undefinedvar"}, &Env::new()).expect_err("undefined");
    assert_eq!(e.code, 17276);
    // A field path sees no document: missing, stored as null.
    let vars = evaluate_let(&doc! {"a": "$x"}, &Env::new()).expect("evaluates");
    assert_eq!(vars, vec![("a".to_owned(), Bson::Null)]);
}

#[test]
fn let_vars_in_update_pipeline() {
    use crate::update::{ApplyContext, Update};
    let ctx = ApplyContext {
        matched: None,
        is_upsert_insert: false,
        now: bson::DateTime::now(),
    };
    let vars = vec![("x".to_owned(), Bson::String("foo".into()))];
    let u = Update::parse_with_vars(&bson::bson!([{"$set": {"x": "$$x"}}]), None, &vars)
        .expect("parses");
    let applied = u.apply(&doc! {"_id": 1}, &ctx).expect("applies");
    assert_eq!(applied.doc, doc! {"_id": 1, "x": "foo"});
    let e = Update::parse(&bson::bson!([{"$set": {"x": "$$x"}}]), None).expect_err("undefined");
    assert_eq!(e.code, 17276);
}

#[test]
fn rand_is_a_fresh_unit_double_each_time() {
    let e = Expr::parse(&Bson::Document(doc! {"$rand": {}})).expect("parse");
    assert!(!e.is_constant());
    let env = Env::new();
    let values: Vec<f64> = (0..1000)
        .map(|_| match e.evaluate(&doc! {}, &env).expect("eval") {
            Some(Bson::Double(d)) => d,
            other => panic!("not a double: {other:?}"),
        })
        .collect();
    assert!(values.iter().all(|v| (0.0..1.0).contains(v)));
    let distinct: std::collections::BTreeSet<u64> = values.iter().map(|v| v.to_bits()).collect();
    assert!(distinct.len() > 990, "values repeat: {}", distinct.len());
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    assert!((0.4..0.6).contains(&mean), "mean {mean}");
    assert!(Expr::parse(&Bson::Document(doc! {"$rand": []})).is_ok());
    let code = |v: Bson| {
        Expr::parse(&Bson::Document(doc! {"$rand": v}))
            .expect_err("should fail")
            .code
    };
    assert_eq!(code(Bson::Document(doc! {"x": 1})), 3040501);
    assert_eq!(code(bson::bson!([1])), 3040501);
    assert_eq!(code(Bson::Int32(0)), 10065);
    assert_eq!(code(Bson::Null), 10065);
}
