use bson::{doc, Bson};

use super::query::{GeoPredicate, Near};
use super::*;

fn ring(x0: f64, y0: f64, x1: f64, y1: f64) -> Bson {
    bson::bson!([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]])
}

fn square(x0: f64, y0: f64, x1: f64, y1: f64) -> Bson {
    Bson::Array(vec![ring(x0, y0, x1, y1)])
}

#[test]
fn parses_each_geojson_type() {
    for g in [
        doc! {"type": "Point", "coordinates": [1.0, 2.0]},
        doc! {"type": "LineString", "coordinates": [[0, 0], [1, 1]]},
        doc! {"type": "Polygon", "coordinates": square(0.0, 0.0, 1.0, 1.0)},
        doc! {"type": "MultiPoint", "coordinates": [[0, 0], [1, 1]]},
        doc! {"type": "MultiLineString", "coordinates": [[[0, 0], [1, 1]], [[2, 2], [3, 3]]]},
        doc! {"type": "MultiPolygon", "coordinates": [square(0.0, 0.0, 1.0, 1.0), square(2.0, 2.0, 3.0, 3.0)]},
        doc! {"type": "GeometryCollection", "geometries": [{"type": "Point", "coordinates": [0, 0]}]},
    ] {
        parse_geojson(&g).unwrap_or_else(|e| panic!("{g}: {e}"));
    }
    let legacy = parse_stored(&bson::bson!([200, 5])).expect("legacy");
    assert!(legacy.legacy && legacy.shapes.is_empty());
    let legacy = parse_stored(&bson::bson!({"x": 1, "y": 2})).expect("legacy doc");
    assert_eq!(legacy.flat_point, Some(Flat { x: 1.0, y: 2.0 }));
}

#[test]
fn invalid_geometry_is_refused_as_mongod() {
    let err = |g: bson::Document| parse_geojson(&g).expect_err("invalid");
    assert!(err(doc! {"type": "Point", "coordinates": [200, 0]})
        .starts_with("longitude/latitude is out of bounds"));
    assert!(
        err(doc! {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]})
            .starts_with("Loop is not closed")
    );
    assert!(
        err(doc! {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]})
            .starts_with("Loop must have at least 3 different vertices")
    );
    let bowtie =
        err(doc! {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [0, 1], [1, 0], [0, 0]]]});
    assert!(
        bowtie.starts_with("Loop is not valid") && bowtie.contains("Edges 0 and 2 cross"),
        "{bowtie}"
    );
    assert!(err(doc! {"type": "LineString", "coordinates": [[0, 0]]})
        .starts_with("GeoJSON LineString must have at least 2 vertices"));
    assert!(err(doc! {"type": "Polygon", "coordinates": [ring(0.0, 0.0, 1.0, 1.0), ring(5.0, 5.0, 6.0, 6.0)]})
        .starts_with("Secondary loops not contained by first exterior loop"));
    assert!(err(doc! {"type": "Triangle", "coordinates": []}).starts_with("unknown GeoJSON type"));
}

#[test]
fn within_and_intersects_on_the_sphere() {
    let within = GeoPredicate::parse(
        "$geoWithin",
        &Bson::Document(
            doc! {"$geometry": {"type": "Polygon", "coordinates": square(0.0, 0.0, 10.0, 10.0)}},
        ),
    )
    .expect("polygon");
    // Either winding order describes the smaller region.
    let reversed = GeoPredicate::parse(
        "$geoWithin",
        &bson::bson!({"$geometry": {"type": "Polygon", "coordinates": [[[0, 0], [0, 10], [10, 10], [10, 0], [0, 0]]]}}),
    )
    .expect("polygon");
    for p in [&within, &reversed] {
        assert!(p.matches(&bson::bson!({"type": "Point", "coordinates": [5, 5]})));
        assert!(p.matches(&bson::bson!([5, 5])));
        assert!(!p.matches(&bson::bson!({"type": "Point", "coordinates": [15, 5]})));
        assert!(!p.matches(&bson::bson!({"type": "Point", "coordinates": [-175, -5]})));
        assert!(p.matches(&bson::bson!({"type": "LineString", "coordinates": [[1, 1], [9, 9]]})));
        assert!(!p.matches(&bson::bson!({"type": "LineString", "coordinates": [[1, 1], [19, 9]]})));
    }
    let holed = GeoPredicate::parse(
        "$geoWithin",
        &Bson::Document(doc! {"$geometry": {"type": "Polygon", "coordinates": [ring(0.0, 0.0, 10.0, 10.0), ring(4.0, 4.0, 6.0, 6.0)]}}),
    )
    .expect("holed");
    assert!(!holed.matches(&bson::bson!([5, 5])));
    assert!(holed.matches(&bson::bson!([2, 2])));
    let intersects = GeoPredicate::parse(
        "$geoIntersects",
        &Bson::Document(
            doc! {"$geometry": {"type": "LineString", "coordinates": [[-5, 5], [15, 5]]}},
        ),
    )
    .expect("line");
    assert!(intersects.matches(&Bson::Document(
        doc! {"type": "Polygon", "coordinates": square(0.0, 0.0, 10.0, 10.0)}
    )));
    assert!(!intersects.matches(&Bson::Document(
        doc! {"type": "Polygon", "coordinates": square(0.0, 6.0, 10.0, 10.0)}
    )));
    assert!(
        GeoPredicate::parse("$geoIntersects", &bson::bson!({"$box": [[0, 0], [1, 1]]})).is_err()
    );
    assert!(GeoPredicate::parse(
        "$geoWithin",
        &bson::bson!({"$geometry": {"type": "Point", "coordinates": [0, 0]}})
    )
    .expect_err("point")
    .starts_with("$geoWithin not supported with provided geometry"));
}

#[test]
fn center_sphere_and_near_distances() {
    // The manual's $centerSphere example: 10 miles around (-88, 30).
    let cap = GeoPredicate::parse(
        "$geoWithin",
        &bson::bson!({"$centerSphere": [[-88, 30], 10.0 / 3963.2]}),
    )
    .expect("cap");
    assert!(cap.matches(&bson::bson!([-88.1, 30.05])));
    assert!(!cap.matches(&bson::bson!([-89, 30])));
    let near = Near::parse(&doc! {"$near": {"$geometry": {"type": "Point", "coordinates": [0.0, 0.0]}}, "$maxDistance": 200000})
        .expect("near");
    let d = near
        .distance(&bson::bson!({"type": "Point", "coordinates": [1, 0]}))
        .expect("distance");
    // One degree of longitude on mongod's sphere.
    assert!(
        (d - EARTH_RADIUS_METERS * 1f64.to_radians()).abs() < 1e-6,
        "{d}"
    );
    assert!(near.matches(&bson::bson!([1, 0])));
    assert!(!near.matches(&bson::bson!([2, 0])));
    let flat = Near::parse(&doc! {"$near": [0, 0]}).expect("flat");
    assert_eq!(flat.distance(&bson::bson!([3, 4])), Some(5.0));
}

#[test]
fn the_matcher_runs_geo_operators_without_an_index() {
    use crate::filter::Filter;
    let f =
        Filter::parse(&doc! {"loc": {"$geoWithin": {"$box": [[0, 0], [100, 100]]}}}).expect("box");
    assert!(f.matches(&doc! {"loc": [5, 5]}));
    assert!(f.matches(&doc! {"loc": [[500, 5], [5, 5]]}));
    assert!(!f.matches(&doc! {"loc": [500, 5]}));
    assert!(!f.matches(&doc! {"other": 1}));
    let f = Filter::parse(&doc! {"a.loc": {"$geoIntersects": {"$geometry": {"type": "Point", "coordinates": [1, 1]}}}})
        .expect("intersects");
    assert!(f.matches(
        &doc! {"a": [{"loc": {"type": "Polygon", "coordinates": square(0.0, 0.0, 2.0, 2.0)}}]}
    ));
    let err = Filter::parse(&doc! {"loc": {"$geoWithin": {"$geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [0, 1], [1, 0], [0, 0]]]}}}})
        .expect_err("bowtie");
    assert_eq!(err.code, 2);
    // $near needs a geo index: parse_find accepts it, other contexts refuse it (291).
    let near = doc! {"loc": {"$near": [0, 0]}};
    assert_eq!(Filter::parse(&near).expect_err("no index").code, 291);
    assert!(Filter::parse_find(&near, &[], None)
        .expect("find")
        .near()
        .is_some());
    let nested = doc! {"$or": [{"loc": {"$near": [0, 0]}}, {"a": 1}]};
    assert_eq!(
        Filter::parse_find(&nested, &[], None)
            .expect_err("nested")
            .message,
        "geoNear must be top-level expr"
    );
    let twice = doc! {"loc": {"$near": [0, 0]}, "b": {"$near": [0, 0]}};
    assert_eq!(
        Filter::parse_find(&twice, &[], None)
            .expect_err("twice")
            .message,
        "Too many geoNear expressions"
    );
}

#[test]
fn coordinates_print_as_mongod_prints_them() {
    assert_eq!(show_coordinate(200.0), "200");
    assert_eq!(show_coordinate(-27.482279), "-27.4823");
    assert_eq!(show_coordinate(153.028723), "153.029");
    assert_eq!(show_coordinate(0.5), "0.5");
    assert_eq!(show_coordinate(1e7), "1e+07");
    assert_eq!(
        out_of_bounds(Flat {
            x: 1000.0,
            y: 1000.0
        }),
        "longitude/latitude is out of bounds, lng: 1000 lat: 1000"
    );
}
