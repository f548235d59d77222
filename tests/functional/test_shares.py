"""Manila shares through the Docker protocol: real GlusterFS and CephFS mounts,
two hosts on one share, NFS up to its mount command, adoption.

The shares live on the session's real GlusterFS server and one-node Ceph;
the cloud's Manila (devcloud's, or real Manila with our test share driver)
hands them out as directories there.
"""

import json
import os
import stat

import pytest

from tests.functional.harness import ok, wait_until
from tests.functional.test_cli import fuxi

CLOUD_KINDS = ("devcloud", "realcloud")
SHARE_SERVERS = True


def share_of(cloud, name):
    [share] = cloud.shares_named(name)
    return share


def mount_source(mountpoint):
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            parts = line.split(" ")
            sep = parts.index("-")
            if parts[4] == mountpoint:
                return parts[sep + 1], parts[sep + 2]
    return None


def host(plugin_factory, tmp_path, name):
    """A fuxi-server with its own state and socket, presenting itself as host `name`."""
    return plugin_factory(tmp_path / name, {"host_name": name, "host_ip": "192.0.2." + str(len(name))}).start()



def test_glusterfs_share_on_two_hosts(cloud, plugin_factory, tmp_path, glusterfs_server):
    host_a, host_b = host(plugin_factory, tmp_path, "host-a"), host(plugin_factory, tmp_path, "host-b")
    ok(host_a.call("VolumeDriver.Create", {"Name": "files", "Opts": {"backend": "manila", "proto": "glusterfs",
                                                                    "size": "1"}}))
    share = share_of(cloud, "files")
    status = ok(host_a.call("VolumeDriver.Get", {"Name": "files"}))["Volume"]["Status"]
    assert (status["backend"], status["share_id"], status["proto"]) == ("manila", share.id, "glusterfs")

    path_a = ok(host_a.call("VolumeDriver.Mount", {"Name": "files", "ID": "c1"}))["Mountpoint"]
    fstype, source = mount_source(path_a)
    assert fstype == "fuse.glusterfs"
    assert source == f"{glusterfs_server.server}:/{glusterfs_server.volume}/share-{share.id}"
    with open(os.path.join(path_a, "from-a.txt"), "w") as f:
        f.write("written on host A\n")
    assert (glusterfs_server.root_mount / f"share-{share.id}" / "from-a.txt").read_text() == "written on host A\n"

    # Host B sees the same files; each host holds its own access rule.
    path_b = ok(host_b.call("VolumeDriver.Mount", {"Name": "files", "ID": "c9"}))["Mountpoint"]
    assert open(os.path.join(path_b, "from-a.txt")).read() == "written on host A\n"
    assert sorted(cloud.rules_of(share.id)) == [("cert", "host-a"), ("cert", "host-b")]

    # Remove on A while B still mounts it: refused, naming B.
    ok(host_a.call("VolumeDriver.Unmount", {"Name": "files", "ID": "c1"}))
    assert cloud.rules_of(share.id) == [("cert", "host-b")] and mount_source(path_a) is None
    status, body = host_a.call("VolumeDriver.Remove", {"Name": "files"})
    assert status == 409 and "still used by host-b (cert)" in body["Err"], body
    assert share_of(cloud, "files").id == share.id

    ok(host_b.call("VolumeDriver.Unmount", {"Name": "files", "ID": "c9"}))
    assert cloud.rules_of(share.id) == []
    ok(host_a.call("VolumeDriver.Remove", {"Name": "files"}))
    assert cloud.shares_named("files") == []
    wait_until(lambda: not (glusterfs_server.root_mount / f"share-{share.id}").exists())


def test_cephfs_share_mounts_with_its_own_cephx_id(cloud, plugin_factory, tmp_path, cephfs_server):
    plugin = host(plugin_factory, tmp_path, "node1")
    ok(plugin.call("VolumeDriver.Create", {"Name": "cfs", "Opts": {"backend": "manila", "proto": "cephfs"}}))
    share = share_of(cloud, "cfs")
    path = ok(plugin.call("VolumeDriver.Mount", {"Name": "cfs", "ID": "c1"}))["Mountpoint"]
    assert mount_source(path)[0] == "fuse.ceph-fuse"
    assert cloud.rules_of(share.id) == [("cephx", "fuxi-node1")]
    # The access key Manila returned is in a root-only keyring, not on a command line.
    [keyring] = os.listdir(os.path.join(plugin.state_dir, "keys"))
    assert stat.S_IMODE(os.stat(os.path.join(plugin.state_dir, "keys", keyring)).st_mode) == 0o600
    with open(os.path.join(path, "data.bin"), "wb") as f:
        f.write(b"\x00ceph" * 1000)
    assert (cephfs_server.root_mount / "volumes" / "_nogroup" / share.id / "data.bin").stat().st_size == 5000

    # `fuxi extend` grows it in Manila (the extend action, 2.7), mounted: nothing to do on the host.
    rc, out, err = fuxi("--socket", plugin.socket, "extend", "cfs", "2", "--json")
    assert rc == 0, err + plugin.log()
    assert json.loads(out) == {**json.loads(out), "Backend": "manila", "OldSizeGb": 1, "NewSizeGb": 2}
    assert (share_of(cloud, "cfs").size, share_of(cloud, "cfs").status) == (2, "available")
    assert open(os.path.join(path, "data.bin"), "rb").read(5) == b"\x00ceph"

    # A second container on the same host shares the one mount.
    assert ok(plugin.call("VolumeDriver.Mount", {"Name": "cfs", "ID": "c2"}))["Mountpoint"] == path
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "cfs", "ID": "c1"}))
    assert mount_source(path) is not None
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "cfs", "ID": "c2"}))
    assert mount_source(path) is None and cloud.rules_of(share.id) == []
    assert os.listdir(os.path.join(plugin.state_dir, "keys")) == []

    # Mounted again after a restart of the plugin: nothing depends on memory.
    plugin.stop()
    plugin.start()
    path = ok(plugin.call("VolumeDriver.Mount", {"Name": "cfs", "ID": "c3"}))["Mountpoint"]
    assert open(os.path.join(path, "data.bin"), "rb").read(5) == b"\x00ceph"
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "cfs", "ID": "c3"}))
    ok(plugin.call("VolumeDriver.Remove", {"Name": "cfs"}))
    assert cloud.shares_named("cfs") == []


def test_nfs_mount_fails_cleanly_on_a_kernel_without_nfs(cloud, plugin_factory, tmp_path):
    """This kernel has no NFS client: the mount command is checked, then the failure path."""
    plugin = plugin_factory(tmp_path / "h", {"host_ip": "192.0.2.44", "nfs_mount_options": "vers=4.1,hard"}).start()
    ok(plugin.call("VolumeDriver.Create", {"Name": "nfs1", "Opts": {"backend": "manila", "proto": "nfs"}}))
    share = share_of(cloud, "nfs1")
    [export] = [e.path for e in cloud.sdk.shared_file_system.export_locations(share.id)]
    status, body = plugin.call("VolumeDriver.Mount", {"Name": "nfs1", "ID": "c1"})
    mountpoint = os.path.join(plugin.state_dir, "mounts", "nfs1")
    assert status >= 400 and "could not mount share 'nfs1'" in body["Err"], body
    assert f"'mount -t nfs -o vers=4.1,hard {export} {mountpoint}'" in body["Err"]
    # Nothing left: no access rule, no mount, no mount count, the share intact.
    assert cloud.rules_of(share.id) == []
    assert mount_source(mountpoint) is None and not os.path.exists(mountpoint)
    assert ok(plugin.call("VolumeDriver.Get", {"Name": "nfs1"}))["Volume"]["Status"]["mounts"] == 0
    ok(plugin.call("VolumeDriver.Remove", {"Name": "nfs1"}))
    assert cloud.shares_named("nfs1") == []


def test_adopted_share_is_given_back_not_deleted(cloud, plugin_factory, tmp_path, glusterfs_server):
    sfs = cloud.sdk.shared_file_system
    theirs = sfs.create_share(name="team-data", size=1, share_proto="GLUSTERFS")
    sfs.wait_for_status(theirs, "available", failures=["error"], interval=0.2, wait=60)
    (glusterfs_server.root_mount / f"share-{theirs.id}" / "old.txt").write_text("was here before fuxi\n")
    plugin = host(plugin_factory, tmp_path, "host-a")
    status, body = plugin.call("VolumeDriver.Get", {"Name": "team-data"})
    assert status == 409 and "not created by fuxi" in body["Err"]

    ok(plugin.call("VolumeDriver.Create", {"Name": "adopted", "Opts": {"backend": "manila",
                                                                       "share_id": theirs.id}}))
    assert share_of(cloud, "adopted").id == theirs.id
    path = ok(plugin.call("VolumeDriver.Mount", {"Name": "adopted", "ID": "c1"}))["Mountpoint"]
    assert open(os.path.join(path, "old.txt")).read() == "was here before fuxi\n"
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "adopted", "ID": "c1"}))
    ok(plugin.call("VolumeDriver.Remove", {"Name": "adopted"}))
    back = sfs.get_share(theirs.id)
    assert back.name == "team-data" and "volume_from" not in (back.metadata or {})
    assert (glusterfs_server.root_mount / f"share-{theirs.id}" / "old.txt").exists()


def test_default_backend_and_protocol_come_from_the_config(cloud, plugin_factory, tmp_path):
    plugin = plugin_factory(tmp_path / "h", {"default_backend": "manila", "default_share_proto": "glusterfs"}).start()
    ok(plugin.call("VolumeDriver.Create", {"Name": "dflt", "Opts": {}}))
    assert share_of(cloud, "dflt").share_protocol.upper() == "GLUSTERFS"
    assert cloud.volumes_named("dflt") == []
    # A Cinder volume is still one option away, and one name is one volume.
    ok(plugin.call("VolumeDriver.Create", {"Name": "blk", "Opts": {"backend": "cinder"}}))
    status, body = plugin.call("VolumeDriver.Create", {"Name": "dflt", "Opts": {"backend": "cinder"}})
    assert status == 409 and "already exists as a Manila share" in body["Err"]
    names = {v["Name"] for v in ok(plugin.call("VolumeDriver.List", {}))["Volumes"]}
    assert names == {"dflt", "blk"}
    for name in names:
        ok(plugin.call("VolumeDriver.Remove", {"Name": name}))


@pytest.mark.parametrize("opts,err", [
    ({"backend": "manila", "proto": "cifs"}, "allowed: nfs, cephfs, glusterfs"),
    ({"backend": "manila", "fstype": "xfs"}, "'fstype' for a Manila share"),
    ({"backend": "manila", "share_id": "4a1c", "size": "2"}, "drop size"),
    ({"backend": "object"}, "allowed: cinder, manila"),
])
def test_bad_share_options_create_nothing(cloud, plugin, opts, err):
    status, body = plugin.call("VolumeDriver.Create", {"Name": "bad", "Opts": opts})
    assert status == 400 and err in body["Err"], body
    assert cloud.shares_named("bad") == [] and cloud.volumes_named("bad") == []


def test_several_shares_mounted_at_once_on_one_host(cloud, plugin_factory, tmp_path):
    """One cephx id, one certificate name per host: every share of the host uses them at once."""
    plugin = host(plugin_factory, tmp_path, "node2")
    names = [("c1", "cephfs"), ("c2", "cephfs"), ("g1", "glusterfs"), ("g2", "glusterfs")]
    for name, proto in names:
        ok(plugin.call("VolumeDriver.Create", {"Name": name, "Opts": {"backend": "manila", "proto": proto}}))
    paths = {name: ok(plugin.call("VolumeDriver.Mount", {"Name": name, "ID": "x"}))["Mountpoint"] for name, _ in names}
    for name, path in paths.items():
        with open(os.path.join(path, "whoami"), "w") as f:
            f.write(name)
    # Each mount shows its own share only.
    assert {name: open(os.path.join(path, "whoami")).read() for name, path in paths.items()} == {
        name: name for name in paths}
    for name, _ in names:
        ok(plugin.call("VolumeDriver.Unmount", {"Name": name, "ID": "x"}))
        ok(plugin.call("VolumeDriver.Remove", {"Name": name}))
    assert all(mount_source(path) is None for path in paths.values())
