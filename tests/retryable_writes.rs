//! Retryable writes, statement by statement, over raw OP_MSG connections against a real
//! `eddy serve` replica set: a command carrying `lsid` + `txnNumber` whose first
//! attempt is cut short by the `onPrimaryTransactionalWrite` failpoint (the connection
//! closes with no reply) is sent again, and only the statements that did not run then
//! run now; the ones that ran are answered from the session record (no duplicate
//! insert, an `$inc` applied once, findAndModify's document as it was). The record is
//! durable: a retry after a `kill -9` and restart is answered the same way. An older
//! `txnNumber` gets 225 TransactionTooOld.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bson::{doc, Bson, Document};
use common::TestServer;

const OP_MSG: i32 = 2013;

fn op_msg(cmd: &Document) -> Vec<u8> {
    let mut body = 0_u32.to_le_bytes().to_vec();
    body.push(0);
    body.extend(cmd.to_vec().expect("encodes"));
    let mut out = Vec::new();
    out.extend((16 + body.len() as i32).to_le_bytes());
    out.extend(1_i32.to_le_bytes());
    out.extend(0_i32.to_le_bytes());
    out.extend(OP_MSG.to_le_bytes());
    out.extend(body);
    out
}

fn connect(server: &TestServer) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", server.port())).expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

/// Sends `cmd` on a new connection: its reply, or `None` when the server closed the
/// connection without one.
fn attempt(server: &TestServer, cmd: &Document) -> Option<Document> {
    let mut s = connect(server);
    s.write_all(&op_msg(cmd)).expect("sent");
    let mut header = [0u8; 16];
    if s.read_exact(&mut header).is_err() {
        return None;
    }
    let len = i32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let mut rest = vec![0u8; len - 16];
    s.read_exact(&mut rest).expect("reply body");
    Some(Document::from_reader(&rest[5..]).expect("reply document"))
}

fn run(server: &TestServer, cmd: Document) -> Document {
    let reply = attempt(server, &cmd).unwrap_or_else(|| panic!("closed on {cmd}"));
    assert_eq!(reply.get_f64("ok").ok(), Some(1.0), "{cmd} -> {reply}");
    reply
}

fn lsid(byte: u8) -> Document {
    doc! {"id": Bson::Binary(bson::Binary {
        subtype: bson::spec::BinarySubtype::Uuid,
        bytes: vec![byte; 16],
    })}
}

/// `cmd` as a retryable write of session `session` with `txnNumber` `txn`.
fn retryable(mut cmd: Document, session: u8, txn: i64) -> Document {
    cmd.insert("lsid", lsid(session));
    cmd.insert("txnNumber", txn);
    cmd.insert("$db", "rw");
    cmd
}

fn fail_point(server: &TestServer, mode: Bson, data: Document) {
    run(
        server,
        doc! {"configureFailPoint": "onPrimaryTransactionalWrite", "mode": mode, "data": data, "$db": "admin"},
    );
}

fn fail_point_off(server: &TestServer) {
    fail_point(server, Bson::String("off".into()), doc! {});
}

fn docs(server: &TestServer, coll: &str) -> Vec<Document> {
    let reply = run(
        server,
        doc! {"find": coll, "filter": {}, "sort": {"_id": 1}, "$db": "rw"},
    );
    reply
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .expect("firstBatch")
        .iter()
        .map(|d| d.as_document().expect("doc").clone())
        .collect()
}

fn int(reply: &Document, field: &str) -> i64 {
    match reply.get(field) {
        Some(Bson::Int32(n)) => i64::from(*n),
        Some(Bson::Int64(n)) => *n,
        other => panic!("{field}: {other:?} in {reply}"),
    }
}

#[tokio::test]
async fn a_retry_runs_only_the_statements_that_did_not_run() {
    let server = TestServer::start_replset();
    run(
        &server,
        doc! {"insert": "c", "documents": [{"_id": 1, "x": 0}, {"_id": 2, "x": 0}], "$db": "rw"},
    );

    // The second statement fails, unwritten, and the connection closes: the first
    // `$inc` ran and is recorded.
    let update = retryable(
        doc! {"update": "c", "updates": [
            {"q": {"_id": 1}, "u": {"$inc": {"x": 1}}},
            {"q": {"_id": 2}, "u": {"$inc": {"x": 1}}},
            {"q": {"_id": 3}, "u": {"$inc": {"x": 1}}, "upsert": true},
        ]},
        1,
        1,
    );
    fail_point(
        &server,
        Bson::Document(doc! {"skip": 1}),
        doc! {"failBeforeCommitExceptionCode": 1},
    );
    assert_eq!(attempt(&server, &update), None, "the failpoint closes");
    fail_point_off(&server);
    assert_eq!(
        docs(&server, "c"),
        vec![doc! {"_id": 1, "x": 1}, doc! {"_id": 2, "x": 0}]
    );
    let reply = run(&server, update.clone());
    assert_eq!((int(&reply, "n"), int(&reply, "nModified")), (3, 2));
    assert_eq!(
        reply.get_array("upserted").expect("upserted"),
        &vec![Bson::Document(doc! {"index": 2, "_id": 3})]
    );
    // Each `$inc` applied once.
    assert_eq!(
        docs(&server, "c"),
        vec![
            doc! {"_id": 1, "x": 1},
            doc! {"_id": 2, "x": 1},
            doc! {"_id": 3, "x": 1}
        ]
    );
    // Once more: every statement is answered from the record, nothing runs.
    let again = run(&server, update);
    assert_eq!((int(&again, "n"), int(&again, "nModified")), (3, 2));
    assert_eq!(docs(&server, "c")[0], doc! {"_id": 1, "x": 1});

    // An insert batch whose third statement fails: the retry inserts only the third,
    // no duplicate key error for the first two.
    let insert = retryable(
        doc! {"insert": "i", "documents": [{"_id": 1}, {"_id": 2}, {"_id": 3}]},
        1,
        2,
    );
    fail_point(
        &server,
        Bson::Document(doc! {"skip": 2}),
        doc! {"failBeforeCommitExceptionCode": 1},
    );
    assert_eq!(attempt(&server, &insert), None);
    fail_point_off(&server);
    assert_eq!(docs(&server, "i").len(), 2);
    let reply = run(&server, insert);
    assert_eq!(int(&reply, "n"), 3);
    assert!(reply.get("writeErrors").is_none(), "{reply}");
    assert_eq!(docs(&server, "i").len(), 3);

    // findAndModify that ran before the connection closed: the retry answers the
    // document it returned, and the `$inc` is not applied again.
    let fam = retryable(
        doc! {"findAndModify": "c", "query": {"_id": 2}, "update": {"$inc": {"x": 10}}, "new": true},
        1,
        3,
    );
    fail_point(&server, Bson::Document(doc! {"times": 1}), doc! {});
    assert_eq!(attempt(&server, &fam), None);
    let reply = run(&server, fam);
    assert_eq!(
        reply.get_document("value").expect("value"),
        &doc! {"_id": 2, "x": 11}
    );
    assert_eq!(docs(&server, "c")[1], doc! {"_id": 2, "x": 11});

    // An older number than the session's newest: 225.
    let old = attempt(
        &server,
        &retryable(doc! {"insert": "i", "documents": [{"_id": 9}]}, 1, 2),
    )
    .expect("a reply");
    assert_eq!(old.get_i32("code").ok(), Some(225), "{old}");
    // Another session has its own numbers.
    run(
        &server,
        retryable(doc! {"insert": "i", "documents": [{"_id": 9}]}, 2, 1),
    );
}

#[tokio::test]
async fn a_retry_after_a_restart_is_answered_from_the_durable_record() {
    let mut server = TestServer::start_replset();
    run(
        &server,
        doc! {"insert": "c", "documents": [{"_id": 1, "x": 0}, {"_id": 2, "x": 0}], "$db": "rw"},
    );
    let update = retryable(
        doc! {"update": "c", "updates": [
            {"q": {"_id": 1}, "u": {"$inc": {"x": 1}}},
            {"q": {"_id": 2}, "u": {"$inc": {"x": 1}}},
        ]},
        7,
        5,
    );
    // The attempt ran both statements, but its reply never arrived.
    fail_point(&server, Bson::Document(doc! {"times": 1}), doc! {});
    assert_eq!(attempt(&server, &update), None);

    server.kill9();
    server.start_again();

    let reply = run(&server, update);
    assert_eq!((int(&reply, "n"), int(&reply, "nModified")), (2, 2));
    assert_eq!(
        docs(&server, "c"),
        vec![doc! {"_id": 1, "x": 1}, doc! {"_id": 2, "x": 1}]
    );
    // The restarted server still knows the session's newest number.
    let old = attempt(
        &server,
        &retryable(doc! {"insert": "c", "documents": [{"_id": 3}]}, 7, 4),
    )
    .expect("a reply");
    assert_eq!(old.get_i32("code").ok(), Some(225), "{old}");
    let mut txn = retryable(doc! {"insert": "c", "documents": [{"_id": 3}]}, 7, 4);
    txn.insert("autocommit", false);
    txn.insert("startTransaction", true);
    let refused = attempt(&server, &txn).expect("a reply");
    assert_eq!(refused.get_i32("code").ok(), Some(225), "{refused}");
    assert_eq!(docs(&server, "c").len(), 2);
}

#[tokio::test]
async fn an_expired_session_takes_its_record_with_it() {
    let server = TestServer::start_with(&[
        "--replSet",
        "rs0",
        "--setParameter",
        "eddySessionTimeoutMillis=300",
    ]);
    let insert = retryable(doc! {"insert": "e", "documents": [{"_id": 1}]}, 3, 5);
    run(&server, insert.clone());
    // While the session lives, a retry is answered from its record.
    let retried = run(&server, insert.clone());
    assert!(retried.get("writeErrors").is_none(), "{retried}");
    // Once it expired and the reaper ran, the record is gone: the same command is a
    // new write (mongod reaps `config.transactions` with the session), and meets the
    // document it inserted.
    std::thread::sleep(Duration::from_millis(1500));
    let again = run(&server, insert);
    let errors = again.get_array("writeErrors").expect("writeErrors");
    assert_eq!(
        errors[0].as_document().and_then(|e| e.get_i32("code").ok()),
        Some(11000),
        "{again}"
    );
}
