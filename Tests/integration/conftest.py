"""A real httpd with the built module, started per test module on a free
port through the same scripts/run-httpd that `make run` uses."""

import pathlib
import socket
import subprocess
import time

import pytest

TOP = pathlib.Path(__file__).resolve().parents[2]
APACHE = "/usr/sbin/apache2"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Httpd:
    def __init__(self, state, handler_root=None, extra_conf=None):
        self.state = pathlib.Path(state)
        self.port = free_port()
        self.handler_root = handler_root
        self.extra_conf = extra_conf

    @property
    def conf(self):
        return self.state / "httpd.conf"

    @property
    def error_log(self):
        return (self.state / "error.log").read_text(errors="replace")

    def url(self, path):
        return f"ws://127.0.0.1:{self.port}{path}"

    def command(self, *extra):
        args = [str(TOP / "scripts/run-httpd"), "--port", str(self.port), "--state", str(self.state)]
        if self.handler_root:
            args += ["--handler-root", str(self.handler_root)]
        if self.extra_conf:
            extra_path = self.state / "extra.conf"
            self.state.mkdir(parents=True, exist_ok=True)
            extra_path.write_text(self.extra_conf)
            args += ["--extra", str(extra_path)]
        return args + list(extra)

    def start(self):
        subprocess.run(self.command(), check=True, capture_output=True, text=True)
        return self

    def stop(self):
        subprocess.run([APACHE, "-f", str(self.conf), "-k", "stop"], capture_output=True)
        pid_file = self.state / "httpd.pid"
        for _ in range(100):
            if not pid_file.exists():
                break
            time.sleep(0.1)

    def assert_no_crash(self):
        log = self.error_log
        for marker in ("Segmentation fault", "exit signal", "Aborted", "Fatal error"):
            assert marker not in log, f"httpd error log reports a crash: {marker}"


@pytest.fixture(scope="module")
def httpd(tmp_path_factory):
    server = Httpd(tmp_path_factory.mktemp("httpd")).start()
    yield server
    server.stop()
    server.assert_no_crash()


def start_httpd(tmp_path_factory, **kwargs):
    return Httpd(tmp_path_factory.mktemp("httpd"), **kwargs).start()
