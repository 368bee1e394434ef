"""mongosh and the Node.js driver against Eddy (installed by scripts/setup-node.sh into .work/node).

- The tutorial's appendix, "How to set up a Local Cluster": start the server with
  `--replSet test-change-streams`, `rs.initiate(config)` from the shell, then `rs.status()` shows
  the member as PRIMARY.
- `db.collection.watch()` in mongosh: the shell opens a change stream, a second client (pymongo)
  inserts, the shell prints the event.
- The Node.js driver (a different handshake: OP_QUERY `ismaster`): insert, find, and a change
  stream.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from pathlib import Path

import pytest
from bson import json_util
from conftest import ROOT, EddyServer, free_port
from test_process import SUCCESS, forked_pid, json_lines, serve, stop_pid

NODE_PREFIX = ROOT / ".work" / "node"
MONGOSH = NODE_PREFIX / "node_modules" / ".bin" / "mongosh"
NODE_MODULES = NODE_PREFIX / "node_modules"


@pytest.fixture(scope="module", autouse=True)
def _node_tools():
    if not MONGOSH.exists():
        pytest.fail(f"{MONGOSH} missing: run scripts/setup-node.sh (scripts/test.sh does)")


def node_env(tmp_path: Path) -> dict:
    # A private HOME: mongosh keeps its logs, history and config there; no telemetry, no
    # update checks (CI has no general network access).
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return dict(
        os.environ,
        HOME=str(home),
        MONGOSH_NO_UPDATE_CHECK="1",
        DO_NOT_TRACK="1",
        NODE_PATH=str(NODE_MODULES),
        NO_COLOR="1",
    )


def mongosh(server: EddyServer, script: str, tmp_path: Path, timeout: float = 60) -> str:
    path = tmp_path / "script.js"
    path.write_text(script)
    done = subprocess.run(
        [str(MONGOSH), "--quiet", "--norc", "--port", str(server.port), str(path)],
        capture_output=True,
        timeout=timeout,
        env=node_env(tmp_path),
        stdin=subprocess.DEVNULL,
    )
    out, err = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
    assert done.returncode == 0, f"mongosh exited {done.returncode}\nstdout:\n{out}\nstderr:\n{err}"
    return out


def tagged(out: str, tag: str) -> dict:
    """The JSON printed by the script on a line `<tag> <json>`."""
    for line in out.splitlines():
        if line.startswith(tag + " "):
            return json_util.loads(line[len(tag) + 1 :])
    raise AssertionError(f"no {tag} line in mongosh output:\n{out}")


def test_tutorial_appendix_rs_initiate(eddy_factory, tmp_path):
    server = eddy_factory(replset="test-change-streams")
    script = f"""
config = {{
    _id: "test-change-streams",
    members: [{{ _id : 0, host : "localhost:{server.port}"}}]
}};
let res;
try {{ res = rs.initiate(config); }} catch (e) {{ res = {{ ok: 0, code: e.code, codeName: e.codeName, errmsg: e.message }}; }}
print("INITIATE " + EJSON.stringify(res));
// "It may take a few seconds to show this so if you are not seeing this immediately, run the
// command again after a few seconds."
let status;
for (let i = 0; i < 20; i++) {{
    status = rs.status();
    if (status.members && status.members[0].stateStr === "PRIMARY") break;
    sleep(500);
}}
print("STATUS " + EJSON.stringify(status));
print("HELLO " + EJSON.stringify(db.hello()));
"""
    out = mongosh(server, script, tmp_path)
    init = tagged(out, "INITIATE")
    # A fresh mongod answers ok: 1. Eddy is a primary from the start, so mongod's answer for an
    # already-initiated set (23 AlreadyInitialized) is correct too; anything else is not.
    assert init.get("ok") == 1 or init.get("code") == 23, init
    status = tagged(out, "STATUS")
    assert status["ok"] == 1 and status["set"] == "test-change-streams", status
    assert status["myState"] == 1
    [member] = status["members"]
    assert member["stateStr"] == "PRIMARY" and member["self"] is True
    assert member["name"] == f"localhost:{server.port}"
    hello = tagged(out, "HELLO")
    assert hello["isWritablePrimary"] is True and hello["setName"] == "test-change-streams"

    # The tutorial then sets CHANGE_STREAM_DB=mongodb://localhost:<port>: a replica-set client works.
    c = server.client(replicaSet="test-change-streams")
    assert c.changestream.collection.insert_one({"hello": "world"}).acknowledged


def test_tutorial_appendix_typed_as_it_is(tmp_path):
    """The appendix line with `eddy serve` for `mongod` (a temp dbpath, a free port): a forked
    server that mongosh configures with `rs.initiate(config)`, logging to mongodb.log."""
    port = free_port()
    r = serve("--replSet", "test-change-streams", "--logpath", "mongodb.log", "--dbpath",
              str(tmp_path / "test-change-streams"), "--port", str(port), "--fork", cwd=tmp_path)
    pid = forked_pid(r.stdout)
    try:
        assert r.returncode == 0 and r.stdout.splitlines()[-1] == SUCCESS, (r.stdout, r.stderr)
        shell = type("Forked", (), {"port": port})()
        out = mongosh(shell, f"""
config = {{_id: "test-change-streams", members: [{{ _id : 0, host : "localhost:{port}"}}]}};
let res;
try {{ res = rs.initiate(config); }} catch (e) {{ res = {{ ok: 0, code: e.code }}; }}
print("INITIATE " + EJSON.stringify(res));
print("STATUS " + EJSON.stringify(rs.status()));
""", tmp_path)
        init = tagged(out, "INITIATE")
        assert init.get("ok") == 1 or init.get("code") == 23, init
        status = tagged(out, "STATUS")
        assert status["set"] == "test-change-streams" and status["myState"] == 1, status
        # The forked server wrote its log where the appendix says, as mongod's JSON lines.
        messages = [line["msg"] for line in json_lines(tmp_path / "mongodb.log")]
        assert any("Waiting for connections" in m or "Listening on" in m for m in messages), messages
    finally:
        assert stop_pid(pid)


def test_mongosh_watch_prints_event(server: EddyServer, tmp_path):
    script = """
const coll = db.getSiblingDB("changestream").collection;
const cs = coll.watch();
cs.tryNext();  // the stream is open once this returns
print("READY");
let ev = null;
for (let i = 0; i < 200 && ev === null; i++) {
    ev = cs.tryNext();
    if (ev === null) sleep(100);
}
print("EVENT " + EJSON.stringify(ev, { relaxed: false }));
cs.close();
"""
    path = tmp_path / "watch.js"
    path.write_text(script)
    proc = subprocess.Popen(
        [str(MONGOSH), "--quiet", "--norc", "--port", str(server.port), str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=node_env(tmp_path),
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump():
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.put(raw.decode(errors="replace").rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    try:
        deadline = time.monotonic() + 60
        ready = False
        while time.monotonic() < deadline and not ready:
            try:
                ready = lines.get(timeout=1) == "READY"
            except queue.Empty:
                if proc.poll() is not None:
                    break
        assert ready, f"mongosh never opened the stream; stderr:\n{proc.stderr.read().decode(errors='replace') if proc.poll() is not None else ''}"
        # A second client writes.
        server.client().changestream.collection.insert_one({"_id": "from-pymongo", "hello": "mongosh"})
        event_line = None
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                if proc.poll() is not None:
                    break
                continue
            if line.startswith("EVENT "):
                event_line = line
                break
        assert event_line is not None, "mongosh printed no event"
        ev = json_util.loads(event_line[len("EVENT ") :])
        assert ev is not None, "mongosh saw no event within 20 s"
        assert ev["operationType"] == "insert"
        assert ev["fullDocument"] == {"_id": "from-pymongo", "hello": "mongosh"}
        assert ev["ns"] == {"db": "changestream", "coll": "collection"}
        assert ev["documentKey"] == {"_id": "from-pymongo"}
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


NODE_SCRIPT = r"""
const { MongoClient } = require("mongodb");
(async () => {
  const client = new MongoClient(process.env.EDDY_URI, { serverSelectionTimeoutMS: 10000 });
  await client.connect();
  const coll = client.db("nodeapp").collection("items");
  const stream = coll.watch();
  await stream.tryNext();                  // opens the stream (aggregate) before we write
  await coll.insertOne({ _id: 1, from: "node" });
  await coll.insertMany([{ _id: 2 }, { _id: 3 }]);
  const events = [];
  while (events.length < 3) {
    const ev = await stream.next();
    events.push({ op: ev.operationType, id: ev.documentKey._id, hasToken: typeof ev._id._data === "string" });
  }
  await stream.close();
  const docs = await coll.find({}, { batchSize: 2 }).sort({ _id: 1 }).toArray();
  const hello = await client.db("admin").command({ hello: 1 });
  console.log("RESULT " + JSON.stringify({ events, ids: docs.map(d => d._id), setName: hello.setName }));
  await client.close();
})().catch(err => { console.error(err); process.exit(1); });
"""


def test_node_driver_crud_and_change_stream(server: EddyServer, tmp_path):
    path = tmp_path / "app.js"
    path.write_text(NODE_SCRIPT)
    env = node_env(tmp_path)
    env["EDDY_URI"] = server.uri
    done = subprocess.run(
        ["node", str(path)], capture_output=True, timeout=60, env=env, stdin=subprocess.DEVNULL
    )
    out, err = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
    assert done.returncode == 0, f"node exited {done.returncode}\nstdout:\n{out}\nstderr:\n{err}"
    line = next((ln for ln in out.splitlines() if ln.startswith("RESULT ")), None)
    assert line is not None, out
    result = json.loads(line[len("RESULT ") :])
    assert result["events"] == [
        {"op": "insert", "id": 1, "hasToken": True},
        {"op": "insert", "id": 2, "hasToken": True},
        {"op": "insert", "id": 3, "hasToken": True},
    ]
    assert result["ids"] == [1, 2, 3]
    assert result["setName"] == "rs0"


def test_mongosh_collection_stats(server: EddyServer, tmp_path):
    """`db.coll.stats()` in mongosh 2.x runs `$collStats` with `storageStats` and sums its
    fields: the document count, sizes and one size per index."""
    out = mongosh(
        server,
        """
        db = db.getSiblingDB('app');
        db.stats_c.insertMany([{a: 1}, {a: 2}, {a: 3}]);
        db.stats_c.createIndex({a: 1});
        const s = db.stats_c.stats();
        print('STATS ' + EJSON.stringify({count: s.count, nindexes: s.nindexes, size: s.size,
            indexSizes: Object.keys(s.indexSizes), totalIndexSize: s.totalIndexSize,
            totalSize: s.totalSize, ns: s.ns}, {relaxed: true}));
        """,
        tmp_path,
    )
    stats = tagged(out, "STATS")
    assert stats["count"] == 3 and stats["nindexes"] == 2, stats
    assert sorted(stats["indexSizes"]) == ["_id_", "a_1"], stats
    assert stats["size"] > 0 and stats["totalIndexSize"] > 0, stats
    assert stats["totalSize"] == stats["size"] + stats["totalIndexSize"], stats
    assert stats["ns"] == "app.stats_c", stats


def test_mongosh_convert_shard_key_to_hashed(server: EddyServer, tmp_path):
    """mongosh's `convertShardKeyToHashed` runs `$toHashedIndexKey` over `$documents`: the
    value of mongosh's own test, and the hashed index key of the manual's ObjectId."""
    out = mongosh(
        server,
        """
        const id = ObjectId('5b2be413c06d924ab26ff9ca');
        db = db.getSiblingDB('app');
        db.orders.createIndex({_id: 'hashed'});
        db.orders.insertOne({_id: id, item: 'Chocolates', qty: 25});
        const key = db.orders.find({_id: id}).hint({_id: 'hashed'}).returnKey(true).toArray()[0]._id;
        print('HASH ' + EJSON.stringify({foo: convertShardKeyToHashed({foo: 'bar'}).toString(),
            id: convertShardKeyToHashed(id).toString(), key: key.toString()}));
        """,
        tmp_path,
    )
    got = tagged(out, "HASH")
    assert got["foo"] == "4975617422686807705", got
    assert got["id"] == got["key"], got


def test_mongosh_creates_users_and_logs_in(eddy_factory, tmp_path):
    """`db.createUser` through the localhost exception, `db.auth`, and a role's limits."""
    server = eddy_factory(extra_args=["--auth"])
    script = """
const admin = db.getSiblingDB("admin");
admin.createUser({user: "boss", pwd: "s3cret", roles: ["root"]});
print("AUTH " + JSON.stringify({ok: admin.auth("boss", "s3cret").ok}));
const app = db.getSiblingDB("app");
app.createUser({user: "reader", pwd: "pw", roles: [{role: "read", db: "app"}]});
app.c.insertOne({_id: 1});
admin.logout();
app.auth("reader", "pw");
let denied = null;
try { app.c.insertOne({_id: 2}); } catch (e) { denied = e.code; }
print("READER " + JSON.stringify({found: app.c.findOne()._id, denied: denied,
    users: app.runCommand({connectionStatus: 1}).authInfo.authenticatedUsers}));
"""
    out = mongosh(server, script, tmp_path)
    assert tagged(out, "AUTH") == {"ok": 1}
    reader = tagged(out, "READER")
    assert reader["found"] == 1
    assert reader["denied"] == 13
    assert reader["users"] == [{"user": "reader", "db": "app"}]
