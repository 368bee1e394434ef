//! Typed access to command arguments, with mongod's IDL error messages
//! ("BSON field 'find.limit' is the wrong type 'string', expected types '[long, int, decimal, double]'").

use bson::{Bson, Document};
use eddy_codes::{ErrorCode, MongoError};

/// mongod's name of a BSON value's type, as it appears in IDL errors.
pub fn type_name(v: &Bson) -> &'static str {
    eddy_query::util::type_name(v)
}

/// 14 TypeMismatch for `command.field` holding `v` where `expected` is wanted
/// (`expected` is mongod's wording, e.g. "type 'bool'" or "types '[long, int, decimal, double]'").
pub fn wrong_type(command: &str, field: &str, v: &Bson, expected: &str) -> MongoError {
    MongoError::new(
        ErrorCode::TypeMismatch,
        format!(
            "BSON field '{command}.{field}' is the wrong type '{}', expected {expected}",
            type_name(v)
        ),
    )
}

/// 40414 for a required field that is absent.
pub fn missing(command: &str, field: &str) -> MongoError {
    MongoError::location(
        eddy_codes::location::MISSING_FIELD,
        format!("BSON field '{command}.{field}' is missing but a required field"),
    )
}

/// The truth value of any BSON value, as mongod's `trueValue()`.
pub fn truthy(v: &Bson) -> bool {
    eddy_query::util::true_value(v)
}

/// A number with an exact integral value, as mongod's `safeNumberLong` accepts it.
pub fn as_integer(v: &Bson) -> Option<i64> {
    match v {
        Bson::Int32(n) => Some(i64::from(*n)),
        Bson::Int64(n) => Some(*n),
        Bson::Double(d) if d.is_finite() && d.fract() == 0.0 => Some(*d as i64),
        Bson::Decimal128(d) => d
            .to_string()
            .parse::<f64>()
            .ok()
            .filter(|f| f.fract() == 0.0)
            .map(|f| f as i64),
        _ => None,
    }
}

/// An optional boolean field. mongod's IDL `bool` fields also take numbers (their truth value).
pub fn opt_bool(cmd: &Document, command: &str, field: &str) -> Result<Option<bool>, MongoError> {
    match cmd.get(field) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::Boolean(b)) => Ok(Some(*b)),
        Some(v @ (Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_))) => {
            Ok(Some(truthy(v)))
        }
        Some(v) => Err(wrong_type(command, field, v, "type 'bool'")),
    }
}

/// An optional integer field (int, long, or a double/decimal with an integral value).
pub fn opt_integer(cmd: &Document, command: &str, field: &str) -> Result<Option<i64>, MongoError> {
    match cmd.get(field) {
        None | Some(Bson::Null) => Ok(None),
        Some(v) => match as_integer(v) {
            Some(n) => Ok(Some(n)),
            None if matches!(v, Bson::Double(_) | Bson::Decimal128(_)) => Err(MongoError::bad_value(format!(
                "BSON field '{command}.{field}' value must be an integral number, actual value '{}'",
                eddy_query::util::bson_to_string(v)
            ))),
            None => Err(wrong_type(command, field, v, "types '[long, int, decimal, double]'")),
        },
    }
}

/// An optional sub-document field.
pub fn opt_doc<'a>(
    cmd: &'a Document,
    command: &str,
    field: &str,
) -> Result<Option<&'a Document>, MongoError> {
    match cmd.get(field) {
        None => Ok(None),
        Some(Bson::Document(d)) => Ok(Some(d)),
        Some(v) => Err(wrong_type(command, field, v, "type 'object'")),
    }
}

/// An optional string field.
pub fn opt_str<'a>(
    cmd: &'a Document,
    command: &str,
    field: &str,
) -> Result<Option<&'a str>, MongoError> {
    match cmd.get(field) {
        None => Ok(None),
        Some(Bson::String(s)) => Ok(Some(s)),
        Some(v) => Err(wrong_type(command, field, v, "type 'string'")),
    }
}

/// An optional array field.
pub fn opt_array<'a>(
    cmd: &'a Document,
    command: &str,
    field: &str,
) -> Result<Option<&'a Vec<Bson>>, MongoError> {
    match cmd.get(field) {
        None => Ok(None),
        Some(Bson::Array(a)) => Ok(Some(a)),
        Some(v) => Err(wrong_type(command, field, v, "type 'array'")),
    }
}

/// `maxTimeMS`: a non-negative integer of at most i32::MAX milliseconds (0 = none).
pub fn max_time_ms(cmd: &Document) -> Result<Option<u64>, MongoError> {
    let Some(v) = cmd.get("maxTimeMS") else {
        return Ok(None);
    };
    let n = as_integer(v).ok_or_else(|| {
        MongoError::bad_value(format!("maxTimeMS must be a number, not {}", type_name(v)))
    })?;
    if !(0..=i64::from(i32::MAX)).contains(&n) {
        return Err(MongoError::bad_value(format!(
            "{n} value for maxTimeMS is out of range [0, {}]",
            i32::MAX
        )));
    }
    Ok((n > 0).then_some(n as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn integers_follow_safe_number_long() {
        let cmd = doc! {"a": 3, "b": 4_i64, "c": 5.0, "d": 5.5, "e": "x"};
        assert_eq!(opt_integer(&cmd, "find", "a").expect("int"), Some(3));
        assert_eq!(opt_integer(&cmd, "find", "b").expect("long"), Some(4));
        assert_eq!(opt_integer(&cmd, "find", "c").expect("double"), Some(5));
        assert_eq!(
            opt_integer(&cmd, "find", "d").expect_err("fraction").code,
            2
        );
        let e = opt_integer(&cmd, "find", "e").expect_err("string");
        assert_eq!(e.code, 14);
        assert_eq!(
            e.message,
            "BSON field 'find.e' is the wrong type 'string', expected types '[long, int, decimal, double]'"
        );
        assert_eq!(opt_integer(&cmd, "find", "zz").expect("absent"), None);
    }

    #[test]
    fn max_time_bounds() {
        assert_eq!(max_time_ms(&doc! {"maxTimeMS": 0}).expect("zero"), None);
        assert_eq!(
            max_time_ms(&doc! {"maxTimeMS": 50}).expect("fifty"),
            Some(50)
        );
        assert_eq!(
            max_time_ms(&doc! {"maxTimeMS": -1})
                .expect_err("negative")
                .code,
            2
        );
    }
}
