//! Foundation end-to-end tests: the Rust `mongodb` driver (3.9, bson 3) against a real
//! `eddy serve` process. They pin the behaviour everything else builds on, as MongoDB 7.0 does
//! it: a CRUD round trip, duplicate-key errors with `keyPattern`/`keyValue`, cursors that span
//! getMore batches, persistence across a clean restart, and no loss of acknowledged writes on
//! kill -9.

mod common;

use bson::{doc, Bson, Document};
use common::{collect, error_code, first_batch, ids, TestServer};
use mongodb::error::{ErrorKind, WriteFailure};

#[tokio::test]
async fn crud_round_trip() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let coll = client.database("app").collection::<Document>("items");

    let res = coll
        .insert_one(doc! { "_id": 1, "name": "a", "n": 1 })
        .await
        .expect("insert_one");
    assert_eq!(res.inserted_id, Bson::Int32(1));
    let res = coll
        .insert_many(vec![
            doc! { "_id": 2, "name": "b", "n": 2 },
            doc! { "_id": 3, "name": "c", "n": 3 },
        ])
        .await
        .expect("insert_many");
    assert_eq!(res.inserted_ids.len(), 2);

    let found = coll
        .find_one(doc! { "_id": 2 })
        .await
        .expect("find_one")
        .expect("document 2 exists");
    assert_eq!(found, doc! { "_id": 2, "name": "b", "n": 2 });

    let upd = coll
        .update_one(
            doc! { "_id": 1 },
            doc! { "$inc": { "n": 10 }, "$set": { "tag": "x" } },
        )
        .await
        .expect("update_one");
    assert_eq!((upd.matched_count, upd.modified_count), (1, 1));
    assert_eq!(
        coll.find_one(doc! { "_id": 1 }).await.expect("find_one"),
        Some(doc! { "_id": 1, "name": "a", "n": 11, "tag": "x" })
    );

    let rep = coll
        .replace_one(doc! { "_id": 3 }, doc! { "replaced": true })
        .await
        .expect("replace_one");
    assert_eq!((rep.matched_count, rep.modified_count), (1, 1));
    assert_eq!(
        coll.find_one(doc! { "_id": 3 }).await.expect("find_one"),
        Some(doc! { "_id": 3, "replaced": true })
    );

    let del = coll
        .delete_one(doc! { "_id": 2 })
        .await
        .expect("delete_one");
    assert_eq!(del.deleted_count, 1);
    assert_eq!(
        coll.count_documents(doc! {})
            .await
            .expect("count_documents"),
        2
    );

    let all = collect(
        coll.find(doc! {})
            .sort(doc! { "_id": 1 })
            .await
            .expect("find"),
    )
    .await;
    assert_eq!(ids(&all), vec![1, 3]);
}

#[tokio::test]
async fn duplicate_key_error() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let db = client.database("app");
    let coll = db.collection::<Document>("dups");
    coll.insert_one(doc! { "_id": 1 })
        .await
        .expect("first insert");

    let err = coll
        .insert_one(doc! { "_id": 1 })
        .await
        .expect_err("second insert must fail");
    match *err.kind {
        ErrorKind::Write(WriteFailure::WriteError(ref we)) => {
            assert_eq!(we.code, 11000, "{we:?}");
            assert!(
                we.message
                    .starts_with("E11000 duplicate key error collection: app.dups index: _id_"),
                "{}",
                we.message
            );
        }
        ref other => panic!("expected a write error, got {other:?}"),
    }

    // The driver keeps only errInfo from a write error; read the raw reply for the rest.
    let reply = db
        .run_command(doc! { "insert": "dups", "documents": [ { "_id": 5 }, { "_id": 1 } ] })
        .await
        .expect("insert command (ok: 1 with writeErrors)");
    assert_eq!(reply.get_i32("n").expect("n"), 1);
    let errors = reply.get_array("writeErrors").expect("writeErrors");
    assert_eq!(errors.len(), 1);
    let we = errors[0].as_document().expect("write error document");
    assert_eq!(we.get_i32("index").expect("index"), 1);
    assert_eq!(we.get_i32("code").expect("code"), 11000);
    assert_eq!(
        we.get_document("keyPattern").expect("keyPattern"),
        &doc! { "_id": 1 }
    );
    assert_eq!(
        we.get_document("keyValue").expect("keyValue"),
        &doc! { "_id": 1 }
    );
}

#[tokio::test]
async fn cursor_across_get_more() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let db = client.database("app");
    let coll = db.collection::<Document>("many");
    coll.insert_many((0..10).map(|i| doc! { "_id": i, "v": i * 10 }))
        .await
        .expect("insert_many");

    let docs = collect(
        coll.find(doc! {})
            .sort(doc! { "_id": 1 })
            .batch_size(2)
            .await
            .expect("find"),
    )
    .await;
    assert_eq!(ids(&docs), (0..10).collect::<Vec<_>>());

    // The same by hand: a first batch of 2, then getMores of 2 until the cursor id is 0.
    let reply = db
        .run_command(doc! { "find": "many", "sort": { "_id": 1 }, "batchSize": 2 })
        .await
        .expect("find command");
    let cursor = reply.get_document("cursor").expect("cursor");
    assert_eq!(cursor.get_str("ns").expect("ns"), "app.many");
    let mut seen = ids(&documents(
        cursor.get_array("firstBatch").expect("firstBatch"),
    ));
    assert_eq!(seen, vec![0, 1]);
    let mut id = cursor.get_i64("id").expect("cursor id is an int64");
    assert_ne!(id, 0, "more documents remain, so the cursor stays open");
    let mut get_mores = 0;
    while id != 0 {
        let reply = db
            .run_command(doc! { "getMore": id, "collection": "many", "batchSize": 2 })
            .await
            .expect("getMore");
        let cursor = reply.get_document("cursor").expect("cursor");
        let batch = documents(cursor.get_array("nextBatch").expect("nextBatch"));
        assert!(batch.len() <= 2);
        seen.extend(ids(&batch));
        id = cursor.get_i64("id").expect("cursor id");
        get_mores += 1;
        assert!(get_mores <= 6, "cursor never closed");
    }
    assert_eq!(seen, (0..10).collect::<Vec<_>>());

    // A find whose results fit in its first batch closes its cursor at once (id 0).
    assert_eq!(reply_cursor_id(&db).await, 0);

    // getMore on a cursor that does not exist: CursorNotFound (43).
    let err = db
        .run_command(doc! { "getMore": 123_456_789_i64, "collection": "many" })
        .await
        .expect_err("unknown cursor");
    match *err.kind {
        ErrorKind::Command(ref ce) => assert_eq!(ce.code, 43, "{ce:?}"),
        ref other => panic!("expected CursorNotFound, got {other:?}"),
    }
}

/// Runs a find that fits in one batch and returns its cursor id (0 when the server closed it).
async fn reply_cursor_id(db: &mongodb::Database) -> i64 {
    let reply = db
        .run_command(doc! { "find": "many", "batchSize": 100 })
        .await
        .expect("find command");
    reply
        .get_document("cursor")
        .and_then(|c| c.get_i64("id"))
        .expect("cursor id")
}

fn documents(array: &bson::Array) -> Vec<Document> {
    array
        .iter()
        .map(|b| {
            b.as_document()
                .expect("batch entries are documents")
                .clone()
        })
        .collect()
}

#[tokio::test]
async fn restart_persistence() {
    let mut server = TestServer::start_replset();
    {
        let client = server.client().await;
        let coll = client.database("app").collection::<Document>("durable");
        coll.insert_many((0..50).map(|i| doc! { "_id": i, "s": format!("v{i}") }))
            .await
            .expect("insert_many");
        coll.update_one(doc! { "_id": 7 }, doc! { "$set": { "s": "seven" } })
            .await
            .expect("update_one");
        coll.delete_one(doc! { "_id": 8 })
            .await
            .expect("delete_one");
        client.shutdown().await;
    }
    assert_eq!(server.stop(), Some(0), "a SIGTERM shutdown exits 0");
    server.start_again();

    let client = server.client().await;
    let coll = client.database("app").collection::<Document>("durable");
    assert_eq!(coll.count_documents(doc! {}).await.expect("count"), 49);
    assert_eq!(
        coll.find_one(doc! { "_id": 7 }).await.expect("find_one"),
        Some(doc! { "_id": 7, "s": "seven" })
    );
    assert_eq!(
        coll.find_one(doc! { "_id": 8 }).await.expect("find_one"),
        None
    );
    let names = client
        .database("app")
        .list_collection_names()
        .await
        .expect("listCollections");
    assert_eq!(names, vec!["durable".to_string()]);
}

#[tokio::test]
async fn kill9_after_acknowledged_writes_loses_none() {
    let mut server = TestServer::start_replset();
    {
        let client = server.client().await;
        let coll = client.database("app").collection::<Document>("acked");
        for i in 0..200 {
            coll.insert_one(doc! { "_id": i, "payload": "x".repeat(100) })
                .await
                .expect("acknowledged insert");
        }
        server.kill9();
        // The client's connections are dead now; drop it without a graceful shutdown.
    }
    server.start_again();

    let client = server.client().await;
    let coll = client.database("app").collection::<Document>("acked");
    assert_eq!(coll.count_documents(doc! {}).await.expect("count"), 200);
    let docs = collect(
        coll.find(doc! {})
            .sort(doc! { "_id": 1 })
            .projection(doc! { "_id": 1 })
            .await
            .expect("find"),
    )
    .await;
    assert_eq!(ids(&docs), (0..200).collect::<Vec<_>>());
}

#[tokio::test]
async fn stable_api_parameters_are_checked() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let db = client.database("api");
    db.collection::<Document>("c")
        .insert_one(doc! {"_id": 1})
        .await
        .expect("insert");
    let code = |r: Result<Document, mongodb::error::Error>| error_code(&r.expect_err("refused"));
    // Version 1 commands run; others are refused only with apiStrict.
    db.run_command(doc! {"find": "c", "apiVersion": "1", "apiStrict": true})
        .await
        .expect("find is in version 1");
    db.run_command(doc! {"distinct": "c", "key": "_id", "apiVersion": "1"})
        .await
        .expect("not strict");
    let strict = doc! {"apiVersion": "1", "apiStrict": true};
    let mut distinct = doc! {"distinct": "c", "key": "_id"};
    distinct.extend(strict.clone());
    assert_eq!(code(db.run_command(distinct).await), Some(323));
    let mut stats =
        doc! {"aggregate": "c", "pipeline": [{"$collStats": {"count": {}}}], "cursor": {}};
    stats.extend(strict);
    assert_eq!(code(db.run_command(stats).await), Some(323));
    // Only version "1" exists; the flags need a version; the version is a string.
    assert_eq!(
        code(db.run_command(doc! {"ping": 1, "apiVersion": "2"}).await),
        Some(322)
    );
    assert_eq!(
        code(db.run_command(doc! {"ping": 1, "apiStrict": false}).await),
        Some(4886600)
    );
    assert_eq!(
        code(db.run_command(doc! {"ping": 1, "apiVersion": 1}).await),
        Some(14)
    );
    // listCommands says which commands are in version 1.
    let commands = client
        .database("admin")
        .run_command(doc! {"listCommands": 1})
        .await
        .expect("listCommands");
    let commands = commands.get_document("commands").expect("commands");
    let versions = |name: &str| {
        commands
            .get_document(name)
            .and_then(|c| c.get_array("apiVersions"))
            .expect("apiVersions")
            .clone()
    };
    assert_eq!(versions("find"), vec![bson::Bson::String("1".into())]);
    assert!(versions("distinct").is_empty());
}

#[tokio::test]
async fn clustered_collections() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let db = client.database("clu");
    db.run_command(doc! {"create": "c", "clusteredIndex": {"key": {"_id": 1}, "unique": true, "name": "by_id"}})
        .await
        .expect("create clustered");
    let coll = db.collection::<Document>("c");
    coll.insert_many(vec![doc! {"_id": 2}, doc! {"_id": 1}])
        .await
        .expect("insert");
    assert_eq!(
        ids(&collect(coll.find(doc! {}).await.expect("find")).await),
        vec![1, 2]
    );
    // listCollections shows the option and no separate `_id` index; listIndexes shows
    // the clustered index.
    let listed = db
        .run_command(doc! {"listCollections": 1, "filter": {"name": "c"}})
        .await
        .expect("listCollections");
    let entry = first_batch(&listed).remove(0);
    let spec = doc! {"v": 2, "key": {"_id": 1}, "name": "by_id", "unique": true};
    assert_eq!(
        entry.get_document("options").expect("options"),
        &doc! {"clusteredIndex": spec.clone()}
    );
    assert!(!entry.contains_key("idIndex"), "{entry}");
    let indexes = first_batch(
        &db.run_command(doc! {"listIndexes": "c"})
            .await
            .expect("listIndexes"),
    );
    let mut clustered = spec;
    clustered.insert("clustered", true);
    assert_eq!(indexes, vec![clustered]);

    // mongod's validation.
    let code = |r: Result<Document, mongodb::error::Error>| error_code(&r.expect_err("refused"));
    let create = |options: Document| {
        let db = db.clone();
        async move {
            let mut cmd = doc! {"create": "bad"};
            cmd.extend(options);
            db.run_command(cmd).await
        }
    };
    assert_eq!(
        code(create(doc! {"clusteredIndex": {"key": {"_id": 1}, "unique": false}}).await),
        Some(5979700)
    );
    assert_eq!(
        code(create(doc! {"clusteredIndex": {"key": {"a": 1}, "unique": true}}).await),
        Some(197)
    );
    assert_eq!(
        code(create(doc! {"clusteredIndex": true}).await),
        Some(5979703)
    );
    assert_eq!(
        code(create(doc! {"clusteredIndex": {"key": {"_id": 1}}}).await),
        Some(40414)
    );
    assert_eq!(
        code(create(doc! {"expireAfterSeconds": 10}).await),
        Some(72)
    );
    assert_eq!(
        code(create(doc! {"clusteredIndex": {"key": {"_id": 1}, "unique": true}, "expireAfterSeconds": -1}).await),
        Some(72)
    );
    // With a clustered index, `expireAfterSeconds` is kept (the TTL monitor expires
    // documents by their `_id` date: tests/python/test_clustered.py).
    create(doc! {"clusteredIndex": {"key": {"_id": 1}, "unique": true}, "expireAfterSeconds": 10})
        .await
        .expect("a clustered collection with expiry");
}
