//! Users: who may authenticate, with what credentials, holding which roles.
//!
//! A user is one BSON document in the `users` table, keyed by `db \0 name`, shaped as
//! mongod's `admin.system.users` documents: `{_id: "db.name", userId, user, db,
//! credentials: {"SCRAM-SHA-1": {...}, "SCRAM-SHA-256": {...}}, roles: [{role, db}],
//! customData?}`. Only salted SCRAM credentials are kept, never a password. Writes go
//! through the committer like any other (durable when acknowledged) but write no oplog
//! entry: change streams do not show users, as they do not show `system` collections.

use std::sync::Arc;

use bson::Document;
use eddy_codes::{ErrorCode, MongoError};
use eddy_storage::KvRead;

use crate::{catalog, storage_err, Engine};

/// The table of users.
const TABLE: &str = "users";

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

/// How a write to a user treats an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// The user must not exist yet (`createUser`: 51003 otherwise).
    Create,
    /// The user must exist (`updateUser`, role grants: 11 UserNotFound otherwise).
    Replace,
}

impl Engine {
    /// One user's document.
    pub fn user(&self, db: &str, name: &str) -> Result<Option<Document>, MongoError> {
        let snap = self.store.snapshot().map_err(storage_err)?;
        match snap.get(TABLE, &key(db, name)).map_err(storage_err)? {
            Some(bytes) => Ok(Some(catalog::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Every user (of `db`, when given), in `db`, then name order.
    pub fn users(&self, db: Option<&str>) -> Result<Vec<Document>, MongoError> {
        let snap = self.store.snapshot().map_err(storage_err)?;
        let (start, end) = match db {
            Some(db) => eddy_storage::prefix_bounds(&key(db, "")),
            None => (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded),
        };
        let mut out = Vec::new();
        for entry in snap.scan(TABLE, start, end, false).map_err(storage_err)? {
            let (_, v) = entry.map_err(storage_err)?;
            out.push(catalog::decode(&v)?);
        }
        Ok(out)
    }

    /// Whether any user exists (the localhost exception ends with the first one).
    pub fn has_users(&self) -> Result<bool, MongoError> {
        let snap = self.store.snapshot().map_err(storage_err)?;
        Ok(!snap.is_empty(TABLE).map_err(storage_err)?)
    }

    /// Stores a user document (its `user` and `db` fields name it).
    pub fn put_user(self: &Arc<Self>, user: Document, put: Put) -> Result<(), MongoError> {
        let name = user.get_str("user").unwrap_or_default().to_owned();
        let db = user.get_str("db").unwrap_or_default().to_owned();
        let bytes = catalog::encode(&user)?;
        self.execute(move |tx| {
            let k = key(&db, &name);
            let exists = tx.w.get(TABLE, &k).map_err(storage_err)?.is_some();
            match (put, exists) {
                (Put::Create, true) => {
                    return Err(MongoError::location(
                        51003,
                        format!("User \"{name}@{db}\" already exists"),
                    ))
                }
                (Put::Replace, false) => return Err(not_found(&db, &name)),
                _ => {}
            }
            tx.w.put(TABLE, &k, &bytes).map_err(storage_err)
        })
    }

    /// Removes a user; whether it existed.
    pub fn drop_user(self: &Arc<Self>, db: &str, name: &str) -> Result<bool, MongoError> {
        let k = key(db, name);
        self.execute(move |tx| tx.w.delete(TABLE, &k).map_err(storage_err))
    }

    /// Removes every user of `db`; how many there were.
    pub fn drop_users(self: &Arc<Self>, db: &str) -> Result<u64, MongoError> {
        let prefix = key(db, "");
        self.execute(move |tx| {
            let (start, end) = eddy_storage::prefix_bounds(&prefix);
            let keys: Vec<Vec<u8>> =
                tx.w.scan(TABLE, start, end, false)
                    .map_err(storage_err)?
                    .map(|e| e.map(|(k, _)| k))
                    .collect::<Result<_, _>>()
                    .map_err(storage_err)?;
            for k in &keys {
                tx.w.delete(TABLE, k).map_err(storage_err)?;
            }
            Ok(keys.len() as u64)
        })
    }
}
