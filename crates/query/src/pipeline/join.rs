//! The stages that read other collections or run sub-pipelines: `$lookup`,
//! `$unionWith` and `$facet` (mongod 7.0 `document_source_lookup.cpp`,
//! `document_source_union_with.cpp`, `document_source_facet.cpp`), with the
//! namespace, `let` and sub-pipeline arguments they (and `$out`/`$merge`) share.

use std::sync::Arc;

use bson::{Bson, Document};
use eddy_codes::{location, MongoError};

use super::{parse_pipeline, set_nested, CollStats, Context, Mode, Pipeline};
use crate::collation::Collation;
use crate::expr::{Env, Expr};
use crate::filter::Filter;
use crate::projection::field_path;
use crate::util::{bson_to_string, type_name};

#[derive(Debug, Clone)]
pub(super) struct Lookup {
    from_db: Option<String>,
    from: Option<String>,
    local_field: Option<String>,
    foreign_field: Option<String>,
    let_vars: Vec<(String, Expr)>,
    pipeline: Option<Pipeline>,
    as_field: Vec<String>,
}

#[derive(Debug, Clone)]
pub(super) struct UnionWith {
    db: Option<String>,
    coll: Option<String>,
    pipeline: Option<Pipeline>,
}

impl Lookup {
    /// Puts the sub-pipeline under the command's collation (the join's equality reads
    /// it from the environment).
    pub(super) fn collate(&mut self, c: &Arc<Collation>) {
        if let Some(p) = self.pipeline.take() {
            self.pipeline = Some(p.collated(Some(c)));
        }
    }
}

impl UnionWith {
    /// Puts the sub-pipeline under the command's collation.
    pub(super) fn collate(&mut self, c: &Arc<Collation>) {
        if let Some(p) = self.pipeline.take() {
            self.pipeline = Some(p.collated(Some(c)));
        }
    }
}

pub(super) fn namespace_arg(v: &Bson, what: &str) -> Result<(Option<String>, String), MongoError> {
    match v {
        Bson::String(s) => Ok((None, s.clone())),
        Bson::Document(d) => {
            let db = match d.get("db") {
                Some(Bson::String(s)) => Some(s.clone()),
                None => None,
                Some(other) => {
                    return Err(MongoError::type_mismatch(format!(
                        "BSON field '{what}.db' is the wrong type '{}', expected type 'string'",
                        type_name(other)
                    )))
                }
            };
            let coll = match d.get("coll") {
                Some(Bson::String(s)) => s.clone(),
                _ => {
                    return Err(MongoError::failed_to_parse(format!(
                        "{what} must have a 'coll' string field"
                    )))
                }
            };
            Ok((db, coll))
        }
        other => Err(MongoError::failed_to_parse(format!(
            "{what} must be a string or an object, is type {}",
            type_name(other)
        ))),
    }
}

fn sub_pipeline(v: &Bson, what: &str, vars: &[String], mode: Mode) -> Result<Pipeline, MongoError> {
    let Bson::Array(items) = v else {
        return Err(MongoError::failed_to_parse(format!(
            "'{what}' option must be specified as an array"
        )));
    };
    let stages = items
        .iter()
        .map(|s| match s {
            Bson::Document(d) => Ok(d.clone()),
            _ => Err(MongoError::type_mismatch(
                "Each element of the 'pipeline' array must be an object",
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    parse_pipeline(&stages, vars, mode)
}

pub(super) fn parse_let(v: &Bson, vars: &[String]) -> Result<Vec<(String, Expr)>, MongoError> {
    let Bson::Document(d) = v else {
        return Err(MongoError::failed_to_parse(format!(
            "$lookup argument 'let' must be an object, is type {}",
            type_name(v)
        )));
    };
    d.iter()
        .map(|(k, v)| Ok((k.clone(), Expr::parse_with_vars(v, vars)?)))
        .collect()
}

pub(super) fn parse_lookup(arg: &Bson, vars: &[String]) -> Result<Lookup, MongoError> {
    let Bson::Document(d) = arg else {
        return Err(MongoError::failed_to_parse(format!(
            "the $lookup stage specification must be an object, but found {}",
            type_name(arg)
        )));
    };
    let mut l = Lookup {
        from_db: None,
        from: None,
        local_field: None,
        foreign_field: None,
        let_vars: Vec::new(),
        pipeline: None,
        as_field: Vec::new(),
    };
    let mut raw_pipeline = None;
    let mut as_name = None;
    for (k, v) in d {
        let string = || match v {
            Bson::String(s) => Ok(s.clone()),
            other => Err(MongoError::failed_to_parse(format!(
                "$lookup argument '{k}: {}' must be a string, is type {}",
                bson_to_string(other),
                type_name(other)
            ))),
        };
        match k.as_str() {
            "from" => {
                let (db, coll) = namespace_arg(v, "$lookup.from")?;
                l.from_db = db;
                l.from = Some(coll);
            }
            "localField" => l.local_field = Some(string()?),
            "foreignField" => l.foreign_field = Some(string()?),
            "as" => as_name = Some(string()?),
            "let" => l.let_vars = parse_let(v, vars)?,
            "pipeline" => raw_pipeline = Some(v),
            other => {
                return Err(MongoError::failed_to_parse(format!(
                    "unknown argument to $lookup: {other}"
                )))
            }
        }
    }
    let Some(as_name) = as_name else {
        return Err(MongoError::failed_to_parse(
            "must specify 'as' field for a $lookup",
        ));
    };
    l.as_field = field_path(&as_name)?;
    if l.local_field.is_some() != l.foreign_field.is_some() {
        return Err(MongoError::failed_to_parse(
            "$lookup requires both or neither of 'localField' and 'foreignField' to be specified",
        ));
    }
    if raw_pipeline.is_none() && l.local_field.is_none() {
        return Err(MongoError::failed_to_parse(
            "$lookup requires either 'pipeline' or both 'localField' and 'foreignField' to be specified",
        ));
    }
    if l.from.is_none() {
        return Err(MongoError::failed_to_parse(
            "must specify 'from' field for a $lookup",
        ));
    }
    if let Some(p) = raw_pipeline {
        let mut scope = vars.to_vec();
        scope.extend(l.let_vars.iter().map(|(k, _)| k.clone()));
        l.pipeline = Some(sub_pipeline(p, "pipeline", &scope, Mode::Sub)?);
    }
    for f in [&l.local_field, &l.foreign_field].into_iter().flatten() {
        field_path(f)?;
    }
    Ok(l)
}

pub(super) fn parse_facet(
    arg: &Bson,
    vars: &[String],
) -> Result<Vec<(String, Pipeline)>, MongoError> {
    let Bson::Document(d) = arg else {
        return Err(MongoError::location(
            15947,
            "the $facet specification must be a non-empty object",
        ));
    };
    if d.is_empty() {
        return Err(MongoError::location(
            40169,
            "the $facet specification must be a non-empty object",
        ));
    }
    let mut out = Vec::new();
    for (k, v) in d {
        field_path(k)?;
        if k.contains('.') {
            return Err(MongoError::location(
                40173,
                format!("facet field names cannot contain '.': {k}"),
            ));
        }
        let Bson::Array(items) = v else {
            return Err(MongoError::location(
                40170,
                format!(
                    "arguments to $facet must be arrays, {k} is type {}",
                    type_name(v)
                ),
            ));
        };
        if items.is_empty() {
            return Err(MongoError::bad_value(
                "sub-pipeline in $facet stage cannot be empty",
            ));
        }
        out.push((k.clone(), sub_pipeline(v, k, vars, Mode::Facet)?));
    }
    Ok(out)
}

pub(super) fn parse_union_with(arg: &Bson, vars: &[String]) -> Result<UnionWith, MongoError> {
    match arg {
        Bson::String(s) => Ok(UnionWith {
            db: None,
            coll: Some(s.clone()),
            pipeline: None,
        }),
        Bson::Document(d) => {
            let mut u = UnionWith {
                db: None,
                coll: None,
                pipeline: None,
            };
            for (k, v) in d {
                match k.as_str() {
                    "coll" => {
                        let (db, coll) = namespace_arg(v, "$unionWith.coll")?;
                        u.db = db;
                        u.coll = Some(coll);
                    }
                    "pipeline" => u.pipeline = Some(sub_pipeline(v, "pipeline", vars, Mode::Sub)?),
                    other => {
                        return Err(MongoError::location(
                            location::UNKNOWN_FIELD,
                            format!("BSON field '$unionWith.{other}' is an unknown field."),
                        ))
                    }
                }
            }
            if u.coll.is_none() && u.pipeline.is_none() {
                return Err(MongoError::failed_to_parse(
                    "$unionWith stage without explicit collection must have a pipeline with $documents as first stage",
                ));
            }
            Ok(u)
        }
        other => Err(MongoError::failed_to_parse(format!(
            "the $unionWith stage specification must be an object or string, but found {}",
            type_name(other)
        ))),
    }
}

/// Every value at a path, through arrays, with leaf arrays flattened
/// (`document_path_support::visitAllValuesAtPath`).
fn values_at_path(doc: &Document, path: &[String], out: &mut Vec<Bson>) {
    fn walk(v: &Bson, rest: &[String], out: &mut Vec<Bson>) {
        match (v, rest.split_first()) {
            (Bson::Array(items), None) => out.extend(items.iter().cloned()),
            (other, None) => out.push(other.clone()),
            (Bson::Document(d), Some((first, tail))) => {
                if let Some(v) = d.get(first) {
                    walk(v, tail, out);
                }
            }
            (Bson::Array(items), Some(_)) => {
                for i in items {
                    if matches!(i, Bson::Document(_) | Bson::Array(_)) {
                        walk(i, rest, out);
                    }
                }
            }
            _ => {}
        }
    }
    walk(&Bson::Document(doc.clone()), path, out);
}

pub(super) fn lookup(
    l: &Lookup,
    docs: Vec<Document>,
    ctx: &mut dyn Context,
    env: &Env,
) -> Result<Vec<Document>, MongoError> {
    let db = l.from_db.clone().unwrap_or_else(|| ctx.db().to_owned());
    let from = l.from.clone().unwrap_or_default();
    let foreign = ctx.collection(&db, &from)?;
    let local_path: Option<Vec<String>> = l
        .local_field
        .as_ref()
        .map(|f| f.split('.').map(str::to_owned).collect());
    let mut out = Vec::with_capacity(docs.len());
    for mut d in docs {
        let mut candidates: Vec<Document> = match (&local_path, &l.foreign_field) {
            (Some(lp), Some(ff)) => {
                let mut values = Vec::new();
                values_at_path(&d, lp, &mut values);
                if values.is_empty() {
                    values.push(Bson::Null);
                }
                // Regexes compare as values, not patterns, in a join.
                let in_values: Vec<Bson> = values
                    .into_iter()
                    .filter(|v| !matches!(v, Bson::RegularExpression(_)))
                    .collect();
                // Equality under the pipeline's collation, as mongod joins.
                let filter = Filter::parse(&bson::doc! {ff.clone(): {"$in": in_values}})?
                    .collated(env.collation.as_ref());
                foreign
                    .iter()
                    .filter(|f| filter.matches(f))
                    .cloned()
                    .collect()
            }
            _ => foreign.clone(),
        };
        if let Some(p) = &l.pipeline {
            let mut sub_env = env.clone();
            for (k, e) in &l.let_vars {
                let v = e.evaluate(&d, env)?.unwrap_or(Bson::Null);
                sub_env.vars.push((k.clone(), v));
            }
            let mut sub = SubContext {
                inner: ctx,
                env: sub_env,
            };
            candidates = p.run(candidates, &mut sub)?;
        }
        set_nested(
            &mut d,
            &l.as_field,
            Bson::Array(candidates.into_iter().map(Bson::Document).collect()),
        );
        out.push(d);
    }
    Ok(out)
}

/// A parsed `$graphLookup` (mongod 7.0 `document_source_graph_lookup.cpp`).
#[derive(Debug, Clone)]
pub(super) struct GraphLookup {
    from: String,
    as_field: Vec<String>,
    start_with: Expr,
    connect_from: Vec<String>,
    connect_to: String,
    depth_field: Option<Vec<String>>,
    max_depth: Option<i64>,
    restrict: Option<Document>,
}

pub(super) fn parse_graph_lookup(arg: &Bson, vars: &[String]) -> Result<GraphLookup, MongoError> {
    let Bson::Document(d) = arg else {
        return Err(MongoError::location(
            10065,
            "invalid parameter: expected an object ($graphLookup)",
        ));
    };
    let (mut from, mut as_name, mut start_with, mut connect_from, mut connect_to) =
        (None, None, None, None, None);
    let (mut depth_field, mut max_depth, mut restrict) = (None, None, None);
    for (k, v) in d {
        match k.as_str() {
            "startWith" => {
                start_with = Some(Expr::parse_with_vars(v, vars)?);
                continue;
            }
            "maxDepth" => {
                if !crate::cmp::is_number(v) {
                    return Err(MongoError::location(
                        40100,
                        format!("maxDepth must be numeric, found type: {}", type_name(v)),
                    ));
                }
                let x = crate::util::number_as_f64(v).unwrap_or(f64::NAN);
                let n = x as i64;
                if n < 0 {
                    return Err(MongoError::location(
                        40101,
                        format!("maxDepth requires a nonnegative argument, found: {n}"),
                    ));
                }
                if n as f64 != x {
                    return Err(MongoError::location(
                        40102,
                        format!("maxDepth could not be represented as a long long: {n}"),
                    ));
                }
                max_depth = Some(n);
                continue;
            }
            "restrictSearchWithMatch" => {
                let Bson::Document(m) = v else {
                    return Err(MongoError::location(
                        40185,
                        format!(
                            "restrictSearchWithMatch must be an object, found {}",
                            type_name(v)
                        ),
                    ));
                };
                Filter::parse(m).map_err(|e| MongoError {
                    message: format!(
                        "Failed to parse 'restrictSearchWithMatch' option to $graphLookup :: caused by :: {}",
                        e.message
                    ),
                    ..e
                })?;
                restrict = Some(m.clone());
                continue;
            }
            _ => {}
        }
        let string = |what: &str| match v {
            Bson::String(s) => Ok(s.clone()),
            Bson::Document(_) if what == "from" => Err(MongoError::failed_to_parse(format!(
                "$graphLookup with syntax {{from: {{db:<>, coll:<>}},..}} is not supported for {}",
                bson_to_string(v)
            ))),
            other => Err(MongoError::location(
                40103,
                format!(
                    "expected string as argument for {what}, found: {}",
                    type_name(other)
                ),
            )),
        };
        match k.as_str() {
            "from" => from = Some(string("from")?),
            "as" => as_name = Some(string("as")?),
            "connectFromField" => connect_from = Some(string("connectFromField")?),
            "connectToField" => connect_to = Some(string("connectToField")?),
            "depthField" => depth_field = Some(field_path(&string("depthField")?)?),
            other => {
                return Err(MongoError::location(
                    40104,
                    format!("Unknown argument to $graphLookup: {other}"),
                ))
            }
        }
    }
    let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
    let (Some(from), Some(as_name), Some(start_with), Some(connect_from), Some(connect_to)) = (
        nonempty(from),
        nonempty(as_name),
        start_with,
        nonempty(connect_from),
        nonempty(connect_to),
    ) else {
        return Err(MongoError::location(
            40105,
            "$graphLookup requires 'from', 'as', 'startWith', 'connectFromField', and 'connectToField' to be specified.",
        ));
    };
    field_path(&connect_to)?;
    Ok(GraphLookup {
        from,
        as_field: field_path(&as_name)?,
        start_with,
        connect_from: field_path(&connect_from)?,
        connect_to,
        depth_field,
        max_depth,
        restrict,
    })
}

/// `$graphLookup`: a breadth-first search of `from`, each round matching
/// `connectToField` against the values of the previous round's `connectFromField`
/// (and `restrictSearchWithMatch`); every document found once, at its first depth.
pub(super) fn graph_lookup(
    g: &GraphLookup,
    docs: Vec<Document>,
    ctx: &mut dyn Context,
    env: &Env,
) -> Result<Vec<Document>, MongoError> {
    let db = ctx.db().to_owned();
    let foreign = ctx.collection(&db, &g.from)?;
    let mut out = Vec::with_capacity(docs.len());
    for mut d in docs {
        let mut frontier: Vec<Bson> = match g.start_with.evaluate(&d, env)? {
            Some(Bson::Array(items)) => items,
            Some(v) => vec![v],
            None => Vec::new(),
        };
        let mut queried: Vec<Bson> = Vec::new();
        let mut found: std::collections::HashSet<usize> = std::collections::HashSet::new();
        let mut results: Vec<Document> = Vec::new();
        let mut depth: i64 = 0;
        while !frontier.is_empty() && g.max_depth.is_none_or(|m| depth <= m) {
            ctx.interrupted()?;
            // Values already searched for are not searched again (cycles end).
            let values: Vec<Bson> = frontier
                .drain(..)
                .filter(|v| !matches!(v, Bson::RegularExpression(_)))
                .filter(|v| !queried.iter().any(|q| env.equal(q, v)))
                .collect();
            if values.is_empty() {
                break;
            }
            queried.extend(values.iter().cloned());
            let mut query = bson::doc! {g.connect_to.clone(): {"$in": values}};
            if let Some(r) = &g.restrict {
                query = bson::doc! {"$and": [query, r.clone()]};
            }
            let filter = Filter::parse(&query)?.collated(env.collation.as_ref());
            for (i, f) in foreign.iter().enumerate() {
                if found.contains(&i) || !filter.matches(f) {
                    continue;
                }
                found.insert(i);
                values_at_path(f, &g.connect_from, &mut frontier);
                let mut r = f.clone();
                if let Some(p) = &g.depth_field {
                    set_nested(&mut r, p, Bson::Int64(depth));
                }
                results.push(r);
            }
            depth += 1;
        }
        set_nested(
            &mut d,
            &g.as_field,
            Bson::Array(results.into_iter().map(Bson::Document).collect()),
        );
        out.push(d);
    }
    Ok(out)
}

/// `$facet`: one document with each sub-pipeline's results over the same input.
pub(super) fn facet(
    facets: &[(String, Pipeline)],
    docs: Vec<Document>,
    ctx: &mut dyn Context,
) -> Result<Vec<Document>, MongoError> {
    let mut out = Document::new();
    for (name, p) in facets {
        let res = p.run(docs.clone(), ctx)?;
        out.insert(
            name.clone(),
            res.into_iter().map(Bson::Document).collect::<Vec<_>>(),
        );
    }
    Ok(vec![out])
}

/// `$unionWith`: the input, then the other collection's documents through its pipeline.
pub(super) fn union_with(
    u: &UnionWith,
    docs: Vec<Document>,
    ctx: &mut dyn Context,
) -> Result<Vec<Document>, MongoError> {
    let db = u.db.clone().unwrap_or_else(|| ctx.db().to_owned());
    let other = match &u.coll {
        Some(c) => ctx.collection(&db, c)?,
        None => Vec::new(),
    };
    let other = match &u.pipeline {
        Some(p) => p.run(other, ctx)?,
        None => other,
    };
    let mut docs = docs;
    docs.extend(other);
    Ok(docs)
}

/// A context with extra variables (`$lookup`'s `let`).
struct SubContext<'a> {
    inner: &'a mut dyn Context,
    env: Env,
}

impl Context for SubContext<'_> {
    fn collection(&mut self, db: &str, coll: &str) -> Result<Vec<Document>, MongoError> {
        self.inner.collection(db, coll)
    }
    fn db(&self) -> &str {
        self.inner.db()
    }
    fn env(&self) -> &Env {
        &self.env
    }
    fn coll_stats(&mut self, spec: &CollStats) -> Result<Document, MongoError> {
        self.inner.coll_stats(spec)
    }
    fn index_stats(&mut self) -> Result<Vec<Document>, MongoError> {
        self.inner.index_stats()
    }
    fn local_sessions(
        &mut self,
        users: Option<&[(String, String)]>,
    ) -> Result<Vec<Document>, MongoError> {
        self.inner.local_sessions(users)
    }
    fn current_ops(&mut self, spec: &super::CurrentOpSpec) -> Result<Vec<Document>, MongoError> {
        self.inner.current_ops(spec)
    }
}
