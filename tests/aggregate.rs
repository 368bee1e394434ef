//! The aggregation pipeline end to end: the Rust `mongodb` driver against `eddy serve`.
//! `countDocuments` (a `$match`/`$group` pipeline in the driver), `$group`, `$lookup`,
//! `$unwind`, `$out`, `$merge`, and change streams with `$match`/`$project`/`$addFields`
//! after `$changeStream`.

mod common;

use std::time::Duration;

use bson::{doc, Bson, Document};
use common::{collect, error_code, first_batch, TestServer};
use futures_util::StreamExt;

#[tokio::test]
async fn stages_over_a_collection() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let db = client.database("agg");
    let orders = db.collection::<Document>("orders");
    orders
        .insert_many(vec![
            doc! {"_id": 1, "item": "almonds", "qty": 2, "tags": ["a", "b"]},
            doc! {"_id": 2, "item": "pecans", "qty": 1, "tags": ["b"]},
            doc! {"_id": 3, "item": "almonds", "qty": 5, "tags": []},
        ])
        .await
        .expect("insert orders");
    let inventory = db.collection::<Document>("inventory");
    inventory
        .insert_many(vec![
            doc! {"_id": 10, "sku": "almonds", "instock": 120},
            doc! {"_id": 11, "sku": "pecans", "instock": 70},
        ])
        .await
        .expect("insert inventory");

    // countDocuments runs {$match}, {$group: {_id: 1, n: {$sum: 1}}}.
    assert_eq!(orders.count_documents(doc! {}).await.expect("count"), 3);
    assert_eq!(
        orders
            .count_documents(doc! {"item": "almonds"})
            .await
            .expect("count"),
        2
    );

    let grouped = collect(
        orders
            .aggregate(vec![
                doc! {"$group": {"_id": "$item", "total": {"$sum": "$qty"}, "n": {"$count": {}}}},
                doc! {"$sort": {"_id": 1}},
            ])
            .await
            .expect("group"),
    )
    .await;
    assert_eq!(
        grouped,
        vec![
            doc! {"_id": "almonds", "total": 7, "n": 2},
            doc! {"_id": "pecans", "total": 1, "n": 1},
        ]
    );

    let joined = collect(
        orders
            .aggregate(vec![
                doc! {"$match": {"_id": {"$lte": 2}}},
                doc! {"$lookup": {"from": "inventory", "localField": "item", "foreignField": "sku", "as": "stock"}},
                doc! {"$project": {"stock": "$stock.instock"}},
            ])
            .await
            .expect("lookup"),
    )
    .await;
    assert_eq!(
        joined,
        vec![
            doc! {"_id": 1, "stock": [120]},
            doc! {"_id": 2, "stock": [70]}
        ]
    );

    let unwound = collect(
        orders
            .aggregate(vec![
                doc! {"$unwind": "$tags"},
                doc! {"$project": {"tags": 1}},
            ])
            .await
            .expect("unwind"),
    )
    .await;
    assert_eq!(
        unwound,
        vec![
            doc! {"_id": 1, "tags": "a"},
            doc! {"_id": 1, "tags": "b"},
            doc! {"_id": 2, "tags": "b"},
        ]
    );

    // Errors carry mongod's codes.
    let e = orders
        .aggregate(vec![doc! {"$foo": 1}])
        .await
        .expect_err("unknown stage");
    assert_eq!(error_code(&e), Some(40324));
    let e = orders
        .aggregate(vec![doc! {"$search": {}}])
        .await
        .expect_err("unsupported stage");
    assert_eq!(error_code(&e), Some(115));
    let e = orders
        .aggregate(vec![doc! {"$geoNear": {}}])
        .await
        .expect_err("no near");
    assert_eq!(error_code(&e), Some(16605));

    // A cursor spanning batches.
    let many: Vec<Document> = (0..250).map(|i| doc! {"_id": 100 + i, "v": i}).collect();
    db.collection::<Document>("many")
        .insert_many(many)
        .await
        .expect("insert many");
    let all = collect(
        db.collection::<Document>("many")
            .aggregate(vec![
                doc! {"$match": {"v": {"$gte": 0}}},
                doc! {"$sort": {"v": -1}},
            ])
            .await
            .expect("sorted"),
    )
    .await;
    assert_eq!(all.len(), 250);
    assert_eq!(all[0].get_i32("v").ok(), Some(249));

    // $documents with aggregate: 1.
    let docs = collect(
        db.aggregate(vec![
            doc! {"$documents": [{"x": 1}, {"x": 2}]},
            doc! {"$match": {"x": 2}},
        ])
        .await
        .expect("$documents"),
    )
    .await;
    assert_eq!(docs, vec![doc! {"x": 2}]);
}

#[tokio::test]
async fn out_and_merge_write_collections() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let db = client.database("aggw");
    let src = db.collection::<Document>("src");
    src.insert_many(vec![
        doc! {"_id": 1, "k": "a", "v": 1},
        doc! {"_id": 2, "k": "b", "v": 2},
        doc! {"_id": 3, "k": "a", "v": 3},
    ])
    .await
    .expect("insert");
    let target = db.collection::<Document>("totals");
    target
        .insert_one(doc! {"_id": "old"})
        .await
        .expect("old target doc");

    let out = collect(
        src.aggregate(vec![
            doc! {"$group": {"_id": "$k", "sum": {"$sum": "$v"}}},
            doc! {"$out": "totals"},
        ])
        .await
        .expect("$out"),
    )
    .await;
    assert!(out.is_empty());
    let mut written = collect(target.find(doc! {}).await.expect("find")).await;
    written.sort_by(|a, b| {
        a.get_str("_id")
            .unwrap_or("")
            .cmp(b.get_str("_id").unwrap_or(""))
    });
    assert_eq!(
        written,
        vec![doc! {"_id": "a", "sum": 4}, doc! {"_id": "b", "sum": 2}]
    );
    let names = db.list_collection_names().await.expect("list");
    assert!(
        !names.iter().any(|n| n.starts_with("tmp.agg_out")),
        "{names:?}"
    );

    // $merge: merge into existing, insert new.
    collect(
        src.aggregate(vec![
            doc! {"$match": {"_id": {"$in": [1, 2]}}},
            doc! {"$project": {"_id": "$k", "last": "$v"}},
            doc! {"$merge": {"into": "totals"}},
        ])
        .await
        .expect("$merge"),
    )
    .await;
    let a = target
        .find_one(doc! {"_id": "a"})
        .await
        .expect("find")
        .expect("a");
    assert_eq!(a, doc! {"_id": "a", "sum": 4, "last": 1});
    let b = target
        .find_one(doc! {"_id": "b"})
        .await
        .expect("find")
        .expect("b");
    assert_eq!(b, doc! {"_id": "b", "sum": 2, "last": 2});
}

#[tokio::test]
async fn change_stream_pipelines() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let coll = client.database("aggcs").collection::<Document>("events");
    coll.insert_one(doc! {"_id": 0}).await.expect("create");

    let mut stream = coll
        .watch()
        .pipeline(vec![
            doc! {"$match": {"operationType": "insert"}},
            doc! {"$addFields": {"doubled": {"$multiply": ["$fullDocument.n", 2]}}},
            doc! {"$project": {"operationType": 1, "doubled": 1}},
        ])
        .await
        .expect("watch")
        .with_type::<Document>();
    coll.insert_one(doc! {"_id": 1, "n": 21})
        .await
        .expect("insert");
    coll.delete_one(doc! {"_id": 1}).await.expect("delete");
    coll.insert_one(doc! {"_id": 2, "n": 5})
        .await
        .expect("insert");

    let mut seen = Vec::new();
    while seen.len() < 2 {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("an event in time")
            .expect("stream open")
            .expect("event");
        seen.push(ev);
    }
    for (ev, want) in seen.iter().zip([42, 10]) {
        assert_eq!(ev.get_str("operationType").ok(), Some("insert"));
        assert_eq!(ev.get("doubled"), Some(&Bson::Int32(want)));
        assert!(ev.get("fullDocument").is_none(), "{ev}");
        assert!(ev.contains_key("_id"));
    }

    let e = coll
        .watch()
        .pipeline(vec![doc! {"$group": {"_id": null}}])
        .await
        .expect_err("$group refused");
    assert_eq!(error_code(&e), Some(20));
}

#[tokio::test]
async fn pipeline_updates() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let coll = client.database("aggu").collection::<Document>("docs");
    coll.insert_one(doc! {"_id": 1, "a": 2})
        .await
        .expect("insert");
    let res = coll
        .update_one(
            doc! {"_id": 1},
            vec![
                doc! {"$set": {"b": {"$add": ["$a", 1]}}},
                doc! {"$unset": "a"},
            ],
        )
        .await
        .expect("pipeline update");
    assert_eq!(res.modified_count, 1);
    let d = coll
        .find_one(doc! {"_id": 1})
        .await
        .expect("find")
        .expect("doc");
    assert_eq!(d, doc! {"_id": 1, "b": 3});
    // An unknown stage fails the whole command (mongod's lite parse), even when nothing
    // matches; a known stage that updates cannot use is a write error of its statement.
    let err = client
        .database("aggu")
        .run_command(doc! {"update": coll.name(), "updates": [
        {"q": {"_id": 99}, "u": [{"$invalidOperator": true}]}]})
        .await
        .expect_err("unknown stage");
    assert_eq!(error_code(&err), Some(40324), "{err}");
}

#[tokio::test]
async fn list_local_sessions() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let admin = client.database("admin");
    let mut session = client.start_session().await.expect("start a session");
    let session_id = session.id().get("id").cloned().expect("lsid.id");
    client
        .database("s")
        .collection::<Document>("c")
        .insert_one(doc! {"x": 1})
        .session(&mut session)
        .await
        .expect("insert in the session");

    let listed = |pipeline: Vec<Document>| {
        let admin = admin.clone();
        async move { collect(admin.aggregate(pipeline).await.expect("aggregate")).await }
    };
    let ids = |docs: Vec<Document>| -> Vec<Bson> {
        docs.iter()
            .map(|d| {
                d.get_document("_id")
                    .expect("_id")
                    .get("id")
                    .cloned()
                    .expect("id")
            })
            .collect()
    };
    let all = listed(vec![doc! {"$listLocalSessions": {"allUsers": true}}]).await;
    assert!(ids(all.clone()).contains(&session_id), "{all:?}");
    let record = all
        .iter()
        .find(|d| d.get_document("_id").ok().and_then(|i| i.get("id")) == Some(&session_id))
        .expect("the session's record");
    assert!(record.get_datetime("lastUse").is_ok(), "{record:?}");
    let uid = record
        .get_document("_id")
        .expect("_id")
        .get_binary_generic("uid");
    assert_eq!(uid.expect("uid").len(), 32, "a SHA-256 user digest");
    // {} lists the current (unauthenticated) user's sessions: all of them.
    let mine = listed(vec![doc! {"$listLocalSessions": {}}]).await;
    assert!(ids(mine).contains(&session_id));
    let others = listed(vec![
        doc! {"$listLocalSessions": {"users": [{"user": "app", "db": "test"}]}},
    ])
    .await;
    assert!(others.is_empty(), "{others:?}");

    // Ended sessions leave the cache. (The driver still holds `session`, so it does not
    // hand that id out again for the commands below.)
    admin
        .run_command(doc! {"endSessions": [{"id": session_id.clone()}]})
        .await
        .expect("endSessions");
    let after = listed(vec![doc! {"$listLocalSessions": {"allUsers": true}}]).await;
    assert!(!ids(after).contains(&session_id));
    drop(session);

    // Only as the first stage of a collectionless aggregate.
    let coll = client.database("s").collection::<Document>("c");
    let e = coll
        .aggregate(vec![doc! {"$listLocalSessions": {}}])
        .await
        .expect_err("on a collection");
    assert_eq!(error_code(&e), Some(73));
    let e = admin
        .aggregate(vec![
            doc! {"$documents": []},
            doc! {"$listLocalSessions": {}},
        ])
        .await
        .expect_err("not first");
    assert_eq!(error_code(&e), Some(40602));
    let e = admin
        .aggregate(vec![
            doc! {"$listLocalSessions": {"allUsers": true, "users": [{"user": "a", "db": "b"}]}},
        ])
        .await
        .expect_err("both");
    assert_eq!(error_code(&e), Some(12));
}

#[tokio::test]
async fn coll_stats_reports_counts_and_sizes() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let db = client.database("app");
    let coll = db.collection::<Document>("stats");
    coll.insert_many((0..50).map(|i| doc! {"_id": i, "a": i, "pad": "x".repeat(100)}))
        .await
        .expect("insert");
    coll.create_index(mongodb::IndexModel::builder().keys(doc! {"a": 1}).build())
        .await
        .expect("index");
    let stats = |spec: Document| {
        let db = db.clone();
        async move {
            let reply = db
                .run_command(
                    doc! {"aggregate": "stats", "pipeline": [{"$collStats": spec}], "cursor": {}},
                )
                .await;
            reply.map(|r| first_batch(&r))
        }
    };
    let out = stats(doc! {"storageStats": {}, "count": {}})
        .await
        .expect("$collStats");
    assert_eq!(out.len(), 1);
    let doc = &out[0];
    assert_eq!(doc.get_str("ns").ok(), Some("app.stats"));
    assert!(doc
        .get_str("host")
        .is_ok_and(|h| h.ends_with(&format!(":{}", server.port()))));
    assert!(doc.get_datetime("localTime").is_ok());
    assert_eq!(doc.get_i64("count").ok(), Some(50));
    let storage = doc.get_document("storageStats").expect("storageStats");
    assert_eq!(storage.get_i64("count").ok(), Some(50));
    assert_eq!(storage.get_i32("nindexes").ok(), Some(2));
    let size = storage.get_i64("size").expect("size");
    assert!(size > 50 * 100, "{storage}");
    let sizes = storage.get_document("indexSizes").expect("indexSizes");
    assert_eq!(sizes.keys().collect::<Vec<_>>(), vec!["_id_", "a_1"]);
    let index_total: i64 = sizes.values().map(|v| v.as_i64().expect("int64")).sum();
    assert!(index_total > 0);
    assert_eq!(storage.get_i64("totalIndexSize").ok(), Some(index_total));
    assert_eq!(storage.get_i64("totalSize").ok(), Some(size + index_total));
    // `scale` divides the sizes (not the average document size).
    let scaled = stats(doc! {"storageStats": {"scale": 1024}})
        .await
        .expect("scaled");
    let scaled = scaled[0]
        .get_document("storageStats")
        .expect("storageStats");
    assert_eq!(scaled.get_i64("size").ok(), Some(size / 1024));
    assert_eq!(
        scaled.get_i64("avgObjSize").ok(),
        storage.get_i64("avgObjSize").ok()
    );
    assert_eq!(scaled.get_i32("scaleFactor").ok(), Some(1024));
    // The collStats command gives the same storage fields.
    let command = db
        .run_command(doc! {"collStats": "stats"})
        .await
        .expect("collStats");
    assert_eq!(command.get_document("indexSizes").ok(), Some(sizes));
    // Later stages see the document; mongod's errors otherwise.
    let projected = db
        .run_command(
            doc! {"aggregate": "stats", "pipeline": [{"$collStats": {"count": {}}},
            {"$project": {"_id": 0, "count": 1}}], "cursor": {}},
        )
        .await
        .expect("$collStats then $project");
    assert_eq!(first_batch(&projected), vec![doc! {"count": 50_i64}]);
    let code = |r: Result<Vec<Document>, mongodb::error::Error>| error_code(&r.expect_err("fails"));
    let missing = db
        .run_command(doc! {"aggregate": "nothing", "pipeline": [{"$collStats": {"count": {}}}], "cursor": {}})
        .await
        .map(|r| first_batch(&r));
    assert_eq!(code(missing), Some(26));
    db.run_command(doc! {"create": "stats_view", "viewOn": "stats", "pipeline": []})
        .await
        .expect("view");
    let on_view = db
        .run_command(
            doc! {"aggregate": "stats_view", "pipeline": [{"$collStats": {}}], "cursor": {}},
        )
        .await
        .map(|r| first_batch(&r));
    assert_eq!(code(on_view), Some(166));
    assert_eq!(code(stats(doc! {"latencyStats": {}}).await), Some(115));
}

#[tokio::test]
async fn index_stats_count_the_operations_each_index_served() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let db = client.database("app");
    let coll = db.collection::<Document>("ixs");
    coll.insert_many((0..10).map(|i| doc! {"_id": i, "a": i}))
        .await
        .expect("insert");
    coll.create_index(mongodb::IndexModel::builder().keys(doc! {"a": 1}).build())
        .await
        .expect("index");
    let stats = || {
        let db = db.clone();
        async move {
            let reply = db
                .run_command(
                    doc! {"aggregate": "ixs", "pipeline": [{"$indexStats": {}}], "cursor": {}},
                )
                .await
                .expect("$indexStats");
            first_batch(&reply)
                .into_iter()
                .map(|d| {
                    let accesses = d.get_document("accesses").expect("accesses");
                    assert!(accesses.get_datetime("since").is_ok());
                    assert!(d.get_str("host").is_ok());
                    (
                        d.get_str("name").expect("name").to_owned(),
                        accesses.get_i64("ops").expect("ops"),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        stats().await,
        vec![("_id_".to_owned(), 0), ("a_1".to_owned(), 0)]
    );
    // A find and an update through `a_1`, a point lookup through `_id_`, a collection
    // scan through neither.
    coll.find_one(doc! {"a": 3}).await.expect("find");
    coll.update_one(doc! {"a": {"$gt": 7}}, doc! {"$set": {"b": 1}})
        .await
        .expect("update");
    coll.find_one(doc! {"_id": 4}).await.expect("find by _id");
    coll.find_one(doc! {"b": 1}).await.expect("scan");
    assert_eq!(
        stats().await,
        vec![("_id_".to_owned(), 1), ("a_1".to_owned(), 2)]
    );
    // Only `{}`, as mongod.
    let err = db
        .run_command(
            doc! {"aggregate": "ixs", "pipeline": [{"$indexStats": {"x": 1}}], "cursor": {}},
        )
        .await
        .expect_err("not empty");
    assert_eq!(error_code(&err), Some(28803));
}
