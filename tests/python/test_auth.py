"""Access control through pymongo against `eddy serve --auth`.

SCRAM-SHA-256 and SCRAM-SHA-1 (pymongo authenticates speculatively inside its handshake,
and with `saslStart`/`saslContinue` when asked for a mechanism), the localhost exception for
the first user, wrong passwords (18, nothing said about whether the user exists), user
management, and roles: a `read` user on one database cannot write it, nor read or watch
another database or the cluster; cursors belong to the user that opened them.
"""

from __future__ import annotations

import hashlib

import pymongo
import pytest
from conftest import EddyServer
from pymongo.errors import OperationFailure


@pytest.fixture
def secured(eddy_factory) -> EddyServer:
    server = eddy_factory(extra_args=["--auth"])
    anonymous = server.direct_client()
    # The localhost exception: no user exists yet, so a loopback connection may create one.
    anonymous.admin.command("createUser", "root", pwd="r00t pass", roles=["root"])
    return server


def login(server: EddyServer, user: str, pwd: str, source: str = "admin", **kw) -> pymongo.MongoClient:
    return server.direct_client(username=user, password=pwd, authSource=source, **kw)


def code_of(fn) -> int:
    with pytest.raises(OperationFailure) as ei:
        fn()
    return ei.value.code


def test_unauthenticated_clients_may_only_say_hello(secured):
    anonymous = secured.direct_client()
    assert anonymous.admin.command("ping")["ok"] == 1
    assert anonymous.admin.command("hello")["isWritablePrimary"]
    assert code_of(lambda: anonymous.app.c.find_one()) == 13
    assert code_of(lambda: anonymous.app.c.insert_one({})) == 13
    # The localhost exception ended with the first user.
    assert code_of(lambda: anonymous.admin.command("createUser", "x", pwd="y", roles=[])) == 13


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-1"])
def test_scram_mechanisms_and_wrong_passwords(secured, mechanism):
    root = login(secured, "root", "r00t pass", authMechanism=mechanism)
    root.app.c.insert_one({"_id": 1})
    assert root.app.c.find_one() == {"_id": 1}
    status = root.admin.command("connectionStatus")["authInfo"]
    assert status["authenticatedUsers"] == [{"user": "root", "db": "admin"}]
    assert status["authenticatedUserRoles"] == [{"role": "root", "db": "admin"}]
    wrong = login(secured, "root", "nope", authMechanism=mechanism)
    assert code_of(lambda: wrong.admin.command("ping")) == 18
    nobody = login(secured, "nobody", "nope", authMechanism=mechanism)
    assert code_of(lambda: nobody.admin.command("ping")) == 18


def test_non_ascii_passwords_are_saslprepped(secured):
    root = login(secured, "root", "r00t pass")
    root.admin.command("createUser", "ünïcode", pwd="p\u00e4ss\u2168", roles=["root"])
    # U+2168 (ROMAN NUMERAL NINE) is "IX" after SASLprep's NFKC: both spellings log in.
    for pwd in ["p\u00e4ss\u2168", "p\u00e4ssIX"]:
        client = login(secured, "ünïcode", pwd, authMechanism="SCRAM-SHA-256")
        assert client.admin.command("connectionStatus")["authInfo"]["authenticatedUsers"][0]["user"] == "ünïcode"


def test_user_management(secured):
    root = login(secured, "root", "r00t pass")
    app = root.app
    app.command("createUser", "reader", pwd="pw", roles=["read"], customData={"team": "x"})
    assert code_of(lambda: app.command("createUser", "reader", pwd="pw", roles=[])) == 51003
    assert code_of(lambda: app.command("createUser", "bad", pwd="pw", roles=["nosuchrole"])) == 31
    assert code_of(lambda: app.command("createUser", "anyroot", pwd="pw", roles=["root"])) == 31
    info = app.command("usersInfo", "reader")["users"]
    assert len(info) == 1
    user = info[0]
    assert (user["_id"], user["user"], user["db"]) == ("app.reader", "reader", "app")
    assert user["roles"] == [{"role": "read", "db": "app"}]
    assert sorted(user["mechanisms"]) == ["SCRAM-SHA-1", "SCRAM-SHA-256"]
    assert user["customData"] == {"team": "x"}
    assert "credentials" not in user
    creds = app.command("usersInfo", "reader", showCredentials=True)["users"][0]["credentials"]
    assert set(creds) == {"SCRAM-SHA-1", "SCRAM-SHA-256"}
    assert set(creds["SCRAM-SHA-256"]) == {"iterationCount", "salt", "storedKey", "serverKey"}
    app.command("grantRolesToUser", "reader", roles=["readWrite"])
    assert app.command("usersInfo", "reader")["users"][0]["roles"] == [
        {"role": "read", "db": "app"},
        {"role": "readWrite", "db": "app"},
    ]
    app.command("revokeRolesFromUser", "reader", roles=["readWrite"])
    app.command("updateUser", "reader", pwd="new pw")
    assert code_of(lambda: login(secured, "reader", "pw", source="app").app.c.find_one()) == 18
    assert login(secured, "reader", "new pw", source="app").app.c.find_one() is None
    hello = secured.direct_client().admin.command("hello", saslSupportedMechs="app.reader")
    assert sorted(hello["saslSupportedMechs"]) == ["SCRAM-SHA-1", "SCRAM-SHA-256"]
    app.command("dropUser", "reader")
    assert code_of(lambda: app.command("dropUser", "reader")) == 11
    assert app.command("usersInfo", 1)["users"] == []


def test_a_read_user_reads_and_watches_its_database_only(secured):
    root = login(secured, "root", "r00t pass")
    root.app.command("createUser", "reader", pwd="pw", roles=["read"])
    root.app.c.insert_one({"_id": 1})
    root.other.c.insert_one({"_id": 1})
    reader = login(secured, "reader", "pw", source="app")
    assert reader.app.c.find_one() == {"_id": 1}
    assert code_of(lambda: reader.app.c.insert_one({"_id": 2})) == 13
    assert code_of(lambda: reader.app.c.drop()) == 13
    assert code_of(lambda: reader.other.c.find_one()) == 13
    assert code_of(lambda: reader.other.c.watch()) == 13
    assert code_of(lambda: reader.watch()) == 13
    with reader.app.c.watch(max_await_time_ms=500) as stream:
        root.app.c.insert_one({"_id": 3})
        event = stream.next()
        assert event["operationType"] == "insert" and event["documentKey"] == {"_id": 3}
    with reader.app.watch(max_await_time_ms=500) as stream:
        root.app.d.insert_one({"_id": 4})
        assert stream.next()["ns"] == {"db": "app", "coll": "d"}
    # listDatabases shows the databases the user's roles reach.
    assert [d["name"] for d in reader.admin.command("listDatabases")["databases"]] == ["app"]
    assert {"app", "other"} <= {d["name"] for d in root.admin.command("listDatabases")["databases"]}
    # The user may read about itself, not about others.
    assert reader.app.command("usersInfo", "reader")["users"][0]["user"] == "reader"
    assert code_of(lambda: reader.admin.command("usersInfo", "root")) == 13
    assert code_of(lambda: reader.admin.command("serverStatus")) == 13


def two_readers(server: EddyServer):
    """root, and two `read` users of `app` (whose `c` holds 10 documents)."""
    root = login(server, "root", "r00t pass")
    root.app.c.insert_many([{"_id": i} for i in range(10)])
    root.app.command("createUser", "r1", pwd="pw", roles=["read"])
    root.app.command("createUser", "r2", pwd="pw", roles=["read"])
    return root, login(server, "r1", "pw", source="app"), login(server, "r2", "pw", source="app")


def test_cursors_belong_to_their_user(secured):
    _, one, two = two_readers(secured)
    cursor_id = one.app.command("find", "c", batchSize=2)["cursor"]["id"]
    assert cursor_id
    assert code_of(lambda: two.app.command("getMore", cursor_id, collection="c")) == 13
    killed = two.app.command("killCursors", "c", cursors=[cursor_id])
    assert killed["cursorsKilled"] == []
    assert len(one.app.command("getMore", cursor_id, collection="c")["cursor"]["nextBatch"]) == 8


def test_logout_ends_the_authentication(secured):
    root = login(secured, "root", "r00t pass", maxPoolSize=1)
    db = root.app
    assert db.c.find_one() is None
    db.command("logout")
    assert root.admin.command("connectionStatus")["authInfo"]["authenticatedUsers"] == []


def test_a_custom_role_on_one_collection_watches_that_collection_only(secured):
    root = login(secured, "root", "r00t pass")
    app = root.app
    app.command(
        "createRole",
        "orderWatcher",
        privileges=[{"resource": {"db": "app", "collection": "orders"}, "actions": ["find", "changeStream"]}],
        roles=[],
    )
    assert code_of(lambda: app.command("createRole", "orderWatcher", privileges=[], roles=[])) == 51002
    assert code_of(lambda: app.command(
        "createRole", "wide", privileges=[{"resource": {"cluster": True}, "actions": ["serverStatus"]}], roles=[]
    )) == 2
    assert code_of(lambda: app.command(
        "createRole", "typo", privileges=[{"resource": {"db": "app", "collection": ""}, "actions": ["fnd"]}], roles=[]
    )) == 2
    app.command("createUser", "watcher", pwd="pw", roles=["orderWatcher"])
    app.orders.insert_one({"_id": 0})
    app.other.insert_one({"_id": 0})
    watcher = login(secured, "watcher", "pw", source="app")
    assert watcher.app.orders.find_one() == {"_id": 0}
    with watcher.app.orders.watch(max_await_time_ms=500) as stream:
        app.orders.insert_one({"_id": 1})
        assert stream.next()["documentKey"] == {"_id": 1}
    assert code_of(lambda: watcher.app.other.find_one()) == 13
    assert code_of(lambda: watcher.app.other.watch()) == 13
    assert code_of(lambda: watcher.app.watch()) == 13
    assert code_of(lambda: watcher.app.orders.insert_one({})) == 13
    # listCollections shows what the role reaches when asked for authorized collections only.
    names = watcher.app.list_collection_names(authorizedCollections=True)
    assert names == ["orders"]
    # Roles change under a logged-in user: the next command sees the change.
    app.command("grantPrivilegesToRole", "orderWatcher",
                privileges=[{"resource": {"db": "app", "collection": "other"}, "actions": ["find"]}])
    assert watcher.app.other.find_one() == {"_id": 0}
    app.command("revokePrivilegesFromRole", "orderWatcher",
                privileges=[{"resource": {"db": "app", "collection": "other"}, "actions": ["find"]}])
    assert code_of(lambda: watcher.app.other.find_one()) == 13
    # Inheritance, and rolesInfo.
    app.command("createRole", "orderAdmin", privileges=[
        {"resource": {"db": "app", "collection": "orders"}, "actions": ["insert"]}], roles=["orderWatcher"])
    assert code_of(lambda: app.command("grantRolesToRole", "orderWatcher", roles=["orderAdmin"])) == 49
    info = app.command("rolesInfo", "orderAdmin", showPrivileges=True)["roles"][0]
    assert info["role"] == "orderAdmin" and not info["isBuiltin"]
    assert info["roles"] == [{"role": "orderWatcher", "db": "app"}]
    inherited = {tuple(p["actions"]) for p in info["inheritedPrivileges"]}
    assert ("insert",) in inherited and ("find", "changeStream") in inherited
    assert app.command("rolesInfo", "read")["roles"][0]["isBuiltin"]
    app.command("dropRole", "orderWatcher")
    assert code_of(lambda: watcher.app.orders.find_one()) == 13
    assert code_of(lambda: app.command("dropRole", "orderWatcher")) == 31
    assert code_of(lambda: app.command("dropRole", "read")) == 49


def test_no_secret_reaches_the_log(eddy_factory):
    # The most verbose log level, and every path a password or a proof travels.
    server = eddy_factory(extra_args=["--auth", "-vv"])
    secret = "Sekr1t-pa55word"
    server.direct_client().admin.command("createUser", "root", pwd=secret, roles=["root"])
    root = login(server, "root", secret)
    root.app.command("createUser", "app", pwd=secret + "-app", roles=["read"])
    root.app.command("updateUser", "app", pwd=secret + "-new")
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-1"]:
        wrong = login(server, "root", secret + "-wrong", authMechanism=mechanism)
        assert code_of(lambda: wrong.admin.command("ping")) == 18
    reader = login(server, "app", secret + "-new", source="app")
    # Refused: the message quotes the command, with its password hidden.
    with pytest.raises(OperationFailure) as refused:
        reader.app.command("createUser", "x", pwd=secret + "-refused", roles=[])
    assert refused.value.code == 13
    assert "pwd: \"###\"" in str(refused.value) and "Sekr1t" not in str(refused.value)
    root.close()
    reader.close()
    server.stop()
    log = server.log_path.read_text(errors="replace")
    # The log is the verbose one (connections' ends are debug lines), and holds no secret.
    assert "connection closed" in log
    assert "Sekr1t" not in log


def test_sessions_belong_to_their_user(secured):
    """As mongod: a session is the pair (lsid, user), so one user cannot end, kill or list
    another's sessions, and `$listLocalSessions` shows the caller's own unless it may
    `listSessions`."""
    root, one, two = two_readers(secured)
    with one.start_session() as session:
        cursor_id = one.app.command("find", "c", batchSize=2, session=session)["cursor"]["id"]
        lsid = session.session_id
        # r2 names r1's session id: that is r2's own (empty) session, not r1's.
        two.admin.command("killSessions", [lsid])
        two.admin.command("endSessions", [lsid])
        batch = one.app.command("getMore", cursor_id, collection="c", session=session)["cursor"]["nextBatch"]
        assert len(batch) == 8

        def listed(client, **spec):
            return list(client.app.aggregate([{"$listLocalSessions": spec}]))

        uid_of_r1 = hashlib.sha256(b"r1@app").digest()
        mine = listed(one)
        assert lsid["id"] in [s["_id"]["id"] for s in mine]
        assert {bytes(s["_id"]["uid"]) for s in mine} == {uid_of_r1}
        assert lsid["id"] not in [s["_id"]["id"] for s in listed(two)]
        assert listed(one, users=[{"user": "r1", "db": "app"}]) != []
        # Other users' sessions need the listSessions privilege.
        assert code_of(lambda: listed(one, allUsers=True)) == 13
        assert code_of(lambda: listed(two, users=[{"user": "r1", "db": "app"}])) == 13
        everyone = listed(root, allUsers=True)
        assert uid_of_r1 in {bytes(s["_id"]["uid"]) for s in everyone}
        by_r1 = listed(root, users=[{"user": "r1", "db": "app"}])
        assert lsid["id"] in [s["_id"]["id"] for s in by_r1]
        # The owner's killSessions does end it, and its cursor with it.
        one.admin.command("killSessions", [lsid])
        assert code_of(lambda: one.app.command("getMore", cursor_id, collection="c")) == 43


def test_operations_belong_to_their_user(secured):
    """As mongod: anyone sees and kills their own operations; other users' need `inprog`
    (clusterMonitor) and `killop` (hostManager)."""
    root, one, two = two_readers(secured)
    cursor_id = one.app.command("aggregate", "c", pipeline=[{"$changeStream": {}}], cursor={})[
        "cursor"
    ]["id"]
    outcome: dict = {}

    def wait() -> None:
        try:
            one.app.command({"getMore": cursor_id, "collection": "c", "maxTimeMS": 20000})
        except OperationFailure as e:
            outcome["code"] = e.code

    import threading
    import time

    t = threading.Thread(target=wait)
    t.start()

    def getmores(client, **spec):
        return [
            o
            for o in client.admin.aggregate([{"$currentOp": spec}])
            if o.get("command", {}).get("getMore") == cursor_id
        ]

    deadline = time.monotonic() + 5
    while not getmores(root, allUsers=True) and time.monotonic() < deadline:
        time.sleep(0.05)
    (op,) = getmores(root, allUsers=True)
    assert op["effectiveUsers"] == [{"user": "r1", "db": "app"}]
    # r2 sees its own operations only, and may not ask for everyone's.
    assert getmores(two) == []
    assert code_of(lambda: getmores(two, allUsers=True)) == 13
    assert code_of(lambda: two.admin.command("currentOp")) == 13
    assert two.admin.command({"currentOp": 1, "$ownOps": True})["inprog"][0]["effectiveUsers"] == [
        {"user": "r2", "db": "app"}
    ]
    assert [o["opid"] for o in getmores(one)] == [op["opid"]]
    assert code_of(lambda: two.admin.command("killOp", op=op["opid"])) == 13
    root.admin.command("createUser", "monitor", pwd="pw", roles=["clusterMonitor"])
    monitor = login(secured, "monitor", "pw")
    assert len(monitor.admin.command("currentOp", **{"$all": False})["inprog"]) >= 1
    # Its owner may kill it without `killop`.
    one.admin.command("killOp", op=op["opid"])
    t.join(10)
    assert outcome["code"] == 11601
