"""A WebSocket client in the standard library only (the install test runs
it with the machine's python3, before any venv): opens PATH on HOST:PORT,
sends a text and a binary message and checks their echoes, then closes.

  python3 ws_echo.py HOST PORT PATH            echo, exit 0 when both match
  python3 ws_echo.py HOST PORT PATH --refused  exit 0 when the upgrade is refused
"""

import base64
import os
import socket
import struct
import sys


def handshake(sock, host, port, path):
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return head.split(b"\r\n", 1)[0].decode(errors="replace")


def send_frame(sock, opcode, payload):
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = bytes([0x80 | opcode, 0x80 | length])
    elif length < 65536:
        header = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack("!H", length)
    else:
        header = bytes([0x80 | opcode, 0x80 | 127]) + struct.pack("!Q", length)
    sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


def read_exactly(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise RuntimeError("connection closed by the server")
        data += chunk
    return data


def receive_frame(sock):
    first, second = read_exactly(sock, 2)
    length = second & 0x7F
    if length == 126:
        length = struct.unpack("!H", read_exactly(sock, 2))[0]
    elif length == 127:
        length = struct.unpack("!Q", read_exactly(sock, 8))[0]
    return first & 0x0F, read_exactly(sock, length)


def main():
    host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    expect_refusal = "--refused" in sys.argv[4:]
    with socket.create_connection((host, port), timeout=10) as sock:
        status = handshake(sock, host, port, path)
        if expect_refusal:
            print(f"{path}: {status}")
            return 0 if " 101 " not in status + " " else 1
        if " 101 " not in status + " ":
            print(f"{path}: upgrade refused: {status}")
            return 1
        text, binary = "hello from the build machine", os.urandom(70000)
        send_frame(sock, 0x1, text.encode())
        opcode, payload = receive_frame(sock)
        if (opcode, payload) != (0x1, text.encode()):
            print(f"{path}: text echo wrong: opcode {opcode}, {payload[:60]!r}")
            return 1
        send_frame(sock, 0x2, binary)
        opcode, payload = receive_frame(sock)
        if (opcode, payload) != (0x2, binary):
            print(f"{path}: binary echo wrong: opcode {opcode}, {len(payload)} bytes")
            return 1
        send_frame(sock, 0x8, struct.pack("!H", 1000))
        opcode, payload = receive_frame(sock)
        code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        print(f"{path}: {status}; text and 70,000-byte binary echoed; closed with {code}")
        return 0 if (opcode, code) == (0x8, 1000) else 1


if __name__ == "__main__":
    sys.exit(main())
