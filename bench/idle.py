"""make bench-idle: many open WebSockets on one httpd whose event MPM has 64
worker threads in all, served by an event-style handler
(bench/handlers/fanout_wsh.swift) that parks each connection in the MPM
between messages.

For ws (default 10,000 connections) and wss (default 1,000): open them all,
have every one send a message and get its echo, measure httpd while they
sit idle, then send one broadcast and time until every connection has it.
Prints connections held, threads in httpd, RSS per idle connection and the
broadcast time, and fails if any connection was refused, lost its echo or
missed the broadcast.

The client is one asyncio thread speaking just enough WebSocket (masked
frames out, small frames in); on 2 cores it shares the machine with httpd,
so the times include its own work.

With --run-settings, httpd runs with `make run`'s own settings instead
(scripts/run-httpd with no extra configuration, which raises the descriptor
limit itself: httpd is started with a soft limit of 1,024) and the
connections echo through the example /echo; there is no broadcast.

Run: .venv/bin/python bench/idle.py [--connections N] [--tls-connections N] [--run-settings]
"""

import argparse
import asyncio
import base64
import os
import pathlib
import resource
import ssl
import struct
import sys
import tempfile
import time

TOP = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOP / "Tests/integration"))
from conftest import Httpd, Usage, one_child, settled_usage  # noqa: E402

# One child, 64 workers, accepting 10,000 connections (the descriptor
# limit is raised for them).
SERVER_CONF = one_child()
PATH = "/fanout"
OPEN_CONCURRENCY = 200


class Client:
    """One connection: an asyncio stream speaking minimal WebSocket."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host, port, tls, path):
        reader, writer = await asyncio.open_connection(host, port, ssl=tls, limit=1 << 16)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(head.split(b"\r\n")[0].decode())
        return cls(reader, writer)

    def send(self, text):
        payload = text.encode()
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert len(payload) < 126
        self.writer.write(bytes([0x81, 0x80 | len(payload)]) + mask + masked)

    async def receive(self):
        """The next data frame's text (keepalive pings are answered)."""
        while True:
            first, second = await self.reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack("!H", await self.reader.readexactly(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", await self.reader.readexactly(8))[0]
            payload = await self.reader.readexactly(length)
            opcode = first & 0x0F
            if opcode == 0x9:
                mask = os.urandom(4)
                self.writer.write(bytes([0x8A, 0x80 | len(payload)]) + mask
                                  + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
                continue
            if opcode == 0x8:
                raise RuntimeError(f"closed by the server: {payload[:2].hex()}")
            return payload.decode()

    def close(self):
        self.writer.close()


async def open_all(port, count, tls, path):
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def one():
        async with gate:
            return await Client.open("127.0.0.1", port, tls, path)
    return await asyncio.gather(*(one() for _ in range(count)))


async def scenario(server, port, count, tls, label, run_settings):
    started = time.monotonic()
    clients = await open_all(port, count, tls, "/echo" if run_settings else PATH)
    opened = time.monotonic() - started

    started = time.monotonic()
    for i, client in enumerate(clients):
        client.send(f"echo {i}")
    echoes = await asyncio.gather(*(asyncio.wait_for(c.receive(), 60) for c in clients))
    echoed = time.monotonic() - started
    wrong = sum(echo != f"echo {i}" for i, echo in enumerate(echoes))

    await asyncio.sleep(1)  # every connection parked again
    usage = Usage(server)
    threads = usage.totals()[1]

    broadcast, missed = None, 0
    if not run_settings:  # the example /echo does not broadcast
        started = time.monotonic()
        clients[0].send("broadcast: hello everyone")
        received = await asyncio.gather(*(asyncio.wait_for(c.receive(), 60) for c in clients))
        broadcast = time.monotonic() - started
        missed = sum(text != "broadcast: hello everyone" for text in received)
    for client in clients:
        client.close()
    return {"label": label, "connections": count, "opened_s": opened, "echo_s": echoed,
            "wrong_echoes": wrong, "threads": threads, "rss_kib": usage.totals()[2],
            "broadcast_s": broadcast, "missed": missed}


def start_with_run_settings(server):
    """Starts httpd as `make run` would, from a shell's usual soft limit of
    1,024 descriptors: run-httpd must raise it for 10,000 connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, soft), hard))
    try:
        server.start("--loglevel", "warn")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def measure_on_new_httpd(count, tls, label, run_settings=False):
    """A fresh httpd for each run: RSS per connection is measured from its
    own baseline. (It loads mod_ssl and mod_http2 for wss; mod_http2 starts
    its own idle worker threads, counted with the MPM's.)"""
    state = tempfile.mkdtemp(prefix="bench-idle-", dir="/var/tmp")
    os.chmod(state, 0o755)
    if run_settings:
        server = Httpd(state, tls=True)
        start_with_run_settings(server)
        capacity = [line for line in server.error_log.splitlines() if "a child holds up to" in line]
        print("httpd:", capacity[-1].split("] ", 3)[-1] if capacity else "(no capacity line in the error log)")
    else:
        server = Httpd(state, handler_root=TOP / "bench/handlers", extra_conf=SERVER_CONF, tls=True)
        server.start("--loglevel", "warn")  # inherits the raised descriptor limit
    try:
        baseline = Usage(server).totals()[2]
        port = server.tls_port if tls else server.port
        result = asyncio.run(scenario(server, port, count, tls, label, run_settings))
        result["rss_per_connection_kib"] = (result["rss_kib"] - baseline) / count
        # The closes finish before httpd stops: an immediate `stop` while
        # thousands of connections close has crashed the child in the event
        # MPM's close_worker_sockets, which reads a worker's socket as that
        # worker may be freeing it (a core dump's reading, not proven).
        settled_usage(server, timeout=60)
        result["max_workers_logged"] = "reached MaxRequestWorkers" in server.error_log
        return result
    finally:
        server.stop()
        server.assert_no_crash()


def print_table(results):
    print(f"{'':4} {'held':>7} {'httpd threads':>13} {'RSS/idle conn':>13} {'open':>7} {'all echo':>9} "
          f"{'broadcast to all':>16}")
    for r in results:
        print(f"{r['label']:4} {r['connections']:>7,} {r['threads']:>13} {r['rss_per_connection_kib']:>9.1f} KiB "
              f"{r['opened_s']:>6.2f}s {r['echo_s']:>8.2f}s "
              + (f"{r['broadcast_s'] * 1000:>13.1f} ms" if r["broadcast_s"] is not None else f"{'-':>16}"),
              flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--tls-connections", type=int, default=1_000)
    parser.add_argument("--run-settings", action="store_true",
                        help="make run's httpd settings and its /echo, not the benchmark's")
    args = parser.parse_args()

    wanted = args.connections + args.tls_connections + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(wanted, soft), max(wanted, hard)))

    tls = ssl.create_default_context()
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE
    tls.set_alpn_protocols(["http/1.1"])
    results = []
    try:
        results.append(measure_on_new_httpd(args.connections, None, "ws", args.run_settings))
        if args.tls_connections:
            results.append(measure_on_new_httpd(args.tls_connections, tls, "wss", args.run_settings))
    finally:
        print_table(results)
    for r in results:
        if r["max_workers_logged"]:  # all workers were busy at some moment: a note, not a failure
            print(f"{r['label']}: httpd logged 'server reached MaxRequestWorkers setting'")
    failures = [r for r in results if r["wrong_echoes"] or r["missed"]]
    for r in failures:
        print(f"{r['label']}: {r['wrong_echoes']} wrong echoes, {r['missed']} missed the broadcast")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
