//! The file I/O seam: a redb backend that can be told to fail.
//!
//! Production uses redb's own file backend through [`FaultyBackend`] with no faults
//! armed (one relaxed atomic load per call). Tests arm a [`FaultInjector`] to make the
//! next writes or fsyncs fail, or to report a full disk, and check that the server
//! then refuses writes instead of acknowledging what may be lost.

use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

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
}

impl FaultInjector {
    /// A new injector with nothing armed.
    pub fn new() -> Arc<FaultInjector> {
        Arc::new(FaultInjector::default())
    }
}

/// redb's file backend with an optional [`FaultInjector`] in front of it.
#[derive(Debug)]
pub struct FaultyBackend {
    inner: FileBackend,
    faults: Arc<FaultInjector>,
}

impl FaultyBackend {
    /// Wraps an open file.
    pub fn new(file: File, faults: Arc<FaultInjector>) -> Result<Self, std::io::Error> {
        let inner = FileBackend::new(file).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(FaultyBackend { inner, faults })
    }
}

fn injected(kind: std::io::ErrorKind, what: &str) -> std::io::Error {
    std::io::Error::new(kind, format!("injected fault: {what}"))
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
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        if self.faults.fail_sync.load(Ordering::Relaxed) {
            return Err(injected(std::io::ErrorKind::Other, "fsync failed"));
        }
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        if self.faults.disk_full.load(Ordering::Relaxed) {
            return Err(injected(
                std::io::ErrorKind::StorageFull,
                "no space left on device",
            ));
        }
        let countdown = self.faults.fail_writes_after.load(Ordering::Relaxed);
        if countdown == 1 {
            return Err(injected(std::io::ErrorKind::Other, "write failed"));
        }
        if countdown > 1 {
            self.faults
                .fail_writes_after
                .fetch_sub(1, Ordering::Relaxed);
        }
        self.inner.write(offset, data)
    }

    fn close(&self) -> Result<(), std::io::Error> {
        self.inner.close()
    }
}
