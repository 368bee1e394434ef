//! What the server is doing: the operations in progress (`currentOp`, `$currentOp`,
//! `killOp`), the open connections, and the per-command counters of `serverStatus`
//! (`metrics.commands`, `opLatencies`, `network`).
//!
//! Every command the dispatcher runs is an [`Op`] in [`Ops`] from the moment it is
//! authorized until its reply is built, under an `opid` of its own. Its command document
//! is kept once the command has parsed it (moved, not copied: the command does not need
//! it any more), so listing operations costs nothing while nobody lists them. `killOp`
//! marks an op killed and wakes it: the dispatcher then answers 11601 Interrupted, as
//! mongod does at its next interrupt check (a killed `getMore` also loses its cursor).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bson::{doc, Bson, DateTime, Document, RawBsonRef, RawDocument, RawDocumentBuf};
use eddy_codes::{ErrorCode, MongoError};
use eddy_metrics::{Exposition, Histogram};
use eddy_wire::Compressor;
use tokio::sync::Notify;

use crate::command::ConnInfo;
use crate::commands::{Entry, Kind};
use crate::state::SessionKey;

/// One command in progress.
pub struct Op {
    pub id: u32,
    pub conn: Arc<ConnInfo>,
    pub entry: &'static Entry,
    /// `$db`.
    pub db: String,
    pub session: Option<SessionKey>,
    started: Instant,
    /// The command document, once the command has parsed it, as BSON: a waiting
    /// `getMore` keeps it as long as it waits, and a decoded document costs several
    /// times its bytes.
    command: OnceLock<RawDocumentBuf>,
    killed: AtomicBool,
    kill: Notify,
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not its connection: the connection shows its op.
        f.debug_struct("Op")
            .field("id", &self.id)
            .field("command", &self.entry.names[0])
            .finish_non_exhaustive()
    }
}

impl Op {
    /// Keeps the command document for `currentOp` (the command has parsed it already).
    pub fn set_command(&self, cmd: &Document) {
        if let Ok(raw) = RawDocumentBuf::try_from(cmd) {
            let _ = self.command.set(raw);
        }
    }

    pub fn command(&self) -> Option<&RawDocument> {
        self.command.get().map(|c| c.as_ref())
    }

    /// Resolves once `killOp` has killed this op.
    pub async fn killed(&self) {
        let notified = self.kill.notified();
        tokio::pin!(notified);
        // Registered before the flag is read, so a kill between the two is not lost.
        notified.as_mut().enable();
        if self.killed.load(Ordering::Acquire) {
            return;
        }
        notified.await;
    }

    fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.kill.notify_waiters();
    }

    /// The cursor a `getMore` reads.
    pub fn cursor_id(&self) -> Option<i64> {
        match (self.entry.kind, self.command()?.get("getMore").ok()??) {
            (Kind::GetMore, RawBsonRef::Int64(id)) => Some(id),
            _ => None,
        }
    }

    /// mongod's `op` of a command: the CRUD commands by kind, everything else "command".
    fn op_name(&self) -> &'static str {
        match (self.entry.kind, self.entry.names[0]) {
            (Kind::Insert, _) => "insert",
            (Kind::Update, _) => "update",
            (Kind::Delete, _) => "remove",
            (Kind::GetMore, _) => "getmore",
            (_, "find") => "query",
            _ => "command",
        }
    }

    /// The namespace mongod shows: the command's collection, or `<db>.$cmd`.
    fn ns(&self) -> String {
        let coll = self.command().and_then(|cmd| match self.entry.kind {
            Kind::GetMore => cmd.get_str("collection").ok(),
            _ => cmd.iter().next()?.ok()?.1.as_str(),
        });
        match coll {
            Some(coll) => format!("{}.{coll}", self.db),
            None => format!("{}.$cmd", self.db),
        }
    }

    /// The op as `$currentOp` reports it (`type: "op"`, `active: true`).
    fn describe(
        &self,
        host: &str,
        cursors: &crate::cursor::CursorRegistry,
        truncate: bool,
    ) -> Document {
        let running = self.started.elapsed();
        let mut d = connection_fields(&self.conn, host, true);
        d.insert("opid", self.id as i32);
        if let Some(key) = &self.session {
            d.insert("lsid", key.to_document());
        }
        d.insert("secs_running", running.as_secs() as i64);
        d.insert("microsecs_running", running.as_micros() as i64);
        d.insert("op", self.op_name());
        d.insert("ns", self.ns());
        d.insert("redacted", false);
        if let Some(cmd) = self.command().and_then(|c| Document::try_from(c).ok()) {
            d.insert("command", if truncate { truncated(&cmd) } else { cmd });
        }
        if let Some(cursor) = self.cursor_id().and_then(|id| cursors.describe(id)) {
            d.insert("cursor", cursor);
        }
        d.insert("numYields", 0);
        d.insert("locks", Document::new());
        d.insert("waitingForLock", false);
        d.insert("lockStats", Document::new());
        d.insert("waitingForFlowControl", false);
        d.insert("flowControlStats", Document::new());
        d
    }
}

/// mongod shows at most about 1 KB of a command; a larger one is replaced by
/// `{$truncated: "<the start of its string form> ...", comment}`.
fn truncated(cmd: &Document) -> Document {
    const LIMIT: usize = 1024;
    let size = cmd.to_vec().map_or(0, |v| v.len());
    if size <= LIMIT {
        return cmd.clone();
    }
    // As mongod: the start of the command's own string form (`{ insert: "c", ... }`).
    let json = eddy_engine::display_value(&Bson::Document(cmd.clone()));
    let cut = json
        .char_indices()
        .map(|(i, _)| i)
        .take_while(|&i| i <= LIMIT)
        .last()
        .unwrap_or(0);
    let mut d = doc! {"$truncated": format!("{} ...", &json[..cut])};
    if let Some(comment) = cmd.get("comment") {
        d.insert("comment", comment.clone());
    }
    d
}

/// The fields every `$currentOp` document of a connection has.
fn connection_fields(conn: &ConnInfo, host: &str, active: bool) -> Document {
    let mut d = doc! {
        "type": "op",
        "host": host,
        "desc": format!("conn{}", conn.id),
        "connectionId": conn.id as i32,
        "client": conn.peer.to_string(),
    };
    if let Some(meta) = conn
        .client
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
    {
        d.insert("clientMetadata", meta);
    }
    if let Some(identity) = conn.auth.identity() {
        d.insert(
            "effectiveUsers",
            vec![Bson::Document(
                doc! {"user": identity.user.clone(), "db": identity.db.clone()},
            )],
        );
    }
    d.insert("active", active);
    d.insert(
        "currentOpTime",
        DateTime::now().try_to_rfc3339_string().unwrap_or_default(),
    );
    d.insert("threaded", true);
    d
}

/// What `$currentOp` is asked to list.
#[derive(Debug, Clone, Copy)]
pub struct Listing {
    /// Every user's operations (`allUsers`), or only the caller's.
    pub all_users: bool,
    /// Connections with no operation in progress (`idleConnections`).
    pub idle_connections: bool,
    /// Cursors no `getMore` is reading (`idleCursors`).
    pub idle_cursors: bool,
    /// Commands over 1 KB shown as `{$truncated: ...}` (`truncateOps`).
    pub truncate_ops: bool,
}

/// Counters of one command name (`metrics.commands.<name>`, `GET /metrics`).
#[derive(Debug)]
struct CommandCounter {
    total: AtomicU64,
    failed: AtomicU64,
    latency: Histogram,
}

impl Default for CommandCounter {
    fn default() -> CommandCounter {
        CommandCounter {
            total: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            latency: Histogram::latency(),
        }
    }
}

/// Latency totals of one `opLatencies` class.
#[derive(Debug, Default)]
struct Latency {
    micros: AtomicU64,
    ops: AtomicU64,
}

/// Bytes and requests through the wire protocol (`serverStatus.network`).
#[derive(Debug, Default)]
pub struct Network {
    /// Messages as the server reads and writes them, decompressed (mongod's `bytesIn`).
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Bytes on the wire, compressed or not (`physicalBytesIn`).
    pub physical_in: AtomicU64,
    pub physical_out: AtomicU64,
    pub requests: AtomicU64,
    /// Per compressor, by [`compression_slot`]: snappy, zlib, zstd.
    compression: [Compression; 3],
}

/// What one compressor did (`network.compression.<name>`): `compressor` made replies
/// (bytes in, bytes out), `decompressor` read requests (bytes in, bytes out).
#[derive(Debug, Default)]
struct Compression {
    compressor: [AtomicU64; 2],
    decompressor: [AtomicU64; 2],
}

/// The compressors `serverStatus` reports, in mongod's order.
const COMPRESSORS: [Compressor; 3] = [Compressor::Snappy, Compressor::Zstd, Compressor::Zlib];

impl Network {
    fn slot(&self, c: Compressor) -> Option<&Compression> {
        let i = COMPRESSORS.iter().position(|k| *k == c)?;
        self.compression.get(i)
    }

    /// A request read: `wire` bytes arrived, `message` after decompression by `compressor`.
    pub fn read(&self, wire: usize, message: usize, compressor: Option<Compressor>) {
        self.physical_in.fetch_add(wire as u64, Ordering::Relaxed);
        self.bytes_in.fetch_add(message as u64, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(slot) = compressor.and_then(|c| self.slot(c)) {
            slot.decompressor[0].fetch_add(wire as u64, Ordering::Relaxed);
            slot.decompressor[1].fetch_add(message as u64, Ordering::Relaxed);
        }
    }

    /// A reply written: `message` bytes, `wire` once compressed by `compressor`.
    pub fn wrote(&self, message: usize, wire: usize, compressor: Option<Compressor>) {
        self.bytes_out.fetch_add(message as u64, Ordering::Relaxed);
        self.physical_out.fetch_add(wire as u64, Ordering::Relaxed);
        if let Some(slot) = compressor.and_then(|c| self.slot(c)) {
            slot.compressor[0].fetch_add(message as u64, Ordering::Relaxed);
            slot.compressor[1].fetch_add(wire as u64, Ordering::Relaxed);
        }
    }
}

/// What is in progress (each open connection and its current op), and what has been
/// done.
pub struct Ops {
    next_id: AtomicU32,
    /// Open connections by id.
    connections: Mutex<HashMap<i64, Arc<ConnInfo>>>,
    /// By canonical command name, every name of the command table (built once).
    commands: HashMap<&'static str, CommandCounter>,
    /// Names that are not commands (`metrics.commands.<UNKNOWN>`).
    unknown: AtomicU64,
    /// `opLatencies`: reads, writes, commands.
    latencies: [Latency; 3],
    pub network: Network,
}

impl Default for Ops {
    fn default() -> Ops {
        Ops {
            next_id: AtomicU32::new(1),
            connections: Mutex::default(),
            commands: crate::commands::TABLE
                .iter()
                .map(|e| (e.names[0], CommandCounter::default()))
                .collect(),
            unknown: AtomicU64::new(0),
            latencies: Default::default(),
            network: Network::default(),
        }
    }
}

impl std::fmt::Debug for Ops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ops").finish_non_exhaustive()
    }
}

/// An op in progress; leaves its connection when dropped.
pub struct Running {
    pub op: Arc<Op>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut slot = lock(&self.op.conn.op);
        if slot.as_ref().is_some_and(|op| op.id == self.op.id) {
            *slot = None;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Ops {
    /// Registers a command about to run.
    pub fn start(
        &self,
        conn: &Arc<ConnInfo>,
        entry: &'static Entry,
        db: &str,
        session: Option<SessionKey>,
    ) -> Running {
        // opids are positive int32s, as mongod's; they wrap after 2^31 operations.
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) & 0x7fff_ffff;
        let op = Arc::new(Op {
            id,
            conn: Arc::clone(conn),
            entry,
            db: db.to_owned(),
            session,
            started: Instant::now(),
            command: OnceLock::new(),
            killed: AtomicBool::new(false),
            kill: Notify::new(),
        });
        // A connection runs one command at a time: the op is its current one, so a
        // command pays for no shared lock; only listing walks the connections.
        *lock(&conn.op) = Some(Arc::clone(&op));
        Running { op }
    }

    /// Counts a finished command: `metrics.commands` and `opLatencies`.
    pub fn finished(&self, entry: &Entry, ok: bool, took: Duration) {
        if let Some(c) = self.commands.get(entry.names[0]) {
            c.total.fetch_add(1, Ordering::Relaxed);
            if !ok {
                c.failed.fetch_add(1, Ordering::Relaxed);
            }
            c.latency.observe_duration(took);
        }
        let class = match entry.kind {
            Kind::Query | Kind::GetMore => 0,
            Kind::Insert | Kind::Update | Kind::Delete | Kind::FindAndModify => 1,
            Kind::Other => 2,
        };
        let l = &self.latencies[class];
        l.micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        l.ops.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a command name the table does not have.
    pub fn unknown_command(&self) {
        self.unknown.fetch_add(1, Ordering::Relaxed);
    }

    /// Kills op `id` if `may_kill` allows it; whether it was running.
    pub fn kill(&self, id: u32, may_kill: impl Fn(&Op) -> bool) -> Result<bool, MongoError> {
        let Some(op) = self.current().into_iter().find(|op| op.id == id) else {
            return Ok(false);
        };
        if !may_kill(&op) {
            return Err(MongoError::new(
                ErrorCode::Unauthorized,
                format!("not authorized to kill operation {id}"),
            ));
        }
        op.kill();
        Ok(true)
    }

    /// A connection opened; it is listed until [`Ops::disconnected`].
    pub fn connected(&self, conn: &Arc<ConnInfo>) {
        lock(&self.connections).insert(conn.id, Arc::clone(conn));
    }

    pub fn disconnected(&self, id: i64) {
        lock(&self.connections).remove(&id);
    }

    /// `$currentOp`'s documents: the ops in progress (and, as asked, idle connections
    /// and idle cursors), of every user or only of the caller's user: the one whose
    /// session digest is `caller` (every connection's, without `--auth`).
    pub fn list(
        &self,
        listing: Listing,
        host: &str,
        cursors: &crate::cursor::CursorRegistry,
        caller: [u8; 32],
    ) -> Vec<Document> {
        let mut ops = self.current();
        ops.sort_by_key(|op| op.id);
        let visible = |conn: &ConnInfo| listing.all_users || conn.auth.session_uid() == caller;
        let mut out: Vec<Document> = ops
            .iter()
            .filter(|op| visible(&op.conn))
            .map(|op| op.describe(host, cursors, listing.truncate_ops))
            .collect();
        if listing.idle_connections {
            let busy: std::collections::HashSet<i64> = ops.iter().map(|op| op.conn.id).collect();
            let mut idle: Vec<Arc<ConnInfo>> = lock(&self.connections)
                .values()
                .filter(|c| !busy.contains(&c.id) && visible(c))
                .cloned()
                .collect();
            idle.sort_by_key(|c| c.id);
            out.extend(idle.iter().map(|c| connection_fields(c, host, false)));
        }
        if listing.idle_cursors {
            out.extend(
                cursors
                    .idle(host)
                    .into_iter()
                    .filter(|(uid, _)| listing.all_users || *uid == caller)
                    .map(|(_, d)| d),
            );
        }
        out
    }

    /// `serverStatus.metrics.commands`.
    pub fn commands_document(&self) -> Document {
        let mut names: Vec<&&'static str> = self.commands.keys().collect();
        names.sort();
        let mut d = doc! {"<UNKNOWN>": self.unknown.load(Ordering::Relaxed) as i64};
        for name in names {
            if let Some(c) = self.commands.get(*name) {
                d.insert(
                    *name,
                    doc! {
                        "failed": c.failed.load(Ordering::Relaxed) as i64,
                        "total": c.total.load(Ordering::Relaxed) as i64,
                    },
                );
            }
        }
        d
    }

    /// `serverStatus.opLatencies`.
    pub fn latencies_document(&self) -> Document {
        let class = |l: &Latency| {
            doc! {
                "latency": l.micros.load(Ordering::Relaxed) as i64,
                "ops": l.ops.load(Ordering::Relaxed) as i64,
                "queryableEncryptionLatencyMicros": 0_i64,
            }
        };
        doc! {
            "reads": class(&self.latencies[0]),
            "writes": class(&self.latencies[1]),
            "commands": class(&self.latencies[2]),
            "transactions": {"latency": 0_i64, "ops": 0_i64, "queryableEncryptionLatencyMicros": 0_i64},
        }
    }

    /// `serverStatus.network`.
    pub fn network_document(&self) -> Document {
        let n = &self.network;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed) as i64;
        let mut compression = Document::new();
        for (c, slot) in COMPRESSORS.iter().zip(&n.compression) {
            compression.insert(
                c.name(),
                doc! {
                    "compressor": {"bytesIn": get(&slot.compressor[0]), "bytesOut": get(&slot.compressor[1])},
                    "decompressor": {"bytesIn": get(&slot.decompressor[0]), "bytesOut": get(&slot.decompressor[1])},
                },
            );
        }
        doc! {
            "bytesIn": get(&n.bytes_in),
            "bytesOut": get(&n.bytes_out),
            "physicalBytesIn": get(&n.physical_in),
            "physicalBytesOut": get(&n.physical_out),
            "numSlowDNSOperations": 0_i64,
            "numSlowSSLOperations": 0_i64,
            "numRequests": get(&n.requests),
            "compression": compression,
        }
    }

    /// Operations in progress.
    pub fn running(&self) -> usize {
        self.current().len()
    }

    /// The op each open connection is running, if any.
    fn current(&self) -> Vec<Arc<Op>> {
        lock(&self.connections)
            .values()
            .filter_map(|conn| lock(&conn.op).clone())
            .collect()
    }

    /// The command, network and operation counters in Prometheus's format (commands
    /// that never ran are left out).
    pub fn write_metrics(&self, e: &mut Exposition) {
        let mut ran: Vec<(&&'static str, &CommandCounter)> = self
            .commands
            .iter()
            .filter(|(_, c)| c.total.load(Ordering::Relaxed) > 0)
            .collect();
        ran.sort_by_key(|(name, _)| **name);
        e.family(
            "eddy_commands_total",
            "counter",
            "Commands run, by name and outcome.",
        );
        for (name, c) in &ran {
            let total = c.total.load(Ordering::Relaxed);
            let failed = c.failed.load(Ordering::Relaxed);
            e.sample(
                "eddy_commands_total",
                &[("command", name), ("outcome", "ok")],
                total.saturating_sub(failed) as f64,
            );
            e.sample(
                "eddy_commands_total",
                &[("command", name), ("outcome", "failed")],
                failed as f64,
            );
        }
        e.single(
            "eddy_unknown_commands_total",
            "counter",
            "Command names the server does not know (59 CommandNotFound, 115 CommandNotSupported).",
            self.unknown.load(Ordering::Relaxed) as f64,
        );
        e.family(
            "eddy_command_duration_seconds",
            "histogram",
            "Time from a command's authorization to its reply, by name.",
        );
        for (name, c) in &ran {
            e.histogram(
                "eddy_command_duration_seconds",
                &[("command", name)],
                &c.latency,
            );
        }
        e.single(
            "eddy_operations_in_progress",
            "gauge",
            "Commands running now.",
            self.running() as f64,
        );
        let n = &self.network;
        e.family(
            "eddy_network_bytes_total",
            "counter",
            "Bytes of wire-protocol messages, by direction.",
        )
        .sample(
            "eddy_network_bytes_total",
            &[("direction", "in")],
            n.bytes_in.load(Ordering::Relaxed) as f64,
        )
        .sample(
            "eddy_network_bytes_total",
            &[("direction", "out")],
            n.bytes_out.load(Ordering::Relaxed) as f64,
        );
        let family = e.family(
            "eddy_network_compressed_bytes_total",
            "counter",
            "Wire bytes of compressed messages, by compressor and direction.",
        );
        for (c, slot) in COMPRESSORS.iter().zip(&n.compression) {
            for (direction, counter) in
                [("in", &slot.decompressor[0]), ("out", &slot.compressor[1])]
            {
                family.sample(
                    "eddy_network_compressed_bytes_total",
                    &[("compressor", c.name()), ("direction", direction)],
                    counter.load(Ordering::Relaxed) as f64,
                );
            }
        }
        e.single(
            "eddy_network_requests_total",
            "counter",
            "Wire-protocol requests received.",
            n.requests.load(Ordering::Relaxed) as f64,
        );
    }
}

/// Resident and virtual memory of this process in KiB, from `/proc/self/status` (0
/// where unavailable): `serverStatus.mem` and `GET /metrics`.
pub fn process_memory_kib() -> (u64, u64) {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return (0, 0);
    };
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmSize:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_commands_are_truncated_as_mongod_shows_them() {
        let small = doc! {"find": "c", "filter": {"a": 1}};
        assert_eq!(truncated(&small), small);
        let big = doc! {"insert": "c", "documents": [{"pad": "x".repeat(2000)}], "comment": "mine"};
        let t = truncated(&big);
        let shown = t.get_str("$truncated").expect("a string");
        assert!(
            shown.starts_with("{ insert: \"c\", documents: [ { pad: \"xxx"),
            "{shown}"
        );
        assert!(
            shown.ends_with(" ...") && shown.len() <= 1030,
            "{}",
            shown.len()
        );
        assert_eq!(t.get_str("comment").expect("kept"), "mine");
    }
}
