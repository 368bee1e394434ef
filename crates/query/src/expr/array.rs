//! Array, set and object operators, and the accumulator-style `$sum`/`$avg`/...

use bson::Bson;
use eddy_codes::MongoError;

use super::{null, nullish, truthy, type_name_of, Ctx, Named, Node, Op, Parser};

type R = Result<Option<Bson>, MongoError>;

pub(super) fn parse_named(
    _p: &mut Parser,
    _name: &str,
    _arg: &Bson,
) -> Result<Option<Node>, MongoError> {
    Ok(None)
}

pub(super) fn eval(_cx: &mut Ctx<'_>, _op: Op, _args: &[Node]) -> R {
    Err(super::not_yet())
}

pub(super) fn eval_named(_cx: &mut Ctx<'_>, _op: Named, _args: &[Option<Node>]) -> R {
    Err(super::not_yet())
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
