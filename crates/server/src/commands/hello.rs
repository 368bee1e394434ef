//! `hello` and the legacy `isMaster`/`ismaster`: this node as the primary of a
//! one-member replica set, as mongod 7.0 answers it.
//!
//! No `topologyVersion` is sent: drivers then poll with plain `hello` every
//! `heartbeatFrequencyMS` instead of streaming (awaitable) hellos, which a server must
//! hold for `maxAwaitTimeMS`; a node whose topology never changes gains nothing from them.

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
    Ok(Hello {
        legacy,
        hello_ok: cmd.get("helloOk").is_some_and(crate::args::truthy),
        client,
    })
}

impl Command for Hello {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        parse(cmd, false)
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        answer(self, &ctx)
    }
}

impl Command for Legacy {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        parse(cmd, true).map(Legacy)
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        answer(self.0, &ctx)
    }
}

fn answer(hello: Hello, ctx: &Ctx) -> CommandResult {
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
    if hello.hello_ok {
        reply.insert("helloOk", true);
    }
    Ok(reply.into())
}
