"""What a handler gets wrong must not corrupt the response or the process."""

import pytest

from conftest import TEST_HANDLERS, build_handler, serve
from rawws import RawWebSocket, http_request, upgrade_request


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("handlers")
    for name in ("bad_header_wsh.swift", "keeper_wsh.swift"):
        build_handler(TEST_HANDLERS / name, root)
    # One child process (run-httpd's), so the keeper sees its previous
    # connection.
    yield from serve(tmp_path_factory, handler_root=root)


def test_header_injection_is_refused_with_500(server):
    status, headers, sock, rest = http_request(server.port, upgrade_request(path="/bad_header"))
    sock.close()
    assert status == 500
    assert "x-injected" not in headers
    assert "invalid response header" in server.error_log


def test_websocket_from_another_thread_queues_sends_and_refuses_the_rest(server):
    first = RawWebSocket(server.port, "/keeper")
    assert first.read_frame() == (True, 0x1, b"from another thread")
    assert first.read_frame() == (True, 0x1, b"receive refused, send queued")
    assert first.read_close() == 1000
    first.close()
    second = RawWebSocket(server.port, "/keeper")
    fin, opcode, payload = second.read_frame()
    assert payload.startswith(b"late send refused"), payload
    assert second.read_frame() == (True, 0x1, b"from another thread")
    second.close()
