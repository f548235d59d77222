"""Load: many dockerd-like clients for a minute; every call answered, nothing leaks.

Starts `fuxi-server --devcloud` (no latency) and runs --clients client threads
for --seconds, each with its own kept-alive connection sending dockerd's bytes
(benchmarks/queries.py RawClient). Each client owns --names volume names and
takes them in turn through a container's lifecycle:

    Get (absent) -> Create -> Get -> Mount c1 -> Path -> write+read a file ->
    Mount c2 -> Unmount c2 -> List -> Unmount c1 -> Path (none) -> Remove

with cheap reads between steps: Get and Path of a few shared volumes made at
the start (one of them kept mounted) and List of everything. Every call is
counted and timed by type; an error is any answer but the expected one (an
`Err`, an HTTP status but 200, a broken connection, a Get that finds a volume
just removed, a Path that disagrees with Mount), counted by type with its first
message.

The open file descriptors, RSS and threads of the gunicorn master and worker
(and, apart, devcloud) are sampled every --sample-every seconds. The load runs
--warmup seconds, pauses while every client finishes its cycle (nothing of the
clients' own is mounted or exists then) and is sampled idle, runs the rest of
--seconds, and is sampled idle again after it stops. Verdict "flat": the end's
fds within --fd-tolerance and RSS within --rss-tolerance-mb of the idle
post-warm-up figures, for master and worker.

At the end everything made is unmounted and removed through the plugin (then
checked: no volume left in devcloud, no mount left under the scratch dir), the
server is stopped and the scratch dir scrubbed, also on failure or Ctrl-C.

    python benchmarks/load.py [--clients 64] [--seconds 60] [--names 2] [--threads 16]
"""

import argparse
import collections
import json
import os
import sys
import threading
import time

from fuxi_bench import BenchError, Fuxi, exit_on_signals, percentile, running, scratch, table
from queries import RawClient

MB = 1024 * 1024
SHARED = ("shared0", "shared1", "shared2")  # made once, read by every client; shared0 stays mounted
KEPT_MOUNTED = SHARED[0]


def say(text):
    print(text, file=sys.stderr, flush=True)


class Tally:
    """Calls, latencies and errors per call type, from every client thread."""

    def __init__(self):
        self.lock = threading.Lock()
        self.latencies = collections.defaultdict(list)
        self.errors = collections.Counter()
        self.first_error = {}

    def ok(self, kind, seconds):
        with self.lock:
            self.latencies[kind].append(seconds)

    def error(self, kind, seconds, message):
        with self.lock:
            self.latencies[kind].append(seconds)
            self.errors[kind] += 1
            self.first_error.setdefault(kind, message)


def body(**fields):
    return (json.dumps(fields) + "\n").encode()


def track(fuxi, method, name, caller=None):
    """Note what a successful call made, the way Fuxi.call does, so that
    `running` releases it at the end whatever happens."""
    with fuxi._track_lock:
        if method == "Create":
            fuxi.created.add(name)
        elif method == "Remove":
            fuxi.created.discard(name)
        elif method == "Mount":
            fuxi.mounts[(name, caller)] += 1
        elif method == "Unmount":
            fuxi.mounts[(name, caller)] -= 1
            if fuxi.mounts[(name, caller)] <= 0:
                del fuxi.mounts[(name, caller)]


class Client:
    """One dockerd-like client: its own connection, its own names."""

    def __init__(self, index, fuxi, tally, names):
        self.index = index
        self.fuxi = fuxi
        self.tally = tally
        self.names = [f"load{index:02d}n{i}" for i in range(names)]
        self.conn = RawClient(fuxi.socket, keepalive=True)
        self.turn = 0

    def call(self, kind, method, expect=None, **fields):
        """One call, timed and judged; returns the answer (a dict) or None on an error.

        expect(status, answer) -> an error message, or None when the answer is
        right; by default anything but HTTP 200 without an Err is an error."""
        start = time.perf_counter()
        try:
            status, data = self.conn.call(f"VolumeDriver.{method}", body(**fields))
            answer = json.loads(data)
        except Exception as exc:  # a broken connection, a timeout: counted, then a new connection
            self.conn.close()
            self.tally.error(kind, time.perf_counter() - start, f"{type(exc).__name__}: {exc}")
            return None
        elapsed = time.perf_counter() - start
        if expect is not None:
            problem = expect(status, answer)
        else:
            problem = _success(status, answer)
        if problem:
            self.tally.error(kind, elapsed, f"{method} {fields}: {problem}")
            return None
        self.tally.ok(kind, elapsed)
        if method in ("Create", "Remove", "Mount", "Unmount"):
            track(self.fuxi, method, fields.get("Name"), fields.get("ID"))
        return answer

    def cheap_reads(self):
        shared = SHARED[self.turn % len(SHARED)]
        self.call("Get", "Get", Name=shared)
        expected = self.fuxi.shared_mountpoint if shared == KEPT_MOUNTED else ""
        self.call("Path", "Path", expect=_path_is(expected), Name=shared)
        self.call("List", "List", expect=_lists(SHARED[0]))

    def cycle(self):
        """One volume through one container lifecycle, with reads between."""
        name = self.names[self.turn % len(self.names)]
        self.turn += 1
        c1, c2 = f"{name}-c1", f"{name}-c2"
        self.call("Get (absent)", "Get", expect=_absent, Name=name)
        if self.call("Create", "Create", Name=name, Opts={"size": "1"}) is None:
            return
        self.call("Get", "Get", Name=name)
        self.cheap_reads()
        mounted = self.call("Mount", "Mount", ID=c1, Name=name)
        if mounted is not None:
            path = mounted.get("Mountpoint", "")
            self.call("Path", "Path", expect=_path_is(path), Name=name)
            self._touch(name, path)
            if self.call("Mount", "Mount", ID=c2, Name=name) is not None:
                self.cheap_reads()
                self.call("Unmount", "Unmount", ID=c2, Name=name)
            self.call("List", "List", expect=_lists(name))
            self.call("Unmount", "Unmount", ID=c1, Name=name)
            self.call("Path", "Path", expect=_path_is(""), Name=name)
        self.cheap_reads()
        self.call("Remove", "Remove", Name=name)

    def _touch(self, name, path):
        start = time.perf_counter()
        try:
            target = os.path.join(path, "data")
            with open(target, "w") as f:
                f.write(name)
            with open(target) as f:
                if f.read() != name:
                    raise BenchError(f"{target} does not read back")
        except (OSError, BenchError) as exc:
            self.tally.error("write+read", time.perf_counter() - start, f"{name}: {exc}")
            return
        self.tally.ok("write+read", time.perf_counter() - start)

    def run(self, go, stop):
        """Cycles while `go` is set, until `stop` is; each cycle runs to its end."""
        try:
            while not stop.is_set():
                if go.wait(0.2) and not stop.is_set():
                    self.cycle()
        finally:
            self.conn.close()


def _success(status, answer):
    if status != 200 or answer.get("Err"):
        return f"HTTP {status} {answer}"
    return None


def _absent(status, answer):
    # fuxi answers a missing volume with 404 and an Err dockerd shows.
    if status == 404 and "does not exist" in answer.get("Err", ""):
        return None
    return f"expected 404 'does not exist', got HTTP {status} {answer}"


def _path_is(expected):
    def check(status, answer):
        got = answer.get("Mountpoint", "")
        return _success(status, answer) or (
            None if got == expected else f"Path {got!r}, expected {expected!r}")
    return check


def _lists(name):
    def check(status, answer):
        names = {v["Name"] for v in answer.get("Volumes", [])}
        return _success(status, answer) or (
            None if name in names and set(SHARED) <= names else f"List lacks {name} or a shared volume")
    return check


# -- resources -----------------------------------------------------------------

class Sampler:
    """fds, RSS and threads of master, worker and devcloud every `every` seconds."""

    def __init__(self, fuxi, every):
        self.procs = fuxi.processes()
        self.every = every
        self.samples = []  # (t, label, {role: {fds, rss, threads}})
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def take(self, label=""):
        reading = {}
        for role, proc in self.procs.items():
            with proc.oneshot():
                reading[role] = {"fds": proc.num_fds(), "rss": proc.memory_info().rss / MB,
                                 "threads": proc.num_threads()}
        sample = (time.monotonic() - self.t0, label, reading)
        self.samples.append(sample)
        return sample

    def _run(self):
        while not self._stop.wait(self.every):
            self.take()

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join()


def quiesce(go, clients_busy, timeout=180):
    """Clear `go` and wait until every client has finished its cycle."""
    go.clear()
    deadline = time.monotonic() + timeout
    while any(busy() for busy in clients_busy):
        if time.monotonic() > deadline:
            raise BenchError("clients did not finish their cycles within 180 s")
        time.sleep(0.05)


def main():
    exit_on_signals()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=64, help="client threads (default 64)")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds of load, warm-up included (default 60)")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of warm-up load (default 10)")
    parser.add_argument("--names", type=int, default=2, help="volume names each client owns (default 2)")
    parser.add_argument("--threads", type=int, default=16, help="fuxi-server request threads (default 16)")
    parser.add_argument("--sample-every", type=float, default=3.0, help="seconds between samples (default 3)")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds idle before an idle sample (default 3)")
    parser.add_argument("--fd-tolerance", type=int, default=4,
                        help="open fds the end may differ from post-warm-up (default 4)")
    parser.add_argument("--rss-tolerance-mb", type=float, default=8.0,
                        help="MB of RSS the end may exceed post-warm-up by (default 8)")
    args = parser.parse_args()
    if args.warmup >= args.seconds:
        parser.error("--warmup must be shorter than --seconds")

    tally = Tally()
    leftovers = {}
    with scratch("fuxi-load-") as workdir:
        fuxi = Fuxi(workdir, {"devcloud_latency_profile": "none", "threads": args.threads})
        with running(fuxi):
            sampler = Sampler(fuxi, args.sample_every)
            start_sample = sampler.take("start (idle)")
            for name in SHARED:
                fuxi.call("VolumeDriver.Create", {"Name": name, "Opts": {"size": "1"}})
            fuxi.shared_mountpoint = fuxi.call("VolumeDriver.Mount", {"Name": KEPT_MOUNTED, "ID": "keeper"})[
                "Mountpoint"]

            clients = [Client(i, fuxi, tally, args.names) for i in range(args.clients)]
            go, stop = threading.Event(), threading.Event()
            busy = {}

            def run(client):
                busy[client.index] = False
                original = client.cycle

                def cycle():
                    busy[client.index] = True
                    try:
                        original()
                    finally:
                        busy[client.index] = False

                client.cycle = cycle
                client.run(go, stop)

            threads = [threading.Thread(target=run, args=(c,), name=f"client{c.index}") for c in clients]
            for t in threads:
                t.start()
            sampler.start()
            say(f"load: {args.clients} clients, {args.warmup:g} s warm-up")
            t_load = time.monotonic()
            go.set()
            try:
                time.sleep(args.warmup)
                quiesce(go, [lambda i=i: busy.get(i) for i in range(len(clients))])
                paused = time.monotonic()
                time.sleep(args.settle)
                warm_sample = sampler.take("after warm-up (idle)")
                rest = args.seconds - args.warmup
                say(f"load: {rest:g} s more")
                go.set()
                t_rest = time.monotonic()
                time.sleep(rest / 2)
                middle_sample = sampler.take("middle (under load)")
                time.sleep(rest - (time.monotonic() - t_rest))
                quiesce(go, [lambda i=i: busy.get(i) for i in range(len(clients))])
                loaded = (paused - t_load) + (time.monotonic() - t_rest)
                time.sleep(args.settle)
                end_sample = sampler.take("end (idle)")
            finally:
                stop.set()
                go.set()
                for t in threads:
                    t.join()
                sampler.stop()

            # Release the shared volumes through the plugin, then look for anything left.
            problems = fuxi.release_all()
            for p in problems:
                say(f"cleanup: {p}")
            leftovers["fuxi List"] = [v["Name"] for v in fuxi.call("VolumeDriver.List", {})["Volumes"]]
            leftovers["devcloud volumes"] = devcloud_volumes(fuxi)
            leftovers["mounts"] = mounts_under(workdir)
            after_cleanup = sampler.take("after cleanup (idle)")

    return report(args, tally, loaded, [start_sample, warm_sample, middle_sample, end_sample, after_cleanup],
           sampler.samples, leftovers)


def devcloud_volumes(fuxi):
    import openstack  # the worker's own library; here only to list what devcloud holds

    with open(os.path.join(fuxi.state_dir, "devcloud", "ready.json"), encoding="utf-8") as f:
        ready = json.load(f)
    entry = ready["cloud"]
    conn = openstack.connection.Connection(auth=entry["auth"], region_name=entry.get("region_name"))
    try:
        return [v.name or v.id for v in conn.block_storage.volumes()]
    finally:
        conn.close()


def mounts_under(directory):
    prefix = os.path.realpath(directory).rstrip("/") + "/"
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        points = [line.split()[4].replace("\\040", " ") for line in f]
    return [p for p in points if p.startswith(prefix)]


def report(args, tally, loaded, marks, samples, leftovers):
    total_calls = sum(len(v) for v in tally.latencies.values())
    total_errors = sum(tally.errors.values())
    print(f"\n{args.clients} clients x {args.seconds:g} s ({args.warmup:g} s warm-up), {args.names} names each, "
          f"fuxi-server threads = {args.threads}, {os.cpu_count()} cores shared by clients, fuxi and devcloud")
    print(f"{total_calls:,} calls in {loaded:.1f} s of load ({total_calls / loaded:,.0f}/s), "
          f"{total_errors} errors (must be 0)\n")
    order = ["Get (absent)", "Create", "Get", "Mount", "Path", "write+read", "List", "Unmount", "Remove"]
    rows = []
    for kind in order + sorted(set(tally.latencies) - set(order)):
        times = tally.latencies.get(kind, [])
        if not times:
            continue
        rows.append([kind, f"{len(times):,}", str(tally.errors.get(kind, 0)),
                     f"{percentile(times, 50) * 1000:.1f}", f"{percentile(times, 95) * 1000:.1f}",
                     f"{max(times) * 1000:.1f}"])
    print(table(rows, ["call", "calls", "errors", "p50 ms", "p95 ms", "max ms"]))
    for kind, message in tally.first_error.items():
        print(f"  first {kind} error: {message[:300]}")

    print("\nopen fds / RSS MB / threads")
    rows = []
    verdicts = []
    warm, end = marks[1][2], marks[3][2]
    for role in ("master", "worker", "devcloud"):
        row = [role]
        for _t, _label, reading in marks:
            r = reading[role]
            row.append(f"{r['fds']} / {r['rss']:.1f} / {r['threads']}")
        dfd = end[role]["fds"] - warm[role]["fds"]
        drss = end[role]["rss"] - warm[role]["rss"]
        row.append(f"{dfd:+d} / {drss:+.1f}")
        if role == "devcloud":
            row.append("(the fake cloud)")
        else:
            flat = abs(dfd) <= args.fd_tolerance and drss <= args.rss_tolerance_mb
            verdicts.append(flat)
            row.append("flat" if flat else "GROWING")
        rows.append(row)
    print(table(rows, ["process"] + [label for _t, label, _r in marks] + ["end - warm-up", "verdict"]))
    series = [(t, r["worker"]["fds"], r["worker"]["rss"]) for t, _label, r in samples]
    print("worker over time (s: fds, RSS MB): "
          + ", ".join(f"{t:.0f}: {fds}, {rss:.0f}" for t, fds, rss in series))
    print(f"(flat: end within {args.fd_tolerance} fds and +{args.rss_tolerance_mb:g} MB RSS of the idle "
          "post-warm-up figures)")
    left = {k: v for k, v in leftovers.items() if v}
    print(f"\nleft after cleanup: {left or 'nothing'}")
    ok = total_errors == 0 and all(verdicts) and not left
    print(f"verdict: {'PASS' if ok else 'FAIL'} (errors {total_errors}, "
          f"{'flat' if all(verdicts) else 'growing'}, {'clean' if not left else 'leftovers'})")
    return ok


if __name__ == "__main__":
    try:
        sys.exit(0 if main() else 1)
    except BenchError as exc:
        print(f"load: {exc}", file=sys.stderr)
        sys.exit(1)
