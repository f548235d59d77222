import os

from storage_core.mount_users import MountUsers

OWN, HOST, CONTAINER = "mnt:[4026531840]", "mnt:[4026531841]", "mnt:[4026532999]"


def _process(proc, pid, namespace, mounts=(), parent="1"):
    os.makedirs(proc / pid / "ns")
    if namespace is not None:
        os.symlink(namespace, proc / pid / "ns" / "mnt")
    (proc / pid / "status").write_text(f"Name:\tx\nPid:\t{pid}\nPPid:\t{parent}\n")
    (proc / pid / "mountinfo").write_text(
        "".join(f"{20 + i} 1 {device} / /mnt/x{i} rw shared:1 - ext4 /dev/loop0 rw\n" for i, device in enumerate(mounts)))


def _volume(tmp_path):
    volume = tmp_path / "volume"
    volume.mkdir()
    dev = os.stat(volume).st_dev
    return volume, f"{os.major(dev)}:{os.minor(dev)}"


def _managed_plugin_host(tmp_path, device, container_mounts):
    """fuxi (self, parent 30) in a container; its ancestors 30 (its own namespace),
    20 (a shim, the host's) and 1 (host init) see the volume, and a container 4242."""
    proc = tmp_path / "proc"
    _process(proc, "self", OWN, [device], parent="30")
    _process(proc, "30", OWN, [device], parent="20")
    _process(proc, "20", HOST, [device], parent="1")
    _process(proc, "1", HOST, [device], parent="0")
    _process(proc, "77", HOST, [device])  # another host process
    _process(proc, "4242", CONTAINER, container_mounts, parent="20")
    return proc


def test_a_container_namespace_holding_the_volume_is_a_user(tmp_path):
    volume, device = _volume(tmp_path)
    proc = _managed_plugin_host(tmp_path, device, ["8:1", device])
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
    proc = _managed_plugin_host(tmp_path, device, [device])
    _refuse_readlink(monkeypatch, "/4242/")
    assert MountUsers(str(proc)).held_elsewhere(str(volume)) is True


def test_doubt_keeps_the_count(tmp_path):
    volume, device = _volume(tmp_path)
    proc = tmp_path / "proc"
    proc.mkdir()  # this process's own namespace cannot be read
    assert MountUsers(str(proc)).held_elsewhere(str(volume)) is True
    assert MountUsers(str(proc)).held_elsewhere(str(tmp_path / "gone")) is True


def _refuse_readlink(monkeypatch, part):
    real_readlink = os.readlink

    def readlink(path, *args, **kwargs):
        if part in str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_readlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "readlink", readlink)
