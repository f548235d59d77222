"""Time snapshots, clones and backups through fuxi-server on devcloud, and how
long a writer to the volume is held while its file system is frozen.

A 1 GiB ext4 volume is mounted; a writer thread appends a small record every
millisecond (never synced) and notes when each write returns; --dirty-mib of
unsynced data sit in the page cache when the snapshot is asked for (the freeze
flushes them). Per run: the snapshot call (freeze, Cinder's copy, thaw), the
longest pause the writer saw during it, a volume made from the snapshot
(Create + first Mount), a clone of the mounted volume (Create, frozen meanwhile),
and a backup (snapshot + copy to the backup service). Prints medians.

    python benchmarks/snapshot.py [--runs 5] [--dirty-mib 64]
"""

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plugin_process import PluginServer  # noqa: E402

COLUMNS = ("snapshot", "writer held", "from snapshot", "clone", "backup")


class Writer(threading.Thread):
    """Appends a record every millisecond; `longest_gap(start, end)` is the
    longest time between two returned writes inside that window."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.returned = []
        self.stop = threading.Event()

    def run(self):
        with open(self.path, "a", buffering=1) as f:
            while not self.stop.is_set():
                f.write("x" * 63 + "\n")
                self.returned.append(time.monotonic())
                time.sleep(0.001)

    def longest_gap(self, start, end):
        times = [t for t in self.returned if start <= t <= end + 1.0]
        return max((b - a for a, b in zip(times, times[1:])), default=0.0)


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def one_run(plugin, n, dirty_mib):
    name = f"snap-src-{n}"
    plugin.call("VolumeDriver.Create", {"Name": name, "Opts": {"size": "1"}})
    path = plugin.call("VolumeDriver.Mount", {"Name": name, "ID": "bench"})["Mountpoint"]
    with open(os.path.join(path, "dirty.bin"), "wb") as f:
        f.write(os.urandom(dirty_mib << 20))  # not synced: the freeze writes it out
    writer = Writer(os.path.join(path, "log"))
    writer.start()
    time.sleep(0.2)
    started = time.monotonic()
    snapshot = timed(lambda: plugin.call("fuxi/snapshots/create", {"Name": name, "SnapshotName": f"s{n}"}))
    held = writer.longest_gap(started, time.monotonic())
    copy = f"snap-copy-{n}"
    from_snapshot = timed(lambda: (plugin.call("VolumeDriver.Create", {"Name": copy, "Opts": {"snapshot": f"s{n}"}}),
                                   plugin.call("VolumeDriver.Mount", {"Name": copy, "ID": "bench"})))
    clone = timed(lambda: plugin.call("VolumeDriver.Create", {"Name": f"snap-clone-{n}", "Opts": {"source": name}}))
    backup = timed(lambda: plugin.call("fuxi/backups/create", {"Name": name, "BackupName": f"b{n}"}))
    writer.stop.set()
    writer.join()
    for volume in (copy, name):
        plugin.call("VolumeDriver.Unmount", {"Name": volume, "ID": "bench"})
    plugin.call("fuxi/backups/delete", {"Backup": f"b{n}"})
    plugin.call("fuxi/snapshots/delete", {"Snapshot": f"s{n}"})
    for volume in (copy, f"snap-clone-{n}", name):
        plugin.call("VolumeDriver.Remove", {"Name": volume})
    return dict(zip(COLUMNS, (snapshot, held, from_snapshot, clone, backup)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dirty-mib", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fuxi-bench-snapshot-") as workdir:
        plugin = PluginServer(workdir, "devcloud = true\nattach_mode = baremetal\nhost_name = bench\n")
        try:
            rows = [one_run(plugin, n, args.dirty_mib) for n in range(args.runs)]
        finally:
            plugin.stop()
    print(f"median seconds over {args.runs} runs (devcloud, no latency profile; {args.dirty_mib} MiB unsynced "
          "when the snapshot is asked for)")
    print("  ".join(f"{c:>13}" for c in COLUMNS))
    print("  ".join(f"{statistics.median(r[c] for r in rows):13.3f}" for c in COLUMNS))


if __name__ == "__main__":
    main()
