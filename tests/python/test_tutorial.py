"""The tutorial "MongoDB Change Streams with Python", run unmodified against Eddy.

The tutorial's programs (tests/python/tutorial/, verbatim) run as separate processes with
CHANGE_STREAM_DB=mongodb://localhost:<port>, exactly as a reader would run them in two terminals:
the listener (`python -u change_streams.py`) prints each change event with bson.json_util.dumps,
the application (`test.py`) writes. What the listener prints is checked against MongoDB 7.0.

The listener gives no sign that its stream is open, so the first test.py (one insert, printing the
ObjectId) is run repeatedly until the listener prints an event for one of those inserts: every
event after that is guaranteed to be seen. That is also the tutorial's own first exercise.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from bson import ObjectId, Timestamp, json_util
from conftest import ROOT, EddyServer

TUTORIAL = Path(__file__).resolve().parent / "tutorial"
INSERT_ONE = TUTORIAL / "insert_one" / "test.py"
ALL_EVENTS = TUTORIAL / "all_events" / "test.py"
WATCH_ALL = TUTORIAL / "watch_all" / "change_streams.py"
WATCH_INSERTS = TUTORIAL / "watch_inserts" / "change_streams.py"
SEED = ROOT.parent / "shared" / "seed" / "mongodb-change-streams-with-python.txt"

NS = {"db": "changestream", "coll": "collection"}


class Listener:
    """A change_streams.py process whose stdout lines are collected by a thread."""

    def __init__(self, script: Path, uri: str) -> None:
        env = dict(os.environ, CHANGE_STREAM_DB=uri)
        self.proc = subprocess.Popen(
            [sys.executable, "-u", str(script)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=script.parent,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.raw: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            text = line.decode("utf-8", "replace").rstrip("\n")
            self.raw.append(text)
            self.lines.put(text)

    def next_event(self, timeout: float) -> dict | None:
        """The next printed event (blank separator lines skipped), or None after `timeout`."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if line.strip():
                return json_util.loads(line)
        return None

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode("utf-8", "replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def run_app(script: Path, uri: str) -> str:
    env = dict(os.environ, CHANGE_STREAM_DB=uri)
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        env=env,
        cwd=script.parent,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"{script.name} failed:\n{done.stderr.decode(errors='replace')}"
    return done.stdout.decode()


def wait_until_listening(listener: Listener, uri: str) -> list[dict]:
    """Runs insert_one/test.py until the listener prints one of its inserts.

    Returns the insert events seen (the last ones of the inserted ObjectIds, in order)."""
    inserted: list[ObjectId] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if listener.proc.poll() is not None:
            pytest.fail(f"the listener exited with {listener.proc.returncode}:\n{listener.stderr()}")
        out = run_app(INSERT_ONE, uri).strip()
        # The tutorial: "When you run python3 test.py you should see an ObjectId being printed."
        assert ObjectId.is_valid(out), f"insert_one/test.py printed {out!r}, not an ObjectId"
        inserted.append(ObjectId(out))
        ev = listener.next_event(timeout=1.5)
        if ev is not None:
            seen = [ev]
            # Inserts made after the first seen one are in the stream too: collect them.
            while seen[-1]["documentKey"]["_id"] != inserted[-1]:
                nxt = listener.next_event(timeout=10)
                assert nxt is not None, f"the listener stopped after {seen}; inserted {inserted}"
                seen.append(nxt)
            first = inserted.index(seen[0]["documentKey"]["_id"])
            assert [e["documentKey"]["_id"] for e in seen] == inserted[first:]
            return seen
    pytest.fail(f"the listener printed nothing within 30s of inserts; stderr:\n{listener.stderr()}")


def check_common(ev: dict, op: str) -> None:
    assert ev["operationType"] == op, ev
    token = ev["_id"]
    assert set(token) == {"_data"}, f"resume token must be {{_data: <hex string>}}: {token!r}"
    assert isinstance(token["_data"], str) and token["_data"], token
    int(token["_data"], 16)  # MongoDB >= 4.2 tokens are hex strings
    assert isinstance(ev["clusterTime"], Timestamp), ev
    assert "wallTime" in ev, f"MongoDB 6.0+ events carry wallTime: {ev}"


def check_insert_event(ev: dict, doc_id: ObjectId) -> None:
    check_common(ev, "insert")
    assert ev["fullDocument"] == {"_id": doc_id, "hello": "world"}
    assert ev["ns"] == NS
    assert ev["documentKey"] == {"_id": doc_id}


def check_all_events(events: list[dict]) -> None:
    ops = [e["operationType"] for e in events]
    assert ops == ["insert", "update", "replace", "delete", "drop", "invalidate"], ops
    ins, upd, rep, dele, drop, inv = events
    for e in events:
        check_common(e, e["operationType"])

    assert ins["fullDocument"] == {"_id": 1, "hello": "world"}
    assert ins["ns"] == NS and ins["documentKey"] == {"_id": 1}

    assert upd["ns"] == NS and upd["documentKey"] == {"_id": 1}
    assert upd["updateDescription"] == {
        "updatedFields": {"hello": "mars"},
        "removedFields": [],
        "truncatedArrays": [],
    }
    assert "fullDocument" not in upd, "no fullDocument on updates unless updateLookup is asked"

    assert rep["fullDocument"] == {"_id": 1, "bye": "world"}
    assert list(rep["fullDocument"]) == ["_id", "bye"], "the stored replacement keeps _id first"
    assert rep["ns"] == NS and rep["documentKey"] == {"_id": 1}

    assert dele["ns"] == NS and dele["documentKey"] == {"_id": 1}
    assert "fullDocument" not in dele

    assert drop["ns"] == NS
    assert "documentKey" not in drop

    assert set(inv) == {"_id", "operationType", "clusterTime", "wallTime"}, inv

    # Resume tokens compare as strings in event order (applications rely on it).
    tokens = [e["_id"]["_data"] for e in events]
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens), tokens
    times = [e["clusterTime"] for e in events]
    assert times == sorted(times), times


def test_programs_are_verbatim_copies_of_the_tutorial():
    if not SEED.exists():
        pytest.skip(f"tutorial text not found at {SEED}")
    text = SEED.read_text()
    for script in (INSERT_ONE, ALL_EVENTS, WATCH_ALL, WATCH_INSERTS):
        assert script.read_text().rstrip("\n") in text, f"{script} differs from the tutorial"


def test_watch_all_events(server: EddyServer):
    listener = Listener(WATCH_ALL, server.uri)
    try:
        for ev in wait_until_listening(listener, server.uri):
            check_insert_event(ev, ev["documentKey"]["_id"])

        run_app(ALL_EVENTS, server.uri)
        events = []
        for _ in range(6):
            ev = listener.next_event(timeout=15)
            assert ev is not None, f"events so far: {events}; listener stderr:\n{listener.stderr()}"
            events.append(ev)
        check_all_events(events)

        # After invalidate the server closes the cursor (id 0), pymongo closes the stream and the
        # tutorial's for-loop ends: the program exits on its own, successfully.
        try:
            rc = listener.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail("the listener kept running after the invalidate event")
        assert rc == 0, listener.stderr()
        assert listener.next_event(timeout=0.5) is None, "nothing is printed after invalidate"
    finally:
        listener.stop()


def test_watch_inserts_only(server: EddyServer):
    listener = Listener(WATCH_INSERTS, server.uri)
    try:
        for ev in wait_until_listening(listener, server.uri):
            check_insert_event(ev, ev["documentKey"]["_id"])

        run_app(ALL_EVENTS, server.uri)
        ev = listener.next_event(timeout=15)
        assert ev is not None, f"no event printed; listener stderr:\n{listener.stderr()}"
        check_common(ev, "insert")
        assert ev["fullDocument"] == {"_id": 1, "hello": "world"}
        assert ev["ns"] == NS and ev["documentKey"] == {"_id": 1}

        # update/replace/delete/drop are filtered out, and so is the invalidate event: the user's
        # $match runs after it. mongod still closes the cursor after the invalidate (cursor id 0,
        # nothing returned; see the server's jstest change_stream_check_resumability.js), so the
        # listener's for-loop ends without printing anything more.
        assert listener.next_event(timeout=3) is None, "only the insert may be printed"
        try:
            rc = listener.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail(
                "the listener kept running after the drop: mongod closes a change stream whose "
                "invalidate event was filtered out by the user's $match"
            )
        assert rc == 0, listener.stderr()
        assert listener.next_event(timeout=0.5) is None
    finally:
        listener.stop()
