//! The command table: every command Eddy answers, one file each, behind one lookup.
//!
//! Names are matched exactly, as mongod does, with mongod's aliases listed explicitly
//! (`isMaster`/`ismaster`, `buildInfo`/`buildinfo`, ...). Commands mongod has and Eddy
//! does not are answered with 115 CommandNotSupported ([`NOT_SUPPORTED`]); names mongod
//! does not know get 59 CommandNotFound, so a user can tell a gap of ours from a typo.
//!
//! Each row ([`Entry`]) also carries the command's attributes, which the dispatcher and
//! the connection read from it: admin-only, test-only, Stable API version 1, `maxTimeMS`
//! as a deadline, snapshot reads, allowed in a transaction, answered through OP_QUERY,
//! and what an exhaust request streams.

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
mod current_op;
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
mod timeseries;
mod transactions;
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

type Handler = fn(Document, Ctx) -> BoxFuture<'static, CommandResult>;

/// A command's typed parse alone, without applying it.
type Check = fn(&Document, &Ctx) -> Result<(), MongoError>;

/// What a command does with a request flagged `exhaustAllowed`: whether it answers
/// again without further requests (`moreToCome` replies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// One reply per request.
    No,
    /// An exhaust `getMore` keeps sending batches while its cursor has more.
    CursorBatches,
    /// An awaitable `hello` is answered again after each `maxAwaitTimeMS` (the
    /// streaming monitoring protocol).
    AwaitableHello,
}

/// One row of the table: the command and its attributes. Rows are built with
/// [`Entry::new`] and the builder-style `const fn`s below (the `entry!` macro lists
/// them after the help text), every attribute off by default.
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
    /// In version 1 of the Stable API (mongod 7.0's list): with `apiStrict: true`
    /// every other command is refused.
    pub api_version_1: bool,
    /// A read whose `maxTimeMS` Eddy enforces with a deadline (50 MaxTimeMSExpired);
    /// a getMore's own `maxTimeMS` is an await time instead. (The `maxTimeAlwaysTimeOut`
    /// failpoint fires for every command that sets `maxTimeMS`, not only these.)
    pub time_limited: bool,
    /// Reads at a snapshot outside a transaction: accepts `readConcern: {level:
    /// "snapshot"}` (mongod 5.0+; a snapshot session's driver sends it on `getMore`s too).
    pub snapshot_reads: bool,
    /// Allowed inside a multi-document transaction, as mongod documents it: the CRUD
    /// commands, `getMore`, `killCursors`, `create` and `createIndexes`, and the
    /// informational commands, and `commitTransaction`/`abortTransaction`. The
    /// dispatcher refuses the others in a transaction (263).
    pub in_transaction: bool,
    /// Answered through the legacy OP_QUERY too: mongod 6.0+ answers only the
    /// handshake there.
    pub op_query: bool,
    /// Exhaust behaviour (`exhaustAllowed`).
    pub stream: Stream,
    /// Who may run it under `--auth` (`crate::auth::check`).
    pub access: Access,
    /// `listCommands` help text.
    pub help: &'static str,
}

impl Entry {
    /// A row with every attribute off.
    const fn new(
        names: &'static [&'static str],
        handler: Handler,
        check: Check,
        kind: Kind,
        help: &'static str,
    ) -> Entry {
        Entry {
            names,
            handler,
            check,
            kind,
            admin_only: false,
            test_only: false,
            api_version_1: false,
            time_limited: false,
            snapshot_reads: false,
            in_transaction: false,
            op_query: false,
            stream: Stream::No,
            access: Access::Privileges,
            help,
        }
    }

    /// Runs only on the admin database.
    const fn admin(mut self) -> Entry {
        self.admin_only = true;
        self
    }

    /// A test command (admin database only).
    const fn test(mut self) -> Entry {
        self.admin_only = true;
        self.test_only = true;
        self
    }

    /// In version 1 of the Stable API.
    const fn api_v1(mut self) -> Entry {
        self.api_version_1 = true;
        self
    }

    /// `maxTimeMS` is a deadline.
    const fn time_limited(mut self) -> Entry {
        self.time_limited = true;
        self
    }

    /// Accepts read concern level snapshot outside a transaction.
    const fn snapshot(mut self) -> Entry {
        self.snapshot_reads = true;
        self
    }

    /// Allowed in a multi-document transaction.
    const fn txn(mut self) -> Entry {
        self.in_transaction = true;
        self
    }

    /// Answered through OP_QUERY (the handshake).
    const fn op_query(mut self) -> Entry {
        self.op_query = true;
        self
    }

    /// An exhaust getMore streams batches.
    const fn streams_batches(mut self) -> Entry {
        self.stream = Stream::CursorBatches;
        self
    }

    /// An awaitable hello with `exhaustAllowed` streams answers.
    const fn streams_hello(mut self) -> Entry {
        self.stream = Stream::AwaitableHello;
        self
    }

    /// Runs before authentication.
    const fn open(mut self) -> Entry {
        self.access = Access::Open;
        self
    }

    /// Any authenticated user runs it on what is its own.
    const fn own(mut self) -> Entry {
        self.access = Access::Own;
        self
    }
}

/// Who may run a command when access control is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, authenticated or not (`hello`, `saslStart`, ...), as mongod.
    Open,
    /// Any authenticated user: the command acts on the caller's own sessions and
    /// cursors (checked where it runs) or shows only what the caller may see.
    Own,
    /// The privileges `crate::auth::check` lists for it.
    Privileges,
}

fn check<C: Command>(cmd: &Document, ctx: &Ctx) -> Result<(), MongoError> {
    C::parse(cmd, ctx).map(drop)
}

fn handler<C: Command>(cmd: Document, ctx: Ctx) -> BoxFuture<'static, CommandResult> {
    Box::pin(async move {
        let command = C::parse(&cmd, &ctx)?;
        // Parsed: the document is kept for `currentOp` from here on, as BSON.
        if let Some(op) = &ctx.op {
            op.set_command(&cmd);
        }
        drop(cmd);
        command.apply(ctx).await
    })
}

/// `entry!(names, Type, Kind, help, [attribute, ...])`: a row, each attribute in the
/// optional list being one of the builder `const fn`s of [`Entry`] (`admin`, `test`, `api_v1`,
/// `time_limited`, `snapshot`, `txn`, `op_query`, `streams_batches`, `streams_hello`, `open`,
/// `own`).
macro_rules! entry {
    ($names:expr, $ty:ty, $kind:ident, $help:expr $(, [$($attr:ident),* $(,)?])? $(,)?) => {
        Entry::new($names, handler::<$ty>, check::<$ty>, Kind::$kind, $help)$($(.$attr())*)?
    };
}

/// Every command Eddy implements.
pub static TABLE: &[Entry] = &[
    // Handshake and administration.
    entry!(
        &["hello"],
        hello::Hello,
        Other,
        "Check if this server is primary for a replica set",
        [api_v1, txn, op_query, streams_hello, open],
    ),
    entry!(
        &["isMaster", "ismaster"],
        hello::IsMaster,
        Other,
        "Check if this server is primary for a replica set (legacy)",
        [txn, op_query, streams_hello, open],
    ),
    entry!(
        &["ping"],
        admin::Ping,
        Other,
        "a way to check that the server is alive",
        [api_v1, txn, open],
    ),
    entry!(
        &["buildInfo", "buildinfo"],
        admin::BuildInfo,
        Other,
        "get version #, etc.",
        [txn, open],
    ),
    entry!(
        &["getParameter"],
        admin::GetParameter,
        Other,
        "get administrative option(s)",
        [admin],
    ),
    entry!(
        &["setParameter"],
        admin::SetParameter,
        Other,
        "set administrative option(s)",
        [admin],
    ),
    entry!(
        &["getCmdLineOpts"],
        admin::GetCmdLineOpts,
        Other,
        "get argv",
        [admin],
    ),
    entry!(
        &["serverStatus"],
        admin::ServerStatus,
        Other,
        "returns lots of administrative server statistics"
    ),
    entry!(
        &["currentOp"],
        current_op::CurrentOp,
        Other,
        "report what the server is doing",
        [admin],
    ),
    entry!(
        &["killOp"],
        current_op::KillOp,
        Other,
        "interrupt an operation by its opid",
        [admin, own],
    ),
    entry!(
        &["hostInfo"],
        admin::HostInfo,
        Other,
        "returns information about the daemon's host"
    ),
    entry!(
        &["whatsmyuri"],
        admin::WhatsMyUri,
        Other,
        "{whatsmyuri:1}",
        [open],
    ),
    entry!(
        &["connectionStatus"],
        admin::ConnectionStatus,
        Other,
        "Returns connection-specific information such as logged-in users and their roles",
        [txn, open],
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
        "Begin a SASL authentication conversation",
        [open],
    ),
    entry!(
        &["saslContinue"],
        sasl::SaslContinue,
        Other,
        "Continue a SASL authentication conversation",
        [open],
    ),
    entry!(&["logout"], sasl::Logout, Other, "de-authenticate", [open],),
    entry!(
        &["listCommands"],
        admin::ListCommands,
        Other,
        "get a list of all db commands",
        [own],
    ),
    entry!(
        &["shutdown"],
        admin::Shutdown,
        Other,
        "shuts down the server",
        [admin],
    ),
    entry!(
        &["commitTransaction"],
        transactions::CommitTransaction,
        Other,
        "commits a transaction",
        [admin, api_v1, txn, own],
    ),
    entry!(
        &["abortTransaction"],
        transactions::AbortTransaction,
        Other,
        "aborts a transaction",
        [admin, api_v1, txn, own],
    ),
    entry!(
        &["endSessions"],
        sessions::EndSessions,
        Other,
        "end a set of logical sessions",
        [api_v1, open],
    ),
    entry!(
        &["startSession"],
        sessions::StartSession,
        Other,
        "start a logical session",
        [own],
    ),
    entry!(
        &["refreshSessions"],
        sessions::RefreshSessions,
        Other,
        "renew a set of logical sessions",
        [api_v1, own],
    ),
    entry!(
        &["killSessions"],
        sessions::KillSessions,
        Other,
        "kill a logical session and its operations",
        [own],
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
        [admin],
    ),
    entry!(
        &["replSetInitiate"],
        repl_set::ReplSetInitiate,
        Other,
        "Initiate/christen a replica set",
        [admin],
    ),
    entry!(
        &["replSetGetConfig"],
        repl_set::ReplSetGetConfig,
        Other,
        "Returns the current replica set configuration",
        [admin],
    ),
    entry!(
        &["configureFailPoint"],
        fail_point::ConfigureFailPoint,
        Other,
        "modifies the settings of a fail point",
        [test],
    ),
    // Cursors.
    entry!(
        &["getMore"],
        cursors::GetMore,
        GetMore,
        "retrieve more results from an existing cursor",
        [api_v1, snapshot, txn, streams_batches, own],
    ),
    entry!(
        &["killCursors"],
        cursors::KillCursors,
        Other,
        "Kill a list of cursor ids",
        [api_v1, txn, own],
    ),
    // Data.
    entry!(
        &["insert"],
        insert::Insert,
        Insert,
        "insert documents",
        [api_v1, txn],
    ),
    entry!(
        &["update"],
        update::Update,
        Update,
        "update documents",
        [api_v1, txn],
    ),
    entry!(
        &["delete"],
        delete::Delete,
        Delete,
        "delete documents",
        [api_v1, txn],
    ),
    entry!(
        &["findAndModify", "findandmodify"],
        find_and_modify::FindAndModify,
        FindAndModify,
        "find and modify a document",
        [api_v1, txn],
    ),
    entry!(
        &["find"],
        find::Find,
        Query,
        "query for documents",
        [api_v1, time_limited, snapshot, txn],
    ),
    entry!(
        &["aggregate"],
        aggregate::Aggregate,
        Other,
        "Runs the aggregation command",
        [api_v1, time_limited, snapshot, txn],
    ),
    entry!(
        &["count"],
        count::Count,
        Other,
        "count objects in collection",
        [api_v1, time_limited],
    ),
    entry!(
        &["distinct"],
        distinct::Distinct,
        Other,
        "Finds the distinct values for a specified field across a single collection",
        [time_limited, snapshot, txn],
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
        "explicitly creates a collection",
        [api_v1, txn],
    ),
    entry!(&["drop"], drop::Drop, Other, "drop a collection", [api_v1]),
    entry!(
        &["dropDatabase"],
        drop_database::DropDatabase,
        Other,
        "drop (delete) this database",
        [api_v1],
    ),
    entry!(
        &["listDatabases"],
        list_databases::ListDatabases,
        Other,
        "list databases on this server",
        [admin, api_v1, own],
    ),
    entry!(
        &["listCollections"],
        list_collections::ListCollections,
        Other,
        "list collections for this db",
        [api_v1],
    ),
    entry!(
        &["renameCollection"],
        rename_collection::RenameCollection,
        Other,
        "rename a collection",
        [admin],
    ),
    entry!(
        &["createIndexes"],
        create_indexes::CreateIndexes,
        Other,
        "create indexes",
        [api_v1, txn],
    ),
    entry!(
        &["listIndexes"],
        list_indexes::ListIndexes,
        Other,
        "list indexes for a collection",
        [api_v1],
    ),
    entry!(
        &["dropIndexes", "deleteIndexes"],
        drop_indexes::DropIndexes,
        Other,
        "drop indexes for a collection",
        [api_v1],
    ),
    entry!(
        &["collMod"],
        coll_mod::CollMod,
        Other,
        "Sets collection options",
        [api_v1],
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
        [admin],
    ),
];

/// Commands of mongod 7.0 that Eddy does not implement: 115 CommandNotSupported.
pub const NOT_SUPPORTED: &[&str] = &[
    "mapReduce",
    "mapreduce",
    "geoSearch",
    "authenticate",
    "fsyncUnlock",
    "compact",
    "reIndex",
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

    /// The canonical names of the rows with an attribute, sorted.
    fn canonical(attr: impl Fn(&Entry) -> bool) -> Vec<&'static str> {
        let mut names: Vec<_> = TABLE
            .iter()
            .filter(|e| attr(e))
            .map(|e| e.names[0])
            .collect();
        names.sort_unstable();
        names
    }

    /// Every name (aliases too) of the rows with an attribute, sorted.
    fn all_names(attr: impl Fn(&Entry) -> bool) -> Vec<&'static str> {
        let mut names: Vec<_> = TABLE
            .iter()
            .filter(|e| attr(e))
            .flat_map(|e| e.names.iter().copied())
            .collect();
        names.sort_unstable();
        names
    }

    fn sorted(list: &[&'static str]) -> Vec<&'static str> {
        let mut list = list.to_vec();
        list.sort_unstable();
        list
    }

    /// The attributes were lists of names beside the table (`API_VERSION_1` here,
    /// `TIME_LIMITED` and `SNAPSHOT_READS` in dispatch.rs, name matches in
    /// connection.rs): the rows say exactly what those lists said.
    #[test]
    fn attributes_match_the_former_lists() {
        let api_version_1 = [
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
            "abortTransaction",
            "commitTransaction",
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
        assert_eq!(canonical(|e| e.api_version_1), sorted(&api_version_1));
        let time_limited = ["find", "aggregate", "count", "distinct"];
        assert_eq!(canonical(|e| e.time_limited), sorted(&time_limited));
        let snapshot_reads = ["find", "aggregate", "distinct", "getMore"];
        assert_eq!(canonical(|e| e.snapshot_reads), sorted(&snapshot_reads));
        // connection.rs matched these names (aliases included).
        let hello = ["hello", "isMaster", "ismaster"];
        assert_eq!(
            all_names(|e| e.stream == Stream::AwaitableHello),
            sorted(&hello)
        );
        assert_eq!(all_names(|e| e.op_query), sorted(&hello));
        assert_eq!(
            all_names(|e| e.stream == Stream::CursorBatches),
            ["getMore"]
        );
        // The test-only command is admin-only too, as the old macro arm made it.
        assert!(TABLE.iter().all(|e| !e.test_only || e.admin_only));
    }

    /// mongod's documented list: CRUD, cursors, create/createIndexes and informational
    /// commands run inside a transaction; count, explain, listings and DDL do not.
    #[test]
    fn transaction_attribute_follows_mongod() {
        let allowed = |name| lookup(name, true).is_some_and(|e| e.in_transaction);
        for name in [
            "find",
            "insert",
            "update",
            "delete",
            "findAndModify",
            "findandmodify",
            "aggregate",
            "distinct",
            "getMore",
            "killCursors",
            "create",
            "createIndexes",
            "hello",
            "ismaster",
            "buildInfo",
            "connectionStatus",
            "ping",
        ] {
            assert!(allowed(name), "{name} is allowed in a transaction");
        }
        for name in [
            "count",
            "explain",
            "listCollections",
            "listIndexes",
            "drop",
            "dropIndexes",
            "createUser",
            "getParameter",
            "configureFailPoint",
        ] {
            assert!(!allowed(name), "{name} is not allowed in a transaction");
        }
    }
}
