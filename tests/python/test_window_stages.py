"""Window stages through pymongo: `$setWindowFields` run on the `cakeSales` examples of MongoDB
7.0's documentation, with their documented outputs, and a few of mongod's parse errors."""

from __future__ import annotations

import datetime

import pytest
from pymongo.errors import OperationFailure


def utc(*parts: int) -> datetime.datetime:
    return datetime.datetime(*parts, tzinfo=datetime.timezone.utc)


CAKE_SALES = [
    {"_id": 0, "type": "chocolate", "orderDate": utc(2020, 5, 18, 14, 10, 30), "state": "CA", "price": 13, "quantity": 120},
    {"_id": 1, "type": "chocolate", "orderDate": utc(2021, 3, 20, 11, 30, 5), "state": "WA", "price": 14, "quantity": 140},
    {"_id": 2, "type": "vanilla", "orderDate": utc(2021, 1, 11, 6, 31, 15), "state": "CA", "price": 12, "quantity": 145},
    {"_id": 3, "type": "vanilla", "orderDate": utc(2020, 2, 8, 13, 13, 23), "state": "WA", "price": 13, "quantity": 104},
    {"_id": 4, "type": "strawberry", "orderDate": utc(2019, 5, 18, 16, 9, 1), "state": "CA", "price": 41, "quantity": 162},
    {"_id": 5, "type": "strawberry", "orderDate": utc(2019, 1, 8, 6, 12, 3), "state": "WA", "price": 43, "quantity": 134},
]


@pytest.fixture
def cakes(db):
    db.cakeSales.insert_many([dict(d) for d in CAKE_SALES])
    return db.cakeSales


def window(coll, field: str, **spec) -> list[tuple[int, object]]:
    out = coll.aggregate([{"$setWindowFields": spec}])
    return [(d["_id"], d.get(field)) for d in out]


def test_cumulative_quantity_for_each_state(cakes):
    got = window(
        cakes,
        "cumulativeQuantityForState",
        partitionBy="$state",
        sortBy={"orderDate": 1},
        output={
            "cumulativeQuantityForState": {
                "$sum": "$quantity",
                "window": {"documents": ["unbounded", "current"]},
            }
        },
    )
    assert got == [(4, 162), (0, 282), (2, 427), (5, 134), (3, 238), (1, 378)]


def test_moving_average_for_each_year(cakes):
    got = window(
        cakes,
        "averageQuantity",
        partitionBy={"$year": "$orderDate"},
        sortBy={"orderDate": 1},
        output={"averageQuantity": {"$avg": "$quantity", "window": {"documents": [-1, 0]}}},
    )
    assert got == [(5, 134), (4, 148), (3, 104), (0, 112), (2, 145), (1, 142.5)]


def test_range_window_and_time_range_window(cakes):
    got = window(
        cakes,
        "quantityFromSimilarOrders",
        partitionBy="$state",
        sortBy={"price": 1},
        output={"quantityFromSimilarOrders": {"$sum": "$quantity", "window": {"range": [-10, 10]}}},
    )
    assert got == [(2, 265), (0, 265), (4, 162), (3, 244), (1, 244), (5, 134)]
    got = window(
        cakes,
        "recentOrders",
        partitionBy="$state",
        sortBy={"orderDate": 1},
        output={
            "recentOrders": {
                "$push": "$orderDate",
                "window": {"range": ["unbounded", -10], "unit": "month"},
            }
        },
    )
    dates = {d["_id"]: d["orderDate"].replace(tzinfo=None) for d in CAKE_SALES}
    assert got == [
        (4, []),
        (0, [dates[4]]),
        (2, [dates[4]]),
        (5, []),
        (3, [dates[5]]),
        (1, [dates[5], dates[3]]),
    ]


def test_rank_and_shift(cakes):
    got = window(
        cakes,
        "rankQuantityForState",
        partitionBy="$state",
        sortBy={"quantity": -1},
        output={"rankQuantityForState": {"$rank": {}}},
    )
    assert got == [(4, 1), (2, 2), (0, 3), (1, 1), (5, 2), (3, 3)]
    got = window(
        cakes,
        "shiftQuantityForState",
        partitionBy="$state",
        sortBy={"quantity": -1},
        output={
            "shiftQuantityForState": {
                "$shift": {"output": "$quantity", "by": 1, "default": "Not available"}
            }
        },
    )
    assert got == [
        (4, 145),
        (2, 120),
        (0, "Not available"),
        (1, 134),
        (5, 104),
        (3, "Not available"),
    ]


@pytest.mark.parametrize(
    "spec, code",
    [
        ({}, 40414),
        ({"output": {"a": {"$summ": 1}}}, 9),
        ({"output": {"a": {"$sum": 1, "window": {"documents": [-1, 0]}}}}, 5339901),
        ({"sortBy": {"a": 1, "b": 1}, "output": {"a": {"$sum": 1, "window": {"range": [-1, 0]}}}}, 5339902),
        ({"sortBy": {"a": 1}, "output": {"a": {"$sum": 1, "window": {"documents": [2, 1]}}}}, 5339900),
        ({"output": {"a": {"$rank": {}}}}, 5371602),
        ({"output": {"a": {"$sum": 1}, "a.b": {"$sum": 1}}}, 6307900),
    ],
)
def test_parse_errors_carry_mongods_codes(cakes, spec, code):
    with pytest.raises(OperationFailure) as ei:
        list(cakes.aggregate([{"$setWindowFields": spec}]))
    assert ei.value.code == code


def test_range_over_a_date_needs_a_unit(cakes):
    with pytest.raises(OperationFailure) as ei:
        list(
            cakes.aggregate(
                [
                    {
                        "$setWindowFields": {
                            "sortBy": {"orderDate": 1},
                            "output": {"n": {"$sum": 1, "window": {"range": [-1, 0]}}},
                        }
                    }
                ]
            )
        )
    assert ei.value.code == 5429413


def test_percentile_and_median(db):
    db.testScores.insert_many(
        [
            {"studentId": "2345", "test01": 62, "test02": 81, "test03": 80},
            {"studentId": "2356", "test01": 60, "test02": 83, "test03": 79},
            {"studentId": "2358", "test01": 67, "test02": 82, "test03": 78},
            {"studentId": "2367", "test01": 64, "test02": 72, "test03": 77},
            {"studentId": "2369", "test01": 60, "test02": 53, "test03": 72},
        ]
    )
    [row] = db.testScores.aggregate(
        [
            {
                "$group": {
                    "_id": None,
                    "test01_percentiles": {
                        "$percentile": {
                            "input": "$test01",
                            "p": [0.5, 0.75, 0.9, 0.95],
                            "method": "approximate",
                        }
                    },
                    "test01_median": {"$median": {"input": "$test01", "method": "approximate"}},
                }
            }
        ]
    )
    assert row["test01_percentiles"] == [62.0, 64.0, 67.0, 67.0]
    assert row["test01_median"] == 62.0
    got = [
        d["median"]
        for d in db.testScores.aggregate(
            [
                {"$sort": {"studentId": 1}},
                {
                    "$project": {
                        "median": {
                            "$median": {
                                "input": ["$test01", "$test02", "$test03"],
                                "method": "approximate",
                            }
                        }
                    }
                },
            ]
        )
    ]
    assert got == [80.0, 79.0, 78.0, 72.0, 60.0]
    with pytest.raises(OperationFailure) as ei:
        list(
            db.testScores.aggregate(
                [{"$group": {"_id": 1, "p": {"$percentile": {"input": "$a", "p": [2], "method": "approximate"}}}}]
            )
        )
    assert ei.value.code == 7750303


def test_fill_and_densify(db):
    hour = lambda h: utc(2021, 3, 8, h)  # noqa: E731
    db.stock.insert_many(
        [
            {"time": hour(9), "price": 500},
            {"time": hour(10)},
            {"time": hour(11), "price": 515},
            {"time": hour(12)},
            {"time": hour(13)},
            {"time": hour(14), "price": 485},
        ]
    )
    got = [
        d["price"]
        for d in db.stock.aggregate(
            [{"$fill": {"sortBy": {"time": 1}, "output": {"price": {"method": "linear"}}}}]
        )
    ]
    assert got == [500, 507.5, 515, 505, 495, 485]
    db.coffee.insert_many(
        [
            {"altitude": 600, "variety": "Arabica Typica", "score": 68.3},
            {"altitude": 750, "variety": "Arabica Typica", "score": 69.5},
            {"altitude": 950, "variety": "Arabica Typica", "score": 70.5},
            {"altitude": 1250, "variety": "Gesha", "score": 88.15},
            {"altitude": 1700, "variety": "Gesha", "score": 85.5},
            {"altitude": 1600, "variety": "SL28", "score": 85},
        ]
    )
    out = list(
        db.coffee.aggregate(
            [
                {
                    "$densify": {
                        "field": "altitude",
                        "partitionByFields": ["variety"],
                        "range": {"bounds": "full", "step": 200},
                    }
                },
                {"$project": {"_id": 0}},
            ]
        )
    )
    gesha = [d for d in out if d["variety"] == "Gesha"]
    assert gesha == [
        {"altitude": 600, "variety": "Gesha"},
        {"altitude": 800, "variety": "Gesha"},
        {"altitude": 1000, "variety": "Gesha"},
        {"altitude": 1200, "variety": "Gesha"},
        {"altitude": 1250, "variety": "Gesha", "score": 88.15},
        {"altitude": 1400, "variety": "Gesha"},
        {"altitude": 1600, "variety": "Gesha"},
        {"altitude": 1700, "variety": "Gesha", "score": 85.5},
    ]
    assert len(out) == 22
    with pytest.raises(OperationFailure) as ei:
        list(db.coffee.aggregate([{"$densify": {"field": "altitude", "range": {"step": 1, "bounds": "partition"}}}]))
    assert ei.value.code == 5733408


def test_graph_lookup(db):
    db.employees.insert_many(
        [
            {"_id": 1, "name": "Dev"},
            {"_id": 2, "name": "Eliot", "reportsTo": "Dev"},
            {"_id": 3, "name": "Ron", "reportsTo": "Eliot"},
            {"_id": 4, "name": "Andrew", "reportsTo": "Eliot"},
            {"_id": 5, "name": "Asya", "reportsTo": "Ron"},
            {"_id": 6, "name": "Dan", "reportsTo": "Andrew"},
        ]
    )
    out = {
        d["_id"]: sorted((h["name"], h["depth"]) for h in d["reportingHierarchy"])
        for d in db.employees.aggregate(
            [
                {
                    "$graphLookup": {
                        "from": "employees",
                        "startWith": "$reportsTo",
                        "connectFromField": "reportsTo",
                        "connectToField": "name",
                        "as": "reportingHierarchy",
                        "depthField": "depth",
                    }
                }
            ]
        )
    }
    assert out[1] == []
    assert out[5] == [("Dev", 2), ("Eliot", 1), ("Ron", 0)]
    assert out[6] == [("Andrew", 0), ("Dev", 2), ("Eliot", 1)]
    with pytest.raises(OperationFailure) as ei:
        list(db.employees.aggregate([{"$graphLookup": {"from": "employees"}}]))
    assert ei.value.code == 40105
