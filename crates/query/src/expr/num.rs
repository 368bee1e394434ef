//! Numeric helpers for the expression language: mongod's `Value::coerceTo*`, the
//! "widest numeric type" rule, and a small exact Decimal128 arithmetic.
//!
//! Decimal128 values are computed on an exact decimal form ([`Dec`]: sign, digit string,
//! exponent) and rounded to 34 significant digits (ties to even) when packed back, which
//! is what IEEE 754-2008 decimal arithmetic (and so mongod's Intel library) does for
//! `+ - * /`. Transcendental functions on decimals (`$exp $ln $log $pow $sqrt`) go
//! through `f64` and are therefore only accurate to 15-17 digits: a known divergence.

use std::str::FromStr;

use bson::{Bson, Decimal128};

use crate::cmp::is_number;
use crate::util::number_as_f64;

/// The numeric type rank used by mongod's `Value::getWidestNumeric`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Width {
    Int,
    Long,
    Double,
    Decimal,
}

pub(crate) fn width(v: &Bson) -> Option<Width> {
    Some(match v {
        Bson::Int32(_) => Width::Int,
        Bson::Int64(_) => Width::Long,
        Bson::Double(_) => Width::Double,
        Bson::Decimal128(_) => Width::Decimal,
        _ => return None,
    })
}

pub(crate) fn is_numeric(v: &Bson) -> bool {
    is_number(v)
}

/// `Value::coerceToDouble` for numbers.
pub(crate) fn to_f64(v: &Bson) -> f64 {
    number_as_f64(v).unwrap_or(f64::NAN)
}

/// `Value::coerceToLong` for numbers (doubles truncate toward zero, saturating).
pub(crate) fn to_i64(v: &Bson) -> i64 {
    match v {
        Bson::Int32(i) => i64::from(*i),
        Bson::Int64(i) => *i,
        Bson::Double(d) => *d as i64,
        Bson::Decimal128(_) => Dec::from_bson(v).map(|d| d.to_i64_trunc()).unwrap_or(0),
        Bson::DateTime(d) => d.timestamp_millis(),
        _ => 0,
    }
}

/// `Value::integral()`: a number representable as a 32-bit integer.
pub(crate) fn is_integral32(v: &Bson) -> bool {
    match v {
        Bson::Int32(_) => true,
        Bson::Int64(i) => i32::try_from(*i).is_ok(),
        Bson::Double(_) | Bson::Decimal128(_) => {
            let d = to_f64(v);
            d.fract() == 0.0 && d >= f64::from(i32::MIN) && d <= f64::from(i32::MAX)
        }
        _ => false,
    }
}

/// `Value::integral64Bit()`.
pub(crate) fn is_integral64(v: &Bson) -> bool {
    match v {
        Bson::Int32(_) | Bson::Int64(_) => true,
        Bson::Double(_) | Bson::Decimal128(_) => {
            let d = to_f64(v);
            d.fract() == 0.0
                && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&d)
        }
        _ => false,
    }
}

/// `Value::createIntOrLong`.
pub(crate) fn int_or_long(i: i64) -> Bson {
    match i32::try_from(i) {
        Ok(n) => Bson::Int32(n),
        Err(_) => Bson::Int64(i),
    }
}

/// An exact decimal number, or one of the special values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Dec {
    NaN,
    Inf(bool),
    /// `(-1)^neg * digits * 10^exp`, digits most significant first (no leading zeros
    /// except a single "0").
    Fin {
        neg: bool,
        digits: Vec<u8>,
        exp: i32,
    },
}

const PRECISION: usize = 34;

impl Dec {
    pub(crate) fn zero() -> Dec {
        Dec::Fin {
            neg: false,
            digits: vec![0],
            exp: 0,
        }
    }

    pub(crate) fn from_i64(i: i64) -> Dec {
        let s = i.unsigned_abs().to_string();
        Dec::Fin {
            neg: i < 0,
            digits: s.bytes().map(|b| b - b'0').collect(),
            exp: 0,
        }
    }

    /// `Decimal128(double, kRoundTo15Digits)` (the default conversion) or 34 digits.
    pub(crate) fn from_f64(d: f64, digits: usize) -> Dec {
        if d.is_nan() {
            return Dec::NaN;
        }
        if d.is_infinite() {
            return Dec::Inf(d < 0.0);
        }
        if d == 0.0 {
            return Dec::Fin {
                neg: d.is_sign_negative(),
                digits: vec![0],
                exp: 0,
            };
        }
        let s = format!("{:.*e}", digits - 1, d);
        let mut parsed = Dec::parse(&s).unwrap_or(Dec::NaN);
        // A double's 15-digit form keeps its trailing zeros only when its exponent allows
        // an integral representation (mongod: 1.0 -> "1.00000000000000").
        if let Dec::Fin { digits, exp, .. } = &mut parsed {
            while *exp > 0 {
                digits.push(0);
                *exp -= 1;
            }
        }
        parsed
    }

    pub(crate) fn from_bson(v: &Bson) -> Option<Dec> {
        match v {
            Bson::Int32(i) => Some(Dec::from_i64(i64::from(*i))),
            Bson::Int64(i) => Some(Dec::from_i64(*i)),
            Bson::Double(d) => Some(Dec::from_f64(*d, 15)),
            Bson::Decimal128(d) => Dec::parse(&d.to_string()),
            _ => None,
        }
    }

    /// Parses `[-]digits[.digits][E[+-]exp]`, `NaN`, `[-]Infinity`.
    pub(crate) fn parse(s: &str) -> Option<Dec> {
        let (neg, body) = match s.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let lower = body.to_ascii_lowercase();
        if lower == "nan" {
            return Some(Dec::NaN);
        }
        if lower == "inf" || lower == "infinity" {
            return Some(Dec::Inf(neg));
        }
        let (mant, e) = match lower.find('e') {
            Some(p) => (&lower[..p], lower[p + 1..].parse::<i32>().ok()?),
            None => (&lower[..], 0),
        };
        let (ip, fp) = match mant.find('.') {
            Some(p) => (&mant[..p], &mant[p + 1..]),
            None => (mant, ""),
        };
        if ip.is_empty() && fp.is_empty() {
            return None;
        }
        let mut digits = Vec::with_capacity(ip.len() + fp.len());
        for c in ip.bytes().chain(fp.bytes()) {
            if !c.is_ascii_digit() {
                return None;
            }
            digits.push(c - b'0');
        }
        Some(Dec::fin(neg, digits, e - fp.len() as i32))
    }

    fn fin(neg: bool, mut digits: Vec<u8>, exp: i32) -> Dec {
        let lead = digits.iter().take_while(|d| **d == 0).count();
        digits.drain(..lead.min(digits.len().saturating_sub(1)));
        if digits.is_empty() {
            digits.push(0);
        }
        Dec::Fin { neg, digits, exp }
    }

    pub(crate) fn is_zero(&self) -> bool {
        matches!(self, Dec::Fin { digits, .. } if digits.iter().all(|d| *d == 0))
    }

    pub(crate) fn is_neg(&self) -> bool {
        match self {
            Dec::Inf(n) => *n,
            Dec::Fin { neg, .. } => *neg && !self.is_zero(),
            Dec::NaN => false,
        }
    }

    pub(crate) fn neg(self) -> Dec {
        match self {
            Dec::NaN => Dec::NaN,
            Dec::Inf(n) => Dec::Inf(!n),
            Dec::Fin { neg, digits, exp } => Dec::Fin {
                neg: !neg,
                digits,
                exp,
            },
        }
    }

    pub(crate) fn abs(self) -> Dec {
        match self {
            Dec::Inf(_) => Dec::Inf(false),
            Dec::Fin { digits, exp, .. } => Dec::Fin {
                neg: false,
                digits,
                exp,
            },
            o => o,
        }
    }

    pub(crate) fn add(&self, other: &Dec) -> Dec {
        match (self, other) {
            (Dec::NaN, _) | (_, Dec::NaN) => Dec::NaN,
            (Dec::Inf(a), Dec::Inf(b)) => {
                if a == b {
                    Dec::Inf(*a)
                } else {
                    Dec::NaN
                }
            }
            (Dec::Inf(a), _) | (_, Dec::Inf(a)) => Dec::Inf(*a),
            (
                Dec::Fin {
                    neg: na,
                    digits: da,
                    exp: ea,
                },
                Dec::Fin {
                    neg: nb,
                    digits: db,
                    exp: eb,
                },
            ) => {
                // Align to the smaller exponent. When the gap is so large that the
                // smaller operand lies entirely below the rounding position, it is
                // replaced by a sticky unit just below the margin (it can only decide
                // rounding, never create a tie).
                let margin = (PRECISION + 3) as i32;
                let (big_first, gap) = if ea >= eb {
                    (true, ea - eb)
                } else {
                    (false, eb - ea)
                };
                let (dbig, ebig, dsmall) = if big_first {
                    (da, *ea, db)
                } else {
                    (db, *eb, da)
                };
                let (a, b, e) = if gap > dsmall.len() as i32 + margin
                    && dsmall.iter().any(|x| *x != 0)
                    && dbig.iter().any(|x| *x != 0)
                {
                    let mut big = dbig.clone();
                    big.extend(std::iter::repeat_n(0, margin as usize));
                    (big, vec![1u8], ebig - margin)
                } else {
                    let mut big = dbig.clone();
                    big.extend(std::iter::repeat_n(0, gap as usize));
                    (big, dsmall.clone(), ebig - gap)
                };
                let (a, b) = if big_first { (a, b) } else { (b, a) };
                if na == nb {
                    let sum = add_digits(&a, &b);
                    Dec::fin(*na, sum, e)
                } else {
                    match cmp_digits(&a, &b) {
                        std::cmp::Ordering::Equal => Dec::fin(false, vec![0], e),
                        std::cmp::Ordering::Greater => Dec::fin(*na, sub_digits(&a, &b), e),
                        std::cmp::Ordering::Less => Dec::fin(*nb, sub_digits(&b, &a), e),
                    }
                }
            }
        }
    }

    pub(crate) fn sub(&self, other: &Dec) -> Dec {
        self.add(&other.clone().neg())
    }

    pub(crate) fn mul(&self, other: &Dec) -> Dec {
        match (self, other) {
            (Dec::NaN, _) | (_, Dec::NaN) => Dec::NaN,
            (Dec::Inf(a), o) | (o, Dec::Inf(a)) => {
                if o.is_zero() {
                    Dec::NaN
                } else {
                    Dec::Inf(*a != o.sign_bit())
                }
            }
            (
                Dec::Fin {
                    neg: na,
                    digits: da,
                    exp: ea,
                },
                Dec::Fin {
                    neg: nb,
                    digits: db,
                    exp: eb,
                },
            ) => {
                let mut out = vec![0u32; da.len() + db.len()];
                for (i, x) in da.iter().enumerate().rev() {
                    for (j, y) in db.iter().enumerate().rev() {
                        out[i + j + 1] += u32::from(*x) * u32::from(*y);
                    }
                }
                for k in (1..out.len()).rev() {
                    let carry = out[k] / 10;
                    out[k] %= 10;
                    out[k - 1] += carry;
                }
                Dec::fin(
                    na != nb,
                    out.into_iter().map(|d| d as u8).collect(),
                    ea + eb,
                )
            }
        }
    }

    fn sign_bit(&self) -> bool {
        match self {
            Dec::Inf(n) => *n,
            Dec::Fin { neg, .. } => *neg,
            Dec::NaN => false,
        }
    }

    /// Division; `None` when dividing a finite number by zero.
    pub(crate) fn div(&self, other: &Dec) -> Option<Dec> {
        Some(match (self, other) {
            (Dec::NaN, _) | (_, Dec::NaN) => Dec::NaN,
            (Dec::Inf(_), Dec::Inf(_)) => Dec::NaN,
            (Dec::Inf(a), o) => Dec::Inf(*a != o.sign_bit()),
            (o, Dec::Inf(b)) => Dec::fin(o.sign_bit() != *b, vec![0], 0),
            (
                Dec::Fin {
                    neg: na,
                    digits: da,
                    exp: ea,
                },
                Dec::Fin {
                    neg: nb,
                    digits: db,
                    exp: eb,
                },
            ) => {
                if other.is_zero() {
                    return None;
                }
                let a = self.clone().round_to(PRECISION);
                let b = other.clone().round_to(PRECISION);
                let (da, ea) = match &a {
                    Dec::Fin { digits, exp, .. } => (digits.clone(), *exp),
                    _ => (da.clone(), *ea),
                };
                let (db, eb) = match &b {
                    Dec::Fin { digits, exp, .. } => (digits.clone(), *exp),
                    _ => (db.clone(), *eb),
                };
                let divisor = digits_to_u128(&db);
                let ideal = ea - eb;
                // Scale the dividend so the quotient has more than PRECISION digits.
                let k = (PRECISION + 2 + db.len()).saturating_sub(da.len());
                let mut q: Vec<u8> = Vec::with_capacity(da.len() + k);
                let mut r: u128 = 0;
                for x in da.iter().copied().chain(std::iter::repeat_n(0u8, k)) {
                    r = r * 10 + u128::from(x);
                    q.push((r / divisor) as u8);
                    r %= divisor;
                }
                let sticky = r != 0;
                let mut res = Dec::fin(na != nb, q, ideal - k as i32);
                if sticky {
                    // A sticky digit so rounding sees the inexact tail.
                    if let Dec::Fin { digits, exp, .. } = &mut res {
                        digits.push(1);
                        *exp -= 1;
                    }
                }
                res = res.round_to(PRECISION);
                // Exact quotients take the preferred exponent when possible.
                if !sticky {
                    res = res.reduce_toward(ideal);
                }
                res
            }
        })
    }

    /// Removes trailing zeros while the exponent stays <= `target`.
    fn reduce_toward(self, target: i32) -> Dec {
        match self {
            Dec::Fin {
                neg,
                mut digits,
                mut exp,
            } => {
                while exp < target && digits.len() > 1 && digits.last() == Some(&0) {
                    digits.pop();
                    exp += 1;
                }
                Dec::Fin { neg, digits, exp }
            }
            o => o,
        }
    }

    /// Rounds to `n` significant digits, ties to even.
    pub(crate) fn round_to(self, n: usize) -> Dec {
        match self {
            Dec::Fin { neg, digits, exp } if digits.len() > n => {
                let drop = digits.len() - n;
                let (mut keep, rest) = (digits[..n].to_vec(), &digits[n..]);
                if round_up(&keep, rest, Rounding::HalfEven, neg) {
                    keep = increment(keep);
                }
                let mut e = exp + drop as i32;
                if keep.len() > n {
                    keep.pop();
                    e += 1;
                }
                Dec::fin(neg, keep, e)
            }
            o => o,
        }
    }

    /// Quantizes to exponent `target` with the given rounding (mongod's `quantize`).
    pub(crate) fn quantize(self, target: i32, mode: Rounding) -> Dec {
        match self {
            Dec::Fin { neg, digits, exp } => {
                if exp >= target {
                    let mut d = digits;
                    let pad = (exp - target).min(PRECISION as i32 + 2) as usize;
                    d.extend(std::iter::repeat_n(0, pad));
                    Dec::fin(neg, d, target)
                } else {
                    let drop = (target - exp) as usize;
                    if drop > digits.len() {
                        let nonzero = digits.iter().any(|d| *d != 0);
                        let up = nonzero
                            && match mode {
                                Rounding::Ceil => !neg,
                                Rounding::Floor => neg,
                                _ => false,
                            };
                        return Dec::fin(neg, vec![u8::from(up)], target);
                    }
                    let split = digits.len() - drop;
                    let keep = digits[..split].to_vec();
                    let keep = if keep.is_empty() { vec![0] } else { keep };
                    let rest = &digits[split..];
                    let keep = if round_up(&keep, rest, mode, neg) {
                        increment(keep)
                    } else {
                        keep
                    };
                    Dec::fin(neg, keep, target)
                }
            }
            o => o,
        }
    }

    pub(crate) fn to_f64(&self) -> f64 {
        match self {
            Dec::NaN => f64::NAN,
            Dec::Inf(n) => {
                if *n {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                }
            }
            Dec::Fin { neg, digits, exp } => {
                let s: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
                let v = format!("{s}e{exp}").parse::<f64>().unwrap_or(f64::NAN);
                if *neg {
                    -v
                } else {
                    v
                }
            }
        }
    }

    /// Truncates toward zero and saturates to i64 (NaN -> 0).
    pub(crate) fn to_i64_trunc(&self) -> i64 {
        self.to_i64_checked().unwrap_or_else(|| {
            if self.is_neg() {
                i64::MIN
            } else if matches!(self, Dec::NaN) {
                0
            } else {
                i64::MAX
            }
        })
    }

    /// Truncates toward zero; `None` when out of range or not finite.
    pub(crate) fn to_i64_checked(&self) -> Option<i64> {
        match self.clone().quantize(0, Rounding::Trunc) {
            Dec::Fin { neg, digits, exp } => {
                if exp != 0 || digits.len() > 19 {
                    return None;
                }
                let mag: i128 = digits.iter().fold(0i128, |a, d| a * 10 + i128::from(*d));
                let v = if neg { -mag } else { mag };
                i64::try_from(v).ok()
            }
            _ => None,
        }
    }

    pub(crate) fn to_bson(&self) -> Bson {
        Bson::Decimal128(self.to_decimal128())
    }

    pub(crate) fn to_decimal128(&self) -> Decimal128 {
        let s = match self.clone().round_to(PRECISION) {
            Dec::NaN => "NaN".to_owned(),
            Dec::Inf(n) => if n { "-Infinity" } else { "Infinity" }.to_owned(),
            Dec::Fin { neg, digits, exp } => {
                let ds: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
                format!("{}{}E{}", if neg { "-" } else { "" }, ds, exp)
            }
        };
        Decimal128::from_str(&s).unwrap_or_else(|_| {
            // Exponent out of range: overflow to infinity or underflow to zero.
            let fallback = match self {
                Dec::Fin { neg, exp, .. } if *exp > 0 => {
                    if *neg {
                        "-Infinity"
                    } else {
                        "Infinity"
                    }
                }
                Dec::Fin { neg: true, .. } => "-0",
                _ => "0",
            };
            Decimal128::from_str(fallback).unwrap_or_else(|_| Decimal128::from_bytes([0; 16]))
        })
    }
}

/// Rounding modes of `quantize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rounding {
    HalfEven,
    Trunc,
    Ceil,
    Floor,
}

fn round_up(keep: &[u8], rest: &[u8], mode: Rounding, neg: bool) -> bool {
    let nonzero = rest.iter().any(|d| *d != 0);
    match mode {
        Rounding::Trunc => false,
        Rounding::Ceil => nonzero && !neg,
        Rounding::Floor => nonzero && neg,
        Rounding::HalfEven => {
            let first = rest.first().copied().unwrap_or(0);
            let tail = rest.iter().skip(1).any(|d| *d != 0);
            match first.cmp(&5) {
                std::cmp::Ordering::Greater => true,
                std::cmp::Ordering::Less => false,
                std::cmp::Ordering::Equal => tail || keep.last().is_some_and(|d| d % 2 == 1),
            }
        }
    }
}

fn increment(mut d: Vec<u8>) -> Vec<u8> {
    for i in (0..d.len()).rev() {
        if d[i] == 9 {
            d[i] = 0;
        } else {
            d[i] += 1;
            return d;
        }
    }
    d.insert(0, 1);
    d
}

fn cmp_digits(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let strip = |x: &[u8]| -> Vec<u8> {
        let lead = x.iter().take_while(|d| **d == 0).count();
        x[lead..].to_vec()
    };
    let (a, b) = (strip(a), strip(b));
    a.len().cmp(&b.len()).then_with(|| a.cmp(&b))
}

fn add_digits(a: &[u8], b: &[u8]) -> Vec<u8> {
    let n = a.len().max(b.len());
    let mut out = vec![0u8; n + 1];
    let mut carry = 0u8;
    for k in 0..n {
        let x = if k < a.len() { a[a.len() - 1 - k] } else { 0 };
        let y = if k < b.len() { b[b.len() - 1 - k] } else { 0 };
        let s = x + y + carry;
        out[n - k] = s % 10;
        carry = s / 10;
    }
    out[0] = carry;
    out
}

/// a - b with a >= b.
fn sub_digits(a: &[u8], b: &[u8]) -> Vec<u8> {
    let n = a.len();
    let mut out = vec![0u8; n];
    let mut borrow = 0i8;
    for k in 0..n {
        let x = a[n - 1 - k] as i8;
        let y = if k < b.len() {
            b[b.len() - 1 - k] as i8
        } else {
            0
        };
        let mut s = x - y - borrow;
        if s < 0 {
            s += 10;
            borrow = 1;
        } else {
            borrow = 0;
        }
        out[n - 1 - k] = s as u8;
    }
    out
}

fn digits_to_u128(d: &[u8]) -> u128 {
    d.iter().fold(0u128, |a, x| a * 10 + u128::from(*x)).max(1)
}

/// `Value::coerceToDecimal` for numbers.
pub(crate) fn to_dec(v: &Bson) -> Dec {
    Dec::from_bson(v).unwrap_or(Dec::NaN)
}

/// `str::stream() << double` as mongod prints doubles (C++ ostream default: `%g`
/// with 6 significant digits).
pub(crate) fn format_double_g(d: f64) -> String {
    if d.is_nan() {
        return "nan".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d == 0.0 {
        return if d.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let p = 6i32;
    let sci = format!("{:.*e}", (p - 1) as usize, d);
    let (mant, e) = sci.split_once('e').unwrap_or((&sci, "0"));
    let x: i32 = e.parse().unwrap_or(0);
    if x < -4 || x >= p {
        let mant = strip_zeros(mant);
        let sign = if x < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", x.abs())
    } else {
        let s = format!("{:.*}", (p - 1 - x).max(0) as usize, d);
        strip_zeros(&s).to_owned()
    }
}

fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Dec {
        Dec::parse(s).expect("test decimal")
    }
    fn show(x: &Dec) -> String {
        x.to_decimal128().to_string()
    }

    #[test]
    fn decimal_arithmetic() {
        assert_eq!(show(&d("1.1").add(&d("2.2"))), "3.3");
        assert_eq!(show(&d("10").sub(&d("0.5"))), "9.5");
        assert_eq!(show(&d("1.5").mul(&d("2"))), "3.0");
        assert_eq!(
            show(&d("1").div(&d("3")).expect("div")),
            "0.3333333333333333333333333333333333"
        );
        assert_eq!(show(&d("10").div(&d("4")).expect("div")), "2.5");
        assert_eq!(show(&d("6").div(&d("3")).expect("div")), "2");
        assert!(d("1").div(&d("0")).is_none());
        assert_eq!(show(&d("2.5").quantize(0, Rounding::HalfEven)), "2");
        assert_eq!(show(&d("3.5").quantize(0, Rounding::HalfEven)), "4");
        assert_eq!(show(&d("-2.1").quantize(0, Rounding::Floor)), "-3");
        assert_eq!(
            show(&d("1E+40").add(&d("1"))),
            "1.000000000000000000000000000000000E+40"
        );
        assert_eq!(show(&Dec::from_f64(0.1, 15)), "0.100000000000000");
    }

    #[test]
    fn double_g_format() {
        assert_eq!(format_double_g(2.5), "2.5");
        assert_eq!(format_double_g(1.23456789), "1.23457");
        assert_eq!(format_double_g(1e20), "1e+20");
        assert_eq!(format_double_g(100000.0), "100000");
        assert_eq!(format_double_g(1234567.0), "1.23457e+06");
        assert_eq!(format_double_g(0.0001), "0.0001");
    }
}
