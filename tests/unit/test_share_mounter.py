import os
import stat

import pytest

from storage_core.attach.share import ShareMounter, parse_nfs_options, split_cephfs_export
from storage_core.errors import FilesystemError, InvalidInput
from storage_core.executor import CommandResult
from storage_core.fakes import RecordingExecutor
from storage_core.models import AccessRule


class MountTable:
    """Filesystems stand-in: whatever the executor 'mounted' is mounted."""

    def __init__(self, executor):
        self.executor = executor
        self.unmounted = []

    def is_mounted(self, mountpoint):
        return any(mountpoint in call for call in self.executor.calls)

    def unmount(self, mountpoint):
        self.unmounted.append(mountpoint)


@pytest.fixture
def mounter(tmp_path):
    executor = RecordingExecutor()
    return ShareMounter(executor, MountTable(executor), str(tmp_path / "keys"), "vers=4.1,hard"), executor


def test_nfs_mount_argv(mounter, tmp_path):
    m, executor = mounter
    m.mount("NFS", "10.0.0.5:/shares/share-1", str(tmp_path / "mp"))
    assert executor.calls == [["mount", "-t", "nfs", "-o", "vers=4.1,hard", "10.0.0.5:/shares/share-1",
                               str(tmp_path / "mp")]]


def test_glusterfs_mount_argv(mounter, tmp_path):
    m, executor = mounter
    m.mount("glusterfs", "10.0.0.6:/vol/share-2", str(tmp_path / "mp"))
    assert executor.calls == [["mount", "-t", "glusterfs", "10.0.0.6:/vol/share-2", str(tmp_path / "mp")]]


def test_cephfs_mount_keeps_the_key_out_of_argv(mounter, tmp_path):
    m, executor = mounter
    rule = AccessRule("rule-1", "cephx", "fuxi-host1", "rw", "active", access_key="QVFCdGVzdGtleXRlc3RrZXk9PQ==")
    m.mount("CEPHFS", "10.0.0.7:6789,10.0.0.8:6789:/volumes/_nogroup/abc", str(tmp_path / "mp"), rule)
    [argv] = executor.calls
    keyring = str(tmp_path / "keys" / "rule-1.keyring")
    assert argv == ["ceph-fuse", "-m", "10.0.0.7:6789,10.0.0.8:6789", "-r", "/volumes/_nogroup/abc",
                    "--id", "fuxi-host1", "-k", keyring, str(tmp_path / "mp")]
    assert rule.access_key not in " ".join(argv)
    assert stat.S_IMODE(os.stat(keyring).st_mode) == 0o600
    assert "key = QVFCdGVzdGtleXRlc3RrZXk9PQ==" in open(keyring).read()
    m.forget_key("rule-1")
    assert not os.path.exists(keyring)


def test_failed_mount_is_a_clear_filesystem_error(tmp_path):
    executor = RecordingExecutor({("mount",): CommandResult("", "mount.nfs: No such device", 32)})
    m = ShareMounter(executor, MountTable(executor), str(tmp_path / "keys"))
    with pytest.raises(FilesystemError, match="No such device"):
        m.mount("NFS", "10.0.0.5:/x", str(tmp_path / "mp"))


@pytest.mark.parametrize("bad", ["vers=5", "exec", "vers=4.1;rm -rf /", "timeo=abc", "sec=none", "a=b"])
def test_nfs_options_outside_the_allowed_set_are_refused(bad):
    with pytest.raises(InvalidInput, match="not allowed"):
        parse_nfs_options(f"hard,{bad}")


def test_unknown_protocol_and_bad_cephx_id_are_refused(mounter, tmp_path):
    m, executor = mounter
    with pytest.raises(InvalidInput, match="NFS, CEPHFS, GLUSTERFS"):
        m.mount("CIFS", "//server/share", str(tmp_path / "mp"))
    rule = AccessRule("r", "cephx", "bad id; x", "rw", "active")
    with pytest.raises(InvalidInput, match="cephx client id"):
        m.mount("CEPHFS", "mon:6789:/p", str(tmp_path / "mp"), rule)
    assert executor.calls == []


def test_cephfs_export_parsing():
    assert split_cephfs_export("m1:6789,m2:6789:/volumes/x/y") == ("m1:6789,m2:6789", "/volumes/x/y")
    with pytest.raises(FilesystemError):
        split_cephfs_export("/no/monitors")


def test_cephfs_fuse_reads_the_configured_cluster_conf(tmp_path):
    executor = RecordingExecutor()
    m = ShareMounter(executor, MountTable(executor), str(tmp_path / "keys"), ceph_conf="/etc/ceph/test.conf")
    m.mount("CEPHFS", "127.0.0.1:6789:/volumes/_nogroup/abc", str(tmp_path / "mp"))
    assert executor.calls == [["ceph-fuse", "-c", "/etc/ceph/test.conf", "-m", "127.0.0.1:6789",
                               "-r", "/volumes/_nogroup/abc", str(tmp_path / "mp")]]


def test_cephfs_kernel_client_gets_a_secret_file_not_the_key(tmp_path):
    executor = RecordingExecutor()
    m = ShareMounter(executor, MountTable(executor), str(tmp_path / "keys"), cephfs_client="kernel")
    rule = AccessRule("rule-2", "cephx", "fuxi-h2", "rw", "active", access_key="QVFCdGVzdGtleXRlc3RrZXk9PQ==")
    m.mount("CEPHFS", "10.0.0.7:6789:/volumes/_nogroup/abc", str(tmp_path / "mp"), rule)
    secret = str(tmp_path / "keys" / "rule-2.secret")
    assert executor.calls == [["mount", "-t", "ceph", "10.0.0.7:6789:/volumes/_nogroup/abc", str(tmp_path / "mp"),
                               "-o", f"name=fuxi-h2,secretfile={secret}"]]
    assert open(secret).read() == "QVFCdGVzdGtleXRlc3RrZXk9PQ==\n"
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    m.forget_key("rule-2")
    assert not os.path.exists(secret)


@pytest.mark.parametrize("export", ["-o remount", "--help", "", "host:/vol\nx", "host:/v\x00"])
def test_an_export_path_that_could_pass_for_an_option_is_refused(tmp_path, export):
    mounter = ShareMounter(RecordingExecutor(), None, keyring_dir=str(tmp_path))
    with pytest.raises(InvalidInput, match="will not pass to mount"):
        mounter._argv("GLUSTERFS", export, str(tmp_path / "m"), None)
