//! `aggregate`: `{aggregate: coll | 1, pipeline: [...], cursor: {batchSize?}, explain?, ...}`.
//!
//! A pipeline that starts with `$changeStream` opens a change stream
//! ([`super::change_stream`]); any other is run by the engine
//! ([`eddy_engine::exec::Aggregation`]) on the blocking pool, and its results become a
//! cursor.

use std::sync::Arc;

use bson::{Bson, Document};
use eddy_codes::{ErrorCode, MongoError};
use eddy_engine::changes::EventPipeline;
use eddy_engine::exec::{Aggregation, LocalSession, LocalSessions};
use eddy_query::collation::Collation;
use eddy_query::pipeline::{check_api_version_1, known_stage};

use super::change_stream;
use super::data::{check_fields, collation_arg, with_engine};
use crate::args::{missing, opt_doc, opt_integer, wrong_type};
use crate::command::{Command, CommandResult, Ctx};
use crate::cursor::{CursorOptions, VecCursor};

/// The first batch of an aggregate without `batchSize` holds at most this many.
const DEFAULT_FIRST_BATCH: u32 = 101;

pub struct Aggregate {
    /// `None` for `aggregate: 1` (database-level).
    coll: Option<String>,
    pipeline: Vec<Document>,
    batch_size: Option<u32>,
    /// The command's `let` variables, unevaluated.
    let_vars: Document,
    collation: Option<Arc<Collation>>,
    /// Whether the command names a `collation` (else the collection's or view's
    /// default applies; a change stream's is then simple, as in mongod).
    names_collation: bool,
    bypass_document_validation: bool,
    snapshot: Option<Option<bson::Timestamp>>,
    /// The index the pipeline's input is read through (`hint`).
    hint: Option<Bson>,
    /// `explain: true`: the command to explain (echoed in the reply) instead of running it.
    explain: Option<Document>,
}

impl Command for Aggregate {
    fn parse(cmd: &Document, ctx: &Ctx) -> Result<Self, MongoError> {
        check_fields(
            cmd,
            "aggregate",
            &[
                "pipeline",
                "cursor",
                "explain",
                "allowDiskUse",
                "bypassDocumentValidation",
                "collation",
                "hint",
                "let",
                "needsMerge",
                "fromMongos",
                "isMapReduceCommand",
                "exchange",
                "runtimeConstants",
            ],
        )?;
        let collation = collation_arg(cmd, "aggregate")?;
        let snapshot = super::data::snapshot_read(cmd)?;
        let bypass_document_validation =
            crate::args::opt_bool(cmd, "aggregate", "bypassDocumentValidation")?.unwrap_or(false);
        let coll = match cmd.get("aggregate") {
            Some(Bson::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Bson::String(_)) => {
                return Err(MongoError::new(
                    ErrorCode::InvalidNamespace,
                    "Invalid namespace specified: empty collection name",
                ))
            }
            Some(v @ (Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_)))
                if crate::args::as_integer(v) == Some(1) =>
            {
                None
            }
            Some(_) => return Err(MongoError::location(
                ErrorCode::FailedToParse.code(),
                "Invalid command format: the 'aggregate' field must specify a collection name or 1",
            )),
            None => return Err(missing("aggregate", "aggregate")),
        };
        let pipeline = match cmd.get("pipeline") {
            Some(Bson::Array(stages)) => stages
                .iter()
                .map(|s| match s {
                    Bson::Document(d) => Ok(d.clone()),
                    other => Err(MongoError::type_mismatch(format!(
                        "Each element of the 'pipeline' array must be an object, but found {}",
                        crate::args::type_name(other)
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(v) => return Err(wrong_type("aggregate", "pipeline", v, "type 'array'")),
            None => return Err(missing("aggregate", "pipeline")),
        };
        let explain = cmd.get("explain").is_some_and(crate::args::truthy);
        let batch_size = match opt_doc(cmd, "aggregate", "cursor")? {
            Some(c) => match opt_integer(c, "aggregate.cursor", "batchSize")? {
                Some(n) if n < 0 => {
                    return Err(MongoError::location(
                        eddy_codes::location::VALUE_BELOW_MINIMUM,
                        format!("BSON field 'batchSize' value must be >= 0, actual value '{n}'"),
                    ))
                }
                other => other.map(|n| n.min(i64::from(u32::MAX)) as u32),
            },
            None if explain => None,
            None => return Err(MongoError::failed_to_parse(
                "The 'cursor' option is required, except for aggregate with the explain argument",
            )),
        };
        let api_strict = cmd.get_bool("apiStrict").unwrap_or(false);
        let mut stages = Vec::with_capacity(pipeline.len());
        for (i, stage) in pipeline.iter().enumerate() {
            let info = known_stage(stage)?;
            if api_strict {
                check_api_version_1(info)?;
            }
            stages.push(info);
            if info.name == "$changeStream" && i != 0 {
                return Err(MongoError::location(
                    eddy_codes::location::STAGE_NOT_FIRST,
                    "$changeStream is only valid as the first stage in a pipeline",
                ));
            }
        }
        let is_change_stream = pipeline
            .first()
            .is_some_and(|s| s.contains_key("$changeStream"));
        let level = cmd
            .get_document("readConcern")
            .ok()
            .and_then(|rc| rc.get_str("level").ok());
        if level == Some("linearizable") {
            // A linearizable read must not write (mongod's check on $out and $merge).
            let writer = pipeline
                .last()
                .and_then(|s| s.keys().next())
                .filter(|n| matches!(n.as_str(), "$out" | "$merge"));
            if let Some(stage) = writer {
                return Err(MongoError::new(
                    ErrorCode::InvalidOptions,
                    format!("{stage} cannot be used with a 'linearizable' read concern level"),
                ));
            }
        }
        if is_change_stream {
            // Change streams read majority-committed data only; an explicit other level fails.
            if let Some(level) = level.filter(|l| *l != "majority") {
                return Err(MongoError::new(
                    ErrorCode::InvalidOptions,
                    format!("Aggregation stage $changeStream cannot run with a readConcern other than 'majority'. Current readConcern: {level}"),
                ));
            }
        }
        let first_is = |name: &str| pipeline.first().is_some_and(|s| s.contains_key(name));
        if first_is("$currentOp") && (coll.is_some() || ctx.db() != "admin") {
            return Err(MongoError::new(
                ErrorCode::InvalidNamespace,
                "$currentOp must be run against the 'admin' database with {aggregate: 1}",
            ));
        }
        if coll.is_some()
            && pipeline
                .first()
                .is_some_and(|s| s.contains_key("$listLocalSessions"))
        {
            return Err(MongoError::new(
                ErrorCode::InvalidNamespace,
                "$listLocalSessions must be run against the database with {aggregate: 1}, not a collection",
            ));
        }
        if coll.is_none() {
            // Only stages that generate their own input run without a collection.
            let first = stages.first().map_or("", |s| s.name);
            if !stages.first().is_some_and(|s| s.collectionless) {
                return Err(MongoError::new(
                    ErrorCode::InvalidNamespace,
                    format!(
                        "{{aggregate: 1}} is not valid for '{first}'; a collection is required."
                    ),
                ));
            }
        }
        let let_vars = opt_doc(cmd, "aggregate", "let")?
            .cloned()
            .unwrap_or_default();
        let hint = super::data::opt_hint(cmd)?;
        Ok(Aggregate {
            coll,
            pipeline,
            batch_size,
            let_vars,
            collation,
            names_collation: cmd.contains_key("collation"),
            bypass_document_validation,
            snapshot,
            hint,
            explain: explain.then(|| cmd.clone()),
        })
    }

    async fn apply(mut self, ctx: Ctx) -> CommandResult {
        if let Some(command) = self.explain.take() {
            // `explain: true` explains at the `queryPlanner` verbosity.
            return super::explain::aggregate(&ctx, self, command, false).await;
        }
        let is_stream = self
            .pipeline
            .first()
            .is_some_and(|s| s.contains_key("$changeStream"));
        match self.pipeline.first() {
            Some(first) if is_stream => {
                let spec = match first.get("$changeStream") {
                    Some(Bson::Document(d)) => d.clone(),
                    Some(v) => {
                        return Err(MongoError::location(
                            50808,
                            format!(
                                "$changeStream stage expects a document as argument, got {}",
                                crate::args::type_name(v)
                            ),
                        ))
                    }
                    None => Document::new(),
                };
                let pipeline = EventPipeline::parse(&self.pipeline[1..], self.collation.as_ref())?;
                change_stream::open(&ctx, self.coll, &spec, pipeline, self.batch_size).await
            }
            _ => {
                let ns = match &self.coll {
                    Some(c) => format!("{}.{c}", ctx.db()),
                    None => format!("{}.$cmd.aggregate", ctx.db()),
                };
                let batch_size = self.batch_size;
                let names_collation = self.names_collation;
                let mut job = self.into_job(&ctx)?;
                let (docs, at) = with_engine(&ctx, move |engine| {
                    job.apply_default_collation(engine, names_collation)?;
                    job.run(engine)
                })
                .await?;
                let source = VecCursor::from_documents(docs)?;
                let first = batch_size.or(Some(DEFAULT_FIRST_BATCH));
                ctx.open_cursor_at(ns, Box::new(source), CursorOptions::default(), first, at)
                    .await
            }
        }
    }
}

impl Aggregate {
    /// The engine's aggregation of this command (not a change stream: 115 for explain).
    pub(super) fn into_job(self, ctx: &Ctx) -> Result<Aggregation, MongoError> {
        let first_is = |name: &str| self.pipeline.first().is_some_and(|s| s.contains_key(name));
        if first_is("$changeStream") {
            return Err(MongoError::new(
                ErrorCode::CommandNotSupported,
                "Eddy cannot explain a $changeStream pipeline",
            ));
        }
        // `$listLocalSessions` reads the server's session cache, which the blocking pool
        // does not see: take the snapshot here.
        let local_sessions = first_is("$listLocalSessions").then(|| LocalSessions {
            sessions: ctx
                .state()
                .sessions
                .list()
                .into_iter()
                .map(|(key, last_use)| LocalSession {
                    id: key.id(),
                    uid: key.uid(),
                    last_use,
                })
                .collect(),
            caller: ctx.conn().auth.session_uid(),
            uid_of: crate::auth::session_user_digest,
        });
        let current_ops = first_is("$currentOp").then(|| super::current_op::current_ops(ctx));
        Ok(Aggregation {
            db: ctx.db().to_owned(),
            coll: self.coll,
            pipeline: self.pipeline,
            let_vars: self.let_vars,
            local_sessions,
            current_ops,
            collation: self.collation,
            bypass_document_validation: self.bypass_document_validation,
            snapshot: self.snapshot,
            hint: self.hint,
            deadline: ctx.deadline(),
            host: Some(ctx.state().config.advertised_host()),
        })
    }
}
