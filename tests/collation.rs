//! Collations end to end through the Rust driver: find, count, distinct, sort,
//! aggregate, update, delete and findAndModify compare strings as ICU does for the
//! locale and strength asked for, and an index on the field does not change results.

mod common;

use bson::{doc, Document};
use common::{collect, error_code, first_batch, ids, TestServer};
use mongodb::options::{Collation, CollationStrength};

fn case_insensitive() -> Collation {
    Collation::builder()
        .locale("en_US")
        .strength(CollationStrength::Secondary)
        .build()
}

#[tokio::test]
async fn queries_writes_and_sorts_follow_the_collation() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let coll = client.database("c").collection::<Document>("words");
    coll.insert_many(vec![
        doc! {"_id": 1, "w": "ping"},
        doc! {"_id": 2, "w": "pong"},
        doc! {"_id": 3, "w": "PING"},
        doc! {"_id": 4, "w": "b"},
        doc! {"_id": 5, "w": "A"},
        doc! {"_id": 6, "w": "café"},
    ])
    .await
    .expect("insert");
    // An index on `w` orders by bytes; it must not be used for collated queries.
    coll.create_index(mongodb::IndexModel::builder().keys(doc! {"w": 1}).build())
        .await
        .expect("index");

    let found = collect(
        coll.find(doc! {"w": "PING"})
            .collation(case_insensitive())
            .sort(doc! {"_id": 1})
            .await
            .expect("find"),
    )
    .await;
    assert_eq!(ids(&found), vec![1, 3]);
    // Without a collation: bytes.
    let plain = collect(coll.find(doc! {"w": "PING"}).await.expect("find")).await;
    assert_eq!(ids(&plain), vec![3]);
    // Secondary strength keeps accents apart; primary does not.
    let cafe = coll
        .count_documents(doc! {"w": "CAFE"})
        .collation(case_insensitive())
        .await
        .expect("count");
    assert_eq!(cafe, 0);
    let primary = Collation::builder()
        .locale("fr")
        .strength(CollationStrength::Primary)
        .build();
    let cafe = coll
        .count_documents(doc! {"w": "CAFE"})
        .collation(primary)
        .await
        .expect("count");
    assert_eq!(cafe, 1);
    let ranged = collect(
        coll.find(doc! {"w": {"$gte": "a", "$lt": "C"}})
            .collation(case_insensitive())
            .sort(doc! {"_id": 1})
            .await
            .expect("range"),
    )
    .await;
    assert_eq!(ids(&ranged), vec![4, 5]);
    let in_set = collect(
        coll.find(doc! {"w": {"$in": ["PONG", "B"]}})
            .collation(case_insensitive())
            .sort(doc! {"_id": 1})
            .await
            .expect("$in"),
    )
    .await;
    assert_eq!(ids(&in_set), vec![2, 4]);

    // Sorting: alphabetical under en_US, bytes without.
    let sorted = collect(
        coll.find(doc! {})
            .sort(doc! {"w": 1, "_id": 1})
            .collation(Collation::builder().locale("en_US").build())
            .await
            .expect("sort"),
    )
    .await;
    assert_eq!(ids(&sorted), vec![5, 4, 6, 1, 3, 2]);
    let by_bytes = collect(
        coll.find(doc! {})
            .sort(doc! {"w": 1, "_id": 1})
            .await
            .expect("sort"),
    )
    .await;
    assert_eq!(ids(&by_bytes), vec![5, 3, 4, 6, 1, 2]);
    // The index on `w` could serve the sort and stop after the limit, in byte order;
    // under a collation the order is the collation's, with or without a limit.
    let en = || Collation::builder().locale("en_US").build();
    let top = collect(
        coll.find(doc! {})
            .sort(doc! {"w": 1})
            .limit(2)
            .collation(en())
            .await
            .expect("sort with limit"),
    )
    .await;
    assert_eq!(ids(&top), vec![5, 4]);
    let top = collect(
        coll.aggregate(vec![doc! {"$sort": {"w": 1}}, doc! {"$limit": 2}])
            .collation(en())
            .await
            .expect("aggregate sort with limit"),
    )
    .await;
    assert_eq!(ids(&top), vec![5, 4]);
    let explained = client
        .database("c")
        .run_command(doc! {
            "explain": {"find": "words", "filter": {"w": "ping"}, "collation": {"locale": "en", "strength": 2}},
            "verbosity": "queryPlanner",
        })
        .await
        .expect("explain");
    let winning = explained
        .get_document("queryPlanner")
        .and_then(|p| p.get_document("winningPlan"))
        .expect("winningPlan");
    assert_eq!(winning.get_str("stage").ok(), Some("COLLSCAN"), "{winning}");

    let distinct = coll
        .distinct("w", doc! {})
        .collation(case_insensitive())
        .await
        .expect("distinct");
    assert_eq!(distinct.len(), 5, "{distinct:?}");

    let agg = collect(
        coll.aggregate(vec![
            doc! {"$match": {"w": "ping"}},
            doc! {"$sort": {"_id": -1}},
        ])
        .collation(case_insensitive())
        .await
        .expect("aggregate"),
    )
    .await;
    assert_eq!(ids(&agg), vec![3, 1]);

    let updated = coll
        .update_many(doc! {"w": "Ping"}, doc! {"$set": {"seen": true}})
        .collation(case_insensitive())
        .await
        .expect("update");
    assert_eq!(updated.modified_count, 2);
    let modified = coll
        .find_one_and_update(doc! {"w": "PONG"}, doc! {"$set": {"seen": true}})
        .collation(case_insensitive())
        .await
        .expect("findAndModify");
    assert_eq!(modified.map(|d| d.get_i32("_id").ok()), Some(Some(2)));
    let deleted = coll
        .delete_many(doc! {"w": "PING"})
        .collation(case_insensitive())
        .await
        .expect("delete");
    assert_eq!(deleted.deleted_count, 2);

    // Invalid collations get mongod's errors.
    let db = client.database("c");
    let bad = |c: Document| {
        let db = db.clone();
        async move {
            db.run_command(doc! {"find": "words", "filter": {}, "collation": c})
                .await
                .expect_err("invalid collation")
        }
    };
    assert_eq!(error_code(&bad(doc! {"strength": 2}).await), Some(40414));
    assert_eq!(
        error_code(&bad(doc! {"locale": "en", "strength": 9}).await),
        Some(2)
    );
    assert_eq!(
        error_code(&bad(doc! {"locale": "en", "bogus": true}).await),
        Some(40415)
    );

    // An empty collation document is no collation (byte order), as in mongod.
    let batch = |c: Option<Document>| {
        let db = db.clone();
        async move {
            let mut cmd = doc! {"find": "words", "filter": {"w": {"$gt": "B"}}, "sort": {"_id": 1}};
            if let Some(c) = c {
                cmd.insert("collation", c);
            }
            first_batch(&db.run_command(cmd).await.expect("find"))
        }
    };
    let empty = batch(Some(doc! {})).await;
    assert!(!empty.is_empty());
    assert_eq!(empty, batch(None).await);
    assert_ne!(
        empty,
        batch(Some(doc! {"locale": "en", "strength": 2})).await
    );
    db.run_command(doc! {"create": "plain", "collation": {}})
        .await
        .expect("create with an empty collation");
}
