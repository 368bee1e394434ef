//! `hello` and the legacy `isMaster`/`ismaster`: this node as the primary of a
//! one-member replica set, as mongod 7.0 answers it.
//!
//! Every reply carries a `topologyVersion` (this process's id, counter 0: the topology of
//! one node never changes), so drivers use the streaming protocol: an awaitable hello
//! (`topologyVersion` + `maxAwaitTimeMS`) naming the current version is held for
//! `maxAwaitTimeMS` before it is answered, and with `exhaustAllowed` the connection loop
//! keeps answering it (`moreToCome`) until the client goes away.
//!
//! A hello (or isMaster) with `compression: [names]` negotiates wire compression for the
//! connection ([`negotiate`]); what it means for replies is the connection's business
//! (`crate::connection`).

use bson::{doc, Bson, DateTime, Document};
use eddy_codes::{ErrorCode, MongoError};

use crate::command::{Command, CommandResult, Ctx};

/// The wire versions of MongoDB 7.0.
pub const MIN_WIRE_VERSION: i32 = 0;
pub const MAX_WIRE_VERSION: i32 = 21;
pub const MAX_BSON_OBJECT_SIZE: i32 = 16 * 1024 * 1024;
pub const MAX_MESSAGE_SIZE_BYTES: i32 = 48_000_000;
pub const MAX_WRITE_BATCH_SIZE: i32 = 100_000;

pub struct Hello {
    legacy: bool,
    hello_ok: bool,
    client: Option<Document>,
    awaitable: Option<Awaitable>,
    /// `saslSupportedMechs: "db.user"`: the mechanisms that user can authenticate with.
    sasl_supported_mechs: Option<(String, String)>,
    /// `speculativeAuthenticate: {saslStart: 1, mechanism, payload, db}`.
    speculative: Option<Document>,
    /// `compression: [names]`: the compressors the client can use, its preferred first.
    compression: Option<Vec<String>>,
}

/// An awaitable hello: the client's `topologyVersion` and its `maxAwaitTimeMS`.
struct Awaitable {
    process_id: Bson,
    counter: i64,
    wait_ms: u64,
}

/// The topology version counter: a single node never changes its topology.
const TOPOLOGY_COUNTER: i64 = 0;

/// This server's `topologyVersion`: in every `hello`, and in the replies that fail with
/// a not-primary error (`crate::dispatch`).
pub fn topology_version(state: &crate::state::ServerState) -> Document {
    doc! {"processId": state.process_id, "counter": TOPOLOGY_COUNTER}
}

/// `topologyVersion` and `maxAwaitTimeMS` come together (31368); the counter is not
/// negative (31372), nor the wait (31373).
fn awaitable(cmd: &Document, name: &str) -> Result<Option<Awaitable>, MongoError> {
    let version = match cmd.get("topologyVersion") {
        None => None,
        Some(Bson::Document(tv)) => {
            let process = tv
                .get("processId")
                .cloned()
                .ok_or_else(|| crate::args::missing("topologyVersion", "processId"))?;
            let counter = match tv.get("counter") {
                Some(c) => crate::args::as_integer(c).ok_or_else(|| {
                    crate::args::wrong_type("topologyVersion", "counter", c, "type 'long'")
                })?,
                None => return Err(crate::args::missing("topologyVersion", "counter")),
            };
            Some((process, counter))
        }
        Some(v) => {
            return Err(crate::args::wrong_type(
                name,
                "topologyVersion",
                v,
                "type 'object'",
            ))
        }
    };
    let wait = match cmd.get("maxAwaitTimeMS") {
        None => None,
        Some(v) => Some(
            crate::args::as_integer(v)
                .ok_or_else(|| crate::args::wrong_type(name, "maxAwaitTimeMS", v, "type 'long'"))?,
        ),
    };
    match (version, wait) {
        (None, None) => Ok(None),
        (Some((process_id, counter)), Some(wait)) => {
            if counter < 0 {
                return Err(MongoError::location(
                    31372,
                    "topologyVersion must have a non-negative counter",
                ));
            }
            let wait_ms = u64::try_from(wait).map_err(|_| {
                MongoError::location(31373, "maxAwaitTimeMS must be a non-negative integer")
            })?;
            Ok(Some(Awaitable {
                process_id,
                counter,
                wait_ms,
            }))
        }
        (version, _) => Err(MongoError::location(
            31368,
            match version {
                Some(_) => "A request with a 'topologyVersion' must include 'maxAwaitTimeMS'",
                None => "A request with 'maxAwaitTimeMS' must include a 'topologyVersion'",
            },
        )),
    }
}

/// Whether a command is an awaitable hello (the connection loop streams those).
pub fn is_awaitable(cmd: &Document) -> bool {
    cmd.contains_key("topologyVersion") && cmd.contains_key("maxAwaitTimeMS")
}

pub type IsMaster = Legacy;

/// `isMaster`: the same answer, with `ismaster` in place of `isWritablePrimary`.
pub struct Legacy(Hello);

fn parse(cmd: &Document, legacy: bool) -> Result<Hello, MongoError> {
    let client = match cmd.get("client") {
        None => None,
        Some(Bson::Document(d)) => Some(d.clone()),
        Some(v) => {
            return Err(crate::args::wrong_type(
                if legacy { "isMaster" } else { "hello" },
                "client",
                v,
                "type 'object'",
            ))
        }
    };
    if cmd.get("loadBalanced").is_some_and(crate::args::truthy) {
        return Err(MongoError::bad_value(
            "The server is being accessed through a load balancer, but this cluster does not support load balanced connections",
        ));
    }
    let name = if legacy { "isMaster" } else { "hello" };
    let sasl_supported_mechs = match cmd.get("saslSupportedMechs") {
        None => None,
        Some(Bson::String(s)) => match s.split_once('.') {
            Some((db, user)) if !db.is_empty() && !user.is_empty() => {
                Some((db.to_owned(), user.to_owned()))
            }
            _ => {
                return Err(MongoError::bad_value(format!(
                    "UserName must contain a '.' separated database.user pair: {s}"
                )))
            }
        },
        Some(v) => {
            return Err(crate::args::wrong_type(
                name,
                "saslSupportedMechs",
                v,
                "type 'string'",
            ))
        }
    };
    let speculative = match cmd.get("speculativeAuthenticate") {
        None => None,
        Some(Bson::Document(d)) => Some(d.clone()),
        Some(v) => {
            return Err(crate::args::wrong_type(
                name,
                "speculativeAuthenticate",
                v,
                "type 'object'",
            ))
        }
    };
    let compression = match cmd.get("compression") {
        None => None,
        Some(Bson::Array(names)) => Some(
            names
                .iter()
                .enumerate()
                .map(|(i, n)| match n {
                    Bson::String(s) => Ok(s.clone()),
                    other => Err(crate::args::wrong_type(
                        name,
                        &format!("compression.{i}"),
                        other,
                        "type 'string'",
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(v) => {
            return Err(crate::args::wrong_type(
                name,
                "compression",
                v,
                "type 'array'",
            ))
        }
    };
    Ok(Hello {
        legacy,
        compression,
        hello_ok: cmd.get("helloOk").is_some_and(crate::args::truthy),
        client,
        awaitable: awaitable(cmd, name)?,
        sasl_supported_mechs,
        speculative,
    })
}

impl Command for Hello {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        parse(cmd, false)
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        answer(self, &ctx).await
    }
}

impl Command for Legacy {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        parse(cmd, true).map(Legacy)
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        answer(self.0, &ctx).await
    }
}

/// An awaitable hello that names this process's current topology version waits
/// `maxAwaitTimeMS` for a change (there is none) before it is answered; one naming
/// another process or an older counter is answered at once, as by mongod.
async fn await_change(hello: &Hello, ctx: &Ctx) -> Result<(), MongoError> {
    let Some(Awaitable {
        process_id,
        counter,
        wait_ms,
    }) = &hello.awaitable
    else {
        return Ok(());
    };
    if *process_id != Bson::ObjectId(ctx.state().process_id) {
        return Ok(());
    }
    if *counter > TOPOLOGY_COUNTER {
        return Err(MongoError::location(
            31382,
            format!("Received a topology version with counter: {counter} which is greater than the server topology version counter: {TOPOLOGY_COUNTER}"),
        ));
    }
    if *counter == TOPOLOGY_COUNTER {
        tokio::time::sleep(std::time::Duration::from_millis(*wait_ms)).await;
    }
    Ok(())
}

async fn answer(hello: Hello, ctx: &Ctx) -> CommandResult {
    await_change(&hello, ctx).await?;
    if let Some(client) = hello.client {
        let mut slot = ctx.conn().client.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() {
            return Err(MongoError::new(
                ErrorCode::ClientMetadataCannotBeMutated,
                "The client metadata document may only be sent in the first hello",
            ));
        }
        *slot = Some(client);
    }
    let state = ctx.state();
    let me = state.config.advertised_host();
    let op_time = ctx.engine().last_op_time();
    let last_write_date = DateTime::from_millis(i64::from(op_time.time) * 1000);
    let mut reply = doc! {
        "hosts": [me.clone()],
        "setName": state.config.repl_set.clone(),
        "setVersion": 1,
    };
    if hello.legacy {
        reply.insert("ismaster", true);
    } else {
        reply.insert("isWritablePrimary", true);
    }
    reply.insert("secondary", false);
    reply.insert("primary", me.clone());
    reply.insert("me", me);
    reply.insert("electionId", state.election_id);
    reply.insert(
        "lastWrite",
        doc! {
            "opTime": {"ts": op_time, "t": 1_i64},
            "lastWriteDate": last_write_date,
            "majorityOpTime": {"ts": op_time, "t": 1_i64},
            "majorityWriteDate": last_write_date,
        },
    );
    reply.insert("maxBsonObjectSize", MAX_BSON_OBJECT_SIZE);
    reply.insert("maxMessageSizeBytes", MAX_MESSAGE_SIZE_BYTES);
    reply.insert("maxWriteBatchSize", MAX_WRITE_BATCH_SIZE);
    reply.insert("localTime", DateTime::now());
    reply.insert(
        "logicalSessionTimeoutMinutes",
        ctx.state().config.session_timeout_minutes() as i32,
    );
    reply.insert("connectionId", ctx.conn().id as i32);
    reply.insert("minWireVersion", MIN_WIRE_VERSION);
    reply.insert("maxWireVersion", MAX_WIRE_VERSION);
    reply.insert("readOnly", false);
    reply.insert("topologyVersion", topology_version(state));
    let negotiated = negotiate(hello.compression.as_deref(), ctx);
    if !negotiated.is_empty() {
        let names: Vec<Bson> = negotiated.iter().map(|c| c.name().into()).collect();
        reply.insert("compression", names);
    }
    if hello.hello_ok {
        reply.insert("helloOk", true);
    }
    if let Some((db, user)) = &hello.sasl_supported_mechs {
        if let Some(u) = ctx.engine().user(db, user)? {
            let mechs: Vec<Bson> = u
                .get_document("credentials")
                .map(|c| c.keys().map(|k| Bson::String(k.clone())).collect())
                .unwrap_or_default();
            reply.insert("saslSupportedMechs", mechs);
        }
    }
    if let Some(spec) = &hello.speculative {
        // A failed speculative authentication is not an error of the hello: the
        // driver then authenticates the ordinary way and meets the error there.
        if let Some(first) = speculative_start(spec, ctx).await {
            reply.insert("speculativeAuthenticate", first);
        }
    }
    Ok(reply.into())
}

/// Compression negotiation, as mongod's `MessageCompressorManager::serverNegotiate`: a
/// hello naming compressors (re)negotiates the connection's list, the client's names
/// that this server has (`--networkMessageCompressors`) in the client's order; a hello
/// without `compression` reports what was negotiated before. Names the server lacks are
/// skipped, not refused.
fn negotiate(client: Option<&[String]>, ctx: &Ctx) -> Vec<eddy_wire::Compressor> {
    let mut slot = ctx
        .conn()
        .compression
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(names) = client {
        let offered = ctx.state().config.compressors;
        *slot = names
            .iter()
            .filter_map(|n| eddy_wire::Compressor::from_name(n))
            .filter(|c| offered.contains(*c))
            .collect();
    }
    slot.clone()
}

/// The first step of a speculative SCRAM authentication, if it can be taken.
async fn speculative_start(spec: &Document, ctx: &Ctx) -> Option<Document> {
    if !spec.contains_key("saslStart") {
        // MONGODB-X509's `authenticate` and friends: not supported, nothing to say.
        return None;
    }
    let mechanism = crate::auth::scram::Mechanism::parse(spec.get_str("mechanism").ok()?)?;
    let payload = match spec.get("payload")? {
        Bson::Binary(b) => b.bytes.clone(),
        _ => return None,
    };
    let db = spec.get_str("db").ok()?;
    let skip = spec
        .get_document("options")
        .ok()
        .and_then(|o| o.get("skipEmptyExchange"))
        .is_some_and(crate::args::truthy);
    super::sasl::start(ctx.state(), ctx.conn(), db, mechanism, &payload, skip)
        .await
        .ok()
}
