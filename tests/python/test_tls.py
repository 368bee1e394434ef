"""TLS through pymongo (and `eddy demo`), with certificates made by openssl for each test.

`requireTLS` serves TLS clients and refuses plain ones; `allowTLS` serves both on one port;
with `--tlsCAFile` a client must present a certificate signed by that CA. Change streams
work over TLS like anywhere else.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pymongo
import pytest
from pymongo.errors import ServerSelectionTimeoutError


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate."""
    d = tmp_path_factory.mktemp("certs")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=Eddy test CA", cwd=d)
    (d / "server.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    (d / "client.cnf").write_text("extendedKeyUsage=clientAuth\n")
    for name, cn in [("server", "localhost"), ("client", "eddy-test-client")]:
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={cn}", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.cnf", cwd=d)
        (d / f"{name}.pem").write_text((d / f"{name}.crt").read_text() + (d / f"{name}.key").read_text())
    return d


def tls_client(server, certs: Path, **kw) -> pymongo.MongoClient:
    return server.direct_client(tls=True, tlsCAFile=str(certs / "ca.pem"), **kw)


def test_require_tls_serves_tls_and_refuses_plain(eddy_factory, certs):
    server = eddy_factory(extra_args=["--tlsMode", "requireTLS", "--tlsCertificateKeyFile", str(certs / "server.pem")])
    client = tls_client(server, certs)
    client.app.c.insert_one({"_id": 1})
    assert client.app.c.find_one() == {"_id": 1}
    with client.app.c.watch(max_await_time_ms=500) as stream:
        client.app.c.insert_one({"_id": 2})
        assert stream.next()["documentKey"] == {"_id": 2}
    plain = server.direct_client(serverSelectionTimeoutMS=1500)
    with pytest.raises(ServerSelectionTimeoutError):
        plain.admin.command("ping")
    opts = client.admin.command("getCmdLineOpts")["parsed"]["net"]["tls"]
    assert opts["mode"] == "requireTLS"


def test_allow_tls_serves_both_on_one_port(eddy_factory, certs):
    server = eddy_factory(extra_args=["--tlsMode", "allowTLS", "--tlsCertificateKeyFile", str(certs / "server.pem")])
    assert tls_client(server, certs).admin.command("ping")["ok"] == 1
    assert server.direct_client().admin.command("ping")["ok"] == 1


def test_a_ca_file_requires_client_certificates(eddy_factory, certs):
    server = eddy_factory(extra_args=[
        "--tlsMode", "requireTLS",
        "--tlsCertificateKeyFile", str(certs / "server.pem"),
        "--tlsCAFile", str(certs / "ca.pem"),
    ])
    with pytest.raises(ServerSelectionTimeoutError):
        tls_client(server, certs, serverSelectionTimeoutMS=1500).admin.command("ping")
    with_cert = tls_client(server, certs, tlsCertificateKeyFile=str(certs / "client.pem"))
    assert with_cert.admin.command("ping")["ok"] == 1


def test_the_cli_connects_over_tls_with_auth(eddy_factory, certs):
    server = eddy_factory(extra_args=[
        "--auth", "--tlsMode", "requireTLS", "--tlsCertificateKeyFile", str(certs / "server.pem"),
    ])
    tls_client(server, certs).admin.command("createUser", "admin", pwd="pw", roles=["root"])
    uri = f"mongodb://admin:pw@localhost:{server.port}/?tls=true&tlsCAFile={certs / 'ca.pem'}&directConnection=true"
    out = subprocess.run([os.environ["EDDY_BIN"], "demo", uri, "--db", "tlsdemo"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    admin = tls_client(server, certs, username="admin", password="pw")
    # The tutorial's writes end with a drop: the collection is gone, its events are in the oplog.
    assert "collection" not in admin.tlsdemo.list_collection_names()


def test_the_http_change_stream_gateway_speaks_tls_with_the_same_users(eddy_factory, certs):
    import ssl

    from conftest import free_port
    from sse import Stream, basic, watch_path

    port = free_port()
    server = eddy_factory(
        extra_args=[
            "--tlsMode", "requireTLS", "--tlsCertificateKeyFile", str(certs / "server.pem"),
            "--auth", "--http-port", str(port),
        ]
    )
    tls_client(server, certs).admin.command("createUser", "root", pwd="r00t", roles=["root"])
    client = tls_client(server, certs, username="root", password="r00t")
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    with Stream(port, watch_path("app", "c"), tls=context) as refused:
        assert refused.status == 401
    with Stream(port, watch_path("app", "c"), headers=basic("root", "r00t"), tls=context) as stream:
        assert stream.status == 200
        stream.heartbeat()
        client.app.c.insert_one({"_id": "over tls"})
        (event,) = stream.changes(1)
    assert event.event == "insert" and event.doc["documentKey"] == {"_id": "over tls"}
