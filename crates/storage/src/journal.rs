//! The journal: each group's writes, appended to a file and synced before the group
//! commits to redb without a sync of its own.
//!
//! A redb commit that syncs writes its copy-on-write pages all over the file, and the
//! sync pays for every one of them; a journal record is one sequential write. So a group
//! is made durable by its record, and redb is synced only at a checkpoint (`lib.rs`),
//! once a second or so, by another thread. At start-up the records after the last
//! checkpoint are applied again, in order, on the state that checkpoint left: exactly
//! the state they were first applied to, so every write (a `delete_range` with a limit
//! too) does the same again.
//!
//! Two files alternate, one per checkpoint: records after checkpoint `k` go to one file,
//! and the other is written again from its start only once checkpoint `k` is synced, so
//! the records a crash may need are never overwritten. A record:
//!
//! ```text
//! magic "EDJ1" | payload length u32 | crc32 u32 | epoch u64 | seq u64 | payload
//! ```
//!
//! little-endian, the CRC (CRC-32C) over everything after it. `seq` numbers the groups without a
//! gap; the `epoch` is drawn at each start-up and recorded in redb with the checkpoint's
//! `seq`, so a replay reads only the records written since that start-up: whatever an
//! earlier run left further on in a file is ignored, whatever its `seq`.
//!
//! The payload is the group's writes, each an operation byte and its arguments
//! (lengths u32, `limit` u64; a bound is 0 unbounded, 1 included, 2 excluded, then its
//! key).

use std::fs::{File, OpenOptions};
use std::ops::Bound;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{FaultInjector, StorageError, WriteBatch};

const MAGIC: &[u8; 4] = b"EDJ1";
/// Magic, length and CRC.
const HEAD: usize = 12;
/// Epoch and seq, covered by the CRC.
const IDS: usize = 16;

const PUT: u8 = 1;
const DELETE: u8 = 2;
const DELETE_RANGE: u8 = 3;
const DELETE_TABLE: u8 = 4;

/// How often redb's state is made durable (when the committer is idle; see
/// [`Journal::checkpoint_overdue`] when it is not): what a start-up may have to apply.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// How much a journal file grows by at a time.
const GROW: u64 = 1 << 20;
/// How long each file is made at start-up: a checkpoint a second or so switches files,
/// so that holds a second of records up to a few hundred KiB a second.
const FIRST_LEN: u64 = 256 << 10;

/// The table (private to this crate) where a checkpoint records how far the journal is
/// applied: `position` is the epoch and the last `seq` (u64 each, little-endian).
pub(crate) const TABLE: &str = "$journal";
pub(crate) const POSITION: &[u8] = b"position";

/// The journal's two files beside the database file `db`.
pub(crate) fn paths(db: &Path) -> [PathBuf; 2] {
    let name = |i: u8| {
        let mut p = db.as_os_str().to_owned();
        p.push(format!("-journal-{i}"));
        PathBuf::from(p)
    };
    [name(0), name(1)]
}

/// The journal being written.
pub(crate) struct Journal {
    files: [File; 2],
    /// How long each file is (records, or the zeros written ahead of them).
    lens: [u64; 2],
    /// The file being appended to, and where.
    current: usize,
    offset: u64,
    epoch: u64,
    /// The last record's `seq`.
    pub(crate) last_seq: u64,
    /// When the last checkpoint was taken.
    checkpointed: Instant,
    /// Records were appended since.
    dirty: bool,
    faults: Arc<FaultInjector>,
    /// The record being built, kept for its allocation.
    record: Vec<u8>,
}

/// A record read back: its `seq` and its writes.
pub(crate) struct Record {
    pub(crate) seq: u64,
    pub(crate) payload: Vec<u8>,
}

impl Journal {
    /// Opens (or creates) the two files, and makes their names durable.
    pub(crate) fn open_files(db: &Path) -> std::io::Result<[File; 2]> {
        let open = |p: &Path| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(p)
        };
        let [a, b] = paths(db);
        let files = [open(&a)?, open(&b)?];
        if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        Ok(files)
    }

    /// The journal that continues after `last_seq`, under a new `epoch`, from the start
    /// of the first file. Each file is given room for a second of records at a low rate
    /// first (see [`Journal::grow`]).
    pub(crate) fn new(
        files: [File; 2],
        epoch: u64,
        last_seq: u64,
        faults: Arc<FaultInjector>,
    ) -> std::io::Result<Journal> {
        let mut journal = Journal {
            lens: [files[0].metadata()?.len(), files[1].metadata()?.len()],
            files,
            current: 0,
            offset: 0,
            epoch,
            last_seq,
            checkpointed: Instant::now(),
            dirty: false,
            faults,
            record: Vec::new(),
        };
        for i in 0..2 {
            if journal.grow(i, FIRST_LEN)? {
                journal.files[i].sync_data()?;
            }
        }
        Ok(journal)
    }

    /// Makes file `i` `len` bytes long with zeros after what it holds, unless it is that
    /// long already (whether it grew). The syncs of the records written there then
    /// overwrite blocks the file already has instead of growing it, which would sync the
    /// file's metadata too; a reader stops at the zeros.
    fn grow(&mut self, i: usize, len: u64) -> std::io::Result<bool> {
        let had = self.lens[i];
        if len <= had {
            return Ok(false);
        }
        self.files[i].write_all_at(&vec![0; (len - had) as usize], had)?;
        self.lens[i] = len;
        Ok(true)
    }

    /// Appends the next group's record and syncs it: its `seq` once durable.
    pub(crate) fn append(&mut self, payload: &[u8]) -> std::io::Result<u64> {
        let seq = self.last_seq + 1;
        let len = u32::try_from(payload.len())
            .map_err(|_| std::io::Error::other("a group's writes exceed 4 GiB"))?;
        let r = &mut self.record;
        r.clear();
        r.extend_from_slice(MAGIC);
        r.extend_from_slice(&len.to_le_bytes());
        r.extend_from_slice(&[0; 4]);
        r.extend_from_slice(&self.epoch.to_le_bytes());
        r.extend_from_slice(&seq.to_le_bytes());
        r.extend_from_slice(payload);
        let crc = crc32c::crc32c(&r[HEAD..]);
        r[8..HEAD].copy_from_slice(&crc.to_le_bytes());
        self.faults.check_write()?;
        let end = self.offset + self.record.len() as u64;
        if end > self.lens[self.current] {
            self.grow(self.current, end.next_multiple_of(GROW))?;
        }
        let file = &self.files[self.current];
        file.write_all_at(&self.record, self.offset)?;
        self.offset = end;
        self.faults.check_sync()?;
        file.sync_data()?;
        self.last_seq = seq;
        self.dirty = true;
        Ok(seq)
    }

    /// How long until the committer, when it has nothing else to do, should take a
    /// checkpoint: a second after the last one, if records were appended since.
    pub(crate) fn until_checkpoint(&self) -> Option<Duration> {
        self.dirty
            .then(|| CHECKPOINT_EVERY.saturating_sub(self.checkpointed.elapsed()))
    }

    /// Whether the next group itself must be a checkpoint, the committer never having
    /// been idle long enough: twice the interval, or the current file grown large.
    pub(crate) fn checkpoint_overdue(&self) -> bool {
        const MAX_BYTES: u64 = 64 << 20;
        self.offset >= MAX_BYTES || self.checkpointed.elapsed() >= 2 * CHECKPOINT_EVERY
    }

    /// After a checkpoint's commit: later records go to the other file, from its start.
    /// The caller has made sure the checkpoint before this one is synced (the other
    /// file's records are all older than it).
    pub(crate) fn switch(&mut self) {
        self.current = 1 - self.current;
        self.offset = 0;
        self.checkpointed = Instant::now();
        self.dirty = false;
    }

    /// The epoch records are written under.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The records of `epoch` after `after`, in order, from both files. A record is
    /// written only once the one before it is synced, so only the last can be torn; a
    /// record missing before others is an error.
    pub(crate) fn read(files: &[File; 2], epoch: u64, after: u64) -> std::io::Result<Vec<Record>> {
        let mut all = Vec::new();
        for f in files {
            read_file(f, epoch, &mut all)?;
        }
        all.sort_by_key(|r| r.seq);
        all.retain(|r| r.seq > after);
        for (expected, r) in (after + 1..).zip(&all) {
            if r.seq != expected {
                return Err(std::io::Error::other(format!(
                    "the journal lacks record {expected} (the database holds records through {after}, the journal has {})",
                    r.seq
                )));
            }
        }
        Ok(all)
    }
}

/// The valid records of `epoch` at the start of a file, up to the first that is torn,
/// of another epoch or out of sequence.
fn read_file(file: &File, epoch: u64, out: &mut Vec<Record>) -> std::io::Result<()> {
    let len = file.metadata()?.len();
    let mut bytes = vec![0; usize::try_from(len).map_err(std::io::Error::other)?];
    file.read_exact_at(&mut bytes, 0)?;
    let mut at = 0usize;
    let mut prev: Option<u64> = None;
    while let Some(head) = bytes.get(at..at + HEAD + IDS) {
        if &head[..4] != MAGIC {
            break;
        }
        let n = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let crc = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
        let Some(body) = bytes.get(at + HEAD..at + HEAD + IDS + n) else {
            break;
        };
        if crc32c::crc32c(body) != crc {
            break;
        }
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&body[i..i + 8]);
            u64::from_le_bytes(w)
        };
        let (e, seq) = (word(0), word(8));
        if e != epoch || prev.is_some_and(|p| seq != p + 1) {
            break;
        }
        prev = Some(seq);
        out.push(Record {
            seq,
            payload: body[IDS..].to_vec(),
        });
        at += HEAD + IDS + n;
    }
    Ok(())
}

fn push_bytes(log: &mut Vec<u8>, b: &[u8]) {
    // Keys, values and table names are far below 4 GiB (a value is at most a document).
    log.extend_from_slice(&(b.len() as u32).to_le_bytes());
    log.extend_from_slice(b);
}

fn push_bound(log: &mut Vec<u8>, b: &Bound<Vec<u8>>) {
    match b {
        Bound::Unbounded => log.push(0),
        Bound::Included(k) => {
            log.push(1);
            push_bytes(log, k);
        }
        Bound::Excluded(k) => {
            log.push(2);
            push_bytes(log, k);
        }
    }
}

pub(crate) fn log_put(log: &mut Vec<u8>, table: &str, key: &[u8], value: &[u8]) {
    log.push(PUT);
    push_bytes(log, table.as_bytes());
    push_bytes(log, key);
    push_bytes(log, value);
}

pub(crate) fn log_delete(log: &mut Vec<u8>, table: &str, key: &[u8]) {
    log.push(DELETE);
    push_bytes(log, table.as_bytes());
    push_bytes(log, key);
}

pub(crate) fn log_delete_range(
    log: &mut Vec<u8>,
    table: &str,
    start: &Bound<Vec<u8>>,
    end: &Bound<Vec<u8>>,
    limit: usize,
) {
    log.push(DELETE_RANGE);
    push_bytes(log, table.as_bytes());
    push_bound(log, start);
    push_bound(log, end);
    log.extend_from_slice(&(limit as u64).to_le_bytes());
}

pub(crate) fn log_delete_table(log: &mut Vec<u8>, table: &str) {
    log.push(DELETE_TABLE);
    push_bytes(log, table.as_bytes());
}

/// Reads a record's payload.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StorageError> {
        if self.0.len() < n {
            return Err(corrupt());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, StorageError> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, StorageError> {
        let b = self.take(8)?;
        let mut w = [0u8; 8];
        w.copy_from_slice(b);
        Ok(u64::from_le_bytes(w))
    }

    fn bytes(&mut self) -> Result<&'a [u8], StorageError> {
        let b = self.take(4)?;
        let n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        self.take(n)
    }

    fn table(&mut self) -> Result<&'a str, StorageError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| corrupt())
    }

    fn bound(&mut self) -> Result<Bound<Vec<u8>>, StorageError> {
        Ok(match self.byte()? {
            0 => Bound::Unbounded,
            1 => Bound::Included(self.bytes()?.to_vec()),
            2 => Bound::Excluded(self.bytes()?.to_vec()),
            _ => return Err(corrupt()),
        })
    }
}

fn corrupt() -> StorageError {
    StorageError::Open("a journal record whose checksum is right does not parse".into())
}

/// Applies a record's writes to `batch`, in order.
pub(crate) fn apply(payload: &[u8], batch: &mut WriteBatch<'_>) -> Result<(), StorageError> {
    let mut c = Cursor(payload);
    while !c.0.is_empty() {
        match c.byte()? {
            PUT => {
                let (t, k, v) = (c.table()?, c.bytes()?, c.bytes()?);
                batch.put(t, k, v)?;
            }
            DELETE => {
                let (t, k) = (c.table()?, c.bytes()?);
                batch.delete(t, k)?;
            }
            DELETE_RANGE => {
                let t = c.table()?;
                let (start, end) = (c.bound()?, c.bound()?);
                let limit = usize::try_from(c.u64()?).unwrap_or(usize::MAX);
                batch.delete_range(t, start, end, limit)?;
            }
            DELETE_TABLE => {
                let t = c.table()?;
                batch.delete_table(t)?;
            }
            _ => return Err(corrupt()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(dir: &tempfile::TempDir, epoch: u64) -> Journal {
        let files = Journal::open_files(&dir.path().join("db")).expect("files");
        Journal::new(files, epoch, 0, FaultInjector::new()).expect("journal")
    }

    fn seqs(records: &[Record]) -> Vec<u64> {
        records.iter().map(|r| r.seq).collect()
    }

    #[test]
    fn records_are_read_back_across_both_files_after_a_position() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut j = journal(&dir, 7);
        for i in 1..=3u8 {
            j.append(&[i; 10]).expect("append");
        }
        j.switch();
        j.append(&[4; 10]).expect("append");
        j.append(&[5; 10]).expect("append");
        j.switch();
        // Overwrites record 1 in the first file; records 2 and 3 after it are stale.
        j.append(&[6; 10]).expect("append");
        let files = Journal::open_files(&dir.path().join("db")).expect("files");
        let read = Journal::read(&files, 7, 3).expect("read");
        assert_eq!(seqs(&read), vec![4, 5, 6]);
        assert_eq!(read[2].payload, vec![6; 10]);
        assert_eq!(
            seqs(&Journal::read(&files, 7, 6).expect("read")),
            Vec::<u64>::new()
        );
        // Another epoch's records are not this run's.
        assert!(Journal::read(&files, 8, 0).expect("read").is_empty());
        // Records 1 to 3 are gone: a database at 0 cannot be brought forward.
        assert!(Journal::read(&files, 7, 0).is_err());
    }

    #[test]
    fn a_torn_last_record_is_not_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut j = journal(&dir, 1);
        j.append(b"first").expect("append");
        j.append(b"second").expect("append");
        let files = Journal::open_files(&dir.path().join("db")).expect("files");
        // The last byte of the second record (zeros follow it).
        let end = (2 * (HEAD + IDS) + b"first".len() + b"second".len()) as u64;
        files[0].write_all_at(b"X", end - 1).expect("tear");
        let read = Journal::read(&files, 1, 0).expect("read");
        assert_eq!(seqs(&read), vec![1]);
        assert_eq!(read[0].payload, b"first");
    }

    #[test]
    fn writes_are_logged_and_applied_in_order() {
        let mut log = Vec::new();
        log_put(&mut log, "t", b"a", b"1");
        log_put(&mut log, "t", b"b", b"2");
        log_delete(&mut log, "t", b"a");
        log_delete_range(
            &mut log,
            "u",
            &Bound::Included(vec![1]),
            &Bound::Unbounded,
            5,
        );
        log_delete_table(&mut log, "v");
        let mut c = Cursor(&log);
        let mut ops = Vec::new();
        while !c.0.is_empty() {
            let op = c.byte().expect("op");
            let table = c.table().expect("table").to_owned();
            match op {
                PUT => {
                    let (k, v) = (c.bytes().expect("k"), c.bytes().expect("v"));
                    ops.push(format!("put {table} {k:?} {v:?}"));
                }
                DELETE => ops.push(format!("delete {table} {:?}", c.bytes().expect("k"))),
                DELETE_RANGE => {
                    let (s, e) = (c.bound().expect("s"), c.bound().expect("e"));
                    ops.push(format!("range {table} {s:?} {e:?} {}", c.u64().expect("n")));
                }
                DELETE_TABLE => ops.push(format!("drop {table}")),
                _ => panic!("unknown op {op}"),
            }
        }
        assert_eq!(
            ops,
            vec![
                "put t [97] [49]",
                "put t [98] [50]",
                "delete t [97]",
                "range u Included([1]) Unbounded 5",
                "drop v",
            ]
        );
    }
}
