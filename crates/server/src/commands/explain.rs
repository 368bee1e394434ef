//! `explain`: `{explain: {find|count|distinct|update|delete|findAndModify: ...}, verbosity?}`.
//!
//! Reports the plan the engine chooses (`IDHACK`, `IXSCAN` under `FETCH`, or `COLLSCAN`)
//! in mongod 7.0's `queryPlanner` shape; with `executionStats` or `allPlansExecution` it
//! also runs the query and reports what it returned and how long it took.

use std::time::Instant;

use bson::{doc, Bson, Document};
use eddy_codes::{ErrorCode, MongoError};
use eddy_engine::read::{plan, Plan};
use eddy_engine::CollectionMeta;

use super::data::{collection_arg, namespace, with_engine};
use super::query::{self, QuerySpec};
use crate::args::{opt_str, wrong_type};
use crate::command::{Command, CommandResult, Ctx};

pub struct Explain {
    command: Document,
    verbosity: Verbosity,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verbosity {
    QueryPlanner,
    ExecutionStats,
}

/// The filter a command to explain queries with.
fn filter_of(cmd_name: &str, cmd: &Document) -> Result<Document, MongoError> {
    let field = match cmd_name {
        "find" => "filter",
        "count" | "distinct" | "findAndModify" | "findandmodify" => "query",
        "update" => {
            return Ok(cmd
                .get_array("updates")
                .ok()
                .and_then(|u| u.first())
                .and_then(Bson::as_document)
                .and_then(|u| u.get_document("q").ok())
                .cloned()
                .unwrap_or_default())
        }
        "delete" => {
            return Ok(cmd
                .get_array("deletes")
                .ok()
                .and_then(|u| u.first())
                .and_then(Bson::as_document)
                .and_then(|u| u.get_document("q").ok())
                .cloned()
                .unwrap_or_default())
        }
        other => {
            return Err(MongoError::new(
                ErrorCode::CommandNotSupported,
                format!("Eddy cannot explain the '{other}' command"),
            ))
        }
    };
    Ok(cmd.get_document(field).cloned().unwrap_or_default())
}

fn winning_plan(meta: Option<&CollectionMeta>, filter: &Document) -> Document {
    let Some(meta) = meta else {
        return doc! {"stage": "EOF"};
    };
    match plan(meta, filter) {
        Plan::IdLookup(_) => doc! {"stage": "IDHACK"},
        Plan::IndexEquality { index, .. } => {
            let key = meta
                .index(&index)
                .map(|i| i.key_pattern())
                .unwrap_or_default();
            doc! {
                "stage": "FETCH",
                "filter": filter.clone(),
                "inputStage": {
                    "stage": "IXSCAN",
                    "keyPattern": key,
                    "indexName": index,
                    "isMultiKey": false,
                    "direction": "forward",
                },
            }
        }
        Plan::CollectionScan => {
            doc! {"stage": "COLLSCAN", "filter": filter.clone(), "direction": "forward"}
        }
    }
}

impl Command for Explain {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
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
        Ok(Explain { command, verbosity })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let cmd_name = self.command.keys().next().cloned().unwrap_or_default();
        let coll = collection_arg(&self.command, &cmd_name)?;
        let ns = namespace(&ctx, &coll);
        let filter = filter_of(&cmd_name, &self.command)?;
        let verbosity = self.verbosity;
        let command = self.command.clone();
        with_engine(&ctx, move |e| {
            let meta = e.reader()?.collection(&ns)?;
            if let Some(hint) = command
                .get("hint")
                .filter(|h| matches!(h, Bson::String(_) | Bson::Document(_)))
            {
                query::check_hint(meta.as_ref(), hint)?;
            }
            let winning = winning_plan(meta.as_ref(), &filter);
            let mut reply = doc! {
                "explainVersion": "1",
                "queryPlanner": {
                    "namespace": ns.to_string(),
                    "indexFilterSet": false,
                    "parsedQuery": filter.clone(),
                    "winningPlan": winning,
                    "rejectedPlans": [],
                },
            };
            if verbosity == Verbosity::ExecutionStats {
                let started = Instant::now();
                let spec = QuerySpec {
                    filter,
                    let_vars: command.get_document("let").cloned().unwrap_or_default(),
                    ..QuerySpec::default()
                };
                let n = query::run(e, &ns, &spec)?.len();
                reply.insert(
                    "executionStats",
                    doc! {
                        "executionSuccess": true,
                        "nReturned": n as i32,
                        "executionTimeMillis": started.elapsed().as_millis() as i64,
                    },
                );
            }
            reply.insert("command", command);
            reply.insert(
                "serverInfo",
                doc! {"host": "localhost", "version": crate::VERSION},
            );
            Ok(reply.into())
        })
        .await
    }
}
