"""Apache's access control runs before the upgrade: authentication and
authorization answer 401/403 and the handler never runs; a user who passes
is named to the handler. Over HTTP/1.1, wss and HTTP/2 alike."""

import base64
import os
import pathlib
import shutil
import subprocess
import tempfile

import pytest

from conftest import MODULES, TEST_HANDLERS, build_handler, facts_over_ws, serve, tls_client_context
from h2ws import H2WebSocket
from rawws import upgrade_status

ALICE = "Basic " + base64.b64encode(b"alice:wonder").decode()
MALLORY = "Basic " + base64.b64encode(b"alice:guess").decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("handlers")
    for location in ("members", "office", "closed", "open"):
        build_handler(TEST_HANDLERS / "request_facts_wsh.swift", root, f"{location}/request_facts_wsh.swift")
    # httpd's children (www-data) read the password file on each request.
    readable = pathlib.Path(tempfile.mkdtemp(dir="/var/tmp"))
    os.chmod(readable, 0o755)
    passwords = readable / "htpasswd"
    subprocess.run(["htpasswd", "-cb", str(passwords), "alice", "wonder"], check=True, capture_output=True)
    os.chmod(passwords, 0o644)
    try:
        yield from serve(tmp_path_factory, tls=True, handler_root=root, extra_conf=f"""
LoadModule auth_basic_module {MODULES}/mod_auth_basic.so
LoadModule authn_core_module {MODULES}/mod_authn_core.so
LoadModule authn_file_module {MODULES}/mod_authn_file.so
LoadModule authz_user_module {MODULES}/mod_authz_user.so
LoadModule authz_host_module {MODULES}/mod_authz_host.so
<Location /members>
    AuthType Basic
    AuthName "members"
    AuthUserFile {passwords}
    Require valid-user
</Location>
<Location /office>
    Require ip 10.0.0.1
</Location>
<Location /closed>
    Require all denied
</Location>
""")
    finally:
        shutil.rmtree(readable)


def handler_runs(server):
    return server.error_log.count("request_facts handshake ran")


def status_of(server, path, authorization=None):
    return upgrade_status(server.port, path, f"Authorization: {authorization}\r\n" if authorization else "")


def h2_stream(server, path, authorization=None):
    headers = [("authorization", authorization)] if authorization else []
    return H2WebSocket(server.tls_port, path, headers=headers)


def test_basic_auth_answers_401_before_the_handler(server):
    before = handler_runs(server)
    status, headers = status_of(server, "/members/request_facts")
    assert status == 401
    assert headers["www-authenticate"] == 'Basic realm="members"'
    assert status_of(server, "/members/request_facts", MALLORY)[0] == 401
    assert handler_runs(server) == before


def test_basic_auth_upgrades_with_credentials_and_names_the_user(server):
    facts = facts_over_ws(server.url("/members/request_facts"), ALICE)
    assert facts["user"] == "alice"


def test_basic_auth_over_wss(server):
    facts = facts_over_ws(server.wss_url("/members/request_facts"), ALICE, ssl=tls_client_context())
    assert (facts["user"], facts["secure"]) == ("alice", "true")


def test_basic_auth_over_http2(server):
    before = handler_runs(server)
    refused = h2_stream(server, "/members/request_facts")
    assert refused.status == 401
    refused.close()
    assert handler_runs(server) == before
    admitted = h2_stream(server, "/members/request_facts", ALICE)
    assert admitted.status == 200
    _, opcode, payload = admitted.read_frame()
    assert opcode == 0x1 and "user: alice" in payload.decode().split("\n")
    admitted.close()


def test_require_ip_answers_403_and_the_handler_never_runs(server):
    before = handler_runs(server)
    assert status_of(server, "/office/request_facts")[0] == 403
    forbidden = h2_stream(server, "/office/request_facts")
    assert forbidden.status == 403
    forbidden.close()
    assert handler_runs(server) == before
    assert "AH01630: client denied by server configuration" in server.error_log


def test_require_all_denied_answers_403(server):
    before = handler_runs(server)
    assert status_of(server, "/closed/request_facts")[0] == 403
    assert handler_runs(server) == before


def test_an_open_location_runs_the_handler(server):
    # The counterpart of the refusals above: the same handler, no rule.
    before = handler_runs(server)
    assert facts_over_ws(server.url("/open/request_facts"))["user"] == "(none)"
    assert handler_runs(server) == before + 1
