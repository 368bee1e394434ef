//! Views (MongoDB 7.0's non-materialized views) through the Rust `mongodb` driver: create,
//! read through them with find/aggregate/count/distinct, listCollections, the errors for
//! writes and DDL on a view, drop, and the change events a view's create reports.

mod common;

use std::time::Duration;

use bson::{doc, Document};
use common::{collect, error_code, ids, TestServer};
use mongodb::options::CreateCollectionOptions;

#[tokio::test]
async fn views_read_through_their_pipeline_and_refuse_writes() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let db = client.database("views");
    let src = db.collection::<Document>("src");
    src.insert_many((1..=6).map(|i| doc! {"_id": i, "n": i, "odd": i % 2 == 1, "secret": "x"}))
        .await
        .expect("insert");

    // `odd` hides `secret`; `big_odd` is a view of a view.
    db.create_collection("odd")
        .view_on("src".to_owned())
        .pipeline(vec![
            doc! {"$match": {"odd": true}},
            doc! {"$project": {"secret": 0}},
        ])
        .await
        .expect("create view");
    db.run_command(
        doc! {"create": "big_odd", "viewOn": "odd", "pipeline": [{"$match": {"n": {"$gt": 1}}}]},
    )
    .await
    .expect("create view of a view");
    // The source need not exist yet.
    db.run_command(doc! {"create": "later", "viewOn": "not_yet"})
        .await
        .expect("create view of a missing collection");

    let odd = db.collection::<Document>("odd");
    let all = collect(odd.find(doc! {}).await.expect("find")).await;
    assert_eq!(ids(&all), vec![1, 3, 5]);
    assert!(all.iter().all(|d| !d.contains_key("secret")));
    // filter, sort, skip, limit and projection apply after the view's pipeline.
    let page = collect(
        odd.find(doc! {"n": {"$gte": 1}})
            .sort(doc! {"n": -1})
            .skip(1)
            .limit(1)
            .projection(doc! {"n": 1, "_id": 0})
            .await
            .expect("find"),
    )
    .await;
    assert_eq!(page, vec![doc! {"n": 3}]);
    let big = collect(
        db.collection::<Document>("big_odd")
            .find(doc! {})
            .await
            .expect("find"),
    )
    .await;
    assert_eq!(ids(&big), vec![3, 5]);

    // aggregate: the view's pipeline runs first.
    let sum = collect(
        odd.aggregate(vec![
            doc! {"$group": {"_id": null, "total": {"$sum": "$n"}}},
        ])
        .await
        .expect("aggregate"),
    )
    .await;
    assert_eq!(sum, vec![doc! {"_id": null, "total": 9}]);
    // $lookup from a view reads it through its pipeline.
    let joined = collect(
        src.aggregate(vec![
            doc! {"$match": {"_id": 1}},
            doc! {"$lookup": {"from": "big_odd", "pipeline": [], "as": "j"}},
            doc! {"$project": {"count": {"$size": "$j"}}},
        ])
        .await
        .expect("aggregate with $lookup"),
    )
    .await;
    assert_eq!(joined, vec![doc! {"_id": 1, "count": 2}]);

    // count and distinct.
    assert_eq!(odd.count_documents(doc! {}).await.expect("count"), 3);
    let n = db
        .run_command(doc! {"count": "odd"})
        .await
        .expect("count command");
    assert_eq!(n.get_i32("n").ok(), Some(3));
    let n = db
        .run_command(doc! {"count": "odd", "query": {"n": {"$gt": 2}}})
        .await
        .expect("count command");
    assert_eq!(n.get_i32("n").ok(), Some(2));
    assert_eq!(odd.estimated_document_count().await.expect("estimate"), 3);
    let values = odd
        .distinct("n", doc! {"n": {"$lt": 5}})
        .await
        .expect("distinct");
    assert_eq!(values, vec![bson::Bson::Int32(1), bson::Bson::Int32(3)]);

    // listCollections.
    let views = collect(
        db.list_collections()
            .filter(doc! {"type": "view"})
            .await
            .expect("listCollections")
            .with_type::<Document>(),
    )
    .await;
    let names: Vec<&str> = views
        .iter()
        .map(|d| d.get_str("name").expect("name"))
        .collect();
    assert_eq!(names, vec!["big_odd", "later", "odd"]);
    let entry = views.iter().find(|d| d.get_str("name").ok() == Some("odd"));
    let entry = entry.expect("odd listed");
    assert_eq!(
        entry,
        &doc! {
            "name": "odd",
            "type": "view",
            "options": {"viewOn": "src", "pipeline": [{"$match": {"odd": true}}, {"$project": {"secret": 0}}]},
            "info": {"readOnly": true},
        }
    );
    let mut names = db.list_collection_names().await.expect("names");
    names.sort();
    assert_eq!(names, vec!["big_odd", "later", "odd", "src"]);

    // Writes and index DDL on a view: 166 CommandNotSupportedOnView.
    let e = odd.insert_one(doc! {"_id": 9}).await.expect_err("insert");
    assert_eq!(error_code(&e), Some(166), "{e:?}");
    let e = odd
        .update_one(doc! {}, doc! {"$set": {"a": 1}})
        .await
        .expect_err("update");
    assert_eq!(error_code(&e), Some(166), "{e:?}");
    let e = odd.delete_many(doc! {}).await.expect_err("delete");
    assert_eq!(error_code(&e), Some(166), "{e:?}");
    let e = odd
        .find_one_and_update(doc! {}, doc! {"$set": {"a": 1}})
        .await
        .expect_err("findAndModify");
    assert_eq!(error_code(&e), Some(166), "{e:?}");
    let e = odd
        .create_index(mongodb::IndexModel::builder().keys(doc! {"a": 1}).build())
        .await
        .expect_err("createIndexes");
    assert_eq!(error_code(&e), Some(166), "{e:?}");
    let e = odd.drop_index("a_1").await.expect_err("dropIndexes");
    assert_eq!(error_code(&e), Some(166), "{e:?}");
    let e = odd.watch().await.expect_err("$changeStream on a view");
    assert_eq!(error_code(&e), Some(166), "{e:?}");
    assert!(format!("{e:?}").contains("Namespace views.odd is a view, not a collection"));

    // Creating over an existing name, and views that may not be.
    let e = db
        .run_command(doc! {"create": "odd", "viewOn": "src"})
        .await
        .expect_err("exists");
    assert_eq!(error_code(&e), Some(48));
    let e = db.create_collection("odd").await.expect_err("exists");
    assert_eq!(error_code(&e), Some(48));
    let e = db
        .run_command(doc! {"create": "w", "viewOn": "src", "pipeline": [{"$out": "x"}]})
        .await
        .expect_err("$out in a view");
    assert_eq!(error_code(&e), Some(167));
    let e = db
        .run_command(doc! {"create": "w", "viewOn": "src", "pipeline": [{"$bogus": 1}]})
        .await
        .expect_err("bad stage");
    assert_eq!(error_code(&e), Some(40324));

    // collMod changes a view.
    db.run_command(doc! {"collMod": "odd", "pipeline": [{"$match": {"odd": false}}]})
        .await
        .expect("collMod");
    let even = collect(odd.find(doc! {}).await.expect("find")).await;
    assert_eq!(ids(&even), vec![2, 4, 6]);

    // drop removes a view (and only it); dropDatabase removes the rest.
    odd.drop().await.expect("drop view");
    assert!(collect(odd.find(doc! {}).await.expect("find"))
        .await
        .is_empty());
    assert_eq!(src.count_documents(doc! {}).await.expect("count"), 6);
    db.drop().await.expect("dropDatabase");
    assert!(db.list_collection_names().await.expect("names").is_empty());
}

#[tokio::test]
async fn a_views_create_is_a_change_event_with_show_expanded_events() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let db = client.database("viewevents");
    let mut stream = db
        .watch()
        .show_expanded_events(true)
        .await
        .expect("watch")
        .with_type::<Document>();
    let options = CreateCollectionOptions::builder()
        .view_on("testName".to_owned())
        .pipeline(vec![doc! {"$match": {"a": 1}}])
        .build();
    db.create_collection("foo")
        .with_options(options)
        .await
        .expect("create view");
    db.collection::<Document>("foo")
        .drop()
        .await
        .expect("drop view");

    let mut events = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while events.len() < 2 {
            if let Some(e) = stream.next_if_any().await.expect("getMore") {
                events.push(e);
            }
        }
    })
    .await
    .expect("two events within 10 s");
    let create = &events[0];
    assert_eq!(create.get_str("operationType").ok(), Some("create"));
    assert_eq!(
        create.get_document("ns").ok(),
        Some(&doc! {"db": "viewevents", "coll": "foo"})
    );
    assert_eq!(
        create.get_document("operationDescription").ok(),
        Some(&doc! {"viewOn": "testName", "pipeline": [{"$match": {"a": 1}}]})
    );
    assert!(!create.contains_key("collectionUUID"));
    assert_eq!(events[1].get_str("operationType").ok(), Some("drop"));
}
