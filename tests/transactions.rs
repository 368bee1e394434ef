//! Multi-document transactions through the Rust `mongodb` driver against a real
//! `eddy serve` replica set: commit makes every write visible at once, abort leaves
//! nothing, two transactions writing one document conflict (112 with
//! TransientTransactionError, which the driver's convenient API retries), change streams
//! see a committed transaction's operations in order with `lsid`/`txnNumber` and
//! nothing of an aborted one, resume in the middle of a large transaction, and the
//! lifetime limit.

mod common;

use std::time::Duration;

use bson::{doc, Document};
use common::{error_code, next_event, TestServer};
use mongodb::change_stream::event::{ChangeStreamEvent, OperationType};
use mongodb::Collection;

const TRANSIENT: &str = "TransientTransactionError";

async fn ids(coll: &Collection<Document>) -> Vec<i32> {
    let mut cursor = coll
        .find(doc! {})
        .sort(doc! {"_id": 1})
        .await
        .expect("find");
    let mut out = Vec::new();
    while cursor.advance().await.expect("next") {
        out.push(
            cursor
                .deserialize_current()
                .expect("doc")
                .get_i32("_id")
                .expect("_id"),
        );
    }
    out
}

#[tokio::test]
async fn commit_shows_every_write_at_once_and_abort_leaves_nothing() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let coll = client.database("txn").collection::<Document>("c");
    coll.insert_one(doc! {"_id": 0, "n": 0})
        .await
        .expect("insert");

    let mut session = client.start_session().await.expect("session");
    session.start_transaction().await.expect("start");
    coll.insert_one(doc! {"_id": 1})
        .session(&mut session)
        .await
        .expect("insert in txn");
    coll.update_one(doc! {"_id": 0}, doc! {"$inc": {"n": 1}})
        .session(&mut session)
        .await
        .expect("update in txn");
    // The transaction reads its own writes; nobody else does.
    let inside = coll
        .count_documents(doc! {})
        .session(&mut session)
        .await
        .expect("count in txn");
    assert_eq!(inside, 2);
    assert_eq!(ids(&coll).await, vec![0]);
    let seen = coll
        .find_one(doc! {"_id": 0})
        .await
        .expect("find")
        .expect("doc 0");
    assert_eq!(seen.get_i32("n").expect("n"), 0);
    session.commit_transaction().await.expect("commit");
    assert_eq!(ids(&coll).await, vec![0, 1]);
    let seen = coll
        .find_one(doc! {"_id": 0})
        .await
        .expect("find")
        .expect("doc");
    assert_eq!(seen.get_i32("n").expect("n"), 1);
    // A retried commit of a committed transaction answers ok.
    session.commit_transaction().await.expect("commit again");

    session.start_transaction().await.expect("start");
    coll.insert_one(doc! {"_id": 2})
        .session(&mut session)
        .await
        .expect("insert in txn");
    coll.delete_one(doc! {"_id": 0})
        .session(&mut session)
        .await
        .expect("delete in txn");
    // Implicit creation of a new collection inside the transaction.
    let other = client.database("txn").collection::<Document>("new");
    other
        .insert_one(doc! {"_id": 9})
        .session(&mut session)
        .await
        .expect("insert into a new collection");
    session.abort_transaction().await.expect("abort");
    assert_eq!(ids(&coll).await, vec![0, 1]);
    assert_eq!(ids(&other).await, Vec::<i32>::new());
    let names = client
        .database("txn")
        .list_collection_names()
        .await
        .expect("list");
    assert!(!names.contains(&"new".to_string()), "{names:?}");
}

#[tokio::test]
async fn refused_inside_a_transaction_as_mongod() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let db = client.database("txn");
    db.collection::<Document>("c")
        .insert_one(doc! {"_id": 0})
        .await
        .expect("insert");
    let mut session = client.start_session().await.expect("session");
    session.start_transaction().await.expect("start");
    // `count` is not allowed in a transaction (263).
    let err = db
        .run_command(doc! {"count": "c"})
        .session(&mut session)
        .await
        .expect_err("count in a transaction");
    assert_eq!(error_code(&err), Some(263), "{err}");
    // The failed statement aborted the transaction.
    let err = db
        .collection::<Document>("c")
        .insert_one(doc! {"_id": 1})
        .session(&mut session)
        .await
        .expect_err("the transaction was aborted");
    assert_eq!(error_code(&err), Some(251), "{err}");
    assert!(err.contains_label(TRANSIENT), "{err}");
}

#[tokio::test]
async fn the_later_writer_conflicts_and_with_transaction_retries() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let coll = client.database("txn").collection::<Document>("c");
    coll.insert_one(doc! {"_id": 1, "n": 0})
        .await
        .expect("insert");

    let mut a = client.start_session().await.expect("session a");
    let mut b = client.start_session().await.expect("session b");
    a.start_transaction().await.expect("start a");
    b.start_transaction().await.expect("start b");
    coll.update_one(doc! {"_id": 1}, doc! {"$inc": {"n": 1}})
        .session(&mut a)
        .await
        .expect("a writes first");
    let err = coll
        .update_one(doc! {"_id": 1}, doc! {"$inc": {"n": 10}})
        .session(&mut b)
        .await
        .expect_err("b conflicts");
    assert_eq!(error_code(&err), Some(112), "{err}");
    assert!(err.contains_label(TRANSIENT), "{err}");
    let _ = b.abort_transaction().await;

    // `b` retries through the convenient API while `a` is still open; `a` commits a
    // little later, and `b`'s retry then goes through.
    let commit_a = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        a.commit_transaction().await.expect("commit a");
    });
    let attempts = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = attempts.clone();
    let coll_b = coll.clone();
    b.start_transaction()
        .and_run2(async move |s| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            coll_b
                .update_one(doc! {"_id": 1}, doc! {"$inc": {"n": 10}})
                .session(s)
                .await?;
            Ok(())
        })
        .await
        .expect("with_transaction succeeds after retrying");
    commit_a.await.expect("a committed");
    assert!(attempts.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    let doc = coll
        .find_one(doc! {"_id": 1})
        .await
        .expect("find")
        .expect("doc");
    assert_eq!(doc.get_i32("n").expect("n"), 11);
}

#[tokio::test]
async fn change_streams_see_a_committed_transaction_and_nothing_of_an_aborted_one() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let coll = client.database("txn").collection::<Document>("c");
    coll.insert_one(doc! {"_id": 0}).await.expect("insert");
    let mut stream = coll.watch().await.expect("watch");

    let mut session = client.start_session().await.expect("session");
    session.start_transaction().await.expect("start");
    coll.insert_one(doc! {"_id": 1})
        .session(&mut session)
        .await
        .expect("insert");
    coll.update_one(doc! {"_id": 0}, doc! {"$set": {"x": 1}})
        .session(&mut session)
        .await
        .expect("update");
    coll.delete_one(doc! {"_id": 1})
        .session(&mut session)
        .await
        .expect("delete");
    // Nothing before the commit.
    assert!(stream.next_if_any().await.expect("getMore").is_none());
    session.commit_transaction().await.expect("commit");

    session.start_transaction().await.expect("start");
    coll.insert_one(doc! {"_id": 100})
        .session(&mut session)
        .await
        .expect("insert");
    session.abort_transaction().await.expect("abort");
    coll.insert_one(doc! {"_id": 2}).await.expect("marker");

    let mut events: Vec<ChangeStreamEvent<Document>> = Vec::new();
    for _ in 0..4 {
        events.push(next_event(&mut stream).await);
    }
    let kinds: Vec<OperationType> = events.iter().map(|e| e.operation_type.clone()).collect();
    assert_eq!(
        kinds,
        vec![
            OperationType::Insert,
            OperationType::Update,
            OperationType::Delete,
            OperationType::Insert
        ]
    );
    let txn = &events[..3];
    let lsid = txn[0].lsid.clone().expect("lsid on a transaction's event");
    for e in txn {
        assert_eq!(e.lsid.as_ref(), Some(&lsid));
        assert_eq!(e.txn_number, Some(1));
        assert_eq!(e.cluster_time, txn[0].cluster_time, "one commit time");
    }
    assert_ne!(txn[0].id, txn[1].id, "each operation has its own token");
    assert_eq!(
        events[3]
            .document_key
            .as_ref()
            .and_then(|k| k.get_i32("_id").ok()),
        Some(2),
        "the aborted insert of _id 100 never shows"
    );
    assert!(events[3].lsid.is_none() && events[3].txn_number.is_none());
}

#[tokio::test]
async fn a_stream_resumes_in_the_middle_of_a_large_transaction() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let coll = client.database("txn").collection::<Document>("big");
    coll.insert_one(doc! {"_id": -1}).await.expect("create");
    let mut stream = coll.watch().await.expect("watch");
    let mut session = client.start_session().await.expect("session");
    session.start_transaction().await.expect("start");
    coll.insert_many((0..1000).map(|i| doc! {"_id": i}))
        .session(&mut session)
        .await
        .expect("1,000 inserts");
    session.commit_transaction().await.expect("commit");

    let mut tokens = Vec::new();
    for i in 0..1000 {
        let e = next_event(&mut stream).await;
        assert_eq!(
            e.document_key.as_ref().and_then(|k| k.get_i32("_id").ok()),
            Some(i)
        );
        tokens.push((e.id.clone(), e.cluster_time));
    }
    assert!(tokens.iter().all(|(_, t)| *t == tokens[0].1));
    let mut resumed = coll
        .watch()
        .resume_after(tokens[499].0.clone())
        .await
        .expect("resume");
    for i in 500..1000 {
        let e = next_event(&mut resumed).await;
        assert_eq!(
            e.document_key.as_ref().and_then(|k| k.get_i32("_id").ok()),
            Some(i)
        );
        assert_eq!(e.txn_number, Some(1));
    }
}

#[tokio::test]
async fn a_transaction_open_past_the_lifetime_limit_is_aborted() {
    let server = TestServer::start_with(&[
        "--replSet",
        "rs0",
        "--setParameter",
        "transactionLifetimeLimitSeconds=1",
    ]);
    let client = server.client().await;
    let coll = client.database("txn").collection::<Document>("c");
    coll.insert_one(doc! {"_id": 0}).await.expect("insert");
    let mut session = client.start_session().await.expect("session");
    session.start_transaction().await.expect("start");
    coll.insert_one(doc! {"_id": 1})
        .session(&mut session)
        .await
        .expect("insert in txn");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let err = session
        .commit_transaction()
        .await
        .expect_err("the reaper aborted it");
    assert_eq!(error_code(&err), Some(251), "{err}");
    assert_eq!(ids(&coll).await, vec![0]);
    // Its claims went with it: another transaction writes the same document.
    session.start_transaction().await.expect("start");
    coll.insert_one(doc! {"_id": 1})
        .session(&mut session)
        .await
        .expect("insert again");
    session.commit_transaction().await.expect("commit");
    assert_eq!(ids(&coll).await, vec![0, 1]);
}

/// kill -9 while transactions commit: after each restart every acknowledged transaction
/// is there whole, and no transaction is there in part. `EDDY_TXN_CRASH_CYCLES` sets the
/// number of cycles (default 10; the check runs 100).
#[tokio::test]
async fn kill9_leaves_acknowledged_transactions_whole_and_no_part_of_any() {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::{Arc, Mutex};

    const OPS: i64 = 3;
    let cycles: u64 = std::env::var("EDDY_TXN_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let mut server = TestServer::start_replset();
    // Short server selection: after the kill the writer fails fast instead of waiting.
    let uri = format!(
        "mongodb://localhost:{}/?directConnection=true&serverSelectionTimeoutMS=1000&retryWrites=false",
        server.port()
    );
    let acked: Arc<Mutex<BTreeSet<i64>>> = Arc::default();
    let mut next_txn = 0i64;
    for cycle in 0..cycles {
        let client = mongodb::Client::with_uri_str(&uri).await.expect("client");
        let coll = client.database("txn").collection::<Document>("pairs");
        let start = next_txn;
        let writer_acked = acked.clone();
        let writer = tokio::spawn(async move {
            let mut k = start;
            loop {
                let Ok(mut session) = client.start_session().await else {
                    return k;
                };
                if session.start_transaction().await.is_err() {
                    return k;
                }
                let docs: Vec<Document> = (0..OPS)
                    .map(|j| doc! {"_id": k * OPS + j, "k": k})
                    .collect();
                if coll.insert_many(docs).session(&mut session).await.is_err() {
                    return k + 1;
                }
                match session.commit_transaction().await {
                    Ok(()) => {
                        writer_acked.lock().expect("acks").insert(k);
                    }
                    Err(_) => return k + 1,
                }
                k += 1;
            }
        });
        // Let some transactions commit, then kill in the middle of the load.
        tokio::time::sleep(Duration::from_millis(150 + (cycle * 37) % 200)).await;
        server.kill9();
        next_txn = tokio::time::timeout(Duration::from_secs(30), writer)
            .await
            .expect("the writer stops after the kill")
            .expect("writer task");
        server.start_again();

        let check = server.client().await;
        let mut cursor = check
            .database("txn")
            .collection::<Document>("pairs")
            .find(doc! {})
            .await
            .expect("find");
        let mut per_txn: BTreeMap<i64, i64> = BTreeMap::new();
        while cursor.advance().await.expect("next") {
            let d = cursor.deserialize_current().expect("doc");
            *per_txn.entry(d.get_i64("k").expect("k")).or_default() += 1;
        }
        for (k, n) in &per_txn {
            assert_eq!(*n, OPS, "cycle {cycle}: transaction {k} is there in part");
        }
        for k in acked.lock().expect("acks").iter() {
            assert!(
                per_txn.contains_key(k),
                "cycle {cycle}: acknowledged transaction {k} is lost"
            );
        }
    }
    assert!(
        !acked.lock().expect("acks").is_empty(),
        "no transaction was acknowledged"
    );
}

#[tokio::test]
async fn causally_consistent_reads_see_the_session_s_writes() {
    let server = TestServer::start_replset();
    let client = server.client().await;
    let db = client.database("causal");
    let coll = db.collection::<Document>("c");
    let mut session = client
        .start_session()
        .causal_consistency(true)
        .await
        .expect("session");
    for i in 0..20 {
        coll.insert_one(doc! {"_id": i})
            .session(&mut session)
            .await
            .expect("insert");
        // The read carries afterClusterTime = the insert's operationTime.
        let found = coll
            .find_one(doc! {"_id": i})
            .session(&mut session)
            .await
            .expect("read after the write");
        assert!(found.is_some(), "read {i} sees the write before it");
    }
    // A time the server has not reached is refused, as mongod refuses it.
    let err = db
        .run_command(doc! {
            "find": "c",
            "readConcern": {"afterClusterTime": bson::Timestamp {time: u32::MAX - 1, increment: 0}},
        })
        .await
        .expect_err("a future afterClusterTime");
    assert_eq!(error_code(&err), Some(72), "{err}");
}
