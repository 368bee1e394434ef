//! `collMod`: `{collMod: coll, changeStreamPreAndPostImages?}`; other modifications are
//! refused rather than ignored.

use bson::Document;
use eddy_codes::{ErrorCode, MongoError};

use super::create::pre_and_post_images;
use super::data::{collection_arg, namespace, with_engine, GENERIC_FIELDS};
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
                "index" | "validator" | "validationLevel" | "validationAction" | "viewOn"
                | "pipeline" | "expireAfterSeconds" | "timeseries" | "cappedSize" | "cappedMax"
                | "dryRun" => {
                    return Err(MongoError::new(
                        ErrorCode::CommandNotSupported,
                        format!("Eddy does not support collMod of '{key}'"),
                    ))
                }
                other => {
                    return Err(MongoError::location(
                        40415,
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
        with_engine(&ctx, move |e| e.coll_mod(ns, changes)).await?;
        Ok(Document::new().into())
    }
}
