//! `$fill` and `$densify` (mongod 7.0 `document_source_fill.cpp`,
//! `document_source_densify.cpp`).
//!
//! `$fill` is what mongod makes of it: a `$setWindowFields` with `$locf`/`$linearFill`
//! for the `method` outputs, then an `$addFields` of `{$ifNull: ["$f", value]}` for the
//! `value` outputs.
//!
//! `$densify` sorts by the partition fields (unless `bounds: "full"`) and the field,
//! then adds a document for every step of the range that no document of the partition
//! holds: the steps start at the range's lower bound (the smallest value of the
//! collection, or of the partition, for `"full"`/`"partition"`); an explicit upper
//! bound is excluded, the largest value of `"full"`/`"partition"` included. Documents
//! whose field is null or missing pass through unchanged.

use std::cmp::Ordering;

use bson::{Bson, Document};
use eddy_codes::{location, MongoError};

use super::group::add_via_expr;
use super::order::get_nested;
use super::shape::AddFields;
use super::window::SetWindowFields;
use super::{set_nested, value_cmp};
use crate::cmp::is_number;
use crate::expr::{add_in_utc, time_unit, Env, TimeUnit};
use crate::projection::field_path;
use crate::util::{self, type_name};

/// mongod's `internalQueryMaxAllowedDensifyDocs` default.
const MAX_GENERATED: usize = 500_000;

/// A parsed `$fill`.
#[derive(Debug, Clone)]
pub struct Fill {
    window: Option<SetWindowFields>,
    values: Option<AddFields>,
}

fn unknown(stage: &str, field: &str) -> MongoError {
    MongoError::location(
        location::UNKNOWN_FIELD,
        format!("BSON field '{stage}.{field}' is an unknown field."),
    )
}

fn wrong_type(path: &str, v: &Bson, expected: &str) -> MongoError {
    MongoError::type_mismatch(format!(
        "BSON field '{path}' is the wrong type '{}', expected {expected}",
        type_name(v)
    ))
}

fn missing(path: &str) -> MongoError {
    MongoError::location(
        location::MISSING_FIELD,
        format!("BSON field '{path}' is missing but a required field"),
    )
}

/// An IDL `array<string>` field.
fn strings(path: &str, v: &Bson) -> Result<Vec<String>, MongoError> {
    let Bson::Array(items) = v else {
        return Err(wrong_type(path, v, "type 'array'"));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, s)| match s {
            Bson::String(s) => Ok(s.clone()),
            other => Err(wrong_type(&format!("{path}.{i}"), other, "type 'string'")),
        })
        .collect()
}

impl Fill {
    /// Parses a `$fill` and builds the stages mongod makes of it.
    pub fn parse(arg: &Bson, vars: &[String]) -> Result<Fill, MongoError> {
        let Bson::Document(spec) = arg else {
            return Err(MongoError::failed_to_parse(format!(
                "The $fill stage specification must be an object, found {}",
                type_name(arg)
            )));
        };
        let (mut sort_by, mut partition_by, mut partition_fields, mut output) =
            (None, None, None, None);
        for (k, v) in spec {
            match k.as_str() {
                "sortBy" => match v {
                    Bson::Document(d) => sort_by = Some(d.clone()),
                    other => return Err(wrong_type("$fill.sortBy", other, "type 'object'")),
                },
                "partitionBy" => match v {
                    Bson::String(_) | Bson::Document(_) => partition_by = Some(v.clone()),
                    other => {
                        return Err(wrong_type(
                            "$fill.partitionBy",
                            other,
                            "types '[string, object]'",
                        ))
                    }
                },
                "partitionByFields" => {
                    partition_fields = Some(strings("$fill.partitionByFields", v)?)
                }
                "output" => match v {
                    Bson::Document(d) => output = Some(d),
                    other => return Err(wrong_type("$fill.output", other, "type 'object'")),
                },
                other => return Err(unknown("$fill", other)),
            }
        }
        let output = output.ok_or_else(|| missing("$fill.output"))?;
        if output.is_empty() {
            return Err(MongoError::location(
                6050203,
                "The output field in '$fill' must contain an object with at least one element",
            ));
        }
        let (mut window_out, mut values) = (Document::new(), Document::new());
        for (name, f) in output {
            let Bson::Document(f) = f else {
                return Err(MongoError::location(
                    6050200,
                    "Each fill output specification must be an object with exactly one field",
                ));
            };
            let (mut method, mut value) = (None, None);
            for (k, v) in f {
                match k.as_str() {
                    "method" => match v {
                        Bson::String(m) => method = Some(m.clone()),
                        other => return Err(wrong_type("$fill.method", other, "type 'string'")),
                    },
                    "value" => value = Some(v.clone()),
                    other => return Err(unknown("$fill", other)),
                }
            }
            if let Some(m) = method {
                if value.is_some() {
                    return Err(MongoError::location(
                        6050201,
                        "Each fill output specification must have exactly one of 'method' or 'value' fields, not both",
                    ));
                }
                let op = match m.as_str() {
                    "locf" => "$locf",
                    "linear" => "$linearFill",
                    _ => {
                        return Err(MongoError::location(
                            6050202,
                            "Method must be either locf or linear",
                        ))
                    }
                };
                window_out.insert(name.clone(), bson::doc! {op: format!("${name}")});
            }
            if let Some(v) = value {
                values.insert(
                    name.clone(),
                    bson::doc! {"$ifNull": [format!("${name}"), v]},
                );
            }
        }
        let mut window = bson::doc! {"output": window_out.clone()};
        if let Some(s) = sort_by {
            window.insert("sortBy", s);
        }
        if let Some(p) = partition_by {
            if partition_fields.is_some() {
                return Err(MongoError::location(
                    6050204,
                    "Maximum one of 'partitionBy' and 'partitionByFields can be specified in '$fill'",
                ));
            }
            window.insert("partitionBy", p);
        }
        if let Some(fields) = partition_fields {
            let mut p = Document::new();
            for f in fields {
                p.insert(f.clone(), format!("${f}"));
            }
            window.insert("partitionBy", p);
        }
        let window = match window_out.is_empty() {
            true => None,
            false => Some(SetWindowFields::parse(&Bson::Document(window), vars)?),
        };
        let values = match values.is_empty() {
            true => None,
            false => Some(AddFields::parse(
                "$addFields",
                &Bson::Document(values),
                vars,
            )?),
        };
        Ok(Fill { window, values })
    }

    /// Runs the stage.
    pub fn run(&self, docs: Vec<Document>, env: &Env) -> Result<Vec<Document>, MongoError> {
        let docs = match &self.window {
            Some(w) => w.run(docs, env)?,
            None => docs,
        };
        match &self.values {
            Some(a) => docs.iter().map(|d| a.apply(d, env)).collect(),
            None => Ok(docs),
        }
    }
}

#[derive(Debug, Clone)]
enum DensifyBounds {
    Full,
    Partition,
    /// `[lower, upper)`: two numbers of the step's type, or two dates.
    Explicit(Box<(Bson, Bson)>),
}

/// The values of the partition fields of a document (`None`: missing).
type PartitionKey = Vec<Option<Bson>>;

/// A parsed `$densify`.
#[derive(Debug, Clone)]
pub struct Densify {
    field: Vec<String>,
    partitions: Vec<Vec<String>>,
    step: Bson,
    unit: Option<TimeUnit>,
    bounds: DensifyBounds,
}

impl Densify {
    /// Parses a `$densify` (the IDL `DensifySpec`, then `RangeStatement::parse`).
    pub fn parse(arg: &Bson) -> Result<Densify, MongoError> {
        let Bson::Document(spec) = arg else {
            return Err(MongoError::failed_to_parse(format!(
                "The $densify stage specification must be an object, found {}",
                type_name(arg)
            )));
        };
        let (mut field, mut partitions, mut range) = (None, None, None);
        for (k, v) in spec {
            match k.as_str() {
                "field" => match v {
                    Bson::String(s) => field = Some(s.clone()),
                    other => return Err(wrong_type("$densify.field", other, "type 'string'")),
                },
                "partitionByFields" => partitions = Some(strings("$densify.partitionByFields", v)?),
                "range" => match v {
                    Bson::Document(d) => range = Some(d),
                    other => return Err(wrong_type("$densify.range", other, "type 'object'")),
                },
                other => return Err(unknown("$densify", other)),
            }
        }
        let field = field.ok_or_else(|| missing("$densify.field"))?;
        let range = range.ok_or_else(|| missing("$densify.range"))?;
        let (mut step, mut unit, mut bounds) = (None, None, None);
        for (k, v) in range {
            match k.as_str() {
                "step" if is_number(v) => step = Some(v.clone()),
                "step" => {
                    return Err(wrong_type(
                        "$densify.range.step",
                        v,
                        "types '[long, int, decimal, double]'",
                    ))
                }
                "unit" => match v {
                    Bson::String(u) => unit = Some(u.clone()),
                    other => return Err(wrong_type("$densify.range.unit", other, "type 'string'")),
                },
                "bounds" => bounds = Some(v),
                other => return Err(unknown("$densify.range", other)),
            }
        }
        let step = step.ok_or_else(|| missing("$densify.range.step"))?;
        let bounds = bounds.ok_or_else(|| missing("$densify.range.bounds"))?;
        if value_cmp(&step, &Bson::Int32(0)) != Ordering::Greater {
            return Err(MongoError::location(
                5733401,
                "The step parameter in a range statement must be a strictly positive numeric value",
            ));
        }
        let unit = match unit {
            Some(u) => {
                let whole = util::number_as_f64(&step).is_some_and(|s| s.fract() == 0.0);
                if !whole {
                    return Err(MongoError::location(
                        6586400,
                        "The step parameter in a range statement must be a whole number when densifying a date range",
                    ));
                }
                Some(time_unit(&u).ok_or_else(|| {
                    MongoError::failed_to_parse(format!("unknown time unit value: {u}"))
                })?)
            }
            None => None,
        };
        let bounds = match bounds {
            Bson::Array(a) => {
                let [lo, hi] = a.as_slice() else {
                    return Err(MongoError::location(
                        5733403,
                        "A bounding array in a range statement must have exactly two elements",
                    ));
                };
                if value_cmp(lo, hi) == Ordering::Greater {
                    return Err(MongoError::location(
                        5733402,
                        "A bounding array must be an ascending array of either two dates or two numbers",
                    ));
                }
                if is_number(lo) {
                    if unit.is_some() {
                        return Err(MongoError::location(
                            5733409,
                            "Numeric bounds may not have unit parameter",
                        ));
                    }
                    if !is_number(hi) {
                        return Err(MongoError::location(
                            5733406,
                            "A bounding array must contain either both dates or both numeric types",
                        ));
                    }
                    let same = |a: &Bson, b: &Bson| std::mem::discriminant(a) == std::mem::discriminant(b);
                    if !same(lo, hi) || !same(lo, &step) {
                        return Err(MongoError::location(
                            5876900,
                            "Upper bound, lower bound, and step must all have the same type",
                        ));
                    }
                } else if matches!(lo, Bson::DateTime(_)) {
                    if !matches!(hi, Bson::DateTime(_)) {
                        return Err(MongoError::location(
                            5733405,
                            "A bounding array must contain either both dates or both numeric types",
                        ));
                    }
                    if unit.is_none() {
                        return Err(MongoError::location(
                            5733410,
                            "A bounding array of dates must specify a unit",
                        ));
                    }
                } else {
                    return Err(MongoError::location(
                        5946800,
                        "Explicit bounds must be numeric or dates",
                    ));
                }
                DensifyBounds::Explicit(Box::new((lo.clone(), hi.clone())))
            }
            Bson::String(s) if s == "full" => DensifyBounds::Full,
            Bson::String(s) if s == "partition" => DensifyBounds::Partition,
            Bson::String(_) => {
                return Err(MongoError::location(
                    5946802,
                    "Bounds string must either be 'full' or 'partition'",
                ))
            }
            _ => {
                return Err(MongoError::location(
                    5733404,
                    "The bounds in a range statement must be the string 'full', 'partition', or an ascending array of two numbers or two dates",
                ))
            }
        };
        let partitions = partitions
            .unwrap_or_default()
            .iter()
            .map(|p| field_path(p))
            .collect::<Result<Vec<_>, _>>()?;
        let field = field_path(&field)?;
        if matches!(bounds, DensifyBounds::Partition) && partitions.is_empty() {
            return Err(MongoError::location(
                5733408,
                "One cannot specify the bounds as 'partition' without specifying a non-empty array of partitionByFields. You may have meant to specify 'full' bounds.",
            ));
        }
        Ok(Densify {
            field,
            partitions,
            step,
            unit,
            bounds,
        })
    }

    /// The value of the densified field, checked as mongod checks it (`None`: null or
    /// missing, passed through).
    fn value_of(&self, d: &Document) -> Result<Option<Bson>, MongoError> {
        match get_nested(d, &self.field) {
            None | Some(Bson::Null) => Ok(None),
            Some(v @ Bson::DateTime(_)) if self.unit.is_some() => Ok(Some(v.clone())),
            Some(Bson::DateTime(_)) => Err(MongoError::location(
                6053600,
                "Encountered date densify value in collection when step does not have a date unit.",
            )),
            Some(v) if is_number(v) && self.unit.is_none() => Ok(Some(v.clone())),
            Some(v) if is_number(v) => Err(MongoError::location(
                6053600,
                "Encountered numeric densify value in collection when step has a date unit.",
            )),
            Some(_) => Err(MongoError::location(
                5733201,
                "Densify field type must be numeric or a date",
            )),
        }
    }

    fn next(&self, v: &Bson) -> Result<Bson, MongoError> {
        match (v, self.unit) {
            (Bson::DateTime(d), Some(u)) => {
                let step = util::number_as_f64(&self.step).unwrap_or(0.0) as i64;
                let ms = add_in_utc(d.timestamp_millis(), u, step).ok_or_else(|| {
                    MongoError::new(eddy_codes::ErrorCode::Overflow, "date overflow in $densify")
                })?;
                Ok(Bson::DateTime(bson::DateTime::from_millis(ms)))
            }
            _ => add_via_expr(v, &self.step),
        }
    }

    /// The values from `lo` by steps, below `hi` (or up to it, `inclusive`), that are
    /// not in `have`.
    fn steps(
        &self,
        lo: &Bson,
        hi: &Bson,
        inclusive: bool,
        have: &[Bson],
    ) -> Result<Vec<Bson>, MongoError> {
        let mut out = Vec::new();
        let mut cur = lo.clone();
        loop {
            let o = value_cmp(&cur, hi);
            if o == Ordering::Greater || (o == Ordering::Equal && !inclusive) {
                break;
            }
            // `have` is sorted.
            if have.binary_search_by(|h| value_cmp(h, &cur)).is_err() {
                out.push(cur.clone());
                if out.len() > MAX_GENERATED {
                    return Err(MongoError::location(
                        5897900,
                        format!(
                            "Generated {} documents in $densify, which is over the limit of {MAX_GENERATED}. Increase the 'internalQueryMaxAllowedDensifyDocs' parameter to allow more generated documents",
                            out.len()
                        ),
                    ));
                }
            }
            let next = self.next(&cur)?;
            // A step lost in a double's precision would never end the range.
            if value_cmp(&next, &cur) != Ordering::Greater {
                break;
            }
            cur = next;
        }
        Ok(out)
    }

    /// Runs the stage.
    pub fn run(&self, docs: Vec<Document>, env: &Env) -> Result<Vec<Document>, MongoError> {
        // Null and missing values first (they sort first), then each partition.
        let mut nulls = Vec::new();
        let mut parts: Vec<(PartitionKey, Vec<(Bson, Document)>)> = Vec::new();
        for d in docs {
            let Some(v) = self.value_of(&d)? else {
                nulls.push(d);
                continue;
            };
            let key: Vec<Option<Bson>> = self
                .partitions
                .iter()
                .map(|p| get_nested(&d, p).cloned())
                .collect();
            let same = |k: &Vec<Option<Bson>>| {
                k.iter().zip(&key).all(|(a, b)| match (a, b) {
                    (Some(a), Some(b)) => env.equal(a, b),
                    (None, None) => true,
                    _ => false,
                })
            };
            match parts.iter_mut().find(|(k, _)| same(k)) {
                Some((_, list)) => list.push((v, d)),
                None => parts.push((key, vec![(v, d)])),
            }
        }
        for (_, list) in parts.iter_mut() {
            list.sort_by(|a, b| value_cmp(&a.0, &b.0));
        }
        // mongod sorts by the partition fields first (a missing one lowest).
        parts.sort_by(|(a, _), (b, _)| {
            a.iter()
                .zip(b)
                .map(|(x, y)| match (x, y) {
                    (Some(x), Some(y)) => env.compare(x, y),
                    (x, y) => x.is_some().cmp(&y.is_some()),
                })
                .find(|o| *o != Ordering::Equal)
                .unwrap_or(Ordering::Equal)
        });
        let global = |first: bool| {
            parts
                .iter()
                .filter_map(|(_, l)| if first { l.first() } else { l.last() })
                .map(|(v, _)| v.clone())
                .reduce(|a, b| {
                    let keep_a = match value_cmp(&a, &b) {
                        Ordering::Less => first,
                        _ => !first,
                    };
                    if keep_a {
                        a
                    } else {
                        b
                    }
                })
        };
        let (gmin, gmax) = (global(true), global(false));
        let mut out_parts: Vec<Vec<(Bson, Document)>> = Vec::with_capacity(parts.len());
        for (key, list) in parts {
            let have: Vec<Bson> = list.iter().map(|(v, _)| v.clone()).collect();
            let (lo, hi, inclusive) = match &self.bounds {
                DensifyBounds::Explicit(b) => (b.0.clone(), b.1.clone(), false),
                DensifyBounds::Full => match (&gmin, &gmax) {
                    (Some(a), Some(b)) => (a.clone(), b.clone(), true),
                    _ => continue,
                },
                DensifyBounds::Partition => match (have.first(), have.last()) {
                    (Some(a), Some(b)) => (a.clone(), b.clone(), true),
                    _ => continue,
                },
            };
            let mut merged = list;
            for v in self.steps(&lo, &hi, inclusive, &have)? {
                let mut g = Document::new();
                for (path, kv) in self.partitions.iter().zip(&key) {
                    if let Some(kv) = kv {
                        set_nested(&mut g, path, kv.clone());
                    }
                }
                check_generated_path(&g, &self.field)?;
                set_nested(&mut g, &self.field, v.clone());
                merged.push((v, g));
            }
            merged.sort_by(|a, b| value_cmp(&a.0, &b.0));
            out_parts.push(merged);
        }
        let mut out = nulls;
        match self.bounds {
            // mongod sorts by the field alone and densifies every partition as it goes.
            DensifyBounds::Full => {
                let mut all: Vec<(Bson, Document)> = out_parts.into_iter().flatten().collect();
                all.sort_by(|a, b| value_cmp(&a.0, &b.0));
                out.extend(all.into_iter().map(|(_, d)| d));
            }
            _ => out.extend(out_parts.into_iter().flatten().map(|(_, d)| d)),
        }
        Ok(out)
    }
}

/// A generated document must not put the field under an array or a scalar of the
/// partition fields (5733307, 5733308).
fn check_generated_path(g: &Document, path: &[String]) -> Result<(), MongoError> {
    let mut cur = g;
    for (i, p) in path.iter().enumerate() {
        match cur.get(p) {
            Some(Bson::Array(_)) => {
                return Err(MongoError::location(
                    5733307,
                    "$densify cannot generate fields nested inside arrays",
                ))
            }
            Some(Bson::Document(d)) => cur = d,
            Some(_) if i + 1 < path.len() => {
                return Err(MongoError::location(
                    5733308,
                    "$densify cannot overwrite non-object values with objects",
                ))
            }
            _ => break,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bson::{doc, Bson, Document};

    use super::super::run_simple;

    fn date(s: &str) -> Bson {
        Bson::DateTime(bson::DateTime::parse_rfc3339_str(s).expect("a date"))
    }

    fn run(stage: Document, docs: Vec<Document>) -> Result<Vec<Document>, i32> {
        run_simple(&[stage], docs).map_err(|e| e.code)
    }

    #[test]
    fn fill_linear_locf_and_value() {
        let h = |x: u32| date(&format!("2021-03-08T{x:02}:00:00Z"));
        let stock = vec![
            doc! {"time": h(9), "price": 500},
            doc! {"time": h(10)},
            doc! {"time": h(11), "price": 515},
            doc! {"time": h(12)},
            doc! {"time": h(13)},
            doc! {"time": h(14), "price": 485},
        ];
        let out = run(
            doc! {"$fill": {"sortBy": {"time": 1}, "output": {"price": {"method": "linear"}}}},
            stock.clone(),
        )
        .expect("runs");
        let prices: Vec<f64> = out.iter().map(|d| util_f64(d.get("price"))).collect();
        assert_eq!(prices, vec![500.0, 507.5, 515.0, 505.0, 495.0, 485.0]);
        let out = run(
            doc! {"$fill": {"sortBy": {"time": 1}, "output": {"price": {"method": "locf"}, "qty": {"value": 0}}}},
            stock,
        )
        .expect("runs");
        let prices: Vec<f64> = out.iter().map(|d| util_f64(d.get("price"))).collect();
        assert_eq!(prices, vec![500.0, 500.0, 515.0, 515.0, 515.0, 485.0]);
        assert!(out.iter().all(|d| d.get("qty") == Some(&Bson::Int32(0))));
        let bad = |spec: Document| run(doc! {"$fill": spec}, vec![]).expect_err("fails");
        assert_eq!(bad(doc! {"output": {}}), 6050203);
        assert_eq!(bad(doc! {"output": {"a": 1}}), 6050200);
        assert_eq!(
            bad(doc! {"output": {"a": {"method": "locf", "value": 1}}}),
            6050201
        );
        assert_eq!(bad(doc! {"output": {"a": {"method": "next"}}}), 6050202);
        assert_eq!(
            bad(
                doc! {"partitionBy": "$a", "partitionByFields": ["a"], "output": {"a": {"value": 1}}}
            ),
            6050204
        );
        assert_eq!(bad(doc! {"output": {"a": {"method": "linear"}}}), 605001);
        assert_eq!(bad(doc! {"sortBy": {"a": 1}}), 40414);
    }

    fn util_f64(v: Option<&Bson>) -> f64 {
        v.and_then(crate::util::number_as_f64).unwrap_or(f64::NAN)
    }

    #[test]
    fn densify_the_documented_coffee_and_weather() {
        let coffee = vec![
            doc! {"altitude": 600, "variety": "Arabica Typica", "score": 68.3},
            doc! {"altitude": 750, "variety": "Arabica Typica", "score": 69.5},
            doc! {"altitude": 950, "variety": "Arabica Typica", "score": 70.5},
            doc! {"altitude": 1250, "variety": "Gesha", "score": 88.15},
            doc! {"altitude": 1700, "variety": "Gesha", "score": 85.5},
            doc! {"altitude": 1600, "variety": "SL28", "score": 85},
        ];
        let out = run(
            doc! {"$densify": {"field": "altitude", "partitionByFields": ["variety"],
            "range": {"bounds": "full", "step": 200}}},
            coffee.clone(),
        )
        .expect("runs");
        let of = |variety: &str| -> Vec<i32> {
            out.iter()
                .filter(|d| d.get_str("variety").ok() == Some(variety))
                .map(|d| d.get_i32("altitude").expect("altitude"))
                .collect()
        };
        assert_eq!(
            of("Arabica Typica"),
            [600, 750, 800, 950, 1000, 1200, 1400, 1600]
        );
        assert_eq!(of("Gesha"), [600, 800, 1000, 1200, 1250, 1400, 1600, 1700]);
        assert_eq!(of("SL28"), [600, 800, 1000, 1200, 1400, 1600]);
        // Output in field order, as mongod's "full" sort gives it.
        let alts: Vec<i32> = out
            .iter()
            .map(|d| d.get_i32("altitude").expect("a"))
            .collect();
        assert!(alts.windows(2).all(|w| w[0] <= w[1]), "{alts:?}");
        let out = run(
            doc! {"$densify": {"field": "altitude", "partitionByFields": ["variety"],
            "range": {"bounds": "partition", "step": 200}}},
            coffee,
        )
        .expect("runs");
        let alts: Vec<i32> = out
            .iter()
            .map(|d| d.get_i32("altitude").expect("a"))
            .collect();
        assert_eq!(alts, [600, 750, 800, 950, 1250, 1450, 1650, 1700, 1600]);

        let t = |x: u32| date(&format!("2021-05-18T{x:02}:00:00Z"));
        let weather = vec![
            doc! {"metadata": {"sensorId": 5578, "type": "temperature"}, "timestamp": t(0), "temp": 12},
            doc! {"metadata": {"sensorId": 5578, "type": "temperature"}, "timestamp": t(4), "temp": 11},
            doc! {"metadata": {"sensorId": 5578, "type": "temperature"}, "timestamp": t(8), "temp": 11},
            doc! {"metadata": {"sensorId": 5578, "type": "temperature"}, "timestamp": t(12), "temp": 12},
        ];
        let out = run(
            doc! {"$densify": {"field": "timestamp",
            "range": {"step": 1, "unit": "hour", "bounds": [t(0), t(8)]}}},
            weather,
        )
        .expect("runs");
        let times: Vec<Bson> = out
            .iter()
            .map(|d| d.get("timestamp").cloned().expect("t"))
            .collect();
        let want: Vec<Bson> = [0, 1, 2, 3, 4, 5, 6, 7, 8, 12]
            .iter()
            .map(|h| t(*h))
            .collect();
        assert_eq!(times, want);
        assert_eq!(
            out[1],
            doc! {"timestamp": t(1)},
            "generated documents hold the field only"
        );
    }

    #[test]
    fn densify_errors_as_mongod() {
        let bad = |spec: Document, docs: Vec<Document>| {
            run(doc! {"$densify": spec}, docs).expect_err("fails")
        };
        let none = Vec::new;
        assert_eq!(
            bad(
                doc! {"field": "a", "range": {"step": 0, "bounds": "full"}},
                none()
            ),
            5733401
        );
        assert_eq!(
            bad(
                doc! {"field": "a", "range": {"step": 1, "bounds": [1]}},
                none()
            ),
            5733403
        );
        assert_eq!(
            bad(
                doc! {"field": "a", "range": {"step": 1, "bounds": [2, 1]}},
                none()
            ),
            5733402
        );
        assert_eq!(
            bad(
                doc! {"field": "a", "range": {"step": 1, "bounds": [1, 2.5]}},
                none()
            ),
            5876900
        );
        assert_eq!(
            bad(
                doc! {"field": "a", "range": {"step": 1, "bounds": "x"}},
                none()
            ),
            5946802
        );
        assert_eq!(
            bad(
                doc! {"field": "a", "range": {"step": 1, "bounds": "partition"}},
                none()
            ),
            5733408
        );
        assert_eq!(
            bad(
                doc! {"field": "a", "range": {"step": 1, "unit": "hour", "bounds": [1, 2]}},
                none()
            ),
            5733409
        );
        assert_eq!(
            bad(
                doc! {"field": "a", "range": {"step": 1.5, "unit": "hour", "bounds": "full"}},
                none()
            ),
            6586400
        );
        assert_eq!(
            bad(doc! {"field": "a", "range": {"step": 1}}, none()),
            40414
        );
        assert_eq!(
            bad(
                doc! {"field": "a", "range": {"step": 1, "bounds": "full"}},
                vec![doc! {"a": "x"}]
            ),
            5733201
        );
        assert_eq!(
            bad(
                doc! {"field": "a", "range": {"step": 1, "bounds": "full"}},
                vec![doc! {"a": date("2021-01-01T00:00:00Z")}]
            ),
            6053600
        );
        // A step below a double's precision ends the range instead of looping.
        let out = run(
            doc! {"$densify": {"field": "a", "range": {"step": 1.0, "bounds": [1e16, 1.0000000000001e16]}}},
            vec![doc! {"a": 1e16}],
        )
        .expect("runs");
        assert_eq!(out, vec![doc! {"a": 1e16}]);
        // Null and missing values pass through.
        let out = run(
            doc! {"$densify": {"field": "a", "range": {"step": 1, "bounds": "full"}}},
            vec![doc! {"a": 3}, doc! {"b": 1}, doc! {"a": 1}],
        )
        .expect("runs");
        assert_eq!(
            out,
            vec![doc! {"b": 1}, doc! {"a": 1}, doc! {"a": 2}, doc! {"a": 3}]
        );
    }
}
