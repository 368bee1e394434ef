"""Default collations of collections, views and indexes through pymongo, with the examples of
mongod's manual (collation, case-insensitive indexes) and its views_collation rules."""

from __future__ import annotations

import pytest
from conftest import EddyServer
from pymongo import ASCENDING, IndexModel
from pymongo.collation import Collation
from pymongo.errors import DuplicateKeyError, OperationFailure

from plans import winning_index

FULL_FR = {
    "locale": "fr",
    "caseLevel": False,
    "caseFirst": "off",
    "strength": 3,
    "numericOrdering": False,
    "alternate": "non-ignorable",
    "maxVariable": "punct",
    "normalization": False,
    "backwards": False,
    "version": "57.1",
}


def code_of(fn) -> int:
    with pytest.raises(OperationFailure) as ei:
        fn()
    return ei.value.code



def test_collection_default_collation_is_listed_and_used(server: EddyServer):
    db = server.client().test
    db.create_collection("fr", collation={"locale": "fr"})
    info = next(db.list_collections(filter={"name": "fr"}))
    assert info["options"]["collation"] == FULL_FR
    # `{locale: "simple"}` is no collation at all.
    db.create_collection("plain", collation={"locale": "simple"})
    assert "collation" not in next(db.list_collections(filter={"name": "plain"}))["options"]
    # The `_id` index and every new index inherit the default.
    idx = {i["name"]: i for i in db.fr.list_indexes()}
    assert idx["_id_"]["collation"] == FULL_FR
    db.fr.create_index("a")
    db.fr.create_index("b", collation={"locale": "simple"})
    idx = {i["name"]: i for i in db.fr.list_indexes()}
    assert idx["a_1"]["collation"] == FULL_FR
    assert "collation" not in idx["b_1"]


def test_operations_use_the_collection_default(server: EddyServer):
    db = server.client().test
    db.create_collection("names", collation={"locale": "en", "strength": 2})
    db.names.insert_many(
        [{"_id": 1, "n": "cafe"}, {"_id": 2, "n": "CAFE"}, {"_id": 3, "n": "Cafe"}, {"_id": 4, "n": "b"}]
    )
    assert db.names.count_documents({"n": "cafe"}) == 3
    assert len(list(db.names.find({"n": "CAFE"}))) == 3
    # An explicit collation overrides the default, `simple` included.
    assert db.names.count_documents({"n": "cafe"}, collation=Collation("simple")) == 1
    assert len(db.names.distinct("n")) == 2
    # Strength 2: "b" first, the three spellings of "cafe" tie (then `_id` order).
    assert [d["n"] for d in db.names.find({}, sort=[("n", 1), ("_id", 1)])] == ["b", "cafe", "CAFE", "Cafe"]
    assert len(list(db.names.aggregate([{"$match": {"n": "CAFE"}}]))) == 3
    r = db.names.update_many({"n": "cafe"}, {"$set": {"seen": True}})
    assert r.matched_count == 3
    doc = db.names.find_one_and_update({"n": "B"}, {"$set": {"x": 1}}, return_document=True)
    assert doc["_id"] == 4
    assert db.names.delete_many({"n": "Cafe"}).deleted_count == 3


def test_case_insensitive_index_as_in_the_manual(server: EddyServer):
    # The manual's "case insensitive indexes" example.
    db = server.client().test
    db.fruit.create_index("type", collation={"locale": "en", "strength": 2})
    db.fruit.insert_many([{"type": "apple"}, {"type": "Apple"}, {"type": "APPLE"}])
    assert db.fruit.count_documents({"type": "apple"}) == 1
    ci = Collation("en", strength=2)
    assert len(list(db.fruit.find({"type": "apple"}, collation=ci))) == 3
    # The matching collation uses the index; another scans.
    assert winning_index(db.fruit.find({"type": "apple"}, collation=ci).explain()) == "type_1"
    ixscan = db.fruit.find({"type": "apple"}, collation=ci).explain()["queryPlanner"]["winningPlan"]["inputStage"]
    assert ixscan["stage"] == "IXSCAN" and ixscan["collation"]["strength"] == 2
    assert winning_index(db.fruit.find({"type": "apple"}).explain()) is None
    assert winning_index(db.fruit.find({"type": "apple"}, collation=Collation("en", strength=1)).explain()) is None
    # Non-string predicates may use it under any collation.
    assert winning_index(db.fruit.find({"type": 5}).explain()) == "type_1"
    # Index order is collation order: a sort under it is served by the index.
    db.fruit.insert_many([{"type": "banana"}, {"type": "Cherry"}])
    got = [d["type"].lower() for d in db.fruit.find({"type": {"$gte": "B"}}, collation=ci).sort("type", 1)]
    assert got == ["banana", "cherry"]
    plan = db.fruit.find({"type": {"$gte": "b"}}, collation=ci).sort("type", 1).explain()
    assert winning_index(plan) == "type_1"
    assert "SORT" not in str(plan["queryPlanner"]["winningPlan"])


def test_collection_with_default_collation_uses_its_indexes(server: EddyServer):
    db = server.client().test
    db.create_collection("names", collation={"locale": "fr_CA", "strength": 1})
    db.names.create_index("first_name")
    db.names.insert_many([{"first_name": n} for n in ["Hank", "hank", "Jean", "Jéan", "Zoë"]])
    assert winning_index(db.names.find({"first_name": "jean"}).explain()) == "first_name_1"
    assert db.names.count_documents({"first_name": "jean"}) == 2
    assert winning_index(db.names.find({"first_name": "jean"}, collation=Collation("simple")).explain()) is None
    assert db.names.count_documents({"first_name": "Hank"}, collation=Collation("simple")) == 1


def test_unique_case_insensitive_index(server: EddyServer):
    db = server.client().test
    db.users.create_index("name", unique=True, collation={"locale": "en", "strength": 2})
    db.users.insert_one({"name": "alice"})
    with pytest.raises(DuplicateKeyError) as ei:
        db.users.insert_one({"name": "ALICE"})
    assert " index: name_1 collation: { locale: \"en\", " in ei.value.details["errmsg"]
    assert ei.value.details["keyValue"] == {"name": "ALICE"}
    db.users.insert_one({"name": "bob"})
    with pytest.raises(DuplicateKeyError):
        db.users.update_one({"name": "bob"}, {"$set": {"name": "Alice"}})
    # Building a unique index over case-variant duplicates fails too.
    db.more.insert_many([{"k": "x"}, {"k": "X"}])
    assert code_of(lambda: db.more.create_index("k", unique=True, collation={"locale": "en", "strength": 2})) == 11000


def test_same_keys_different_collations(server: EddyServer):
    db = server.client().test
    db.coll.create_indexes(
        [
            IndexModel([("f", ASCENDING)], collation=Collation("en_US")),
            IndexModel([("f", ASCENDING)], name="japanese", collation=Collation("ja")),
            IndexModel([("f", ASCENDING)], name="simple"),
        ]
    )
    idx = {i["name"]: i for i in db.coll.list_indexes()}
    assert idx["f_1"]["collation"]["locale"] == "en_US"
    assert idx["japanese"]["collation"]["locale"] == "ja"
    assert "collation" not in idx["simple"]
    # The same key and collation under another name conflicts, as in mongod.
    assert code_of(lambda: db.coll.create_index("f", name="again", collation={"locale": "ja"})) == 85
    db.coll.insert_many([{"f": "b"}, {"f": "a"}])
    assert winning_index(db.coll.find({"f": "a"}, collation=Collation("ja")).explain()) == "japanese"
    assert winning_index(db.coll.find({"f": "a"}).explain()) == "simple"
    # A text index cannot have a collation.
    assert code_of(lambda: db.coll.create_index([("t", "text")], collation={"locale": "en"})) == 67


def test_view_default_collation(server: EddyServer):
    db = server.client().views_collation
    db.create_collection("case_sensitive_coll")
    db.command("create", "case_insensitive_view", viewOn="case_sensitive_coll", collation={"locale": "en", "strength": 1})
    db.command("create", "simpleView", viewOn="case_sensitive_coll")
    db.case_sensitive_coll.insert_many([{"f": "case"}, {"f": "Case"}, {"f": "CASE"}])
    assert len(list(db.case_sensitive_coll.aggregate([{"$match": {"f": "case"}}]))) == 1
    assert len(list(db.case_insensitive_view.aggregate([{"$match": {"f": "case"}}]))) == 3
    assert db.case_insensitive_view.count_documents({"f": "case"}) == 3
    assert len(db.case_insensitive_view.distinct("f")) == 1
    assert len(db.command("find", "case_insensitive_view", filter={"f": "case"})["cursor"]["firstBatch"]) == 3
    info = next(db.list_collections(filter={"name": "case_insensitive_view"}))
    assert info["options"]["collation"]["strength"] == 1
    assert "collation" not in next(db.list_collections(filter={"name": "simpleView"}))["options"]
    # A view's default collation cannot be overridden, not even by `simple`.
    for cmd in (
        {"find": "case_insensitive_view", "collation": {"locale": "simple"}},
        {"count": "case_insensitive_view", "collation": {"locale": "fr"}},
        {"distinct": "case_insensitive_view", "key": "f", "collation": {"locale": "en"}},
        {"aggregate": "simpleView", "pipeline": [], "cursor": {}, "collation": {"locale": "en"}},
    ):
        assert code_of(lambda: db.command(cmd)) == 167, cmd
    db.command({"find": "case_insensitive_view", "collation": {"locale": "en", "strength": 1}})
    db.command({"find": "simpleView", "collation": {"locale": "simple"}})
    # A view on a view has its collation; a view others stand on keeps theirs.
    assert code_of(lambda: db.command("create", "zhView", viewOn="case_insensitive_view", collation={"locale": "zh"})) == 167
    assert code_of(lambda: db.command("create", "plainOnCi", viewOn="case_insensitive_view")) == 167
    db.command("create", "A", viewOn="B", collation={"locale": "hsb"})
    assert code_of(lambda: db.command("create", "B", viewOn="other", collation={"locale": "wae"})) == 167
    db.command("create", "B", viewOn="other", collation={"locale": "hsb"})
    db.command("create", "esView", viewOn="case_sensitive_coll", collation={"locale": "es"})
    assert code_of(lambda: db.command("collMod", "esView", viewOn="B", pipeline=[])) == 167


def test_change_stream_match_ignores_the_collection_default(server: EddyServer):
    # mongod: a change stream compares under the `collation` given to `watch`, else simple.
    db = server.client().test
    db.create_collection("ci", collation={"locale": "en", "strength": 2})
    with db.ci.watch([{"$match": {"fullDocument.n": "a"}}]) as plain:
        db.ci.insert_many([{"n": "A"}, {"n": "a"}])
        assert plain.next()["fullDocument"]["n"] == "a"
        assert plain.try_next() is None


def test_hashed_and_wildcard_indexes_under_a_default_collation(server: EddyServer):
    """Hashed and wildcard indexes inherit the collection's collation; whatever index answers,
    a query sees exactly what its collation matches."""
    db = server.client().test
    db.drop_collection("ci_kinds")
    db.create_collection("ci_kinds", collation={"locale": "en", "strength": 2})
    coll = db.ci_kinds
    coll.create_index([("a", "hashed")])
    coll.create_index([("$**", 1)])
    idx = {i["name"]: i for i in coll.list_indexes()}
    assert idx["a_hashed"]["collation"]["strength"] == 2
    assert idx["$**_1"]["collation"]["strength"] == 2
    coll.insert_many([{"_id": 1, "a": "abc", "b": "x"}, {"_id": 2, "a": "ABC", "b": "X"}, {"_id": 3, "a": "abd", "b": 5}])
    simple = Collation(locale="simple")
    assert sorted(d["_id"] for d in coll.find({"a": "abc"})) == [1, 2]
    assert [d["_id"] for d in coll.find({"a": "abc"}, collation=simple)] == [1]
    assert sorted(d["_id"] for d in coll.find({"b": "x"})) == [1, 2]
    assert [d["_id"] for d in coll.find({"b": "x"}, collation=simple)] == [1]
    assert sorted(d["_id"] for d in coll.find({"b": {"$gte": "w", "$lt": "y"}})) == [1, 2]
    # The wildcard index holds the collation's sort keys: it answers the collated string query.
    assert winning_index(coll.find({"b": "x"}).explain()) == "$**_1"
    assert winning_index(coll.find({"b": "x"}, collation=simple).explain()) != "$**_1"
    # A number has no collation: the wildcard index answers it under any.
    assert [d["_id"] for d in coll.find({"b": 5})] == [3]
    assert winning_index(coll.find({"b": 5}).explain()) == "$**_1"
    # The hashed field holds hashes of collation keys (as mongod): a query under the
    # index's collation reads it, one under another collation does not for strings.
    explain = coll.find({"a": "ABC"}).explain()
    assert winning_index(explain) == "a_hashed"
    assert explain["executionStats"]["nReturned"] == 2
    assert winning_index(coll.find({"a": "ABC"}).collation(simple).explain()) != "a_hashed"
    assert [d["_id"] for d in coll.find({"a": "ABC"}, collation=simple)] == [2]
    assert sorted(d["_id"] for d in coll.find({"a": {"$in": ["ABD", "abc"]}})) == [1, 2, 3]
    coll.insert_one({"_id": 4, "a": 7})
    assert winning_index(coll.find({"a": 7}).collation(simple).explain()) == "a_hashed"
    assert [d["_id"] for d in coll.find({"a": 7}, collation=simple)] == [4]
    db.drop_collection("ci_kinds")


CI = {"locale": "en", "strength": 2}


def winning_stage(explain: dict) -> str:
    return explain["queryPlanner"]["winningPlan"]["stage"]


def test_id_is_unique_under_the_collection_default(server: EddyServer):
    """mongod's `_id` index takes the collection's collation: "A" beside "a" is E11000 on
    `_id_`, however the write gets there (insert, upsert, a transaction)."""
    c = server.client()
    db = c.test
    db.create_collection("ci_ids", collation=CI)
    coll = db.ci_ids
    coll.insert_one({"_id": "a", "v": 1})
    with pytest.raises(DuplicateKeyError) as ei:
        coll.insert_one({"_id": "A", "v": 2})
    assert ei.value.code == 11000
    assert ei.value.details["keyPattern"] == {"_id": 1}
    assert ei.value.details["keyValue"] == {"_id": "A"}
    # mongod's message names the collation and shows the collation key in hex.
    errmsg = ei.value.details["errmsg"]
    assert errmsg.startswith("E11000 duplicate key error collection: test.ci_ids index: _id_ collation: { locale: \"en\", ")
    assert ' dup key: { _id: "0x' in errmsg
    assert ei.value.details["collation"]["strength"] == 2
    # At any depth of the `_id`; values without strings as before.
    coll.insert_one({"_id": {"k": ["x", "Y"]}})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": {"k": ["X", "y"]}})
    coll.insert_one({"_id": 5})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": 5.0})
    # An upsert under the simple collation matches nothing, and its insert is refused.
    with pytest.raises(DuplicateKeyError):
        coll.update_one({"_id": "A"}, {"$set": {"v": 3}}, upsert=True, collation=Collation(locale="simple"))
    # Under the default, the upsert finds "a" and updates it.
    r = coll.update_one({"_id": "A"}, {"$set": {"v": 3}}, upsert=True)
    assert (r.matched_count, r.upserted_id) == (1, None)
    assert coll.find_one({"_id": "a"}, collation=Collation(locale="simple"))["v"] == 3
    # A transaction's insert is checked against committed documents and its own.
    with c.start_session() as s:
        s.start_transaction()
        coll.insert_one({"_id": "t"}, session=s)
        with pytest.raises(DuplicateKeyError):
            coll.insert_one({"_id": "T"}, session=s)
    with c.start_session() as s:
        with s.start_transaction():
            coll.insert_one({"_id": "u"}, session=s)
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": "U"})
    # A delete frees the key; a dropped and re-created simple collection has no such index.
    assert coll.delete_one({"_id": "U"}).deleted_count == 1
    coll.insert_one({"_id": "U"})
    assert sorted(d["_id"] for d in coll.find({"_id": {"$in": ["u", "t"]}})) == ["U"]
    db.drop_collection("ci_ids")
    db.create_collection("ci_ids")
    db.ci_ids.insert_many([{"_id": "a"}, {"_id": "A"}])


def test_collated_id_lookups_read_the_id_index(server: EddyServer):
    """`{_id: "A"}` under the collection's collation finds "a" by a point read of the
    collated `_id` index (IDHACK, as mongod); replaceOne, findAndModify and deletes go the
    same way, change events carry the stored `_id`, and the index survives a restart."""
    c = server.client()
    db = c.test
    db.create_collection("ci_look", collation=CI)
    coll = db.ci_look
    coll.insert_many([{"_id": "Apple", "n": 1}, {"_id": "banana", "n": 2}, {"_id": 3, "n": 3}])
    assert [d["n"] for d in coll.find({"_id": "APPLE"})] == [1]
    assert [d["n"] for d in coll.find({"_id": {"$eq": "aPPLE"}})] == [1]
    explain = coll.find({"_id": "APPLE"}).explain()
    assert winning_stage(explain) == "IDHACK"
    assert explain["executionStats"]["nReturned"] == 1
    assert explain["executionStats"]["totalKeysExamined"] == 1
    # Under the simple collation the bytes decide: no document.
    simple = Collation(locale="simple")
    assert list(coll.find({"_id": "APPLE"}, collation=simple)) == []
    assert winning_stage(coll.find({"_id": "APPLE"}).collation(simple).explain()) == "IDHACK"
    # Under another collation, a scan.
    other = Collation(locale="fr", strength=1)
    assert winning_stage(coll.find({"_id": "APPLE"}).collation(other).explain()) != "IDHACK"
    assert [d["n"] for d in coll.find({"_id": "APPLE"}, collation=other)] == [1]
    assert [d["n"] for d in coll.find({"_id": 3})] == [3]
    with coll.watch() as stream:
        assert coll.replace_one({"_id": "BANANA"}, {"n": 20}).modified_count == 1
        doc = coll.find_one_and_update({"_id": "apple"}, {"$inc": {"n": 10}}, return_document=True)
        assert doc == {"_id": "Apple", "n": 11}
        assert coll.delete_one({"_id": "APPLE"}).deleted_count == 1
        events = [stream.next() for _ in range(3)]
    assert [(e["operationType"], e["documentKey"]) for e in events] == [
        ("replace", {"_id": "banana"}),
        ("update", {"_id": "Apple"}),
        ("delete", {"_id": "Apple"}),
    ]
    assert events[0]["fullDocument"] == {"_id": "banana", "n": 20}
    server.restart()
    coll = server.client().test.ci_look
    assert [d["n"] for d in coll.find({"_id": "BANANA"})] == [20]
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": "Banana"})
    coll.insert_one({"_id": "apple"})
    assert [d["_id"] for d in coll.find()] == [3, "apple", "banana"]
