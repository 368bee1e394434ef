//! Extended JSON output exactly as pymongo's `bson.json_util.dumps` prints it.
//!
//! `eddy watch` promises that its default output is byte-identical to what the tutorial's
//! `print(dumps(change))` prints with pymongo 4.x, so scripts written against the tutorial keep
//! working. That means reproducing two layers:
//!
//! * `bson.json_util._json_convert` (pymongo 4.20): how each BSON type becomes a JSON value in
//!   RELAXED (default) or CANONICAL mode, after pymongo's *decoder* has turned BSON into Python
//!   objects (Symbol -> str, Undefined -> None, DBPointer -> DBRef, embedded `{$ref, $id}`
//!   documents -> DBRef with keys reordered, regex options -> re flags "ilmsux").
//! * Python's `json.dumps`: separators `", "`/`": "` (or `","` + newline with `indent`),
//!   `ensure_ascii` escaping (`\uXXXX`, lowercase hex, surrogate pairs), floats via `repr`.
//!
//! Invariant: field order is always the order of the BSON document (Python dicts keep insertion
//! order), except for DBRef-shaped embedded documents where pymongo itself reorders.

use bson::{Bson, Document};

/// Which `JSONOptions` preset to imitate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonMode {
    /// `DEFAULT_JSON_OPTIONS` / `RELAXED_JSON_OPTIONS`.
    Relaxed,
    /// `CANONICAL_JSON_OPTIONS`.
    Canonical,
}

/// `dumps(doc)` (indent `None`) or `dumps(doc, indent=n)`.
pub fn dumps(doc: &Document, mode: JsonMode, indent: Option<usize>) -> String {
    let mut w = Writer {
        out: String::with_capacity(256),
        mode,
        indent,
    };
    w.document(doc, 0, true);
    w.out
}

/// A JSON value after `_json_convert`, i.e. what Python's `json` module gets to see.
/// Building this small tree first keeps the two concerns (BSON -> Python, Python -> text) apart.
enum Py {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Py>),
    Dict(Vec<(String, Py)>),
}

fn dict(pairs: Vec<(&str, Py)>) -> Py {
    Py::Dict(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

fn wrap(key: &str, value: Py) -> Py {
    dict(vec![(key, value)])
}

fn convert_doc(doc: &Document, mode: JsonMode, top_level: bool) -> Py {
    // pymongo's decoder turns an *embedded* document with a string `$ref`, an `$id` and an
    // optional string/null `$db` into a DBRef, whose `as_doc()` puts `$ref, $id[, $db]` first.
    if !top_level {
        let ref_is_str = matches!(doc.get("$ref"), Some(Bson::String(_) | Bson::Symbol(_)));
        let db_ok = matches!(
            doc.get("$db"),
            None | Some(Bson::String(_) | Bson::Symbol(_) | Bson::Null | Bson::Undefined)
        );
        if ref_is_str && doc.contains_key("$id") && db_ok {
            let mut pairs = Vec::with_capacity(doc.len());
            for key in ["$ref", "$id"] {
                if let Some(v) = doc.get(key) {
                    pairs.push((key.to_owned(), convert(v, mode)));
                }
            }
            if let Some(db @ (Bson::String(_) | Bson::Symbol(_))) = doc.get("$db") {
                pairs.push(("$db".to_owned(), convert(db, mode)));
            }
            for (k, v) in doc {
                if k != "$ref" && k != "$id" && k != "$db" {
                    pairs.push((k.clone(), convert(v, mode)));
                }
            }
            return Py::Dict(pairs);
        }
    }
    Py::Dict(
        doc.iter()
            .map(|(k, v)| (k.clone(), convert(v, mode)))
            .collect(),
    )
}

/// Milliseconds of 9999-12-31T23:59:59.999Z, pymongo's `_MAX_UTC_MS`.
const MAX_UTC_MS: i64 = 253_402_300_799_999;

fn convert(value: &Bson, mode: JsonMode) -> Py {
    let canonical = mode == JsonMode::Canonical;
    match value {
        Bson::Double(f) => {
            if f.is_nan() {
                wrap("$numberDouble", Py::Str("NaN".into()))
            } else if f.is_infinite() {
                let s = if *f > 0.0 { "Infinity" } else { "-Infinity" };
                wrap("$numberDouble", Py::Str(s.into()))
            } else if canonical {
                wrap("$numberDouble", Py::Str(py_float_repr(*f)))
            } else {
                Py::Float(*f)
            }
        }
        Bson::String(s) | Bson::Symbol(s) => Py::Str(s.clone()),
        Bson::Array(items) => Py::List(items.iter().map(|v| convert(v, mode)).collect()),
        Bson::Document(d) => convert_doc(d, mode, false),
        Bson::Boolean(b) => Py::Bool(*b),
        Bson::Null | Bson::Undefined => Py::Null,
        Bson::RegularExpression(re) => {
            // Decoded into re flags, re-emitted in this fixed order; unknown letters vanish.
            let opts = re.options.as_str();
            let flags: String = "ilmsux".chars().filter(|c| opts.contains(*c)).collect();
            wrap(
                "$regularExpression",
                dict(vec![
                    ("pattern", Py::Str(re.pattern.as_str().to_owned())),
                    ("options", Py::Str(flags)),
                ]),
            )
        }
        Bson::JavaScriptCode(code) => wrap("$code", Py::Str(code.clone())),
        Bson::JavaScriptCodeWithScope(cws) => dict(vec![
            ("$code", Py::Str(cws.code.clone())),
            ("$scope", convert_doc(&cws.scope, mode, true)),
        ]),
        Bson::Int32(i) => {
            if canonical {
                wrap("$numberInt", Py::Str(i.to_string()))
            } else {
                Py::Int(i64::from(*i))
            }
        }
        Bson::Int64(i) => {
            if canonical {
                wrap("$numberLong", Py::Str(i.to_string()))
            } else {
                Py::Int(*i)
            }
        }
        Bson::Timestamp(ts) => wrap(
            "$timestamp",
            dict(vec![
                ("t", Py::Int(i64::from(ts.time))),
                ("i", Py::Int(i64::from(ts.increment))),
            ]),
        ),
        Bson::Binary(bin) => wrap(
            "$binary",
            dict(vec![
                ("base64", Py::Str(base64_encode(&bin.bytes))),
                ("subType", Py::Str(format!("{:02x}", u8::from(bin.subtype)))),
            ]),
        ),
        Bson::ObjectId(oid) => wrap("$oid", Py::Str(oid.to_hex())),
        Bson::DateTime(dt) => {
            let ms = dt.timestamp_millis();
            if !canonical && (0..=MAX_UTC_MS).contains(&ms) {
                wrap("$date", Py::Str(iso_millis(ms)))
            } else {
                // Canonical mode, dates before 1970, and dates pymongo can only decode as
                // DatetimeMS (beyond year 9999) all print as $numberLong.
                wrap("$date", wrap("$numberLong", Py::Str(ms.to_string())))
            }
        }
        Bson::Decimal128(d) => wrap("$numberDecimal", Py::Str(d.to_string())),
        Bson::MaxKey => wrap("$maxKey", Py::Int(1)),
        Bson::MinKey => wrap("$minKey", Py::Int(1)),
        Bson::DbPointer(_) => {
            // The fields are private in bson 3; its canonical extJSON is
            // {"$dbPointer": {"$ref": ns, "$id": {"$oid": hex}}}. pymongo decodes a DBPointer
            // into DBRef(ns, oid) and prints {"$ref": ns, "$id": {"$oid": hex}}.
            let json = value.clone().into_canonical_extjson();
            let inner = &json["$dbPointer"];
            let ns = inner["$ref"].as_str().unwrap_or_default().to_owned();
            let oid = inner["$id"]["$oid"].as_str().unwrap_or_default().to_owned();
            dict(vec![
                ("$ref", Py::Str(ns)),
                ("$id", wrap("$oid", Py::Str(oid))),
            ])
        }
    }
}

/// `datetime.strftime("%Y-%m-%dT%H:%M:%S")` + `.%03d` millis when non-zero + `Z`,
/// for 0 <= ms <= MAX_UTC_MS.
fn iso_millis(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    );
    if millis != 0 {
        s.push_str(&format!(".{millis:03}"));
    }
    s.push('Z');
    s
}

/// Howard Hinnant's days-from-civil inverse: days since 1970-01-01 -> (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Standard base64 with padding, as `base64.b64encode`.
fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Python's `float.__repr__` (shortest round-trip digits; scientific notation when the decimal
/// exponent is < -4 or >= 16; at least two exponent digits with explicit sign).
pub fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    // `{:e}` yields the shortest round-trip digits: "-1.2345e-5", "1e100", "0e0".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci
        .split_once('e')
        .expect("LowerExp output always contains 'e'");
    let exp: i32 = exp.parse().expect("LowerExp exponent is an integer");
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                out.push_str(&"0".repeat(int_len - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        } else {
            out.push_str("0.");
            out.push_str(&"0".repeat((-exp - 1) as usize));
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push_str(&format!(
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        ));
    }
    out
}

/// `json.encoder.py_encode_basestring_ascii`: escapes `"`, `\`, everything outside ' '..'~'.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{:04x}", unit));
                }
            }
        }
    }
    out.push('"');
}

struct Writer {
    out: String,
    mode: JsonMode,
    indent: Option<usize>,
}

impl Writer {
    fn document(&mut self, doc: &Document, depth: usize, top_level: bool) {
        let py = convert_doc(doc, self.mode, top_level);
        self.value(&py, depth);
    }

    fn newline(&mut self, depth: usize) {
        if let Some(n) = self.indent {
            self.out.push('\n');
            self.out.push_str(&" ".repeat(n * depth));
        }
    }

    fn item_separator(&mut self) {
        // Python: (', ', ': ') without indent, (',', ': ') with indent.
        if self.indent.is_some() {
            self.out.push(',');
        } else {
            self.out.push_str(", ");
        }
    }

    fn value(&mut self, v: &Py, depth: usize) {
        match v {
            Py::Null => self.out.push_str("null"),
            Py::Bool(true) => self.out.push_str("true"),
            Py::Bool(false) => self.out.push_str("false"),
            Py::Int(i) => self.out.push_str(&i.to_string()),
            Py::Float(f) => self.out.push_str(&py_float_repr(*f)),
            Py::Str(s) => push_json_string(&mut self.out, s),
            Py::List(items) => {
                if items.is_empty() {
                    self.out.push_str("[]");
                    return;
                }
                self.out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.item_separator();
                    }
                    self.newline(depth + 1);
                    self.value(item, depth + 1);
                }
                self.newline(depth);
                self.out.push(']');
            }
            Py::Dict(pairs) => {
                if pairs.is_empty() {
                    self.out.push_str("{}");
                    return;
                }
                self.out.push('{');
                for (i, (k, item)) in pairs.iter().enumerate() {
                    if i > 0 {
                        self.item_separator();
                    }
                    self.newline(depth + 1);
                    push_json_string(&mut self.out, k);
                    self.out.push_str(": ");
                    self.value(item, depth + 1);
                }
                self.newline(depth);
                self.out.push('}');
            }
        }
    }
}

/// ANSI colour for `--format pretty` on a terminal, by the event's `operationType`.
pub fn colour_for(operation_type: Option<&str>) -> Option<&'static str> {
    match operation_type? {
        "insert" => Some("\x1b[32m"),                           // green
        "update" => Some("\x1b[33m"),                           // yellow
        "replace" => Some("\x1b[36m"),                          // cyan
        "delete" => Some("\x1b[31m"),                           // red
        "invalidate" => Some("\x1b[1;35m"),                     // bold magenta
        "drop" | "dropDatabase" | "rename" => Some("\x1b[35m"), // magenta
        _ => Some("\x1b[34m"),                                  // blue: DDL and expanded events
    }
}

/// ANSI reset sequence.
pub const RESET: &str = "\x1b[0m";

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, oid::ObjectId, spec::BinarySubtype, Binary, DateTime, Timestamp};

    // Every expected string below was produced by pymongo 4.20.1:
    //   from bson import json_util, decode, encode; json_util.dumps(decode(encode(doc)))
    // (and json_options=json_util.CANONICAL_JSON_OPTIONS / indent=2 where noted).

    #[test]
    fn float_repr_matches_python() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1e100, "1e+100"),
            (1e16, "1e+16"),
            (1234567890123456.0, "1234567890123456.0"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (5e-324, "5e-324"),
            (100.0, "100.0"),
            (2.71, "2.71"),
            (1e15, "1000000000000000.0"),
        ];
        for (f, want) in cases {
            assert_eq!(py_float_repr(*f), *want, "repr({f:?})");
        }
    }

    #[test]
    fn base64_matches_python() {
        let cases: &[(&[u8], &str)] = &[
            (b"", ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (&[0xff, 0xfe, 0xfd, 0x00], "//79AA=="),
        ];
        for (input, want) in cases {
            assert_eq!(base64_encode(input), *want);
        }
    }

    #[test]
    fn iso_dates() {
        let cases: &[(i64, &str)] = &[
            (0, "1970-01-01T00:00:00Z"),
            (1_704_067_200_000, "2024-01-01T00:00:00Z"),
            (1_704_067_200_123, "2024-01-01T00:00:00.123Z"),
            (951_782_400_000, "2000-02-29T00:00:00Z"),
            (MAX_UTC_MS, "9999-12-31T23:59:59.999Z"),
        ];
        for (ms, want) in cases {
            assert_eq!(iso_millis(*ms), *want);
        }
    }

    fn tutorial_insert() -> Document {
        doc! {
            "_id": {"_data": "8265A1B2C3000000012B022C0100296E5A1004"},
            "operationType": "insert",
            "clusterTime": Timestamp { time: 1_705_000_000, increment: 1 },
            "wallTime": DateTime::from_millis(1_705_000_000_123),
            "fullDocument": {"_id": 1, "hello": "world"},
            "ns": {"db": "changestream", "coll": "collection"},
            "documentKey": {"_id": 1},
        }
    }

    #[test]
    fn relaxed_tutorial_event() {
        assert_eq!(
            dumps(&tutorial_insert(), JsonMode::Relaxed, None),
            r#"{"_id": {"_data": "8265A1B2C3000000012B022C0100296E5A1004"}, "operationType": "insert", "clusterTime": {"$timestamp": {"t": 1705000000, "i": 1}}, "wallTime": {"$date": "2024-01-11T19:06:40.123Z"}, "fullDocument": {"_id": 1, "hello": "world"}, "ns": {"db": "changestream", "coll": "collection"}, "documentKey": {"_id": 1}}"#
        );
    }

    #[test]
    fn canonical_tutorial_event() {
        assert_eq!(
            dumps(&tutorial_insert(), JsonMode::Canonical, None),
            r#"{"_id": {"_data": "8265A1B2C3000000012B022C0100296E5A1004"}, "operationType": "insert", "clusterTime": {"$timestamp": {"t": 1705000000, "i": 1}}, "wallTime": {"$date": {"$numberLong": "1705000000123"}}, "fullDocument": {"_id": {"$numberInt": "1"}, "hello": "world"}, "ns": {"db": "changestream", "coll": "collection"}, "documentKey": {"_id": {"$numberInt": "1"}}}"#
        );
    }

    #[test]
    fn pretty_is_indent_2() {
        let d = doc! {"a": 1, "b": [1, "x"], "c": {}, "d": []};
        assert_eq!(
            dumps(&d, JsonMode::Relaxed, Some(2)),
            "{\n  \"a\": 1,\n  \"b\": [\n    1,\n    \"x\"\n  ],\n  \"c\": {},\n  \"d\": []\n}"
        );
    }

    fn all_types() -> Document {
        let oid = ObjectId::parse_str("5b088c65e226e58f388bf63e").expect("valid hex");
        doc! {
            "double": 1.0,
            "double2": 2.5e-7,
            "big": 1e100,
            "nan": f64::NAN,
            "inf": f64::INFINITY,
            "ninf": f64::NEG_INFINITY,
            "negzero": -0.0,
            "string": "héllo \"quoted\"\n\t\u{1}\u{7f}😀",
            "doc": {"a": 1},
            "arr": [1, "two", 3.0],
            "bin": Binary { subtype: BinarySubtype::Generic, bytes: b"hello".to_vec() },
            "uuid": Binary { subtype: BinarySubtype::Uuid, bytes: vec![0x12; 16] },
            "udef": Binary { subtype: BinarySubtype::UserDefined(0x80), bytes: vec![1, 2, 3] },
            "oid": oid,
            "bool": true,
            "date": DateTime::from_millis(1_704_067_200_000),
            "olddate": DateTime::from_millis(-1000),
            "farfuture": DateTime::from_millis(253_402_300_800_000),
            "null": null,
            "regex": bson::Regex { pattern: "^a.c$".try_into().expect("no NUL"), options: "xmi".try_into().expect("no NUL") },
            "code": Bson::JavaScriptCode("function(){}".into()),
            "codews": Bson::JavaScriptCodeWithScope(bson::JavaScriptCodeWithScope { code: "f()".into(), scope: doc!{"x": 1} }),
            "int32": 42,
            "int64": 42_i64,
            "bigint": 9_000_000_000_i64,
            "ts": Timestamp { time: 5, increment: 7 },
            "dec": "1.50".parse::<bson::Decimal128>().expect("valid decimal"),
            "min": Bson::MinKey,
            "max": Bson::MaxKey,
            "undef": Bson::Undefined,
            "sym": Bson::Symbol("sym".into()),
            "dbref": {"$id": 5, "x": 1, "$ref": "coll"},
        }
    }

    #[test]
    fn relaxed_all_types() {
        assert_eq!(
            dumps(&all_types(), JsonMode::Relaxed, None),
            r#"{"double": 1.0, "double2": 2.5e-07, "big": 1e+100, "nan": {"$numberDouble": "NaN"}, "inf": {"$numberDouble": "Infinity"}, "ninf": {"$numberDouble": "-Infinity"}, "negzero": -0.0, "string": "h\u00e9llo \"quoted\"\n\t\u0001\u007f\ud83d\ude00", "doc": {"a": 1}, "arr": [1, "two", 3.0], "bin": {"$binary": {"base64": "aGVsbG8=", "subType": "00"}}, "uuid": {"$binary": {"base64": "EhISEhISEhISEhISEhISEg==", "subType": "04"}}, "udef": {"$binary": {"base64": "AQID", "subType": "80"}}, "oid": {"$oid": "5b088c65e226e58f388bf63e"}, "bool": true, "date": {"$date": "2024-01-01T00:00:00Z"}, "olddate": {"$date": {"$numberLong": "-1000"}}, "farfuture": {"$date": {"$numberLong": "253402300800000"}}, "null": null, "regex": {"$regularExpression": {"pattern": "^a.c$", "options": "imx"}}, "code": {"$code": "function(){}"}, "codews": {"$code": "f()", "$scope": {"x": 1}}, "int32": 42, "int64": 42, "bigint": 9000000000, "ts": {"$timestamp": {"t": 5, "i": 7}}, "dec": {"$numberDecimal": "1.50"}, "min": {"$minKey": 1}, "max": {"$maxKey": 1}, "undef": null, "sym": "sym", "dbref": {"$ref": "coll", "$id": 5, "x": 1}}"#
        );
    }

    #[test]
    fn canonical_all_types() {
        assert_eq!(
            dumps(&all_types(), JsonMode::Canonical, None),
            r#"{"double": {"$numberDouble": "1.0"}, "double2": {"$numberDouble": "2.5e-07"}, "big": {"$numberDouble": "1e+100"}, "nan": {"$numberDouble": "NaN"}, "inf": {"$numberDouble": "Infinity"}, "ninf": {"$numberDouble": "-Infinity"}, "negzero": {"$numberDouble": "-0.0"}, "string": "h\u00e9llo \"quoted\"\n\t\u0001\u007f\ud83d\ude00", "doc": {"a": {"$numberInt": "1"}}, "arr": [{"$numberInt": "1"}, "two", {"$numberDouble": "3.0"}], "bin": {"$binary": {"base64": "aGVsbG8=", "subType": "00"}}, "uuid": {"$binary": {"base64": "EhISEhISEhISEhISEhISEg==", "subType": "04"}}, "udef": {"$binary": {"base64": "AQID", "subType": "80"}}, "oid": {"$oid": "5b088c65e226e58f388bf63e"}, "bool": true, "date": {"$date": {"$numberLong": "1704067200000"}}, "olddate": {"$date": {"$numberLong": "-1000"}}, "farfuture": {"$date": {"$numberLong": "253402300800000"}}, "null": null, "regex": {"$regularExpression": {"pattern": "^a.c$", "options": "imx"}}, "code": {"$code": "function(){}"}, "codews": {"$code": "f()", "$scope": {"x": {"$numberInt": "1"}}}, "int32": {"$numberInt": "42"}, "int64": {"$numberLong": "42"}, "bigint": {"$numberLong": "9000000000"}, "ts": {"$timestamp": {"t": 5, "i": 7}}, "dec": {"$numberDecimal": "1.50"}, "min": {"$minKey": 1}, "max": {"$maxKey": 1}, "undef": null, "sym": "sym", "dbref": {"$ref": "coll", "$id": {"$numberInt": "5"}, "x": {"$numberInt": "1"}}}"#
        );
    }

    #[test]
    fn colours_by_operation_type() {
        assert_eq!(colour_for(Some("insert")), Some("\x1b[32m"));
        assert_eq!(colour_for(Some("delete")), Some("\x1b[31m"));
        assert_eq!(colour_for(None), None);
    }
}
