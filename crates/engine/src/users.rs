//! Users and user-defined roles: who may authenticate, with what credentials, holding
//! which privileges.
//!
//! A user is one BSON document in the `users` table, keyed by `db \0 name`, shaped as
//! mongod's `admin.system.users` documents: `{_id: "db.name", userId, user, db,
//! credentials: {"SCRAM-SHA-1": {...}, "SCRAM-SHA-256": {...}}, roles: [{role, db}],
//! customData?}`. Only salted SCRAM credentials are kept, never a password. A
//! user-defined role is a document of the `roles` table, shaped as `admin.system.roles`
//! documents: `{_id: "db.role", role, db, privileges: [{resource, actions}], roles}`.
//! Writes go through the committer like any other (durable when acknowledged) but write
//! no oplog entry: change streams do not show them, as they do not show `system`
//! collections. Every write bumps [`Engine::security_version`], so that authenticated
//! connections pick up changed roles, as mongod's user cache does.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bson::Document;
use eddy_codes::{ErrorCode, MongoError};
use eddy_storage::KvRead;

use crate::{catalog, storage_err, Engine};

/// A kind of security principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    User,
    Role,
}

impl Principal {
    fn table(self) -> &'static str {
        match self {
            Principal::User => "users",
            Principal::Role => "roles",
        }
    }

    /// The field of a document that holds the principal's name.
    pub fn name_field(self) -> &'static str {
        match self {
            Principal::User => "user",
            Principal::Role => "role",
        }
    }
}

fn key(db: &str, name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(db.len() + name.len() + 1);
    k.extend_from_slice(db.as_bytes());
    k.push(0);
    k.extend_from_slice(name.as_bytes());
    k
}

/// 11 UserNotFound, as mongod words it.
pub fn not_found(db: &str, name: &str) -> MongoError {
    MongoError::new(
        ErrorCode::UserNotFound,
        format!("Could not find user \"{name}\" for db \"{db}\""),
    )
}

/// 31 RoleNotFound, as mongod words it.
pub fn role_not_found(db: &str, name: &str) -> MongoError {
    MongoError::new(
        ErrorCode::RoleNotFound,
        format!("Could not find role: {name}@{db}"),
    )
}

/// How a write treats an existing principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// It must not exist yet (51003 for a user, 51002 for a role otherwise).
    Create,
    /// It must exist (11 UserNotFound / 31 RoleNotFound otherwise).
    Replace,
}

impl Engine {
    /// One user's document.
    pub fn user(&self, db: &str, name: &str) -> Result<Option<Document>, MongoError> {
        self.principal(Principal::User, db, name)
    }

    /// Every user (of `db`, when given), in `db`, then name order.
    pub fn users(&self, db: Option<&str>) -> Result<Vec<Document>, MongoError> {
        self.principals(Principal::User, db)
    }

    /// One principal's document.
    pub fn principal(
        &self,
        kind: Principal,
        db: &str,
        name: &str,
    ) -> Result<Option<Document>, MongoError> {
        let snap = self.store.snapshot().map_err(storage_err)?;
        match snap
            .get(kind.table(), &key(db, name))
            .map_err(storage_err)?
        {
            Some(bytes) => Ok(Some(catalog::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Every principal of a kind (of `db`, when given), in `db`, then name order.
    pub fn principals(
        &self,
        kind: Principal,
        db: Option<&str>,
    ) -> Result<Vec<Document>, MongoError> {
        let snap = self.store.snapshot().map_err(storage_err)?;
        let (start, end) = match db {
            Some(db) => eddy_storage::prefix_bounds(&key(db, "")),
            None => (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded),
        };
        let mut out = Vec::new();
        for entry in snap
            .scan(kind.table(), start, end, false)
            .map_err(storage_err)?
        {
            let (_, v) = entry.map_err(storage_err)?;
            out.push(catalog::decode(&v)?);
        }
        Ok(out)
    }

    /// Whether any user exists (the localhost exception ends with the first one).
    pub fn has_users(&self) -> Result<bool, MongoError> {
        let snap = self.store.snapshot().map_err(storage_err)?;
        Ok(!snap
            .is_empty(Principal::User.table())
            .map_err(storage_err)?)
    }

    /// Counts writes to users and roles: an identity resolved at another count is stale.
    pub fn security_version(&self) -> u64 {
        self.security_version.load(Ordering::Acquire)
    }

    /// Stores a user document (its `user` and `db` fields name it).
    pub fn put_user(self: &Arc<Self>, user: Document, put: Put) -> Result<(), MongoError> {
        self.put_principal(Principal::User, user, put)
    }

    /// Stores a principal's document (its name field and `db` name it).
    pub fn put_principal(
        self: &Arc<Self>,
        kind: Principal,
        doc: Document,
        put: Put,
    ) -> Result<(), MongoError> {
        let name = doc
            .get_str(kind.name_field())
            .unwrap_or_default()
            .to_owned();
        let db = doc.get_str("db").unwrap_or_default().to_owned();
        let bytes = catalog::encode(&doc)?;
        let engine = Arc::clone(self);
        self.execute(move |tx| {
            let k = key(&db, &name);
            let exists = tx.w.get(kind.table(), &k).map_err(storage_err)?.is_some();
            match (put, exists, kind) {
                (Put::Create, true, Principal::User) => {
                    return Err(MongoError::location(
                        51003,
                        format!("User \"{name}@{db}\" already exists"),
                    ))
                }
                (Put::Create, true, Principal::Role) => {
                    return Err(MongoError::location(
                        51002,
                        format!("Role \"{name}@{db}\" already exists"),
                    ))
                }
                (Put::Replace, false, Principal::User) => return Err(not_found(&db, &name)),
                (Put::Replace, false, Principal::Role) => return Err(role_not_found(&db, &name)),
                _ => {}
            }
            tx.w.put(kind.table(), &k, &bytes).map_err(storage_err)?;
            engine.security_version.fetch_add(1, Ordering::AcqRel);
            Ok(())
        })
    }

    /// Removes a user; whether it existed.
    pub fn drop_user(self: &Arc<Self>, db: &str, name: &str) -> Result<bool, MongoError> {
        self.drop_principal(Principal::User, db, name)
    }

    /// Removes a principal; whether it existed.
    pub fn drop_principal(
        self: &Arc<Self>,
        kind: Principal,
        db: &str,
        name: &str,
    ) -> Result<bool, MongoError> {
        let k = key(db, name);
        let engine = Arc::clone(self);
        self.execute(move |tx| {
            let existed = tx.w.delete(kind.table(), &k).map_err(storage_err)?;
            engine.security_version.fetch_add(1, Ordering::AcqRel);
            Ok(existed)
        })
    }

    /// Removes every user of `db`; how many there were.
    pub fn drop_users(self: &Arc<Self>, db: &str) -> Result<u64, MongoError> {
        self.drop_principals(Principal::User, db)
    }

    /// Removes every principal of a kind in `db`; how many there were.
    pub fn drop_principals(self: &Arc<Self>, kind: Principal, db: &str) -> Result<u64, MongoError> {
        let prefix = key(db, "");
        let engine = Arc::clone(self);
        self.execute(move |tx| {
            let (start, end) = eddy_storage::prefix_bounds(&prefix);
            let keys: Vec<Vec<u8>> =
                tx.w.scan(kind.table(), start, end, false)
                    .map_err(storage_err)?
                    .map(|e| e.map(|(k, _)| k))
                    .collect::<Result<_, _>>()
                    .map_err(storage_err)?;
            for k in &keys {
                tx.w.delete(kind.table(), k).map_err(storage_err)?;
            }
            engine.security_version.fetch_add(1, Ordering::AcqRel);
            Ok(keys.len() as u64)
        })
    }
}
