//! `validate`: checks a collection's documents against its indexes.
//!
//! Every document is decoded and its `_id` checked against the key it is stored under;
//! the index entries each document should have are computed (as the write path computes
//! them) and compared with the entries each index table holds: an entry no document
//! explains is *extra*, an expected entry that is absent is *missing*. A capped
//! collection's insertion-order tables must list exactly its documents. All of it reads
//! one snapshot, so the check never blocks writers.

use std::collections::HashMap;

use bson::Document;
use eddy_codes::MongoError;
use eddy_storage::KvRead;

use crate::catalog::{self, CollectionMeta};
use crate::{capped, index, storage_err, Reader};

/// What `validate` found. Counts and human-readable findings, in mongod's terms.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Report {
    /// Documents (records) in the collection.
    pub nrecords: u64,
    /// Documents that do not decode, or whose `_id` does not match their key.
    pub invalid_documents: u64,
    /// `(index name, entries)`, `_id_` first.
    pub keys_per_index: Vec<(String, u64)>,
    /// Indexes with an extra or missing entry.
    pub invalid_indexes: Vec<String>,
    pub extra_entries: Vec<Document>,
    pub missing_entries: Vec<Document>,
    /// The `_id` keys (hex) of records that do not decode.
    pub corrupt_records: Vec<String>,
    pub errors: Vec<String>,
}

impl Report {
    pub fn valid(&self) -> bool {
        self.errors.is_empty()
    }
}

/// The most extra/missing entries reported one by one (mongod also caps the lists).
const MAX_LISTED: usize = 100;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Reader {
    /// Validates a collection (see the module docs).
    pub fn validate(&self, meta: &CollectionMeta) -> Result<Report, MongoError> {
        validate(self.snap(), meta)
    }
}

fn validate(r: &(impl KvRead + ?Sized), meta: &CollectionMeta) -> Result<Report, MongoError> {
    let mut report = Report::default();
    // index name -> (entry key -> _id key) that the documents call for.
    let mut expected: Vec<HashMap<Vec<u8>, Vec<u8>>> = vec![HashMap::new(); meta.indexes.len()];
    // The collated `_id` index's entries (`crate::id_index`), for a collection with one.
    let id_collation = crate::id_index::collation(meta);
    let mut expected_ids: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut sizes = 0u64;
    for entry in r.scan_all(&meta.docs_table(), false).map_err(storage_err)? {
        let (key, bytes) = entry.map_err(storage_err)?;
        report.nrecords += 1;
        sizes += bytes.len() as u64;
        let doc = match catalog::decode(&bytes) {
            Ok(doc) => doc,
            Err(_) => {
                report.invalid_documents += 1;
                report.corrupt_records.push(hex(&key));
                continue;
            }
        };
        match doc.get("_id") {
            Some(id) if crate::timeseries::key_holds_id(meta, &key, id) => {}
            _ => {
                report.invalid_documents += 1;
                report.corrupt_records.push(hex(&key));
                continue;
            }
        }
        if let (Some(c), Some(id)) = (&id_collation, doc.get("_id")) {
            expected_ids.insert(crate::id_index::key_of(id, c), key.clone());
        }
        for (i, idx) in meta.indexes.iter().enumerate() {
            // A document the index cannot key (it could not have been written) is
            // reported by the index comparison below as missing entries.
            if let Ok(keys) = index::keys_for(idx, &doc) {
                for k in keys {
                    expected[i].insert(index::entry_key(idx, k, &key), key.clone());
                }
            }
        }
    }
    if report.invalid_documents > 0 {
        report.errors.push(format!(
            "Detected {} invalid document(s) in collection {}",
            report.invalid_documents, meta.ns
        ));
    }
    report
        .keys_per_index
        .push(("_id_".to_owned(), report.nrecords));
    if id_collation.is_some() {
        let mut bad = false;
        for entry in r
            .scan_all(&crate::id_index::table(meta), false)
            .map_err(storage_err)?
        {
            let (k, id) = entry.map_err(storage_err)?;
            if expected_ids.get(&k) == Some(&id) {
                expected_ids.remove(&k);
            } else {
                bad = true;
                if report.extra_entries.len() < MAX_LISTED {
                    report
                        .extra_entries
                        .push(bson::doc! {"indexName": "_id_", "key": hex(&k), "idKey": hex(&id)});
                }
            }
        }
        for (k, id) in &expected_ids {
            bad = true;
            if report.missing_entries.len() < MAX_LISTED {
                report
                    .missing_entries
                    .push(bson::doc! {"indexName": "_id_", "key": hex(k), "idKey": hex(id)});
            }
        }
        if bad {
            report.invalid_indexes.push("_id_".to_owned());
            report
                .errors
                .push("Index with name '_id_' has inconsistencies.".to_owned());
        }
    }
    for (idx, mut wanted) in meta.indexes.iter().zip(expected) {
        let mut keys = 0u64;
        let mut bad = false;
        for entry in r.scan_all(&index::table(idx), false).map_err(storage_err)? {
            let (k, id) = entry.map_err(storage_err)?;
            keys += 1;
            if wanted.get(&k) == Some(&id) {
                wanted.remove(&k);
            } else {
                bad = true;
                if report.extra_entries.len() < MAX_LISTED {
                    report.extra_entries.push(
                        bson::doc! {"indexName": idx.name(), "key": hex(&k), "idKey": hex(&id)},
                    );
                }
            }
        }
        for (k, id) in &wanted {
            bad = true;
            if report.missing_entries.len() < MAX_LISTED {
                report
                    .missing_entries
                    .push(bson::doc! {"indexName": idx.name(), "key": hex(k), "idKey": hex(id)});
            }
        }
        if bad {
            report.invalid_indexes.push(idx.name().to_owned());
            report.errors.push(format!(
                "Index with name '{}' has inconsistencies.",
                idx.name()
            ));
        }
        report.keys_per_index.push((idx.name().to_owned(), keys));
    }
    if meta.cap().is_some() {
        let listed = capped::natural_after(r, meta, 0, false, usize::MAX)?;
        let mut consistent = listed.len() as u64 == report.nrecords;
        for (_, key) in &listed {
            if r.get(&meta.docs_table(), key)
                .map_err(storage_err)?
                .is_none()
            {
                consistent = false;
            }
        }
        if capped::total_size(r, meta)? != sizes {
            consistent = false;
        }
        if !consistent {
            report.errors.push(format!(
                "The insertion order of capped collection {} does not match its documents",
                meta.ns
            ));
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Engine, EngineOptions, Namespace};
    use bson::doc;

    #[test]
    fn a_lost_index_entry_makes_the_collection_invalid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(EngineOptions::new(dir.path())).expect("open");
        let ns = Namespace::new("db", "c");
        engine
            .create_indexes(ns.clone(), vec![doc! {"key": {"a": 1}, "name": "a_1"}])
            .expect("index");
        engine
            .insert(
                ns.clone(),
                (0..5).map(|i| doc! {"_id": i, "a": i}).collect(),
                true,
            )
            .expect("insert");
        let meta = engine
            .reader()
            .expect("reader")
            .collection(&ns)
            .expect("meta")
            .expect("exists");
        let report = engine
            .reader()
            .expect("reader")
            .validate(&meta)
            .expect("validate");
        assert!(report.valid(), "{report:?}");
        assert_eq!(report.nrecords, 5);
        assert_eq!(
            report.keys_per_index,
            vec![("_id_".to_owned(), 5), ("a_1".to_owned(), 5)]
        );

        // Remove one index entry behind the engine's back (the committer is idle).
        let idx = meta.index("a_1").expect("index");
        let first = engine
            .reader()
            .expect("reader")
            .snap()
            .first(&index::table(idx))
            .expect("scan")
            .expect("an entry");
        engine
            .store
            .write_now(|w| w.delete(&index::table(idx), &first.0))
            .expect("write")
            .expect("delete");
        let report = engine
            .reader()
            .expect("reader")
            .validate(&meta)
            .expect("validate");
        assert!(!report.valid());
        assert_eq!(report.missing_entries.len(), 1);
        assert_eq!(report.invalid_indexes, vec!["a_1".to_owned()]);
        engine.close();
    }

    #[test]
    fn the_collated_id_index_is_checked() {
        use crate::id_index::tests::{meta, open, setup};
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = open(&dir);
        let ns = setup(&engine);
        engine
            .insert(ns.clone(), vec![doc! {"_id": "a"}, doc! {"_id": "B"}], true)
            .expect("insert");
        let meta = meta(&engine, &ns);
        let validate = || {
            engine
                .reader()
                .expect("reader")
                .validate(&meta)
                .expect("validate")
        };
        assert!(validate().valid(), "{:?}", validate());
        let table = crate::id_index::table(&meta);
        let first = engine
            .reader()
            .expect("reader")
            .snap()
            .first(&table)
            .expect("scan")
            .expect("an entry");
        engine
            .store
            .write_now(|w| w.delete(&table, &first.0))
            .expect("write")
            .expect("delete");
        let report = validate();
        assert!(!report.valid());
        assert_eq!(report.missing_entries.len(), 1);
        assert_eq!(report.invalid_indexes, vec!["_id_".to_owned()]);
        engine.close();
    }
}
