//! `dbStats` and `collStats`: sizes and counts computed from the documents.

use bson::{doc, Document};
use eddy_codes::{ErrorCode, MongoError};

use super::data::{collection_arg, namespace, with_engine};
use crate::command::{Command, CommandResult, Ctx};

pub struct DbStats;

impl Command for DbStats {
    fn parse(_cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        Ok(DbStats)
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let db = ctx.db().to_owned();
        with_engine(&ctx, move |e| {
            let reader = e.reader()?;
            let colls = reader.collections(Some(&db))?;
            let (mut objects, mut size, mut indexes) = (0u64, 0u64, 0usize);
            for meta in &colls {
                objects += reader.count(meta)?;
                size += reader.data_size(meta)?;
                indexes += meta.indexes.len() + 1;
            }
            let avg = if objects == 0 {
                0.0
            } else {
                size as f64 / objects as f64
            };
            Ok(doc! {
                "db": &db,
                "collections": colls.len() as i64,
                "views": 0_i64,
                "objects": objects as i64,
                "avgObjSize": avg,
                "dataSize": size as f64,
                "storageSize": size as f64,
                "indexes": indexes as i64,
                "totalSize": size as f64,
                "scaleFactor": 1_i64,
            }
            .into())
        })
        .await
    }
}

pub struct CollStats {
    coll: String,
    scale: i64,
}

impl Command for CollStats {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        Ok(CollStats {
            coll: collection_arg(cmd, "collStats")?,
            scale: eddy_query::pipeline::parse_stats_scale(cmd.get("scale"))?,
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let ns = namespace(&ctx, &self.coll);
        let scale = self.scale;
        with_engine(&ctx, move |e| {
            let reader = e.reader()?;
            let Some(meta) = reader.collection(&ns)? else {
                return Err(MongoError::new(
                    ErrorCode::NamespaceNotFound,
                    format!("Collection [{ns}] not found."),
                ));
            };
            let mut reply = doc! {"ns": ns.to_string()};
            reply.extend(eddy_engine::exec::storage_stats(&reader, &meta, scale)?);
            Ok(reply.into())
        })
        .await
    }
}
