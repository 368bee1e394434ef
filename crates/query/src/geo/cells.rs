//! Index keys of geo indexes and the key intervals a query region covers.
//!
//! * `2dsphere`: a point is its leaf S2 cell; a line or polygon is an S2 covering of
//!   its bounding latitude/longitude rectangle (at most [`STORED_CELLS`] cells). A
//!   query region is covered the same way; the keys that can hold a geometry meeting
//!   the region are those of the covering cells' descendants (a range of cell ids per
//!   cell) and of their ancestors (one id per level), as mongod reads its
//!   `2dsphereIndexVersion: 3` keys.
//! * `2d`: a point is a geohash of `bits` bits per coordinate over `[min, max)`, x and
//!   y bits interleaved (a Z-order curve), so every grid cell is a range of hashes; a
//!   query box is covered by the grid cells of one level that overlap it.
//!
//! Keys are stored as Int64s whose order is the unsigned order of the cell ids
//! ([`key_value`]), so the ordinary index key encoding and range scans serve them.

use bson::Bson;
use s2::cap::Cap;
use s2::cellid::CellID;
use s2::point::Point;
use s2::rect::Rect;
use s2::rect_bounder::RectBounder;
use s2::region::RegionCoverer;
use s2::s1::Angle;

use super::{Flat, Geometry, Shape};

/// The most cells a stored line or polygon is indexed under.
pub const STORED_CELLS: usize = 8;
/// The most cells a query region is covered by.
pub const QUERY_CELLS: usize = 20;

/// The Int64 under which a 64-bit cell id or hash is stored (order-preserving).
pub fn key_value(id: u64) -> Bson {
    Bson::Int64((id ^ (1 << 63)) as i64)
}

/// Inclusive ranges of cell ids (or hashes), ascending and disjoint.
pub type Ranges = Vec<(u64, u64)>;

fn merge(mut ranges: Ranges) -> Ranges {
    ranges.sort_unstable();
    let mut out: Ranges = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

fn coverer(max_cells: usize, max_level: u8) -> RegionCoverer {
    RegionCoverer {
        min_level: 0,
        max_level,
        level_mod: 1,
        max_cells,
    }
}

/// The bounding rectangle of shapes (edges follow great circles).
fn bound(shapes: &[Shape]) -> Rect {
    let mut rect = Rect::empty();
    for s in shapes {
        let mut b = RectBounder::new();
        match s {
            Shape::Point(p) => b.add_point(p),
            Shape::Line(points) => points.iter().for_each(|p| b.add_point(p)),
            Shape::Polygon(poly) => {
                for p in poly
                    .shell
                    .vertices
                    .iter()
                    .chain(poly.shell.vertices.first())
                {
                    b.add_point(p);
                }
            }
        }
        rect = rect.union(&b.get_bound());
    }
    rect
}

/// The cells a stored geometry is indexed under in a `2dsphere` index.
pub fn sphere_cells(g: &Geometry) -> Vec<u64> {
    let mut out = Vec::new();
    for s in &g.shapes {
        match s {
            Shape::Point(p) => out.push(CellID::from(p).0),
            other => {
                let rect = bound(std::slice::from_ref(other));
                let covering = coverer(STORED_CELLS, 30).covering(&rect);
                out.extend(covering.0.iter().map(|c| c.0));
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn ranges_of_cells(cells: &[CellID]) -> Ranges {
    let mut ranges = Vec::new();
    for c in cells {
        ranges.push((c.range_min().0, c.range_max().0));
        for level in 0..c.level() {
            let a = c.parent(level).0;
            ranges.push((a, a));
        }
    }
    merge(ranges)
}

/// The cell-id ranges that can hold a geometry meeting the bounding rectangle of
/// `shapes`.
pub fn sphere_ranges_for_shapes(shapes: &[Shape]) -> Ranges {
    let rect = bound(shapes);
    let covering = coverer(QUERY_CELLS, 30).covering(&rect);
    ranges_of_cells(&covering.0)
}

/// The cell-id ranges that can hold a geometry within `radius` radians of `center`
/// (`None`: the whole sphere).
pub fn sphere_ranges_for_cap(center: &Point, radius: f64) -> Ranges {
    if radius >= std::f64::consts::PI {
        return vec![(0, u64::MAX)];
    }
    let cap = Cap::from_center_angle(center, &Angle::from(s2::s1::Rad(radius)));
    let covering = coverer(QUERY_CELLS, 30).covering(&cap);
    ranges_of_cells(&covering.0)
}

/// A `2d` index's grid: `bits` per coordinate over `[min, max)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grid {
    pub bits: u32,
    pub min: f64,
    pub max: f64,
}

impl Default for Grid {
    fn default() -> Grid {
        Grid {
            bits: 26,
            min: -180.0,
            max: 180.0,
        }
    }
}

fn interleave(x: u64, y: u64, bits: u32) -> u64 {
    let mut h = 0u64;
    for i in (0..bits).rev() {
        h = (h << 1) | ((x >> i) & 1);
        h = (h << 1) | ((y >> i) & 1);
    }
    h
}

impl Grid {
    fn cells(&self) -> f64 {
        (1u64 << self.bits) as f64
    }

    /// The grid column of a coordinate at full resolution, clamped to the grid.
    fn column(&self, v: f64) -> u64 {
        let scaled = ((v - self.min) / (self.max - self.min) * self.cells()).floor();
        scaled.clamp(0.0, self.cells() - 1.0) as u64
    }

    /// Whether a point lies in `[min, max)` on both axes.
    pub fn holds(&self, p: Flat) -> bool {
        p.x >= self.min && p.x < self.max && p.y >= self.min && p.y < self.max
    }

    /// The geohash of a point inside the grid.
    pub fn hash(&self, p: Flat) -> u64 {
        interleave(self.column(p.x), self.column(p.y), self.bits)
    }

    /// The hash ranges of the grid cells, at one level, that overlap the box
    /// `[min, max]` (at most about 64 cells).
    pub fn ranges_for_box(&self, min: Flat, max: Flat) -> Ranges {
        let full = (
            self.column(min.x),
            self.column(min.y),
            self.column(max.x),
            self.column(max.y),
        );
        let mut level = self.bits;
        loop {
            let shift = self.bits - level;
            let nx = (full.2 >> shift) - (full.0 >> shift) + 1;
            let ny = (full.3 >> shift) - (full.1 >> shift) + 1;
            if nx * ny <= 64 || level == 0 {
                let mut ranges = Vec::with_capacity((nx * ny) as usize);
                for i in (full.0 >> shift)..=(full.2 >> shift) {
                    for j in (full.1 >> shift)..=(full.3 >> shift) {
                        let h = interleave(i, j, level);
                        let lo = h << (2 * shift);
                        let hi = lo | ((1u64 << (2 * shift)) - 1);
                        ranges.push((lo, hi));
                    }
                }
                return merge(ranges);
            }
            level -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_keep_the_unsigned_order() {
        let ids = [0u64, 1, 1 << 62, (1 << 63) - 1, 1 << 63, u64::MAX];
        for w in ids.windows(2) {
            let (Bson::Int64(a), Bson::Int64(b)) = (key_value(w[0]), key_value(w[1])) else {
                panic!("int64 keys");
            };
            assert!(a < b);
        }
    }

    #[test]
    fn cap_ranges_hold_the_points_inside() {
        let center = super::super::to_point(Flat {
            x: -73.97,
            y: 40.77,
        });
        let near = super::super::to_point(Flat {
            x: -73.98,
            y: 40.78,
        });
        let far = super::super::to_point(Flat { x: 2.35, y: 48.85 });
        let ranges = sphere_ranges_for_cap(&center, 0.001);
        let holds = |p: &Point| {
            let id = CellID::from(p).0;
            ranges.iter().any(|(lo, hi)| *lo <= id && id <= *hi)
        };
        assert!(holds(&near) && holds(&center));
        assert!(!holds(&far));
    }

    #[test]
    fn grid_cells_are_hash_ranges() {
        let g = Grid::default();
        let p = Flat { x: 10.0, y: 20.0 };
        let ranges = g.ranges_for_box(Flat { x: 9.0, y: 19.0 }, Flat { x: 11.0, y: 21.0 });
        let h = g.hash(p);
        assert!(ranges.iter().any(|(lo, hi)| *lo <= h && h <= *hi));
        let q = g.hash(Flat { x: 50.0, y: 20.0 });
        assert!(!ranges.iter().any(|(lo, hi)| *lo <= q && q <= *hi));
        assert!(ranges.len() <= 64);
    }
}
