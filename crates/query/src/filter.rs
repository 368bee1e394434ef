//! The query matcher: parses a query document into a tree (mongod's `MatchExpression`)
//! and evaluates it against documents.
//!
//! Semantics follow mongod 7.0's `expression_parser.cpp` and the leaf expressions:
//!
//! * a path predicate matches when *any* value reached by [`path::lookup_all`]
//!   satisfies it (implicit array traversal); `$size` and `$elemMatch` look at arrays
//!   themselves (no leaf-array traversal);
//! * `$ne`, `$nin`, `$not` and `$exists: false` are negations of the whole path
//!   predicate (so `{a: {$ne: 1}}` rejects `{a: [1, 2]}`);
//! * comparisons are type-bracketed; missing and undefined compare equal to null for
//!   `$eq`/`$lte`/`$gte`; NaN equals NaN only;
//! * errors carry mongod's codes and messages (mostly BadValue 2).
//!
//! `$expr` is parsed through [`parse_expr_hook`] into an aggregation expression
//! ([`crate::expr::Expr`]) and matches when it evaluates to a truthy value.
//! `$where` reports what mongod reports without a JavaScript engine; `$text` reports
//! its missing-index error. `$geoWithin`/`$geoIntersects` match through
//! [`crate::geo`]; `$near`/`$nearSphere` parse into a leaf that checks the distance
//! bounds, allowed once and only in the top-level conjunction, and only where the
//! caller can order by distance ([`Filter::parse_find`]): elsewhere they fail as they
//! did before geo indexes existed (291, no index for `$geoNear`).
//!
//! [`Filter::matches_details`] returns the array position mongod records for the
//! positional `$` operator (`MatchDetails::elemMatchKey`).

use std::cmp::Ordering;

use bson::{Bson, Document};
use eddy_codes::{ErrorCode, MongoError};

use std::sync::Arc;

use crate::cmp::{self, compare, type_bracket};
use crate::collation::Collation;
use crate::path::{self, Candidate};
use crate::regex::MongoRegex;
use crate::schema::JsonSchema;
use crate::text::TextQuery;
use crate::util;

/// What a successful match records (mongod's `MatchDetails`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MatchDetails {
    /// The array position used by the positional `$` operator: the index, in the first
    /// array traversed, of the element that satisfied the query.
    pub elem_match_key: Option<usize>,
}

impl MatchDetails {
    /// The same value under the name the brief uses.
    pub fn elem_match_index(&self) -> Option<usize> {
        self.elem_match_key
    }
}

/// A parsed query.
#[derive(Debug, Clone)]
pub struct Filter {
    pub(crate) root: Expr,
    /// Some string comparison runs under a non-simple collation, so indexes (which
    /// order strings by bytes) cannot answer it.
    collated: bool,
    /// The collation the filter was put under (`None`: simple): an index answers its
    /// string comparisons only under the same one.
    collation: Option<Arc<Collation>>,
}

#[derive(Debug, Clone)]
pub(crate) enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Nor(Vec<Expr>),
    Not(Box<Expr>),
    Path(String, Leaf),
    AlwaysTrue,
    AlwaysFalse,
    Aggregate(ExprPredicate),
    Schema(Box<JsonSchema>),
    /// `$text`: decided by the text index that found the document (the engine's
    /// text plan), so it matches every document it is asked about.
    Text(Box<TextQuery>),
}

/// A predicate applied to one value reached by a path.
#[derive(Debug, Clone)]
pub(crate) enum Leaf {
    Cmp(CmpOp, Bson),
    /// A comparison whose value holds strings, under a non-simple collation.
    Collated(CmpOp, Bson, Arc<Collation>),
    In(InSet),
    Regex(MongoRegex),
    Exists,
    Type(TypeSet),
    Mod(i64, i64),
    Bits(BitOp, BitMask),
    Size(i64),
    ElemMatchObject(Box<Expr>),
    ElemMatchValue(Vec<Node>),
    /// `$geoWithin` / `$geoIntersects`.
    Geo(Arc<crate::geo::query::GeoPredicate>),
    /// `$near` / `$nearSphere`: within the distance bounds (the order is the caller's).
    Near(Arc<crate::geo::query::Near>),
}

/// Children of an `$elemMatch` value form: leaves and `$not`s applied to one element.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Leaf(Leaf),
    Not(Vec<Node>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Lt,
    Lte,
    Gt,
    Gte,
}

#[derive(Debug, Clone)]
pub(crate) struct InSet {
    /// Sorted by `cmp::compare` (under `collation`), deduplicated.
    pub(crate) values: Vec<Bson>,
    pub(crate) regexes: Vec<MongoRegex>,
    pub(crate) has_null: bool,
    /// Set when the values hold strings and the query has a non-simple collation.
    pub(crate) collation: Option<Arc<Collation>>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct TypeSet {
    pub(crate) all_numbers: bool,
    pub(crate) codes: Vec<i32>,
}

impl TypeSet {
    pub(crate) fn matches(&self, v: &Bson) -> bool {
        (self.all_numbers && cmp::is_number(v)) || self.codes.contains(&util::type_code(v))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BitOp {
    AllSet,
    AnySet,
    AllClear,
    AnyClear,
}

#[derive(Debug, Clone)]
pub(crate) struct BitMask {
    positions: Vec<u32>,
}

/// A parsed `$expr`: the raw argument and its aggregation expression.
#[derive(Debug, Clone)]
pub struct ExprPredicate {
    pub raw: Bson,
    expr: crate::expr::Expr,
    /// The command's `let` variables and collation, when it has any (else a fresh
    /// [`Env`] per evaluation).
    ///
    /// [`Env`]: crate::expr::Env
    env: Option<Box<crate::expr::Env>>,
}

/// Where a filter is being parsed; decides which top-level operators are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Top,
    Sub,
}

/// Parses the argument of `$expr` as an aggregation expression.
pub fn parse_expr_hook(raw: &Bson) -> Result<ExprPredicate, MongoError> {
    parse_expr_hook_with_vars(raw, &[])
}

/// Parses the argument of `$expr` with a command's `let` variables in scope; their
/// values are kept for evaluation.
pub fn parse_expr_hook_with_vars(
    raw: &Bson,
    vars: &[(String, Bson)],
) -> Result<ExprPredicate, MongoError> {
    let names: Vec<String> = vars.iter().map(|(k, _)| k.clone()).collect();
    let env = (!vars.is_empty()).then(|| {
        Box::new(crate::expr::Env {
            vars: vars.to_vec(),
            ..crate::expr::Env::new()
        })
    });
    Ok(ExprPredicate {
        raw: raw.clone(),
        expr: crate::expr::Expr::parse_with_vars(raw, &names)?,
        env,
    })
}

/// Evaluates a parsed `$expr`: the document matches when the result is truthy
/// (missing is false). Evaluation errors (e.g. `$divide` by zero) make the document
/// not match, since the matcher has no error channel.
fn eval_expr_hook(pred: &ExprPredicate, doc: &Document) -> bool {
    let result = match &pred.env {
        Some(env) => pred.expr.evaluate(doc, env),
        None => pred.expr.evaluate(doc, &crate::expr::Env::new()),
    };
    match result {
        Ok(v) => v.as_ref().is_some_and(util::true_value),
        Err(_) => false,
    }
}

/// A predicate on one value, as `$pull` applies `{$gte: 6}` or `/re/` to each array
/// element (mongod's `matchesSingleElement`, no array traversal).
#[derive(Debug, Clone)]
pub struct ValuePredicate {
    nodes: Vec<Node>,
}

impl ValuePredicate {
    /// Parses an operator document (`{$gte: 6}`) or a regex.
    pub fn parse(v: &Bson) -> Result<ValuePredicate, MongoError> {
        let nodes = match v {
            Bson::RegularExpression(r) => vec![Node::Leaf(Leaf::Regex(MongoRegex::new(
                r.pattern.as_str(),
                r.options.as_str(),
            )?))],
            Bson::Document(d) => parse_operators("", d, Level::Sub)?,
            other => vec![Node::Leaf(eq_leaf(other)?)],
        };
        Ok(ValuePredicate { nodes })
    }

    /// The same predicate with its string comparisons under `collation` (`$pull`'s
    /// condition in an update with a collation).
    pub fn collate(&mut self, collation: &Arc<Collation>) {
        collate_nodes(&mut self.nodes, collation);
    }

    /// Whether one value satisfies every operator.
    pub fn matches(&self, v: &Bson) -> bool {
        self.nodes.iter().all(|n| node_matches(n, v))
    }
}

impl Filter {
    /// Parses a query document.
    pub fn parse(query: &Document) -> Result<Filter, MongoError> {
        Filter::parse_with_vars(query, &[])
    }

    /// Parses a query document with a command's `let` variables (name, value) in
    /// scope of its `$expr`s (as `$$name`).
    pub fn parse_with_vars(
        query: &Document,
        vars: &[(String, Bson)],
    ) -> Result<Filter, MongoError> {
        let filter = Filter::parse_allowing_near(query, vars)?;
        if filter.near().is_some() {
            return Err(no_geo_near_index());
        }
        Ok(filter)
    }

    /// Parses the filter of a `$match` stage, where `$near` and `$nearSphere` are refused
    /// wherever they are (mongod's 5626500: a stage's input is not ordered by distance).
    pub fn parse_match(query: &Document) -> Result<Filter, MongoError> {
        let root = parse_doc(query, Level::Top, &[])?;
        let mut near = 0;
        count_near(&root, &mut near);
        if near > 0 {
            return Err(MongoError::location(
                5626500,
                "$geoNear, $near, and $nearSphere are not allowed in this context, as these operators require sorting geospatial data. If you do not need sort, consider using $geoWithin instead. Check out https://dochub.mongodb.org/core/near-sort-operation and https://dochub.mongodb.org/core/nearSphere-sort-operationfor more details.",
            ));
        }
        check_text(&root)?;
        Ok(Filter {
            root,
            collated: false,
            collation: None,
        })
    }

    /// Parses a `find` filter: like [`Filter::parse_collated`], but `$near` and
    /// `$nearSphere` are accepted (once, in the top-level conjunction), for a caller
    /// that orders the results by distance through a geo index.
    pub fn parse_find(
        query: &Document,
        vars: &[(String, Bson)],
        collation: Option<&Arc<Collation>>,
    ) -> Result<Filter, MongoError> {
        Ok(Filter::parse_allowing_near(query, vars)?.collated(collation))
    }

    fn parse_allowing_near(
        query: &Document,
        vars: &[(String, Bson)],
    ) -> Result<Filter, MongoError> {
        let root = parse_doc(query, Level::Top, vars)?;
        check_text(&root)?;
        let filter = Filter {
            root,
            collated: false,
            collation: None,
        };
        let mut all = 0;
        count_near(&filter.root, &mut all);
        if all > 1 {
            return Err(bad("Too many geoNear expressions"));
        }
        if all == 1 && filter.near().is_none() {
            return Err(bad("geoNear must be top-level expr"));
        }
        Ok(filter)
    }

    /// The `$near`/`$nearSphere` predicate of the top-level conjunction, with its path.
    pub fn near(&self) -> Option<(&str, &crate::geo::query::Near)> {
        fn find(e: &Expr) -> Option<(&str, &crate::geo::query::Near)> {
            match e {
                Expr::Path(p, Leaf::Near(n)) => Some((p.as_str(), n)),
                Expr::And(children) => children.iter().find_map(find),
                _ => None,
            }
        }
        find(&self.root)
    }

    /// The same filter with its `$near` limited to `max` (in the query's units): the
    /// widening rings of a `$near` with a limit read through these.
    pub fn with_near_max(&self, max: f64) -> Filter {
        fn set(e: &mut Expr, max: f64) {
            match e {
                Expr::Path(_, Leaf::Near(n)) => {
                    let mut m = (**n).clone();
                    m.max = Some(m.max.map_or(max, |old| old.min(max)));
                    *n = Arc::new(m);
                }
                Expr::And(children) => children.iter_mut().for_each(|c| set(c, max)),
                _ => {}
            }
        }
        let mut out = self.clone();
        set(&mut out.root, max);
        out
    }

    /// The `$geoWithin`/`$geoIntersects` predicates on `path` in the top-level
    /// conjunction (what a geo index on `path` can bound).
    pub fn geo_predicates(&self, path: &str) -> Vec<&crate::geo::query::GeoPredicate> {
        fn walk<'a>(e: &'a Expr, path: &str, out: &mut Vec<&'a crate::geo::query::GeoPredicate>) {
            match e {
                Expr::Path(p, Leaf::Geo(g)) if p == path => out.push(g),
                Expr::And(children) => children.iter().for_each(|c| walk(c, path, out)),
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(&self.root, path, &mut out);
        out
    }

    /// The query's `$text` clause, if it has one (at the top level or in top-level
    /// `$and`s: the only places [`Filter::parse`] accepts it).
    pub fn text(&self) -> Option<&TextQuery> {
        fn find(e: &Expr) -> Option<&TextQuery> {
            match e {
                Expr::Text(t) => Some(t),
                Expr::And(children) => children.iter().find_map(find),
                _ => None,
            }
        }
        find(&self.root)
    }

    /// Parses a query whose string comparisons (`$eq`, `$lt`, `$in`, ... on values
    /// holding strings) run under `collation` (`None`: simple, byte order). Regexes,
    /// `$expr` and `$jsonSchema` are not affected.
    pub fn parse_collated(
        query: &Document,
        vars: &[(String, Bson)],
        collation: Option<&Arc<Collation>>,
    ) -> Result<Filter, MongoError> {
        Ok(Filter::parse_with_vars(query, vars)?.collated(collation))
    }

    /// The same filter with its string comparisons under `collation`.
    pub fn collated(mut self, collation: Option<&Arc<Collation>>) -> Filter {
        if let Some(c) = collation {
            self.collated |= collate_expr(&mut self.root, c);
            self.collation = Some(Arc::clone(c));
        }
        self
    }

    /// The collation the filter runs under (`None`: simple).
    pub fn collation(&self) -> Option<&Arc<Collation>> {
        self.collation.as_ref()
    }

    /// Whether some comparison runs under a non-simple collation (an index ordered by
    /// bytes then cannot serve the query).
    pub fn is_collated(&self) -> bool {
        self.collated
    }

    /// A filter that matches every document.
    pub fn match_all() -> Filter {
        Filter {
            root: Expr::AlwaysTrue,
            collated: false,
            collation: None,
        }
    }

    /// Whether the filter matches every document (an empty query).
    pub fn is_match_all(&self) -> bool {
        match &self.root {
            Expr::AlwaysTrue => true,
            Expr::And(c) => c.is_empty(),
            _ => false,
        }
    }

    /// Whether `doc` matches.
    pub fn matches(&self, doc: &Document) -> bool {
        let mut key = None;
        eval(&self.root, doc, &mut key)
    }

    /// Whether `doc` matches and, if so, what mongod records about the match.
    pub fn matches_details(&self, doc: &Document) -> Option<MatchDetails> {
        let mut key = None;
        if eval(&self.root, doc, &mut key) {
            Some(MatchDetails {
                elem_match_key: key,
            })
        } else {
            None
        }
    }

    /// Necessary conditions for a match: `(path, values)` pairs such that a document
    /// matches only if, for every pair, the value at `path` (or, for an array, the array
    /// or one of its elements) equals one of `values` as the matcher compares them
    /// (`eddy_query::key` encodes exactly those equal values alike). Taken from the
    /// top-level conjunction: implicit equality, `$eq` and `$in` (without regexes or
    /// `null`, which also match a missing field), through `$and` and single-clause
    /// `$or`. Change streams use them to rule events out before running the filter.
    pub fn equality_sets(&self) -> Vec<(String, Vec<Bson>)> {
        let mut out = Vec::new();
        collect_equality_sets(&self.root, &mut out);
        out
    }

    /// Top-level conjunctive equality predicates `(path, value)`: implicit equality,
    /// `$eq`, single-value `$in`, through `$and` and single-clause `$or`, in query order.
    pub fn equality_fields(&self) -> Vec<(String, Bson)> {
        let mut out = Vec::new();
        collect_equalities(&self.root, &mut out);
        out
    }
}

/// The error of a `$near` that no geo index can order (mongod's planner error).
pub fn no_geo_near_index() -> MongoError {
    MongoError::new(
        ErrorCode::NoQueryExecutionPlans,
        "error processing query: planner returned error :: caused by :: unable to find index for $geoNear query",
    )
}

fn count_near(e: &Expr, n: &mut usize) {
    match e {
        Expr::And(c) | Expr::Or(c) | Expr::Nor(c) => c.iter().for_each(|c| count_near(c, n)),
        Expr::Not(inner) => count_near(inner, n),
        Expr::Path(_, Leaf::Near(_)) => *n += 1,
        Expr::Path(_, Leaf::ElemMatchObject(inner)) => count_near(inner, n),
        _ => {}
    }
}

/// See [`Filter::equality_sets`].
fn collect_equality_sets(e: &Expr, out: &mut Vec<(String, Vec<Bson>)>) {
    // Null and undefined also match a missing field: no value set describes them.
    let plain = |v: &Bson| !matches!(v, Bson::Null | Bson::Undefined);
    match e {
        Expr::And(children) => {
            for c in children {
                collect_equality_sets(c, out);
            }
        }
        Expr::Or(children) if children.len() == 1 => collect_equality_sets(&children[0], out),
        Expr::Path(p, Leaf::Cmp(CmpOp::Eq, v)) if plain(v) => {
            out.push((p.clone(), vec![v.clone()]))
        }
        Expr::Path(p, Leaf::In(set))
            if set.regexes.is_empty()
                && !set.has_null
                && set.collation.is_none()
                && set.values.iter().all(plain) =>
        {
            out.push((p.clone(), set.values.clone()))
        }
        _ => {}
    }
}

fn collect_equalities(e: &Expr, out: &mut Vec<(String, Bson)>) {
    match e {
        Expr::And(children) => {
            for c in children {
                collect_equalities(c, out);
            }
        }
        Expr::Or(children) if children.len() == 1 => collect_equalities(&children[0], out),
        Expr::Path(p, Leaf::Cmp(CmpOp::Eq, v)) => out.push((p.clone(), v.clone())),
        Expr::Path(p, Leaf::In(set)) if set.values.len() == 1 && set.regexes.is_empty() => {
            out.push((p.clone(), set.values[0].clone()))
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------

fn bad(msg: impl Into<String>) -> MongoError {
    MongoError::bad_value(msg)
}

/// `isExpressionDocument`: an object whose first field starts with '$' and which is
/// not a DBRef (`$ref` + `$id`, or any of `$ref`/`$id`/`$db` when incomplete DBRefs
/// are allowed).
fn is_expression_document(v: &Bson, allow_incomplete_dbref: bool) -> bool {
    let Bson::Document(d) = v else { return false };
    let Some((first, _)) = d.iter().next() else {
        return false;
    };
    if !first.starts_with('$') {
        return false;
    }
    let has = |k: &str| d.contains_key(k);
    let dbref = if allow_incomplete_dbref {
        has("$ref") || has("$id") || has("$db")
    } else {
        has("$ref") && has("$id")
    };
    !dbref
}

fn is_pathless_operator(name: &str) -> bool {
    matches!(
        name,
        "$and"
            | "$or"
            | "$nor"
            | "$comment"
            | "$expr"
            | "$jsonSchema"
            | "$text"
            | "$where"
            | "$alwaysTrue"
            | "$alwaysFalse"
            | "$sampleRate"
            | "$id"
            | "$ref"
            | "$db"
    )
}

fn and_of(mut children: Vec<Expr>) -> Expr {
    if children.len() == 1 {
        children.pop().unwrap_or(Expr::AlwaysTrue)
    } else {
        Expr::And(children)
    }
}

fn parse_doc(query: &Document, level: Level, vars: &[(String, Bson)]) -> Result<Expr, MongoError> {
    let mut children = Vec::new();
    for (key, value) in query {
        if let Some(name) = key.strip_prefix('$') {
            if let Some(e) = parse_pathless(key, name, value, level, vars)? {
                children.push(e);
            }
            continue;
        }
        let depth = key.split('.').count();
        if depth > 200 {
            return Err(MongoError::location(5729100, "FieldPath is too long"));
        }
        parse_path_value(key, value, level, &mut children)?;
    }
    Ok(and_of(children))
}

fn parse_pathless(
    key: &str,
    name: &str,
    value: &Bson,
    level: Level,
    vars: &[(String, Bson)],
) -> Result<Option<Expr>, MongoError> {
    Ok(Some(match name {
        "and" | "or" | "nor" => {
            let Bson::Array(items) = value else {
                return Err(bad(format!("{key} must be an array")));
            };
            if items.is_empty() {
                return Err(bad("$and/$or/$nor must be a nonempty array"));
            }
            let mut subs = Vec::with_capacity(items.len());
            for item in items {
                let Bson::Document(d) = item else {
                    return Err(bad("$or/$and/$nor entries need to be full objects"));
                };
                subs.push(parse_doc(d, level, vars)?);
            }
            match name {
                "and" => Expr::And(subs),
                "or" => Expr::Or(subs),
                _ => Expr::Nor(subs),
            }
        }
        "comment" => return Ok(None),
        "alwaysTrue" | "alwaysFalse" => {
            let n = util::parse_integer_to_long(key, value)?;
            if n != 1 {
                return Err(MongoError::failed_to_parse(format!(
                    "{key} must be an integer value of 1"
                )));
            }
            if name == "alwaysTrue" {
                Expr::AlwaysTrue
            } else {
                Expr::AlwaysFalse
            }
        }
        "id" | "ref" | "db" => Expr::Path(key.to_owned(), Leaf::Cmp(CmpOp::Eq, value.clone())),
        "where" => {
            if level == Level::Sub {
                return Err(bad("$where can only be applied to the top-level document"));
            }
            // mongod without a JavaScript engine (as `--noscripting`).
            return Err(bad("no globalScriptEngine in $where parsing"));
        }
        "expr" => {
            if level == Level::Sub {
                return Err(bad("$expr can only be applied to the top-level document"));
            }
            Expr::Aggregate(parse_expr_hook_with_vars(value, vars)?)
        }
        "text" => {
            if level == Level::Sub {
                return Err(bad("$text can only be applied to the top-level document"));
            }
            Expr::Text(Box::new(TextQuery::parse(value)?))
        }
        "jsonSchema" => {
            let Bson::Document(schema) = value else {
                return Err(MongoError::type_mismatch("$jsonSchema must be an object"));
            };
            Expr::Schema(Box::new(JsonSchema::parse(schema)?))
        }
        "sampleRate" => {
            if level == Level::Sub {
                return Err(bad(
                    "$sampleRate can only be applied to the top-level document",
                ));
            }
            if !cmp::is_number(value) {
                return Err(bad("argument to $sampleRate must be a numeric type"));
            }
            let x = util::number_as_f64(value).unwrap_or(f64::NAN);
            if !(0.0..=1.0).contains(&x) {
                return Err(bad("numeric argument to $sampleRate must be in [0, 1]"));
            }
            if x == 0.0 {
                Expr::AlwaysFalse
            } else if x == 1.0 {
                Expr::AlwaysTrue
            } else {
                return Err(MongoError::new(
                    ErrorCode::CommandNotSupported,
                    "$sampleRate between 0 and 1 is not supported",
                ));
            }
        }
        _ => {
            let hint = if name == "not" {
                ". If you are trying to negate an entire expression, use $nor."
            } else {
                ". If you have a field name that starts with a '$' symbol, consider using $getField or $setField."
            };
            return Err(bad(format!("unknown top level operator: {key}{hint}")));
        }
    }))
}

/// Parses `{path: value}` into conjuncts appended to `out`.
fn parse_path_value(
    path: &str,
    value: &Bson,
    level: Level,
    out: &mut Vec<Expr>,
) -> Result<(), MongoError> {
    if is_expression_document(value, false) {
        let Bson::Document(ops) = value else {
            unreachable!("is_expression_document checked the type")
        };
        let nodes = parse_operators(path, ops, level)?;
        out.extend(nodes.into_iter().map(|n| node_to_expr(path, n)));
        return Ok(());
    }
    if let Bson::RegularExpression(r) = value {
        out.push(Expr::Path(
            path.to_owned(),
            Leaf::Regex(MongoRegex::new(r.pattern.as_str(), r.options.as_str())?),
        ));
        return Ok(());
    }
    out.push(Expr::Path(path.to_owned(), eq_leaf(value)?));
    Ok(())
}

fn eq_leaf(value: &Bson) -> Result<Leaf, MongoError> {
    if matches!(value, Bson::Undefined) {
        return Err(bad("cannot compare to undefined"));
    }
    Ok(Leaf::Cmp(CmpOp::Eq, value.clone()))
}

fn node_to_expr(path: &str, n: Node) -> Expr {
    match n {
        Node::Leaf(l) => Expr::Path(path.to_owned(), l),
        Node::Not(children) => Expr::Not(Box::new(and_of(
            children
                .into_iter()
                .map(|c| node_to_expr(path, c))
                .collect(),
        ))),
    }
}

/// Parses an operator document `{$gt: 1, $lt: 5}` applying to `path` (`parseSub`).
fn parse_operators(path: &str, ops: &Document, level: Level) -> Result<Vec<Node>, MongoError> {
    if let Some((first, v)) = ops.iter().next() {
        if matches!(first.as_str(), "$near" | "$nearSphere" | "$geoNear")
            && matches!(v, Bson::Document(_) | Bson::Array(_))
        {
            let near = crate::geo::query::Near::parse(ops).map_err(bad)?;
            return Ok(vec![Node::Leaf(Leaf::Near(Arc::new(near)))]);
        }
    }
    let mut nodes = Vec::new();
    for (op, arg) in ops {
        nodes.extend(parse_operator(path, ops, op, arg, level)?);
    }
    Ok(nodes)
}

fn parse_operator(
    path: &str,
    context: &Document,
    op: &str,
    arg: &Bson,
    level: Level,
) -> Result<Vec<Node>, MongoError> {
    let cmp_leaf = |o: CmpOp| -> Result<Vec<Node>, MongoError> {
        if matches!(arg, Bson::RegularExpression(_)) && o != CmpOp::Eq {
            return Err(bad(format!(
                "Can't have RegEx as arg to predicate over field '{path}'."
            )));
        }
        if matches!(arg, Bson::Undefined) {
            return Err(bad("cannot compare to undefined"));
        }
        Ok(vec![Node::Leaf(Leaf::Cmp(o, arg.clone()))])
    };
    match op {
        "$not" => {
            if let Bson::RegularExpression(r) = arg {
                let re = MongoRegex::new(r.pattern.as_str(), r.options.as_str())?;
                return Ok(vec![Node::Not(vec![Node::Leaf(Leaf::Regex(re))])]);
            }
            let Bson::Document(inner) = arg else {
                return Err(bad("$not needs a regex or a document"));
            };
            if inner.is_empty() {
                return Err(bad("$not cannot be empty"));
            }
            Ok(vec![Node::Not(parse_operators(path, inner, level)?)])
        }
        "$eq" => cmp_leaf(CmpOp::Eq),
        "$lt" => cmp_leaf(CmpOp::Lt),
        "$lte" => cmp_leaf(CmpOp::Lte),
        "$gt" => cmp_leaf(CmpOp::Gt),
        "$gte" => cmp_leaf(CmpOp::Gte),
        "$ne" => {
            if matches!(arg, Bson::RegularExpression(_)) {
                return Err(bad("Can't have regex as arg to $ne."));
            }
            if matches!(arg, Bson::Undefined) {
                return Err(bad("cannot compare to undefined"));
            }
            Ok(vec![Node::Not(vec![Node::Leaf(Leaf::Cmp(
                CmpOp::Eq,
                arg.clone(),
            ))])])
        }
        "$in" | "$nin" => {
            let Bson::Array(items) = arg else {
                return Err(bad(format!("{op} needs an array")));
            };
            let set = parse_in(items)?;
            if op == "$in" {
                Ok(vec![Node::Leaf(Leaf::In(set))])
            } else {
                Ok(vec![Node::Not(vec![Node::Leaf(Leaf::In(set))])])
            }
        }
        "$size" => {
            let n = util::parse_integer_to_long(op, arg)
                .and_then(|n| {
                    if n < 0 {
                        Err(MongoError::failed_to_parse(format!(
                            "Expected a positive number in: {}",
                            util::elem_to_string(op, arg)
                        )))
                    } else if n > i64::from(i32::MAX) {
                        Err(MongoError::failed_to_parse(format!(
                            "Cannot represent as a 32-bit integer: {}",
                            util::elem_to_string(op, arg)
                        )))
                    } else {
                        Ok(n)
                    }
                })
                .map_err(|e| bad(format!("Failed to parse $size. {}", e.message)))?;
            Ok(vec![Node::Leaf(Leaf::Size(n))])
        }
        "$exists" => {
            if util::true_value(arg) {
                Ok(vec![Node::Leaf(Leaf::Exists)])
            } else {
                Ok(vec![Node::Not(vec![Node::Leaf(Leaf::Exists)])])
            }
        }
        "$type" => {
            let set = parse_type_set(arg)?;
            if set.codes.is_empty() && !set.all_numbers {
                return Err(MongoError::failed_to_parse(format!(
                    "{path} must match at least one type"
                )));
            }
            Ok(vec![Node::Leaf(Leaf::Type(set))])
        }
        "$mod" => Ok(vec![Node::Leaf(parse_mod(arg)?)]),
        "$options" => {
            if context.contains_key("$regex") {
                Ok(Vec::new())
            } else {
                Err(bad("$options needs a $regex"))
            }
        }
        "$regex" => Ok(vec![Node::Leaf(Leaf::Regex(parse_regex_document(
            context,
        )?))]),
        "$elemMatch" => Ok(vec![Node::Leaf(parse_elem_match(arg)?)]),
        "$all" => parse_all(path, arg),
        "$bitsAllSet" | "$bitsAnySet" | "$bitsAllClear" | "$bitsAnyClear" => {
            let kind = match op {
                "$bitsAllSet" => BitOp::AllSet,
                "$bitsAnySet" => BitOp::AnySet,
                "$bitsAllClear" => BitOp::AllClear,
                _ => BitOp::AnyClear,
            };
            Ok(vec![Node::Leaf(Leaf::Bits(
                kind,
                parse_bit_mask(path, arg)?,
            ))])
        }
        "$geoWithin" | "$within" | "$geoIntersects" => {
            let g = crate::geo::query::GeoPredicate::parse(op, arg).map_err(bad)?;
            Ok(vec![Node::Leaf(Leaf::Geo(Arc::new(g)))])
        }
        "$near" | "$nearSphere" | "$geoNear" => Err(bad(format!(
            "near must be first in: {}",
            util::bson_to_string(&Bson::Document(context.clone()))
        ))),
        "$where" => Err(bad("$where cannot be applied to a field")),
        _ => Err(bad(format!("unknown operator: {op}"))),
    }
}

/// `$all`: one node per value (or per `$elemMatch`).
fn parse_all(path: &str, arg: &Bson) -> Result<Vec<Node>, MongoError> {
    let _ = path;
    let Bson::Array(items) = arg else {
        return Err(bad("$all needs an array"));
    };
    let first_is_elem_match = matches!(items.first(), Some(Bson::Document(d))
        if d.keys().next().map(String::as_str) == Some("$elemMatch"));
    let mut leaves = Vec::new();
    if first_is_elem_match {
        for item in items {
            let Bson::Document(d) = item else {
                return Err(bad("$all/$elemMatch has to be consistent"));
            };
            match d.iter().next() {
                Some((k, v)) if k == "$elemMatch" => leaves.push(parse_elem_match(v)?),
                _ => return Err(bad("$all/$elemMatch has to be consistent")),
            }
        }
    } else {
        for item in items {
            match item {
                Bson::RegularExpression(r) => leaves.push(Leaf::Regex(MongoRegex::new(
                    r.pattern.as_str(),
                    r.options.as_str(),
                )?)),
                Bson::Document(d)
                    if d.keys()
                        .next()
                        .is_some_and(|k| is_path_accepting_operator(k)) =>
                {
                    return Err(bad("no $ expressions in $all"));
                }
                other => leaves.push(eq_leaf(other)?),
            }
        }
    }
    if leaves.is_empty() {
        // `$all: []` matches nothing: an empty $in is the same predicate.
        return Ok(vec![Node::Leaf(Leaf::In(InSet {
            values: Vec::new(),
            regexes: Vec::new(),
            has_null: false,
            collation: None,
        }))]);
    }
    // Each value is its own predicate on the path (mongod builds an AND of them).
    Ok(leaves.into_iter().map(Node::Leaf).collect())
}

fn is_path_accepting_operator(k: &str) -> bool {
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
            | "$options"
            | "$regex"
            | "$size"
            | "$type"
            | "$within"
    )
}

fn parse_in(items: &[Bson]) -> Result<InSet, MongoError> {
    let mut values = Vec::new();
    let mut regexes = Vec::new();
    let mut has_null = false;
    for item in items {
        if is_expression_document(item, false) {
            return Err(bad("cannot nest $ under $in"));
        }
        match item {
            Bson::RegularExpression(r) => {
                regexes.push(MongoRegex::new(r.pattern.as_str(), r.options.as_str())?)
            }
            Bson::Undefined => return Err(bad("InMatchExpression equality cannot be undefined")),
            other => {
                if matches!(other, Bson::Null) {
                    has_null = true;
                }
                values.push(other.clone());
            }
        }
    }
    values.sort_by(compare);
    values.dedup_by(|a, b| compare(a, b) == Ordering::Equal);
    Ok(InSet {
        values,
        regexes,
        has_null,
        collation: None,
    })
}

fn parse_type_set(arg: &Bson) -> Result<TypeSet, MongoError> {
    let mut set = TypeSet::default();
    let mut add = |v: &Bson| -> Result<(), MongoError> {
        match v {
            Bson::String(alias) => {
                if alias == "number" {
                    set.all_numbers = true;
                    return Ok(());
                }
                match util::type_code_of_alias(alias) {
                    Some(c) => set.codes.push(c),
                    None => return Err(bad(format!("Unknown type name alias: {alias}"))),
                }
                Ok(())
            }
            v if cmp::is_number(v) => {
                let code = util::parse_integer_to_int("", v).map_err(|_| {
                    bad(format!(
                        "Invalid numerical type code: {}",
                        util::bson_to_string(v)
                    ))
                })?;
                if util::type_alias(code).is_none() {
                    return Err(bad(format!("Invalid numerical type code: {code}")));
                }
                set.codes.push(code);
                Ok(())
            }
            _ => Err(MongoError::type_mismatch(
                "type must be represented as a number or a string",
            )),
        }
    };
    match arg {
        Bson::Array(items) => {
            for i in items {
                add(i)?;
            }
        }
        other => add(other)?,
    }
    Ok(set)
}

/// `tryCoerce` of a number to i64 (truncating), as `$mod` uses it.
fn coerce_to_long(v: &Bson) -> Result<i64, MongoError> {
    match v {
        Bson::Int32(i) => Ok(i64::from(*i)),
        Bson::Int64(i) => Ok(*i),
        _ => {
            let d = util::number_as_f64(v).unwrap_or(f64::NAN);
            if !d.is_finite() {
                return Err(bad("Unable to coerce NaN/Inf to integral type"));
            }
            let t = d.trunc();
            if !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&t) {
                return Err(bad("Out of bounds coercing to integral value"));
            }
            Ok(t as i64)
        }
    }
}

fn parse_mod(arg: &Bson) -> Result<Leaf, MongoError> {
    let Bson::Array(items) = arg else {
        return Err(bad("malformed mod, needs to be an array"));
    };
    let Some(divisor) = items.first() else {
        return Err(bad("malformed mod, not enough elements"));
    };
    if !cmp::is_number(divisor) {
        return Err(bad("malformed mod, divisor not a number"));
    }
    let Some(remainder) = items.get(1) else {
        return Err(bad("malformed mod, not enough elements"));
    };
    if !cmp::is_number(remainder) {
        return Err(bad("malformed mod, remainder not a number"));
    }
    if items.len() > 2 {
        return Err(bad("malformed mod, too many elements"));
    }
    let d = coerce_to_long(divisor).map_err(|e| {
        bad(format!(
            "malformed mod, divisor value is invalid :: caused by :: {}",
            e.message
        ))
    })?;
    let r = coerce_to_long(remainder).map_err(|e| {
        bad(format!(
            "malformed mod, remainder value is invalid :: caused by :: {}",
            e.message
        ))
    })?;
    if d == 0 {
        return Err(bad("divisor cannot be 0"));
    }
    Ok(Leaf::Mod(d, r))
}

fn parse_regex_document(context: &Document) -> Result<MongoRegex, MongoError> {
    let mut pattern: Option<String> = None;
    let mut options = String::new();
    for (k, v) in context {
        match k.as_str() {
            "$regex" => match v {
                Bson::String(s) => pattern = Some(s.clone()),
                Bson::RegularExpression(r) => {
                    pattern = Some(r.pattern.to_string());
                    if !r.options.is_empty() {
                        if !options.is_empty() {
                            return Err(MongoError::location(
                                51074,
                                "options set in both $regex and $options",
                            ));
                        }
                        options = r.options.to_string();
                    }
                }
                _ => return Err(bad("$regex has to be a string")),
            },
            "$options" => {
                let Bson::String(s) = v else {
                    return Err(bad("$options has to be a string"));
                };
                if !options.is_empty() {
                    return Err(MongoError::location(
                        51075,
                        "options set in both $regex and $options",
                    ));
                }
                options = s.clone();
            }
            _ => {}
        }
    }
    MongoRegex::new(pattern.as_deref().unwrap_or(""), &options)
}

fn parse_elem_match(arg: &Bson) -> Result<Leaf, MongoError> {
    let Bson::Document(obj) = arg else {
        return Err(bad("$elemMatch needs an Object"));
    };
    let value_form = is_expression_document(arg, true)
        && obj.keys().next().is_some_and(|k| !is_pathless_operator(k));
    if value_form {
        return Ok(Leaf::ElemMatchValue(parse_operators("", obj, Level::Sub)?));
    }
    if obj.contains_key("$where") {
        return Err(bad("$where can only be applied to the top-level document"));
    }
    Ok(Leaf::ElemMatchObject(Box::new(parse_doc(
        obj,
        Level::Sub,
        &[],
    )?)))
}

fn parse_bit_mask(path: &str, arg: &Bson) -> Result<BitMask, MongoError> {
    let _ = path;
    let mut positions = Vec::new();
    match arg {
        Bson::Array(items) => {
            for i in items {
                let p = util::parse_non_negative_long("", i)
                    .and_then(|n| {
                        i32::try_from(n).map_err(|_| {
                            MongoError::failed_to_parse(format!(
                                "Cannot represent as a 32-bit integer: {}",
                                util::elem_to_string("", i)
                            ))
                        })
                    })
                    .map_err(|e| bad(format!("Failed to parse bit position. {}", e.message)))?;
                positions.push(p as u32);
            }
        }
        Bson::Binary(b) => {
            for (byte_i, byte) in b.bytes.iter().enumerate() {
                for bit in 0..8 {
                    if byte & (1 << bit) != 0 {
                        positions.push((byte_i * 8 + bit) as u32);
                    }
                }
            }
        }
        v if cmp::is_number(v) => {
            let mask = util::parse_non_negative_long("", v)?;
            for bit in 0..63 {
                if mask & (1 << bit) != 0 {
                    positions.push(bit);
                }
            }
        }
        other => {
            let op = "";
            return Err(bad(format!(
                "{op}{path} takes an Array, a number, or a BinData but received: {}",
                util::bson_to_string(other)
            )));
        }
    }
    positions.sort_unstable();
    positions.dedup();
    Ok(BitMask { positions })
}

// ---------------------------------------------------------------------------------
// Collation
// ---------------------------------------------------------------------------------

/// Whether a value is or holds a string (the only values a collation compares).
fn holds_string(v: &Bson) -> bool {
    match v {
        Bson::String(_) | Bson::Symbol(_) => true,
        Bson::Array(items) => items.iter().any(holds_string),
        Bson::Document(d) => d.values().any(holds_string),
        _ => false,
    }
}

/// mongod's rules for where `$text` may be: once per query ("Too many text
/// expressions"), and (in Eddy) only in the top-level conjunction: mongod also plans a
/// `$text` under an `$or` whose every branch is indexed, which Eddy refuses.
fn check_text(root: &Expr) -> Result<(), MongoError> {
    fn count(e: &Expr, top: bool, n: &mut usize, misplaced: &mut bool) {
        match e {
            Expr::Text(_) => {
                *n += 1;
                *misplaced |= !top;
            }
            Expr::And(children) => children.iter().for_each(|c| count(c, top, n, misplaced)),
            Expr::Or(children) | Expr::Nor(children) => {
                children.iter().for_each(|c| count(c, false, n, misplaced))
            }
            Expr::Not(inner) => count(inner, false, n, misplaced),
            _ => {}
        }
    }
    let (mut n, mut misplaced) = (0, false);
    count(root, true, &mut n, &mut misplaced);
    if n > 1 {
        return Err(bad("Too many text expressions"));
    }
    if misplaced {
        return Err(bad(
            "Eddy supports $text only in a query's top-level conjunction (not under $or, $nor or $not)",
        ));
    }
    Ok(())
}

/// Puts the comparisons of `e` whose values hold strings under `c`; true if any.
fn collate_expr(e: &mut Expr, c: &Arc<Collation>) -> bool {
    match e {
        Expr::And(children) | Expr::Or(children) | Expr::Nor(children) => {
            let mut any = false;
            for child in children {
                any |= collate_expr(child, c);
            }
            any
        }
        Expr::Not(inner) => collate_expr(inner, c),
        Expr::Path(_, leaf) => collate_leaf(leaf, c),
        Expr::Aggregate(pred) => {
            // `$expr` evaluates under the query's collation (no index bounds come of it).
            let env = pred.env.get_or_insert_with(Default::default);
            env.collation = Some(Arc::clone(c));
            false
        }
        Expr::AlwaysTrue | Expr::AlwaysFalse | Expr::Schema(_) | Expr::Text(_) => false,
    }
}

fn collate_leaf(leaf: &mut Leaf, c: &Arc<Collation>) -> bool {
    match leaf {
        Leaf::Cmp(op, v) if holds_string(v) => {
            *leaf = Leaf::Collated(*op, v.clone(), Arc::clone(c));
            true
        }
        Leaf::In(set) if set.values.iter().any(holds_string) => {
            set.values
                .sort_by(|a, b| cmp::compare_collated(a, b, Some(c)));
            set.values
                .dedup_by(|a, b| cmp::values_equal_collated(a, b, Some(c)));
            set.collation = Some(Arc::clone(c));
            true
        }
        Leaf::ElemMatchObject(inner) => collate_expr(inner, c),
        Leaf::ElemMatchValue(nodes) => collate_nodes(nodes, c),
        _ => false,
    }
}

fn collate_nodes(nodes: &mut [Node], c: &Arc<Collation>) -> bool {
    let mut any = false;
    for n in nodes {
        any |= match n {
            Node::Leaf(l) => collate_leaf(l, c),
            Node::Not(children) => collate_nodes(children, c),
        };
    }
    any
}

// ---------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------

pub(crate) fn eval(e: &Expr, doc: &Document, key: &mut Option<usize>) -> bool {
    match e {
        Expr::And(children) => {
            for c in children {
                if !eval(c, doc, key) {
                    return false;
                }
            }
            true
        }
        Expr::Or(children) => children.iter().any(|c| eval(c, doc, key)),
        Expr::Nor(children) => {
            let mut ignored = None;
            !children.iter().any(|c| eval(c, doc, &mut ignored))
        }
        Expr::Not(inner) => {
            let mut ignored = None;
            !eval(inner, doc, &mut ignored)
        }
        Expr::Path(p, leaf) => eval_path(doc, p, leaf, key),
        Expr::AlwaysTrue => true,
        Expr::AlwaysFalse => false,
        Expr::Aggregate(pred) => eval_expr_hook(pred, doc),
        Expr::Schema(s) => s.matches(doc),
        Expr::Text(_) => true,
    }
}

fn eval_path(doc: &Document, path: &str, leaf: &Leaf, key: &mut Option<usize>) -> bool {
    // Fast path: a top-level field that is not an array has exactly one candidate.
    if !path.contains('.') {
        match doc.get(path) {
            Some(Bson::Array(_)) => {}
            other => {
                let mut k = None;
                let m = leaf.matches_single(other, &mut k);
                if m && k.is_some() {
                    *key = k;
                }
                return m;
            }
        }
    }
    let traverse = leaf.traverses_leaf_arrays();
    for Candidate {
        value, array_index, ..
    } in path::lookup_all(doc, path, traverse)
    {
        let mut k = None;
        if leaf.matches_single(value, &mut k) {
            if array_index.is_some() {
                *key = array_index;
            } else if k.is_some() {
                *key = k;
            }
            return true;
        }
    }
    false
}

impl Leaf {
    fn traverses_leaf_arrays(&self) -> bool {
        !matches!(
            self,
            Leaf::Size(_) | Leaf::ElemMatchObject(_) | Leaf::ElemMatchValue(_)
        )
    }

    /// `matchesSingleElement`: `v` is `None` for a missing path (EOO).
    pub(crate) fn matches_single(&self, v: Option<&Bson>, key: &mut Option<usize>) -> bool {
        match self {
            Leaf::Cmp(op, rhs) => cmp_matches(*op, v, rhs),
            Leaf::Collated(op, rhs, c) => cmp_matches_collated(*op, v, rhs, Some(c)),
            Leaf::In(set) => {
                if set.has_null && matches!(v, None | Some(Bson::Undefined)) {
                    return true;
                }
                let Some(v) = v else { return false };
                let c = set.collation.as_deref();
                if set
                    .values
                    .binary_search_by(|x| cmp::compare_collated(x, v, c))
                    .is_ok()
                {
                    return true;
                }
                set.regexes.iter().any(|r| regex_matches(r, v))
            }
            Leaf::Regex(r) => v.is_some_and(|v| regex_matches(r, v)),
            Leaf::Geo(g) => v.is_some_and(|v| g.matches(v)),
            Leaf::Near(n) => v.is_some_and(|v| n.matches(v)),
            Leaf::Exists => v.is_some(),
            Leaf::Type(set) => v.is_some_and(|v| set.matches(v)),
            Leaf::Mod(d, r) => {
                let Some(v) = v.filter(|v| cmp::is_number(v)) else {
                    return false;
                };
                match coerce_to_long(v) {
                    Ok(n) => {
                        let m = if *d == -1 { 0 } else { n % d };
                        m == *r
                    }
                    Err(_) => false,
                }
            }
            Leaf::Bits(op, mask) => v.is_some_and(|v| bits_match(*op, mask, v)),
            Leaf::Size(n) => matches!(v, Some(Bson::Array(a)) if a.len() as i64 == *n),
            Leaf::ElemMatchObject(sub) => {
                let Some(Bson::Array(arr)) = v else {
                    return false;
                };
                for (i, el) in arr.iter().enumerate() {
                    let matched = match el {
                        Bson::Document(d) => eval(sub, d, &mut None),
                        Bson::Array(inner) => eval(sub, &array_as_document(inner), &mut None),
                        _ => false,
                    };
                    if matched {
                        *key = Some(i);
                        return true;
                    }
                }
                false
            }
            Leaf::ElemMatchValue(nodes) => {
                let Some(Bson::Array(arr)) = v else {
                    return false;
                };
                for (i, el) in arr.iter().enumerate() {
                    if nodes.iter().all(|n| node_matches(n, el)) {
                        *key = Some(i);
                        return true;
                    }
                }
                false
            }
        }
    }
}

fn node_matches(n: &Node, el: &Bson) -> bool {
    match n {
        Node::Leaf(l) => l.matches_single(Some(el), &mut None),
        Node::Not(children) => !children.iter().all(|c| node_matches(c, el)),
    }
}

/// An array viewed as a document with fields "0", "1", ... (how `$elemMatch` object
/// form sees nested arrays).
pub(crate) fn array_as_document(arr: &[Bson]) -> Document {
    let mut d = Document::new();
    for (i, v) in arr.iter().enumerate() {
        d.insert(i.to_string(), v.clone());
    }
    d
}

fn regex_matches(r: &MongoRegex, v: &Bson) -> bool {
    match v {
        Bson::String(s) | Bson::Symbol(s) => r.is_match(s),
        Bson::RegularExpression(x) => {
            x.pattern.as_str() == r.pattern && x.options.as_str() == r.options
        }
        _ => false,
    }
}

/// `ComparisonMatchExpression::matchesSingleElement`.
pub(crate) fn cmp_matches(op: CmpOp, v: Option<&Bson>, rhs: &Bson) -> bool {
    cmp_matches_collated(op, v, rhs, None)
}

/// [`cmp_matches`] with strings compared under `collation`.
fn cmp_matches_collated(
    op: CmpOp,
    v: Option<&Bson>,
    rhs: &Bson,
    collation: Option<&Collation>,
) -> bool {
    // EOO and undefined share canonical type 0 in mongod; null is 5.
    let lb = v.map_or(2, type_bracket);
    let rb = type_bracket(rhs);
    if lb != rb {
        if (lb == 2 && rb == 5) || (lb == 5 && rb == 2) {
            return matches!(op, CmpOp::Eq | CmpOp::Lte | CmpOp::Gte);
        }
        return match rhs {
            Bson::MaxKey => matches!(op, CmpOp::Lt | CmpOp::Lte),
            Bson::MinKey => matches!(op, CmpOp::Gt | CmpOp::Gte),
            _ => false,
        };
    }
    let Some(v) = v else {
        // Missing against undefined cannot be reached (undefined is rejected).
        return matches!(op, CmpOp::Eq | CmpOp::Lte | CmpOp::Gte);
    };
    let is_nan = |x: &Bson| match x {
        Bson::Double(d) => d.is_nan(),
        Bson::Decimal128(_) => matches!(cmp::Num::from_bson(x), Some(cmp::Num::NaN)),
        _ => false,
    };
    if lb == 10 && (is_nan(v) || is_nan(rhs)) {
        let both = is_nan(v) && is_nan(rhs);
        return match op {
            CmpOp::Lt | CmpOp::Gt => false,
            _ => both,
        };
    }
    let o = cmp::compare_collated(v, rhs, collation);
    match op {
        CmpOp::Eq => o == Ordering::Equal,
        CmpOp::Lt => o == Ordering::Less,
        CmpOp::Lte => o != Ordering::Greater,
        CmpOp::Gt => o == Ordering::Greater,
        CmpOp::Gte => o != Ordering::Less,
    }
}

fn bits_match(op: BitOp, mask: &BitMask, v: &Bson) -> bool {
    let bit_at: Box<dyn Fn(u32) -> bool + '_> = match v {
        Bson::Binary(b) => Box::new(move |p: u32| {
            let byte = (p / 8) as usize;
            b.bytes.get(byte).is_some_and(|x| x & (1 << (p % 8)) != 0)
        }),
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => {
            let n = match v {
                Bson::Int32(i) => i64::from(*i),
                Bson::Int64(i) => *i,
                _ => {
                    let d = util::number_as_f64(v).unwrap_or(f64::NAN);
                    if d.is_nan()
                        || !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&d)
                        || d.fract() != 0.0
                    {
                        return false;
                    }
                    d as i64
                }
            };
            // Numbers are sign-extended beyond bit 63.
            Box::new(move |p: u32| if p < 64 { (n >> p) & 1 == 1 } else { n < 0 })
        }
        _ => return false,
    };
    let ps = &mask.positions;
    match op {
        BitOp::AllSet => ps.iter().all(|p| bit_at(*p)),
        BitOp::AnySet => ps.iter().any(|p| bit_at(*p)),
        BitOp::AllClear => ps.iter().all(|p| !bit_at(*p)),
        BitOp::AnyClear => ps.iter().any(|p| !bit_at(*p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{bson, doc, Binary};

    fn m(filter: Document, d: Document) -> bool {
        Filter::parse(&filter)
            .unwrap_or_else(|e| panic!("{filter:?}: {e}"))
            .matches(&d)
    }

    fn err(filter: Document) -> (i32, String) {
        let e = Filter::parse(&filter).map(|_| ()).expect_err("should fail");
        (e.code, e.message)
    }

    #[test]
    fn equality_and_arrays() {
        let cases: Vec<(Document, Document, bool)> = vec![
            (doc! {"a": 1}, doc! {"a": 1.0}, true),
            (doc! {"a": 1}, doc! {"a": [3, 1]}, true),
            (doc! {"a": [1, 3]}, doc! {"a": [1, 3]}, true),
            (doc! {"a": [1, 3]}, doc! {"a": [3, 1]}, false),
            (doc! {"a": [1, 3]}, doc! {"a": [[1, 3], 5]}, true),
            (doc! {"a": 1}, doc! {"a": [[1]]}, false),
            (doc! {"a.b": 1}, doc! {"a": [{"b": 2}, {"b": 1}]}, true),
            (doc! {"a.b": 1}, doc! {"a": [[{"b": 1}]]}, false),
            (doc! {"a.1": 5}, doc! {"a": [4, 5]}, true),
            (doc! {"a.1.b": 5}, doc! {"a": [4, {"b": 5}]}, true),
            (doc! {"a": {"b": 1}}, doc! {"a": {"b": 1}}, true),
            (doc! {"a": {"b": 1}}, doc! {"a": {"b": 1, "c": 2}}, false),
            (
                doc! {"a": {"b": 1, "c": 2}},
                doc! {"a": {"c": 2, "b": 1}},
                false,
            ),
            (
                doc! {"size.uom": "in"},
                doc! {"size": {"h": 14, "uom": "in"}},
                true,
            ),
            (doc! {}, doc! {"x": 1}, true),
            (
                doc! {"a": "x"},
                doc! {"a": bson::Bson::Symbol("x".into())},
                true,
            ),
        ];
        for (f, d, want) in cases {
            assert_eq!(m(f.clone(), d.clone()), want, "{f:?} on {d:?}");
        }
    }

    #[test]
    fn null_and_missing() {
        let cases: Vec<(Document, Document, bool)> = vec![
            (doc! {"a": null}, doc! {}, true),
            (doc! {"a": null}, doc! {"a": null}, true),
            (doc! {"a": null}, doc! {"a": bson::Bson::Undefined}, true),
            (doc! {"a": null}, doc! {"a": 0}, false),
            (doc! {"a": null}, doc! {"a": []}, false),
            (doc! {"a": null}, doc! {"a": [1, null]}, true),
            (doc! {"a.b": null}, doc! {"a": [{"b": 1}, {"c": 1}]}, true),
            (doc! {"a.b": null}, doc! {"a": [{"b": 1}]}, false),
            (doc! {"a.b": null}, doc! {"a": 5}, true),
            (doc! {"a.b": null}, doc! {"a": [1, 2]}, false),
            (doc! {"a": {"$ne": null}}, doc! {}, false),
            (doc! {"a": {"$ne": null}}, doc! {"a": 1}, true),
            (doc! {"a": {"$gte": null}}, doc! {}, true),
            (doc! {"a": {"$gt": null}}, doc! {"a": null}, false),
            (doc! {"a": {"$lte": null}}, doc! {"a": null}, true),
            (doc! {"a": {"$in": [null]}}, doc! {}, true),
            (doc! {"a": {"$nin": [null]}}, doc! {}, false),
            (doc! {"a": {"$exists": true}}, doc! {"a": null}, true),
            (doc! {"a": {"$exists": false}}, doc! {"a": null}, false),
            (doc! {"a": {"$exists": false}}, doc! {"b": 1}, true),
            (doc! {"a.b": {"$exists": false}}, doc! {"a": [1]}, true),
            (doc! {"a": {"$exists": 1}}, doc! {"a": []}, true),
        ];
        for (f, d, want) in cases {
            assert_eq!(m(f.clone(), d.clone()), want, "{f:?} on {d:?}");
        }
    }

    #[test]
    fn comparisons() {
        let cases: Vec<(Document, Document, bool)> = vec![
            (doc! {"a": {"$gt": 5}}, doc! {"a": 6}, true),
            (doc! {"a": {"$gt": 5}}, doc! {"a": "6"}, false),
            (doc! {"a": {"$gt": 5}}, doc! {"a": [1, 7]}, true),
            (doc! {"a": {"$gt": 5, "$lt": 7}}, doc! {"a": [4, 8]}, true),
            (
                doc! {"a": {"$elemMatch": {"$gt": 5, "$lt": 7}}},
                doc! {"a": [4, 8]},
                false,
            ),
            (
                doc! {"a": {"$elemMatch": {"$gt": 5, "$lt": 7}}},
                doc! {"a": [4, 6]},
                true,
            ),
            (doc! {"a": {"$lt": "b"}}, doc! {"a": "a"}, true),
            (
                doc! {"a": {"$lt": bson::Bson::MaxKey}},
                doc! {"a": "z"},
                true,
            ),
            (doc! {"a": {"$gt": bson::Bson::MinKey}}, doc! {}, true),
            (doc! {"a": {"$eq": f64::NAN}}, doc! {"a": f64::NAN}, true),
            (doc! {"a": {"$lt": 1}}, doc! {"a": f64::NAN}, false),
            (doc! {"a": {"$gte": f64::NAN}}, doc! {"a": f64::NAN}, true),
            (doc! {"a": {"$gt": [1]}}, doc! {"a": [[2]]}, true),
            (doc! {"a": {"$gt": [1]}}, doc! {"a": [2]}, true),
            (doc! {"a": {"$gt": [5]}}, doc! {"a": [2]}, false),
            (
                doc! {"a": {"$lte": 9007199254740992.0}},
                doc! {"a": 9007199254740993_i64},
                false,
            ),
            (doc! {"a": {"$ne": 1}}, doc! {"a": [1, 2]}, false),
            (doc! {"a": {"$ne": 1}}, doc! {"a": [2]}, true),
            (doc! {"a": {"$eq": {"b": 1}}}, doc! {"a": {"b": 1}}, true),
        ];
        for (f, d, want) in cases {
            assert_eq!(m(f.clone(), d.clone()), want, "{f:?} on {d:?}");
        }
    }

    #[test]
    fn logical_and_sets() {
        let cases: Vec<(Document, Document, bool)> = vec![
            (doc! {"$or": [{"a": 1}, {"b": 2}]}, doc! {"b": 2}, true),
            (doc! {"$and": [{"a": 1}, {"b": 2}]}, doc! {"b": 2}, false),
            (doc! {"$nor": [{"a": 1}, {"b": 2}]}, doc! {"c": 2}, true),
            (doc! {"$nor": [{"a": 1}, {"b": 2}]}, doc! {"a": 1}, false),
            (doc! {"a": {"$not": {"$gt": 5}}}, doc! {"a": 3}, true),
            (doc! {"a": {"$not": {"$gt": 5}}}, doc! {}, true),
            (doc! {"a": {"$not": {"$gt": 5}}}, doc! {"a": [3, 6]}, false),
            (
                doc! {"a": {"$not": bson::Regex { pattern: "^x".try_into().expect("c"), options: "".try_into().expect("c") }}},
                doc! {"a": "y"},
                true,
            ),
            (doc! {"a": {"$in": [1, 2]}}, doc! {"a": [5, 2]}, true),
            (doc! {"a": {"$in": [[1, 2]]}}, doc! {"a": [1, 2]}, true),
            (
                doc! {"a": {"$in": [bson::Regex { pattern: "^ab".try_into().expect("c"), options: "i".try_into().expect("c") }]}},
                doc! {"a": "ABc"},
                true,
            ),
            (doc! {"a": {"$in": []}}, doc! {"a": 1}, false),
            (doc! {"a": {"$nin": [1, 2]}}, doc! {"a": 3}, true),
            (doc! {"a": {"$nin": [1, 2]}}, doc! {"a": [3, 1]}, false),
            (doc! {"a": {"$all": [1, 2]}}, doc! {"a": [2, 3, 1]}, true),
            (doc! {"a": {"$all": [1, 2]}}, doc! {"a": [2, 3]}, false),
            (doc! {"a": {"$all": []}}, doc! {"a": []}, false),
            (doc! {"a": {"$all": [[1]]}}, doc! {"a": [[1], 2]}, true),
            (doc! {"a": {"$all": [1]}}, doc! {"a": 1}, true),
            (
                doc! {"qty": {"$all": [{"$elemMatch": {"size": "M", "num": {"$gt": 50}}}, {"$elemMatch": {"num": 100, "color": "green"}}]}},
                doc! {"qty": [{"size": "S", "num": 10, "color": "blue"}, {"size": "M", "num": 100, "color": "blue"}, {"size": "L", "num": 100, "color": "green"}]},
                true,
            ),
            (doc! {"$comment": "hi", "a": 1}, doc! {"a": 1}, true),
            (doc! {"$alwaysFalse": 1}, doc! {"a": 1}, false),
        ];
        for (f, d, want) in cases {
            assert_eq!(m(f.clone(), d.clone()), want, "{f:?} on {d:?}");
        }
    }

    #[test]
    fn elem_match_size_type_mod_regex_bits() {
        let cases: Vec<(Document, Document, bool)> = vec![
            (
                doc! {"results": {"$elemMatch": {"$gte": 80, "$lt": 85}}},
                doc! {"results": [82, 85, 88]},
                true,
            ),
            (
                doc! {"results": {"$elemMatch": {"$gte": 80, "$lt": 85}}},
                doc! {"results": [75, 88, 89]},
                false,
            ),
            (
                doc! {"results": {"$elemMatch": {"product": "xyz", "score": {"$gte": 8}}}},
                doc! {"results": [{"product": "abc", "score": 10}, {"product": "xyz", "score": 5}]},
                false,
            ),
            (
                doc! {"results": {"$elemMatch": {"product": "xyz", "score": {"$gte": 8}}}},
                doc! {"results": [{"product": "abc", "score": 10}, {"product": "xyz", "score": 9}]},
                true,
            ),
            (
                doc! {"a": {"$elemMatch": {"$elemMatch": {"$eq": 1}}}},
                doc! {"a": [[0], [1]]},
                true,
            ),
            (
                doc! {"a": {"$elemMatch": {"0": 1}}},
                doc! {"a": [[1]]},
                true,
            ),
            (
                doc! {"a": {"$elemMatch": {"$or": [{"b": 1}, {"c": 1}]}}},
                doc! {"a": [{"c": 1}]},
                true,
            ),
            (
                doc! {"a": {"$elemMatch": {"b": 1}}},
                doc! {"a": {"b": 1}},
                false,
            ),
            (doc! {"a": {"$size": 2}}, doc! {"a": [1, [2, 3]]}, true),
            (doc! {"a": {"$size": 2}}, doc! {"a": [[1, 2]]}, false),
            (
                doc! {"a.b": {"$size": 1}},
                doc! {"a": [{"b": [1]}, {"b": [1, 2]}]},
                true,
            ),
            (doc! {"a": {"$type": "string"}}, doc! {"a": ["x", 1]}, true),
            (doc! {"a": {"$type": "array"}}, doc! {"a": []}, true),
            (doc! {"a": {"$type": "number"}}, doc! {"a": 1_i64}, true),
            (doc! {"a": {"$type": [2, "double"]}}, doc! {"a": 1.5}, true),
            (doc! {"a": {"$type": 16}}, doc! {"a": 1.0}, false),
            (doc! {"a": {"$type": "null"}}, doc! {}, false),
            (doc! {"a": {"$mod": [4, 0]}}, doc! {"a": 12}, true),
            (doc! {"a": {"$mod": [4, 0]}}, doc! {"a": 12.9}, true),
            (doc! {"a": {"$mod": [4, 1]}}, doc! {"a": -7}, false),
            (doc! {"a": {"$mod": [4, -3]}}, doc! {"a": -7}, true),
            (doc! {"a": {"$mod": [4.5, 0]}}, doc! {"a": 8}, true),
            (
                doc! {"a": {"$regex": "^A", "$options": "i"}},
                doc! {"a": "abc"},
                true,
            ),
            (
                doc! {"a": {"$options": "i", "$regex": "^A"}},
                doc! {"a": "abc"},
                true,
            ),
            (doc! {"a": {"$regex": "b"}}, doc! {"a": ["x", "abc"]}, true),
            (doc! {"a": {"$regex": "b"}}, doc! {"a": 5}, false),
            (
                doc! {"a": {"$regex": "^x$", "$options": "m"}},
                doc! {"a": "y\nx\nz"},
                true,
            ),
            (
                doc! {"a": bson::Regex { pattern: "a.c".try_into().expect("c"), options: "s".try_into().expect("c") }},
                doc! {"a": "a\nc"},
                true,
            ),
            (doc! {"a": {"$bitsAllSet": [1, 5]}}, doc! {"a": 54}, true),
            (doc! {"a": {"$bitsAllSet": 35}}, doc! {"a": 54}, false),
            (doc! {"a": {"$bitsAnySet": [0, 1]}}, doc! {"a": 2}, true),
            (doc! {"a": {"$bitsAllClear": [0, 3]}}, doc! {"a": 6}, true),
            (doc! {"a": {"$bitsAnyClear": [1, 2]}}, doc! {"a": 6}, false),
            (doc! {"a": {"$bitsAllSet": [100]}}, doc! {"a": -1}, true),
            (doc! {"a": {"$bitsAllSet": [1]}}, doc! {"a": 2.5}, false),
            (
                doc! {"a": {"$bitsAllSet": [1]}},
                doc! {"a": Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![2] }},
                true,
            ),
        ];
        for (f, d, want) in cases {
            assert_eq!(m(f.clone(), d.clone()), want, "{f:?} on {d:?}");
        }
    }

    #[test]
    fn parse_errors() {
        let cases: Vec<(Document, i32, &str)> = vec![
            (doc! {"$foo": 1}, 2, "unknown top level operator: $foo. If you have a field name that starts with a '$' symbol, consider using $getField or $setField."),
            (doc! {"$not": {"a": 1}}, 2, "unknown top level operator: $not. If you are trying to negate an entire expression, use $nor."),
            (doc! {"a": {"$foo": 1}}, 2, "unknown operator: $foo"),
            (doc! {"a": {"$gt": 1, "b": 1}}, 2, "unknown operator: b"),
            (doc! {"$and": []}, 2, "$and/$or/$nor must be a nonempty array"),
            (doc! {"$or": {}}, 2, "$or must be an array"),
            (doc! {"$or": [1]}, 2, "$or/$and/$nor entries need to be full objects"),
            (doc! {"a": {"$in": 1}}, 2, "$in needs an array"),
            (doc! {"a": {"$nin": 1}}, 2, "$nin needs an array"),
            (doc! {"a": {"$in": [{"$gt": 1}]}}, 2, "cannot nest $ under $in"),
            (doc! {"a": {"$all": 1}}, 2, "$all needs an array"),
            (doc! {"a": {"$all": [{"$gt": 1}]}}, 2, "no $ expressions in $all"),
            (doc! {"a": {"$all": [{"$elemMatch": {"b": 1}}, 1]}}, 2, "$all/$elemMatch has to be consistent"),
            (doc! {"a": {"$size": "x"}}, 2, "Failed to parse $size. Expected a number in: $size: \"x\""),
            (doc! {"a": {"$size": -1}}, 2, "Failed to parse $size. Expected a positive number in: $size: -1"),
            (doc! {"a": {"$size": 1.5}}, 2, "Failed to parse $size. Expected an integer: $size: 1.5"),
            (doc! {"a": {"$elemMatch": 1}}, 2, "$elemMatch needs an Object"),
            (doc! {"a": {"$not": 1}}, 2, "$not needs a regex or a document"),
            (doc! {"a": {"$not": {}}}, 2, "$not cannot be empty"),
            (doc! {"a": {"$mod": 1}}, 2, "malformed mod, needs to be an array"),
            (doc! {"a": {"$mod": [1]}}, 2, "malformed mod, not enough elements"),
            (doc! {"a": {"$mod": [1, 2, 3]}}, 2, "malformed mod, too many elements"),
            (doc! {"a": {"$mod": ["a", 2]}}, 2, "malformed mod, divisor not a number"),
            (doc! {"a": {"$mod": [0, 2]}}, 2, "divisor cannot be 0"),
            (doc! {"a": {"$mod": [f64::NAN, 2]}}, 2, "malformed mod, divisor value is invalid :: caused by :: Unable to coerce NaN/Inf to integral type"),
            (doc! {"a": {"$type": "foo"}}, 2, "Unknown type name alias: foo"),
            (doc! {"a": {"$type": 99}}, 2, "Invalid numerical type code: 99"),
            (doc! {"a": {"$type": {}}}, 14, "type must be represented as a number or a string"),
            (doc! {"a": {"$type": []}}, 9, "a must match at least one type"),
            (doc! {"a": {"$regex": 1}}, 2, "$regex has to be a string"),
            (doc! {"a": {"$options": "i"}}, 2, "$options needs a $regex"),
            (doc! {"a": {"$regex": "(", "$options": ""}}, 51091, ""),
            (doc! {"a": {"$regex": "a", "$options": "z"}}, 51108, "invalid flag in regex options: z"),
            (doc! {"a": {"$gt": bson::Regex { pattern: "a".try_into().expect("c"), options: "".try_into().expect("c") }}}, 2, "Can't have RegEx as arg to predicate over field 'a'."),
            (doc! {"a": {"$ne": bson::Regex { pattern: "a".try_into().expect("c"), options: "".try_into().expect("c") }}}, 2, "Can't have regex as arg to $ne."),
            (doc! {"a": bson::Bson::Undefined}, 2, "cannot compare to undefined"),
            (doc! {"$where": "this.a"}, 2, "no globalScriptEngine in $where parsing"),
            (doc! {"a": {"$where": "x"}}, 2, "$where cannot be applied to a field"),
            (doc! {"$expr": {"$foo": 1}}, 168, "Unrecognized expression '$foo'"),
            (doc! {"$text": 1}, 2, "$text expects an object"),
            (doc! {"$text": {"$search": 1}}, 14, "$search requires a string value"),
            (doc! {"$and": [{"$text": {"$search": "x"}}, {"$text": {"$search": "y"}}]}, 2, "Too many text expressions"),
            (doc! {"a": {"$bitsAllSet": "x"}}, 2, "a takes an Array, a number, or a BinData but received: \"x\""),
            (doc! {"a": {"$bitsAllSet": [-1]}}, 2, "Failed to parse bit position. Expected a positive number in: : -1"),
            (doc! {"$jsonSchema": 1}, 14, "$jsonSchema must be an object"),
            (doc! {"a": {"$elemMatch": {"$where": "x"}}}, 2, "$where can only be applied to the top-level document"),
        ];
        for (f, code, msg) in cases {
            let (c, mm) = err(f.clone());
            assert_eq!(c, code, "{f:?}: {mm}");
            if !msg.is_empty() {
                assert_eq!(mm, msg, "{f:?}");
            }
        }
    }

    #[test]
    fn positional_details() {
        let f = Filter::parse(&doc! {"grades": {"$gte": 90}}).expect("ok");
        let d = doc! {"grades": [80, 85, 92, 95]};
        assert_eq!(
            f.matches_details(&d).and_then(|m| m.elem_match_key),
            Some(2)
        );
        let f = Filter::parse(&doc! {"a.b": 2}).expect("ok");
        let d = doc! {"a": [{"b": 1}, {"b": [5, 2]}]};
        assert_eq!(
            f.matches_details(&d).and_then(|m| m.elem_match_key),
            Some(1)
        );
        let f = Filter::parse(&doc! {"a": {"$elemMatch": {"x": 1}}}).expect("ok");
        let d = doc! {"a": [{"x": 0}, {"x": 1}]};
        assert_eq!(
            f.matches_details(&d).and_then(|m| m.elem_match_key),
            Some(1)
        );
        let f = Filter::parse(&doc! {"a": [1, 2]}).expect("ok");
        assert_eq!(
            f.matches_details(&doc! {"a": [1, 2]})
                .map(|m| m.elem_match_key),
            Some(None)
        );
        let f = Filter::parse(&doc! {"x": 1}).expect("ok");
        assert_eq!(f.matches_details(&doc! {"x": 2}), None);
    }

    #[test]
    fn equality_fields() {
        let f = Filter::parse(&doc! {"a": 1, "b.c": "x", "$and": [{"d": {"$eq": 2}}], "e": {"$in": [7]}, "f": {"$gt": 1}})
            .expect("ok");
        assert_eq!(
            f.equality_fields(),
            vec![
                ("a".to_owned(), bson!(1)),
                ("b.c".to_owned(), bson!("x")),
                ("d".to_owned(), bson!(2)),
                ("e".to_owned(), bson!(7)),
            ]
        );
    }

    #[test]
    fn expr_runs_under_the_filter_collation() {
        let ci = Collation::parse(&doc! {"locale": "en", "strength": 2})
            .expect("valid")
            .expect("not simple");
        let f = doc! {"$expr": {"$eq": ["$a", "ABC"]}, "b": {"$gt": 0}};
        let d = doc! {"a": "abc", "b": 1};
        assert!(!m(f.clone(), d.clone()));
        let collated = Filter::parse(&f).expect("parses").collated(Some(&ci));
        assert!(collated.matches(&d));
        // With `let` variables too.
        let vars = vec![("v".to_owned(), bson!("ABC"))];
        let f = doc! {"$or": [{"$expr": {"$in": ["$$v", ["x", "$a"]]}}]};
        let plain = Filter::parse_with_vars(&f, &vars).expect("parses");
        assert!(!plain.matches(&d));
        let collated = Filter::parse_collated(&f, &vars, Some(&ci)).expect("parses");
        assert!(collated.matches(&d));
    }
}
