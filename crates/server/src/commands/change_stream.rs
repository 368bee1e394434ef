//! `aggregate` with `$changeStream` first: opening a change stream cursor.
//!
//! The cursor's source is an [`eddy_engine::changes::ChangeStream`] (a position in the
//! oplog). A `getMore` reads what is available; with nothing to return it hands the
//! stream to the hub's dispatcher (a [`Delivery`]), which wakes it only for an entry
//! that can concern it, until `maxTimeMS` (default 1 s, as mongod), then answers,
//! possibly with an empty batch and a fresh `postBatchResumeToken`. The thread that
//! wakes the stream reads its batch and writes the reply itself (`crate::answer`); the
//! `getMore` gets the stream back and does the cursor's bookkeeping after. The stream
//! holds no task while nobody asks for a batch, and a waiting one is woken by nothing
//! it cannot use.

use bson::Document;
use eddy_codes::{ErrorCode, MongoError};
use eddy_engine::changes::dispatch::Handoff;
use eddy_engine::changes::{ChangeStream, EventPipeline, Scope, StreamBatch, StreamSpec};
use eddy_engine::Namespace;
use futures_util::future::BoxFuture;
use tokio::sync::oneshot;

use crate::answer::ReplyTo;
use crate::command::{CommandResult, Ctx};
use crate::cursor::{Batch, BatchDoc, BatchRequest, CursorOptions, CursorSource};

/// A change stream as a cursor source.
pub struct ChangeStreamSource {
    /// `None` only while the stream waits, handed to the dispatcher (or if a getMore
    /// was dropped in the middle of its wait, which also ends its cursor). Boxed so
    /// that a waiting stream's cursor keeps no room for it: an idle stream's memory is
    /// the stream once, in its hand-off.
    stream: Option<Box<ChangeStream>>,
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
                // Nothing new: the stream waits with the dispatcher, handed over with
                // where its answer goes. `Err` gives it back: entries arrived since
                // the read, read again.
                let (back, mut returned) = oneshot::channel();
                let reply_to = req.reply_to.clone();
                let handed = self.take()?.hand_off(|stream| {
                    Box::new(Delivery {
                        stream,
                        max_events,
                        max_bytes: req.max_bytes,
                        reply_to,
                        back,
                    })
                });
                let mut handed = match handed {
                    Ok(handed) => handed,
                    Err(stream) => {
                        self.stream = Some(Box::new(stream));
                        continue;
                    }
                };
                let back = match tokio::time::timeout_at(deadline, &mut returned).await {
                    Ok(back) => {
                        handed.finished();
                        back
                    }
                    // Timed out: cancelled, the hand-off gives the stream back at once;
                    // woken meanwhile, it gives it back with its batch.
                    Err(_) => {
                        handed.cancel();
                        returned.await
                    }
                };
                let Back { stream, read } = *back.map_err(|_| {
                    MongoError::new(ErrorCode::InterruptedAtShutdown, "interrupted at shutdown")
                })?;
                let stream = self.stream.insert(Box::new(stream));
                match read {
                    Read::Cancelled(through) => {
                        // Skip what was ruled out, one last read, then answer.
                        stream.skip_through(through);
                        let batch = self.read(max_events, req.max_bytes)?;
                        return Ok(to_batch(batch));
                    }
                    Read::Batch(batch) => {
                        let batch = batch?;
                        if !batch.docs.is_empty() || batch.exhausted {
                            return Ok(batch);
                        }
                        // The pipeline dropped what woke the stream: wait on.
                    }
                }
            }
        })
    }
}

impl ChangeStreamSource {
    fn stream(&mut self) -> Result<&mut ChangeStream, MongoError> {
        self.stream.as_deref_mut().ok_or_else(lost)
    }

    fn take(&mut self) -> Result<ChangeStream, MongoError> {
        self.stream.take().map(|s| *s).ok_or_else(lost)
    }

    /// One read of the stream. A stream catching up from storage may build a 16 MB
    /// batch: it does so off the async worker, whose other connections keep going.
    fn read(&mut self, max_events: usize, max_bytes: usize) -> Result<StreamBatch, MongoError> {
        let stream = self.stream()?;
        if stream.reads_storage() {
            tokio::task::block_in_place(|| stream.next_batch(max_events, max_bytes))
        } else {
            stream.next_batch(max_events, max_bytes)
        }
    }
}

/// A getMore dropped in the middle of its wait (interrupted, or its connection gone)
/// takes the stream with it.
fn lost() -> MongoError {
    MongoError::new(
        ErrorCode::CursorKilled,
        "the change stream ended with a getMore interrupted while it waited",
    )
}

/// A waiting stream handed to the hub's dispatcher. The thread that wakes it reads its
/// batch and, where the connection lets it, writes the reply to the client itself
/// (`crate::answer`): an event that concerns many streams goes out to each of them
/// without waiting for their tasks. Either way the stream and its batch go back to the
/// waiting `getMore`, which does the cursor's bookkeeping.
struct Delivery {
    stream: ChangeStream,
    max_events: usize,
    max_bytes: usize,
    reply_to: Option<ReplyTo>,
    /// Boxed: the channel is allocated with room for what it carries, and it waits as
    /// long as the stream does.
    back: oneshot::Sender<Box<Back>>,
}

/// What a hand-off gives back to its `getMore`.
struct Back {
    stream: ChangeStream,
    read: Read,
}

enum Read {
    /// No entry woke the stream; entries through this (packed) position were ruled out.
    Cancelled(u64),
    /// Woken and read: the batch (empty if the pipeline dropped what woke the stream).
    Batch(Result<Batch, MongoError>),
}

impl Handoff for Delivery {
    fn run(self: Box<Self>, through: u64) {
        let Delivery {
            mut stream,
            max_events,
            max_bytes,
            reply_to,
            back,
        } = *self;
        stream.skip_through(through);
        let read = stream.next_batch(max_events, max_bytes).map(to_batch);
        let answered = match (&read, &reply_to) {
            // False if the connection answers itself: it then sends this batch.
            (Ok(batch), Some(to)) if !batch.docs.is_empty() || batch.exhausted => to.send(batch),
            _ => false,
        };
        // A getMore gone meanwhile drops the stream with its cursor.
        let back_with = move || {
            let _ = back.send(Box::new(Back {
                stream,
                read: Read::Batch(read),
            }));
        };
        if answered {
            // Its bookkeeping can wait for the other streams' replies.
            crate::deliveries::after_replies(back_with);
        } else {
            back_with();
        }
    }

    fn cancel(self: Box<Self>, through: u64) {
        let _ = self.back.send(Box::new(Back {
            stream: self.stream,
            read: Read::Cancelled(through),
        }));
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
    let source = ChangeStreamSource {
        stream: Some(Box::new(stream)),
    };
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
