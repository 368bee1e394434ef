"""`eddy serve --http-port P`: `GET /metrics` in Prometheus's text format, fed by the same
counters as `serverStatus`, read by a plain HTTP client after pymongo and a change stream
did some work."""

from __future__ import annotations

import base64
import http.client
import re
import time

import pytest
from conftest import EddyServer, free_port


@pytest.fixture
def server(eddy_factory) -> EddyServer:
    port = free_port()
    s = eddy_factory(extra_args=["--http-port", str(port)])
    s.http_port = port
    return s


def get(server: EddyServer, path: str, method: str = "GET") -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
    conn.request(method, path)
    return conn.getresponse()


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def scrape(server: EddyServer) -> dict[str, float]:
    """Every sample, keyed `name{labels}`; checks the exposition's syntax on the way."""
    r = get(server, "/metrics")
    assert r.status == 200
    assert r.getheader("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
    samples: dict[str, float] = {}
    typed: set[str] = set()
    for line in r.read().decode().splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("#") or not line:
            continue
        m = SAMPLE.match(line)
        assert m, f"not a Prometheus sample: {line!r}"
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in typed or family in typed, f"{name} has no # TYPE"
        samples[name + labels] = float(value)
    return samples


def test_metrics_follow_what_clients_do(server: EddyServer):
    c = server.client()
    coll = c.app.events
    with coll.watch(max_await_time_ms=200) as stream:
        coll.insert_many([{"i": i} for i in range(3)])
        got = [stream.next() for _ in range(3)]
    assert [e["fullDocument"]["i"] for e in got] == [0, 1, 2]
    c.app.command("find", "events", filter={"i": {"$gt": 0}})
    try:
        c.app.command("find", "events", filter="not a document")
    except Exception:
        pass
    m = scrape(server)
    assert m['eddy_commands_total{command="insert",outcome="ok"}'] == 1
    assert m['eddy_commands_total{command="find",outcome="failed"}'] == 1
    assert m['eddy_commands_total{command="find",outcome="ok"}'] == 1
    assert m['eddy_command_duration_seconds_count{command="insert"}'] == 1
    buckets = [
        v for k, v in m.items() if k.startswith('eddy_command_duration_seconds_bucket{command="aggregate"')
    ]
    assert buckets == sorted(buckets) and buckets[-1] == m['eddy_command_duration_seconds_count{command="aggregate"}']
    assert m["eddy_commits_total"] >= 1
    assert m["eddy_commit_jobs_total"] >= m["eddy_commits_total"]
    assert m['eddy_commit_duration_seconds_bucket{le="+Inf"}'] == m["eddy_commits_total"]
    assert m["eddy_change_events_built_total"] >= 3
    assert m["eddy_change_events_delivered_total"] >= 3
    assert m["eddy_connections"] >= 1
    assert m["eddy_resident_memory_bytes"] > 1_000_000
    assert m['eddy_network_bytes_total{direction="in"}'] > 0
    assert m["eddy_oplog_bytes"] > 0
    assert m["eddy_oplog_window_seconds"] >= 0
    assert m["eddy_cursors_opened_total"] >= 1

    # One change stream waiting in a getMore shows as open and waiting.
    status = c.admin.command("serverStatus")
    assert status["metrics"]["commands"]["insert"]["total"] == 1


def test_an_idle_server_checkpoints_after_writes(server: EddyServer):
    """Writes are durable by the journal; a second after them, with nothing else to do,
    the committer takes a checkpoint (a durable commit of the database file), once."""
    c = server.client()
    start = scrape(server)["eddy_checkpoints_total"]
    c.app.events.insert_many([{"i": i} for i in range(10)])
    deadline = time.monotonic() + 10
    while scrape(server)["eddy_checkpoints_total"] == start:
        assert time.monotonic() < deadline, "no checkpoint within 10 s of the writes"
        time.sleep(0.1)
    after = scrape(server)["eddy_checkpoints_total"]
    assert after == start + 1
    # Nothing written since: no more checkpoints.
    time.sleep(1.5)
    assert scrape(server)["eddy_checkpoints_total"] == after


def test_other_paths_and_methods(server: EddyServer):
    assert get(server, "/nope").status == 404
    r = get(server, "/metrics", method="POST")
    assert r.status == 405 and r.getheader("Allow") == "GET, HEAD"
    r = get(server, "/metrics", method="HEAD")
    assert r.status == 200 and r.read() == b""
    assert get(server, "/metrics?x=1").status == 200


def test_under_auth_the_same_users_apply(eddy_factory):
    port = free_port()
    s = eddy_factory(extra_args=["--auth", "--http-port", str(port)])
    s.http_port = port
    anonymous = s.direct_client()
    anonymous.admin.command("createUser", "root", pwd="r00t", roles=["root"])
    root = s.direct_client(username="root", password="r00t", authSource="admin")
    root.admin.command("createUser", "monitor", pwd="m0n", roles=["clusterMonitor"])
    root.admin.command("createUser", "app", pwd="app", roles=[{"role": "readWrite", "db": "app"}])

    def get_as(user: str | None, pwd: str = "") -> http.client.HTTPResponse:
        headers = {}
        if user is not None:
            token = base64.b64encode(f"{user}:{pwd}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/metrics", headers=headers)
        return conn.getresponse()

    r = get_as(None)
    assert r.status == 401 and r.getheader("WWW-Authenticate").startswith("Basic")
    assert get_as("monitor", "wrong").status == 401
    assert get_as("nobody", "m0n").status == 401
    assert get_as("app", "app").status == 403
    r = get_as("monitor", "m0n")
    assert r.status == 200 and b"eddy_commands_total" in r.read()
