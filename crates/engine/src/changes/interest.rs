//! What a stream wants to hear about, and the cheap test that rules entries out.
//!
//! An [`Interest`] is a stream's scope, the options that shape its events, and the
//! equality conditions its pipeline's leading `$match` imposes on fields an oplog
//! entry tells without building the event: `operationType`, `ns.db`, `ns.coll`,
//! `documentKey._id` and top-level `fullDocument.<field>`. Each condition is a set of
//! values encoded with `eddy_query::key`, which encodes exactly the values the matcher
//! finds equal alike (1, 1L and 1.0 are one key). An entry is ruled out only when a
//! condition's field is known and none of its values is in the set; anything unknown
//! (an `updateLookup` document, a catalog change) lets it through. So ruling out never
//! changes what a stream returns: the full pipeline still runs on every event that
//! gets through. Streams use it to skip entries without building their events, and
//! the hub's dispatcher to wake only the waiting streams an entry can concern.

use bson::{Bson, RawDocument};
use eddy_query::filter::Filter;

use super::{BeforeChange, FullDocument, Scope, StreamSpec};
use crate::oplog::{CatalogOp, Op, OplogEntry};

/// A field of an event that an oplog entry tells without building the event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Field {
    OperationType,
    NsDb,
    NsColl,
    DocumentId,
    /// A top-level field of `fullDocument`.
    FullDocument(String),
}

impl Field {
    fn of_path(path: &str) -> Option<Field> {
        Some(match path {
            "operationType" => Field::OperationType,
            "ns.db" => Field::NsDb,
            "ns.coll" => Field::NsColl,
            "documentKey._id" => Field::DocumentId,
            _ => {
                let f = path.strip_prefix("fullDocument.")?;
                if f.is_empty() || f.contains('.') || f.starts_with('$') {
                    return None;
                }
                Field::FullDocument(f.to_owned())
            }
        })
    }
}

/// "The event's `field` equals one of `keys`" (sorted encoded values).
#[derive(Debug, Clone)]
struct Condition {
    field: Field,
    keys: Vec<Vec<u8>>,
}

/// Where an update's `fullDocument` comes from, for probing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostImage {
    /// No `fullDocument` on updates.
    Absent,
    /// The recorded post-image, or `null`.
    Recorded,
    /// Looked up when the event is read: unknown in advance.
    LookedUp,
}

/// What one stream wants to hear about.
#[derive(Debug, Clone)]
pub struct Interest {
    pub scope: Scope,
    /// `db.coll` of a collection's stream (the dispatcher files it under that name),
    /// the database's name, or empty for the cluster.
    scope_key: String,
    pub full_document: FullDocument,
    pub before_change: BeforeChange,
    pub expanded: bool,
    conditions: Vec<Condition>,
}

impl Interest {
    /// The interest of a stream on `scope` with `spec`, whose pipeline starts with
    /// `leading` (the filter of its first `$match`, if any).
    pub fn new(scope: Scope, spec: &StreamSpec, leading: Option<&Filter>) -> Interest {
        let mut conditions = Vec::new();
        for (path, values) in leading.map(Filter::equality_sets).unwrap_or_default() {
            let Some(field) = Field::of_path(&path) else {
                continue;
            };
            let mut keys: Vec<Vec<u8>> = values.iter().map(eddy_query::key::encode).collect();
            keys.sort();
            keys.dedup();
            conditions.push(Condition { field, keys });
        }
        let scope_key = match &scope {
            Scope::Collection(ns) => ns.to_string(),
            Scope::Database(db) => db.clone(),
            Scope::Cluster => String::new(),
        };
        Interest {
            scope,
            scope_key,
            full_document: spec.full_document,
            before_change: spec.before_change,
            expanded: spec.show_expanded_events,
            conditions,
        }
    }

    /// The name the dispatcher files this stream under (`db.coll`, or the database).
    pub fn scope_key(&self) -> &str {
        &self.scope_key
    }

    /// Where this stream's update events take `fullDocument` from.
    pub fn post_image(&self) -> PostImage {
        match self.full_document {
            FullDocument::Default => PostImage::Absent,
            FullDocument::UpdateLookup => PostImage::LookedUp,
            FullDocument::WhenAvailable | FullDocument::Required => PostImage::Recorded,
        }
    }

    /// Whether an entry concerns this stream's scope, and whether it invalidates it.
    pub fn relevance(&self, entry: &OplogEntry) -> (bool, bool) {
        let ns = entry.ns();
        match &self.scope {
            Scope::Collection(watched) => {
                let here = ns == *watched;
                match entry.op() {
                    Op::Catalog(CatalogOp::Drop) => (here, here),
                    Op::Catalog(CatalogOp::Rename { to, .. }) => {
                        let both = here || to == watched;
                        (both, both)
                    }
                    Op::Catalog(CatalogOp::DropDatabase) => (false, false),
                    _ => (here, false),
                }
            }
            Scope::Database(db) => {
                if ns.is_system() {
                    return (false, false);
                }
                let here = ns.db == db.as_str();
                match entry.op() {
                    Op::Catalog(CatalogOp::DropDatabase) => (here, here),
                    Op::Catalog(CatalogOp::Rename { to, .. }) => (here || &to.db == db, false),
                    _ => (here, false),
                }
            }
            Scope::Cluster => (
                !matches!(ns.db, "admin" | "config" | "local") && !ns.is_system(),
                false,
            ),
        }
    }

    /// False only when `entry` certainly gives this stream no event that its
    /// pipeline's leading `$match` passes (and no error it must report).
    pub fn may_deliver(&self, entry: &OplogEntry) -> bool {
        self.relevance(entry).0 && self.may_match(entry)
    }

    /// [`Interest::may_deliver`] without the scope: the conditions alone.
    pub fn may_match(&self, entry: &OplogEntry) -> bool {
        let op = entry.op();
        if matches!(op, Op::Catalog(_)) {
            // Rare, and they may invalidate the stream: always looked at.
            return true;
        }
        // A required image that is missing fails the stream before any `$match`.
        let missing_pre = self.before_change == BeforeChange::Required
            && op.changes_existing_document()
            && op.pre_image().is_none();
        let missing_post = self.full_document == FullDocument::Required
            && matches!(op, Op::Update { post: None, .. });
        if missing_pre || missing_post {
            return true;
        }
        let post = self.post_image();
        self.conditions
            .iter()
            .all(|c| match probe(entry, &c.field, post) {
                Some(values) => values.iter().any(|v| c.keys.binary_search(v).is_ok()),
                None => true,
            })
    }

    /// The condition a dispatcher indexes this stream by: its field, its keys, and
    /// whether updates must reach the stream whatever their keys (a `fullDocument`
    /// field of a stream that looks documents up). `None`: every entry in scope.
    pub fn index_condition(&self) -> Option<(&Field, &[Vec<u8>], bool)> {
        let rank = |f: &Field| match f {
            Field::DocumentId => 0,
            Field::FullDocument(_) if self.post_image() != PostImage::LookedUp => 1,
            Field::NsColl => 2,
            Field::OperationType => 3,
            Field::FullDocument(_) => 4,
            Field::NsDb => 5,
        };
        self.conditions
            .iter()
            .min_by_key(|c| rank(&c.field))
            .map(|c| {
                let every_update = matches!(c.field, Field::FullDocument(_))
                    && self.post_image() == PostImage::LookedUp;
                (&c.field, c.keys.as_slice(), every_update)
            })
    }
}

/// The encoded values an event built from `entry` has at `field` (an array field
/// gives the array and each element, as the matcher compares both), or `None` when
/// that is not known before the event is built. Only document operations are probed.
pub fn probe(entry: &OplogEntry, field: &Field, post: PostImage) -> Option<Vec<Vec<u8>>> {
    let string = |s: &str| vec![eddy_query::key::encode(&Bson::String(s.to_owned()))];
    match field {
        Field::OperationType => Some(string(match entry.op() {
            Op::Insert { .. } => "insert",
            Op::Update { .. } => "update",
            Op::Replace { .. } => "replace",
            Op::Delete { .. } => "delete",
            Op::Catalog(_) => return None,
        })),
        Field::NsDb => Some(string(entry.ns().db)),
        Field::NsColl => Some(string(entry.ns().coll)),
        Field::DocumentId => top_level(entry.op().document_key()?, "_id"),
        Field::FullDocument(f) => {
            let doc = match entry.op() {
                Op::Insert { doc, .. } | Op::Replace { doc, .. } => Some(doc),
                Op::Delete { .. } => None,
                Op::Update { post: image, .. } => match post {
                    PostImage::Absent => None,
                    PostImage::Recorded => image,
                    PostImage::LookedUp => return None,
                },
                Op::Catalog(_) => return None,
            };
            match doc {
                Some(doc) => top_level(doc, f),
                // No `fullDocument` (or `null`): no value, so no condition holds.
                None => Some(Vec::new()),
            }
        }
    }
}

/// The encoded value of `doc.field` (and its elements, for an array); none if missing.
fn top_level(doc: &RawDocument, field: &str) -> Option<Vec<Vec<u8>>> {
    let value = match doc.get(field) {
        Ok(Some(v)) => v,
        Ok(None) => return Some(Vec::new()),
        Err(_) => return None,
    };
    let value = Bson::try_from(value).ok()?;
    let mut out = vec![eddy_query::key::encode(&value)];
    if let Bson::Array(items) = &value {
        out.extend(items.iter().map(eddy_query::key::encode));
    }
    Some(out)
}
