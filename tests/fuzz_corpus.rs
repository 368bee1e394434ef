//! The fuzz targets' harnesses on stable Rust: every seed input below, every file in
//! `fuzz/seeds/<target>/` and every crash input kept in `fuzz/regressions/<target>/`
//! goes through the same function the libFuzzer target calls, so a fixed crash stays
//! fixed without nightly or cargo-fuzz in CI.
//!
//! `EDDY_WRITE_SEEDS=1 cargo test --test fuzz_corpus` rewrites `fuzz/seeds/` from the
//! seeds below (the fuzzers' starting corpora).
//!
//! `short_mutation_run_of_each_target` is a bounded fuzz run on stable: seeded random
//! mutations of the seeds (bit flips, length-field and boundary values, inserted, deleted,
//! duplicated and spliced bytes) through each harness. It is deterministic (a fixed seed
//! unless `EDDY_FUZZ_SEED` says otherwise; `EDDY_FUZZ_RUNS` sets the inputs per target)
//! and keeps any input that panics in `target/fuzz-failures/` for `fuzz/regressions/`.

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

/// Wire frames: every command seed as an OP_MSG (plain, with a checksum, with a document
/// sequence, wrapped in OP_COMPRESSED) and as a legacy OP_QUERY.
fn wire_seeds() -> Vec<Vec<u8>> {
    use eddy_wire::{
        encode_compressed_noop, encode_op_msg, encode_query, flags, DocumentSequence, OpMsg,
        OpQuery,
    };
    let mut out = Vec::new();
    for (i, bytes) in command_seeds().iter().enumerate() {
        let mut body = harness::split_docs(bytes, 1).remove(0);
        let id = i32::try_from(i).expect("few seeds");
        let plain = OpMsg {
            flags: 0,
            body: body.clone(),
            sequences: Vec::new(),
        };
        let msg = encode_op_msg(id, 0, &plain).expect("encodes");
        out.push(encode_compressed_noop(&msg).expect("compresses"));
        out.push(msg);
        let checked = OpMsg {
            flags: flags::CHECKSUM_PRESENT,
            ..plain
        };
        out.push(encode_op_msg(id, 0, &checked).expect("encodes"));
        if let Some(bson::Bson::Array(docs)) = body.remove("documents") {
            let documents = docs
                .iter()
                .filter_map(|d| d.as_document().cloned())
                .collect();
            let sequences = vec![DocumentSequence {
                identifier: "documents".into(),
                documents,
            }];
            let seq = OpMsg {
                flags: 0,
                body: body.clone(),
                sequences,
            };
            out.push(encode_op_msg(id, 0, &seq).expect("encodes"));
        }
        body.remove("$db");
        let query = OpQuery {
            flags: 0,
            full_collection_name: "admin.$cmd".into(),
            number_to_skip: 0,
            number_to_return: -1,
            query: body,
            return_fields_selector: None,
        };
        out.push(encode_query(id, &query).expect("encodes"));
    }
    out
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
fn wire_decode_corpus_replays() {
    assert!(replay("wire_decode", wire_seeds(), harness::wire) >= 60);
}

/// OP_COMPRESSED inputs (see `harness::compressed`): every wire seed that is an OP_MSG,
/// compressed with each compressor (mode 0, with its true size), and its body for the
/// round trip (mode 1).
fn compressed_seeds() -> Vec<Vec<u8>> {
    use eddy_wire::{compress, Compressor, HEADER_LEN};
    let mut out = Vec::new();
    for frame in wire_seeds().iter().step_by(3) {
        if frame.get(12..16) != Some(&eddy_wire::opcode::MSG.to_le_bytes()[..]) {
            continue;
        }
        for compressor in Compressor::ALL {
            let wrapped = compress(frame, compressor).expect("compresses");
            // The selector, then `uncompressedSize`, then the data (the id is the selector's).
            let mut input = vec![compressor.id()];
            input.extend_from_slice(&wrapped[HEADER_LEN + 4..HEADER_LEN + 8]);
            input.extend_from_slice(&wrapped[HEADER_LEN + 9..]);
            out.push(input);
        }
        let mut round_trip = vec![0x80 | 3, 0, 0, 0, 0];
        round_trip.extend_from_slice(&frame[HEADER_LEN..]);
        out.push(round_trip);
    }
    out
}

#[test]
fn wire_compressed_corpus_replays() {
    assert!(replay("wire_compressed", compressed_seeds(), harness::compressed) >= 60);
}

/// xorshift64*: a small deterministic generator, so a failing run replays from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).expect("below n")
    }
}

/// One to four random edits of `input`, some of them borrowing bytes from `other`.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    const INTERESTING: [i32; 9] = [
        0,
        -1,
        1,
        4,
        5,
        0x7fff_ffff,
        i32::MIN,
        16 * 1024 * 1024 + 1,
        48_000_001,
    ];
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(8) {
            0 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] = [0, 0x7f, 0x80, 0xff, b'$', b'.'][rng.below(6)];
            }
            2 if out.len() >= 4 => {
                // A length field, an element count or an opcode gets a boundary value.
                let i = at.min(out.len() - 4);
                let v = INTERESTING[rng.below(INTERESTING.len())];
                out[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
            3 => {
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                out.splice(at..at, bytes);
            }
            4 if !out.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                out.drain(at.min(end)..end);
            }
            5 if !out.is_empty() => {
                let start = at.min(out.len() - 1);
                let end = (start + 1 + rng.below(32)).min(out.len());
                let chunk = out[start..end].to_vec();
                let to = rng.below(out.len() + 1);
                out.splice(to..to, chunk);
            }
            6 if !other.is_empty() => {
                let start = rng.below(other.len());
                let end = (start + 1 + rng.below(64)).min(other.len());
                out.splice(at..at, other[start..end].iter().copied());
            }
            _ => out.truncate(at),
        }
    }
    out
}

/// A fuzz target's name, starting corpus and harness.
struct Target {
    name: &'static str,
    seeds: fn() -> Vec<Vec<u8>>,
    harness: fn(&[u8]),
}

/// Client-first message, NUL, client-final message (see `harness::scram`).
fn scram_seeds() -> Vec<Vec<u8>> {
    let pairs: &[(&str, &str)] = &[
        (
            "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        ),
        ("n,,n=u,r=clientnonce", "c=biws,r=clientnonceXXXX,p=AAAA"),
        ("y,,n=a=2Cb=3Dc,r=x", "c=eSws,r=x,p=="),
        ("n,a=admin,n=admin,r=abc,e=ext", "r=abc,c=biws,p=zz"),
        ("p=tls-unique,,n=u,r=a", "c=biws"),
        ("n,,n=,r=", ",p="),
    ];
    pairs
        .iter()
        .map(|(first, last)| {
            let mut v = first.as_bytes().to_vec();
            v.push(0);
            v.extend_from_slice(last.as_bytes());
            v
        })
        .collect()
}

#[test]
fn scram_corpus_replays() {
    assert!(replay("scram", scram_seeds(), harness::scram) >= 6);
}

const TARGETS: [Target; 6] = [
    Target {
        name: "wire_decode",
        seeds: wire_seeds,
        harness: harness::wire,
    },
    Target {
        name: "wire_compressed",
        seeds: compressed_seeds,
        harness: harness::compressed,
    },
    Target {
        name: "command_parse",
        seeds: command_seeds,
        harness: harness::command,
    },
    Target {
        name: "matcher",
        seeds: matcher_seeds,
        harness: harness::matcher,
    },
    Target {
        name: "update",
        seeds: update_seeds,
        harness: harness::update,
    },
    Target {
        name: "scram",
        seeds: scram_seeds,
        harness: harness::scram,
    },
];

#[test]
fn short_mutation_run_of_each_target() {
    let seed: u64 = std::env::var("EDDY_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00ED_D1F0_22ED);
    let runs: usize = std::env::var("EDDY_FUZZ_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    for Target {
        name,
        seeds,
        harness: run,
    } in TARGETS
    {
        let seeds = seeds();
        let mut rng = Rng(seed | 1);
        for i in 0..runs {
            let other = &seeds[rng.below(seeds.len())];
            let input = mutate(&mut rng, &seeds[i % seeds.len()], other);
            if std::panic::catch_unwind(|| run(&input)).is_err() {
                let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-failures");
                std::fs::create_dir_all(&dir).expect("failure dir");
                let path = dir.join(format!("{name}-{seed}-{i}"));
                std::fs::write(&path, &input).expect("failing input written");
                panic!(
                    "{name}: input {i} of seed {seed} panics; kept in {}",
                    path.display()
                );
            }
        }
        eprintln!("{name}: {runs} mutated inputs (seed {seed}) without a panic");
    }
}
