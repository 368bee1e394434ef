"""Wildcard indexes through pymongo, against MongoDB 7.0's documented behaviour: the manual's
`products` examples (`{"product_attributes.$**": 1}`, `{"$**": 1}` with and without a
`wildcardProjection`), the specs listIndexes shows, queries on any indexed path planned as an
IXSCAN over `{$_path: 1, <path>: 1}` with mongod's bounds, array elements indexed under the
array's path, what a wildcard index cannot answer (null, `$exists: false`, `$ne`, document
equality, sorts alone) falling back to a collection scan, and mongod's errors for invalid
specs."""

from __future__ import annotations

import pytest
from pymongo.errors import OperationFailure

from plans import ixscan

PRODUCTS = [
    {
        "_id": 1,
        "product_name": "Spy Coat",
        "product_attributes": {
            "material": ["Tweed", "Wool", "Leather"],
            "size": {"length": 72, "units": "inches"},
        },
    },
    {
        "_id": 2,
        "product_name": "Spy Pen",
        "product_attributes": {
            "colors": ["Blue", "Black"],
            "secret_feature": {"name": "laser", "power": "1000", "units": "watts"},
        },
    },
    {"_id": 3, "product_name": "Spy Hat", "price": 20, "product_attributes": {"size": {"length": 20}}},
]


def winning(cursor) -> dict:
    return cursor.explain()["queryPlanner"]["winningPlan"]


@pytest.fixture
def products(db):
    db.products.insert_many(PRODUCTS)
    return db.products


def test_single_field_wildcard_manual_example(products):
    assert products.create_index([("product_attributes.$**", 1)]) == "product_attributes.$**_1"
    spec = [i for i in products.list_indexes() if i["name"] == "product_attributes.$**_1"][0]
    assert spec["key"] == {"product_attributes.$**": 1}
    q = {"product_attributes.size.length": {"$gt": 60}}
    assert [d["_id"] for d in products.find(q)] == [1]
    scan = ixscan(winning(products.find(q)))
    assert scan is not None
    assert scan["indexName"] == "product_attributes.$**_1"
    assert scan["keyPattern"] == {"$_path": 1, "product_attributes.size.length": 1}
    assert scan["indexBounds"] == {
        "$_path": ['["product_attributes.size.length", "product_attributes.size.length"]'],
        "product_attributes.size.length": ["(60, inf.0]"],
    }
    # Array elements are keys under the array's path.
    q = {"product_attributes.material": "Leather"}
    assert [d["_id"] for d in products.find(q)] == [1]
    scan = ixscan(winning(products.find(q)))
    assert scan["isMultiKey"] is True
    assert scan["multiKeyPaths"] == {"$_path": [], "product_attributes.material": ["product_attributes.material"]}
    q = {"product_attributes.secret_feature.name": "laser"}
    assert [d["_id"] for d in products.find(q)] == [2]
    assert ixscan(winning(products.find(q))) is not None
    # Paths outside the subtree are not indexed.
    assert ixscan(winning(products.find({"product_name": "Spy Pen"}))) is None


def test_all_fields_wildcard(products):
    products.create_index([("$**", 1)])
    assert [i["key"] for i in products.list_indexes()] == [{"_id": 1}, {"$**": 1}]
    for q, ids in [
        ({"product_name": "Spy Hat"}, [3]),
        ({"price": {"$lt": 100}}, [3]),
        ({"product_attributes.colors": {"$in": ["Black", "Red"]}}, [2]),
        ({"product_attributes.size.length": {"$gte": 20}}, [1, 3]),
    ]:
        assert sorted(d["_id"] for d in products.find(q)) == ids, q
        assert ixscan(winning(products.find(q))) is not None, q
    # _id is not in a wildcard index unless its projection includes it.
    assert ixscan(winning(products.find({"_id": {"$gt": 1}})))["indexName"] == "_id_"
    # What a wildcard index cannot answer reads the collection.
    for q in (
        {"price": None},
        {"price": {"$exists": False}},
        {"price": {"$ne": 20}},
        {"product_attributes.size": {"length": 20}},
        {"product_attributes.colors": ["Blue", "Black"]},
    ):
        assert ixscan(winning(products.find(q))) is None, q
    assert [d["_id"] for d in products.find({"product_attributes.size": {"length": 20}})] == [3]
    assert [d["_id"] for d in products.find({"price": {"$ne": 20}})] == [1, 2]
    assert ixscan(winning(products.find({}).sort("price", 1))) is None
    # A sort on a bounded path comes out right.
    got = [d["_id"] for d in products.find({"product_attributes.size.length": {"$gt": 0}}).sort("product_attributes.size.length", -1)]
    assert got == [1, 3]
    # Writes keep the entries right; validate agrees.
    products.update_one({"_id": 3}, {"$set": {"price": 200}})
    assert [d["_id"] for d in products.find({"price": {"$gt": 100}})] == [3]
    products.delete_one({"_id": 3})
    assert list(products.find({"price": 200})) == []
    assert products.database.command("validate", "products")["valid"] is True


def test_wildcard_projection(products):
    products.create_index(
        [("$**", 1)],
        wildcardProjection={"product_attributes.size": 1, "product_name": 1},
        name="proj",
    )
    spec = [i for i in products.list_indexes() if i["name"] == "proj"][0]
    assert spec["wildcardProjection"] == {"product_attributes.size": 1, "product_name": 1}
    assert ixscan(winning(products.find({"product_name": "Spy Pen"}))) is not None
    assert ixscan(winning(products.find({"product_attributes.size.units": "inches"}))) is not None
    assert ixscan(winning(products.find({"product_attributes.colors": "Blue"}))) is None
    assert [d["_id"] for d in products.find({"product_attributes.size.units": "inches"})] == [1]
    # Exclusion, with _id included explicitly.
    products.drop_indexes()
    products.create_index([("$**", 1)], wildcardProjection={"product_attributes": 0, "_id": 1})
    assert ixscan(winning(products.find({"product_attributes.colors": "Blue"}))) is None
    scan = ixscan(winning(products.find({"_id": {"$gt": 1}, "price": {"$gt": 5}})))
    assert scan is not None
    assert sorted(d["_id"] for d in products.find({"_id": {"$gte": 1}}).hint("$**_1")) == [1, 2, 3]


def test_hint_hidden_and_drop(products):
    products.create_index([("$**", 1)])
    products.create_index([("price", 1)])
    # A regular index on the path wins the tie; a hint picks the wildcard index.
    assert ixscan(winning(products.find({"price": 20})))["indexName"] == "price_1"
    assert ixscan(winning(products.find({"price": 20}).hint("$**_1")))["indexName"] == "$**_1"
    assert [d["_id"] for d in products.find({"price": 20}).hint([("$**", 1)])] == [3]
    with pytest.raises(OperationFailure):
        list(products.find({}).hint("$**_1"))
    products.drop_index("price_1")
    products.database.command("collMod", "products", index={"name": "$**_1", "hidden": True})
    assert ixscan(winning(products.find({"price": 20}))) is None
    products.database.command("collMod", "products", index={"name": "$**_1", "hidden": False})
    assert ixscan(winning(products.find({"price": 20}))) is not None
    with pytest.raises(OperationFailure) as ei:
        products.database.command("collMod", "products", index={"name": "$**_1", "prepareUnique": True})
    assert ei.value.code == 67
    products.drop_index("$**_1")
    assert [i["name"] for i in products.list_indexes()] == ["_id_"]


def test_invalid_specs(db):
    coll = db.bad

    def code(keys, **kwargs) -> int:
        with pytest.raises(OperationFailure) as ei:
            coll.create_index(keys, **kwargs)
        return ei.value.code

    assert code([("a", 1)], wildcardProjection={"a": 1}) == 2
    assert code([("a.$**", 1)], wildcardProjection={"b": 1}) == 9
    assert code([("$**", 1)], wildcardProjection={}) == 9
    assert code([("$**", 1)], wildcardProjection={"a": 1, "b": 0}) == 31253
    assert code([("$**", 1)], unique=True) == 67
    assert code([("$**", 1)], sparse=True) == 67
    assert code([("$**", 1)], expireAfterSeconds=10) == 67
    assert code([("a.$**.b", 1)]) == 67
    assert code([("a..$**", 1)]) == 67
    assert code([("$a.$**", 1)]) == 67
    assert [i["name"] for i in coll.list_indexes()] in ([], ["_id_"])
