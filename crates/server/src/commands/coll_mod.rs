//! `collMod`: `{collMod: coll, changeStreamPreAndPostImages?, cappedSize?, cappedMax?,
//! validator?, index: {name | keyPattern, expireAfterSeconds?, hidden?, prepareUnique?,
//! unique?}, dryRun?, expireAfterSeconds?: <seconds> | "off", timeseries?: {granularity?,
//! bucketMaxSpanSeconds?, bucketRoundingSeconds?}}` (the last two on time-series or
//! clustered collections, checked by the engine), or
//! `{collMod: view, viewOn?, pipeline?}`; other modifications are refused rather than
//! ignored.

use bson::{Bson, Document};
use eddy_codes::{ErrorCode, MongoError};
use eddy_engine::capped;

use super::create::{pre_and_post_images, validation_option, view_pipeline};
use super::data::{collection_arg, namespace, with_engine, GENERIC_FIELDS};
use crate::args::wrong_type;
use crate::command::{Command, CommandResult, Ctx};

pub struct CollMod {
    coll: String,
    changes: Document,
}

impl Command for CollMod {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        let coll = collection_arg(cmd, "collMod")?;
        let mut changes = Document::new();
        for (key, value) in cmd.iter().skip(1) {
            match key.as_str() {
                k if GENERIC_FIELDS.contains(&k) => {}
                "changeStreamPreAndPostImages" => {
                    changes.insert(key.clone(), pre_and_post_images(value, "collMod")?);
                }
                "viewOn" => match value {
                    Bson::String(_) => {
                        changes.insert(key.clone(), value.clone());
                    }
                    other => return Err(wrong_type("collMod", "viewOn", other, "type 'string'")),
                },
                "pipeline" => {
                    let stages = view_pipeline(value, "collMod")?;
                    changes.insert(key.clone(), stages);
                }
                "validator" | "validationLevel" | "validationAction" => {
                    changes.insert(key.clone(), validation_option(key, value, "collMod")?);
                }
                "cappedSize" => {
                    let size = super::create::capped_number("collMod", key, value)?;
                    if size <= 0 || size > capped::MAX_CAPPED_SIZE {
                        return Err(MongoError::new(
                            ErrorCode::InvalidOptions,
                            "Capped size must be greater than 0 and less than or equal to 1 PB",
                        ));
                    }
                    changes.insert(key.clone(), capped::number(capped::round_size(size)));
                }
                "cappedMax" => {
                    let max = super::create::capped_number("collMod", key, value)?;
                    if !(0..=capped::MAX_CAPPED_DOCS).contains(&max) {
                        return Err(MongoError::new(
                            ErrorCode::InvalidOptions,
                            "max in a capped collection has to be < 2^31 or not set",
                        ));
                    }
                    changes.insert(key.clone(), capped::number(max));
                }
                "index" => {
                    changes.insert(key.clone(), index_change(value)?);
                }
                "dryRun" => {
                    if crate::args::truthy(value) {
                        changes.insert(key.clone(), true);
                    }
                }
                "expireAfterSeconds" => {
                    changes.insert(key.clone(), super::timeseries::coll_mod_expiry(value)?);
                }
                "timeseries" => {
                    changes.insert(key.clone(), super::timeseries::coll_mod_timeseries(value)?);
                }
                other => {
                    return Err(MongoError::location(
                        eddy_codes::location::UNKNOWN_FIELD,
                        format!("BSON field 'collMod.{other}' is an unknown field."),
                    ))
                }
            }
        }
        Ok(CollMod { coll, changes })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let ns = namespace(&ctx, &self.coll);
        let changes = self.changes;
        let reply = with_engine(&ctx, move |e| e.coll_mod(ns, changes)).await?;
        Ok(reply.into())
    }
}

/// `index: {name | keyPattern, expireAfterSeconds?, hidden?, unique?, prepareUnique?}`,
/// checked as mongod's `collMod` checks it (the booleans coerce as its IDL does).
fn index_change(value: &Bson) -> Result<Document, MongoError> {
    let Bson::Document(spec) = value else {
        return Err(wrong_type("collMod", "index", value, "type 'object'"));
    };
    let invalid = |why: &str| MongoError::new(ErrorCode::InvalidOptions, why.to_owned());
    let mut out = Document::new();
    for (k, v) in spec {
        match (k.as_str(), v) {
            ("keyPattern", Bson::Document(_)) | ("name", Bson::String(_)) => {}
            ("keyPattern", v) => return Err(wrong_type("collMod.index", k, v, "type 'object'")),
            ("name", v) => return Err(wrong_type("collMod.index", k, v, "type 'string'")),
            ("hidden", v) => {
                out.insert(k.clone(), crate::args::truthy(v));
                continue;
            }
            ("expireAfterSeconds", v) => {
                let seconds = crate::args::as_integer(v)
                    .ok_or_else(|| wrong_type("collMod.index", k, v, "type 'long'"))?;
                if seconds < 0 {
                    return Err(invalid(
                        "TTL index 'expireAfterSeconds' option cannot be less than 0",
                    ));
                }
                if seconds > i64::from(i32::MAX) {
                    return Err(invalid("TTL index 'expireAfterSeconds' option must be within an acceptable range, try a lower number"));
                }
                out.insert(k.clone(), seconds);
                continue;
            }
            ("unique" | "prepareUnique", v) => {
                out.insert(k.clone(), crate::args::truthy(v));
                continue;
            }
            _ => {
                return Err(MongoError::location(
                    eddy_codes::location::UNKNOWN_FIELD,
                    format!("BSON field 'collMod.index.{k}' is an unknown field."),
                ))
            }
        }
        out.insert(k.clone(), v.clone());
    }
    match (out.contains_key("name"), out.contains_key("keyPattern")) {
        (true, true) => return Err(invalid("Cannot specify both key pattern and name.")),
        (false, false) => return Err(invalid("Must specify either index name or key pattern.")),
        _ => {}
    }
    let modifies = ["expireAfterSeconds", "hidden", "unique", "prepareUnique"];
    if !modifies.iter().any(|k| out.contains_key(k)) {
        return Err(invalid(
            "no expireAfterSeconds, hidden, unique, or prepareUnique field",
        ));
    }
    Ok(out)
}
