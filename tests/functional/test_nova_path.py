"""The Nova attach path on devcloud's emulated Nova, hypervisor and guest udev:
the disk is found by its serial, never by Nova's device name or by size."""

import os
import threading
import time

import pytest
import requests

from storage_core.devcloud.testing import loop_devices_under
from tests.functional.harness import ok

CLOUD_KINDS = ("devcloud-nova",)



def steer(cloud, **options):
    """Change devcloud's hypervisor behaviour (link delay, which links, lying)."""
    resp = requests.put(f"{cloud.devcloud['url']}/devcloud/hypervisor", json=options, timeout=10)
    assert resp.status_code == 200, resp.text


def mounted_device(mountpoint):
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == mountpoint:
                return fields[fields.index("-") + 2]
    return None


def by_id_target(cloud, volume_id):
    return os.path.realpath(os.path.join(cloud.devcloud["disk_root"], "by-id", f"virtio-{volume_id[:20]}"))


def test_create_and_mount_through_nova(plugin, cloud):
    ok(plugin.call("VolumeDriver.Create", {"Name": "n1", "Opts": {"size": "1"}}))
    path = ok(plugin.call("VolumeDriver.Mount", {"Name": "n1", "ID": "a"}))["Mountpoint"]
    [vol] = cloud.volumes_named("n1")
    vol = cloud.sdk.block_storage.get_volume(vol.id)
    assert vol.status == "in-use"
    assert [a["server_id"] for a in vol.attachments] == [cloud.devcloud["server_id"]]
    assert mounted_device(path) == by_id_target(cloud, vol.id)
    status = ok(plugin.call("VolumeDriver.Get", {"Name": "n1"}))["Volume"]["Status"]
    assert status["attach_mode"] == "nova" and status["attached"] is True
    with open(os.path.join(path, "f"), "w") as f:
        f.write("through nova")
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "n1", "ID": "a"}))
    assert cloud.sdk.block_storage.get_volume(vol.id).status == "available"
    assert not os.path.exists(os.path.join(cloud.devcloud["disk_root"], "by-id", f"virtio-{vol.id[:20]}"))
    path = ok(plugin.call("VolumeDriver.Mount", {"Name": "n1", "ID": "b"}))["Mountpoint"]
    with open(os.path.join(path, "f")) as f:
        assert f.read() == "through nova"
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "n1", "ID": "b"}))
    ok(plugin.call("VolumeDriver.Remove", {"Name": "n1"}))
    assert loop_devices_under(cloud.root) == {}


def test_two_same_size_volumes_at_once_land_on_their_own_mountpoints(plugin, cloud):
    steer(cloud, lie_about_device=True)  # Nova says /dev/vdb for both
    names = ("twin-a", "twin-b")
    for name in names:
        ok(plugin.call("VolumeDriver.Create", {"Name": name, "Opts": {"size": "1"}}))
    answers = {}
    threads = [
        threading.Thread(target=lambda n=n: answers.__setitem__(n, plugin.call("VolumeDriver.Mount", {"Name": n, "ID": "x"})))
        for n in names
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in names:
        path = ok(answers[name])["Mountpoint"]
        [vol] = cloud.volumes_named(name)
        assert mounted_device(path) == by_id_target(cloud, vol.id), name
        with open(os.path.join(path, "who"), "w") as f:
            f.write(name)
    for name in names:
        ok(plugin.call("VolumeDriver.Unmount", {"Name": name, "ID": "x"}))
    # Mounted again one at a time (other loop devices, other order): each still holds its own file.
    for name in reversed(names):
        path = ok(plugin.call("VolumeDriver.Mount", {"Name": name, "ID": "y"}))["Mountpoint"]
        with open(os.path.join(path, "who")) as f:
            assert f.read() == name
        ok(plugin.call("VolumeDriver.Unmount", {"Name": name, "ID": "y"}))
        ok(plugin.call("VolumeDriver.Remove", {"Name": name}))


def test_a_disk_that_shows_up_late_is_waited_for(plugin, cloud):
    steer(cloud, link_delay=3.0)
    ok(plugin.call("VolumeDriver.Create", {"Name": "late"}))
    start = time.monotonic()
    path = ok(plugin.call("VolumeDriver.Mount", {"Name": "late", "ID": "a"}))["Mountpoint"]
    assert time.monotonic() - start >= 3.0
    assert os.path.ismount(path)
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "late", "ID": "a"}))
    ok(plugin.call("VolumeDriver.Remove", {"Name": "late"}))


def test_without_a_by_id_link_the_metadata_devices_list_finds_the_disk(plugin, cloud):
    steer(cloud, create_by_id_links=False)
    ok(plugin.call("VolumeDriver.Create", {"Name": "bypath"}))
    path = ok(plugin.call("VolumeDriver.Mount", {"Name": "bypath", "ID": "a"}))["Mountpoint"]
    assert os.path.ismount(path)
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "bypath", "ID": "a"}))
    ok(plugin.call("VolumeDriver.Remove", {"Name": "bypath"}))


@pytest.fixture
def impatient_plugin(plugin_factory):
    return plugin_factory(options={"device_timeout": 4}).start()


def test_a_disk_that_never_shows_up_is_a_clear_error_and_leaves_nothing_attached(impatient_plugin, cloud):
    plugin = impatient_plugin
    steer(cloud, link_delay=3600)
    ok(plugin.call("VolumeDriver.Create", {"Name": "ghost"}))
    start = time.monotonic()
    status, body = plugin.call("VolumeDriver.Mount", {"Name": "ghost", "ID": "a"})
    took = time.monotonic() - start
    assert status >= 400 and body["Err"], body
    [vol] = cloud.volumes_named("ghost")
    assert vol.id in body["Err"] and "by-id" in body["Err"], body  # names the volume and where it looked
    assert took < 120, took  # inside Docker's Mount deadline
    vol = cloud.sdk.block_storage.get_volume(vol.id)
    assert vol.status == "available" and vol.attachments == []
    assert ok(plugin.call("VolumeDriver.Get", {"Name": "ghost"}))["Volume"]["Status"]["mounts"] == 0
    steer(cloud, link_delay=0)
    ok(plugin.call("VolumeDriver.Remove", {"Name": "ghost"}))


@pytest.fixture
def metadata_plugin(plugin_factory):
    # No config drive: the instance UUID must come from the metadata service.
    return plugin_factory(options={"config_drive_dir": "/nonexistent"}).start()


def test_instance_identity_from_the_metadata_service(metadata_plugin, cloud):
    plugin = metadata_plugin
    ok(plugin.call("VolumeDriver.Create", {"Name": "md"}))
    ok(plugin.call("VolumeDriver.Mount", {"Name": "md", "ID": "a"}))
    [vol] = cloud.volumes_named("md")
    attachments = cloud.sdk.block_storage.get_volume(vol.id).attachments
    assert [a["server_id"] for a in attachments] == [cloud.devcloud["server_id"]]
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "md", "ID": "a"}))
    ok(plugin.call("VolumeDriver.Remove", {"Name": "md"}))
