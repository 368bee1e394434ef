"""The HTTP change-stream gateway (`eddy serve --http-port P`, `GET /v1/watch/{db}[/{coll}]`):
change streams as Server-Sent Events, read by a plain HTTP client beside pymongo.

What is checked: each event's `id:` is its resume token, `event:` its operationType and `data:`
the same document pymongo receives from the same stream (canonical Extended JSON); `match`,
`pipeline`, `fullDocument`; `Last-Event-ID` resumes with no gap and no duplicate; heartbeats
carry the post-batch token; database and cluster scope; a bad request is HTTP 400 with mongod's
code; under `--auth` the wire protocol's users and privileges (401 / 403 / 200); a resume point
trimmed from the oplog is an `error` event with code 286 naming the token; a reader that does
not read stalls its own stream (no `getMore` while the socket is full) and loses nothing.
"""

from __future__ import annotations

import http.client
import json
import re
import time

import pytest
from bson import json_util
from conftest import EddyServer, free_port
from sse import Stream, basic, watch_path


@pytest.fixture(scope="module")
def gateway() -> EddyServer:
    port = free_port()
    s = EddyServer(extra_args=["--http-port", str(port)])
    s.http_port = port
    try:
        s.start()
        yield s
    finally:
        s.cleanup()


@pytest.fixture
def db(gateway: EddyServer, request: pytest.FixtureRequest):
    client = gateway.client()
    name = ("sse_" + request.node.name)[:60]
    client.drop_database(name)
    return client[name]


def stream(server: EddyServer, path: str, **kw) -> Stream:
    s = Stream(server.http_port, path, **kw)
    assert s.status == 200, f"HTTP {s.status}: {s.response.read()!r}"
    assert s.response.getheader("Content-Type") == "text/event-stream; charset=utf-8"
    # The opening heartbeat names where the stream starts.
    first = s.heartbeat()
    assert first.id and json.loads(first.data)["postBatchResumeToken"]["_data"] == first.id
    return s


def scrape(server: EddyServer) -> dict[str, float]:
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
    conn.request("GET", "/metrics")
    out = {}
    for line in conn.getresponse().read().decode().splitlines():
        m = re.match(r"^(\S+) (\S+)$", line)
        if m and not line.startswith("#"):
            out[m.group(1)] = float(m.group(2))
    return out


def test_events_are_the_wire_streams_events(gateway, db):
    coll = db.events
    with coll.watch() as wire, stream(gateway, watch_path(db.name, "events")) as sse:
        coll.insert_one({"_id": 1, "n": 1, "tags": ["a"]})
        coll.update_one({"_id": 1}, {"$set": {"n": 2}, "$unset": {"tags": ""}})
        coll.replace_one({"_id": 1}, {"n": 3})
        coll.delete_one({"_id": 1})
        got = sse.changes(4)
        expected = [wire.next() for _ in range(4)]
    assert [e.event for e in got] == ["insert", "update", "replace", "delete"]
    for ev, change in zip(got, expected):
        # `id:` is the token's `_data`; `data:` is the very event pymongo decodes.
        assert ev.id == change["_id"]["_data"]
        assert ev.doc == change
        assert '"$numberInt"' in ev.data  # canonical, not relaxed, Extended JSON
    assert got[1].doc["updateDescription"]["updatedFields"] == {"n": 2}
    assert got[1].doc["updateDescription"]["removedFields"] == ["tags"]


def test_match_and_pipeline_filter_events(gateway, db):
    coll = db.filtered
    by_match = stream(gateway, watch_path(db.name, "filtered", match={"fullDocument.n": {"$gte": 2}}))
    by_pipeline = stream(
        gateway,
        watch_path(
            db.name,
            "filtered",
            pipeline=[{"$match": {"operationType": "insert"}}, {"$project": {"documentKey": 1}}],
        ),
    )
    coll.insert_many([{"_id": i, "n": i} for i in range(4)])
    coll.delete_one({"_id": 0})
    assert [e.doc["fullDocument"]["n"] for e in by_match.changes(2)] == [2, 3]
    projected = by_pipeline.changes(4)
    assert [e.doc["documentKey"]["_id"] for e in projected] == [0, 1, 2, 3]
    # A stage removed operationType: the event is then a plain `message`.
    assert set(projected[0].doc) == {"_id", "documentKey"} and projected[0].event == "message"
    by_match.close()
    by_pipeline.close()


def test_full_document_update_lookup_and_pre_images(gateway, db):
    db.create_collection("images", changeStreamPreAndPostImages={"enabled": True})
    coll = db.images
    coll.insert_one({"_id": 1, "v": "a"})
    with stream(
        gateway,
        watch_path(db.name, "images", fullDocument="updateLookup", fullDocumentBeforeChange="required"),
    ) as sse:
        coll.update_one({"_id": 1}, {"$set": {"v": "b"}})
        (ev,) = sse.changes(1)
    assert ev.event == "update"
    assert ev.doc["fullDocument"] == {"_id": 1, "v": "b"}
    assert ev.doc["fullDocumentBeforeChange"] == {"_id": 1, "v": "a"}


def test_last_event_id_resumes_with_no_gap_and_no_duplicate(gateway, db):
    coll = db.resume
    with stream(gateway, watch_path(db.name, "resume")) as sse:
        coll.insert_many([{"_id": i} for i in range(5)])
        first_two = sse.changes(2)
    # Events 2..4 happened while nobody listened; 5 comes after the reconnect.
    last = first_two[-1].id
    with Stream(gateway.http_port, watch_path(db.name, "resume"), headers={"Last-Event-ID": last}) as again:
        assert again.status == 200
        rest = again.changes(3)
        coll.insert_one({"_id": 5})
        rest += again.changes(1)
    keys = [e.doc["documentKey"]["_id"] for e in first_two + rest]
    assert keys == [0, 1, 2, 3, 4, 5]
    ids = [e.id for e in first_two + rest]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    # The same through the query parameters; Last-Event-ID wins over them.
    with stream(gateway, watch_path(db.name, "resume", resumeAfter=first_two[0].id)) as by_param:
        assert [e.doc["documentKey"]["_id"] for e in by_param.changes(5)] == [1, 2, 3, 4, 5]
    with Stream(
        gateway.http_port,
        watch_path(db.name, "resume", startAfter=first_two[0].id),
        headers={"Last-Event-ID": rest[-2].id},
    ) as both:
        assert [e.doc["documentKey"]["_id"] for e in both.changes(1)] == [5]


def test_heartbeats_carry_the_post_batch_token(gateway, db):
    coll = db.quiet
    path = watch_path(db.name, "quiet", match={"operationType": "delete"}, heartbeatMS=100)
    with stream(gateway, path) as sse:
        opened = sse.last_id
        coll.insert_many([{"_id": i} for i in range(3)])  # never matches
        time.sleep(0.3)
        beat = sse.heartbeat()
        while beat.id <= opened:
            beat = sse.heartbeat()
        assert json.loads(beat.data) == {"postBatchResumeToken": {"_data": beat.id}}
        coll.delete_one({"_id": 0})
        (deleted,) = sse.changes(1)
    # Tokens sort in event order: the heartbeat moved past the three inserts.
    assert opened < beat.id < deleted.id
    # Resuming from the heartbeat rescans nothing before it: only the delete comes back.
    with Stream(gateway.http_port, path, headers={"Last-Event-ID": beat.id}) as again:
        assert [e.id for e in again.changes(1)] == [deleted.id]


def test_database_and_cluster_scope(gateway, db):
    other = db.client[db.name + "_other"]
    other.drop_collection("x")
    with stream(gateway, watch_path(db.name)) as by_db, stream(gateway, watch_path()) as by_cluster:
        db.a.insert_one({"_id": "a"})
        db.b.insert_one({"_id": "b"})
        other.x.insert_one({"_id": "x"})
        seen_db = [(e.doc["ns"]["coll"], e.doc["documentKey"]["_id"]) for e in by_db.changes(2)]
        seen_cluster = [(e.doc["ns"]["db"], e.doc["documentKey"]["_id"]) for e in by_cluster.changes(3)]
        # The database stream never sees the other database's insert.
        db.c.insert_one({"_id": "c"})
        assert by_db.changes(1)[0].doc["documentKey"]["_id"] == "c"
    assert seen_db == [("a", "a"), ("b", "b")]
    assert seen_cluster == [(db.name, "a"), (db.name, "b"), (other.name, "x")]


@pytest.mark.parametrize(
    "path, code, name",
    [
        (watch_path("app", "c", pipeline=[{"$nope": {}}]), 40324, "Location40324"),
        (watch_path("app", "c", pipeline=[{"$match": {"a": {"$bad": 1}}}]), 2, "BadValue"),
        (watch_path("app", "c", pipeline=[{"$changeStream": {}}]), 40602, "Location40602"),
        (watch_path("app", "c", match="{not json"), 9, "FailedToParse"),
        (watch_path("app", "c", match=[1]), 14, "TypeMismatch"),
        (watch_path("app", "c", fullDocument="sometimes"), 2, "BadValue"),
        (watch_path("app", "c", resumeAfter="zz"), 260, "InvalidResumeToken"),
        (watch_path("app", "c", whatever="1"), 2, "BadValue"),
        (watch_path("admin", "c"), 73, "InvalidNamespace"),
        (watch_path("admin"), 73, "InvalidNamespace"),
    ],
)
def test_bad_requests_are_400_with_mongods_code(gateway, path, code, name):
    with Stream(gateway.http_port, path) as r:
        assert r.status == 400
        body = r.body_json()
    assert (body["code"], body["codeName"], body["ok"]) == (code, name, 0), body


def test_other_paths_and_methods(gateway):
    for path in ["/v1/watch/a/b/c", "/v1/nope", "/nope.js"]:
        with Stream(gateway.http_port, path) as r:
            assert r.status == 404
    conn = http.client.HTTPConnection("127.0.0.1", gateway.http_port, timeout=10)
    conn.request("POST", "/v1/watch/app/c")
    r = conn.getresponse()
    assert r.status == 405 and r.getheader("Allow") == "GET"


def test_an_open_stream_is_a_change_stream_cursor_and_goes_with_its_client(gateway, db):
    before = scrape(gateway)["eddy_change_streams_open"]
    sse = stream(gateway, watch_path(db.name, "cursor"))
    assert scrape(gateway)["eddy_change_streams_open"] == before + 1
    # $currentOp lists the gateway's connection with its waiting getMore.
    ops = list(
        db.client.admin.aggregate([{"$currentOp": {"allUsers": True}}, {"$match": {"command.getMore": {"$exists": True}}}])
    )
    assert any(op.get("clientMetadata", {}).get("application", {}).get("name") == "eddy http gateway" for op in ops), ops
    sse.close()
    deadline = time.monotonic() + 5
    while scrape(gateway)["eddy_change_streams_open"] != before:
        assert time.monotonic() < deadline, "the stream's cursor outlived its client"
        time.sleep(0.05)


def test_a_reader_that_does_not_read_stalls_its_own_stream_and_loses_nothing(gateway, db):
    coll = db.slow
    pad = "x" * 16_000
    n = 2_000  # ~32 MB of events: more than the sockets' buffers hold
    sse = stream(gateway, watch_path(db.name, "slow"))
    for start in range(0, n, 200):
        coll.insert_many([{"_id": i, "pad": pad} for i in range(start, start + 200)])
    time.sleep(1.0)
    m1 = scrape(gateway)
    time.sleep(1.0)
    m2 = scrape(gateway)
    # Blocked on the socket, the gateway asks for no more events.
    assert m1['eddy_commands_total{command="getMore",outcome="ok"}'] == m2['eddy_commands_total{command="getMore",outcome="ok"}']
    assert m2["eddy_change_events_delivered_total"] - m1["eddy_change_events_delivered_total"] == 0
    got = [e.doc["documentKey"]["_id"] for e in sse.changes(n, timeout=60)]
    assert got == list(range(n))
    sse.close()


def test_history_lost_is_an_error_event_naming_the_token(eddy_factory):
    port = free_port()
    s = eddy_factory(extra_args=["--http-port", str(port), "--oplogSize", "1"])
    coll = s.client().app.trim
    with Stream(port, watch_path("app", "trim")) as sse:
        sse.heartbeat()
        coll.insert_one({"_id": 0})
        (old,) = sse.changes(1)
    pad = "x" * 200_000
    coll.insert_many([{"_id": i, "pad": pad} for i in range(1, 40)])  # ~8 MB through a 1 MB oplog
    deadline = time.monotonic() + 20
    while True:
        with Stream(port, watch_path("app", "trim"), headers={"Last-Event-ID": old.id}) as again:
            assert again.status == 200
            ev = again.next()
            if ev.event == "error":
                err = json.loads(ev.data)
                with pytest.raises(EOFError):
                    again.next(timeout=5)
                break
        assert time.monotonic() < deadline, "the oplog was never trimmed past the token"
        time.sleep(0.25)
    assert (err["code"], err["codeName"]) == (286, "ChangeStreamHistoryLost")
    assert err["resumeToken"] == {"_data": old.id}
    assert "NonResumableChangeStreamError" in err["errorLabels"]


def test_under_auth_the_wire_users_and_privileges_apply(eddy_factory):
    port = free_port()
    s = eddy_factory(extra_args=["--auth", "--http-port", str(port)])
    s.direct_client().admin.command("createUser", "root", pwd="r00t", roles=["root"])
    root = s.direct_client(username="root", password="r00t", authSource="admin")
    root.admin.command("createUser", "reader", pwd="rd", roles=[{"role": "read", "db": "app"}])
    root.app.command("createUser", "local", pwd="lc", roles=[{"role": "read", "db": "app"}])
    root.admin.command(
        "createRole",
        "findOnly",
        privileges=[{"resource": {"db": "app", "collection": "c"}, "actions": ["find"]}],
        roles=[],
    )
    root.admin.command("createUser", "finder", pwd="fd", roles=[{"role": "findOnly", "db": "admin"}])

    def status(path: str, headers: dict | None = None) -> tuple[int, Stream]:
        r = Stream(port, path, headers=headers)
        return r.status, r

    code, r = status(watch_path("app", "c"))
    assert code == 401 and r.response.getheader("WWW-Authenticate").startswith("Basic")
    assert status(watch_path("app", "c"), basic("reader", "wrong"))[0] == 401
    assert status(watch_path("app", "c"), basic("nobody", "rd"))[0] == 401
    # The privileges of the wire path: find + changeStream on what is watched.
    code, r = status(watch_path("app", "c"), basic("finder", "fd"))
    assert code == 403 and r.body_json()["code"] == 13
    code, r = status(watch_path("other", "c"), basic("reader", "rd"))
    assert code == 403 and r.body_json()["codeName"] == "Unauthorized"
    assert status(watch_path(), basic("reader", "rd"))[0] == 403
    # A user of another database names it, as a driver's authSource.
    assert status(watch_path("app", "c"), basic("local", "lc"))[0] == 401
    for path, who in [
        (watch_path("app", "c"), basic("reader", "rd")),
        (watch_path("app"), basic("reader", "rd")),
        (watch_path("app", "c", authSource="app"), basic("local", "lc")),
        (watch_path(), basic("root", "r00t")),
    ]:
        code, r = status(path, who)
        assert code == 200, (path, code)
        r.heartbeat()
        root.app.c.insert_one({})
        assert r.changes(1)[0].event == "insert"
        r.close()
    # The page itself needs a user too (its streams are then sent the same credentials).
    assert status("/")[0] == 401
    assert status("/", basic("reader", "rd"))[0] == 200


def test_http_connections_are_capped_like_the_wire_ones(eddy_factory):
    port = free_port()
    s = eddy_factory(extra_args=["--http-port", str(port), "--maxConns", "4"])
    s.http_port = port
    open_streams = [stream(s, watch_path("app", "c")) for _ in range(4)]
    # One more is accepted and closed at once, with no answer.
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        Stream(port, watch_path("app", "c"))
    open_streams.pop(0).close()
    deadline = time.monotonic() + 5
    while True:
        try:
            open_streams.append(stream(s, watch_path("app", "c")))
            break
        except (http.client.RemoteDisconnected, ConnectionError):
            assert time.monotonic() < deadline, "a closed stream's place was never given back"
            time.sleep(0.05)
    # The MongoDB port has its own places.
    s.client().app.c.insert_one({"_id": 1})
    for st in open_streams:
        assert st.changes(1)[0].doc["documentKey"] == {"_id": 1}
        st.close()
