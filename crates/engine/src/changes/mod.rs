//! Change streams: turning oplog entries into MongoDB 7.0 change events.
//!
//! A [`ChangeStream`] is a position in the oplog plus what the stream wants (an
//! [`Interest`]: scope, `fullDocument`, `fullDocumentBeforeChange`, expanded events,
//! and the equality conditions of its leading `$match`) and the user's pipeline (an
//! [`EventPipeline`]). Reading a batch takes the entries after the position from the
//! shared hub (or storage, for a position older than the hub's tail), rules out by
//! the interest those that cannot concern the stream (no event is built for them),
//! takes the event of each other entry in the stream's [`Shape`] (built once per entry
//! and shape, shared by every stream: `event`), runs the pipeline on it and advances
//! the position past everything scanned.
//!
//! A stream with nothing to return waits with the hub's dispatcher ([`ChangeStream::wait`],
//! `dispatch`), which wakes it only for an entry its interest does not rule out, and
//! tells it how far every entry was ruled out meanwhile. A waiting stream holds no task
//! of its own: only its registration in the dispatcher and the caller's await.

pub mod dispatch;
pub mod event;
pub mod interest;
pub mod pipeline;
pub mod token;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use bson::{doc, Bson, Document, RawDocumentBuf, Timestamp};
use eddy_codes::{labels, ErrorCode, MongoError};

use crate::catalog::Namespace;
use crate::clock::{pack, unpack};
use crate::oplog::{self, Op, OplogEntry};
use crate::Engine;
pub use event::{Event, Logged, Shape};
pub use interest::{Interest, PostImage};
pub use pipeline::{EventPipeline, Passed, StreamEvent};
pub use token::{ResumeToken, TokenKind};

/// Change events built (once per entry and shape) and delivered (per stream), since the
/// process started: `GET /metrics`. Process-wide, as every engine of a process shares
/// the same counters' meaning.
pub static EVENTS_BUILT: AtomicU64 = AtomicU64::new(0);
pub static EVENTS_DELIVERED: AtomicU64 = AtomicU64::new(0);

/// What a stream watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Collection(Namespace),
    Database(String),
    Cluster,
}

/// `fullDocument`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullDocument {
    Default,
    UpdateLookup,
    WhenAvailable,
    Required,
}

/// `fullDocumentBeforeChange`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeforeChange {
    Off,
    WhenAvailable,
    Required,
}

/// Where a stream starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// After the newest durable entry.
    Now,
    ResumeAfter(ResumeToken),
    StartAfter(ResumeToken),
    OperationTime(Timestamp),
}

/// The parsed `$changeStream` stage.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    pub full_document: FullDocument,
    pub before_change: BeforeChange,
    pub start: StartAt,
    pub show_expanded_events: bool,
    pub all_changes_for_cluster: bool,
}

impl StreamSpec {
    /// Parses the `$changeStream` stage's argument as mongod 7.0 does.
    pub fn parse(spec: &Document) -> Result<StreamSpec, MongoError> {
        let mut out = StreamSpec {
            full_document: FullDocument::Default,
            before_change: BeforeChange::Off,
            start: StartAt::Now,
            show_expanded_events: false,
            all_changes_for_cluster: false,
        };
        let mut starts = 0;
        let mut resume_after = None;
        let mut start_after = None;
        for (key, value) in spec {
            let field = |v: &Bson, want: &str| {
                MongoError::type_mismatch(format!(
                    "BSON field '$changeStream.{key}' is the wrong type '{}', expected type '{want}'",
                    type_name(v)
                ))
            };
            match key.as_str() {
                "fullDocument" => {
                    let s = value.as_str().ok_or_else(|| field(value, "string"))?;
                    out.full_document = match s {
                        "default" => FullDocument::Default,
                        "updateLookup" => FullDocument::UpdateLookup,
                        "whenAvailable" => FullDocument::WhenAvailable,
                        "required" => FullDocument::Required,
                        other => return Err(bad_enum(key, other)),
                    };
                }
                "fullDocumentBeforeChange" => {
                    let s = value.as_str().ok_or_else(|| field(value, "string"))?;
                    out.before_change = match s {
                        "off" => BeforeChange::Off,
                        "whenAvailable" => BeforeChange::WhenAvailable,
                        "required" => BeforeChange::Required,
                        other => return Err(bad_enum(key, other)),
                    };
                }
                "resumeAfter" => {
                    starts += 1;
                    resume_after = Some(ResumeToken::parse(value)?);
                }
                "startAfter" => {
                    starts += 1;
                    start_after = Some(ResumeToken::parse(value)?);
                }
                "startAtOperationTime" => {
                    starts += 1;
                    match value {
                        Bson::Timestamp(ts) => out.start = StartAt::OperationTime(*ts),
                        other => return Err(field(other, "timestamp")),
                    }
                }
                "showExpandedEvents" => {
                    out.show_expanded_events =
                        value.as_bool().ok_or_else(|| field(value, "bool"))?
                }
                "allChangesForCluster" => {
                    out.all_changes_for_cluster =
                        value.as_bool().ok_or_else(|| field(value, "bool"))?
                }
                // The Rust driver repeats the command's `comment` inside the stage; like
                // mongod, accept it (it only tags the operation in logs).
                "comment" => {}
                "showSystemEvents"
                | "showRawUpdateDescription"
                | "allowToRunOnConfigDB"
                | "allowToRunOnSystemNS" => {
                    value.as_bool().ok_or_else(|| field(value, "bool"))?;
                }
                other => {
                    return Err(MongoError::location(
                        eddy_codes::location::UNKNOWN_FIELD,
                        format!("BSON field '$changeStream.{other}' is an unknown field."),
                    ))
                }
            }
        }
        if resume_after.is_some() && start_after.is_some() {
            return Err(MongoError::location(
                50865,
                "Do not specify both 'startAfter' and 'resumeAfter' in the change stream options",
            ));
        }
        if starts > 1 {
            return Err(MongoError::location(
                40674,
                "Only one type of resume option is allowed, but multiple were found.",
            ));
        }
        if let Some(t) = resume_after {
            if t.from_invalidate {
                return Err(MongoError::new(
                    ErrorCode::InvalidResumeToken,
                    "Attempting to resume a change stream using 'resumeAfter' is not allowed from an invalidate notification.",
                ));
            }
            out.start = StartAt::ResumeAfter(t);
        }
        if let Some(t) = start_after {
            out.start = StartAt::StartAfter(t);
        }
        Ok(out)
    }
}

fn bad_enum(field: &str, value: &str) -> MongoError {
    MongoError::bad_value(format!(
        "Enumeration value '{value}' for field '$changeStream.{field}' is not a valid value."
    ))
}

fn type_name(v: &Bson) -> &'static str {
    match v {
        Bson::Double(_) => "double",
        Bson::String(_) => "string",
        Bson::Document(_) => "object",
        Bson::Array(_) => "array",
        Bson::Boolean(_) => "bool",
        Bson::Null => "null",
        Bson::Int32(_) => "int",
        Bson::Int64(_) => "long",
        Bson::Timestamp(_) => "timestamp",
        Bson::DateTime(_) => "date",
        _ => "other",
    }
}

/// A batch read from a stream.
#[derive(Debug)]
pub struct StreamBatch {
    pub events: Vec<StreamEvent>,
    /// The token to resume after this batch (`postBatchResumeToken`).
    pub post_batch_resume_token: ResumeToken,
    /// The stream was invalidated: this batch ends with the `invalidate` event and the
    /// cursor closes.
    pub invalidated: bool,
}

/// The event-size limit of mongod (BSONObjMaxUserSize); larger events fail unless the
/// pipeline ends with `$changeStreamSplitLargeEvent`.
const MAX_EVENT_SIZE: usize = 16 * 1024 * 1024;
/// How many oplog entries one read scans at most.
const SCAN_CHUNK: usize = 4096;

/// An open change stream.
pub struct ChangeStream {
    engine: Arc<Engine>,
    /// Scope, shaping options and `$match` conditions, shared with the dispatcher
    /// while the stream waits.
    interest: Arc<Interest>,
    /// The fields of this stream's events (shared with every stream of the same shape).
    shape: Shape,
    pipeline: EventPipeline,
    /// Entries at or before this packed timestamp have been scanned.
    position: u64,
    /// A high-water mark given at the start (resume from `startAtOperationTime` or a
    /// high-water-mark token): reported until the stream moves past it.
    floor: Option<u64>,
    /// Set once the stream returned its `invalidate` event.
    invalidated: bool,
    /// The last token returned, to report as `postBatchResumeToken`.
    last_token: Option<ResumeToken>,
    /// Fragments of a split event not returned yet (a batch ended between them).
    pending: std::collections::VecDeque<(ResumeToken, StreamEvent)>,
    /// Resuming from a fragment token: fragments of that event up to this one were seen.
    resume_fragment: Option<(u64, u32)>,
}

impl std::fmt::Debug for ChangeStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeStream")
            .field("scope", &self.interest.scope)
            .field("position", &unpack(self.position))
            .finish_non_exhaustive()
    }
}

/// 286 ChangeStreamHistoryLost: the stream's position is older than the retained oplog.
pub(crate) fn history_lost() -> MongoError {
    MongoError::new(
        ErrorCode::ChangeStreamHistoryLost,
        "Resume of change stream was not possible, as the resume point may no longer be in the oplog.",
    )
    .with_label(labels::NON_RESUMABLE_CHANGE_STREAM_ERROR)
}

/// What adding one event to a batch did.
enum Added {
    Yes,
    /// The batch is full: the entry is left for the next batch.
    Full,
}

impl ChangeStream {
    /// Opens a stream, checking that its starting point is still in the oplog.
    pub fn open(
        engine: Arc<Engine>,
        scope: Scope,
        spec: StreamSpec,
        pipeline: EventPipeline,
    ) -> Result<ChangeStream, MongoError> {
        if let Scope::Collection(ns) = &scope {
            // mongod refuses a stream on a view; its events are those of its source.
            let reader = engine.reader()?;
            if reader.view(ns)?.is_some() {
                return Err(crate::catalog::not_a_collection(ns));
            }
            // So is one on a time-series collection (a view of its buckets in mongod).
            if reader
                .collection(ns)?
                .is_some_and(|m| m.timeseries().is_some())
            {
                return Err(MongoError::new(
                    eddy_codes::ErrorCode::CommandNotSupportedOnView,
                    format!("Namespace {ns} is a timeseries collection"),
                ));
            }
        }
        let now = pack(engine.last_op_time());
        let oldest = engine.oplog_start()?.map(pack);
        // `position`: the newest packed timestamp already seen.
        let (position, floor) = match spec.start {
            StartAt::Now => (now, None),
            StartAt::ResumeAfter(t) | StartAt::StartAfter(t) => match t.kind {
                TokenKind::Event => {
                    if oldest.is_some_and(|o| t.ts < o) || (oldest.is_none() && t.ts < now) {
                        return Err(history_lost());
                    }
                    if t.ts <= now {
                        let found = engine.read_oplog(unpack(t.ts.saturating_sub(1)), 1)?;
                        if found.first().map(|e| pack(e.ts)) != Some(t.ts) {
                            return Err(MongoError::new(
                                ErrorCode::ChangeStreamFatalError,
                                format!(
                                    "cannot resume stream; the resume token was not found. {}",
                                    crate::display_value(&Bson::Document(t.to_document()))
                                ),
                            )
                            .with_label(labels::NON_RESUMABLE_CHANGE_STREAM_ERROR));
                        }
                    }
                    if t.fragment > 0 {
                        // Re-read the split event and skip the fragments already seen.
                        (t.ts.saturating_sub(1), None)
                    } else {
                        (t.ts, None)
                    }
                }
                TokenKind::HighWaterMark => {
                    let before = t.ts.saturating_sub(1);
                    if oldest.is_some_and(|o| before < o.saturating_sub(1)) {
                        return Err(history_lost());
                    }
                    (before, Some(t.ts))
                }
            },
            StartAt::OperationTime(ts) => {
                let before = pack(ts).saturating_sub(1);
                if oldest.is_some_and(|o| before < o.saturating_sub(1)) {
                    return Err(history_lost());
                }
                (before, Some(pack(ts)))
            }
        };
        let last_token = match spec.start {
            StartAt::ResumeAfter(t) | StartAt::StartAfter(t) if t.kind == TokenKind::Event => {
                Some(t)
            }
            _ => None,
        };
        let resume_fragment = match spec.start {
            StartAt::ResumeAfter(t) | StartAt::StartAfter(t) if t.fragment > 0 => {
                Some((t.ts, t.fragment))
            }
            _ => None,
        };
        let interest = Interest::new(scope, &spec, pipeline.leading_filter());
        let shape = Shape {
            expanded: interest.expanded,
            pre_image: interest.before_change != BeforeChange::Off,
            post_image: interest.post_image() == PostImage::Recorded,
        };
        Ok(ChangeStream {
            engine,
            interest: Arc::new(interest),
            shape,
            pipeline,
            position,
            floor,
            invalidated: false,
            last_token,
            pending: std::collections::VecDeque::new(),
            resume_fragment,
        })
    }

    /// Whether the stream returned its `invalidate` event.
    pub fn is_invalidated(&self) -> bool {
        self.invalidated
    }

    /// The token a client resumes from after everything returned so far.
    pub fn post_batch_resume_token(&self) -> ResumeToken {
        let hwm = ResumeToken::high_water_mark(unpack(self.position.saturating_add(1)));
        match (self.last_token, self.floor) {
            (Some(t), _) if t.ts >= self.position => t,
            (_, Some(floor)) if floor > self.position => {
                ResumeToken::high_water_mark(unpack(floor))
            }
            _ => hwm,
        }
    }

    /// Waits with the hub's dispatcher by handing the stream itself over: `make` wraps
    /// it with what to do once an entry concerns it (see [`dispatch::Handoff`]), and the
    /// hand-off gives it back. `Err(self)` when entries arrived since the last read:
    /// read them first.
    pub fn hand_off(
        self,
        make: impl FnOnce(ChangeStream) -> Box<dyn dispatch::Handoff>,
    ) -> Result<HandedOff, ChangeStream> {
        let engine = self.engine.clone();
        let interest = self.interest.clone();
        let position = self.position;
        let mut stream = Some(self);
        let id = engine.hub().wait_handing_off(&interest, position, || {
            make(stream.take().expect("the stream is handed over once"))
        });
        match (id, stream) {
            (Some(id), _) => Ok(HandedOff {
                engine,
                id: Some(id),
            }),
            (None, Some(stream)) => Err(stream),
            (None, None) => unreachable!("a refused wait keeps its stream"),
        }
    }

    /// Whether the next read is from storage (the stream is behind the hub's tail): a
    /// read that may take a while, which callers keep off latency-sensitive threads.
    pub fn reads_storage(&self) -> bool {
        !self.engine.hub().holds(self.position)
    }

    /// Moves past entries a dispatcher ruled out for this stream (see [`Wait`]).
    pub fn skip_through(&mut self, through: u64) {
        self.position = self.position.max(through);
    }

    /// Reads up to `max_events` events available now (possibly none). Never waits.
    pub fn next_batch(
        &mut self,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<StreamBatch, MongoError> {
        let mut events = Vec::new();
        let mut bytes = 0usize;
        // Fragments left over from the previous batch come first.
        if !self.take_pending(&mut events, &mut bytes, max_events, max_bytes) {
            return Ok(self.batch(events));
        }
        'scan: while !self.invalidated && events.len() < max_events {
            let entries = self.engine.read_oplog(unpack(self.position), SCAN_CHUNK)?;
            if entries.is_empty() {
                break;
            }
            for entry in entries {
                let (relevant, invalidates) = self.interest.relevance(&entry);
                let before = events.len();
                if relevant && self.interest.may_match(&entry) {
                    if let Some(event) = self.event_of(&entry)? {
                        let token = ResumeToken::event(entry.ts);
                        if let Added::Full =
                            self.add(token, event, &mut events, &mut bytes, max_events, max_bytes)?
                        {
                            break 'scan;
                        }
                    }
                }
                if relevant && invalidates && !self.invalidated {
                    let token = ResumeToken::invalidate(entry.ts);
                    let event = Arc::new(Event::new(event::invalidate(&entry)));
                    // An invalidate is small: it always joins its entry's event.
                    let room = if events.len() > before {
                        usize::MAX
                    } else {
                        max_bytes
                    };
                    if let Added::Full =
                        self.add(token, event, &mut events, &mut bytes, usize::MAX, room)?
                    {
                        break 'scan;
                    }
                    // An invalidate filtered out still ends the stream.
                    self.invalidated = true;
                }
                self.position = pack(entry.ts);
                if self.invalidated || events.len() >= max_events {
                    break 'scan;
                }
            }
        }
        Ok(self.batch(events))
    }

    /// Runs the pipeline on one event and adds what it passes to the batch.
    fn add(
        &mut self,
        token: ResumeToken,
        event: StreamEvent,
        events: &mut Vec<StreamEvent>,
        bytes: &mut usize,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<Added, MongoError> {
        let event = match self.pipeline.apply(&event)? {
            Passed::Unchanged => event,
            Passed::Dropped => return Ok(Added::Yes),
            Passed::Changed(doc) => {
                check_id_unchanged(&doc, &token)?;
                pipeline::owned_event(doc)?
            }
        };
        let size = event.len();
        if size > MAX_EVENT_SIZE {
            if !self.pipeline.splits_large_events() {
                return Err(MongoError::new(
                    ErrorCode::MaxBsonObjectSizeExceeded,
                    format!(
                        "Executor error during getMore :: caused by :: BSONObj size: {size} (0x{size:X}) is invalid. Size must be between 0 and 16793600(16MB) First element: _id: {}",
                        crate::display_value(event.document()?.get("_id").unwrap_or(&Bson::Null))
                    ),
                ));
            }
            let skip = match self.resume_fragment.take() {
                Some((ts, n)) if ts == token.ts => n,
                _ => 0,
            };
            for (token, fragment) in split_event(event.document()?, token)?
                .into_iter()
                .skip(skip as usize)
            {
                self.pending
                    .push_back((token, pipeline::owned_event(fragment)?));
            }
            // The fragments are this stream's now: the entry is done.
            self.position = token.ts;
            if !self.take_pending(events, bytes, max_events, max_bytes) {
                return Ok(Added::Full);
            }
            return Ok(Added::Yes);
        }
        if !events.is_empty() && *bytes + size > max_bytes {
            // Leave this entry for the next batch: do not advance past it.
            return Ok(Added::Full);
        }
        *bytes += size;
        events.push(event);
        self.last_token = Some(token);
        if token.from_invalidate {
            self.invalidated = true;
        }
        Ok(Added::Yes)
    }

    fn batch(&self, events: Vec<StreamEvent>) -> StreamBatch {
        EVENTS_DELIVERED.fetch_add(events.len() as u64, std::sync::atomic::Ordering::Relaxed);
        StreamBatch {
            events,
            post_batch_resume_token: self.post_batch_resume_token(),
            invalidated: self.invalidated,
        }
    }

    /// Moves pending fragments into the batch while they fit; false when the batch is full.
    fn take_pending(
        &mut self,
        events: &mut Vec<StreamEvent>,
        bytes: &mut usize,
        max_events: usize,
        max_bytes: usize,
    ) -> bool {
        while let Some((_, fragment)) = self.pending.front() {
            let size = fragment.len();
            if events.len() >= max_events || (!events.is_empty() && *bytes + size > max_bytes) {
                return false;
            }
            if let Some((token, fragment)) = self.pending.pop_front() {
                *bytes += size;
                events.push(fragment);
                self.last_token = Some(token);
            }
        }
        true
    }

    /// This stream's event for an entry (`None` if the entry makes none in its
    /// shape): the shared one, or for `updateLookup` on an update, the shared one with
    /// the document as it is now appended.
    fn event_of(&self, entry: &Logged) -> Result<Option<StreamEvent>, MongoError> {
        let op = entry.op();
        if self.interest.before_change == BeforeChange::Required
            && op.changes_existing_document()
            && op.pre_image().is_none()
        {
            let bare = Shape {
                pre_image: false,
                post_image: false,
                ..self.shape
            };
            return Err(MongoError::new(
                ErrorCode::NoMatchingDocument,
                format!(
                    "Change stream was configured to require a pre-image for all update, delete and replace events, but the pre-image was not available for event: {}",
                    display_event(entry, bare)?
                ),
            ));
        }
        if let Op::Update { post: None, .. } = op {
            if self.interest.full_document == FullDocument::Required {
                let bare = Shape {
                    post_image: false,
                    ..self.shape
                };
                return Err(MongoError::new(
                    ErrorCode::NoMatchingDocument,
                    format!(
                        "Change stream was configured to require a post-image for all update events, but the post-image was not available for event: {}",
                        display_event(entry, bare)?
                    ),
                ));
            }
        }
        let Some(shared) = entry.event(self.shape)? else {
            return Ok(None);
        };
        if self.interest.post_image() == PostImage::LookedUp && matches!(op, Op::Update { .. }) {
            let current = self.lookup_current(entry)?;
            let mut raw = shared.raw().to_owned();
            event::append_or_null(&mut raw, "fullDocument", current.as_deref());
            return Ok(Some(Arc::new(Event::new(raw))));
        }
        Ok(Some(shared))
    }

    /// The document as it is now (`updateLookup`), if its collection is the same one.
    fn lookup_current(&self, entry: &OplogEntry) -> Result<Option<RawDocumentBuf>, MongoError> {
        let Some(key) = entry.op().document_key() else {
            return Ok(None);
        };
        let Some(id) = key.get("_id").ok().flatten() else {
            return Ok(None);
        };
        let id = Bson::try_from(id)
            .map_err(|e| MongoError::internal(format!("corrupt document key: {e}")))?;
        let reader = self.engine.reader()?;
        let Some(meta) = reader.collection(&entry.ns().to_namespace())? else {
            return Ok(None);
        };
        if !entry.is_of(&meta.uuid) {
            return Ok(None);
        }
        match reader.get_by_id(&meta, &id)? {
            Some(doc) => Ok(Some(oplog::raw_document(&doc)?)),
            None => Ok(None),
        }
    }
}

/// A stream handed over to the hub's dispatcher (see [`ChangeStream::hand_off`]).
/// Dropping it cancels the wait if no entry woke the stream yet.
#[derive(Debug)]
pub struct HandedOff {
    engine: Arc<Engine>,
    id: Option<u64>,
}

impl HandedOff {
    /// Ends the wait: `true` if it was still waiting (its hand-off is cancelled and gives
    /// the stream back), `false` if an entry woke it (its hand-off runs or ran).
    pub fn cancel(&mut self) -> bool {
        self.id
            .take()
            .is_some_and(|id| self.engine.hub().cancel(id).is_some())
    }

    /// The wait ended with the hand-off's own answer: nothing to cancel.
    pub fn finished(mut self) {
        self.id = None;
    }
}

impl Drop for HandedOff {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// An event as error messages show it.
fn display_event(entry: &OplogEntry, shape: Shape) -> Result<String, MongoError> {
    let raw = event::build(entry, shape)?.unwrap_or_default();
    let doc = Document::try_from(raw.as_ref())
        .map_err(|e| MongoError::internal(format!("cannot decode an event: {e}")))?;
    Ok(crate::display_value(&Bson::Document(doc)))
}

/// mongod refuses events whose `_id` (the resume token) the pipeline changed.
/// Splits an event over 16 MB into fragments as `$changeStreamSplitLargeEvent` does:
/// each fragment is `{_id: <token of fragment n>, splitEvent: {fragment: n, of: N}, ...}`
/// with the event's other top-level fields, in order, packed greedily; a field is never
/// split, so one that cannot fit a fragment by itself fails the stream.
fn split_event(
    event: &Document,
    token: ResumeToken,
) -> Result<Vec<(ResumeToken, Document)>, MongoError> {
    // Room for `_id` and `splitEvent` in every fragment.
    const OVERHEAD: usize = 256;
    let mut groups: Vec<Vec<(&String, &Bson)>> = vec![Vec::new()];
    let mut used = OVERHEAD;
    for (key, value) in event.iter().filter(|(k, _)| k.as_str() != "_id") {
        let size = doc! {key.clone(): value.clone()}
            .to_vec()
            .map(|v| v.len())
            .unwrap_or(0);
        if size + OVERHEAD > MAX_EVENT_SIZE {
            return Err(MongoError::location(
                7182803,
                format!("Executor error during getMore :: caused by :: Unable to split change stream event: field '{key}' does not fit in a fragment of 16MB"),
            ));
        }
        let current_is_empty = groups.last().is_none_or(Vec::is_empty);
        if used + size > MAX_EVENT_SIZE && !current_is_empty {
            groups.push(Vec::new());
            used = OVERHEAD;
        }
        used += size;
        if let Some(group) = groups.last_mut() {
            group.push((key, value));
        }
    }
    let of = groups.len() as i32;
    Ok(groups
        .into_iter()
        .enumerate()
        .map(|(i, fields)| {
            let t = ResumeToken {
                fragment: i as u32 + 1,
                ..token
            };
            let mut fragment =
                doc! {"_id": t.to_document(), "splitEvent": {"fragment": i as i32 + 1, "of": of}};
            for (k, v) in fields {
                fragment.insert(k.clone(), v.clone());
            }
            (t, fragment)
        })
        .collect())
}

fn check_id_unchanged(event: &Document, token: &ResumeToken) -> Result<(), MongoError> {
    let expected = token.to_document();
    match event.get("_id") {
        Some(Bson::Document(d)) if *d == expected => Ok(()),
        found => Err(MongoError::new(
            ErrorCode::ChangeStreamFatalError,
            format!(
                "Encountered an event whose _id field, which contains the resume token, was modified by the pipeline. Modifying the _id field of an event makes it impossible to resume the stream from that point. Only transformations that retain the unmodified _id field are allowed. Expected: {} but found: {}",
                crate::display_value(&Bson::Document(doc! {"_id": expected})),
                match found {
                    Some(v) => crate::display_value(&Bson::Document(doc! {"_id": v.clone()})),
                    None => "{}".to_owned(),
                }
            ),
        )
        .with_label(labels::NON_RESUMABLE_CHANGE_STREAM_ERROR)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_events_split_into_ordered_fragments() {
        let token = ResumeToken::event(bson::Timestamp {
            time: 5,
            increment: 1,
        });
        let big = "z".repeat(10 * 1024 * 1024);
        let event = doc! {
            "_id": token.to_document(),
            "operationType": "update",
            "fullDocument": {"v": big.clone()},
            "fullDocumentBeforeChange": {"v": big},
        };
        let fragments = split_event(&event, token).expect("splits");
        assert_eq!(fragments.len(), 2);
        for (i, (t, f)) in fragments.iter().enumerate() {
            assert_eq!(f.get_document("_id").ok(), Some(&t.to_document()));
            assert_eq!(
                f.get_document("splitEvent").ok(),
                Some(&doc! {"fragment": i as i32 + 1, "of": 2})
            );
            assert!(f.to_vec().map(|v| v.len()).unwrap_or(usize::MAX) <= MAX_EVENT_SIZE);
        }
        assert!(fragments[0].0.to_hex() < fragments[1].0.to_hex());
        assert!(
            fragments[0].1.contains_key("operationType")
                && fragments[1].1.contains_key("fullDocumentBeforeChange")
        );
        let huge = doc! {"_id": token.to_document(), "f": "x".repeat(17 * 1024 * 1024)};
        assert_eq!(
            split_event(&huge, token).err().map(|e| e.code),
            Some(7182803)
        );
    }

    #[test]
    fn spec_parsing_matches_mongod() {
        let s =
            StreamSpec::parse(&doc! {"fullDocument": "updateLookup", "showExpandedEvents": true})
                .expect("spec");
        assert_eq!(s.full_document, FullDocument::UpdateLookup);
        assert!(s.show_expanded_events);
        assert_eq!(
            StreamSpec::parse(&doc! {"foo": 1})
                .expect_err("unknown")
                .code,
            40415
        );
        assert_eq!(
            StreamSpec::parse(&doc! {"fullDocument": "x"})
                .expect_err("enum")
                .code,
            2
        );
        let t = ResumeToken::event(Timestamp {
            time: 1,
            increment: 1,
        })
        .to_document();
        assert_eq!(
            StreamSpec::parse(&doc! {"resumeAfter": t.clone(), "startAfter": t.clone()})
                .expect_err("both")
                .code,
            50865
        );
        assert_eq!(
            StreamSpec::parse(&doc! {"resumeAfter": t, "startAtOperationTime": Timestamp { time: 1, increment: 1 }})
                .expect_err("two kinds")
                .code,
            40674
        );
        let inv = ResumeToken::invalidate(Timestamp {
            time: 1,
            increment: 1,
        })
        .to_document();
        assert_eq!(
            StreamSpec::parse(&doc! {"resumeAfter": inv.clone()})
                .expect_err("invalidate")
                .code,
            ErrorCode::InvalidResumeToken.code()
        );
        assert!(matches!(
            StreamSpec::parse(&doc! {"startAfter": inv})
                .expect("startAfter")
                .start,
            StartAt::StartAfter(_)
        ));
    }
}
