//! The stages that make the pipeline's input instead of reading the collection:
//! `$documents`, `$collStats`, `$indexStats`, `$listLocalSessions` and `$currentOp`
//! (mongod 7.0 `document_source_documents.cpp`, `document_source_coll_stats.cpp`,
//! `document_source_index_stats.cpp`, `document_source_list_local_sessions.cpp`,
//! `document_source_current_op.cpp`).
//! What they report comes from the caller's [`super::Context`].

use bson::{Bson, Document};
use eddy_codes::{location, ErrorCode, MongoError};

use crate::expr::{Env, Expr};
use crate::util::{self, bson_to_string, type_name};

/// `$documents`: the documents of the array its expression evaluates to.
pub(super) fn documents(e: &Expr, env: &Env) -> Result<Vec<Document>, MongoError> {
    let empty = Document::new();
    Ok(match e.evaluate(&empty, env)? {
        Some(Bson::Array(items)) => items
            .into_iter()
            .map(|i| match i {
                Bson::Document(d) => Ok(d),
                other => Err(MongoError::location(
                    40228,
                    format!(
                        "'newRoot' expression must evaluate to an object, but resulting value was: {}. Type of resulting value: '{}'. Input document: {{}}",
                        bson_to_string(&other),
                        type_name(&other)
                    ),
                )),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(MongoError::location(
                5858203,
                format!(
                    "an array is expected, but got {}",
                    other.as_ref().map_or("missing", type_name)
                ),
            ))
        }
    })
}

/// What a `$collStats` stage reports (`latencyStats` and `queryExecStats` are refused:
/// Eddy keeps no operation counters per collection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollStats {
    /// `storageStats`, with its `scale` (1 unless given).
    pub storage_scale: Option<i64>,
    /// `count`: the number of documents.
    pub count: bool,
}

impl CollStats {
    /// Parses `{$collStats: {storageStats?: {scale?}, count?: {}, ...}}` with mongod's
    /// IDL errors.
    pub(super) fn parse(arg: &Bson) -> Result<CollStats, MongoError> {
        let Bson::Document(spec) = arg else {
            return Err(MongoError::new(
                ErrorCode::TypeMismatch,
                format!(
                    "BSON field '$collStats' is the wrong type '{}', expected type 'object'",
                    util::type_name(arg)
                ),
            ));
        };
        let mut out = CollStats {
            storage_scale: None,
            count: false,
        };
        for (field, v) in spec {
            match field.as_str() {
                "storageStats" => {
                    let storage = coll_stats_section(field, v)?;
                    out.storage_scale = Some(parse_stats_scale(storage.get("scale"))?);
                }
                "count" => {
                    coll_stats_section(field, v)?;
                    out.count = true;
                }
                "latencyStats" | "queryExecStats" => {
                    coll_stats_section(field, v)?;
                    return Err(MongoError::new(
                        ErrorCode::CommandNotSupported,
                        format!("Eddy does not keep $collStats {field}"),
                    ));
                }
                other => {
                    return Err(MongoError::location(
                        location::UNKNOWN_FIELD,
                        format!("BSON field '$collStats.{other}' is an unknown field."),
                    ))
                }
            }
        }
        Ok(out)
    }
}

/// The `scale` of storage statistics (`$collStats`' `storageStats`, the `collStats`
/// command): 1 when absent, at least 1 (51024), as mongod's IDL checks it.
pub fn parse_stats_scale(v: Option<&Bson>) -> Result<i64, MongoError> {
    let scale = match v {
        None => 1,
        Some(s) => util::parse_integer_to_long("scale", s)?,
    };
    if scale < 1 {
        return Err(MongoError::location(
            location::VALUE_BELOW_MINIMUM,
            format!("BSON field 'scale' value must be >= 1, actual value '{scale}'"),
        ));
    }
    Ok(scale)
}

/// A section of a `$collStats` specification: a document.
fn coll_stats_section<'a>(field: &str, v: &'a Bson) -> Result<&'a Document, MongoError> {
    v.as_document().ok_or_else(|| {
        MongoError::new(
            ErrorCode::TypeMismatch,
            format!(
                "BSON field '$collStats.{field}' is the wrong type '{}', expected type 'object'",
                util::type_name(v)
            ),
        )
    })
}

/// A `$listLocalSessions` (or `$listSessions`) specification, as mongod's
/// `listSessionsParseSpec`: `{}` (the current user's sessions; without authentication,
/// the user `("", "")`), `{allUsers: true}` or `{users: [{user, db}, ...]}`.
pub(super) fn parse_list_sessions(
    name: &str,
    arg: &Bson,
) -> Result<Option<Vec<(String, String)>>, MongoError> {
    let Bson::Document(spec) = arg else {
        return Err(MongoError::new(
            ErrorCode::TypeMismatch,
            format!(
                "{name} options must be specified in an object, but found: {}",
                type_name(arg)
            ),
        ));
    };
    let mut all_users = false;
    let mut users = Vec::new();
    for (k, v) in spec {
        match (k.as_str(), v) {
            ("allUsers", Bson::Boolean(b)) => all_users = *b,
            ("users", Bson::Array(items)) => {
                for item in items {
                    users.push(parse_session_user(name, item)?);
                }
            }
            ("allUsers" | "users", v) => {
                let expected = if k == "allUsers" { "bool" } else { "array" };
                return Err(MongoError::new(
                    ErrorCode::TypeMismatch,
                    format!(
                        "BSON field '{name}.{k}' is the wrong type '{}', expected type '{expected}'",
                        type_name(v)
                    ),
                ));
            }
            _ => {
                return Err(MongoError::location(
                    location::UNKNOWN_FIELD,
                    format!("BSON field '{name}.{k}' is an unknown field."),
                ))
            }
        }
    }
    if all_users && !users.is_empty() {
        return Err(MongoError::new(
            ErrorCode::UnsupportedFormat,
            format!(
                "{name} may not specify {{allUsers:true}} and {{users:[...]}} at the same time"
            ),
        ));
    }
    Ok(match (all_users, users.is_empty()) {
        (true, _) => None,
        // The implicit request for oneself: the unauthenticated user.
        (false, true) => Some(vec![(String::new(), String::new())]),
        (false, false) => Some(users),
    })
}

/// One `{user, db}` of a `$listLocalSessions` `users` list.
fn parse_session_user(name: &str, item: &Bson) -> Result<(String, String), MongoError> {
    let Bson::Document(d) = item else {
        return Err(MongoError::new(
            ErrorCode::TypeMismatch,
            format!(
                "BSON field '{name}.users' is the wrong type '{}', expected type 'object'",
                type_name(item)
            ),
        ));
    };
    let field = |f: &str| match d.get(f) {
        Some(Bson::String(s)) => Ok(s.clone()),
        Some(v) => Err(MongoError::new(
            ErrorCode::TypeMismatch,
            format!(
                "BSON field '{name}.users.{f}' is the wrong type '{}', expected type 'string'",
                type_name(v)
            ),
        )),
        None => Err(MongoError::location(
            location::MISSING_FIELD,
            format!("BSON field '{name}.users.{f}' is missing but a required field"),
        )),
    };
    if let Some(k) = d.keys().find(|k| *k != "user" && *k != "db") {
        return Err(MongoError::location(
            location::UNKNOWN_FIELD,
            format!("BSON field '{name}.users.{k}' is an unknown field."),
        ));
    }
    Ok((field("user")?, field("db")?))
}

/// What a `$currentOp` stage asks to see (mongod 7.0's options; each a boolean).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentOpSpec {
    /// Every user's operations, not only the caller's (`allUsers`, needs `inprog`).
    pub all_users: bool,
    /// Connections with no operation in progress (`idleConnections`).
    pub idle_connections: bool,
    /// Cursors no `getMore` is reading (`idleCursors`).
    pub idle_cursors: bool,
    /// Sessions holding transaction resources (`idleSessions`, default true).
    pub idle_sessions: bool,
    /// `localOps` (a mongos option; a mongod accepts and ignores it).
    pub local_ops: bool,
    /// Commands larger than 1 KB shown as `{$truncated: ...}` (`truncateOps`).
    pub truncate_ops: bool,
    /// `backtrace` (accepted; Eddy has none to show).
    pub backtrace: bool,
}

impl Default for CurrentOpSpec {
    fn default() -> CurrentOpSpec {
        CurrentOpSpec {
            all_users: false,
            idle_connections: false,
            idle_cursors: false,
            idle_sessions: true,
            local_ops: false,
            truncate_ops: false,
            backtrace: false,
        }
    }
}

impl CurrentOpSpec {
    /// Parses `{$currentOp: {...}}` as mongod does: first the checks every node makes
    /// (an object; `allUsers` and `localOps` booleans: 14 TypeMismatch), then the
    /// stage's own (every option a boolean, no other field: 9 FailedToParse).
    pub(super) fn parse(arg: &Bson) -> Result<CurrentOpSpec, MongoError> {
        let Bson::Document(spec) = arg else {
            return Err(MongoError::new(
                ErrorCode::TypeMismatch,
                format!(
                    "$currentOp options must be specified in an object, but found: {}",
                    type_name(arg)
                ),
            ));
        };
        let not_bool = |code: ErrorCode, field: &str, v: &Bson| {
            MongoError::new(
                code,
                format!(
                    "The '{field}' parameter of the $currentOp stage must be a boolean value, but found: {}",
                    type_name(v)
                ),
            )
        };
        for (k, v) in spec {
            if matches!(k.as_str(), "allUsers" | "localOps") && !matches!(v, Bson::Boolean(_)) {
                return Err(not_bool(ErrorCode::TypeMismatch, k, v));
            }
        }
        let mut out = CurrentOpSpec::default();
        for (k, v) in spec {
            let slot = match k.as_str() {
                "allUsers" => &mut out.all_users,
                "idleConnections" => &mut out.idle_connections,
                "idleCursors" => &mut out.idle_cursors,
                "idleSessions" => &mut out.idle_sessions,
                "localOps" => &mut out.local_ops,
                "truncateOps" => &mut out.truncate_ops,
                "backtrace" => &mut out.backtrace,
                _ => {
                    return Err(MongoError::new(
                        ErrorCode::FailedToParse,
                        format!("Unrecognized option '{k}' in $currentOp stage."),
                    ))
                }
            };
            match v {
                Bson::Boolean(b) => *slot = *b,
                other => return Err(not_bool(ErrorCode::FailedToParse, k, other)),
            }
        }
        Ok(out)
    }
}
