#!/usr/bin/env python3
"""Writes the seed corpus, Fuzz/corpus/<target>/<name>: a few meaningful
inputs per fuzz target, in the input layout each target's source
describes. Rerun after changing a layout; libFuzzer grows its working
corpus (build/fuzz/<target>/corpus) from these."""
import os
import shutil
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
MASK = bytes([0x37, 0xFA, 0x21, 0x3D])


def frame(opcode, payload=b"", fin=True, rsv1=False, length=None):
    """A masked client frame; `length` overrides the announced length."""
    count = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    if count < 126:
        head += bytes([0x80 | count])
    elif count <= 0xFFFF:
        head += bytes([0x80 | 126]) + count.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + count.to_bytes(8, "big")
    return head + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))


def close(code, reason=b""):
    return frame(0x8, code.to_bytes(2, "big") + reason)


def deflate(*messages, window=15, level=6):
    """Each message compressed with a sync flush, its 00 00 FF FF stripped
    (RFC 7692 7.2.1), in one context."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -window)
    out = []
    for message in messages:
        data = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(b"\x00\x00\xff\xff")
        out.append(data[:-4])
    return out


# frames: configuration byte, split byte, stream. Configuration: bit 0
# deflate, bit 1 client_no_context_takeover, bits 2-4 window - 8, bits 5-7
# the limit's index (7: 65536, 5: 1000, 3: 125).
LIMIT_64K, LIMIT_1000, LIMIT_125 = 7 << 5, 5 << 5, 3 << 5
DEFLATE_15 = 1 | 7 << 2
hello, again = deflate(b"Hello, Hello, Hello!", b"Hello, again")
fragmented = deflate(b"fragmented and compressed, " * 3)[0]
FRAMES = {
    "text": bytes([LIMIT_64K, 7]) + frame(0x1, b"Hello") + close(1000),
    "fragmented-with-ping": bytes([LIMIT_64K, 0])
    + frame(0x1, b"fr", fin=False) + frame(0x9, b"ping") + frame(0x0, b"ag", fin=False)
    + frame(0x0, b"\xc3\xa9") + frame(0xA, b"pong") + close(1001, b"bye"),
    "binary-16bit-length": bytes([LIMIT_64K, 6]) + frame(0x2, bytes(range(256)) * 4) + frame(0x8),
    "too-big-declared": bytes([LIMIT_125, 3]) + frame(0x2, b"x" * 16, length=1 << 40),
    "invalid-close-code": bytes([LIMIT_1000, 1]) + close(1005),
    "compressed-context-takeover": bytes([LIMIT_64K | DEFLATE_15, 4])
    + frame(0x1, hello, rsv1=True) + frame(0x1, again, rsv1=True) + close(1000),
    "compressed-fragmented": bytes([LIMIT_64K | DEFLATE_15 | 2, 2])
    + frame(0x2, fragmented[:10], fin=False, rsv1=True) + frame(0x0, fragmented[10:]) + close(1000),
    "compressed-window-9": bytes([LIMIT_1000 | 1 | 1 << 2, 5])
    + frame(0x1, deflate(b"small window " * 20, window=9)[0], rsv1=True),
}

# inflater: configuration byte, split byte, raw DEFLATE. Configuration:
# bits 0-2 window - 8, bit 3 appends 00 00 FF FF, bits 4-7 the limit's
# index (12: 65536, 9: 4096, 1: 1).
WINDOW_15_TAIL = 7 | 8
text = b"permessage-deflate compresses each message; " * 40
ended = zlib.compressobj(9, zlib.DEFLATED, -15)
ended_stream = ended.compress(b"a stream with BFINAL set") + ended.flush(zlib.Z_FINISH)
INFLATER = {
    "sync-flushed": bytes([WINDOW_15_TAIL | 12 << 4, 7]) + deflate(text)[0],
    "stored": bytes([WINDOW_15_TAIL | 12 << 4, 3]) + deflate(bytes(range(256)), level=0)[0],
    "bfinal-then-another": bytes([WINDOW_15_TAIL | 12 << 4, 0]) + ended_stream + deflate(b"and a new one")[0],
    "bomb-over-limit": bytes([WINDOW_15_TAIL | 9 << 4, 6]) + deflate(bytes(1 << 20))[0],
    "limit-one": bytes([WINDOW_15_TAIL | 1 << 4, 1]) + deflate(b"xy")[0],
    "window-9": bytes([1 | 8 | 12 << 4, 5]) + deflate(text, window=9)[0],
}

# handshake: server windows byte (server | client << 4), levels byte
# (memory | level << 4), then header lines.
DEFAULTS = bytes([12 | 12 << 4, 5 | 6 << 4])
HANDSHAKE = {
    "chrome": DEFAULTS + b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\n"
    b"Sec-WebSocket-Protocol: chat.v1, chat.v2\nOrigin: http://example.com",
    "firefox": DEFAULTS + b"Sec-WebSocket-Extensions: permessage-deflate\nCookie: ws-visits=3",
    "every-parameter": bytes([15 | 15 << 4, 9 | 9 << 4])
    + b"permessage-deflate; server_no_context_takeover; client_no_context_takeover;"
    b" server_max_window_bits=10; client_max_window_bits=\"8\", permessage-deflate",
    "several-offers": DEFAULTS + b"Sec-WebSocket-Extensions: x-webkit-deflate-frame, ,"
    b" permessage-deflate; server_max_window_bits=8, permessage-deflate; client_max_window_bits=9",
    "cookies": DEFAULTS + b"Cookie: a=1; b = two ;quoted=\"x y\"; novalue; =empty\ncookie: c=3",
    "invalid-utf8": DEFAULTS + b"Sec-WebSocket-Protocol: \xff\xfe, chat\nCookie: \xc3=\x80\n\xe2\x82",
}

for target, seeds in [("frames", FRAMES), ("inflater", INFLATER), ("handshake", HANDSHAKE)]:
    folder = os.path.join(HERE, "corpus", target)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for name, data in seeds.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
