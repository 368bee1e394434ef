//! mongod's total order over BSON values (the order of `sort`, `$lt`/`$gt`, `$min`/`$max`
//! and index keys).
//!
//! Values are first ordered by their *canonical type bracket* (mongod's
//! `canonicalizeBSONType`): MinKey < Undefined < Null < numbers < String/Symbol <
//! Object < Array < BinData < ObjectId < Bool < Date < Timestamp < Regex < DBPointer <
//! Code < CodeWScope < MaxKey. mongod gives Undefined its own bracket (0) below Null (5),
//! so `undefined < null` here too. Within a bracket values compare as
//! `compareElementValues` does:
//!
//! * numbers by exact value across Int32/Int64/Double/Decimal128; NaN equals NaN and is
//!   below every other number; `-0.0 == 0.0`;
//! * strings and symbols bytewise (simple binary collation), shorter prefix first;
//! * documents element by element: type bracket, then field name, then value; the
//!   shorter document first;
//! * arrays element by element, shorter first;
//! * BinData by length, then subtype, then bytes;
//! * regexes by pattern, then flags; DBPointer by namespace length, namespace, oid;
//!   CodeWScope by code, then scope.
//!
//! Int64 against Double is exact (2^53+1 > 2^53 as a double). A Decimal128 is compared
//! through an exact decimal form ([`Num`]); a Double meeting a Decimal128 is rounded to
//! 34 significant digits first, as mongod does (`Decimal128(double, kRoundTo34Digits)`).
//! Because distinct doubles have distinct 34-digit forms and no non-integral double
//! rounds onto an integer in that form, [`Num`] orders all numbers consistently with the
//! exact binary comparisons; `key.rs` relies on that.

use std::cmp::Ordering;

use bson::{Bson, Document};

use crate::collation::Collation;

/// The canonical type bracket of a value (mongod's `canonicalizeBSONType`).
/// Values in different brackets never compare equal.
pub fn type_bracket(v: &Bson) -> u8 {
    match v {
        Bson::MinKey => 1,
        Bson::Undefined => 2,
        Bson::Null => 5,
        Bson::Double(_) | Bson::Int32(_) | Bson::Int64(_) | Bson::Decimal128(_) => 10,
        Bson::String(_) | Bson::Symbol(_) => 15,
        Bson::Document(_) => 20,
        Bson::Array(_) => 25,
        Bson::Binary(_) => 30,
        Bson::ObjectId(_) => 35,
        Bson::Boolean(_) => 40,
        Bson::DateTime(_) => 45,
        Bson::Timestamp(_) => 47,
        Bson::RegularExpression(_) => 50,
        Bson::DbPointer(_) => 55,
        Bson::JavaScriptCode(_) => 60,
        Bson::JavaScriptCodeWithScope(_) => 65,
        Bson::MaxKey => 127,
    }
}

/// Whether a value is one of the four numeric types.
pub fn is_number(v: &Bson) -> bool {
    matches!(
        v,
        Bson::Double(_) | Bson::Int32(_) | Bson::Int64(_) | Bson::Decimal128(_)
    )
}

/// Compares two values in mongod's order.
pub fn compare(a: &Bson, b: &Bson) -> Ordering {
    compare_by(a, b, bytewise)
}

/// [`compare`] under a collation (`None`: the simple collation, byte order).
pub fn compare_collated(a: &Bson, b: &Bson, collation: Option<&Collation>) -> Ordering {
    match collation {
        None => compare(a, b),
        Some(c) => compare_by(a, b, |x, y| c.compare(x, y)),
    }
}

/// [`values_equal`] under a collation.
pub fn values_equal_collated(a: &Bson, b: &Bson, collation: Option<&Collation>) -> bool {
    compare_collated(a, b, collation) == Ordering::Equal
}

fn bytewise(x: &str, y: &str) -> Ordering {
    x.as_bytes().cmp(y.as_bytes())
}

/// mongod's order with `strings` comparing string (and symbol) values, wherever they
/// are nested; everything else, field names included, compares as always.
fn compare_by<F: Fn(&str, &str) -> Ordering + Copy>(a: &Bson, b: &Bson, strings: F) -> Ordering {
    let (ta, tb) = (type_bracket(a), type_bracket(b));
    if ta != tb {
        return ta.cmp(&tb);
    }
    match (a, b) {
        (Bson::String(x) | Bson::Symbol(x), Bson::String(y) | Bson::Symbol(y)) => strings(x, y),
        (Bson::Document(x), Bson::Document(y)) => compare_documents_by(x, y, strings),
        (Bson::Array(x), Bson::Array(y)) => compare_arrays_by(x, y, strings),
        (Bson::Binary(x), Bson::Binary(y)) => x
            .bytes
            .len()
            .cmp(&y.bytes.len())
            .then_with(|| u8::from(x.subtype).cmp(&u8::from(y.subtype)))
            .then_with(|| x.bytes.cmp(&y.bytes)),
        (Bson::ObjectId(x), Bson::ObjectId(y)) => x.bytes().cmp(&y.bytes()),
        (Bson::Boolean(x), Bson::Boolean(y)) => x.cmp(y),
        (Bson::DateTime(x), Bson::DateTime(y)) => x.timestamp_millis().cmp(&y.timestamp_millis()),
        (Bson::Timestamp(x), Bson::Timestamp(y)) => {
            (x.time, x.increment).cmp(&(y.time, y.increment))
        }
        (Bson::RegularExpression(x), Bson::RegularExpression(y)) => x
            .pattern
            .as_str()
            .as_bytes()
            .cmp(y.pattern.as_str().as_bytes())
            .then_with(|| {
                x.options
                    .as_str()
                    .as_bytes()
                    .cmp(y.options.as_str().as_bytes())
            }),
        (Bson::DbPointer(_), Bson::DbPointer(_)) => {
            let (nx, ox) = db_pointer_parts(a);
            let (ny, oy) = db_pointer_parts(b);
            nx.len()
                .cmp(&ny.len())
                .then_with(|| nx.as_bytes().cmp(ny.as_bytes()))
                .then_with(|| ox.cmp(&oy))
        }
        (Bson::JavaScriptCode(x), Bson::JavaScriptCode(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Bson::JavaScriptCodeWithScope(x), Bson::JavaScriptCodeWithScope(y)) => x
            .code
            .as_bytes()
            .cmp(y.code.as_bytes())
            .then_with(|| compare_documents_by(&x.scope, &y.scope, strings)),
        _ if ta == 10 => compare_numbers(a, b),
        // MinKey, MaxKey, Null, Undefined: one value per bracket.
        _ => Ordering::Equal,
    }
}

/// `compare(a, b) == Equal`: mongod's notion of equal values (so `1`, `NumberLong(1)`
/// and `1.0` are equal).
pub fn values_equal(a: &Bson, b: &Bson) -> bool {
    compare(a, b) == Ordering::Equal
}

/// Compares documents as mongod's `BSONObj::woCompare` with field names considered.
pub fn compare_documents(a: &Document, b: &Document) -> Ordering {
    compare_documents_by(a, b, bytewise)
}

fn compare_documents_by<F: Fn(&str, &str) -> Ordering + Copy>(
    a: &Document,
    b: &Document,
    strings: F,
) -> Ordering {
    let mut ia = a.iter();
    let mut ib = b.iter();
    loop {
        match (ia.next(), ib.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some((ka, va)), Some((kb, vb))) => {
                let o = type_bracket(va)
                    .cmp(&type_bracket(vb))
                    .then_with(|| ka.as_bytes().cmp(kb.as_bytes()))
                    .then_with(|| compare_by(va, vb, strings));
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

/// Compares arrays element by element, the shorter first.
pub fn compare_arrays(a: &[Bson], b: &[Bson]) -> Ordering {
    compare_arrays_by(a, b, bytewise)
}

fn compare_arrays_by<F: Fn(&str, &str) -> Ordering + Copy>(
    a: &[Bson],
    b: &[Bson],
    strings: F,
) -> Ordering {
    for (x, y) in a.iter().zip(b.iter()) {
        let o = compare_by(x, y, strings);
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

/// The namespace and ObjectId bytes of a DBPointer (the bson crate keeps its fields
/// private, so they are read back from the value's BSON encoding:
/// `int32 len, ns bytes, NUL, 12 oid bytes`).
pub(crate) fn db_pointer_parts(v: &Bson) -> (String, [u8; 12]) {
    let mut d = Document::new();
    d.insert("p", v.clone());
    let bytes = d.to_vec().unwrap_or_default();
    // 4 (doc len) + 1 (type) + 2 ("p\0") = 7: the value starts there.
    let mut oid = [0u8; 12];
    if bytes.len() < 11 {
        return (String::new(), oid);
    }
    let n = i32::from_le_bytes([bytes[7], bytes[8], bytes[9], bytes[10]]).max(1) as usize;
    let ns_end = (11 + n - 1).min(bytes.len());
    let ns = String::from_utf8_lossy(&bytes[11..ns_end]).into_owned();
    if let Some(o) = bytes.get(ns_end + 1..ns_end + 13) {
        oid.copy_from_slice(o);
    }
    (ns, oid)
}

/// Compares two numeric values (any of Int32/Int64/Double/Decimal128).
pub fn compare_numbers(a: &Bson, b: &Bson) -> Ordering {
    match (a, b) {
        (Bson::Int32(x), Bson::Int32(y)) => x.cmp(y),
        (Bson::Int32(x), Bson::Int64(y)) => i64::from(*x).cmp(y),
        (Bson::Int64(x), Bson::Int32(y)) => x.cmp(&i64::from(*y)),
        (Bson::Int64(x), Bson::Int64(y)) => x.cmp(y),
        (Bson::Double(x), Bson::Double(y)) => compare_doubles(*x, *y),
        (Bson::Int32(x), Bson::Double(y)) => compare_doubles(f64::from(*x), *y),
        (Bson::Double(x), Bson::Int32(y)) => compare_doubles(*x, f64::from(*y)),
        (Bson::Int64(x), Bson::Double(y)) => compare_i64_f64(*x, *y),
        (Bson::Double(x), Bson::Int64(y)) => compare_i64_f64(*y, *x).reverse(),
        _ => match (Num::from_bson(a), Num::from_bson(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => Ordering::Equal,
        },
    }
}

/// Double order with NaN equal to NaN and below everything else.
pub fn compare_doubles(x: f64, y: f64) -> Ordering {
    match (x.is_nan(), y.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        // Neither is NaN, so partial_cmp is total; -0.0 == 0.0.
        _ => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
    }
}

/// Exact comparison of an int64 with a double (no rounding of the int64).
pub fn compare_i64_f64(i: i64, d: f64) -> Ordering {
    if d.is_nan() {
        return Ordering::Greater;
    }
    // 2^63 as f64 is exact; every i64 is below it and at or above -2^63.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if d >= TWO_63 {
        return Ordering::Less;
    }
    if d < -TWO_63 {
        return Ordering::Greater;
    }
    // d is in [-2^63, 2^63): its truncation fits in i64 exactly.
    let t = d.trunc();
    let ti = t as i64;
    match i.cmp(&ti) {
        Ordering::Equal => {
            let frac = d - t;
            if frac > 0.0 {
                Ordering::Less
            } else if frac < 0.0 {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        }
        o => o,
    }
}

/// An exact decimal form of a number used where Decimal128 is involved and for index
/// keys: NaN < -inf < negatives < zero < positives < +inf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Num {
    NaN,
    NegInf,
    /// A non-zero finite value `0.d1d2d3... * 10^(exp+1)`, i.e. `d1.d2d3... * 10^exp`;
    /// `digits` are 0..=9 without leading or trailing zeros.
    Finite {
        negative: bool,
        exp: i32,
        digits: Vec<u8>,
    },
    Zero,
    PosInf,
}

impl Num {
    /// The exact decimal form of a numeric value, `None` for non-numbers.
    pub fn from_bson(v: &Bson) -> Option<Num> {
        match v {
            Bson::Int32(i) => Some(Num::from_i64(i64::from(*i))),
            Bson::Int64(i) => Some(Num::from_i64(*i)),
            Bson::Double(d) => Some(Num::from_f64(*d)),
            Bson::Decimal128(d) => Some(Num::parse(&d.to_string())),
            _ => None,
        }
    }

    /// Exact decimal form of an integer.
    pub fn from_i64(i: i64) -> Num {
        if i == 0 {
            return Num::Zero;
        }
        let negative = i < 0;
        let s = i.unsigned_abs().to_string();
        Num::from_digit_str(negative, s.as_bytes(), s.len() as i32 - 1)
    }

    /// A double as mongod compares it against a Decimal128: integral values below 2^63
    /// exactly, others rounded to 34 significant digits.
    pub fn from_f64(d: f64) -> Num {
        if d.is_nan() {
            return Num::NaN;
        }
        if d == 0.0 {
            return Num::Zero;
        }
        if d.is_infinite() {
            return if d > 0.0 { Num::PosInf } else { Num::NegInf };
        }
        if d.fract() == 0.0 && d.abs() < 9.0e18 {
            return Num::from_i64(d as i64);
        }
        // `{:.33e}` is correctly rounded: 34 significant digits.
        Num::parse(&format!("{:.33e}", d))
    }

    fn from_digit_str(negative: bool, digits: &[u8], exp: i32) -> Num {
        // digits are ASCII, first non-zero.
        let mut ds: Vec<u8> = digits.iter().map(|c| c - b'0').collect();
        while ds.last() == Some(&0) {
            ds.pop();
        }
        if ds.is_empty() {
            return Num::Zero;
        }
        Num::Finite {
            negative,
            exp,
            digits: ds,
        }
    }

    /// Parses the string forms produced by Decimal128's Display and by `{:e}`:
    /// `[-]digits[.digits][(e|E)[+-]exp]`, `NaN`, `[-]Infinity`, `[-]inf`.
    pub fn parse(s: &str) -> Num {
        let (negative, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let lower = body.to_ascii_lowercase();
        if lower.contains("nan") {
            return Num::NaN;
        }
        if lower.starts_with("inf") {
            return if negative { Num::NegInf } else { Num::PosInf };
        }
        let (mantissa, exponent) = match lower.find('e') {
            Some(p) => (&lower[..p], lower[p + 1..].parse::<i32>().unwrap_or(0)),
            None => (&lower[..], 0),
        };
        let (int_part, frac_part) = match mantissa.find('.') {
            Some(p) => (&mantissa[..p], &mantissa[p + 1..]),
            None => (mantissa, ""),
        };
        let mut all: Vec<u8> = Vec::with_capacity(int_part.len() + frac_part.len());
        all.extend_from_slice(int_part.as_bytes());
        all.extend_from_slice(frac_part.as_bytes());
        // Value = all-digits * 10^(exponent - frac_len).
        let lead = all.iter().take_while(|c| **c == b'0').count();
        if lead == all.len() {
            return Num::Zero;
        }
        let sig = &all[lead..];
        // Position of the first significant digit relative to the decimal point.
        let exp = exponent + (int_part.len() as i32 - 1) - lead as i32;
        Num::from_digit_str(negative, sig, exp)
    }

    fn rank(&self) -> u8 {
        match self {
            Num::NaN => 0,
            Num::NegInf => 1,
            Num::Finite { negative: true, .. } => 2,
            Num::Zero => 3,
            Num::Finite {
                negative: false, ..
            } => 4,
            Num::PosInf => 5,
        }
    }
}

impl Ord for Num {
    fn cmp(&self, other: &Num) -> Ordering {
        let r = self.rank().cmp(&other.rank());
        if r != Ordering::Equal {
            return r;
        }
        match (self, other) {
            (
                Num::Finite {
                    negative,
                    exp: ea,
                    digits: da,
                },
                Num::Finite {
                    exp: eb,
                    digits: db,
                    ..
                },
            ) => {
                let magnitude = ea.cmp(eb).then_with(|| da.cmp(db));
                if *negative {
                    magnitude.reverse()
                } else {
                    magnitude
                }
            }
            _ => Ordering::Equal,
        }
    }
}

impl PartialOrd for Num {
    fn partial_cmp(&self, other: &Num) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bson::{doc, oid::ObjectId, spec::BinarySubtype, Binary, Decimal128, Timestamp};
    use proptest::prelude::*;
    use std::str::FromStr;

    fn dec(s: &str) -> Bson {
        Bson::Decimal128(Decimal128::from_str(s).expect("test decimal"))
    }

    #[test]
    fn bracket_order() {
        let ordered = vec![
            Bson::MinKey,
            Bson::Undefined,
            Bson::Null,
            Bson::Double(f64::NAN),
            Bson::Int32(-5),
            Bson::String("".into()),
            Bson::String("a".into()),
            Bson::Document(doc! {}),
            Bson::Array(vec![]),
            Bson::Binary(Binary {
                subtype: BinarySubtype::Generic,
                bytes: vec![],
            }),
            Bson::ObjectId(ObjectId::from([0; 12])),
            Bson::Boolean(false),
            Bson::Boolean(true),
            Bson::DateTime(bson::DateTime::from_millis(-1)),
            Bson::Timestamp(Timestamp {
                time: 0,
                increment: 0,
            }),
            Bson::RegularExpression(bson::Regex {
                pattern: "a".try_into().expect("cstr"),
                options: "".try_into().expect("cstr"),
            }),
            Bson::JavaScriptCode("x".into()),
            Bson::MaxKey,
        ];
        for (i, a) in ordered.iter().enumerate() {
            for (j, b) in ordered.iter().enumerate() {
                assert_eq!(compare(a, b), i.cmp(&j), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn numbers() {
        let cases: Vec<(Bson, Bson, Ordering)> = vec![
            (Bson::Int32(1), Bson::Int64(1), Ordering::Equal),
            (Bson::Int32(1), Bson::Double(1.0), Ordering::Equal),
            (Bson::Int64(1), dec("1.000"), Ordering::Equal),
            (Bson::Double(-0.0), Bson::Int32(0), Ordering::Equal),
            (
                Bson::Int64((1 << 53) + 1),
                Bson::Double(9007199254740992.0),
                Ordering::Greater,
            ),
            (
                Bson::Int64(i64::MAX),
                Bson::Double(9_223_372_036_854_775_808.0_f64),
                Ordering::Less,
            ),
            (
                Bson::Int64(i64::MIN),
                Bson::Double(-(2.0_f64.powi(63))),
                Ordering::Equal,
            ),
            (
                Bson::Double(f64::NAN),
                Bson::Double(f64::NEG_INFINITY),
                Ordering::Less,
            ),
            (Bson::Double(f64::NAN), dec("NaN"), Ordering::Equal),
            (dec("NaN"), dec("-Infinity"), Ordering::Less),
            (dec("0.1"), Bson::Double(0.1), Ordering::Less),
            (
                dec("0.1000000000000000055511151231257827"),
                Bson::Double(0.1),
                Ordering::Equal,
            ),
            (dec("1E+400"), Bson::Double(f64::MAX), Ordering::Greater),
            (dec("-1.5"), Bson::Int32(-1), Ordering::Less),
            (dec("2.5"), Bson::Double(2.5), Ordering::Equal),
            (Bson::Double(2.5), Bson::Int32(3), Ordering::Less),
            (Bson::Double(-2.5), Bson::Int64(-3), Ordering::Greater),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare(&a, &b), want, "{a:?} vs {b:?}");
            assert_eq!(compare(&b, &a), want.reverse(), "{b:?} vs {a:?}");
        }
    }

    #[test]
    fn documents_and_arrays() {
        let cases = vec![
            (doc! {"a": 1}, doc! {"a": 1, "b": 1}, Ordering::Less),
            (doc! {"a": "x"}, doc! {"a": 5}, Ordering::Greater),
            (doc! {"a": 1}, doc! {"b": 0}, Ordering::Less),
            (doc! {"b": 1}, doc! {"a": "s"}, Ordering::Less),
            (doc! {"a": 1.0}, doc! {"a": 1_i64}, Ordering::Equal),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare_documents(&a, &b), want, "{a:?} vs {b:?}");
        }
        assert_eq!(
            compare(&bson::bson!([1, 2]), &bson::bson!([1, 2, 0])),
            Ordering::Less
        );
        assert_eq!(
            compare(&bson::bson!([2]), &bson::bson!([1, 5])),
            Ordering::Greater
        );
    }

    #[test]
    fn binary_by_length_first() {
        let b = |sub: u8, bytes: Vec<u8>| {
            Bson::Binary(Binary {
                subtype: BinarySubtype::from(sub),
                bytes,
            })
        };
        assert_eq!(compare(&b(0, vec![9]), &b(0, vec![0, 0])), Ordering::Less);
        assert_eq!(compare(&b(4, vec![0]), &b(0, vec![9])), Ordering::Greater);
    }

    pub(crate) fn arb_bson() -> impl Strategy<Value = Bson> {
        let leaf = prop_oneof![
            Just(Bson::Null),
            Just(Bson::MinKey),
            Just(Bson::MaxKey),
            Just(Bson::Undefined),
            any::<i32>().prop_map(|i| Bson::Int32(i % 8)),
            any::<i32>().prop_map(Bson::Int32),
            any::<i64>().prop_map(Bson::Int64),
            prop_oneof![
                Just((1i64 << 53) + 1),
                Just(1i64 << 53),
                Just(i64::MAX),
                Just(i64::MIN)
            ]
            .prop_map(Bson::Int64),
            any::<f64>().prop_map(Bson::Double),
            (-8i32..8).prop_map(|i| Bson::Double(f64::from(i) / 2.0)),
            prop_oneof![
                Just(9007199254740992.0f64),
                Just(f64::NAN),
                Just(-0.0),
                Just(f64::INFINITY),
                Just(f64::NEG_INFINITY),
                Just(0.1)
            ]
            .prop_map(Bson::Double),
            (-20i64..20, -3i32..3).prop_map(|(c, e)| dec(&format!("{c}E{e}"))),
            prop_oneof![Just("NaN"), Just("-Infinity"), Just("0.1"), Just("-0")].prop_map(dec),
            "[a-c\u{0}é]{0,3}".prop_map(Bson::String),
            "[a-c]{0,2}".prop_map(Bson::Symbol),
            any::<bool>().prop_map(Bson::Boolean),
            any::<i64>().prop_map(|m| Bson::DateTime(bson::DateTime::from_millis(m))),
            (any::<u32>(), any::<u32>())
                .prop_map(|(time, increment)| Bson::Timestamp(Timestamp { time, increment })),
            any::<[u8; 12]>().prop_map(|b| Bson::ObjectId(ObjectId::from(b))),
            (0u8..3, proptest::collection::vec(any::<u8>(), 0..3)).prop_map(|(s, bytes)| {
                Bson::Binary(Binary {
                    subtype: BinarySubtype::from(s),
                    bytes,
                })
            }),
            ("[a-b]{0,2}", "[im]{0,1}").prop_map(|(p, o)| Bson::RegularExpression(bson::Regex {
                pattern: p.try_into().expect("cstr"),
                options: o.try_into().expect("cstr"),
            })),
            "[a-b]{0,2}".prop_map(Bson::JavaScriptCode),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Bson::Array),
                proptest::collection::vec(("[a-c]{0,2}", inner), 0..3).prop_map(|kv| {
                    let mut d = Document::new();
                    for (k, v) in kv {
                        d.insert(k, v);
                    }
                    Bson::Document(d)
                }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn total_order(a in arb_bson(), b in arb_bson(), c in arb_bson()) {
            let ab = compare(&a, &b);
            prop_assert_eq!(ab, compare(&b, &a).reverse());
            prop_assert_eq!(compare(&a, &a), Ordering::Equal);
            let bc = compare(&b, &c);
            let ac = compare(&a, &c);
            if ab != Ordering::Greater && bc != Ordering::Greater {
                prop_assert!(ac != Ordering::Greater, "{:?} {:?} {:?}", a, b, c);
            }
            if ab == Ordering::Equal && bc == Ordering::Equal {
                prop_assert_eq!(ac, Ordering::Equal);
            }
        }

        #[test]
        fn numbers_agree_with_decimal_form(a in arb_bson(), b in arb_bson()) {
            if let (Some(x), Some(y)) = (Num::from_bson(&a), Num::from_bson(&b)) {
                prop_assert_eq!(compare(&a, &b), x.cmp(&y), "{:?} {:?}", a, b);
            }
        }

        #[test]
        fn equality_consistent(a in arb_bson()) {
            prop_assert!(values_equal(&a, &a.clone()));
        }
    }
}
