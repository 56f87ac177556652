"""Event-style handlers on the event MPM: connections wait in the MPM with
no thread between messages (CONN_STATE_ASYNC_WAITIO) and come back through
process_connection. The example /echo and /chat are event-style. Proof of
parking: far more open connections than the child has threads, all served."""

import asyncio
import socket
import time

import pytest
from websockets.asyncio.client import connect

from conftest import Usage
from rawws import RawWebSocket, frame

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
"""
CONNECTIONS = 200


def run(coroutine):
    return asyncio.run(coroutine)


async def open_many(url, count):
    return await asyncio.gather(*(connect(url, open_timeout=20, ping_interval=None) for _ in range(count)))


async def close_all(sockets):
    await asyncio.gather(*(ws.close() for ws in sockets))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from conftest import serve
    yield from serve(tmp_path_factory, extra_conf=FEW_THREADS)


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
    # 4 workers, the listener, the child's main thread; nothing per connection.
    assert threads <= 8, f"{threads} threads for {CONNECTIONS} connections"


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
