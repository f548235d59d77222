import os

from storage_core.mount_users import MountUsers

OWN, HOST, CONTAINER = "mnt:[4026531840]", "mnt:[4026531841]", "mnt:[4026532999]"
# fuxi's own mount of the volume: at VOLUME_POINT, in peer group 7 (below a shared mount).
VOLUME_POINT = "/var/lib/fuxi/mounts/v"
OWN_MOUNT = ("shared:7", VOLUME_POINT)
DOCKER_PRIVATE = ("", "/data")  # Docker's mount of a legacy plugin's volume into a container
DOCKER_RSLAVE = ("master:7", "/data")  # ... and of a managed plugin's volume


def _process(proc, pid, namespace, mounts=(), parent="1"):
    """A process; `mounts` are devices (mounted as fuxi's own mount is) or
    (device, (propagation tags, mount point)) pairs."""
    os.makedirs(proc / pid / "ns")
    if namespace is not None:
        os.symlink(namespace, proc / pid / "ns" / "mnt")
    (proc / pid / "status").write_text(f"Name:\tx\nPid:\t{pid}\nPPid:\t{parent}\n")
    lines = ["1 0 0:99 / / rw shared:1 - ext4 /dev/vda rw\n"]  # another file system: the root
    for i, mount in enumerate(mounts):
        device, (tags, point) = mount if isinstance(mount, tuple) else (mount, OWN_MOUNT)
        lines.append(" ".join(f"{20 + i} 1 {device} / {point} rw {tags} - ext4 /dev/loop0 rw".split()) + "\n")
    (proc / pid / "mountinfo").write_text("".join(lines))


def _volume(tmp_path):
    volume = tmp_path / "volume"
    volume.mkdir()
    dev = os.stat(volume).st_dev
    return volume, f"{os.major(dev)}:{os.minor(dev)}"


def _managed_plugin_host(tmp_path, device, container_mounts):
    """fuxi (self, parent 30) in a container; its ancestors 30 (its own namespace),
    20 (a shim, the host's) and 1 (host init) see the volume, and a container 4242."""
    proc = tmp_path / "proc"
    host_copy = (device, ("shared:7", "/var/lib/docker/plugins/p/propagated-mount/mounts/v"))
    _process(proc, "self", OWN, [device], parent="30")
    _process(proc, "30", OWN, [device], parent="20")
    _process(proc, "20", HOST, [host_copy], parent="1")
    _process(proc, "1", HOST, [host_copy], parent="0")
    _process(proc, "77", HOST, [host_copy])  # another host process
    _process(proc, "4242", CONTAINER, container_mounts, parent="20")
    return proc


def test_a_container_of_a_legacy_plugin_holding_the_volume_is_a_user(tmp_path):
    volume, device = _volume(tmp_path)
    proc = tmp_path / "proc"
    _process(proc, "self", OWN, [device], parent="1")
    _process(proc, "1", OWN, [device], parent="0")
    _process(proc, "4242", CONTAINER, [(device, DOCKER_PRIVATE)])
    assert MountUsers(str(proc)).held_elsewhere(str(volume)) is True


def test_a_container_of_a_managed_plugin_holding_the_volume_is_a_user(tmp_path):
    # Docker mounts it rslave: a copy of the same peer group, but at the container's path.
    volume, device = _volume(tmp_path)
    proc = _managed_plugin_host(tmp_path, device, ["8:1", (device, DOCKER_RSLAVE)])
    assert MountUsers(str(proc)).held_elsewhere(str(volume)) is True


def test_the_hosts_propagated_copy_is_not_a_user(tmp_path):
    volume, device = _volume(tmp_path)
    proc = _managed_plugin_host(tmp_path, device, ["8:1"])
    assert MountUsers(str(proc)).held_elsewhere(str(volume)) is False


def test_an_ancestor_it_may_not_read_is_still_the_host(tmp_path, monkeypatch):
    # PID 1 of some sandboxes refuses even root in a container; it is never a container.
    volume, device = _volume(tmp_path)
    proc = _managed_plugin_host(tmp_path, device, ["8:1"])
    _refuse_readlink(monkeypatch, "/1/")
    assert MountUsers(str(proc)).held_elsewhere(str(volume)) is False


def test_a_namespace_it_may_not_read_keeps_the_count(tmp_path, monkeypatch):
    # In a container without CAP_SYS_PTRACE, other processes' ns/mnt links cannot be read.
    volume, device = _volume(tmp_path)
    proc = _managed_plugin_host(tmp_path, device, [(device, DOCKER_RSLAVE)])
    _refuse_readlink(monkeypatch, "/4242/")
    assert MountUsers(str(proc)).held_elsewhere(str(volume)) is True


def test_doubt_keeps_the_count(tmp_path):
    volume, device = _volume(tmp_path)
    proc = tmp_path / "proc"
    proc.mkdir()  # this process's own namespace cannot be read
    assert MountUsers(str(proc)).held_elsewhere(str(volume)) is True
    assert MountUsers(str(proc)).held_elsewhere(str(tmp_path / "gone")) is True


def test_a_copy_propagated_into_a_slave_namespace_is_not_a_user(tmp_path):
    # A service with private mounts, `ip netns exec`: slaves of the host's mounts.
    volume, device = _volume(tmp_path)
    proc = tmp_path / "proc"
    _process(proc, "self", OWN, [device], parent="1")
    _process(proc, "1", OWN, [device], parent="0")
    _process(proc, "500", "mnt:[4026533000]", [(device, ("master:7", VOLUME_POINT))])
    _process(proc, "501", "mnt:[4026533001]", [(device, ("shared:9 master:7", VOLUME_POINT))])
    _process(proc, "502", "mnt:[4026533002]", [(device, ("master:3 propagate_from:7", VOLUME_POINT))])
    assert MountUsers(str(proc)).held_elsewhere(str(volume)) is False
    # A copy of another peer group at that path is somebody's own mount.
    _process(proc, "503", "mnt:[4026533003]", [(device, ("master:8", VOLUME_POINT))])
    assert MountUsers(str(proc)).held_elsewhere(str(volume)) is True


def test_below_a_private_mount_every_other_mount_is_a_user(tmp_path):
    # Nothing propagates from a private mount: any mount elsewhere is someone's own.
    volume, device = _volume(tmp_path)
    proc = tmp_path / "proc"
    _process(proc, "self", OWN, [(device, ("", VOLUME_POINT))], parent="1")
    _process(proc, "1", OWN, [(device, ("", VOLUME_POINT))], parent="0")
    _process(proc, "600", "mnt:[4026533100]", [(device, ("master:7", VOLUME_POINT))])
    assert MountUsers(str(proc)).held_elsewhere(str(volume)) is True


def _refuse_readlink(monkeypatch, part):
    real_readlink = os.readlink

    def readlink(path, *args, **kwargs):
        if part in str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_readlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "readlink", readlink)
