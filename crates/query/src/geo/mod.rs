//! Geospatial semantics as mongod 7.0 has them: geometry parsing and validation
//! (`geoparser.cpp`), the `$geoWithin`/`$geoIntersects`/`$near` predicates, distances,
//! and the keys of `2dsphere` and `2d` indexes with the key intervals a query covers.
//!
//! * GeoJSON (`Point`, `LineString`, `Polygon` with holes, `MultiPoint`,
//!   `MultiLineString`, `MultiPolygon`, `GeometryCollection`) lives on the unit sphere
//!   (WGS84 longitude/latitude in degrees, as S2 points); legacy coordinate pairs
//!   (`[x, y]`, `{x: .., y: ..}`) are flat points that also project onto the sphere when
//!   they are valid longitudes and latitudes.
//! * A geometry is kept as a flat list of [`Shape`]s (points, polylines, polygons):
//!   "within" is every shape within, "intersects" is some shape intersecting.
//! * Spherical predicates ([`sphere`]) are built on the `s2` crate's points, edge
//!   crossings and distances; flat ones ([`flat`]) are mongod's legacy `$box`,
//!   `$polygon` and `$center` on points.
//! * Index keys and query coverings are in [`cells`]: S2 cell ids for `2dsphere`,
//!   interleaved-bit geohashes for `2d`.
//!
//! Distances on the sphere use mongod's earth radius (6378.1 km) so that `$near`,
//! `$geoNear` and `$centerSphere` agree with mongod's numbers.

pub mod cells;
pub mod flat;
pub mod query;
pub mod sphere;

use bson::{Bson, Document};
use s2::point::Point;

use crate::util;

/// mongod's `kRadiusOfEarthInMeters`.
pub const EARTH_RADIUS_METERS: f64 = 6378.1 * 1000.0;

/// A flat (legacy) point, or a GeoJSON position: `x` is the longitude.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Flat {
    pub x: f64,
    pub y: f64,
}

/// A ring of a polygon on the sphere: distinct vertices (the closing one dropped),
/// oriented so that the smaller region lies to the left.
#[derive(Debug, Clone)]
pub struct Ring {
    pub vertices: Vec<Point>,
}

/// A polygon on the sphere: one shell and its holes.
#[derive(Debug, Clone)]
pub struct Polygon {
    pub shell: Ring,
    pub holes: Vec<Ring>,
}

/// One piece of a geometry.
#[derive(Debug, Clone)]
pub enum Shape {
    Point(Point),
    Line(Vec<Point>),
    Polygon(Polygon),
}

/// A parsed geometry (stored in a document, or given in a query).
#[derive(Debug, Clone)]
pub struct Geometry {
    /// The pieces on the sphere; empty for a legacy point that is not a valid
    /// longitude/latitude (which only flat regions and 2d indexes can use).
    pub shapes: Vec<Shape>,
    /// The flat coordinates when the geometry is a single point (legacy or GeoJSON).
    pub flat_point: Option<Flat>,
    /// Whether it was a legacy coordinate pair.
    pub legacy: bool,
    /// The GeoJSON type name (`"Point"` for legacy pairs).
    pub kind: &'static str,
}

impl Geometry {
    /// Whether this is a single point.
    pub fn is_point(&self) -> bool {
        self.flat_point.is_some()
    }
}

pub(crate) fn bad(msg: impl Into<String>) -> String {
    msg.into()
}

fn is_number(v: &Bson) -> bool {
    crate::cmp::is_number(v)
}

fn number(v: &Bson) -> f64 {
    util::number_as_f64(v).unwrap_or(f64::NAN)
}

/// The elements of an array or the values of a document, in order.
fn elements(v: &Bson) -> Option<Vec<&Bson>> {
    match v {
        Bson::Array(a) => Some(a.iter().collect()),
        Bson::Document(d) => Some(d.values().collect()),
        _ => None,
    }
}

/// mongod's `parseFlatPoint`: two numbers, finite; more only when `allow_more`.
pub fn parse_flat_point(v: &Bson, allow_more: bool) -> Result<Flat, String> {
    let Some(items) = elements(v) else {
        return Err(bad("Point must be an array or object"));
    };
    let (Some(x), Some(y)) = (items.first(), items.get(1)) else {
        return Err(bad("Point must only contain numeric elements"));
    };
    if !is_number(x) || !is_number(y) {
        return Err(bad("Point must only contain numeric elements"));
    }
    if !allow_more && items.len() > 2 {
        return Err(bad("Point must only contain two numeric elements"));
    }
    let p = Flat {
        x: number(x),
        y: number(y),
    };
    if !p.x.is_finite() || !p.y.is_finite() {
        return Err(bad("Point coordinates must be finite numbers"));
    }
    Ok(p)
}

/// Whether a flat point is a valid longitude/latitude.
pub fn valid_lng_lat(p: Flat) -> bool {
    (-180.0..=180.0).contains(&p.x) && (-90.0..=90.0).contains(&p.y)
}

/// A double as C++'s `ostream <<` prints it (`%g`: 6 significant digits), as mongod's
/// geo messages show coordinates (`lng: -27.4823 lat: 153.029`).
pub fn show_coordinate(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return if x.is_nan() {
            "nan".into()
        } else if x == 0.0 {
            "0".into()
        } else if x > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let exp = x.abs().log10().floor() as i32;
    let trim = |s: String| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s
        }
    };
    if (-5..6).contains(&exp) {
        let decimals = usize::try_from(5 - exp).unwrap_or(0);
        trim(format!("{x:.decimals$}"))
    } else {
        let m = x / 10f64.powi(exp);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(format!("{m:.5}")), exp.abs())
    }
}

/// mongod's message for a point that is not a longitude/latitude.
pub fn out_of_bounds(p: Flat) -> String {
    format!(
        "longitude/latitude is out of bounds, lng: {} lat: {}",
        show_coordinate(p.x),
        show_coordinate(p.y)
    )
}

/// The S2 point of a longitude/latitude in degrees.
pub fn to_point(p: Flat) -> Point {
    Point::from(s2::latlng::LatLng::from_degrees(p.y, p.x))
}

/// A valid longitude/latitude as an S2 point.
pub fn sphere_point(p: Flat) -> Result<Point, String> {
    if !valid_lng_lat(p) {
        return Err(out_of_bounds(p));
    }
    Ok(to_point(p))
}

/// A GeoJSON position: an array of at least two numbers (more, e.g. altitude, allowed).
fn parse_position(v: &Bson) -> Result<Point, String> {
    if !matches!(v, Bson::Array(_)) {
        return Err(bad("GeoJSON coordinates must be an array"));
    }
    sphere_point(parse_flat_point(v, true)?)
}

fn parse_positions(v: &Bson) -> Result<Vec<Point>, String> {
    let Bson::Array(items) = v else {
        return Err(bad("GeoJSON coordinates must be an array of coordinates"));
    };
    items.iter().map(parse_position).collect()
}

fn erase_adjacent_duplicates(points: &mut Vec<Point>) {
    points.dedup_by(|b, a| a.0 == b.0);
}

fn show(v: &Bson) -> String {
    util::bson_to_string(v)
}

/// mongod's `parseGeoJSONCRS`: no `crs`, or the named WGS84 ones.
fn parse_crs(obj: &Document, polygon: bool) -> Result<(), String> {
    let Some(crs) = obj.get("crs") else {
        return Ok(());
    };
    let Bson::Document(crs) = crs else {
        return Err(bad("GeoJSON CRS must be an object"));
    };
    if crs.get_str("type").ok() != Some("name") {
        return Err(bad("GeoJSON CRS must have field \"type\": \"name\""));
    }
    let Some(Bson::Document(props)) = crs.get("properties") else {
        return Err(bad("CRS must have field \"properties\" which is an object"));
    };
    let Some(Bson::String(name)) = props.get("name") else {
        return Err(bad("In CRS, \"properties.name\" must be a string"));
    };
    match name.as_str() {
        "urn:ogc:def:crs:OGC:1.3:CRS84" | "EPSG:4326" => Ok(()),
        "urn:x-mongodb:crs:strictwinding:EPSG:4326" if polygon => Err(bad(
            "Eddy does not support big polygons (the strict winding order CRS)",
        )),
        "urn:x-mongodb:crs:strictwinding:EPSG:4326" => {
            Err(bad("Strict winding order is only supported by polygon"))
        }
        other => Err(bad(format!("Unknown CRS name: {other}"))),
    }
}

/// The signed sum of the turning angles of a closed ring: positive when the region
/// to its left is the smaller one (S2's `GetTurningAngle`).
fn turning_angle(v: &[Point]) -> f64 {
    let n = v.len();
    let mut sum = 0.0;
    for i in 0..n {
        let a = &v[(i + n - 1) % n];
        let b = &v[i];
        let c = &v[(i + 1) % n];
        let n1 = a.cross(b);
        let n2 = b.cross(c);
        let cross = n1.cross(&n2);
        let sin = cross.0.dot(&b.0);
        let cos = n1.0.dot(&n2.0);
        sum += sin.atan2(cos);
    }
    sum
}

/// S2's loop validity: no duplicate vertices, no two non-adjacent edges crossing.
fn validate_ring(v: &[Point]) -> Result<(), String> {
    let n = v.len();
    for i in 0..n {
        for j in (i + 1)..n {
            if v[i].0 == v[j].0 {
                return Err(format!("Duplicate vertices at offsets {i} and {j}"));
            }
        }
    }
    for i in 0..n {
        for j in (i + 2)..n {
            if i == 0 && j == n - 1 {
                continue;
            }
            let (a, b) = (&v[i], &v[(i + 1) % n]);
            let (c, d) = (&v[j], &v[(j + 1) % n]);
            if sphere::edges_cross(a, b, c, d) {
                return Err(format!("Edges {i} and {j} cross"));
            }
        }
    }
    Ok(())
}

/// One ring of GeoJSON polygon coordinates (mongod's `parseGeoJSONPolygonCoordinates`
/// per loop): closed, at least 3 distinct vertices, valid; oriented around the smaller
/// region.
fn parse_ring(v: &Bson) -> Result<Ring, String> {
    let mut points = parse_positions(v)?;
    if points.is_empty() {
        return Err(format!("Loop has no vertices: {}", show(v)));
    }
    if points[0].0 != points[points.len() - 1].0 {
        return Err(format!("Loop is not closed: {}", show(v)));
    }
    erase_adjacent_duplicates(&mut points);
    points.pop();
    if points.len() < 3 {
        return Err(format!(
            "Loop must have at least 3 different vertices: {}",
            show(v)
        ));
    }
    if let Err(e) = validate_ring(&points) {
        return Err(format!("Loop is not valid: {} {e}", show(v)));
    }
    if turning_angle(&points) < 0.0 {
        points.reverse();
    }
    Ok(Ring { vertices: points })
}

fn parse_polygon_coordinates(v: &Bson) -> Result<Polygon, String> {
    let Bson::Array(rings) = v else {
        return Err(bad("Polygon coordinates must be an array"));
    };
    let mut parsed: Vec<Ring> = Vec::with_capacity(rings.len());
    for ring in rings {
        let r = parse_ring(ring)?;
        if let Some(shell) = parsed.first() {
            if !sphere::ring_contains_ring(shell, &r) {
                return Err(format!(
                    "Secondary loops not contained by first exterior loop - secondary loops must be holes: {} first loop: {}",
                    show(ring),
                    show(&rings[0])
                ));
            }
        }
        parsed.push(r);
    }
    if parsed.is_empty() {
        return Err(bad("Polygon has no loops."));
    }
    // Holes must not cross or nest in one another.
    for i in 1..parsed.len() {
        for j in (i + 1)..parsed.len() {
            if sphere::rings_cross(&parsed[i], &parsed[j])
                || sphere::ring_contains_ring(&parsed[i], &parsed[j])
                || sphere::ring_contains_ring(&parsed[j], &parsed[i])
            {
                return Err(format!(
                    "Polygon isn't valid: Loop {} crosses or contains loop {} {}",
                    i,
                    j,
                    show(v)
                ));
            }
        }
    }
    let shell = parsed.remove(0);
    Ok(Polygon {
        shell,
        holes: parsed,
    })
}

fn parse_line_coordinates(v: &Bson) -> Result<Vec<Point>, String> {
    let mut points = parse_positions(v)?;
    erase_adjacent_duplicates(&mut points);
    if points.len() < 2 {
        return Err(format!(
            "GeoJSON LineString must have at least 2 vertices: {}",
            show(v)
        ));
    }
    for w in points.windows(2) {
        if w[0].0 == (w[1].0 * -1.0) {
            return Err(format!(
                "GeoJSON LineString is not valid: Vertices are antipodal {}",
                show(v)
            ));
        }
    }
    Ok(points)
}

/// The GeoJSON `type` of an object, if it names one.
fn geojson_type(obj: &Document) -> Option<&'static str> {
    let Ok(t) = obj.get_str("type") else {
        return None;
    };
    [
        "Point",
        "LineString",
        "Polygon",
        "MultiPoint",
        "MultiLineString",
        "MultiPolygon",
        "GeometryCollection",
    ]
    .into_iter()
    .find(|k| *k == t)
}

fn parse_geojson_shapes(
    obj: &Document,
    kind: &'static str,
    nested: bool,
    out: &mut Vec<Shape>,
) -> Result<Option<Flat>, String> {
    let coords = obj.get("coordinates").unwrap_or(&Bson::Null);
    match kind {
        "Point" => {
            parse_crs(obj, false)?;
            let p = parse_flat_point(coords, true)?;
            out.push(Shape::Point(sphere_point(p)?));
            return Ok(Some(p));
        }
        "LineString" => {
            parse_crs(obj, false)?;
            out.push(Shape::Line(parse_line_coordinates(coords)?));
        }
        "Polygon" => {
            parse_crs(obj, true)?;
            out.push(Shape::Polygon(parse_polygon_coordinates(coords)?));
        }
        "MultiPoint" => {
            parse_crs(obj, false)?;
            let points = parse_positions(coords)?;
            if points.is_empty() {
                return Err(bad("MultiPoint coordinates must have at least 1 element"));
            }
            out.extend(points.into_iter().map(Shape::Point));
        }
        "MultiLineString" => {
            parse_crs(obj, false)?;
            let Bson::Array(lines) = coords else {
                return Err(bad("MultiLineString coordinates must be an array"));
            };
            if lines.is_empty() {
                return Err(bad(
                    "MultiLineString coordinates must have at least 1 element",
                ));
            }
            for l in lines {
                out.push(Shape::Line(parse_line_coordinates(l)?));
            }
        }
        "MultiPolygon" => {
            parse_crs(obj, false)?;
            let Bson::Array(polys) = coords else {
                return Err(bad("MultiPolygon coordinates must be an array"));
            };
            if polys.is_empty() {
                return Err(bad("MultiPolygon coordinates must have at least 1 element"));
            }
            for p in polys {
                out.push(Shape::Polygon(parse_polygon_coordinates(p)?));
            }
        }
        _ => {
            let Some(Bson::Array(geoms)) = obj.get("geometries") else {
                return Err(bad("GeometryCollection geometries must be an array"));
            };
            if geoms.is_empty() {
                return Err(bad(
                    "GeometryCollection geometries must have at least 1 element",
                ));
            }
            let _ = nested;
            for (i, g) in geoms.iter().enumerate() {
                let Bson::Document(g) = g else {
                    return Err(format!("Element {i} of \"geometries\" is not an object"));
                };
                let Some(k) = geojson_type(g) else {
                    return Err(format!(
                        "Unknown GeoJSON type: {}",
                        show(&Bson::Document(g.clone()))
                    ));
                };
                if k == "GeometryCollection" {
                    return Err(format!(
                        "GeometryCollections cannot be nested: {}",
                        show(&Bson::Document(g.clone()))
                    ));
                }
                parse_geojson_shapes(g, k, true, out)?;
            }
        }
    }
    Ok(None)
}

/// Parses a GeoJSON object of any type (a query's `$geometry`, or a stored value).
pub fn parse_geojson(obj: &Document) -> Result<Geometry, String> {
    let Some(kind) = geojson_type(obj) else {
        return Err(format!(
            "unknown GeoJSON type: {}",
            show(&Bson::Document(obj.clone()))
        ));
    };
    let mut shapes = Vec::new();
    let flat_point = parse_geojson_shapes(obj, kind, false, &mut shapes)?;
    Ok(Geometry {
        shapes,
        flat_point,
        legacy: false,
        kind,
    })
}

/// A legacy coordinate pair (stored: extra fields allowed). Out-of-range pairs parse
/// with no spherical shape.
pub fn parse_legacy_point(v: &Bson, allow_more: bool) -> Result<Geometry, String> {
    let p = parse_flat_point(v, allow_more)?;
    Ok(Geometry {
        shapes: if valid_lng_lat(p) {
            vec![Shape::Point(to_point(p))]
        } else {
            Vec::new()
        },
        flat_point: Some(p),
        legacy: true,
        kind: "Point",
    })
}

/// Whether a value is laid out as a legacy point (`[x, y]`, or an object whose first
/// value is a number), as mongod decides between the two syntaxes.
fn looks_legacy(v: &Bson) -> bool {
    match v {
        Bson::Array(_) => true,
        Bson::Document(d) => d.values().next().is_some_and(is_number),
        _ => false,
    }
}

/// mongod's `GeometryContainer::parseFromStorage`: a stored value as geometry.
pub fn parse_stored(v: &Bson) -> Result<Geometry, String> {
    match v {
        Bson::Array(_) | Bson::Document(_) if looks_legacy(v) => parse_legacy_point(v, true),
        Bson::Document(d) => parse_geojson(d),
        other => Err(format!(
            "geo element must be an array or object: {}",
            show(other)
        )),
    }
}

/// The distance in radians between two points of the sphere.
pub fn angle(a: &Point, b: &Point) -> f64 {
    a.distance(b).rad()
}

#[cfg(test)]
mod tests;
