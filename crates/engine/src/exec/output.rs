//! The writing end of a pipeline: `$out` fills a temporary collection carrying the
//! target's options and indexes, then renames it over the target, as mongod does;
//! `$merge` matches each result to the target by its `on` fields and inserts, replaces
//! or merges it through the engine's write path.

use std::sync::Arc;

use bson::{Bson, Document};
use eddy_codes::{ErrorCode, MongoError};
use eddy_query::expr::Env;
use eddy_query::pipeline::{MergeAction, MergeSpec};

use crate::write::{UpdateOp, WriteOutcome};
use crate::{Engine, Namespace};

fn first_write_error(out: &WriteOutcome) -> Result<(), MongoError> {
    match out.errors.first() {
        Some((_, e)) => Err(e.clone()),
        None => Ok(()),
    }
}

/// `$out`: the results go to a temporary collection carrying the target's options
/// and indexes, which then replaces the target in one rename. With `timeseries`
/// (mongod 7.0.3+) the target is a time-series collection: created with those options,
/// or, if it exists, checked to have them (7406103; 7268700 and 7268703 when it is a
/// collection or view of another kind); a time-series target named without them keeps
/// its options. Measurements are checked as inserts are.
pub(super) fn write_out(
    engine: &Arc<Engine>,
    target: Namespace,
    timeseries: Option<&Document>,
    docs: Vec<Document>,
    bypass: bool,
) -> Result<(), MongoError> {
    if target.is_system() {
        return Err(MongoError::new(
            ErrorCode::InvalidNamespace,
            format!("Invalid $out target namespace, {target}"),
        ));
    }
    let requested = match timeseries {
        Some(ts) => Some(crate::timeseries::parse_options(
            &Bson::Document(ts.clone()),
            "$out.timeseries",
        )?),
        None => None,
    };
    let reader = engine.reader()?;
    if requested.is_some() && reader.view(&target)?.is_some() {
        return Err(MongoError::location(
            7268703,
            "Cannot create a time-series collection from a non time-series view.",
        ));
    }
    let existing = reader.collection(&target)?;
    if let (Some(requested), Some(given)) = (&requested, timeseries) {
        match existing
            .as_ref()
            .map(|m| m.options.get_document("timeseries"))
        {
            Some(Ok(found)) if !crate::timeseries::options_are_equal(requested, found) => {
                return Err(MongoError::location(
                    7406103,
                    format!(
                        "Time-series options inputted must match the existing time-series collection. Received: {}Found: {}",
                        crate::display_value(&Bson::Document(idl_order(given))),
                        crate::display_value(&Bson::Document(found.clone()))
                    ),
                ));
            }
            Some(Ok(_)) => {}
            Some(Err(_)) => {
                return Err(MongoError::location(
                    7268700,
                    "Cannot create a time-series collection from a non time-series collection.",
                ))
            }
            None => {}
        }
    }
    drop(reader);
    if existing.as_ref().is_some_and(|m| m.cap().is_some()) {
        return Err(MongoError::location(
            17152,
            format!("namespace '{target}' is capped so it can't be used for $out"),
        ));
    }
    let temp = Namespace::new(
        target.db.clone(),
        format!("tmp.agg_out.{}", bson::oid::ObjectId::new().to_hex()),
    );
    let options = match (&existing, requested) {
        (Some(m), _) => m.options.clone(),
        (None, Some(ts)) => {
            // The temporary collection is created as `create` would be (mongod runs it).
            crate::timeseries::check_fields(&temp.to_string(), &ts)?;
            bson::doc! {"timeseries": ts}
        }
        (None, None) => Document::new(),
    };
    engine.create_collection(temp.clone(), options)?;
    let filled = (|| {
        if let Some(meta) = &existing {
            // A time-series collection was created with its default index already.
            let present: Vec<String> = engine
                .reader()?
                .collection(&temp)?
                .map(|t| t.indexes.iter().map(|i| i.name().to_owned()).collect())
                .unwrap_or_default();
            let specs: Vec<Document> = meta
                .indexes
                .iter()
                .filter(|i| !present.iter().any(|p| p == i.name()))
                .map(|i| i.spec.clone())
                .collect();
            if !specs.is_empty() {
                engine.create_indexes(temp.clone(), specs)?;
            }
        }
        if !docs.is_empty() {
            first_write_error(&engine.insert_bypassing(temp.clone(), docs, true, bypass)?)?;
        }
        engine.rename(temp.clone(), target.clone(), true, true)
    })();
    if filled.is_err() {
        let _ = engine.drop_collection(temp);
    }
    filled
}

/// Time-series options in the order of mongod's `TimeseriesOptions` IDL, as its
/// `toBSON()` gives them in messages.
fn idl_order(given: &Document) -> Document {
    let mut out = Document::new();
    for field in [
        "timeField",
        "metaField",
        "granularity",
        "bucketRoundingSeconds",
        "bucketMaxSpanSeconds",
    ] {
        if let Some(v) = given.get(field) {
            out.insert(field, v.clone());
        }
    }
    out
}

/// `$merge`: each result is matched to the target by its `on` fields and inserted,
/// replaced, merged or dropped as the spec says.
pub(super) fn write_merge(
    engine: &Arc<Engine>,
    db: &str,
    spec: &MergeSpec,
    docs: Vec<Document>,
    env: &Env,
    bypass: bool,
) -> Result<(), MongoError> {
    let target = Namespace::new(
        spec.db.clone().unwrap_or_else(|| db.to_owned()),
        spec.coll.clone(),
    );
    let reader = engine.reader()?;
    let meta = reader.collection(&target)?;
    if meta.as_ref().is_some_and(|m| m.timeseries().is_some()) {
        // A view of its buckets in mongod, which `$merge` cannot write to.
        return Err(MongoError::new(
            ErrorCode::CommandNotSupportedOnView,
            format!("Namespace {target} is a timeseries collection: $merge cannot write to it"),
        ));
    }
    if spec.on != ["_id"] {
        let unique = meta.as_ref().is_some_and(|m| {
            m.indexes.iter().any(|i| {
                let key = i.key_pattern();
                i.spec.get_bool("unique").unwrap_or(false)
                    && key.len() == spec.on.len()
                    && spec.on.iter().all(|f| key.contains_key(f))
            })
        });
        if !unique {
            return Err(MongoError::location(
                51183,
                "Cannot find index to verify that join fields will be unique",
            ));
        }
    }
    let mut inserts = Vec::new();
    let mut updates = Vec::new();
    for doc in docs {
        let existing = match (spec.target_filter(&doc)?, &meta) {
            (Some(filter), Some(meta)) => reader.find(meta, &filter, Some(1))?.into_iter().next(),
            _ => None,
        };
        let id_filter = existing
            .as_ref()
            .and_then(|m| m.doc.get("_id").cloned())
            .map(|id| bson::doc! {"_id": {"$eq": id}});
        match spec.merge(doc, existing.as_ref().map(|m| &m.doc), env)? {
            MergeAction::Insert(d) => inserts.push(d),
            MergeAction::Replace(d) => updates.push((id_filter, Bson::Document(d))),
            MergeAction::Set(fields) if !fields.is_empty() => {
                updates.push((id_filter, Bson::Document(bson::doc! {"$set": fields})))
            }
            MergeAction::Set(_) | MergeAction::Nothing => {}
        }
    }
    drop(reader);
    let ops: Vec<UpdateOp> = updates
        .into_iter()
        .filter_map(|(filter, update)| {
            filter.map(|filter| UpdateOp {
                filter,
                update,
                multi: false,
                upsert: false,
                array_filters: None,
                let_vars: Vec::new(),
                // The `on` lookup matched the target by its own values, under no collation.
                collation: None,
                bypass_document_validation: bypass,
                hint: None,
            })
        })
        .collect();
    if !ops.is_empty() {
        first_write_error(&engine.update(target.clone(), ops, true)?)?;
    }
    if !inserts.is_empty() {
        first_write_error(&engine.insert_bypassing(target, inserts, true, bypass)?)?;
    }
    Ok(())
}
