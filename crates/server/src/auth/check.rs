//! What each command needs, and the check `dispatch` runs before it (with `--auth`).

use bson::{Bson, Document};
use eddy_codes::{ErrorCode, MongoError};

use super::{Action, Identity, Resource};
use crate::command::ConnInfo;
use crate::commands::{Access, Entry};
use crate::state::ServerState;

/// What a command needs (commands that anyone may run, or any authenticated user, say
/// so in their table row: [`Access`]).
#[derive(Debug)]
enum Need {
    /// Any authenticated user (the command itself limits what it shows or touches).
    Authenticated,
    /// Every one of these privileges.
    All(Vec<(Resource, Action)>),
}

/// Checks that the connection may run the command of table row `entry` on `db`.
pub fn authorize(
    state: &ServerState,
    conn: &ConnInfo,
    entry: &Entry,
    db: &str,
    cmd: &Document,
) -> Result<(), MongoError> {
    if !state.config.auth || entry.access == Access::Open {
        return Ok(());
    }
    let name = entry.names[0];
    let need = match entry.access {
        Access::Own => Need::Authenticated,
        Access::Open | Access::Privileges => needs(name, db, cmd),
    };
    let Some(mut identity) = conn.auth.identity() else {
        if localhost_exception(state, conn, name)? {
            return Ok(());
        }
        return Err(MongoError::new(
            ErrorCode::Unauthorized,
            format!("Command {name} requires authentication"),
        ));
    };
    if identity.is_stale(&state.engine) {
        // Users or roles changed: the connection gets the user's privileges as now.
        identity = Identity::resolve(&state.engine, &identity.user, &identity.db)?;
        conn.auth.set_identity(Some(identity.clone()));
    }
    let allowed = match need {
        Need::Authenticated => true,
        Need::All(privileges) => {
            privileges.iter().all(|(r, a)| {
                identity.may(r, *a)
                    || (*a == Action::ListSessions && lists_own_sessions(&identity, cmd))
            }) || (name == "usersInfo" && only_self(&identity, db, cmd))
        }
    };
    if allowed {
        Ok(())
    } else {
        Err(not_authorized(db, cmd))
    }
}

/// mongod's 13 Unauthorized for a command the user's roles do not allow.
pub fn not_authorized(db: &str, cmd: &Document) -> MongoError {
    let mut shown = cmd.clone();
    for secret in ["pwd", "payload"] {
        if shown.contains_key(secret) {
            shown.insert(secret, "###");
        }
    }
    MongoError::new(
        ErrorCode::Unauthorized,
        format!(
            "not authorized on {db} to execute command {}",
            eddy_engine::display_value(&Bson::Document(shown))
        ),
    )
}

/// The localhost exception: with no user at all, a loopback connection may create the
/// first one.
fn localhost_exception(
    state: &ServerState,
    conn: &ConnInfo,
    name: &str,
) -> Result<bool, MongoError> {
    Ok(matches!(name, "createUser" | "createRole")
        && conn.peer.ip().is_loopback()
        && !state.engine.has_users()?)
}

/// `usersInfo` about the caller alone needs no privilege.
fn only_self(identity: &Identity, db: &str, cmd: &Document) -> bool {
    let is_self = |v: &Bson| match v {
        Bson::String(u) => *u == identity.user && db == identity.db,
        Bson::Document(d) => {
            d.get_str("user").ok() == Some(identity.user.as_str())
                && d.get_str("db").ok() == Some(identity.db.as_str())
        }
        _ => false,
    };
    match cmd.get("usersInfo") {
        Some(Bson::Array(users)) => !users.is_empty() && users.iter().all(is_self),
        Some(v) => is_self(v),
        None => false,
    }
}

/// `$listLocalSessions` naming no one but the caller needs no privilege: its
/// `listSessions` need stands only for other users' sessions.
fn lists_own_sessions(identity: &Identity, cmd: &Document) -> bool {
    let Some(spec) = first_stage(cmd).and_then(|s| s.get_document("$listLocalSessions").ok())
    else {
        return false;
    };
    if spec.get("allUsers").is_some_and(crate::args::truthy) {
        return false;
    }
    spec.get_array("users").map_or(true, |users| {
        users.iter().all(|u| {
            u.as_document().is_some_and(|d| {
                d.get_str("user").ok() == Some(identity.user.as_str())
                    && d.get_str("db").ok() == Some(identity.db.as_str())
            })
        })
    })
}

fn first_stage(cmd: &Document) -> Option<&Document> {
    cmd.get_array("pipeline").ok()?.first()?.as_document()
}

/// The collection named by the command's first field, on `db`.
fn target(name: &str, db: &str, cmd: &Document) -> Resource {
    match cmd.get(name) {
        Some(Bson::String(coll)) => Resource::collection(db, coll),
        _ => Resource::Database(db.to_owned()),
    }
}

fn needs(name: &str, db: &str, cmd: &Document) -> Need {
    let here = || target(name, db, cmd);
    let database = || Resource::Database(db.to_owned());
    let one = |r: Resource, a: Action| Need::All(vec![(r, a)]);
    let cluster = |a: Action| Need::All(vec![(Resource::Cluster, a)]);
    match name {
        "find" | "count" | "distinct" => one(here(), Action::Find),
        "insert" => one(here(), Action::Insert),
        "update" => {
            let mut need = vec![(here(), Action::Update)];
            if upserts(cmd, "updates") {
                need.push((here(), Action::Insert));
            }
            Need::All(need)
        }
        "delete" => one(here(), Action::Remove),
        "findAndModify" => {
            let mut need = vec![(here(), Action::Find)];
            if cmd.get("remove").is_some_and(crate::args::truthy) {
                need.push((here(), Action::Remove));
            } else {
                need.push((here(), Action::Update));
                if cmd.get("upsert").is_some_and(crate::args::truthy) {
                    need.push((here(), Action::Insert));
                }
            }
            Need::All(need)
        }
        "aggregate" => Need::All(aggregate(db, cmd)),
        "explain" => match cmd.get("explain") {
            Some(Bson::Document(inner)) => match inner.keys().next() {
                Some(inner_name) => needs(inner_name, db, inner),
                None => one(database(), Action::Find),
            },
            _ => one(database(), Action::Find),
        },
        "create" => {
            let mut need = vec![(here(), Action::CreateCollection)];
            if let Some(Bson::String(source)) = cmd.get("viewOn") {
                need.push((Resource::collection(db, source), Action::Find));
            }
            Need::All(need)
        }
        "drop" => one(here(), Action::DropCollection),
        "createIndexes" => one(here(), Action::CreateIndex),
        "dropIndexes" => one(here(), Action::DropIndex),
        "listIndexes" => one(here(), Action::ListIndexes),
        "collMod" => one(here(), Action::CollMod),
        "collStats" => one(here(), Action::CollStats),
        "validate" => one(here(), Action::Validate),
        "convertToCapped" => one(here(), Action::ConvertToCapped),
        "cloneCollectionAsCapped" => {
            let to = match cmd.get("toCollection") {
                Some(Bson::String(to)) => Resource::collection(db, to),
                _ => database(),
            };
            Need::All(vec![
                (here(), Action::Find),
                (to.clone(), Action::Insert),
                (to, Action::CreateCollection),
            ])
        }
        "renameCollection" => rename(cmd),
        "dbStats" => one(database(), Action::DbStats),
        // `authorizedCollections` lists only what the user holds privileges on.
        "listCollections"
            if cmd
                .get("authorizedCollections")
                .is_some_and(crate::args::truthy) =>
        {
            Need::Authenticated
        }
        "listCollections" => one(database(), Action::ListCollections),
        "dropDatabase" => one(database(), Action::DropDatabase),
        "createUser" => one(database(), Action::CreateUser),
        "updateUser" => {
            let mut need = Vec::new();
            if cmd.contains_key("pwd") || cmd.contains_key("mechanisms") {
                need.push((database(), Action::ChangePassword));
            }
            if cmd.contains_key("customData") {
                need.push((database(), Action::ChangeCustomData));
            }
            if cmd.contains_key("roles") {
                need.push((database(), Action::GrantRole));
                need.push((database(), Action::RevokeRole));
            }
            Need::All(need)
        }
        "dropUser" | "dropAllUsersFromDatabase" => one(database(), Action::DropUser),
        "grantRolesToUser" => one(database(), Action::GrantRole),
        "revokeRolesFromUser" => one(database(), Action::RevokeRole),
        "usersInfo" => one(database(), Action::ViewUser),
        "createRole" => one(database(), Action::CreateRole),
        "updateRole" => Need::All(vec![
            (database(), Action::GrantRole),
            (database(), Action::RevokeRole),
        ]),
        "dropRole" | "dropAllRolesFromDatabase" => one(database(), Action::DropRole),
        "grantPrivilegesToRole" | "grantRolesToRole" => one(database(), Action::GrantRole),
        "revokePrivilegesFromRole" | "revokeRolesFromRole" => one(database(), Action::RevokeRole),
        "rolesInfo" => one(database(), Action::ViewRole),
        "serverStatus" => cluster(Action::ServerStatus),
        // Anyone may list their own operations; every user's need `inprog`.
        "currentOp" if cmd.get("$ownOps").is_some_and(crate::args::truthy) => Need::Authenticated,
        "currentOp" => cluster(Action::Inprog),
        "hostInfo" => cluster(Action::HostInfo),
        "getCmdLineOpts" => cluster(Action::GetCmdLineOpts),
        "getParameter" => cluster(Action::GetParameter),
        "replSetGetStatus" => cluster(Action::ReplSetGetStatus),
        "replSetGetConfig" => cluster(Action::ReplSetGetConfig),
        "replSetInitiate" => cluster(Action::ReplSetConfigure),
        "shutdown" => cluster(Action::Shutdown),
        "killAllSessions" => cluster(Action::KillAnySession),
        "fsync" => cluster(Action::Fsync),
        // Anything else (test-only commands among them) is for `root`.
        _ => cluster(Action::Internal),
    }
}

/// Whether any statement of a write upserts.
fn upserts(cmd: &Document, field: &str) -> bool {
    cmd.get_array(field).is_ok_and(|statements| {
        statements.iter().any(|s| {
            s.as_document()
                .and_then(|d| d.get("upsert"))
                .is_some_and(crate::args::truthy)
        })
    })
}

/// `renameCollection: "db.a", to: "db2.b"` (on admin).
fn rename(cmd: &Document) -> Need {
    let ns = |field: &str| {
        cmd.get_str(field)
            .ok()
            .and_then(|s| s.split_once('.'))
            .map(|(db, coll)| Resource::collection(db, coll))
    };
    match (ns("renameCollection"), ns("to")) {
        (
            Some(Resource::Collection { db: from_db, coll }),
            Some(Resource::Collection {
                db: to_db,
                coll: to_coll,
            }),
        ) => {
            if from_db == to_db {
                Need::All(vec![(
                    Resource::Database(from_db),
                    Action::RenameCollectionSameDb,
                )])
            } else {
                let from = Resource::collection(&from_db, &coll);
                let to = Resource::collection(&to_db, &to_coll);
                Need::All(vec![
                    (from.clone(), Action::Find),
                    (from, Action::DropCollection),
                    (to.clone(), Action::Insert),
                    (to.clone(), Action::CreateCollection),
                    (to, Action::CreateIndex),
                ])
            }
        }
        _ => Need::All(vec![(Resource::Cluster, Action::Internal)]),
    }
}

/// An aggregation's privileges: reading its source (a change stream as mongod checks
/// one: `find` and `changeStream` on the collection, on every collection of the
/// database, or of every database), reading what it joins, writing what it outputs.
fn aggregate(db: &str, cmd: &Document) -> Vec<(Resource, Action)> {
    let source = match cmd.get("aggregate") {
        Some(Bson::String(coll)) => Resource::collection(db, coll),
        _ => Resource::Database(db.to_owned()),
    };
    let stages: Vec<&Document> = cmd
        .get_array("pipeline")
        .map(|p| p.iter().filter_map(Bson::as_document).collect())
        .unwrap_or_default();
    let mut need = Vec::new();
    match stages.first() {
        Some(first) if first.contains_key("$changeStream") => {
            let cluster = first
                .get_document("$changeStream")
                .ok()
                .and_then(|s| s.get("allChangesForCluster"))
                .is_some_and(crate::args::truthy);
            let scope = if cluster {
                Resource::AnyDatabase
            } else {
                source.clone()
            };
            need.push((scope.clone(), Action::Find));
            need.push((scope, Action::ChangeStream));
        }
        Some(first) if first.contains_key("$documents") => {}
        Some(first) if first.contains_key("$listLocalSessions") => {
            // Other users' sessions need `listSessions` (the caller's own need nothing).
            let others = first
                .get_document("$listLocalSessions")
                .is_ok_and(|s| s.contains_key("allUsers") || s.contains_key("users"));
            if others {
                need.push((Resource::Cluster, Action::ListSessions));
            }
        }
        Some(first) if first.contains_key("$currentOp") => {
            // Other users' operations need `inprog` (the caller's own need nothing).
            let all_users = first
                .get_document("$currentOp")
                .is_ok_and(|s| s.get("allUsers").is_some_and(crate::args::truthy));
            if all_users {
                need.push((Resource::Cluster, Action::Inprog));
            }
        }
        Some(first) if first.contains_key("$collStats") || first.contains_key("$indexStats") => {
            need.push((source.clone(), Action::CollStats))
        }
        _ => need.push((source.clone(), Action::Find)),
    }
    for stage in &stages {
        for (name, arg) in stage.iter() {
            match (name.as_str(), arg) {
                ("$lookup" | "$graphLookup", Bson::Document(spec)) => {
                    if let Ok(from) = spec.get_str("from") {
                        need.push((Resource::collection(db, from), Action::Find));
                    }
                    if let Ok(inner) = spec.get_array("pipeline") {
                        let sub = bson::doc! {"aggregate": 1, "pipeline": inner.clone()};
                        need.extend(aggregate(db, &sub).into_iter().skip(1));
                    }
                }
                ("$unionWith", Bson::String(coll)) => {
                    need.push((Resource::collection(db, coll), Action::Find))
                }
                ("$unionWith", Bson::Document(spec)) => {
                    if let Ok(coll) = spec.get_str("coll") {
                        need.push((Resource::collection(db, coll), Action::Find));
                    }
                }
                ("$out" | "$merge", target) => {
                    let to = match target {
                        Bson::String(coll) => Resource::collection(db, coll),
                        Bson::Document(d) => {
                            let into = d.get("into").unwrap_or(target);
                            match into {
                                Bson::String(coll) => Resource::collection(db, coll),
                                Bson::Document(i) => Resource::collection(
                                    i.get_str("db").unwrap_or(db),
                                    i.get_str("coll").unwrap_or_default(),
                                ),
                                _ => Resource::collection(
                                    d.get_str("db").unwrap_or(db),
                                    d.get_str("coll").unwrap_or_default(),
                                ),
                            }
                        }
                        _ => Resource::Database(db.to_owned()),
                    };
                    need.push((to.clone(), Action::Insert));
                    need.push((to.clone(), Action::Remove));
                    if name == "$merge" {
                        need.push((to, Action::Update));
                    }
                }
                _ => {}
            }
        }
    }
    need
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn privileges(name: &str, db: &str, cmd: Document) -> Vec<(Resource, Action)> {
        match needs(name, db, &cmd) {
            Need::All(p) => p,
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn change_streams_need_find_and_change_stream_on_their_scope() {
        let coll = privileges(
            "aggregate",
            "a",
            doc! {"aggregate": "c", "pipeline": [{"$changeStream": {}}]},
        );
        assert_eq!(
            coll,
            vec![
                (Resource::collection("a", "c"), Action::Find),
                (Resource::collection("a", "c"), Action::ChangeStream)
            ]
        );
        let db = privileges(
            "aggregate",
            "a",
            doc! {"aggregate": 1, "pipeline": [{"$changeStream": {}}]},
        );
        assert_eq!(
            db[1],
            (Resource::Database("a".into()), Action::ChangeStream)
        );
        let cluster = privileges(
            "aggregate",
            "admin",
            doc! {"aggregate": 1, "pipeline": [{"$changeStream": {"allChangesForCluster": true}}]},
        );
        assert_eq!(cluster[0], (Resource::AnyDatabase, Action::Find));
    }

    #[test]
    fn writes_and_joins() {
        let p = privileges(
            "aggregate",
            "a",
            doc! {"aggregate": "c", "pipeline": [{"$lookup": {"from": "d"}}, {"$out": "e"}]},
        );
        assert!(p.contains(&(Resource::collection("a", "d"), Action::Find)));
        assert!(p.contains(&(Resource::collection("a", "e"), Action::Insert)));
        let u = privileges(
            "update",
            "a",
            doc! {"update": "c", "updates": [{"q": {}, "u": {}, "upsert": true}]},
        );
        assert!(u.contains(&(Resource::collection("a", "c"), Action::Insert)));
        let access = |name| crate::commands::lookup(name, true).map(|e| e.access);
        assert_eq!(access("hello"), Some(Access::Open));
        assert_eq!(access("saslStart"), Some(Access::Open));
        assert_eq!(access("getMore"), Some(Access::Own));
        assert_eq!(access("insert"), Some(Access::Privileges));
        let with = |a: Access| -> Vec<&str> {
            let mut names: Vec<&str> = crate::commands::TABLE
                .iter()
                .filter(|e| e.access == a)
                .map(|e| e.names[0])
                .collect();
            names.sort_unstable();
            names
        };
        // mongod's commands without authentication, and those every user runs on its own.
        assert_eq!(
            with(Access::Open),
            [
                "buildInfo",
                "connectionStatus",
                "endSessions",
                "hello",
                "isMaster",
                "logout",
                "ping",
                "saslContinue",
                "saslStart",
                "whatsmyuri"
            ]
        );
        assert_eq!(
            with(Access::Own),
            [
                "abortTransaction",
                "commitTransaction",
                "getMore",
                "killCursors",
                "killOp",
                "killSessions",
                "listCommands",
                "listDatabases",
                "refreshSessions",
                "startSession"
            ]
        );
    }
}
