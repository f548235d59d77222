"""Crash consistency of Manila shares: fuxi-server is killed at every crash
point a share's mount and unmount reach (a real GlusterFS share), restarted,
and then no access rule of this host lacks a journal record, no share is in
a transitional status, no mount is left over, a live mount is still mounted
and counted, and data written before the crash is there after it."""

import os
import sqlite3

import pytest

from tests.functional.harness import mounted_under, ok, wait_until
from tests.functional.test_crash_points import check_keep, crash_at, mount_again_and_remove, read, write

# Real Manila (with the same GlusterFS and CephFS servers devcloud's Manila uses):
# the share crash points run once, against the real API.
CLOUD_KINDS = ("realcloud",)
SHARE_SERVERS = True

GLUSTERFS = {"backend": "manila", "proto": "glusterfs", "size": "1"}
UP = ("attach.intent_written", "share.access_requested", "mount.mounted", "mount.state_written",
      "mount.counted")
DOWN = ("unmount.uncounted", "unmount.unmounted", "detach.deleted")
HOST = "host-a"


def fuxi_shares(cloud):
    return [s for s in cloud.sdk.shared_file_system.shares(details=True)
            if (s.metadata or {}).get("volume_from") == "fuxi"]


def check_consistent(cloud, plugin, expect_mounted):
    wait_until(lambda: all(s.status == "available" for s in fuxi_shares(cloud)), timeout=30,
               what="every fuxi share to settle")
    db = sqlite3.connect(os.path.join(plugin.state_dir, "state.sqlite"))
    try:
        records = {name: (share_id, mountpoint) for name, share_id, mountpoint in
                   db.execute("SELECT name, volume_id, mountpoint FROM host_volumes")}
        counts = dict(db.execute("SELECT name, SUM(count) FROM mounts GROUP BY name"))
    finally:
        db.close()
    granted = {s.name for s in fuxi_shares(cloud) if ("cert", HOST) in cloud.rules_of(s.id)}
    assert counts == expect_mounted
    assert granted == set(records) == set(expect_mounted), (granted, records)
    assert sorted(mounted_under(plugin.workdir)) == sorted(records[n][1] for n in expect_mounted)


@pytest.fixture
def host(plugin_factory, tmp_path):
    plugin = plugin_factory(tmp_path / HOST, {"host_name": HOST, "host_ip": "192.0.2.6"}).start()
    ok(plugin.call("VolumeDriver.Create", {"Name": "keep", "Opts": GLUSTERFS}))
    write(ok(plugin.call("VolumeDriver.Mount", {"Name": "keep", "ID": "k"}))["Mountpoint"], "kept")
    yield plugin
    if plugin.process is None or plugin.process.poll() is not None:
        plugin.start()
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "keep", "ID": "k"}))
    ok(plugin.call("VolumeDriver.Remove", {"Name": "keep"}))


def test_share_crash_on_the_way_up(cloud, host):
    plugin = host
    for point in UP:
        name = "up-" + point.replace(".", "-").replace("_", "-")
        ok(plugin.call("VolumeDriver.Create", {"Name": name, "Opts": GLUSTERFS}))
        crash_at(plugin, point, [("VolumeDriver.Mount", {"Name": name, "ID": "c1"})])
        plugin.start()
        survivors = {"keep": 1, **({name: 1} if point == "mount.counted" else {})}
        check_consistent(cloud, plugin, survivors)
        check_keep(plugin)
        mount_again_and_remove(plugin, name, point)
        check_consistent(cloud, plugin, {"keep": 1})


def test_share_crash_on_the_way_down(cloud, host):
    plugin = host
    for point in DOWN:
        name = "down-" + point.replace(".", "-").replace("_", "-")
        ok(plugin.call("VolumeDriver.Create", {"Name": name, "Opts": GLUSTERFS}))
        write(ok(plugin.call("VolumeDriver.Mount", {"Name": name, "ID": "c1"}))["Mountpoint"], point)
        crash_at(plugin, point, [("VolumeDriver.Unmount", {"Name": name, "ID": "c1"})])
        plugin.start()
        check_consistent(cloud, plugin, {"keep": 1})
        check_keep(plugin)
        path = ok(plugin.call("VolumeDriver.Mount", {"Name": name, "ID": "c2"}))["Mountpoint"]
        assert read(path) == point
        ok(plugin.call("VolumeDriver.Unmount", {"Name": name, "ID": "c2"}))
        ok(plugin.call("VolumeDriver.Remove", {"Name": name}))
        assert cloud.shares_named(name) == []
