//! `$group` and its accumulators (mongod 7.0 `accumulator_*.cpp`), and the stages
//! built on them: `$bucket`, `$bucketAuto` (and `$sortByCount`, `$count` upstream).
//!
//! Group keys are compared with mongod's value equality ([`crate::cmp::compare`]), so
//! `1`, `1.0` and `NumberLong(1)` fall in one group, keyed by the first value seen.
//! Groups come out in the order their first document arrived (mongod's order is
//! unspecified).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use bson::{Bson, Document};
use eddy_codes::{ErrorCode, MongoError};

use super::granularity::Granularity;
use super::value_cmp;
use crate::collation::Collation;
use crate::expr::quantile::{Quantile, QuantileUse};
use crate::expr::{num, Env, Expr};
use crate::sort::SortSpec;
use crate::util::{self, bson_to_string, type_name};

/// A parsed `$group`.
#[derive(Debug, Clone)]
pub struct Group {
    id: Expr,
    fields: Vec<(String, AccSpec)>,
}

#[derive(Debug, Clone)]
pub(super) struct AccSpec {
    op: AccOp,
    arg: Option<Expr>,
    /// `n` of the `...N` accumulators (evaluated against `{_id: key}`).
    n: Option<Expr>,
    /// `sortBy` of `$top`/`$bottom`/`$topN`/`$bottomN`.
    sort: Option<SortSpec>,
    /// `p` of `$percentile` (`[0.5]` for `$median`).
    quantile: Option<Box<Quantile>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AccOp {
    Sum,
    Avg,
    Min,
    Max,
    First,
    Last,
    Push,
    AddToSet,
    MergeObjects,
    StdDevPop,
    StdDevSamp,
    Top,
    Bottom,
    TopN,
    BottomN,
    FirstN,
    LastN,
    MaxN,
    MinN,
    /// `$percentile` and `$median` (the spec is in [`AccSpec::quantile`]).
    Quantile,
}

/// Accumulators mongod 7.0 knows that Eddy does not implement.
const UNSUPPORTED_ACCUMULATORS: &[&str] = &["$accumulator", "$concatArrays", "$setUnion"];

/// Parses one `field: {$acc: arg}` of a `$group` (or `$bucket` output).
fn parse_acc(field: &str, spec: &Bson, vars: &[String]) -> Result<AccSpec, MongoError> {
    let Bson::Document(d) = spec else {
        return Err(MongoError::location(
            40234,
            format!("The field '{field}' must be an accumulator object"),
        ));
    };
    if d.len() != 1 {
        return Err(MongoError::location(
            40238,
            format!("The field '{field}' must specify one accumulator"),
        ));
    }
    let (name, arg) = d.iter().next().expect("one field");
    let simple = |op: AccOp| -> Result<AccSpec, MongoError> {
        if let Bson::Array(items) = arg {
            if items.len() != 1 {
                return Err(MongoError::location(
                    40237,
                    format!("The {name} accumulator is a unary operator"),
                ));
            }
        }
        let arg = match arg {
            Bson::Array(items) if items.len() == 1 => &items[0],
            other => other,
        };
        Ok(AccSpec {
            op,
            arg: Some(Expr::parse_with_vars(arg, vars)?),
            n: None,
            sort: None,
            quantile: None,
        })
    };
    match name.as_str() {
        "$sum" => simple(AccOp::Sum),
        "$avg" => simple(AccOp::Avg),
        "$min" => simple(AccOp::Min),
        "$max" => simple(AccOp::Max),
        "$first" => simple(AccOp::First),
        "$last" => simple(AccOp::Last),
        "$push" => simple(AccOp::Push),
        "$addToSet" => simple(AccOp::AddToSet),
        "$mergeObjects" => simple(AccOp::MergeObjects),
        "$stdDevPop" => simple(AccOp::StdDevPop),
        "$stdDevSamp" => simple(AccOp::StdDevSamp),
        "$count" => match arg {
            Bson::Document(a) if a.is_empty() => Ok(AccSpec {
                op: AccOp::Sum,
                arg: Some(Expr::parse(&Bson::Int32(1))?),
                n: None,
                sort: None,
                quantile: None,
            }),
            _ => Err(MongoError::new(
                ErrorCode::TypeMismatch,
                "$count takes no arguments, i.e. $count:{}",
            )),
        },
        "$top" | "$bottom" | "$topN" | "$bottomN" | "$firstN" | "$lastN" | "$maxN" | "$minN" => {
            parse_n_acc(name, arg, vars)
        }
        "$percentile" | "$median" => AccSpec::quantile(name, arg, QuantileUse::Accumulator, vars),
        other if UNSUPPORTED_ACCUMULATORS.contains(&other) => Err(MongoError::new(
            ErrorCode::CommandNotSupported,
            format!("Eddy does not support the {other} accumulator"),
        )),
        other => Err(MongoError::location(
            15952,
            format!("unknown group operator '{other}'"),
        )),
    }
}

pub(super) fn parse_n_acc(name: &str, arg: &Bson, vars: &[String]) -> Result<AccSpec, MongoError> {
    let op = match name {
        "$top" => AccOp::Top,
        "$bottom" => AccOp::Bottom,
        "$topN" => AccOp::TopN,
        "$bottomN" => AccOp::BottomN,
        "$firstN" => AccOp::FirstN,
        "$lastN" => AccOp::LastN,
        "$maxN" => AccOp::MaxN,
        _ => AccOp::MinN,
    };
    let Bson::Document(d) = arg else {
        return Err(MongoError::location(
            5787801,
            format!(
                "specification must be an object; found {name}: {}",
                bson_to_string(arg)
            ),
        ));
    };
    let sorted = matches!(
        op,
        AccOp::Top | AccOp::Bottom | AccOp::TopN | AccOp::BottomN
    );
    let takes_n = !matches!(op, AccOp::Top | AccOp::Bottom);
    let input_name = if sorted { "output" } else { "input" };
    let (mut input, mut n, mut sort) = (None, None, None);
    for (k, v) in d {
        match k.as_str() {
            k if k == input_name => input = Some(Expr::parse_with_vars(v, vars)?),
            "n" if takes_n => n = Some(Expr::parse_with_vars(v, vars)?),
            "sortBy" if sorted => match v {
                Bson::Document(s) => sort = Some(SortSpec::parse(s)?),
                _ => {
                    return Err(MongoError::location(
                        5788604,
                        format!("expected an object for sortBy in {name}"),
                    ))
                }
            },
            other => {
                return Err(MongoError::location(
                    5787901,
                    format!("Unknown argument for 'n' operator: {other}"),
                ))
            }
        }
    }
    let Some(input) = input else {
        return Err(MongoError::location(
            5787907,
            format!("Missing value for '{input_name}'"),
        ));
    };
    if takes_n && n.is_none() {
        return Err(MongoError::location(5787906, "Missing value for 'n'"));
    }
    if sorted && sort.is_none() {
        return Err(MongoError::location(5788005, "Missing value for 'sortBy'"));
    }
    Ok(AccSpec {
        op,
        arg: Some(input),
        n,
        sort,
        quantile: None,
    })
}

impl AccSpec {
    /// `$percentile`/`$median` (`used` picks mongod's code for a non-object argument).
    pub(super) fn quantile(
        name: &str,
        arg: &Bson,
        used: QuantileUse,
        vars: &[String],
    ) -> Result<AccSpec, MongoError> {
        let q = Quantile::parse(name, arg, used, vars)?;
        Ok(AccSpec {
            op: AccOp::Quantile,
            arg: Some(Expr::parse_with_vars(&q.input, vars)?),
            n: None,
            sort: None,
            quantile: Some(Box::new(q)),
        })
    }

    /// The accumulator `name` as a window function over `arg` (an operand, not the
    /// unary-array form `$group` accepts): `None` when `name` is not one.
    pub(super) fn window(name: &str, arg: Expr) -> Option<AccSpec> {
        let op = match name {
            "$sum" => AccOp::Sum,
            "$avg" => AccOp::Avg,
            "$min" => AccOp::Min,
            "$max" => AccOp::Max,
            "$push" => AccOp::Push,
            "$addToSet" => AccOp::AddToSet,
            "$stdDevPop" => AccOp::StdDevPop,
            "$stdDevSamp" => AccOp::StdDevSamp,
            "$first" => AccOp::First,
            "$last" => AccOp::Last,
            _ => return None,
        };
        Some(AccSpec {
            op,
            arg: Some(arg),
            n: None,
            sort: None,
            quantile: None,
        })
    }
}

/// A value as a BTreeMap key ordered by mongod's comparison, strings under the
/// collation: two strings it finds equal are one key (one group, whose `_id` is the
/// first value met, as in mongod).
#[derive(Debug, Clone)]
struct Key<'a>(Bson, Option<&'a Collation>);

impl PartialEq for Key<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Key<'_> {}
impl PartialOrd for Key<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Key<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        crate::cmp::compare_collated(&self.0, &other.0, self.1)
    }
}

/// Running sum with mongod's widening (int -> long -> double -> decimal).
#[derive(Debug, Clone, Default)]
pub(super) struct Sum {
    long: i64,
    /// Kahan-compensated double sum, once past 64-bit integers.
    double: f64,
    comp: f64,
    /// Decimals are summed by the expression module's `$add`.
    decimal: Option<Bson>,
    width: u8, // 0 int, 1 long, 2 double, 3 decimal
}

impl Sum {
    fn add(&mut self, v: &Bson) -> Result<(), MongoError> {
        let w = match v {
            Bson::Int32(_) => 0,
            Bson::Int64(_) => 1,
            Bson::Double(_) => 2,
            Bson::Decimal128(_) => 3,
            _ => return Ok(()),
        };
        if w == 3 || self.width == 3 {
            let cur = self.decimal.take().unwrap_or_else(|| self.value_lossless());
            self.decimal = Some(add_via_expr(&cur, v)?);
            self.width = 3;
            return Ok(());
        }
        self.width = self.width.max(w);
        if self.width < 2 {
            let i = match v {
                Bson::Int32(i) => i64::from(*i),
                Bson::Int64(i) => *i,
                _ => 0,
            };
            match self.long.checked_add(i) {
                Some(s) => self.long = s,
                None => {
                    self.width = 2;
                    self.double = self.long as f64;
                    self.comp = 0.0;
                    self.long = 0;
                    self.kahan(i as f64);
                }
            }
        } else {
            if self.long != 0 {
                let l = self.long;
                self.long = 0;
                self.kahan(l as f64);
            }
            self.kahan(util::number_as_f64(v).unwrap_or(0.0));
        }
        Ok(())
    }

    fn kahan(&mut self, x: f64) {
        if !x.is_finite() || !self.double.is_finite() {
            self.double += x;
            return;
        }
        let t = self.double + x;
        if self.double.abs() >= x.abs() {
            self.comp += (self.double - t) + x;
        } else {
            self.comp += (x - t) + self.double;
        }
        self.double = t;
    }

    fn value_lossless(&self) -> Bson {
        match self.width {
            0 => i32::try_from(self.long).map_or(Bson::Int64(self.long), Bson::Int32),
            1 => Bson::Int64(self.long),
            _ => {
                let c = if self.comp.is_finite() {
                    self.comp
                } else {
                    0.0
                };
                Bson::Double(self.double + self.long as f64 + c)
            }
        }
    }

    fn value(&self) -> Bson {
        match &self.decimal {
            Some(d) => d.clone(),
            None => self.value_lossless(),
        }
    }

    fn as_f64(&self) -> f64 {
        util::number_as_f64(&self.value()).unwrap_or(0.0)
    }
}

pub(super) fn add_via_expr(a: &Bson, b: &Bson) -> Result<Bson, MongoError> {
    let e = Expr::parse(&Bson::Document(
        bson::doc! {"$add": [{"$literal": a.clone()}, {"$literal": b.clone()}]},
    ))?;
    Ok(e.evaluate(&Document::new(), &Env::new())?
        .unwrap_or(Bson::Null))
}

fn divide_via_expr(a: &Bson, b: &Bson) -> Result<Bson, MongoError> {
    let e = Expr::parse(&Bson::Document(
        bson::doc! {"$divide": [{"$literal": a.clone()}, {"$literal": b.clone()}]},
    ))?;
    Ok(e.evaluate(&Document::new(), &Env::new())?
        .unwrap_or(Bson::Null))
}

/// The state of one accumulator for one group.
#[derive(Debug, Clone)]
pub(super) enum AccState {
    Sum(Sum),
    Avg(Sum, u64),
    Extreme(Option<Bson>),
    First(Option<Bson>),
    Last(Bson),
    List(Vec<Bson>),
    Merge(Document),
    /// Welford's running mean and M2.
    StdDev {
        n: u64,
        mean: f64,
        m2: f64,
    },
    /// `(sort key, value)` for the sorted `N` accumulators, kept sorted.
    Sorted(Vec<(Vec<Bson>, Bson)>),
}

impl AccSpec {
    pub(super) fn init(&self) -> AccState {
        match self.op {
            AccOp::Sum => AccState::Sum(Sum::default()),
            AccOp::Avg => AccState::Avg(Sum::default(), 0),
            AccOp::Min | AccOp::Max => AccState::Extreme(None),
            AccOp::First => AccState::First(None),
            AccOp::Last => AccState::Last(Bson::Null),
            AccOp::Push | AccOp::AddToSet | AccOp::FirstN | AccOp::LastN => {
                AccState::List(Vec::new())
            }
            AccOp::MaxN | AccOp::MinN | AccOp::Quantile => AccState::List(Vec::new()),
            AccOp::MergeObjects => AccState::Merge(Document::new()),
            AccOp::StdDevPop | AccOp::StdDevSamp => AccState::StdDev {
                n: 0,
                mean: 0.0,
                m2: 0.0,
            },
            AccOp::Top | AccOp::Bottom | AccOp::TopN | AccOp::BottomN => {
                AccState::Sorted(Vec::new())
            }
        }
    }

    fn n_value(&self, key: &Bson, env: &Env) -> Result<usize, MongoError> {
        self.n_against(&bson::doc! {"_id": key.clone()}, env)
    }

    /// `n` evaluated against `doc` (`{_id: key}` in `$group`; an empty document in a
    /// window, where no variable names the partition).
    pub(super) fn n_against(&self, doc: &Document, env: &Env) -> Result<usize, MongoError> {
        let Some(e) = &self.n else {
            return Ok(1);
        };
        let v = e.evaluate(doc, env)?.unwrap_or(Bson::Null);
        let integral = match &v {
            Bson::Int32(_) | Bson::Int64(_) => true,
            Bson::Double(d) => d.fract() == 0.0 && d.is_finite(),
            Bson::Decimal128(_) => util::number_as_f64(&v).is_some_and(|d| d.fract() == 0.0),
            _ => false,
        };
        if !integral {
            return Err(MongoError::location(
                5787902,
                format!(
                    "Value for 'n' must be of integral type, but found {}",
                    bson_to_string(&v)
                ),
            ));
        }
        let n = util::number_as_f64(&v).unwrap_or(0.0);
        if n <= 0.0 {
            return Err(MongoError::location(
                5787908,
                format!("'n' must be greater than 0, found {}", bson_to_string(&v)),
            ));
        }
        Ok(n as usize)
    }

    pub(super) fn accumulate(
        &self,
        state: &mut AccState,
        doc: &Document,
        n: usize,
        env: &Env,
    ) -> Result<(), MongoError> {
        let v = match &self.arg {
            Some(e) => e.evaluate(doc, env)?,
            None => None,
        };
        match state {
            AccState::Sum(s) => {
                if let Some(v) = &v {
                    s.add(v)?;
                }
            }
            AccState::Avg(s, count) => {
                if let Some(v) = &v {
                    if crate::cmp::is_number(v) {
                        s.add(v)?;
                        *count += 1;
                    }
                }
            }
            AccState::Extreme(cur) => {
                if let Some(v) = v.filter(|v| !matches!(v, Bson::Null | Bson::Undefined)) {
                    let better = match cur {
                        None => true,
                        Some(c) => {
                            let o = env.compare(&v, c);
                            if self.op == AccOp::Min {
                                o == Ordering::Less
                            } else {
                                o == Ordering::Greater
                            }
                        }
                    };
                    if better {
                        *cur = Some(v);
                    }
                }
            }
            AccState::First(cur) => {
                if cur.is_none() {
                    *cur = Some(v.unwrap_or(Bson::Null));
                }
            }
            AccState::Last(cur) => *cur = v.unwrap_or(Bson::Null),
            AccState::List(items) => match self.op {
                AccOp::Push => {
                    if let Some(v) = v {
                        items.push(v);
                    }
                }
                AccOp::AddToSet => {
                    if let Some(v) = v {
                        if !items.iter().any(|i| env.equal(i, &v)) {
                            items.push(v);
                        }
                    }
                }
                AccOp::FirstN if items.len() < n => items.push(v.unwrap_or(Bson::Null)),
                AccOp::LastN => {
                    items.push(v.unwrap_or(Bson::Null));
                    if items.len() > n {
                        items.remove(0);
                    }
                }
                AccOp::Quantile => {
                    if let Some(v) = v.filter(crate::cmp::is_number) {
                        items.push(v);
                    }
                }
                AccOp::MaxN | AccOp::MinN => {
                    if let Some(v) = v.filter(|v| !matches!(v, Bson::Null | Bson::Undefined)) {
                        items.push(v);
                        if self.op == AccOp::MaxN {
                            items.sort_by(|a, b| env.compare(b, a));
                        } else {
                            items.sort_by(|a, b| env.compare(a, b));
                        }
                        items.truncate(n);
                    }
                }
                _ => {}
            },
            AccState::Merge(out) => match v {
                None | Some(Bson::Null) | Some(Bson::Undefined) => {}
                Some(Bson::Document(d)) => {
                    for (k, v) in d {
                        out.insert(k, v);
                    }
                }
                Some(other) => {
                    return Err(MongoError::location(
                        40400,
                        format!(
                            "$mergeObjects requires object inputs, but input {} is of type {}",
                            bson_to_string(&other),
                            type_name(&other)
                        ),
                    ))
                }
            },
            AccState::StdDev { n: count, mean, m2 } => {
                if let Some(x) = v.as_ref().filter(|v| crate::cmp::is_number(v)) {
                    let x = util::number_as_f64(x).unwrap_or(0.0);
                    *count += 1;
                    let delta = x - *mean;
                    *mean += delta / *count as f64;
                    *m2 += delta * (x - *mean);
                }
            }
            AccState::Sorted(items) => {
                let sort = self.sort.as_ref().expect("sorted accumulators have sortBy");
                let key = sort.key(doc)?;
                let value = v.unwrap_or(Bson::Null);
                let bottom = matches!(self.op, AccOp::Bottom | AccOp::BottomN);
                // Keep `items` in sort order; ties keep arrival order.
                let pos = items
                    .iter()
                    .position(|(k, _)| {
                        sort.compare_keys_under(&key, k, env.collation.as_deref()) == Ordering::Less
                    })
                    .unwrap_or(items.len());
                items.insert(pos, (key, value));
                if items.len() > n {
                    if bottom {
                        items.remove(0);
                    } else {
                        items.pop();
                    }
                }
            }
        }
        Ok(())
    }

    pub(super) fn finish(&self, state: AccState) -> Result<Bson, MongoError> {
        Ok(match state {
            AccState::Sum(s) => s.value(),
            AccState::Avg(s, count) => {
                if count == 0 {
                    Bson::Null
                } else if s.decimal.is_some() {
                    divide_via_expr(&s.value(), &Bson::Int64(count as i64))?
                } else {
                    Bson::Double(s.as_f64() / count as f64)
                }
            }
            AccState::Extreme(v) => v.unwrap_or(Bson::Null),
            AccState::First(v) => v.unwrap_or(Bson::Null),
            AccState::Last(v) => v,
            AccState::List(items) => match &self.quantile {
                Some(q) => {
                    let mut xs: Vec<f64> = items.iter().filter_map(util::number_as_f64).collect();
                    q.result(&mut xs)
                }
                None => Bson::Array(items),
            },
            AccState::Merge(d) => Bson::Document(d),
            AccState::StdDev { n, m2, .. } => {
                let pop = self.op == AccOp::StdDevPop;
                if n == 0 || (!pop && n < 2) {
                    Bson::Null
                } else {
                    let denom = if pop { n as f64 } else { (n - 1) as f64 };
                    Bson::Double((m2 / denom).sqrt())
                }
            }
            AccState::Sorted(items) => {
                let single = matches!(self.op, AccOp::Top | AccOp::Bottom);
                let mut values: Vec<Bson> = items.into_iter().map(|(_, v)| v).collect();
                if single {
                    values.pop().unwrap_or(Bson::Null)
                } else {
                    Bson::Array(values)
                }
            }
        })
    }
}

impl Group {
    /// Parses a `$group` specification.
    pub fn parse(arg: &Bson, vars: &[String]) -> Result<Group, MongoError> {
        let Bson::Document(d) = arg else {
            return Err(MongoError::location(
                15947,
                "a group's fields must be specified in an object",
            ));
        };
        let mut id = None;
        let mut fields = Vec::new();
        for (k, v) in d {
            if k == "_id" {
                if id.is_some() {
                    return Err(MongoError::location(
                        15948,
                        "a group's _id may only be specified once",
                    ));
                }
                id = Some(Expr::parse_with_vars(v, vars)?);
                continue;
            }
            if k.starts_with('$') {
                return Err(MongoError::location(
                    40236,
                    format!("The field name '{k}' cannot be an operator name"),
                ));
            }
            if k.contains('.') {
                return Err(MongoError::location(
                    40235,
                    format!("The field name '{k}' cannot contain '.'"),
                ));
            }
            fields.push((k.clone(), parse_acc(k, v, vars)?));
        }
        let Some(id) = id else {
            return Err(MongoError::location(
                15955,
                "a group specification must include an _id",
            ));
        };
        Ok(Group { id, fields })
    }

    /// `$sortByCount`'s group: `{_id: expr, count: {$sum: 1}}`.
    pub(crate) fn sort_by_count(id: Expr) -> Group {
        Group {
            id,
            fields: vec![(
                "count".to_owned(),
                AccSpec {
                    op: AccOp::Sum,
                    arg: Some(Expr::parse(&Bson::Int32(1)).expect("a literal parses")),
                    n: None,
                    sort: None,
                    quantile: None,
                },
            )],
        }
    }

    /// Groups `docs`.
    pub fn run(&self, docs: Vec<Document>, env: &Env) -> Result<Vec<Document>, MongoError> {
        let collation = env.collation.as_deref();
        let mut index: BTreeMap<Key<'_>, usize> = BTreeMap::new();
        let mut groups: Vec<(Bson, Vec<usize>, Vec<AccState>)> = Vec::new();
        for d in &docs {
            let key = self.id.evaluate(d, env)?.unwrap_or(Bson::Null);
            let gi = match index.get(&Key(key.clone(), collation)) {
                Some(i) => *i,
                None => {
                    let ns = self
                        .fields
                        .iter()
                        .map(|(_, a)| a.n_value(&key, env))
                        .collect::<Result<Vec<_>, _>>()?;
                    let states = self.fields.iter().map(|(_, a)| a.init()).collect();
                    groups.push((key.clone(), ns, states));
                    index.insert(Key(key, collation), groups.len() - 1);
                    groups.len() - 1
                }
            };
            let (_, ns, states) = &mut groups[gi];
            for (((_, acc), state), n) in self.fields.iter().zip(states.iter_mut()).zip(ns.iter()) {
                acc.accumulate(state, d, *n, env)?;
            }
        }
        // Empty input gives no group, even for a constant `_id` (as mongod).
        self.finish(groups)
    }

    fn finish(
        &self,
        groups: Vec<(Bson, Vec<usize>, Vec<AccState>)>,
    ) -> Result<Vec<Document>, MongoError> {
        let mut out = Vec::with_capacity(groups.len());
        for (key, _, states) in groups {
            let mut d = bson::doc! {"_id": key};
            for ((name, acc), state) in self.fields.iter().zip(states) {
                d.insert(name.clone(), acc.finish(state)?);
            }
            out.push(d);
        }
        Ok(out)
    }
}

fn parse_output(
    stage: &str,
    v: &Bson,
    vars: &[String],
) -> Result<Vec<(String, AccSpec)>, MongoError> {
    let Bson::Document(d) = v else {
        return Err(MongoError::location(
            if stage == "$bucket" { 40196 } else { 40244 },
            format!(
                "The $bucket{} 'output' field must be an object, but found type: {}.",
                if stage == "$bucket" { "" } else { "Auto" },
                type_name(v)
            ),
        ));
    };
    d.iter()
        .map(|(k, v)| Ok((k.clone(), parse_acc(k, v, vars)?)))
        .collect()
}

fn count_output() -> Vec<(String, AccSpec)> {
    vec![(
        "count".to_owned(),
        AccSpec {
            op: AccOp::Sum,
            arg: Some(Expr::parse(&Bson::Int32(1)).expect("a literal parses")),
            n: None,
            sort: None,
            quantile: None,
        },
    )]
}

fn group_by_expr(stage: &str, v: &Bson, vars: &[String]) -> Result<Expr, MongoError> {
    let ok = match v {
        Bson::String(s) => s.starts_with('$'),
        Bson::Document(d) => d.keys().next().is_some_and(|k| k.starts_with('$')),
        _ => false,
    };
    if !ok {
        return Err(MongoError::location(
            if stage == "$bucket" { 40202 } else { 40239 },
            format!(
                "The {stage} 'groupBy' field must be defined as a $-prefixed path or an expression{}, but found: {}.",
                if stage == "$bucket" { "" } else { " object" },
                bson_to_string(v)
            ),
        ));
    }
    Expr::parse_with_vars(v, vars)
}

/// A parsed `$bucket`.
#[derive(Debug, Clone)]
pub struct Bucket {
    group_by: Expr,
    boundaries: Vec<Bson>,
    default: Option<Bson>,
    output: Vec<(String, AccSpec)>,
}

impl Bucket {
    /// Parses a `$bucket` specification.
    pub fn parse(arg: &Bson, vars: &[String]) -> Result<Bucket, MongoError> {
        let Bson::Document(d) = arg else {
            return Err(MongoError::location(
                40201,
                format!(
                    "Argument to $bucket stage must be an object, but found type: {}.",
                    type_name(arg)
                ),
            ));
        };
        let (mut group_by, mut boundaries, mut default, mut output) = (None, None, None, None);
        for (k, v) in d {
            match k.as_str() {
                "groupBy" => group_by = Some(group_by_expr("$bucket", v, vars)?),
                "boundaries" => match v {
                    Bson::Array(items) => boundaries = Some(items.clone()),
                    other => {
                        return Err(MongoError::location(
                            40200,
                            format!(
                            "The $bucket 'boundaries' field must be an array, but found type: {}.",
                            type_name(other)
                        ),
                        ))
                    }
                },
                "default" => default = Some(v.clone()),
                "output" => output = Some(parse_output("$bucket", v, vars)?),
                other => {
                    return Err(MongoError::location(
                        40197,
                        format!("Unrecognized option to $bucket: {other}."),
                    ))
                }
            }
        }
        let (Some(group_by), Some(boundaries)) = (group_by, boundaries) else {
            return Err(MongoError::location(
                40198,
                "$bucket requires 'groupBy' and 'boundaries' to be specified.",
            ));
        };
        if boundaries.len() < 2 {
            return Err(MongoError::location(
                40192,
                format!(
                    "The $bucket 'boundaries' field must have at least 2 values, but found {} value(s).",
                    boundaries.len()
                ),
            ));
        }
        for w in boundaries.windows(2) {
            if crate::cmp::type_bracket(&w[0]) != crate::cmp::type_bracket(&w[1]) {
                return Err(MongoError::location(
                    40193,
                    format!(
                        "All values in the the 'boundaries' option to $bucket must have the same type. Found conflicting types {} and {}.",
                        type_name(&w[0]),
                        type_name(&w[1])
                    ),
                ));
            }
            if value_cmp(&w[0], &w[1]) != Ordering::Less {
                return Err(MongoError::location(
                    40194,
                    format!(
                        "The 'boundaries' option to $bucket must be sorted in ascending order, but elements {} and {} are not in ascending order ({} is not less than {}).",
                        0,
                        1,
                        bson_to_string(&w[0]),
                        bson_to_string(&w[1])
                    ),
                ));
            }
        }
        if let Some(def) = &default {
            let lo = &boundaries[0];
            let hi = &boundaries[boundaries.len() - 1];
            let same_type = crate::cmp::type_bracket(def) == crate::cmp::type_bracket(lo);
            if same_type
                && value_cmp(def, lo) != Ordering::Less
                && value_cmp(def, hi) == Ordering::Less
            {
                return Err(MongoError::location(
                    40199,
                    "The $bucket 'default' field must be less than the lowest boundary or greater than or equal to the highest boundary.",
                ));
            }
        }
        Ok(Bucket {
            group_by,
            boundaries,
            default,
            output: output.unwrap_or_else(count_output),
        })
    }

    /// Runs the stage.
    pub fn run(&self, docs: Vec<Document>, env: &Env) -> Result<Vec<Document>, MongoError> {
        let nb = self.boundaries.len() - 1;
        let mut states: Vec<Option<Vec<AccState>>> = vec![None; nb + 1];
        for d in &docs {
            let v = self.group_by.evaluate(d, env)?.unwrap_or(Bson::Null);
            let lo = &self.boundaries[0];
            let same = crate::cmp::type_bracket(&v) == crate::cmp::type_bracket(lo);
            let slot = if same {
                self.boundaries.windows(2).position(|w| {
                    env.compare(&v, &w[0]) != Ordering::Less
                        && env.compare(&v, &w[1]) == Ordering::Less
                })
            } else {
                None
            };
            let slot = match slot {
                Some(s) => s,
                None if self.default.is_some() => nb,
                None => {
                    return Err(MongoError::location(
                        40066,
                        "$switch could not find a matching branch for an input, and no default was specified.",
                    ))
                }
            };
            let st = states[slot]
                .get_or_insert_with(|| self.output.iter().map(|(_, a)| a.init()).collect());
            for ((_, acc), s) in self.output.iter().zip(st.iter_mut()) {
                acc.accumulate(s, d, 1, env)?;
            }
        }
        let mut out = Vec::new();
        for (i, st) in states.into_iter().enumerate() {
            let Some(st) = st else { continue };
            let id = if i == nb {
                self.default.clone().unwrap_or(Bson::Null)
            } else {
                self.boundaries[i].clone()
            };
            let mut d = bson::doc! {"_id": id};
            for ((name, acc), s) in self.output.iter().zip(st) {
                d.insert(name.clone(), acc.finish(s)?);
            }
            out.push(d);
        }
        Ok(out)
    }
}

/// A parsed `$bucketAuto`.
#[derive(Debug, Clone)]
pub struct BucketAuto {
    group_by: Expr,
    buckets: usize,
    output: Vec<(String, AccSpec)>,
    granularity: Option<Granularity>,
}

/// One bucket while `$bucketAuto` fills it.
struct AutoBucket {
    min: Bson,
    max: Bson,
    state: Vec<AccState>,
}

impl BucketAuto {
    /// Parses a `$bucketAuto` specification.
    pub fn parse(arg: &Bson, vars: &[String]) -> Result<BucketAuto, MongoError> {
        let Bson::Document(d) = arg else {
            return Err(MongoError::location(
                40240,
                format!(
                    "The argument to $bucketAuto must be an object, but found type: {}.",
                    type_name(arg)
                ),
            ));
        };
        let (mut group_by, mut buckets, mut output, mut granularity) = (None, None, None, None);
        for (k, v) in d {
            match k.as_str() {
                "groupBy" => group_by = Some(group_by_expr("$bucketAuto", v, vars)?),
                "buckets" => {
                    let n = util::parse_integer_to_int("buckets", v)
                        .ok()
                        .filter(|_| crate::cmp::is_number(v));
                    match n {
                        Some(n) if n > 0 => buckets = Some(n as usize),
                        Some(n) => {
                            return Err(MongoError::location(
                                40243,
                                format!(
                                    "The $bucketAuto 'buckets' field must be greater than 0, but found: {n}"
                                ),
                            ))
                        }
                        None => {
                            return Err(MongoError::location(
                                40241,
                                format!(
                                    "The $bucketAuto 'buckets' field must be a numeric value, but found type: {}",
                                    type_name(v)
                                ),
                            ))
                        }
                    }
                }
                "output" => output = Some(parse_output("$bucketAuto", v, vars)?),
                "granularity" => {
                    let Bson::String(name) = v else {
                        return Err(MongoError::location(
                            40261,
                            format!(
                                "The $bucketAuto 'granularity' field must be a string, but found type: {}",
                                type_name(v)
                            ),
                        ));
                    };
                    granularity = Some(Granularity::parse(name)?);
                }
                other => {
                    return Err(MongoError::location(
                        40245,
                        format!("Unrecognized option to $bucketAuto: {other}."),
                    ))
                }
            }
        }
        let (Some(group_by), Some(buckets)) = (group_by, buckets) else {
            return Err(MongoError::location(
                40246,
                "$bucketAuto requires 'groupBy' and 'buckets' to be specified",
            ));
        };
        Ok(BucketAuto {
            group_by,
            buckets,
            output: output.unwrap_or_else(count_output),
            granularity,
        })
    }

    /// Runs the stage (mongod's `populateNextBucket`): the documents sorted by their
    /// key, about `n / buckets` to a bucket (the last takes the rest), a bucket's
    /// boundary never splitting equal keys. Without a granularity a bucket's `max` is
    /// the next bucket's `min` (the last one's its largest key); with one, boundaries
    /// are rounded to it and each `min` is the previous bucket's `max`.
    pub fn run(&self, docs: Vec<Document>, env: &Env) -> Result<Vec<Document>, MongoError> {
        let mut keyed = docs
            .into_iter()
            .map(|d| Ok((self.key(&d, env)?, d)))
            .collect::<Result<Vec<_>, MongoError>>()?;
        keyed.sort_by(|a, b| env.compare(&a.0, &b.0));
        let per_bucket = ((keyed.len() as f64) / (self.buckets as f64))
            .round()
            .max(1.0) as usize;
        let mut sorted = keyed.into_iter();
        let mut out = Vec::new();
        let (mut next_min, mut previous_max) = (sorted.next(), None);
        while let Some((key, doc)) = next_min.take() {
            let min = match (self.granularity, previous_max.take()) {
                (Some(_), Some(max)) => max,
                (Some(g), None) => g.round_down(&key)?,
                (None, _) => key.clone(),
            };
            let mut bucket = AutoBucket {
                min,
                max: key.clone(),
                state: self.output.iter().map(|(_, a)| a.init()).collect(),
            };
            self.add(&mut bucket, key, &doc, env)?;
            let last = out.len() + 1 == self.buckets;
            let mut filled = 1;
            while filled < per_bucket || last {
                let Some((key, doc)) = sorted.next() else {
                    break;
                };
                self.add(&mut bucket, key, &doc, env)?;
                filled += 1;
            }
            // Values equal to the bucket's largest (or, with a granularity, below its
            // rounded boundary) join it too.
            let mut next = sorted.next();
            let boundary = match self.granularity {
                Some(g) => Some(g.round_up(&bucket.max)?),
                None => None,
            };
            while let Some((key, doc)) = next.take() {
                let joins = env.equal(&bucket.max, &key)
                    || boundary
                        .as_ref()
                        .is_some_and(|b| env.compare(b, &key) == Ordering::Greater);
                if !joins {
                    next = Some((key, doc));
                    break;
                }
                self.add(&mut bucket, key, &doc, env)?;
                next = sorted.next();
            }
            match (self.granularity, boundary) {
                // A boundary of 0 cannot be exclusive: the next value rounded down is.
                (Some(g), Some(b)) => match &next {
                    Some((key, _)) if num::to_f64(&b) == 0.0 => bucket.max = g.round_down(key)?,
                    _ => bucket.max = b,
                },
                _ => {
                    if let Some((key, _)) = &next {
                        bucket.max = key.clone();
                    }
                }
            }
            previous_max = Some(bucket.max.clone());
            out.push(self.bucket_doc(bucket.min, bucket.max, bucket.state)?);
            next_min = next;
        }
        Ok(out)
    }

    /// A document's key: missing is null, as in `$group`; with a granularity, a
    /// non-negative number (40258, 40259, 40260).
    fn key(&self, doc: &Document, env: &Env) -> Result<Bson, MongoError> {
        let key = self.group_by.evaluate(doc, env)?;
        if self.granularity.is_some() {
            let numeric = key.as_ref().filter(|k| num::is_numeric(k)).map(num::to_f64);
            let Some(n) = numeric else {
                return Err(MongoError::location(
                    40258,
                    format!(
                        "$bucketAuto can specify a 'granularity' with numeric boundaries only, but found a value with type: {}",
                        key.as_ref().map_or("missing", type_name)
                    ),
                ));
            };
            if n.is_nan() {
                return Err(MongoError::location(
                    40259,
                    "$bucketAuto can specify a 'granularity' with numeric boundaries only, but found a NaN",
                ));
            }
            if n < 0.0 {
                return Err(MongoError::location(
                    40260,
                    "$bucketAuto can specify a 'granularity' with non-negative numbers only, but found a negative number",
                ));
            }
        }
        Ok(key.unwrap_or(Bson::Null))
    }

    fn add(
        &self,
        bucket: &mut AutoBucket,
        key: Bson,
        doc: &Document,
        env: &Env,
    ) -> Result<(), MongoError> {
        bucket.max = key;
        for ((_, acc), s) in self.output.iter().zip(bucket.state.iter_mut()) {
            acc.accumulate(s, doc, 1, env)?;
        }
        Ok(())
    }

    fn bucket_doc(&self, min: Bson, max: Bson, st: Vec<AccState>) -> Result<Document, MongoError> {
        let mut d = bson::doc! {"_id": {"min": min, "max": max}};
        for ((name, acc), s) in self.output.iter().zip(st) {
            d.insert(name.clone(), acc.finish(s)?);
        }
        Ok(d)
    }
}
