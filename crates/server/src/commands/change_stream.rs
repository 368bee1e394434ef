//! `aggregate` with `$changeStream` first: opening a change stream cursor.
//!
//! The cursor's source is an [`eddy_engine::changes::ChangeStream`] (a position in the
//! oplog) plus a receiver of the change hub's `watch` channel. A `getMore` reads what
//! is available; with nothing to return it awaits the next publish or `maxTimeMS`
//! (default 1 s, as mongod), then answers, possibly with an empty batch and a fresh
//! `postBatchResumeToken`. The stream holds no task while nobody asks for a batch.

use bson::{Document, RawDocumentBuf, Timestamp};
use eddy_codes::{ErrorCode, MongoError};
use eddy_engine::changes::{ChangeStream, EventFilter, PassAll, Scope, StreamSpec};
use eddy_engine::Namespace;
use eddy_query::expr::Env;
use eddy_query::pipeline::Pipeline;
use futures_util::future::BoxFuture;
use tokio::sync::watch;

use crate::command::{CommandResult, Ctx};
use crate::cursor::{Batch, BatchRequest, CursorOptions, CursorSource};

/// A change stream as a cursor source.
pub struct ChangeStreamSource {
    stream: ChangeStream,
    published: watch::Receiver<Timestamp>,
}

impl CursorSource for ChangeStreamSource {
    fn next_batch<'a>(&'a mut self, req: BatchRequest) -> BoxFuture<'a, Result<Batch, MongoError>> {
        Box::pin(async move {
            let max_events = req.batch_size.map(|n| n as usize).unwrap_or(usize::MAX);
            let deadline = req.max_await.map(|d| tokio::time::Instant::now() + d);
            loop {
                // Mark the current publish as seen before reading, so that a publish
                // racing with this read wakes the wait below.
                self.published.borrow_and_update();
                let batch = self.stream.next_batch(max_events, req.max_bytes)?;
                let waiting_pays = batch.events.is_empty() && !batch.invalidated && max_events > 0;
                match deadline {
                    Some(deadline) if waiting_pays && tokio::time::Instant::now() < deadline => {
                        if tokio::time::timeout_at(deadline, self.published.changed())
                            .await
                            .is_err()
                        {
                            // Timed out: one last read, then answer.
                            let batch = self.stream.next_batch(max_events, req.max_bytes)?;
                            return to_batch(batch);
                        }
                    }
                    _ => return to_batch(batch),
                }
            }
        })
    }
}

fn to_batch(batch: eddy_engine::changes::StreamBatch) -> Result<Batch, MongoError> {
    let docs = batch
        .events
        .iter()
        .map(|d| {
            RawDocumentBuf::try_from(d)
                .map_err(|e| MongoError::internal(format!("cannot encode an event: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Batch {
        docs,
        exhausted: batch.invalidated,
        post_batch_resume_token: Some(batch.post_batch_resume_token),
    })
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

/// The stages after `$changeStream`, applied to each event in order.
struct EventPipeline {
    pipeline: Pipeline,
    /// The pipeline ended with `$changeStreamSplitLargeEvent`.
    split: bool,
    /// `$$NOW` is fixed when the stream opens.
    env: Env,
}

impl EventFilter for EventPipeline {
    fn apply(&self, event: Document) -> Result<Option<Document>, MongoError> {
        self.pipeline.apply_one(event, &self.env)
    }

    fn splits_large_events(&self) -> bool {
        self.split
    }
}

/// The stage that asks for events over 16 MB to be split into fragments (the engine
/// splits them, `eddy_engine::changes`).
const SPLIT_STAGE: &str = "$changeStreamSplitLargeEvent";

/// Parses the user's stages after `$changeStream`: only the stages mongod allows there;
/// `$changeStreamSplitLargeEvent` only last, with an empty argument.
pub fn event_pipeline(stages: &[Document]) -> Result<Box<dyn EventFilter>, MongoError> {
    let split = stages.last().is_some_and(|s| s.contains_key(SPLIT_STAGE));
    if let Some(last) = stages.last().filter(|_| split) {
        if !matches!(last.get(SPLIT_STAGE), Some(bson::Bson::Document(d)) if d.is_empty()) {
            return Err(MongoError::location(
                7182800,
                "$changeStreamSplitLargeEvent takes an empty document {}",
            ));
        }
    }
    let stages = if split {
        &stages[..stages.len() - 1]
    } else {
        stages
    };
    if stages.iter().any(|s| s.contains_key(SPLIT_STAGE)) {
        return Err(MongoError::location(
            7182802,
            "$changeStreamSplitLargeEvent must be the last stage in the pipeline",
        ));
    }
    if stages.is_empty() && !split {
        return Ok(Box::new(PassAll));
    }
    Ok(Box::new(EventPipeline {
        pipeline: Pipeline::parse_change_stream(stages)?,
        split,
        env: Env::new(),
    }))
}

/// Opens a change stream and answers the `aggregate` with its first batch.
pub async fn open(
    ctx: &Ctx,
    coll: Option<String>,
    spec: &Document,
    filter: Box<dyn EventFilter>,
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
    let published = engine.hub().subscribe();
    let stream =
        tokio::task::spawn_blocking(move || ChangeStream::open(engine, scope, spec, filter))
            .await
            .map_err(|e| MongoError::internal(format!("opening the stream failed: {e}")))??;
    let source = ChangeStreamSource { stream, published };
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
