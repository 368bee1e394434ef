//! Snapshot reads (`readConcern: {level: "snapshot"}`) through the Rust driver: a
//! snapshot session reads the same data at every command though writes go on, replies
//! carry `atClusterTime`, and times the server no longer (or not yet) has are refused.

mod common;

use bson::{doc, Document, Timestamp};
use common::{collect, error_code, first_batch, TestServer};

#[tokio::test]
async fn a_snapshot_session_keeps_reading_its_snapshot() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let db = client.database("snap");
    let coll = db.collection::<Document>("c");
    coll.insert_many((0..5).map(|i| doc! {"_id": i, "x": i}))
        .await
        .expect("insert");

    let mut session = client
        .start_session()
        .snapshot(true)
        .await
        .expect("snapshot session");
    let mut first = Vec::new();
    let mut cursor = coll
        .find(doc! {})
        .sort(doc! {"_id": 1})
        .session(&mut session)
        .await
        .expect("find in the snapshot");
    while let Some(d) = cursor.next(&mut session).await {
        first.push(d.expect("doc"));
    }
    drop(cursor);
    assert_eq!(first.len(), 5);

    // Writes outside the session after the snapshot was taken.
    coll.insert_one(doc! {"_id": 5, "x": 5})
        .await
        .expect("insert");
    coll.update_one(doc! {"_id": 0}, doc! {"$set": {"x": 100}})
        .await
        .expect("update");

    // The session's next reads are at its snapshot's time: the writes are not there.
    let mut again = Vec::new();
    let mut cursor = coll
        .find(doc! {})
        .sort(doc! {"_id": 1})
        .session(&mut session)
        .await
        .expect("find again");
    while let Some(d) = cursor.next(&mut session).await {
        again.push(d.expect("doc"));
    }
    drop(cursor);
    assert_eq!(again, first);
    let distinct = coll
        .distinct("x", doc! {})
        .session(&mut session)
        .await
        .expect("distinct");
    assert_eq!(distinct.len(), 5);
    assert!(!distinct.contains(&bson::Bson::Int32(100)));
    let mut agg = coll
        .aggregate(vec![doc! {"$count": "n"}])
        .session(&mut session)
        .await
        .expect("aggregate");
    let counted = agg.next(&mut session).await.expect("a result").expect("ok");
    assert_eq!(counted.get_i32("n").ok(), Some(5));
    drop(agg);
    // Outside the session, the present.
    assert_eq!(coll.count_documents(doc! {}).await.expect("count"), 6);
}

#[tokio::test]
async fn replies_carry_at_cluster_time_and_refuse_unavailable_times() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let db = client.database("snap");
    let coll = db.collection::<Document>("c");
    coll.insert_one(doc! {"_id": 1}).await.expect("insert");

    let reply = db
        .run_command(doc! {"find": "c", "readConcern": {"level": "snapshot"}})
        .await
        .expect("snapshot find");
    let at = reply
        .get_document("cursor")
        .expect("cursor")
        .get_timestamp("atClusterTime")
        .expect("atClusterTime");
    let reply = db
        .run_command(doc! {"distinct": "c", "key": "_id", "readConcern": {"level": "snapshot", "atClusterTime": at}})
        .await
        .expect("snapshot distinct at that time");
    assert_eq!(reply.get_timestamp("atClusterTime").ok(), Some(at));
    // Without snapshot, no atClusterTime.
    let plain = db.run_command(doc! {"find": "c"}).await.expect("find");
    assert!(plain
        .get_document("cursor")
        .expect("cursor")
        .get("atClusterTime")
        .is_none());

    // A time before anything pinned, once writes moved on: SnapshotTooOld.
    coll.insert_one(doc! {"_id": 2}).await.expect("insert");
    let old = Timestamp {
        time: 1,
        increment: 1,
    };
    let e = db
        .run_command(doc! {"find": "c", "readConcern": {"level": "snapshot", "atClusterTime": old}})
        .await
        .expect_err("too old");
    assert_eq!(error_code(&e), Some(239));
    // A time in the future.
    let future = Timestamp {
        time: at.time + 3600,
        increment: 1,
    };
    let e = db
        .run_command(
            doc! {"find": "c", "readConcern": {"level": "snapshot", "atClusterTime": future}},
        )
        .await
        .expect_err("in the future");
    assert_eq!(error_code(&e), Some(2));
    // atClusterTime needs level snapshot.
    let e = db
        .run_command(doc! {"find": "c", "readConcern": {"level": "majority", "atClusterTime": at}})
        .await
        .expect_err("not snapshot");
    assert_eq!(error_code(&e), Some(72));
    // The pinned time still reads the old state.
    let reply = db
        .run_command(doc! {"aggregate": "c", "pipeline": [], "cursor": {}, "readConcern": {"level": "snapshot", "atClusterTime": at}})
        .await
        .expect("aggregate at the pinned time");
    let batch = first_batch(&reply);
    assert_eq!(batch.len(), 1);
    let now = collect(coll.find(doc! {}).await.expect("find")).await;
    assert_eq!(now.len(), 2);
}

#[tokio::test]
async fn only_find_aggregate_and_distinct_read_a_snapshot_and_never_of_a_capped_collection() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let db = client.database("snap");
    db.run_command(doc! {"create": "capped", "capped": true, "size": 4096})
        .await
        .expect("create capped");
    db.collection::<Document>("c")
        .insert_one(doc! {"_id": 1})
        .await
        .expect("insert");
    let snapshot = doc! {"level": "snapshot"};
    // Writes and the catalog listings refuse it (72 InvalidOptions), as mongod.
    for mut cmd in [
        doc! {"insert": "c", "documents": [{"_id": 2}]},
        doc! {"update": "c", "updates": [{"q": {}, "u": {"$set": {"x": 1}}}]},
        doc! {"delete": "c", "deletes": [{"q": {}, "limit": 1}]},
        doc! {"findAndModify": "c", "query": {}, "remove": true},
        doc! {"listCollections": 1},
        doc! {"listIndexes": "c"},
        doc! {"count": "c"},
    ] {
        cmd.insert("readConcern", snapshot.clone());
        let err = db.run_command(cmd.clone()).await.expect_err("no snapshot");
        assert_eq!(error_code(&err), Some(72), "{cmd}: {err}");
    }
    assert_eq!(
        db.collection::<Document>("c")
            .count_documents(doc! {})
            .await
            .ok(),
        Some(1),
        "nothing was written"
    );
    // Capped collections cannot be read at a snapshot (246 SnapshotUnavailable).
    for mut cmd in [
        doc! {"find": "capped"},
        doc! {"aggregate": "capped", "pipeline": [], "cursor": {}},
        doc! {"distinct": "capped", "key": "_id"},
    ] {
        cmd.insert("readConcern", snapshot.clone());
        let err = db.run_command(cmd.clone()).await.expect_err("capped");
        assert_eq!(error_code(&err), Some(246), "{cmd}: {err}");
    }
    // A level mongod does not know is refused (2 BadValue).
    let err = db
        .run_command(doc! {"find": "c", "readConcern": {"level": "unknown"}})
        .await
        .expect_err("unknown level");
    assert_eq!(error_code(&err), Some(2), "{err}");
    let reply = db
        .run_command(doc! {"find": "c", "readConcern": snapshot})
        .await
        .expect("a snapshot find");
    assert_eq!(first_batch(&reply), vec![doc! {"_id": 1}]);
}
