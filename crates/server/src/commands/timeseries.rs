//! `create`'s `timeseries` and `expireAfterSeconds` options, validated as mongod 7.0
//! does (its IDL, `CmdCreate`'s checks, `checkBucketingParameters`) and completed with
//! the defaults it stores: `granularity: "seconds"` and the `bucketMaxSpanSeconds` of
//! the granularity when no custom bucketing is given; and `collMod`'s `timeseries` and
//! `expireAfterSeconds`, parsed here as its IDL does and applied by the engine. How Eddy
//! keeps such a collection: `eddy_engine::timeseries`.

use bson::{Bson, Document};
use eddy_codes::{ErrorCode, MongoError};

use crate::args::{as_integer, wrong_type};

/// The largest `expireAfterSeconds` (mongod's `kExpireAfterSecondsMax`).
const MAX_EXPIRE_AFTER_SECONDS: i64 = i32::MAX as i64;

/// The options `create` accepts beside `timeseries` (mongod's
/// `kAllowedCollectionCreationOptions`; generic arguments too).
const ALLOWED_WITH_TIMESERIES: &[&str] = &[
    "timeseries",
    "expireAfterSeconds",
    "storageEngine",
    "indexOptionDefaults",
    "collation",
    "temp",
];

/// Parses `timeseries: {timeField, metaField?, granularity?, bucketMaxSpanSeconds?,
/// bucketRoundingSeconds?}` into the options mongod stores
/// ([`eddy_engine::timeseries::parse_options`], shared with `$out`).
pub fn timeseries_option(v: &Bson) -> Result<Document, MongoError> {
    let Bson::Document(_) = v else {
        return Err(wrong_type("create", "timeseries", v, "type 'object'"));
    };
    eddy_engine::timeseries::parse_options(v, "timeseries")
}

/// `CmdCreate`'s checks of a time-series `create` (72 InvalidOptions): no option
/// outside [`ALLOWED_WITH_TIMESERIES`] (`capped: false` passes), top-level time and
/// meta fields, a `metaField` that is neither `_id` nor the `timeField`.
pub fn check_create(cmd: &Document, ns: &str, options: &Document) -> Result<(), MongoError> {
    let invalid = |message: String| MongoError::new(ErrorCode::InvalidOptions, message);
    for (field, value) in cmd.iter().skip(1) {
        let allowed = ALLOWED_WITH_TIMESERIES.contains(&field.as_str())
            || super::data::GENERIC_FIELDS.contains(&field.as_str())
            || matches!(field.as_str(), "writeConcern" | "comment")
            || (field == "capped" && !crate::args::truthy(value));
        if !allowed {
            return Err(invalid(format!(
                "{ns}: 'timeseries' is not allowed with '{field}'"
            )));
        }
    }
    eddy_engine::timeseries::check_fields(ns, options)
}

/// `expireAfterSeconds` of `create` (time-series and clustered collections): a whole
/// number from 0 to 2^31 - 1, stored as a long.
pub fn expire_after_seconds(v: &Bson) -> Result<i64, MongoError> {
    let n = match v {
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => as_integer(v)
            .ok_or_else(|| {
                MongoError::bad_value(format!(
                    "Expected an integer, but found {} in expireAfterSeconds",
                    crate::args::type_name(v)
                ))
            })?,
        other => {
            return Err(wrong_type(
                "create",
                "expireAfterSeconds",
                other,
                "types '[long, int, decimal, double]'",
            ))
        }
    };
    if n < 0 {
        return Err(MongoError::new(
            ErrorCode::InvalidOptions,
            "TTL index 'expireAfterSeconds' option cannot be less than 0",
        ));
    }
    if n > MAX_EXPIRE_AFTER_SECONDS {
        return Err(MongoError::new(
            ErrorCode::InvalidOptions,
            "TTL index 'expireAfterSeconds' option must be within an acceptable range, try a lower number",
        ));
    }
    Ok(n)
}

/// `collMod`'s `expireAfterSeconds`: `"off"` or a whole number (mongod's IDL variant of a
/// string and a `safeInt64`); the engine checks the value against the collection.
pub fn coll_mod_expiry(v: &Bson) -> Result<Bson, MongoError> {
    match v {
        Bson::String(_) => Ok(v.clone()),
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => {
            as_integer(v).map(Bson::Int64).ok_or_else(|| {
                MongoError::bad_value(format!(
                    "Expected an integer, but found {} in expireAfterSeconds",
                    crate::args::type_name(v)
                ))
            })
        }
        other => Err(wrong_type(
            "collMod",
            "expireAfterSeconds",
            other,
            "types '[string, long, int, decimal, double]'",
        )),
    }
}

/// `collMod`'s `timeseries: {granularity?, bucketMaxSpanSeconds?, bucketRoundingSeconds?}`
/// parsed as mongod's `CollModTimeseries` IDL (2 for an unknown granularity, 51024 for
/// seconds outside 1..=31536000, 40415 for another field); the engine applies it.
pub fn coll_mod_timeseries(v: &Bson) -> Result<Bson, MongoError> {
    let Bson::Document(spec) = v else {
        return Err(wrong_type("collMod", "timeseries", v, "type 'object'"));
    };
    let mut out = Document::new();
    for (field, value) in spec {
        match field.as_str() {
            "granularity" => {
                let Bson::String(g) = value else {
                    return Err(wrong_type(
                        "collMod.timeseries",
                        field,
                        value,
                        "type 'string'",
                    ));
                };
                if !matches!(g.as_str(), "seconds" | "minutes" | "hours") {
                    return Err(MongoError::bad_value(format!(
                        "Enumeration value '{g}' for field 'collMod.timeseries.granularity' is not a valid value."
                    )));
                }
                out.insert(field.clone(), g.clone());
            }
            "bucketMaxSpanSeconds" | "bucketRoundingSeconds" => {
                let n =
                    eddy_engine::timeseries::bucket_seconds("collMod.timeseries", field, value)?;
                out.insert(field.clone(), n as i32);
            }
            other => {
                return Err(MongoError::location(
                    eddy_codes::location::UNKNOWN_FIELD,
                    format!("BSON field 'collMod.timeseries.{other}' is an unknown field."),
                ))
            }
        }
    }
    Ok(Bson::Document(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn parse(spec: Document) -> Result<Document, MongoError> {
        timeseries_option(&Bson::Document(spec))
    }

    #[test]
    fn defaults_are_filled_in_as_mongod_stores_them() {
        assert_eq!(
            parse(doc! {"timeField": "t"}).expect("accepted"),
            doc! {"timeField": "t", "granularity": "seconds", "bucketMaxSpanSeconds": 3600}
        );
        assert_eq!(
            parse(doc! {"timeField": "t", "metaField": "m", "granularity": "hours"})
                .expect("accepted"),
            doc! {"timeField": "t", "metaField": "m", "granularity": "hours", "bucketMaxSpanSeconds": 2_592_000}
        );
        assert_eq!(
            parse(doc! {"timeField": "t", "bucketMaxSpanSeconds": 60, "bucketRoundingSeconds": 60})
                .expect("accepted"),
            doc! {"timeField": "t", "bucketRoundingSeconds": 60, "bucketMaxSpanSeconds": 60}
        );
    }

    #[test]
    fn bad_specs_get_mongods_codes() {
        let code = |spec: Document| parse(spec).expect_err("refused").code;
        assert_eq!(code(doc! {}), 40414);
        assert_eq!(code(doc! {"timeField": 1}), 14);
        assert_eq!(code(doc! {"timeField": "t", "x": 1}), 40415);
        assert_eq!(code(doc! {"timeField": "t", "granularity": "days"}), 2);
        assert_eq!(
            code(doc! {"timeField": "t", "bucketMaxSpanSeconds": 10}),
            72
        );
        assert_eq!(
            code(doc! {"timeField": "t", "granularity": "minutes", "bucketRoundingSeconds": 60}),
            72
        );
        assert_eq!(
            code(doc! {"timeField": "t", "bucketMaxSpanSeconds": 0}),
            51024
        );
        assert_eq!(
            expire_after_seconds(&Bson::Int32(-1))
                .expect_err("refused")
                .code,
            72
        );
        assert_eq!(
            expire_after_seconds(&Bson::String("1".into()))
                .expect_err("refused")
                .code,
            14
        );
        assert_eq!(
            expire_after_seconds(&Bson::Double(5.0)).expect("accepted"),
            5
        );
    }

    #[test]
    fn create_refuses_what_mongod_refuses() {
        let opts = doc! {"timeField": "t", "metaField": "m"};
        let ok = doc! {"create": "c", "timeseries": {}, "capped": false, "expireAfterSeconds": 1};
        assert!(check_create(&ok, "db.c", &opts).is_ok());
        let capped = doc! {"create": "c", "timeseries": {}, "capped": true};
        assert_eq!(
            check_create(&capped, "db.c", &opts)
                .expect_err("refused")
                .code,
            72
        );
        let id = doc! {"timeField": "t", "metaField": "_id"};
        assert_eq!(
            check_create(&ok, "db.c", &id).expect_err("refused").code,
            72
        );
        let same = doc! {"timeField": "t", "metaField": "t"};
        assert_eq!(
            check_create(&ok, "db.c", &same).expect_err("refused").code,
            72
        );
        let dotted = doc! {"timeField": "a.b"};
        assert_eq!(
            check_create(&ok, "db.c", &dotted)
                .expect_err("refused")
                .code,
            72
        );
    }
}
