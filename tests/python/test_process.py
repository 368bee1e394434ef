"""mongod's process flags on `eddy serve`: `--fork`, `--logpath`, `--logappend`, `--pidfilepath`,
`--logRotate` with SIGUSR1, `systemLog`/`processManagement` in a config file, and log formats
(mongod's JSON lines in a log file, plain text without colour codes when stderr is redirected).

A forked server is not our child (its parent exits): every test stops it by pid at the end
(SIGTERM, then SIGKILL after a bound), and every wait is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pymongo
import pytest

from conftest import EDDY_BIN, free_port, port_open

ABOUT = "about to fork child process, waiting until server is ready for connections."
SUCCESS = "child process started successfully, parent exiting"
HINT = 'To see additional information in this output, start without the "--fork" option.'
MONGOD_KEYS = ["t", "s", "c", "id", "ctx", "msg"]


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie nobody reaped yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def stop_pid(pid: int, timeout: float = 15.0) -> bool:
    """SIGTERM and wait (bounded); SIGKILL if it does not go. True if it exited on SIGTERM."""
    if not alive(pid):
        return True
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return False
        time.sleep(0.05)
    return True


def serve(*args: str, cwd: Path, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EDDY_BIN), "serve", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def forked_pid(out: str) -> int:
    lines = out.splitlines()
    assert lines[0] == ABOUT, out
    assert lines[1].startswith("forked process: "), out
    return int(lines[1].removeprefix("forked process: "))


def client(port: int) -> pymongo.MongoClient:
    return pymongo.MongoClient(
        f"mongodb://localhost:{port}", serverSelectionTimeoutMS=5000, connectTimeoutMS=5000
    )


def json_lines(path: Path) -> list[dict]:
    text = path.read_text()
    assert "\x1b" not in text, "escape codes in the log file"
    out = []
    for line in text.splitlines():
        entry = json.loads(line)
        assert list(entry)[: len(MONGOD_KEYS)] == MONGOD_KEYS, line
        assert set(entry) <= set(MONGOD_KEYS) | {"attr"}, line
        assert entry["t"]["$date"].endswith("+00:00"), line
        assert entry["s"] in {"F", "E", "W", "I", "D1", "D2"}, line
        out.append(entry)
    return out


def test_fork_returns_once_ready_and_prints_the_childs_pid(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "mongodb.log"
    pidfile = tmp_path / "eddy.pid"
    r = serve("--fork", "--logpath", str(log), "--pidfilepath", str(pidfile), "--port", str(port),
              "--dbpath", str(tmp_path / "db"), "--replSet", "test-change-streams", cwd=tmp_path)
    pid = forked_pid(r.stdout)
    try:
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert r.stdout.splitlines() == [ABOUT, f"forked process: {pid}", SUCCESS]
        assert r.stderr == ""
        # Ready means ready: no wait needed.
        assert port_open(port)
        assert alive(pid)
        assert pidfile.read_text() == f"{pid}\n"
        # Detached: a session of its own, not the test's.
        assert os.getsid(pid) == pid
        with client(port) as c:
            assert c.admin.command("hello")["setName"] == "test-change-streams"
            c.t.c.insert_one({"_id": 1})
            assert c.t.c.find_one() == {"_id": 1}
            opts = c.admin.command("getCmdLineOpts")
            assert opts["parsed"]["processManagement"] == {"fork": True, "pidFilePath": str(pidfile)}
            assert opts["parsed"]["systemLog"] == {"destination": "file", "path": str(log)}
            assert "--fork" in opts["argv"]
        entries = json_lines(log)
        listening = [e for e in entries if e["msg"] == "Listening on"]
        assert listening and listening[0]["id"] == 23015 and listening[0]["c"] == "NETWORK"
        assert listening[0]["attr"]["address"] == "127.0.0.1"
        waiting = [e for e in entries if e["msg"] == "Waiting for connections"]
        assert waiting and waiting[0]["id"] == 23016 and waiting[0]["attr"]["port"] == port
        starting = [e for e in entries if e["msg"] == "MongoDB starting"]
        assert starting and starting[0]["attr"]["pid"] == pid
        # Padded like mongod's, so the columns line up.
        first = log.read_text().splitlines()[0]
        assert '"s":"I",  "c":"' in first, first
    finally:
        assert stop_pid(pid), "the forked server did not stop on SIGTERM"
    assert not port_open(port)
    assert json_lines(log)[-1]["msg"] == "Shutting down"
    assert json_lines(log)[-1]["attr"] == {"exitCode": 0}


def test_the_tutorials_appendix_line(tmp_path: Path) -> None:
    """`mongod --replSet test-change-streams --logpath "mongodb.log" --dbpath /data/test-change-streams
    --port 27017 --fork`, with eddy serve, a temporary dbpath and a free port."""
    port = free_port()
    dbpath = tmp_path / "test-change-streams"
    r = serve("--replSet", "test-change-streams", "--logpath", "mongodb.log", "--dbpath", str(dbpath),
              "--port", str(port), "--fork", cwd=tmp_path)
    pid = forked_pid(r.stdout)
    try:
        assert r.returncode == 0 and r.stdout.splitlines()[-1] == SUCCESS, (r.stdout, r.stderr)
        with client(port) as c:
            with c.changestream.collection.watch(max_await_time_ms=2000) as stream:
                c.changestream.collection.insert_one({"_id": 1, "hello": "world"})
                change = stream.try_next() or stream.try_next()
                assert change is not None and change["operationType"] == "insert"
                assert change["fullDocument"] == {"_id": 1, "hello": "world"}
        assert json_lines(tmp_path / "mongodb.log")
    finally:
        assert stop_pid(pid)


def test_fork_without_logpath_fails_like_mongod(tmp_path: Path) -> None:
    port = free_port()
    r = serve("--fork", "--port", str(port), "--dbpath", str(tmp_path / "db"), cwd=tmp_path)
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert lines[0] == "BadValue: --fork has to be used with --logpath or --syslog", r.stderr
    assert lines[1].startswith("try '") and lines[1].endswith(" serve --help' for more information")
    assert not port_open(port)
    assert not (tmp_path / "db").exists()
    # The same from a config file.
    conf = tmp_path / "eddy.conf"
    conf.write_text("processManagement:\n  fork: true\n")
    r = serve("-f", str(conf), "--port", str(port), cwd=tmp_path)
    assert r.returncode == 2 and "--fork has to be used with --logpath or --syslog" in r.stderr
    # Refused honestly, not ignored.
    r = serve("--fork", "--syslog", "--port", str(port), cwd=tmp_path)
    assert r.returncode == 2 and "not supported" in r.stderr, r.stderr


def test_a_child_that_cannot_start_fails_the_parent_with_its_exit_code(tmp_path: Path) -> None:
    """Port taken: the child exits 48 (mongod's network error), and so does the parent."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        log = tmp_path / "mongodb.log"
        r = serve("--fork", "--logpath", str(log), "--port", str(port),
                  "--dbpath", str(tmp_path / "db"), cwd=tmp_path)
    pid = forked_pid(r.stdout)
    assert not alive(pid)
    assert r.returncode == 48, (r.stdout, r.stderr)
    assert r.stdout.splitlines()[2:] == ["ERROR: child process failed, exited with 48", HINT]
    errors = [e for e in json_lines(log) if e["msg"] == "Error setting up listener"]
    assert errors and errors[0]["s"] == "E" and errors[0]["id"] == 20568, log.read_text()


def test_redirected_plain_log_has_no_escape_codes(eddy_factory) -> None:
    server = eddy_factory()  # stdout and stderr to a file, as a service manager would
    server.client().admin.command("ping")
    server.stop()
    text = server.log_path.read_text()
    assert "Waiting for connections" in text
    assert "\x1b" not in text, text[:2000]
    # Not JSON: text is the default when no --logpath is given.
    assert not any(line.startswith("{") for line in text.splitlines())


def test_logpath_renames_an_old_log_unless_logappend_and_rotates_on_sigusr1(
    eddy_factory, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    log.write_text("old line\n")

    def rotated() -> list[Path]:
        return sorted(p for p in log.parent.iterdir() if p.name.startswith("server.log."))

    s = eddy_factory(extra_args=["--logpath", str(log)])
    [old] = rotated()
    assert old.read_text() == "old line\n"
    assert old.name[len("server.log."):].count("-") == 4  # <YYYY>-<mm>-<DD>T<HH>-<MM>-<SS>
    assert any(e["msg"] == "Waiting for connections" for e in json_lines(log))
    # SIGUSR1: the current file is renamed, a new one started.
    s.proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while len(rotated()) < 2:
        assert time.monotonic() < deadline, "no rotation after SIGUSR1"
        time.sleep(0.05)
    s.client().admin.command("ping")
    s.stop()
    assert any(e["msg"] == "Shutting down" for e in json_lines(log))

    # --logappend keeps the old lines at the top; --logFormat text writes plain text.
    before = log.read_text()
    s = eddy_factory(extra_args=["--logpath", str(log), "--logappend", "--logFormat", "text"])
    s.stop()
    text = log.read_text()
    assert text.startswith(before) and len(text) > len(before)
    assert "Waiting for connections" in text[len(before):] and "\x1b" not in text
    assert len(rotated()) == 2


def test_system_log_and_process_management_from_a_config_file(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "log" / "mongod.log"
    log.parent.mkdir()
    pidfile = tmp_path / "mongod.pid"
    conf = tmp_path / "mongod.conf"
    conf.write_text(
        "systemLog:\n"
        "  destination: file\n"
        f"  path: {log}\n"
        "  logAppend: true\n"
        "processManagement:\n"
        "  fork: true\n"
        f"  pidFilePath: {pidfile}\n"
        "net:\n"
        f"  port: {port}\n"
        "storage:\n"
        f"  dbPath: {tmp_path / 'db'}\n"
    )
    r = serve("-f", str(conf), cwd=tmp_path)
    pid = forked_pid(r.stdout)
    try:
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert pidfile.read_text() == f"{pid}\n"
        with client(port) as c:
            parsed = c.admin.command("getCmdLineOpts")["parsed"]
            assert parsed["systemLog"] == {"destination": "file", "logAppend": True, "path": str(log)}
            assert parsed["processManagement"] == {"fork": True, "pidFilePath": str(pidfile)}
        assert json_lines(log)
    finally:
        assert stop_pid(pid)
    # mongod's checks on systemLog.
    for text, message in [
        ("systemLog:\n  destination: file\n", "systemLog.path is required if systemLog.destination is to a file"),
        (f"systemLog:\n  path: {log}\n", "Can only use systemLog.path if systemLog.destination is to a file"),
        ("systemLog:\n  destination: tape\n", "Bad value for systemLog.destination: tape."),
        (f"systemLog:\n  destination: file\n  path: {log}\n  logRotate: reopen\n",
         "logAppend must equal true if logRotate is set to reopen"),
    ]:
        conf.write_text(text)
        r = serve("-f", str(conf), "--port", str(port), cwd=tmp_path)
        assert r.returncode == 2 and f"BadValue: {message}" in r.stderr, (text, r.stderr)
