//! MongoDB's aggregation expression language (mongod 7.0 `expression.cpp`).
//!
//! [`Expr::parse`] turns a BSON value into a tree the way `Expression::parseOperand`
//! does: a string starting with `$` is a field path (`"$a.b"`) or a variable
//! (`"$$var.path"`), an object whose first field starts with `$` is an operator
//! (`{$add: [..]}`, exactly one field), any other object is an expression object (each
//! field an expression), an array is an array of expressions and anything else is a
//! literal. Variables are resolved at parse time (`$let`, `$map`, `$filter`, `$reduce`
//! and the caller's `let` variables), so a typo is a parse error (17276).
//!
//! [`Expr::evaluate`] evaluates against a document: `None` is mongod's *missing* value
//! (a missing field, `$$REMOVE`), which is not the same as `null`: expression objects
//! drop missing fields, arrays turn them into `null`, comparisons order missing below
//! `null`, and most operators return `null` for either ("nullish").
//!
//! Operators live in one submodule per family: [`ops`] (comparison, boolean,
//! conditional, arithmetic, type), [`string`], [`array`] (arrays, sets, objects and the
//! accumulator-style `$sum`/`$avg`/...), [`convert`] and [`date`]. Names mongod knows but
//! Eddy does not implement fail with 115 CommandNotSupported, unknown names with 168
//! InvalidPipelineOperator, so a gap of ours is told apart from a typo.

mod array;
mod convert;
mod date;
pub(crate) use date::{add_in_utc, fixed_unit_ms, time_unit, Unit as TimeUnit};
pub(crate) mod num;
mod ops;
pub(crate) mod quantile;
mod string;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use bson::{Bson, Document};
use eddy_codes::{ErrorCode, MongoError};

use crate::collation::Collation;
use crate::util;

/// `$$KEEP` evaluates to this string (for `$redact`).
pub const KEEP: &str = "keep";
/// `$$PRUNE` evaluates to this string (for `$redact`).
pub const PRUNE: &str = "prune";
/// `$$DESCEND` evaluates to this string (for `$redact`).
pub const DESCEND: &str = "descend";

/// What an evaluation may read besides the document: the clock, the command's
/// variables and its collation.
#[derive(Debug, Clone)]
pub struct Env {
    /// `$$NOW`: fixed for a whole command, as mongod does.
    pub now: bson::DateTime,
    /// `$$CLUSTER_TIME`; `None` on a node without one (mongod then fails with 10071).
    pub cluster_time: Option<bson::Timestamp>,
    /// User variables from a command's `let` (and `$lookup`'s `let`), by name.
    pub vars: Vec<(String, Bson)>,
    /// The command's collation (`None`: simple, byte order), mongod's
    /// `ExpressionContext::getCollator`: every string comparison an expression makes
    /// (`$eq`, `$cmp`, `$in`, set operators, `$max`, `$sortArray`, ...) and every one a
    /// stage makes between values (`$group` keys, `$lookup` joins, `$bucket`
    /// boundaries, ...) runs under it, through [`Env::compare`] and [`Env::equal`].
    pub collation: Option<Arc<Collation>>,
}

impl Env {
    /// An environment with `now` = the current time and no variables.
    pub fn new() -> Env {
        Env {
            now: bson::DateTime::now(),
            cluster_time: None,
            vars: Vec::new(),
            collation: None,
        }
    }

    /// Compares two values in mongod's order, strings under the collation.
    pub fn compare(&self, a: &Bson, b: &Bson) -> std::cmp::Ordering {
        crate::cmp::compare_collated(a, b, self.collation.as_deref())
    }

    /// Whether two values are equal, strings under the collation.
    pub fn equal(&self, a: &Bson, b: &Bson) -> bool {
        self.compare(a, b) == std::cmp::Ordering::Equal
    }
}

impl Default for Env {
    fn default() -> Env {
        Env::new()
    }
}

/// Evaluates a command's `let` document (mongod's `seedVariablesWithLetParameters`):
/// each value is an expression evaluated against no document, in order, with the
/// variables before it in scope. Names must be valid user variable names (16866,
/// 16867, 16868); a value that evaluates to missing is stored as `null`.
pub fn evaluate_let(spec: &Document, env: &Env) -> Result<Vec<(String, Bson)>, MongoError> {
    let mut env = env.clone();
    let mut names: Vec<String> = env.vars.iter().map(|(k, _)| k.clone()).collect();
    let mut out = Vec::with_capacity(spec.len());
    for (k, v) in spec {
        if k == "CURRENT" {
            return Err(MongoError::location(
                16867,
                format!("'{k}' starts with an invalid character for a user variable name"),
            ));
        }
        validate_var_name(k, true)?;
        let value = Expr::parse_with_vars(v, &names)?
            .evaluate(&Document::new(), &env)?
            .unwrap_or(Bson::Null);
        env.vars.push((k.clone(), value.clone()));
        names.push(k.clone());
        out.push((k.clone(), value));
    }
    Ok(out)
}

/// A parsed aggregation expression.
#[derive(Debug, Clone)]
pub struct Expr {
    node: Node,
}

impl Expr {
    /// Parses an expression as mongod does (see the module doc).
    pub fn parse(value: &Bson) -> Result<Expr, MongoError> {
        Expr::parse_with_vars(value, &[])
    }

    /// Parses with extra variable names in scope (the pipeline's `let` / `$lookup` let
    /// variables).
    pub fn parse_with_vars(value: &Bson, vars: &[String]) -> Result<Expr, MongoError> {
        let mut p = Parser {
            scope: vars.to_vec(),
        };
        Ok(Expr {
            node: p.operand(value)?,
        })
    }

    /// Evaluates against `root` (`$$ROOT` and `$$CURRENT`). `None` is the missing
    /// value.
    pub fn evaluate(&self, root: &Document, env: &Env) -> Result<Option<Bson>, MongoError> {
        let mut cx = Ctx {
            root,
            env,
            scope: Vec::new(),
        };
        cx.eval(&self.node)
    }

    /// True when the expression reads no field path and no variable, so it evaluates to
    /// the same value for every document.
    pub fn is_constant(&self) -> bool {
        self.node.is_constant()
    }
}

/// A node of the expression tree.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Const(Bson),
    /// `$$var.path` (a field path `$a.b` is `$$CURRENT.a.b`).
    Var(Var, Vec<String>),
    Object(Vec<(String, Node)>),
    Array(Vec<Node>),
    /// An operator whose arguments are a list (`{$add: [a, b]}`).
    Op(Op, Vec<Node>),
    /// An operator with named arguments, stored in the order its parser lists them.
    Named(Named, Vec<Option<Node>>),
    /// `$let`, `$map`, `$filter`, `$reduce`: operators that bind variables.
    Let(Vec<(String, Node)>, Box<Node>),
    Map {
        input: Box<Node>,
        var: String,
        body: Box<Node>,
    },
    Filter {
        input: Box<Node>,
        var: String,
        cond: Box<Node>,
        limit: Option<Box<Node>>,
    },
    Reduce {
        input: Box<Node>,
        initial: Box<Node>,
        body: Box<Node>,
    },
    Switch(Vec<(Node, Node)>, Option<Box<Node>>),
    /// `$percentile`, `$median`: the input and the parsed `p`/`method`.
    Quantile(Box<Node>, quantile::Quantile),
}

impl Node {
    fn is_constant(&self) -> bool {
        match self {
            Node::Const(_) => true,
            Node::Var(v, _) => matches!(v, Var::Remove | Var::Keep | Var::Prune | Var::Descend),
            Node::Object(fields) => fields.iter().all(|(_, n)| n.is_constant()),
            // `$rand` has no arguments and a new value at every evaluation.
            Node::Op(Op::Rand, _) => false,
            Node::Array(items) | Node::Op(_, items) => items.iter().all(Node::is_constant),
            Node::Named(_, args) => args.iter().flatten().all(Node::is_constant),
            Node::Switch(branches, default) => {
                branches
                    .iter()
                    .all(|(c, t)| c.is_constant() && t.is_constant())
                    && default.as_ref().is_none_or(|d| d.is_constant())
            }
            // Binding operators may read their own variables; treat them as
            // non-constant rather than tracking which names are local.
            Node::Let(..) | Node::Map { .. } | Node::Filter { .. } | Node::Reduce { .. } => false,
            Node::Quantile(input, _) => input.is_constant(),
        }
    }
}

/// A variable reference.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Var {
    Root,
    Current,
    Remove,
    Now,
    ClusterTime,
    Keep,
    Prune,
    Descend,
    User(String),
}

/// List-argument operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    // comparison
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    Cmp,
    // boolean
    And,
    Or,
    Not,
    // conditional
    Cond,
    IfNull,
    // arithmetic
    Add,
    Subtract,
    Multiply,
    Divide,
    Mod,
    Abs,
    Ceil,
    Floor,
    Round,
    Trunc,
    Exp,
    Ln,
    Log,
    Log10,
    Pow,
    Sqrt,
    Trig(ops::Trig),
    Atan2,
    DegreesToRadians,
    RadiansToDegrees,
    BitAnd,
    BitOr,
    BitXor,
    BitNot,
    // type
    Type,
    IsNumber,
    To(convert::Target),
    TsSecond,
    TsIncrement,
    /// `$toHashedIndexKey`: mongod's hashed index key of a value.
    ToHashedIndexKey,
    // string
    Concat,
    SubstrBytes,
    SubstrCP,
    StrLenBytes,
    StrLenCP,
    ToLower,
    ToUpper,
    Split,
    IndexOfBytes,
    IndexOfCP,
    Strcasecmp,
    // array
    ArrayElemAt,
    First,
    Last,
    ConcatArrays,
    In,
    IndexOfArray,
    IsArray,
    Range,
    ReverseArray,
    Size,
    Slice,
    ArrayToObject,
    ObjectToArray,
    MergeObjects,
    // set
    SetEquals,
    SetIntersection,
    SetUnion,
    SetDifference,
    SetIsSubset,
    AnyElementTrue,
    AllElementsTrue,
    // accumulator-style
    Sum,
    Avg,
    Min,
    Max,
    StdDevPop,
    StdDevSamp,
    // other
    /// `$rand`: a uniformly distributed double in [0, 1).
    Rand,
}

/// Named-argument operators; the argument slots are listed by [`Named::fields`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Named {
    Trim(string::TrimKind),
    ReplaceOne,
    ReplaceAll,
    RegexMatch,
    RegexFind,
    RegexFindAll,
    SortArray,
    Zip,
    Convert,
    GetField,
    SetField,
    FirstN,
    LastN,
    MaxN,
    MinN,
    DateToString,
    DateFromString,
    DateToParts,
    DateFromParts,
    DateAdd,
    DateSubtract,
    DateDiff,
    DateTrunc,
    DatePart(date::Part),
}

/// Argument counts accepted by a list operator.
#[derive(Debug, Clone, Copy)]
enum Arity {
    Exactly(usize),
    Between(usize, usize),
    Any,
    /// `$ifNull`, `$setEquals`: at least two.
    AtLeastTwo,
    /// `$toInt` & co.: exactly one, with their own message.
    Conversion,
}

fn list_op(name: &str) -> Option<(Op, Arity)> {
    use Arity::*;
    use Op::*;
    let one = Exactly(1);
    let two = Exactly(2);
    Some(match name {
        "$eq" => (Eq, two),
        "$ne" => (Ne, two),
        "$gt" => (Gt, two),
        "$gte" => (Gte, two),
        "$lt" => (Lt, two),
        "$lte" => (Lte, two),
        "$cmp" => (Cmp, two),
        "$and" => (And, Any),
        "$or" => (Or, Any),
        "$not" => (Not, one),
        "$cond" => (Cond, Exactly(3)),
        "$ifNull" => (IfNull, AtLeastTwo),
        "$add" => (Add, Any),
        "$subtract" => (Subtract, two),
        "$multiply" => (Multiply, Any),
        "$divide" => (Divide, two),
        "$mod" => (Mod, two),
        "$abs" => (Abs, one),
        "$ceil" => (Ceil, one),
        "$floor" => (Floor, one),
        "$round" => (Round, Between(1, 2)),
        "$trunc" => (Trunc, Between(1, 2)),
        "$exp" => (Exp, one),
        "$ln" => (Ln, one),
        "$log" => (Log, two),
        "$log10" => (Log10, one),
        "$pow" => (Pow, two),
        "$sqrt" => (Sqrt, one),
        "$atan2" => (Atan2, two),
        "$degreesToRadians" => (DegreesToRadians, one),
        "$radiansToDegrees" => (RadiansToDegrees, one),
        "$bitAnd" => (BitAnd, Any),
        "$bitOr" => (BitOr, Any),
        "$bitXor" => (BitXor, Any),
        "$bitNot" => (BitNot, one),
        "$type" => (Type, one),
        "$isNumber" => (IsNumber, one),
        "$tsSecond" => (TsSecond, one),
        "$tsIncrement" => (TsIncrement, one),
        "$concat" => (Concat, Any),
        "$substr" | "$substrBytes" => (SubstrBytes, Exactly(3)),
        "$substrCP" => (SubstrCP, Exactly(3)),
        "$strLenBytes" => (StrLenBytes, one),
        "$toHashedIndexKey" => (ToHashedIndexKey, one),
        "$strLenCP" => (StrLenCP, one),
        "$toLower" => (ToLower, one),
        "$toUpper" => (ToUpper, one),
        "$split" => (Split, two),
        "$indexOfBytes" => (IndexOfBytes, Between(2, 4)),
        "$indexOfCP" => (IndexOfCP, Between(2, 4)),
        "$strcasecmp" => (Strcasecmp, two),
        "$arrayElemAt" => (ArrayElemAt, two),
        "$first" => (First, one),
        "$last" => (Last, one),
        "$concatArrays" => (ConcatArrays, Any),
        "$in" => (In, two),
        "$indexOfArray" => (IndexOfArray, Between(2, 4)),
        "$isArray" => (IsArray, one),
        "$range" => (Range, Between(2, 3)),
        "$reverseArray" => (ReverseArray, one),
        "$size" => (Size, one),
        "$slice" => (Slice, Between(2, 3)),
        "$arrayToObject" => (ArrayToObject, one),
        "$objectToArray" => (ObjectToArray, one),
        "$mergeObjects" => (MergeObjects, Any),
        "$setEquals" => (SetEquals, AtLeastTwo),
        "$setIntersection" => (SetIntersection, Any),
        "$setUnion" => (SetUnion, Any),
        "$setDifference" => (SetDifference, two),
        "$setIsSubset" => (SetIsSubset, two),
        "$anyElementTrue" => (AnyElementTrue, one),
        "$allElementsTrue" => (AllElementsTrue, one),
        "$sum" => (Sum, Any),
        "$avg" => (Avg, Any),
        "$min" => (Min, Any),
        "$max" => (Max, Any),
        "$stdDevPop" => (StdDevPop, Any),
        "$stdDevSamp" => (StdDevSamp, Any),
        _ => {
            if let Some(t) = ops::Trig::from_name(name) {
                return Some((Op::Trig(t), one));
            }
            if let Some(t) = convert::Target::from_alias(name) {
                return Some((Op::To(t), Conversion));
            }
            return None;
        }
    })
}

/// Expression operators of mongod 7.0 that Eddy does not implement (115), as opposed
/// to names mongod does not know (168).
const UNSUPPORTED: &[&str] = &[
    "$function",
    "$bsonSize",
    "$binarySize",
    "$getSearchMeta",
    "$_internalJsEmit",
    "$_internalFindAllValuesAtPath",
    "$_internalFleEq",
    "$_internalKeyStringValue",
];

/// Parse-time state: the variable names in scope, innermost last.
struct Parser {
    scope: Vec<String>,
}

impl Parser {
    /// `Expression::parseOperand`.
    fn operand(&mut self, v: &Bson) -> Result<Node, MongoError> {
        match v {
            Bson::String(s) if s.starts_with('$') => self.field_path(s),
            Bson::Document(d) => self.object(d),
            Bson::Array(items) => Ok(Node::Array(
                items
                    .iter()
                    .map(|i| self.operand(i))
                    .collect::<Result<_, _>>()?,
            )),
            other => Ok(Node::Const(other.clone())),
        }
    }

    /// `ExpressionFieldPath::parse`.
    fn field_path(&mut self, raw: &str) -> Result<Node, MongoError> {
        if raw.contains('\0') {
            return Err(MongoError::location(
                16419,
                "field path must not contain embedded null characters",
            ));
        }
        if raw.len() < 2 {
            return Err(MongoError::location(
                16872,
                "'$' by itself is not a valid FieldPath",
            ));
        }
        if let Some(rest) = raw.strip_prefix("$$") {
            let mut parts = rest.split('.');
            let name = parts.next().unwrap_or("");
            validate_var_name(name, false)?;
            let path = path_components(parts)?;
            let var = self.variable(name)?;
            Ok(Node::Var(var, path))
        } else {
            let path = path_components(raw[1..].split('.'))?;
            Ok(Node::Var(Var::Current, path))
        }
    }

    fn variable(&self, name: &str) -> Result<Var, MongoError> {
        if self.scope.iter().any(|s| s == name) {
            return Ok(Var::User(name.to_owned()));
        }
        Ok(match name {
            "ROOT" => Var::Root,
            "CURRENT" => Var::Current,
            "REMOVE" => Var::Remove,
            "NOW" => Var::Now,
            "CLUSTER_TIME" => Var::ClusterTime,
            "KEEP" => Var::Keep,
            "PRUNE" => Var::Prune,
            "DESCEND" => Var::Descend,
            "SEARCH_META" | "USER_ROLES" => {
                return Err(MongoError::new(
                    ErrorCode::CommandNotSupported,
                    format!("Eddy does not support the variable $${name}"),
                ))
            }
            _ => {
                return Err(MongoError::location(
                    17276,
                    format!("Use of undefined variable: {name}"),
                ))
            }
        })
    }

    /// `Expression::parseObject`.
    fn object(&mut self, d: &Document) -> Result<Node, MongoError> {
        let Some((first, _)) = d.iter().next() else {
            return Ok(Node::Object(Vec::new()));
        };
        if first.starts_with('$') {
            if d.len() != 1 {
                return Err(MongoError::location(
                    15983,
                    format!(
                        "An object representing an expression must have exactly one field: {}",
                        util::bson_to_string(&Bson::Document(d.clone()))
                    ),
                ));
            }
            let (name, arg) = d.iter().next().expect("one field");
            return self.operator(name, arg);
        }
        let mut fields: Vec<(String, Node)> = Vec::with_capacity(d.len());
        for (k, v) in d {
            validate_field_name(k)?;
            if fields.iter().any(|(f, _)| f == k) {
                return Err(MongoError::location(
                    16406,
                    format!(
                        "duplicate field name specified in object literal: {}",
                        util::bson_to_string(&Bson::Document(d.clone()))
                    ),
                ));
            }
            fields.push((k.clone(), self.operand(v)?));
        }
        Ok(Node::Object(fields))
    }

    /// `ExpressionNary::parseArguments`: an array is the argument list, anything else a
    /// single argument.
    fn args(&mut self, arg: &Bson) -> Result<Vec<Node>, MongoError> {
        match arg {
            Bson::Array(items) => items.iter().map(|i| self.operand(i)).collect(),
            other => Ok(vec![self.operand(other)?]),
        }
    }

    fn operator(&mut self, name: &str, arg: &Bson) -> Result<Node, MongoError> {
        match name {
            "$literal" | "$const" => return Ok(Node::Const(arg.clone())),
            "$cond" if matches!(arg, Bson::Document(_)) => return self.cond_object(arg),
            "$let" => return self.let_(arg),
            "$map" => return self.map(arg),
            "$filter" => return self.filter(arg),
            "$reduce" => return self.reduce(arg),
            "$switch" => return self.switch(arg),
            "$rand" => return rand_operator(arg),
            "$meta" => return meta_operator(arg),
            "$percentile" | "$median" => {
                let q = quantile::Quantile::parse(
                    name,
                    arg,
                    quantile::QuantileUse::Expression,
                    &self.scope,
                )?;
                let input = self.operand(&q.input)?;
                return Ok(Node::Quantile(Box::new(input), q));
            }
            _ => {}
        }
        if let Some((op, arity)) = list_op(name) {
            let args = self.args(arg)?;
            check_arity(name, arity, args.len())?;
            return Ok(Node::Op(op, args));
        }
        if let Some(node) = self.named_operator(name, arg)? {
            return Ok(node);
        }
        if UNSUPPORTED.contains(&name) {
            return Err(MongoError::new(
                ErrorCode::CommandNotSupported,
                format!("Eddy does not support the expression operator {name}"),
            ));
        }
        Err(MongoError::new(
            ErrorCode::InvalidPipelineOperator,
            format!("Unrecognized expression '{name}'"),
        ))
    }

    fn cond_object(&mut self, arg: &Bson) -> Result<Node, MongoError> {
        let Bson::Document(d) = arg else {
            unreachable!("checked by the caller")
        };
        let (mut i, mut t, mut e) = (None, None, None);
        for (k, v) in d {
            match k.as_str() {
                "if" => i = Some(self.operand(v)?),
                "then" => t = Some(self.operand(v)?),
                "else" => e = Some(self.operand(v)?),
                _ => {
                    return Err(MongoError::location(
                        17083,
                        format!("Unrecognized parameter to $cond: {k}"),
                    ))
                }
            }
        }
        let i = i.ok_or_else(|| MongoError::location(17080, "Missing 'if' parameter to $cond"))?;
        let t =
            t.ok_or_else(|| MongoError::location(17081, "Missing 'then' parameter to $cond"))?;
        let e =
            e.ok_or_else(|| MongoError::location(17082, "Missing 'else' parameter to $cond"))?;
        Ok(Node::Op(Op::Cond, vec![i, t, e]))
    }

    fn let_(&mut self, arg: &Bson) -> Result<Node, MongoError> {
        let Bson::Document(d) = arg else {
            return Err(MongoError::location(
                16874,
                "$let only supports an object as its argument",
            ));
        };
        let (mut vars, mut body) = (None, None);
        for (k, v) in d {
            match k.as_str() {
                "vars" => vars = Some(v),
                "in" => body = Some(v),
                _ => {
                    return Err(MongoError::location(
                        16875,
                        format!("Unrecognized parameter to $let: {k}"),
                    ))
                }
            }
        }
        let vars =
            vars.ok_or_else(|| MongoError::location(16876, "Missing 'vars' parameter to $let"))?;
        let body =
            body.ok_or_else(|| MongoError::location(16877, "Missing 'in' parameter to $let"))?;
        let Bson::Document(vars) = vars else {
            return Err(MongoError::location(
                10065,
                "invalid parameter: expected an object (vars)",
            ));
        };
        // The definitions see only the outer scope; the body sees them too.
        let mut defs = Vec::with_capacity(vars.len());
        for (name, v) in vars {
            defs.push((name.clone(), self.operand(v)?));
        }
        for (name, _) in &defs {
            validate_var_name(name, true)?;
        }
        let depth = self.scope.len();
        self.scope.extend(defs.iter().map(|(n, _)| n.clone()));
        let body = self.operand(body);
        self.scope.truncate(depth);
        Ok(Node::Let(defs, Box::new(body?)))
    }

    fn with_var<T>(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut Parser) -> Result<T, MongoError>,
    ) -> Result<T, MongoError> {
        self.scope.push(name.to_owned());
        let r = f(self);
        self.scope.pop();
        r
    }

    fn map(&mut self, arg: &Bson) -> Result<Node, MongoError> {
        let Bson::Document(d) = arg else {
            return Err(MongoError::location(
                16878,
                "$map only supports an object as its argument",
            ));
        };
        let (mut input, mut as_, mut body) = (None, None, None);
        for (k, v) in d {
            match k.as_str() {
                "input" => input = Some(v),
                "as" => as_ = Some(v),
                "in" => body = Some(v),
                _ => {
                    return Err(MongoError::location(
                        16879,
                        format!("Unrecognized parameter to $map: {k}"),
                    ))
                }
            }
        }
        let input = input
            .ok_or_else(|| MongoError::location(16880, "Missing 'input' parameter to $map"))?;
        let body =
            body.ok_or_else(|| MongoError::location(16882, "Missing 'in' parameter to $map"))?;
        let input = self.operand(input)?;
        let var = as_name(as_)?;
        validate_var_name(&var, true)?;
        let body = self.with_var(&var, |p| p.operand(body))?;
        Ok(Node::Map {
            input: Box::new(input),
            var,
            body: Box::new(body),
        })
    }

    fn filter(&mut self, arg: &Bson) -> Result<Node, MongoError> {
        let Bson::Document(d) = arg else {
            return Err(MongoError::location(
                28646,
                "$filter only supports an object as its argument",
            ));
        };
        let (mut input, mut as_, mut cond, mut limit) = (None, None, None, None);
        for (k, v) in d {
            match k.as_str() {
                "input" => input = Some(v),
                "as" => as_ = Some(v),
                "cond" => cond = Some(v),
                "limit" => limit = Some(v),
                _ => {
                    return Err(MongoError::location(
                        28647,
                        format!("Unrecognized parameter to $filter: {k}"),
                    ))
                }
            }
        }
        let input = input
            .ok_or_else(|| MongoError::location(28648, "Missing 'input' parameter to $filter"))?;
        let cond =
            cond.ok_or_else(|| MongoError::location(28650, "Missing 'cond' parameter to $filter"))?;
        let input = self.operand(input)?;
        let var = as_name(as_)?;
        validate_var_name(&var, true)?;
        let cond = self.with_var(&var, |p| p.operand(cond))?;
        let limit = match limit {
            Some(l) => Some(Box::new(self.operand(l)?)),
            None => None,
        };
        Ok(Node::Filter {
            input: Box::new(input),
            var,
            cond: Box::new(cond),
            limit,
        })
    }

    fn reduce(&mut self, arg: &Bson) -> Result<Node, MongoError> {
        let Bson::Document(d) = arg else {
            return Err(MongoError::location(
                40075,
                format!(
                    "$reduce requires an object as an argument, found: {}",
                    util::type_name(arg)
                ),
            ));
        };
        let (mut input, mut initial, mut body) = (None, None, None);
        for (k, v) in d {
            match k.as_str() {
                "input" => input = Some(self.operand(v)?),
                "initialValue" => initial = Some(self.operand(v)?),
                "in" => {
                    let depth = self.scope.len();
                    self.scope.push("this".into());
                    self.scope.push("value".into());
                    let b = self.operand(v);
                    self.scope.truncate(depth);
                    body = Some(b?);
                }
                _ => {
                    return Err(MongoError::location(
                        40076,
                        format!("$reduce found an unknown argument: {k}"),
                    ))
                }
            }
        }
        let input = input.ok_or_else(|| {
            MongoError::location(40077, "$reduce requires 'input' to be specified")
        })?;
        let initial = initial.ok_or_else(|| {
            MongoError::location(40078, "$reduce requires 'initialValue' to be specified")
        })?;
        let body = body
            .ok_or_else(|| MongoError::location(40079, "$reduce requires 'in' to be specified"))?;
        Ok(Node::Reduce {
            input: Box::new(input),
            initial: Box::new(initial),
            body: Box::new(body),
        })
    }

    fn switch(&mut self, arg: &Bson) -> Result<Node, MongoError> {
        let Bson::Document(d) = arg else {
            return Err(MongoError::location(
                40060,
                format!(
                    "$switch requires an object as an argument, found: {}",
                    util::type_name(arg)
                ),
            ));
        };
        let mut branches = Vec::new();
        let mut default = None;
        for (k, v) in d {
            match k.as_str() {
                "branches" => {
                    let Bson::Array(items) = v else {
                        return Err(MongoError::location(
                            40061,
                            format!(
                                "$switch expected an array for 'branches', found: {}",
                                util::type_name(v)
                            ),
                        ));
                    };
                    for b in items {
                        let Bson::Document(bd) = b else {
                            return Err(MongoError::location(
                                40062,
                                format!(
                                    "$switch expected each branch to be an object, found: {}",
                                    util::type_name(b)
                                ),
                            ));
                        };
                        let (mut case, mut then) = (None, None);
                        for (bk, bv) in bd {
                            match bk.as_str() {
                                "case" => case = Some(self.operand(bv)?),
                                "then" => then = Some(self.operand(bv)?),
                                _ => {
                                    return Err(MongoError::location(
                                        40063,
                                        format!(
                                            "$switch found an unknown argument to a branch: {bk}"
                                        ),
                                    ))
                                }
                            }
                        }
                        let case = case.ok_or_else(|| {
                            MongoError::location(
                                40064,
                                "$switch requires each branch have a 'case' expression",
                            )
                        })?;
                        let then = then.ok_or_else(|| {
                            MongoError::location(
                                40065,
                                "$switch requires each branch have a 'then' expression.",
                            )
                        })?;
                        branches.push((case, then));
                    }
                }
                "default" => default = Some(Box::new(self.operand(v)?)),
                _ => {
                    return Err(MongoError::location(
                        40067,
                        format!("$switch found an unknown argument: {k}"),
                    ))
                }
            }
        }
        if branches.is_empty() {
            return Err(MongoError::location(
                40068,
                "$switch requires at least one branch.",
            ));
        }
        Ok(Node::Switch(branches, default))
    }

    /// Parses the named arguments of `op` from `arg` into `fields` order. `not_object`
    /// and `unknown` build the operator's own errors.
    fn named_args(
        &mut self,
        arg: &Bson,
        fields: &[&str],
        not_object: impl FnOnce() -> MongoError,
        unknown: impl Fn(&str) -> MongoError,
    ) -> Result<Vec<Option<Node>>, MongoError> {
        let Bson::Document(d) = arg else {
            return Err(not_object());
        };
        let mut out: Vec<Option<Node>> = vec![None; fields.len()];
        for (k, v) in d {
            match fields.iter().position(|f| f == k) {
                Some(i) => out[i] = Some(self.operand(v)?),
                None => return Err(unknown(k)),
            }
        }
        Ok(out)
    }

    fn named_operator(&mut self, name: &str, arg: &Bson) -> Result<Option<Node>, MongoError> {
        if let Some(n) = string::parse_named(self, name, arg)? {
            return Ok(Some(n));
        }
        if let Some(n) = array::parse_named(self, name, arg)? {
            return Ok(Some(n));
        }
        if let Some(n) = convert::parse_named(self, name, arg)? {
            return Ok(Some(n));
        }
        date::parse_named(self, name, arg)
    }
}

/// `$rand` takes no arguments: `{}` or `[]` (mongod's two codes for the two wrong
/// shapes).
/// `$meta` arguments mongod 7.0 knows (Eddy has `textScore`, `geoNearDistance` and
/// `geoNearPoint`: [`crate::meta`]).
pub(crate) const KNOWN_META: &[&str] = &[
    "textScore",
    "randVal",
    "searchScore",
    "searchHighlights",
    "searchScoreDetails",
    "searchSortValues",
    "vectorSearchScore",
    "geoNearDistance",
    "geoNearPoint",
    "recordId",
    "indexKey",
    "sortKey",
];

/// `{$meta: ...}`: the document's metadata, which the read keeps in a metadata field
/// of the document ([`crate::meta`]; missing when the read made none, as in mongod);
/// mongod's argument errors, and an honest refusal for the metadata Eddy does not have.
pub(crate) fn meta_operator(arg: &Bson) -> Result<Node, MongoError> {
    let Bson::String(name) = arg else {
        return Err(MongoError::location(
            17307,
            "$meta only supports string arguments",
        ));
    };
    if !KNOWN_META.contains(&name.as_str()) {
        return Err(MongoError::location(
            17308,
            format!("Unsupported argument to $meta: {name}"),
        ));
    }
    if let Some(field) = crate::meta::field(name) {
        return Ok(Node::Var(Var::Root, vec![field.to_owned()]));
    }
    let why = match name.as_str() {
        "searchScore" | "searchHighlights" | "searchScoreDetails" | "searchSortValues"
        | "vectorSearchScore" => "Eddy has no Atlas Search",
        _ => "Eddy does not expose this metadata",
    };
    Err(MongoError::new(
        ErrorCode::CommandNotSupported,
        format!("$meta \"{name}\" is not supported: {why}"),
    ))
}

fn rand_operator(arg: &Bson) -> Result<Node, MongoError> {
    match arg {
        Bson::Document(d) if d.is_empty() => Ok(Node::Op(Op::Rand, Vec::new())),
        Bson::Array(a) if a.is_empty() => Ok(Node::Op(Op::Rand, Vec::new())),
        Bson::Document(_) | Bson::Array(_) => Err(MongoError::location(
            3040501,
            "$rand does not currently accept arguments",
        )),
        _ => Err(MongoError::location(
            10065,
            "invalid parameter: expected an object ($rand)",
        )),
    }
}

fn as_name(as_: Option<&Bson>) -> Result<String, MongoError> {
    match as_ {
        None => Ok("this".to_owned()),
        Some(Bson::String(s)) => Ok(s.clone()),
        Some(other) => Err(MongoError::location(
            16866,
            format!(
                "empty variable names are not allowed (found {})",
                util::type_name(other)
            ),
        )),
    }
}

fn check_arity(name: &str, arity: Arity, n: usize) -> Result<(), MongoError> {
    match arity {
        Arity::Any => Ok(()),
        Arity::Exactly(k) if n == k => Ok(()),
        Arity::Exactly(k) => Err(MongoError::location(
            16020,
            format!("Expression {name} takes exactly {k} arguments. {n} were passed in."),
        )),
        Arity::Between(lo, hi) if (lo..=hi).contains(&n) => Ok(()),
        Arity::Between(lo, hi) => Err(MongoError::location(
            28667,
            format!(
                "Expression {name} takes at least {lo} arguments, and at most {hi}. {n} were passed in."
            ),
        )),
        Arity::AtLeastTwo if n >= 2 => Ok(()),
        Arity::AtLeastTwo => {
            if name == "$ifNull" {
                Err(MongoError::location(
                    1257300,
                    format!("$ifNull needs at least two arguments, had: {n}"),
                ))
            } else {
                Err(MongoError::location(
                    17045,
                    format!("{name} needs at least two arguments had: {n}"),
                ))
            }
        }
        Arity::Conversion if n == 1 => Ok(()),
        Arity::Conversion => Err(MongoError::location(
            50723,
            format!("{name} requires a single argument, got {n}"),
        )),
    }
}

/// `FieldPath` validation of the components after the first.
fn path_components<'a>(parts: impl Iterator<Item = &'a str>) -> Result<Vec<String>, MongoError> {
    let mut out = Vec::new();
    for p in parts {
        if p.is_empty() {
            return Err(MongoError::location(
                eddy_codes::location::FIELD_PATH_EMPTY_COMPONENT,
                "FieldPath field names may not be empty strings.",
            ));
        }
        if p.starts_with('$') {
            return Err(MongoError::location(
                eddy_codes::location::FIELD_PATH_DOLLAR_PREFIX,
                "FieldPath field names may not start with '$'. Consider using $getField or $setField.",
            ));
        }
        out.push(p.to_owned());
    }
    Ok(out)
}

/// `FieldPath::uassertValidFieldName` for the fields of an expression object.
fn validate_field_name(k: &str) -> Result<(), MongoError> {
    if k.is_empty() {
        return Err(MongoError::location(
            eddy_codes::location::FIELD_PATH_EMPTY_COMPONENT,
            "FieldPath field names may not be empty strings.",
        ));
    }
    if k.starts_with('$') {
        return Err(MongoError::location(
            eddy_codes::location::FIELD_PATH_DOLLAR_PREFIX,
            "FieldPath field names may not start with '$'. Consider using $getField or $setField.",
        ));
    }
    if k.contains('\0') {
        return Err(MongoError::location(
            16411,
            "FieldPath field names may not contain '\0'.",
        ));
    }
    if k.contains('.') {
        return Err(MongoError::location(
            16412,
            "FieldPath field names may not contain '.'. Consider using $getField or $setField.",
        ));
    }
    Ok(())
}

/// `variableValidation::validateNameForUserWrite` (`write`) / `...ForUserRead`.
fn validate_var_name(name: &str, write: bool) -> Result<(), MongoError> {
    if write && name == "CURRENT" {
        return Ok(());
    }
    let Some(first) = name.bytes().next() else {
        return Err(MongoError::location(
            16866,
            "empty variable names are not allowed",
        ));
    };
    let first_ok =
        first.is_ascii_lowercase() || first & 0x80 != 0 || (!write && first.is_ascii_uppercase());
    if !first_ok {
        return Err(MongoError::location(
            16867,
            format!("'{name}' starts with an invalid character for a user variable name"),
        ));
    }
    for c in name.chars().skip(1) {
        if !(c.is_ascii_alphanumeric() || c == '_' || !c.is_ascii()) {
            return Err(MongoError::location(
                16868,
                format!("'{name}' contains an invalid character for a variable name: '{c}'"),
            ));
        }
    }
    Ok(())
}

/// Evaluation state: the document, the environment and the variables bound by the
/// enclosing `$let`/`$map`/`$filter`/`$reduce`, innermost last.
pub(crate) struct Ctx<'a> {
    root: &'a Document,
    pub(crate) env: &'a Env,
    scope: Vec<(String, Option<Bson>)>,
}

impl Ctx<'_> {
    pub(crate) fn eval(&mut self, n: &Node) -> Result<Option<Bson>, MongoError> {
        match n {
            Node::Const(v) => Ok(Some(v.clone())),
            Node::Var(var, path) => self.var_path(var, path),
            Node::Object(fields) => {
                let mut out = Document::new();
                for (k, e) in fields {
                    if let Some(v) = self.eval(e)? {
                        out.insert(k.clone(), v);
                    }
                }
                Ok(Some(Bson::Document(out)))
            }
            Node::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for e in items {
                    out.push(self.eval(e)?.unwrap_or(Bson::Null));
                }
                Ok(Some(Bson::Array(out)))
            }
            Node::Op(op, args) => self.op(*op, args),
            Node::Named(op, args) => self.named(*op, args),
            Node::Quantile(input, q) => {
                let mut values = quantile::numbers_of(self.eval(input)?);
                Ok(Some(q.result(&mut values)))
            }
            Node::Let(defs, body) => {
                let mut vals = Vec::with_capacity(defs.len());
                for (name, e) in defs {
                    vals.push((name.clone(), self.eval(e)?));
                }
                let depth = self.scope.len();
                self.scope.extend(vals);
                let r = self.eval(body);
                self.scope.truncate(depth);
                r
            }
            Node::Map { input, var, body } => array::eval_map(self, input, var, body),
            Node::Filter {
                input,
                var,
                cond,
                limit,
            } => array::eval_filter(self, input, var, cond, limit.as_deref()),
            Node::Reduce {
                input,
                initial,
                body,
            } => array::eval_reduce(self, input, initial, body),
            Node::Switch(branches, default) => {
                for (case, then) in branches {
                    if truthy(&self.eval(case)?) {
                        return self.eval(then);
                    }
                }
                match default {
                    Some(d) => self.eval(d),
                    None => Err(MongoError::location(
                        40066,
                        "$switch could not find a matching branch for an input, and no default was specified.",
                    )),
                }
            }
        }
    }

    /// Evaluates every argument (for operators without short-circuit rules).
    pub(crate) fn eval_all(&mut self, args: &[Node]) -> Result<Vec<Option<Bson>>, MongoError> {
        args.iter().map(|a| self.eval(a)).collect()
    }

    /// Evaluates an optional named argument.
    pub(crate) fn eval_opt(&mut self, n: &Option<Node>) -> Result<Option<Bson>, MongoError> {
        match n {
            Some(n) => self.eval(n),
            None => Ok(None),
        }
    }

    /// Runs `f` with `name` bound to `value`.
    pub(crate) fn bind<T>(
        &mut self,
        binds: Vec<(String, Option<Bson>)>,
        f: impl FnOnce(&mut Self) -> Result<T, MongoError>,
    ) -> Result<T, MongoError> {
        let depth = self.scope.len();
        self.scope.extend(binds);
        let r = f(self);
        self.scope.truncate(depth);
        r
    }

    fn scoped(&self, name: &str) -> Option<&Option<Bson>> {
        self.scope
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    fn var_path(&self, var: &Var, path: &[String]) -> Result<Option<Bson>, MongoError> {
        let base: Option<Bson> = match var {
            Var::Current => match self.scoped("CURRENT") {
                Some(v) => v.clone(),
                None => return Ok(doc_path(self.root, path)),
            },
            Var::Root => return Ok(doc_path(self.root, path)),
            Var::Remove => None,
            Var::Now => Some(Bson::DateTime(self.env.now)),
            Var::ClusterTime => match self.env.cluster_time {
                Some(ts) => Some(Bson::Timestamp(ts)),
                None => {
                    return Err(MongoError::location(
                        10071,
                        "Builtin variable '$$CLUSTER_TIME' is not available",
                    ))
                }
            },
            Var::Keep => Some(Bson::String(KEEP.into())),
            Var::Prune => Some(Bson::String(PRUNE.into())),
            Var::Descend => Some(Bson::String(DESCEND.into())),
            Var::User(name) => match self.scoped(name) {
                Some(v) => v.clone(),
                None => match self.env.vars.iter().find(|(n, _)| n == name) {
                    Some((_, v)) => Some(v.clone()),
                    None => {
                        return Err(MongoError::location(
                            17276,
                            format!("Use of undefined variable: {name}"),
                        ))
                    }
                },
            },
        };
        if path.is_empty() {
            return Ok(base);
        }
        Ok(match base {
            Some(Bson::Document(d)) => doc_path(&d, path),
            Some(Bson::Array(a)) => Some(array_path(&a, path)),
            _ => None,
        })
    }
}

/// `ExpressionFieldPath::evaluatePath`: a path into a document; arrays met on the way
/// map the rest of the path over their document elements (others are skipped, as are
/// missing results).
fn doc_path(doc: &Document, path: &[String]) -> Option<Bson> {
    let Some((first, rest)) = path.split_first() else {
        return Some(Bson::Document(doc.clone()));
    };
    let v = doc.get(first)?;
    if rest.is_empty() {
        return Some(v.clone());
    }
    match v {
        Bson::Document(d) => doc_path(d, rest),
        Bson::Array(a) => Some(array_path(a, rest)),
        _ => None,
    }
}

fn array_path(a: &[Bson], path: &[String]) -> Bson {
    Bson::Array(
        a.iter()
            .filter_map(|e| match e {
                Bson::Document(d) => doc_path(d, path),
                _ => None,
            })
            .collect(),
    )
}

/// Missing, null or undefined (mongod's `Value::nullish`).
pub(crate) fn nullish(v: &Option<Bson>) -> bool {
    matches!(v, None | Some(Bson::Null) | Some(Bson::Undefined))
}

/// `Value::coerceToBool` (missing is false).
pub(crate) fn truthy(v: &Option<Bson>) -> bool {
    v.as_ref().is_some_and(util::true_value)
}

/// The value as comparisons see it: missing sorts with undefined, below null.
pub(crate) fn or_undefined(v: &Option<Bson>) -> &Bson {
    static UNDEFINED: Bson = Bson::Undefined;
    v.as_ref().unwrap_or(&UNDEFINED)
}

/// `typeName` of a value, with "missing" for the missing value.
pub(crate) fn type_name_of(v: &Option<Bson>) -> &'static str {
    match v {
        None => "missing",
        Some(v) => util::type_name(v),
    }
}

/// `Value::toString` (used in messages): missing prints as "MISSING".
pub(crate) fn value_to_string(v: &Option<Bson>) -> String {
    match v {
        None => "MISSING".to_owned(),
        Some(v) => util::bson_to_string(v),
    }
}

pub(crate) fn null() -> Result<Option<Bson>, MongoError> {
    Ok(Some(Bson::Null))
}
