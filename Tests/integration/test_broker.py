"""Named groups across httpd children and servers through a real Redis
(SwiftWebSocketBroker): the example /chat, a named group per room
(/chat?room=NAME), under Debian's stock event MPM sizes with 3 children."""

import asyncio
import re
import os
import signal
import time
import uuid

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from conftest import Httpd, module_status, refused_startup, run, serve, tls_client_context
from h2ws import H2WebSocket
from rawws import RawWebSocket
from redis_server import RedisServer

# Debian's apache2 mpm_event.conf, with 3 children started.
STOCK_EVENT = """
StartServers 3
ServerLimit 6
MinSpareThreads 25
MaxSpareThreads 75
ThreadLimit 64
ThreadsPerChild 25
MaxRequestWorkers 150
"""
# The chat logs each join at debug, with its process id.
DEBUG_LOG = "LogLevel warn swiftwebsocket:debug\n"
JOIN = re.compile(r"\[pid (\d+):tid \d+\].*joined the chat.* room=(\S+)")


def broker_conf(*redis_servers, prefix=None):
    conf = STOCK_EVENT + DEBUG_LOG + "SwiftWebSocketBroker " + " ".join(r.url for r in redis_servers) + "\n"
    return conf + (f"SwiftWebSocketBrokerPrefix {prefix}\n" if prefix else "")


@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path):
    """A Redis of the test's own, which it may stop."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory, redis):
    yield from serve(tmp_path_factory, extra_conf=broker_conf(redis))


def new_room():
    return "room-" + uuid.uuid4().hex[:8]


def processes_with_members(server, room):
    """The pids of the children that logged a member joining `room`."""
    return {pid for pid, joined in JOIN.findall(server.error_log) if joined == room}


async def join(url, count, **options):
    return await asyncio.gather(*(connect(url, open_timeout=20, ping_interval=None, max_size=None, **options)
                                  for _ in range(count)))


def wait_for_joins(server, room, count, timeout=10):
    """Waits until `count` members of `room` logged their join; returns the
    processes they are in."""
    deadline = time.monotonic() + timeout
    while sum(1 for _, joined in JOIN.findall(server.error_log) if joined == room) < count:
        assert time.monotonic() < deadline, f"fewer than {count} members joined {room}"
        time.sleep(0.05)
    return processes_with_members(server, room)


def wait_until_delivering(server, redis, room, count):
    """Waits until `count` members of `room` joined and every child holding
    them subscribed to the room's channel on `redis`; returns those children."""
    processes = wait_for_joins(server, room, count)
    redis.wait_for_subscribers(f"swiftws:{room}", len(processes))
    return processes


async def join_room(server, redis, room, count, **options):
    """`count` members of `room`, once every child holding them subscribed;
    returns them and those children."""
    members = await join(server.url(f"/chat?room={room}"), count, **options)
    return members, wait_until_delivering(server, redis, room, count)


async def receive(ws, count, timeout=10):
    return [await asyncio.wait_for(ws.recv(), timeout) for _ in range(count)]


async def close_all(sockets):
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


def test_sixty_members_over_three_children_receive_all_sixty_messages_in_one_order(server, redis):
    room = new_room()

    async def go():
        members, processes = await join_room(server, redis, room, 60)
        assert len(processes) >= 2, "the members should be spread over the children"
        await asyncio.gather(*(ws.send(f"message {i}") for i, ws in enumerate(members)))
        received = await asyncio.gather(*(receive(ws, 60) for ws in members))
        await close_all(members)
        return received

    received = run(go())
    assert sorted(received[0]) == sorted(f"message {i}" for i in range(60))
    assert all(messages == received[0] for messages in received), "members saw different orders"


def test_two_servers_sharing_one_redis_deliver_to_the_members_of_both(server, server_with, redis):
    other = server_with(extra_conf=broker_conf(redis))
    room = new_room()

    async def go():
        here = await join(server.url(f"/chat?room={room}"), 20)
        there = await join(other.url(f"/chat?room={room}"), 20)
        subscribed = len(wait_for_joins(server, room, 20)) + len(wait_for_joins(other, room, 20))
        redis.wait_for_subscribers(f"swiftws:{room}", subscribed)
        await here[0].send("from the first server")
        await there[0].send("from the second server")
        received = await asyncio.gather(*(receive(ws, 2) for ws in here + there))
        await close_all(here + there)
        return received

    for messages in run(go()):
        assert sorted(messages) == ["from the first server", "from the second server"]


def test_groups_spread_over_two_brokers_and_nothing_is_lost(server_with, redis, own_redis):
    server = server_with(extra_conf=broker_conf(redis, own_redis, prefix="spread:"))
    rooms = [new_room() for _ in range(16)]

    async def go():
        members = {room: await join(server.url(f"/chat?room={room}"), 3) for room in rooms}
        for room in rooms:
            wait_for_joins(server, room, 3)
        deadline = time.monotonic() + 10
        while (redis.channels("spread:*") | own_redis.channels("spread:*")) != {f"spread:{r}" for r in rooms}:
            assert time.monotonic() < deadline, "not every room was subscribed"
            await asyncio.sleep(0.05)
        for room in rooms:
            await members[room][0].send(f"hello {room}")
        for room in rooms:
            for ws in members[room]:
                assert await receive(ws, 1) == [f"hello {room}"]
        await close_all([ws for sockets in members.values() for ws in sockets])

    run(go())
    first, second = redis.channels("spread:*"), own_redis.channels("spread:*")
    # Unsubscribed as the last members left.
    assert not first and not second


def test_groups_land_on_both_brokers(server_with, redis, own_redis):
    server = server_with(extra_conf=broker_conf(redis, own_redis, prefix="land:"))
    rooms = [new_room() for _ in range(16)]

    async def go():
        members = [ws for room in rooms for ws in await join(server.url(f"/chat?room={room}"), 1)]
        for room in rooms:
            wait_for_joins(server, room, 1)
        deadline = time.monotonic() + 10
        while len(redis.channels("land:*")) + len(own_redis.channels("land:*")) < len(rooms):
            assert time.monotonic() < deadline, "not every room was subscribed"
            await asyncio.sleep(0.05)
        on_first, on_second = redis.channels("land:*"), own_redis.channels("land:*")
        await close_all(members)
        return on_first, on_second

    on_first, on_second = run(go())
    assert on_first and on_second, "16 groups should land on both brokers"
    assert not on_first & on_second
    assert on_first | on_second == {f"land:{room}" for room in rooms}


def test_redis_stopped_and_back(server_with, own_redis):
    server = server_with(extra_conf=broker_conf(own_redis))
    room = new_room()

    async def go():
        members, _ = await join_room(server, own_redis, room, 30)
        echo = await join(server.url("/echo"), 1)
        own_redis.stop()
        await asyncio.sleep(0.5)
        # Echo goes on, and a broadcast reaches the sender's own child.
        await echo[0].send("still echoing")
        assert await receive(echo[0], 1) == ["still echoing"]
        for i in range(3):
            await members[0].send(f"local {i}")
            assert await receive(members[0], 1, timeout=5) == [f"local {i}"]
        warnings = [line for line in server.error_log.splitlines() if "unreachable" in line]
        pids = [re.search(r"\[pid (\d+)", line).group(1) for line in warnings]
        assert warnings and len(pids) == len(set(pids)), "one warning per child and outage:\n" + "\n".join(warnings)

        own_redis.start()
        restarted = time.monotonic()
        # Every member receives a broadcast again within 5 s, httpd untouched.
        while True:
            assert time.monotonic() - restarted < 5, "cross-child delivery did not resume within 5 s"
            await asyncio.sleep(0.2)
            for ws in members:  # drop what reached only the sender's child
                while True:
                    try:
                        await asyncio.wait_for(ws.recv(), 0.01)
                    except asyncio.TimeoutError:
                        break
            marker = f"back {time.monotonic()}"
            await members[0].send(marker)
            got = await asyncio.gather(*(asyncio.wait_for(ws.recv(), 0.5) for ws in members),
                                       return_exceptions=True)
            if all(message == marker for message in got):
                break
        assert "reachable again" in server.error_log
        await close_all(members + echo)

    run(go(), timeout=60)


def test_a_stalled_redis_never_slows_echo_on_any_child(server_with, own_redis):
    server = server_with(extra_conf=broker_conf(own_redis))
    room = new_room()

    async def go():
        members, _ = await join_room(server, own_redis, room, 10)
        echoes = await join(server.url("/echo"), 30)
        served_by = {pid for pid in re.findall(r"\[pid (\d+):tid \d+\].*served by \S*Echo\b", server.error_log)}
        assert len(served_by) >= 2, "echo connections should be on several children"
        own_redis.pause()
        slowest = 0.0
        try:
            end = time.monotonic() + 3
            while time.monotonic() < end:
                await members[0].send("while redis is stopped")  # publishes pile up for the broker
                start = time.monotonic()
                await asyncio.gather(*(ws.send("ping") for ws in echoes))
                await asyncio.gather(*(ws.recv() for ws in echoes))
                slowest = max(slowest, time.monotonic() - start)
        finally:
            own_redis.resume()
        await close_all(members + echoes)
        return slowest

    slowest = run(go())
    assert slowest < 0.1, f"an echo round took {slowest * 1000:.0f} ms while Redis was stopped"


def test_a_killed_child_leaves_redis_and_the_others_keep_delivering(tmp_path_factory, redis):
    # Not through serve(): the killed child is in the error log on purpose.
    server = Httpd(tmp_path_factory.mktemp("httpd"), extra_conf=broker_conf(redis)).start()
    room = new_room()
    try:
        async def go():
            members, processes = await join_room(server, redis, room, 30)
            assert len(processes) >= 2
            victim = sorted(processes)[0]
            os.kill(int(victim), signal.SIGKILL)
            redis.wait_for_subscribers(f"swiftws:{room}", len(processes) - 1)
            # The members of the dead child see their connection end.
            alive = []
            for ws in members:
                try:
                    await asyncio.wait_for(await ws.ping(), 2)  # the pong
                    alive.append(ws)
                except (ConnectionClosed, asyncio.TimeoutError):
                    pass
            assert 0 < len(alive) < len(members)
            await alive[0].send("after the kill")
            for ws in alive:
                assert await receive(ws, 1) == ["after the kill"]
            await close_all(members)

        run(go())
    finally:
        server.stop()


def test_members_compressing_with_different_parameters_all_decode_every_broadcast(server, redis):
    # Each child compresses a broadcast once per parameter set and shares
    # it between its members; with context takeover each member's own
    # compressor must then start afresh.
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
    room = new_room()
    offers = [{}, {"compression": None, "extensions": [ClientPerMessageDeflateFactory(server_max_window_bits=10)]},
              {"compression": None, "extensions": [ClientPerMessageDeflateFactory(server_no_context_takeover=True)]},
              {"compression": None}]

    async def go():
        members = []
        for options in offers * 3:
            members += await join(server.url(f"/chat?room={room}"), 1, **options)
        wait_until_delivering(server, redis, room, len(members))
        sent = [f"round {i}: " + "compressible text, " * (20 + i) for i in range(5)]
        for message in sent:
            await members[0].send(message)
        received = await asyncio.gather(*(receive(ws, len(sent)) for ws in members))
        await close_all(members)
        return sent, received

    sent, received = run(go())
    assert all(messages == sent for messages in received)


def test_members_over_wss_and_http2_receive_and_a_stalled_reader_is_closed_with_1008(server_with, redis):
    server = server_with(tls=True, extra_conf=broker_conf(redis) + """
<Location /chat>
    SwiftWebSocketOutboxSize 262144
</Location>
""")
    room = new_room()
    # Under FlushMaxThreshold (64 KiB): a parked connection's writes then
    # never wait for the socket (see README, "Parked connections").
    message = "x" * 16384

    async def go():
        plain = await join(server.url(f"/chat?room={room}"), 3)
        secure = await join(server.wss_url(f"/chat?room={room}"), 3, ssl=tls_client_context())
        stream = H2WebSocket(server.tls_port, f"/chat?room={room}")
        assert stream.status == 200
        stalled = RawWebSocket(server.port, f"/chat?room={room}", timeout=30)  # never reads
        wait_until_delivering(server, redis, room, 8)
        await plain[0].send("to every kind of member")
        for ws in plain + secure:
            assert await receive(ws, 1) == ["to every kind of member"]
        assert stream.read_frame() == (True, 0x1, b"to every kind of member")
        stream.close()
        # 26 MB: far more than the stalled member's outbox and socket buffers.
        started = time.monotonic()
        for _ in range(1600):
            await plain[0].send(message)
            for ws in plain + secure:
                assert await receive(ws, 1) == [message]
        elapsed = time.monotonic() - started
        await close_all(plain + secure)
        return stalled, elapsed

    stalled, elapsed = run(go(), timeout=120)
    assert elapsed < 60
    assert stalled.read_close() == 1008
    stalled.close()
    assert "queued for a slow client; closing with 1008" in server.error_log


def test_a_message_on_our_channel_from_another_program_is_dropped_and_logged(server, redis):
    room = new_room()

    async def go():
        members, _ = await join_room(server, redis, room, 2)
        redis.cli("PUBLISH", f"swiftws:{room}", "not from a WebSocket handler")
        await members[0].send("ours")
        for ws in members:
            assert await receive(ws, 1) == ["ours"]
        await close_all(members)

    run(go())
    assert "not published by mod_swiftwebsocket" in server.error_log


def test_a_broadcast_over_the_servers_message_size_is_refused(server_with, redis):
    # The chat takes 5,000-byte messages, but a group's broadcast may carry
    # only the server's SwiftWebSocketMaxMessageSize: the handler's
    # broadcast throws and its connection closes with 1011.
    server = server_with(extra_conf=broker_conf(redis) + """
SwiftWebSocketMaxMessageSize 1000
<Location /chat>
    SwiftWebSocketMaxMessageSize 100000
</Location>
""")
    room = new_room()

    async def go():
        members, _ = await join_room(server, redis, room, 2)
        await members[0].send("y" * 5000)
        with pytest.raises(ConnectionClosed) as closed:
            await receive(members[0], 1)
        assert closed.value.rcvd.code == 1011
        await members[1].send("small")
        assert await receive(members[1], 1) == ["small"]
        await close_all(members)

    run(go())
    assert "larger than the 1000 bytes a group's broadcast may carry" in server.error_log


def test_graceful_restart_delivers_each_message_once(server_with, redis):
    server = server_with(extra_conf=broker_conf(redis))
    room = new_room()

    async def go():
        old = await join(server.url(f"/chat?room={room}"), 10)
        old_processes = wait_for_joins(server, room, 10)
        server.graceful()
        for ws in old:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            assert ws.close_code == 1001
        new = await join(server.url(f"/chat?room={room}"), 10)
        # Only the new generation's children are subscribed.
        new_processes = wait_for_joins(server, room, 20) - old_processes
        redis.wait_for_subscribers(f"swiftws:{room}", len(new_processes))
        for i in range(5):
            await new[i].send(f"after restart {i}")
        received = await asyncio.gather(*(receive(ws, 5) for ws in new))
        for ws in new:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.3)
        await close_all(new)
        return received

    for messages in run(go(), timeout=60):
        assert sorted(messages) == [f"after restart {i}" for i in range(5)]


def test_a_malformed_broker_url_stops_startup_naming_it(tmp_path_factory):
    message = refused_startup(tmp_path_factory, "SwiftWebSocketBroker redis://127.0.0.1:99999\n")
    assert "redis://127.0.0.1:99999" in message and "port" in message


def test_an_unreachable_broker_is_logged_and_httpd_serves(server_with):
    unused_port = Httpd("/nonexistent").port
    server = server_with(extra_conf=STOCK_EVENT + f"SwiftWebSocketBroker redis://127.0.0.1:{unused_port}\n")
    room = new_room()

    async def go():
        members = await join(server.url(f"/chat?room={room}"), 1)
        await members[0].send("alone")
        assert await receive(members[0], 1) == ["alone"]
        await close_all(members)

    run(go())
    assert f"WebSocket broker redis://127.0.0.1:{unused_port} unreachable" in server.error_log


def test_named_groups_without_a_broker_on_several_children_name_the_directive(server_with):
    server = server_with(extra_conf=STOCK_EVENT)

    async def go():
        members = await join(server.url("/chat"), 1)
        await members[0].send("hello")
        assert await receive(members[0], 1) == ["hello"]
        await close_all(members)

    run(go())
    assert "no SwiftWebSocketBroker is set" in server.error_log


def test_server_status_counts_what_the_brokers_carry(server, redis):
    room = new_room()
    before = module_status(server)
    assert before["SwiftWebSocketBrokersConnected"] == 3  # one broker, seen by each of 3 children

    async def go():
        members, processes = await join_room(server, redis, room, 30)
        await members[0].send("counted")
        await asyncio.gather(*(receive(ws, 1) for ws in members))
        await close_all(members)
        return len(processes)

    processes = run(go())
    deadline = time.monotonic() + 10
    while (after := module_status(server))["SwiftWebSocketBrokerPublished"] == before["SwiftWebSocketBrokerPublished"]:
        assert time.monotonic() < deadline, "Redis's answer to the PUBLISH was never counted"
        time.sleep(0.05)
    assert after["SwiftWebSocketBrokerPublished"] - before["SwiftWebSocketBrokerPublished"] == 1
    # Each child with members got the message back from its channel.
    assert after["SwiftWebSocketBrokerReceived"] - before["SwiftWebSocketBrokerReceived"] == processes
    assert after["SwiftWebSocketBrokerLost"] == before["SwiftWebSocketBrokerLost"]


def test_a_broker_with_a_password(server_with, tmp_path):
    """AUTH before anything else: with the right password groups cross
    children; with a wrong one the broker refuses, the refusal is logged
    without the password, and broadcasts reach the sender's child."""
    protected = RedisServer(tmp_path / "redis", password="s3cret").start()
    try:
        good = server_with(extra_conf=broker_conf(protected))
        wrong = RedisServer(tmp_path / "unused", port=protected.port, password="wrong")
        bad = server_with(extra_conf=broker_conf(wrong))
        room = new_room()

        async def go():
            members, _ = await join_room(good, protected, room, 20)
            await members[0].send("across children")
            for ws in members:
                assert await receive(ws, 1) == ["across children"]
            alone = await join(bad.url(f"/chat?room={room}"), 1)
            await alone[0].send("only here")
            assert await receive(alone[0], 1) == ["only here"]
            await close_all(members + alone)

        run(go())
        assert "refused the connection's setup" in bad.error_log
        assert "wrong" not in bad.error_log and "redis://:***@127.0.0.1" in bad.error_log
    finally:
        protected.stop()
