//! Logical sessions: `startSession`, `refreshSessions`, `endSessions`, `killSessions`,
//! `killAllSessions`. Ending or killing a session kills its cursors, as mongod does.

use bson::{doc, spec::BinarySubtype, Binary, Bson, Document};
use eddy_codes::MongoError;

use crate::args::wrong_type;
use crate::command::{Command, CommandResult, Ctx};
use crate::state::SessionKey;

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

/// The sessions named by a command, as the caller's: a user can end or kill only its own.
fn own(ctx: &Ctx, ids: &[Bson]) -> Vec<SessionKey> {
    let uid = ctx.conn().auth.session_uid();
    ids.iter().map(|id| SessionKey::new(id, uid)).collect()
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
        ctx.state()
            .sessions
            .touch(&own(&ctx, std::slice::from_ref(&id))[0]);
        Ok(doc! {"id": {"id": id}, "timeoutMinutes": ctx.state().config.session_timeout_minutes() as i32}.into())
    }
}

pub struct RefreshSessions(Vec<Bson>);

impl Command for RefreshSessions {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        session_ids(cmd, "refreshSessions").map(RefreshSessions)
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        for key in own(&ctx, &self.0) {
            ctx.state().sessions.touch(&key);
        }
        Ok(Document::new().into())
    }
}

/// `endSessions` and `killSessions`: the caller's sessions of these ids end, with their
/// cursors (another user's session of the same id is not the caller's, so stays).
fn end(ctx: &Ctx, ids: &[Bson]) -> CommandResult {
    let keys = own(ctx, ids);
    ctx.state().cursors.kill_sessions(&keys);
    ctx.state().sessions.end(&keys);
    Ok(Document::new().into())
}

pub struct EndSessions(Vec<Bson>);

impl Command for EndSessions {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        session_ids(cmd, "endSessions").map(EndSessions)
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        end(&ctx, &self.0)
    }
}

pub struct KillSessions(Vec<Bson>);

impl Command for KillSessions {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        session_ids(cmd, "killSessions").map(KillSessions)
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        end(&ctx, &self.0)
    }
}

/// `killAllSessions: [{user, db}, ...]`: the sessions of these users, or of every user
/// when the list is empty.
pub struct KillAllSessions(Vec<[u8; 32]>);

impl Command for KillAllSessions {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        let users = match cmd.get("killAllSessions") {
            Some(Bson::Array(users)) => users,
            Some(other) => {
                return Err(wrong_type(
                    "killAllSessions",
                    "killAllSessions",
                    other,
                    "type 'array'",
                ))
            }
            None => return Ok(KillAllSessions(Vec::new())),
        };
        users
            .iter()
            .enumerate()
            .map(|(i, u)| match u {
                Bson::Document(d) => {
                    let field = |f: &str| match d.get(f) {
                        Some(Bson::String(s)) => Ok(s.as_str()),
                        Some(other) => Err(wrong_type(
                            "killAllSessions",
                            &format!("{i}.{f}"),
                            other,
                            "type 'string'",
                        )),
                        None => Err(crate::args::missing(&format!("killAllSessions.{i}"), f)),
                    };
                    Ok(crate::auth::session_user_digest(
                        field("user")?,
                        field("db")?,
                    ))
                }
                other => Err(wrong_type(
                    "killAllSessions",
                    &i.to_string(),
                    other,
                    "type 'object'",
                )),
            })
            .collect::<Result<_, _>>()
            .map(KillAllSessions)
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let uids = (!self.0.is_empty()).then_some(self.0.as_slice());
        ctx.state().cursors.kill_sessions_of_users(uids);
        ctx.state().sessions.end_users(uids);
        Ok(Document::new().into())
    }
}
