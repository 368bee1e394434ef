"""Geospatial queries and indexes through pymongo, against MongoDB 7.0's documented behaviour:
the manual's `places` examples for $near, $geoWithin and $geoNear (with their outputs and
order), 2dsphere and 2d index specs, invalid geometry refused with mongod's codes on insert
(16755) and in queries (2 BadValue), $near without a geo index (291), and the legacy 2d
operators ($box, $center, $polygon, $near with $maxDistance)."""

from __future__ import annotations

import math

import pytest
from pymongo import GEO2D, GEOSPHERE
from pymongo.errors import OperationFailure, WriteError

PLACES = [
    {
        "_id": 1,
        "name": "Central Park",
        "location": {"type": "Point", "coordinates": [-73.97, 40.77]},
        "category": "Parks",
    },
    {
        "_id": 2,
        "name": "Sara D. Roosevelt Park",
        "location": {"type": "Point", "coordinates": [-73.9928, 40.7193]},
        "category": "Parks",
    },
    {
        "_id": 3,
        "name": "Polo Grounds",
        "location": {"type": "Point", "coordinates": [-73.9375, 40.8303]},
        "category": "Stadiums",
    },
]


def haversine(a, b, radius=6378100.0) -> float:
    (lng1, lat1), (lng2, lat2) = (map(math.radians, p) for p in (a, b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lng2 - lng1) / 2) ** 2
    return 2 * radius * math.asin(math.sqrt(h))


def code_of(fn) -> int:
    with pytest.raises(OperationFailure) as ei:
        fn()
    return ei.value.code


@pytest.fixture
def places(client):
    coll = client.geo.places
    coll.drop()
    coll.insert_many(PLACES)
    coll.create_index([("location", GEOSPHERE)])
    yield coll
    coll.drop()


def names(cursor) -> list[str]:
    return [d["name"] for d in cursor]


def test_2dsphere_index_spec_is_version_3(places):
    info = places.index_information()["location_2dsphere"]
    assert info["key"] == [("location", "2dsphere")]
    assert info["2dsphereIndexVersion"] == 3


def test_geo_near_stage_manual_examples(places):
    # $geoNear with maxDistance (meters, GeoJSON) and a query.
    out = list(
        places.aggregate(
            [
                {
                    "$geoNear": {
                        "near": {"type": "Point", "coordinates": [-73.99279, 40.719296]},
                        "distanceField": "dist.calculated",
                        "maxDistance": 2,
                        "query": {"category": "Parks"},
                        "includeLocs": "dist.location",
                        "spherical": True,
                    }
                }
            ]
        )
    )
    assert [d["name"] for d in out] == ["Sara D. Roosevelt Park"]
    assert out[0]["dist"]["calculated"] == pytest.approx(0.9539931676365992, rel=1e-6)
    assert out[0]["dist"]["location"] == {"type": "Point", "coordinates": [-73.9928, 40.7193]}
    # minDistance: only the farther park.
    out = list(
        places.aggregate(
            [
                {
                    "$geoNear": {
                        "near": {"type": "Point", "coordinates": [-73.99279, 40.719296]},
                        "distanceField": "dist.calculated",
                        "minDistance": 2,
                        "query": {"category": "Parks"},
                        "includeLocs": "dist.location",
                        "spherical": True,
                    }
                }
            ]
        )
    )
    assert [d["name"] for d in out] == ["Central Park"]
    # The great-circle distance on mongod's sphere (6378.1 km), by the haversine formula.
    assert out[0]["dist"]["calculated"] == pytest.approx(
        haversine((-73.99279, 40.719296), (-73.97, 40.77)), rel=1e-9
    )
    # Every place, nearest first, then the rest of the pipeline.
    out = list(
        places.aggregate(
            [
                {"$geoNear": {"near": {"type": "Point", "coordinates": [-73.99279, 40.719296]},
                              "distanceField": "d", "distanceMultiplier": 0.001}},
                {"$project": {"_id": 0, "name": 1}},
                {"$limit": 2},
            ]
        )
    )
    assert out == [{"name": "Sara D. Roosevelt Park"}, {"name": "Central Park"}]
    # A $limit right after the stage: the engine looks for that many only.
    out = list(
        places.aggregate(
            [
                {"$geoNear": {"near": {"type": "Point", "coordinates": [-73.9375, 40.83]}, "distanceField": "d"}},
                {"$limit": 2},
            ]
        )
    )
    assert [d["name"] for d in out] == ["Polo Grounds", "Central Park"]
    assert out[0]["d"] < out[1]["d"]


def test_geo_near_stage_errors(client, places):
    near = {"near": {"type": "Point", "coordinates": [-73.99, 40.72]}, "distanceField": "d"}
    assert code_of(lambda: list(places.aggregate([{"$match": {}}, {"$geoNear": near}]))) == 40603
    assert code_of(lambda: list(places.aggregate([{"$geoNear": {"near": [0, 0]}}]))) == 16606
    # Two 2dsphere indexes: `key` must name one.
    places.create_index([("other", GEOSPHERE)])
    assert code_of(lambda: list(places.aggregate([{"$geoNear": near}]))) == 27
    out = list(places.aggregate([{"$geoNear": {**near, "key": "location"}}]))
    assert [d["_id"] for d in out] == [2, 1, 3]
    plain = client.geo.plain
    plain.drop()
    plain.insert_one({"location": [0, 0]})
    assert code_of(lambda: list(plain.aggregate([{"$geoNear": near}]))) == 27


def test_near_manual_example_and_order(places):
    # The manual's $near example: between 1000 and 5000 meters, nearest first.
    q = {
        "location": {
            "$near": {
                "$geometry": {"type": "Point", "coordinates": [-73.9667, 40.78]},
                "$minDistance": 1000,
                "$maxDistance": 5000,
            }
        }
    }
    assert names(places.find(q)) == ["Central Park"]
    q = {"location": {"$nearSphere": {"$geometry": {"type": "Point", "coordinates": [-73.99279, 40.719296]}}}}
    assert names(places.find(q)) == ["Sara D. Roosevelt Park", "Central Park", "Polo Grounds"]
    assert names(places.find(q).limit(1)) == ["Sara D. Roosevelt Park"]
    assert names(places.find({**q, "category": "Stadiums"})) == ["Polo Grounds"]
    # $near elsewhere than the top level.
    bad = {"$or": [q, {"category": "Parks"}]}
    assert code_of(lambda: list(places.find(bad))) == 2


def test_near_needs_a_geo_index(client):
    coll = client.geo.unindexed
    coll.drop()
    coll.insert_many(PLACES)
    q = {"location": {"$near": {"$geometry": {"type": "Point", "coordinates": [-73.97, 40.77]}}}}
    assert code_of(lambda: list(coll.find(q))) == 291
    # $geoWithin and $geoIntersects need none.
    box = {"type": "Polygon", "coordinates": [[[-74, 40.7], [-73.95, 40.7], [-73.95, 40.8], [-74, 40.8], [-74, 40.7]]]}
    assert sorted(d["_id"] for d in coll.find({"location": {"$geoWithin": {"$geometry": box}}})) == [1, 2]
    assert sorted(d["_id"] for d in coll.find({"location": {"$geoIntersects": {"$geometry": box}}})) == [1, 2]


def test_geo_within_and_intersects_use_the_index(places):
    # 4 miles around Central Park, in radians ($centerSphere): Sara D. Roosevelt Park is
    # 3.7 miles away, the Polo Grounds 4.4.
    q = {"location": {"$geoWithin": {"$centerSphere": [[-73.97, 40.77], 4 / 3963.2]}}}
    assert sorted(d["_id"] for d in places.find(q)) == [1, 2]
    plan = places.find(q).explain()["queryPlanner"]["winningPlan"]
    assert "IXSCAN" in str(plan)
    poly = {"type": "Polygon", "coordinates": [[[-74.0, 40.7], [-73.9, 40.7], [-73.9, 40.75], [-74.0, 40.75], [-74.0, 40.7]]]}
    assert [d["_id"] for d in places.find({"location": {"$geoWithin": {"$geometry": poly}}})] == [2]
    assert [d["_id"] for d in places.find({"location": {"$geoIntersects": {"$geometry": poly}}})] == [2]
    # A polygon with a hole around Sara D. Roosevelt Park.
    hole = [[-73.995, 40.718], [-73.99, 40.718], [-73.99, 40.721], [-73.995, 40.721], [-73.995, 40.718]]
    holed = {"type": "Polygon", "coordinates": [poly["coordinates"][0], hole]}
    assert list(places.find({"location": {"$geoWithin": {"$geometry": holed}}})) == []


def test_documents_without_geometry_are_not_indexed(places):
    places.insert_one({"_id": 4, "name": "no location"})
    places.insert_one({"_id": 5, "name": "null location", "location": None})
    q = {"location": {"$nearSphere": {"$geometry": {"type": "Point", "coordinates": [-73.97, 40.77]}}}}
    assert [d["_id"] for d in places.find(q)] == [1, 2, 3]
    assert places.count_documents({}) == 5


def test_invalid_geometry_is_refused(places):
    with pytest.raises(WriteError) as ei:
        places.insert_one({"location": {"type": "Point", "coordinates": [200, 0]}})
    assert ei.value.code == 16755
    assert "Can't extract geo keys" in str(ei.value)
    assert "longitude/latitude is out of bounds, lng: 200 lat: 0" in str(ei.value)
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [0, 1], [1, 0], [0, 0]]]}
    with pytest.raises(WriteError) as ei:
        places.insert_one({"location": bowtie})
    assert ei.value.code == 16755
    assert "Loop is not valid" in str(ei.value)
    unclosed = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}
    with pytest.raises(WriteError) as ei:
        places.insert_one({"location": unclosed})
    assert ei.value.code == 16755
    # In a query: BadValue.
    assert code_of(lambda: list(places.find({"location": {"$geoWithin": {"$geometry": bowtie}}}))) == 2
    point = {"type": "Point", "coordinates": [0, 0]}
    assert code_of(lambda: list(places.find({"location": {"$geoWithin": {"$geometry": point}}}))) == 2
    assert code_of(lambda: list(places.find({"location": {"$geoIntersects": {"$box": [[0, 0], [1, 1]]}}}))) == 2
    # Nothing was inserted.
    assert places.count_documents({}) == 3


def test_every_geojson_type_is_indexed(client):
    coll = client.geo.shapes
    coll.drop()
    coll.create_index([("g", GEOSPHERE)])
    shapes = [
        {"type": "Point", "coordinates": [1, 1]},
        {"type": "LineString", "coordinates": [[1, 0], [1, 2]]},
        {"type": "Polygon", "coordinates": [[[0, 0], [3, 0], [3, 3], [0, 3], [0, 0]]]},
        {"type": "MultiPoint", "coordinates": [[1, 1], [50, 50]]},
        {"type": "MultiLineString", "coordinates": [[[1, 0], [1, 3]], [[40, 40], [41, 41]]]},
        {"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 0], [1, 1], [0, 0]]], [[[60, 60], [61, 60], [61, 61], [60, 60]]]]},
        {"type": "GeometryCollection", "geometries": [{"type": "Point", "coordinates": [2, 2]}]},
        {"type": "Point", "coordinates": [100, 10]},
    ]
    coll.insert_many([{"_id": i, "g": s} for i, s in enumerate(shapes)])
    big = {"type": "Polygon", "coordinates": [[[-1, -1], [4, -1], [4, 4], [-1, 4], [-1, -1]]]}
    within = sorted(d["_id"] for d in coll.find({"g": {"$geoWithin": {"$geometry": big}}}))
    assert within == [0, 1, 2, 6]
    touch = {"type": "Point", "coordinates": [1, 1]}
    hits = sorted(d["_id"] for d in coll.find({"g": {"$geoIntersects": {"$geometry": touch}}}))
    assert hits == [0, 1, 2, 3, 4, 5]


def test_2d_legacy_examples(client):
    coll = client.geo.legacy2d
    coll.drop()
    assert coll.create_index([("location", GEO2D)]) == "location_2d"
    info = coll.index_information()["location_2d"]
    assert info["key"] == [("location", "2d")] and "2dsphereIndexVersion" not in info
    coll.insert_many(
        [
            {"_id": 1, "location": [-73.97, 40.77]},
            {"_id": 2, "location": [-73.9928, 40.7193]},
            {"_id": 3, "location": {"x": -73.9375, "y": 40.8303}},
            {"_id": 4, "location": [-73.9667, 40.78]},
            {"_id": 5},
        ]
    )
    # The manual's legacy $near: planar distance, $maxDistance in coordinate units.
    near = {"location": {"$near": [-73.9667, 40.78], "$maxDistance": 0.10}}
    assert [d["_id"] for d in coll.find(near)] == [4, 1, 3, 2]
    near = {"location": {"$near": [-73.9667, 40.78], "$maxDistance": 0.02}}
    assert [d["_id"] for d in coll.find(near)] == [4, 1]
    box = {"location": {"$geoWithin": {"$box": [[-74, 40.75], [-73.95, 40.8]]}}}
    assert sorted(d["_id"] for d in coll.find(box)) == [1, 4]
    assert "IXSCAN" in str(coll.find(box).explain()["queryPlanner"]["winningPlan"])
    center = {"location": {"$geoWithin": {"$center": [[-73.97, 40.77], 0.02]}}}
    assert sorted(d["_id"] for d in coll.find(center)) == [1, 4]
    polygon = {"location": {"$geoWithin": {"$polygon": [[-74.1, 40.7], [-73.9, 40.7], [-74.0, 40.79]]}}}
    assert sorted(d["_id"] for d in coll.find(polygon)) == [2]
    sphere = {"location": {"$geoWithin": {"$centerSphere": [[-73.97, 40.77], 1 / 3963.2]}}}
    assert sorted(d["_id"] for d in coll.find(sphere)) == [1, 4]
    # $nearSphere with a legacy pair on a 2d index: radians.
    ns = list(coll.aggregate([{"$geoNear": {"near": [-73.97, 40.77], "distanceField": "d", "spherical": True}}]))
    assert [d["_id"] for d in ns] == [1, 4, 2, 3]
    assert ns[0]["d"] == 0
    # A point outside [-180, 180).
    with pytest.raises(WriteError) as ei:
        coll.insert_one({"location": [200, 0]})
    assert ei.value.code == 13027


def test_2d_index_options_are_checked(client):
    coll = client.geo.opts
    coll.drop()
    assert code_of(lambda: coll.create_index([("a", 1), ("loc", GEO2D)])) == 16801
    assert code_of(lambda: coll.create_index([("loc", GEO2D)], bits=40)) == 13028
    coll.create_index([("loc", GEO2D)], bits=20, min=0, max=100)
    info = coll.index_information()["loc_2d"]
    assert (info["bits"], info["min"], info["max"]) == (20, 0, 100)
    coll.insert_one({"loc": [50, 50]})
    assert code_of(lambda: coll.insert_one({"loc": [150, 50]})) == 13027


def test_near_distance_and_point_as_metadata(places):
    """`{$meta: "geoNearDistance"}` and `"geoNearPoint"` as mongod 7.0 gives them: the distance a
    `$near` (meters, GeoJSON) or `$geoNear` ordered by, and the location it was measured to, in a
    find projection and in the stages after `$geoNear`; missing where no near query made them;
    never a field of the stored documents."""
    here = [-73.9667, 40.78]
    near = {"location": {"$near": {"$geometry": {"type": "Point", "coordinates": here}}}}
    meta = {"_id": 0, "name": 1, "d": {"$meta": "geoNearDistance"}, "p": {"$meta": "geoNearPoint"}}
    found = list(places.find(near, meta))
    assert [d["name"] for d in found] == ["Central Park", "Polo Grounds", "Sara D. Roosevelt Park"]
    for doc, place in zip(found, sorted(PLACES, key=lambda p: haversine(here, p["location"]["coordinates"]))):
        assert doc["p"] == place["location"]
        assert doc["d"] == pytest.approx(haversine(here, place["location"]["coordinates"]), rel=1e-3)
    assert [d["d"] for d in found] == sorted(d["d"] for d in found)

    # $geoNear: the metadata is the distance before distanceMultiplier, as in mongod.
    staged = list(
        places.aggregate(
            [
                {
                    "$geoNear": {
                        "near": {"type": "Point", "coordinates": here},
                        "distanceField": "km",
                        "distanceMultiplier": 0.001,
                        "spherical": True,
                    }
                },
                {"$project": {"_id": 0, "km": 1, "m": {"$meta": "geoNearDistance"}, "at": {"$meta": "geoNearPoint"}}},
            ]
        )
    )
    assert [d["m"] for d in staged] == pytest.approx([d["d"] for d in found], rel=1e-9)
    assert [d["km"] for d in staged] == pytest.approx([d["d"] / 1000 for d in found], rel=1e-9)
    assert [d["at"] for d in staged] == [d["p"] for d in found]
    # Without $project the stage's own output has no metadata field.
    plain = places.aggregate([{"$geoNear": {"near": here, "distanceField": "d", "spherical": True}}])
    assert all(set(d) == {"_id", "name", "location", "category", "d"} for d in plain)

    # No near query: the metadata is missing, not an error.
    assert list(places.find({"_id": 1}, meta)) == [{"name": "Central Park"}]
    assert list(places.aggregate([{"$match": {"_id": 1}}, {"$project": {"_id": 0, "d": {"$meta": "geoNearDistance"}}}])) == [{}]
    # A near query without a projection answers the documents as stored.
    assert list(places.find(near).limit(1)) == [PLACES[0]]


def test_near_in_a_match_stage_is_refused_as_mongod_does(places):
    near = {"location": {"$near": {"$geometry": {"type": "Point", "coordinates": [-73.97, 40.77]}}}}
    with pytest.raises(OperationFailure) as ei:
        list(places.aggregate([{"$match": near}]))
    assert ei.value.code == 5626500 and "consider using $geoWithin" in str(ei.value)
    # countDocuments is an aggregation with a $match: the same refusal.
    with pytest.raises(OperationFailure) as ei:
        places.count_documents({"$or": [near, {"_id": 1}]})
    assert ei.value.code == 5626500


def test_near_in_writes_takes_the_nearest_as_mongod_does(places):
    """mongod runs `$near` in update, delete and findAndModify: a single-document write takes
    the nearest match, a multi write every match within the bounds."""
    here = {"type": "Point", "coordinates": [-73.9667, 40.78]}
    near = {"location": {"$near": {"$geometry": here}}}
    assert places.update_one(near, {"$set": {"first": True}}).modified_count == 1
    assert [d["name"] for d in places.find({"first": True})] == ["Central Park"]
    within = {"location": {"$near": {"$geometry": here, "$maxDistance": 6500}}}
    assert places.update_many(within, {"$inc": {"n": 1}}).modified_count == 2
    assert sorted(d["name"] for d in places.find({"n": 1})) == ["Central Park", "Polo Grounds"]
    found = places.find_one_and_update({**near, "category": "Parks", "first": {"$exists": False}}, {"$set": {"second": True}})
    assert found["name"] == "Sara D. Roosevelt Park"
    assert places.delete_one(near).deleted_count == 1
    assert [d["name"] for d in places.find(near)] == ["Polo Grounds", "Sara D. Roosevelt Park"]
    # Without a geo index, as in find: 291.
    other = places.database.unindexed_writes
    other.drop()
    other.insert_one({"location": here})
    with pytest.raises(OperationFailure) as ei:
        other.delete_one(near)
    assert ei.value.code == 291
    other.drop()
