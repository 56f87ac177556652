"""Faults against a real httpd: clients that vanish at every stage, handlers
that misbehave, restarts and child recycling with connections open. After
each, httpd's descriptors and threads are back to their baseline, RSS has
grown by at most 16 MiB, and nothing crashed."""

import asyncio
import socket
import subprocess
import time
import zlib

import pytest
from websockets.asyncio.client import connect

from conftest import (APACHE, TEST_HANDLERS, TOP, assert_back_to_baseline, build_handler, run, serve,
                      settled_usage, start_httpd)
from rawws import RawWebSocket, frame, upgrade_request

FAULTS_CONF = """
<Location /misbehaving>
    SwiftWebSocketCloseTimeout 1
    SwiftWebSocketPingInterval 0
</Location>
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("handlers")
    build_handler(TEST_HANDLERS / "misbehaving_wsh.swift", root)
    build_handler(TOP / "examples/echo_wsh.swift", root)
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory, root):
    yield from serve(tmp_path_factory, handler_root=root, extra_conf=FAULTS_CONF)


def echo_works(server):
    ws = RawWebSocket(server.port, "/echo")
    ws.send(frame(0x1, b"still here"))
    ok = ws.read_frame() == (True, 0x1, b"still here")
    ws.close()
    return ok


def compressed(data):
    compressor = zlib.compressobj(wbits=-15)
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


def vanish_mid_handshake(server):
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(upgrade_request("/echo")[:40])
    sock.close()


def vanish_mid_frame(server):
    ws = RawWebSocket(server.port, "/echo")
    ws.send(frame(0x2, b"x" * 100_000)[:50_000])
    ws.close()


def vanish_mid_compressed_message(server):
    ws = RawWebSocket(server.port, "/echo", extra="Sec-WebSocket-Extensions: permessage-deflate\r\n")
    assert "permessage-deflate" in ws.headers["sec-websocket-extensions"]
    payload = compressed(b"compress me " * 20_000)
    ws.send(frame(0x1, payload[: len(payload) // 2], fin=False, rsv=4))
    ws.close()


def vanish_mid_close(server):
    ws = RawWebSocket(server.port, "/echo")
    ws.send(frame(0x8, (1000).to_bytes(2, "big"))[:3])
    ws.close()


def vanish_with_unread_replies(server):
    ws = RawWebSocket(server.port, "/echo")
    for _ in range(20):
        ws.send(frame(0x2, b"y" * 65536))
    ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    ws.close()  # a reset, with the echoes unread


@pytest.mark.parametrize("vanish", [vanish_mid_handshake, vanish_mid_frame, vanish_mid_compressed_message,
                                    vanish_mid_close, vanish_with_unread_replies])
def test_client_vanishing(server, vanish):
    vanish(server)  # warm up: threads, buffers
    baseline = settled_usage(server)
    for _ in range(20):
        vanish(server)
    assert echo_works(server)
    assert_back_to_baseline(server, baseline)


def misbehave(server, command, answer_close=True):
    """Sends the misbehaving handler its command; returns the close code
    the server sent (None when it sent none) and the seconds until the
    connection ended."""
    ws = RawWebSocket(server.port, "/misbehaving", timeout=10)
    started = time.monotonic()
    ws.send(frame(0x1, command.encode()))
    try:
        code = ws.read_close()
    except EOFError:
        code = None
    if code is not None and answer_close:
        ws.send(frame(0x8, code.to_bytes(2, "big")))
    assert ws.at_eof()
    ws.close()
    return code, time.monotonic() - started


@pytest.mark.parametrize("command, code", [("throw", 1011), ("return", 1000)])
def test_handler_that_throws_or_returns_without_closing(server, command, code):
    # A handler that throws closes with 1011; one that returns without
    # closing, with 1000.
    assert misbehave(server, command)[0] == code
    baseline = settled_usage(server)
    for _ in range(10):
        assert misbehave(server, command)[0] == code
    assert_back_to_baseline(server, baseline)


def test_handler_blocking_past_the_close_timeout_answers_the_close_when_it_returns(server):
    # The client's close waits in the socket while the handler blocks for
    # longer than the close timeout (1 s); the reply goes out when it returns.
    ws = RawWebSocket(server.port, "/misbehaving", timeout=10)
    started = time.monotonic()
    ws.send(frame(0x1, b"sleep 3") + frame(0x8, (1000).to_bytes(2, "big")))
    assert ws.read_close() == 1000
    assert 2.5 < time.monotonic() - started < 4.5
    assert ws.at_eof()
    ws.close()
    server.assert_no_crash()


def test_handler_blocking_after_an_unanswered_close_waits_the_close_timeout_once(server):
    # close() gives up on the client's reply after the close timeout (1 s);
    # the handler then blocks 3 s, and finishing does not wait again.
    code, seconds = misbehave(server, "close-then-sleep 3", answer_close=False)
    assert code == 1001
    assert 3.5 < seconds < 4.8
    server.assert_no_crash()


# ---- Restarts and recycling with connections open ----

MANY_CONF = """
ServerLimit 4
ThreadLimit 600
ThreadsPerChild 600
MaxRequestWorkers 2400
MinSpareThreads 1
MaxSpareThreads 1200
SwiftWebSocketPingInterval 0
"""

OPEN_CONNECTIONS = 500


def children(server):
    parent = (server.state / "httpd.pid").read_text().strip()
    return set(server.pids()) - {parent}


async def open_connections(server, count):
    connections = []
    for _ in range(count):
        connections.append(await connect(server.url("/echo"), ping_interval=None, open_timeout=30))
    return connections


async def close_codes(connections, timeout=30):
    async def code(ws):
        await asyncio.wait_for(ws.wait_closed(), timeout)
        return ws.close_code
    return await asyncio.gather(*(code(ws) for ws in connections))


def wait_for_exit(server, pids, timeout=20):
    deadline = time.monotonic() + timeout
    while set(server.pids()) & pids:
        assert time.monotonic() < deadline, f"old processes still running: {set(server.pids()) & pids}"
        time.sleep(0.1)


async def echo_once(server):
    async with connect(server.url("/echo"), open_timeout=30) as ws:
        await ws.send("new")
        return await ws.recv()


def test_graceful_restart_with_500_open_connections(tmp_path_factory, root):
    server = start_httpd(tmp_path_factory, handler_root=root, extra_conf=MANY_CONF)
    try:
        baseline = settled_usage(server)
        old = children(server)

        async def go():
            connections = await open_connections(server, OPEN_CONNECTIONS)
            restart = asyncio.get_running_loop().run_in_executor(None, server.graceful)
            codes = await close_codes(connections)
            await restart
            return codes, await echo_once(server)
        codes, reply = run(go(), timeout=120)
        assert codes == [1001] * OPEN_CONNECTIONS
        assert reply == "new", "served by the new generation meanwhile"
        wait_for_exit(server, old)
        assert_back_to_baseline(server, baseline)
    finally:
        server.stop()


def test_graceful_stop_with_500_open_connections(tmp_path_factory, root):
    server = start_httpd(tmp_path_factory, handler_root=root, extra_conf=MANY_CONF)
    try:
        everything = set(server.pids())

        async def go():
            connections = await open_connections(server, OPEN_CONNECTIONS)
            stop = asyncio.get_running_loop().run_in_executor(None, lambda: subprocess.run(
                [APACHE, "-f", str(server.conf), "-k", "graceful-stop"], check=True, capture_output=True))
            codes = await close_codes(connections)
            await stop
            return codes
        codes = run(go(), timeout=120)
        assert codes == [1001] * OPEN_CONNECTIONS
        wait_for_exit(server, everything)
        server.assert_no_crash()
    finally:
        server.stop()


def test_max_connections_per_child_recycles_a_child_with_open_connections(tmp_path_factory, root):
    server = start_httpd(tmp_path_factory, handler_root=root,
                         extra_conf="MaxConnectionsPerChild 8\nMinSpareThreads 1\nMaxSpareThreads 128\n")
    try:
        baseline = settled_usage(server)
        first = children(server)

        async def go():
            connections = await open_connections(server, 12)
            # The child that reached 8 connections retires: its WebSockets
            # close with 1001; the others stay open and echo.
            await asyncio.sleep(1)
            closed = [ws for ws in connections if ws.close_code is not None]
            still_open = [ws for ws in connections if ws.close_code is None]
            codes = [ws.close_code for ws in closed]
            for ws in still_open:
                await ws.send("open")
                assert await asyncio.wait_for(ws.recv(), 5) == "open"
                await ws.close()
            return codes
        codes = run(go(), timeout=60)
        assert codes and set(codes) == {1001}
        wait_for_exit(server, first)
        assert run(echo_once(server)) == "new"
        assert_back_to_baseline(server, baseline)
    finally:
        server.stop()
