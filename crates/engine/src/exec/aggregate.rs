//! Aggregation pipelines over a collection, a view or nothing (`{aggregate: 1}`), from
//! one reader snapshot:
//!
//! * a leading `$match` is handed to the planner, so it can use an index, and with it a
//!   `$sort` (and `$limit`) right after, so an index can give the order;
//! * `$lookup`/`$unionWith` read other collections through the same snapshot;
//! * a final `$out` or `$merge` writes through [`super::output`].

use std::sync::Arc;

use bson::{Bson, Document};
use eddy_codes::{Deadline, ErrorCode, MongoError};
use eddy_query::collation::Collation;
use eddy_query::expr::Env;
use eddy_query::filter::Filter;
use eddy_query::pipeline::{CollStats, Context, CurrentOpSpec, Output, Pipeline};

use super::{check_snapshot_source, open_reader};
use eddy_query::sort::SortSpec;

use crate::plan::{Plan, Query};
use crate::read::{ExecStats, Reader};
use crate::{CollectionMeta, Engine, Namespace};

/// An aggregation (also how `find`, `count` and `distinct` read through a view).
pub struct Aggregation {
    pub db: String,
    /// A collection or a view; `None` for `{aggregate: 1}`.
    pub coll: Option<String>,
    pub pipeline: Vec<Document>,
    pub let_vars: Document,
    /// The server's session cache, for a leading `$listLocalSessions` (`None`: empty).
    pub local_sessions: Option<LocalSessions>,
    /// What the server is doing, for a leading `$currentOp` (`None`: nothing).
    pub current_ops: Option<CurrentOps>,
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

/// What `explain` shows of an aggregation ([`Aggregation::explain`]).
#[derive(Debug, Clone)]
pub struct Explained {
    /// The collection the pipeline reads, when it reads one.
    pub source: Option<ExplainedSource>,
    /// The stages after those the source's read took on, as given (a final `$out` or
    /// `$merge` included), with what each returned when the pipeline ran.
    pub stages: Vec<ExplainedStage>,
}

/// How an explained aggregation reads its collection.
#[derive(Debug, Clone)]
pub struct ExplainedSource {
    pub ns: Namespace,
    /// The leading `$match` (`{}` without one).
    pub filter: Document,
    /// The leading `$sort` and `$limit` when the plan gives their order (otherwise they
    /// run as stages).
    pub sort: Option<Document>,
    pub limit: Option<usize>,
    /// `None`: the collection does not exist (mongod's `EOF`).
    pub plan: Option<Plan>,
    /// What the read did, when the pipeline ran.
    pub executed: Option<SourceStats>,
}

/// What an explained read did.
#[derive(Debug, Clone, Copy, Default)]
pub struct SourceStats {
    pub returned: usize,
    pub keys_examined: u64,
    pub docs_examined: u64,
    pub millis: u64,
}

/// One stage of an explained aggregation.
#[derive(Debug, Clone)]
pub struct ExplainedStage {
    /// The stage as the command gave it.
    pub spec: Document,
    /// Documents it returned and milliseconds it took, when the pipeline ran (never for
    /// `$out`/`$merge`: explain does not write).
    pub executed: Option<(usize, u64)>,
}

/// An aggregation's parsed pipeline over its resolved source, with the reader
/// snapshot it runs in.
struct Prepared {
    reader: Reader,
    at: Option<bson::Timestamp>,
    env: Env,
    /// The collection read (a view's source), `None` for `{aggregate: 1}`.
    coll: Option<String>,
    /// A view's stages, then the command's.
    stages: Vec<Document>,
    pipeline: Pipeline,
}

impl Aggregation {
    /// Opens the snapshot, resolves a view to its source and pipeline, and parses.
    fn prepare(&self, engine: &Arc<Engine>) -> Result<Prepared, MongoError> {
        let mut env = Env::new();
        env.cluster_time = Some(engine.cluster_time());
        // The command's `let` and `$merge`'s `whenMatched` pipeline evaluate under its
        // collation too (the pipeline's stages get it from `Pipeline::collated`).
        env.collation = self.collation.clone();
        env.vars = eddy_query::expr::evaluate_let(&self.let_vars, &env)?;
        let names: Vec<String> = env.vars.iter().map(|(k, _)| k.clone()).collect();
        let (reader, at) = open_reader(engine, self.snapshot)?;
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
                        stages.extend(self.pipeline.iter().cloned());
                        (Some(view.source.coll), stages)
                    }
                    None => (Some(coll.clone()), self.pipeline.clone()),
                }
            }
            None => (None, self.pipeline.clone()),
        };
        let pipeline =
            Pipeline::parse_with_vars(&stages, &names)?.collated(self.collation.as_ref());
        Ok(Prepared {
            reader,
            at,
            env,
            coll,
            stages,
            pipeline,
        })
    }

    fn context<'a>(&'a self, p: &'a Prepared, engine: &'a Engine) -> ReaderContext<'a> {
        ReaderContext {
            reader: &p.reader,
            db: self.db.clone(),
            env: p.env.clone(),
            local_sessions: self.local_sessions.as_ref(),
            current_ops: self.current_ops.as_ref(),
            deadline: self.deadline,
            coll: p.coll.as_deref(),
            host: self.host.as_deref(),
            usage: engine.index_usage(),
        }
    }

    /// The collection the pipeline reads its input from, if it reads one.
    fn source(&self, p: &Prepared) -> Option<Namespace> {
        match &p.coll {
            Some(coll) if !p.pipeline.generates_input() => {
                Some(Namespace::new(self.db.clone(), coll.clone()))
            }
            _ => None,
        }
    }

    /// Runs the aggregation; with `snapshot`, also the cluster time it read at.
    pub fn run(
        self,
        engine: &Arc<Engine>,
    ) -> Result<(Vec<Document>, Option<bson::Timestamp>), MongoError> {
        let p = self.prepare(engine)?;
        let pipeline = &p.pipeline;
        let mut ctx = self.context(&p, engine);
        let results = match self.source(&p) {
            None => pipeline.run(Vec::new(), &mut ctx)?,
            Some(ns) => match p.reader.collection(&ns)? {
                Some(meta) => {
                    check_snapshot_source(&meta, self.snapshot.is_some())?;
                    if let Some(g) = pipeline.leading_geo_near() {
                        // `$geoNear` reads its collection through a geo index itself.
                        let limit = pipeline.geo_near_limit();
                        let docs = geo_near_source(
                            &p.reader,
                            &meta,
                            g,
                            limit,
                            &ctx,
                            self.collation.as_ref(),
                        )?;
                        pipeline.run_from_stage(1, docs, &mut ctx)?
                    } else {
                        let read = SourceRead::plan(
                            &meta,
                            pipeline,
                            &ctx,
                            self.hint.as_ref(),
                            self.collation.as_ref(),
                        )?;
                        let docs = read.read(&p.reader, &meta, &ctx)?.0;
                        pipeline.run_from_stage(read.next, docs, &mut ctx)?
                    }
                }
                None => pipeline.run(Vec::new(), &mut ctx)?,
            },
        };
        let mut results = results;
        if pipeline.leading_geo_near().is_some()
            || pipeline
                .leading_filter()
                .is_some_and(|f| f.text().is_some())
        {
            // Metadata is never part of a reply or of what is written.
            results.iter_mut().for_each(eddy_query::meta::strip);
        }
        let env = ctx.env.clone();
        drop(ctx);
        let at = p.at;
        drop(p.reader);
        if p.pipeline.writes().is_some() {
            // Nothing is written for a client that has already been told it timed out.
            Deadline::check_opt(self.deadline)?;
        }
        match p.pipeline.writes() {
            None => Ok((results, at)),
            Some(Output::Out {
                db,
                coll,
                timeseries,
            }) => {
                let target = Namespace::new(db.clone().unwrap_or(self.db.clone()), coll.clone());
                super::output::write_out(
                    engine,
                    target,
                    timeseries.as_ref(),
                    results,
                    self.bypass_document_validation,
                )?;
                Ok((Vec::new(), at))
            }
            Some(Output::Merge(spec)) => {
                super::output::write_merge(
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

    /// What the aggregation reads and runs, as `explain` shows it; with `execute`, it
    /// also runs (but never writes its `$out`/`$merge`) and reports what each part did.
    pub fn explain(self, engine: &Arc<Engine>, execute: bool) -> Result<Explained, MongoError> {
        let p = self.prepare(engine)?;
        let pipeline = &p.pipeline;
        let mut ctx = self.context(&p, engine);
        let mut source = None;
        let (mut docs, next) = match self.source(&p) {
            None => (Vec::new(), 0),
            // `$geoNear` reads its collection itself: it is shown as its first stage.
            Some(ns) if pipeline.leading_geo_near().is_some() => {
                let docs = match (p.reader.collection(&ns)?, pipeline.leading_geo_near()) {
                    (Some(meta), Some(g)) if execute => geo_near_source(
                        &p.reader,
                        &meta,
                        g,
                        pipeline.geo_near_limit(),
                        &ctx,
                        self.collation.as_ref(),
                    )?,
                    _ => Vec::new(),
                };
                (docs, 0)
            }
            Some(ns) => {
                let meta = p.reader.collection(&ns)?;
                let empty = Document::new();
                let mut explained = ExplainedSource {
                    ns,
                    filter: pipeline.leading_match().unwrap_or(&empty).clone(),
                    sort: None,
                    limit: None,
                    plan: None,
                    executed: execute.then(SourceStats::default),
                };
                let read = match &meta {
                    Some(meta) => {
                        check_snapshot_source(meta, self.snapshot.is_some())?;
                        let read = SourceRead::plan(
                            meta,
                            pipeline,
                            &ctx,
                            self.hint.as_ref(),
                            self.collation.as_ref(),
                        )?;
                        explained.plan = Some(read.plan.clone());
                        if let Some((_, limit)) = read.sorted {
                            // The `$sort` right after the leading `$match`.
                            let at = usize::from(pipeline.leading_match().is_some());
                            explained.sort = p.stages[at].get_document("$sort").ok().cloned();
                            explained.limit = limit;
                        }
                        Some(read)
                    }
                    None => None,
                };
                let next = read
                    .as_ref()
                    .map_or(usize::from(pipeline.leading_match().is_some()), |r| r.next);
                let docs = match (&meta, read, execute) {
                    (Some(meta), Some(read), true) => {
                        let started = std::time::Instant::now();
                        let (docs, stats) = read.read(&p.reader, meta, &ctx)?;
                        explained.executed = Some(SourceStats {
                            returned: docs.len(),
                            keys_examined: stats.keys_examined,
                            docs_examined: stats.docs_examined,
                            millis: started.elapsed().as_millis() as u64,
                        });
                        docs
                    }
                    _ => Vec::new(),
                };
                source = Some(explained);
                (docs, next)
            }
        };
        let mut stages: Vec<ExplainedStage> = p.stages[next..]
            .iter()
            .map(|spec| ExplainedStage {
                spec: spec.clone(),
                executed: None,
            })
            .collect();
        if execute {
            let mut run = stages.iter_mut();
            docs = pipeline.run_observed(next, docs, &mut ctx, &mut |returned, took| {
                if let Some(stage) = run.next() {
                    stage.executed = Some((returned, took.as_millis() as u64));
                }
            })?;
            drop(docs);
        }
        Ok(Explained { source, stages })
    }
}

/// How the pipeline reads its source collection: through the planner with the leading
/// `$match` (so it can use an index) and a `$sort` (and `$limit`) right after it when
/// the plan gives that order. Otherwise the pipeline's own `$sort` runs over input
/// already in that order, so that its errors (parallel arrays) stay mongod's.
struct SourceRead<'p> {
    filter_doc: &'p Document,
    filter: Filter,
    hint: Option<&'p Bson>,
    /// The sort and limit the plan serves.
    sorted: Option<(&'p SortSpec, Option<usize>)>,
    plan: Plan,
    /// The first stage the pipeline runs over what was read.
    next: usize,
}

static NO_FILTER: std::sync::LazyLock<Document> = std::sync::LazyLock::new(Document::new);

impl<'p> SourceRead<'p> {
    fn plan(
        meta: &CollectionMeta,
        pipeline: &'p Pipeline,
        ctx: &ReaderContext<'_>,
        hint: Option<&'p Bson>,
        collation: Option<&Arc<Collation>>,
    ) -> Result<SourceRead<'p>, MongoError> {
        let filter_doc = pipeline.leading_match().unwrap_or(&NO_FILTER);
        let filter = Filter::parse_collated(filter_doc, &ctx.env.vars, collation)?;
        let plan_for = |sort: Option<&SortSpec>| {
            let mut q = Query::new(filter_doc, &filter);
            q.hint = hint;
            q.sort = sort;
            crate::plan::plan(meta, &q)
        };
        let after_match = usize::from(pipeline.leading_match().is_some());
        let (sorted, plan, next) = match pipeline.leading_sort() {
            Some((sort, limit, next)) => match plan_for(Some(sort))? {
                plan if plan.sorted => (Some((sort, limit)), plan, next),
                _ => (None, plan_for(None)?, after_match),
            },
            None => (None, plan_for(None)?, after_match),
        };
        Ok(SourceRead {
            filter_doc,
            filter,
            hint,
            sorted,
            plan,
            next,
        })
    }

    fn query(&self, deadline: Option<Deadline>) -> Query<'_> {
        let mut q = Query::new(self.filter_doc, &self.filter);
        q.hint = self.hint;
        q.deadline = deadline;
        q.sort = self.sorted.map(|(sort, _)| sort);
        q
    }

    /// The documents, in the plan's order, and what reading them took.
    fn read(
        &self,
        reader: &Reader,
        meta: &CollectionMeta,
        ctx: &ReaderContext<'_>,
    ) -> Result<(Vec<Document>, ExecStats), MongoError> {
        let limit = self.sorted.and_then(|(_, limit)| limit);
        let found = reader.query(meta, &self.query(ctx.deadline), limit)?;
        ctx.usage.record(meta, &found.plan);
        let docs = found
            .docs
            .into_iter()
            .map(|mut m| {
                // The stages read it through `{$meta: ...}`.
                let mut doc = std::mem::take(&mut m.doc);
                m.add_metadata(&mut doc);
                doc
            })
            .collect();
        Ok((docs, found.stats))
    }
}

/// A leading `$geoNear` (with the `$limit` after it, if any): the documents nearest first, through the geo index its `key`
/// names (or the collection's only `2d` index, else its only `2dsphere` index), each
/// with its distance (and location) written in.
fn geo_near_source(
    reader: &Reader,
    meta: &CollectionMeta,
    g: &eddy_query::pipeline::geo_near::GeoNear,
    limit: Option<usize>,
    ctx: &ReaderContext<'_>,
    collation: Option<&Arc<Collation>>,
) -> Result<Vec<Document>, MongoError> {
    let key = crate::geo::geo_near_key(meta, g.key.as_deref())?;
    let clause = g.near_clause(&key);
    let filter_doc = if g.query.is_empty() {
        clause
    } else {
        bson::doc! {"$and": [g.query.clone(), clause]}
    };
    let filter = Filter::parse_find(&filter_doc, &ctx.env.vars, collation)?;
    let mut q = Query::new(&filter_doc, &filter);
    q.deadline = ctx.deadline;
    let near = filter
        .near()
        .map(|(_, n)| n.clone())
        .ok_or_else(eddy_query::filter::no_geo_near_index)?;
    let found = super::query::near_query(reader.kv(), meta, &q, &key, &near, limit)?;
    ctx.usage.record(meta, &found.plan);
    Ok(found
        .docs
        .into_iter()
        .map(|mut m| {
            let mut doc = std::mem::take(&mut m.doc);
            if let Some((d, loc)) = &m.near {
                g.annotate(&mut doc, *d, loc);
            }
            // And as metadata, for `{$meta: "geoNearDistance"}` and `"geoNearPoint"`.
            m.add_metadata(&mut doc);
            doc
        })
        .collect())
}

/// Reads for `$lookup`/`$unionWith` through the aggregation's snapshot.
struct ReaderContext<'a> {
    reader: &'a Reader,
    db: String,
    env: Env,
    local_sessions: Option<&'a LocalSessions>,
    current_ops: Option<&'a CurrentOps>,
    deadline: Option<Deadline>,
    /// The aggregated collection (`None` for `{aggregate: 1}`).
    coll: Option<&'a str>,
    host: Option<&'a str>,
    usage: &'a crate::usage::IndexUsage,
}

/// The server's answer to a `$currentOp` stage: its operations, connections and
/// cursors as the stage's options ask (only the server knows them).
pub type CurrentOps = Box<dyn Fn(&CurrentOpSpec) -> Vec<Document> + Send + Sync>;

/// What `$listLocalSessions` lists: the server's session cache, and whose sessions
/// "mine" are.
#[derive(Debug)]
pub struct LocalSessions {
    pub sessions: Vec<LocalSession>,
    /// The caller's session `uid`.
    pub caller: [u8; 32],
    /// The `uid` of a user, from its name and database.
    pub uid_of: fn(&str, &str) -> [u8; 32],
}

/// One cached session.
#[derive(Debug, Clone)]
pub struct LocalSession {
    /// `lsid.id`.
    pub id: Bson,
    /// The digest of the session's user.
    pub uid: [u8; 32],
    pub last_use: std::time::SystemTime,
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
            let stats = super::storage_stats(self.reader, meta, scale)?;
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
    fn current_ops(&mut self, spec: &CurrentOpSpec) -> Result<Vec<Document>, MongoError> {
        Ok(self.current_ops.map_or_else(Vec::new, |list| list(spec)))
    }
    fn local_sessions(
        &mut self,
        users: Option<&[(String, String)]>,
    ) -> Result<Vec<Document>, MongoError> {
        let Some(cache) = self.local_sessions else {
            return Ok(Vec::new());
        };
        // The parser gives `("", "")` for "the caller" (mongod's spec without `users`).
        let uids: Option<Vec<[u8; 32]>> = users.map(|users| {
            users
                .iter()
                .map(|(user, db)| match (user.is_empty(), db.is_empty()) {
                    (true, true) => cache.caller,
                    _ => (cache.uid_of)(user, db),
                })
                .collect()
        });
        Ok(cache
            .sessions
            .iter()
            .filter(|s| uids.as_ref().is_none_or(|uids| uids.contains(&s.uid)))
            .map(|s| {
                bson::doc! {
                    "_id": {
                        "id": s.id.clone(),
                        "uid": bson::Binary {
                            subtype: bson::spec::BinarySubtype::Generic,
                            bytes: s.uid.to_vec(),
                        },
                    },
                    "lastUse": bson::DateTime::from_system_time(s.last_use),
                }
            })
            .collect())
    }
}
