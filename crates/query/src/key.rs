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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
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
