//! mongod's hash of a BSON value (`BSONElementHasher::hash64`, seed 0): the key of a
//! `hashed` index field, `$toHashedIndexKey` and mongosh's `convertShardKeyToHashed`.
//!
//! MD5 over: the seed (a little-endian `int32`), then the value's element without its
//! name: its canonical type (`canonicalizeBSONType`, a little-endian `int32`), then
//! * for a number of any type, `safeNumberLongForHash` as a little-endian `int64`
//!   (doubles truncated and saturated, NaN 0, exactly 2^63 wrapping to -2^63; a
//!   Decimal128 rounded half to even), so `1`, `1L`, `1.0` and `1.9` hash alike;
//! * for a document or an array, each element in order, this time with its field name
//!   (with its NUL), ended by the end-of-object marker (canonical type 0, no name);
//!   code with scope hashes its code string (with its NUL) before its scope's elements;
//! * for anything else, the value's BSON bytes as stored.
//!
//! Under a collation (a hashed field of an index with one), a string hashes as the
//! string whose bytes are its collation key, at any depth of a document or array (mongod's
//! `CollationIndexKey::collationAwareIndexKeyAppend` before the hash), so strings the
//! collation finds equal hash alike and a collated equality can read the index.
//!
//! The result is the digest's first 8 bytes read as a little-endian `int64`. Values the
//! comparison order holds equal hash alike, so an equality's hashed bounds find every
//! document the equality can match (and the matcher rejects the rest).

use bson::{Bson, Document};
use md5::{Digest, Md5};

use crate::cmp::Num;
use crate::collation::Collation;

/// The hash of `v` as a hashed index stores it.
pub fn hash64(v: &Bson) -> i64 {
    hash64_collated(v, None)
}

/// The hash of `v` as a hashed index with `collation` (`None`: simple) stores it.
pub fn hash64_collated(v: &Bson, collation: Option<&Collation>) -> i64 {
    let mut h = Md5::new();
    h.update(0i32.to_le_bytes());
    hash_value(&mut h, v, collation);
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_le_bytes(first)
}

/// mongod's `canonicalizeBSONType`: the comparison bracket, with mongod's own
/// numbers for the two brackets [`crate::cmp::type_bracket`] renumbers.
fn canonical_type(v: &Bson) -> i32 {
    match v {
        Bson::MinKey => -1,
        Bson::Undefined => 0,
        _ => i32::from(crate::cmp::type_bracket(v)),
    }
}

fn hash_value(h: &mut Md5, v: &Bson, c: Option<&Collation>) {
    h.update(canonical_type(v).to_le_bytes());
    hash_body(h, v, c);
}

fn hash_element(h: &mut Md5, name: &str, v: &Bson, c: Option<&Collation>) {
    h.update(canonical_type(v).to_le_bytes());
    h.update(name.as_bytes());
    h.update([0u8]);
    hash_body(h, v, c);
}

fn hash_document(h: &mut Md5, d: &Document, c: Option<&Collation>) {
    for (k, v) in d {
        hash_element(h, k, v, c);
    }
    // The end-of-object element: canonical type 0, an empty name of size 0.
    h.update(0i32.to_le_bytes());
}

fn hash_body(h: &mut Md5, v: &Bson, c: Option<&Collation>) {
    match v {
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => {
            h.update(number_for_hash(v).to_le_bytes());
        }
        // A BSON string's body (int32 size with the NUL, bytes, NUL) of the key.
        Bson::String(s) if c.is_some() => {
            let mut key = Vec::new();
            if let Some(c) = c {
                c.write_sort_key(s, &mut key);
            }
            let size = i32::try_from(key.len() + 1).unwrap_or(i32::MAX);
            h.update(size.to_le_bytes());
            h.update(&key);
            h.update([0u8]);
        }
        Bson::Document(d) => hash_document(h, d, c),
        Bson::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                hash_element(h, &i.to_string(), item, c);
            }
            h.update(0i32.to_le_bytes());
        }
        // Code with scope is not collated (mongod collates strings, documents, arrays).
        Bson::JavaScriptCodeWithScope(code) => {
            h.update(code.code.as_bytes());
            h.update([0u8]);
            hash_document(h, &code.scope, None);
        }
        other => h.update(value_bytes(other)),
    }
}

/// The bytes of `v`'s value as BSON stores it (after the type byte and name).
fn value_bytes(v: &Bson) -> Vec<u8> {
    let mut d = Document::new();
    d.insert("", v.clone());
    let mut bytes = Vec::new();
    if d.to_writer(&mut bytes).is_err() {
        // Only values BSON cannot hold (none of the types reaching here) fail.
        return Vec::new();
    }
    // int32 length, type byte, the empty name's NUL, the value, the document's NUL.
    bytes
        .get(6..bytes.len().saturating_sub(1))
        .map(<[u8]>::to_vec)
        .unwrap_or_default()
}

/// mongod's `safeNumberLongForHash`.
fn number_for_hash(v: &Bson) -> i64 {
    match v {
        Bson::Int32(n) => i64::from(*n),
        Bson::Int64(n) => *n,
        // 2^63 exactly wraps (older servers' overflowing cast); otherwise Rust's
        // saturating, truncating, NaN-to-0 cast is safeNumberLong's.
        Bson::Double(d) if *d == 9_223_372_036_854_775_808.0 => i64::MIN,
        Bson::Double(d) => *d as i64,
        Bson::Decimal128(d) => decimal_to_long(&Num::parse(&d.to_string())),
        _ => 0,
    }
}

/// `Decimal128::toLong` (round half to even) with safeNumberLong's saturation.
fn decimal_to_long(n: &Num) -> i64 {
    match n {
        Num::NaN | Num::Zero => 0,
        Num::NegInf => i64::MIN,
        Num::PosInf => i64::MAX,
        Num::Finite {
            negative,
            exp,
            digits,
        } => {
            let saturated = if *negative { i64::MIN } else { i64::MAX };
            if *exp >= 19 {
                return saturated;
            }
            // Integer part: digits[..=exp]; the rest decides the rounding.
            let int_len = usize::try_from(exp + 1).unwrap_or(0);
            let mut int: i128 = 0;
            for i in 0..int_len {
                int = int * 10 + i128::from(digits.get(i).copied().unwrap_or(0));
            }
            let rest: &[u8] = digits.get(int_len..).unwrap_or(&[]);
            // `exp < -1` puts zeros before the first digit: below a half.
            let first = if *exp < -1 {
                0
            } else {
                rest.first().copied().unwrap_or(0)
            };
            let beyond = if *exp < -1 {
                !rest.is_empty()
            } else {
                rest.len() > 1
            };
            let round_up = first > 5 || (first == 5 && (beyond || int % 2 == 1));
            if round_up {
                int += 1;
            }
            let signed = if *negative { -int } else { int };
            i64::try_from(signed).unwrap_or(saturated)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn mongod_vectors() {
        // hasher.cpp's startup check: {check: 42}.
        assert_eq!(hash64(&Bson::Int32(42)), -944302157085130861);
        // The manual's $toHashedIndexKey example.
        assert_eq!(
            hash64(&Bson::String("string to hash".into())),
            763543691661428748
        );
        // mongosh's test of convertShardKeyToHashed({foo: "bar"}).
        assert_eq!(
            hash64(&Bson::Document(doc! {"foo": "bar"})),
            4975617422686807705
        );
    }

    #[test]
    fn collated_strings_hash_their_collation_keys() {
        let ci = Collation::parse(&doc! {"locale": "en", "strength": 2})
            .expect("spec")
            .expect("not simple");
        let ci = Some(&*ci);
        let s = |x: &str| Bson::String(x.into());
        assert_eq!(
            hash64_collated(&s("Abc"), ci),
            hash64_collated(&s("aBC"), ci)
        );
        assert_ne!(
            hash64_collated(&s("abc"), ci),
            hash64_collated(&s("abd"), ci)
        );
        assert_ne!(hash64_collated(&s("abc"), ci), hash64(&s("abc")));
        // At any depth; numbers and other types hash as without a collation.
        assert_eq!(
            hash64_collated(&Bson::Document(doc! {"x": ["A", {"y": "B"}]}), ci),
            hash64_collated(&Bson::Document(doc! {"x": ["a", {"y": "b"}]}), ci)
        );
        assert_eq!(
            hash64_collated(&Bson::Int32(7), ci),
            hash64(&Bson::Int32(7))
        );
        let no_strings = Bson::Document(doc! {"x": [1, {"y": true}]});
        assert_eq!(hash64_collated(&no_strings, ci), hash64(&no_strings));
    }

    #[test]
    fn numbers_hash_as_longs() {
        let h = hash64(&Bson::Int32(42));
        assert_eq!(hash64(&Bson::Int64(42)), h);
        assert_eq!(hash64(&Bson::Double(42.0)), h);
        assert_eq!(hash64(&Bson::Double(42.7)), h);
        let dec = |s: &str| Bson::Decimal128(s.parse().expect("decimal"));
        assert_eq!(hash64(&dec("42.00")), h);
        assert_eq!(hash64(&dec("41.5")), h);
        assert_eq!(hash64(&dec("42.5")), h);
        assert_ne!(hash64(&dec("42.51")), h);
        assert_eq!(hash64(&Bson::Double(f64::NAN)), hash64(&Bson::Int32(0)));
        assert_eq!(
            hash64(&Bson::Double(9_223_372_036_854_775_808.0)),
            hash64(&Bson::Int64(i64::MIN))
        );
        assert_eq!(hash64(&Bson::Double(1e300)), hash64(&Bson::Int64(i64::MAX)));
        assert_eq!(decimal_to_long(&Num::parse("0.5")), 0);
        assert_eq!(decimal_to_long(&Num::parse("0.51")), 1);
        assert_eq!(decimal_to_long(&Num::parse("0.05")), 0);
        assert_eq!(decimal_to_long(&Num::parse("-2.5")), -2);
        assert_eq!(decimal_to_long(&Num::parse("-3.5")), -4);
        assert_eq!(decimal_to_long(&Num::parse("1e30")), i64::MAX);
    }

    #[test]
    fn types_differ() {
        assert_ne!(hash64(&Bson::Null), hash64(&Bson::Undefined));
        assert_ne!(
            hash64(&Bson::String("a".into())),
            hash64(&Bson::Symbol("b".into()))
        );
        assert_eq!(
            hash64(&Bson::String("a".into())),
            hash64(&Bson::Symbol("a".into()))
        );
        assert_ne!(
            hash64(&Bson::Document(doc! {"a": 1})),
            hash64(&Bson::Document(doc! {"b": 1}))
        );
    }
}
