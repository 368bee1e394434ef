//! The stages that reshape each document on its own: `$match`, `$project`, `$unset`,
//! `$addFields`/`$set`, `$replaceRoot`/`$replaceWith` and `$redact` (mongod 7.0
//! `document_source_match.cpp`, `document_source_project.cpp`,
//! `document_source_add_fields.cpp`, `document_source_replace_root.cpp`,
//! `document_source_redact.cpp`).

use bson::{Bson, Document};
use eddy_codes::{location, ErrorCode, MongoError};

use crate::expr::{Env, Expr, DESCEND, KEEP, PRUNE};
use crate::filter::Filter;
use crate::projection::{field_path, Projection};
use crate::util::{self, bson_to_string, type_name};

/// A `$match`: the matcher, plus top-level `$expr`s parsed here so they see the
/// pipeline's variables (the matcher's own `$expr` knows none).
#[derive(Debug, Clone)]
pub(super) struct Match {
    pub(super) filter: Filter,
    exprs: Vec<Expr>,
}

impl Match {
    pub(super) fn parse(spec: &Document, vars: &[String]) -> Result<Match, MongoError> {
        let mut rest = Document::new();
        let mut exprs = Vec::new();
        for (k, v) in spec {
            if k == "$expr" && !vars.is_empty() {
                exprs.push(Expr::parse_with_vars(v, vars)?);
            } else {
                rest.insert(k.clone(), v.clone());
            }
        }
        Ok(Match {
            filter: Filter::parse_match(&rest)?,
            exprs,
        })
    }

    pub(super) fn matches(&self, doc: &Document, env: &Env) -> Result<bool, MongoError> {
        if self.filter.text().is_some() {
            // Only the engine's text plan answers `$text`, when it reads the collection.
            return Err(MongoError::new(
                ErrorCode::IndexNotFound,
                "text index required for $text query",
            ));
        }
        for e in &self.exprs {
            if !e.evaluate(doc, env)?.as_ref().is_some_and(util::true_value) {
                return Ok(false);
            }
        }
        Ok(self.filter.matches(doc))
    }
}

/// `$addFields`/`$set`: computed fields by path, set in specification order.
#[derive(Debug, Clone, Default)]
pub(super) struct AddFields {
    children: Vec<(String, AddNode)>,
}

#[derive(Debug, Clone)]
enum AddNode {
    Value(Expr),
    Tree(AddFields),
}

impl AddFields {
    pub(super) fn parse(
        stage: &str,
        spec: &Bson,
        vars: &[String],
    ) -> Result<AddFields, MongoError> {
        let Bson::Document(spec) = spec else {
            return Err(MongoError::location(
                40272,
                format!(
                    "{stage} specification stage must be an object, got {}",
                    type_name(spec)
                ),
            ));
        };
        let mut root = AddFields::default();
        for (k, v) in spec {
            let path = field_path(k)?;
            root.insert(&path, v, vars)?;
        }
        Ok(root)
    }

    fn insert(&mut self, path: &[String], v: &Bson, vars: &[String]) -> Result<(), MongoError> {
        let Some((first, rest)) = path.split_first() else {
            return Ok(());
        };
        let collision = || {
            MongoError::location(
                31250,
                format!("Invalid $addFields :: caused by :: Path collision at {first}"),
            )
        };
        if rest.is_empty() {
            let node = match v {
                Bson::Document(d) if !d.is_empty() && !d.keys().any(|k| k.starts_with('$')) => {
                    let mut sub = AddFields::default();
                    for (k, v) in d {
                        sub.insert(&field_path(k)?, v, vars)?;
                    }
                    AddNode::Tree(sub)
                }
                other => AddNode::Value(Expr::parse_with_vars(other, vars)?),
            };
            if self.children.iter().any(|(k, _)| k == first) {
                return Err(collision());
            }
            self.children.push((first.clone(), node));
            return Ok(());
        }
        match self.children.iter_mut().find(|(k, _)| k == first) {
            Some((_, AddNode::Tree(t))) => t.insert(rest, v, vars),
            Some(_) => Err(collision()),
            None => {
                let mut t = AddFields::default();
                t.insert(rest, v, vars)?;
                self.children.push((first.clone(), AddNode::Tree(t)));
                Ok(())
            }
        }
    }

    pub(super) fn apply(&self, doc: &Document, env: &Env) -> Result<Document, MongoError> {
        let mut out = doc.clone();
        self.apply_into(&mut out, doc, env)?;
        Ok(out)
    }

    fn apply_into(&self, out: &mut Document, root: &Document, env: &Env) -> Result<(), MongoError> {
        for (k, node) in &self.children {
            let value = match node {
                AddNode::Value(e) => e.evaluate(root, env)?,
                AddNode::Tree(t) => Some(t.apply_value(out.get(k), root, env)?),
            };
            crate::util::set_or_remove(out, k, value);
        }
        Ok(())
    }

    fn apply_value(
        &self,
        current: Option<&Bson>,
        root: &Document,
        env: &Env,
    ) -> Result<Bson, MongoError> {
        Ok(match current {
            Some(Bson::Document(d)) => {
                let mut d = d.clone();
                self.apply_into(&mut d, root, env)?;
                Bson::Document(d)
            }
            Some(Bson::Array(items)) => Bson::Array(
                items
                    .iter()
                    .map(|e| self.apply_value(Some(e), root, env))
                    .collect::<Result<_, _>>()?,
            ),
            _ => {
                let mut d = Document::new();
                self.apply_into(&mut d, root, env)?;
                Bson::Document(d)
            }
        })
    }
}

/// `$replaceRoot`'s `{newRoot: <expression>}`.
pub(super) fn parse_replace_root(arg: &Bson, vars: &[String]) -> Result<Expr, MongoError> {
    let Bson::Document(d) = arg else {
        return Err(MongoError::location(
            40229,
            format!(
                "expected an object as specification for $replaceRoot stage, got {}",
                type_name(arg)
            ),
        ));
    };
    let mut new_root = None;
    for (k, v) in d {
        if k == "newRoot" {
            new_root = Some(Expr::parse_with_vars(v, vars)?);
        } else {
            return Err(MongoError::location(
                location::UNKNOWN_FIELD,
                format!("BSON field '$replaceRoot.{k}' is an unknown field."),
            ));
        }
    }
    let Some(e) = new_root else {
        return Err(MongoError::location(
            location::MISSING_FIELD,
            "BSON field '$replaceRoot.newRoot' is missing but a required field",
        ));
    };
    Ok(e)
}

pub(super) fn parse_unset(arg: &Bson) -> Result<Projection, MongoError> {
    let names: Vec<&String> = match arg {
        Bson::String(s) => vec![s],
        Bson::Array(items) => items
            .iter()
            .map(|i| match i {
                Bson::String(s) => Ok(s),
                _ => Err(MongoError::location(
                    31120,
                    "$unset specification must be a string or an array containing only string values",
                )),
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(MongoError::location(
                31002,
                "$unset specification must be a string or an array",
            ))
        }
    };
    if names.is_empty() {
        return Err(MongoError::location(
            31119,
            "$unset specification must be a string or an array with at least one field",
        ));
    }
    let mut spec = Document::new();
    for n in names {
        field_path(n)?;
        spec.insert(n.clone(), 0);
    }
    Projection::parse_aggregation(&spec).map_err(|mut e| {
        e.message = e.message.replace("Invalid $project", "Invalid $unset");
        e
    })
}

pub(super) fn replace_root(
    e: &Expr,
    what: &str,
    doc: &Document,
    env: &Env,
) -> Result<Document, MongoError> {
    match e.evaluate(doc, env)? {
        Some(Bson::Document(mut d)) => {
            // Metadata stays with the document, as in mongod.
            crate::meta::carry(doc, &mut d);
            Ok(d)
        }
        other => {
            let shown = other.as_ref().map_or("missing".to_owned(), bson_to_string);
            let ty = other.as_ref().map_or("missing", type_name);
            Err(MongoError::location(
                40228,
                format!(
                    "'{what}' must evaluate to an object, but resulting value was: {shown}. Type of resulting value: '{ty}'. Input document: {}",
                    bson_to_string(&Bson::Document(doc.clone()))
                ),
            ))
        }
    }
}

/// `$redact`: `$$DESCEND` keeps the level and recurses into sub-documents (and
/// documents in arrays). Divergence: sub-documents are evaluated with `$$ROOT` set to
/// the sub-document too (the expression module binds both to one document).
pub(super) fn redact(e: &Expr, doc: Document, env: &Env) -> Result<Option<Document>, MongoError> {
    let decision = e.evaluate(&doc, env)?;
    match decision {
        Some(Bson::String(s)) if s == KEEP => Ok(Some(doc)),
        Some(Bson::String(s)) if s == PRUNE => Ok(None),
        Some(Bson::String(s)) if s == DESCEND => {
            let mut out = Document::new();
            for (k, v) in doc {
                if let Some(v) = redact_value(e, v, env)? {
                    out.insert(k, v);
                }
            }
            Ok(Some(out))
        }
        other => Err(MongoError::location(
            17053,
            format!(
                "$redact's expression should not return anything aside from the variables $$KEEP, $$DESCEND, and $$PRUNE, but returned {}",
                other.as_ref().map_or("MISSING".to_owned(), bson_to_string)
            ),
        )),
    }
}

fn redact_value(e: &Expr, v: Bson, env: &Env) -> Result<Option<Bson>, MongoError> {
    match v {
        Bson::Document(d) => Ok(redact(e, d, env)?.map(Bson::Document)),
        Bson::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for i in items {
                match i {
                    Bson::Document(d) => {
                        if let Some(d) = redact(e, d, env)? {
                            out.push(Bson::Document(d));
                        }
                    }
                    Bson::Array(_) => {
                        if let Some(v) = redact_value(e, i, env)? {
                            out.push(v);
                        }
                    }
                    other => out.push(other),
                }
            }
            Ok(Some(Bson::Array(out)))
        }
        other => Ok(Some(other)),
    }
}
