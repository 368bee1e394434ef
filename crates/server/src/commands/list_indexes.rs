//! `listIndexes`: `{listIndexes: coll, cursor?}`.

use bson::Document;
use eddy_codes::{ErrorCode, MongoError};

use super::data::{check_fields, collection_arg, namespace, with_engine};
use crate::args::{opt_doc, opt_integer};
use crate::command::{Command, CommandResult, Ctx};
use crate::cursor::{CursorOptions, VecCursor};

pub struct ListIndexes {
    coll: String,
    batch_size: Option<u32>,
}

impl Command for ListIndexes {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        check_fields(
            cmd,
            "listIndexes",
            &["cursor", "includeBuildUUIDs", "includeIndexBuildInfo"],
        )?;
        let batch_size = match opt_doc(cmd, "listIndexes", "cursor")? {
            Some(c) => opt_integer(c, "listIndexes.cursor", "batchSize")?.map(|b| b.max(0) as u32),
            None => None,
        };
        Ok(ListIndexes {
            coll: collection_arg(cmd, "listIndexes")?,
            batch_size,
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let ns = namespace(&ctx, &self.coll);
        let full = ns.to_string();
        let specs = with_engine(&ctx, move |e| match e.reader()?.collection(&ns)? {
            Some(meta) => Ok(meta.index_specs()),
            None => Err(MongoError::new(
                ErrorCode::NamespaceNotFound,
                format!("ns does not exist: {ns}"),
            )),
        })
        .await?;
        let source = VecCursor::from_documents(specs)?;
        ctx.open_cursor(
            full,
            Box::new(source),
            CursorOptions::default(),
            self.batch_size,
        )
        .await
    }
}
