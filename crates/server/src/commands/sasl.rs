//! `saslStart`, `saslContinue` and `logout`: SCRAM authentication
//! (see [`crate::auth::scram`]), also reached through `hello`'s `speculativeAuthenticate`.

use std::time::Duration;

use bson::{doc, spec::BinarySubtype, Binary, Bson, Document};
use eddy_codes::{ErrorCode, MongoError};

use crate::args::{missing, wrong_type};
use crate::auth::scram::{self, ClientFirst, Credentials, Mechanism};
use crate::auth::Identity;
use crate::command::{Command, CommandResult, ConnInfo, Ctx};
use crate::state::ServerState;

/// A failed authentication answers only after `min(failures, 10) x 100 ms`: guessing
/// passwords on one connection slows down, a single typo costs nothing noticeable.
const FAILURE_DELAY: Duration = Duration::from_millis(100);

fn mechanism(cmd: &Document, command: &str) -> Result<Mechanism, MongoError> {
    match cmd.get("mechanism") {
        Some(Bson::String(name)) => Mechanism::parse(name).ok_or_else(|| {
            MongoError::new(
                ErrorCode::MechanismUnavailable,
                format!(
                    "Received authentication for mechanism {name} which is unknown or not enabled"
                ),
            )
        }),
        Some(v) => Err(wrong_type(command, "mechanism", v, "type 'string'")),
        None => Err(missing(command, "mechanism")),
    }
}

fn payload(cmd: &Document, command: &str) -> Result<Vec<u8>, MongoError> {
    match cmd.get("payload") {
        Some(Bson::Binary(b)) => Ok(b.bytes.clone()),
        Some(Bson::String(s)) => Ok(s.as_bytes().to_vec()),
        Some(v) => Err(wrong_type(command, "payload", v, "type 'binData'")),
        None => Err(missing(command, "payload")),
    }
}

fn binary(bytes: Vec<u8>) -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Generic,
        bytes,
    })
}

/// The SCRAM step both `saslStart` and a speculative `hello` take: the server's first
/// message, with the conversation kept on the connection.
pub async fn start(
    state: &ServerState,
    conn: &ConnInfo,
    db: &str,
    mechanism: Mechanism,
    payload: &[u8],
    skip_empty_exchange: bool,
) -> Result<Document, MongoError> {
    if db == "$external" {
        return Err(MongoError::new(
            ErrorCode::BadValue,
            format!(
                "{} authentication must use an admin or user database",
                mechanism.name()
            ),
        ));
    }
    let first = ClientFirst::parse(payload)?;
    let credentials = state.engine.user(db, &first.user)?.and_then(|u| {
        u.get_document("credentials")
            .ok()?
            .get_document(mechanism.name())
            .ok()
            .and_then(Credentials::from_document)
    });
    let started = match scram::start(mechanism, db, first, credentials) {
        Ok(s) => s,
        Err(e) => return Err(slow_failure(conn, e).await),
    };
    let mut conversation = started.conversation;
    conversation.skip_empty_exchange = skip_empty_exchange;
    conn.auth.set_conversation(Some(conversation));
    Ok(doc! {"conversationId": 1, "done": false, "payload": binary(started.payload)})
}

/// Logs a failure (never the payload) and answers it after the connection's delay.
async fn slow_failure(conn: &ConnInfo, err: MongoError) -> MongoError {
    let before = conn.auth.failed();
    tracing::info!(connection = conn.id, peer = %conn.peer, code = err.code, "authentication failed");
    tokio::time::sleep(FAILURE_DELAY * before.min(10)).await;
    err
}

pub struct SaslStart {
    mechanism: Mechanism,
    payload: Vec<u8>,
    skip_empty_exchange: bool,
}

impl Command for SaslStart {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        Ok(SaslStart {
            mechanism: mechanism(cmd, "saslStart")?,
            payload: payload(cmd, "saslStart")?,
            skip_empty_exchange: cmd
                .get_document("options")
                .ok()
                .and_then(|o| o.get("skipEmptyExchange"))
                .is_some_and(crate::args::truthy),
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let reply = start(
            ctx.state(),
            ctx.conn(),
            ctx.db(),
            self.mechanism,
            &self.payload,
            self.skip_empty_exchange,
        )
        .await?;
        Ok(reply.into())
    }
}

pub struct SaslContinue {
    payload: Vec<u8>,
}

impl Command for SaslContinue {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        match cmd.get("conversationId") {
            Some(v) if crate::args::as_integer(v).is_some() => {}
            Some(v) => {
                return Err(wrong_type(
                    "saslContinue",
                    "conversationId",
                    v,
                    "type 'int'",
                ))
            }
            None => return Err(missing("saslContinue", "conversationId")),
        }
        Ok(SaslContinue {
            payload: payload(cmd, "saslContinue")?,
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let conn = ctx.conn();
        let Some(conversation) = conn.auth.take_conversation() else {
            return Err(MongoError::new(
                ErrorCode::ProtocolError,
                "No SASL session state found",
            ));
        };
        if conversation.proven {
            // The empty exchange a client sends when it did not ask to skip it.
            return Ok(
                doc! {"conversationId": 1, "done": true, "payload": binary(Vec::new())}.into(),
            );
        }
        let server_final = match conversation.finish(&self.payload) {
            Ok(v) => v,
            Err(e) => return Err(slow_failure(conn, e).await),
        };
        if let Some(previous) = conn.auth.identity() {
            if previous.user != conversation.user || previous.db != conversation.db {
                return Err(MongoError::new(
                    ErrorCode::ProtocolError,
                    format!(
                        "Each client connection may only be authenticated once. Previously authenticated as: {}@{}",
                        previous.user, previous.db
                    ),
                ));
            }
        }
        let identity = Identity::resolve(ctx.engine(), &conversation.user, &conversation.db)?;
        conn.auth.set_identity(Some(identity));
        tracing::info!(connection = conn.id, user = %conversation.user, db = %conversation.db, mechanism = conversation.mechanism.name(), "authenticated");
        let done = conversation.skip_empty_exchange;
        if !done {
            let mut waiting = conversation;
            waiting.proven = true;
            conn.auth.set_conversation(Some(waiting));
        }
        Ok(doc! {"conversationId": 1, "done": done, "payload": binary(server_final)}.into())
    }
}

/// `logout`: the connection is no longer authenticated.
pub struct Logout;

impl Command for Logout {
    fn parse(_cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        Ok(Logout)
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        ctx.conn().auth.set_identity(None);
        ctx.conn().auth.set_conversation(None);
        Ok(Document::new().into())
    }
}
