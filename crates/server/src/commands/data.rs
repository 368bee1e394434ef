//! Shared parsing for the data commands (CRUD, catalog): the collection argument, strict
//! field checking as mongod's IDL parsers do it, write-error shapes, and running engine
//! work on the blocking pool.

use std::sync::Arc;

use bson::{Bson, Document};
use eddy_codes::{ErrorCode, MongoError};
use eddy_engine::{Engine, Namespace, WriteOutcome};

use crate::args::wrong_type;
use crate::command::Ctx;

/// Fields every command accepts besides its own (mongod's generic arguments).
pub const GENERIC_FIELDS: &[&str] = &[
    "$db",
    "lsid",
    "txnNumber",
    "stmtId",
    "stmtIds",
    "$clusterTime",
    "$readPreference",
    "$client",
    "$audit",
    "readConcern",
    "writeConcern",
    "comment",
    "maxTimeMS",
    "apiVersion",
    "apiStrict",
    "apiDeprecationErrors",
    "autocommit",
    "startTransaction",
    "mayBypassWriteBlocking",
    "$queryOptions",
];

/// Refuses fields that are neither the command's own nor generic, with mongod's
/// 40415 "BSON field 'insert.foo' is an unknown field.".
pub fn check_fields(cmd: &Document, command: &str, allowed: &[&str]) -> Result<(), MongoError> {
    for key in cmd.keys().skip(1) {
        if !allowed.contains(&key.as_str()) && !GENERIC_FIELDS.contains(&key.as_str()) {
            return Err(MongoError::location(
                eddy_codes::location::UNKNOWN_FIELD,
                format!("BSON field '{command}.{key}' is an unknown field."),
            ));
        }
    }
    Ok(())
}

/// Refuses unknown fields of one statement of a write batch (`update.updates.foo`).
pub fn check_statement_fields(
    stmt: &Document,
    path: &str,
    allowed: &[&str],
) -> Result<(), MongoError> {
    for key in stmt.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(MongoError::location(
                eddy_codes::location::UNKNOWN_FIELD,
                format!("BSON field '{path}.{key}' is an unknown field."),
            ));
        }
    }
    Ok(())
}

/// The collection named by the command's first field (`{insert: "coll", ...}`).
pub fn collection_arg(cmd: &Document, command: &str) -> Result<String, MongoError> {
    match cmd.iter().next() {
        Some((_, Bson::String(s))) if !s.is_empty() => Ok(s.clone()),
        Some((_, Bson::String(_))) => Err(MongoError::new(
            ErrorCode::InvalidNamespace,
            "Invalid namespace specified: empty collection name",
        )),
        Some((_, v)) => Err(MongoError::new(
            ErrorCode::InvalidNamespace,
            format!(
                "collection name has invalid type {}",
                crate::args::type_name(v)
            ),
        )),
        None => Err(MongoError::failed_to_parse(format!(
            "{command}: empty command"
        ))),
    }
}

/// The namespace `$db.coll`.
pub fn namespace(ctx: &Ctx, coll: &str) -> Namespace {
    Namespace::new(ctx.db(), coll)
}

/// A required array of documents (`documents`, `updates`, `deletes`).
pub fn documents_arg(
    cmd: &Document,
    command: &str,
    field: &str,
) -> Result<Vec<Document>, MongoError> {
    let array = match cmd.get(field) {
        Some(Bson::Array(a)) => a,
        Some(v) => return Err(wrong_type(command, field, v, "type 'array'")),
        None => return Err(crate::args::missing(command, field)),
    };
    if array.is_empty() || array.len() > 100_000 {
        return Err(MongoError::new(
            ErrorCode::InvalidLength,
            format!(
                "Write batch sizes must be between 1 and 100000. Got {} operations.",
                array.len()
            ),
        ));
    }
    array
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Bson::Document(d) => Ok(d.clone()),
            other => Err(wrong_type(
                command,
                &format!("{field}.{i}"),
                other,
                "type 'object'",
            )),
        })
        .collect()
}

/// Runs engine work on the blocking pool; inside the command's transaction, if it
/// runs in one (its writes go to the transaction, its reads see the transaction's
/// snapshot and own writes: see `eddy_engine::txn`).
pub async fn with_engine<T, F>(ctx: &Ctx, f: F) -> Result<T, MongoError>
where
    F: FnOnce(&Arc<Engine>) -> Result<T, MongoError> + Send + 'static,
    T: Send + 'static,
{
    let engine = Arc::clone(ctx.engine());
    let txn = ctx.txn().cloned();
    tokio::task::spawn_blocking(move || match txn {
        Some(txn) => txn.run(|| f(&engine)),
        None => f(&engine),
    })
    .await
    .map_err(|e| MongoError::internal(format!("engine task failed: {e}")))?
}

/// `writeErrors` entries of a write outcome.
pub fn write_errors(out: &WriteOutcome) -> Vec<Bson> {
    out.errors
        .iter()
        .map(|(i, e)| Bson::Document(e.to_write_error(*i)))
        .collect()
}

/// An optional array-of-documents field (`arrayFilters`).
pub fn opt_documents(
    doc: &Document,
    command: &str,
    field: &str,
) -> Result<Option<Vec<Document>>, MongoError> {
    match doc.get(field) {
        None => Ok(None),
        Some(Bson::Array(a)) => a
            .iter()
            .map(|v| match v {
                Bson::Document(d) => Ok(d.clone()),
                other => Err(wrong_type(command, field, other, "type 'object'")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(v) => Err(wrong_type(command, field, v, "type 'array'")),
    }
}

/// The `readConcern` of a read command that can read a snapshot (`find`, `aggregate`,
/// `distinct`): `Some(atClusterTime)` for `level: "snapshot"`, `None` for the other
/// levels. `atClusterTime` is refused with any other level, as mongod does.
pub fn snapshot_read(doc: &Document) -> Result<Option<Option<bson::Timestamp>>, MongoError> {
    let Some(rc) = doc.get("readConcern") else {
        return Ok(None);
    };
    let Bson::Document(rc) = rc else {
        return Err(wrong_type(
            "readConcern",
            "readConcern",
            rc,
            "type 'object'",
        ));
    };
    let at = match rc.get("atClusterTime") {
        None => None,
        Some(Bson::Timestamp(ts)) => Some(*ts),
        Some(v) => {
            return Err(wrong_type(
                "readConcern",
                "atClusterTime",
                v,
                "type 'timestamp'",
            ))
        }
    };
    let snapshot = rc.get_str("level").ok() == Some("snapshot");
    if at.is_some() && !snapshot {
        return Err(MongoError::new(
            ErrorCode::InvalidOptions,
            "atClusterTime field can be set only if level is snapshot",
        ));
    }
    if at.is_some() && rc.contains_key("afterClusterTime") {
        return Err(MongoError::new(
            ErrorCode::InvalidOptions,
            "Can not specify both afterClusterTime and atClusterTime",
        ));
    }
    Ok(snapshot.then_some(at))
}

/// A query command's `collation` (`None`: simple), parsed with mongod's errors.
pub fn collation_arg(
    doc: &Document,
    command: &str,
) -> Result<Option<std::sync::Arc<eddy_query::collation::Collation>>, MongoError> {
    match doc.get("collation") {
        None => Ok(None),
        Some(Bson::Document(c)) => eddy_query::collation::Collation::parse(c),
        Some(v) => Err(wrong_type(command, "collation", v, "type 'object'")),
    }
}

/// An optional `hint` of a write statement or `findAndModify`: an index name or key
/// pattern (`{}` is no hint); mongod's `IndexHint` parser refuses other types.
pub fn opt_hint(d: &Document) -> Result<Option<Bson>, MongoError> {
    match d.get("hint") {
        None => Ok(None),
        Some(Bson::Document(h)) if h.is_empty() => Ok(None),
        Some(h @ (Bson::String(_) | Bson::Document(_))) => Ok(Some(h.clone())),
        Some(_) => Err(MongoError::new(
            ErrorCode::FailedToParse,
            "Hint must be a string or an object",
        )),
    }
}
