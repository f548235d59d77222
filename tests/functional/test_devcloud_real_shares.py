"""devcloud's Manila serving shares from the session's real GlusterFS and
CephFS servers (tests/share_servers.py): a share created through the API is
a directory on the real file system, its export location mounts for real with
the protocol's own client, and deleting the share removes the directory.
"""

import os
import subprocess
import time
import uuid

import pytest

from tests.clouds import start_devcloud
from tests.functional.harness import wait_until
from tests.share_servers import cephfs, devcloud_share_args, gluster

WAIT = 30  # seconds for a share to become available / go away



def fstype_of(mountpoint):
    mp = os.path.realpath(mountpoint)
    return {m: t for m, t, _s in gluster._mounts()}.get(mp)


def ceph_fuse_pids(mountpoint):
    """Live ceph-fuse processes serving mountpoint (it daemonizes without -f)."""
    mp = os.path.realpath(mountpoint)
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                comm = f.read().strip()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if comm == "ceph-fuse" and mp in args and cephfs._alive(int(entry)):
            pids.append(int(entry))
    return pids


@pytest.fixture
def sfs(tmp_path, glusterfs_server, cephfs_server):
    """devcloud's share API, shares backed by the session's real servers.

    Shares a test leaves behind are deleted (their directories with them)."""
    devcloud, cloud = start_devcloud(
        tmp_path, share_args=devcloud_share_args(glusterfs_server, cephfs_server))
    try:
        backends = cloud.devcloud["share_backends"]
        assert (backends["glusterfs_server"], backends["glusterfs_volume"]) == (
            glusterfs_server.server, glusterfs_server.volume)
        assert (backends["cephfs_mon"], backends["cephfs_name"]) == (
            cephfs_server.mon, cephfs_server.fs_name)
        sfs = cloud.sdk.shared_file_system
        yield sfs
        for share in list(sfs.shares()):
            sfs.delete_share(share, ignore_missing=True)
            sfs.wait_for_delete(share, interval=0.1, wait=WAIT)
    finally:
        cloud.sdk.close()
        devcloud.stop()


def create_available(sfs, proto):
    share = sfs.create_share(name=f"real-{proto.lower()}-{uuid.uuid4().hex[:6]}", size=1,
                             share_proto=proto)
    return sfs.wait_for_status(share, "available", failures=["error"], interval=0.1, wait=WAIT)


def delete_and_wait(sfs, share):
    sfs.delete_share(share)
    sfs.wait_for_delete(share, interval=0.1, wait=WAIT)


def test_glusterfs_share_mounts_for_real(sfs, glusterfs_server, tmp_path):
    share = create_available(sfs, "GLUSTERFS")
    share_dir = glusterfs_server.root_mount / f"share-{share.id}"
    assert share_dir.is_dir()
    assert os.listdir(share_dir) == []
    [location] = list(sfs.export_locations(share))
    assert location.path == (
        f"{glusterfs_server.server}:/{glusterfs_server.volume}/share-{share.id}")

    mp = tmp_path / "mnt"
    mp.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "glusterfs", "-o", f"log-file={tmp_path / 'glusterfs-client.log'}",
             location.path, str(mp)],
            check=True, capture_output=True, text=True, timeout=60)
        assert fstype_of(mp) == "fuse.glusterfs"
        assert os.listdir(mp) == []  # the share's directory, not the volume root
        payload = f"through {location.path} at {time.time()}\n"
        (mp / "hello.txt").write_text(payload)
        assert os.listdir(mp) == ["hello.txt"]
        wait_until((share_dir / "hello.txt").exists, what="file visible in the volume root")
        assert (share_dir / "hello.txt").read_text() == payload
    finally:
        gluster.unmount(str(mp))  # umount, then waits for the client process to exit
    assert not os.path.ismount(mp)
    assert not gluster._client_pids(str(mp))

    delete_and_wait(sfs, share)
    assert not share_dir.exists()


def test_cephfs_share_mounts_for_real(sfs, cephfs_server, tmp_path):
    share = create_available(sfs, "CEPHFS")
    share_dir = cephfs_server.root_mount / "volumes" / "_nogroup" / share.id
    assert share_dir.is_dir()
    assert os.listdir(share_dir) == []
    [location] = list(sfs.export_locations(share))
    assert location.path == f"{cephfs_server.mon}:/volumes/_nogroup/{share.id}"
    mon, _, path = location.path.partition(":/")
    assert mon == cephfs_server.mon

    mp = tmp_path / "mnt"
    mp.mkdir()
    pids = []
    try:
        # auth none: the client takes the cluster's conf (else it looks for
        # /etc/ceph/ceph.conf and a keyring). Without -f ceph-fuse returns
        # once the mount is up (or failed), leaving a daemon behind it.
        subprocess.run(
            ["ceph-fuse", "-c", cephfs_server.conf, "-m", mon, "-r", "/" + path, str(mp)],
            check=True, capture_output=True, text=True, timeout=60)
        assert fstype_of(mp) == "fuse.ceph-fuse"
        pids = ceph_fuse_pids(mp)
        assert len(pids) == 1, pids
        assert os.listdir(mp) == []  # the share's directory, not the file system root
        payload = f"through {location.path} at {time.time()}\n"
        (mp / "hello.txt").write_text(payload)
        assert os.listdir(mp) == ["hello.txt"]
        wait_until((share_dir / "hello.txt").exists, what="file visible in the fs root")
        assert (share_dir / "hello.txt").read_text() == payload
    finally:
        pids = pids or ceph_fuse_pids(mp)
        if fstype_of(mp):
            subprocess.run(["umount", str(mp)], check=False, capture_output=True, timeout=30)
        try:
            wait_until(lambda: not any(cephfs._alive(p) for p in pids), timeout=10,
                       what="ceph-fuse exit after umount")
        finally:
            for pid in pids:
                if cephfs._alive(pid):
                    os.kill(pid, 9)
            if fstype_of(mp):
                subprocess.run(["umount", "-l", str(mp)], check=False, timeout=30)
    assert not os.path.ismount(mp)

    delete_and_wait(sfs, share)
    assert not share_dir.exists()
