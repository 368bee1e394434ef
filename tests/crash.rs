//! "Nothing lost": the real `eddy` binary killed with SIGKILL at random moments under load,
//! and stopped with SIGTERM under load.
//!
//! `kill9_cycles_lose_no_acknowledged_write_and_no_event` runs one writer and two watchers
//! (collection and database scope) against a server that it kill -9s and restarts on the same
//! port and dbpath, `EDDY_CRASH_CYCLES` times (default 20; `scripts/crash.sh --cycles N` runs
//! more). The delays come from a seeded generator; the seed is printed and `EDDY_CRASH_SEED`
//! replays it. One cycle in four lasts 1-3 s, past the storage's checkpoint (a second after
//! the writes start, two under load without a pause), so crashes also land during and after
//! one, with the journal holding records on both sides of it.
//!
//! - The writer runs a deterministic sequence of inserts, `$inc` updates and deletes on a few
//!   known `_id`s. Every operation is conditional on the version it expects (`{_id, v}`), so
//!   retrying one whose outcome is unknown (the connection died) is idempotent: an insert that
//!   answers 11000 and an update or delete that matches nothing were applied before the crash.
//!   After each crash it checks, before writing again, that the collection holds exactly what
//!   the acknowledged writes say.
//! - Each watcher records every event and resumes with `resumeAfter` its last event's token
//!   whenever its stream fails (the driver may also resume by itself once, from its cached
//!   token; both must continue exactly after the last event).
//!
//! - A transaction writer runs multi-document transactions (two inserts and an `$inc` of a
//!   counter each) in another database. A transaction whose commit was acknowledged must be
//!   there whole after every restart; one that failed (the server died under it) must be
//!   there whole or not at all, and whichever it is stays so; the counter equals the number
//!   of transactions present.
//!
//! At the end: the collection equals the model of the applied writes; the events match the
//! applied writes one for one, in order; tokens strictly increase with no duplicate and
//! cluster times never go back; both watchers saw the same sequence as a fresh stream read in
//! one go from the start (the oplog's order); and replaying the events on an empty collection
//! reproduces the data.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::{doc, Bson, Document, Timestamp};
use common::TestServer;
use mongodb::change_stream::event::{ChangeStreamEvent, OperationType, ResumeToken};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::{Client, Collection};

const DB: &str = "crash";
/// The transaction writer's database (apart, so the watchers of `DB` see only the writer's).
const TXN_DB: &str = "crashtxn";
const COLL: &str = "c";
/// The `_id`s the writer works on.
const KEYS: u64 = 12;
/// How long the end of the run may wait for the watchers to catch up.
const CATCH_UP: Duration = Duration::from_secs(30);

/// splitmix64: a small deterministic generator, so a failing run can be replayed by seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// The driver URI: no driver-level write retries (the harness retries itself, knowing which
/// outcome is unknown), and quick re-discovery after a restart.
fn uri(server: &TestServer) -> String {
    format!(
        "{}&retryWrites=false&heartbeatFrequencyMS=500",
        server.uri()
    )
}

/// What the writer believes a document is: its version and counter.
#[derive(Debug, Clone, Copy, PartialEq)]
struct State {
    v: i32,
    n: i64,
}

fn state_doc(id: i32, s: State) -> Document {
    doc! {"_id": id, "v": s.v, "n": s.n}
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Insert { id: i32, n: i64 },
    Update { id: i32, from: State, delta: i64 },
    Delete { id: i32, from: State },
}

impl Op {
    fn id(&self) -> i32 {
        match *self {
            Op::Insert { id, .. } | Op::Update { id, .. } | Op::Delete { id, .. } => id,
        }
    }

    /// The document after the operation (`None`: deleted).
    fn after(&self) -> Option<State> {
        match *self {
            Op::Insert { n, .. } => Some(State { v: 0, n }),
            Op::Update { from, delta, .. } => Some(State {
                v: from.v + 1,
                n: from.n + delta,
            }),
            Op::Delete { .. } => None,
        }
    }

    fn kind(&self) -> OperationType {
        match self {
            Op::Insert { .. } => OperationType::Insert,
            Op::Update { .. } => OperationType::Update,
            Op::Delete { .. } => OperationType::Delete,
        }
    }
}

/// The next operation of the deterministic sequence, given the current model.
fn next_op(rng: &mut Rng, model: &BTreeMap<i32, State>) -> Op {
    let id = rng.below(KEYS) as i32;
    match model.get(&id) {
        None => Op::Insert {
            id,
            n: rng.below(100) as i64,
        },
        Some(&from) if rng.below(4) == 0 => Op::Delete { id, from },
        Some(&from) => Op::Update {
            id,
            from,
            delta: 1 + rng.below(9) as i64,
        },
    }
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    matches!(e.kind.as_ref(), ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == 11000)
}

/// Runs `op` once. `Ok(true)`: applied by this attempt; `Ok(false)`: its condition no longer
/// holds, so (the writer being alone) an earlier attempt applied it; `Err`: unknown outcome.
async fn attempt(coll: &Collection<Document>, op: Op) -> Result<bool, mongodb::error::Error> {
    match op {
        Op::Insert { id, n } => match coll.insert_one(state_doc(id, State { v: 0, n })).await {
            Ok(_) => Ok(true),
            Err(e) if is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(e),
        },
        Op::Update { id, from, delta } => {
            let r = coll
                .update_one(
                    doc! {"_id": id, "v": from.v},
                    doc! {"$inc": {"v": 1, "n": delta}},
                )
                .await?;
            Ok(r.modified_count == 1)
        }
        Op::Delete { id, from } => {
            let r = coll.delete_one(doc! {"_id": id, "v": from.v}).await?;
            Ok(r.deleted_count == 1)
        }
    }
}

/// All documents of the collection in `_id` order.
async fn read_all(coll: &Collection<Document>) -> Result<Vec<Document>, mongodb::error::Error> {
    use futures_util::TryStreamExt;
    coll.find(doc! {})
        .sort(doc! {"_id": 1})
        .await?
        .try_collect()
        .await
}

fn model_docs(model: &BTreeMap<i32, State>) -> Vec<Document> {
    model.iter().map(|(&id, &s)| state_doc(id, s)).collect()
}

/// What the writer did.
#[derive(Debug, Default)]
struct WriterLog {
    /// Every applied operation, in the order applied.
    applied: Vec<Op>,
    /// Operations acknowledged on the first attempt.
    acked: u64,
    /// Operations whose first attempt had an unknown outcome (then resolved by retrying).
    unknown: u64,
    /// Of those, how many turned out to have been applied before the crash.
    applied_before_crash: u64,
    /// Post-crash checks of the whole collection against the acknowledged writes.
    checks: u64,
    model: BTreeMap<i32, State>,
}

async fn writer(uri: String, seed: u64, stop: Arc<AtomicBool>, acks: Arc<AtomicU64>) -> WriterLog {
    let client = Client::with_uri_str(&uri).await.expect("writer client");
    let coll = client.database(DB).collection::<Document>(COLL);
    let mut rng = Rng(seed ^ 0x5752_4954_4552);
    let mut log = WriterLog::default();
    // The marker the test inserted before starting the writer.
    log.model.insert(-1, State { v: 0, n: 0 });
    while !stop.load(Ordering::Relaxed) {
        let op = next_op(&mut rng, &log.model);
        let first = attempt(&coll, op).await;
        let applied_now = match first {
            Ok(true) => {
                log.acked += 1;
                acks.fetch_add(1, Ordering::Relaxed);
                true
            }
            Ok(false) => panic!(
                "{op:?} found its document changed although this writer is alone: an acknowledged write was lost"
            ),
            Err(_) => {
                // The server died under it: retry until the outcome is known.
                log.unknown += 1;
                let outcome = loop {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if let Ok(applied) = attempt(&coll, op).await {
                        break applied;
                    }
                };
                if !outcome {
                    log.applied_before_crash += 1;
                }
                true
            }
        };
        if applied_now {
            match op.after() {
                Some(s) => log.model.insert(op.id(), s),
                None => log.model.remove(&op.id()),
            };
            log.applied.push(op);
        }
        if first.is_err() {
            // Before writing again: the collection holds exactly the applied writes.
            let docs = loop {
                match read_all(&coll).await {
                    Ok(docs) => break docs,
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            };
            assert_eq!(
                docs,
                model_docs(&log.model),
                "after a restart the collection differs from the acknowledged writes (last op {op:?})"
            );
            log.checks += 1;
        }
    }
    log
}

/// What the transaction writer did.
#[derive(Debug, Default)]
struct TxnLog {
    /// Transactions whose commit was acknowledged, or found whole after a crash.
    committed: std::collections::BTreeSet<u64>,
    /// Transactions that failed and were found absent after the restart.
    absent: std::collections::BTreeSet<u64>,
    /// Of `committed`, how many had an unknown outcome (resolved as applied).
    resolved_committed: u64,
    /// Checks of the whole collection after a failure.
    checks: u64,
}

/// One transaction: two documents of group `i` and the counter's `$inc`.
async fn run_txn(
    client: &Client,
    coll: &Collection<Document>,
    i: u64,
) -> Result<(), mongodb::error::Error> {
    let mut session = client.start_session().await?;
    session.start_transaction().await?;
    let g = i as i64;
    coll.insert_one(doc! {"_id": format!("{i}-a"), "g": g})
        .session(&mut session)
        .await?;
    coll.insert_one(doc! {"_id": format!("{i}-b"), "g": g})
        .session(&mut session)
        .await?;
    coll.update_one(doc! {"_id": "count"}, doc! {"$inc": {"n": 1_i64}})
        .upsert(true)
        .session(&mut session)
        .await?;
    session.commit_transaction().await
}

/// Checks the transaction collection: every group present is whole and is `committed`
/// or `pending`; every committed one is present; the counter counts the present groups.
/// Returns whether `pending` is present.
fn check_txns(docs: &[Document], log: &TxnLog, pending: Option<u64>) -> bool {
    let mut groups: BTreeMap<i64, u32> = BTreeMap::new();
    let mut count = None;
    for d in docs {
        if d.get_str("_id").ok() == Some("count") {
            count = Some(d.get_i64("n").expect("counter n"));
        } else {
            *groups.entry(d.get_i64("g").expect("g")).or_default() += 1;
        }
    }
    for (g, n) in &groups {
        assert_eq!(
            *n, 2,
            "transaction {g} is there in part: {n} of its 2 documents"
        );
        let g = *g as u64;
        assert!(
            log.committed.contains(&g) || pending == Some(g),
            "transaction {g} is there although it was never acknowledged (absent: {})",
            log.absent.contains(&g)
        );
    }
    for g in &log.committed {
        assert!(
            groups.contains_key(&(*g as i64)),
            "acknowledged transaction {g} was lost"
        );
    }
    assert_eq!(
        count.unwrap_or(0),
        groups.len() as i64,
        "the counter's $inc and the transactions' inserts disagree"
    );
    pending.is_some_and(|p| groups.contains_key(&(p as i64)))
}

async fn txn_writer(uri: String, stop: Arc<AtomicBool>) -> TxnLog {
    let client = Client::with_uri_str(&uri).await.expect("txn writer client");
    let coll = client.database(TXN_DB).collection::<Document>(COLL);
    let mut log = TxnLog::default();
    let mut i = 0_u64;
    while !stop.load(Ordering::Relaxed) {
        match run_txn(&client, &coll, i).await {
            Ok(()) => {
                log.committed.insert(i);
            }
            Err(_) => {
                // Unknown outcome: once the server answers again, the transaction is
                // there whole or not at all, and nothing acknowledged is missing.
                let docs = loop {
                    match read_all(&coll).await {
                        Ok(docs) => break docs,
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                };
                if check_txns(&docs, &log, Some(i)) {
                    log.committed.insert(i);
                    log.resolved_committed += 1;
                } else {
                    log.absent.insert(i);
                }
                log.checks += 1;
            }
        }
        i += 1;
    }
    log
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Scope {
    Collection,
    Database,
}

/// One recorded event.
#[derive(Debug, Clone)]
struct Event {
    token: String,
    cluster_time: Timestamp,
    kind: OperationType,
    id: Bson,
    full_document: Option<Document>,
    updated: Option<Document>,
    removed: Vec<String>,
}

fn token_data(t: &ResumeToken) -> String {
    bson::serialize_to_document(t)
        .expect("a resume token is a document")
        .get_str("_data")
        .expect("_data is a string")
        .to_owned()
}

fn record(e: ChangeStreamEvent<Document>) -> Event {
    let ns = e.ns.as_ref().expect("ns");
    assert_eq!(
        (ns.db.as_str(), ns.coll.as_deref()),
        (DB, Some(COLL)),
        "an event of another namespace"
    );
    let (updated, removed) = match e.update_description {
        Some(d) => (Some(d.updated_fields), d.removed_fields),
        None => (None, Vec::new()),
    };
    Event {
        token: token_data(&e.id),
        cluster_time: e.cluster_time.expect("clusterTime"),
        kind: e.operation_type,
        id: e
            .document_key
            .and_then(|k| k.get("_id").cloned())
            .expect("documentKey._id"),
        full_document: e.full_document,
        updated,
        removed,
    }
}

#[derive(Debug, Default)]
struct WatchLog {
    events: Vec<Event>,
    /// Streams opened: the first one, then each reopen with `resumeAfter`.
    opens: u64,
}

async fn open_stream(
    client: &Client,
    scope: Scope,
    start: Timestamp,
    last: Option<&ResumeToken>,
) -> mongodb::error::Result<mongodb::change_stream::ChangeStream<ChangeStreamEvent<Document>>> {
    let db = client.database(DB);
    let max_await = Duration::from_millis(200);
    match (scope, last) {
        (Scope::Collection, Some(t)) => {
            db.collection::<Document>(COLL)
                .watch()
                .max_await_time(max_await)
                .resume_after(t.clone())
                .await
        }
        (Scope::Collection, None) => {
            db.collection::<Document>(COLL)
                .watch()
                .max_await_time(max_await)
                .start_at_operation_time(start)
                .await
        }
        (Scope::Database, Some(t)) => {
            db.watch()
                .max_await_time(max_await)
                .resume_after(t.clone())
                .await
        }
        (Scope::Database, None) => {
            db.watch()
                .max_await_time(max_await)
                .start_at_operation_time(start)
                .await
        }
    }
}

/// Records every event after `start` until `stop` is set and `target` events were seen
/// (or `CATCH_UP` passed after `stop`), reopening with `resumeAfter` its last event's token
/// after every failure and, at random, in between.
async fn watcher(
    uri: String,
    scope: Scope,
    start: Timestamp,
    seed: u64,
    stop: Arc<AtomicBool>,
    target: Arc<AtomicUsize>,
) -> WatchLog {
    let mut rng = Rng(seed);
    let client = Client::with_uri_str(&uri).await.expect("watcher client");
    let mut log = WatchLog::default();
    let mut last: Option<ResumeToken> = None;
    let mut stopping_since: Option<Instant> = None;
    let done = |log: &WatchLog, stopping_since: &mut Option<Instant>| {
        if !stop.load(Ordering::Acquire) {
            return false;
        }
        let since = *stopping_since.get_or_insert_with(Instant::now);
        log.events.len() >= target.load(Ordering::Acquire) || since.elapsed() > CATCH_UP
    };
    'open: while !done(&log, &mut stopping_since) {
        let mut stream = match open_stream(&client, scope, start, last.as_ref()).await {
            Ok(s) => s,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        log.opens += 1;
        while !done(&log, &mut stopping_since) {
            match stream.next_if_any().await {
                Ok(Some(e)) => {
                    last = Some(e.id.clone());
                    log.events.push(record(e));
                    // Now and then drop the stream and resume it by hand, under load too (after
                    // a crash the driver often resumes by itself, from its cached token).
                    if rng.below(150) == 0 {
                        continue 'open;
                    }
                }
                Ok(None) => {}
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue 'open;
                }
            }
        }
    }
    log
}

/// Applies events to an empty collection.
fn replay(events: &[Event]) -> Vec<Document> {
    let mut data: BTreeMap<String, Document> = BTreeMap::new();
    // Keyed by the `_id`'s canonical text; the writer's keys are all the same type.
    let key = |id: &Bson| format!("{id:?}");
    for e in events {
        match e.kind {
            OperationType::Insert => {
                let doc = e
                    .full_document
                    .clone()
                    .expect("insert carries fullDocument");
                data.insert(key(&e.id), doc);
            }
            OperationType::Update => {
                let doc = data
                    .get_mut(&key(&e.id))
                    .unwrap_or_else(|| panic!("update of a missing document {:?}", e.id));
                for (k, v) in e.updated.clone().expect("updateDescription") {
                    doc.insert(k, v);
                }
                for k in &e.removed {
                    doc.remove(k);
                }
            }
            OperationType::Delete => {
                assert!(
                    data.remove(&key(&e.id)).is_some(),
                    "delete of a missing document {:?}",
                    e.id
                );
            }
            ref other => panic!("unexpected event {other:?}"),
        }
    }
    data.into_values().collect()
}

fn sort_by_id(mut docs: Vec<Document>) -> Vec<Document> {
    docs.sort_by_key(|d| format!("{:?}", d.get("_id")));
    docs
}

fn check_order(name: &str, events: &[Event]) {
    for w in events.windows(2) {
        assert!(
            w[0].token < w[1].token,
            "{name}: tokens not strictly increasing (a duplicate or reordering): {} then {}",
            w[0].token,
            w[1].token
        );
        assert!(
            (w[0].cluster_time.time, w[0].cluster_time.increment)
                <= (w[1].cluster_time.time, w[1].cluster_time.increment),
            "{name}: clusterTime went back: {:?} then {:?}",
            w[0].cluster_time,
            w[1].cluster_time
        );
    }
}

fn check_same(name: &str, got: &[Event], oplog: &[Event]) {
    let got_tokens: Vec<&str> = got.iter().map(|e| e.token.as_str()).collect();
    let want: Vec<&str> = oplog.iter().map(|e| e.token.as_str()).collect();
    if got_tokens != want {
        let first = got_tokens
            .iter()
            .zip(&want)
            .position(|(a, b)| a != b)
            .unwrap_or(got_tokens.len().min(want.len()));
        panic!(
            "{name}: {} events, the oplog has {}; first difference at #{first}: {:?} vs {:?}",
            got_tokens.len(),
            want.len(),
            got_tokens.get(first),
            want.get(first)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_cycles_lose_no_acknowledged_write_and_no_event() {
    let cycles = env_u64("EDDY_CRASH_CYCLES").unwrap_or(20);
    let seed = env_u64("EDDY_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    println!("crash harness: {cycles} cycles, EDDY_CRASH_SEED={seed}");
    let started = Instant::now();
    let mut rng = Rng(seed);

    let mut server = TestServer::start_replset();
    let uri = uri(&server);
    let client = Client::with_uri_str(&uri).await.expect("client");
    let coll = client.database(DB).collection::<Document>(COLL);
    // The marker's operationTime is where the watchers (and the final oplog read) start.
    let mut session = client.start_session().await.expect("session");
    coll.insert_one(doc! {"_id": -1, "v": 0, "n": 0i64})
        .session(&mut session)
        .await
        .expect("marker insert");
    let start = session.operation_time().expect("operationTime");

    let stop_writer = Arc::new(AtomicBool::new(false));
    let stop_watchers = Arc::new(AtomicBool::new(false));
    let target = Arc::new(AtomicUsize::new(usize::MAX));
    let acks = Arc::new(AtomicU64::new(0));
    let watchers: Vec<_> = [Scope::Collection, Scope::Database]
        .into_iter()
        .map(|scope| {
            tokio::spawn(watcher(
                uri.clone(),
                scope,
                start,
                seed ^ scope as u64,
                stop_watchers.clone(),
                target.clone(),
            ))
        })
        .collect();
    let writer = tokio::spawn(writer(uri.clone(), seed, stop_writer.clone(), acks.clone()));
    let txn_writer = tokio::spawn(txn_writer(uri.clone(), stop_writer.clone()));

    for cycle in 0..cycles {
        // Let the writer get going again after the last restart, then kill at a random moment.
        let before = acks.load(Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(20);
        while acks.load(Ordering::Relaxed) == before {
            assert!(
                Instant::now() < deadline,
                "cycle {cycle}: no write acknowledged within 20 s of the restart"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // One cycle in four runs past a checkpoint (a second or two after the first write
        // since the start-up), so that crashes also meet a checkpoint's commit, its owed
        // fsync, and journal records on both sides of it.
        let delay = if rng.below(4) == 0 {
            Duration::from_millis(1_000 + rng.below(2_000))
        } else {
            Duration::from_millis(100 + rng.below(900))
        };
        tokio::time::sleep(delay).await;
        tokio::task::block_in_place(|| {
            server.kill9();
            server.start_again();
        });
    }
    // A last stretch of uninterrupted load, then stop the writer.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop_writer.store(true, Ordering::Relaxed);
    let log = writer.await.expect("writer task");
    let txn_log = txn_writer.await.expect("transaction writer task");
    // One event per applied write, plus the marker's.
    target.store(log.applied.len() + 1, Ordering::Release);
    stop_watchers.store(true, Ordering::Release);
    let mut logs = Vec::new();
    for w in watchers {
        logs.push(w.await.expect("watcher task"));
    }
    let (coll_log, db_log) = (&logs[0], &logs[1]);

    // 1. Every acknowledged (and every resolved) write is there, and nothing else.
    let final_docs = read_all(&coll).await.expect("final read");
    let mut model = log.model.clone();
    model.insert(-1, State { v: 0, n: 0 });
    assert_eq!(
        final_docs,
        model_docs(&model),
        "final data != acknowledged writes"
    );

    // 2. The oplog's order: a fresh stream from the start, read in one go.
    let oplog = {
        let mut s = open_stream(&client, Scope::Collection, start, None)
            .await
            .expect("fresh stream");
        let mut events = Vec::new();
        let deadline = Instant::now() + CATCH_UP;
        while events.len() < log.applied.len() + 1 && Instant::now() < deadline {
            if let Some(e) = s.next_if_any().await.expect("fresh stream getMore") {
                events.push(record(e));
            }
        }
        events
    };
    check_order("oplog", &oplog);

    // 3. The oplog holds exactly the applied writes, in order.
    let expected: Vec<(OperationType, Bson)> =
        std::iter::once((OperationType::Insert, Bson::Int32(-1)))
            .chain(
                log.applied
                    .iter()
                    .map(|op| (op.kind(), Bson::Int32(op.id()))),
            )
            .collect();
    let got: Vec<(OperationType, Bson)> = oplog
        .iter()
        .map(|e| (e.kind.clone(), e.id.clone()))
        .collect();
    assert_eq!(got.len(), expected.len(), "events vs applied writes");
    assert_eq!(got, expected, "events differ from the applied writes");

    // 4. The resumed watchers: no gap, no duplicate, no reordering.
    check_order("collection watcher", &coll_log.events);
    check_order("database watcher", &db_log.events);
    check_same("collection watcher", &coll_log.events, &oplog);
    check_same("database watcher", &db_log.events, &oplog);

    // 5. Replaying the events from nothing reproduces the data.
    assert_eq!(
        sort_by_id(replay(&coll_log.events)),
        sort_by_id(final_docs.clone()),
        "replayed events != data"
    );

    // 6. The transactions: every acknowledged one whole, nothing of the others.
    let txn_docs = read_all(&client.database(TXN_DB).collection::<Document>(COLL))
        .await
        .expect("transactions read");
    check_txns(&txn_docs, &txn_log, None);
    assert!(
        !txn_log.committed.is_empty(),
        "no transaction committed during the run"
    );

    let verified = coll_log.events.len() + db_log.events.len() + oplog.len();
    println!(
        "crash harness: {cycles} kill -9 cycles in {:.1?} (seed {seed}): {} writes acknowledged, \
         {} with an unknown outcome resolved by retrying ({} had been applied before the crash), \
         {} post-restart checks; {} events verified ({} per stream; the watchers resumed by hand {} + {} times); \
         {} transactions committed ({} of them found whole after an unknown outcome), {} failed and left nothing, {} transaction checks",
        started.elapsed(),
        log.acked,
        log.unknown,
        log.applied_before_crash,
        log.checks,
        verified,
        oplog.len(),
        coll_log.opens - 1,
        db_log.opens - 1,
        txn_log.committed.len(),
        txn_log.resolved_committed,
        txn_log.absent.len(),
        txn_log.checks,
    );
}

/// SIGTERM under write load: the server exits 0 within the timeout, every acknowledged write
/// survives, and the restart is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_keeps_every_acknowledged_write() {
    let mut server = TestServer::start_replset();
    let uri = uri(&server);
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..4i64)
        .map(|w| {
            let uri = uri.clone();
            let stop = stop.clone();
            let acks = acks.clone();
            tokio::spawn(async move {
                let client = Client::with_uri_str(&uri).await.expect("client");
                let coll = client.database(DB).collection::<Document>(COLL);
                let mut acked = Vec::new();
                let mut in_flight = None;
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let id = w * 1_000_000 + i;
                    match coll.insert_one(doc! {"_id": id, "w": w}).await {
                        Ok(_) => {
                            acked.push(id);
                            acks.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            in_flight = Some(id);
                            break;
                        }
                    }
                }
                (acked, in_flight)
            })
        })
        .collect();
    while acks.load(Ordering::Relaxed) < 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let t = Instant::now();
    let code = tokio::task::block_in_place(|| server.stop());
    let took = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    assert_eq!(code, Some(0), "eddy's exit code after SIGTERM");
    assert!(took < Duration::from_secs(10), "SIGTERM took {took:?}");
    assert!(
        server.log_tail(20).contains("shutdown complete"),
        "no clean shutdown in the log:\n{}",
        server.log_tail(20)
    );

    let mut acked = Vec::new();
    let mut in_flight = Vec::new();
    for w in writers {
        let (a, f) = w.await.expect("writer task");
        acked.extend(a);
        in_flight.extend(f);
    }
    tokio::task::block_in_place(|| server.start_again());
    let client = Client::with_uri_str(&uri).await.expect("client");
    let coll = client.database(DB).collection::<Document>(COLL);
    let ids: Vec<i64> = read_all(&coll)
        .await
        .expect("read after restart")
        .iter()
        .map(|d| d.get_i64("_id").expect("_id"))
        .collect();
    let present: std::collections::BTreeSet<i64> = ids.iter().copied().collect();
    let lost: Vec<_> = acked.iter().filter(|id| !present.contains(id)).collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    let unexplained: Vec<_> = present
        .iter()
        .filter(|id| !acked.contains(id) && !in_flight.contains(id))
        .collect();
    assert!(
        unexplained.is_empty(),
        "unexpected documents: {unexplained:?}"
    );
    // The restarted server takes writes.
    coll.insert_one(doc! {"_id": -1i64})
        .await
        .expect("a write after the restart");
    println!(
        "sigterm: exit 0 after {took:?}; {} acknowledged writes survived, {} in flight",
        acked.len(),
        in_flight.len()
    );
}
