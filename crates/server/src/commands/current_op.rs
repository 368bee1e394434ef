//! `currentOp` and `killOp` (mongod 7.0 `current_op.cpp`, `kill_op.cpp`), and what a
//! `$currentOp` stage reads ([`current_ops`]).
//!
//! As mongod, the `currentOp` command is an aggregation: `[{$currentOp: {allUsers:
//! !$ownOps, idleConnections: $all, truncateOps: true}}, {$match: <filter>}]` on
//! `admin`, its results gathered into `inprog`. `$all: true` ignores the filter.

use bson::{doc, Bson, Document};
use eddy_codes::{ErrorCode, MongoError};
use eddy_engine::exec::{Aggregation, CurrentOps};
use eddy_query::pipeline::CurrentOpSpec;

use super::data::with_engine;
use crate::auth::{Action, Resource};
use crate::command::{Command, CommandResult, Ctx};
use crate::ops::Listing;

/// The `$currentOp` source of an aggregation run by `ctx`'s connection: the server's
/// operations as the stage's options ask, the caller's own unless `allUsers`.
pub fn current_ops(ctx: &Ctx) -> CurrentOps {
    let state = std::sync::Arc::clone(ctx.state());
    let caller = ctx.conn().auth.session_uid();
    let host = state.config.advertised_host();
    Box::new(move |spec: &CurrentOpSpec| {
        let listing = Listing {
            all_users: spec.all_users,
            idle_connections: spec.idle_connections,
            idle_cursors: spec.idle_cursors,
            truncate_ops: spec.truncate_ops,
        };
        state.ops.list(listing, &host, &state.cursors, caller)
    })
}

/// The fields of `currentOp` that are not filters.
const OPTIONS: &[&str] = &["currentOp", "$all", "$ownOps", "comment"];

pub struct CurrentOp {
    all: bool,
    own_ops: bool,
    filter: Document,
}

impl Command for CurrentOp {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        let flag = |name: &str| cmd.get(name).is_some_and(crate::args::truthy);
        let filter = cmd
            .iter()
            .filter(|(k, _)| {
                !OPTIONS.contains(&k.as_str()) && !super::GENERIC_FIELDS.contains(&k.as_str())
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(CurrentOp {
            all: flag("$all"),
            own_ops: flag("$ownOps"),
            filter,
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let mut pipeline = vec![doc! {"$currentOp": {
            "allUsers": !self.own_ops,
            "idleConnections": self.all,
            "truncateOps": true,
        }}];
        if !self.all {
            pipeline.push(doc! {"$match": self.filter});
        }
        let job = Aggregation {
            db: "admin".into(),
            coll: None,
            pipeline,
            let_vars: Document::new(),
            local_sessions: None,
            current_ops: Some(current_ops(&ctx)),
            collation: None,
            bypass_document_validation: false,
            snapshot: None,
            hint: None,
            deadline: ctx.deadline(),
            host: None,
        };
        let (ops, _) = with_engine(&ctx, move |engine| job.run(engine)).await?;
        Ok(doc! {"inprog": ops.into_iter().map(Bson::Document).collect::<Vec<_>>()}.into())
    }
}

pub struct KillOp {
    op: u32,
}

impl Command for KillOp {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        let op = match cmd.get("op") {
            None => {
                return Err(MongoError::new(
                    ErrorCode::BadValue,
                    "Did not provide \"op\" field",
                ))
            }
            Some(v) => crate::args::as_integer(v).ok_or_else(|| {
                MongoError::new(
                    ErrorCode::TypeMismatch,
                    format!(
                        "Expected field \"op\" to have numeric type, but found {}",
                        crate::args::type_name(v)
                    ),
                )
            })?,
        };
        // mongod reads the opid as a 32-bit number.
        let op = u32::try_from(op)
            .map_err(|_| MongoError::new(ErrorCode::BadValue, format!("invalid op id {op}")))?;
        Ok(KillOp { op })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        // With `--auth`, an operation of another user needs `killop`.
        let identity = ctx.conn().auth.identity();
        let may_kill_any = !ctx.state().config.auth
            || identity
                .as_ref()
                .is_some_and(|i| i.may(&Resource::Cluster, Action::Killop));
        let caller = ctx.conn().auth.session_uid();
        ctx.state().ops.kill(self.op, |op| {
            may_kill_any || op.conn.auth.session_uid() == caller
        })?;
        // As mongod: the answer is the same whether or not the op was running.
        Ok(doc! {"info": "attempting to kill op"}.into())
    }
}
