"""Soak: many connections each echoing many messages of random sizes, with
and without compression, some dropped abruptly midway, against a real
httpd. Prints what was delivered and httpd's RSS, descriptors and threads
before and after; exits 1 if a connection not dropped on purpose lost or
garbled a message or did not close with 1000, if httpd did not come back to
its baseline (RSS within a bound), or if it crashed.

    .venv/bin/python Tests/soak/soak.py --connections 1000 --messages 1000   (make soak)
"""

import argparse
import asyncio
import pathlib
import random
import signal
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "integration"))
from conftest import Httpd, settled_usage  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

# Enough threads for every connection at once, in one child (a thread per
# connection), plus a slot for the MPM's spare processes.
SOAK_CONF = """
ServerLimit 2
ThreadLimit {threads}
ThreadsPerChild {threads}
MaxRequestWorkers {workers}
MinSpareThreads 1
MaxSpareThreads {workers}
"""

# What httpd's RSS may grow by across the soak once warmed up, per
# connection on top of a fixed part: malloc's arenas fragment under
# compressed traffic of mixed sizes and are not returned, so some growth is
# not a leak. Measured: repeated compressed rounds of 200 connections grew
# RSS by 6, 4, 2, then under 1 MiB a round; a 200 x 100 soak grew 19 MiB,
# 200 x 400 grew 24 MiB.
RSS_BOUND_FIXED_MIB, RSS_BOUND_PER_CONNECTION_KIB = 16, 160

WORDS = b"the quick brown fox jumps over a lazy dog while seven wizards quietly box jackals ".split()


def payload_pool(seed):
    """Random bytes and random text to slice messages from: the text
    compresses, the bytes do not."""
    rng = random.Random(seed)
    binary = rng.randbytes(1 << 17)
    text = b" ".join(rng.choice(WORDS) for _ in range(30_000))[: 1 << 17]
    return binary, text.decode()


class Tally:
    """One run over all connections. A connection either closes cleanly
    (1000) with every message echoed back intact, or is dropped on purpose;
    anything else is a failure."""

    def __init__(self):
        self.clean = self.aborted = 0
        self.delivered = self.aborted_sent = 0
        self.bytes = 0
        self.failures = []


async def soak_connection(url, index, args, compression, pool, tally, size=None):
    """`size`: every message this long, instead of random sizes."""
    rng = random.Random(args.seed * 1_000_003 + index)
    binary, text = pool
    # Some connections are dropped at a random message (the transport
    # closed, no close frame): the server must clean up after them.
    abort_at = rng.randrange(args.messages) if rng.random() < args.abort_fraction else None
    delivered = 0
    try:
        async with connect(url, compression=compression, ping_interval=None, max_size=None,
                           open_timeout=60, close_timeout=30) as ws:
            if compression and not ws.response.headers.get("Sec-WebSocket-Extensions"):
                tally.failures.append(f"connection {index}: permessage-deflate was not agreed")
                return
            for number in range(args.messages):
                if number == abort_at:
                    ws.transport.abort()
                    tally.aborted += 1
                    tally.aborted_sent += number
                    return
                length = size or int(2 ** rng.uniform(0, args.max_size_bits))
                start = rng.randrange(len(binary) - length + 1)
                message = binary[start:start + length] if rng.random() < 0.5 else text[start:start + length]
                await ws.send(message)
                # A lost message fails the connection instead of hanging the
                # soak (the client answers pings, so nothing else ends it).
                if await asyncio.wait_for(ws.recv(), 60) != message:
                    tally.failures.append(f"connection {index} message {number}: echo differs ({length} bytes)")
                    return
                delivered += 1
                tally.bytes += length
        if ws.close_code != 1000:
            tally.failures.append(f"connection {index}: closed with {ws.close_code}, not 1000")
            return
        tally.clean += 1
        tally.delivered += delivered
    except Exception as error:  # noqa: BLE001 -- any of them fails this connection, not the soak
        tally.failures.append(f"connection {index}: {type(error).__name__}: {error} after {delivered} echoes")


async def soak(url, args, compression, size=None):
    tally = Tally()
    pool = payload_pool(args.seed)
    started = time.monotonic()
    await asyncio.gather(*(soak_connection(url, i, args, compression, pool, tally, size)
                           for i in range(args.connections)))
    return tally, time.monotonic() - started


def report(label, tally, seconds):
    """Prints a run's figures; returns whether it passed."""
    print(f"{label}: {tally.clean} connections closed cleanly with {tally.delivered} messages delivered, "
          f"each echoed intact; {tally.aborted} dropped midway after {tally.aborted_sent} messages; "
          f"{tally.bytes / 2 ** 20:.0f} MiB echoed in {seconds:.1f} s ({tally.delivered / seconds:.0f} messages/s)")
    for failure in tally.failures[:10]:
        print(f"  FAILED {failure}")
    if len(tally.failures) > 10:
        print(f"  ... and {len(tally.failures) - 10} more failures")
    return not tally.failures


def describe_usage(label, usage):
    fds, threads, rss = usage.totals()
    return f"{label}: RSS {rss / 1024:.1f} MiB, {fds} descriptors, {threads} threads"


def stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt  # runs the finally that stops httpd


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=1000, help="per connection")
    parser.add_argument("--max-size-bits", type=int, default=16,
                        help="message sizes are 2^U(0, this) bytes: up to 64 KiB by default, most of them small")
    parser.add_argument("--abort-fraction", type=float, default=0.1, help="of connections dropped midway")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rss-bound-mib", type=float,
                        help="most httpd's RSS may grow across the soak, after the warm-up (default "
                             f"{RSS_BOUND_FIXED_MIB} MiB and {RSS_BOUND_PER_CONNECTION_KIB} KiB a connection)")
    args = parser.parse_args()
    if args.rss_bound_mib is None:
        args.rss_bound_mib = RSS_BOUND_FIXED_MIB + args.connections * RSS_BOUND_PER_CONNECTION_KIB / 1024
    signal.signal(signal.SIGTERM, stop_on_sigterm)

    threads = args.connections + 64
    state = pathlib.Path(tempfile.mkdtemp(prefix="soak-httpd-"))
    server = Httpd(state, extra_conf=SOAK_CONF.format(threads=threads, workers=2 * threads))
    ok = True
    try:
        server.start()
        # Warm-up: every connection's thread echoes a few of the largest
        # messages, plain and compressed, so the baseline includes what a
        # thread keeps resident after any use (its stack, malloc's arenas,
        # the per-thread zlib scratch). Growth past it is what a leak makes.
        warm_up = argparse.Namespace(**{**vars(args), "messages": 3, "abort_fraction": 0})
        for label, compression in (("warm-up, plain", None), ("warm-up, deflate", "deflate")):
            ok &= report(label, *asyncio.run(soak(server.url("/echo"), warm_up, compression,
                                                  size=2 ** args.max_size_bits)))
        baseline = settled_usage(server)
        print(f"soak: {args.connections} connections x {args.messages} messages, sizes 1 B-"
              f"{2 ** args.max_size_bits} B, {args.abort_fraction:.0%} dropped midway")
        print(describe_usage("httpd before", baseline))
        for label, compression in (("plain", None), ("permessage-deflate", "deflate")):
            ok &= report(label, *asyncio.run(soak(server.url("/echo"), args, compression)))
            after = settled_usage(server, timeout=30)
            print(describe_usage(f"httpd after {label}", after))
        if after.counts() != baseline.counts():
            print(f"FAILED: processes, descriptors or threads are not back to the baseline "
                  f"({after.counts()} against {baseline.counts()})")
            ok = False
        growth = (after.totals()[2] - baseline.totals()[2]) / 1024
        if growth > args.rss_bound_mib:
            print(f"FAILED: RSS grew by {growth:.1f} MiB (bound {args.rss_bound_mib} MiB)")
            ok = False
        try:
            server.assert_no_crash()
        except AssertionError as error:
            print(f"FAILED: {error}")
            ok = False
    finally:
        server.stop()
    print("soak: " + ("passed" if ok else "FAILED") + f" (httpd state in {state})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
