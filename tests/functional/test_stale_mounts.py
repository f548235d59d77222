"""Counted mounts whose callers died unseen (a container killed while dockerd
was down is never unmounted) are dropped once no mount namespace but the
host's holds the volume, and only then."""

import subprocess
import time

from tests.functional.harness import ok, wait_until

CLOUD_KINDS = ("devcloud",)
GRACE = 1.0


def test_a_count_no_namespace_holds_is_dropped_after_the_grace(plugin_factory, cloud):
    plugin = plugin_factory(options={"stale_mount_grace": GRACE}).start()
    ok(plugin.call("VolumeDriver.Create", {"Name": "s1"}))
    path = ok(plugin.call("VolumeDriver.Mount", {"Name": "s1", "ID": "gone"}))["Mountpoint"]
    # Within the grace the count stands: a container may be about to bind it.
    status, body = plugin.call("VolumeDriver.Remove", {"Name": "s1"})
    assert status == 409 and "still mounted 1 time(s)" in body["Err"]
    time.sleep(GRACE + 0.2)
    ok(plugin.call("VolumeDriver.Remove", {"Name": "s1"}))
    assert "dropping the counted mounts of gone, whose callers are gone" in plugin.log()
    assert cloud.volumes_named("s1") == []
    assert subprocess.run(["mountpoint", "-q", path]).returncode != 0


def test_a_count_another_namespace_holds_stays(plugin_factory, cloud):
    plugin = plugin_factory(options={"stale_mount_grace": GRACE}).start()
    ok(plugin.call("VolumeDriver.Create", {"Name": "s2"}))
    path = ok(plugin.call("VolumeDriver.Mount", {"Name": "s2", "ID": "live"}))["Mountpoint"]
    ok(plugin.call("VolumeDriver.Mount", {"Name": "s2", "ID": "dead"}))
    # A container in all but name: a process in a mount namespace of its own that holds the volume.
    holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sleep", "120"])
    try:
        wait_until(lambda: open(f"/proc/{holder.pid}/mountinfo").read().count(path) == 1, timeout=10,
                   what="the holder's namespace")
        time.sleep(GRACE + 0.2)
        ok(plugin.call("VolumeDriver.Unmount", {"Name": "s2", "ID": "dead"}))
        status, body = plugin.call("VolumeDriver.Remove", {"Name": "s2"})
        assert status == 409 and "still mounted 1 time(s)" in body["Err"]
        assert ok(plugin.call("VolumeDriver.Get", {"Name": "s2"}))["Volume"]["Status"]["mounts"] == 1
    finally:
        holder.kill()
        holder.wait()
    # The holder is gone: the last count is stale now, and a restart mends it.
    plugin.stop()
    plugin.start()
    assert "its counted callers are gone; taken off this host" in plugin.log()
    assert ok(plugin.call("VolumeDriver.Get", {"Name": "s2"}))["Volume"]["Status"]["mounts"] == 0
    ok(plugin.call("VolumeDriver.Remove", {"Name": "s2"}))
