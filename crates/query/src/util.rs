//! Small helpers shared by the query modules: mongod-style value printing for error
//! messages, integer coercions with mongod's messages, and type names.

use bson::Bson;
use eddy_codes::{ErrorCode, MongoError};

/// A pseudo-random 64-bit number for `$rand` and `$sample` (xorshift64* on a
/// per-thread state seeded from the process's hash keys): statistically fine for
/// sampling, not for cryptography, as mongod's own `PseudoRandom`.
pub fn random_u64() -> u64 {
    use std::cell::Cell;
    use std::hash::{BuildHasher, Hasher};
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            h.finish() | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

/// A pseudo-random double uniformly distributed in [0, 1) (53 random mantissa bits).
pub fn random_unit() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A value printed as mongod's `BSONElement::toString` prints it in error messages
/// (`{ a: 1, b: "x" }`, `[ 1, 2 ]`, `1.5`, `true`).
pub fn bson_to_string(v: &Bson) -> String {
    let mut s = String::new();
    write_bson(v, &mut s);
    s
}

fn write_bson(v: &Bson, out: &mut String) {
    use std::fmt::Write;
    match v {
        Bson::Double(d) => {
            if d.is_nan() {
                out.push_str("nan.0")
            } else if d.is_infinite() {
                out.push_str(if *d > 0.0 { "inf.0" } else { "-inf.0" })
            } else if d.fract() == 0.0 && d.abs() < 1e16 {
                let _ = write!(out, "{d:.1}");
            } else {
                let _ = write!(out, "{d}");
            }
        }
        Bson::String(s) => {
            let _ = write!(out, "\"{s}\"");
        }
        Bson::Int32(i) => {
            let _ = write!(out, "{i}");
        }
        Bson::Int64(i) => {
            let _ = write!(out, "{i}");
        }
        Bson::Decimal128(d) => {
            let _ = write!(out, "NumberDecimal(\"{d}\")");
        }
        Bson::Boolean(b) => {
            let _ = write!(out, "{b}");
        }
        Bson::Null => out.push_str("null"),
        Bson::Undefined => out.push_str("undefined"),
        Bson::MinKey => out.push_str("MinKey"),
        Bson::MaxKey => out.push_str("MaxKey"),
        Bson::Document(d) => {
            if d.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push_str("{ ");
            for (i, (k, v)) in d.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push_str(": ");
                write_bson(v, out);
            }
            out.push_str(" }");
        }
        Bson::Array(a) => {
            if a.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push_str("[ ");
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_bson(v, out);
            }
            out.push_str(" ]");
        }
        Bson::ObjectId(o) => {
            let _ = write!(out, "ObjectId('{}')", o.to_hex());
        }
        Bson::DateTime(d) => {
            let _ = write!(out, "new Date({})", d.timestamp_millis());
        }
        Bson::RegularExpression(r) => {
            let _ = write!(out, "/{}/{}", r.pattern, r.options);
        }
        Bson::Timestamp(t) => {
            let _ = write!(out, "Timestamp({}, {})", t.time, t.increment);
        }
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

/// Sets `key` to a computed value, or removes it when the expression gave nothing
/// (`$$REMOVE`, a missing path), as `$addFields` and computed projections do.
pub fn set_or_remove(doc: &mut bson::Document, key: &str, value: Option<Bson>) {
    match value {
        Some(v) => {
            doc.insert(key, v);
        }
        None => {
            doc.remove(key);
        }
    }
}

/// `name: value` as mongod prints an element.
pub fn elem_to_string(name: &str, v: &Bson) -> String {
    format!("{name}: {}", bson_to_string(v))
}

/// mongod's `BSONElement::parseIntegerElementToLong` (errors are FailedToParse).
pub fn parse_integer_to_long(name: &str, v: &Bson) -> Result<i64, MongoError> {
    let fail = |m: &str| {
        MongoError::new(
            ErrorCode::FailedToParse,
            format!("{m}{}", elem_to_string(name, v)),
        )
    };
    match v {
        Bson::Int32(i) => Ok(i64::from(*i)),
        Bson::Int64(i) => Ok(*i),
        Bson::Double(d) => {
            if d.is_nan() {
                return Err(fail("Expected an integer, but found NaN in: "));
            }
            if !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(d) {
                return Err(fail("Cannot represent as a 64-bit integer: "));
            }
            if d.fract() != 0.0 {
                return Err(fail("Expected an integer: "));
            }
            Ok(*d as i64)
        }
        Bson::Decimal128(_) => {
            let d = number_as_f64(v).unwrap_or(f64::NAN);
            if d.is_nan() {
                return Err(fail("Expected an integer, but found NaN in: "));
            }
            if !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&d) {
                return Err(fail("Cannot represent as a 64-bit integer: "));
            }
            if d.fract() != 0.0 {
                return Err(fail("Expected an integer: "));
            }
            Ok(d as i64)
        }
        _ => Err(fail("Expected a number in: ")),
    }
}

/// `parseIntegerElementToNonNegativeLong`.
pub fn parse_non_negative_long(name: &str, v: &Bson) -> Result<i64, MongoError> {
    let n = parse_integer_to_long(name, v)?;
    if n < 0 {
        return Err(MongoError::new(
            ErrorCode::FailedToParse,
            format!("Expected a positive number in: {}", elem_to_string(name, v)),
        ));
    }
    Ok(n)
}

/// `parseIntegerElementToInt`.
pub fn parse_integer_to_int(name: &str, v: &Bson) -> Result<i32, MongoError> {
    let n = parse_integer_to_long(name, v)?;
    i32::try_from(n).map_err(|_| {
        MongoError::new(
            ErrorCode::FailedToParse,
            format!(
                "Cannot represent as a 32-bit integer: {}",
                elem_to_string(name, v)
            ),
        )
    })
}

/// A numeric value as f64 (Decimal128 through its string form).
pub fn number_as_f64(v: &Bson) -> Option<f64> {
    match v {
        Bson::Int32(i) => Some(f64::from(*i)),
        Bson::Int64(i) => Some(*i as f64),
        Bson::Double(d) => Some(*d),
        Bson::Decimal128(d) => {
            let s = d.to_string();
            match s.as_str() {
                "NaN" | "-NaN" => Some(f64::NAN),
                "Infinity" => Some(f64::INFINITY),
                "-Infinity" => Some(f64::NEG_INFINITY),
                _ => s.parse::<f64>().ok(),
            }
        }
        _ => None,
    }
}

/// `BSONElement::trueValue`: false for false, 0, null, undefined, EOO; true otherwise.
pub fn true_value(v: &Bson) -> bool {
    match v {
        Bson::Boolean(b) => *b,
        Bson::Int32(i) => *i != 0,
        Bson::Int64(i) => *i != 0,
        Bson::Double(d) => *d != 0.0,
        Bson::Decimal128(_) => number_as_f64(v).is_some_and(|d| d != 0.0),
        Bson::Null | Bson::Undefined => false,
        _ => true,
    }
}

/// The BSON type number of a value (`$type` codes).
pub fn type_code(v: &Bson) -> i32 {
    match v {
        Bson::Double(_) => 1,
        Bson::String(_) => 2,
        Bson::Document(_) => 3,
        Bson::Array(_) => 4,
        Bson::Binary(_) => 5,
        Bson::Undefined => 6,
        Bson::ObjectId(_) => 7,
        Bson::Boolean(_) => 8,
        Bson::DateTime(_) => 9,
        Bson::Null => 10,
        Bson::RegularExpression(_) => 11,
        Bson::DbPointer(_) => 12,
        Bson::JavaScriptCode(_) => 13,
        Bson::Symbol(_) => 14,
        Bson::JavaScriptCodeWithScope(_) => 15,
        Bson::Int32(_) => 16,
        Bson::Timestamp(_) => 17,
        Bson::Int64(_) => 18,
        Bson::Decimal128(_) => 19,
        Bson::MinKey => -1,
        Bson::MaxKey => 127,
    }
}

/// The `$type` alias of a type code (also the names `$type` aggregation returns).
pub fn type_alias(code: i32) -> Option<&'static str> {
    Some(match code {
        1 => "double",
        2 => "string",
        3 => "object",
        4 => "array",
        5 => "binData",
        6 => "undefined",
        7 => "objectId",
        8 => "bool",
        9 => "date",
        10 => "null",
        11 => "regex",
        12 => "dbPointer",
        13 => "javascript",
        14 => "symbol",
        15 => "javascriptWithScope",
        16 => "int",
        17 => "timestamp",
        18 => "long",
        19 => "decimal",
        -1 => "minKey",
        127 => "maxKey",
        _ => return None,
    })
}

/// The type code of a `$type` alias.
pub fn type_code_of_alias(alias: &str) -> Option<i32> {
    [
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, -1, 127,
    ]
    .into_iter()
    .find(|c| type_alias(*c) == Some(alias))
}

/// The type name mongod prints in messages (`typeName(BSONType)`).
pub fn type_name(v: &Bson) -> &'static str {
    type_alias(type_code(v)).unwrap_or("unknown")
}
