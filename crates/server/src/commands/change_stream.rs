//! `aggregate` with `$changeStream` first: opening a change stream cursor.
//!
//! The cursor's source is an [`eddy_engine::changes::ChangeStream`] (a position in the
//! oplog). A `getMore` reads what is available; with nothing to return it waits with
//! the hub's dispatcher, which wakes it only for an entry that can concern it, until
//! `maxTimeMS` (default 1 s, as mongod), then answers, possibly with an empty batch
//! and a fresh `postBatchResumeToken`. The stream holds no task while nobody asks for
//! a batch, and a waiting one is woken by nothing it cannot use.

use bson::Document;
use eddy_codes::{ErrorCode, MongoError};
use eddy_engine::changes::{ChangeStream, EventPipeline, Scope, StreamBatch, StreamSpec};
use eddy_engine::Namespace;
use futures_util::future::BoxFuture;

use crate::command::{CommandResult, Ctx};
use crate::cursor::{Batch, BatchDoc, BatchRequest, CursorOptions, CursorSource};

/// A change stream as a cursor source.
pub struct ChangeStreamSource {
    stream: ChangeStream,
}

impl CursorSource for ChangeStreamSource {
    fn next_batch<'a>(&'a mut self, req: BatchRequest) -> BoxFuture<'a, Result<Batch, MongoError>> {
        Box::pin(async move {
            let max_events = req.batch_size.map(|n| n as usize).unwrap_or(usize::MAX);
            let deadline = req.max_await.map(|d| tokio::time::Instant::now() + d);
            loop {
                let batch = self.read(max_events, req.max_bytes)?;
                let waiting_pays = batch.events.is_empty() && !batch.invalidated && max_events > 0;
                let deadline = match deadline {
                    Some(deadline) if waiting_pays && tokio::time::Instant::now() < deadline => {
                        deadline
                    }
                    _ => return Ok(to_batch(batch)),
                };
                // Nothing new: `None` means entries arrived since the read; read again.
                let Some(mut wait) = self.stream.wait() else {
                    continue;
                };
                match tokio::time::timeout_at(deadline, wait.woken()).await {
                    Ok(through) => self.stream.skip_through(through),
                    Err(_) => {
                        // Timed out: skip what was ruled out, one last read, then answer.
                        self.stream.skip_through(wait.end());
                        let batch = self.read(max_events, req.max_bytes)?;
                        return Ok(to_batch(batch));
                    }
                }
            }
        })
    }
}

impl ChangeStreamSource {
    /// One read of the stream. A stream catching up from storage may build a 16 MB
    /// batch: it does so off the async worker, whose other connections keep going.
    fn read(&mut self, max_events: usize, max_bytes: usize) -> Result<StreamBatch, MongoError> {
        if self.stream.reads_storage() {
            tokio::task::block_in_place(|| self.stream.next_batch(max_events, max_bytes))
        } else {
            self.stream.next_batch(max_events, max_bytes)
        }
    }
}

fn to_batch(batch: StreamBatch) -> Batch {
    Batch {
        docs: batch.events.into_iter().map(BatchDoc::Shared).collect(),
        exhausted: batch.invalidated,
        post_batch_resume_token: Some(batch.post_batch_resume_token.to_raw()),
    }
}

/// The scope of `aggregate` on `db` with `coll` (`None` for `aggregate: 1`).
pub fn scope(db: &str, coll: Option<&str>, spec: &StreamSpec) -> Result<Scope, MongoError> {
    match coll {
        Some(coll) => {
            if spec.all_changes_for_cluster {
                return Err(MongoError::location(
                    ErrorCode::InvalidOptions.code(),
                    "A collection-level change stream cannot watch all changes for the cluster; use {aggregate: 1} on the admin database",
                ));
            }
            let ns = Namespace::new(db, coll);
            if matches!(db, "admin" | "config" | "local") {
                return Err(MongoError::new(
                    ErrorCode::InvalidNamespace,
                    format!("$changeStream may not be opened on the internal {db} database"),
                ));
            }
            if ns.is_system() {
                return Err(MongoError::new(
                    ErrorCode::InvalidNamespace,
                    format!("$changeStream may not be opened on the internal {ns} collection"),
                ));
            }
            Ok(Scope::Collection(ns))
        }
        None if db == "admin" => {
            if spec.all_changes_for_cluster {
                Ok(Scope::Cluster)
            } else {
                Err(MongoError::new(
                    ErrorCode::InvalidNamespace,
                    "$changeStream on the admin database requires {allChangesForCluster: true}",
                ))
            }
        }
        None => {
            if spec.all_changes_for_cluster {
                return Err(MongoError::new(
                    ErrorCode::InvalidOptions,
                    "allChangesForCluster is only valid on the admin database",
                ));
            }
            if matches!(db, "config" | "local") {
                return Err(MongoError::new(
                    ErrorCode::InvalidNamespace,
                    format!("$changeStream may not be opened on the internal {db} database"),
                ));
            }
            Ok(Scope::Database(db.to_owned()))
        }
    }
}

/// Opens a change stream and answers the `aggregate` with its first batch.
pub async fn open(
    ctx: &Ctx,
    coll: Option<String>,
    spec: &Document,
    pipeline: EventPipeline,
    batch_size: Option<u32>,
) -> CommandResult {
    let spec = StreamSpec::parse(spec)?;
    let scope = scope(ctx.db(), coll.as_deref(), &spec)?;
    let cursor_ns = match &scope {
        Scope::Collection(ns) => ns.to_string(),
        Scope::Database(db) => format!("{db}.$cmd.aggregate"),
        Scope::Cluster => "admin.$cmd.aggregate".to_owned(),
    };
    let engine = ctx.engine().clone();
    let stream =
        tokio::task::spawn_blocking(move || ChangeStream::open(engine, scope, spec, pipeline))
            .await
            .map_err(|e| MongoError::internal(format!("opening the stream failed: {e}")))??;
    let source = ChangeStreamSource { stream };
    ctx.open_cursor(
        cursor_ns,
        Box::new(source),
        CursorOptions::change_stream(),
        batch_size,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn scopes_follow_mongod() {
        let plain = StreamSpec::parse(&doc! {}).expect("spec");
        let cluster = StreamSpec::parse(&doc! {"allChangesForCluster": true}).expect("spec");
        assert_eq!(
            scope("db", Some("c"), &plain).expect("coll"),
            Scope::Collection(Namespace::new("db", "c"))
        );
        assert_eq!(
            scope("db", None, &plain).expect("db"),
            Scope::Database("db".into())
        );
        assert_eq!(
            scope("admin", None, &cluster).expect("cluster"),
            Scope::Cluster
        );
        assert!(scope("admin", None, &plain).is_err());
        assert!(scope("db", None, &cluster).is_err());
        assert!(scope("local", Some("oplog.rs"), &plain).is_err());
        assert!(scope("db", Some("system.views"), &plain).is_err());
    }
}
