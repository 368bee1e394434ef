//! The built-in roles and the privileges they grant, after mongod 7.0's.
//!
//! A privilege is an action on a resource: a collection, every collection of a
//! database, every collection of every database, or the cluster. Each role is a list
//! of privileges; a role of a database grants on that database only, the
//! `...AnyDatabase` roles, the cluster roles and `root` exist only on `admin`.

use bson::{doc, Bson, Document};
use eddy_codes::MongoError;

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
    Fsync,
    Shutdown,
    KillAnySession,
    ListSessions,
    CreateRole,
    DropRole,
    ViewRole,
    /// `currentOp` / `$currentOp` of every user.
    Inprog,
    /// `killOp` of another user's operation.
    Killop,
    /// Test-only commands (`configureFailPoint`): `root` and `__system` only.
    Internal,
    /// Every action (`root`'s privilege on every resource).
    AnyAction,
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
            Action::Fsync => "fsync",
            Action::Shutdown => "shutdown",
            Action::KillAnySession => "killAnySession",
            Action::ListSessions => "listSessions",
            Action::CreateRole => "createRole",
            Action::DropRole => "dropRole",
            Action::ViewRole => "viewRole",
            Action::Inprog => "inprog",
            Action::Killop => "killop",
            Action::Internal => "internal",
            Action::AnyAction => "anyAction",
        }
    }

    /// Every action Eddy checks.
    const ALL: [Action; 45] = [
        Action::Find,
        Action::Insert,
        Action::Update,
        Action::Remove,
        Action::ChangeStream,
        Action::KillCursors,
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
        Action::ViewUser,
        Action::CreateUser,
        Action::DropUser,
        Action::ChangePassword,
        Action::ChangeCustomData,
        Action::GrantRole,
        Action::RevokeRole,
        Action::ListDatabases,
        Action::ServerStatus,
        Action::ReplSetGetStatus,
        Action::ReplSetGetConfig,
        Action::ReplSetConfigure,
        Action::GetCmdLineOpts,
        Action::GetParameter,
        Action::HostInfo,
        Action::Fsync,
        Action::Shutdown,
        Action::KillAnySession,
        Action::ListSessions,
        Action::CreateRole,
        Action::DropRole,
        Action::ViewRole,
        Action::Inprog,
        Action::Killop,
        Action::Internal,
        Action::AnyAction,
    ];

    /// An action named in a user-defined role: one Eddy checks (`Ok(Some)`), one of
    /// mongod's that guards nothing Eddy has (`Ok(None)`, kept but never needed), or an
    /// unknown name (2 BadValue, as mongod).
    pub fn parse(name: &str) -> Result<Option<Action>, MongoError> {
        if let Some(a) = Action::ALL
            .iter()
            .find(|a| a.name() == name && **a != Action::Internal)
        {
            return Ok(Some(*a));
        }
        if MONGOD_ONLY_ACTIONS.contains(&name) {
            return Ok(None);
        }
        Err(MongoError::bad_value(format!(
            "Unrecognized action privilege string: {name}"
        )))
    }
}

/// mongod's action names that guard commands Eddy does not have.
const MONGOD_ONLY_ACTIONS: &[&str] = &[
    "analyze",
    "applicationMessage",
    "appendOplogNote",
    "bypassDocumentValidation",
    "changeOwnCustomData",
    "changeOwnPassword",
    "cleanupOrphaned",
    "compact",
    "connPoolStats",
    "connPoolSync",
    "cpuProfiler",
    "dropConnections",
    "enableProfiler",
    "enableSharding",
    "flushRouterConfig",
    "getDefaultRWConcern",
    "getLog",
    "getShardMap",
    "invalidateUserCache",
    "listShards",
    "logRotate",
    "netstat",
    "planCacheIndexFilter",
    "planCacheRead",
    "planCacheWrite",
    "reIndex",
    "replSetHeartbeat",
    "replSetStateChange",
    "resync",
    "setDefaultRWConcern",
    "setFeatureCompatibilityVersion",
    "setParameter",
    "shardingState",
    "splitVector",
    "storageDetails",
    "top",
    "touch",
    "unlock",
    "useUUID",
];

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
    /// The collection of this name in every database.
    CollectionInAnyDatabase(String),
    Cluster,
    /// Everything, `system.*` collections and the cluster included (`root`).
    AnyResource,
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
        let user_collection = |coll: &str| !coll.starts_with("system.");
        match (self, target) {
            (Resource::AnyResource, _) => true,
            (_, Resource::AnyResource) => false,
            (Resource::Cluster, t) => *t == Resource::Cluster,
            (_, Resource::Cluster) => false,
            (Resource::AnyDatabase, Resource::Collection { coll, .. }) => user_collection(coll),
            (Resource::AnyDatabase, Resource::CollectionInAnyDatabase(coll)) => {
                user_collection(coll)
            }
            (Resource::AnyDatabase, _) => true,
            (Resource::Database(d), Resource::Database(t)) => d == t,
            (Resource::Database(d), Resource::Collection { db, coll }) => {
                d == db && user_collection(coll)
            }
            (Resource::Database(_), _) => false,
            (Resource::CollectionInAnyDatabase(c), Resource::Collection { coll, .. }) => c == coll,
            (Resource::CollectionInAnyDatabase(c), Resource::CollectionInAnyDatabase(t)) => c == t,
            (Resource::CollectionInAnyDatabase(_), _) => false,
            (Resource::Collection { .. }, _) => self == target,
        }
    }

    /// A privilege's `resource` document: `{db, collection}` (either may be empty),
    /// `{cluster: true}` or `{anyResource: true}`.
    pub fn from_document(d: &Document) -> Result<Resource, MongoError> {
        if d.get("cluster") == Some(&Bson::Boolean(true)) {
            return Ok(Resource::Cluster);
        }
        if d.get("anyResource") == Some(&Bson::Boolean(true)) {
            return Ok(Resource::AnyResource);
        }
        match (d.get_str("db"), d.get_str("collection")) {
            (Ok(""), Ok("")) => Ok(Resource::AnyDatabase),
            (Ok(""), Ok(coll)) => Ok(Resource::CollectionInAnyDatabase(coll.to_owned())),
            (Ok(db), Ok("")) => Ok(Resource::Database(db.to_owned())),
            (Ok(db), Ok(coll)) => Ok(Resource::collection(db, coll)),
            _ => Err(MongoError::bad_value(format!(
                "resource must have both a 'db' and a 'collection' string field, or 'cluster: true', or 'anyResource: true': {d}"
            ))),
        }
    }

    pub fn to_document(&self) -> Document {
        match self {
            Resource::Collection { db, coll } => doc! {"db": db, "collection": coll},
            Resource::Database(db) => doc! {"db": db, "collection": ""},
            Resource::AnyDatabase => doc! {"db": "", "collection": ""},
            Resource::CollectionInAnyDatabase(coll) => doc! {"db": "", "collection": coll},
            Resource::Cluster => doc! {"cluster": true},
            Resource::AnyResource => doc! {"anyResource": true},
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
    /// A privilege of a user-defined role: `{resource, actions: [...]}`.
    pub fn from_document(d: &Document) -> Result<Privilege, MongoError> {
        let resource = match d.get("resource") {
            Some(Bson::Document(r)) => Resource::from_document(r)?,
            _ => {
                return Err(MongoError::bad_value(
                    "privilege documents must have a 'resource' object",
                ))
            }
        };
        let names = d.get_array("actions").map_err(|_| {
            MongoError::bad_value("privilege documents must have an 'actions' array")
        })?;
        let mut actions = Vec::new();
        for name in names {
            let name = name
                .as_str()
                .ok_or_else(|| MongoError::bad_value("action names must be strings"))?;
            if let Some(a) = Action::parse(name)? {
                actions.push(a);
            }
        }
        Ok(Privilege { resource, actions })
    }

    /// Whether this privilege's resource covers `target` (for some action).
    pub fn covers(&self, target: &Resource) -> bool {
        !self.actions.is_empty() && self.resource.covers(target)
    }

    /// Whether this privilege grants `action` on `target`.
    pub fn grants(&self, target: &Resource, action: Action) -> bool {
        (self.actions.contains(&action) || self.actions.contains(&Action::AnyAction))
            && self.resource.covers(target)
    }

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

    /// A role argument of a user or role command: `"name"` (in `db`) or `{role, db}`.
    /// Whether it exists is for the caller to check ([`is_builtin`], or the engine).
    pub fn parse(v: &Bson, db: &str) -> Result<RoleName, MongoError> {
        match v {
            Bson::String(role) => Ok(RoleName {
                role: role.clone(),
                db: db.to_owned(),
            }),
            Bson::Document(_) => RoleName::from_bson(v).ok_or_else(|| {
                MongoError::bad_value("Role names must be either strings or objects")
            }),
            _ => Err(MongoError::bad_value(
                "Role names must be either strings or objects",
            )),
        }
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
    Action::CreateRole,
    Action::DropRole,
    Action::ViewRole,
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
    Action::Inprog,
];

const CLUSTER_MANAGER: &[Action] = &[Action::ReplSetConfigure, Action::KillAnySession];

const HOST_MANAGER: &[Action] = &[
    Action::Shutdown,
    Action::Fsync,
    Action::KillAnySession,
    Action::Killop,
];

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

/// Whether a role is one of the built-in ones.
pub fn is_builtin(r: &RoleName) -> bool {
    DATABASE_ROLES.contains(&r.role.as_str())
        || (r.db == "admin" && ADMIN_ROLES.contains(&r.role.as_str()))
}

/// The built-in roles of database `db`, by name.
pub fn builtin_names(db: &str) -> Vec<RoleName> {
    let mut names: Vec<&str> = DATABASE_ROLES.to_vec();
    if db == "admin" {
        names.extend_from_slice(ADMIN_ROLES);
    }
    names
        .into_iter()
        .map(|role| RoleName {
            role: role.to_owned(),
            db: db.to_owned(),
        })
        .collect()
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
        "root" => vec![on(Resource::AnyResource, &[&[Action::AnyAction]])],
        _ => Vec::new(),
    }
}

/// Whether built-in role `r` grants `action` on `target`.
pub fn grants(r: &RoleName, target: &Resource, action: Action) -> bool {
    privileges(r).iter().any(|p| p.grants(target, action))
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
        assert!(!grants(
            &role("clusterMonitor", "admin"),
            &Resource::Cluster,
            Action::Fsync
        ));
        assert!(grants(
            &role("hostManager", "admin"),
            &Resource::Cluster,
            Action::Fsync
        ));
        assert_eq!(Action::parse("find").ok(), Some(Some(Action::Find)));
        assert_eq!(Action::parse("planCacheRead").ok(), Some(None));
        assert_eq!(Action::parse("frobnicate").expect_err("unknown").code, 2);
        let own = Privilege::from_document(
            &doc! {"resource": {"db": "a", "collection": "c"}, "actions": ["find", "changeStream"]},
        )
        .expect("privilege");
        assert!(own.grants(&Resource::collection("a", "c"), Action::ChangeStream));
        assert!(!own.grants(&Resource::collection("a", "d"), Action::Find));
        assert!(!own.grants(&Resource::Database("a".into()), Action::Find));
        assert!(!is_builtin(&role("nope", "a")));
    }
}
