//! Index use through the Rust `mongodb` driver: explain shows the plan mongod 7.0 would
//! show (IXSCAN with bounds for ranges, index order for sorts with an early stop at
//! the limit, multikey indexes falling back to an in-memory sort, partial indexes used
//! only when the query implies their filter), results are the same with and without
//! the indexes, and `min`/`max` scan the hinted index or fail with mongod's codes.

mod common;

use bson::{doc, Bson, Document};
use common::{collect, error_code, first_batch, TestServer};
use mongodb::options::Hint;
use mongodb::{Collection, Database};

/// The first stage named `name` in a plan tree (through `inputStage`).
fn stage<'a>(plan: &'a Document, name: &str) -> Option<&'a Document> {
    if plan.get_str("stage").ok() == Some(name) {
        return Some(plan);
    }
    plan.get_document("inputStage")
        .ok()
        .and_then(|d| stage(d, name))
}

async fn explain(db: &Database, find: Document) -> Document {
    db.run_command(doc! {"explain": find, "verbosity": "executionStats"})
        .await
        .expect("explain")
}

fn winning(explain: &Document) -> &Document {
    explain
        .get_document("queryPlanner")
        .and_then(|q| q.get_document("winningPlan"))
        .expect("winningPlan")
}

fn exec_stat(explain: &Document, field: &str) -> i64 {
    let stats = explain
        .get_document("executionStats")
        .expect("executionStats");
    match stats.get(field) {
        Some(Bson::Int32(n)) => i64::from(*n),
        Some(Bson::Int64(n)) => *n,
        other => panic!("{field}: {other:?}"),
    }
}

fn strings(d: &Document, field: &str) -> Vec<String> {
    d.get_array(field)
        .expect("array")
        .iter()
        .map(|v| v.as_str().expect("string").to_owned())
        .collect()
}

async fn index(coll: &Collection<Document>, keys: Document) {
    coll.create_index(mongodb::IndexModel::builder().keys(keys).build())
        .await
        .expect("create index");
}

async fn find_all(
    coll: &Collection<Document>,
    filter: Document,
    sort: Option<Document>,
    limit: Option<i64>,
) -> Vec<Document> {
    let mut f = coll.find(filter);
    if let Some(s) = sort {
        f = f.sort(s);
    }
    if let Some(l) = limit {
        f = f.limit(l);
    }
    collect(f.await.expect("find")).await
}

#[tokio::test]
async fn ranges_and_sorts_use_indexes_and_return_the_same_results() {
    let server = TestServer::start();
    let client = server.client().await;
    let db = client.database("idx");
    let coll = db.collection::<Document>("c");
    // 100 documents: numbers 0..50 twice over, some strings, nulls and missing fields.
    let docs: Vec<Document> = (0..100)
        .map(|i| {
            let mut d = doc! {"_id": i, "a": i % 50, "b": (i * 7) % 13};
            if i % 10 == 3 {
                d.insert("a", format!("s{i}"));
            }
            if i % 17 == 0 {
                d.insert("a", Bson::Null);
            }
            if i % 19 == 0 {
                d.remove("a");
            }
            d
        })
        .collect();
    coll.insert_many(docs).await.expect("insert");

    let queries: Vec<(Document, Option<Document>, Option<i64>)> = vec![
        (doc! {"a": {"$gt": 3, "$lt": 7}}, None, None),
        (doc! {"a": {"$gte": 40}}, Some(doc! {"a": -1}), None),
        (doc! {"a": {"$lt": "s5"}}, Some(doc! {"a": 1}), None),
        (
            doc! {"a": {"$in": [1, 2, "s13", null]}},
            Some(doc! {"_id": 1}),
            None,
        ),
        (doc! {}, Some(doc! {"a": 1}), Some(7)),
        (doc! {}, Some(doc! {"a": -1, "b": 1}), Some(5)),
        (doc! {"a": 5}, Some(doc! {"b": -1}), None),
        (
            doc! {"a": {"$in": [5, 6]}, "b": {"$gte": 3}},
            Some(doc! {"a": 1, "b": 1}),
            None,
        ),
        (doc! {"b": {"$lte": 2}}, Some(doc! {"a": 1}), Some(4)),
    ];
    let mut before = Vec::new();
    for (f, s, l) in &queries {
        before.push(find_all(&coll, f.clone(), s.clone(), *l).await);
    }

    index(&coll, doc! {"a": 1}).await;
    index(&coll, doc! {"a": -1, "b": 1}).await;
    // Without a sort the order is the plan's (index order now), as in mongod.
    let by_id = |mut v: Vec<Document>| {
        v.sort_by_key(|d| d.get_i32("_id").expect("id"));
        v
    };
    for ((f, s, l), want) in queries.iter().zip(&before) {
        let got = find_all(&coll, f.clone(), s.clone(), *l).await;
        if s.is_some() {
            assert_eq!(&got, want, "filter {f:?} sort {s:?} limit {l:?}");
        } else {
            assert_eq!(by_id(got), by_id(want.clone()), "filter {f:?}");
        }
        // And through aggregate's leading $match/$sort/$limit.
        let mut pipeline = vec![doc! {"$match": f.clone()}];
        if let Some(s) = s {
            pipeline.push(doc! {"$sort": s.clone()});
        }
        if let Some(l) = l {
            pipeline.push(doc! {"$limit": *l});
        }
        let agg = collect(coll.aggregate(pipeline).await.expect("aggregate")).await;
        if s.is_some() {
            assert_eq!(&agg, want, "aggregate {f:?} {s:?}");
        } else {
            assert_eq!(agg.len(), want.len(), "aggregate {f:?}");
        }
    }

    // A range: FETCH over IXSCAN with mongod's bounds, reading only what it returns.
    let e = explain(
        &db,
        doc! {"find": "c", "filter": {"a": {"$gt": 3, "$lt": 7}}},
    )
    .await;
    let ixscan = stage(winning(&e), "IXSCAN").expect("IXSCAN");
    assert_eq!(ixscan.get_str("indexName").expect("name"), "a_1");
    assert_eq!(
        ixscan.get_document("keyPattern").expect("kp"),
        &doc! {"a": 1}
    );
    assert!(!ixscan.get_bool("isMultiKey").expect("isMultiKey"));
    assert_eq!(ixscan.get_str("direction").expect("direction"), "forward");
    let bounds = ixscan.get_document("indexBounds").expect("bounds");
    assert_eq!(strings(bounds, "a"), vec!["(3, 7)"]);
    assert_eq!(winning(&e).get_str("stage").expect("stage"), "FETCH");
    assert_eq!(exec_stat(&e, "nReturned"), 6);
    assert_eq!(exec_stat(&e, "totalKeysExamined"), 6);
    assert_eq!(exec_stat(&e, "totalDocsExamined"), 6);

    // A sort the index serves, backward, stopping at the limit.
    let e = explain(
        &db,
        doc! {"find": "c", "filter": {}, "sort": {"a": -1}, "limit": 3},
    )
    .await;
    let plan = winning(&e);
    assert_eq!(plan.get_str("stage").expect("stage"), "LIMIT");
    assert!(stage(plan, "SORT").is_none(), "{plan:?}");
    let ixscan = stage(plan, "IXSCAN").expect("IXSCAN");
    assert_eq!(ixscan.get_str("direction").expect("direction"), "backward");
    assert_eq!(ixscan.get_str("indexName").expect("name"), "a_1");
    assert_eq!(
        strings(ixscan.get_document("indexBounds").expect("bounds"), "a"),
        vec!["[MaxKey, MinKey]"]
    );
    assert_eq!(exec_stat(&e, "nReturned"), 3);
    assert!(exec_stat(&e, "totalKeysExamined") <= 4, "{e:?}");

    // A compound index after an equality prefix, in its own direction.
    let e = explain(
        &db,
        doc! {"find": "c", "filter": {"a": 5}, "sort": {"b": 1}},
    )
    .await;
    let ixscan = stage(winning(&e), "IXSCAN").expect("IXSCAN");
    assert_eq!(ixscan.get_str("indexName").expect("name"), "a_-1_b_1");
    let bounds = ixscan.get_document("indexBounds").expect("bounds");
    assert_eq!(strings(bounds, "a"), vec!["[5, 5]"]);
    assert_eq!(strings(bounds, "b"), vec!["[MinKey, MaxKey]"]);
    assert!(stage(winning(&e), "SORT").is_none());

    // A sort no index serves is sorted in memory.
    let e = explain(
        &db,
        doc! {"find": "c", "filter": {"b": 1}, "sort": {"b": 1}},
    )
    .await;
    let sort = stage(winning(&e), "SORT").expect("SORT");
    assert_eq!(
        sort.get_document("sortPattern").expect("pattern"),
        &doc! {"b": 1}
    );
    assert!(stage(winning(&e), "COLLSCAN").is_some());

    // IDHACK and $natural.
    let e = explain(&db, doc! {"find": "c", "filter": {"_id": 7}}).await;
    assert_eq!(winning(&e).get_str("stage").expect("stage"), "IDHACK");
    let e = explain(
        &db,
        doc! {"find": "c", "filter": {"a": 5}, "hint": {"$natural": -1}},
    )
    .await;
    let scan = stage(winning(&e), "COLLSCAN").expect("COLLSCAN");
    assert_eq!(scan.get_str("direction").expect("direction"), "backward");
    assert_eq!(exec_stat(&e, "totalDocsExamined"), 100);

    // Writes go through the same plans.
    let res = coll
        .update_many(
            doc! {"a": {"$gte": 45, "$lt": 48}},
            doc! {"$set": {"touched": true}},
        )
        .await
        .expect("update");
    // 95 lost its `a` (95 is a multiple of 19).
    assert_eq!(res.matched_count, 5);
    let touched = find_all(&coll, doc! {"touched": true}, Some(doc! {"_id": 1}), None).await;
    let ids: Vec<i32> = touched
        .iter()
        .map(|d| d.get_i32("_id").expect("id"))
        .collect();
    assert_eq!(ids, vec![45, 46, 47, 96, 97]);
    let deleted = coll
        .delete_many(doc! {"a": {"$in": [45, 46]}})
        .await
        .expect("delete");
    assert_eq!(deleted.deleted_count, 3);
    let first = coll
        .find_one_and_update(doc! {"a": {"$gt": 40}}, doc! {"$set": {"first": 1}})
        .sort(doc! {"a": -1})
        .await
        .expect("findAndModify")
        .expect("a document");
    assert_eq!(first.get_i32("_id").expect("id"), 49);
}

#[tokio::test]
async fn multikey_and_partial_indexes_are_used_only_when_safe() {
    let server = TestServer::start();
    let client = server.client().await;
    let db = client.database("idx");
    let coll = db.collection::<Document>("m");
    index(&coll, doc! {"tags": 1}).await;
    coll.insert_many(vec![
        doc! {"_id": 1, "tags": [0, 10]},
        doc! {"_id": 2, "tags": 3},
        doc! {"_id": 3, "tags": [2, 4]},
        doc! {"_id": 4, "tags": []},
    ])
    .await
    .expect("insert");
    // An array satisfying each predicate with a different element still matches.
    let got = find_all(
        &coll,
        doc! {"tags": {"$gt": 1, "$lt": 5}},
        Some(doc! {"_id": 1}),
        None,
    )
    .await;
    let ids: Vec<i32> = got.iter().map(|d| d.get_i32("_id").expect("id")).collect();
    assert_eq!(ids, vec![1, 2, 3]);
    let e = explain(
        &db,
        doc! {"find": "m", "filter": {"tags": {"$gt": 1, "$lt": 5}}},
    )
    .await;
    let ixscan = stage(winning(&e), "IXSCAN").expect("IXSCAN");
    assert!(ixscan.get_bool("isMultiKey").expect("isMultiKey"));
    assert_eq!(
        ixscan.get_document("multiKeyPaths").expect("paths"),
        &doc! {"tags": ["tags"]}
    );
    assert_eq!(
        strings(ixscan.get_document("indexBounds").expect("bounds"), "tags"),
        vec!["(1, inf.0]"]
    );
    // Sorting by a multikey field uses each array's smallest element: not index order.
    let sorted = find_all(&coll, doc! {}, Some(doc! {"tags": 1}), None).await;
    let ids: Vec<i32> = sorted
        .iter()
        .map(|d| d.get_i32("_id").expect("id"))
        .collect();
    assert_eq!(ids, vec![4, 1, 3, 2]);
    let e = explain(&db, doc! {"find": "m", "filter": {}, "sort": {"tags": 1}}).await;
    assert!(stage(winning(&e), "SORT").is_some(), "{e:?}");

    // A partial index serves only queries that imply its filter.
    let p = db.collection::<Document>("p");
    p.create_index(
        mongodb::IndexModel::builder()
            .keys(doc! {"x": 1})
            .options(
                mongodb::options::IndexOptions::builder()
                    .partial_filter_expression(doc! {"a": {"$lte": 1.5}})
                    .build(),
            )
            .build(),
    )
    .await
    .expect("partial index");
    p.insert_many(vec![doc! {"x": 5, "a": 2}, doc! {"x": 6, "a": 1}])
        .await
        .expect("insert");
    let e = explain(
        &db,
        doc! {"find": "p", "filter": {"x": 6, "a": {"$lte": 1}}},
    )
    .await;
    let ixscan = stage(winning(&e), "IXSCAN").expect("IXSCAN");
    assert!(ixscan.get_bool("isPartial").expect("isPartial"));
    let e = explain(&db, doc! {"find": "p", "filter": {"x": 5}}).await;
    assert!(stage(winning(&e), "COLLSCAN").is_some(), "{e:?}");
    let got = find_all(&p, doc! {"x": {"$gte": 5}}, None, None).await;
    assert_eq!(got.len(), 2);

    // A query on a view is explained as the aggregation it runs, as mongod does: the
    // read of the view's source with the query's filter, through its index.
    db.run_command(doc! {"create": "v", "viewOn": "p", "pipeline": []})
        .await
        .expect("create view");
    let e = db
        .run_command(doc! {"explain": {"find": "v", "filter": {"x": 6, "a": {"$lte": 1}}}})
        .await
        .expect("explain of a view");
    let planner = e
        .get_document("queryPlanner")
        .expect("a pipeline the read takes whole is explained as a query");
    assert_eq!(planner.get_str("namespace").expect("namespace"), "idx.p");
    let ixscan = stage(planner.get_document("winningPlan").expect("plan"), "IXSCAN");
    assert!(ixscan.is_some(), "{e:?}");
}

#[tokio::test]
async fn min_and_max_scan_the_hinted_index() {
    let server = TestServer::start();
    let client = server.client().await;
    let db = client.database("idx");
    let coll = db.collection::<Document>("mm");
    index(&coll, doc! {"a": 1, "b": -1}).await;
    index(&coll, doc! {"j": 1}).await;
    coll.insert_many((0..10).map(|j| doc! {"_id": j, "j": j, "a": j / 3, "b": j % 3}))
        .await
        .expect("insert");
    let js = |docs: Vec<Document>| -> Vec<i32> {
        docs.iter().map(|d| d.get_i32("j").expect("j")).collect()
    };
    let found = coll
        .find(doc! {})
        .hint(Hint::Keys(doc! {"j": 1}))
        .min(doc! {"j": 3})
        .max(doc! {"j": 7})
        .await
        .expect("find");
    assert_eq!(js(collect(found).await), vec![3, 4, 5, 6]);
    let found = coll
        .find(doc! {"j": {"$ne": 1}})
        .hint(Hint::Name("j_1".into()))
        .max(doc! {"j": 3})
        .sort(doc! {"j": -1})
        .await
        .expect("find");
    assert_eq!(js(collect(found).await), vec![2, 0]);
    // In the compound index's own order: b descending within a.
    let ab: Vec<(i32, i32)> = collect(
        coll.find(doc! {})
            .hint(Hint::Keys(doc! {"a": 1, "b": -1}))
            .min(doc! {"a": 1, "b": 1})
            .max(doc! {"a": 2, "b": 0})
            .await
            .expect("find"),
    )
    .await
    .iter()
    .map(|d| (d.get_i32("a").expect("a"), d.get_i32("b").expect("b")))
    .collect();
    assert_eq!(ab, vec![(1, 1), (1, 0), (2, 2), (2, 1)]);

    let fails = |cmd: Document| {
        let db = db.clone();
        async move {
            let err = db.run_command(cmd).await.expect_err("refused");
            error_code(&err)
        }
    };
    assert_eq!(
        fails(doc! {"find": "mm", "min": {"j": 3}}).await,
        Some(51173),
        "min needs a hint"
    );
    assert_eq!(
        fails(doc! {"find": "mm", "min": {"b": 1}, "hint": {"a": 1, "b": -1}}).await,
        Some(51174)
    );
    assert_eq!(
        fails(doc! {"find": "mm", "min": {"j": 6}, "max": {"j": 3}, "hint": "j_1"}).await,
        Some(51175)
    );
    assert_eq!(
        fails(doc! {"find": "mm", "min": {"j": 2}, "max": {"j": 2}, "hint": "j_1"}).await,
        Some(51175)
    );
    assert_eq!(
        fails(doc! {"find": "mm", "min": {"a": 1, "b": 1}, "max": {"a": 1}, "hint": "j_1"}).await,
        Some(51176)
    );
    assert_eq!(
        fails(doc! {"find": "mm", "min": {"j": 1}, "hint": {"$natural": 1}}).await,
        Some(291)
    );
    assert_eq!(
        fails(doc! {"find": "mm", "filter": {}, "hint": "nope"}).await,
        Some(2)
    );
    // The scan shows in explain.
    let e = explain(&db, doc! {"find": "mm", "min": {"j": 3}, "hint": "j_1"}).await;
    let ixscan = stage(winning(&e), "IXSCAN").expect("IXSCAN");
    assert_eq!(ixscan.get_str("indexName").expect("name"), "j_1");
    assert_eq!(exec_stat(&e, "nReturned"), 7);
}

#[tokio::test]
async fn writes_read_through_their_hint() {
    let server = TestServer::start();
    let client = server.client().await;
    let db = client.database("idx");
    let coll = db.collection::<Document>("w");
    coll.create_index(
        mongodb::IndexModel::builder()
            .keys(doc! {"s": 1})
            .options(
                mongodb::options::IndexOptions::builder()
                    .sparse(true)
                    .build(),
            )
            .build(),
    )
    .await
    .expect("sparse index");
    coll.insert_many(vec![
        doc! {"_id": 1, "s": 1},
        doc! {"_id": 2},
        doc! {"_id": 3, "s": 3},
    ])
    .await
    .expect("insert");
    // As in mongod, a write hinted to a sparse index sees only the documents in it.
    let res = coll
        .update_many(doc! {}, doc! {"$set": {"t": 1}})
        .hint(Hint::Name("s_1".into()))
        .await
        .expect("update");
    assert_eq!(res.matched_count, 2);
    // So does an aggregation's input.
    let through = collect(
        coll.aggregate(vec![doc! {"$sort": {"_id": -1}}])
            .hint(Hint::Name("s_1".into()))
            .await
            .expect("aggregate"),
    )
    .await;
    let ids: Vec<i32> = through
        .iter()
        .map(|d| d.get_i32("_id").expect("id"))
        .collect();
    assert_eq!(ids, vec![3, 1]);
    let err = coll
        .update_one(doc! {}, doc! {"$set": {"t": 2}})
        .hint(Hint::Name("nope".into()))
        .await
        .expect_err("bad hint");
    assert_eq!(error_code(&err), Some(2));
    let res = coll
        .delete_many(doc! {"_id": {"$gte": 2}})
        .hint(Hint::Keys(doc! {"s": 1}))
        .await
        .expect("delete");
    assert_eq!(res.deleted_count, 1);
    let left: Vec<Document> = find_all(&coll, doc! {}, Some(doc! {"_id": 1}), None).await;
    assert_eq!(left, vec![doc! {"_id": 1, "s": 1, "t": 1}, doc! {"_id": 2}]);
    let err = db
        .run_command(doc! {"delete": "w", "deletes": [{"q": {}, "limit": 0, "hint": 5}]})
        .await
        .expect_err("hint of a wrong type");
    assert_eq!(error_code(&err), Some(9));
}

#[tokio::test]
async fn return_key_and_show_record_id() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let db = client.database("rk");
    let coll = db.collection::<Document>("c");
    coll.insert_many(vec![
        doc! {"_id": 1, "a": 5, "b": "x"},
        doc! {"_id": 2, "a": [7, 3], "b": "y"},
        doc! {"_id": 3, "b": "z"},
    ])
    .await
    .expect("insert");
    index(&coll, doc! {"a": 1, "b": -1}).await;
    let batch = |cmd: Document| {
        let db = db.clone();
        async move { first_batch(&db.run_command(cmd).await.expect("find")) }
    };

    // Through the compound index: the key of the entry each document was found
    // through (for the array, the first entry inside the range: 7, not 3).
    let keys = batch(
        doc! {"find": "c", "filter": {"a": {"$gte": 4}}, "sort": {"a": 1},
        "hint": "a_1_b_-1", "returnKey": true},
    )
    .await;
    assert_eq!(
        keys,
        // Sorted by `a` ascending, the array sorts by its smallest element (3).
        vec![doc! {"a": 7, "b": "y"}, doc! {"a": 5, "b": "x"}],
        "{keys:?}"
    );
    // A missing field is keyed as null.
    let keys = batch(
        doc! {"find": "c", "filter": {"a": null}, "hint": "a_1_b_-1",
        "returnKey": true},
    )
    .await;
    assert_eq!(keys, vec![doc! {"a": null, "b": "z"}]);
    // The `_id` index: `{_id}`; a collection scan: empty documents.
    let keys = batch(doc! {"find": "c", "sort": {"_id": 1}, "returnKey": true}).await;
    assert_eq!(
        keys,
        vec![doc! {"_id": 1}, doc! {"_id": 2}, doc! {"_id": 3}]
    );
    let keys = batch(doc! {"find": "c", "filter": {"b": "y"}, "returnKey": true}).await;
    assert_eq!(keys, vec![doc! {}]);

    // `$recordId`: one per document, the same each time, after any projection.
    let shown = batch(
        doc! {"find": "c", "sort": {"_id": 1}, "projection": {"b": 1},
        "showRecordId": true},
    )
    .await;
    assert_eq!(shown.len(), 3);
    let ids: Vec<_> = shown
        .iter()
        .map(|d| {
            d.get_binary_generic("$recordId")
                .expect("$recordId")
                .clone()
        })
        .collect();
    assert!(ids[0] != ids[1] && ids[1] != ids[2], "{ids:?}");
    assert_eq!(shown[0].get_str("b").ok(), Some("x"));
    let again = batch(doc! {"find": "c", "filter": {"_id": 2}, "showRecordId": true}).await;
    assert_eq!(
        again[0].get("$recordId"),
        Some(&Bson::Binary(bson::Binary {
            subtype: bson::spec::BinarySubtype::Generic,
            bytes: ids[1].clone(),
        }))
    );
    // With `returnKey`, the key alone (as mongod).
    let key = batch(
        doc! {"find": "c", "filter": {"_id": 2}, "showRecordId": true,
        "returnKey": true},
    )
    .await;
    assert_eq!(key, vec![doc! {"_id": 2}]);
    // `false` is accepted; a view refuses both, as mongod (168).
    assert_eq!(
        batch(doc! {"find": "c", "filter": {"_id": 3}, "returnKey": false, "showRecordId": false})
            .await,
        vec![doc! {"_id": 3, "b": "z"}]
    );
    db.run_command(doc! {"create": "v", "viewOn": "c", "pipeline": []})
        .await
        .expect("view");
    for option in ["returnKey", "showRecordId"] {
        let err = db
            .run_command(doc! {"find": "v", option: true})
            .await
            .expect_err("not on a view");
        assert_eq!(error_code(&err), Some(168), "{option}: {err}");
    }
}
