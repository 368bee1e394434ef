"""CRUD round trips through pymongo 4.20.1, checked against MongoDB 7.0 behaviour.

Covers inserts (ordered / unordered bulk errors), find (filter, projection, sort, skip, limit,
batch_size across getMore), updates, replace, upsert, deletes, find_one_and_*, counts, distinct,
aggregate, collection and index management, rename, and durability: a clean restart and a
kill -9 right after acknowledged writes lose nothing.
"""

from __future__ import annotations

import pymongo
import pytest
from bson import ObjectId
from conftest import EddyServer
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure


# ---------------------------------------------------------------------------------------------
# inserts
# ---------------------------------------------------------------------------------------------
def test_insert_one_and_find_one(db):
    res = db.c.insert_one({"x": 1, "s": "a", "nested": {"k": [1, 2, {"z": None}]}})
    assert res.acknowledged
    assert isinstance(res.inserted_id, ObjectId)
    doc = db.c.find_one({"_id": res.inserted_id})
    assert doc == {"_id": res.inserted_id, "x": 1, "s": "a", "nested": {"k": [1, 2, {"z": None}]}}
    assert list(doc) == ["_id", "x", "s", "nested"], "_id first, field order preserved"


def test_insert_many_keeps_order_and_ids(db):
    res = db.c.insert_many([{"_id": i, "v": i * i} for i in range(10)])
    assert res.inserted_ids == list(range(10))
    assert [d["v"] for d in db.c.find().sort("_id", ASCENDING)] == [i * i for i in range(10)]


def test_insert_one_duplicate_key(db):
    db.c.insert_one({"_id": 1})
    with pytest.raises(DuplicateKeyError) as ei:
        db.c.insert_one({"_id": 1})
    err = ei.value
    assert err.code == 11000
    assert err.details["keyPattern"] == {"_id": 1}
    assert err.details["keyValue"] == {"_id": 1}
    assert "E11000 duplicate key error collection: " + db.name + ".c index: _id_ dup key: { _id: 1 }" in str(
        err.details["errmsg"]
    )


def test_insert_many_ordered_stops_at_first_duplicate(db):
    docs = [{"_id": 1}, {"_id": 2}, {"_id": 1}, {"_id": 3}, {"_id": 2}]
    with pytest.raises(BulkWriteError) as ei:
        db.c.insert_many(docs, ordered=True)
    details = ei.value.details
    assert details["nInserted"] == 2
    assert len(details["writeErrors"]) == 1
    we = details["writeErrors"][0]
    assert we["index"] == 2
    assert we["code"] == 11000
    assert we["keyPattern"] == {"_id": 1}
    assert we["keyValue"] == {"_id": 1}
    assert we["op"] == {"_id": 1}
    assert sorted(d["_id"] for d in db.c.find()) == [1, 2]


def test_insert_many_unordered_reports_every_duplicate(db):
    docs = [{"_id": 1}, {"_id": 2}, {"_id": 1}, {"_id": 3}, {"_id": 2}]
    with pytest.raises(BulkWriteError) as ei:
        db.c.insert_many(docs, ordered=False)
    details = ei.value.details
    assert details["nInserted"] == 3
    assert [(e["index"], e["code"], e["keyValue"]) for e in details["writeErrors"]] == [
        (2, 11000, {"_id": 1}),
        (4, 11000, {"_id": 2}),
    ]
    assert sorted(d["_id"] for d in db.c.find()) == [1, 2, 3]


def test_unique_secondary_index_enforced(db):
    name = db.c.create_index([("email", ASCENDING)], unique=True)
    assert name == "email_1"
    db.c.insert_one({"_id": 1, "email": "a@x"})
    with pytest.raises(DuplicateKeyError) as ei:
        db.c.insert_one({"_id": 2, "email": "a@x"})
    assert ei.value.code == 11000
    assert ei.value.details["keyPattern"] == {"email": 1}
    assert ei.value.details["keyValue"] == {"email": "a@x"}
    # An update that would create a duplicate is refused too.
    db.c.insert_one({"_id": 3, "email": "b@x"})
    with pytest.raises(DuplicateKeyError):
        db.c.update_one({"_id": 3}, {"$set": {"email": "a@x"}})
    assert db.c.find_one({"_id": 3})["email"] == "b@x"


def test_create_unique_index_fails_on_existing_duplicates(db):
    db.c.insert_many([{"_id": 1, "k": 5}, {"_id": 2, "k": 5}])
    with pytest.raises(OperationFailure) as ei:
        db.c.create_index("k", unique=True)
    assert ei.value.code == 11000
    assert "k_1" not in db.c.index_information()


# ---------------------------------------------------------------------------------------------
# find
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def people(db):
    docs = [
        {"_id": i, "name": f"p{i:02d}", "age": 20 + (i * 7) % 30, "city": ["Oslo", "Rome", "Lima"][i % 3]}
        for i in range(30)
    ]
    db.people.insert_many(docs)
    return db.people, docs


def test_find_filter_projection_sort_skip_limit(people):
    coll, docs = people
    got = list(
        coll.find({"age": {"$gte": 30}, "city": {"$in": ["Oslo", "Lima"]}}, {"name": 1, "age": 1, "_id": 0})
        .sort([("age", DESCENDING), ("name", ASCENDING)])
        .skip(2)
        .limit(5)
    )
    want = sorted(
        ({"name": d["name"], "age": d["age"]} for d in docs if d["age"] >= 30 and d["city"] in ("Oslo", "Lima")),
        key=lambda d: (-d["age"], d["name"]),
    )[2:7]
    assert got == want
    assert all(list(d) == ["name", "age"] for d in got)


def test_find_exclusion_projection(people):
    coll, _ = people
    doc = coll.find_one({"_id": 4}, {"city": 0})
    assert doc == {"_id": 4, "name": "p04", "age": 20 + 28 % 30}


def test_cursor_batches_across_getmore(people):
    coll, docs = people
    cursor = coll.find({}, batch_size=4).sort("_id", ASCENDING)
    ids = [d["_id"] for d in cursor]
    assert ids == list(range(30))
    assert cursor.alive is False


def test_cursor_limit_with_batch_size(people):
    coll, _ = people
    assert [d["_id"] for d in coll.find().sort("_id", 1).batch_size(3).limit(7)] == list(range(7))


def test_find_empty_and_no_match(db):
    assert list(db.nothing.find()) == []
    db.c.insert_one({"a": 1})
    assert db.c.find_one({"a": 2}) is None


# ---------------------------------------------------------------------------------------------
# updates, replace, upsert, delete
# ---------------------------------------------------------------------------------------------
def test_update_one_and_many(db):
    db.c.insert_many([{"_id": i, "g": i % 2, "n": 0} for i in range(6)])
    r = db.c.update_one({"g": 1}, {"$inc": {"n": 5}, "$set": {"touched": True}})
    assert (r.matched_count, r.modified_count, r.upserted_id) == (1, 1, None)
    r = db.c.update_many({"g": 0}, {"$inc": {"n": 1}})
    assert (r.matched_count, r.modified_count) == (3, 3)
    # A no-op update matches but does not modify.
    r = db.c.update_many({"g": 0}, {"$set": {"n": 1}})
    assert (r.matched_count, r.modified_count) == (3, 0)
    assert db.c.find_one({"_id": 1}) == {"_id": 1, "g": 1, "n": 5, "touched": True}
    assert [d["n"] for d in db.c.find({"g": 0})] == [1, 1, 1]


def test_replace_one_keeps_id(db):
    db.c.insert_one({"_id": 1, "a": 1, "b": 2})
    r = db.c.replace_one({"_id": 1}, {"c": 3})
    assert (r.matched_count, r.modified_count) == (1, 1)
    doc = db.c.find_one({"_id": 1})
    assert doc == {"_id": 1, "c": 3}
    assert list(doc) == ["_id", "c"]


def test_upsert(db):
    r = db.c.update_one({"k": "x"}, {"$set": {"v": 1}}, upsert=True)
    assert r.matched_count == 0 and r.modified_count == 0
    assert isinstance(r.upserted_id, ObjectId)
    assert db.c.find_one({"_id": r.upserted_id}) == {"_id": r.upserted_id, "k": "x", "v": 1}
    r = db.c.update_one({"k": "x"}, {"$set": {"v": 2}}, upsert=True)
    assert (r.matched_count, r.modified_count, r.upserted_id) == (1, 1, None)
    r = db.c.replace_one({"_id": 42}, {"z": 1}, upsert=True)
    assert r.upserted_id == 42
    assert db.c.find_one({"_id": 42}) == {"_id": 42, "z": 1}


def test_update_rejects_id_change(db):
    db.c.insert_one({"_id": 1})
    with pytest.raises(OperationFailure) as ei:
        db.c.update_one({"_id": 1}, {"$set": {"_id": 2}})
    assert ei.value.code == 66  # ImmutableField


def test_delete_one_and_many(db):
    db.c.insert_many([{"_id": i, "g": i % 3} for i in range(9)])
    assert db.c.delete_one({"g": 0}).deleted_count == 1
    assert db.c.delete_many({"g": 1}).deleted_count == 3
    assert db.c.delete_many({"g": 7}).deleted_count == 0
    assert sorted(d["_id"] for d in db.c.find()) == [2, 3, 5, 6, 8]


def test_find_one_and_update_replace_delete(db):
    db.c.insert_many([{"_id": 1, "n": 1}, {"_id": 2, "n": 2}])
    before = db.c.find_one_and_update({"_id": 1}, {"$inc": {"n": 10}})
    assert before == {"_id": 1, "n": 1}
    after = db.c.find_one_and_update({"_id": 1}, {"$inc": {"n": 10}}, return_document=ReturnDocument.AFTER)
    assert after == {"_id": 1, "n": 21}
    projected = db.c.find_one_and_update(
        {"_id": 2}, {"$set": {"m": 1}}, projection={"_id": 0, "m": 1}, return_document=ReturnDocument.AFTER
    )
    assert projected == {"m": 1}
    upserted = db.c.find_one_and_update(
        {"_id": 3}, {"$set": {"n": 3}}, upsert=True, return_document=ReturnDocument.AFTER
    )
    assert upserted == {"_id": 3, "n": 3}
    assert db.c.find_one_and_update({"_id": 99}, {"$set": {"n": 1}}) is None

    old = db.c.find_one_and_replace({"_id": 2}, {"r": True})
    assert old == {"_id": 2, "n": 2, "m": 1}
    new = db.c.find_one_and_replace({"_id": 2}, {"r": False}, return_document=ReturnDocument.AFTER)
    assert new == {"_id": 2, "r": False}

    gone = db.c.find_one_and_delete({"n": {"$gt": 2}}, sort=[("n", DESCENDING)])
    assert gone == {"_id": 1, "n": 21}
    assert db.c.find_one_and_delete({"_id": 1}) is None
    assert sorted(d["_id"] for d in db.c.find()) == [2, 3]


# ---------------------------------------------------------------------------------------------
# counts, distinct, aggregate
# ---------------------------------------------------------------------------------------------
def test_counts_and_distinct(people):
    coll, docs = people
    assert coll.count_documents({}) == 30
    assert coll.count_documents({"city": "Rome"}) == 10
    assert coll.count_documents({"city": "Rome"}, skip=2, limit=5) == 5
    assert coll.estimated_document_count() == 30
    assert sorted(coll.distinct("city")) == ["Lima", "Oslo", "Rome"]
    assert sorted(coll.distinct("age", {"city": "Oslo"})) == sorted({d["age"] for d in docs if d["city"] == "Oslo"})


def test_aggregate_pipeline(people):
    coll, docs = people
    got = list(
        coll.aggregate(
            [
                {"$match": {"age": {"$gte": 25}}},
                {"$group": {"_id": "$city", "n": {"$sum": 1}, "maxAge": {"$max": "$age"}}},
                {"$sort": {"_id": 1}},
                {"$project": {"_id": 0, "city": "$_id", "n": 1, "maxAge": 1}},
            ]
        )
    )
    want = []
    for city in sorted({d["city"] for d in docs}):
        ages = [d["age"] for d in docs if d["city"] == city and d["age"] >= 25]
        want.append({"n": len(ages), "maxAge": max(ages), "city": city})
    assert got == want
    assert [list(d) for d in got] == [["n", "maxAge", "city"]] * len(got), "inclusion keeps input order"
    count = list(coll.aggregate([{"$match": {"city": "Lima"}}, {"$count": "total"}]))
    assert count == [{"total": 10}]


def test_aggregate_batches_across_getmore(people):
    coll, _ = people
    got = [d["_id"] for d in coll.aggregate([{"$sort": {"_id": -1}}], batchSize=4)]
    assert got == list(range(29, -1, -1))


# ---------------------------------------------------------------------------------------------
# collections, databases, indexes
# ---------------------------------------------------------------------------------------------
def test_create_list_drop_collections(client, db):
    db.create_collection("made")
    db.implicit.insert_one({})
    assert {"made", "implicit"} <= set(db.list_collection_names())
    with pytest.raises(pymongo.errors.CollectionInvalid):
        db.create_collection("made")
    assert db.name in client.list_database_names()
    db.drop_collection("made")
    assert "made" not in db.list_collection_names()
    db.implicit.drop()
    assert db.list_collection_names() == []


def test_drop_database(client, db):
    db.c.insert_one({})
    assert db.name in client.list_database_names()
    client.drop_database(db.name)
    assert db.name not in client.list_database_names()


def test_rename_collection(db):
    db.src.insert_many([{"_id": i} for i in range(3)])
    db.src.create_index("x")
    db.src.rename("dst")
    names = db.list_collection_names()
    assert "dst" in names and "src" not in names
    assert db.dst.count_documents({}) == 3
    assert "x_1" in db.dst.index_information()
    db.other.insert_one({})
    with pytest.raises(OperationFailure) as ei:
        db.dst.rename("other")
    assert ei.value.code == 48  # NamespaceExists
    db.dst.rename("other", dropTarget=True)
    assert db.other.count_documents({}) == 3


def test_index_information_and_drop_index(db):
    db.c.insert_one({"a": 1, "b": 2})
    assert db.c.create_index([("a", ASCENDING), ("b", DESCENDING)]) == "a_1_b_-1"
    assert db.c.create_index("b", name="by_b", unique=True) == "by_b"
    info = db.c.index_information()
    assert set(info) == {"_id_", "a_1_b_-1", "by_b"}
    assert info["_id_"]["key"] == [("_id", 1)]
    assert info["a_1_b_-1"]["key"] == [("a", 1), ("b", -1)]
    assert info["by_b"]["unique"] is True
    db.c.drop_index("a_1_b_-1")
    assert set(db.c.index_information()) == {"_id_", "by_b"}
    with pytest.raises(OperationFailure) as ei:
        db.c.drop_index("nope")
    assert ei.value.code == 27  # IndexNotFound
    with pytest.raises(OperationFailure) as ei:
        db.c.drop_index("_id_")
    assert ei.value.code == 72  # InvalidOptions: cannot drop _id index


# ---------------------------------------------------------------------------------------------
# durability
# ---------------------------------------------------------------------------------------------
def test_restart_persistence(server: EddyServer):
    c = server.client()
    c.app.items.insert_many([{"_id": i, "v": f"v{i}"} for i in range(50)])
    c.app.items.create_index("v", unique=True)
    c.app.items.update_one({"_id": 7}, {"$set": {"v": "seven"}})
    c.app.items.delete_one({"_id": 8})
    c.app.other.insert_one({"_id": "x"})
    assert server.stop() == 0, "a SIGTERM shutdown exits 0"
    server.start()
    c = server.client()
    assert c.app.items.count_documents({}) == 49
    assert c.app.items.find_one({"_id": 7}) == {"_id": 7, "v": "seven"}
    assert c.app.items.find_one({"_id": 8}) is None
    assert set(c.app.list_collection_names()) == {"items", "other"}
    assert "v_1" in c.app.items.index_information()
    with pytest.raises(DuplicateKeyError):
        c.app.items.insert_one({"_id": 1000, "v": "seven"})


def test_kill9_after_acknowledged_writes_loses_nothing(server: EddyServer):
    c = server.client()
    for i in range(200):
        c.app.acked.insert_one({"_id": i, "payload": "x" * 100})
    server.kill9()
    server.start()
    c = server.client()
    assert c.app.acked.count_documents({}) == 200
    assert sorted(d["_id"] for d in c.app.acked.find({}, {"_id": 1})) == list(range(200))


# ---------------------------------------------------------------------------------------------
# aggregation writes: errors as mongod reports them
# ---------------------------------------------------------------------------------------------
def test_merge_fail_reports_the_duplicate_key(db):
    db.target.insert_one({"_id": 2, "x": 0})
    with pytest.raises(OperationFailure) as ei:
        db.aggregate(
            [{"$documents": [{"_id": 2, "x": 1}]}, {"$merge": {"into": "target", "whenMatched": "fail"}}]
        )
    assert ei.value.code == 11000
    assert ei.value.details["keyPattern"] == {"_id": 1}
    assert ei.value.details["keyValue"] == {"_id": 2}
    assert db.target.find_one({"_id": 2}) == {"_id": 2, "x": 0}


def test_linearizable_read_concern_refuses_out_and_merge(db):
    from pymongo.read_concern import ReadConcern

    db.src.insert_one({"_id": 1})
    linearizable = db.src.with_options(read_concern=ReadConcern("linearizable"))
    for stage in ({"$out": "dest"}, {"$merge": {"into": "dest"}}):
        with pytest.raises(OperationFailure) as ei:
            linearizable.aggregate([{"$match": {}}, stage])
        assert ei.value.code == 72, ei.value.details
        name = next(iter(stage))
        assert ei.value.details["errmsg"] == f"{name} cannot be used with a 'linearizable' read concern level"
    assert "dest" not in db.list_collection_names()
    # Reads without a write stage still run.
    assert list(linearizable.aggregate([{"$match": {}}])) == [{"_id": 1}]
