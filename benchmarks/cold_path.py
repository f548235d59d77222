"""Time the cold path of one volume through fuxi-server on devcloud.

Starts `fuxi-server --devcloud` on a scratch socket and state dir, then times
Create, the first Mount (attach + mkfs + mount), the last Unmount (unmount +
detach) and Remove, as dockerd would call them, for each devcloud latency
profile. Prints a table of medians over --runs volumes.

    python benchmarks/cold_path.py [--runs 5] [--profiles none,seed]
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

import requests_unixsocket

STEPS = ("Create", "Mount", "Unmount", "Remove")


class Plugin:
    def __init__(self, workdir, profile):
        self.socket = os.path.join(workdir, "fuxi.sock")
        config = os.path.join(workdir, "fuxi.conf")
        with open(config, "w") as f:
            f.write(f"[fuxi]\ndevcloud = true\ndevcloud_latency_profile = {profile}\n")
        self.log = open(os.path.join(workdir, "server.log"), "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fuxi.server", "--config-file", config,
             "--socket", self.socket, "--state-dir", os.path.join(workdir, "state")],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.session = requests_unixsocket.Session()
        self.base = "http+unix://" + urllib.parse.quote(self.socket, safe="")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.call("Plugin.Activate", {})
                return
            except Exception:
                time.sleep(0.05)
        raise SystemExit(f"fuxi-server did not start; see {self.log.name}")

    def call(self, method, body):
        resp = self.session.post(f"{self.base}/{method}", data=json.dumps(body) + "\n", timeout=130)
        answer = resp.json()
        if resp.status_code != 200 or answer.get("Err"):
            raise RuntimeError(f"{method}: {answer}")
        return answer

    def stop(self):
        self.session.close()
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(60)
        self.log.close()


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_profile(profile, runs):
    samples = {step: [] for step in STEPS}
    with tempfile.TemporaryDirectory(prefix="fuxi-bench-") as workdir:
        plugin = Plugin(workdir, profile)
        try:
            for i in range(runs):
                name = f"bench{i}"
                samples["Create"].append(timed(lambda: plugin.call("VolumeDriver.Create", {"Name": name, "Opts": {"size": "1"}})))
                samples["Mount"].append(timed(lambda: plugin.call("VolumeDriver.Mount", {"Name": name, "ID": "b"})))
                samples["Unmount"].append(timed(lambda: plugin.call("VolumeDriver.Unmount", {"Name": name, "ID": "b"})))
                samples["Remove"].append(timed(lambda: plugin.call("VolumeDriver.Remove", {"Name": name})))
        finally:
            plugin.stop()
    return {step: statistics.median(values) for step, values in samples.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profiles", default="none,seed")
    args = parser.parse_args()
    rows = [(p, run_profile(p, args.runs)) for p in args.profiles.split(",")]
    print(f"median seconds over {args.runs} volumes (1 GiB, ext4)")
    print(f"{'profile':<8} " + " ".join(f"{s:>8}" for s in STEPS) + f" {'C+M':>8}")
    for profile, medians in rows:
        cells = " ".join(f"{medians[s]:8.3f}" for s in STEPS)
        print(f"{profile:<8} {cells} {medians['Create'] + medians['Mount']:8.3f}")


if __name__ == "__main__":
    main()
