//! `find` projections, and the base of the aggregation `$project` stage.
//!
//! Parsing follows mongod 7.0's `projection_parser.cpp`; application follows its
//! projection executors (`inclusion_projection_executor`, `exclusion_...`,
//! `projection_executor_utils`). A projection is parsed into a tree of path nodes,
//! then applied in the order mongod applies it:
//!
//! 1. **fields**: an inclusion projection copies the named paths (in the *document's*
//!    field order, dropping non-document array elements below an included subpath);
//!    an exclusion projection copies everything except the named paths;
//! 2. **computed fields** (literals, aggregation expressions, `$elemMatch`): each is set
//!    on the output in projection order, replacing a field in place or appending it,
//!    so `{games: {$elemMatch: ..}, joined: 1}` returns `games` after `joined`; a
//!    missing result removes the field;
//! 3. **find `$slice`**: the array at the path of the *output* is sliced in place (so
//!    in an inclusion projection only the sliced path of a subdocument is returned);
//! 4. **positional `$`**: the first array on the path is replaced by the one element
//!    at the match's `elem_match_key`.
//!
//! Which kind a projection is (inclusion or exclusion) is decided by its first
//! inclusion or exclusion of a field other than top-level `_id`, a literal or an
//! expression (inclusion); projections with none of those fall back to mongod's
//! `computeProjectionType` rules (`{a: {$slice: 1}}` is an exclusion,
//! `{a: {$elemMatch: ..}}` an inclusion). `_id` is included by default in an inclusion
//! projection.
//!
//! Aggregation expressions are parsed and evaluated by [`crate::expr`]. `$meta`
//! projections are refused with an honest "not supported" error: Eddy has no text
//! search, no `$search`, and does not expose record ids or index keys.
//!
//! [`Projection::parse_aggregation`] parses the `$project` stage's dialect: no positional
//! `$`, no `$elemMatch` (168), and `$slice` is the aggregation expression.

use std::fmt;
use std::sync::Arc;

use bson::{Bson, Document};
use eddy_codes::{ErrorCode, MongoError};

use crate::expr::{self, Env};
use crate::filter::{Filter, MatchDetails};
use crate::util;

/// mongod's `BSONDepth::getMaxAllowableDepth()`: the longest allowed field path.
const MAX_PATH_COMPONENTS: usize = 200;

/// Dollar-prefixed field names a `FieldPath` accepts (DBRef parts and metadata
/// fields mongod uses internally).
const ALLOWED_DOLLAR_FIELDS: &[&str] = &[
    "$id",
    "$ref",
    "$db",
    "$sortKey",
    "$recordId",
    "$searchSortValues",
    "$searchScore",
];

/// A parsed projection.
#[derive(Debug, Clone)]
pub struct Projection {
    root: Tree,
    inclusion: bool,
    /// Find `$slice`s, by full path, applied to the output after the fields.
    slices: Vec<(Vec<String>, Slice)>,
    /// The path before a positional `.$`, if any (at most one per projection).
    positional: Option<Vec<String>>,
}

/// One level of the projection tree; children in projection order.
#[derive(Debug, Clone, Default)]
struct Tree {
    children: Vec<(String, Node)>,
    /// Whether a computed field (literal, expression, `$elemMatch`) is in this subtree.
    computed: bool,
}

impl Tree {
    fn get(&self, name: &str) -> Option<&Node> {
        self.children
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, n)| n)
    }

    /// Sets `computed` throughout; returns this tree's flag.
    fn mark_computed(&mut self) -> bool {
        let mut any = false;
        for (_, n) in &mut self.children {
            any |= match n {
                Node::Tree(t) => t.mark_computed(),
                Node::Literal(_) | Node::Expr(_) | Node::ElemMatch(_) => true,
                Node::Bool(_) | Node::Slice | Node::Positional => false,
            };
        }
        self.computed = any;
        any
    }
}

#[derive(Debug, Clone)]
enum Node {
    /// `1`/`true` (include) or `0`/`false` (exclude).
    Bool(bool),
    /// A sub-projection (`{a: {b: 1}}` or the `a` of `{"a.b": 1}`).
    Tree(Tree),
    /// The path of a find `$slice`: included by an inclusion projection, kept by an
    /// exclusion one; the slice itself is in `Projection::slices`.
    Slice,
    /// The path before a positional `.$`; included like `Slice`.
    Positional,
    /// `$elemMatch` on a top-level field: the matcher for `{field: {$elemMatch: ..}}`.
    ElemMatch(Box<Filter>),
    /// A constant value (`{a: "x"}`), evaluated without the expression module.
    Literal(Bson),
    /// An aggregation expression (`{a: "$b"}`, `{a: {$add: [..]}}`).
    Expr(ExprNode),
}

/// A parsed expression with the spec it came from (for `Debug`; the expression
/// module's type is shared, not cloned).
#[derive(Clone)]
struct ExprNode {
    raw: Bson,
    expr: Arc<expr::Expr>,
}

impl fmt::Debug for ExprNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Expr({})", util::bson_to_string(&self.raw))
    }
}

/// A find `$slice`: `limit` elements after `skip` (`None`: `limit` from the start, or
/// from the end when negative).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slice {
    skip: Option<i32>,
    limit: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Find,
    Aggregation,
}

/// Parse state (mongod's `ParseContext`).
struct Ctx<'q> {
    mode: Mode,
    query: Option<&'q Document>,
    /// The command's `let` variable names, in scope of computed fields.
    vars: &'q [String],
    /// `Some(true)` inclusion, `Some(false)` exclusion, once a field decides it.
    kind: Option<bool>,
    id_specified: bool,
    id_included: bool,
    id_excluded: bool,
    has_positional: bool,
    has_elem_match: bool,
    has_find_slice: bool,
    has_meta: bool,
    slices: Vec<(Vec<String>, Slice)>,
    positional: Option<Vec<String>>,
}

impl Projection {
    /// Parses a `find` projection. Positional projections are not checked against
    /// the query here (see [`Projection::parse_with_query`]).
    pub fn parse(spec: &Document) -> Result<Projection, MongoError> {
        parse_spec(spec, Mode::Find, None, &[])
    }

    /// Parses a `find` projection with the query it goes with, so a positional
    /// projection is checked as mongod checks it (31277 when no query predicate is on
    /// the projected array's top-level field).
    pub fn parse_with_query(spec: &Document, query: &Document) -> Result<Projection, MongoError> {
        parse_spec(spec, Mode::Find, Some(query), &[])
    }

    /// Parses the specification of an aggregation `$project` stage: find-only
    /// operators are refused as mongod refuses them, `$slice` is the expression, and
    /// errors carry the stage's `Invalid $project :: caused by :: ` prefix.
    pub fn parse_aggregation(spec: &Document) -> Result<Projection, MongoError> {
        Projection::parse_aggregation_with_vars(spec, &[])
    }

    /// [`Projection::parse_aggregation`] with the command's `let` variable names in
    /// scope of its expressions.
    pub fn parse_aggregation_with_vars(
        spec: &Document,
        vars: &[String],
    ) -> Result<Projection, MongoError> {
        let parsed = if spec.is_empty() {
            Err(MongoError::location(
                51272,
                "projection specification must have at least one field",
            ))
        } else {
            parse_spec(spec, Mode::Aggregation, None, vars)
        };
        parsed.map_err(|mut e| {
            e.message = format!("Invalid $project :: caused by :: {}", e.message);
            e
        })
    }

    /// Whether this is an inclusion projection (only the named fields are returned).
    pub fn is_inclusion(&self) -> bool {
        self.inclusion
    }

    /// Whether the projection uses the positional `$` operator (and so needs the
    /// query's [`MatchDetails`]).
    pub fn has_positional(&self) -> bool {
        self.positional.is_some()
    }

    /// Applies to one result document; `details` is what the filter's match returned
    /// (positional `$`). Expressions see a fresh [`Env`]; use
    /// [`Projection::apply_with_env`] to share one `$$NOW` across a whole query.
    pub fn apply(
        &self,
        doc: &Document,
        details: Option<&MatchDetails>,
    ) -> Result<Document, MongoError> {
        if self.root.computed {
            self.apply_with_env(doc, details, &Env::new())
        } else {
            self.apply_fields(doc, details, None)
        }
    }

    /// [`Projection::apply`] with the expression environment given.
    pub fn apply_with_env(
        &self,
        doc: &Document,
        details: Option<&MatchDetails>,
        env: &Env,
    ) -> Result<Document, MongoError> {
        self.apply_fields(doc, details, Some(env))
    }

    fn apply_fields(
        &self,
        doc: &Document,
        details: Option<&MatchDetails>,
        env: Option<&Env>,
    ) -> Result<Document, MongoError> {
        let mut out = if self.inclusion {
            include_doc(&self.root, doc)
        } else {
            exclude_doc(&self.root, doc)
        };
        // Metadata stays with the document, as in mongod.
        crate::meta::carry(doc, &mut out);
        if self.root.computed {
            let fresh;
            let env = match env {
                Some(e) => e,
                None => {
                    fresh = Env::new();
                    &fresh
                }
            };
            apply_computed(&self.root, &mut out, doc, env)?;
        }
        for (path, slice) in &self.slices {
            slice_doc(&mut out, path, *slice);
        }
        if let Some(path) = &self.positional {
            apply_positional(&mut out, path, details.and_then(|d| d.elem_match_key))?;
        }
        Ok(out)
    }
}

fn parse_spec(
    spec: &Document,
    mode: Mode,
    query: Option<&Document>,
    vars: &[String],
) -> Result<Projection, MongoError> {
    let mut ctx = Ctx {
        mode,
        query,
        vars,
        kind: None,
        id_specified: false,
        id_included: false,
        id_excluded: false,
        has_positional: false,
        has_elem_match: false,
        has_find_slice: false,
        has_meta: false,
        slices: Vec::new(),
        positional: None,
    };
    let mut root = Tree::default();
    for (name, value) in spec {
        ctx.id_specified |= name == "_id" || name.starts_with("_id.");
        parse_element(&mut ctx, name, value, &[], &mut root)?;
    }
    let inclusion = match ctx.kind {
        Some(k) => k,
        None => default_kind(&ctx),
    };
    if inclusion && !ctx.id_specified {
        root.children.push(("_id".to_owned(), Node::Bool(true)));
    }
    if !inclusion && ctx.id_included {
        // `{_id: 1, a: 0}`: legal, and keeping _id is what an exclusion does anyway.
        root.children.retain(|(k, _)| k != "_id");
    }
    root.mark_computed();
    Ok(Projection {
        root,
        inclusion,
        slices: ctx.slices,
        positional: ctx.positional,
    })
}

/// mongod's `computeProjectionType`, for projections no field decided.
fn default_kind(ctx: &Ctx<'_>) -> bool {
    if ctx.has_find_slice {
        ctx.id_included
    } else if ctx.has_elem_match {
        true
    } else if ctx.has_meta {
        match ctx.mode {
            Mode::Find => !ctx.id_excluded && ctx.id_included,
            Mode::Aggregation => true,
        }
    } else {
        ctx.id_included
    }
}

fn parse_element(
    ctx: &mut Ctx<'_>,
    name: &str,
    value: &Bson,
    parent: &[String],
    tree: &mut Tree,
) -> Result<(), MongoError> {
    let positional = first_positional(name);
    if positional.is_some() && ctx.mode == Mode::Aggregation {
        return Err(MongoError::location(
            31324,
            "Cannot use positional projection in aggregation projection",
        ));
    }
    match value {
        Bson::Document(sub) => {
            if positional.is_some() {
                return Err(MongoError::location(
                    31271,
                    "positional projection cannot be used with an expression or sub object",
                ));
            }
            parse_sub_object(ctx, name, sub, parent, tree)
        }
        Bson::Boolean(_)
        | Bson::Int32(_)
        | Bson::Int64(_)
        | Bson::Double(_)
        | Bson::Decimal128(_) => {
            if util::true_value(value) {
                parse_inclusion(ctx, name, parent, tree, positional)
            } else {
                parse_exclusion(ctx, name, parent, tree)
            }
        }
        _ => {
            if positional.is_some() {
                return Err(MongoError::location(
                    31308,
                    "positional projection cannot be used with a literal",
                ));
            }
            parse_literal(ctx, name, value, tree)
        }
    }
}

fn parse_inclusion(
    ctx: &mut Ctx<'_>,
    name: &str,
    parent: &[String],
    tree: &mut Tree,
    positional: Option<(usize, usize)>,
) -> Result<(), MongoError> {
    let top_level_id = name == "_id" && parent.is_empty();
    match positional {
        None => {
            let path = field_path(name)?;
            add_node(tree, &path, Node::Bool(true))?;
            if top_level_id {
                ctx.id_included = true;
            }
        }
        Some((begin, end)) => {
            if ctx.has_positional {
                return Err(MongoError::location(
                    31276,
                    "Cannot specify more than one positional projection per query.",
                ));
            }
            if ctx.has_elem_match {
                return Err(MongoError::location(
                    31256,
                    "Cannot specify positional operator and $elemMatch.",
                ));
            }
            let match_field = match parent.first() {
                Some(f) => f.as_str(),
                None => name.split('.').next().unwrap_or(name),
            };
            if let Some(query) = ctx.query {
                if !query_has_path_prefix(query, match_field) {
                    return Err(MongoError::location(
                        31277,
                        format!(
                            "Positional projection '{name}' does not match the query document."
                        ),
                    ));
                }
            }
            if name.ends_with(".$.") {
                return Err(MongoError::location(31270, "Path cannot end with '.$.'"));
            }
            let rest = &name[end..];
            if first_positional(rest).is_some() || rest == "$" {
                return Err(MongoError::location(
                    31287,
                    format!("Cannot use positional operator twice: {name}"),
                ));
            }
            let path = field_path(&name[..begin])?;
            add_node(tree, &path, Node::Positional)?;
            let mut full = parent.to_vec();
            full.extend(path);
            ctx.positional = Some(full);
            ctx.has_positional = true;
        }
    }
    if !top_level_id {
        if ctx.kind == Some(false) {
            return Err(MongoError::location(
                31253,
                format!("Cannot do inclusion on field {name} in exclusion projection"),
            ));
        }
        ctx.kind = Some(true);
    }
    Ok(())
}

fn parse_exclusion(
    ctx: &mut Ctx<'_>,
    name: &str,
    parent: &[String],
    tree: &mut Tree,
) -> Result<(), MongoError> {
    let path = field_path(name)?;
    add_node(tree, &path, Node::Bool(false))?;
    if name == "_id" && parent.is_empty() {
        ctx.id_excluded = true;
    } else {
        if ctx.kind == Some(true) {
            return Err(MongoError::location(
                31254,
                format!("Cannot do exclusion on field {name} in inclusion projection"),
            ));
        }
        ctx.kind = Some(false);
    }
    Ok(())
}

fn parse_literal(
    ctx: &mut Ctx<'_>,
    name: &str,
    value: &Bson,
    tree: &mut Tree,
) -> Result<(), MongoError> {
    let node = if is_constant(value) {
        Node::Literal(value.clone())
    } else {
        Node::Expr(ExprNode {
            raw: value.clone(),
            expr: Arc::new(expr::Expr::parse_with_vars(value, ctx.vars)?),
        })
    };
    let path = field_path(name)?;
    add_node(tree, &path, node)?;
    if ctx.kind == Some(false) {
        return Err(MongoError::location(
            31310,
            format!(
                "Cannot use an expression {} in an exclusion projection",
                util::elem_to_string(name, value)
            ),
        ));
    }
    ctx.kind = Some(true);
    Ok(())
}

/// Whether a non-document projection value is a constant as is (no `$` strings, no
/// expression objects inside arrays), so it needs no expression evaluator.
fn is_constant(v: &Bson) -> bool {
    match v {
        Bson::String(s) => !s.starts_with('$'),
        Bson::Array(items) => items
            .iter()
            .all(|e| !matches!(e, Bson::Document(_)) && is_constant(e)),
        Bson::Document(_) => false,
        _ => true,
    }
}

fn parse_sub_object(
    ctx: &mut Ctx<'_>,
    name: &str,
    sub: &Document,
    parent: &[String],
    tree: &mut Tree,
) -> Result<(), MongoError> {
    let path = field_path(name)?;
    if sub.len() == 1 {
        if let Some((op, arg)) = sub.iter().next() {
            if op.starts_with('$') {
                if parse_operator(ctx, name, &path, op, arg, sub, parent, tree)? {
                    return Ok(());
                }
                // Not an expression: then it must be a valid field name ({a: {$id: 1}}).
                if field_path(op).is_err() {
                    return Err(MongoError::location(
                        31325,
                        format!("Unknown expression {op}"),
                    ));
                }
            }
        }
    }
    let mut full = parent.to_vec();
    full.extend(path.iter().cloned());
    if sub.is_empty() {
        return Err(MongoError::location(
            51270,
            format!(
                "An empty sub-projection is not a valid value. Found empty object at path {}",
                full.join(".")
            ),
        ));
    }
    let mut child = Tree::default();
    for (k, v) in sub {
        parse_element(ctx, k, v, &full, &mut child)?;
    }
    add_node(tree, &path, Node::Tree(child))
}

/// A one-field `{$op: arg}` object: the find operators, `$meta`, or an aggregation
/// expression. Returns whether it was one (`false`: treat it as a sub-projection).
#[allow(clippy::too_many_arguments)]
fn parse_operator(
    ctx: &mut Ctx<'_>,
    name: &str,
    path: &[String],
    op: &str,
    arg: &Bson,
    sub: &Document,
    parent: &[String],
    tree: &mut Tree,
) -> Result<bool, MongoError> {
    match (ctx.mode, op) {
        (Mode::Find, "$slice") => {
            let find_err = match parse_find_slice(arg) {
                Ok(slice) => {
                    add_node(tree, path, Node::Slice)?;
                    let mut full = parent.to_vec();
                    full.extend(path.iter().cloned());
                    ctx.slices.push((full, slice));
                    ctx.has_find_slice = true;
                    return Ok(true);
                }
                Err(e) => e,
            };
            // Not the find() form: maybe the aggregation expression ({$slice: ["$a", 1]}).
            parse_expression(ctx, path, op, sub, tree).map_err(|e| {
                MongoError::location(
                    e.code,
                    format!(
                        "Invalid $slice syntax. The given syntax {} did not match the find() \
                         syntax because :: {}: {} :: The given syntax did not match the \
                         expression $slice syntax. :: caused by :: {}",
                        util::bson_to_string(&Bson::Document(sub.clone())),
                        find_err.code_name(),
                        find_err.message,
                        e.message
                    ),
                )
            })
        }
        (Mode::Find, "$elemMatch") => {
            let Bson::Document(_) = arg else {
                return Err(MongoError::location(
                    31274,
                    format!(
                        "elemMatch: Invalid argument, object required, but got {}",
                        util::type_name(arg)
                    ),
                ));
            };
            if ctx.has_positional {
                return Err(MongoError::location(
                    31255,
                    "Cannot specify positional operator and $elemMatch.",
                ));
            }
            if path.len() != 1 || !parent.is_empty() {
                return Err(MongoError::location(
                    31275,
                    "Cannot use $elemMatch projection on a nested field.",
                ));
            }
            let mut query = Document::new();
            query.insert(name, Bson::Document(sub.clone()));
            let filter = Filter::parse(&query)?;
            add_node(tree, path, Node::ElemMatch(Box::new(filter)))?;
            ctx.has_elem_match = true;
            Ok(true)
        }
        (Mode::Aggregation, "$elemMatch") => Err(MongoError::new(
            ErrorCode::InvalidPipelineOperator,
            "Cannot use $elemMatch in this context",
        )),
        _ => parse_expression(ctx, path, op, sub, tree),
    }
}

/// mongod's `attemptToParseGenericExpression`.
fn parse_expression(
    ctx: &mut Ctx<'_>,
    path: &[String],
    op: &str,
    sub: &Document,
    tree: &mut Tree,
) -> Result<bool, MongoError> {
    if ALLOWED_DOLLAR_FIELDS.contains(&op) {
        // A field name, not an expression: {a: {$id: 1}} is a sub-projection.
        return Ok(false);
    }
    let is_meta = op == "$meta";
    if !is_meta && ctx.kind == Some(false) {
        return Err(MongoError::location(
            31252,
            "Cannot use expression other than $meta in exclusion projection",
        ));
    }
    if !is_meta {
        ctx.kind = Some(true);
    }
    if is_meta {
        ctx.has_meta = true;
    }
    let raw = Bson::Document(sub.clone());
    let parsed = expr::Expr::parse_with_vars(&raw, ctx.vars).map_err(|e| {
        // An operator the expression module does not know is, to mongod's projection
        // parser, not an expression name at all: 31325.
        if e.code == ErrorCode::InvalidPipelineOperator.code()
            && e.message == format!("Unrecognized expression '{op}'")
        {
            MongoError::location(31325, format!("Unknown expression {op}"))
        } else {
            e
        }
    })?;
    add_node(
        tree,
        path,
        Node::Expr(ExprNode {
            raw,
            expr: Arc::new(parsed),
        }),
    )?;
    Ok(true)
}

/// mongod's `attemptToParseFindSlice`.
fn parse_find_slice(arg: &Bson) -> Result<Slice, MongoError> {
    if crate::cmp::is_number(arg) {
        return Ok(Slice {
            skip: None,
            limit: number_int(arg),
        });
    }
    let Bson::Array(items) = arg else {
        return Err(MongoError::location(
            31273,
            "$slice only supports numbers and [skip, limit] arrays",
        ));
    };
    let [skip, limit] = items.as_slice() else {
        return Err(MongoError::location(
            31272,
            "$slice array argument should be of form [skip, limit]",
        ));
    };
    if !crate::cmp::is_number(skip) {
        return Err(MongoError::location(
            31257,
            format!(
                "$slice expects the skip argument to be a number, got {}",
                util::type_name(skip)
            ),
        ));
    }
    if !crate::cmp::is_number(limit) {
        return Err(MongoError::location(
            31258,
            format!(
                "$slice expects the limit argument to be a number, got {}",
                util::type_name(limit)
            ),
        ));
    }
    let limit = number_int(limit);
    if limit <= 0 {
        return Err(MongoError::location(
            31259,
            format!("$slice limit must be positive, got {limit}"),
        ));
    }
    Ok(Slice {
        skip: Some(number_int(skip)),
        limit,
    })
}

/// `BSONElement::numberInt`: a number converted to int32 (truncating; longs wrap).
fn number_int(v: &Bson) -> i32 {
    match v {
        Bson::Int32(i) => *i,
        Bson::Int64(i) => *i as i32,
        _ => util::number_as_f64(v).map_or(0, |d| d as i32),
    }
}

/// Where the first positional `.$` is in a projection path: `.$.` inside, `.$` at the
/// end, or the whole path `$` (mongod's `findFirstPositionalOperator`).
fn first_positional(path: &str) -> Option<(usize, usize)> {
    if let Some(i) = path.find(".$.") {
        return Some((i, i + 3));
    }
    if path.ends_with(".$") {
        return Some((path.len() - 2, path.len()));
    }
    if path == "$" {
        return Some((0, 1));
    }
    None
}

/// Whether some predicate of the query (through `$and`/`$or`/`$nor`) is on a path
/// whose first component is `field` (mongod's `hasPositionalOperatorMatch`).
fn query_has_path_prefix(query: &Document, field: &str) -> bool {
    query.iter().any(|(k, v)| match k.as_str() {
        "$and" | "$or" | "$nor" => match v {
            Bson::Array(items) => items
                .iter()
                .filter_map(Bson::as_document)
                .any(|d| query_has_path_prefix(d, field)),
            _ => false,
        },
        k if k.starts_with('$') => false,
        k => k.split('.').next() == Some(field),
    })
}

/// Validates a dotted field path as mongod's `FieldPath` does and splits it.
pub(crate) fn field_path(path: &str) -> Result<Vec<String>, MongoError> {
    if path.is_empty() {
        return Err(MongoError::location(
            40352,
            "FieldPath cannot be constructed with empty string",
        ));
    }
    if path.ends_with('.') {
        return Err(MongoError::location(
            40353,
            "FieldPath must not end with a '.'.",
        ));
    }
    let parts: Vec<&str> = path.split('.').collect();
    if parts.len() > MAX_PATH_COMPONENTS {
        return Err(MongoError::new(
            ErrorCode::Overflow,
            "FieldPath is too long",
        ));
    }
    for p in &parts {
        if p.is_empty() {
            return Err(MongoError::location(
                eddy_codes::location::FIELD_PATH_EMPTY_COMPONENT,
                "FieldPath field names may not be empty strings.",
            ));
        }
        if p.starts_with('$') && !ALLOWED_DOLLAR_FIELDS.contains(p) {
            return Err(MongoError::location(
                eddy_codes::location::FIELD_PATH_DOLLAR_PREFIX,
                "FieldPath field names may not start with '$'. Consider using $getField or $setField.",
            ));
        }
        if p.contains('\0') {
            return Err(MongoError::location(
                16411,
                "FieldPath field names may not contain '\0'.",
            ));
        }
    }
    Ok(parts.into_iter().map(str::to_owned).collect())
}

/// mongod's `addNodeAtPath`: creates the intermediate levels, and refuses a path that
/// ends on an existing node (31250) or passes through a leaf (31249).
fn add_node(tree: &mut Tree, path: &[String], node: Node) -> Result<(), MongoError> {
    add_node_at(tree, path, 0, node)
}

fn add_node_at(tree: &mut Tree, path: &[String], i: usize, node: Node) -> Result<(), MongoError> {
    let name = &path[i];
    let existing = tree.children.iter().position(|(k, _)| k == name);
    if i + 1 == path.len() {
        if existing.is_some() {
            return Err(MongoError::location(
                31250,
                format!("Path collision at {}", path.join(".")),
            ));
        }
        tree.children.push((name.clone(), node));
        return Ok(());
    }
    let idx = match existing {
        Some(idx) => idx,
        None => {
            tree.children
                .push((name.clone(), Node::Tree(Tree::default())));
            tree.children.len() - 1
        }
    };
    match &mut tree.children[idx].1 {
        Node::Tree(child) => add_node_at(child, path, i + 1, node),
        _ => Err(MongoError::location(
            31249,
            format!(
                "Path collision at {} remaining portion {}",
                path.join("."),
                path[1..].join(".")
            ),
        )),
    }
}

// ---- application -------------------------------------------------------------

/// Inclusion, step 1: the included paths of `doc`, in the document's order.
fn include_doc(tree: &Tree, doc: &Document) -> Document {
    let mut out = Document::new();
    for (k, v) in doc {
        match tree.get(k) {
            Some(Node::Bool(true) | Node::Slice | Node::Positional) => {
                out.insert(k.clone(), v.clone());
            }
            Some(Node::Tree(t)) => {
                if let Some(nv) = include_value(t, v) {
                    out.insert(k.clone(), nv);
                }
            }
            _ => {}
        }
    }
    out
}

/// A value below a sub-projection: documents are projected, arrays element by element
/// (dropping elements that are neither), anything else is dropped.
fn include_value(tree: &Tree, v: &Bson) -> Option<Bson> {
    match v {
        Bson::Document(d) => Some(Bson::Document(include_doc(tree, d))),
        Bson::Array(items) => Some(Bson::Array(
            items
                .iter()
                .filter_map(|e| include_value(tree, e))
                .collect(),
        )),
        _ => None,
    }
}

/// Exclusion, step 1: `doc` without the excluded paths.
fn exclude_doc(tree: &Tree, doc: &Document) -> Document {
    let mut out = Document::new();
    for (k, v) in doc {
        match tree.get(k) {
            Some(Node::Bool(false)) => {}
            Some(Node::Tree(t)) => {
                out.insert(k.clone(), exclude_value(t, v));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

fn exclude_value(tree: &Tree, v: &Bson) -> Bson {
    match v {
        Bson::Document(d) => Bson::Document(exclude_doc(tree, d)),
        Bson::Array(items) => Bson::Array(items.iter().map(|e| exclude_value(tree, e)).collect()),
        other => other.clone(),
    }
}

/// Step 2: computed fields of `tree`, set on `out` in projection order (mongod's
/// `ProjectionNode::applyExpressions`). Expressions see the whole input document.
fn apply_computed(
    tree: &Tree,
    out: &mut Document,
    root: &Document,
    env: &Env,
) -> Result<(), MongoError> {
    for (k, node) in &tree.children {
        let value = match node {
            Node::Literal(v) => Some(v.clone()),
            Node::Expr(e) => e.expr.evaluate(root, env)?,
            Node::ElemMatch(filter) => elem_match_value(filter, root, k),
            Node::Tree(t) if t.computed => computed_value(t, out.get(k), root, env)?,
            _ => continue,
        };
        crate::util::set_or_remove(out, k, value);
    }
    Ok(())
}

/// Computed fields below a path (`applyExpressionsToValue`): into a document, into
/// each element of an array, and over anything else a new document of just them.
fn computed_value(
    tree: &Tree,
    current: Option<&Bson>,
    root: &Document,
    env: &Env,
) -> Result<Option<Bson>, MongoError> {
    Ok(Some(match current {
        Some(Bson::Document(d)) => {
            let mut d = d.clone();
            apply_computed(tree, &mut d, root, env)?;
            Bson::Document(d)
        }
        Some(Bson::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for e in items {
                if let Some(v) = computed_value(tree, Some(e), root, env)? {
                    out.push(v);
                }
            }
            Bson::Array(out)
        }
        _ => {
            let mut d = Document::new();
            apply_computed(tree, &mut d, root, env)?;
            Bson::Document(d)
        }
    }))
}

/// `$elemMatch` projection: the first matching element of the top-level array
/// `field`, as a one-element array, or nothing.
fn elem_match_value(filter: &Filter, doc: &Document, field: &str) -> Option<Bson> {
    let details = filter.matches_details(doc)?;
    match (doc.get(field), details.elem_match_key) {
        (Some(Bson::Array(items)), Some(i)) => items.get(i).map(|e| Bson::Array(vec![e.clone()])),
        _ => None,
    }
}

/// Step 3: a find `$slice` on the output (`applyFindSliceProjection`): arrays met
/// before the end of the path are entered element by element (documents only).
fn slice_doc(doc: &mut Document, path: &[String], slice: Slice) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    match doc.get_mut(first) {
        Some(Bson::Array(items)) => {
            if rest.is_empty() {
                slice_array(items, slice);
            } else {
                for e in items.iter_mut() {
                    if let Bson::Document(d) = e {
                        slice_doc(d, rest, slice);
                    }
                }
            }
        }
        Some(Bson::Document(d)) if !rest.is_empty() => slice_doc(d, rest, slice),
        _ => {}
    }
}

/// mongod's `sliceArray`.
fn slice_array(items: &mut Vec<Bson>, slice: Slice) {
    let len = items.len() as i64;
    let limit = i64::from(slice.limit);
    let (start, count) = match slice.skip {
        None if limit < 0 => {
            let start = (len + limit).max(0);
            (start, len - start)
        }
        None => (0, len.min(limit)),
        Some(skip) => {
            let skip = i64::from(skip);
            let start = if skip < 0 {
                (len + skip).max(0)
            } else {
                len.min(skip)
            };
            (start, (len - start).min(limit.max(0)))
        }
    };
    // Both are within 0..=len by construction.
    let start = start as usize;
    let end = start + count as usize;
    *items = items.drain(start..end).collect();
}

/// Step 4: positional `$` (`applyFindPositionalProjection`): the first array on `path`
/// in the output becomes `[element at key]`. A path with no array is left alone.
fn apply_positional(
    out: &mut Document,
    path: &[String],
    key: Option<usize>,
) -> Result<(), MongoError> {
    let mut cur = out;
    for comp in path {
        let here = cur;
        match here.get_mut(comp) {
            Some(Bson::Array(items)) => {
                let Some(k) = key else {
                    return Err(MongoError::location(
                        51246,
                        "positional operator '.$' couldn't find a matching element in the array",
                    ));
                };
                let Some(elem) = items.get(k).cloned() else {
                    return Err(MongoError::location(
                        51247,
                        "positional operator '.$' element mismatch",
                    ));
                };
                *items = vec![elem];
                return Ok(());
            }
            Some(Bson::Document(d)) => cur = d,
            _ => return Ok(()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod expr_tests;
