//! Geo indexes return what the matcher over a full scan returns: random points, lines
//! and polygons under a `2dsphere` index, and legacy points under a `2d` index, queried
//! with random `$geoWithin`/`$geoIntersects` regions through the index, and `$near` with
//! limits against a brute-force ordering by distance.

use std::sync::Arc;

use bson::{doc, Bson, Document};
use eddy_engine::exec::query::{execute, QuerySpec};
use eddy_engine::plan::Access;
use eddy_engine::{Engine, EngineOptions, Namespace};
use eddy_query::filter::Filter;

/// A small deterministic generator (no proptest: a fixed, fast sample).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next()
    }
}

fn ns(coll: &str) -> Namespace {
    Namespace::new("db", coll)
}

fn square(x: f64, y: f64, s: f64) -> Bson {
    bson::bson!([[[x, y], [x + s, y], [x + s, y + s], [x, y + s], [x, y]]])
}

fn ids(docs: &[Document]) -> Vec<i32> {
    let mut v: Vec<i32> = docs
        .iter()
        .map(|d| d.get_i32("_id").expect("_id"))
        .collect();
    v.sort_unstable();
    v
}

fn run(
    engine: &Arc<Engine>,
    coll: &str,
    filter: Document,
    limit: Option<u64>,
) -> (Vec<Document>, bool) {
    let q = QuerySpec {
        filter,
        limit,
        ..QuerySpec::default()
    };
    let out = execute(engine, &ns(coll), &q).expect("query");
    let indexed = matches!(out.plan.map(|p| p.access), Some(Access::IndexScan(_)));
    (out.docs, indexed)
}

/// Runs `filter` on `coll` and checks that it used the geo index and found exactly what
/// the matcher finds among `docs`.
fn indexed_as_scanned(engine: &Arc<Engine>, coll: &str, docs: &[Document], filter: Document) {
    let matcher = Filter::parse(&filter).expect("filter");
    let want: Vec<Document> = docs
        .iter()
        .filter(|d| matcher.matches(d))
        .cloned()
        .collect();
    let (got, indexed) = run(engine, coll, filter.clone(), None);
    assert!(indexed, "{filter} should use the index");
    assert_eq!(ids(&got), ids(&want), "{filter}");
}

#[test]
fn sphere_index_agrees_with_the_matcher() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine: Arc<Engine> = Engine::open(EngineOptions::new(dir.path())).expect("open");
    let mut g = Lcg(7);
    let mut docs = Vec::new();
    for i in 0..1500 {
        let (x, y) = (g.range(-20.0, 20.0), g.range(-20.0, 20.0));
        let geometry = match i % 10 {
            0 => {
                doc! {"type": "LineString", "coordinates": [[x, y], [x + g.range(0.1, 3.0), y + g.range(0.1, 3.0)]]}
            }
            1 => doc! {"type": "Polygon", "coordinates": square(x, y, g.range(0.1, 2.0))},
            2 => doc! {"type": "MultiPoint", "coordinates": [[x, y], [-x, -y]]},
            _ => doc! {"type": "Point", "coordinates": [x, y]},
        };
        let mut d = doc! {"_id": i, "loc": geometry};
        if i % 3 == 0 {
            d.insert("loc", bson::bson!([x, y]));
        }
        docs.push(d);
    }
    docs.push(doc! {"_id": 100_000, "other": 1});
    engine
        .create_indexes(
            ns("s"),
            vec![doc! {"key": {"loc": "2dsphere"}, "name": "loc_2dsphere"}],
        )
        .expect("index");
    let out = engine.insert(ns("s"), docs.clone(), false).expect("insert");
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    for q in 0..40 {
        let (x, y, s) = (
            g.range(-22.0, 18.0),
            g.range(-22.0, 18.0),
            g.range(0.5, 8.0),
        );
        let filter = match q % 3 {
            0 => doc! {"loc": {"$geoWithin": {"$centerSphere": [[x, y], s.to_radians()]}}},
            1 => {
                doc! {"loc": {"$geoWithin": {"$geometry": {"type": "Polygon", "coordinates": square(x, y, s)}}}}
            }
            _ => {
                doc! {"loc": {"$geoIntersects": {"$geometry": {"type": "Polygon", "coordinates": square(x, y, s)}}}}
            }
        };
        indexed_as_scanned(&engine, "s", &docs, filter);
    }
    // $near with a limit: the closest points, in order.
    for q in 0..15 {
        let (x, y) = (g.range(-20.0, 20.0), g.range(-20.0, 20.0));
        let filter =
            doc! {"loc": {"$nearSphere": {"$geometry": {"type": "Point", "coordinates": [x, y]}}}};
        let near = eddy_query::geo::query::Near::parse(filter.get_document("loc").expect("ops"))
            .expect("near");
        let mut want: Vec<(f64, i32)> = docs
            .iter()
            .filter_map(|d| {
                let (dist, _) = eddy_engine::geo::document_distance(&near, d, "loc")?;
                Some((dist, d.get_i32("_id").ok()?))
            })
            .collect();
        want.sort_by(|a, b| a.0.total_cmp(&b.0));
        let limit = [1usize, 5, 50][q % 3];
        let (got, indexed) = run(&engine, "s", filter.clone(), Some(limit as u64));
        assert!(indexed);
        let got_d: Vec<f64> = got
            .iter()
            .map(|d| {
                eddy_engine::geo::document_distance(&near, d, "loc")
                    .expect("distance")
                    .0
            })
            .collect();
        let want_d: Vec<f64> = want.iter().take(limit).map(|w| w.0).collect();
        assert_eq!(got_d, want_d, "{filter} limit {limit}");
    }
}

#[test]
fn flat_index_agrees_with_the_matcher() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine: Arc<Engine> = Engine::open(EngineOptions::new(dir.path())).expect("open");
    let mut g = Lcg(11);
    let docs: Vec<Document> = (0..2000)
        .map(|i| doc! {"_id": i, "p": [g.range(0.0, 100.0), g.range(0.0, 100.0)]})
        .collect();
    engine
        .create_indexes(
            ns("f"),
            vec![doc! {"key": {"p": "2d"}, "name": "p_2d", "min": 0, "max": 100}],
        )
        .expect("index");
    let out = engine.insert(ns("f"), docs.clone(), false).expect("insert");
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    for q in 0..30 {
        let (x, y, s) = (g.range(0.0, 90.0), g.range(0.0, 90.0), g.range(0.5, 20.0));
        let filter = match q % 3 {
            0 => doc! {"p": {"$geoWithin": {"$box": [[x, y], [x + s, y + s]]}}},
            1 => doc! {"p": {"$geoWithin": {"$center": [[x, y], s]}}},
            _ => doc! {"p": {"$geoWithin": {"$polygon": [[x, y], [x + s, y], [x, y + s]]}}},
        };
        indexed_as_scanned(&engine, "f", &docs, filter);
    }
    let (got, _) = run(&engine, "f", doc! {"p": {"$near": [50, 50]}}, Some(10));
    let mut want: Vec<(f64, i32)> = docs
        .iter()
        .map(|d| {
            let p = d.get_array("p").expect("p");
            let (x, y) = (p[0].as_f64().expect("x"), p[1].as_f64().expect("y"));
            (
                ((x - 50.0).powi(2) + (y - 50.0).powi(2)).sqrt(),
                d.get_i32("_id").expect("_id"),
            )
        })
        .collect();
    want.sort_by(|a, b| a.0.total_cmp(&b.0));
    let want: Vec<i32> = want.iter().take(10).map(|w| w.1).collect();
    let got: Vec<i32> = got.iter().map(|d| d.get_i32("_id").expect("_id")).collect();
    assert_eq!(got, want);
}
