"""A real Redis (Debian's redis-server) for the broker tests: on a free
loopback port, no persistence, stopped with the test."""

import os
import signal
import subprocess
import time

from conftest import free_port


class RedisServer:
    def __init__(self, state, port=None, password=None):
        self.state = state
        self.port = port or free_port()
        self.password = password
        self.process = None

    @property
    def url(self):
        credentials = f":{self.password}@" if self.password else ""
        return f"redis://{credentials}127.0.0.1:{self.port}"

    def start(self):
        self.state.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--dir", str(self.state),
             *(["--requirepass", self.password] if self.password else [])],
            stdout=open(self.state / "redis.log", "ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while self.cli("PING", check=False) != "PONG":
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        return self

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a stopped process cannot exit
            self.process.terminate()
            self.process.wait(10)

    def pause(self):
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.process.pid, signal.SIGCONT)

    def cli(self, *args, check=True):
        credentials = ["-a", self.password, "--no-auth-warning"] if self.password else []
        result = subprocess.run(["redis-cli", "-p", str(self.port), *credentials, *args], capture_output=True,
                                text=True, timeout=10)
        if check:
            assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def subscribers(self, channel):
        """How many connections (one per httpd child with members) are
        subscribed to `channel`."""
        return int(self.cli("PUBSUB", "NUMSUB", channel).split("\n")[1])

    def channels(self, pattern="*"):
        return set(filter(None, self.cli("PUBSUB", "CHANNELS", pattern).split("\n")))

    def wait_for_subscribers(self, channel, count, timeout=10):
        deadline = time.monotonic() + timeout
        while self.subscribers(channel) != count:
            assert time.monotonic() < deadline, \
                f"{channel} has {self.subscribers(channel)} subscribers, not {count}"
            time.sleep(0.05)
