//! The dispatcher and the streams' interests only ever rule events out: every one of
//! many random streams, driven the way the server drives them (read what is there,
//! wait with the dispatcher, read again when woken or when the wait times out), returns
//! exactly what its pipeline gives when run over the event of every entry in scope.

use std::collections::HashMap;
use std::sync::{mpsc, Arc};

use bson::{doc, Bson, Document, RawDocumentBuf};
use eddy_engine::changes::dispatch::Handoff;
use eddy_engine::changes::{
    event, ChangeStream, Event, EventPipeline, HandedOff, Interest, Passed, PostImage, Scope,
    Shape, StreamSpec,
};
use eddy_engine::{DeleteOp, Engine, EngineOptions, Namespace, Op, OplogEntry, UpdateOp};
use proptest::prelude::*;

fn ns(coll: &str) -> Namespace {
    Namespace::new("db", coll)
}

/// A value of the small domain both documents and `$match`es draw from: numbers of
/// three types that compare equal, a string that looks like a number, a boolean.
fn value() -> impl Strategy<Value = Bson> {
    prop_oneof![
        Just(Bson::Int32(1)),
        Just(Bson::Double(1.0)),
        Just(Bson::Int64(2)),
        Just(Bson::Int32(3)),
        Just(Bson::String("1".into())),
        Just(Bson::Boolean(true)),
    ]
}

fn ids() -> impl Strategy<Value = i32> {
    0..4i32
}

#[derive(Debug, Clone)]
enum Write {
    Insert(&'static str, i32, Bson, Vec<Bson>),
    Set(&'static str, Option<i32>, Bson),
    Replace(&'static str, i32, Bson),
    Delete(&'static str, i32),
    Drop(&'static str),
}

fn coll() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("a"), Just("b")]
}

fn write() -> impl Strategy<Value = Write> {
    prop_oneof![
        4 => (coll(), ids(), value(), prop::collection::vec(value(), 0..3))
            .prop_map(|(c, id, x, tags)| Write::Insert(c, id, x, tags)),
        3 => (coll(), prop::option::of(ids()), value()).prop_map(|(c, id, x)| Write::Set(c, id, x)),
        2 => (coll(), ids(), value()).prop_map(|(c, id, x)| Write::Replace(c, id, x)),
        2 => (coll(), ids()).prop_map(|(c, id)| Write::Delete(c, id)),
        1 => coll().prop_map(Write::Drop),
    ]
}

/// One clause of a `$match`: indexable equalities and sets, and others that are not.
fn clause() -> impl Strategy<Value = Document> {
    prop_oneof![
        prop_oneof![
            Just("insert"),
            Just("update"),
            Just("replace"),
            Just("delete")
        ]
        .prop_map(|op| doc! {"operationType": op}),
        Just(doc! {"operationType": {"$in": ["insert", "update"]}}),
        ids().prop_map(|id| doc! {"documentKey._id": id}),
        (ids(), ids()).prop_map(|(a, b)| doc! {"documentKey._id": {"$in": [a, b]}}),
        value().prop_map(|v| doc! {"fullDocument.x": v}),
        (value(), value()).prop_map(|(a, b)| doc! {"fullDocument.x": {"$in": [a, b]}}),
        value().prop_map(|v| doc! {"fullDocument.tags": v}),
        coll().prop_map(|c| doc! {"ns.coll": c}),
        Just(doc! {"ns.db": "db"}),
        Just(doc! {"fullDocument.x": {"$gte": 2}}),
        Just(doc! {"fullDocument.x": null}),
        ids().prop_map(|id| doc! {"$or": [{"documentKey._id": id}, {"operationType": "delete"}]}),
        Just(doc! {"fullDocumentBeforeChange.x": 1}),
    ]
}

#[derive(Debug, Clone)]
struct StreamCase {
    scope: Scope,
    spec: Document,
    pipeline: Vec<Document>,
}

fn stream_case() -> impl Strategy<Value = StreamCase> {
    let scope = prop_oneof![
        Just(Scope::Collection(ns("a"))),
        Just(Scope::Collection(ns("b"))),
        Just(Scope::Database("db".into())),
        Just(Scope::Cluster),
    ];
    let full_document = prop_oneof![Just("default"), Just("updateLookup"), Just("whenAvailable")];
    let before = prop_oneof![Just("off"), Just("whenAvailable")];
    (
        scope,
        full_document,
        before,
        prop::collection::vec(clause(), 0..4),
        any::<bool>(),
    )
        .prop_map(|(scope, fd, before, clauses, project)| {
            let mut pipeline = Vec::new();
            if !clauses.is_empty() {
                pipeline.push(doc! {"$match": {"$and": clauses}});
            }
            if project {
                pipeline.push(doc! {"$project": {"fullDocumentBeforeChange": 0}});
            }
            StreamCase {
                scope,
                spec: doc! {"fullDocument": fd, "fullDocumentBeforeChange": before},
                pipeline,
            }
        })
}

#[derive(Debug, Clone)]
struct Case {
    streams: Vec<StreamCase>,
    writes: Vec<Write>,
    /// Per write, the streams whose wait times out after it (by index, modulo).
    timeouts: Vec<usize>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(stream_case(), 1..12),
        prop::collection::vec(write(), 1..30),
        prop::collection::vec(0..24usize, 30),
    )
        .prop_map(|(streams, writes, timeouts)| Case {
            streams,
            writes,
            timeouts,
        })
}

fn apply(engine: &Arc<Engine>, w: &Write) {
    // Errors (a duplicate _id, an update of nothing) are part of the game.
    let _ = match w {
        Write::Insert(c, id, x, tags) => engine
            .insert(
                ns(c),
                vec![doc! {"_id": id, "x": x.clone(), "tags": tags.clone()}],
                true,
            )
            .map(|_| ()),
        Write::Set(c, id, x) => engine
            .update(
                ns(c),
                vec![UpdateOp {
                    filter: id.map(|id| doc! {"_id": id}).unwrap_or_default(),
                    update: Bson::Document(doc! {"$set": {"x": x.clone()}}),
                    multi: id.is_none(),
                    ..UpdateOp::default()
                }],
                true,
            )
            .map(|_| ()),
        Write::Replace(c, id, x) => engine
            .update(
                ns(c),
                vec![UpdateOp {
                    filter: doc! {"_id": id},
                    update: Bson::Document(doc! {"x": x.clone()}),
                    ..UpdateOp::default()
                }],
                true,
            )
            .map(|_| ()),
        Write::Delete(c, id) => engine
            .delete(
                ns(c),
                vec![DeleteOp {
                    filter: doc! {"_id": id},
                    just_one: true,
                    ..DeleteOp::default()
                }],
                true,
            )
            .map(|_| ()),
        Write::Drop(c) => engine.drop_collection(ns(c)).map(|_| ()),
    };
}

/// Waits until the hub has published every acknowledged write: a writer is answered
/// right before its entries are published (both after the commit).
fn published(engine: &Engine) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while engine.hub().latest() < engine.last_op_time() {
        assert!(
            std::time::Instant::now() < deadline,
            "entries never published"
        );
        std::thread::yield_now();
    }
}

/// A stream driven as the server drives it: it waits by handing itself to the
/// dispatcher, which gives it back through `back` when an entry wakes it or the wait
/// is cancelled.
struct Driven {
    stream: Option<ChangeStream>,
    handed: Option<HandedOff>,
    back: mpsc::Receiver<(ChangeStream, u64)>,
    send: mpsc::Sender<(ChangeStream, u64)>,
    got: Vec<Document>,
}

/// Gives the stream back with the position through which entries were ruled out,
/// whether woken or cancelled.
struct GiveBack(ChangeStream, mpsc::Sender<(ChangeStream, u64)>);

impl Handoff for GiveBack {
    fn run(self: Box<Self>, through: u64) {
        let _ = self.1.send((self.0, through));
    }
    fn cancel(self: Box<Self>, through: u64) {
        let _ = self.1.send((self.0, through));
    }
}

impl Driven {
    fn new(stream: ChangeStream) -> Driven {
        let (send, back) = mpsc::channel();
        Driven {
            stream: Some(stream),
            handed: None,
            back,
            send,
            got: Vec::new(),
        }
    }

    /// Reads everything available, then waits again (unless invalidated).
    fn read_and_wait(&mut self) {
        let mut stream = self.stream.take().expect("not waiting");
        loop {
            let batch = stream.next_batch(3, 16 << 20).expect("batch");
            let n = batch.events.len();
            for e in &batch.events {
                self.got.push(e.document().expect("decode").clone());
            }
            if batch.invalidated {
                self.stream = Some(stream);
                return;
            }
            if n > 0 {
                continue;
            }
            let send = self.send.clone();
            match stream.hand_off(|s| Box::new(GiveBack(s, send))) {
                Ok(handed) => {
                    self.handed = Some(handed);
                    return;
                }
                Err(back) => stream = back,
            }
        }
    }

    /// The stream back from a wake-up, if one came.
    fn woken(&mut self) -> bool {
        match self.back.try_recv() {
            Ok((stream, through)) => self.resume(stream, through),
            Err(_) => false,
        }
    }

    /// Ends the wait (a timeout): the stream comes back either way.
    fn end(&mut self) {
        if let Some(mut handed) = self.handed.take() {
            handed.cancel();
            let (stream, through) = self.back.recv().expect("the stream comes back");
            self.resume(stream, through);
        }
    }

    fn resume(&mut self, mut stream: ChangeStream, through: u64) -> bool {
        if let Some(handed) = self.handed.take() {
            handed.finished();
        }
        stream.skip_through(through);
        self.stream = Some(stream);
        self.read_and_wait();
        true
    }
}

/// What running the stream's pipeline over the event of every entry in scope gives,
/// `updateLookup` documents taken as they were after the write that logged the entry
/// (when the driven stream, woken at once, looked them up).
fn expected(
    case: &StreamCase,
    entries: &[(Arc<OplogEntry>, usize)],
    states: &[HashMap<(String, String), Document>],
) -> Vec<Document> {
    let spec = StreamSpec::parse(&case.spec).expect("spec");
    let pipeline = EventPipeline::parse(&case.pipeline, None).expect("pipeline");
    let scope_only = Interest::new(case.scope.clone(), &spec, None);
    let shape = Shape {
        expanded: false,
        pre_image: scope_only.before_change != eddy_engine::changes::BeforeChange::Off,
        post_image: scope_only.post_image() == PostImage::Recorded,
    };
    let mut out = Vec::new();
    for (entry, write) in entries {
        let (relevant, invalidates) = scope_only.relevance(entry);
        if !relevant {
            continue;
        }
        if let Some(mut raw) = event::build(entry, shape).expect("build") {
            if scope_only.post_image() == PostImage::LookedUp {
                if let Op::Update { key, .. } = entry.op() {
                    let id =
                        Bson::try_from(key.get("_id").expect("key").expect("_id")).expect("id");
                    let current = states[*write]
                        .get(&(entry.ns().coll.to_owned(), id.to_string()))
                        .map(|d| RawDocumentBuf::try_from(d).expect("encode"));
                    event::append_or_null(&mut raw, "fullDocument", current.as_deref());
                }
            }
            let e = Event::new(raw);
            match pipeline.apply(&e).expect("pipeline") {
                Passed::Unchanged => out.push(e.document().expect("decode").clone()),
                Passed::Changed(d) => out.push(d),
                Passed::Dropped => {}
            }
        }
        if invalidates {
            let e = Event::new(event::invalidate(entry));
            match pipeline.apply(&e).expect("pipeline") {
                Passed::Unchanged => out.push(e.document().expect("decode").clone()),
                Passed::Changed(d) => out.push(d),
                Passed::Dropped => {}
            }
            break;
        }
    }
    out
}

fn check(case: Case) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::open(EngineOptions::new(dir.path())).expect("open");
    engine
        .create_collection(
            ns("a"),
            doc! {"changeStreamPreAndPostImages": {"enabled": true}},
        )
        .expect("create a");
    let start = engine.last_op_time();
    let mut streams: Vec<Driven> = case
        .streams
        .iter()
        .map(|c| {
            let mut d = Driven::new(
                ChangeStream::open(
                    engine.clone(),
                    c.scope.clone(),
                    StreamSpec::parse(&c.spec).expect("spec"),
                    EventPipeline::parse(&c.pipeline, None).expect("pipeline"),
                )
                .expect("open"),
            );
            d.read_and_wait();
            d
        })
        .collect();
    let mut states = Vec::new();
    let mut entries: Vec<(Arc<OplogEntry>, usize)> = Vec::new();
    let mut seen = start;
    for (i, w) in case.writes.iter().enumerate() {
        apply(&engine, w);
        published(&engine);
        let mut state = HashMap::new();
        let reader = engine.reader().expect("reader");
        for c in ["a", "b"] {
            if let Some(meta) = reader.collection(&ns(c)).expect("catalog") {
                for d in reader.scan(&meta).expect("scan") {
                    let d = d.expect("doc");
                    let id = d.get("_id").cloned().unwrap_or(Bson::Null).to_string();
                    state.insert((c.to_owned(), id), d);
                }
            }
        }
        states.push(state);
        for e in engine.read_oplog(seen, usize::MAX).expect("oplog") {
            seen = e.ts;
            entries.push((Arc::new(e.entry.clone()), i));
        }
        let timing_out = case.timeouts[i % case.timeouts.len()];
        for (k, s) in streams.iter_mut().enumerate() {
            if s.handed.is_none() {
                continue;
            }
            if !s.woken() && k == timing_out {
                s.end();
            }
        }
    }
    for (k, s) in streams.iter_mut().enumerate() {
        s.end();
        drop(s.handed.take());
        let want = expected(&case.streams[k], &entries, &states);
        prop_assert_eq!(&s.got, &want, "stream {} {:?}", k, case.streams[k]);
    }
    prop_assert_eq!(engine.hub().waiters(), 0);
    Ok(())
}

proptest! {
    // PROPTEST_CASES=2000 for a longer run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(100),
        ..ProptestConfig::default()
    })]
    #[test]
    fn woken_streams_return_what_their_pipelines_give(c in case()) {
        check(c)?;
    }
}

/// Streams whose `$match` pins values no write has are never woken by those writes.
#[test]
fn streams_that_cannot_match_are_not_woken() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::open(EngineOptions::new(dir.path())).expect("open");
    // Catalog changes wake every stream in scope: the collection exists beforehand.
    engine.create_collection(ns("c"), doc! {}).expect("create");
    let never = |pipeline: Document| {
        Driven::new(
            ChangeStream::open(
                engine.clone(),
                Scope::Collection(ns("c")),
                StreamSpec::parse(&doc! {}).expect("spec"),
                EventPipeline::parse(&[doc! {"$match": pipeline}], None).expect("pipeline"),
            )
            .expect("open"),
        )
    };
    let mut streams = vec![
        never(doc! {"documentKey._id": "never"}),
        never(doc! {"fullDocument.tag": {"$in": ["never", "nor this"]}}),
        never(doc! {"operationType": "delete"}),
        never(doc! {"ns.coll": "other"}),
    ];
    let mut everything = never(doc! {});
    everything.read_and_wait();
    for s in &mut streams {
        s.read_and_wait();
        assert!(s.handed.is_some());
    }
    for i in 0..20 {
        engine
            .insert(ns("c"), vec![doc! {"_id": i, "tag": "t"}], true)
            .expect("insert");
        published(&engine);
        for s in &mut streams {
            assert!(!s.woken(), "woken by insert {i}");
        }
        assert!(everything.woken(), "a stream with no $match is woken");
    }
    assert_eq!(everything.got.len(), 20);
    assert_eq!(engine.hub().waiters(), streams.len() + 1);
    // A stream whose wait ends skips everything ruled out, and reads nothing.
    for s in &mut streams {
        s.end();
        assert!(s.got.is_empty());
        drop(s.handed.take());
    }
    assert_eq!(engine.hub().waiters(), 1);
}

/// An update reaches a stream that looks documents up and matches on a `fullDocument`
/// field, though the entry itself (no recorded post-image) says nothing of that field.
#[test]
fn updates_reach_streams_that_look_documents_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::open(EngineOptions::new(dir.path())).expect("open");
    engine
        .insert(ns("c"), vec![doc! {"_id": 1, "x": 0}], true)
        .expect("insert");
    let mut s = Driven::new(
        ChangeStream::open(
            engine.clone(),
            Scope::Collection(ns("c")),
            StreamSpec::parse(&doc! {"fullDocument": "updateLookup"}).expect("spec"),
            EventPipeline::parse(&[doc! {"$match": {"fullDocument.x": 5}}], None)
                .expect("pipeline"),
        )
        .expect("open"),
    );
    s.read_and_wait();
    engine
        .update(
            ns("c"),
            vec![UpdateOp {
                filter: doc! {"_id": 1},
                update: Bson::Document(doc! {"$set": {"x": 5}}),
                ..UpdateOp::default()
            }],
            true,
        )
        .expect("update");
    published(&engine);
    assert!(s.woken(), "woken by the update");
    assert_eq!(s.got.len(), 1);
    assert_eq!(
        s.got[0].get_document("fullDocument").expect("looked up"),
        &doc! {"_id": 1, "x": 5}
    );
}
