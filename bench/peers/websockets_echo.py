"""The websockets library's echo server, as the benchmark runs it.

Configured for its best echo speed: the asyncio implementation (the
library's fastest) on uvloop, its C speedups for masking (in the wheel),
no keepalive pings or per-connection logging, and messages up to 16 MiB.
permessage-deflate is the library's default: accepted when a client
offers it, with the library's default settings (window 2^12, memLevel 5).
Run: websockets_echo.py PORT
"""

import asyncio
import logging
import sys

import uvloop
from websockets.asyncio.server import serve


async def echo(connection):
    async for message in connection:
        await connection.send(message)


async def main(port):
    async with serve(echo, "127.0.0.1", port, max_size=16 * 1024 * 1024, ping_interval=None,
                     backlog=4096):
        print(f"listening on 127.0.0.1:{port}", flush=True)
        await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    logging.disable(logging.CRITICAL)
    uvloop.run(main(int(sys.argv[1])))
