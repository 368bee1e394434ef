//! Capped collections and tailable cursors through the Rust `mongodb` driver: create
//! options as mongod stores them, rollover by size and by document count, natural order
//! in both directions, tailable + awaitData cursors receiving later inserts, and
//! CappedPositionLost when truncation passes a cursor.

mod common;

use std::time::Duration;

use bson::{doc, Bson, Document};
use common::{collect, error_code, TestServer};
use mongodb::options::{CursorType, FindOptions};

fn xs(docs: &[Document]) -> Vec<i32> {
    docs.iter()
        .map(|d| d.get_i32("x").expect("integer x"))
        .collect()
}

#[tokio::test]
async fn capped_collections_keep_the_newest_documents_in_insertion_order() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let db = client.database("capped");

    // size is rounded up to a multiple of 256; listCollections shows the options.
    db.run_command(doc! {"create": "bymax", "capped": true, "size": 1000, "max": 3})
        .await
        .expect("create");
    let info = db
        .run_command(doc! {"listCollections": 1, "filter": {"name": "bymax"}})
        .await
        .expect("listCollections");
    let options = info
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .expect("batch")[0]
        .as_document()
        .expect("doc")
        .get_document("options")
        .expect("options")
        .clone();
    assert_eq!(options, doc! {"capped": true, "size": 1024, "max": 3});

    db.collection::<Document>("plain")
        .insert_one(doc! {})
        .await
        .expect("insert");
    let coll = db.collection::<Document>("bymax");
    // Inserted in an order unlike _id order: natural order is insertion order.
    for (id, x) in [(9, 1), (2, 2), (7, 3), (1, 4), (5, 5)] {
        coll.insert_one(doc! {"_id": id, "x": x})
            .await
            .expect("insert");
    }
    let all = collect(coll.find(doc! {}).await.expect("find")).await;
    assert_eq!(xs(&all), vec![3, 4, 5]);
    let reversed = collect(
        coll.find(doc! {})
            .sort(doc! {"$natural": -1})
            .await
            .expect("find"),
    )
    .await;
    assert_eq!(xs(&reversed), vec![5, 4, 3]);
    let hinted = collect(
        coll.find(doc! {})
            .hint(mongodb::options::Hint::Keys(doc! {"$natural": -1}))
            .await
            .expect("find"),
    )
    .await;
    assert_eq!(xs(&hinted), vec![5, 4, 3]);
    // Aggregations read in natural order too, with or without a leading $match.
    for pipeline in [vec![], vec![doc! {"$match": {"x": {"$gte": 3}}}]] {
        let docs = collect(coll.aggregate(pipeline).await.expect("aggregate")).await;
        assert_eq!(xs(&docs), vec![3, 4, 5]);
    }

    let stats = db
        .run_command(doc! {"collStats": "bymax"})
        .await
        .expect("collStats");
    assert_eq!(stats.get_bool("capped").ok(), Some(true));
    assert_eq!(stats.get("max"), Some(&Bson::Int32(3)));
    assert_eq!(stats.get("maxSize"), Some(&Bson::Int32(1024)));
    assert_eq!(stats.get_i64("count").ok(), Some(3));

    // Deletes and size-changing updates are allowed (mongod 7.0).
    coll.delete_one(doc! {"x": 4}).await.expect("delete");
    coll.update_one(doc! {"x": 5}, doc! {"$set": {"pad": "y".repeat(100)}})
        .await
        .expect("update");
    coll.insert_one(doc! {"x": 6}).await.expect("insert");
    let all = collect(coll.find(doc! {}).await.expect("find")).await;
    assert_eq!(xs(&all), vec![3, 5, 6]);

    // collMod lowers the cap; the next insert applies it.
    db.run_command(doc! {"collMod": "bymax", "cappedMax": 2, "cappedSize": 2000})
        .await
        .expect("collMod");
    coll.insert_one(doc! {"x": 7}).await.expect("insert");
    let all = collect(coll.find(doc! {}).await.expect("find")).await;
    assert_eq!(xs(&all), vec![6, 7]);
    let stats = db
        .run_command(doc! {"collStats": "bymax"})
        .await
        .expect("collStats");
    assert_eq!(stats.get("max"), Some(&Bson::Int32(2)));
    assert_eq!(stats.get("maxSize"), Some(&Bson::Int32(2048)));
    let err = db
        .run_command(doc! {"collMod": "plain", "cappedMax": 2})
        .await
        .expect_err("not capped");
    assert_eq!(error_code(&err), Some(72));

    // By size: 4096 bytes of ~1 kB documents keep three of them.
    db.run_command(doc! {"create": "bysize", "capped": true, "size": 4096})
        .await
        .expect("create");
    let coll = db.collection::<Document>("bysize");
    for x in 0..10 {
        coll.insert_one(doc! {"x": x, "pad": "p".repeat(1000)})
            .await
            .expect("insert");
    }
    let all = collect(coll.find(doc! {}).await.expect("find")).await;
    assert_eq!(xs(&all), vec![7, 8, 9]);
    // A document larger than the whole cap is refused, and nothing is lost.
    let err = coll
        .insert_one(doc! {"x": 99, "pad": "p".repeat(5000)})
        .await
        .expect_err("too big");
    assert_eq!(error_code(&err), Some(2));
    assert_eq!(coll.count_documents(doc! {}).await.expect("count"), 3);

    // cloneCollectionAsCapped keeps the newest documents that fit; convertToCapped
    // replaces the collection (only the _id index survives, as in mongod).
    let src = db.collection::<Document>("src");
    src.insert_many((0..6).map(|x| doc! {"_id": x, "x": x, "pad": "p".repeat(1000)}))
        .await
        .expect("insert");
    src.create_index(mongodb::IndexModel::builder().keys(doc! {"x": 1}).build())
        .await
        .expect("index");
    db.run_command(doc! {"cloneCollectionAsCapped": "src", "toCollection": "srccap", "size": 4096})
        .await
        .expect("clone");
    let cloned = collect(
        db.collection::<Document>("srccap")
            .find(doc! {})
            .await
            .expect("find"),
    )
    .await;
    assert_eq!(xs(&cloned), vec![3, 4, 5]);
    let err = db
        .run_command(
            doc! {"cloneCollectionAsCapped": "src", "toCollection": "srccap", "size": 4096},
        )
        .await
        .expect_err("exists");
    assert_eq!(error_code(&err), Some(48));
    db.run_command(doc! {"convertToCapped": "src", "size": 100_000})
        .await
        .expect("convert");
    let stats = db
        .run_command(doc! {"collStats": "src"})
        .await
        .expect("stats");
    assert_eq!(stats.get_bool("capped").ok(), Some(true));
    assert_eq!(stats.get_i32("nindexes").ok(), Some(1));
    assert_eq!(src.count_documents(doc! {}).await.expect("count"), 6);
    let err = db
        .run_command(doc! {"convertToCapped": "nothing", "size": 4096})
        .await
        .expect_err("missing");
    assert_eq!(error_code(&err), Some(26));

    // Errors as mongod's.
    let err = db
        .run_command(doc! {"aggregate": "plain", "pipeline": [{"$out": "bysize"}], "cursor": {}})
        .await
        .expect_err("$out to capped");
    assert_eq!(error_code(&err), Some(17152));
    let err = db
        .run_command(doc! {"create": "nosize", "capped": true})
        .await
        .expect_err("size required");
    assert_eq!(error_code(&err), Some(72));
    let err = db
        .run_command(doc! {"create": "bigmax", "capped": true, "size": 4096, "max": 1_i64 << 32})
        .await
        .expect_err("max too large");
    assert_eq!(error_code(&err), Some(2));
}

#[tokio::test]
async fn tailable_cursors_follow_inserts_and_die_when_overtaken() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let db = client.database("tail");
    db.run_command(doc! {"create": "log", "capped": true, "size": 100_000, "max": 3})
        .await
        .expect("create");
    let coll = db.collection::<Document>("log");

    // On an ordinary collection: 2 BadValue; awaitData without tailable: 9.
    db.collection::<Document>("plain")
        .insert_one(doc! {"x": 1})
        .await
        .expect("insert");
    let err = db
        .run_command(doc! {"find": "plain", "tailable": true})
        .await
        .expect_err("not capped");
    assert_eq!(error_code(&err), Some(2));
    assert!(err
        .to_string()
        .contains("tailable cursor requested on non capped collection"));
    let err = db
        .run_command(doc! {"find": "log", "awaitData": true})
        .await
        .expect_err("awaitData alone");
    assert_eq!(error_code(&err), Some(9));

    // On an empty collection a tailable cursor is closed at once (as mongod).
    let reply = db
        .run_command(doc! {"find": "log", "tailable": true})
        .await
        .expect("find");
    assert_eq!(
        reply
            .get_document("cursor")
            .and_then(|c| c.get_i64("id"))
            .ok(),
        Some(0)
    );

    coll.insert_one(doc! {"x": 1}).await.expect("insert");
    let mut cursor = coll
        .find(doc! {})
        .with_options(
            FindOptions::builder()
                .cursor_type(CursorType::TailableAwait)
                .max_await_time(Duration::from_millis(2000))
                .build(),
        )
        .await
        .expect("find");
    assert!(cursor.advance().await.expect("first"));
    assert_eq!(cursor.current().get_i32("x").ok(), Some(1));

    // A later insert wakes the waiting getMore well before its await time.
    let writer = coll.clone();
    let started = std::time::Instant::now();
    let insert = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        writer.insert_one(doc! {"x": 2}).await.expect("insert");
    });
    assert!(cursor.advance().await.expect("second"));
    assert_eq!(cursor.current().get_i32("x").ok(), Some(2));
    assert!(started.elapsed() < Duration::from_millis(1500));
    insert.await.expect("writer");

    // Three more inserts push x: 2 (the cursor's position) out: 136.
    coll.insert_many((3..=5).map(|x| doc! {"x": x}))
        .await
        .expect("insert");
    let err = cursor.advance().await.expect_err("position lost");
    assert_eq!(error_code(&err), Some(136));
}

#[tokio::test]
async fn validate_checks_documents_against_indexes() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let db = client.database("val");
    db.run_command(doc! {"create": "c", "capped": true, "size": 4096, "max": 5})
        .await
        .expect("create");
    let coll = db.collection::<Document>("c");
    coll.create_index(mongodb::IndexModel::builder().keys(doc! {"x": 1}).build())
        .await
        .expect("index");
    coll.insert_many((0..8).map(|x| doc! {"x": x, "tags": [x, x + 100]}))
        .await
        .expect("insert");
    let reply = db
        .run_command(doc! {"validate": "c", "full": true})
        .await
        .expect("validate");
    assert_eq!(reply.get_bool("valid").ok(), Some(true), "{reply}");
    assert_eq!(reply.get_i64("nrecords").ok(), Some(5));
    assert_eq!(reply.get_i32("nIndexes").ok(), Some(2));
    assert_eq!(
        reply.get_document("keysPerIndex").ok(),
        Some(&doc! {"_id_": 5_i64, "x_1": 5_i64})
    );
    assert_eq!(
        reply.get_document("indexDetails").ok(),
        Some(&doc! {"_id_": {"valid": true}, "x_1": {"valid": true}})
    );
    assert_eq!(reply.get_array("errors").map(Vec::len).ok(), Some(0));

    let err = db
        .run_command(doc! {"validate": "c", "full": true, "background": true})
        .await
        .expect_err("full + background");
    assert_eq!(error_code(&err), Some(72));
    let err = db
        .run_command(doc! {"validate": "missing"})
        .await
        .expect_err("missing");
    assert_eq!(error_code(&err), Some(26));
}
