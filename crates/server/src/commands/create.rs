//! `create`: `{create: coll, ...options}`. Options Eddy cannot honour are refused, never
//! silently ignored.

use bson::{Bson, Document};
use eddy_codes::{ErrorCode, MongoError};

use super::data::{check_collation, collection_arg, namespace, with_engine, GENERIC_FIELDS};
use crate::args::wrong_type;
use crate::command::{Command, CommandResult, Ctx};

pub struct Create {
    coll: String,
    options: Document,
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
            40415,
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

impl Command for Create {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        let coll = collection_arg(cmd, "create")?;
        check_collation(cmd, "create")?;
        let mut options = Document::new();
        for (key, value) in cmd.iter().skip(1) {
            match key.as_str() {
                k if GENERIC_FIELDS.contains(&k) => {}
                "changeStreamPreAndPostImages" => {
                    options.insert(key.clone(), pre_and_post_images(value, "create")?);
                }
                "collation" | "writeConcern" => {}
                "capped" if !crate::args::truthy(value) => {}
                "autoIndexId"
                | "size"
                | "max"
                | "storageEngine"
                | "indexOptionDefaults"
                | "flags" => {}
                "capped" | "timeseries" | "viewOn" | "pipeline" | "clusteredIndex"
                | "expireAfterSeconds" | "validator" | "validationLevel" | "validationAction"
                | "encryptedFields" => {
                    return Err(MongoError::new(
                        ErrorCode::CommandNotSupported,
                        format!("Eddy does not support the collection option '{key}'"),
                    ))
                }
                other => {
                    return Err(MongoError::location(
                        40415,
                        format!("BSON field 'create.{other}' is an unknown field."),
                    ))
                }
            }
        }
        Ok(Create { coll, options })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let ns = namespace(&ctx, &self.coll);
        let options = self.options;
        with_engine(&ctx, move |e| e.create_collection(ns, options)).await?;
        Ok(Document::new().into())
    }
}
