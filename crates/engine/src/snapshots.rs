//! Snapshot reads at a cluster time (`readConcern: {level: "snapshot", atClusterTime}`).
//!
//! A redb read transaction is an MVCC snapshot of one commit, and every commit writes
//! its oplog entries in the same transaction as its documents, so a snapshot's cluster
//! time is exactly the newest oplog key it holds. A snapshot read without
//! `atClusterTime` reads a fresh snapshot and answers with its time; the snapshot is
//! kept ("pinned") for [`HISTORY_WINDOW`] so that later reads at that time (a driver's
//! snapshot session sends it with every following command) see the same data, as
//! mongod keeps `minSnapshotHistoryWindowInSeconds` of history. A read at a time no
//! pinned snapshot serves, and that is older than the newest commit, fails with 239
//! SnapshotTooOld, as mongod's does past its window.
//!
//! A pinned snapshot keeps redb from reusing the pages it sees, so pins are bounded in
//! age and number.

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bson::Timestamp;
use eddy_codes::{ErrorCode, MongoError};
use eddy_storage::{KvRead, Snapshot};

use crate::oplog::{key_of, ts_of_key};
use crate::read::Reader;
use crate::{storage_err, tables, Engine};

/// How long a pinned snapshot stays readable (mongod's default
/// `minSnapshotHistoryWindowInSeconds`).
pub const HISTORY_WINDOW: Duration = Duration::from_secs(300);
/// At most this many snapshots are pinned; the oldest go first.
const MAX_PINNED: usize = 64;

struct Pinned {
    ts: Timestamp,
    taken: Instant,
    snap: Snapshot,
}

/// The pinned snapshots, oldest first.
#[derive(Default)]
pub(crate) struct SnapshotHistory {
    pinned: Mutex<VecDeque<Pinned>>,
}

impl SnapshotHistory {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Pinned>> {
        self.pinned.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn expire(&self) {
        let mut pinned = self.lock();
        while pinned
            .front()
            .is_some_and(|p| p.taken.elapsed() > HISTORY_WINDOW)
        {
            pinned.pop_front();
        }
    }

    fn pin(&self, ts: Timestamp, snap: &Snapshot) {
        let mut pinned = self.lock();
        if pinned.back().is_some_and(|p| p.ts == ts) {
            // The newest pin already serves this time; refresh its age.
            if let Some(p) = pinned.back_mut() {
                p.taken = Instant::now();
            }
            return;
        }
        if pinned.len() == MAX_PINNED {
            pinned.pop_front();
        }
        pinned.push_back(Pinned {
            ts,
            taken: Instant::now(),
            snap: snap.clone(),
        });
    }

    /// The newest pinned snapshot taken at or before `ts`.
    fn at_or_before(&self, ts: Timestamp) -> Option<(Timestamp, Snapshot)> {
        self.lock()
            .iter()
            .rev()
            .find(|p| (p.ts.time, p.ts.increment) <= (ts.time, ts.increment))
            .map(|p| (p.ts, p.snap.clone()))
    }
}

/// The cluster time of a snapshot: its newest oplog entry (zero for an empty store).
fn snapshot_time(snap: &Snapshot) -> Result<Timestamp, MongoError> {
    let last = snap.last(tables::OPLOG).map_err(storage_err)?;
    Ok(last.and_then(|(k, _)| ts_of_key(&k)).unwrap_or(Timestamp {
        time: 0,
        increment: 0,
    }))
}

fn order(ts: Timestamp) -> (u32, u32) {
    (ts.time, ts.increment)
}

impl Engine {
    /// A reader for a snapshot read and the cluster time it reads at: a fresh snapshot
    /// (pinned for later reads at its time) when `at` is `None`, else the state as of
    /// `at`.
    pub fn snapshot_reader(
        &self,
        at: Option<Timestamp>,
    ) -> Result<(Reader, Timestamp), MongoError> {
        self.snapshots.expire();
        let fresh = self.store.snapshot().map_err(storage_err)?;
        let fresh_ts = snapshot_time(&fresh)?;
        let Some(at) = at else {
            self.snapshots.pin(fresh_ts, &fresh);
            return Ok((Reader::new(fresh), fresh_ts));
        };
        let now = self.cluster_time();
        if order(at) > order(now) {
            return Err(MongoError::bad_value(format!(
                "readConcern atClusterTime value {} is greater than the current clusterTime {}",
                show(at),
                show(now)
            )));
        }
        if order(at) >= order(fresh_ts) {
            // Nothing was committed after `fresh_ts`: the fresh snapshot is the state at `at`.
            self.snapshots.pin(fresh_ts, &fresh);
            return Ok((Reader::new(fresh), at));
        }
        if let Some((pinned_ts, snap)) = self.snapshots.at_or_before(at) {
            // The pin serves `at` if no commit came between its time and `at`.
            let between = fresh
                .scan(
                    tables::OPLOG,
                    Bound::Excluded(key_of(pinned_ts).to_vec()),
                    Bound::Included(key_of(at).to_vec()),
                    false,
                )
                .map_err(storage_err)?
                .next()
                .is_some();
            if !between {
                return Ok((Reader::new(snap), at));
            }
        }
        Err(MongoError::new(
            ErrorCode::SnapshotTooOld,
            format!(
                "Read timestamp {} is older than the oldest available timestamp.",
                show(at)
            ),
        ))
    }
}

fn show(ts: Timestamp) -> String {
    format!("Timestamp({}, {})", ts.time, ts.increment)
}
