//! `cloneCollectionAsCapped` and `convertToCapped`.
//!
//! As in mongod, neither is one atomic step: `cloneCollectionAsCapped` creates the capped
//! target and inserts the source's documents in natural order (the cap keeps the newest);
//! `convertToCapped` clones into a temporary collection and renames it over the source,
//! so the result has only the `_id` index, as mongod's does.

use std::sync::Arc;

use bson::{doc, Bson, Document};
use eddy_codes::{ErrorCode, MongoError};
use eddy_engine::{capped, Engine, Namespace};

use super::create::{capped_number, capped_size};
use super::data::{collection_arg, namespace, with_engine};
use crate::args::missing;
use crate::command::{Command, CommandResult, Ctx};

/// The capped `size` of either command (required; rounded as `create` rounds it).
fn size_arg(cmd: &Document, command: &str) -> Result<i64, MongoError> {
    let v = cmd.get("size").ok_or_else(|| missing(command, "size"))?;
    let size = capped_number(command, "size", v)?;
    if size <= 0 {
        return Err(MongoError::bad_value("size has to be > 0"));
    }
    capped_size(size)
}

/// Creates `to` capped at `size` bytes and fills it with `from`'s documents.
fn clone_as_capped(
    engine: &Arc<Engine>,
    from: &Namespace,
    to: Namespace,
    size: i64,
) -> Result<(), MongoError> {
    let reader = engine.reader()?;
    if reader.view(from)?.is_some() {
        return Err(MongoError::new(
            ErrorCode::CommandNotSupportedOnView,
            format!("cloneCollectionAsCapped not supported on view: {from}"),
        ));
    }
    let Some(meta) = reader.collection(from)? else {
        return Err(MongoError::new(
            ErrorCode::NamespaceNotFound,
            format!("source collection {from} does not exist"),
        ));
    };
    if meta.timeseries().is_some() {
        // A view of its buckets in mongod, refused as a view is.
        return Err(MongoError::new(
            ErrorCode::CommandNotSupportedOnView,
            format!("cloneCollectionAsCapped not supported on view: {from}"),
        ));
    }
    if reader.collection(&to)?.is_some() || reader.view(&to)?.is_some() {
        return Err(MongoError::new(
            ErrorCode::NamespaceExists,
            format!(
                "cloneCollectionAsCapped failed - destination collection {to} already exists. "
            ),
        ));
    }
    let docs = reader.natural(&meta)?;
    drop(reader);
    engine.create_collection(
        to.clone(),
        doc! {"capped": true, "size": capped::number(size)},
    )?;
    // A document larger than the whole cap cannot be kept; mongod skips nothing, so
    // the clone fails on it as an insert would.
    for chunk in docs.chunks(1000) {
        let out = engine.insert(to.clone(), chunk.to_vec(), true)?;
        if let Some((_, e)) = out.errors.into_iter().next() {
            return Err(e);
        }
    }
    Ok(())
}

pub struct CloneCollectionAsCapped {
    from: String,
    to: String,
    size: i64,
}

impl Command for CloneCollectionAsCapped {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        let to = match cmd.get("toCollection") {
            Some(Bson::String(s)) => s.clone(),
            Some(v) => {
                return Err(crate::args::wrong_type(
                    "cloneCollectionAsCapped",
                    "toCollection",
                    v,
                    "type 'string'",
                ))
            }
            None => return Err(missing("cloneCollectionAsCapped", "toCollection")),
        };
        Ok(CloneCollectionAsCapped {
            from: collection_arg(cmd, "cloneCollectionAsCapped")?,
            to,
            size: size_arg(cmd, "cloneCollectionAsCapped")?,
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let from = namespace(&ctx, &self.from);
        let to = namespace(&ctx, &self.to);
        eddy_engine::catalog::validate_writable(&to)?;
        let size = self.size;
        with_engine(&ctx, move |e| clone_as_capped(e, &from, to, size)).await?;
        Ok(Document::new().into())
    }
}

pub struct ConvertToCapped {
    coll: String,
    size: i64,
}

impl Command for ConvertToCapped {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        Ok(ConvertToCapped {
            coll: collection_arg(cmd, "convertToCapped")?,
            size: size_arg(cmd, "convertToCapped")?,
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let ns = namespace(&ctx, &self.coll);
        eddy_engine::catalog::validate_writable(&ns)?;
        let size = self.size;
        with_engine(&ctx, move |e| {
            let temp = Namespace::new(
                ns.db.clone(),
                format!(
                    "tmp.convertToCapped.{}",
                    bson::oid::ObjectId::new().to_hex()
                ),
            );
            clone_as_capped(e, &ns, temp.clone(), size)?;
            let renamed = e.rename_collection(temp.clone(), ns, true);
            if renamed.is_err() {
                let _ = e.drop_collection(temp);
            }
            renamed
        })
        .await?;
        Ok(Document::new().into())
    }
}
