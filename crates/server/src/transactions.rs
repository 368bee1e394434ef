//! Multi-document transactions as a session sees them: mongod 7.0's state machine
//! (`startTransaction`, `autocommit: false`, `txnNumber`; in progress, committed,
//! aborted) over the engine's [`eddy_engine::Transaction`].
//!
//! A session holds at most one transaction ([`TxnHandle`]), the newest `txnNumber` it
//! saw. The dispatcher checks every command that carries `autocommit` against it
//! ([`TxnRequest`], [`crate::state::Sessions::transaction`]) before the command runs,
//! and hands the handle to the command in its context; [`crate::commands::data::with_engine`]
//! then runs the command's engine work inside the transaction's scope. A statement that
//! fails aborts the transaction, as mongod does. The reaper aborts transactions older
//! than `transactionLifetimeLimitSeconds`.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bson::{Bson, Document, RawDocumentBuf, Timestamp};
use eddy_codes::{labels, ErrorCode, MongoError};
use eddy_engine::{Engine, Transaction};

/// What a command says about the transaction it runs in.
#[derive(Debug, Clone)]
pub struct TxnRequest {
    pub txn_number: i64,
    /// `startTransaction: true`.
    pub start: bool,
    /// The first statement's `readConcern.atClusterTime`, for a snapshot transaction.
    pub at_cluster_time: Option<Timestamp>,
}

impl TxnRequest {
    /// The transaction fields of a command: `None` when it has no `autocommit` (not in
    /// a transaction), else mongod's checks of `autocommit`, `startTransaction`,
    /// `txnNumber` and the read and write concerns.
    pub fn parse(
        name: &str,
        cmd: &Document,
        has_session: bool,
        allowed: bool,
    ) -> Result<Option<TxnRequest>, MongoError> {
        let autocommit = cmd.get("autocommit");
        let start = cmd.get("startTransaction");
        if autocommit.is_none() {
            if start.is_some() {
                return Err(MongoError::location(
                    50768,
                    "txnNumber may only be provided for multi-document transactions and retryable write commands. autocommit:false was not provided, and startTransaction was provided",
                ));
            }
            return Ok(None);
        }
        match autocommit {
            Some(Bson::Boolean(false)) => {}
            Some(Bson::Boolean(true)) => {
                return Err(MongoError::new(
                    ErrorCode::InvalidOptions,
                    "autocommit:true is not supported",
                ))
            }
            Some(v) => {
                return Err(crate::args::wrong_type(
                    name,
                    "autocommit",
                    v,
                    "type 'bool'",
                ))
            }
            None => {}
        }
        let start = match start {
            None => false,
            Some(Bson::Boolean(true)) => true,
            Some(Bson::Boolean(false)) => {
                return Err(MongoError::new(
                    ErrorCode::InvalidOptions,
                    "Specifying startTransaction=false is not allowed.",
                ))
            }
            Some(v) => {
                return Err(crate::args::wrong_type(
                    name,
                    "startTransaction",
                    v,
                    "type 'bool'",
                ))
            }
        };
        if !has_session {
            return Err(MongoError::new(
                ErrorCode::InvalidOptions,
                "Transaction options can only be specified with a session (lsid)",
            ));
        }
        let txn_number = match cmd.get("txnNumber") {
            Some(Bson::Int64(n)) => *n,
            Some(Bson::Int32(n)) => i64::from(*n),
            Some(v) => return Err(crate::args::wrong_type(name, "txnNumber", v, "type 'long'")),
            None => {
                return Err(MongoError::new(
                    ErrorCode::InvalidOptions,
                    "'autocommit' field requires a transaction number to also be specified",
                ))
            }
        };
        if !allowed {
            return Err(MongoError::new(
                ErrorCode::OperationNotSupportedInTransaction,
                format!("Cannot run '{name}' in a multi-document transaction."),
            ));
        }
        if let (true, Ok(pipeline)) = (
            name.eq_ignore_ascii_case("aggregate"),
            cmd.get_array("pipeline"),
        ) {
            for stage in pipeline.iter().filter_map(Bson::as_document) {
                if let Some(out) = ["$out", "$merge"].iter().find(|s| stage.contains_key(**s)) {
                    return Err(MongoError::new(
                        ErrorCode::OperationNotSupportedInTransaction,
                        format!("{out} cannot be used in a transaction"),
                    ));
                }
            }
        }
        let finishing = matches!(name, "commitTransaction" | "abortTransaction");
        if !finishing && cmd.contains_key("writeConcern") {
            return Err(MongoError::new(
                ErrorCode::InvalidOptions,
                "Cannot set write concern after starting a transaction.",
            ));
        }
        let mut at_cluster_time = None;
        if let Some(rc) = cmd.get("readConcern") {
            if !start {
                return Err(MongoError::new(
                    ErrorCode::InvalidOptions,
                    "Only the first command in a transaction may specify a readConcern",
                ));
            }
            if let Bson::Document(rc) = rc {
                match rc.get_str("level") {
                    Ok("local" | "majority" | "snapshot") | Err(_) => {}
                    Ok(level) => {
                        return Err(MongoError::new(
                            ErrorCode::InvalidOptions,
                            format!("The readConcern level must be either 'local' (default), 'majority' or 'snapshot' in order to run in a transaction, not '{level}'"),
                        ))
                    }
                }
                if let Some(Bson::Timestamp(ts)) = rc.get("atClusterTime") {
                    if rc.get_str("level").ok() != Some("snapshot") {
                        return Err(MongoError::new(
                            ErrorCode::InvalidOptions,
                            "atClusterTime is only allowed with readConcern level snapshot",
                        ));
                    }
                    at_cluster_time = Some(*ts);
                }
            }
        }
        if start && finishing {
            return Err(MongoError::new(
                ErrorCode::OperationNotSupportedInTransaction,
                format!("Cannot start a transaction with a {name} command"),
            ));
        }
        Ok(Some(TxnRequest {
            txn_number,
            start,
            at_cluster_time,
        }))
    }
}

/// Where a session's transaction is.
#[derive(Debug)]
enum Phase {
    /// Open; the engine transaction is there between statements.
    InProgress(Option<Transaction>),
    Committed,
    /// Aborted, and why (by the client, a failed statement, or the reaper).
    Aborted(&'static str),
}

#[derive(Debug)]
struct Slot {
    phase: Phase,
    /// When the reaper aborts it: its start plus the `transactionLifetimeLimitSeconds`
    /// of that moment (mongod's expiry date, fixed when the transaction begins).
    expires: Instant,
}

/// A session's transaction, shared by the session table and the command running in it.
#[derive(Debug)]
pub struct TxnHandle {
    pub number: i64,
    /// The session's `{id, uid}`, logged with each operation (change events' `lsid`).
    lsid: RawDocumentBuf,
    slot: Mutex<Slot>,
}

/// A lifetime past any `Instant` arithmetic (`transactionLifetimeLimitSeconds` is an
/// int32: about 68 years at most).
const MAX_LIFETIME: std::time::Duration = std::time::Duration::from_secs(i32::MAX as u64);

fn no_such_transaction(message: String) -> MongoError {
    MongoError::new(ErrorCode::NoSuchTransaction, message)
        .with_label(labels::TRANSIENT_TRANSACTION_ERROR)
}

impl TxnHandle {
    /// A transaction in progress with number `number`, to be aborted by the reaper
    /// once open for `lifetime`.
    pub fn start(
        number: i64,
        lsid: Document,
        txn: Transaction,
        lifetime: std::time::Duration,
    ) -> TxnHandle {
        let now = Instant::now();
        TxnHandle {
            number,
            lsid: RawDocumentBuf::try_from(&lsid).unwrap_or_default(),
            slot: Mutex::new(Slot {
                phase: Phase::InProgress(Some(txn)),
                expires: now + lifetime.min(MAX_LIFETIME),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn aborted_error(&self, why: &str) -> MongoError {
        no_such_transaction(format!(
            "Transaction with {{ txnNumber: {} }} has been aborted{why}.",
            self.number
        ))
    }

    /// Checks that a statement (not commit or abort) may run: the transaction is in
    /// progress (251 once aborted, 256 once committed).
    pub fn check_statement(&self) -> Result<(), MongoError> {
        match &self.lock().phase {
            Phase::InProgress(_) => Ok(()),
            Phase::Committed => Err(MongoError::new(
                ErrorCode::TransactionCommitted,
                format!(
                    "Transaction with {{ txnNumber: {} }} has been committed.",
                    self.number
                ),
            )),
            Phase::Aborted(why) => Err(self.aborted_error(why)),
        }
    }

    /// Whether it is open.
    pub fn in_progress(&self) -> bool {
        matches!(self.lock().phase, Phase::InProgress(_))
    }

    /// Runs a statement's engine work inside the transaction (on a blocking thread).
    pub fn run<T>(&self, f: impl FnOnce() -> Result<T, MongoError>) -> Result<T, MongoError> {
        let mut slot = self.lock();
        let txn = match &mut slot.phase {
            Phase::InProgress(txn) => txn.take(),
            Phase::Committed => None,
            Phase::Aborted(why) => return Err(self.aborted_error(why)),
        };
        let Some(txn) = txn else {
            return Err(no_such_transaction(format!(
                "Transaction with {{ txnNumber: {} }} is not in progress.",
                self.number
            )));
        };
        let (out, txn) = txn.scope(f);
        slot.phase = Phase::InProgress(Some(txn));
        out
    }

    /// Aborts it (a failed statement, `abortTransaction`, the reaper, a newer
    /// transaction, the session's end); whether it was in progress.
    pub fn abort(&self, why: &'static str) -> bool {
        let mut slot = self.lock();
        if matches!(slot.phase, Phase::InProgress(_)) {
            // Dropping the engine transaction releases its claims; nothing was written.
            slot.phase = Phase::Aborted(why);
            return true;
        }
        false
    }

    /// `abortTransaction`: 251 when already aborted, 256 when committed.
    pub fn abort_command(&self) -> Result<(), MongoError> {
        let slot = self.lock();
        match &slot.phase {
            Phase::InProgress(_) => {
                drop(slot);
                self.abort("");
                Ok(())
            }
            Phase::Committed => Err(MongoError::new(
                ErrorCode::TransactionCommitted,
                format!(
                    "Transaction with {{ txnNumber: {} }} has been committed.",
                    self.number
                ),
            )),
            Phase::Aborted(why) => Err(self.aborted_error(why)),
        }
    }

    /// `commitTransaction` (on a blocking thread): commits once; a retried commit of a
    /// committed transaction answers ok, of an aborted one 251.
    pub fn commit(&self, engine: &Arc<Engine>) -> Result<(), MongoError> {
        let mut slot = self.lock();
        let txn = match &mut slot.phase {
            Phase::Committed => return Ok(()),
            Phase::Aborted(why) => return Err(self.aborted_error(why)),
            Phase::InProgress(txn) => txn.take(),
        };
        let Some(txn) = txn else {
            return Err(no_such_transaction(format!(
                "Transaction with {{ txnNumber: {} }} is not in progress.",
                self.number
            )));
        };
        match txn.commit(engine, self.lsid.clone(), self.number) {
            Ok(_) => {
                slot.phase = Phase::Committed;
                Ok(())
            }
            Err(err) if err.is(ErrorCode::WriteConflict) => {
                slot.phase = Phase::Aborted("");
                Err(err)
            }
            Err(err) => {
                // The commit may or may not be on disk (a failed fsync): the client
                // cannot know, and must not take it as aborted.
                slot.phase = Phase::Aborted("");
                Err(err.with_label(labels::UNKNOWN_TRANSACTION_COMMIT_RESULT))
            }
        }
    }

    /// Aborts it if it has outlived its lifetime by `now`; whether it did.
    pub fn abort_if_expired(&self, now: Instant) -> bool {
        let expired = {
            let Ok(slot) = self.slot.try_lock() else {
                // A statement is running; the next pass looks again.
                return false;
            };
            matches!(slot.phase, Phase::InProgress(_)) && now >= slot.expires
        };
        expired && self.abort(" because it exceeded transactionLifetimeLimitSeconds")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn parse(name: &str, cmd: Document, allowed: bool) -> Result<Option<TxnRequest>, MongoError> {
        TxnRequest::parse(name, &cmd, true, allowed)
    }

    fn code(r: Result<Option<TxnRequest>, MongoError>) -> i32 {
        r.expect_err("refused").code
    }

    #[test]
    fn transaction_fields_are_checked_as_mongod_checks_them() {
        assert!(parse("find", doc! {"find": "c"}, true)
            .expect("ok")
            .is_none());
        let first = parse(
            "insert",
            doc! {"insert": "c", "txnNumber": 3i64, "autocommit": false, "startTransaction": true,
                  "readConcern": {"level": "snapshot", "atClusterTime": bson::Timestamp {time: 5, increment: 1}}},
            true,
        )
        .expect("ok")
        .expect("in a transaction");
        assert!(first.start);
        assert_eq!(first.txn_number, 3);
        assert_eq!(
            first.at_cluster_time,
            Some(bson::Timestamp {
                time: 5,
                increment: 1
            })
        );
        let base = doc! {"find": "c", "txnNumber": 3i64, "autocommit": false};
        let with = |extra: Document| {
            let mut d = base.clone();
            d.extend(extra);
            d
        };
        let invalid = ErrorCode::InvalidOptions.code();
        assert_eq!(
            code(parse("find", with(doc! {"autocommit": true}), true)),
            invalid
        );
        assert_eq!(
            code(parse("find", with(doc! {"startTransaction": false}), true)),
            invalid
        );
        assert_eq!(
            code(parse("find", with(doc! {"writeConcern": {"w": 1}}), true)),
            invalid
        );
        assert_eq!(
            code(parse(
                "find",
                with(doc! {"readConcern": {"level": "local"}}),
                true
            )),
            invalid,
            "readConcern after the first statement"
        );
        assert_eq!(
            code(parse(
                "find",
                with(doc! {"startTransaction": true, "readConcern": {"level": "linearizable"}}),
                true
            )),
            invalid
        );
        assert_eq!(
            code(parse("find", doc! {"find": "c", "autocommit": false}, true)),
            invalid,
            "no txnNumber"
        );
        let not_in_txn = ErrorCode::OperationNotSupportedInTransaction.code();
        assert_eq!(code(parse("count", with(doc! {}), false)), not_in_txn);
        assert_eq!(
            code(parse(
                "aggregate",
                doc! {"aggregate": "c", "pipeline": [{"$out": "x"}], "txnNumber": 1i64, "autocommit": false},
                true
            )),
            not_in_txn
        );
        // Commit and abort take a write concern, never start a transaction.
        assert!(parse(
            "commitTransaction",
            doc! {"commitTransaction": 1, "txnNumber": 1i64, "autocommit": false, "writeConcern": {"w": "majority"}},
            true
        )
        .expect("ok")
        .is_some());
        assert_eq!(
            code(parse(
                "commitTransaction",
                doc! {"commitTransaction": 1, "txnNumber": 1i64, "autocommit": false, "startTransaction": true},
                true
            )),
            not_in_txn
        );
    }
}
