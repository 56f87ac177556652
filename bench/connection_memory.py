"""Memory per open WebSocket connection, with and without permessage-deflate.

Starts httpd (event MPM, the built module, the example /echo), opens N
connections that each exchange one compressible message (so any zlib
streams exist on both sides of the server), and reports how the
proportional set size (Pss, shared pages split fairly) of all httpd
processes grows from N/2 to N open connections, per connection. The first
half pays what is paid once per process (code pages touched, runtime
metadata, thread pools), which is not a cost per connection.
Run: .venv/bin/python bench/connection_memory.py [N]
"""

import asyncio
import pathlib
import subprocess
import sys
import tempfile

from websockets.asyncio.client import connect

TOP = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOP / "Tests/integration"))
from conftest import Httpd  # noqa: E402

MESSAGE = "a fairly compressible message, " * 64


def httpd_pss_kib(server):
    pids = subprocess.run(["pgrep", "-f", str(server.conf)], capture_output=True, text=True).stdout.split()
    total = 0
    for pid in pids:
        try:
            for line in open(f"/proc/{pid}/smaps_rollup"):
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


async def open_connections(server, count, compression, sockets):
    for _ in range(count):
        ws = await connect(server.url("/echo"), compression=compression, max_size=None)
        await ws.send(MESSAGE)
        assert await ws.recv() == MESSAGE
        sockets.append(ws)
    await asyncio.sleep(1)
    return httpd_pss_kib(server)


async def measure(server, count, compression):
    sockets = []
    try:
        half = await open_connections(server, count // 2, compression, sockets)
        full = await open_connections(server, count - count // 2, compression, sockets)
    finally:
        for ws in sockets:
            await ws.close()
    return (full - half) / (count - count // 2)


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    workers = count + 64
    extra = (f"ServerLimit 8\nThreadsPerChild {workers // 4 + 1}\nMaxRequestWorkers {4 * (workers // 4 + 1)}\n"
             "StartServers 4\nMinSpareThreads 1\nMaxSpareThreads 100000\n")
    print(f"{count} connections, each after one {len(MESSAGE)}-byte echo; Pss growth of all httpd processes "
          f"from {count // 2} to {count} open connections")
    for label, compression in [("without compression", None), ("with permessage-deflate", "deflate")]:
        with tempfile.TemporaryDirectory() as state:
            server = Httpd(state, extra_conf=extra).start()
            try:
                per_connection = asyncio.run(measure(server, count, compression))
            finally:
                server.stop()
        print(f"  {label:26s} {per_connection:7.1f} KiB per connection")


if __name__ == "__main__":
    main()
