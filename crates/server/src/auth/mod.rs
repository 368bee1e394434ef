//! Access control: who a connection is (SCRAM authentication, [`scram`]) and what it
//! may do (the built-in roles' privileges, [`roles`]).
//!
//! Without `--auth` nothing here is consulted and every connection may do everything,
//! as with mongod. With it, a connection starts unauthenticated: it may only run the
//! commands mongod allows before authentication (`hello`, `saslStart`, ...), and, while
//! no user exists at all, create the first user over a loopback connection (the
//! localhost exception). Once authenticated it may run a command when one of its
//! user's roles grants every privilege the command needs (`dispatch` checks it).

pub mod check;
pub mod roles;
pub mod scram;

use std::sync::Mutex;

use bson::{doc, Bson, Document};
use eddy_codes::MongoError;
use eddy_engine::users::Principal;
use eddy_engine::Engine;

pub use roles::{Action, Privilege, Resource, RoleName};

/// The user a connection authenticated as, with its roles and their privileges as of
/// `version` (re-resolved when users or roles changed since, as mongod's user cache).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub db: String,
    pub roles: Vec<RoleName>,
    privileges: Vec<Privilege>,
    version: u64,
    /// The `uid` of the logical sessions the user runs in.
    session_uid: [u8; 32],
}

impl Identity {
    /// The user `user@db` as stored now (no roles if it was dropped meanwhile).
    pub fn resolve(engine: &Engine, user: &str, db: &str) -> Result<Identity, MongoError> {
        let version = engine.security_version();
        let roles = engine
            .user(db, user)?
            .map(|u| roles_of(&u))
            .unwrap_or_default();
        Ok(Identity {
            user: user.to_owned(),
            db: db.to_owned(),
            privileges: resolve_privileges(engine, &roles)?,
            roles,
            version,
            session_uid: session_user_digest(user, db),
        })
    }

    /// Whether users or roles changed since this identity was resolved.
    pub fn is_stale(&self, engine: &Engine) -> bool {
        self.version != engine.security_version()
    }

    /// `{user, db}` as replies show users.
    pub fn name_document(&self) -> Document {
        doc! {"user": &self.user, "db": &self.db}
    }

    /// Whether the user's roles grant `action` on `resource`.
    pub fn may(&self, resource: &Resource, action: Action) -> bool {
        self.privileges.iter().any(|p| p.grants(resource, action))
    }

    /// Whether any privilege of the user's roles, for any action, covers `resource`.
    pub fn touches(&self, resource: &Resource) -> bool {
        self.privileges.iter().any(|p| p.covers(resource))
    }

    /// Whether any privilege of the user's roles is on database `db` (or all of them).
    pub fn reaches(&self, db: &str) -> bool {
        self.privileges.iter().any(|p| match &p.resource {
            Resource::Database(d) => d == db,
            Resource::Collection { db: d, .. } => d == db,
            Resource::AnyDatabase
            | Resource::CollectionInAnyDatabase(_)
            | Resource::AnyResource => true,
            Resource::Cluster => false,
        })
    }

    /// Every privilege of the user's roles (`connectionStatus` with `showPrivileges`).
    pub fn privileges(&self) -> &[Privilege] {
        &self.privileges
    }
}

/// The `uid` of a logical session: SHA-256 of `user@db`, or of the empty string for no
/// user (mongod's `getLogicalSessionUserDigestFor`).
/// Authenticates `user` of `db` by its password (HTTP Basic), against the stored
/// SCRAM-SHA-256 credentials (SCRAM-SHA-1 for a user that has only those): the user's
/// identity, or 18 AuthenticationFailed whatever went wrong.
pub fn authenticate_password(
    engine: &Engine,
    db: &str,
    user: &str,
    password: &str,
) -> Result<Identity, MongoError> {
    let doc = engine.user(db, user)?.ok_or_else(scram::failed)?;
    let credentials = doc
        .get_document("credentials")
        .map_err(|_| scram::failed())?;
    let (mech, stored) = [scram::Mechanism::Sha256, scram::Mechanism::Sha1]
        .into_iter()
        .find_map(|m| {
            credentials
                .get_document(m.name())
                .ok()
                .and_then(scram::Credentials::from_document)
                .map(|c| (m, c))
        })
        .ok_or_else(scram::failed)?;
    if !scram::password_matches(mech, user, password, &stored)? {
        return Err(scram::failed());
    }
    Identity::resolve(engine, user, db)
}

pub fn session_user_digest(user: &str, db: &str) -> [u8; 32] {
    use sha2::Digest;
    /// Every command of an unauthenticated connection asks for this one.
    static NOBODY: std::sync::LazyLock<[u8; 32]> =
        std::sync::LazyLock::new(|| sha2::Sha256::digest(b"").into());
    if user.is_empty() && db.is_empty() {
        *NOBODY
    } else {
        sha2::Sha256::digest(format!("{user}@{db}")).into()
    }
}

/// The privileges of `roles`: built-in ones', and user-defined ones' with those of the
/// roles they inherit (a role that no longer exists grants nothing).
pub fn resolve_privileges(
    engine: &Engine,
    roles: &[RoleName],
) -> Result<Vec<Privilege>, MongoError> {
    let mut out = Vec::new();
    let mut seen: Vec<RoleName> = Vec::new();
    let mut todo: Vec<RoleName> = roles.to_vec();
    while let Some(role) = todo.pop() {
        if seen.contains(&role) {
            continue;
        }
        seen.push(role.clone());
        if roles::is_builtin(&role) {
            out.extend(roles::privileges(&role));
            continue;
        }
        let Some(doc) = engine.principal(Principal::Role, &role.db, &role.role)? else {
            continue;
        };
        if let Ok(privileges) = doc.get_array("privileges") {
            for p in privileges.iter().filter_map(Bson::as_document) {
                out.push(Privilege::from_document(p)?);
            }
        }
        todo.extend(roles_of(&doc));
    }
    Ok(out)
}

/// Whether a role exists: built in, or user-defined.
pub fn role_exists(engine: &Engine, role: &RoleName) -> Result<bool, MongoError> {
    Ok(roles::is_builtin(role)
        || engine
            .principal(Principal::Role, &role.db, &role.role)?
            .is_some())
}

/// 31 RoleNotFound unless every role exists.
pub fn check_roles_exist(engine: &Engine, roles: &[RoleName]) -> Result<(), MongoError> {
    for r in roles {
        if !role_exists(engine, r)? {
            return Err(eddy_engine::users::role_not_found(&r.db, &r.role));
        }
    }
    Ok(())
}

/// A connection's authentication state.
#[derive(Debug, Default)]
pub struct ConnAuth {
    identity: Mutex<Option<Identity>>,
    /// A SCRAM conversation between `saslStart` and its last `saslContinue`.
    conversation: Mutex<Option<scram::Conversation>>,
    /// Failed authentications on this connection (each further one is slowed down).
    failures: std::sync::atomic::AtomicU32,
}

impl ConnAuth {
    pub fn identity(&self) -> Option<Identity> {
        self.identity
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The `uid` of the sessions this connection runs in: its user's, or no user's.
    pub fn session_uid(&self) -> [u8; 32] {
        match &*self.identity.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(identity) => identity.session_uid,
            None => session_user_digest("", ""),
        }
    }

    pub fn set_identity(&self, identity: Option<Identity>) {
        *self.identity.lock().unwrap_or_else(|p| p.into_inner()) = identity;
    }

    pub fn set_conversation(&self, c: Option<scram::Conversation>) {
        *self.conversation.lock().unwrap_or_else(|p| p.into_inner()) = c;
    }

    pub fn take_conversation(&self) -> Option<scram::Conversation> {
        self.conversation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Counts a failed attempt; how many there were before it.
    pub fn failed(&self) -> u32 {
        self.failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
}

/// The roles of a stored user document.
pub fn roles_of(user: &Document) -> Vec<RoleName> {
    user.get_array("roles")
        .map(|roles| roles.iter().filter_map(RoleName::from_bson).collect())
        .unwrap_or_default()
}

/// `[{role, db}]` as replies show roles.
pub fn roles_bson(roles: &[RoleName]) -> Bson {
    Bson::Array(
        roles
            .iter()
            .map(|r| Bson::Document(r.to_document()))
            .collect(),
    )
}
