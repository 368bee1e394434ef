"""$bucketAuto's `granularity` (MongoDB 7.0 manual, "$bucketAuto": granularity example),
and the errors of a granularity that cannot round."""

import pytest
from bson.decimal128 import Decimal128
from pymongo.errors import OperationFailure


def bucket_auto(coll, **spec):
    return list(coll.aggregate([{"$bucketAuto": spec}]))


def ids(buckets):
    return [(b["_id"]["min"], b["_id"]["max"], b["count"]) for b in buckets]


def test_manual_r5_example(db):
    # The manual's `things` collection: _id 0..99, five buckets rounded to R5.
    db.things.insert_many([{"_id": i} for i in range(100)])
    got = bucket_auto(db.things, groupBy="$_id", buckets=5, granularity="R5")
    assert ids(got) == [(0, 25, 25), (25, 63, 38), (63, 100, 37)]


def test_powers_of_two_boundaries_are_integers(db):
    db.p.insert_many([{"v": v} for v in [1, 2, 3, 5, 8, 13, 21, 34]])
    got = bucket_auto(db.p, groupBy="$v", buckets=3, granularity="POWERSOF2")
    assert ids(got) == [(0.5, 4, 3), (4, 16, 3), (16, 64, 2)]
    assert all(isinstance(b["_id"]["max"], int) for b in got)


def test_zero_boundary_takes_the_next_value_rounded_down(db):
    db.z.insert_many([{"v": 0}, {"v": 0}, {"v": 7}, {"v": 9}])
    got = bucket_auto(db.z, groupBy="$v", buckets=2, granularity="E6")
    # mongod scales the series in doubles: 68 * 0.1, not 6.8.
    assert ids(got) == [(0, 68 * 0.1, 2), (68 * 0.1, 10, 2)]


def test_decimal_keys_round_in_decimal(db):
    db.d.insert_many([{"v": Decimal128(s)} for s in ["1.5", "2.5", "30", "45"]])
    got = bucket_auto(db.d, groupBy="$v", buckets=2, granularity="1-2-5")
    assert [b["count"] for b in got] == [2, 2]
    assert all(isinstance(b["_id"]["max"], Decimal128) for b in got)
    assert [b["_id"]["max"].to_decimal() for b in got] == [5, 50]


def test_output_and_buckets_without_granularity(db):
    db.a.insert_many([{"v": v, "n": 1} for v in [1, 1, 1, 2, 3, 4]])
    got = bucket_auto(db.a, groupBy="$v", buckets=3, output={"total": {"$sum": "$n"}})
    # Equal keys never straddle a boundary; max is the next bucket's min.
    assert [(b["_id"]["min"], b["_id"]["max"], b["total"]) for b in got] == [
        (1, 2, 3),
        (2, 4, 2),
        (4, 4, 1),
    ]


@pytest.mark.parametrize(
    "docs, spec, code",
    [
        ([{"v": 1}], {"granularity": "E7"}, 40257),
        ([{"v": 1}], {"granularity": 5}, 40261),
        ([{"v": "a"}], {"granularity": "R5"}, 40258),
        ([{}], {"granularity": "R5"}, 40258),
        ([{"v": float("nan")}], {"granularity": "R5"}, 40259),
        ([{"v": -1}], {"granularity": "POWERSOF2"}, 40260),
    ],
)
def test_errors(db, docs, spec, code):
    db.e.insert_many(docs)
    with pytest.raises(OperationFailure) as err:
        bucket_auto(db.e, groupBy="$v", buckets=2, **spec)
    assert err.value.code == code
