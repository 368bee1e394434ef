//! User management: `createUser`, `updateUser`, `dropUser`, `dropAllUsersFromDatabase`,
//! `grantRolesToUser`, `revokeRolesFromUser`, `usersInfo`. Users live in the engine's
//! `users` table (`eddy_engine::users`) with salted SCRAM credentials only.

use bson::{doc, Bson, Document};
use eddy_codes::MongoError;
use eddy_engine::users::{not_found, Put};

use crate::args::{missing, wrong_type};
use crate::auth::scram::{Credentials, Mechanism};
use crate::auth::{check_roles_exist, resolve_privileges, roles_bson, roles_of, RoleName};
use crate::command::{Command, CommandResult, Ctx};

use super::data::with_engine;

/// The user name argument (the command's first field).
pub(super) fn user_name(cmd: &Document, command: &str) -> Result<String, MongoError> {
    match cmd.get(command) {
        Some(Bson::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Bson::String(_)) => Err(MongoError::bad_value("User name must be non-empty")),
        Some(v) => Err(wrong_type(command, command, v, "type 'string'")),
        None => Err(missing(command, command)),
    }
}

/// A `roles` array of a user command.
pub(super) fn role_list(
    cmd: &Document,
    command: &str,
    db: &str,
) -> Result<Option<Vec<RoleName>>, MongoError> {
    match cmd.get("roles") {
        Some(Bson::Array(roles)) => roles
            .iter()
            .map(|r| RoleName::parse(r, db))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(v) => Err(wrong_type(command, "roles", v, "type 'array'")),
        None => Ok(None),
    }
}

fn password(cmd: &Document, command: &str) -> Result<Option<String>, MongoError> {
    match cmd.get("pwd") {
        Some(Bson::String(p)) if p.is_empty() => {
            Err(MongoError::bad_value("User passwords must not be empty"))
        }
        Some(Bson::String(p)) => Ok(Some(p.clone())),
        Some(v) => Err(wrong_type(command, "pwd", v, "type 'string'")),
        None => Ok(None),
    }
}

fn mechanisms(cmd: &Document, command: &str) -> Result<Option<Vec<Mechanism>>, MongoError> {
    match cmd.get("mechanisms") {
        Some(Bson::Array(names)) => {
            let mut out = Vec::new();
            for n in names {
                let mech = n.as_str().and_then(Mechanism::parse).ok_or_else(|| {
                    MongoError::bad_value(format!("Unknown auth mechanism '{n}'"))
                })?;
                if !out.contains(&mech) {
                    out.push(mech);
                }
            }
            if out.is_empty() {
                return Err(MongoError::bad_value("mechanisms field must not be empty"));
            }
            Ok(Some(out))
        }
        Some(v) => Err(wrong_type(command, "mechanisms", v, "type 'array'")),
        None => Ok(None),
    }
}

fn check_digest(cmd: &Document, mechs: &[Mechanism]) -> Result<(), MongoError> {
    if cmd.get("digestPassword") == Some(&Bson::Boolean(false))
        && mechs.contains(&Mechanism::Sha256)
    {
        return Err(MongoError::bad_value(
            "Use of SCRAM-SHA-256 requires undigested passwords",
        ));
    }
    Ok(())
}

fn credentials(user: &str, password: &str, mechs: &[Mechanism]) -> Result<Document, MongoError> {
    let mut creds = Document::new();
    for mech in mechs {
        creds.insert(
            mech.name(),
            Credentials::new(*mech, user, password)?.to_document(),
        );
    }
    Ok(creds)
}

pub struct CreateUser {
    user: String,
    password: String,
    roles: Vec<RoleName>,
    custom_data: Option<Document>,
    mechanisms: Vec<Mechanism>,
}

impl Command for CreateUser {
    fn parse(cmd: &Document, ctx: &Ctx) -> Result<Self, MongoError> {
        let user = user_name(cmd, "createUser")?;
        let roles = role_list(cmd, "createUser", ctx.db())?.ok_or_else(|| {
            MongoError::bad_value("\"createUser\" command requires a \"roles\" array")
        })?;
        let password = password(cmd, "createUser")?
            .ok_or_else(|| MongoError::bad_value("Must provide a 'pwd' field for all user documents, except those with '$external' as the user's source db"))?;
        let mechanisms = mechanisms(cmd, "createUser")?.unwrap_or(Mechanism::ALL.to_vec());
        check_digest(cmd, &mechanisms)?;
        let custom_data = match cmd.get("customData") {
            Some(Bson::Document(d)) => Some(d.clone()),
            Some(v) => return Err(wrong_type("createUser", "customData", v, "type 'object'")),
            None => None,
        };
        Ok(CreateUser {
            user,
            password,
            roles,
            custom_data,
            mechanisms,
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let db = ctx.db().to_owned();
        let mut user = doc! {
            "_id": format!("{db}.{}", self.user),
            "userId": bson::Binary {
                subtype: bson::spec::BinarySubtype::Uuid,
                bytes: uuid::Uuid::new_v4().as_bytes().to_vec(),
            },
            "user": &self.user,
            "db": &db,
            "credentials": credentials(&self.user, &self.password, &self.mechanisms)?,
            "roles": roles_bson(&self.roles),
        };
        if let Some(d) = self.custom_data {
            user.insert("customData", d);
        }
        let roles = self.roles;
        with_engine(&ctx, move |e| {
            check_roles_exist(e, &roles)?;
            e.put_user(user, Put::Create)
        })
        .await?;
        Ok(Document::new().into())
    }
}

pub struct UpdateUser {
    user: String,
    password: Option<String>,
    roles: Option<Vec<RoleName>>,
    custom_data: Option<Document>,
    mechanisms: Option<Vec<Mechanism>>,
}

impl Command for UpdateUser {
    fn parse(cmd: &Document, ctx: &Ctx) -> Result<Self, MongoError> {
        let u = UpdateUser {
            user: user_name(cmd, "updateUser")?,
            password: password(cmd, "updateUser")?,
            roles: role_list(cmd, "updateUser", ctx.db())?,
            custom_data: match cmd.get("customData") {
                Some(Bson::Document(d)) => Some(d.clone()),
                Some(v) => return Err(wrong_type("updateUser", "customData", v, "type 'object'")),
                None => None,
            },
            mechanisms: mechanisms(cmd, "updateUser")?,
        };
        if u.password.is_none()
            && u.roles.is_none()
            && u.custom_data.is_none()
            && u.mechanisms.is_none()
        {
            return Err(MongoError::bad_value(
                "Must specify at least one field to update in updateUser",
            ));
        }
        if let Some(m) = &u.mechanisms {
            check_digest(cmd, m)?;
        }
        Ok(u)
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let db = ctx.db().to_owned();
        with_engine(&ctx, move |e| {
            let mut user = e.user(&db, &self.user)?.ok_or_else(|| not_found(&db, &self.user))?;
            let had: Vec<Mechanism> = user
                .get_document("credentials")
                .map(|c| c.keys().filter_map(|k| Mechanism::parse(k)).collect())
                .unwrap_or_default();
            let mechs = self.mechanisms.clone().unwrap_or(had);
            match &self.password {
                Some(p) => {
                    user.insert("credentials", credentials(&self.user, p, &mechs)?);
                }
                None if self.mechanisms.is_some() => {
                    // Narrowing the mechanisms keeps the credentials of the rest.
                    let mut kept = Document::new();
                    if let Ok(creds) = user.get_document("credentials") {
                        for m in &mechs {
                            match creds.get(m.name()) {
                                Some(c) => {
                                    kept.insert(m.name(), c.clone());
                                }
                                None => {
                                    return Err(MongoError::bad_value(
                                        "mechanisms field must be a subset of previously set mechanisms",
                                    ))
                                }
                            }
                        }
                    }
                    user.insert("credentials", kept);
                }
                None => {}
            }
            if let Some(r) = &self.roles {
                check_roles_exist(e, r)?;
                user.insert("roles", roles_bson(r));
            }
            if let Some(d) = &self.custom_data {
                user.insert("customData", d.clone());
            }
            e.put_user(user, Put::Replace)
        })
        .await?;
        Ok(Document::new().into())
    }
}

pub struct DropUser {
    user: String,
}

impl Command for DropUser {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        Ok(DropUser {
            user: user_name(cmd, "dropUser")?,
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let db = ctx.db().to_owned();
        let name = self.user.clone();
        let existed = with_engine(&ctx, move |e| e.drop_user(&db, &name)).await?;
        if !existed {
            return Err(not_found(ctx.db(), &self.user));
        }
        Ok(Document::new().into())
    }
}

pub struct DropAllUsersFromDatabase;

impl Command for DropAllUsersFromDatabase {
    fn parse(_cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        Ok(DropAllUsersFromDatabase)
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let db = ctx.db().to_owned();
        let n = with_engine(&ctx, move |e| e.drop_users(&db)).await?;
        Ok(doc! {"n": n as i64}.into())
    }
}

/// `grantRolesToUser` and `revokeRolesFromUser`.
pub struct ChangeRoles<const GRANT: bool> {
    user: String,
    roles: Vec<RoleName>,
}

pub type GrantRolesToUser = ChangeRoles<true>;
pub type RevokeRolesFromUser = ChangeRoles<false>;

impl<const GRANT: bool> Command for ChangeRoles<GRANT> {
    fn parse(cmd: &Document, ctx: &Ctx) -> Result<Self, MongoError> {
        let command = if GRANT {
            "grantRolesToUser"
        } else {
            "revokeRolesFromUser"
        };
        let roles = role_list(cmd, command, ctx.db())?.ok_or_else(|| missing(command, "roles"))?;
        if roles.is_empty() {
            return Err(MongoError::bad_value(format!(
                "{command} command requires a non-empty \"roles\" array"
            )));
        }
        Ok(ChangeRoles {
            user: user_name(cmd, command)?,
            roles,
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let db = ctx.db().to_owned();
        with_engine(&ctx, move |e| {
            let mut user = e
                .user(&db, &self.user)?
                .ok_or_else(|| not_found(&db, &self.user))?;
            if GRANT {
                check_roles_exist(e, &self.roles)?;
            }
            let mut held = roles_of(&user);
            for r in self.roles {
                let at = held.iter().position(|h| *h == r);
                match (GRANT, at) {
                    (true, None) => held.push(r),
                    (false, Some(i)) => {
                        held.remove(i);
                    }
                    _ => {}
                }
            }
            user.insert("roles", roles_bson(&held));
            e.put_user(user, Put::Replace)
        })
        .await?;
        Ok(Document::new().into())
    }
}

/// Which users `usersInfo` shows.
enum Wanted {
    AllOfDb,
    AllDbs,
    Some(Vec<(String, String)>),
}

pub struct UsersInfo {
    wanted: Wanted,
    show_credentials: bool,
    show_privileges: bool,
}

impl Command for UsersInfo {
    fn parse(cmd: &Document, ctx: &Ctx) -> Result<Self, MongoError> {
        let name = |v: &Bson| -> Result<(String, String), MongoError> {
            match v {
                Bson::String(u) => Ok((ctx.db().to_owned(), u.clone())),
                Bson::Document(d) => match (d.get("user"), d.get("db")) {
                    (Some(Bson::String(u)), Some(Bson::String(db))) => Ok((db.clone(), u.clone())),
                    _ => Err(MongoError::bad_value(
                        "User and role names must be either strings or objects",
                    )),
                },
                _ => Err(MongoError::bad_value(
                    "User and role names must be either strings or objects",
                )),
            }
        };
        let wanted = match cmd.get("usersInfo") {
            Some(v) if crate::args::as_integer(v) == Some(1) => Wanted::AllOfDb,
            Some(Bson::Document(d)) if d.get("forAllDBs") == Some(&Bson::Boolean(true)) => {
                Wanted::AllDbs
            }
            Some(Bson::Array(users)) => {
                Wanted::Some(users.iter().map(name).collect::<Result<_, _>>()?)
            }
            Some(v) => Wanted::Some(vec![name(v)?]),
            None => return Err(missing("usersInfo", "usersInfo")),
        };
        let flag = |f: &str| cmd.get(f).is_some_and(crate::args::truthy);
        Ok(UsersInfo {
            wanted,
            show_credentials: flag("showCredentials"),
            show_privileges: flag("showPrivileges"),
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let db = ctx.db().to_owned();
        let (show_credentials, show_privileges) = (self.show_credentials, self.show_privileges);
        let shown = with_engine(&ctx, move |e| {
            let users = match self.wanted {
                Wanted::AllOfDb => e.users(Some(&db))?,
                Wanted::AllDbs => e.users(None)?,
                Wanted::Some(names) => {
                    let mut out = Vec::new();
                    for (db, name) in names {
                        out.extend(e.user(&db, &name)?);
                    }
                    out
                }
            };
            users
                .into_iter()
                .map(|u| describe(e, u, show_credentials, show_privileges).map(Bson::Document))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
        Ok(doc! {"users": shown}.into())
    }
}

/// A user as `usersInfo` shows it: `{_id, userId, user, db, roles, mechanisms,
/// customData?}` (+ credentials or privileges when asked).
fn describe(
    engine: &eddy_engine::Engine,
    mut user: Document,
    show_credentials: bool,
    show_privileges: bool,
) -> Result<Document, MongoError> {
    let credentials = user.remove("credentials");
    let mechanisms: Vec<Bson> = match &credentials {
        Some(Bson::Document(c)) => c.keys().map(|k| Bson::String(k.clone())).collect(),
        _ => Vec::new(),
    };
    let roles = roles_of(&user);
    user.insert("mechanisms", mechanisms);
    if show_credentials {
        if let Some(c) = credentials {
            user.insert("credentials", c);
        }
    }
    if show_privileges {
        user.insert("inheritedRoles", roles_bson(&roles));
        let privileges: Vec<Bson> = resolve_privileges(engine, &roles)?
            .iter()
            .map(|p| Bson::Document(p.to_document()))
            .collect();
        user.insert("inheritedPrivileges", privileges);
    }
    Ok(user)
}
