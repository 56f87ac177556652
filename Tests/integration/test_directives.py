"""The routing and connection directives, each against its own httpd, and
handlers added or changed under a running one."""

import os
import shutil
import time

import pytest

from conftest import TOP, build_handler, refused_startup
from rawws import RawWebSocket, echoes, frame, upgrade_status


def status_of(server, path, extra=""):
    return upgrade_status(server.port, path, extra)[0]


# ---- SwiftWebSocketAllowedOrigins ----

ORIGINS_CONF = """
SwiftWebSocketAllowedOrigins https://app.example http://localhost:8080
<Location /echo_noext>
    SwiftWebSocketAllowedOrigins https://app.example none
</Location>
<Location /close>
    SwiftWebSocketAllowedOrigins *
</Location>
"""


def test_allowed_origins_refuse_others_with_403(server_with):
    server = server_with(extra_conf=ORIGINS_CONF)
    assert status_of(server, "/echo", "Origin: https://app.example\r\n") == 101
    assert status_of(server, "/echo", "Origin: HTTP://LOCALHOST:8080\r\n") == 101
    assert status_of(server, "/echo", "Origin: https://evil.example\r\n") == 403
    assert status_of(server, "/echo") == 403, "no Origin is refused unless \"none\" is listed"
    assert status_of(server, "/echo_noext") == 101
    assert status_of(server, "/echo_noext", "Origin: http://localhost:8080\r\n") == 403
    assert status_of(server, "/close", "Origin: https://anything.example\r\n") == 101
    assert "Origin https://evil.example is not in SwiftWebSocketAllowedOrigins" in server.error_log


@pytest.mark.parametrize("value", ["https://app.example/", "app.example", "https://"])
def test_bad_origin_stops_startup(tmp_path_factory, value):
    assert f"\"{value}\" is not an origin" in refused_startup(
        tmp_path_factory, f"SwiftWebSocketAllowedOrigins {value}\n")


# ---- Per-directory limits ----

def test_max_message_size_per_location(server_with):
    server = server_with(extra_conf="<Location /echo_noext>\n SwiftWebSocketMaxMessageSize 10\n</Location>\n")
    ws = RawWebSocket(server.port, "/echo_noext")
    ws.send(frame(0x1, b"x" * 11))
    assert ws.read_close() == 1009
    ws.close()
    ws = RawWebSocket(server.port, "/echo")
    ws.send(frame(0x1, b"x" * 11))
    assert ws.read_frame() == (True, 0x1, b"x" * 11)
    ws.close()


@pytest.mark.parametrize("directive,value", [
    ("SwiftWebSocketPingInterval", "soon"), ("SwiftWebSocketPingInterval", "-1"),
    ("SwiftWebSocketPingTimeout", "0"), ("SwiftWebSocketIdleTimeout", "5 parsecs"),
])
def test_bad_durations_stop_startup(tmp_path_factory, directive, value):
    assert f"{directive}: \"{value}\" is not a time" in refused_startup(
        tmp_path_factory, f"{directive} \"{value}\"\n")


# ---- Where handlers come from ----

@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """root/{public,private}/echo_wsh.so and a handler outside the root."""
    root = tmp_path_factory.mktemp("root")
    outside = tmp_path_factory.mktemp("outside")
    for directory in ("public", "private"):
        (root / directory).mkdir()
        shutil.copy(TOP / "examples/echo_wsh.so", root / directory / "echo_wsh.so")
    shutil.copy(TOP / "examples/echo_wsh.so", outside / "far_wsh.so")
    os.symlink(outside / "far_wsh.so", root / "public/far_wsh.so")
    return root


def test_handler_scan_loads_only_that_directory(server_with, tree):
    server = server_with(handler_root=tree, extra_conf="SwiftWebSocketHandlerScan public\n")
    assert echoes(server.port, "/public/echo")
    assert status_of(server, "/private/echo") == 404


def test_handler_scan_outside_the_root_stops_startup(tmp_path_factory, tree):
    message = refused_startup(tmp_path_factory, f"SwiftWebSocketHandlerScan {TOP}\n", handler_root=tree)
    assert "is not inside the handler root" in message


def test_handlers_outside_root_load_with_the_directive(server_with, tree):
    # Without it they are refused: test_configuration.py's mixed root.
    relaxed = server_with(handler_root=tree, extra_conf="SwiftWebSocketAllowHandlersOutsideRoot On\n")
    assert echoes(relaxed.port, "/public/far")


def test_handler_map_aliases_paths(server_with, tree, tmp_path):
    handler_map = tmp_path / "map"
    handler_map.write_text("# alias existing\n/talk /public/echo\n\n/nowhere /no/such/handler\n")
    server = server_with(handler_root=tree, extra_conf=f"SwiftWebSocketHandlerMap {handler_map}\n")
    assert echoes(server.port, "/talk")
    assert echoes(server.port, "/public/echo")
    assert status_of(server, "/nowhere") == 404
    assert f"SwiftWebSocketHandlerMap {handler_map} line 4: no handler serves /no/such/handler" in server.error_log


def test_malformed_handler_map_stops_startup(tmp_path_factory, tree, tmp_path):
    handler_map = tmp_path / "map"
    handler_map.write_text("/talk /public/echo\njust-one-word\n")
    message = refused_startup(tmp_path_factory, f"SwiftWebSocketHandlerMap {handler_map}\n", handler_root=tree)
    assert f"SwiftWebSocketHandlerMap {handler_map} line 2: expected" in message


# ---- apachectl graceful ----

def test_graceful_restart_loads_added_and_changed_handlers(server_with, tmp_path):
    root = tmp_path / "handlers"
    build_handler(TOP / "examples/echo_wsh.swift", root, "thing_wsh.swift")
    server = server_with(handler_root=root)
    assert echoes(server.port, "/thing")
    assert status_of(server, "/added") == 404

    shutil.copy(TOP / "examples/echo_wsh.so", root / "added_wsh.so")
    # The same path rebuilt from another source: it now answers a close.
    build_handler(TOP / "examples/close_wsh.swift", root, "thing_wsh.swift")
    server.graceful()
    # The old child may still take a connection or two while it hands over.
    deadline = time.monotonic() + 10
    while status_of(server, "/added") != 101:
        assert time.monotonic() < deadline, "the new generation never served /added"
        time.sleep(0.1)
    assert echoes(server.port, "/added")
    ws = RawWebSocket(server.port, "/thing")
    ws.send(frame(0x1, b"4000 changed"))
    assert ws.read_close() == 4000
    ws.close()
    assert "reloaded changed WebSocket handler" in server.error_log
