//! `$jsonSchema` (mongod's JSON Schema draft-4 subset plus `bsonType`).
//!
//! As in mongod, each keyword constrains only values of the type it is about
//! (`minimum` only numbers, `minLength` only strings, `required` only objects, ...),
//! `properties` name plain fields (no dotted paths) and arrays are never traversed
//! implicitly. Supported keywords: `bsonType`, `type`, `required`, `properties`,
//! `patternProperties`, `additionalProperties`, `minProperties`, `maxProperties`,
//! `dependencies`, `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`,
//! `multipleOf`, `minLength`, `maxLength`, `pattern`, `enum`, `items`,
//! `additionalItems`, `minItems`, `maxItems`, `uniqueItems`, `allOf`, `anyOf`, `oneOf`,
//! `not`, `title`, `description`. The keywords mongod rejects (`$ref`, `$schema`,
//! `default`, `definitions`, `format`, `id`) and unknown ones are rejected with
//! mongod's messages; `encrypt`/`encryptMetadata` are refused (no client-side
//! encryption).

use bson::{Bson, Document};
use eddy_codes::{ErrorCode, MongoError};

use crate::cmp::{self, compare};
use crate::regex::MongoRegex;
use crate::util;

/// A parsed `$jsonSchema`.
#[derive(Debug, Clone)]
pub struct JsonSchema {
    root: Node,
}

#[derive(Debug, Clone, Default)]
struct Node {
    all_numbers: bool,
    types: Option<Vec<i32>>,
    minimum: Option<(Bson, bool)>,
    maximum: Option<(Bson, bool)>,
    multiple_of: Option<Bson>,
    min_length: Option<i64>,
    max_length: Option<i64>,
    pattern: Option<MongoRegex>,
    enumeration: Option<Vec<Bson>>,
    min_items: Option<i64>,
    max_items: Option<i64>,
    items: Option<Items>,
    additional_items: Option<Additional>,
    unique_items: bool,
    required: Vec<String>,
    properties: Vec<(String, Node)>,
    pattern_properties: Vec<(MongoRegex, Node)>,
    additional_properties: Option<Additional>,
    min_properties: Option<i64>,
    max_properties: Option<i64>,
    dependencies: Vec<(String, Dependency)>,
    all_of: Vec<Node>,
    any_of: Vec<Node>,
    one_of: Vec<Node>,
    not: Option<Box<Node>>,
}

#[derive(Debug, Clone)]
enum Items {
    All(Box<Node>),
    Tuple(Vec<Node>),
}

#[derive(Debug, Clone)]
enum Additional {
    Allowed(bool),
    Schema(Box<Node>),
}

#[derive(Debug, Clone)]
enum Dependency {
    Fields(Vec<String>),
    Schema(Box<Node>),
}

fn fail(msg: impl Into<String>) -> MongoError {
    MongoError::new(ErrorCode::FailedToParse, msg)
}

fn mismatch(msg: impl Into<String>) -> MongoError {
    MongoError::new(ErrorCode::TypeMismatch, msg)
}

impl JsonSchema {
    /// Parses the argument of `$jsonSchema`.
    pub fn parse(schema: &Document) -> Result<JsonSchema, MongoError> {
        Ok(JsonSchema {
            root: parse_node(schema)?,
        })
    }

    /// Whether a document satisfies the schema.
    pub fn matches(&self, doc: &Document) -> bool {
        self.root.matches(Val::Doc(doc))
    }
}

fn non_negative(kw: &str, v: &Bson) -> Result<i64, MongoError> {
    if !cmp::is_number(v) {
        return Err(mismatch(format!(
            "$jsonSchema keyword '{kw}' must be a number"
        )));
    }
    util::parse_non_negative_long(kw, v)
}

fn string_array(kw: &str, v: &Bson) -> Result<Vec<String>, MongoError> {
    let Bson::Array(items) = v else {
        return Err(mismatch(format!(
            "$jsonSchema keyword '{kw}' must be an array"
        )));
    };
    let mut out: Vec<String> = Vec::new();
    for i in items {
        let Bson::String(s) = i else {
            return Err(mismatch(format!(
                "$jsonSchema keyword '{kw}' must contain only strings"
            )));
        };
        if out.contains(s) {
            return Err(fail(format!(
                "$jsonSchema keyword '{kw}' array cannot contain duplicate values"
            )));
        }
        out.push(s.clone());
    }
    Ok(out)
}

fn schema_array(kw: &str, v: &Bson) -> Result<Vec<Node>, MongoError> {
    let Bson::Array(items) = v else {
        return Err(mismatch(format!(
            "$jsonSchema keyword '{kw}' must be an array"
        )));
    };
    if items.is_empty() {
        return Err(fail(format!(
            "$jsonSchema keyword '{kw}' must be a non-empty array"
        )));
    }
    items
        .iter()
        .map(|i| match i {
            Bson::Document(d) => parse_node(d),
            _ => Err(mismatch(format!(
                "$jsonSchema keyword '{kw}' must be an array of objects"
            ))),
        })
        .collect()
}

fn additional(kw: &str, v: &Bson) -> Result<Additional, MongoError> {
    match v {
        Bson::Boolean(b) => Ok(Additional::Allowed(*b)),
        Bson::Document(d) => Ok(Additional::Schema(Box::new(parse_node(d)?))),
        _ => Err(mismatch(format!(
            "$jsonSchema keyword '{kw}' must be either an object or a boolean"
        ))),
    }
}

fn parse_node(schema: &Document) -> Result<Node, MongoError> {
    let mut n = Node::default();
    if schema.contains_key("type") && schema.contains_key("bsonType") {
        return Err(fail(
            "Cannot specify both $jsonSchema keywords 'type' and 'bsonType'",
        ));
    }
    for (kw, v) in schema {
        match kw.as_str() {
            "type" | "bsonType" => {
                let names: Vec<&Bson> = match v {
                    Bson::Array(a) => {
                        if a.is_empty() {
                            return Err(fail(format!(
                                "$jsonSchema keyword '{kw}' must name at least one type"
                            )));
                        }
                        a.iter().collect()
                    }
                    other => vec![other],
                };
                let mut codes = Vec::new();
                for name in names {
                    let Bson::String(s) = name else {
                        if kw == "bsonType" && cmp::is_number(name) {
                            return Err(mismatch(format!(
                                "$jsonSchema keyword '{kw}' must be a string or an array of strings"
                            )));
                        }
                        return Err(mismatch(format!(
                            "$jsonSchema keyword '{kw}' must be either a string or an array of strings"
                        )));
                    };
                    if kw == "type" {
                        match s.as_str() {
                            "number" => n.all_numbers = true,
                            "object" => codes.push(3),
                            "array" => codes.push(4),
                            "boolean" => codes.push(8),
                            "string" => codes.push(2),
                            "null" => codes.push(10),
                            "integer" => {
                                return Err(fail(
                                    "$jsonSchema type 'integer' is not currently supported.",
                                ))
                            }
                            other => {
                                return Err(MongoError::bad_value(format!(
                                    "Unknown type name alias: {other}"
                                )))
                            }
                        }
                    } else if s == "number" {
                        n.all_numbers = true;
                    } else {
                        match util::type_code_of_alias(s) {
                            Some(c) => codes.push(c),
                            None => {
                                return Err(MongoError::bad_value(format!(
                                    "Unknown type name alias: {s}"
                                )))
                            }
                        }
                    }
                }
                n.types = Some(codes);
            }
            "minimum" | "maximum" => {
                if !cmp::is_number(v) {
                    return Err(mismatch(format!("$jsonSchema keyword '{kw}' must be a number")));
                }
                let excl_kw = if kw == "minimum" {
                    "exclusiveMinimum"
                } else {
                    "exclusiveMaximum"
                };
                let excl = match schema.get(excl_kw) {
                    None => false,
                    Some(Bson::Boolean(b)) => *b,
                    Some(_) => {
                        return Err(mismatch(format!(
                            "$jsonSchema keyword '{excl_kw}' must be a boolean"
                        )))
                    }
                };
                if kw == "minimum" {
                    n.minimum = Some((v.clone(), excl));
                } else {
                    n.maximum = Some((v.clone(), excl));
                }
            }
            "exclusiveMinimum" | "exclusiveMaximum" => {
                if !matches!(v, Bson::Boolean(_)) {
                    return Err(mismatch(format!("$jsonSchema keyword '{kw}' must be a boolean")));
                }
                let base = if kw == "exclusiveMinimum" {
                    "minimum"
                } else {
                    "maximum"
                };
                if !schema.contains_key(base) {
                    return Err(fail(format!(
                        "$jsonSchema keyword '{base}' must be a present if {kw} is present"
                    )));
                }
            }
            "multipleOf" => {
                if !cmp::is_number(v) {
                    return Err(mismatch("$jsonSchema keyword 'multipleOf' must be a number"));
                }
                let f = util::number_as_f64(v).unwrap_or(f64::NAN);
                if f.is_nan() || f <= 0.0 || f.is_infinite() {
                    return Err(fail(
                        "$jsonSchema keyword 'multipleOf' must have a positive value",
                    ));
                }
                n.multiple_of = Some(v.clone());
            }
            "minLength" => n.min_length = Some(non_negative(kw, v)?),
            "maxLength" => n.max_length = Some(non_negative(kw, v)?),
            "minItems" => n.min_items = Some(non_negative(kw, v)?),
            "maxItems" => n.max_items = Some(non_negative(kw, v)?),
            "minProperties" => n.min_properties = Some(non_negative(kw, v)?),
            "maxProperties" => n.max_properties = Some(non_negative(kw, v)?),
            "pattern" => {
                let Bson::String(p) = v else {
                    return Err(mismatch("$jsonSchema keyword 'pattern' must be a string"));
                };
                n.pattern = Some(MongoRegex::new(p, "")?);
            }
            "enum" => {
                let Bson::Array(items) = v else {
                    return Err(mismatch("$jsonSchema keyword 'enum' must be an array"));
                };
                if items.is_empty() {
                    return Err(fail("$jsonSchema keyword 'enum' cannot be an empty array"));
                }
                for (i, a) in items.iter().enumerate() {
                    if items[..i].iter().any(|b| cmp::values_equal(a, b)) {
                        return Err(fail(
                            "$jsonSchema keyword 'enum' array cannot contain duplicate values",
                        ));
                    }
                }
                n.enumeration = Some(items.clone());
            }
            "items" => {
                n.items = Some(match v {
                    Bson::Document(d) => Items::All(Box::new(parse_node(d)?)),
                    Bson::Array(a) => Items::Tuple(
                        a.iter()
                            .map(|i| match i {
                                Bson::Document(d) => parse_node(d),
                                _ => Err(mismatch(
                                    "$jsonSchema keyword 'items' requires that each element of the array is an object",
                                )),
                            })
                            .collect::<Result<_, _>>()?,
                    ),
                    other => {
                        return Err(mismatch(format!(
                            "$jsonSchema keyword 'items' must be an array or an object, not {}",
                            util::type_name(other)
                        )))
                    }
                })
            }
            "additionalItems" => n.additional_items = Some(additional(kw, v)?),
            "uniqueItems" => {
                let Bson::Boolean(b) = v else {
                    return Err(mismatch("$jsonSchema keyword 'uniqueItems' must be a boolean"));
                };
                n.unique_items = *b;
            }
            "required" => {
                let r = string_array(kw, v)?;
                if r.is_empty() {
                    return Err(fail("$jsonSchema keyword 'required' cannot be an empty array"));
                }
                n.required = r;
            }
            "properties" => {
                let Bson::Document(props) = v else {
                    return Err(mismatch("$jsonSchema keyword 'properties' must be an object"));
                };
                for (name, sub) in props {
                    let Bson::Document(sub) = sub else {
                        return Err(mismatch(format!(
                            "Nested schema for $jsonSchema property '{name}' must be an object"
                        )));
                    };
                    n.properties.push((name.clone(), parse_node(sub)?));
                }
            }
            "patternProperties" => {
                let Bson::Document(props) = v else {
                    return Err(mismatch(
                        "$jsonSchema keyword 'patternProperties' must be an object",
                    ));
                };
                for (pat, sub) in props {
                    let Bson::Document(sub) = sub else {
                        return Err(mismatch(format!(
                            "Nested schema for $jsonSchema property '{pat}' must be an object"
                        )));
                    };
                    n.pattern_properties
                        .push((MongoRegex::new(pat, "")?, parse_node(sub)?));
                }
            }
            "additionalProperties" => n.additional_properties = Some(additional(kw, v)?),
            "dependencies" => {
                let Bson::Document(deps) = v else {
                    return Err(mismatch("$jsonSchema keyword 'dependencies' must be an object"));
                };
                for (name, dep) in deps {
                    let d = match dep {
                        Bson::Document(s) => Dependency::Schema(Box::new(parse_node(s)?)),
                        Bson::Array(_) => {
                            let fields = string_array("dependencies", dep)?;
                            if fields.is_empty() {
                                return Err(fail(format!(
                                    "property '{name}' in $jsonSchema keyword 'dependencies' cannot be an empty array"
                                )));
                            }
                            Dependency::Fields(fields)
                        }
                        _ => {
                            return Err(mismatch(format!(
                                "property '{name}' in $jsonSchema keyword 'dependencies' must be either an object or an array"
                            )))
                        }
                    };
                    n.dependencies.push((name.clone(), d));
                }
            }
            "allOf" => n.all_of = schema_array(kw, v)?,
            "anyOf" => n.any_of = schema_array(kw, v)?,
            "oneOf" => n.one_of = schema_array(kw, v)?,
            "not" => {
                let Bson::Document(d) = v else {
                    return Err(mismatch("$jsonSchema keyword 'not' must be an object"));
                };
                n.not = Some(Box::new(parse_node(d)?));
            }
            "title" | "description" => {
                if !matches!(v, Bson::String(_)) {
                    return Err(mismatch(format!("$jsonSchema keyword '{kw}' must be a string")));
                }
            }
            "$ref" | "$schema" | "default" | "definitions" | "format" | "id" => {
                return Err(fail(format!(
                    "$jsonSchema keyword '{kw}' is not currently supported"
                )))
            }
            "encrypt" | "encryptMetadata" => {
                return Err(MongoError::new(
                    ErrorCode::CommandNotSupported,
                    format!("$jsonSchema keyword '{kw}' is not supported"),
                ))
            }
            other => return Err(fail(format!("Unknown $jsonSchema keyword: {other}"))),
        }
    }
    Ok(n)
}

#[derive(Clone, Copy)]
enum Val<'a> {
    Doc(&'a Document),
    Any(&'a Bson),
}

/// `x` is a multiple of `m`, computed in decimal as mongod does (both rounded to 15
/// significant digits, as `Decimal128(double)` does).
fn is_multiple(x: &Bson, m: &Bson) -> bool {
    fn dec(v: &Bson) -> Option<(i128, i32)> {
        let f = util::number_as_f64(v)?;
        if !f.is_finite() {
            return None;
        }
        let s = match v {
            Bson::Int32(i) => format!("{i}e0"),
            Bson::Int64(i) => format!("{i}e0"),
            _ => format!("{f:.14e}"),
        };
        let (mant, exp) = s.split_once('e')?;
        let exp: i32 = exp.parse().ok()?;
        let frac_len = mant.split_once('.').map_or(0, |(_, f)| f.len()) as i32;
        let digits: String = mant.chars().filter(|c| *c != '.').collect();
        Some((digits.parse().ok()?, exp - frac_len))
    }
    let (Some((xm, xe)), Some((mm, me))) = (dec(x), dec(m)) else {
        return false;
    };
    if mm == 0 {
        return false;
    }
    let e = xe.min(me);
    let scale = |v: i128, from: i32| -> Option<i128> {
        let d = u32::try_from(from - e).ok()?;
        v.checked_mul(10i128.checked_pow(d)?)
    };
    match (scale(xm, xe), scale(mm, me)) {
        (Some(a), Some(b)) => a % b == 0,
        _ => {
            let (a, b) = (
                util::number_as_f64(x).unwrap_or(f64::NAN),
                util::number_as_f64(m).unwrap_or(f64::NAN),
            );
            (a % b) == 0.0
        }
    }
}

impl Node {
    fn matches(&self, v: Val<'_>) -> bool {
        let (code, num) = match v {
            Val::Doc(_) => (3, false),
            Val::Any(b) => (util::type_code(b), cmp::is_number(b)),
        };
        if let Some(types) = &self.types {
            if !(types.contains(&code) || (self.all_numbers && num)) {
                return false;
            }
        } else if self.all_numbers && !num {
            return false;
        }
        if let Some(e) = &self.enumeration {
            let ok = match v {
                Val::Doc(d) => e.iter().any(
                    |x| matches!(x, Bson::Document(xd) if cmp::compare_documents(xd, d).is_eq()),
                ),
                Val::Any(b) => e.iter().any(|x| cmp::values_equal(x, b)),
            };
            if !ok {
                return false;
            }
        }
        for s in &self.all_of {
            if !s.matches(v) {
                return false;
            }
        }
        if !self.any_of.is_empty() && !self.any_of.iter().any(|s| s.matches(v)) {
            return false;
        }
        if !self.one_of.is_empty() && self.one_of.iter().filter(|s| s.matches(v)).count() != 1 {
            return false;
        }
        if let Some(n) = &self.not {
            if n.matches(v) {
                return false;
            }
        }
        match v {
            Val::Doc(d) => self.matches_object(d),
            Val::Any(Bson::Document(d)) => self.matches_object(d),
            Val::Any(b) if num => self.matches_number(b),
            Val::Any(Bson::String(s)) => self.matches_string(s),
            Val::Any(Bson::Array(a)) => self.matches_array(a),
            Val::Any(_) => true,
        }
    }

    fn matches_number(&self, b: &Bson) -> bool {
        if let Some((min, excl)) = &self.minimum {
            let o = compare(b, min);
            if o.is_lt() || (*excl && o.is_eq()) {
                return false;
            }
        }
        if let Some((max, excl)) = &self.maximum {
            let o = compare(b, max);
            if o.is_gt() || (*excl && o.is_eq()) {
                return false;
            }
        }
        if let Some(m) = &self.multiple_of {
            if !is_multiple(b, m) {
                return false;
            }
        }
        true
    }

    fn matches_string(&self, s: &str) -> bool {
        let len = s.chars().count() as i64;
        if self.min_length.is_some_and(|m| len < m) || self.max_length.is_some_and(|m| len > m) {
            return false;
        }
        if let Some(p) = &self.pattern {
            if !p.is_match(s) {
                return false;
            }
        }
        true
    }

    fn matches_array(&self, a: &[Bson]) -> bool {
        let len = a.len() as i64;
        if self.min_items.is_some_and(|m| len < m) || self.max_items.is_some_and(|m| len > m) {
            return false;
        }
        match &self.items {
            Some(Items::All(s)) if !a.iter().all(|e| s.matches(Val::Any(e))) => return false,
            Some(Items::Tuple(ss)) => {
                for (s, e) in ss.iter().zip(a.iter()) {
                    if !s.matches(Val::Any(e)) {
                        return false;
                    }
                }
                if a.len() > ss.len() {
                    match &self.additional_items {
                        Some(Additional::Allowed(false)) => return false,
                        Some(Additional::Schema(s))
                            if !a[ss.len()..].iter().all(|e| s.matches(Val::Any(e))) =>
                        {
                            return false
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        if self.unique_items {
            for (i, x) in a.iter().enumerate() {
                if a[..i].iter().any(|y| cmp::values_equal(x, y)) {
                    return false;
                }
            }
        }
        true
    }

    fn matches_object(&self, d: &Document) -> bool {
        let n = d.len() as i64;
        if self.min_properties.is_some_and(|m| n < m) || self.max_properties.is_some_and(|m| n > m)
        {
            return false;
        }
        if !self.required.iter().all(|r| d.contains_key(r)) {
            return false;
        }
        for (name, s) in &self.properties {
            if let Some(v) = d.get(name) {
                if !s.matches(Val::Any(v)) {
                    return false;
                }
            }
        }
        for (name, dep) in &self.dependencies {
            if d.contains_key(name) {
                let ok = match dep {
                    Dependency::Fields(fs) => fs.iter().all(|f| d.contains_key(f)),
                    Dependency::Schema(s) => s.matches(Val::Doc(d)),
                };
                if !ok {
                    return false;
                }
            }
        }
        if !self.pattern_properties.is_empty() || self.additional_properties.is_some() {
            for (k, v) in d {
                let mut covered = self.properties.iter().any(|(n, _)| n == k);
                for (re, s) in &self.pattern_properties {
                    if re.is_match(k) {
                        covered = true;
                        if !s.matches(Val::Any(v)) {
                            return false;
                        }
                    }
                }
                if !covered {
                    match &self.additional_properties {
                        Some(Additional::Allowed(false)) => return false,
                        Some(Additional::Schema(s)) if !s.matches(Val::Any(v)) => return false,
                        _ => {}
                    }
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn schema_cases() {
        let schema = doc! {
            "bsonType": "object",
            "required": ["name", "year"],
            "properties": {
                "name": {"bsonType": "string", "minLength": 2, "pattern": "^[A-Z]"},
                "year": {"bsonType": "int", "minimum": 2017, "maximum": 3017},
                "gpa": {"bsonType": ["double"], "minimum": 0, "exclusiveMinimum": true},
                "tags": {"bsonType": "array", "items": {"bsonType": "string"}, "uniqueItems": true, "maxItems": 2},
                "kind": {"enum": ["a", "b"]},
                "n": {"type": "number", "multipleOf": 0.1},
            },
            "additionalProperties": true,
        };
        let s = JsonSchema::parse(&schema).expect("valid");
        let cases = vec![
            (doc! {"name": "Al", "year": 2020}, true),
            (doc! {"name": "Al"}, false),
            (doc! {"name": "al", "year": 2020}, false),
            (doc! {"name": "Al", "year": 2020_i64}, false),
            (doc! {"name": "Al", "year": 2000}, false),
            (doc! {"name": "Al", "year": 2020, "gpa": 0.0}, false),
            (doc! {"name": "Al", "year": 2020, "gpa": 3.5}, true),
            (doc! {"name": "Al", "year": 2020, "tags": ["x", "x"]}, false),
            (doc! {"name": "Al", "year": 2020, "tags": ["x", 1]}, false),
            (
                doc! {"name": "Al", "year": 2020, "tags": ["x", "y", "z"]},
                false,
            ),
            (doc! {"name": "Al", "year": 2020, "kind": "c"}, false),
            (doc! {"name": "Al", "year": 2020, "kind": "a"}, true),
            (doc! {"name": "Al", "year": 2020, "n": 0.3}, true),
            (doc! {"name": "Al", "year": 2020, "n": 0.35}, false),
        ];
        for (d, want) in cases {
            assert_eq!(s.matches(&d), want, "{d:?}");
        }
        let closed = JsonSchema::parse(
            &doc! {"properties": {"_id": {}, "a": {}}, "additionalProperties": false},
        )
        .expect("valid");
        assert!(closed.matches(&doc! {"_id": 1, "a": 2}));
        assert!(!closed.matches(&doc! {"_id": 1, "b": 2}));
    }

    #[test]
    fn schema_errors() {
        let cases = vec![
            (doc! {"foo": 1}, 9, "Unknown $jsonSchema keyword: foo"),
            (
                doc! {"type": "integer"},
                9,
                "$jsonSchema type 'integer' is not currently supported.",
            ),
            (
                doc! {"required": "a"},
                14,
                "$jsonSchema keyword 'required' must be an array",
            ),
            (
                doc! {"type": "object", "bsonType": "object"},
                9,
                "Cannot specify both $jsonSchema keywords 'type' and 'bsonType'",
            ),
            (
                doc! {"$ref": "#"},
                9,
                "$jsonSchema keyword '$ref' is not currently supported",
            ),
        ];
        for (s, code, msg) in cases {
            let e = JsonSchema::parse(&s).map(|_| ()).expect_err("invalid");
            assert_eq!((e.code, e.message.as_str()), (code, msg));
        }
    }
}
