//! Hostile clients against the real server: malformed messages on raw sockets, limits
//! (connections, message size), idle cursors and a change stream nobody reads. After
//! each abuse the server must still serve other clients (a driver ping, insert, find).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bson::{doc, Document};
use common::{cursor_id, TestServer};

const OP_MSG: i32 = 2013;

/// A frame: the 16-byte header (with `len` as declared) followed by `body`.
fn frame(len: i32, op: i32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + body.len());
    out.extend(len.to_le_bytes());
    out.extend(7_i32.to_le_bytes());
    out.extend(0_i32.to_le_bytes());
    out.extend(op.to_le_bytes());
    out.extend(body);
    out
}

/// An OP_MSG with `flags` and the raw `sections`, its length computed.
fn op_msg(flags: u32, sections: &[u8]) -> Vec<u8> {
    let mut body = flags.to_le_bytes().to_vec();
    body.extend(sections);
    frame(16 + body.len() as i32, OP_MSG, &body)
}

/// A kind-0 section holding `cmd`.
fn body_section(cmd: &Document) -> Vec<u8> {
    let mut s = vec![0u8];
    s.extend(cmd.to_vec().expect("encodes"));
    s
}

fn connect(server: &TestServer) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", server.port())).expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

/// What the server did with a request: answered (the reply's body) or closed.
#[derive(Debug)]
enum Answer {
    Reply(Document),
    Closed,
}

fn read_answer(s: &mut TcpStream) -> Answer {
    let mut header = [0u8; 16];
    match s.read_exact(&mut header) {
        Ok(()) => {}
        Err(e)
            if e.kind() == std::io::ErrorKind::WouldBlock
                || e.kind() == std::io::ErrorKind::TimedOut =>
        {
            panic!("the server neither answered nor closed within the timeout")
        }
        Err(_) => return Answer::Closed,
    }
    let len = i32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let mut rest = vec![0u8; len - 16];
    s.read_exact(&mut rest).expect("reply body");
    assert_eq!(&header[12..16], &OP_MSG.to_le_bytes(), "an OP_MSG reply");
    // flags (4), section kind 0 (1), the document.
    Answer::Reply(Document::from_reader(&rest[5..]).expect("reply document"))
}

fn send(server: &TestServer, bytes: &[u8]) -> Answer {
    let mut s = connect(server);
    // The server may close before reading everything (a refused length): ignore EPIPE.
    let _ = s.write_all(bytes);
    read_answer(&mut s)
}

/// Other clients still work: a driver ping, an insert and a find.
async fn assert_alive(server: &TestServer) {
    let client = server.client().await;
    client
        .database("admin")
        .run_command(doc! {"ping": 1})
        .await
        .expect("ping after abuse");
    let coll = client.database("hostile").collection::<Document>("alive");
    let id = bson::oid::ObjectId::new();
    coll.insert_one(doc! {"_id": id}).await.expect("insert");
    assert!(coll
        .find_one(doc! {"_id": id})
        .await
        .expect("find")
        .is_some());
}

fn ping() -> Document {
    doc! {"ping": 1, "$db": "admin"}
}

#[tokio::test]
async fn malformed_messages_close_or_fail_and_the_server_lives() {
    let server = TestServer::start();
    let good = op_msg(0, &body_section(&ping()));
    // Sanity: the well-formed message is answered.
    match send(&server, &good) {
        Answer::Reply(d) => assert_eq!(d.get_f64("ok").ok(), Some(1.0)),
        Answer::Closed => panic!("a good ping was not answered"),
    }

    let big_doc = {
        // A document with `depth` nested levels: {a: {a: ... {}}}.
        let mut d = doc! {};
        for _ in 0..201 {
            d = doc! {"a": d};
        }
        doc! {"ping": 1, "$db": "admin", "deep": d}
    };
    let mut invalid_utf8 = body_section(&doc! {"ping": 1, "$db": "admin", "s": "abc"});
    let at = invalid_utf8
        .windows(3)
        .position(|w| w == b"abc")
        .expect("string bytes");
    invalid_utf8[at] = 0xff;
    let mut truncated = body_section(&ping());
    truncated.truncate(truncated.len() - 6);
    let mut checksum = op_msg(1, &body_section(&ping()));
    checksum.extend([0xde, 0xad, 0xbe, 0xef]);
    let fix = checksum.len() as i32;
    checksum[..4].copy_from_slice(&fix.to_le_bytes());

    // (what, bytes, expected): `None` = the connection is closed (mongod's transport
    // errors and its ConnectionFatalMessageParseError category), `Some(code)` = answered
    // with that error code, and the same connection then still answers a ping.
    let cases: Vec<(&str, Vec<u8>, Option<i32>)> = vec![
        ("length below the header", frame(10, OP_MSG, &[0; 10]), None),
        ("negative length", frame(-1, OP_MSG, &[]), None),
        ("zero length", frame(0, OP_MSG, &[]), None),
        (
            "length over 48 MB",
            frame(48_000_001, OP_MSG, &[0; 64]),
            None,
        ),
        ("unknown opcode", frame(16 + 8, 9999, &[0; 8]), None),
        ("legacy OP_INSERT", frame(16 + 8, 2002, &[0; 8]), None),
        (
            "unknown required flag bit",
            op_msg(1 << 3, &body_section(&ping())),
            None,
        ),
        ("bad checksum", checksum, None),
        (
            "section kind 7",
            op_msg(0, &[7, 5, 0, 0, 0, 0]),
            Some(40432),
        ),
        ("no sections", op_msg(0, &[]), Some(40587)),
        ("truncated BSON", op_msg(0, &truncated), Some(0)),
        ("invalid UTF-8", op_msg(0, &invalid_utf8), Some(22)),
        (
            "201 levels of nesting",
            op_msg(0, &body_section(&big_doc)),
            Some(15),
        ),
    ];
    for (what, bytes, expected) in &cases {
        let mut s = connect(&server);
        let _ = s.write_all(bytes);
        let answer = read_answer(&mut s);
        eprintln!("{what}: {answer:?}");
        match (&answer, expected) {
            (Answer::Closed, None) => {}
            (Answer::Reply(d), Some(code)) => {
                assert_eq!(d.get_f64("ok").ok(), Some(0.0), "{what}: {d}");
                let got = d.get_i32("code").unwrap_or_default();
                assert!(got != 0 && (*code == 0 || got == *code), "{what}: {d}");
                // The frame was delimited correctly, so the connection is still usable.
                let pong = raw_command(&mut s, &ping());
                assert_eq!(pong.get_f64("ok").ok(), Some(1.0), "{what}: {pong}");
            }
            _ => panic!("{what}: expected {expected:?}, got {answer:?}"),
        }
    }
    // Every malformed message left a log line.
    let log = std::fs::read_to_string(server.log_path()).expect("log");
    assert!(
        log.matches("malformed message").count() >= cases.len(),
        "log lines for closed connections:\n{}",
        server.log_tail(40)
    );
    assert_alive(&server).await;
}

#[tokio::test]
async fn oversized_message_is_refused_before_it_is_buffered() {
    let server = TestServer::start();
    // The header alone announces 48 MB + 1: the connection closes without the server
    // waiting for (or allocating) the body.
    let mut s = connect(&server);
    s.write_all(&frame(48_000_001, OP_MSG, &[]))
        .expect("header sent");
    assert!(matches!(read_answer(&mut s), Answer::Closed));

    // A legal but large announced length that then trickles: the server buffers only what
    // arrives. 200 such connections announcing ~47 MB each would need ~9 GB if the server
    // allocated up front; its RSS must stay far below that.
    let pid = server.pid().expect("running");
    let before = rss_kb(pid);
    let mut trickling = Vec::new();
    for _ in 0..200 {
        let mut s = connect(&server);
        s.write_all(&frame(47_000_000, OP_MSG, &[0; 100]))
            .expect("partial frame");
        trickling.push(s);
    }
    std::thread::sleep(Duration::from_millis(500));
    let during = rss_kb(pid);
    assert!(
        during < before + 200 * 1024,
        "RSS grew from {before} kB to {during} kB with 200 partial frames"
    );
    drop(trickling);
    assert_alive(&server).await;
}

#[tokio::test]
async fn many_partial_frames_then_hangups() {
    let server = TestServer::start();
    let good = op_msg(0, &body_section(&ping()));
    for n in 1..good.len() {
        let mut s = connect(&server);
        s.write_all(&good[..n]).expect("partial write");
        // Hang up mid-frame.
    }
    assert_alive(&server).await;
}

#[tokio::test]
async fn a_document_over_16mb_is_refused_with_mongods_error() {
    let server = TestServer::start();
    let overhead = doc! {"_id": 1, "x": ""}.to_vec().expect("encodes").len();
    let max_user = 16 * 1024 * 1024;
    let exact = doc! {"_id": 1, "x": "a".repeat(max_user - overhead)};
    let over = doc! {"_id": 2, "x": "a".repeat(max_user - overhead + 1)};
    assert_eq!(over.to_vec().expect("encodes").len(), max_user + 1);
    // As a document sequence (kind 1), as drivers send inserts.
    let insert = |d: &Document| {
        let mut sections = body_section(&doc! {"insert": "big", "$db": "hostile"});
        let bytes = d.to_vec().expect("encodes");
        let ident = b"documents\0";
        sections.push(1);
        sections.extend(((4 + ident.len() + bytes.len()) as i32).to_le_bytes());
        sections.extend(ident);
        sections.extend(bytes);
        op_msg(0, &sections)
    };
    match send(&server, &insert(&exact)) {
        Answer::Reply(d) => assert_eq!(d.get_i32("n").ok(), Some(1), "{d}"),
        Answer::Closed => panic!("a 16 MB document was refused"),
    }
    match send(&server, &insert(&over)) {
        Answer::Reply(d) => {
            assert_eq!(d.get_i32("n").ok(), Some(0), "{d}");
            let err = d
                .get_array("writeErrors")
                .ok()
                .and_then(|a| a.first())
                .and_then(|e| e.as_document())
                .cloned()
                .unwrap_or_else(|| panic!("no writeErrors: {d}"));
            assert_eq!(err.get_i32("code").ok(), Some(2), "{err}");
            assert_eq!(
                err.get_str("errmsg").ok(),
                Some(
                    format!(
                        "object to insert too large. size in bytes: {}, max size: {max_user}",
                        max_user + 1
                    )
                    .as_str()
                )
            );
        }
        Answer::Closed => panic!("a 16 MB + 1 insert closed the connection"),
    }
    assert_alive(&server).await;
}

/// The resident set size of a process in kB (Linux).
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Runs `cmd` on a raw connection and returns the reply.
fn raw_command(s: &mut TcpStream, cmd: &Document) -> Document {
    s.write_all(&op_msg(0, &body_section(cmd))).expect("sent");
    match read_answer(s) {
        Answer::Reply(d) => d,
        Answer::Closed => panic!("connection closed on {cmd}"),
    }
}

#[tokio::test]
async fn max_incoming_connections_refuses_the_one_too_many() {
    let server = TestServer::start_with(&["--maxConns", "3"]);
    // Wait until the start-up probe connection is gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut a = connect(&server);
    loop {
        let st = raw_command(&mut a, &doc! {"serverStatus": 1, "$db": "admin"});
        if st
            .get_document("connections")
            .and_then(|c| c.get_i32("current"))
            .ok()
            == Some(1)
        {
            break;
        }
        assert!(Instant::now() < deadline, "probe connections linger: {st}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut b = connect(&server);
    raw_command(&mut b, &ping());
    let mut c = connect(&server);
    raw_command(&mut c, &ping());
    // The fourth is accepted by the kernel, then closed by the server unanswered.
    let mut d = connect(&server);
    let _ = d.write_all(&op_msg(0, &body_section(&ping())));
    assert!(matches!(read_answer(&mut d), Answer::Closed));

    let st = raw_command(&mut a, &doc! {"serverStatus": 1, "$db": "admin"});
    let conns = st.get_document("connections").expect("connections");
    assert_eq!(conns.get_i32("current").ok(), Some(3), "{conns}");
    assert_eq!(conns.get_i32("available").ok(), Some(0), "{conns}");
    let created = conns.get_i32("totalCreated").expect("totalCreated");

    // Closing one lets a new one in.
    drop(c);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut e = loop {
        let mut e = connect(&server);
        let _ = e.write_all(&op_msg(0, &body_section(&ping())));
        if let Answer::Reply(r) = read_answer(&mut e) {
            assert_eq!(r.get_f64("ok").ok(), Some(1.0));
            break e;
        }
        assert!(Instant::now() < deadline, "no slot freed after a close");
        std::thread::sleep(Duration::from_millis(20));
    };
    let st = raw_command(&mut e, &doc! {"serverStatus": 1, "$db": "admin"});
    let conns = st.get_document("connections").expect("connections");
    assert_eq!(conns.get_i32("current").ok(), Some(3), "{conns}");
    assert_eq!(conns.get_i32("available").ok(), Some(0), "{conns}");
    assert!(conns.get_i32("totalCreated").expect("totalCreated") > created);
    let log = std::fs::read_to_string(server.log_path()).expect("log");
    assert!(
        log.contains("too many open connections"),
        "{}",
        server.log_tail(20)
    );
    drop((a, b, e));
}

/// `serverStatus.metrics.cursor` through the driver.
async fn cursor_metrics(client: &mongodb::Client) -> Document {
    let st = client
        .database("admin")
        .run_command(doc! {"serverStatus": 1})
        .await
        .expect("serverStatus");
    st.get_document("metrics")
        .and_then(|m| m.get_document("cursor"))
        .cloned()
        .expect("metrics.cursor")
}

#[tokio::test]
async fn idle_cursors_are_reaped_after_cursor_timeout_millis() {
    let server = TestServer::start_with(&["--setParameter", "cursorTimeoutMillis=1000"]);
    let client = server.client().await;
    let db = client.database("reap");
    let docs: Vec<Document> = (0..10).map(|i| doc! {"_id": i}).collect();
    db.collection::<Document>("c")
        .insert_many(docs)
        .await
        .expect("insert");
    let find = db
        .run_command(doc! {"find": "c", "batchSize": 2})
        .await
        .expect("find");
    let stream = db
        .run_command(doc! {"aggregate": "c", "pipeline": [{"$changeStream": {}}], "cursor": {}})
        .await
        .expect("watch");
    // A cursor whose connection closes is kept until it times out, as mongod does
    // (cursors outside a session are not tied to their connection).
    let mut raw = connect(&server);
    let orphan = raw_command(&mut raw, &doc! {"find": "c", "batchSize": 2, "$db": "reap"});
    drop(raw);
    let orphan_id = cursor_id(&orphan);
    let get_more = |id: i64| doc! {"getMore": id, "collection": "c", "batchSize": 1};
    db.run_command(get_more(orphan_id))
        .await
        .expect("a closed connection's cursor lives on until it times out");
    assert!(
        cursor_metrics(&client)
            .await
            .get_document("open")
            .expect("open")
            .get_i64("total")
            .expect("total")
            >= 3
    );

    // Idle for 1 s and reaped within the next half-second pass, with slack for a slow box.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for id in [cursor_id(&find), cursor_id(&stream), orphan_id] {
        let err = db
            .run_command(get_more(id))
            .await
            .expect_err("a reaped cursor");
        assert_eq!(common::error_code(&err), Some(43), "{err}");
        assert!(
            err.to_string()
                .contains(&format!("cursor id {id} not found")),
            "{err}"
        );
    }
    let metrics = cursor_metrics(&client).await;
    assert!(
        metrics.get_i64("timedOut").expect("timedOut") >= 3,
        "{metrics}"
    );
    assert_eq!(
        metrics
            .get_document("open")
            .and_then(|o| o.get_i64("total"))
            .ok(),
        Some(0),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_change_stream_nobody_reads_neither_holds_memory_nor_delays_writers() {
    use futures_util::StreamExt;
    let server = TestServer::start_replset();
    let pid = server.pid().expect("running");
    let client = server.client().await;
    let coll = client.database("slow").collection::<Document>("c");
    let batch = |round: i32| -> Vec<Document> {
        (0..1000)
            .map(|i| doc! {"round": round, "i": i, "pad": "x".repeat(100)})
            .collect()
    };
    // Baseline: 10k inserts with no stream open.
    let rss_start = rss_kb(pid);
    let started = Instant::now();
    for round in 0..10 {
        coll.insert_many(batch(round)).await.expect("insert");
    }
    let alone = started.elapsed();
    let rss_alone = rss_kb(pid);

    // 50 streams opened and never read, one read a document at a time, slowly.
    let mut idle = Vec::new();
    for _ in 0..50 {
        idle.push(coll.watch().await.expect("watch"));
    }
    let mut slow = coll.watch().batch_size(1).await.expect("watch");
    let reader = tokio::spawn(async move {
        let mut seen = 0;
        while seen < 20 {
            if slow.next().await.is_some() {
                seen += 1;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        seen
    });
    let started = Instant::now();
    for round in 10..20 {
        coll.insert_many(batch(round)).await.expect("insert");
    }
    let watched = started.elapsed();
    let rss_watched = rss_kb(pid);
    eprintln!(
        "10k inserts: {alone:?} alone, {watched:?} with 51 streams; RSS {rss_start} kB -> {rss_alone} kB -> {rss_watched} kB"
    );
    // Writers never wait for readers: the same work takes about as long.
    assert!(
        watched < alone * 3 + Duration::from_secs(2),
        "writers slowed by idle streams: {alone:?} -> {watched:?}"
    );
    // The streams hold positions, not copies: memory grows like it did for the first
    // 10k inserts (the shared tail), not per stream (51 x 10k x ~150 B would be ~75 MB).
    let grown_alone = rss_alone.saturating_sub(rss_start);
    let grown = rss_watched.saturating_sub(rss_alone);
    assert!(
        grown < grown_alone * 2 + 32 * 1024,
        "RSS grew {grown} kB with 51 unread streams ({grown_alone} kB without)"
    );
    assert_eq!(reader.await.expect("reader"), 20);
    drop(idle);
    assert_alive(&server).await;
}

#[tokio::test]
async fn an_expired_session_takes_its_cursors_with_it() {
    // mongod's parameter sets what hello reports; Eddy's test-only knob makes the
    // expiry itself take a second instead of minutes.
    let server = TestServer::start_with(&[
        "--setParameter",
        "localLogicalSessionTimeoutMinutes=7",
        "--setParameter",
        "eddySessionTimeoutMillis=1000",
    ]);
    let client = server.client().await;
    let hello = client
        .database("admin")
        .run_command(doc! {"hello": 1})
        .await
        .expect("hello");
    assert_eq!(hello.get_i32("logicalSessionTimeoutMinutes").ok(), Some(7));
    let coll = client.database("sess").collection::<Document>("c");
    let docs: Vec<Document> = (0..10).map(|i| doc! {"_id": i}).collect();
    coll.insert_many(docs).await.expect("insert");

    let mut session = client.start_session().await.expect("session");
    let started = client
        .database("admin")
        .run_command(doc! {"startSession": 1})
        .await
        .expect("startSession");
    assert_eq!(started.get_i32("timeoutMinutes").ok(), Some(7));
    let mut cursor = coll
        .find(doc! {})
        .batch_size(2)
        .session(&mut session)
        .await
        .expect("find in a session");
    assert!(cursor.advance(&mut session).await.expect("first"));
    let open = |m: Document| m.get_document("open").and_then(|o| o.get_i64("total")).ok();
    assert_eq!(open(cursor_metrics(&client).await), Some(1));
    // The session idles past its timeout: the reaper ends it and kills its cursor
    // (the cursor timeout is still mongod's 10 minutes).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(open(cursor_metrics(&client).await), Some(0));
    assert_eq!(
        cursor_metrics(&client).await.get_i64("timedOut").ok(),
        Some(0),
        "killed with the session, not timed out"
    );
    // Drain the in-memory batch; the next getMore finds the cursor gone.
    let mut err = None;
    for _ in 0..3 {
        if let Err(e) = cursor.advance(&mut session).await {
            err = Some(e);
            break;
        }
    }
    let err = err.expect("getMore on a killed cursor fails");
    assert_eq!(common::error_code(&err), Some(43), "{err}");
}

/// The code of an error reply (`ok: 0`).
fn error_code_of(reply: &Document) -> Option<i32> {
    (reply.get("ok").and_then(bson::Bson::as_f64) == Some(0.0))
        .then(|| reply.get_i32("code").ok())
        .flatten()
}

fn binary(bytes: &[u8]) -> bson::Bson {
    bson::Bson::Binary(bson::Binary {
        subtype: bson::spec::BinarySubtype::Generic,
        bytes: bytes.to_vec(),
    })
}

/// Malformed SASL conversations get mongod's errors, leave other connections alone,
/// and never authenticate anyone.
#[tokio::test]
async fn malformed_authentication_fails_cleanly() {
    let server = TestServer::start_with(&["--replSet", "rs0", "--auth"]);
    let mut s = connect(&server);
    let created = raw_command(
        &mut s,
        &doc! {"createUser": "admin", "pwd": "pw", "roles": ["root"], "$db": "admin"},
    );
    assert_eq!(error_code_of(&created), None, "{created}");
    let start = |mechanism: &str, payload: &[u8]| {
        doc! {"saslStart": 1, "mechanism": mechanism, "payload": binary(payload), "$db": "admin"}
    };
    let huge_user = format!("n,,n={},r=abc", "u".repeat(100_000));
    let cases: Vec<(Document, i32)> = vec![
        (start("PLAIN", b"\0admin\0pw"), 334),
        (start("MONGODB-X509", b""), 334),
        (start("SCRAM-SHA-256", b"\xff\xfe\x00"), 17),
        (start("SCRAM-SHA-256", b"garbage"), 17),
        (start("SCRAM-SHA-256", b"n,,r=abc,n=admin"), 17),
        (start("SCRAM-SHA-256", huge_user.as_bytes()), 17),
        (start("SCRAM-SHA-256", b"n,,n=nobody,r=abc"), 18),
        (
            doc! {"saslContinue": 1, "conversationId": 1, "payload": binary(b"c=biws,r=x,p=AAAA"), "$db": "admin"},
            17,
        ),
        (
            doc! {"saslStart": 1, "mechanism": 5, "payload": binary(b""), "$db": "admin"},
            14,
        ),
    ];
    for (cmd, code) in &cases {
        let reply = raw_command(&mut s, cmd);
        assert_eq!(error_code_of(&reply), Some(*code), "{cmd} -> {reply}");
    }
    // A real first step, then someone else's nonce and a garbage proof: 18, 17.
    let first = raw_command(&mut s, &start("SCRAM-SHA-256", b"n,,n=admin,r=clientnonce"));
    assert_eq!(error_code_of(&first), None, "{first}");
    let wrong_nonce = raw_command(
        &mut s,
        &doc! {"saslContinue": 1, "conversationId": 1, "payload": binary(b"c=biws,r=clientnonceFORGED,p=AAAA"), "$db": "admin"},
    );
    assert_eq!(error_code_of(&wrong_nonce), Some(18));
    // None of this authenticated the connection.
    let denied = raw_command(&mut s, &doc! {"find": "c", "$db": "app"});
    assert_eq!(error_code_of(&denied), Some(13));
    let status = raw_command(&mut s, &doc! {"connectionStatus": 1, "$db": "admin"});
    assert_eq!(
        status
            .get_document("authInfo")
            .and_then(|a| a.get_array("authenticatedUsers"))
            .map(|u| u.len())
            .ok(),
        Some(0)
    );
    // Other clients authenticate and work.
    let uri = format!(
        "mongodb://admin:pw@localhost:{}/?directConnection=true&serverSelectionTimeoutMS=10000",
        server.port()
    );
    let client = mongodb::Client::with_uri_str(uri).await.expect("uri");
    client
        .database("app")
        .collection::<Document>("c")
        .insert_one(doc! {"ok": true})
        .await
        .expect("an authenticated client still works");
}
