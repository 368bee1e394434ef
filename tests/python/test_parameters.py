"""`setParameter` / `getParameter` as mongod 7.0 answers them (runtime changes of
`cursorTimeoutMillis`, `ttlMonitorEnabled`, `requireApiVersion` and `transactionLifetimeLimitSeconds` that take effect; mongod's errors for unknown,
startup-only and missing parameters), and `listDatabases` showing `admin`, `config` and
`local` as on a mongod replica set."""

from __future__ import annotations

import datetime
import time

import pytest
from pymongo.errors import OperationFailure
from pymongo.server_api import ServerApi


def error_of(fn) -> tuple[int, str]:
    with pytest.raises(OperationFailure) as ei:
        fn()
    return ei.value.code, str(ei.value.details.get("errmsg"))


def test_cursor_timeout_changes_at_runtime(server):
    c = server.client()
    admin = c.admin
    assert admin.command("getParameter", 1, cursorTimeoutMillis=1)["cursorTimeoutMillis"] == 600_000
    assert admin.command("setParameter", 1, cursorTimeoutMillis=300)["was"] == 600_000
    assert admin.command("getParameter", 1, cursorTimeoutMillis=1)["cursorTimeoutMillis"] == 300
    c.app.items.insert_many([{"i": i} for i in range(10)])
    cursor = c.app.items.find(batch_size=2)
    next(cursor)
    time.sleep(2)
    # The idle cursor was reaped under the new timeout: its getMore fails with 43.
    with pytest.raises(OperationFailure) as ei:
        list(cursor)
    assert ei.value.code == 43


def test_ttl_monitor_can_be_paused_and_quickened(server):
    c = server.client()
    assert c.admin.command("setParameter", 1, ttlMonitorSleepSecs=1)["was"] == 60
    assert c.admin.command("getParameter", 1, ttlMonitorSleepSecs=1)["ttlMonitorSleepSecs"] == 1
    assert c.admin.command("setParameter", 1, ttlMonitorEnabled=False)["was"] is True
    coll = c.app.sessions
    coll.create_index("at", expireAfterSeconds=1)
    old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    coll.insert_one({"at": old})
    time.sleep(2.5)
    assert coll.count_documents({}) == 1
    assert c.admin.command("getParameter", 1, ttlMonitorEnabled=1)["ttlMonitorEnabled"] is False
    c.admin.command("setParameter", 1, ttlMonitorEnabled=True)
    deadline = time.time() + 10
    while coll.count_documents({}) and time.time() < deadline:
        time.sleep(0.2)
    assert coll.count_documents({}) == 0


def test_set_parameter_errors_as_mongod(server):
    c = server.client()
    assert error_of(lambda: c.admin.command("setParameter", 1, noSuchParameter=1)) == (
        72,
        "attempted to set unrecognized parameter [noSuchParameter], use help:true to see options ",
    )
    assert error_of(lambda: c.admin.command("setParameter", 1, enableTestCommands=0)) == (
        20,
        "not allowed to change [enableTestCommands] at runtime",
    )
    assert error_of(lambda: c.admin.command("setParameter", 1)) == (
        72,
        "no option found to set, use help:true to see options ",
    )
    assert error_of(lambda: c.admin.command("setParameter", 1, cursorTimeoutMillis="x"))[0] == 2
    assert error_of(lambda: c.admin.command("setParameter", 1, ttlMonitorSleepSecs=0))[0] == 2
    assert error_of(lambda: c.app.command("setParameter", 1, cursorTimeoutMillis=5))[0] == 13
    assert error_of(lambda: c.admin.command("getParameter", 1, noSuchParameter=1)) == (72, "no option found to get")
    # A failed setParameter changed nothing.
    assert c.admin.command("getParameter", 1, cursorTimeoutMillis=1)["cursorTimeoutMillis"] == 600_000


def test_list_databases_shows_the_system_databases(server):
    c = server.client()
    assert c.list_database_names() == ["admin", "config", "local"]
    c.app.items.insert_one({"x": 1})
    reply = c.admin.command("listDatabases")
    by_name = {d["name"]: d for d in reply["databases"]}
    assert list(by_name) == ["admin", "app", "config", "local"]
    # `local` holds the oplog, which the insert grew.
    assert by_name["local"]["sizeOnDisk"] > 0 and by_name["local"]["empty"] is False
    assert reply["totalSize"] == sum(d["sizeOnDisk"] for d in reply["databases"])
    assert [d["name"] for d in c.admin.command("listDatabases", nameOnly=True, filter={"name": "local"})["databases"]] == ["local"]


def test_transaction_lifetime_changes_at_runtime(server):
    """`transactionLifetimeLimitSeconds` applies to transactions that begin after it is
    set (mongod fixes a transaction's expiry when it begins); the reaper's next pass
    aborts those past it."""
    c = server.client()
    admin = c.admin
    coll = c.app.items
    coll.insert_one({"_id": 0})
    details = admin.command("getParameter", {"showDetails": True}, transactionLifetimeLimitSeconds=1)
    assert details["transactionLifetimeLimitSeconds"] == {
        "value": 60,
        "settableAtRuntime": True,
        "settableAtStartup": True,
    }
    before = c.start_session()
    before.start_transaction()
    coll.insert_one({"_id": 1}, session=before)
    assert admin.command("setParameter", 1, transactionLifetimeLimitSeconds=1)["was"] == 60
    assert admin.command("getParameter", 1, transactionLifetimeLimitSeconds=1)["transactionLifetimeLimitSeconds"] == 1
    after = c.start_session()
    after.start_transaction()
    coll.insert_one({"_id": 2}, session=after)
    time.sleep(2.5)
    with pytest.raises(OperationFailure) as ei:
        after.commit_transaction()
    assert ei.value.code == 251
    assert "exceeded transactionLifetimeLimitSeconds" in str(ei.value.details.get("errmsg"))
    # Begun under 60 seconds, it is still open.
    before.commit_transaction()
    assert sorted(d["_id"] for d in coll.find()) == [0, 1]
    assert error_of(lambda: admin.command("setParameter", 1, transactionLifetimeLimitSeconds=0))[0] == 2
    assert error_of(lambda: admin.command("setParameter", 1, transactionLifetimeLimitSeconds="x"))[0] == 2
    assert admin.command("setParameter", 1, transactionLifetimeLimitSeconds=60)["was"] == 1


API_REQUIRED = "The apiVersion parameter is required, please configure your MongoClient's API version"


def test_require_api_version_at_runtime(server):
    """With `requireApiVersion`, every command a client sends must carry `apiVersion`
    (498870, as mongod); a client declaring API version 1 goes on, getMores included."""
    c = server.client()
    assert c.admin.command("ping")["ok"] == 1
    assert c.admin.command("setParameter", 1, requireApiVersion=True)["was"] is False
    assert error_of(lambda: c.admin.command("ping")) == (498870, API_REQUIRED)
    assert error_of(lambda: c.app.items.insert_one({"i": -1}))[0] == 498870
    v1 = server.client(server_api=ServerApi("1"))
    v1.app.items.insert_many([{"i": i} for i in range(5)])
    assert [d["i"] for d in v1.app.items.find(batch_size=2).sort("i", 1)] == [0, 1, 2, 3, 4]
    assert v1.admin.command("getParameter", 1, requireApiVersion=1)["requireApiVersion"] is True
    assert error_of(lambda: v1.admin.command("setParameter", 1, requireApiVersion="yes"))[0] == 2
    assert v1.admin.command("setParameter", 1, requireApiVersion=0)["was"] is True
    assert c.admin.command("ping")["ok"] == 1
    assert c.app.items.count_documents({}) == 5


def test_require_api_version_at_startup(eddy_factory):
    srv = eddy_factory(extra_args=["--setParameter", "requireApiVersion=true"])
    v1 = srv.client(server_api=ServerApi("1"))
    assert v1.admin.command("getParameter", 1, requireApiVersion=1)["requireApiVersion"] is True
    assert v1.admin.command("ping")["ok"] == 1
