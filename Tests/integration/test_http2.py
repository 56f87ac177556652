"""WebSockets over HTTP/2 (RFC 8441): mod_http2 with H2WebSockets on turns
an extended CONNECT into the upgrade our handlers serve, on run-httpd's TLS
port. The client is the `h2` package speaking extended CONNECT itself."""

import os
import struct
import time

import pytest

from conftest import cpu_seconds, serve
from h2ws import H2WebSocket
from rawws import frame


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from serve(tmp_path_factory, tls=True, extra_conf="""
<Location /echo_noext>
    SwiftWebSocketPingInterval 500ms
</Location>
""")


def test_server_offers_extended_connect_and_echoes(server):
    logged = server.access_log.count('"GET /echo HTTP/2.0" 101')
    ws = H2WebSocket(server.tls_port, "/echo")
    assert ws.connect_protocol_enabled
    assert ws.status == 200
    ws.send(frame(0x1, "über h2".encode()))
    assert ws.read_frame() == (True, 0x1, "über h2".encode())
    ws.send(frame(0x2, bytes(range(256))))
    assert ws.read_frame() == (True, 0x2, bytes(range(256)))
    ws.send(frame(0x8, struct.pack("!H", 1000) + b"bye"))
    assert ws.read_close() == 1000
    ws.close()
    server.wait_for_access_log('"GET /echo HTTP/2.0" 101', more_than=logged)


def test_large_message_crosses_flow_control_windows(server):
    # Far beyond HTTP/2's initial 64 KiB stream window, both ways.
    payload = os.urandom(2 * 1024 * 1024)
    ws = H2WebSocket(server.tls_port, "/echo", timeout=30)
    ws.send(frame(0x2, payload))
    assert ws.read_frame() == (True, 0x2, payload)
    ws.close()


def test_broadcast_reaches_a_quiet_stream(server):
    # The listener never sends: its thread must be woken for the broadcast
    # (it polls mod_http2's input pipe and its own wake descriptor).
    listener = H2WebSocket(server.tls_port, "/chat")
    listener.sock.settimeout(5)
    # The room includes the sender: its own message back means it joined.
    listener.send(frame(0x1, b"listener here"))
    assert listener.read_frame() == (True, 0x1, b"listener here")
    speaker = H2WebSocket(server.tls_port, "/chat")
    speaker.send(frame(0x1, b"hello room"))
    assert speaker.read_frame() == (True, 0x1, b"hello room")
    assert listener.read_frame() == (True, 0x1, b"hello room")
    listener.close()
    speaker.close()


def test_keepalive_ping_on_a_quiet_stream(server):
    ws = H2WebSocket(server.tls_port, "/echo_noext")
    ws.sock.settimeout(5)
    started = time.monotonic()
    fin, opcode, _ = ws.read_frame()
    assert (fin, opcode) == (True, 0x9)
    assert time.monotonic() - started < 3
    ws.close()


def test_quiet_stream_costs_no_cpu(server):
    # A thread that polled a pipe mod_http2 never drained would spin.
    ws = H2WebSocket(server.tls_port, "/echo")
    ws.send(frame(0x1, b"once"))
    assert ws.read_frame() == (True, 0x1, b"once")
    before = cpu_seconds(server.pids())
    time.sleep(2)
    assert cpu_seconds(server.pids()) - before < 0.2
    ws.close()


def test_reset_stream_ends_the_request(server):
    # The client cancels the stream (RST_STREAM) without a close frame:
    # the parked thread is woken and the request ends (well before the
    # 20 s keepalive ping would find the stream gone).
    ws = H2WebSocket(server.tls_port, "/close")
    ws.conn.reset_stream(ws.stream_id)
    ws._flush()
    server.wait_for_access_log('"GET /close HTTP/2.0" 101')
    ws.close()


def test_protocol_error_closes_1002(server):
    ws = H2WebSocket(server.tls_port, "/echo")
    ws.send(frame(0x1, b"unmasked", mask=False))
    assert ws.read_close() == 1002
    ws.close()
    assert "closing with 1002: client frame not masked" in server.error_log


def test_unknown_resource_is_404(server):
    ws = H2WebSocket(server.tls_port, "/no/such/handler")
    assert ws.status == 404
    ws.close()


def test_refusing_handler_status_passes_through(server):
    ws = H2WebSocket(server.tls_port, "/abort_handshake")
    assert ws.status == 403
    assert ws.response_headers["cache-control"] == "no-store"
    ws.close()


def test_graceful_restart_closes_streams_with_1001(server):
    # Last in this module: it restarts the server. The stream's thread is
    # parked on mod_http2's pipe and must be woken for the 1001.
    ws = H2WebSocket(server.tls_port, "/echo")
    ws.sock.settimeout(10)
    server.graceful()
    assert ws.read_close() == 1001
    ws.close()


def test_an_async_handler_echoes_over_http2(server):
    # On an HTTP/2 stream the async handler's task runs beside a held
    # thread; a message past the stream window waits on flow control.
    payload = os.urandom(1024 * 1024)
    ws = H2WebSocket(server.tls_port, "/echo_async", timeout=30)
    ws.send(frame(0x1, "über h2".encode()))
    assert ws.read_frame() == (True, 0x1, "über h2".encode())
    ws.send(frame(0x2, payload))
    assert ws.read_frame() == (True, 0x2, payload)
    ws.send(frame(0x8, struct.pack("!H", 1000)))
    assert ws.read_close() == 1000
    ws.close()
