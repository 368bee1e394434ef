"""Hashed indexes through pymongo, against MongoDB 7.0's documented behaviour: the manual's
"Create a Hashed Index" examples (single field on `_id`, compound with the hashed field in
the middle), the index specs listIndexes shows, mongod's hash values (the manual's
`$toHashedIndexKey` example and mongosh's `convertShardKeyToHashed({foo: "bar"})`),
equality queries planned over the hashed bounds while ranges and sorts are not, and the
errors: arrays refused at insert (16766), two hashed fields (31303), `unique` (16764)."""

from __future__ import annotations

import pytest
from bson import Int64
from pymongo import HASHED
from pymongo.errors import OperationFailure, WriteError

from plans import ixscans


def hash_of(db, value) -> int:
    out = list(db.aggregate([{"$documents": [{"v": value}]}, {"$project": {"_id": 0, "h": {"$toHashedIndexKey": "$v"}}}]))
    return out[0]["h"]


def test_to_hashed_index_key_is_mongods_hash(db):
    # The manual's $toHashedIndexKey example, and mongosh's convertShardKeyToHashed test.
    assert hash_of(db, "string to hash") == 763543691661428748
    assert hash_of(db, {"foo": "bar"}) == 4975617422686807705
    assert hash_of(db, 42) == -944302157085130861
    # Numbers hash as their (truncated) 64-bit integer; a missing value as null.
    assert hash_of(db, 42.0) == hash_of(db, Int64(42)) == hash_of(db, 42.9)
    out = list(db.aggregate([{"$documents": [{}]}, {"$project": {"h": {"$toHashedIndexKey": "$missing"}}}]))
    assert out[0]["h"] == hash_of(db, None)


def test_hashed_id_index_manual_example(db):
    orders = db.orders
    assert orders.create_index([("_id", HASHED)]) == "_id_hashed"
    spec = [i for i in orders.list_indexes() if i["name"] == "_id_hashed"][0]
    assert spec["key"] == {"_id": "hashed"}
    assert spec["v"] == 2
    orders.insert_many([{"_id": i, "item": f"item{i}", "qty": i * 5} for i in range(20)])
    # An equality on _id is IDHACK; a hinted one reads the hashed index at the value's hash.
    plan = orders.find({"_id": 7}).hint("_id_hashed").explain()["queryPlanner"]["winningPlan"]
    scan = ixscans(plan)[0]
    assert scan["keyPattern"] == {"_id": "hashed"}
    h = hash_of(db, 7)
    assert scan["indexBounds"] == {"_id": [f"[{h}, {h}]"]}
    assert [d["_id"] for d in orders.find({"_id": 7}).hint("_id_hashed")] == [7]


def test_compound_hashed_manual_example(db):
    customers = db.customers
    name = customers.create_index([("name", 1), ("address", HASHED), ("birthday", -1)])
    assert name == "name_1_address_hashed_birthday_-1"
    spec = [i for i in customers.list_indexes() if i["name"] == name][0]
    assert list(spec["key"].items()) == [("name", 1), ("address", "hashed"), ("birthday", -1)]
    customers.insert_many(
        [
            {"_id": 1, "name": "Ann", "address": "1 Main St", "birthday": 1990},
            {"_id": 2, "name": "Ann", "address": "2 Main St", "birthday": 1985},
            {"_id": 3, "name": "Bob", "address": "1 Main St", "birthday": 1970},
            {"_id": 4, "name": "Ann", "address": {"street": "3 Main St"}, "birthday": 2000},
        ]
    )
    q = {"name": "Ann", "address": "1 Main St"}
    assert [d["_id"] for d in customers.find(q)] == [1]
    scan = ixscans(customers.find(q).explain()["queryPlanner"]["winningPlan"])[0]
    h = hash_of(db, "1 Main St")
    assert scan["indexName"] == name
    assert scan["isMultiKey"] is False
    assert scan["indexBounds"] == {
        "name": ['["Ann", "Ann"]'],
        "address": [f"[{h}, {h}]"],
        "birthday": ["[MaxKey, MinKey]"],
    }
    assert [d["_id"] for d in customers.find({"address": {"street": "3 Main St"}, "name": "Ann"})] == [4]
    # A range on the hashed field bounds only the prefix.
    scan = ixscans(customers.find({"name": "Ann", "address": {"$gt": "1"}}).explain()["queryPlanner"]["winningPlan"])[0]
    assert scan["indexBounds"]["address"] == ["[MinKey, MaxKey]"]
    assert sorted(d["_id"] for d in customers.find({"name": "Ann", "address": {"$gt": "1"}})) == [1, 2]


def test_equality_uses_the_hashed_index_and_ranges_do_not(db):
    coll = db.c
    coll.create_index([("a", HASHED)])
    coll.insert_many([{"_id": i, "a": i % 10} for i in range(100)] + [{"_id": 100}, {"_id": 101, "a": 3.5}])
    assert sorted(d["_id"] for d in coll.find({"a": 3})) == list(range(3, 100, 10))
    # 3.5 hashes as 3 (mongod truncates numbers): the filter still separates them.
    assert [d["_id"] for d in coll.find({"a": 3.5})] == [101]
    scan = ixscans(coll.find({"a": {"$in": [1, 2]}}).explain()["queryPlanner"]["winningPlan"])
    assert scan and scan[0]["indexName"] == "a_hashed"
    hashes = sorted([hash_of(db, 1), hash_of(db, 2)])
    assert scan[0]["indexBounds"] == {"a": [f"[{h}, {h}]" for h in hashes]}
    assert sorted(d["_id"] for d in coll.find({"a": {"$in": [1, 2]}})) == sorted(
        list(range(1, 100, 10)) + list(range(2, 100, 10))
    )
    for q in ({"a": {"$gt": 5}}, {"a": {"$exists": True}}, {"a": {"$regex": "^x"}}):
        plan = coll.find(q).explain()["queryPlanner"]["winningPlan"]
        assert not ixscans(plan), (q, plan)
    plan = coll.find({}).sort("a", 1).explain()["queryPlanner"]["winningPlan"]
    assert not ixscans(plan)
    assert [d["_id"] for d in coll.find({"a": {"$gt": 8}}).sort("_id", 1)] == list(range(9, 100, 10))
    # The key of a missing field is the hash of null; updates and deletes keep it right.
    coll.update_many({"a": 3}, {"$set": {"a": 30}})
    assert coll.count_documents({"a": 3}) == 0
    assert coll.count_documents({"a": 30}) == 10
    coll.delete_many({"a": 30})
    assert coll.count_documents({"a": 30}) == 0
    assert db.command("validate", "c")["valid"] is True


def test_arrays_are_refused(db):
    coll = db.arr
    coll.create_index([("a.b", HASHED)])
    with pytest.raises(WriteError) as ei:
        coll.insert_one({"a": [{"b": 1}]})
    assert ei.value.code == 16766
    assert "hashed indexes do not currently support array values" in str(ei.value)
    assert "Found array at path: a" in str(ei.value)
    with pytest.raises(WriteError) as ei:
        coll.insert_one({"a": {"b": [1, 2]}})
    assert ei.value.code == 16766
    coll.insert_one({"_id": 1, "a": {"b": {"c": [1]}}})
    with pytest.raises(WriteError) as ei:
        coll.update_one({"_id": 1}, {"$set": {"a.b": [1]}})
    assert ei.value.code == 16766
    # An index build over an existing array fails the same way.
    db.pre.insert_one({"x": [1]})
    with pytest.raises(OperationFailure) as ei:
        db.pre.create_index([("x", HASHED)])
    assert ei.value.code == 16766


def test_invalid_specs(db):
    coll = db.bad
    with pytest.raises(OperationFailure) as ei:
        coll.create_index([("a", HASHED), ("b", HASHED)])
    assert ei.value.code == 31303
    assert "A maximum of one index field is allowed to be hashed but found 2" in str(ei.value)
    with pytest.raises(OperationFailure) as ei:
        coll.create_index([("a", HASHED)], unique=True)
    assert ei.value.code == 16764
    with pytest.raises(OperationFailure) as ei:
        coll.create_index([("a", HASHED), ("b", "2dsphere")])
    assert ei.value.code == 67


def test_sparse_hidden_and_drop(db):
    coll = db.s
    coll.create_index([("a", HASHED)], sparse=True)
    coll.insert_many([{"_id": 1, "a": 1}, {"_id": 2}])
    assert [d["_id"] for d in coll.find({"a": 1})] == [1]
    db.command("collMod", "s", index={"name": "a_hashed", "hidden": True})
    assert not ixscans(coll.find({"a": 1}).explain()["queryPlanner"]["winningPlan"])
    db.command("collMod", "s", index={"name": "a_hashed", "hidden": False})
    assert ixscans(coll.find({"a": 1}).explain()["queryPlanner"]["winningPlan"])
    # 1 and 1.5 share a key: a hashed index cannot become unique.
    with pytest.raises(OperationFailure) as ei:
        db.command("collMod", "s", index={"name": "a_hashed", "prepareUnique": True})
    assert ei.value.code == 16764
    coll.drop_index("a_hashed")
    assert [i["name"] for i in coll.list_indexes()] == ["_id_"]
