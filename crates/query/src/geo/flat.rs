//! Flat (legacy) regions of `$geoWithin`: `$box`, `$polygon` and `$center`, on the
//! flat coordinates of points, boundaries included, as mongod's `R2Region`s.

use super::Flat;

/// A flat region.
#[derive(Debug, Clone, PartialEq)]
pub enum Region {
    /// `$box`: the lower-left and upper-right corners.
    Box { min: Flat, max: Flat },
    /// `$polygon`: at least three vertices, implicitly closed.
    Polygon(Vec<Flat>),
    /// `$center`: a circle in coordinate units.
    Circle { center: Flat, radius: f64 },
}

impl Region {
    /// Whether the region (boundary included) holds `p`.
    pub fn contains(&self, p: Flat) -> bool {
        match self {
            Region::Box { min, max } => {
                min.x <= p.x && p.x <= max.x && min.y <= p.y && p.y <= max.y
            }
            Region::Circle { center, radius } => distance(*center, p) <= *radius,
            Region::Polygon(v) => polygon_contains(v, p),
        }
    }

    /// The smallest box around the region: `(min, max)`.
    pub fn bounds(&self) -> (Flat, Flat) {
        match self {
            Region::Box { min, max } => (*min, *max),
            Region::Circle { center, radius } => (
                Flat {
                    x: center.x - radius,
                    y: center.y - radius,
                },
                Flat {
                    x: center.x + radius,
                    y: center.y + radius,
                },
            ),
            Region::Polygon(v) => {
                let mut min = Flat {
                    x: f64::INFINITY,
                    y: f64::INFINITY,
                };
                let mut max = Flat {
                    x: f64::NEG_INFINITY,
                    y: f64::NEG_INFINITY,
                };
                for p in v {
                    min.x = min.x.min(p.x);
                    min.y = min.y.min(p.y);
                    max.x = max.x.max(p.x);
                    max.y = max.y.max(p.y);
                }
                (min, max)
            }
        }
    }
}

/// Euclidean distance.
pub fn distance(a: Flat, b: Flat) -> f64 {
    ((a.x - b.x).powi(2) + (a.y - b.y).powi(2)).sqrt()
}

fn on_segment(p: Flat, a: Flat, b: Flat) -> bool {
    let cross = (b.x - a.x) * (p.y - a.y) - (b.y - a.y) * (p.x - a.x);
    cross.abs() <= 1e-12 * (1.0 + (b.x - a.x).abs() + (b.y - a.y).abs())
        && p.x >= a.x.min(b.x)
        && p.x <= a.x.max(b.x)
        && p.y >= a.y.min(b.y)
        && p.y <= a.y.max(b.y)
}

/// Ray casting, with points on an edge inside.
fn polygon_contains(v: &[Flat], p: Flat) -> bool {
    let n = v.len();
    let mut inside = false;
    for i in 0..n {
        let (a, b) = (v[i], v[(i + 1) % n]);
        if on_segment(p, a, b) {
            return true;
        }
        if (a.y > p.y) != (b.y > p.y) {
            let x = a.x + (p.y - a.y) * (b.x - a.x) / (b.y - a.y);
            if p.x < x {
                inside = !inside;
            }
        }
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(x: f64, y: f64) -> Flat {
        Flat { x, y }
    }

    #[test]
    fn regions_hold_their_boundaries() {
        let b = Region::Box {
            min: f(0.0, 0.0),
            max: f(100.0, 100.0),
        };
        assert!(b.contains(f(100.0, 0.0)) && b.contains(f(50.0, 50.0)));
        assert!(!b.contains(f(100.1, 0.0)));
        let c = Region::Circle {
            center: f(0.0, 0.0),
            radius: 10.0,
        };
        assert!(c.contains(f(6.0, 8.0)) && !c.contains(f(7.0, 8.0)));
        let tri = Region::Polygon(vec![f(0.0, 0.0), f(3.0, 6.0), f(6.0, 0.0)]);
        assert!(tri.contains(f(3.0, 1.0)) && tri.contains(f(3.0, 0.0)));
        assert!(!tri.contains(f(0.0, 3.0)));
    }
}
