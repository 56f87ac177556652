"""Event-style handlers on the event MPM: connections wait in the MPM with
no thread between messages (CONN_STATE_ASYNC_WAITIO) and come back through
process_connection. The example /echo and /chat are event-style. Proof of
parking: far more open connections than the child has threads, all served.

The rest of the suite runs against the parked /echo too: frames, deflate,
limits, keepalive pings (test_keepalive), faults, graceful restart and
graceful-stop with 500 connections (test_faults), Autobahn."""

import asyncio
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from conftest import Usage, serve
from rawws import RawWebSocket, echoes, frame

# One child of 4 worker threads; AsyncRequestWorkerFactor lets it hold
# 4 + 4 x 100 connections.
FEW_THREADS = """
StartServers 1
ServerLimit 1
ThreadsPerChild 4
MaxRequestWorkers 4
MinSpareThreads 1
MaxSpareThreads 4
AsyncRequestWorkerFactor 100
<Location /chat>
    SwiftWebSocketOutboxSize 262144
</Location>
"""
CONNECTIONS = 200
# The module's debug lines say which connections parked.
DEBUG_LOG = "LogLevel warn swiftwebsocket:debug\n"


def run(coroutine):
    return asyncio.run(coroutine)


async def open_many(url, count):
    return await asyncio.gather(*(connect(url, open_timeout=20, ping_interval=None) for _ in range(count)))


async def close_all(sockets):
    await asyncio.gather(*(ws.close() for ws in sockets))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from serve(tmp_path_factory, extra_conf=FEW_THREADS + DEBUG_LOG)


def child_threads(server):
    return sum(threads for pid, (fds, threads, rss) in Usage(server).by_pid.items() if pid in server.children())


def test_more_open_connections_than_threads_all_echo(server):
    async def scenario():
        sockets = await open_many(server.url("/echo"), CONNECTIONS)
        threads = child_threads(server)
        # Twice round: every connection has parked and come back.
        for round_ in range(2):
            await asyncio.gather(*(ws.send(f"{i} {round_}") for i, ws in enumerate(sockets)))
            replies = await asyncio.gather(*(asyncio.wait_for(ws.recv(), 10) for ws in sockets))
            assert replies == [f"{i} {round_}" for i in range(CONNECTIONS)]
        await close_all(sockets)
        return threads
    threads = run(scenario())
    # 4 workers, the listener, the deadline thread, the child's main thread;
    # nothing per connection.
    assert threads <= 8, f"{threads} threads for {CONNECTIONS} connections"
    assert server.error_log.count("WebSocket parked in the MPM") >= CONNECTIONS


def test_broadcast_reaches_every_parked_member(server):
    async def scenario():
        members = await open_many(server.url("/chat"), CONNECTIONS)
        await asyncio.sleep(0.2)  # every member has joined (onOpen) by its 101
        await members[0].send("to everyone")
        received = await asyncio.gather(*(asyncio.wait_for(ws.recv(), 10) for ws in members))
        await close_all(members)
        return received
    assert run(scenario()) == ["to everyone"] * CONNECTIONS


def test_closes_carry_the_clients_code_and_the_connection_ends(server):
    ws = RawWebSocket(server.port, "/echo")
    ws.send(frame(0x8, (4001).to_bytes(2, "big") + b"bye"))
    assert ws.read_frame() == (True, 0x8, (4001).to_bytes(2, "big"))
    assert ws.at_eof()


def test_a_reader_that_does_not_keep_up_is_closed_with_1008_and_never_slows_the_sender(server):
    """A chat member that stops reading: once more than the outbox
    (SwiftWebSocketOutboxSize, 256 KiB here) waits for it beyond what the
    socket holds, it is closed with 1008; the sender's own messages keep
    coming back meanwhile."""
    stalled = RawWebSocket(server.port, "/chat", timeout=30)
    # Under FlushMaxThreshold (64 KiB): a parked connection's writes then
    # never wait for the socket (see README, "Parked connections").
    message = "x" * 16384

    async def talk():
        async with connect(server.url("/chat"), max_size=None, ping_interval=None) as sender:
            started = time.monotonic()
            for _ in range(1600):  # 26 MB, more than loopback buffers hold
                await sender.send(message)
                assert await asyncio.wait_for(sender.recv(), 10) == message
            return time.monotonic() - started
    assert run(talk()) < 30
    # Reading now: what was written before the overflow, then the close.
    while True:
        fin, opcode, payload = stalled.read_frame()
        if opcode == 0x8:
            break
    assert int.from_bytes(payload[:2], "big") == 1008
    stalled.close()
    assert "queued for a slow client; closing with 1008" in server.error_log


def test_idle_timeout_closes_a_parked_connection(server_with):
    server = server_with(extra_conf="SwiftWebSocketIdleTimeout 1\nSwiftWebSocketPingInterval 300ms\n")
    ws = RawWebSocket(server.port, "/echo")
    started = time.monotonic()
    while True:
        fin, opcode, payload = ws.read_frame()
        if opcode == 0x9:  # the keepalive pings reach it meanwhile
            ws.send(frame(0xA, payload))
            continue
        break
    assert opcode == 0x8 and int.from_bytes(payload[:2], "big") == 1001
    assert 0.9 < time.monotonic() - started < 3
    ws.send(frame(0x8, (1001).to_bytes(2, "big")))
    assert ws.at_eof()


def test_httpds_timeout_closes_a_parked_connection_with_1001(server_with):
    """No pings, and httpd's Timeout (the MPM's wait for a parked
    connection) passes: the pre_close_connection hook sends 1001."""
    server = server_with(extra_conf="Timeout 1\nSwiftWebSocketPingInterval 0\n")
    ws = RawWebSocket(server.port, "/echo", timeout=10)
    started = time.monotonic()
    assert ws.read_close() == 1001
    assert 0.9 < time.monotonic() - started < 5
    assert ws.at_eof()
    ws.close()
    assert "while waiting in the MPM; closing with 1001" in server.error_log


def test_graceful_restart_closes_parked_connections_with_1001(server_with):
    server = server_with(extra_conf=FEW_THREADS.replace("ServerLimit 1", "ServerLimit 2"))
    old_children = server.children()

    async def scenario():
        sockets = await open_many(server.url("/echo"), 100)
        server.graceful()
        codes = []
        for ws in sockets:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            codes.append(closed.value.rcvd.code if closed.value.rcvd else None)
        return codes
    assert run(scenario()) == [1001] * 100
    deadline = time.monotonic() + 10
    while server.children() & old_children:
        assert time.monotonic() < deadline, "the old generation did not exit"
        time.sleep(0.1)
    assert echoes(server.port)


def test_event_handlers_run_on_held_threads_on_the_worker_mpm(server_with):
    server = server_with(mpm="worker", extra_conf=DEBUG_LOG)

    async def scenario():
        async with connect(server.url("/chat")) as alice, connect(server.url("/chat")) as bob:
            # A member joins in onOpen, after its 101: on a busy machine
            # bob's thread may not have joined yet when alice's connect
            # returns.
            while server.error_log.count("joined the chat") < 2:
                await asyncio.sleep(0.05)
            await alice.send("hi bob")
            return await asyncio.wait_for(bob.recv(), 5), await asyncio.wait_for(alice.recv(), 5)
    assert run(scenario()) == ("hi bob", "hi bob")
    assert echoes(server.port)
    assert "served by handler_echo_wsh.Echo" in server.error_log
    assert "parked in the MPM" not in server.error_log


def test_event_handlers_run_on_the_prefork_mpm(server_with):
    # One connection per process: the chat room is per process, so echo only.
    server = server_with(mpm="prefork", extra_conf=DEBUG_LOG)
    assert echoes(server.port)
    assert "served by handler_echo_wsh.Echo" in server.error_log
    assert "parked in the MPM" not in server.error_log
