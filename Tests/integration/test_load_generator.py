"""The benchmark's load generator (bench/wsload.c) against the module: it
must complete round trips without errors in every mode `make bench` uses,
or its figures mean nothing."""

import json
import select
import subprocess
import sys

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
    # run-httpd's child has 64 threads, one per open WebSocket of a
    # blocking handler (/echo parks: it holds none).
    figures = wsload("echo", httpd.port, "/echo_noext", 80, 64, 1)
    assert figures["never_upgraded"] >= 16


def test_a_refusing_server_counts_as_errors(httpd):
    # The counterpart: a path without a handler never upgrades.
    figures = wsload("echo", httpd.port, "/no/such/handler", 2, 64, 1)
    assert figures["rate"] == 0
    assert figures["errors"] > 0


def test_hold_keeps_connections_open_until_told(httpd):
    holder = subprocess.Popen([str(TOP / "build/wsload"), "hold", str(httpd.port), "/echo", "5", "4096", "deflate"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert select.select([holder.stdout], [], [], 30)[0], "wsload hold never reported"
        assert json.loads(holder.stdout.readline()) == {"held": 5, "errors": 0, "never_upgraded": 0}
        assert holder.poll() is None
    finally:
        holder.stdin.close()
    assert holder.wait(10) == 0


def test_side_by_side_writes_its_table(tmp_path):
    # make bench's orchestration, at the smallest size: the module against
    # the trivial server (the peers need `make bench`'s installs).
    result = subprocess.run(
        [sys.executable, str(TOP / "bench/side_by_side.py"), "--servers", "module,trivial", "--runs", "1",
         "--seconds", "0.3", "--connections", "2", "--sizes", "64", "--idle", "20",
         "--results", str(tmp_path)], capture_output=True, text=True, timeout=120, check=True)
    assert "echo 64 B x 2" in result.stdout and "KiB per idle connection" in result.stdout
    [document] = [json.loads(path.read_text()) for path in tmp_path.glob("*.json")]
    figures = {(record["row"], record["server"]): record for record in document["results"]}
    module, ceiling = figures[("echo 64 B x 2", "mod_swiftwebsocket")], figures[("echo 64 B x 2", "trivial (ceiling)")]
    assert module["rate"] > 0 and module["errors"] == 0
    assert ceiling["module_ratio"] == round(module["rate"] / ceiling["rate"], 2)
    assert figures[("echo 64 B x 2, deflate", "mod_swiftwebsocket")]["rate"] > 0
    assert ("echo 64 B x 2, deflate", "trivial (ceiling)") not in figures
    memory = figures[("KiB per idle connection (N=20)", "mod_swiftwebsocket")]
    assert memory["held"] == 20 and memory["rss_after_kib"] > memory["rss_before_kib"]
    assert len(list(tmp_path.glob("*.csv"))) == 1
