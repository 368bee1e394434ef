//! Order-preserving, self-delimiting byte encoding of BSON values for index keys and
//! `_id` keys.
//!
//! Invariant (property-tested): for all values `a`, `b`,
//! `encode(a).cmp(&encode(b)) == cmp::compare(a, b)`, and values that compare equal
//! (Int32 1, Int64 1, Double 1.0, Decimal128 1.00) encode to identical bytes, so a
//! unique index can test byte equality. Every encoding is prefix-free, which makes
//! concatenations of parts ([`encode_key`]) compare part by part and lets a descending
//! part be the bitwise inverse of its ascending form.
//!
//! Layout: one type-bracket byte (cmp's bracket, all >= 1) then a body:
//! * numbers: a class byte (NaN, -inf, negative, zero, positive, +inf) and, for finite
//!   non-zero values, the big-endian biased decimal exponent and the significant
//!   decimal digits (each digit + 1) ended by 0; negatives invert those bytes. This is
//!   the exact decimal form of [`cmp::Num`], so all four numeric types share one order;
//! * strings, field names, regex parts, code: bytes with 0x00 escaped as 0x00 0xFF,
//!   ended by 0x00 0x00;
//! * documents: per field, value bracket, escaped name, value body; ended by 0x00;
//! * arrays: per element, the value encoding; ended by 0x00;
//! * BinData: big-endian length, subtype, bytes; ObjectId: 12 bytes; Bool: 1 byte;
//!   Date: i64 with sign bit flipped; Timestamp: u64 big-endian.

use bson::{Bson, Document};

use crate::cmp::{self, Num};
use crate::collation::Collation;

/// Appends the ascending encoding of `v`.
pub fn encode_value(v: &Bson, out: &mut Vec<u8>) {
    out.push(cmp::type_bracket(v));
    encode_body(v, out);
}

/// Appends the descending encoding of `v`: the bitwise inverse of the ascending one.
pub fn encode_value_desc(v: &Bson, out: &mut Vec<u8>) {
    let start = out.len();
    encode_value(v, out);
    for b in &mut out[start..] {
        *b = !*b;
    }
}

/// Encodes a compound key; each part ascending or descending (`true`).
pub fn encode_key(parts: &[(&Bson, bool)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 * parts.len());
    for (v, desc) in parts {
        if *desc {
            encode_value_desc(v, &mut out);
        } else {
            encode_value(v, &mut out);
        }
    }
    out
}

/// The ascending encoding of one value.
pub fn encode(v: &Bson) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    encode_value(v, &mut out);
    out
}

/// [`encode_value`] under a collation (`None`: simple, the same bytes): every string
/// and symbol, at any depth, is its sort key (escaped as strings are), so keys order as
/// the collation compares and strings it finds equal encode identically. Field names
/// keep their bytes, as in mongod's comparison. Only for index keys: nothing decodes it.
pub fn encode_value_collated(v: &Bson, collation: Option<&Collation>, out: &mut Vec<u8>) {
    let Some(c) = collation else {
        return encode_value(v, out);
    };
    match v {
        Bson::String(s) | Bson::Symbol(s) => {
            out.push(cmp::type_bracket(v));
            let mut sort_key = Vec::with_capacity(s.len() * 2);
            c.write_sort_key(s, &mut sort_key);
            encode_str(&sort_key, out);
        }
        Bson::Document(d) => {
            out.push(cmp::type_bracket(v));
            encode_document_collated(d, c, out);
        }
        Bson::JavaScriptCodeWithScope(code) => {
            out.push(cmp::type_bracket(v));
            encode_str(code.code.as_bytes(), out);
            encode_document_collated(&code.scope, c, out);
        }
        Bson::Array(a) => {
            out.push(cmp::type_bracket(v));
            for el in a {
                encode_value_collated(el, Some(c), out);
            }
            out.push(0);
        }
        other => encode_value(other, out),
    }
}

fn encode_document_collated(d: &Document, c: &Collation, out: &mut Vec<u8>) {
    for (k, x) in d {
        out.push(cmp::type_bracket(x));
        encode_str(k.as_bytes(), out);
        // The body: the collated encoding without its bracket byte.
        let start = out.len();
        encode_value_collated(x, Some(c), out);
        out.remove(start);
    }
    out.push(0);
}

/// [`encode_value_desc`] under a collation.
pub fn encode_value_collated_desc(v: &Bson, collation: Option<&Collation>, out: &mut Vec<u8>) {
    let start = out.len();
    encode_value_collated(v, collation, out);
    for b in &mut out[start..] {
        *b = !*b;
    }
}

/// [`encode_key`] under a collation.
pub fn encode_key_collated(parts: &[(&Bson, bool)], collation: Option<&Collation>) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 * parts.len());
    for (v, desc) in parts {
        if *desc {
            encode_value_collated_desc(v, collation, &mut out);
        } else {
            encode_value_collated(v, collation, &mut out);
        }
    }
    out
}

fn encode_str(s: &[u8], out: &mut Vec<u8>) {
    for &b in s {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.push(0);
    out.push(0);
}

fn encode_document(d: &Document, out: &mut Vec<u8>) {
    for (k, v) in d {
        out.push(cmp::type_bracket(v));
        encode_str(k.as_bytes(), out);
        encode_body(v, out);
    }
    out.push(0);
}

fn encode_body(v: &Bson, out: &mut Vec<u8>) {
    match v {
        Bson::MinKey | Bson::MaxKey | Bson::Null | Bson::Undefined => {}
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => {
            encode_number(&Num::from_bson(v).unwrap_or(Num::Zero), out)
        }
        Bson::String(s) | Bson::Symbol(s) | Bson::JavaScriptCode(s) => {
            encode_str(s.as_bytes(), out)
        }
        Bson::Document(d) => encode_document(d, out),
        Bson::Array(a) => {
            for el in a {
                encode_value(el, out);
            }
            out.push(0);
        }
        Bson::Binary(b) => {
            out.extend_from_slice(&(b.bytes.len() as u32).to_be_bytes());
            out.push(u8::from(b.subtype));
            out.extend_from_slice(&b.bytes);
        }
        Bson::ObjectId(o) => out.extend_from_slice(&o.bytes()),
        Bson::Boolean(b) => out.push(u8::from(*b)),
        Bson::DateTime(d) => {
            out.extend_from_slice(&((d.timestamp_millis() as u64) ^ (1 << 63)).to_be_bytes())
        }
        Bson::Timestamp(t) => {
            out.extend_from_slice(&t.time.to_be_bytes());
            out.extend_from_slice(&t.increment.to_be_bytes());
        }
        Bson::RegularExpression(r) => {
            encode_str(r.pattern.as_str().as_bytes(), out);
            encode_str(r.options.as_str().as_bytes(), out);
        }
        Bson::DbPointer(_) => {
            let (ns, oid) = cmp::db_pointer_parts(v);
            out.extend_from_slice(&(ns.len() as u32).to_be_bytes());
            encode_str(ns.as_bytes(), out);
            out.extend_from_slice(&oid);
        }
        Bson::JavaScriptCodeWithScope(c) => {
            encode_str(c.code.as_bytes(), out);
            encode_document(&c.scope, out);
        }
    }
}

fn encode_number(n: &Num, out: &mut Vec<u8>) {
    match n {
        Num::NaN => out.push(0x10),
        Num::NegInf => out.push(0x20),
        Num::Zero => out.push(0x40),
        Num::PosInf => out.push(0x60),
        Num::Finite {
            negative,
            exp,
            digits,
        } => {
            out.push(if *negative { 0x30 } else { 0x50 });
            let start = out.len();
            // Exponents of Decimal128 lie within +-6200; bias keeps them unsigned.
            let biased = (*exp + 0x8000).clamp(0, 0xFFFF) as u16;
            out.extend_from_slice(&biased.to_be_bytes());
            out.extend(digits.iter().map(|d| d + 1));
            out.push(0);
            if *negative {
                for b in &mut out[start..] {
                    *b = !*b;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmp::tests::arb_bson;
    use bson::{bson, Decimal128};
    use proptest::prelude::*;
    use std::cmp::Ordering;
    use std::str::FromStr;

    #[test]
    fn equal_numbers_encode_identically() {
        let one = encode(&Bson::Int32(1));
        assert_eq!(one, encode(&Bson::Int64(1)));
        assert_eq!(one, encode(&Bson::Double(1.0)));
        assert_eq!(
            one,
            encode(&Bson::Decimal128(
                Decimal128::from_str("1.00").expect("decimal")
            ))
        );
        assert_eq!(encode(&Bson::Double(-0.0)), encode(&Bson::Int32(0)));
        assert_eq!(
            encode(&bson!({"a": [1, 2.0]})),
            encode(&bson!({"a": [1_i64, 2_i64]}))
        );
    }

    #[test]
    fn int64_beyond_double_precision() {
        let a = encode(&Bson::Int64((1 << 53) + 1));
        let b = encode(&Bson::Double(9007199254740992.0));
        assert_eq!(a.cmp(&b), Ordering::Greater);
    }

    #[test]
    fn descending_reverses() {
        let a = encode_key(&[(&bson!(1), true), (&bson!("x"), false)]);
        let b = encode_key(&[(&bson!(2), true), (&bson!("a"), false)]);
        assert!(a > b);
        let c = encode_key(&[(&bson!("ab"), true)]);
        let d = encode_key(&[(&bson!("a"), true)]);
        assert!(c < d);
    }

    fn collation(spec: Document) -> std::sync::Arc<Collation> {
        Collation::parse(&spec).expect("valid").expect("not simple")
    }

    #[test]
    fn collated_keys_are_sort_keys() {
        let ci = collation(bson::doc! {"locale": "en", "strength": 2});
        let k = |v: Bson| {
            let mut out = Vec::new();
            encode_value_collated(&v, Some(&ci), &mut out);
            out
        };
        // Case-insensitive: one key for "a" and "A", at any depth.
        assert_eq!(k(bson!("a")), k(bson!("A")));
        assert_eq!(k(bson!({"x": ["Ab", "c"]})), k(bson!({"x": ["aB", "C"]})));
        // Field names keep their bytes.
        assert_ne!(k(bson!({"x": 1})), k(bson!({"X": 1})));
        // Alphabetical: "B" after "a" (byte order puts it first).
        assert!(k(bson!("a")) < k(bson!("B")));
        assert!(encode(&bson!("a")) > encode(&bson!("B")));
        // Numbers and other types are as without a collation; brackets stay in order.
        assert_eq!(k(bson!(5)), encode(&bson!(5)));
        assert!(k(bson!(5)) < k(bson!("")) && k(bson!("zzz")) < k(bson!({})));
        let mut none = Vec::new();
        encode_value_collated(&bson!("Ab"), None, &mut none);
        assert_eq!(none, encode(&bson!("Ab")));
        let desc = encode_key_collated(&[(&bson!("a"), true)], Some(&ci));
        assert!(desc > encode_key_collated(&[(&bson!("B"), true)], Some(&ci)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn collated_encoding_matches_collated_compare(a in arb_bson(), b in arb_bson(), strength in 1..=3i32) {
            let c = collation(bson::doc! {"locale": "fr", "strength": strength});
            let (mut ea, mut eb) = (Vec::new(), Vec::new());
            encode_value_collated(&a, Some(&c), &mut ea);
            encode_value_collated(&b, Some(&c), &mut eb);
            prop_assert_eq!(ea.cmp(&eb), cmp::compare_collated(&a, &b, Some(&c)), "{:?} vs {:?}", a, b);
        }

        #[test]
        fn encoding_matches_compare(a in arb_bson(), b in arb_bson()) {
            let (ea, eb) = (encode(&a), encode(&b));
            prop_assert_eq!(ea.cmp(&eb), cmp::compare(&a, &b), "{:?} vs {:?}", a, b);
        }

        #[test]
        fn compound_keys_match_compare(
            a1 in arb_bson(), a2 in arb_bson(), b1 in arb_bson(), b2 in arb_bson(),
            d1 in any::<bool>(), d2 in any::<bool>()
        ) {
            let ka = encode_key(&[(&a1, d1), (&a2, d2)]);
            let kb = encode_key(&[(&b1, d1), (&b2, d2)]);
            let o1 = cmp::compare(&a1, &b1);
            let o1 = if d1 { o1.reverse() } else { o1 };
            let o2 = cmp::compare(&a2, &b2);
            let o2 = if d2 { o2.reverse() } else { o2 };
            prop_assert_eq!(ka.cmp(&kb), o1.then(o2));
        }
    }
}
