//! TTL indexes: the documents an index's `expireAfterSeconds` says have expired are
//! deleted through the ordinary delete path, so their oplog entries are plain deletes
//! and change streams report them as `delete` events, as mongod's TTL monitor's are.

use std::sync::Arc;

use bson::{doc, Bson, DateTime, Document};
use eddy_codes::MongoError;

use super::DeleteOp;
use crate::Engine;

impl Engine {
    /// One pass of the TTL monitor at `now`: for every TTL index (and every collection
    /// with its own `expireAfterSeconds`: `crate::timeseries`), deletes the documents
    /// whose indexed field is a date (or an array holding one) at least
    /// `expireAfterSeconds` old, within the index's `partialFilterExpression`. Returns
    /// how many documents were deleted.
    pub fn expire_ttl(self: &Arc<Self>, now: DateTime) -> Result<u64, MongoError> {
        let mut work = Vec::new();
        for meta in self.reader()?.collections(None)? {
            // Time-series and clustered collections' own `expireAfterSeconds`.
            if let Some(filter) = crate::timeseries::expired_filter(&meta, now) {
                work.push((meta.ns.clone(), filter));
            }
            for index in &meta.indexes {
                if let Some(filter) = expired_filter(&index.spec, now) {
                    work.push((meta.ns.clone(), filter));
                }
            }
        }
        let mut deleted = 0;
        for (ns, filter) in work {
            let op = DeleteOp {
                filter,
                just_one: false,
                ..DeleteOp::default()
            };
            // A collection dropped since the listing deletes nothing.
            deleted += self.delete(ns, vec![op], true)?.n;
        }
        Ok(deleted)
    }
}

/// The filter of the documents a TTL index has expired at `now` (`None`: not a TTL
/// index). `$lt` on a date matches dates only, and an array when its earliest date is
/// old enough, as mongod's monitor decides.
fn expired_filter(spec: &Document, now: DateTime) -> Option<Document> {
    let seconds = match spec.get("expireAfterSeconds")? {
        Bson::Int32(n) => i64::from(*n),
        Bson::Int64(n) => *n,
        Bson::Double(d) => *d as i64,
        _ => return None,
    };
    let field = spec.get_document("key").ok()?.keys().next()?.clone();
    let cutoff = DateTime::from_millis(
        now.timestamp_millis()
            .saturating_sub(seconds.saturating_mul(1000)),
    );
    let expired = doc! {field: {"$lt": cutoff}};
    Some(match spec.get_document("partialFilterExpression") {
        Ok(partial) => doc! {"$and": [partial.clone(), expired]},
        Err(_) => expired,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_follows_the_spec() {
        let now = DateTime::from_millis(100_000);
        let spec = doc! {"key": {"at": 1}, "name": "at_1", "expireAfterSeconds": 30};
        assert_eq!(
            expired_filter(&spec, now),
            Some(doc! {"at": {"$lt": DateTime::from_millis(70_000)}})
        );
        let partial =
            doc! {"key": {"at": 1}, "expireAfterSeconds": 0, "partialFilterExpression": {"k": 1}};
        assert_eq!(
            expired_filter(&partial, now),
            Some(doc! {"$and": [{"k": 1}, {"at": {"$lt": now}}]})
        );
        assert_eq!(expired_filter(&doc! {"key": {"at": 1}}, now), None);
    }
}
