"""Directives and handler loading, each against its own httpd."""

import asyncio
import os
import shutil
import subprocess

import pytest
import websockets
from websockets.asyncio.client import connect

from conftest import APACHE, TOP, Httpd, refused_startup, serve
from rawws import RawWebSocket, frame, upgrade_status


def test_max_message_size_directive(server_with):
    server = server_with(extra_conf="SwiftWebSocketMaxMessageSize 1024\n")

    async def go():
        async with connect(server.url("/echo"), max_size=None) as ws:
            await ws.send(b"x" * 1024)
            assert await ws.recv() == b"x" * 1024
            await ws.send(b"x" * 1025)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            return closed.value.rcvd.code
    assert asyncio.run(go()) == 1009
    # Fragments add up: 3 x 400 bytes is over the limit too.
    ws = RawWebSocket(server.port)
    ws.send(frame(0x2, b"a" * 400, fin=False) + frame(0x0, b"b" * 400, fin=False)
            + frame(0x0, b"c" * 400))
    assert ws.read_close() == 1009
    ws.close()


def test_largest_max_message_size_still_inflates(server_with):
    # No limit at all: the inflater's "one byte past the limit" must not
    # overflow (it trapped, taking the child down, on the first message).
    server = server_with(extra_conf="SwiftWebSocketMaxMessageSize 9223372036854775807\n")

    async def go():
        async with connect(server.url("/echo"), compression="deflate", max_size=None) as ws:
            await ws.send("compressible " * 1000)
            return ws.response.headers.get("Sec-WebSocket-Extensions", ""), await ws.recv()
    extensions, echoed = asyncio.run(go())
    assert extensions.startswith("permessage-deflate")
    assert echoed == "compressible " * 1000


@pytest.mark.parametrize("value", ["0", "-5", "lots", "12k"])
def test_bad_max_message_size_stops_startup(tmp_path_factory, value):
    message = refused_startup(tmp_path_factory, f"SwiftWebSocketMaxMessageSize {value}\n")
    assert f"SwiftWebSocketMaxMessageSize: \"{value}\" is not a whole number from 1 to" in message


def test_missing_handler_root_stops_startup_naming_it(tmp_path_factory, tmp_path):
    message = refused_startup(tmp_path_factory, handler_root=tmp_path / "no-such-dir")
    assert "SwiftWebSocketHandlerRoot" in message
    assert "no-such-dir" in message


@pytest.fixture(scope="module")
def mixed_root(tmp_path_factory):
    """A handler root with one good handler and every kind of bad one."""
    outside = tmp_path_factory.mktemp("outside")
    root = tmp_path_factory.mktemp("root")
    (root / "sub").mkdir()
    shutil.copy(TOP / "examples/echo_wsh.so", root / "sub/good_wsh.so")
    # A symlink pointing at a handler outside the root: never loaded.
    shutil.copy(TOP / "examples/echo_wsh.so", outside / "escape_wsh.so")
    os.symlink(outside / "escape_wsh.so", root / "escape_wsh.so")
    os.symlink(outside, root / "linkdir")
    # Not a shared object at all.
    (root / "text_wsh.so").write_text("not an ELF file\n")
    # A shared object with no handler entry point.
    c_source = tmp_path_factory.mktemp("c") / "plain.c"
    c_source.write_text("int plain(void) { return 1; }\n")
    subprocess.run(["cc", "-shared", "-fPIC", str(c_source), "-o", str(root / "plain_wsh.so")], check=True)
    # A handler built against another engine ABI.
    sdk = tmp_path_factory.mktemp("sdk")
    shutil.copytree(TOP / "build/sdk", sdk, dirs_exist_ok=True)
    (sdk / "abi").write_text("0.0.0+swift-0.0")
    source = root / "old_wsh.swift"
    shutil.copy(TOP / "examples/echo_wsh.swift", source)
    subprocess.run([str(TOP / "bin/swiftwebsocket-build"), str(source)], check=True,
                   env={**os.environ, "SWIFTWEBSOCKET_SDK": str(sdk)}, capture_output=True)
    return root


@pytest.fixture(scope="module")
def mixed_httpd(tmp_path_factory, mixed_root):
    yield from serve(tmp_path_factory, handler_root=mixed_root)


def test_good_handler_in_subdirectory_serves(mixed_httpd):
    ws = RawWebSocket(mixed_httpd.port, "/sub/good")
    ws.send(frame(0x1, b"ok"))
    assert ws.read_frame() == (True, 0x1, b"ok")
    ws.close()


@pytest.mark.parametrize("path", ["/escape", "/linkdir/escape", "/text", "/plain", "/old"])
def test_bad_handlers_are_not_served(mixed_httpd, path):
    assert upgrade_status(mixed_httpd.port, path)[0] == 404


@pytest.mark.parametrize("needle", [
    "escape_wsh.so: it resolves outside the handler root",
    "linkdir: it resolves outside the handler root",
    "cannot load WebSocket handler {root}/text_wsh.so",
    "cannot load WebSocket handler {root}/plain_wsh.so: no handler entry point",
    "cannot load WebSocket handler {root}/old_wsh.so: built against engine 0.0.0+swift-0.0",
])
def test_load_errors_are_named_in_the_error_log(mixed_httpd, mixed_root, needle):
    assert needle.format(root=mixed_root) in mixed_httpd.error_log


def test_configtest_reports_load_errors(mixed_httpd, mixed_root):
    result = subprocess.run([APACHE, "-t", "-f", str(mixed_httpd.conf)], capture_output=True, text=True)
    assert result.returncode == 0  # bad handlers do not stop the others
    assert f"cannot load WebSocket handler {mixed_root}/plain_wsh.so" in result.stderr


def test_configtest_fails_on_a_configuration_startup_would_refuse(tmp_path_factory, tmp_path):
    # Debian's apache2ctl runs the configtest before a graceful restart; a
    # test that passed here would let the restart take the server down.
    handler_map = tmp_path / "map"
    handler_map.write_text("just-one-word\n")
    server = Httpd(tmp_path_factory.mktemp("httpd"), extra_conf=f"SwiftWebSocketHandlerMap {handler_map}\n")
    assert subprocess.run(server.command(), capture_output=True).returncode != 0
    result = subprocess.run([APACHE, "-t", "-f", str(server.conf)], capture_output=True, text=True)
    assert result.returncode != 0
    assert f"SwiftWebSocketHandlerMap {handler_map} line 1: expected" in result.stderr
