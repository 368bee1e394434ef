//! Comparison, boolean, conditional, arithmetic and type operators, and the dispatch
//! from [`Op`]/[`Named`] to every family.

use std::cmp::Ordering;

use bson::Bson;
use eddy_codes::{ErrorCode, MongoError};

use super::num::{self, int_or_long, to_dec, to_f64, to_i64, width, Dec, Rounding, Width};
use super::{
    array, convert, date, null, nullish, or_undefined, string, truthy, Ctx, Named, Node, Op,
};
use crate::util;

type R = Result<Option<Bson>, MongoError>;

impl Ctx<'_> {
    pub(crate) fn op(&mut self, op: Op, args: &[Node]) -> R {
        match op {
            Op::Eq | Op::Ne | Op::Gt | Op::Gte | Op::Lt | Op::Lte | Op::Cmp => {
                let a = self.eval(&args[0])?;
                let b = self.eval(&args[1])?;
                let c = self.env.compare(or_undefined(&a), or_undefined(&b));
                Ok(Some(match op {
                    Op::Eq => Bson::Boolean(c == Ordering::Equal),
                    Op::Ne => Bson::Boolean(c != Ordering::Equal),
                    Op::Gt => Bson::Boolean(c == Ordering::Greater),
                    Op::Gte => Bson::Boolean(c != Ordering::Less),
                    Op::Lt => Bson::Boolean(c == Ordering::Less),
                    Op::Lte => Bson::Boolean(c != Ordering::Greater),
                    _ => Bson::Int32(match c {
                        Ordering::Less => -1,
                        Ordering::Equal => 0,
                        Ordering::Greater => 1,
                    }),
                }))
            }
            Op::And => {
                for a in args {
                    if !truthy(&self.eval(a)?) {
                        return Ok(Some(Bson::Boolean(false)));
                    }
                }
                Ok(Some(Bson::Boolean(true)))
            }
            Op::Or => {
                for a in args {
                    if truthy(&self.eval(a)?) {
                        return Ok(Some(Bson::Boolean(true)));
                    }
                }
                Ok(Some(Bson::Boolean(false)))
            }
            Op::Not => Ok(Some(Bson::Boolean(!truthy(&self.eval(&args[0])?)))),
            Op::Cond => {
                if truthy(&self.eval(&args[0])?) {
                    self.eval(&args[1])
                } else {
                    self.eval(&args[2])
                }
            }
            Op::IfNull => {
                for (i, a) in args.iter().enumerate() {
                    let v = self.eval(a)?;
                    if !nullish(&v) || i == args.len() - 1 {
                        return Ok(v);
                    }
                }
                Ok(None)
            }
            Op::Add => {
                let mut st = AddState::default();
                for a in args {
                    let v = self.eval(a)?;
                    if nullish(&v) {
                        return null();
                    }
                    st.add(v.as_ref().expect("not nullish"))?;
                }
                st.value().map(Some)
            }
            Op::Multiply => {
                let mut st = MulState::default();
                for a in args {
                    let v = self.eval(a)?;
                    if nullish(&v) {
                        return null();
                    }
                    let v = v.expect("not nullish");
                    if !num::is_numeric(&v) {
                        return Err(MongoError::type_mismatch(format!(
                            "$multiply only supports numeric types, not {}",
                            util::type_name(&v)
                        )));
                    }
                    st.mul(&v);
                }
                Ok(Some(st.value()))
            }
            Op::Subtract => {
                let v = self.eval_all(args)?;
                subtract(&v[0], &v[1])
            }
            Op::Divide => {
                let v = self.eval_all(args)?;
                divide(&v[0], &v[1])
            }
            Op::Mod => {
                let v = self.eval_all(args)?;
                modulo(&v[0], &v[1])
            }
            Op::Abs
            | Op::Ceil
            | Op::Floor
            | Op::Exp
            | Op::Ln
            | Op::Log10
            | Op::Sqrt
            | Op::Trig(_)
            | Op::DegreesToRadians
            | Op::RadiansToDegrees => {
                let v = self.eval(&args[0])?;
                if nullish(&v) {
                    return null();
                }
                let v = v.expect("not nullish");
                if !num::is_numeric(&v) {
                    return Err(MongoError::location(
                        28765,
                        format!(
                            "{} only supports numeric types, not {}",
                            op_name(op),
                            util::type_name(&v)
                        ),
                    ));
                }
                single_numeric(op, &v).map(Some)
            }
            Op::Round | Op::Trunc => {
                let v = self.eval_all(args)?;
                round_or_trunc(op, &v)
            }
            Op::Log => {
                let v = self.eval_all(args)?;
                log(&v[0], &v[1])
            }
            Op::Pow => {
                let v = self.eval_all(args)?;
                pow(&v[0], &v[1])
            }
            Op::Atan2 => {
                let v = self.eval_all(args)?;
                if nullish(&v[0]) || nullish(&v[1]) {
                    return null();
                }
                let (y, x) = (v[0].as_ref().expect("set"), v[1].as_ref().expect("set"));
                if !num::is_numeric(y) || !num::is_numeric(x) {
                    return Err(MongoError::location(
                        51044,
                        format!(
                            "$atan2 only supports numeric types, not {} and {}",
                            util::type_name(y),
                            util::type_name(x)
                        ),
                    ));
                }
                let r = to_f64(y).atan2(to_f64(x));
                Ok(Some(
                    if matches!(y, Bson::Decimal128(_)) || matches!(x, Bson::Decimal128(_)) {
                        Dec::from_f64(r, 34).to_bson()
                    } else {
                        Bson::Double(r)
                    },
                ))
            }
            Op::BitAnd | Op::BitOr | Op::BitXor => {
                let mut acc: i64 = match op {
                    Op::BitAnd => -1,
                    _ => 0,
                };
                let mut long = false;
                for a in args {
                    let v = self.eval(a)?;
                    if nullish(&v) {
                        return null();
                    }
                    let x = match v {
                        Some(Bson::Int32(i)) => i64::from(i),
                        Some(Bson::Int64(i)) => {
                            long = true;
                            i
                        }
                        _ => {
                            return Err(MongoError::type_mismatch(format!(
                                "{} only supports int and long operands.",
                                op_name(op)
                            )))
                        }
                    };
                    acc = match op {
                        Op::BitAnd => acc & x,
                        Op::BitOr => acc | x,
                        _ => acc ^ x,
                    };
                }
                Ok(Some(if long {
                    Bson::Int64(acc)
                } else {
                    Bson::Int32(acc as i32)
                }))
            }
            Op::BitNot => match self.eval(&args[0])? {
                None | Some(Bson::Null) | Some(Bson::Undefined) => null(),
                Some(Bson::Int32(i)) => Ok(Some(Bson::Int32(!i))),
                Some(Bson::Int64(i)) => Ok(Some(Bson::Int64(!i))),
                Some(_) => Err(MongoError::type_mismatch(
                    "$bitNot only supports int and long operands.",
                )),
            },
            Op::Type => {
                let v = self.eval(&args[0])?;
                Ok(Some(Bson::String(super::type_name_of(&v).to_owned())))
            }
            Op::IsNumber => {
                let v = self.eval(&args[0])?;
                Ok(Some(Bson::Boolean(v.as_ref().is_some_and(num::is_numeric))))
            }
            Op::TsSecond | Op::TsIncrement => {
                let v = self.eval(&args[0])?;
                if nullish(&v) {
                    return null();
                }
                match v {
                    Some(Bson::Timestamp(ts)) => {
                        Ok(Some(Bson::Int64(i64::from(if op == Op::TsSecond {
                            ts.time
                        } else {
                            ts.increment
                        }))))
                    }
                    other => Err(MongoError::location(
                        if op == Op::TsSecond { 5687301 } else { 5687302 },
                        format!(
                            " Argument to {} must be a timestamp, but is {}",
                            op_name(op),
                            super::type_name_of(&other)
                        ),
                    )),
                }
            }
            Op::To(target) => {
                let v = self.eval(&args[0])?;
                convert::convert_value(v, target)
            }
            Op::Rand => Ok(Some(Bson::Double(crate::util::random_unit()))),
            // A missing value hashes as null, as a hashed index keys it.
            Op::ToHashedIndexKey => {
                let v = self.eval(&args[0])?.unwrap_or(Bson::Null);
                Ok(Some(Bson::Int64(crate::hashed::hash64(&v))))
            }
            _ => {
                if let Some(r) = string::eval(self, op, args)? {
                    return Ok(r);
                }
                array::eval(self, op, args)
            }
        }
    }

    pub(crate) fn named(&mut self, op: Named, args: &[Option<Node>]) -> R {
        match op {
            Named::Trim(_)
            | Named::ReplaceOne
            | Named::ReplaceAll
            | Named::RegexMatch
            | Named::RegexFind
            | Named::RegexFindAll => string::eval_named(self, op, args),
            Named::SortArray
            | Named::Zip
            | Named::GetField
            | Named::SetField
            | Named::FirstN
            | Named::LastN
            | Named::MaxN
            | Named::MinN => array::eval_named(self, op, args),
            Named::Convert => convert::eval_convert(self, args),
            _ => date::eval_named(self, op, args),
        }
    }
}

/// The operator's name, for messages.
pub(crate) fn op_name(op: Op) -> &'static str {
    match op {
        Op::Abs => "$abs",
        Op::ToHashedIndexKey => "$toHashedIndexKey",
        Op::Ceil => "$ceil",
        Op::Floor => "$floor",
        Op::Exp => "$exp",
        Op::Ln => "$ln",
        Op::Log10 => "$log10",
        Op::Sqrt => "$sqrt",
        Op::Round => "$round",
        Op::Trunc => "$trunc",
        Op::DegreesToRadians => "$degreesToRadians",
        Op::RadiansToDegrees => "$radiansToDegrees",
        Op::Trig(t) => t.name(),
        Op::BitAnd => "$bitAnd",
        Op::BitOr => "$bitOr",
        Op::BitXor => "$bitXor",
        Op::TsSecond => "$tsSecond",
        Op::TsIncrement => "$tsIncrement",
        Op::Sum => "$sum",
        Op::Avg => "$avg",
        Op::Min => "$min",
        Op::Max => "$max",
        Op::StdDevPop => "$stdDevPop",
        Op::StdDevSamp => "$stdDevSamp",
        Op::First => "$first",
        Op::Last => "$last",
        Op::ArrayElemAt => "$arrayElemAt",
        Op::AnyElementTrue => "$anyElementTrue",
        Op::AllElementsTrue => "$allElementsTrue",
        Op::IndexOfArray => "$indexOfArray",
        Op::IndexOfBytes => "$indexOfBytes",
        Op::IndexOfCP => "$indexOfCP",
        Op::SubstrBytes => "$substrBytes",
        Op::SubstrCP => "$substrCP",
        _ => "$expression",
    }
}

/// mongod's `AddState`: the narrowest type that avoids overflow; one date allowed.
#[derive(Default)]
struct AddState {
    long: i64,
    double: f64,
    dec: Option<Dec>,
    widest: Option<Width>,
    date: bool,
}

impl AddState {
    fn add(&mut self, v: &Bson) -> Result<(), MongoError> {
        let old = self.widest.unwrap_or(Width::Int);
        let val = match v {
            Bson::DateTime(d) => {
                if self.date {
                    return Err(MongoError::location(
                        16612,
                        "only one date allowed in an $add expression",
                    ));
                }
                self.date = true;
                Bson::Int64(d.timestamp_millis())
            }
            other => match width(other) {
                Some(w) => {
                    self.widest = Some(old.max(w));
                    other.clone()
                }
                None => {
                    return Err(MongoError::type_mismatch(format!(
                        "$add only supports numeric or date types, not {}",
                        util::type_name(other)
                    )))
                }
            },
        };
        let widest = self.widest.unwrap_or(Width::Int);
        if widest != old {
            match widest {
                Width::Double => self.double = self.long as f64,
                Width::Decimal => {
                    self.dec = Some(match old {
                        Width::Double => Dec::from_f64(self.double, 34),
                        _ => Dec::from_i64(self.long),
                    })
                }
                _ => {}
            }
        }
        match widest {
            Width::Int | Width::Long => match self.long.checked_add(to_i64(&val)) {
                Some(s) => self.long = s,
                None => {
                    self.widest = Some(Width::Double);
                    self.double = self.long as f64 + to_f64(&val);
                }
            },
            Width::Double => self.double += to_f64(&val),
            Width::Decimal => {
                let cur = self.dec.take().unwrap_or_else(Dec::zero);
                self.dec = Some(cur.add(&to_dec(&val)));
            }
        }
        Ok(())
    }

    fn value(&self) -> Result<Bson, MongoError> {
        let widest = self.widest.unwrap_or(Width::Int);
        if self.date {
            let ms = match widest {
                Width::Int | Width::Long => self.long,
                Width::Double => {
                    if !(self.double >= i64::MIN as f64 && self.double < i64::MAX as f64) {
                        return Err(MongoError::new(
                            ErrorCode::Overflow,
                            "date overflow in $add",
                        ));
                    }
                    self.double.round() as i64
                }
                Width::Decimal => self.dec.as_ref().map(Dec::to_i64_trunc).unwrap_or(0),
            };
            return Ok(Bson::DateTime(bson::DateTime::from_millis(ms)));
        }
        Ok(match widest {
            Width::Int => int_or_long(self.long),
            Width::Long => Bson::Int64(self.long),
            Width::Double => Bson::Double(self.double),
            Width::Decimal => self.dec.clone().unwrap_or_else(Dec::zero).to_bson(),
        })
    }
}

/// mongod's `MultiplyState`.
struct MulState {
    double: f64,
    long: i64,
    dec: Option<Dec>,
    ty: Width,
}

impl Default for MulState {
    fn default() -> Self {
        MulState {
            double: 1.0,
            long: 1,
            dec: None,
            ty: Width::Int,
        }
    }
}

impl MulState {
    fn mul(&mut self, v: &Bson) {
        let old = self.ty;
        self.ty = old.max(width(v).unwrap_or(Width::Double));
        if self.ty == Width::Decimal {
            let cur = match self.dec.take() {
                Some(d) => d,
                None if old == Width::Double => Dec::from_f64(self.double, 15),
                None => Dec::from_i64(self.long),
            };
            self.dec = Some(cur.mul(&to_dec(v)));
        } else {
            let d = to_f64(v);
            self.double *= d;
            if self.ty != Width::Double {
                match (d.is_finite(), self.long.checked_mul(to_i64(v))) {
                    (true, Some(p)) => self.long = p,
                    _ => self.ty = Width::Double,
                }
            }
        }
    }

    fn value(&self) -> Bson {
        match self.ty {
            Width::Double => Bson::Double(self.double),
            Width::Long => Bson::Int64(self.long),
            Width::Int => int_or_long(self.long),
            Width::Decimal => self.dec.clone().unwrap_or_else(Dec::zero).to_bson(),
        }
    }
}

fn both_numeric<'a>(a: &'a Option<Bson>, b: &'a Option<Bson>) -> Option<(&'a Bson, &'a Bson)> {
    match (a, b) {
        (Some(x), Some(y)) if num::is_numeric(x) && num::is_numeric(y) => Some((x, y)),
        _ => None,
    }
}

fn subtract(l: &Option<Bson>, r: &Option<Bson>) -> R {
    if let Some((a, b)) = both_numeric(l, r) {
        let w = width(a).max(width(b)).unwrap_or(Width::Int);
        return Ok(Some(match w {
            Width::Decimal => to_dec(a).sub(&to_dec(b)).to_bson(),
            Width::Double => Bson::Double(to_f64(a) - to_f64(b)),
            Width::Long => match to_i64(a).checked_sub(to_i64(b)) {
                Some(x) => Bson::Int64(x),
                None => Bson::Double(to_f64(a) - to_f64(b)),
            },
            Width::Int => int_or_long(to_i64(a) - to_i64(b)),
        }));
    }
    if nullish(l) || nullish(r) {
        return null();
    }
    let (a, b) = (l.as_ref().expect("set"), r.as_ref().expect("set"));
    match (a, b) {
        (Bson::DateTime(x), Bson::DateTime(y)) => Ok(Some(Bson::Int64(
            x.timestamp_millis().wrapping_sub(y.timestamp_millis()),
        ))),
        (Bson::DateTime(x), n) if num::is_numeric(n) => {
            let ms = match n {
                Bson::Double(d) => d.round() as i64,
                Bson::Decimal128(_) => to_dec(n).quantize(0, Rounding::HalfEven).to_i64_trunc(),
                _ => to_i64(n),
            };
            Ok(Some(Bson::DateTime(bson::DateTime::from_millis(
                x.timestamp_millis().wrapping_sub(ms),
            ))))
        }
        (Bson::DateTime(_), n) => Err(MongoError::type_mismatch(format!(
            "can't $subtract {} from Date",
            util::type_name(n)
        ))),
        _ => Err(MongoError::type_mismatch(format!(
            "can't $subtract {} from {}",
            util::type_name(b),
            util::type_name(a)
        ))),
    }
}

fn divide(l: &Option<Bson>, r: &Option<Bson>) -> R {
    if let Some((a, b)) = both_numeric(l, r) {
        if matches!(a, Bson::Decimal128(_)) || matches!(b, Bson::Decimal128(_)) {
            return match to_dec(a).div(&to_dec(b)) {
                Some(q) => Ok(Some(q.to_bson())),
                None => Err(MongoError::bad_value("can't $divide by zero")),
            };
        }
        let d = to_f64(b);
        if d == 0.0 {
            return Err(MongoError::bad_value("can't $divide by zero"));
        }
        return Ok(Some(Bson::Double(to_f64(a) / d)));
    }
    if nullish(l) || nullish(r) {
        return null();
    }
    Err(MongoError::type_mismatch(format!(
        "$divide only supports numeric types, not {} and {}",
        super::type_name_of(l),
        super::type_name_of(r)
    )))
}

fn modulo(l: &Option<Bson>, r: &Option<Bson>) -> R {
    if let Some((a, b)) = both_numeric(l, r) {
        if matches!(a, Bson::Decimal128(_)) || matches!(b, Bson::Decimal128(_)) {
            let (x, y) = (to_dec(a), to_dec(b));
            if y.is_zero() {
                return Err(MongoError::location(5733415, "can't $mod by zero"));
            }
            return Ok(Some(dec_mod(&x, &y).to_bson()));
        }
        let rd = to_f64(b);
        if rd == 0.0 {
            return Err(MongoError::location(16610, "can't $mod by zero"));
        }
        if matches!(a, Bson::Double(_)) || (matches!(b, Bson::Double(_)) && !num::is_integral64(b))
        {
            return Ok(Some(Bson::Double(to_f64(a) % rd)));
        }
        if matches!(a, Bson::Int64(_)) || matches!(b, Bson::Int64(_)) {
            let (x, y) = (to_i64(a), to_i64(b));
            return Ok(Some(Bson::Int64(if y == -1 { 0 } else { x % y })));
        }
        let (x, y) = (to_i64(a) as i32, to_i64(b) as i32);
        return Ok(Some(Bson::Int32(if y == -1 { 0 } else { x % y })));
    }
    if nullish(l) || nullish(r) {
        return null();
    }
    Err(MongoError::location(
        16611,
        format!(
            "$mod only supports numeric types, not {} and {}",
            super::type_name_of(l),
            super::type_name_of(r)
        ),
    ))
}

/// Decimal remainder with the sign of the dividend (`fmod`).
pub(crate) fn dec_mod(x: &Dec, y: &Dec) -> Dec {
    match (x, y) {
        (Dec::Fin { .. }, Dec::Fin { .. }) => {
            let q = x.div(y).unwrap_or(Dec::NaN).quantize(0, Rounding::Trunc);
            x.sub(&q.mul(y))
        }
        (Dec::Fin { .. }, Dec::Inf(_)) => x.clone(),
        _ => Dec::NaN,
    }
}

/// Double formatted as mongod's `str::stream() << double`.
fn g(d: f64) -> String {
    num::format_double_g(d)
}

fn single_numeric(op: Op, v: &Bson) -> Result<Bson, MongoError> {
    let is_dec = matches!(v, Bson::Decimal128(_));
    let dec_or_double = |r: f64| {
        if is_dec {
            Dec::from_f64(r, 34).to_bson()
        } else {
            Bson::Double(r)
        }
    };
    Ok(match op {
        Op::Abs => match v {
            Bson::Double(d) => Bson::Double(d.abs()),
            Bson::Decimal128(_) => to_dec(v).abs().to_bson(),
            Bson::Int64(i) => {
                if *i == i64::MIN {
                    return Err(MongoError::location(
                        28680,
                        "can't take $abs of long long min",
                    ));
                }
                Bson::Int64(i.abs())
            }
            _ => int_or_long(to_i64(v).abs()),
        },
        Op::Ceil | Op::Floor => match v {
            Bson::Double(d) => Bson::Double(if op == Op::Ceil { d.ceil() } else { d.floor() }),
            Bson::Decimal128(_) => to_dec(v)
                .quantize(
                    0,
                    if op == Op::Ceil {
                        Rounding::Ceil
                    } else {
                        Rounding::Floor
                    },
                )
                .to_bson(),
            other => other.clone(),
        },
        Op::Exp => dec_or_double(to_f64(v).exp()),
        Op::Ln | Op::Log10 => {
            let d = to_f64(v);
            if !(d > 0.0 || d.is_nan()) {
                let (code, name) = if op == Op::Ln {
                    (28766, "$ln")
                } else {
                    (28761, "$log10")
                };
                return Err(MongoError::location(
                    code,
                    format!(
                        "{name}'s argument must be a positive number, but is {}",
                        g(d)
                    ),
                ));
            }
            dec_or_double(if op == Op::Ln { d.ln() } else { d.log10() })
        }
        Op::Sqrt => {
            let d = to_f64(v);
            if d < 0.0 {
                return Err(MongoError::location(
                    28714,
                    "$sqrt's argument must be greater than or equal to 0",
                ));
            }
            dec_or_double(d.sqrt())
        }
        Op::DegreesToRadians => dec_or_double(to_f64(v).to_radians()),
        Op::RadiansToDegrees => dec_or_double(to_f64(v).to_degrees()),
        Op::Trig(t) => {
            let d = to_f64(v);
            t.check(d)?;
            dec_or_double(t.apply(d))
        }
        _ => unreachable!("not a single-numeric operator"),
    })
}

fn round_or_trunc(op: Op, args: &[Option<Bson>]) -> R {
    let name = op_name(op);
    if nullish(&args[0]) {
        return null();
    }
    let v = args[0].as_ref().expect("set");
    if !num::is_numeric(v) {
        return Err(MongoError::location(
            51081,
            format!(
                "{name} only supports numeric types, not {}",
                util::type_name(v)
            ),
        ));
    }
    let mut precision = 0i64;
    if let Some(p) = args.get(1) {
        if nullish(p) {
            return null();
        }
        let p = p.as_ref().expect("set");
        if !num::is_integral32(p) {
            return Err(MongoError::location(
                51082,
                format!("precision argument to  {name} must be a integral value"),
            ));
        }
        precision = to_i64(p);
        if !(-20..=100).contains(&precision) {
            return Err(MongoError::location(
                51083,
                format!(
                    "cannot apply {name} with precision value {precision} value must be in [-20, 100]"
                ),
            ));
        }
    }
    let mode = if op == Op::Round {
        Rounding::HalfEven
    } else {
        Rounding::Trunc
    };
    let target = -(precision as i32);
    Ok(Some(match v {
        Bson::Decimal128(_) => match to_dec(v) {
            d @ (Dec::Inf(_) | Dec::NaN) => d.to_bson(),
            d => d.quantize(target, mode).to_bson(),
        },
        Bson::Double(d) => {
            if !d.is_finite() {
                return Ok(Some(v.clone()));
            }
            Bson::Double(Dec::from_f64(*d, 34).quantize(target, mode).to_f64())
        }
        _ => {
            if precision >= 0 {
                return Ok(Some(v.clone()));
            }
            let n = to_i64(v);
            let out = Dec::from_i64(n).quantize(target, mode).to_i64_checked();
            let Some(out) = out else {
                return Err(MongoError::location(
                    51080,
                    format!(
                        "invalid conversion from Decimal128 result in {name} resulting from arguments: [{n}, {precision}]"
                    ),
                ));
            };
            if matches!(v, Bson::Int64(_)) || i32::try_from(out).is_err() {
                Bson::Int64(out)
            } else {
                Bson::Int32(out as i32)
            }
        }
    }))
}

fn log(a: &Option<Bson>, b: &Option<Bson>) -> R {
    if nullish(a) || nullish(b) {
        return null();
    }
    let (x, base) = (a.as_ref().expect("set"), b.as_ref().expect("set"));
    if !num::is_numeric(x) {
        return Err(MongoError::location(
            28756,
            format!(
                "$log's argument must be numeric, not {}",
                util::type_name(x)
            ),
        ));
    }
    if !num::is_numeric(base) {
        return Err(MongoError::location(
            28757,
            format!("$log's base must be numeric, not {}", util::type_name(base)),
        ));
    }
    let (xd, bd) = (to_f64(x), to_f64(base));
    let is_dec = matches!(x, Bson::Decimal128(_)) || matches!(base, Bson::Decimal128(_));
    if is_dec && xd > 0.0 && bd > 0.0 && bd != 1.0 {
        return Ok(Some(Dec::from_f64(xd.ln() / bd.ln(), 34).to_bson()));
    }
    if !(xd > 0.0 || xd.is_nan()) {
        return Err(MongoError::location(
            28758,
            format!(
                "$log's argument must be a positive number, but is {}",
                g(xd)
            ),
        ));
    }
    if !((bd > 0.0 && bd != 1.0) || bd.is_nan()) {
        return Err(MongoError::location(
            28759,
            format!(
                "$log's base must be a positive number not equal to 1, but is {}",
                g(bd)
            ),
        ));
    }
    Ok(Some(Bson::Double(xd.ln() / bd.ln())))
}

fn pow(a: &Option<Bson>, b: &Option<Bson>) -> R {
    if nullish(a) || nullish(b) {
        return null();
    }
    let (base, exp) = (a.as_ref().expect("set"), b.as_ref().expect("set"));
    if !num::is_numeric(base) {
        return Err(MongoError::location(
            28762,
            format!("$pow's base must be numeric, not {}", util::type_name(base)),
        ));
    }
    if !num::is_numeric(exp) {
        return Err(MongoError::location(
            28763,
            format!(
                "$pow's exponent must be numeric, not {}",
                util::type_name(exp)
            ),
        ));
    }
    let zero_neg = || {
        MongoError::location(
            28764,
            "$pow cannot take a base of 0 and a negative exponent",
        )
    };
    let (bd, ed) = (to_f64(base), to_f64(exp));
    if matches!(base, Bson::Decimal128(_)) || matches!(exp, Bson::Decimal128(_)) {
        if to_dec(base).is_zero() && to_dec(exp).is_neg() {
            return Err(zero_neg());
        }
        return Ok(Some(Dec::from_f64(bd.powf(ed), 34).to_bson()));
    }
    if bd == 0.0 && ed < 0.0 {
        return Err(zero_neg());
    }
    if matches!(base, Bson::Double(_)) || matches!(exp, Bson::Double(_)) {
        return Ok(Some(Bson::Double(bd.powf(ed))));
    }
    let long = matches!(base, Bson::Int64(_)) || matches!(exp, Bson::Int64(_));
    let fmt = |r: i64| if long { Bson::Int64(r) } else { int_or_long(r) };
    let (bl, el) = (to_i64(base), to_i64(exp));
    Ok(Some(match bl {
        0 => fmt(if el == 0 { 1 } else { 0 }),
        1 => fmt(1),
        -1 => fmt(if el % 2 == 0 { 1 } else { -1 }),
        _ if !(0..=63).contains(&el) => Bson::Double((bl as f64).powf(el as f64)),
        _ => match bl.checked_pow(el as u32) {
            Some(r) => fmt(r),
            None => Bson::Double((bl as f64).powf(el as f64)),
        },
    }))
}

/// The trigonometric operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trig {
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Tanh,
    Asinh,
    Acosh,
    Atanh,
}

impl Trig {
    pub(crate) fn from_name(name: &str) -> Option<Trig> {
        use Trig::*;
        Some(match name {
            "$sin" => Sin,
            "$cos" => Cos,
            "$tan" => Tan,
            "$asin" => Asin,
            "$acos" => Acos,
            "$atan" => Atan,
            "$sinh" => Sinh,
            "$cosh" => Cosh,
            "$tanh" => Tanh,
            "$asinh" => Asinh,
            "$acosh" => Acosh,
            "$atanh" => Atanh,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        use Trig::*;
        match self {
            Sin => "$sin",
            Cos => "$cos",
            Tan => "$tan",
            Asin => "$asin",
            Acos => "$acos",
            Atan => "$atan",
            Sinh => "$sinh",
            Cosh => "$cosh",
            Tanh => "$tanh",
            Asinh => "$asinh",
            Acosh => "$acosh",
            Atanh => "$atanh",
        }
    }

    /// mongod's bounded trigonometric checks (50989).
    fn check(self, d: f64) -> Result<(), MongoError> {
        use Trig::*;
        if d.is_nan() {
            return Ok(());
        }
        let (ok, bounds) = match self {
            Sin | Cos | Tan => (d.is_finite(), "(-inf,inf)"),
            Asin | Acos | Atanh => ((-1.0..=1.0).contains(&d), "[-1,1]"),
            Acosh => (d >= 1.0, "[1,inf]"),
            _ => (true, ""),
        };
        if ok {
            Ok(())
        } else {
            Err(MongoError::location(
                50989,
                format!(
                    "cannot apply {} to {}, value must be in {bounds}",
                    self.name(),
                    g(d)
                ),
            ))
        }
    }

    fn apply(self, d: f64) -> f64 {
        use Trig::*;
        match self {
            Sin => d.sin(),
            Cos => d.cos(),
            Tan => d.tan(),
            Asin => d.asin(),
            Acos => d.acos(),
            Atan => d.atan(),
            Sinh => d.sinh(),
            Cosh => d.cosh(),
            Tanh => d.tanh(),
            Asinh => d.asinh(),
            Acosh => d.acosh(),
            Atanh => d.atanh(),
        }
    }
}
