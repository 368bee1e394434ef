//! `commitTransaction` and `abortTransaction` (admin database, with the session's
//! `lsid`, `txnNumber` and `autocommit: false`), as mongod 7.0 answers them: a retried
//! commit of a committed transaction is ok, an abort of a committed one is 256
//! TransactionCommitted, either on an aborted one 251 NoSuchTransaction. See
//! `crate::transactions`.

use bson::Document;
use eddy_codes::{ErrorCode, MongoError};

use crate::command::{Command, CommandResult, Ctx};

fn not_in_transaction(name: &str) -> MongoError {
    MongoError::new(
        ErrorCode::InvalidOptions,
        format!("{name} must be run within a transaction (lsid, txnNumber and autocommit: false)"),
    )
}

/// The fields of either command besides the generic ones: mongod accepts
/// `recoveryToken` (mongos) and nothing else.
fn check(cmd: &Document, name: &str) -> Result<(), MongoError> {
    crate::commands::data::check_fields(cmd, name, &["recoveryToken", "maxCommitTimeMS"])
}

pub struct CommitTransaction;

impl Command for CommitTransaction {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        check(cmd, "commitTransaction")?;
        Ok(CommitTransaction)
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let txn = ctx
            .txn()
            .cloned()
            .ok_or_else(|| not_in_transaction("commitTransaction"))?;
        let engine = std::sync::Arc::clone(ctx.engine());
        tokio::task::spawn_blocking(move || txn.commit(&engine))
            .await
            .map_err(|e| MongoError::internal(format!("engine task failed: {e}")))??;
        Ok(Document::new().into())
    }
}

pub struct AbortTransaction;

impl Command for AbortTransaction {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        check(cmd, "abortTransaction")?;
        Ok(AbortTransaction)
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let txn = ctx
            .txn()
            .ok_or_else(|| not_in_transaction("abortTransaction"))?;
        txn.abort_command()?;
        Ok(Document::new().into())
    }
}
