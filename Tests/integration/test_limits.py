"""The limits and timeouts a client meets, each set low by its directive in
one httpd, and the values that stop startup."""

import socket
import time

import pytest

from conftest import refused_startup, serve
from rawws import RawWebSocket, frame, upgrade_request

LIMITS_CONF = """
RequestReadTimeout header=1 body=1
<Location /echo>
    SwiftWebSocketMaxFrameSize 100
    SwiftWebSocketMaxFragments 3
</Location>
<Location /close>
    SwiftWebSocketCloseTimeout 1
    SwiftWebSocketPingInterval 0
</Location>
<Location /echo_noext>
    SwiftWebSocketWriteTimeout 1
    SwiftWebSocketPingInterval 0
</Location>
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from serve(tmp_path_factory, extra_conf=LIMITS_CONF)


def test_frame_over_max_frame_size_closes_1009(server):
    ws = RawWebSocket(server.port, "/echo")
    # A larger message is fine in frames under the limit.
    ws.send(frame(0x2, b"a" * 100, fin=False) + frame(0x0, b"b" * 100))
    assert ws.read_frame() == (True, 0x2, b"a" * 100 + b"b" * 100)
    ws.send(frame(0x2, b"c" * 101))
    assert ws.read_close() == 1009
    assert ws.at_eof()
    ws.close()
    assert "frame larger than the limit of 100 bytes" in server.error_log


def test_message_in_more_than_max_fragments_closes_1009(server):
    ws = RawWebSocket(server.port, "/echo")
    ws.send(frame(0x1, b"a", fin=False) + frame(0x0, b"b", fin=False) + frame(0x0, b"c"))
    assert ws.read_frame() == (True, 0x1, b"abc")
    ws.send(frame(0x1, b"", fin=False) + frame(0x0, b"", fin=False) + frame(0x0, b"", fin=False)
            + frame(0x0, b"", fin=False))
    assert ws.read_close() == 1009
    ws.close()
    assert "message in more than 3 frames" in server.error_log


def test_client_that_never_answers_our_close_is_dropped(server):
    ws = RawWebSocket(server.port, "/close")
    ws.send(frame(0x1, b"1000 bye"))
    assert ws.read_close() == 1000
    started = time.monotonic()
    assert ws.at_eof(), "dropped without our close frame"
    assert 0.5 < time.monotonic() - started < 4, "after SwiftWebSocketCloseTimeout (1 s), not the default 10 s"
    ws.close()
    assert "no close frame from the client within" in server.error_log


def test_client_that_stops_reading_is_dropped_after_the_write_timeout(server):
    requests_before = server.access_log.count("/echo_noext")
    ws = RawWebSocket(server.port, "/echo_noext")
    ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    # Echoes of these fill both directions' buffers: the server blocks
    # writing to a client that reads nothing.
    message = frame(0x2, b"x" * (1 << 20))
    ws.sock.settimeout(0.5)
    started = time.monotonic()
    try:
        for _ in range(16):
            ws.send(message)
    except (socket.timeout, ConnectionError):
        pass  # the server stopped reading too: it is blocked in a write
    server.wait_for_access_log("/echo_noext", more_than=requests_before, timeout=8)
    assert time.monotonic() - started < 6, "after SwiftWebSocketWriteTimeout (1 s), not the default 30 s"
    ws.close()
    assert "connection I/O failed: write failed" in server.error_log


def test_trickled_handshake_gets_408_from_request_read_timeout(server):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    request = upgrade_request("/echo")
    sock.sendall(request[:20])
    started = time.monotonic()
    answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:40]
    assert time.monotonic() - started < 3
    sock.close()


def test_request_read_timeout_ends_with_the_upgrade(server):
    # RequestReadTimeout (1 s here) bounds the handshake only: a WebSocket
    # quiet for longer still works.
    ws = RawWebSocket(server.port, "/echo_noext")
    time.sleep(2)
    ws.send(frame(0x1, b"after 2 s"))
    assert ws.read_frame() == (True, 0x1, b"after 2 s")
    ws.close()


@pytest.mark.parametrize("directive,value,complaint", [
    ("SwiftWebSocketMaxFrameSize", "0", "is not a whole number from 1"),
    ("SwiftWebSocketMaxFragments", "-5", "is not a whole number from 1"),
    ("SwiftWebSocketMaxFragments", "many", "is not a whole number from 1"),
    ("SwiftWebSocketCloseTimeout", "0", "is not a time"),
    ("SwiftWebSocketWriteTimeout", "soon", "is not a time"),
])
def test_bad_limits_stop_startup(tmp_path_factory, directive, value, complaint):
    assert f"{directive}: \"{value}\" {complaint}" in refused_startup(tmp_path_factory, f"{directive} {value}\n")
