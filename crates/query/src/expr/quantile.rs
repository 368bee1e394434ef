//! `$percentile` and `$median` (mongod 7.0 `accumulator_percentile.cpp`): the arguments
//! shared by the accumulators, the window functions and the expressions, and the
//! percentile itself.
//!
//! mongod 7.0 accepts only `method: "approximate"`. Its expressions and window functions
//! compute it exactly, as the discrete percentile (`DiscretePercentile::computeTrueRank`:
//! the value at rank `ceil(n * p) - 1` of the sorted numbers); its accumulators feed a
//! t-digest, which on the small inputs Eddy is tested with holds every value and gives
//! the same answer. Eddy computes the discrete percentile everywhere (COMPAT.md).

use bson::{Bson, Document};
use eddy_codes::{location, ErrorCode, MongoError};

use super::{Env, Expr};
use crate::util::{self, bson_to_string, type_name};

/// A parsed `{input, p, method}` (`{input, method}` for `$median`).
#[derive(Debug, Clone)]
pub(crate) struct Quantile {
    pub(crate) input: Bson,
    /// `[0.5]` for `$median`.
    pub(crate) ps: Vec<f64>,
    pub(crate) median: bool,
}

/// Where the operator appears, for the code of "specification must be an object".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QuantileUse {
    Accumulator,
    Expression,
    Window,
}

impl Quantile {
    /// Parses `arg` of `$percentile`/`$median` (`name`), as mongod's IDL
    /// `AccumulatorPercentileSpec`/`AccumulatorMedianSpec` then `parseP` do. The
    /// `input` is left to the caller to parse in its own scope.
    pub(crate) fn parse(
        name: &str,
        arg: &Bson,
        used: QuantileUse,
        vars: &[String],
    ) -> Result<Quantile, MongoError> {
        let median = name == "$median";
        let Bson::Document(spec) = arg else {
            let code = match (median, used) {
                (false, QuantileUse::Expression) => 7436200,
                (true, QuantileUse::Expression) => 7436201,
                (false, _) => 7429703,
                (true, _) => 7436100,
            };
            return Err(MongoError::location(
                code,
                format!(
                    "specification must be an object; found {}",
                    util::elem_to_string(name, arg)
                ),
            ));
        };
        let (mut input, mut p, mut method) = (None, None, None);
        for (k, v) in spec {
            match k.as_str() {
                "input" => input = Some(v.clone()),
                "p" if !median => p = Some(v),
                "method" => {
                    let Bson::String(m) = v else {
                        return Err(MongoError::type_mismatch(format!(
                            "BSON field '{name}.method' is the wrong type '{}', expected type 'string'",
                            type_name(v)
                        )));
                    };
                    if m != "approximate" {
                        return Err(MongoError::new(
                            ErrorCode::BadValue,
                            "Currently only 'approximate' can be used as percentile 'method'.",
                        ));
                    }
                    method = Some(());
                }
                other => {
                    return Err(MongoError::location(
                        location::UNKNOWN_FIELD,
                        format!("BSON field '{name}.{other}' is an unknown field."),
                    ))
                }
            }
        }
        let missing = |f: &str| {
            MongoError::location(
                location::MISSING_FIELD,
                format!("BSON field '{name}.{f}' is missing but a required field"),
            )
        };
        let input = input.ok_or_else(|| missing("input"))?;
        if !median && p.is_none() {
            return Err(missing("p"));
        }
        method.ok_or_else(|| missing("method"))?;
        let ps = match p {
            Some(p) => parse_p(p, vars)?,
            None => vec![0.5],
        };
        Ok(Quantile { input, ps, median })
    }

    /// The result for `values` (the numbers seen, in any order).
    pub(crate) fn result(&self, values: &mut [f64]) -> Bson {
        let pct = percentiles(values, &self.ps);
        match (self.median, pct) {
            (true, None) => Bson::Null,
            (true, Some(v)) => Bson::Double(v.first().copied().unwrap_or(f64::NAN)),
            (false, None) => Bson::Array(vec![Bson::Null; self.ps.len()]),
            (false, Some(v)) => Bson::Array(v.into_iter().map(Bson::Double).collect()),
        }
    }
}

/// `parseP`: a constant array of numbers in [0, 1].
fn parse_p(p: &Bson, vars: &[String]) -> Result<Vec<f64>, MongoError> {
    let e = Expr::parse_with_vars(p, vars)?;
    if !e.is_constant() {
        return Err(MongoError::location(
            7750300,
            format!(
                "The $percentile 'p' field must be an array of constant values, but found value: {}.",
                bson_to_string(p)
            ),
        ));
    }
    let v = e
        .evaluate(&Document::new(), &Env::new())?
        .unwrap_or(Bson::Null);
    const MSG: &str =
        "The $percentile 'p' field must be an array of numbers from [0.0, 1.0], but found: ";
    let items = match &v {
        Bson::Array(items) if !items.is_empty() => items,
        other => {
            return Err(MongoError::location(
                7750301,
                format!("{MSG}{}", value_string(other)),
            ))
        }
    };
    let mut ps = Vec::with_capacity(items.len());
    for item in items {
        if !crate::cmp::is_number(item) {
            return Err(MongoError::location(
                7750302,
                format!("{MSG}{}", value_string(item)),
            ));
        }
        let x = util::number_as_f64(item).unwrap_or(f64::NAN);
        if !(0.0..=1.0).contains(&x) {
            return Err(MongoError::location(7750303, format!("{MSG}{x}")));
        }
        ps.push(x);
    }
    Ok(ps)
}

/// mongod's `Value::toString` (arrays as `[a, b]`, numbers bare).
fn value_string(v: &Bson) -> String {
    match v {
        Bson::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(value_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Bson::Double(d) => format!("{d}"),
        Bson::String(s) => s.clone(),
        other => bson_to_string(other),
    }
}

/// The discrete percentiles of `values` (`None` when empty): the value at rank
/// `max(0, ceil(n * p) - 1)` (`n - 1` for `p >= 1`) of the sorted numbers.
pub(crate) fn percentiles(values: &mut [f64], ps: &[f64]) -> Option<Vec<f64>> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(
        ps.iter()
            .map(|p| {
                let rank = if *p >= 1.0 {
                    n - 1
                } else {
                    ((n as f64 * p).ceil() as usize).saturating_sub(1)
                };
                values[rank.min(n - 1)]
            })
            .collect(),
    )
}

/// The numbers an expression's `input` yields: every number of an array, or the
/// number itself.
pub(crate) fn numbers_of(v: Option<Bson>) -> Vec<f64> {
    match v {
        Some(Bson::Array(items)) => items
            .iter()
            .filter(|i| crate::cmp::is_number(i))
            .filter_map(util::number_as_f64)
            .collect(),
        Some(x) if crate::cmp::is_number(&x) => util::number_as_f64(&x).into_iter().collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discrete_ranks_as_mongod() {
        // The documentation's testScores: test01 = 62, 60, 67, 64, 60.
        let mut v = vec![62.0, 60.0, 67.0, 64.0, 60.0];
        assert_eq!(
            percentiles(&mut v, &[0.5, 0.75, 0.9, 0.95]),
            Some(vec![62.0, 64.0, 67.0, 67.0])
        );
        assert_eq!(
            percentiles(&mut [1.0, 2.0], &[0.0, 0.5, 1.0]),
            Some(vec![1.0, 1.0, 2.0])
        );
        assert_eq!(percentiles(&mut [], &[0.5]), None);
    }
}
