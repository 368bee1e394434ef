//! Group commit: one thread owns the write transaction.
//!
//! Writers submit a [`Job`] and wait for its [`Completion`]. The committer takes every
//! job queued at that moment (up to a bound), runs them in order inside one redb write
//! transaction, commits it durably (one fsync of the journal for the whole group, see
//! `Store::commit`), and then hands the completions to the completer thread, which runs
//! them in the same order (groups in commit order) while the committer goes on with the
//! next group. Under load many writers share one fsync; alone, a writer pays for exactly
//! one. When it has been idle a second after the last checkpoint, it takes one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use eddy_metrics::Histogram;

use crate::{StorageError, Store, WriteBatch};

/// What runs after the group's commit: told whether the writes are durable.
pub type Completion = Box<dyn FnOnce(Result<(), StorageError>) + Send>;

/// A unit of work run inside the shared write transaction. It returns the completion
/// to run once the transaction's fate is known. When no transaction can be had (the
/// store refuses writes), the job gets the error instead of a batch and must not
/// write; its completion then receives the same error.
pub type Job = Box<dyn FnOnce(Result<&mut WriteBatch<'_>, StorageError>) -> Completion + Send>;

/// The most jobs committed together; bounds the latency a large group adds.
const MAX_GROUP: usize = 1024;

/// Counters describing the committer's work.
#[derive(Debug)]
pub struct CommitterStats {
    /// Durable commits made.
    pub commits: AtomicU64,
    /// Jobs run.
    pub jobs: AtomicU64,
    /// Jobs per group.
    pub group_size: Histogram,
    /// How long each group's commit (its fsync) took.
    pub commit_latency: Histogram,
}

impl Default for CommitterStats {
    fn default() -> CommitterStats {
        CommitterStats {
            commits: AtomicU64::new(0),
            jobs: AtomicU64::new(0),
            group_size: Histogram::new(eddy_metrics::SIZES),
            commit_latency: Histogram::latency(),
        }
    }
}

/// Handle to the group-commit thread. Dropping every handle stops the thread after
/// it has committed what was queued.
pub struct Committer {
    store: Arc<Store>,
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<CommitterStats>,
}

impl Committer {
    /// Starts the committer thread for `store`.
    pub fn start(store: Arc<Store>) -> Committer {
        let (tx, rx) = mpsc::channel::<Job>();
        let stats = Arc::new(CommitterStats::default());
        let thread_stats = stats.clone();
        let thread_store = store.clone();
        let thread = std::thread::Builder::new()
            .name("eddy-committer".into())
            .spawn(move || run(thread_store, rx, thread_stats))
            .expect("spawning the committer thread");
        Committer {
            store,
            tx: Some(tx),
            thread: Some(thread),
            stats,
        }
    }

    /// Queues a job. If the committer has stopped, the job's completion is never run
    /// and the error is returned instead.
    pub fn submit(&self, job: Job) -> Result<(), StorageError> {
        match &self.tx {
            Some(tx) => tx.send(job).map_err(|_| StorageError::Closed),
            None => Err(StorageError::Closed),
        }
    }

    /// The committer's counters.
    pub fn stats(&self) -> &CommitterStats {
        &self.stats
    }

    /// The committer's counters, to read after it has stopped too.
    pub fn shared_stats(&self) -> Arc<CommitterStats> {
        Arc::clone(&self.stats)
    }

    /// Stops accepting jobs, commits what is queued, waits for the thread and takes a
    /// last checkpoint (unless the store has failed: the journal then keeps what was
    /// acknowledged, for the next start-up).
    pub fn shutdown(&mut self) {
        self.tx.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
            if self.store.failure().is_none() {
                if let Err(e) = self.store.checkpoint() {
                    tracing::error!(error = %e, "the last checkpoint failed; the journal keeps every acknowledged write");
                }
            }
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A committed (or failed) group's completions, with the group's fate.
type Finished = (Vec<Completion>, Result<(), StorageError>);

fn run(store: Arc<Store>, rx: mpsc::Receiver<Job>, stats: Arc<CommitterStats>) {
    // Completions (acknowledging writers, publishing change events) run on a thread of
    // their own, in commit order, while this thread already runs the next group: the
    // commit cycle that every writer waits on is jobs + commit, not jobs + commit +
    // completions.
    let (done_tx, done_rx) = mpsc::channel::<Finished>();
    let completer = std::thread::Builder::new()
        .name("eddy-completer".into())
        .spawn(move || {
            while let Ok((completions, outcome)) = done_rx.recv() {
                for completion in completions {
                    completion(outcome.clone());
                }
            }
        })
        .expect("spawning the completer thread");
    loop {
        // Idle: wait for work, or until a checkpoint is due and take it then.
        let first = match store.until_checkpoint() {
            None => match rx.recv() {
                Ok(job) => job,
                Err(_) => break,
            },
            Some(wait) => match rx.recv_timeout(wait) {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    // A failure fails the store: the next group hears of it.
                    let _ = store.idle_checkpoint();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        stats.jobs.fetch_add(group.len() as u64, Ordering::Relaxed);
        stats.group_size.observe(group.len() as f64);
        let finished = commit_group(&store, group, &stats.commit_latency);
        stats.commits.fetch_add(1, Ordering::Relaxed);
        if let Err(mpsc::SendError((completions, outcome))) = done_tx.send(finished) {
            // The completer is gone (it panicked): complete here rather than never.
            for completion in completions {
                completion(outcome.clone());
            }
        }
    }
    // Shutting down: every queued completion runs before the committer is gone.
    drop(done_tx);
    let _ = completer.join();
}

/// Runs a group in one transaction and commits it: its completions and their outcome.
fn commit_group(store: &Store, group: Vec<Job>, latency: &Histogram) -> Finished {
    if let Some(reason) = store.failure() {
        // Fail-stop: run nothing, tell every writer why.
        return refuse(group, StorageError::Failed(reason));
    }
    let txn = match store.db.begin_write() {
        Ok(txn) => txn,
        Err(e) => return refuse(group, StorageError::Io(e.to_string())),
    };
    let mut batch = store.batch(&txn);
    let completions: Vec<Completion> = group.into_iter().map(|job| job(Ok(&mut batch))).collect();
    let (poisoned, log) = (batch.poisoned.take(), batch.log.take());
    drop(batch);
    let outcome = match poisoned {
        Some(err) => {
            let _ = txn.abort();
            Err(err)
        }
        None => {
            let started = std::time::Instant::now();
            let committed = store.commit(txn, log);
            latency.observe_duration(started.elapsed());
            committed
        }
    };
    (completions, outcome)
}

/// Tells the jobs of a group that they cannot run, and their writers why.
fn refuse(group: Vec<Job>, err: StorageError) -> Finished {
    let completions = group.into_iter().map(|job| job(Err(err.clone()))).collect();
    (completions, Err(err))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KvRead;
    use std::sync::mpsc::channel;

    #[test]
    fn jobs_commit_and_complete_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db.redb")).expect("open");
        let committer = Committer::start(store.clone());
        let (done_tx, done_rx) = channel();
        for i in 0u8..50 {
            let done_tx = done_tx.clone();
            committer
                .submit(Box::new(
                    move |b: Result<&mut WriteBatch<'_>, StorageError>| {
                        let res = b.and_then(|b| b.put("t", &[i], &[i]));
                        Box::new(move |outcome: Result<(), StorageError>| {
                            let _ = done_tx.send((i, res.is_ok() && outcome.is_ok()));
                        })
                    },
                ))
                .expect("submit");
        }
        let done: Vec<_> = (0..50)
            .map(|_| done_rx.recv().expect("completion"))
            .collect();
        assert!(done.iter().all(|(_, ok)| *ok));
        assert_eq!(
            done.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            (0..50).collect::<Vec<_>>()
        );
        assert_eq!(store.snapshot().expect("snap").len("t").expect("len"), 50);
        assert!(committer.stats().commits.load(Ordering::Relaxed) <= 50);
    }
}
