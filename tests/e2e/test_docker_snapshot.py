"""A snapshot taken while a container writes: the real Docker engine runs a
writer appending numbered lines to its fuxi volume; `fuxi snapshot create`
freezes the file system under it (the writer only pauses), and a volume made
from the snapshot with `docker volume create -o snapshot=` holds, in a second
container, every line written before the snapshot was asked for, whole and in
order."""

import json
import subprocess
import sys

from tests.e2e.conftest import IMAGE, PLUGIN_SOCKET

# busybox sh: one `echo` (one write) per line, never synced.
WRITER = 'i=0; while true; do printf "%08d\\n" $i >> /data/log; i=$((i+1)); done'
LINE = 9
# The freeze is the host's, the snapshot the cloud's: both clouds, one attach path.
CLOUD_KINDS = ("devcloud", "realcloud")


def lines_in(docker, container) -> int:
    return int(docker("exec", container, "wc", "-c", "/data/log").stdout.split()[0]) // LINE


def test_a_snapshot_of_a_volume_a_container_writes_to_is_whole(docker, fuxi_plugin, volume_name):
    name, copy = volume_name("snapped"), volume_name("from-snap")
    docker("volume", "create", "-d", "fuxi", "-o", "size=1", name)
    writer = docker("run", "-d", "-v", f"{name}:/data", IMAGE, "sh", "-c", WRITER).stdout.strip()
    snapshot_id = None
    try:
        docker("exec", writer, "sh", "-c", "while [ ! -s /data/log ]; do sleep 0.05; done; sleep 0.5")
        before = lines_in(docker, writer)
        done = subprocess.run([sys.executable, "-m", "fuxi.cli", "--socket", PLUGIN_SOCKET, "snapshot", "create",
                               name, "--json"], capture_output=True, text=True, timeout=150, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr
        snap = json.loads(done.stdout)
        snapshot_id = snap["Id"]
        assert snap["Frozen"] is True and snap["Volume"] == name
        # The writer paused for the snapshot, not longer.
        after = lines_in(docker, writer)
        docker("exec", writer, "sleep", "0.3")
        assert lines_in(docker, writer) > after >= before

        docker("volume", "create", "-d", "fuxi", "-o", f"snapshot={snap['Name']}", copy)
        check = docker("run", "--rm", "-v", f"{copy}:/data", IMAGE, "sh", "-c",
                       'n=$(($(wc -c < /data/log) / 9)); [ $(($(wc -c < /data/log) % 9)) -eq 0 ] || exit 3; '
                       'awk -v n=$n "BEGIN { for (i = 0; i < n; i++) printf \\"%08d\\\\n\\", i }" '
                       '| cmp - /data/log || exit 4; echo $n', check=False)
        assert check.returncode == 0, check.stderr + check.stdout
        assert int(check.stdout.strip()) >= before
    finally:
        docker("rm", "-f", writer, check=False)
        docker("volume", "rm", copy, check=False)
        if snapshot_id:
            subprocess.run([sys.executable, "-m", "fuxi.cli", "--socket", PLUGIN_SOCKET, "snapshot", "delete",
                            snapshot_id], capture_output=True, timeout=150, stdin=subprocess.DEVNULL)
