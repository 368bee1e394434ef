//! `dropIndexes`: `{dropIndexes: coll, index: "*" | name | keyPattern | [names]}`.

use bson::{doc, Bson, Document};
use eddy_codes::MongoError;
use eddy_engine::write::IndexSelector;

use super::data::{check_fields, collection_arg, namespace, with_engine};
use crate::args::{missing, wrong_type};
use crate::command::{Command, CommandResult, Ctx};

pub struct DropIndexes {
    coll: String,
    selector: IndexSelector,
}

impl Command for DropIndexes {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        check_fields(cmd, "dropIndexes", &["index"])?;
        let selector = match cmd.get("index") {
            Some(Bson::String(s)) if s == "*" => IndexSelector::All,
            Some(Bson::String(s)) => IndexSelector::Names(vec![s.clone()]),
            Some(Bson::Document(d)) => IndexSelector::KeyPattern(d.clone()),
            Some(Bson::Array(a)) => IndexSelector::Names(
                a.iter()
                    .map(|v| match v {
                        Bson::String(s) => Ok(s.clone()),
                        other => Err(wrong_type("dropIndexes", "index", other, "type 'string'")),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Some(v) => {
                return Err(wrong_type(
                    "dropIndexes",
                    "index",
                    v,
                    "types '[string, object, array]'",
                ))
            }
            None => return Err(missing("dropIndexes", "index")),
        };
        Ok(DropIndexes {
            coll: collection_arg(cmd, "dropIndexes")?,
            selector,
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let ns = namespace(&ctx, &self.coll);
        let selector = self.selector;
        let was = with_engine(&ctx, move |e| e.drop_indexes(ns, selector)).await?;
        Ok(doc! {"nIndexesWas": was as i32}.into())
    }
}
