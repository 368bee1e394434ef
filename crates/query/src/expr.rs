//! Placeholder for the aggregation expression module, which is written on another
//! branch with exactly this API and replaces this file at merge. Until then every
//! expression fails to parse with an honest "not available" error.

use bson::{Bson, DateTime, Document, Timestamp};
use eddy_codes::{ErrorCode, MongoError};

/// What an expression may read besides the document: `$$NOW`, `$$CLUSTER_TIME`, `let` variables.
pub struct Env {
    pub now: DateTime,
    pub cluster_time: Option<Timestamp>,
    pub vars: Vec<(String, Bson)>,
}

impl Env {
    pub fn new() -> Env {
        Env {
            now: DateTime::now(),
            cluster_time: None,
            vars: Vec::new(),
        }
    }
}

impl Default for Env {
    fn default() -> Env {
        Env::new()
    }
}

/// A parsed aggregation expression.
#[derive(Debug)]
pub struct Expr;

impl Expr {
    pub fn parse(value: &Bson) -> Result<Expr, MongoError> {
        let _ = value;
        Err(MongoError::new(
            ErrorCode::CommandNotSupported,
            "aggregation expressions are not available in this build",
        ))
    }

    /// The value, or `None` when it is missing.
    pub fn evaluate(&self, root: &Document, env: &Env) -> Result<Option<Bson>, MongoError> {
        let _ = (root, env);
        Ok(None)
    }
}
