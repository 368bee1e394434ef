//! Change events, built once per oplog entry and shape, encoded once, shared.
//!
//! Which fields an event has depends on a few stream options only: whether expanded
//! events are shown, whether the pre-image is asked for, whether a stored post-image
//! is asked for (a [`Shape`]). Every entry the hub publishes is a [`Logged`]: the entry
//! plus one slot per shape, filled by the first stream that needs that shape and read
//! by every other (an `Arc<Event>`: the event's BSON bytes, and its decoded
//! `Document` made the first time a pipeline needs one). A reply copies those bytes
//! into its batch; nothing is re-encoded per stream. `fullDocument: "updateLookup"`
//! is the one per-stream part: the stream appends the document it looked up.
//!
//! Field order is mongod 7.0's: `_id`, `operationType`, `clusterTime`,
//! (`collectionUUID`), `wallTime`, `fullDocument` (insert, replace), `ns`, (`to`),
//! `documentKey`, (`operationDescription`), `updateDescription`,
//! (`stateBeforeChange`), then the images the stream asked for:
//! `fullDocumentBeforeChange`, and for updates `fullDocument`.

use std::sync::{Arc, OnceLock};

use bson::raw::{cstr, RawDocument, RawDocumentBuf};
use bson::{doc, Document, RawBsonRef};
use eddy_codes::MongoError;

use super::token::{self, ResumeToken};
use crate::oplog::{CatalogOp, Op, OplogEntry};

/// The stream options that decide an event's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// `showExpandedEvents`: catalog events beyond drop/rename/dropDatabase,
    /// `collectionUUID`, `operationDescription`, `disambiguatedPaths`.
    pub expanded: bool,
    /// `fullDocumentBeforeChange` on updates, replacements and deletes (the recorded
    /// pre-image, or `null`).
    pub pre_image: bool,
    /// `fullDocument` on updates from the recorded post-image (or `null`).
    pub post_image: bool,
}

const SHAPES: usize = 8;

impl Shape {
    fn slot(self) -> usize {
        usize::from(self.expanded)
            | usize::from(self.pre_image) << 1
            | usize::from(self.post_image) << 2
    }
}

/// One built event: its BSON, its decoded form once a pipeline asked for it, and its
/// canonical Extended JSON once an HTTP event stream asked for it.
#[derive(Debug)]
pub struct Event {
    raw: RawDocumentBuf,
    doc: OnceLock<Document>,
    json: OnceLock<String>,
}

impl Event {
    pub fn new(raw: RawDocumentBuf) -> Event {
        Event {
            raw,
            doc: OnceLock::new(),
            json: OnceLock::new(),
        }
    }

    /// An event whose decoded form is already known.
    pub fn with_document(raw: RawDocumentBuf, doc: Document) -> Event {
        Event {
            raw,
            doc: OnceLock::from(doc),
            json: OnceLock::new(),
        }
    }

    pub fn raw(&self) -> &RawDocument {
        &self.raw
    }

    /// The event's size in bytes.
    pub fn len(&self) -> usize {
        self.raw.as_bytes().len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The decoded event, decoded at most once however many streams ask.
    pub fn document(&self) -> Result<&Document, MongoError> {
        if let Some(d) = self.doc.get() {
            return Ok(d);
        }
        let d = Document::try_from(self.raw.as_ref())
            .map_err(|e| MongoError::internal(format!("cannot decode an event: {e}")))?;
        Ok(self.doc.get_or_init(|| d))
    }

    /// The event as canonical Extended JSON, written at most once however many streams
    /// send it as text.
    pub fn canonical_extjson(&self) -> Result<&str, MongoError> {
        if let Some(j) = self.json.get() {
            return Ok(j);
        }
        let json = canonical_extjson(&self.raw)?;
        Ok(self.json.get_or_init(|| json))
    }
}

/// A document as canonical Extended JSON text, its keys in their order.
pub fn canonical_extjson(raw: &RawDocument) -> Result<String, MongoError> {
    let doc = Document::try_from(raw)
        .map_err(|e| MongoError::internal(format!("cannot decode an event: {e}")))?;
    Ok(bson::Bson::Document(doc)
        .into_canonical_extjson()
        .to_string())
}

impl AsRef<RawDocument> for Event {
    fn as_ref(&self) -> &RawDocument {
        &self.raw
    }
}

/// An oplog entry as the hub holds it, with its events per shape.
pub struct Logged {
    pub entry: OplogEntry,
    /// `Some(None)`: the entry makes no event in that shape (an expanded-only event).
    events: [OnceLock<Option<Arc<Event>>>; SHAPES],
}

impl std::fmt::Debug for Logged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.entry.fmt(f)
    }
}

impl std::ops::Deref for Logged {
    type Target = OplogEntry;

    fn deref(&self) -> &OplogEntry {
        &self.entry
    }
}

impl Logged {
    pub fn new(entry: OplogEntry) -> Logged {
        Logged {
            entry,
            events: Default::default(),
        }
    }

    /// The entry's event in `shape` (built on first use), or `None` when the entry
    /// makes no event in that shape.
    pub fn event(&self, shape: Shape) -> Result<Option<Arc<Event>>, MongoError> {
        let slot = &self.events[shape.slot()];
        if let Some(e) = slot.get() {
            return Ok(e.clone());
        }
        let built = build(&self.entry, shape)?.map(|raw| Arc::new(Event::new(raw)));
        if built.is_some() {
            super::EVENTS_BUILT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(slot.get_or_init(|| built).clone())
    }
}

fn encode(d: &Document) -> Result<RawDocumentBuf, MongoError> {
    RawDocumentBuf::try_from(d)
        .map_err(|e| MongoError::internal(format!("cannot encode an event: {e}")))
}

fn ns_doc(db: &str, coll: &str) -> RawDocumentBuf {
    let mut d = with_capacity(db.len() + coll.len() + 16);
    d.append(cstr!("db"), db);
    d.append(cstr!("coll"), coll);
    d
}

/// The parts of an event that differ between operations.
#[derive(Default)]
struct Parts<'a> {
    op_type: &'static str,
    /// `to` of a rename, which mongod puts before every other field.
    to: Option<RawDocumentBuf>,
    full_document: Option<&'a RawDocument>,
    ns: Option<RawDocumentBuf>,
    document_key: Option<&'a RawDocument>,
    operation_description: Option<RawDocumentBuf>,
    update_description: Option<UpdateDescription<'a>>,
    state_before_change: Option<RawDocumentBuf>,
}

enum UpdateDescription<'a> {
    AsLogged(&'a RawDocument),
    Trimmed(RawDocumentBuf),
}

impl UpdateDescription<'_> {
    fn raw(&self) -> &RawDocument {
        match self {
            UpdateDescription::AsLogged(d) => d,
            UpdateDescription::Trimmed(d) => d,
        }
    }
}

/// The event of `entry` in `shape` (without `updateLookup`'s document), or `None`
/// when it makes none.
pub fn build(entry: &OplogEntry, shape: Shape) -> Result<Option<RawDocumentBuf>, MongoError> {
    let expanded = shape.expanded;
    let ns = entry.ns();
    let op = entry.op();
    let mut p = Parts {
        ns: Some(ns_doc(ns.db, ns.coll)),
        document_key: op.document_key(),
        ..Parts::default()
    };
    match op {
        Op::Insert { doc, .. } => {
            p.op_type = "insert";
            p.full_document = Some(doc);
        }
        Op::Replace { doc, .. } => {
            p.op_type = "replace";
            p.full_document = Some(doc);
        }
        Op::Delete { .. } => p.op_type = "delete",
        Op::Update { description, .. } => {
            p.op_type = "update";
            let has_paths = description
                .get("disambiguatedPaths")
                .ok()
                .flatten()
                .is_some();
            p.update_description = Some(if has_paths && !expanded {
                let mut trimmed = with_capacity(description.as_bytes().len());
                for field in description.iter() {
                    let (k, v) = field.map_err(|e| {
                        MongoError::internal(format!("corrupt update description: {e}"))
                    })?;
                    if k != "disambiguatedPaths" {
                        trimmed.append(k, v);
                    }
                }
                UpdateDescription::Trimmed(trimmed)
            } else {
                UpdateDescription::AsLogged(description)
            });
        }
        Op::Catalog(c) => match c {
            CatalogOp::Drop => p.op_type = "drop",
            CatalogOp::Rename {
                to, drop_target, ..
            } => {
                p.op_type = "rename";
                let mut desc = doc! {"to": {"db": &to.db, "coll": &to.coll}};
                if let Some(t) = drop_target {
                    desc.insert("dropTarget", t.clone());
                }
                p.to = Some(ns_doc(&to.db, &to.coll));
                p.operation_description = Some(encode(&desc)?);
            }
            CatalogOp::DropDatabase => {
                p.op_type = "dropDatabase";
                let mut db = RawDocumentBuf::new();
                db.append(cstr!("db"), ns.db);
                p.ns = Some(db);
            }
            _ if !expanded => return Ok(None),
            CatalogOp::Create { options } => {
                p.op_type = "create";
                p.operation_description = Some(encode(options)?);
            }
            CatalogOp::CreateIndexes { spec } => {
                p.op_type = "createIndexes";
                p.operation_description = Some(encode(&doc! {"indexes": [spec.clone()]})?);
            }
            CatalogOp::DropIndexes { spec, .. } => {
                p.op_type = "dropIndexes";
                p.operation_description = Some(encode(&doc! {"indexes": [spec.clone()]})?);
            }
            CatalogOp::CollMod {
                changes,
                old_options,
                old_index_options,
            } => {
                p.op_type = "modify";
                p.operation_description = Some(encode(changes)?);
                let mut before = doc! {"collectionOptions": old_options.clone()};
                if let Some(index) = old_index_options {
                    before.insert("indexOptions", index.clone());
                }
                p.state_before_change = Some(encode(&before)?);
            }
        },
    }

    let pre = match shape.pre_image && op.changes_existing_document() {
        true => Some(op.pre_image()),
        false => None,
    };
    let post = match op {
        Op::Update { post, .. } if shape.post_image => Some(post),
        _ => None,
    };
    let size = |d: Option<&RawDocument>| d.map_or(0, |d| d.as_bytes().len());
    let capacity = 256
        + size(p.full_document)
        + size(p.document_key)
        + size(p.update_description.as_ref().map(UpdateDescription::raw))
        + size(pre.flatten())
        + size(post.flatten());
    let mut event = with_capacity(capacity);
    if let Some(to) = &p.to {
        event.append(cstr!("to"), to);
    }
    event.append(cstr!("_id"), token_document(ResumeToken::event(entry.ts)));
    event.append(cstr!("operationType"), p.op_type);
    event.append(cstr!("clusterTime"), entry.cluster_time());
    if expanded {
        if let Some(uuid) = entry.uuid() {
            event.append(cstr!("collectionUUID"), uuid);
        }
    }
    event.append(cstr!("wallTime"), entry.wall);
    if let Some(fd) = p.full_document {
        event.append(cstr!("fullDocument"), fd);
    }
    if let Some(ns) = &p.ns {
        event.append(cstr!("ns"), ns);
    }
    if let Some(k) = p.document_key {
        event.append(cstr!("documentKey"), k);
    }
    if expanded {
        if let Some(d) = &p.operation_description {
            event.append(cstr!("operationDescription"), d);
        }
    }
    if let Some(d) = &p.update_description {
        event.append(cstr!("updateDescription"), d.raw());
    }
    if let Some(s) = &p.state_before_change {
        event.append(cstr!("stateBeforeChange"), s);
    }
    if let Some(pre) = pre {
        append_or_null(&mut event, "fullDocumentBeforeChange", pre);
    }
    if let Some(post) = post {
        append_or_null(&mut event, "fullDocument", post);
    }
    if let Some((lsid, txn_number, _)) = entry.transaction() {
        event.append(cstr!("txnNumber"), txn_number);
        event.append(cstr!("lsid"), lsid);
    }
    Ok(Some(event))
}

/// Appends `field: doc`, or `field: null` when there is no document.
pub fn append_or_null(event: &mut RawDocumentBuf, field: &str, doc: Option<&RawDocument>) {
    let key = <&bson::raw::CStr>::try_from(field).expect("field names hold no NUL");
    match doc {
        Some(d) => event.append(key, d),
        None => event.append(key, RawBsonRef::Null),
    }
}

/// The `invalidate` event that follows the event at `entry`.
pub fn invalidate(entry: &OplogEntry) -> RawDocumentBuf {
    let mut event = RawDocumentBuf::new();
    event.append(
        cstr!("_id"),
        token_document(ResumeToken::invalidate(entry.ts)),
    );
    event.append(cstr!("operationType"), "invalidate");
    event.append(cstr!("clusterTime"), entry.ts);
    event.append(cstr!("wallTime"), entry.wall);
    event
}

/// A token as the `{_data: "<hex>"}` document of an event's `_id`.
pub fn token_document(token: ResumeToken) -> RawDocumentBuf {
    let mut hex = [0u8; token::HEX_LEN];
    let mut d = with_capacity(token::HEX_LEN + 16);
    d.append(cstr!("_data"), token.write_hex(&mut hex));
    d
}

/// An empty document with room for `capacity` bytes: an event is built without
/// growing its buffer again and again.
fn with_capacity(capacity: usize) -> RawDocumentBuf {
    let mut bytes = RawDocumentBuf::new().into_bytes();
    bytes.reserve(capacity);
    RawDocumentBuf::from_bytes(bytes).expect("an empty document stays one")
}
