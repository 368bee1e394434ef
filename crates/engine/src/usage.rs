//! How often each index served an operation (`$indexStats`' `accesses`): counted in
//! memory since the server started or the index was created, as mongod counts them.
//! Every read and write that runs a plan reading an index counts one use of it.

use std::collections::HashMap;
use std::sync::Mutex;

use bson::DateTime;

use crate::catalog::CollectionMeta;
use crate::plan::{Access, Plan};

/// An index: its collection's id and its own (0 for the `_id` index).
type Key = (u64, u64);

#[derive(Debug)]
pub struct IndexUsage {
    started: DateTime,
    /// Uses and the time counting began, for the indexes used or created since start.
    counts: Mutex<HashMap<Key, (u64, DateTime)>>,
}

impl Default for IndexUsage {
    fn default() -> Self {
        IndexUsage {
            started: DateTime::now(),
            counts: Mutex::new(HashMap::new()),
        }
    }
}

impl IndexUsage {
    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (u64, DateTime)>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one use of the index `plan` reads, if it reads one.
    pub fn record(&self, meta: &CollectionMeta, plan: &Plan) {
        let index = match &plan.access {
            Access::CollScan(_) => return,
            Access::IdHack(_) => 0,
            Access::IndexScan(scan) => meta.index(&scan.name).map_or(0, |i| i.id),
            Access::Text(scan) => meta.index(&scan.name).map_or(0, |i| i.id),
        };
        let started = self.started;
        self.counts()
            .entry((meta.id, index))
            .or_insert((0, started))
            .0 += 1;
    }

    /// Starts counting an index that was just created (`index` 0: a new collection's
    /// `_id` index).
    pub(crate) fn created(&self, coll: u64, index: u64) {
        self.counts().insert((coll, index), (0, DateTime::now()));
    }

    /// The uses of an index (`index` 0: `_id`) and since when they are counted.
    pub fn accesses(&self, coll: u64, index: u64) -> (u64, DateTime) {
        self.counts()
            .get(&(coll, index))
            .copied()
            .unwrap_or((0, self.started))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_start_at_creation_or_start() {
        let usage = IndexUsage::default();
        assert_eq!(usage.accesses(1, 0), (0, usage.started));
        usage.created(1, 7);
        let (ops, since) = usage.accesses(1, 7);
        assert_eq!(ops, 0);
        assert!(since >= usage.started);
    }
}
