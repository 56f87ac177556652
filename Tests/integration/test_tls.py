"""wss through mod_ssl: run-httpd's TLS port with the Python websockets
client, and client certificates required by a <Location>."""

import os
import shutil
import subprocess

import h2.errors
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidMessage

from conftest import TEST_HANDLERS, TOP, build_handler, facts_over_ws, run, serve, tls_client_context
from h2ws import H2WebSocket


@pytest.fixture(scope="module")
def client_ca(tmp_path_factory):
    """A certificate authority and one client certificate it signed, as
    (ca.crt, client.crt, client.key)."""
    directory = tmp_path_factory.mktemp("pki")

    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=Test CA",
            "-keyout", "ca.key", "-out", "ca.crt")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/O=Wonderland/CN=alice",
            "-keyout", "client.key", "-out", "client.csr")
    openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "1", "-out", "client.crt")
    return directory / "ca.crt", directory / "client.crt", directory / "client.key"


@pytest.fixture(scope="module")
def server(tmp_path_factory, client_ca):
    root = tmp_path_factory.mktemp("handlers")
    build_handler(TEST_HANDLERS / "request_facts_wsh.swift", root)
    build_handler(TEST_HANDLERS / "request_facts_wsh.swift", root, "certified/request_facts_wsh.swift")
    shutil.copy(TOP / "examples/echo_wsh.so", root)
    ca_certificate = client_ca[0]
    yield from serve(tmp_path_factory, tls=True, handler_root=root, extra_conf=f"""
SSLCACertificateFile "{ca_certificate}"
<Location /certified>
    SSLVerifyClient require
</Location>
""")


def test_wss_echoes_text_and_binary(server):
    async def go():
        async with connect(server.wss_url("/echo"), ssl=tls_client_context(), compression=None) as ws:
            await ws.send("héllo over TLS")
            text = await ws.recv()
            await ws.send(bytes(range(256)))
            return text, await ws.recv()
    assert run(go()) == ("héllo over TLS", bytes(range(256)))


def test_wss_echoes_large_messages(server):
    # Many TLS records per message, both ways.
    payload = os.urandom(3 * 1024 * 1024)

    async def go():
        async with connect(server.wss_url("/echo"), ssl=tls_client_context(), max_size=None,
                           compression=None) as ws:
            await ws.send(payload)
            return await ws.recv()
    assert run(go()) == payload


def test_wss_with_permessage_deflate(server):
    text = "compressible " * 20000

    async def go():
        async with connect(server.wss_url("/echo"), ssl=tls_client_context(), max_size=None) as ws:
            await ws.send(text)
            return ws.response.headers.get("Sec-WebSocket-Extensions"), await ws.recv()
    extensions, echoed = run(go())
    assert extensions.startswith("permessage-deflate")
    assert echoed == text


def test_handler_sees_tls_facts(server):
    facts = facts_over_ws(server.wss_url("/request_facts"), ssl=tls_client_context())
    assert facts["secure"] == "true"
    assert facts["tls-protocol"].startswith("TLSv1.")
    assert facts["client-dn"] == "(none)"


def test_plain_ws_is_not_secure(server):
    facts = facts_over_ws(server.url("/request_facts"))
    assert facts["secure"] == "false"
    assert facts["tls-protocol"] == "(none)"


def test_client_certificate_required_refuses_before_upgrade(server):
    before = server.error_log.count("request_facts handshake ran")

    async def go():
        async with connect(server.wss_url("/certified/request_facts"), ssl=tls_client_context()):
            pass
    # TLS 1.3 asks for the certificate after the request (post-handshake
    # authentication); without one mod_ssl ends TLS with an alert, so the
    # 403 it logs never reaches the client.
    with pytest.raises(InvalidMessage):
        run(go())
    server.wait_for_access_log('"GET /certified/request_facts HTTP/1.1" 403')
    assert "Client certificate missing" in server.error_log
    assert server.error_log.count("request_facts handshake ran") == before


def test_client_certificate_reaches_the_handler(server, client_ca):
    _, certificate, key = client_ca
    facts = facts_over_ws(server.wss_url("/certified/request_facts"), ssl=tls_client_context(certificate, key))
    assert facts["client-verify"] == "SUCCESS"
    assert facts["client-dn"] == "CN=alice,O=Wonderland"
    assert facts["tls-protocol"] == "TLSv1.3"


def test_client_certificate_location_is_refused_over_http2(server):
    # HTTP/2 cannot ask for a certificate mid-connection: mod_ssl refuses
    # and mod_http2 resets the stream with HTTP_1_1_REQUIRED (a browser then
    # retries over HTTP/1.1); the handler never runs. Hence the README's
    # advice: SSLVerifyClient for the whole virtual host.
    before = server.error_log.count("request_facts handshake ran")
    ws = H2WebSocket(server.tls_port, "/certified/request_facts")
    assert ws.status is None
    assert ws.reset_code == h2.errors.ErrorCodes.HTTP_1_1_REQUIRED
    ws.close()
    assert server.error_log.count("request_facts handshake ran") == before
