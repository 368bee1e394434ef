//! The change hub: the in-memory tail of the oplog that every change stream reads.
//!
//! The committer publishes each group's entries here after they are durable, decoded
//! once and shared (`Arc`). A stream keeps only its position (a timestamp); reading
//! is a binary search in the tail plus cloning the `Arc`s it needs, so a stream's work
//! is proportional to the entries it reads, not to the number of streams. Waiting
//! streams sleep on a `watch` channel that a publish wakes; nothing polls.
//!
//! The tail is bounded (by entry count). A stream whose position fell behind it reads
//! the older part from storage (see `Engine::read_oplog`) and then continues here,
//! without a gap: the tail always starts right after an entry that is on disk.

use std::collections::VecDeque;
use std::sync::RwLock;

use bson::Timestamp;
use tokio::sync::watch;

use crate::clock::pack;
use crate::oplog::SharedEntry;

/// What a read of the tail found.
#[derive(Debug)]
pub enum TailRead {
    /// The entries after the position (possibly none), oldest first.
    Entries(Vec<SharedEntry>),
    /// The position is older than the tail: read storage first.
    BehindTail,
}

/// The in-memory tail.
#[derive(Debug)]
pub struct ChangeHub {
    tail: RwLock<Tail>,
    /// The newest published timestamp; waiting streams watch it.
    latest: watch::Sender<Timestamp>,
    capacity: usize,
}

#[derive(Debug)]
struct Tail {
    entries: VecDeque<SharedEntry>,
    /// Every entry at or before this timestamp is on disk and not in the tail (or
    /// older than the tail's first entry); positions at or after it can be served.
    floor: Timestamp,
}

impl ChangeHub {
    /// A hub whose tail holds up to `capacity` entries, starting after `last` (the
    /// newest entry already on disk when the server started).
    pub fn new(capacity: usize, last: Timestamp) -> ChangeHub {
        let (latest, _) = watch::channel(last);
        ChangeHub {
            tail: RwLock::new(Tail {
                entries: VecDeque::with_capacity(capacity.min(1 << 16)),
                floor: last,
            }),
            latest,
            capacity: capacity.max(1),
        }
    }

    /// Appends durable entries (in timestamp order) and wakes waiting streams.
    pub fn publish(&self, entries: Vec<SharedEntry>) {
        let Some(newest) = entries.last().map(|e| e.ts) else {
            return;
        };
        {
            let mut tail = self.tail.write().unwrap_or_else(|p| p.into_inner());
            for entry in entries {
                tail.entries.push_back(entry);
            }
            while tail.entries.len() > self.capacity {
                if let Some(old) = tail.entries.pop_front() {
                    tail.floor = old.ts;
                }
            }
        }
        self.latest.send_replace(newest);
    }

    /// Up to `max` entries strictly after `after`.
    pub fn read_after(&self, after: Timestamp, max: usize) -> TailRead {
        let tail = self.tail.read().unwrap_or_else(|p| p.into_inner());
        if pack(after) < pack(tail.floor) {
            return TailRead::BehindTail;
        }
        let start = tail.entries.partition_point(|e| pack(e.ts) <= pack(after));
        TailRead::Entries(tail.entries.range(start..).take(max).cloned().collect())
    }

    /// A receiver that changes whenever entries are published.
    pub fn subscribe(&self) -> watch::Receiver<Timestamp> {
        self.latest.subscribe()
    }

    /// The newest published timestamp.
    pub fn latest(&self) -> Timestamp {
        *self.latest.borrow()
    }

    /// How many streams wait on the hub right now.
    pub fn waiters(&self) -> usize {
        self.latest.receiver_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Namespace;
    use crate::oplog::{OpKind, OplogEntry};
    use bson::{doc, DateTime};
    use std::sync::Arc;

    fn entry(inc: u32) -> SharedEntry {
        Arc::new(OplogEntry {
            ts: Timestamp {
                time: 1,
                increment: inc,
            },
            wall: DateTime::from_millis(0),
            op: OpKind::Insert,
            ns: Namespace::new("d", "c"),
            uuid: None,
            o: doc! {"_id": inc},
            document_key: Some(doc! {"_id": inc}),
            pre_image: None,
            post_image: None,
        })
    }

    fn ts(inc: u32) -> Timestamp {
        Timestamp {
            time: 1,
            increment: inc,
        }
    }

    #[test]
    fn reads_after_a_position() {
        let hub = ChangeHub::new(10, ts(0));
        hub.publish((1..=5).map(entry).collect());
        match hub.read_after(ts(2), 2) {
            TailRead::Entries(e) => {
                assert_eq!(
                    e.iter().map(|e| e.ts.increment).collect::<Vec<_>>(),
                    vec![3, 4]
                )
            }
            TailRead::BehindTail => panic!("position is in the tail"),
        }
        assert_eq!(hub.latest(), ts(5));
    }

    #[test]
    fn positions_older_than_the_tail_go_to_storage() {
        let hub = ChangeHub::new(3, ts(0));
        hub.publish((1..=5).map(entry).collect());
        assert!(matches!(hub.read_after(ts(1), 10), TailRead::BehindTail));
        match hub.read_after(ts(2), 10) {
            TailRead::Entries(e) => assert_eq!(e.len(), 3),
            TailRead::BehindTail => panic!("ts 2 is the floor: entries after it are here"),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn publish_wakes_waiters() {
        let hub = Arc::new(ChangeHub::new(10, ts(0)));
        let mut rx = hub.subscribe();
        let h = hub.clone();
        tokio::spawn(async move { h.publish(vec![entry(1)]) });
        rx.changed().await.expect("hub alive");
        assert_eq!(*rx.borrow(), ts(1));
    }
}
