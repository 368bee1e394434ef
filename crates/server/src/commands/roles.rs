//! User-defined roles: `createRole`, `updateRole`, `dropRole`, `dropAllRolesFromDatabase`,
//! `grantPrivilegesToRole`, `revokePrivilegesFromRole`, `grantRolesToRole`,
//! `revokeRolesFromRole`, `rolesInfo`. A role is a document of the engine's `roles`
//! table (`eddy_engine::users`): privileges, and roles it inherits.

use bson::{doc, Bson, Document};
use eddy_codes::{ErrorCode, MongoError};
use eddy_engine::users::{role_not_found, Principal, Put};
use eddy_engine::Engine;

use super::data::with_engine;
use super::users::{role_list, user_name};
use crate::args::{missing, wrong_type};
use crate::auth::roles::{self, is_builtin};
use crate::auth::{
    check_roles_exist, resolve_privileges, roles_bson, roles_of, Privilege, Resource, RoleName,
};
use crate::command::{Command, CommandResult, Ctx};

/// The `privileges` array of a role command, checked as mongod checks it: every
/// resource on the role's own database unless the role is on `admin`.
fn privileges(
    cmd: &Document,
    command: &str,
    db: &str,
) -> Result<Option<Vec<Document>>, MongoError> {
    let list = match cmd.get("privileges") {
        Some(Bson::Array(list)) => list,
        Some(v) => return Err(wrong_type(command, "privileges", v, "type 'array'")),
        None => return Ok(None),
    };
    let mut out = Vec::new();
    for p in list {
        let d = p
            .as_document()
            .ok_or_else(|| MongoError::bad_value("privileges must be objects"))?;
        let privilege = Privilege::from_document(d)?;
        if db != "admin" {
            let own = match &privilege.resource {
                Resource::Collection { db: d, .. } | Resource::Database(d) => d == db,
                _ => false,
            };
            if !own {
                return Err(MongoError::bad_value(format!(
                    "Roles on the '{db}' database cannot be granted privileges that target other databases or the cluster"
                )));
            }
        }
        out.push(doc! {
            "resource": d.get_document("resource").cloned().unwrap_or_default(),
            "actions": d.get_array("actions").cloned().unwrap_or_default(),
        });
    }
    Ok(Some(out))
}

/// Roles a role on `db` may inherit: roles of `db` (any, on `admin`).
fn check_inheritance(db: &str, roles: &[RoleName]) -> Result<(), MongoError> {
    if db != "admin" {
        if let Some(r) = roles.iter().find(|r| r.db != db) {
            return Err(MongoError::bad_value(format!(
                "Roles on the '{db}' database cannot inherit from roles on other databases: {}@{}",
                r.role, r.db
            )));
        }
    }
    Ok(())
}

fn role_name(cmd: &Document, command: &str) -> Result<String, MongoError> {
    let name = user_name(cmd, command)?;
    Ok(name)
}

/// A user-defined role's document, or 31 (a built-in role cannot be changed).
fn stored_role(e: &Engine, db: &str, name: &str) -> Result<Document, MongoError> {
    if is_builtin(&RoleName {
        role: name.to_owned(),
        db: db.to_owned(),
    }) {
        return Err(MongoError::new(
            ErrorCode::InvalidRoleModification,
            format!("Cannot modify built-in role: {name}@{db}"),
        ));
    }
    e.principal(Principal::Role, db, name)?
        .ok_or_else(|| role_not_found(db, name))
}

/// Checks that a role does not inherit from itself, through any chain.
fn check_no_cycle(e: &Engine, this: &RoleName, roles: &[RoleName]) -> Result<(), MongoError> {
    let mut todo: Vec<RoleName> = roles.to_vec();
    let mut seen: Vec<RoleName> = Vec::new();
    while let Some(r) = todo.pop() {
        if r == *this {
            return Err(MongoError::new(
                ErrorCode::InvalidRoleModification,
                format!(
                    "Granting roles to {}@{} would introduce a cycle in the role graph",
                    this.role, this.db
                ),
            ));
        }
        if seen.contains(&r) || is_builtin(&r) {
            continue;
        }
        seen.push(r.clone());
        if let Some(doc) = e.principal(Principal::Role, &r.db, &r.role)? {
            todo.extend(roles_of(&doc));
        }
    }
    Ok(())
}

pub struct CreateRole {
    name: String,
    privileges: Vec<Document>,
    roles: Vec<RoleName>,
}

impl Command for CreateRole {
    fn parse(cmd: &Document, ctx: &Ctx) -> Result<Self, MongoError> {
        let name = role_name(cmd, "createRole")?;
        if is_builtin(&RoleName {
            role: name.clone(),
            db: ctx.db().to_owned(),
        }) || roles::is_builtin(&RoleName {
            role: name.clone(),
            db: "admin".into(),
        }) {
            return Err(MongoError::new(
                ErrorCode::BadValue,
                format!("Cannot create roles with the same name as a built-in role: {name}"),
            ));
        }
        let privileges = privileges(cmd, "createRole", ctx.db())?
            .ok_or_else(|| missing("createRole", "privileges"))?;
        let roles = role_list(cmd, "createRole", ctx.db())?
            .ok_or_else(|| missing("createRole", "roles"))?;
        check_inheritance(ctx.db(), &roles)?;
        Ok(CreateRole {
            name,
            privileges,
            roles,
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let db = ctx.db().to_owned();
        with_engine(&ctx, move |e| {
            check_roles_exist(e, &self.roles)?;
            let role = doc! {
                "_id": format!("{db}.{}", self.name),
                "role": &self.name,
                "db": &db,
                "privileges": self.privileges,
                "roles": roles_bson(&self.roles),
            };
            e.put_principal(Principal::Role, role, Put::Create)
        })
        .await?;
        Ok(Document::new().into())
    }
}

pub struct UpdateRole {
    name: String,
    privileges: Option<Vec<Document>>,
    roles: Option<Vec<RoleName>>,
}

impl Command for UpdateRole {
    fn parse(cmd: &Document, ctx: &Ctx) -> Result<Self, MongoError> {
        let u = UpdateRole {
            name: role_name(cmd, "updateRole")?,
            privileges: privileges(cmd, "updateRole", ctx.db())?,
            roles: role_list(cmd, "updateRole", ctx.db())?,
        };
        if u.privileges.is_none() && u.roles.is_none() {
            return Err(MongoError::bad_value(
                "Must specify at least one field to update in updateRole",
            ));
        }
        if let Some(r) = &u.roles {
            check_inheritance(ctx.db(), r)?;
        }
        Ok(u)
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let db = ctx.db().to_owned();
        with_engine(&ctx, move |e| {
            let mut role = stored_role(e, &db, &self.name)?;
            if let Some(p) = self.privileges {
                role.insert("privileges", p);
            }
            if let Some(r) = &self.roles {
                check_roles_exist(e, r)?;
                let this = RoleName {
                    role: self.name.clone(),
                    db: db.clone(),
                };
                check_no_cycle(e, &this, r)?;
                role.insert("roles", roles_bson(r));
            }
            e.put_principal(Principal::Role, role, Put::Replace)
        })
        .await?;
        Ok(Document::new().into())
    }
}

pub struct DropRole {
    name: String,
}

impl Command for DropRole {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        Ok(DropRole {
            name: role_name(cmd, "dropRole")?,
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let db = ctx.db().to_owned();
        with_engine(&ctx, move |e| {
            stored_role(e, &db, &self.name)?;
            e.drop_principal(Principal::Role, &db, &self.name)
        })
        .await?;
        Ok(Document::new().into())
    }
}

pub struct DropAllRolesFromDatabase;

impl Command for DropAllRolesFromDatabase {
    fn parse(_cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        Ok(DropAllRolesFromDatabase)
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let db = ctx.db().to_owned();
        let n = with_engine(&ctx, move |e| e.drop_principals(Principal::Role, &db)).await?;
        Ok(doc! {"n": n as i64}.into())
    }
}

/// `grantPrivilegesToRole` and `revokePrivilegesFromRole`.
pub struct ChangePrivileges<const GRANT: bool> {
    name: String,
    privileges: Vec<Document>,
}

pub type GrantPrivilegesToRole = ChangePrivileges<true>;
pub type RevokePrivilegesFromRole = ChangePrivileges<false>;

impl<const GRANT: bool> Command for ChangePrivileges<GRANT> {
    fn parse(cmd: &Document, ctx: &Ctx) -> Result<Self, MongoError> {
        let command = if GRANT {
            "grantPrivilegesToRole"
        } else {
            "revokePrivilegesFromRole"
        };
        Ok(ChangePrivileges {
            name: role_name(cmd, command)?,
            privileges: privileges(cmd, command, ctx.db())?
                .ok_or_else(|| missing(command, "privileges"))?,
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let db = ctx.db().to_owned();
        with_engine(&ctx, move |e| {
            let mut role = stored_role(e, &db, &self.name)?;
            let mut held: Vec<Document> = role
                .get_array("privileges")
                .map(|a| a.iter().filter_map(Bson::as_document).cloned().collect())
                .unwrap_or_default();
            for p in self.privileges {
                let resource = p.get_document("resource").cloned().unwrap_or_default();
                let actions: Vec<Bson> = p.get_array("actions").cloned().unwrap_or_default();
                match held
                    .iter_mut()
                    .find(|h| h.get_document("resource").ok() == Some(&resource))
                {
                    Some(h) => {
                        let mut have: Vec<Bson> =
                            h.get_array("actions").cloned().unwrap_or_default();
                        if GRANT {
                            for a in actions {
                                if !have.contains(&a) {
                                    have.push(a);
                                }
                            }
                        } else {
                            have.retain(|a| !actions.contains(a));
                        }
                        h.insert("actions", have);
                    }
                    None if GRANT => held.push(doc! {"resource": resource, "actions": actions}),
                    None => {}
                }
            }
            held.retain(|h| h.get_array("actions").is_ok_and(|a| !a.is_empty()));
            role.insert("privileges", held);
            e.put_principal(Principal::Role, role, Put::Replace)
        })
        .await?;
        Ok(Document::new().into())
    }
}

/// `grantRolesToRole` and `revokeRolesFromRole`.
pub struct ChangeInheritance<const GRANT: bool> {
    name: String,
    roles: Vec<RoleName>,
}

pub type GrantRolesToRole = ChangeInheritance<true>;
pub type RevokeRolesFromRole = ChangeInheritance<false>;

impl<const GRANT: bool> Command for ChangeInheritance<GRANT> {
    fn parse(cmd: &Document, ctx: &Ctx) -> Result<Self, MongoError> {
        let command = if GRANT {
            "grantRolesToRole"
        } else {
            "revokeRolesFromRole"
        };
        let roles = role_list(cmd, command, ctx.db())?.ok_or_else(|| missing(command, "roles"))?;
        check_inheritance(ctx.db(), &roles)?;
        Ok(ChangeInheritance {
            name: role_name(cmd, command)?,
            roles,
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let db = ctx.db().to_owned();
        with_engine(&ctx, move |e| {
            let mut role = stored_role(e, &db, &self.name)?;
            let mut held = roles_of(&role);
            if GRANT {
                check_roles_exist(e, &self.roles)?;
                let this = RoleName {
                    role: self.name.clone(),
                    db: db.clone(),
                };
                check_no_cycle(e, &this, &self.roles)?;
                for r in self.roles {
                    if !held.contains(&r) {
                        held.push(r);
                    }
                }
            } else {
                held.retain(|h| !self.roles.contains(h));
            }
            role.insert("roles", roles_bson(&held));
            e.put_principal(Principal::Role, role, Put::Replace)
        })
        .await?;
        Ok(Document::new().into())
    }
}

/// Which roles `rolesInfo` shows.
enum Wanted {
    AllOfDb,
    Some(Vec<RoleName>),
}

pub struct RolesInfo {
    wanted: Wanted,
    show_privileges: bool,
    show_builtin: bool,
}

impl Command for RolesInfo {
    fn parse(cmd: &Document, ctx: &Ctx) -> Result<Self, MongoError> {
        let wanted = match cmd.get("rolesInfo") {
            Some(v) if crate::args::as_integer(v) == Some(1) => Wanted::AllOfDb,
            Some(Bson::Array(list)) => Wanted::Some(
                list.iter()
                    .map(|r| RoleName::parse(r, ctx.db()))
                    .collect::<Result<_, _>>()?,
            ),
            Some(v) => Wanted::Some(vec![RoleName::parse(v, ctx.db())?]),
            None => return Err(missing("rolesInfo", "rolesInfo")),
        };
        Ok(RolesInfo {
            wanted,
            show_privileges: cmd.get("showPrivileges").is_some_and(crate::args::truthy),
            show_builtin: cmd.get("showBuiltinRoles").is_some_and(crate::args::truthy),
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let db = ctx.db().to_owned();
        let shown = with_engine(&ctx, move |e| {
            let names: Vec<RoleName> = match self.wanted {
                Wanted::Some(names) => names,
                Wanted::AllOfDb => {
                    let mut names: Vec<RoleName> = Vec::new();
                    if self.show_builtin {
                        names.extend(roles::builtin_names(&db));
                    }
                    for r in e.principals(Principal::Role, Some(&db))? {
                        names.push(RoleName {
                            role: r.get_str("role").unwrap_or_default().to_owned(),
                            db: db.clone(),
                        });
                    }
                    names
                }
            };
            let mut out = Vec::new();
            for name in names {
                let builtin = is_builtin(&name);
                let (direct_privileges, inherits) = if builtin {
                    (roles::privileges(&name), Vec::new())
                } else {
                    match e.principal(Principal::Role, &name.db, &name.role)? {
                        Some(doc) => {
                            let privileges = doc
                                .get_array("privileges")
                                .map(|a| {
                                    a.iter()
                                        .filter_map(Bson::as_document)
                                        .map(Privilege::from_document)
                                        .collect::<Result<Vec<_>, _>>()
                                })
                                .unwrap_or(Ok(Vec::new()))?;
                            (privileges, roles_of(&doc))
                        }
                        // mongod leaves out roles that do not exist.
                        None => continue,
                    }
                };
                let mut role = doc! {
                    "_id": format!("{}.{}", name.db, name.role),
                    "role": &name.role,
                    "db": &name.db,
                    "isBuiltin": builtin,
                    "roles": roles_bson(&inherits),
                    "inheritedRoles": roles_bson(&inherits),
                };
                if self.show_privileges {
                    let as_docs = |p: &[Privilege]| -> Vec<Bson> {
                        p.iter().map(|p| Bson::Document(p.to_document())).collect()
                    };
                    role.insert("privileges", as_docs(&direct_privileges));
                    let mut all = direct_privileges.clone();
                    all.extend(resolve_privileges(e, &inherits)?);
                    role.insert("inheritedPrivileges", as_docs(&all));
                }
                out.push(Bson::Document(role));
            }
            Ok(out)
        })
        .await?;
        Ok(doc! {"roles": shown}.into())
    }
}
