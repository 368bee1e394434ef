//! `maxTimeMS` on reads through the Rust `mongodb` driver: a slow find, count, distinct
//! and aggregate fail with 50 MaxTimeMSExpired, and a find cursor's `getMore`s spend
//! what is left of the find's time limit (`maxTimeAlwaysTimeOut` fires for them). The
//! work itself stops at the deadline: a timed-out `$out` writes nothing.

mod common;

use bson::{doc, Document};
use common::{error_code, TestServer};

#[tokio::test]
async fn slow_reads_fail_with_max_time_expired() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let db = client.database("mt");
    let coll = db.collection::<Document>("big");
    // 30,000 documents: scanning and matching them all takes far more than 1 ms.
    for chunk in 0..6 {
        coll.insert_many((0..5000).map(|i| doc! {"n": chunk * 5000 + i, "s": "x".repeat(50)}))
            .await
            .expect("insert");
    }
    let slow = doc! {"$expr": {"$gt": [{"$strLenCP": {"$concat": ["$s", "$s"]}}, 1000]}};
    for cmd in [
        doc! {"find": "big", "filter": slow.clone(), "sort": {"s": 1}, "maxTimeMS": 1},
        doc! {"count": "big", "query": slow.clone(), "maxTimeMS": 1},
        doc! {"distinct": "big", "key": "n", "query": slow.clone(), "maxTimeMS": 1},
        doc! {"aggregate": "big", "pipeline": [{"$match": slow.clone()}, {"$sort": {"s": 1}}],
        "cursor": {}, "maxTimeMS": 1},
    ] {
        let err = db.run_command(cmd.clone()).await.expect_err("too slow");
        assert_eq!(error_code(&err), Some(50), "{cmd}: {err}");
    }
    // With time enough, the same query answers.
    let reply = db
        .run_command(doc! {"count": "big", "query": slow, "maxTimeMS": 60_000})
        .await
        .expect("count");
    assert_eq!(reply.get_i32("n").ok(), Some(0));

    // The work stops at the deadline: an `$out` that timed out writes nothing, even
    // after the time the whole aggregation takes.
    let all = doc! {"$expr": {"$lt": [{"$strLenCP": {"$concat": ["$s", "$s"]}}, 1000]}};
    let out = |ms: i32| {
        doc! {"aggregate": "big", "pipeline": [{"$match": all.clone()}, {"$out": "copy"}],
        "cursor": {}, "maxTimeMS": ms}
    };
    let started = std::time::Instant::now();
    db.run_command(out(60_000))
        .await
        .expect("$out with time enough");
    let took = started.elapsed();
    assert_eq!(
        db.collection::<Document>("copy")
            .estimated_document_count()
            .await
            .ok(),
        Some(30_000)
    );
    db.collection::<Document>("copy")
        .drop()
        .await
        .expect("drop");
    let err = db.run_command(out(1)).await.expect_err("too slow");
    assert_eq!(error_code(&err), Some(50), "{err}");
    tokio::time::sleep(took * 2 + std::time::Duration::from_millis(200)).await;
    let names = db.list_collection_names().await.expect("listCollections");
    assert!(!names.contains(&"copy".to_owned()), "{names:?}");
}

#[tokio::test]
async fn a_find_cursor_s_get_more_inherits_its_time_limit() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let db = client.database("mt");
    let coll = db.collection::<Document>("c");
    coll.insert_many((0..10).map(|i| doc! {"_id": i}))
        .await
        .expect("insert");
    let admin = client.database("admin");
    let open = |max_time: Option<i32>| {
        let mut cmd = doc! {"find": "c", "batchSize": 2};
        if let Some(ms) = max_time {
            cmd.insert("maxTimeMS", ms);
        }
        cmd
    };
    let with_limit = db.run_command(open(Some(60_000))).await.expect("find");
    let without = db.run_command(open(None)).await.expect("find");
    let id = |reply: &Document| {
        reply
            .get_document("cursor")
            .and_then(|c| c.get_i64("id"))
            .expect("cursor id")
    };
    admin
        .run_command(doc! {"configureFailPoint": "maxTimeAlwaysTimeOut", "mode": "alwaysOn"})
        .await
        .expect("failpoint");
    let err = db
        .run_command(doc! {"getMore": id(&with_limit), "collection": "c"})
        .await
        .expect_err("inherited limit");
    assert_eq!(error_code(&err), Some(50));
    // A cursor opened without maxTimeMS has no limit to expire.
    db.run_command(doc! {"getMore": id(&without), "collection": "c"})
        .await
        .expect("no limit");
    admin
        .run_command(doc! {"configureFailPoint": "maxTimeAlwaysTimeOut", "mode": "off"})
        .await
        .expect("failpoint off");
    // The failed getMore killed its cursor, as mongod.
    let err = db
        .run_command(doc! {"getMore": id(&with_limit), "collection": "c"})
        .await
        .expect_err("killed");
    assert_eq!(error_code(&err), Some(43));
}
