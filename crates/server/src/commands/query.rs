//! Running a query for find, count, distinct and findAndModify: plan, filter, sort,
//! skip, limit, project. Pure engine work, run on the blocking pool.

use std::sync::Arc;

use bson::{doc, Bson, Document, Timestamp};
use eddy_codes::{ErrorCode, MongoError};
use eddy_engine::read::Reader;
use eddy_engine::{CollectionMeta, Engine, Namespace};
use eddy_query::collation::Collation;
use eddy_query::projection::Projection;
use eddy_query::sort::SortSpec;

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
}

/// The reader of a read command, and for a snapshot read the cluster time it reads at.
pub fn open_reader(
    engine: &Arc<Engine>,
    snapshot: Option<Option<Timestamp>>,
) -> Result<(Reader, Option<Timestamp>), MongoError> {
    match snapshot {
        Some(at) => {
            let (reader, ts) = engine.snapshot_reader(at)?;
            Ok((reader, Some(ts)))
        }
        None => Ok((engine.reader()?, None)),
    }
}

/// Evaluates a command's `let` document once (`$$CLUSTER_TIME` is the engine's).
pub fn evaluate_let(
    engine: &Arc<Engine>,
    spec: &Document,
) -> Result<Vec<(String, Bson)>, MongoError> {
    if spec.is_empty() {
        return Ok(Vec::new());
    }
    let env = eddy_query::expr::Env {
        cluster_time: Some(engine.cluster_time()),
        ..eddy_query::expr::Env::new()
    };
    eddy_query::expr::evaluate_let(spec, &env)
}

/// Checks that a hint names an index of the collection.
pub fn check_hint(meta: Option<&CollectionMeta>, hint: &Bson) -> Result<(), MongoError> {
    let bad = || {
        MongoError::bad_value(
            "error processing query: planner returned error :: caused by :: hint provided does not correspond to an existing index",
        )
    };
    let Some(meta) = meta else {
        return Ok(());
    };
    match hint {
        Bson::String(name) if name == "_id_" || meta.index(name).is_some() => Ok(()),
        Bson::String(_) => Err(bad()),
        Bson::Document(pattern) if pattern.is_empty() => Ok(()),
        Bson::Document(pattern) if pattern.contains_key("$natural") => Ok(()),
        Bson::Document(pattern) => {
            let is_id = pattern.len() == 1 && pattern.contains_key("_id");
            if is_id || meta.indexes.iter().any(|i| &i.key_pattern() == pattern) {
                Ok(())
            } else {
                Err(bad())
            }
        }
        _ => Err(MongoError::new(
            ErrorCode::FailedToParse,
            "hint must be a string or an object",
        )),
    }
}

/// The key pattern of the secondary index a hint names, if it names one.
fn hinted_pattern(meta: &CollectionMeta, hint: &Bson) -> Option<Document> {
    // `_id` and `$natural` hints name no secondary index, so they find nothing here.
    match hint {
        Bson::String(name) => meta.index(name).map(|i| i.key_pattern()),
        Bson::Document(p) => meta
            .indexes
            .iter()
            .map(|i| i.key_pattern())
            .find(|k| k == p),
        _ => None,
    }
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
    run_at(engine, ns, q).map(|(docs, _)| docs)
}

/// [`run`], with the cluster time a snapshot read read at.
pub fn run_at(
    engine: &Arc<Engine>,
    ns: &Namespace,
    q: &QuerySpec,
) -> Result<(Vec<Document>, Option<Timestamp>), MongoError> {
    let projection = q
        .projection
        .as_ref()
        .map(|p| Projection::parse_with_query(p, &q.filter))
        .transpose()?;
    // `{$natural: ±1}` as the sort (or hint) asks for storage order, not a field order.
    let natural = natural_direction(q.sort.as_ref())
        .or_else(|| natural_direction(q.hint.as_ref().and_then(Bson::as_document)));
    let sort = match &q.sort {
        Some(s) if natural_direction(Some(s)).is_some() => None,
        Some(s) if !s.is_empty() => Some(SortSpec::parse(s)?.with_collation(q.collation.clone())),
        _ => None,
    };
    // Parse the filter even when the collection does not exist: bad filters fail.
    let vars = evaluate_let(engine, &q.let_vars)?;
    let _ = eddy_query::filter::Filter::parse_collated(&q.filter, &vars, q.collation.as_ref())?;
    let (reader, at) = open_reader(engine, q.snapshot)?;
    if reader.view(ns)?.is_some() {
        drop(reader);
        return through_view(engine, ns, q, projection.as_ref());
    }
    let Some(meta) = reader.collection(ns)? else {
        return Ok((Vec::new(), at));
    };
    if let Some(hint) = &q.hint {
        check_hint(Some(&meta), hint)?;
    }
    // A hinted secondary index with no sort returns documents in that index's order,
    // as its index scan would.
    let sort = match (sort, q.hint.as_ref().and_then(|h| hinted_pattern(&meta, h))) {
        (None, Some(pattern)) => {
            Some(SortSpec::parse(&pattern)?.with_collation(q.collation.clone()))
        }
        (sort, _) => sort,
    };
    // Natural order is `_id` order (what a scan returns) except for a capped
    // collection (insertion order) or a reversed `$natural`: then the whole result is
    // read and reordered, so no early limit.
    let reorder = sort.is_none() && (meta.cap().is_some() || natural == Some(-1));
    let limit_hint = match (&sort, q.limit) {
        (None, Some(l)) if l > 0 && !reorder => Some((l + q.skip) as usize),
        _ => None,
    };
    let mut matched =
        reader.find_collated(&meta, &q.filter, &vars, q.collation.as_ref(), limit_hint)?;
    if let Some(sort) = &sort {
        matched.sort_by(|a, b| sort.compare(&a.doc, &b.doc));
    } else if reorder {
        if meta.cap().is_some() {
            reader.sort_natural(&meta, &mut matched)?;
        }
        if natural == Some(-1) {
            matched.reverse();
        }
    }
    let skip = usize::try_from(q.skip).unwrap_or(usize::MAX);
    let take = match q.limit {
        Some(l) if l > 0 => usize::try_from(l).unwrap_or(usize::MAX),
        _ => usize::MAX,
    };
    let docs = matched
        .into_iter()
        .skip(skip)
        .take(take)
        .map(|m| match &projection {
            Some(p) => p.apply(&m.doc, m.details.as_ref()),
            None => Ok(m.doc),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((docs, at))
}

/// A query on a view, run as mongod runs it: an aggregation of the view's pipeline
/// followed by the query's `$match`, `$sort`, `$skip` and `$limit`, then the projection.
fn through_view(
    engine: &Arc<Engine>,
    ns: &Namespace,
    q: &QuerySpec,
    projection: Option<&Projection>,
) -> Result<(Vec<Document>, Option<Timestamp>), MongoError> {
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
    let job = super::aggregate::Job {
        db: ns.db.clone(),
        coll: Some(ns.coll.clone()),
        pipeline,
        let_vars: Document::new(),
        local_sessions: Vec::new(),
        collation: q.collation.clone(),
        bypass_document_validation: false,
        snapshot: q.snapshot,
    };
    let (docs, at) = job.run_at(engine)?;
    let docs = match projection {
        Some(p) => docs
            .iter()
            .map(|d| p.apply(d, None))
            .collect::<Result<_, _>>()?,
        None => docs,
    };
    Ok((docs, at))
}
