"""permessage-deflate (RFC 7692) against a real client (Python websockets)."""

import asyncio
import os
import zlib

import pytest
from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from conftest import refused_startup, serve
from rawws import RawWebSocket, frame


def negotiated(ws):
    return ws.response.headers.get("Sec-WebSocket-Extensions")


async def echo_all(url, messages, **kwargs):
    async with connect(url, max_size=None, **kwargs) as ws:
        replies = []
        for message in messages:
            await ws.send(message)
            replies.append(await ws.recv())
        return negotiated(ws), replies


MESSAGES = ["short", "", "x" * 64, "compressible " * 5000, os.urandom(100_000), b"\x00" * 1_000_000,
            "ünïcödé ✓ " * 1000]


def test_default_client_offer_is_accepted_and_echo_round_trips(httpd):
    header, replies = asyncio.run(echo_all(httpd.url("/echo"), MESSAGES))
    assert header == "permessage-deflate; client_max_window_bits=12"
    assert replies == MESSAGES


@pytest.mark.parametrize("factory, expected", [
    (ClientPerMessageDeflateFactory(server_no_context_takeover=True, client_no_context_takeover=True),
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=12"),
    (ClientPerMessageDeflateFactory(server_max_window_bits=9, client_max_window_bits=9),
     "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9"),
    (ClientPerMessageDeflateFactory(server_max_window_bits=15, client_max_window_bits=None),
     "permessage-deflate; server_max_window_bits=12"),
])
def test_parameters_round_trip(httpd, factory, expected):
    header, replies = asyncio.run(echo_all(httpd.url("/echo"), MESSAGES, extensions=[factory], compression=None))
    assert header == expected
    assert replies == MESSAGES


def test_compression_off_in_the_client(httpd):
    header, replies = asyncio.run(echo_all(httpd.url("/echo"), MESSAGES, compression=None))
    assert header is None
    assert replies == MESSAGES


def test_handler_can_decline_compression(httpd):
    header, replies = asyncio.run(echo_all(httpd.url("/echo_noext"), MESSAGES[:3]))
    assert header is None
    assert replies == MESSAGES[:3]


@pytest.mark.parametrize("offer", ["permessage-deflate; server_max_window_bits=8",
                                   "permessage-deflate; bogus=\"1"],
                         ids=["window-8", "malformed"])
def test_unhonourable_offer_is_declined_with_a_clean_101(httpd, offer):
    ws = RawWebSocket(httpd.port, extra=f"Sec-WebSocket-Extensions: {offer}\r\n")
    assert "sec-websocket-extensions" not in ws.headers
    # And the connection works, uncompressed.
    ws.send(frame(0x1, b"plain"))
    assert ws.read_frame() == (True, 0x1, b"plain")
    assert ws.last_rsv == 0
    ws.close()


def test_server_compresses_what_it_sends(httpd):
    """The reply to a compressible message arrives compressed (RSV1) and
    much smaller than the text."""
    ws = RawWebSocket(httpd.port, extra="Sec-WebSocket-Extensions: permessage-deflate\r\n")
    assert ws.headers["sec-websocket-extensions"] == "permessage-deflate"
    text = b"abcabcabc" * 10_000
    ws.send(frame(0x1, text))
    fin, opcode, payload = ws.read_frame()
    assert (fin, opcode, ws.last_rsv) == (True, 0x1, 0x4), "FIN, RSV1 and text"
    assert len(payload) < len(text) // 50
    assert zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff") == text
    ws.close()


@pytest.fixture(scope="module")
def small_limit_httpd(tmp_path_factory):
    yield from serve(tmp_path_factory, extra_conf="SwiftWebSocketMaxMessageSize 1048576\n")


def test_inflate_bomb_closes_1009(small_limit_httpd):
    """A 100 KiB frame that would inflate to 100 MiB is stopped at the limit."""
    ws = RawWebSocket(small_limit_httpd.port, extra="Sec-WebSocket-Extensions: permessage-deflate\r\n")
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = compressor.compress(b"\x00" * (100 << 20)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert len(bomb) < 200_000
    ws.send(frame(0x2, bomb[:-4], rsv=4))
    assert ws.read_close() == 1009
    ws.close()


def test_deflate_directives(server_with):
    server = server_with(extra_conf="SwiftWebSocketDeflateWindowBits 10\n"
                                    "SwiftWebSocketDeflateCompressionLevel 1\n"
                                    "SwiftWebSocketDeflateMemLevel 9\n"
                                    "SwiftWebSocketDeflateMinSize 0\n")
    header, replies = asyncio.run(echo_all(server.url("/echo"), MESSAGES))
    assert header == "permessage-deflate; client_max_window_bits=10"
    assert replies == MESSAGES
    # MinSize 0: even a one-byte reply is compressed (64 by default).
    ws = RawWebSocket(server.port, extra="Sec-WebSocket-Extensions: permessage-deflate\r\n")
    ws.send(frame(0x1, b"x"))
    _, _, payload = ws.read_frame()
    assert ws.last_rsv == 0x4
    assert zlib.decompressobj(-10).decompress(payload + b"\x00\x00\xff\xff") == b"x"
    ws.close()
    off = server_with(extra_conf="SwiftWebSocketDeflate Off\n")
    header, replies = asyncio.run(echo_all(off.url("/echo"), MESSAGES[:4]))
    assert header is None
    assert replies == MESSAGES[:4]


@pytest.mark.parametrize("line,message", [
    ("SwiftWebSocketDeflateWindowBits 8", 'SwiftWebSocketDeflateWindowBits: "8" is not a whole number from 9 to 15'),
    ("SwiftWebSocketDeflateWindowBits 16", 'SwiftWebSocketDeflateWindowBits: "16" is not a whole number from 9 to 15'),
    ("SwiftWebSocketDeflateMemLevel 0", 'SwiftWebSocketDeflateMemLevel: "0" is not a whole number from 1 to 9'),
    ("SwiftWebSocketDeflateCompressionLevel 10",
     'SwiftWebSocketDeflateCompressionLevel: "10" is not a whole number from 0 to 9'),
    ("SwiftWebSocketDeflate maybe", "SwiftWebSocketDeflate must be On or Off")])
def test_bad_deflate_directives_stop_startup(tmp_path_factory, line, message):
    assert message in refused_startup(tmp_path_factory, line + "\n")
