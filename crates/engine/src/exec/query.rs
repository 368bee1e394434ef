//! Queries for `find`, `count`, `distinct` and `explain`: plan, filter, sort, skip,
//! limit, project, from one reader snapshot; a query on a view runs as an aggregation.

use std::sync::Arc;

use bson::{doc, Bson, Document, Timestamp};
use eddy_codes::{Deadline, ErrorCode, MongoError};
use eddy_query::collation::Collation;
use eddy_query::filter::Filter;
use eddy_query::meta;
use eddy_query::pipeline::asks_text_score;
use eddy_query::projection::Projection;
use eddy_query::sort::SortSpec;

use super::{check_snapshot_source, evaluate_let, open_reader};
use crate::plan::{self, Direction, Plan, Query};
use crate::read::ExecStats;
use crate::{Engine, Namespace};

/// A parsed query.
#[derive(Debug, Clone, Default)]
pub struct QuerySpec {
    pub filter: Document,
    pub sort: Option<Document>,
    pub projection: Option<Document>,
    pub skip: u64,
    pub limit: Option<u64>,
    pub hint: Option<Bson>,
    /// The command's `let` document, unevaluated (empty without one).
    pub let_vars: Document,
    /// The query's collation (`None`: simple).
    pub collation: Option<Arc<Collation>>,
    /// `readConcern: {level: "snapshot"}`, with its `atClusterTime` if given.
    pub snapshot: Option<Option<Timestamp>>,
    /// `find`'s `min` and `max` index bounds (`None` when absent or empty).
    pub min: Option<Document>,
    pub max: Option<Document>,
    /// The command's `maxTimeMS` deadline: the scan stops with 50 when it passes.
    pub deadline: Option<Deadline>,
    /// `find`'s `returnKey`: each result is the index key it was found through.
    pub return_key: bool,
    /// `find`'s `showRecordId`: each result gets a `$recordId` field (not with `returnKey`).
    pub show_record_id: bool,
}

/// What a query did: its results, and for explain the plan and what it read.
#[derive(Debug, Default)]
pub struct Outcome {
    pub docs: Vec<Document>,
    /// `None` when there was nothing to plan (no such collection, or a view).
    pub plan: Option<Plan>,
    pub stats: ExecStats,
    /// The cluster time a snapshot read read at.
    pub at: Option<Timestamp>,
}

/// The parts of a query parsed before it touches the engine (bad ones fail even on a
/// missing collection, as in mongod).
struct Parsed {
    filter: Filter,
    projection: Option<Projection>,
    sort: Option<SortSpec>,
    /// The hint, or `{$natural: d}` for a `{$natural: d}` sort without one.
    hint: Option<Bson>,
}

fn parse(engine: &Arc<Engine>, q: &QuerySpec) -> Result<Parsed, MongoError> {
    let projection = q
        .projection
        .as_ref()
        .map(|p| Projection::parse_with_query(p, &q.filter))
        .transpose()?;
    let mut hint = q.hint.clone();
    let sort = match &q.sort {
        // `{$natural: 1 | -1}` orders by the collection scan itself.
        Some(s) if s.len() == 1 && s.contains_key("$natural") => {
            let d = plan::natural_direction(s.get("$natural").unwrap_or(&Bson::Null), "sort")?;
            let n = if d == Direction::Forward { 1 } else { -1 };
            hint.get_or_insert(Bson::Document(doc! {"$natural": n}));
            None
        }
        Some(s) if !s.is_empty() => Some(SortSpec::parse(s)?.with_collation(q.collation.clone())),
        _ => None,
    };
    let vars = evaluate_let(engine, &q.let_vars)?;
    let filter = Filter::parse_find(&q.filter, &vars, q.collation.as_ref())?;
    let asks_score = sort.as_ref().is_some_and(SortSpec::uses_text_score)
        || q.projection
            .as_ref()
            .is_some_and(|p| asks_text_score(&Bson::Document(p.clone())));
    if asks_score && filter.text().is_none() {
        return Err(MongoError::location(
            40218,
            "query requires text score metadata, but it is not available",
        ));
    }
    Ok(Parsed {
        filter,
        projection,
        sort,
        hint,
    })
}

/// The direction of a `{$natural: ±1}` sort or hint (mongod accepts any number,
/// its sign giving the direction).
pub fn natural_direction(spec: Option<&Document>) -> Option<i32> {
    let spec = spec?;
    if spec.len() != 1 {
        return None;
    }
    let v = spec.get("$natural")?;
    let n = match v {
        Bson::Int32(n) => f64::from(*n),
        Bson::Int64(n) => *n as f64,
        Bson::Double(n) => *n,
        _ => return None,
    };
    Some(if n < 0.0 { -1 } else { 1 })
}

/// Runs a query against `ns`, returning the result documents in order.
pub fn run(
    engine: &Arc<Engine>,
    ns: &Namespace,
    q: &QuerySpec,
) -> Result<Vec<Document>, MongoError> {
    Ok(execute(engine, ns, q)?.docs)
}

/// The plan a query would run with, without running it (`None`: nothing to plan).
pub fn plan_only(
    engine: &Arc<Engine>,
    ns: &Namespace,
    q: &QuerySpec,
) -> Result<Option<Plan>, MongoError> {
    let p = parse(engine, q)?;
    let (reader, _) = open_reader(engine, q.snapshot)?;
    if reader.view(ns)?.is_some() {
        return Ok(None);
    }
    let Some(meta) = reader.collection(ns)? else {
        return Ok(None);
    };
    plan::plan(&meta, &engine_query(q, &p)).map(Some)
}

fn engine_query<'a>(q: &'a QuerySpec, p: &'a Parsed) -> Query<'a> {
    Query {
        filter_doc: &q.filter,
        filter: &p.filter,
        sort: p.sort.as_ref(),
        hint: p.hint.as_ref(),
        min: q.min.as_ref(),
        max: q.max.as_ref(),
        skip: q.skip > 0,
        deadline: q.deadline,
        return_key: q.return_key,
    }
}

/// Runs a query against `ns`: plan, filter, sort, skip, limit, project.
pub fn execute(engine: &Arc<Engine>, ns: &Namespace, q: &QuerySpec) -> Result<Outcome, MongoError> {
    let p = parse(engine, q)?;
    let (reader, at) = open_reader(engine, q.snapshot)?;
    if reader.view(ns)?.is_some() {
        drop(reader);
        let options = [
            ("min", q.min.is_some()),
            ("max", q.max.is_some()),
            ("returnKey", q.return_key),
            ("showRecordId", q.show_record_id),
        ];
        for (name, given) in options {
            if given {
                return Err(MongoError::new(
                    ErrorCode::InvalidPipelineOperator,
                    format!("Option {name} not supported in aggregation."),
                ));
            }
        }
        let (docs, at) = through_view(engine, ns, q, p.projection.as_ref())?;
        return Ok(Outcome {
            docs,
            at,
            ..Outcome::default()
        });
    }
    let Some(meta) = reader.collection(ns)? else {
        return Ok(Outcome {
            at,
            ..Outcome::default()
        });
    };
    check_snapshot_source(&meta, q.snapshot.is_some())?;
    let skip = usize::try_from(q.skip).unwrap_or(usize::MAX);
    let take = match q.limit {
        Some(l) if l > 0 => usize::try_from(l).unwrap_or(usize::MAX),
        _ => usize::MAX,
    };
    let needed = (take != usize::MAX).then(|| take.saturating_add(skip));
    let executed = match p.filter.near() {
        Some((path, near)) if p.sort.is_none() => {
            near_query(reader.kv(), &meta, &engine_query(q, &p), path, near, needed)?
        }
        _ => reader.query(&meta, &engine_query(q, &p), needed)?,
    };
    engine.index_usage().record(&meta, &executed.plan);
    let docs = executed
        .docs
        .into_iter()
        .skip(skip)
        .take(take)
        .map(|mut m| {
            if q.return_key {
                // The key alone, even with `showRecordId` (as mongod).
                return crate::read::index_key(&meta, &executed.plan, &m);
            }
            let mut doc = match &p.projection {
                Some(proj) if m.has_metadata() => {
                    // Metadata the projection may show, never a field.
                    let mut input = std::mem::take(&mut m.doc);
                    m.add_metadata(&mut input);
                    let mut out = proj.apply(&input, m.details.as_ref())?;
                    meta::strip(&mut out);
                    out
                }
                Some(proj) => proj.apply(&m.doc, m.details.as_ref())?,
                None => m.doc,
            };
            if q.show_record_id {
                // Eddy stores every collection clustered by `_id`: the record id is the
                // document's storage key, shown as mongod shows a clustered collection's.
                doc.insert(
                    "$recordId",
                    bson::Binary {
                        subtype: bson::spec::BinarySubtype::Generic,
                        bytes: m.id_key,
                    },
                );
            }
            Ok(doc)
        })
        .collect::<Result<_, MongoError>>()?;
    Ok(Outcome {
        docs,
        plan: Some(executed.plan),
        stats: executed.stats,
        at,
    })
}

/// A `$near` query without a sort: its matches in order of distance, each with its
/// distance and the location measured (`Matched::near`). With a limit,
/// the search reads growing rings (each four times as wide) until one holds enough
/// documents, so a near query on a large collection reads the neighbourhood only.
pub(crate) fn near_query(
    r: &(impl eddy_storage::KvRead + ?Sized),
    meta: &crate::CollectionMeta,
    q: &Query<'_>,
    path: &str,
    near: &eddy_query::geo::query::Near,
    needed: Option<usize>,
) -> Result<crate::read::Executed, MongoError> {
    let mut executed = match needed {
        None => crate::read::execute(r, meta, q, None)?,
        Some(n) => {
            let whole = crate::geo::whole_radius(meta, path, near);
            let limit = near.max.unwrap_or(f64::INFINITY).min(whole);
            let mut radius = crate::geo::first_radius(near).min(limit);
            let mut keys_examined = 0;
            loop {
                let ring = q.filter.with_near_max(radius);
                let ring_query = Query {
                    filter: &ring,
                    ..*q
                };
                let mut got = crate::read::execute(r, meta, &ring_query, None)?;
                keys_examined += got.stats.keys_examined;
                if got.docs.len() >= n || radius >= limit {
                    got.stats.keys_examined = keys_examined;
                    break got;
                }
                radius = (radius * 4.0).min(limit);
            }
        }
    };
    for m in &mut executed.docs {
        m.near = crate::geo::document_distance(near, &m.doc, path).map(|(d, at)| (d, at.clone()));
    }
    let distance = |m: &crate::read::Matched| m.near.as_ref().map_or(f64::INFINITY, |(d, _)| *d);
    executed
        .docs
        .sort_by(|a, b| distance(a).total_cmp(&distance(b)));
    Ok(executed)
}

/// A query on a view, run as mongod runs it: an aggregation of the view's pipeline
/// followed by the query's `$match`, `$sort`, `$skip` and `$limit`, then the projection.
/// The aggregation a query of a view runs (its projection aside): the view's pipeline,
/// then the query's filter, sort, skip and limit as stages.
pub fn view_aggregation(ns: &Namespace, q: &QuerySpec) -> super::Aggregation {
    let mut pipeline = Vec::new();
    if !q.filter.is_empty() {
        pipeline.push(doc! {"$match": q.filter.clone()});
    }
    if let Some(sort) = q.sort.as_ref().filter(|s| !s.is_empty()) {
        pipeline.push(doc! {"$sort": sort.clone()});
    }
    if q.skip > 0 {
        pipeline.push(doc! {"$skip": i64::try_from(q.skip).unwrap_or(i64::MAX)});
    }
    if let Some(limit) = q.limit.filter(|l| *l > 0) {
        pipeline.push(doc! {"$limit": i64::try_from(limit).unwrap_or(i64::MAX)});
    }
    super::Aggregation {
        db: ns.db.clone(),
        coll: Some(ns.coll.clone()),
        pipeline,
        let_vars: Document::new(),
        local_sessions: None,
        current_ops: None,
        collation: q.collation.clone(),
        bypass_document_validation: false,
        snapshot: q.snapshot,
        hint: None,
        deadline: q.deadline,
        host: None,
    }
}

fn through_view(
    engine: &Arc<Engine>,
    ns: &Namespace,
    q: &QuerySpec,
    projection: Option<&Projection>,
) -> Result<(Vec<Document>, Option<Timestamp>), MongoError> {
    let (docs, at) = view_aggregation(ns, q).run(engine)?;
    let docs = match projection {
        Some(p) => docs
            .iter()
            .map(|d| p.apply(d, None))
            .collect::<Result<_, _>>()?,
        None => docs,
    };
    Ok((docs, at))
}
