"""A plain HTTP client for Eddy's change-stream gateway (`eddy serve --http-port P`,
`GET /v1/watch/...`): reads a `text/event-stream` response event by event, as an
`EventSource` would (`id:`, `event:`, `data:` fields, blank line ends an event, `:`
comments and `retry:` skipped)."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import time
import urllib.parse
from dataclasses import dataclass

from bson import json_util


@dataclass
class Event:
    id: str | None
    event: str
    data: str

    @property
    def doc(self):
        """The data as a document (canonical Extended JSON read back into BSON types)."""
        return json_util.loads(self.data)


def watch_path(db: str | None = None, coll: str | None = None, **params) -> str:
    path = "/v1/watch"
    if db is not None:
        path += "/" + urllib.parse.quote(db, safe="")
        if coll is not None:
            path += "/" + urllib.parse.quote(coll, safe="")
    query = {k: (json.dumps(v) if isinstance(v, (dict, list)) else str(v)) for k, v in params.items()}
    return path + ("?" + urllib.parse.urlencode(query) if query else "")


def basic(user: str, password: str) -> dict:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


class Stream:
    """One `GET` of an event stream."""

    def __init__(
        self, port: int, path: str, headers: dict | None = None, timeout: float = 10, tls: ssl.SSLContext | None = None
    ) -> None:
        if tls is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        else:
            self.conn = http.client.HTTPSConnection("localhost", port, timeout=timeout, context=tls)
        self.conn.request("GET", path, headers=headers or {})
        # The response owns the socket from here on (`Connection: close`): keep it to set
        # read timeouts and to close it.
        self.sock = self.conn.sock
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.last_id: str | None = None

    def body_json(self) -> dict:
        """The body of a refused request (JSON)."""
        assert self.response.getheader("Content-Type") == "application/json", self.response.getheaders()
        return json.loads(self.response.read())

    def next(self, timeout: float = 10) -> Event:
        """The next event (heartbeats included); raises TimeoutError, or EOFError at the end."""
        assert self.status == 200, f"HTTP {self.status}: {self.response.read()!r}"
        sock = self.sock
        deadline = time.monotonic() + timeout
        fields: dict[str, list[str]] = {}
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no complete event within {timeout}s")
            if sock is not None:
                sock.settimeout(left)
            try:
                raw = self.response.fp.readline()
            except (socket.timeout, TimeoutError):
                raise TimeoutError(f"no complete event within {timeout}s") from None
            if not raw:
                raise EOFError("the stream ended")
            line = raw.decode().rstrip("\r\n")
            if line == "":
                if "data" in fields:
                    ev = Event(
                        id=fields.get("id", [None])[-1],
                        event=fields.get("event", ["message"])[-1],
                        data="\n".join(fields["data"]),
                    )
                    if ev.id is not None:
                        self.last_id = ev.id
                    return ev
                fields = {}
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name in ("id", "event", "data"):
                fields.setdefault(name, []).append(value)

    def changes(self, n: int, timeout: float = 10) -> list[Event]:
        """The next `n` change events, heartbeats skipped."""
        out: list[Event] = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            ev = self.next(max(0.01, deadline - time.monotonic()))
            if ev.event != "heartbeat":
                out.append(ev)
        return out

    def heartbeat(self, timeout: float = 10) -> Event:
        """The next heartbeat (change events before it are an error)."""
        ev = self.next(timeout)
        assert ev.event == "heartbeat", f"expected a heartbeat, got {ev}"
        return ev

    def close(self) -> None:
        self.response.close()
        self.conn.close()
        if self.sock is not None:
            self.sock.close()

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
