//! Dotted field paths with mongod's array semantics.
//!
//! Two lookups exist because mongod has two:
//!
//! * [`get_path`] is a plain lookup (`getFieldDotted` without array expansion): each
//!   component selects a field of a document or, when it is a canonical decimal
//!   integer, an element of an array. Used by updates, projections and sort keys of
//!   single values.
//! * [`lookup_all`] is what the matcher sees (`BSONElementIterator`): it walks the path,
//!   and when it meets an array with path left it (a) takes the element at the position
//!   named by the next component if that component is a number, and (b) continues into
//!   every element that is a document (implicit traversal; nested arrays inside arrays
//!   are not entered). When the path *ends* at an array, the elements are candidates
//!   (if `traverse_leaf_arrays`) followed by the array itself, so `{a: [1, 2]}` matches
//!   both `{a: 1}` and `{a: [1, 2]}`. A path that does not exist yields a
//!   [`Candidate`] whose `value` is `None` (mongod's EOO), which `{a: null}` and
//!   `{$exists: false}` treat as "missing"; non-document elements of a traversed array
//!   yield nothing.
//!
//! Every candidate reached through an array carries the index in the *outermost*
//! array traversed, which is what mongod's positional `$` operator uses.

use bson::{Bson, Document};

/// A value reached by [`lookup_all`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate<'a> {
    /// The value, or `None` when the path does not exist there.
    pub value: Option<&'a Bson>,
    /// Index in the outermost array traversed to reach this candidate.
    pub array_index: Option<usize>,
    /// Whether this candidate is a leaf array offered as a whole (after its elements).
    pub whole_array: bool,
}

/// Parses a path component as an array index: a canonical non-negative decimal
/// integer ("0", "12"; not "01" or "+1"), as mongod's array field names are.
pub fn array_index(component: &str) -> Option<usize> {
    let b = component.as_bytes();
    if b.is_empty() || b.len() > 18 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if b.len() > 1 && b[0] == b'0' {
        return None;
    }
    component.parse().ok()
}

/// Like [`array_index`] but accepts leading zeros, as update paths do
/// (mongod parses `a.01` in an update as position 1).
pub fn update_array_index(component: &str) -> Option<usize> {
    let b = component.as_bytes();
    if b.is_empty() || b.len() > 18 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    component.parse().ok()
}

/// The field of a document, or the element of an array named by a canonical index.
pub fn child<'a>(v: &'a Bson, component: &str) -> Option<&'a Bson> {
    match v {
        Bson::Document(d) => d.get(component),
        Bson::Array(a) => array_index(component).and_then(|i| a.get(i)),
        _ => None,
    }
}

/// Plain lookup of a dotted path; numeric components index arrays.
pub fn get_path<'a>(doc: &'a Document, path: &str) -> Option<&'a Bson> {
    let mut parts = path.split('.');
    let first = parts.next()?;
    let mut cur = doc.get(first)?;
    for p in parts {
        cur = child(cur, p)?;
    }
    Some(cur)
}

/// All values the matcher considers for `path` in `doc` (see the module doc).
pub fn lookup_all<'a>(
    doc: &'a Document,
    path: &str,
    traverse_leaf_arrays: bool,
) -> Vec<Candidate<'a>> {
    let comps: Vec<&str> = path.split('.').collect();
    let mut out = Vec::new();
    walk_doc(
        DocLike::Doc(doc),
        &comps,
        traverse_leaf_arrays,
        None,
        &mut out,
    );
    out
}

#[derive(Clone, Copy)]
enum DocLike<'a> {
    Doc(&'a Document),
    /// An array addressed as a document whose field names are "0", "1", ...
    Arr(&'a [Bson]),
}

impl<'a> DocLike<'a> {
    fn get(self, name: &str) -> Option<&'a Bson> {
        match self {
            DocLike::Doc(d) => d.get(name),
            DocLike::Arr(a) => array_index(name).and_then(|i| a.get(i)),
        }
    }
}

fn walk_doc<'a>(
    start: DocLike<'a>,
    comps: &[&str],
    traverse_leaf: bool,
    outer: Option<usize>,
    out: &mut Vec<Candidate<'a>>,
) {
    let mut cur = start;
    let mut i = 0;
    loop {
        let Some(e) = cur.get(comps[i]) else {
            out.push(Candidate {
                value: None,
                array_index: outer,
                whole_array: false,
            });
            return;
        };
        let last = i + 1 == comps.len();
        match e {
            Bson::Array(arr) => {
                walk_array(e, arr, &comps[i + 1..], traverse_leaf, outer, out);
                return;
            }
            _ if last => {
                out.push(Candidate {
                    value: Some(e),
                    array_index: outer,
                    whole_array: false,
                });
                return;
            }
            Bson::Document(d) => {
                cur = DocLike::Doc(d);
                i += 1;
            }
            _ => {
                // A scalar with path left: the path does not exist.
                out.push(Candidate {
                    value: None,
                    array_index: outer,
                    whole_array: false,
                });
                return;
            }
        }
    }
}

fn walk_array<'a>(
    whole: &'a Bson,
    arr: &'a [Bson],
    rest: &[&str],
    traverse_leaf: bool,
    outer: Option<usize>,
    out: &mut Vec<Candidate<'a>>,
) {
    if rest.is_empty() {
        if traverse_leaf {
            for (i, el) in arr.iter().enumerate() {
                out.push(Candidate {
                    value: Some(el),
                    array_index: Some(outer.unwrap_or(i)),
                    whole_array: false,
                });
            }
        }
        out.push(Candidate {
            value: Some(whole),
            array_index: outer,
            whole_array: true,
        });
        return;
    }
    let next = rest[0];
    let offset = array_index(next);
    for (i, el) in arr.iter().enumerate() {
        let idx = Some(outer.unwrap_or(i));
        if offset == Some(i) {
            if rest.len() == 1 {
                out.push(Candidate {
                    value: Some(el),
                    array_index: idx,
                    whole_array: false,
                });
            } else {
                match el {
                    Bson::Document(d) => {
                        walk_doc(DocLike::Doc(d), &rest[1..], traverse_leaf, idx, out)
                    }
                    Bson::Array(a) => {
                        walk_doc(DocLike::Arr(a), &rest[1..], traverse_leaf, idx, out)
                    }
                    _ => {}
                }
            }
        }
        if let Bson::Document(d) = el {
            walk_doc(DocLike::Doc(d), rest, traverse_leaf, idx, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{bson, doc};

    fn vals(doc: &Document, path: &str, leaf: bool) -> Vec<(Option<Bson>, Option<usize>)> {
        lookup_all(doc, path, leaf)
            .into_iter()
            .map(|c| (c.value.cloned(), c.array_index))
            .collect()
    }

    #[test]
    fn plain_lookup() {
        let d = doc! {"a": {"b": [10, {"c": 3}]}, "x": 1};
        assert_eq!(get_path(&d, "x"), Some(&Bson::Int32(1)));
        assert_eq!(get_path(&d, "a.b.0"), Some(&Bson::Int32(10)));
        assert_eq!(get_path(&d, "a.b.1.c"), Some(&Bson::Int32(3)));
        assert_eq!(get_path(&d, "a.b.01"), None);
        assert_eq!(get_path(&d, "a.b.c"), None);
        assert_eq!(get_path(&d, "x.y"), None);
    }

    #[test]
    fn traversal() {
        let d = doc! {"a": [{"b": 1}, {"b": [2, 3]}, {"c": 1}, 7, [{"b": 9}]]};
        assert_eq!(
            vals(&d, "a.b", true),
            vec![
                (Some(bson!(1)), Some(0)),
                (Some(bson!(2)), Some(1)),
                (Some(bson!(3)), Some(1)),
                (Some(bson!([2, 3])), Some(1)),
                (None, Some(2)),
            ]
        );
        assert_eq!(
            vals(&d, "a.b", false),
            vec![
                (Some(bson!(1)), Some(0)),
                (Some(bson!([2, 3])), Some(1)),
                (None, Some(2)),
            ]
        );
    }

    #[test]
    fn leaf_arrays_and_missing() {
        let d = doc! {"a": [1, 2], "n": null};
        assert_eq!(
            vals(&d, "a", true),
            vec![
                (Some(bson!(1)), Some(0)),
                (Some(bson!(2)), Some(1)),
                (Some(bson!([1, 2])), None)
            ]
        );
        assert_eq!(vals(&d, "zz", true), vec![(None, None)]);
        assert_eq!(vals(&d, "n", true), vec![(Some(Bson::Null), None)]);
        assert_eq!(vals(&d, "n.x", true), vec![(None, None)]);
        // Non-document elements of a traversed array yield nothing.
        assert_eq!(vals(&d, "a.b", true), vec![]);
    }

    #[test]
    fn numeric_components() {
        let d = doc! {"a": [{"0": "field"}, {"b": 5}], "m": [[1, 2], [3]]};
        assert_eq!(
            vals(&d, "a.0", true),
            vec![
                (Some(bson!({"0": "field"})), Some(0)),
                (Some(bson!("field")), Some(0)),
                (None, Some(1)),
            ]
        );
        assert_eq!(
            vals(&d, "a.1.b", true),
            vec![(None, Some(0)), (Some(bson!(5)), Some(1)), (None, Some(1))]
        );
        assert_eq!(vals(&d, "m.1.0", true), vec![(Some(bson!(3)), Some(1))]);
    }

    #[test]
    fn index_parsing() {
        assert_eq!(array_index("0"), Some(0));
        assert_eq!(array_index("10"), Some(10));
        assert_eq!(array_index("01"), None);
        assert_eq!(array_index("-1"), None);
        assert_eq!(array_index(""), None);
        assert_eq!(update_array_index("01"), Some(1));
    }
}
