"""A real one-node Ceph cluster (mon, memstore osd, mds, auth none) with a
CephFS file system, mounted with the real ceph-fuse client; driven by
contrib/shares/cephfs.py.

The cluster is the session's (`cephfs_server`, tests/share_servers.py).
Needs root, /dev/fuse and Debian's ceph packages (installed by the fixture if
missing).  Teardown must leave no ceph-fuse mount and no ceph process of this
cluster behind: this module's fixture checks its own mounts are gone, the
session fixture checks the rest once the cluster is stopped.
"""

import json
import os
import time
from pathlib import Path

import pytest

from tests.share_servers import cephfs

FIGURES = {}


def _records_besides(info, *mountpoints):
    """This cluster's ceph-fuse mount records other than those of mountpoints."""
    keep = {os.path.realpath(mp) for mp in mountpoints}
    return [r for r in cephfs._mount_records(info["state_dir"])
            if r.get("mountpoint") not in keep]


@pytest.fixture(scope="module")
def ceph_cluster(cephfs_server):
    """The session's cluster (tests/conftest.py `cephfs_server`), figures recorded
    for this module. Starting and stopping it, and checking that stop leaves no
    process, mount or mount record behind, is the session fixture's job."""
    info = cephfs_server.info
    FIGURES["install_s"] = cephfs_server.timings["install_s"]
    FIGURES["start_s"] = cephfs_server.timings["start_s"]
    FIGURES["start_phases_s"] = info["timings"]
    try:
        yield info
    finally:
        st = cephfs.status(info["state_dir"])
        FIGURES["rss_kib_at_teardown"] = {
            n: d["rss_kib"] for n, d in st["daemons"].items()}
        with open(os.path.join(info["state_dir"], "figures.json"), "w") as f:
            json.dump(FIGURES, f, indent=2)
        print(f"\ncephfs figures: {json.dumps(FIGURES)}")
        # Only the session's root mount may remain.
        assert not _records_besides(info, cephfs_server.root_mount), "mount records left"
        stale = [mp for mp in FIGURES.get("mountpoints", ())
                 if cephfs._mounted(mp)]
        assert not stale, f"mounts left behind: {stale}"


def test_cluster_online(ceph_cluster):
    info = ceph_cluster
    assert set(info) >= {"conf", "mon_host", "fs_name", "client_id"}
    assert info["mon_host"].startswith("127.0.0.1:")
    ready = json.loads(Path(info["state_dir"], "ready.json").read_text())
    assert ready["conf"] == info["conf"]
    st = cephfs.status(info["state_dir"])
    assert all(d["alive"] for d in st["daemons"].values()), st
    assert st["fs_dump_active"] is True
    FIGURES["rss_kib_idle"] = {n: d["rss_kib"] for n, d in st["daemons"].items()}
    # mds stat is a mon command: no mgr needed.
    assert "up:active" in cephfs.ceph(info["conf"], "mds", "stat")


def test_mount_root_and_subdirectory(ceph_cluster, cephfs_server, tmp_path):
    info = ceph_cluster
    root_mp, sub_mp = str(tmp_path / "root"), str(tmp_path / "sub")
    FIGURES["mountpoints"] = [root_mp, sub_mp]
    FIGURES["mount_root_s"] = round(cephfs.mount(info, root_mp), 3)
    try:
        assert cephfs._mounted(root_mp) == "fuse.ceph-fuse"
        Path(root_mp, "top.txt").write_text("at the root\n")
        Path(root_mp, "share1").mkdir()
        Path(root_mp, "share1", "inside.txt").write_text("in share1\n")
        os.sync()

        FIGURES["mount_subdir_s"] = round(
            cephfs.mount(info, sub_mp, subdir="/share1"), 3)
        try:
            assert sorted(os.listdir(sub_mp)) == ["inside.txt"]
            assert Path(sub_mp, "inside.txt").read_text() == "in share1\n"
            # writes through the subdir mount show up in the root mount
            Path(sub_mp, "from_sub.txt").write_text("hello\n")
            assert Path(root_mp, "share1", "from_sub.txt").read_text() == "hello\n"
            st = cephfs.status(info["state_dir"])
            FIGURES["rss_kib_ceph_fuse"] = [m["rss_kib"] for m in st["mounts"]]
            FIGURES["rss_kib_busy"] = {
                n: d["rss_kib"] for n, d in st["daemons"].items()}
        finally:
            t0 = time.monotonic()
            cephfs.unmount(sub_mp)
            FIGURES["unmount_s"] = round(time.monotonic() - t0, 3)
        assert not cephfs._mounted(sub_mp)
        assert not os.listdir(sub_mp)       # the bare directory again
    finally:
        cephfs.unmount(root_mp)
    assert not cephfs._mounted(root_mp)
    assert not _records_besides(info, cephfs_server.root_mount)


def test_make_directory_then_mount_it(ceph_cluster, tmp_path):
    info = ceph_cluster
    t0 = time.monotonic()
    cephfs.make_directory(info, "/volumes/_nogroup/share2")
    FIGURES["make_directory_s"] = round(time.monotonic() - t0, 3)
    mp = str(tmp_path / "share2")
    FIGURES.setdefault("mountpoints", []).append(mp)
    cephfs.mount(info, mp, subdir="/volumes/_nogroup/share2")
    try:
        assert os.listdir(mp) == []
        Path(mp, "data").write_bytes(os.urandom(1 << 20))
        assert Path(mp, "data").stat().st_size == 1 << 20
    finally:
        cephfs.unmount(mp)


def test_mount_missing_subdir_fails_fast(ceph_cluster, tmp_path):
    t0 = time.monotonic()
    with pytest.raises(cephfs.CephError, match="No such file"):
        cephfs.mount(ceph_cluster, str(tmp_path / "x"), subdir="/does/not/exist")
    assert time.monotonic() - t0 < cephfs.MOUNT_TIMEOUT
    assert not cephfs._mounted(str(tmp_path / "x"))
