//! Tailable cursors on capped collections (`find` with `tailable`, `awaitData`).
//!
//! The cursor is a position in the collection's insertion order (the record id of the
//! last document it examined, see `eddy_engine::capped`) plus the query. Every batch,
//! the first included, reads the documents after the position from a fresh snapshot, so
//! documents inserted later are returned by later `getMore`s. With nothing new, an
//! awaitData cursor waits on the change hub's `watch` channel (which every commit
//! wakes) until its await time passes; nothing polls. A position that capped
//! truncation passed (every document up to it was removed and newer ones exist) ends
//! the cursor with 136 CappedPositionLost, as mongod.

use std::sync::Arc;

use bson::{Binary, Bson, Document, RawDocumentBuf, Timestamp};
use eddy_codes::{ErrorCode, MongoError};
use eddy_engine::{Engine, Namespace};
use eddy_query::filter::Filter;
use eddy_query::projection::Projection;
use futures_util::future::BoxFuture;
use tokio::sync::watch;

use crate::command::{CommandResult, Ctx};
use crate::cursor::{Batch, BatchRequest, CursorOptions, CursorSource, VecCursor};
use eddy_engine::exec::QuerySpec;

/// How many records one pass reads from a snapshot at most.
const CHUNK: usize = 1000;

/// A tailable cursor's state between batches.
pub struct TailCursor {
    engine: Arc<Engine>,
    ns: Namespace,
    /// The collection the cursor was opened on: a drop (and re-create) kills it.
    uuid: Binary,
    filter: Document,
    vars: Vec<(String, Bson)>,
    projection: Option<Projection>,
    /// Documents still to skip (`skip`), then still to return (`limit`, if any).
    skip: u64,
    remaining: Option<u64>,
    /// The record id of the last document examined (0: none yet).
    position: u64,
    published: watch::Receiver<Timestamp>,
    /// `singleBatch`: the first batch is the only one.
    single_batch: bool,
}

/// What one read of the collection gave.
struct Pass {
    docs: Vec<RawDocumentBuf>,
    position: u64,
    skip: u64,
}

impl TailCursor {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        engine: Arc<Engine>,
        ns: Namespace,
        uuid: Binary,
        filter: Document,
        vars: Vec<(String, Bson)>,
        projection: Option<Projection>,
        skip: u64,
        limit: Option<u64>,
    ) -> TailCursor {
        let published = engine.hub().subscribe();
        TailCursor {
            engine,
            ns,
            uuid,
            filter,
            vars,
            projection,
            skip,
            remaining: limit.filter(|l| *l > 0),
            position: 0,
            published,
            single_batch: false,
        }
    }

    /// Reads what follows the position (on the blocking pool).
    async fn pass(&self, max_docs: usize, max_bytes: usize) -> Result<Pass, MongoError> {
        let engine = self.engine.clone();
        let ns = self.ns.clone();
        let uuid = self.uuid.clone();
        let filter_doc = self.filter.clone();
        let vars = self.vars.clone();
        let projection = self.projection.clone();
        let (mut position, mut skip) = (self.position, self.skip);
        tokio::task::spawn_blocking(move || {
            let reader = engine.reader()?;
            let meta = match reader.collection(&ns)? {
                Some(meta) if meta.uuid == uuid => meta,
                _ => {
                    return Err(MongoError::new(
                        ErrorCode::QueryPlanKilled,
                        format!("collection dropped. Collection: {ns}"),
                    ))
                }
            };
            if position > 0
                && !reader.capped_has(&meta, position)?
                && reader.capped_first(&meta)?.is_some_and(|first| first > position)
            {
                return Err(MongoError::new(
                    ErrorCode::CappedPositionLost,
                    format!(
                        "CollectionScan died due to position in capped collection being deleted. Last seen record id: RecordId({position})"
                    ),
                ));
            }
            let filter = Filter::parse_with_vars(&filter_doc, &vars)?;
            let (mut docs, mut bytes) = (Vec::new(), 0usize);
            'read: loop {
                let chunk = reader.capped_after(&meta, position, CHUNK)?;
                if chunk.is_empty() {
                    break;
                }
                for (record, doc) in chunk {
                    if docs.len() >= max_docs {
                        break 'read;
                    }
                    let Some(details) = filter.matches_details(&doc) else {
                        position = record;
                        continue;
                    };
                    if skip > 0 {
                        skip -= 1;
                        position = record;
                        continue;
                    }
                    let out = match &projection {
                        Some(p) => p.apply(&doc, Some(&details))?,
                        None => doc,
                    };
                    let raw = RawDocumentBuf::try_from(&out).map_err(|e| {
                        MongoError::internal(format!("cannot encode a result document: {e}"))
                    })?;
                    let len = raw.as_bytes().len();
                    if !docs.is_empty() && bytes + len > max_bytes {
                        break 'read;
                    }
                    bytes += len;
                    docs.push(raw);
                    position = record;
                }
            }
            Ok(Pass {
                docs,
                position,
                skip,
            })
        })
        .await
        .map_err(|e| MongoError::internal(format!("tailable read failed: {e}")))?
    }
}

impl CursorSource for TailCursor {
    fn next_batch<'a>(&'a mut self, req: BatchRequest) -> BoxFuture<'a, Result<Batch, MongoError>> {
        Box::pin(async move {
            let mut max_docs = req.batch_size.map_or(usize::MAX, |n| n as usize);
            if let Some(remaining) = self.remaining {
                max_docs = max_docs.min(usize::try_from(remaining).unwrap_or(usize::MAX));
            }
            let deadline = req.max_await.map(|d| tokio::time::Instant::now() + d);
            loop {
                // Mark the hub's state seen before reading, so a commit after the read
                // wakes the wait below.
                self.published.borrow_and_update();
                let pass = self.pass(max_docs, req.max_bytes).await?;
                self.position = pass.position;
                self.skip = pass.skip;
                let deadline = match deadline {
                    Some(deadline) if pass.docs.is_empty() => deadline,
                    _ => {
                        if let Some(remaining) = &mut self.remaining {
                            *remaining = remaining.saturating_sub(pass.docs.len() as u64);
                        }
                        return Ok(Batch {
                            exhausted: self.single_batch || self.remaining == Some(0),
                            docs: pass.docs.into_iter().map(Into::into).collect(),
                            post_batch_resume_token: None,
                        });
                    }
                };
                match tokio::time::timeout_at(deadline, self.published.changed()).await {
                    Ok(Ok(())) => {}
                    // The await time passed, or the hub is gone (shutting down).
                    Err(_) | Ok(Err(_)) => return Ok(Batch::default()),
                }
            }
        })
    }
}

/// `find` with `tailable`: checks the query as mongod does and opens the cursor. A
/// tailable cursor on a missing or empty collection is closed at once (mongod keeps a
/// tailable cursor only when the collection has records).
pub async fn open(
    ctx: &Ctx,
    ns: Namespace,
    q: QuerySpec,
    await_data: bool,
    no_timeout: bool,
    batch_size: Option<u32>,
    single_batch: bool,
) -> CommandResult {
    if let Some(sort) = q.sort.as_ref().filter(|s| !s.is_empty()) {
        if eddy_engine::exec::natural_direction(Some(sort)) != Some(1) {
            return Err(MongoError::bad_value(
                "error processing query: cannot use tailable option with a sort other than {$natural: 1}",
            ));
        }
    }
    let projection = q
        .projection
        .as_ref()
        .map(|p| Projection::parse_with_query(p, &q.filter))
        .transpose()?;
    let engine = ctx.engine().clone();
    let full = ns.to_string();
    let let_vars = q.let_vars.clone();
    let looked_up = ns.clone();
    let (engine, found) = tokio::task::spawn_blocking(move || {
        let ns = looked_up;
        let vars = eddy_engine::exec::evaluate_let(&engine, &let_vars)?;
        if Filter::parse_with_vars(&q.filter, &vars)?.text().is_some() {
            // A text query reads its index, which a tailable cursor never does.
            return Err(MongoError::bad_value(
                "Eddy does not run $text queries as tailable cursors",
            ));
        }
        let reader = engine.reader()?;
        if reader.view(&ns)?.is_some() {
            return Err(MongoError::new(
                ErrorCode::CommandNotSupportedOnView,
                format!("Namespace {ns} is a view, not a collection"),
            ));
        }
        let meta = reader.collection(&ns)?;
        let found = match meta {
            None => None,
            Some(meta) if meta.cap().is_none() => {
                return Err(MongoError::bad_value(format!(
                    "error processing query: ns={ns} tailable cursor requested on non capped collection"
                )))
            }
            Some(meta) if reader.count(&meta)? == 0 => None,
            Some(meta) => Some((meta.uuid, q.filter, vars, q.skip, q.limit)),
        };
        Ok::<_, MongoError>((engine, found))
    })
    .await
    .map_err(|e| MongoError::internal(format!("tailable find failed: {e}")))??;
    let Some((uuid, filter, vars, skip, limit)) = found else {
        return ctx
            .open_cursor(
                full,
                Box::new(VecCursor::from_raw(Vec::new())),
                CursorOptions::default(),
                batch_size,
            )
            .await;
    };
    let mut source = TailCursor::new(engine, ns, uuid, filter, vars, projection, skip, limit);
    source.single_batch = single_batch;
    let options = CursorOptions {
        await_data,
        no_timeout,
    };
    ctx.open_cursor(full, Box::new(source), options, batch_size.or(Some(101)))
        .await
}
