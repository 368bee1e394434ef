"""What the server is doing, as an operator sees it with mongod 7.0: `$currentOp` and the
`currentOp` command (a change stream's waiting getMore, idle connections and cursors),
`killOp` interrupting that getMore, and `serverStatus`'s counters."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import EddyServer
from pymongo.errors import OperationFailure


@pytest.fixture
def server(eddy_factory) -> EddyServer:
    return eddy_factory()


def code_of(fn) -> int:
    with pytest.raises(OperationFailure) as ei:
        fn()
    return ei.value.code


def waiting_getmore(server: EddyServer, db: str, coll: str):
    """Opens a change stream on db.coll and runs one getMore that waits up to 20 s in a
    thread; returns (cursor id, thread, outcome dict)."""
    watcher = server.client(appname="watcher")
    opened = watcher[db].command(
        "aggregate", coll, pipeline=[{"$changeStream": {}}], cursor={}
    )
    cursor_id = opened["cursor"]["id"]
    outcome: dict = {}

    def wait() -> None:
        try:
            outcome["reply"] = watcher[db].command(
                {"getMore": cursor_id, "collection": coll, "maxTimeMS": 20000}
            )
        except OperationFailure as e:
            outcome["error"] = e

    t = threading.Thread(target=wait)
    t.start()
    return cursor_id, t, outcome


def find_getmore(admin, cursor_id: int, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ops = list(
            admin.aggregate(
                [{"$currentOp": {}}, {"$match": {"op": "getmore", "command.getMore": cursor_id}}]
            )
        )
        if ops:
            return ops[0]
        time.sleep(0.05)
    raise AssertionError("the waiting getMore never showed in $currentOp")


def test_current_op_shows_a_waiting_change_stream_and_kill_op_interrupts_it(server: EddyServer):
    c = server.client()
    admin = c.admin
    c.app.events.insert_one({"x": 1})
    cursor_id, thread, outcome = waiting_getmore(server, "app", "events")
    op = find_getmore(admin, cursor_id)
    assert op["type"] == "op"
    assert op["active"] is True
    assert op["ns"] == "app.events"
    assert op["command"]["collection"] == "events"
    assert op["clientMetadata"]["application"]["name"] == "watcher"
    assert op["desc"] == f"conn{op['connectionId']}"
    assert isinstance(op["opid"], int) and op["secs_running"] >= 0
    assert op["cursor"]["cursorId"] == cursor_id
    assert op["cursor"]["tailable"] is True and op["cursor"]["awaitData"] is True
    assert "$changeStream" in op["cursor"]["originatingCommand"]["pipeline"][0]

    # The currentOp command lists the same op (and itself), with the filter applied.
    inprog = admin.command({"currentOp": 1, "op": "getmore"})["inprog"]
    assert [o["opid"] for o in inprog] == [op["opid"]]
    mine = admin.command({"currentOp": 1, "command.currentOp": {"$exists": True}})["inprog"]
    assert len(mine) == 1 and mine[0]["op"] == "command"

    assert admin.command("killOp", op=op["opid"])["info"] == "attempting to kill op"
    thread.join(10)
    assert not thread.is_alive()
    assert outcome["error"].code == 11601
    assert outcome["error"].details["codeName"] == "Interrupted"
    # As mongod: the interrupted getMore took its cursor with it.
    assert code_of(
        lambda: c.app.command({"getMore": cursor_id, "collection": "events"})
    ) == 43
    # Killing an op that is not running is not an error.
    assert admin.command("killOp", op=123456789)["ok"] == 1.0


def test_idle_connections_and_cursors(server: EddyServer):
    c = server.client()
    admin = c.admin
    c.app.items.insert_many([{"i": i} for i in range(5)])
    found = c.app.command("find", "items", batchSize=2)
    cursor_id = found["cursor"]["id"]
    idle = list(
        admin.aggregate(
            [{"$currentOp": {"idleCursors": True}}, {"$match": {"type": "idleCursor"}}]
        )
    )
    assert [d["cursor"]["cursorId"] for d in idle] == [cursor_id]
    assert idle[0]["ns"] == "app.items"
    assert idle[0]["cursor"]["nDocsReturned"] == 2
    assert idle[0]["cursor"]["nBatchesReturned"] == 1
    assert idle[0]["cursor"]["originatingCommand"]["find"] == "items"
    assert "lsid" in idle[0]

    # `$all: true` adds the connections that are doing nothing (pymongo's monitors).
    everything = admin.command({"currentOp": 1, "$all": True})["inprog"]
    assert any(o["active"] is False for o in everything)
    assert any(o["active"] is True and "currentOp" in o.get("command", {}) for o in everything)


def test_current_op_errors_as_mongod(server: EddyServer):
    c = server.client()
    assert code_of(lambda: c.app.aggregate([{"$currentOp": {}}])) == 73
    assert code_of(lambda: c.app.items.aggregate([{"$currentOp": {}}])) == 73
    assert code_of(lambda: c.admin.aggregate([{"$currentOp": {"allUsers": 1}}])) == 14
    assert code_of(lambda: c.admin.aggregate([{"$currentOp": {"idleCursors": 1}}])) == 9
    assert code_of(lambda: c.admin.aggregate([{"$currentOp": {"nope": True}}])) == 9
    # As mongod: {aggregate: 1} needs a first stage that makes its input.
    assert code_of(lambda: c.admin.aggregate([{"$match": {}}, {"$currentOp": {}}])) == 73
    assert code_of(lambda: c.admin.aggregate([{"$currentOp": {}}, {"$currentOp": {}}])) == 40602
    assert code_of(lambda: c.app.command("currentOp")) == 13
    assert code_of(lambda: c.admin.command("killOp")) == 2
    assert code_of(lambda: c.admin.command("killOp", op="x")) == 14


def test_server_status_counts_what_happened(server: EddyServer):
    c = server.client()
    before = c.admin.command("serverStatus")
    c.app.items.insert_one({"a": 1})
    list(c.app.items.find({}))
    code_of(lambda: c.app.command("find", "items", filter="not a document"))
    after = c.admin.command("serverStatus")

    def cmd(status, name):
        return status["metrics"]["commands"][name]

    assert cmd(after, "insert")["total"] == cmd(before, "insert")["total"] + 1
    assert cmd(after, "find")["total"] == cmd(before, "find")["total"] + 2
    assert cmd(after, "find")["failed"] == cmd(before, "find")["failed"] + 1
    net_before, net_after = before["network"], after["network"]
    assert net_after["bytesIn"] > net_before["bytesIn"]
    assert net_after["bytesOut"] > net_before["bytesOut"]
    assert net_after["numRequests"] >= net_before["numRequests"] + 4
    lat = after["opLatencies"]
    assert lat["writes"]["ops"] >= 1 and lat["reads"]["ops"] >= 2
    assert lat["commands"]["ops"] >= 1 and lat["reads"]["latency"] > 0
    cursor = after["metrics"]["cursor"]
    assert set(cursor["open"]) >= {"noTimeout", "pinned", "total"}
    assert cursor["totalOpened"] >= 0
