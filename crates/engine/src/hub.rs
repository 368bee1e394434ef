//! The change hub: the in-memory tail of the oplog that every change stream reads,
//! and the dispatcher that wakes the streams waiting for it.
//!
//! The committer publishes each group's entries here after they are durable, decoded
//! once and shared (`Arc`), each with room for its change events (built once per
//! shape by the first stream that reads it). A stream keeps only its position (a
//! timestamp); reading is a binary search in the tail plus cloning the `Arc`s it needs,
//! so a stream's work is proportional to the entries it reads, not to the number of
//! streams. A stream with nothing to read waits with the dispatcher
//! (`changes::dispatch`), which wakes it only for an entry that can concern it; nothing
//! polls, and an entry wakes no stream it cannot concern.
//!
//! The tail is bounded (by entry count). A stream whose position fell behind it reads
//! the older part from storage (see `Engine::read_oplog`) and then continues here,
//! without a gap: the tail always starts right after an entry that is on disk.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use bson::Timestamp;
use tokio::sync::watch;

use crate::changes::dispatch::{Dispatcher, Handed, Handoff};
use crate::changes::Interest;
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
pub struct ChangeHub {
    tail: RwLock<Tail>,
    /// The waiting change streams. Entries are dispatched in order, under this lock,
    /// after they joined the tail; a stream registers under it only if it has read
    /// everything dispatched, so no entry is missed between a read and a wait.
    dispatcher: Mutex<Dispatcher>,
    /// The newest published timestamp, for awaitData tailable cursors (every publish
    /// wakes them: they wait on a capped collection, not on the oplog).
    latest: watch::Sender<Timestamp>,
    /// The tail's floor, packed, readable without the lock (see [`ChangeHub::holds`]).
    floor: AtomicU64,
    capacity: usize,
    /// Runs the hand-offs an entry woke (see [`ChangeHub::run_handoffs_with`]).
    runner: OnceLock<Runner>,
}

/// What runs woken hand-offs: called when a wake finds its first stream, it begins
/// that wake's [`FanOut`].
pub type Runner = Box<dyn Fn() -> Box<dyn FanOut> + Send + Sync>;

/// The hand-offs one wake woke: given them in parts of at most [`HANDOFF_CHUNK`] as
/// the dispatcher finds them, it runs each part on a thread of its own choosing. It is
/// dropped once the wake has given it every part, so a runner knows when a fan-out's
/// replies are all under way (the last part may still be running).
pub trait FanOut {
    fn run(&mut self, part: Handed);
}

/// Hand-offs per part given to the runner: small enough that the first replies leave
/// early and that the runner's threads share the parts evenly, large enough that
/// handing a part over costs little beside its writes.
pub const HANDOFF_CHUNK: usize = 32;

impl std::fmt::Debug for ChangeHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeHub")
            .field("latest", &self.latest())
            .field("waiters", &self.waiters())
            .finish_non_exhaustive()
    }
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
            dispatcher: Mutex::new(Dispatcher::new(pack(last))),
            latest,
            floor: AtomicU64::new(pack(last)),
            capacity: capacity.max(1),
            runner: OnceLock::new(),
        }
    }

    fn dispatcher(&self) -> std::sync::MutexGuard<'_, Dispatcher> {
        self.dispatcher.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends durable entries (in timestamp order) and wakes the streams they concern.
    pub fn publish(&self, entries: Vec<SharedEntry>) {
        self.append(&entries);
        self.wake(&entries);
    }

    /// The first half of [`ChangeHub::publish`]: the entries join the tail, where every
    /// read finds them. The committer does this before it answers a writer, so a stream
    /// read after the answer sees the write.
    pub fn append(&self, entries: &[SharedEntry]) {
        let mut tail = self.tail.write().unwrap_or_else(|p| p.into_inner());
        tail.entries.extend(entries.iter().cloned());
        while tail.entries.len() > self.capacity {
            if let Some(old) = tail.entries.pop_front() {
                tail.floor = old.ts;
            }
        }
        self.floor.store(pack(tail.floor), Ordering::Release);
    }

    /// The second half of [`ChangeHub::publish`], after the writer was answered: wakes
    /// the waiting streams the appended entries concern.
    pub fn wake(&self, entries: &[SharedEntry]) {
        let Some(newest) = entries.last().map(|e| e.ts) else {
            return;
        };
        let runner = self.runner.get();
        let mut handed: Handed = Vec::new();
        let mut fan_out: Option<Box<dyn FanOut>> = None;
        {
            let mut dispatcher = self.dispatcher();
            for entry in entries {
                dispatcher.dispatch(entry, &mut |handoff, through| {
                    handed.push((handoff, through));
                    // The first streams' replies go out while the dispatcher is still
                    // finding the others (a runner only hands the work over).
                    if let Some(begin) = runner.filter(|_| handed.len() >= HANDOFF_CHUNK) {
                        fan_out
                            .get_or_insert_with(|| begin())
                            .run(std::mem::take(&mut handed));
                    }
                });
            }
        }
        if !handed.is_empty() {
            match runner {
                Some(begin) => fan_out.get_or_insert_with(|| begin()).run(handed),
                None => handed.into_iter().for_each(|(h, through)| h.run(through)),
            }
        }
        drop(fan_out);
        self.latest.send_replace(newest);
    }

    /// Where woken hand-offs run from now on (the server's deliveries threads). Without
    /// one they run on the publishing thread. Only the first call counts.
    pub fn run_handoffs_with(&self, runner: Runner) {
        let _ = self.runner.set(runner);
    }

    pub fn read_after(&self, after: Timestamp, max: usize) -> TailRead {
        let tail = self.tail.read().unwrap_or_else(|p| p.into_inner());
        if pack(after) < pack(tail.floor) {
            return TailRead::BehindTail;
        }
        let start = tail.entries.partition_point(|e| pack(e.ts) <= pack(after));
        TailRead::Entries(tail.entries.range(start..).take(max).cloned().collect())
    }

    /// Whether entries after `position` (packed) are read from the tail, not storage.
    pub fn holds(&self, position: u64) -> bool {
        position >= self.floor.load(Ordering::Acquire)
    }

    /// Registers a stream that waits by leaving a hand-off (see
    /// [`crate::changes::dispatch::Handoff`]): its wait id, or `None` (without calling
    /// `handoff`) when newer entries were published meanwhile.
    pub fn wait_handing_off(
        &self,
        interest: &Arc<Interest>,
        position: u64,
        handoff: impl FnOnce() -> Box<dyn Handoff>,
    ) -> Option<u64> {
        self.dispatcher()
            .wait_handing_off(interest, position, handoff)
    }

    pub fn cancel(&self, id: u64) -> Option<u64> {
        self.dispatcher().cancel(id)
    }

    /// A receiver that changes whenever entries are published.
    pub fn subscribe(&self) -> watch::Receiver<Timestamp> {
        self.latest.subscribe()
    }

    /// The newest published timestamp.
    pub fn latest(&self) -> Timestamp {
        *self.latest.borrow()
    }

    /// How many change streams wait on the hub right now.
    pub fn waiters(&self) -> usize {
        self.dispatcher().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Namespace;
    use crate::changes::Logged;
    use crate::oplog::{document_key, raw_document, Op, OplogEntry};
    use bson::{doc, DateTime};

    fn entry(inc: u32) -> SharedEntry {
        let key = document_key(&bson::Bson::Int32(inc as i32)).expect("key");
        let doc = raw_document(&doc! {"_id": inc}).expect("doc");
        let entry = OplogEntry::new(
            ts(inc),
            DateTime::from_millis(0),
            &Namespace::new("d", "c"),
            None,
            Op::Insert {
                key: &key,
                doc: &doc,
            },
        )
        .expect("entry");
        Arc::new(Logged::new(entry))
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

    /// Records what a hand-off was given.
    struct Probe(Arc<Mutex<Vec<String>>>);

    impl Handoff for Probe {
        fn run(self: Box<Self>, through: u64) {
            self.0.lock().expect("log").push(format!("run {through}"));
        }
        fn cancel(self: Box<Self>, through: u64) {
            self.0
                .lock()
                .expect("log")
                .push(format!("cancel {through}"));
        }
    }

    #[test]
    fn handoffs_run_once_woken_or_are_cancelled() {
        let hub = ChangeHub::new(10, ts(0));
        let log = Arc::new(Mutex::new(Vec::new()));
        let spec = crate::changes::StreamSpec::parse(&doc! {}).expect("spec");
        let scope = crate::changes::Scope::Collection(Namespace::new("d", "c"));
        let interest = Arc::new(Interest::new(scope, &spec, None));
        let probe = || Box::new(Probe(log.clone())) as Box<dyn Handoff>;

        // Woken by the entry: run (off the dispatcher) with the position before it.
        let woken = hub.wait_handing_off(&interest, pack(ts(0)), probe);
        assert!(woken.is_some());
        hub.publish(vec![entry(1)]);
        assert_eq!(hub.waiters(), 0);
        // Cancelled: given the newest entry dispatched.
        let waiting = hub
            .wait_handing_off(&interest, pack(ts(1)), probe)
            .expect("registered");
        assert_eq!(hub.cancel(waiting), Some(pack(ts(1))));
        // Cancelling a woken one does nothing more.
        assert_eq!(hub.cancel(woken.expect("id")), None);
        // Behind the newest entry: refused, the hand-off is not even made.
        assert!(hub
            .wait_handing_off(&interest, pack(ts(0)), || unreachable!())
            .is_none());
        assert_eq!(
            *log.lock().expect("log"),
            vec![
                format!("run {}", pack(ts(0))),
                format!("cancel {}", pack(ts(1)))
            ]
        );
    }
}
