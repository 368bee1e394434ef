//! The cluster clock: a strictly increasing `Timestamp(seconds, increment)`.
//!
//! Every oplog entry takes the next tick, so timestamps order all writes (the order of
//! the oplog, of change events and of resume tokens). Ticks are taken only on the
//! committer thread, in commit order. The clock follows wall time when it moves forward
//! and keeps counting increments when it does not (a clock step backwards never makes a
//! timestamp repeat).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bson::Timestamp;

/// Packs a timestamp into the u64 that orders like it (seconds high, increment low).
pub fn pack(ts: Timestamp) -> u64 {
    (u64::from(ts.time) << 32) | u64::from(ts.increment)
}

/// The inverse of [`pack`].
pub fn unpack(v: u64) -> Timestamp {
    Timestamp {
        time: (v >> 32) as u32,
        increment: v as u32,
    }
}

/// The clock. `last` is the last tick handed out; `committed` the last tick whose
/// write is durable (what `operationTime` reports).
#[derive(Debug)]
pub struct ClusterClock {
    last: AtomicU64,
    committed: AtomicU64,
}

fn now_secs() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

impl ClusterClock {
    /// A clock that continues after `last` (the newest timestamp found on disk).
    pub fn resume_after(last: Timestamp) -> ClusterClock {
        let packed = pack(last);
        ClusterClock {
            last: AtomicU64::new(packed),
            committed: AtomicU64::new(packed),
        }
    }

    /// The next tick. Called on the committer thread only.
    pub fn tick(&self) -> Timestamp {
        let last = unpack(self.last.load(Ordering::Acquire));
        let now = now_secs();
        let next = if now > last.time {
            Timestamp {
                time: now,
                increment: 1,
            }
        } else if last.increment == u32::MAX {
            Timestamp {
                time: last.time + 1,
                increment: 1,
            }
        } else {
            Timestamp {
                time: last.time,
                increment: last.increment + 1,
            }
        };
        self.last.store(pack(next), Ordering::Release);
        next
    }

    /// `n` consecutive ticks within one second (a transaction's operations, so that
    /// operation `i` lies at the first tick + `i`); the first of them.
    pub fn tick_many(&self, n: u32) -> Timestamp {
        let first = self.tick();
        if n <= 1 {
            return first;
        }
        let first = match first.increment.checked_add(n - 1) {
            Some(_) => first,
            // Not enough increments left in this second: start the next one.
            None => Timestamp {
                time: first.time + 1,
                increment: 1,
            },
        };
        let last = Timestamp {
            time: first.time,
            increment: first.increment + (n - 1),
        };
        self.last.store(pack(last), Ordering::Release);
        first
    }

    /// Records that every tick up to `ts` is durable.
    pub fn set_committed(&self, ts: Timestamp) {
        self.committed.fetch_max(pack(ts), Ordering::AcqRel);
    }

    /// The newest durable timestamp.
    pub fn committed(&self) -> Timestamp {
        unpack(self.committed.load(Ordering::Acquire))
    }

    /// A timestamp for replies when nothing was written yet: the later of the last
    /// durable write and the current wall-clock second.
    pub fn cluster_time(&self) -> Timestamp {
        let committed = self.committed();
        let now = now_secs();
        if now > committed.time {
            Timestamp {
                time: now,
                increment: 0,
            }
        } else {
            committed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_strictly_increase() {
        let clock = ClusterClock::resume_after(Timestamp {
            time: u32::MAX - 1,
            increment: u32::MAX - 1,
        });
        let a = clock.tick();
        let b = clock.tick();
        let c = clock.tick();
        assert!(pack(a) < pack(b) && pack(b) < pack(c));
        assert_eq!(c.time, u32::MAX);
    }

    #[test]
    fn pack_orders_like_timestamps() {
        let a = Timestamp {
            time: 1,
            increment: 9,
        };
        let b = Timestamp {
            time: 2,
            increment: 1,
        };
        assert!(pack(a) < pack(b));
        assert_eq!(unpack(pack(b)), b);
    }
}
