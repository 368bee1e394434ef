//! Spherical predicates between shapes: containment in a polygon or a cap, and
//! intersection, over `s2`'s points, robust edge crossings and point-to-edge
//! distances. Boundaries count as inside (a point on a polygon's edge is within it and
//! intersects it).

use s2::edge_crossings::{crossing_sign, Crossing};
use s2::edgeutil::distance_from_segment;
use s2::point::Point;

use super::{angle, Polygon, Ring, Shape};

/// Radians under which a point lies on an edge or two points are one (about 0.6 mm).
const ON_EDGE: f64 = 1e-10;

/// Whether segments `ab` and `cd` cross at a point interior to both.
pub fn edges_cross(a: &Point, b: &Point, c: &Point, d: &Point) -> bool {
    crossing_sign(a, b, c, d) == Crossing::Cross
}

/// Whether segments `ab` and `cd` share any point (crossing, touching, or a vertex).
fn edges_touch(a: &Point, b: &Point, c: &Point, d: &Point) -> bool {
    crossing_sign(a, b, c, d) != Crossing::DoNotCross
        && (edges_cross(a, b, c, d)
            || on_segment(c, a, b)
            || on_segment(d, a, b)
            || on_segment(a, c, d)
            || on_segment(b, c, d))
}

/// Whether `p` lies on the segment `ab`.
pub fn on_segment(p: &Point, a: &Point, b: &Point) -> bool {
    distance_from_segment(p, a, b).rad() < ON_EDGE
}

fn edges(v: &[Point]) -> impl Iterator<Item = (&Point, &Point)> {
    let n = v.len();
    (0..n).map(move |i| (&v[i], &v[(i + 1) % n]))
}

fn on_boundary(ring: &Ring, p: &Point) -> bool {
    edges(&ring.vertices).any(|(a, b)| on_segment(p, a, b))
}

/// Whether `p` is strictly inside the ring's (smaller, left-hand) region: the winding
/// angle of the ring seen from `p` is a full turn.
fn strictly_inside(ring: &Ring, p: &Point) -> bool {
    let mut sum = 0.0;
    for (a, b) in edges(&ring.vertices) {
        let det = p.0.dot(&a.0.cross(&b.0));
        let cos = a.0.dot(&b.0) - p.0.dot(&a.0) * p.0.dot(&b.0);
        sum += det.atan2(cos);
    }
    sum > std::f64::consts::PI
}

/// Whether the ring's region (boundary included) holds `p`.
pub fn ring_contains_point(ring: &Ring, p: &Point) -> bool {
    on_boundary(ring, p) || strictly_inside(ring, p)
}

/// Whether the edges of two rings cross.
pub fn rings_cross(a: &Ring, b: &Ring) -> bool {
    edges(&a.vertices).any(|(p, q)| edges(&b.vertices).any(|(r, s)| edges_cross(p, q, r, s)))
}

/// Whether `inner`'s region lies within `outer`'s.
pub fn ring_contains_ring(outer: &Ring, inner: &Ring) -> bool {
    inner.vertices.iter().all(|v| ring_contains_point(outer, v)) && !rings_cross(outer, inner)
}

/// Whether a polygon (boundary included, holes excluded) holds `p`.
pub fn polygon_contains_point(poly: &Polygon, p: &Point) -> bool {
    ring_contains_point(&poly.shell, p) && !poly.holes.iter().any(|h| strictly_inside(h, p))
}

fn polygon_rings(poly: &Polygon) -> impl Iterator<Item = &Ring> {
    std::iter::once(&poly.shell).chain(poly.holes.iter())
}

/// Whether a chain of edges crosses any ring of a polygon.
fn chain_crosses_polygon(chain: &[Point], closed: bool, poly: &Polygon) -> bool {
    let n = chain.len();
    let count = if closed { n } else { n.saturating_sub(1) };
    (0..count).any(|i| {
        let (a, b) = (&chain[i], &chain[(i + 1) % n]);
        polygon_rings(poly).any(|r| edges(&r.vertices).any(|(c, d)| edges_cross(a, b, c, d)))
    })
}

/// Whether `shape` lies within `poly`.
pub fn shape_within_polygon(shape: &Shape, poly: &Polygon) -> bool {
    match shape {
        Shape::Point(p) => polygon_contains_point(poly, p),
        Shape::Line(points) => {
            points.iter().all(|p| polygon_contains_point(poly, p))
                && !chain_crosses_polygon(points, false, poly)
        }
        Shape::Polygon(inner) => {
            inner
                .shell
                .vertices
                .iter()
                .all(|p| polygon_contains_point(poly, p))
                && !chain_crosses_polygon(&inner.shell.vertices, true, poly)
                // A hole of `poly` inside `inner` leaves part of `inner` outside.
                && !poly.holes.iter().any(|h| {
                    h.vertices
                        .iter()
                        .any(|v| strictly_inside(&inner.shell, v))
                })
        }
    }
}

/// Whether `shape` lies within the cap of `radius` radians around `center`.
pub fn shape_within_cap(shape: &Shape, center: &Point, radius: f64) -> bool {
    let inside = |p: &Point| angle(p, center) <= radius;
    match shape {
        Shape::Point(p) => inside(p),
        Shape::Line(points) => points.iter().all(inside),
        Shape::Polygon(poly) => poly.shell.vertices.iter().all(inside),
    }
}

fn vertices(shape: &Shape) -> Vec<&Point> {
    match shape {
        Shape::Point(p) => vec![p],
        Shape::Line(points) => points.iter().collect(),
        Shape::Polygon(poly) => polygon_rings(poly)
            .flat_map(|r| r.vertices.iter())
            .collect(),
    }
}

/// The edges of a shape as segments (a point has none: its vertex is enough).
fn segments(shape: &Shape) -> Vec<(&Point, &Point)> {
    match shape {
        Shape::Point(_) => Vec::new(),
        Shape::Line(points) => points.windows(2).map(|w| (&w[0], &w[1])).collect(),
        Shape::Polygon(poly) => polygon_rings(poly)
            .flat_map(|r| edges(&r.vertices))
            .collect(),
    }
}

fn shape_contains_point(shape: &Shape, p: &Point) -> bool {
    match shape {
        Shape::Point(q) => angle(p, q) < ON_EDGE,
        Shape::Line(points) => points.windows(2).any(|w| on_segment(p, &w[0], &w[1])),
        Shape::Polygon(poly) => polygon_contains_point(poly, p),
    }
}

/// Whether two shapes share a point.
pub fn shapes_intersect(a: &Shape, b: &Shape) -> bool {
    if vertices(a).iter().any(|p| shape_contains_point(b, p))
        || vertices(b).iter().any(|p| shape_contains_point(a, p))
    {
        return true;
    }
    let sb = segments(b);
    segments(a)
        .iter()
        .any(|(p, q)| sb.iter().any(|(r, s)| edges_touch(p, q, r, s)))
}

/// The smallest distance in radians from `p` to `shape` (0 inside a polygon).
pub fn distance_to_shape(p: &Point, shape: &Shape) -> f64 {
    match shape {
        Shape::Point(q) => angle(p, q),
        Shape::Line(points) => points
            .windows(2)
            .map(|w| distance_from_segment(p, &w[0], &w[1]).rad())
            .fold(f64::INFINITY, f64::min),
        Shape::Polygon(poly) => {
            if polygon_contains_point(poly, p) {
                return 0.0;
            }
            polygon_rings(poly)
                .flat_map(|r| edges(&r.vertices))
                .map(|(a, b)| distance_from_segment(p, a, b).rad())
                .fold(f64::INFINITY, f64::min)
        }
    }
}
