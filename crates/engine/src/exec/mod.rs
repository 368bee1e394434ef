//! Execution: the read side of every command, synchronous and beside [`crate::plan`] and
//! [`crate::read`]. The server parses a command, calls here on its blocking pool, and
//! replies.
//!
//! - [`query`]: `find`, `count`, `distinct` and `explain`'s queries;
//! - [`aggregate`]: aggregation pipelines, with their readers for `$lookup`,
//!   `$unionWith`, `$collStats`, `$indexStats` and `$listLocalSessions`;
//! - [`output`]: `$out` and `$merge`.
//!
//! Views resolve here too: a query or pipeline on a view runs the view's pipeline first.
//! (Change-stream pipelines run in [`crate::changes`].)

pub mod aggregate;
pub mod output;
pub mod query;

use std::sync::Arc;

use bson::{doc, Bson, Document, Timestamp};
use eddy_codes::{ErrorCode, MongoError};

pub use aggregate::{
    Aggregation, CurrentOps, Explained, ExplainedSource, ExplainedStage, LocalSession,
    LocalSessions, SourceStats,
};
pub use query::{natural_direction, Outcome, QuerySpec};

use crate::read::Reader;
use crate::{CollectionMeta, Engine};

/// The reader of a read command, and for a snapshot read the cluster time it reads at.
pub fn open_reader(
    engine: &Arc<Engine>,
    snapshot: Option<Option<Timestamp>>,
) -> Result<(Reader, Option<Timestamp>), MongoError> {
    match snapshot {
        Some(at) => {
            let (reader, ts) = engine.snapshot_reader(at)?;
            Ok((reader, Some(ts)))
        }
        None => Ok((engine.reader()?, None)),
    }
}

/// Evaluates a command's `let` document once (`$$CLUSTER_TIME` is the engine's).
pub fn evaluate_let(
    engine: &Arc<Engine>,
    spec: &Document,
) -> Result<Vec<(String, Bson)>, MongoError> {
    if spec.is_empty() {
        return Ok(Vec::new());
    }
    let env = eddy_query::expr::Env {
        cluster_time: Some(engine.cluster_time()),
        ..eddy_query::expr::Env::new()
    };
    eddy_query::expr::evaluate_let(spec, &env)
}

/// Capped collections cannot be read at a snapshot, as in mongod (246).
pub fn check_snapshot_source(meta: &CollectionMeta, snapshot: bool) -> Result<(), MongoError> {
    match snapshot && meta.cap().is_some() {
        true => Err(MongoError::new(
            ErrorCode::SnapshotUnavailable,
            "Reading from capped collections with readConcern snapshot is not supported",
        )),
        false => Ok(()),
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
        out.insert("max", crate::capped::number(max));
        out.insert("maxSize", crate::capped::number(scaled(cap.size)));
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
