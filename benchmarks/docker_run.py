"""P1: `docker run` with a new fuxi volume, from a warm tier-4 pool, against
Docker's own `local` volume driver.

Starts its own `fuxi-server --devcloud` on dockerd's plugin socket
/run/docker/plugins/fuxi.sock (and refuses to run when another fuxi already
serves there), with a tier-4 pool of 1 GiB ext4 volumes (the size and fstype a
volume without options gets) big enough for every run, filled by fuxi's keeper
before the clock starts. Then, alternating which goes first in each pair, it
times --runs pairs of

  local: docker run --rm -v NAME:/data fuxi-busybox true
  fuxi:  docker run --rm -v NAME:/data --volume-driver fuxi fuxi-busybox true

each with a name never used before, so the run itself creates the volume
(dockerd: Get, then Create, then Mount/Unmount when the container is created
-- the copy-up check, no `:nocopy` -- and Mount/Unmount again at start/stop).
The volumes are removed with `docker volume rm` after each run, off the clock.
Goal: median fuxi / median local <= 1.3.

Per fuxi run it also reads fuxi's log: the steps it took (pool-claim; attach,
mkfs, mount when a Mount had to put the volume on the host again) and how
many times the volume was put on and taken off the host.

dockerd must answer (`scripts/docker-up.sh` starts it and builds fuxi-busybox;
this script runs it when `docker info` fails).

    python benchmarks/docker_run.py [--runs 10] [--profile none|seed]
"""

import argparse
import collections
import os
import re
import subprocess
import sys
import time

from fuxi_bench import (DOCKER_SOCKET, REPO, BenchError, Fuxi, exit_on_signals, median, parse_steps, running,
                        scratch, socket_is_live, table)

DOCKER = os.environ.get("FUXI_DOCKER", "/usr/bin/docker")
IMAGE = os.environ.get("FUXI_IMAGE", "fuxi-busybox")
POOL = "docker"
# Volumes whose plugin calls are replayed on the socket without dockerd, each call timed.
REPLAYS = 3
REPLAY = ("Get (unknown name)", "Create", "Mount", "Unmount")


def say(text):
    print(text, file=sys.stderr, flush=True)


def docker(*args, check=True, timeout=150):
    proc = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise BenchError(f"docker {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def ensure_docker():
    if not os.access(DOCKER, os.X_OK):
        raise BenchError(f"{DOCKER} not found; run scripts/install.sh")
    if docker("info", check=False, timeout=30).returncode != 0:
        say("dockerd does not answer: running scripts/docker-up.sh")
        subprocess.run(["bash", str(REPO / "scripts" / "docker-up.sh")], check=True)
    if docker("image", "inspect", IMAGE, check=False).returncode != 0:
        subprocess.run(["bash", str(REPO / "scripts" / "docker-up.sh")], check=True)


def refuse_other_fuxi():
    if socket_is_live(DOCKER_SOCKET):
        raise BenchError(
            f"another fuxi is already serving on {DOCKER_SOCKET}; this benchmark starts its own there. "
            "Stop that one first (e.g. the fuxi-server of scripts/serve-devcloud.sh)")
    for spec in ("/etc/docker/plugins/fuxi.spec", "/etc/docker/plugins/fuxi.json",
                 "/usr/lib/docker/plugins/fuxi.spec", "/usr/lib/docker/plugins/fuxi.json"):
        if os.path.exists(spec):
            raise BenchError(f"{spec} points dockerd at another fuxi; move it away first")


class Runs:
    """Containers and volumes made by the benchmark, so they can always be removed."""

    def __init__(self, tag):
        self.tag = tag
        self.count = 0
        self.volumes = []
        self.containers = []

    def run(self, driver):
        self.count += 1
        name = f"{self.tag}-{driver}-{self.count}"
        self.volumes.append(name)
        self.containers.append(name)
        argv = ["run", "--rm", "--name", name, "-v", f"{name}:/data"]
        if driver == "fuxi":
            argv += ["--volume-driver", "fuxi"]
        argv += [IMAGE, "true"]
        start = time.perf_counter()
        docker(*argv)
        took = time.perf_counter() - start
        self.containers.remove(name)
        docker("volume", "rm", name)
        self.volumes.remove(name)
        return name, took

    def cleanup(self):
        for name in list(self.containers):
            docker("rm", "-f", name, check=False)
        for name in list(self.volumes):
            docker("volume", "rm", "-f", name, check=False)


MOUNTED_RE = re.compile(r"storage_core\.service: volume (?P<volume>\S+) mounted for ")
RELEASED_RE = re.compile(r"storage_core\.service: volume (?P<volume>\S+) released from this host")


def host_cycles(log_path):
    """{volume: (Mount calls, releases from the host)} from fuxi's log."""
    mounts, releases = collections.Counter(), collections.Counter()
    with open(log_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = MOUNTED_RE.search(line)
            if m:
                mounts[m["volume"]] += 1
            m = RELEASED_RE.search(line)
            if m:
                releases[m["volume"]] += 1
    return mounts, releases


def replay_calls(fuxi, tag):
    """{call: [seconds]}: dockerd's calls for a new volume, sent straight to the socket."""
    took = collections.defaultdict(list)
    for i in range(REPLAYS):
        name = f"{tag}-replay-{i}"
        start = time.perf_counter()
        status, _answer = fuxi.raw("VolumeDriver.Get", {"Name": name})
        took["Get (unknown name)"].append(time.perf_counter() - start)
        if status == 200:
            raise BenchError(f"Get of the new name {name} succeeded")
        took["Create"].append(fuxi.timed("VolumeDriver.Create", {"Name": name, "Opts": {}}))
        took["Mount"].append(fuxi.timed("VolumeDriver.Mount", {"Name": name, "ID": "replay"}))
        took["Unmount"].append(fuxi.timed("VolumeDriver.Unmount", {"Name": name, "ID": "replay"}))
        fuxi.call("VolumeDriver.Remove", {"Name": name})
    return took


def main():
    exit_on_signals()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="pairs of runs (default 10)")
    parser.add_argument("--profile", default="none", help="devcloud latency profile (default none)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise BenchError("run as root: fuxi-server mounts and dockerd's socket directory is root's")
    ensure_docker()
    refuse_other_fuxi()

    size = args.runs + 1 + REPLAYS  # + the warm-up run and the replays
    pool = {"size_gb": 1, "fstype": "ext4", "tier": 4, "min_ready": size, "max": size, "batch": size,
            "refill_interval": 3600}
    tag = f"fuxibench{os.getpid()}"
    local, fuxi_t, fuxi_names = [], [], []
    with scratch("fuxi-docker-run-") as workdir:
        fuxi = Fuxi(workdir, {"devcloud_latency_profile": args.profile}, pools={POOL: pool},
                    socket_path=DOCKER_SOCKET, devcloud_flag=True)
        try:
            with running(fuxi):
                runs = Runs(tag)
                try:
                    say(f"filling the tier-4 pool with {size} volumes (devcloud profile {args.profile})")
                    fuxi.wait_pool_ready(POOL, size, timeout=60 + 15 * size, say=say)
                    runs.run("local")  # warm-up: image, plugin activation
                    runs.run("fuxi")
                    for i in range(args.runs):
                        order = ("local", "fuxi") if i % 2 == 0 else ("fuxi", "local")
                        for driver in order:
                            name, took = runs.run(driver)
                            (local if driver == "local" else fuxi_t).append(took)
                            if driver == "fuxi":
                                fuxi_names.append(name)
                        say(f"  pair {i + 1}: local {local[-1]:.3f} s, fuxi {fuxi_t[-1]:.3f} s")
                    replay = replay_calls(fuxi, tag)
                    steps = parse_steps(fuxi.log_path)
                    mounts, releases = host_cycles(fuxi.log_path)
                    left = fuxi.pool_status()[POOL]["ready"]
                finally:
                    runs.cleanup()
        finally:
            # fuxi-server's socket goes with it; a dead one would make dockerd wait 15 s.
            if os.path.exists(DOCKER_SOCKET) and not socket_is_live(DOCKER_SOCKET):
                os.unlink(DOCKER_SOCKET)

    per_step = collections.defaultdict(list)
    per_volume = collections.defaultdict(lambda: collections.defaultdict(float))
    names = set(fuxi_names)
    for step, volume, secs in steps:
        if volume in names:
            per_step[step].append(secs)
            per_volume[volume][step] += secs
    ratio = median(fuxi_t) / median(local)

    print(f"\ndocker run --rm -v NEW:/data {IMAGE} true, {args.runs} alternating pairs, volume created by the run "
          f"itself (fuxi: --volume-driver fuxi, tier-4 pool, devcloud profile {args.profile})")
    print(table([
        ["local", f"{median(local):.3f}", f"{min(local):.3f}", f"{max(local):.3f}", "", ""],
        ["fuxi (warm tier-4 pool)", f"{median(fuxi_t):.3f}", f"{min(fuxi_t):.3f}", f"{max(fuxi_t):.3f}", "", ""],
        ["fuxi / local (medians)", f"{ratio:.2f}", "", "", "<= 1.3", "ok" if ratio <= 1.3 else "MISSED"],
    ], ["driver", "median s", "min s", "max s", "goal", ""]))
    print(f"\nwhat fuxi did per run (its log; {len(fuxi_names)} runs, pool had {left} left):")
    rows = []
    for step in ("pool-claim", "attach", "mkfs", "mount"):
        vals = per_step.get(step, [])
        rows.append([step, f"{len(vals) / len(fuxi_names):.1f}", f"{median(vals):.3f}" if vals else "-",
                     f"{median([per_volume[v].get(step, 0.0) for v in fuxi_names]):.3f}"])
    rows.append(["Mount calls", f"{sum(mounts[v] for v in fuxi_names) / len(fuxi_names):.1f}", "", ""])
    rows.append(["taken off the host (unmount+detach)",
                 f"{sum(releases[v] for v in fuxi_names) / len(fuxi_names):.1f}", "", ""])
    print(table(rows, ["step", "per run", "median s each", "median s per run"]))
    print(f"\nthe same plugin calls for {REPLAYS} more pool volumes, sent straight to the socket (no dockerd):")
    rows = [[call, f"{median(replay[call]):.3f}"] for call in REPLAY]
    rows.append(["sum", f"{sum(median(replay[c]) for c in REPLAY):.3f}"])
    rows.append(["docker run fuxi - local (medians)", f"{median(fuxi_t) - median(local):.3f}"])
    print(table(rows, ["call", "median s"]))


if __name__ == "__main__":
    try:
        main()
    except BenchError as exc:
        print(f"docker_run: {exc}", file=sys.stderr)
        sys.exit(1)
