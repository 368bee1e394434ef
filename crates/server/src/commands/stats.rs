//! `dbStats` and `collStats`: sizes and counts computed from the documents.

use bson::{doc, Document};
use eddy_codes::{ErrorCode, MongoError};
use eddy_engine::read::Reader;
use eddy_engine::CollectionMeta;

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
            reply.extend(storage_stats(&reader, &meta, scale)?);
            Ok(reply.into())
        })
        .await
    }
}

/// A collection's storage statistics: the `collStats` command's fields and
/// `$collStats`'s `storageStats`, sizes divided by `scale` (`avgObjSize` is not), as
/// mongod reports them. Storage and data sizes are the same: Eddy does not measure
/// its files per collection.
pub fn storage_stats(
    reader: &Reader,
    meta: &CollectionMeta,
    scale: i64,
) -> Result<Document, MongoError> {
    let count = reader.count(meta)?;
    let size = reader.data_size(meta)?;
    let avg = size.checked_div(count).unwrap_or(0);
    let indexes = reader.index_sizes(meta)?;
    let index_total: u64 = indexes.iter().map(|(_, bytes)| bytes).sum();
    let scale_u = scale.unsigned_abs().max(1);
    let scaled = |bytes: u64| i64::try_from(bytes / scale_u).unwrap_or(i64::MAX);
    let mut out = doc! {
        "size": scaled(size),
        "count": count as i64,
        "avgObjSize": avg as i64,
        "storageSize": scaled(size),
        "capped": meta.cap().is_some(),
    };
    if let Some(cap) = meta.cap() {
        // mongod: `max` is 0 when no document limit was set.
        let max = cap.max.map_or(0, |m| m as i64);
        out.insert("max", eddy_engine::capped::number(max));
        out.insert("maxSize", eddy_engine::capped::number(scaled(cap.size)));
    }
    out.insert("nindexes", indexes.len() as i32);
    out.insert("totalIndexSize", scaled(index_total));
    out.insert("totalSize", scaled(size + index_total));
    let sizes: Document = indexes
        .into_iter()
        .map(|(name, bytes)| (name, bson::Bson::Int64(scaled(bytes))))
        .collect();
    out.insert("indexSizes", sizes);
    out.insert("scaleFactor", i32::try_from(scale).unwrap_or(i32::MAX));
    Ok(out)
}
