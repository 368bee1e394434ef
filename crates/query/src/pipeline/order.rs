//! The stages that order, cut, count or multiply documents: `$sort`, `$limit`,
//! `$skip`, `$sample`, `$count`, `$sortByCount` and `$unwind` (mongod 7.0
//! `document_source_sort.cpp`, `document_source_limit.cpp`, `document_source_skip.cpp`,
//! `document_source_sample.cpp`, `document_source_count.cpp`,
//! `document_source_sort_by_count.cpp`, `document_source_unwind.cpp`).

use bson::{Bson, Document};
use eddy_codes::MongoError;

use super::set_nested;
use crate::expr::Expr;
use crate::projection::field_path;
use crate::sort::SortSpec;
use crate::util::{self, type_name};

#[derive(Debug, Clone)]
pub(super) struct Unwind {
    path: Vec<String>,
    include_array_index: Option<String>,
    preserve: bool,
}

pub(super) fn parse_count(arg: &Bson) -> Result<String, MongoError> {
    let Bson::String(s) = arg else {
        return Err(MongoError::location(
            40156,
            "the count field must be a non-empty string",
        ));
    };
    if s.is_empty() {
        return Err(MongoError::location(
            40157,
            "the count field must be a non-empty string",
        ));
    }
    if s.starts_with('$') {
        return Err(MongoError::location(
            40158,
            "the count field cannot be a $-prefixed path",
        ));
    }
    if s.contains('\0') {
        return Err(MongoError::location(
            40159,
            "the count field cannot contain a null byte",
        ));
    }
    if s.contains('.') {
        return Err(MongoError::location(
            40160,
            "the count field cannot contain '.'",
        ));
    }
    Ok(s.clone())
}

pub(super) fn parse_unwind(arg: &Bson) -> Result<Unwind, MongoError> {
    let (path, index, preserve) = match arg {
        Bson::String(s) => (s.clone(), None, false),
        Bson::Document(d) => {
            let mut path = None;
            let mut index = None;
            let mut preserve = false;
            for (k, v) in d {
                match k.as_str() {
                    "path" => match v {
                        Bson::String(s) => path = Some(s.clone()),
                        other => {
                            return Err(MongoError::location(
                                28808,
                                format!(
                                    "expected a string as the path for $unwind stage, got {}",
                                    type_name(other)
                                ),
                            ))
                        }
                    },
                    "preserveNullAndEmptyArrays" => match v {
                        Bson::Boolean(b) => preserve = *b,
                        other => {
                            return Err(MongoError::location(
                                28809,
                                format!(
                                    "expected a boolean for the preserveNullAndEmptyArrays option to $unwind stage, got {}",
                                    type_name(other)
                                ),
                            ))
                        }
                    },
                    "includeArrayIndex" => match v {
                        Bson::String(s) if !s.is_empty() => {
                            if s.starts_with('$') {
                                return Err(MongoError::location(
                                    28822,
                                    format!(
                                        "includeArrayIndex option to $unwind stage should not be prefixed with a '$': {s}"
                                    ),
                                ));
                            }
                            index = Some(s.clone());
                        }
                        other => {
                            return Err(MongoError::location(
                                28810,
                                format!(
                                    "expected a non-empty string for the includeArrayIndex  option to $unwind stage, got {}",
                                    type_name(other)
                                ),
                            ))
                        }
                    },
                    other => {
                        return Err(MongoError::location(
                            28811,
                            format!("unrecognized option to $unwind stage: {other}"),
                        ))
                    }
                }
            }
            let Some(path) = path else {
                return Err(MongoError::location(
                    28812,
                    "no path specified to $unwind stage",
                ));
            };
            (path, index, preserve)
        }
        other => {
            return Err(MongoError::location(
                15981,
                format!(
                "expected either a string or an object as specification for $unwind stage, got {}",
                type_name(other)
            ),
            ))
        }
    };
    let Some(stripped) = path.strip_prefix('$') else {
        return Err(MongoError::location(
            28818,
            format!("path option to $unwind stage should be prefixed with a '$': {path}"),
        ));
    };
    let index = match index {
        Some(i) => {
            field_path(&i)?;
            Some(i)
        }
        None => None,
    };
    Ok(Unwind {
        path: field_path(stripped)?,
        include_array_index: index,
        preserve,
    })
}

pub(super) fn parse_sort_by_count(arg: &Bson, vars: &[String]) -> Result<Expr, MongoError> {
    match arg {
        Bson::String(s) if s.starts_with('$') => Expr::parse_with_vars(arg, vars),
        Bson::String(_) => Err(MongoError::location(
            40148,
            "the sortByCount field must be defined as a $-prefixed path or an expression",
        )),
        Bson::Document(d) if d.keys().next().is_some_and(|k| k.starts_with('$')) => {
            Expr::parse_with_vars(arg, vars)
        }
        Bson::Document(_) => Err(MongoError::location(
            40147,
            "the sortByCount field must be specified as an object that is an expression",
        )),
        _ => Err(MongoError::location(
            40149,
            "the sortByCount field must be specified as a string or as an object",
        )),
    }
}

pub(super) fn parse_sample(arg: &Bson) -> Result<usize, MongoError> {
    let Bson::Document(d) = arg else {
        return Err(MongoError::location(
            28745,
            "the $sample stage specification must be an object",
        ));
    };
    let mut size = None;
    for (k, v) in d {
        if k != "size" {
            return Err(MongoError::location(
                28748,
                format!("unrecognized option to $sample: {k}"),
            ));
        }
        if !crate::cmp::is_number(v) {
            return Err(MongoError::location(
                28746,
                "size argument to $sample must be a number",
            ));
        }
        let n = util::number_as_f64(v).unwrap_or(0.0);
        if n < 0.0 {
            return Err(MongoError::location(
                28747,
                "size argument to $sample must not be negative",
            ));
        }
        size = Some(n as usize);
    }
    size.ok_or_else(|| MongoError::location(28749, "$sample stage must specify a size"))
}

pub(super) fn sort_docs(spec: &SortSpec, docs: Vec<Document>) -> Result<Vec<Document>, MongoError> {
    let mut keyed = docs
        .into_iter()
        .map(|d| Ok((spec.key(&d)?, d)))
        .collect::<Result<Vec<_>, MongoError>>()?;
    keyed.sort_by(|a, b| spec.compare_keys(&a.0, &b.0));
    Ok(keyed.into_iter().map(|(_, d)| d).collect())
}

/// A value at a path without array traversal (`Document::getNestedField`).
pub(super) fn get_nested<'a>(doc: &'a Document, path: &[String]) -> Option<&'a Bson> {
    let (first, rest) = path.split_first()?;
    let mut cur = doc.get(first)?;
    for p in rest {
        match cur {
            Bson::Document(d) => cur = d.get(p)?,
            _ => return None,
        }
    }
    Some(cur)
}

pub(super) fn unwind(u: &Unwind, docs: Vec<Document>) -> Vec<Document> {
    let index_path: Option<Vec<String>> = u
        .include_array_index
        .as_ref()
        .map(|i| i.split('.').map(str::to_owned).collect());
    let mut out = Vec::with_capacity(docs.len());
    for d in docs {
        let value = get_nested(&d, &u.path).cloned();
        match value {
            Some(Bson::Array(items)) if !items.is_empty() => {
                for (i, item) in items.into_iter().enumerate() {
                    let mut nd = d.clone();
                    set_nested(&mut nd, &u.path, item);
                    if let Some(ip) = &index_path {
                        set_nested(&mut nd, ip, Bson::Int64(i as i64));
                    }
                    out.push(nd);
                }
            }
            Some(Bson::Array(_)) | None | Some(Bson::Null) => {
                if u.preserve {
                    let mut nd = d;
                    if matches!(value, Some(Bson::Array(_))) {
                        // An empty array is removed from the output document.
                        remove_nested(&mut nd, &u.path);
                    }
                    if let Some(ip) = &index_path {
                        set_nested(&mut nd, ip, Bson::Null);
                    }
                    out.push(nd);
                }
            }
            Some(_) => {
                let mut nd = d;
                if let Some(ip) = &index_path {
                    set_nested(&mut nd, ip, Bson::Null);
                }
                out.push(nd);
            }
        }
    }
    out
}

fn remove_nested(doc: &mut Document, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        doc.remove(first);
    } else if let Some(Bson::Document(sub)) = doc.get_mut(first) {
        remove_nested(sub, rest);
    }
}

/// `$sample`: `n` documents in random order (a partial Fisher-Yates shuffle).
pub(super) fn sample(mut docs: Vec<Document>, n: usize) -> Vec<Document> {
    let take = n.min(docs.len());
    for i in 0..take {
        let j = i + (util::random_u64() % (docs.len() - i) as u64) as usize;
        docs.swap(i, j);
    }
    docs.truncate(take);
    docs
}
