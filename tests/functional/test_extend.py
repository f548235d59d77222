"""`fuxi extend` on a real fuxi-server: a mounted ext4 and xfs volume grow in the
cloud, on the host (the loop device refreshed) and in the file system while they
stay mounted, their data intact; an unmounted one grows in the cloud and its
file system at its next mount; shrinking, the same size, more than max_size_gb
and unknown names are refused. Cinder's own refusal of an in-use extend below
microversion 3.42 is checked on every cloud (devcloud must answer as Cinder)."""

import json
import os

from tests.functional.harness import ok
from tests.functional.test_cli import fuxi

GIB = 1024**3
MOUNT_A = "a1" * 32
MOUNT_B = "b2" * 32
CAP_SYS_RESOURCE = 24


def can_resize_ext4_online() -> bool:
    """The kernel's online ext4 resize wants CAP_SYS_RESOURCE, which some
    sandboxes (this test machine's among them) drop even for root."""
    with open("/proc/self/status", encoding="ascii") as f:
        caps = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    return bool(caps >> CAP_SYS_RESOURCE & 1)


def fs_bytes(path) -> int:
    st = os.statvfs(path)
    return st.f_blocks * st.f_frsize


def write_data(path) -> bytes:
    data = os.urandom(1 << 20)
    with open(os.path.join(path, "data.bin"), "wb") as f:
        f.write(data)
        os.fsync(f.fileno())
    return data


def read_data(path) -> bytes:
    with open(os.path.join(path, "data.bin"), "rb") as f:
        return f.read()


def extend(plugin, name, size):
    rc, out, err = fuxi("--socket", plugin.socket, "extend", name, size, "--json")
    assert rc == 0, err + plugin.log()
    return json.loads(out)


def test_extend_mounted_ext4_and_xfs_online_keeps_data_and_shows_the_new_size(cloud, plugin):
    mounts = {}
    for name, fstype in (("e4", "ext4"), ("xf", "xfs")):
        ok(plugin.call("VolumeDriver.Create", {"Name": name, "Opts": {"size": "1", "fstype": fstype}}))
        mounts[name] = ok(plugin.call("VolumeDriver.Mount", {"Name": name, "ID": MOUNT_A}))["Mountpoint"]
    data = {name: write_data(path) for name, path in mounts.items()}
    before = {name: fs_bytes(path) for name, path in mounts.items()}
    assert all(b < GIB + (1 << 20) for b in before.values())

    # Cinder refuses an in-use volume below 3.42, in the same words on every cloud.
    [vol] = cloud.volumes_named("e4")
    resp = cloud.sdk.block_storage.request(f"/volumes/{vol.id}/action", "POST", microversion="3.41",
                                           json={"os-extend": {"new_size": 2}}, raise_exc=False)
    assert resp.status_code == 400, resp.text
    assert ("status must be '{'status': 'available'}' to extend, currently in-use"
            in resp.json()["badRequest"]["message"])

    for name, path in mounts.items():
        if name == "e4" and not can_resize_ext4_online():
            # The cloud and the device grow; the kernel refuses the online resize,
            # fuxi says why, and the file system grows offline at the next mount.
            rc, _out, err = fuxi("--socket", plugin.socket, "extend", name, 2)
            assert rc == 1 and "needs CAP_SYS_RESOURCE" in err and "grows offline at the volume's next mount" in err
            assert os.path.ismount(path) and read_data(path) == data[name]
            ok(plugin.call("VolumeDriver.Unmount", {"Name": name, "ID": MOUNT_A}))
            path = mounts[name] = ok(plugin.call("VolumeDriver.Mount", {"Name": name, "ID": MOUNT_B}))["Mountpoint"]
        else:
            done = extend(plugin, name, 2)
            assert done == {**done, "Name": name, "OldSizeGb": 1, "NewSizeGb": 2, "MountedHere": True}
        # Still mounted where it was, at the new size, with its data.
        assert os.path.ismount(path)
        assert fs_bytes(path) > before[name] + GIB * 9 // 10, (name, before[name], fs_bytes(path))
        assert read_data(path) == data[name]
        [vol] = cloud.volumes_named(name)
        assert (vol.size, vol.status) == (2, "in-use")
        info = ok(plugin.call("VolumeDriver.Get", {"Name": name}))["Volume"]
        assert info["Status"]["size_gb"] == 2 and info["Mountpoint"] == path
    for name in mounts:
        caller = MOUNT_B if name == "e4" and not can_resize_ext4_online() else MOUNT_A
        ok(plugin.call("VolumeDriver.Unmount", {"Name": name, "ID": caller}))
        ok(plugin.call("VolumeDriver.Remove", {"Name": name}))


def test_extend_an_unmounted_volume_then_its_file_system_grows_at_mount(cloud, plugin):
    ok(plugin.call("VolumeDriver.Create", {"Name": "cold", "Opts": {"size": "1"}}))
    path = ok(plugin.call("VolumeDriver.Mount", {"Name": "cold", "ID": MOUNT_A}))["Mountpoint"]
    data, before = write_data(path), fs_bytes(path)
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "cold", "ID": MOUNT_A}))

    rc, out, err = fuxi("--socket", plugin.socket, "extend", "cold", "3")
    assert rc == 0, err
    assert "cold: grown from 1 to 3 GiB in the cloud; not mounted here, so its file system grows at its next mount" \
        in out
    [vol] = cloud.volumes_named("cold")
    assert (vol.size, vol.status) == (3, "available")

    path = ok(plugin.call("VolumeDriver.Mount", {"Name": "cold", "ID": MOUNT_A}))["Mountpoint"]
    assert fs_bytes(path) > before + GIB * 19 // 10
    assert read_data(path) == data
    assert "step growfs volume=cold took" in plugin.log(tail=None)
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "cold", "ID": MOUNT_A}))
    ok(plugin.call("VolumeDriver.Remove", {"Name": "cold"}))


def test_shrink_same_size_over_the_maximum_and_unknown_names_are_refused(cloud, plugin):
    ok(plugin.call("VolumeDriver.Create", {"Name": "r", "Opts": {"size": "2"}}))
    for size, message in (
        (1, "volume 'r' is 2 GiB; the new size (1 GiB) must be larger (volumes only grow)"),
        (2, "volume 'r' is 2 GiB; the new size (2 GiB) must be larger (volumes only grow)"),
        (11, "11 GiB is more than max_size_gb (10 GiB) of this fuxi; volume 'r' is 2 GiB"),
    ):
        rc, out, err = fuxi("--socket", plugin.socket, "extend", "r", size)
        assert (rc, out, err) == (1, "r: extending to %d GiB\n" % size, f"fuxi: {message}\n")
    rc, _out, err = fuxi("--socket", plugin.socket, "extend", "nope", "3")
    assert (rc, err) == (1, "fuxi: volume 'nope' does not exist; create it first\n")
    rc, _out, err = fuxi("--socket", plugin.socket, "extend", "r", "0")
    assert rc == 2 and "'0' is not a whole number of at least 1" in err
    [vol] = cloud.volumes_named("r")
    assert vol.size == 2
    ok(plugin.call("VolumeDriver.Remove", {"Name": "r"}))


def test_manila_share_extend_through_openstacksdk_on_devcloud(tmp_path):
    """ManilaBackend.extend against devcloud's Manila over HTTP: the extend
    action, extending -> available at the new size, Manila's refusals."""
    import pytest

    from storage_core.backends.manila import ManilaBackend
    from storage_core.devcloud import DevCloud
    from storage_core.devcloud.testing import connect
    from storage_core.errors import Conflict
    from storage_core.models import ShareSpec

    cloud = DevCloud(tmp_path / "devcloud", glusterfs_server="10.200.0.2", glusterfs_volume="gv0",
                     make_share_dir=lambda proto, sid: None, remove_share_dir=lambda proto, sid: None)
    cloud.start()
    try:
        backend = ManilaBackend(connect(cloud))
        share = backend.create(ShareSpec(name="s", size_gb=1, proto="GLUSTERFS"))
        grown = backend.extend(share, 3)
        assert (grown.size_gb, grown.status) == (3, "available")
        with pytest.raises(Conflict, match=r"from 3 to 2 GiB: .*New size for extend must be greater than current "
                                           r"size. \(current: 3, extended: 2\)"):
            backend.extend(grown, 2)
        backend.delete(grown)
    finally:
        cloud.stop()
