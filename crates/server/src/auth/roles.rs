//! The built-in roles and the privileges they grant, after mongod 7.0's.
//!
//! A privilege is an action on a resource: a collection, every collection of a
//! database, every collection of every database, or the cluster. Each role is a list
//! of privileges; a role of a database grants on that database only, the
//! `...AnyDatabase` roles, the cluster roles and `root` exist only on `admin`.

use bson::{doc, Bson, Document};
use eddy_codes::{ErrorCode, MongoError};

/// What a command may do; the names are mongod's action names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Find,
    Insert,
    Update,
    Remove,
    ChangeStream,
    KillCursors,
    ListCollections,
    ListIndexes,
    CollStats,
    DbStats,
    CreateCollection,
    DropCollection,
    ConvertToCapped,
    CreateIndex,
    DropIndex,
    CollMod,
    DropDatabase,
    RenameCollectionSameDb,
    Validate,
    ViewUser,
    CreateUser,
    DropUser,
    ChangePassword,
    ChangeCustomData,
    GrantRole,
    RevokeRole,
    ListDatabases,
    ServerStatus,
    ReplSetGetStatus,
    ReplSetGetConfig,
    ReplSetConfigure,
    GetCmdLineOpts,
    GetParameter,
    HostInfo,
    Shutdown,
    KillAnySession,
    ListSessions,
    /// Test-only commands (`configureFailPoint`): `root` and `__system` only.
    Internal,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Find => "find",
            Action::Insert => "insert",
            Action::Update => "update",
            Action::Remove => "remove",
            Action::ChangeStream => "changeStream",
            Action::KillCursors => "killCursors",
            Action::ListCollections => "listCollections",
            Action::ListIndexes => "listIndexes",
            Action::CollStats => "collStats",
            Action::DbStats => "dbStats",
            Action::CreateCollection => "createCollection",
            Action::DropCollection => "dropCollection",
            Action::ConvertToCapped => "convertToCapped",
            Action::CreateIndex => "createIndex",
            Action::DropIndex => "dropIndex",
            Action::CollMod => "collMod",
            Action::DropDatabase => "dropDatabase",
            Action::RenameCollectionSameDb => "renameCollectionSameDB",
            Action::Validate => "validate",
            Action::ViewUser => "viewUser",
            Action::CreateUser => "createUser",
            Action::DropUser => "dropUser",
            Action::ChangePassword => "changePassword",
            Action::ChangeCustomData => "changeCustomData",
            Action::GrantRole => "grantRole",
            Action::RevokeRole => "revokeRole",
            Action::ListDatabases => "listDatabases",
            Action::ServerStatus => "serverStatus",
            Action::ReplSetGetStatus => "replSetGetStatus",
            Action::ReplSetGetConfig => "replSetGetConfig",
            Action::ReplSetConfigure => "replSetConfigure",
            Action::GetCmdLineOpts => "getCmdLineOpts",
            Action::GetParameter => "getParameter",
            Action::HostInfo => "hostInfo",
            Action::Shutdown => "shutdown",
            Action::KillAnySession => "killAnySession",
            Action::ListSessions => "listSessions",
            Action::Internal => "internal",
        }
    }
}

/// What a privilege applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Resource {
    Collection {
        db: String,
        coll: String,
    },
    /// Every collection of a database (and the database itself).
    Database(String),
    /// Every collection of every database.
    AnyDatabase,
    Cluster,
}

impl Resource {
    pub fn collection(db: &str, coll: &str) -> Resource {
        Resource::Collection {
            db: db.to_owned(),
            coll: coll.to_owned(),
        }
    }

    /// Whether a privilege on `self` covers `target` (mongod's `matchesResource`; a
    /// database privilege covers its collections, except `system.*` ones).
    fn covers(&self, target: &Resource) -> bool {
        match (self, target) {
            (Resource::Cluster, Resource::Cluster) => true,
            (Resource::Cluster, _) | (_, Resource::Cluster) => false,
            (Resource::AnyDatabase, Resource::Collection { coll, .. }) => {
                !coll.starts_with("system.")
            }
            (Resource::AnyDatabase, _) => true,
            (Resource::Database(d), Resource::Database(t)) => d == t,
            (Resource::Database(d), Resource::Collection { db, coll }) => {
                d == db && !coll.starts_with("system.")
            }
            (Resource::Database(_), Resource::AnyDatabase) => false,
            (Resource::Collection { .. }, _) => self == target,
        }
    }

    pub fn to_document(&self) -> Document {
        match self {
            Resource::Collection { db, coll } => doc! {"db": db, "collection": coll},
            Resource::Database(db) => doc! {"db": db, "collection": ""},
            Resource::AnyDatabase => doc! {"db": "", "collection": ""},
            Resource::Cluster => doc! {"cluster": true},
        }
    }
}

/// An action on a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Privilege {
    pub resource: Resource,
    pub actions: Vec<Action>,
}

impl Privilege {
    pub fn to_document(&self) -> Document {
        doc! {
            "resource": self.resource.to_document(),
            "actions": self.actions.iter().map(|a| a.name()).collect::<Vec<_>>(),
        }
    }
}

/// A role, by name and database.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoleName {
    pub role: String,
    pub db: String,
}

impl RoleName {
    pub fn from_bson(v: &Bson) -> Option<RoleName> {
        let d = v.as_document()?;
        Some(RoleName {
            role: d.get_str("role").ok()?.to_owned(),
            db: d.get_str("db").ok()?.to_owned(),
        })
    }

    pub fn to_document(&self) -> Document {
        doc! {"role": &self.role, "db": &self.db}
    }

    /// A role argument of a user command: `"name"` (in `db`) or `{role, db}`.
    pub fn parse(v: &Bson, db: &str) -> Result<RoleName, MongoError> {
        let name = match v {
            Bson::String(role) => RoleName {
                role: role.clone(),
                db: db.to_owned(),
            },
            Bson::Document(_) => RoleName::from_bson(v).ok_or_else(|| {
                MongoError::bad_value("Role names must be either strings or objects")
            })?,
            _ => {
                return Err(MongoError::bad_value(
                    "Role names must be either strings or objects",
                ))
            }
        };
        if !is_builtin(&name) {
            return Err(MongoError::new(
                ErrorCode::RoleNotFound,
                format!("Could not find role: {}@{}", name.role, name.db),
            ));
        }
        Ok(name)
    }
}

const READ: &[Action] = &[
    Action::Find,
    Action::ChangeStream,
    Action::KillCursors,
    Action::ListCollections,
    Action::ListIndexes,
    Action::CollStats,
    Action::DbStats,
];

const WRITE: &[Action] = &[
    Action::Insert,
    Action::Update,
    Action::Remove,
    Action::CreateCollection,
    Action::DropCollection,
    Action::ConvertToCapped,
    Action::CreateIndex,
    Action::DropIndex,
    Action::RenameCollectionSameDb,
];

const DB_ADMIN: &[Action] = &[
    Action::ListCollections,
    Action::ListIndexes,
    Action::CollStats,
    Action::DbStats,
    Action::CreateCollection,
    Action::DropCollection,
    Action::ConvertToCapped,
    Action::CreateIndex,
    Action::DropIndex,
    Action::CollMod,
    Action::DropDatabase,
    Action::RenameCollectionSameDb,
    Action::Validate,
    Action::KillCursors,
];

const USER_ADMIN: &[Action] = &[
    Action::ViewUser,
    Action::CreateUser,
    Action::DropUser,
    Action::ChangePassword,
    Action::ChangeCustomData,
    Action::GrantRole,
    Action::RevokeRole,
];

const CLUSTER_MONITOR: &[Action] = &[
    Action::ServerStatus,
    Action::ReplSetGetStatus,
    Action::ReplSetGetConfig,
    Action::GetCmdLineOpts,
    Action::GetParameter,
    Action::HostInfo,
    Action::ListDatabases,
    Action::ListSessions,
];

const CLUSTER_MANAGER: &[Action] = &[Action::ReplSetConfigure, Action::KillAnySession];

const HOST_MANAGER: &[Action] = &[Action::Shutdown, Action::KillAnySession];

/// The roles every database has.
const DATABASE_ROLES: &[&str] = &["read", "readWrite", "dbAdmin", "userAdmin", "dbOwner"];

/// The roles only `admin` has.
const ADMIN_ROLES: &[&str] = &[
    "readAnyDatabase",
    "readWriteAnyDatabase",
    "dbAdminAnyDatabase",
    "userAdminAnyDatabase",
    "clusterMonitor",
    "clusterManager",
    "hostManager",
    "clusterAdmin",
    "backup",
    "restore",
    "root",
];

/// Whether a role exists (Eddy has built-in roles only).
pub fn is_builtin(r: &RoleName) -> bool {
    DATABASE_ROLES.contains(&r.role.as_str())
        || (r.db == "admin" && ADMIN_ROLES.contains(&r.role.as_str()))
}

fn on(resource: Resource, groups: &[&[Action]]) -> Privilege {
    Privilege {
        resource,
        actions: groups.iter().flat_map(|g| g.iter().copied()).collect(),
    }
}

/// The privileges of a built-in role (none for a name that is not one).
pub fn privileges(r: &RoleName) -> Vec<Privilege> {
    let db = || Resource::Database(r.db.clone());
    let any = || Resource::AnyDatabase;
    let cluster = |groups: &[&[Action]]| on(Resource::Cluster, groups);
    let list_dbs: &[Action] = &[Action::ListDatabases];
    if !is_builtin(r) {
        return Vec::new();
    }
    match r.role.as_str() {
        "read" => vec![on(db(), &[READ])],
        "readWrite" => vec![on(db(), &[READ, WRITE])],
        "dbAdmin" => vec![on(db(), &[DB_ADMIN])],
        "userAdmin" => vec![on(db(), &[USER_ADMIN])],
        "dbOwner" => vec![on(db(), &[READ, WRITE, DB_ADMIN, USER_ADMIN])],
        "readAnyDatabase" => vec![on(any(), &[READ]), cluster(&[list_dbs])],
        "readWriteAnyDatabase" => vec![on(any(), &[READ, WRITE]), cluster(&[list_dbs])],
        "dbAdminAnyDatabase" => vec![on(any(), &[DB_ADMIN]), cluster(&[list_dbs])],
        "userAdminAnyDatabase" => vec![on(any(), &[USER_ADMIN]), cluster(&[list_dbs])],
        "clusterMonitor" => vec![
            cluster(&[CLUSTER_MONITOR]),
            on(
                any(),
                &[&[
                    Action::CollStats,
                    Action::DbStats,
                    Action::ListIndexes,
                    Action::ListCollections,
                ]],
            ),
        ],
        "clusterManager" => vec![cluster(&[CLUSTER_MANAGER])],
        "hostManager" => vec![cluster(&[HOST_MANAGER])],
        "clusterAdmin" => vec![
            cluster(&[CLUSTER_MONITOR, CLUSTER_MANAGER, HOST_MANAGER]),
            on(
                any(),
                &[&[
                    Action::CollStats,
                    Action::DbStats,
                    Action::ListIndexes,
                    Action::ListCollections,
                    Action::DropDatabase,
                ]],
            ),
        ],
        "backup" => vec![on(any(), &[READ]), cluster(&[list_dbs])],
        "restore" => vec![on(any(), &[READ, WRITE, USER_ADMIN]), cluster(&[list_dbs])],
        "root" => vec![
            on(any(), &[READ, WRITE, DB_ADMIN, USER_ADMIN]),
            cluster(&[
                CLUSTER_MONITOR,
                CLUSTER_MANAGER,
                HOST_MANAGER,
                &[Action::Internal],
            ]),
            // root reads `system.*` collections too.
            on(Resource::Database(String::new()), &[READ, WRITE, DB_ADMIN]),
        ],
        _ => Vec::new(),
    }
}

/// Whether role `r` grants `action` on `target`.
pub fn grants(r: &RoleName, target: &Resource, action: Action) -> bool {
    if r.role == "root" && r.db == "admin" {
        return true;
    }
    privileges(r)
        .iter()
        .any(|p| p.actions.contains(&action) && p.resource.covers(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(role: &str, db: &str) -> RoleName {
        RoleName {
            role: role.into(),
            db: db.into(),
        }
    }

    #[test]
    fn database_roles_stay_in_their_database() {
        let read = role("read", "a");
        assert!(grants(&read, &Resource::collection("a", "c"), Action::Find));
        assert!(grants(
            &read,
            &Resource::collection("a", "c"),
            Action::ChangeStream
        ));
        assert!(!grants(
            &read,
            &Resource::collection("a", "c"),
            Action::Insert
        ));
        assert!(!grants(
            &read,
            &Resource::collection("b", "c"),
            Action::Find
        ));
        assert!(!grants(
            &read,
            &Resource::collection("a", "system.users"),
            Action::Find
        ));
        assert!(!grants(&read, &Resource::AnyDatabase, Action::Find));
        assert!(grants(
            &role("readWrite", "a"),
            &Resource::collection("a", "c"),
            Action::Insert
        ));
        assert!(grants(
            &role("userAdmin", "a"),
            &Resource::Database("a".into()),
            Action::CreateUser
        ));
        assert!(!grants(
            &role("userAdmin", "a"),
            &Resource::collection("a", "c"),
            Action::Find
        ));
    }

    #[test]
    fn admin_roles_only_on_admin() {
        assert!(!is_builtin(&role("root", "test")));
        assert!(is_builtin(&role("root", "admin")));
        let any = role("readAnyDatabase", "admin");
        assert!(grants(&any, &Resource::collection("x", "y"), Action::Find));
        assert!(grants(&any, &Resource::AnyDatabase, Action::ChangeStream));
        assert!(grants(&any, &Resource::Cluster, Action::ListDatabases));
        assert!(!grants(&any, &Resource::Cluster, Action::ServerStatus));
        let root = role("root", "admin");
        assert!(grants(&root, &Resource::Cluster, Action::Shutdown));
        assert!(grants(
            &root,
            &Resource::collection("a", "system.views"),
            Action::Find
        ));
        assert!(grants(
            &role("clusterMonitor", "admin"),
            &Resource::Cluster,
            Action::ServerStatus
        ));
        assert_eq!(
            RoleName::parse(&Bson::String("nope".into()), "a")
                .expect_err("unknown")
                .code,
            31
        );
    }
}
