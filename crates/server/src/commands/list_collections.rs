//! `listCollections`: `{listCollections: 1, filter?, nameOnly?, cursor?}`.

use bson::{doc, Document};
use eddy_codes::MongoError;
use eddy_query::filter::Filter;

use super::data::{check_fields, with_engine};
use crate::args::{opt_bool, opt_doc, opt_integer};
use crate::command::{Command, CommandResult, Ctx};
use crate::cursor::{CursorOptions, VecCursor};

pub struct ListCollections {
    filter: Option<Document>,
    name_only: bool,
    batch_size: Option<u32>,
}

impl Command for ListCollections {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        check_fields(
            cmd,
            "listCollections",
            &[
                "filter",
                "nameOnly",
                "cursor",
                "authorizedCollections",
                "includePendingDrops",
            ],
        )?;
        let filter = opt_doc(cmd, "listCollections", "filter")?.cloned();
        if let Some(f) = &filter {
            Filter::parse(f)?;
        }
        let batch_size = match opt_doc(cmd, "listCollections", "cursor")? {
            Some(c) => {
                opt_integer(c, "listCollections.cursor", "batchSize")?.map(|b| b.max(0) as u32)
            }
            None => None,
        };
        Ok(ListCollections {
            filter,
            name_only: opt_bool(cmd, "listCollections", "nameOnly")?.unwrap_or(false),
            batch_size,
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let db = ctx.db().to_owned();
        let (filter, name_only) = (self.filter, self.name_only);
        let docs = with_engine(&ctx, move |e| {
            let filter = filter.as_ref().map(Filter::parse).transpose()?;
            let mut out = Vec::new();
            for meta in e.reader()?.collections(Some(&db))? {
                let full = doc! {
                    "name": &meta.ns.coll,
                    "type": "collection",
                    "options": meta.options.clone(),
                    "info": {"readOnly": false, "uuid": meta.uuid_bson()},
                    "idIndex": eddy_engine::CollectionMeta::id_index_spec(),
                };
                if filter.as_ref().is_some_and(|f| !f.matches(&full)) {
                    continue;
                }
                out.push(if name_only {
                    doc! {"name": &meta.ns.coll, "type": "collection"}
                } else {
                    full
                });
            }
            Ok(out)
        })
        .await?;
        let ns = format!("{}.$cmd.listCollections", ctx.db());
        let source = VecCursor::from_documents(docs)?;
        ctx.open_cursor(
            ns,
            Box::new(source),
            CursorOptions::default(),
            self.batch_size,
        )
        .await
    }
}
