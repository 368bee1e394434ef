//! Small administrative commands: `ping`, `buildInfo`, `getParameter`, `setParameter`, `getCmdLineOpts`,
//! `serverStatus`, `hostInfo`, `whatsmyuri`, `connectionStatus`, `listCommands`, `shutdown`.

use std::sync::atomic::Ordering;

use bson::{doc, Bson, DateTime, Document};
use eddy_codes::{ErrorCode, MongoError};

use super::hello::MAX_BSON_OBJECT_SIZE;
use crate::command::{Command, CommandResult, Ctx};

pub struct Ping;

impl Command for Ping {
    fn parse(_cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        Ok(Ping)
    }

    async fn apply(self, _ctx: Ctx) -> CommandResult {
        Ok(Document::new().into())
    }
}

pub struct BuildInfo;

/// `buildInfo.versionArray`.
fn version_array() -> Vec<i32> {
    crate::VERSION
        .split('.')
        .map(|p| p.parse().unwrap_or(0))
        .chain(std::iter::once(0))
        .collect()
}

impl Command for BuildInfo {
    fn parse(_cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        Ok(BuildInfo)
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        Ok(doc! {
            "version": crate::VERSION,
            "gitVersion": "eddy",
            "modules": [],
            "allocator": "system",
            "javascriptEngine": "none",
            "sysInfo": "deprecated",
            "versionArray": version_array(),
            "bits": 64,
            "debug": false,
            "maxBsonObjectSize": MAX_BSON_OBJECT_SIZE,
            "storageEngines": [ctx.engine().storage_engine_name()],
            "openssl": {"running": "disabled", "compiled": "disabled"},
            "buildEnvironment": {"target_os": std::env::consts::OS, "target_arch": std::env::consts::ARCH},
            "eddyVersion": env!("CARGO_PKG_VERSION"),
        }
        .into())
    }
}

/// The server parameters `getParameter` knows, with their current values.
fn parameters(ctx: &Ctx) -> Document {
    let config = &ctx.state().config;
    let mut params = doc! {
        "authenticationMechanisms": Vec::<Bson>::new(),
        "cursorTimeoutMillis": config.cursor_timeout.as_millis() as i64,
        "enableTestCommands": config.enable_test_commands,
        "featureCompatibilityVersion": {"version": "7.0"},
        "localLogicalSessionTimeoutMinutes": crate::state::SESSION_TIMEOUT_MINUTES as i32,
        "maxIncomingConnections": config.max_incoming_connections as i64,
        "requireApiVersion": false,
        "transactionLifetimeLimitSeconds": 60,
    };
    for (k, v) in &config.set_parameters {
        params.insert(k.clone(), v.clone());
    }
    // The parameters `setParameter` changes at runtime, as they are now.
    let state = ctx.state();
    params.insert(
        "cursorTimeoutMillis",
        i64::try_from(state.cursors.timeout().as_millis()).unwrap_or(i64::MAX),
    );
    params.insert(
        "transactionLifetimeLimitSeconds",
        i32::try_from(state.txn_lifetime.get().as_secs()).unwrap_or(i32::MAX),
    );
    params.insert(
        "requireApiVersion",
        state.require_api_version.load(Ordering::Relaxed),
    );
    params.insert(
        "ttlMonitorEnabled",
        state.ttl.enabled.load(Ordering::Relaxed),
    );
    params.insert(
        "ttlMonitorSleepSecs",
        i32::try_from(state.ttl.sleep_secs.load(Ordering::Relaxed)).unwrap_or(i32::MAX),
    );
    params
}

/// Parameters mongod 7.0 lets `setParameter` change at runtime (`showDetails`'s
/// `settableAtRuntime`).
const RUNTIME_SETTABLE: &[&str] = &[
    "cursorTimeoutMillis",
    "requireApiVersion",
    "transactionLifetimeLimitSeconds",
    "ttlMonitorEnabled",
    "ttlMonitorSleepSecs",
];

/// `{setParameter: 1, <name>: <value>, ...}` (admin only): mongod's checks of every
/// name first (72 unknown, 20 startup-only), then the changes; replies the previous
/// value of the first as `was`. Eddy changes `cursorTimeoutMillis`, `requireApiVersion`,
/// `transactionLifetimeLimitSeconds`, `ttlMonitorEnabled` and `ttlMonitorSleepSecs`.
pub struct SetParameter {
    params: Vec<(String, Bson)>,
}

impl Command for SetParameter {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        let params: Vec<(String, Bson)> = cmd
            .iter()
            .skip(1)
            .filter(|(k, _)| !crate::commands::GENERIC_FIELDS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if params.is_empty() {
            return Err(MongoError::new(
                ErrorCode::InvalidOptions,
                "no option found to set, use help:true to see options ",
            ));
        }
        Ok(SetParameter { params })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let known = parameters(&ctx);
        let mut changes = Vec::with_capacity(self.params.len());
        for (name, value) in &self.params {
            match name.as_str() {
                "cursorTimeoutMillis" => {
                    let ms = integral(value)
                        .filter(|n| *n >= 0)
                        .ok_or_else(|| invalid_value(name, value))?;
                    changes.push(Change::CursorTimeout(ms));
                }
                "ttlMonitorSleepSecs" => {
                    let secs = integral(value)
                        .filter(|n| *n >= 1 && *n <= i64::from(i32::MAX))
                        .ok_or_else(|| invalid_value(name, value))?;
                    changes.push(Change::TtlSleep(secs));
                }
                // mongod: an int, at least 1; transactions that begin from now on
                // live that long.
                "transactionLifetimeLimitSeconds" => {
                    let secs = integral(value)
                        .filter(|n| *n >= 1 && *n <= i64::from(i32::MAX))
                        .ok_or_else(|| invalid_value(name, value))?;
                    changes.push(Change::TxnLifetime(secs));
                }
                "ttlMonitorEnabled" => changes.push(Change::TtlEnabled(flag(name, value)?)),
                // mongod: from the next command on, every command a client sends must
                // carry `apiVersion` (498870).
                "requireApiVersion" => {
                    changes.push(Change::RequireApiVersion(flag(name, value)?))
                }
                n if known.contains_key(n) => {
                    return Err(MongoError::new(
                        ErrorCode::IllegalOperation,
                        format!("not allowed to change [{n}] at runtime"),
                    ))
                }
                n => {
                    return Err(MongoError::new(
                        ErrorCode::InvalidOptions,
                        format!(
                            "attempted to set unrecognized parameter [{n}], use help:true to see options "
                        ),
                    ))
                }
            }
        }
        let state = ctx.state();
        let mut was = None;
        for change in changes {
            let previous = match change {
                Change::CursorTimeout(ms) => {
                    let old =
                        i64::try_from(state.cursors.timeout().as_millis()).unwrap_or(i64::MAX);
                    state
                        .cursors
                        .set_timeout(std::time::Duration::from_millis(ms.unsigned_abs()));
                    Bson::Int64(old)
                }
                Change::TxnLifetime(secs) => {
                    let old = state.txn_lifetime.set(secs.unsigned_abs());
                    Bson::Int32(i32::try_from(old).unwrap_or(i32::MAX))
                }
                Change::TtlEnabled(on) => {
                    Bson::Boolean(state.ttl.enabled.swap(on, Ordering::Relaxed))
                }
                Change::RequireApiVersion(on) => {
                    Bson::Boolean(state.require_api_version.swap(on, Ordering::Relaxed))
                }
                Change::TtlSleep(secs) => {
                    let old = state
                        .ttl
                        .sleep_secs
                        .swap(secs.unsigned_abs(), Ordering::Relaxed);
                    Bson::Int32(i32::try_from(old).unwrap_or(i32::MAX))
                }
            };
            was.get_or_insert(previous);
        }
        let mut reply = Document::new();
        if let Some(was) = was {
            reply.insert("was", was);
        }
        Ok(reply.into())
    }
}

/// One runtime change `setParameter` makes.
enum Change {
    CursorTimeout(i64),
    RequireApiVersion(bool),
    TtlEnabled(bool),
    TtlSleep(i64),
    TxnLifetime(i64),
}

/// A boolean parameter: a bool, or a number (non-zero is true), as mongod takes them.
fn flag(name: &str, value: &Bson) -> Result<bool, MongoError> {
    match value {
        Bson::Boolean(b) => Ok(*b),
        other => integral(other)
            .map(|n| n != 0)
            .ok_or_else(|| invalid_value(name, value)),
    }
}

/// An integral number (a double without a fraction counts).
fn integral(v: &Bson) -> Option<i64> {
    match v {
        Bson::Int32(n) => Some(i64::from(*n)),
        Bson::Int64(n) => Some(*n),
        Bson::Double(d) if d.fract() == 0.0 && d.is_finite() => Some(*d as i64),
        _ => None,
    }
}

fn invalid_value(name: &str, value: &Bson) -> MongoError {
    MongoError::bad_value(format!(
        "Invalid value for parameter {name}: {}",
        eddy_query::util::bson_to_string(value)
    ))
}

pub struct GetParameter {
    all: bool,
    names: Vec<String>,
    show_details: bool,
}

impl Command for GetParameter {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        let (all, show_details) = match cmd.get("getParameter") {
            Some(Bson::String(s)) if s == "*" => (true, false),
            Some(Bson::Document(d)) => (
                d.get("allParameters").is_some_and(crate::args::truthy),
                d.get("showDetails").is_some_and(crate::args::truthy),
            ),
            _ => (false, false),
        };
        let names = cmd
            .keys()
            .skip(1)
            .filter(|k| !crate::commands::GENERIC_FIELDS.contains(&k.as_str()))
            .cloned()
            .collect();
        Ok(GetParameter {
            all,
            names,
            show_details,
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let params = parameters(&ctx);
        let detailed = |k: &str, v: &Bson| {
            if self.show_details {
                Bson::Document(
                    doc! {"value": v.clone(), "settableAtRuntime": RUNTIME_SETTABLE.contains(&k), "settableAtStartup": true},
                )
            } else {
                v.clone()
            }
        };
        let mut reply = Document::new();
        if self.all {
            for (k, v) in &params {
                reply.insert(k.clone(), detailed(k, v));
            }
        } else {
            for name in &self.names {
                if let Some(v) = params.get(name) {
                    reply.insert(name.clone(), detailed(name, v));
                }
            }
            if reply.is_empty() {
                return Err(MongoError::new(
                    ErrorCode::InvalidOptions,
                    "no option found to get",
                ));
            }
        }
        Ok(reply.into())
    }
}

pub struct GetCmdLineOpts;

impl Command for GetCmdLineOpts {
    fn parse(_cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        Ok(GetCmdLineOpts)
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let config = &ctx.state().config;
        Ok(doc! {"argv": config.argv.clone(), "parsed": config.parsed.clone()}.into())
    }
}

/// Resident and virtual memory of this process in MB (0 where unavailable).
fn memory_mb() -> (i64, i64) {
    let (resident, virt) = crate::ops::process_memory_kib();
    ((resident / 1024) as i64, (virt / 1024) as i64)
}

pub struct ServerStatus;

impl Command for ServerStatus {
    fn parse(_cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        Ok(ServerStatus)
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let state = ctx.state();
        let uptime = state.started.elapsed();
        let current = state.connections_current.load(Ordering::Relaxed);
        let (resident, virt) = memory_mb();
        let me = state.config.advertised_host();
        let op_time = ctx.engine().last_op_time();
        let (cursors_opened, cursors_open, cursors_no_timeout, cursors_pinned) =
            state.cursors.metrics();
        Ok(doc! {
            "host": me.clone(),
            "version": crate::VERSION,
            "process": "mongod",
            "pid": std::process::id() as i64,
            "uptime": uptime.as_secs_f64().floor(),
            "uptimeMillis": uptime.as_millis() as i64,
            "uptimeEstimate": uptime.as_secs() as i64,
            "localTime": DateTime::now(),
            "connections": {
                "current": current as i32,
                "available": (i64::from(state.config.max_incoming_connections) - current).max(0) as i32,
                "totalCreated": state.connections_total.load(Ordering::Relaxed) as i32,
                "active": state.ops.running() as i32,
            },
            "network": state.ops.network_document(),
            "opLatencies": state.ops.latencies_document(),
            "opcounters": state.opcounters.to_document(),
            "repl": {
                "hosts": [me.clone()],
                "setName": state.config.repl_set.clone(),
                "setVersion": 1,
                "isWritablePrimary": true,
                "secondary": false,
                "primary": me.clone(),
                "me": me,
                "electionId": state.election_id,
                "lastWrite": {"opTime": {"ts": op_time, "t": 1_i64}},
            },
            "storageEngine": {
                "name": ctx.engine().storage_engine_name(),
                "supportsCommittedReads": true,
                "persistent": true,
                "readOnly": false,
                "backupCursorOpen": false,
            },
            "mem": {"bits": 64, "resident": resident, "virtual": virt, "supported": resident > 0},
            "metrics": {
                "commands": state.ops.commands_document(),
                "cursor": {
                    "timedOut": state.cursors_timed_out.load(Ordering::Relaxed) as i64,
                    "totalOpened": cursors_opened as i64,
                    "open": {
                        "noTimeout": cursors_no_timeout as i64,
                        "pinned": cursors_pinned as i64,
                        "total": cursors_open as i64,
                    },
                },
                "changeStreams": {
                    "waiting": ctx.engine().hub().waiters() as i64,
                    "answeredOnWake": crate::answer::ANSWERED_ON_WAKE.load(Ordering::Relaxed) as i64,
                },
                "ttl": {
                    "deletedDocuments": state.ttl.deleted.load(Ordering::Relaxed) as i64,
                    "passes": state.ttl.passes.load(Ordering::Relaxed) as i64,
                },
            },
            "oplog": {
                "sizeBytes": ctx.engine().oplog_bytes() as i64,
            },
            "logicalSessionRecordCache": {"activeSessionsCount": state.sessions.len() as i64},
        }
        .into())
    }
}

pub struct HostInfo;

impl Command for HostInfo {
    fn parse(_cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        Ok(HostInfo)
    }

    async fn apply(self, _ctx: Ctx) -> CommandResult {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "localhost".into());
        let mem_mb = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<i64>().ok())
            })
            .map_or(0, |kb| kb / 1024);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as i32;
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        Ok(doc! {
            "system": {
                "currentTime": DateTime::now(),
                "hostname": hostname,
                "cpuAddrSize": 64,
                "memSizeMB": mem_mb,
                "memLimitMB": mem_mb,
                "numCores": cores,
                "cpuArch": std::env::consts::ARCH,
                "numaEnabled": false,
            },
            "os": {"type": if cfg!(target_os = "linux") { "Linux" } else { std::env::consts::OS }, "name": std::env::consts::OS, "version": kernel},
            "extra": {},
        }
        .into())
    }
}

pub struct WhatsMyUri;

impl Command for WhatsMyUri {
    fn parse(_cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        Ok(WhatsMyUri)
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        Ok(doc! {"you": ctx.conn().peer.to_string()}.into())
    }
}

pub struct ConnectionStatus {
    show_privileges: bool,
}

impl Command for ConnectionStatus {
    fn parse(cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        Ok(ConnectionStatus {
            show_privileges: crate::args::opt_bool(cmd, "connectionStatus", "showPrivileges")?
                .unwrap_or(false),
        })
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let identity = ctx.conn().auth.identity();
        let users: Vec<Bson> = identity
            .iter()
            .map(|i| Bson::Document(i.name_document()))
            .collect();
        let roles = identity
            .as_ref()
            .map(|i| crate::auth::roles_bson(&i.roles))
            .unwrap_or(Bson::Array(Vec::new()));
        let mut auth = doc! {"authenticatedUsers": users, "authenticatedUserRoles": roles};
        if self.show_privileges {
            let privileges: Vec<Bson> = identity
                .iter()
                .flat_map(|i| i.privileges())
                .map(|p| Bson::Document(p.to_document()))
                .collect();
            auth.insert("authenticatedUserPrivileges", privileges);
        }
        Ok(doc! {"authInfo": auth}.into())
    }
}

pub struct ListCommands;

impl Command for ListCommands {
    fn parse(_cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        Ok(ListCommands)
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        let test = ctx.state().config.enable_test_commands;
        let mut entries: Vec<(&str, &crate::commands::Entry)> = crate::commands::TABLE
            .iter()
            .filter(|e| test || !e.test_only)
            .flat_map(|e| e.names.iter().map(move |n| (*n, e)))
            .collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        let mut commands = Document::new();
        for (name, e) in entries {
            commands.insert(
                name,
                doc! {
                    "help": e.help,
                    "requiresAuth": false,
                    "secondaryOk": true,
                    "adminOnly": e.admin_only,
                    "apiVersions": if e.api_version_1 { vec!["1"] } else { Vec::new() },
                    "deprecatedApiVersions": [],
                },
            );
        }
        Ok(doc! {"commands": commands}.into())
    }
}

pub struct Shutdown;

impl Command for Shutdown {
    fn parse(_cmd: &Document, _ctx: &Ctx) -> Result<Self, MongoError> {
        Ok(Shutdown)
    }

    async fn apply(self, ctx: Ctx) -> CommandResult {
        tracing::info!(connection = ctx.conn().id, "shutdown requested by command");
        ctx.state().shutdown.notify_one();
        Ok(Document::new().into())
    }
}
