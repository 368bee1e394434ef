//! The engine through its public API: writes, reads, indexes, the oplog and change
//! streams, on a real store in a temporary directory.

use std::sync::Arc;

use bson::{doc, Bson, Document, Timestamp};
use eddy_codes::ErrorCode;
use eddy_engine::changes::{ChangeStream, EventPipeline, ResumeToken, Scope, StreamSpec};
use eddy_engine::write::IndexSelector;
use eddy_engine::{DeleteOp, Engine, EngineOptions, FindAndModify, Namespace, UpdateOp};

/// A batch with its events decoded.
#[derive(Debug)]
struct Read {
    events: Vec<Document>,
    invalidated: bool,
    post_batch_resume_token: Document,
}

fn read(
    s: &mut ChangeStream,
    max_events: usize,
    max_bytes: usize,
) -> Result<Read, eddy_codes::MongoError> {
    let b = s.next_batch(max_events, max_bytes)?;
    Ok(Read {
        events: b
            .events
            .iter()
            .map(|e| e.document().cloned())
            .collect::<Result<_, _>>()?,
        invalidated: b.invalidated,
        post_batch_resume_token: b.post_batch_resume_token.to_document(),
    })
}

fn open(dir: &tempfile::TempDir) -> Arc<Engine> {
    Engine::open(EngineOptions::new(dir.path())).expect("open engine")
}

fn ns(coll: &str) -> Namespace {
    Namespace::new("db", coll)
}

fn all(engine: &Engine, coll: &str) -> Vec<Document> {
    let r = engine.reader().expect("reader");
    match r.collection(&ns(coll)).expect("catalog") {
        Some(meta) => r
            .scan(&meta)
            .expect("scan")
            .map(|d| d.expect("doc"))
            .collect(),
        None => Vec::new(),
    }
}

fn stream(engine: &Arc<Engine>, scope: Scope, spec: Document) -> ChangeStream {
    ChangeStream::open(
        engine.clone(),
        scope,
        StreamSpec::parse(&spec).expect("spec"),
        EventPipeline::default(),
    )
    .expect("open stream")
}

fn op_types(events: &[Document]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e.get_str("operationType").expect("operationType"))
        .collect()
}

#[test]
fn insert_find_and_duplicate_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(&dir);
    let out = engine
        .insert(
            ns("c"),
            vec![
                doc! {"_id": 1, "a": 1},
                doc! {"_id": 2, "a": 2},
                doc! {"_id": 1},
            ],
            true,
        )
        .expect("insert");
    assert_eq!(out.n, 2);
    assert_eq!(out.errors.len(), 1);
    let (index, err) = &out.errors[0];
    assert_eq!(*index, 2);
    assert_eq!(err.code, ErrorCode::DuplicateKey.code());
    let extra = err.extra.clone().expect("keyPattern and keyValue");
    assert_eq!(
        extra.get_document("keyPattern").expect("keyPattern"),
        &doc! {"_id": 1}
    );
    assert_eq!(
        extra.get_document("keyValue").expect("keyValue"),
        &doc! {"_id": 1}
    );

    // Unordered: the failure does not stop later documents.
    let out = engine
        .insert(ns("c"), vec![doc! {"_id": 2}, doc! {"_id": 3}], false)
        .expect("insert");
    assert_eq!((out.n, out.errors.len()), (1, 1));

    // _id is added first when missing.
    engine
        .insert(ns("c"), vec![doc! {"x": 1}], true)
        .expect("insert");
    let docs = all(&engine, "c");
    assert_eq!(docs.len(), 4);
    let generated = docs
        .iter()
        .find(|d| d.contains_key("x"))
        .expect("generated");
    assert_eq!(generated.keys().next().map(String::as_str), Some("_id"));
    assert!(matches!(generated.get("_id"), Some(Bson::ObjectId(_))));
}

#[test]
fn numbers_of_different_types_are_one_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(&dir);
    engine
        .insert(ns("c"), vec![doc! {"_id": 1}], true)
        .expect("insert");
    let out = engine
        .insert(ns("c"), vec![doc! {"_id": 1.0}, doc! {"_id": 1_i64}], false)
        .expect("insert");
    assert_eq!(out.errors.len(), 2);
}

#[test]
fn updates_upserts_and_deletes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(&dir);
    engine
        .insert(
            ns("c"),
            (0..5).map(|i| doc! {"_id": i, "n": i}).collect(),
            true,
        )
        .expect("insert");
    let out = engine
        .update(
            ns("c"),
            vec![UpdateOp {
                filter: doc! {"n": {"$gte": 3}},
                update: Bson::Document(doc! {"$inc": {"n": 10}}),
                multi: true,
                upsert: false,
                array_filters: None,
                let_vars: Vec::new(),
                ..Default::default()
            }],
            true,
        )
        .expect("update");
    assert_eq!((out.n, out.n_modified), (2, 2));
    let out = engine
        .update(
            ns("c"),
            vec![UpdateOp {
                filter: doc! {"_id": 99},
                update: Bson::Document(doc! {"$set": {"n": 1}}),
                multi: false,
                upsert: true,
                array_filters: None,
                let_vars: Vec::new(),
                ..Default::default()
            }],
            true,
        )
        .expect("upsert");
    assert_eq!(out.upserted, vec![(0, Bson::Int32(99))]);
    let out = engine
        .delete(
            ns("c"),
            vec![DeleteOp {
                filter: doc! {"n": {"$lt": 2}},
                just_one: false,
                let_vars: Vec::new(),
                ..Default::default()
            }],
            true,
        )
        .expect("delete");
    assert_eq!(out.n, 3);
    let ids: Vec<_> = all(&engine, "c")
        .iter()
        .map(|d| d.get("_id").cloned())
        .collect();
    assert_eq!(ids.len(), 3);

    // Changing _id is refused.
    let out = engine
        .update(
            ns("c"),
            vec![UpdateOp {
                filter: doc! {"_id": 2},
                update: Bson::Document(doc! {"_id": 5, "x": 1}),
                multi: false,
                upsert: false,
                array_filters: None,
                let_vars: Vec::new(),
                ..Default::default()
            }],
            true,
        )
        .expect("update");
    assert_eq!(out.errors[0].1.code, ErrorCode::ImmutableField.code());
}

#[test]
fn find_and_modify_returns_before_or_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(&dir);
    engine
        .insert(
            ns("c"),
            vec![doc! {"_id": 1, "n": 1}, doc! {"_id": 2, "n": 2}],
            true,
        )
        .expect("insert");
    let out = engine
        .find_and_modify(
            ns("c"),
            FindAndModify {
                query: doc! {},
                sort: Some(doc! {"n": -1}),
                update: Some(Bson::Document(doc! {"$inc": {"n": 1}})),
                return_new: true,
                ..Default::default()
            },
        )
        .expect("fam");
    assert_eq!(out.value, Some(doc! {"_id": 2, "n": 3}));
    let out = engine
        .find_and_modify(
            ns("c"),
            FindAndModify {
                query: doc! {"_id": 1},
                remove: true,
                ..Default::default()
            },
        )
        .expect("remove");
    assert_eq!(out.value, Some(doc! {"_id": 1, "n": 1}));
}

#[test]
fn unique_indexes_are_enforced_and_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(&dir);
    engine
        .insert(
            ns("c"),
            vec![doc! {"_id": 1, "email": "a"}, doc! {"_id": 2, "email": "a"}],
            true,
        )
        .expect("insert");
    let err = engine
        .create_indexes(ns("c"), vec![doc! {"key": {"email": 1}, "unique": true}])
        .expect_err("existing duplicates");
    assert_eq!(err.code, ErrorCode::DuplicateKey.code());
    engine
        .delete(
            ns("c"),
            vec![DeleteOp {
                filter: doc! {"_id": 2},
                just_one: true,
                let_vars: Vec::new(),
                ..Default::default()
            }],
            true,
        )
        .expect("delete");
    let (before, after, created) = engine
        .create_indexes(ns("c"), vec![doc! {"key": {"email": 1}, "unique": true}])
        .expect("create index");
    assert_eq!((before, after, created), (1, 2, false));
    let out = engine
        .insert(ns("c"), vec![doc! {"_id": 3, "email": "a"}], true)
        .expect("insert");
    let err = &out.errors[0].1;
    assert_eq!(err.code, ErrorCode::DuplicateKey.code());
    assert!(
        err.message
            .contains("index: email_1 dup key: { email: \"a\" }"),
        "{}",
        err.message
    );

    let r = engine.reader().expect("reader");
    let meta = r.collection(&ns("c")).expect("catalog").expect("exists");
    let filter_doc = doc! {"email": "a"};
    let filter = eddy_query::filter::Filter::parse(&filter_doc).expect("filter");
    let plan = eddy_engine::plan::plan(&meta, &eddy_engine::plan::Query::new(&filter_doc, &filter))
        .expect("plan");
    assert!(
        matches!(&plan.access, eddy_engine::plan::Access::IndexScan(s) if s.name == "email_1"),
        "{plan:?}"
    );
    let found = r.find(&meta, &doc! {"email": "a"}, None).expect("find");
    assert_eq!(found.len(), 1);

    let was = engine
        .drop_indexes(ns("c"), IndexSelector::Names(vec!["email_1".into()]))
        .expect("drop");
    assert_eq!(was, 2);
    let err = engine
        .drop_indexes(ns("c"), IndexSelector::Names(vec!["_id_".into()]))
        .expect_err("cannot drop _id_");
    assert_eq!(err.code, ErrorCode::InvalidOptions.code());
}

#[test]
fn a_query_stops_at_its_deadline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(&dir);
    engine
        .insert(ns("c"), (0..1000).map(|i| doc! {"_id": i}).collect(), true)
        .expect("insert");
    let r = engine.reader().expect("reader");
    let meta = r.collection(&ns("c")).expect("catalog").expect("exists");
    let filter_doc = doc! {"_id": {"$gte": 0}};
    let filter = eddy_query::filter::Filter::parse(&filter_doc).expect("filter");
    let mut q = eddy_engine::plan::Query::new(&filter_doc, &filter);
    let now = std::time::Instant::now();
    q.deadline = Some(eddy_codes::Deadline(
        now + std::time::Duration::from_secs(600),
    ));
    assert_eq!(r.query(&meta, &q, None).expect("in time").docs.len(), 1000);
    q.deadline = Some(eddy_codes::Deadline(now));
    let err = r.query(&meta, &q, None).expect_err("past its deadline");
    assert_eq!(err.code, ErrorCode::MaxTimeMSExpired.code());
}

#[test]
fn catalog_operations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(&dir);
    engine
        .create_collection(ns("a"), Document::new())
        .expect("create");
    let err = engine
        .create_collection(ns("a"), Document::new())
        .expect_err("exists");
    assert_eq!(err.code, ErrorCode::NamespaceExists.code());
    engine
        .insert(ns("a"), vec![doc! {"_id": 1}], true)
        .expect("insert");
    engine
        .rename_collection(ns("a"), ns("b"), false)
        .expect("rename");
    assert_eq!(all(&engine, "b"), vec![doc! {"_id": 1}]);
    let err = engine
        .rename_collection(ns("a"), ns("c"), false)
        .expect_err("gone");
    assert_eq!(err.code, ErrorCode::NamespaceNotFound.code());
    assert_eq!(engine.drop_collection(ns("b")).expect("drop"), Some(1));
    assert_eq!(engine.drop_collection(ns("b")).expect("drop"), None);
    let err = engine
        .insert(ns("system.x"), vec![doc! {}], true)
        .expect_err("system");
    assert_eq!(err.code, ErrorCode::InvalidNamespace.code());
}

#[test]
fn restart_keeps_acknowledged_writes_and_the_clock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let last = {
        let engine = open(&dir);
        engine
            .insert(ns("c"), (0..100).map(|i| doc! {"_id": i}).collect(), true)
            .expect("insert");
        let last = engine.last_op_time();
        engine.close();
        last
    };
    let engine = open(&dir);
    assert_eq!(all(&engine, "c").len(), 100);
    assert_eq!(engine.last_op_time(), last);
    engine
        .insert(ns("c"), vec![doc! {"_id": 100}], true)
        .expect("insert");
    assert!(engine.last_op_time() > last);
}

#[test]
fn tutorial_events_in_order_then_invalidate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(&dir);
    let mut s = stream(&engine, Scope::Collection(ns("collection")), doc! {});
    engine
        .insert(
            ns("collection"),
            vec![doc! {"_id": 1, "hello": "world"}],
            true,
        )
        .expect("insert");
    engine
        .update(
            ns("collection"),
            vec![UpdateOp {
                filter: doc! {"_id": 1},
                update: Bson::Document(doc! {"$set": {"hello": "mars"}}),
                multi: false,
                upsert: false,
                array_filters: None,
                let_vars: Vec::new(),
                ..Default::default()
            }],
            true,
        )
        .expect("update");
    engine
        .update(
            ns("collection"),
            vec![UpdateOp {
                filter: doc! {"_id": 1},
                update: Bson::Document(doc! {"bye": "world"}),
                multi: false,
                upsert: false,
                array_filters: None,
                let_vars: Vec::new(),
                ..Default::default()
            }],
            true,
        )
        .expect("replace");
    engine
        .delete(
            ns("collection"),
            vec![DeleteOp {
                filter: doc! {"_id": 1},
                just_one: true,
                let_vars: Vec::new(),
                ..Default::default()
            }],
            true,
        )
        .expect("delete");
    engine.drop_collection(ns("collection")).expect("drop");
    let batch = read(&mut s, 100, 16 << 20).expect("batch");
    assert_eq!(
        op_types(&batch.events),
        vec![
            "insert",
            "update",
            "replace",
            "delete",
            "drop",
            "invalidate"
        ]
    );
    assert!(batch.invalidated);
    let insert = &batch.events[0];
    assert_eq!(
        insert.keys().map(String::as_str).collect::<Vec<_>>(),
        vec![
            "_id",
            "operationType",
            "clusterTime",
            "wallTime",
            "fullDocument",
            "ns",
            "documentKey"
        ]
    );
    assert_eq!(
        insert.get_document("fullDocument").expect("doc"),
        &doc! {"_id": 1, "hello": "world"}
    );
    let update = &batch.events[1];
    assert_eq!(
        update.get_document("updateDescription").expect("desc"),
        &doc! {"updatedFields": {"hello": "mars"}, "removedFields": [], "truncatedArrays": []}
    );
    assert_eq!(
        batch.events[2].get_document("fullDocument").expect("doc"),
        &doc! {"_id": 1, "bye": "world"}
    );
    // Tokens sort in event order.
    let tokens: Vec<String> = batch
        .events
        .iter()
        .map(|e| {
            e.get_document("_id")
                .expect("_id")
                .get_str("_data")
                .expect("_data")
                .to_owned()
        })
        .collect();
    let mut sorted = tokens.clone();
    sorted.sort();
    assert_eq!(tokens, sorted);
}

#[test]
fn resume_after_a_token_continues_exactly_after_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(&dir);
    let mut s = stream(&engine, Scope::Database("db".into()), doc! {});
    engine
        .insert(ns("c"), (0..10).map(|i| doc! {"_id": i}).collect(), true)
        .expect("insert");
    let first = read(&mut s, 3, 16 << 20).expect("batch");
    assert_eq!(first.events.len(), 3);
    let token = first.events[2].get_document("_id").expect("_id").clone();
    assert_eq!(first.post_batch_resume_token, token);
    let mut resumed = stream(
        &engine,
        Scope::Database("db".into()),
        doc! {"resumeAfter": token},
    );
    let rest = read(&mut resumed, 100, 16 << 20).expect("batch");
    let ids: Vec<_> = rest
        .events
        .iter()
        .map(|e| {
            e.get_document("documentKey")
                .expect("key")
                .get_i32("_id")
                .expect("_id")
        })
        .collect();
    assert_eq!(ids, (3..10).collect::<Vec<_>>());
    // An empty batch reports a high-water mark that resumes without loss.
    let empty = read(&mut resumed, 100, 16 << 20).expect("batch");
    assert!(empty.events.is_empty());
    let hwm = empty.post_batch_resume_token.clone();
    engine
        .insert(ns("c"), vec![doc! {"_id": 10}], true)
        .expect("insert");
    let mut from_hwm = stream(
        &engine,
        Scope::Database("db".into()),
        doc! {"resumeAfter": hwm},
    );
    let after = read(&mut from_hwm, 100, 16 << 20).expect("batch");
    assert_eq!(op_types(&after.events), vec!["insert"]);
}

#[test]
fn history_lost_after_trimming() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = EngineOptions::new(dir.path());
    options.oplog_size_mb = 1;
    let engine = Engine::open(options).expect("open");
    let mut s = stream(&engine, Scope::Collection(ns("c")), doc! {});
    engine
        .insert(ns("c"), vec![doc! {"_id": 0}], true)
        .expect("insert");
    let first = read(&mut s, 1, 16 << 20).expect("batch");
    let old_token = first.events[0].get_document("_id").expect("_id").clone();
    let big = "x".repeat(10_000);
    for i in 1..300 {
        engine
            .insert(ns("c"), vec![doc! {"_id": i, "pad": &big}], true)
            .expect("insert");
    }
    while engine.trim_oplog(10_000).expect("trim") > 0 {}
    assert!(engine.oplog_bytes() <= 1024 * 1024);
    let err = ChangeStream::open(
        engine.clone(),
        Scope::Collection(ns("c")),
        StreamSpec::parse(&doc! {"resumeAfter": old_token}).expect("spec"),
        EventPipeline::default(),
    )
    .expect_err("history lost");
    assert_eq!(err.code, ErrorCode::ChangeStreamHistoryLost.code());
    assert!(err
        .labels
        .iter()
        .any(|l| l == "NonResumableChangeStreamError"));
    let _ = ResumeToken::event(Timestamp {
        time: 0,
        increment: 0,
    });
}

/// An open stream that falls behind both the hub's tail and the retained oplog fails with
/// 286 on its next read rather than skipping what was trimmed; one still inside the hub's
/// tail, or behind it with nothing trimmed past it, reads on without a gap.
#[test]
fn an_open_stream_behind_the_retained_history_fails_instead_of_skipping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = EngineOptions::new(dir.path());
    options.oplog_size_mb = 1;
    options.hub_capacity = 8;
    let engine = Engine::open(options).expect("open");
    let mut lagging = stream(&engine, Scope::Collection(ns("c")), doc! {});
    let mut untrimmed = stream(&engine, Scope::Collection(ns("d")), doc! {});
    engine
        .insert(ns("c"), vec![doc! {"_id": 0}], true)
        .expect("insert");
    assert_eq!(
        read(&mut lagging, 1, 16 << 20).expect("batch").events.len(),
        1
    );
    // Behind the hub's 8 entries with nothing trimmed yet: read from storage, whole.
    for i in 0..20 {
        engine
            .insert(ns("d"), vec![doc! {"_id": i}], true)
            .expect("insert");
    }
    let got = read(&mut untrimmed, 100, 16 << 20).expect("nothing lost yet");
    assert_eq!(got.events.len(), 20);
    let big = "x".repeat(10_000);
    for i in 1..300 {
        engine
            .insert(ns("c"), vec![doc! {"_id": i, "pad": &big}], true)
            .expect("insert");
    }
    while engine.trim_oplog(10_000).expect("trim") > 0 {}
    let err = read(&mut lagging, 100, 16 << 20).expect_err("history lost");
    assert_eq!(err.code, ErrorCode::ChangeStreamHistoryLost.code());
    assert!(err
        .labels
        .iter()
        .any(|l| l == "NonResumableChangeStreamError"));
    // A stream opened now reads on.
    let mut fresh = stream(&engine, Scope::Collection(ns("c")), doc! {});
    engine
        .insert(ns("c"), vec![doc! {"_id": "late"}], true)
        .expect("insert");
    assert_eq!(
        read(&mut fresh, 100, 16 << 20).expect("batch").events.len(),
        1
    );
}

#[test]
fn pre_and_post_images_are_exact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(&dir);
    engine
        .create_collection(
            ns("c"),
            doc! {"changeStreamPreAndPostImages": {"enabled": true}},
        )
        .expect("create");
    engine
        .insert(ns("c"), vec![doc! {"_id": 1, "n": 1}], true)
        .expect("insert");
    let mut s = stream(
        &engine,
        Scope::Collection(ns("c")),
        doc! {"fullDocument": "required", "fullDocumentBeforeChange": "required"},
    );
    for _ in 0..2 {
        engine
            .update(
                ns("c"),
                vec![UpdateOp {
                    filter: doc! {"_id": 1},
                    update: Bson::Document(doc! {"$inc": {"n": 1}}),
                    multi: false,
                    upsert: false,
                    array_filters: None,
                    let_vars: Vec::new(),
                    ..Default::default()
                }],
                true,
            )
            .expect("update");
    }
    let batch = read(&mut s, 10, 16 << 20).expect("batch");
    assert_eq!(batch.events.len(), 2);
    // Exact images, not the current document: the first update's post-image is n=2.
    assert_eq!(
        batch.events[0]
            .get_document("fullDocumentBeforeChange")
            .expect("pre"),
        &doc! {"_id": 1, "n": 1}
    );
    assert_eq!(
        batch.events[0].get_document("fullDocument").expect("post"),
        &doc! {"_id": 1, "n": 2}
    );
    assert_eq!(
        batch.events[1].get_document("fullDocument").expect("post"),
        &doc! {"_id": 1, "n": 3}
    );
}

#[test]
fn views_are_catalog_entries_that_refuse_collection_operations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(&dir);
    let mut s = stream(
        &engine,
        Scope::Database("db".into()),
        doc! {"showExpandedEvents": true},
    );
    let stage = doc! {"$match": {"a": 1}};
    // The source need not exist; a view may read a view.
    engine
        .create_view(ns("v1"), "src".into(), vec![stage.clone()])
        .expect("view");
    engine
        .create_view(ns("v2"), "v1".into(), vec![doc! {"$limit": 1}])
        .expect("view of a view");
    let r = engine.reader().expect("reader");
    let resolved = r.resolve_view(&ns("v2")).expect("resolve").expect("a view");
    assert_eq!(resolved.source, ns("src"));
    assert_eq!(resolved.pipeline, vec![stage.clone(), doc! {"$limit": 1}]);
    assert!(r.resolve_view(&ns("src")).expect("resolve").is_none());
    assert!(r.collections(Some("db")).expect("list").is_empty());
    assert_eq!(r.views("db").expect("views").len(), 2);
    drop(r);

    let code = |e: eddy_codes::MongoError| e.code;
    let exists = engine.create_view(ns("v1"), "src".into(), Vec::new());
    assert_eq!(exists.map_err(code), Err(ErrorCode::NamespaceExists.code()));
    let exists = engine.create_collection(ns("v1"), Document::new());
    assert_eq!(exists.map_err(code), Err(ErrorCode::NamespaceExists.code()));
    let cycle = engine.create_view(ns("self"), "self".into(), Vec::new());
    assert_eq!(
        cycle.map_err(code),
        Err(ErrorCode::GraphContainsCycle.code())
    );
    let insert = engine.insert(ns("v1"), vec![doc! {"_id": 1}], true);
    assert_eq!(
        insert.map(|_| ()).map_err(code),
        Err(ErrorCode::CommandNotSupportedOnView.code())
    );
    let index = engine.create_indexes(ns("v1"), vec![doc! {"key": {"a": 1}, "name": "a_1"}]);
    assert_eq!(
        index.map(|_| ()).map_err(code),
        Err(ErrorCode::CommandNotSupportedOnView.code())
    );
    let opened = ChangeStream::open(
        engine.clone(),
        Scope::Collection(ns("v1")),
        StreamSpec::parse(&doc! {}).expect("spec"),
        EventPipeline::default(),
    );
    assert_eq!(
        opened.map(|_| ()).map_err(code),
        Err(ErrorCode::CommandNotSupportedOnView.code())
    );

    // A chain longer than 20 views is refused.
    let mut prev = "v2".to_owned();
    for i in 3..=20 {
        let name = format!("v{i}");
        engine
            .create_view(ns(&name), prev.clone(), Vec::new())
            .expect("within the depth limit");
        prev = name;
    }
    let deep = engine.create_view(ns("v21"), prev, Vec::new());
    assert_eq!(
        deep.map_err(code),
        Err(ErrorCode::ViewDepthLimitExceeded.code())
    );

    engine
        .coll_mod(ns("v2"), doc! {"pipeline": [{"$skip": 1}]})
        .expect("collMod of a view");
    assert_eq!(engine.drop_collection(ns("v2")).expect("drop"), None);
    engine.drop_database("db".into()).expect("drop database");
    assert!(engine
        .reader()
        .expect("reader")
        .views("db")
        .expect("views")
        .is_empty());

    let events = read(&mut s, 100, 16 << 20).expect("batch").events;
    let first = &events[0];
    assert_eq!(first.get_str("operationType").ok(), Some("create"));
    assert!(!first.contains_key("collectionUUID"));
    assert_eq!(
        first.get_document("operationDescription").expect("desc"),
        &doc! {"viewOn": "src", "pipeline": [stage]}
    );
    let types: Vec<&str> = op_types(&events);
    assert_eq!(types.iter().filter(|t| **t == "create").count(), 20);
    assert!(types.contains(&"modify"));
    assert_eq!(types.iter().filter(|t| **t == "drop").count(), 20);
    assert_eq!(types[types.len() - 2..], ["dropDatabase", "invalidate"]);
}
