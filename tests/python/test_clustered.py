"""Clustered collections through pymongo: `create` with `clusteredIndex` (and
`expireAfterSeconds`) validated as mongod 7.0 validates it, listed by `listCollections` and
`listIndexes` as mongod lists it, and documents expiring by their `_id` date."""

from __future__ import annotations

import datetime
import time

import pytest
from pymongo.errors import OperationFailure

UTC = datetime.timezone.utc


def code_of(fn) -> int:
    with pytest.raises(OperationFailure) as ei:
        fn()
    return ei.value.code


def test_listed_as_mongod(db):
    db.command(
        "create", "orders", clusteredIndex={"key": {"_id": 1}, "unique": True, "name": "orders clustered key"}
    )
    info = next(db.list_collections(filter={"name": "orders"}))
    assert info["type"] == "collection"
    assert info["options"] == {
        "clusteredIndex": {"v": 2, "key": {"_id": 1}, "name": "orders clustered key", "unique": True}
    }
    assert "idIndex" not in info
    assert list(db.orders.list_indexes()) == [
        {"v": 2, "key": {"_id": 1}, "name": "orders clustered key", "unique": True, "clustered": True}
    ]
    db.orders.insert_many([{"_id": 2}, {"_id": 1}])
    assert [d["_id"] for d in db.orders.find()] == [1, 2]


def test_bad_specs(db):
    def create(**opts):
        return lambda: db.command("create", "c", **opts)

    assert code_of(create(clusteredIndex={"key": {"_id": 1}, "unique": False})) == 5979700
    assert code_of(create(clusteredIndex={"key": {"a": 1}, "unique": True})) == 197
    assert code_of(create(clusteredIndex=True)) == 5979703
    assert code_of(create(clusteredIndex={"key": {"_id": 1}})) == 40414
    spec = {"key": {"_id": 1}, "unique": True}
    assert code_of(create(clusteredIndex=spec, expireAfterSeconds=-5)) == 72
    assert code_of(create(clusteredIndex=spec, expireAfterSeconds="1")) == 14
    assert code_of(create(expireAfterSeconds=5)) == 72
    assert "c" not in db.list_collection_names()


def test_expire_after_seconds_by_id_date(eddy_factory):
    server = eddy_factory(extra_args=["--setParameter", "ttlMonitorSleepSecs=1"])
    db = server.client().app
    db.command("create", "events", clusteredIndex={"key": {"_id": 1}, "unique": True}, expireAfterSeconds=60)
    info = next(db.list_collections(filter={"name": "events"}))
    assert info["options"]["expireAfterSeconds"] == 60
    now = datetime.datetime.now(UTC)
    db.events.insert_many(
        [
            {"_id": now - datetime.timedelta(minutes=5), "k": "old"},
            {"_id": now + datetime.timedelta(minutes=5), "k": "new"},
            {"_id": "not a date", "k": "kept"},
        ]
    )
    deadline = time.monotonic() + 10
    while db.events.count_documents({}) > 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sorted(d["k"] for d in db.events.find()) == ["kept", "new"]
