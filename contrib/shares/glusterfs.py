#!/usr/bin/env python3
"""A throw-away, single-brick GlusterFS server for tests (stdlib only).

glusterd refuses a brick whose host is a loopback address, so the server runs
in its own network namespace, reached from the host through a veth pair on a
private /30 (10.213.0.0/16 carved into /30s, chosen from a hash of state_dir).
All traffic stays between this host and that namespace.

Everything glusterd writes lives under ``state_dir``:

    state_dir/glusterd.vol     glusterd's own volfile (working/run/log dirs)
    state_dir/glusterd/        glusterd working directory (not /var/lib/glusterd)
    state_dir/run/             run directory, CLI socket, brick pid files
    state_dir/log/             glusterd, brick, CLI and client logs
    state_dir/bricks/b0        the brick
    state_dir/mnt/             temporary mounts (make_directory)
    state_dir/net.json         namespace/veth/addresses (written before use)
    state_dir/ready.json       the info dict once the volume is online

The only thing outside state_dir: each brick process (glusterfsd) gets a unix
socket at /var/run/gluster/<hash>.socket (a path compiled into glusterd);
stop() removes it.

Usage:
    python3 contrib/shares/glusterfs.py install
    python3 contrib/shares/glusterfs.py start  --dir D
    python3 contrib/shares/glusterfs.py status --dir D
    python3 contrib/shares/glusterfs.py stop   --dir D
    python3 contrib/shares/glusterfs.py mount  --dir D --mountpoint M [--subdir S]
    python3 contrib/shares/glusterfs.py unmount --mountpoint M
    python3 contrib/shares/glusterfs.py mkdir  --dir D --path P
"""

import argparse
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET

PACKAGES = ("glusterfs-server", "glusterfs-client", "iproute2")
BINARIES = ("glusterd", "gluster", "glusterfs", "glusterfsd", "ip")
GLUSTER_COMMS = ("glusterd", "glusterfsd", "glusterfs")
SUPERNET = ipaddress.ip_network("10.213.0.0/16")
DEFAULT_VOLUME = "fuxivol"
GLUSTER_RUN_DIR = "/var/run/gluster"


def log(msg):
    print(f"[glusterfs] {msg}", file=sys.stderr, flush=True)


def run(cmd, check=True, timeout=60, capture=True):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE if capture else None,
                          stderr=subprocess.PIPE if capture else None,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} -> rc={proc.returncode}\n"
                           f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
    return proc


# --------------------------------------------------------------------------
# install
# --------------------------------------------------------------------------

def _missing_packages():
    missing = []
    for pkg in PACKAGES:
        p = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if p.returncode != 0 or "install ok installed" not in p.stdout:
            missing.append(pkg)
    return missing


def _have_binaries():
    return all(shutil.which(b, path="/usr/sbin:/usr/bin:/sbin:/bin") for b in BINARIES) \
        and os.path.exists("/sbin/mount.glusterfs")


def install():
    """apt-get install the server, the FUSE client and iproute2 if missing."""
    t0 = time.monotonic()
    missing = _missing_packages()
    if not missing and _have_binaries():
        log(f"install: already installed ({time.monotonic() - t0:.2f}s)")
        return time.monotonic() - t0
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends"] + (missing or list(PACKAGES))
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=900)
    if proc.returncode != 0:
        log("install: apt-get install failed, running apt-get update once")
        run(["apt-get", "update"], timeout=600)
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"apt-get install failed:\n{proc.stdout[-3000:]}")
    if not _have_binaries():
        raise RuntimeError("glusterfs installed but binaries are missing")
    took = time.monotonic() - t0
    log(f"install: installed {' '.join(missing)} in {took:.2f}s")
    return took


# --------------------------------------------------------------------------
# naming / addresses
# --------------------------------------------------------------------------

def _hash(state_dir):
    return hashlib.sha1(os.path.abspath(state_dir).encode()).hexdigest()[:8]


def _used_networks():
    out = run(["ip", "-o", "-4", "addr", "show"], check=False).stdout
    nets = []
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            nets.append(ipaddress.ip_interface(parts[parts.index("inet") + 1]).network)
    out = run(["ip", "-4", "route", "show", "table", "all"], check=False).stdout
    for line in out.splitlines():
        dst = line.split()[0] if line.split() else ""
        try:
            if dst not in ("default", "local", "broadcast", "unreachable"):
                nets.append(ipaddress.ip_network(dst, strict=False))
            elif dst in ("local", "broadcast") and len(line.split()) > 1:
                nets.append(ipaddress.ip_network(line.split()[1], strict=False))
        except ValueError:
            pass
    return nets


def _names(state_dir):
    h = _hash(state_dir)
    return {"netns": f"fuxi-gluster-{h}", "veth_host": f"fxg{h}h", "veth_ns": f"fxg{h}n"}


def _pick_subnet(state_dir):
    used = _used_networks()
    count = 2 ** (30 - SUPERNET.prefixlen)
    start = int(_hash(state_dir), 16) % count
    for i in range(count):
        n = (start + i) % count
        net = ipaddress.ip_network(
            (int(SUPERNET.network_address) + 4 * n, 30))
        if not any(net.overlaps(u) for u in used):
            return net
    raise RuntimeError(f"no free /30 in {SUPERNET}")


def _paths(state_dir):
    d = os.path.abspath(state_dir)
    return {
        "dir": d,
        "workdir": os.path.join(d, "glusterd"),
        "rundir": os.path.join(d, "run"),
        "logdir": os.path.join(d, "log"),
        "bricks": os.path.join(d, "bricks"),
        "mnt": os.path.join(d, "mnt"),
        "vol": os.path.join(d, "glusterd.vol"),
        "pid": os.path.join(d, "glusterd.pid"),
        "sock": os.path.join(d, "run", "glusterd.socket"),
        "net": os.path.join(d, "net.json"),
        "ready": os.path.join(d, "ready.json"),
        "brick_sockets": os.path.join(d, "brick-sockets.json"),
    }


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _write_json(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


# --------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------

def _proc_state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _alive(pid):
    st = _proc_state(pid)
    return st is not None and st not in ("Z", "X")


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _gluster_pids_for(state_dir, netns):
    """glusterd/glusterfsd/glusterfs processes belonging to this server."""
    p = _paths(state_dir)
    pids = set()
    if netns and os.path.exists(f"/run/netns/{netns}"):
        out = run(["ip", "netns", "pids", netns], check=False).stdout
        pids.update(int(x) for x in out.split() if x.isdigit())
    for pf in [p["pid"]] + _pid_files(p["rundir"]):
        pid = _read_pid(pf)
        if pid:
            pids.add(pid)
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        if _comm(pid) in GLUSTER_COMMS and any(p["dir"] + "/" in a or a.endswith(p["dir"])
                                                   for a in _cmdline(pid)):
            pids.add(pid)
    # Only ever touch gluster processes (pid files can be stale and reused).
    return {pid for pid in pids
            if pid != me and _alive(pid) and _comm(pid) in GLUSTER_COMMS}


def _pid_files(rundir):
    found = []
    for root, _dirs, files in os.walk(rundir):
        found.extend(os.path.join(root, f) for f in files if f.endswith(".pid"))
    return found


def _reap(pids):
    """Reap those of pids that are our children (daemons usually are not:
    they reparent to pid 1, which on some sandboxes never reaps zombies)."""
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def _kill_all(pids, timeout=10.0):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline:
            _reap(pids)
            pids = {pid for pid in pids if _alive(pid)}
            if not pids:
                return set()
            time.sleep(0.05)
    return {pid for pid in pids if _alive(pid)}


# --------------------------------------------------------------------------
# mounts
# --------------------------------------------------------------------------

def _unescape(s):
    return s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n") \
        .replace("\\134", "\\")


def _mounts():
    """[(mountpoint, fstype, source)] from /proc/self/mountinfo."""
    result = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            mp = _unescape(left.split()[4])
            fstype, source = right.split()[:2]
            result.append((mp, fstype, _unescape(source)))
    return result


def _is_mounted(mountpoint):
    mp = os.path.realpath(mountpoint)
    return any(m == mp for m, _t, _s in _mounts())


def _client_pids(mountpoint):
    mp = os.path.realpath(mountpoint)
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _comm(int(entry)) == "glusterfs":
            args = _cmdline(int(entry))
            if args and os.path.realpath(args[-1]) == mp and _alive(int(entry)):
                pids.append(int(entry))
    return pids


def _log_name(mountpoint):
    return "mnt" + os.path.realpath(mountpoint).replace("/", "-") + ".log"


def mount(info, mountpoint, subdir=None, check=True, timeout=60):
    """Mount the volume (or VOLUME/subdir) with the FUSE client at mountpoint.

    Runs `mount -t glusterfs IP:/VOLUME[/subdir] MOUNTPOINT` from the host side.
    With check=True a probe file written through the mount must show up in
    the brick directory.  Returns the seconds the mount command took.
    """
    os.makedirs(mountpoint, exist_ok=True)
    source = f"{info['server']}:/{info['volume']}"
    if subdir:
        source += "/" + subdir.strip("/")
    cmd = ["mount", "-t", "glusterfs"]
    if info.get("state_dir"):
        cmd += ["-o", "log-file=" + os.path.join(info["state_dir"], "log",
                                                  _log_name(mountpoint))]
    cmd += [source, mountpoint]
    t0 = time.monotonic()
    run(cmd, timeout=timeout)
    took = time.monotonic() - t0
    if not _is_mounted(mountpoint):
        raise RuntimeError(f"mount {source} {mountpoint}: not in mountinfo")
    if check:
        probe = f".fuxi-probe-{uuid.uuid4().hex[:12]}"
        path = os.path.join(mountpoint, probe)
        with open(path, "w") as f:
            f.write("probe\n")
        in_brick = os.path.join(info["brick"], (subdir or "").strip("/"), probe)
        ok = os.path.exists(in_brick)
        os.unlink(path)
        if not ok:
            raise RuntimeError(f"write through {mountpoint} not visible at {in_brick}")
    log(f"mount {source} at {mountpoint}: {took:.3f}s")
    return took


def unmount(mountpoint, timeout=30):
    """Unmount a glusterfs FUSE mount and wait for its client process to exit."""
    mp = os.path.realpath(mountpoint)
    pids = _client_pids(mp)
    if _is_mounted(mp):
        p = run(["umount", mp], check=False, timeout=timeout)
        if p.returncode != 0 and _is_mounted(mp):
            log(f"umount {mp} failed ({p.stderr.strip()}), lazy unmount")
            run(["umount", "-l", mp], check=False, timeout=timeout)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.05)
    left = _kill_all({pid for pid in pids if _alive(pid)}, timeout=3)
    if left or _is_mounted(mp):
        raise RuntimeError(f"unmount {mp}: still mounted or client alive {left}")


def make_directory(info, path, mode=0o755):
    """Create VOLUME/path through a temporary FUSE mount (never in the brick).

    GlusterFS keeps gfids and other xattrs for every entry on the brick;
    creating entries directly in a brick is unsupported, so go through a mount.
    """
    rel = path.strip("/")
    if not rel or ".." in rel.split("/"):
        raise ValueError(f"bad share path {path!r}")
    base = os.path.join(info["state_dir"], "mnt") if info.get("state_dir") else None
    if base:
        os.makedirs(base, exist_ok=True)
    mp = tempfile.mkdtemp(prefix="mkdir-", dir=base)
    try:
        mount(info, mp, check=False)
        try:
            target = os.path.join(mp, rel)
            os.makedirs(target, mode=mode, exist_ok=True)
            os.chmod(target, mode)
        finally:
            unmount(mp)
    finally:
        try:
            os.rmdir(mp)
        except OSError:
            pass
    return "/" + rel


# --------------------------------------------------------------------------
# server
# --------------------------------------------------------------------------

def _gluster(p, netns, *args, timeout=60, check=True):
    cmd = ["ip", "netns", "exec", netns, "gluster", "--mode=script",
           f"--glusterd-sock={p['sock']}", f"--log-file={os.path.join(p['logdir'], 'cli.log')}"]
    return run(cmd + list(args), timeout=timeout, check=check)


def _volume_online(p, netns, volume):
    proc = _gluster(p, netns, "volume", "status", volume, "--xml", check=False, timeout=20)
    if proc.returncode != 0:
        return False
    try:
        root = ET.fromstring(proc.stdout)
    except ET.ParseError:
        return False
    nodes = root.findall(".//volume/node")
    bricks = [n for n in nodes if (n.findtext("path") or "").startswith("/")]
    return bool(bricks) and all(n.findtext("status") == "1" for n in bricks)


def _glusterd_vol(p, ip):
    return f"""volume management
    type mgmt/glusterd
    option working-directory {p['workdir']}
    option run-directory {p['rundir']}
    option logging-directory {p['logdir']}
    option glusterd-sockfile {p['sock']}
    option transport-type socket
    option transport.socket.listen-port 24007
    option transport.socket.bind-address {ip}
    option transport.socket.keepalive-time 10
    option transport.socket.keepalive-interval 2
    option transport.socket.read-fail-log off
    option ping-timeout 0
    option event-threads 1
    option max-port 60999
end-volume
"""


def _setup_net(p, names, net):
    hosts = list(net.hosts())
    host_ip, ns_ip = str(hosts[0]), str(hosts[1])
    net_info = dict(names, subnet=str(net), host_ip=host_ip, ns_ip=ns_ip)
    _write_json(p["net"], net_info)  # before creating anything: stop() can clean up
    ns, vh, vn = names["netns"], names["veth_host"], names["veth_ns"]
    run(["ip", "netns", "add", ns])
    run(["ip", "link", "add", vh, "type", "veth", "peer", "name", vn])
    run(["ip", "link", "set", vn, "netns", ns])
    run(["ip", "addr", "add", f"{host_ip}/30", "dev", vh])
    run(["ip", "link", "set", vh, "up"])
    run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"])
    run(["ip", "netns", "exec", ns, "ip", "addr", "add", f"{ns_ip}/30", "dev", vn])
    run(["ip", "netns", "exec", ns, "ip", "link", "set", vn, "up"])
    return net_info


def _healthy(state_dir):
    p = _paths(state_dir)
    info = _read_json(p["ready"])
    if not info:
        return None
    pid = _read_pid(p["pid"])
    if not pid or not _alive(pid) or _comm(pid) != "glusterd":
        return None
    if not os.path.exists(f"/run/netns/{info['netns']}"):
        return None
    return info if _volume_online(p, info["netns"], info["volume"]) else None


def start(state_dir, volume=DEFAULT_VOLUME, timeout=60):
    """Start glusterd in a fresh namespace, create+start one volume, wait online."""
    t0 = time.monotonic()
    state_dir = os.path.abspath(state_dir)
    info = _healthy(state_dir)
    if info:
        log(f"start: already running: {info}")
        return info
    stop(state_dir, quiet=True)
    p = _paths(state_dir)
    for key in ("workdir", "rundir", "bricks"):
        shutil.rmtree(p[key], ignore_errors=True)
    for key in ("workdir", "rundir", "logdir", "bricks", "mnt"):
        os.makedirs(p[key], exist_ok=True)
    names = _names(state_dir)
    net_info = _setup_net(p, names, _pick_subnet(state_dir))
    ns, ip = names["netns"], net_info["ns_ip"]
    try:
        with open(p["vol"], "w") as f:
            f.write(_glusterd_vol(p, ip))
        run(["ip", "netns", "exec", ns, "glusterd", "-f", p["vol"],
             "-l", os.path.join(p["logdir"], "glusterd.log"), "-p", p["pid"]],
            timeout=timeout)
        deadline = time.monotonic() + timeout
        while True:
            if os.path.exists(p["sock"]) and \
                    _gluster(p, ns, "volume", "list", check=False, timeout=10).returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("glusterd did not answer on its socket; see "
                                   + os.path.join(p["logdir"], "glusterd.log"))
            time.sleep(0.1)
        t_glusterd = time.monotonic() - t0
        brick = os.path.join(p["bricks"], "b0")
        # The brick is on the root fs: glusterd refuses without `force`.
        _gluster(p, ns, "volume", "create", volume, f"{ip}:{brick}", "force")
        _gluster(p, ns, "volume", "start", volume)
        while not _volume_online(p, ns, volume):
            if time.monotonic() > deadline:
                raise RuntimeError(f"volume {volume} not online after {timeout}s")
            time.sleep(0.1)
        # Remember the brick's unix socket (in /var/run/gluster) for stop().
        socks = []
        for pid in _gluster_pids_for(state_dir, ns):
            args = _cmdline(pid)
            if "-S" in args:
                socks.append(args[args.index("-S") + 1])
        _write_json(p["brick_sockets"], socks)
    except BaseException:
        stop(state_dir, quiet=True)
        raise
    info = {"server": ip, "volume": volume, "netns": ns, "brick": brick,
            "host_ip": net_info["host_ip"], "state_dir": state_dir}
    _write_json(p["ready"], info)
    took = time.monotonic() - t0
    info_out = dict(info, start_seconds=round(took, 3))
    log(f"start: glusterd answering after {t_glusterd:.2f}s, volume online after {took:.2f}s")
    return info_out


def stop(state_dir, quiet=False, timeout=30):
    """Unmount, stop the volume, kill gluster processes, delete netns+veth."""
    t0 = time.monotonic()
    state_dir = os.path.abspath(state_dir)
    p = _paths(state_dir)
    names = _names(state_dir)
    net = _read_json(p["net"]) or {}
    info = _read_json(p["ready"]) or {}
    ns = net.get("netns", names["netns"])
    server = info.get("server") or net.get("ns_ip")
    problems = []

    # 1. mounts: anything under state_dir, and any glusterfs FUSE mount of our server.
    victims = []
    for mp, fstype, source in _mounts():
        if mp == state_dir or mp.startswith(state_dir + "/") or \
                (server and fstype.startswith("fuse.glusterfs")
                 and source.startswith(server + ":")):
            victims.append(mp)
    for mp in sorted(set(victims), key=len, reverse=True):
        try:
            unmount(mp)
        except Exception as e:  # keep going: leave nothing running
            problems.append(str(e))

    # 2. stop the volume cleanly if glusterd still answers.
    pid = _read_pid(p["pid"])
    ns_exists = os.path.exists(f"/run/netns/{ns}")
    if pid and _alive(pid) and _comm(pid) == "glusterd" and ns_exists and info.get("volume"):
        proc = _gluster(p, ns, "volume", "stop", info["volume"], "force",
                        check=False, timeout=timeout)
        if proc.returncode != 0 and not quiet:
            log(f"stop: volume stop: {proc.stdout.strip()} {proc.stderr.strip()}")

    # 3. kill what is left: glusterd, glusterfsd, glusterfs of this server.
    socks = _read_json(p["brick_sockets"]) or []
    pids = _gluster_pids_for(state_dir, ns)
    for pid in pids:
        args = _cmdline(pid)
        if "-S" in args:
            socks.append(args[args.index("-S") + 1])
    left = _kill_all(pids)
    if left:
        problems.append(f"processes survived SIGKILL: {sorted(left)}")
    if ns_exists:
        out = run(["ip", "netns", "pids", ns], check=False).stdout
        rest = {int(x) for x in out.split() if x.isdigit() and _alive(int(x))}
        left = _kill_all(rest)
        if left:
            problems.append(f"processes in {ns} survived: {sorted(left)}")

    # 4. sockets glusterd placed outside state_dir.
    for s in set(socks):
        if os.path.dirname(os.path.abspath(s)) == GLUSTER_RUN_DIR and s.endswith(".socket"):
            try:
                os.unlink(s)
            except FileNotFoundError:
                pass
    for f in (p["brick_sockets"], p["pid"], p["sock"]):
        try:
            os.unlink(f)
        except FileNotFoundError:
            pass

    # 5. network: deleting the namespace deletes the veth pair too.
    if ns_exists:
        run(["ip", "netns", "del", ns], check=False)
    vh = net.get("veth_host", names["veth_host"])
    if os.path.exists(f"/sys/class/net/{vh}"):
        run(["ip", "link", "del", vh], check=False)
    if os.path.exists(f"/run/netns/{ns}") or os.path.exists(f"/sys/class/net/{vh}"):
        problems.append(f"namespace {ns} or veth {vh} still present")

    try:
        os.unlink(p["ready"])
    except FileNotFoundError:
        pass
    if problems:
        raise RuntimeError("stop: " + "; ".join(problems))
    if not quiet:
        log(f"stop: done in {time.monotonic() - t0:.2f}s")


def status(state_dir):
    p = _paths(os.path.abspath(state_dir))
    info = _read_json(p["ready"])
    net = _read_json(p["net"]) or {}
    ns = (info or net).get("netns") or _names(state_dir)["netns"]
    result = {"ready": info, "netns_exists": os.path.exists(f"/run/netns/{ns}"),
              "glusterd_pid": None, "processes": [], "online": False, "mounts": []}
    pid = _read_pid(p["pid"])
    if pid and _alive(pid) and _comm(pid) == "glusterd":
        result["glusterd_pid"] = pid
    result["processes"] = sorted(_gluster_pids_for(state_dir, ns))
    if info and result["glusterd_pid"] and result["netns_exists"]:
        result["online"] = _volume_online(p, ns, info["volume"])
    server = (info or {}).get("server") or net.get("ns_ip")
    result["mounts"] = [m for m, t, s in _mounts()
                        if server and t.startswith("fuse.glusterfs") and s.startswith(server + ":")]
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["install", "start", "stop", "status",
                                       "mount", "unmount", "mkdir"])
    ap.add_argument("--dir", help="state directory")
    ap.add_argument("--volume", default=DEFAULT_VOLUME)
    ap.add_argument("--mountpoint")
    ap.add_argument("--subdir")
    ap.add_argument("--path")
    a = ap.parse_args(argv)
    if a.action != "install" and a.action != "unmount" and not a.dir:
        ap.error("--dir is required")
    if a.action == "install":
        print(json.dumps({"install_seconds": round(install(), 3)}))
    elif a.action == "start":
        print(json.dumps(start(a.dir, a.volume), indent=2))
    elif a.action == "stop":
        stop(a.dir)
    elif a.action == "status":
        print(json.dumps(status(a.dir), indent=2))
    elif a.action in ("mount", "mkdir"):
        info = _read_json(_paths(a.dir)["ready"])
        if not info:
            sys.exit("not started (no ready.json)")
        if a.action == "mount":
            mount(info, a.mountpoint, subdir=a.subdir)
        else:
            print(make_directory(info, a.path))
    elif a.action == "unmount":
        unmount(a.mountpoint)
    return 0


if __name__ == "__main__":
    sys.exit(main())
