"""Faults against a real httpd: clients that vanish at every stage, handlers
that misbehave, restarts and child recycling with connections open. After
each, the same processes hold no more descriptors and as many threads as
before, RSS grew within a stated bound, and nothing crashed; across a
restart, the new generation looks like the old one did."""

import asyncio
import socket
import subprocess
import time
import zlib

import pytest
from websockets.asyncio.client import connect

from conftest import (APACHE, TEST_HANDLERS, TOP, assert_back_to_baseline, build_handler, echo_roundtrip, run,
                      serve, settled_usage)
from rawws import RawWebSocket, echoes, frame, upgrade_request

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


def compressed(data):
    compressor = zlib.compressobj(wbits=-15)
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


# Half of a compressed message's payload: the inflater is mid-stream when
# the client goes.
HALF_COMPRESSED = (lambda payload: payload[: len(payload) // 2])(compressed(b"compress me " * 20_000))


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
    ws.send(frame(0x1, HALF_COMPRESSED, fin=False, rsv=4))
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


# Enough rounds that a leak of a few KiB per connection (an inflater, a
# read buffer) passes the RSS bound; the warm-up first gives every worker
# thread its first connection.
WARM_UP_ROUNDS, ROUNDS, RSS_GROWTH_KIB = 100, 300, 4096


@pytest.mark.parametrize("vanish", [vanish_mid_handshake, vanish_mid_frame, vanish_mid_compressed_message,
                                    vanish_mid_close, vanish_with_unread_replies])
def test_client_vanishing(server, vanish):
    for _ in range(WARM_UP_ROUNDS):
        vanish(server)
    baseline = settled_usage(server)
    for _ in range(ROUNDS):
        vanish(server)
    assert echoes(server.port)
    assert_back_to_baseline(server, baseline, RSS_GROWTH_KIB)


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
    for _ in range(WARM_UP_ROUNDS):
        assert misbehave(server, command)[0] == code
    baseline = settled_usage(server)
    for _ in range(ROUNDS):
        assert misbehave(server, command)[0] == code
    assert_back_to_baseline(server, baseline, RSS_GROWTH_KIB)


def test_handler_blocking_past_the_close_timeout_answers_the_close_when_it_returns(server):
    # The client's close waits in the socket while the handler blocks for
    # longer than the close timeout (1 s); the reply goes out when it returns.
    ws = RawWebSocket(server.port, "/misbehaving", timeout=10)
    started = time.monotonic()
    ws.send(frame(0x1, b"sleep 3") + frame(0x8, (4000).to_bytes(2, "big")))
    assert ws.read_close() == 4000, "the reply to the client's close, not a close of the server's own"
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


def assert_new_generation_like_the_old(server, baseline):
    """After a restart the processes are new: they hold as many descriptors
    and threads in all as the old ones did (RSS says nothing here: the new
    ones have served nothing yet)."""
    deadline = time.monotonic() + 10
    while settled_usage(server).totals()[:2] != baseline.totals()[:2]:
        assert time.monotonic() < deadline, f"{settled_usage(server).totals()} against {baseline.totals()}"
        time.sleep(0.2)
    server.assert_no_crash()


def test_graceful_restart_with_500_open_connections(server_with, root):
    server = server_with(handler_root=root, extra_conf=MANY_CONF)
    baseline = settled_usage(server)
    old = server.children()

    async def go():
        connections = await open_connections(server, OPEN_CONNECTIONS)
        restart = asyncio.get_running_loop().run_in_executor(None, server.graceful)
        codes = await close_codes(connections)
        await restart
        return codes, await echo_roundtrip(server.url("/echo"), "new")
    codes, reply = run(go(), timeout=120)
    assert codes == [1001] * OPEN_CONNECTIONS
    assert reply == "new", "served by the new generation meanwhile"
    wait_for_exit(server, old)
    assert_new_generation_like_the_old(server, baseline)


def test_graceful_stop_with_500_open_connections(server_with, root):
    server = server_with(handler_root=root, extra_conf=MANY_CONF)
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


def test_max_connections_per_child_recycles_a_child_with_open_connections(server_with, root):
    # One child at first, retired after 8 connections: run-httpd's readiness
    # probe, then the first 7 WebSockets, which close with 1001. The next
    # ones wait for its successor and stay open.
    server = server_with(handler_root=root,
                         extra_conf="MaxConnectionsPerChild 8\nMinSpareThreads 1\nMaxSpareThreads 128\n")
    baseline = settled_usage(server)
    first = server.children()
    assert len(first) == 1

    async def go():
        connections = await open_connections(server, 12)
        codes = await close_codes(connections[:7])
        for ws in connections[7:]:
            await ws.send("open")
            assert await asyncio.wait_for(ws.recv(), 5) == "open"
            await ws.close()
        return codes
    assert run(go(), timeout=60) == [1001] * 7
    wait_for_exit(server, first)
    assert run(echo_roundtrip(server.url("/echo"), "new")) == "new"
    assert_new_generation_like_the_old(server, baseline)
