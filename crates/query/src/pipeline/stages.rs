//! Every aggregation stage name mongod 7.0 knows, and what Eddy does with each: the one
//! table the parser, the server's checks and the Stable API list derive from.
//!
//! A name missing here is a typo of the user's (40324); a name here that Eddy does not
//! run is a gap of ours (115 CommandNotSupported).

use bson::Document;
use eddy_codes::{location, ErrorCode, MongoError};

/// What Eddy does with a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Parsed and run by [`super::Pipeline`].
    Runs,
    /// Run by the change-stream machinery (`$changeStream`, `$changeStreamSplitLargeEvent`),
    /// never by an ordinary pipeline.
    ChangeStream,
    /// Known, not run: 115 CommandNotSupported.
    Refused,
}

/// One stage of mongod 7.0's aggregation framework.
#[derive(Debug, Clone, Copy)]
pub struct StageInfo {
    pub name: &'static str,
    pub support: Support,
    /// Allowed after `$changeStream`.
    pub after_change_stream: bool,
    /// Allowed in a pipeline-style update (and `$merge`'s `whenMatched`).
    pub in_update: bool,
    /// In the Stable API's version 1 (others are refused with `apiStrict: true`).
    pub api_version_1: bool,
    /// Makes the pipeline's input, so only as its first stage (40602).
    pub first: bool,
    /// Runs with `{aggregate: 1}`, without a collection.
    pub collectionless: bool,
}

/// A stage that runs in ordinary pipelines, in API version 1, and nowhere special.
const fn runs(name: &'static str) -> StageInfo {
    StageInfo {
        name,
        support: Support::Runs,
        after_change_stream: false,
        in_update: false,
        api_version_1: true,
        first: false,
        collectionless: false,
    }
}

impl StageInfo {
    const fn refused(self) -> StageInfo {
        StageInfo {
            support: Support::Refused,
            ..self
        }
    }
    const fn change_stream(self) -> StageInfo {
        StageInfo {
            support: Support::ChangeStream,
            ..self
        }
    }
    /// Also allowed after `$changeStream`.
    const fn streams(self) -> StageInfo {
        StageInfo {
            after_change_stream: true,
            ..self
        }
    }
    /// Also allowed in a pipeline-style update.
    const fn updates(self) -> StageInfo {
        StageInfo {
            in_update: true,
            ..self
        }
    }
    /// Outside the Stable API's version 1.
    const fn not_api_1(self) -> StageInfo {
        StageInfo {
            api_version_1: false,
            ..self
        }
    }
    /// Makes the pipeline's input.
    const fn first(self) -> StageInfo {
        StageInfo {
            first: true,
            ..self
        }
    }
    /// Makes the pipeline's input without a collection.
    const fn collectionless(self) -> StageInfo {
        StageInfo {
            first: true,
            collectionless: true,
            ..self
        }
    }
}

/// mongod 7.0's stages, by name.
pub static STAGES: &[StageInfo] = &[
    runs("$addFields").streams().updates(),
    runs("$bucket"),
    runs("$bucketAuto"),
    runs("$changeStream").change_stream().collectionless(),
    runs("$changeStreamSplitLargeEvent")
        .change_stream()
        .streams(),
    runs("$collStats").not_api_1().first(),
    runs("$count"),
    runs("$currentOp").not_api_1().collectionless(),
    runs("$densify"),
    runs("$documents").collectionless(),
    runs("$facet"),
    runs("$fill").not_api_1(),
    runs("$geoNear"),
    runs("$graphLookup"),
    runs("$group"),
    runs("$indexStats").not_api_1().first(),
    runs("$limit"),
    runs("$listLocalSessions").not_api_1().collectionless(),
    runs("$listSampledQueries").refused().not_api_1(),
    runs("$listSearchIndexes").refused().not_api_1(),
    runs("$listSessions").refused().not_api_1(),
    runs("$lookup"),
    runs("$match").streams(),
    runs("$merge"),
    runs("$out"),
    runs("$planCacheStats").refused().not_api_1(),
    runs("$project").streams().updates(),
    runs("$redact").streams(),
    runs("$replaceRoot").streams().updates(),
    runs("$replaceWith").streams().updates(),
    runs("$sample"),
    runs("$search").refused().not_api_1(),
    runs("$searchMeta").refused().not_api_1(),
    runs("$set").streams().updates(),
    runs("$setWindowFields"),
    runs("$shardedDataDistribution").refused(),
    runs("$skip"),
    runs("$sort"),
    runs("$sortByCount"),
    runs("$unionWith"),
    runs("$unset").streams().updates(),
    runs("$unwind"),
    runs("$vectorSearch").refused().not_api_1(),
];

/// What Eddy knows of the stage `name` (`None`: mongod does not know it either).
pub fn stage(name: &str) -> Option<&'static StageInfo> {
    STAGES.iter().find(|s| s.name == name)
}

/// The stage a stage document names, checked as mongod checks it before anything else:
/// exactly one field (40323), a name mongod knows (40324).
pub fn known_stage(spec: &Document) -> Result<&'static StageInfo, MongoError> {
    if spec.len() != 1 {
        return Err(MongoError::location(
            40323,
            "A pipeline stage specification object must contain exactly one field.",
        ));
    }
    let name = spec.keys().next().map(String::as_str).unwrap_or_default();
    stage(name).ok_or_else(|| unrecognized(name))
}

/// With `apiStrict: true`, mongod refuses the stages outside the Stable API's version 1
/// (323 APIStrictError).
pub fn check_api_version_1(stage: &StageInfo) -> Result<(), MongoError> {
    match stage.api_version_1 {
        true => Ok(()),
        false => Err(MongoError::new(
            ErrorCode::APIStrictError,
            format!(
                "{} is not allowed with 'apiStrict: true' in API Version 1",
                stage.name
            ),
        )),
    }
}

pub(super) fn unrecognized(name: &str) -> MongoError {
    MongoError::location(
        location::UNRECOGNIZED_STAGE,
        format!("Unrecognized pipeline stage name: '{name}'"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_whole() {
        let names: Vec<&str> = STAGES.iter().map(|s| s.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted, "one entry per name, in order");
        assert_eq!(STAGES.len(), 43);
        // Lists that used to live beside the parser, now derived from the table.
        let where_ = |f: fn(&StageInfo) -> bool| -> Vec<&str> {
            STAGES.iter().filter(|s| f(s)).map(|s| s.name).collect()
        };
        assert_eq!(
            where_(|s| s.in_update),
            [
                "$addFields",
                "$project",
                "$replaceRoot",
                "$replaceWith",
                "$set",
                "$unset"
            ]
        );
        assert_eq!(
            where_(|s| s.after_change_stream),
            [
                "$addFields",
                "$changeStreamSplitLargeEvent",
                "$match",
                "$project",
                "$redact",
                "$replaceRoot",
                "$replaceWith",
                "$set",
                "$unset"
            ]
        );
        assert_eq!(
            where_(|s| !s.api_version_1),
            [
                "$collStats",
                "$currentOp",
                "$fill",
                "$indexStats",
                "$listLocalSessions",
                "$listSampledQueries",
                "$listSearchIndexes",
                "$listSessions",
                "$planCacheStats",
                "$search",
                "$searchMeta",
                "$vectorSearch"
            ]
        );
        assert_eq!(
            where_(|s| s.first),
            [
                "$changeStream",
                "$collStats",
                "$currentOp",
                "$documents",
                "$indexStats",
                "$listLocalSessions"
            ]
        );
        assert_eq!(
            where_(|s| s.collectionless),
            [
                "$changeStream",
                "$currentOp",
                "$documents",
                "$listLocalSessions"
            ]
        );
    }

    #[test]
    fn names_are_checked_as_mongod_does() {
        let code = |d: Document| known_stage(&d).map(|s| s.name).map_err(|e| e.code);
        assert_eq!(code(bson::doc! {"$match": {}}), Ok("$match"));
        assert_eq!(code(bson::doc! {"$matc": {}}), Err(40324));
        assert_eq!(code(bson::doc! {"$match": {}, "$sort": {}}), Err(40323));
        assert_eq!(code(bson::doc! {}), Err(40323));
        let strict = |name| check_api_version_1(stage(name).expect("known")).map_err(|e| e.code);
        assert_eq!(strict("$match"), Ok(()));
        assert_eq!(strict("$collStats"), Err(323));
    }
}
