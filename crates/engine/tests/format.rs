//! The on-disk format: a store written by an earlier build still opens and reads the
//! same.
//!
//! `fixtures/store-v1/` is a data directory (format version 1) written with the
//! engine's public API by [`regenerate_fixture`]: documents of many BSON types, two
//! secondary indexes, a view, a capped collection that truncated, a collection with
//! pre- and post-images, updates, replacements and deletes, and catalog changes
//! (create, createIndexes, drop, rename, collMod), so that its oplog holds every kind
//! of entry. [`fixture_opens_and_reads_back`] opens a copy of it and checks the
//! documents, the indexes, the view, the oplog and that writes continue.
//!
//! Regenerate the fixture only when the format changes on purpose (and then bump
//! `FORMAT_VERSION` and keep the old fixture as a test of the upgrade or the refusal):
//!
//! ```text
//! cargo test -p eddy-engine --test format -- --ignored regenerate_fixture
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bson::spec::BinarySubtype;
use bson::{doc, oid::ObjectId, Binary, Bson, DateTime, Decimal128, Document, Regex, Timestamp};
use eddy_engine::changes::event::Shape;
use eddy_engine::plan::{Access, Query};
use eddy_engine::{
    CatalogOp, DeleteOp, Engine, EngineOptions, Namespace, Op, SharedEntry, UpdateOp,
};
use eddy_query::filter::Filter;
use eddy_storage::KvRead;

const DB: &str = "fixture";

fn ns(coll: &str) -> Namespace {
    Namespace::new(DB, coll)
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1")
}

/// The documents of `things` as inserted, in `_id` order of the store (numbers, then
/// strings, then ObjectIds).
fn things() -> Vec<Document> {
    let oid = ObjectId::parse_str("65a1b2c3d4e5f60718293a4b").expect("oid");
    vec![
        doc! {
            "_id": 1,
            "n": 1,
            "tags": ["a", "b"],
            "double": 1.5,
            "long": 9_007_199_254_740_993_i64,
            "bool": true,
            "null": Bson::Null,
            "date": DateTime::from_millis(1_700_000_000_000),
            "sub": {"x": 1, "y": [1, {"z": "deep"}]},
        },
        doc! {
            "_id": 2,
            "n": 2,
            "tags": ["b"],
            "bin": Binary { subtype: BinarySubtype::Generic, bytes: vec![0, 1, 2, 255] },
            "uuid": Binary { subtype: BinarySubtype::Uuid, bytes: vec![7; 16] },
            "regex": Regex { pattern: "^ab+c".try_into().expect("cstr"), options: "i".try_into().expect("cstr") },
            "dec": "1.10".parse::<Decimal128>().expect("decimal"),
            "ts": Timestamp { time: 1_700_000_000, increment: 7 },
        },
        doc! {"_id": "gone", "n": 99},
        doc! {
            "_id": "three",
            "n": 3,
            "min": Bson::MinKey,
            "max": Bson::MaxKey,
            "js": Bson::JavaScriptCode("function() { return 1; }".into()),
            "unicode": "snow ☃ and ß",
            "neg0": -0.0,
            "empty": {},
            "emptyArr": [],
        },
        doc! {"_id": oid, "n": 4, "tags": []},
    ]
}

fn update(filter: Document, update: Bson) -> UpdateOp {
    UpdateOp {
        filter,
        update,
        ..Default::default()
    }
}

fn delete(filter: Document) -> DeleteOp {
    DeleteOp {
        filter,
        just_one: true,
        ..Default::default()
    }
}

/// Writes the fixture's content through the engine's public API.
fn populate(engine: &Arc<Engine>) {
    engine
        .create_collection(ns("things"), Document::new())
        .expect("create things");
    engine
        .insert(ns("things"), things(), true)
        .expect("insert things");
    engine
        .create_indexes(
            ns("things"),
            vec![
                doc! {"key": {"n": 1}, "name": "n_1"},
                doc! {"key": {"tags": 1, "n": -1}, "name": "tags_1_n_-1"},
            ],
        )
        .expect("indexes");
    engine
        .create_view(
            ns("big_things"),
            "things".into(),
            vec![doc! {"$match": {"n": {"$gte": 2}}}],
        )
        .expect("view");
    engine
        .create_collection(ns("log"), doc! {"capped": true, "size": 4096, "max": 3})
        .expect("capped");
    engine
        .insert(
            ns("log"),
            (1..=5)
                .map(|i| doc! {"_id": i, "line": format!("line {i}")})
                .collect(),
            true,
        )
        .expect("insert log");
    engine
        .create_collection(
            ns("images"),
            doc! {"changeStreamPreAndPostImages": {"enabled": true}},
        )
        .expect("create images");
    engine
        .insert(
            ns("images"),
            vec![
                doc! {"_id": 1, "v": 1},
                doc! {"_id": 2, "v": 2},
                doc! {"_id": 3, "v": 3},
            ],
            true,
        )
        .expect("insert images");
    engine
        .update(
            ns("images"),
            vec![update(doc! {"_id": 1}, doc! {"$set": {"v": 10}}.into())],
            true,
        )
        .expect("update images");
    engine
        .update(
            ns("images"),
            vec![update(doc! {"_id": 2}, doc! {"replaced": true}.into())],
            true,
        )
        .expect("replace images");
    engine
        .delete(ns("images"), vec![delete(doc! {"_id": 3})], true)
        .expect("delete images");
    engine
        .update(
            ns("things"),
            vec![update(doc! {"_id": 1}, doc! {"$inc": {"n": 10}}.into())],
            true,
        )
        .expect("update things");
    engine
        .delete(ns("things"), vec![delete(doc! {"_id": "gone"})], true)
        .expect("delete things");
    engine
        .create_collection(ns("scratch"), Document::new())
        .expect("create scratch");
    engine.drop_collection(ns("scratch")).expect("drop scratch");
    engine
        .insert(ns("before_rename"), vec![doc! {"_id": 1}], true)
        .expect("insert before_rename");
    engine
        .rename_collection(ns("before_rename"), ns("after_rename"), false)
        .expect("rename");
    engine
        .coll_mod(ns("images"), doc! {"validationLevel": "moderate"})
        .expect("collMod");
}

/// Rewrites `fixtures/store-v1/` from scratch. Ignored: run it by hand (see the module
/// doc) only when the format changes on purpose.
#[test]
#[ignore]
fn regenerate_fixture() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let engine = Engine::open(EngineOptions::new(dir.path())).expect("open");
        populate(&engine);
        engine.close();
    }
    let target = fixture_dir();
    if target.exists() {
        std::fs::remove_dir_all(&target).expect("remove the old fixture");
    }
    copy_dir(dir.path(), &target);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let path = entry.path();
        let dest = to.join(entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &dest);
        } else {
            std::fs::copy(&path, &dest).expect("copy");
        }
    }
}

/// Opens a copy of the fixture (the committed files are never written).
fn open_copy() -> (tempfile::TempDir, Arc<Engine>) {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&fixture_dir(), dir.path());
    let engine = Engine::open(EngineOptions::new(dir.path())).expect("open the fixture");
    (dir, engine)
}

fn all(engine: &Engine, coll: &str) -> Vec<Document> {
    let r = engine.reader().expect("reader");
    let meta = r.collection(&ns(coll)).expect("catalog").expect("exists");
    r.scan(&meta)
        .expect("scan")
        .map(|d| d.expect("doc"))
        .collect()
}

/// The name of the index a query on `things` is planned through (`None`: a
/// collection scan).
fn planned_index(engine: &Engine, filter_doc: &Document) -> Option<String> {
    let r = engine.reader().expect("reader");
    let meta = r
        .collection(&ns("things"))
        .expect("catalog")
        .expect("exists");
    let filter = Filter::parse(filter_doc).expect("filter");
    let executed = r
        .query(&meta, &Query::new(filter_doc, &filter), None)
        .expect("query");
    match executed.plan.access {
        Access::IndexScan(scan) => Some(scan.name),
        _ => None,
    }
}

/// What one oplog entry says, in a form a test can compare.
#[derive(Debug, PartialEq)]
struct Seen {
    op: &'static str,
    ns: String,
    key: Option<Document>,
}

fn seen(e: &SharedEntry) -> Seen {
    let op = e.op();
    let name = match op {
        Op::Insert { .. } => "insert",
        Op::Update { .. } => "update",
        Op::Replace { .. } => "replace",
        Op::Delete { .. } => "delete",
        Op::Catalog(CatalogOp::Create { .. }) => "create",
        Op::Catalog(CatalogOp::Drop) => "drop",
        Op::Catalog(CatalogOp::Rename { .. }) => "rename",
        Op::Catalog(CatalogOp::DropDatabase) => "dropDatabase",
        Op::Catalog(CatalogOp::CreateIndexes { .. }) => "createIndexes",
        Op::Catalog(CatalogOp::DropIndexes { .. }) => "dropIndexes",
        Op::Catalog(CatalogOp::CollMod { .. }) => "collMod",
    };
    Seen {
        op: name,
        ns: e.ns().to_namespace().to_string(),
        key: op
            .document_key()
            .map(|k| Document::try_from(k).expect("document key")),
    }
}

fn s(op: &'static str, coll: &str, key: Option<Bson>) -> Seen {
    Seen {
        op,
        ns: format!("{DB}.{coll}"),
        key: key.map(|id| doc! {"_id": id}),
    }
}

#[test]
fn fixture_opens_and_reads_back() {
    let (_dir, engine) = open_copy();

    // Documents, exactly (the update and the delete applied; capped truncation kept the
    // three newest).
    let mut expected: Vec<Document> = things()
        .into_iter()
        .filter(|d| d.get_str("_id").ok() != Some("gone"))
        .collect();
    expected[0].insert("n", 11);
    assert_eq!(all(&engine, "things"), expected);
    assert_eq!(
        all(&engine, "log"),
        (3..=5)
            .map(|i| doc! {"_id": i, "line": format!("line {i}")})
            .collect::<Vec<_>>()
    );
    assert_eq!(
        all(&engine, "images"),
        vec![doc! {"_id": 1, "v": 10}, doc! {"_id": 2, "replaced": true}]
    );
    assert_eq!(all(&engine, "after_rename"), vec![doc! {"_id": 1}]);

    // The catalog: collections, options, indexes (multikey recorded), the view.
    let r = engine.reader().expect("reader");
    let names: Vec<String> = r
        .collections(Some(DB))
        .expect("list")
        .into_iter()
        .map(|c| c.ns.coll)
        .collect();
    assert_eq!(names, ["after_rename", "images", "log", "things"]);
    assert!(r.collection(&ns("scratch")).expect("catalog").is_none());
    assert!(r
        .collection(&ns("before_rename"))
        .expect("catalog")
        .is_none());
    let things_meta = r
        .collection(&ns("things"))
        .expect("catalog")
        .expect("things");
    let index_names: Vec<&str> = things_meta.indexes.iter().map(|i| i.name()).collect();
    assert_eq!(index_names, ["n_1", "tags_1_n_-1"]);
    assert!(!things_meta.index("n_1").expect("n_1").is_multikey());
    assert!(things_meta
        .index("tags_1_n_-1")
        .expect("tags")
        .is_multikey());
    let log_meta = r.collection(&ns("log")).expect("catalog").expect("log");
    let cap = log_meta.cap().expect("capped");
    assert_eq!((cap.size, cap.max), (4096, Some(3)));
    let images_meta = r
        .collection(&ns("images"))
        .expect("catalog")
        .expect("images");
    assert!(images_meta.pre_and_post_images());
    assert_eq!(
        images_meta.options.get_str("validationLevel").ok(),
        Some("moderate")
    );
    let view = r
        .resolve_view(&ns("big_things"))
        .expect("resolve")
        .expect("a view");
    assert_eq!(view.source, ns("things"));
    assert_eq!(view.pipeline, vec![doc! {"$match": {"n": {"$gte": 2}}}]);
    drop(r);

    // The indexes are used, and hold the right entries.
    assert_eq!(
        planned_index(&engine, &doc! {"n": 3}).as_deref(),
        Some("n_1")
    );
    assert_eq!(
        planned_index(&engine, &doc! {"tags": "b"}).as_deref(),
        Some("tags_1_n_-1")
    );
    let r = engine.reader().expect("reader");
    let by_tag: Vec<Bson> = r
        .find(&things_meta, &doc! {"tags": "b"}, None)
        .expect("find")
        .into_iter()
        .map(|m| m.doc.get("_id").cloned().expect("_id"))
        .collect();
    // In index order: `n` descending within the tag.
    assert_eq!(by_tag, vec![Bson::Int32(1), Bson::Int32(2)]);
    drop(r);

    // The oplog, entry by entry.
    let entries = engine
        .read_oplog(
            Timestamp {
                time: 0,
                increment: 0,
            },
            1000,
        )
        .expect("oplog");
    let got: Vec<Seen> = entries.iter().map(seen).collect();
    let id = |v: i32| Some(Bson::Int32(v));
    let oid = ObjectId::parse_str("65a1b2c3d4e5f60718293a4b").expect("oid");
    let want = vec![
        s("create", "things", None),
        s("insert", "things", id(1)),
        s("insert", "things", id(2)),
        s("insert", "things", Some("gone".into())),
        s("insert", "things", Some("three".into())),
        s("insert", "things", Some(oid.into())),
        s("createIndexes", "things", None),
        s("createIndexes", "things", None),
        s("create", "big_things", None),
        s("create", "log", None),
        s("insert", "log", id(1)),
        s("insert", "log", id(2)),
        s("insert", "log", id(3)),
        s("insert", "log", id(4)),
        s("insert", "log", id(5)),
        s("create", "images", None),
        s("insert", "images", id(1)),
        s("insert", "images", id(2)),
        s("insert", "images", id(3)),
        s("update", "images", id(1)),
        s("replace", "images", id(2)),
        s("delete", "images", id(3)),
        s("update", "things", id(1)),
        s("delete", "things", Some("gone".into())),
        s("create", "scratch", None),
        s("drop", "scratch", None),
        s("create", "before_rename", None),
        s("insert", "before_rename", id(1)),
        s("rename", "before_rename", None),
        s("collMod", "images", None),
    ];
    assert_eq!(got, want);
    for pair in entries.windows(2) {
        assert!(pair[0].ts < pair[1].ts, "oplog out of order");
    }
    // Collection entries carry their collection's UUID; a view's create carries none.
    assert!(entries[0].is_of(&things_meta.uuid));
    assert!(entries[8].uuid().is_none());

    // The typed entries' contents, and the change events built from them.
    let full = Shape {
        expanded: true,
        pre_image: true,
        post_image: true,
    };
    let event = |i: usize| -> Document {
        entries[i]
            .event(full)
            .expect("event")
            .expect("some event")
            .document()
            .expect("decode")
            .clone()
    };
    // (entry, operationType, fullDocumentBeforeChange, fullDocument)
    let with_images = [
        (
            19,
            "update",
            doc! {"_id": 1, "v": 1},
            Some(doc! {"_id": 1, "v": 10}),
        ),
        (
            20,
            "replace",
            doc! {"_id": 2, "v": 2},
            Some(doc! {"_id": 2, "replaced": true}),
        ),
        (21, "delete", doc! {"_id": 3, "v": 3}, None),
    ];
    for (i, op_type, pre, post) in with_images {
        let e = event(i);
        assert_eq!(e.get_str("operationType").ok(), Some(op_type), "entry {i}");
        assert_eq!(
            e.get_document("ns").ok(),
            Some(&doc! {"db": DB, "coll": "images"})
        );
        let key = doc! {"_id": pre.get("_id").cloned().expect("_id")};
        assert_eq!(e.get_document("documentKey").ok(), Some(&key));
        assert_eq!(e.get_document("fullDocumentBeforeChange").ok(), Some(&pre));
        assert_eq!(
            e.get_document("fullDocument").ok(),
            post.as_ref(),
            "entry {i}"
        );
    }
    assert_eq!(
        event(19)
            .get_document("updateDescription")
            .expect("description")
            .get_document("updatedFields")
            .ok(),
        Some(&doc! {"v": 10})
    );
    // Without images, an update records neither.
    assert_eq!(entries[22].op().pre_image(), None);
    let insert_event = event(1);
    assert_eq!(insert_event.get_str("operationType").ok(), Some("insert"));
    assert_eq!(
        insert_event.get_document("fullDocument").ok(),
        Some(&things()[0])
    );
    match entries[6].op() {
        Op::Catalog(CatalogOp::CreateIndexes { spec }) => {
            assert_eq!(spec, &doc! {"v": 2, "key": {"n": 1}, "name": "n_1"});
        }
        other => panic!("not createIndexes: {other:?}"),
    }
    match entries[28].op() {
        Op::Catalog(CatalogOp::Rename { to, .. }) => assert_eq!(to, &ns("after_rename")),
        other => panic!("not a rename: {other:?}"),
    }
    assert_eq!(event(28).get_str("operationType").ok(), Some("rename"));
    assert_eq!(event(29).get_str("operationType").ok(), Some("modify"));
    assert_eq!(event(26).get_str("operationType").ok(), Some("create"));
    assert_eq!(event(25).get_str("operationType").ok(), Some("drop"));

    // Writes continue: after the fixture's newest entry, into every kind of
    // collection, through the indexes.
    let last = entries.last().expect("entries").ts;
    assert_eq!(engine.last_op_time(), last);
    engine
        .insert(
            ns("things"),
            vec![doc! {"_id": 5, "n": 5, "tags": ["c"]}],
            true,
        )
        .expect("insert");
    assert!(engine.last_op_time() > last);
    engine
        .insert(ns("log"), vec![doc! {"_id": 6, "line": "line 6"}], true)
        .expect("insert capped");
    let log_ids: Vec<Bson> = all(&engine, "log")
        .into_iter()
        .map(|d| d.get("_id").cloned().expect("_id"))
        .collect();
    assert_eq!(
        log_ids,
        vec![Bson::Int32(4), Bson::Int32(5), Bson::Int32(6)]
    );
    engine
        .update(
            ns("images"),
            vec![update(doc! {"_id": 1}, doc! {"$set": {"v": 11}}.into())],
            true,
        )
        .expect("update images");
    let dup = engine
        .insert(ns("things"), vec![doc! {"_id": 2}], true)
        .expect("insert");
    assert_eq!(
        dup.errors.len(),
        1,
        "the _id index still refuses duplicates"
    );
    let r = engine.reader().expect("reader");
    let found = r
        .find(&things_meta, &doc! {"tags": "c"}, None)
        .expect("find");
    assert_eq!(found.len(), 1);
    drop(r);
    let fresh = engine
        .read_oplog(last, 10)
        .expect("oplog")
        .iter()
        .map(seen)
        .collect::<Vec<_>>();
    assert_eq!(
        fresh,
        vec![
            s("insert", "things", id(5)),
            s("insert", "log", id(6)),
            s("update", "images", id(1)),
        ]
    );
    engine
        .create_collection(ns("new"), Document::new())
        .expect("a new collection gets a fresh id");
    engine
        .insert(ns("new"), vec![doc! {"_id": 1}], true)
        .expect("insert new");
    assert_eq!(all(&engine, "new"), vec![doc! {"_id": 1}]);
    assert_eq!(all(&engine, "things").len(), 5);
}

/// The fixture records its format version where the engine looks for it: `meta`,
/// key `format_version`, a big-endian i64.
#[test]
fn fixture_records_format_version_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&fixture_dir(), dir.path());
    let store = eddy_storage::Store::open(&dir.path().join("eddy.redb")).expect("store");
    let version = store
        .snapshot()
        .expect("snapshot")
        .get("meta", b"format_version")
        .expect("get");
    assert_eq!(version, Some(1i64.to_be_bytes().to_vec()));
    assert_eq!(
        eddy_engine::FORMAT_VERSION,
        1,
        "a new format needs a new fixture"
    );
}

/// Reopening the copy after writes keeps both the fixture's and the new data.
#[test]
fn fixture_survives_a_restart_after_writes() {
    let (dir, engine) = open_copy();
    engine
        .insert(ns("things"), vec![doc! {"_id": 6, "n": 6}], true)
        .expect("insert");
    let last = engine.last_op_time();
    engine.close();
    drop(engine);
    let engine = Engine::open(EngineOptions::new(dir.path())).expect("reopen");
    assert_eq!(engine.last_op_time(), last);
    assert_eq!(all(&engine, "things").len(), 5);
    assert_eq!(all(&engine, "images").len(), 2);
}
