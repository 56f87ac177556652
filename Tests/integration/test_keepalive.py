"""Keepalive pings, the idle timeout, and closing on a graceful restart:
raw sockets, so the test decides when (and whether) to answer."""

import time

import pytest

from conftest import serve
from rawws import RawWebSocket, frame

KEEPALIVE_CONF = """
SwiftWebSocketPingInterval 300ms
SwiftWebSocketPingTimeout 500ms
<Location /echo_noext>
    SwiftWebSocketPingInterval 200ms
    SwiftWebSocketIdleTimeout 1
</Location>
<Location /close>
    SwiftWebSocketPingInterval 0
</Location>
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from serve(tmp_path_factory, extra_conf=KEEPALIVE_CONF)


def test_silent_peer_is_pinged_then_closed_with_1011(server):
    ws = RawWebSocket(server.port, "/echo")
    started = time.monotonic()
    fin, opcode, payload = ws.read_frame()
    assert opcode == 0x9 and payload == b"swiftwebsocket-keepalive"
    assert 0.2 < time.monotonic() - started < 2
    assert ws.read_close() == 1011
    assert 0.6 < time.monotonic() - started < 3
    assert ws.at_eof()
    ws.close()
    assert "no answer to a keepalive ping" in server.error_log


def test_answered_pings_keep_the_connection(server):
    ws = RawWebSocket(server.port, "/echo")
    deadline = time.monotonic() + 2
    pings = 0
    while time.monotonic() < deadline:
        fin, opcode, payload = ws.read_frame()
        assert opcode == 0x9
        ws.send(frame(0xA, payload))
        pings += 1
    assert pings >= 4
    ws.send(frame(0x1, b"still here"))
    while True:
        fin, opcode, payload = ws.read_frame()
        if opcode != 0x9:
            break
    assert (opcode, payload) == (0x1, b"still here")
    ws.close()


def test_idle_timeout_closes_with_1001_despite_pongs(server):
    ws = RawWebSocket(server.port, "/echo_noext")
    started = time.monotonic()
    while True:
        fin, opcode, payload = ws.read_frame()
        if opcode == 0x9:
            ws.send(frame(0xA, payload))
            continue
        break
    assert opcode == 0x8 and int.from_bytes(payload[:2], "big") == 1001
    assert payload[2:] == b"idle timeout"
    assert 0.8 < time.monotonic() - started < 3
    ws.close()


def test_no_pings_where_turned_off(server):
    ws = RawWebSocket(server.port, "/close", timeout=1.5)
    with pytest.raises(TimeoutError):
        ws.read_frame()
    ws.close()


def test_graceful_restart_closes_open_connections_with_1001(server):
    ws = RawWebSocket(server.port, "/close")  # no pings to get in the way
    server.graceful()
    fin, opcode, payload = ws.read_frame()
    assert opcode == 0x8 and int.from_bytes(payload[:2], "big") == 1001
    ws.close()
