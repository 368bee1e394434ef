//! The stages after `$changeStream`, applied to each event.

use std::sync::Arc;

use bson::{Bson, Document, RawDocumentBuf};
use eddy_codes::MongoError;
use eddy_query::collation::Collation;
use eddy_query::expr::Env;
use eddy_query::filter::Filter;
use eddy_query::pipeline::Pipeline;

use super::event::Event;

/// The stage that asks for events over 16 MB to be split into fragments (the stream
/// splits them).
const SPLIT_STAGE: &str = "$changeStreamSplitLargeEvent";

/// What a pipeline did with an event.
#[derive(Debug)]
pub enum Passed {
    /// Passed as it is: its bytes go to the client unchanged.
    Unchanged,
    /// Passed, transformed.
    Changed(Document),
    Dropped,
}

/// A stream's pipeline after `$changeStream`.
#[derive(Debug, Default)]
pub struct EventPipeline {
    /// `None`: no stages.
    pipeline: Option<Pipeline>,
    /// Every stage is a `$match`: events are tested by reference and never copied.
    only_matches: bool,
    /// The pipeline ended with `$changeStreamSplitLargeEvent`.
    split: bool,
    /// `$$NOW` is fixed when the stream opens.
    env: Env,
}

impl EventPipeline {
    /// Parses the user's stages after `$changeStream`: only the stages mongod allows
    /// there; `$changeStreamSplitLargeEvent` only last, with an empty argument. The
    /// command's `collation` applies to their `$match`es and `$sort`s, as in mongod.
    pub fn parse(
        stages: &[Document],
        collation: Option<&Arc<Collation>>,
    ) -> Result<EventPipeline, MongoError> {
        let split = stages.last().is_some_and(|s| s.contains_key(SPLIT_STAGE));
        if let Some(last) = stages.last().filter(|_| split) {
            if !matches!(last.get(SPLIT_STAGE), Some(Bson::Document(d)) if d.is_empty()) {
                return Err(MongoError::location(
                    7182800,
                    "$changeStreamSplitLargeEvent takes an empty document {}",
                ));
            }
        }
        let stages = if split {
            &stages[..stages.len() - 1]
        } else {
            stages
        };
        if stages.iter().any(|s| s.contains_key(SPLIT_STAGE)) {
            return Err(MongoError::location(
                7182802,
                "$changeStreamSplitLargeEvent must be the last stage in the pipeline",
            ));
        }
        let pipeline = if stages.is_empty() {
            None
        } else {
            Some(Pipeline::parse_change_stream(stages)?.collated(collation))
        };
        Ok(EventPipeline {
            only_matches: pipeline.as_ref().is_none_or(Pipeline::only_matches),
            pipeline,
            split,
            env: Env::new(),
        })
    }

    /// The filter of the first stage, if it is a `$match`.
    pub fn leading_filter(&self) -> Option<&Filter> {
        self.pipeline.as_ref().and_then(Pipeline::leading_filter)
    }

    /// Whether events over 16 MB are split into fragments instead of failing the stream.
    pub fn splits_large_events(&self) -> bool {
        self.split
    }

    /// Runs the pipeline on one event.
    pub fn apply(&self, event: &Event) -> Result<Passed, MongoError> {
        let Some(pipeline) = &self.pipeline else {
            return Ok(Passed::Unchanged);
        };
        let doc = event.document()?;
        if self.only_matches {
            return Ok(if pipeline.passes(doc, &self.env)? {
                Passed::Unchanged
            } else {
                Passed::Dropped
            });
        }
        Ok(match pipeline.apply_one(doc.clone(), &self.env)? {
            Some(d) => Passed::Changed(d),
            None => Passed::Dropped,
        })
    }
}

/// An event as a stream returns it: shared with other streams, or its own.
pub type StreamEvent = Arc<Event>;

/// The event of a transformed document.
pub fn owned_event(doc: Document) -> Result<StreamEvent, MongoError> {
    let raw = RawDocumentBuf::try_from(&doc)
        .map_err(|e| MongoError::internal(format!("cannot encode an event: {e}")))?;
    Ok(Arc::new(Event::with_document(raw, doc)))
}
