//! The final stages that write: `$out` and `$merge` (mongod 7.0
//! `document_source_out.cpp`, `document_source_merge.cpp`). They are parsed here and
//! performed by the caller ([`super::Pipeline::writes`]).

use bson::{Bson, Document};
use eddy_codes::{location, ErrorCode, MongoError};

use super::join::{namespace_arg, parse_let};
use super::Pipeline;
use crate::expr::{Env, Expr};
use crate::util::{bson_to_string, type_name};

/// A final stage that writes, performed by the caller.
#[derive(Debug, Clone)]
pub enum Output {
    /// `$out`: replace `db.coll` by the results; `timeseries` (7.0.3+, as given) makes
    /// or checks a time-series target.
    Out {
        db: Option<String>,
        coll: String,
        timeseries: Option<Document>,
    },
    /// `$merge` into a collection.
    Merge(MergeSpec),
}

/// `$merge`'s specification.
#[derive(Debug, Clone)]
pub struct MergeSpec {
    /// The target database; `None` is the command's database.
    pub db: Option<String>,
    pub coll: String,
    /// The fields identifying a target document (`_id` by default).
    pub on: Vec<String>,
    pub when_matched: WhenMatched,
    pub when_not_matched: WhenNotMatched,
    /// `let` for a pipeline `whenMatched` (default `{new: "$$ROOT"}`), unevaluated.
    pub let_vars: Vec<(String, Expr)>,
}

/// `$merge`'s `whenMatched`.
#[derive(Debug, Clone)]
pub enum WhenMatched {
    Replace,
    KeepExisting,
    Merge,
    Fail,
    /// An update pipeline run on the existing document.
    Pipeline(Box<Pipeline>),
}

/// `$merge`'s `whenNotMatched`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenNotMatched {
    Insert,
    Discard,
    Fail,
}

/// What `$merge` does with one result document.
#[derive(Debug, Clone, PartialEq)]
pub enum MergeAction {
    /// Insert this document.
    Insert(Document),
    /// Replace the matched document by this one (same `_id`).
    Replace(Document),
    /// `$set` these fields on the matched document.
    Set(Document),
    /// Leave the target alone.
    Nothing,
}

pub(super) fn parse_out(arg: &Bson) -> Result<Output, MongoError> {
    match arg {
        Bson::String(s) if !s.is_empty() => Ok(Output::Out {
            db: None,
            coll: s.clone(),
            timeseries: None,
        }),
        Bson::Document(spec) => {
            let (db, coll) = namespace_arg(arg, "$out")?;
            let timeseries = match spec.get("timeseries") {
                None => None,
                Some(Bson::Document(ts)) => Some(ts.clone()),
                Some(other) => {
                    return Err(MongoError::type_mismatch(format!(
                    "BSON field '$out.timeseries' is the wrong type '{}', expected type 'object'",
                    type_name(other)
                )))
                }
            };
            Ok(Output::Out {
                db,
                coll,
                timeseries,
            })
        }
        Bson::String(_) => Err(MongoError::new(
            ErrorCode::InvalidNamespace,
            "Invalid $out target namespace, ''",
        )),
        other => Err(MongoError::location(
            16990,
            format!(
                "$out only supports a string or object argument, but found {}",
                type_name(other)
            ),
        )),
    }
}

pub(super) fn parse_merge(arg: &Bson, vars: &[String]) -> Result<MergeSpec, MongoError> {
    let mut m = MergeSpec {
        db: None,
        coll: String::new(),
        on: vec!["_id".to_owned()],
        when_matched: WhenMatched::Merge,
        when_not_matched: WhenNotMatched::Insert,
        let_vars: Vec::new(),
    };
    match arg {
        Bson::String(s) => m.coll = s.clone(),
        Bson::Document(d) => {
            let mut into = None;
            let mut raw_let = None;
            for (k, v) in d {
                match k.as_str() {
                    "into" => into = Some(namespace_arg(v, "$merge.into")?),
                    "on" => {
                        m.on = match v {
                            Bson::String(s) => vec![s.clone()],
                            Bson::Array(items) if !items.is_empty() => items
                                .iter()
                                .map(|i| match i {
                                    Bson::String(s) => Ok(s.clone()),
                                    _ => Err(MongoError::location(
                                        51134,
                                        "$merge 'on' array elements must be strings",
                                    )),
                                })
                                .collect::<Result<_, _>>()?,
                            Bson::Array(_) => {
                                return Err(MongoError::location(
                                    51187,
                                    "If explicitly specifying $merge 'on', must include at least one field",
                                ))
                            }
                            _ => {
                                return Err(MongoError::location(
                                    51186,
                                    "$merge 'on' field  must be either a string or an array of strings",
                                ))
                            }
                        }
                    }
                    "whenMatched" => {
                        m.when_matched = match v {
                            Bson::String(s) => match s.as_str() {
                                "replace" => WhenMatched::Replace,
                                "keepExisting" => WhenMatched::KeepExisting,
                                "merge" => WhenMatched::Merge,
                                "fail" => WhenMatched::Fail,
                                other => {
                                    return Err(MongoError::bad_value(format!(
                                        "Enumeration value '{other}' for field 'whenMatched' is not a valid value."
                                    )))
                                }
                            },
                            // Parsed below, once `let` is known.
                            Bson::Array(_) => WhenMatched::Pipeline(Box::default()),
                            other => {
                                return Err(MongoError::type_mismatch(format!(
                                    "BSON field '$merge.whenMatched' is the wrong type '{}', expected types '[string, array]'",
                                    type_name(other)
                                )))
                            }
                        };
                    }
                    "whenNotMatched" => {
                        m.when_not_matched = match v {
                            Bson::String(s) => match s.as_str() {
                                "insert" => WhenNotMatched::Insert,
                                "discard" => WhenNotMatched::Discard,
                                "fail" => WhenNotMatched::Fail,
                                other => {
                                    return Err(MongoError::bad_value(format!(
                                        "Enumeration value '{other}' for field 'whenNotMatched' is not a valid value."
                                    )))
                                }
                            },
                            other => {
                                return Err(MongoError::type_mismatch(format!(
                                    "BSON field '$merge.whenNotMatched' is the wrong type '{}', expected type 'string'",
                                    type_name(other)
                                )))
                            }
                        }
                    }
                    "let" => raw_let = Some(v),
                    other => {
                        return Err(MongoError::location(
                            location::UNKNOWN_FIELD,
                            format!("BSON field '$merge.{other}' is an unknown field."),
                        ))
                    }
                }
            }
            let Some((db, coll)) = into else {
                return Err(MongoError::location(
                    location::MISSING_FIELD,
                    "BSON field '$merge.into' is missing but a required field",
                ));
            };
            m.db = db;
            m.coll = coll;
            let mut let_names: Vec<String> = vars.to_vec();
            match raw_let {
                Some(v) => {
                    m.let_vars = parse_let(v, vars)?;
                    let_names.extend(m.let_vars.iter().map(|(k, _)| k.clone()));
                }
                None => {
                    m.let_vars = vec![(
                        "new".to_owned(),
                        Expr::parse(&Bson::String("$$ROOT".into()))?,
                    )];
                    let_names.push("new".to_owned());
                }
            }
            if let Some(Bson::Array(items)) = d.get("whenMatched") {
                let stages = items
                    .iter()
                    .map(|s| match s {
                        Bson::Document(d) => Ok(d.clone()),
                        _ => Err(MongoError::type_mismatch(
                            "Each element of the 'whenMatched' pipeline must be an object",
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                m.when_matched =
                    WhenMatched::Pipeline(Box::new(Pipeline::parse_update(&stages, &let_names)?));
            } else if raw_let.is_some() {
                return Err(MongoError::location(
                    51199,
                    "Cannot use 'let' variables with 'whenMatched: merge' mode",
                ));
            }
        }
        other => {
            return Err(MongoError::location(
                51182,
                format!(
                    "$merge only supports a string or object argument, not {}",
                    type_name(other)
                ),
            ))
        }
    }
    if m.coll.is_empty() {
        return Err(MongoError::new(
            ErrorCode::InvalidNamespace,
            "Invalid $merge target namespace: ''",
        ));
    }
    Ok(m)
}

impl MergeSpec {
    /// The filter finding the target document of `doc` (its `on` fields); 51132 when
    /// one of them is missing, null, undefined or an array. `_id` may be missing (the
    /// document is then inserted with a new one).
    pub fn target_filter(&self, doc: &Document) -> Result<Option<Document>, MongoError> {
        let mut f = Document::new();
        for field in &self.on {
            match crate::path::get_path(doc, field) {
                None if field == "_id" && self.on.len() == 1 => return Ok(None),
                None | Some(Bson::Null | Bson::Undefined | Bson::Array(_)) => {
                    return Err(MongoError::location(
                        51132,
                        format!(
                            "$merge write error: 'on' field '{field}' cannot be missing, null, undefined or an array"
                        ),
                    ))
                }
                Some(v) => {
                    f.insert(field.clone(), bson::doc! {"$eq": v.clone()});
                }
            }
        }
        Ok(Some(f))
    }

    /// What to write for result `doc` given the target document it matched.
    pub fn merge(
        &self,
        doc: Document,
        existing: Option<&Document>,
        env: &Env,
    ) -> Result<MergeAction, MongoError> {
        let Some(existing) = existing else {
            return match self.when_not_matched {
                WhenNotMatched::Insert => Ok(MergeAction::Insert(doc)),
                WhenNotMatched::Discard => Ok(MergeAction::Nothing),
                WhenNotMatched::Fail => Err(MongoError::location(
                    13113,
                    "$merge could not find a matching document in the target collection for at least one document in the source collection",
                )),
            };
        };
        let with_id = |mut d: Document| {
            if let Some(id) = existing.get("_id") {
                if !d.contains_key("_id") {
                    let mut out = bson::doc! {"_id": id.clone()};
                    out.extend(d);
                    d = out;
                }
            }
            d
        };
        match &self.when_matched {
            WhenMatched::Replace => Ok(MergeAction::Replace(with_id(doc))),
            WhenMatched::KeepExisting => Ok(MergeAction::Nothing),
            WhenMatched::Merge => {
                let mut set = doc;
                set.remove("_id");
                Ok(MergeAction::Set(set))
            }
            WhenMatched::Fail => {
                // mongod inserts and lets the unique index on the `on` fields refuse:
                // the error names that index's key pattern and the duplicate values.
                let mut pattern = Document::new();
                let mut value = Document::new();
                for field in &self.on {
                    pattern.insert(field.clone(), 1);
                    let v = crate::path::get_path(&doc, field)
                        .cloned()
                        .unwrap_or(Bson::Null);
                    value.insert(field.clone(), v);
                }
                Err(MongoError::new(
                    ErrorCode::DuplicateKey,
                    format!(
                        "$merge failed due to a DuplicateKey error :: caused by :: E11000 duplicate key error dup key: {}",
                        bson_to_string(&Bson::Document(value.clone()))
                    ),
                )
                .with_extra(bson::doc! {"keyPattern": pattern, "keyValue": value}))
            }
            WhenMatched::Pipeline(p) => {
                let mut env = env.clone();
                for (k, e) in &self.let_vars {
                    let v = e.evaluate(&doc, &env)?.unwrap_or(Bson::Null);
                    env.vars.push((k.clone(), v));
                }
                let out = p.apply_one(existing.clone(), &env)?.unwrap_or_default();
                Ok(MergeAction::Replace(with_id(out)))
            }
        }
    }
}
