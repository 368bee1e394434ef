//! Log output: where it goes (stderr or mongod's `--logpath` file), in which format (human text,
//! or mongod 7.0's structured JSON lines), and log rotation (`--logRotate rename|reopen`, SIGUSR1).
//!
//! Text is tracing-subscriber's own format; colour codes only when the destination is a terminal,
//! so a redirected or piped log is plain text. JSON lines carry mongod's keys in mongod's order and
//! with mongod's column padding (`{"t":{"$date":..},"s":"I",  "c":"NETWORK",  "id":23015,   "ctx":
//! "listener","msg":"Listening on","attr":{..}}`), built from tracing events:
//! - `s`: the level: ERROR `E`, WARN `W`, INFO `I`, DEBUG `D1`, TRACE `D2`;
//! - `c`: the component, from the event's target (module path), see [`component`];
//! - `id`: the event's integer `id` field where Eddy logs a message that mongod also logs (with
//!   mongod's id), else 0;
//! - `ctx`: `conn<N>` for an event with a `connection` field (mongod's connection threads),
//!   else the thread's name;
//! - `msg`: the event's message; `attr`: its other fields, typed (integers, booleans, strings).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// The shape of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// tracing-subscriber's human-readable lines.
    Text,
    /// mongod 7.0's structured JSON, one object per line.
    Json,
}

impl LogFormat {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "text" => Some(Self::Text),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// What rotation does to the log file (mongod's `systemLog.logRotate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogRotate {
    /// Rename the file to `<path>.<UTC time>` and start a new one (mongod's default).
    #[default]
    Rename,
    /// Close and reopen the same path: an outside tool (logrotate) has renamed it.
    Reopen,
}

impl LogRotate {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "rename" => Some(Self::Rename),
            "reopen" => Some(Self::Reopen),
            _ => None,
        }
    }
}

/// The `--logpath` file. Every log line is one `write` under the lock, so rotation never
/// splits a line between two files.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    rotate: LogRotate,
    file: Mutex<File>,
}

impl LogFile {
    /// Opens the log file as mongod does at start-up: an existing file is renamed to
    /// `<path>.<UTC time>` unless `append`, in which case new lines go after the old ones.
    pub fn open(path: &Path, append: bool, rotate: LogRotate) -> Result<Self> {
        if path.is_dir() {
            bail!(
                "FileNotOpen: logpath \"{}\" should name a file, not a directory.",
                path.display()
            );
        }
        if !append && path.is_file() {
            let target = rename_target(path, SystemTime::now());
            if let Err(e) = std::fs::rename(path, &target) {
                bail!(
                    "FileRenameFailed: Could not rename preexisting log file \"{}\" to \"{}\"; run with --logappend or manually remove file: {e}",
                    path.display(),
                    target.display()
                );
            }
        }
        let file = open_append(path)?;
        Ok(Self {
            path: path.to_owned(),
            rotate,
            file: Mutex::new(file),
        })
    }

    /// Rotates the log (SIGUSR1): returns the name the old file was given (`rename`), or
    /// `None` for `reopen`.
    pub fn rotate(&self) -> Result<Option<PathBuf>> {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let renamed = match self.rotate {
            LogRotate::Rename => {
                let mut target = rename_target(&self.path, SystemTime::now());
                // Two rotations within a second: keep both old files.
                let mut n = 1;
                while target.exists() {
                    target = PathBuf::from(format!(
                        "{}.{n}",
                        rename_target(&self.path, SystemTime::now()).display()
                    ));
                    n += 1;
                }
                std::fs::rename(&self.path, &target).map_err(|e| {
                    anyhow::anyhow!(
                        "Failed to rename {} to {}: {e}",
                        self.path.display(),
                        target.display()
                    )
                })?;
                Some(target)
            }
            LogRotate::Reopen => None,
        };
        *file = open_append(&self.path)?;
        Ok(renamed)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| {
            anyhow::anyhow!(
                "FileNotOpen: Can't initialize rotatable log file :: caused by :: Failed to open {}: {e}",
                path.display()
            )
        })
}

impl Write for &LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.lock().unwrap_or_else(|p| p.into_inner()).flush()
    }
}

/// `<path>.<YYYY>-<mm>-<DD>T<HH>-<MM>-<SS>` (UTC), mongod's name for a rotated log.
fn rename_target(path: &Path, now: SystemTime) -> PathBuf {
    let c = Civil::from(now);
    PathBuf::from(format!(
        "{}.{:04}-{:02}-{:02}T{:02}-{:02}-{:02}",
        path.display(),
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second
    ))
}

/// A UTC calendar time, from the Unix clock (no time-zone database needed).
#[derive(Debug, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    millis: u32,
}

impl From<SystemTime> for Civil {
    fn from(t: SystemTime) -> Self {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs() as i64;
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        // Howard Hinnant's days-to-civil algorithm.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem % 3600 / 60,
            second: rem % 60,
            millis: since.subsec_millis(),
        }
    }
}

/// mongod's `iso8601-local` timestamp, in UTC: `2024-01-02T03:04:05.678+00:00`.
fn mongod_date(now: SystemTime) -> String {
    let c = Civil::from(now);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+00:00",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.millis
    )
}

/// mongod's log component for an event target (the Rust module path that logged it).
pub fn component(target: &str) -> &'static str {
    const TABLE: &[(&str, &str)] = &[
        ("eddy_server::commands::sasl", "ACCESS"),
        ("eddy_server::auth", "ACCESS"),
        ("eddy_server::commands", "COMMAND"),
        ("eddy_server::deliveries", "QUERY"),
        ("eddy_server::tls", "NETWORK"),
        ("eddy_server::connection", "NETWORK"),
        ("eddy_server", "NETWORK"),
        ("eddy_engine::write::ttl", "INDEX"),
        ("eddy_engine", "STORAGE"),
        ("eddy_storage", "STORAGE"),
        ("eddy", "CONTROL"),
    ];
    TABLE
        .iter()
        .find(|(prefix, _)| {
            target == *prefix
                || target
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with("::"))
        })
        .map_or("-", |(_, c)| c)
}

fn severity(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "E",
        Level::WARN => "W",
        Level::INFO => "I",
        Level::DEBUG => "D1",
        Level::TRACE => "D2",
    }
}

/// The event's fields, split into mongod's keys.
#[derive(Default)]
struct Fields {
    msg: String,
    id: Option<i64>,
    connection: Option<u64>,
    attr: Map<String, Value>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        self.attr.insert(field.name().to_owned(), value);
    }
}

impl Visit for Fields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        match field.name() {
            "id" => self.id = Some(value),
            "connection" => {
                self.connection = u64::try_from(value).ok();
                self.put(field, value.into());
            }
            _ => self.put(field, value.into()),
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "id" => self.id = i64::try_from(value).ok(),
            "connection" => {
                self.connection = Some(value);
                self.put(field, value.into());
            }
            _ => self.put(field, value.into()),
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.msg = value.to_owned();
        } else {
            self.put(field, value.into());
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.msg = text;
        } else {
            self.put(field, text.into());
        }
    }
}

/// Formats events as mongod 7.0's JSON log lines.
pub struct MongodJson;

impl MongodJson {
    /// One log line (without the newline) for an event's parts; separate from tracing for tests.
    fn line(
        date: &str,
        level: &Level,
        target: &str,
        thread: Option<&str>,
        fields: Fields,
    ) -> String {
        let s = severity(level);
        let c = component(target);
        let id = fields.id.unwrap_or(0);
        let ctx = match fields.connection {
            Some(n) => format!("conn{n}"),
            None => thread.unwrap_or("-").to_owned(),
        };
        let id_text = id.to_string();
        // mongod pads `"s":"I",` to `"s":"D1", `, the component (with its comma) to 9
        // characters and the id (with its comma) to 9, so the columns of a log file line up.
        let mut out = format!(
            "{{\"t\":{{\"$date\":\"{date}\"}},\"s\":\"{s}\",{:pad_s$}\"c\":\"{c}\",{:pad_c$}\"id\":{id_text},{:pad_id$}\"ctx\":{},\"msg\":{}",
            "",
            "",
            "",
            Value::String(ctx),
            Value::String(fields.msg),
            pad_s = 3usize.saturating_sub(s.len()),
            pad_c = 9usize.saturating_sub(c.len()),
            pad_id = 8usize.saturating_sub(id_text.len()),
        );
        if !fields.attr.is_empty() {
            out.push_str(",\"attr\":");
            out.push_str(&Value::Object(fields.attr).to_string());
        }
        out.push('}');
        out
    }
}

impl<S, N> FormatEvent<S, N> for MongodJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let thread = std::thread::current();
        let line = Self::line(
            &mongod_date(SystemTime::now()),
            meta.level(),
            meta.target(),
            thread.name(),
            fields,
        );
        writeln!(writer, "{line}")
    }
}

/// Where log lines go.
#[derive(Debug, Clone)]
pub enum Destination {
    Stderr,
    File(Arc<LogFile>),
}

/// Installs the global subscriber. `default_filter` applies unless `RUST_LOG` is set.
pub fn init(default_filter: &str, destination: Destination, format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // Errors only if a subscriber is already installed (tests): keep that one.
    let _ = match (destination, format) {
        (Destination::Stderr, LogFormat::Text) => builder
            .with_ansi(io::stderr().is_terminal())
            .with_writer(io::stderr)
            .try_init(),
        (Destination::Stderr, LogFormat::Json) => builder
            .event_format(MongodJson)
            .with_writer(io::stderr)
            .try_init(),
        (Destination::File(file), LogFormat::Text) => {
            builder.with_ansi(false).with_writer(file).try_init()
        }
        (Destination::File(file), LogFormat::Json) => builder
            .event_format(MongodJson)
            .with_writer(file)
            .try_init(),
    };
}

/// The default filter for `-v`/`--quiet`.
pub fn default_filter(verbose: u8, quiet: bool) -> &'static str {
    if quiet {
        "warn"
    } else {
        match verbose {
            0 => "info",
            1 => "debug",
            _ => "trace",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn civil_time() {
        let t = UNIX_EPOCH + Duration::from_millis(1_704_164_645_678); // 2024-01-02T03:04:05.678Z
        assert_eq!(mongod_date(t), "2024-01-02T03:04:05.678+00:00");
        assert_eq!(mongod_date(UNIX_EPOCH), "1970-01-01T00:00:00.000+00:00");
        // A leap day.
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29T00:00:00Z
        assert_eq!(mongod_date(leap), "2000-02-29T00:00:00.000+00:00");
        assert_eq!(
            rename_target(Path::new("/l/mongod.log"), t),
            PathBuf::from("/l/mongod.log.2024-01-02T03-04-05")
        );
    }

    #[test]
    fn components() {
        assert_eq!(component("eddy_server::connection"), "NETWORK");
        assert_eq!(component("eddy_server"), "NETWORK");
        assert_eq!(component("eddy_server::commands::sasl"), "ACCESS");
        assert_eq!(component("eddy_server::commands::admin"), "COMMAND");
        assert_eq!(component("eddy_engine::write::documents"), "STORAGE");
        assert_eq!(component("eddy::cli::serve"), "CONTROL");
        assert_eq!(component("eddy_serverx"), "-");
        assert_eq!(component("hyper"), "-");
    }

    #[test]
    fn json_lines_have_mongods_shape_and_padding() {
        let mut f = Fields {
            msg: "Listening on".into(),
            id: Some(23015),
            ..Fields::default()
        };
        f.attr.insert("address".into(), "127.0.0.1".into());
        let line = MongodJson::line(
            "2020-05-01T15:16:17.180+00:00",
            &Level::INFO,
            "eddy_server",
            Some("main"),
            f,
        );
        assert_eq!(
            line,
            r#"{"t":{"$date":"2020-05-01T15:16:17.180+00:00"},"s":"I",  "c":"NETWORK",  "id":23015,   "ctx":"main","msg":"Listening on","attr":{"address":"127.0.0.1"}}"#
        );
        let mut f = Fields {
            msg: "a \"quoted\"\nline".into(),
            connection: Some(7),
            ..Fields::default()
        };
        f.attr.insert("connection".into(), 7.into());
        let line = MongodJson::line("d", &Level::DEBUG, "x", None, f);
        assert_eq!(
            line,
            r#"{"t":{"$date":"d"},"s":"D1", "c":"-",        "id":0,       "ctx":"conn7","msg":"a \"quoted\"\nline","attr":{"connection":7}}"#
        );
        let v: Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(v["ctx"], "conn7");
    }

    #[test]
    fn log_file_renames_unless_appending_and_rotates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mongod.log");
        std::fs::write(&path, "old\n").expect("write");
        let log = LogFile::open(&path, true, LogRotate::Rename).expect("append");
        (&log).write_all(b"new\n").expect("write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "old\nnew\n");
        drop(log);

        let log = LogFile::open(&path, false, LogRotate::Rename).expect("rename");
        (&log).write_all(b"fresh\n").expect("write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "fresh\n");
        let names = |dir: &Path| {
            let mut v: Vec<String> = std::fs::read_dir(dir)
                .expect("ls")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(dir.path()).len(), 2);

        let old = log.rotate().expect("rotate").expect("renamed");
        assert_eq!(std::fs::read_to_string(&old).expect("read"), "fresh\n");
        (&log).write_all(b"after\n").expect("write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "after\n");
        // A second rotation in the same second keeps both files.
        let again = log.rotate().expect("rotate").expect("renamed");
        assert_ne!(again, old);
        assert_eq!(names(dir.path()).len(), 4);

        let reopen = LogFile::open(&path, true, LogRotate::Reopen).expect("open");
        std::fs::rename(&path, dir.path().join("moved")).expect("mv");
        assert_eq!(reopen.rotate().expect("reopen"), None);
        (&reopen).write_all(b"x\n").expect("write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "x\n");

        let err = LogFile::open(dir.path(), true, LogRotate::Rename).expect_err("a directory");
        assert!(format!("{err:#}").contains("should name a file, not a directory"));
    }
}
