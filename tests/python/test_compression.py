"""Wire compression (OP_COMPRESSED), as mongod 7.0 does it.

The client lists `compression: [...]` in its handshake; the server answers with the names it
has (`--networkMessageCompressors`, default snappy,zstd,zlib), in the client's order; a
compressed request is answered with the same compressor, except the handshake and
authentication commands, which the compression spec never compresses. A corrupt compressed
message ends the connection (mongod ends the session without a reply) and nothing else.

pymongo needs `backports.zstd` for "zstd" (before Python 3.14) and `python-snappy` for "snappy"
(scripts/setup-python.sh installs both); the raw-socket tests build frames with the same
libraries.
"""

from __future__ import annotations

import socket
import struct
import threading
import zlib

import bson
import pytest
import snappy
from backports import zstd
from conftest import EddyServer
from pymongo.errors import OperationFailure

OP_COMPRESSED = 2012
OP_MSG = 2013
IDS = {"noop": 0, "snappy": 1, "zlib": 2, "zstd": 3}


def compress(name: str, data: bytes) -> bytes:
    if name == "noop":
        return data
    if name == "snappy":
        return snappy.compress(data)
    if name == "zlib":
        return zlib.compress(data)
    return zstd.compress(data)


def decompress(compressor_id: int, data: bytes) -> bytes:
    if compressor_id == 0:
        return data
    if compressor_id == 1:
        return snappy.uncompress(data)
    if compressor_id == 2:
        return zlib.decompress(data)
    return zstd.decompress(data)


def op_msg(cmd: dict, request_id: int = 1) -> bytes:
    body = struct.pack("<I", 0) + b"\x00" + bson.encode(cmd)
    return struct.pack("<iiii", 16 + len(body), request_id, 0, OP_MSG) + body


def op_compressed(
    frame: bytes, name: str, *, data: bytes | None = None, size: int | None = None, cid: int | None = None
) -> bytes:
    """Wraps an OP_MSG frame; `data`, `size` and `cid` override what goes in the wrapper."""
    request_id, response_to, op = struct.unpack("<iii", frame[4:16])
    payload = frame[16:]
    data = compress(name, payload) if data is None else data
    size = len(payload) if size is None else size
    cid = IDS[name] if cid is None else cid
    body = struct.pack("<iiB", op, size, cid) + data
    return struct.pack("<iiii", 16 + len(body), request_id, response_to, OP_COMPRESSED) + body


def connect(server: EddyServer) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return s


def recv_exact(s: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


def read_reply(s: socket.socket) -> tuple[int | None, dict]:
    """One reply: (the compressor id it came with or None, its body document)."""
    header = recv_exact(s, 16)
    length, _, _, op = struct.unpack("<iiii", header)
    rest = recv_exact(s, length - 16)
    compressor = None
    if op == OP_COMPRESSED:
        op, size, compressor = struct.unpack("<iiB", rest[:9])
        rest = decompress(compressor, rest[9:])
        assert len(rest) == size
    assert op == OP_MSG, op
    assert rest[4] == 0, "a kind-0 section first"
    return compressor, bson.decode(rest[5:])


def command(s: socket.socket, cmd: dict, name: str | None = None) -> tuple[int | None, dict]:
    frame = op_msg(cmd)
    s.sendall(op_compressed(frame, name) if name else frame)
    return read_reply(s)


def closed_without_reply(s: socket.socket) -> bool:
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def assert_alive(server: EddyServer) -> None:
    c = server.direct_client()
    assert c.admin.command("ping")["ok"] == 1.0


def pooled_compression(client) -> list[int]:
    """The compressor ids pymongo compresses with on its pooled connections (pymongo
    internals: `Connection.compression_context` comes from the server's hello answer)."""
    ids = set()
    for server in client._topology._servers.values():
        for conn in server.pool.conns:
            ctx = conn.compression_context
            if ctx is not None:
                ids.add(ctx.compressor_id)
    return sorted(ids)


@pytest.mark.parametrize("name", ["zstd", "snappy", "zlib"])
def test_pymongo_negotiates_and_uses_each_compressor(shared_server: EddyServer, name: str):
    c = shared_server.direct_client(compressors=name)
    db = c[f"compression_{name}"]
    db.drop_collection("c")
    # The hello reply lists what was negotiated: the client's names the server has.
    hello = db.command("hello", compression=[name, "lz4"])
    assert hello["compression"] == [name]
    # CRUD, compressed both ways (a batch big enough to be worth compressing).
    docs = [{"_id": i, "text": "lorem ipsum dolor sit amet " * 20} for i in range(500)]
    assert len(db.c.insert_many(docs).inserted_ids) == 500
    assert db.c.count_documents({}) == 500
    assert [d["_id"] for d in db.c.find({"_id": {"$lt": 5}}).sort("_id", 1)] == [0, 1, 2, 3, 4]
    assert db.c.update_many({"_id": {"$gte": 490}}, {"$set": {"late": True}}).modified_count == 10
    assert db.c.find_one({"_id": 495})["late"] is True
    assert db.c.delete_many({"late": True}).deleted_count == 10
    assert sum(1 for _ in db.c.find(batch_size=7)) == 490
    assert pooled_compression(c) == [IDS[name]]


@pytest.mark.parametrize("name", ["zstd", "snappy", "zlib"])
def test_change_stream_over_compressed_connection(shared_server: EddyServer, name: str):
    c = shared_server.direct_client(compressors=name)
    coll = c[f"compression_cs_{name}"].c
    coll.drop()
    coll.insert_one({"_id": 0})
    with coll.watch(max_await_time_ms=200) as stream:
        seen = []

        def write() -> None:
            writer = shared_server.direct_client(compressors=name)
            writer[coll.database.name].c.insert_many([{"_id": i, "pad": "x" * 1000} for i in range(1, 4)])

        t = threading.Thread(target=write)
        t.start()
        for change in stream:
            seen.append(change["documentKey"]["_id"])
            if len(seen) == 3:
                break
        t.join()
    assert seen == [1, 2, 3]
    assert pooled_compression(c) == [IDS[name]]


@pytest.mark.parametrize("name", ["zstd", "snappy", "zlib"])
def test_server_status_counts_compressed_bytes(eddy_factory, name: str):
    # A server of its own: the counters start at zero and nothing else moves them.
    server = eddy_factory()
    c = server.direct_client(compressors=name)
    doc = {"text": "compressible " * 2000}
    coll = c.db.squeeze
    coll.insert_one(dict(doc))
    assert coll.find_one({}, {"_id": 0}) == doc
    network = c.admin.command("serverStatus")["network"]
    assert set(network["compression"]) == {"snappy", "zstd", "zlib"}
    used = network["compression"][name]
    # The insert went in compressed, the find's reply came back compressed.
    assert used["decompressor"]["bytesIn"] < used["decompressor"]["bytesOut"]
    assert used["decompressor"]["bytesOut"] > len(doc["text"])
    assert used["compressor"]["bytesIn"] > len(doc["text"])
    assert 0 < used["compressor"]["bytesOut"] < used["compressor"]["bytesIn"]
    for other in {"snappy", "zstd", "zlib"} - {name}:
        idle = network["compression"][other]
        assert idle["compressor"]["bytesIn"] == 0 and idle["decompressor"]["bytesIn"] == 0
    # Logical bytes count messages decompressed; physical bytes what crossed the wire.
    assert network["physicalBytesIn"] < network["bytesIn"]
    assert network["physicalBytesOut"] < network["bytesOut"]


def test_negotiation_in_the_clients_order_and_remembered(shared_server: EddyServer):
    s = connect(shared_server)
    with s:
        # Unknown names are skipped; the order is the client's.
        _, hello = command(s, {"hello": 1, "compression": ["lz4", "zlib", "snappy"], "$db": "admin"})
        assert hello["compression"] == ["zlib", "snappy"]
        # A hello without `compression` reports what was negotiated.
        _, again = command(s, {"hello": 1, "$db": "admin"})
        assert again["compression"] == ["zlib", "snappy"]
        # A new list renegotiates; an empty one turns compression off.
        _, zstd = command(s, {"isMaster": 1, "compression": ["zstd"], "$db": "admin"})
        assert zstd["compression"] == ["zstd"]
        _, off = command(s, {"hello": 1, "compression": [], "$db": "admin"})
        assert "compression" not in off
        _, still_off = command(s, {"hello": 1, "$db": "admin"})
        assert "compression" not in still_off
    # No compression asked for: none in the reply.
    hello = shared_server.direct_client().admin.command("hello")
    assert "compression" not in hello


def test_compression_field_types(shared_server: EddyServer):
    admin = shared_server.direct_client().admin
    with pytest.raises(OperationFailure) as e:
        admin.command("hello", compression="zstd")
    assert e.value.code == 14
    assert "BSON field 'hello.compression' is the wrong type 'string', expected type 'array'" in str(e.value)
    with pytest.raises(OperationFailure) as e:
        admin.command("hello", compression=["zstd", 3])
    assert e.value.code == 14
    assert "'hello.compression.1' is the wrong type 'int', expected type 'string'" in str(e.value)


@pytest.mark.parametrize("name", ["zstd", "snappy", "zlib"])
def test_replies_use_the_requests_compressor(shared_server: EddyServer, name: str):
    s = connect(shared_server)
    with s:
        # A compressed ping is answered compressed, with the same compressor.
        compressor, reply = command(s, {"ping": 1, "$db": "admin"}, name)
        assert (compressor, reply["ok"]) == (IDS[name], 1.0)
        # A plain request is answered plain.
        compressor, reply = command(s, {"ping": 1, "$db": "admin"})
        assert (compressor, reply["ok"]) == (None, 1.0)
        # The handshake is never compressed, even if a client compressed it.
        compressor, reply = command(s, {"hello": 1, "$db": "admin"}, name)
        assert compressor is None and reply["isWritablePrimary"] is True
        # A command error is answered compressed like any reply.
        compressor, reply = command(s, {"noSuchCommand": 1, "$db": "admin"}, name)
        assert (compressor, reply["ok"], reply["code"]) == (IDS[name], 0.0, 59)


def test_noop_only_when_configured(shared_server: EddyServer, eddy_factory):
    # The default list (snappy,zstd,zlib) has no noop: mongod refuses it and ends the session.
    s = connect(shared_server)
    with s:
        s.sendall(op_compressed(op_msg({"ping": 1, "$db": "admin"}), "noop"))
        assert closed_without_reply(s)
    assert_alive(shared_server)
    server = eddy_factory(extra_args=["--networkMessageCompressors", "noop,zlib"])
    s = connect(server)
    with s:
        _, hello = command(s, {"hello": 1, "compression": ["zstd", "noop", "zlib"], "$db": "admin"})
        assert hello["compression"] == ["noop", "zlib"]
        compressor, reply = command(s, {"ping": 1, "$db": "admin"}, "noop")
        assert (compressor, reply["ok"]) == (0, 1.0)
        # zstd is not among this server's compressors.
        s.sendall(op_compressed(op_msg({"ping": 1, "$db": "admin"}), "zstd"))
        assert closed_without_reply(s)
    assert_alive(server)


def test_disabled(eddy_factory):
    server = eddy_factory(extra_args=["--networkMessageCompressors", "disabled"])
    hello = server.direct_client().admin.command("hello", compression=["zstd", "snappy", "zlib"])
    assert "compression" not in hello
    # pymongo asked for zstd and got none: it talks plain, and works.
    c = server.direct_client(compressors="zstd,snappy,zlib")
    c.test.c.insert_one({"_id": 1})
    assert c.test.c.find_one() == {"_id": 1}
    assert pooled_compression(c) == []
    s = connect(server)
    with s:
        s.sendall(op_compressed(op_msg({"ping": 1, "$db": "admin"}), "snappy"))
        assert closed_without_reply(s)
    assert_alive(server)


def corrupt_frames() -> list[tuple[str, bytes]]:
    ping = op_msg({"ping": 1, "$db": "admin"})
    payload_len = len(ping) - 16
    cases = []
    for name in ["snappy", "zlib", "zstd"]:
        good = compress(name, ping[16:])
        cases += [
            (f"{name} garbage", op_compressed(ping, name, data=b"\xff\x00garbage" * 8)),
            (f"{name} truncated", op_compressed(ping, name, data=good[: len(good) // 2])),
            (f"{name} size too small", op_compressed(ping, name, size=payload_len - 1)),
            (f"{name} size too large", op_compressed(ping, name, size=payload_len + 1)),
            (f"{name} bomb", op_compressed(ping, name, size=48_000_000)),
            (f"{name} largest size, small data", op_compressed(ping, name, size=48_000_000 - 16)),
            (f"{name} negative size", op_compressed(ping, name, size=-1)),
        ]
    cases += [
        ("unknown compressor", op_compressed(ping, "zlib", cid=7)),
        ("header cut short", struct.pack("<iiii", 20, 1, 0, OP_COMPRESSED) + struct.pack("<i", OP_MSG)),
        (
            "nested",
            op_compressed(op_compressed(ping, "zlib"), "zlib"),
        ),
    ]
    return cases


@pytest.mark.parametrize("case", corrupt_frames(), ids=lambda c: c[0])
def test_corrupt_compressed_message_closes_the_connection(shared_server: EddyServer, case):
    _, frame = case
    bystander = connect(shared_server)
    with bystander:
        s = connect(shared_server)
        with s:
            s.sendall(frame)
            assert closed_without_reply(s)
        # Another connection, opened before, is untouched; new ones work.
        _, reply = command(bystander, {"ping": 1, "$db": "admin"}, "zstd")
        assert reply["ok"] == 1.0
    assert_alive(shared_server)


def test_a_valid_compressed_inner_message_with_bad_contents_is_answered(shared_server: EddyServer):
    # The compression is sound; the OP_MSG inside has an unknown section kind: mongod
    # answers that with an error (40432), compressed, and keeps the connection.
    ping = op_msg({"ping": 1, "$db": "admin"})
    bad = ping[:20] + b"\x07" + ping[21:]
    s = connect(shared_server)
    with s:
        s.sendall(op_compressed(bad, "zlib"))
        compressor, reply = read_reply(s)
        assert (compressor, reply["ok"], reply["code"]) == (2, 0.0, 40432)
        _, reply = command(s, {"ping": 1, "$db": "admin"}, "zlib")
        assert reply["ok"] == 1.0
