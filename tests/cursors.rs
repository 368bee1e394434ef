//! Find cursors end as mongod's do: a batch filled to its `batchSize` by a find without a
//! limit leaves the cursor open (the scan has not looked past it), and the next `getMore`
//! returns the empty final batch; a find whose limit is reached closes at once.

mod common;

use bson::{doc, Document};
use common::{cursor_id, TestServer};

#[tokio::test]
async fn a_full_batch_leaves_the_cursor_open_until_a_get_more_finds_the_end() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let db = client.database("cur");
    db.collection::<Document>("c")
        .insert_many((0..2).map(|i| doc! {"_id": i}))
        .await
        .expect("insert");

    let reply = db
        .run_command(doc! {"find": "c", "batchSize": 2})
        .await
        .expect("find");
    let id = cursor_id(&reply);
    assert_ne!(id, 0, "{reply}");
    let more = db
        .run_command(doc! {"getMore": id, "collection": "c"})
        .await
        .expect("getMore");
    let cursor = more.get_document("cursor").expect("cursor");
    assert_eq!(cursor.get_array("nextBatch").map(Vec::len).ok(), Some(0));
    assert_eq!(cursor.get_i64("id").ok(), Some(0));

    // A short batch, a reached limit and singleBatch close the cursor at once.
    for cmd in [
        doc! {"find": "c", "batchSize": 3},
        doc! {"find": "c", "batchSize": 2, "limit": 2},
        doc! {"find": "c", "batchSize": 2, "singleBatch": true},
    ] {
        let reply = db.run_command(cmd.clone()).await.expect("find");
        assert_eq!(cursor_id(&reply), 0, "{cmd}");
    }
}
