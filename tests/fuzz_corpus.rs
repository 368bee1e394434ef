//! The fuzz targets' harnesses on stable Rust: every seed input below, every file in
//! `fuzz/seeds/<target>/` and every crash input kept in `fuzz/regressions/<target>/`
//! goes through the same function the libFuzzer target calls, so a fixed crash stays
//! fixed without nightly or cargo-fuzz in CI.
//!
//! `EDDY_WRITE_SEEDS=1 cargo test --test fuzz_corpus` rewrites `fuzz/seeds/` from the
//! seeds below (the fuzzers' starting corpora).

#[path = "../fuzz/src/harness.rs"]
#[allow(dead_code, clippy::unwrap_used)]
mod harness;

use std::path::{Path, PathBuf};

use bson::{doc, Document};
use harness::join_docs;

fn people() -> Vec<Document> {
    vec![
        doc! {"_id": 1, "name": "Ada", "age": 36, "tags": ["math", "poet"], "addr": {"city": "London", "zip": "N1"}},
        doc! {"_id": 2, "name": "Grace", "age": 85.5, "scores": [{"k": "a", "v": 3}, {"k": "b", "v": [1, 2, 3]}], "nested": {"a": {"b": {"c": [1, {"d": null}]}}}},
        doc! {"_id": bson::oid::ObjectId::from_bytes([1; 12]), "when": bson::DateTime::from_millis(0), "n": i64::MAX, "d": f64::NAN, "bin": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![0, 1, 2] }},
        doc! {},
    ]
}

fn matcher_seeds() -> Vec<Vec<u8>> {
    let filters = [
        doc! {"name": "Ada"},
        doc! {"age": {"$gt": 30, "$lte": 100}},
        doc! {"tags": {"$in": ["poet", bson::Regex { pattern: bson::raw::CString::try_from("^ma").expect("no NUL"), options: bson::raw::CString::try_from("i").expect("no NUL") }]}},
        doc! {"scores": {"$elemMatch": {"k": "b", "v": {"$size": 3}}}},
        doc! {"$or": [{"addr.city": "London"}, {"nested.a.b.c.d": null}], "_id": {"$exists": true}},
        doc! {"$expr": {"$gt": ["$age", {"$add": [1, 2]}]}},
        doc! {"age": {"$not": {"$type": "number"}}, "tags": {"$all": ["math"]}},
        doc! {"n": {"$bitsAllSet": [0, 1]}, "d": {"$mod": [2, 0]}},
        doc! {"$and": [{"name": {"$regex": "a", "$options": "m"}}, {"$nor": [{"age": {"$eq": 85.5}}]}]},
        doc! {"_id": {"$type": ["objectId", "int"]}, "when": {"$lt": bson::DateTime::from_millis(1)}},
    ];
    let mut out = Vec::new();
    for f in &filters {
        for d in people() {
            out.push(join_docs(&[f.clone(), d]));
        }
    }
    out
}

fn update_seeds() -> Vec<Vec<u8>> {
    let updates = [
        doc! {"$set": {"name": "Bob", "addr.city": "Paris"}, "$inc": {"age": 1}},
        doc! {"$unset": {"tags": ""}, "$rename": {"name": "fullName"}},
        doc! {"$push": {"tags": {"$each": ["x", "y"], "$position": 0, "$slice": 3, "$sort": 1}}},
        doc! {"$pull": {"scores": {"v": {"$gte": 2}}}, "$addToSet": {"tags": "z"}},
        doc! {"$set": {"scores.$[e].v": 0}},
        doc! {"$currentDate": {"when": true}, "$min": {"age": 10}, "$max": {"n": 0}, "$mul": {"age": 2}},
        doc! {"$setOnInsert": {"created": true}, "$bit": {"n": {"and": 5_i64}}},
        doc! {"name": "replaced", "extra": [1, 2]},
        doc! {"u": [{"$set": {"total": {"$add": ["$age", 1]}}}, {"$unset": "tags"}]},
        doc! {"u": [{"$replaceWith": {"$mergeObjects": ["$$ROOT", {"x": 1}]}}]},
        doc! {"$pop": {"tags": -1}, "$pullAll": {"tags": ["math"]}},
    ];
    let options = [
        doc! {},
        doc! {"arrayFilters": [{"e.k": "a"}], "upsert": true},
    ];
    let mut out = Vec::new();
    for u in &updates {
        for d in people() {
            for o in &options {
                out.push(join_docs(&[u.clone(), d.clone(), o.clone()]));
            }
        }
    }
    out
}

fn command_seeds() -> Vec<Vec<u8>> {
    let cmds = [
        doc! {"find": "c", "filter": {"a": {"$gt": 1}}, "sort": {"a": -1}, "projection": {"a": 1}, "limit": 5, "batchSize": 2, "$db": "test"},
        doc! {"insert": "c", "documents": [{"_id": 1, "a": 1}], "ordered": false, "$db": "test", "lsid": {"id": bson::Binary { subtype: bson::spec::BinarySubtype::Uuid, bytes: vec![7; 16] }}, "txnNumber": 1_i64},
        doc! {"update": "c", "updates": [{"q": {"a": 1}, "u": {"$set": {"b": 2}}, "upsert": true, "multi": false, "arrayFilters": []}], "$db": "test"},
        doc! {"delete": "c", "deletes": [{"q": {}, "limit": 0}], "writeConcern": {"w": "majority"}, "$db": "test"},
        doc! {"aggregate": "c", "pipeline": [{"$changeStream": {"fullDocument": "updateLookup"}}, {"$match": {"operationType": "insert"}}], "cursor": {}, "$db": "test"},
        doc! {"aggregate": 1, "pipeline": [{"$group": {"_id": "$a", "n": {"$sum": 1}}}, {"$sort": {"n": -1}}], "cursor": {"batchSize": 0}, "$db": "test"},
        doc! {"getMore": 12_i64, "collection": "c", "batchSize": 10, "maxTimeMS": 100, "$db": "test"},
        doc! {"findAndModify": "c", "query": {"a": 1}, "update": {"$inc": {"a": 1}}, "new": true, "$db": "test"},
        doc! {"createIndexes": "c", "indexes": [{"key": {"a": 1, "b": -1}, "name": "a_1_b_-1", "unique": true}], "$db": "test"},
        doc! {"hello": 1, "client": {"application": {"name": "fuzz"}}, "$db": "admin"},
        doc! {"killCursors": "c", "cursors": [1_i64, 2_i64], "$db": "test"},
        doc! {"count": "c", "query": {"a": 1}, "skip": 1, "$db": "test"},
        doc! {"distinct": "c", "key": "a.b", "query": {}, "$db": "test"},
        doc! {"create": "v", "viewOn": "c", "pipeline": [{"$project": {"a": 1}}], "$db": "test"},
        doc! {"configureFailPoint": "failCommand", "mode": {"times": 1}, "data": {"failCommands": ["find"], "errorCode": 2}, "$db": "admin"},
        doc! {"endSessions": [{"id": bson::Binary { subtype: bson::spec::BinarySubtype::Uuid, bytes: vec![7; 16] }}], "$db": "admin"},
    ];
    cmds.iter()
        .map(|c| join_docs(std::slice::from_ref(c)))
        .collect()
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Every file under `fuzz/<kind>/<target>/`.
fn stored_inputs(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).expect("corpus file is readable");
            (p, bytes)
        })
        .collect();
    out.sort();
    out
}

/// Runs `seeds` and the stored inputs of `target` through `harness`, writing the seeds
/// to `fuzz/seeds/<target>/` when `EDDY_WRITE_SEEDS` is set.
fn replay(target: &str, seeds: Vec<Vec<u8>>, harness: fn(&[u8])) -> usize {
    if std::env::var_os("EDDY_WRITE_SEEDS").is_some() {
        let dir = fuzz_dir().join("seeds").join(target);
        std::fs::create_dir_all(&dir).expect("seed dir");
        for (i, s) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:03}")), s).expect("seed written");
        }
    }
    let mut n = 0;
    for s in &seeds {
        harness(s);
        n += 1;
    }
    for kind in ["seeds", "regressions"] {
        for (path, bytes) in stored_inputs(kind, target) {
            eprintln!("replaying {}", path.display());
            harness(&bytes);
            n += 1;
        }
    }
    n
}

#[test]
fn matcher_corpus_replays() {
    assert!(replay("matcher", matcher_seeds(), harness::matcher) >= 40);
}

#[test]
fn update_corpus_replays() {
    assert!(replay("update", update_seeds(), harness::update) >= 80);
}

#[test]
fn command_parse_corpus_replays() {
    assert!(replay("command_parse", command_seeds(), harness::command) >= 16);
}

#[test]
fn seeds_reach_the_parsers() {
    // The seeds are only useful if they parse: a seed rejected up front tests nothing.
    for s in matcher_seeds() {
        let docs = harness::split_docs(&s, 2);
        assert_eq!(docs.len(), 2);
        eddy_query::filter::Filter::parse(&docs[0]).expect("seed filter parses");
    }
    for s in command_seeds() {
        let docs = harness::split_docs(&s, 1);
        assert_eq!(docs.len(), 1);
    }
}

#[test]
fn wire_corpus_decodes_without_panicking() {
    for (_, bytes) in stored_inputs("regressions", "wire_decode") {
        let _ = eddy_wire::decode(&bytes);
    }
}
