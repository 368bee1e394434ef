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

/// `bucketMaxSpanSeconds` of a granularity (mongod's `getMaxSpanSecondsFromGranularity`).
pub fn max_span_of(granularity: &str) -> i64 {
    match granularity {
        "minutes" => 60 * 60 * 24,
        "hours" => 60 * 60 * 24 * 30,
        _ => 60 * 60,
    }
}

/// `bucketRoundingSeconds` of a granularity (`getBucketRoundingSecondsFromGranularity`).
pub fn rounding_of(granularity: &str) -> i64 {
    match granularity {
        "minutes" => 60 * 60,
        "hours" => 60 * 60 * 24,
        _ => 60,
    }
}

fn seconds_field(options: &Document, field: &str) -> Option<i64> {
    match options.get(field)? {
        Bson::Int32(n) => Some(i64::from(*n)),
        Bson::Int64(n) => Some(*n),
        Bson::Double(d) => Some(*d as i64),
        _ => None,
    }
}

/// The bucketing of stored options: granularity (if any), max span, rounding, each
/// defaulted from the granularity (`seconds` when none) as mongod defaults them.
fn bucketing(options: &Document) -> (Option<&str>, i64, i64) {
    let granularity = options.get_str("granularity").ok();
    let g = granularity.unwrap_or("seconds");
    let span = seconds_field(options, "bucketMaxSpanSeconds").unwrap_or_else(|| max_span_of(g));
    let rounding =
        seconds_field(options, "bucketRoundingSeconds").unwrap_or_else(|| rounding_of(g));
    (granularity, span, rounding)
}

/// mongod's `optionsAreEqual`: the same time and meta fields, granularity (`seconds` when
/// none), max span and rounding (defaulted from the granularity).
pub fn options_are_equal(a: &Document, b: &Document) -> bool {
    let (ga, sa, ra) = bucketing(a);
    let (gb, sb, rb) = bucketing(b);
    a.get_str("timeField").ok() == b.get_str("timeField").ok()
        && a.get_str("metaField").ok() == b.get_str("metaField").ok()
        && ga.unwrap_or("seconds") == gb.unwrap_or("seconds")
        && sa == sb
        && ra == rb
}

/// `collMod`'s `timeseries: {granularity?, bucketMaxSpanSeconds?, bucketRoundingSeconds?}`
/// (values checked by the command) applied to a collection's options as mongod 7.0's
/// `applyTimeseriesOptionsModifications` does: the granularity only grows (seconds ->
/// minutes -> hours), custom bucketing comes as an equal pair that does not shrink, and
/// each replaces the other. `None` when nothing changes. All errors 72 InvalidOptions.
pub fn modify_options(
    current: &Document,
    change: &Document,
) -> Result<Option<Document>, MongoError> {
    let invalid = |message: &str| MongoError::new(ErrorCode::InvalidOptions, message.to_owned());
    let target_granularity = change.get_str("granularity").ok();
    let target_span = seconds_field(change, "bucketMaxSpanSeconds");
    let target_rounding = seconds_field(change, "bucketRoundingSeconds");
    if target_granularity.is_none() && target_span.is_none() && target_rounding.is_none() {
        return Ok(None);
    }
    let (current_granularity, current_span, current_rounding) = bucketing(current);
    let (want_span, want_rounding) = match target_granularity {
        Some(g) => {
            if target_span.is_some_and(|s| s != max_span_of(g)) {
                return Err(invalid("Timeseries 'bucketMaxSpanSeconds' is not configurable to a value other than the default for the provided granularity"));
            }
            if target_rounding.is_some() {
                return Err(invalid("Timeseries 'bucketRoundingSeconds' is not configurable alongside the granularity parameter"));
            }
            if let Some(current) = current_granularity {
                if current == g {
                    return Ok(None);
                }
                let grows = matches!((current, g), ("seconds", _) | ("minutes", "hours"));
                if !grows {
                    return Err(invalid("Invalid transition for timeseries.granularity. Can only transition from 'seconds' to 'minutes' or 'minutes' to 'hours'."));
                }
            }
            (max_span_of(g), rounding_of(g))
        }
        None => {
            let (Some(span), Some(rounding)) = (target_span, target_rounding) else {
                return Err(invalid("Timeseries 'bucketMaxSpanSeconds' and 'bucketRoundingSeconds' need to be set alongside each other"));
            };
            if span != rounding {
                return Err(invalid(
                    "Timeseries 'bucketRoundingSeconds' needs to be equal to 'bucketMaxSpanSeconds'",
                ));
            }
            (span, rounding)
        }
    };
    // A granularity that grew was accepted above whatever the spans were (mongod returns
    // early); custom bucketing is compared with the current values.
    if target_granularity.is_none() || current_granularity.is_none() {
        if current_span == want_span && current_rounding == want_rounding {
            return Ok(None);
        }
        if current_span > want_span {
            return Err(invalid(
                "Timeseries 'bucketMaxSpanSeconds' needs to be equal or greater to transition",
            ));
        }
        if current_rounding > want_rounding {
            return Err(invalid(
                "Timeseries 'bucketRoundingSeconds' needs to be equal or greater to transition",
            ));
        }
    }
    let mut out = doc! {"timeField": current.get_str("timeField").unwrap_or_default()};
    if let Ok(meta) = current.get_str("metaField") {
        out.insert("metaField", meta);
    }
    match target_granularity {
        Some(g) => {
            out.insert("granularity", g);
            out.insert("bucketMaxSpanSeconds", want_span as i32);
        }
        None => {
            out.insert("bucketRoundingSeconds", want_rounding as i32);
            out.insert("bucketMaxSpanSeconds", want_span as i32);
        }
    }
    Ok(Some(out))
}

/// Parses `timeseries: {timeField, metaField?, granularity?, bucketMaxSpanSeconds?,
/// bucketRoundingSeconds?}` (of `create`, or of `$out`) as mongod 7.0's IDL and
/// `checkBucketingParameters` do, into the options it stores: `granularity: "seconds"`
/// and the granularity's `bucketMaxSpanSeconds` when no custom bucketing is given.
/// `context` names the field in errors (`timeseries`, `$out.timeseries`).
pub fn parse_options(v: &Bson, context: &str) -> Result<Document, MongoError> {
    let Bson::Document(spec) = v else {
        return Err(wrong_type(context, v, "type 'object'"));
    };
    let (mut time, mut meta, mut granularity, mut max_span, mut rounding) =
        (None, None, None, None, None);
    for (field, value) in spec {
        let string = || match value {
            Bson::String(s) => Ok(s.clone()),
            other => Err(wrong_type(
                &format!("{context}.{field}"),
                other,
                "type 'string'",
            )),
        };
        let seconds = || bucket_seconds(context, field, value);
        match field.as_str() {
            "timeField" => time = Some(string()?),
            "metaField" => meta = Some(string()?),
            "granularity" => {
                let g = string()?;
                if !matches!(g.as_str(), "seconds" | "minutes" | "hours") {
                    return Err(MongoError::bad_value(format!(
                        "Enumeration value '{g}' for field '{context}.granularity' is not a valid value."
                    )));
                }
                granularity = Some(g);
            }
            "bucketMaxSpanSeconds" => max_span = Some(seconds()?),
            "bucketRoundingSeconds" => rounding = Some(seconds()?),
            other => {
                return Err(MongoError::location(
                    eddy_codes::location::UNKNOWN_FIELD,
                    format!("BSON field '{context}.{other}' is an unknown field."),
                ))
            }
        }
    }
    let time = time.ok_or_else(|| {
        MongoError::location(
            eddy_codes::location::MISSING_FIELD,
            format!("BSON field '{context}.timeField' is missing but a required field"),
        )
    })?;
    let invalid = |message: String| MongoError::new(ErrorCode::InvalidOptions, message);
    let mut out = bson::doc! {"timeField": time};
    if let Some(meta) = meta {
        out.insert("metaField", meta);
    }
    match (granularity, max_span, rounding) {
        (Some(g), span, rounding) => {
            let default = max_span_of(&g);
            if span.is_some_and(|s| s != default) {
                return Err(invalid(format!("Time-series 'bucketMaxSpanSeconds' cannot be set to a value other than the default of {default} for the provided granularity")));
            }
            if rounding.is_some() {
                return Err(invalid(
                    "Time-series 'bucketRoundingSeconds' cannot be set alongside the granularity parameter".into(),
                ));
            }
            out.insert("granularity", g);
            out.insert("bucketMaxSpanSeconds", default as i32);
        }
        (None, None, None) => {
            out.insert("granularity", "seconds");
            out.insert("bucketMaxSpanSeconds", max_span_of("seconds") as i32);
        }
        (None, span, rounding) => {
            if span != rounding {
                return Err(invalid(
                    "Time-series 'bucketRoundingSeconds' must be equal to 'bucketMaxSpanSeconds'"
                        .into(),
                ));
            }
            let seconds = span.unwrap_or_default() as i32;
            out.insert("bucketRoundingSeconds", seconds);
            out.insert("bucketMaxSpanSeconds", seconds);
        }
    }
    Ok(out)
}

/// `create`'s checks of the time and meta fields (72 InvalidOptions, mongod's `CmdCreate`):
/// top-level fields, and a `metaField` that is neither `_id` nor the `timeField`. `ns`
/// prefixes the top-level message, as in mongod.
pub fn check_fields(ns: &str, options: &Document) -> Result<(), MongoError> {
    let invalid = |message: String| MongoError::new(ErrorCode::InvalidOptions, message);
    let top_level = |field: &str| {
        invalid(format!(
            "{ns}: '{field}' must be a top-level field and not contain a '.'"
        ))
    };
    let time = options.get_str("timeField").unwrap_or_default();
    if time.contains('.') {
        return Err(top_level("timeField"));
    }
    if let Ok(meta) = options.get_str("metaField") {
        if meta == "_id" {
            return Err(invalid("'metaField' cannot be \"_id\"".into()));
        }
        if meta == time {
            return Err(invalid(
                "'metaField' cannot be the same as 'timeField'".into(),
            ));
        }
        if meta.contains('.') {
            return Err(top_level("metaField"));
        }
    }
    Ok(())
}

/// 14 TypeMismatch for `field` holding `v` where `expected` is wanted.
fn wrong_type(field: &str, v: &Bson, expected: &str) -> MongoError {
    MongoError::new(
        ErrorCode::TypeMismatch,
        format!(
            "BSON field '{field}' is the wrong type '{}', expected {expected}",
            eddy_query::util::type_name(v)
        ),
    )
}

/// The largest `bucketMaxSpanSeconds`/`bucketRoundingSeconds` (one year).
const MAX_BUCKET_SECONDS: i64 = 31_536_000;

/// A `bucketMaxSpanSeconds`/`bucketRoundingSeconds` value: a whole number from 1 to one
/// year (51024 outside, as mongod's IDL validator), `context.field` in errors.
pub fn bucket_seconds(context: &str, field: &str, value: &Bson) -> Result<i64, MongoError> {
    let n = match value {
        Bson::Int32(n) => i64::from(*n),
        Bson::Int64(n) => *n,
        // A fraction is no whole number of seconds: out of range, as mongod's `safeInt`.
        Bson::Double(d) if d.fract() == 0.0 => *d as i64,
        Bson::Double(_) => 0,
        Bson::Decimal128(d) => d
            .to_string()
            .parse::<f64>()
            .ok()
            .filter(|f| f.fract() == 0.0)
            .map_or(0, |f| f as i64),
        other => {
            return Err(wrong_type(
                &format!("{context}.{field}"),
                other,
                "type 'int'",
            ))
        }
    };
    let out_of_range = |bound: &str| {
        MongoError::location(
            51024,
            format!("BSON field '{context}.{field}' value must be {bound}, actual value '{n}'"),
        )
    };
    if n < 1 {
        return Err(out_of_range(">= 1"));
    }
    if n > MAX_BUCKET_SECONDS {
        return Err(out_of_range(&format!("<= {MAX_BUCKET_SECONDS}")));
    }
    Ok(n)
}

/// `collMod`'s collection-level `expireAfterSeconds` (a time-series or clustered
/// collection; the type checked by the command): `"off"` (`None`) or a number of seconds
/// from 0 to the current time since the epoch (mongod's `validateExpireAfterSeconds` for
/// a clustered TTL index), stored as a long. 72 InvalidOptions otherwise.
pub fn collection_expiry(v: &Bson) -> Result<Option<i64>, MongoError> {
    let invalid = |message: String| MongoError::new(ErrorCode::InvalidOptions, message);
    let seconds = match v {
        Bson::String(s) if s == "off" => return Ok(None),
        Bson::String(s) => {
            return Err(invalid(format!(
                "Invalid string value for the 'clusteredIndex::expireAfterSeconds' option. Got: '{s}'. Accepted value is 'off'"
            )))
        }
        Bson::Int32(n) => i64::from(*n),
        Bson::Int64(n) => *n,
        Bson::Double(d) => *d as i64,
        _ => 0,
    };
    if seconds < 0 {
        return Err(invalid(
            "TTL index 'expireAfterSeconds' option cannot be less than 0".into(),
        ));
    }
    let now_ms = DateTime::now().timestamp_millis();
    if seconds > i64::MAX / 1000 || seconds * 1000 > now_ms {
        return Err(invalid(
            "TTL index 'expireAfterSeconds' option must be within an acceptable range, try a lower number".into(),
        ));
    }
    Ok(Some(seconds))
}

/// mongod 7.0's checks of an index spec on a time-series collection, made as it
/// translates the spec for the buckets (`makeTimeseriesCreateIndexesCommand`), before
/// the spec itself is validated: per field in order, a `partialFilterExpression` with
/// a `collation` (85), `sparse` on a field other than the time and meta fields (72),
/// `unique` (72), a text key (72); then a TTL index (`expireAfterSeconds`) needs a
/// `partialFilterExpression` on the `metaField` only (72), a single key (67) and that
/// key the `timeField` (72).
pub fn check_index_spec(spec: &Spec<'_>, index: &Document) -> Result<(), MongoError> {
    let invalid = |message: &str| MongoError::new(ErrorCode::InvalidOptions, message.to_owned());
    let key = index.get_document("key").ok();
    let mut ttl = false;
    let mut meta_only_filter = false;
    for (field, value) in index {
        match field.as_str() {
            "partialFilterExpression" => {
                if index.contains_key("collation") {
                    return Err(MongoError::new(
                        ErrorCode::IndexOptionsConflict,
                        "On a time-series collection, partialFilterExpression and collation arguments are incompatible",
                    ));
                }
                if let Bson::Document(filter) = value {
                    meta_only_filter = spec
                        .meta_field
                        .map_or(filter.is_empty(), |meta| on_meta_only(filter, meta));
                }
            }
            "sparse" => {
                let on_time_or_meta = |k: &str| {
                    k == spec.time_field
                        || spec
                            .meta_field
                            .is_some_and(|m| k == m || k.starts_with(&format!("{m}.")))
                };
                if key.is_some_and(|key| !key.keys().all(|k| on_time_or_meta(k))) {
                    return Err(invalid(
                        "Sparse indexes are not supported on time-series measurements",
                    ));
                }
            }
            "unique" if eddy_query::util::true_value(value) => {
                return Err(invalid(
                    "Unique indexes are not supported on time-series collections",
                ));
            }
            "key" if key.is_some_and(|k| k.values().any(|v| v.as_str() == Some("text"))) => {
                return Err(invalid(
                    "Text indexes are not supported on time-series collections",
                ));
            }
            "expireAfterSeconds" => ttl = true,
            _ => {}
        }
    }
    if !ttl {
        return Ok(());
    }
    if !meta_only_filter {
        return Err(invalid(
            "TTL indexes on time-series collections require a partialFilterExpression on the metaField",
        ));
    }
    let Some(key) = key else { return Ok(()) };
    if key.len() != 1 {
        return Err(MongoError::new(
            ErrorCode::CannotCreateIndex,
            format!(
                "TTL indexes are single-field indexes, compound indexes do not support TTL. Index spec: {}",
                crate::display_value(&Bson::Document(key.clone()))
            ),
        ));
    }
    if key.keys().next().map(String::as_str) != Some(spec.time_field) {
        return Err(invalid(
            "TTL indexes on non-time fields are not supported on time-series collections",
        ));
    }
    Ok(())
}

/// Whether a filter's predicates are all on `meta` or paths below it (mongod's split of a
/// predicate into its meta part and a residual on the measurements: here no residual).
fn on_meta_only(filter: &Document, meta: &str) -> bool {
    filter.iter().all(|(name, value)| match name.as_str() {
        "$and" | "$or" | "$nor" => match value {
            Bson::Array(items) => items
                .iter()
                .all(|i| matches!(i, Bson::Document(d) if on_meta_only(d, meta))),
            _ => false,
        },
        n if n.starts_with('$') => false,
        n => first_component(n) == meta,
    })
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

    #[test]
    fn coll_mod_bucketing_follows_mongods_transitions() {
        let seconds =
            doc! {"timeField": "t", "granularity": "seconds", "bucketMaxSpanSeconds": 3600};
        let code = |current: &Document, change: Document| {
            modify_options(current, &change).err().map(|e| e.code)
        };
        let minutes = modify_options(&seconds, &doc! {"granularity": "minutes"})
            .expect("grows")
            .expect("changed");
        assert_eq!(
            minutes,
            doc! {"timeField": "t", "granularity": "minutes", "bucketMaxSpanSeconds": 86400}
        );
        assert_eq!(code(&minutes, doc! {"granularity": "seconds"}), Some(72));
        assert_eq!(
            modify_options(&minutes, &doc! {"granularity": "minutes"}).expect("same"),
            None
        );
        assert_eq!(modify_options(&minutes, &doc! {}).expect("empty"), None);
        assert_eq!(
            code(&minutes, doc! {"bucketMaxSpanSeconds": 90000}),
            Some(72)
        );
        assert_eq!(
            code(
                &minutes,
                doc! {"bucketMaxSpanSeconds": 90000, "bucketRoundingSeconds": 3600}
            ),
            Some(72)
        );
        // Smaller than the granularity's span (86400) or rounding (3600).
        assert_eq!(
            code(
                &minutes,
                doc! {"bucketMaxSpanSeconds": 600, "bucketRoundingSeconds": 600}
            ),
            Some(72)
        );
        let custom = modify_options(
            &minutes,
            &doc! {"bucketMaxSpanSeconds": 90000, "bucketRoundingSeconds": 90000},
        )
        .expect("grows")
        .expect("changed");
        assert_eq!(
            custom,
            doc! {"timeField": "t", "bucketRoundingSeconds": 90000, "bucketMaxSpanSeconds": 90000}
        );
        // Custom 200/200 to minutes (86400/3600): both grow.
        let small =
            doc! {"timeField": "t", "bucketRoundingSeconds": 200, "bucketMaxSpanSeconds": 200};
        assert!(modify_options(&small, &doc! {"granularity": "minutes"})
            .expect("grows")
            .is_some());
        assert_eq!(code(&custom, doc! {"granularity": "minutes"}), Some(72));
        assert!(options_are_equal(
            &doc! {"timeField": "t"},
            &doc! {"timeField": "t", "granularity": "seconds", "bucketMaxSpanSeconds": 3600}
        ));
        assert!(!options_are_equal(
            &doc! {"timeField": "t", "granularity": "hours"},
            &doc! {"timeField": "t", "granularity": "seconds", "bucketMaxSpanSeconds": 3600}
        ));
    }

    #[test]
    fn collection_expiry_takes_off_or_seconds_up_to_now() {
        assert_eq!(
            collection_expiry(&Bson::String("off".into())).expect("off"),
            None
        );
        assert_eq!(collection_expiry(&Bson::Int64(60)).expect("60"), Some(60));
        for bad in [
            Bson::String("10".into()),
            Bson::Int64(-1),
            Bson::Int64(4_611_686_018_427_387_904),
            Bson::Int64(DateTime::now().timestamp_millis() / 1000 + 3600),
        ] {
            assert_eq!(
                collection_expiry(&bad).expect_err("refused").code,
                72,
                "{bad}"
            );
        }
    }

    #[test]
    fn ttl_indexes_need_a_meta_only_filter_on_the_time_field() {
        let spec = Spec {
            time_field: "tm",
            meta_field: Some("mm"),
        };
        let code = |index: Document| check_index_spec(&spec, &index).err().map(|e| e.code);
        let on_meta = doc! {"mm.a": {"$gt": 5}, "$or": [{"mm": 1}, {"mm.b": 2}]};
        assert_eq!(
            code(
                doc! {"key": {"tm": 1}, "expireAfterSeconds": 1, "partialFilterExpression": on_meta.clone()}
            ),
            None
        );
        assert_eq!(
            code(doc! {"key": {"tm": 1}, "expireAfterSeconds": 1}),
            Some(72)
        );
        assert_eq!(
            code(
                doc! {"key": {"tm": 1}, "expireAfterSeconds": 1, "partialFilterExpression": {"mm": 1, "x": 1}}
            ),
            Some(72)
        );
        assert_eq!(
            code(
                doc! {"key": {"tm": 1, "mm": 1}, "expireAfterSeconds": 1, "partialFilterExpression": on_meta.clone()}
            ),
            Some(67)
        );
        assert_eq!(
            code(
                doc! {"key": {"mm": 1}, "expireAfterSeconds": 1, "partialFilterExpression": on_meta.clone()}
            ),
            Some(72)
        );
        assert_eq!(code(doc! {"key": {"x": 1}, "unique": true}), Some(72));
        assert_eq!(code(doc! {"key": {"x": 1}, "sparse": true}), Some(72));
        assert_eq!(
            code(doc! {"key": {"mm.a": 1, "tm": 1}, "sparse": true}),
            None
        );
        assert_eq!(code(doc! {"key": {"x": "text"}}), Some(72));
        assert_eq!(
            code(
                doc! {"key": {"x": 1}, "partialFilterExpression": on_meta, "collation": {"locale": "fr"}}
            ),
            Some(85)
        );
    }
}
