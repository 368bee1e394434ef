//! `$setWindowFields` (mongod 7.0 `document_source_set_window_fields.cpp`,
//! `window_function/`): each document gets fields computed over a window of the
//! documents of its partition.
//!
//! As mongod, the input is sorted by the partition key then `sortBy` (no sort when
//! there is neither), partitions are runs of equal keys, and every output is computed
//! against the input documents, then set with `$addFields`' dotted-path semantics.
//!
//! A window is a range of positions in the partition: `documents` bounds are offsets
//! from the current document; `range` bounds are values added to the current
//! document's `sortBy` value (a number, or a date with `unit`). The accumulators are
//! those of `$group` ([`AccSpec`]), fed the documents of each window; when a window
//! only grows at its end (`["unbounded", ...]`), the state is kept and extended
//! instead of recomputed.

use std::cmp::Ordering;

use bson::{Bson, Document};
use eddy_codes::{ErrorCode, MongoError};

use super::group::{parse_n_acc, AccSpec, AccState};
use super::{set_nested, value_cmp};
use crate::cmp::is_number;
use crate::expr::quantile::QuantileUse;
use crate::expr::{add_in_utc, fixed_unit_ms, time_unit, Env, Expr, TimeUnit};
use crate::projection::field_path;
use crate::sort::SortSpec;
use crate::util::{self, bson_to_string, elem_to_string, type_name};

/// A parsed `$setWindowFields`.
#[derive(Debug, Clone)]
pub struct SetWindowFields {
    partition_by: Option<Expr>,
    sort_by: Option<SortSpec>,
    /// The first `sortBy` field as an expression (`$field`), for range windows,
    /// ranks and the functions that read the sort value.
    sort_field: Option<Expr>,
    outputs: Vec<(Vec<String>, WindowFn)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Bound {
    Unbounded,
    Current,
    /// A document offset, or a range delta (a number; an integer with a unit).
    At(f64),
}

#[derive(Debug, Clone)]
enum Bounds {
    Documents(Bound, Bound),
    Range(Bound, Bound, Option<TimeUnit>),
}

const UNBOUNDED: Bounds = Bounds::Documents(Bound::Unbounded, Bound::Unbounded);
const TO_CURRENT: Bounds = Bounds::Documents(Bound::Unbounded, Bound::Current);

#[derive(Debug, Clone)]
struct WindowFn {
    kind: Kind,
    bounds: Bounds,
}

#[derive(Debug, Clone)]
enum Kind {
    /// A `$group` accumulator over the window (`$count` is `$sum: 1`).
    Acc(AccSpec),
    Rank,
    DenseRank,
    DocumentNumber,
    Shift {
        output: Expr,
        by: i64,
        default: Bson,
    },
    Derivative {
        input: Expr,
        unit_ms: Option<i64>,
    },
    Integral {
        input: Expr,
        unit_ms: Option<i64>,
    },
    ExpMovingAvg {
        input: Expr,
        alpha: f64,
    },
    Covariance {
        input: Expr,
        sample: bool,
    },
    Locf(Expr),
    LinearFill(Expr),
}

/// mongod 7.0's window functions.
const WINDOW_FUNCTIONS: &[&str] = &[
    "$addToSet",
    "$avg",
    "$bottom",
    "$bottomN",
    "$count",
    "$covariancePop",
    "$covarianceSamp",
    "$denseRank",
    "$derivative",
    "$documentNumber",
    "$expMovingAvg",
    "$first",
    "$firstN",
    "$integral",
    "$last",
    "$lastN",
    "$linearFill",
    "$locf",
    "$max",
    "$maxN",
    "$median",
    "$min",
    "$minN",
    "$percentile",
    "$push",
    "$rank",
    "$shift",
    "$stdDevPop",
    "$stdDevSamp",
    "$sum",
    "$top",
    "$topN",
];

fn is_function(name: &str) -> bool {
    WINDOW_FUNCTIONS.contains(&name)
}

fn fail(message: impl Into<String>) -> MongoError {
    MongoError::failed_to_parse(message)
}

impl SetWindowFields {
    /// Parses the stage's argument (mongod's IDL `SetWindowFieldsSpec`, then each
    /// output's window function).
    pub fn parse(arg: &Bson, vars: &[String]) -> Result<SetWindowFields, MongoError> {
        let Bson::Document(spec) = arg else {
            return Err(fail(format!(
                "the $setWindowFields stage specification must be an object, found {}",
                type_name(arg)
            )));
        };
        let (mut partition_by, mut sort_by, mut output) = (None, None, None);
        for (k, v) in spec {
            let wrong_type = || {
                MongoError::type_mismatch(format!(
                    "BSON field '$setWindowFields.{k}' is the wrong type '{}', expected type 'object'",
                    type_name(v)
                ))
            };
            match k.as_str() {
                "partitionBy" => partition_by = Some(Expr::parse_with_vars(v, vars)?),
                "sortBy" => match v {
                    Bson::Document(d) => sort_by = Some(SortSpec::parse(d)?),
                    _ => return Err(wrong_type()),
                },
                "output" => match v {
                    Bson::Document(d) => output = Some(d),
                    _ => return Err(wrong_type()),
                },
                other => {
                    return Err(MongoError::location(
                        eddy_codes::location::UNKNOWN_FIELD,
                        format!("BSON field '$setWindowFields.{other}' is an unknown field."),
                    ))
                }
            }
        }
        let Some(output) = output else {
            return Err(MongoError::location(
                eddy_codes::location::MISSING_FIELD,
                "BSON field '$setWindowFields.output' is missing but a required field",
            ));
        };
        if let Some(p) = &partition_by {
            if p.is_constant() {
                if let Ok(Some(Bson::Array(_))) = p.evaluate(&Document::new(), &Env::new()) {
                    return Err(partition_array());
                }
            }
        }
        let sort_field = match sort_by.as_ref().and_then(|s| s.fields().first()) {
            Some((path, _)) => Some(Expr::parse(&Bson::String(format!("${path}")))?),
            None => None,
        };
        let mut outputs: Vec<(Vec<String>, WindowFn)> = Vec::with_capacity(output.len());
        for (name, v) in output {
            let path = field_path(name)?;
            let conflict = outputs.iter().any(|(p, _)| {
                let n = p.len().min(path.len());
                p[..n] == path[..n]
            });
            if conflict {
                return Err(MongoError::location(
                    6307900,
                    "$setWindowFields 'output' specification contains two conflicting paths",
                ));
            }
            let Bson::Document(f) = v else {
                return Err(fail(format!("The field '{name}' must be an object")));
            };
            outputs.push((path, parse_function(f, sort_by.as_ref(), vars)?));
        }
        Ok(SetWindowFields {
            partition_by,
            sort_by,
            sort_field,
            outputs,
        })
    }

    /// Runs the stage.
    pub fn run(&self, docs: Vec<Document>, env: &Env) -> Result<Vec<Document>, MongoError> {
        let mut keyed: Vec<(Bson, Vec<Bson>, Document)> = Vec::with_capacity(docs.len());
        for d in docs {
            let pk = match &self.partition_by {
                Some(e) => match e.evaluate(&d, env)? {
                    Some(Bson::Array(_)) => return Err(partition_array()),
                    Some(v) => v,
                    None => Bson::Null,
                },
                None => Bson::Null,
            };
            let sk = match &self.sort_by {
                Some(s) => s.key(&d)?,
                None => Vec::new(),
            };
            keyed.push((pk, sk, d));
        }
        if self.partition_by.is_some() || self.sort_by.is_some() {
            keyed.sort_by(|a, b| {
                // Partitions and sortBy under the pipeline's collation.
                env.compare(&a.0, &b.0).then_with(|| match &self.sort_by {
                    Some(s) => s.compare_keys_under(&a.1, &b.1, env.collation.as_deref()),
                    None => Ordering::Equal,
                })
            });
        }
        let mut out = Vec::with_capacity(keyed.len());
        let mut start = 0;
        while start < keyed.len() {
            let mut end = start + 1;
            while end < keyed.len() && env.equal(&keyed[end].0, &keyed[start].0) {
                end += 1;
            }
            let part = &keyed[start..end];
            let docs: Vec<&Document> = part.iter().map(|(_, _, d)| d).collect();
            let keys: Vec<&[Bson]> = part.iter().map(|(_, k, _)| k.as_slice()).collect();
            let mut columns = Vec::with_capacity(self.outputs.len());
            for (_, f) in &self.outputs {
                columns.push(self.column(f, &docs, &keys, env)?);
            }
            for (i, d) in docs.iter().enumerate() {
                let mut d = (*d).clone();
                for ((path, _), col) in self.outputs.iter().zip(columns.iter_mut()) {
                    if let Some(v) = col[i].take() {
                        set_nested(&mut d, path, v);
                    }
                }
                out.push(d);
            }
            start = end;
        }
        Ok(out)
    }

    /// The value of one output for every document of a partition (`None`: missing).
    fn column(
        &self,
        f: &WindowFn,
        docs: &[&Document],
        keys: &[&[Bson]],
        env: &Env,
    ) -> Result<Vec<Option<Bson>>, MongoError> {
        let n = docs.len();
        let int = |i: usize| i32::try_from(i).map_or(Bson::Int64(i as i64), Bson::Int32);
        Ok(match &f.kind {
            Kind::DocumentNumber => (1..=n).map(|i| Some(int(i))).collect(),
            Kind::Rank | Kind::DenseRank => {
                let dense = matches!(f.kind, Kind::DenseRank);
                let mut out = Vec::with_capacity(n);
                let (mut rank, mut dense_rank) = (0usize, 0usize);
                for i in 0..n {
                    let same = i > 0 && same_key(env, keys[i - 1], keys[i]);
                    if !same {
                        rank = i + 1;
                        dense_rank += 1;
                    }
                    out.push(Some(int(if dense { dense_rank } else { rank })));
                }
                out
            }
            Kind::Shift {
                output,
                by,
                default,
            } => {
                let mut out = Vec::with_capacity(n);
                for i in 0..n {
                    let j = i as i64 + by;
                    out.push(match usize::try_from(j).ok().filter(|j| *j < n) {
                        Some(j) => output.evaluate(docs[j], env)?,
                        None => Some(default.clone()),
                    });
                }
                out
            }
            Kind::Locf(input) => {
                let mut last = Bson::Null;
                let mut out = Vec::with_capacity(n);
                for d in docs {
                    if let Some(v) = input.evaluate(d, env)? {
                        if !matches!(v, Bson::Null | Bson::Undefined) {
                            last = v;
                        }
                    }
                    out.push(Some(last.clone()));
                }
                out
            }
            Kind::LinearFill(input) => self.linear_fill(input, docs, env)?,
            Kind::ExpMovingAvg { input, alpha } => {
                let mut cur: Option<f64> = None;
                let mut out = Vec::with_capacity(n);
                for d in docs {
                    if let Some(x) = input
                        .evaluate(d, env)?
                        .filter(is_number)
                        .and_then(|v| util::number_as_f64(&v))
                    {
                        cur = Some(match cur {
                            None => x,
                            Some(prev) => x * alpha + prev * (1.0 - alpha),
                        });
                    }
                    out.push(Some(cur.map_or(Bson::Null, Bson::Double)));
                }
                out
            }
            _ => {
                let mut out = Vec::with_capacity(n);
                let mut running: Option<(usize, usize, AccState)> = None;
                // The sort values, once per partition, for range windows.
                let values = match f.bounds {
                    Bounds::Range(..) => docs
                        .iter()
                        .map(|d| Ok(self.sort_value(d, env)?.unwrap_or(Bson::Null)))
                        .collect::<Result<Vec<Bson>, MongoError>>()?,
                    Bounds::Documents(..) => Vec::new(),
                };
                for i in 0..n {
                    let w = self.window(&f.bounds, i, n, &values)?;
                    out.push(Some(match &f.kind {
                        Kind::Acc(acc) => accumulate_window(acc, w, docs, env, &mut running)?,
                        Kind::Derivative { input, unit_ms } => {
                            self.derivative(input, *unit_ms, w, docs, env)?
                        }
                        Kind::Integral { input, unit_ms } => {
                            self.integral(input, *unit_ms, w, docs, env)?
                        }
                        Kind::Covariance { input, sample } => {
                            covariance(input, *sample, w, docs, env)?
                        }
                        _ => Bson::Null,
                    }));
                }
                out
            }
        })
    }

    /// The positions `[lo, hi)` of the window of the document at `i`.
    fn window(
        &self,
        bounds: &Bounds,
        i: usize,
        n: usize,
        values: &[Bson],
    ) -> Result<(usize, usize), MongoError> {
        let n = n as i64;
        match bounds {
            Bounds::Documents(lo, hi) => {
                let at = |b: &Bound, unbounded: i64| match b {
                    Bound::Unbounded => unbounded,
                    Bound::Current => i as i64,
                    Bound::At(k) => i as i64 + *k as i64,
                };
                let lo = at(lo, 0).clamp(0, n);
                let hi = (at(hi, n - 1) + 1).clamp(0, n);
                Ok((lo as usize, (hi.max(lo)) as usize))
            }
            Bounds::Range(lo, hi, unit) => Self::range_window(*lo, *hi, *unit, i, values),
        }
    }

    fn sort_value(&self, d: &Document, env: &Env) -> Result<Option<Bson>, MongoError> {
        match &self.sort_field {
            Some(e) => e.evaluate(d, env),
            None => Ok(None),
        }
    }

    /// A range window: from the first document whose sort value reaches the current
    /// value plus the lower bound (`current`: the current document itself) to the last
    /// one not past the current value plus the upper bound, among the documents of the
    /// expected type (numbers, or dates with a unit).
    fn range_window(
        lo: Bound,
        hi: Bound,
        unit: Option<TimeUnit>,
        i: usize,
        values: &[Bson],
    ) -> Result<(usize, usize), MongoError> {
        let base = values.get(i).cloned().unwrap_or(Bson::Null);
        match (&base, unit) {
            (Bson::DateTime(_), Some(_)) => {}
            (other, Some(_)) => {
                return Err(MongoError::location(
                    5429513,
                    format!(
                        "Invalid range: Expected the sortBy field to be a Date, but it was {}",
                        type_name(other)
                    ),
                ))
            }
            (Bson::DateTime(_), None) => {
                return Err(MongoError::location(
                    5429413,
                    "Invalid range: For windows that involve date or time ranges, a unit must be provided.",
                ))
            }
            (other, None) if !is_number(other) => {
                return Err(MongoError::location(
                    5429414,
                    format!(
                        "Invalid range: Expected the sortBy field to be a number, but it was {}",
                        type_name(other)
                    ),
                ))
            }
            _ => {}
        }
        let expected = |v: &Bson| match unit {
            Some(_) => matches!(v, Bson::DateTime(_)),
            None => is_number(v),
        };
        let threshold = |delta: f64| -> Result<Bson, MongoError> {
            Ok(match (&base, unit) {
                (Bson::DateTime(d), Some(u)) => {
                    let ms =
                        add_in_utc(d.timestamp_millis(), u, delta as i64).ok_or_else(|| {
                            MongoError::new(ErrorCode::Overflow, "date overflow in range window")
                        })?;
                    Bson::DateTime(bson::DateTime::from_millis(ms))
                }
                _ => match &base {
                    Bson::Decimal128(_) => super::group::add_via_expr(&base, &Bson::Double(delta))?,
                    _ => Bson::Double(util::number_as_f64(&base).unwrap_or(0.0) + delta),
                },
            })
        };
        let n = values.len();
        let lower = match lo {
            Bound::Current => Some(i),
            Bound::Unbounded => values.iter().position(expected),
            Bound::At(delta) => {
                let t = threshold(delta)?;
                values
                    .iter()
                    .position(|v| value_cmp(v, &t) != Ordering::Less)
                    .filter(|p| expected(&values[*p]))
            }
        };
        let Some(lower) = lower else {
            return Ok((0, 0));
        };
        let upper_excl = match hi {
            Bound::Current => i + 1,
            Bound::Unbounded => {
                let mut j = lower.max(i);
                while j < n && expected(&values[j]) {
                    j += 1;
                }
                j
            }
            Bound::At(delta) => {
                let t = threshold(delta)?;
                let mut j = lower;
                while j < n
                    && expected(&values[j])
                    && value_cmp(&values[j], &t) != Ordering::Greater
                {
                    j += 1;
                }
                j
            }
        };
        Ok((lower, upper_excl.max(lower)))
    }

    /// The sort value of a document as a number of milliseconds (dates, with a unit)
    /// or a number.
    fn x_of(
        &self,
        d: &Document,
        unit_ms: Option<i64>,
        op: &str,
        env: &Env,
    ) -> Result<f64, MongoError> {
        let v = self.sort_value(d, env)?.unwrap_or(Bson::Null);
        match (unit_ms, &v) {
            // Milliseconds; callers divide differences by the unit (dividing the
            // dates themselves would lose the differences' precision).
            (Some(_), Bson::DateTime(t)) => Ok(t.timestamp_millis() as f64),
            (Some(_), other) => Err(MongoError::location(
                5624900,
                format!(
                    "{op} with unit expects the sortBy field to be a Date, but it was {}",
                    type_name(other)
                ),
            )),
            (None, Bson::DateTime(_)) => Err(MongoError::location(
                5624901,
                format!("{op} where the sortBy is a Date requires an 'unit'"),
            )),
            (None, other) => util::number_as_f64(other).filter(|_| is_number(other)).ok_or_else(|| {
                MongoError::location(
                    5624902,
                    format!(
                        "{op} (with no 'unit') expects the sortBy field to be numeric, but it was {}",
                        type_name(other)
                    ),
                )
            }),
        }
    }

    fn y_of(input: &Expr, d: &Document, op: &str, env: &Env) -> Result<f64, MongoError> {
        let v = input.evaluate(d, env)?.unwrap_or(Bson::Null);
        util::number_as_f64(&v)
            .filter(|_| is_number(&v))
            .ok_or_else(|| {
                MongoError::location(
                    5624903,
                    format!("{op} input must be numeric, but it was {}", type_name(&v)),
                )
            })
    }

    fn derivative(
        &self,
        input: &Expr,
        unit_ms: Option<i64>,
        (lo, hi): (usize, usize),
        docs: &[&Document],
        env: &Env,
    ) -> Result<Bson, MongoError> {
        if hi <= lo + 1 {
            return Ok(Bson::Null);
        }
        let (a, b) = (docs[lo], docs[hi - 1]);
        let dx = (self.x_of(b, unit_ms, "$derivative", env)?
            - self.x_of(a, unit_ms, "$derivative", env)?)
            / unit_ms.unwrap_or(1) as f64;
        let dy =
            Self::y_of(input, b, "$derivative", env)? - Self::y_of(input, a, "$derivative", env)?;
        if dx == 0.0 {
            return Ok(Bson::Null);
        }
        Ok(Bson::Double(dy / dx))
    }

    fn integral(
        &self,
        input: &Expr,
        unit_ms: Option<i64>,
        (lo, hi): (usize, usize),
        docs: &[&Document],
        env: &Env,
    ) -> Result<Bson, MongoError> {
        if hi <= lo {
            return Ok(Bson::Null);
        }
        let mut sum = 0.0;
        let mut prev: Option<(f64, f64)> = None;
        for d in &docs[lo..hi] {
            let x = self.x_of(d, unit_ms, "$integral", env)?;
            let y = Self::y_of(input, d, "$integral", env)?;
            if let Some((px, py)) = prev {
                sum += (x - px) / unit_ms.unwrap_or(1) as f64 * (y + py) / 2.0;
            }
            prev = Some((x, y));
        }
        Ok(Bson::Double(sum))
    }

    fn linear_fill(
        &self,
        input: &Expr,
        docs: &[&Document],
        env: &Env,
    ) -> Result<Vec<Option<Bson>>, MongoError> {
        let mut ys: Vec<Option<Bson>> = Vec::with_capacity(docs.len());
        for d in docs {
            let v = input.evaluate(d, env)?;
            match &v {
                None | Some(Bson::Null) | Some(Bson::Undefined) => ys.push(None),
                Some(v) if is_number(v) => ys.push(Some(v.clone())),
                Some(other) => {
                    return Err(MongoError::location(
                        6050106,
                        format!(
                            "There can be no non-numeric values in $linearFill, but found {}",
                            type_name(other)
                        ),
                    ))
                }
            }
        }
        let x = |d: &Document| -> Result<f64, MongoError> {
            match self.sort_value(d, env)?.unwrap_or(Bson::Null) {
                Bson::DateTime(t) => Ok(t.timestamp_millis() as f64),
                v if is_number(&v) => Ok(util::number_as_f64(&v).unwrap_or(0.0)),
                v => Err(MongoError::location(
                    6050105,
                    format!(
                        "$linearFill requires the sortBy field to be numeric or a date, but found {}",
                        type_name(&v)
                    ),
                )),
            }
        };
        let mut out = Vec::with_capacity(docs.len());
        for i in 0..docs.len() {
            if let Some(y) = &ys[i] {
                out.push(Some(y.clone()));
                continue;
            }
            let prev = (0..i).rev().find(|j| ys[*j].is_some());
            let next = (i + 1..docs.len()).find(|j| ys[*j].is_some());
            let v = match (prev, next) {
                (Some(p), Some(q)) => {
                    let (x0, x1, xi) = (x(docs[p])?, x(docs[q])?, x(docs[i])?);
                    let y0 = ys[p].as_ref().and_then(util::number_as_f64).unwrap_or(0.0);
                    let y1 = ys[q].as_ref().and_then(util::number_as_f64).unwrap_or(0.0);
                    if x1 == x0 {
                        Bson::Null
                    } else {
                        Bson::Double(y0 + (y1 - y0) * (xi - x0) / (x1 - x0))
                    }
                }
                _ => Bson::Null,
            };
            out.push(Some(v));
        }
        Ok(out)
    }
}

fn partition_array() -> MongoError {
    MongoError::type_mismatch(
        "An expression used to partition cannot evaluate to value of type array",
    )
}

fn same_key(env: &Env, a: &[Bson], b: &[Bson]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| env.equal(x, y))
}

/// An accumulator over `[lo, hi)`, reusing the previous window's state when this one
/// starts at the same place and ends no earlier (windows that only grow).
fn accumulate_window(
    acc: &AccSpec,
    (lo, hi): (usize, usize),
    docs: &[&Document],
    env: &Env,
    running: &mut Option<(usize, usize, AccState)>,
) -> Result<Bson, MongoError> {
    let n = acc.n_against(&Document::new(), env)?;
    let (mut from, mut state) = match running.take() {
        Some((rlo, rhi, st)) if rlo == lo && rhi <= hi => (rhi, st),
        _ => (lo, acc.init()),
    };
    while from < hi {
        acc.accumulate(&mut state, docs[from], n, env)?;
        from += 1;
    }
    let v = acc.finish(state.clone())?;
    *running = Some((lo, hi, state));
    Ok(v)
}

fn covariance(
    input: &Expr,
    sample: bool,
    (lo, hi): (usize, usize),
    docs: &[&Document],
    env: &Env,
) -> Result<Bson, MongoError> {
    let mut pts = Vec::new();
    for d in &docs[lo..hi] {
        if let Some(Bson::Array(xy)) = input.evaluate(d, env)? {
            if let [x, y] = xy.as_slice() {
                if is_number(x) && is_number(y) {
                    let x = util::number_as_f64(x).unwrap_or(0.0);
                    let y = util::number_as_f64(y).unwrap_or(0.0);
                    pts.push((x, y));
                }
            }
        }
    }
    let n = pts.len() as f64;
    if pts.is_empty() || (sample && pts.len() < 2) {
        return Ok(Bson::Null);
    }
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let c = pts.iter().map(|(x, y)| (x - mx) * (y - my)).sum::<f64>();
    Ok(Bson::Double(c / if sample { n - 1.0 } else { n }))
}

/// Parses one output's `{<function>: <args>, window: {...}}`.
fn parse_function(
    f: &Document,
    sort_by: Option<&SortSpec>,
    vars: &[String],
) -> Result<WindowFn, MongoError> {
    let Some(name) = f.keys().find(|k| k.starts_with('$')) else {
        return Err(fail(match f.keys().next() {
            Some(first) => format!("Expected a $-prefixed window function, {first}"),
            None => "Expected a $-prefixed window function".to_owned(),
        }));
    };
    if !is_function(name) {
        return Err(fail(format!("Unrecognized window function, {name}")));
    }
    let name = name.clone();
    match name.as_str() {
        "$rank" | "$denseRank" | "$documentNumber" => parse_rank(&name, f, sort_by),
        "$shift" => parse_shift(f, sort_by, vars),
        "$expMovingAvg" => parse_exp_moving_avg(f, sort_by, vars),
        "$derivative" | "$integral" => parse_with_unit(&name, f, sort_by, vars),
        "$first" | "$last" => {
            let mut bounds = None;
            let mut input = None;
            for (k, v) in f {
                if k == "window" {
                    if bounds.is_some() {
                        return Err(fail(format!(
                            "saw multiple 'window' fields in '{name}' expression"
                        )));
                    }
                    bounds = Some(parse_bounds(v, sort_by)?);
                } else if *k == name {
                    input = Some(Expr::parse_with_vars(v, vars)?);
                } else {
                    return Err(fail(format!("{name} got unexpected argument: {k}")));
                }
            }
            let input = input.ok_or_else(|| MongoError::internal("no input"))?;
            let acc = AccSpec::window(&name, input).ok_or_else(|| MongoError::internal(""))?;
            Ok(WindowFn {
                kind: Kind::Acc(acc),
                bounds: bounds.unwrap_or(UNBOUNDED),
            })
        }
        "$top" | "$bottom" | "$topN" | "$bottomN" | "$firstN" | "$lastN" | "$maxN" | "$minN" => {
            let mut bounds = None;
            let mut acc = None;
            for (k, v) in f {
                if *k == name {
                    if acc.is_some() {
                        return Err(fail(format!(
                            "saw multiple specifications for '{name}' expression"
                        )));
                    }
                    acc = Some(parse_n_acc(&name, v, vars)?);
                } else if k == "window" {
                    if bounds.is_some() {
                        return Err(fail(format!(
                            "saw multiple 'window' fields in '{name}' expression"
                        )));
                    }
                    bounds = Some(parse_bounds(v, sort_by)?);
                } else {
                    return Err(fail(format!("{name} got unexpected argument: {k}")));
                }
            }
            let acc = acc.ok_or_else(|| MongoError::internal("no accumulator"))?;
            // `n` is evaluated when the stage runs, against no document (as mongod).
            Ok(WindowFn {
                kind: Kind::Acc(acc),
                bounds: bounds.unwrap_or(UNBOUNDED),
            })
        }
        "$median" | "$percentile" => {
            let mut bounds = None;
            let mut acc = None;
            for (k, v) in f {
                if *k == name {
                    if acc.is_some() {
                        return Err(fail(format!(
                            "saw multiple specifications for '{name}expression "
                        )));
                    }
                    acc = Some(AccSpec::quantile(&name, v, QuantileUse::Window, vars)?);
                } else if k == "window" {
                    bounds = Some(parse_bounds(v, sort_by)?);
                } else {
                    return Err(fail(format!("{name} got unexpected argument: {k}")));
                }
            }
            let acc = acc.ok_or_else(|| {
                MongoError::location(
                    7455900,
                    format!("Missing or incomplete accumulator specification for {name}"),
                )
            })?;
            Ok(WindowFn {
                kind: Kind::Acc(acc),
                bounds: bounds.unwrap_or(UNBOUNDED),
            })
        }
        "$locf" | "$linearFill" => {
            let mut input = None;
            let mut window = false;
            for (k, v) in f {
                if k == "window" {
                    window = true;
                } else if is_function(k) {
                    if input.is_some() {
                        return Err(fail("Cannot specify two functions in window function spec"));
                    }
                    if *k != name {
                        return Err(fail("Cannot specify two functions in window function spec"));
                    }
                    input = Some(Expr::parse_with_vars(v, vars)?);
                } else {
                    return Err(fail(format!(
                        "Window function found an unknown argument: {k}"
                    )));
                }
            }
            let input =
                input.ok_or_else(|| fail("Must specify a window function in output field"))?;
            if window {
                return Err(fail(format!("'window' field is not allowed in {name}")));
            }
            if name == "$locf" {
                return Ok(WindowFn {
                    kind: Kind::Locf(input),
                    bounds: TO_CURRENT,
                });
            }
            if sort_by.is_none_or(|s| s.fields().len() != 1) {
                return Err(MongoError::location(
                    605001,
                    "$linearFill must be specified with a top level sortBy expression with exactly one element",
                ));
            }
            Ok(WindowFn {
                kind: Kind::LinearFill(input),
                bounds: UNBOUNDED,
            })
        }
        _ => parse_removable(&name, f, sort_by, vars),
    }
}

/// The accumulators (and `$count`, `$covariance*`): `{$op: <operand>, window: ...}`.
fn parse_removable(
    name: &str,
    f: &Document,
    sort_by: Option<&SortSpec>,
    vars: &[String],
) -> Result<WindowFn, MongoError> {
    let mut bounds = UNBOUNDED;
    let mut func: Option<(&str, &Bson)> = None;
    for (k, v) in f {
        if k == "window" {
            bounds = parse_bounds(v, sort_by)?;
        } else if is_function(k) {
            if func.is_some() {
                return Err(fail(if name == "$count" {
                    "Cannot specify multiple functions in window function spec"
                } else {
                    "Cannot specify two functions in window function spec"
                }));
            }
            if name == "$count" && !matches!(v, Bson::Document(d) if d.is_empty()) {
                return Err(fail("$count only accepts an empty object as input"));
            }
            func = Some((k, v));
        } else {
            return Err(fail(format!(
                "Window function found an unknown argument: {k}"
            )));
        }
    }
    let Some((_, arg)) = func else {
        return Err(fail("Must specify a window function in output field"));
    };
    let kind = match name {
        "$count" => Kind::Acc(
            AccSpec::window("$sum", Expr::parse(&Bson::Int32(1))?)
                .ok_or_else(|| MongoError::internal("$sum is an accumulator"))?,
        ),
        "$covariancePop" | "$covarianceSamp" => Kind::Covariance {
            input: Expr::parse_with_vars(arg, vars)?,
            sample: name == "$covarianceSamp",
        },
        other => Kind::Acc(
            AccSpec::window(other, Expr::parse_with_vars(arg, vars)?)
                .ok_or_else(|| MongoError::internal("a window accumulator"))?,
        ),
    };
    Ok(WindowFn { kind, bounds })
}

fn parse_rank(
    name: &str,
    f: &Document,
    sort_by: Option<&SortSpec>,
) -> Result<WindowFn, MongoError> {
    if f.len() != 1 {
        return Err(MongoError::location(
            5371601,
            "Rank style window functions take no other arguments",
        ));
    }
    if !matches!(f.get(name), Some(Bson::Document(d)) if d.is_empty()) {
        return Err(MongoError::location(
            5371603,
            format!("{name} must be specified with '{{}}' as the value"),
        ));
    }
    if sort_by.is_none_or(|s| s.fields().len() != 1) {
        return Err(MongoError::location(
            5371602,
            format!(
                "{name} must be specified with a top level sortBy expression with exactly one element"
            ),
        ));
    }
    let kind = match name {
        "$rank" => Kind::Rank,
        "$denseRank" => Kind::DenseRank,
        _ => Kind::DocumentNumber,
    };
    Ok(WindowFn {
        kind,
        bounds: TO_CURRENT,
    })
}

fn parse_shift(
    f: &Document,
    sort_by: Option<&SortSpec>,
    vars: &[String],
) -> Result<WindowFn, MongoError> {
    let mut kind = None;
    for (k, v) in f {
        if k == "window" {
            return Err(fail("$shift does not accept a 'window' field"));
        } else if is_function(k) {
            if kind.is_some() {
                return Err(fail(
                    "Cannot specify multiple functions in window function spec",
                ));
            }
            let Bson::Document(args) = v else {
                return Err(fail("Argument to $shift must be an object"));
            };
            let (mut output, mut by, mut default) = (None, None, Bson::Null);
            for (a, av) in args {
                match a.as_str() {
                    "output" => output = Some(Expr::parse_with_vars(av, vars)?),
                    "default" => {
                        let e = Expr::parse_with_vars(av, vars)?;
                        if !e.is_constant() {
                            return Err(fail(
                                "'$shift:default' expression must yield a constant value.",
                            ));
                        }
                        default = e
                            .evaluate(&Document::new(), &Env::new())?
                            .unwrap_or(Bson::Null);
                    }
                    "by" => {
                        let n = util::parse_integer_to_int("by", av).map_err(|_| {
                            fail(format!(
                                "'$shift:by' field must be an integer, but found  {}",
                                elem_to_string("by", av)
                            ))
                        })?;
                        by = Some(i64::from(n));
                    }
                    _ => return Err(fail(format!("Unknown argument in {k}"))),
                }
            }
            let output =
                output.ok_or_else(|| fail(format!("{k} requires an 'output' expression.")))?;
            let by = by.ok_or_else(|| fail(format!("{k} requires 'by' as an integer value.")))?;
            kind = Some(Kind::Shift {
                output,
                by,
                default,
            });
        } else {
            return Err(fail(format!(
                "Window function found an unknown argument: {k}"
            )));
        }
    }
    if sort_by.is_none() {
        return Err(fail("'$shift' requires a sortBy"));
    }
    let kind = kind.ok_or_else(|| MongoError::internal("no $shift"))?;
    Ok(WindowFn {
        kind,
        bounds: TO_CURRENT,
    })
}

fn parse_exp_moving_avg(
    f: &Document,
    sort_by: Option<&SortSpec>,
    vars: &[String],
) -> Result<WindowFn, MongoError> {
    let Some(Bson::Document(sub)) = f.get("$expMovingAvg").filter(|_| f.len() == 1) else {
        return Err(fail(
            "$expMovingAvg must have exactly one argument that is an object",
        ));
    };
    let shape = "$expMovingAvg sub object must have exactly two fields: An 'input' field, and either an 'N' field or an 'alpha' field";
    if sub.len() != 2 || !sub.contains_key("input") {
        return Err(fail(shape));
    }
    if sort_by.is_none() {
        return Err(fail("$expMovingAvg requires an explicit 'sortBy'"));
    }
    let input = Expr::parse_with_vars(sub.get("input").unwrap_or(&Bson::Null), vars)?;
    let alpha = if let Some(nv) = sub.get("N") {
        if !is_number(nv) {
            return Err(fail(format!(
                "'N' field must be an integer, but found type {}",
                type_name(nv)
            )));
        }
        let d = util::number_as_f64(nv).unwrap_or(0.0);
        if d != d.floor() {
            return Err(fail(format!(
                "'N' field must be an integer, but found  {}. To use a non-integer, use the 'alpha' argument instead",
                elem_to_string("N", nv)
            )));
        }
        let n = d as i64;
        if n <= 0 {
            return Err(fail(format!("'N' must be greater than zero. Got {n}")));
        }
        2.0 / (n as f64 + 1.0)
    } else if let Some(a) = sub.get("alpha") {
        if !is_number(a) {
            return Err(fail("'alpha' must be a number"));
        }
        let x = util::number_as_f64(a).unwrap_or(0.0);
        if !(x > 0.0 && x < 1.0) {
            return Err(fail(format!(
                "'alpha' must be between 0 and 1 (exclusive), found {}",
                elem_to_string("alpha", a)
            )));
        }
        x
    } else {
        return Err(fail(format!(
            "Got unrecognized field in $expMovingAvg{shape}"
        )));
    };
    Ok(WindowFn {
        kind: Kind::ExpMovingAvg { input, alpha },
        bounds: TO_CURRENT,
    })
}

fn parse_with_unit(
    name: &str,
    f: &Document,
    sort_by: Option<&SortSpec>,
    vars: &[String],
) -> Result<WindowFn, MongoError> {
    let Some(sort) = sort_by else {
        return Err(fail(format!("{name} requires a sortBy")));
    };
    if sort.fields().len() != 1 {
        return Err(fail(format!("{name} requires a non-compound sortBy")));
    }
    let integral = name == "$integral";
    let mut bounds = None;
    let mut args = None;
    for (k, v) in f {
        if k == "window" {
            if integral && bounds.is_some() {
                return Err(fail("There can be only one 'window' field for $integral"));
            }
            bounds = Some(parse_bounds(v, sort_by)?);
        } else if k == name {
            args = Some(v);
        } else {
            return Err(fail(format!("{name} got unexpected argument: {k}")));
        }
    }
    let args = args.ok_or_else(|| MongoError::internal("no arguments"))?;
    let Bson::Document(args) = args else {
        return Err(fail(format!(
            "{name} expects an object, but got a {}: {}",
            type_name(args),
            elem_to_string(name, args)
        )));
    };
    let (mut input, mut unit_ms) = (None, None);
    for (k, v) in args {
        match k.as_str() {
            "input" => input = Some(Expr::parse_with_vars(v, vars)?),
            "unit" => {
                if integral && unit_ms.is_some() {
                    return Err(fail("There can be only one 'unit' field for $integral"));
                }
                let Bson::String(u) = v else {
                    return Err(fail(format!(
                        "unit' must be a string, but got {}",
                        type_name(v)
                    )));
                };
                let unit = parse_time_unit(u)?;
                unit_ms = Some(fixed_unit_ms(unit).ok_or_else(|| {
                    MongoError::location(5490710, "unit must be 'week' or smaller")
                })?);
            }
            other => return Err(fail(format!("{name} got unexpected argument: {other}"))),
        }
    }
    let input = input.ok_or_else(|| fail(format!("{name} requires an 'input' expression")))?;
    let kind = if integral {
        Kind::Integral { input, unit_ms }
    } else {
        Kind::Derivative { input, unit_ms }
    };
    let bounds = match bounds {
        Some(b) => b,
        None if integral => UNBOUNDED,
        None => return Err(fail("$derivative requires explicit window bounds")),
    };
    Ok(WindowFn { kind, bounds })
}

fn parse_time_unit(u: &str) -> Result<TimeUnit, MongoError> {
    time_unit(u).ok_or_else(|| fail(format!("unknown time unit value: {u}")))
}

/// mongod's `WindowBounds::parse`.
fn parse_bounds(v: &Bson, sort_by: Option<&SortSpec>) -> Result<Bounds, MongoError> {
    let Bson::Document(w) = v else {
        return Err(fail("'window' field must be an object"));
    };
    let (documents, range, unit) = (w.get("documents"), w.get("range"), w.get("unit"));
    if documents.is_some() && range.is_some() {
        return Err(fail(
            "Window bounds can specify either 'documents' or 'unit', not both.",
        ));
    }
    if range.is_none() && unit.is_some() {
        return Err(fail(
            "Window bounds can only specify 'unit' with range-based bounds.",
        ));
    }
    let unpack = |name: &str, e: &Bson| -> Result<(Bson, Bson), MongoError> {
        match e {
            Bson::Array(a) if a.len() == 2 => Ok((a[0].clone(), a[1].clone())),
            _ => Err(fail(format!(
                "Window bounds must be a 2-element array: {}",
                elem_to_string(name, e)
            ))),
        }
    };
    if let Some(docs) = documents {
        if w.len() != 1 {
            return Err(fail(
                "'window' field that specifies documents cannot have other fields",
            ));
        }
        let (l, u) = unpack("documents", docs)?;
        let int = |v: Bson| integral_bound(v, "Numeric document-based bounds must be an integer");
        let (lo, hi) = (parse_bound(&l, &int)?, parse_bound(&u, &int)?);
        check_forward(lo, hi)?;
        let unbounded = lo == Bound::Unbounded && hi == Bound::Unbounded;
        if !unbounded && sort_by.is_none() {
            return Err(MongoError::location(
                5339901,
                "Document-based bounds require a sortBy",
            ));
        }
        return Ok(Bounds::Documents(lo, hi));
    }
    let Some(range) = range else {
        if !w.is_empty() {
            return Err(fail("'window' field can only contain 'documents' as the only argument or 'range' with an optional 'unit' field"));
        }
        return Ok(UNBOUNDED);
    };
    let (l, u) = unpack("range", range)?;
    let bounds = if let Some(unit) = unit {
        if w.len() != 2 {
            return Err(fail(
                "'window' field that specifies unit cannot have other fields besides 'range'",
            ));
        }
        let Bson::String(unit) = unit else {
            return Err(fail("'unit' must be a string"));
        };
        let int = |v: Bson| integral_bound(v, "With 'unit', range-based bounds must be an integer");
        let (lo, hi) = (parse_bound(&l, &int)?, parse_bound(&u, &int)?);
        check_forward(lo, hi)?;
        Bounds::Range(lo, hi, Some(parse_time_unit(unit)?))
    } else {
        if w.len() != 1 {
            return Err(fail(
                "'window' field that specifies range cannot have other fields besides 'unit'",
            ));
        }
        let num = |v: Bson| -> Result<f64, MongoError> {
            if !is_number(&v) {
                return Err(fail("Range-based bounds expression must be a number"));
            }
            Ok(util::number_as_f64(&v).unwrap_or(0.0))
        };
        let (lo, hi) = (parse_bound(&l, &num)?, parse_bound(&u, &num)?);
        check_forward(lo, hi)?;
        Bounds::Range(lo, hi, None)
    };
    let Some(sort) = sort_by.filter(|s| s.fields().len() == 1) else {
        return Err(MongoError::location(
            5339902,
            "Range-based bounds require sortBy a single field",
        ));
    };
    if !sort.fields()[0].1 {
        // mongod 7.0 has no check here and fails later with an internal assertion
        // (5429404); 8.0 refuses at parse time, which is what Eddy does.
        return Err(MongoError::location(
            8947401,
            "Range-based bounds require an ascending sortBy",
        ));
    }
    Ok(bounds)
}

fn parse_bound(
    v: &Bson,
    number: &dyn Fn(Bson) -> Result<f64, MongoError>,
) -> Result<Bound, MongoError> {
    if let Bson::String(s) = v {
        return match s.as_str() {
            "unbounded" => Ok(Bound::Unbounded),
            "current" => Ok(Bound::Current),
            _ => Err(fail(
                "Window bounds must be 'unbounded', 'current', or a number.",
            )),
        };
    }
    let e = Expr::parse(v)?;
    if !e.is_constant() {
        return Err(fail("Window bounds expression must be a constant."));
    }
    let c = e
        .evaluate(&Document::new(), &Env::new())?
        .unwrap_or(Bson::Null);
    Ok(Bound::At(number(c)?))
}

/// Lower must not exceed upper, `current` counting as 0 (5339900).
fn check_forward(lo: Bound, hi: Bound) -> Result<(), MongoError> {
    let num = |b: Bound| match b {
        Bound::Current => Some(0.0),
        Bound::At(x) => Some(x),
        Bound::Unbounded => None,
    };
    if let (Some(l), Some(u)) = (num(lo), num(hi)) {
        if l > u {
            let show = |x: f64| bson_to_string(&number_bson(x));
            return Err(MongoError::location(
                5339900,
                format!(
                    "Lower bound must not exceed upper bound: [{}, {}]",
                    show(l),
                    show(u)
                ),
            ));
        }
    }
    Ok(())
}

fn number_bson(x: f64) -> Bson {
    if x.fract() == 0.0 && x.abs() < 2f64.powi(31) {
        Bson::Int32(x as i32)
    } else {
        Bson::Double(x)
    }
}

/// A window bound that must be an integer (any numeric type holding an integral value):
/// its value, or `message` as mongod's FailedToParse.
fn integral_bound(v: Bson, message: &str) -> Result<f64, MongoError> {
    let integral = match &v {
        Bson::Int32(_) | Bson::Int64(_) => true,
        Bson::Double(d) => d.fract() == 0.0 && d.is_finite(),
        Bson::Decimal128(_) => util::number_as_f64(&v).is_some_and(|d| d.fract() == 0.0),
        _ => false,
    };
    if !integral {
        return Err(fail(message));
    }
    Ok(util::number_as_f64(&v).unwrap_or(0.0))
}

#[cfg(test)]
mod tests {
    use bson::{doc, Bson, Document};

    use super::super::run_simple;

    fn date(s: &str) -> Bson {
        Bson::DateTime(bson::DateTime::parse_rfc3339_str(s).expect("a date"))
    }

    /// The `cakeSales` collection of mongod's `$setWindowFields` documentation.
    fn cake_sales() -> Vec<Document> {
        vec![
            doc! {"_id": 0, "type": "chocolate", "orderDate": date("2020-05-18T14:10:30Z"), "state": "CA", "price": 13, "quantity": 120},
            doc! {"_id": 1, "type": "chocolate", "orderDate": date("2021-03-20T11:30:05Z"), "state": "WA", "price": 14, "quantity": 140},
            doc! {"_id": 2, "type": "vanilla", "orderDate": date("2021-01-11T06:31:15Z"), "state": "CA", "price": 12, "quantity": 145},
            doc! {"_id": 3, "type": "vanilla", "orderDate": date("2020-02-08T13:13:23Z"), "state": "WA", "price": 13, "quantity": 104},
            doc! {"_id": 4, "type": "strawberry", "orderDate": date("2019-05-18T16:09:01Z"), "state": "CA", "price": 41, "quantity": 162},
            doc! {"_id": 5, "type": "strawberry", "orderDate": date("2019-01-08T06:12:03Z"), "state": "WA", "price": 43, "quantity": 134},
        ]
    }

    /// Runs one `$setWindowFields` over `cakeSales`: `(_id, field)` of each output.
    fn run(stage: Document, field: &str) -> Vec<(i32, Bson)> {
        run_simple(&[doc! {"$setWindowFields": stage}], cake_sales())
            .expect("the stage runs")
            .iter()
            .map(|d| {
                (
                    d.get_i32("_id").expect("an _id"),
                    d.get(field).cloned().unwrap_or(Bson::Undefined),
                )
            })
            .collect()
    }

    fn err(stage: Bson) -> (i32, String) {
        let e = run_simple(&[doc! {"$setWindowFields": stage}], cake_sales())
            .expect_err("the stage fails");
        (e.code, e.message)
    }

    fn ints(v: &[(i32, i64)]) -> Vec<(i32, Bson)> {
        v.iter()
            .map(|(i, x)| (*i, i32::try_from(*x).map_or(Bson::Int64(*x), Bson::Int32)))
            .collect()
    }

    #[test]
    fn cumulative_quantity_for_each_state() {
        let out = run(
            doc! {"partitionBy": "$state", "sortBy": {"orderDate": 1}, "output": {
            "cumulativeQuantityForState": {"$sum": "$quantity", "window": {"documents": ["unbounded", "current"]}}}},
            "cumulativeQuantityForState",
        );
        assert_eq!(
            out,
            ints(&[(4, 162), (0, 282), (2, 427), (5, 134), (3, 238), (1, 378)])
        );
    }

    #[test]
    fn cumulative_quantity_for_each_year() {
        let out = run(
            doc! {"partitionBy": {"$year": "$orderDate"}, "sortBy": {"orderDate": 1}, "output": {
            "cumulativeQuantityForYear": {"$sum": "$quantity", "window": {"documents": ["unbounded", "current"]}}}},
            "cumulativeQuantityForYear",
        );
        assert_eq!(
            out,
            ints(&[(5, 134), (4, 296), (3, 104), (0, 224), (2, 145), (1, 285)])
        );
    }

    #[test]
    fn moving_average_of_the_previous_and_current_order() {
        let out = run(
            doc! {"partitionBy": {"$year": "$orderDate"}, "sortBy": {"orderDate": 1}, "output": {
            "averageQuantity": {"$avg": "$quantity", "window": {"documents": [-1, 0]}}}},
            "averageQuantity",
        );
        let want: Vec<(i32, Bson)> = [
            (5, 134.0),
            (4, 148.0),
            (3, 104.0),
            (0, 112.0),
            (2, 145.0),
            (1, 142.5),
        ]
        .iter()
        .map(|(i, x)| (*i, Bson::Double(*x)))
        .collect();
        assert_eq!(out, want);
    }

    #[test]
    fn whole_partition_sum_and_max() {
        let stage = doc! {"partitionBy": {"$year": "$orderDate"}, "sortBy": {"orderDate": 1}, "output": {
        "cumulativeQuantityForYear": {"$sum": "$quantity", "window": {"documents": ["unbounded", "unbounded"]}},
        "maximumQuantityForYear": {"$max": "$quantity", "window": {"documents": ["unbounded", "unbounded"]}}}};
        assert_eq!(
            run(stage.clone(), "cumulativeQuantityForYear"),
            ints(&[(5, 296), (4, 296), (3, 224), (0, 224), (2, 285), (1, 285)])
        );
        assert_eq!(
            run(stage, "maximumQuantityForYear"),
            ints(&[(5, 162), (4, 162), (3, 120), (0, 120), (2, 145), (1, 145)])
        );
    }

    #[test]
    fn range_window_of_similar_prices() {
        let out = run(
            doc! {"partitionBy": "$state", "sortBy": {"price": 1}, "output": {
            "quantityFromSimilarOrders": {"$sum": "$quantity", "window": {"range": [-10, 10]}}}},
            "quantityFromSimilarOrders",
        );
        assert_eq!(
            out,
            ints(&[(2, 265), (0, 265), (4, 162), (3, 244), (1, 244), (5, 134)])
        );
    }

    #[test]
    fn time_range_windows() {
        let out = run(
            doc! {"partitionBy": "$state", "sortBy": {"orderDate": 1}, "output": {
            "recentOrders": {"$push": "$orderDate", "window": {"range": ["unbounded", 10], "unit": "month"}}}},
            "recentOrders",
        );
        let d = |s: &str| date(&format!("{s}Z"));
        let (a, b, c) = (
            d("2019-05-18T16:09:01"),
            d("2020-05-18T14:10:30"),
            d("2021-01-11T06:31:15"),
        );
        let (x, y, z) = (
            d("2019-01-08T06:12:03"),
            d("2020-02-08T13:13:23"),
            d("2021-03-20T11:30:05"),
        );
        assert_eq!(
            out,
            vec![
                (4, Bson::Array(vec![a.clone()])),
                // 2020-05-18 plus ten months passes 2021-01-11.
                (0, Bson::Array(vec![a.clone(), b.clone(), c.clone()])),
                (2, Bson::Array(vec![a.clone(), b.clone(), c])),
                (5, Bson::Array(vec![x.clone()])),
                (3, Bson::Array(vec![x.clone(), y.clone()])),
                (1, Bson::Array(vec![x.clone(), y.clone(), z])),
            ]
        );
        let out = run(
            doc! {"partitionBy": "$state", "sortBy": {"orderDate": 1}, "output": {
            "recentOrders": {"$push": "$orderDate", "window": {"range": ["unbounded", -10], "unit": "month"}}}},
            "recentOrders",
        );
        assert_eq!(
            out,
            vec![
                (4, Bson::Array(vec![])),
                (0, Bson::Array(vec![a.clone()])),
                (2, Bson::Array(vec![a])),
                (5, Bson::Array(vec![])),
                (3, Bson::Array(vec![x.clone()])),
                (1, Bson::Array(vec![x, y])),
            ]
        );
    }

    #[test]
    fn ranks() {
        let stage = |op: &str| {
            doc! {"partitionBy": "$state", "sortBy": {"quantity": -1}, "output": {"r": {op: {}}}}
        };
        assert_eq!(
            run(stage("$rank"), "r"),
            ints(&[(4, 1), (2, 2), (0, 3), (1, 1), (5, 2), (3, 3)])
        );
        assert_eq!(
            run(stage("$documentNumber"), "r"),
            ints(&[(4, 1), (2, 2), (0, 3), (1, 1), (5, 2), (3, 3)])
        );
        // Ties share a rank; $rank skips after them, $denseRank does not.
        let docs = vec![
            doc! {"_id": 1, "v": 5},
            doc! {"_id": 2, "v": 3},
            doc! {"_id": 3, "v": 5},
            doc! {"_id": 4, "v": 1},
        ];
        let ranks = |op: &str| -> Vec<(i32, Bson)> {
            run_simple(
                &[doc! {"$setWindowFields": {"sortBy": {"v": -1}, "output": {"r": {op: {}}}}}],
                docs.clone(),
            )
            .expect("runs")
            .iter()
            .map(|d| {
                (
                    d.get_i32("_id").expect("id"),
                    d.get("r").cloned().expect("r"),
                )
            })
            .collect()
        };
        assert_eq!(ranks("$rank"), ints(&[(1, 1), (3, 1), (2, 3), (4, 4)]));
        assert_eq!(ranks("$denseRank"), ints(&[(1, 1), (3, 1), (2, 2), (4, 3)]));
    }

    #[test]
    fn shift_and_count_and_first_last() {
        let out = run(
            doc! {"partitionBy": "$state", "sortBy": {"quantity": -1}, "output": {
            "shiftQuantityForState": {"$shift": {"output": "$quantity", "by": 1, "default": "Not available"}}}},
            "shiftQuantityForState",
        );
        let s = |x: &str| Bson::String(x.to_owned());
        assert_eq!(
            out,
            vec![
                (4, Bson::Int32(145)),
                (2, Bson::Int32(120)),
                (0, s("Not available")),
                (1, Bson::Int32(134)),
                (5, Bson::Int32(104)),
                (3, s("Not available")),
            ]
        );
        let out = run(
            doc! {"partitionBy": "$state", "sortBy": {"orderDate": 1}, "output": {
            "n": {"$count": {}, "window": {"documents": ["unbounded", "current"]}}}},
            "n",
        );
        assert_eq!(out, ints(&[(4, 1), (0, 2), (2, 3), (5, 1), (3, 2), (1, 3)]));
        let out = run(
            doc! {"partitionBy": "$type", "sortBy": {"orderDate": 1}, "output": {
            "f": {"$first": "$quantity", "window": {"documents": [1, 1]}}}},
            "f",
        );
        // The last of each partition has an empty window: null.
        assert_eq!(
            out,
            vec![
                (0, Bson::Int32(140)),
                (1, Bson::Null),
                (5, Bson::Int32(162)),
                (4, Bson::Null),
                (3, Bson::Int32(145)),
                (2, Bson::Null),
            ]
        );
    }

    fn outputs(stage: Document, docs: Vec<Document>, field: &str) -> Vec<Bson> {
        run_simple(&[doc! {"$setWindowFields": stage}], docs)
            .expect("the stage runs")
            .iter()
            .map(|d| d.get(field).cloned().unwrap_or(Bson::Undefined))
            .collect()
    }

    fn close(v: &Bson, want: f64) -> bool {
        matches!(v, Bson::Double(x) if (x - want).abs() < 1e-9)
    }

    #[test]
    fn derivative_of_the_delivery_fleet() {
        let t = |s: &str| date(&format!("2020-05-18T14:{s}Z"));
        let fleet = vec![
            doc! {"_id": 0, "truckID": "1", "timeStamp": t("10:30"), "miles": 1295.1},
            doc! {"_id": 1, "truckID": "1", "timeStamp": t("11:00"), "miles": 1295.63},
            doc! {"_id": 2, "truckID": "1", "timeStamp": t("11:30"), "miles": 1296.25},
            doc! {"_id": 3, "truckID": "1", "timeStamp": t("12:00"), "miles": 1296.76},
        ];
        let out = outputs(
            doc! {"partitionBy": "$truckID", "sortBy": {"timeStamp": 1}, "output": {
            "speed": {"$derivative": {"input": "$miles", "unit": "hour"},
                      "window": {"range": [-30, 0], "unit": "second"}}}},
            fleet,
            "speed",
        );
        assert_eq!(out[0], Bson::Null, "one document in the window");
        assert!(close(&out[1], 63.6), "{out:?}");
        assert!(close(&out[2], 74.4), "{out:?}");
        assert!(close(&out[3], 61.2), "{out:?}");
    }

    #[test]
    fn integral_covariance_and_moving_average() {
        let docs: Vec<Document> = [(0, 1.0), (1, 3.0), (2, 5.0), (4, 5.0)]
            .iter()
            .map(|(x, y)| doc! {"x": *x, "y": *y})
            .collect();
        let out = outputs(
            doc! {"sortBy": {"x": 1}, "output": {"i": {"$integral": {"input": "$y"},
            "window": {"documents": ["unbounded", "current"]}}}},
            docs.clone(),
            "i",
        );
        // Trapezoids: 0, 2, 2 + 4, 6 + 10.
        assert!(
            close(&out[0], 0.0)
                && close(&out[1], 2.0)
                && close(&out[2], 6.0)
                && close(&out[3], 16.0),
            "{out:?}"
        );
        let out = outputs(
            doc! {"sortBy": {"x": 1}, "output": {"c": {"$covariancePop": ["$x", "$y"]}}},
            docs.clone(),
            "c",
        );
        // mean x 1.75, mean y 3.5: (-1.75*-2.5 + -0.75*-0.5 + 0.25*1.5 + 2.25*1.5) / 4
        assert!(close(&out[0], 2.125), "{out:?}");
        let out = outputs(
            doc! {"sortBy": {"x": 1}, "output": {"e": {"$expMovingAvg": {"input": "$y", "N": 2}}}},
            docs,
            "e",
        );
        // alpha = 2/3: 1, 3*2/3 + 1/3 = 7/3, 5*2/3 + 7/9 = 37/9, 5*2/3 + 37/27.
        assert!(
            close(&out[0], 1.0) && close(&out[1], 7.0 / 3.0) && close(&out[2], 37.0 / 9.0),
            "{out:?}"
        );
        assert!(close(&out[3], 10.0 / 3.0 + 37.0 / 27.0), "{out:?}");
    }

    #[test]
    fn locf_linear_fill_and_n_functions() {
        let docs = vec![
            doc! {"t": 1, "v": 10},
            doc! {"t": 2},
            doc! {"t": 3, "v": Bson::Null},
            doc! {"t": 5, "v": 20},
            doc! {"t": 6},
        ];
        let out = outputs(
            doc! {"sortBy": {"t": 1}, "output": {"f": {"$locf": "$v"}}},
            docs.clone(),
            "f",
        );
        assert_eq!(
            out,
            vec![
                Bson::Int32(10),
                Bson::Int32(10),
                Bson::Int32(10),
                Bson::Int32(20),
                Bson::Int32(20)
            ]
        );
        let out = outputs(
            doc! {"sortBy": {"t": 1}, "output": {"f": {"$linearFill": "$v"}}},
            docs.clone(),
            "f",
        );
        assert_eq!(out[0], Bson::Int32(10));
        assert!(close(&out[1], 12.5) && close(&out[2], 15.0), "{out:?}");
        assert_eq!((&out[3], &out[4]), (&Bson::Int32(20), &Bson::Null));
        let out = outputs(
            doc! {"sortBy": {"t": 1}, "output": {"m": {"$maxN": {"input": "$v", "n": 2},
            "window": {"documents": ["unbounded", "current"]}}}},
            docs.clone(),
            "m",
        );
        assert_eq!(out[4], Bson::Array(vec![Bson::Int32(20), Bson::Int32(10)]));
        let out = outputs(
            doc! {"sortBy": {"t": 1}, "output": {"b": {"$bottom": {"output": "$t", "sortBy": {"v": 1}},
            "window": {"documents": [-1, 1]}}}},
            docs,
            "b",
        );
        assert_eq!(out[2], Bson::Int32(5));
    }

    #[test]
    fn parse_errors_as_mongod() {
        let cases: Vec<(Bson, i32, &str)> = vec![
            (Bson::Int32(1), 9, "the $setWindowFields stage specification must be an object, found int"),
            (bson::bson!({}), 40414, "BSON field '$setWindowFields.output' is missing but a required field"),
            (bson::bson!({"output": {}, "foo": 1}), 40415, "BSON field '$setWindowFields.foo' is an unknown field."),
            (bson::bson!({"output": {}, "sortBy": 1}), 14, "BSON field '$setWindowFields.sortBy' is the wrong type 'int', expected type 'object'"),
            (bson::bson!({"output": {"a": 1}}), 9, "The field 'a' must be an object"),
            (bson::bson!({"output": {"a": {"window": {}}}}), 9, "Expected a $-prefixed window function, window"),
            (bson::bson!({"output": {"a": {"$summ": 1}}}), 9, "Unrecognized window function, $summ"),
            (bson::bson!({"output": {"a": {"$sum": 1}, "a.b": {"$sum": 1}}}), 6307900, "$setWindowFields 'output' specification contains two conflicting paths"),
            (bson::bson!({"output": {"a": {"$sum": 1, "$avg": 1}}}), 9, "Cannot specify two functions in window function spec"),
            (bson::bson!({"output": {"a": {"$sum": 1, "x": 1}}}), 9, "Window function found an unknown argument: x"),
            (bson::bson!({"output": {"a": {"$sum": 1, "window": {"documents": [-1, 0]}}}}), 5339901, "Document-based bounds require a sortBy"),
            (bson::bson!({"sortBy": {"a": 1, "b": 1}, "output": {"a": {"$sum": 1, "window": {"range": [-1, 0]}}}}), 5339902, "Range-based bounds require sortBy a single field"),
            (bson::bson!({"sortBy": {"a": 1}, "output": {"a": {"$sum": 1, "window": {"documents": [2, 1]}}}}), 5339900, "Lower bound must not exceed upper bound: [2, 1]"),
            (bson::bson!({"sortBy": {"a": 1}, "output": {"a": {"$sum": 1, "window": {"documents": ["current", -1]}}}}), 5339900, "Lower bound must not exceed upper bound: [0, -1]"),
            (bson::bson!({"sortBy": {"a": 1}, "output": {"a": {"$sum": 1, "window": {"documents": [0.5, 1]}}}}), 9, "Numeric document-based bounds must be an integer"),
            (bson::bson!({"sortBy": {"a": 1}, "output": {"a": {"$sum": 1, "window": {"documents": ["x", 1]}}}}), 9, "Window bounds must be 'unbounded', 'current', or a number."),
            (bson::bson!({"sortBy": {"a": 1}, "output": {"a": {"$sum": 1, "window": {"documents": [1]}}}}), 9, "Window bounds must be a 2-element array: documents: [ 1 ]"),
            (bson::bson!({"sortBy": {"a": 1}, "output": {"a": {"$sum": 1, "window": {"documents": [0, 1], "range": [0, 1]}}}}), 9, "Window bounds can specify either 'documents' or 'unit', not both."),
            (bson::bson!({"sortBy": {"a": 1}, "output": {"a": {"$sum": 1, "window": {"documents": [0, 1], "unit": "day"}}}}), 9, "Window bounds can only specify 'unit' with range-based bounds."),
            (bson::bson!({"sortBy": {"a": 1}, "output": {"a": {"$sum": 1, "window": {"foo": 1}}}}), 9, "'window' field can only contain 'documents' as the only argument or 'range' with an optional 'unit' field"),
            (bson::bson!({"sortBy": {"a": 1}, "output": {"a": {"$sum": 1, "window": {"range": [0, 1], "unit": "fortnight"}}}}), 9, "unknown time unit value: fortnight"),
            (bson::bson!({"sortBy": {"a": 1}, "output": {"a": {"$sum": 1, "window": {"range": ["x", 1]}}}}), 9, "Window bounds must be 'unbounded', 'current', or a number."),
            (bson::bson!({"sortBy": {"a": 1}, "output": {"a": {"$sum": 1, "window": {"range": [true, 1]}}}}), 9, "Range-based bounds expression must be a number"),
            (bson::bson!({"sortBy": {"a": 1}, "output": {"a": {"$sum": 1, "window": {"range": [{"$add": ["$a", 1]}, 1]}}}}), 9, "Window bounds expression must be a constant."),
            (bson::bson!({"output": {"a": {"$rank": {}}}}), 5371602, "$rank must be specified with a top level sortBy expression with exactly one element"),
            (bson::bson!({"sortBy": {"a": 1}, "output": {"a": {"$rank": 1}}}), 5371603, "$rank must be specified with '{}' as the value"),
            (bson::bson!({"sortBy": {"a": 1}, "output": {"a": {"$rank": {}, "window": {}}}}), 5371601, "Rank style window functions take no other arguments"),
            (bson::bson!({"output": {"a": {"$shift": {"output": "$a", "by": 1}}}}), 9, "'$shift' requires a sortBy"),
            (bson::bson!({"sortBy": {"a": 1}, "output": {"a": {"$shift": {"output": "$a", "by": 1.5}}}}), 9, "'$shift:by' field must be an integer, but found  by: 1.5"),
            (bson::bson!({"sortBy": {"a": 1}, "output": {"a": {"$shift": {"by": 1}}}}), 9, "$shift requires an 'output' expression."),
            (bson::bson!({"sortBy": {"a": 1}, "output": {"a": {"$shift": {"output": "$a", "by": 1, "default": "$a"}}}}), 9, "'$shift:default' expression must yield a constant value."),
            (bson::bson!({"sortBy": {"a": 1}, "output": {"a": {"$count": 1}}}), 9, "$count only accepts an empty object as input"),
            (bson::bson!({"output": {"a": {"$derivative": {"input": "$a"}}}}), 9, "$derivative requires a sortBy"),
            (bson::bson!({"sortBy": {"a": 1}, "output": {"a": {"$derivative": {"input": "$a"}}}}), 9, "$derivative requires explicit window bounds"),
            (bson::bson!({"sortBy": {"a": 1}, "output": {"a": {"$integral": {"input": "$a", "unit": "month"}}}}), 5490710, "unit must be 'week' or smaller"),
            (bson::bson!({"sortBy": {"a": 1}, "output": {"a": {"$expMovingAvg": {"input": "$a", "N": 0}}}}), 9, "'N' must be greater than zero. Got 0"),
            (bson::bson!({"sortBy": {"a": 1}, "output": {"a": {"$expMovingAvg": {"input": "$a", "alpha": 1}}}}), 9, "'alpha' must be between 0 and 1 (exclusive), found alpha: 1"),
            (bson::bson!({"output": {"a": {"$expMovingAvg": {"input": "$a", "N": 2}}}}), 9, "$expMovingAvg requires an explicit 'sortBy'"),
            (bson::bson!({"sortBy": {"a": 1}, "output": {"a": {"$locf": "$a", "window": {}}}}), 9, "'window' field is not allowed in $locf"),
            (bson::bson!({"output": {"a": {"$linearFill": "$a"}}}), 605001, "$linearFill must be specified with a top level sortBy expression with exactly one element"),
            (bson::bson!({"sortBy": {"a": 1}, "output": {"a": {"$first": "$a", "b": 1}}}), 9, "$first got unexpected argument: b"),
            (bson::bson!({"output": {"a": {"$topN": {"output": "$a", "sortBy": {"a": 1}}}}}), 5787906, "Missing value for 'n'"),
            (bson::bson!({"partitionBy": [1], "output": {}}), 14, "An expression used to partition cannot evaluate to value of type array"),
        ];
        for (stage, code, message) in cases {
            assert_eq!(err(stage.clone()), (code, message.to_owned()), "{stage}");
        }
    }

    /// The documentation's `testScores`.
    fn test_scores() -> Vec<Document> {
        [
            (62, 81, 80),
            (60, 83, 79),
            (67, 82, 78),
            (64, 72, 77),
            (60, 53, 72),
        ]
        .iter()
        .map(|(a, b, c)| doc! {"test01": *a, "test02": *b, "test03": *c})
        .collect()
    }

    #[test]
    fn percentile_and_median_in_group_expression_and_window() {
        let out = run_simple(
            &[doc! {"$group": {"_id": Bson::Null,
                "test01_percentiles": {"$percentile": {"input": "$test01", "p": [0.5, 0.75, 0.9, 0.95], "method": "approximate"}},
                "test01_median": {"$median": {"input": "$test01", "method": "approximate"}}}}],
            test_scores(),
        )
        .expect("runs");
        let f = |xs: &[f64]| Bson::Array(xs.iter().map(|x| Bson::Double(*x)).collect());
        assert_eq!(
            out[0].get("test01_percentiles"),
            Some(&f(&[62.0, 64.0, 67.0, 67.0]))
        );
        assert_eq!(out[0].get("test01_median"), Some(&Bson::Double(62.0)));
        let out = run_simple(
            &[doc! {"$project": {"_id": 0,
            "m": {"$median": {"input": ["$test01", "$test02", "$test03"], "method": "approximate"}},
            "p": {"$percentile": {"input": "$nothing", "p": [0.5], "method": "approximate"}}}}],
            test_scores(),
        )
        .expect("runs");
        assert_eq!(out[0], doc! {"m": 80.0, "p": [Bson::Null]});
        let out = outputs(
            doc! {"sortBy": {"test01": 1}, "output": {"m": {"$median": {"input": "$test01", "method": "approximate"},
            "window": {"documents": [-1, 1]}}}},
            test_scores(),
            "m",
        );
        // Sorted 60, 60, 62, 64, 67: windows of up to three around each.
        assert_eq!(
            out,
            [60.0, 60.0, 62.0, 64.0, 64.0]
                .iter()
                .map(|x| Bson::Double(*x))
                .collect::<Vec<_>>()
        );
        let bad = |spec: Document| {
            run_simple(&[doc! {"$group": {"_id": 1, "x": spec}}], test_scores())
                .expect_err("fails")
                .code
        };
        assert_eq!(
            bad(doc! {"$percentile": {"input": "$a", "p": [0.5], "method": "discrete"}}),
            2
        );
        assert_eq!(
            bad(doc! {"$percentile": {"input": "$a", "p": [1.5], "method": "approximate"}}),
            7750303
        );
        assert_eq!(
            bad(doc! {"$percentile": {"input": "$a", "p": "$a", "method": "approximate"}}),
            7750300
        );
        assert_eq!(
            bad(doc! {"$percentile": {"input": "$a", "p": [], "method": "approximate"}}),
            7750301
        );
        assert_eq!(
            bad(doc! {"$percentile": {"input": "$a", "method": "approximate"}}),
            40414
        );
        assert_eq!(
            bad(doc! {"$median": {"input": "$a", "p": [0.5], "method": "approximate"}}),
            40415
        );
        assert_eq!(bad(doc! {"$median": 1}), 7436100);
        assert_eq!(bad(doc! {"$percentile": 1}), 7429703);
    }
}
