//! Failpoints for driver test suites (`configureFailPoint`, test commands only).
//!
//! * `failCommand`: `{mode, data: {failCommands: [...], errorCode?, errorLabels?,
//!   closeConnection?, blockConnection?, blockTimeMS?, writeConcernError?, appName?}}`;
//! * `failGetMoreAfterCursorCheckout`: `{mode, data: {errorCode}}`; the error carries the
//!   `ResumableChangeStreamError` label when the code is a resumable one, as mongod adds it.
//!
//! * `maxTimeAlwaysTimeOut`: every command that sets `maxTimeMS` fails with 50
//!   MaxTimeMSExpired, as if its time limit had passed.
//! * `onPrimaryTransactionalWrite`: `{mode, data: {closeConnection?: bool (default
//!   true), failBeforeCommitExceptionCode?: n}}`, as mongod's: it fires once per
//!   statement of a retryable write about to run (a statement an earlier attempt ran
//!   is answered from the session record and does not count). With
//!   `failBeforeCommitExceptionCode` the statement fails with that code and writes
//!   nothing; with `closeConnection` the connection closes once the command is done,
//!   without a reply, whatever the statement did (see `crate::dispatch`).
//!
//! Modes: `"alwaysOn"`, `"off"`, `{times: n}`, `{skip: n}`, `{activationProbability: p}`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bson::{doc, Bson, Document};
use eddy_codes::{category, labels, ErrorCode, MongoError};

/// The failpoints Eddy knows.
pub const KNOWN: &[&str] = &[
    "failCommand",
    "failGetMoreAfterCursorCheckout",
    "maxTimeAlwaysTimeOut",
    "onPrimaryTransactionalWrite",
];

/// What `onPrimaryTransactionalWrite` does to one statement.
#[derive(Debug, Clone, PartialEq)]
pub struct TransactionalWriteFault {
    /// Close the connection once the command is done.
    pub close_connection: bool,
    /// Fail the statement, unwritten, with this code.
    pub fail_before_commit: Option<i32>,
}

#[derive(Debug, Clone, PartialEq)]
enum Mode {
    AlwaysOn,
    Times(i64),
    Skip(i64),
    Probability(f64),
}

#[derive(Debug, Clone)]
struct Point {
    mode: Mode,
    data: Document,
    /// How many times it fired (`configureFailPoint` answers the previous `count`).
    hits: i64,
}

/// What a failCommand failpoint does to a command.
#[derive(Debug, Clone, Default)]
pub struct Injected {
    /// Sleep this long first (`blockConnection` + `blockTimeMS`).
    pub block: Option<Duration>,
    /// Close the connection without answering.
    pub close_connection: bool,
    /// Answer with this error.
    pub error: Option<MongoError>,
    /// Run the command, then add this `writeConcernError` to the reply.
    pub write_concern_error: Option<Document>,
    /// The `errorLabels` to give the error or the `writeConcernError` reply (`None`:
    /// the labels mongod would add itself).
    pub labels: Option<Vec<String>>,
}

/// The active failpoints.
#[derive(Debug, Default)]
pub struct FailPoints {
    points: Mutex<HashMap<String, Point>>,
}

fn parse_mode(v: &Bson) -> Result<Option<Mode>, MongoError> {
    let bad = || {
        MongoError::bad_value(
            "'mode' must be one of 'off', 'alwaysOn', 'times', and 'activationProbability'",
        )
    };
    match v {
        Bson::String(s) if s == "off" => Ok(None),
        Bson::String(s) if s == "alwaysOn" => Ok(Some(Mode::AlwaysOn)),
        Bson::Document(d) => {
            if let Some(n) = d.get("times") {
                let n = crate::args::as_integer(n)
                    .ok_or_else(|| MongoError::type_mismatch("'times' must be a number"))?;
                if n < 0 {
                    return Err(MongoError::bad_value(
                        "'times' option to 'mode' must be positive",
                    ));
                }
                Ok((n > 0).then_some(Mode::Times(n)))
            } else if let Some(n) = d.get("skip") {
                let n = crate::args::as_integer(n)
                    .ok_or_else(|| MongoError::type_mismatch("'skip' must be a number"))?;
                Ok(Some(Mode::Skip(n.max(0))))
            } else if let Some(p) = d.get("activationProbability") {
                let p = eddy_query::util::number_as_f64(p).ok_or_else(bad)?;
                if !(0.0..=1.0).contains(&p) {
                    return Err(MongoError::bad_value(
                        "activationProbability must be between 0.0 and 1.0",
                    ));
                }
                Ok(Some(Mode::Probability(p)))
            } else {
                Err(bad())
            }
        }
        _ => Err(bad()),
    }
}

impl FailPoints {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Point>> {
        self.points.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `configureFailPoint`: returns the previous hit count.
    pub fn configure(
        &self,
        name: &str,
        mode: &Bson,
        data: Option<Document>,
    ) -> Result<i64, MongoError> {
        if !KNOWN.contains(&name) {
            return Err(MongoError::bad_value(format!(
                "Cannot find failpoint: {name}"
            )));
        }
        let mode = parse_mode(mode)?;
        let mut points = self.lock();
        let previous = points.get(name).map_or(0, |p| p.hits);
        match mode {
            None => {
                points.remove(name);
            }
            Some(mode) => {
                points.insert(
                    name.to_owned(),
                    Point {
                        mode,
                        data: data.unwrap_or_default(),
                        hits: 0,
                    },
                );
            }
        }
        Ok(previous)
    }

    /// Whether `name` fires now for a command accepted by `applies`; consumes one use.
    fn fire(&self, name: &str, applies: impl Fn(&Document) -> bool) -> Option<Document> {
        let mut points = self.lock();
        let point = points.get_mut(name)?;
        if !applies(&point.data) {
            return None;
        }
        let fires = match &mut point.mode {
            Mode::AlwaysOn => true,
            Mode::Times(n) => {
                *n -= 1;
                true
            }
            Mode::Skip(n) if *n > 0 => {
                *n -= 1;
                false
            }
            Mode::Skip(_) => true,
            Mode::Probability(p) => {
                (uuid::Uuid::new_v4().as_u128() % 1_000_000) as f64 / 1_000_000.0 < *p
            }
        };
        if !fires {
            return None;
        }
        point.hits += 1;
        let data = point.data.clone();
        if point.mode == Mode::Times(0) {
            points.remove(name);
        }
        Some(data)
    }

    /// What `failCommand` does to command `command` from a client named `app_name`.
    pub fn fail_command(
        &self,
        command: &str,
        app_name: Option<&str>,
        retryable_write: bool,
        transaction: Option<bool>,
    ) -> Option<Injected> {
        let data = self.fire("failCommand", |data| {
            let listed = data.get_array("failCommands").is_ok_and(|a| {
                a.iter()
                    .any(|c| c.as_str().is_some_and(|c| c.eq_ignore_ascii_case(command)))
            });
            let app_ok = match data.get_str("appName") {
                Ok(want) => app_name == Some(want),
                Err(_) => true,
            };
            listed && app_ok
        })?;
        let mut out = Injected::default();
        if data.get_bool("blockConnection").unwrap_or(false) {
            let ms = data
                .get("blockTimeMS")
                .and_then(crate::args::as_integer)
                .unwrap_or(0);
            out.block = Some(Duration::from_millis(ms.max(0) as u64));
        }
        out.close_connection = data.get_bool("closeConnection").unwrap_or(false);
        out.labels = data.get_array("errorLabels").ok().map(|given| {
            given
                .iter()
                .filter_map(Bson::as_str)
                .map(str::to_owned)
                .collect()
        });
        if let Some(code) = data.get("errorCode").and_then(crate::args::as_integer) {
            let code = code as i32;
            let mut err = MongoError::location(code, "Failing command via 'failCommand' failpoint");
            match &out.labels {
                Some(given) => {
                    for l in given {
                        err = err.with_label(l);
                    }
                }
                None if retryable_write && category::is_retryable_write(code) => {
                    err = err.with_label(labels::RETRYABLE_WRITE_ERROR);
                }
                // In a transaction (`Some(commit or abort)`), mongod's own labels.
                None => {
                    if let Some(commit_or_abort) = transaction {
                        let wce = data.get_document("writeConcernError").is_ok();
                        if category::is_transient_transaction_error(code, commit_or_abort, wce) {
                            err = err.with_label(labels::TRANSIENT_TRANSACTION_ERROR);
                        }
                    }
                }
            }
            out.error = Some(err);
        }
        if let Ok(wce) = data.get_document("writeConcernError") {
            out.write_concern_error = Some(wce.clone());
        }
        Some(out)
    }

    /// `failGetMoreAfterCursorCheckout`: the error a getMore fails with, if it fires.
    pub fn fail_get_more(&self) -> Option<MongoError> {
        let data = self.fire("failGetMoreAfterCursorCheckout", |_| true)?;
        let code = data
            .get("errorCode")
            .and_then(crate::args::as_integer)
            .map_or(ErrorCode::InternalError.code(), |c| c as i32);
        let mut err = MongoError::location(
            code,
            "Failing getMore via 'failGetMoreAfterCursorCheckout' failpoint",
        );
        if category::is_resumable_change_stream(code) {
            err = err.with_label(labels::RESUMABLE_CHANGE_STREAM_ERROR);
        }
        Some(err)
    }

    /// `maxTimeAlwaysTimeOut`: the error for a command with a time limit, if it fires.
    pub fn max_time_expired(&self) -> Option<MongoError> {
        self.fire("maxTimeAlwaysTimeOut", |_| true)?;
        Some(MongoError::new(
            ErrorCode::MaxTimeMSExpired,
            "operation exceeded time limit",
        ))
    }

    /// `onPrimaryTransactionalWrite`: what it does to the statement about to run, if it
    /// fires.
    pub fn primary_transactional_write(&self) -> Option<TransactionalWriteFault> {
        let data = self.fire("onPrimaryTransactionalWrite", |_| true)?;
        Some(TransactionalWriteFault {
            // mongod: an absent `closeConnection` closes.
            close_connection: data.get_bool("closeConnection").unwrap_or(true),
            fail_before_commit: data
                .get("failBeforeCommitExceptionCode")
                .and_then(crate::args::as_integer)
                .map(|c| c as i32),
        })
    }

    /// The reply to `configureFailPoint`.
    pub fn reply(count: i64) -> Document {
        doc! {"count": count}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_mode_counts_down() {
        let fp = FailPoints::default();
        fp.configure(
            "failCommand",
            &Bson::Document(doc! {"times": 2}),
            Some(doc! {"failCommands": ["insert"], "errorCode": 91}),
        )
        .expect("configure");
        assert!(fp.fail_command("find", None, false, None).is_none());
        let first = fp.fail_command("insert", None, true, None).expect("fires");
        assert_eq!(first.error.as_ref().map(|e| e.code), Some(91));
        assert_eq!(
            first.error.map(|e| e.labels),
            Some(vec!["RetryableWriteError".to_owned()])
        );
        assert!(fp.fail_command("insert", None, false, None).is_some());
        assert!(fp.fail_command("insert", None, false, None).is_none());
    }

    #[test]
    fn app_name_limits_and_unknown_points() {
        let fp = FailPoints::default();
        fp.configure(
            "failCommand",
            &Bson::String("alwaysOn".into()),
            Some(doc! {"failCommands": ["ping"], "closeConnection": true, "appName": "t"}),
        )
        .expect("configure");
        assert!(fp
            .fail_command("ping", Some("other"), false, None)
            .is_none());
        assert!(fp
            .fail_command("ping", Some("t"), false, None)
            .is_some_and(|i| i.close_connection));
        assert_eq!(
            fp.configure("nope", &Bson::String("off".into()), None)
                .err()
                .map(|e| e.code),
            Some(2)
        );
    }

    #[test]
    fn primary_transactional_write_defaults_to_closing() {
        let fp = FailPoints::default();
        fp.configure(
            "onPrimaryTransactionalWrite",
            &Bson::Document(doc! {"skip": 1}),
            None,
        )
        .expect("configure");
        assert_eq!(fp.primary_transactional_write(), None);
        assert_eq!(
            fp.primary_transactional_write(),
            Some(TransactionalWriteFault {
                close_connection: true,
                fail_before_commit: None
            })
        );
        fp.configure(
            "onPrimaryTransactionalWrite",
            &Bson::Document(doc! {"times": 1}),
            Some(doc! {"closeConnection": false, "failBeforeCommitExceptionCode": 1}),
        )
        .expect("configure");
        assert_eq!(
            fp.primary_transactional_write(),
            Some(TransactionalWriteFault {
                close_connection: false,
                fail_before_commit: Some(1)
            })
        );
        assert_eq!(fp.primary_transactional_write(), None);
    }

    #[test]
    fn get_more_failures_are_labelled() {
        let fp = FailPoints::default();
        fp.configure(
            "failGetMoreAfterCursorCheckout",
            &Bson::Document(doc! {"times": 1}),
            Some(doc! {"errorCode": 10107}),
        )
        .expect("configure");
        let e = fp.fail_get_more().expect("fires");
        assert!(e.labels.contains(&"ResumableChangeStreamError".to_owned()));
        assert!(fp.fail_get_more().is_none());
    }
}
