"""TTL indexes through pymongo: `expireAfterSeconds` checked as mongod checks it, and the TTL
monitor (`ttlMonitorSleepSecs`, here 1 s) deleting expired documents as ordinary deletes, so
that a change stream sees each as a `delete` event, as with mongod."""

from __future__ import annotations

import datetime
import time

import pytest
from conftest import EddyServer
from pymongo.errors import OperationFailure


@pytest.fixture
def ttl_server(eddy_factory) -> EddyServer:
    return eddy_factory(extra_args=["--setParameter", "ttlMonitorSleepSecs=1"])


def code_of(fn) -> int:
    with pytest.raises(OperationFailure) as ei:
        fn()
    return ei.value.code


def test_expired_documents_are_deleted_and_streamed(ttl_server: EddyServer):
    c = ttl_server.client()
    coll = c.app.sessions
    now = datetime.datetime.now(datetime.timezone.utc)
    old = now - datetime.timedelta(hours=2)
    assert coll.create_index("at", expireAfterSeconds=3600) == "at_1"
    spec = next(i for i in coll.list_indexes() if i["name"] == "at_1")
    assert spec["expireAfterSeconds"] == 3600
    with coll.watch(max_await_time_ms=200) as stream:
        coll.insert_many(
            [
                {"_id": "stale", "at": old},
                {"_id": "stale-array", "at": [now, old]},
                {"_id": "fresh", "at": now},
                {"_id": "not-a-date", "at": "2000-01-01"},
                {"_id": "missing"},
            ]
        )
        deleted = set()
        deadline = time.monotonic() + 10
        while len(deleted) < 2 and time.monotonic() < deadline:
            event = stream.try_next()
            if event and event["operationType"] == "delete":
                deleted.add(event["documentKey"]["_id"])
        assert deleted == {"stale", "stale-array"}
    assert sorted(d["_id"] for d in coll.find()) == ["fresh", "missing", "not-a-date"]
    ttl = c.admin.command("serverStatus")["metrics"]["ttl"]
    assert ttl["deletedDocuments"] == 2 and ttl["passes"] >= 1, ttl


def test_partial_ttl_index_deletes_within_its_filter(ttl_server: EddyServer):
    c = ttl_server.client()
    coll = c.app.carts
    old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    coll.create_index("at", expireAfterSeconds=0, partialFilterExpression={"kind": "guest"})
    coll.insert_many([{"_id": 1, "at": old, "kind": "guest"}, {"_id": 2, "at": old, "kind": "member"}])
    deadline = time.monotonic() + 10
    while coll.count_documents({}) > 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [d["_id"] for d in coll.find()] == [2]


def test_expire_after_seconds_is_checked_as_mongod(ttl_server: EddyServer):
    coll = ttl_server.client().app.bad
    assert code_of(lambda: coll.create_index("at", expireAfterSeconds="1")) == 67
    assert code_of(lambda: coll.create_index("at", expireAfterSeconds=-1)) == 67
    assert code_of(lambda: coll.create_index("at", expireAfterSeconds=2**31)) == 67
    assert code_of(lambda: coll.create_index([("a", 1), ("b", 1)], expireAfterSeconds=5)) == 67
    assert code_of(lambda: coll.create_index("_id", expireAfterSeconds=5)) == 197
    ttl_server.client().app.create_collection("capped", capped=True, size=4096)
    assert code_of(lambda: ttl_server.client().app.capped.create_index("at", expireAfterSeconds=5)) == 67
    with pytest.raises(OperationFailure) as ei:
        coll.create_index("at", expireAfterSeconds=-1)
    assert ei.value.details["errmsg"].startswith(
        "TTL index 'expireAfterSeconds' option cannot be less than 0. Index spec: "
    )
