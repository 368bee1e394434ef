"""The live viewer page (`GET /` on `eddy serve --http-port P`) in a real browser: headless
Chromium from Debian's packages (installed by scripts/setup-browser.sh, which scripts/test.sh
runs), driven over the DevTools protocol by tests/python/cdp.py.

- A namespace chosen in the form; an insert made by pymongo shows on the page within a second,
  an update with its diff (fields set and removed), each colour-coded by operation type.
- The server restarts (same dbpath, same ports) and a write is made at once: the page's
  EventSource reconnects with Last-Event-ID and shows it, with no gap and no duplicate.
- Pause and resume: what was written while paused arrives once on resume.
- A `$match` typed in the form filters; a bad one shows mongod's error.
- A screenshot of the page is kept as .work/results/sse-page.png.
"""

from __future__ import annotations

import json
import time

import pytest
from cdp import Browser, CdpError, find_chromium
from conftest import ROOT, EddyServer, free_port
from sse import Stream, watch_path

SCREENSHOT = ROOT / ".work" / "results" / "sse-page.png"

# Rows the page shows, oldest first: [(operationType, documentKey._id, event id), ...].
ROWS = """[...document.querySelectorAll('#events li[data-id]')].reverse().map(li => {
    const key = li.dataset.key ? JSON.parse(li.dataset.key)._id : null;
    return [li.dataset.op, key && typeof key === 'object' ? Number(Object.values(key)[0]) : key, li.dataset.id];
})"""


@pytest.fixture(scope="module", autouse=True)
def _chromium():
    if find_chromium() is None:
        pytest.fail("chromium is missing: run scripts/setup-browser.sh (scripts/test.sh does)")


@pytest.fixture
def server(eddy_factory) -> EddyServer:
    port = free_port()
    s = eddy_factory(extra_args=["--http-port", str(port)])
    s.http_port = port
    return s


@pytest.fixture
def browser(tmp_path):
    profile = tmp_path / "chromium"
    profile.mkdir()
    b = Browser.launch(profile)
    try:
        yield b
    finally:
        b.close()


def choose(page, db: str, coll: str, match: str = "") -> None:
    """Fills the form as a person would, and presses Watch."""
    page.evaluate(
        f"""(() => {{
        document.getElementById('db').value = {json.dumps(db)};
        document.getElementById('coll').value = {json.dumps(coll)};
        document.getElementById('match').value = {json.dumps(match)};
        document.getElementById('watch').click();
    }})()"""
    )


def status(page) -> str:
    return page.evaluate("document.getElementById('status').textContent")


def wait_rows(page, n: int, timeout: float = 10) -> list:
    page.wait_for(f"document.querySelectorAll('#events li[data-id]').length >= {n}", timeout)
    return page.evaluate(ROWS)


def js_errors(browser: Browser) -> list:
    errors = []
    while not browser.events.empty():
        ev = browser.events.get_nowait()
        if ev.get("method") == "Runtime.exceptionThrown":
            errors.append(ev["params"]["exceptionDetails"])
    return errors


def test_the_page_shows_changes_live_and_resumes_across_a_restart(server, browser):
    coll = server.client().app.live
    page = browser.new_page()
    page.navigate(f"http://127.0.0.1:{server.http_port}/")
    choose(page, "app", "live")
    page.wait_for("document.getElementById('status').textContent === 'live'")
    # The opening heartbeat gave the page its resume point.
    page.wait_for("document.getElementById('last-id').textContent !== 'none'")

    started = time.monotonic()
    coll.insert_one({"_id": 1, "name": "first", "tags": ["x"]})
    rows = wait_rows(page, 1, timeout=5)
    assert time.monotonic() - started < 1.0, "the insert took more than a second to show"
    assert [r[:2] for r in rows] == [["insert", 1]]

    coll.update_one({"_id": 1}, {"$set": {"name": "second"}, "$unset": {"tags": ""}})
    rows = wait_rows(page, 2)
    diff = page.evaluate(
        "[...document.querySelector('#events li[data-op=update] .diff').children].map(d => [d.className, d.textContent])"
    )
    assert diff == [["set", '+ name: "second"'], ["unset", "− tags"]]
    insert_colour, update_colour = page.evaluate(
        """['insert', 'update'].map(op => getComputedStyle(document.querySelector(`#events li[data-op=${op}]`)).borderLeftColor)"""
    )
    assert insert_colour == "rgb(31, 157, 85)" and update_colour == "rgb(47, 111, 214)"

    # Restart; write before the page can have reconnected. EventSource sends Last-Event-ID.
    server.restart()
    coll = server.client().app.live
    coll.insert_one({"_id": 2, "name": "during the reconnect"})
    coll.insert_one({"_id": 3})
    rows = wait_rows(page, 4, timeout=15)
    page.wait_for("document.getElementById('status').textContent === 'live'")
    assert [r[:2] for r in rows] == [["insert", 1], ["update", 1], ["insert", 2], ["insert", 3]]
    ids = [r[2] for r in rows]
    assert len(set(ids)) == len(ids) and ids == sorted(ids), ids

    # Pause: a write meanwhile shows only after resuming, once.
    page.evaluate("document.getElementById('pause').click()")
    assert status(page) == "paused"
    coll.delete_one({"_id": 3})
    time.sleep(0.5)
    assert len(page.evaluate(ROWS)) == 4
    page.evaluate("document.getElementById('pause').click()")
    rows = wait_rows(page, 5)
    page.wait_for("document.getElementById('status').textContent === 'live'")
    time.sleep(0.3)
    rows = page.evaluate(ROWS)
    assert [r[:2] for r in rows][-1] == ["delete", 3] and len(rows) == 5

    # The chart drew this second's events in the operations' colours.
    drawn = page.evaluate(
        """(() => {
        const c = document.getElementById('rate');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let insert = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] === 31 && d[i+1] === 157 && d[i+2] === 85) insert++;
        return insert;
    })()"""
    )
    assert drawn > 0
    counts = page.evaluate("[...document.querySelectorAll('#counts li')].map(li => li.textContent)")
    assert counts == ["insert3", "update1", "delete1"]

    page.screenshot(SCREENSHOT)
    assert SCREENSHOT.stat().st_size > 10_000
    assert js_errors(browser) == []


def test_the_page_filters_with_a_match_and_shows_errors(server, browser):
    coll = server.client().app.filtered
    page = browser.new_page()
    page.navigate(f"http://127.0.0.1:{server.http_port}/")
    choose(page, "app", "filtered", '{"fullDocument.keep": true}')
    page.wait_for("document.getElementById('status').textContent === 'live'")
    page.wait_for("document.getElementById('last-id').textContent !== 'none'")
    coll.insert_many([{"_id": 1, "keep": False}, {"_id": 2, "keep": True}, {"_id": 3}])
    assert [r[:2] for r in wait_rows(page, 1)] == [["insert", 2]]
    time.sleep(0.3)
    assert len(page.evaluate(ROWS)) == 1

    # A bad $match: EventSource gives up, and the page shows mongod's error.
    choose(page, "app", "filtered", '{"a": {"$bad": 1}}')
    page.wait_for("document.getElementById('status').className.includes('failed')")
    assert status(page) == "HTTP 400 · BadValue (2)"
    notice = page.evaluate("document.querySelector('#events li.error').textContent")
    assert "$bad" in notice
    assert js_errors(browser) == []


def test_a_lost_resume_point_is_shown_and_the_page_stops(eddy_factory, browser):
    port = free_port()
    s = eddy_factory(extra_args=["--http-port", str(port), "--oplogSize", "1"])
    coll = s.client().app.trim
    page = browser.new_page()
    page.navigate(f"http://127.0.0.1:{port}/")
    choose(page, "app", "trim")
    page.wait_for("document.getElementById('status').textContent === 'live'")
    coll.insert_one({"_id": 0})
    wait_rows(page, 1)
    page.evaluate("document.getElementById('pause').click()")
    resume_point = page.evaluate("document.getElementById('last-id').textContent")
    pad = "x" * 200_000
    coll.insert_many([{"_id": i, "pad": pad} for i in range(1, 40)])  # ~8 MB through a 1 MB oplog
    # Wait (with a plain client) until the trimming has passed the page's resume point.
    deadline = time.monotonic() + 20
    while True:
        with Stream(port, watch_path("app", "trim"), headers={"Last-Event-ID": resume_point}) as probe:
            if probe.next().event == "error":
                break
        assert time.monotonic() < deadline, "the oplog was never trimmed past the page's resume point"
        time.sleep(0.25)
    page.evaluate("document.getElementById('pause').click()")  # resume
    page.wait_for("document.getElementById('status').className.includes('failed')")
    assert status(page) == "ChangeStreamHistoryLost (286)"
    notice = page.evaluate("document.querySelector('#events li.error').textContent")
    assert resume_point in notice
    assert len(page.evaluate(ROWS)) == 1
    assert js_errors(browser) == []
