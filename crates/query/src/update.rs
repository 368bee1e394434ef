//! Updates: replacement documents, modifier documents (`$set`, `$inc`, `$push`, ...)
//! and the pipeline form (handed back to the caller, who runs it through the
//! aggregation module).
//!
//! A modifier document is parsed, as in mongod 7.0 (`update_object_node.cpp`), into
//! one tree of path components whose children are ordered with string names
//! lexicographically and numeric names numerically; applying the update walks that
//! tree over the document. Consequences that clients observe and this module keeps:
//!
//! * new fields are appended in tree order (`{$set: {b: 1, a: 1}}` on `{}` gives
//!   `{a: 1, b: 1}`), existing fields keep their place;
//! * two modifiers on the same path, or on a path and its prefix, fail with 40
//!   ConflictingUpdateOperators at parse time;
//! * no-ops are detected per modifier (`$set` to a binary-identical value, `$inc` by
//!   0, `$min` that does not lower, ...), so `modified` is what mongod's `nModified`
//!   counts;
//! * every modification is logged with the runtime path it took (field name or array
//!   index per component); [`crate::diff::DiffTree::from_log`] turns that log into the
//!   v2 oplog diff and the change-stream `updateDescription` mongod would produce.
//!
//! Decimal128 arithmetic (`$inc`/`$mul` involving a Decimal128) is not implemented and
//! returns 115 CommandNotSupported.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bson::{Bson, Document, Timestamp};
use eddy_codes::{ErrorCode, MongoError};

use crate::cmp::{self, values_equal};
use crate::collation::Collation;
use crate::diff::{
    binary_equal, docs_binary_equal, DiffTree, LogKind, PathPart, UpdateDescription,
};
use crate::filter::{Filter, MatchDetails, ValuePredicate};
use crate::path::update_array_index;
use crate::util::{self, bson_to_string, elem_to_string, type_name};

/// A parsed update.
#[derive(Debug, Clone)]
pub enum Update {
    /// A replacement document (`_id` is kept from the original).
    Replacement(Document),
    /// An operator document.
    Modifiers(ModifierUpdate),
    /// A pipeline-style update (an array of stages).
    Pipeline(PipelineUpdate),
}

/// A pipeline-style update: its stages and the command's `let` variables they see.
#[derive(Debug, Clone)]
pub struct PipelineUpdate {
    pub stages: Vec<Document>,
    pub vars: Vec<(String, Bson)>,
    /// The statement's collation, which its expressions compare strings under.
    pub collation: Option<Arc<Collation>>,
}

/// A parsed operator document.
#[derive(Debug, Clone)]
pub struct ModifierUpdate {
    root: ObjNode,
    array_filters: HashMap<String, Filter>,
    renames: Vec<(String, String)>,
    /// The statement's collation (`None`: simple): `$min`/`$max`, `$addToSet`,
    /// `$pull`/`$pullAll` and `$push`'s `$sort` compare strings under it, as mongod's
    /// `UpdateNode::setCollator` makes them.
    collation: Option<Arc<Collation>>,
}

/// What the caller knows when applying an update to one document.
#[derive(Debug, Clone)]
pub struct ApplyContext<'a> {
    /// The match details of the query for this document (for positional `$`).
    pub matched: Option<&'a MatchDetails>,
    /// Whether the document is being inserted by an upsert (`$setOnInsert` applies).
    pub is_upsert_insert: bool,
    /// The time `$currentDate` sets.
    pub now: bson::DateTime,
}

/// The result of applying an update to one document.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The new document.
    pub doc: Document,
    /// Whether mongod would count the document as modified (`nModified`).
    pub modified: bool,
    /// The change-stream `updateDescription` (empty for replacements).
    pub description: UpdateDescription,
    /// The v2 oplog diff; `None` for replacements (logged and reported as `replace`).
    pub diff: Option<Document>,
}

// ---------------------------------------------------------------------------------
// The update tree
// ---------------------------------------------------------------------------------

/// A path component ordered as mongod orders update tree children: numeric strings
/// numerically when both are numeric, otherwise bytewise.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key(String);

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        let num = |s: &str| -> Option<u128> {
            if !s.is_empty() && s.len() < 30 && s.bytes().all(|b| b.is_ascii_digit()) {
                s.parse().ok()
            } else {
                None
            }
        };
        match (num(&self.0), num(&other.0)) {
            (Some(a), Some(b)) => a.cmp(&b).then_with(|| self.0.cmp(&other.0)),
            _ => self.0.as_bytes().cmp(other.0.as_bytes()),
        }
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Clone)]
enum UNode {
    Leaf(Box<Modifier>),
    Obj(ObjNode),
}

#[derive(Debug, Clone, Default)]
struct ObjNode {
    children: BTreeMap<Key, UNode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArithOp {
    Inc,
    Mul,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BitOp {
    And,
    Or,
    Xor,
}

#[derive(Debug, Clone)]
enum PullMatcher {
    /// An object (not an operator document): a query on document elements.
    Object(Filter),
    /// An operator document or regex applied to each element.
    Value(ValuePredicate),
    /// Plain equality.
    Equal(Bson),
}

#[derive(Debug, Clone)]
struct PushSpec {
    values: Vec<Bson>,
    slice: Option<i64>,
    sort: Option<SortPattern>,
    position: Option<i64>,
}

#[derive(Debug, Clone)]
struct SortPattern {
    /// (field path, descending); a single ("", _) sorts whole elements.
    fields: Vec<(String, bool)>,
}

#[derive(Debug, Clone)]
enum Modifier {
    Set(Bson),
    SetOnInsert(Bson),
    Unset,
    Arith(ArithOp, Bson),
    Min(Bson),
    Max(Bson),
    CurrentDate {
        timestamp: bool,
    },
    Push(PushSpec),
    AddToSet(Vec<Bson>),
    Pop {
        first: bool,
    },
    Pull(PullMatcher),
    PullAll(Vec<Bson>),
    Bit(Vec<(BitOp, Bson)>),
    /// At the destination of a `$rename`; the source is in `from`.
    Rename {
        from: String,
    },
    /// At the source of a `$rename`: reserves the path, does nothing itself.
    RenameSource,
}

fn fail(msg: impl Into<String>) -> MongoError {
    MongoError::failed_to_parse(msg)
}

fn bad(msg: impl Into<String>) -> MongoError {
    MongoError::bad_value(msg)
}

/// `{field: value}` as mongod prints a modifier's element in messages.
fn braced(name: &str, v: &Bson) -> String {
    format!("{{{}}}", elem_to_string(name, v))
}

// ---------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------

impl Update {
    /// Parses the `u` of an update statement. `array_filters` are the statement's
    /// `arrayFilters`.
    pub fn parse(spec: &Bson, array_filters: Option<&[Document]>) -> Result<Update, MongoError> {
        Update::parse_with_vars(spec, array_filters, &[])
    }

    /// Parses with a command's `let` variables (name, value): a pipeline-style update
    /// sees them as `$$name` (operator and replacement updates do not use them).
    pub fn parse_with_vars(
        spec: &Bson,
        array_filters: Option<&[Document]>,
        vars: &[(String, Bson)],
    ) -> Result<Update, MongoError> {
        match spec {
            Bson::Array(stages) => {
                if array_filters.is_some_and(|f| !f.is_empty()) {
                    return Err(fail(
                        "arrayFilters may not be specified for pipeline-style updates",
                    ));
                }
                let mut out = Vec::with_capacity(stages.len());
                for s in stages {
                    match s {
                        Bson::Document(d) => out.push(d.clone()),
                        _ => {
                            return Err(MongoError::type_mismatch(
                                "Each element of the 'pipeline' array must be an object",
                            ))
                        }
                    }
                }
                // Refuse bad stages even when no document matches.
                crate::pipeline::Pipeline::parse_update(&out, &var_names(vars))?;
                Ok(Update::Pipeline(PipelineUpdate {
                    stages: out,
                    vars: vars.to_vec(),
                    collation: None,
                }))
            }
            Bson::Document(d) => {
                let is_modifiers = d.keys().next().is_some_and(|k| k.starts_with('$'));
                if !is_modifiers {
                    // A later `$`-prefixed top-level field is refused when the
                    // replacement is applied to a document, not here: an upsert that
                    // inserts may store it, and nothing fails when nothing matches.
                    return Ok(Update::Replacement(d.clone()));
                }
                Ok(Update::Modifiers(ModifierUpdate::parse(
                    d,
                    array_filters.unwrap_or(&[]),
                )?))
            }
            _ => Err(fail("Update argument must be either an object or an array")),
        }
    }

    /// The same update under the statement's collation (`None`: simple, unchanged):
    /// its `arrayFilters`, its operators that compare values (`$min`, `$max`,
    /// `$addToSet`, `$pull`, `$pullAll`, `$push` with `$sort`) and a pipeline's
    /// expressions compare strings under it, as in mongod. A replacement compares
    /// nothing.
    pub fn collated(self, collation: Option<&Arc<Collation>>) -> Update {
        let Some(c) = collation else {
            return self;
        };
        match self {
            Update::Replacement(r) => Update::Replacement(r),
            Update::Pipeline(mut p) => {
                p.collation = Some(Arc::clone(c));
                Update::Pipeline(p)
            }
            Update::Modifiers(mut m) => {
                m.array_filters = std::mem::take(&mut m.array_filters)
                    .into_iter()
                    .map(|(k, f)| (k, f.collated(Some(c))))
                    .collect();
                collate_node(&mut m.root, c);
                m.collation = Some(Arc::clone(c));
                Update::Modifiers(m)
            }
        }
    }

    /// Whether the update replaces the whole document.
    pub fn is_replacement(&self) -> bool {
        matches!(self, Update::Replacement(_))
    }

    /// Applies the update to `doc`. A pipeline update runs through
    /// [`crate::pipeline`]; its diff is [`crate::diff::compute_oplog_diff`]'s, and
    /// `diff: None` means mongod would log (and report) a full replacement.
    pub fn apply(&self, doc: &Document, ctx: &ApplyContext<'_>) -> Result<Applied, MongoError> {
        match self {
            Update::Replacement(r) => apply_replacement(doc, r, ctx.is_upsert_insert),
            Update::Modifiers(m) => m.apply(doc, ctx),
            Update::Pipeline(p) => apply_pipeline(doc, p, ctx),
        }
    }
}

/// Puts the modifiers under `root` that compare values at parse time under `c`:
/// `$pull` conditions, and `$addToSet`'s values (deduplicated again, as mongod's
/// `AddToSetNode::setCollator` does).
fn collate_node(root: &mut ObjNode, c: &Arc<Collation>) {
    for child in root.children.values_mut() {
        match child {
            UNode::Obj(o) => collate_node(o, c),
            UNode::Leaf(m) => match m.as_mut() {
                Modifier::Pull(PullMatcher::Object(f)) => {
                    let filter = std::mem::replace(f, Filter::match_all());
                    *f = filter.collated(Some(c));
                }
                Modifier::Pull(PullMatcher::Value(p)) => p.collate(c),
                Modifier::AddToSet(values) => {
                    let mut deduped: Vec<Bson> = Vec::with_capacity(values.len());
                    for x in values.drain(..) {
                        if !deduped
                            .iter()
                            .any(|y| cmp::values_equal_collated(y, &x, Some(c)))
                        {
                            deduped.push(x);
                        }
                    }
                    *values = deduped;
                }
                _ => {}
            },
        }
    }
}

fn var_names(vars: &[(String, Bson)]) -> Vec<String> {
    vars.iter().map(|(k, _)| k.clone()).collect()
}

/// Replaces `doc` by `replacement`, keeping `_id` (mongod's `ObjectReplaceExecutor`).
/// Top-level `$`-prefixed fields are refused unless `allow_top_level_dollar` (an
/// upsert's insert, or a pipeline update's result); the new document's field names
/// are checked before `_id`'s immutability, as mongod does.
pub fn apply_replacement(
    doc: &Document,
    replacement: &Document,
    allow_top_level_dollar: bool,
) -> Result<Applied, MongoError> {
    crate::storage::validate_document(replacement, allow_top_level_dollar)?;
    let mut new = Document::new();
    match (doc.get("_id"), replacement.get("_id")) {
        (Some(old), Some(newid)) if !values_equal(old, newid) => {
            return Err(MongoError::new(
                ErrorCode::ImmutableField,
                format!(
                    "After applying the update, the (immutable) field '_id' was found to have been altered to {}",
                    elem_to_string("_id", newid)
                ),
            ));
        }
        (Some(old), None) => {
            new.insert("_id", old.clone());
        }
        _ => {}
    }
    for (k, v) in replacement {
        new.insert(k.clone(), v.clone());
    }
    check_id_value(&new)?;
    let modified = !docs_binary_equal(doc, &new);
    Ok(Applied {
        doc: new,
        modified,
        description: UpdateDescription::default(),
        diff: None,
    })
}

/// Runs a pipeline-style update (`$set`, `$unset`, `$replaceWith`, ...) on `doc`;
/// `_id` is kept when the pipeline drops it and may not change (66).
fn apply_pipeline(
    doc: &Document,
    update: &PipelineUpdate,
    ctx: &ApplyContext<'_>,
) -> Result<Applied, MongoError> {
    let pipeline =
        crate::pipeline::Pipeline::parse_update(&update.stages, &var_names(&update.vars))?;
    let env = crate::expr::Env {
        now: ctx.now,
        vars: update.vars.clone(),
        collation: update.collation.clone(),
        ..crate::expr::Env::new()
    };
    let out = pipeline.apply_one(doc.clone(), &env)?.unwrap_or_default();
    // mongod's PipelineExecutor allows top-level `$`-prefixed fields.
    let mut applied = apply_replacement(doc, &out, true)?;
    if let Some(tree) = crate::diff::compute_oplog_diff(doc, &applied.doc) {
        applied.description = tree.describe();
        applied.diff = Some(tree.to_document());
    }
    Ok(applied)
}

/// `_id` may not be an array, a regex or undefined (storage validation).
fn check_id_value(doc: &Document) -> Result<(), MongoError> {
    let what = match doc.get("_id") {
        Some(Bson::Array(_)) => "array",
        Some(Bson::RegularExpression(_)) => "regex",
        Some(Bson::Undefined) => "undefined",
        _ => return Ok(()),
    };
    Err(MongoError::new(
        ErrorCode::InvalidIdField,
        format!("The '_id' value cannot be of type {what}"),
    ))
}

fn is_valid_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_alphanumeric())
}

/// Collects the first components of the paths a filter names (for placeholders).
fn top_level_names(filter: &Document, out: &mut Vec<String>) {
    for (k, v) in filter {
        if matches!(k.as_str(), "$and" | "$or" | "$nor") {
            if let Bson::Array(items) = v {
                for i in items {
                    if let Bson::Document(d) = i {
                        top_level_names(d, out);
                    }
                }
            }
        } else if !k.starts_with('$') {
            let first = k.split('.').next().unwrap_or("").to_owned();
            if !out.contains(&first) {
                out.push(first);
            }
        }
    }
}

fn parse_array_filters(filters: &[Document]) -> Result<HashMap<String, Filter>, MongoError> {
    let mut out = HashMap::new();
    for f in filters {
        let ctx = |e: MongoError| MongoError {
            message: format!("Error parsing array filter :: caused by :: {}", e.message),
            ..e
        };
        let parsed = Filter::parse(f).map_err(ctx)?;
        let mut names = Vec::new();
        top_level_names(f, &mut names);
        if names.len() > 1 {
            return Err(ctx(fail(format!(
                "Expected a single top-level field name, found '{}' and '{}'",
                names[0], names[1]
            ))));
        }
        let Some(name) = names.pop() else {
            return Err(fail(
                "Cannot use an expression without a top-level field name in arrayFilters",
            ));
        };
        if !is_valid_identifier(&name) {
            return Err(ctx(bad(format!(
                "The top-level field name must be an alphanumeric string beginning with a lowercase letter, found '{name}'"
            ))));
        }
        if out.contains_key(&name) {
            return Err(fail(format!(
                "Found multiple array filters with the same top-level field name {name}"
            )));
        }
        out.insert(name, parsed);
    }
    Ok(out)
}

fn known_modifier(op: &str) -> bool {
    matches!(
        op,
        "$set"
            | "$setOnInsert"
            | "$unset"
            | "$inc"
            | "$mul"
            | "$min"
            | "$max"
            | "$currentDate"
            | "$push"
            | "$addToSet"
            | "$pop"
            | "$pull"
            | "$pullAll"
            | "$bit"
            | "$rename"
    )
}

impl ModifierUpdate {
    /// Parses an operator document with its `arrayFilters`.
    pub fn parse(
        spec: &Document,
        array_filters: &[Document],
    ) -> Result<ModifierUpdate, MongoError> {
        let filters = parse_array_filters(array_filters)?;
        let mut root = ObjNode::default();
        let mut used_identifiers: Vec<String> = Vec::new();
        let mut renames = Vec::new();
        for (op, arg) in spec {
            if !known_modifier(op) {
                return Err(fail(format!(
                    "Unknown modifier: {op}. Expected a valid update modifier or pipeline-style update specified as an array"
                )));
            }
            let Bson::Document(fields) = arg else {
                return Err(fail(format!(
                    "Modifiers operate on fields but we found type {} instead. For example: {{$mod: {{<field>: ...}}}} not {}",
                    type_name(arg),
                    braced(op, arg)
                )));
            };
            for (path, value) in fields {
                if op == "$rename" {
                    let (to, from) = parse_rename(path, value)?;
                    validate_path(&from, &filters, &mut used_identifiers)?;
                    validate_path(&to, &filters, &mut used_identifiers)?;
                    insert_path(
                        &mut root,
                        &from,
                        UNode::Leaf(Box::new(Modifier::RenameSource)),
                    )?;
                    insert_path(
                        &mut root,
                        &to,
                        UNode::Leaf(Box::new(Modifier::Rename { from: from.clone() })),
                    )?;
                    renames.push((from, to));
                    continue;
                }
                validate_path(path, &filters, &mut used_identifiers)?;
                let m = parse_modifier(op, path, value)?;
                insert_path(&mut root, path, UNode::Leaf(Box::new(m)))?;
            }
        }
        for id in filters.keys() {
            if !used_identifiers.contains(id) {
                return Err(fail(format!(
                    "The array filter for identifier '{id}' was not used in the update {}",
                    bson_to_string(&Bson::Document(spec.clone()))
                )));
            }
        }
        Ok(ModifierUpdate {
            root,
            array_filters: filters,
            renames,
            collation: None,
        })
    }
}

fn parse_rename(from: &str, to: &Bson) -> Result<(String, String), MongoError> {
    let Bson::String(to) = to else {
        return Err(bad(format!(
            "The 'to' field for $rename must be a string: {}",
            elem_to_string(from, to)
        )));
    };
    // A field name cannot hold a NUL (it is a cstring in BSON); the source is a key and
    // cannot, but the target is a string value and can (found by the `update` fuzzer).
    if to.contains('\0') {
        return Err(bad(
            "The 'to' field for $rename cannot contain an embedded null byte",
        ));
    }
    let shown = elem_to_string(from, &Bson::String(to.clone()));
    if from == to {
        return Err(bad(format!(
            "The source and target field for $rename must differ: {shown}"
        )));
    }
    let is_prefix = |a: &str, b: &str| b.starts_with(a) && b.as_bytes().get(a.len()) == Some(&b'.');
    if is_prefix(from, to) || is_prefix(to, from) {
        return Err(bad(format!(
            "The source and target field for $rename must not be on the same path: {shown}"
        )));
    }
    // Only `$` and `$[...]` components are dynamic; other `$`-prefixed names are
    // plain field names (MongoDB 5.0+).
    if from.split('.').any(is_dynamic_part) {
        return Err(bad(format!(
            "The source field for $rename may not be dynamic: {from}"
        )));
    }
    if to.split('.').any(is_dynamic_part) {
        return Err(bad(format!(
            "The destination field for $rename may not be dynamic: {to}"
        )));
    }
    Ok((to.clone(), from.to_owned()))
}

fn validate_path(
    path: &str,
    filters: &HashMap<String, Filter>,
    used: &mut Vec<String>,
) -> Result<(), MongoError> {
    if path.is_empty() {
        return Err(MongoError::new(
            ErrorCode::EmptyFieldName,
            "An empty update path is not valid.",
        ));
    }
    let parts: Vec<&str> = path.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(MongoError::new(
            ErrorCode::EmptyFieldName,
            format!("The update path '{path}' contains an empty field name, which is not allowed."),
        ));
    }
    if parts.iter().filter(|p| **p == "$").count() > 1 {
        return Err(bad(format!(
            "Too many positional (i.e. '$') elements found in path '{path}'"
        )));
    }
    for (i, p) in parts.iter().enumerate() {
        if !is_dynamic_part(p) {
            // Any other name, `$`-prefixed ones included, is a field name; whether it
            // may be stored is decided when the update is applied.
            continue;
        }
        if *p == "$" || *p == "$[]" {
            if i == 0 {
                return Err(bad(if *p == "$" {
                    format!("Cannot have positional (i.e. '$') element in the first position in path '{path}'")
                } else {
                    format!("Cannot have array filter identifier (i.e. '$[<id>]') element in the first position in path '{path}'")
                }));
            }
            continue;
        }
        let id = p
            .strip_prefix("$[")
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or_default();
        if i == 0 {
            return Err(bad(format!(
                "Cannot have array filter identifier (i.e. '$[<id>]') element in the first position in path '{path}'"
            )));
        }
        if !filters.contains_key(id) {
            return Err(bad(format!(
                "No array filter found for identifier '{id}' in path '{path}'"
            )));
        }
        if !used.iter().any(|u| u == id) {
            used.push(id.to_owned());
        }
    }
    Ok(())
}

/// mongod's `fieldchecker::isArrayFilterIdentifier`: `$[]` or `$[<id>]`.
fn is_array_filter_part(p: &str) -> bool {
    p.len() >= 3 && p.starts_with("$[") && p.ends_with(']')
}

/// The positional `$` or an array filter: the path components an update resolves
/// against the document. Every other component, `$`-prefixed or not, names a field.
fn is_dynamic_part(p: &str) -> bool {
    p == "$" || is_array_filter_part(p)
}

fn insert_path(root: &mut ObjNode, path: &str, leaf: UNode) -> Result<(), MongoError> {
    let parts: Vec<&str> = path.split('.').collect();
    let conflict = |at: &str| {
        MongoError::new(
            ErrorCode::ConflictingUpdateOperators,
            format!("Updating the path '{path}' would create a conflict at '{at}'"),
        )
    };
    let mut node = root;
    for (i, p) in parts.iter().enumerate() {
        let key = Key((*p).to_owned());
        let last = i + 1 == parts.len();
        if last {
            if node.children.contains_key(&key) {
                return Err(conflict(path));
            }
            node.children.insert(key, leaf);
            return Ok(());
        }
        let entry = node
            .children
            .entry(key)
            .or_insert_with(|| UNode::Obj(ObjNode::default()));
        match entry {
            UNode::Obj(o) => node = o,
            UNode::Leaf(_) => return Err(conflict(&parts[..=i].join("."))),
        }
    }
    Ok(())
}

fn parse_modifier(op: &str, path: &str, v: &Bson) -> Result<Modifier, MongoError> {
    Ok(match op {
        "$set" => Modifier::Set(v.clone()),
        "$setOnInsert" => Modifier::SetOnInsert(v.clone()),
        "$unset" => Modifier::Unset,
        "$inc" | "$mul" => {
            if !cmp::is_number(v) {
                let verb = if op == "$inc" { "increment" } else { "multiply" };
                return Err(MongoError::type_mismatch(format!(
                    "Cannot {verb} with non-numeric argument: {}",
                    braced(path, v)
                )));
            }
            let aop = if op == "$inc" { ArithOp::Inc } else { ArithOp::Mul };
            Modifier::Arith(aop, v.clone())
        }
        "$min" => Modifier::Min(v.clone()),
        "$max" => Modifier::Max(v.clone()),
        "$currentDate" => parse_current_date(path, v)?,
        "$push" => Modifier::Push(parse_push(v)?),
        "$addToSet" => {
            let mut values = match v {
                Bson::Document(d) if d.keys().next().map(String::as_str) == Some("$each") => {
                    let each = d.get("$each").cloned().unwrap_or(Bson::Null);
                    let Bson::Array(items) = each else {
                        return Err(MongoError::type_mismatch(format!(
                            "The argument to $each in $addToSet must be an array but it was of type {}",
                            type_name(&each)
                        )));
                    };
                    if d.len() > 1 {
                        return Err(bad(format!(
                            "Found unexpected fields after $each in $addToSet: {}",
                            bson_to_string(v)
                        )));
                    }
                    items
                }
                other => vec![other.clone()],
            };
            let mut deduped: Vec<Bson> = Vec::with_capacity(values.len());
            for x in values.drain(..) {
                if !deduped.iter().any(|y| values_equal(y, &x)) {
                    deduped.push(x);
                }
            }
            Modifier::AddToSet(deduped)
        }
        "$pop" => {
            let n = util::parse_integer_to_long(path, v)?;
            if n != 1 && n != -1 {
                return Err(fail(format!("$pop expects 1 or -1, found: {n}")));
            }
            Modifier::Pop { first: n == -1 }
        }
        "$pull" => Modifier::Pull(match v {
            Bson::Document(d)
                if !d
                    .keys()
                    .next()
                    .is_some_and(|k| is_path_accepting_keyword(k)) =>
            {
                PullMatcher::Object(Filter::parse(d)?)
            }
            Bson::Document(_) | Bson::RegularExpression(_) => {
                PullMatcher::Value(ValuePredicate::parse(v)?)
            }
            other => PullMatcher::Equal(other.clone()),
        }),
        "$pullAll" => {
            let Bson::Array(items) = v else {
                return Err(bad(format!(
                    "$pullAll requires an array argument but was given a {}",
                    type_name(v)
                )));
            };
            Modifier::PullAll(items.clone())
        }
        "$bit" => Modifier::Bit(parse_bit(v)?),
        _ => {
            return Err(fail(format!(
                "Unknown modifier: {op}. Expected a valid update modifier or pipeline-style update specified as an array"
            )))
        }
    })
}

fn is_path_accepting_keyword(k: &str) -> bool {
    matches!(
        k,
        "$all"
            | "$bitsAllClear"
            | "$bitsAllSet"
            | "$bitsAnyClear"
            | "$bitsAnySet"
            | "$elemMatch"
            | "$eq"
            | "$exists"
            | "$geoIntersects"
            | "$geoNear"
            | "$geoWithin"
            | "$gt"
            | "$gte"
            | "$in"
            | "$lt"
            | "$lte"
            | "$mod"
            | "$ne"
            | "$near"
            | "$nearSphere"
            | "$nin"
            | "$not"
            | "$options"
            | "$regex"
            | "$size"
            | "$type"
            | "$within"
    )
}

fn parse_current_date(path: &str, v: &Bson) -> Result<Modifier, MongoError> {
    match v {
        Bson::Boolean(_) => Ok(Modifier::CurrentDate { timestamp: false }),
        Bson::Document(d) => {
            let mut ts = None;
            for (k, x) in d {
                if k != "$type" {
                    return Err(bad(format!("Unrecognized $currentDate option: {k}")));
                }
                match x {
                    Bson::String(s) if s == "date" => ts = Some(false),
                    Bson::String(s) if s == "timestamp" => ts = Some(true),
                    _ => {
                        return Err(bad(
                            "The '$type' string field is required to be 'date' or 'timestamp': {$currentDate: {field : {$type: 'date'}}}",
                        ))
                    }
                }
            }
            match ts {
                Some(timestamp) => Ok(Modifier::CurrentDate { timestamp }),
                None => Err(bad(
                    "The '$type' string field is required to be 'date' or 'timestamp': {$currentDate: {field : {$type: 'date'}}}",
                )),
            }
        }
        _ => Err(bad(format!(
            "{} is not valid type for $currentDate. Please use a boolean ('true') or a $type expression ({{$type: 'timestamp/date'}}).",
            elem_to_string(path, v)
        ))),
    }
}

fn parse_push(v: &Bson) -> Result<PushSpec, MongoError> {
    let Bson::Document(d) = v else {
        return Ok(PushSpec {
            values: vec![v.clone()],
            slice: None,
            sort: None,
            position: None,
        });
    };
    if !d.contains_key("$each") {
        return Ok(PushSpec {
            values: vec![v.clone()],
            slice: None,
            sort: None,
            position: None,
        });
    }
    for k in d.keys() {
        if !matches!(k.as_str(), "$each" | "$slice" | "$sort" | "$position") {
            return Err(bad(format!("Unrecognized clause in $push: {k}")));
        }
    }
    let each = d.get("$each").cloned().unwrap_or(Bson::Null);
    let Bson::Array(values) = each else {
        return Err(bad(format!(
            "The argument to $each in $push must be an array but it was of type: {}",
            type_name(&each)
        )));
    };
    let slice = match d.get("$slice") {
        None => None,
        Some(s) => Some(util::parse_integer_to_long("$slice", s).map_err(|_| {
            bad(format!(
                "The value for $slice must be an integer value but was given type: {}",
                type_name(s)
            ))
        })?),
    };
    let sort = match d.get("$sort") {
        None => None,
        Some(Bson::Document(p)) => {
            if p.is_empty() {
                return Err(bad("The $sort pattern is empty when it should be a set of fields."));
            }
            let mut fields = Vec::new();
            for (f, dir) in p {
                let n = util::number_as_f64(dir);
                if n != Some(1.0) && n != Some(-1.0) {
                    return Err(bad("The $sort element value must be either 1 or -1"));
                }
                if f.split('.').any(|x| x.is_empty()) {
                    return Err(bad(format!(
                        "The $sort field is a dotted field but has an empty part: {f}"
                    )));
                }
                fields.push((f.clone(), n == Some(-1.0)));
            }
            Some(SortPattern { fields })
        }
        Some(x) if cmp::is_number(x) => {
            let n = util::number_as_f64(x);
            if n != Some(1.0) && n != Some(-1.0) {
                return Err(bad("The $sort element value must be either 1 or -1"));
            }
            Some(SortPattern {
                fields: vec![(String::new(), n == Some(-1.0))],
            })
        }
        Some(_) => {
            return Err(bad(
                "The $sort is invalid: use 1/-1 to sort the whole element, or {field:1/-1} to sort embedded fields",
            ))
        }
    };
    let position = match d.get("$position") {
        None => None,
        Some(p) => Some(util::parse_integer_to_long("$position", p).map_err(|_| {
            bad(format!(
                "The value for $position must be an integer value, not of type: {}",
                type_name(p)
            ))
        })?),
    };
    Ok(PushSpec {
        values,
        slice,
        sort,
        position,
    })
}

fn parse_bit(v: &Bson) -> Result<Vec<(BitOp, Bson)>, MongoError> {
    let Bson::Document(d) = v else {
        return Err(bad(format!(
            "The $bit modifier is not compatible with a {}. You must pass in an embedded document: {{$bit: {{field: {{and/or/xor: #}}}}",
            type_name(v)
        )));
    };
    let mut ops = Vec::new();
    for (k, x) in d {
        let op = match k.as_str() {
            "and" => BitOp::And,
            "or" => BitOp::Or,
            "xor" => BitOp::Xor,
            _ => {
                return Err(bad(format!(
                    "The $bit modifier only supports 'and', 'or', and 'xor', not '{k}' which is an unknown operator: {}",
                    braced(k, x)
                )))
            }
        };
        if !matches!(x, Bson::Int32(_) | Bson::Int64(_)) {
            return Err(bad(format!(
                "The $bit modifier field must be an Integer(32/64 bit); a '{}' is not supported here: {}",
                type_name(x),
                braced(k, x)
            )));
        }
        ops.push((op, x.clone()));
    }
    if ops.is_empty() {
        return Err(bad(
            "You must pass in at least one bitwise operation. The format is: {$bit: {field: {and/or/xor: #}}",
        ));
    }
    Ok(ops)
}

// ---------------------------------------------------------------------------------
// Arithmetic (mongod's SafeNum)
// ---------------------------------------------------------------------------------

/// `arg op cur` with mongod's type promotion; `Ok(None)` when the result is not
/// representable (int64 overflow).
fn arith(op: ArithOp, cur: &Bson, arg: &Bson) -> Result<Option<Bson>, MongoError> {
    if matches!(cur, Bson::Decimal128(_)) || matches!(arg, Bson::Decimal128(_)) {
        return Err(MongoError::new(
            ErrorCode::CommandNotSupported,
            "Decimal128 arithmetic in $inc/$mul is not supported",
        ));
    }
    let as_i64 = |v: &Bson| match v {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        _ => None,
    };
    Ok(match (cur, arg) {
        (Bson::Int32(a), Bson::Int32(b)) => Some(match op {
            ArithOp::Inc => a
                .checked_add(*b)
                .map_or(Bson::Int64(i64::from(*a) + i64::from(*b)), Bson::Int32),
            ArithOp::Mul => a
                .checked_mul(*b)
                .map_or(Bson::Int64(i64::from(*a) * i64::from(*b)), Bson::Int32),
        }),
        (Bson::Double(_), _) | (_, Bson::Double(_)) => {
            let a = util::number_as_f64(cur).unwrap_or(f64::NAN);
            let b = util::number_as_f64(arg).unwrap_or(f64::NAN);
            Some(Bson::Double(match op {
                ArithOp::Inc => b + a,
                ArithOp::Mul => b * a,
            }))
        }
        _ => {
            let (Some(a), Some(b)) = (as_i64(cur), as_i64(arg)) else {
                return Ok(None);
            };
            match op {
                ArithOp::Inc => b.checked_add(a).map(Bson::Int64),
                ArithOp::Mul => b.checked_mul(a).map(Bson::Int64),
            }
        }
    })
}

/// SafeNum's debug form used in overflow messages.
fn safe_num_debug(v: &Bson) -> String {
    match v {
        Bson::Int32(i) => format!("(NumberInt){i}"),
        Bson::Int64(i) => format!("(NumberLong){i}"),
        Bson::Double(d) => format!("(NumberDouble){d}"),
        other => bson_to_string(other),
    }
}

fn bit_apply(cur: &Bson, ops: &[(BitOp, Bson)]) -> Bson {
    let mut acc = cur.clone();
    for (op, v) in ops {
        acc = match (&acc, v) {
            (Bson::Int32(a), Bson::Int32(b)) => Bson::Int32(match op {
                BitOp::And => a & b,
                BitOp::Or => a | b,
                BitOp::Xor => a ^ b,
            }),
            _ => {
                let a = match &acc {
                    Bson::Int32(i) => i64::from(*i),
                    Bson::Int64(i) => *i,
                    _ => 0,
                };
                let b = match v {
                    Bson::Int32(i) => i64::from(*i),
                    Bson::Int64(i) => *i,
                    _ => 0,
                };
                Bson::Int64(match op {
                    BitOp::And => a & b,
                    BitOp::Or => a | b,
                    BitOp::Xor => a ^ b,
                })
            }
        };
    }
    acc
}

// ---------------------------------------------------------------------------------
// Applying
// ---------------------------------------------------------------------------------

struct Ctx<'a> {
    matched: Option<usize>,
    upsert: bool,
    now: bson::DateTime,
    /// Whether changing `_id` is an error (always, except when an upsert inserts a
    /// document whose query did not fix `_id`).
    id_immutable: bool,
    id_for_messages: String,
    filters: &'a HashMap<String, Filter>,
    /// Source values of `$rename`s, read from the original document (keyed by source).
    rename_sources: HashMap<String, Bson>,
    /// Sources to remove after the walk.
    rename_removals: Vec<String>,
    /// >0 while filling a newly created sub-document (its pieces are not logged).
    creating: usize,
    log: Vec<(Vec<PathPart>, LogKind)>,
    /// The update's collation (`None`: simple).
    collation: Option<&'a Collation>,
}

impl Ctx<'_> {
    /// Compares two values, strings under the update's collation.
    fn compare(&self, a: &Bson, b: &Bson) -> Ordering {
        cmp::compare_collated(a, b, self.collation)
    }

    fn equal(&self, a: &Bson, b: &Bson) -> bool {
        self.compare(a, b) == Ordering::Equal
    }

    fn log(&mut self, path: &[PathPart], kind: LogKind) {
        if self.creating == 0 {
            self.log.push((path.to_vec(), kind));
        }
    }

    fn check_immutable(&self, path: &[PathPart]) -> Result<(), MongoError> {
        if self.id_immutable && matches!(path.first(), Some(PathPart::Field(f)) if f == "_id") {
            return Err(MongoError::new(
                ErrorCode::ImmutableField,
                format!(
                    "Performing an update on the path '{}' would modify the immutable field '_id'",
                    dotted(path)
                ),
            ));
        }
        Ok(())
    }
}

fn dotted(path: &[PathPart]) -> String {
    path.iter()
        .map(|p| match p {
            PathPart::Field(f) => f.clone(),
            PathPart::Index(i) => i.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

impl ModifierUpdate {
    /// Applies the update to `doc`.
    pub fn apply(&self, doc: &Document, actx: &ApplyContext<'_>) -> Result<Applied, MongoError> {
        let mut ctx = Ctx {
            matched: actx.matched.and_then(|m| m.elem_match_key),
            upsert: actx.is_upsert_insert,
            now: actx.now,
            id_immutable: !actx.is_upsert_insert || doc.contains_key("_id"),
            id_for_messages: doc
                .get("_id")
                .map(|v| elem_to_string("_id", v))
                .unwrap_or_else(|| "no id".to_owned()),
            filters: &self.array_filters,
            rename_sources: HashMap::new(),
            rename_removals: Vec::new(),
            creating: 0,
            log: Vec::new(),
            collation: self.collation.as_deref(),
        };
        for (from, _) in &self.renames {
            if let Some(v) = rename_source(doc, from, &ctx.id_for_messages)? {
                ctx.rename_sources.insert(from.clone(), v);
            }
        }
        let mut root = Bson::Document(doc.clone());
        let mut path = Vec::new();
        apply_obj(&self.root, &mut root, &mut path, &mut ctx)?;
        let Bson::Document(mut new) = root else {
            unreachable!("the root stays a document")
        };
        for from in &ctx.rename_removals {
            remove_path(&mut new, from);
        }
        if !actx.is_upsert_insert {
            // mongod validates each element an operator creates or changes
            // (`ModifierNode::validateUpdate`): a `$`-prefixed name is refused only at
            // the top level; removals check nothing. An upsert's insert is validated
            // as a whole by the insert path instead, which allows top-level `$`.
            for (path, kind) in &ctx.log {
                if let ([PathPart::Field(name)], LogKind::Created | LogKind::Updated) =
                    (path.as_slice(), kind)
                {
                    if name.starts_with('$') {
                        crate::storage::validate_top_level_dollar_field(&new, name)?;
                    }
                }
            }
        }
        check_id_value(&new)?;
        let tree = DiffTree::from_log(&ctx.log, &new);
        Ok(Applied {
            modified: !ctx.log.is_empty(),
            description: tree.describe(),
            diff: Some(tree.to_document()),
            doc: new,
        })
    }
}

/// The value a `$rename` moves, read from the original document (mongod's
/// `findLongestPrefix` plus the "no arrays on the source path" rule).
fn rename_source(doc: &Document, from: &str, id: &str) -> Result<Option<Bson>, MongoError> {
    let parts: Vec<&str> = from.split('.').collect();
    let mut cur: Option<&Bson> = None;
    let mut prev_name = "";
    for (i, p) in parts.iter().enumerate() {
        let next = match cur {
            None => doc.get(*p),
            Some(Bson::Document(d)) => d.get(*p),
            Some(Bson::Array(_)) => {
                return Err(bad(format!(
                    "The source field cannot be an array element, '{from}' in doc with {{{id}}} has an array field called '{prev_name}'"
                )))
            }
            Some(other) => {
                return Err(MongoError::new(
                    ErrorCode::PathNotViable,
                    format!(
                        "cannot use the part ({} of {from}) to traverse the element ({{{}}})",
                        parts[i - 1],
                        elem_to_string(prev_name, other)
                    ),
                ))
            }
        };
        match next {
            None => return Ok(None),
            Some(v) => {
                cur = Some(v);
                prev_name = p;
            }
        }
    }
    Ok(cur.cloned())
}

fn remove_path(doc: &mut Document, path: &str) {
    let parts: Vec<&str> = path.split('.').collect();
    let mut d = doc;
    for p in &parts[..parts.len() - 1] {
        match d.get_mut(*p) {
            Some(Bson::Document(sub)) => d = sub,
            _ => return,
        }
    }
    if let Some(last) = parts.last() {
        d.remove(*last);
    }
}

fn container_exists(container: &Bson, key: &str) -> bool {
    match container {
        Bson::Document(d) => d.contains_key(key),
        Bson::Array(a) => update_array_index(key).is_some_and(|i| i < a.len()),
        _ => false,
    }
}

fn part_for(container: &Bson, key: &str) -> PathPart {
    match container {
        Bson::Array(_) => PathPart::Index(update_array_index(key).unwrap_or(0)),
        _ => PathPart::Field(key.to_owned()),
    }
}

fn slot<'b>(container: &'b mut Bson, key: &str) -> Option<&'b mut Bson> {
    match container {
        Bson::Document(d) => d.get_mut(key),
        Bson::Array(a) => update_array_index(key).and_then(|i| a.get_mut(i)),
        _ => None,
    }
}

fn apply_obj(
    node: &ObjNode,
    container: &mut Bson,
    path: &mut Vec<PathPart>,
    ctx: &mut Ctx<'_>,
) -> Result<(), MongoError> {
    // Resolve the positional child to the matched index and order it among the rest.
    let mut entries: Vec<(Key, &UNode)> = Vec::with_capacity(node.children.len());
    for (k, child) in &node.children {
        if k.0 == "$" {
            let idx = ctx.matched.filter(|_| !ctx.upsert).ok_or_else(|| {
                bad("The positional operator did not find the match needed from the query.")
            })?;
            entries.push((Key(idx.to_string()), child));
        } else {
            entries.push((k.clone(), child));
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, child) in entries {
        if is_array_filter_part(&k.0) {
            apply_array_node(&k.0, child, container, path, ctx)?;
        } else if container_exists(container, &k.0) {
            apply_existing(child, container, &k.0, path, ctx)?;
        } else {
            apply_nonexistent(child, container, &k.0, path, ctx)?;
        }
    }
    Ok(())
}

fn apply_array_node(
    key: &str,
    child: &UNode,
    container: &mut Bson,
    path: &mut Vec<PathPart>,
    ctx: &mut Ctx<'_>,
) -> Result<(), MongoError> {
    let Bson::Array(arr) = container else {
        let name = path
            .last()
            .map(|p| dotted(std::slice::from_ref(p)))
            .unwrap_or_default();
        return Err(bad(format!(
            "Cannot apply array updates to non-array element {}",
            elem_to_string(&name, container)
        )));
    };
    let ident = key
        .strip_prefix("$[")
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or_default();
    let matching: Vec<usize> = if ident.is_empty() {
        (0..arr.len()).collect()
    } else {
        let filter = ctx
            .filters
            .get(ident)
            .ok_or_else(|| bad(format!("No array filter found for identifier '{ident}'")))?;
        arr.iter()
            .enumerate()
            .filter(|(_, el)| {
                let mut d = Document::new();
                d.insert(ident, (*el).clone());
                filter.matches(&d)
            })
            .map(|(i, _)| i)
            .collect()
    };
    for i in matching {
        apply_existing(child, container, &i.to_string(), path, ctx)?;
    }
    Ok(())
}

fn apply_existing(
    child: &UNode,
    container: &mut Bson,
    key: &str,
    path: &mut Vec<PathPart>,
    ctx: &mut Ctx<'_>,
) -> Result<(), MongoError> {
    let part = part_for(container, key);
    path.push(part);
    let r = match child {
        UNode::Leaf(m) => leaf_existing(m, container, key, path, ctx),
        UNode::Obj(o) => {
            let Some(v) = slot(container, key) else {
                path.pop();
                return Ok(());
            };
            if matches!(v, Bson::Document(_) | Bson::Array(_)) {
                apply_obj(o, v, path, ctx)
            } else {
                let blocker = v.clone();
                check_blocked(o, key, &blocker, path, ctx)
            }
        }
    };
    path.pop();
    r
}

/// Children below a scalar: any that would create a field fails with PathNotViable.
fn check_blocked(
    o: &ObjNode,
    name: &str,
    value: &Bson,
    path: &[PathPart],
    ctx: &Ctx<'_>,
) -> Result<(), MongoError> {
    for (k, child) in &o.children {
        if is_array_filter_part(&k.0) {
            return Err(bad(format!(
                "Cannot apply array updates to non-array element {}",
                elem_to_string(name, value)
            )));
        }
        if would_create(child, ctx) {
            let _ = path;
            return Err(MongoError::new(
                ErrorCode::PathNotViable,
                format!(
                    "Cannot create field '{}' in element {{{}}}",
                    k.0,
                    elem_to_string(name, value)
                ),
            ));
        }
    }
    Ok(())
}

fn would_create(n: &UNode, ctx: &Ctx<'_>) -> bool {
    match n {
        UNode::Leaf(m) => match &**m {
            Modifier::Unset
            | Modifier::Pop { .. }
            | Modifier::Pull(_)
            | Modifier::PullAll(_)
            | Modifier::RenameSource => false,
            Modifier::SetOnInsert(_) => ctx.upsert,
            Modifier::Rename { from } => ctx.rename_sources.contains_key(from),
            _ => true,
        },
        UNode::Obj(o) => o.children.values().any(|c| would_create(c, ctx)),
    }
}

fn apply_nonexistent(
    child: &UNode,
    container: &mut Bson,
    key: &str,
    path: &mut Vec<PathPart>,
    ctx: &mut Ctx<'_>,
) -> Result<(), MongoError> {
    match child {
        UNode::Leaf(m) => {
            let value = match &**m {
                Modifier::Set(v) => Some(v.clone()),
                Modifier::SetOnInsert(v) => ctx.upsert.then(|| v.clone()),
                Modifier::Arith(ArithOp::Inc, v) => Some(v.clone()),
                Modifier::Arith(ArithOp::Mul, v) => {
                    arith(ArithOp::Mul, &Bson::Int32(0), v)?.or(Some(Bson::Int32(0)))
                }
                Modifier::Min(v) | Modifier::Max(v) => Some(v.clone()),
                Modifier::CurrentDate { timestamp } => Some(current_date(*timestamp, ctx)),
                Modifier::Push(spec) => {
                    Some(Bson::Array(push_into(Vec::new(), spec, ctx.collation).0))
                }
                Modifier::AddToSet(values) => Some(Bson::Array(values.clone())),
                Modifier::Bit(ops) => Some(bit_apply(&Bson::Int32(0), ops)),
                Modifier::Rename { from } => {
                    let v = ctx.rename_sources.get(from).cloned();
                    if v.is_some() {
                        check_rename_destination(path, container, key, ctx)?;
                        if from.split('.').next() == Some("_id") {
                            ctx.check_immutable(&[PathPart::Field("_id".into())])?;
                        }
                    }
                    v
                }
                Modifier::Unset
                | Modifier::Pop { .. }
                | Modifier::Pull(_)
                | Modifier::PullAll(_)
                | Modifier::RenameSource => None,
            };
            if let Some(v) = value {
                insert_created(container, key, v, path, ctx)?;
                if let Modifier::Rename { from } = &**m {
                    log_rename_removal(from, ctx);
                }
            }
            Ok(())
        }
        UNode::Obj(o) => {
            if o.children.keys().any(|k| is_array_filter_part(&k.0)) {
                let mut p = path.clone();
                p.push(part_for(container, key));
                return Err(bad(format!(
                    "The path '{}' must exist in the document in order to apply array updates.",
                    dotted(&p)
                )));
            }
            if !o.children.values().any(|c| would_create(c, ctx)) {
                return Ok(());
            }
            // Validate the place first so errors name the first created component.
            precheck_create(container, key, path)?;
            let mut temp = Bson::Document(Document::new());
            path.push(part_for(container, key));
            ctx.creating += 1;
            let r = apply_obj(o, &mut temp, path, ctx);
            ctx.creating -= 1;
            path.pop();
            r?;
            if matches!(&temp, Bson::Document(d) if !d.is_empty()) {
                insert_created(container, key, temp, path, ctx)?;
            }
            Ok(())
        }
    }
}

fn log_rename_removal(from: &str, ctx: &mut Ctx<'_>) {
    let parts: Vec<PathPart> = from
        .split('.')
        .map(|p| PathPart::Field(p.to_owned()))
        .collect();
    // The source is outside any subtree being created at the destination (`a` ->
    // `b.a` creates `b`), so its removal is logged even while `creating` mutes the
    // destination's own entries.
    ctx.log.push((parts, LogKind::Deleted));
    ctx.rename_removals.push(from.to_owned());
}

fn check_rename_destination(
    path: &[PathPart],
    container: &Bson,
    key: &str,
    ctx: &Ctx<'_>,
) -> Result<(), MongoError> {
    let _ = key;
    let through_array =
        matches!(container, Bson::Array(_)) || path.iter().any(|p| matches!(p, PathPart::Index(_)));
    if through_array {
        let name = path
            .iter()
            .take_while(|p| matches!(p, PathPart::Field(_)))
            .last()
            .map(|p| dotted(std::slice::from_ref(p)))
            .unwrap_or_default();
        let mut full = path.to_vec();
        full.push(PathPart::Field(key.to_owned()));
        return Err(bad(format!(
            "The destination field cannot be an array element, '{}' in doc with {{{}}} has an array field called '{name}'",
            dotted(&full),
            ctx.id_for_messages
        )));
    }
    Ok(())
}

fn precheck_create(container: &Bson, key: &str, path: &[PathPart]) -> Result<(), MongoError> {
    if let Bson::Array(_) = container {
        if update_array_index(key).is_none() {
            let name = path
                .last()
                .map(|p| dotted(std::slice::from_ref(p)))
                .unwrap_or_default();
            return Err(MongoError::new(
                ErrorCode::PathNotViable,
                format!(
                    "Cannot create field '{key}' in element {{{}}}",
                    elem_to_string(&name, container)
                ),
            ));
        }
    }
    Ok(())
}

/// mongod refuses to pad an array by more than this many elements.
const MAX_PADDING: usize = 1_500_000;

fn insert_created(
    container: &mut Bson,
    key: &str,
    value: Bson,
    path: &mut Vec<PathPart>,
    ctx: &mut Ctx<'_>,
) -> Result<(), MongoError> {
    precheck_create(container, key, path)?;
    if ctx.creating == 0 && !path.is_empty() {
        // Creating beneath an existing `_id` changes it.
        ctx.check_immutable(path)?;
    }
    let part = match container {
        Bson::Document(d) => {
            if path.is_empty() && key == "_id" {
                ctx.check_immutable(&[PathPart::Field("_id".into())])
                    .or_else(|e| {
                        if d.contains_key("_id") {
                            Err(e)
                        } else {
                            Ok(())
                        }
                    })?;
            }
            d.insert(key.to_owned(), value);
            PathPart::Field(key.to_owned())
        }
        Bson::Array(a) => {
            let i = update_array_index(key).unwrap_or(0);
            if i > a.len() + MAX_PADDING {
                return Err(bad(format!(
                    "can't backfill more than {MAX_PADDING} elements"
                )));
            }
            while a.len() < i {
                a.push(Bson::Null);
            }
            a.push(value);
            PathPart::Index(i)
        }
        _ => return Ok(()),
    };
    path.push(part);
    ctx.log(path, LogKind::Created);
    path.pop();
    Ok(())
}

fn current_date(timestamp: bool, ctx: &Ctx<'_>) -> Bson {
    if timestamp {
        let ms = ctx.now.timestamp_millis();
        Bson::Timestamp(Timestamp {
            time: (ms / 1000).clamp(0, i64::from(u32::MAX)) as u32,
            increment: 1,
        })
    } else {
        Bson::DateTime(ctx.now)
    }
}

enum Outcome {
    NoOp,
    Replace(Bson),
    Remove,
    /// The new array and how many elements were appended at its end.
    Append(Vec<Bson>, usize),
}

fn leaf_existing(
    m: &Modifier,
    container: &mut Bson,
    key: &str,
    path: &mut Vec<PathPart>,
    ctx: &mut Ctx<'_>,
) -> Result<(), MongoError> {
    let Some(cur) = slot(container, key).map(|v| v.clone()) else {
        return Ok(());
    };
    let field_name = key.to_owned();
    let outcome = match m {
        Modifier::Set(v) => {
            if binary_equal(&cur, v) {
                Outcome::NoOp
            } else {
                Outcome::Replace(v.clone())
            }
        }
        Modifier::SetOnInsert(v) => {
            if !ctx.upsert || binary_equal(&cur, v) {
                Outcome::NoOp
            } else {
                Outcome::Replace(v.clone())
            }
        }
        Modifier::Unset => Outcome::Remove,
        Modifier::Arith(op, arg) => {
            if !cmp::is_number(&cur) {
                let name = if *op == ArithOp::Inc { "$inc" } else { "$mul" };
                return Err(MongoError::type_mismatch(format!(
                    "Cannot apply {name} to a value of non-numeric type. {{{}}} has the field '{field_name}' of non-numeric type {}",
                    ctx.id_for_messages,
                    type_name(&cur)
                )));
            }
            match arith(*op, &cur, arg)? {
                Some(v) if binary_equal(&v, &cur) => Outcome::NoOp,
                Some(v) => Outcome::Replace(v),
                None => {
                    let name = if *op == ArithOp::Inc { "$inc" } else { "$mul" };
                    return Err(bad(format!(
                        "Failed to apply {name} operations to current value ({}) for document {{{}}}",
                        safe_num_debug(&cur),
                        ctx.id_for_messages
                    )));
                }
            }
        }
        Modifier::Min(v) => {
            if ctx.compare(v, &cur) == Ordering::Less {
                Outcome::Replace(v.clone())
            } else {
                Outcome::NoOp
            }
        }
        Modifier::Max(v) => {
            if ctx.compare(v, &cur) == Ordering::Greater {
                Outcome::Replace(v.clone())
            } else {
                Outcome::NoOp
            }
        }
        Modifier::CurrentDate { timestamp } => Outcome::Replace(current_date(*timestamp, ctx)),
        Modifier::Push(spec) => {
            let Bson::Array(arr) = cur else {
                return Err(bad(format!(
                    "The field '{}' must be an array but is of type {} in document {{{}}}",
                    dotted(path),
                    type_name(&cur),
                    ctx.id_for_messages
                )));
            };
            let (new, kind) = push_into(arr, spec, ctx.collation);
            match kind {
                PushResult::NoOp => Outcome::NoOp,
                PushResult::Normal => Outcome::Replace(Bson::Array(new)),
                PushResult::Append(n) => Outcome::Append(new, n),
            }
        }
        Modifier::AddToSet(values) => {
            let Bson::Array(mut arr) = cur else {
                return Err(bad(format!(
                    "Cannot apply $addToSet to non-array field. Field named '{field_name}' has non-array type {}",
                    type_name(&cur)
                )));
            };
            let before = arr.len();
            for v in values {
                if !arr[..before].iter().any(|x| ctx.equal(x, v)) {
                    arr.push(v.clone());
                }
            }
            let n = arr.len() - before;
            if n == 0 {
                Outcome::NoOp
            } else {
                Outcome::Append(arr, n)
            }
        }
        Modifier::Pop { first } => {
            let Bson::Array(mut arr) = cur else {
                return Err(MongoError::type_mismatch(format!(
                    "Path '{}' contains an element of non-array type '{}'",
                    dotted(path),
                    type_name(&cur)
                )));
            };
            if arr.is_empty() {
                Outcome::NoOp
            } else {
                if *first {
                    arr.remove(0);
                } else {
                    arr.pop();
                }
                Outcome::Replace(Bson::Array(arr))
            }
        }
        Modifier::Pull(matcher) => {
            let Bson::Array(arr) = cur else {
                return Err(bad("Cannot apply $pull to a non-array value"));
            };
            let before = arr.len();
            let kept: Vec<Bson> = arr
                .into_iter()
                .filter(|e| !pull_matches(matcher, e, ctx.collation))
                .collect();
            if kept.len() == before {
                Outcome::NoOp
            } else {
                Outcome::Replace(Bson::Array(kept))
            }
        }
        Modifier::PullAll(values) => {
            let Bson::Array(arr) = cur else {
                return Err(bad("Cannot apply $pullAll to a non-array value"));
            };
            let before = arr.len();
            let kept: Vec<Bson> = arr
                .into_iter()
                .filter(|e| !values.iter().any(|v| ctx.equal(v, e)))
                .collect();
            if kept.len() == before {
                Outcome::NoOp
            } else {
                Outcome::Replace(Bson::Array(kept))
            }
        }
        Modifier::Bit(ops) => {
            if !matches!(cur, Bson::Int32(_) | Bson::Int64(_)) {
                return Err(bad(format!(
                    "Cannot apply $bit to a value of non-integral type.{{{}}} has the field {field_name} of non-integer type {}",
                    ctx.id_for_messages,
                    type_name(&cur)
                )));
            }
            let v = bit_apply(&cur, ops);
            if binary_equal(&v, &cur) {
                Outcome::NoOp
            } else {
                Outcome::Replace(v)
            }
        }
        Modifier::Rename { from } => match ctx.rename_sources.get(from).cloned() {
            None => Outcome::NoOp,
            Some(v) => {
                let parent_path = &path[..path.len() - 1];
                check_rename_destination(parent_path, container, key, ctx)?;
                if from.split('.').next() == Some("_id") {
                    ctx.check_immutable(&[PathPart::Field("_id".into())])?;
                }
                ctx.check_immutable(path)?;
                if let Some(s) = slot(container, key) {
                    *s = v;
                }
                ctx.log(path, LogKind::Updated);
                log_rename_removal(from, ctx);
                return Ok(());
            }
        },
        Modifier::RenameSource => Outcome::NoOp,
    };
    match outcome {
        Outcome::NoOp => {}
        Outcome::Replace(v) => {
            ctx.check_immutable(path)?;
            if let Some(s) = slot(container, key) {
                *s = v;
            }
            ctx.log(path, LogKind::Updated);
        }
        Outcome::Remove => {
            ctx.check_immutable(path)?;
            match container {
                Bson::Array(a) => {
                    if let Some(i) = update_array_index(key) {
                        if let Some(s) = a.get_mut(i) {
                            *s = Bson::Null;
                        }
                    }
                    ctx.log(path, LogKind::Updated);
                }
                Bson::Document(d) => {
                    d.remove(key);
                    ctx.log(path, LogKind::Deleted);
                }
                _ => {}
            }
        }
        Outcome::Append(arr, n) => {
            ctx.check_immutable(path)?;
            let len = arr.len();
            if let Some(s) = slot(container, key) {
                *s = Bson::Array(arr);
            }
            for i in len - n..len {
                path.push(PathPart::Index(i));
                ctx.log(path, LogKind::Created);
                path.pop();
            }
        }
    }
    Ok(())
}

fn pull_matches(m: &PullMatcher, e: &Bson, collation: Option<&Collation>) -> bool {
    match m {
        PullMatcher::Object(f) => matches!(e, Bson::Document(d) if f.matches(d)),
        PullMatcher::Value(p) => p.matches(e),
        PullMatcher::Equal(v) => cmp::values_equal_collated(v, e, collation),
    }
}

enum PushResult {
    NoOp,
    Normal,
    Append(usize),
}

/// mongod's `PushNode::performPush` on an existing (or new, empty) array.
fn push_into(
    mut arr: Vec<Bson>,
    spec: &PushSpec,
    collation: Option<&Collation>,
) -> (Vec<Bson>, PushResult) {
    let size = arr.len() as i64;
    let mut result = if spec.values.is_empty() {
        PushResult::NoOp
    } else {
        let position = spec.position.unwrap_or(i64::MAX);
        if size == 0 {
            arr.extend(spec.values.iter().cloned());
            PushResult::Normal
        } else if position > size {
            arr.extend(spec.values.iter().cloned());
            PushResult::Append(spec.values.len())
        } else {
            let at = if position >= 0 {
                position as usize
            } else if -position < size {
                (size + position) as usize
            } else {
                0
            };
            let tail = arr.split_off(at);
            arr.extend(spec.values.iter().cloned());
            arr.extend(tail);
            PushResult::Normal
        }
    };
    if let Some(sort) = &spec.sort {
        result = PushResult::Normal;
        arr.sort_by(|a, b| sort_cmp(sort, a, b, collation));
    }
    if let Some(slice) = spec.slice {
        let keep = slice.unsigned_abs().min(usize::MAX as u64) as usize;
        if arr.len() > keep {
            result = PushResult::Normal;
            if slice >= 0 {
                arr.truncate(keep);
            } else {
                arr.drain(..arr.len() - keep);
            }
        }
    }
    (arr, result)
}

/// `$push`'s `$sort` (mongod's `PatternElementCmp`): each element (wrapped as
/// `{"": element}` when it is not a document) is keyed by the pattern's fields,
/// missing fields counting as null.
fn sort_cmp(p: &SortPattern, a: &Bson, b: &Bson, collation: Option<&Collation>) -> Ordering {
    for (field, desc) in &p.fields {
        let ka = sort_key(a, field);
        let kb = sort_key(b, field);
        let o = cmp::compare_collated(&ka, &kb, collation);
        let o = if *desc { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

fn sort_key(v: &Bson, field: &str) -> Bson {
    if field.is_empty() {
        return v.clone();
    }
    match v {
        Bson::Document(d) => crate::path::get_path(d, field)
            .cloned()
            .unwrap_or(Bson::Null),
        _ => Bson::Null,
    }
}

// ---------------------------------------------------------------------------------
// Upserts
// ---------------------------------------------------------------------------------

/// The document an upsert starts from: the query's top-level equality predicates
/// (including dotted paths, `$and` of equalities and single-value `$in`), created in
/// path order with `_id` first (mongod's `extractFullEqualityMatches` +
/// `addEqualitiesToDoc`).
pub fn upsert_seed(filter: &Document) -> Result<Document, MongoError> {
    let parsed = Filter::parse(filter)?;
    let mut eqs = parsed.equality_fields();
    // Regexes match rather than equal; they seed nothing.
    eqs.retain(|(_, v)| !matches!(v, Bson::RegularExpression(_)));
    let mut seen: Vec<&str> = Vec::new();
    for (p, _) in &eqs {
        for s in &seen {
            if *s == p.as_str() {
                return Err(MongoError::new(
                    ErrorCode::NotSingleValueField,
                    format!("cannot infer query fields to set, path '{p}' is matched twice"),
                ));
            }
            let prefix =
                |a: &str, b: &str| b.starts_with(a) && b.as_bytes().get(a.len()) == Some(&b'.');
            if prefix(s, p) || prefix(p, s) {
                return Err(MongoError::new(
                    ErrorCode::NotSingleValueField,
                    format!(
                        "cannot infer query fields to set, both paths '{p}' and '{s}' are matched"
                    ),
                ));
            }
        }
        seen.push(p);
    }
    eqs.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut doc = Document::new();
    if let Some((_, v)) = eqs.iter().find(|(p, _)| p == "_id") {
        doc.insert("_id", v.clone());
    }
    for (p, v) in &eqs {
        if p == "_id" {
            continue;
        }
        let parts: Vec<&str> = p.split('.').collect();
        let mut d = &mut doc;
        for part in &parts[..parts.len() - 1] {
            let entry = d
                .entry((*part).to_owned())
                .or_insert_with(|| Bson::Document(Document::new()));
            match entry {
                Bson::Document(sub) => d = sub,
                _ => {
                    return Err(MongoError::new(
                        ErrorCode::NotSingleValueField,
                        format!("cannot infer query fields to set, path '{p}' is matched twice"),
                    ))
                }
            }
        }
        if let Some(last) = parts.last() {
            d.insert((*last).to_owned(), v.clone());
        }
    }
    Ok(doc)
}

/// The change-stream description of any change from `old` to `new` as mongod's
/// diff calculator sees it, without its size heuristics (every change is described
/// in place). See [`crate::diff::compute_oplog_diff`] for the exact pipeline-update
/// behaviour including the fallback to `replace` events.
pub fn diff_description(old: &Document, new: &Document) -> UpdateDescription {
    crate::diff::compute_full_diff(old, new).describe()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{bson, doc};

    fn now() -> bson::DateTime {
        bson::DateTime::from_millis(1_700_000_000_000)
    }

    fn run_with(
        doc: Document,
        update: Bson,
        filters: Option<&[Document]>,
        matched: Option<usize>,
        upsert: bool,
    ) -> Result<Applied, MongoError> {
        let u = Update::parse(&update, filters)?;
        let details = MatchDetails {
            elem_match_key: matched,
        };
        u.apply(
            &doc,
            &ApplyContext {
                matched: Some(&details),
                is_upsert_insert: upsert,
                now: now(),
            },
        )
    }

    fn run(doc: Document, update: Document) -> Applied {
        run_with(doc, Bson::Document(update.clone()), None, None, false)
            .unwrap_or_else(|e| panic!("{update:?}: {e}"))
    }

    fn err(doc: Document, update: Document) -> (i32, String) {
        let e = run_with(doc, Bson::Document(update), None, None, false)
            .map(|_| ())
            .expect_err("should fail");
        (e.code, e.message)
    }

    #[test]
    fn set_and_field_order() {
        let cases: Vec<(Document, Document, Document)> = vec![
            (
                doc! {"_id": 1, "z": 0},
                doc! {"$set": {"b": 1, "a": 1}},
                doc! {"_id": 1, "z": 0, "a": 1, "b": 1},
            ),
            (
                doc! {"_id": 1, "a": {}},
                doc! {"$set": {"a.10": 1, "a.9": 2}},
                doc! {"_id": 1, "a": {"9": 2, "10": 1}},
            ),
            (
                doc! {"_id": 1, "a": 1, "b": 2},
                doc! {"$set": {"a": 5}},
                doc! {"_id": 1, "a": 5, "b": 2},
            ),
            (
                doc! {"_id": 1},
                doc! {"$set": {"x.y.z": 1, "x.a": 2}},
                doc! {"_id": 1, "x": {"a": 2, "y": {"z": 1}}},
            ),
            (
                doc! {"_id": 1, "a": [1, 2]},
                doc! {"$set": {"a.4": 9}},
                doc! {"_id": 1, "a": [1, 2, null, null, 9]},
            ),
            (
                doc! {"_id": 1, "a": [{"b": 1}]},
                doc! {"$set": {"a.0.c": 2}},
                doc! {"_id": 1, "a": [{"b": 1, "c": 2}]},
            ),
            (
                doc! {"_id": 1, "a": 1},
                doc! {"$unset": {"a": "", "zz": 1}},
                doc! {"_id": 1},
            ),
            (
                doc! {"_id": 1, "a": [1, 2]},
                doc! {"$unset": {"a.0": 1}},
                doc! {"_id": 1, "a": [null, 2]},
            ),
            (
                doc! {"_id": 1, "a": 5},
                doc! {"$unset": {"a.b": 1}},
                doc! {"_id": 1, "a": 5},
            ),
            (doc! {"_id": 1}, doc! {"$set": {}}, doc! {"_id": 1}),
        ];
        for (d, u, want) in cases {
            let got = run(d.clone(), u.clone());
            assert_eq!(got.doc, want, "{u:?} on {d:?}");
        }
    }

    #[test]
    fn arithmetic_and_comparisons() {
        let cases: Vec<(Document, Document, Document, bool)> = vec![
            (doc! {"a": 1}, doc! {"$inc": {"a": 2}}, doc! {"a": 3}, true),
            (doc! {"a": 1}, doc! {"$inc": {"a": 0}}, doc! {"a": 1}, false),
            (
                doc! {"a": i32::MAX},
                doc! {"$inc": {"a": 1}},
                doc! {"a": i64::from(i32::MAX) + 1},
                true,
            ),
            (
                doc! {"a": 1},
                doc! {"$inc": {"a": 1.5}},
                doc! {"a": 2.5},
                true,
            ),
            (
                doc! {"a": 1},
                doc! {"$inc": {"a": 2_i64}},
                doc! {"a": 3_i64},
                true,
            ),
            (
                doc! {},
                doc! {"$inc": {"a": 2_i64}},
                doc! {"a": 2_i64},
                true,
            ),
            (doc! {"a": 3}, doc! {"$mul": {"a": 2}}, doc! {"a": 6}, true),
            (doc! {}, doc! {"$mul": {"a": 2.5}}, doc! {"a": 0.0}, true),
            (doc! {"a": 5}, doc! {"$min": {"a": 3}}, doc! {"a": 3}, true),
            (doc! {"a": 5}, doc! {"$min": {"a": 7}}, doc! {"a": 5}, false),
            (
                doc! {"a": 5},
                doc! {"$max": {"a": "x"}},
                doc! {"a": "x"},
                true,
            ),
            (
                doc! {"a": 5},
                doc! {"$max": {"a": 5.0}},
                doc! {"a": 5},
                false,
            ),
            (
                doc! {"a": 13},
                doc! {"$bit": {"a": {"and": 10}}},
                doc! {"a": 8},
                true,
            ),
            (
                doc! {"a": 3},
                doc! {"$bit": {"a": {"or": 5_i64}}},
                doc! {"a": 7_i64},
                true,
            ),
            (
                doc! {"a": 1},
                doc! {"$bit": {"a": {"xor": 1}}},
                doc! {"a": 0},
                true,
            ),
            (
                doc! {},
                doc! {"$currentDate": {"d": true}},
                doc! {"d": now()},
                true,
            ),
        ];
        for (d, u, want, modified) in cases {
            let got = run(d.clone(), u.clone());
            assert_eq!((got.doc, got.modified), (want, modified), "{u:?} on {d:?}");
        }
        let ts = run(
            doc! {},
            doc! {"$currentDate": {"t": {"$type": "timestamp"}}},
        );
        assert!(matches!(ts.doc.get("t"), Some(Bson::Timestamp(_))));
    }

    #[test]
    fn arrays() {
        let cases: Vec<(Document, Document, Document)> = vec![
            (
                doc! {"a": [1]},
                doc! {"$push": {"a": 2}},
                doc! {"a": [1, 2]},
            ),
            (doc! {}, doc! {"$push": {"a": 2}}, doc! {"a": [2]}),
            (
                doc! {"a": [1]},
                doc! {"$push": {"a": {"$each": [2, 3], "$position": 0}}},
                doc! {"a": [2, 3, 1]},
            ),
            (
                doc! {"a": [1, 2, 3]},
                doc! {"$push": {"a": {"$each": [9], "$position": -1}}},
                doc! {"a": [1, 2, 9, 3]},
            ),
            (
                doc! {"a": [5, 1]},
                doc! {"$push": {"a": {"$each": [3], "$sort": 1, "$slice": 2}}},
                doc! {"a": [1, 3]},
            ),
            (
                doc! {"a": [5, 1]},
                doc! {"$push": {"a": {"$each": [3], "$slice": -2}}},
                doc! {"a": [1, 3]},
            ),
            (
                doc! {"q": [{"s": 2}, {"s": 1}]},
                doc! {"$push": {"q": {"$each": [{"s": 3}], "$sort": {"s": -1}}}},
                doc! {"q": [{"s": 3}, {"s": 2}, {"s": 1}]},
            ),
            (
                doc! {"a": [1, 2]},
                doc! {"$addToSet": {"a": 2}},
                doc! {"a": [1, 2]},
            ),
            (
                doc! {"a": [1, 2]},
                doc! {"$addToSet": {"a": {"$each": [2, 3, 3]}}},
                doc! {"a": [1, 2, 3]},
            ),
            (
                doc! {"a": [1, 2, 3]},
                doc! {"$pop": {"a": 1}},
                doc! {"a": [1, 2]},
            ),
            (
                doc! {"a": [1, 2, 3]},
                doc! {"$pop": {"a": -1}},
                doc! {"a": [2, 3]},
            ),
            (
                doc! {"a": [1, 5, 6, 7]},
                doc! {"$pull": {"a": {"$gte": 6}}},
                doc! {"a": [1, 5]},
            ),
            (
                doc! {"a": ["x", 1, "y"]},
                doc! {"$pull": {"a": "x"}},
                doc! {"a": [1, "y"]},
            ),
            (
                doc! {"r": [{"i": "A", "s": 5}, {"i": "B", "s": 8}]},
                doc! {"$pull": {"r": {"s": 8, "i": "B"}}},
                doc! {"r": [{"i": "A", "s": 5}]},
            ),
            (
                doc! {"a": [0, 2, 5, 5, 1, 0]},
                doc! {"$pullAll": {"a": [0, 5]}},
                doc! {"a": [2, 1]},
            ),
        ];
        for (d, u, want) in cases {
            let got = run(d.clone(), u.clone());
            assert_eq!(got.doc, want, "{u:?} on {d:?}");
        }
    }

    #[test]
    fn positional_and_array_filters() {
        let d = doc! {"_id": 1, "grades": [80, 85, 90]};
        let got = run_with(
            d.clone(),
            bson!({"$set": {"grades.$": 82}}),
            None,
            Some(1),
            false,
        )
        .expect("ok");
        assert_eq!(got.doc, doc! {"_id": 1, "grades": [80, 82, 90]});
        let e = run_with(
            d.clone(),
            bson!({"$set": {"grades.$": 82}}),
            None,
            None,
            false,
        )
        .map(|_| ())
        .expect_err("no match");
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                2,
                "The positional operator did not find the match needed from the query."
            )
        );
        let got = run_with(
            d.clone(),
            bson!({"$inc": {"grades.$[]": 1}}),
            None,
            None,
            false,
        )
        .expect("ok");
        assert_eq!(got.doc, doc! {"_id": 1, "grades": [81, 86, 91]});
        assert_eq!(
            got.description.updated_fields,
            doc! {"grades.0": 81, "grades.1": 86, "grades.2": 91}
        );
        let filters = [doc! {"g": {"$gte": 85}}];
        let got = run_with(
            d.clone(),
            bson!({"$set": {"grades.$[g]": 100}}),
            Some(&filters),
            None,
            false,
        )
        .expect("ok");
        assert_eq!(got.doc, doc! {"_id": 1, "grades": [80, 100, 100]});
        let d2 = doc! {"_id": 1, "s": [{"t": 1, "v": 0}, {"t": 2, "v": 0}]};
        let filters = [doc! {"e.t": 2}];
        let got = run_with(
            d2,
            bson!({"$set": {"s.$[e].v": 7}}),
            Some(&filters),
            None,
            false,
        )
        .expect("ok");
        assert_eq!(
            got.doc,
            doc! {"_id": 1, "s": [{"t": 1, "v": 0}, {"t": 2, "v": 7}]}
        );
        let e = run_with(
            d.clone(),
            bson!({"$set": {"grades.$[x]": 1}}),
            None,
            None,
            false,
        )
        .map(|_| ())
        .expect_err("missing filter");
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                2,
                "No array filter found for identifier 'x' in path 'grades.$[x]'"
            )
        );
        let filters = [doc! {"x": 1}, doc! {"y": 1}];
        let e = run_with(
            d.clone(),
            bson!({"$set": {"grades.$[x]": 1}}),
            Some(&filters),
            None,
            false,
        )
        .map(|_| ())
        .expect_err("unused filter");
        assert_eq!(e.code, 9);
        assert!(e
            .message
            .starts_with("The array filter for identifier 'y' was not used in the update"));
        let filters = [doc! {"X": 1}];
        let e = run_with(
            d,
            bson!({"$set": {"grades.$[X]": 1}}),
            Some(&filters),
            None,
            false,
        )
        .map(|_| ())
        .expect_err("bad identifier");
        assert_eq!(e.message, "Error parsing array filter :: caused by :: The top-level field name must be an alphanumeric string beginning with a lowercase letter, found 'X'");
    }

    #[test]
    fn rename() {
        let got = run(
            doc! {"_id": 1, "a": 1, "b": 2},
            doc! {"$rename": {"a": "z"}},
        );
        assert_eq!(got.doc, doc! {"_id": 1, "b": 2, "z": 1});
        assert_eq!(got.description.updated_fields, doc! {"z": 1});
        assert_eq!(got.description.removed_fields, vec!["a".to_owned()]);
        let got = run(
            doc! {"_id": 1, "n": {"x": 1}},
            doc! {"$rename": {"n.x": "m.y"}},
        );
        assert_eq!(got.doc, doc! {"_id": 1, "n": {}, "m": {"y": 1}});
        assert_eq!(got.description.updated_fields, doc! {"m": {"y": 1}});
        assert_eq!(got.description.removed_fields, vec!["n.x".to_owned()]);
        // A destination whose parent is created still reports the source's removal
        // (found by the update-then-match proptest).
        let got = run(doc! {"_id": 1, "a": 0}, doc! {"$rename": {"a": "b.a"}});
        assert_eq!(got.doc, doc! {"_id": 1, "b": {"a": 0}});
        assert_eq!(got.description.updated_fields, doc! {"b": {"a": 0}});
        assert_eq!(got.description.removed_fields, vec!["a".to_owned()]);
        let got = run(doc! {"_id": 1}, doc! {"$rename": {"a": "b"}});
        assert!(!got.modified);
        assert_eq!(
            err(
                doc! {"_id": 1, "a": [{"b": 1}]},
                doc! {"$rename": {"a.0.b": "c"}}
            )
            .0,
            2
        );
    }

    #[test]
    fn update_errors() {
        let cases: Vec<(Document, Document, i32, &str)> = vec![
            (doc! {"_id": 1}, doc! {"$foo": {"a": 1}}, 9, "Unknown modifier: $foo. Expected a valid update modifier or pipeline-style update specified as an array"),
            (doc! {"_id": 1}, doc! {"$set": 5}, 9, "Modifiers operate on fields but we found type int instead. For example: {$mod: {<field>: ...}} not {$set: 5}"),
            (doc! {"_id": 1}, doc! {"$set": {"a": 1}, "$inc": {"a": 1}}, 40, "Updating the path 'a' would create a conflict at 'a'"),
            (doc! {"_id": 1}, doc! {"$set": {"a.b": 1, "a": 1}}, 40, "Updating the path 'a' would create a conflict at 'a'"),
            (doc! {"_id": 1}, doc! {"$set": {"a": 1, "a.b": 1}}, 40, "Updating the path 'a.b' would create a conflict at 'a'"),
            (doc! {"_id": 1}, doc! {"$set": {"_id": 2}}, 66, "Performing an update on the path '_id' would modify the immutable field '_id'"),
            (doc! {"_id": 1}, doc! {"$unset": {"_id": 1}}, 66, "Performing an update on the path '_id' would modify the immutable field '_id'"),
            (doc! {"_id": 1, "a": "x"}, doc! {"$inc": {"a": 1}}, 14, "Cannot apply $inc to a value of non-numeric type. {_id: 1} has the field 'a' of non-numeric type string"),
            (doc! {"_id": 1}, doc! {"$inc": {"a": "x"}}, 14, "Cannot increment with non-numeric argument: {a: \"x\"}"),
            (doc! {"_id": 1}, doc! {"$mul": {"a": "x"}}, 14, "Cannot multiply with non-numeric argument: {a: \"x\"}"),
            (doc! {"_id": 1, "a": i64::MAX}, doc! {"$inc": {"a": 1}}, 2, "Failed to apply $inc operations to current value ((NumberLong)9223372036854775807) for document {_id: 1}"),
            (doc! {"_id": 1, "a": 5}, doc! {"$set": {"a.b": 1}}, 28, "Cannot create field 'b' in element {a: 5}"),
            (doc! {"_id": 1, "a": [1, 2]}, doc! {"$set": {"a.b": 1}}, 28, "Cannot create field 'b' in element {a: [ 1, 2 ]}"),
            (doc! {"_id": 1, "a": 1}, doc! {"$push": {"a": 1}}, 2, "The field 'a' must be an array but is of type int in document {_id: 1}"),
            (doc! {"_id": 1, "a": 1}, doc! {"$addToSet": {"a": 1}}, 2, "Cannot apply $addToSet to non-array field. Field named 'a' has non-array type int"),
            (doc! {"_id": 1, "a": 1}, doc! {"$pop": {"a": 1}}, 14, "Path 'a' contains an element of non-array type 'int'"),
            (doc! {"_id": 1}, doc! {"$pop": {"a": 5}}, 9, "$pop expects 1 or -1, found: 5"),
            (doc! {"_id": 1, "a": 1}, doc! {"$pull": {"a": 1}}, 2, "Cannot apply $pull to a non-array value"),
            (doc! {"_id": 1}, doc! {"$pullAll": {"a": 1}}, 2, "$pullAll requires an array argument but was given a int"),
            (doc! {"_id": 1}, doc! {"$rename": {"a": "a"}}, 2, "The source and target field for $rename must differ: a: \"a\""),
            (doc! {"_id": 1}, doc! {"$rename": {"a": "a.b"}}, 2, "The source and target field for $rename must not be on the same path: a: \"a.b\""),
            (doc! {"_id": 1}, doc! {"$rename": {"a": 1}}, 2, "The 'to' field for $rename must be a string: a: 1"),
            (doc! {"_id": 1, "a": 1}, doc! {"$rename": {"a": "b\0c"}}, 2, "The 'to' field for $rename cannot contain an embedded null byte"),
            (doc! {"_id": 1}, doc! {"$bit": {"a": 5}}, 2, "The $bit modifier is not compatible with a int. You must pass in an embedded document: {$bit: {field: {and/or/xor: #}}"),
            (doc! {"_id": 1}, doc! {"$bit": {"a": {"and": 1.0}}}, 2, "The $bit modifier field must be an Integer(32/64 bit); a 'double' is not supported here: {and: 1.0}"),
            (doc! {"_id": 1}, doc! {"$set": {"": 1}}, 56, "An empty update path is not valid."),
            (doc! {"_id": 1}, doc! {"$set": {"a..b": 1}}, 56, "The update path 'a..b' contains an empty field name, which is not allowed."),
            (doc! {"_id": 1}, doc! {"$set": {"a.$.b.$": 1}}, 2, "Too many positional (i.e. '$') elements found in path 'a.$.b.$'"),
            (doc! {"_id": 1}, doc! {"$push": {"a": {"$each": 1}}}, 2, "The argument to $each in $push must be an array but it was of type: int"),
            (doc! {"_id": 1}, doc! {"$currentDate": {"a": 1}}, 2, "a: 1 is not valid type for $currentDate. Please use a boolean ('true') or a $type expression ({$type: 'timestamp/date'})."),
            (doc! {"_id": 1}, doc! {"a": 1, "$set": {"b": 1}}, 52, "The dollar ($) prefixed field '$set' in '$set' is not allowed in the context of an update's replacement document. Consider using an aggregation pipeline with $replaceWith."),
            (doc! {"_id": 1}, doc! {"_id": 2, "a": 1}, 66, "After applying the update, the (immutable) field '_id' was found to have been altered to _id: 2"),
            (doc! {"_id": 1}, doc! {"$set": {"a.$[]": 1}}, 2, "The path 'a' must exist in the document in order to apply array updates."),
        ];
        for (d, u, code, msg) in cases {
            let (c, m) = err(d, u.clone());
            assert_eq!((c, m.as_str()), (code, msg), "{u:?}");
        }
    }

    /// `$`-prefixed field names, as mongod 7.0 (jstests `updateh.js`,
    /// `field_name_validation.js`, and the manual's "Dollar-Prefixed Field Names").
    #[test]
    fn dollar_prefixed_fields() {
        let hint = |f: &str| {
            format!("The dollar ($) prefixed field '{f}' in '{f}' is not allowed in the context of an update's replacement document. Consider using an aggregation pipeline with $replaceWith.")
        };
        // Accepted below the top level, through any modifier, created or existing.
        let accepted: Vec<(Document, Document, Document)> = vec![
            (
                doc! {"_id": 1},
                doc! {"$set": {"a.$b": 1}},
                doc! {"_id": 1, "a": {"$b": 1}},
            ),
            (
                doc! {"_id": 1, "preferences": {"x": 1}},
                doc! {"$set": {"preferences.$each": 42}},
                doc! {"_id": 1, "preferences": {"x": 1, "$each": 42}},
            ),
            (
                doc! {"_id": 1, "nested": {"data": {"$*": {"_id": 5, "k": 1}}}},
                doc! {"$unset": {"nested.data.$*._id": 1}},
                doc! {"_id": 1, "nested": {"data": {"$*": {"k": 1}}}},
            ),
            (
                doc! {"_id": 1},
                doc! {"$set": {"a": {"$z": 1}}},
                doc! {"_id": 1, "a": {"$z": 1}},
            ),
            (
                doc! {"_id": 1},
                doc! {"$set": {"secret.agent$.$x": 1}},
                doc! {"_id": 1, "secret": {"agent$": {"$x": 1}}},
            ),
            (
                doc! {"_id": 1},
                doc! {"$set": {"ke$sha": 1}},
                doc! {"_id": 1, "ke$sha": 1},
            ),
            (
                doc! {"_id": 1},
                doc! {"$inc": {"a.$n": 2}},
                doc! {"_id": 1, "a": {"$n": 2}},
            ),
            (
                doc! {"_id": 1},
                doc! {"$push": {"a.$list": 1}},
                doc! {"_id": 1, "a": {"$list": [1]}},
            ),
            (
                doc! {"_id": 1},
                doc! {"$set": {"x": {"$ref": "c", "$id": 1, "$db": "d"}}},
                doc! {"_id": 1, "x": {"$ref": "c", "$id": 1, "$db": "d"}},
            ),
            // Only the element the update writes is checked: below an existing
            // top-level `$secret`, a created `x` is at the third level.
            (
                doc! {"_id": 1, "$secret": {"agent": {}}},
                doc! {"$set": {"$secret.agent.x": 1}},
                doc! {"_id": 1, "$secret": {"agent": {"x": 1}}},
            ),
            // Removing is never refused, and a no-op validates nothing.
            (
                doc! {"_id": 1, "$x": 1, "b": 2},
                doc! {"$unset": {"$x": 1}},
                doc! {"_id": 1, "b": 2},
            ),
            (
                doc! {"_id": 1, "$x": 1, "b": 2},
                doc! {"$unset": {"b": 1}},
                doc! {"_id": 1, "$x": 1},
            ),
            (
                doc! {"_id": 1, "$x": 1},
                doc! {"$rename": {"$x": "y"}},
                doc! {"_id": 1, "y": 1},
            ),
            (
                doc! {"_id": 1, "a": {"$b": 1}},
                doc! {"$rename": {"a.$b": "a.$c"}},
                doc! {"_id": 1, "a": {"$c": 1}},
            ),
            // A replacement may hold nested `$` names, and a DBRef at the top level.
            (
                doc! {"_id": 1},
                doc! {"a": {"$c": 1, "bar": {"$d": 4}}},
                doc! {"_id": 1, "a": {"$c": 1, "bar": {"$d": 4}}},
            ),
            (
                doc! {"_id": 1},
                doc! {"a": 1, "$ref": "c", "$id": 2},
                doc! {"_id": 1, "a": 1, "$ref": "c", "$id": 2},
            ),
        ];
        for (d, u, want) in accepted {
            assert_eq!(run(d, u.clone()).doc, want, "{u:?}");
        }
        let same = run(doc! {"_id": 1, "$x": 1}, doc! {"$set": {"$x": 1}});
        assert!(
            !same.modified,
            "a no-op on a top-level $ field is not refused"
        );

        // Refused at the top level of an existing document (52, or 55 for DBRefs).
        let refused: Vec<(Document, Document, i32, String)> = vec![
            (
                doc! {"_id": 1},
                doc! {"$set": {"$myKey": 1}},
                52,
                hint("$myKey"),
            ),
            (doc! {"_id": 1}, doc! {"$inc": {"$z": 1}}, 52, hint("$z")),
            (doc! {"_id": 1}, doc! {"$set": {"$$$": 1}}, 52, hint("$$$")),
            (
                doc! {"_id": 1},
                doc! {"$set": {"$secret.agent.x": 1}},
                52,
                hint("$secret"),
            ),
            (
                doc! {"_id": 1, "$x": 1},
                doc! {"$set": {"$x": 2}},
                52,
                hint("$x"),
            ),
            (
                doc! {"_id": 1, "a": 1},
                doc! {"$rename": {"a": "$b"}},
                52,
                hint("$b"),
            ),
            (
                doc! {"_id": 1},
                doc! {"$set": {"$reffoo": 1}},
                52,
                hint("$reffoo"),
            ),
            (
                doc! {"_id": 1},
                doc! {"$set": {"$ref": "c"}},
                55,
                "The DBRef $ref field must be followed by a $id field".into(),
            ),
            (
                doc! {"_id": 1},
                doc! {"$set": {"$id": 1}},
                55,
                "Found $id field without a $ref before it, which is invalid.".into(),
            ),
            (
                doc! {"_id": 1},
                doc! {"a": 1, "$invalid": 1},
                52,
                hint("$invalid"),
            ),
            (
                doc! {"_id": 0},
                doc! {"_id": {"a": {"$b": 1}}},
                52,
                "_id fields may not contain '$'-prefixed fields: $b is not valid for storage."
                    .into(),
            ),
        ];
        for (d, u, code, msg) in refused {
            let (c, m) = err(d, u.clone());
            assert_eq!((c, m.as_str()), (code, msg.as_str()), "{u:?}");
        }

        // Positional `$`, `$[]` and `$[<id>]` stay dynamic; a `$` name after them is a field.
        let arr = doc! {"_id": 1, "arr": [{"v": 1}, {"v": 2}]};
        let got = run_with(
            arr.clone(),
            bson!({"$set": {"arr.$.$tag": "x"}}),
            None,
            Some(1),
            false,
        )
        .expect("positional");
        assert_eq!(
            got.doc,
            doc! {"_id": 1, "arr": [{"v": 1}, {"v": 2, "$tag": "x"}]}
        );
        let got = run(arr.clone(), doc! {"$set": {"arr.$[].$k": 1}});
        assert_eq!(
            got.doc,
            doc! {"_id": 1, "arr": [{"v": 1, "$k": 1}, {"v": 2, "$k": 1}]}
        );
        let filters = [doc! {"e.v": 2}];
        let got = run_with(
            arr,
            bson!({"$set": {"arr.$[e].$k": 1}}),
            Some(&filters),
            None,
            false,
        )
        .expect("array filter");
        assert_eq!(
            got.doc,
            doc! {"_id": 1, "arr": [{"v": 1}, {"v": 2, "$k": 1}]}
        );
        // `$[` without its bracket is a plain name.
        let got = run(doc! {"_id": 1, "a": {}}, doc! {"$set": {"a.$[x": 1}});
        assert_eq!(got.doc, doc! {"_id": 1, "a": {"$[x": 1}});
        for (u, msg) in [
            (
                doc! {"$rename": {"a.$": "b"}},
                "The source field for $rename may not be dynamic: a.$",
            ),
            (
                doc! {"$rename": {"a": "b.$[]"}},
                "The destination field for $rename may not be dynamic: b.$[]",
            ),
            (
                doc! {"$set": {"$": 1}},
                "Cannot have positional (i.e. '$') element in the first position in path '$'",
            ),
        ] {
            let (c, m) = err(doc! {"_id": 1}, u.clone());
            assert_eq!((c, m.as_str()), (2, msg), "{u:?}");
        }

        // An upsert's insert may store top-level `$` names (the manual's example).
        let got = run_with(
            doc! {"date": "2021-07-07"},
            bson!({"$set": {"phone": 25.17, "$hotel": 320.10}}),
            None,
            None,
            true,
        )
        .expect("upsert");
        assert_eq!(
            got.doc,
            doc! {"date": "2021-07-07", "$hotel": 320.10, "phone": 25.17}
        );
        let got = run_with(doc! {}, bson!({"a": 1, "$b": 2}), None, None, true)
            .expect("upsert replacement");
        assert_eq!(got.doc, doc! {"a": 1, "$b": 2});
        // ... but not inside `_id`.
        let e =
            run_with(doc! {}, bson!({"_id": {"$invalid": 1}}), None, None, true).expect_err("_id");
        assert_eq!(e.code, 52);

        // Pipeline updates may write top-level `$` names ($literal, $setField).
        let got = run_with(
            doc! {"_id": 1},
            bson!([{"$replaceWith": {"$literal": {"$a": 1}}}]),
            None,
            None,
            false,
        )
        .expect("pipeline");
        assert_eq!(got.doc, doc! {"_id": 1, "$a": 1});
        let got = run_with(
            doc! {"_id": 1},
            bson!([{"$replaceWith": {"$setField": {"field": {"$literal": "$price"}, "input": "$$ROOT", "value": 5}}}]),
            None,
            None,
            false,
        )
        .expect("$setField");
        assert_eq!(got.doc, doc! {"_id": 1, "$price": 5});
        let e = run_with(
            doc! {"_id": 0},
            bson!([{"$replaceWith": {"$literal": {"_id": {"a": {"$b": 1}}}}}]),
            None,
            None,
            false,
        )
        .expect_err("_id");
        assert_eq!(e.code, 52);
    }

    #[test]
    fn replacement_keeps_id() {
        let got = run(doc! {"_id": 7, "a": 1}, doc! {"b": 2});
        assert_eq!(got.doc, doc! {"_id": 7, "b": 2});
        assert!(got.modified);
        assert!(got.diff.is_none());
        let same = run(doc! {"_id": 7, "b": 2}, doc! {"b": 2});
        assert!(!same.modified);
        let pipeline = Update::parse(&bson!([{"$set": {"a": 1}}]), None).expect("ok");
        assert!(matches!(pipeline, Update::Pipeline(ref p) if p.stages.len() == 1));
    }

    #[test]
    fn update_descriptions() {
        // $set of a field to the same value is not reported and is not a modification.
        let got = run(doc! {"_id": 1, "a": 1}, doc! {"$set": {"a": 1}});
        assert!(!got.modified);
        assert_eq!(got.description, UpdateDescription::default());
        // $set to an equal value of another type is a change.
        let got = run(doc! {"_id": 1, "a": 1}, doc! {"$set": {"a": 1.0}});
        assert_eq!(got.description.updated_fields, doc! {"a": 1.0});
        // $push appends: each new element by index.
        let got = run(
            doc! {"_id": 1, "arr": [1, 2, 3]},
            doc! {"$push": {"arr": {"$each": [4, 5]}}},
        );
        assert_eq!(
            got.description.updated_fields,
            doc! {"arr.3": 4, "arr.4": 5}
        );
        assert_eq!(got.diff, Some(doc! {"sarr": {"a": true, "u3": 4, "u4": 5}}));
        // $push to an empty array and $pop/$pull report the whole array.
        let got = run(doc! {"_id": 1, "arr": []}, doc! {"$push": {"arr": 1}});
        assert_eq!(got.description.updated_fields, doc! {"arr": [1]});
        let got = run(doc! {"_id": 1, "arr": [1, 2]}, doc! {"$pop": {"arr": 1}});
        assert_eq!(got.description.updated_fields, doc! {"arr": [1]});
        assert!(got.description.truncated_arrays.is_empty());
        // $addToSet appends by index, even to an empty array.
        let got = run(doc! {"_id": 1, "s": []}, doc! {"$addToSet": {"s": "x"}});
        assert_eq!(got.description.updated_fields, doc! {"s.0": "x"});
        // Nested creation reports the top created field with its whole value.
        let got = run(doc! {"_id": 1}, doc! {"$set": {"a.b.c": 1, "a.d": 2}});
        assert_eq!(
            got.description.updated_fields,
            doc! {"a": {"b": {"c": 1}, "d": 2}}
        );
        // Updates are listed before inserts, then removals; sub-paths last.
        let got = run(
            doc! {"_id": 1, "t": [{"s": [0, 1]}], "r": [0, 1, 2, 3], "x": 1},
            doc! {"$set": {"a": 2, "t.0.s.1": 3, "r": [0]}, "$unset": {"x": 1}},
        );
        let keys: Vec<&String> = got.description.updated_fields.keys().collect();
        assert_eq!(keys, vec!["r", "a", "t.0.s.1"]);
        assert_eq!(got.description.removed_fields, vec!["x".to_owned()]);
        // Numeric field names (not array indexes) and dotted names are disambiguated.
        let got = run(
            doc! {"_id": 1, "arr": [[{"0": "n", "f": 1}]], "obj": {"0": {"1": "n"}}},
            doc! {"$set": {"arr.0.0.1": {"b.c": 1}, "obj.0.1": "u"}},
        );
        assert_eq!(
            got.description.disambiguated_paths,
            doc! {
                "arr.0.0.1": ["arr", 0, 0, "1"],
                "obj.0.1": ["obj", "0", "1"],
            }
        );
        // Unsetting an array element reports it set to null.
        let got = run(doc! {"_id": 1, "a": [1, 2]}, doc! {"$unset": {"a.1": 1}});
        assert_eq!(got.description.updated_fields, doc! {"a.1": null});
        assert!(got.description.removed_fields.is_empty());
    }

    #[test]
    fn upserts() {
        assert_eq!(
            upsert_seed(&doc! {"b": 1, "a.x": 2, "_id": 5, "c": {"$gt": 1}, "$and": [{"d": "q"}]})
                .expect("ok"),
            doc! {"_id": 5, "a": {"x": 2}, "b": 1, "d": "q"}
        );
        let e = upsert_seed(&doc! {"a": 1, "$and": [{"a": 2}]}).expect_err("twice");
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                54,
                "cannot infer query fields to set, path 'a' is matched twice"
            )
        );
        let e = upsert_seed(&doc! {"a": 1, "a.b": 2}).expect_err("prefix");
        assert_eq!(e.code, 54);
        let seed = upsert_seed(&doc! {"x": 1}).expect("ok");
        let got = run_with(
            seed,
            bson!({"$setOnInsert": {"y": 2}, "$set": {"z": 3}}),
            None,
            None,
            true,
        )
        .expect("ok");
        assert_eq!(got.doc, doc! {"x": 1, "y": 2, "z": 3});
        let got = run_with(
            doc! {"x": 1},
            bson!({"$setOnInsert": {"y": 2}}),
            None,
            None,
            false,
        )
        .expect("ok");
        assert!(!got.modified);
    }

    #[test]
    fn diff_description_of_arbitrary_change() {
        let d = diff_description(
            &doc! {"_id": 1, "a": [1, 2, 3], "b": 1},
            &doc! {"_id": 1, "a": [1, 5], "c": 2},
        );
        assert_eq!(d.updated_fields, doc! {"a.1": 5, "c": 2});
        assert_eq!(d.removed_fields, vec!["b".to_owned()]);
        assert_eq!(d.truncated_arrays, vec![("a".to_owned(), 2)]);
    }

    /// mongod's `collation_update.js` cases: operators that compare values do so under
    /// the statement's collation.
    #[test]
    fn collated_operators() {
        let c = |spec: Document| Collation::parse(&spec).expect("valid").expect("not simple");
        let ci = c(doc! {"locale": "en_US", "strength": 2});
        let numeric = c(doc! {"locale": "en_US", "numericOrdering": true});
        let apply = |d: Document, u: Bson, filters: Option<&[Document]>, coll: &Arc<Collation>| {
            Update::parse(&u, filters)
                .expect("parses")
                .collated(Some(coll))
                .apply(
                    &d,
                    &ApplyContext {
                        matched: None,
                        is_upsert_insert: false,
                        now: now(),
                    },
                )
                .expect("applies")
        };
        // $min/$max: "1234" > "124" numerically, so no change; by bytes it is less.
        let got = apply(
            doc! {"a": "124"},
            bson!({"$min": {"a": "1234"}}),
            None,
            &numeric,
        );
        assert!(!got.modified);
        let got = run_with(
            doc! {"a": "124"},
            bson!({"$min": {"a": "1234"}}),
            None,
            None,
            false,
        )
        .expect("ok");
        assert_eq!(got.doc, doc! {"a": "1234"});
        let got = apply(
            doc! {"a": "124"},
            bson!({"$max": {"a": "1234"}}),
            None,
            &numeric,
        );
        assert_eq!(got.doc, doc! {"a": "1234"});
        // $addToSet: "FOO" is already there; its own values dedup under the collation.
        let got = apply(
            doc! {"a": ["foo"]},
            bson!({"$addToSet": {"a": {"$each": ["FOO", "bar", "BAR"]}}}),
            None,
            &ci,
        );
        assert_eq!(got.doc, doc! {"a": ["foo", "bar"]});
        // $pull by value, by condition and by object query; $pullAll.
        let got = apply(
            doc! {"a": ["foo", "FOO", "x"]},
            bson!({"$pull": {"a": "foo"}}),
            None,
            &ci,
        );
        assert_eq!(got.doc, doc! {"a": ["x"]});
        let got = apply(
            doc! {"a": ["a", "B", "c"]},
            bson!({"$pull": {"a": {"$gte": "B"}}}),
            None,
            &ci,
        );
        // By bytes every element is >= "B".
        assert_eq!(got.doc, doc! {"a": ["a"]});
        let got = apply(
            doc! {"a": [{"b": "foo"}, {"b": "x"}]},
            bson!({"$pull": {"a": {"b": "FOO"}}}),
            None,
            &ci,
        );
        assert_eq!(got.doc, doc! {"a": [{"b": "x"}]});
        let got = apply(
            doc! {"a": ["foo", "FOO", "x"]},
            bson!({"$pullAll": {"a": ["FOO"]}}),
            None,
            &ci,
        );
        assert_eq!(got.doc, doc! {"a": ["x"]});
        // $push with $sort: alphabetical, not byte order.
        let got = apply(
            doc! {"a": []},
            bson!({"$push": {"a": {"$each": ["b", "C", "a"], "$sort": 1}}}),
            None,
            &ci,
        );
        assert_eq!(got.doc, doc! {"a": ["a", "b", "C"]});
        // arrayFilters.
        let got = apply(
            doc! {"a": ["foo", "FOO", "x"]},
            bson!({"$set": {"a.$[i]": "y"}}),
            Some(&[doc! {"i": "foo"}]),
            &ci,
        );
        assert_eq!(got.doc, doc! {"a": ["y", "y", "x"]});
        // A pipeline update's expressions.
        let got = apply(
            doc! {"a": "foo"},
            bson!([{"$set": {"same": {"$eq": ["$a", "FOO"]}}}]),
            None,
            &ci,
        );
        assert_eq!(got.doc, doc! {"a": "foo", "same": true});
    }
}
