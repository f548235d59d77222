"""The plugin on a real unix socket, on devcloud over HTTP, with real loop
devices, mkfs and mount, called exactly as dockerd calls it."""

import os

import pytest

from storage_core.devcloud.testing import loop_devices_under
from tests.functional.harness import mounted_under, ok



def test_docker_call_sequence_end_to_end(plugin, cloud):
    status, body = plugin.call("VolumeDriver.Get", {"Name": "v1"})
    assert status == 404 and "does not exist" in body["Err"]
    ok(plugin.call("VolumeDriver.Create", {"Name": "v1", "Opts": {"size": "1"}}))
    volume = ok(plugin.call("VolumeDriver.Get", {"Name": "v1"}))["Volume"]
    [cinder_volume] = cloud.volumes_named("v1")
    assert volume["Status"]["volume_id"] == cinder_volume.id
    assert volume["Status"]["size_gb"] == 1 and volume["Status"]["fstype"] == "ext4"
    assert cinder_volume.metadata["volume_from"] == "fuxi"

    mountpoint = ok(plugin.call("VolumeDriver.Mount", {"Name": "v1", "ID": "a"}))["Mountpoint"]
    assert os.path.ismount(mountpoint)
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "v1", "ID": "a"}))
    assert not os.path.ismount(mountpoint)
    assert mountpoint == ok(plugin.call("VolumeDriver.Mount", {"Name": "v1", "ID": "b"}))["Mountpoint"]
    with open(os.path.join(mountpoint, "f"), "w") as f:
        f.write("kept")
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "v1", "ID": "b"}))
    ok(plugin.call("VolumeDriver.Mount", {"Name": "v1", "ID": "c"}))
    with open(os.path.join(mountpoint, "f")) as f:
        assert f.read() == "kept"
    assert ok(plugin.call("VolumeDriver.Path", {"Name": "v1"}))["Mountpoint"] == mountpoint
    listed = ok(plugin.call("VolumeDriver.List", {}))["Volumes"]
    assert {"Name": "v1", "Mountpoint": mountpoint} in listed
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "v1", "ID": "c"}))
    ok(plugin.call("VolumeDriver.Remove", {"Name": "v1"}))

    assert cloud.volumes_named("v1") == []
    assert cloud.attachments_of(cinder_volume.id) == []
    assert loop_devices_under(cloud.root) == {}
    assert mounted_under(plugin.workdir) == []


def test_two_live_mounts_keep_the_volume_attached(plugin, cloud):
    ok(plugin.call("VolumeDriver.Create", {"Name": "shared", "Opts": {}}))
    path = ok(plugin.call("VolumeDriver.Mount", {"Name": "shared", "ID": "one"}))["Mountpoint"]
    ok(plugin.call("VolumeDriver.Mount", {"Name": "shared", "ID": "two"}))
    [vol] = cloud.volumes_named("shared")
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "shared", "ID": "one"}))
    assert os.path.ismount(path)
    assert cloud.sdk.block_storage.get_volume(vol.id).status == "in-use"
    status, body = plugin.call("VolumeDriver.Remove", {"Name": "shared"})
    assert status == 409 and "still mounted" in body["Err"]
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "shared", "ID": "two"}))
    assert not os.path.ismount(path)
    assert cloud.sdk.block_storage.get_volume(vol.id).status == "available"
    assert loop_devices_under(cloud.root) == {}
    ok(plugin.call("VolumeDriver.Remove", {"Name": "shared"}))


def test_data_survives_and_is_not_reformatted_across_xfs_remounts(plugin, cloud):
    ok(plugin.call("VolumeDriver.Create", {"Name": "x1", "Opts": {"fstype": "xfs"}}))
    path = ok(plugin.call("VolumeDriver.Mount", {"Name": "x1", "ID": "a"}))["Mountpoint"]
    with open("/proc/self/mountinfo") as f:
        assert any(line.split()[4] == path and " - xfs " in line for line in f)
    open(os.path.join(path, "keep"), "w").close()
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "x1", "ID": "a"}))
    ok(plugin.call("VolumeDriver.Mount", {"Name": "x1", "ID": "b"}))
    assert os.path.exists(os.path.join(path, "keep"))
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "x1", "ID": "b"}))
    ok(plugin.call("VolumeDriver.Remove", {"Name": "x1"}))


BAD_CREATES = [
    (b"this is not json\n", "not JSON"),
    ({"Opts": {"size": "1"}}, '"Name"'),
    ({"Name": "b1", "Opts": {"sise": "1"}}, "known options: backend, size, type, availability_zone, fstype"),
    ({"Name": "b1", "Opts": {"size": "abc"}}, "allowed: a whole number of GiB from 1 to 10"),
    ({"Name": "b1", "Opts": {"size": "-1"}}, "allowed: a whole number of GiB from 1 to 10"),
    ({"Name": "b1", "Opts": {"size": "0"}}, "allowed: a whole number of GiB from 1 to 10"),
    ({"Name": "b1", "Opts": {"size": "11"}}, "allowed: a whole number of GiB from 1 to 10"),
    ({"Name": "b1", "Opts": {"fstype": "btrfs"}}, "allowed: ext4, xfs"),
    ({"Name": "a/b"}, "not allowed"),
    ({"Name": "../etc"}, "not allowed"),
    ({"Name": "a\x00b"}, "not allowed"),
    ({"Name": "n" * 300}, "300 characters"),
]


@pytest.mark.parametrize("body, needle", BAD_CREATES)
def test_bad_input_gets_a_clear_err_and_creates_nothing(plugin, cloud, body, needle):
    status, answer = plugin.call("VolumeDriver.Create", body)
    assert 400 <= status < 500 and needle in answer["Err"], answer
    assert "Traceback" not in answer["Err"]
    assert list(cloud.sdk.block_storage.volumes()) == []


def test_volume_not_made_by_fuxi_is_left_alone(plugin, cloud):
    foreign = cloud.sdk.block_storage.create_volume(name="theirs", size=1)
    cloud.sdk.block_storage.wait_for_status(foreign, "available", wait=30)
    for method, body in [
        ("VolumeDriver.Create", {"Name": "theirs"}),
        ("VolumeDriver.Mount", {"Name": "theirs", "ID": "a"}),
        ("VolumeDriver.Remove", {"Name": "theirs"}),
    ]:
        status, answer = plugin.call(method, body)
        assert status == 409 and "not created by fuxi" in answer["Err"], answer
    assert ok(plugin.call("VolumeDriver.List", {}))["Volumes"] == []
    status, answer = plugin.call("VolumeDriver.Get", {"Name": "theirs"})
    assert status == 409 and "not created by fuxi" in answer["Err"]
    vol = cloud.sdk.block_storage.get_volume(foreign.id)
    assert vol.status == "available" and cloud.attachments_of(foreign.id) == []


def test_duplicate_cloud_names_are_a_clear_error(plugin, cloud):
    for _ in range(2):
        cloud.sdk.block_storage.create_volume(name="twin", size=1, metadata={"volume_from": "fuxi"})
    status, answer = plugin.call("VolumeDriver.Mount", {"Name": "twin", "ID": "a"})
    assert status == 409 and "2 volumes named 'twin'" in answer["Err"]


def test_concurrent_mounts_of_one_volume_attach_it_once(plugin, cloud):
    from concurrent.futures import ThreadPoolExecutor

    ok(plugin.call("VolumeDriver.Create", {"Name": "busy"}))
    ids = [f"caller-{i}" for i in range(6)]
    with ThreadPoolExecutor(len(ids)) as pool:
        answers = list(pool.map(lambda i: plugin.call("VolumeDriver.Mount", {"Name": "busy", "ID": i}), ids))
    assert len({ok(a)["Mountpoint"] for a in answers}) == 1
    [vol] = cloud.volumes_named("busy")
    assert len(cloud.attachments_of(vol.id)) == 1
    assert ok(plugin.call("VolumeDriver.Get", {"Name": "busy"}))["Volume"]["Status"]["mounts"] == 6
    with ThreadPoolExecutor(len(ids)) as pool:
        for answer in pool.map(lambda i: plugin.call("VolumeDriver.Unmount", {"Name": "busy", "ID": i}), ids):
            ok(answer)
    assert cloud.attachments_of(vol.id) == []
    assert loop_devices_under(cloud.root) == {}
    ok(plugin.call("VolumeDriver.Remove", {"Name": "busy"}))
