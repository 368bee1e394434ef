//! mongod's v2 ("$v: 2") update diffs and the change-stream `updateDescription`
//! derived from them.
//!
//! mongod never describes an update by comparing whole documents after the fact in
//! one fixed way; it records a *diff* in the oplog and change streams parse that diff
//! (`change_stream_document_diff_parser.cpp`). Two producers exist and both are
//! modelled here:
//!
//! * modifier updates (`$set`, `$push`, ...) log the paths each update node touched
//!   (`V2LogBuilder`); `update.rs` records those paths and [`DiffTree::from_log`]
//!   builds the same tree;
//! * pipeline updates diff the pre- and post-image ([`compute_oplog_diff`], a port of
//!   `document_diff_calculator.cpp` including its size heuristics: a sub-diff larger
//!   than the new value is replaced by the value, and a diff not smaller than the new
//!   document makes mongod log a full replacement, which change streams report as a
//!   `replace` event).
//!
//! [`DiffTree::describe`] then produces `updatedFields`, `removedFields`,
//! `truncatedArrays` and `disambiguatedPaths` exactly in the parser's order: in each
//! object, updates, then inserts, then deletes, then sub-diffs; in each array, the
//! resize, then entries by index. A path is "ambiguous" (listed in
//! `disambiguatedPaths`) when a field name after the first component is a strictly
//! numeric string or when any field name contains a dot.

use bson::{doc, Bson, Document};

/// The change-stream description of an update (`updateDescription`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateDescription {
    pub updated_fields: Document,
    pub removed_fields: Vec<String>,
    pub truncated_arrays: Vec<(String, u32)>,
    pub disambiguated_paths: Document,
}

impl UpdateDescription {
    /// The `updateDescription` document as change events carry it. mongod sends
    /// `disambiguatedPaths` only with `showExpandedEvents`, hence the flag.
    pub fn to_document(&self, show_expanded_events: bool) -> Document {
        let mut d = doc! {
            "updatedFields": self.updated_fields.clone(),
            "removedFields": self.removed_fields.clone(),
            "truncatedArrays": self
                .truncated_arrays
                .iter()
                .map(|(f, n)| Bson::Document(doc! {"field": f.clone(), "newSize": *n as i32}))
                .collect::<Vec<_>>(),
        };
        if show_expanded_events {
            d.insert("disambiguatedPaths", self.disambiguated_paths.clone());
        }
        d
    }
}

/// One component of a path taken through a document at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPart {
    Field(String),
    Index(usize),
}

/// A diff of a document or sub-document.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DocDiff {
    pub deletes: Vec<String>,
    pub updates: Vec<(String, Bson)>,
    pub inserts: Vec<(String, Bson)>,
    pub subs: Vec<(String, DiffTree)>,
}

/// A diff of an array: an optional new size, then per-index updates or sub-diffs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArrDiff {
    pub resize: Option<u32>,
    pub entries: Vec<(usize, ArrEntry)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ArrEntry {
    Update(Bson),
    Sub(DiffTree),
}

/// A node of a v2 diff.
#[derive(Debug, Clone, PartialEq)]
pub enum DiffTree {
    Doc(DocDiff),
    Arr(ArrDiff),
}

/// What an update node logged for a path (`V2LogBuilder`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    Updated,
    Created,
    Deleted,
}

impl DiffTree {
    /// Whether the diff changes nothing.
    pub fn is_empty(&self) -> bool {
        match self {
            DiffTree::Doc(d) => {
                d.deletes.is_empty()
                    && d.updates.is_empty()
                    && d.inserts.is_empty()
                    && d.subs.is_empty()
            }
            DiffTree::Arr(a) => a.resize.is_none() && a.entries.is_empty(),
        }
    }

    /// Builds the diff a modifier update logs. `log` holds the paths in the order the
    /// update nodes logged them; values are read from `post` (no two logged paths of
    /// one update overlap, except paths beneath a created one, which are part of it).
    pub fn from_log(log: &[(Vec<PathPart>, LogKind)], post: &Document) -> DiffTree {
        let mut root = DocDiff::default();
        for (path, kind) in log {
            if path.is_empty() {
                continue;
            }
            let value = value_at(post, path).cloned().unwrap_or(Bson::Null);
            insert_log(&mut root, path, *kind, value);
        }
        DiffTree::Doc(root)
    }

    /// The v2 diff document (the oplog's `diff` field).
    pub fn to_document(&self) -> Document {
        match self {
            DiffTree::Doc(d) => {
                let mut out = Document::new();
                if !d.deletes.is_empty() {
                    let mut s = Document::new();
                    for f in &d.deletes {
                        s.insert(f.clone(), false);
                    }
                    out.insert("d", s);
                }
                if !d.updates.is_empty() {
                    let mut s = Document::new();
                    for (f, v) in &d.updates {
                        s.insert(f.clone(), v.clone());
                    }
                    out.insert("u", s);
                }
                if !d.inserts.is_empty() {
                    let mut s = Document::new();
                    for (f, v) in &d.inserts {
                        s.insert(f.clone(), v.clone());
                    }
                    out.insert("i", s);
                }
                for (f, sub) in &d.subs {
                    out.insert(format!("s{f}"), sub.to_document());
                }
                out
            }
            DiffTree::Arr(a) => {
                let mut out = doc! {"a": true};
                if let Some(n) = a.resize {
                    out.insert("l", n as i32);
                }
                for (i, e) in &a.entries {
                    match e {
                        ArrEntry::Update(v) => {
                            out.insert(format!("u{i}"), v.clone());
                        }
                        ArrEntry::Sub(s) => {
                            out.insert(format!("s{i}"), s.to_document());
                        }
                    }
                }
                out
            }
        }
    }

    /// The change-stream `updateDescription` for this diff.
    pub fn describe(&self) -> UpdateDescription {
        let mut b = Builder::default();
        b.walk(self);
        b.desc
    }
}

fn value_at<'a>(doc: &'a Document, path: &[PathPart]) -> Option<&'a Bson> {
    let (first, rest) = path.split_first()?;
    let PathPart::Field(f) = first else {
        return None;
    };
    let mut cur = doc.get(f)?;
    for p in rest {
        cur = match (p, cur) {
            (PathPart::Field(f), Bson::Document(d)) => d.get(f)?,
            (PathPart::Index(i), Bson::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn insert_log(root: &mut DocDiff, path: &[PathPart], kind: LogKind, value: Bson) {
    // Walk down through sub-diffs, stopping if a prefix was itself logged as a leaf.
    let mut node = NodeMut::Doc(root);
    for (i, part) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        let next_is_index = path
            .get(i + 1)
            .is_some_and(|p| matches!(p, PathPart::Index(_)));
        node = match (node, part) {
            (NodeMut::Doc(d), PathPart::Field(f)) => {
                if last {
                    match kind {
                        LogKind::Updated => upsert_pair(&mut d.updates, f, value),
                        LogKind::Created => upsert_pair(&mut d.inserts, f, value),
                        LogKind::Deleted => {
                            if !d.deletes.contains(f) {
                                d.deletes.push(f.clone())
                            }
                        }
                    }
                    return;
                }
                if d.updates.iter().any(|(k, _)| k == f) || d.inserts.iter().any(|(k, _)| k == f) {
                    return;
                }
                let pos = match d.subs.iter().position(|(k, _)| k == f) {
                    Some(p) => p,
                    None => {
                        let sub = if next_is_index {
                            DiffTree::Arr(ArrDiff::default())
                        } else {
                            DiffTree::Doc(DocDiff::default())
                        };
                        d.subs.push((f.clone(), sub));
                        d.subs.len() - 1
                    }
                };
                match &mut d.subs[pos].1 {
                    DiffTree::Doc(x) => NodeMut::Doc(x),
                    DiffTree::Arr(x) => NodeMut::Arr(x),
                }
            }
            (NodeMut::Arr(a), PathPart::Index(idx)) => {
                if last {
                    // Deleting an array element is logged by mongod as setting it null.
                    let v = if kind == LogKind::Deleted {
                        Bson::Null
                    } else {
                        value
                    };
                    match a.entries.iter().position(|(k, _)| k == idx) {
                        Some(p) => a.entries[p].1 = ArrEntry::Update(v),
                        None => {
                            a.entries.push((*idx, ArrEntry::Update(v)));
                            a.entries.sort_by_key(|(k, _)| *k);
                        }
                    }
                    return;
                }
                let pos = match a.entries.iter().position(|(k, _)| k == idx) {
                    Some(p) => {
                        if matches!(a.entries[p].1, ArrEntry::Update(_)) {
                            return;
                        }
                        p
                    }
                    None => {
                        let sub = if next_is_index {
                            DiffTree::Arr(ArrDiff::default())
                        } else {
                            DiffTree::Doc(DocDiff::default())
                        };
                        a.entries.push((*idx, ArrEntry::Sub(sub)));
                        a.entries.sort_by_key(|(k, _)| *k);
                        a.entries.iter().position(|(k, _)| k == idx).unwrap_or(0)
                    }
                };
                match &mut a.entries[pos].1 {
                    ArrEntry::Sub(DiffTree::Doc(x)) => NodeMut::Doc(x),
                    ArrEntry::Sub(DiffTree::Arr(x)) => NodeMut::Arr(x),
                    ArrEntry::Update(_) => return,
                }
            }
            // A path whose component kinds disagree with the tree cannot be logged
            // (cannot happen for paths recorded while applying an update).
            _ => return,
        };
    }
}

fn upsert_pair(v: &mut Vec<(String, Bson)>, k: &str, value: Bson) {
    match v.iter().position(|(x, _)| x == k) {
        Some(p) => v[p].1 = value,
        None => v.push((k.to_owned(), value)),
    }
}

enum NodeMut<'a> {
    Doc(&'a mut DocDiff),
    Arr(&'a mut ArrDiff),
}

#[derive(Default)]
struct Builder {
    /// (component, is array index, path ambiguous up to here)
    path: Vec<(String, bool, bool)>,
    desc: UpdateDescription,
}

impl Builder {
    fn push(&mut self, part: String, is_index: bool) {
        let ambiguous_before = self.path.last().is_some_and(|p| p.2);
        let ambiguous = ambiguous_before || {
            let numeric = !is_index && !self.path.is_empty() && is_numeric_strict(&part);
            let dotted = !is_index && !numeric && part.contains('.');
            numeric || dotted
        };
        self.path.push((part, is_index, ambiguous));
    }

    fn pop(&mut self) {
        self.path.pop();
    }

    fn dotted(&self) -> String {
        let parts: Vec<&str> = self.path.iter().map(|p| p.0.as_str()).collect();
        parts.join(".")
    }

    fn note_ambiguity(&mut self) {
        if self.path.last().is_some_and(|p| p.2) {
            let arr: Vec<Bson> = self
                .path
                .iter()
                .map(|(s, idx, _)| {
                    if *idx {
                        Bson::Int32(s.parse().unwrap_or(0))
                    } else {
                        Bson::String(s.clone())
                    }
                })
                .collect();
            let key = self.dotted();
            self.desc.disambiguated_paths.insert(key, arr);
        }
    }

    fn leaf(&mut self, part: String, is_index: bool, value: Option<&Bson>) {
        self.push(part, is_index);
        let key = self.dotted();
        match value {
            Some(v) => {
                self.desc.updated_fields.insert(key, v.clone());
            }
            None => self.desc.removed_fields.push(key),
        }
        self.note_ambiguity();
        self.pop();
    }

    fn walk(&mut self, t: &DiffTree) {
        match t {
            DiffTree::Doc(d) => {
                for (f, v) in d.updates.iter().chain(d.inserts.iter()) {
                    self.leaf(f.clone(), false, Some(v));
                }
                for f in &d.deletes {
                    self.leaf(f.clone(), false, None);
                }
                for (f, sub) in &d.subs {
                    self.push(f.clone(), false);
                    self.walk(sub);
                    self.pop();
                }
            }
            DiffTree::Arr(a) => {
                if let Some(n) = a.resize {
                    let key = self.dotted();
                    self.desc.truncated_arrays.push((key, n));
                    self.note_ambiguity();
                }
                for (i, e) in &a.entries {
                    match e {
                        ArrEntry::Update(v) => self.leaf(i.to_string(), true, Some(v)),
                        ArrEntry::Sub(s) => {
                            self.push(i.to_string(), true);
                            self.walk(s);
                            self.pop();
                        }
                    }
                }
            }
        }
    }
}

/// `FieldRef::isNumericPathComponentStrict`: digits only, no leading zero.
fn is_numeric_strict(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s.len() == 1 || !s.starts_with('0'))
}

// ---------------------------------------------------------------------------------
// BSON sizes (the diff calculator's heuristics compare serialized sizes)
// ---------------------------------------------------------------------------------

/// Serialized size of a value (without type byte and field name).
pub fn value_size(v: &Bson) -> usize {
    match v {
        Bson::Double(_) | Bson::DateTime(_) | Bson::Timestamp(_) | Bson::Int64(_) => 8,
        Bson::String(s) | Bson::JavaScriptCode(s) | Bson::Symbol(s) => 4 + s.len() + 1,
        Bson::Document(d) => doc_size(d),
        Bson::Array(a) => array_size(a),
        Bson::Binary(b) => 4 + 1 + b.bytes.len(),
        Bson::Undefined | Bson::Null | Bson::MinKey | Bson::MaxKey => 0,
        Bson::ObjectId(_) => 12,
        Bson::Boolean(_) => 1,
        Bson::RegularExpression(r) => r.pattern.as_str().len() + 1 + r.options.as_str().len() + 1,
        Bson::DbPointer(_) => {
            let (ns, _) = crate::cmp::db_pointer_parts(v);
            4 + ns.len() + 1 + 12
        }
        Bson::JavaScriptCodeWithScope(c) => 4 + (4 + c.code.len() + 1) + doc_size(&c.scope),
        Bson::Int32(_) => 4,
        Bson::Decimal128(_) => 16,
    }
}

/// Serialized size of a document.
pub fn doc_size(d: &Document) -> usize {
    4 + d
        .iter()
        .map(|(k, v)| 1 + k.len() + 1 + value_size(v))
        .sum::<usize>()
        + 1
}

fn array_size(a: &[Bson]) -> usize {
    4 + a
        .iter()
        .enumerate()
        .map(|(i, v)| 1 + decimal_len(i) + 1 + value_size(v))
        .sum::<usize>()
        + 1
}

fn decimal_len(mut i: usize) -> usize {
    let mut n = 1;
    while i >= 10 {
        i /= 10;
        n += 1;
    }
    n
}

/// mongod's `binaryEqual`: same type and same bytes (so 1 != 1.0, -0.0 != 0.0,
/// NaN == NaN with the same bits, field order matters).
pub fn binary_equal(a: &Bson, b: &Bson) -> bool {
    match (a, b) {
        (Bson::Double(x), Bson::Double(y)) => x.to_bits() == y.to_bits(),
        (Bson::Document(x), Bson::Document(y)) => docs_binary_equal(x, y),
        (Bson::Array(x), Bson::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| binary_equal(p, q))
        }
        (Bson::JavaScriptCodeWithScope(x), Bson::JavaScriptCodeWithScope(y)) => {
            x.code == y.code && docs_binary_equal(&x.scope, &y.scope)
        }
        _ => a == b,
    }
}

/// [`binary_equal`] for documents.
pub fn docs_binary_equal(x: &Document, y: &Document) -> bool {
    x.len() == y.len()
        && x.iter()
            .zip(y.iter())
            .all(|((ka, va), (kb, vb))| ka == kb && binary_equal(va, vb))
}

// ---------------------------------------------------------------------------------
// The diff calculator (pipeline-style updates)
// ---------------------------------------------------------------------------------

/// mongod's `kSizeOfDeltaOplogEntryMetadata`.
const DELTA_METADATA_PADDING: usize = 15;

/// The diff mongod logs for a pipeline-style update from `pre` to `post`, or `None`
/// when mongod logs a full replacement instead (change streams then report a
/// `replace` event). Returns an empty diff when nothing changed.
pub fn compute_oplog_diff(pre: &Document, post: &Document) -> Option<DiffTree> {
    let d = compute_doc_diff(pre, post, false, DELTA_METADATA_PADDING)?;
    let tree = DiffTree::Doc(d);
    if doc_size(&tree.to_document()) < doc_size(post) {
        Some(tree)
    } else {
        None
    }
}

/// The full diff without size limits (every change described in place).
pub fn compute_full_diff(pre: &Document, post: &Document) -> DiffTree {
    DiffTree::Doc(compute_doc_diff(pre, post, true, 0).unwrap_or_default())
}

fn tree_size(t: &DiffTree) -> usize {
    doc_size(&t.to_document())
}

fn compute_doc_diff(
    pre: &Document,
    post: &Document,
    ignore_size: bool,
    padding: usize,
) -> Option<DocDiff> {
    let mut diff = DocDiff::default();
    let post_size = doc_size(post);
    let mut deletes: Vec<String> = Vec::new();
    let pre_v: Vec<(&String, &Bson)> = pre.iter().collect();
    let post_v: Vec<(&String, &Bson)> = post.iter().collect();
    let (mut i, mut j) = (0, 0);
    while i < pre_v.len() && j < post_v.len() {
        let (pk, pv) = pre_v[i];
        let (qk, qv) = post_v[j];
        if pk == qk && binary_equal(pv, qv) {
            i += 1;
            j += 1;
            continue;
        }
        if pk == qk {
            match (pv, qv) {
                (Bson::Document(a), Bson::Document(b)) => {
                    match compute_doc_diff(a, b, ignore_size, 0) {
                        Some(sub) => diff.subs.push((pk.clone(), DiffTree::Doc(sub))),
                        None => diff.updates.push((pk.clone(), qv.clone())),
                    }
                }
                (Bson::Array(a), Bson::Array(b)) => match compute_array_diff(a, b, ignore_size) {
                    Some(sub) => diff.subs.push((pk.clone(), DiffTree::Arr(sub))),
                    None => diff.updates.push((pk.clone(), qv.clone())),
                },
                _ => diff.updates.push((pk.clone(), qv.clone())),
            }
            i += 1;
            j += 1;
        } else {
            deletes.push(pk.clone());
            i += 1;
        }
    }
    while i < pre_v.len() {
        diff.deletes.push(pre_v[i].0.clone());
        i += 1;
    }
    while j < post_v.len() {
        let (k, v) = post_v[j];
        diff.inserts.push((k.clone(), v.clone()));
        deletes.retain(|d| d != k);
        j += 1;
    }
    // mongod keeps these in a std::set: sorted bytewise.
    deletes.sort();
    diff.deletes.extend(deletes);
    // mongod also bails out early once the partial diff outgrows `post`; the diff only
    // grows, so checking once at the end gives the same answer.
    if ignore_size || post_size > tree_size(&DiffTree::Doc(diff.clone())) + padding {
        Some(diff)
    } else {
        None
    }
}

fn compute_array_diff(pre: &[Bson], post: &[Bson], ignore_size: bool) -> Option<ArrDiff> {
    let mut diff = ArrDiff::default();
    let post_size = array_size(post);
    let n = pre.len().min(post.len());
    for idx in 0..n {
        let (pv, qv) = (&pre[idx], &post[idx]);
        if binary_equal(pv, qv) {
            continue;
        }
        let entry = match (pv, qv) {
            (Bson::Document(a), Bson::Document(b)) => {
                match compute_doc_diff(a, b, ignore_size, 0) {
                    Some(sub) => ArrEntry::Sub(DiffTree::Doc(sub)),
                    None => ArrEntry::Update(qv.clone()),
                }
            }
            (Bson::Array(a), Bson::Array(b)) => match compute_array_diff(a, b, ignore_size) {
                Some(sub) => ArrEntry::Sub(DiffTree::Arr(sub)),
                None => ArrEntry::Update(qv.clone()),
            },
            _ => ArrEntry::Update(qv.clone()),
        };
        diff.entries.push((idx, entry));
    }
    for (idx, v) in post.iter().enumerate().skip(n) {
        diff.entries.push((idx, ArrEntry::Update(v.clone())));
    }
    if pre.len() > post.len() {
        diff.resize = Some(post.len() as u32);
    }
    if ignore_size || post_size > tree_size(&DiffTree::Arr(diff.clone())) {
        Some(diff)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::bson;

    #[test]
    fn sizes_match_serialization() {
        let d = doc! {"a": 1, "b": "xyz", "c": [1.5, {"d": null}], "e": true, "f": 5_i64};
        let bytes = d.to_vec().expect("serializable");
        assert_eq!(doc_size(&d), bytes.len());
    }

    #[test]
    fn pipeline_diff_descriptions() {
        let big = "*".repeat(128);
        // Truncation of an array with a large element.
        let pre = doc! {"_id": 1, "arr": [big.clone(), 1]};
        let post = doc! {"_id": 1, "arr": [big.clone()]};
        let d = compute_oplog_diff(&pre, &post).expect("diff").describe();
        assert_eq!(d.truncated_arrays, vec![("arr".to_owned(), 1)]);
        assert!(d.updated_fields.is_empty());
        // Nested change with dotted and numeric names.
        let pre = doc! {"_id": 1, "obj": {"sub.obj": {"x": [[{"a": {"b.c": 1, "f": big.clone()}}, "t"]]}}};
        let post =
            doc! {"_id": 1, "obj": {"sub.obj": {"x": [[{"a": {"b.c": 2, "f": big.clone()}}]]}}};
        let d = compute_oplog_diff(&pre, &post).expect("diff").describe();
        assert_eq!(d.updated_fields, doc! {"obj.sub.obj.x.0.0.a.b.c": 2});
        assert_eq!(d.truncated_arrays, vec![("obj.sub.obj.x.0".to_owned(), 1)]);
        assert_eq!(
            d.disambiguated_paths,
            doc! {
                "obj.sub.obj.x.0": ["obj", "sub.obj", "x", 0],
                "obj.sub.obj.x.0.0.a.b.c": ["obj", "sub.obj", "x", 0, 0, "a", "b.c"],
            }
        );
        // Small documents: a full replacement is logged instead.
        assert!(compute_oplog_diff(&doc! {"_id": 1, "a": 1}, &doc! {"_id": 1, "b": 2}).is_none());
        // Removed and inserted fields.
        let pre = doc! {"_id": 1, "big": big.clone(), "gone": 1, "x": 1};
        let post = doc! {"_id": 1, "big": big.clone(), "x": 1, "new": 2};
        let d = compute_oplog_diff(&pre, &post).expect("diff").describe();
        assert_eq!(d.updated_fields, doc! {"new": 2});
        assert_eq!(d.removed_fields, vec!["gone".to_owned()]);
        let unchanged = compute_oplog_diff(&pre, &pre).expect("diff");
        assert!(unchanged.is_empty());
    }

    #[test]
    fn log_to_description_order() {
        let post = doc! {"_id": 1, "a": 2, "arrayForReplacement": [0], "t": [{"s": [0, 3]}]};
        let log = vec![
            (vec![PathPart::Field("a".into())], LogKind::Created),
            (
                vec![PathPart::Field("arrayForReplacement".into())],
                LogKind::Updated,
            ),
            (
                vec![
                    PathPart::Field("t".into()),
                    PathPart::Index(0),
                    PathPart::Field("s".into()),
                    PathPart::Index(1),
                ],
                LogKind::Updated,
            ),
        ];
        let tree = DiffTree::from_log(&log, &post);
        let d = tree.describe();
        let keys: Vec<&String> = d.updated_fields.keys().collect();
        assert_eq!(keys, vec!["arrayForReplacement", "a", "t.0.s.1"]);
        assert_eq!(d.updated_fields.get("t.0.s.1"), Some(&bson!(3)));
        assert_eq!(
            tree.to_document(),
            doc! {"u": {"arrayForReplacement": [0]}, "i": {"a": 2}, "st": {"a": true, "s0": {"ss": {"a": true, "u1": 3}}}}
        );
    }
}
