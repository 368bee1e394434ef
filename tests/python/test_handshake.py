"""What a driver sees when it connects: hello, buildInfo, getParameter, serverStatus,
replSetGetStatus, unknown commands, and a retryable write across a dropped connection.

Expected values are MongoDB 7.0's (a one-member replica set named rs0, test commands enabled).
"""

from __future__ import annotations

import datetime
import time

import pytest
from bson import Int64, ObjectId, Timestamp
from conftest import EddyServer
from pymongo import monitoring
from pymongo.errors import AutoReconnect, NotPrimaryError, OperationFailure, WriteConcernError


def test_hello_shape(shared_server: EddyServer):
    c = shared_server.direct_client()
    hello = c.admin.command("hello")
    assert hello["ok"] == 1.0
    assert hello["isWritablePrimary"] is True
    assert hello["secondary"] is False
    assert hello["setName"] == "rs0"
    assert isinstance(hello["setVersion"], int)
    assert any(h.endswith(f":{shared_server.port}") for h in hello["hosts"]), hello["hosts"]
    assert hello["primary"] in hello["hosts"] and hello["me"] == hello["primary"]
    assert all(h == h.lower() for h in hello["hosts"])
    assert isinstance(hello["electionId"], ObjectId)
    assert hello["maxBsonObjectSize"] == 16 * 1024 * 1024
    assert hello["maxMessageSizeBytes"] == 48_000_000
    assert hello["maxWriteBatchSize"] == 100_000
    assert hello["minWireVersion"] == 0
    assert hello["maxWireVersion"] == 21
    assert hello["logicalSessionTimeoutMinutes"] == 30
    assert isinstance(hello["connectionId"], int)
    assert isinstance(hello["localTime"], datetime.datetime)
    assert hello["readOnly"] is False
    assert "lastWrite" in hello and isinstance(hello["lastWrite"]["opTime"]["ts"], Timestamp)
    assert "msg" not in hello, "msg: isdbgrid would mean mongos"
    # The legacy spelling answers the same, with `ismaster` instead of `isWritablePrimary`.
    legacy = c.admin.command("isMaster")
    assert legacy["ismaster"] is True and legacy["setName"] == "rs0"
    assert "isWritablePrimary" not in legacy


def test_client_discovers_replica_set_primary(shared_server: EddyServer):
    c = shared_server.client(replicaSet="rs0")
    c.admin.command("ping")
    assert c.primary is not None and c.primary[1] == shared_server.port
    assert c.topology_description.topology_type_name == "ReplicaSetWithPrimary"


def test_buildinfo(shared_server: EddyServer):
    c = shared_server.client()
    info = c.admin.command("buildinfo")
    assert info["ok"] == 1.0
    assert info["version"].startswith("7.0.")
    major, minor, patch = (int(x) for x in info["version"].split("."))
    assert info["versionArray"][:3] == [major, minor, patch]
    assert len(info["versionArray"]) == 4
    assert info["maxBsonObjectSize"] == 16 * 1024 * 1024
    assert c.server_info()["version"] == info["version"]  # the camelCase spelling too


def test_get_parameter_star(shared_server: EddyServer):
    c = shared_server.client()
    params = c.admin.command("getParameter", "*")
    assert params["ok"] == 1.0
    assert params["enableTestCommands"] is True
    one = c.admin.command({"getParameter": 1, "enableTestCommands": 1})
    assert one["enableTestCommands"] is True and "featureCompatibilityVersion" not in one


def test_get_cmd_line_opts(shared_server: EddyServer):
    opts = shared_server.client().admin.command("getCmdLineOpts")
    assert opts["ok"] == 1.0
    assert isinstance(opts["argv"], list) and opts["argv"]
    assert isinstance(opts["parsed"], dict)


def test_server_status(shared_server: EddyServer):
    status = shared_server.client().admin.command("serverStatus")
    assert status["ok"] == 1.0
    assert isinstance(status["storageEngine"]["name"], str) and status["storageEngine"]["name"]
    assert status["version"].startswith("7.0.")
    assert status["process"]
    assert isinstance(status["uptime"], (int, float))
    assert status["repl"]["setName"] == "rs0" and status["repl"]["isWritablePrimary"] is True


def test_repl_set_get_status(shared_server: EddyServer):
    status = shared_server.client().admin.command("replSetGetStatus")
    assert status["ok"] == 1.0
    assert status["set"] == "rs0"
    assert status["myState"] == 1
    [member] = status["members"]
    assert member["stateStr"] == "PRIMARY" and member["state"] == 1
    assert member["self"] is True and member["health"] == 1
    assert member["name"].endswith(f":{shared_server.port}")


def test_unknown_command_keeps_connection_usable(shared_server: EddyServer):
    c = shared_server.client(maxPoolSize=1)
    c.admin.command("ping")
    with pytest.raises(OperationFailure) as ei:
        c.admin.command("noSuchCommandAtAll")
    assert ei.value.code == 59
    assert ei.value.details["codeName"] == "CommandNotFound"
    assert ei.value.details["errmsg"] == "no such command: 'noSuchCommandAtAll'"
    assert ei.value.details["ok"] == 0.0
    # Same connection (pool of one) still works.
    assert c.admin.command("ping")["ok"] == 1.0


def test_users_info_without_auth(shared_server: EddyServer):
    # Without --auth users can still be managed (as with mongod); nobody needs them.
    c = shared_server.client()
    assert c.usersinfo.command("usersInfo", 1)["users"] == []
    assert c.usersinfo.command("usersInfo", {"user": "app", "db": "usersinfo"})["users"] == []
    with pytest.raises(OperationFailure) as ei:
        c.usersinfo.command("usersInfo", 5)
    assert ei.value.code == 2
    c.usersinfo.command("createUser", "app", pwd="secret", roles=[])
    users = c.usersinfo.command("usersInfo", {"user": "app", "db": "usersinfo"})["users"]
    assert [u["_id"] for u in users] == ["usersinfo.app"]
    assert "usersinfo.app" in [u["_id"] for u in c.admin.command("usersInfo", {"forAllDBs": True})["users"]]
    c.usersinfo.command("dropAllUsersFromDatabase")


def test_replies_carry_cluster_time(shared_server: EddyServer):
    events: list[monitoring.CommandSucceededEvent] = []

    class Listener(monitoring.CommandListener):
        def started(self, event):
            pass

        def succeeded(self, event):
            events.append(event)

        def failed(self, event):
            pass

    c = shared_server.client(event_listeners=[Listener()])
    c.t.c.insert_one({"x": 1})
    reply = next(e.reply for e in events if e.command_name == "insert")
    assert isinstance(reply["operationTime"], Timestamp)
    assert isinstance(reply["$clusterTime"]["clusterTime"], Timestamp)
    assert reply["$clusterTime"]["signature"]["keyId"] == 0


def test_retryable_insert_survives_closed_connection(server: EddyServer):
    """failCommand closeConnection once: pymongo retries the insert (same lsid + txnNumber) and the
    document is stored exactly once."""
    started: list[dict] = []

    class Listener(monitoring.CommandListener):
        def started(self, event):
            if event.command_name == "insert":
                started.append(dict(event.command))

        def succeeded(self, event):
            pass

        def failed(self, event):
            pass

    c = server.client(retryWrites=True, event_listeners=[Listener()])
    c.app.r.insert_one({"_id": "warmup"})
    started.clear()
    r = c.admin.command(
        "configureFailPoint",
        "failCommand",
        mode={"times": 1},
        data={"failCommands": ["insert"], "closeConnection": True},
    )
    assert r["ok"] == 1.0
    res = c.app.r.insert_one({"_id": 1, "v": "once"})
    assert res.inserted_id == 1
    assert len(started) == 2, "the first attempt failed on the closed connection, the retry succeeded"
    assert started[0]["txnNumber"] == started[1]["txnNumber"]
    assert started[0]["lsid"] == started[1]["lsid"]
    assert list(c.app.r.find({"_id": 1})) == [{"_id": 1, "v": "once"}]
    assert c.app.r.count_documents({}) == 2
    c.admin.command("configureFailPoint", "failCommand", mode="off")


def test_retried_write_is_not_applied_twice(server: EddyServer):
    """A retry of an already-applied write (same lsid + txnNumber) must return the first result,
    not insert again (mongod's retryable-write transaction table)."""
    c = server.client()
    with c.start_session() as s:
        # pymongo adds the session's lsid; the txnNumber is ours, the same both times.
        cmd = {"insert": "r", "documents": [{"_id": 1}], "txnNumber": Int64(7)}
        first = c.app.command(cmd, session=s)
        again = c.app.command(cmd, session=s)
    assert first["n"] == 1 and again["n"] == 1
    assert "writeErrors" not in again, again
    assert c.app.r.count_documents({}) == 1


def test_retryable_write_concern_error_is_labelled_and_retried(server: EddyServer):
    """A retryable write answered with a retryable writeConcernError carries the
    RetryableWriteError label (mongod adds it for code 262 by itself); the driver retries
    and the retry gets the write's outcome without the first attempt's error. (Not a
    "shutting down" code such as 91: with those the driver marks the server unknown and
    waits for its streaming monitor, as it would with mongod.)"""
    replies = []

    class Listener(monitoring.CommandListener):
        def started(self, event):
            pass

        def succeeded(self, event):
            if event.command_name == "insert":
                replies.append(event.reply)

        def failed(self, event):
            pass

    c = server.client(retryWrites=True, event_listeners=[Listener()])
    for labels in (None, ["RetryableWriteError", "Custom"]):
        replies.clear()
        data = {"failCommands": ["insert"], "writeConcernError": {"code": 262, "errmsg": "slow"}}
        if labels:
            data["errorLabels"] = labels
        c.admin.command("configureFailPoint", "failCommand", mode={"times": 1}, data=data)
        _id = 1 if labels is None else 2
        assert c.app.wce.insert_one({"_id": _id}).inserted_id == _id
        assert len(replies) == 2, replies
        assert replies[0]["writeConcernError"]["code"] == 262
        assert replies[0]["errorLabels"] == (labels or ["RetryableWriteError"])
        assert "writeConcernError" not in replies[1] and replies[1]["n"] == 1, replies[1]
    assert c.app.wce.count_documents({}) == 2


def test_write_concern_errors_on_failed_and_retried_writes(server: EddyServer):
    """mongod waits for write concern after every write command: a failed one (here a
    rename onto an existing collection with w: 2 on one member) also carries the
    writeConcernError, and so does a retry answered from the session."""
    c = server.client(retryWrites=True)
    c.app.src.insert_one({"_id": 1})
    c.app.dst.insert_one({"_id": 1})
    with pytest.raises(OperationFailure) as ei:
        c.admin.command(
            "renameCollection", "app.src", to="app.dst", writeConcern={"w": 2, "wtimeout": 1}
        )
    assert ei.value.code == 48, ei.value.details
    assert ei.value.details["writeConcernError"]["code"] == 100, ei.value.details

    # Both attempts of a retryable insert get the write concern error (times: 2): the
    # retry is answered from the session, with this attempt's error, and the document
    # is stored once.
    c.admin.command(
        "configureFailPoint",
        "failCommand",
        mode={"times": 2},
        data={"failCommands": ["insert"], "writeConcernError": {"code": 262, "errmsg": "slow"}},
    )
    with pytest.raises(WriteConcernError) as wi:
        c.app.wce2.insert_one({"_id": 1})
    assert wi.value.has_error_label("RetryableWriteError"), wi.value.details
    assert c.app.wce2.count_documents({}) == 1


@pytest.mark.parametrize(
    ("code", "carries"),
    [(10107, True), (13435, True), (13436, True), (11602, True), (189, True), (1, False), (2, False)],
)
def test_not_primary_errors_carry_the_topology_version(server: EddyServer, code, carries):
    """As mongod (its notprimary_errors_return_topology_version test): a not-primary error,
    as the error or as a writeConcernError, carries the server's topologyVersion, which
    tells a driver that the error is stale (same version as its monitor's) so that it keeps
    the server instead of waiting for the next hello; other errors do not."""
    c = server.client(retryWrites=False)
    tv = c.admin.command("hello")["topologyVersion"]
    for data in [{"errorCode": code}, {"writeConcernError": {"code": code, "errmsg": "x"}}]:
        c.admin.command(
            "configureFailPoint",
            "failCommand",
            mode={"times": 1},
            data={"failCommands": ["insert"], **data},
        )
        try:
            reply = c.app.command("insert", "tv", documents=[{}])
        except (OperationFailure, NotPrimaryError) as e:
            reply = e.details
        assert ("topologyVersion" in reply) == carries, reply
        if carries:
            assert reply["topologyVersion"] == tv


def test_streaming_hello(server: EddyServer):
    """hello carries a topologyVersion, so pymongo's monitor streams awaitable hellos
    (held for maxAwaitTimeMS, then answered again with moreToCome); mongod's checks on the
    awaitable form."""
    c = server.client()
    hello = c.admin.command("hello")
    tv = hello["topologyVersion"]
    assert isinstance(tv["processId"], ObjectId) and tv["counter"] == 0, tv
    start = time.monotonic()
    again = c.admin.command("hello", topologyVersion=tv, maxAwaitTimeMS=300)
    assert time.monotonic() - start >= 0.29
    assert again["topologyVersion"] == tv
    # Another process's version is answered at once.
    start = time.monotonic()
    c.admin.command("hello", topologyVersion={"processId": ObjectId(), "counter": Int64(5)}, maxAwaitTimeMS=5000)
    assert time.monotonic() - start < 2
    for args, code in [
        ({"topologyVersion": tv}, 31368),
        ({"maxAwaitTimeMS": 10}, 31368),
        ({"topologyVersion": {"processId": tv["processId"], "counter": Int64(-1)}, "maxAwaitTimeMS": 10}, 31372),
        ({"topologyVersion": tv, "maxAwaitTimeMS": -1}, 31373),
        ({"topologyVersion": {"processId": tv["processId"], "counter": Int64(1)}, "maxAwaitTimeMS": 10}, 31382),
    ]:
        with pytest.raises(OperationFailure) as ei:
            c.admin.command("hello", **args)
        assert ei.value.code == code, (args, ei.value.details)

    awaited = []

    class Heartbeats(monitoring.ServerHeartbeatListener):
        def started(self, event):
            pass

        def succeeded(self, event):
            awaited.append(event.awaited)

        def failed(self, event):
            pass

    server.client(heartbeatFrequencyMS=500, event_listeners=[Heartbeats()]).admin.command("ping")
    deadline = time.monotonic() + 10
    while awaited.count(True) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert awaited.count(True) >= 2, awaited


def test_fail_command_can_fail_hello(server: EddyServer):
    """failCommand fails `hello` when it is listed (drivers' monitoring tests rely on it):
    the monitor of the named application sees a failed heartbeat, then recovers."""
    events = []

    class Heartbeats(monitoring.ServerHeartbeatListener):
        def started(self, event):
            pass

        def succeeded(self, event):
            events.append("ok")

        def failed(self, event):
            events.append("failed")

    c = server.client(heartbeatFrequencyMS=500, appName="failHello", event_listeners=[Heartbeats()])
    c.admin.command("ping")
    server.client().admin.command(
        "configureFailPoint",
        "failCommand",
        mode={"times": 4},
        data={"failCommands": ["hello", "isMaster"], "closeConnection": True, "appName": "failHello"},
    )
    deadline = time.monotonic() + 10
    while "failed" not in events and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "failed" in events, events
    server.client().admin.command("configureFailPoint", "failCommand", mode="off")
    assert c.admin.command("ping")["ok"] == 1.0


def test_fail_command_fires_for_commands_eddy_refuses(server: EddyServer):
    """failCommand meets a mongod command Eddy does not have before the 115 refusal, as
    mongod runs it before the command (drivers' log-redaction tests rely on it)."""
    c = server.client(retryWrites=False, retryReads=False)
    c.admin.command(
        "configureFailPoint",
        "failCommand",
        mode={"times": 1},
        data={"failCommands": ["authenticate"], "closeConnection": True},
    )
    with pytest.raises(AutoReconnect):
        c.admin.command("authenticate", 1, mechanism="MONGODB-X509")
    with pytest.raises(OperationFailure) as ei:
        c.admin.command("authenticate", 1, mechanism="MONGODB-X509")
    assert ei.value.code == 115, ei.value.details


def test_fail_command_error_code(server: EddyServer):
    c = server.client(retryWrites=False)
    c.admin.command(
        "configureFailPoint",
        "failCommand",
        mode={"times": 1},
        data={"failCommands": ["find"], "errorCode": 2, "errorLabels": ["Custom"]},
    )
    with pytest.raises(OperationFailure) as ei:
        c.app.c.find_one()
    assert ei.value.code == 2
    assert ei.value.has_error_label("Custom")
    assert c.app.c.find_one() is None  # times: 1 -> the next find works
