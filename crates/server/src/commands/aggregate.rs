//! `aggregate`: `{aggregate: coll | 1, pipeline: [...], cursor: {batchSize?}, explain?, ...}`.
//!
//! A pipeline that starts with `$changeStream` opens a change stream
//! ([`super::change_stream`]); any other runs over the collection's documents.

use bson::{Bson, Document};
use eddy_codes::{ErrorCode, MongoError};

use super::change_stream;
use super::data::{check_collation, check_fields};
use crate::args::{missing, opt_doc, opt_integer, wrong_type};
use crate::command::{Command, CommandResult, Ctx};

pub struct Aggregate {
    /// `None` for `aggregate: 1` (database-level).
    coll: Option<String>,
    pipeline: Vec<Document>,
    batch_size: Option<u32>,
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
        check_collation(cmd, "aggregate")?;
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
        for (i, stage) in pipeline.iter().enumerate() {
            let name = stage_name(stage)?;
            if name == "$changeStream" && i != 0 {
                return Err(MongoError::location(
                    40602,
                    "$changeStream is only valid as the first stage in a pipeline",
                ));
            }
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
        Ok(Aggregate {
            coll,
            pipeline,
            batch_size,
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let mut stages = self.pipeline.into_iter();
        match stages.next() {
            Some(first) if first.contains_key("$changeStream") => {
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
                let rest: Vec<Document> = stages.collect();
                let filter = change_stream::event_pipeline(&rest)?;
                change_stream::open(&ctx, self.coll, &spec, filter, self.batch_size).await
            }
            _ => Err(MongoError::new(
                ErrorCode::CommandNotSupported,
                "aggregation pipelines other than $changeStream are not available in this build yet",
            )),
        }
    }
}
