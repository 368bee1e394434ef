//! `drop`: `{drop: coll}`. Dropping a collection that does not exist succeeds, as in
//! mongod 7.0.

use bson::{doc, Document};
use eddy_codes::MongoError;

use super::data::{check_fields, collection_arg, namespace, with_engine};
use crate::command::{Command, CommandResult, Ctx};

pub struct Drop {
    coll: String,
}

impl Command for Drop {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        check_fields(cmd, "drop", &[])?;
        Ok(Drop {
            coll: collection_arg(cmd, "drop")?,
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let ns = namespace(&ctx, &self.coll);
        let full = ns.to_string();
        let was = with_engine(&ctx, move |e| e.drop_collection(ns)).await?;
        Ok(match was {
            Some(n) => doc! {"nIndexesWas": n as i32, "ns": full},
            None => Document::new(),
        }
        .into())
    }
}
