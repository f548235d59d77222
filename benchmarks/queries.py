"""P5: the cheap calls stay cheap: Get/Path/List per second, List with 5,000
volumes, and fuxi-server's idle memory.

Starts `fuxi-server --devcloud` (no latency), creates and mounts one volume
`q0`, then:

1. idle RSS of the gunicorn master and worker (goal: the two together <= 80 MB),
   with PSS/USS beside it (the worker is forked from the master, so RSS counts
   shared pages twice), and devcloud's, measured separately;
2. Get, Path and List requests per second from --clients client threads, each
   with its own connection, sending dockerd's exact bytes (POST, empty Host,
   dockerd's Accept, no Content-Type, a trailing newline) through a small raw
   HTTP/1.1 client, so the client is not the bottleneck: once with keep-alive
   connections, once with a new connection per request (goal >= 2,000/s);
3. adds --volumes fuxi volumes to devcloud and waits until fuxi's catalog (its
   background refresh) lists them, then times List one call at a time over
   --list-seconds (goal: median <= 50 ms; p95 and max are printed too, since the
   background refresh runs in the same worker) and the req/s again;
4. idle RSS again, with the 5,000-volume catalog;
5. the floor under these figures: the same gunicorn set-up serving
   benchmarks/reference_app.py (a Flask app answering `{"Err": ""}` to every
   call, after importing openstacksdk and os-brick as fuxi's worker must), its
   req/s with the same client and its idle RSS. fuxi's own cost is the difference.

How the 5,000 volumes are made (--fill): `store` (default) writes devcloud
volume records straight into its SQLite store, in one transaction while it
runs, cloned from q0's record (status available, tagged volume_from=fuxi,
fresh id and name): no files, no loop devices, ~0.1 s. A devcloud volume only
gets a loop device when attached, so `api` (POST /volumes through openstacksdk
from 16 threads, each making a record and a sparse file) makes the same thing,
slowly; it is there to check that the shortcut changes nothing.

    python benchmarks/queries.py [--clients 4] [--seconds 3] [--volumes 5000] [--fill store|api]
"""

import argparse
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from fuxi_bench import (BenchError, Fuxi, exit_on_signals, median, percentile, running, scratch, table)

MB = 1024 * 1024
# fuxi-server's default request threads, given to it and to the reference app alike.
THREADS = 16


def say(text):
    print(text, file=sys.stderr, flush=True)


class RawClient:
    """One connection to the plugin socket speaking HTTP/1.1 as dockerd does."""

    def __init__(self, path, keepalive=True):
        self.path = path
        self.keepalive = keepalive
        self.sock = None
        self.buf = b""

    def _connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(70)
        self.sock.connect(self.path)
        self.buf = b""

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _read_until(self, marker):
        while marker not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        head, self.buf = self.buf.split(marker, 1)
        return head

    def _read_exactly(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def call(self, method, body: bytes):
        request = (f"POST /{method} HTTP/1.1\r\nHost: \r\nUser-Agent: Go-http-client/1.1\r\n"
                   f"Accept: application/vnd.docker.plugins.v1.2+json\r\nContent-Length: {len(body)}\r\n"
                   + ("" if self.keepalive else "Connection: close\r\n") + "\r\n").encode() + body
        for attempt in (1, 2):
            if self.sock is None:
                self._connect()
            try:
                self.sock.sendall(request)
                head = self._read_until(b"\r\n\r\n").decode("latin-1").split("\r\n")
                break
            except (ConnectionError, BrokenPipeError):
                # A kept-alive connection the server closed: once more on a new one.
                self.close()
                if attempt == 2:
                    raise
        status = int(head[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
        if "content-length" not in headers:
            raise BenchError(f"{method}: no Content-Length in {head}")
        data = self._read_exactly(int(headers["content-length"]))
        if not self.keepalive or headers.get("connection", "").lower() == "close":
            self.close()
        return status, data


def body_of(name):
    return (json.dumps({"Name": name}) + "\n").encode() if name else b"{}\n"


def check(method, status, data):
    if status != 200 or b'"Err": ""' not in data and b'"Err"' in data:
        raise BenchError(f"{method}: HTTP {status} {data[:200]!r}")


def throughput(path, method, name, clients, seconds, keepalive, worker=None):
    """Requests per second, and the cores the worker and this client kept busy meanwhile."""
    import psutil

    me = psutil.Process()
    body = body_of(name)
    stop = threading.Event()
    counts = [0] * clients
    errors = []

    def client(i):
        c = RawClient(path, keepalive)
        try:
            while not stop.is_set():
                status, data = c.call(method, body)
                check(method, status, data)
                counts[i] += 1
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            c.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    cpu = lambda p: sum(p.cpu_times()[:2]) if p is not None else 0.0  # noqa: E731
    t0, w0, c0 = time.perf_counter(), cpu(worker), cpu(me)
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    w1, c1 = cpu(worker), cpu(me)
    if errors:
        raise BenchError(f"{method}: {errors[0]}")
    return sum(counts) / elapsed, (w1 - w0) / elapsed, (c1 - c0) / elapsed


def list_latencies(path, seconds):
    c = RawClient(path, keepalive=True)
    times, starts, sizes = [], [], None
    deadline = time.monotonic() + seconds
    t0 = time.perf_counter()
    try:
        while time.monotonic() < deadline:
            start = time.perf_counter()
            status, data = c.call("VolumeDriver.List", b"{}\n")
            times.append(time.perf_counter() - start)
            starts.append(start - t0)
            check("List", status, data)
            sizes = len(data)
    finally:
        c.close()
    return times, starts, sizes


def memory(fuxi):
    rows = {}
    for role, proc in fuxi.processes().items():
        info = proc.memory_full_info()
        rows[role] = {"rss": info.rss / MB, "pss": info.pss / MB, "uss": info.uss / MB}
    return rows


def idle_cpu(worker, seconds):
    """Share of a core the idle worker uses (its catalog refresh runs every refresh_interval)."""
    before = sum(worker.cpu_times()[:2])
    time.sleep(seconds)
    return (sum(worker.cpu_times()[:2]) - before) / seconds


def fill_store(fuxi, template_name, count):
    """Clone q0's devcloud record `count` times, straight into devcloud's store."""
    db = sqlite3.connect(os.path.join(fuxi.state_dir, "devcloud", "devcloud.sqlite"), timeout=30,
                         isolation_level=None)
    try:
        template = None
        for (doc,) in db.execute("SELECT doc FROM records WHERE kind = 'volume'"):
            record = json.loads(doc)
            if record["name"] == template_name:
                template = record
        if template is None:
            raise BenchError(f"no devcloud record of {template_name}")
        rows = []
        for i in range(count):
            record = dict(template, id=str(uuid.uuid4()), name=f"bulk{i:05d}", status="available",
                          device=None, metadata=dict(template["metadata"]))
            rows.append(("volume", record["id"], json.dumps(record, sort_keys=True)))
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO records (kind, id, doc) VALUES (?, ?, ?)", rows)
        db.execute("COMMIT")
    finally:
        db.close()


def fill_api(fuxi, count):
    import openstack

    with open(os.path.join(fuxi.state_dir, "devcloud", "ready.json"), encoding="utf-8") as f:
        cloud = json.load(f)["cloud"]
    conn = openstack.connection.Connection(auth=cloud["auth"], region_name=cloud.get("region_name"),
                                           identity_api_version="3", block_storage_api_version="3")
    conn.block_storage.get_endpoint()  # authenticate once, before the threads

    def one(i):
        conn.block_storage.create_volume(name=f"bulk{i:05d}", size=1,
                                         metadata={"volume_from": "fuxi", "fstype": "ext4"})

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(count)))


class ReferenceServer:
    """benchmarks/reference_app.py under gunicorn, set up as fuxi-server sets itself up."""

    def __init__(self, workdir, threads):
        self.socket = os.path.join(workdir, "reference.sock")
        self.threads = threads
        self.proc = None

    def __enter__(self):
        here = os.path.dirname(os.path.abspath(__file__))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-k", "gthread", "--threads", str(self.threads), "-w", "1",
             "-b", f"unix:{self.socket}", "--chdir", here, "reference_app:app"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while not (os.path.exists(self.socket) and self._answers()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError("the reference gunicorn app did not start")
            time.sleep(0.2)
        return self

    def _answers(self):
        try:
            return RawClient(self.socket).call("Plugin.Activate", b"{}\n")[0] == 200
        except OSError:
            return False

    def processes(self):
        import psutil

        master = psutil.Process(self.proc.pid)
        return {"master": master, "worker": master.children()[0]}

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def fmt_mem(m):
    return [f"{m['rss']:.1f}", f"{m['pss']:.1f}", f"{m['uss']:.1f}"]


def main():
    exit_on_signals()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4, help="client threads (default 4)")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per req/s figure (default 3)")
    parser.add_argument("--volumes", type=int, default=5000, help="volumes for the List figure (default 5000)")
    parser.add_argument("--list-seconds", type=float, default=12.0,
                        help="seconds of one-at-a-time Lists (default 12: more than one catalog refresh)")
    parser.add_argument("--idle", type=float, default=10.5,
                        help="seconds idle before a memory reading (default 10.5: one catalog refresh)")
    parser.add_argument("--fill", choices=("store", "api"), default="store",
                        help="how the volumes are made in devcloud (default store)")
    args = parser.parse_args()

    with scratch("fuxi-queries-") as workdir:
        fuxi = Fuxi(workdir, {"devcloud_latency_profile": "none", "threads": THREADS})
        with running(fuxi):
            worker = fuxi.processes()["worker"]
            cpu_idle = idle_cpu(worker, args.idle)
            mem_idle = memory(fuxi)
            fuxi.call("VolumeDriver.Create", {"Name": "q0", "Opts": {"size": "1"}})
            fuxi.call("VolumeDriver.Mount", {"Name": "q0", "ID": "bench"})
            rates = {}
            for keepalive in (True, False):
                for method, name in (("VolumeDriver.Get", "q0"), ("VolumeDriver.Path", "q0"),
                                     ("VolumeDriver.List", None)):
                    rate = throughput(fuxi.socket, method, name, args.clients, args.seconds, keepalive, worker)
                    rates[(method, keepalive, 1)] = rate
                    say(f"  {method} keep-alive={keepalive}: {rate[0]:.0f}/s")

            say(f"adding {args.volumes} volumes to devcloud ({args.fill})")
            t0 = time.perf_counter()
            if args.fill == "store":
                fill_store(fuxi, "q0", args.volumes)
            else:
                fill_api(fuxi, args.volumes)
            fill_secs = time.perf_counter() - t0
            say(f"  made in {fill_secs:.1f} s; waiting for fuxi's catalog refresh")
            total = args.volumes + 1
            deadline = time.monotonic() + 120
            while True:
                listed = len(fuxi.call("VolumeDriver.List", {})["Volumes"])
                if listed >= total:
                    break
                if time.monotonic() > deadline:
                    raise BenchError(f"fuxi lists {listed} of {total} volumes after 120 s")
                time.sleep(0.5)
            seen_after = time.perf_counter() - t0
            say(f"  fuxi lists {listed} volumes {seen_after:.1f} s after they were made")

            times, starts, size = list_latencies(fuxi.socket, args.list_seconds)
            rates_big = {}
            for method, name in (("VolumeDriver.Get", "q0"), ("VolumeDriver.Get", "bulk04999"),
                                 ("VolumeDriver.Path", "q0"), ("VolumeDriver.List", None)):
                name = name if name != "bulk04999" else f"bulk{args.volumes - 1:05d}"
                rates_big[(method, name)] = throughput(fuxi.socket, method, name, args.clients, args.seconds, True,
                                                       worker)
                say(f"  {method} {name or ''} with {total} volumes: {rates_big[(method, name)][0]:.0f}/s")
            cpu_big = idle_cpu(worker, args.idle)
            mem_big = memory(fuxi)

        say("the reference app under the same gunicorn set-up")
        with ReferenceServer(workdir, THREADS) as ref:
            ref_worker = ref.processes()["worker"]
            ref_rates = {method: throughput(ref.socket, method, name, args.clients, args.seconds, True, ref_worker)
                         for method, name in (("VolumeDriver.Get", "q0"), ("VolumeDriver.List", None))}
            time.sleep(1)
            mem_ref = memory(ref)

    print(f"\nrequests per second, {args.clients} client threads, {args.seconds:g} s each, "
          f"one mounted volume q0 ({os.cpu_count()} cores shared by client and server)")
    rows = []
    for method in ("VolumeDriver.Get", "VolumeDriver.Path", "VolumeDriver.List"):
        for keepalive in (True, False):
            rate, wcores, ccores = rates[(method, keepalive, 1)]
            rows.append([method.split(".")[1], "keep-alive" if keepalive else "new connection each",
                         f"{rate:,.0f}", f"{wcores:.2f}", f"{ccores:.2f}", ">= 2,000",
                         "ok" if rate >= 2000 else "MISSED"])
    for (method, name), (rate, wcores, ccores) in rates_big.items():
        rows.append([method.split(".")[1] + (f" {name}" if name else ""), f"{total} volumes, keep-alive",
                     f"{rate:,.0f}", f"{wcores:.2f}", f"{ccores:.2f}",
                     ">= 2,000" if method != "VolumeDriver.List" else "-",
                     ("ok" if rate >= 2000 else "MISSED") if method != "VolumeDriver.List" else ""])
    for method, (rate, wcores, ccores) in ref_rates.items():
        rows.append([method.split(".")[1] + " (reference app)", "keep-alive", f"{rate:,.0f}", f"{wcores:.2f}",
                     f"{ccores:.2f}", "floor", ""])
    print(table(rows, ["call", "connections", "req/s", "worker cores", "client cores", "goal", ""]))
    print("(reference app: the same gunicorn serving a Flask app that only answers {\"Err\": \"\"}, "
          "with openstacksdk and os-brick loaded: the most this stack does on this machine)")

    med = median(times) * 1000
    print(f"\nList with {total} volumes, one call at a time for {args.list_seconds:g} s "
          f"({len(times)} calls, {size / 1024:.0f} KiB answer)")
    print(table([[f"{med:.1f}", f"{percentile(times, 95) * 1000:.1f}", f"{max(times) * 1000:.1f}",
                  "median <= 50", "ok" if med <= 50 else "MISSED"]],
                ["median ms", "p95 ms", "max ms", "goal", ""]))
    slow = [(s, t) for s, t in zip(starts, times) if t > 1.5 * med / 1000]
    print(f"calls over 1.5x the median: {len(slow)}, at t = "
          + ", ".join(f"{s:.1f} s ({t * 1000:.0f} ms)" for s, t in slow[:12]))
    print(f"(volumes made with --fill {args.fill} in {fill_secs:.2f} s; fuxi listed them "
          f"{seen_after:.1f} s later, at its next catalog refresh)")

    print("\nmemory, MB (RSS; PSS and USS count pages shared by the forked master and worker once)")
    rows = []
    for label, mem in (("idle, after start", mem_idle), (f"idle, {total} volumes known", mem_big)):
        both = {k: mem["master"][k] + mem["worker"][k] for k in ("rss", "pss", "uss")}
        rows.append([label, "gunicorn master", *fmt_mem(mem["master"]), "", ""])
        rows.append(["", "gunicorn worker", *fmt_mem(mem["worker"]), "", ""])
        rows.append(["", "fuxi-server (both)", *fmt_mem(both), "<= 80", "ok" if both["rss"] <= 80 else "MISSED"])
        rows.append(["", "devcloud (apart)", *fmt_mem(mem["devcloud"]), "-", ""])
    ref_both = {k: mem_ref["master"][k] + mem_ref["worker"][k] for k in ("rss", "pss", "uss")}
    rows.append(["reference app, idle", "gunicorn master", *fmt_mem(mem_ref["master"]), "", ""])
    rows.append(["", "gunicorn worker", *fmt_mem(mem_ref["worker"]), "", ""])
    rows.append(["", "both", *fmt_mem(ref_both), "floor", ""])
    print(table(rows, ["when", "process", "RSS", "PSS", "USS", "goal (RSS)", ""]))
    print(f"\nidle worker CPU (its catalog refresh every 10 s): {cpu_idle * 100:.1f}% of a core with 1 volume, "
          f"{cpu_big * 100:.1f}% with {total}")


if __name__ == "__main__":
    try:
        main()
    except BenchError as exc:
        print(f"queries: {exc}", file=sys.stderr)
        sys.exit(1)
