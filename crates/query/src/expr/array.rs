//! Array, set and object operators, and the accumulator-style `$sum`/`$avg`/...

use std::cmp::Ordering;

use bson::{doc, Bson, Document};
use eddy_codes::{ErrorCode, MongoError};

use super::num::{self, Dec, Width};
use super::ops::op_name;
use super::Env;
use super::{
    null, nullish, or_undefined, truthy, type_name_of, value_to_string, Ctx, Named, Node, Op,
    Parser,
};
use crate::util;

type R = Result<Option<Bson>, MongoError>;

pub(super) fn parse_named(
    p: &mut Parser,
    name: &str,
    arg: &Bson,
) -> Result<Option<Node>, MongoError> {
    Ok(Some(match name {
        "$sortArray" => parse_sort_array(p, arg)?,
        "$zip" => parse_zip(p, arg)?,
        "$getField" => parse_get_field(p, arg)?,
        "$setField" | "$unsetField" => parse_set_field(p, name, arg)?,
        "$firstN" | "$lastN" | "$maxN" | "$minN" => {
            let op = match name {
                "$firstN" => Named::FirstN,
                "$lastN" => Named::LastN,
                "$maxN" => Named::MaxN,
                _ => Named::MinN,
            };
            let a = p.named_args(
                arg,
                &["input", "n"],
                || {
                    MongoError::location(
                        5787900,
                        format!(
                            "specification must be an object; found {}",
                            util::bson_to_string(arg)
                        ),
                    )
                },
                |k| MongoError::location(5787901, format!("Unknown argument for {name}: {k}")),
            )?;
            if a[1].is_none() {
                return Err(MongoError::location(5787906, "Missing value for 'n'"));
            }
            if a[0].is_none() {
                return Err(MongoError::location(5787907, "Missing value for 'input'"));
            }
            Node::Named(op, a)
        }
        _ => return Ok(None),
    }))
}

fn parse_sort_array(p: &mut Parser, arg: &Bson) -> Result<Node, MongoError> {
    let Bson::Document(d) = arg else {
        return Err(MongoError::location(
            2942500,
            format!(
                "$sortArray requires an object as an argument, found: {}",
                util::type_name(arg)
            ),
        ));
    };
    let (mut input, mut sort) = (None, None);
    for (k, v) in d {
        match k.as_str() {
            "input" => input = Some(p.operand(v)?),
            "sortBy" => {
                match v {
                    Bson::Document(spec) => {
                        for (_, dir) in spec {
                            let ok = num::is_numeric(dir) && {
                                let x = num::to_f64(dir);
                                x == 1.0 || x == -1.0
                            };
                            if !ok {
                                return Err(MongoError::location(
                                    2942505,
                                    "$sort key ordering must be 1 (for ascending) or -1 (for descending)",
                                ));
                            }
                        }
                        if spec.is_empty() {
                            return Err(MongoError::location(2942505, "$sort stage must have at least one sort key"));
                        }
                    }
                    n if num::is_numeric(n) => {
                        let x = num::to_f64(n);
                        if x != 1.0 && x != -1.0 {
                            return Err(MongoError::location(
                                2942506,
                                "The $sort element value must be either 1 or -1",
                            ));
                        }
                    }
                    _ => {
                        return Err(MongoError::location(
                            2942507,
                            "The $sort is invalid: use 1/-1 to sort the whole element, or {field:1/-1} to sort embedded fields",
                        ))
                    }
                }
                sort = Some(Node::Const(v.clone()));
            }
            _ => {
                return Err(MongoError::location(
                    2942501,
                    format!("$sortArray found an unknown argument: {k}"),
                ))
            }
        }
    }
    let input = input.ok_or_else(|| {
        MongoError::location(2942502, "$sortArray requires 'input' to be specified")
    })?;
    let sort = sort.ok_or_else(|| {
        MongoError::location(2942503, "$sortArray requires 'sortBy' to be specified")
    })?;
    Ok(Node::Named(Named::SortArray, vec![Some(input), Some(sort)]))
}

fn parse_zip(p: &mut Parser, arg: &Bson) -> Result<Node, MongoError> {
    let Bson::Document(d) = arg else {
        return Err(MongoError::location(
            34460,
            format!(
                "$zip only supports an object as an argument, found {}",
                util::type_name(arg)
            ),
        ));
    };
    let mut inputs = Vec::new();
    let mut defaults = Vec::new();
    let mut longest = false;
    for (k, v) in d {
        match k.as_str() {
            "inputs" => {
                let Bson::Array(items) = v else {
                    return Err(MongoError::location(
                        34461,
                        format!(
                            "inputs must be an array of expressions, found {}",
                            util::type_name(v)
                        ),
                    ));
                };
                for i in items {
                    inputs.push(p.operand(i)?);
                }
            }
            "defaults" => {
                let Bson::Array(items) = v else {
                    return Err(MongoError::location(
                        34462,
                        format!(
                            "defaults must be an array of expressions, found {}",
                            util::type_name(v)
                        ),
                    ));
                };
                for i in items {
                    defaults.push(p.operand(i)?);
                }
            }
            "useLongestLength" => {
                let Bson::Boolean(bv) = v else {
                    return Err(MongoError::location(
                        34463,
                        format!(
                            "useLongestLength must be a bool, found {}",
                            util::type_name(arg)
                        ),
                    ));
                };
                longest = *bv;
            }
            _ => {
                return Err(MongoError::location(
                    34464,
                    format!("$zip found an unknown argument: {k}"),
                ))
            }
        }
    }
    if inputs.is_empty() {
        return Err(MongoError::location(
            34465,
            "$zip requires at least one input array",
        ));
    }
    if !longest && !defaults.is_empty() {
        return Err(MongoError::location(
            34466,
            "cannot specify defaults unless useLongestLength is true",
        ));
    }
    if !defaults.is_empty() && defaults.len() != inputs.len() {
        return Err(MongoError::location(
            34467,
            "defaults and inputs must have the same length",
        ));
    }
    // Slots: [useLongestLength, inputs (as an array node), defaults (as an array node)].
    Ok(Node::Named(
        Named::Zip,
        vec![
            Some(Node::Const(Bson::Boolean(longest))),
            Some(Node::Array(inputs)),
            Some(Node::Array(defaults)),
        ],
    ))
}

fn const_field(name: &str, field: &Node, codes: (i32, i32, i32)) -> Result<(), MongoError> {
    match field {
        Node::Var(super::Var::Current, path) => {
            let fp = format!("${}", path.join("."));
            Err(MongoError::location(
                codes.0,
                format!("'{fp}' is a field path reference which is not allowed in this context. Did you mean {{$literal: '{fp}'}}?"),
            ))
        }
        Node::Var(..) => Err(MongoError::location(
            codes.1,
            format!("{name} requires 'field' to evaluate to a constant, but got a non-constant argument"),
        )),
        Node::Const(Bson::String(_)) => Ok(()),
        Node::Const(v) => Err(MongoError::location(
            codes.2,
            format!("{name} requires 'field' to evaluate to type String, but got {}", util::type_name(v)),
        )),
        _ => Err(MongoError::location(
            codes.1,
            format!("{name} requires 'field' to evaluate to a constant, but got a non-constant argument"),
        )),
    }
}

fn parse_get_field(p: &mut Parser, arg: &Bson) -> Result<Node, MongoError> {
    let name = "$getField";
    let (mut field, mut input) = (None, None);
    match arg {
        Bson::Document(d) if d.keys().next().is_some_and(|k| k.starts_with('$')) => {
            field = Some(p.operand(arg)?);
            input = Some(Node::Var(super::Var::Current, Vec::new()));
        }
        Bson::Document(d) => {
            for (k, v) in d {
                match k.as_str() {
                    "field" => field = Some(p.operand(v)?),
                    "input" => input = Some(p.operand(v)?),
                    _ => {
                        return Err(MongoError::location(
                            3041701,
                            format!("{name} found an unknown argument: {k}"),
                        ))
                    }
                }
            }
        }
        _ => {
            field = Some(p.operand(arg)?);
            input = Some(Node::Var(super::Var::Current, Vec::new()));
        }
    }
    let field = field.ok_or_else(|| {
        MongoError::location(3041702, format!("{name} requires 'field' to be specified"))
    })?;
    let input = input.ok_or_else(|| {
        MongoError::location(3041703, format!("{name} requires 'input' to be specified"))
    })?;
    const_field(name, &field, (5654600, 5654601, 5654602))?;
    Ok(Node::Named(Named::GetField, vec![Some(field), Some(input)]))
}

fn parse_set_field(p: &mut Parser, name: &str, arg: &Bson) -> Result<Node, MongoError> {
    let unset = name == "$unsetField";
    let Bson::Document(d) = arg else {
        return Err(MongoError::location(
            4161100,
            format!("{name} only supports an object as its argument"),
        ));
    };
    let (mut field, mut input, mut value) = (None, None, None);
    for (k, v) in d {
        match k.as_str() {
            "field" => field = Some(p.operand(v)?),
            "input" => input = Some(p.operand(v)?),
            "value" if !unset => value = Some(p.operand(v)?),
            _ => {
                return Err(MongoError::location(
                    4161101,
                    format!("{name} found an unknown argument: {k}"),
                ))
            }
        }
    }
    if unset {
        value = Some(Node::Var(super::Var::Remove, Vec::new()));
    }
    let field = field.ok_or_else(|| {
        MongoError::location(4161102, format!("{name} requires 'field' to be specified"))
    })?;
    let value = value.ok_or_else(|| {
        MongoError::location(4161103, format!("{name} requires 'value' to be specified"))
    })?;
    let input = input.ok_or_else(|| {
        MongoError::location(4161109, format!("{name} requires 'input' to be specified"))
    })?;
    const_field(name, &field, (4161108, 4161106, 4161107))?;
    Ok(Node::Named(
        Named::SetField,
        vec![Some(field), Some(input), Some(value)],
    ))
}

fn array_arg(v: &Option<Bson>) -> Option<&Vec<Bson>> {
    match v {
        Some(Bson::Array(a)) => Some(a),
        _ => None,
    }
}

fn elem_at(name: &str, arity: usize, arr: &Option<Bson>, idx: &Option<Bson>) -> R {
    if nullish(arr) || nullish(idx) {
        return null();
    }
    let Some(a) = array_arg(arr) else {
        return Err(MongoError::location(
            28689,
            format!(
                "{name}'s {} must be an array, but is {}",
                if arity == 1 {
                    "argument"
                } else {
                    "first argument"
                },
                type_name_of(arr)
            ),
        ));
    };
    let i = idx.as_ref().expect("not nullish");
    if !num::is_numeric(i) {
        return Err(MongoError::location(
            28690,
            format!(
                "{name}'s second argument must be a numeric value, but is {}",
                util::type_name(i)
            ),
        ));
    }
    if !num::is_integral32(i) {
        return Err(MongoError::location(
            28691,
            format!(
                "{name}'s second argument must be representable as a 32-bit integer: {}",
                num::format_double_g(num::to_f64(i))
            ),
        ));
    }
    let i = num::to_i64(i);
    let len = a.len() as i64;
    let pos = if i < 0 { len + i } else { i };
    if pos < 0 || pos >= len {
        return Ok(None);
    }
    Ok(Some(a[pos as usize].clone()))
}

/// Values of an accumulator-style expression: one array argument is its elements,
/// otherwise each argument is one value.
fn acc_inputs(cx: &mut Ctx<'_>, args: &[Node]) -> Result<Vec<Option<Bson>>, MongoError> {
    if args.len() == 1 {
        return Ok(match cx.eval(&args[0])? {
            Some(Bson::Array(items)) => items.into_iter().map(Some).collect(),
            v => vec![v],
        });
    }
    cx.eval_all(args)
}

/// The distinct values of `items` in order (strings equal under the collation are one).
fn sorted_set(env: &Env, items: impl IntoIterator<Item = Bson>) -> Vec<Bson> {
    let mut v: Vec<Bson> = items.into_iter().collect();
    v.sort_by(|a, b| env.compare(a, b));
    v.dedup_by(|a, b| env.equal(a, b));
    v
}

fn contains(env: &Env, set: &[Bson], x: &Bson) -> bool {
    set.iter().any(|y| env.equal(x, y))
}

pub(super) fn eval(cx: &mut Ctx<'_>, op: Op, args: &[Node]) -> R {
    let env = cx.env;
    let name = op_name(op);
    match op {
        Op::ArrayElemAt => {
            let v = cx.eval_all(args)?;
            elem_at(name, 2, &v[0], &v[1])
        }
        Op::First | Op::Last => {
            let v = cx.eval(&args[0])?;
            let idx = Some(Bson::Int32(if op == Op::First { 0 } else { -1 }));
            elem_at(name, 1, &v, &idx)
        }
        Op::ConcatArrays => {
            let mut out = Vec::new();
            for a in args {
                let v = cx.eval(a)?;
                if nullish(&v) {
                    return null();
                }
                match v {
                    Some(Bson::Array(items)) => out.extend(items),
                    other => {
                        return Err(MongoError::location(
                            28664,
                            format!(
                                "$concatArrays only supports arrays, not {}",
                                type_name_of(&other)
                            ),
                        ))
                    }
                }
            }
            Ok(Some(Bson::Array(out)))
        }
        Op::In => {
            let v = cx.eval_all(args)?;
            let Some(a) = array_arg(&v[1]) else {
                return Err(MongoError::location(
                    40081,
                    format!(
                        "$in requires an array as a second argument, found: {}",
                        type_name_of(&v[1])
                    ),
                ));
            };
            let x = or_undefined(&v[0]);
            Ok(Some(Bson::Boolean(a.iter().any(|y| env.equal(x, y)))))
        }
        Op::IndexOfArray => {
            let arr = cx.eval(&args[0])?;
            if nullish(&arr) {
                return null();
            }
            let Some(a) = array_arg(&arr) else {
                return Err(MongoError::location(
                    40090,
                    format!(
                        "$indexOfArray requires an array as a first argument, found: {}",
                        type_name_of(&arr)
                    ),
                ));
            };
            let start = match args.get(2) {
                Some(n) => index_arg(&cx.eval(n)?, name, "starting index")?,
                None => 0,
            };
            let end = match args.get(3) {
                Some(n) => index_arg(&cx.eval(n)?, name, "ending index")?.min(a.len()),
                None => a.len(),
            };
            let target = cx.eval(&args[1])?;
            let t = or_undefined(&target);
            let pos = (start..end).find(|&i| env.equal(&a[i], t));
            Ok(Some(Bson::Int32(pos.map(|p| p as i32).unwrap_or(-1))))
        }
        Op::IsArray => Ok(Some(Bson::Boolean(matches!(
            cx.eval(&args[0])?,
            Some(Bson::Array(_))
        )))),
        Op::Range => {
            let v = cx.eval_all(args)?;
            let int_arg = |x: &Option<Bson>,
                           c1: i32,
                           c2: i32,
                           what: &str,
                           an: &str|
             -> Result<i64, MongoError> {
                match x {
                    Some(n) if num::is_numeric(n) => {
                        if !num::is_integral32(n) {
                            return Err(MongoError::location(
                                c2,
                                format!("$range requires {an} {what} that can be represented as a 32-bit integer, found value: {}", value_to_string(x)),
                            ));
                        }
                        Ok(num::to_i64(n))
                    }
                    _ => Err(MongoError::location(
                        c1,
                        format!(
                            "$range requires a numeric {what}, found value of type: {}",
                            type_name_of(x)
                        ),
                    )),
                }
            };
            let start = int_arg(&v[0], 34443, 34444, "starting value", "a")?;
            let end = int_arg(&v[1], 34445, 34446, "ending value", "an")?;
            let step = match v.get(2) {
                Some(s) => {
                    let st = match s {
                        Some(n) if num::is_numeric(n) => {
                            if !num::is_integral32(n) {
                                return Err(MongoError::location(
                                    34448,
                                    format!("$range requires a step value that can be represented as a 32-bit integer, found value: {}", value_to_string(s)),
                                ));
                            }
                            num::to_i64(n)
                        }
                        _ => {
                            return Err(MongoError::location(
                                34447,
                                format!(
                                    "$range requires a numeric step value, found value of type:{}",
                                    type_name_of(s)
                                ),
                            ))
                        }
                    };
                    if st == 0 {
                        return Err(MongoError::location(
                            34449,
                            "$range requires a non-zero step value",
                        ));
                    }
                    st
                }
                None => 1,
            };
            let steps = (end - start) / step;
            let len = if steps >= 0 { 1 + steps } else { 0 };
            const MAX_RANGE: i64 = 64 * 1024 * 1024;
            if len * 16 >= MAX_RANGE {
                return Err(MongoError::new(
                    ErrorCode::ExceededMemoryLimit,
                    format!("$range would use too much memory ({} bytes) and cannot spill to disk. Memory limit: {MAX_RANGE} bytes", 24 + len * 16),
                ));
            }
            let mut out = Vec::new();
            let mut cur = start;
            while if step > 0 { cur < end } else { cur > end } {
                out.push(Bson::Int32(cur as i32));
                cur += step;
            }
            Ok(Some(Bson::Array(out)))
        }
        Op::ReverseArray => {
            let v = cx.eval(&args[0])?;
            if nullish(&v) {
                return null();
            }
            match v {
                Some(Bson::Array(mut a)) => {
                    a.reverse();
                    Ok(Some(Bson::Array(a)))
                }
                other => Err(MongoError::location(
                    34435,
                    format!(
                        "The argument to $reverseArray must be an array, but was of type: {}",
                        type_name_of(&other)
                    ),
                )),
            }
        }
        Op::Size => match cx.eval(&args[0])? {
            Some(Bson::Array(a)) => Ok(Some(num::int_or_long(a.len() as i64))),
            other => Err(MongoError::location(
                17124,
                format!(
                    "The argument to $size must be an array, but was of type: {}",
                    type_name_of(&other)
                ),
            )),
        },
        Op::Slice => {
            let v = cx.eval_all(args)?;
            if nullish(&v[0]) || nullish(&v[1]) {
                return null();
            }
            let Some(a) = array_arg(&v[0]) else {
                return Err(MongoError::location(
                    28724,
                    format!(
                        "First argument to $slice must be an array, but is of type: {}",
                        type_name_of(&v[0])
                    ),
                ));
            };
            let n2 = v[1].as_ref().expect("not nullish");
            if !num::is_numeric(n2) {
                return Err(MongoError::location(
                    28725,
                    format!(
                        "Second argument to $slice must be a numeric value, but is of type: {}",
                        util::type_name(n2)
                    ),
                ));
            }
            if !num::is_integral32(n2) {
                return Err(MongoError::location(
                    28726,
                    format!(
                        "Second argument to $slice can't be represented as a 32-bit integer: {}",
                        num::format_double_g(num::to_f64(n2))
                    ),
                ));
            }
            let len = a.len() as i64;
            let x = num::to_i64(n2);
            let (start, end) = if v.len() == 2 {
                if x >= 0 {
                    (0, x.min(len))
                } else {
                    ((len + x).max(0), len)
                }
            } else {
                let start = if x < 0 { (len + x).max(0) } else { x.min(len) };
                if nullish(&v[2]) {
                    return null();
                }
                let c = v[2].as_ref().expect("not nullish");
                if !num::is_numeric(c) {
                    return Err(MongoError::location(
                        28727,
                        format!(
                            "Third argument to $slice must be numeric, but is of type: {}",
                            util::type_name(c)
                        ),
                    ));
                }
                if !num::is_integral32(c) {
                    return Err(MongoError::location(
                        28728,
                        format!(
                            "Third argument to $slice can't be represented as a 32-bit integer: {}",
                            num::format_double_g(num::to_f64(c))
                        ),
                    ));
                }
                let count = num::to_i64(c);
                if count <= 0 {
                    return Err(MongoError::location(
                        28729,
                        format!("Third argument to $slice must be positive: {count}"),
                    ));
                }
                (start, (start + count).min(len))
            };
            Ok(Some(Bson::Array(a[start as usize..end as usize].to_vec())))
        }
        Op::ArrayToObject => {
            let v = cx.eval(&args[0])?;
            if nullish(&v) {
                return null();
            }
            let Some(a) = array_arg(&v) else {
                return Err(MongoError::location(
                    40386,
                    format!(
                        "$arrayToObject requires an array input, found: {}",
                        type_name_of(&v)
                    ),
                ));
            };
            array_to_object(a).map(|d| Some(Bson::Document(d)))
        }
        Op::ObjectToArray => {
            let v = cx.eval(&args[0])?;
            if nullish(&v) {
                return null();
            }
            let Some(Bson::Document(d)) = v else {
                return Err(MongoError::location(
                    40390,
                    format!(
                        "$objectToArray requires a document input, found: {}",
                        type_name_of(&v)
                    ),
                ));
            };
            Ok(Some(Bson::Array(
                d.into_iter()
                    .map(|(k, v)| Bson::Document(doc! {"k": k, "v": v}))
                    .collect(),
            )))
        }
        Op::MergeObjects => {
            let mut out = Document::new();
            for v in acc_inputs(cx, args)? {
                if nullish(&v) {
                    continue;
                }
                match v {
                    Some(Bson::Document(d)) => {
                        for (k, x) in d {
                            out.insert(k, x);
                        }
                    }
                    other => {
                        return Err(MongoError::location(
                            40400,
                            format!(
                                "$mergeObjects requires object inputs, but input {} is of type {}",
                                value_to_string(&other),
                                type_name_of(&other)
                            ),
                        ))
                    }
                }
            }
            Ok(Some(Bson::Document(out)))
        }
        Op::SetEquals => {
            let v = cx.eval_all(args)?;
            let mut sets = Vec::with_capacity(v.len());
            for (i, x) in v.iter().enumerate() {
                let Some(a) = array_arg(x) else {
                    return Err(MongoError::location(
                        17044,
                        format!("All operands of $setEquals must be arrays. {}-th argument is of type: {}", i + 1, type_name_of(x)),
                    ));
                };
                sets.push(sorted_set(env, a.iter().cloned()));
            }
            let first = &sets[0];
            Ok(Some(Bson::Boolean(sets.iter().all(|s| {
                s.len() == first.len() && s.iter().zip(first).all(|(a, b)| env.equal(a, b))
            }))))
        }
        Op::SetIntersection | Op::SetUnion => {
            let mut acc: Option<Vec<Bson>> = None;
            for a in args {
                let v = cx.eval(a)?;
                if nullish(&v) {
                    return null();
                }
                let Some(items) = array_arg(&v) else {
                    return Err(if op == Op::SetUnion {
                        MongoError::location(
                            17043,
                            format!("All operands of $setUnion must be arrays. One argument is of type: {}", type_name_of(&v)),
                        )
                    } else {
                        MongoError::location(
                            17047,
                            format!("All operands of $setIntersection must be arrays. One argument is of type: {}", type_name_of(&v)),
                        )
                    });
                };
                let s = sorted_set(env, items.iter().cloned());
                acc = Some(match acc {
                    None => s,
                    Some(cur) if op == Op::SetUnion => sorted_set(env, cur.into_iter().chain(s)),
                    Some(cur) => cur.into_iter().filter(|x| contains(env, &s, x)).collect(),
                });
            }
            Ok(Some(Bson::Array(acc.unwrap_or_default())))
        }
        Op::SetDifference => {
            let v = cx.eval_all(args)?;
            if nullish(&v[0]) || nullish(&v[1]) {
                return null();
            }
            let Some(l) = array_arg(&v[0]) else {
                return Err(MongoError::location(
                    17048,
                    format!("both operands of $setDifference must be arrays. First argument is of type: {}", type_name_of(&v[0])),
                ));
            };
            let Some(r) = array_arg(&v[1]) else {
                return Err(MongoError::location(
                    17049,
                    format!("both operands of $setDifference must be arrays. Second argument is of type: {}", type_name_of(&v[1])),
                ));
            };
            let mut seen: Vec<Bson> = r.clone();
            let mut out = Vec::new();
            for x in l {
                if !contains(env, &seen, x) {
                    seen.push(x.clone());
                    out.push(x.clone());
                }
            }
            Ok(Some(Bson::Array(out)))
        }
        Op::SetIsSubset => {
            let v = cx.eval_all(args)?;
            let Some(l) = array_arg(&v[0]) else {
                return Err(MongoError::location(
                    17046,
                    format!("both operands of $setIsSubset must be arrays. First argument is of type: {}", type_name_of(&v[0])),
                ));
            };
            let Some(r) = array_arg(&v[1]) else {
                return Err(MongoError::location(
                    17042,
                    format!("both operands of $setIsSubset must be arrays. Second argument is of type: {}", type_name_of(&v[1])),
                ));
            };
            Ok(Some(Bson::Boolean(l.iter().all(|x| contains(env, r, x)))))
        }
        Op::AnyElementTrue | Op::AllElementsTrue => {
            let v = cx.eval(&args[0])?;
            let Some(a) = array_arg(&v) else {
                return Err(MongoError::location(
                    if op == Op::AnyElementTrue {
                        17041
                    } else {
                        17040
                    },
                    format!(
                        "{name}'s argument must be an array, but is {}",
                        type_name_of(&v)
                    ),
                ));
            };
            Ok(Some(Bson::Boolean(if op == Op::AnyElementTrue {
                a.iter().any(util::true_value)
            } else {
                a.iter().all(util::true_value)
            })))
        }
        Op::Sum | Op::Avg | Op::StdDevPop | Op::StdDevSamp => {
            let vals: Vec<Bson> = acc_inputs(cx, args)?
                .into_iter()
                .flatten()
                .filter(num::is_numeric)
                .collect();
            Ok(Some(match op {
                Op::Sum => sum(&vals),
                Op::Avg => {
                    if vals.is_empty() {
                        Bson::Null
                    } else if vals.iter().any(|v| matches!(v, Bson::Decimal128(_))) {
                        let total = vals.iter().fold(Dec::zero(), |a, v| a.add(&num::to_dec(v)));
                        total
                            .div(&Dec::from_i64(vals.len() as i64))
                            .unwrap_or(Dec::NaN)
                            .to_bson()
                    } else {
                        Bson::Double(vals.iter().map(num::to_f64).sum::<f64>() / vals.len() as f64)
                    }
                }
                _ => {
                    let n = vals.len() as f64;
                    let min_n = if op == Op::StdDevPop { 1.0 } else { 2.0 };
                    if n < min_n {
                        Bson::Null
                    } else {
                        let mean = vals.iter().map(num::to_f64).sum::<f64>() / n;
                        let ss: f64 = vals.iter().map(|v| (num::to_f64(v) - mean).powi(2)).sum();
                        Bson::Double((ss / if op == Op::StdDevPop { n } else { n - 1.0 }).sqrt())
                    }
                }
            }))
        }
        Op::Min | Op::Max => {
            let mut best: Option<Bson> = None;
            for v in acc_inputs(cx, args)? {
                if nullish(&v) {
                    continue;
                }
                let v = v.expect("not nullish");
                let better = match &best {
                    None => true,
                    Some(b) => {
                        let c = env.compare(&v, b);
                        if op == Op::Min {
                            c == Ordering::Less
                        } else {
                            c == Ordering::Greater
                        }
                    }
                };
                if better {
                    best = Some(v);
                }
            }
            Ok(Some(best.unwrap_or(Bson::Null)))
        }
        _ => Err(MongoError::internal(format!("no evaluator for {op:?}"))),
    }
}

/// `$sum` over numbers: the narrowest type that holds the total.
fn sum(vals: &[Bson]) -> Bson {
    let mut widest = Width::Int;
    let mut long: i64 = 0;
    let mut long_ok = true;
    let mut double = 0.0f64;
    let mut comp = 0.0f64;
    let mut dec = Dec::zero();
    for v in vals {
        widest = widest.max(num::width(v).unwrap_or(Width::Double));
        if let Bson::Decimal128(_) = v {
            dec = dec.add(&num::to_dec(v));
            continue;
        }
        match v {
            Bson::Int32(_) | Bson::Int64(_) if long_ok => match long.checked_add(num::to_i64(v)) {
                Some(s) => long = s,
                None => long_ok = false,
            },
            _ => {}
        }
        // Kahan summation of every non-decimal value, as the double total.
        let y = num::to_f64(v) - comp;
        let t = double + y;
        comp = (t - double) - y;
        double = t;
    }
    match widest {
        Width::Decimal => {
            let rest = if long_ok && vals.iter().all(|v| !matches!(v, Bson::Double(_))) {
                Dec::from_i64(long)
            } else {
                Dec::from_f64(double, 34)
            };
            dec.add(&rest).to_bson()
        }
        Width::Double => Bson::Double(double),
        _ if !long_ok => Bson::Double(double),
        Width::Long => Bson::Int64(long),
        Width::Int => num::int_or_long(long),
    }
}

fn array_to_object(a: &[Bson]) -> Result<Document, MongoError> {
    let mut out = Document::new();
    let Some(first) = a.first() else {
        return Ok(out);
    };
    let pairs = match first {
        Bson::Array(_) => true,
        Bson::Document(_) => false,
        other => {
            return Err(MongoError::location(
                40398,
                format!(
                    "Unrecognised input type format for $arrayToObject: {}",
                    util::type_name(other)
                ),
            ))
        }
    };
    for e in a {
        if pairs {
            let Bson::Array(kv) = e else {
                return Err(MongoError::location(
                    40396,
                    format!("$arrayToObject requires a consistent input format. Elements mustall be arrays or all be objects. Array was detected, now found: {}", util::type_name(e)),
                ));
            };
            if kv.len() != 2 {
                return Err(MongoError::location(
                    40397,
                    format!(
                        "$arrayToObject requires an array of size 2 arrays,found array of size: {}",
                        kv.len()
                    ),
                ));
            }
            let Bson::String(k) = &kv[0] else {
                return Err(MongoError::location(
                    40395,
                    format!("$arrayToObject requires an array of key-value pairs, where the key must be of type string. Found key type: {}", util::type_name(&kv[0])),
                ));
            };
            if k.contains('\0') {
                return Err(MongoError::location(
                    4940400,
                    "Key field cannot contain an embedded null byte",
                ));
            }
            out.insert(k.clone(), kv[1].clone());
        } else {
            let Bson::Document(d) = e else {
                return Err(MongoError::location(
                    40391,
                    format!("$arrayToObject requires a consistent input format. Elements mustall be arrays or all be objects. Object was detected, now found: {}", util::type_name(e)),
                ));
            };
            if d.len() != 2 {
                return Err(MongoError::location(
                    40392,
                    format!("$arrayToObject requires an object keys of 'k' and 'v'. Found incorrect number of keys:{}", d.len()),
                ));
            }
            let (Some(k), Some(v)) = (d.get("k"), d.get("v")) else {
                return Err(MongoError::location(
                    40393,
                    format!("$arrayToObject requires an object with keys 'k' and 'v'. Missing either or both keys from: {}", util::bson_to_string(e)),
                ));
            };
            let Bson::String(k) = k else {
                return Err(MongoError::location(
                    40394,
                    format!("$arrayToObject requires an object with keys 'k' and 'v', where the value of 'k' must be of type string. Found type: {}", util::type_name(k)),
                ));
            };
            if k.contains('\0') {
                return Err(MongoError::location(
                    4940401,
                    "Key field cannot contain an embedded null byte",
                ));
            }
            out.insert(k.clone(), v.clone());
        }
    }
    Ok(out)
}

pub(super) fn eval_named(cx: &mut Ctx<'_>, op: Named, args: &[Option<Node>]) -> R {
    let env = cx.env;
    match op {
        Named::SortArray => {
            let input = cx.eval_opt(&args[0])?;
            if nullish(&input) {
                return null();
            }
            let Some(Bson::Array(mut a)) = input else {
                return Err(MongoError::location(
                    2942504,
                    format!(
                        "The input argument to $sortArray must be an array, but was of type: {}",
                        type_name_of(&input)
                    ),
                ));
            };
            let spec = match &args[1] {
                Some(Node::Const(v)) => v.clone(),
                _ => Bson::Int32(1),
            };
            match &spec {
                Bson::Document(keys) => {
                    let keys: Vec<(String, bool)> = keys
                        .iter()
                        .map(|(k, d)| (k.clone(), num::to_f64(d) < 0.0))
                        .collect();
                    a.sort_by(|x, y| {
                        for (k, desc) in &keys {
                            let kx = sort_key(x, k);
                            let ky = sort_key(y, k);
                            let c = env.compare(&kx, &ky);
                            let c = if *desc { c.reverse() } else { c };
                            if c != Ordering::Equal {
                                return c;
                            }
                        }
                        Ordering::Equal
                    });
                }
                dir => {
                    let desc = num::to_f64(dir) < 0.0;
                    a.sort_by(|x, y| {
                        let c = env.compare(x, y);
                        if desc {
                            c.reverse()
                        } else {
                            c
                        }
                    });
                }
            }
            Ok(Some(Bson::Array(a)))
        }
        Named::Zip => {
            let longest = matches!(&args[0], Some(Node::Const(Bson::Boolean(true))));
            let (Some(Node::Array(inputs)), Some(Node::Array(defaults))) = (&args[1], &args[2])
            else {
                return Err(MongoError::internal("malformed $zip"));
            };
            let mut arrays = Vec::with_capacity(inputs.len());
            for i in inputs {
                let v = cx.eval(i)?;
                if nullish(&v) {
                    return null();
                }
                match v {
                    Some(Bson::Array(a)) => arrays.push(a),
                    other => {
                        return Err(MongoError::location(
                            34468,
                            format!(
                                "$zip found a non-array expression in input: {}",
                                value_to_string(&other)
                            ),
                        ))
                    }
                }
            }
            let min = arrays.iter().map(Vec::len).min().unwrap_or(0);
            let max = arrays.iter().map(Vec::len).max().unwrap_or(0);
            let mut defs = vec![Bson::Null; arrays.len()];
            if min != max {
                for (i, d) in defaults.iter().enumerate() {
                    defs[i] = cx.eval(d)?.unwrap_or(Bson::Null);
                }
            }
            let n = if longest { max } else { min };
            let out = (0..n)
                .map(|row| {
                    Bson::Array(
                        arrays
                            .iter()
                            .enumerate()
                            .map(|(c, a)| a.get(row).cloned().unwrap_or_else(|| defs[c].clone()))
                            .collect(),
                    )
                })
                .collect();
            Ok(Some(Bson::Array(out)))
        }
        Named::GetField => {
            let Some(Bson::String(field)) = cx.eval_opt(&args[0])? else {
                return Err(MongoError::internal("$getField field must be a string"));
            };
            let input = cx.eval_opt(&args[1])?;
            Ok(match input {
                None => None,
                Some(Bson::Null) | Some(Bson::Undefined) => Some(Bson::Null),
                Some(Bson::Document(d)) => d.get(&field).cloned(),
                Some(_) => None,
            })
        }
        Named::SetField => {
            let Some(Bson::String(field)) = cx.eval_opt(&args[0])? else {
                return Err(MongoError::internal("$setField field must be a string"));
            };
            let input = cx.eval_opt(&args[1])?;
            if nullish(&input) {
                return null();
            }
            let Some(Bson::Document(mut d)) = input else {
                return Err(MongoError::location(
                    4161105,
                    "$setField requires 'input' to evaluate to type Object",
                ));
            };
            match cx.eval_opt(&args[2])? {
                Some(v) => {
                    d.insert(field, v);
                }
                None => {
                    d.remove(&field);
                }
            }
            Ok(Some(Bson::Document(d)))
        }
        _ => {
            // $firstN $lastN $maxN $minN
            let n = cx.eval_opt(&args[1])?;
            let nv = match &n {
                Some(x) if num::is_integral64(x) => num::to_i64(x),
                _ => {
                    return Err(MongoError::location(
                        5787902,
                        format!(
                            "Value for 'n' must be of integral type, but found {}",
                            value_to_string(&n)
                        ),
                    ))
                }
            };
            if nv <= 0 {
                return Err(MongoError::location(
                    5787908,
                    format!("'n' must be greater than 0, found {nv}"),
                ));
            }
            let input = cx.eval_opt(&args[0])?;
            let Some(Bson::Array(a)) = input else {
                return Err(MongoError::location(
                    5788200,
                    format!("Input must be an array, but found {}", type_name_of(&input)),
                ));
            };
            let n = nv as usize;
            Ok(Some(Bson::Array(match op {
                Named::FirstN => a.into_iter().take(n).collect(),
                Named::LastN => {
                    let skip = a.len().saturating_sub(n);
                    a.into_iter().skip(skip).collect()
                }
                _ => {
                    let mut v: Vec<Bson> = a
                        .into_iter()
                        .filter(|x| !matches!(x, Bson::Null | Bson::Undefined))
                        .collect();
                    v.sort_by(|x, y| {
                        if op == Named::MaxN {
                            env.compare(y, x)
                        } else {
                            env.compare(x, y)
                        }
                    });
                    v.truncate(n);
                    v
                }
            })))
        }
    }
}

/// A `$sortArray` key: the value at a dotted path of a document element (null when
/// missing or when the element is not a document).
fn sort_key(v: &Bson, path: &str) -> Bson {
    match v {
        Bson::Document(d) => crate::path::get_path(d, path)
            .cloned()
            .unwrap_or(Bson::Null),
        _ => Bson::Null,
    }
}

/// `uassertIfNotIntegralAndNonNegative`.
fn index_arg(v: &Option<Bson>, op: &str, what: &str) -> Result<usize, MongoError> {
    let ok = v.as_ref().is_some_and(num::is_integral32);
    if !ok {
        return Err(MongoError::location(
            40096,
            format!(
                "{op}requires an integral {what}, found a value of type: {}, with value: {}",
                type_name_of(v),
                value_to_string(v)
            ),
        ));
    }
    let n = v.as_ref().map(num::to_i64).unwrap_or(0);
    if n < 0 {
        return Err(MongoError::location(
            40097,
            format!(
                "{op} requires a nonnegative {what}, found: {}",
                value_to_string(v)
            ),
        ));
    }
    Ok(n as usize)
}

pub(super) fn eval_map(cx: &mut Ctx<'_>, input: &Node, var: &str, body: &Node) -> R {
    let v = cx.eval(input)?;
    if nullish(&v) {
        return null();
    }
    let Some(Bson::Array(items)) = v else {
        return Err(MongoError::location(
            16883,
            format!("input to $map must be an array not {}", type_name_of(&v)),
        ));
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let r = cx.bind(vec![(var.to_owned(), Some(item))], |cx| cx.eval(body))?;
        out.push(r.unwrap_or(Bson::Null));
    }
    Ok(Some(Bson::Array(out)))
}

pub(super) fn eval_filter(
    cx: &mut Ctx<'_>,
    input: &Node,
    var: &str,
    cond: &Node,
    limit: Option<&Node>,
) -> R {
    let v = cx.eval(input)?;
    if nullish(&v) {
        return null();
    }
    let Some(Bson::Array(items)) = v else {
        return Err(MongoError::location(
            28651,
            format!("input to $filter must be an array not {}", type_name_of(&v)),
        ));
    };
    if items.is_empty() {
        return Ok(Some(Bson::Array(items)));
    }
    let mut remaining: Option<i64> = None;
    if let Some(l) = limit {
        let lv = cx.eval(l)?;
        if !nullish(&lv) {
            let l = lv.as_ref().expect("not nullish");
            if !super::num::is_integral32(l) {
                return Err(MongoError::location(
                    327391,
                    format!(
                        "$filter: limit must be represented as a 32-bit integral value: {}",
                        super::value_to_string(&lv)
                    ),
                ));
            }
            let n = super::num::to_i64(l);
            if n <= 0 {
                return Err(MongoError::location(
                    327392,
                    format!(
                        "$filter: limit must be greater than 0: {}",
                        super::value_to_string(&lv)
                    ),
                ));
            }
            remaining = Some(n);
        }
    }
    let mut out = Vec::new();
    for item in items {
        let keep = cx.bind(vec![(var.to_owned(), Some(item.clone()))], |cx| {
            cx.eval(cond)
        })?;
        if truthy(&keep) {
            out.push(item);
            if let Some(r) = remaining.as_mut() {
                *r -= 1;
                if *r == 0 {
                    break;
                }
            }
        }
    }
    Ok(Some(Bson::Array(out)))
}

pub(super) fn eval_reduce(cx: &mut Ctx<'_>, input: &Node, initial: &Node, body: &Node) -> R {
    let v = cx.eval(input)?;
    if nullish(&v) {
        return null();
    }
    let Some(Bson::Array(items)) = v else {
        return Err(MongoError::location(
            40080,
            format!(
                "$reduce requires that 'input' be an array, found: {}",
                super::value_to_string(&v)
            ),
        ));
    };
    let mut acc = cx.eval(initial)?;
    for item in items {
        acc = cx.bind(
            vec![("this".to_owned(), Some(item)), ("value".to_owned(), acc)],
            |cx| cx.eval(body),
        )?;
    }
    Ok(acc)
}
