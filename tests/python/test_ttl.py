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


def test_coll_mod_changes_expiry_and_hides_indexes(ttl_server: EddyServer):
    """`collMod: {index: {...}}` as mongod: the reply's `_old`/`_new` fields, the new value in
    `listIndexes`, the monitor going by it, and a `modify` event whose `stateBeforeChange`
    holds the index's old options."""
    c = ttl_server.client()
    db = c.app
    coll = db.events
    coll.create_index("at", expireAfterSeconds=3600)
    ten_seconds_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=10)
    coll.insert_one({"_id": 1, "at": ten_seconds_ago})
    with db.watch(show_expanded_events=True, max_await_time_ms=200) as stream:
        reply = db.command("collMod", "events", index={"name": "at_1", "expireAfterSeconds": 5})
        assert (reply["expireAfterSeconds_old"], reply["expireAfterSeconds_new"]) == (3600, 5)
        spec = next(i for i in coll.list_indexes() if i["name"] == "at_1")
        assert spec["expireAfterSeconds"] == 5
        seen = []
        deadline = time.monotonic() + 10
        while len(seen) < 2 and time.monotonic() < deadline:
            event = stream.try_next()
            if event:
                seen.append(event)
        modify, delete = seen
        assert modify["operationType"] == "modify"
        assert modify["operationDescription"] == {"index": {"name": "at_1", "expireAfterSeconds": 5}}
        assert modify["stateBeforeChange"]["indexOptions"] == {"expireAfterSeconds": 3600}
        assert delete["operationType"] == "delete" and delete["documentKey"] == {"_id": 1}

    reply = db.command("collMod", "events", index={"keyPattern": {"at": 1}, "hidden": True})
    assert (reply["hidden_old"], reply["hidden_new"]) == (False, True)
    assert next(i for i in coll.list_indexes() if i["name"] == "at_1")["hidden"] is True

    def refused(index) -> int:
        return code_of(lambda: db.command("collMod", "events", index=index))

    assert refused({"name": "at_1", "keyPattern": {"at": 1}, "hidden": False}) == 72
    assert refused({"hidden": False}) == 72
    assert refused({"name": "at_1"}) == 72
    assert refused({"name": "at_1", "expireAfterSeconds": -1}) == 72
    assert refused({"name": "nope", "hidden": True}) == 27
    assert refused({"name": "_id_", "hidden": True}) == 2
