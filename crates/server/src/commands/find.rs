//! `find`: a query returning a cursor.

use bson::{Bson, Document};
use eddy_codes::{ErrorCode, MongoError};

use super::data::{check_fields, collation_arg, collection_arg, namespace, with_engine};
use crate::args::{opt_bool, opt_doc, opt_integer, wrong_type};
use crate::command::{Command, CommandResult, Ctx};
use crate::cursor::{CursorOptions, VecCursor};
use eddy_engine::exec::{query, QuerySpec};

/// The first batch of a find without `batchSize` holds at most this many documents.
const DEFAULT_FIRST_BATCH: u32 = 101;

pub struct Find {
    coll: String,
    /// Also what `explain` of a find runs.
    pub(super) query: QuerySpec,
    /// Whether the command names a `collation` (else the collection's or view's default).
    pub(super) names_collation: bool,
    batch_size: Option<u32>,
    single_batch: bool,
    /// `tailable` (with its `awaitData`), served by [`super::tailable`].
    tail: Option<Tail>,
}

#[derive(Debug, Clone, Copy)]
struct Tail {
    await_data: bool,
    no_timeout: bool,
}

/// A non-negative integer field: mongod's 51024 for negatives.
pub fn non_negative(cmd: &Document, command: &str, field: &str) -> Result<Option<i64>, MongoError> {
    match opt_integer(cmd, command, field)? {
        Some(n) if n < 0 => Err(MongoError::location(
            eddy_codes::location::VALUE_BELOW_MINIMUM,
            format!("BSON field '{field}' value must be >= 0, actual value '{n}'"),
        )),
        other => Ok(other),
    }
}

/// `min` and `max` (empty documents are absent), with mongod's check that both name
/// the same fields in the same order.
fn min_max(cmd: &Document) -> Result<(Option<Document>, Option<Document>), MongoError> {
    let min = opt_doc(cmd, "find", "min")?
        .filter(|d| !d.is_empty())
        .cloned();
    let max = opt_doc(cmd, "find", "max")?
        .filter(|d| !d.is_empty())
        .cloned();
    if let (Some(lo), Some(hi)) = (&min, &max) {
        if lo.len() != hi.len() || lo.keys().zip(hi.keys()).any(|(a, b)| a != b) {
            return Err(MongoError::location(
                51176,
                "min and max must have the same field names",
            ));
        }
    }
    Ok((min, max))
}

impl Command for Find {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        check_fields(
            cmd,
            "find",
            &[
                "filter",
                "sort",
                "projection",
                "hint",
                "skip",
                "limit",
                "batchSize",
                "singleBatch",
                "max",
                "min",
                "returnKey",
                "showRecordId",
                "tailable",
                "oplogReplay",
                "noCursorTimeout",
                "awaitData",
                "allowPartialResults",
                "collation",
                "allowDiskUse",
                "let",
                "readOnce",
                "term",
                "ntoreturn",
            ],
        )?;
        let tailable = opt_bool(cmd, "find", "tailable")?.unwrap_or(false);
        let await_data = opt_bool(cmd, "find", "awaitData")?.unwrap_or(false);
        if await_data && !tailable {
            return Err(MongoError::new(
                ErrorCode::FailedToParse,
                "Cannot set 'awaitData' without also setting 'tailable'",
            ));
        }
        let hint = match cmd.get("hint") {
            None => None,
            Some(h @ (Bson::String(_) | Bson::Document(_))) => Some(h.clone()),
            Some(v) => return Err(wrong_type("find", "hint", v, "types '[string, object]'")),
        };
        let (min, max) = min_max(cmd)?;
        Ok(Find {
            coll: collection_arg(cmd, "find")?,
            query: QuerySpec {
                filter: opt_doc(cmd, "find", "filter")?.cloned().unwrap_or_default(),
                sort: opt_doc(cmd, "find", "sort")?.cloned(),
                projection: opt_doc(cmd, "find", "projection")?.cloned(),
                skip: non_negative(cmd, "find", "skip")?.unwrap_or(0) as u64,
                limit: non_negative(cmd, "find", "limit")?.map(|l| l as u64),
                hint,
                let_vars: opt_doc(cmd, "find", "let")?.cloned().unwrap_or_default(),
                collation: collation_arg(cmd, "find")?,
                snapshot: super::data::snapshot_read(cmd)?,
                min,
                max,
                deadline: None,
                return_key: opt_bool(cmd, "find", "returnKey")?.unwrap_or(false),
                show_record_id: opt_bool(cmd, "find", "showRecordId")?.unwrap_or(false),
            },
            batch_size: non_negative(cmd, "find", "batchSize")?
                .map(|b| b.min(i64::from(u32::MAX)) as u32),
            single_batch: opt_bool(cmd, "find", "singleBatch")?.unwrap_or(false),
            names_collation: cmd.contains_key("collation"),
            tail: tailable.then_some(Tail {
                await_data,
                no_timeout: opt_bool(cmd, "find", "noCursorTimeout")?.unwrap_or(false),
            }),
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let ns = namespace(&ctx, &self.coll);
        let full = ns.to_string();
        if let Some(tail) = self.tail {
            return super::tailable::open(
                &ctx,
                ns,
                self.query,
                tail.await_data,
                tail.no_timeout,
                self.batch_size,
                self.single_batch,
            )
            .await;
        }
        let mut query = QuerySpec {
            deadline: ctx.deadline(),
            ..self.query
        };
        let names_collation = self.names_collation;
        // Which cursors mongod closes with their last document (see `VecCursor::streaming`):
        // a sort or an `_id` point lookup knows its end; a scan does not, unless a limit
        // stops it.
        let sorted = query.sort.as_ref().is_some_and(|s| !s.is_empty());
        let id_lookup = query.filter.len() == 1
            && query.filter.get("_id").is_some_and(|v| {
                !matches!(
                    v,
                    Bson::Document(_) | Bson::Array(_) | Bson::RegularExpression(_)
                )
            });
        let limit = query.limit;
        let outcome = with_engine(&ctx, move |e| {
            e.apply_default_collation(&ns, names_collation, &mut query.collation)?;
            query::execute(e, &ns, &query)
        })
        .await?;
        let (mut docs, at) = (outcome.docs, outcome.at);
        let limit_reached = limit.is_some_and(|l| l > 0 && docs.len() as u64 >= l);
        let streaming = !(sorted || id_lookup || limit_reached || self.single_batch);
        let first = self.batch_size.or(Some(DEFAULT_FIRST_BATCH));
        if self.single_batch {
            // One batch and no cursor: what does not fit the first batch is dropped.
            if let Some(n) = first.filter(|n| *n > 0) {
                docs.truncate(n as usize);
            }
        }
        let mut source = VecCursor::from_documents(docs)?;
        if streaming {
            source = source.streaming();
        }
        ctx.open_cursor_at(full, Box::new(source), CursorOptions::default(), first, at)
            .await
    }
}
