//! Geo indexes in the engine: which key fields are `2dsphere` or `2d`, the keys a
//! document gives them (S2 cell ids, geohashes: `eddy_query::geo::cells`), mongod's
//! errors for geometry that cannot be indexed, the key intervals a geo predicate
//! bounds, and the index a `$near` reads.
//!
//! Both kinds are sparse on their geo fields, as mongod's `2dsphereIndexVersion` 2+
//! and `2d` indexes are: a document with none of the index's geo fields (or `null`, or
//! an empty array there) has no entry.

use bson::{Bson, Document};
use eddy_codes::{ErrorCode, MongoError};
use eddy_query::bounds::Interval;
use eddy_query::filter::Filter;
use eddy_query::geo::cells::{self, Grid, Ranges};
use eddy_query::geo::query::{GeoPredicate, Near, Within};
use eddy_query::geo::{self, Flat, Geometry};

use crate::catalog::IndexMeta;

/// A geo key field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GeoField {
    /// `2dsphere`.
    Sphere,
    /// `2d`, with its grid.
    Flat(Grid),
}

/// The geo kind of key field with direction `dir` in `index` (`None`: an ordinary field).
pub fn field_kind(index: &IndexMeta, dir: &Bson) -> Option<GeoField> {
    match dir {
        Bson::String(s) if s == "2dsphere" => Some(GeoField::Sphere),
        Bson::String(s) if s == "2d" => Some(GeoField::Flat(grid(&index.spec))),
        _ => None,
    }
}

/// Whether the index has a geo key field.
pub fn is_geo_index(index: &IndexMeta) -> bool {
    index
        .key_pattern()
        .values()
        .any(|d| field_kind(index, d).is_some())
}

fn number(spec: &Document, key: &str) -> Option<f64> {
    spec.get(key).and_then(eddy_query::util::number_as_f64)
}

/// A `2d` index's grid from its spec (`bits` 26, `[-180, 180)` by default).
pub fn grid(spec: &Document) -> Grid {
    let d = Grid::default();
    Grid {
        bits: number(spec, "bits").map_or(d.bits, |b| b as u32),
        min: number(spec, "min").unwrap_or(d.min),
        max: number(spec, "max").unwrap_or(d.max),
    }
}

/// mongod's checks on a key pattern with geo fields and on the geo options of a spec;
/// adds `2dsphereIndexVersion: 3` to a `2dsphere` spec that has none.
pub fn normalize_spec(key: &Document, out: &mut Document) -> Result<(), MongoError> {
    let kinds: Vec<(&String, &str)> = key
        .iter()
        .filter_map(|(f, d)| match d {
            Bson::String(s) if s == "2d" || s == "2dsphere" => Some((f, s.as_str())),
            _ => None,
        })
        .collect();
    if kinds.is_empty() {
        return Ok(());
    }
    let refuse = |code: i32, msg: &str| Err(MongoError::location(code, msg.to_owned()));
    if kinds.iter().any(|(_, k)| *k == "2d") && kinds.iter().any(|(_, k)| *k == "2dsphere") {
        return Err(MongoError::new(
            ErrorCode::CannotCreateIndex,
            "Can't use more than one index plugin for a single index.",
        ));
    }
    if kinds[0].1 == "2d" {
        if kinds.len() > 1 {
            return refuse(16800, "can't have 2 geo fields");
        }
        if key.keys().next() != Some(kinds[0].0) {
            return refuse(16801, "2d has to be first in index");
        }
        let g = grid(out);
        if !(1..=32).contains(&g.bits) || number(out, "bits").is_some_and(|b| b.fract() != 0.0) {
            return refuse(13028, "bits in geo index must be between 1 and 32");
        }
        if g.min >= g.max || !g.min.is_finite() || !g.max.is_finite() {
            return refuse(13067, "geo min and max must be distinct and finite");
        }
        return Ok(());
    }
    match out.get("2dsphereIndexVersion") {
        None => {
            out.insert("2dsphereIndexVersion", 3);
        }
        Some(v) => {
            let n = eddy_query::util::number_as_f64(v).unwrap_or(0.0);
            if n != 2.0 && n != 3.0 {
                return Err(MongoError::new(
                    ErrorCode::CannotCreateIndex,
                    format!(
                        "unsupported geo index version {{ 2dsphereIndexVersion : {} }}, only versions: [2,3] are supported",
                        eddy_query::util::bson_to_string(v)
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The values a geo field holds in `doc`: dotted paths traverse arrays of
/// sub-documents, but the value at the end of the path is one geometry even when it is
/// an array (a legacy pair, or a list of `2d` points).
fn values_at<'a>(doc: &'a Document, path: &str, out: &mut Vec<&'a Bson>) {
    fn walk<'a>(v: &'a Bson, parts: &[&str], out: &mut Vec<&'a Bson>) {
        let Some((first, rest)) = parts.split_first() else {
            match v {
                Bson::Null => {}
                Bson::Array(a) if a.is_empty() => {}
                other => out.push(other),
            }
            return;
        };
        match v {
            Bson::Document(d) => {
                if let Some(c) = d.get(*first) {
                    walk(c, rest, out);
                }
            }
            Bson::Array(items) => {
                for item in items {
                    if let Bson::Document(_) = item {
                        walk(item, parts, out);
                    }
                }
            }
            _ => {}
        }
    }
    let parts: Vec<&str> = path.split('.').collect();
    if let Some((first, rest)) = parts.split_first() {
        if let Some(v) = doc.get(*first) {
            walk(v, rest, out);
        }
    }
}

fn cant_extract(doc: &Document, why: &str) -> MongoError {
    MongoError::location(
        16755,
        format!(
            "Can't extract geo keys: {}  {why}",
            crate::display_value(&Bson::Document(doc.clone()))
        ),
    )
}

/// The keys a geo field gives `doc` (`None`: the document has no geometry there).
pub fn field_keys(
    kind: GeoField,
    doc: &Document,
    path: &str,
) -> Result<Option<Vec<Bson>>, MongoError> {
    let mut values = Vec::new();
    values_at(doc, path, &mut values);
    if values.is_empty() {
        return Ok(None);
    }
    let mut ids = Vec::new();
    for v in values {
        match kind {
            GeoField::Sphere => {
                let g = geo::parse_stored(v).map_err(|e| cant_extract(doc, &e))?;
                if g.shapes.is_empty() {
                    // A legacy pair that is no longitude/latitude.
                    let p = g.flat_point.unwrap_or(Flat { x: 0.0, y: 0.0 });
                    return Err(cant_extract(doc, &geo::out_of_bounds(p)));
                }
                ids.extend(cells::sphere_cells(&g));
            }
            GeoField::Flat(grid) => {
                for p in flat_points(v)? {
                    if !grid.holds(p) {
                        return Err(MongoError::location(
                            13027,
                            format!(
                                "point not in interval of [ {}, {} ) :: caused by :: {}",
                                grid.min,
                                grid.max,
                                crate::display_value(&Bson::Document(doc.clone()))
                            ),
                        ));
                    }
                    ids.push(grid.hash(p));
                }
            }
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(Some(ids.into_iter().map(cells::key_value).collect()))
}

/// The points of a `2d` field: one pair, or an array of pairs.
fn flat_points(v: &Bson) -> Result<Vec<Flat>, MongoError> {
    let bad = || {
        MongoError::location(
            16804,
            "location object expected, location array not in correct format",
        )
    };
    let single = match v {
        Bson::Array(a) => a.first().is_some_and(eddy_query::cmp::is_number),
        Bson::Document(d) => d.values().next().is_some_and(eddy_query::cmp::is_number),
        _ => return Err(bad()),
    };
    if single {
        return Ok(vec![geo::parse_flat_point(v, true).map_err(|_| bad())?]);
    }
    let items: Vec<&Bson> = match v {
        Bson::Array(a) => a.iter().collect(),
        Bson::Document(d) => d.values().collect(),
        _ => Vec::new(),
    };
    items
        .into_iter()
        .map(|p| geo::parse_flat_point(p, true).map_err(|_| bad()))
        .collect()
}

fn intervals(ranges: Ranges) -> Vec<Interval> {
    ranges
        .into_iter()
        .map(|(lo, hi)| Interval {
            start: cells::key_value(lo),
            start_inclusive: true,
            end: cells::key_value(hi),
            end_inclusive: true,
        })
        .collect()
}

/// A box around a spherical cap, in degrees (the whole grid near the poles).
fn cap_box(center: Flat, radians: f64) -> (Flat, Flat) {
    let r = radians.to_degrees();
    let lat_lo = center.y - r;
    let lat_hi = center.y + r;
    if lat_lo <= -90.0 || lat_hi >= 90.0 {
        return (
            Flat {
                x: -180.0,
                y: lat_lo.max(-90.0),
            },
            Flat {
                x: 180.0,
                y: lat_hi.min(90.0),
            },
        );
    }
    let cos = lat_lo.to_radians().cos().min(lat_hi.to_radians().cos());
    let dx = (r / cos).min(360.0);
    (
        Flat {
            x: center.x - dx,
            y: lat_lo,
        },
        Flat {
            x: center.x + dx,
            y: lat_hi,
        },
    )
}

/// The ranges of one geo predicate on a field of `kind` (`None`: it cannot bound it).
fn predicate_ranges(kind: GeoField, p: &GeoPredicate) -> Option<Ranges> {
    match (kind, p) {
        (GeoField::Sphere, GeoPredicate::Within(Within::Polygons(polys))) => {
            let shapes: Vec<geo::Shape> = polys.iter().cloned().map(geo::Shape::Polygon).collect();
            Some(cells::sphere_ranges_for_shapes(&shapes))
        }
        (GeoField::Sphere, GeoPredicate::Within(Within::Cap { center, radius, .. })) => {
            Some(cells::sphere_ranges_for_cap(center, *radius))
        }
        (GeoField::Sphere, GeoPredicate::Intersects(g)) => {
            Some(cells::sphere_ranges_for_shapes(&g.shapes))
        }
        (GeoField::Sphere, GeoPredicate::Within(Within::Flat(_))) => None,
        (GeoField::Flat(grid), GeoPredicate::Within(Within::Flat(region))) => {
            let (min, max) = region.bounds();
            Some(grid.ranges_for_box(min, max))
        }
        (
            GeoField::Flat(grid),
            GeoPredicate::Within(Within::Cap {
                center_flat,
                radius,
                ..
            }),
        ) => {
            let (min, max) = cap_box(*center_flat, *radius);
            Some(grid.ranges_for_box(min, max))
        }
        (GeoField::Flat(_), _) => None,
    }
}

/// The key intervals the filter's `$geoWithin`/`$geoIntersects` on `path` allow on a
/// geo field (`None`: no bound).
pub fn bounds(filter: &Filter, path: &str, kind: GeoField) -> Option<Vec<Interval>> {
    // Several predicates: any one bounds the field (the filter checks them all).
    filter
        .geo_predicates(path)
        .into_iter()
        .find_map(|p| predicate_ranges(kind, p))
        .map(intervals)
}

/// Whether a geo field of `kind` can order the results of `near`.
pub fn serves_near(kind: GeoField, near: &Near) -> bool {
    match kind {
        GeoField::Sphere => near.spherical,
        GeoField::Flat(_) => !near.meters,
    }
}

/// The key intervals of a geo field holding what lies within `near`'s maximum distance.
pub fn near_bounds(kind: GeoField, near: &Near) -> Vec<Interval> {
    let whole = || vec![(0, u64::MAX)];
    let ranges = match (kind, near.max_radians()) {
        (_, None) => whole(),
        (GeoField::Sphere, Some(r)) => match &near.point {
            Some(p) => cells::sphere_ranges_for_cap(p, r),
            None => whole(),
        },
        (GeoField::Flat(grid), Some(r)) => {
            let (min, max) = if near.spherical {
                cap_box(near.flat, r)
            } else {
                (
                    Flat {
                        x: near.flat.x - r,
                        y: near.flat.y - r,
                    },
                    Flat {
                        x: near.flat.x + r,
                        y: near.flat.y + r,
                    },
                )
            };
            grid.ranges_for_box(min, max)
        }
    };
    intervals(ranges)
}

/// The distance from `near` to the closest geometry of `doc` at `path` within its
/// bounds (what `$near` orders by and `$geoNear` reports), and that geometry's value.
pub fn document_distance<'a>(
    near: &Near,
    doc: &'a Document,
    path: &str,
) -> Option<(f64, &'a Bson)> {
    let mut best: Option<(f64, &Bson)> = None;
    for c in eddy_query::path::lookup_all(doc, path, true) {
        let Some(v) = c.value else { continue };
        let Ok(g) = geo::parse_stored(v) else {
            continue;
        };
        if let Some(d) = near.distance_to(&g) {
            if near.in_range(d) && best.is_none_or(|(b, _)| d < b) {
                best = Some((d, v));
            }
        }
    }
    best
}

/// The distance (in `near`'s units) past which a `$near` on `path` has read everything.
pub fn whole_radius(meta: &crate::CollectionMeta, path: &str, near: &Near) -> f64 {
    let sphere = if near.meters {
        std::f64::consts::PI * geo::EARTH_RADIUS_METERS
    } else {
        std::f64::consts::PI
    };
    if near.spherical {
        return sphere;
    }
    for index in &meta.indexes {
        for (f, d) in &index.key_pattern() {
            if let (true, Some(GeoField::Flat(g))) = (f == path, field_kind(index, d)) {
                return (g.max - g.min) * 1.5;
            }
        }
    }
    f64::INFINITY
}

/// The first ring of a `$near` with a limit: 100 m on the sphere (a city block: dense
/// data answers from the first ring, sparse data takes a few more), 0.01 flat units.
pub fn first_radius(near: &Near) -> f64 {
    if near.meters {
        100.0
    } else if near.spherical {
        100.0 / geo::EARTH_RADIUS_METERS
    } else {
        0.01
    }
}

/// The path a `$geoNear` reads: its `key`, or the field of the collection's only `2d`
/// index, else of its only `2dsphere` index (mongod's choice and errors).
pub fn geo_near_key(meta: &crate::CollectionMeta, key: Option<&str>) -> Result<String, MongoError> {
    let mut flat = Vec::new();
    let mut sphere = Vec::new();
    for index in meta.indexes.iter().filter(|i| !i.hidden()) {
        for (f, d) in &index.key_pattern() {
            match field_kind(index, d) {
                Some(GeoField::Flat(_)) => flat.push(f.clone()),
                Some(GeoField::Sphere) => sphere.push(f.clone()),
                None => {}
            }
        }
    }
    if let Some(k) = key {
        if flat.iter().chain(&sphere).any(|f| f == k) {
            return Ok(k.to_owned());
        }
        return Err(MongoError::new(
            ErrorCode::NoQueryExecutionPlans,
            format!("error processing query: planner returned error :: caused by :: unable to find index for $geoNear query, key: {k}"),
        ));
    }
    let ns = &meta.ns;
    match (flat.as_slice(), sphere.as_slice()) {
        ([one], _) => Ok(one.clone()),
        ([_, _, ..], _) => Err(MongoError::new(
            ErrorCode::IndexNotFound,
            format!("There is more than one 2d index on {ns}; unsure which to use for $geoNear"),
        )),
        ([], [one]) => Ok(one.clone()),
        ([], [_, _, ..]) => Err(MongoError::new(
            ErrorCode::IndexNotFound,
            format!(
                "There is more than one 2dsphere index on {ns}; unsure which to use for $geoNear"
            ),
        )),
        ([], []) => Err(MongoError::new(
            ErrorCode::IndexNotFound,
            "$geoNear requires a 2d or 2dsphere index, but none were found",
        )),
    }
}

/// A parsed stored geometry, for callers that show it (`$geoNear`'s `includeLocs`).
pub fn parse(v: &Bson) -> Option<Geometry> {
    geo::parse_stored(v).ok()
}
