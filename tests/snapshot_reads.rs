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
