//! `aggregate`: `{aggregate: coll | 1, pipeline: [...], cursor: {batchSize?}, explain?, ...}`.
//!
//! A pipeline that starts with `$changeStream` opens a change stream
//! ([`super::change_stream`]); any other runs over the collection's documents through
//! [`eddy_query::pipeline`], on the blocking pool, from one reader snapshot:
//!
//! * a leading `$match` is handed to the engine's planner, so it can use an index, and
//!   with it a `$sort` (and `$limit`) right after, so an index can give the order;
//! * `$lookup`/`$unionWith` read other collections through the same snapshot;
//! * a final `$out` writes a temporary collection (with the target's indexes) and
//!   renames it over the target, as mongod does; `$merge` upserts document by
//!   document through the engine's write path.

use std::sync::Arc;

use bson::{Bson, Document};
use eddy_codes::{Deadline, ErrorCode, MongoError};
use eddy_engine::changes::EventPipeline;
use eddy_engine::plan::Query;
use eddy_engine::write::UpdateOp;
use eddy_engine::{Engine, Namespace};
use eddy_query::collation::Collation;
use eddy_query::expr::Env;
use eddy_query::filter::Filter;
use eddy_query::pipeline::{CollStats, Context, MergeAction, MergeSpec, Output, Pipeline};

use super::change_stream;
use super::data::{check_fields, collation_arg, with_engine};
use crate::args::{missing, opt_doc, opt_integer, wrong_type};
use crate::command::{Command, CommandResult, Ctx};
use crate::cursor::{CursorOptions, VecCursor};
use crate::state::SessionKey;

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
    bypass_document_validation: bool,
    snapshot: Option<Option<bson::Timestamp>>,
    /// The index the pipeline's input is read through (`hint`).
    hint: Option<Bson>,
}

/// Stage names of mongod 7.0's aggregation framework.
const KNOWN_STAGES: &[&str] = &[
    "$addFields",
    "$bucket",
    "$bucketAuto",
    "$changeStream",
    "$changeStreamSplitLargeEvent",
    "$collStats",
    "$count",
    "$currentOp",
    "$densify",
    "$documents",
    "$facet",
    "$fill",
    "$geoNear",
    "$graphLookup",
    "$group",
    "$indexStats",
    "$limit",
    "$listLocalSessions",
    "$listSampledQueries",
    "$listSearchIndexes",
    "$listSessions",
    "$lookup",
    "$match",
    "$merge",
    "$out",
    "$planCacheStats",
    "$project",
    "$redact",
    "$replaceRoot",
    "$replaceWith",
    "$sample",
    "$search",
    "$searchMeta",
    "$set",
    "$setWindowFields",
    "$shardedDataDistribution",
    "$skip",
    "$sort",
    "$sortByCount",
    "$unionWith",
    "$unset",
    "$unwind",
    "$vectorSearch",
];

/// The name of a stage document, checked as mongod does.
pub fn stage_name(stage: &Document) -> Result<&str, MongoError> {
    if stage.len() != 1 {
        return Err(MongoError::location(
            40323,
            "A pipeline stage specification object must contain exactly one field.",
        ));
    }
    let name = stage.keys().next().map(String::as_str).unwrap_or_default();
    if !KNOWN_STAGES.contains(&name) {
        return Err(MongoError::location(
            40324,
            format!("Unrecognized pipeline stage name: '{name}'"),
        ));
    }
    Ok(name)
}

impl Command for Aggregate {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
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
                        51024,
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
        if explain {
            return Err(MongoError::new(
                ErrorCode::CommandNotSupported,
                "Eddy does not support explain for aggregate",
            ));
        }
        let api_strict = cmd.get_bool("apiStrict").unwrap_or(false);
        for (i, stage) in pipeline.iter().enumerate() {
            let name = stage_name(stage)?;
            if api_strict {
                eddy_query::pipeline::check_api_version_1(name)?;
            }
            if name == "$changeStream" && i != 0 {
                return Err(MongoError::location(
                    40602,
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
            let first = pipeline
                .first()
                .and_then(|s| s.keys().next())
                .map_or("", String::as_str);
            if !matches!(
                first,
                "$changeStream" | "$documents" | "$currentOp" | "$listLocalSessions"
            ) {
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
            bypass_document_validation,
            snapshot,
            hint,
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
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
                let db = ctx.db().to_owned();
                let ns = match &self.coll {
                    Some(c) => format!("{db}.{c}"),
                    None => format!("{db}.$cmd.aggregate"),
                };
                // `$listLocalSessions` reads the server's session cache, which the
                // blocking pool does not see: take the snapshot here.
                let lists_sessions = self
                    .pipeline
                    .first()
                    .is_some_and(|s| s.contains_key("$listLocalSessions"));
                let local_sessions = if lists_sessions {
                    LocalSessions {
                        sessions: ctx.state().sessions.list(),
                        caller: ctx.conn().auth.session_uid(),
                    }
                } else {
                    LocalSessions::default()
                };
                let job = Job {
                    db,
                    coll: self.coll,
                    pipeline: self.pipeline,
                    let_vars: self.let_vars,
                    local_sessions,
                    collation: self.collation,
                    bypass_document_validation: self.bypass_document_validation,
                    snapshot: self.snapshot,
                    hint: self.hint,
                    deadline: ctx.deadline(),
                    host: Some(ctx.state().config.advertised_host()),
                };
                let (docs, at) = with_engine(&ctx, move |engine| job.run_at(engine)).await?;
                let source = VecCursor::from_documents(docs)?;
                let first = self.batch_size.or(Some(DEFAULT_FIRST_BATCH));
                ctx.open_cursor_at(ns, Box::new(source), CursorOptions::default(), first, at)
                    .await
            }
        }
    }
}

/// An aggregation run on the blocking pool (also how `find`, `count` and `distinct` read
/// through a view).
pub(super) struct Job {
    pub db: String,
    /// A collection or a view; `None` for `{aggregate: 1}`.
    pub coll: Option<String>,
    pub pipeline: Vec<Document>,
    pub let_vars: Document,
    /// The session cache for a leading `$listLocalSessions`;
    /// empty otherwise.
    pub local_sessions: LocalSessions,
    /// The command's collation (`None`: simple).
    pub collation: Option<Arc<Collation>>,
    /// `$out`/`$merge` skip the target's validator.
    pub bypass_document_validation: bool,
    /// `readConcern: {level: "snapshot"}`, with its `atClusterTime` if given.
    pub snapshot: Option<Option<bson::Timestamp>>,
    /// The index the source collection is read through.
    pub hint: Option<Bson>,
    /// The command's `maxTimeMS` deadline: reading, each stage and the `$out`/`$merge`
    /// writes stop with 50 once it has passed.
    pub deadline: Option<Deadline>,
    /// This server's `host:port` (`$collStats`'s `host`); `None` when a query reads
    /// through a view, which cannot run `$collStats`.
    pub host: Option<String>,
}

impl Job {
    /// Runs the aggregation; with `snapshot`, also the cluster time it read at.
    pub(super) fn run_at(
        self,
        engine: &Arc<Engine>,
    ) -> Result<(Vec<Document>, Option<bson::Timestamp>), MongoError> {
        let mut env = Env::new();
        env.cluster_time = Some(engine.cluster_time());
        env.vars = eddy_query::expr::evaluate_let(&self.let_vars, &env)?;
        let names: Vec<String> = env.vars.iter().map(|(k, _)| k.clone()).collect();
        let (reader, at) = super::query::open_reader(engine, self.snapshot)?;
        // A view reads its source collection through its pipeline, ahead of the user's.
        let (coll, stages) = match &self.coll {
            Some(coll) => {
                match reader.resolve_view(&Namespace::new(self.db.clone(), coll.clone()))? {
                    Some(_)
                        if self.pipeline.first().is_some_and(|s| {
                            s.contains_key("$collStats") || s.contains_key("$indexStats")
                        }) =>
                    {
                        return Err(MongoError::new(
                            ErrorCode::CommandNotSupportedOnView,
                            format!("Namespace {}.{coll} is a view, not a collection", self.db),
                        ));
                    }
                    Some(view) => {
                        let mut stages = view.pipeline;
                        stages.extend(self.pipeline);
                        (Some(view.source.coll), stages)
                    }
                    None => (Some(coll.clone()), self.pipeline),
                }
            }
            None => (None, self.pipeline),
        };
        let pipeline =
            Pipeline::parse_with_vars(&stages, &names)?.collated(self.collation.as_ref());
        let mut ctx = ReaderContext {
            reader: &reader,
            db: self.db.clone(),
            env,
            local_sessions: &self.local_sessions,
            deadline: self.deadline,
            coll: coll.as_deref(),
            host: self.host.as_deref(),
            usage: engine.index_usage(),
        };
        let results = match &coll {
            _ if pipeline.generates_input() => pipeline.run(Vec::new(), &mut ctx)?,
            None => pipeline.run(Vec::new(), &mut ctx)?,
            Some(coll) => {
                let ns = Namespace::new(self.db.clone(), coll.clone());
                match reader.collection(&ns)? {
                    Some(meta) => {
                        super::query::check_snapshot_source(&meta, self.snapshot.is_some())?;
                        let input = read_source(
                            &reader,
                            &meta,
                            &pipeline,
                            &ctx,
                            self.hint.as_ref(),
                            self.collation.as_ref(),
                        )?;
                        match input {
                            (docs, Some(next)) => pipeline.run_from_stage(next, docs, &mut ctx)?,
                            (docs, None) => pipeline.run_after_match(docs, &mut ctx)?,
                        }
                    }
                    None => pipeline.run(Vec::new(), &mut ctx)?,
                }
            }
        };
        let env = ctx.env.clone();
        drop(reader);
        if pipeline.writes().is_some() {
            // Nothing is written for a client that has already been told it timed out.
            Deadline::check_opt(self.deadline)?;
        }
        match pipeline.writes() {
            None => Ok((results, at)),
            Some(Output::Out { db, coll }) => {
                let target = Namespace::new(db.clone().unwrap_or(self.db.clone()), coll.clone());
                write_out(engine, target, results, self.bypass_document_validation)?;
                Ok((Vec::new(), at))
            }
            Some(Output::Merge(spec)) => {
                write_merge(
                    engine,
                    &self.db,
                    spec,
                    results,
                    &env,
                    self.bypass_document_validation,
                )?;
                Ok((Vec::new(), at))
            }
        }
    }
}

/// The pipeline's input from its source collection, read through the planner with the
/// leading `$match` (so it can use an index) and a `$sort` (and `$limit`) right after it:
/// the documents, and the stage to continue from when the engine already applied the
/// sort and limit (an index gave the order); otherwise the pipeline continues after the
/// `$match`, its own `$sort` running over input already in that order, so that its
/// errors (parallel arrays) stay mongod's.
fn read_source(
    reader: &eddy_engine::read::Reader,
    meta: &eddy_engine::CollectionMeta,
    pipeline: &Pipeline,
    ctx: &ReaderContext<'_>,
    hint: Option<&Bson>,
    collation: Option<&Arc<Collation>>,
) -> Result<(Vec<Document>, Option<usize>), MongoError> {
    let empty = Document::new();
    let filter_doc = pipeline.leading_match().unwrap_or(&empty);
    let filter = Filter::parse_collated(filter_doc, &ctx.env.vars, collation)?;
    let mut q = Query::new(filter_doc, &filter);
    q.hint = hint;
    q.deadline = ctx.deadline;
    let (limit, next) = match pipeline.leading_sort() {
        Some((sort, limit, next)) => {
            q.sort = Some(sort);
            if eddy_engine::plan::plan(meta, &q)?.sorted {
                (limit, Some(next))
            } else {
                // The pipeline's own `$sort` orders the documents.
                q.sort = None;
                (None, None)
            }
        }
        None => (None, None),
    };
    let found = reader.query(meta, &q, limit)?;
    ctx.usage.record(meta, &found.plan);
    Ok((found.docs.into_iter().map(|m| m.doc).collect(), next))
}

/// Reads for `$lookup`/`$unionWith` through the aggregation's snapshot.
struct ReaderContext<'a> {
    reader: &'a eddy_engine::read::Reader,
    db: String,
    env: Env,
    local_sessions: &'a LocalSessions,
    deadline: Option<Deadline>,
    /// The aggregated collection (`None` for `{aggregate: 1}`).
    coll: Option<&'a str>,
    host: Option<&'a str>,
    usage: &'a eddy_engine::usage::IndexUsage,
}

/// What `$listLocalSessions` lists: the session cache, and whose sessions "mine" are.
#[derive(Debug, Default)]
pub struct LocalSessions {
    pub sessions: Vec<(SessionKey, std::time::SystemTime)>,
    /// The caller's session `uid`.
    pub caller: [u8; 32],
}

impl<'a> ReaderContext<'a> {
    /// The collection a statistics stage reports on, and this server's `host:port`.
    fn stats_target(&self, stage: &str) -> Result<(Namespace, &'a str), MongoError> {
        match (self.coll, self.host) {
            (Some(coll), Some(host)) => {
                Ok((Namespace::new(self.db.clone(), coll.to_owned()), host))
            }
            _ => Err(MongoError::new(
                ErrorCode::CommandNotSupported,
                format!("{stage} runs only in an aggregate command on a collection"),
            )),
        }
    }
}

impl Context for ReaderContext<'_> {
    fn collection(&mut self, db: &str, coll: &str) -> Result<Vec<Document>, MongoError> {
        Deadline::check_opt(self.deadline)?;
        if let Some(view) = self.reader.resolve_view(&Namespace::new(db, coll))? {
            // `$lookup`/`$unionWith` from a view read it through its pipeline.
            let input = self.collection(db, &view.source.coll)?;
            return Pipeline::parse(&view.pipeline)?.run(input, self);
        }
        match self.reader.collection(&Namespace::new(db, coll))? {
            Some(meta) => self.reader.natural(&meta),
            None => Ok(Vec::new()),
        }
    }
    fn db(&self) -> &str {
        &self.db
    }
    fn interrupted(&self) -> Result<(), MongoError> {
        Deadline::check_opt(self.deadline)
    }
    fn index_stats(&mut self) -> Result<Vec<Document>, MongoError> {
        let (ns, host) = self.stats_target("$indexStats")?;
        let Some(meta) = self.reader.collection(&ns)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for spec in meta.index_specs() {
            let name = spec.get_str("name").unwrap_or_default().to_owned();
            let id = meta.index(&name).map_or(0, |i| i.id);
            let (ops, since) = self.usage.accesses(meta.id, id);
            out.push(bson::doc! {
                "name": name,
                "key": spec.get_document("key").cloned().unwrap_or_default(),
                "host": host,
                "accesses": {"ops": i64::try_from(ops).unwrap_or(i64::MAX), "since": since},
                "spec": spec,
            });
        }
        Ok(out)
    }
    fn coll_stats(&mut self, spec: &CollStats) -> Result<Document, MongoError> {
        let (ns, host) = self.stats_target("$collStats")?;
        let meta = self.reader.collection(&ns)?;
        let missing = |what: &str| {
            MongoError::new(
                ErrorCode::NamespaceNotFound,
                format!("Unable to retrieve {what} in $collStats stage :: caused by :: Collection [{ns}] not found."),
            )
        };
        let mut out = bson::doc! {
            "ns": ns.to_string(),
            "host": host,
            "localTime": bson::DateTime::now(),
        };
        if let Some(scale) = spec.storage_scale {
            let meta = meta.as_ref().ok_or_else(|| missing("storageStats"))?;
            let stats = super::stats::storage_stats(self.reader, meta, scale)?;
            out.insert("storageStats", stats);
        }
        if spec.count {
            let meta = meta.as_ref().ok_or_else(|| missing("count"))?;
            out.insert("count", self.reader.count(meta)? as i64);
        }
        Ok(out)
    }
    fn env(&self) -> &Env {
        &self.env
    }
    fn local_sessions(
        &mut self,
        users: Option<&[(String, String)]>,
    ) -> Result<Vec<Document>, MongoError> {
        // The parser gives `("", "")` for "the caller" (mongod's spec without `users`).
        let uids: Option<Vec<[u8; 32]>> = users.map(|users| {
            users
                .iter()
                .map(|(user, db)| match (user.is_empty(), db.is_empty()) {
                    (true, true) => self.local_sessions.caller,
                    _ => crate::auth::session_user_digest(user, db),
                })
                .collect()
        });
        Ok(self
            .local_sessions
            .sessions
            .iter()
            .filter(|(key, _)| uids.as_ref().is_none_or(|uids| uids.contains(&key.uid())))
            .map(|(key, last_use)| {
                bson::doc! {
                    "_id": {
                        "id": key.id(),
                        "uid": bson::Binary {
                            subtype: bson::spec::BinarySubtype::Generic,
                            bytes: key.uid().to_vec(),
                        },
                    },
                    "lastUse": bson::DateTime::from_system_time(*last_use),
                }
            })
            .collect())
    }
}

fn first_write_error(out: &eddy_engine::write::WriteOutcome) -> Result<(), MongoError> {
    match out.errors.first() {
        Some((_, e)) => Err(e.clone()),
        None => Ok(()),
    }
}

/// `$out`: the results go to a temporary collection carrying the target's options
/// and indexes, which then replaces the target in one rename.
fn write_out(
    engine: &Arc<Engine>,
    target: Namespace,
    docs: Vec<Document>,
    bypass: bool,
) -> Result<(), MongoError> {
    if target.is_system() {
        return Err(MongoError::new(
            ErrorCode::InvalidNamespace,
            format!("Invalid $out target namespace, {target}"),
        ));
    }
    let existing = engine.reader()?.collection(&target)?;
    if existing.as_ref().is_some_and(|m| m.cap().is_some()) {
        return Err(MongoError::location(
            17152,
            format!("namespace '{target}' is capped so it can't be used for $out"),
        ));
    }
    let temp = Namespace::new(
        target.db.clone(),
        format!("tmp.agg_out.{}", bson::oid::ObjectId::new().to_hex()),
    );
    let options = existing
        .as_ref()
        .map(|m| m.options.clone())
        .unwrap_or_default();
    engine.create_collection(temp.clone(), options)?;
    let filled = (|| {
        if let Some(meta) = &existing {
            let specs: Vec<Document> = meta.indexes.iter().map(|i| i.spec.clone()).collect();
            if !specs.is_empty() {
                engine.create_indexes(temp.clone(), specs)?;
            }
        }
        if !docs.is_empty() {
            first_write_error(&engine.insert_bypassing(temp.clone(), docs, true, bypass)?)?;
        }
        engine.rename_collection(temp.clone(), target.clone(), true)
    })();
    if filled.is_err() {
        let _ = engine.drop_collection(temp);
    }
    filled
}

/// `$merge`: each result is matched to the target by its `on` fields and inserted,
/// replaced, merged or dropped as the spec says.
fn write_merge(
    engine: &Arc<Engine>,
    db: &str,
    spec: &MergeSpec,
    docs: Vec<Document>,
    env: &Env,
    bypass: bool,
) -> Result<(), MongoError> {
    let target = Namespace::new(
        spec.db.clone().unwrap_or_else(|| db.to_owned()),
        spec.coll.clone(),
    );
    let reader = engine.reader()?;
    let meta = reader.collection(&target)?;
    if spec.on != ["_id"] {
        let unique = meta.as_ref().is_some_and(|m| {
            m.indexes.iter().any(|i| {
                let key = i.key_pattern();
                i.spec.get_bool("unique").unwrap_or(false)
                    && key.len() == spec.on.len()
                    && spec.on.iter().all(|f| key.contains_key(f))
            })
        });
        if !unique {
            return Err(MongoError::location(
                51183,
                "Cannot find index to verify that join fields will be unique",
            ));
        }
    }
    let mut inserts = Vec::new();
    let mut updates = Vec::new();
    for doc in docs {
        let existing = match (spec.target_filter(&doc)?, &meta) {
            (Some(filter), Some(meta)) => reader.find(meta, &filter, Some(1))?.into_iter().next(),
            _ => None,
        };
        let id_filter = existing
            .as_ref()
            .and_then(|m| m.doc.get("_id").cloned())
            .map(|id| bson::doc! {"_id": {"$eq": id}});
        match spec.merge(doc, existing.as_ref().map(|m| &m.doc), env)? {
            MergeAction::Insert(d) => inserts.push(d),
            MergeAction::Replace(d) => updates.push((id_filter, Bson::Document(d))),
            MergeAction::Set(fields) if !fields.is_empty() => {
                updates.push((id_filter, Bson::Document(bson::doc! {"$set": fields})))
            }
            MergeAction::Set(_) | MergeAction::Nothing => {}
        }
    }
    drop(reader);
    let ops: Vec<UpdateOp> = updates
        .into_iter()
        .filter_map(|(filter, update)| {
            filter.map(|filter| UpdateOp {
                filter,
                update,
                multi: false,
                upsert: false,
                array_filters: None,
                let_vars: Vec::new(),
                // The `on` lookup matched the target by its own values, under no collation.
                collation: None,
                bypass_document_validation: bypass,
                hint: None,
            })
        })
        .collect();
    if !ops.is_empty() {
        first_write_error(&engine.update(target.clone(), ops, true)?)?;
    }
    if !inserts.is_empty() {
        first_write_error(&engine.insert_bypassing(target, inserts, true, bypass)?)?;
    }
    Ok(())
}
