"""make bench: the module and the servers people would pick instead, driven
by the same load generator (build/wsload) in one run, on loopback.

Every server is started once for the echo and handshake rows, and the
runs are interleaved (run 1 of every server, then run 2, ...), so that the
machine's drift touches all of them alike. A figure is the median of the
runs; beside each peer, the module's figure divided by the peer's (rates)
or the peer's by the module's (latency, memory): above 1 means the module
is ahead. Memory per idle connection is measured on a fresh instance of
each server. The table is printed and written as JSON and CSV under
bench/results/.

Run: .venv/bin/python bench/side_by_side.py [--runs N] [--seconds S]
     [--servers a,b] [--rows echo,deflate,handshakes,memory] [--idle N]
"""

import argparse
import csv
import datetime
import json
import os
import pathlib
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TOP = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOP / "Tests/integration"))
from conftest import APACHE, Httpd, cpu_seconds, free_port  # noqa: E402

WSLOAD = TOP / "build/wsload"
BUILT = TOP / "build/bench"
HUMMINGBIRD = TOP / "bench/peers/hummingbird-echo/.build/release/hummingbird-echo"
PYWEBSOCKET3_HANDLERS = BUILT / "pywebsocket3-handlers"
PYTHON = sys.executable

CONNECTIONS = (1, 100, 1000)
SIZES = (64, 4096, 262144)
HANDSHAKE_CONCURRENCY = 50

# The production-like httpd configuration: event MPM, as run-httpd writes
# it, with room for 1,000 open WebSockets. A blocking handler holds a worker
# thread per connection (issue 8 parks them), so two children of 640
# threads; ThreadLimit lifts the event MPM's cap of 64 per child. Spare
# thread limits are wide so that no child starts or stops mid-measurement.
HTTPD_SIZING = """\
ServerLimit 2
StartServers 2
ThreadLimit 640
ThreadsPerChild 640
MaxRequestWorkers 1280
MinSpareThreads 64
MaxSpareThreads 1280
ListenBacklog 4096
"""


def wait_for_port(port, process=None, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on {port} within {timeout} s")


class ProcessServer:
    """A peer that runs as one foreground process."""

    deflate = True
    path = "/echo"

    def __init__(self):
        self.port = None
        self.process = None

    def command(self):
        raise NotImplementedError

    def start(self):
        self.port = free_port()
        # What it prints goes to a file: a pipe nobody reads would stop a
        # server that logs a lot once the pipe is full.
        BUILT.mkdir(parents=True, exist_ok=True)
        with open(BUILT / f"{self.name.split()[0]}.log", "a") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=TOP)
        wait_for_port(self.port, self.process)
        return self

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def pids(self):
        return [self.process.pid]


class Module:
    name = "mod_swiftwebsocket"
    deflate = True
    path = "/echo"
    handler = "examples/echo_wsh.swift"

    def __init__(self):
        self.httpd = None

    @property
    def setup(self):
        version = (TOP / "VERSION").read_text().strip()
        httpd = subprocess.run([APACHE, "-v"], capture_output=True, text=True).stdout.split("\n")[0]
        return (f"{version} on {httpd.replace('Server version: ', '')}, event MPM, 2 children x 640 threads, "
                f"{self.handler}, access log on, LogLevel warn, permessage-deflate with its defaults "
                "(zlib level 6, compresses messages from 64 B)")

    def start(self):
        # The example handlers, so /echo is the one `make run` serves.
        self.httpd = Httpd(tempfile.mkdtemp(prefix="bench-httpd-"), extra_conf=HTTPD_SIZING).start("--loglevel", "warn")
        self.port = self.httpd.port
        return self

    def stop(self):
        self.httpd.stop()
        shutil.rmtree(self.httpd.state, ignore_errors=True)

    def pids(self):
        return self.httpd.pids()


class ModuleAsync(Module):
    """The same httpd serving the async/await echo: its column is the
    event-style /echo's ratio to it."""
    name = "module, async handler"
    path = "/echo_async"
    handler = "examples/echo_async_wsh.swift (AsyncWebSocketHandler)"


class Hummingbird(ProcessServer):
    name = "hummingbird-websocket"
    setup = ("2.8.1 on Hummingbird 2.28.1 and SwiftNIO, release build, one event loop per core, "
             "logging at error, permessage-deflate with its defaults (zlib level 6; messages under 256 B go "
             "uncompressed) (bench/peers/hummingbird-echo)")

    def command(self):
        return [str(HUMMINGBIRD), str(self.port)]


class Websockets(ProcessServer):
    name = "websockets"

    @property
    def setup(self):
        import websockets
        return (f"{websockets.__version__}, asyncio server on uvloop, C speedups, no pings, "
                "permessage-deflate by default (bench/peers/websockets_echo.py)")

    def command(self):
        return [PYTHON, str(TOP / "bench/peers/websockets_echo.py"), str(self.port)]


class Pywebsocket3(ProcessServer):
    name = "pywebsocket3"
    setup = ("4.0.2 standalone (thread per connection), its example echo_wsh.py, log level critical, "
             "listen queue 4096; pure-Python masking (the PyPI package has no C extension)")

    def command(self):
        return [PYTHON, "-m", "pywebsocket3.standalone", "-H", "127.0.0.1", "-p", str(self.port),
                "-w", str(PYWEBSOCKET3_HANDLERS), "--log-level", "critical", "-q", "4096"]


class Trivial(ProcessServer):
    name = "trivial (ceiling)"
    setup = "bench/trivial_echo.c: fixed 101, unmask and echo, one thread; shows wsload's own ceiling"
    deflate = False

    def command(self):
        return [str(TOP / "build/trivial_echo"), str(self.port)]


SERVERS = {"module": Module, "module-async": ModuleAsync, "hummingbird": Hummingbird,
           "websockets": Websockets, "pywebsocket3": Pywebsocket3, "trivial": Trivial}


def human_size(size):
    return f"{size // 1024} KiB" if size >= 1024 else f"{size} B"


class Row:
    def __init__(self, kind, connections=None, size=None, deflate=False):
        self.kind, self.connections, self.size, self.deflate = kind, connections, size, deflate

    @property
    def label(self):
        if self.kind == "handshakes":
            return f"handshakes/s, {self.connections} at once"
        if self.kind == "memory":
            return f"KiB per idle connection{', deflate' if self.deflate else ''} (N={self.connections})"
        return f"echo {human_size(self.size)} x {self.connections}{', deflate' if self.deflate else ''}"

    def wsload_arguments(self, server, seconds):
        if self.kind == "handshakes":
            return ["handshakes", server.port, server.path, self.connections, seconds]
        return (["echo", server.port, server.path, self.connections, self.size, seconds]
                + (["deflate"] if self.deflate else []))


def wsload(*arguments, timeout=120):
    result = subprocess.run([str(WSLOAD), *map(str, arguments)], capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        return {"failed": result.stderr.strip() or f"exit {result.returncode}"}
    return json.loads(result.stdout)


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as status:
                total += next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        except (FileNotFoundError, StopIteration):
            pass
    return total


def idle_memory(server_class, row):
    """(RSS with N idle connections - RSS without) / N, in KiB, on a fresh
    instance warmed up by a few echoes first (code paths touched, pools
    made), so one-time costs stay in the baseline."""
    server = server_class().start()
    try:
        wsload("echo", server.port, server.path, 4, 4096, 0.3, *(["deflate"] if row.deflate else []))
        became_idle(server)
        before = rss_kib(server.pids())
        arguments = ["hold", server.port, server.path, row.connections, 4096] + (["deflate"] if row.deflate else [])
        holder = subprocess.Popen([str(WSLOAD), *map(str, arguments)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        held = json.loads(holder.stdout.readline())
        became_idle(server)  # the work behind the last echo
        after = rss_kib(server.pids())
        holder.stdin.close()
        holder.wait(30)
        return {"rate": None, "kib_per_connection": round((after - before) / row.connections, 1),
                "rss_before_kib": before, "rss_after_kib": after, "errors": held["errors"],
                "never_upgraded": held["never_upgraded"], "held": held["held"]}
    finally:
        server.stop()


def became_idle(server, timeout=2):
    """Waits up to `timeout` s for the server to stop using CPU; returns
    whether it did."""
    deadline = time.monotonic() + timeout
    used = cpu_seconds(server.pids())
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now_used = cpu_seconds(server.pids())
        if now_used - used < 0.005:
            return True
        used = now_used
    return False


def restart_unless_idle(server):
    """A server still busy after a run must not take CPU from the next
    server's run: pywebsocket3 unmasks a backlog of 256 KiB frames in
    Python for tens of seconds after its clients left. Such a server is
    restarted; returns whether it was."""
    if became_idle(server):
        return False
    server.stop()
    server.start()
    return True


def median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 1) if values else None


def summarize(runs):
    """One figure from several runs: medians, and any trouble summed."""
    failed = [run["failed"] for run in runs if "failed" in run]
    good = [run for run in runs if "failed" not in run]
    return {
        "rate": median([run["rate"] for run in good]),
        "p50_us": median([run["p50_us"] for run in good]),
        "p99_us": median([run["p99_us"] for run in good]),
        "completed": median([run.get("completed") for run in good]),
        "client_cpu_percent": median([run["client_cpu"] * 100 for run in good]),
        "errors": sum(run["errors"] for run in good),
        "never_upgraded": max((run["never_upgraded"] for run in good), default=0),
        "failed": failed[0] if failed else None,
        "runs": [run.get("rate") for run in runs],
        "restarts_after_runs": sum(run["restarted_after"] for run in runs),
    }


def format_rate(value):
    if value is None:
        return "-"
    return f"{value / 1000:.1f}k" if value >= 10000 else f"{value:.0f}"


def format_whole(value):
    return "-" if value is None else f"{value:.0f}"


def format_tenths(value):
    return "-" if value is None else f"{value:.1f}"


def advantage(module_value, peer_value, higher_is_better):
    """How many times the module's figure is better than the peer's."""
    if not module_value or not peer_value:
        return None
    return module_value / peer_value if higher_is_better else peer_value / module_value


def format_advantage(value):
    if value is None:
        return ""
    return f"x{value:.2f}" if value < 10 else f"x{value:.0f}"


def flag(figure, connections):
    """A mark for a figure that is not a clean measurement."""
    if figure.get("failed"):
        return " (failed)"
    if figure.get("errors") or figure.get("never_upgraded"):
        return " !"
    if figure.get("completed") is not None and figure["completed"] < connections:
        return " ~"
    return ""


def table(rows, names, results):
    """Plain text: one line per row; each peer's figure with the module's
    ratio to it."""
    width = 44
    column = 22
    lines = [f"{'':{width}}" + "".join(f"{name[:column - 1]:>{column}}" for name in names)]

    def cells(row, key, higher_is_better, formatter):
        line = f"{row.label:{width}}"
        module_figure = results.get((row.label, names[0]))
        for name in names:
            figure = results.get((row.label, name))
            if figure is None or figure.get(key) is None:
                line += f"{'':>{column}}"
                continue
            text = formatter(figure[key]) + flag(figure, row.connections)
            if name != names[0] and module_figure is not None and higher_is_better is not None:
                text += " " + format_advantage(advantage(module_figure[key], figure[key], higher_is_better))
            line += f"{text:>{column}}"
        return line

    for section, key, higher, formatter, kinds in [
            ("messages or handshakes per second", "rate", True, format_rate, ("echo", "handshakes")),
            ("p50 round trip, microseconds", "p50_us", False, format_whole, ("echo", "handshakes")),
            ("p99 round trip, microseconds", "p99_us", False, format_whole, ("echo", "handshakes")),
            # What the load generator took of the 2 cores it shares with
            # the server: where it is near a core, it is the bottleneck.
            ("load generator's CPU, % of one core", "client_cpu_percent", None, format_whole,
             ("echo", "handshakes")),
            ("memory per idle connection, KiB", "kib_per_connection", False, format_tenths, ("memory",))]:
        chosen = [row for row in rows if row.kind in kinds]
        if chosen:
            lines += ["", section]
            lines += [cells(row, key, higher, formatter) for row in chosen]
    return "\n".join(lines)


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {memory_gib:.0f} GiB, Linux {platform.release()}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (the median is shown)")
    parser.add_argument("--seconds", type=float, default=0.4, help="measured seconds per run")
    parser.add_argument("--servers", default=",".join(SERVERS), help="from " + ",".join(SERVERS))
    parser.add_argument("--rows", default="echo,deflate,handshakes,memory")
    parser.add_argument("--connections", default=",".join(map(str, CONNECTIONS)))
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--idle", type=int, default=1000, help="N for memory per idle connection")
    parser.add_argument("--results", default=str(TOP / "bench/results"))
    options = parser.parse_args()

    chosen = options.servers.split(",")
    if chosen[0] != "module":
        parser.error("the module comes first: every ratio is to it")
    classes = [SERVERS[name] for name in chosen]
    kinds = options.rows.split(",")
    connections = [int(n) for n in options.connections.split(",")]
    sizes = [int(n) for n in options.sizes.split(",")]
    rows = []
    for deflate in (False, True):
        if ("deflate" if deflate else "echo") in kinds:
            rows += [Row("echo", n, size, deflate) for n in connections for size in sizes]
    if "handshakes" in kinds:
        rows.append(Row("handshakes", HANDSHAKE_CONCURRENCY))
    if "memory" in kinds:
        rows += [Row("memory", options.idle, deflate=deflate) for deflate in (False, True)]

    started = time.monotonic()
    print(f"Machine: {machine()}")
    print(f"Each figure: median of {options.runs} runs of {options.seconds:g} s (after a 0.25 s warm-up once "
          f"every connection is open); one message in flight per connection; loopback.")
    for server_class in classes:
        print(f"  {server_class.name}: {server_class().setup}")
    print("", flush=True)

    results = {}
    for row in [row for row in rows if row.kind == "memory"]:
        for server_class in classes:
            if server_class is Trivial or (row.deflate and not server_class.deflate):
                continue
            results[(row.label, server_class.name)] = idle_memory(server_class, row)
        print(f"  measured {row.label}", flush=True)

    servers = [server_class().start() for server_class in classes]
    try:
        for row in [row for row in rows if row.kind != "memory"]:
            row_started = time.monotonic()
            serving = [server for server in servers if server.deflate or not row.deflate]
            runs = {server.name: [] for server in serving}
            for _ in range(options.runs):
                for server in serving:
                    figure = wsload(*row.wsload_arguments(server, options.seconds))
                    figure["restarted_after"] = restart_unless_idle(server)
                    runs[server.name].append(figure)
            for server in serving:
                results[(row.label, server.name)] = summarize(runs[server.name])
            print(f"  measured {row.label} ({time.monotonic() - row_started:.0f} s)", flush=True)
    finally:
        for server in servers:
            server.stop()

    names = [server_class.name for server_class in classes]
    print()
    print(table(rows, names, results))
    print()
    print("xN beside a peer: how many times the module's figure is better (rate: module/peer; "
          "latency and memory: peer/module).")
    print("!: some connections failed or never upgraded in a run (see the JSON); ~: fewer round trips "
          "ended in the window than there are connections, a rough figure; (failed): the server refused "
          "the row.")
    elapsed = time.monotonic() - started
    print(f"Took {elapsed / 60:.1f} min.")
    write_results(pathlib.Path(options.results), rows, names, results, classes, options)


def write_results(folder, rows, names, results, classes, options):
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    records = []
    for row in rows:
        module_figure = results.get((row.label, names[0]))
        for name in names:
            figure = results.get((row.label, name))
            if figure is None:
                continue
            record = {"row": row.label, "kind": row.kind, "connections": row.connections, "size": row.size,
                      "deflate": row.deflate, "server": name, **figure}
            key = "kib_per_connection" if row.kind == "memory" else "rate"
            if name != names[0] and module_figure:
                value = advantage(module_figure[key], figure[key], higher_is_better=key == "rate")
                if value is not None:
                    record["module_ratio"] = round(value, 2)
            records.append(record)
    document = {"machine": machine(), "runs": options.runs, "seconds": options.seconds,
                "servers": {cls.name: cls().setup for cls in classes}, "results": records}
    (folder / f"{stamp}.json").write_text(json.dumps(document, indent=1) + "\n")
    fields = ["row", "server", "rate", "p50_us", "p99_us", "kib_per_connection", "module_ratio", "errors",
              "never_upgraded", "failed", "kind", "connections", "size", "deflate"]
    with open(folder / f"{stamp}.csv", "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)
    print(f"Results: {folder / stamp}.json and .csv")


if __name__ == "__main__":
    main()
