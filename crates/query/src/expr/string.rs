//! String operators: `$concat $substrBytes $substrCP $strLenBytes $strLenCP $toLower
//! $toUpper $split $indexOfBytes $indexOfCP $strcasecmp $trim $ltrim $rtrim
//! $replaceOne $replaceAll $regexMatch $regexFind $regexFindAll`.
//!
//! Strings are UTF-8 (`String`), so the byte-oriented operators check code point
//! boundaries exactly where mongod reports "invalid UTF-8" / "continuation byte" errors.

use bson::{doc, Bson};
use eddy_codes::MongoError;

use super::num::{self, to_i64};
use super::{null, nullish, type_name_of, value_to_string, Ctx, Named, Node, Op, Parser};
use crate::regex::MongoRegex;
use crate::util;

type R = Result<Option<Bson>, MongoError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TrimKind {
    Both,
    Left,
    Right,
}

pub(super) fn parse_named(
    p: &mut Parser,
    name: &str,
    arg: &Bson,
) -> Result<Option<Node>, MongoError> {
    let (op, fields): (Named, &[&str]) = match name {
        "$trim" => (Named::Trim(TrimKind::Both), &["input", "chars"]),
        "$ltrim" => (Named::Trim(TrimKind::Left), &["input", "chars"]),
        "$rtrim" => (Named::Trim(TrimKind::Right), &["input", "chars"]),
        "$replaceOne" => (Named::ReplaceOne, &["input", "find", "replacement"]),
        "$replaceAll" => (Named::ReplaceAll, &["input", "find", "replacement"]),
        "$regexMatch" => (Named::RegexMatch, &["input", "regex", "options"]),
        "$regexFind" => (Named::RegexFind, &["input", "regex", "options"]),
        "$regexFindAll" => (Named::RegexFindAll, &["input", "regex", "options"]),
        _ => return Ok(None),
    };
    let args = match op {
        Named::Trim(_) => {
            let a = p.named_args(
                arg,
                fields,
                || {
                    MongoError::location(
                        50696,
                        format!(
                            "{name} only supports an object as an argument, found {}",
                            util::type_name(arg)
                        ),
                    )
                },
                |k| MongoError::location(50694, format!("{name} found an unknown argument: {k}")),
            )?;
            if a[0].is_none() {
                return Err(MongoError::location(
                    50695,
                    format!("{name} requires an 'input' field"),
                ));
            }
            a
        }
        Named::ReplaceOne | Named::ReplaceAll => {
            let a = p.named_args(
                arg,
                fields,
                || {
                    MongoError::location(
                        51751,
                        format!(
                            "{name} requires an object as an argument, found: {}",
                            util::type_name(arg)
                        ),
                    )
                },
                |k| MongoError::location(51750, format!("{name} found an unknown argument: {k}")),
            )?;
            for (i, (f, code)) in [("input", 51749), ("find", 51748), ("replacement", 51747)]
                .iter()
                .enumerate()
            {
                if a[i].is_none() {
                    return Err(MongoError::location(
                        *code,
                        format!("{name} requires '{f}' to be specified"),
                    ));
                }
            }
            a
        }
        _ => {
            let a = p.named_args(
                arg,
                fields,
                || {
                    MongoError::location(
                        51103,
                        format!(
                            "{name} expects an object of named arguments but found: {}",
                            util::type_code(arg)
                        ),
                    )
                },
                |k| MongoError::location(31024, format!("{name} found an unknown argument: {k}")),
            )?;
            if a[0].is_none() {
                return Err(MongoError::location(
                    31022,
                    format!("{name} requires 'input' parameter"),
                ));
            }
            if a[1].is_none() {
                return Err(MongoError::location(
                    31023,
                    format!("{name} requires 'regex' parameter"),
                ));
            }
            a
        }
    };
    Ok(Some(Node::Named(op, args)))
}

/// `Value::coerceToString`.
pub(crate) fn coerce_to_string(v: &Option<Bson>) -> Result<String, MongoError> {
    Ok(match v {
        None | Some(Bson::Null) | Some(Bson::Undefined) => String::new(),
        Some(Bson::String(s)) | Some(Bson::Symbol(s)) | Some(Bson::JavaScriptCode(s)) => s.clone(),
        Some(Bson::Double(d)) => num::format_double_g(*d),
        Some(Bson::Int32(i)) => i.to_string(),
        Some(Bson::Int64(i)) => i.to_string(),
        Some(Bson::Decimal128(d)) => d.to_string(),
        Some(Bson::DateTime(d)) => super::date::iso_string(d.timestamp_millis())?,
        Some(Bson::Timestamp(t)) => format!("Timestamp({}, {})", t.time, t.increment),
        Some(other) => {
            return Err(MongoError::location(
                16007,
                format!(
                    "can't convert from BSON type {} to String",
                    util::type_name(other)
                ),
            ))
        }
    })
}

fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

fn cp_len(b: u8) -> usize {
    if b & 0x80 == 0 {
        1
    } else if b & 0xE0 == 0xC0 {
        2
    } else if b & 0xF0 == 0xE0 {
        3
    } else {
        4
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
    let n = v.as_ref().map(to_i64).unwrap_or(0);
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

pub(super) fn eval(
    cx: &mut Ctx<'_>,
    op: Op,
    args: &[Node],
) -> Result<Option<Option<Bson>>, MongoError> {
    let r = match op {
        Op::Concat => {
            let mut out = String::new();
            for a in args {
                let v = cx.eval(a)?;
                match v {
                    Some(Bson::String(s)) => out.push_str(&s),
                    ref n if nullish(n) => return Ok(Some(Some(Bson::Null))),
                    other => {
                        return Err(MongoError::location(
                            16702,
                            format!(
                                "$concat only supports strings, not {}",
                                type_name_of(&other)
                            ),
                        ))
                    }
                }
            }
            Some(Bson::String(out))
        }
        Op::SubstrBytes => {
            let v = cx.eval_all(args)?;
            substr_bytes(&v)?
        }
        Op::SubstrCP => {
            let v = cx.eval_all(args)?;
            substr_cp(&v)?
        }
        Op::StrLenBytes | Op::StrLenCP => {
            let v = cx.eval(&args[0])?;
            match &v {
                Some(Bson::String(s)) => Some(Bson::Int32(if op == Op::StrLenBytes {
                    s.len() as i32
                } else {
                    s.chars().count() as i32
                })),
                _ => {
                    let (code, name) = if op == Op::StrLenBytes {
                        (34473, "$strLenBytes")
                    } else {
                        (34471, "$strLenCP")
                    };
                    return Err(MongoError::location(
                        code,
                        format!(
                            "{name} requires a string argument, found: {}",
                            type_name_of(&v)
                        ),
                    ));
                }
            }
        }
        Op::ToLower | Op::ToUpper => {
            let s = coerce_to_string(&cx.eval(&args[0])?)?;
            Some(Bson::String(if op == Op::ToLower {
                s.to_ascii_lowercase()
            } else {
                s.to_ascii_uppercase()
            }))
        }
        Op::Strcasecmp => {
            let a = coerce_to_string(&cx.eval(&args[0])?)?.to_ascii_uppercase();
            let b = coerce_to_string(&cx.eval(&args[1])?)?.to_ascii_uppercase();
            Some(Bson::Int32(match a.as_bytes().cmp(b.as_bytes()) {
                std::cmp::Ordering::Less => -1,
                std::cmp::Ordering::Equal => 0,
                std::cmp::Ordering::Greater => 1,
            }))
        }
        Op::Split => {
            let v = cx.eval_all(args)?;
            if nullish(&v[0]) || nullish(&v[1]) {
                return Ok(Some(Some(Bson::Null)));
            }
            let Some(Bson::String(input)) = &v[0] else {
                return Err(MongoError::location(
                    40085,
                    format!(
                        "$split requires an expression that evaluates to a string as a first argument, found: {}",
                        type_name_of(&v[0])
                    ),
                ));
            };
            let Some(Bson::String(sep)) = &v[1] else {
                return Err(MongoError::location(
                    40086,
                    format!(
                        "$split requires an expression that evaluates to a string as a second argument, found: {}",
                        type_name_of(&v[1])
                    ),
                ));
            };
            if sep.is_empty() {
                return Err(MongoError::location(
                    40087,
                    "$split requires a non-empty separator",
                ));
            }
            Some(Bson::Array(
                input
                    .split(sep.as_str())
                    .map(|p| Bson::String(p.to_owned()))
                    .collect(),
            ))
        }
        Op::IndexOfBytes | Op::IndexOfCP => index_of(cx, op, args)?,
        _ => return Ok(None),
    };
    Ok(Some(r))
}

fn substr_bytes(v: &[Option<Bson>]) -> R {
    let s = coerce_to_string(&v[0])?;
    let name = "$substrBytes";
    let num_or = |x: &Option<Bson>, code: i32, what: &str| -> Result<i64, MongoError> {
        match x {
            Some(n) if num::is_numeric(n) => Ok(to_i64(n)),
            _ => Err(MongoError::location(
                code,
                format!(
                    "{name}:  {what} must be a numeric type (is BSON type {})",
                    type_name_of(x)
                ),
            )),
        }
    };
    let lower = num_or(&v[1], 16034, "starting index")?;
    let length = num_or(&v[2], 16035, "length")?;
    if lower < 0 {
        return Err(MongoError::location(
            50752,
            format!("{name}:  starting index must be non-negative (got: {lower})"),
        ));
    }
    let bytes = s.as_bytes();
    let lower = lower as usize;
    let length = if length < 0 {
        bytes.len()
    } else {
        length as usize
    };
    if lower < bytes.len() && is_continuation(bytes[lower]) {
        return Err(MongoError::location(
            28656,
            format!("{name}:  Invalid range, starting index is a UTF-8 continuation byte."),
        ));
    }
    let end = lower.saturating_add(length);
    if end < bytes.len() && is_continuation(bytes[end]) {
        return Err(MongoError::location(
            28657,
            format!("{name}:  Invalid range, ending index is in the middle of a UTF-8 character."),
        ));
    }
    if lower >= bytes.len() {
        return Ok(Some(Bson::String(String::new())));
    }
    let end = end.min(bytes.len());
    Ok(Some(Bson::String(s[lower..end].to_owned())))
}

fn substr_cp(v: &[Option<Bson>]) -> R {
    let s = coerce_to_string(&v[0])?;
    let name = "$substrCP";
    let check = |x: &Option<Bson>, c1: i32, c2: i32, what: &str| -> Result<i64, MongoError> {
        match x {
            Some(n) if num::is_numeric(n) => {
                if !num::is_integral32(n) {
                    return Err(MongoError::location(
                        c2,
                        format!(
                            "{name}: {what} cannot be represented as a 32-bit integral value: {}",
                            value_to_string(x)
                        ),
                    ));
                }
                Ok(to_i64(n))
            }
            _ => Err(MongoError::location(
                c1,
                format!(
                    "{name}: {what} must be a numeric type (is BSON type {})",
                    type_name_of(x)
                ),
            )),
        }
    };
    let start = check(&v[1], 34450, 34451, "starting index")?;
    let len = check(&v[2], 34452, 34453, "length")?;
    if len < 0 {
        return Err(MongoError::location(
            34454,
            format!("{name}: length must be a nonnegative integer."),
        ));
    }
    if start < 0 {
        return Err(MongoError::location(
            34455,
            format!("{name}: the starting index must be nonnegative integer."),
        ));
    }
    Ok(Some(Bson::String(
        s.chars().skip(start as usize).take(len as usize).collect(),
    )))
}

fn index_of(cx: &mut Ctx<'_>, op: Op, args: &[Node]) -> R {
    let (name, c1, c2) = if op == Op::IndexOfBytes {
        ("$indexOfBytes", 40091, 40092)
    } else {
        ("$indexOfCP", 40093, 40094)
    };
    let sv = cx.eval(&args[0])?;
    if nullish(&sv) {
        return null();
    }
    let Some(Bson::String(input)) = &sv else {
        return Err(MongoError::location(
            c1,
            format!(
                "{name} requires a string as the first argument, found: {}",
                type_name_of(&sv)
            ),
        ));
    };
    let tv = cx.eval(&args[1])?;
    let Some(Bson::String(token)) = &tv else {
        return Err(MongoError::location(
            c2,
            format!(
                "{name} requires a string as the second argument, found: {}",
                type_name_of(&tv)
            ),
        ));
    };
    let start = match args.get(2) {
        Some(a) => index_arg(&cx.eval(a)?, name, "starting index")?,
        None => 0,
    };
    let end_arg = match args.get(3) {
        Some(a) => Some(index_arg(&cx.eval(a)?, name, "ending index")?),
        None => None,
    };
    if op == Op::IndexOfBytes {
        let end = end_arg.unwrap_or(input.len()).min(input.len());
        if start > input.len() || end < start {
            return Ok(Some(Bson::Int32(-1)));
        }
        let hay = &input.as_bytes()[..end];
        let tok = token.as_bytes();
        let pos = (start..=hay.len().saturating_sub(tok.len()))
            .find(|&i| i + tok.len() <= hay.len() && &hay[i..i + tok.len()] == tok);
        return Ok(Some(Bson::Int32(pos.map(|p| p as i32).unwrap_or(-1))));
    }
    let cps: Vec<usize> = input.char_indices().map(|(i, _)| i).collect();
    let len = cps.len();
    let end = end_arg.unwrap_or(len).min(len);
    if end < start {
        return Ok(Some(Bson::Int32(-1)));
    }
    if start == 0 && input.is_empty() && token.is_empty() {
        return Ok(Some(Bson::Int32(0)));
    }
    for (ci, &bi) in cps.iter().enumerate().take(end).skip(start) {
        if input.as_bytes()[bi..].starts_with(token.as_bytes()) {
            return Ok(Some(Bson::Int32(ci as i32)));
        }
    }
    Ok(Some(Bson::Int32(-1)))
}

/// mongod's default `$trim` characters.
const TRIM_DEFAULT: &[char] = &[
    '\0', ' ', '\t', '\n', '\u{0B}', '\u{0C}', '\r', '\u{A0}', '\u{1680}', '\u{2000}', '\u{2001}',
    '\u{2002}', '\u{2003}', '\u{2004}', '\u{2005}', '\u{2006}', '\u{2007}', '\u{2008}', '\u{2009}',
    '\u{200A}',
];

pub(super) fn eval_named(cx: &mut Ctx<'_>, op: Named, args: &[Option<Node>]) -> R {
    match op {
        Named::Trim(kind) => {
            let name = match kind {
                TrimKind::Both => "$trim",
                TrimKind::Left => "$ltrim",
                TrimKind::Right => "$rtrim",
            };
            let input = cx.eval_opt(&args[0])?;
            if nullish(&input) {
                return null();
            }
            let Some(Bson::String(s)) = &input else {
                return Err(MongoError::location(
                    50699,
                    format!(
                        "{name} requires its input to be a string, got {} (of type {}) instead.",
                        value_to_string(&input),
                        type_name_of(&input)
                    ),
                ));
            };
            let chars: Vec<char> = match &args[1] {
                None => TRIM_DEFAULT.to_vec(),
                Some(n) => {
                    let c = cx.eval(n)?;
                    if nullish(&c) {
                        return null();
                    }
                    match c {
                        Some(Bson::String(c)) => c.chars().collect(),
                        other => {
                            return Err(MongoError::location(
                                50700,
                                format!(
                                    "{name} requires 'chars' to be a string, got {} (of type {}) instead.",
                                    value_to_string(&other),
                                    type_name_of(&other)
                                ),
                            ))
                        }
                    }
                }
            };
            let t: &str = match kind {
                TrimKind::Both => s.trim_matches(chars.as_slice()),
                TrimKind::Left => s.trim_start_matches(chars.as_slice()),
                TrimKind::Right => s.trim_end_matches(chars.as_slice()),
            };
            Ok(Some(Bson::String(t.to_owned())))
        }
        Named::ReplaceOne | Named::ReplaceAll => {
            let name = if op == Named::ReplaceOne {
                "$replaceOne"
            } else {
                "$replaceAll"
            };
            let input = cx.eval_opt(&args[0])?;
            let find = cx.eval_opt(&args[1])?;
            let repl = cx.eval_opt(&args[2])?;
            for (v, what, code) in [
                (&input, "input", 51746),
                (&find, "find", 51745),
                (&repl, "replacement", 51744),
            ] {
                if !(nullish(v) || matches!(v, Some(Bson::String(_)))) {
                    return Err(MongoError::location(
                        code,
                        format!(
                            "{name} requires that '{what}' be a string, found: {}",
                            value_to_string(v)
                        ),
                    ));
                }
            }
            let (Some(Bson::String(i)), Some(Bson::String(f)), Some(Bson::String(r))) =
                (&input, &find, &repl)
            else {
                return null();
            };
            Ok(Some(Bson::String(if op == Named::ReplaceOne {
                i.replacen(f.as_str(), r, 1)
            } else if f.is_empty() {
                // Insert the replacement at every position (between bytes, as mongod).
                let mut out = String::new();
                for c in i.chars() {
                    out.push_str(r);
                    out.push(c);
                }
                out.push_str(r);
                out
            } else {
                i.replace(f.as_str(), r)
            })))
        }
        _ => regex_op(cx, op, args),
    }
}

fn regex_op(cx: &mut Ctx<'_>, op: Named, args: &[Option<Node>]) -> R {
    let name = match op {
        Named::RegexMatch => "$regexMatch",
        Named::RegexFind => "$regexFind",
        _ => "$regexFindAll",
    };
    let input = cx.eval_opt(&args[0])?;
    let regex = cx.eval_opt(&args[1])?;
    let options = match &args[2] {
        Some(n) => cx.eval(n)?,
        None => Some(Bson::Null),
    };
    if !(nullish(&input) || matches!(input, Some(Bson::String(_)))) {
        return Err(MongoError::location(
            51104,
            format!("{name} needs 'input' to be of type string"),
        ));
    }
    if !(nullish(&regex)
        || matches!(
            regex,
            Some(Bson::String(_)) | Some(Bson::RegularExpression(_))
        ))
    {
        return Err(MongoError::location(
            51105,
            format!("{name} needs 'regex' to be of type string or regex"),
        ));
    }
    if !(nullish(&options) || matches!(options, Some(Bson::String(_)))) {
        return Err(MongoError::location(
            51106,
            format!("{name} needs 'options' to be of type string"),
        ));
    }
    let mut opts = String::new();
    let pattern = match &regex {
        Some(Bson::RegularExpression(r)) => {
            if !nullish(&options) && !r.options.is_empty() {
                return Err(MongoError::location(
                    51107,
                    format!(
                        "{name}: found regex option(s) specified in both 'regex' and 'option' fields"
                    ),
                ));
            }
            opts = r.options.to_string();
            Some(r.pattern.to_string())
        }
        Some(Bson::String(s)) => Some(s.clone()),
        _ => None,
    };
    if let Some(Bson::String(o)) = &options {
        opts = o.clone();
    }
    if pattern.as_deref().is_some_and(|p| p.contains('\0')) {
        return Err(MongoError::location(
            51109,
            format!("{name}: regular expression cannot contain an embedded null byte"),
        ));
    }
    if opts.contains('\0') {
        return Err(MongoError::location(
            51110,
            format!("{name}: regular expression options cannot contain an embedded null byte"),
        ));
    }
    let compiled = match &pattern {
        Some(p) => Some(MongoRegex::new(p, &opts).map_err(|e| {
            if e.code == 51091 {
                MongoError::location(
                    51111,
                    format!(
                        "Invalid Regex in {name}: {}",
                        e.message
                            .trim_start_matches("Regular expression is invalid: ")
                    ),
                )
            } else {
                e
            }
        })?),
        None => None,
    };
    let (Some(Bson::String(text)), Some(re)) = (&input, compiled) else {
        return Ok(Some(match op {
            Named::RegexMatch => Bson::Boolean(false),
            Named::RegexFind => Bson::Null,
            _ => Bson::Array(Vec::new()),
        }));
    };
    let find_at = |start: usize| -> Option<(usize, usize, Vec<Bson>)> {
        let (s, e, groups) = re.captures_at(text, start)?;
        let groups = groups
            .into_iter()
            .map(|g| g.map_or(Bson::Null, Bson::String))
            .collect();
        Some((s, e, groups))
    };
    let to_doc = |s: usize, e: usize, groups: Vec<Bson>| {
        Bson::Document(doc! {
            "match": &text[s..e],
            "idx": text[..s].chars().count() as i32,
            "captures": groups,
        })
    };
    Ok(Some(match op {
        Named::RegexMatch => Bson::Boolean(re.is_match(text)),
        Named::RegexFind => match find_at(0) {
            Some((s, e, g)) => to_doc(s, e, g),
            None => Bson::Null,
        },
        _ => {
            let mut out = Vec::new();
            let mut pos = 0usize;
            loop {
                let Some((s, e, g)) = find_at(pos) else { break };
                out.push(to_doc(s, e, g));
                pos = if e == s {
                    match text.as_bytes().get(s) {
                        Some(b) => s + cp_len(*b),
                        None => break,
                    }
                } else {
                    e
                };
                if pos >= text.len() {
                    break;
                }
            }
            Bson::Array(out)
        }
    }))
}
