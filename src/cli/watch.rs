//! `eddy watch [URI]`: the tutorial's `change_streams.py`, made robust.
//!
//! Built on the official `mongodb` driver, so it works against mongod as well as Eddy.
//!
//! Delivery invariant: an event's resume token is written to the checkpoint only *after* the
//! event was written and flushed to stdout. A restart resumes after the checkpointed event, so
//! with a clean stop (Ctrl-C / SIGTERM, `--max-events`, `--idle-exit`) every event is printed
//! exactly once across restarts; after a hard kill at most the last event is printed again.
//!
//! Resume rules: a token from an ordinary event is used with `resumeAfter`; a token from an
//! `invalidate` event only with `startAfter` (the server rejects `resumeAfter` there).
//! Network errors and errors labelled `ResumableChangeStreamError` (or carrying one of the
//! pre-4.4 resumable codes) are retried with capped exponential backoff from the last token;
//! `ChangeStreamHistoryLost` and other non-resumable change-stream errors exit with code 2.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bson::{doc, Bson, Document};
use clap::{Args, ValueEnum};
use eddy_codes::{category, ErrorCode};
use futures_util::StreamExt;
use mongodb::change_stream::event::ResumeToken;
use mongodb::change_stream::ChangeStream;
use mongodb::error::{Error as MongoError, ErrorKind};
use mongodb::options::{
    ChangeStreamOptions, ClientOptions, FullDocumentBeforeChangeType, FullDocumentType,
};
use mongodb::Client;

use super::backoff::Backoff;
use super::checkpoint::{self, Checkpoint};
use super::output::{colour_for, dumps, JsonMode, RESET};
use super::signal::Shutdown;

/// Default connection string when neither URI nor $CHANGE_STREAM_DB is given.
pub const DEFAULT_URI: &str = "mongodb://localhost:27017";

/// Output formats.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `print(dumps(change)); print('')`: relaxed Extended JSON + an empty line (the tutorial)
    Relaxed,
    /// `dumps(change, json_options=CANONICAL_JSON_OPTIONS)` + an empty line
    Canonical,
    /// one relaxed Extended JSON document per line, no empty lines
    Ndjson,
    /// `dumps(change, indent=2)`, coloured by operationType on a terminal
    Pretty,
}

/// `--full-document` values.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum FullDocument {
    /// look the current document up for update events
    #[value(name = "updateLookup")]
    UpdateLookup,
    /// post-image if the collection records them
    #[value(name = "whenAvailable")]
    WhenAvailable,
    /// post-image, error if missing
    #[value(name = "required")]
    Required,
}

/// `--full-document-before-change` values.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum FullDocumentBeforeChange {
    /// pre-image if the collection records them
    #[value(name = "whenAvailable")]
    WhenAvailable,
    /// pre-image, error if missing
    #[value(name = "required")]
    Required,
    /// no pre-image (the server default)
    #[value(name = "off")]
    Off,
}

/// `eddy watch` flags.
#[derive(Args, Debug, Clone)]
pub struct WatchArgs {
    /// Connection string [default: $CHANGE_STREAM_DB, then mongodb://localhost:27017]
    #[arg(value_name = "URI")]
    pub uri: Option<String>,

    /// Database to watch (all its collections unless --coll is given)
    #[arg(long, value_name = "DB")]
    pub db: Option<String>,

    /// Collection to watch (needs --db)
    #[arg(long, value_name = "COLL", requires = "db")]
    pub coll: Option<String>,

    /// Filter events: the body of a $match stage, e.g. '{"operationType": "insert"}'
    /// (Extended JSON accepted)
    #[arg(long = "match", value_name = "JSON")]
    pub match_filter: Option<String>,

    /// Extra pipeline stages as a JSON array, appended after --match
    /// (e.g. '[{"$project": {"fullDocument": 1, "operationType": 1, "ns": 1}}]')
    #[arg(long, value_name = "JSON_ARRAY")]
    pub pipeline: Option<String>,

    /// fullDocument for update events
    #[arg(long = "full-document", value_enum, value_name = "MODE")]
    pub full_document: Option<FullDocument>,

    /// fullDocumentBeforeChange (pre-images)
    #[arg(long = "full-document-before-change", value_enum, value_name = "MODE")]
    pub full_document_before_change: Option<FullDocumentBeforeChange>,

    /// Also report DDL events such as create, createIndexes, dropIndexes, modify
    #[arg(long = "show-expanded-events")]
    pub show_expanded_events: bool,

    /// Resume after this token: '{"_data": "82..."}' or just the _data string
    #[arg(long = "resume-after", value_name = "TOKEN", conflicts_with_all = ["start_after", "start_at_operation_time"])]
    pub resume_after: Option<String>,

    /// Start after this token (also works with the token of an invalidate event)
    #[arg(
        long = "start-after",
        value_name = "TOKEN",
        conflicts_with = "start_at_operation_time"
    )]
    pub start_after: Option<String>,

    /// Start at a cluster time: SECONDS[,INCREMENT] or '{"$timestamp": {"t": S, "i": I}}'
    #[arg(long = "start-at-operation-time", value_name = "TIME")]
    pub start_at_operation_time: Option<String>,

    /// Save the resume token of every printed event in FILE (atomically) and resume from it
    /// on start; --resume-after/--start-after/--start-at-operation-time take precedence
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Relaxed)]
    pub format: Format,

    /// Exit (code 0) after printing N events
    #[arg(long = "max-events", value_name = "N")]
    pub max_events: Option<u64>,

    /// Exit (code 0) when no event arrived for SECS seconds
    #[arg(long = "idle-exit", value_name = "SECS")]
    pub idle_exit: Option<f64>,

    /// Keep watching after an invalidate event (reopens the stream with startAfter) instead of
    /// exiting like the tutorial's loop does
    #[arg(long = "follow-invalidate")]
    pub follow_invalidate: bool,
}

/// Where a (re)opened stream starts.
#[derive(Clone, Debug, PartialEq)]
pub enum StartPoint {
    /// Now.
    Now,
    /// `resumeAfter`.
    ResumeAfter(Document),
    /// `startAfter`.
    StartAfter(Document),
    /// `startAtOperationTime`.
    AtOperationTime(bson::Timestamp),
}

impl StartPoint {
    /// The start point that continues after a checkpointed event.
    pub fn after(cp: &Checkpoint) -> Self {
        if cp.needs_start_after() {
            StartPoint::StartAfter(cp.resume_token.clone())
        } else {
            StartPoint::ResumeAfter(cp.resume_token.clone())
        }
    }
}

/// What to do with an error from the driver.
#[derive(Debug, PartialEq)]
pub enum ErrorClass {
    /// Reconnect with backoff, resuming from the last token.
    Retry,
    /// The change stream cannot be resumed (history trimmed, token invalid, fatal error).
    NotResumable,
    /// Anything else (bad pipeline, authentication, ...): report and exit 1.
    Fatal,
}

/// Codes that mean "this change stream cannot continue": mongod's category
/// (ChangeStreamFatalError, ChangeStreamHistoryLost) and InvalidResumeToken.
fn not_resumable(code: i32) -> bool {
    category::is_non_resumable_change_stream(code) || code == ErrorCode::InvalidResumeToken.code()
}

/// The facts about an error that decide whether to retry.
#[derive(Debug, Default)]
pub struct ErrorFacts<'a> {
    /// Server error code, for command errors.
    pub code: Option<i32>,
    /// Error labels (from the server or the driver).
    pub labels: Vec<&'a str>,
    /// A network-level failure (I/O, server selection, pool cleared, DNS).
    pub network: bool,
}

/// Classifies an error from its facts (see the change-streams spec's "resumable error").
pub fn classify_facts(f: &ErrorFacts<'_>) -> ErrorClass {
    let has = |l: &str| f.labels.contains(&l);
    if has("NonResumableChangeStreamError") {
        return ErrorClass::NotResumable;
    }
    match f.code {
        Some(code) if not_resumable(code) => ErrorClass::NotResumable,
        _ if has("ResumableChangeStreamError") => ErrorClass::Retry,
        // Pre-4.4 servers do not label: the change streams spec's codes, and CursorNotFound.
        Some(code) if category::is_resumable_change_stream(code) => ErrorClass::Retry,
        Some(_) => ErrorClass::Fatal,
        None if f.network => ErrorClass::Retry,
        None => ErrorClass::Fatal,
    }
}

/// Classifies a driver error as retryable or not.
pub fn classify(err: &MongoError) -> ErrorClass {
    let code = match err.kind.as_ref() {
        ErrorKind::Command(ce) => Some(ce.code),
        _ => None,
    };
    let network = matches!(
        err.kind.as_ref(),
        ErrorKind::Io(_)
            | ErrorKind::ConnectionPoolCleared { .. }
            | ErrorKind::ServerSelection { .. }
            | ErrorKind::DnsResolve { .. }
    );
    classify_facts(&ErrorFacts {
        code,
        labels: err.labels().iter().map(String::as_str).collect(),
        network,
    })
}

/// Parses a resume token argument: a JSON document or a bare `_data` string.
pub fn parse_token(s: &str) -> Result<Document> {
    let t = s.trim();
    if t.starts_with('{') {
        match parse_extjson(t)? {
            Bson::Document(d) => Ok(d),
            _ => bail!("resume token must be a JSON object"),
        }
    } else if !t.is_empty() && t.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(doc! {"_data": t})
    } else {
        bail!("expected a resume token: a JSON object like {{\"_data\": \"82...\"}} or its hex _data string")
    }
}

/// Parses `--start-at-operation-time`: `T`, `T,I`, `T.I` or `{"$timestamp": {"t": T, "i": I}}`.
pub fn parse_timestamp(s: &str) -> Result<bson::Timestamp> {
    let t = s.trim();
    if t.starts_with('{') {
        return match parse_extjson(t)? {
            Bson::Timestamp(ts) => Ok(ts),
            _ => bail!("expected {{\"$timestamp\": {{\"t\": SECONDS, \"i\": INCREMENT}}}}"),
        };
    }
    let (secs, inc) = match t.split_once([',', '.', ':']) {
        Some((a, b)) => (a, b),
        None => (t, "0"),
    };
    let time: u32 = secs
        .trim()
        .parse()
        .map_err(|_| anyhow!("invalid operation time {s:?}: expected SECONDS[,INCREMENT]"))?;
    let increment: u32 = inc
        .trim()
        .parse()
        .map_err(|_| anyhow!("invalid operation time {s:?}: bad increment"))?;
    Ok(bson::Timestamp { time, increment })
}

/// Parses (relaxed or canonical) Extended JSON, keeping field order.
pub fn parse_extjson(s: &str) -> Result<Bson> {
    let json: serde_json::Value =
        serde_json::from_str(s).map_err(|e| anyhow!("invalid JSON: {e}"))?;
    Bson::try_from(json).map_err(|e| anyhow!("invalid Extended JSON: {e}"))
}

/// `--match` and `--pipeline` as the change stream's pipeline.
pub fn build_pipeline(match_filter: Option<&str>, pipeline: Option<&str>) -> Result<Vec<Document>> {
    let mut stages = Vec::new();
    if let Some(m) = match_filter {
        match parse_extjson(m).context("--match")? {
            Bson::Document(d) => stages.push(doc! {"$match": d}),
            _ => bail!("--match must be a JSON object (the body of a $match stage)"),
        }
    }
    if let Some(p) = pipeline {
        match parse_extjson(p).context("--pipeline")? {
            Bson::Array(items) => {
                for (i, item) in items.into_iter().enumerate() {
                    match item {
                        Bson::Document(d) => stages.push(d),
                        _ => bail!("--pipeline: stage {i} is not a JSON object"),
                    }
                }
            }
            _ => bail!("--pipeline must be a JSON array of stages"),
        }
    }
    Ok(stages)
}

/// Formats one event for `format` (including the trailing newline(s)).
pub fn render(event: &Document, format: Format, colour: bool) -> String {
    match format {
        Format::Relaxed => format!("{}\n\n", dumps(event, JsonMode::Relaxed, None)),
        Format::Canonical => format!("{}\n\n", dumps(event, JsonMode::Canonical, None)),
        Format::Ndjson => format!("{}\n", dumps(event, JsonMode::Relaxed, None)),
        Format::Pretty => {
            let body = dumps(event, JsonMode::Relaxed, Some(2));
            match colour
                .then(|| colour_for(event.get_str("operationType").ok()))
                .flatten()
            {
                Some(c) => format!("{c}{body}{RESET}\n"),
                None => format!("{body}\n"),
            }
        }
    }
}

/// The connection string to use.
pub fn resolve_uri(arg: Option<&str>) -> String {
    arg.map(str::to_owned)
        .or_else(|| {
            std::env::var("CHANGE_STREAM_DB")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| DEFAULT_URI.to_owned())
}

/// `uri` with any password replaced by `***`, for messages (stderr often ends up in logs).
pub fn redact_uri(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***{}", &rest[at..])
        }
        None => uri.to_owned(),
    }
}

/// Opens a client; a short server-selection timeout keeps reconnect attempts responsive.
pub async fn connect(uri: &str, app_name: &str) -> Result<Client> {
    let mut opts = ClientOptions::parse(uri)
        .await
        .with_context(|| format!("invalid connection string {uri:?}"))?;
    if opts.app_name.is_none() {
        opts.app_name = Some(app_name.to_owned());
    }
    if opts.server_selection_timeout.is_none() {
        opts.server_selection_timeout = Some(Duration::from_secs(5));
    }
    Client::with_options(opts).context("creating the client")
}

fn to_resume_token(d: &Document) -> Result<ResumeToken> {
    // ResumeToken is opaque; it deserializes from any BSON value, here via a wrapper document.
    #[derive(serde::Deserialize)]
    struct Wrap {
        t: ResumeToken,
    }
    let bytes = bson::serialize_to_vec(&doc! {"t": d.clone()}).context("encoding resume token")?;
    let w: Wrap = bson::deserialize_from_slice(&bytes).context("decoding resume token")?;
    Ok(w.t)
}

fn token_to_document(t: &ResumeToken) -> Option<Document> {
    match bson::serialize_to_bson(t) {
        Ok(Bson::Document(d)) => Some(d),
        _ => None,
    }
}

async fn open(
    client: &Client,
    args: &WatchArgs,
    pipeline: &[Document],
    start: &StartPoint,
) -> std::result::Result<ChangeStream<Document>, MongoError> {
    let mut o = ChangeStreamOptions::default();
    o.full_document = args.full_document.map(|f| match f {
        FullDocument::UpdateLookup => FullDocumentType::UpdateLookup,
        FullDocument::WhenAvailable => FullDocumentType::WhenAvailable,
        FullDocument::Required => FullDocumentType::Required,
    });
    o.full_document_before_change = args.full_document_before_change.map(|f| match f {
        FullDocumentBeforeChange::WhenAvailable => FullDocumentBeforeChangeType::WhenAvailable,
        FullDocumentBeforeChange::Required => FullDocumentBeforeChangeType::Required,
        FullDocumentBeforeChange::Off => FullDocumentBeforeChangeType::Off,
    });
    if args.show_expanded_events {
        o.show_expanded_events = Some(true);
    }
    let token = |d: &Document| {
        to_resume_token(d).map_err(|e| MongoError::custom(format!("bad resume token: {e:#}")))
    };
    match start {
        StartPoint::Now => {}
        StartPoint::ResumeAfter(d) => o.resume_after = Some(token(d)?),
        StartPoint::StartAfter(d) => o.start_after = Some(token(d)?),
        StartPoint::AtOperationTime(ts) => o.start_at_operation_time = Some(*ts),
    }
    let pipeline = pipeline.to_vec();
    let stream = match (&args.db, &args.coll) {
        (Some(db), Some(coll)) => {
            client
                .database(db)
                .collection::<Document>(coll)
                .watch()
                .pipeline(pipeline)
                .with_options(o)
                .await?
        }
        (Some(db), None) => {
            client
                .database(db)
                .watch()
                .pipeline(pipeline)
                .with_options(o)
                .await?
        }
        _ => client.watch().pipeline(pipeline).with_options(o).await?,
    };
    Ok(stream.with_type::<Document>())
}

fn scope_name(args: &WatchArgs) -> String {
    match (&args.db, &args.coll) {
        (Some(db), Some(coll)) => format!("collection {db}.{coll}"),
        (Some(db), None) => format!("database {db}"),
        _ => "the whole deployment".to_owned(),
    }
}

fn history_lost_message(err: &MongoError, args: &WatchArgs) -> String {
    let mut msg = format!(
        "eddy watch: the change stream cannot be resumed: {}\n",
        describe(err)
    );
    let code = match err.kind.as_ref() {
        ErrorKind::Command(ce) => Some(ce.code),
        _ => None,
    };
    if code == Some(286) {
        msg.push_str(
            "The server's oplog no longer contains the point this stream was resuming from \
             (the history was trimmed because the oplog reached --oplogSize).\n\
             Events between that point and the oldest retained entry are lost.\n",
        );
    }
    msg.push_str("To start again from now, ");
    if let Some(cp) = &args.checkpoint {
        msg.push_str(&format!("delete the checkpoint file {} ", cp.display()));
    } else {
        msg.push_str("run without --resume-after/--start-after ");
    }
    msg.push_str(
        "(or pass --start-at-operation-time SECONDS to start from a cluster time the server still has).",
    );
    msg
}

enum Interrupted {
    Shutdown,
    Idle,
}

/// Runs `eddy watch`; returns the process exit code.
pub async fn run(args: WatchArgs, mut shutdown: Shutdown) -> Result<i32> {
    let uri = resolve_uri(args.uri.as_deref());
    let pipeline = build_pipeline(args.match_filter.as_deref(), args.pipeline.as_deref())?;
    let explicit = if let Some(t) = &args.resume_after {
        Some(StartPoint::ResumeAfter(
            parse_token(t).context("--resume-after")?,
        ))
    } else if let Some(t) = &args.start_after {
        Some(StartPoint::StartAfter(
            parse_token(t).context("--start-after")?,
        ))
    } else if let Some(t) = &args.start_at_operation_time {
        Some(StartPoint::AtOperationTime(
            parse_timestamp(t).context("--start-at-operation-time")?,
        ))
    } else {
        None
    };
    let saved = match &args.checkpoint {
        Some(p) => checkpoint::load(p)?,
        None => None,
    };
    let mut start = match (explicit, &saved) {
        (Some(sp), _) => sp,
        (None, Some(cp)) => {
            tracing::info!(token = ?cp.resume_token, "resuming from checkpoint");
            StartPoint::after(cp)
        }
        (None, None) => StartPoint::Now,
    };
    let idle = match args.idle_exit {
        Some(s) if s.is_finite() && s >= 0.0 => Some(Duration::from_secs_f64(s)),
        Some(_) => bail!("--idle-exit must be a non-negative number of seconds"),
        None => None,
    };
    if args.max_events == Some(0) {
        return Ok(0);
    }

    let client = connect(&uri, "eddy watch").await?;
    let colour = args.format == Format::Pretty && std::io::stdout().is_terminal();
    let mut backoff = Backoff::new();
    let mut printed: u64 = 0;
    let mut last_activity = Instant::now();
    // Set once any stream was opened: errors before that which are not network errors are
    // configuration mistakes and must not be retried forever.
    let mut ever_opened = false;

    'outer: loop {
        let deadline = idle.map(|d| last_activity + d);
        let opened = match race(
            open(&client, &args, &pipeline, &start),
            &mut shutdown,
            deadline,
        )
        .await
        {
            Err(Interrupted::Shutdown) | Err(Interrupted::Idle) => return Ok(0),
            Ok(r) => r,
        };
        let mut stream = match opened {
            Ok(s) => {
                // On stderr (stdout is for events): tells the user, and scripts waiting for
                // the stream to be open before they write, that watching has begun.
                let shown = redact_uri(&uri);
                if ever_opened {
                    tracing::info!("resumed watching {} at {shown}", scope_name(&args));
                } else {
                    tracing::info!("watching {} at {shown}", scope_name(&args));
                }
                tracing::debug!(?start, "change stream opened");
                ever_opened = true;
                backoff.reset();
                s
            }
            Err(e) => match classify(&e) {
                ErrorClass::Retry => {
                    if wait_retry(&describe(&e), &mut backoff, &mut shutdown, deadline).await {
                        return Ok(0);
                    }
                    continue 'outer;
                }
                ErrorClass::NotResumable => {
                    eprintln!("{}", history_lost_message(&e, &args));
                    return Ok(2);
                }
                ErrorClass::Fatal => {
                    let _ = ever_opened;
                    return Err(anyhow!(describe(&e)).context(format!(
                        "opening a change stream on {} at {}",
                        scope_name(&args),
                        redact_uri(&uri)
                    )));
                }
            },
        };

        loop {
            let deadline = idle.map(|d| last_activity + d);
            let next = match race(stream.next(), &mut shutdown, deadline).await {
                Err(_) => return Ok(0),
                Ok(n) => n,
            };
            match next {
                Some(Ok(event)) => {
                    last_activity = Instant::now();
                    let text = render(&event, args.format, colour);
                    let mut out = std::io::stdout().lock();
                    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
                        Ok(()) => {}
                        // A closed pipe (`eddy watch | head -1`) is a normal way to stop; the
                        // event was not delivered, so it is not checkpointed either.
                        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(0),
                        Err(e) => return Err(anyhow!(e).context("writing to stdout")),
                    }
                    drop(out);
                    let cp = Checkpoint::from_event(&event);
                    if let (Some(path), Some(cp)) = (&args.checkpoint, &cp) {
                        checkpoint::save(path, cp)?;
                    }
                    if let Some(cp) = &cp {
                        start = StartPoint::after(cp);
                    }
                    printed += 1;
                    if args.max_events.is_some_and(|m| printed >= m) {
                        return Ok(0);
                    }
                    if event.get_str("operationType").ok() == Some("invalidate") {
                        if args.follow_invalidate {
                            // `start` is now StartAfter(invalidate token).
                            continue 'outer;
                        }
                        return Ok(0);
                    }
                }
                Some(Err(e)) => match classify(&e) {
                    ErrorClass::Retry => {
                        // The driver already tried one automatic resume. Continue from the
                        // driver's token when it is ahead of ours (a postBatchResumeToken covers
                        // events filtered out by --match), else from the last printed event.
                        if let StartPoint::ResumeAfter(_) | StartPoint::Now = start {
                            if let Some(d) =
                                stream.resume_token().as_ref().and_then(token_to_document)
                            {
                                start = StartPoint::ResumeAfter(d);
                            }
                        }
                        let deadline = idle.map(|d| last_activity + d);
                        if wait_retry(&describe(&e), &mut backoff, &mut shutdown, deadline).await {
                            return Ok(0);
                        }
                        continue 'outer;
                    }
                    ErrorClass::NotResumable => {
                        eprintln!("{}", history_lost_message(&e, &args));
                        return Ok(2);
                    }
                    ErrorClass::Fatal => {
                        return Err(anyhow!(describe(&e)).context("reading the change stream"));
                    }
                },
                None => {
                    // The server closed the cursor without an invalidate event (e.g. it was
                    // killed with killCursors): reopen from the last token.
                    if let Some(d) = stream.resume_token().as_ref().and_then(token_to_document) {
                        if !matches!(start, StartPoint::StartAfter(_)) {
                            start = StartPoint::ResumeAfter(d);
                        }
                    }
                    let deadline = idle.map(|d| last_activity + d);
                    let why = "the server closed the change stream cursor";
                    if wait_retry(why, &mut backoff, &mut shutdown, deadline).await {
                        return Ok(0);
                    }
                    continue 'outer;
                }
            }
        }
    }
}

/// A one-line description of a driver error for humans: the error kind (which carries the
/// server's code, codeName and message) without the driver's `Display` extras (labels, raw
/// server response bytes), plus the labels when there are any.
fn describe(err: &MongoError) -> String {
    let labels = err.labels();
    if labels.is_empty() {
        err.kind.to_string()
    } else {
        let mut labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        labels.sort_unstable();
        format!("{} [{}]", err.kind, labels.join(", "))
    }
}

/// Sleeps the next backoff delay; true when interrupted (shutdown or idle deadline).
async fn wait_retry(
    err: &str,
    backoff: &mut Backoff,
    shutdown: &mut Shutdown,
    deadline: Option<Instant>,
) -> bool {
    let delay = backoff.next_delay();
    eprintln!(
        "eddy watch: {err} (attempt {}); retrying in {:.1}s",
        backoff.attempts(),
        delay.as_secs_f64()
    );
    race(tokio::time::sleep(delay), shutdown, deadline)
        .await
        .is_err()
}

async fn race<F: std::future::Future>(
    fut: F,
    shutdown: &mut Shutdown,
    deadline: Option<Instant>,
) -> std::result::Result<F::Output, Interrupted> {
    let idle = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d.into()).await,
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        biased;
        _ = shutdown.wait() => Err(Interrupted::Shutdown),
        _ = idle => Err(Interrupted::Idle),
        out = fut => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_from_match_and_pipeline() {
        let p = build_pipeline(
            Some(
                r#"{"operationType": {"$in": ["insert"]}, "fullDocument.n": {"$numberLong": "5"}}"#,
            ),
            Some(r#"[{"$project": {"b": 1, "a": 1}}]"#),
        )
        .expect("valid");
        assert_eq!(
            p,
            vec![
                doc! {"$match": {"operationType": {"$in": ["insert"]}, "fullDocument.n": 5_i64}},
                // field order is kept (serde_json preserve_order)
                doc! {"$project": {"b": 1, "a": 1}},
            ]
        );
        assert!(build_pipeline(Some("[1]"), None).is_err());
        assert!(build_pipeline(None, Some("{}")).is_err());
        assert!(build_pipeline(None, Some("[1]")).is_err());
        assert!(build_pipeline(Some("{bad"), None).is_err());
        assert_eq!(build_pipeline(None, None).expect("empty"), vec![]);
    }

    #[test]
    fn tokens_and_times() {
        assert_eq!(
            parse_token("8263AB").expect("hex"),
            doc! {"_data": "8263AB"}
        );
        assert_eq!(
            parse_token(r#"{"_data": "8263AB"}"#).expect("json"),
            doc! {"_data": "8263AB"}
        );
        assert!(parse_token("").is_err());
        assert!(parse_token("[1]").is_err());
        let ts = |time, increment| bson::Timestamp { time, increment };
        assert_eq!(parse_timestamp("100").expect("t"), ts(100, 0));
        assert_eq!(parse_timestamp("100,3").expect("t,i"), ts(100, 3));
        assert_eq!(parse_timestamp("100.3").expect("t.i"), ts(100, 3));
        assert_eq!(
            parse_timestamp(r#"{"$timestamp": {"t": 7, "i": 9}}"#).expect("json"),
            ts(7, 9)
        );
        assert!(parse_timestamp("soon").is_err());
        assert!(parse_timestamp("1,x").is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_uri("mongodb://u:secret@h:1,h2/db?x=1"),
            "mongodb://u:***@h:1,h2/db?x=1"
        );
        assert_eq!(
            redact_uri("mongodb://h:27017/?a=b@c"),
            "mongodb://h:27017/?a=b@c"
        );
        assert_eq!(redact_uri("not a uri"), "not a uri");
    }

    #[test]
    fn resume_token_roundtrip() {
        let d = doc! {"_data": "82650000000000000129"};
        let t = to_resume_token(&d).expect("token");
        assert_eq!(token_to_document(&t), Some(d));
    }

    #[test]
    fn start_point_after_checkpoint() {
        let ev = |op: &str| {
            Checkpoint::from_event(&doc! {"_id": {"_data": "01"}, "operationType": op})
                .expect("has _id")
        };
        assert_eq!(
            StartPoint::after(&ev("insert")),
            StartPoint::ResumeAfter(doc! {"_data": "01"})
        );
        assert_eq!(
            StartPoint::after(&ev("invalidate")),
            StartPoint::StartAfter(doc! {"_data": "01"})
        );
    }

    #[test]
    fn render_formats() {
        let ev = doc! {"_id": {"_data": "01"}, "operationType": "insert", "n": 1.0};
        assert_eq!(
            render(&ev, Format::Relaxed, false),
            "{\"_id\": {\"_data\": \"01\"}, \"operationType\": \"insert\", \"n\": 1.0}\n\n"
        );
        assert_eq!(
            render(&ev, Format::Ndjson, false),
            "{\"_id\": {\"_data\": \"01\"}, \"operationType\": \"insert\", \"n\": 1.0}\n"
        );
        assert_eq!(
            render(&ev, Format::Canonical, false),
            "{\"_id\": {\"_data\": \"01\"}, \"operationType\": \"insert\", \"n\": {\"$numberDouble\": \"1.0\"}}\n\n"
        );
        let pretty = render(&ev, Format::Pretty, true);
        assert!(pretty.starts_with("\x1b[32m{\n  \"_id\": {\n    \"_data\": \"01\"\n  },"));
        assert!(pretty.ends_with("}\x1b[0m\n"));
        assert!(!render(&ev, Format::Pretty, false).contains('\x1b'));
    }

    #[test]
    fn error_classes() {
        use ErrorClass::*;
        let table: &[(Option<i32>, &[&str], bool, ErrorClass)] = &[
            (Some(286), &[], false, NotResumable), // ChangeStreamHistoryLost
            (Some(280), &[], false, NotResumable), // ChangeStreamFatalError
            (Some(260), &[], false, NotResumable), // InvalidResumeToken
            (
                Some(286),
                &["ResumableChangeStreamError"],
                false,
                NotResumable,
            ),
            (
                Some(1),
                &["NonResumableChangeStreamError"],
                false,
                NotResumable,
            ),
            (Some(1234), &["ResumableChangeStreamError"], false, Retry),
            (Some(91), &[], false, Retry), // ShutdownInProgress (pre-4.4 list)
            (Some(43), &[], false, Retry), // CursorNotFound
            (Some(11600), &[], false, Retry), // InterruptedAtShutdown
            (Some(40324), &[], false, Fatal), // Unrecognized pipeline stage name
            (Some(13), &[], false, Fatal), // Unauthorized
            (None, &[], true, Retry),
            (None, &["ResumableChangeStreamError"], false, Retry),
            (None, &[], false, Fatal),
        ];
        for (code, labels, network, want) in table {
            let got = classify_facts(&ErrorFacts {
                code: *code,
                labels: labels.to_vec(),
                network: *network,
            });
            assert_eq!(&got, want, "{code:?} {labels:?}");
        }
        let io = MongoError::from(ErrorKind::Io(std::sync::Arc::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        ))));
        assert_eq!(classify(&io), Retry);
    }
}
