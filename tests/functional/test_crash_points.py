"""Crash consistency: fuxi-server is killed with SIGKILL at every named crash
point of create, mount, unmount and remove in turn (storage_core.crashpoints),
restarted, and then:

- no cloud attachment of a fuxi volume lacks a journal record of its volume,
- no volume is left in a transitional status,
- no loop device or mount is left over: what is attached and mounted is what
  a counted mount needs,
- a live mount made before the crash is still mounted and counted,
- data written before the crash is readable after it,

and the operation Docker would try again then succeeds. The start-up
reconciliation (storage_core.reconcile) does the mending; each repair it logs
is checked against the point.
"""

import json
import os
import sqlite3

import pytest
import requests

from storage_core.crashpoints import ENV, POINTS
from storage_core.devcloud.testing import loop_devices_under
from tests.functional.harness import mounted_under, ok, wait_until

# Where each point sits in a volume's life, and so which calls reach it.
CREATE = ("create.sent",)
MOUNT = ("attach.intent_written", "attach.cloud_attached", "attach.journaled", "attach.connected",
         "mount.attached", "mount.formatted", "mount.mounted", "mount.state_written", "mount.counted")
UNMOUNT = ("unmount.uncounted", "unmount.unmounted", "detach.disconnected", "detach.deleted")
REMOVE = ("remove.deleted",)
SHARE_ONLY = ("share.access_requested",)
# A snapshot's (tests/functional/test_snapshot_crash.py) and an adoption's
# (tests/functional/test_adopt_volume.py) crash there.
COPY_ONLY = ("copy.frozen", "adopt.reserved")
# Points the Nova path has no step for: Nova, not this host, connects the disk.
NOT_ON_NOVA_PATH = ("attach.connected", "detach.disconnected")
CINDER_POINTS = CREATE + MOUNT + UNMOUNT + REMOVE
# The points of a Mount and an Unmount on bare metal run against real Cinder
# (the same attachments and os-brick code devcloud's bare metal meets, the
# longest of this module) and on the Nova path; devcloud runs Create's and Remove's.
ONLY_ON_CLOUD_KINDS = {"stage": {"mount": {"devcloud-nova", "realcloud"},
                                 "unmount": {"devcloud-nova", "realcloud"}}}
TRANSITIONAL = ("creating", "attaching", "detaching", "reserved", "deleting", "downloading", "maintenance")
STABLE = ("available", "in-use")


def test_every_crash_point_is_exercised_somewhere():
    assert sorted(CINDER_POINTS + SHARE_ONLY + COPY_ONLY) == sorted(POINTS)


def journal(plugin):
    db = sqlite3.connect(os.path.join(plugin.state_dir, "state.sqlite"))
    try:
        records = {row[0]: {"volume_id": row[1], "phase": row[2], "mountpoint": row[3]}
                   for row in db.execute("SELECT name, volume_id, phase, mountpoint FROM host_volumes")}
        counts = dict(db.execute("SELECT name, SUM(count) FROM mounts GROUP BY name"))
    finally:
        db.close()
    return records, counts


def fuxi_volumes(cloud):
    return [v for v in cloud.sdk.block_storage.volumes(details=True)
            if (v.metadata or {}).get("volume_from") == "fuxi"]


def check_consistent(cloud, plugin, expect_mounted):
    """The invariants after a restart; `expect_mounted`: {name: caller count}."""
    wait_until(lambda: all(v.status in STABLE for v in fuxi_volumes(cloud)), timeout=30,
               what="every fuxi volume to settle")
    volumes = fuxi_volumes(cloud)
    assert not [(v.name, v.status) for v in volumes if v.status in TRANSITIONAL]
    records, counts = journal(plugin)
    # By volume: the Nova path journals Nova's id for an attachment, not Cinder's.
    journaled = {r["volume_id"] for r in records.values()}
    attached = {}
    for vol in volumes:
        for att in cloud.attachments_of(vol.id):
            assert vol.id in journaled, f"{vol.name}: attachment {att.id} has no journal record ({records})"
            attached[vol.name] = att.id
    assert counts == expect_mounted
    # Held on this host exactly when a mount is counted, and mounted there.
    assert set(attached) == set(expect_mounted), (attached, expect_mounted)
    assert set(records) == set(expect_mounted), records
    assert sorted(mounted_under(plugin.workdir)) == sorted(records[n]["mountpoint"] for n in expect_mounted)
    assert all(records[n]["phase"] == "mounted" for n in expect_mounted)
    assert len(loop_devices_under(cloud.root)) == len(attached)


def crash_at(plugin, point, calls):
    """Start the plugin armed at `point`, make `calls` until it dies; return the
    index of the call that was cut off. The point must be reached."""
    plugin.stop()
    plugin.env[ENV] = point
    plugin.start()
    try:
        for i, (method, body) in enumerate(calls):
            try:
                plugin.call(method, body)
            except requests.ConnectionError:
                wait_until(lambda: plugin.process.poll() is not None, timeout=10, what="the plugin to die")
                assert f"crash point {point} reached" in plugin.log()
                return i
        raise AssertionError(f"crash point {point} was never reached by {calls}")
    finally:
        del plugin.env[ENV]
        plugin.stop()


def write(path, text):
    with open(os.path.join(path, "f"), "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def read(path):
    with open(os.path.join(path, "f")) as f:
        return f.read()


def mount_again_and_remove(plugin, name, point):
    """After a Mount cut at `point`: a new Mount works, what it writes survives a
    remount, and Remove works. A count the crash kept (mount.counted) is the cut
    caller's, "c1", which is unmounted too."""
    path = ok(plugin.call("VolumeDriver.Mount", {"Name": name, "ID": "c2"}))["Mountpoint"]
    write(path, point)
    ok(plugin.call("VolumeDriver.Unmount", {"Name": name, "ID": "c2"}))
    if point == "mount.counted":
        ok(plugin.call("VolumeDriver.Unmount", {"Name": name, "ID": "c1"}))
    path = ok(plugin.call("VolumeDriver.Mount", {"Name": name, "ID": "c3"}))["Mountpoint"]
    assert read(path) == point
    ok(plugin.call("VolumeDriver.Unmount", {"Name": name, "ID": "c3"}))
    ok(plugin.call("VolumeDriver.Remove", {"Name": name}))


def points_for(cloud_kind, stage):
    return [p for p in stage if not (cloud_kind == "devcloud-nova" and p in NOT_ON_NOVA_PATH)]


@pytest.fixture
def host(plugin_factory):
    """A plugin with a live volume `keep` mounted by one container, data in it."""
    plugin = plugin_factory().start()
    ok(plugin.call("VolumeDriver.Create", {"Name": "keep"}))
    path = ok(plugin.call("VolumeDriver.Mount", {"Name": "keep", "ID": "k"}))["Mountpoint"]
    write(path, "kept")
    yield plugin
    if plugin.process is None or plugin.process.poll() is not None:
        plugin.start()
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "keep", "ID": "k"}))
    ok(plugin.call("VolumeDriver.Remove", {"Name": "keep"}))


def check_keep(plugin):
    path = ok(plugin.call("VolumeDriver.Path", {"Name": "keep"}))["Mountpoint"]
    assert read(path) == "kept"
    assert ok(plugin.call("VolumeDriver.Get", {"Name": "keep"}))["Volume"]["Status"]["mounts"] == 1


@pytest.mark.parametrize("stage", ["create", "mount"])
def test_crash_on_the_way_up(cloud, cloud_kind, host, stage):
    """Create then Mount, killed at each point; Docker's retry then works."""
    plugin = host
    for point in points_for(cloud_kind, CREATE if stage == "create" else MOUNT):
        name = f"up-{point.replace('.', '-').replace('_', '-')}"
        cut = crash_at(plugin, point, [("VolumeDriver.Create", {"Name": name}),
                                       ("VolumeDriver.Mount", {"Name": name, "ID": "c1"})])
        plugin.start()
        records, counts = journal(plugin)
        # A counted mount the answer never reached stays counted: fuxi cannot know the
        # caller gave up, and keeping a volume mounted loses nothing.
        survivors = {"keep": 1, **({name: 1} if point == "mount.counted" else {})}
        check_consistent(cloud, plugin, survivors)
        check_keep(plugin)
        if cut == 1 and point != "mount.counted":
            # Every cut Mount left a journal record (the intent first) for start-up to mend.
            assert f"reconcile: volume {name}: " in plugin.log()
        # What Docker does next: Get, Create if missing, Mount.
        ok(plugin.call("VolumeDriver.Create", {"Name": name}))
        mount_again_and_remove(plugin, name, point)
        check_consistent(cloud, plugin, {"keep": 1})


@pytest.mark.parametrize("stage", ["unmount", "remove"])
def test_crash_on_the_way_down(cloud, cloud_kind, host, stage):
    """Unmount then Remove of a volume holding data, killed at each point."""
    plugin = host
    for point in points_for(cloud_kind, UNMOUNT if stage == "unmount" else REMOVE):
        name = f"down-{point.replace('.', '-').replace('_', '-')}"
        ok(plugin.call("VolumeDriver.Create", {"Name": name}))
        path = ok(plugin.call("VolumeDriver.Mount", {"Name": name, "ID": "c1"}))["Mountpoint"]
        write(path, point)
        calls = [("VolumeDriver.Unmount", {"Name": name, "ID": "c1"}), ("VolumeDriver.Remove", {"Name": name})]
        crash_at(plugin, point, calls)
        plugin.start()
        check_consistent(cloud, plugin, {"keep": 1})
        check_keep(plugin)
        if point == "remove.deleted":
            # The cloud finished the delete; a retried Remove is a no-op and the name is gone.
            ok(plugin.call("VolumeDriver.Remove", {"Name": name}))
            status, body = plugin.call("VolumeDriver.Get", {"Name": name})
            assert status == 404 and "does not exist" in body["Err"]
            assert name not in [v["Name"] for v in ok(plugin.call("VolumeDriver.List", {}))["Volumes"]]
            continue
        # The data written before the crash is there; Remove then works.
        path = ok(plugin.call("VolumeDriver.Mount", {"Name": name, "ID": "c2"}))["Mountpoint"]
        assert read(path) == point
        ok(plugin.call("VolumeDriver.Unmount", {"Name": name, "ID": "c2"}))
        ok(plugin.call("VolumeDriver.Remove", {"Name": name}))
        assert cloud.volumes_named(name) == []


def test_reboot_voids_the_mount_counts(cloud, plugin_factory, tmp_path):
    """After a reboot no mount survived: counts are dropped and the volumes let go."""
    plugin = plugin_factory().start()
    ok(plugin.call("VolumeDriver.Create", {"Name": "rb"}))
    path = ok(plugin.call("VolumeDriver.Mount", {"Name": "rb", "ID": "c1"}))["Mountpoint"]
    write(path, "before the reboot")
    plugin.stop()
    # A reboot as fuxi sees it: another boot id, and the mount gone.
    db = sqlite3.connect(os.path.join(plugin.state_dir, "state.sqlite"))
    db.execute("UPDATE host_facts SET value = 'an-earlier-boot' WHERE key = 'boot_id'")
    db.commit()
    db.close()
    assert os.system(f"umount {path}") == 0
    plugin.start()
    check_consistent(cloud, plugin, {})
    assert "the host rebooted; its mount counts are void" in plugin.log()
    path = ok(plugin.call("VolumeDriver.Mount", {"Name": "rb", "ID": "c2"}))["Mountpoint"]
    assert read(path) == "before the reboot"
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "rb", "ID": "c2"}))
    ok(plugin.call("VolumeDriver.Remove", {"Name": "rb"}))


def test_a_lost_journal_leaves_no_attachment_behind(cloud, cloud_kind, plugin_factory):
    """Even with the state dir gone, this host's attachments of fuxi volumes are found
    (Cinder's attachment owner) and released at start-up; data stays."""
    plugin = plugin_factory().start()
    ok(plugin.call("VolumeDriver.Create", {"Name": "lost"}))
    path = ok(plugin.call("VolumeDriver.Mount", {"Name": "lost", "ID": "c1"}))["Mountpoint"]
    write(path, "journal lost")
    plugin.kill()
    assert os.system(f"umount {path}") == 0
    os.unlink(os.path.join(plugin.state_dir, "state.sqlite"))
    for suffix in ("-wal", "-shm"):
        if os.path.exists(os.path.join(plugin.state_dir, "state.sqlite" + suffix)):
            os.unlink(os.path.join(plugin.state_dir, "state.sqlite" + suffix))
    plugin.start()
    check_consistent(cloud, plugin, {})
    assert "of a volume no journal record named" in plugin.log()
    path = ok(plugin.call("VolumeDriver.Mount", {"Name": "lost", "ID": "c2"}))["Mountpoint"]
    assert read(path) == "journal lost"
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "lost", "ID": "c2"}))
    ok(plugin.call("VolumeDriver.Remove", {"Name": "lost"}))


def test_an_unknown_crash_point_stops_the_server(plugin_factory):
    plugin = plugin_factory()
    plugin.env[ENV] = "mount.nowhere"
    with pytest.raises(RuntimeError) as raised:
        plugin.start()
    assert "unknown crash points mount.nowhere" in str(raised.value)
    del plugin.env[ENV]
    json.dumps(POINTS)  # the list stays plain names
