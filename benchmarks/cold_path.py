"""Time the cold path of one volume through fuxi-server on devcloud.

Starts `fuxi-server --devcloud` on a scratch socket and state dir, then times
Create, the first Mount (attach + mkfs + mount), the last Unmount (unmount +
detach) and Remove, as dockerd would call them, for each devcloud latency
profile. Prints a table of medians over --runs volumes.

    python benchmarks/cold_path.py [--runs 5] [--profiles none,seed]
"""

import argparse
import statistics
import tempfile
import time

from plugin_process import PluginServer

STEPS = ("Create", "Mount", "Unmount", "Remove")


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_profile(profile, runs):
    samples = {step: [] for step in STEPS}
    with tempfile.TemporaryDirectory(prefix="fuxi-bench-") as workdir:
        plugin = PluginServer(workdir, f"devcloud = true\ndevcloud_latency_profile = {profile}\n")
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
