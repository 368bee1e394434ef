use bson::{doc, Bson, Document};
use eddy_codes::MongoError;

use super::*;

/// A context over in-memory collections of database `test`.
#[derive(Default)]
pub(crate) struct MapContext {
    pub colls: Vec<(String, Vec<Document>)>,
    pub env: Env,
}

impl Context for MapContext {
    fn collection(&mut self, _db: &str, coll: &str) -> Result<Vec<Document>, MongoError> {
        Ok(self
            .colls
            .iter()
            .find(|(n, _)| n == coll)
            .map(|(_, d)| d.clone())
            .unwrap_or_default())
    }
    fn db(&self) -> &str {
        "test"
    }
    fn env(&self) -> &Env {
        &self.env
    }
    fn index_stats(&mut self) -> Result<Vec<Document>, MongoError> {
        Ok(vec![doc! {"name": "_id_"}])
    }
    fn coll_stats(&mut self, spec: &CollStats) -> Result<Document, MongoError> {
        // The spec as parsed, for the parser's tests.
        Ok(doc! {"scale": spec.storage_scale, "count": spec.count})
    }
    fn local_sessions(
        &mut self,
        users: Option<&[(String, String)]>,
    ) -> Result<Vec<Document>, MongoError> {
        // Two sessions of the unauthenticated user ("", "").
        let mine = users.is_none_or(|u| u.iter().any(|(n, d)| n.is_empty() && d.is_empty()));
        Ok(if mine {
            vec![doc! {"_id": {"id": 1}}, doc! {"_id": {"id": 2}}]
        } else {
            Vec::new()
        })
    }
    fn current_ops(&mut self, spec: &CurrentOpSpec) -> Result<Vec<Document>, MongoError> {
        // The options as parsed, then one op per user kind, for the parser's tests.
        Ok(vec![
            doc! {"allUsers": spec.all_users, "idleConnections": spec.idle_connections,
            "idleCursors": spec.idle_cursors, "idleSessions": spec.idle_sessions,
            "truncateOps": spec.truncate_ops},
            doc! {"op": "getmore"},
        ])
    }
}

fn docs(v: Vec<Bson>) -> Vec<Document> {
    v.into_iter()
        .map(|b| match b {
            Bson::Document(d) => d,
            other => panic!("not a document: {other:?}"),
        })
        .collect()
}

fn stages(v: Bson) -> Vec<Document> {
    match v {
        Bson::Array(items) => docs(items),
        Bson::Document(d) => vec![d],
        other => panic!("not a pipeline: {other:?}"),
    }
}

fn run(pipeline: Bson, input: Bson) -> Vec<Document> {
    let Bson::Array(items) = input else {
        panic!("input must be an array")
    };
    let p = stages(pipeline.clone());
    run_simple(&p, docs(items)).unwrap_or_else(|e| panic!("{pipeline}: {e}"))
}

fn run_with(colls: Vec<(&str, Bson)>, pipeline: Bson, input: Bson) -> Vec<Document> {
    let mut ctx = MapContext::default();
    for (name, d) in colls {
        let Bson::Array(items) = d else { panic!() };
        ctx.colls.push((name.to_owned(), docs(items)));
    }
    let Bson::Array(items) = input else { panic!() };
    let p = Pipeline::parse(&stages(pipeline.clone())).unwrap_or_else(|e| panic!("{e}"));
    p.run(docs(items), &mut ctx)
        .unwrap_or_else(|e| panic!("{pipeline}: {e}"))
}

fn err(pipeline: Bson) -> (i32, String) {
    let e = Pipeline::parse(&stages(pipeline.clone()))
        .map(|_| ())
        .expect_err(&format!("{pipeline} should fail"));
    (e.code, e.message)
}

fn run_err(pipeline: Bson, input: Bson) -> (i32, String) {
    let Bson::Array(items) = input else { panic!() };
    let e = run_simple(&stages(pipeline.clone()), docs(items))
        .map(|_| ())
        .expect_err(&format!("{pipeline} should fail at run time"));
    (e.code, e.message)
}

fn expect(got: Vec<Document>, want: Bson) {
    let Bson::Array(items) = want else { panic!() };
    assert_eq!(got, docs(items));
}

#[test]
fn stage_name_errors() {
    let cases: Vec<(Bson, i32, &str)> = vec![
        (
            bson::bson!([{"$foo": 1}]),
            40324,
            "Unrecognized pipeline stage name: '$foo'",
        ),
        (
            bson::bson!([{"$search": {}}]),
            115,
            "Eddy does not support the $search stage",
        ),
        (
            bson::bson!([{"$geoNear": {}}]),
            16605,
            "$geoNear requires a 'near' option as an Array",
        ),
        (
            bson::bson!([{"$geoNear": {"near": [0, 0]}}]),
            16606,
            "$geoNear requires a 'distanceField' option as a String",
        ),
        (
            bson::bson!([{"$limit": 1}, {"$geoNear": {"near": [0, 0], "distanceField": "d"}}]),
            40603,
            "$geoNear was not the first stage in the pipeline.",
        ),
        (
            bson::bson!([{"$match": {}, "$limit": 1}]),
            40323,
            "A pipeline stage specification object must contain exactly one field.",
        ),
        (
            bson::bson!([{"$out": "x"}, {"$limit": 1}]),
            40601,
            "$out can only be the final stage in the pipeline",
        ),
        (
            bson::bson!([{"$merge": "x"}, {"$limit": 1}]),
            40601,
            "$merge can only be the final stage in the pipeline",
        ),
        (
            bson::bson!([{"$limit": 0}]),
            15958,
            "the limit must be positive",
        ),
        (
            bson::bson!([{"$limit": -1}]),
            5107201,
            "invalid argument to $limit stage: Expected a positive number in: $limit: -1",
        ),
        (
            bson::bson!([{"$limit": "a"}]),
            5107201,
            "invalid argument to $limit stage: Expected a number in: $limit: \"a\"",
        ),
        (
            bson::bson!([{"$skip": -1}]),
            5107200,
            "invalid argument to $skip stage: Expected a positive number in: $skip: -1",
        ),
        (
            bson::bson!([{"$match": 1}]),
            15959,
            "the match filter must be an expression in an object",
        ),
        (
            bson::bson!([{"$unwind": 1}]),
            15981,
            "expected either a string or an object as specification for $unwind stage, got int",
        ),
        (
            bson::bson!([{"$unwind": "a"}]),
            28818,
            "path option to $unwind stage should be prefixed with a '$': a",
        ),
        (
            bson::bson!([{"$unwind": {}}]),
            28812,
            "no path specified to $unwind stage",
        ),
        (
            bson::bson!([{"$unwind": {"path": "$a", "x": 1}}]),
            28811,
            "unrecognized option to $unwind stage: x",
        ),
        (
            bson::bson!([{"$group": 1}]),
            15947,
            "a group's fields must be specified in an object",
        ),
        (
            bson::bson!([{"$group": {"n": {"$sum": 1}}}]),
            15955,
            "a group specification must include an _id",
        ),
        (
            bson::bson!([{"$group": {"_id": null, "n": 1}}]),
            40234,
            "The field 'n' must be an accumulator object",
        ),
        (
            bson::bson!([{"$group": {"_id": null, "n": {"$sum": 1, "$avg": 1}}}]),
            40238,
            "The field 'n' must specify one accumulator",
        ),
        (
            bson::bson!([{"$group": {"_id": null, "n": {"$foo": 1}}}]),
            15952,
            "unknown group operator '$foo'",
        ),
        (
            bson::bson!([{"$group": {"_id": null, "n": {"$sum": [1, 2]}}}]),
            40237,
            "The $sum accumulator is a unary operator",
        ),
        (
            bson::bson!([{"$group": {"_id": null, "a.b": {"$sum": 1}}}]),
            40235,
            "The field name 'a.b' cannot contain '.'",
        ),
        (
            bson::bson!([{"$count": 1}]),
            40156,
            "the count field must be a non-empty string",
        ),
        (
            bson::bson!([{"$count": ""}]),
            40157,
            "the count field must be a non-empty string",
        ),
        (
            bson::bson!([{"$count": "$a"}]),
            40158,
            "the count field cannot be a $-prefixed path",
        ),
        (
            bson::bson!([{"$count": "a.b"}]),
            40160,
            "the count field cannot contain '.'",
        ),
        (
            bson::bson!([{"$sort": {}}]),
            15976,
            "$sort stage must have at least one sort key",
        ),
        (
            bson::bson!([{"$sample": {}}]),
            28749,
            "$sample stage must specify a size",
        ),
        (
            bson::bson!([{"$sample": {"size": -1}}]),
            28747,
            "size argument to $sample must not be negative",
        ),
        (
            bson::bson!([{"$facet": {}}]),
            40169,
            "the $facet specification must be a non-empty object",
        ),
        (
            bson::bson!([{"$facet": {"a": 1}}]),
            40170,
            "arguments to $facet must be arrays, a is type int",
        ),
        (
            bson::bson!([{"$facet": {"a": [{"$out": "x"}]}}]),
            40600,
            "$out is not allowed to be used within a $facet stage",
        ),
        (
            bson::bson!([{"$lookup": {"from": "b", "localField": "a"}}]),
            9,
            "must specify 'as' field for a $lookup",
        ),
        (
            bson::bson!([{"$bucket": {"groupBy": "$a", "boundaries": [0]}}]),
            40192,
            "The $bucket 'boundaries' field must have at least 2 values, but found 1 value(s).",
        ),
        (
            bson::bson!([{"$bucket": {"groupBy": "$a"}}]),
            40198,
            "$bucket requires 'groupBy' and 'boundaries' to be specified.",
        ),
        (
            bson::bson!([{"$unset": 1}]),
            31002,
            "$unset specification must be a string or an array",
        ),
        (
            bson::bson!([{"$addFields": 1}]),
            40272,
            "$addFields specification stage must be an object, got int",
        ),
        (
            bson::bson!([{"$documents": []}, {"$documents": []}]),
            40602,
            "$documents is only valid as the first stage in a pipeline",
        ),
    ];
    for (p, code, msg) in cases {
        let (c, m) = err(p.clone());
        assert_eq!((c, m.as_str()), (code, msg), "{p}");
    }
}

#[test]
fn match_project_limit_skip_sort() {
    let input = bson::bson!([
        {"_id": 1, "a": 5, "b": "x"},
        {"_id": 2, "a": 3, "b": "y"},
        {"_id": 3, "a": 9, "b": "z"},
        {"_id": 4, "b": "w"},
    ]);
    expect(
        run(
            bson::bson!([{"$match": {"a": {"$gt": 4}}}, {"$project": {"b": 1, "_id": 0}}]),
            input.clone(),
        ),
        bson::bson!([{"b": "x"}, {"b": "z"}]),
    );
    expect(
        run(
            bson::bson!([{"$sort": {"a": -1}}, {"$skip": 1}, {"$limit": 2}, {"$project": {"_id": 1}}]),
            input.clone(),
        ),
        bson::bson!([{"_id": 1}, {"_id": 2}]),
    );
    // Missing sorts first ascending.
    expect(
        run(
            bson::bson!([{"$sort": {"a": 1}}, {"$limit": 1}]),
            input.clone(),
        ),
        bson::bson!([{"_id": 4, "b": "w"}]),
    );
    // $match with $expr.
    expect(
        run(
            bson::bson!([{"$match": {"$expr": {"$gt": ["$a", 8]}}}]),
            input,
        ),
        bson::bson!([{"_id": 3, "a": 9, "b": "z"}]),
    );
}

#[test]
fn add_fields_set_unset() {
    // Manual: $addFields adding to an embedded document.
    let input = bson::bson!([{"_id": 1, "type": "car", "specs": {"doors": 4, "wheels": 4}}]);
    expect(
        run(
            bson::bson!([{"$addFields": {"specs.fuel_type": "unleaded"}}]),
            input.clone(),
        ),
        bson::bson!([{"_id": 1, "type": "car", "specs": {"doors": 4, "wheels": 4, "fuel_type": "unleaded"}}]),
    );
    expect(
        run(
            bson::bson!([{"$set": {"specs": {"fuel_type": "unleaded"}}}]),
            input.clone(),
        ),
        bson::bson!([{"_id": 1, "type": "car", "specs": {"doors": 4, "wheels": 4, "fuel_type": "unleaded"}}]),
    );
    // Overwriting a field, computed from the input.
    let scores = bson::bson!([{"_id": 1, "student": "Maya", "homework": [10, 5, 10], "quiz": [10, 8], "extraCredit": 0}]);
    expect(
        run(
            bson::bson!([{"$addFields": {"totalQuiz": {"$cond": [true, 10, 0]}, "extraCredit": {"$add": ["$extraCredit", 2]}}}]),
            scores.clone(),
        ),
        bson::bson!([{"_id": 1, "student": "Maya", "homework": [10, 5, 10], "quiz": [10, 8], "extraCredit": 2, "totalQuiz": 10}]),
    );
    // Into array elements.
    expect(
        run(
            bson::bson!([{"$set": {"a.b": 1}}]),
            bson::bson!([{"_id": 1, "a": [{"c": 1}, 2]}]),
        ),
        bson::bson!([{"_id": 1, "a": [{"c": 1, "b": 1}, {"b": 1}]}]),
    );
    // $$REMOVE removes.
    expect(
        run(bson::bson!([{"$set": {"type": "$$REMOVE"}}]), input.clone()),
        bson::bson!([{"_id": 1, "specs": {"doors": 4, "wheels": 4}}]),
    );
    expect(
        run(
            bson::bson!([{"$unset": ["type", "specs.doors"]}]),
            input.clone(),
        ),
        bson::bson!([{"_id": 1, "specs": {"wheels": 4}}]),
    );
    expect(
        run(bson::bson!([{"$unset": "specs"}]), input),
        bson::bson!([{"_id": 1, "type": "car"}]),
    );
}

fn sales() -> Bson {
    // The manual's $group "sales" collection (dates as strings for brevity).
    bson::bson!([
        {"_id": 1, "item": "abc", "price": 10, "quantity": 2, "day": "2014-03-01"},
        {"_id": 2, "item": "jkl", "price": 20, "quantity": 1, "day": "2014-03-01"},
        {"_id": 3, "item": "xyz", "price": 5, "quantity": 10, "day": "2014-03-15"},
        {"_id": 4, "item": "xyz", "price": 5, "quantity": 20, "day": "2014-04-04"},
        {"_id": 5, "item": "abc", "price": 10, "quantity": 10, "day": "2014-04-04"},
        {"_id": 6, "item": "def", "price": 7.5, "quantity": 5, "day": "2015-06-04"},
        {"_id": 7, "item": "def", "price": 7.5, "quantity": 10, "day": "2015-09-10"},
        {"_id": 8, "item": "abc", "price": 10, "quantity": 5, "day": "2016-02-06"},
    ])
}

#[test]
fn group_basics() {
    expect(
        run(
            bson::bson!([{"$group": {"_id": null, "count": {"$count": {}}, "n": {"$sum": 1}}}]),
            sales(),
        ),
        bson::bson!([{"_id": null, "count": 8, "n": 8}]),
    );
    expect(
        run(
            bson::bson!([
                {"$group": {"_id": "$item", "totalSaleAmount": {"$sum": {"$multiply": ["$price", "$quantity"]}}}},
                {"$match": {"totalSaleAmount": {"$gte": 100}}},
                {"$sort": {"_id": 1}},
            ]),
            sales(),
        ),
        bson::bson!([
            {"_id": "abc", "totalSaleAmount": 170},
            {"_id": "def", "totalSaleAmount": 112.5},
            {"_id": "xyz", "totalSaleAmount": 150},
        ]),
    );
    expect(
        run(
            bson::bson!([
                {"$group": {"_id": "$item", "avgQ": {"$avg": "$quantity"}, "minP": {"$min": "$price"}, "maxQ": {"$max": "$quantity"},
                    "first": {"$first": "$_id"}, "last": {"$last": "$_id"}, "ids": {"$push": "$_id"}, "prices": {"$addToSet": "$price"}}},
                {"$sort": {"_id": 1}},
                {"$limit": 1},
            ]),
            sales(),
        ),
        bson::bson!([{"_id": "abc", "avgQ": 17.0 / 3.0, "minP": 10, "maxQ": 10, "first": 1, "last": 8, "ids": [1, 5, 8], "prices": [10]}]),
    );
    // Empty input: no group at all.
    expect(
        run(
            bson::bson!([{"$group": {"_id": null, "n": {"$sum": 1}}}]),
            bson::bson!([]),
        ),
        bson::bson!([]),
    );
}

#[test]
fn group_keys_and_missing() {
    // Numeric keys of different types fall in one group; missing groups with null.
    let input = bson::bson!([
        {"_id": 1, "k": 1}, {"_id": 2, "k": 1.0}, {"_id": 3, "k": 1_i64},
        {"_id": 4, "k": null}, {"_id": 5},
        {"_id": 6, "k": {"a": 1, "b": 2}}, {"_id": 7, "k": {"a": 1, "b": 2}},
    ]);
    expect(
        run(
            bson::bson!([{"$group": {"_id": "$k", "ids": {"$push": "$_id"}}}]),
            input.clone(),
        ),
        bson::bson!([
            {"_id": 1, "ids": [1, 2, 3]},
            {"_id": null, "ids": [4, 5]},
            {"_id": {"a": 1, "b": 2}, "ids": [6, 7]},
        ]),
    );
    // Compound _id; missing fields are dropped from the key document.
    expect(
        run(
            bson::bson!([{"$match": {"_id": {"$in": [4, 5]}}}, {"$group": {"_id": {"x": "$k"}, "n": {"$sum": 1}}}]),
            input,
        ),
        bson::bson!([{"_id": {"x": null}, "n": 1}, {"_id": {}, "n": 1}]),
    );
}

#[test]
fn sum_avg_types() {
    let input = bson::bson!([{"v": 1}, {"v": 2_i64}, {"v": "x"}, {"v": null}, {}, {"v": [1, 2]}]);
    expect(
        run(
            bson::bson!([{"$group": {"_id": null, "s": {"$sum": "$v"}, "a": {"$avg": "$v"}, "mn": {"$min": "$v"}, "mx": {"$max": "$v"}}}]),
            input,
        ),
        bson::bson!([{"_id": null, "s": 3_i64, "a": 1.5, "mn": 1, "mx": [1, 2]}]),
    );
    // int overflow widens to long.
    let input = bson::bson!([{"v": i32::MAX}, {"v": 1}]);
    expect(
        run(
            bson::bson!([{"$group": {"_id": null, "s": {"$sum": "$v"}}}]),
            input,
        ),
        bson::bson!([{"_id": null, "s": i64::from(i32::MAX) + 1}]),
    );
    let input = bson::bson!([{"v": 1}, {"v": 0.5}]);
    expect(
        run(
            bson::bson!([{"$group": {"_id": null, "s": {"$sum": "$v"}, "none": {"$avg": "$nope"}, "z": {"$sum": "$nope"}}}]),
            input,
        ),
        bson::bson!([{"_id": null, "s": 1.5, "none": null, "z": 0}]),
    );
}

#[test]
fn std_dev_and_merge_objects() {
    // Manual: $stdDevPop of quiz scores.
    let input = bson::bson!([
        {"_id": 1, "name": "dave123", "quiz": 1, "score": 85},
        {"_id": 2, "name": "dave2", "quiz": 1, "score": 90},
        {"_id": 3, "name": "ahn", "quiz": 1, "score": 71},
        {"_id": 4, "name": "li", "quiz": 2, "score": 96},
        {"_id": 5, "name": "annT", "quiz": 2, "score": 77},
        {"_id": 6, "name": "ty", "quiz": 2, "score": 82},
    ]);
    let out = run(
        bson::bson!([{"$group": {"_id": "$quiz", "p": {"$stdDevPop": "$score"}, "s": {"$stdDevSamp": "$score"}}}]),
        input,
    );
    let p = out[0].get_f64("p").expect("double");
    assert!((p - 8.04155872120988).abs() < 1e-9, "{p}");
    let p2 = out[1].get_f64("p").expect("double");
    assert!((p2 - 8.04155872120988).abs() < 1e-9, "{p2}");
    let s = out[0].get_f64("s").expect("double");
    assert!((s - 9.848857801796104).abs() < 1e-9, "{s}");
    expect(
        run(
            bson::bson!([{"$group": {"_id": null, "s": {"$stdDevSamp": "$x"}}}]),
            bson::bson!([{"x": 1}]),
        ),
        bson::bson!([{"_id": null, "s": null}]),
    );
    // Manual: $mergeObjects.
    let input = bson::bson!([
        {"_id": 1, "year": 2017, "item": "A", "quantity": {"2017Q1": 500, "2017Q2": 500}},
        {"_id": 2, "year": 2016, "item": "A", "quantity": {"2016Q1": 400, "2016Q2": 300, "2016Q3": 0, "2016Q4": 0}},
        {"_id": 3, "year": 2017, "item": "B", "quantity": {"2017Q1": 300}},
        {"_id": 4, "year": 2016, "item": "B", "quantity": {"2016Q3": 100, "2016Q4": 250}},
    ]);
    expect(
        run(
            bson::bson!([{"$group": {"_id": "$item", "mergedSales": {"$mergeObjects": "$quantity"}}}]),
            input,
        ),
        bson::bson!([
            {"_id": "A", "mergedSales": {"2017Q1": 500, "2017Q2": 500, "2016Q1": 400, "2016Q2": 300, "2016Q3": 0, "2016Q4": 0}},
            {"_id": "B", "mergedSales": {"2017Q1": 300, "2016Q3": 100, "2016Q4": 250}},
        ]),
    );
    let (code, _) = run_err(
        bson::bson!([{"$group": {"_id": null, "m": {"$mergeObjects": "$x"}}}]),
        bson::bson!([{"x": 1}]),
    );
    assert_eq!(code, 40400);
}

fn games() -> Bson {
    // The manual's gamescores collection.
    bson::bson!([
        {"playerId": "PlayerA", "gameId": "G1", "score": 31},
        {"playerId": "PlayerB", "gameId": "G1", "score": 33},
        {"playerId": "PlayerC", "gameId": "G1", "score": 99},
        {"playerId": "PlayerD", "gameId": "G1", "score": 1},
        {"playerId": "PlayerA", "gameId": "G2", "score": 10},
        {"playerId": "PlayerB", "gameId": "G2", "score": 14},
        {"playerId": "PlayerC", "gameId": "G2", "score": 66},
        {"playerId": "PlayerD", "gameId": "G2", "score": 80},
    ])
}

#[test]
fn n_accumulators() {
    expect(
        run(
            bson::bson!([
                {"$match": {"gameId": "G1"}},
                {"$group": {"_id": "$gameId",
                    "top": {"$top": {"output": ["$playerId", "$score"], "sortBy": {"score": -1}}},
                    "bottom": {"$bottom": {"output": ["$playerId", "$score"], "sortBy": {"score": -1}}},
                    "top3": {"$topN": {"output": ["$playerId", "$score"], "sortBy": {"score": -1}, "n": 3}},
                    "bottom3": {"$bottomN": {"output": ["$playerId", "$score"], "sortBy": {"score": -1}, "n": 3}},
                    "first2": {"$firstN": {"input": "$playerId", "n": 2}},
                    "last2": {"$lastN": {"input": "$playerId", "n": 2}},
                    "max2": {"$maxN": {"input": "$score", "n": 2}},
                    "min2": {"$minN": {"input": "$score", "n": 2}},
                }},
            ]),
            games(),
        ),
        bson::bson!([{
            "_id": "G1",
            "top": ["PlayerC", 99],
            "bottom": ["PlayerD", 1],
            "top3": [["PlayerC", 99], ["PlayerB", 33], ["PlayerA", 31]],
            "bottom3": [["PlayerB", 33], ["PlayerA", 31], ["PlayerD", 1]],
            "first2": ["PlayerA", "PlayerB"],
            "last2": ["PlayerC", "PlayerD"],
            "max2": [99, 33],
            "min2": [1, 31],
        }]),
    );
    // n computed from the group key (manual example).
    expect(
        run(
            bson::bson!([{"$group": {"_id": {"gameId": "$gameId"}, "gamescores": {"$firstN": {"input": "$score",
                "n": {"$cond": {"if": {"$eq": ["$_id.gameId", "G2"]}, "then": 1, "else": 3}}}}}}]),
            games(),
        ),
        bson::bson!([
            {"_id": {"gameId": "G1"}, "gamescores": [31, 33, 99]},
            {"_id": {"gameId": "G2"}, "gamescores": [10]},
        ]),
    );
    let (code, _) = run_err(
        bson::bson!([{"$group": {"_id": null, "f": {"$firstN": {"input": "$a", "n": 0}}}}]),
        bson::bson!([{"a": 1}]),
    );
    assert_eq!(code, 5787908);
    let (code, _) =
        err(bson::bson!([{"$group": {"_id": null, "f": {"$firstN": {"input": "$a"}}}}]));
    assert_eq!(code, 5787906);
}

#[test]
fn count_and_sort_by_count() {
    expect(
        run(
            bson::bson!([{"$match": {"price": {"$gt": 7}}}, {"$count": "n"}]),
            sales(),
        ),
        bson::bson!([{"n": 6}]),
    );
    expect(
        run(
            bson::bson!([{"$match": {"price": {"$gt": 70}}}, {"$count": "n"}]),
            sales(),
        ),
        bson::bson!([]),
    );
    expect(
        run(
            bson::bson!([{"$sortByCount": "$item"}, {"$limit": 2}]),
            sales(),
        ),
        bson::bson!([{"_id": "abc", "count": 3}, {"_id": "xyz", "count": 2}]),
    );
}

#[test]
fn unwind_cases() {
    let input = bson::bson!([
        {"_id": 1, "item": "Shirt", "sizes": ["S", "M", "L"]},
        {"_id": 2, "item": "Shorts", "sizes": []},
        {"_id": 3, "item": "Hat", "sizes": "M"},
        {"_id": 4, "item": "Gloves"},
        {"_id": 5, "item": "Scarf", "sizes": null},
    ]);
    expect(
        run(bson::bson!([{"$unwind": "$sizes"}]), input.clone()),
        bson::bson!([
            {"_id": 1, "item": "Shirt", "sizes": "S"},
            {"_id": 1, "item": "Shirt", "sizes": "M"},
            {"_id": 1, "item": "Shirt", "sizes": "L"},
            {"_id": 3, "item": "Hat", "sizes": "M"},
        ]),
    );
    expect(
        run(
            bson::bson!([{"$unwind": {"path": "$sizes", "preserveNullAndEmptyArrays": true, "includeArrayIndex": "idx"}}]),
            input,
        ),
        bson::bson!([
            {"_id": 1, "item": "Shirt", "sizes": "S", "idx": 0_i64},
            {"_id": 1, "item": "Shirt", "sizes": "M", "idx": 1_i64},
            {"_id": 1, "item": "Shirt", "sizes": "L", "idx": 2_i64},
            {"_id": 2, "item": "Shorts", "idx": null},
            {"_id": 3, "item": "Hat", "sizes": "M", "idx": null},
            {"_id": 4, "item": "Gloves", "idx": null},
            {"_id": 5, "item": "Scarf", "sizes": null, "idx": null},
        ]),
    );
    // Nested path.
    expect(
        run(
            bson::bson!([{"$unwind": "$a.b"}]),
            bson::bson!([{"_id": 1, "a": {"b": [1, 2], "c": 3}}]),
        ),
        bson::bson!([{"_id": 1, "a": {"b": 1, "c": 3}}, {"_id": 1, "a": {"b": 2, "c": 3}}]),
    );
}

#[test]
fn lookup_forms() {
    let orders = bson::bson!([
        {"_id": 1, "item": "almonds", "price": 12, "quantity": 2},
        {"_id": 2, "item": "pecans", "price": 20, "quantity": 1},
        {"_id": 3},
    ]);
    let inventory = bson::bson!([
        {"_id": 1, "sku": "almonds", "description": "product 1", "instock": 120},
        {"_id": 2, "sku": "bread", "description": "product 2", "instock": 80},
        {"_id": 3, "sku": "cashews", "description": "product 3", "instock": 60},
        {"_id": 4, "sku": "pecans", "description": "product 4", "instock": 70},
        {"_id": 5, "sku": null, "description": "Incomplete"},
        {"_id": 6},
    ]);
    let out = run_with(
        vec![("inventory", inventory.clone())],
        bson::bson!([{"$lookup": {"from": "inventory", "localField": "item", "foreignField": "sku", "as": "inventory_docs"}}, {"$project": {"ids": "$inventory_docs._id"}}]),
        orders.clone(),
    );
    expect(
        out,
        bson::bson!([{"_id": 1, "ids": [1]}, {"_id": 2, "ids": [4]}, {"_id": 3, "ids": [5, 6]}]),
    );
    // Array local field matches any element.
    let out = run_with(
        vec![("inventory", inventory.clone())],
        bson::bson!([{"$lookup": {"from": "inventory", "localField": "skus", "foreignField": "sku", "as": "docs"}}, {"$project": {"ids": "$docs._id"}}]),
        bson::bson!([{"_id": 1, "skus": ["bread", "pecans"]}]),
    );
    expect(out, bson::bson!([{"_id": 1, "ids": [2, 4]}]));
    // let + pipeline with $expr on a variable.
    let out = run_with(
        vec![("inventory", inventory.clone())],
        bson::bson!([
            {"$match": {"_id": {"$lt": 3}}},
            {"$lookup": {"from": "inventory", "let": {"want": "$quantity", "name": "$item"},
                "pipeline": [
                    {"$match": {"$expr": {"$and": [{"$eq": ["$sku", "$$name"]}, {"$gte": ["$instock", "$$want"]}]}}},
                    {"$project": {"_id": 0, "instock": 1}},
                ],
                "as": "stock"}},
            {"$project": {"stock": 1}},
        ]),
        orders.clone(),
    );
    expect(
        out,
        bson::bson!([{"_id": 1, "stock": [{"instock": 120}]}, {"_id": 2, "stock": [{"instock": 70}]}]),
    );
    // Concise correlated form (localField + pipeline).
    let out = run_with(
        vec![("inventory", inventory)],
        bson::bson!([
            {"$match": {"_id": 1}},
            {"$lookup": {"from": "inventory", "localField": "item", "foreignField": "sku",
                "pipeline": [{"$project": {"_id": 0, "description": 1}}], "as": "d"}},
        ]),
        orders,
    );
    expect(
        out,
        bson::bson!([{"_id": 1, "item": "almonds", "price": 12, "quantity": 2, "d": [{"description": "product 1"}]}]),
    );
}

#[test]
fn facet_union_documents() {
    let out = run(
        bson::bson!([{"$facet": {
            "byItem": [{"$sortByCount": "$item"}, {"$limit": 1}],
            "total": [{"$count": "n"}],
        }}]),
        sales(),
    );
    expect(
        out,
        bson::bson!([{"byItem": [{"_id": "abc", "count": 3}], "total": [{"n": 8}]}]),
    );
    let out = run_with(
        vec![("other", bson::bson!([{"_id": 10}, {"_id": 11}]))],
        bson::bson!([{"$unionWith": {"coll": "other", "pipeline": [{"$match": {"_id": 11}}]}}]),
        bson::bson!([{"_id": 1}]),
    );
    expect(out, bson::bson!([{"_id": 1}, {"_id": 11}]));
    let out = run(
        bson::bson!([{"$documents": [{"x": 1}, {"x": 2}]}, {"$match": {"x": 2}}]),
        bson::bson!([]),
    );
    expect(out, bson::bson!([{"x": 2}]));
}

#[test]
fn replace_root_and_redact() {
    let input = bson::bson!([{"_id": 1, "name": {"first": "John", "last": "Backus"}}]);
    expect(
        run(
            bson::bson!([{"$replaceRoot": {"newRoot": "$name"}}]),
            input.clone(),
        ),
        bson::bson!([{"first": "John", "last": "Backus"}]),
    );
    expect(
        run(
            bson::bson!([{"$replaceWith": {"n": "$name.first"}}]),
            input.clone(),
        ),
        bson::bson!([{"n": "John"}]),
    );
    let (code, msg) = run_err(
        bson::bson!([{"$replaceRoot": {"newRoot": "$missing"}}]),
        input,
    );
    assert_eq!(code, 40228);
    assert!(
        msg.starts_with("'newRoot' must evaluate to an object, but resulting value was: missing."),
        "{msg}"
    );
    // $redact: prune subdocuments whose level is 5.
    let input = bson::bson!([{"_id": 1, "level": 1, "a": {"level": 5, "x": 1}, "b": [{"level": 1, "y": 2}, {"level": 5}]}]);
    expect(
        run(
            bson::bson!([{"$redact": {"$cond": {"if": {"$eq": ["$level", 5]}, "then": "$$PRUNE", "else": "$$DESCEND"}}}]),
            input.clone(),
        ),
        bson::bson!([{"_id": 1, "level": 1, "b": [{"level": 1, "y": 2}]}]),
    );
    let (code, _) = run_err(bson::bson!([{"$redact": "x"}]), input);
    assert_eq!(code, 17053);
}

#[test]
fn buckets() {
    // Manual $bucket example (artists).
    let input = bson::bson!([
        {"_id": 1, "last_name": "Bernard", "year_born": 1845},
        {"_id": 2, "last_name": "Rippl-Ronai", "year_born": 1861},
        {"_id": 3, "last_name": "Ostroumova", "year_born": 1871},
        {"_id": 4, "last_name": "Van Gogh", "year_born": 1853},
        {"_id": 5, "last_name": "Maurer", "year_born": 1868},
        {"_id": 6, "last_name": "Munch", "year_born": 1863},
        {"_id": 7, "last_name": "Klimt", "year_born": 1862},
        {"_id": 8, "last_name": "Gauguin", "year_born": 1848},
    ]);
    expect(
        run(
            bson::bson!([{"$bucket": {"groupBy": "$year_born", "boundaries": [1840, 1850, 1860, 1870, 1880], "default": "Other",
                "output": {"count": {"$sum": 1}, "artists": {"$push": "$last_name"}}}}]),
            input.clone(),
        ),
        bson::bson!([
            {"_id": 1840, "count": 2, "artists": ["Bernard", "Gauguin"]},
            {"_id": 1850, "count": 1, "artists": ["Van Gogh"]},
            {"_id": 1860, "count": 4, "artists": ["Rippl-Ronai", "Maurer", "Munch", "Klimt"]},
            {"_id": 1870, "count": 1, "artists": ["Ostroumova"]},
        ]),
    );
    let (code, _) = run_err(
        bson::bson!([{"$bucket": {"groupBy": "$year_born", "boundaries": [1850, 1860]}}]),
        input.clone(),
    );
    assert_eq!(code, 40066);
    expect(
        run(
            bson::bson!([{"$bucketAuto": {"groupBy": "$year_born", "buckets": 2}}]),
            input,
        ),
        bson::bson!([
            {"_id": {"min": 1845, "max": 1862}, "count": 4},
            {"_id": {"min": 1862, "max": 1871}, "count": 4},
        ]),
    );
}

#[test]
fn sample_sizes() {
    let input = bson::bson!([{"_id": 1}, {"_id": 2}, {"_id": 3}]);
    assert_eq!(
        run(bson::bson!([{"$sample": {"size": 2}}]), input.clone()).len(),
        2
    );
    assert_eq!(
        run(bson::bson!([{"$sample": {"size": 10}}]), input).len(),
        3
    );
}

#[test]
fn out_and_merge_are_described() {
    let p = Pipeline::parse(&stages(bson::bson!([{"$match": {"a": 1}}, {"$out": "t"}])))
        .expect("parses");
    assert_eq!(p.leading_match(), Some(&doc! {"a": 1}));
    assert!(matches!(p.writes(), Some(Output::Out { db: None, coll, .. }) if coll == "t"));
    let p = Pipeline::parse(&stages(bson::bson!([{"$merge": {"into": {"db": "x", "coll": "t"}, "whenMatched": "replace", "whenNotMatched": "discard"}}])))
        .expect("parses");
    let Some(Output::Merge(m)) = p.writes() else {
        panic!()
    };
    assert_eq!((m.db.as_deref(), m.coll.as_str()), (Some("x"), "t"));
    assert_eq!(
        m.merge(doc! {"_id": 1}, None, &Env::new()).expect("ok"),
        MergeAction::Nothing
    );
    let p = Pipeline::parse(&stages(bson::bson!([{"$merge": {"into": "t", "whenMatched": [{"$set": {"n": {"$add": ["$n", "$$new.n"]}}}]}}])))
        .expect("parses");
    let Some(Output::Merge(m)) = p.writes() else {
        panic!()
    };
    assert_eq!(
        m.merge(
            doc! {"_id": 1, "n": 2},
            Some(&doc! {"_id": 1, "n": 5}),
            &Env::new()
        )
        .expect("ok"),
        MergeAction::Replace(doc! {"_id": 1, "n": 7})
    );
    let (code, _) = err(bson::bson!([{"$merge": {"into": "t", "whenMatched": [{"$match": {}}]}}]));
    assert_eq!(code, 72);
}

#[test]
fn change_stream_pipelines() {
    let p = Pipeline::parse_change_stream(&stages(bson::bson!([
        {"$match": {"operationType": "insert"}},
        {"$addFields": {"x": "$fullDocument.a"}},
        {"$project": {"fullDocument": 0}},
    ])))
    .expect("parses");
    let ev = doc! {"_id": {"_data": "1"}, "operationType": "insert", "fullDocument": {"a": 5}};
    assert_eq!(
        p.apply_one(ev, &Env::new()).expect("runs"),
        Some(doc! {"_id": {"_data": "1"}, "operationType": "insert", "x": 5})
    );
    let ev = doc! {"_id": {"_data": "2"}, "operationType": "delete"};
    assert_eq!(p.apply_one(ev, &Env::new()).expect("runs"), None);
    for (stage, code) in [
        (bson::bson!({"$group": {"_id": null}}), 20),
        (bson::bson!({"$limit": 1}), 20),
        (bson::bson!({"$changeStreamSplitLargeEvent": {}}), 7182802),
        (bson::bson!({"$geoNear": {}}), 20),
        (bson::bson!({"$search": {}}), 115),
        (bson::bson!({"$nope": {}}), 40324),
        (bson::bson!({"$match": {"$text": {"$search": "x"}}}), 224),
    ] {
        let e = Pipeline::parse_change_stream(&stages(stage.clone())).expect_err("refused");
        assert_eq!(e.code, code, "{stage}");
    }
    let e = Pipeline::parse_change_stream(&stages(bson::bson!({"$group": {"_id": null}})))
        .expect_err("refused");
    assert_eq!(
        e.message,
        "$group is not permitted in a $changeStream pipeline"
    );
}

#[test]
fn text_in_pipelines() {
    let code = |p: bson::Bson| Pipeline::parse(&stages(p)).map(|_| ()).map_err(|e| e.code);
    assert_eq!(
        code(bson::bson!([{"$match": {"$text": {"$search": "x"}}}])),
        Ok(())
    );
    assert_eq!(
        code(bson::bson!([{"$limit": 1}, {"$match": {"$text": {"$search": "x"}}}])),
        Err(17313)
    );
    assert_eq!(
        code(bson::bson!([{"$facet": {"a": [{"$match": {"$text": {"$search": "x"}}}]}}])),
        Err(17313)
    );
    assert_eq!(
        code(bson::bson!([{"$project": {"s": {"$meta": "textScore"}}}])),
        Err(40218)
    );
    assert_eq!(
        code(bson::bson!([
            {"$match": {"$text": {"$search": "x"}}},
            {"$sort": {"s": {"$meta": "textScore"}}},
        ])),
        Ok(())
    );
    // The stage itself never decides `$text`: only the engine's text plan does.
    let p = Pipeline::parse(&stages(
        bson::bson!([{"$match": {"$text": {"$search": "x"}}}]),
    ))
    .expect("parses");
    let mut ctx = MapContext::default();
    let e = p
        .run(vec![doc! {"a": "x"}], &mut ctx)
        .expect_err("needs the index");
    assert_eq!(e.code, 27);
}

#[test]
fn update_pipelines() {
    use crate::update::{ApplyContext, Update};
    let ctx = ApplyContext {
        matched: None,
        is_upsert_insert: false,
        now: bson::DateTime::now(),
    };
    let u = Update::parse(
        &bson::bson!([{"$set": {"b": {"$add": ["$a", 1]}}}, {"$unset": "a"}]),
        None,
    )
    .expect("parses");
    let big = "x".repeat(200);
    let applied = u
        .apply(&doc! {"_id": 1, "a": 1, "big": big.clone()}, &ctx)
        .expect("applies");
    assert_eq!(applied.doc, doc! {"_id": 1, "big": big, "b": 2});
    assert!(applied.modified);
    assert_eq!(applied.description.updated_fields, doc! {"b": 2});
    assert_eq!(applied.description.removed_fields, vec!["a".to_owned()]);
    assert!(applied.diff.is_some());
    // _id dropped by the pipeline is kept; changing it is 66.
    let u = Update::parse(&bson::bson!([{"$replaceWith": {"x": 1}}]), None).expect("parses");
    assert_eq!(
        u.apply(&doc! {"_id": 1}, &ctx).expect("applies").doc,
        doc! {"_id": 1, "x": 1}
    );
    let u = Update::parse(&bson::bson!([{"$set": {"_id": 2}}]), None).expect("parses");
    assert_eq!(
        u.apply(&doc! {"_id": 1}, &ctx)
            .map(|_| ())
            .expect_err("immutable")
            .code,
        66
    );
    let e = Update::parse(&bson::bson!([{"$match": {}}]), None)
        .map(|_| ())
        .expect_err("refused");
    assert_eq!(
        (e.code, e.message.as_str()),
        (72, "$match is not allowed to be used within an update")
    );
    // No change: not modified.
    let u = Update::parse(&bson::bson!([{"$set": {"a": 1}}]), None).expect("parses");
    assert!(
        !u.apply(&doc! {"_id": 1, "a": 1}, &ctx)
            .expect("applies")
            .modified
    );
}

#[test]
fn list_local_sessions_parses_as_mongod() {
    let run = |spec: Bson, rest: Vec<Document>| {
        let mut stages = vec![doc! {"$listLocalSessions": spec}];
        stages.extend(rest);
        run_simple(&stages, Vec::new())
    };
    assert_eq!(run(Bson::Document(doc! {}), vec![]).expect("runs").len(), 2);
    assert_eq!(
        run(Bson::Document(doc! {"allUsers": true}), vec![])
            .expect("runs")
            .len(),
        2
    );
    let other = doc! {"users": [{"user": "app", "db": "test"}]};
    assert_eq!(run(Bson::Document(other), vec![]).expect("runs").len(), 0);
    let limited = run(
        Bson::Document(doc! {}),
        vec![doc! {"$limit": 1}, doc! {"$project": {"_id": 0, "x": "y"}}],
    )
    .expect("runs");
    assert_eq!(limited, vec![doc! {"x": "y"}]);
    let code = |r: Result<Vec<Document>, MongoError>| r.expect_err("should fail").code;
    assert_eq!(code(run(Bson::Int32(1), vec![])), 14);
    assert_eq!(
        code(run(
            Bson::Document(doc! {"allUsers": true, "users": [{"user": "a", "db": "b"}]}),
            vec![]
        )),
        12
    );
    assert_eq!(code(run(Bson::Document(doc! {"bogus": 1}), vec![])), 40415);
    assert_eq!(
        code(run(Bson::Document(doc! {"users": [{"user": "a"}]}), vec![])),
        40414
    );
    let not_first = vec![doc! {"$match": {}}, doc! {"$listLocalSessions": {}}];
    assert_eq!(code(run_simple(&not_first, Vec::new())), 40602);
}

#[test]
fn current_op_parses_as_mongod() {
    let run = |spec: Bson, rest: Vec<Document>| {
        let mut stages = vec![doc! {"$currentOp": spec}];
        stages.extend(rest);
        run_simple(&stages, Vec::new())
    };
    let out = run(Bson::Document(doc! {}), vec![]).expect("runs");
    assert_eq!(
        out[0],
        doc! {"allUsers": false, "idleConnections": false, "idleCursors": false,
        "idleSessions": true, "truncateOps": false}
    );
    let out = run(
        Bson::Document(
            doc! {"allUsers": true, "idleCursors": true, "idleSessions": false,
            "localOps": true, "backtrace": false},
        ),
        vec![doc! {"$match": {"op": {"$exists": false}}}],
    )
    .expect("runs");
    assert_eq!(
        out,
        vec![
            doc! {"allUsers": true, "idleConnections": false, "idleCursors": true,
            "idleSessions": false, "truncateOps": false}
        ]
    );
    let err = |spec: Bson| {
        let e = run(spec, vec![]).expect_err("should fail");
        (e.code, e.message)
    };
    assert_eq!(
        err(Bson::Int32(1)),
        (
            14,
            "$currentOp options must be specified in an object, but found: int".into()
        )
    );
    assert_eq!(err(Bson::Document(doc! {"allUsers": 1})).0, 14);
    assert_eq!(err(Bson::Document(doc! {"localOps": "x"})).0, 14);
    assert_eq!(
        err(Bson::Document(doc! {"idleConnections": 1})),
        (
            9,
            "The 'idleConnections' parameter of the $currentOp stage must be a boolean value, but found: int".into()
        )
    );
    assert_eq!(
        err(Bson::Document(doc! {"bogus": true})),
        (9, "Unrecognized option 'bogus' in $currentOp stage.".into())
    );
    let not_first = vec![doc! {"$match": {}}, doc! {"$currentOp": {}}];
    assert_eq!(
        run_simple(&not_first, Vec::new()).expect_err("first").code,
        40602
    );
}

#[test]
fn coll_stats_parses_as_mongod() {
    let run = |spec: Bson| run_simple(&[doc! {"$collStats": spec}], Vec::new());
    assert_eq!(
        run(Bson::Document(
            doc! {"storageStats": {"scale": 1024}, "count": {}}
        ))
        .expect("runs"),
        vec![doc! {"scale": 1024_i64, "count": true}]
    );
    assert_eq!(
        run(Bson::Document(doc! {})).expect("runs"),
        vec![doc! {"scale": Bson::Null, "count": false}]
    );
    let code = |r: Result<Vec<Document>, MongoError>| r.expect_err("should fail").code;
    assert_eq!(code(run(Bson::Int32(1))), 14);
    assert_eq!(code(run(Bson::Document(doc! {"count": 1}))), 14);
    assert_eq!(code(run(Bson::Document(doc! {"bogus": {}}))), 40415);
    assert_eq!(
        code(run(Bson::Document(doc! {"storageStats": {"scale": 0}}))),
        51024
    );
    assert_eq!(code(run(Bson::Document(doc! {"latencyStats": {}}))), 115);
    let not_first = vec![doc! {"$match": {}}, doc! {"$collStats": {}}];
    assert_eq!(code(run_simple(&not_first, Vec::new())), 40602);
    // `$indexStats` takes `{}` only.
    let index_stats = |arg: Bson| run_simple(&[doc! {"$indexStats": arg}], Vec::new());
    assert_eq!(index_stats(Bson::Document(doc! {})).expect("runs").len(), 1);
    assert_eq!(code(index_stats(Bson::Document(doc! {"a": 1}))), 28803);
    assert_eq!(code(index_stats(Bson::Int32(1))), 28803);
}

#[test]
fn project_sees_let_variables() {
    let stages = vec![doc! {"$project": {"_id": 0, "x": "$$x", "r": {"$rand": {}}}}];
    let p = Pipeline::parse_with_vars(&stages, &["x".to_owned()]).expect("parses");
    let mut ctx = MapContext::default();
    ctx.env.vars = vec![("x".to_owned(), Bson::String("foo".into()))];
    let out = p.run(vec![doc! {"_id": 1}], &mut ctx).expect("runs");
    assert_eq!(out[0].get_str("x").ok(), Some("foo"));
    assert!(matches!(out[0].get("r"), Some(Bson::Double(d)) if (0.0..1.0).contains(d)));
    // Without the variable in scope, mongod's 17276.
    let e = Pipeline::parse(&stages).expect_err("undefined variable");
    assert_eq!(e.code, 17276);
}

#[test]
fn stage_names_follow_the_registry() {
    let code = |stage: Document| Pipeline::parse(&[stage]).map(|_| ()).map_err(|e| e.code);
    assert_eq!(code(doc! {"$limit": 1}), Ok(()));
    assert_eq!(code(doc! {"$nope": {}}), Err(40324));
    assert_eq!(code(doc! {"$limit": 1, "$skip": 1}), Err(40323));
    assert_eq!(code(doc! {"$search": {}}), Err(115));
    assert_eq!(code(doc! {"$changeStream": {}}), Err(40602));
    // As mongod: the change stream's own stage is refused anywhere else (20).
    assert_eq!(code(doc! {"$changeStreamSplitLargeEvent": {}}), Err(20));
    let e =
        Pipeline::parse(&[doc! {"$match": {}}, doc! {"$documents": []}]).expect_err("not first");
    assert_eq!(e.code, 40602);
}

#[test]
fn graph_lookup_walks_the_documented_hierarchy() {
    let employees = vec![
        doc! {"_id": 1, "name": "Dev"},
        doc! {"_id": 2, "name": "Eliot", "reportsTo": "Dev"},
        doc! {"_id": 3, "name": "Ron", "reportsTo": "Eliot"},
        doc! {"_id": 4, "name": "Andrew", "reportsTo": "Eliot"},
        doc! {"_id": 5, "name": "Asya", "reportsTo": "Ron"},
        doc! {"_id": 6, "name": "Dan", "reportsTo": "Andrew"},
    ];
    let mut ctx = MapContext {
        colls: vec![("employees".to_owned(), employees.clone())],
        ..MapContext::default()
    };
    let p = Pipeline::parse(&[doc! {"$graphLookup": {
    "from": "employees", "startWith": "$reportsTo", "connectFromField": "reportsTo",
    "connectToField": "name", "as": "reportingHierarchy", "depthField": "depth"}}])
    .expect("parses");
    let out = p.run(employees.clone(), &mut ctx).expect("runs");
    let chain = |i: usize| -> Vec<(i32, i64)> {
        let mut v: Vec<(i32, i64)> = out[i]
            .get_array("reportingHierarchy")
            .expect("as")
            .iter()
            .map(|d| {
                let d = d.as_document().expect("a document");
                (
                    d.get_i32("_id").expect("id"),
                    d.get_i64("depth").expect("depth"),
                )
            })
            .collect();
        v.sort_unstable();
        v
    };
    assert_eq!(chain(0), vec![]);
    assert_eq!(chain(4), vec![(1, 2), (2, 1), (3, 0)]);
    assert_eq!(chain(5), vec![(1, 2), (2, 1), (4, 0)]);
    let p = Pipeline::parse(&[doc! {"$graphLookup": {
    "from": "employees", "startWith": "$reportsTo", "connectFromField": "reportsTo",
    "connectToField": "name", "as": "h", "maxDepth": 0,
    "restrictSearchWithMatch": {"_id": {"$ne": 4}}}}])
    .expect("parses");
    let out = p.run(employees, &mut ctx).expect("runs");
    assert_eq!(out[4].get_array("h").expect("h").len(), 1);
    assert_eq!(out[5].get_array("h").expect("h").len(), 0);
    let code = |spec: Document| {
        Pipeline::parse(&[doc! {"$graphLookup": spec}])
            .map(|_| ())
            .expect_err("fails")
            .code
    };
    assert_eq!(code(doc! {"from": "e"}), 40105);
    assert_eq!(code(doc! {"from": 1}), 40103);
    assert_eq!(code(doc! {"maxDepth": "x"}), 40100);
    assert_eq!(code(doc! {"maxDepth": -1}), 40101);
    assert_eq!(code(doc! {"maxDepth": 1.5}), 40102);
    assert_eq!(code(doc! {"restrictSearchWithMatch": 1}), 40185);
    assert_eq!(code(doc! {"bogus": 1}), 40104);
}

/// Runs `stages` under `{locale: "en", strength: 2}` (case-insensitive), with the other
/// collections `colls`.
fn run_ci(
    stages: &[Document],
    input: Vec<Document>,
    colls: Vec<(String, Vec<Document>)>,
) -> Vec<Document> {
    let c = crate::collation::Collation::parse(&doc! {"locale": "en", "strength": 2})
        .expect("valid")
        .expect("not simple");
    let p = Pipeline::parse(stages).expect("parses").collated(Some(&c));
    let mut ctx = MapContext {
        colls,
        ..MapContext::default()
    };
    p.run(input, &mut ctx).expect("runs")
}

#[test]
fn collation_applies_to_expressions() {
    let input = vec![doc! {"_id": 1, "a": "cafe", "b": "CAFE", "arr": ["X", "y"]}];
    let stage = doc! {"$project": {
        "eq": {"$eq": ["$a", "$b"]},
        "ne": {"$ne": ["$a", "$b"]},
        "cmp": {"$cmp": ["$a", "$b"]},
        "lt": {"$lt": ["a", "B"]},
        "in": {"$in": ["x", "$arr"]},
        "idx": {"$indexOfArray": ["$arr", "Y"]},
        "seteq": {"$setEquals": [["a", "B"], ["b", "A"]]},
        "union": {"$setUnion": [["a", "A"], ["b"]]},
        "inter": {"$setIntersection": [["a", "b"], ["B"]]},
        "diff": {"$setDifference": [["a", "b"], ["A"]]},
        "subset": {"$setIsSubset": [["A"], ["a"]]},
        "max": {"$max": ["a", "B"]},
        "sorted": {"$sortArray": {"input": ["b", "A", "c"], "sortBy": 1}},
        // `$strcasecmp` and `$indexOfBytes` ignore the collation in mongod too.
        "bytes": {"$indexOfBytes": ["ABC", "b"]},
    }};
    let out = run_ci(std::slice::from_ref(&stage), input.clone(), Vec::new());
    assert_eq!(
        out[0],
        doc! {"_id": 1, "eq": true, "ne": false, "cmp": 0, "lt": true, "in": true,
        "idx": 1, "seteq": true, "union": ["a", "b"], "inter": ["b"], "diff": ["b"],
        "subset": true, "max": "B", "sorted": ["A", "b", "c"], "bytes": -1}
    );
    // Without a collation, byte order.
    let simple = run_simple(&[stage], input).expect("runs");
    assert_eq!(
        simple[0],
        doc! {"_id": 1, "eq": false, "ne": true, "cmp": 1, "lt": false, "in": false,
        "idx": -1, "seteq": false, "union": ["A", "a", "b"], "inter": [], "diff": ["a", "b"],
        "subset": false, "max": "a", "sorted": ["A", "b", "c"], "bytes": -1}
    );
}

#[test]
fn collation_applies_to_group_keys_and_accumulators() {
    let input = docs(vec![
        bson::bson!({"_id": 1, "k": "Apple", "t": "x"}),
        bson::bson!({"_id": 2, "k": "apple", "t": "X"}),
        bson::bson!({"_id": 3, "k": "APPLE", "t": "y"}),
        bson::bson!({"_id": 4, "k": "pear", "t": "a"}),
    ]);
    let out = run_ci(
        &[
            doc! {"$group": {"_id": "$k", "n": {"$sum": 1}, "tags": {"$addToSet": "$t"},
            "max": {"$max": "$t"}, "top": {"$top": {"sortBy": {"t": -1}, "output": "$_id"}}}},
            doc! {"$sort": {"_id": 1}},
        ],
        input.clone(),
        Vec::new(),
    );
    // One group per case-insensitive key, named by the first value met.
    assert_eq!(
        out,
        vec![
            doc! {"_id": "Apple", "n": 3, "tags": ["x", "y"], "max": "y", "top": 3},
            doc! {"_id": "pear", "n": 1, "tags": ["a"], "max": "a", "top": 4},
        ]
    );
    let simple = run_simple(&[doc! {"$group": {"_id": "$k"}}], input).expect("runs");
    assert_eq!(simple.len(), 4);
}

#[test]
fn collation_applies_to_buckets_windows_and_joins() {
    let input = docs(vec![
        bson::bson!({"_id": 1, "s": "b"}),
        bson::bson!({"_id": 2, "s": "C"}),
        bson::bson!({"_id": 3, "s": "d"}),
    ]);
    // Under the collation "C" is in ["c", "e"); by bytes it is below "a", so in no
    // bucket (and there is no default).
    let buckets = run_ci(
        &[doc! {"$bucket": {"groupBy": "$s", "boundaries": ["a", "c", "e"]}}],
        input.clone(),
        Vec::new(),
    );
    assert_eq!(
        buckets,
        vec![doc! {"_id": "a", "count": 1}, doc! {"_id": "c", "count": 2}]
    );
    let e = run_simple(
        &[doc! {"$bucket": {"groupBy": "$s", "boundaries": ["a", "c", "e"]}}],
        input.clone(),
    )
    .expect_err("C is below every boundary by bytes");
    assert_eq!(e.code, 40066);

    let ranked = run_ci(
        &[
            doc! {"$setWindowFields": {"partitionBy": {"$toLower": "x"}, "sortBy": {"s": 1},
            "output": {"r": {"$rank": {}}}}},
        ],
        docs(vec![
            bson::bson!({"_id": 1, "s": "B"}),
            bson::bson!({"_id": 2, "s": "a"}),
            bson::bson!({"_id": 3, "s": "b"}),
        ]),
        Vec::new(),
    );
    let ranks: Vec<(i32, i32)> = ranked
        .iter()
        .map(|d| (d.get_i32("_id").unwrap_or(0), d.get_i32("r").unwrap_or(0)))
        .collect();
    assert_eq!(ranks, vec![(2, 1), (1, 2), (3, 2)]);

    let orders = vec![doc! {"_id": 1, "item": "ABC"}];
    let inventory = vec![
        doc! {"_id": 10, "sku": "abc"},
        doc! {"_id": 11, "sku": "Abc"},
        doc! {"_id": 12, "sku": "xyz"},
    ];
    let joined = run_ci(
        &[
            doc! {"$lookup": {"from": "inventory", "localField": "item", "foreignField": "sku", "as": "inv"}},
            doc! {"$lookup": {"from": "inventory", "let": {"i": "$item"},
            "pipeline": [{"$match": {"$expr": {"$eq": ["$sku", "$$i"]}}}, {"$match": {"sku": "ABC"}}],
            "as": "viaPipeline"}},
            doc! {"$project": {"inv": "$inv._id", "viaPipeline": "$viaPipeline._id"}},
        ],
        orders,
        vec![("inventory".to_owned(), inventory)],
    );
    assert_eq!(
        joined,
        vec![doc! {"_id": 1, "inv": [10, 11], "viaPipeline": [10, 11]}]
    );
}
