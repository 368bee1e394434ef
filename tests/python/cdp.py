"""A small driver for headless Chromium over the DevTools protocol (CDP), with no dependency.

Chromium is started with `--remote-debugging-pipe`: it reads protocol messages from file
descriptor 3 and writes its own to descriptor 4, each a JSON object ended by a NUL byte (the
transport Puppeteer's `pipe: true` uses). No port, no websocket. One page target is attached
in "flat" mode, so every command names its session.

    with Browser.launch(tmp_path) as browser:
        page = browser.new_page()
        page.navigate("http://127.0.0.1:8080/")
        page.evaluate("document.title")
        page.screenshot(path)
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class CdpError(RuntimeError):
    pass


class Browser:
    """One Chromium process and its protocol pipe."""

    def __init__(self, proc: subprocess.Popen, to_browser: int, from_browser: int) -> None:
        self.proc = proc
        self._to = to_browser
        self._from = from_browser
        self._next_id = 0
        self._lock = threading.Lock()
        self._replies: dict[int, queue.Queue] = {}
        self.events: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @classmethod
    def launch(cls, profile_dir: Path, chromium: str | None = None) -> "Browser":
        chromium = chromium or find_chromium()
        if chromium is None:
            raise CdpError("chromium not found")
        # Our ends and Chromium's: it reads 3 and writes 4. The child's ends are first moved
        # to free descriptors above 100, so the shell's redirections to 3 and 4 cannot
        # clobber one with the other.
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        high_r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 100)
        high_w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 100)
        os.close(to_child_r)
        os.close(from_child_w)
        args = [
            chromium,
            "--headless",
            "--remote-debugging-pipe",
            "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--metrics-recording-only",
            "--hide-scrollbars",
            "--window-size=1200,900",
            f"--user-data-dir={profile_dir}",
            "about:blank",
        ]
        try:
            proc = subprocess.Popen(
                ["bash", "-c", f'exec "$@" 3<&{high_r} 4>&{high_w} {high_r}<&- {high_w}>&-', "bash", *args],
                pass_fds=(high_r, high_w),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=open(profile_dir / "chromium.log", "wb"),
                env=dict(os.environ, HOME=str(profile_dir)),
            )
        finally:
            os.close(high_r)
            os.close(high_w)
        return cls(proc, to_child_w, from_child_r)

    # -- transport ----------------------------------------------------------------------------
    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._from, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                for q in list(self._replies.values()):
                    q.put({"error": {"message": "the browser closed its pipe"}})
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    q = self._replies.get(msg["id"])
                    if q is not None:
                        q.put(msg)
                else:
                    self.events.put(msg)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        with self._lock:
            self._next_id += 1
            msg_id = self._next_id
            q: queue.Queue = queue.Queue()
            self._replies[msg_id] = q
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to, json.dumps(msg).encode() + b"\0")
        try:
            reply = q.get(timeout=timeout)
        except queue.Empty:
            raise CdpError(f"{method}: no reply within {timeout}s") from None
        finally:
            self._replies.pop(msg_id, None)
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    # -- pages --------------------------------------------------------------------------------
    def new_page(self) -> "Page":
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        page.send("Page.enable")
        page.send("Runtime.enable")
        return page

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except CdpError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        for fd in (self._to, self._from):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Page:
    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session

    def send(self, method: str, params: dict | None = None, timeout: float = 30) -> dict:
        return self.browser.send(method, params, session=self.session, timeout=timeout)

    def navigate(self, url: str, timeout: float = 15) -> None:
        self.send("Page.navigate", {"url": url})
        self.wait_for("document.readyState === 'complete'", timeout)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises are awaited)."""
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CdpError(f"{expression!r} threw: {text}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 10, interval: float = 0.05) -> Any:
        """Polls until the expression is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise CdpError(f"still falsy after {timeout}s: {expression}")
            time.sleep(interval)

    def screenshot(self, path: Path) -> None:
        data = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False})["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
