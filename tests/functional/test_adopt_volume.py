"""Adopting an existing Cinder volume (`-o volume_id=`) and `fuxi release`,
through a real fuxi-server on each cloud.

The volume with data on it is made the way an operator would hand one over:
a fuxi volume, written through a first Mount, then `fuxi release`d (it keeps
its name and data, loses fuxi's tags). Adopted under another name it mounts
with its data (detected, never formatted); Remove gives it back, not deleted.
"""

import os
import subprocess
import sys
import uuid

import pytest
import requests

from storage_core.crashpoints import ENV
from tests.functional.harness import ok

FUXI_KEYS = ("volume_from", "fstype", "fuxi_adopted_from")


def fuxi(plugin, *args):
    result = subprocess.run([sys.executable, "-m", "fuxi.cli", "--socket", plugin.socket, *args],
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    return result.returncode, result.stdout, result.stderr


def volume(cloud, volume_id):
    return cloud.sdk.block_storage.get_volume(volume_id)


def err(answer, status):
    code, body = answer
    assert code == status, body
    return body["Err"]


def test_import_a_volume_with_data_then_give_it_back(cloud, plugin):
    # A volume with data on it, then forgotten by fuxi.
    ok(plugin.call("VolumeDriver.Create", {"Name": "seed", "Opts": {"size": "1"}}))
    path = ok(plugin.call("VolumeDriver.Mount", {"Name": "seed", "ID": "c1"}))["Mountpoint"]
    with open(os.path.join(path, "data.txt"), "w") as f:
        f.write("written before the import\n")
    assert "still mounted 1 time(s)" in err(plugin.call("fuxi/volumes/release", {"Name": "seed"}), 409)
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "seed", "ID": "c1"}))
    rc, out, stderr = fuxi(plugin, "release", "seed")
    assert rc == 0, stderr
    [seed] = cloud.volumes_named("seed")
    assert out == (f"released seed: fuxi no longer manages Cinder volume {seed.id}; not deleted, "
                   "it is named 'seed' in the cloud now\n")
    assert seed.status == "available" and not set(FUXI_KEYS) & set(seed.metadata or {})
    assert "not created by fuxi" in err(plugin.call("VolumeDriver.Get", {"Name": "seed"}), 409)
    assert ok(plugin.call("VolumeDriver.List", {}))["Volumes"] == []
    rc, _out, stderr = fuxi(plugin, "release", "seed")
    assert rc == 1 and "is not fuxi's" in stderr

    # Imported under another name: the same volume, its data there, no mkfs.
    ok(plugin.call("VolumeDriver.Create", {"Name": "imported", "Opts": {"volume_id": seed.id}}))
    ok(plugin.call("VolumeDriver.Create", {"Name": "imported", "Opts": {"volume_id": seed.id}}))  # a retry
    adopted = volume(cloud, seed.id)
    assert adopted.name == "imported" and cloud.volumes_named("seed") == []
    assert {k: adopted.metadata.get(k) for k in FUXI_KEYS} == {
        "volume_from": "fuxi", "fstype": None, "fuxi_adopted_from": "seed"}
    status = ok(plugin.call("VolumeDriver.Get", {"Name": "imported"}))["Volume"]["Status"]
    assert (status["volume_id"], status["adopted"]) == (seed.id, True)
    path = ok(plugin.call("VolumeDriver.Mount", {"Name": "imported", "ID": "c2"}))["Mountpoint"]
    with open(os.path.join(path, "data.txt")) as f:
        assert f.read() == "written before the import\n"
    assert volume(cloud, seed.id).metadata["fstype"] == "ext4"  # detected and recorded
    assert plugin.log(None).count("formatting blank device") == 1  # the seed's own, only
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "imported", "ID": "c2"}))

    # Remove gives it back: its old name, no fuxi tag, not deleted.
    ok(plugin.call("VolumeDriver.Remove", {"Name": "imported"}))
    back = volume(cloud, seed.id)
    assert (back.name, back.status) == ("seed", "available")
    assert not set(FUXI_KEYS) & set(back.metadata or {})
    assert cloud.volumes_named("imported") == []
    assert "does not exist" in err(plugin.call("VolumeDriver.Get", {"Name": "imported"}), 404)


def test_import_refusals(cloud, plugin):
    bs = cloud.sdk.block_storage
    missing = str(uuid.uuid4())
    assert f"volume {missing} does not exist" in err(
        plugin.call("VolumeDriver.Create", {"Name": "x", "Opts": {"volume_id": missing}}), 404)
    assert "drop size" in err(
        plugin.call("VolumeDriver.Create", {"Name": "x", "Opts": {"volume_id": missing, "size": "1"}}), 400)
    ok(plugin.call("VolumeDriver.Create", {"Name": "mine", "Opts": {"size": "1"}}))
    [mine] = cloud.volumes_named("mine")
    assert "is already the fuxi volume 'mine'" in err(
        plugin.call("VolumeDriver.Create", {"Name": "x", "Opts": {"volume_id": mine.id}}), 409)

    # Taken by someone else (a reservation: what Cinder shows while another attach is under way).
    busy = bs.create_volume(name="busy", size=1)
    blank = bs.create_volume(name="blank", size=1)
    for vol in (busy, blank):
        bs.wait_for_status(vol, "available", failures=["error"], interval=0.1, wait=60)
    reservation = bs.create_attachment(busy.id)
    message = err(plugin.call("VolumeDriver.Create", {"Name": "x", "Opts": {"volume_id": busy.id}}), 409)
    assert f"volume 'busy' ({busy.id}) is reserved; only an available volume can be adopted" in message
    bs.delete_attachment(reservation.id)
    assert volume(cloud, busy.id).name == "busy"
    assert cloud.volumes_named("x") == []

    # A blank volume is adopted, but never formatted: its Mount is refused and undone.
    ok(plugin.call("VolumeDriver.Create", {"Name": "x", "Opts": {"volume_id": blank.id}}))
    message = err(plugin.call("VolumeDriver.Mount", {"Name": "x", "ID": "c1"}), 500)
    assert "was adopted, and fuxi never formats such a volume" in message and "holds no file system" in message
    assert "formatting blank device" not in plugin.log(None)
    assert volume(cloud, blank.id).status == "available" and cloud.attachments_of(blank.id) == []
    ok(plugin.call("VolumeDriver.Remove", {"Name": "x"}))
    assert volume(cloud, blank.id).name == "blank"


def test_a_crash_while_the_volume_is_reserved_for_its_adoption_is_mended_at_the_next_start(cloud, plugin):
    """Crash point adopt.reserved: Cinder holds the volume reserved for fuxi, not
    renamed yet. Without the reservation journal it stayed reserved for good."""
    vol = cloud.sdk.block_storage.create_volume(name="outside", size=1)
    cloud.sdk.block_storage.wait_for_status(vol, "available", interval=0.1, wait=60)
    plugin.env[ENV] = "adopt.reserved"
    plugin.stop()
    plugin.start()
    with pytest.raises(requests.ConnectionError):  # killed at the crash point, mid-call
        plugin.call("VolumeDriver.Create", {"Name": "taken", "Opts": {"volume_id": vol.id}})
    assert plugin.process.wait(10) is not None
    assert (volume(cloud, vol.id).status, volume(cloud, vol.id).name) == ("reserved", "outside")

    del plugin.env[ENV]
    plugin.start()
    assert (volume(cloud, vol.id).status, volume(cloud, vol.id).name) == ("available", "outside")
    assert "released reservation" in plugin.log(None) and "which a crash left held" in plugin.log(None)
    ok(plugin.call("VolumeDriver.Create", {"Name": "taken", "Opts": {"volume_id": vol.id}}))
    assert volume(cloud, vol.id).name == "taken"
    ok(plugin.call("VolumeDriver.Remove", {"Name": "taken"}))  # given back, not deleted
    cloud.sdk.block_storage.delete_volume(vol.id)
