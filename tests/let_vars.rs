//! The `let` option of find, update, delete and findAndModify (mongod 5.0+): command
//! variables usable as `$$name` in `$expr` and in pipeline-style updates, through the Rust
//! driver's `.let_vars(...)` options.

mod common;

use bson::{doc, Document};
use common::{collect, TestServer};
use mongodb::options::ReturnDocument;

async fn error_code(db: &mongodb::Database, cmd: Document) -> i32 {
    match *db.run_command(cmd).await.expect_err("command fails").kind {
        mongodb::error::ErrorKind::Command(ref e) => e.code,
        ref other => panic!("expected a command error, got {other:?}"),
    }
}

#[tokio::test]
async fn let_in_reads_and_writes() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let db = client.database("app");
    let coll = db.collection::<Document>("letvars");
    coll.insert_many(vec![
        doc! {"_id": 1, "name": "a"},
        doc! {"_id": 2, "name": "b"},
        doc! {"_id": 3, "name": "c"},
    ])
    .await
    .expect("insert");

    // find: $expr sees the variables, including one computed from another.
    let docs = collect(
        coll.find(doc! {"$expr": {"$eq": ["$_id", "$$next"]}})
            .let_vars(doc! {"id": 1, "next": {"$add": ["$$id", 1]}})
            .await
            .expect("find"),
    )
    .await;
    assert_eq!(docs, vec![doc! {"_id": 2, "name": "b"}]);

    // update_one: filter $expr and pipeline update both see the variables.
    let res = coll
        .update_one(
            doc! {"$expr": {"$eq": ["$name", "$$name"]}},
            vec![doc! {"$set": {"x": "$$x"}}],
        )
        .let_vars(doc! {"name": "a", "x": "foo"})
        .await
        .expect("update_one");
    assert_eq!((res.matched_count, res.modified_count), (1, 1));
    let a = coll.find_one(doc! {"_id": 1}).await.expect("find_one");
    assert_eq!(a, Some(doc! {"_id": 1, "name": "a", "x": "foo"}));

    // update_many with a pipeline.
    let res = coll
        .update_many(
            doc! {"$expr": {"$gte": ["$_id", "$$min"]}},
            vec![doc! {"$set": {"y": {"$concat": ["$name", "$$suffix"]}}}],
        )
        .let_vars(doc! {"min": 2, "suffix": "!"})
        .await
        .expect("update_many");
    assert_eq!((res.matched_count, res.modified_count), (2, 2));
    let docs = collect(
        coll.find(doc! {"y": {"$exists": true}})
            .await
            .expect("find"),
    )
    .await;
    assert_eq!(
        docs,
        vec![
            doc! {"_id": 2, "name": "b", "y": "b!"},
            doc! {"_id": 3, "name": "c", "y": "c!"},
        ]
    );

    // find_one_and_update.
    let after = coll
        .find_one_and_update(
            doc! {"$expr": {"$eq": ["$_id", "$$id"]}},
            vec![doc! {"$set": {"z": "$$z"}}],
        )
        .let_vars(doc! {"id": 3, "z": 7})
        .return_document(ReturnDocument::After)
        .await
        .expect("find_one_and_update");
    assert_eq!(after, Some(doc! {"_id": 3, "name": "c", "y": "c!", "z": 7}));

    // delete_one.
    let res = coll
        .delete_one(doc! {"$expr": {"$eq": ["$name", "$$name"]}})
        .let_vars(doc! {"name": "b"})
        .await
        .expect("delete_one");
    assert_eq!(res.deleted_count, 1);
    assert_eq!(coll.count_documents(doc! {}).await.expect("count"), 2);

    // Errors: without `let` the variable is undefined; `let` must be an object; names
    // must start with a lowercase letter.
    assert_eq!(
        error_code(
            &db,
            doc! {"find": "letvars", "filter": {"$expr": {"$eq": ["$_id", "$$id"]}}}
        )
        .await,
        17276
    );
    assert_eq!(
        error_code(&db, doc! {"find": "letvars", "let": 1}).await,
        14
    );
    assert_eq!(
        error_code(
            &db,
            doc! {"update": "letvars", "updates": [{"q": {}, "u": {"$set": {"a": 1}}}], "let": {"Bad": 1}}
        )
        .await,
        16867
    );
    // A statement's undefined variable is a write error of that statement.
    let reply = db
        .run_command(
            doc! {"delete": "letvars", "deletes": [{"q": {"$expr": "$$nope"}, "limit": 1}], "let": {"x": 1}},
        )
        .await
        .expect("delete runs");
    let errors = reply.get_array("writeErrors").expect("writeErrors");
    let first = errors[0].as_document().expect("a write error");
    assert_eq!(first.get_i32("code").ok(), Some(17276));
}
