//! `createIndexes`: `{createIndexes: coll, indexes: [{key, name?, unique?, ...}]}`.

use bson::{doc, Document};
use eddy_codes::MongoError;

use super::data::{check_fields, collection_arg, documents_arg, namespace, with_engine};
use crate::command::{Command, CommandResult, Ctx};

pub struct CreateIndexes {
    coll: String,
    indexes: Vec<Document>,
}

impl Command for CreateIndexes {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        check_fields(
            cmd,
            "createIndexes",
            &["indexes", "commitQuorum", "ignoreUnknownIndexOptions"],
        )?;
        Ok(CreateIndexes {
            coll: collection_arg(cmd, "createIndexes")?,
            indexes: documents_arg(cmd, "createIndexes", "indexes")?,
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let ns = namespace(&ctx, &self.coll);
        let indexes = self.indexes;
        let (before, after, created) =
            with_engine(&ctx, move |e| e.create_indexes(ns, indexes)).await?;
        let mut reply = doc! {
            "numIndexesBefore": before as i32,
            "numIndexesAfter": after as i32,
        };
        if before == after {
            reply.insert("note", "all indexes already exist");
        } else {
            reply.insert("createdCollectionAutomatically", created);
        }
        Ok(reply.into())
    }
}
