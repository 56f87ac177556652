"""The handler API end to end: what a handler sees of the request, pings,
fragmented sends, the passive closing hook, and logging."""

import asyncio
import re
import subprocess

import pytest
from websockets.asyncio.client import connect

from conftest import TEST_HANDLERS, TOP, build_handler, facts_over_ws, run, serve
from rawws import RawWebSocket, frame

API_HANDLERS = ("ping_wsh.swift", "fragments_wsh.swift", "passive_close_wsh.swift",
                "request_facts_wsh.swift", "logging_wsh.swift")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("handlers")
    for name in API_HANDLERS:
        build_handler(TEST_HANDLERS / name, root)
    yield from serve(tmp_path_factory, handler_root=root)


def test_extra_handshake_sees_the_request(server):
    facts = facts_over_ws(server.url("/request_facts?room=7&x=%20y"), origin="https://app.example",
                          subprotocols=["a.v1", "b.v2"],
                          additional_headers={"Cookie": "sid=abc; theme=\"dark\"", "X-Test": "yes"})
    assert facts["resource"] == "/request_facts"
    assert facts["query"] == "room=7&x=%20y"
    assert facts["origin"] == "https://app.example"
    assert facts["subprotocols"] == "a.v1,b.v2"
    assert facts["extensions"] == "permessage-deflate"
    assert facts["cookies"] == "sid=abc,theme=dark"
    assert facts["remote"] == "127.0.0.1"
    assert facts["user"] == "(none)"
    assert facts["secure"] == "false"
    assert facts["x-test"] == "yes"


def test_ping_with_payload_reports_the_pong(server):
    async def go():
        async with connect(server.url("/ping")) as ws:
            await ws.send("ping hello")
            return await asyncio.wait_for(ws.recv(), 5)
    assert run(go()) == "pong hello"


@pytest.mark.parametrize("compression", ["deflate", None])
def test_fragmented_send_reassembles(server, compression):
    async def go():
        async with connect(server.url("/fragments"), compression=compression) as ws:
            negotiated = ws.response.headers.get("Sec-WebSocket-Extensions", "")
            assert negotiated.startswith("permessage-deflate") == bool(compression), negotiated
            await ws.send("5")
            return await ws.recv(), await ws.recv()
    text, binary = run(go())
    assert text == "0,1,2,3,4,"
    assert binary == bytes(range(5))


def test_fragmented_send_frames_on_the_wire(server):
    ws = RawWebSocket(server.port, "/fragments")
    ws.send(frame(0x1, b"3"))
    frames = [ws.read_frame() for _ in range(6)]
    assert frames == [(False, 0x1, b"0,"), (False, 0x0, b"1,"), (True, 0x0, b"2,"),
                      (False, 0x2, b"\x00"), (False, 0x0, b"\x01"), (True, 0x0, b"\x02")]
    ws.close()


def test_passive_closing_hook_chooses_the_reply(server):
    ws = RawWebSocket(server.port, "/passive_close")
    ws.send(frame(0x8, (1000).to_bytes(2, "big")))
    fin, opcode, payload = ws.read_frame()
    assert opcode == 0x8
    assert int.from_bytes(payload[:2], "big") == 4321
    assert payload[2:] == b"answered 1000"
    assert ws.at_eof()
    ws.close()


def test_handler_logs_at_the_configured_level(server):
    async def go(srv):
        async with connect(srv.url("/logging")) as ws:
            await ws.send("x")
            assert await ws.recv() == "x"
    run(go(server))
    log = server.error_log
    assert "info line from a handler peer=127.0.0.1" in log
    assert "[client 127.0.0.1" in next(line for line in log.splitlines() if "info line from a handler" in line)
    assert "debug line from a handler" not in log  # run-httpd's LogLevel is swiftwebsocket:info


def test_loglevel_debug_shows_handler_debug_lines(tmp_path_factory, server_with):
    root = tmp_path_factory.mktemp("handlers")
    build_handler(TEST_HANDLERS / "logging_wsh.swift", root)
    server = server_with(handler_root=root, extra_conf="LogLevel swiftwebsocket:debug\n")

    async def go():
        async with connect(server.url("/logging")) as ws:
            await ws.send("x")
            await ws.recv()
    run(go())
    assert "debug line from a handler" in server.error_log


def test_readme_handler_builds_and_serves(tmp_path_factory, server_with):
    """The handler in README's "Writing a handler", built as it says."""
    readme = (TOP / "README.md").read_text()
    section = readme[readme.index("## Writing a handler"):]
    source = re.search(r"```swift\n(.*?)```", section, re.S).group(1)
    root = tmp_path_factory.mktemp("readme")
    (root / "greet_wsh.swift").write_text(source)
    subprocess.run([str(TOP / "bin/swiftwebsocket-build"), str(root / "greet_wsh.swift")],
                   check=True, capture_output=True)
    server = server_with(handler_root=root)

    async def go():
        async with connect(server.url("/greet"), subprotocols=["greet.v1", "greet.v2"],
                           additional_headers={"Cookie": "name=Ada"}) as ws:
            greeting = await ws.recv()
            await ws.send("abc")
            return ws.subprotocol, greeting, await ws.recv()
    assert run(go()) == ("greet.v2", "hello, Ada", "ABC")
    assert "greeting Ada" in server.error_log


def test_a_parked_callback_logs_against_its_connection(tmp_path_factory, server_with):
    """An event-style callback on the event MPM runs on whichever worker
    the MPM picks, after the handshake's request is over: its lines are the
    connection's, and name the client and carry (as the connection's log
    id, %{c}L) the handshake request's log id, the access log's %L."""
    root = tmp_path_factory.mktemp("handlers")
    build_handler(TEST_HANDLERS / "event_logging_wsh.swift", root)
    server = server_with(handler_root=root, extra_conf="""
ErrorLogFormat "[%l] [client %a] [id %{c}L] %M"
LogFormat "%L %r %>s" with_id
CustomLog ids.log with_id
LogLevel warn swiftwebsocket:debug
""")

    async def go():
        async with connect(server.url("/event_logging")) as ws:
            # The handshake's request is logged once it handed the
            # connection to the MPM: what follows runs parked.
            try:
                await asyncio.to_thread(server.wait_for_access_log, "/event_logging")
            except AssertionError as never_logged:
                raise AssertionError(server.error_log[-4000:]) from never_logged
            for text in ("one", "two", "three"):
                await ws.send(text)
                assert await ws.recv() == text
    run(go())
    (request_id,) = [line.split()[0] for line in (server.state / "ids.log").read_text().splitlines()
                     if "GET /event_logging" in line]
    lines = [line for line in server.error_log.splitlines() if "warning line from a parked callback" in line]
    assert "WebSocket parked in the MPM" in server.error_log, server.error_log[-4000:]
    assert len(lines) == 3
    for line in lines:
        assert "[client 127.0.0.1:" in line and f"[id {request_id}]" in line, line
