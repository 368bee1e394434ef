//! The dispatcher: which waiting streams an oplog entry can concern.
//!
//! A stream with nothing to return registers here (through the hub) by handing itself
//! over: a [`Handoff`] holding the stream and what to do once an entry concerns it (in
//! the server: read its batch and answer the `getMore` that waits). Streams are indexed by scope (collection, database,
//! cluster) and, within a scope, by one condition of their [`Interest`]: the values of
//! one event field (`documentKey._id`, a `fullDocument` field, `ns.coll`,
//! `operationType`, ...) that their `$match` requires. For each published entry the
//! dispatcher looks up the streams filed under the values the entry has (a hash lookup
//! per indexed field), adds those that no condition indexes, tests each candidate's
//! whole interest, and wakes only those that pass: their hand-offs are collected, and
//! the hub runs them once it lets go of the dispatcher. A stream the entry cannot
//! concern is never touched: it costs nothing per write, however many streams wait.
//!
//! Skipping is exact, not just cheap: the dispatcher sees every entry in order while a
//! stream waits, so when it wakes a stream it tells it how far everything was ruled
//! out (`through`: the entry before the one that woke it), and a stream whose wait
//! ends without a wake-up may skip to the newest entry dispatched. The stream then
//! reads only from there, and its full pipeline still decides what it returns.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::interest::{probe, Field, Interest, PostImage};
use super::Scope;
use crate::clock::pack;
use crate::oplog::{CatalogOp, Op, OplogEntry};

/// Work a waiting stream leaves with the dispatcher, done by whoever wakes it rather
/// than by the stream's own task.
pub trait Handoff: Send {
    /// An entry concerns the stream: every entry through `through` (packed) was ruled
    /// out. Runs outside the dispatcher's lock.
    fn run(self: Box<Self>, through: u64);
    /// The wait ended without a wake-up (timeout, or the waiting request went away):
    /// every entry through `through` was ruled out. Runs under the dispatcher's lock,
    /// so it must only hand the stream back.
    fn cancel(self: Box<Self>, through: u64);
}

/// Woken hand-offs, each with the position through which entries were ruled out.
pub type Handed = Vec<(Box<dyn Handoff>, u64)>;

/// Where [`Dispatcher::dispatch`] puts each hand-off it wakes, with the position
/// through which entries were ruled out.
pub type Woke<'a> = dyn FnMut(Box<dyn Handoff>, u64) + 'a;

struct Waiter {
    interest: Arc<Interest>,
    /// The stream has read everything through this packed timestamp (it may be ahead
    /// of the newest entry dispatched: a write is acknowledged just before it is
    /// published, and a stream opened in between starts after it).
    position: u64,
    handoff: Box<dyn Handoff>,
}

/// The waiting streams of one scope.
#[derive(Default)]
struct ScopeWaiters {
    /// Every one: catalog changes go to all of them.
    all: HashSet<u64>,
    /// Those no condition indexes: every document entry is a candidate.
    everything: HashSet<u64>,
    /// Those every update is a candidate for (they look `fullDocument` up).
    every_update: HashSet<u64>,
    /// The others, by field and encoded value.
    by_field: HashMap<Field, HashMap<Vec<u8>, HashSet<u64>>>,
}

impl ScopeWaiters {
    fn is_empty(&self) -> bool {
        self.all.is_empty()
    }
}

/// The index of waiting streams.
#[derive(Default)]
pub struct Dispatcher {
    /// The packed timestamp of the newest entry dispatched.
    latest: u64,
    next_id: u64,
    waiters: HashMap<u64, Waiter>,
    /// By `db.coll`.
    collections: HashMap<String, ScopeWaiters>,
    databases: HashMap<String, ScopeWaiters>,
    cluster: ScopeWaiters,
}

impl Dispatcher {
    /// A dispatcher whose newest entry is at `latest` (packed).
    pub fn new(latest: u64) -> Dispatcher {
        Dispatcher {
            latest,
            ..Dispatcher::default()
        }
    }

    /// The packed timestamp of the newest entry dispatched.
    pub fn latest(&self) -> u64 {
        self.latest
    }

    /// How many streams wait.
    pub fn len(&self) -> usize {
        self.waiters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    /// Registers a stream that waits by leaving `handoff()` here (see [`Handoff`]).
    /// `None`, without calling `handoff`, when newer entries were dispatched since.
    pub fn wait_handing_off(
        &mut self,
        interest: &Arc<Interest>,
        position: u64,
        handoff: impl FnOnce() -> Box<dyn Handoff>,
    ) -> Option<u64> {
        if self.latest > position {
            return None;
        }
        Some(self.register(interest, position, handoff()))
    }

    fn register(
        &mut self,
        interest: &Arc<Interest>,
        position: u64,
        handoff: Box<dyn Handoff>,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        // Registration runs for every waiting getMore: keys are copied only when new.
        let scope = match &interest.scope {
            Scope::Collection(_) => entry(&mut self.collections, interest.scope_key()),
            Scope::Database(db) => entry(&mut self.databases, db),
            Scope::Cluster => &mut self.cluster,
        };
        scope.all.insert(id);
        match interest.index_condition() {
            None => {
                scope.everything.insert(id);
            }
            Some((field, keys, every_update)) => {
                let by_value = entry(&mut scope.by_field, field);
                for key in keys {
                    entry(by_value, key).insert(id);
                }
                if every_update {
                    scope.every_update.insert(id);
                }
            }
        }
        self.waiters.insert(
            id,
            Waiter {
                interest: interest.clone(),
                position,
                handoff,
            },
        );
        id
    }

    /// Ends a wait that no entry woke: the position through which every entry was
    /// ruled out (a hand-off is cancelled with it), or `None` if the stream was woken
    /// meanwhile (its receiver or its hand-off has it).
    pub fn cancel(&mut self, id: u64) -> Option<u64> {
        self.remove(id)?.handoff.cancel(self.latest);
        Some(self.latest)
    }

    fn remove(&mut self, id: u64) -> Option<Waiter> {
        let waiter = self.waiters.remove(&id)?;
        let scope = match &waiter.interest.scope {
            Scope::Collection(_) => self.collections.get_mut(waiter.interest.scope_key()),
            Scope::Database(db) => self.databases.get_mut(db),
            Scope::Cluster => Some(&mut self.cluster),
        };
        if let Some(scope) = scope {
            scope.all.remove(&id);
            scope.everything.remove(&id);
            scope.every_update.remove(&id);
            if let Some((field, keys, _)) = waiter.interest.index_condition() {
                if let Some(by_value) = scope.by_field.get_mut(field) {
                    for key in keys {
                        if let Some(ids) = by_value.get_mut(key) {
                            ids.remove(&id);
                            if ids.is_empty() {
                                by_value.remove(key);
                            }
                        }
                    }
                    if by_value.is_empty() {
                        scope.by_field.remove(field);
                    }
                }
            }
        }
        match &waiter.interest.scope {
            Scope::Collection(_) => {
                let key = waiter.interest.scope_key();
                if self
                    .collections
                    .get(key)
                    .is_some_and(ScopeWaiters::is_empty)
                {
                    self.collections.remove(key);
                }
            }
            Scope::Database(db) if self.databases.get(db).is_some_and(ScopeWaiters::is_empty) => {
                self.databases.remove(db);
            }
            _ => {}
        }
        Some(waiter)
    }

    /// Dispatches one entry (entries come in timestamp order): gives `woke` the
    /// hand-off of each waiting stream it can concern, as it finds them. Returns how
    /// many were woken.
    pub fn dispatch(&mut self, entry: &OplogEntry, woke: &mut Woke<'_>) -> usize {
        let through = self.latest;
        let mut candidates: Vec<u64> = Vec::new();
        for scope in self.scopes_of(entry) {
            if matches!(entry.op(), Op::Catalog(_)) {
                candidates.extend(scope.all.iter().copied());
                continue;
            }
            candidates.extend(scope.everything.iter().copied());
            if matches!(entry.op(), Op::Update { .. }) {
                candidates.extend(scope.every_update.iter().copied());
            }
            for (field, by_value) in &scope.by_field {
                // Updates are probed with their recorded post-image: streams without
                // one are then ruled out by their own interest below.
                match probe(entry, field, PostImage::Recorded) {
                    Some(values) => {
                        for v in values {
                            if let Some(ids) = by_value.get(&v) {
                                candidates.extend(ids.iter().copied());
                            }
                        }
                    }
                    None => {
                        for ids in by_value.values() {
                            candidates.extend(ids.iter().copied());
                        }
                    }
                }
            }
        }
        let mut woken = 0;
        let at = pack(entry.ts);
        for id in candidates {
            let concerned = self
                .waiters
                .get(&id)
                .is_some_and(|w| w.position < at && w.interest.may_deliver(entry));
            if concerned {
                if let Some(waiter) = self.remove(id) {
                    woke(waiter.handoff, through);
                    woken += 1;
                }
            }
        }
        self.latest = at;
        woken
    }
}

impl Dispatcher {
    /// The scopes whose streams an entry can concern.
    fn scopes_of<'a>(&'a self, entry: &'a OplogEntry) -> impl Iterator<Item = &'a ScopeWaiters> {
        let ns = entry.ns();
        let renamed_to = match entry.op() {
            Op::Catalog(CatalogOp::Rename { to, .. }) => Some(to),
            _ => None,
        };
        [
            self.collections.get(ns.full),
            self.databases.get(ns.db),
            Some(&self.cluster),
            renamed_to.and_then(|to| self.collections.get(&to.to_string())),
            renamed_to
                .filter(|to| to.db != ns.db)
                .and_then(|to| self.databases.get(&to.db)),
        ]
        .into_iter()
        .flatten()
    }
}

/// `map[key]`, inserted empty if missing; the key is copied only then.
fn entry<'m, K, Q, V>(map: &'m mut HashMap<K, V>, key: &Q) -> &'m mut V
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: std::hash::Hash + Eq + ToOwned<Owned = K> + ?Sized,
    V: Default,
{
    if !map.contains_key(key) {
        map.insert(key.to_owned(), V::default());
    }
    map.get_mut(key).expect("just inserted")
}
