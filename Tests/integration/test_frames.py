"""Protocol violations on the wire get the right close code, and the server
closes the connection and stays up."""

import struct

import pytest

from rawws import RawWebSocket, frame


def expect_close(httpd, data, code):
    ws = RawWebSocket(httpd.port)
    ws.send(data)
    assert ws.read_close() == code
    assert ws.at_eof(), "server must drop the TCP connection after failing it"
    ws.close()


@pytest.mark.parametrize("data, code", [
    (frame(0x1, b"hi", mask=False), 1002),                     # unmasked
    (frame(0x3, b""), 1002),                                   # reserved opcode
    (frame(0xB, b""), 1002),                                   # reserved control opcode
    (frame(0x1, b"hi", rsv=4), 1002),                          # RSV1 without an extension
    (frame(0x9, b"x" * 126), 1002),                            # control frame > 125
    (frame(0x9, b"", fin=False), 1002),                        # fragmented control
    (frame(0x0, b"orphan"), 1002),                             # continuation without start
    (frame(0x1, b"a", fin=False) + frame(0x1, b"b"), 1002),    # new message mid-fragment
    (frame(0x8, b"\x03"), 1002),                               # close payload of one byte
    (frame(0x8, struct.pack("!H", 1005)), 1002),               # close code not for the wire
    (frame(0x8, struct.pack("!H", 999)), 1002),
    (frame(0x1, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"), 1007),  # surrogate
    (frame(0x1, b"\xc0\xaf"), 1007),                           # overlong
    (frame(0x1, b"\xf4\x90\x80\x80"), 1007),                   # above U+10FFFF
    (frame(0x8, struct.pack("!H", 1000) + b"\xff"), 1007),     # close reason not UTF-8
], ids=["unmasked", "opcode-3", "opcode-11", "rsv1", "long-ping", "fragmented-ping",
        "orphan-continuation", "interleaved-message", "close-1-byte", "close-1005",
        "close-999", "surrogate", "overlong", "above-max", "close-reason-utf8"])
def test_violation_closes_with_code(httpd, data, code):
    expect_close(httpd, data, code)


def test_invalid_utf8_fails_fast_before_the_message_ends(httpd):
    ws = RawWebSocket(httpd.port)
    ws.send(frame(0x1, b"valid \xff", fin=False))   # the rest never comes
    assert ws.read_close() == 1007
    ws.close()


def test_utf8_split_across_fragments_is_accepted(httpd):
    ws = RawWebSocket(httpd.port)
    clef = "𝄞".encode()
    ws.send(frame(0x1, b"a" + clef[:2], fin=False) + frame(0x0, clef[2:] + b"z"))
    assert ws.read_frame() == (True, 0x1, b"a" + clef + b"z")
    ws.close()


def test_ping_between_fragments_is_answered_first(httpd):
    ws = RawWebSocket(httpd.port)
    ws.send(frame(0x1, b"one ", fin=False) + frame(0x9, b"ping!") + frame(0x0, b"two"))
    assert ws.read_frame() == (True, 0xA, b"ping!")
    assert ws.read_frame() == (True, 0x1, b"one two")
    ws.close()


def test_63_bit_length_rule(httpd):
    data = bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 63) + b"\x00\x00\x00\x00"
    expect_close(httpd, data, 1002)


def test_message_over_default_limit_closes_1009_from_the_header(httpd):
    # Announce 1 GiB; the server must refuse before any payload is sent.
    data = bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 30) + b"\x01\x02\x03\x04"
    expect_close(httpd, data, 1009)


def test_client_vanishing_mid_frame_leaves_server_up(httpd):
    ws = RawWebSocket(httpd.port)
    ws.send(frame(0x2, b"x" * 1000)[:500])
    ws.close()
    ws = RawWebSocket(httpd.port)
    ws.send(frame(0x1, b"still here"))
    assert ws.read_frame() == (True, 0x1, b"still here")
    ws.close()
    httpd.assert_no_crash()
