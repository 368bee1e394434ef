//! Storage validation of field names, as mongod 7.0 (`update/storage_validation.cpp`,
//! `BSONObj::storageValidEmbedded`).
//!
//! Since MongoDB 5.0 field names may start with `$` or contain `.` almost anywhere.
//! What is still refused, and where:
//!
//! * an `_id` that is an object may hold no `$`-prefixed field at any depth, except a
//!   well-formed DBRef (`$ref` string, `$id`, optional `$db` string, in that order):
//!   52 DollarPrefixedFieldName "_id fields may not contain '$'-prefixed fields: ...".
//!   Every write checks this (inserts, upserts, replacements, pipeline updates);
//! * a top-level `$`-prefixed field written by a replacement or by an update operator
//!   on an existing document (52, with mongod's "Consider using an aggregation
//!   pipeline with $replaceWith" hint), unless it is part of a well-formed DBRef
//!   (then the DBRef rules apply, 55 InvalidDBRef). Inserts, upserts that insert, and
//!   pipeline updates allow top-level `$` fields; nested ones are always allowed.
//!
//! The callers decide which rule applies ([`crate::update`] for updates, the engine's
//! insert path for `_id`); this module only states the rules.

use bson::{Bson, Document};
use eddy_codes::{ErrorCode, MongoError};

use crate::util::type_name;

/// mongod's check of an `_id` value that is an object: no `$`-prefixed field at any
/// depth (arrays included), except a DBRef's leading `$ref`/`$id`/`$db`.
pub fn validate_id(id: &Bson) -> Result<(), MongoError> {
    let Bson::Document(d) = id else {
        return Ok(());
    };
    match first_invalid_embedded(d) {
        None => Ok(()),
        Some(name) => Err(MongoError::new(
            ErrorCode::DollarPrefixedFieldName,
            format!(
                "_id fields may not contain '$'-prefixed fields: {name} is not valid for storage."
            ),
        )),
    }
}

/// `BSONObj::storageValidEmbedded`: the first `$`-prefixed name that is not part of a
/// DBRef opening the object, searching depth-first through objects and arrays.
fn first_invalid_embedded(d: &Document) -> Option<String> {
    let mut it = d.iter().peekable();
    let mut first = true;
    while let Some((name, value)) = it.next() {
        if name.starts_with('$') {
            let dbref = first
                && name == "$ref"
                && matches!(value, Bson::String(_))
                && it.peek().is_some_and(|(n, _)| n.as_str() == "$id");
            if !dbref {
                return Some(name.clone());
            }
            // mongod steps over `$id` without looking inside it, then allows an
            // optional `$db` string; any other `$` name after them is refused.
            it.next();
            first = false;
            match it.next() {
                None => return None,
                Some((n, Bson::String(_))) if n == "$db" => continue,
                Some((n, _)) if n.starts_with('$') => return Some(n.clone()),
                Some((_, v)) => {
                    if let Some(bad) = first_invalid_in_value(v) {
                        return Some(bad);
                    }
                    continue;
                }
            }
        }
        if let Some(bad) = first_invalid_in_value(value) {
            return Some(bad);
        }
        first = false;
    }
    None
}

fn first_invalid_in_value(v: &Bson) -> Option<String> {
    match v {
        Bson::Document(d) => first_invalid_embedded(d),
        // Array elements are named "0", "1", ...: only their contents can be invalid.
        Bson::Array(a) => a.iter().find_map(first_invalid_in_value),
        Bson::JavaScriptCodeWithScope(c) => first_invalid_embedded(&c.scope),
        _ => None,
    }
}

/// mongod's `validateDollarPrefixElement` for the top-level field `name` of `doc`
/// (which must start with `$`): a DBRef field in its proper place passes; any other
/// `$`-prefixed name fails with 52.
pub fn validate_top_level_dollar_field(doc: &Document, name: &str) -> Result<(), MongoError> {
    let keys: Vec<&String> = doc.keys().collect();
    let Some(pos) = keys.iter().position(|k| k.as_str() == name) else {
        return Ok(());
    };
    let invalid_dbref = |msg: String| MongoError::new(ErrorCode::InvalidDBRef, msg);
    let mut cur = pos;
    let mut cur_name = name;
    if cur_name == "$db" {
        if let Some(v) = doc.get(cur_name) {
            if !matches!(v, Bson::String(_)) {
                return Err(invalid_dbref(format!(
                    "The DBRef $db field must be a String, not a {}",
                    type_name(v)
                )));
            }
        }
        if cur == 0 || keys[cur - 1] != "$id" {
            return Err(invalid_dbref(
                "Found $db field without a $id before it, which is invalid.".into(),
            ));
        }
        cur -= 1;
        cur_name = "$id";
    }
    if cur_name == "$id" {
        if cur == 0 || keys[cur - 1] != "$ref" {
            return Err(invalid_dbref(
                "Found $id field without a $ref before it, which is invalid.".into(),
            ));
        }
        cur -= 1;
        cur_name = "$ref";
    }
    if cur_name == "$ref" {
        if let Some(v) = doc.get("$ref") {
            if !matches!(v, Bson::String(_)) {
                return Err(invalid_dbref(format!(
                    "The DBRef $ref field must be a String, not a {}",
                    type_name(v)
                )));
            }
        }
        if keys.get(cur + 1).map(|k| k.as_str()) != Some("$id") {
            return Err(invalid_dbref(
                "The DBRef $ref field must be followed by a $id field".into(),
            ));
        }
        return Ok(());
    }
    Err(MongoError::new(
        ErrorCode::DollarPrefixedFieldName,
        format!(
            "The dollar ($) prefixed field '{name}' in '{name}' is not allowed in the context of an update's replacement document. Consider using an aggregation pipeline with $replaceWith."
        ),
    ))
}

/// mongod's `storageValid(document, allowTopLevelDollarPrefixes, ...)` over a whole
/// document that an update produced: `_id` first met in field order, then each
/// top-level `$`-prefixed field unless `allow_top_level_dollar`.
pub fn validate_document(doc: &Document, allow_top_level_dollar: bool) -> Result<(), MongoError> {
    for (k, v) in doc {
        if k == "_id" {
            validate_id(v)?;
        }
        if !allow_top_level_dollar && k.starts_with('$') {
            validate_top_level_dollar_field(doc, k)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn code(r: Result<(), MongoError>) -> Option<(i32, String)> {
        r.err().map(|e| (e.code, e.message))
    }

    #[test]
    fn id_rules() {
        assert!(validate_id(&Bson::Int32(1)).is_ok());
        assert!(validate_id(&Bson::Document(doc! {"a.b": 1})).is_ok());
        let (c, m) = code(validate_id(&Bson::Document(doc! {"a": 1, "$b": 1}))).expect("refused");
        assert_eq!(c, 52);
        assert_eq!(
            m,
            "_id fields may not contain '$'-prefixed fields: $b is not valid for storage."
        );
        // Deep, through objects and arrays (SERVER-75880).
        let (c, m) = code(validate_id(&Bson::Document(doc! {"a": {"$b": 1}}))).expect("deep");
        assert_eq!((c, m.ends_with("$b is not valid for storage.")), (52, true));
        assert!(validate_id(&Bson::Document(doc! {"a": [{"$c": 1}]})).is_err());
        // A DBRef opening the object is fine, with or without $db.
        assert!(validate_id(&Bson::Document(doc! {"$ref": "c", "$id": 1})).is_ok());
        assert!(
            validate_id(&Bson::Document(
                doc! {"$ref": "c", "$id": {"$x": 1}, "$db": "d"}
            ))
            .is_ok(),
            "mongod does not look inside $id"
        );
        assert!(validate_id(&Bson::Document(doc! {"$ref": "c", "$id": 1, "$x": 1})).is_err());
        assert!(validate_id(&Bson::Document(doc! {"$ref": 1, "$id": 1})).is_err());
        assert!(validate_id(&Bson::Document(doc! {"a": 1, "$ref": "c", "$id": 1})).is_err());
        assert!(validate_id(&Bson::Document(
            doc! {"$ref": "c", "$id": 1, "x": {"$y": 1}}
        ))
        .is_err());
    }

    #[test]
    fn top_level_rules() {
        let (c, m) = code(validate_top_level_dollar_field(&doc! {"$x": 1}, "$x")).expect("52");
        assert_eq!(c, 52);
        assert_eq!(
            m,
            "The dollar ($) prefixed field '$x' in '$x' is not allowed in the context of an update's replacement document. Consider using an aggregation pipeline with $replaceWith."
        );
        let dbref = doc! {"$ref": "c", "$id": 1, "$db": "d"};
        for k in ["$ref", "$id", "$db"] {
            assert!(validate_top_level_dollar_field(&dbref, k).is_ok(), "{k}");
        }
        let (c, m) = code(validate_top_level_dollar_field(
            &doc! {"a": 1, "$id": 1},
            "$id",
        ))
        .expect("55");
        assert_eq!(
            (c, m.as_str()),
            (
                55,
                "Found $id field without a $ref before it, which is invalid."
            )
        );
        let (c, m) = code(validate_top_level_dollar_field(
            &doc! {"$ref": 1, "$id": 1},
            "$ref",
        ))
        .expect("55");
        assert_eq!(
            (c, m.as_str()),
            (55, "The DBRef $ref field must be a String, not a int")
        );
        let (_, m) =
            code(validate_top_level_dollar_field(&doc! {"$ref": "c"}, "$ref")).expect("55");
        assert_eq!(m, "The DBRef $ref field must be followed by a $id field");
        let (_, m) = code(validate_top_level_dollar_field(
            &doc! {"$ref": "c", "$id": 1, "$db": 2},
            "$db",
        ))
        .expect("55");
        assert_eq!(m, "The DBRef $db field must be a String, not a int");
        // $reffoo is not a DBRef field.
        assert_eq!(
            code(validate_top_level_dollar_field(
                &doc! {"$reffoo": 1},
                "$reffoo"
            ))
            .map(|e| e.0),
            Some(52)
        );
    }

    #[test]
    fn whole_documents() {
        assert!(validate_document(&doc! {"_id": 1, "$a": 1}, true).is_ok());
        assert!(validate_document(&doc! {"_id": 1, "a": {"$b": 1}}, false).is_ok());
        assert!(validate_document(&doc! {"_id": 1, "$a": 1}, false).is_err());
        assert!(validate_document(&doc! {"_id": {"$a": 1}}, true).is_err());
    }
}
