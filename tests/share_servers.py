"""Real share servers for the test tiers: GlusterFS and CephFS on this host.

contrib/shares/glusterfs.py (glusterd in a network namespace) and
contrib/shares/cephfs.py (one-node Ceph, auth none) are loaded here once, by
path (contrib/ is no package, and gets no .pyc); every test module uses these
two module objects (``gluster``, ``cephfs``), so the state a module keeps (e.g.
cephfs's record of which clusters it mounted from) is one.

``running_glusterfs(workdir)`` / ``running_cephfs(workdir)`` install the
server if needed, start it under ``workdir/state``, mount the root of the file
system at ``workdir/root`` and yield a ``GlusterServer`` / ``CephServer``. On
exit they unmount the root, stop the server and check that nothing is left: no
mount under workdir, no server process, (GlusterFS) no namespace or veth.
tests/conftest.py turns them into the session fixtures ``glusterfs_server``
and ``cephfs_server``.

A machine that cannot run them (not root, no /dev/fuse) skips with the
reason; strict tier runs (CI) turn that skip into a failure.
"""

import contextlib
import dataclasses
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARES_DIR = REPO / "contrib" / "shares"


def _load(name, filename):
    module = sys.modules.get(name)
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location(name, SHARES_DIR / filename)
    module = importlib.util.module_from_spec(spec)
    saved, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no pyc in contrib/
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = saved
    sys.modules[name] = module
    return module


gluster = _load("fuxi_contrib_glusterfs", "glusterfs.py")
cephfs = _load("fuxi_contrib_cephfs", "cephfs.py")


@dataclasses.dataclass(frozen=True)
class GlusterServer:
    """A running GlusterFS server; its volume's root is mounted at root_mount."""

    server: str  # the brick host (namespace address), as in HOST:/VOLUME exports
    volume: str
    root_mount: Path
    info: dict = dataclasses.field(repr=False, compare=False)  # glusterfs.start()'s dict
    #: install_s, start_s, mount_root_s (stop_s, unmount_root_s once stopped)
    timings: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)


@dataclasses.dataclass(frozen=True)
class CephServer:
    """A running one-node Ceph; its CephFS root (/) is mounted at root_mount."""

    mon: str  # "127.0.0.1:PORT" (msgr v1), as in MON:/volumes/_nogroup/<id> exports
    fs_name: str
    conf: str  # the cluster's ceph.conf (auth none: clients need it)
    root_mount: Path
    info: dict = dataclasses.field(repr=False, compare=False)  # cephfs.start()'s dict
    timings: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)


# -- can this machine run them? --------------------------------------------

def glusterfs_requirements() -> str | None:
    """Why GlusterFS cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, mount)"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    if not os.path.exists("/sbin/ip") and not os.path.exists("/usr/sbin/ip") \
            and not os.path.exists("/usr/bin/apt-get"):
        return "no iproute2 and no apt-get"
    return None


def cephfs_requirements() -> str | None:
    """Why CephFS cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (apt-get, FUSE mounts as root)"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    if not cephfs.installed() and not os.path.exists("/usr/bin/apt-get"):
        return "ceph not installed and no apt-get"
    return None


# -- leftovers --------------------------------------------------------------

def mounts_under(directory) -> list[str]:
    """Mount points at or below directory (deepest first)."""
    top = os.path.realpath(directory)
    found = [mp for mp, _fstype, _src in gluster._mounts()
             if mp == top or mp.startswith(top + "/")]
    return sorted(found, key=len, reverse=True)


def glusterfs_leftovers(info, workdir=None) -> list[str]:
    """What a stopped GlusterFS server left behind (empty: nothing)."""
    state_dir = info["state_dir"]
    problems = []
    mounts = [(mp, src) for mp, fstype, src in gluster._mounts()
              if fstype.startswith("fuse.glusterfs") and src.startswith(info["server"] + ":")
              or mp.startswith(state_dir)]
    if mounts:
        problems.append(f"mounts left behind: {mounts}")
    if workdir is not None and mounts_under(workdir):
        problems.append(f"mounts left under {workdir}: {mounts_under(workdir)}")
    if os.path.exists(f"/run/netns/{info['netns']}"):
        problems.append(f"namespace {info['netns']} left behind")
    pids = gluster._gluster_pids_for(state_dir, info["netns"])
    if pids:
        problems.append(f"gluster processes left: {sorted(pids)}")
    veth = gluster._names(state_dir)["veth_host"]
    if os.path.exists(f"/sys/class/net/{veth}"):
        problems.append(f"veth {veth} left behind")
    return problems


def ceph_pids_using(conf) -> list[tuple[int, str]]:
    """Non-zombie processes whose command line names this cluster's conf."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if conf in cmdline and cephfs._alive(int(entry)):
            pids.append((int(entry), cmdline))
    return pids


def _let_clients_leave(conf, timeout=15.0):
    """Wait for unmounted ceph-fuse clients to close their sessions.

    A ceph-fuse daemon exits a second or more after its unmount, once the MDS
    has its caps back; stopping the cluster under it would leave it hanging.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not [pid for pid, cmd in ceph_pids_using(conf) if cmd.startswith("ceph-fuse")]:
            return
        time.sleep(0.1)


def cephfs_leftovers(info, workdir=None) -> list[str]:
    """What a stopped Ceph cluster left behind (empty: nothing)."""
    problems = []
    left = ceph_pids_using(info["conf"])
    if left:
        problems.append(f"processes left behind: {left}")
    if cephfs._mount_records(info["state_dir"]):
        problems.append("mount records left")
    if workdir is not None and mounts_under(workdir):
        problems.append(f"mounts left under {workdir}: {mounts_under(workdir)}")
    return problems


# -- the servers ------------------------------------------------------------

def _clear_leftovers(workdir, pids=()):
    """After a failed leftover check: lazily unmount what is under workdir and
    SIGKILL pids, so that one failed test does not leave junk for the rest."""
    for mp in mounts_under(workdir):
        subprocess.run(["umount", "-l", mp], capture_output=True, check=False, timeout=30)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _save_timings(workdir, name, timings):
    with open(os.path.join(workdir, "timings.json"), "w") as f:
        json.dump(timings, f, indent=2)
    print(f"\n{name} server timings: {json.dumps(timings)}", file=sys.stderr)


@contextlib.contextmanager
def running_glusterfs(workdir):
    """A GlusterFS server with its volume's root mounted at workdir/root."""
    reason = glusterfs_requirements()
    if reason:
        pytest.skip(f"GlusterFS server: {reason}")
    workdir = Path(os.path.realpath(workdir))
    state_dir, root = str(workdir / "state"), workdir / "root"
    timings = {"install_s": round(gluster.install(), 3)}
    t0 = time.monotonic()
    info = gluster.start(state_dir)
    timings["start_s"] = round(time.monotonic() - t0, 3)
    try:
        timings["mount_root_s"] = round(gluster.mount(info, str(root)), 3)
        yield GlusterServer(server=info["server"], volume=info["volume"], root_mount=root,
                            info=info, timings=timings)
    finally:
        try:
            t0 = time.monotonic()
            gluster.unmount(str(root))
            timings["unmount_root_s"] = round(time.monotonic() - t0, 3)
        finally:
            t0 = time.monotonic()
            gluster.stop(state_dir)
            timings["stop_s"] = round(time.monotonic() - t0, 3)
            _save_timings(workdir, "glusterfs", timings)
        problems = glusterfs_leftovers(info, workdir)
        if problems:
            _clear_leftovers(workdir)
            gluster.stop(state_dir, quiet=True)
        assert not problems, f"GlusterFS server at {workdir}: {'; '.join(problems)}"


@contextlib.contextmanager
def running_cephfs(workdir):
    """A one-node Ceph with CephFS, its root (/) mounted at workdir/root."""
    reason = cephfs_requirements()
    if reason:
        pytest.skip(f"CephFS server: {reason}")
    workdir = Path(os.path.realpath(workdir))
    state_dir, root = str(workdir / "state"), workdir / "root"
    timings = {"install_s": round(cephfs.install(), 3)}
    t0 = time.monotonic()
    info = cephfs.start(state_dir)
    timings["start_s"] = round(time.monotonic() - t0, 3)
    timings["start_phases_s"] = info["timings"]
    try:
        timings["mount_root_s"] = round(cephfs.mount(info, str(root), subdir="/"), 3)
        yield CephServer(mon=info["mon_host"], fs_name=info["fs_name"], conf=info["conf"],
                         root_mount=root, info=info, timings=timings)
    finally:
        try:
            t0 = time.monotonic()
            cephfs.unmount(str(root))
            timings["unmount_root_s"] = round(time.monotonic() - t0, 3)
            _let_clients_leave(info["conf"])
        finally:
            t0 = time.monotonic()
            cephfs.stop(state_dir)
            timings["stop_s"] = round(time.monotonic() - t0, 3)
            _save_timings(workdir, "cephfs", timings)
        problems = cephfs_leftovers(info, workdir)
        if problems:
            _clear_leftovers(workdir, [pid for pid, _cmd in ceph_pids_using(info["conf"])])
        assert not problems, f"Ceph cluster at {workdir}: {'; '.join(problems)}"


def devcloud_share_args(gluster_server=None, ceph_server=None) -> list[str]:
    """devcloud command-line flags serving Manila shares from these servers.

    With the --*-mount flags devcloud creates and removes each share's
    directory under the mounted root (GlusterFS: share-<id>, CephFS:
    volumes/_nogroup/<id>). Either server may be None (that protocol keeps
    devcloud's record-only default).
    """
    args = []
    if gluster_server is not None:
        args += ["--glusterfs-server", gluster_server.server,
                 "--glusterfs-volume", gluster_server.volume,
                 "--glusterfs-mount", str(gluster_server.root_mount)]
    if ceph_server is not None:
        args += ["--cephfs-mon", ceph_server.mon,
                 "--cephfs-name", ceph_server.fs_name,
                 "--cephfs-mount", str(ceph_server.root_mount)]
    return args
