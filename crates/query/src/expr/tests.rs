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
            (doc! {"$meta": "textScore"}.into(), 115, ""),
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
            (doc! {"$add": ["$l", 1]}.into(), b(9.223372036854775808e18)),
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
                b(-9.223372036854775808e18),
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
