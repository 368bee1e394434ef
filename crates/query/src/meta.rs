//! Document metadata: what mongod keeps beside a document rather than in it (the
//! score of a `$text` match; the distance and the point of a `$near` query or a
//! `$geoNear` stage), read through `{$meta: ...}`.
//!
//! Between the read and the reply Eddy carries it in fields whose names start with a
//! NUL byte: no stored or client document can have one (BSON field names cannot hold
//! it). Projections, `$project`, `$addFields` and `$replaceRoot` keep them with the
//! document, as mongod keeps metadata; readers strip them before replying or writing.

use bson::{Bson, Document};

/// `{$meta: "textScore"}`.
pub const TEXT_SCORE: &str = "\u{0}textScore";
/// `{$meta: "geoNearDistance"}`: the distance a near query ordered the document by, in
/// the query's units (meters for GeoJSON, radians for legacy `$nearSphere`).
pub const GEO_NEAR_DISTANCE: &str = "\u{0}geoNearDistance";
/// `{$meta: "geoNearPoint"}`: the location that distance was measured to.
pub const GEO_NEAR_POINT: &str = "\u{0}geoNearPoint";

/// The field that carries the metadata `$meta` names, for the kinds Eddy has.
pub fn field(name: &str) -> Option<&'static str> {
    match name {
        "textScore" => Some(TEXT_SCORE),
        "geoNearDistance" => Some(GEO_NEAR_DISTANCE),
        "geoNearPoint" => Some(GEO_NEAR_POINT),
        _ => None,
    }
}

/// Whether a field name is a metadata field.
pub fn is_meta(name: &str) -> bool {
    name.starts_with('\u{0}')
}

/// Copies `from`'s metadata onto `to` (a document made from it).
pub fn carry(from: &Document, to: &mut Document) {
    for (k, v) in from.iter().filter(|(k, _)| is_meta(k)) {
        to.insert(k.clone(), v.clone());
    }
}

/// Removes every metadata field from `doc` and everything nested in it.
pub fn strip(doc: &mut Document) {
    let found: Vec<String> = doc.keys().filter(|k| is_meta(k)).cloned().collect();
    for k in found {
        doc.remove(&k);
    }
    for (_, v) in doc.iter_mut() {
        strip_value(v);
    }
}

fn strip_value(v: &mut Bson) {
    match v {
        Bson::Document(d) => strip(d),
        Bson::Array(items) => items.iter_mut().for_each(strip_value),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn metadata_is_carried_and_stripped_at_every_depth() {
        let mut from = doc! {"a": 1};
        from.insert(TEXT_SCORE, 1.5);
        from.insert(GEO_NEAR_DISTANCE, 10.0);
        let mut to = doc! {"b": 2};
        carry(&from, &mut to);
        assert_eq!(to.get_f64(TEXT_SCORE).ok(), Some(1.5));
        assert_eq!(to.get_f64(GEO_NEAR_DISTANCE).ok(), Some(10.0));
        let mut nested = doc! {"x": [to.clone()], "y": to};
        nested.insert(GEO_NEAR_POINT, [1.0, 2.0]);
        strip(&mut nested);
        assert_eq!(nested, doc! {"x": [{"b": 2}], "y": {"b": 2}});
    }

    #[test]
    fn only_the_metadata_eddy_has_has_a_field() {
        assert_eq!(field("textScore"), Some(TEXT_SCORE));
        assert_eq!(field("geoNearPoint"), Some(GEO_NEAR_POINT));
        assert_eq!(field("indexKey"), None);
        assert!(is_meta(GEO_NEAR_DISTANCE) && !is_meta("a"));
    }
}
