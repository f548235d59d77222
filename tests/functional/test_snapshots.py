"""Snapshots, clones and backups through a real fuxi-server, on devcloud and on
real Cinder: a snapshot taken while a writer appends to the volume holds every
line written before it was asked for, whole (the file system was frozen: with
delayed allocation an unfrozen copy would miss them); a volume made from a
snapshot, a backup or a mounted volume holds the source's data and file system
and is never formatted; sizes default to the source's; bad sources and sizes
are refused in words; backups restore into a new volume and, when asked, over
an unused one. (A crash while frozen: test_snapshot_crash.py.)"""

import json
import os
import subprocess
import sys
import time

from tests.functional.harness import ok
from tests.functional.test_cli import fuxi

# Cinder's own behaviour and the host's freeze: the attach path does not matter.
CLOUD_KINDS = ("devcloud", "realcloud")
CALLER = "c0" * 32
LINE = 9  # "%08d\n"

# Appends numbered lines, one write() each, never fsync: until the file system
# is frozen (or synced), they live in the page cache only.
WRITER = """
import sys, time
n = 0
with open(sys.argv[1], "a", buffering=1) as f:
    while True:
        f.write("%08d\\n" % n)
        n += 1
        if n % 200 == 0:
            time.sleep(0.002)
"""


def cli(plugin, *args):
    rc, out, err = fuxi("--socket", plugin.socket, *args, "--json")
    assert rc == 0, err + plugin.log()
    return json.loads(out)


def cli_error(plugin, *args) -> str:
    rc, _out, err = fuxi("--socket", plugin.socket, *args)
    assert rc == 1, err
    return err


def create(plugin, name, **opts):
    return ok(plugin.call("VolumeDriver.Create", {"Name": name, "Opts": opts}))


def create_error(plugin, name, **opts) -> str:
    status, body = plugin.call("VolumeDriver.Create", {"Name": name, "Opts": opts})
    assert status != 200 and body["Err"], body
    return body["Err"]


def mount(plugin, name) -> str:
    return ok(plugin.call("VolumeDriver.Mount", {"Name": name, "ID": CALLER}))["Mountpoint"]


def unmount_and_remove(plugin, *names):
    for name in names:
        ok(plugin.call("VolumeDriver.Unmount", {"Name": name, "ID": CALLER}))
        ok(plugin.call("VolumeDriver.Remove", {"Name": name}))


def complete_lines(path) -> int:
    """How many whole, consecutive numbered lines the file holds (asserted)."""
    with open(path, "rb") as f:
        data = f.read()
    assert len(data) % LINE == 0, f"a torn line: {len(data)} bytes"
    count = len(data) // LINE
    assert data == b"".join(b"%08d\n" % n for n in range(count)), "lines out of order or missing"
    return count


def start_writer(path):
    writer = subprocess.Popen([sys.executable, "-c", WRITER, path])
    deadline = time.monotonic() + 10
    while not os.path.exists(path) or os.path.getsize(path) < 1000 * LINE:
        assert time.monotonic() < deadline and writer.poll() is None, "the writer did not start"
        time.sleep(0.02)
    return writer


def test_a_snapshot_taken_while_writing_is_whole_and_a_volume_made_from_it_holds_it(cloud, plugin):
    create(plugin, "src", size="1")
    path = mount(plugin, "src")
    log = os.path.join(path, "log")
    writer = start_writer(log)
    try:
        written_before = os.path.getsize(log) // LINE
        snap = cli(plugin, "snapshot", "create", "src", "--name", "first")
        # The writer went on after the thaw.
        grown_to = os.path.getsize(log)
        time.sleep(0.3)
        assert os.path.getsize(log) > grown_to and writer.poll() is None
    finally:
        writer.kill()
        writer.wait()
    assert snap == {**snap, "Name": "first", "Volume": "src", "SizeGb": 1, "Status": "available", "Frozen": True}
    assert "step freeze volume=src took" in plugin.log(tail=None)
    [listed] = cli(plugin, "snapshot", "list", "src")
    assert listed["Id"] == snap["Id"]
    [cloud_snap] = [s for s in cloud.sdk.block_storage.snapshots(details=True) if s.id == snap["Id"]]
    assert cloud_snap.metadata == {**cloud_snap.metadata, "volume_from": "fuxi", "fuxi_volume": "src",
                                   "fstype": "ext4", "fuxi_frozen": "true"}

    # By name, no size: the snapshot's size and file system; never formatted.
    create(plugin, "copy", snapshot="first")
    [vol] = cloud.volumes_named("copy")
    assert vol.size == 1 and vol.metadata["fuxi_source"] == f"snapshot:{snap['Id']}"
    copy_path = mount(plugin, "copy")
    assert complete_lines(os.path.join(copy_path, "log")) >= written_before
    assert "step mkfs volume=copy" not in plugin.log(tail=None)
    info = ok(plugin.call("VolumeDriver.Get", {"Name": "copy"}))["Volume"]["Status"]
    assert info["source"] == f"snapshot:{snap['Id']}" and info["fstype"] == "ext4"
    # Docker's second Create of the name (same options, or by id) is the same volume.
    create(plugin, "copy", snapshot="first")
    create(plugin, "copy", snapshot=snap["Id"])
    assert "already exists with data from snapshot" in create_error(plugin, "copy", source="src")

    # The source cannot be deleted while it has a snapshot; nothing is lost.
    unmount_and_remove(plugin, "copy")
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "src", "ID": CALLER}))
    status, body = plugin.call("VolumeDriver.Remove", {"Name": "src"})
    assert status != 200 and "have snapshots" in body["Err"], body
    assert [v.status for v in cloud.volumes_named("src")] == ["available"]
    gone = cli(plugin, "snapshot", "delete", "first")
    assert gone["Id"] == snap["Id"] and cli(plugin, "snapshot", "list") == []
    ok(plugin.call("VolumeDriver.Remove", {"Name": "src"}))


def test_clones_sizes_and_bad_sources(cloud, plugin):
    create(plugin, "base", size="1", fstype="xfs")
    path = mount(plugin, "base")
    with open(os.path.join(path, "data"), "wb") as f:
        f.write(b"x" * 4096)  # not synced: the clone's freeze flushes it
    # From a volume mounted here, by name, larger than it: frozen while Cinder copies.
    create(plugin, "clone", source="base", size="2")
    assert "step freeze volume=base took" in plugin.log(tail=None)
    clone_path = mount(plugin, "clone")
    with open(os.path.join(clone_path, "data"), "rb") as f:
        assert f.read() == b"x" * 4096
    [vol] = cloud.volumes_named("clone")
    info = ok(plugin.call("VolumeDriver.Get", {"Name": "clone"}))["Volume"]["Status"]
    assert (vol.size, info["fstype"], info["source"]) == (2, "xfs", f"volume:{cloud.volumes_named('base')[0].id}")

    snap = cli(plugin, "snapshot", "create", "base")
    assert snap["Name"].startswith("base-") and snap["Frozen"]
    for opts, words in (
        ({"snapshot": snap["Id"], "size": "0"}, "option size='0' is out of range"),
        ({"source": "base", "snapshot": "x"}, "options snapshot and source both name where"),
        ({"snapshot": snap["Name"], "fstype": "ext4"}, "option fstype cannot come with option snapshot"),
        ({"snapshot": "no-such"}, "fuxi has no snapshot called 'no-such'"),
        ({"backup": "00000000-0000-0000-0000-000000000000"},
         "backup 00000000-0000-0000-0000-000000000000 does not exist"),
        ({"source": "nothing-here"}, "there is no volume called 'nothing-here'"),
    ):
        assert words in create_error(plugin, "bad", **opts), opts
    # Sizes below the source's are refused, naming both.
    assert "is smaller than volume" in create_error(plugin, "small", source="clone", size="1")
    assert cloud.volumes_named("bad") == [] and cloud.volumes_named("small") == []
    # Snapshot names are fuxi's to keep unique, and never look like ids.
    assert "already has a snapshot called" in cli_error(plugin, "snapshot", "create", "base", "--name", snap["Name"])
    assert "may not look like an id" in cli_error(plugin, "snapshot", "create", "base", "--name", snap["Id"])
    cli(plugin, "snapshot", "delete", snap["Id"])
    unmount_and_remove(plugin, "clone", "base")


def test_backups_restore_into_a_new_volume_and_over_an_unused_one(cloud, plugin):
    # preempt: the volume carries a lease while mounted, fuxi tags no restored volume may inherit.
    create(plugin, "db", size="1", preempt="true")
    path = mount(plugin, "db")
    with open(os.path.join(path, "v"), "w") as f:
        f.write("one")
    made = cli(plugin, "backup", "create", "db", "--name", "b1")
    assert made == {**made, "Name": "b1", "Volume": "db", "Status": "available", "Frozen": True,
                    "Incremental": False}
    # The snapshot it was made from is gone; the volume stayed mounted and in use.
    assert cli(plugin, "snapshot", "list") == [] and list(cloud.sdk.block_storage.snapshots()) == []
    assert os.path.ismount(path) and [v.status for v in cloud.volumes_named("db")] == ["in-use"]
    with open(os.path.join(path, "v"), "w") as f:
        f.write("two")

    # Into a new volume: `fuxi backup restore` and `-o backup=` alike.
    restored = cli(plugin, "backup", "restore", "b1", "again")
    assert restored == {**restored, "Name": "again", "Created": True, "BackupId": made["Id"]}
    create(plugin, "again2", backup="b1")
    for name in ("again", "again2"):
        with open(os.path.join(mount(plugin, name), "v")) as f:
            assert f.read() == "one"
        # Cinder gives a restored volume the backed-up volume's metadata: fuxi keeps its own only.
        [vol] = cloud.volumes_named(name)
        own = {k: v for k, v in vol.metadata.items() if k not in ("readonly", "attached_mode")}  # Cinder's
        assert own == {"volume_from": "fuxi", "fstype": "ext4", "fuxi_source": f"backup:{made['Id']}"}
    unmount_and_remove(plugin, "again2")

    # Over an existing volume: only when asked, and only when no host uses it.
    assert "Pass --overwrite" in cli_error(plugin, "backup", "restore", "b1", "db")
    assert "no host uses" in cli_error(plugin, "backup", "restore", "b1", "db", "--overwrite")
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "db", "ID": CALLER}))
    done = cli(plugin, "backup", "restore", "b1", "db", "--overwrite")
    assert done["Created"] is False
    [vol] = cloud.volumes_named("db")
    assert vol.metadata["fuxi_source"] == f"backup:{made['Id']}" and vol.metadata["fuxi_preempt"] == "true"
    assert "src_backup_id" not in vol.metadata
    with open(os.path.join(mount(plugin, "db"), "v")) as f:
        assert f.read() == "one"
    [listed] = cli(plugin, "backup", "list", "db")
    assert listed["Id"] == made["Id"]
    cli(plugin, "backup", "delete", "b1")
    assert cli(plugin, "backup", "list") == []
    unmount_and_remove(plugin, "again", "db")
