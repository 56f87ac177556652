"""Soak: many connections each echoing many messages of random sizes, with
and without compression, some dropped abruptly midway, against a real
httpd. Prints messages delivered against sent and httpd's RSS, descriptors
and threads before and after; exits 1 if a cleanly closed connection lost
or garbled a message, if httpd did not come back to its baseline, or if it
crashed.

    .venv/bin/python Tests/soak/soak.py --connections 1000 --messages 1000   (make soak)
"""

import argparse
import asyncio
import pathlib
import random
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "integration"))
from conftest import Httpd, process_usage, settled_usage  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

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

WORDS = b"the quick brown fox jumps over a lazy dog while seven wizards quietly box jackals ".split()


def payload_pool(seed):
    """Random bytes and random text to slice messages from: the text
    compresses, the bytes do not."""
    rng = random.Random(seed)
    binary = rng.randbytes(1 << 17)
    text = b" ".join(rng.choice(WORDS) for _ in range(30_000))[: 1 << 17]
    return binary, text.decode()


class Tally:
    """Counts over all connections of one run. A connection that closed
    cleanly must have had every message it sent echoed back intact."""

    def __init__(self):
        self.clean = self.aborted = 0
        self.clean_sent = self.clean_delivered = self.aborted_sent = 0
        self.bytes = 0
        self.failures = []


async def soak_connection(url, index, args, compression, pool, tally):
    rng = random.Random(args.seed * 1_000_003 + index)
    binary, text = pool
    # Some connections are dropped (no close frame, a reset) at a random
    # message: the server must clean up after them.
    abort_at = rng.randrange(args.messages) if rng.random() < args.abort_fraction else None
    sent = delivered = 0
    try:
        async with connect(url, compression=compression, ping_interval=None, max_size=None,
                           open_timeout=60, close_timeout=30) as ws:
            for number in range(args.messages):
                if number == abort_at:
                    ws.transport.abort()
                    tally.aborted += 1
                    tally.aborted_sent += sent
                    return
                size = int(2 ** rng.uniform(0, args.max_size_bits))
                start = rng.randrange(len(binary) - size + 1)
                message = binary[start:start + size] if rng.random() < 0.5 else text[start:start + size]
                await ws.send(message)
                sent += 1
                reply = await ws.recv()
                if reply != message:
                    tally.failures.append(f"connection {index} message {number}: echo differs ({size} bytes)")
                    return
                delivered += 1
                tally.bytes += size
        tally.clean += 1
        tally.clean_sent += sent
        tally.clean_delivered += delivered
    except (ConnectionClosed, OSError, asyncio.TimeoutError) as error:
        tally.failures.append(f"connection {index}: {type(error).__name__}: {error} after {delivered} echoes")


async def soak(url, args, compression):
    tally = Tally()
    pool = payload_pool(args.seed)
    started = time.monotonic()
    await asyncio.gather(*(soak_connection(url, i, args, compression, pool, tally)
                           for i in range(args.connections)))
    return tally, time.monotonic() - started


def describe_usage(label, usage):
    fds, threads, rss = usage
    return f"{label}: RSS {rss / 1024:.1f} MiB, {fds} descriptors, {threads} threads"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=1000, help="per connection")
    parser.add_argument("--max-size-bits", type=int, default=16,
                        help="message sizes are 2^U(0, this) bytes: up to 64 KiB by default, most of them small")
    parser.add_argument("--abort-fraction", type=float, default=0.1, help="of connections dropped midway")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rss-bound-mib", type=float,
                        help="most httpd's RSS may grow across the soak, after the warm-up (default: 32 MiB "
                             "and 256 KiB a connection: a thread that echoed larger compressed messages keeps "
                             "more of malloc's arena than the warm-up's few made it keep)")
    args = parser.parse_args()
    if args.rss_bound_mib is None:
        args.rss_bound_mib = 32 + args.connections / 4

    threads = args.connections + 64
    state = pathlib.Path(tempfile.mkdtemp(prefix="soak-httpd-"))
    server = Httpd(state, extra_conf=SOAK_CONF.format(threads=threads, workers=2 * threads)).start()
    ok = True
    try:
        # Warm-up: every thread serves a connection, with and without
        # compression, so the baseline includes what stays resident after
        # any use (thread stacks, malloc arenas, per-thread zlib scratch).
        # Growth past it across the soak is what would be a leak.
        warm_up = argparse.Namespace(**{**vars(args), "messages": 5, "abort_fraction": 0})
        for compression in (None, "deflate"):
            asyncio.run(soak(server.url("/echo"), warm_up, compression))
        baseline = settled_usage(server)
        print(f"soak: {args.connections} connections x {args.messages} messages, sizes 1 B-"
              f"{2 ** args.max_size_bits} B, {args.abort_fraction:.0%} dropped midway")
        print(describe_usage("httpd before", baseline))
        for label, compression in (("plain", None), ("permessage-deflate", "deflate")):
            tally, seconds = asyncio.run(soak(server.url("/echo"), args, compression))
            print(f"{label}: {tally.clean} connections closed cleanly: {tally.clean_delivered} messages "
                  f"delivered of {tally.clean_sent} sent; {tally.aborted} dropped midway after "
                  f"{tally.aborted_sent} messages; {tally.bytes / 2 ** 20:.0f} MiB echoed in {seconds:.1f} s "
                  f"({(tally.clean_delivered) / seconds:.0f} messages/s)")
            for failure in tally.failures[:10]:
                print(f"  FAILED {failure}")
            ok &= (not tally.failures and tally.clean_delivered == tally.clean_sent
                   and tally.clean + tally.aborted == args.connections)
            print(describe_usage(f"httpd after {label}", settled_usage(server, timeout=30)))
        after = settled_usage(server, timeout=30)
        if after[0] > baseline[0] or after[1] > baseline[1]:
            print(f"FAILED: descriptors or threads above the baseline ({after[:2]} against {baseline[:2]})")
            ok = False
        if after[2] - baseline[2] > args.rss_bound_mib * 1024:
            print(f"FAILED: RSS grew by {(after[2] - baseline[2]) / 1024:.1f} MiB "
                  f"(bound {args.rss_bound_mib} MiB)")
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
