"""Echo and close through a standard client (Python websockets)."""

import pytest
import websockets
from websockets.asyncio.client import connect

from conftest import echo_roundtrip, run


@pytest.mark.parametrize("message", ["hello", "", "héllo wörld ✓ 𝄞", b"\x00\x01\xff", b""],
                         ids=["text", "empty-text", "unicode", "binary", "empty-binary"])
def test_echo_keeps_type_and_content(httpd, message):
    assert run(echo_roundtrip(httpd.url("/echo"), message)) == message


def test_echo_16_mib_binary(httpd):
    message = bytes(range(256)) * (16 * 1024 * 1024 // 256)
    assert run(echo_roundtrip(httpd.url("/echo"), message)) == message


def test_echo_16_mib_text(httpd):
    message = "ab€" * (16 * 1024 * 1024 // 5)
    assert run(echo_roundtrip(httpd.url("/echo"), message)) == message


def test_fragmented_message_is_reassembled(httpd):
    async def go():
        async with connect(httpd.url("/echo")) as ws:
            await ws.send(["frag", "mented ", "text"])
            text = await ws.recv()
            await ws.send([b"\x01", b"\x02\x03"])
            return text, await ws.recv()
    assert run(go()) == ("fragmented text", b"\x01\x02\x03")


def test_many_messages_in_order(httpd):
    async def go():
        async with connect(httpd.url("/echo")) as ws:
            for i in range(500):
                await ws.send(f"message {i}")
            return [await ws.recv() for _ in range(500)]
    assert run(go()) == [f"message {i}" for i in range(500)]


def test_query_string_is_ignored_for_routing(httpd):
    assert run(echo_roundtrip(httpd.url("/echo?room=1&x=y"), "q")) == "q"


def test_client_close_is_echoed(httpd):
    async def go():
        ws = await connect(httpd.url("/echo"))
        await ws.close(code=4000, reason="done")
        return ws.close_code
    assert run(go()) == 4000


def test_close_handler_closes_with_code_and_reason(httpd):
    async def go():
        async with connect(httpd.url("/close")) as ws:
            await ws.send("3001 see you")
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            return closed.value.rcvd.code, closed.value.rcvd.reason
    assert run(go()) == (3001, "see you")


def test_static_page_is_still_served(httpd):
    # The page with the echo and chat panels: requests without an upgrade
    # are not the module's.
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{httpd.port}/") as response:
        assert response.status == 200
        page = response.read()
    assert b"/echo" in page and b"/chat" in page
