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
/// and indexes, which then replaces the target in one rename.
pub(super) fn write_out(
    engine: &Arc<Engine>,
    target: Namespace,
    docs: Vec<Document>,
    bypass: bool,
) -> Result<(), MongoError> {
    if target.is_system() {
        return Err(MongoError::new(
            ErrorCode::InvalidNamespace,
            format!("Invalid $out target namespace, {target}"),
        ));
    }
    let existing = engine.reader()?.collection(&target)?;
    if existing.as_ref().is_some_and(|m| m.timeseries().is_some()) {
        // mongod 7.0.3+ writes measurements through `$out`; Eddy does not yet.
        return Err(MongoError::new(
            ErrorCode::CommandNotSupported,
            format!("Eddy does not support $out into the time-series collection {target}"),
        ));
    }
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
    let options = existing
        .as_ref()
        .map(|m| m.options.clone())
        .unwrap_or_default();
    engine.create_collection(temp.clone(), options)?;
    let filled = (|| {
        if let Some(meta) = &existing {
            let specs: Vec<Document> = meta.indexes.iter().map(|i| i.spec.clone()).collect();
            if !specs.is_empty() {
                engine.create_indexes(temp.clone(), specs)?;
            }
        }
        if !docs.is_empty() {
            first_write_error(&engine.insert_bypassing(temp.clone(), docs, true, bypass)?)?;
        }
        engine.rename_collection(temp.clone(), target.clone(), true)
    })();
    if filled.is_err() {
        let _ = engine.drop_collection(temp);
    }
    filled
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
