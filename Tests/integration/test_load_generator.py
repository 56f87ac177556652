"""The benchmarks' load generators against the module: bench/wsload.c must
complete round trips without errors in every mode `make bench` uses, and
bench/wsfanout.c must see every member get every message in those `make
bench-broadcast` uses, or their figures mean nothing."""

import json
import select
import socket
import subprocess
import sys
import time

import pytest

from conftest import TOP, free_port


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


def wsfanout(*args):
    """wsfanout's JSON and exit status (0: every member had every message)."""
    result = subprocess.run([str(TOP / "build/wsfanout"), *map(str, args)],
                            capture_output=True, text=True, timeout=60)
    return json.loads(result.stdout), result.returncode


@pytest.fixture(scope="module")
def trivial_fanout():
    port = free_port()
    server = subprocess.Popen([str(TOP / "build/trivial_fanout"), str(port)])
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port
    server.terminate()
    server.wait(10)


@pytest.mark.parametrize("mode", ["", "deflate"])
def test_broadcast_reaches_every_member_every_round(httpd, mode):
    figures, status = wsfanout("broadcast", httpd.port, "/chat", 100, 3, *([mode] if mode else []))
    assert (status, figures.get("error")) == (0, None)
    assert figures["rounds_completed"] == 3 and len(figures["rounds"]) == 3
    assert (figures["missing"], figures["duplicates"], figures["unexpected"], figures["lost_members"]) == (0, 0, 0, 0)
    for each in figures["rounds"]:
        assert 0 < each["first_us"] <= each["median_us"] <= each["last_us"]


def test_broadcast_fails_when_members_miss_the_message(httpd):
    # /echo answers only the sender: the other members never hear a thing,
    # and wsfanout says so within its deadline (5 s + 1 s a thousand).
    started = time.monotonic()
    figures, status = wsfanout("broadcast", httpd.port, "/echo", 20, 3)
    assert status == 1
    assert figures["error"] == "19 of 20 members never got a warm-up message from their room in 5 s (0 connections lost)"
    assert figures["rounds_completed"] == 0
    assert time.monotonic() - started < 15


@pytest.mark.parametrize("mode", ["", "deflate"])
def test_trivial_fanout_reaches_every_member(trivial_fanout, mode):
    figures, status = wsfanout("broadcast", trivial_fanout, "/", 200, 3, *([mode] if mode else []))
    assert (status, figures["rounds_completed"], figures["missing"]) == (0, 3, 0)


def test_rooms_count_every_delivery(trivial_fanout):
    # One room: the trivial server's "everyone" is that room.
    figures, status = wsfanout("rooms", trivial_fanout, "/", 1, 10, 50, 1)
    assert (status, figures.get("error")) == (0, None)
    assert figures["published"] == 50
    assert figures["expected"] == figures["delivered"] == 500 and figures["lost"] == 0
    assert 0 < figures["p50_us"] <= figures["p99_us"] <= figures["max_us"]


def test_rooms_fail_when_the_server_mixes_them(trivial_fanout):
    figures, status = wsfanout("rooms", trivial_fanout, "/", 3, 4, 30, 1)
    assert status == 1
    assert "does not keep rooms apart" in figures["error"]


def test_bench_broadcast_writes_its_table(tmp_path):
    # make bench-broadcast's orchestration, at the smallest size, without
    # the brokered column (it needs SwiftWebSocketBroker and redis-server).
    result = subprocess.run(
        [sys.executable, str(TOP / "bench/broadcast.py"), "--servers", "local,trivial", "--members", "30",
         "--rounds", "2", "--rooms", "none", "--results", str(tmp_path)],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "last delivery, N=30, ms" in result.stdout and "last delivery, N=30, deflate, ms" in result.stdout
    [document] = [json.loads(path.read_text()) for path in tmp_path.glob("broadcast-*.json")]
    figures = {(record["row"], record["server"]): record for record in document["results"]}
    local = figures[("last delivery, N=30, ms", "process-local (1 child)")]
    trivial = figures[("last delivery, N=30, deflate, ms", "trivial fan-out")]
    assert local["rounds_completed"] == 2 and local["last_us_median"] > 0
    assert trivial["deflate"] and trivial["rounds_completed"] == 2
