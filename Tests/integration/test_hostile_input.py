"""Requests built to trick the module: paths aimed outside the handler root
and handshakes no client should send. Each gets httpd's or the module's
refusal, and nothing outside the root is ever loaded or run."""

import os
import shutil

import pytest

from conftest import TOP, serve
from rawws import echoes, frame, request_status, upgrade_request


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A root with an echo handler in a subdirectory, beside a directory
    outside it that holds a handler and a symlink to it from inside."""
    base = tmp_path_factory.mktemp("tree")
    root, outside = base / "root", base / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    shutil.copy(TOP / "examples/echo_wsh.so", root / "sub/echo_wsh.so")
    shutil.copy(TOP / "examples/echo_wsh.so", outside / "secret_wsh.so")
    os.symlink(outside / "secret_wsh.so", root / "sub/link_wsh.so")
    (root / "sub/notes_wsh.so").write_text("not a shared object\n")
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory, root):
    yield from serve(tmp_path_factory, handler_root=root)


def status(server, path=None, request=None):
    return request_status(server.port, request or upgrade_request(path))[0]


# The first five are httpd's answer before the module sees the path; the
# rest reach the module's lookup, which knows only handlers loaded from
# inside the root.
@pytest.mark.parametrize("path, expected", [
    ("/sub/../../outside/secret", 400),       # above the root: httpd refuses
    ("/%2e%2e/outside/secret", 400),
    ("/sub/%2e%2e/%2e%2e/outside/secret", 400),
    ("/sub/..%2f..%2foutside/secret", 404),  # encoded slashes: httpd refuses
    ("/sub%2fecho", 404),
    ("/sub/link", 404),                       # symlink out of the root: not loaded
    ("/outside/secret", 404),
    ("/sub/notes", 404),                      # not a shared object: not loaded
    ("/sub/echo.so", 404),
    ("/sub/echo_wsh.so", 404),
    ("/sub/echo%00", 404),
    ("/sub/echo/", 404),
])
def test_paths_never_reach_anything_outside_the_root(server, path, expected):
    assert status(server, path) == expected


@pytest.mark.parametrize("path", ["/sub/echo", "//sub//echo", "/sub/./echo", "/x/../sub/echo"])
def test_equivalent_spellings_of_a_handler_path_reach_it(server, path):
    # httpd merges slashes and resolves dot segments before the module
    # looks the path up: the same handler, still inside the root.
    assert status(server, path) == 101


def test_symlink_and_non_object_are_named_in_the_error_log(server, root):
    log = server.error_log
    assert "link_wsh.so: it resolves outside the handler root" in log
    assert f"cannot load WebSocket handler {root}/sub/notes_wsh.so" in log


def key_line():
    return "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"


@pytest.mark.parametrize("extra, expected, why", [
    (key_line(), 400, "a second Sec-WebSocket-Key"),
    ("Upgrade: websocket\r\n", 101, "Upgrade twice: one list, websocket in it"),
    ("Upgrade: h2c\r\n", 101, "Upgrade twice, websocket one of the offers"),
    ("X-Long: " + "a" * 9000 + "\r\n", 400, "a header over LimitRequestFieldSize"),
    ("Sec-WebSocket-Extensions: " + "permessage-deflate; x=1, " * 300 + "\r\n", 101,
     "7,500 bytes of extension offers"),
    ("Sec-WebSocket-Protocol: " + ", ".join(["p"] * 2500) + "\r\n", 101, "2,500 subprotocols offered"),
    ("".join(f"X-Many-{i}: 1\r\n" for i in range(120)), 400, "more headers than LimitRequestFields"),
    ("Content-Length: 5\r\n", 400, "a body announced"),
    ("Transfer-Encoding: chunked\r\n", 400, "a chunked body"),
])
def test_handshake_tricks_get_the_protocols_answer(server, extra, expected, why):
    body = b"hello" if "Content-Length" in extra else b"0\r\n\r\n" if "chunked" in extra else b""
    assert status(server, request=upgrade_request("/sub/echo", extra=extra) + body) == expected, why


def test_body_bytes_are_never_read_as_frames(server):
    # Were the body accepted, these bytes would arrive as a text frame.
    smuggled = frame(0x1, b"smuggled")
    refusals = server.error_log.count("refusing WebSocket handshake: the request has a body")
    request = upgrade_request("/sub/echo", extra=f"Content-Length: {len(smuggled)}\r\n") + smuggled
    assert status(server, request=request) == 400
    assert server.error_log.count("refusing WebSocket handshake: the request has a body") == refusals + 1


def test_still_serving_after_the_tricks(server):
    assert echoes(server.port, "/sub/echo")
    server.assert_no_crash()
