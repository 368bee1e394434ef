//! Change streams through the Rust `mongodb` driver against a real `eddy serve`: the tutorial's
//! six events in MongoDB 7.0's shapes, resume tokens (resumeAfter, startAfter after an
//! invalidate, startAtOperationTime), fullDocument / fullDocumentBeforeChange, database and
//! cluster scope, the driver's automatic resume after a resumable getMore error, pipeline-style
//! updates as `update` or `replace` events, and the errors mongod answers for bad tokens, bad
//! pipelines and a read concern other than majority.

mod common;

use std::time::Duration;

use bson::{doc, Document};
use common::{cursor_id, error_code, next_event, TestServer};
use mongodb::change_stream::event::{ChangeStreamEvent, OperationType, ResumeToken};
use mongodb::options::{FullDocumentBeforeChangeType, FullDocumentType};

#[tokio::test]
async fn tutorial_events_in_order_with_mongod_shapes() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let coll = client
        .database("changestream")
        .collection::<Document>("collection");
    let mut stream = coll.watch().await.expect("watch");

    coll.insert_one(doc! {"_id": 1, "hello": "world"})
        .await
        .expect("insert");
    coll.update_one(doc! {"_id": 1}, doc! {"$set": {"hello": "mars"}})
        .await
        .expect("update");
    coll.replace_one(doc! {"_id": 1}, doc! {"bye": "world"})
        .await
        .expect("replace");
    coll.delete_one(doc! {"_id": 1}).await.expect("delete");
    coll.drop().await.expect("drop");

    let kinds = [
        OperationType::Insert,
        OperationType::Update,
        OperationType::Replace,
        OperationType::Delete,
        OperationType::Drop,
        OperationType::Invalidate,
    ];
    let mut events: Vec<ChangeStreamEvent<Document>> = Vec::new();
    for _ in 0..kinds.len() {
        events.push(next_event(&mut stream).await);
    }
    assert_eq!(
        events
            .iter()
            .map(|e| e.operation_type.clone())
            .collect::<Vec<_>>(),
        kinds.to_vec()
    );
    assert_eq!(
        events[0].full_document,
        Some(doc! {"_id": 1, "hello": "world"})
    );
    assert_eq!(events[0].document_key, Some(doc! {"_id": 1}));
    let desc = events[1]
        .update_description
        .as_ref()
        .expect("updateDescription");
    assert_eq!(desc.updated_fields, doc! {"hello": "mars"});
    assert!(desc.removed_fields.is_empty());
    assert_eq!(desc.truncated_arrays.as_ref().map(Vec::len), Some(0));
    assert_eq!(
        events[2].full_document,
        Some(doc! {"_id": 1, "bye": "world"})
    );
    assert!(events
        .iter()
        .all(|e| e.cluster_time.is_some() && e.wall_time.is_some()));
    // Tokens compare as strings in event order.
    let tokens: Vec<String> = events
        .iter()
        .map(|e| {
            bson::serialize_to_document(&e.id)
                .expect("token")
                .get_str("_data")
                .expect("_data")
                .to_owned()
        })
        .collect();
    assert!(tokens.windows(2).all(|w| w[0] < w[1]), "{tokens:?}");
    // After invalidate the server closed the cursor (id 0).
    assert!(!stream.is_alive());
}

#[tokio::test]
async fn resume_after_and_start_after_invalidate() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let coll = client.database("app").collection::<Document>("c");
    let mut stream = coll.watch().await.expect("watch");
    for i in 0..3 {
        coll.insert_one(doc! {"_id": i}).await.expect("insert");
    }
    let first = next_event(&mut stream).await;
    let token: ResumeToken = first.id.clone();
    drop(stream);

    // resumeAfter the first event: the second and third follow.
    let mut resumed = coll
        .watch()
        .resume_after(token.clone())
        .await
        .expect("resumeAfter");
    let e1: ChangeStreamEvent<Document> = next_event(&mut resumed).await;
    let e2: ChangeStreamEvent<Document> = next_event(&mut resumed).await;
    assert_eq!(e1.document_key, Some(doc! {"_id": 1}));
    assert_eq!(e2.document_key, Some(doc! {"_id": 2}));

    // Drop: drop then invalidate. startAfter the invalidate works; resumeAfter it does not.
    coll.drop().await.expect("drop");
    let drop_event = next_event(&mut resumed).await;
    assert_eq!(drop_event.operation_type, OperationType::Drop);
    let invalidate = next_event(&mut resumed).await;
    assert_eq!(invalidate.operation_type, OperationType::Invalidate);
    let err = coll
        .watch()
        .resume_after(invalidate.id.clone())
        .await
        .expect_err("resumeAfter an invalidate is refused");
    assert_eq!(error_code(&err), Some(260));
    let mut after = coll
        .watch()
        .start_after(invalidate.id.clone())
        .await
        .expect("startAfter");
    coll.insert_one(doc! {"_id": "new"})
        .await
        .expect("insert after drop");
    let e = next_event(&mut after).await;
    assert_eq!(e.operation_type, OperationType::Insert);
    assert_eq!(e.document_key, Some(doc! {"_id": "new"}));
}

#[tokio::test]
async fn full_document_and_pre_images() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let db = client.database("app");
    db.run_command(doc! {"create": "images", "changeStreamPreAndPostImages": {"enabled": true}})
        .await
        .expect("create with pre/post images");
    let coll = db.collection::<Document>("images");
    coll.insert_one(doc! {"_id": 1, "n": 1})
        .await
        .expect("insert");
    let mut stream = coll
        .watch()
        .full_document(FullDocumentType::UpdateLookup)
        .full_document_before_change(FullDocumentBeforeChangeType::Required)
        .await
        .expect("watch");
    coll.update_one(doc! {"_id": 1}, doc! {"$inc": {"n": 1}})
        .await
        .expect("update");
    // updateLookup reads the document when the event is read: read it before the delete.
    let update = next_event(&mut stream).await;
    assert_eq!(update.full_document, Some(doc! {"_id": 1, "n": 2}));
    assert_eq!(
        update.full_document_before_change,
        Some(doc! {"_id": 1, "n": 1})
    );
    coll.delete_one(doc! {"_id": 1}).await.expect("delete");
    let delete = next_event(&mut stream).await;
    assert_eq!(delete.operation_type, OperationType::Delete);
    assert_eq!(
        delete.full_document_before_change,
        Some(doc! {"_id": 1, "n": 2})
    );

    // Without pre-images enabled, `required` fails the stream when an event needs one.
    let plain = db.collection::<Document>("plain");
    plain.insert_one(doc! {"_id": 1}).await.expect("insert");
    let mut stream = plain
        .watch()
        .full_document_before_change(FullDocumentBeforeChangeType::Required)
        .await
        .expect("watch");
    plain.delete_one(doc! {"_id": 1}).await.expect("delete");
    let err = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.next_if_any().await {
                Ok(Some(_)) => panic!("an event without its required pre-image"),
                Ok(None) => continue,
                Err(e) => return e,
            }
        }
    })
    .await
    .expect("an error within 10 s");
    assert_eq!(error_code(&err), Some(47), "{err}");
}

#[tokio::test]
async fn database_and_cluster_scope() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let mut db_stream = client.database("shop").watch().await.expect("db watch");
    let mut cluster = client.watch().await.expect("cluster watch");
    client
        .database("shop")
        .collection::<Document>("a")
        .insert_one(doc! {"x": 1})
        .await
        .expect("insert a");
    client
        .database("other")
        .collection::<Document>("b")
        .insert_one(doc! {"y": 1})
        .await
        .expect("insert b");
    client
        .database("shop")
        .collection::<Document>("c")
        .insert_one(doc! {"z": 1})
        .await
        .expect("insert c");

    let a = next_event(&mut db_stream).await;
    let c = next_event(&mut db_stream).await;
    assert_eq!(
        a.ns.as_ref().and_then(|n| n.coll.clone()).as_deref(),
        Some("a")
    );
    assert_eq!(
        c.ns.as_ref().and_then(|n| n.coll.clone()).as_deref(),
        Some("c")
    );
    let dbs: Vec<String> = [
        next_event(&mut cluster).await,
        next_event(&mut cluster).await,
        next_event(&mut cluster).await,
    ]
    .iter()
    .map(|e| e.ns.as_ref().map(|n| n.db.clone()).unwrap_or_default())
    .collect();
    assert_eq!(dbs, vec!["shop", "other", "shop"]);
}

#[tokio::test]
async fn match_pipeline_filters_by_operation_type() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let coll = client.database("app").collection::<Document>("m");
    let mut inserts = coll
        .watch()
        .pipeline([doc! {"$match": {"operationType": "insert"}}])
        .await
        .expect("watch");
    coll.insert_one(doc! {"_id": 1}).await.expect("insert");
    coll.update_one(doc! {"_id": 1}, doc! {"$set": {"a": 1}})
        .await
        .expect("update");
    coll.insert_one(doc! {"_id": 2}).await.expect("insert");
    let a = next_event(&mut inserts).await;
    let b = next_event(&mut inserts).await;
    assert_eq!(a.document_key, Some(doc! {"_id": 1}));
    assert_eq!(b.document_key, Some(doc! {"_id": 2}));
}

/// A pipeline-style update is logged as mongod logs it: as a diff (an `update` event with
/// its `updateDescription`) when the diff is smaller than the new document, else as the
/// whole new document, which change streams report as a `replace`.
#[tokio::test]
async fn pipeline_updates_are_update_or_replace_events_as_mongod_logs_them() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let coll = client.database("app").collection::<Document>("p");
    let mut stream = coll.watch().await.expect("watch");
    let padding = "x".repeat(100);
    coll.insert_one(doc! {"_id": 1, "a": 1, "pad": &padding})
        .await
        .expect("insert");
    // {u: {a: 2}} is far smaller than the document: a diff.
    coll.update_one(doc! {"_id": 1}, vec![doc! {"$set": {"a": 2}}])
        .await
        .expect("small pipeline update");
    // {d: {a, pad}, i: {c: 1}} is larger than {_id: 1, c: 1}: the whole document.
    coll.update_one(
        doc! {"_id": 1},
        vec![doc! {"$replaceWith": {"_id": "$_id", "c": 1}}],
    )
    .await
    .expect("replacing pipeline update");
    let inserted = next_event(&mut stream).await;
    assert_eq!(inserted.operation_type, OperationType::Insert);
    let updated = next_event(&mut stream).await;
    assert_eq!(updated.operation_type, OperationType::Update);
    let description = updated.update_description.expect("updateDescription");
    assert_eq!(description.updated_fields, doc! {"a": 2});
    assert!(description.removed_fields.is_empty());
    let replaced = next_event(&mut stream).await;
    assert_eq!(replaced.operation_type, OperationType::Replace);
    assert!(replaced.update_description.is_none());
    assert_eq!(replaced.full_document, Some(doc! {"_id": 1, "c": 1}));
    assert_eq!(replaced.document_key, Some(doc! {"_id": 1}));
}

/// The `$match` of a stream opened with a collation compares strings under it, as mongod's
/// (and the equality conditions the server indexes waiting streams by do not rule such
/// an event out).
#[tokio::test]
async fn match_pipeline_uses_the_collation_of_the_stream() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let coll = client.database("app").collection::<Document>("coll");
    let collation = mongodb::options::Collation::builder()
        .locale("en")
        .strength(mongodb::options::CollationStrength::Secondary)
        .build();
    let mut folded = coll
        .watch()
        .pipeline([doc! {"$match": {"fullDocument.name": "ADA"}}])
        .collation(collation)
        .await
        .expect("watch");
    let mut exact = coll
        .watch()
        .pipeline([doc! {"$match": {"fullDocument.name": "ADA"}}])
        .await
        .expect("watch");
    coll.insert_one(doc! {"_id": 1, "name": "ada"})
        .await
        .expect("insert");
    coll.insert_one(doc! {"_id": 2, "name": "ADA"})
        .await
        .expect("insert");
    assert_eq!(
        next_event(&mut folded).await.document_key,
        Some(doc! {"_id": 1})
    );
    assert_eq!(
        next_event(&mut folded).await.document_key,
        Some(doc! {"_id": 2})
    );
    assert_eq!(
        next_event(&mut exact).await.document_key,
        Some(doc! {"_id": 2})
    );
}

/// An event over 16 MB fails the stream, unless the pipeline ends with
/// `$changeStreamSplitLargeEvent`: then it arrives as fragments, each with its own
/// resume token, as mongod 7.0 sends them.
#[tokio::test]
async fn large_events_are_split_into_fragments() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let db = client.database("app");
    db.run_command(doc! {"create": "big", "changeStreamPreAndPostImages": {"enabled": true}})
        .await
        .expect("create");
    let coll = db.collection::<Document>("big");
    let split = coll
        .watch()
        .pipeline([doc! {"$changeStreamSplitLargeEvent": {}}])
        .full_document(FullDocumentType::Required)
        .full_document_before_change(FullDocumentBeforeChangeType::Required)
        .await
        .expect("watch");
    let mut whole = coll
        .watch()
        .full_document(FullDocumentType::Required)
        .full_document_before_change(FullDocumentBeforeChangeType::Required)
        .await
        .expect("watch");
    let nine_mb = "x".repeat(9 * 1024 * 1024);
    coll.insert_one(doc! {"_id": 1, "a": &nine_mb})
        .await
        .expect("insert");
    coll.update_one(doc! {"_id": 1}, doc! {"$set": {"b": 1}})
        .await
        .expect("update");
    let mut raw = split.with_type::<Document>();
    let insert = next_event(&mut raw).await;
    assert_eq!(insert.get_str("operationType").ok(), Some("insert"));
    let first = next_event(&mut raw).await;
    let second = next_event(&mut raw).await;
    assert_eq!(
        first.get_document("splitEvent").ok(),
        Some(&doc! {"fragment": 1, "of": 2})
    );
    assert_eq!(
        second.get_document("splitEvent").ok(),
        Some(&doc! {"fragment": 2, "of": 2})
    );
    assert_eq!(first.get_str("operationType").ok(), Some("update"));
    // The fields in mongod's order, each whole in one fragment.
    let fields: Vec<&str> = first
        .keys()
        .chain(second.keys())
        .map(String::as_str)
        .filter(|k| !matches!(*k, "_id" | "splitEvent"))
        .collect();
    assert_eq!(
        fields,
        [
            "operationType",
            "clusterTime",
            "wallTime",
            "ns",
            "documentKey",
            "updateDescription",
            "fullDocumentBeforeChange",
            "fullDocument"
        ]
    );
    let t1 = first
        .get_document("_id")
        .expect("token")
        .get_str("_data")
        .expect("hex");
    let t2 = second
        .get_document("_id")
        .expect("token")
        .get_str("_data")
        .expect("hex");
    assert!(t1 < t2, "fragment tokens sort in order");
    // Without the stage the 18 MB update event fails the getMore (10334, as mongod).
    let err = loop {
        match whole.next_if_any().await {
            Ok(Some(e)) => assert_eq!(e.operation_type, OperationType::Insert),
            Ok(None) => continue,
            Err(e) => break e,
        }
    };
    assert_eq!(error_code(&err), Some(10334));
}

#[tokio::test]
async fn errors_match_mongod() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let db = client.database("app");
    let run = |cmd: Document| {
        let db = db.clone();
        async move { db.run_command(cmd).await.expect_err("refused") }
    };
    let bad_token = run(doc! {"aggregate": "c", "pipeline": [{"$changeStream": {"resumeAfter": {"_data": "zz"}}}], "cursor": {}}).await;
    assert_eq!(error_code(&bad_token), Some(260));
    let unknown = run(
        doc! {"aggregate": "c", "pipeline": [{"$changeStream": {}}, {"$fnord": {}}], "cursor": {}},
    )
    .await;
    assert_eq!(error_code(&unknown), Some(40324));
    let not_first = run(
        doc! {"aggregate": "c", "pipeline": [{"$match": {}}, {"$changeStream": {}}], "cursor": {}},
    )
    .await;
    assert_eq!(error_code(&not_first), Some(40602));
    let get_more = run(doc! {"getMore": 12345_i64, "collection": "c"}).await;
    assert_eq!(error_code(&get_more), Some(43));
    // A change stream reads majority-committed changes: an explicit other level is refused,
    // as mongod's `onlySingleReadConcernSupported` refuses it; `majority` itself is fine.
    let local = run(doc! {"aggregate": "c", "pipeline": [{"$changeStream": {}}], "cursor": {}, "readConcern": {"level": "local"}}).await;
    assert_eq!(error_code(&local), Some(72));
    assert!(
        local.to_string().contains(
            "Aggregation stage $changeStream cannot run with a readConcern other than 'majority'. Current readConcern: local"
        ),
        "{local}"
    );
    db.run_command(doc! {"aggregate": "c", "pipeline": [{"$changeStream": {}}], "cursor": {}, "readConcern": {"level": "majority"}})
        .await
        .expect("majority is a change stream's own level");
}

#[tokio::test]
async fn driver_resumes_after_a_resumable_get_more_error() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let coll = client.database("app").collection::<Document>("r");
    let mut stream = coll.watch().await.expect("watch");
    coll.insert_one(doc! {"_id": 1}).await.expect("insert");
    assert_eq!(
        next_event(&mut stream).await.document_key,
        Some(doc! {"_id": 1})
    );
    client
        .database("admin")
        .run_command(doc! {
            "configureFailPoint": "failGetMoreAfterCursorCheckout",
            "mode": {"times": 1},
            "data": {"errorCode": 10107},
        })
        .await
        .expect("configureFailPoint");
    coll.insert_one(doc! {"_id": 2}).await.expect("insert");
    // The failed getMore carries ResumableChangeStreamError: the driver resumes after event 1
    // and sees event 2 exactly once.
    assert_eq!(
        next_event(&mut stream).await.document_key,
        Some(doc! {"_id": 2})
    );
    coll.insert_one(doc! {"_id": 3}).await.expect("insert");
    assert_eq!(
        next_event(&mut stream).await.document_key,
        Some(doc! {"_id": 3})
    );
}

#[tokio::test]
async fn quiet_stream_keeps_its_place_with_post_batch_resume_token() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let coll = client.database("app").collection::<Document>("quiet");
    let other = client.database("app").collection::<Document>("busy");
    let mut stream = coll
        .watch()
        .max_await_time(Duration::from_millis(50))
        .await
        .expect("watch");
    let before = stream.resume_token().expect("a token from the first batch");
    for i in 0..5 {
        other.insert_one(doc! {"_id": i}).await.expect("insert");
    }
    // Empty batches still advance the token past entries of other collections.
    let mut advanced = false;
    for _ in 0..50 {
        assert!(stream.next_if_any().await.expect("getMore").is_none());
        let now = stream.resume_token().expect("token");
        if bson::serialize_to_bson(&now).ok() != bson::serialize_to_bson(&before).ok() {
            advanced = true;
            break;
        }
    }
    assert!(advanced, "postBatchResumeToken never moved");
}

#[tokio::test]
async fn rename_drop_database_and_expanded_events() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let db = client.database("ddl");
    let mut expanded = db
        .watch()
        .show_expanded_events(true)
        .await
        .expect("db watch");
    db.create_collection("a").await.expect("create");
    db.collection::<Document>("a")
        .create_index(mongodb::IndexModel::builder().keys(doc! {"x": 1}).build())
        .await
        .expect("createIndexes");
    db.collection::<Document>("a")
        .insert_one(doc! {"_id": 1})
        .await
        .expect("insert");
    client
        .database("admin")
        .run_command(doc! {"renameCollection": "ddl.a", "to": "ddl.b"})
        .await
        .expect("rename");
    db.drop().await.expect("dropDatabase");
    let mut kinds = Vec::new();
    for _ in 0..6 {
        let e: ChangeStreamEvent<Document> = next_event(&mut expanded).await;
        if e.operation_type == OperationType::Rename {
            let to = e.to.as_ref().expect("rename carries `to`");
            assert_eq!((to.db.as_str(), to.coll.as_deref()), ("ddl", Some("b")));
        }
        kinds.push(e.operation_type);
    }
    assert_eq!(
        kinds,
        vec![
            OperationType::Other("create".into()),
            OperationType::Other("createIndexes".into()),
            OperationType::Insert,
            OperationType::Rename,
            OperationType::Drop,
            OperationType::DropDatabase,
        ]
    );
}

#[tokio::test]
async fn resume_after_server_restart_from_a_stored_token() {
    let mut server = TestServer::start_replset();
    let token = {
        let client = server.client().await;
        let coll = client.database("app").collection::<Document>("durable");
        let mut stream = coll.watch().await.expect("watch");
        coll.insert_one(doc! {"_id": 1}).await.expect("insert 1");
        coll.insert_one(doc! {"_id": 2}).await.expect("insert 2");
        let first = next_event(&mut stream).await;
        first.id
    };
    server.restart();
    let client = server.client().await;
    let coll = client.database("app").collection::<Document>("durable");
    coll.insert_one(doc! {"_id": 3}).await.expect("insert 3");
    let mut resumed = coll
        .watch()
        .resume_after(token)
        .await
        .expect("resume after restart");
    assert_eq!(
        next_event(&mut resumed).await.document_key,
        Some(doc! {"_id": 2})
    );
    assert_eq!(
        next_event(&mut resumed).await.document_key,
        Some(doc! {"_id": 3})
    );
}

#[tokio::test]
async fn history_lost_after_trimming() {
    let server = TestServer::start_with(&["--replSet", "rs0", "--oplogSize", "1"]);
    let client = server.client().await;
    let coll = client.database("app").collection::<Document>("trim");
    let mut stream = coll.watch().await.expect("watch");
    coll.insert_one(doc! {"_id": 0}).await.expect("insert");
    let old = next_event(&mut stream).await.id;
    drop(stream);
    // Write well past the 1 MB cap, then give the trimmer (every 500 ms) time to run.
    let filler = "f".repeat(16 * 1024);
    for chunk in 0..10 {
        let docs: Vec<Document> = (0..20)
            .map(|i| doc! {"_id": 1 + chunk * 20 + i, "f": filler.clone()})
            .collect();
        coll.insert_many(docs).await.expect("insert_many");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let err = loop {
        match coll.watch().resume_after(old.clone()).await {
            Err(e) => break e,
            Ok(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await
            }
            Ok(_) => panic!("the oplog was never trimmed past the token"),
        }
    };
    assert_eq!(error_code(&err), Some(286), "{err}");
    assert!(err.contains_label("NonResumableChangeStreamError"));
    // A point inside the retained history still resumes.
    let mut fresh = coll.watch().await.expect("watch");
    coll.insert_one(doc! {"_id": "late"}).await.expect("insert");
    let late = next_event(&mut fresh).await;
    assert_eq!(late.document_key, Some(doc! {"_id": "late"}));
}

#[tokio::test]
async fn start_at_operation_time_and_batch_size() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let coll = client.database("app").collection::<Document>("optime");
    coll.insert_one(doc! {"_id": "before"})
        .await
        .expect("insert");
    let reply = client
        .database("app")
        .run_command(doc! {"ping": 1})
        .await
        .expect("ping");
    let at = reply.get_timestamp("operationTime").expect("operationTime");
    coll.insert_one(doc! {"_id": "after"})
        .await
        .expect("insert");
    // startAtOperationTime is inclusive: the first event at or after `at`.
    let mut stream = coll
        .watch()
        .start_at_operation_time(at)
        .await
        .expect("watch");
    let first = next_event(&mut stream).await;
    assert!(first.cluster_time.expect("clusterTime") >= at);
    let raw = client
        .database("app")
        .run_command(doc! {"aggregate": "optime", "pipeline": [{"$changeStream": {"startAtOperationTime": bson::Timestamp {time: 0, increment: 1}}}], "cursor": {"batchSize": 1}})
        .await;
    // Timestamp(0, 1) is older than the oldest retained entry only once trimming ran;
    // on a fresh server it is inside the history: one event per batch.
    if let Ok(raw) = raw {
        let batch = raw
            .get_document("cursor")
            .and_then(|c| c.get_array("firstBatch"))
            .expect("firstBatch");
        assert!(batch.len() <= 1);
    }
}

#[tokio::test]
async fn post_images_when_available_and_required_and_comment() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let db = client.database("app");
    db.run_command(doc! {"create": "post", "changeStreamPreAndPostImages": {"enabled": true}})
        .await
        .expect("create with images");
    let with_images = db.collection::<Document>("post");
    let plain = db.collection::<Document>("plain_post");
    with_images
        .insert_one(doc! {"_id": 1, "n": 1})
        .await
        .expect("insert");
    plain
        .insert_one(doc! {"_id": 1, "n": 1})
        .await
        .expect("insert");

    // `required` post-images on a collection that stores them; `comment` is accepted.
    let mut required = with_images
        .watch()
        .full_document(FullDocumentType::Required)
        .full_document_before_change(FullDocumentBeforeChangeType::WhenAvailable)
        .comment(bson::Bson::String("audit".into()))
        .await
        .expect("watch");
    // `whenAvailable` on a collection without them: null, not an error.
    let mut available = plain
        .watch()
        .full_document(FullDocumentType::WhenAvailable)
        .full_document_before_change(FullDocumentBeforeChangeType::WhenAvailable)
        .await
        .expect("watch");
    with_images
        .update_one(doc! {"_id": 1}, doc! {"$set": {"n": 2}})
        .await
        .expect("update");
    plain
        .update_one(doc! {"_id": 1}, doc! {"$set": {"n": 2}})
        .await
        .expect("update");
    let e = next_event(&mut required).await;
    assert_eq!(e.full_document, Some(doc! {"_id": 1, "n": 2}));
    assert_eq!(e.full_document_before_change, Some(doc! {"_id": 1, "n": 1}));
    let raw = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(e) = available.next_if_any().await.expect("getMore") {
                return e;
            }
        }
    })
    .await
    .expect("an event");
    assert_eq!(raw.operation_type, OperationType::Update);
    assert_eq!(
        raw.full_document, None,
        "whenAvailable without stored images gives null"
    );
    assert_eq!(raw.full_document_before_change, None);

    // `required` post-images where none are stored fails the stream with 47.
    let mut strict = plain
        .watch()
        .full_document(FullDocumentType::Required)
        .await
        .expect("watch");
    plain
        .update_one(doc! {"_id": 1}, doc! {"$set": {"n": 3}})
        .await
        .expect("update");
    let err = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match strict.next_if_any().await {
                Ok(Some(_)) => panic!("an event without its required post-image"),
                Ok(None) => continue,
                Err(e) => return e,
            }
        }
    })
    .await
    .expect("an error");
    assert_eq!(error_code(&err), Some(47), "{err}");
}

#[tokio::test]
async fn index_and_modify_events_with_show_expanded_events() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let db = client.database("ddl2");
    let coll = db.collection::<Document>("c");
    coll.insert_one(doc! {"_id": 1}).await.expect("insert");
    let mut stream = coll
        .watch()
        .show_expanded_events(true)
        .await
        .expect("watch");
    coll.create_index(mongodb::IndexModel::builder().keys(doc! {"k": 1}).build())
        .await
        .expect("createIndexes");
    db.run_command(doc! {"collMod": "c", "changeStreamPreAndPostImages": {"enabled": true}})
        .await
        .expect("collMod");
    coll.drop_index("k_1").await.expect("dropIndexes");
    let kinds: Vec<OperationType> = [
        next_event(&mut stream).await,
        next_event(&mut stream).await,
        next_event(&mut stream).await,
    ]
    .into_iter()
    .map(|e| e.operation_type)
    .collect();
    assert_eq!(
        kinds,
        vec![
            OperationType::Other("createIndexes".into()),
            OperationType::Other("modify".into()),
            OperationType::Other("dropIndexes".into()),
        ]
    );
}

/// Change streams over compressed connections: the driver negotiates each compressor
/// (`compressors=` in its URI) and its events come back in OP_COMPRESSED replies.
#[tokio::test]
async fn change_streams_over_each_compressor() {
    let server = TestServer::start_replset();
    for name in ["zstd", "snappy", "zlib"] {
        let uri = format!("{}&compressors={name}", server.uri());
        let client = mongodb::Client::with_uri_str(&uri).await.expect("uri");
        let coll = client.database("compressed").collection::<Document>(name);
        let mut stream = coll.watch().await.expect("watch");
        let text = "squeeze ".repeat(500);
        coll.insert_one(doc! {"_id": 1, "text": &text})
            .await
            .expect("insert");
        let event = next_event(&mut stream).await;
        assert_eq!(event.operation_type, OperationType::Insert);
        let got = event.full_document.expect("fullDocument");
        assert_eq!(got.get_str("text").expect("text"), text);
        // The server answered with this compressor: serverStatus counts its bytes.
        let status = client
            .database("admin")
            .run_command(doc! {"serverStatus": 1})
            .await
            .expect("serverStatus");
        let used = status
            .get_document("network")
            .and_then(|n| n.get_document("compression"))
            .and_then(|c| c.get_document(name))
            .expect("the compressor's section");
        let made = used
            .get_document("compressor")
            .and_then(|c| c.get_i64("bytesOut"))
            .expect("compressor.bytesOut");
        let read = used
            .get_document("decompressor")
            .and_then(|c| c.get_i64("bytesIn"))
            .expect("decompressor.bytesIn");
        assert!(made > 0 && read > 0, "{name}: {used:?}");
    }
}

/// A waiting `getMore` is answered by the thread that wakes its stream, ahead of the
/// cursor's bookkeeping. A client that sends its next `getMore` on another connection
/// as soon as it has the answer still finds the cursor free (never 292 CursorInUse, as
/// with mongod, which answers after releasing the cursor), and every event arrives
/// once, in order, with the reply's usual fields.
#[tokio::test]
async fn next_get_more_on_another_connection_right_after_an_answer() {
    let server = TestServer::start_replset();
    let (a, b, writer) = (
        server.client().await,
        server.client().await,
        server.client().await,
    );
    let opened = a
        .database("hand")
        .run_command(doc! {"aggregate": "c", "pipeline": [{"$changeStream": {}}], "cursor": {}})
        .await
        .expect("aggregate");
    let id = cursor_id(&opened);
    let coll = writer.database("hand").collection::<Document>("c");
    let dbs = [a.database("hand"), b.database("hand")];
    let mut seen = Vec::new();
    for i in 0..60 {
        let db = dbs[i % 2].clone();
        let waiting = tokio::spawn(async move {
            db.run_command(doc! {"getMore": id, "collection": "c", "maxTimeMS": 10_000})
                .await
        });
        // Let the getMore reach its wait, so the insert's commit answers it.
        tokio::time::sleep(Duration::from_millis(20)).await;
        coll.insert_one(doc! {"_id": i as i32})
            .await
            .expect("insert");
        let reply = waiting.await.expect("task").expect("getMore");
        let cursor = reply.get_document("cursor").expect("cursor");
        assert_eq!(cursor.get_i64("id").ok(), Some(id), "{reply}");
        assert_eq!(cursor.get_str("ns").ok(), Some("hand.c"), "{reply}");
        assert!(
            cursor.get_document("postBatchResumeToken").is_ok(),
            "{reply}"
        );
        assert!(reply.get_document("$clusterTime").is_ok(), "{reply}");
        for event in cursor.get_array("nextBatch").expect("nextBatch") {
            let event = event.as_document().expect("event");
            let key = event.get_document("documentKey").expect("documentKey");
            seen.push(key.get_i32("_id").expect("_id"));
        }
    }
    assert_eq!(seen, (0..60).collect::<Vec<i32>>());
    // Most of them were answered that way (a getMore that had not reached its wait
    // when the insert committed finds the event itself).
    let status = writer
        .database("admin")
        .run_command(doc! {"serverStatus": 1})
        .await
        .expect("serverStatus");
    let on_wake = status
        .get_document("metrics")
        .and_then(|m| m.get_document("changeStreams"))
        .and_then(|c| c.get_i64("answeredOnWake"))
        .expect("metrics.changeStreams.answeredOnWake");
    assert!(on_wake >= 30, "{on_wake} of 60 answered on wake");
}

/// An answer larger than the socket takes at once (a 12 MB event to a waiting stream):
/// the waking thread writes what the socket takes and the connection the rest, so the
/// client reads one intact reply.
#[tokio::test]
async fn an_answer_larger_than_the_socket_buffer_arrives_whole() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let coll = client.database("hand").collection::<Document>("big");
    let mut stream = coll
        .watch()
        .max_await_time(Duration::from_secs(10))
        .await
        .expect("watch");
    let reader = tokio::spawn(async move { next_event(&mut stream).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let big = "x".repeat(12 * 1024 * 1024);
    coll.insert_one(doc! {"_id": 1, "big": &big})
        .await
        .expect("insert");
    let event = reader.await.expect("reader");
    let doc = event.full_document.expect("fullDocument");
    assert_eq!(doc.get_str("big").map(str::len).ok(), Some(big.len()));
}
