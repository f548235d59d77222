"""What the warm-pool benchmarks share: a fuxi-server (with its embedded
devcloud) that a benchmark starts, drives as dockerd does and cleans up after,
even when the benchmark fails or is interrupted, and fuxi's own step log.

Cleanup, in order: Unmount every mount this client made and Remove every
volume it created (through the plugin), drain the warm pools, stop fuxi-server
and its devcloud (SIGTERM to their process group, SIGKILL after 60 s), then
force away whatever is left under the scratch directory (mounts, loop devices
bound to its volume files) and delete it.
"""

import collections
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from contextlib import contextmanager
from pathlib import Path

import requests_unixsocket

REPO = Path(__file__).resolve().parents[1]
DOCKER_SOCKET = "/run/docker/plugins/fuxi.sock"

# storage_core.timing: "step create volume=v1 took 1.512 s"
STEP_RE = re.compile(
    r"storage_core\.timing: step (?P<step>\S+) volume=(?P<volume>\S+) (?P<outcome>took|failed) (?P<secs>[0-9.]+) s"
)


class BenchError(Exception):
    pass


def exit_on_signals():
    """SIGTERM/SIGHUP end the benchmark like Ctrl-C does, so every `finally` runs."""
    def handler(signum, _frame):
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


def median(values):
    return statistics.median(values) if values else float("nan")


def percentile(values, pct):
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * pct / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def socket_is_live(path) -> bool:
    """True when something accepts connections on the unix socket `path`."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def parse_steps(log_path):
    """[(step, volume, seconds)] of every finished step in fuxi-server's log."""
    found = []
    try:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = STEP_RE.search(line)
                if m and m["outcome"] == "took":
                    found.append((m["step"], m["volume"], float(m["secs"])))
    except FileNotFoundError:
        pass
    return found


def steps_by_name(steps, volumes=None):
    """{step: [seconds, ...]} for the given volume names (all when None)."""
    out = collections.defaultdict(list)
    for step, volume, secs in steps:
        if volumes is None or volume in volumes:
            out[step].append(secs)
    return out


class Fuxi:
    """fuxi-server --devcloud on a scratch state dir, called the way dockerd calls it."""

    def __init__(self, workdir, options=None, pools=None, socket_path=None, devcloud_flag=False):
        """options: [fuxi] keys (devcloud = true is added unless devcloud_flag, which
        passes --devcloud on the command line instead); pools: {name: {key: value}}."""
        self.workdir = workdir
        self.state_dir = os.path.join(workdir, "state")
        self.socket = socket_path or os.path.join(workdir, "fuxi.sock")
        self.config = os.path.join(workdir, "fuxi.conf")
        self.log_path = os.path.join(workdir, "fuxi-server.log")
        self.pools = dict(pools or {})
        self.process = None
        self._log = None
        self._local = threading.local()
        self._track_lock = threading.Lock()
        self.mounts = collections.Counter()  # (name, caller id) -> live mounts we made
        self.created = set()
        options = dict(options or {})
        if not devcloud_flag:
            options.setdefault("devcloud", "true")
        lines = ["[fuxi]"] + [f"{k} = {v}" for k, v in options.items()]
        for name, pool in self.pools.items():
            lines += ["", f"[pool:{name}]"] + [f"{k} = {v}" for k, v in pool.items()]
        with open(self.config, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        self.argv = [sys.executable, "-m", "fuxi.server", "--config-file", self.config,
                     "--socket", self.socket, "--state-dir", self.state_dir]
        if devcloud_flag:
            self.argv.append("--devcloud")
        self.base = "http+unix://" + urllib.parse.quote(self.socket, safe="")

    # -- process --------------------------------------------------------

    def start(self, timeout=90):
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.argv, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.call("Plugin.Activate", {})
                return self
            except Exception:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"fuxi-server did not start; its log:\n{self.log_tail()}")
                time.sleep(0.05)

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        # Anything of the group still alive (devcloud) goes too.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    # -- processes for memory figures ------------------------------------

    def processes(self):
        """{'master': p, 'worker': p, 'devcloud': p} as psutil processes."""
        import psutil

        master = psutil.Process(self.process.pid)
        found = {"master": master}
        for child in master.children(recursive=True):
            cmd = " ".join(child.cmdline())
            if "storage_core.devcloud" in cmd:
                found["devcloud"] = child
            elif "fuxi.server" in cmd:
                found["worker"] = child
        return found

    # -- calls ------------------------------------------------------------

    def _session(self):
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests_unixsocket.Session()
        return s

    def raw(self, method, body, timeout=130):
        resp = self._session().post(f"{self.base}/{method.lstrip('/')}", data=json.dumps(body) + "\n",
                                    timeout=timeout)
        return resp.status_code, resp.json()

    def call(self, method, body, timeout=130):
        status, answer = self.raw(method, body, timeout)
        if status != 200 or answer.get("Err"):
            raise BenchError(f"{method} {body}: HTTP {status} {answer}")
        with self._track_lock:
            name, caller = body.get("Name"), body.get("ID")
            if method == "VolumeDriver.Create":
                self.created.add(name)
            elif method == "VolumeDriver.Remove":
                self.created.discard(name)
            elif method == "VolumeDriver.Mount":
                self.mounts[(name, caller)] += 1
            elif method == "VolumeDriver.Unmount":
                self.mounts[(name, caller)] -= 1
                if self.mounts[(name, caller)] <= 0:
                    del self.mounts[(name, caller)]
        return answer

    def timed(self, method, body):
        start = time.perf_counter()
        self.call(method, body)
        return time.perf_counter() - start

    # -- devcloud -----------------------------------------------------------

    def devcloud_url(self):
        with open(os.path.join(self.state_dir, "devcloud", "ready.json"), encoding="utf-8") as f:
            return json.load(f)["url"]

    def devcloud_latency(self):
        import requests

        return requests.get(self.devcloud_url().rstrip("/") + "/devcloud/latency", timeout=10).json()["latency"]

    # -- pools ----------------------------------------------------------------

    def pool_status(self):
        return {p["pool"]: p for p in self.call("fuxi/pool/status", {})["Pools"]}

    def wait_pool_ready(self, pool, count, timeout=240, say=None):
        """Wait until `pool` has `count` ready volumes (filled by fuxi's own keeper)."""
        deadline = time.monotonic() + timeout
        shown = None
        while True:
            level = self.pool_status()[pool]
            if level["ready"] >= count:
                return level
            if say and (level["ready"], level["filling"]) != shown:
                shown = (level["ready"], level["filling"])
                say(f"  pool {pool}: {level['ready']}/{count} ready, {level['filling']} filling")
            if time.monotonic() > deadline:
                raise BenchError(f"pool {pool} has {level['ready']} of {count} volumes ready after "
                                 f"{timeout} s; fuxi-server log:\n{self.log_tail()}")
            if self.process.poll() is not None:
                raise BenchError(f"fuxi-server exited; its log:\n{self.log_tail()}")
            time.sleep(0.25)

    # -- cleanup ----------------------------------------------------------------

    def release_all(self):
        """Unmount and remove what this client made, drain the pools; best effort."""
        problems = []
        if self.process is None or self.process.poll() is not None:
            return problems
        with self._track_lock:
            mounts = list(self.mounts.elements())
            created = sorted(self.created)
        for name, caller in mounts:
            try:
                self.call("VolumeDriver.Unmount", {"Name": name, "ID": caller}, timeout=60)
            except Exception as exc:
                problems.append(f"unmount {name}: {exc}")
        for name in created:
            try:
                self.call("VolumeDriver.Remove", {"Name": name}, timeout=60)
            except Exception as exc:
                problems.append(f"remove {name}: {exc}")
        if self.pools:
            try:
                self.call("fuxi/pool/drain", {}, timeout=300)
            except Exception as exc:
                problems.append(f"pool drain: {exc}")
        return problems


def scrub(workdir):
    """Force away what is left under `workdir`: mounts, loop devices, files."""
    workdir = os.path.realpath(workdir)
    prefix = workdir.rstrip("/") + "/"
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        points = [line.split()[4].replace("\\040", " ") for line in f]
    for point in sorted({p for p in points if p.startswith(prefix)}, key=len, reverse=True):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True)
    out = subprocess.run(["losetup", "-J", "-l"], capture_output=True, text=True).stdout
    for dev in (json.loads(out).get("loopdevices", []) if out.strip() else []):
        if (dev.get("back-file") or "").split(" (deleted)")[0].startswith(prefix):
            subprocess.run(["losetup", "-d", dev["name"]], capture_output=True)
    shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def scratch(prefix):
    """A scratch directory, scrubbed at the end whatever happens."""
    workdir = tempfile.mkdtemp(prefix=prefix)
    try:
        yield workdir
    finally:
        scrub(workdir)


@contextmanager
def running(fuxi: Fuxi, keep_log_to=None):
    """Start `fuxi`; at the end release what it holds and stop it, whatever happens."""
    try:
        fuxi.start()
        yield fuxi
    finally:
        try:
            problems = fuxi.release_all()
            for p in problems:
                print(f"cleanup: {p}", file=sys.stderr)
        finally:
            fuxi.stop()
            if keep_log_to:
                try:
                    shutil.copy(fuxi.log_path, keep_log_to)
                except OSError:
                    pass


def table(rows, header):
    """Plain fixed-width table; rows are lists of str."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    fmt = lambda r: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)  # noqa: E731
                              for i, (c, w) in enumerate(zip(r, widths)))
    lines = [fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows]
    return "\n".join(lines)


def results_dir():
    path = os.environ.get("FUXI_BENCH_OUT", "/tmp/fuxi-bench-results")
    os.makedirs(path, exist_ok=True)
    return path
