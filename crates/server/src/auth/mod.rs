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

pub use roles::{Action, Privilege, Resource, RoleName};

/// The user a connection authenticated as, with its roles at that moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub db: String,
    pub roles: Vec<RoleName>,
}

impl Identity {
    /// `{user, db}` as replies show users.
    pub fn name_document(&self) -> Document {
        doc! {"user": &self.user, "db": &self.db}
    }

    /// Whether the user's roles grant `action` on `resource`.
    pub fn may(&self, resource: &Resource, action: Action) -> bool {
        self.roles
            .iter()
            .any(|r| roles::grants(r, resource, action))
    }

    /// Whether any privilege of the user's roles is on database `db` (or all of them).
    pub fn reaches(&self, db: &str) -> bool {
        self.privileges().iter().any(|p| match &p.resource {
            Resource::Database(d) => d == db || d.is_empty(),
            Resource::Collection { db: d, .. } => d == db,
            Resource::AnyDatabase => true,
            Resource::Cluster => false,
        })
    }

    /// Every privilege of the user's roles (`connectionStatus` with `showPrivileges`).
    pub fn privileges(&self) -> Vec<Privilege> {
        self.roles.iter().flat_map(roles::privileges).collect()
    }
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
