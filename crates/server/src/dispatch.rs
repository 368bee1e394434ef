//! Running one command document: look the name up in the command table, apply the
//! generic rules (test-only and admin-only commands, sessions, retryable writes,
//! failpoints, write concern), run the command, and finish the reply with `ok`,
//! `$clusterTime` and `operationTime`, as mongod does for every command.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bson::raw::cstr;
use bson::{doc, spec::BinarySubtype, Bson, Document, RawDocument, RawDocumentBuf, Timestamp};
use eddy_codes::{category, labels, ErrorCode, MongoError};

use crate::command::{ConnInfo, Ctx, Reply};
use crate::commands::{self, Entry, Kind};
use crate::state::{ServerState, SessionKey};
use crate::transactions::{TxnHandle, TxnRequest};

/// What the connection does with a finished command.
#[derive(Debug)]
pub struct Outcome {
    /// The whole reply.
    pub reply: Reply,
    /// Close the connection instead of answering (failpoint `closeConnection`).
    pub close: bool,
}

/// `$clusterTime` as mongod sends it, with a zero signature (no keys: no auth).
fn cluster_time_doc(ts: Timestamp) -> RawDocumentBuf {
    let mut signature = RawDocumentBuf::new();
    signature.append(
        cstr!("hash"),
        bson::RawBinaryRef {
            subtype: BinarySubtype::Generic,
            bytes: &[0; 20],
        },
    );
    signature.append(cstr!("keyId"), 0_i64);
    let mut d = RawDocumentBuf::new();
    d.append(cstr!("clusterTime"), ts);
    d.append(cstr!("signature"), signature);
    d
}

/// The operation time to report: the newest durable write, or the cluster time before
/// the first write.
fn operation_time(state: &ServerState) -> Timestamp {
    let committed = state.engine.last_op_time();
    if committed.time == 0 {
        state.engine.cluster_time()
    } else {
        committed
    }
}

/// Appends `ok` and the cluster-time fields to a reply body.
fn finish(
    state: &ServerState,
    body: RawDocumentBuf,
    ok: bool,
    extra: Option<Document>,
) -> RawDocumentBuf {
    finish_at(body, ok, extra, reply_times(state))
}

/// [`finish`] with the times already read.
fn finish_at(
    mut body: RawDocumentBuf,
    ok: bool,
    extra: Option<Document>,
    times: (Timestamp, Timestamp),
) -> RawDocumentBuf {
    if ok {
        body.append(cstr!("ok"), 1.0);
    }
    if let Some(extra) = extra {
        append_fields(&mut body, &extra);
    }
    append_times(&mut body, times);
    body
}

/// A reply's `operationTime` and `$clusterTime`.
fn reply_times(state: &ServerState) -> (Timestamp, Timestamp) {
    let op_time = operation_time(state);
    (op_time, state.engine.cluster_time().max(op_time))
}

/// Appends `$clusterTime` and `operationTime` (as [`reply_times`] gives them).
fn append_times(body: &mut RawDocumentBuf, (op_time, cluster): (Timestamp, Timestamp)) {
    body.append(cstr!("$clusterTime"), cluster_time_doc(cluster));
    body.append(cstr!("operationTime"), op_time);
}

/// Calls `f` with the body [`finish`] gives an empty successful reply (`ok`,
/// `$clusterTime`, `operationTime`). The waking threads answer many change streams with
/// the same times: each keeps the last body it built and builds again when the times
/// move.
pub(crate) fn with_ok_body<R>(state: &ServerState, f: impl FnOnce(&RawDocument) -> R) -> R {
    thread_local! {
        static LAST: std::cell::RefCell<Option<((Timestamp, Timestamp), RawDocumentBuf)>> =
            const { std::cell::RefCell::new(None) };
    }
    let times = reply_times(state);
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((built, body)) if *built == times => f(body),
            _ => {
                // Built from the times it is kept under, read once.
                let body = finish_at(RawDocumentBuf::new(), true, None, times);
                f(&last.insert((times, body)).1)
            }
        }
    })
}

/// Appends the fields of `extra` to a reply.
fn append_fields(body: &mut RawDocumentBuf, extra: &Document) {
    for (k, v) in extra {
        if let (Ok(key), Ok(raw)) = (
            <&bson::raw::CStr>::try_from(k.as_str()),
            bson::RawBson::try_from(v.clone()),
        ) {
            body.append(key, raw);
        }
    }
}

/// The error reply for `err`; a not-primary error (or `writeConcernError`) carries the
/// server's `topologyVersion`, as mongod's do.
pub fn error_reply(state: &ServerState, err: &MongoError) -> RawDocumentBuf {
    let reply = err.to_reply();
    let wce_code = reply
        .get_document("writeConcernError")
        .ok()
        .and_then(|wce| wce.get("code"))
        .and_then(crate::args::as_integer);
    let not_primary = category::is_not_primary(err.code)
        || wce_code.is_some_and(|c| category::is_not_primary(c as i32));
    let body = RawDocumentBuf::try_from(&reply).unwrap_or_default();
    let extra = not_primary
        .then(|| doc! {"topologyVersion": crate::commands::hello::topology_version(state)});
    finish(state, body, false, extra)
}

/// The `$db` of a command: its `$db` field, or the database of an OP_QUERY (`db.$cmd`).
fn command_db(cmd: &Document, name: &str, legacy_db: Option<&str>) -> Result<String, MongoError> {
    match (cmd.get("$db"), legacy_db) {
        (Some(Bson::String(db)), _) => Ok(db.clone()),
        (Some(v), _) => Err(crate::args::wrong_type(name, "$db", v, "type 'string'")),
        (None, Some(db)) => Ok(db.to_owned()),
        (None, None) => Err(MongoError::location(
            40571,
            "OP_MSG requests require a $db argument",
        )),
    }
}

/// The table row of a command name: 59 CommandNotFound, 115 CommandNotSupported, or
/// FailedToParse for an empty command document.
fn lookup(name: &str, test_commands: bool) -> Result<&'static Entry, MongoError> {
    commands::lookup(name, test_commands).ok_or_else(|| {
        if name.is_empty() {
            MongoError::new(ErrorCode::FailedToParse, "Empty command object")
        } else {
            commands::unknown(name)
        }
    })
}

/// The generic fields every command may carry, checked before the command runs.
struct Envelope {
    /// `lsid.id`.
    lsid: Option<Bson>,
    txn_number: Option<i64>,
    /// A retryable write (a write with `lsid` and `txnNumber`, outside a transaction).
    retryable: bool,
    /// The transaction fields of a command run in a transaction (`autocommit: false`).
    txn: Option<TxnRequest>,
}

impl Envelope {
    fn parse(entry: &Entry, name: &str, db: &str, cmd: &Document) -> Result<Envelope, MongoError> {
        if entry.admin_only && db != "admin" {
            return Err(MongoError::new(
                ErrorCode::Unauthorized,
                format!("{name} may only be run against the admin database."),
            ));
        }
        check_api_parameters(entry, name, cmd)?;
        let level = read_concern_level(name, cmd)?;
        let txn = TxnRequest::parse(name, cmd, cmd.contains_key("lsid"), entry.in_transaction)?;
        // Outside a transaction, only some commands read a snapshot (mongod 5.0+,
        // `Entry::snapshot_reads`): the others refuse `readConcern: {level: "snapshot"}`.
        let snapshot = level == Some("snapshot");
        if snapshot && !entry.snapshot_reads && txn.is_none() {
            return Err(MongoError::new(
                ErrorCode::InvalidOptions,
                format!("{name} does not support readConcern level snapshot outside a multi-document transaction"),
            ));
        }
        let session = match cmd.get("lsid") {
            Some(Bson::Document(lsid)) => lsid.get("id").cloned(),
            Some(v) => return Err(crate::args::wrong_type(name, "lsid", v, "type 'object'")),
            None => None,
        };
        let txn_number = match cmd.get("txnNumber") {
            Some(Bson::Int64(n)) => Some(*n),
            Some(Bson::Int32(n)) => Some(i64::from(*n)),
            _ => None,
        };
        if let (Some(txn), false, None) = (txn_number, entry.kind.is_write(), &txn) {
            return Err(MongoError::new(
                ErrorCode::NotARetryableWriteCommand,
                format!("txnNumber may only be provided for multi-document transactions and retryable write commands. txnNumber {{{txn}}} is not valid for command {name}"),
            ));
        }
        Ok(Envelope {
            retryable: entry.kind.is_write()
                && session.is_some()
                && txn_number.is_some()
                && txn.is_none(),
            lsid: session,
            txn_number,
            txn,
        })
    }

    /// The command's session: its `lsid.id` and the connection's user.
    fn session(&self, conn: &ConnInfo) -> Option<SessionKey> {
        self.lsid
            .as_ref()
            .map(|id| SessionKey::new(id, conn.auth.session_uid()))
    }
}

/// The `readConcern.level` of a command, checked against mongod's levels (2 BadValue
/// for another string, as its IDL enum parser).
fn read_concern_level<'a>(name: &str, cmd: &'a Document) -> Result<Option<&'a str>, MongoError> {
    const LEVELS: &[&str] = &["local", "majority", "linearizable", "available", "snapshot"];
    let rc = match cmd.get("readConcern") {
        None => return Ok(None),
        Some(Bson::Document(rc)) => rc,
        Some(v) => {
            return Err(crate::args::wrong_type(
                name,
                "readConcern",
                v,
                "type 'object'",
            ))
        }
    };
    match rc.get("level") {
        None => Ok(None),
        Some(Bson::String(level)) if LEVELS.contains(&level.as_str()) => Ok(Some(level)),
        Some(Bson::String(level)) => Err(MongoError::bad_value(format!(
            "Enumeration value '{level}' for field 'readConcern.level' is not a valid value."
        ))),
        Some(v) => Err(crate::args::wrong_type(
            "readConcern",
            "level",
            v,
            "type 'string'",
        )),
    }
}

/// The Stable API parameters (`apiVersion`, `apiStrict`, `apiDeprecationErrors`), as
/// mongod's `validateAPIParameters`: only version "1" exists, and with `apiStrict` a
/// command outside it is refused (323 APIStrictError). No command of version 1 is
/// deprecated, so `apiDeprecationErrors` never fires.
fn check_api_parameters(entry: &Entry, name: &str, cmd: &Document) -> Result<(), MongoError> {
    let version = match cmd.get("apiVersion") {
        None => None,
        Some(Bson::String(v)) => Some(v.as_str()),
        Some(v) => {
            return Err(crate::args::wrong_type(
                name,
                "apiVersion",
                v,
                "type 'string'",
            ))
        }
    };
    let mut strict = false;
    for flag in ["apiStrict", "apiDeprecationErrors"] {
        let on = match cmd.get(flag) {
            None => continue,
            Some(Bson::Boolean(b)) => *b,
            Some(v) => return Err(crate::args::wrong_type(name, flag, v, "type 'bool'")),
        };
        if version.is_none() {
            return Err(MongoError::location(
                4886600,
                "Provided apiStrict and/or apiDeprecationErrors without passing apiVersion",
            ));
        }
        strict |= on && flag == "apiStrict";
    }
    if version.is_some_and(|v| v != "1") {
        return Err(MongoError::new(
            ErrorCode::APIVersionError,
            "API version must be \"1\"",
        ));
    }
    if strict && !entry.api_version_1 {
        return Err(MongoError::new(
            ErrorCode::APIStrictError,
            format!("Provided apiStrict:true, but the command {} is not in API Version 1. Information on supported commands and migrations in API Version 1 can be found at https://dochub.mongodb.org/core/manual-versioned-api.", entry.names[0]),
        ));
    }
    Ok(())
}

/// Parses a command as [`execute`] would, without running it: the name lookup, `$db`,
/// the generic fields, write concern and the command's own typed parse. No I/O and no
/// engine access (the engine in `state` is only carried by the context); the fuzz
/// target `command_parse` drives this.
pub fn parse_command(
    state: &Arc<ServerState>,
    conn: &Arc<ConnInfo>,
    cmd: &Document,
    legacy_db: Option<&str>,
) -> Result<(), MongoError> {
    let name = cmd.keys().next().cloned().unwrap_or_default();
    let db = command_db(cmd, &name, legacy_db)?;
    let entry = lookup(&name, state.config.enable_test_commands)?;
    let envelope = Envelope::parse(entry, &name, &db, cmd)?;
    write_concern_problem(cmd, entry.kind)?;
    let ctx = Ctx {
        state: Arc::clone(state),
        conn: Arc::clone(conn),
        db,
        session: envelope.session(conn),
        deadline: None,
        op: None,
        txn: None,
        retryable: None,
    };
    (entry.check)(cmd, &ctx)
}

/// Runs one command. `legacy_db` is the database of an OP_QUERY (`db.$cmd`), which has no `$db`.
pub async fn execute(
    state: &Arc<ServerState>,
    conn: &Arc<ConnInfo>,
    cmd: Document,
    legacy_db: Option<&str>,
) -> Outcome {
    let name = cmd.keys().next().cloned().unwrap_or_default();
    let resolved = command_db(&cmd, &name, legacy_db).and_then(|db| {
        let entry = lookup(&name, state.config.enable_test_commands);
        if entry.is_err() {
            state.opcounters.command.fetch_add(1, Ordering::Relaxed);
            state.ops.unknown_command();
        }
        Ok((db, entry?))
    });
    let result = match resolved {
        Ok(_) if state.require_api_version.load(Ordering::Relaxed)
            && !cmd.contains_key("apiVersion") =>
        {
            Err(MongoError::location(
                498870,
                "The apiVersion parameter is required, please configure your MongoClient's API version",
            ))
        }
        Ok((db, entry)) => run(state, conn, entry, &name, cmd, db).await,
        // A mongod command Eddy does not have still meets `failCommand` first, as in
        // mongod (drivers' tests set it on authentication commands).
        Err(err) if err.is(ErrorCode::CommandNotSupported) && state.config.enable_test_commands => {
            match fail_command(state, conn, &name, &cmd, false, None).await {
                Ok(Injection::Close) => {
                    return Outcome {
                        reply: Reply::default(),
                        close: true,
                    }
                }
                Ok(Injection::Run { .. }) => Err(err),
                Err(injected) => Err(injected),
            }
        }
        Err(err) => Err(err),
    };
    result.unwrap_or_else(|err| Outcome {
        reply: error_reply(state, &err).into(),
        close: false,
    })
}

/// Runs one command for a client inside the server (the HTTP gateway,
/// `crate::http::watch`): the same lookup, authorization, rules and counters as
/// [`execute`], the command's own `$db`, but the error comes back typed rather than as
/// a reply document. Like mongod's internal clients it needs no `apiVersion` under
/// `requireApiVersion`.
pub async fn execute_typed(
    state: &Arc<ServerState>,
    conn: &Arc<ConnInfo>,
    cmd: Document,
) -> Result<Outcome, MongoError> {
    let name = cmd.keys().next().cloned().unwrap_or_default();
    let db = command_db(&cmd, &name, None)?;
    let entry = lookup(&name, state.config.enable_test_commands)?;
    run(state, conn, entry, &name, cmd, db).await
}

/// Runs a command of the table and counts it (`metrics.commands`, `opLatencies`).
async fn run(
    state: &Arc<ServerState>,
    conn: &Arc<ConnInfo>,
    entry: &'static Entry,
    name: &str,
    cmd: Document,
    db: String,
) -> Result<Outcome, MongoError> {
    let started = std::time::Instant::now();
    let result = run_command(state, conn, entry, name, cmd, db).await;
    state.ops.finished(entry, result.is_ok(), started.elapsed());
    result
}

async fn run_command(
    state: &Arc<ServerState>,
    conn: &Arc<ConnInfo>,
    entry: &'static Entry,
    name: &str,
    cmd: Document,
    db: String,
) -> Result<Outcome, MongoError> {
    count(state, entry.kind);
    let envelope = Envelope::parse(entry, name, &db, &cmd)?;
    crate::auth::check::authorize(state, conn, entry, &db, &cmd)?;
    // The session is keyed by its user too, so known once the user is.
    let session = envelope.session(conn);
    let Envelope {
        txn_number,
        retryable,
        txn: txn_request,
        ..
    } = envelope;
    if let Some(key) = &session {
        state.sessions.touch(key);
    }

    // From here on the command is an operation `currentOp` lists and `killOp` kills.
    let running = state.ops.start(conn, entry, &db, session.clone());
    let op = Arc::clone(&running.op);

    // Failpoints (test commands only): before the command runs, as mongod's failCommand.
    let mut write_concern_error = None;
    let mut wce_labels = None;
    if state.config.enable_test_commands {
        let in_txn = txn_request.as_ref().map(|_| is_commit_or_abort(entry));
        match fail_command(state, conn, name, &cmd, retryable, in_txn).await? {
            Injection::Close => {
                return Ok(Outcome {
                    reply: Reply::default(),
                    close: true,
                })
            }
            Injection::Run {
                write_concern_error: wce,
                labels,
            } => {
                write_concern_error = wce;
                wce_labels = labels;
            }
        }
        if cmd
            .get("maxTimeMS")
            .and_then(crate::args::as_integer)
            .is_some_and(|ms| ms > 0)
        {
            if let Some(err) = state.failpoints.max_time_expired() {
                return Err(err);
            }
        }
    }

    // The transaction it runs in (after the failpoints, as mongod: an injected error
    // leaves the session as it was, so the driver's retry may start it again).
    check_after_cluster_time(state, &cmd)?;
    let mut cmd = cmd;
    let txn = match (&txn_request, &session) {
        (Some(req), Some(key)) => Some(
            transaction(state, entry, key, req, &mut cmd)
                .map_err(|e| transaction_labels(e, entry, false))?,
        ),
        _ => None,
    };

    // This attempt's write concern error: injected by `failCommand`, or `w` more than
    // the one member. mongod waits for write concern after every write command, also a
    // retried or a failed one, so every reply below carries it.
    let unsatisfiable = write_concern_problem(&cmd, entry.kind)?;
    let wce = write_concern_error
        .or(unsatisfiable)
        .map(|wce| WriteConcernFailure::new(wce, wce_labels, retryable));

    // A retryable write: the engine runs only the statements its session record does
    // not list, and records those it runs in the same commit (`eddy_engine::write`'s
    // `retry`). `onPrimaryTransactionalWrite` may close the connection after it.
    let close_after = Arc::new(AtomicBool::new(false));
    let retryable_write = match (retryable, &session, txn_number) {
        (true, Some(key), Some(txn)) => {
            state.sessions.begin_retryable(key, txn)?;
            Some(retryable_write(state, key, txn, &cmd, &close_after)?)
        }
        _ => None,
    };

    // `maxTimeMS` of a read: the reply is 50 MaxTimeMSExpired once the deadline passes
    // (a getMore's own `maxTimeMS` is an await time instead, see `commands/cursors.rs`).
    let deadline = match entry.time_limited {
        true => crate::args::max_time_ms(&cmd)?
            .map(|ms| tokio::time::Instant::now() + Duration::from_millis(ms)),
        false => None,
    };
    let ctx = Ctx {
        state: Arc::clone(state),
        conn: Arc::clone(conn),
        db,
        session: session.clone(),
        deadline,
        op: Some(Arc::clone(&op)),
        txn: txn.clone(),
        retryable: retryable_write,
    };
    let work = async move {
        match deadline {
            // The reply is 50 at the deadline; the engine work on the blocking pool stops
            // at its next look at the same deadline (`Ctx::deadline`).
            Some(deadline) => tokio::time::timeout_at(deadline, (entry.handler)(cmd, ctx))
                .await
                .unwrap_or_else(|_| Err(MongoError::max_time_expired())),
            None => (entry.handler)(cmd, ctx).await,
        }
    };
    let result = tokio::select! {
        biased;
        result = work => result,
        () = op.killed() => {
            // As mongod: an interrupted getMore takes its cursor with it.
            if let Some(id) = op.cursor_id() {
                state.cursors.remove(id);
            }
            Err(MongoError::new(ErrorCode::Interrupted, "operation was interrupted"))
        }
    };
    drop(running);
    if close_after.load(Ordering::Relaxed) {
        // `onPrimaryTransactionalWrite` closed the connection during the write.
        return Ok(Outcome {
            reply: Reply::default(),
            close: true,
        });
    }
    if let Some(txn) = &txn {
        // A statement that fails aborts its transaction, as in mongod; so does one whose
        // writes failed in part (its reply carries `writeErrors`).
        let failed = match &result {
            Err(_) => true,
            Ok(reply) => reply.body.get("writeErrors").ok().flatten().is_some(),
        };
        if failed && !is_commit_or_abort(entry) {
            txn.abort("");
        }
    }
    let Reply { body, cursor } = match result {
        Ok(reply) => reply,
        Err(mut err) => {
            if retryable && category::is_retryable_write(err.code) {
                err = err.with_label(labels::RETRYABLE_WRITE_ERROR);
            }
            if txn.is_some() {
                err = transaction_labels(err, entry, wce.is_some());
            }
            if let Some(wce) = wce {
                for label in &wce.labels {
                    if !err.labels.contains(label) {
                        err = err.with_label(label);
                    }
                }
                err = err.with_extra(doc! {"writeConcernError": wce.error});
            }
            return Err(err);
        }
    };
    let body = finish(state, body, true, wce.map(|w| w.reply_fields(state)));
    Ok(Outcome {
        reply: Reply { body, cursor },
        close: false,
    })
}

/// The engine's view of a retryable write: the session's durable key, `txnNumber`,
/// the statements' ids (`stmtIds`, or `stmtId` for findAndModify; else each
/// statement's index) and, with test commands, the `onPrimaryTransactionalWrite`
/// failpoint, which sets `close_after` when it closes the connection.
fn retryable_write(
    state: &Arc<ServerState>,
    key: &SessionKey,
    txn: i64,
    cmd: &Document,
    close_after: &Arc<AtomicBool>,
) -> Result<eddy_engine::RetryableWrite, MongoError> {
    let int = |v: &Bson| match v {
        Bson::Int32(n) => Some(*n),
        Bson::Int64(n) => i32::try_from(*n).ok(),
        _ => None,
    };
    let name = cmd.keys().next().map_or("", String::as_str);
    let bad = |field: &str, v: &Bson| crate::args::wrong_type(name, field, v, "type 'int'");
    let stmt_ids = match (cmd.get("stmtIds"), cmd.get("stmtId")) {
        (Some(Bson::Array(ids)), _) => Some(
            ids.iter()
                .map(|v| int(v).ok_or_else(|| bad("stmtIds", v)))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        (Some(v), _) => return Err(crate::args::wrong_type(name, "stmtIds", v, "type 'array'")),
        (None, Some(v)) => Some(vec![int(v).ok_or_else(|| bad("stmtId", v))?]),
        (None, None) => None,
    };
    let hook: Option<eddy_engine::StatementHook> = state.config.enable_test_commands.then(|| {
        let state = Arc::clone(state);
        let close_after = Arc::clone(close_after);
        let session = key.id();
        Arc::new(move |stmt_id: i32| {
            let fault = state.failpoints.primary_transactional_write()?;
            if fault.close_connection {
                close_after.store(true, Ordering::Relaxed);
            }
            fault.fail_before_commit.map(|code| {
                MongoError::location(
                    code,
                    format!("Failing write for {session}:{txn}:{stmt_id} due to failpoint. The write must not be reflected."),
                )
            })
        }) as eddy_engine::StatementHook
    });
    Ok(eddy_engine::RetryableWrite {
        key: key.durable_key(),
        lsid: key.to_document(),
        txn_number: txn,
        stmt_ids,
        hook,
    })
}

/// Causal consistency (`readConcern.afterClusterTime`): every acknowledged write is
/// visible to every read that starts after it (one member, writes published before
/// they are answered), so a time the server has reached needs no wait; a time beyond
/// its cluster time is refused as mongod refuses it.
fn check_after_cluster_time(state: &ServerState, cmd: &Document) -> Result<(), MongoError> {
    let Ok(rc) = cmd.get_document("readConcern") else {
        return Ok(());
    };
    let Some(Bson::Timestamp(after)) = rc.get("afterClusterTime") else {
        return Ok(());
    };
    let now = state.engine.cluster_time();
    if (after.time, after.increment) > (now.time, now.increment) {
        return Err(MongoError::new(
            ErrorCode::InvalidOptions,
            format!(
                "readConcern afterClusterTime value must not be greater than the current clusterTime. Requested clusterTime: Timestamp({}, {}); current clusterTime: Timestamp({}, {})",
                after.time, after.increment, now.time, now.increment
            ),
        ));
    }
    Ok(())
}

/// mongod's labels on the error of a command in a transaction.
fn transaction_labels(err: MongoError, entry: &Entry, write_concern_error: bool) -> MongoError {
    match category::is_transient_transaction_error(
        err.code,
        is_commit_or_abort(entry),
        write_concern_error,
    ) {
        true => err.with_label(labels::TRANSIENT_TRANSACTION_ERROR),
        false => err,
    }
}

fn is_commit_or_abort(entry: &Entry) -> bool {
    matches!(entry.names[0], "commitTransaction" | "abortTransaction")
}

/// The session's transaction a command runs in (started by `startTransaction`), with
/// mongod's checks; the first statement's `readConcern` is the transaction's, so the
/// command itself does not see it.
fn transaction(
    state: &Arc<ServerState>,
    entry: &Entry,
    key: &SessionKey,
    req: &TxnRequest,
    cmd: &mut Document,
) -> Result<Arc<TxnHandle>, MongoError> {
    let engine = Arc::clone(&state.engine);
    // After a restart only the engine's session record knows the session's numbers.
    let durable = match req.start {
        true => engine.session_txn_number(&key.durable_key())?,
        false => None,
    };
    let lifetime = state.txn_lifetime.get();
    let handle = state
        .sessions
        .transaction(key, req, durable, lifetime, || {
            engine
                .begin_transaction(req.at_cluster_time)
                .map(|(txn, _)| txn)
        })?;
    if !is_commit_or_abort(entry) {
        handle.check_statement()?;
    }
    cmd.remove("readConcern");
    Ok(handle)
}

/// What `failCommand` does to a command about to run.
enum Injection {
    /// Close the connection without an answer.
    Close,
    /// Run it (after any `blockConnection` wait), maybe adding a `writeConcernError`
    /// (with these labels).
    Run {
        write_concern_error: Option<Document>,
        labels: Option<Vec<String>>,
    },
}

impl Injection {
    const NONE: Injection = Injection::Run {
        write_concern_error: None,
        labels: None,
    };
}

/// Fires `failCommand` for `name` (`Err`: answer with the injected error). `hello` can
/// be failed too (drivers' monitoring tests do), when listed by name; a handshake
/// `hello` is matched by the application name it carries.
async fn fail_command(
    state: &ServerState,
    conn: &ConnInfo,
    name: &str,
    cmd: &Document,
    retryable: bool,
    transaction: Option<bool>,
) -> Result<Injection, MongoError> {
    if name == "configureFailPoint" {
        return Ok(Injection::NONE);
    }
    let app_name = conn.app_name().or_else(|| {
        cmd.get_document("client")
            .and_then(|c| c.get_document("application"))
            .and_then(|a| a.get_str("name"))
            .ok()
            .map(str::to_owned)
    });
    let Some(injected) =
        state
            .failpoints
            .fail_command(name, app_name.as_deref(), retryable, transaction)
    else {
        return Ok(Injection::NONE);
    };
    if let Some(block) = injected.block {
        tokio::time::sleep(block).await;
    }
    if injected.close_connection {
        return Ok(Injection::Close);
    }
    if let Some(err) = injected.error {
        return Err(err);
    }
    Ok(Injection::Run {
        write_concern_error: injected.write_concern_error,
        labels: injected.labels,
    })
}

/// A write concern that failed: the `writeConcernError` document and the labels the
/// reply carries for it.
struct WriteConcernFailure {
    error: Document,
    labels: Vec<String>,
}

impl WriteConcernFailure {
    /// `labels` are the failpoint's; without them, a retryable write whose write concern
    /// failed with a retryable code is labelled for the driver to retry it, as mongod does.
    fn new(error: Document, labels: Option<Vec<String>>, retryable: bool) -> Self {
        let labels = labels.unwrap_or_else(|| {
            let code = error.get("code").and_then(crate::args::as_integer);
            match retryable && code.is_some_and(|c| category::is_retryable_write(c as i32)) {
                true => vec![labels::RETRYABLE_WRITE_ERROR.to_owned()],
                false => Vec::new(),
            }
        });
        WriteConcernFailure { error, labels }
    }

    /// The fields a successful reply gets (with the `topologyVersion` for a not-primary
    /// code, as mongod's).
    fn reply_fields(&self, state: &ServerState) -> Document {
        let mut extra = doc! {"writeConcernError": self.error.clone()};
        if !self.labels.is_empty() {
            extra.insert("errorLabels", self.labels.clone());
        }
        let code = self.error.get("code").and_then(crate::args::as_integer);
        if code.is_some_and(|c| category::is_not_primary(c as i32)) {
            extra.insert(
                "topologyVersion",
                crate::commands::hello::topology_version(state),
            );
        }
        extra
    }
}

/// Counts the command in `serverStatus.opcounters`.
fn count(state: &ServerState, kind: Kind) {
    let c = &state.opcounters;
    let counter = match kind {
        Kind::Insert => &c.insert,
        Kind::Update | Kind::FindAndModify => &c.update,
        Kind::Delete => &c.delete,
        Kind::Query => &c.query,
        Kind::GetMore => &c.getmore,
        Kind::Other => &c.command,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A one-member set cannot satisfy `w` greater than 1: the write is applied and the
/// reply carries mongod's `writeConcernError` (100 UnsatisfiableWriteConcern).
fn write_concern_problem(cmd: &Document, kind: Kind) -> Result<Option<Document>, MongoError> {
    let Some(wc) = cmd.get("writeConcern") else {
        return Ok(None);
    };
    let Bson::Document(wc) = wc else {
        return Err(crate::args::wrong_type(
            "",
            "writeConcern",
            wc,
            "type 'object'",
        ));
    };
    let w = match wc.get("w") {
        Some(Bson::Int32(n)) => Some(i64::from(*n)),
        Some(Bson::Int64(n)) => Some(*n),
        Some(Bson::Double(d)) => Some(*d as i64),
        _ => None,
    };
    if let Some(w) = w {
        if w < 0 {
            return Err(MongoError::new(
                ErrorCode::FailedToParse,
                "w has to be a non-negative number and not greater than 50; found: -1",
            ));
        }
        if w > 1 && (kind.is_write() || kind == Kind::Other) {
            return Ok(Some(doc! {
                "code": ErrorCode::UnsatisfiableWriteConcern.code(),
                "codeName": "UnsatisfiableWriteConcern",
                "errmsg": "Not enough data-bearing nodes",
            }));
        }
    }
    Ok(None)
}
