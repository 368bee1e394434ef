//! Schema validation through the Rust driver: a collection's `validator` with
//! `validationLevel` / `validationAction`, `bypassDocumentValidation` on every write
//! command, `collMod` of the three options, and mongod's errors for bad ones.

mod common;

use bson::{doc, Document};
use common::{collect, error_code, TestServer};
use mongodb::error::{ErrorKind, WriteFailure};

/// The `errInfo` of a single write error, if the error is one.
fn err_info(e: &mongodb::error::Error) -> Option<Document> {
    match &*e.kind {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.details.clone(),
        _ => None,
    }
}

#[tokio::test]
async fn validators_refuse_invalid_writes_unless_bypassed() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let db = client.database("v");
    db.run_command(doc! {
        "create": "people",
        "validator": {"$jsonSchema": {"required": ["name"], "properties": {"age": {"bsonType": "int", "minimum": 0}}}},
    })
    .await
    .expect("create with a validator");
    let info = collect(
        db.list_collections()
            .filter(doc! {"name": "people"})
            .await
            .expect("listCollections")
            .with_type::<Document>(),
    )
    .await;
    let options = info[0].get_document("options").expect("options");
    assert_eq!(options.get_str("validationLevel").ok(), Some("strict"));
    assert_eq!(options.get_str("validationAction").ok(), Some("error"));
    assert!(options.get_document("validator").is_ok());

    let people = db.collection::<Document>("people");
    people
        .insert_one(doc! {"_id": 1, "name": "ada", "age": 36})
        .await
        .expect("a valid document");
    let e = people
        .insert_one(doc! {"_id": 2, "age": 3})
        .await
        .expect_err("no name");
    assert_eq!(error_code(&e), Some(121));
    assert_eq!(
        err_info(&e).and_then(|i| i.get_i32("failingDocumentId").ok()),
        Some(2)
    );
    people
        .insert_one(doc! {"_id": 2, "age": 3})
        .bypass_document_validation(true)
        .await
        .expect("bypassed");

    // Updates are checked on the new document (strict level).
    let e = people
        .update_one(doc! {"_id": 1}, doc! {"$set": {"age": -1}})
        .await
        .expect_err("negative age");
    assert_eq!(error_code(&e), Some(121));
    people
        .update_one(doc! {"_id": 1}, doc! {"$set": {"age": -1}})
        .bypass_document_validation(true)
        .await
        .expect("bypassed update");
    let e = people
        .find_one_and_update(doc! {"_id": 1}, doc! {"$unset": {"name": ""}})
        .await
        .expect_err("findAndModify removing name");
    assert_eq!(error_code(&e), Some(121));
    // Deletes never validate.
    people
        .delete_one(doc! {"_id": 2})
        .await
        .expect("delete an invalid document");

    // moderate: an already-invalid document may be updated; a valid one must stay valid.
    db.run_command(doc! {"collMod": "people", "validationLevel": "moderate"})
        .await
        .expect("collMod level");
    people
        .insert_one(doc! {"_id": 3, "name": "bob"})
        .await
        .expect("valid");
    people
        .update_one(doc! {"_id": 1}, doc! {"$set": {"age": -2}})
        .await
        .expect("document 1 is already invalid (age -1)");
    let e = people
        .update_one(doc! {"_id": 3}, doc! {"$unset": {"name": ""}})
        .await
        .expect_err("document 3 was valid");
    assert_eq!(error_code(&e), Some(121));

    // warn: writes go through.
    db.run_command(doc! {"collMod": "people", "validationAction": "warn"})
        .await
        .expect("collMod action");
    people
        .insert_one(doc! {"_id": 4})
        .await
        .expect("warn lets it in");
    // off, then a new validator.
    db.run_command(doc! {"collMod": "people", "validator": {"kind": {"$exists": true}}, "validationAction": "error", "validationLevel": "strict"})
        .await
        .expect("collMod validator");
    let e = people
        .insert_one(doc! {"_id": 5, "name": "x"})
        .await
        .expect_err("no kind");
    assert_eq!(error_code(&e), Some(121));
    db.run_command(doc! {"collMod": "people", "validationLevel": "off"})
        .await
        .expect("off");
    people
        .insert_one(doc! {"_id": 5, "name": "x"})
        .await
        .expect("validation off");

    // Bad options.
    let bad = |cmd: Document| {
        let db = db.clone();
        async move { db.run_command(cmd).await.expect_err("refused") }
    };
    assert_eq!(
        error_code(&bad(doc! {"create": "b1", "validationLevel": "sometimes"}).await),
        Some(2)
    );
    assert_eq!(
        error_code(&bad(doc! {"create": "b2", "validator": {"$where": "true"}}).await),
        Some(224)
    );
    assert_eq!(
        error_code(&bad(doc! {"create": "b3", "validator": {"a": {"$bogus": 1}}}).await),
        Some(2)
    );
    assert_eq!(
        error_code(&bad(doc! {"create": "b4", "validator": 1}).await),
        Some(14)
    );
}
