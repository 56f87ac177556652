"""The benchmark's load generator (bench/wsload.c) against the module: it
must complete round trips without errors in every mode `make bench` uses,
or its figures mean nothing."""

import json
import subprocess

import pytest

from conftest import TOP


def wsload(*args):
    result = subprocess.run([str(TOP / "build/wsload"), *map(str, args)],
                            capture_output=True, text=True, timeout=60, check=True)
    return json.loads(result.stdout)


@pytest.mark.parametrize("connections,size,mode", [
    (1, 64, ""), (20, 4096, ""), (4, 262144, ""), (8, 4096, "deflate")])
def test_echo_round_trips(httpd, connections, size, mode):
    figures = wsload("echo", httpd.port, "/echo", connections, size, 1, *([mode] if mode else []))
    assert (figures["errors"], figures["never_upgraded"]) == (0, 0)
    assert figures["rate"] > 10
    assert figures["p50_us"] > 0


def test_handshakes(httpd):
    figures = wsload("handshakes", httpd.port, "/echo", 4, 1)
    assert figures["errors"] == 0
    assert figures["rate"] > 10


def test_connections_the_server_cannot_take_are_reported(httpd):
    # run-httpd's child has 64 threads, one per open WebSocket.
    figures = wsload("echo", httpd.port, "/echo", 80, 64, 1)
    assert figures["never_upgraded"] >= 16


def test_a_refusing_server_counts_as_errors(httpd):
    # The counterpart: a path without a handler never upgrades.
    figures = wsload("echo", httpd.port, "/no/such/handler", 2, 64, 1)
    assert figures["rate"] == 0
    assert figures["errors"] > 0
