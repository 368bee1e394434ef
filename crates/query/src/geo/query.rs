//! The geo query operators as the matcher and the planner see them: `$geoWithin`
//! (`$geometry`, `$box`, `$polygon`, `$center`, `$centerSphere`), `$geoIntersects`
//! and `$near`/`$nearSphere` (with `$minDistance`/`$maxDistance`), parsed as mongod's
//! `GeoExpression`/`GeoNearExpression` parse them, with their BadValue messages.

use bson::{Bson, Document};
use s2::point::Point;

use super::flat::{self, Region};
use super::{
    parse_flat_point, parse_geojson, parse_stored, sphere, sphere_point, Flat, Geometry, Polygon,
    Shape, EARTH_RADIUS_METERS,
};
use crate::util;

/// What `$geoWithin` asks for.
#[derive(Debug, Clone)]
pub enum Within {
    /// `$geometry` Polygon or MultiPolygon.
    Polygons(Vec<Polygon>),
    /// `$centerSphere`: a cap of `radius` radians.
    Cap {
        center: Point,
        center_flat: Flat,
        radius: f64,
    },
    /// `$box`, `$polygon`, `$center`.
    Flat(Region),
}

/// A parsed `$geoWithin` or `$geoIntersects`.
#[derive(Debug, Clone)]
pub enum GeoPredicate {
    Within(Within),
    Intersects(Geometry),
}

fn show(v: &Bson) -> String {
    util::bson_to_string(v)
}

fn specifier_error(op: &str, arg: &Bson) -> String {
    format!("{op} not supported with provided geometry: {}", show(arg))
}

impl GeoPredicate {
    /// Parses the argument of `$geoWithin` (`$within`) or `$geoIntersects`.
    pub fn parse(op: &str, arg: &Bson) -> Result<GeoPredicate, String> {
        let Bson::Document(d) = arg else {
            return Err(format!("{op} must be an object"));
        };
        let Some((spec, value)) = d.iter().next() else {
            return Err(specifier_error(op, arg));
        };
        let within = op != "$geoIntersects";
        match spec.as_str() {
            "$geometry" => {
                let Bson::Document(g) = value else {
                    return Err(format!("$geometry must be an object: {}", show(value)));
                };
                let geometry = parse_geojson(g)?;
                if !within {
                    return Ok(GeoPredicate::Intersects(geometry));
                }
                if !matches!(geometry.kind, "Polygon" | "MultiPolygon") {
                    return Err(specifier_error(op, arg));
                }
                let polygons = geometry
                    .shapes
                    .into_iter()
                    .filter_map(|s| match s {
                        Shape::Polygon(p) => Some(p),
                        _ => None,
                    })
                    .collect();
                Ok(GeoPredicate::Within(Within::Polygons(polygons)))
            }
            "$box" | "$polygon" | "$center" | "$centerSphere" if within => {
                let Bson::Array(items) = value else {
                    return Err(specifier_error(op, arg));
                };
                Ok(GeoPredicate::Within(parse_legacy_region(spec, items)?))
            }
            "$box" | "$polygon" | "$center" | "$centerSphere" => Err(specifier_error(op, arg)),
            other => Err(format!("unknown geo specifier: {other}: {}", show(value))),
        }
    }

    /// Whether a stored value satisfies the predicate (values that are not geometry
    /// never do).
    pub fn matches(&self, v: &Bson) -> bool {
        let Ok(g) = parse_stored(v) else {
            return false;
        };
        self.matches_geometry(&g)
    }

    /// Whether a parsed stored geometry satisfies the predicate.
    pub fn matches_geometry(&self, g: &Geometry) -> bool {
        match self {
            GeoPredicate::Within(Within::Flat(region)) => {
                g.flat_point.is_some_and(|p| region.contains(p))
            }
            GeoPredicate::Within(Within::Cap { center, radius, .. }) => {
                !g.shapes.is_empty()
                    && g.shapes
                        .iter()
                        .all(|s| sphere::shape_within_cap(s, center, *radius))
            }
            GeoPredicate::Within(Within::Polygons(polys)) => {
                !g.shapes.is_empty()
                    && g.shapes
                        .iter()
                        .all(|s| polys.iter().any(|p| sphere::shape_within_polygon(s, p)))
            }
            GeoPredicate::Intersects(q) => g
                .shapes
                .iter()
                .any(|s| q.shapes.iter().any(|t| sphere::shapes_intersect(s, t))),
        }
    }

    /// Whether the predicate is flat (`$box`, `$polygon`, `$center`): only a `2d`
    /// index can serve it.
    pub fn is_flat(&self) -> bool {
        matches!(self, GeoPredicate::Within(Within::Flat(_)))
    }
}

fn parse_legacy_region(spec: &str, items: &[Bson]) -> Result<Within, String> {
    match spec {
        "$box" => {
            let (Some(a), Some(b)) = (items.first(), items.get(1)) else {
                return Err("Point must be an array or object".into());
            };
            let a = parse_flat_point(a, false)?;
            let b = parse_flat_point(b, false)?;
            Ok(Within::Flat(Region::Box {
                min: Flat {
                    x: a.x.min(b.x),
                    y: a.y.min(b.y),
                },
                max: Flat {
                    x: a.x.max(b.x),
                    y: a.y.max(b.y),
                },
            }))
        }
        "$polygon" => {
            let points = items
                .iter()
                .map(|p| parse_flat_point(p, false))
                .collect::<Result<Vec<_>, _>>()?;
            if points.len() < 3 {
                return Err("Polygon must have at least 3 points".into());
            }
            Ok(Within::Flat(Region::Polygon(points)))
        }
        _ => {
            let Some(center) = items.first() else {
                return Err("Point must be an array or object".into());
            };
            let center = parse_flat_point(center, false)?;
            let radius = match items.get(1) {
                Some(r) if crate::cmp::is_number(r) => util::number_as_f64(r).unwrap_or(f64::NAN),
                _ => f64::NAN,
            };
            if radius.is_nan() || radius < 0.0 {
                return Err("radius must be a non-negative number".into());
            }
            if items.len() > 2 {
                return Err("Only 2 fields allowed for circular region".into());
            }
            if spec == "$center" {
                Ok(Within::Flat(Region::Circle { center, radius }))
            } else {
                Ok(Within::Cap {
                    center: sphere_point(center)?,
                    center_flat: center,
                    radius,
                })
            }
        }
    }
}

/// A parsed `$near`/`$nearSphere` (or the `near` of a `$geoNear` stage).
#[derive(Debug, Clone)]
pub struct Near {
    /// The point's flat coordinates.
    pub flat: Flat,
    /// The point on the sphere, when it is a valid longitude/latitude.
    pub point: Option<Point>,
    /// Spherical distances (else flat, in coordinate units).
    pub spherical: bool,
    /// Distances are meters (a GeoJSON point, spherical); else radians or flat units.
    pub meters: bool,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

fn non_negative(name: &str, v: &Bson) -> Result<f64, String> {
    if !crate::cmp::is_number(v) {
        return Err(format!("{name} must be a number"));
    }
    let n = util::number_as_f64(v).unwrap_or(f64::NAN);
    if n.is_nan() || n < 0.0 {
        return Err(format!("{name} must be non-negative"));
    }
    Ok(n)
}

impl Near {
    /// Parses the operator document `{$near: .., $maxDistance: .., $minDistance: ..}`
    /// (mongod's `GeoNearExpression::parseNewQuery`/`parseLegacyQuery`).
    pub fn parse(ops: &Document) -> Result<Near, String> {
        let mut near: Option<Near> = None;
        let mut min = None;
        let mut max = None;
        for (k, v) in ops {
            match k.as_str() {
                "$near" | "$nearSphere" | "$geoNear" => {
                    if near.is_some() {
                        return Err("Too many geoNear expressions".into());
                    }
                    let sphere = k == "$nearSphere";
                    near = Some(Near::parse_point(k, v, sphere)?);
                    if let Bson::Document(d) = v {
                        if let Some(m) = d.get("$maxDistance") {
                            max = Some(non_negative("$maxDistance", m)?);
                        }
                        if let Some(m) = d.get("$minDistance") {
                            min = Some(non_negative("$minDistance", m)?);
                        }
                    }
                }
                "$maxDistance" => max = Some(non_negative("$maxDistance", v)?),
                "$minDistance" => min = Some(non_negative("$minDistance", v)?),
                other => return Err(format!("invalid argument in geo near query: {other}")),
            }
        }
        let mut near = near.ok_or("geo near query requires $near")?;
        near.min = min;
        near.max = max;
        Ok(near)
    }

    /// The point of `$near: <point>`: legacy (`[x, y]`, `{x, y}`) or `{$geometry: ...}`.
    pub fn parse_point(op: &str, v: &Bson, sphere: bool) -> Result<Near, String> {
        if let Bson::Document(d) = v {
            if let Some(g) = d.get("$geometry") {
                let Bson::Document(g) = g else {
                    return Err(format!("$geometry must be an object: {}", show(g)));
                };
                if g.get_str("type").ok() != Some("Point") {
                    return Err(format!(
                        "invalid point in geo near query $geometry argument: {}  Point must be a GeoJSON point",
                        show(&Bson::Document(g.clone()))
                    ));
                }
                let geometry = parse_geojson(g).map_err(|e| {
                    format!(
                        "invalid point in geo near query $geometry argument: {}  {e}",
                        show(&Bson::Document(g.clone()))
                    )
                })?;
                let flat = geometry.flat_point.unwrap_or(Flat { x: 0.0, y: 0.0 });
                return Ok(Near {
                    flat,
                    point: Some(super::to_point(flat)),
                    spherical: true,
                    meters: true,
                    min: None,
                    max: None,
                });
            }
        }
        let flat = parse_flat_point(v, false)
            .map_err(|e| format!("{op} must be a point: {}  {e}", show(v)))?;
        if sphere && !super::valid_lng_lat(flat) {
            return Err(format!(
                "invalid point in geo near query: {}  {}",
                show(v),
                super::out_of_bounds(flat)
            ));
        }
        Ok(Near {
            flat,
            point: super::valid_lng_lat(flat).then(|| super::to_point(flat)),
            spherical: sphere,
            meters: false,
            min: None,
            max: None,
        })
    }

    /// The distance from the near point to a parsed stored geometry, in the query's
    /// units; `None` when the geometry cannot be measured this way.
    pub fn distance_to(&self, g: &Geometry) -> Option<f64> {
        if !self.spherical {
            let p = g.flat_point?;
            return Some(flat::distance(self.flat, p));
        }
        let center = self.point.as_ref()?;
        if g.shapes.is_empty() {
            return None;
        }
        // A flat-only GeoJSON query (`meters`) over legacy points still measures on the sphere.
        let radians = g
            .shapes
            .iter()
            .map(|s| sphere::distance_to_shape(center, s))
            .fold(f64::INFINITY, f64::min);
        Some(if self.meters {
            radians * EARTH_RADIUS_METERS
        } else {
            radians
        })
    }

    /// The distance to a stored value, if it is geometry.
    pub fn distance(&self, v: &Bson) -> Option<f64> {
        self.distance_to(&parse_stored(v).ok()?)
    }

    /// Whether a distance lies within `$minDistance`/`$maxDistance`.
    pub fn in_range(&self, d: f64) -> bool {
        self.min.is_none_or(|m| d >= m) && self.max.is_none_or(|m| d <= m)
    }

    /// The largest distance to read, in radians on the sphere (or flat units).
    pub fn max_radians(&self) -> Option<f64> {
        self.max.map(|m| {
            if self.meters {
                m / EARTH_RADIUS_METERS
            } else {
                m
            }
        })
    }

    /// The matcher's view: a stored value within the distance bounds.
    pub fn matches(&self, v: &Bson) -> bool {
        self.distance(v).is_some_and(|d| self.in_range(d))
    }
}
