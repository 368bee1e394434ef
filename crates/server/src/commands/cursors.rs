//! `getMore` and `killCursors`.

use std::sync::Arc;
use std::time::Duration;

use bson::{doc, Bson, Document};
use eddy_codes::MongoError;

use super::data::collection_arg;
use crate::answer::ReplyTo;
use crate::args::{missing, opt_integer, wrong_type};
use crate::command::Reply;
use crate::command::{Command, CommandResult, Ctx};
use crate::cursor::{BatchRequest, CursorBatch, MAX_BATCH_BYTES};

/// mongod's wait of an awaitData `getMore` without `maxTimeMS`.
const DEFAULT_AWAIT: Duration = Duration::from_secs(1);

pub struct GetMore {
    id: i64,
    coll: String,
    batch_size: Option<u32>,
    max_time: Option<Duration>,
}

impl Command for GetMore {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        super::data::check_fields(
            cmd,
            "getMore",
            &[
                "collection",
                "batchSize",
                "term",
                "lastKnownCommittedOpTime",
                "includeQueryStatsMetrics",
            ],
        )?;
        let id = match cmd.get("getMore") {
            Some(Bson::Int64(id)) => *id,
            Some(v) => return Err(wrong_type("getMore", "getMore", v, "type 'long'")),
            None => return Err(missing("getMore", "getMore")),
        };
        let coll = match cmd.get("collection") {
            Some(Bson::String(s)) if !s.is_empty() => s.clone(),
            Some(Bson::String(_)) => {
                return Err(MongoError::new(
                    eddy_codes::ErrorCode::InvalidNamespace,
                    "Invalid namespace specified: empty collection name",
                ))
            }
            Some(v) => return Err(wrong_type("getMore", "collection", v, "type 'string'")),
            None => return Err(missing("getMore", "collection")),
        };
        let batch_size = match opt_integer(cmd, "getMore", "batchSize")? {
            Some(n) if n < 0 => {
                return Err(MongoError::location(
                    eddy_codes::location::VALUE_BELOW_MINIMUM,
                    format!("BSON field 'batchSize' value must be >= 0, actual value '{n}'"),
                ))
            }
            // 0 means "no limit" for getMore.
            Some(0) | None => None,
            Some(n) => Some(n.min(i64::from(u32::MAX)) as u32),
        };
        Ok(GetMore {
            id,
            coll,
            batch_size,
            max_time: crate::args::max_time_ms(cmd)?.map(Duration::from_millis),
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let ns = format!("{}.{}", ctx.db(), self.coll);
        let registry = &ctx.state().cursors;
        let mut cursor = registry
            .check_out_after_answer(self.id, &ns, ctx.user().as_deref())
            .await?;
        if ctx.state().config.enable_test_commands {
            if let Some(err) = ctx.state().failpoints.fail_get_more() {
                registry.remove(self.id);
                return Err(err);
            }
        }
        if cursor.options.await_data {
            ctx.conn()
                .awaits_data
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let req = BatchRequest {
            batch_size: self.batch_size,
            max_bytes: MAX_BATCH_BYTES,
            max_await: cursor
                .options
                .await_data
                .then(|| self.max_time.unwrap_or(DEFAULT_AWAIT)),
            reply_to: cursor.options.await_data.then(|| ReplyTo {
                state: Arc::clone(ctx.state()),
                conn: Arc::clone(ctx.conn()),
                cursor_id: self.id,
                ns: ns.clone(),
            }),
        };
        let started = std::time::Instant::now();
        let result = match cursor.budget {
            Some(budget) => {
                if ctx.state().config.enable_test_commands {
                    if let Some(err) = ctx.state().failpoints.max_time_expired() {
                        registry.remove(self.id);
                        return Err(err);
                    }
                }
                tokio::time::timeout(budget, cursor.source.next_batch(req))
                    .await
                    .unwrap_or_else(|_| Err(MongoError::max_time_expired()))
            }
            None => cursor.source.next_batch(req).await,
        };
        cursor.budget = cursor.budget.map(|b| b.saturating_sub(started.elapsed()));
        let batch = match result {
            Ok(batch) => batch,
            Err(err) => {
                // As mongod: a getMore that fails destroys its cursor.
                registry.remove(self.id);
                return Err(err);
            }
        };
        let id = if batch.exhausted {
            registry.remove(self.id);
            0
        } else {
            registry.check_in(cursor, batch.docs.len());
            self.id
        };
        Ok(Reply {
            body: bson::RawDocumentBuf::new(),
            cursor: Some(CursorBatch::new("nextBatch", batch, id, &ns)),
        })
    }
}

pub struct KillCursors {
    coll: String,
    ids: Vec<i64>,
}

impl Command for KillCursors {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        super::data::check_fields(cmd, "killCursors", &["cursors"])?;
        let ids = match cmd.get("cursors") {
            Some(Bson::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Bson::Int64(id) => Ok(*id),
                    other => Err(wrong_type(
                        "killCursors",
                        &format!("cursors.{i}"),
                        other,
                        "type 'long'",
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(v) => return Err(wrong_type("killCursors", "cursors", v, "type 'array'")),
            None => return Err(missing("killCursors", "cursors")),
        };
        Ok(KillCursors {
            coll: collection_arg(cmd, "killCursors")?,
            ids,
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let ns = format!("{}.{}", ctx.db(), self.coll);
        let (killed, not_found) = ctx
            .state()
            .cursors
            .kill(&ns, &self.ids, ctx.user().as_deref());
        Ok(doc! {
            "cursorsKilled": killed,
            "cursorsNotFound": not_found,
            "cursorsAlive": Vec::<Bson>::new(),
            "cursorsUnknown": Vec::<Bson>::new(),
        }
        .into())
    }
}
