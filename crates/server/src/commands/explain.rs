//! `explain`: `{explain: {find|count|distinct|update|delete|findAndModify|aggregate: ...},
//! verbosity?}`, and `aggregate` with `explain: true`.
//!
//! Reports the plan the engine chooses in mongod 7.0's classic `queryPlanner` shape:
//! `COLLSCAN`, `IDHACK`, `TEXT_MATCH` for `$text`, or `FETCH` over `IXSCAN` (with `keyPattern`, `indexName`,
//! `isMultiKey`, `multiKeyPaths`, `direction` and mongod's `indexBounds` strings), under
//! `SORT` when the order is not the index's, `SKIP`, `LIMIT` and a projection stage;
//! `COUNT`, `UPDATE` and `DELETE` on top for those commands. With `executionStats` or
//! `allPlansExecution` it also runs the query (never the write) and reports what it
//! returned and how many index keys and documents it read.
//!
//! An aggregation is explained as mongod 7.0's classic engine shows it: the read of its
//! collection (the leading `$match`, and a `$sort`/`$limit` an index serves) as a
//! `$cursor` stage holding that query's `queryPlanner` (and `executionStats`), then the
//! other stages as given, each with `nReturned` and `executionTimeMillisEstimate` when
//! run. A pipeline the read takes on whole is shown as a `find` is.

use std::time::Instant;

use bson::{doc, Bson, Document};
use eddy_codes::{ErrorCode, MongoError};
use eddy_engine::plan::{Access, IndexScan, Plan, TextScan};

use super::aggregate::Aggregate;
use super::data::{collection_arg, namespace, with_engine};
use crate::args::{opt_str, wrong_type};
use crate::command::{Command, CommandResult, Ctx};
use eddy_engine::exec::{query, Explained, QuerySpec};

pub struct Explain {
    command: Document,
    target: Target,
    verbosity: Verbosity,
}

/// What an explain explains, parsed as the command itself parses it.
enum Target {
    /// A query: its spec and the stage a write or count puts on top of its plan.
    Query {
        spec: Box<QuerySpec>,
        top: Option<&'static str>,
    },
    Aggregate(Box<Aggregate>),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verbosity {
    QueryPlanner,
    ExecutionStats,
}

/// The first statement's `q` of an `update` or `delete`.
fn first_statement(cmd: &Document, field: &str) -> Document {
    cmd.get_array(field)
        .ok()
        .and_then(|u| u.first())
        .and_then(Bson::as_document)
        .cloned()
        .unwrap_or_default()
}

/// The hint of a statement or command, when it is a name or a pattern.
fn hint_of(d: &Document) -> Option<Bson> {
    d.get("hint")
        .filter(|h| matches!(h, Bson::String(_) | Bson::Document(_)))
        .cloned()
}

/// The query a command to explain runs, and the stage it adds on top.
fn query_of(
    cmd_name: &str,
    cmd: &Document,
    ctx: &Ctx,
) -> Result<(QuerySpec, Option<&'static str>), MongoError> {
    Ok(match cmd_name {
        "find" => (super::find::Find::parse(cmd, ctx)?.query, None),
        "count" => (super::count::Count::parse(cmd, ctx)?.query, Some("COUNT")),
        "distinct" => (super::distinct::Distinct::parse(cmd, ctx)?.query, None),
        "findAndModify" | "findandmodify" => {
            let top = if cmd.get_bool("remove").unwrap_or(false) {
                "DELETE"
            } else {
                "UPDATE"
            };
            let spec = QuerySpec {
                filter: cmd.get_document("query").cloned().unwrap_or_default(),
                sort: cmd.get_document("sort").ok().cloned(),
                hint: hint_of(cmd),
                limit: Some(1),
                let_vars: cmd.get_document("let").cloned().unwrap_or_default(),
                ..QuerySpec::default()
            };
            (spec, Some(top))
        }
        "update" | "delete" => {
            let (field, top) = if cmd_name == "update" {
                ("updates", "UPDATE")
            } else {
                ("deletes", "DELETE")
            };
            let statement = first_statement(cmd, field);
            let one = if cmd_name == "update" {
                !statement.get_bool("multi").unwrap_or(false)
            } else {
                matches!(
                    statement.get("limit"),
                    Some(Bson::Int32(1) | Bson::Int64(1))
                ) || statement.get_f64("limit").ok() == Some(1.0)
            };
            let spec = QuerySpec {
                filter: statement.get_document("q").cloned().unwrap_or_default(),
                hint: hint_of(&statement),
                limit: one.then_some(1),
                let_vars: cmd.get_document("let").cloned().unwrap_or_default(),
                ..QuerySpec::default()
            };
            (spec, Some(top))
        }
        other => {
            return Err(MongoError::new(
                ErrorCode::CommandNotSupported,
                format!("Eddy cannot explain the '{other}' command"),
            ))
        }
    })
}

/// `FETCH` over `IXSCAN` for an index scan.
fn index_scan_stages(scan: &IndexScan, residual: Document) -> Document {
    let mut ixscan = doc! {
        "stage": "IXSCAN",
        "keyPattern": scan.key_pattern.clone(),
        "indexName": &scan.name,
    };
    if let Some(c) = &scan.collation {
        ixscan.insert("collation", c.clone());
    }
    ixscan.insert("isMultiKey", scan.is_multikey());
    if let Some(paths) = scan.explain_multikey_paths() {
        ixscan.insert("multiKeyPaths", paths);
    }
    ixscan.insert("isUnique", scan.unique);
    ixscan.insert("isSparse", scan.sparse);
    ixscan.insert("isPartial", scan.partial);
    ixscan.insert("indexVersion", 2);
    ixscan.insert("direction", scan.direction.name());
    ixscan.insert("indexBounds", scan.explain_bounds());
    let mut fetch = doc! {"stage": "FETCH"};
    if !residual.is_empty() {
        fetch.insert("filter", residual);
    }
    fetch.insert("inputStage", ixscan);
    fetch
}

/// mongod's stages of a `$text` query: `TEXT_MATCH` (phrases and negations) over
/// `FETCH` over `TEXT_OR` (scores summed per document) over one backward `IXSCAN` of
/// the text index per word looked up.
fn text_stages(scan: &TextScan) -> Document {
    let index_prefix: Document = scan
        .prefix
        .iter()
        .map(|(f, v, _)| (f.clone(), v.clone()))
        .collect();
    let scans: Vec<Bson> = scan
        .search
        .terms_for_bounds
        .iter()
        .map(|_| {
            Bson::Document(doc! {
                "stage": "IXSCAN",
                "keyPattern": scan.key_pattern.clone(),
                "indexName": &scan.name,
                "isMultiKey": true,
                "isUnique": false,
                "isSparse": false,
                "isPartial": false,
                "indexVersion": 2,
                "direction": "backward",
                "indexBounds": {},
            })
        })
        .collect();
    let mut or = doc! {"stage": "TEXT_OR"};
    match <[Bson; 1]>::try_from(scans) {
        Ok([one]) => or.insert("inputStage", one),
        Err(many) => or.insert("inputStages", many),
    };
    doc! {
        "stage": "TEXT_MATCH",
        "indexPrefix": index_prefix,
        "indexName": &scan.name,
        "parsedTextQuery": scan.search.explain(),
        "textIndexVersion": eddy_query::text::TEXT_INDEX_VERSION,
        "inputStage": {"stage": "FETCH", "inputStage": or},
    }
}

/// The conjuncts of `filter` an index scan does not answer exactly by its bounds
/// (what mongod leaves in the `FETCH` stage's filter): everything except top-level
/// comparisons on key fields that hold no arrays, which the bounds answer exactly.
fn residual_filter(filter: &Document, scan: &IndexScan) -> Document {
    let Some(bounds) = &scan.bounds else {
        return filter.clone();
    };
    let exact_field = |field: &str| {
        bounds.iter().enumerate().any(|(i, b)| {
            b.field == field
                && scan
                    .multikey_paths
                    .as_ref()
                    .is_some_and(|p| p.get(i).is_some_and(Vec::is_empty))
        })
    };
    let exact_value = |v: &Bson| match v {
        Bson::Null
        | Bson::Undefined
        | Bson::Array(_)
        | Bson::MinKey
        | Bson::MaxKey
        | Bson::RegularExpression(_) => false,
        Bson::Double(d) => !d.is_nan(),
        _ => true,
    };
    let exact = |field: &str, v: &Bson| {
        if !exact_field(field) {
            return false;
        }
        match v {
            Bson::Document(ops) if ops.keys().next().is_some_and(|k| k.starts_with('$')) => {
                ops.iter().all(|(op, arg)| match op.as_str() {
                    "$eq" | "$gt" | "$gte" | "$lt" | "$lte" => exact_value(arg),
                    "$in" => arg
                        .as_array()
                        .is_some_and(|items| items.iter().all(exact_value)),
                    _ => false,
                })
            }
            other => exact_value(other),
        }
    };
    filter
        .iter()
        .filter(|(k, v)| !exact(k, v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The stage name of a projection: mongod's `PROJECTION_SIMPLE` for top-level
/// inclusions or exclusions, `PROJECTION_DEFAULT` otherwise.
fn projection_stage(p: &Document) -> &'static str {
    let simple = p.iter().all(|(k, v)| {
        !k.contains('.')
            && matches!(
                v,
                Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Boolean(_)
            )
    });
    if simple {
        "PROJECTION_SIMPLE"
    } else {
        "PROJECTION_DEFAULT"
    }
}

/// mongod 7.0's `winningPlan` for a plan and the rest of the query.
fn winning_plan(plan: Option<&Plan>, spec: &QuerySpec, top: Option<&str>) -> Document {
    let Some(plan) = plan else {
        return doc! {"stage": "EOF"};
    };
    let mut stage = match &plan.access {
        Access::CollScan(direction) => {
            let mut d = doc! {"stage": "COLLSCAN"};
            if !spec.filter.is_empty() {
                d.insert("filter", spec.filter.clone());
            }
            d.insert("direction", direction.name());
            d
        }
        Access::IdHack(_) => doc! {"stage": "IDHACK"},
        Access::IndexScan(scan) => index_scan_stages(scan, residual_filter(&spec.filter, scan)),
        Access::Text(scan) => text_stages(scan),
    };
    let limit = spec.limit.filter(|l| *l > 0);
    let wrap = |name: &str, field: &str, n: u64, input: Document| {
        doc! {"stage": name, field: i64::try_from(n).unwrap_or(i64::MAX), "inputStage": input}
    };
    let sort = spec
        .sort
        .as_ref()
        .filter(|s| !s.is_empty() && !s.contains_key("$natural"));
    if let (Some(sort), false) = (sort, plan.sorted) {
        let mut d = doc! {
            "stage": "SORT",
            "sortPattern": sort.clone(),
            "memLimit": 104_857_600_i64,
        };
        if let Some(l) = limit {
            d.insert(
                "limitAmount",
                i64::try_from(l.saturating_add(spec.skip)).unwrap_or(i64::MAX),
            );
        }
        d.insert("type", "simple");
        d.insert("inputStage", stage);
        stage = d;
        if spec.skip > 0 {
            stage = wrap("SKIP", "skipAmount", spec.skip, stage);
        }
    } else {
        if spec.skip > 0 {
            stage = wrap("SKIP", "skipAmount", spec.skip, stage);
        }
        if let Some(l) = limit {
            stage = wrap("LIMIT", "limitAmount", l, stage);
        }
    }
    if let Some(p) = spec.projection.as_ref().filter(|p| !p.is_empty()) {
        stage = doc! {
            "stage": projection_stage(p),
            "transformBy": p.clone(),
            "inputStage": stage,
        };
    }
    if let Some(top) = top {
        stage = doc! {"stage": top, "inputStage": stage};
    }
    stage
}

impl Command for Explain {
    fn parse(cmd: &Document, ctx: &Ctx) -> Result<Self, MongoError> {
        let command = match cmd.get("explain") {
            Some(Bson::Document(d)) if !d.is_empty() => d.clone(),
            Some(v) => return Err(wrong_type("explain", "explain", v, "type 'object'")),
            None => return Err(crate::args::missing("explain", "explain")),
        };
        let verbosity = match opt_str(cmd, "explain", "verbosity")?.unwrap_or("allPlansExecution") {
            "queryPlanner" => Verbosity::QueryPlanner,
            "executionStats" | "allPlansExecution" => Verbosity::ExecutionStats,
            other => {
                return Err(MongoError::bad_value(format!(
                "Enumeration value '{other}' for field 'explain.verbosity' is not a valid value."
            )))
            }
        };
        let cmd_name = command.keys().next().cloned().unwrap_or_default();
        let target = match cmd_name.as_str() {
            "aggregate" => Target::Aggregate(Box::new(Aggregate::parse(&command, ctx)?)),
            _ => {
                let (spec, top) = query_of(&cmd_name, &command, ctx)?;
                Target::Query {
                    spec: Box::new(spec),
                    top,
                }
            }
        };
        Ok(Explain {
            command,
            target,
            verbosity,
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let cmd_name = self.command.keys().next().cloned().unwrap_or_default();
        let coll = collection_arg(&self.command, &cmd_name)?;
        let ns = namespace(&ctx, &coll);
        let Explain {
            command,
            target,
            verbosity,
        } = self;
        let (mut spec, top) = match target {
            Target::Query { spec, top } => (*spec, top),
            Target::Aggregate(agg) => {
                let execute = verbosity == Verbosity::ExecutionStats;
                return aggregate(&ctx, *agg, command, execute).await;
            }
        };
        // A query naming no collation runs under the collection's or view's default.
        let names_collation =
            command.contains_key("collation") || matches!(top, Some("UPDATE" | "DELETE"));
        with_engine(&ctx, move |e| {
            e.apply_default_collation(&ns, names_collation, &mut spec.collation)?;
            if e.reader()?.view(&ns)?.is_some() {
                // A view's query is explained as the aggregation it runs, as in mongod.
                let execute = verbosity == Verbosity::ExecutionStats;
                let explained = query::view_aggregation(&ns, &spec).explain(e, execute)?;
                return Ok(aggregate_reply(explained, command).into());
            }
            let mut stats = None;
            let plan = match verbosity {
                Verbosity::QueryPlanner => query::plan_only(e, &ns, &spec)?,
                Verbosity::ExecutionStats => {
                    let started = Instant::now();
                    let outcome = query::execute(e, &ns, &spec)?;
                    // A write's plan returns nothing; it would change what it read.
                    let returned = if top.is_some_and(|t| t != "COUNT") {
                        0
                    } else {
                        outcome.docs.len()
                    };
                    stats = Some(doc! {
                        "executionSuccess": true,
                        "nReturned": returned as i64,
                        "executionTimeMillis": started.elapsed().as_millis() as i64,
                        "totalKeysExamined": outcome.stats.keys_examined as i64,
                        "totalDocsExamined": outcome.stats.docs_examined as i64,
                    });
                    outcome.plan
                }
            };
            let winning = winning_plan(plan.as_ref(), &spec, top);
            let mut reply = doc! {"explainVersion": "1"};
            reply.extend(query_explain(&ns.to_string(), &spec.filter, winning, stats));
            Ok(finish_reply(reply, command).into())
        })
        .await
    }
}

/// A query's `queryPlanner` and, when it ran, `executionStats` (with `executionStages`
/// the winning plan).
fn query_explain(
    ns: &str,
    filter: &Document,
    winning: Document,
    stats: Option<Document>,
) -> Document {
    let mut out = doc! {
        "queryPlanner": {
            "namespace": ns,
            "indexFilterSet": false,
            "parsedQuery": filter.clone(),
            "winningPlan": winning.clone(),
            "rejectedPlans": [],
        },
    };
    if let Some(mut stats) = stats {
        stats.insert("executionStages", winning);
        out.insert("executionStats", stats);
    }
    out
}

/// The fields every explain reply ends with.
fn finish_reply(mut reply: Document, command: Document) -> Document {
    reply.insert("command", command);
    reply.insert(
        "serverInfo",
        doc! {"host": "localhost", "version": crate::VERSION},
    );
    reply
}

/// Explains an aggregation (`execute`: the `executionStats` verbosities).
pub(super) async fn aggregate(
    ctx: &Ctx,
    agg: Aggregate,
    command: Document,
    execute: bool,
) -> CommandResult {
    let job = agg.into_job(ctx)?;
    let explained = with_engine(ctx, move |e| job.explain(e, execute)).await?;
    Ok(aggregate_reply(explained, command).into())
}

/// mongod's explain of an aggregation.
fn aggregate_reply(explained: Explained, command: Document) -> Document {
    let source = explained.source.as_ref().map(|source| {
        let spec = QuerySpec {
            filter: source.filter.clone(),
            sort: source.sort.clone(),
            limit: source.limit.map(|l| l as u64),
            ..QuerySpec::default()
        };
        let stats = source.executed.map(|run| {
            doc! {
                "executionSuccess": true,
                "nReturned": run.returned as i64,
                "executionTimeMillis": run.millis as i64,
                "totalKeysExamined": run.keys_examined as i64,
                "totalDocsExamined": run.docs_examined as i64,
            }
        });
        let winning = winning_plan(source.plan.as_ref(), &spec, None);
        query_explain(&source.ns.to_string(), &source.filter, winning, stats)
    });
    let mut reply = doc! {"explainVersion": "1"};
    match source {
        // Nothing runs after the read: mongod shows the query alone.
        Some(query) if explained.stages.is_empty() => reply.extend(query),
        source => {
            let mut stages = Vec::with_capacity(explained.stages.len() + 1);
            if let Some(query) = source {
                let mut cursor = doc! {"$cursor": query};
                if let Some(run) = explained.source.as_ref().and_then(|s| s.executed) {
                    cursor.insert("nReturned", run.returned as i64);
                    cursor.insert("executionTimeMillisEstimate", run.millis as i64);
                }
                stages.push(cursor);
            }
            for stage in explained.stages {
                let mut d = stage.spec;
                if let Some((returned, millis)) = stage.executed {
                    d.insert("nReturned", returned as i64);
                    d.insert("executionTimeMillisEstimate", millis as i64);
                }
                stages.push(d);
            }
            reply.insert("stages", stages);
        }
    }
    finish_reply(reply, command)
}
