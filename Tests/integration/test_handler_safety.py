"""What a handler gets wrong must not corrupt the response or the process."""

import shutil
import subprocess
import time

import pytest

from conftest import TOP, start_httpd
from rawws import RawWebSocket, http_request, upgrade_request

HANDLERS = TOP / "Tests/integration/handlers"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("handlers")
    for source in HANDLERS.glob("*_wsh.swift"):
        shutil.copy(source, root)
        subprocess.run([str(TOP / "bin/swiftwebsocket-build"), str(root / source.name)],
                       check=True, capture_output=True)
    shutil.copy(TOP / "examples/echo_wsh.so", root)
    # One child process, so the keeper sees its previous connection.
    extra = "StartServers 1\nServerLimit 1\nThreadsPerChild 8\nMaxRequestWorkers 8\nTimeout 2\n"
    httpd = start_httpd(tmp_path_factory, handler_root=root, extra_conf=extra)
    yield httpd
    httpd.stop()
    httpd.assert_no_crash()


def test_header_injection_is_refused_with_500(server):
    status, headers, sock, rest = http_request(server.port, upgrade_request(path="/bad_header"))
    sock.close()
    assert status == 500
    assert "x-injected" not in headers
    assert "invalid response header" in server.error_log


def test_websocket_kept_past_its_request_or_used_from_another_thread_refuses(server):
    first = RawWebSocket(server.port, "/keeper")
    assert first.read_frame() == (True, 0x1, b"other thread refused")
    assert first.read_close() == 1000
    first.close()
    second = RawWebSocket(server.port, "/keeper")
    fin, opcode, payload = second.read_frame()
    assert payload.startswith(b"late send refused"), payload
    assert second.read_frame() == (True, 0x1, b"other thread refused")
    second.close()


def test_idle_client_gets_1001_after_timeout(server):
    ws = RawWebSocket(server.port, "/echo")
    started = time.monotonic()
    assert ws.read_close() == 1001
    assert 1.5 < time.monotonic() - started < 10
    assert ws.at_eof()
    ws.close()
