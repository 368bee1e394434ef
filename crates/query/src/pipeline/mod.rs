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
//! * stages that read other collections (`$lookup`, `$unionWith`) ask the caller's
//!   [`Context`];
//! * a final `$out` or `$merge` is not run here: [`Pipeline::writes`] describes it
//!   ([`Output`]) and the caller writes the documents `run` returns. For `$merge`,
//!   [`MergeSpec::merge`] computes what to write for each document.
//!
//! Every stage name mongod knows is in [`stages::STAGES`]: those Eddy does not implement
//! (`$geoNear`, `$graphLookup`, `$setWindowFields`, ...) fail with 115
//! CommandNotSupported, names mongod does not know with 40324, so a gap of ours is told
//! apart from a typo.
//!
//! Change-stream pipelines ([`Pipeline::parse_change_stream`]) accept only the stages
//! mongod allows after `$changeStream` and run one event at a time
//! ([`Pipeline::apply_one`]).

mod group;
pub mod stages;
#[cfg(test)]
mod tests;

use std::cmp::Ordering;
use std::sync::Arc;

use bson::{Bson, Document};
use eddy_codes::{ErrorCode, MongoError};

use crate::collation::Collation;
use crate::expr::{Env, Expr, DESCEND, KEEP, PRUNE};
use crate::filter::Filter;
use crate::projection::{field_path, Projection};
use crate::sort::SortSpec;
use crate::util::{self, bson_to_string, type_name};

pub use group::{Bucket, BucketAuto, Group};
pub use stages::{check_api_version_1, known_stage, StageInfo, Support};

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
}

/// A parsed pipeline.
#[derive(Debug, Clone, Default)]
pub struct Pipeline {
    stages: Vec<Stage>,
    /// The raw `$match` of the first stage, for the caller's index use.
    leading_match: Option<Document>,
    output: Option<Output>,
}

/// A final stage that writes, performed by the caller.
#[derive(Debug, Clone)]
pub enum Output {
    /// `$out`: replace `db.coll` by the results.
    Out { db: Option<String>, coll: String },
    /// `$merge` into a collection.
    Merge(MergeSpec),
}

/// `$merge`'s specification.
#[derive(Debug, Clone)]
pub struct MergeSpec {
    /// The target database; `None` is the command's database.
    pub db: Option<String>,
    pub coll: String,
    /// The fields identifying a target document (`_id` by default).
    pub on: Vec<String>,
    pub when_matched: WhenMatched,
    pub when_not_matched: WhenNotMatched,
    /// `let` for a pipeline `whenMatched` (default `{new: "$$ROOT"}`), unevaluated.
    pub let_vars: Vec<(String, Expr)>,
}

/// `$merge`'s `whenMatched`.
#[derive(Debug, Clone)]
pub enum WhenMatched {
    Replace,
    KeepExisting,
    Merge,
    Fail,
    /// An update pipeline run on the existing document.
    Pipeline(Box<Pipeline>),
}

/// `$merge`'s `whenNotMatched`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenNotMatched {
    Insert,
    Discard,
    Fail,
}

/// What `$merge` does with one result document.
#[derive(Debug, Clone, PartialEq)]
pub enum MergeAction {
    /// Insert this document.
    Insert(Document),
    /// Replace the matched document by this one (same `_id`).
    Replace(Document),
    /// `$set` these fields on the matched document.
    Set(Document),
    /// Leave the target alone.
    Nothing,
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
    CollStats(CollStats),
    IndexStats,
}

/// What a `$collStats` stage reports (`latencyStats` and `queryExecStats` are refused:
/// Eddy keeps no operation counters per collection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollStats {
    /// `storageStats`, with its `scale` (1 unless given).
    pub storage_scale: Option<i64>,
    /// `count`: the number of documents.
    pub count: bool,
}

impl CollStats {
    /// Parses `{$collStats: {storageStats?: {scale?}, count?: {}, ...}}` with mongod's
    /// IDL errors.
    fn parse(arg: &Bson) -> Result<CollStats, MongoError> {
        let Bson::Document(spec) = arg else {
            return Err(MongoError::new(
                ErrorCode::TypeMismatch,
                format!(
                    "BSON field '$collStats' is the wrong type '{}', expected type 'object'",
                    util::type_name(arg)
                ),
            ));
        };
        let mut out = CollStats {
            storage_scale: None,
            count: false,
        };
        for (field, v) in spec {
            match field.as_str() {
                "storageStats" => {
                    let storage = coll_stats_section(field, v)?;
                    out.storage_scale = Some(parse_stats_scale(storage.get("scale"))?);
                }
                "count" => {
                    coll_stats_section(field, v)?;
                    out.count = true;
                }
                "latencyStats" | "queryExecStats" => {
                    coll_stats_section(field, v)?;
                    return Err(MongoError::new(
                        ErrorCode::CommandNotSupported,
                        format!("Eddy does not keep $collStats {field}"),
                    ));
                }
                other => {
                    return Err(MongoError::location(
                        40415,
                        format!("BSON field '$collStats.{other}' is an unknown field."),
                    ))
                }
            }
        }
        Ok(out)
    }
}

/// The `scale` of storage statistics (`$collStats`' `storageStats`, the `collStats`
/// command): 1 when absent, at least 1 (51024), as mongod's IDL checks it.
pub fn parse_stats_scale(v: Option<&Bson>) -> Result<i64, MongoError> {
    let scale = match v {
        None => 1,
        Some(s) => util::parse_integer_to_long("scale", s)?,
    };
    if scale < 1 {
        return Err(MongoError::location(
            51024,
            format!("BSON field 'scale' value must be >= 1, actual value '{scale}'"),
        ));
    }
    Ok(scale)
}

/// A section of a `$collStats` specification: a document.
fn coll_stats_section<'a>(field: &str, v: &'a Bson) -> Result<&'a Document, MongoError> {
    v.as_document().ok_or_else(|| {
        MongoError::new(
            ErrorCode::TypeMismatch,
            format!(
                "BSON field '$collStats.{field}' is the wrong type '{}', expected type 'object'",
                util::type_name(v)
            ),
        )
    })
}

/// A `$match`: the matcher, plus top-level `$expr`s parsed here so they see the
/// pipeline's variables (the matcher's own `$expr` knows none).
#[derive(Debug, Clone)]
struct Match {
    filter: Filter,
    exprs: Vec<Expr>,
}

impl Match {
    fn parse(spec: &Document, vars: &[String]) -> Result<Match, MongoError> {
        let mut rest = Document::new();
        let mut exprs = Vec::new();
        for (k, v) in spec {
            if k == "$expr" && !vars.is_empty() {
                exprs.push(Expr::parse_with_vars(v, vars)?);
            } else {
                rest.insert(k.clone(), v.clone());
            }
        }
        Ok(Match {
            filter: Filter::parse(&rest)?,
            exprs,
        })
    }

    fn matches(&self, doc: &Document, env: &Env) -> Result<bool, MongoError> {
        for e in &self.exprs {
            if !e.evaluate(doc, env)?.as_ref().is_some_and(util::true_value) {
                return Ok(false);
            }
        }
        Ok(self.filter.matches(doc))
    }
}

/// `$addFields`/`$set`: computed fields by path, set in specification order.
#[derive(Debug, Clone, Default)]
struct AddFields {
    children: Vec<(String, AddNode)>,
}

#[derive(Debug, Clone)]
enum AddNode {
    Value(Expr),
    Tree(AddFields),
}

impl AddFields {
    fn parse(stage: &str, spec: &Bson, vars: &[String]) -> Result<AddFields, MongoError> {
        let Bson::Document(spec) = spec else {
            return Err(MongoError::location(
                40272,
                format!(
                    "{stage} specification stage must be an object, got {}",
                    type_name(spec)
                ),
            ));
        };
        let mut root = AddFields::default();
        for (k, v) in spec {
            let path = field_path(k)?;
            root.insert(&path, v, vars)?;
        }
        Ok(root)
    }

    fn insert(&mut self, path: &[String], v: &Bson, vars: &[String]) -> Result<(), MongoError> {
        let Some((first, rest)) = path.split_first() else {
            return Ok(());
        };
        let collision = || {
            MongoError::location(
                31250,
                format!("Invalid $addFields :: caused by :: Path collision at {first}"),
            )
        };
        if rest.is_empty() {
            let node = match v {
                Bson::Document(d) if !d.is_empty() && !d.keys().any(|k| k.starts_with('$')) => {
                    let mut sub = AddFields::default();
                    for (k, v) in d {
                        sub.insert(&field_path(k)?, v, vars)?;
                    }
                    AddNode::Tree(sub)
                }
                other => AddNode::Value(Expr::parse_with_vars(other, vars)?),
            };
            if self.children.iter().any(|(k, _)| k == first) {
                return Err(collision());
            }
            self.children.push((first.clone(), node));
            return Ok(());
        }
        match self.children.iter_mut().find(|(k, _)| k == first) {
            Some((_, AddNode::Tree(t))) => t.insert(rest, v, vars),
            Some(_) => Err(collision()),
            None => {
                let mut t = AddFields::default();
                t.insert(rest, v, vars)?;
                self.children.push((first.clone(), AddNode::Tree(t)));
                Ok(())
            }
        }
    }

    fn apply(&self, doc: &Document, env: &Env) -> Result<Document, MongoError> {
        let mut out = doc.clone();
        self.apply_into(&mut out, doc, env)?;
        Ok(out)
    }

    fn apply_into(&self, out: &mut Document, root: &Document, env: &Env) -> Result<(), MongoError> {
        for (k, node) in &self.children {
            let value = match node {
                AddNode::Value(e) => e.evaluate(root, env)?,
                AddNode::Tree(t) => Some(t.apply_value(out.get(k), root, env)?),
            };
            match value {
                Some(v) => {
                    out.insert(k.clone(), v);
                }
                None => {
                    out.remove(k);
                }
            }
        }
        Ok(())
    }

    fn apply_value(
        &self,
        current: Option<&Bson>,
        root: &Document,
        env: &Env,
    ) -> Result<Bson, MongoError> {
        Ok(match current {
            Some(Bson::Document(d)) => {
                let mut d = d.clone();
                self.apply_into(&mut d, root, env)?;
                Bson::Document(d)
            }
            Some(Bson::Array(items)) => Bson::Array(
                items
                    .iter()
                    .map(|e| self.apply_value(Some(e), root, env))
                    .collect::<Result<_, _>>()?,
            ),
            _ => {
                let mut d = Document::new();
                self.apply_into(&mut d, root, env)?;
                Bson::Document(d)
            }
        })
    }
}

#[derive(Debug, Clone)]
struct Unwind {
    path: Vec<String>,
    include_array_index: Option<String>,
    preserve: bool,
}

#[derive(Debug, Clone)]
struct Lookup {
    from_db: Option<String>,
    from: Option<String>,
    local_field: Option<String>,
    foreign_field: Option<String>,
    let_vars: Vec<(String, Expr)>,
    pipeline: Option<Pipeline>,
    as_field: Vec<String>,
}

#[derive(Debug, Clone)]
struct UnionWith {
    db: Option<String>,
    coll: Option<String>,
    pipeline: Option<Pipeline>,
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
            40602,
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
        parse_pipeline(stages, &[], Mode::Top)
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
    /// `$documents`, `$listLocalSessions`) rather than reading the collection.
    pub fn generates_input(&self) -> bool {
        matches!(
            self.stages.first(),
            Some(
                Stage::CollStats(_)
                    | Stage::IndexStats
                    | Stage::Documents(_)
                    | Stage::ListLocalSessions(_)
            )
        )
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
        for stage in &self.stages {
            if let Stage::Match(m) = stage {
                if !m.matches(doc, env)? {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// The same pipeline with the command's collation applied to the string comparisons
    /// of its `$match` stages and the order of its `$sort`s (in `$facet`s too).
    /// `$group` keys, `$lookup` joins and expressions keep byte order.
    pub fn collated(mut self, collation: Option<&Arc<Collation>>) -> Pipeline {
        let Some(c) = collation else {
            return self;
        };
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
                _ => {}
            }
        }
        self
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
        for stage in self.stages.iter().skip(start) {
            ctx.interrupted()?;
            docs = run_stage(stage, docs, ctx)?;
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
                        40600,
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
        if info.first && i != 0 {
            return Err(MongoError::location(
                40602,
                format!("{name} is only valid as the first stage in a pipeline"),
            ));
        }
        if matches!(name, "$collStats" | "$indexStats") && mode != Mode::Top {
            // They report on the aggregated collection only.
            return Err(match mode {
                Mode::Facet => MongoError::location(
                    40600,
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
                40600,
                "$facet is not allowed to be used within a $facet stage",
            ));
        }
        if i == 0 && name == "$match" {
            if let Bson::Document(d) = arg {
                leading_match = Some(d.clone());
            }
        }
        parsed.push(parse_stage(name, arg, vars)?);
    }
    Ok(Pipeline {
        stages: parsed,
        leading_match,
        output,
    })
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
        "$replaceRoot" => {
            let Bson::Document(d) = arg else {
                return Err(MongoError::location(
                    40229,
                    format!(
                        "expected an object as specification for $replaceRoot stage, got {}",
                        type_name(arg)
                    ),
                ));
            };
            let mut new_root = None;
            for (k, v) in d {
                if k == "newRoot" {
                    new_root = Some(Expr::parse_with_vars(v, vars)?);
                } else {
                    return Err(MongoError::location(
                        40415,
                        format!("BSON field '$replaceRoot.{k}' is an unknown field."),
                    ));
                }
            }
            let Some(e) = new_root else {
                return Err(MongoError::location(
                    40414,
                    "BSON field '$replaceRoot.newRoot' is missing but a required field",
                ));
            };
            Stage::ReplaceRoot(e, "newRoot")
        }
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
        "$collStats" => Stage::CollStats(CollStats::parse(arg)?),
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

/// A `$listLocalSessions` (or `$listSessions`) specification, as mongod's
/// `listSessionsParseSpec`: `{}` (the current user's sessions; without authentication,
/// the user `("", "")`), `{allUsers: true}` or `{users: [{user, db}, ...]}`.
fn parse_list_sessions(
    name: &str,
    arg: &Bson,
) -> Result<Option<Vec<(String, String)>>, MongoError> {
    let Bson::Document(spec) = arg else {
        return Err(MongoError::new(
            ErrorCode::TypeMismatch,
            format!(
                "{name} options must be specified in an object, but found: {}",
                type_name(arg)
            ),
        ));
    };
    let mut all_users = false;
    let mut users = Vec::new();
    for (k, v) in spec {
        match (k.as_str(), v) {
            ("allUsers", Bson::Boolean(b)) => all_users = *b,
            ("users", Bson::Array(items)) => {
                for item in items {
                    users.push(parse_session_user(name, item)?);
                }
            }
            ("allUsers" | "users", v) => {
                let expected = if k == "allUsers" { "bool" } else { "array" };
                return Err(MongoError::new(
                    ErrorCode::TypeMismatch,
                    format!(
                        "BSON field '{name}.{k}' is the wrong type '{}', expected type '{expected}'",
                        type_name(v)
                    ),
                ));
            }
            _ => {
                return Err(MongoError::location(
                    40415,
                    format!("BSON field '{name}.{k}' is an unknown field."),
                ))
            }
        }
    }
    if all_users && !users.is_empty() {
        return Err(MongoError::new(
            ErrorCode::UnsupportedFormat,
            format!(
                "{name} may not specify {{allUsers:true}} and {{users:[...]}} at the same time"
            ),
        ));
    }
    Ok(match (all_users, users.is_empty()) {
        (true, _) => None,
        // The implicit request for oneself: the unauthenticated user.
        (false, true) => Some(vec![(String::new(), String::new())]),
        (false, false) => Some(users),
    })
}

/// One `{user, db}` of a `$listLocalSessions` `users` list.
fn parse_session_user(name: &str, item: &Bson) -> Result<(String, String), MongoError> {
    let Bson::Document(d) = item else {
        return Err(MongoError::new(
            ErrorCode::TypeMismatch,
            format!(
                "BSON field '{name}.users' is the wrong type '{}', expected type 'object'",
                type_name(item)
            ),
        ));
    };
    let field = |f: &str| match d.get(f) {
        Some(Bson::String(s)) => Ok(s.clone()),
        Some(v) => Err(MongoError::new(
            ErrorCode::TypeMismatch,
            format!(
                "BSON field '{name}.users.{f}' is the wrong type '{}', expected type 'string'",
                type_name(v)
            ),
        )),
        None => Err(MongoError::location(
            40414,
            format!("BSON field '{name}.users.{f}' is missing but a required field"),
        )),
    };
    if let Some(k) = d.keys().find(|k| *k != "user" && *k != "db") {
        return Err(MongoError::location(
            40415,
            format!("BSON field '{name}.users.{k}' is an unknown field."),
        ));
    }
    Ok((field("user")?, field("db")?))
}

fn parse_unset(arg: &Bson) -> Result<Projection, MongoError> {
    let names: Vec<&String> = match arg {
        Bson::String(s) => vec![s],
        Bson::Array(items) => items
            .iter()
            .map(|i| match i {
                Bson::String(s) => Ok(s),
                _ => Err(MongoError::location(
                    31120,
                    "$unset specification must be a string or an array containing only string values",
                )),
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(MongoError::location(
                31002,
                "$unset specification must be a string or an array",
            ))
        }
    };
    if names.is_empty() {
        return Err(MongoError::location(
            31119,
            "$unset specification must be a string or an array with at least one field",
        ));
    }
    let mut spec = Document::new();
    for n in names {
        field_path(n)?;
        spec.insert(n.clone(), 0);
    }
    Projection::parse_aggregation(&spec).map_err(|mut e| {
        e.message = e.message.replace("Invalid $project", "Invalid $unset");
        e
    })
}

fn parse_count(arg: &Bson) -> Result<String, MongoError> {
    let Bson::String(s) = arg else {
        return Err(MongoError::location(
            40156,
            "the count field must be a non-empty string",
        ));
    };
    if s.is_empty() {
        return Err(MongoError::location(
            40157,
            "the count field must be a non-empty string",
        ));
    }
    if s.starts_with('$') {
        return Err(MongoError::location(
            40158,
            "the count field cannot be a $-prefixed path",
        ));
    }
    if s.contains('\0') {
        return Err(MongoError::location(
            40159,
            "the count field cannot contain a null byte",
        ));
    }
    if s.contains('.') {
        return Err(MongoError::location(
            40160,
            "the count field cannot contain '.'",
        ));
    }
    Ok(s.clone())
}

fn parse_unwind(arg: &Bson) -> Result<Unwind, MongoError> {
    let (path, index, preserve) = match arg {
        Bson::String(s) => (s.clone(), None, false),
        Bson::Document(d) => {
            let mut path = None;
            let mut index = None;
            let mut preserve = false;
            for (k, v) in d {
                match k.as_str() {
                    "path" => match v {
                        Bson::String(s) => path = Some(s.clone()),
                        other => {
                            return Err(MongoError::location(
                                28808,
                                format!(
                                    "expected a string as the path for $unwind stage, got {}",
                                    type_name(other)
                                ),
                            ))
                        }
                    },
                    "preserveNullAndEmptyArrays" => match v {
                        Bson::Boolean(b) => preserve = *b,
                        other => {
                            return Err(MongoError::location(
                                28809,
                                format!(
                                    "expected a boolean for the preserveNullAndEmptyArrays option to $unwind stage, got {}",
                                    type_name(other)
                                ),
                            ))
                        }
                    },
                    "includeArrayIndex" => match v {
                        Bson::String(s) if !s.is_empty() => {
                            if s.starts_with('$') {
                                return Err(MongoError::location(
                                    28822,
                                    format!(
                                        "includeArrayIndex option to $unwind stage should not be prefixed with a '$': {s}"
                                    ),
                                ));
                            }
                            index = Some(s.clone());
                        }
                        other => {
                            return Err(MongoError::location(
                                28810,
                                format!(
                                    "expected a non-empty string for the includeArrayIndex  option to $unwind stage, got {}",
                                    type_name(other)
                                ),
                            ))
                        }
                    },
                    other => {
                        return Err(MongoError::location(
                            28811,
                            format!("unrecognized option to $unwind stage: {other}"),
                        ))
                    }
                }
            }
            let Some(path) = path else {
                return Err(MongoError::location(
                    28812,
                    "no path specified to $unwind stage",
                ));
            };
            (path, index, preserve)
        }
        other => {
            return Err(MongoError::location(
                15981,
                format!(
                "expected either a string or an object as specification for $unwind stage, got {}",
                type_name(other)
            ),
            ))
        }
    };
    let Some(stripped) = path.strip_prefix('$') else {
        return Err(MongoError::location(
            28818,
            format!("path option to $unwind stage should be prefixed with a '$': {path}"),
        ));
    };
    let index = match index {
        Some(i) => {
            field_path(&i)?;
            Some(i)
        }
        None => None,
    };
    Ok(Unwind {
        path: field_path(stripped)?,
        include_array_index: index,
        preserve,
    })
}

fn namespace_arg(v: &Bson, what: &str) -> Result<(Option<String>, String), MongoError> {
    match v {
        Bson::String(s) => Ok((None, s.clone())),
        Bson::Document(d) => {
            let db = match d.get("db") {
                Some(Bson::String(s)) => Some(s.clone()),
                None => None,
                Some(other) => {
                    return Err(MongoError::type_mismatch(format!(
                        "BSON field '{what}.db' is the wrong type '{}', expected type 'string'",
                        type_name(other)
                    )))
                }
            };
            let coll = match d.get("coll") {
                Some(Bson::String(s)) => s.clone(),
                _ => {
                    return Err(MongoError::failed_to_parse(format!(
                        "{what} must have a 'coll' string field"
                    )))
                }
            };
            Ok((db, coll))
        }
        other => Err(MongoError::failed_to_parse(format!(
            "{what} must be a string or an object, is type {}",
            type_name(other)
        ))),
    }
}

fn sub_pipeline(v: &Bson, what: &str, vars: &[String], mode: Mode) -> Result<Pipeline, MongoError> {
    let Bson::Array(items) = v else {
        return Err(MongoError::failed_to_parse(format!(
            "'{what}' option must be specified as an array"
        )));
    };
    let stages = items
        .iter()
        .map(|s| match s {
            Bson::Document(d) => Ok(d.clone()),
            _ => Err(MongoError::type_mismatch(
                "Each element of the 'pipeline' array must be an object",
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    parse_pipeline(&stages, vars, mode)
}

fn parse_let(v: &Bson, vars: &[String]) -> Result<Vec<(String, Expr)>, MongoError> {
    let Bson::Document(d) = v else {
        return Err(MongoError::failed_to_parse(format!(
            "$lookup argument 'let' must be an object, is type {}",
            type_name(v)
        )));
    };
    d.iter()
        .map(|(k, v)| Ok((k.clone(), Expr::parse_with_vars(v, vars)?)))
        .collect()
}

fn parse_lookup(arg: &Bson, vars: &[String]) -> Result<Lookup, MongoError> {
    let Bson::Document(d) = arg else {
        return Err(MongoError::failed_to_parse(format!(
            "the $lookup stage specification must be an object, but found {}",
            type_name(arg)
        )));
    };
    let mut l = Lookup {
        from_db: None,
        from: None,
        local_field: None,
        foreign_field: None,
        let_vars: Vec::new(),
        pipeline: None,
        as_field: Vec::new(),
    };
    let mut raw_pipeline = None;
    let mut as_name = None;
    for (k, v) in d {
        let string = || match v {
            Bson::String(s) => Ok(s.clone()),
            other => Err(MongoError::failed_to_parse(format!(
                "$lookup argument '{k}: {}' must be a string, is type {}",
                bson_to_string(other),
                type_name(other)
            ))),
        };
        match k.as_str() {
            "from" => {
                let (db, coll) = namespace_arg(v, "$lookup.from")?;
                l.from_db = db;
                l.from = Some(coll);
            }
            "localField" => l.local_field = Some(string()?),
            "foreignField" => l.foreign_field = Some(string()?),
            "as" => as_name = Some(string()?),
            "let" => l.let_vars = parse_let(v, vars)?,
            "pipeline" => raw_pipeline = Some(v),
            other => {
                return Err(MongoError::failed_to_parse(format!(
                    "unknown argument to $lookup: {other}"
                )))
            }
        }
    }
    let Some(as_name) = as_name else {
        return Err(MongoError::failed_to_parse(
            "must specify 'as' field for a $lookup",
        ));
    };
    l.as_field = field_path(&as_name)?;
    if l.local_field.is_some() != l.foreign_field.is_some() {
        return Err(MongoError::failed_to_parse(
            "$lookup requires both or neither of 'localField' and 'foreignField' to be specified",
        ));
    }
    if raw_pipeline.is_none() && l.local_field.is_none() {
        return Err(MongoError::failed_to_parse(
            "$lookup requires either 'pipeline' or both 'localField' and 'foreignField' to be specified",
        ));
    }
    if l.from.is_none() {
        return Err(MongoError::failed_to_parse(
            "must specify 'from' field for a $lookup",
        ));
    }
    if let Some(p) = raw_pipeline {
        let mut scope = vars.to_vec();
        scope.extend(l.let_vars.iter().map(|(k, _)| k.clone()));
        l.pipeline = Some(sub_pipeline(p, "pipeline", &scope, Mode::Sub)?);
    }
    for f in [&l.local_field, &l.foreign_field].into_iter().flatten() {
        field_path(f)?;
    }
    Ok(l)
}

fn parse_facet(arg: &Bson, vars: &[String]) -> Result<Vec<(String, Pipeline)>, MongoError> {
    let Bson::Document(d) = arg else {
        return Err(MongoError::location(
            15947,
            "the $facet specification must be a non-empty object",
        ));
    };
    if d.is_empty() {
        return Err(MongoError::location(
            40169,
            "the $facet specification must be a non-empty object",
        ));
    }
    let mut out = Vec::new();
    for (k, v) in d {
        field_path(k)?;
        if k.contains('.') {
            return Err(MongoError::location(
                40173,
                format!("facet field names cannot contain '.': {k}"),
            ));
        }
        let Bson::Array(items) = v else {
            return Err(MongoError::location(
                40170,
                format!(
                    "arguments to $facet must be arrays, {k} is type {}",
                    type_name(v)
                ),
            ));
        };
        if items.is_empty() {
            return Err(MongoError::bad_value(
                "sub-pipeline in $facet stage cannot be empty",
            ));
        }
        out.push((k.clone(), sub_pipeline(v, k, vars, Mode::Facet)?));
    }
    Ok(out)
}

fn parse_sort_by_count(arg: &Bson, vars: &[String]) -> Result<Expr, MongoError> {
    match arg {
        Bson::String(s) if s.starts_with('$') => Expr::parse_with_vars(arg, vars),
        Bson::String(_) => Err(MongoError::location(
            40148,
            "the sortByCount field must be defined as a $-prefixed path or an expression",
        )),
        Bson::Document(d) if d.keys().next().is_some_and(|k| k.starts_with('$')) => {
            Expr::parse_with_vars(arg, vars)
        }
        Bson::Document(_) => Err(MongoError::location(
            40147,
            "the sortByCount field must be specified as an object that is an expression",
        )),
        _ => Err(MongoError::location(
            40149,
            "the sortByCount field must be specified as a string or as an object",
        )),
    }
}

fn parse_sample(arg: &Bson) -> Result<usize, MongoError> {
    let Bson::Document(d) = arg else {
        return Err(MongoError::location(
            28745,
            "the $sample stage specification must be an object",
        ));
    };
    let mut size = None;
    for (k, v) in d {
        if k != "size" {
            return Err(MongoError::location(
                28748,
                format!("unrecognized option to $sample: {k}"),
            ));
        }
        if !crate::cmp::is_number(v) {
            return Err(MongoError::location(
                28746,
                "size argument to $sample must be a number",
            ));
        }
        let n = util::number_as_f64(v).unwrap_or(0.0);
        if n < 0.0 {
            return Err(MongoError::location(
                28747,
                "size argument to $sample must not be negative",
            ));
        }
        size = Some(n as usize);
    }
    size.ok_or_else(|| MongoError::location(28749, "$sample stage must specify a size"))
}

fn parse_union_with(arg: &Bson, vars: &[String]) -> Result<UnionWith, MongoError> {
    match arg {
        Bson::String(s) => Ok(UnionWith {
            db: None,
            coll: Some(s.clone()),
            pipeline: None,
        }),
        Bson::Document(d) => {
            let mut u = UnionWith {
                db: None,
                coll: None,
                pipeline: None,
            };
            for (k, v) in d {
                match k.as_str() {
                    "coll" => {
                        let (db, coll) = namespace_arg(v, "$unionWith.coll")?;
                        u.db = db;
                        u.coll = Some(coll);
                    }
                    "pipeline" => u.pipeline = Some(sub_pipeline(v, "pipeline", vars, Mode::Sub)?),
                    other => {
                        return Err(MongoError::location(
                            40415,
                            format!("BSON field '$unionWith.{other}' is an unknown field."),
                        ))
                    }
                }
            }
            if u.coll.is_none() && u.pipeline.is_none() {
                return Err(MongoError::failed_to_parse(
                    "$unionWith stage without explicit collection must have a pipeline with $documents as first stage",
                ));
            }
            Ok(u)
        }
        other => Err(MongoError::failed_to_parse(format!(
            "the $unionWith stage specification must be an object or string, but found {}",
            type_name(other)
        ))),
    }
}

fn parse_out(arg: &Bson) -> Result<Output, MongoError> {
    match arg {
        Bson::String(s) if !s.is_empty() => Ok(Output::Out {
            db: None,
            coll: s.clone(),
        }),
        Bson::Document(_) => {
            let (db, coll) = namespace_arg(arg, "$out")?;
            Ok(Output::Out { db, coll })
        }
        Bson::String(_) => Err(MongoError::new(
            ErrorCode::InvalidNamespace,
            "Invalid $out target namespace, ''",
        )),
        other => Err(MongoError::location(
            16990,
            format!(
                "$out only supports a string or object argument, but found {}",
                type_name(other)
            ),
        )),
    }
}

fn parse_merge(arg: &Bson, vars: &[String]) -> Result<MergeSpec, MongoError> {
    let mut m = MergeSpec {
        db: None,
        coll: String::new(),
        on: vec!["_id".to_owned()],
        when_matched: WhenMatched::Merge,
        when_not_matched: WhenNotMatched::Insert,
        let_vars: Vec::new(),
    };
    match arg {
        Bson::String(s) => m.coll = s.clone(),
        Bson::Document(d) => {
            let mut into = None;
            let mut raw_let = None;
            for (k, v) in d {
                match k.as_str() {
                    "into" => into = Some(namespace_arg(v, "$merge.into")?),
                    "on" => {
                        m.on = match v {
                            Bson::String(s) => vec![s.clone()],
                            Bson::Array(items) if !items.is_empty() => items
                                .iter()
                                .map(|i| match i {
                                    Bson::String(s) => Ok(s.clone()),
                                    _ => Err(MongoError::location(
                                        51134,
                                        "$merge 'on' array elements must be strings",
                                    )),
                                })
                                .collect::<Result<_, _>>()?,
                            Bson::Array(_) => {
                                return Err(MongoError::location(
                                    51187,
                                    "If explicitly specifying $merge 'on', must include at least one field",
                                ))
                            }
                            _ => {
                                return Err(MongoError::location(
                                    51186,
                                    "$merge 'on' field  must be either a string or an array of strings",
                                ))
                            }
                        }
                    }
                    "whenMatched" => {
                        m.when_matched = match v {
                            Bson::String(s) => match s.as_str() {
                                "replace" => WhenMatched::Replace,
                                "keepExisting" => WhenMatched::KeepExisting,
                                "merge" => WhenMatched::Merge,
                                "fail" => WhenMatched::Fail,
                                other => {
                                    return Err(MongoError::bad_value(format!(
                                        "Enumeration value '{other}' for field 'whenMatched' is not a valid value."
                                    )))
                                }
                            },
                            // Parsed below, once `let` is known.
                            Bson::Array(_) => WhenMatched::Pipeline(Box::default()),
                            other => {
                                return Err(MongoError::type_mismatch(format!(
                                    "BSON field '$merge.whenMatched' is the wrong type '{}', expected types '[string, array]'",
                                    type_name(other)
                                )))
                            }
                        };
                    }
                    "whenNotMatched" => {
                        m.when_not_matched = match v {
                            Bson::String(s) => match s.as_str() {
                                "insert" => WhenNotMatched::Insert,
                                "discard" => WhenNotMatched::Discard,
                                "fail" => WhenNotMatched::Fail,
                                other => {
                                    return Err(MongoError::bad_value(format!(
                                        "Enumeration value '{other}' for field 'whenNotMatched' is not a valid value."
                                    )))
                                }
                            },
                            other => {
                                return Err(MongoError::type_mismatch(format!(
                                    "BSON field '$merge.whenNotMatched' is the wrong type '{}', expected type 'string'",
                                    type_name(other)
                                )))
                            }
                        }
                    }
                    "let" => raw_let = Some(v),
                    other => {
                        return Err(MongoError::location(
                            40415,
                            format!("BSON field '$merge.{other}' is an unknown field."),
                        ))
                    }
                }
            }
            let Some((db, coll)) = into else {
                return Err(MongoError::location(
                    40414,
                    "BSON field '$merge.into' is missing but a required field",
                ));
            };
            m.db = db;
            m.coll = coll;
            let mut let_names: Vec<String> = vars.to_vec();
            match raw_let {
                Some(v) => {
                    m.let_vars = parse_let(v, vars)?;
                    let_names.extend(m.let_vars.iter().map(|(k, _)| k.clone()));
                }
                None => {
                    m.let_vars = vec![(
                        "new".to_owned(),
                        Expr::parse(&Bson::String("$$ROOT".into()))?,
                    )];
                    let_names.push("new".to_owned());
                }
            }
            if let Some(Bson::Array(items)) = d.get("whenMatched") {
                let stages = items
                    .iter()
                    .map(|s| match s {
                        Bson::Document(d) => Ok(d.clone()),
                        _ => Err(MongoError::type_mismatch(
                            "Each element of the 'whenMatched' pipeline must be an object",
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                m.when_matched =
                    WhenMatched::Pipeline(Box::new(Pipeline::parse_update(&stages, &let_names)?));
            } else if raw_let.is_some() {
                return Err(MongoError::location(
                    51199,
                    "Cannot use 'let' variables with 'whenMatched: merge' mode",
                ));
            }
        }
        other => {
            return Err(MongoError::location(
                51182,
                format!(
                    "$merge only supports a string or object argument, not {}",
                    type_name(other)
                ),
            ))
        }
    }
    if m.coll.is_empty() {
        return Err(MongoError::new(
            ErrorCode::InvalidNamespace,
            "Invalid $merge target namespace: ''",
        ));
    }
    Ok(m)
}

impl MergeSpec {
    /// The filter finding the target document of `doc` (its `on` fields); 51132 when
    /// one of them is missing, null, undefined or an array. `_id` may be missing (the
    /// document is then inserted with a new one).
    pub fn target_filter(&self, doc: &Document) -> Result<Option<Document>, MongoError> {
        let mut f = Document::new();
        for field in &self.on {
            match crate::path::get_path(doc, field) {
                None if field == "_id" && self.on.len() == 1 => return Ok(None),
                None | Some(Bson::Null | Bson::Undefined | Bson::Array(_)) => {
                    return Err(MongoError::location(
                        51132,
                        format!(
                            "$merge write error: 'on' field '{field}' cannot be missing, null, undefined or an array"
                        ),
                    ))
                }
                Some(v) => {
                    f.insert(field.clone(), bson::doc! {"$eq": v.clone()});
                }
            }
        }
        Ok(Some(f))
    }

    /// What to write for result `doc` given the target document it matched.
    pub fn merge(
        &self,
        doc: Document,
        existing: Option<&Document>,
        env: &Env,
    ) -> Result<MergeAction, MongoError> {
        let Some(existing) = existing else {
            return match self.when_not_matched {
                WhenNotMatched::Insert => Ok(MergeAction::Insert(doc)),
                WhenNotMatched::Discard => Ok(MergeAction::Nothing),
                WhenNotMatched::Fail => Err(MongoError::location(
                    13113,
                    "$merge could not find a matching document in the target collection for at least one document in the source collection",
                )),
            };
        };
        let with_id = |mut d: Document| {
            if let Some(id) = existing.get("_id") {
                if !d.contains_key("_id") {
                    let mut out = bson::doc! {"_id": id.clone()};
                    out.extend(d);
                    d = out;
                }
            }
            d
        };
        match &self.when_matched {
            WhenMatched::Replace => Ok(MergeAction::Replace(with_id(doc))),
            WhenMatched::KeepExisting => Ok(MergeAction::Nothing),
            WhenMatched::Merge => {
                let mut set = doc;
                set.remove("_id");
                Ok(MergeAction::Set(set))
            }
            WhenMatched::Fail => {
                // mongod inserts and lets the unique index on the `on` fields refuse:
                // the error names that index's key pattern and the duplicate values.
                let mut pattern = Document::new();
                let mut value = Document::new();
                for field in &self.on {
                    pattern.insert(field.clone(), 1);
                    let v = crate::path::get_path(&doc, field)
                        .cloned()
                        .unwrap_or(Bson::Null);
                    value.insert(field.clone(), v);
                }
                Err(MongoError::new(
                    ErrorCode::DuplicateKey,
                    format!(
                        "$merge failed due to a DuplicateKey error :: caused by :: E11000 duplicate key error dup key: {}",
                        bson_to_string(&Bson::Document(value.clone()))
                    ),
                )
                .with_extra(bson::doc! {"keyPattern": pattern, "keyValue": value}))
            }
            WhenMatched::Pipeline(p) => {
                let mut env = env.clone();
                for (k, e) in &self.let_vars {
                    let v = e.evaluate(&doc, &env)?.unwrap_or(Bson::Null);
                    env.vars.push((k.clone(), v));
                }
                let out = p.apply_one(existing.clone(), &env)?.unwrap_or_default();
                Ok(MergeAction::Replace(with_id(out)))
            }
        }
    }
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

fn replace_root(e: &Expr, what: &str, doc: &Document, env: &Env) -> Result<Document, MongoError> {
    match e.evaluate(doc, env)? {
        Some(Bson::Document(d)) => Ok(d),
        other => {
            let shown = other.as_ref().map_or("missing".to_owned(), bson_to_string);
            let ty = other.as_ref().map_or("missing", type_name);
            Err(MongoError::location(
                40228,
                format!(
                    "'{what}' must evaluate to an object, but resulting value was: {shown}. Type of resulting value: '{ty}'. Input document: {}",
                    bson_to_string(&Bson::Document(doc.clone()))
                ),
            ))
        }
    }
}

/// `$redact`: `$$DESCEND` keeps the level and recurses into sub-documents (and
/// documents in arrays). Divergence: sub-documents are evaluated with `$$ROOT` set to
/// the sub-document too (the expression module binds both to one document).
fn redact(e: &Expr, doc: Document, env: &Env) -> Result<Option<Document>, MongoError> {
    let decision = e.evaluate(&doc, env)?;
    match decision {
        Some(Bson::String(s)) if s == KEEP => Ok(Some(doc)),
        Some(Bson::String(s)) if s == PRUNE => Ok(None),
        Some(Bson::String(s)) if s == DESCEND => {
            let mut out = Document::new();
            for (k, v) in doc {
                if let Some(v) = redact_value(e, v, env)? {
                    out.insert(k, v);
                }
            }
            Ok(Some(out))
        }
        other => Err(MongoError::location(
            17053,
            format!(
                "$redact's expression should not return anything aside from the variables $$KEEP, $$DESCEND, and $$PRUNE, but returned {}",
                other.as_ref().map_or("MISSING".to_owned(), bson_to_string)
            ),
        )),
    }
}

fn redact_value(e: &Expr, v: Bson, env: &Env) -> Result<Option<Bson>, MongoError> {
    match v {
        Bson::Document(d) => Ok(redact(e, d, env)?.map(Bson::Document)),
        Bson::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for i in items {
                match i {
                    Bson::Document(d) => {
                        if let Some(d) = redact(e, d, env)? {
                            out.push(Bson::Document(d));
                        }
                    }
                    Bson::Array(_) => {
                        if let Some(v) = redact_value(e, i, env)? {
                            out.push(v);
                        }
                    }
                    other => out.push(other),
                }
            }
            Ok(Some(Bson::Array(out)))
        }
        other => Ok(Some(other)),
    }
}

fn run_stage(
    stage: &Stage,
    docs: Vec<Document>,
    ctx: &mut dyn Context,
) -> Result<Vec<Document>, MongoError> {
    let env = ctx.env().clone();
    Ok(match stage {
        Stage::Match(m) => {
            let mut out = Vec::with_capacity(docs.len());
            for d in docs {
                if m.matches(&d, &env)? {
                    out.push(d);
                }
            }
            out
        }
        Stage::Project(_) | Stage::AddFields(_) | Stage::ReplaceRoot(..) | Stage::Redact(_) => {
            let mut out = Vec::with_capacity(docs.len());
            for d in docs {
                if let Some(d) = one_to_one(stage, d, &env)? {
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
        Stage::Group(g) => g.run(docs, &env)?,
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
        Stage::Lookup(l) => lookup(l, docs, ctx, &env)?,
        Stage::Facet(facets) => {
            let mut out = Document::new();
            for (name, p) in facets {
                let res = p.run(docs.clone(), ctx)?;
                out.insert(
                    name.clone(),
                    res.into_iter().map(Bson::Document).collect::<Vec<_>>(),
                );
            }
            vec![out]
        }
        Stage::SortByCount(e) => {
            let g = Group::sort_by_count(e.clone());
            let grouped = g.run(docs, &env)?;
            let spec = SortSpec::parse_stage(&bson::doc! {"count": -1})?;
            sort_docs(&spec, grouped)?
        }
        Stage::Bucket(b) => b.run(docs, &env)?,
        Stage::BucketAuto(b) => b.run(docs, &env)?,
        Stage::Sample(n) => sample(docs, *n),
        Stage::UnionWith(u) => {
            let db = u.db.clone().unwrap_or_else(|| ctx.db().to_owned());
            let other = match &u.coll {
                Some(c) => ctx.collection(&db, c)?,
                None => Vec::new(),
            };
            let other = match &u.pipeline {
                Some(p) => p.run(other, ctx)?,
                None => other,
            };
            let mut docs = docs;
            docs.extend(other);
            docs
        }
        Stage::ListLocalSessions(users) => ctx.local_sessions(users.as_deref())?,
        Stage::CollStats(spec) => vec![ctx.coll_stats(spec)?],
        Stage::IndexStats => ctx.index_stats()?,
        Stage::Documents(e) => {
            let empty = Document::new();
            match e.evaluate(&empty, &env)? {
                Some(Bson::Array(items)) => items
                    .into_iter()
                    .map(|i| match i {
                        Bson::Document(d) => Ok(d),
                        other => Err(MongoError::location(
                            40228,
                            format!(
                                "'newRoot' expression must evaluate to an object, but resulting value was: {}. Type of resulting value: '{}'. Input document: {{}}",
                                bson_to_string(&other),
                                type_name(&other)
                            ),
                        )),
                    })
                    .collect::<Result<_, _>>()?,
                other => {
                    return Err(MongoError::location(
                        5858203,
                        format!(
                            "an array is expected, but got {}",
                            other.as_ref().map_or("missing", type_name)
                        ),
                    ))
                }
            }
        }
    })
}

fn sort_docs(spec: &SortSpec, docs: Vec<Document>) -> Result<Vec<Document>, MongoError> {
    let mut keyed = docs
        .into_iter()
        .map(|d| Ok((spec.key(&d)?, d)))
        .collect::<Result<Vec<_>, MongoError>>()?;
    keyed.sort_by(|a, b| spec.compare_keys(&a.0, &b.0));
    Ok(keyed.into_iter().map(|(_, d)| d).collect())
}

/// A value at a path without array traversal (`Document::getNestedField`).
fn get_nested<'a>(doc: &'a Document, path: &[String]) -> Option<&'a Bson> {
    let (first, rest) = path.split_first()?;
    let mut cur = doc.get(first)?;
    for p in rest {
        match cur {
            Bson::Document(d) => cur = d.get(p)?,
            _ => return None,
        }
    }
    Some(cur)
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

fn unwind(u: &Unwind, docs: Vec<Document>) -> Vec<Document> {
    let index_path: Option<Vec<String>> = u
        .include_array_index
        .as_ref()
        .map(|i| i.split('.').map(str::to_owned).collect());
    let mut out = Vec::with_capacity(docs.len());
    for d in docs {
        let value = get_nested(&d, &u.path).cloned();
        match value {
            Some(Bson::Array(items)) if !items.is_empty() => {
                for (i, item) in items.into_iter().enumerate() {
                    let mut nd = d.clone();
                    set_nested(&mut nd, &u.path, item);
                    if let Some(ip) = &index_path {
                        set_nested(&mut nd, ip, Bson::Int64(i as i64));
                    }
                    out.push(nd);
                }
            }
            Some(Bson::Array(_)) | None | Some(Bson::Null) => {
                if u.preserve {
                    let mut nd = d;
                    if matches!(value, Some(Bson::Array(_))) {
                        // An empty array is removed from the output document.
                        remove_nested(&mut nd, &u.path);
                    }
                    if let Some(ip) = &index_path {
                        set_nested(&mut nd, ip, Bson::Null);
                    }
                    out.push(nd);
                }
            }
            Some(_) => {
                let mut nd = d;
                if let Some(ip) = &index_path {
                    set_nested(&mut nd, ip, Bson::Null);
                }
                out.push(nd);
            }
        }
    }
    out
}

fn remove_nested(doc: &mut Document, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        doc.remove(first);
    } else if let Some(Bson::Document(sub)) = doc.get_mut(first) {
        remove_nested(sub, rest);
    }
}

/// Every value at a path, through arrays, with leaf arrays flattened
/// (`document_path_support::visitAllValuesAtPath`).
fn values_at_path(doc: &Document, path: &[String], out: &mut Vec<Bson>) {
    fn walk(v: &Bson, rest: &[String], out: &mut Vec<Bson>) {
        match (v, rest.split_first()) {
            (Bson::Array(items), None) => out.extend(items.iter().cloned()),
            (other, None) => out.push(other.clone()),
            (Bson::Document(d), Some((first, tail))) => {
                if let Some(v) = d.get(first) {
                    walk(v, tail, out);
                }
            }
            (Bson::Array(items), Some(_)) => {
                for i in items {
                    if matches!(i, Bson::Document(_) | Bson::Array(_)) {
                        walk(i, rest, out);
                    }
                }
            }
            _ => {}
        }
    }
    walk(&Bson::Document(doc.clone()), path, out);
}

fn lookup(
    l: &Lookup,
    docs: Vec<Document>,
    ctx: &mut dyn Context,
    env: &Env,
) -> Result<Vec<Document>, MongoError> {
    let db = l.from_db.clone().unwrap_or_else(|| ctx.db().to_owned());
    let from = l.from.clone().unwrap_or_default();
    let foreign = ctx.collection(&db, &from)?;
    let local_path: Option<Vec<String>> = l
        .local_field
        .as_ref()
        .map(|f| f.split('.').map(str::to_owned).collect());
    let mut out = Vec::with_capacity(docs.len());
    for mut d in docs {
        let mut candidates: Vec<Document> = match (&local_path, &l.foreign_field) {
            (Some(lp), Some(ff)) => {
                let mut values = Vec::new();
                values_at_path(&d, lp, &mut values);
                if values.is_empty() {
                    values.push(Bson::Null);
                }
                // Regexes compare as values, not patterns, in a join.
                let in_values: Vec<Bson> = values
                    .into_iter()
                    .filter(|v| !matches!(v, Bson::RegularExpression(_)))
                    .collect();
                let filter = Filter::parse(&bson::doc! {ff.clone(): {"$in": in_values}})?;
                foreign
                    .iter()
                    .filter(|f| filter.matches(f))
                    .cloned()
                    .collect()
            }
            _ => foreign.clone(),
        };
        if let Some(p) = &l.pipeline {
            let mut sub_env = env.clone();
            for (k, e) in &l.let_vars {
                let v = e.evaluate(&d, env)?.unwrap_or(Bson::Null);
                sub_env.vars.push((k.clone(), v));
            }
            let mut sub = SubContext {
                inner: ctx,
                env: sub_env,
            };
            candidates = p.run(candidates, &mut sub)?;
        }
        set_nested(
            &mut d,
            &l.as_field,
            Bson::Array(candidates.into_iter().map(Bson::Document).collect()),
        );
        out.push(d);
    }
    Ok(out)
}

/// A context with extra variables (`$lookup`'s `let`).
struct SubContext<'a> {
    inner: &'a mut dyn Context,
    env: Env,
}

impl Context for SubContext<'_> {
    fn collection(&mut self, db: &str, coll: &str) -> Result<Vec<Document>, MongoError> {
        self.inner.collection(db, coll)
    }
    fn db(&self) -> &str {
        self.inner.db()
    }
    fn env(&self) -> &Env {
        &self.env
    }
    fn coll_stats(&mut self, spec: &CollStats) -> Result<Document, MongoError> {
        self.inner.coll_stats(spec)
    }
    fn index_stats(&mut self) -> Result<Vec<Document>, MongoError> {
        self.inner.index_stats()
    }
    fn local_sessions(
        &mut self,
        users: Option<&[(String, String)]>,
    ) -> Result<Vec<Document>, MongoError> {
        self.inner.local_sessions(users)
    }
}

/// `$sample`: `n` documents in random order (a partial Fisher-Yates shuffle).
fn sample(mut docs: Vec<Document>, n: usize) -> Vec<Document> {
    let take = n.min(docs.len());
    for i in 0..take {
        let j = i + (util::random_u64() % (docs.len() - i) as u64) as usize;
        docs.swap(i, j);
    }
    docs.truncate(take);
    docs
}

/// Orders two group keys or values as mongod's value comparator does.
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
