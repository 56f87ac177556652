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
import sys
import tempfile

from websockets.asyncio.client import connect

TOP = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOP / "Tests/integration"))
from conftest import Httpd  # noqa: E402

MESSAGE = "a fairly compressible message, " * 64


def httpd_pss_kib(server):
    total = 0
    for pid in server.pids():
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
        negotiated = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        assert ("permessage-deflate" in negotiated) == bool(compression), negotiated
        await ws.send(MESSAGE)
        assert await ws.recv() == MESSAGE
        sockets.append(ws)
    await asyncio.sleep(1)
    return httpd_pss_kib(server), set(server.pids())


async def measure(server, count, compression):
    sockets = []
    try:
        half, half_pids = await open_connections(server, count // 2, compression, sockets)
        full, full_pids = await open_connections(server, count - count // 2, compression, sockets)
        # A child started in between would count its own cost as the
        # connections'.
        assert half_pids == full_pids, "httpd started processes during the measurement"
    finally:
        for ws in sockets:
            await ws.close()
    return (full - half) / (count - count // 2)


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    # Four children with a thread for every connection from the start
    # (ThreadLimit lifts the event MPM's cap of 64), so that no process is
    # started while measuring.
    threads = (count + 64) // 4 + 1
    extra = (f"ServerLimit 8\nThreadLimit {threads}\nThreadsPerChild {threads}\nMaxRequestWorkers {4 * threads}\n"
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
