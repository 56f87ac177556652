"""Async handlers (AsyncWebSocketHandler): the example /echo_async and
/ticker, and a test handler whose first message says what it does
(handlers/async_behaviours_wsh.swift). On the event MPM their connections
park as event-style ones do while the handler's task awaits."""

import asyncio
import threading
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from conftest import TEST_HANDLERS, TOP, Usage, build_handler, serve
from rawws import RawWebSocket, echoes, frame

SIXTEEN_WORKERS = """
StartServers 1
ServerLimit 1
ThreadsPerChild 16
MaxRequestWorkers 16
MinSpareThreads 16
MaxSpareThreads 16
AsyncRequestWorkerFactor 200
ListenBacklog 4096
"""
# A small outbox (its high-water mark is half) so that what waits for a
# client that does not read is small beside the child's memory; a short
# close timeout for the watch on handlers that ignore cancellation.
ASYNC_CONF = """
LogLevel warn swiftwebsocket:debug
SwiftWebSocketCloseTimeout 1
<Location /async_behaviours>
    SwiftWebSocketOutboxSize 1048576
</Location>
"""
CHUNK = 64 * 1024


def run(coroutine, timeout=120):
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("handlers")
    for source in (TOP / "examples/echo_async_wsh.swift", TOP / "examples/ticker_wsh.swift",
                   TEST_HANDLERS / "async_behaviours_wsh.swift"):
        build_handler(source, root)
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory, root):
    yield from serve(tmp_path_factory, handler_root=root, extra_conf=SIXTEEN_WORKERS + ASYNC_CONF)


def child_threads(server):
    return sum(threads for pid, (fds, threads, rss) in Usage(server).by_pid.items() if pid in server.children())


def child_rss_kib(server):
    return sum(rss for pid, (fds, threads, rss) in Usage(server).by_pid.items() if pid in server.children())


def zero_masked_frame(opcode, payload):
    """A client frame with the all-zero mask key: valid, and the payload
    needs no masking pass (Python's would take most of the test's time)."""
    header = frame(opcode, payload, mask=False)[:-len(payload)]
    return bytes([header[0], header[1] | 0x80]) + header[2:] + b"\0\0\0\0" + payload


def test_two_thousand_connections_echo_on_sixteen_workers(server):
    count = 2000

    async def scenario():
        sockets = []
        for _ in range(0, count, 200):
            sockets += await asyncio.gather(*(connect(server.url("/echo_async"), open_timeout=30, ping_interval=None)
                                              for _ in range(200)))
        threads = child_threads(server)
        await asyncio.gather(*(ws.send(f"hello {i}") for i, ws in enumerate(sockets)))
        replies = await asyncio.gather(*(asyncio.wait_for(ws.recv(), 30) for ws in sockets))
        assert replies == [f"hello {i}" for i in range(count)]
        await asyncio.gather(*(ws.close() for ws in sockets))
        return threads
    threads = run(scenario())
    # 16 workers, the listener, the deadline thread, the child's main
    # thread, the concurrency runtime's pool (one per core): nothing per
    # connection.
    assert threads < 40, f"{threads} threads for {count} connections"
    assert server.error_log.count("WebSocket parked in the MPM") >= count


def test_returning_closes_with_1000_and_throwing_with_1011_logged(server):
    async def close_code(command):
        async with connect(server.url("/async_behaviours")) as ws:
            await ws.send(command)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            return closed.value.rcvd.code
    assert run(close_code("return")) == 1000
    assert run(close_code("throw")) == 1011
    assert "AsyncBehaviours.handle threw Thrown(); closing with 1011" in server.error_log


def test_send_waits_for_a_client_that_stops_reading_and_resumes_when_it_reads(server):
    """1,000 messages of 64 KiB (64 MiB) to a client that reads nothing for
    3 s: the handler's send waits (past the 1 MiB outbox a thread's send
    would have closed the connection with 1008), the child's memory stays
    bounded, and every message arrives once the client reads."""
    before = child_rss_kib(server)
    ws = RawWebSocket(server.port, "/async_behaviours", timeout=30)
    ws.send(frame(0x1, b"flood 1000"))
    time.sleep(3)
    sent = [int(line.rsplit(" ", 1)[1]) for line in server.error_log.splitlines() if "flood sent" in line]
    assert sent, "the handler logged no progress"
    assert max(sent) < 1000, "the handler's sends did not wait"
    assert child_rss_kib(server) - before < 32 * 1024
    for _ in range(1000):
        assert ws.read_frame() == (True, 0x2, b"a" * CHUNK)
    assert ws.read_frame() == (True, 0x1, b"sent 1000")
    ws.close()


def test_a_handler_that_does_not_consume_stops_the_server_reading(server):
    """The handler takes no message for 4 s while the client sends 800 of
    64 KiB (50 MiB): the server stops reading after a few, so the client's
    writes block (TCP pushes back) well short of what it sends; then the
    handler catches up and echoes everything."""
    ws = RawWebSocket(server.port, "/async_behaviours", timeout=60)
    ws.send(frame(0x1, b"stall 4"))
    message = zero_masked_frame(0x2, b"b" * CHUNK)
    written = 0

    def write_all():
        nonlocal written
        for _ in range(800):
            ws.sock.sendall(message)
            written += 1
        ws.sock.sendall(frame(0x1, b"done"))
    writer = threading.Thread(target=write_all)
    writer.start()
    time.sleep(2)
    # Loopback's buffers hold some MiB each way; the handler's queue 64 KiB.
    assert written * CHUNK < 24 * 1024 * 1024, f"{written} messages written while the handler took none"
    for _ in range(800):
        assert ws.read_frame() == (True, 0x2, b"b" * CHUNK)
    assert ws.read_frame() == (True, 0x1, b"done")
    writer.join(10)
    ws.close()
    assert "stall over" in server.error_log


def test_the_task_is_cancelled_when_the_client_vanishes(server):
    before = server.error_log.count("task cancelled; close code none")
    ws = RawWebSocket(server.port, "/async_behaviours")
    ws.send(frame(0x1, b"wait"))
    time.sleep(0.3)
    ws.close()
    deadline = time.monotonic() + 10
    while server.error_log.count("task cancelled; close code none") == before:
        assert time.monotonic() < deadline, server.error_log[-3000:]
        time.sleep(0.05)


def test_a_handler_that_ignores_cancellation_is_logged_after_the_close_timeout(server):
    ws = RawWebSocket(server.port, "/async_behaviours")
    ws.send(frame(0x1, b"stubborn"))
    time.sleep(0.3)
    ws.close()
    deadline = time.monotonic() + 10
    while "AsyncBehaviours.handle still runs 1.0 seconds after its connection closed" not in server.error_log:
        assert time.monotonic() < deadline, server.error_log[-3000:]
        time.sleep(0.05)


def test_ticker_members_hear_every_second_without_a_thread_each(server):
    async def scenario():
        members = await asyncio.gather(*(connect(server.url("/ticker")) for _ in range(50)))
        ticks = await asyncio.gather(*(asyncio.wait_for(ws.recv(), 5) for ws in members))
        later = await asyncio.gather(*(asyncio.wait_for(ws.recv(), 5) for ws in members))
        await asyncio.gather(*(ws.close() for ws in members))
        return ticks, later
    ticks, later = run(scenario())
    assert all(tick.isdigit() for tick in ticks + later)
    assert all(int(b) > int(a) for a, b in zip(ticks, later))


def test_graceful_restart_cancels_the_task_and_closes_with_1001(server_with, root):
    server = server_with(handler_root=root, extra_conf=SIXTEEN_WORKERS.replace("ServerLimit 1", "ServerLimit 2")
                         + ASYNC_CONF)

    async def scenario():
        async with connect(server.url("/async_behaviours")) as ws:
            await ws.send("wait")
            await asyncio.sleep(0.3)
            server.graceful()
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            return closed.value.rcvd.code
    assert run(scenario()) == 1001
    assert "task cancelled" in server.error_log


@pytest.mark.parametrize("mpm", ["worker", "prefork"])
def test_async_handlers_run_on_held_threads_on_other_mpms(server_with, root, mpm):
    server = server_with(handler_root=root, mpm=mpm, extra_conf=ASYNC_CONF)
    assert echoes(server.port, "/echo_async")
    assert echoes(server.port, "/async_behaviours")
    assert 300_000 <= ping_round_trip_us(server.port, 0.3) < 1_300_000
    assert "parked in the MPM" not in server.error_log


def ping_round_trip_us(port, pong_delay):
    """Has the handler ping, answers after `pong_delay` seconds, and returns
    the round trip it measured."""
    ws = RawWebSocket(port, "/async_behaviours", timeout=10)
    ws.send(frame(0x1, b"ping"))
    fin, opcode, payload = ws.read_frame()
    assert (fin, opcode) == (True, 0x9)
    time.sleep(pong_delay)
    ws.send(frame(0xA, payload))
    fin, opcode, reply = ws.read_frame()
    ws.close()
    assert (fin, opcode) == (True, 0x1)
    return int(reply.decode().split()[2])


def test_ping_returns_the_round_trip_to_the_clients_pong(server):
    assert 500_000 <= ping_round_trip_us(server.port, 0.5) < 1_500_000
    assert ping_round_trip_us(server.port, 0) < 500_000


def test_a_streamed_message_goes_out_piece_by_piece_and_what_was_sent_meanwhile_follows(server):
    ws = RawWebSocket(server.port, "/async_behaviours", timeout=10)
    started = time.monotonic()
    ws.send(frame(0x1, b"stream 5"))
    assert ws.read_frame() == (False, 0x1, b"piece 0;")
    assert time.monotonic() - started < 0.5, "the first piece waited for the others"
    for index in range(1, 5):
        assert ws.read_frame() == (False, 0x0, f"piece {index};".encode())
    assert ws.read_frame() == (True, 0x0, b"")
    assert ws.read_frame() == (True, 0x1, b"overtaken")
    ws.close()


def test_a_streamed_message_whose_writer_throws_is_cut_by_a_1011(server):
    ws = RawWebSocket(server.port, "/async_behaviours", timeout=10)
    ws.send(frame(0x1, b"stream-throw"))
    assert ws.read_frame() == (False, 0x2, b"\x01\x02\x03")
    assert ws.read_close() == 1011
    ws.close()
    assert "a streamed message was left unfinished (Thrown()); closing with 1011" in server.error_log


def test_a_client_library_reassembles_a_streamed_message_compressed_too(server):
    async def scenario():
        async with connect(server.url("/async_behaviours"), compression="deflate") as ws:
            await ws.send("stream 3")
            return await asyncio.wait_for(ws.recv(), 10), await asyncio.wait_for(ws.recv(), 10)
    assert run(scenario()) == ("piece 0;piece 1;piece 2;", "overtaken")


def test_messages_before_a_violation_are_answered_before_the_1002(server):
    # One write: a message, then a frame with a reserved opcode. The
    # handler's echo comes from its task, after the driver read both: the
    # close waits for it, as a callback's answer would go first.
    ws = RawWebSocket(server.port, "/echo_async", timeout=10)
    ws.send(frame(0x1, b"before") + frame(0x3, b""))
    assert ws.read_frame() == (True, 0x1, b"before")
    assert ws.read_close() == 1002
    ws.close()
