"""A real httpd with the built module, started per test module on a free
port through the same scripts/run-httpd that `make run` uses."""

import asyncio
import os
import pathlib
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request

import pytest
from websockets.asyncio.client import connect

TOP = pathlib.Path(__file__).resolve().parents[2]
APACHE = "/usr/sbin/apache2"
MODULES = "/usr/lib/apache2/modules"
TEST_HANDLERS = TOP / "Tests/integration/handlers"


_built_handlers = {}  # (source text, file name) -> a private copy of the built .so


def build_handler(source, directory, name=None):
    """Copies a handler source into `directory` (as `name`) and builds it
    there with swiftwebsocket-build, as a user would. A source already
    built under the same file name (which names its Swift module) in this
    test run is copied instead: each build takes seconds."""
    target = pathlib.Path(directory) / (name or pathlib.Path(source).name)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, target)
    key = (target.read_text(), target.name)
    if key in _built_handlers:
        shutil.copy(_built_handlers[key], target.with_suffix(".so"))
    else:
        subprocess.run([str(TOP / "bin/swiftwebsocket-build"), str(target)], check=True, capture_output=True)
        cached = pathlib.Path(tempfile.mkdtemp(prefix="built-handler-")) / target.with_suffix(".so").name
        shutil.copy(target.with_suffix(".so"), cached)
        _built_handlers[key] = cached
    return target.with_suffix(".so")


def run(coroutine, timeout=30):
    """Runs a client coroutine to its end; a hung server fails the test
    after `timeout` seconds instead of hanging the suite."""
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


async def echo_roundtrip(url, message, **kwargs):
    """Sends one message to an echo handler (websockets client) and
    returns the reply."""
    async with connect(url, max_size=None, **kwargs) as ws:
        await ws.send(message)
        return await ws.recv()


def request_facts(text):
    """The request_facts handler's "name: value" lines as a dict."""
    return dict(line.split(": ", 1) for line in text.split("\n"))


def facts_over_ws(url, authorization=None, **options):
    """What the request_facts handler at `url` saw (websockets client;
    `options` go to connect, e.g. ssl=)."""
    if authorization:
        options["additional_headers"] = {"Authorization": authorization}

    async def go():
        async with connect(url, **options) as ws:
            return request_facts(await ws.recv())
    return run(go())


def server_certificate():
    """The self-signed certificate run-httpd serves (made on first use)."""
    base = subprocess.run([str(TOP / "scripts/make-certificate")], check=True,
                          capture_output=True, text=True).stdout.strip()
    return pathlib.Path(base + ".crt")


def tls_client_context(certificate=None, key=None):
    """A client context that trusts run-httpd's certificate and, given one,
    presents a client certificate (after the handshake, as TLS 1.3 asks
    when a <Location> requires it)."""
    context = ssl.create_default_context(cafile=str(server_certificate()))
    # TLS 1.3 whatever the machine's OpenSSL prefers: client certificates
    # then come by post-handshake authentication, not renegotiation.
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.post_handshake_auth = True
    if certificate:
        context.load_cert_chain(certificate, key)
    return context


def cpu_seconds(pids):
    """User and system time the processes `pids` have used so far; a process
    gone meanwhile counts nothing."""
    ticks = 0
    for pid in pids:
        try:
            stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            continue
        # After the ")" ending the command name: utime, stime are 12th, 13th.
        fields = stat.rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


class Usage:
    """Descriptors, threads and RSS (KiB) of each of an httpd's processes."""

    def __init__(self, server):
        self.by_pid = {}
        for pid in server.pids():
            try:
                fds = len(os.listdir(f"/proc/{pid}/fd"))
                status = pathlib.Path(f"/proc/{pid}/status").read_text()
            except FileNotFoundError:
                continue  # gone meanwhile
            fields = dict(line.split(":", 1) for line in status.splitlines())
            self.by_pid[pid] = (fds, int(fields["Threads"]), int(fields["VmRSS"].split()[0]))

    def totals(self):
        """(descriptors, threads, RSS in KiB) over all the processes."""
        return tuple(sum(values) for values in zip(*self.by_pid.values())) or (0, 0, 0)

    def counts(self):
        """Descriptors and threads per process: what must come back."""
        return {pid: usage[:2] for pid, usage in self.by_pid.items()}


def settled_usage(server, timeout=10):
    """Usage once descriptors and threads have stayed the same for 0.5 s:
    connections closing a moment ago are gone from it."""
    deadline = time.monotonic() + timeout
    usage, steady_since = Usage(server), time.monotonic()
    while time.monotonic() - steady_since < 0.5:
        assert time.monotonic() < deadline, "httpd's descriptors and threads never settled"
        time.sleep(0.1)
        reading = Usage(server)
        if reading.counts() != usage.counts():
            steady_since = time.monotonic()
        usage = reading
    return usage


def assert_back_to_baseline(server, baseline, rss_growth_kib, timeout=10):
    """Waits for the same processes as in `baseline` (a settled_usage) to
    hold no more descriptors and as many threads as then, and checks that
    their RSS grew by at most `rss_growth_kib` and nothing crashed."""
    deadline = time.monotonic() + timeout
    while True:
        usage = Usage(server)
        back = usage.by_pid.keys() == baseline.by_pid.keys() and all(
            usage.by_pid[pid][0] <= fds and usage.by_pid[pid][1] == threads
            for pid, (fds, threads) in baseline.counts().items())
        if back or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert back, f"processes, descriptors, threads: {usage.counts()}, baseline {baseline.counts()}"
    growth = usage.totals()[2] - baseline.totals()[2]
    assert growth <= rss_growth_kib, f"RSS grew by {growth} KiB (bound {rss_growth_kib} KiB)"
    server.assert_no_crash()


def one_child(async_request_worker_factor=400):
    """Event MPM settings for one child of 64 workers that accepts far more
    connections than it has threads: the MPM stops accepting past
    ThreadsPerChild + idle workers x AsyncRequestWorkerFactor."""
    return f"""
StartServers 1
ServerLimit 1
ThreadsPerChild 64
MaxRequestWorkers 64
MinSpareThreads 64
MaxSpareThreads 64
AsyncRequestWorkerFactor {async_request_worker_factor}
ListenBacklog 4096
"""


def module_status(server):
    """The module's lines of server-status?auto (SwiftWebSocket... keys,
    summed over the children), as a dict of numbers."""
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/server-status?auto", timeout=10) as response:
        lines = response.read().decode().splitlines()
    pairs = (line.split(": ", 1) for line in lines if line.startswith("SwiftWebSocket"))
    return {key: int(value) for key, value in pairs}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Httpd:
    def __init__(self, state, handler_root=None, extra_conf=None, tls=False, mpm="event"):
        """`tls`: also serve https/wss (and HTTP/2) on `tls_port`, as
        `make run` does."""
        self.state = pathlib.Path(state)
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.handler_root = handler_root
        self.extra_conf = extra_conf
        self.mpm = mpm

    @property
    def conf(self):
        return self.state / "httpd.conf"

    @property
    def error_log(self):
        return (self.state / "error.log").read_text(errors="replace")

    @property
    def access_log(self):
        return (self.state / "access.log").read_text(errors="replace")

    def pids(self):
        """The parent and children of this httpd."""
        return subprocess.run(["pgrep", "-f", str(self.conf)], capture_output=True, text=True).stdout.split()

    def children(self):
        """The child processes (all but the parent)."""
        return set(self.pids()) - {(self.state / "httpd.pid").read_text().strip()}

    def wait_for_access_log(self, fragment, more_than=0, timeout=5):
        """Waits until the access log has the fragment more than
        `more_than` times: httpd logs a request once its handler has
        returned, a moment after the client saw the close."""
        deadline = time.monotonic() + timeout
        while self.access_log.count(fragment) <= more_than:
            assert time.monotonic() < deadline, f"access log never showed {fragment}"
            time.sleep(0.05)

    def url(self, path):
        return f"ws://127.0.0.1:{self.port}{path}"

    def wss_url(self, path):
        return f"wss://127.0.0.1:{self.tls_port}{path}"

    def graceful(self):
        """`apachectl graceful`, then waits for the new generation's child."""
        before = self.error_log.count("resuming normal operations")
        subprocess.run([APACHE, "-f", str(self.conf), "-k", "graceful"], check=True, capture_output=True)
        for _ in range(100):
            if self.error_log.count("resuming normal operations") > before:
                return
            time.sleep(0.1)
        raise AssertionError("graceful restart did not complete")

    def command(self, *extra):
        args = [str(TOP / "scripts/run-httpd"), "--port", str(self.port), "--state", str(self.state),
                "--mpm", self.mpm]
        if self.tls_port:
            args += ["--tls-port", str(self.tls_port)]
        if self.handler_root:
            args += ["--handler-root", str(self.handler_root)]
        if self.extra_conf:
            extra_path = self.state / "extra.conf"
            self.state.mkdir(parents=True, exist_ok=True)
            extra_path.write_text(self.extra_conf)
            args += ["--extra", str(extra_path)]
        return args + list(extra)

    def start(self, *extra):
        """Starts httpd; `extra`: more run-httpd options."""
        subprocess.run(self.command(*extra), check=True, capture_output=True, text=True)
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


def refused_startup(tmp_path_factory, extra_conf=None, handler_root=None):
    """Starts httpd with a configuration it must refuse; returns what it
    said (its output and error log)."""
    server = Httpd(tmp_path_factory.mktemp("httpd"), extra_conf=extra_conf, handler_root=handler_root)
    result = subprocess.run(server.command(), capture_output=True, text=True)
    assert result.returncode != 0, "httpd should refuse this configuration"
    return result.stderr + (server.error_log if (server.state / "error.log").exists() else "")


def start_httpd(tmp_path_factory, **kwargs):
    return Httpd(tmp_path_factory.mktemp("httpd"), **kwargs).start()


def serve(tmp_path_factory, **kwargs):
    """For a fixture to `yield from`: an httpd for the tests' duration,
    stopped afterwards and checked for crashes."""
    server = start_httpd(tmp_path_factory, **kwargs)
    yield server
    server.stop()
    server.assert_no_crash()


@pytest.fixture(scope="module")
def httpd(tmp_path_factory):
    yield from serve(tmp_path_factory)


@pytest.fixture
def server_with(tmp_path_factory):
    """Starts httpds configured per test (start_httpd's arguments); each is
    stopped and checked for crashes afterwards."""
    started = []

    def start(**kwargs):
        server = start_httpd(tmp_path_factory, **kwargs)
        started.append(server)
        return server
    yield start
    for server in started:
        server.stop()
        server.assert_no_crash()
