"""A deliberately dumb WebSocket client over a raw socket, for sending what
no well-behaved library will: bad handshakes and broken frames."""

import base64
import os
import socket
import struct


def http_request(port, request_bytes, timeout=5):
    """Sends raw bytes, returns (status, headers dict, socket)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(request_bytes)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, sock, rest


def upgrade_request(path="/echo", key=None, version="13", extra="", method="GET",
                    proto="HTTP/1.1", connection="Upgrade", upgrade="websocket"):
    key = key if key is not None else base64.b64encode(os.urandom(16)).decode()
    lines = [f"{method} {path} {proto}", "Host: 127.0.0.1"]
    if upgrade is not None:
        lines.append(f"Upgrade: {upgrade}")
    if connection is not None:
        lines.append(f"Connection: {connection}")
    if key:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if version is not None:
        lines.append(f"Sec-WebSocket-Version: {version}")
    request = "\r\n".join(lines) + "\r\n" + extra + "\r\n"
    return request.encode()


def upgrade_status(port, path, extra=""):
    """Attempts the upgrade; returns (status, headers) and hangs up."""
    return request_status(port, upgrade_request(path, extra=extra))


def request_status(port, request_bytes):
    """Sends a raw request; returns (status, headers) and hangs up."""
    status, headers, sock, _ = http_request(port, request_bytes)
    sock.close()
    return status, headers


def frame(opcode, payload=b"", fin=True, rsv=0, mask=True, length_override=None):
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload) if length_override is None else length_override
    mask_bit = 0x80 if mask else 0
    if n < 126:
        header = struct.pack("!BB", first, mask_bit | n)
    elif n < 65536:
        header = struct.pack("!BBH", first, mask_bit | 126, n)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, n)
    if not mask:
        return header + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return header + key + masked


class ServerFrameReader:
    """Reads the server's frames from whatever `_read(n)` (exactly n bytes)
    takes them from: a socket here, an HTTP/2 stream in h2ws."""

    last_rsv = 0

    def read_frame(self):
        """Returns (fin, opcode, payload) of one server frame; its RSV bits
        are left in `last_rsv`."""
        first, second = self._read(2)
        self.last_rsv = (first >> 4) & 0x7
        assert second & 0x80 == 0, "server frames must not be masked"
        n = second & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read(8))[0]
        return bool(first & 0x80), first & 0x0F, self._read(n)

    def read_close(self):
        """Reads frames until a close; returns its code (None if empty)."""
        while True:
            _, opcode, payload = self.read_frame()
            if opcode == 0x8:
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None


class RawWebSocket(ServerFrameReader):
    def __init__(self, port, path="/echo", timeout=5, extra=""):
        """`extra`: more request header lines, each ending in CR LF."""
        status, headers, self.sock, self.buffer = http_request(
            port, upgrade_request(path, extra=extra), timeout)
        assert status == 101, status
        self.headers = headers

    def send(self, data):
        self.sock.sendall(data)

    def _read(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def at_eof(self):
        """True when the server closed the TCP connection."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


def echoes(port, path="/echo"):
    """Whether an echo handler at `path` upgrades and echoes a text message."""
    ws = RawWebSocket(port, path)
    ws.send(frame(0x1, b"still here"))
    ok = ws.read_frame() == (True, 0x1, b"still here")
    ws.close()
    return ok
