//! `eddy serve`: mongod-compatible command line and YAML config file -> server settings.
//!
//! Flags carry mongod's names (`--port`, `--bind_ip`, `--dbpath`, `--replSet`, `--setParameter`,
//! `--oplogSize`, `--oplogMinRetentionHours`, `--maxConns`, `--config`/`-f`, and the process
//! flags `--fork`, `--logpath`, `--logappend`, `--logRotate`, `--pidfilepath`, `--quiet`) so that
//! scripts and tutorials written for mongod work unchanged. Precedence, as in mongod:
//! command-line flag > config file > built-in default. Invalid combinations mongod refuses
//! ([`BadOptions`]) are reported as mongod does: `BadValue: ...` and exit code 2.
//!
//! [`main`] is the whole of `eddy serve`: settings, then (`--fork`) the parent's wait, then the
//! log destination, the pid file, and the server in a tokio runtime.
//!
//! Besides the effective values, this module records mongod's `getCmdLineOpts` view: `argv`
//! (the real argv) and `parsed` (only the options the user actually gave, under mongod's dotted
//! option names, nested and sorted by key like mongod's option environment).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bson::{Bson, Document};
use clap::Args;
use yaml_rust2::{Yaml, YamlLoader};

use super::daemon;
use super::logging::{self, Destination, LogFile, LogFormat, LogRotate};
use super::signal::Shutdown;

/// Default TCP port, as mongod.
pub const DEFAULT_PORT: u16 = 27017;
/// Default bind address, as mongod (localhost only).
pub const DEFAULT_BIND_IP: &str = "127.0.0.1";
/// Default data directory (mongod uses /data/db; Eddy keeps its data next to the user).
pub const DEFAULT_DBPATH: &str = "./eddy-data";
/// Default replica-set name: Eddy always runs as a one-member replica set so change streams work.
pub const DEFAULT_REPL_SET: &str = "rs0";
/// Default oplog size. mongod picks 5% of free disk clamped to [990 MB, 50 GB]; Eddy uses a fixed
/// 1024 MB so behaviour does not depend on the disk the data happens to live on.
pub const DEFAULT_OPLOG_SIZE_MB: u64 = 1024;
/// mongod's default `net.maxIncomingConnections`.
pub const DEFAULT_MAX_CONNS: u32 = 1_000_000;
/// mongod 7.0's default `net.compression.compressors`.
pub const DEFAULT_COMPRESSORS: &str = "snappy,zstd,zlib";
/// mongod's default `cursorTimeoutMillis` (10 minutes).
pub const DEFAULT_CURSOR_TIMEOUT_MS: u64 = 600_000;

/// `eddy serve` command-line flags. Every value is optional so that a config file can supply it
/// and so that `parsed` can list exactly what the user gave.
#[derive(Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// TCP port to listen on [default: 27017]
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,

    /// Comma-separated IP addresses / host names to bind to [default: 127.0.0.1]
    #[arg(long = "bind_ip", value_name = "IPS")]
    pub bind_ip: Option<String>,

    /// Directory for the data files, created if missing [default: ./eddy-data]
    #[arg(long = "dbpath", value_name = "DIR")]
    pub dbpath: Option<PathBuf>,

    /// Replica-set name reported by hello/isMaster [default: rs0]
    #[arg(long = "replSet", value_name = "NAME")]
    pub repl_set: Option<String>,

    /// Set a server parameter, e.g. enableTestCommands=1 or cursorTimeoutMillis=60000
    /// (repeatable)
    #[arg(long = "setParameter", value_name = "NAME=VALUE")]
    pub set_parameter: Vec<String>,

    /// Oplog size in megabytes [default: 1024; mongod derives it from free disk space]
    #[arg(long = "oplogSize", value_name = "MB")]
    pub oplog_size: Option<u64>,

    /// Minimum hours of oplog to retain even past --oplogSize; 0 = no age minimum [default: 0]
    #[arg(
        long = "oplogMinRetentionHours",
        value_name = "HOURS",
        allow_negative_numbers = true
    )]
    pub oplog_min_retention_hours: Option<f64>,

    /// Maximum number of simultaneous client connections [default: 1000000]
    #[arg(long = "maxConns", value_name = "N")]
    pub max_conns: Option<u32>,

    /// Require authentication (SCRAM users) and enforce their roles
    #[arg(long = "auth")]
    pub auth: bool,

    /// Also serve HTTP on this port, on the same addresses: GET /metrics (Prometheus),
    /// change streams as Server-Sent Events (GET /v1/watch/DB/COLL) and a live viewer
    /// page (GET /) [default: off]
    #[arg(long = "http-port", value_name = "PORT")]
    pub http_port: Option<u16>,

    /// TLS: disabled, allowTLS, preferTLS or requireTLS [default: disabled]
    #[arg(long = "tlsMode", value_name = "MODE")]
    pub tls_mode: Option<String>,

    /// PEM file with the server's certificate chain and private key (needed for TLS)
    #[arg(long = "tlsCertificateKeyFile", value_name = "FILE")]
    pub tls_certificate_key_file: Option<PathBuf>,

    /// PEM file of the CAs client certificates must chain to (client certificates are
    /// then verified, and required unless --tlsAllowConnectionsWithoutCertificates)
    #[arg(long = "tlsCAFile", value_name = "FILE")]
    pub tls_ca_file: Option<PathBuf>,

    /// With --tlsCAFile: accept TLS clients that present no certificate
    #[arg(long = "tlsAllowConnectionsWithoutCertificates")]
    pub tls_allow_connections_without_certificates: bool,

    /// Run in the background: return once the server accepts connections, printing its pid
    /// (needs --logpath)
    #[arg(long = "fork")]
    pub fork: bool,

    /// Write the log to FILE instead of stderr (an existing file is renamed to
    /// FILE.<UTC time> unless --logappend); JSON lines as mongod's unless --logFormat text
    #[arg(long = "logpath", value_name = "FILE")]
    pub logpath: Option<PathBuf>,

    /// Append to an existing --logpath file instead of renaming it
    #[arg(long = "logappend")]
    pub logappend: bool,

    /// What SIGUSR1 does to the --logpath file: rename (to FILE.<UTC time>) or reopen
    /// (after logrotate moved it; needs --logappend) [default: rename]
    #[arg(long = "logRotate", value_name = "rename|reopen")]
    pub log_rotate: Option<String>,

    /// Log line format: text or json (mongod's structured lines) [default: json with
    /// --logpath, else text]
    #[arg(long = "logFormat", value_name = "text|json")]
    pub log_format: Option<String>,

    /// Write the server's pid to FILE
    #[arg(long = "pidfilepath", value_name = "FILE")]
    pub pidfilepath: Option<PathBuf>,

    /// Log to syslog (not supported by Eddy: refused; use --logpath)
    #[arg(long = "syslog")]
    pub syslog: bool,

    /// Wire compressors hello may negotiate: a comma-separated list of snappy, zstd,
    /// zlib (and noop), or disabled [default: snappy,zstd,zlib]
    #[arg(long = "networkMessageCompressors", value_name = "LIST")]
    pub network_message_compressors: Option<String>,

    /// mongod YAML configuration file (net.port, net.bindIp, net.maxIncomingConnections,
    /// storage.dbPath, storage.oplogMinRetentionHours, replication.replSetName,
    /// replication.oplogSizeMB, systemLog.*, processManagement.fork/pidFilePath,
    /// setParameter); flags given on the command line override it
    #[arg(long = "config", short = 'f', value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The global `--quiet` flag (parsed by the top-level command, set before `resolve`).
    #[arg(skip)]
    pub quiet: bool,

    /// The global `-v` count (parsed by the top-level command, set before `resolve`).
    #[arg(skip)]
    pub verbose: u8,
}

/// An option combination mongod refuses at start-up (mongod: `BadValue`, exit code 2).
#[derive(Debug)]
pub struct BadOptions(pub String);

impl std::fmt::Display for BadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadOptions {}

fn bad_options(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(BadOptions(msg.into()))
}

/// mongod's exit code for bad options (`EXIT_BADOPTIONS`).
const EXIT_BAD_OPTIONS: u8 = 2;
/// mongod's exit code when it cannot listen (`EXIT_NET_ERROR`).
const EXIT_NET_ERROR: u8 = 48;

/// Where and how the server logs.
#[derive(Debug, Clone, PartialEq)]
pub struct LogSettings {
    /// `--logpath` / `systemLog.path` (`None`: stderr).
    pub path: Option<PathBuf>,
    /// `--logappend` / `systemLog.logAppend`.
    pub append: bool,
    /// `--logRotate` / `systemLog.logRotate`.
    pub rotate: LogRotate,
    /// `--logFormat`, else JSON for a file and text for stderr.
    pub format: LogFormat,
    /// `--quiet` / `systemLog.quiet`: warnings and errors only.
    pub quiet: bool,
    /// `-v` (counted) / `systemLog.verbosity`: 0 info, 1 debug, 2 and more trace.
    pub verbosity: u8,
}

/// Fully resolved `eddy serve` settings: what the server is started with.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeSettings {
    /// TCP port.
    pub port: u16,
    /// Addresses to bind, in order.
    pub bind_ip: Vec<String>,
    /// Data directory (exists once `prepare_dbpath` ran).
    pub dbpath: PathBuf,
    /// Replica-set name.
    pub repl_set: String,
    /// `--setParameter enableTestCommands=1`.
    pub enable_test_commands: bool,
    /// All other `--setParameter`s, values typed (int/double/bool/string).
    pub set_parameters: Document,
    /// The real argv, for `getCmdLineOpts.argv`.
    pub argv: Vec<String>,
    /// `getCmdLineOpts.parsed`.
    pub parsed: Document,
    /// Oplog size cap in MB.
    pub oplog_size_mb: u64,
    /// Minimum oplog retention in hours (0 = none).
    pub oplog_min_retention_hours: f64,
    /// Maximum simultaneous connections.
    pub max_incoming_connections: u32,
    /// Idle cursor timeout (`cursorTimeoutMillis`).
    pub cursor_timeout: Duration,
    /// `--auth` / `security.authorization: enabled`.
    pub auth: bool,
    /// `--tlsMode` and friends / `net.tls.*` (`None`: plain TCP).
    pub tls: Option<eddy_server::tls::TlsConfig>,
    /// `--networkMessageCompressors` / `net.compression.compressors`.
    pub compressors: eddy_wire::Compressors,
    /// The config file used, if any.
    pub config_file: Option<PathBuf>,
    /// `--http-port` (`None`: no HTTP).
    pub http_port: Option<u16>,
    /// Log destination, format, rotation.
    pub log: LogSettings,
    /// `--fork` / `processManagement.fork`.
    pub fork: bool,
    /// `--pidfilepath` / `processManagement.pidFilePath`.
    pub pid_file: Option<PathBuf>,
    /// Config file options Eddy does not act on (logged once logging is set up).
    pub ignored: Vec<String>,
}

/// Options read from a config file, with mongod's dotted names kept for `parsed`.
#[derive(Debug, Default, PartialEq)]
struct FileOptions {
    port: Option<u16>,
    bind_ip: Option<String>,
    dbpath: Option<String>,
    repl_set: Option<String>,
    oplog_size_mb: Option<u64>,
    oplog_min_retention_hours: Option<f64>,
    max_conns: Option<u32>,
    auth: Option<bool>,
    tls_mode: Option<String>,
    tls_certificate_key_file: Option<String>,
    tls_ca_file: Option<String>,
    tls_allow_without_certificates: Option<bool>,
    log_destination: Option<String>,
    log_path: Option<String>,
    log_append: Option<bool>,
    log_rotate: Option<String>,
    quiet: Option<bool>,
    verbosity: Option<u8>,
    fork: Option<bool>,
    pid_file: Option<String>,
    compressors: Option<String>,
    set_parameters: Vec<(String, String)>,
    /// mongod options that Eddy accepts but does not act on (warned about at start-up).
    ignored: Vec<String>,
}

/// Reads `--config` if given and resolves everything.
pub fn resolve(args: &ServeArgs, argv: Vec<String>) -> Result<ServeSettings> {
    let file = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            Some((path.as_path(), text))
        }
        None => None,
    };
    resolve_with(args, file.as_ref().map(|(p, t)| (*p, t.as_str())), argv)
}

/// Resolution proper, separated from file I/O for tests.
fn resolve_with(
    args: &ServeArgs,
    config: Option<(&Path, &str)>,
    argv: Vec<String>,
) -> Result<ServeSettings> {
    let file = match config {
        Some((path, text)) => parse_config(text)
            .with_context(|| format!("error in config file {}", path.display()))?,
        None => FileOptions::default(),
    };
    // `parsed`: dotted name -> value; BTreeMap gives mongod's sorted order.
    let mut parsed: BTreeMap<String, Bson> = BTreeMap::new();
    if let Some((path, _)) = config {
        parsed.insert("config".into(), Bson::String(path.display().to_string()));
    }
    if let Some(p) = file.port {
        parsed.insert("net.port".into(), Bson::Int32(i32::from(p)));
    }
    if let Some(b) = &file.bind_ip {
        parsed.insert("net.bindIp".into(), Bson::String(b.clone()));
    }
    if let Some(m) = file.max_conns {
        parsed.insert("net.maxIncomingConnections".into(), Bson::Int32(m as i32));
    }
    if let Some(d) = &file.dbpath {
        parsed.insert("storage.dbPath".into(), Bson::String(d.clone()));
    }
    if let Some(h) = file.oplog_min_retention_hours {
        parsed.insert("storage.oplogMinRetentionHours".into(), Bson::Double(h));
    }
    if let Some(r) = &file.repl_set {
        parsed.insert("replication.replSetName".into(), Bson::String(r.clone()));
    }
    if let Some(s) = file.oplog_size_mb {
        parsed.insert("replication.oplogSizeMB".into(), Bson::Int32(s as i32));
    }
    if let Some(a) = file.auth {
        let value = if a { "enabled" } else { "disabled" };
        parsed.insert("security.authorization".into(), Bson::String(value.into()));
    }
    if args.auth {
        parsed.insert(
            "security.authorization".into(),
            Bson::String("enabled".into()),
        );
    }
    if let Some(p) = args.port {
        parsed.insert("net.port".into(), Bson::Int32(i32::from(p)));
    }
    if let Some(b) = &args.bind_ip {
        parsed.insert("net.bindIp".into(), Bson::String(b.clone()));
    }
    if let Some(m) = args.max_conns {
        parsed.insert("net.maxIncomingConnections".into(), Bson::Int32(m as i32));
    }
    if let Some(d) = &args.dbpath {
        parsed.insert(
            "storage.dbPath".into(),
            Bson::String(d.display().to_string()),
        );
    }
    if let Some(h) = args.oplog_min_retention_hours {
        parsed.insert("storage.oplogMinRetentionHours".into(), Bson::Double(h));
    }
    if let Some(r) = &args.repl_set {
        parsed.insert("replication.replSet".into(), Bson::String(r.clone()));
    }
    if let Some(s) = args.oplog_size {
        parsed.insert("replication.oplogSizeMB".into(), Bson::Int32(s as i32));
    }
    let log = resolve_log(args, &file, &mut parsed)?;
    let fork = args.fork || file.fork.unwrap_or(false);
    if fork {
        parsed.insert("processManagement.fork".into(), Bson::Boolean(true));
    }
    if fork && log.path.is_none() {
        return Err(bad_options(
            "--fork has to be used with --logpath or --syslog",
        ));
    }
    let pid_file = args
        .pidfilepath
        .clone()
        .or(file.pid_file.as_ref().map(PathBuf::from));
    if let Some(p) = &pid_file {
        parsed.insert(
            "processManagement.pidFilePath".into(),
            Bson::String(p.display().to_string()),
        );
    }

    // setParameter: file first, then command line (later wins, as in mongod).
    let mut raw_params: Vec<(String, String)> = file.set_parameters.clone();
    for spec in &args.set_parameter {
        let (name, value) = spec.split_once('=').ok_or_else(|| {
            anyhow!("Illegal option assignment: \"{spec}\" (expected --setParameter NAME=VALUE)")
        })?;
        if name.is_empty() {
            bail!("Illegal option assignment: \"{spec}\" (empty parameter name)");
        }
        raw_params.push((name.to_owned(), value.to_owned()));
    }
    let mut param_strings: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in &raw_params {
        param_strings.insert(k.clone(), v.clone());
    }
    let mut enable_test_commands = false;
    let mut set_parameters = Document::new();
    let mut cursor_timeout = Duration::from_millis(DEFAULT_CURSOR_TIMEOUT_MS);
    for (name, value) in &param_strings {
        match name.as_str() {
            "enableTestCommands" => {
                enable_test_commands = parse_bool(value).ok_or_else(|| {
                    anyhow!("Bad value for parameter \"enableTestCommands\": \"{value}\" is not a boolean")
                })?;
            }
            "cursorTimeoutMillis" => {
                let ms: i64 = value.parse().map_err(|_| {
                    anyhow!("Bad value for parameter \"cursorTimeoutMillis\": \"{value}\" is not an integer")
                })?;
                if ms < 0 {
                    bail!("Bad value for parameter \"cursorTimeoutMillis\": must be >= 0");
                }
                cursor_timeout = Duration::from_millis(ms as u64);
                set_parameters.insert(name.clone(), Bson::Int64(ms));
            }
            "requireApiVersion" | "ttlMonitorEnabled" => {
                let on = parse_bool(value).ok_or_else(|| {
                    anyhow!("Bad value for parameter \"{name}\": \"{value}\" is not a boolean")
                })?;
                set_parameters.insert(name.clone(), Bson::Boolean(on));
            }
            // mongod: an int greater than 0. The second is Eddy's test-only knob.
            "localLogicalSessionTimeoutMinutes"
            | "eddySessionTimeoutMillis"
            | "ttlMonitorSleepSecs"
            | "transactionLifetimeLimitSeconds" => {
                let n: i32 = value.parse().map_err(|_| {
                    anyhow!("Bad value for parameter \"{name}\": \"{value}\" is not an integer")
                })?;
                if n <= 0 {
                    bail!("Bad value for parameter \"{name}\": must be greater than 0");
                }
                set_parameters.insert(name.clone(), Bson::Int32(n));
            }
            _ => {
                set_parameters.insert(name.clone(), typed_parameter(value));
            }
        }
    }
    if !param_strings.is_empty() {
        let mut sp = Document::new();
        for (k, v) in &param_strings {
            sp.insert(k.clone(), Bson::String(v.clone()));
        }
        parsed.insert("setParameter".into(), Bson::Document(sp));
    }

    let port = args.port.or(file.port).unwrap_or(DEFAULT_PORT);
    if port == 0 {
        bail!("port number 0 is out of range (1-65535)");
    }
    let bind_raw = args
        .bind_ip
        .clone()
        .or(file.bind_ip)
        .unwrap_or_else(|| DEFAULT_BIND_IP.to_owned());
    let bind_ip: Vec<String> = bind_raw
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if bind_ip.is_empty() {
        bail!("--bind_ip must name at least one address");
    }
    let dbpath = args
        .dbpath
        .clone()
        .or(file.dbpath.map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DBPATH));
    let repl_set = args
        .repl_set
        .clone()
        .or(file.repl_set)
        .unwrap_or_else(|| DEFAULT_REPL_SET.to_owned());
    if repl_set.is_empty() || repl_set.contains('/') {
        bail!("bad --replSet name {repl_set:?}: must be non-empty and contain no '/'");
    }
    let oplog_size_mb = args
        .oplog_size
        .or(file.oplog_size_mb)
        .unwrap_or(DEFAULT_OPLOG_SIZE_MB);
    if oplog_size_mb == 0 {
        bail!("--oplogSize must be greater than 0");
    }
    let oplog_min_retention_hours = args
        .oplog_min_retention_hours
        .or(file.oplog_min_retention_hours)
        .unwrap_or(0.0);
    if !(oplog_min_retention_hours.is_finite() && oplog_min_retention_hours >= 0.0) {
        bail!("--oplogMinRetentionHours must be a non-negative number");
    }
    let max_incoming_connections = args
        .max_conns
        .or(file.max_conns)
        .unwrap_or(DEFAULT_MAX_CONNS);
    if max_incoming_connections == 0 {
        bail!("--maxConns must be greater than 0");
    }

    let tls_mode = args.tls_mode.clone().or(file.tls_mode.clone());
    let tls_key = args
        .tls_certificate_key_file
        .clone()
        .or(file.tls_certificate_key_file.as_ref().map(PathBuf::from));
    let tls_ca = args
        .tls_ca_file
        .clone()
        .or(file.tls_ca_file.as_ref().map(PathBuf::from));
    let tls = match tls_mode.as_deref() {
        None | Some("disabled") => {
            if tls_key.is_some() {
                bail!("--tlsCertificateKeyFile needs --tlsMode allowTLS, preferTLS or requireTLS");
            }
            None
        }
        Some(name) => {
            let mode = eddy_server::tls::TlsMode::parse(name).ok_or_else(|| {
                anyhow!(
                    "--tlsMode: expected disabled, allowTLS, preferTLS or requireTLS, found {name}"
                )
            })?;
            let certificate_key_file = tls_key.ok_or_else(|| {
                anyhow!("--tlsMode {name} needs --tlsCertificateKeyFile (the server's certificate and key)")
            })?;
            for (name, value) in [
                ("net.tls.mode", Bson::String(name.to_owned())),
                (
                    "net.tls.certificateKeyFile",
                    Bson::String(certificate_key_file.display().to_string()),
                ),
            ] {
                parsed.insert(name.into(), value);
            }
            if let Some(ca) = &tls_ca {
                parsed.insert(
                    "net.tls.CAFile".into(),
                    Bson::String(ca.display().to_string()),
                );
            }
            Some(eddy_server::tls::TlsConfig {
                mode,
                certificate_key_file,
                ca_file: tls_ca,
                allow_connections_without_certificates: args
                    .tls_allow_connections_without_certificates
                    || file.tls_allow_without_certificates.unwrap_or(false),
            })
        }
    };

    let compressors_raw = args
        .network_message_compressors
        .clone()
        .or(file.compressors.clone());
    if let Some(list) = &compressors_raw {
        parsed.insert(
            "net.compression.compressors".into(),
            Bson::String(list.clone()),
        );
    }
    let compressors = parse_compressors(compressors_raw.as_deref().unwrap_or(DEFAULT_COMPRESSORS))?;

    Ok(ServeSettings {
        port,
        bind_ip,
        dbpath,
        repl_set,
        enable_test_commands,
        set_parameters,
        argv,
        parsed: nest(&parsed),
        oplog_size_mb,
        oplog_min_retention_hours,
        max_incoming_connections,
        cursor_timeout,
        auth: args.auth || file.auth.unwrap_or(false),
        tls,
        compressors,
        config_file: config.map(|(p, _)| p.to_path_buf()),
        http_port: args.http_port,
        log,
        fork,
        pid_file,
        ignored: file.ignored,
    })
}

/// `systemLog` from the flags and the file, checked in mongod's order with mongod's messages.
fn resolve_log(
    args: &ServeArgs,
    file: &FileOptions,
    parsed: &mut BTreeMap<String, Bson>,
) -> Result<LogSettings> {
    let mut path: Option<PathBuf> = None;
    let mut syslog = false;
    match file.log_destination.as_deref() {
        Some("file") => match &file.log_path {
            Some(p) => path = Some(PathBuf::from(p)),
            None => {
                return Err(bad_options(
                    "systemLog.path is required if systemLog.destination is to a file",
                ))
            }
        },
        Some("syslog") => {
            if file.log_path.is_some() {
                return Err(bad_options(
                    "Can only use systemLog.path if systemLog.destination is to a file",
                ));
            }
            syslog = true;
        }
        Some(other) => {
            return Err(bad_options(format!(
                "Bad value for systemLog.destination: {other}.  {}",
                "Supported targets are: (syslog|file)"
            )))
        }
        None => {
            if file.log_path.is_some() {
                return Err(bad_options(
                    "Can only use systemLog.path if systemLog.destination is to a file",
                ));
            }
        }
    }
    // The command line's --logpath / --syslog replace the file's destination (mongod maps both
    // to systemLog.destination).
    if args.logpath.is_some() && args.syslog {
        return Err(bad_options("Cant use both a logpath and syslog "));
    }
    if let Some(p) = &args.logpath {
        if p.as_os_str().is_empty() {
            return Err(bad_options("logpath cannot be empty if supplied"));
        }
        path = Some(p.clone());
        syslog = false;
    }
    if args.syslog {
        path = None;
        syslog = true;
    }
    if syslog {
        return Err(bad_options(
            "--syslog (systemLog.destination: syslog) is not supported by Eddy; log to a file with --logpath",
        ));
    }
    if let Some(p) = &path {
        parsed.insert("systemLog.destination".into(), Bson::String("file".into()));
        parsed.insert(
            "systemLog.path".into(),
            Bson::String(p.display().to_string()),
        );
    }
    let append = args.logappend || file.log_append.unwrap_or(false);
    if append {
        parsed.insert("systemLog.logAppend".into(), Bson::Boolean(true));
    }
    let rotate = match args.log_rotate.as_deref().or(file.log_rotate.as_deref()) {
        None => LogRotate::Rename,
        Some(name) => {
            let rotate = LogRotate::parse(name)
                .ok_or_else(|| bad_options(format!("unsupported value for logRotate {name}")))?;
            if rotate == LogRotate::Reopen && !append {
                return Err(bad_options(
                    "logAppend must equal true if logRotate is set to reopen",
                ));
            }
            parsed.insert("systemLog.logRotate".into(), Bson::String(name.to_owned()));
            rotate
        }
    };
    let quiet = args.quiet || file.quiet.unwrap_or(false);
    if quiet {
        parsed.insert("systemLog.quiet".into(), Bson::Boolean(true));
    }
    // mongod records `-vv` as `systemLog.verbosity: 2`.
    let verbosity = if args.verbose > 0 {
        Some(args.verbose)
    } else {
        file.verbosity
    };
    if let Some(v) = verbosity {
        parsed.insert("systemLog.verbosity".into(), Bson::Int32(i32::from(v)));
    }
    let format = match args.log_format.as_deref() {
        Some(name) => LogFormat::parse(name).ok_or_else(|| {
            bad_options(format!("--logFormat: expected text or json, found {name}"))
        })?,
        None if path.is_some() => LogFormat::Json,
        None => LogFormat::Text,
    };
    Ok(LogSettings {
        path,
        append,
        rotate,
        format,
        quiet,
        verbosity: verbosity.unwrap_or(0),
    })
}

/// A compressor list as mongod reads `net.compression.compressors`: names split at commas
/// and spaces, or `disabled` for none; an unknown name is refused at start-up with
/// mongod's message.
fn parse_compressors(list: &str) -> Result<eddy_wire::Compressors> {
    if list == "disabled" {
        return Ok(eddy_wire::Compressors::NONE);
    }
    list.split([',', ' '])
        .filter(|name| !name.is_empty())
        .map(|name| {
            eddy_wire::Compressor::from_name(name).ok_or_else(|| {
                anyhow!("Invalid network message compressor specified in configuration: {name}")
            })
        })
        .collect()
}

/// mongod's boolean server-parameter spellings.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

/// A `--setParameter` value typed the way the parameter tables expect it.
fn typed_parameter(v: &str) -> Bson {
    if let Ok(i) = v.parse::<i64>() {
        return match i32::try_from(i) {
            Ok(small) => Bson::Int32(small),
            Err(_) => Bson::Int64(i),
        };
    }
    match v {
        "true" => return Bson::Boolean(true),
        "false" => return Bson::Boolean(false),
        _ => {}
    }
    if let Ok(f) = v.parse::<f64>() {
        if f.is_finite() {
            return Bson::Double(f);
        }
    }
    Bson::String(v.to_owned())
}

/// {"net.port": 1, "net.bindIp": "x"} -> {net: {bindIp: "x", port: 1}} (input already sorted).
fn nest(flat: &BTreeMap<String, Bson>) -> Document {
    let mut out = Document::new();
    for (key, value) in flat {
        insert_dotted(&mut out, key, value.clone());
    }
    out
}

/// Inserts `value` at a dotted path (`net.tls.mode` -> `{net: {tls: {mode: ...}}}`).
fn insert_dotted(doc: &mut Document, key: &str, value: Bson) {
    match key.split_once('.') {
        None => {
            doc.insert(key.to_owned(), value);
        }
        Some((section, rest)) => {
            let entry = doc
                .entry(section.to_owned())
                .or_insert_with(|| Bson::Document(Document::new()));
            if let Bson::Document(d) = entry {
                insert_dotted(d, rest, value);
            }
        }
    }
}

fn yaml_kind(y: &Yaml) -> &'static str {
    match y {
        Yaml::Real(_) => "a number",
        Yaml::Integer(_) => "an integer",
        Yaml::String(_) => "a string",
        Yaml::Boolean(_) => "a boolean",
        Yaml::Array(_) => "a list",
        Yaml::Hash(_) => "a mapping",
        Yaml::Alias(_) => "an alias",
        Yaml::Null => "null",
        Yaml::BadValue => "an invalid value",
    }
}

fn yaml_scalar_string(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Real(r) => Some(r.clone()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn yaml_int(y: &Yaml, name: &str) -> Result<i64> {
    match y {
        Yaml::Integer(i) => Ok(*i),
        // mongod accepts quoted numbers too.
        Yaml::String(s) => s
            .trim()
            .parse()
            .map_err(|_| anyhow!("{name}: expected an integer, found {s:?}")),
        other => bail!("{name}: expected an integer, found {}", yaml_kind(other)),
    }
}

fn yaml_f64(y: &Yaml, name: &str) -> Result<f64> {
    match y {
        Yaml::Integer(i) => Ok(*i as f64),
        Yaml::Real(r) | Yaml::String(r) => r
            .trim()
            .parse()
            .map_err(|_| anyhow!("{name}: expected a number, found {r:?}")),
        other => bail!("{name}: expected a number, found {}", yaml_kind(other)),
    }
}

fn yaml_bool(y: &Yaml, name: &str) -> Result<bool> {
    match y {
        Yaml::Boolean(b) => Ok(*b),
        other => bail!("{name}: expected a boolean, found {}", yaml_kind(other)),
    }
}

fn yaml_string(y: &Yaml, name: &str) -> Result<String> {
    match y {
        Yaml::String(s) => Ok(s.clone()),
        other => bail!("{name}: expected a string, found {}", yaml_kind(other)),
    }
}

/// Parses a mongod YAML config file (the subset Eddy acts on; other mongod sections are
/// recorded in `ignored`).
fn parse_config(text: &str) -> Result<FileOptions> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| anyhow!("invalid YAML: {e}"))?;
    let mut opts = FileOptions::default();
    let root = match docs.as_slice() {
        [] => return Ok(opts),
        [Yaml::Null] => return Ok(opts),
        [Yaml::Hash(h)] => h,
        [other] => bail!(
            "the top level must be a mapping, found {}",
            yaml_kind(other)
        ),
        _ => bail!("expected a single YAML document"),
    };
    for (section_key, section) in root {
        let section_name = match section_key {
            Yaml::String(s) => s.as_str(),
            other => bail!("option names must be strings, found {}", yaml_kind(other)),
        };
        let Yaml::Hash(entries) = section else {
            // mongod's config is always section.option; a bare scalar is an unknown option.
            opts.ignored.push(section_name.to_owned());
            continue;
        };
        for (key, value) in entries {
            let key = match key {
                Yaml::String(s) => s.as_str(),
                other => bail!(
                    "option names must be strings, found {} under {section_name}",
                    yaml_kind(other)
                ),
            };
            let dotted = format!("{section_name}.{key}");
            match (section_name, key) {
                ("net", "port") => {
                    let p = yaml_int(value, &dotted)?;
                    opts.port = Some(
                        u16::try_from(p)
                            .ok()
                            .filter(|p| *p != 0)
                            .ok_or_else(|| anyhow!("{dotted}: {p} is out of range (1-65535)"))?,
                    );
                }
                ("net", "bindIp") => opts.bind_ip = Some(yaml_string(value, &dotted)?),
                ("net", "maxIncomingConnections") => {
                    let n = yaml_int(value, &dotted)?;
                    opts.max_conns = Some(
                        u32::try_from(n)
                            .ok()
                            .filter(|n| *n > 0)
                            .ok_or_else(|| anyhow!("{dotted}: {n} is out of range"))?,
                    );
                }
                ("net", "compression") => {
                    let Yaml::Hash(compression) = value else {
                        bail!("{dotted}: expected a mapping, found {}", yaml_kind(value));
                    };
                    for (k, v) in compression {
                        match k {
                            Yaml::String(name) if name == "compressors" => {
                                opts.compressors =
                                    Some(yaml_string(v, "net.compression.compressors")?)
                            }
                            Yaml::String(name) => opts.ignored.push(format!("{dotted}.{name}")),
                            other => {
                                bail!("option names must be strings, found {}", yaml_kind(other))
                            }
                        }
                    }
                }
                ("storage", "dbPath") => opts.dbpath = Some(yaml_string(value, &dotted)?),
                ("storage", "oplogMinRetentionHours") => {
                    opts.oplog_min_retention_hours = Some(yaml_f64(value, &dotted)?)
                }
                ("net", "tls") => {
                    let Yaml::Hash(tls) = value else {
                        bail!("{dotted}: expected a mapping, found {}", yaml_kind(value));
                    };
                    for (k, v) in tls {
                        let name = match k {
                            Yaml::String(s) => s.as_str(),
                            other => {
                                bail!("option names must be strings, found {}", yaml_kind(other))
                            }
                        };
                        let dotted = format!("net.tls.{name}");
                        match name {
                            "mode" => opts.tls_mode = Some(yaml_string(v, &dotted)?),
                            "certificateKeyFile" => {
                                opts.tls_certificate_key_file = Some(yaml_string(v, &dotted)?)
                            }
                            "CAFile" => opts.tls_ca_file = Some(yaml_string(v, &dotted)?),
                            "allowConnectionsWithoutCertificates" => {
                                opts.tls_allow_without_certificates = Some(match v {
                                    Yaml::Boolean(b) => *b,
                                    other => bail!(
                                        "{dotted}: expected a boolean, found {}",
                                        yaml_kind(other)
                                    ),
                                })
                            }
                            _ => opts.ignored.push(dotted),
                        }
                    }
                }
                ("security", "authorization") => {
                    opts.auth = Some(match yaml_string(value, &dotted)?.as_str() {
                        "enabled" => true,
                        "disabled" => false,
                        other => bail!("{dotted}: expected enabled or disabled, found {other}"),
                    })
                }
                ("systemLog", "destination") => {
                    opts.log_destination = Some(yaml_string(value, &dotted)?)
                }
                ("systemLog", "path") => opts.log_path = Some(yaml_string(value, &dotted)?),
                ("systemLog", "logAppend") => opts.log_append = Some(yaml_bool(value, &dotted)?),
                ("systemLog", "logRotate") => opts.log_rotate = Some(yaml_string(value, &dotted)?),
                ("systemLog", "quiet") => opts.quiet = Some(yaml_bool(value, &dotted)?),
                ("systemLog", "verbosity") => {
                    let n = yaml_int(value, &dotted)?;
                    opts.verbosity = Some(
                        u8::try_from(n)
                            .ok()
                            .filter(|n| *n <= 5)
                            .ok_or_else(|| anyhow!("{dotted}: {n} is out of range (0-5)"))?,
                    );
                }
                ("processManagement", "fork") => opts.fork = Some(yaml_bool(value, &dotted)?),
                ("processManagement", "pidFilePath") => {
                    opts.pid_file = Some(yaml_string(value, &dotted)?)
                }
                ("replication", "replSetName") => {
                    opts.repl_set = Some(yaml_string(value, &dotted)?)
                }
                ("replication", "oplogSizeMB") => {
                    let n = yaml_int(value, &dotted)?;
                    opts.oplog_size_mb = Some(
                        u64::try_from(n)
                            .ok()
                            .filter(|n| *n > 0)
                            .ok_or_else(|| anyhow!("{dotted}: {n} must be greater than 0"))?,
                    );
                }
                ("setParameter", name) => {
                    let v = yaml_scalar_string(value).ok_or_else(|| {
                        anyhow!(
                            "{dotted}: expected a scalar value, found {}",
                            yaml_kind(value)
                        )
                    })?;
                    opts.set_parameters.push((name.to_owned(), v));
                }
                _ => opts.ignored.push(dotted),
            }
        }
    }
    Ok(opts)
}

/// Creates the data directory if it is missing (like `mkdir -p`), and checks it is a directory.
pub fn prepare_dbpath(dbpath: &Path) -> Result<()> {
    std::fs::create_dir_all(dbpath)
        .with_context(|| format!("creating --dbpath {}", dbpath.display()))?;
    if !dbpath.is_dir() {
        bail!("--dbpath {} is not a directory", dbpath.display());
    }
    Ok(())
}

/// `eddy serve`, start to exit: settings, `--fork`, logging, pid file, the server.
pub fn main(mut args: ServeArgs, argv: Vec<String>, verbose: u8, quiet: bool) -> ExitCode {
    let arg0 = argv.first().cloned().unwrap_or_else(|| "eddy".to_owned());
    args.quiet = quiet;
    args.verbose = verbose;
    let settings = match resolve(&args, argv) {
        Ok(s) => s,
        Err(e) => {
            if let Some(bad) = e.downcast_ref::<BadOptions>() {
                eprintln!("BadValue: {bad}");
                eprintln!("try '{arg0} serve --help' for more information");
                return ExitCode::from(EXIT_BAD_OPTIONS);
            }
            eprintln!("eddy: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let forked_child = daemon::is_forked_child();
    if settings.fork && !forked_child {
        return daemon::run_parent();
    }
    if forked_child {
        if let Err(e) = daemon::detach() {
            eprintln!("eddy: {e:#}");
            return ExitCode::FAILURE;
        }
    }
    // The log file is opened (and an old one renamed) by the process that will write it.
    let destination = match &settings.log.path {
        None => Destination::Stderr,
        Some(path) => match LogFile::open(path, settings.log.append, settings.log.rotate) {
            Ok(file) => Destination::File(Arc::new(file)),
            Err(e) => {
                eprintln!("eddy: Error during global initialization: {e:#}");
                return ExitCode::FAILURE;
            }
        },
    };
    let to_file = matches!(destination, Destination::File(_));
    logging::init(
        logging::default_filter(settings.log.verbosity, settings.log.quiet),
        destination.clone(),
        settings.log.format,
    );
    // Errors are logged; with a log file they are also shown on the terminal (a forked
    // child's stderr is /dev/null).
    let fail = |code: u8, e: &anyhow::Error| {
        if to_file {
            eprintln!("eddy: {e:#}");
        }
        ExitCode::from(code)
    };
    if let Some(path) = &settings.pid_file {
        if let Err(e) = std::fs::write(path, format!("{}\n", std::process::id())) {
            let e = anyhow!("Cannot write pid file to {}: {e}", path.display());
            tracing::error!(error = %e, "Cannot write pid file");
            return fail(1, &e);
        }
    }
    let log_file = match destination {
        Destination::File(file) => Some(file),
        Destination::Stderr => None,
    };
    let result = crate::block_on(move |shutdown| run(settings, shutdown, log_file, forked_child));
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            if e.downcast_ref::<eddy_server::ServeError>()
                .is_some_and(|s| matches!(s, eddy_server::ServeError::Bind { .. }))
            {
                tracing::error!(id = 20568, error = %format!("{e:#}"), "Error setting up listener");
                return fail(EXIT_NET_ERROR, &e);
            }
            tracing::error!(id = 20574, error = %format!("{e:#}"), "Error during global initialization");
            if !to_file {
                eprintln!("eddy: {e:#}");
            }
            fail(1, &e)
        }
    }
}

/// Runs the server until SIGINT/SIGTERM (or a `shutdown` command); returns the exit code.
/// `ready` (a `--fork` child): tell the waiting parent once the listeners are bound.
async fn run(
    mut settings: ServeSettings,
    shutdown: Shutdown,
    log_file: Option<Arc<LogFile>>,
    ready: bool,
) -> Result<i32> {
    for opt in &settings.ignored {
        tracing::warn!(option = %opt, "config file option is not supported by Eddy and is ignored");
    }
    watch_log_rotation(log_file)?;
    prepare_dbpath(&settings.dbpath)?;
    settings.max_incoming_connections = fit_to_open_files_limit(settings.max_incoming_connections);
    let beyond_loopback: Vec<&String> = settings
        .bind_ip
        .iter()
        .filter(|h| !is_loopback(h))
        .collect();
    if !settings.auth && !beyond_loopback.is_empty() {
        tracing::warn!(
            bind_ip = ?beyond_loopback,
            "Access control is not enabled and the server listens beyond loopback: anyone who can reach the port can read and write all data. Start with --auth (and create users) to require authentication"
        );
    }
    tracing::info!(
        id = 4615611,
        pid = std::process::id(),
        port = settings.port,
        dbPath = %settings.dbpath.display(),
        bindIp = %settings.bind_ip.join(","),
        replSet = %settings.repl_set,
        "MongoDB starting"
    );
    server_adapter::serve(settings, shutdown, ready).await?;
    tracing::info!(id = 20565, "Now exiting");
    tracing::info!(id = 23138, exitCode = 0, "Shutting down");
    Ok(0)
}

/// SIGUSR1 rotates the `--logpath` file, as in mongod (`--logRotate rename|reopen`). Without a
/// log file it is acknowledged and ignored (its default action would end the process).
fn watch_log_rotation(log_file: Option<Arc<LogFile>>) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut usr1 = signal(SignalKind::user_defined1()).context("installing the SIGUSR1 handler")?;
    tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            let Some(file) = &log_file else {
                tracing::info!("SIGUSR1: no log file to rotate (logging to stderr)");
                continue;
            };
            tracing::info!("Log rotation initiated");
            match file.rotate() {
                Ok(Some(old)) => tracing::info!(
                    oldLogPath = %old.display(),
                    newLogPath = %file.path().display(),
                    "Log rotated"
                ),
                Ok(None) => tracing::info!(path = %file.path().display(), "Log file reopened"),
                Err(e) => tracing::error!(error = %format!("{e:#}"), "Failed to rotate the log"),
            }
        }
    });
    Ok(())
}

/// Raises the soft open-files limit to the hard one (every connection is a file), then,
/// as mongod does, caps the connections at 80% of it, saying so in the log when that
/// lowers the limit asked for.
fn fit_to_open_files_limit(max_conns: u32) -> u32 {
    let (soft, _) = crate::limits::raise_open_files_limit();
    let supported = u32::try_from(soft.saturating_mul(8) / 10).unwrap_or(u32::MAX);
    if supported >= max_conns {
        tracing::info!(open_files = soft, max_conns, "open-files limit");
        return max_conns;
    }
    if max_conns == DEFAULT_MAX_CONNS {
        tracing::info!(
            open_files = soft,
            max_conns = supported,
            "connections capped at 80% of the open-files limit"
        );
    } else {
        tracing::warn!(
            asked = max_conns,
            max_conns = supported,
            open_files = soft,
            "--maxConns too high: connections capped at 80% of the open-files limit"
        );
    }
    supported
}

/// Whether a `--bind_ip` entry is a loopback address.
fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The seam to `eddy-server`. Kept in one place so that the mapping from command-line
/// settings to the server's configuration type is the only code that knows both.
mod server_adapter {
    use super::ServeSettings;
    use crate::cli::signal::Shutdown;
    use anyhow::Result;
    use eddy_engine::EngineOptions;
    use eddy_server::{Server, ServerConfig};

    pub(super) async fn serve(
        settings: ServeSettings,
        mut shutdown: Shutdown,
        ready: bool,
    ) -> Result<()> {
        let tls = settings.tls.is_some();
        let config = ServerConfig {
            bind: settings.bind_ip.clone(),
            port: settings.port,
            repl_set: settings.repl_set.clone(),
            enable_test_commands: settings.enable_test_commands,
            set_parameters: settings.set_parameters.clone(),
            argv: settings.argv.clone(),
            parsed: settings.parsed.clone(),
            max_incoming_connections: settings.max_incoming_connections,
            cursor_timeout: settings.cursor_timeout,
            auth: settings.auth,
            tls: settings.tls.clone(),
            http_port: settings.http_port,
            compressors: settings.compressors,
        };
        let mut engine = EngineOptions::new(settings.dbpath.clone());
        engine.oplog_size_mb = settings.oplog_size_mb;
        engine.oplog_min_retention_hours = settings.oplog_min_retention_hours;
        let server = Server::bind(config, engine).await?;
        tracing::info!(
            id = 23016,
            port = settings.port,
            ssl = if tls { "on" } else { "off" },
            replSet = %settings.repl_set,
            "Waiting for connections"
        );
        if ready {
            if let Err(e) = crate::cli::daemon::signal_ready() {
                tracing::warn!(error = %format!("{e:#}"), "could not tell the --fork parent that the server is ready");
            }
        }
        server.run(async move { shutdown.wait().await }).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: ServeArgs,
    }

    fn args(list: &[&str]) -> ServeArgs {
        let mut v = vec!["eddy"];
        v.extend_from_slice(list);
        T::try_parse_from(v).expect("valid flags").a
    }

    fn argv(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults() {
        let s = resolve_with(&args(&[]), None, argv(&["eddy", "serve"])).expect("ok");
        assert_eq!(s.port, 27017);
        assert_eq!(s.bind_ip, vec!["127.0.0.1"]);
        assert_eq!(s.dbpath, PathBuf::from("./eddy-data"));
        assert_eq!(s.repl_set, "rs0");
        assert!(!s.enable_test_commands);
        assert_eq!(s.oplog_size_mb, 1024);
        assert_eq!(s.oplog_min_retention_hours, 0.0);
        assert_eq!(s.max_incoming_connections, 1_000_000);
        assert_eq!(s.cursor_timeout, Duration::from_secs(600));
        assert_eq!(s.parsed, Document::new());
        assert_eq!(s.argv, vec!["eddy", "serve"]);
    }

    #[test]
    fn mongod_flag_names_and_parsed_shape() {
        let a = args(&[
            "--port",
            "27018",
            "--bind_ip",
            "127.0.0.1,localhost",
            "--dbpath",
            "/tmp/x",
            "--replSet",
            "test-change-streams",
            "--setParameter",
            "enableTestCommands=1",
            "--setParameter",
            "cursorTimeoutMillis=1000",
            "--setParameter",
            "someFlag=true",
            "--oplogSize",
            "50",
            "--oplogMinRetentionHours",
            "1.5",
            "--maxConns",
            "10",
        ]);
        let s = resolve_with(&a, None, vec![]).expect("ok");
        assert_eq!(s.port, 27018);
        assert_eq!(s.bind_ip, vec!["127.0.0.1", "localhost"]);
        assert_eq!(s.repl_set, "test-change-streams");
        assert!(s.enable_test_commands);
        assert_eq!(s.cursor_timeout, Duration::from_secs(1));
        assert_eq!(
            s.set_parameters,
            doc! {"cursorTimeoutMillis": 1000_i64, "someFlag": true}
        );
        assert_eq!(s.oplog_size_mb, 50);
        assert_eq!(s.oplog_min_retention_hours, 1.5);
        assert_eq!(s.max_incoming_connections, 10);
        assert_eq!(
            s.parsed,
            doc! {
                "net": {"bindIp": "127.0.0.1,localhost", "maxIncomingConnections": 10, "port": 27018},
                "replication": {"oplogSizeMB": 50, "replSet": "test-change-streams"},
                "setParameter": {"cursorTimeoutMillis": "1000", "enableTestCommands": "1", "someFlag": "true"},
                "storage": {"dbPath": "/tmp/x", "oplogMinRetentionHours": 1.5},
            }
        );
    }

    const CONF: &str = "\
# mongod.conf, as shipped by distributions
storage:
  dbPath: /var/lib/eddy
  oplogMinRetentionHours: 2
systemLog:
  destination: file
  path: /var/log/mongodb/mongod.log
  timeStampFormat: iso8601-utc
net:
  port: 27019
  bindIp: 127.0.0.1,::1
  maxIncomingConnections: 100
replication:
  replSetName: fromfile
  oplogSizeMB: 2048
setParameter:
  enableTestCommands: 1
  cursorTimeoutMillis: 5000
";

    #[test]
    fn config_file_values() {
        let s = resolve_with(
            &args(&[]),
            Some((Path::new("/etc/eddy.conf"), CONF)),
            vec![],
        )
        .expect("ok");
        assert_eq!(s.port, 27019);
        assert_eq!(s.bind_ip, vec!["127.0.0.1", "::1"]);
        assert_eq!(s.dbpath, PathBuf::from("/var/lib/eddy"));
        assert_eq!(s.repl_set, "fromfile");
        assert_eq!(s.oplog_size_mb, 2048);
        assert_eq!(s.oplog_min_retention_hours, 2.0);
        assert_eq!(s.max_incoming_connections, 100);
        assert!(s.enable_test_commands);
        assert_eq!(s.cursor_timeout, Duration::from_secs(5));
        assert_eq!(s.config_file, Some(PathBuf::from("/etc/eddy.conf")));
        assert_eq!(
            s.parsed,
            doc! {
                "config": "/etc/eddy.conf",
                "net": {"bindIp": "127.0.0.1,::1", "maxIncomingConnections": 100, "port": 27019},
                "replication": {"oplogSizeMB": 2048, "replSetName": "fromfile"},
                "setParameter": {"cursorTimeoutMillis": "5000", "enableTestCommands": "1"},
                "storage": {"dbPath": "/var/lib/eddy", "oplogMinRetentionHours": 2.0},
                "systemLog": {"destination": "file", "path": "/var/log/mongodb/mongod.log"},
            }
        );
        assert_eq!(
            s.log.path,
            Some(PathBuf::from("/var/log/mongodb/mongod.log"))
        );
        assert_eq!(s.log.format, LogFormat::Json);
        assert_eq!(s.ignored, vec!["systemLog.timeStampFormat"]);
    }

    #[test]
    fn command_line_overrides_config_file() {
        let a = args(&[
            "--port",
            "30000",
            "--replSet",
            "cli",
            "--setParameter",
            "enableTestCommands=0",
            "--dbpath",
            "/tmp/cli",
        ]);
        let s = resolve_with(&a, Some((Path::new("c.yaml"), CONF)), vec![]).expect("ok");
        assert_eq!(s.port, 30000);
        assert_eq!(s.repl_set, "cli");
        assert!(!s.enable_test_commands);
        assert_eq!(s.dbpath, PathBuf::from("/tmp/cli"));
        // Not overridden: still from the file.
        assert_eq!(s.oplog_size_mb, 2048);
        assert_eq!(s.bind_ip, vec!["127.0.0.1", "::1"]);
        let net = s.parsed.get_document("net").expect("net");
        assert_eq!(net.get_i32("port").ok(), Some(30000));
        let sp = s.parsed.get_document("setParameter").expect("sp");
        assert_eq!(sp.get_str("enableTestCommands").ok(), Some("0"));
    }

    #[test]
    fn config_errors_are_clear() {
        let cases: &[(&str, &str)] = &[
            (
                "net:\n  port: [1]\n",
                "net.port: expected an integer, found a list",
            ),
            ("net:\n  port: 70000\n", "net.port: 70000 is out of range"),
            (
                "net:\n  port: abc\n",
                "net.port: expected an integer, found \"abc\"",
            ),
            (
                "- a\n- b\n",
                "the top level must be a mapping, found a list",
            ),
            ("net: {port: 1\n", "invalid YAML"),
            (
                "replication:\n  oplogSizeMB: 0\n",
                "replication.oplogSizeMB: 0 must be greater than 0",
            ),
            (
                "storage:\n  dbPath: 5\n",
                "storage.dbPath: expected a string, found an integer",
            ),
            (
                "setParameter:\n  x: {a: 1}\n",
                "setParameter.x: expected a scalar value",
            ),
        ];
        for (text, want) in cases {
            let err = resolve_with(&args(&[]), Some((Path::new("bad.conf"), text)), vec![])
                .expect_err(text);
            let msg = format!("{err:#}");
            assert!(msg.contains("error in config file bad.conf"), "{msg}");
            assert!(msg.contains(want), "{text:?}: {msg}");
        }
    }

    #[test]
    fn auth_from_the_flag_or_the_config_file() {
        let off = resolve_with(&args(&[]), None, vec![]).expect("ok");
        assert!(!off.auth);
        let flag = resolve_with(&args(&["--auth"]), None, vec![]).expect("ok");
        assert!(flag.auth);
        assert_eq!(
            flag.parsed
                .get_document("security")
                .and_then(|s| s.get_str("authorization"))
                .ok(),
            Some("enabled")
        );
        let file = resolve_with(
            &args(&[]),
            Some((Path::new("c.yaml"), "security:\n  authorization: enabled\n")),
            vec![],
        )
        .expect("ok");
        assert!(file.auth);
        let err = resolve_with(
            &args(&[]),
            Some((Path::new("c.yaml"), "security:\n  authorization: maybe\n")),
            vec![],
        )
        .expect_err("bad value");
        assert!(format!("{err:#}").contains("expected enabled or disabled"));
        assert!(is_loopback("127.0.0.1") && is_loopback("::1") && is_loopback("localhost"));
        assert!(!is_loopback("0.0.0.0") && !is_loopback("10.0.0.1"));
    }

    #[test]
    fn compressors_from_the_flag_or_the_config_file() {
        use eddy_wire::Compressor::{Noop, Snappy, Zlib, Zstd};
        let default = resolve_with(&args(&[]), None, vec![]).expect("ok");
        assert_eq!(
            default.compressors.iter().collect::<Vec<_>>(),
            vec![Snappy, Zlib, Zstd]
        );
        assert!(default.parsed.get("net").is_none());
        let flag = resolve_with(
            &args(&["--networkMessageCompressors", "zstd,noop"]),
            None,
            vec![],
        )
        .expect("ok");
        assert_eq!(
            flag.compressors.iter().collect::<Vec<_>>(),
            vec![Noop, Zstd]
        );
        assert_eq!(
            flag.parsed
                .get_document("net")
                .and_then(|n| n.get_document("compression"))
                .and_then(|c| c.get_str("compressors"))
                .ok(),
            Some("zstd,noop")
        );
        let off = resolve_with(
            &args(&["--networkMessageCompressors", "disabled"]),
            None,
            vec![],
        )
        .expect("ok");
        assert!(off.compressors.is_empty());
        let file = resolve_with(
            &args(&[]),
            Some((
                Path::new("c.yaml"),
                "net:\n  compression:\n    compressors: zlib\n",
            )),
            vec![],
        )
        .expect("ok");
        assert_eq!(file.compressors.iter().collect::<Vec<_>>(), vec![Zlib]);
        // The flag wins over the file.
        let both = resolve_with(
            &args(&["--networkMessageCompressors", "snappy"]),
            Some((
                Path::new("c.yaml"),
                "net:\n  compression:\n    compressors: zlib\n",
            )),
            vec![],
        )
        .expect("ok");
        assert_eq!(both.compressors.iter().collect::<Vec<_>>(), vec![Snappy]);
        let err = resolve_with(
            &args(&["--networkMessageCompressors", "snappy,lz4"]),
            None,
            vec![],
        )
        .expect_err("unknown");
        assert_eq!(
            format!("{err:#}"),
            "Invalid network message compressor specified in configuration: lz4"
        );
    }

    #[test]
    fn tls_from_the_flags_or_the_config_file() {
        let on = resolve_with(
            &args(&[
                "--tlsMode",
                "requireTLS",
                "--tlsCertificateKeyFile",
                "s.pem",
            ]),
            None,
            vec![],
        )
        .expect("ok");
        let tls = on.tls.expect("tls");
        assert_eq!(tls.mode, eddy_server::tls::TlsMode::RequireTls);
        assert_eq!(tls.certificate_key_file, PathBuf::from("s.pem"));
        assert_eq!(
            on.parsed
                .get_document("net")
                .and_then(|n| n.get_document("tls"))
                .and_then(|t| t.get_str("mode"))
                .ok(),
            Some("requireTLS")
        );
        let file = resolve_with(
            &args(&[]),
            Some((
                Path::new("c.yaml"),
                "net:\n  tls:\n    mode: preferTLS\n    certificateKeyFile: k.pem\n    CAFile: ca.pem\n    allowConnectionsWithoutCertificates: true\n",
            )),
            vec![],
        )
        .expect("ok")
        .tls
        .expect("tls");
        assert_eq!(file.mode, eddy_server::tls::TlsMode::PreferTls);
        assert_eq!(file.ca_file, Some(PathBuf::from("ca.pem")));
        assert!(file.allow_connections_without_certificates);
        for (flags, want) in [
            (
                &["--tlsMode", "requireTLS"][..],
                "needs --tlsCertificateKeyFile",
            ),
            (
                &["--tlsMode", "sslOnly", "--tlsCertificateKeyFile", "k"][..],
                "expected disabled",
            ),
            (&["--tlsCertificateKeyFile", "k"][..], "needs --tlsMode"),
        ] {
            let err = resolve_with(&args(flags), None, vec![]).expect_err(want);
            assert!(format!("{err:#}").contains(want), "{flags:?}: {err:#}");
        }
        assert!(resolve_with(&args(&[]), None, vec![])
            .expect("ok")
            .tls
            .is_none());
    }

    #[test]
    fn unsupported_mongod_options_are_ignored_not_fatal() {
        let o = parse_config(CONF).expect("ok");
        assert_eq!(o.ignored, vec!["systemLog.timeStampFormat"]);
        assert_eq!(
            parse_config("").expect("empty file"),
            FileOptions::default()
        );
    }

    #[test]
    fn bad_flags() {
        let cases: &[(&[&str], &str)] = &[
            (&["--setParameter", "novalue"], "Illegal option assignment"),
            (&["--setParameter", "=1"], "empty parameter name"),
            (
                &["--setParameter", "enableTestCommands=yes"],
                "is not a boolean",
            ),
            (
                &["--setParameter", "cursorTimeoutMillis=soon"],
                "is not an integer",
            ),
            (&["--port", "0"], "out of range"),
            (&["--bind_ip", ","], "at least one address"),
            (&["--replSet", "a/b"], "bad --replSet"),
            (&["--oplogSize", "0"], "greater than 0"),
            (&["--oplogMinRetentionHours", "-1"], "non-negative"),
            (&["--maxConns", "0"], "greater than 0"),
        ];
        for (flags, want) in cases {
            let err = resolve_with(&args(flags), None, vec![]).expect_err(want);
            assert!(format!("{err:#}").contains(want), "{flags:?}: {err:#}");
        }
    }

    #[test]
    fn process_flags() {
        let s = resolve_with(&args(&[]), None, vec![]).expect("ok");
        assert_eq!(
            s.log,
            LogSettings {
                path: None,
                append: false,
                rotate: LogRotate::Rename,
                format: LogFormat::Text,
                quiet: false,
                verbosity: 0,
            }
        );
        assert!(!s.fork && s.pid_file.is_none());
        let s = resolve_with(
            &args(&[
                "--fork",
                "--logpath",
                "mongodb.log",
                "--logappend",
                "--logRotate",
                "reopen",
                "--pidfilepath",
                "e.pid",
            ]),
            None,
            vec![],
        )
        .expect("ok");
        assert!(s.fork);
        assert_eq!(s.log.path, Some(PathBuf::from("mongodb.log")));
        assert!(s.log.append);
        assert_eq!(s.log.rotate, LogRotate::Reopen);
        assert_eq!(s.log.format, LogFormat::Json);
        assert_eq!(s.pid_file, Some(PathBuf::from("e.pid")));
        assert_eq!(
            s.parsed,
            doc! {
                "processManagement": {"fork": true, "pidFilePath": "e.pid"},
                "systemLog": {"destination": "file", "logAppend": true, "logRotate": "reopen", "path": "mongodb.log"},
            }
        );
        let text = resolve_with(
            &args(&["--logpath", "x.log", "--logFormat", "text"]),
            None,
            vec![],
        )
        .expect("ok");
        assert_eq!(text.log.format, LogFormat::Text);
        let mut quiet = args(&[]);
        quiet.quiet = true;
        let q = resolve_with(&quiet, None, vec![]).expect("ok");
        assert!(q.log.quiet);
        assert_eq!(q.parsed, doc! {"systemLog": {"quiet": true}});
        let file = resolve_with(
            &args(&["--port", "1"]),
            Some((
                Path::new("c.yaml"),
                "systemLog:\n  destination: file\n  path: /l/m.log\n  logAppend: true\n  quiet: true\nprocessManagement:\n  fork: true\n  pidFilePath: /r/m.pid\n",
            )),
            vec![],
        )
        .expect("ok");
        assert!(file.fork && file.log.append && file.log.quiet);
        let mut vv = args(&[]);
        vv.verbose = 2;
        let v = resolve_with(&vv, None, vec![]).expect("ok");
        assert_eq!(v.log.verbosity, 2);
        assert_eq!(v.parsed, doc! {"systemLog": {"verbosity": 2}});
        let v = resolve_with(
            &args(&[]),
            Some((Path::new("c.yaml"), "systemLog:\n  verbosity: 1\n")),
            vec![],
        )
        .expect("ok");
        assert_eq!(v.log.verbosity, 1);
        let err = resolve_with(
            &args(&[]),
            Some((Path::new("c.yaml"), "systemLog:\n  verbosity: 9\n")),
            vec![],
        )
        .expect_err("out of range");
        assert!(format!("{err:#}").contains("systemLog.verbosity: 9 is out of range"));
        assert_eq!(file.pid_file, Some(PathBuf::from("/r/m.pid")));
        // The command line's --logpath replaces the file's.
        let over = resolve_with(
            &args(&["--logpath", "cli.log"]),
            Some((
                Path::new("c.yaml"),
                "systemLog:\n  destination: file\n  path: /l/m.log\n",
            )),
            vec![],
        )
        .expect("ok");
        assert_eq!(over.log.path, Some(PathBuf::from("cli.log")));
    }

    #[test]
    fn process_flag_errors_are_mongods() {
        let cases: &[(&[&str], Option<&str>, &str)] = &[
            (
                &["--fork"],
                None,
                "--fork has to be used with --logpath or --syslog",
            ),
            (
                &[],
                Some("processManagement:\n  fork: true\n"),
                "--fork has to be used with --logpath or --syslog",
            ),
            (
                &["--logpath", "l", "--syslog"],
                None,
                "Cant use both a logpath and syslog ",
            ),
            (&["--syslog"], None, "is not supported by Eddy"),
            (
                &["--logpath", "l", "--logRotate", "reopen"],
                None,
                "logAppend must equal true if logRotate is set to reopen",
            ),
            (
                &["--logpath", "l", "--logRotate", "daily"],
                None,
                "unsupported value for logRotate daily",
            ),
            (&["--logFormat", "xml"], None, "expected text or json"),
            (
                &[],
                Some("systemLog:\n  destination: file\n"),
                "systemLog.path is required if systemLog.destination is to a file",
            ),
            (
                &[],
                Some("systemLog:\n  path: /x\n"),
                "Can only use systemLog.path if systemLog.destination is to a file",
            ),
            (
                &[],
                Some("systemLog:\n  destination: syslog\n  path: /x\n"),
                "Can only use systemLog.path if systemLog.destination is to a file",
            ),
            (
                &[],
                Some("systemLog:\n  destination: tape\n"),
                "Bad value for systemLog.destination: tape.  Supported targets are: (syslog|file)",
            ),
        ];
        for (flags, file, want) in cases {
            let err = resolve_with(&args(flags), file.map(|t| (Path::new("c.yaml"), t)), vec![])
                .expect_err(want);
            let bad = err.downcast_ref::<BadOptions>().expect("a BadOptions");
            assert!(bad.0.contains(want), "{flags:?} {file:?}: {bad}");
        }
        let err = resolve_with(
            &args(&[]),
            Some((Path::new("c.yaml"), "systemLog:\n  logAppend: yes please\n")),
            vec![],
        )
        .expect_err("not a boolean");
        assert!(format!("{err:#}").contains("systemLog.logAppend: expected a boolean"));
    }

    #[test]
    fn typed_parameters() {
        assert_eq!(typed_parameter("5"), Bson::Int32(5));
        assert_eq!(typed_parameter("5000000000"), Bson::Int64(5_000_000_000));
        assert_eq!(typed_parameter("0.5"), Bson::Double(0.5));
        assert_eq!(typed_parameter("false"), Bson::Boolean(false));
        assert_eq!(typed_parameter("abc"), Bson::String("abc".into()));
    }

    #[test]
    fn dbpath_is_created() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a/b/c");
        prepare_dbpath(&p).expect("create");
        assert!(p.is_dir());
        prepare_dbpath(&p).expect("exists already");
        let f = dir.path().join("file");
        std::fs::write(&f, "x").expect("write");
        assert!(prepare_dbpath(&f).is_err());
    }
}
