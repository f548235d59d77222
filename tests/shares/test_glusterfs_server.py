"""A real GlusterFS server (glusterd in its own network namespace) and the
real FUSE client, driven by contrib/shares/glusterfs.py.

The server is the session's (`glusterfs_server`, tests/share_servers.py),
except for the start/stop cycle test, which runs its own.  Needs root,
/dev/fuse, and Debian's glusterfs-server/glusterfs-client (installed by the
fixture if missing).  Teardown must leave no mount, no gluster process and no
namespace behind: this module's fixture checks its own mounts are gone, the
session fixture checks the rest once the server is stopped.
"""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.share_servers import gluster, glusterfs_requirements

TIMINGS = {}


@pytest.fixture(scope="module")
def gluster_server(glusterfs_server):
    """The session's server (tests/conftest.py `glusterfs_server`), timings
    recorded for this module. Starting and stopping it, and checking that stop
    leaves no mount, process, namespace or veth behind, is the session fixture's
    job (tests/share_servers.glusterfs_leftovers)."""
    info = glusterfs_server.info
    TIMINGS["install_s"] = glusterfs_server.timings["install_s"]
    TIMINGS["start_s"] = glusterfs_server.timings["start_s"]
    try:
        yield info
    finally:
        with open(os.path.join(info["state_dir"], "timings.json"), "w") as f:
            json.dump(TIMINGS, f, indent=2)
        print(f"\nglusterfs timings: {json.dumps(TIMINGS)}")
        # Only the session's root mount may remain.
        root = os.path.realpath(glusterfs_server.root_mount)
        mounts = [(mp, src) for mp, fstype, src in gluster._mounts()
                  if mp != root and (fstype.startswith("fuse.glusterfs")
                                     and src.startswith(info["server"] + ":")
                                     or mp.startswith(info["state_dir"]))]
        assert not mounts, f"mounts left behind: {mounts}"


def test_server_online(gluster_server):
    info = gluster_server
    assert set(info) >= {"server", "volume", "netns", "brick"}
    ready = json.loads(Path(info["state_dir"], "ready.json").read_text())
    assert ready["server"] == info["server"] and ready["volume"] == info["volume"]
    # The brick host is the namespace address, never loopback.
    assert not info["server"].startswith("127.")
    st = gluster.status(info["state_dir"])
    assert st["online"] and st["glusterd_pid"]
    # glusterd keeps its state under state_dir, not /var/lib/glusterd.
    assert Path(info["state_dir"], "glusterd", "glusterd.info").exists()
    assert Path(info["state_dir"], "glusterd", "vols", info["volume"]).is_dir()


def test_fuse_mount_twice_and_subdir(gluster_server, tmp_path):
    info = gluster_server
    m1, m2, m3 = (tmp_path / n for n in ("m1", "m2", "m3"))
    mounted = []
    try:
        TIMINGS["mount_s"] = round(gluster.mount(info, str(m1)), 3)
        mounted.append(m1)
        payload = f"written through {m1} at {time.time()}\n"
        (m1 / "hello.txt").write_text(payload)
        os.sync()
        # Visible in the brick (read-only look; writes go through mounts only).
        assert Path(info["brick"], "hello.txt").read_text() == payload

        TIMINGS["second_mount_s"] = round(gluster.mount(info, str(m2)), 3)
        mounted.append(m2)
        assert (m2 / "hello.txt").read_text() == payload

        # Shares are directories: create one through a mount, then mount only it.
        t0 = time.monotonic()
        assert gluster.make_directory(info, "shares/share-1") == "/shares/share-1"
        TIMINGS["make_directory_s"] = round(time.monotonic() - t0, 3)
        assert (m2 / "shares" / "share-1").is_dir()
        (m1 / "shares" / "share-1" / "inside.txt").write_text("in the share\n")

        # Subdirectory mounts (IP:/VOLUME/subdir): GlusterFS >= 3.12.
        TIMINGS["subdir_mount_s"] = round(
            gluster.mount(info, str(m3), subdir="shares/share-1"), 3)
        mounted.append(m3)
        assert sorted(p.name for p in m3.iterdir()) == ["inside.txt"]
        assert (m3 / "inside.txt").read_text() == "in the share\n"
        (m3 / "back.txt").write_text("from the subdir mount\n")
        assert (m1 / "shares" / "share-1" / "back.txt").read_text() == "from the subdir mount\n"
        src = {mp: s for mp, _t, s in gluster._mounts()}
        assert src[str(m3)] == f"{info['server']}:/{info['volume']}/shares/share-1"
    finally:
        for mp in reversed(mounted):
            t0 = time.monotonic()
            gluster.unmount(str(mp))
            TIMINGS.setdefault("unmount_s", round(time.monotonic() - t0, 3))
    for mp in (m1, m2, m3):
        assert not os.path.ismount(mp)
    assert not gluster._client_pids(str(m1))


def test_stop_start_cycle_is_idempotent(tmp_path):
    """start twice returns the running server; stop twice is harmless."""
    reason = glusterfs_requirements()
    if reason:
        pytest.skip(reason)
    gluster.install()
    d = str(tmp_path / "cycle")
    try:
        a = gluster.start(d, volume="cyclevol")
        b = gluster.start(d, volume="cyclevol")
        assert (a["server"], a["netns"]) == (b["server"], b["netns"])
    finally:
        gluster.stop(d)
        gluster.stop(d)
    assert not os.path.exists(f"/run/netns/{gluster._names(d)['netns']}")
    assert not gluster._gluster_pids_for(d, gluster._names(d)["netns"])
    out = subprocess.run(["ip", "-o", "link"], stdout=subprocess.PIPE, text=True).stdout
    assert gluster._names(d)["veth_host"] not in out
