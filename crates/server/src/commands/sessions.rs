//! Logical sessions: `startSession`, `refreshSessions`, `endSessions`, `killSessions`,
//! `killAllSessions`. Ending or killing a session kills its cursors, as mongod does.

use bson::{doc, spec::BinarySubtype, Binary, Bson, Document};
use eddy_codes::MongoError;

use crate::args::wrong_type;
use crate::command::{Command, CommandResult, Ctx};

/// The `id`s of an array of `{id: UUID}` session documents.
fn session_ids(cmd: &Document, command: &str) -> Result<Vec<Bson>, MongoError> {
    match cmd.get(command) {
        Some(Bson::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Bson::Document(d) => d
                    .get("id")
                    .cloned()
                    .ok_or_else(|| crate::args::missing(&format!("{command}.{i}"), "id")),
                other => Err(wrong_type(command, &i.to_string(), other, "type 'object'")),
            })
            .collect(),
        Some(other) => Err(wrong_type(command, command, other, "type 'array'")),
        None => Ok(Vec::new()),
    }
}

pub struct StartSession;

impl Command for StartSession {
    fn parse(_cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        Ok(StartSession)
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let id = Bson::Binary(Binary {
            subtype: BinarySubtype::Uuid,
            bytes: uuid::Uuid::new_v4().as_bytes().to_vec(),
        });
        ctx.state().sessions.touch(&id);
        Ok(doc! {"id": {"id": id}, "timeoutMinutes": ctx.state().config.session_timeout_minutes() as i32}.into())
    }
}

pub struct RefreshSessions(Vec<Bson>);

impl Command for RefreshSessions {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        session_ids(cmd, "refreshSessions").map(RefreshSessions)
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        for id in &self.0 {
            ctx.state().sessions.touch(id);
        }
        Ok(Document::new().into())
    }
}

pub struct EndSessions(Vec<Bson>);

impl Command for EndSessions {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        session_ids(cmd, "endSessions").map(EndSessions)
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        ctx.state().cursors.kill_sessions(&self.0);
        ctx.state().sessions.end(&self.0);
        Ok(Document::new().into())
    }
}

pub struct KillSessions(Vec<Bson>);

impl Command for KillSessions {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        session_ids(cmd, "killSessions").map(KillSessions)
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        ctx.state().cursors.kill_sessions(&self.0);
        ctx.state().sessions.end(&self.0);
        Ok(Document::new().into())
    }
}

pub struct KillAllSessions;

impl Command for KillAllSessions {
    fn parse(_cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        Ok(KillAllSessions)
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        ctx.state().cursors.kill_all_sessions();
        ctx.state().sessions.clear();
        Ok(Document::new().into())
    }
}
