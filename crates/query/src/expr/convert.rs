//! `$convert` and its shortcuts (`$toBool $toInt $toLong $toDouble $toDecimal $toString
//! $toObjectId $toDate`), following mongod's conversion table: a pair missing from the
//! table fails with 241 ConversionFailure, which `onError` catches.

use std::str::FromStr;

use bson::{oid::ObjectId, Bson};
use eddy_codes::{ErrorCode, MongoError};

use super::num::{self, to_dec, Dec, Rounding};
use super::{null, nullish, Ctx, Named, Node, Parser};
use crate::util;

type R = Result<Option<Bson>, MongoError>;

/// A conversion target: a BSON type code (0 = "missing", which nothing converts to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Target(i32);

impl Target {
    pub(crate) fn from_alias(name: &str) -> Option<Target> {
        Some(Target(match name {
            "$toDouble" => 1,
            "$toString" => 2,
            "$toObjectId" => 7,
            "$toBool" => 8,
            "$toDate" => 9,
            "$toInt" => 16,
            "$toLong" => 18,
            "$toDecimal" => 19,
            _ => return None,
        }))
    }

    fn name(self) -> &'static str {
        if self.0 == 0 {
            "missing"
        } else {
            util::type_alias(self.0).unwrap_or("unknown")
        }
    }
}

pub(super) fn parse_named(
    p: &mut Parser,
    name: &str,
    arg: &Bson,
) -> Result<Option<Node>, MongoError> {
    if name != "$convert" {
        return Ok(None);
    }
    let a = p.named_args(
        arg,
        &["input", "to", "onError", "onNull"],
        || {
            MongoError::failed_to_parse(format!(
                "$convert expects an object of named arguments but found: {}",
                util::type_name(arg)
            ))
        },
        |k| MongoError::failed_to_parse(format!("$convert found an unknown argument: {k}")),
    )?;
    if a[0].is_none() {
        return Err(MongoError::failed_to_parse(
            "Missing 'input' parameter to $convert",
        ));
    }
    if a[1].is_none() {
        return Err(MongoError::failed_to_parse(
            "Missing 'to' parameter to $convert",
        ));
    }
    Ok(Some(Node::Named(Named::Convert, a)))
}

fn target_of(v: &Bson) -> Result<Target, MongoError> {
    match v {
        Bson::String(s) if s == "missing" => Ok(Target(0)),
        Bson::String(s) => util::type_code_of_alias(s)
            .map(Target)
            .ok_or_else(|| MongoError::bad_value(format!("Unknown type name: {s}"))),
        n if num::is_numeric(n) => {
            if !num::is_integral32(n) {
                return Err(MongoError::failed_to_parse(
                    "In $convert, numeric 'to' argument is not an integer",
                ));
            }
            let code = num::to_i64(n) as i32;
            if util::type_alias(code).is_none() {
                return Err(MongoError::failed_to_parse(format!(
                    "In $convert, numeric value for 'to' does not correspond to a BSON type: {code}"
                )));
            }
            Ok(Target(code))
        }
        other => Err(MongoError::failed_to_parse(format!(
            "$convert's 'to' argument must be a string or number, but is {}",
            util::type_name(other)
        ))),
    }
}

pub(super) fn eval_convert(cx: &mut Ctx<'_>, args: &[Option<Node>]) -> R {
    let to = cx.eval_opt(&args[1])?;
    let input = cx.eval_opt(&args[0])?;
    let target = match &to {
        Some(t) if !nullish(&to) => Some(target_of(t)?),
        _ => None,
    };
    if nullish(&input) {
        return match &args[3] {
            Some(n) => cx.eval(n),
            None => null(),
        };
    }
    let Some(target) = target else {
        return null();
    };
    match convert(input.as_ref().expect("not nullish"), target) {
        Err(e) if e.is(ErrorCode::ConversionFailure) && args[2].is_some() => cx.eval_opt(&args[2]),
        r => r.map(Some),
    }
}

/// The shortcut operators: `$convert` without `onError`/`onNull`.
pub(super) fn convert_value(v: Option<Bson>, t: Target) -> R {
    if nullish(&v) {
        return null();
    }
    convert(v.as_ref().expect("not nullish"), t).map(Some)
}

fn fail(msg: impl Into<String>) -> MongoError {
    MongoError::new(ErrorCode::ConversionFailure, msg)
}

fn overflow(v: impl std::fmt::Display) -> MongoError {
    fail(format!(
        "Conversion would overflow target type in $convert with no onError value: {v}"
    ))
}

fn double_to_long(d: f64, int: bool) -> Result<i64, MongoError> {
    if d.is_nan() {
        return Err(fail(
            "Attempt to convert NaN value to integer type in $convert with no onError value",
        ));
    }
    if d.is_infinite() {
        return Err(fail(
            "Attempt to convert infinity value to integer type in $convert with no onError value",
        ));
    }
    let ok = if int {
        d >= f64::from(i32::MIN) && d <= f64::from(i32::MAX)
    } else {
        (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&d)
    };
    if !ok {
        return Err(overflow(num::format_double_g(d)));
    }
    Ok(d.trunc() as i64)
}

fn decimal_to_long(v: &Bson, int: bool) -> Result<i64, MongoError> {
    let d = to_dec(v);
    match d {
        Dec::NaN => Err(fail(
            "Attempt to convert NaN value to integer type in $convert with no onError value",
        )),
        Dec::Inf(_) => Err(fail(
            "Attempt to convert infinity value to integer type in $convert with no onError value",
        )),
        _ => {
            let n = d.clone().quantize(0, Rounding::Trunc).to_i64_checked();
            match n {
                Some(n) if !int || i32::try_from(n).is_ok() => Ok(n),
                _ => Err(overflow(d.to_decimal128())),
            }
        }
    }
}

fn parse_number(s: &str, target: i32) -> Result<Bson, MongoError> {
    if s.starts_with("0x") {
        return Err(fail(format!(
            "Illegal hexadecimal input in $convert with no onError value: {s}"
        )));
    }
    let bad = |why: &str| {
        fail(format!(
            "Failed to parse number '{s}' in $convert with no onError value: {why}"
        ))
    };
    if s.is_empty() {
        return Err(bad("No digits"));
    }
    match target {
        16 | 18 => {
            let n: i64 = s
                .parse()
                .map_err(|_| bad("Did not consume whole string."))?;
            if target == 16 {
                i32::try_from(n)
                    .map(Bson::Int32)
                    .map_err(|_| bad("Out of range"))
            } else {
                Ok(Bson::Int64(n))
            }
        }
        1 => {
            let lower = s.to_ascii_lowercase();
            let t = lower.trim_start_matches(['+', '-']);
            let special = t == "inf" || t == "infinity" || t == "nan";
            let plain = s
                .bytes()
                .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b));
            let v = if special || plain {
                s.parse::<f64>().ok()
            } else {
                None
            };
            v.map(Bson::Double)
                .ok_or_else(|| bad("Did not consume whole string."))
        }
        _ => Dec::parse(s)
            .map(|d| d.to_bson())
            .ok_or_else(|| bad("Failed to parse string to decimal")),
    }
}

fn unsupported(v: &Bson, t: Target) -> MongoError {
    fail(format!(
        "Unsupported conversion from {} to {} in $convert with no onError value",
        util::type_name(v),
        t.name()
    ))
}

/// `ExpressionConvert::performConversion`.
fn convert(v: &Bson, t: Target) -> Result<Bson, MongoError> {
    let date = |ms: i64| Bson::DateTime(bson::DateTime::from_millis(ms));
    Ok(match (v, t.0) {
        // to bool
        (Bson::Double(_) | Bson::Int32(_) | Bson::Int64(_) | Bson::Decimal128(_), 8)
        | (Bson::DateTime(_), 8)
        | (Bson::Boolean(_), 8) => Bson::Boolean(util::true_value(v)),
        (
            Bson::String(_)
            | Bson::ObjectId(_)
            | Bson::Document(_)
            | Bson::Array(_)
            | Bson::Binary(_)
            | Bson::RegularExpression(_)
            | Bson::DbPointer(_)
            | Bson::JavaScriptCode(_)
            | Bson::Symbol(_)
            | Bson::JavaScriptCodeWithScope(_)
            | Bson::Timestamp(_)
            | Bson::MinKey
            | Bson::MaxKey,
            8,
        ) => Bson::Boolean(true),
        // from double
        (Bson::Double(_), 1) => v.clone(),
        (Bson::Double(d), 2) => Bson::String(if d.is_infinite() {
            if *d < 0.0 { "-Infinity" } else { "Infinity" }.to_owned()
        } else if d.is_nan() {
            "NaN".to_owned()
        } else if *d == 0.0 && d.is_sign_negative() {
            "-0".to_owned()
        } else {
            num::format_double_g(*d)
        }),
        (Bson::Double(d), 9) => date(double_to_long(*d, false)?),
        (Bson::Double(d), 16) => Bson::Int32(double_to_long(*d, true)? as i32),
        (Bson::Double(d), 18) => Bson::Int64(double_to_long(*d, false)?),
        (Bson::Double(_), 19) => to_dec(v).to_bson(),
        // from string
        (Bson::String(s), 1 | 16 | 18 | 19) => parse_number(s, t.0)?,
        (Bson::String(_), 2) => v.clone(),
        (Bson::String(s), 7) => Bson::ObjectId(ObjectId::from_str(s).map_err(|_| {
            let why = if s.len() != 24 {
                format!(
                    "Invalid string length for parsing to OID, expected 24 but found {}",
                    s.len()
                )
            } else {
                format!("Invalid character found in hex string: {s}")
            };
            fail(format!(
                "Failed to parse objectId '{s}' in $convert with no onError value: {why}"
            ))
        })?),
        (Bson::String(s), 9) => date(super::date::parse_date_string(
            s,
            super::date::Tz::utc_zone(),
            None,
        )?),
        // from objectId
        (Bson::ObjectId(o), 2) => Bson::String(o.to_hex()),
        (Bson::ObjectId(_), 7) => v.clone(),
        (Bson::ObjectId(o), 9) => date(o.timestamp().timestamp_millis()),
        // from bool
        (Bson::Boolean(b), 1) => Bson::Double(if *b { 1.0 } else { 0.0 }),
        (Bson::Boolean(b), 2) => Bson::String(b.to_string()),
        (Bson::Boolean(b), 16) => Bson::Int32(i32::from(*b)),
        (Bson::Boolean(b), 18) => Bson::Int64(i64::from(*b)),
        (Bson::Boolean(b), 19) => Dec::from_i64(i64::from(*b)).to_bson(),
        // from date
        (Bson::DateTime(d), 1) => Bson::Double(d.timestamp_millis() as f64),
        (Bson::DateTime(d), 2) => Bson::String(super::date::iso_string(d.timestamp_millis())?),
        (Bson::DateTime(_), 9) => v.clone(),
        (Bson::DateTime(d), 18) => Bson::Int64(d.timestamp_millis()),
        (Bson::DateTime(d), 19) => Dec::from_i64(d.timestamp_millis()).to_bson(),
        // from timestamp
        (Bson::Timestamp(ts), 9) => date(i64::from(ts.time) * 1000),
        // from int
        (Bson::Int32(i), 1) => Bson::Double(f64::from(*i)),
        (Bson::Int32(i), 2) => Bson::String(i.to_string()),
        (Bson::Int32(_), 16) => v.clone(),
        (Bson::Int32(i), 18) => Bson::Int64(i64::from(*i)),
        (Bson::Int32(_), 19) => to_dec(v).to_bson(),
        // from long
        (Bson::Int64(i), 1) => Bson::Double(*i as f64),
        (Bson::Int64(i), 2) => Bson::String(i.to_string()),
        (Bson::Int64(i), 9) => date(*i),
        (Bson::Int64(i), 16) => Bson::Int32(i32::try_from(*i).map_err(|_| overflow(""))?),
        (Bson::Int64(_), 18) => v.clone(),
        (Bson::Int64(_), 19) => to_dec(v).to_bson(),
        // from decimal
        (Bson::Decimal128(d), 1) => {
            let x = to_dec(v).to_f64();
            if x.is_infinite() && !matches!(to_dec(v), Dec::Inf(_)) {
                return Err(overflow(d));
            }
            Bson::Double(x)
        }
        (Bson::Decimal128(d), 2) => Bson::String(d.to_string()),
        (Bson::Decimal128(_), 9) => date(decimal_to_long(v, false)?),
        (Bson::Decimal128(_), 16) => Bson::Int32(decimal_to_long(v, true)? as i32),
        (Bson::Decimal128(_), 18) => Bson::Int64(decimal_to_long(v, false)?),
        (Bson::Decimal128(_), 19) => v.clone(),
        _ => return Err(unsupported(v, t)),
    })
}
