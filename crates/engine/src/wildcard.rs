//! Wildcard indexes (`{"$**": 1}`, `{"path.$**": 1}`, `wildcardProjection`, and
//! mongod 7.0's compound ones, `{tenantId: 1, "customFields.$**": 1}`): the spec
//! checks, the keys a document gives them, and which query paths they serve.
//!
//! Keys follow mongod's `WildcardKeyGenerator`: one entry `(path, value)` per leaf of
//! the document the projection keeps (by default everything but `_id`; a `path.$**`
//! key keeps `path`'s subtree), the path without array positions. An array's elements
//! are each indexed under the array's path (sub-documents traversed, nested arrays
//! indexed as values), an empty array as `undefined`, an empty document as `{}`; field
//! names holding a `.` are skipped. The key encoding is `(path string, value)`, so a
//! query on one path reads the `$_path` point and the value's bounds, which explain
//! shows as mongod does (`keyPattern: {$_path: 1, <path>: 1}`).
//!
//! A compound wildcard index's keys hold its regular fields' values around the
//! `(path, value)` pair, in key pattern order; its regular fields must not hold arrays
//! (mongod's restriction), and a document none of whose leaves it keeps is indexed under
//! `(MinKey, MinKey)` if it has a regular field (the index is sparse, as mongod's), so a
//! read of its regular fields alone finds it.
//!
//! A wildcard index serves one path per scan: the planner offers one candidate per
//! field of the filter that the projection keeps and whose predicates bound its values
//! to scalars (documents and arrays are not keys; `null`, `$exists: false`, `$ne` and
//! the like give no bounds and fall back to other plans), and a compound one also a read
//! of every path under its leading regular fields' bounds ([`all_paths`]). The catalog records whether
//! any path of the index ever held an array, not which: once one did, every path of
//! the index reads as multikey (results deduplicated, a path's predicates not
//! intersected, no sort served).

use bson::{Bson, Document};
use eddy_codes::{ErrorCode, MongoError};
use eddy_query::bounds::{self, Interval};
use eddy_query::cmp;
use eddy_query::filter::Filter;

use crate::catalog::IndexMeta;

/// Whether a key pattern field is a wildcard (`$**` or `path.$**`).
pub fn is_wildcard_field(field: &str) -> bool {
    field == "$**" || field.ends_with(".$**")
}

/// Whether a key pattern term is a wildcard one: a wildcard name with a numeric
/// direction (`{"$**": "text"}` is a text index).
fn is_wildcard_term(field: &str, dir: &Bson) -> bool {
    is_wildcard_field(field) && !matches!(dir, Bson::String(_))
}

/// The position of the wildcard term in a wildcard index's key pattern (0 for a
/// single-field one; compound wildcard indexes have regular fields beside it).
pub fn wildcard_position(index: &IndexMeta) -> Option<usize> {
    index
        .key_pattern()
        .iter()
        .position(|(f, d)| is_wildcard_term(f, d))
}

/// The wildcard term of an index, with its direction, if it is a wildcard index.
pub fn wildcard_field(index: &IndexMeta) -> Option<(String, Bson)> {
    index
        .key_pattern()
        .iter()
        .find(|(f, d)| is_wildcard_term(f, d))
        .map(|(f, d)| (f.clone(), d.clone()))
}

/// mongod's checks on a wildcard index spec (`validateIndexSpec`, `validateKeyPattern`,
/// and for compound wildcard indexes `validateWildcardIndex` and
/// `validateWildcardProjection`); `Ok(false)` when the key has no wildcard term.
pub fn check_spec(key: &Document, spec: &Document) -> Result<bool, MongoError> {
    let wildcards: Vec<&String> = key
        .iter()
        .filter(|(f, d)| is_wildcard_term(f, d))
        .map(|(f, _)| f)
        .collect();
    let wildcard = !wildcards.is_empty();
    let compound = wildcard && key.len() > 1;
    let cannot = |msg: &str| {
        Err(MongoError::new(
            ErrorCode::CannotCreateIndex,
            msg.to_owned(),
        ))
    };
    if wildcard {
        // `validateKeyPattern`: no other index plugin beside a wildcard term, one
        // wildcard term, and a `path.$**` root that no regular field lies under.
        if key.values().any(|d| matches!(d, Bson::String(_))) {
            return cannot("Can't use more than one index plugin for a single index.");
        }
        if wildcards.len() > 1 {
            return Err(MongoError::location(
                7246201,
                "Index Key can contain only one wildcard index field",
            ));
        }
        if let Some(root) = wildcards[0].strip_suffix(".$**") {
            if let Some(field) = key
                .keys()
                .find(|f| !is_wildcard_field(f) && covers(f, root))
            {
                return Err(MongoError::location(
                    7246204,
                    format!(
                        "A wildcard index field should not overlap with and index key fields if wildcard projection is empty, however '{field}' is overlapping with the wildcard index field."
                    ),
                ));
            }
        }
        if compound && wildcards[0] == "$**" && !spec.contains_key("wildcardProjection") {
            return cannot(
                "Compound wildcard indexes on all fields must also specify 'wildcardProjection' option",
            );
        }
    }
    if let Some(projection) = spec.get("wildcardProjection") {
        if !wildcard {
            return Err(MongoError::bad_value(
                "The field 'wildcardProjection' is only allowed in 'wildcard' indexes",
            ));
        }
        let Bson::Document(p) = projection else {
            return Err(MongoError::type_mismatch(format!(
                "The field 'wildcardProjection' must be a non-empty object, but got {}",
                eddy_query::util::type_name(projection)
            )));
        };
        if !key.contains_key("$**") {
            return Err(MongoError::failed_to_parse(
                "The field 'wildcardProjection' is only allowed when 'key' is {\"$**\": ±1} or {\"$**\": \"columnstore\"}",
            ));
        }
        if p.is_empty() {
            return Err(MongoError::failed_to_parse(
                "The 'wildcardProjection' field can't be an empty object",
            ));
        }
        if compound {
            let mut flat = Vec::new();
            flatten(p, "", &mut flat)?;
            let regular: Vec<&str> = key
                .keys()
                .filter(|f| !is_wildcard_field(f))
                .map(String::as_str)
                .collect();
            check_compound_projection(&regular, &flat)?;
        }
        Projection::parse(p)?;
    }
    if !wildcard {
        return Ok(false);
    }
    let refuse = |what: &str| {
        Err(MongoError::new(
            ErrorCode::CannotCreateIndex,
            format!("Index type 'wildcard' {what}"),
        ))
    };
    let truthy = |k: &str| match spec.get(k) {
        Some(Bson::Boolean(b)) => *b,
        Some(v) => eddy_query::util::number_as_f64(v).is_some_and(|n| n != 0.0),
        None => false,
    };
    if truthy("sparse") {
        return refuse("does not support the sparse option");
    }
    if truthy("unique") {
        return refuse("does not support the unique option");
    }
    if spec.contains_key("expireAfterSeconds") {
        return refuse("cannot be a TTL index");
    }
    for dir in key.values() {
        if !matches!(eddy_query::util::number_as_f64(dir), Some(n) if n != 0.0 && n.is_finite()) {
            return Err(MongoError::new(
                ErrorCode::CannotCreateIndex,
                format!(
                    "Values in the index key pattern can only be numbers or strings, found {}",
                    crate::display_value(dir)
                ),
            ));
        }
    }
    Ok(true)
}

/// mongod's `validateWildcardProjection` for a compound wildcard index: the regular
/// fields `regular` beside `$**` and its flattened projection `flat`. Paths compare as
/// mongod's `FieldRef`s: component by component.
fn check_compound_projection(regular: &[&str], flat: &[(String, bool)]) -> Result<(), MongoError> {
    let parts = |p: &str| p.split('.').map(str::to_owned).collect::<Vec<String>>();
    let prefix_or_equal = |a: &[String], b: &[String]| a.len() <= b.len() && b[..a.len()] == *a;
    let mut fields: Vec<Vec<String>> = regular.iter().map(|f| parts(f)).collect();
    let mut included: Vec<Vec<String>> = flat
        .iter()
        .filter(|(_, i)| *i)
        .map(|(p, _)| parts(p))
        .collect();
    let mut excluded: Vec<Vec<String>> = flat
        .iter()
        .filter(|(_, i)| !*i)
        .map(|(p, _)| parts(p))
        .collect();
    fields.sort();
    included.sort();
    excluded.sort();
    for list in [&included, &excluded] {
        for w in list.windows(2) {
            if prefix_or_equal(&w[0], &w[1]) || prefix_or_equal(&w[1], &w[0]) {
                return Err(MongoError::location(
                    7246200,
                    format!(
                        "Fields in Wildcard Projection cannot overlap, however '{}' is overlapped with '{}",
                        w[0].join("."),
                        w[1].join(".")
                    ),
                ));
            }
        }
    }
    // Inclusions and exclusions mix only for `_id`; a projection of `_id` alone is an
    // inclusion or an exclusion by its value.
    let id = vec!["_id".to_owned()];
    let others_in = included.iter().any(|p| *p != id);
    let others_out = excluded.iter().any(|p| *p != id);
    if others_in && others_out {
        return Err(MongoError::location(
            7246211,
            "Inclusion and exclusion statements cannot combine in the wildcardProjection with an exception of explicitly including _id field",
        ));
    }
    let inclusion = others_in || (!others_out && !included.is_empty());
    if inclusion {
        // No included path may be a regular field or lie above one.
        let (mut i, mut p) = (0, 0);
        while i < fields.len() && p < included.len() {
            if prefix_or_equal(&included[p], &fields[i]) {
                return Err(MongoError::location(
                    7246208,
                    format!(
                        "Index Key and Wildcard Projection cannot contain overlapping fields, however '{}' index field is ovverlapping with '{}' wildcardProjection path.",
                        fields[i].join("."),
                        included[p].join(".")
                    ),
                ));
            }
            if included[p] < fields[i] {
                p += 1;
            } else {
                i += 1;
            }
        }
        return Ok(());
    }
    // An exclusion projection must exclude every regular field.
    let not_excluded = |code: i32, field: &[String]| {
        MongoError::location(
            code,
            format!(
                "wildcardProjection paths must exclude all regular index fields, however '{}'is not excluded.",
                field.join(".")
            ),
        )
    };
    let (mut i, mut p) = (0, 0);
    while i < fields.len() && p < excluded.len() {
        if prefix_or_equal(&excluded[p], &fields[i]) {
            i += 1;
        } else if excluded[p] < fields[i] {
            p += 1;
        } else {
            return Err(not_excluded(7246209, &fields[i]));
        }
    }
    if i < fields.len() {
        return Err(not_excluded(7246210, &fields[i]));
    }
    Ok(())
}

/// A wildcard index's projection: which paths it indexes.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    /// Inclusion (`true`) or exclusion of `paths`.
    include: bool,
    paths: Vec<String>,
    /// Whether `_id` is indexed (only if the projection says so).
    id: bool,
}

impl Projection {
    /// Parses a `wildcardProjection` (`{a: 1, "b.c": 1}` or `{a: {b: 0}}`): all
    /// inclusions or all exclusions, except `_id`, which may be either.
    pub fn parse(spec: &Document) -> Result<Projection, MongoError> {
        let mut flat = Vec::new();
        flatten(spec, "", &mut flat)?;
        let mut include = None;
        let mut id = None;
        let mut paths = Vec::new();
        for (path, inc) in flat {
            if path == "_id" {
                id = Some(inc);
                continue;
            }
            match include {
                Some(mode) if mode != inc => {
                    return Err(if mode {
                        MongoError::location(
                            31253,
                            format!("Cannot do exclusion on field {path} in inclusion projection"),
                        )
                    } else {
                        MongoError::location(
                            31254,
                            format!("Cannot do inclusion on field {path} in exclusion projection"),
                        )
                    });
                }
                _ => include = Some(inc),
            }
            paths.push(path);
        }
        Ok(Projection {
            // `{_id: 1}` alone includes `_id` only; `{_id: 0}` alone excludes it only.
            include: include.unwrap_or(id == Some(true)),
            paths,
            id: id.unwrap_or(false),
        })
    }

    /// The projection of an index: its `wildcardProjection`, or its `path.$**` subtree,
    /// or everything but `_id`.
    pub fn of(index: &IndexMeta) -> Projection {
        if let Some((field, _)) = wildcard_field(index) {
            if let Some(root) = field.strip_suffix(".$**") {
                return Projection {
                    include: true,
                    paths: vec![root.to_owned()],
                    id: covers(root, "_id"),
                };
            }
        }
        match index.spec.get_document("wildcardProjection") {
            Ok(p) => Projection::parse(p).unwrap_or(Projection {
                include: false,
                paths: Vec::new(),
                id: false,
            }),
            Err(_) => Projection {
                include: false,
                paths: Vec::new(),
                id: false,
            },
        }
    }

    /// Whether the value at `path` (and its whole subtree) is indexed.
    pub fn keeps(&self, path: &str) -> bool {
        if covers(path, "_id") {
            return self.id;
        }
        self.paths.iter().any(|p| covers(path, p)) == self.include
    }

    /// Whether `path` or some path below it is indexed (so traversal must go on).
    fn leads_somewhere(&self, path: &str) -> bool {
        self.keeps(path)
            || (!covers(path, "_id") && self.include && self.paths.iter().any(|p| covers(p, path)))
    }
}

/// Whether `path` is `prefix` or lies below it.
fn covers(path: &str, prefix: &str) -> bool {
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.'))
}

fn flatten(spec: &Document, prefix: &str, out: &mut Vec<(String, bool)>) -> Result<(), MongoError> {
    for (k, v) in spec {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Bson::Document(d) if !d.is_empty() && !d.keys().any(|k| k.starts_with('$')) => {
                flatten(d, &path, out)?;
            }
            Bson::Boolean(b) => out.push((path, *b)),
            other => match eddy_query::util::number_as_f64(other) {
                Some(n) => out.push((path, n != 0.0)),
                None => {
                    return Err(MongoError::location(
                        51271,
                        "The 'wildcardProjection' field must not contain computed fields or literals other than inclusions and exclusions",
                    ))
                }
            },
        }
    }
    Ok(())
}

/// Calls `f` with each `(path, value)` key of `doc` in the index; whether some array
/// was met on an indexed path.
pub fn for_each_key(index: &IndexMeta, doc: &Document, mut f: impl FnMut(&str, &Bson)) -> bool {
    let projection = Projection::of(index);
    let mut multikey = false;
    traverse(doc, false, "", &projection, &mut multikey, &mut f);
    multikey
}

fn traverse(
    doc: &Document,
    in_array: bool,
    path: &str,
    projection: &Projection,
    multikey: &mut bool,
    f: &mut impl FnMut(&str, &Bson),
) {
    for (name, value) in doc {
        if name.contains('.') {
            continue;
        }
        let here = if in_array {
            path.to_owned()
        } else if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        visit(&here, value, in_array, projection, multikey, f);
    }
}

fn visit(
    path: &str,
    value: &Bson,
    in_array: bool,
    projection: &Projection,
    multikey: &mut bool,
    f: &mut impl FnMut(&str, &Bson),
) {
    if !projection.leads_somewhere(path) {
        return;
    }
    let keep = projection.keeps(path);
    match value {
        Bson::Array(_) if in_array => {
            if keep {
                f(path, value);
            }
        }
        Bson::Array(items) => {
            if keep {
                *multikey = true;
            }
            if items.is_empty() {
                if keep {
                    f(path, &Bson::Undefined);
                }
                return;
            }
            for item in items {
                visit(path, item, true, projection, multikey, f);
            }
        }
        Bson::Document(d) if d.is_empty() => {
            if keep {
                f(path, value);
            }
        }
        Bson::Document(d) => traverse(d, false, path, projection, multikey, f),
        other => {
            if keep {
                f(path, other);
            }
        }
    }
}

/// The paths of the filter's top-level conjunction (`{a: ..}`, inside `$and`s) that a
/// wildcard index could serve, in the filter's order.
pub fn query_paths(query: &Document, out: &mut Vec<String>) {
    for (k, v) in query {
        if k == "$and" {
            if let Bson::Array(items) = v {
                for item in items {
                    if let Bson::Document(d) = item {
                        query_paths(d, out);
                    }
                }
            }
            continue;
        }
        if k.starts_with('$') || out.contains(k) {
            continue;
        }
        let plannable = !k
            .split('.')
            .any(|c| c.is_empty() || c.starts_with('$') || c.bytes().all(|b| b.is_ascii_digit()));
        if plannable {
            out.push(k.clone());
        }
    }
}

/// The bounds the filter places on the values of `path` in a wildcard index (under the
/// filter's collation when `collated`: the index's keys then hold its sort keys):
/// `None` unless they hold scalars only (documents and arrays are never keys, so an
/// equality on one cannot be answered from the index).
pub fn value_bounds(
    filter: &Filter,
    path: &str,
    multikey: bool,
    collated: bool,
) -> Option<Vec<Interval>> {
    let b = bounds::path_bounds_under(filter, path, multikey, collated)?;
    let doc = cmp::type_bracket(&Bson::Document(Document::new()));
    let arr = cmp::type_bracket(&Bson::Array(Vec::new()));
    // A string range ends before the smallest document (`["a", {})`): that touches no
    // document, nor does a range ending before `[]` touch an array.
    let touches = |iv: &Interval, bracket: u8, empty: &Bson| {
        let (lo, hi) = (cmp::type_bracket(&iv.start), cmp::type_bracket(&iv.end));
        let ends_before =
            hi == bracket && !iv.end_inclusive && cmp::compare(&iv.end, empty).is_eq();
        lo <= bracket && bracket <= hi && !ends_before
    };
    let (empty_doc, empty_arr) = (Bson::Document(Document::new()), Bson::Array(Vec::new()));
    let touches_containers = b
        .iter()
        .any(|iv| touches(iv, doc, &empty_doc) || touches(iv, arr, &empty_arr));
    (!touches_containers).then_some(b)
}

/// The `$_path` bounds of a read of every path of a compound wildcard index: the
/// documents holding no indexed path (`MinKey`) and every path string.
pub fn all_paths() -> Vec<Interval> {
    vec![
        Interval::point(Bson::MinKey),
        Interval {
            start: Bson::String(String::new()),
            start_inclusive: true,
            end: Bson::Document(Document::new()),
            end_inclusive: false,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::tests::index;
    use bson::doc;

    fn keys(i: &IndexMeta, d: &Document) -> (Vec<(String, Bson)>, bool) {
        let mut out = Vec::new();
        let multikey = for_each_key(i, d, |p, v| out.push((p.to_owned(), v.clone())));
        (out, multikey)
    }

    #[test]
    fn every_leaf_but_id() {
        let i = index(doc! {"key": {"$**": 1}, "name": "$**_1"});
        let (k, multikey) = keys(
            &i,
            &doc! {"_id": 1, "a": {"b": 1, "c": [2, {"d": 3}, [4]], "e": {}, "f": []}, "g.h": 5},
        );
        assert!(multikey);
        assert_eq!(
            k,
            vec![
                ("a.b".to_owned(), Bson::Int32(1)),
                ("a.c".to_owned(), Bson::Int32(2)),
                ("a.c.d".to_owned(), Bson::Int32(3)),
                ("a.c".to_owned(), Bson::Array(vec![Bson::Int32(4)])),
                ("a.e".to_owned(), Bson::Document(doc! {})),
                ("a.f".to_owned(), Bson::Undefined),
            ]
        );
    }

    #[test]
    fn subtree_and_projections() {
        let i = index(doc! {"key": {"a.$**": 1}, "name": "a.$**_1"});
        let (k, _) = keys(&i, &doc! {"a": {"b": 1}, "ab": 2, "c": 3});
        assert_eq!(k, vec![("a.b".to_owned(), Bson::Int32(1))]);
        let (k, _) = keys(&i, &doc! {"a": 7});
        assert_eq!(k, vec![("a".to_owned(), Bson::Int32(7))]);
        let inc = index(
            doc! {"key": {"$**": 1}, "name": "$**_1", "wildcardProjection": {"a.b": 1, "_id": 1}},
        );
        let (k, _) = keys(&inc, &doc! {"_id": 9, "a": [{"b": 1, "c": 2}, 3], "d": 4});
        assert_eq!(
            k,
            vec![
                ("_id".to_owned(), Bson::Int32(9)),
                ("a.b".to_owned(), Bson::Int32(1))
            ]
        );
        let exc =
            index(doc! {"key": {"$**": 1}, "name": "$**_1", "wildcardProjection": {"a": {"b": 0}}});
        let (k, _) = keys(&exc, &doc! {"_id": 9, "a": {"b": 1, "c": 2}, "d": 4});
        assert_eq!(
            k,
            vec![
                ("a.c".to_owned(), Bson::Int32(2)),
                ("d".to_owned(), Bson::Int32(4))
            ]
        );
        assert!(Projection::of(&exc).keeps("d"));
        assert!(!Projection::of(&exc).keeps("a.b.x"));
        assert!(!Projection::of(&exc).keeps("_id"));
    }

    #[test]
    fn specs_are_checked() {
        let code =
            |key: Document, spec: Document| check_spec(&key, &spec).expect_err("refused").code;
        assert_eq!(
            code(doc! {"a": 1}, doc! {"wildcardProjection": {"a": 1}}),
            2
        );
        assert_eq!(
            code(doc! {"a.$**": 1}, doc! {"wildcardProjection": {"a": 1}}),
            9
        );
        assert_eq!(code(doc! {"$**": 1}, doc! {"wildcardProjection": {}}), 9);
        assert_eq!(code(doc! {"$**": 1}, doc! {"wildcardProjection": 1}), 14);
        assert_eq!(
            code(
                doc! {"$**": 1},
                doc! {"wildcardProjection": {"a": 1, "b": 0}}
            ),
            31253
        );
        assert_eq!(code(doc! {"$**": 1}, doc! {"unique": true}), 67);
        assert_eq!(code(doc! {"$**": 1}, doc! {"sparse": true}), 67);
        assert_eq!(code(doc! {"$**": 1}, doc! {"expireAfterSeconds": 10}), 67);
        assert!(check_spec(
            &doc! {"$**": 1},
            &doc! {"wildcardProjection": {"a": 0, "_id": 1}}
        )
        .expect("ok"));
        assert!(!check_spec(&doc! {"a": 1}, &doc! {}).expect("ok"));
    }

    #[test]
    fn compound_specs_are_checked() {
        let code =
            |key: Document, spec: Document| check_spec(&key, &spec).expect_err("refused").code;
        assert!(check_spec(&doc! {"a": 1, "b.$**": -1, "c": 1}, &doc! {}).expect("ok"));
        assert!(check_spec(
            &doc! {"$**": 1, "_id": 1, "e": 1},
            &doc! {"wildcardProjection": {"_id": 0, "a": 1}}
        )
        .expect("ok"));
        assert_eq!(code(doc! {"a": 1, "a.$**": 1}, doc! {}), 7246204);
        assert_eq!(code(doc! {"a.$**": 1, "b.$**": 1}, doc! {}), 7246201);
        assert_eq!(code(doc! {"a.$**": 1, "b": "hashed"}, doc! {}), 67);
        assert_eq!(code(doc! {"a": 1, "$**": 1}, doc! {}), 67);
        let proj = |p: Document| doc! {"wildcardProjection": p};
        assert_eq!(
            code(doc! {"$**": 1, "c": 1}, proj(doc! {"a.b": 1, "a.b.c": 1})),
            7246200
        );
        assert_eq!(code(doc! {"a": 1, "$**": 1}, proj(doc! {"a": 1})), 7246208);
        assert_eq!(
            code(
                doc! {"$**": 1, "_id": 1, "e": 1},
                proj(doc! {"_id": 1, "e": 0})
            ),
            7246209
        );
        assert_eq!(
            code(doc! {"a": 1, "$**": 1}, proj(doc! {"_id": 0})),
            7246210
        );
        assert_eq!(
            code(
                doc! {"$**": 1, "c": 1},
                proj(doc! {"_id": 0, "a": 0, "b": 1})
            ),
            7246211
        );
    }

    #[test]
    fn compound_keys() {
        let i = index(doc! {"key": {"t": 1, "f.$**": -1}, "name": "t_1_f.$**_-1"});
        let (keys, paths) =
            crate::index::keys_and_paths(&i, &doc! {"t": 5, "f": {"a": 1, "b": [2]}})
                .expect("keys");
        let enc = |p: &str, v: Bson| {
            eddy_query::key::encode_key(&[
                (&Bson::Int32(5), false),
                (&Bson::String(p.to_owned()), false),
                (&v, true),
            ])
        };
        let mut want = vec![enc("f.a", Bson::Int32(1)), enc("f.b", Bson::Int32(2))];
        want.sort();
        assert_eq!(keys, want);
        assert_eq!(paths, vec![Vec::new(), vec![0]]);
        // A document holding no indexed path is still in the index, under MinKey, if it
        // has a regular field; the index is sparse.
        let (keys, _) = crate::index::keys_and_paths(&i, &doc! {"t": 5}).expect("keys");
        assert_eq!(keys, vec![enc_min()]);
        let (keys, _) = crate::index::keys_and_paths(&i, &doc! {"u": 5}).expect("keys");
        assert!(keys.is_empty());
        let err = crate::index::keys_and_paths(&i, &doc! {"t": [1, 2]}).expect_err("array");
        assert_eq!(err.code, 7246301);

        fn enc_min() -> Vec<u8> {
            eddy_query::key::encode_key(&[
                (&Bson::Int32(5), false),
                (&Bson::MinKey, false),
                (&Bson::MinKey, true),
            ])
        }
    }

    #[test]
    fn containers_give_no_bounds() {
        let f = Filter::parse(&doc! {"a": {"b": 1}}).expect("filter");
        assert!(value_bounds(&f, "a", true, false).is_none());
        let f = Filter::parse(&doc! {"a": {"$gt": 1}}).expect("filter");
        assert!(value_bounds(&f, "a", true, false).is_some());
        let f = Filter::parse(&doc! {"a": null}).expect("filter");
        assert!(value_bounds(&f, "a", true, false).is_none());
        // A string range ends before the smallest document: it bounds strings only.
        let f = Filter::parse(&doc! {"a": {"$gt": "x"}}).expect("filter");
        assert!(value_bounds(&f, "a", true, false).is_some());
        let f = Filter::parse(&doc! {"a": {"$gte": {}}}).expect("filter");
        assert!(value_bounds(&f, "a", true, false).is_none());
    }
}
