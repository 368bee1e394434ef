//! The command table: every command Eddy answers, one file each, behind one lookup.
//!
//! Names are matched exactly, as mongod does, with mongod's aliases listed explicitly
//! (`isMaster`/`ismaster`, `buildInfo`/`buildinfo`, ...). Commands mongod has and Eddy
//! does not are answered with 115 CommandNotSupported ([`NOT_SUPPORTED`]); names mongod
//! does not know get 59 CommandNotFound, so a user can tell a gap of ours from a typo.

use bson::Document;
use eddy_codes::{ErrorCode, MongoError};
use futures_util::future::BoxFuture;

use crate::command::{Command, CommandResult, Ctx};

mod admin;
mod aggregate;
pub mod change_stream;
mod coll_mod;
mod convert_capped;
mod count;
mod create;
mod create_indexes;
mod cursors;
mod data;
mod delete;
mod distinct;
mod drop;
mod drop_database;
mod drop_indexes;
mod explain;
mod fail_point;
mod find;
mod find_and_modify;
pub mod hello;
mod insert;
mod list_collections;
mod list_databases;
mod list_indexes;
mod rename_collection;
mod repl_set;
mod roles;
pub mod sasl;
mod sessions;
mod stats;
mod tailable;
mod update;
mod users;
mod validate;

pub use data::GENERIC_FIELDS;

/// What a command counts as in `serverStatus.opcounters`, and whether it is a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Insert,
    Update,
    Delete,
    FindAndModify,
    Query,
    GetMore,
    Other,
}

impl Kind {
    /// Retryable writes (`txnNumber` allowed).
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Kind::Insert | Kind::Update | Kind::Delete | Kind::FindAndModify
        )
    }
}

/// The commands of the Stable API's version 1 (mongod 7.0's list, by canonical name)
/// that Eddy has: with `apiStrict: true` every other command is refused.
const API_VERSION_1: &[&str] = &[
    "aggregate",
    "collMod",
    "count",
    "create",
    "createIndexes",
    "delete",
    "drop",
    "dropDatabase",
    "dropIndexes",
    "endSessions",
    "find",
    "findAndModify",
    "getMore",
    "hello",
    "insert",
    "killCursors",
    "listCollections",
    "listDatabases",
    "listIndexes",
    "ping",
    "refreshSessions",
    "update",
];

impl Entry {
    /// Whether the command is in version 1 of the Stable API.
    pub fn in_api_version_1(&self) -> bool {
        API_VERSION_1.contains(&self.names[0])
    }
}

type Handler = fn(Document, Ctx) -> BoxFuture<'static, CommandResult>;

/// A command's typed parse alone, without applying it.
type Check = fn(&Document, &Ctx) -> Result<(), MongoError>;

/// One row of the table.
pub struct Entry {
    /// The canonical name first, then mongod's aliases.
    pub names: &'static [&'static str],
    pub handler: Handler,
    /// The typed parse only (fuzzing and [`crate::dispatch::parse_command`]).
    pub check: Check,
    pub kind: Kind,
    /// Runs only on the admin database.
    pub admin_only: bool,
    /// Exists only with `--setParameter enableTestCommands=1`.
    pub test_only: bool,
    /// `listCommands` help text.
    pub help: &'static str,
}

fn check<C: Command>(cmd: &Document, ctx: &Ctx) -> Result<(), MongoError> {
    C::parse(cmd, ctx).map(drop)
}

fn handler<C: Command>(cmd: Document, ctx: Ctx) -> BoxFuture<'static, CommandResult> {
    Box::pin(async move {
        let command = C::parse(&cmd, &ctx)?;
        command.apply(ctx).await
    })
}

macro_rules! entry {
    ($names:expr, $ty:ty, $kind:ident, $help:expr) => {
        Entry {
            names: $names,
            handler: handler::<$ty>,
            check: check::<$ty>,
            kind: Kind::$kind,
            admin_only: false,
            test_only: false,
            help: $help,
        }
    };
    ($names:expr, $ty:ty, $kind:ident, $help:expr, admin) => {
        Entry {
            names: $names,
            handler: handler::<$ty>,
            check: check::<$ty>,
            kind: Kind::$kind,
            admin_only: true,
            test_only: false,
            help: $help,
        }
    };
    ($names:expr, $ty:ty, $kind:ident, $help:expr, test) => {
        Entry {
            names: $names,
            handler: handler::<$ty>,
            check: check::<$ty>,
            kind: Kind::$kind,
            admin_only: true,
            test_only: true,
            help: $help,
        }
    };
}

/// Every command Eddy implements.
pub static TABLE: &[Entry] = &[
    // Handshake and administration.
    entry!(
        &["hello"],
        hello::Hello,
        Other,
        "Check if this server is primary for a replica set"
    ),
    entry!(
        &["isMaster", "ismaster"],
        hello::IsMaster,
        Other,
        "Check if this server is primary for a replica set (legacy)"
    ),
    entry!(
        &["ping"],
        admin::Ping,
        Other,
        "a way to check that the server is alive"
    ),
    entry!(
        &["buildInfo", "buildinfo"],
        admin::BuildInfo,
        Other,
        "get version #, etc."
    ),
    entry!(
        &["getParameter"],
        admin::GetParameter,
        Other,
        "get administrative option(s)",
        admin
    ),
    entry!(
        &["getCmdLineOpts"],
        admin::GetCmdLineOpts,
        Other,
        "get argv",
        admin
    ),
    entry!(
        &["serverStatus"],
        admin::ServerStatus,
        Other,
        "returns lots of administrative server statistics"
    ),
    entry!(
        &["hostInfo"],
        admin::HostInfo,
        Other,
        "returns information about the daemon's host"
    ),
    entry!(&["whatsmyuri"], admin::WhatsMyUri, Other, "{whatsmyuri:1}"),
    entry!(
        &["connectionStatus"],
        admin::ConnectionStatus,
        Other,
        "Returns connection-specific information such as logged-in users and their roles"
    ),
    entry!(
        &["usersInfo"],
        users::UsersInfo,
        Other,
        "Returns information about users"
    ),
    entry!(
        &["createUser"],
        users::CreateUser,
        Other,
        "Adds a user to the system"
    ),
    entry!(
        &["updateUser"],
        users::UpdateUser,
        Other,
        "Used to update a user, for example to change its password"
    ),
    entry!(
        &["dropUser"],
        users::DropUser,
        Other,
        "Drops a single user."
    ),
    entry!(
        &["dropAllUsersFromDatabase"],
        users::DropAllUsersFromDatabase,
        Other,
        "Drops all users for a single database."
    ),
    entry!(
        &["grantRolesToUser"],
        users::GrantRolesToUser,
        Other,
        "Grants roles to a user."
    ),
    entry!(
        &["revokeRolesFromUser"],
        users::RevokeRolesFromUser,
        Other,
        "Revokes roles from a user."
    ),
    entry!(
        &["createRole"],
        roles::CreateRole,
        Other,
        "Adds a role to the system"
    ),
    entry!(
        &["updateRole"],
        roles::UpdateRole,
        Other,
        "Used to update a role"
    ),
    entry!(
        &["dropRole"],
        roles::DropRole,
        Other,
        "Drops a single role."
    ),
    entry!(
        &["dropAllRolesFromDatabase"],
        roles::DropAllRolesFromDatabase,
        Other,
        "Drops all roles from the given database."
    ),
    entry!(
        &["grantPrivilegesToRole"],
        roles::GrantPrivilegesToRole,
        Other,
        "Grants privileges to a role"
    ),
    entry!(
        &["revokePrivilegesFromRole"],
        roles::RevokePrivilegesFromRole,
        Other,
        "Revokes privileges from a role"
    ),
    entry!(
        &["grantRolesToRole"],
        roles::GrantRolesToRole,
        Other,
        "Grants roles to another role."
    ),
    entry!(
        &["revokeRolesFromRole"],
        roles::RevokeRolesFromRole,
        Other,
        "Revokes roles from another role."
    ),
    entry!(
        &["rolesInfo"],
        roles::RolesInfo,
        Other,
        "Returns information about roles"
    ),
    entry!(
        &["saslStart"],
        sasl::SaslStart,
        Other,
        "Begin a SASL authentication conversation"
    ),
    entry!(
        &["saslContinue"],
        sasl::SaslContinue,
        Other,
        "Continue a SASL authentication conversation"
    ),
    entry!(&["logout"], sasl::Logout, Other, "de-authenticate"),
    entry!(
        &["listCommands"],
        admin::ListCommands,
        Other,
        "get a list of all db commands"
    ),
    entry!(
        &["shutdown"],
        admin::Shutdown,
        Other,
        "shuts down the server",
        admin
    ),
    entry!(
        &["endSessions"],
        sessions::EndSessions,
        Other,
        "end a set of logical sessions"
    ),
    entry!(
        &["startSession"],
        sessions::StartSession,
        Other,
        "start a logical session"
    ),
    entry!(
        &["refreshSessions"],
        sessions::RefreshSessions,
        Other,
        "renew a set of logical sessions"
    ),
    entry!(
        &["killSessions"],
        sessions::KillSessions,
        Other,
        "kill a logical session and its operations"
    ),
    entry!(
        &["killAllSessions"],
        sessions::KillAllSessions,
        Other,
        "kill all logical sessions"
    ),
    entry!(
        &["replSetGetStatus"],
        repl_set::ReplSetGetStatus,
        Other,
        "Report status of a replica set from the POV of this server",
        admin
    ),
    entry!(
        &["replSetInitiate"],
        repl_set::ReplSetInitiate,
        Other,
        "Initiate/christen a replica set",
        admin
    ),
    entry!(
        &["replSetGetConfig"],
        repl_set::ReplSetGetConfig,
        Other,
        "Returns the current replica set configuration",
        admin
    ),
    entry!(
        &["configureFailPoint"],
        fail_point::ConfigureFailPoint,
        Other,
        "modifies the settings of a fail point",
        test
    ),
    // Cursors.
    entry!(
        &["getMore"],
        cursors::GetMore,
        GetMore,
        "retrieve more results from an existing cursor"
    ),
    entry!(
        &["killCursors"],
        cursors::KillCursors,
        Other,
        "Kill a list of cursor ids"
    ),
    // Data.
    entry!(&["insert"], insert::Insert, Insert, "insert documents"),
    entry!(&["update"], update::Update, Update, "update documents"),
    entry!(&["delete"], delete::Delete, Delete, "delete documents"),
    entry!(
        &["findAndModify", "findandmodify"],
        find_and_modify::FindAndModify,
        FindAndModify,
        "find and modify a document"
    ),
    entry!(&["find"], find::Find, Query, "query for documents"),
    entry!(
        &["aggregate"],
        aggregate::Aggregate,
        Other,
        "Runs the aggregation command"
    ),
    entry!(
        &["count"],
        count::Count,
        Other,
        "count objects in collection"
    ),
    entry!(
        &["distinct"],
        distinct::Distinct,
        Other,
        "Finds the distinct values for a specified field across a single collection"
    ),
    entry!(
        &["explain"],
        explain::Explain,
        Other,
        "explain database reads and writes"
    ),
    // Catalog.
    entry!(
        &["create"],
        create::Create,
        Other,
        "explicitly creates a collection"
    ),
    entry!(&["drop"], drop::Drop, Other, "drop a collection"),
    entry!(
        &["dropDatabase"],
        drop_database::DropDatabase,
        Other,
        "drop (delete) this database"
    ),
    entry!(
        &["listDatabases"],
        list_databases::ListDatabases,
        Other,
        "list databases on this server",
        admin
    ),
    entry!(
        &["listCollections"],
        list_collections::ListCollections,
        Other,
        "list collections for this db"
    ),
    entry!(
        &["renameCollection"],
        rename_collection::RenameCollection,
        Other,
        "rename a collection",
        admin
    ),
    entry!(
        &["createIndexes"],
        create_indexes::CreateIndexes,
        Other,
        "create indexes"
    ),
    entry!(
        &["listIndexes"],
        list_indexes::ListIndexes,
        Other,
        "list indexes for a collection"
    ),
    entry!(
        &["dropIndexes", "deleteIndexes"],
        drop_indexes::DropIndexes,
        Other,
        "drop indexes for a collection"
    ),
    entry!(
        &["collMod"],
        coll_mod::CollMod,
        Other,
        "Sets collection options"
    ),
    entry!(
        &["dbStats", "dbstats"],
        stats::DbStats,
        Other,
        "Get stats on a database"
    ),
    entry!(
        &["collStats"],
        stats::CollStats,
        Other,
        "Get stats on a collection"
    ),
    entry!(
        &["cloneCollectionAsCapped"],
        convert_capped::CloneCollectionAsCapped,
        Other,
        "Create a capped collection holding a copy of another collection's documents"
    ),
    entry!(
        &["convertToCapped"],
        convert_capped::ConvertToCapped,
        Other,
        "Convert a collection to a capped collection"
    ),
    entry!(
        &["validate"],
        validate::Validate,
        Other,
        "Validate contents of a namespace by scanning its data structures for correctness"
    ),
    entry!(
        &["fsync"],
        validate::Fsync,
        Other,
        "Flush all pending writes to disk (every acknowledged write already is)",
        admin
    ),
];

/// Commands of mongod 7.0 that Eddy does not implement: 115 CommandNotSupported.
pub const NOT_SUPPORTED: &[&str] = &[
    "abortTransaction",
    "commitTransaction",
    "mapReduce",
    "mapreduce",
    "geoSearch",
    "authenticate",
    "currentOp",
    "killOp",
    "fsyncUnlock",
    "compact",
    "reIndex",
    "setParameter",
    "setFeatureCompatibilityVersion",
    "replSetReconfig",
    "replSetStepDown",
    "replSetFreeze",
    "replSetSyncFrom",
    "replSetMaintenance",
    "replSetResizeOplog",
    "applyOps",
    "profile",
    "top",
    "getShardMap",
    "shardCollection",
    "addShard",
    "enableSharding",
    "movePrimary",
    "balancerStart",
    "balancerStop",
    "bulkWrite",
    "clearJumboFlag",
    "createSearchIndexes",
    "dropSearchIndex",
    "updateSearchIndex",
    "listSearchIndexes",
    "setDefaultRWConcern",
    "getDefaultRWConcern",
    "analyze",
    "checkMetadataConsistency",
    "cleanupOrphaned",
    "dataSize",
    "filemd5",
    "getClusterParameter",
    "setClusterParameter",
    "lockInfo",
    "logRotate",
    "planCacheClear",
    "planCacheListFilters",
    "planCacheSetFilter",
    "planCacheClearFilters",
    "rotateCertificates",
    "setUserWriteBlockMode",
    "features",
    "getLastError",
    "getLog",
    "resetError",
    "invalidateUserCache",
    "getDiagnosticData",
    "connPoolStats",
    "shardConnPoolStats",
    "autoSplitVector",
    "splitVector",
    "dbHash",
    "dbhash",
    "driverOIDTest",
    "appendOplogNote",
    "cloneCollection",
];

/// The entry for `name`; test-only commands exist only when test commands are enabled.
pub fn lookup(name: &str, test_commands: bool) -> Option<&'static Entry> {
    TABLE
        .iter()
        .find(|e| e.names.contains(&name))
        .filter(|e| test_commands || !e.test_only)
}

/// The error for a name that is not in the table.
pub fn unknown(name: &str) -> MongoError {
    if NOT_SUPPORTED.contains(&name) {
        MongoError::new(
            ErrorCode::CommandNotSupported,
            format!("Eddy does not support the '{name}' command"),
        )
    } else {
        MongoError::new(
            ErrorCode::CommandNotFound,
            format!("no such command: '{name}'"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_aliases_resolve() {
        let mut seen = std::collections::HashSet::new();
        for e in TABLE {
            for n in e.names {
                assert!(seen.insert(*n), "duplicate command name {n}");
                assert!(
                    !NOT_SUPPORTED.contains(n),
                    "{n} is both implemented and unsupported"
                );
            }
        }
        assert!(lookup("ismaster", false).is_some());
        assert!(lookup("configureFailPoint", false).is_none());
        assert!(lookup("configureFailPoint", true).is_some());
        assert_eq!(unknown("mapReduce").code, 115);
        assert_eq!(unknown("fnord").code, 59);
    }
}
