"""Handler code that traps or holds its thread, on an httpd with several
children: a trap is named in the error log before its child dies (handler,
resource, connection, cause, backtrace), the other children keep serving,
a handler that traps too often is refused with 503 until its period has
passed, and a slow callback is named in a warning. These servers crash on
purpose, so they are started and stopped here, without the crash check of
serve()/server_with."""

import re
import subprocess
import time

import pytest

from conftest import TEST_HANDLERS, TOP, Httpd, build_handler, refused_startup
from rawws import RawWebSocket, frame, upgrade_status

# Debian's stock event MPM sizes, with two children started.
CHILDREN = """
StartServers 2
ServerLimit 3
MinSpareThreads 25
MaxSpareThreads 75
ThreadLimit 64
ThreadsPerChild 25
MaxRequestWorkers 75
"""
PERIOD = 6
ENTRY = re.compile(r"\[pid (\d+):tid \d+\] \[client 127\.0\.0\.1:\d+\] the WebSocket handler "
                   r"handler_trapping_wsh\.Trapping \(resource /trapping, log id \S+\) trapped: (.*)")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("handlers")
    build_handler(TEST_HANDLERS / "trapping_wsh.swift", root)
    build_handler(TEST_HANDLERS / "misbehaving_wsh.swift", root)
    build_handler(TOP / "examples/echo_wsh.swift", root)
    return root


@pytest.fixture
def crashing_server(tmp_path_factory, root):
    """Starts an httpd of two children, with more configuration; stops it
    afterwards."""
    started = []

    def start(conf=""):
        server = Httpd(tmp_path_factory.mktemp("httpd"), handler_root=root, extra_conf=CHILDREN + conf).start()
        started.append(server)
        return server
    yield start
    for server in started:
        server.stop()


def child_of(server, sock):
    """The httpd child holding the server side of a client socket."""
    port = sock.getsockname()[1]
    out = subprocess.run(["ss", "-tnpH", "state", "established", f"dport = :{port}"],
                         capture_output=True, text=True).stdout
    return re.search(r"pid=(\d+)", out).group(1)


def open_on_every_child(server, count=20):
    """`count` /echo connections, more if need be until both children hold
    some; returns {connection: child pid}."""
    connections = {}
    while len(connections) < count or len(set(connections.values())) < 2:
        assert len(connections) < 100, "every connection went to the same child"
        ws = RawWebSocket(server.port, "/echo")
        connections[ws] = child_of(server, ws.sock)
    return connections


def echo(ws, text):
    ws.send(frame(0x1, text.encode()))
    return ws.read_frame() == (True, 0x1, text.encode())


def send_and_wait_for_end(server, command, path="/trapping"):
    """Sends one command and returns once the server ended the connection."""
    ws = RawWebSocket(server.port, path, timeout=10)
    ws.send(frame(0x1, command.encode()))
    try:
        while True:
            ws.read_frame()
    except (EOFError, ConnectionResetError):
        pass
    ws.close()


def wait_for_entries(server, count, timeout=1.0):
    """The trap entries once there are `count` of them, each as (pid,
    cause, the whole entry with its backtrace lines)."""
    deadline = time.monotonic() + timeout
    while True:
        log = server.error_log
        found = list(ENTRY.finditer(log))
        if len(found) >= count:
            entries = []
            for match in found:
                prefix = f"[pid {match.group(1)}:"
                following = log[match.end():].splitlines()[1:]
                frames = [line for line in following if prefix in line and "  #" in line]
                entries.append((match.group(1), match.group(2), frames))
            return entries
        assert time.monotonic() < deadline, f"no trap entry within {timeout} s:\n{log}"
        time.sleep(0.02)


def test_a_trap_is_named_and_other_children_keep_serving(crashing_server):
    server = crashing_server()
    connections = open_on_every_child(server)
    ws = RawWebSocket(server.port, "/trapping")
    ws.send(frame(0x1, b"trap"))
    started = time.monotonic()
    [(pid, cause, frames)] = wait_for_entries(server, 1)
    assert time.monotonic() - started < 1.0
    assert "a Swift runtime check failed" in cause and "index out of range" in cause
    assert frames[0].split("  #0 ")[1].split()[1] == "handler_trapping_wsh.Trapping.onMessage", frames[0]
    assert any("SwiftWebSocket.ParkedConnection" in line for line in frames)
    ws.close()
    others = [c for c, child in connections.items() if child != pid]
    assert others, "no connection on another child"
    assert all(echo(c, "still here") for c in others)
    # The dead child's own connections are gone with it.
    for c in connections:
        c.close()


def test_the_runtimes_message_is_quoted(crashing_server):
    server = crashing_server()
    send_and_wait_for_end(server, "fatal")
    [(_, cause, frames)] = wait_for_entries(server, 1)
    assert ('the runtime said: "handler_trapping_wsh/trapping_wsh.swift:23: Fatal error: '
            'the trapping handler was asked to stop"') in cause
    assert any("Trapping.onMessage" in line for line in frames)


def test_a_handler_trapping_too_often_is_refused_until_its_period_passed(crashing_server):
    server = crashing_server(f"SwiftWebSocketTrapLimit 3 {PERIOD}s\n")
    first = time.monotonic()
    for command in ("trap", "fatal", "segv"):
        send_and_wait_for_end(server, command)
    causes = [cause for _, cause, _ in wait_for_entries(server, 3)]
    assert "invalid memory access (SIGSEGV) at 0x8" in causes[2]
    status, headers = upgrade_status(server.port, "/trapping")
    assert status == 503
    assert 1 <= int(headers["retry-after"]) <= PERIOD
    assert "refusing WebSocket handshake for /trapping with 503: its handler handler_trapping_wsh.Trapping " \
           f"trapped 3 times within {PERIOD} s" in server.error_log
    assert "[swiftwebsocket:error]" in server.error_log  # the first refusal; the next ones at info
    ws = RawWebSocket(server.port, "/echo")
    assert echo(ws, "other resources keep serving")
    ws.close()
    time.sleep(max(0.0, first + PERIOD + 0.5 - time.monotonic()))
    ws = RawWebSocket(server.port, "/trapping")
    assert echo(ws, "served again")
    ws.close()


def test_a_changed_handler_loaded_by_a_graceful_restart_starts_with_no_traps(crashing_server, root):
    server = crashing_server("SwiftWebSocketTrapLimit 1 10min\n")
    send_and_wait_for_end(server, "trap")
    wait_for_entries(server, 1)
    assert upgrade_status(server.port, "/trapping")[0] == 503
    server.graceful()
    assert upgrade_status(server.port, "/trapping")[0] == 503, "an unchanged handler keeps its count"
    handler = root / "trapping_wsh.so"
    handler.write_bytes(handler.read_bytes())  # a new modification time: a changed file
    server.graceful()
    assert upgrade_status(server.port, "/trapping")[0] == 101


def test_a_thrown_error_closes_with_1011_and_is_no_trap(crashing_server):
    server = crashing_server("SwiftWebSocketTrapLimit 1 10min\n")
    for _ in range(3):
        ws = RawWebSocket(server.port, "/trapping")
        ws.send(frame(0x1, b"throw"))
        assert ws.read_close() == 1011
        ws.close()
    ws = RawWebSocket(server.port, "/trapping")
    assert echo(ws, "not refused")
    ws.close()
    log = server.error_log
    assert log.count("handler_trapping_wsh.Trapping threw Failure(); closing with 1011") == 3
    assert "trapped" not in log and "exit signal" not in log


def test_a_slow_callback_is_named_once_with_its_duration(crashing_server):
    server = crashing_server()
    ws = RawWebSocket(server.port, "/trapping", timeout=10)
    ws.send(frame(0x1, b"sleep 2"))
    assert ws.read_frame() == (True, 0x1, b"slept")
    ws.close()
    warnings = re.findall(r"\[swiftwebsocket:warn\] .* /trapping: handler_trapping_wsh\.Trapping\.onMessage held its "
                          r"thread for (\d+) ms", server.error_log)
    assert len(warnings) == 1 and 2000 <= int(warnings[0]) < 2500, server.error_log


def test_a_blocking_handler_slow_between_receives_is_named(crashing_server):
    server = crashing_server("<Location /misbehaving>\n  SwiftWebSocketSlowCallback 500ms\n</Location>\n")
    ws = RawWebSocket(server.port, "/misbehaving", timeout=10)
    ws.send(frame(0x1, b"sleep 1"))
    assert ws.read_close() == 1000
    ws.close()
    time.sleep(0.2)
    assert re.search(r"/misbehaving: handler_misbehaving_wsh\.Misbehaving\.transferData held its thread for 1\d\d\d ms "
                     r"\(SwiftWebSocketSlowCallback 0\.5 seconds\)", server.error_log), server.error_log


@pytest.mark.parametrize("arguments", ["0 10s", "65 10s", "3", "3 soon", "3 0", "off 10s"])
def test_a_malformed_trap_limit_stops_httpd(tmp_path_factory, arguments):
    said = refused_startup(tmp_path_factory, extra_conf=f"SwiftWebSocketTrapLimit {arguments}\n")
    assert "SwiftWebSocketTrapLimit: expected \"off\", or a count of traps from 1 to 64" in said
