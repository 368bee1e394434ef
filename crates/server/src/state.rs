//! Server-wide state shared by every connection: the configuration, the engine, cursors,
//! sessions, failpoints and the counters `serverStatus` reports.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bson::{oid::ObjectId, Bson, Document};
use eddy_engine::Engine;
use tokio::sync::Notify;

use crate::cursor::CursorRegistry;
use crate::failpoint::FailPoints;
use crate::transactions::{TxnHandle, TxnRequest};

/// mongod's `logicalSessionTimeoutMinutes` default.
pub const SESSION_TIMEOUT_MINUTES: i64 = 30;

/// How the server was started.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Addresses to listen on (`--bind_ip` resolved with `--port`).
    pub bind: Vec<String>,
    pub port: u16,
    /// The replica-set name (`--replSet`).
    pub repl_set: String,
    /// `--setParameter enableTestCommands=1`.
    pub enable_test_commands: bool,
    /// Other `--setParameter`s, typed.
    pub set_parameters: Document,
    /// `getCmdLineOpts.argv` / `.parsed`.
    pub argv: Vec<String>,
    pub parsed: Document,
    pub max_incoming_connections: u32,
    pub cursor_timeout: Duration,
    /// `--auth`: commands need an authenticated user whose roles allow them.
    pub auth: bool,
    /// `--tlsMode` and its certificates (`None`: plain TCP only).
    pub tls: Option<crate::tls::TlsConfig>,
    /// `--http-port`: `GET /metrics`, the change-stream gateway (`/v1/watch`) and the
    /// viewer page (`/`) on the same addresses (`None`: no HTTP).
    pub http_port: Option<u16>,
    /// `--networkMessageCompressors`: the compressors `hello` negotiates and OP_COMPRESSED
    /// may use (mongod's default: snappy, zstd, zlib).
    pub compressors: eddy_wire::Compressors,
}

impl ServerConfig {
    /// `localLogicalSessionTimeoutMinutes` (startup parameter; 30 by default), which
    /// `hello` and `startSession` report.
    pub fn session_timeout_minutes(&self) -> i64 {
        match self.set_parameters.get("localLogicalSessionTimeoutMinutes") {
            Some(Bson::Int32(n)) => i64::from(*n),
            Some(Bson::Int64(n)) => *n,
            _ => SESSION_TIMEOUT_MINUTES,
        }
    }

    /// How long an idle session lives before it (and its cursors) are reaped: the
    /// minutes above, or Eddy's test-only `eddySessionTimeoutMillis` when set (mongod
    /// has no sub-minute knob; see docs/COMPAT.md).
    pub fn session_timeout(&self) -> Duration {
        match self.set_parameters.get("eddySessionTimeoutMillis") {
            Some(Bson::Int32(n)) => Duration::from_millis(u64::try_from(*n).unwrap_or(0)),
            Some(Bson::Int64(n)) => Duration::from_millis(u64::try_from(*n).unwrap_or(0)),
            _ => {
                Duration::from_secs(u64::try_from(self.session_timeout_minutes()).unwrap_or(0) * 60)
            }
        }
    }

    /// `transactionLifetimeLimitSeconds` (60 by default, as mongod): a transaction open
    /// longer is aborted.
    pub fn transaction_lifetime(&self) -> Duration {
        match self.set_parameters.get("transactionLifetimeLimitSeconds") {
            Some(Bson::Int32(n)) => Duration::from_secs(u64::try_from(*n).unwrap_or(60)),
            Some(Bson::Int64(n)) => Duration::from_secs(u64::try_from(*n).unwrap_or(60)),
            _ => Duration::from_secs(60),
        }
    }

    /// How long the TTL monitor sleeps between passes (`ttlMonitorSleepSecs`, 60 by
    /// default as mongod).
    pub fn ttl_monitor_sleep(&self) -> Duration {
        let secs = match self.set_parameters.get("ttlMonitorSleepSecs") {
            Some(Bson::Int32(n)) => u64::try_from(*n).unwrap_or(60),
            _ => 60,
        };
        Duration::from_secs(secs)
    }

    /// `requireApiVersion` at start-up (false unless set).
    pub fn require_api_version(&self) -> bool {
        matches!(
            self.set_parameters.get("requireApiVersion"),
            Some(Bson::Boolean(true))
        )
    }

    /// `ttlMonitorEnabled` at start-up (true unless set to false).
    pub fn ttl_monitor_enabled(&self) -> bool {
        !matches!(
            self.set_parameters.get("ttlMonitorEnabled"),
            Some(Bson::Boolean(false))
        )
    }

    /// The `host:port` this node names itself by in `hello` (`me`, `hosts`, `primary`):
    /// `localhost:<port>` when it listens on loopback only (what clients on this machine
    /// type, and what a mongod initiated on localhost reports), else the first bind address.
    pub fn advertised_host(&self) -> String {
        let loopback = self.bind.iter().all(|b| {
            matches!(b.as_str(), "127.0.0.1" | "localhost" | "::1") || b.starts_with("127.")
        });
        match self.bind.first() {
            Some(b) if !loopback && b != "0.0.0.0" && b != "::" => {
                if b.contains(':') {
                    format!("[{b}]:{}", self.port)
                } else {
                    format!("{}:{}", b.to_lowercase(), self.port)
                }
            }
            _ => format!("localhost:{}", self.port),
        }
    }
}

/// `serverStatus.opcounters`.
#[derive(Debug, Default)]
pub struct OpCounters {
    pub insert: AtomicU64,
    pub query: AtomicU64,
    pub update: AtomicU64,
    pub delete: AtomicU64,
    pub getmore: AtomicU64,
    pub command: AtomicU64,
}

impl OpCounters {
    pub fn to_document(&self) -> Document {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed) as i64;
        bson::doc! {
            "insert": get(&self.insert),
            "query": get(&self.query),
            "update": get(&self.update),
            "delete": get(&self.delete),
            "getmore": get(&self.getmore),
            "command": get(&self.command),
        }
    }
}

/// What the TTL monitor has done since start-up.
#[derive(Debug, Default)]
pub struct TtlCounters {
    /// `ttlMonitorEnabled`, settable at runtime (`setParameter`): a pass runs only when
    /// it holds. Set from the start-up parameter when the server state is made.
    pub enabled: std::sync::atomic::AtomicBool,
    /// `ttlMonitorSleepSecs`, settable at runtime too.
    pub sleep_secs: AtomicU64,
    /// Documents deleted.
    pub deleted: AtomicU64,
    /// Passes run.
    pub passes: AtomicU64,
}

/// `transactionLifetimeLimitSeconds` as it is now.
#[derive(Debug)]
pub struct TxnLifetime {
    secs: AtomicU64,
    /// Wakes the reaper, whose interval follows the limit.
    pub changed: Notify,
}

impl TxnLifetime {
    pub fn get(&self) -> Duration {
        Duration::from_secs(self.secs.load(Ordering::Relaxed))
    }

    /// Sets it (seconds, at least 1); the previous value.
    pub fn set(&self, secs: u64) -> u64 {
        let old = self.secs.swap(secs, Ordering::Relaxed);
        self.changed.notify_waiters();
        old
    }
}

/// A logical session as mongod keys it: the client's `lsid.id` and the `uid` digest of
/// the user that runs in it. A user who learns another's `lsid` gets a session of its
/// own, never the other's retryable writes or cursors.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionKey {
    /// The bytes of `lsid.id` (a UUID binary).
    id: Vec<u8>,
    uid: [u8; 32],
}

impl SessionKey {
    pub fn new(id: &Bson, uid: [u8; 32]) -> SessionKey {
        let id = match id {
            Bson::Binary(b) => b.bytes.clone(),
            other => other.to_string().into_bytes(),
        };
        SessionKey { id, uid }
    }

    /// `lsid.id`, a UUID.
    pub fn id(&self) -> Bson {
        Bson::Binary(bson::Binary {
            subtype: bson::spec::BinarySubtype::Uuid,
            bytes: self.id.clone(),
        })
    }

    /// `{id, uid}`, as `$currentOp` and `$listLocalSessions` show a session.
    pub fn to_document(&self) -> Document {
        bson::doc! {
            "id": self.id(),
            "uid": bson::Binary {
                subtype: bson::spec::BinarySubtype::Generic,
                bytes: self.uid.to_vec(),
            },
        }
    }

    /// The session's key in the engine's session records: `lsid.id`, then the user
    /// digest.
    pub fn durable_key(&self) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.id.len() + 32);
        key.extend_from_slice(&self.id);
        key.extend_from_slice(&self.uid);
        key
    }

    /// The digest of the session's user (`crate::auth::session_user_digest`).
    pub fn uid(&self) -> [u8; 32] {
        self.uid
    }
}

/// A logical session: when it was last used, the `txnNumber` of its newest retryable
/// write (what each statement of it did is the engine's durable session record, see
/// `eddy_engine::write::retry`), and its newest transaction.
#[derive(Debug)]
struct Session {
    last_use: Instant,
    /// Only the newest transaction number matters: drivers never retry an older one.
    retry: Option<i64>,
    /// The newest multi-document transaction (in progress, committed or aborted).
    txn: Option<Arc<TxnHandle>>,
}

impl Session {
    fn new() -> Session {
        Session {
            last_use: Instant::now(),
            retry: None,
            txn: None,
        }
    }

    /// A session that ends takes its open transaction with it.
    fn abort_transaction(&self) {
        if let Some(t) = &self.txn {
            t.abort(" because its session ended");
        }
    }

    /// The newest `txnNumber` the session has used, for a retryable write or a
    /// transaction.
    fn newest_number(&self) -> Option<i64> {
        let retry = self.retry;
        let txn = self.txn.as_ref().map(|t| t.number);
        retry.max(txn)
    }
}

/// The sessions the server has seen.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<SessionKey, Session>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionKey, Session>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks a session as used.
    pub fn touch(&self, key: &SessionKey) {
        let mut map = self.lock();
        // Every command of a session comes here: copy the key only for a new session.
        match map.get_mut(key) {
            Some(s) => s.last_use = Instant::now(),
            None => {
                map.insert(key.clone(), Session::new());
            }
        }
    }

    /// A retryable write with this `txnNumber` starts (or is retried) on the session:
    /// 225 TransactionTooOld for a number below the session's newest transaction or
    /// retryable write, as mongod (the engine checks its durable record again, which
    /// outlives a restart). A newer number ends the session's open transaction.
    pub fn begin_retryable(
        &self,
        key: &SessionKey,
        txn: i64,
    ) -> Result<(), eddy_codes::MongoError> {
        let mut map = self.lock();
        let s = map.entry(key.clone()).or_insert_with(Session::new);
        let open = s.txn.clone();
        if let Some(t) = &open {
            if t.number >= txn {
                return Err(eddy_codes::MongoError::new(
                    eddy_codes::ErrorCode::TransactionTooOld,
                    format!("Retryable write with txnNumber {txn} is prohibited on session because a newer transaction with txnNumber {} has already started on this session.", t.number),
                ));
            }
        }
        if let Some(n) = s.retry.filter(|n| *n > txn) {
            return Err(eddy_codes::MongoError::new(
                eddy_codes::ErrorCode::TransactionTooOld,
                format!("Retryable write with txnNumber {txn} is prohibited on session because a newer retryable write with txnNumber {n} has already started on this session."),
            ));
        }
        s.retry = Some(txn);
        drop(map);
        // A newer number ends the session's transaction, as in mongod (outside the lock:
        // the abort waits for a statement of it that may still run).
        if let Some(t) = open {
            t.abort(" because a newer retryable write started");
        }
        Ok(())
    }

    /// The transaction a command with `autocommit: false` runs in: a new one for
    /// `startTransaction` (`begin` opens the engine's; an older one still open is
    /// aborted), else the session's open one with that number. mongod's errors: 225
    /// TransactionTooOld for a number below the session's newest, 251
    /// NoSuchTransaction for one that matches no transaction.
    ///
    /// `durable` is the `txnNumber` of the session's newest retryable write in the
    /// engine's record (which outlives a restart, when this map starts empty).
    pub fn transaction(
        &self,
        key: &SessionKey,
        req: &TxnRequest,
        durable: Option<i64>,
        lifetime: Duration,
        begin: impl FnOnce() -> Result<eddy_engine::Transaction, eddy_codes::MongoError>,
    ) -> Result<Arc<TxnHandle>, eddy_codes::MongoError> {
        use eddy_codes::{labels, ErrorCode, MongoError};
        let mut map = self.lock();
        let s = map.entry(key.clone()).or_insert_with(Session::new);
        s.last_use = Instant::now();
        let n = req.txn_number;
        let newest = s.newest_number().max(durable);
        if let Some(newest) = newest.filter(|newest| n < *newest) {
            return Err(MongoError::new(
                ErrorCode::TransactionTooOld,
                format!("Cannot start transaction {n} on session because a newer transaction {newest} has already started."),
            ));
        }
        if req.start {
            if newest == Some(n) {
                return Err(MongoError::new(
                    ErrorCode::ConflictingOperationInProgress,
                    format!("Cannot start transaction {n} on session because a transaction or retryable write with the same number has already started."),
                ));
            }
            let handle = Arc::new(TxnHandle::start(n, key.to_document(), begin()?, lifetime));
            let old = s.txn.replace(Arc::clone(&handle));
            // A statement of the older transaction may still run: abort it (which waits
            // for that statement) outside the sessions' lock.
            drop(map);
            if let Some(old) = old {
                old.abort(" because a newer transaction started");
            }
            return Ok(handle);
        }
        match &s.txn {
            Some(t) if t.number == n => Ok(Arc::clone(t)),
            _ => Err(MongoError::new(
                ErrorCode::NoSuchTransaction,
                format!(
                    "Given transaction number {n} does not match any in-progress transactions."
                ),
            )
            .with_label(labels::TRANSIENT_TRANSACTION_ERROR)),
        }
    }

    /// Aborts the transactions past their lifetime (`transactionLifetimeLimitSeconds`
    /// when each began); how many.
    pub fn abort_expired_transactions(&self) -> usize {
        let handles: Vec<Arc<TxnHandle>> =
            self.lock().values().filter_map(|s| s.txn.clone()).collect();
        let now = Instant::now();
        handles.iter().filter(|h| h.abort_if_expired(now)).count()
    }

    /// The durable keys (`SessionKey::durable_key`) of the cached sessions.
    pub fn durable_keys(&self) -> std::collections::HashSet<Vec<u8>> {
        self.lock().keys().map(SessionKey::durable_key).collect()
    }

    /// Every cached session and when it was last used, most recent first.
    pub fn list(&self) -> Vec<(SessionKey, std::time::SystemTime)> {
        let now_instant = Instant::now();
        let now = std::time::SystemTime::now();
        let mut out: Vec<(SessionKey, std::time::SystemTime)> = self
            .lock()
            .iter()
            .map(|(key, s)| (key.clone(), now - now_instant.duration_since(s.last_use)))
            .collect();
        out.sort_by_key(|(_, last_use)| std::cmp::Reverse(*last_use));
        out
    }

    /// Forgets sessions (`endSessions`, `killSessions`).
    pub fn end(&self, keys: &[SessionKey]) {
        let ended: Vec<Session> = {
            let mut map = self.lock();
            keys.iter().filter_map(|key| map.remove(key)).collect()
        };
        // Outside the lock: an abort waits for a statement of the transaction to finish.
        for s in ended {
            s.abort_transaction();
        }
    }

    /// Forgets the sessions of the users with these digests, or every session
    /// (`killAllSessions`).
    pub fn end_users(&self, uids: Option<&[[u8; 32]]>) {
        let mut ended = Vec::new();
        self.lock().retain(|key, s| {
            let keep = uids.is_some_and(|uids| !uids.contains(&key.uid));
            if !keep {
                ended.extend(s.txn.take());
            }
            keep
        });
        for txn in ended {
            txn.abort(" because its session ended");
        }
    }

    /// Forgets sessions idle for longer than the session timeout; returns their keys.
    pub fn expire(&self, timeout: Duration) -> Vec<SessionKey> {
        let mut map = self.lock();
        let mut expired = Vec::new();
        let mut ended = Vec::new();
        map.retain(|key, s| {
            let live = s.last_use.elapsed() < timeout;
            if !live {
                ended.extend(s.txn.take());
                expired.push(key.clone());
            }
            live
        });
        drop(map);
        for txn in ended {
            txn.abort(" because its session ended");
        }
        expired
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Everything the connections share.
pub struct ServerState {
    pub config: ServerConfig,
    pub engine: Arc<Engine>,
    pub cursors: CursorRegistry,
    pub sessions: Sessions,
    pub failpoints: FailPoints,
    pub opcounters: OpCounters,
    /// Open connections and all connections accepted since start.
    pub connections_current: AtomicI64,
    pub connections_total: AtomicI64,
    /// Cursors reaped for idleness since start (`metrics.cursor.timedOut`).
    pub cursors_timed_out: AtomicU64,
    /// The TTL monitor's counters (`serverStatus.metrics.ttl`).
    pub ttl: TtlCounters,
    /// `transactionLifetimeLimitSeconds`, settable at runtime (`setParameter`): the
    /// lifetime of the transactions that begin from then on.
    pub txn_lifetime: TxnLifetime,
    /// `requireApiVersion`, settable at runtime (`setParameter`): every command a client
    /// sends must then carry `apiVersion` (`crate::dispatch`).
    pub require_api_version: std::sync::atomic::AtomicBool,
    pub started: Instant,
    /// The constant `electionId` of this node's single term.
    pub election_id: ObjectId,
    /// Set by the `shutdown` command; the listener stops on it.
    pub shutdown: Notify,
    /// This process's id in `hello`'s `topologyVersion` (new at every start).
    pub process_id: ObjectId,
    pub(crate) next_connection_id: AtomicI64,
    /// Operations in progress, open connections, command counters.
    pub ops: crate::ops::Ops,
    /// Where connections that wait on change streams are served.
    pub(crate) deliveries: Arc<crate::deliveries::Deliveries>,
}

impl ServerState {
    pub fn new(config: ServerConfig, engine: Arc<Engine>) -> ServerState {
        let cursor_timeout = config.cursor_timeout;
        let ttl = TtlCounters {
            enabled: std::sync::atomic::AtomicBool::new(config.ttl_monitor_enabled()),
            sleep_secs: AtomicU64::new(config.ttl_monitor_sleep().as_secs()),
            ..TtlCounters::default()
        };
        let txn_lifetime = TxnLifetime {
            secs: AtomicU64::new(config.transaction_lifetime().as_secs()),
            changed: Notify::new(),
        };
        let require_api_version = std::sync::atomic::AtomicBool::new(config.require_api_version());
        // Streams woken by a write are read and answered on the deliveries threads.
        let deliveries = Arc::new(crate::deliveries::Deliveries::default());
        let runner = Arc::clone(&deliveries);
        engine
            .hub()
            .run_handoffs_with(Box::new(move || runner.fan_out()));
        ServerState {
            config,
            engine,
            cursors: CursorRegistry::new(cursor_timeout),
            sessions: Sessions::default(),
            failpoints: FailPoints::default(),
            opcounters: OpCounters::default(),
            connections_current: AtomicI64::new(0),
            connections_total: AtomicI64::new(0),
            cursors_timed_out: AtomicU64::new(0),
            txn_lifetime,
            require_api_version,
            ttl,
            started: Instant::now(),
            election_id: ObjectId::parse_str("7fffffff0000000000000001")
                .unwrap_or_else(|_| ObjectId::new()),
            shutdown: Notify::new(),
            process_id: ObjectId::new(),
            next_connection_id: AtomicI64::new(1),
            ops: crate::ops::Ops::default(),
            deliveries,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uuid(byte: u8) -> Bson {
        Bson::Binary(bson::Binary {
            subtype: bson::spec::BinarySubtype::Uuid,
            bytes: vec![byte; 16],
        })
    }

    #[test]
    fn a_session_is_its_id_and_its_user() {
        let sessions = Sessions::default();
        let alice = SessionKey::new(&uuid(1), [1; 32]);
        let bob_same_id = SessionKey::new(&uuid(1), [2; 32]);
        sessions.begin_retryable(&alice, 5).expect("first number");
        sessions
            .begin_retryable(&alice, 5)
            .expect("the same number again: a retry");
        // The same lsid under another user is another session: its own numbers.
        sessions
            .begin_retryable(&bob_same_id, 1)
            .expect("another session");
        assert_eq!(
            sessions.begin_retryable(&alice, 4).err().map(|e| e.code),
            Some(225)
        );
        assert_ne!(alice.durable_key(), bob_same_id.durable_key());
        sessions.touch(&bob_same_id);
        assert_eq!(sessions.len(), 2);
        assert_eq!(bob_same_id.id(), uuid(1));
        // Ending Bob's session leaves Alice's.
        sessions.end(std::slice::from_ref(&bob_same_id));
        assert_eq!(sessions.list().len(), 1);
        sessions.touch(&bob_same_id);
        sessions.end_users(Some(&[[1; 32]]));
        assert_eq!(sessions.list()[0].0, bob_same_id);
        sessions.end_users(None);
        assert!(sessions.is_empty());
    }
}
