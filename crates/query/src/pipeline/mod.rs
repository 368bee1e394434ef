//! Aggregation pipelines (mongod 7.0 `document_source_*.cpp`): parsing stages and
//! running them over documents in memory.
//!
//! The crate does no I/O, so the pieces that touch storage are the caller's:
//!
//! * the input documents are handed to [`Pipeline::run`]; a pipeline that starts with
//!   `$match` says so through [`Pipeline::leading_match`], so the caller can use an
//!   index for it and pass only matching documents (the stage is then skipped with
//!   [`Pipeline::run_after_match`]); a `$sort` (and `$limit`) after it is described by
//!   [`Pipeline::leading_sort`], so an index can also give the order;
//! * stages that read other collections (`$lookup`, `$graphLookup`, `$unionWith`) ask
//!   the caller's
//!   [`Context`];
//! * a final `$out` or `$merge` is not run here: [`Pipeline::writes`] describes it
//!   ([`Output`]) and the caller writes the documents `run` returns. For `$merge`,
//!   [`MergeSpec::merge`] computes what to write for each document.
//!
//! Every stage name mongod knows is in [`stages::STAGES`]: those Eddy does not implement
//! (`$geoNear`, `$graphLookup`, `$search`, ...) fail with 115
//! CommandNotSupported, names mongod does not know with 40324, so a gap of ours is told
//! apart from a typo.
//!
//! Change-stream pipelines ([`Pipeline::parse_change_stream`]) accept only the stages
//! mongod allows after `$changeStream` and run one event at a time
//! ([`Pipeline::apply_one`]).
//!
//! This file parses a pipeline and dispatches each stage by name; the stages live by
//! family: `shape.rs` (`$match $project $unset $addFields $set $replaceRoot
//! $replaceWith $redact`), `order.rs` (`$sort $limit $skip $sample $count $sortByCount
//! $unwind`), `group.rs` (`$group $bucket $bucketAuto`), `join.rs` (`$lookup
//! $graphLookup $unionWith $facet`), `sources.rs` (`$documents $collStats $indexStats
//! $listLocalSessions`), `window.rs` (`$setWindowFields`), `fill.rs` (`$fill $densify`) and `output.rs` (`$out
//! $merge`).

mod fill;
pub mod geo_near;
mod granularity;
mod group;
mod join;
mod order;
mod output;
mod shape;
mod sources;
pub mod stages;
#[cfg(test)]
mod tests;
mod window;

use std::cmp::Ordering;
use std::sync::Arc;

use bson::{Bson, Document};
use eddy_codes::{location, ErrorCode, MongoError};

use crate::collation::Collation;
use crate::expr::{Env, Expr};
use crate::filter::Filter;
use crate::projection::Projection;
use crate::sort::SortSpec;
use crate::util;

pub use fill::{Densify, Fill};
pub use group::{Bucket, BucketAuto, Group};
pub use output::{MergeAction, MergeSpec, Output, WhenMatched, WhenNotMatched};
pub use sources::{parse_stats_scale, CollStats};
pub use stages::{check_api_version_1, known_stage, StageInfo, Support};
pub use window::SetWindowFields;

use join::{
    facet, graph_lookup, lookup, parse_facet, parse_graph_lookup, parse_lookup, parse_union_with,
    union_with, GraphLookup, Lookup, UnionWith,
};
use order::{
    parse_count, parse_sample, parse_sort_by_count, parse_unwind, sample, sort_docs, unwind, Unwind,
};
use output::{parse_merge, parse_out};
use shape::{parse_replace_root, parse_unset, redact, replace_root, AddFields, Match};
pub use sources::CurrentOpSpec;
use sources::{documents, parse_list_sessions};

/// Reads a pipeline needs besides its input.
pub trait Context {
    /// Every document of `db.coll` (empty when it does not exist).
    fn collection(&mut self, db: &str, coll: &str) -> Result<Vec<Document>, MongoError>;
    /// The database the command runs in (the default of `$lookup`'s `from`).
    fn db(&self) -> &str;
    /// An error (50 MaxTimeMSExpired) once the operation should stop; checked before
    /// each stage.
    fn interrupted(&self) -> Result<(), MongoError> {
        Ok(())
    }
    /// `$$NOW`, `$$CLUSTER_TIME` and the command's `let` variables.
    fn env(&self) -> &Env;
    /// The document `$collStats` outputs for the aggregated collection.
    fn coll_stats(&mut self, spec: &CollStats) -> Result<Document, MongoError>;
    /// The documents `$indexStats` outputs: one per index of the aggregated collection.
    fn index_stats(&mut self) -> Result<Vec<Document>, MongoError>;
    /// The session records of the server's in-memory cache (`$listLocalSessions`):
    /// every user's when `users` is `None`, else those of the listed `(user, db)` pairs.
    fn local_sessions(
        &mut self,
        users: Option<&[(String, String)]>,
    ) -> Result<Vec<Document>, MongoError>;
    /// What the server is doing (`$currentOp`).
    fn current_ops(&mut self, spec: &CurrentOpSpec) -> Result<Vec<Document>, MongoError>;
}

/// A parsed pipeline.
#[derive(Debug, Clone, Default)]
pub struct Pipeline {
    stages: Vec<Stage>,
    /// The raw `$match` of the first stage, for the caller's index use.
    leading_match: Option<Document>,
    output: Option<Output>,
    /// The command's collation (`None`: simple), given to every stage's evaluation
    /// environment ([`Env::collation`]) by [`Pipeline::collated`].
    collation: Option<Arc<Collation>>,
}

#[derive(Debug, Clone)]
enum Stage {
    Match(Match),
    Project(Projection),
    AddFields(AddFields),
    ReplaceRoot(Expr, &'static str),
    Redact(Expr),
    Sort(SortSpec),
    Limit(usize),
    Skip(usize),
    Group(Group),
    Count(String),
    Unwind(Unwind),
    Lookup(Box<Lookup>),
    Facet(Vec<(String, Pipeline)>),
    SortByCount(Expr),
    Bucket(Box<Bucket>),
    BucketAuto(Box<BucketAuto>),
    Sample(usize),
    UnionWith(Box<UnionWith>),
    Documents(Expr),
    /// `$listLocalSessions`: `None` lists every user's sessions (`allUsers: true`).
    ListLocalSessions(Option<Vec<(String, String)>>),
    CurrentOp(CurrentOpSpec),
    CollStats(CollStats),
    IndexStats,
    SetWindowFields(Box<SetWindowFields>),
    Fill(Box<Fill>),
    Densify(Box<Densify>),
    GraphLookup(Box<GraphLookup>),
    /// Run by the engine as the first stage (see [`Pipeline::leading_geo_near`]).
    GeoNear(Box<geo_near::GeoNear>),
}

fn not_supported(name: &str) -> MongoError {
    MongoError::new(
        ErrorCode::CommandNotSupported,
        format!("Eddy does not support the {name} stage"),
    )
}

/// mongod's "lite parse" of a pipeline a command carries (an update's pipeline): a stage
/// name mongod does not know fails the whole command with 40324, before anything runs.
/// The stages' arguments are checked later, when the pipeline is parsed for its use.
pub fn check_stage_names(stages: &[Bson]) -> Result<(), MongoError> {
    for name in stages.iter().filter_map(|s| s.as_document()?.keys().next()) {
        if stages::stage(name).is_none() {
            return Err(stages::unrecognized(name));
        }
    }
    Ok(())
}

/// The stage a stage document names, if Eddy runs it in an ordinary pipeline: unknown
/// names are 40324, names Eddy does not run 115, the change-stream stages out of place
/// 40602 or 20.
fn check_stage(spec: &Document) -> Result<&'static StageInfo, MongoError> {
    let info = stages::known_stage(spec)?;
    match (info.support, info.name) {
        (Support::Runs, _) => Ok(info),
        (Support::Refused, name) => Err(not_supported(name)),
        (Support::ChangeStream, "$changeStream") => Err(MongoError::location(
            location::STAGE_NOT_FIRST,
            "$changeStream is only valid as the first stage in a pipeline",
        )),
        (Support::ChangeStream, name) => Err(MongoError::new(
            ErrorCode::IllegalOperation,
            format!("{name} can only be used in a $changeStream pipeline"),
        )),
    }
}

/// Where a pipeline is being parsed; decides which stages are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Top,
    /// Inside `$lookup`/`$unionWith` (no `$out`/`$merge`).
    Sub,
    /// Inside `$facet`.
    Facet,
}

impl Pipeline {
    /// Parses an aggregation pipeline.
    pub fn parse(stages: &[Document]) -> Result<Pipeline, MongoError> {
        Pipeline::parse_with_vars(stages, &[])
    }

    /// Parses with the names of the command's `let` variables in scope.
    pub fn parse_with_vars(stages: &[Document], vars: &[String]) -> Result<Pipeline, MongoError> {
        parse_pipeline(stages, vars, Mode::Top)
    }

    /// Parses the stages after `$changeStream`: only those mongod allows there (20
    /// IllegalOperation for the others). `$changeStreamSplitLargeEvent` is the change
    /// stream's own (`eddy_engine::changes`), which takes it off before calling this.
    pub fn parse_change_stream(stages: &[Document]) -> Result<Pipeline, MongoError> {
        for s in stages {
            let info = match stages::known_stage(s)? {
                split if split.support == Support::ChangeStream && split.after_change_stream => {
                    split
                }
                _ => check_stage(s)?,
            };
            if !info.after_change_stream {
                return Err(MongoError::new(
                    ErrorCode::IllegalOperation,
                    format!("{} is not permitted in a $changeStream pipeline", info.name),
                ));
            }
            if info.support != Support::Runs {
                // Only last, where the engine takes it off.
                return Err(MongoError::location(
                    7182802,
                    format!("{} must be the last stage in the pipeline", info.name),
                ));
            }
        }
        let pipeline = parse_pipeline(stages, &[], Mode::Top)?;
        if pipeline
            .leading_filter()
            .is_some_and(|f| f.text().is_some())
        {
            // Change events are not in a text index.
            return Err(MongoError::new(
                ErrorCode::QueryFeatureNotAllowed,
                "$text is not allowed in this context",
            ));
        }
        Ok(pipeline)
    }

    /// Parses a pipeline-style update: only `$addFields $set $project $unset
    /// $replaceRoot $replaceWith` (72 InvalidOptions for others).
    pub fn parse_update(stages: &[Document], vars: &[String]) -> Result<Pipeline, MongoError> {
        for s in stages {
            let info = check_stage(s)?;
            if !info.in_update {
                return Err(MongoError::new(
                    ErrorCode::InvalidOptions,
                    format!("{} is not allowed to be used within an update", info.name),
                ));
            }
        }
        parse_pipeline(stages, vars, Mode::Sub)
    }

    /// Whether the first stage makes the pipeline's input (`$collStats`, `$indexStats`,
    /// `$documents`, `$listLocalSessions`, `$currentOp`) rather than reading the collection.
    pub fn generates_input(&self) -> bool {
        matches!(
            self.stages.first(),
            Some(
                Stage::CollStats(_)
                    | Stage::IndexStats
                    | Stage::Documents(_)
                    | Stage::ListLocalSessions(_)
                    | Stage::CurrentOp(_)
            )
        )
    }

    /// A first `$geoNear` stage, which the engine runs through a geo index before the
    /// pipeline continues from stage 1.
    pub fn leading_geo_near(&self) -> Option<&geo_near::GeoNear> {
        match self.stages.first() {
            Some(Stage::GeoNear(g)) => Some(g),
            _ => None,
        }
    }

    /// The `$limit` right after a leading `$geoNear`: how many of the nearest
    /// documents the engine must find.
    pub fn geo_near_limit(&self) -> Option<usize> {
        match (self.stages.first(), self.stages.get(1)) {
            (Some(Stage::GeoNear(_)), Some(Stage::Limit(n))) => Some(*n),
            _ => None,
        }
    }

    /// The query of a first `$match` stage.
    pub fn leading_match(&self) -> Option<&Document> {
        self.leading_match.as_ref()
    }

    /// The filter of a first `$match` stage: every document the pipeline passes on
    /// matches it (its `$expr`s with variables aside).
    pub fn leading_filter(&self) -> Option<&Filter> {
        match self.stages.first() {
            Some(Stage::Match(m)) => Some(&m.filter),
            _ => None,
        }
    }

    /// Whether every stage is a `$match`: the pipeline keeps or drops a document and
    /// never changes it, so [`Pipeline::passes`] can run it by reference.
    pub fn only_matches(&self) -> bool {
        self.stages.iter().all(|s| matches!(s, Stage::Match(_)))
    }

    /// Whether `doc` passes every `$match` stage (see [`Pipeline::only_matches`]; other
    /// stages are not run).
    pub fn passes(&self, doc: &Document, env: &Env) -> Result<bool, MongoError> {
        let env = &self.env_of(env);
        for stage in &self.stages {
            if let Stage::Match(m) = stage {
                if !m.matches(doc, env)? {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// The same pipeline under the command's collation, as mongod's
    /// `ExpressionContext` collator: the string comparisons of its `$match` stages and
    /// the order of its `$sort`s are put under it here, and every other comparison a
    /// stage or an expression makes (`$group` keys, `$lookup` joins, `$bucket`
    /// boundaries, window partitions, `$eq`/`$in`/set operators, ...) reads it from the
    /// evaluation environment the pipeline runs with ([`Env::collation`]). Sub-pipelines
    /// (`$facet`, `$lookup`, `$unionWith`) run under the same collation.
    pub fn collated(mut self, collation: Option<&Arc<Collation>>) -> Pipeline {
        let Some(c) = collation else {
            return self;
        };
        self.collation = Some(Arc::clone(c));
        for stage in &mut self.stages {
            match stage {
                Stage::Match(m) => {
                    let filter = std::mem::replace(&mut m.filter, Filter::match_all());
                    m.filter = filter.collated(Some(c));
                }
                Stage::Sort(spec) => {
                    *spec = spec.clone().with_collation(Some(Arc::clone(c)));
                }
                Stage::Facet(facets) => {
                    for (_, p) in facets.iter_mut() {
                        *p = std::mem::take(p).collated(Some(c));
                    }
                }
                Stage::Lookup(l) => l.collate(c),
                Stage::UnionWith(u) => u.collate(c),
                _ => {}
            }
        }
        self
    }

    /// The collation the pipeline runs under (`None`: simple).
    pub fn collation(&self) -> Option<&Arc<Collation>> {
        self.collation.as_ref()
    }

    /// The environment the stages evaluate in: the caller's, under the pipeline's
    /// collation when it has one.
    fn env_of(&self, env: &Env) -> Env {
        let mut env = env.clone();
        if let Some(c) = &self.collation {
            env.collation = Some(Arc::clone(c));
        }
        env
    }

    /// A `$sort` right after the leading `$match` (or opening the pipeline) and a
    /// `$limit` right after it, which the caller may serve from an index: the sort, the
    /// limit, and the position of the first stage after them (for
    /// [`Pipeline::run_from_stage`]).
    pub fn leading_sort(&self) -> Option<(&SortSpec, Option<usize>, usize)> {
        let at = usize::from(self.leading_match.is_some());
        let Some(Stage::Sort(sort)) = self.stages.get(at) else {
            return None;
        };
        match self.stages.get(at + 1) {
            Some(Stage::Limit(n)) => Some((sort, Some(*n), at + 2)),
            _ => Some((sort, None, at + 1)),
        }
    }

    /// [`Pipeline::run`] from the stage at `start` (input already processed by the
    /// stages before it).
    pub fn run_from_stage(
        &self,
        start: usize,
        input: Vec<Document>,
        ctx: &mut dyn Context,
    ) -> Result<Vec<Document>, MongoError> {
        self.run_from(start, input, ctx)
    }

    /// [`Pipeline::run_from_stage`], telling `observe` what each stage returned and how
    /// long it took, in order (`explain`'s per-stage figures).
    pub fn run_observed(
        &self,
        start: usize,
        input: Vec<Document>,
        ctx: &mut dyn Context,
        observe: &mut dyn FnMut(usize, std::time::Duration),
    ) -> Result<Vec<Document>, MongoError> {
        let mut docs = input;
        let env = self.env_of(ctx.env());
        for stage in self.stages.iter().skip(start) {
            ctx.interrupted()?;
            let started = std::time::Instant::now();
            docs = run_stage(stage, docs, ctx, &env)?;
            observe(docs.len(), started.elapsed());
        }
        Ok(docs)
    }

    /// The final `$out`/`$merge` the caller must perform with the results of `run`.
    pub fn writes(&self) -> Option<&Output> {
        self.output.as_ref()
    }

    /// Runs every stage (but not a final `$out`/`$merge`) over `input`.
    pub fn run(
        &self,
        input: Vec<Document>,
        ctx: &mut dyn Context,
    ) -> Result<Vec<Document>, MongoError> {
        self.run_from(0, input, ctx)
    }

    /// [`Pipeline::run`] for input already filtered by [`Pipeline::leading_match`].
    pub fn run_after_match(
        &self,
        input: Vec<Document>,
        ctx: &mut dyn Context,
    ) -> Result<Vec<Document>, MongoError> {
        let skip = usize::from(self.leading_match.is_some());
        self.run_from(skip, input, ctx)
    }

    /// Applies a change-stream pipeline to one event; `None` when filtered out.
    pub fn apply_one(&self, event: Document, env: &Env) -> Result<Option<Document>, MongoError> {
        let env = &self.env_of(env);
        let mut doc = event;
        for stage in &self.stages {
            let out = match stage {
                Stage::Match(m) => m.matches(&doc, env)?.then_some(doc),
                other => one_to_one(other, doc, env)?,
            };
            match out {
                Some(d) => doc = d,
                None => return Ok(None),
            }
        }
        Ok(Some(doc))
    }

    fn run_from(
        &self,
        start: usize,
        input: Vec<Document>,
        ctx: &mut dyn Context,
    ) -> Result<Vec<Document>, MongoError> {
        let mut docs = input;
        let env = self.env_of(ctx.env());
        for stage in self.stages.iter().skip(start) {
            ctx.interrupted()?;
            docs = run_stage(stage, docs, ctx, &env)?;
        }
        Ok(docs)
    }
}

fn parse_pipeline(
    stages: &[Document],
    vars: &[String],
    mode: Mode,
) -> Result<Pipeline, MongoError> {
    let mut parsed = Vec::with_capacity(stages.len());
    let mut output = None;
    let mut leading_match = None;
    for (i, s) in stages.iter().enumerate() {
        let info = check_stage(s)?;
        let name = info.name;
        let arg = s.get(name).unwrap_or(&Bson::Null);
        let last = i + 1 == stages.len();
        if matches!(name, "$out" | "$merge") {
            if !last {
                return Err(MongoError::location(
                    40601,
                    format!("{name} can only be the final stage in the pipeline"),
                ));
            }
            match mode {
                Mode::Top => {}
                Mode::Facet => {
                    return Err(MongoError::location(
                        location::STAGE_NOT_ALLOWED_IN_FACET,
                        format!("{name} is not allowed to be used within a $facet stage"),
                    ))
                }
                Mode::Sub => {
                    return Err(MongoError::location(
                        51047,
                        format!("{name} is not allowed within a $lookup's sub-pipeline"),
                    ))
                }
            }
            output = Some(if name == "$out" {
                parse_out(arg)?
            } else {
                Output::Merge(parse_merge(arg, vars)?)
            });
            continue;
        }
        if name == "$geoNear" && (i != 0 || mode != Mode::Top) {
            return Err(MongoError::location(
                40603,
                "$geoNear was not the first stage in the pipeline.",
            ));
        }
        if info.first && i != 0 {
            return Err(MongoError::location(
                location::STAGE_NOT_FIRST,
                format!("{name} is only valid as the first stage in a pipeline"),
            ));
        }
        if matches!(name, "$collStats" | "$indexStats") && mode != Mode::Top {
            // They report on the aggregated collection only.
            return Err(match mode {
                Mode::Facet => MongoError::location(
                    location::STAGE_NOT_ALLOWED_IN_FACET,
                    format!("{name} is not allowed to be used within a $facet stage"),
                ),
                _ => MongoError::location(
                    51047,
                    format!("{name} is not allowed within a $lookup's sub-pipeline"),
                ),
            });
        }
        if mode == Mode::Facet && name == "$facet" {
            return Err(MongoError::location(
                location::STAGE_NOT_ALLOWED_IN_FACET,
                "$facet is not allowed to be used within a $facet stage",
            ));
        }
        if i == 0 && name == "$match" {
            if let Bson::Document(d) = arg {
                leading_match = Some(d.clone());
            }
        }
        let stage = parse_stage(name, arg, vars)?;
        if let Stage::Match(m) = &stage {
            if m.filter.text().is_some() && (i != 0 || mode != Mode::Top) {
                return Err(MongoError::location(
                    17313,
                    "$match with $text is only allowed as the first pipeline stage",
                ));
            }
        }
        parsed.push(stage);
    }
    if mode == Mode::Top {
        let has_text = matches!(parsed.first(), Some(Stage::Match(m)) if m.filter.text().is_some());
        if !has_text
            && stages
                .iter()
                .any(|s| asks_text_score(&Bson::Document(s.clone())))
        {
            return Err(MongoError::location(
                40218,
                "query requires text score metadata, but it is not available",
            ));
        }
    }
    Ok(Pipeline {
        stages: parsed,
        leading_match,
        output,
        collation: None,
    })
}

/// Whether a stage (or anything nested in it) reads `{$meta: "textScore"}`.
pub fn asks_text_score(v: &Bson) -> bool {
    match v {
        Bson::Document(d) => {
            (d.len() == 1 && d.get_str("$meta").ok() == Some("textScore"))
                || d.values().any(asks_text_score)
        }
        Bson::Array(items) => items.iter().any(asks_text_score),
        _ => false,
    }
}

fn parse_stage(name: &str, arg: &Bson, vars: &[String]) -> Result<Stage, MongoError> {
    Ok(match name {
        "$match" => match arg {
            Bson::Document(d) => Stage::Match(Match::parse(d, vars)?),
            _ => {
                return Err(MongoError::location(
                    15959,
                    "the match filter must be an expression in an object",
                ))
            }
        },
        "$project" => match arg {
            Bson::Document(d) => Stage::Project(Projection::parse_aggregation_with_vars(d, vars)?),
            _ => {
                return Err(MongoError::location(
                    15969,
                    "$project specification must be an object",
                ))
            }
        },
        "$addFields" | "$set" => Stage::AddFields(AddFields::parse(name, arg, vars)?),
        "$unset" => Stage::Project(parse_unset(arg)?),
        "$replaceRoot" => Stage::ReplaceRoot(parse_replace_root(arg, vars)?, "newRoot"),
        "$replaceWith" => {
            Stage::ReplaceRoot(Expr::parse_with_vars(arg, vars)?, "replacement document")
        }
        "$redact" => Stage::Redact(Expr::parse_with_vars(arg, vars)?),
        "$sort" => match arg {
            Bson::Document(d) => Stage::Sort(SortSpec::parse_stage(d)?),
            _ => {
                return Err(MongoError::location(
                    15973,
                    "the $sort key specification must be an object",
                ))
            }
        },
        "$limit" => {
            let n = util::parse_non_negative_long("$limit", arg).map_err(|e| {
                MongoError::location(
                    5107201,
                    format!("invalid argument to $limit stage: {}", e.message),
                )
            })?;
            if n == 0 {
                return Err(MongoError::location(15958, "the limit must be positive"));
            }
            Stage::Limit(usize::try_from(n).unwrap_or(usize::MAX))
        }
        "$skip" => {
            let n = util::parse_non_negative_long("$skip", arg).map_err(|e| {
                MongoError::location(
                    5107200,
                    format!("invalid argument to $skip stage: {}", e.message),
                )
            })?;
            Stage::Skip(usize::try_from(n).unwrap_or(usize::MAX))
        }
        "$group" => Stage::Group(Group::parse(arg, vars)?),
        "$count" => Stage::Count(parse_count(arg)?),
        "$unwind" => Stage::Unwind(parse_unwind(arg)?),
        "$lookup" => Stage::Lookup(Box::new(parse_lookup(arg, vars)?)),
        "$facet" => Stage::Facet(parse_facet(arg, vars)?),
        "$sortByCount" => Stage::SortByCount(parse_sort_by_count(arg, vars)?),
        "$bucket" => Stage::Bucket(Box::new(Bucket::parse(arg, vars)?)),
        "$bucketAuto" => Stage::BucketAuto(Box::new(BucketAuto::parse(arg, vars)?)),
        "$sample" => Stage::Sample(parse_sample(arg)?),
        "$unionWith" => Stage::UnionWith(Box::new(parse_union_with(arg, vars)?)),
        "$documents" => Stage::Documents(Expr::parse_with_vars(arg, vars)?),
        "$listLocalSessions" => Stage::ListLocalSessions(parse_list_sessions(name, arg)?),
        "$currentOp" => Stage::CurrentOp(CurrentOpSpec::parse(arg)?),
        "$collStats" => Stage::CollStats(CollStats::parse(arg)?),
        "$setWindowFields" => Stage::SetWindowFields(Box::new(SetWindowFields::parse(arg, vars)?)),
        "$fill" => Stage::Fill(Box::new(Fill::parse(arg, vars)?)),
        "$densify" => Stage::Densify(Box::new(Densify::parse(arg)?)),
        "$graphLookup" => Stage::GraphLookup(Box::new(parse_graph_lookup(arg, vars)?)),
        "$geoNear" => Stage::GeoNear(Box::new(geo_near::GeoNear::parse(arg)?)),
        "$indexStats" => match arg {
            Bson::Document(d) if d.is_empty() => Stage::IndexStats,
            _ => {
                return Err(MongoError::location(
                    28803,
                    "The $indexStats stage specification must be an empty object",
                ))
            }
        },
        other => return Err(stages::unrecognized(other)),
    })
}

/// Applies a stage that maps one document to at most one (change streams, updates).
fn one_to_one(stage: &Stage, doc: Document, env: &Env) -> Result<Option<Document>, MongoError> {
    Ok(Some(match stage {
        Stage::Project(p) => p.apply_with_env(&doc, None, env)?,
        Stage::AddFields(a) => a.apply(&doc, env)?,
        Stage::ReplaceRoot(e, what) => replace_root(e, what, &doc, env)?,
        Stage::Redact(e) => return redact(e, doc, env),
        Stage::Match(_) => doc,
        _ => {
            return Err(MongoError::internal(
                "a stage that is not one-to-one ran on a single document",
            ))
        }
    }))
}

fn run_stage(
    stage: &Stage,
    docs: Vec<Document>,
    ctx: &mut dyn Context,
    env: &Env,
) -> Result<Vec<Document>, MongoError> {
    Ok(match stage {
        // The engine ran it (its input is empty when the collection does not exist).
        Stage::GeoNear(_) => docs,
        Stage::Match(m) => {
            let mut out = Vec::with_capacity(docs.len());
            for d in docs {
                if m.matches(&d, env)? {
                    out.push(d);
                }
            }
            out
        }
        Stage::Project(_) | Stage::AddFields(_) | Stage::ReplaceRoot(..) | Stage::Redact(_) => {
            let mut out = Vec::with_capacity(docs.len());
            for d in docs {
                if let Some(d) = one_to_one(stage, d, env)? {
                    out.push(d);
                }
            }
            out
        }
        Stage::Sort(spec) => sort_docs(spec, docs)?,
        Stage::Limit(n) => {
            let mut docs = docs;
            docs.truncate(*n);
            docs
        }
        Stage::Skip(n) => docs.into_iter().skip(*n).collect(),
        Stage::Group(g) => g.run(docs, env)?,
        Stage::Count(field) => {
            if docs.is_empty() {
                Vec::new()
            } else {
                let n = docs.len();
                let v = i32::try_from(n).map_or(Bson::Int64(n as i64), Bson::Int32);
                vec![bson::doc! {field.clone(): v}]
            }
        }
        Stage::Unwind(u) => unwind(u, docs),
        Stage::Lookup(l) => lookup(l, docs, ctx, env)?,
        Stage::Facet(facets) => facet(facets, docs, ctx)?,
        Stage::SortByCount(e) => {
            let g = Group::sort_by_count(e.clone());
            let grouped = g.run(docs, env)?;
            let spec = SortSpec::parse_stage(&bson::doc! {"count": -1})?;
            sort_docs(&spec, grouped)?
        }
        Stage::Bucket(b) => b.run(docs, env)?,
        Stage::BucketAuto(b) => b.run(docs, env)?,
        Stage::Sample(n) => sample(docs, *n),
        Stage::UnionWith(u) => union_with(u, docs, ctx)?,
        Stage::ListLocalSessions(users) => ctx.local_sessions(users.as_deref())?,
        Stage::CurrentOp(spec) => ctx.current_ops(spec)?,
        Stage::CollStats(spec) => vec![ctx.coll_stats(spec)?],
        Stage::IndexStats => ctx.index_stats()?,
        Stage::Documents(e) => documents(e, env)?,
        Stage::SetWindowFields(w) => w.run(docs, env)?,
        Stage::Fill(f) => f.run(docs, env)?,
        Stage::Densify(d) => d.run(docs, env)?,
        Stage::GraphLookup(g) => graph_lookup(g, docs, ctx, env)?,
    })
}

/// Sets a value at a path, creating documents (and replacing non-documents) on the
/// way (`MutableDocument::setNestedField`).
fn set_nested(doc: &mut Document, path: &[String], v: Bson) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        doc.insert(first.clone(), v);
        return;
    }
    if !matches!(doc.get(first), Some(Bson::Document(_))) {
        doc.insert(first.clone(), Document::new());
    }
    if let Some(Bson::Document(sub)) = doc.get_mut(first) {
        set_nested(sub, rest, v);
    }
}

/// Orders two values as mongod's value comparator does under no collation (the checks
/// a stage makes of its own arguments when it is parsed).
pub(crate) fn value_cmp(a: &Bson, b: &Bson) -> Ordering {
    crate::cmp::compare(a, b)
}

#[cfg(test)]
pub(crate) fn run_simple(
    stages: &[Document],
    input: Vec<Document>,
) -> Result<Vec<Document>, MongoError> {
    let p = Pipeline::parse(stages)?;
    let mut ctx = tests::MapContext::default();
    p.run(input, &mut ctx)
}
