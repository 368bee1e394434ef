"""Compound wildcard indexes (MongoDB 7.0) through pymongo: the manual's "Compound Wildcard
Indexes" examples on `salesData` (`{tenantId: 1, "customFields.$**": 1}`, `{tenantId: 1, "$**": 1}`
with a `wildcardProjection`, a partial one), the specs listIndexes shows, queries planned as
mongod's IXSCAN (`{tenantId: 1, $_path: 1, <path>: 1}` for a wildcard path, `{tenantId: 1,
$_path: 1}` with `$_path` bounds `[MinKey, MinKey], ["", {})` for the regular fields alone),
sorts on the regular prefix, and the spec errors of mongod's `validateWildcardIndex` and
`validateWildcardProjection` (the cases of jstests/core/index/wildcard/
compound_wildcard_index_validation.js); a wildcard index under a collation reads collated
string bounds."""

from __future__ import annotations

import pytest
from pymongo.collation import Collation
from pymongo.errors import OperationFailure, WriteError

from plans import has_stage, ixscan

SALES = [
    {"_id": 1, "tenantId": 1, "tenantRegion": 1, "customFields": {"addr": "1 Main St", "name": "Ann", "blockId": 7}},
    {"_id": 2, "tenantId": 1, "tenantRegion": 2, "customFields": {"addr": "2 Oak Ave", "name": "Bob"}},
    {"_id": 3, "tenantId": 2, "tenantRegion": 1, "customFields": {"name": "Ann", "blockId": 9}},
    {"_id": 4, "tenantId": 2, "tenantRegion": 1},
    {"_id": 5, "tenantId": 3, "customFields": {"tags": ["x", "y"], "blockId": 7}},
    {"_id": 6, "tenantRegion": 3},
]


def winning(cursor) -> dict:
    return cursor.explain()["queryPlanner"]["winningPlan"]


def has_sort(plan: dict) -> bool:
    return has_stage(plan, "SORT")


@pytest.fixture
def sales(db):
    db.salesData.insert_many(SALES)
    return db.salesData


def ids(cursor) -> list:
    return sorted(d["_id"] for d in cursor)


def test_manual_subtree_example(sales):
    db = sales.database
    db.command(
        "createIndexes",
        "salesData",
        indexes=[{"key": {"tenantId": 1, "customFields.$**": 1}, "name": "tenant_customFields"}],
    )
    spec = [i for i in sales.list_indexes() if i["name"] == "tenant_customFields"][0]
    assert spec["key"] == {"tenantId": 1, "customFields.$**": 1}
    # The regular field and a wildcard path.
    q = {"tenantId": 1, "customFields.name": "Bob"}
    assert ids(sales.find(q)) == [2]
    scan = ixscan(winning(sales.find(q)))
    assert scan["indexName"] == "tenant_customFields"
    assert scan["keyPattern"] == {"tenantId": 1, "$_path": 1, "customFields.name": 1}
    assert scan["indexBounds"] == {
        "tenantId": ["[1, 1]"],
        "$_path": ['["customFields.name", "customFields.name"]'],
        "customFields.name": ['["Bob", "Bob"]'],
    }
    # A range on a wildcard path, the regular field by equality.
    q = {"tenantId": 2, "customFields.blockId": {"$gt": 5}}
    assert ids(sales.find(q)) == [3]
    assert ixscan(winning(sales.find(q)))["indexName"] == "tenant_customFields"
    # Array elements are keys under the array's path.
    q = {"tenantId": 3, "customFields.tags": "y"}
    assert ids(sales.find(q)) == [5]
    scan = ixscan(winning(sales.find(q)))
    assert scan["multiKeyPaths"]["customFields.tags"] == ["customFields.tags"]
    # The regular field alone: every path, and documents without any (tenant 2's _id 4).
    q = {"tenantId": 2}
    assert ids(sales.find(q)) == [3, 4]
    scan = ixscan(winning(sales.find(q)))
    assert scan["keyPattern"] == {"tenantId": 1, "$_path": 1}
    assert scan["indexBounds"] == {"tenantId": ["[2, 2]"], "$_path": ["[MinKey, MinKey]", '["", {})']}
    assert ids(sales.find({"tenantId": {"$gte": 2}})) == [3, 4, 5]
    # The index is sparse: a document with neither the regular field nor any path is not in
    # it, so a query that a missing field matches reads the collection; a hint reads the
    # index's documents only, as mongod's.
    assert ids(sales.find({"tenantId": None})) == [6]
    assert ixscan(winning(sales.find({"tenantId": None}))) is None
    assert ids(sales.find({}).hint("tenant_customFields")) == [1, 2, 3, 4, 5]
    # A wildcard path without the leading regular field does not use it.
    assert ixscan(winning(sales.find({"customFields.name": "Ann"}))) is None
    assert ids(sales.find({"customFields.name": "Ann"})) == [1, 3]
    # Writes keep the entries right.
    sales.update_one({"_id": 4}, {"$set": {"customFields": {"name": "Dee"}}})
    assert ids(sales.find({"tenantId": 2, "customFields.name": "Dee"})) == [4]
    sales.delete_one({"_id": 3})
    assert ids(sales.find({"tenantId": 2})) == [4]
    assert db.command("validate", "salesData")["valid"] is True
    sales.drop_index("tenant_customFields")
    assert [i["name"] for i in sales.list_indexes()] == ["_id_"]


def test_manual_projection_example(sales):
    name = sales.create_index(
        [("tenantId", 1), ("$**", 1)],
        wildcardProjection={"customFields.addr": 1, "customFields.name": 1},
        name="tenant_customFields_projection_helper",
    )
    assert name == "tenant_customFields_projection_helper"
    spec = [i for i in sales.list_indexes() if i["name"] == name][0]
    assert spec["key"] == {"tenantId": 1, "$**": 1}
    assert spec["wildcardProjection"] == {"customFields.addr": 1, "customFields.name": 1}
    q = {"tenantId": 1, "customFields.addr": {"$regex": "^2"}}
    assert ids(sales.find(q)) == [2]
    assert ixscan(winning(sales.find(q)))["keyPattern"] == {"tenantId": 1, "$_path": 1, "customFields.addr": 1}
    # blockId is not projected: the read is the regular field's, every path.
    q = {"tenantId": 1, "customFields.blockId": 7}
    assert ids(sales.find(q)) == [1]
    assert ixscan(winning(sales.find(q)))["keyPattern"] == {"tenantId": 1, "$_path": 1}


def test_manual_partial_example(sales):
    sales.database.command(
        "createIndexes",
        "salesData",
        indexes=[
            {
                "key": {"tenantId": 1, "customFields.$**": 1},
                "name": "tenant_customFields_partial",
                "partialFilterExpression": {"tenantRegion": 1},
            }
        ],
    )
    q = {"tenantId": 2, "tenantRegion": 1, "customFields.name": "Ann"}
    assert ids(sales.find(q)) == [3]
    assert ixscan(winning(sales.find(q)))["indexName"] == "tenant_customFields_partial"
    # Without the partial filter's predicate the index is not used.
    assert ixscan(winning(sales.find({"tenantId": 2, "customFields.name": "Ann"}))) is None


def test_wildcard_first_and_regular_suffix(db):
    coll = db.cwi
    coll.insert_many([{"_id": i, "a": i, "b": i * 2, "sub": {"a": i}, "c": i * 3} for i in range(5)])
    coll.create_index([("a", 1), ("b", 1), ("sub.$**", 1), ("c", 1)])
    for q in ({"a": 1}, {"a": 1, "b": 2}, {"a": 1, "b": {"$gt": 1}}):
        assert ixscan(winning(coll.find(q))) is not None, q
        for sort in ([("a", 1)], [("a", 1), ("b", 1)]):
            assert not has_sort(winning(coll.find(q).sort(sort))), (q, sort)
            assert list(coll.find(q).sort(sort)) == list(coll.find(q).sort(sort).hint([("$natural", 1)]))
        for sort in ([("a", 1), ("c", 1)], [("c", 1)]):
            assert has_sort(winning(coll.find(q).sort(sort))), (q, sort)
            assert list(coll.find(q).sort(sort)) == list(coll.find(q).sort(sort).hint([("$natural", 1)]))
    for q in ({"b": 1}, {"c": 1}):
        assert ixscan(winning(coll.find(q))) is None, q
    # The wildcard term first: a path query reads it, a regular field alone does not.
    coll.create_index([("$**", -1), ("a", 1)], wildcardProjection={"sub": 1})
    q = {"sub.a": {"$gte": 3}}
    assert ids(coll.find(q)) == [3, 4]
    scan = ixscan(winning(coll.find(q)))
    assert scan["keyPattern"] == {"$_path": 1, "sub.a": -1, "a": 1}
    assert list(coll.find(q).sort("sub.a", -1)) == list(coll.find(q).sort("sub.a", -1).hint([("$natural", 1)]))
    assert ixscan(winning(coll.find({"a": 2}))) is not None  # the first index, not this one
    assert ixscan(winning(coll.find({"a": 2})))["indexName"] == "a_1_b_1_sub.$**_1_c_1"
    # Hinted with no wildcard predicate, it reads every path.
    scan = ixscan(winning(coll.find({"a": 2}).hint("$**_-1_a_1")))
    assert scan["keyPattern"] == {"$_path": 1, "a": 1}
    assert ids(coll.find({"a": 2}).hint("$**_-1_a_1")) == [2]
    # A hint with no wildcard predicate reads every path under the regular fields' bounds.
    coll.drop_indexes()
    coll.create_index([("a", 1), ("$**", 1)], wildcardProjection={"a": 0})
    coll.insert_one({"_id": 9, "b": [1, 2]})
    q = {"a": {"$exists": True}}
    scan = ixscan(winning(coll.find(q).hint([("a", 1), ("$**", 1)])))
    assert scan["keyPattern"] == {"a": 1, "$_path": 1}
    assert scan["indexBounds"] == {"a": ["[MinKey, MaxKey]"], "$_path": ["[MinKey, MinKey]", '["", {})']}
    assert ids(coll.find(q).hint([("a", 1), ("$**", 1)])) == [0, 1, 2, 3, 4]


def test_regular_fields_are_single_key(db):
    coll = db.cwi_arrays
    coll.create_index([("a", 1), ("b.$**", 1)])
    with pytest.raises(WriteError) as ei:
        coll.insert_one({"a": [1, 2], "b": {"c": 1}})
    assert ei.value.code == 7246301
    coll.insert_one({"_id": 1, "a": 1, "b": {"c": [1, 2]}})
    assert ids(coll.find({"a": 1, "b.c": 2})) == [1]
    # An existing array refuses the index build.
    db.cwi_arrays2.insert_one({"a": {"x": [1]}})
    with pytest.raises(OperationFailure) as ei:
        db.cwi_arrays2.create_index([("a.x", 1), ("$**", 1)], wildcardProjection={"a": 0})
    assert ei.value.code == 7246301


def test_spec_errors(db):
    coll = db.cwi_specs

    def code(keys, **kwargs) -> int:
        with pytest.raises(OperationFailure) as ei:
            coll.create_index(keys, **kwargs)
        return ei.value.code

    # Valid specifications.
    for keys, kwargs in [
        ([("a", 1), ("b.$**", 1)], {}),
        ([("a.$**", 1), ("b", 1)], {}),
        ([("a", 1), ("b.$**", -1), ("c", 1)], {}),
        ([("a", 1), ("$**", 1)], {"wildcardProjection": {"a": 0}}),
        ([("$**", 1), ("a", 1)], {"wildcardProjection": {"a": 0}}),
        ([("$**", 1), ("other", 1)], {"wildcardProjection": {"_id": 0, "a": 1}}),
        ([("$**", 1), ("another", 1)], {"wildcardProjection": {"_id": 1, "a": 0, "another": 0}}),
        ([("$**", 1), ("yetAnother", 1)], {"wildcardProjection": {"_id": 1}}),
        ([("$**", 1), ("d", 1)], {"wildcardProjection": {"a": {"b": 1, "c": 1}}}),
        ([("_id", 1), ("$**", 1)], {"wildcardProjection": {"_id": 0}}),
        ([("_id", 1), ("a.b", 1), ("$**", 1)], {"wildcardProjection": {"_id": 0, "a": 0}}),
        ([("$**", 1), ("e.b", 1)], {"wildcardProjection": {"_id": 1, "e": 0}}),
    ]:
        coll.create_index(keys, **kwargs)
    # Invalid ones, with mongod's codes.
    assert code([("a", 1), ("a.$**", 1)]) == 7246204
    assert code([("a.b.c", 1), ("a.b.$**", 1)]) == 7246204
    assert code([("$**", 1), ("c", 1)], wildcardProjection={"a.b": 1, "a.b.c": 1}) == 7246200
    assert code([("a.$**", 1), ("b.$**", 1)]) == 7246201
    assert code([("a.$**", 1), ("b", "text")]) == 67
    assert code([("a.$**", 1), ("b", "hashed")]) == 67
    assert code([("a.$**", 1), ("b", "2dsphere")]) == 67
    assert code([("a.$**", 1), ("b", 1)], unique=True) == 67
    assert code([("a.$**", 1), ("b", 1)], sparse=True) == 67
    assert code([("a.$**", 1), ("b", 1)], expireAfterSeconds=60) == 67
    assert code([("a", 1), ("$**", 1)]) == 67
    assert code([("a", 1), ("$**", 1)], wildcardProjection={}) == 9
    assert code([("a", 1), ("b", 1)], wildcardProjection={"c": 1}) == 2
    assert code([("a", 1), ("$**", 1)], wildcardProjection={"a": 1}) == 7246208
    assert code([("a", 1), ("$**", 1), ("b", 1)], wildcardProjection={"a": 1, "b": 1}) == 7246208
    assert code([("_id", 1), ("$**", 1)], wildcardProjection={"_id": 1}) == 7246208
    assert code([("$**", 1), ("c", 1)], wildcardProjection={"_id": 0, "a": 0, "b": 1}) == 7246211
    assert code([("$**", 1), ("c", 1)], wildcardProjection={"_id": 1, "a": 0, "b": 1}) == 7246211
    assert code([("$**", 1), ("_id", 1), ("e", 1)], wildcardProjection={"_id": 1, "e": 0}) == 7246209
    assert code([("st", 1), ("$**", 1)], wildcardProjection={"a": "something"}) == 51271
    assert code([("a", 1), ("$**", 1)], wildcardProjection={"_id": 0}) == 7246210
    assert code([("b", 1), ("$**", 1), ("a", 1)], wildcardProjection={"_id": 0}) == 7246210
    assert code([("a", 1), ("b", 1), ("$**", 1)], wildcardProjection={"b": 0}) == 7246209
    assert code([("a", 1), ("$**", 1)], wildcardProjection={"_id": 0, "a.b": 0}) == 7246209
    assert code([("$**", 1), ("e.c", 1)], wildcardProjection={"_id": 1, "e.b": 0}) == 7246210
    # A query on a field name with dots and '$' still runs beside them.
    assert coll.database.command("find", "cwi_specs", filter={"a.$b": 5})["ok"] == 1


def test_wildcard_index_under_a_collation(db):
    """A wildcard index's keys hold the collation's sort keys for strings: a query under the
    same collation reads it for string bounds; a simple query reads it only for others."""
    ci = Collation(locale="en", strength=2)
    coll = db.wc_collated
    coll.insert_many(
        [{"_id": 1, "t": 1, "f": {"n": "abc"}}, {"_id": 2, "t": 1, "f": {"n": "ABC"}}, {"_id": 3, "t": 1, "f": {"n": "abd"}}]
    )
    coll.create_index([("f.$**", 1)], collation=ci)
    coll.create_index([("t", 1), ("f.$**", 1)], collation=ci, name="cwi")
    q = {"f.n": "abc"}
    assert ids(coll.find(q, collation=ci)) == [1, 2]
    scan = ixscan(winning(coll.find(q, collation=ci)))
    assert scan["indexName"] == "f.$**_1"
    assert scan["collation"]["strength"] == 2
    assert ids(coll.find({"f.n": {"$gt": "ABC"}}, collation=ci)) == [3]
    assert ixscan(winning(coll.find({"f.n": {"$gt": "ABC"}}, collation=ci))) is not None
    q = {"t": 1, "f.n": "ABC"}
    assert ids(coll.find(q, collation=ci)) == [1, 2]
    assert ixscan(winning(coll.find(q, collation=ci).hint("cwi")))["keyPattern"] == {"t": 1, "$_path": 1, "f.n": 1}
    assert ids(coll.find(q, collation=ci).hint("cwi")) == [1, 2]
    # A simple query compares bytes: the collated indexes serve no string bounds.
    assert ids(coll.find({"f.n": "abc"})) == [1]
    assert ixscan(winning(coll.find({"f.n": "abc"}))) is None
