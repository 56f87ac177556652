"""make bench-broadcast: how long one message takes to reach every member
of a group when the members are spread over httpd's children and the group
spans them through Redis (SwiftWebSocketBroker), beside the same group in
one child (process-local) and beside a trivial C fan-out server. One C
client drives them all (build/wsfanout: one epoll thread).

Columns:
  brokered       httpd, 4 children x 64 threads, the examples' /chat,
                 SwiftWebSocketBroker to a redis-server started for the run;
                 each member lands on whichever child accepts it
  process-local  httpd, 1 child x 64 threads, /chat, no broker
  trivial        bench/trivial_fanout.c: writes each message, as one
                 pre-built frame, to every connection

Rows:
  last delivery, N members (plain; deflate: permessage-deflate members):
      member 0 publishes, time until the last member has the message,
      median of the rounds
  rooms R x M at RATE/s, p50 and p99: R rooms of M members (/chat?room=r<i>),
      RATE publishes a second round the rooms; delivery latency over every
      receipt (the trivial server has no rooms)
  Redis CPU per delivered message: redis-server's user+system time while
      the rooms are published, over the messages Redis delivered to its
      subscribers (PUBLISH calls x subscribers per channel)

Beside them, brokered/local and local/trivial: how many times longer the
first's time is. Targets (the broker's issue): brokered within 1.5x of
process-local at 10,000 members, rooms p99 under 20 ms at 1,000 publishes
a second. Prints the table and writes it as JSON to bench/results/; exits
1 if any figure could not be measured (a server refused its configuration,
or did not deliver every message to every member).

Run: .venv/bin/python bench/broadcast.py [--members 1000,10000] [--rounds N]
     [--rooms 1000x10] [--rate 1000] [--seconds S] [--servers brokered,local,trivial]
"""

import argparse
import datetime
import json
import pathlib
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

TOP = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOP / "Tests/integration"))
from conftest import Httpd, Usage, cpu_seconds, free_port, one_child, settled_usage  # noqa: E402
from side_by_side import became_idle, machine, wait_for_port  # noqa: E402

WSFANOUT = TOP / "build/wsfanout"
TRIVIAL_FANOUT = TOP / "build/trivial_fanout"
# One named group (the examples' /chat takes its room from the query).
BROADCAST_PATH = "/chat?room=lobby"
ROOMS_PATH = "/chat"
COLUMNS = ("brokered", "local", "trivial")

# Four children of 64 threads; the fifth slot is for a child replacing one
# that is stopping. The event MPM accepts past its threads up to
# ThreadsPerChild + idle workers x AsyncRequestWorkerFactor, and members
# need not spread evenly, so one child could take all 10,000. Spare thread
# bounds keep all four children alive while idle.
BROKERED_CONF = """\
StartServers 4
ServerLimit 5
ThreadsPerChild 64
MaxRequestWorkers 256
MinSpareThreads 64
MaxSpareThreads 256
AsyncRequestWorkerFactor 400
ListenBacklog 4096
SwiftWebSocketBroker redis://127.0.0.1:{redis_port}
"""
# The same threads in one child: what bench/idle.py holds 10,000 on.
PROCESS_LOCAL_CONF = one_child()


class Refused(Exception):
    """A server that would not start: every figure of its column fails with this."""


class Redis:
    def __init__(self, state):
        self.state = state
        self.port = free_port()
        self.process = None

    def start(self):
        if not shutil.which("redis-server"):
            raise Refused("no redis-server (scripts/install-redis installs Debian's)")
        with open(self.state / "redis.log", "w") as log:
            self.process = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--daemonize", "no"], stdout=log, stderr=subprocess.STDOUT, cwd=self.state)
        wait_for_port(self.port, self.process)

    def stop(self):
        if self.process:
            self.process.terminate()
            self.process.wait(10)

    def command(self, *arguments):
        return subprocess.run(["redis-cli", "-p", str(self.port), *map(str, arguments)],
                              capture_output=True, text=True, check=True, timeout=10).stdout

    def publish_calls(self):
        for line in self.command("INFO", "commandstats").splitlines():
            if line.startswith("cmdstat_publish:"):
                return int(line.split("calls=")[1].split(",")[0])
        return 0

    def subscriptions(self):
        """(channels with subscribers, subscriptions over them)."""
        channels = self.command("PUBSUB", "CHANNELS").split()
        if not channels:
            return 0, 0
        counts = self.command("PUBSUB", "NUMSUB", *channels).split()
        return len(channels), sum(int(n) for n in counts[1::2])

    def snapshot(self):
        """Redis's CPU first: the publishing has begun as this is read."""
        return {"cpu_s": cpu_seconds([self.process.pid]), "publish_calls": self.publish_calls()}


class HttpdColumn:
    def __init__(self, name, setup, conf, brokered=False):
        self.name, self.setup, self.conf, self.brokered = name, setup, conf, brokered
        self.httpd = self.redis = self.port = None
        self.refused = None
        self.failed = False  # keeps its logs (state folder) for a look

    def start(self):
        state = pathlib.Path(tempfile.mkdtemp(prefix="bench-broadcast-", dir="/var/tmp"))
        state.chmod(0o755)
        try:
            if self.brokered:
                self.redis = Redis(state)
                self.redis.start()
            self.httpd = Httpd(state, extra_conf=self.conf.format(redis_port=self.redis.port if self.redis else 0))
            self.httpd.start("--loglevel", "warn")  # inherits the raised descriptor limit
            self.port = self.httpd.port
        except subprocess.CalledProcessError as error:
            said = (error.stderr or "").strip().splitlines()
            self.refused = f"httpd refused its configuration: {said[-1] if said else f'exit {error.returncode}'}"
        except Refused as error:
            self.refused = str(error)
        return self

    def settle(self):
        # The closes finish before the next run (and before httpd stops:
        # see bench/idle.py).
        settled_usage(self.httpd, timeout=60)

    def members_per_child(self, baseline):
        """Descriptors each child gained since `baseline`: its members."""
        now = Usage(self.httpd).by_pid
        return sorted((now[pid][0] - baseline.by_pid.get(pid, (0,))[0] for pid in self.httpd.children() if pid in now),
                      reverse=True)

    def stop(self):
        if self.port:
            self.settle()
            self.httpd.stop()
            self.httpd.assert_no_crash()
        if self.redis:
            self.redis.stop()
        if self.httpd and not self.failed:
            shutil.rmtree(self.httpd.state, ignore_errors=True)


class TrivialColumn:
    name = "trivial fan-out"
    setup = "bench/trivial_fanout.c: fixed 101, each message as one pre-built frame to every connection, one thread"
    redis = None
    refused = None
    failed = False

    def start(self):
        self.port = free_port()
        self.process = subprocess.Popen([str(TRIVIAL_FANOUT), str(self.port)])
        wait_for_port(self.port, self.process)
        return self

    def pids(self):
        return [self.process.pid]

    def settle(self):
        became_idle(self)

    def stop(self):
        self.process.terminate()
        self.process.wait(10)


def columns():
    version = (TOP / "VERSION").read_text().strip()
    return {
        "brokered": HttpdColumn("brokered (4 children)", f"{version}, event MPM, 4 children x 64 threads, "
                                "examples/chat_wsh.swift, SwiftWebSocketBroker to a redis-server of its own",
                                BROKERED_CONF, brokered=True),
        "local": HttpdColumn("process-local (1 child)", f"{version}, event MPM, 1 child x 64 threads, "
                             "examples/chat_wsh.swift, no broker", PROCESS_LOCAL_CONF),
        "trivial": TrivialColumn(),
    }


def deadline(members):
    """wsfanout's own deadline for each wait (DEADLINE_SECONDS)."""
    return 5 + members / 1000


def run_wsfanout(arguments, bound, on_marker=lambda marker: None):
    """Runs wsfanout, calling `on_marker` with each progress line it
    writes ("joined", "published"); returns its JSON. wsfanout ends every
    wait itself; past `bound` seconds it is killed all the same."""
    process = subprocess.Popen([str(WSFANOUT), *map(str, arguments)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(bound, process.kill)
    watchdog.start()
    complaints = []
    try:
        for line in process.stderr:
            if line.startswith("wsfanout: ") and line.split()[1] in ("joined", "published"):
                on_marker(line.split()[1])
            else:
                complaints.append(line.strip())
        output = process.stdout.read()
        process.wait()
    finally:
        watchdog.cancel()
    if process.returncode < 0:
        return {"error": f"wsfanout killed after {bound:.0f} s"}
    if not output.strip():
        return {"error": " ".join(complaints) or f"wsfanout exited {process.returncode}"}
    return json.loads(output)


class Row:
    def __init__(self, kind, members, deflate=False, rooms=None, rate=None, seconds=None):
        self.kind, self.members, self.deflate = kind, members, deflate
        self.rooms, self.rate, self.seconds = rooms, rate, seconds

    @property
    def label(self):
        if self.kind == "broadcast":
            return f"last delivery, N={self.members:,}{', deflate' if self.deflate else ''}, ms"
        return f"rooms {self.rooms:,} x {self.members} at {self.rate:,}/s"

    def measure(self, column, rounds):
        if column.refused:
            return {"error": column.refused}
        baseline = Usage(column.httpd) if isinstance(column, HttpdColumn) else None
        marks = {}

        def on_marker(marker):
            if marker == "joined" and baseline:
                marks["members_per_child"] = column.members_per_child(baseline)
            if column.redis:
                marks[marker] = column.redis.snapshot()
                if marker == "joined":
                    marks["channels"], marks["subscriptions"] = column.redis.subscriptions()

        if self.kind == "broadcast":
            figure = run_wsfanout(["broadcast", column.port, BROADCAST_PATH, self.members, rounds]
                                  + (["deflate"] if self.deflate else []),
                                  bound=deadline(self.members) * (rounds + 3) + 30, on_marker=on_marker)
        else:
            total = self.rooms * self.members
            figure = run_wsfanout(["rooms", column.port, ROOMS_PATH, self.rooms, self.members, self.rate, self.seconds],
                                  bound=2 * deadline(total) + self.seconds + 30, on_marker=on_marker)
            if column.redis and "published" in marks:
                figure["redis"] = redis_cost(marks)
        if "members_per_child" in marks:
            figure["members_per_child"] = marks["members_per_child"]
        if "error" in figure:
            column.failed = True
            if isinstance(column, HttpdColumn):
                figure["logs"] = str(column.httpd.state)
        column.settle()
        return figure


def redis_cost(marks):
    """Redis CPU per message it delivered to a subscriber over the
    publishing: every PUBLISH goes to each subscriber of its channel, and
    the rooms are published evenly, so subscriptions / channels a PUBLISH.
    (None if the broker subscribed to no channel: patterns are not counted.)"""
    publishes = marks["published"]["publish_calls"] - marks["joined"]["publish_calls"]
    cpu = marks["published"]["cpu_s"] - marks["joined"]["cpu_s"]
    cost = {"cpu_s": round(cpu, 3), "publish_calls": publishes, "channels": marks["channels"],
            "subscriptions": marks["subscriptions"]}
    if marks["channels"] and publishes:
        cost["delivered"] = round(publishes * marks["subscriptions"] / marks["channels"])
        cost["us_per_delivered"] = round(cpu * 1e6 / cost["delivered"], 2)
    return cost


def lines_of(row):
    """The table's lines for a row: (label, the columns it applies to, its
    value from a figure: ms, or µs for Redis)."""
    if row.kind == "broadcast":
        return [(row.label, COLUMNS, lambda figure: figure["last_us_median"] / 1000)]
    return [(f"{row.label}, p50 ms", COLUMNS, lambda figure: figure["p50_us"] / 1000),
            (f"{row.label}, p99 ms", COLUMNS, lambda figure: figure["p99_us"] / 1000),
            ("Redis CPU per delivered message, µs", ("brokered",),
             lambda figure: figure.get("redis", {}).get("us_per_delivered"))]


def value_table(rows, results):
    """{(line label, column): value, None (not applicable, or Redis saw no
    channel) or "(failed)"}, and the lines in order."""
    values, labels = {}, []
    for row in rows:
        for label, applies, value_of in lines_of(row):
            labels.append(label)
            for key in COLUMNS:
                figure = results.get((row.label, key))
                if figure is None or key not in applies:
                    continue
                values[(label, key)] = "(failed)" if "error" in figure else value_of(figure)
    return values, labels


def ratio(first, second):
    if not isinstance(first, float) or not isinstance(second, float) or not second:
        return ""
    return f"x{first / second:.2f}"


def format_value(value):
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def table(values, labels, chosen, names):
    width, column = 44, 25
    lines = [f"{'':{width}}" + "".join(f"{names[key]:>{column}}" for key in chosen)
             + f"{'brokered/local':>16}{'local/trivial':>15}"]
    for label in labels:
        line = f"{label:{width}}" + "".join(f"{format_value(values.get((label, key))):>{column}}" for key in chosen)
        line += f"{ratio(values.get((label, 'brokered')), values.get((label, 'local'))):>16}"
        line += f"{ratio(values.get((label, 'local')), values.get((label, 'trivial'))):>15}"
        lines.append(line)
    return "\n".join(lines)


def targets(values, rows, rate):
    """The broker issue's targets, where measured."""
    found = []
    largest = max((row for row in rows if row.kind == "broadcast" and not row.deflate),
                  key=lambda row: row.members, default=None)
    if largest:
        brokered, local = values.get((largest.label, "brokered")), values.get((largest.label, "local"))
        if isinstance(brokered, float) and isinstance(local, float):
            verdict = "met" if brokered <= 1.5 * local else "missed"
            found.append(f"brokered within 1.5x of process-local at N={largest.members:,}: "
                         f"x{brokered / local:.2f} ({verdict})")
    for row in rows:
        p99 = values.get((f"{row.label}, p99 ms", "brokered")) if row.kind == "rooms" else None
        if isinstance(p99, float):
            verdict = "met" if p99 < 20 else "missed"
            note = "" if rate == 1000 else f" (measured at {rate:,}/s)"
            found.append(f"rooms p99 under 20 ms at 1,000 publishes a second: {p99:.1f} ms ({verdict}){note}")
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", default="1000,10000", help="N for the last-delivery rows")
    parser.add_argument("--rounds", type=int, default=20, help="publishes per last-delivery figure (the median is shown)")
    parser.add_argument("--rooms", default="1000x10", help="ROOMSxMEMBERS for the rooms rows; 'none' for none")
    parser.add_argument("--rate", type=int, default=1000, help="publishes a second over all rooms")
    parser.add_argument("--seconds", type=float, default=10, help="seconds of publishing to the rooms")
    parser.add_argument("--servers", default=",".join(COLUMNS), help="from " + ",".join(COLUMNS))
    parser.add_argument("--results", default=str(TOP / "bench/results"))
    options = parser.parse_args()

    unknown = set(options.servers.split(",")) - set(COLUMNS)
    if unknown:
        parser.error(f"no such server: {', '.join(sorted(unknown))}")
    chosen = [key for key in COLUMNS if key in options.servers.split(",")]
    rows = []
    for members in (int(n) for n in options.members.split(",") if n):
        rows += [Row("broadcast", members, deflate) for deflate in (False, True)]
    if options.rooms != "none":
        room_count, members = (int(n) for n in options.rooms.split("x"))
        rows.append(Row("rooms", members, rooms=room_count, rate=options.rate, seconds=options.seconds))
    largest = max([row.members * (row.rooms or 1) for row in rows], default=0)

    # Every member's socket in this process's children (wsfanout raises its
    # own limit; httpd and the trivial server inherit this one).
    wanted = largest + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(wanted, hard)))

    started = time.monotonic()
    servers = columns()
    names = {key: servers[key].name for key in COLUMNS}
    print(f"Machine: {machine()}")
    print(f"Last delivery: median of {options.rounds} rounds; rooms: every receipt over {options.seconds:g} s; "
          f"loopback; the client shares the cores with the servers.")
    for key in chosen:
        print(f"  {servers[key].name}: {servers[key].setup}")
    print("", flush=True)

    results = {}
    running = [servers[key].start() for key in chosen]
    try:
        for row in rows:
            row_started = time.monotonic()
            # The trivial server has no rooms.
            for key in [key for key in chosen if row.kind == "broadcast" or key != "trivial"]:
                results[(row.label, key)] = row.measure(servers[key], options.rounds)
            print(f"  measured {row.label} ({time.monotonic() - row_started:.0f} s)", flush=True)
    finally:
        for server in running:
            server.stop()

    values, labels = value_table(rows, results)
    print()
    print(table(values, labels, chosen, names))
    print()
    print("ms: time from the publish to the last member's receipt (last delivery), or per receipt (rooms); "
          "xN: how many times longer the first column's time is than the second's.")
    for line in targets(values, rows, options.rate):
        print(f"Target: {line}")
    for (label, key), figure in results.items():
        if "redis" in figure and "us_per_delivered" not in figure["redis"]:
            print(f"Redis CPU per delivered message, {label}: no PUBLISH to a subscribed channel seen "
                  f"(pattern subscriptions are not counted): {figure['redis']}")
    for (label, key), figure in results.items():
        if "members_per_child" in figure and key == "brokered":
            print(f"Members per child, {label}: {', '.join(map(str, figure['members_per_child']))}")
    failures = [(label, key, figure["error"]) for (label, key), figure in results.items() if "error" in figure]
    for key in chosen:
        if servers[key].refused:
            print(f"(failed) {names[key]}: {servers[key].refused}")
    for label, key, error in failures:
        if not servers[key].refused:
            print(f"(failed) {names[key]}, {label}: {error}" + (f" (logs: {results[(label, key)]['logs']})"
                                                               if "logs" in results[(label, key)] else ""))
    print(f"Took {(time.monotonic() - started) / 60:.1f} min.")
    write_results(pathlib.Path(options.results), rows, results, names, options)
    return 1 if failures else 0


def write_results(folder, rows, results, names, options):
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    records = [{"row": row.label, "kind": row.kind, "members": row.members, "deflate": row.deflate,
                "rooms": row.rooms, "rate": row.rate, "server": names[key], **results[(row.label, key)]}
               for row in rows for key in COLUMNS if (row.label, key) in results]
    document = {"machine": machine(), "rounds": options.rounds, "seconds": options.seconds,
                "results": records}
    path = folder / f"broadcast-{stamp}.json"
    path.write_text(json.dumps(document, indent=1) + "\n")
    print(f"Results: {path}")


if __name__ == "__main__":
    sys.exit(main())
