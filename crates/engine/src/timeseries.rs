//! Time-series collections and collection-level expiry, as Eddy keeps them.
//!
//! mongod stores a time-series collection as a view over `system.buckets.<name>`, whose
//! documents are compressed buckets of measurements. Eddy does not bucket: the
//! collection is an ordinary collection of measurements, stored as inserted, whose
//! catalog entry carries mongod's `timeseries` options (`{timeField, metaField?,
//! granularity | bucketRoundingSeconds, bucketMaxSpanSeconds}`). What a client sees of
//! the difference is listed in docs/COMPAT.md.
//!
//! Two things set a time-series collection apart in storage:
//! - measurements may share an `_id` (mongod does not index `_id` on time-series
//!   collections), so a measurement's storage key is its encoded `_id` followed by a
//!   big-endian sequence number ([`storage_key`]): the documents table still reads in
//!   `_id` order, every range scan over `_id` bounds still finds them (index entries
//!   and bounds treat keys as prefixes), but there is no point read by `_id` (the
//!   planner never picks IDHACK for one);
//! - every measurement must hold a date in its `timeField` ([`check_measurement`]);
//! - its document writes are logged under `system.buckets.<name>` ([`logged_ns`]).
//!
//! A collection-level `expireAfterSeconds` (time-series and clustered collections)
//! expires documents by the `timeField` or by the `_id` date ([`expired_filter`]), in
//! the same TTL passes as TTL indexes (`write/ttl.rs`).

use bson::{doc, Bson, DateTime, Document};
use eddy_codes::{ErrorCode, MongoError};

use crate::catalog::{CollectionMeta, Namespace};
use crate::read::id_key;
use crate::write::UpdateOp;

/// The fields of a time-series collection's options that shape its documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec<'a> {
    pub time_field: &'a str,
    pub meta_field: Option<&'a str>,
}

impl CollectionMeta {
    /// The time-series options of a time-series collection (`None` for any other).
    pub fn timeseries(&self) -> Option<Spec<'_>> {
        let ts = self.options.get_document("timeseries").ok()?;
        Some(Spec {
            time_field: ts.get_str("timeField").ok()?,
            meta_field: ts.get_str("metaField").ok(),
        })
    }

    /// The collection-level `expireAfterSeconds` (time-series and clustered
    /// collections), in seconds.
    pub fn expire_after_seconds(&self) -> Option<i64> {
        match self.options.get("expireAfterSeconds")? {
            Bson::Int32(n) => Some(i64::from(*n)),
            Bson::Int64(n) => Some(*n),
            Bson::Double(d) => Some(*d as i64),
            _ => None,
        }
    }
}

/// The namespace a document write of `meta` is logged under: a time-series
/// collection's writes go to `system.buckets.<name>`, as mongod's do, so database- and
/// cluster-wide change streams (which skip `system.*`) do not report them.
pub fn logged_ns(meta: &CollectionMeta) -> Namespace {
    match meta.timeseries() {
        Some(_) => Namespace::new(
            meta.ns.db.clone(),
            format!("system.buckets.{}", meta.ns.coll),
        ),
        None => meta.ns.clone(),
    }
}

/// The storage key of a measurement: its encoded `_id`, then `seq` (unique per
/// measurement) so that measurements sharing an `_id` are kept apart, in insertion order.
pub fn storage_key(id: &Bson, seq: u64) -> Vec<u8> {
    let mut key = id_key(id);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Whether `key` is the storage key of a document whose `_id` is `id` in `meta`.
pub fn key_holds_id(meta: &CollectionMeta, key: &[u8], id: &Bson) -> bool {
    let encoded = id_key(id);
    match meta.timeseries() {
        Some(_) => key.len() == encoded.len() + 8 && key.starts_with(&encoded),
        None => key == encoded.as_slice(),
    }
}

/// mongod's check of a measurement: its `timeField` must hold a date (2 BadValue).
pub fn check_measurement(spec: &Spec<'_>, doc: &Document) -> Result<(), MongoError> {
    match doc.get(spec.time_field) {
        Some(Bson::DateTime(_)) => Ok(()),
        _ => Err(MongoError::bad_value(format!(
            "'{}' must be present and contain a valid BSON UTC datetime value",
            spec.time_field
        ))),
    }
}

/// The filter of the documents a collection-level `expireAfterSeconds` has expired at
/// `now`: measurements whose `timeField` is older than the cut-off, or, in a clustered
/// collection, documents whose `_id` is a date older than it (`$lt` on a date matches
/// dates only, so other `_id`s never expire, as with mongod). `None` without one.
pub fn expired_filter(meta: &CollectionMeta, now: DateTime) -> Option<Document> {
    let seconds = meta.expire_after_seconds()?;
    let cutoff = DateTime::from_millis(
        now.timestamp_millis()
            .saturating_sub(seconds.saturating_mul(1000)),
    );
    if let Some(spec) = meta.timeseries() {
        return Some(doc! {spec.time_field: {"$lt": cutoff}});
    }
    meta.clustered_index()?;
    Some(doc! {"_id": {"$lt": cutoff}})
}

/// mongod 7.0's restrictions on an update of a time-series collection (all 72
/// InvalidOptions, checked in mongod's order): `multi: true`, no upsert, a `metaField`,
/// a query on the `metaField` only, an update document of operators (no replacement,
/// no pipeline) that modifies the `metaField` only.
pub fn check_update(spec: &Spec<'_>, op: &UpdateOp) -> Result<(), MongoError> {
    let invalid = |message: String| MongoError::new(ErrorCode::InvalidOptions, message);
    if !op.multi {
        return Err(invalid(
            "Cannot perform a non-multi update on a time-series collection".into(),
        ));
    }
    if op.upsert {
        return Err(invalid(
            "Cannot perform an upsert on a time-series collection".into(),
        ));
    }
    let Some(meta) = spec.meta_field else {
        return Err(invalid(
            "Cannot perform an update on a time-series collection that does not have a metaField"
                .into(),
        ));
    };
    for (name, value) in &op.filter {
        check_query_field(name, value, true, false, meta)?;
    }
    let update =
        match &op.update {
            Bson::Array(_) => {
                return Err(invalid(
                    "Cannot perform an update on a time-series collection using a pipeline update"
                        .into(),
                ))
            }
            Bson::Document(d) if d.keys().next().is_some_and(|k| k.starts_with('$')) => d,
            _ => return Err(invalid(
                "Cannot perform an update on a time-series collection using a replacement document"
                    .into(),
            )),
        };
    let not_meta = || {
        invalid(format!(
            "Cannot perform an update on a time-series collection which updates a field that is not the metaField '{meta}'"
        ))
    };
    for (operator, fields) in update {
        let Bson::Document(fields) = fields else {
            continue;
        };
        for (field, value) in fields {
            if first_component(field) != meta {
                return Err(not_meta());
            }
            if operator == "$rename"
                && !matches!(value, Bson::String(to) if first_component(to) == meta)
            {
                return Err(not_meta());
            }
        }
    }
    Ok(())
}

fn first_component(path: &str) -> &str {
    path.split('.').next().unwrap_or(path)
}

/// mongod's walk of a time-series update's query (`translateQuery`): every field name
/// at the top level, and in a document held by an array (`$and: [{...}]`), must be the
/// `metaField` or a path below it; `$jsonSchema` may require and describe it only.
fn check_query_field(
    name: &str,
    value: &Bson,
    top_level: bool,
    parent_is_array: bool,
    meta: &str,
) -> Result<(), MongoError> {
    let not_meta = || {
        MongoError::new(
            ErrorCode::InvalidOptions,
            format!("Cannot perform an update or delete on a time-series collection when querying on a field that is not the metaField '{meta}'"),
        )
    };
    if name == "$jsonSchema" {
        if let Bson::Document(schema) = value {
            if let Ok(required) = schema.get_array("required") {
                if required
                    .iter()
                    .any(|r| !matches!(r, Bson::String(s) if s == meta))
                {
                    return Err(not_meta());
                }
            }
            if let Ok(properties) = schema.get_document("properties") {
                if properties.keys().any(|k| k != meta) {
                    return Err(not_meta());
                }
            }
        }
        return Ok(());
    }
    if top_level && !name.starts_with('$') && first_component(name) != meta {
        return Err(not_meta());
    }
    let children_top = parent_is_array && matches!(value, Bson::Document(_));
    let is_array = matches!(value, Bson::Array(_));
    match value {
        Bson::Document(d) => {
            for (k, v) in d {
                check_query_field(k, v, children_top, is_array, meta)?;
            }
        }
        Bson::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                check_query_field(&i.to_string(), v, children_top, is_array, meta)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(options: Document) -> CollectionMeta {
        CollectionMeta {
            ns: Namespace::new("db", "c"),
            id: 1,
            uuid: crate::catalog::new_uuid(),
            options,
            indexes: Vec::new(),
        }
    }

    #[test]
    fn measurements_need_a_date() {
        let m = meta(doc! {"timeseries": {"timeField": "t", "metaField": "m"}});
        let spec = m.timeseries().expect("a time-series collection");
        assert_eq!(spec.meta_field, Some("m"));
        assert!(check_measurement(&spec, &doc! {"t": DateTime::from_millis(1)}).is_ok());
        let err = check_measurement(&spec, &doc! {"t": 1}).expect_err("refused");
        assert_eq!(err.code, 2);
        assert!(check_measurement(&spec, &doc! {}).is_err());
        assert_eq!(meta(doc! {}).timeseries(), None);
    }

    #[test]
    fn keys_keep_equal_ids_apart_in_id_order() {
        let a = storage_key(&Bson::Int32(1), 7);
        let b = storage_key(&Bson::Int32(1), 8);
        let c = storage_key(&Bson::Int32(2), 0);
        assert!(a < b && b < c);
        let m = meta(doc! {"timeseries": {"timeField": "t"}});
        assert!(key_holds_id(&m, &a, &Bson::Int32(1)));
        assert!(!key_holds_id(&m, &c, &Bson::Int32(1)));
    }

    #[test]
    fn expiry_follows_the_options() {
        let now = DateTime::from_millis(100_000);
        let cutoff = DateTime::from_millis(70_000);
        let ts = meta(doc! {"timeseries": {"timeField": "t"}, "expireAfterSeconds": 30});
        assert_eq!(expired_filter(&ts, now), Some(doc! {"t": {"$lt": cutoff}}));
        let clustered = meta(
            doc! {"clusteredIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_", "unique": true}, "expireAfterSeconds": 30_i64},
        );
        assert_eq!(
            expired_filter(&clustered, now),
            Some(doc! {"_id": {"$lt": cutoff}})
        );
        assert_eq!(expired_filter(&meta(doc! {}), now), None);
    }

    fn update(filter: Document, update: Bson, multi: bool) -> UpdateOp {
        UpdateOp {
            filter,
            update,
            multi,
            ..UpdateOp::default()
        }
    }

    #[test]
    fn updates_touch_the_meta_field_only() {
        let spec = Spec {
            time_field: "t",
            meta_field: Some("m"),
        };
        let set = |f: &str| Bson::Document(doc! {"$set": {f: 1}});
        let code = |op: UpdateOp| check_update(&spec, &op).err().map(|e| e.code);
        assert_eq!(code(update(doc! {"m.a": 1}, set("m.b"), true)), None);
        assert_eq!(
            code(update(doc! {"$and": [{"m": 1}]}, set("m"), true)),
            None
        );
        assert_eq!(code(update(doc! {"m": 1}, set("m"), false)), Some(72));
        assert_eq!(code(update(doc! {"x": 1}, set("m"), true)), Some(72));
        assert_eq!(
            code(update(doc! {"$or": [{"x": 1}]}, set("m"), true)),
            Some(72)
        );
        assert_eq!(code(update(doc! {"m": 1}, set("x"), true)), Some(72));
        assert_eq!(
            code(update(doc! {}, Bson::Document(doc! {"x": 1}), true)),
            Some(72)
        );
        assert_eq!(code(update(doc! {}, Bson::Array(vec![]), true)), Some(72));
        let rename = Bson::Document(doc! {"$rename": {"m.a": "x"}});
        assert_eq!(code(update(doc! {}, rename, true)), Some(72));
        let no_meta = Spec {
            time_field: "t",
            meta_field: None,
        };
        assert!(check_update(&no_meta, &update(doc! {}, set("m"), true)).is_err());
    }
}
