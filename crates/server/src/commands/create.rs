//! `create`: `{create: coll, ...options}`, or `{create: view, viewOn, pipeline?}` for a
//! view. Options Eddy cannot honour are refused, never silently ignored.

use bson::{Bson, Document};
use eddy_codes::{ErrorCode, MongoError};
use eddy_engine::capped;

use super::data::{collection_arg, namespace, with_engine, GENERIC_FIELDS};
use crate::args::wrong_type;
use crate::command::{Command, CommandResult, Ctx};

pub struct Create {
    coll: String,
    options: Document,
    /// `viewOn` and the view's pipeline, for a view.
    view: Option<(String, Vec<Document>)>,
    /// The default collation, normalized (`None`: simple).
    collation: Option<Document>,
}

/// Parses and validates a view's pipeline as `create` and `collMod` take it: an array of
/// stages that parse, with no stage that writes or opens a change stream.
pub fn view_pipeline(v: &Bson, command: &str) -> Result<Vec<Document>, MongoError> {
    let Bson::Array(stages) = v else {
        return Err(wrong_type(command, "pipeline", v, "type 'array'"));
    };
    let stages = stages
        .iter()
        .map(|s| match s {
            Bson::Document(d) => Ok(d.clone()),
            other => Err(MongoError::type_mismatch(format!(
                "Each element of the 'pipeline' array must be an object, but found {}",
                crate::args::type_name(other)
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    for stage in &stages {
        let name = eddy_query::pipeline::known_stage(stage)?.name;
        if matches!(name, "$out" | "$merge" | "$changeStream") {
            return Err(MongoError::new(
                ErrorCode::OptionNotSupportedOnView,
                format!("{name} cannot be used in a view definition"),
            ));
        }
    }
    eddy_query::pipeline::Pipeline::parse(&stages)?;
    Ok(stages)
}

/// Validates `changeStreamPreAndPostImages: {enabled: <bool>}`.
pub fn pre_and_post_images(v: &Bson, command: &str) -> Result<Document, MongoError> {
    let d = match v {
        Bson::Document(d) => d,
        other => {
            return Err(wrong_type(
                command,
                "changeStreamPreAndPostImages",
                other,
                "type 'object'",
            ))
        }
    };
    match d.get("enabled") {
        Some(Bson::Boolean(b)) if d.len() == 1 => Ok(bson::doc! {"enabled": *b}),
        Some(other) if d.len() == 1 => Err(wrong_type(
            command,
            "changeStreamPreAndPostImages.enabled",
            other,
            "type 'bool'",
        )),
        None => Err(crate::args::missing(
            command,
            "changeStreamPreAndPostImages.enabled",
        )),
        _ => Err(MongoError::location(
            eddy_codes::location::UNKNOWN_FIELD,
            format!(
                "BSON field '{command}.changeStreamPreAndPostImages.{}' is an unknown field.",
                d.keys()
                    .find(|k| *k != "enabled")
                    .cloned()
                    .unwrap_or_default()
            ),
        )),
    }
}

/// A schema-validation option of `create` or `collMod`, checked as mongod checks it:
/// `validator` must parse as a query (and may not use `$where`, `$text` or the `$near`
/// family), `validationLevel` is `off`/`strict`/`moderate`, `validationAction` is
/// `error`/`warn`.
pub fn validation_option(key: &str, value: &Bson, command: &str) -> Result<Bson, MongoError> {
    let one_of = |allowed: &[&str]| match value {
        Bson::String(s) if allowed.contains(&s.as_str()) => Ok(value.clone()),
        Bson::String(s) => Err(MongoError::bad_value(format!(
            "Enumeration value '{s}' for field '{command}.{key}' is not a valid value."
        ))),
        other => Err(wrong_type(command, key, other, "type 'string'")),
    };
    match key {
        "validator" => {
            let Bson::Document(filter) = value else {
                return Err(wrong_type(command, key, value, "type 'object'"));
            };
            for banned in ["$where", "$text", "$near", "$nearSphere", "$geoNear"] {
                if contains_operator(filter, banned) {
                    return Err(MongoError::new(
                        ErrorCode::QueryFeatureNotAllowed,
                        format!("{banned} is not allowed in this context"),
                    ));
                }
            }
            eddy_query::filter::Filter::parse(filter)?;
            Ok(value.clone())
        }
        "validationLevel" => one_of(&["off", "strict", "moderate"]),
        "validationAction" => one_of(&["error", "warn"]),
        other => unreachable!("not a validation option: {other}"),
    }
}

/// Whether a query uses `op` anywhere (top level, in a field's operators, or nested in
/// `$and`/`$or`/`$nor`/`$not`/`$elemMatch`).
fn contains_operator(filter: &Document, op: &str) -> bool {
    filter.iter().any(|(k, v)| {
        k == op
            || match v {
                Bson::Document(d) => contains_operator(d, op),
                Bson::Array(items) => items
                    .iter()
                    .any(|i| matches!(i, Bson::Document(d) if contains_operator(d, op))),
                _ => false,
            }
    })
}

/// A numeric `size`/`max`/`cappedSize`/`cappedMax` as mongod reads it (any number,
/// truncated to an integer).
pub fn capped_number(command: &str, field: &str, v: &Bson) -> Result<i64, MongoError> {
    match v {
        Bson::Int32(n) => Ok(i64::from(*n)),
        Bson::Int64(n) => Ok(*n),
        Bson::Double(n) => Ok(*n as i64),
        Bson::Decimal128(d) => Ok(d.to_string().parse::<f64>().unwrap_or(0.0) as i64),
        other => Err(wrong_type(
            command,
            field,
            other,
            "types '[long, int, decimal, double]'",
        )),
    }
}

/// Checks a capped size as mongod's collection options do and rounds it up to a
/// multiple of 256 bytes.
pub fn capped_size(size: i64) -> Result<i64, MongoError> {
    if size < 0 {
        return Err(MongoError::bad_value("size has to be >= 0"));
    }
    if size > capped::MAX_CAPPED_SIZE {
        return Err(MongoError::bad_value("size cannot exceed 1 PB"));
    }
    Ok(capped::round_size(size))
}

/// Checks a capped `max`: below 2^31; zero or negative means no limit.
pub fn capped_max(max: i64) -> Result<Option<i64>, MongoError> {
    if max > capped::MAX_CAPPED_DOCS {
        return Err(MongoError::bad_value(
            "max in a capped collection has to be < 2^31 or not set",
        ));
    }
    Ok((max > 0).then_some(max))
}

/// `{capped: true, size, max?}` as mongod stores (and `listCollections` shows) them.
fn capped_options(size: Option<i64>, max: Option<i64>) -> Result<Document, MongoError> {
    let Some(size) = size.filter(|s| *s != 0) else {
        return Err(MongoError::new(
            ErrorCode::InvalidOptions,
            "the 'size' field is required when 'capped' is true",
        ));
    };
    let mut options = bson::doc! {"capped": true, "size": capped::number(capped_size(size)?)};
    if let Some(max) = max.map(capped_max).transpose()?.flatten() {
        options.insert("max", capped::number(max));
    }
    Ok(options)
}

/// `clusteredIndex: {key: {_id: 1}, unique: true, name?, v?}`, as mongod validates it
/// and stores it (`{v: 2, key: {_id: 1}, name, unique: true}`). Eddy keeps every
/// collection in `_id` order, so a clustered collection is stored like any other; its
/// `expireAfterSeconds` expires documents by their `_id` date.
fn clustered_index_option(v: &Bson) -> Result<Document, MongoError> {
    let spec = match v {
        Bson::Document(d) => d,
        Bson::Boolean(_) => {
            return Err(MongoError::location(
                5979703,
                "The 'clusteredIndex' legacy format {clusteredIndex: <bool>} is only supported for specific internal collections and vice versa",
            ))
        }
        other => {
            return Err(wrong_type(
                "create",
                "clusteredIndex",
                other,
                "types '[bool, object]'",
            ))
        }
    };
    let (mut key, mut unique, mut name, mut version) = (None, None, None, 2);
    for (field, value) in spec {
        match (field.as_str(), value) {
            ("key", Bson::Document(k)) => key = Some(k),
            ("unique", Bson::Boolean(u)) => unique = Some(*u),
            ("name", Bson::String(n)) => name = Some(n.clone()),
            ("v", v) => {
                version = crate::args::as_integer(v)
                    .ok_or_else(|| wrong_type("clusteredIndex", "v", v, "type 'int'"))?;
            }
            ("key" | "unique" | "name", other) => {
                let expected = match field.as_str() {
                    "key" => "type 'object'",
                    "unique" => "type 'bool'",
                    _ => "type 'string'",
                };
                return Err(wrong_type("clusteredIndex", field, other, expected));
            }
            (other, _) => {
                return Err(MongoError::location(
                    eddy_codes::location::UNKNOWN_FIELD,
                    format!("BSON field 'clusteredIndex.{other}' is an unknown field."),
                ))
            }
        }
    }
    let key = key.ok_or_else(|| crate::args::missing("clusteredIndex", "key"))?;
    let unique = unique.ok_or_else(|| crate::args::missing("clusteredIndex", "unique"))?;
    if !unique {
        return Err(MongoError::location(
            5979700,
            "The clusteredIndex option requires unique: true to be specified",
        ));
    }
    let on_id = key.len() == 1 && key.get("_id").and_then(crate::args::as_integer) == Some(1);
    if !on_id {
        return Err(MongoError::new(
            ErrorCode::InvalidIndexSpecificationOption,
            "The clusteredIndex option is only supported for key: {_id: 1}",
        ));
    }
    if version != 2 {
        return Err(MongoError::location(
            5979704,
            format!("Invalid clusteredIndex specification; cannot create a clusteredIndex with v={version}"),
        ));
    }
    Ok(bson::doc! {
        "v": 2,
        "key": {"_id": 1},
        "name": name.unwrap_or_else(|| "_id_".to_owned()),
        "unique": true,
    })
}

impl Command for Create {
    fn parse(cmd: &Document, ctx: &Ctx) -> Result<Self, MongoError> {
        let coll = collection_arg(cmd, "create")?;
        let collation = match cmd.get("collation") {
            None => None,
            Some(Bson::Document(c)) => eddy_query::collation::Collation::normalize(c)?,
            Some(v) => return Err(wrong_type("create", "collation", v, "type 'object'")),
        };
        let mut options = Document::new();
        let mut view_on = None;
        let mut pipeline = None;
        let (mut capped, mut size, mut max) = (false, None, None);
        let (mut id_index, mut expire_after) = (false, None);
        for (key, value) in cmd.iter().skip(1) {
            match key.as_str() {
                k if GENERIC_FIELDS.contains(&k) => {}
                "viewOn" => match value {
                    Bson::String(s) => view_on = Some(s.clone()),
                    other => return Err(wrong_type("create", "viewOn", other, "type 'string'")),
                },
                "pipeline" => pipeline = Some(view_pipeline(value, "create")?),
                "changeStreamPreAndPostImages" => {
                    options.insert(key.clone(), pre_and_post_images(value, "create")?);
                }
                "collation" | "writeConcern" => {}
                "capped" => capped = crate::args::truthy(value),
                "size" => size = Some(capped_number("create", "size", value)?),
                "max" => max = Some(capped_number("create", "max", value)?),
                "autoIndexId" | "storageEngine" | "indexOptionDefaults" | "flags" => {}
                "validator" | "validationLevel" | "validationAction" => {
                    options.insert(key.clone(), validation_option(key, value, "create")?);
                }
                "clusteredIndex" => {
                    options.insert(key.clone(), clustered_index_option(value)?);
                }
                "idIndex" => id_index = true,
                "expireAfterSeconds" => {
                    expire_after = Some(super::timeseries::expire_after_seconds(value)?)
                }
                "timeseries" => {
                    options.insert(key.clone(), super::timeseries::timeseries_option(value)?);
                }
                "encryptedFields" => {
                    return Err(MongoError::new(
                        ErrorCode::CommandNotSupported,
                        format!("Eddy does not support the collection option '{key}'"),
                    ))
                }
                other => {
                    return Err(MongoError::location(
                        eddy_codes::location::UNKNOWN_FIELD,
                        format!("BSON field 'create.{other}' is an unknown field."),
                    ))
                }
            }
        }
        let clustered = options.contains_key("clusteredIndex");
        let timeseries = options.get_document("timeseries").ok().cloned();
        if let Some(ts) = &timeseries {
            let ns = format!("{}.{coll}", ctx.db());
            super::timeseries::check_create(cmd, &ns, ts)?;
        }
        if let Some(seconds) = expire_after {
            if !clustered && timeseries.is_none() {
                return Err(MongoError::new(
                    ErrorCode::InvalidOptions,
                    "'expireAfterSeconds' can be used only for clustered collections or timeseries collections",
                ));
            }
            // Expired by the TTL monitor (`eddy_engine::timeseries::expired_filter`).
            options.insert("expireAfterSeconds", seconds);
        }
        if clustered && id_index {
            return Err(MongoError::new(
                ErrorCode::InvalidOptions,
                "The 'clusteredIndex' option is not supported with the 'idIndex' option",
            ));
        }
        if clustered && capped {
            return Err(MongoError::new(
                ErrorCode::CommandNotSupported,
                "Eddy does not support capped clustered collections",
            ));
        }
        if options.contains_key("validator") {
            // mongod records the defaults with a validator.
            for (k, default) in [("validationLevel", "strict"), ("validationAction", "error")] {
                if !options.contains_key(k) {
                    options.insert(k, default);
                }
            }
        }
        if capped {
            let mut capped_options = capped_options(size, max)?;
            capped_options.extend(options);
            options = capped_options;
        }
        let view = match (view_on, pipeline) {
            (Some(on), pipeline) => {
                if let Some(option) = options.keys().next() {
                    return Err(MongoError::new(
                        ErrorCode::InvalidOptions,
                        format!("option not supported on a view: {option}"),
                    ));
                }
                Some((on, pipeline.unwrap_or_default()))
            }
            (None, Some(_)) => {
                return Err(MongoError::new(
                    ErrorCode::InvalidOptions,
                    "'pipeline' requires 'viewOn' to also be specified",
                ))
            }
            (None, None) => None,
        };
        if let (Some(c), None) = (&collation, &view) {
            options.insert("collation", c.clone());
        }
        Ok(Create {
            coll,
            options,
            view,
            collation,
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let ns = namespace(&ctx, &self.coll);
        let options = self.options;
        match self.view {
            Some((on, pipeline)) => {
                let collation = self.collation;
                with_engine(&ctx, move |e| {
                    e.create_view_collated(ns, on, pipeline, collation)
                })
                .await?
            }
            None => with_engine(&ctx, move |e| e.create_collection(ns, options)).await?,
        }
        Ok(Document::new().into())
    }
}
