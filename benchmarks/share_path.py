"""Time Manila shares through fuxi-server on devcloud, next to a Cinder volume.

Starts the real GlusterFS server and one-node Ceph the test suite uses
(tests/share_servers.py), then `fuxi-server --devcloud` whose Manila keeps
shares on them, and times Create, the first Mount (grant access, wait for it,
mount with the FUSE client), the last Unmount (unmount, revoke) and Remove, as
dockerd calls them. Prints a table of medians over --runs volumes per backend.

    python benchmarks/share_path.py [--runs 5]
"""

import argparse
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plugin_process import PluginServer  # noqa: E402
from tests.share_servers import devcloud_share_args, running_cephfs, running_glusterfs  # noqa: E402

STEPS = ("Create", "Mount", "Unmount", "Remove")
CASES = (("cinder (bare metal)", {"size": "1"}),
         ("manila glusterfs", {"backend": "manila", "proto": "glusterfs"}),
         ("manila cephfs", {"backend": "manila", "proto": "cephfs"}))


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(plugin, opts, runs, tag):
    samples = {step: [] for step in STEPS}
    for i in range(runs):
        name = f"bench-{tag}-{i}"
        samples["Create"].append(timed(lambda: plugin.call("VolumeDriver.Create", {"Name": name, "Opts": opts})))
        samples["Mount"].append(timed(lambda: plugin.call("VolumeDriver.Mount", {"Name": name, "ID": "b"})))
        samples["Unmount"].append(timed(lambda: plugin.call("VolumeDriver.Unmount", {"Name": name, "ID": "b"})))
        samples["Remove"].append(timed(lambda: plugin.call("VolumeDriver.Remove", {"Name": name})))
    return {step: statistics.median(values) for step, values in samples.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fuxi-bench-shares-") as workdir:
        work = Path(workdir)
        with running_glusterfs(work / "gluster") as gluster, running_cephfs(work / "ceph") as ceph:
            config = (f"devcloud = true\nattach_mode = baremetal\nhost_name = bench\n"
                      f"devcloud_args = {shlex.join(devcloud_share_args(gluster, ceph))}\n"
                      f"ceph_conf = {ceph.conf}\n")
            (work / "plugin").mkdir()
            plugin = PluginServer(str(work / "plugin"), config)
            try:
                rows = [(label, measure(plugin, opts, args.runs, str(n))) for n, (label, opts) in enumerate(CASES)]
            finally:
                plugin.stop()
    print(f"median seconds over {args.runs} volumes (devcloud, no latency profile)")
    print(f"{'backend':<20} " + " ".join(f"{s:>8}" for s in STEPS) + f" {'C+M':>8}")
    for label, medians in rows:
        cells = " ".join(f"{medians[s]:8.3f}" for s in STEPS)
        print(f"{label:<20} {cells} {medians['Create'] + medians['Mount']:8.3f}")


if __name__ == "__main__":
    main()
