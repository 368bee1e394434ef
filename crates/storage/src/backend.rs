//! The file I/O seam: a redb backend that can be told to fail, and that can leave a
//! checkpoint's fsync to another thread.
//!
//! Production uses redb's own file backend through [`FaultyBackend`] with no faults
//! armed (one relaxed atomic load per call). Tests arm a [`FaultInjector`] to make the
//! next writes or fsyncs fail, or to report a full disk, and check that the server
//! then refuses writes instead of acknowledging what may be lost. The same injector
//! covers the journal's file (`journal.rs`).
//!
//! The [`SyncGate`] is how a checkpoint (a durable redb commit, see `lib.rs`) avoids
//! stalling the group commit for its fsync: while the committer has it deferring, redb's
//! `sync_data` only records that a sync is owed, and the syncer thread pays it. Nothing
//! may reach the file after a commit whose sync is owed until it is paid (redb may
//! reuse the pages of the commit before it, which a crash would then need), so every
//! write and resize first settles what is owed. Once the store has failed, the gate
//! lets nothing more reach the file, not even redb's own commit when it is closed.

use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use redb::backends::FileBackend;
use redb::StorageBackend;

/// Switches that make I/O fail, shared between a test and the backend.
#[derive(Debug, Default)]
pub struct FaultInjector {
    /// Fail every fsync while set.
    pub fail_sync: AtomicBool,
    /// Fail writes (as a full disk would: ENOSPC) while set.
    pub disk_full: AtomicBool,
    /// Fail after this many more successful writes (0 = off).
    pub fail_writes_after: AtomicU64,
    /// Writes failed by `fail_writes_after` so far.
    pub writes_failed: AtomicU64,
}

impl FaultInjector {
    /// A new injector with nothing armed.
    pub fn new() -> Arc<FaultInjector> {
        Arc::new(FaultInjector::default())
    }

    /// Before a write (of the database file or the journal): the injected error, if any.
    pub(crate) fn check_write(&self) -> Result<(), std::io::Error> {
        if self.disk_full.load(Ordering::Relaxed) {
            return Err(injected(
                std::io::ErrorKind::StorageFull,
                "no space left on device",
            ));
        }
        let countdown = self.fail_writes_after.load(Ordering::Relaxed);
        if countdown == 1 {
            self.writes_failed.fetch_add(1, Ordering::Relaxed);
            return Err(injected(std::io::ErrorKind::Other, "write failed"));
        }
        if countdown > 1 {
            self.fail_writes_after.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Before an fsync: the injected error, if any.
    pub(crate) fn check_sync(&self) -> Result<(), std::io::Error> {
        if self.fail_sync.load(Ordering::Relaxed) {
            return Err(injected(std::io::ErrorKind::Other, "fsync failed"));
        }
        Ok(())
    }
}

fn injected(kind: std::io::ErrorKind, what: &str) -> std::io::Error {
    std::io::Error::new(kind, format!("injected fault: {what}"))
}

/// The database file's fsyncs: paid at once, or owed and paid by another thread.
#[derive(Debug)]
pub struct SyncGate {
    /// A second handle on the database file, to sync it from the syncer thread.
    file: File,
    faults: Arc<FaultInjector>,
    /// Set by the committer around a checkpoint's commit: redb's sync is owed, not paid.
    deferring: AtomicBool,
    owed: Mutex<Owed>,
    /// Tells the syncer a sync is owed.
    wake: Condvar,
}

#[derive(Debug, Default)]
struct Owed {
    /// Syncs asked for so far (each deferred one counts).
    asked: u64,
    /// How many of them a finished sync covers.
    paid: u64,
    /// A sync failed: the file's durable state is unknown; every later write fails.
    failed: Option<String>,
    /// The syncer should stop.
    closing: bool,
}

impl SyncGate {
    fn new(file: File, faults: Arc<FaultInjector>) -> SyncGate {
        SyncGate {
            file,
            faults,
            deferring: AtomicBool::new(false),
            owed: Mutex::new(Owed::default()),
            wake: Condvar::new(),
        }
    }

    fn owed(&self) -> std::sync::MutexGuard<'_, Owed> {
        self.owed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// While `on`, redb's fsyncs are owed rather than paid (the committer, around a
    /// checkpoint's commit).
    pub(crate) fn defer(&self, on: bool) {
        self.deferring.store(on, Ordering::Release);
    }

    /// redb's fsync: owed while deferring (the syncer is told), else paid now.
    fn sync_data(&self) -> Result<(), std::io::Error> {
        if self.deferring.load(Ordering::Acquire) {
            let mut owed = self.owed();
            if let Some(reason) = &owed.failed {
                return Err(std::io::Error::other(reason.clone()));
            }
            owed.asked += 1;
            self.wake.notify_all();
            return Ok(());
        }
        let mut owed = self.owed();
        owed.asked += 1;
        self.pay(&mut owed)
    }

    /// Pays what is owed, if anything: the syncer, and every write or resize before it
    /// reaches the file.
    pub(crate) fn settle(&self) -> Result<(), std::io::Error> {
        let mut owed = self.owed();
        if owed.paid == owed.asked && owed.failed.is_none() {
            return Ok(());
        }
        self.pay(&mut owed)
    }

    /// The store has failed: nothing reaches the file any more (what the last durable
    /// commit and the journal hold stays as it is for the next start-up).
    pub(crate) fn fail(&self, reason: &str) {
        let mut owed = self.owed();
        if owed.failed.is_none() {
            owed.failed = Some(format!("the store has failed: {reason}"));
        }
    }

    /// Whether every sync asked for so far is paid.
    pub(crate) fn is_settled(&self) -> bool {
        let owed = self.owed();
        owed.paid == owed.asked
    }

    /// Syncs the file, holding the lock so that writes wait for it.
    fn pay(&self, owed: &mut Owed) -> Result<(), std::io::Error> {
        if let Some(reason) = &owed.failed {
            return Err(std::io::Error::other(reason.clone()));
        }
        let asked = owed.asked;
        match self
            .faults
            .check_sync()
            .and_then(|()| self.file.sync_data())
        {
            Ok(()) => {
                owed.paid = asked;
                Ok(())
            }
            Err(e) => {
                owed.failed = Some(format!("fsync of the database file: {e}"));
                Err(e)
            }
        }
    }

    /// The syncer thread's loop: pays each owed sync as it is asked for, until
    /// [`SyncGate::close`]. A failure goes to `on_failure` (the store's fail-stop).
    pub(crate) fn run_syncer(&self, on_failure: impl Fn(String)) {
        loop {
            {
                let mut owed = self.owed();
                while owed.paid == owed.asked && !owed.closing {
                    owed = self.wake.wait(owed).unwrap_or_else(|p| p.into_inner());
                }
                if owed.closing {
                    return;
                }
            }
            if let Err(e) = self.settle() {
                on_failure(format!("fsync of the database file: {e}"));
                return;
            }
        }
    }

    /// Stops the syncer (what is owed stays owed: the next write or sync pays it).
    pub(crate) fn close(&self) {
        self.owed().closing = true;
        self.wake.notify_all();
    }
}

/// redb's file backend with an optional [`FaultInjector`] in front of it, its fsyncs
/// through a [`SyncGate`].
#[derive(Debug)]
pub struct FaultyBackend {
    inner: FileBackend,
    faults: Arc<FaultInjector>,
    gate: Arc<SyncGate>,
}

impl FaultyBackend {
    /// Wraps an open file.
    pub fn new(file: File, faults: Arc<FaultInjector>) -> Result<Self, std::io::Error> {
        let gate = Arc::new(SyncGate::new(file.try_clone()?, faults.clone()));
        let inner = FileBackend::new(file).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(FaultyBackend {
            inner,
            faults,
            gate,
        })
    }

    /// The gate its fsyncs go through.
    pub(crate) fn gate(&self) -> Arc<SyncGate> {
        Arc::clone(&self.gate)
    }
}

impl StorageBackend for FaultyBackend {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        if self.faults.disk_full.load(Ordering::Relaxed) && len > self.inner.len()? {
            return Err(injected(
                std::io::ErrorKind::StorageFull,
                "no space left on device",
            ));
        }
        self.gate.settle()?;
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        self.gate.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.faults.check_write()?;
        self.gate.settle()?;
        self.inner.write(offset, data)
    }

    fn close(&self) -> Result<(), std::io::Error> {
        self.inner.close()
    }
}
