"""The example handlers `make run` serves, each at its path."""

import asyncio

import pytest
import websockets
from websockets.asyncio.client import connect

from conftest import assert_back_to_baseline, run, settled_usage

from rawws import RawWebSocket, frame, upgrade_status


def test_origin_check_accepts_only_its_origin(httpd):
    async def go():
        async with connect(httpd.url("/origin_check"), origin="http://example.com") as ws:
            assert await ws.recv() == "welcome, http://example.com"
            await ws.send("hi")
            assert await ws.recv() == "hi"
    run(go())
    for origin in ("http://evil.example", None):
        extra = f"Origin: {origin}\r\n" if origin else ""
        assert upgrade_status(httpd.port, "/origin_check", extra)[0] == 403
    assert "refusing Origin http://evil.example" in httpd.error_log


def test_abort_handshake_answers_403_with_its_header(httpd):
    status, headers = upgrade_status(httpd.port, "/abort_handshake")
    assert status == 403
    assert headers.get("cache-control") == "no-store"
    assert "upgrade" not in headers


def test_internal_error_closes_with_1011_and_logs_with_the_log_id(server_with):
    # %L is the request's log id, in the error log and in an access log.
    server = server_with(extra_conf='ErrorLogFormat "[%l] [id %L] %M"\n'
                                    'CustomLog ids.log "%L %U"\n')

    async def go():
        async with connect(server.url("/internal_error")) as ws:
            with pytest.raises(websockets.ConnectionClosedError) as closed:
                await ws.recv()
            return closed.value.rcvd.code
    assert run(go()) == 1011
    server.wait_for_access_log("/internal_error")
    [request_id] = [line.split()[0] for line in (server.state / "ids.log").read_text().splitlines()
                    if line.endswith(" /internal_error")]
    [line] = [line for line in server.error_log.splitlines() if "fails on purpose" in line]
    assert f"[id {request_id}]" in line


def test_cookie_reads_and_sets_a_cookie(httpd):
    async def visit(cookie):
        headers = {"Cookie": cookie} if cookie else {}
        async with connect(httpd.url("/cookie"), additional_headers=headers) as ws:
            return await ws.recv(), ws.response.headers.get("Set-Cookie")
    message, set_cookie = run(visit(None))
    assert message == "ws-visits=0"
    assert set_cookie.startswith("ws-visits=1;")
    message, set_cookie = run(visit("theme=dark; ws-visits=4"))
    assert message == "ws-visits=4"
    assert set_cookie.startswith("ws-visits=5;")


@pytest.mark.parametrize("offered,chosen", [
    (["chat.v1", "chat.v2"], "chat.v2"),
    (["chat.v2", "chat.v1"], "chat.v2"),
    (["chat.v1"], "chat.v1"),
    (["other"], None),
])
def test_subprotocol_prefers_chat_v2(httpd, offered, chosen):
    async def go():
        async with connect(httpd.url("/subprotocol"), subprotocols=offered) as ws:
            return ws.subprotocol, await ws.recv()
    subprotocol, message = run(go())
    assert subprotocol == chosen
    assert message == (chosen or "none")


def test_chat_sends_every_message_to_every_member(httpd):
    async def go():
        members = []
        try:
            for i in range(3):
                # The room echoes to the sender too: its own greeting back
                # means this member has joined.
                members.append(await connect(httpd.url("/chat")))
                await members[i].send(f"member {i} joined")
                while await asyncio.wait_for(members[i].recv(), 5) != f"member {i} joined":
                    pass
            for ws in members[:2]:  # the greetings of later members
                while await asyncio.wait_for(ws.recv(), 5) != "member 2 joined":
                    pass
            await members[0].send("hello from 0")
            await members[2].send(b"\x01\x02")
            for ws in members:
                got = [await asyncio.wait_for(ws.recv(), 5) for _ in range(2)]
                assert sorted(got, key=str) == sorted(["hello from 0", b"\x01\x02"], key=str)
            # A member that leaves no longer receives, and does not break the
            # room (whether or not the server has seen it leave yet).
            await members[1].close()
            await members[0].send("after one left")
            assert await asyncio.wait_for(members[2].recv(), 5) == "after one left"
            assert await asyncio.wait_for(members[0].recv(), 5) == "after one left"
        finally:
            for ws in members:
                await ws.close()
    run(go())


def test_connections_and_refusals_leave_no_descriptors_behind(httpd):
    def cycle():
        for _ in range(20):
            assert upgrade_status(httpd.port, "/abort_handshake")[0] == 403
            ws = RawWebSocket(httpd.port, "/echo")
            ws.send(frame(0x8, (1000).to_bytes(2, "big")))
            assert ws.read_close() == 1000
            ws.close()
    cycle()  # warm up: threads, log files
    baseline = settled_usage(httpd)  # once the warm-up's last connections closed
    cycle()
    assert_back_to_baseline(httpd, baseline, rss_growth_kib=4096)
