"""Fixtures for Eddy's Python end-to-end tests (run by scripts/test.sh with .work/venv).

Every server is a real `eddy serve` process (EDDY_BIN, default target/release/eddy) on a free
loopback port with a temporary --dbpath, started with `--replSet rs0 --setParameter
enableTestCommands=1`, exactly as pymongo's suite and the tutorial use it. Tests are written
against MongoDB 7.0 semantics: they are the specification, not a description of Eddy.

Nothing may hang: the server must accept connections within EDDY_START_TIMEOUT seconds
(default 20), clients use short server-selection / socket timeouts, and scripts/test.sh adds a
per-test timeout (pytest-timeout).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pymongo
import pytest

ROOT = Path(__file__).resolve().parents[2]
EDDY_BIN = Path(os.environ.get("EDDY_BIN", ROOT / "target" / "release" / "eddy"))
START_TIMEOUT = float(os.environ.get("EDDY_START_TIMEOUT", "20"))

collect_ignore = ["tutorial"]  # the tutorial's programs are run as processes, never collected


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class EddyServer:
    """One `eddy serve` process; stop / kill -9 / restart keep the same port and dbpath."""

    def __init__(self, replset: str = "rs0", extra_args: list[str] | None = None) -> None:
        self.replset = replset
        self.extra_args = list(extra_args or [])
        self._tmp = Path(tempfile.mkdtemp(prefix="eddy-pytest-"))
        self.dbpath = self._tmp / "db"
        self.dbpath.mkdir()
        self.log_path = self._tmp / "eddy.log"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._clients: list[pymongo.MongoClient] = []

    # -- lifecycle ---------------------------------------------------------------------------
    def args(self) -> list[str]:
        return [
            str(EDDY_BIN),
            "serve",
            "--port",
            str(self.port),
            "--dbpath",
            str(self.dbpath),
            "--replSet",
            self.replset,
            "--setParameter",
            "enableTestCommands=1",
            *self.extra_args,
        ]

    def start(self) -> "EddyServer":
        if not EDDY_BIN.exists():
            pytest.fail(f"{EDDY_BIN} does not exist: run `cargo build --release` first")
        log = open(self.log_path, "ab")
        log.write(f"\n=== start: {' '.join(self.args())}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            self.args(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while not port_open(self.port):
            if self.proc.poll() is not None:
                pytest.fail(
                    f"eddy exited with status {self.proc.returncode} before accepting "
                    f"connections on port {self.port}; log:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                self.kill9()
                pytest.fail(f"eddy did not accept connections within {START_TIMEOUT}s; log:\n{self.log_tail()}")
            time.sleep(0.1)
        return self

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait: a clean shutdown. Returns the exit status."""
        self._close_clients()
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            pytest.fail(f"eddy did not exit within {timeout}s of SIGTERM; log:\n{self.log_tail()}")

    def kill9(self) -> None:
        """SIGKILL: no chance to flush anything that was not already durable."""
        self._close_clients()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self) -> "EddyServer":
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
        return self.start()

    def cleanup(self) -> None:
        self.kill9()
        shutil.rmtree(self._tmp, ignore_errors=True)

    # -- access ------------------------------------------------------------------------------
    @property
    def address(self) -> str:
        return f"localhost:{self.port}"

    @property
    def uri(self) -> str:
        return f"mongodb://localhost:{self.port}"

    def client(self, **kwargs) -> pymongo.MongoClient:
        """A pymongo client with short timeouts (closed when the server stops)."""
        opts = dict(serverSelectionTimeoutMS=5000, connectTimeoutMS=5000, socketTimeoutMS=30000)
        opts.update(kwargs)
        c: pymongo.MongoClient = pymongo.MongoClient(self.uri, **opts)
        self._clients.append(c)
        return c

    def direct_client(self, **kwargs) -> pymongo.MongoClient:
        return self.client(directConnection=True, **kwargs)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _close_clients(self) -> None:
        for c in self._clients:
            c.close()
        self._clients.clear()


@pytest.fixture
def eddy_factory() -> Iterator:
    """Start servers with custom options: `eddy_factory(replset="x", extra_args=[...])`."""
    servers: list[EddyServer] = []

    def make(**kwargs) -> EddyServer:
        s = EddyServer(**kwargs)
        servers.append(s)
        return s.start()

    yield make
    for s in servers:
        s.cleanup()


@pytest.fixture
def server(eddy_factory) -> EddyServer:
    """A fresh server for one test (tests that stop, kill or restart it)."""
    return eddy_factory()


@pytest.fixture(scope="module")
def shared_server() -> Iterator[EddyServer]:
    """One server for a whole module (read/write tests that do not stop it)."""
    s = EddyServer()
    try:
        s.start()
        yield s
    finally:
        s.cleanup()


@pytest.fixture
def client(shared_server: EddyServer) -> pymongo.MongoClient:
    return shared_server.client()


@pytest.fixture
def db(client: pymongo.MongoClient, request: pytest.FixtureRequest):
    """A database private to the test (dropped first, so reruns start empty)."""
    name = ("t_" + request.node.name)[:60].replace("[", "_").replace("]", "_").replace("-", "_")
    client.drop_database(name)
    return client[name]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the tail of each server log used by the test."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for name in ("server", "shared_server"):
            srv = item.funcargs.get(name) if hasattr(item, "funcargs") else None
            if isinstance(srv, EddyServer):
                report.sections.append((f"eddy log ({name})", srv.log_tail()))
