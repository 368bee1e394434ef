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
use crate::plan::Query;
use crate::read::Reader;
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

impl Aggregation {
    /// Runs the aggregation; with `snapshot`, also the cluster time it read at.
    pub fn run(
        self,
        engine: &Arc<Engine>,
    ) -> Result<(Vec<Document>, Option<bson::Timestamp>), MongoError> {
        let mut env = Env::new();
        env.cluster_time = Some(engine.cluster_time());
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
            local_sessions: self.local_sessions.as_ref(),
            current_ops: self.current_ops.as_ref(),
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
                        check_snapshot_source(&meta, self.snapshot.is_some())?;
                        if let Some(g) = pipeline.leading_geo_near() {
                            let limit = pipeline.geo_near_limit();
                            let docs = geo_near_source(
                                &reader,
                                &meta,
                                g,
                                limit,
                                &ctx,
                                self.collation.as_ref(),
                            )?;
                            pipeline.run_from_stage(1, docs, &mut ctx)?
                        } else {
                            let input = read_source(
                                &reader,
                                &meta,
                                &pipeline,
                                &ctx,
                                self.hint.as_ref(),
                                self.collation.as_ref(),
                            )?;
                            match input {
                                (docs, Some(next)) => {
                                    pipeline.run_from_stage(next, docs, &mut ctx)?
                                }
                                (docs, None) => pipeline.run_after_match(docs, &mut ctx)?,
                            }
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
                super::output::write_out(engine, target, results, self.bypass_document_validation)?;
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
}

/// The pipeline's input from its source collection, read through the planner with the
/// leading `$match` (so it can use an index) and a `$sort` (and `$limit`) right after it:
/// the documents, and the stage to continue from when the engine already applied the
/// sort and limit (an index gave the order); otherwise the pipeline continues after the
/// `$match`, its own `$sort` running over input already in that order, so that its
/// errors (parallel arrays) stay mongod's.
fn read_source(
    reader: &Reader,
    meta: &CollectionMeta,
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
            if crate::plan::plan(meta, &q)?.sorted {
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
    let found = super::query::near_query(reader, meta, &q, &key, &near, limit)?;
    ctx.usage.record(meta, &found.plan);
    Ok(found
        .docs
        .into_iter()
        .map(|m| {
            let mut doc = m.doc;
            if let Some((d, loc)) = crate::geo::document_distance(&near, &doc, &key) {
                let loc = loc.clone();
                g.annotate(&mut doc, d, &loc);
            }
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
