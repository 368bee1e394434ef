"""Making an existing index unique in place (mongod 6.0+): `collMod` with `prepareUnique`,
then `unique: true` (or `dryRun: true` to check), with mongod's errors and reply fields."""

import pytest
from pymongo.errors import DuplicateKeyError, OperationFailure


def coll_mod(db, **index):
    return db.command("collMod", "c", index=index)


def index_spec(db, name="a_1"):
    return db.c.index_information()[name]


@pytest.fixture
def coll(db):
    db.c.insert_many([{"_id": 1, "a": 1}, {"_id": 2, "a": 1}, {"_id": 3, "a": 2}])
    db.c.create_index("a")
    return db.c


def test_prepare_unique_refuses_new_duplicates_only(db, coll):
    out = coll_mod(db, name="a_1", prepareUnique=True)
    assert out["prepareUnique_old"] is False and out["prepareUnique_new"] is True
    assert index_spec(db)["prepareUnique"] is True
    # The same value again is a no-op, with no reply fields.
    assert "prepareUnique_new" not in coll_mod(db, keyPattern={"a": 1}, prepareUnique=True)
    with pytest.raises(DuplicateKeyError) as err:
        coll.insert_one({"_id": 4, "a": 2})
    assert err.value.details["keyValue"] == {"a": 2}
    with pytest.raises(DuplicateKeyError):
        coll.update_one({"_id": 3}, {"$set": {"a": 1}})
    # Old duplicates stay, and their documents can still change other fields.
    coll.update_one({"_id": 1}, {"$set": {"b": 1}})
    coll.insert_one({"_id": 5, "a": 3})
    assert coll.count_documents({"a": 1}) == 2


def test_unique_needs_prepare_unique_and_no_duplicates(db, coll):
    with pytest.raises(OperationFailure) as err:
        coll_mod(db, name="a_1", unique=True)
    assert err.value.code == 72
    assert "prepareUnique=false" in str(err.value)
    coll_mod(db, name="a_1", prepareUnique=True)
    with pytest.raises(OperationFailure) as err:
        coll_mod(db, name="a_1", unique=True)
    assert err.value.code == 359
    assert err.value.details["codeName"] == "CannotConvertIndexToUnique"
    assert err.value.details["violations"] == [{"ids": [1, 2]}]
    assert "unique" not in index_spec(db)
    # Resolve the conflict, then convert.
    coll.delete_one({"_id": 2})
    out = coll_mod(db, name="a_1", unique=True)
    assert out["unique_new"] is True
    spec = index_spec(db)
    assert spec["unique"] is True and "prepareUnique" not in spec
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": 6, "a": 1})
    # The converted index still serves queries, in its new layout.
    assert [d["_id"] for d in coll.find({"a": {"$gte": 1}}).hint("a_1")] == [1, 3]
    coll.delete_one({"_id": 1})
    coll.insert_one({"_id": 7, "a": 1})
    # Unique again is a no-op; non-unique is refused.
    assert "unique_new" not in coll_mod(db, name="a_1", unique=True)
    with pytest.raises(OperationFailure) as err:
        coll_mod(db, name="a_1", unique=False)
    assert err.value.code == 2


def test_dry_run_checks_without_converting(db, coll):
    coll_mod(db, name="a_1", prepareUnique=True)
    with pytest.raises(OperationFailure) as err:
        db.command("collMod", "c", index={"name": "a_1", "unique": True}, dryRun=True)
    assert err.value.code == 359
    coll.delete_one({"_id": 1})
    out = db.command("collMod", "c", index={"name": "a_1", "unique": True}, dryRun=True)
    assert out["ok"] == 1 and "unique_new" not in out
    assert "unique" not in index_spec(db)
    with pytest.raises(OperationFailure) as err:
        db.command("collMod", "c", index={"name": "a_1", "hidden": True}, dryRun=True)
    assert err.value.code == 72


def test_prepare_unique_stands_alone(db, coll):
    with pytest.raises(OperationFailure) as err:
        coll_mod(db, name="a_1", prepareUnique=True, hidden=True)
    assert err.value.code == 72
    assert "prepareUnique" not in index_spec(db)


def test_create_index_with_prepare_unique(db):
    db.p.insert_many([{"x": 1}, {"x": 1}])
    db.p.create_index("x", prepareUnique=True)
    assert db.p.index_information()["x_1"]["prepareUnique"] is True
    with pytest.raises(DuplicateKeyError):
        db.p.insert_one({"x": 1})
