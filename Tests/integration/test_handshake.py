"""The opening handshake: what upgrades, and the HTTP answer to what does
not. Raw sockets, because client libraries refuse to send bad requests."""

import base64

import pytest

from rawws import RawWebSocket, frame, http_request, upgrade_request


def test_accept_key_matches_rfc(httpd):
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    status, headers, sock, _ = http_request(httpd.port, upgrade_request(key=key))
    sock.close()
    assert status == 101
    assert headers["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert headers["upgrade"].lower() == "websocket"
    assert "upgrade" in headers["connection"].lower()
    assert "transfer-encoding" not in headers


@pytest.mark.parametrize("upgrade, connection", [
    ("WebSocket", "keep-alive, Upgrade"),
    ("websocket", "UPGRADE"),
    ("foo, websocket", "Upgrade, keep-alive"),
])
def test_tokens_are_case_insensitive_lists(httpd, upgrade, connection):
    status, _, sock, _ = http_request(httpd.port, upgrade_request(upgrade=upgrade, connection=connection))
    sock.close()
    assert status == 101


@pytest.mark.parametrize("kwargs, why", [
    ({"key": ""}, "no key"),
    ({"key": "c2hvcnQ="}, "key of 5 bytes"),
    ({"key": base64.b64encode(b"x" * 17).decode()}, "key of 17 bytes"),
    ({"key": "!!!!!!!!!!!!!!!!!!!!!!=="}, "key not base64"),
    ({"connection": "keep-alive"}, "Connection without upgrade"),
    ({"connection": None}, "no Connection"),
    ({"method": "POST", "extra": "Content-Length: 0\r\n"}, "POST"),
    ({"proto": "HTTP/1.0"}, "HTTP/1.0"),
    ({"extra": "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"}, "two keys"),
    ({"key": "AAAAAAAAAAAAAAAAAAAAAA!!"}, "key ends in junk"),
    ({"key": "AAAAAAAAAA.AAAAAAAAAAA=="}, "key with a character outside base64"),
    ({"key": "AAAAAAAAAAAAAAAAAAAAAB=="}, "key with bits past 16 bytes"),
    ({"method": "HEAD"}, "HEAD"),
])
def test_bad_handshakes_get_400(httpd, kwargs, why):
    status, headers, sock, _ = http_request(httpd.port, upgrade_request(**kwargs))
    sock.close()
    assert status == 400, why
    assert "sec-websocket-accept" not in headers


@pytest.mark.parametrize("version", ["8", "12", "14", None])
def test_other_versions_get_426_naming_13(httpd, version):
    status, headers, sock, _ = http_request(httpd.port, upgrade_request(version=version))
    sock.close()
    assert status == 426
    assert headers["sec-websocket-version"] == "13"


@pytest.mark.parametrize("path, expected", [
    ("/nothing-here", 404),          # no handler: the module declines
    ("/echo_wsh", 404),
    ("/echo_wsh.so", 404),
    ("/examples/echo", 404),
    ("/ec%2Fho", 404),               # encoded slash: refused by httpd
    ("/%2e%2e/examples/echo", 400),  # above the root: refused by httpd
    ("/../../etc/passwd", 400),
])
def test_paths_without_a_handler_never_upgrade(httpd, path, expected):
    status, headers, sock, _ = http_request(httpd.port, upgrade_request(path=path))
    sock.close()
    assert status == expected
    assert "sec-websocket-accept" not in headers


def test_dot_segments_resolve_inside_the_root(httpd):
    # httpd normalizes /x/../echo to /echo before the module sees it.
    status, _, sock, _ = http_request(httpd.port, upgrade_request(path="/x/../echo"))
    sock.close()
    assert status == 101


def test_plain_get_of_a_handler_path_is_not_claimed(httpd):
    status, _, sock, _ = http_request(httpd.port, b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.close()
    assert status == 404


def test_server_still_serves_after_bad_handshakes(httpd):
    ws = RawWebSocket(httpd.port)
    ws.send(frame(0x1, b"still here"))
    assert ws.read_frame() == (True, 0x1, b"still here")
    ws.close()
    httpd.assert_no_crash()
