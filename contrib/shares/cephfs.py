#!/usr/bin/env python3
"""A throw-away one-node Ceph cluster with a CephFS file system, for tests.

Stdlib only.  Runs as root (ceph-fuse mounts, apt-get).  Everything the
cluster writes lives under one state directory; nothing goes to /etc/ceph or
/var/lib/ceph, and every ceph command gets ``-c STATE/ceph.conf``.

Layout of the cluster: one mon (``a``) on 127.0.0.1 (msgr v2 + v1 on two
free ports), one osd (``0``) on memstore (RAM, size capped by
``memstore_device_bytes``), one mds (``a``), ``auth none`` everywhere, pools
of size 1, no mgr (CephFS works without one; only ``ceph fs status`` and the
pg statistics in ``ceph -s`` need a mgr).

Python use::

    # load contrib/shares/cephfs.py by path (importlib), then:
    cephfs.install()
    info = cephfs.start("/tmp/ceph1")     # also written to /tmp/ceph1/ready.json
    cephfs.make_directory(info, "/shares/one")
    cephfs.mount(info, "/mnt/x", subdir="/shares/one")
    cephfs.unmount("/mnt/x")
    cephfs.stop("/tmp/ceph1")

Command line::

    python3 contrib/shares/cephfs.py install
    python3 contrib/shares/cephfs.py start  --dir /tmp/ceph1
    python3 contrib/shares/cephfs.py status --dir /tmp/ceph1
    python3 contrib/shares/cephfs.py stop   --dir /tmp/ceph1
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

PACKAGES = ("ceph-mon", "ceph-osd", "ceph-mds", "ceph-fuse", "ceph-common")
BINARIES = ("ceph-mon", "ceph-osd", "ceph-mds", "ceph-fuse", "ceph",
            "ceph-authtool")
DAEMONS = ("mon.a", "osd.0", "mds.a")   # start order; stopped in reverse
FS_NAME = "cephfs"
DATA_POOL = "cephfs_data"
META_POOL = "cephfs_metadata"
MEMSTORE_BYTES = 1 << 30                 # 1 GiB cap for the memstore osd
CMD_TIMEOUT = 60                         # any single ceph CLI call
START_TIMEOUT = 120                      # osd up / mds active
MOUNT_TIMEOUT = 30


class CephError(RuntimeError):
    pass


# State dirs of clusters this process mounted from, so that unmount(mp) can
# find the ceph-fuse process that served mp.
_STATE_DIRS = set()


def _log(msg):
    print(f"[cephfs] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# install


def _missing_packages():
    missing = []
    for pkg in PACKAGES:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg],
                           capture_output=True, text=True, check=False)
        if r.returncode != 0 or "install ok installed" not in r.stdout:
            missing.append(pkg)
    return missing


def installed():
    return not _missing_packages() and all(shutil.which(b) for b in BINARIES)


def install():
    """apt-get install the Ceph packages if any is missing.  Idempotent.

    Returns the seconds spent (0.0-ish when nothing was needed)."""
    t0 = time.monotonic()
    missing = _missing_packages()
    if not missing:
        dt = time.monotonic() - t0
        print(f"ceph packages already installed ({dt:.1f}s)")
        return dt
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # Other installs may run at the same time: wait for the dpkg lock.
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=900", "-q"]
    cmd = apt + ["install", "-y", "--no-install-recommends"] + missing
    lists = "/var/lib/apt/lists"
    if not any("_Packages" in n for n in os.listdir(lists)):
        subprocess.run(apt + ["update"], env=env, capture_output=True,
                       text=True, check=False)
    r = subprocess.run(cmd, env=env, capture_output=True, text=True,
                       check=False)
    if r.returncode != 0:
        # Package lists may be missing or stale: update once and retry.
        subprocess.run(apt + ["update"], env=env, capture_output=True,
                       text=True, check=False)
        r = subprocess.run(cmd, env=env, capture_output=True, text=True,
                           check=False)
    if r.returncode != 0:
        raise CephError(f"apt-get install {' '.join(missing)} failed:\n"
                        f"{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    dt = time.monotonic() - t0
    print(f"installed {' '.join(missing)} in {dt:.1f}s")
    return dt


# --------------------------------------------------------------------------
# helpers


def _free_ports(n):
    """n distinct TCP ports free on 127.0.0.1 right now."""
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def _port_range(width=100, tries=200):
    """A window of `width` ports on 127.0.0.1 that are all free now (for
    the osd/mds messengers, which bind inside ms_bind_port_min..max)."""
    import random
    for _ in range(tries):
        lo = random.randrange(20000, 32000)
        ok = True
        for port in range(lo, lo + width):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                ok = False
            finally:
                s.close()
            if not ok:
                break
        if ok:
            return lo, lo + width - 1
    raise CephError("no free port window found")


def _conf_text(sd, fsid, mon_v2, mon_v1, pmin, pmax, memstore_bytes):
    return f"""\
# generated by contrib/shares/cephfs.py -- throw-away test cluster
[global]
fsid = {fsid}
mon_host = [v2:127.0.0.1:{mon_v2},v1:127.0.0.1:{mon_v1}]
ms_bind_port_min = {pmin}
ms_bind_port_max = {pmax}
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
auth_allow_insecure_global_id_reclaim = true
mon_warn_on_insecure_global_id_reclaim = false
mon_warn_on_insecure_global_id_reclaim_allowed = false
keyring = {sd}/keyring
run_dir = {sd}/run
admin_socket = {sd}/run/$cluster-$name.asok
pid_file = {sd}/run/$name.pid
log_file = {sd}/log/$name.log
log_to_stderr = false
err_to_stderr = true
log_max_recent = 500
crash_dir = {sd}/crash
exporter_sock_dir = {sd}/run
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
mon_max_pg_per_osd = 1000
osd_pool_default_pg_autoscale_mode = off
# faster turn-around for a one-node test cluster (mds standby -> active)
mon_tick_interval = 1
paxos_propose_interval = 0.1
mds_beacon_interval = 1

[mon]
mon_data = {sd}/mon/$cluster-$id
mon_cluster_log_file = {sd}/log/cluster.log
mon_data_avail_crit = 1
mon_data_avail_warn = 2

[osd]
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
osd_data = {sd}/osd/$cluster-$id
osd_objectstore = memstore
memstore_device_bytes = {memstore_bytes}
osd_memory_target = 939524096
osd_op_num_shards = 2
osd_op_num_threads_per_shard = 1
osd_max_object_name_len = 460
osd_max_object_namespace_len = 64

[mds]
public_addr = 127.0.0.1
mds_data = {sd}/mds/$cluster-$id
mds_cache_memory_limit = 134217728

[client]
client_mount_timeout = 30
# Clients with one name run side by side (one ceph-fuse per mounted share, and
# a daemon still exiting after its unmount): no shared pid file, own sockets
# and logs, as a host's default client configuration has it.
pid_file =
admin_socket = {sd}/run/$cluster-$name.$pid.asok
log_file = {sd}/log/$name.$pid.log
"""


def _conf(sd):
    return os.path.join(sd, "ceph.conf")


def ceph(conf, *args, timeout=CMD_TIMEOUT, check=True, fmt_json=False):
    """Run the ``ceph`` CLI against this cluster; return stdout."""
    cmd = ["ceph", "-c", conf, "--connect-timeout", str(min(timeout, 30))]
    cmd += list(args)
    if fmt_json:
        cmd += ["-f", "json"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise CephError(f"timed out after {timeout}s: {' '.join(cmd)}")
    if check and r.returncode != 0:
        raise CephError(f"{' '.join(cmd)} -> {r.returncode}\n"
                        f"{r.stdout}\n{r.stderr}")
    if fmt_json:
        return json.loads(r.stdout or "null")
    return r.stdout


def _run(cmd, timeout=CMD_TIMEOUT):
    r = subprocess.run(cmd, capture_output=True, text=True,
                       timeout=timeout, check=False)
    if r.returncode != 0:
        raise CephError(f"{' '.join(cmd)} -> {r.returncode}\n"
                        f"{r.stdout}\n{r.stderr}")
    return r.stdout


def _pidfile(sd, name):
    return os.path.join(sd, "pids", name)


def _read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid):
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except OSError:
        return False


def _spawn(sd, name, cmd):
    """Start a daemon in the foreground (-f) in its own session, remember
    its pid (== its process group id)."""
    with open(os.path.join(sd, "log", f"{name}.stdout"), "ab") as out:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT, start_new_session=True,
                             close_fds=True)
    with open(_pidfile(sd, name), "w") as f:
        f.write(f"{p.pid}\n")
    return p


def _kill_group(pid, timeout=15):
    """SIGTERM the process group `pid`, SIGKILL it after `timeout`."""
    if not _alive(pid):
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:   # reap it if it is our child
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            if not _alive(pid):
                return
            time.sleep(0.1)


def _wait(what, pred, timeout, interval=0.25, procs=()):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        for name, p in procs:
            if p.poll() is not None:
                raise CephError(f"{name} exited with {p.returncode} "
                                f"while waiting for {what}")
        try:
            if pred():
                return
        except CephError as e:
            last = e
        time.sleep(interval)
    raise CephError(f"timed out after {timeout}s waiting for {what}"
                    + (f" (last error: {last})" if last else ""))


# --------------------------------------------------------------------------
# start / stop


def _mds_active(conf):
    dump = ceph(conf, "fs", "dump", fmt_json=True, timeout=15)
    for fs in dump.get("filesystems", []):
        mdsmap = fs.get("mdsmap", {})
        if mdsmap.get("fs_name") != FS_NAME:
            continue
        for info in mdsmap.get("info", {}).values():
            if info.get("state") == "up:active":
                return True
    return False


def start(state_dir, memstore_bytes=None):
    """Create and start the cluster under state_dir; return connection info
    (also written to state_dir/ready.json).  If a cluster from an earlier
    start() is still running there, it is stopped and wiped first.

    memstore_bytes caps the osd's store (default MEMSTORE_BYTES, or the
    environment variable FUXI_CEPH_MEMSTORE_BYTES).  It is not a RAM cap:
    the osd's RSS is about twice the data stored, and once the store is
    full writes block instead of failing with ENOSPC."""
    if memstore_bytes is None:
        memstore_bytes = int(os.environ.get("FUXI_CEPH_MEMSTORE_BYTES",
                                            MEMSTORE_BYTES))
    sd = os.path.abspath(state_dir)
    if os.path.exists(os.path.join(sd, "ceph.conf")):
        stop(sd)
        for sub in ("mon", "osd", "mds", "run", "pids", "log", "crash",
                    "mounts"):
            shutil.rmtree(os.path.join(sd, sub), ignore_errors=True)
        for f in ("ceph.conf", "keyring", "ready.json"):
            try:
                os.unlink(os.path.join(sd, f))
            except FileNotFoundError:
                pass
    for sub in ("mon/ceph-a", "osd/ceph-0", "mds/ceph-a", "run", "pids",
                "log", "crash", "mounts"):
        os.makedirs(os.path.join(sd, sub), exist_ok=True)
    t0 = time.monotonic()
    fsid = str(uuid.uuid4())
    mon_v2, mon_v1 = _free_ports(2)
    pmin, pmax = _port_range()
    conf = _conf(sd)
    with open(conf, "w") as f:
        f.write(_conf_text(sd, fsid, mon_v2, mon_v1, pmin, pmax,
                           memstore_bytes))
    procs = []
    try:
        # Keys are never checked (auth none) but ceph-mon --mkfs wants a
        # keyring with a mon. key, and clients are quieter with one.
        kr = os.path.join(sd, "keyring")
        _run(["ceph-authtool", "--create-keyring", kr, "--gen-key",
              "-n", "mon.", "--cap", "mon", "allow *"])
        _run(["ceph-authtool", kr, "--gen-key", "-n", "client.admin",
              "--cap", "mon", "allow *", "--cap", "osd", "allow *",
              "--cap", "mds", "allow *", "--cap", "mgr", "allow *"])
        monmap = os.path.join(sd, "run", "monmap")
        _run(["monmaptool", "--create", "--clobber", "--fsid", fsid,
              "--addv", "a",
              f"[v2:127.0.0.1:{mon_v2},v1:127.0.0.1:{mon_v1}]", monmap])
        _run(["ceph-mon", "-c", conf, "--mkfs", "-i", "a", "--fsid", fsid,
              "--monmap", monmap, "--keyring", kr])
        procs.append(("mon.a", _spawn(sd, "mon.a",
                                      ["ceph-mon", "-c", conf, "-f",
                                       "-i", "a"])))
        _wait("mon quorum",
              lambda: ceph(conf, "mon", "stat", timeout=10) is not None,
              30, procs=procs)
        t_mon = time.monotonic()

        osd_uuid = str(uuid.uuid4())
        osd_id = ceph(conf, "osd", "new", osd_uuid).strip()
        if osd_id != "0":
            raise CephError(f"expected osd id 0, got {osd_id!r}")
        _run(["ceph-osd", "-c", conf, "-i", "0", "--mkfs",
              "--osd-uuid", osd_uuid, "--osd-objectstore", "memstore"])
        procs.append(("osd.0", _spawn(sd, "osd.0",
                                      ["ceph-osd", "-c", conf, "-f",
                                       "-i", "0"])))
        _wait("osd.0 up",
              lambda: ceph(conf, "osd", "stat", fmt_json=True,
                           timeout=10).get("num_up_osds") == 1,
              START_TIMEOUT, procs=procs)
        t_osd = time.monotonic()

        for pool in (META_POOL, DATA_POOL):
            ceph(conf, "osd", "pool", "create", pool, "8", "8")
        # size 1 comes from osd_pool_default_size; check it, fix if not.
        for p in ceph(conf, "osd", "pool", "ls", "detail", fmt_json=True):
            if p.get("size") != 1:
                ceph(conf, "osd", "pool", "set", p["pool_name"], "size",
                     "1", "--yes-i-really-mean-it")
        ceph(conf, "fs", "new", FS_NAME, META_POOL, DATA_POOL)
        procs.append(("mds.a", _spawn(sd, "mds.a",
                                      ["ceph-mds", "-c", conf, "-f",
                                       "-i", "a"])))
        _wait("mds active", lambda: _mds_active(conf), START_TIMEOUT,
              interval=0.5, procs=procs)
        t_mds = time.monotonic()
    except BaseException:
        _log(f"start failed; logs in {sd}/log")
        stop(sd)
        raise
    info = {
        "conf": conf,
        "mon_host": f"127.0.0.1:{mon_v1}",
        "mon_addrs": f"[v2:127.0.0.1:{mon_v2},v1:127.0.0.1:{mon_v1}]",
        "fs_name": FS_NAME,
        "client_id": "admin",
        "fsid": fsid,
        "state_dir": sd,
        "start_seconds": round(t_mds - t0, 2),
        "timings": {"mon": round(t_mon - t0, 2),
                    "osd": round(t_osd - t_mon, 2),
                    "pools_fs_mds": round(t_mds - t_osd, 2)},
    }
    with open(os.path.join(sd, "ready.json"), "w") as f:
        json.dump(info, f, indent=2)
    _log(f"cluster up in {info['start_seconds']}s: {info['mon_host']}")
    return info


def _mounted(mountpoint):
    """The fs type if mountpoint is a mount point, else None."""
    mp = os.path.realpath(mountpoint)
    with open("/proc/self/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                target = parts[1].replace("\\040", " ")
                if target == mp:
                    return parts[2]
    return None


def _state_dir_of(info):
    return info.get("state_dir") or os.path.dirname(info["conf"])


def _mount_records(sd):
    d = os.path.join(sd, "mounts")
    if not os.path.isdir(d):
        return []
    out = []
    for name in sorted(os.listdir(d)):
        try:
            with open(os.path.join(d, name)) as f:
                rec = json.load(f)
            rec["_file"] = os.path.join(d, name)
            out.append(rec)
        except (OSError, ValueError):
            pass
    return out


def mount(info, mountpoint, subdir="/", timeout=MOUNT_TIMEOUT):
    """ceph-fuse mount `subdir` of the file system at `mountpoint`.
    Returns the seconds it took."""
    t0 = time.monotonic()
    sd = _state_dir_of(info)
    _STATE_DIRS.add(sd)
    mp = os.path.realpath(mountpoint)
    os.makedirs(mp, exist_ok=True)
    if _mounted(mp):
        raise CephError(f"{mp} is already a mount point")
    cmd = ["ceph-fuse", "-c", info["conf"], "-f",
           "--id", info.get("client_id", "admin"),
           "--client_fs", info.get("fs_name", FS_NAME),
           "-r", subdir or "/", mp]
    name = f"fuse-{uuid.uuid4().hex[:8]}"
    cmd[1:1] = ["--log-file", os.path.join(sd, "log", f"{name}.log")]
    with open(os.path.join(sd, "log", f"{name}.stdout"), "ab") as logf:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf,
                             stderr=subprocess.STDOUT, start_new_session=True,
                             close_fds=True)
    rec = {"mountpoint": mp, "pid": p.pid, "subdir": subdir}
    recfile = os.path.join(sd, "mounts", name)
    with open(recfile, "w") as f:
        json.dump(rec, f)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _mounted(mp) == "fuse.ceph-fuse":
            dt = time.monotonic() - t0
            return dt
        if p.poll() is not None:
            break
        time.sleep(0.05)
    # failed: clean up
    _kill_group(p.pid, timeout=5)
    try:
        p.wait(timeout=1)
    except subprocess.TimeoutExpired:
        pass
    os.unlink(recfile)
    with open(os.path.join(sd, "log", f"{name}.stdout"), "rb") as f:
        tail = f.read()[-2000:].decode(errors="replace")
    raise CephError(f"ceph-fuse mount of {subdir} at {mp} failed "
                    f"(rc={p.returncode}):\n{tail}")


def unmount(mountpoint, timeout=15):
    """Unmount a ceph-fuse mount point (no-op if not mounted)."""
    mp = os.path.realpath(mountpoint)
    if _mounted(mp):
        for cmd in (["fusermount", "-u", mp], ["fusermount3", "-u", mp],
                    ["umount", mp]):
            if shutil.which(cmd[0]) is None:
                continue
            r = subprocess.run(cmd, capture_output=True, text=True,
                               timeout=timeout, check=False)
            if r.returncode == 0 and not _mounted(mp):
                break
        if _mounted(mp):
            subprocess.run(["umount", "-l", mp], capture_output=True,
                           timeout=timeout, check=False)
    if _mounted(mp):
        raise CephError(f"could not unmount {mp}")
    # wait for (or end) the ceph-fuse process that served it
    for sd_mounts in _known_mount_dirs():
        for rec in _mount_records(sd_mounts):
            if rec.get("mountpoint") == mp:
                pid = rec.get("pid")
                deadline = time.monotonic() + 5
                while _alive(pid) and time.monotonic() < deadline:
                    try:
                        os.waitpid(pid, os.WNOHANG)
                    except ChildProcessError:
                        pass
                    time.sleep(0.05)
                _kill_group(pid, timeout=5)
                try:
                    os.unlink(rec["_file"])
                except FileNotFoundError:
                    pass


def _known_mount_dirs():
    return list(_STATE_DIRS)


def make_directory(info, path, mode=0o755):
    """mkdir -p `path` (absolute, inside the file system) through a
    temporary ceph-fuse mount of the root."""
    tmp = tempfile.mkdtemp(prefix="cephfs-mkdir-")
    try:
        mount(info, tmp)
        try:
            target = os.path.join(tmp, path.lstrip("/"))
            os.makedirs(target, mode=mode, exist_ok=True)
        finally:
            unmount(tmp)
    finally:
        try:
            os.rmdir(tmp)
        except OSError:
            pass


def stop(state_dir):
    """Unmount every ceph-fuse mount started for this cluster and stop
    mds, osd and mon.  Idempotent."""
    sd = os.path.abspath(state_dir)
    for rec in _mount_records(sd):
        mp = rec.get("mountpoint")
        try:
            if mp and _mounted(mp):
                unmount(mp)
        except CephError as e:
            _log(str(e))
        _kill_group(rec.get("pid"), timeout=5)
        try:
            os.unlink(rec["_file"])
        except FileNotFoundError:
            pass
    for name in reversed(DAEMONS):
        pf = _pidfile(sd, name)
        pid = _read_pid(pf)
        # Throw-away cluster: a short grace, then SIGKILL (a SIGTERMed mds
        # takes ~5 s to give up its rank when nobody is there to take it).
        _kill_group(pid, timeout=2 if name.startswith("mds") else 5)
        try:
            os.unlink(pf)
        except FileNotFoundError:
            pass
    try:
        os.unlink(os.path.join(sd, "ready.json"))
    except FileNotFoundError:
        pass


def status(state_dir):
    sd = os.path.abspath(state_dir)
    out = {"state_dir": sd, "daemons": {}, "mounts": []}
    for name in DAEMONS:
        pid = _read_pid(_pidfile(sd, name))
        out["daemons"][name] = {"pid": pid, "alive": _alive(pid),
                                "rss_kib": rss_kib(pid)}
    for rec in _mount_records(sd):
        out["mounts"].append({"mountpoint": rec["mountpoint"],
                              "subdir": rec.get("subdir"),
                              "pid": rec.get("pid"),
                              "mounted": bool(_mounted(rec["mountpoint"])),
                              "rss_kib": rss_kib(rec.get("pid"))})
    ready = os.path.join(sd, "ready.json")
    if os.path.exists(ready):
        with open(ready) as f:
            out["info"] = json.load(f)
        try:
            out["fs_dump_active"] = _mds_active(out["info"]["conf"])
        except CephError as e:
            out["error"] = str(e)
    return out


def rss_kib(pid):
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("action", choices=("install", "start", "stop", "status"))
    ap.add_argument("--dir", help="state directory (start/stop/status)")
    a = ap.parse_args(argv)
    if a.action == "install":
        install()
        return 0
    if not a.dir:
        ap.error("--dir is required")
    if a.action == "start":
        print(json.dumps(start(a.dir), indent=2))
    elif a.action == "stop":
        stop(a.dir)
        print("stopped")
    else:
        print(json.dumps(status(a.dir), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
