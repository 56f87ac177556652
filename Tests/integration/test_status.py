"""The operator's view: the module's section of mod_status (`?auto`), the
Prometheus metrics of `SetHandler swiftwebsocket-metrics`, and the
connection log (SwiftWebSocketConnectionLog), counted across 3 children.
scripts/run-httpd serves /server-status and /metrics."""

import asyncio
import json
import os
import re
import signal
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from conftest import echo_roundtrip, module_status as status, run, serve, tls_client_context
from h2ws import H2WebSocket

# 3 children that take at most 16 + 16 x 1 connections each while idle
# (event.c's accept limit), so 90 WebSockets need all three.
THREE_CHILDREN = """
StartServers 3
MinSpareThreads 16
MaxSpareThreads 48
ServerLimit 3
ThreadsPerChild 16
MaxRequestWorkers 48
AsyncRequestWorkerFactor 1
LogLevel warn swiftwebsocket:debug
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("connection-log") / "websockets.log"
    conf = THREE_CHILDREN + f'SwiftWebSocketConnectionLog "{log}"\n'
    for server in serve(tmp_path_factory, extra_conf=conf):
        server.connection_log = log
        yield server


def get(server, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=10) as response:
        return response.read().decode()


def wait_for(server, key, value, timeout=10):
    """The gauges fall once a connection's pool is gone, a moment after
    its client saw the close."""
    deadline = time.monotonic() + timeout
    while (current := status(server).get(key)) != value:
        assert time.monotonic() < deadline, f"{key} stayed {current}, not {value}"
        time.sleep(0.05)


def log_lines(server):
    return [json.loads(line) for line in server.connection_log.read_text().splitlines()]


def opened_pids(server):
    return set(re.findall(r"\[pid (\d+):tid \d+\].*WebSocket open", server.error_log))


def test_90_connections_over_3_children_then_900_echoes_then_0(server):
    before = status(server)

    async def go():
        sockets = [await connect(server.url("/echo"), compression=None) for _ in range(90)]
        counted = status(server)
        for round in range(10):
            for i, socket in enumerate(sockets):
                await socket.send(f"message {round} of {i}")
            for i, socket in enumerate(sockets):
                assert await socket.recv() == f"message {round} of {i}"
        echoed = status(server)
        for socket in sockets:
            await socket.close()
        return counted, echoed

    counted, echoed = run(go(), timeout=60)
    assert counted["SwiftWebSocketConnections"] == 90
    assert counted["SwiftWebSocketConnections[/echo]"] == 90
    assert counted["SwiftWebSocketConnectionsParked"] == 90
    assert len(opened_pids(server)) == 3, "the connections should land on all three children"
    assert echoed["SwiftWebSocketMessagesIn"] - before["SwiftWebSocketMessagesIn"] == 900
    assert echoed["SwiftWebSocketMessagesOut"] - before["SwiftWebSocketMessagesOut"] == 900
    assert echoed["SwiftWebSocketMessagesIn[/echo]"] - before.get("SwiftWebSocketMessagesIn[/echo]", 0) == 900
    # Each message a 2-byte header, a 4-byte mask and its text in, the
    # same less the mask out.
    text = sum(len(f"message {r} of {i}") for r in range(10) for i in range(90))
    assert echoed["SwiftWebSocketBytesIn"] - before["SwiftWebSocketBytesIn"] == text + 900 * 6
    assert echoed["SwiftWebSocketBytesOut"] - before["SwiftWebSocketBytesOut"] == text + 900 * 2
    wait_for(server, "SwiftWebSocketConnections", 0)
    after = status(server)
    assert after["SwiftWebSocketConnectionsParked"] == 0
    assert after["SwiftWebSocketClosesReceived1000"] - before.get("SwiftWebSocketClosesReceived1000", 0) == 90
    assert after["SwiftWebSocketClosesSent1000"] - before.get("SwiftWebSocketClosesSent1000", 0) == 90
    assert after["SwiftWebSocketHandshakesAccepted"] - before["SwiftWebSocketHandshakesAccepted"] == 90


def test_close_codes_are_counted_by_code(server):
    before = status(server)

    async def go():
        for code, count in ((4001, 3), (1003, 2)):
            for _ in range(count):
                async with connect(server.url("/close")) as socket:
                    await socket.send(f"{code} bye")
                    await socket.wait_closed()
                    assert socket.close_code == code
        for _ in range(4):
            socket = await connect(server.url("/echo"))
            await socket.close(code=1001, reason="leaving")

    run(go())
    wait_for(server, "SwiftWebSocketConnections", 0)
    after = status(server)

    def grew(key):
        return after.get(key, 0) - before.get(key, 0)
    assert grew("SwiftWebSocketClosesSent4xxx[/close]") == 3
    assert grew("SwiftWebSocketClosesSent1003[/close]") == 2
    assert grew("SwiftWebSocketClosesReceived4xxx[/close]") == 3  # the client echoes the code
    assert grew("SwiftWebSocketClosesReceived1001[/echo]") == 4
    assert grew("SwiftWebSocketClosesSent1001[/echo]") == 4


def test_refused_handshakes_are_counted_by_status(server):
    before = status(server)

    async def go():
        for path in ("/abort_handshake", "/abort_handshake", "/origin_check"):
            with pytest.raises(InvalidStatus):
                await connect(server.url(path))

    run(go())
    after = status(server)
    assert after["SwiftWebSocketHandshakesRefused403[/abort_handshake]"] \
        - before.get("SwiftWebSocketHandshakesRefused403[/abort_handshake]", 0) == 2
    assert after["SwiftWebSocketHandshakesRefused403"] - before.get("SwiftWebSocketHandshakesRefused403", 0) == 3


def test_metrics_parse_and_agree_with_server_status(server):
    async def go():
        async with connect(server.url("/echo")) as socket:
            await socket.send("x" * 1000)  # compressed: deflate saves most of it
            await socket.recv()
            metrics = get(server, "/metrics")
            auto = status(server)
        return metrics, auto

    metrics, auto = run(go())
    families = {family.name: family for family in text_string_to_metric_families(metrics)}
    samples = {(sample.name, sample.labels.get("resource")): sample.value
               for family in families.values() for sample in family.samples}
    assert families["swiftwebsocket_connections"].type == "gauge"
    assert families["swiftwebsocket_messages_in"].type == "counter"
    assert samples[("swiftwebsocket_connections", "/echo")] == auto["SwiftWebSocketConnections[/echo]"] == 1
    assert samples[("swiftwebsocket_messages_in_total", "/echo")] == auto["SwiftWebSocketMessagesIn[/echo]"]
    assert samples[("swiftwebsocket_bytes_out_total", "/echo")] == auto["SwiftWebSocketBytesOut[/echo]"]
    assert samples[("swiftwebsocket_deflate_saved_out_bytes_total", "/echo")] >= 900
    assert auto["SwiftWebSocketDeflateSavedIn"] >= 900
    codes = {s.labels["code"]: s.value for s in families["swiftwebsocket_closes_sent"].samples
             if s.labels["resource"] == "/close"}
    assert codes.get("4xxx") == 3
    assert "swiftwebsocket_broker_published" in families
    data = json.loads(get(server, "/metrics?format=json"))
    assert data["resources"]["/echo"]["MessagesIn"] >= 1


def test_connection_log_has_one_line_per_connection(server):
    wait_for(server, "SwiftWebSocketConnections", 0)
    already = len(log_lines(server))

    async def go():
        for count in (1, 2, 3):
            async with connect(server.url("/echo"), compression=None) as socket:
                for _ in range(count):
                    await socket.send("hello")
                    await socket.recv()
        async with connect(server.url("/close")) as socket:
            await socket.send("4002 because")
            await socket.wait_closed()

    run(go())
    deadline = time.monotonic() + 10
    while len(log_lines(server)) < already + 4:
        assert time.monotonic() < deadline, "the connection log has too few lines"
        time.sleep(0.05)
    time.sleep(0.2)
    lines = log_lines(server)[already:]
    assert len(lines) == 4
    echoes = [line for line in lines if line["resource"] == "/echo"]
    assert sorted(line["messages_in"] for line in echoes) == [1, 2, 3]
    for line in echoes:
        assert line["messages_out"] == line["messages_in"]
        # 2 + 4 (mask) + 5 bytes a message, and the close frame with its code.
        assert line["bytes_in"] == line["messages_in"] * 11 + 8
        assert line["close_received"] == {"code": 1000, "reason": ""}
        assert line["close_sent"]["code"] == 1000
        assert line["ended"] == "client close"
        assert line["protocol"] == "http/1.1" and line["tls"] is False and line["client"] == "127.0.0.1"
        assert 0 <= line["duration"] < 10
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    closed = next(line for line in lines if line["resource"] == "/close")
    assert closed["close_sent"] == {"code": 4002, "reason": "because"}
    assert closed["ended"] == "server close"
    assert closed["messages_in"] == 1 and closed["parked"] is False


def test_tls_and_http2_connections_are_counted_and_logged(server_with, tmp_path):
    log = tmp_path / "websockets.log"
    secure = server_with(tls=True, extra_conf=f'SwiftWebSocketConnectionLog "{log}"\n')

    async def go():
        async with connect(secure.wss_url("/echo"), ssl=tls_client_context()) as socket:
            stream = H2WebSocket(secure.tls_port, "/echo")
            assert stream.status == 200
            counted = status(secure)
            stream.close()
        return counted

    counted = run(go())
    assert counted["SwiftWebSocketConnections"] == 2
    assert counted["SwiftWebSocketConnectionsTLS"] == 2
    assert counted["SwiftWebSocketConnectionsHTTP2"] == 1
    assert counted["SwiftWebSocketConnectionsOnThread"] == 1  # the stream holds mod_http2's worker
    assert counted["SwiftWebSocketConnectionsParked"] == 1
    wait_for(secure, "SwiftWebSocketConnections", 0)
    deadline = time.monotonic() + 10
    while len(log.read_text().splitlines()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(line["protocol"] for line in lines) == ["h2", "http/1.1"]
    assert all(line["tls"] for line in lines)


def test_a_killed_childs_connections_leave_the_gauge_and_its_counts_stay(server_with):
    several = server_with(extra_conf=THREE_CHILDREN)

    async def go():
        sockets = [await connect(several.url("/echo"), compression=None) for _ in range(60)]
        for socket in sockets:
            await socket.send("before")
            await socket.recv()
        by_pid = {}
        for pid in re.findall(r"\[pid (\d+):tid \d+\].*WebSocket open", several.error_log):
            by_pid[pid] = by_pid.get(pid, 0) + 1
        victim, held = max(by_pid.items(), key=lambda item: item[1])
        os.kill(int(victim), signal.SIGKILL)
        deadline = time.monotonic() + 10
        while status(several)["SwiftWebSocketConnections"] != 60 - held:
            assert time.monotonic() < deadline, "the killed child's connections stayed in the gauge"
            await asyncio.sleep(0.05)
        after = status(several)
        await asyncio.gather(*(socket.close() for socket in sockets), return_exceptions=True)
        return after

    after = run(go(), timeout=60)
    assert after["SwiftWebSocketMessagesIn"] == 60


def test_a_graceful_restart_starts_the_counts_again(server_with):
    restarted = server_with()
    run(echo_roundtrip(restarted.url("/echo"), "counted"))
    assert status(restarted)["SwiftWebSocketMessagesIn"] == 1
    restarted.graceful()
    assert status(restarted)["SwiftWebSocketMessagesIn"] == 0
    run(echo_roundtrip(restarted.url("/echo"), "counted again"))
    assert status(restarted)["SwiftWebSocketMessagesIn"] == 1


def test_a_piped_connection_log(server_with, tmp_path):
    log = tmp_path / "piped.log"
    piped = server_with(extra_conf=f'SwiftWebSocketConnectionLog "|$cat >> {log}"\n')
    for i in range(3):
        run(echo_roundtrip(piped.url("/echo"), f"piped {i}"))
    deadline = time.monotonic() + 10
    while not log.exists() or len(log.read_text().splitlines()) < 3:
        assert time.monotonic() < deadline, "the piped log got too few lines"
        time.sleep(0.05)
    assert [json.loads(line)["messages_in"] for line in log.read_text().splitlines()] == [1, 1, 1]
