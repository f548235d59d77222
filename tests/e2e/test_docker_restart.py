"""Issue 7, "Docker restarts too": dockerd and fuxi-server restart under running containers.

dockerd keeps containers running across its own restart only with
live-restore; scripts/docker-up.sh starts it with ``--live-restore`` (the
``live_restore_dockerd`` fixture restarts an older dockerd that runs without
it, while none of its containers run).  dockerd is restarted the way
docker-up.sh's counterpart would: SIGTERM, wait for it to exit, then
scripts/docker-up.sh again (same command line).

* dockerd restart: two long-running containers share a new fuxi volume; across
  the restart the containers keep their processes (same pids) and keep writing
  (every line of their logs, read through fuxi's mountpoint on the host, is
  there, with no gap in time); the volume stays mounted on the host, attached
  in the cloud (Cinder in-use, one attachment), counted twice by fuxi; dockerd
  sees it afterwards (`docker volume inspect`).  What dockerd 20.10 sends on
  restore: /Plugin.Activate, /VolumeDriver.Capabilities and a Get per volume
  reference, no Mount and no Unmount; at `docker stop` it sends the Unmount
  with the ID of the Mount made before the restart, so the count falls to 0,
  the volume is unmounted and detached (Cinder available, no loop device) and
  `docker volume rm` works.
* fuxi-server kill -9 (the whole process group, devcloud included) and a
  start like the fixture's: same assertions, with the count read back from
  fuxi's durable state.
* a container that dies while dockerd is down: dockerd marks it exited on
  restore but never sends its Unmount: fuxi drops that count once no mount
  namespace holds the volume (storage_core/mount_users.py).

The cloud's view comes from devcloud's Cinder API through openstacksdk, never
from fuxi's own answers.
"""

import json
import os
import re
import signal
import subprocess
import time
from collections import Counter

import pytest
import yaml

from storage_core.devcloud.testing import loop_devices_under
from tests.clouds import connect
from tests.e2e.conftest import DOCKER_UP, IMAGE, PLUGIN_URL, STALE_MOUNT_GRACE, DockerError, run_docker
from tests.functional.harness import mounted_under

DRIVER = "fuxi"
# The cloud view reads devcloud's ready file; the attach path does not matter here.
CLOUD_KINDS = ("devcloud",)
DOCKERD_PIDFILE = "/var/run/docker.pid"
DOCKERD_STOP_TIMEOUT = 60
WRITE_INTERVAL = 0.2
# A container writes every 0.2 s; a longer pause than this between two lines
# means it stopped writing (a lost mount, a frozen or restarted container).
MAX_WRITE_GAP = 5
GROW_TIMEOUT = 20
PLUGIN_KILL_TIMEOUT = 20

# Each line: a counter (1, 2, ...) and the time in seconds.
WRITER = ("i=0; while true; do i=$((i+1)); echo \"$i $(date +%s)\" >> /data/{log}; "
          f"sleep {WRITE_INTERVAL}; done")

# One line per Mount/Unmount the service counted (storage_core/service.py).
MOUNT_LINE = re.compile(r"volume (\S+) mounted for (\S+) \(")
UNMOUNT_LINE = re.compile(r"volume (\S+) unmounted for (\S+) \(")
UNCOUNTED_LINE = re.compile(r"volume (\S+): unmount by (\S+), which holds no mount")
RELEASED_LINE = re.compile(r"volume (\S+) released from this host")


# -- dockerd --------------------------------------------------------------------------

def _dockerd_pid() -> int:
    try:
        with open(DOCKERD_PIDFILE, encoding="ascii") as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/comm", encoding="ascii") as f:
            if f.read().strip() == "dockerd":
                return pid
    except (OSError, ValueError):
        pass
    # Not pgrep: it counts a dockerd that exited but was not reaped yet.
    rows = subprocess.run(["ps", "-C", "dockerd", "-o", "pid=,stat="], capture_output=True, text=True).stdout
    pids = [int(pid) for pid, stat in (row.split() for row in rows.splitlines()) if not stat.startswith("Z")]
    assert len(pids) == 1, f"expected one dockerd, found pids {pids}"
    return pids[0]


def _gone_or_zombie(pid) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _live_restore() -> bool:
    out = run_docker("info", "--format", "{{json .LiveRestoreEnabled}}", timeout=30).stdout.strip()
    return json.loads(out) is True


def restart_dockerd() -> dict:
    """SIGTERM dockerd, wait for it to exit, start it again with scripts/docker-up.sh.

    Returns the old and new pids and how long each half took."""
    old = _dockerd_pid()
    t0 = time.monotonic()
    os.kill(old, signal.SIGTERM)
    deadline = t0 + DOCKERD_STOP_TIMEOUT
    while not _gone_or_zombie(old):
        assert time.monotonic() < deadline, f"dockerd {old} still runs {DOCKERD_STOP_TIMEOUT} s after SIGTERM"
        time.sleep(0.05)
    t1 = time.monotonic()
    up = subprocess.run(["bash", str(DOCKER_UP)], capture_output=True, text=True, timeout=300,
                        stdin=subprocess.DEVNULL)
    t2 = time.monotonic()
    assert up.returncode == 0, f"scripts/docker-up.sh exited {up.returncode}: {up.stderr[-3000:]}"
    new = _dockerd_pid()
    assert new != old, "dockerd was not restarted"
    return {"old_pid": old, "new_pid": new, "stop_s": round(t1 - t0, 2), "start_s": round(t2 - t1, 2)}


@pytest.fixture(scope="module")
def live_restore_dockerd(docker):
    """dockerd with live-restore on: restarted (through docker-up.sh) when it runs without it."""
    if not _live_restore():
        running = docker("ps", "-q").stdout.split()
        if running:
            pytest.fail(f"dockerd runs without live-restore and containers {running} run: restarting "
                        "it would stop them; stop them, or restart dockerd through scripts/docker-up.sh",
                        pytrace=False)
        restart_dockerd()
        if not _live_restore():
            pytest.fail("dockerd still runs without live-restore after scripts/docker-up.sh "
                        "(does /etc/docker/daemon.json set \"live-restore\": false?)", pytrace=False)
    return docker


# -- what fuxi, the host and the cloud say ---------------------------------------------

def plugin_list() -> list:
    """VolumeDriver.List over the plugin socket."""
    import requests_unixsocket

    answer = requests_unixsocket.Session().post(f"{PLUGIN_URL}/VolumeDriver.List", data="{}", timeout=60)
    return answer.json()["Volumes"]


def plugin_get(name) -> dict:
    """VolumeDriver.Get over the plugin socket: the volume as fuxi reports it."""
    import requests_unixsocket

    answer = requests_unixsocket.Session().post(f"{PLUGIN_URL}/VolumeDriver.Get",
                                                data=json.dumps({"Name": name}), timeout=60)
    body = answer.json()
    assert answer.status_code == 200 and not body.get("Err"), body
    return body["Volume"]


def plugin_unmount(name, caller_id) -> None:
    import requests_unixsocket

    answer = requests_unixsocket.Session().post(f"{PLUGIN_URL}/VolumeDriver.Unmount",
                                                data=json.dumps({"Name": name, "ID": caller_id}), timeout=60)
    assert answer.status_code == 200, answer.text


def cinder(plugin):
    """openstacksdk on the plugin's devcloud (its address changes when the plugin restarts)."""
    with open(plugin.state_dir / "devcloud" / "ready.json", encoding="utf-8") as f:
        entry = json.load(f)["cloud"]
    clouds_yaml = plugin.workdir / "restart-clouds.yaml"
    clouds_yaml.write_text(yaml.safe_dump({"clouds": {"devcloud": entry}}))
    return connect(clouds_yaml, "devcloud")


def calls_on(plugin, name) -> list[tuple[str, str]]:
    """(method, ID) of every Mount/Unmount fuxi's log shows for `name`, in order."""
    calls = []
    for line in plugin.log(limit=100000).splitlines():
        for method, pattern in (("Mount", MOUNT_LINE), ("Unmount", UNMOUNT_LINE),
                                ("Unmount (uncounted ID)", UNCOUNTED_LINE)):
            m = pattern.search(line)
            if m and m.group(1) == name:
                calls.append((method, m.group(2)))
        m = RELEASED_LINE.search(line)
        if m and m.group(1) == name:
            calls.append(("released", ""))
    return calls


def read_lines(path) -> list[tuple[int, int]]:
    """(counter, seconds) of every complete line a writer container left in `path`."""
    with open(path, encoding="ascii", errors="replace") as f:
        text = f.read()
    rows = []
    for line in text.split("\n")[:-1]:  # the last piece may be a line being written
        counter, seconds = line.split()
        rows.append((int(counter), int(seconds)))
    return rows


def assert_unbroken(path, since_counter=0):
    """Every line is there (counters 1..n) and no pause longer than MAX_WRITE_GAP."""
    rows = read_lines(path)
    counters = [c for c, _ in rows]
    assert counters == list(range(1, len(rows) + 1)), f"{path}: lines lost or repeated: {counters}"
    assert len(rows) > since_counter, f"{path}: no line after #{since_counter}"
    gaps = [(a, b) for (_, a), (_, b) in zip(rows, rows[1:]) if b - a > MAX_WRITE_GAP]
    assert not gaps, f"{path}: the writer paused more than {MAX_WRITE_GAP} s: {gaps}"
    return len(rows)


def wait_grows(path, beyond, what):
    deadline = time.monotonic() + GROW_TIMEOUT
    while True:
        n = len(read_lines(path))
        if n >= beyond + 5:  # about a second of writes
            return n
        assert time.monotonic() < deadline, f"{path} stopped growing {what} ({n} lines, {beyond} before)"
        time.sleep(0.1)


class SharedVolume:
    """A new fuxi volume and two writer containers sharing it."""

    def __init__(self, docker, plugin, name):
        self.docker, self.plugin, self.name = docker, plugin, name
        self.containers = []

    def start(self):
        self.docker("volume", "create", "-d", DRIVER, "-o", "size=1", self.name)
        for tag in ("a", "b"):
            cname = f"{self.name}-{tag}"
            self.docker("run", "-d", "--name", cname, "-v", f"{self.name}:/data", IMAGE,
                        "sh", "-c", WRITER.format(log=f"log-{tag}"))
            self.containers.append(cname)
        self.volume_id = plugin_get(self.name)["Status"]["volume_id"]
        self.mountpoint = plugin_get(self.name)["Mountpoint"]
        assert self.mountpoint, plugin_get(self.name)
        for tag in ("a", "b"):
            deadline = time.monotonic() + GROW_TIMEOUT
            while not os.path.exists(self.log(tag)) or len(read_lines(self.log(tag))) < 3:
                assert time.monotonic() < deadline, f"container {tag} never wrote to {self.log(tag)}"
                time.sleep(0.1)
        return self

    def log(self, tag):
        return os.path.join(self.mountpoint, f"log-{tag}")

    def pids(self) -> dict:
        out = {}
        for cname in self.containers:
            state = json.loads(self.docker("inspect", "-f", "{{json .State}}", cname).stdout)
            out[cname] = (state["Running"], state["Pid"])
        return out

    def loops(self) -> list[str]:
        return [dev for dev, backing in loop_devices_under(self.plugin.volumes_root).items()
                if self.volume_id in os.path.basename(backing)]

    def assert_in_use(self, mounts=2):
        """fuxi counts `mounts`; mounted on the host; attached in the cloud."""
        info = plugin_get(self.name)
        assert info["Status"]["mounts"] == mounts, info
        assert info["Mountpoint"] == self.mountpoint, info
        assert info["Status"]["attached"] is True, info
        assert mounted_under(self.mountpoint) == [self.mountpoint], \
            f"{self.mountpoint} is not mounted (once) on the host: {mounted_under(self.mountpoint)}"
        assert len(self.loops()) == 1, f"loop devices of {self.volume_id}: {self.loops()}"
        vol = cinder(self.plugin).block_storage.get_volume(self.volume_id)
        assert vol.status == "in-use" and len(vol.attachments or []) == 1, (vol.status, vol.attachments)

    def assert_released(self):
        info = plugin_get(self.name)
        assert info["Status"]["mounts"] == 0 and info["Status"]["attached"] is False, info
        assert info["Mountpoint"] == "", info
        assert mounted_under(self.mountpoint) == [], mounted_under(self.mountpoint)
        assert self.loops() == [], f"loop devices of {self.volume_id} left: {self.loops()}"
        vol = cinder(self.plugin).block_storage.get_volume(self.volume_id)
        assert vol.status == "available" and not vol.attachments, (vol.status, vol.attachments)

    def stop_and_remove(self):
        """`docker stop` both containers, then the volume is free and `docker volume rm` works."""
        for cname in self.containers:
            self.docker("stop", "-t", "1", cname)
        self.assert_released()
        self.docker("rm", *self.containers)
        self.containers = []
        assert self.docker("volume", "rm", self.name).stdout.strip() == self.name
        vols = [v.id for v in cinder(self.plugin).block_storage.volumes() if v.id == self.volume_id]
        assert vols == [], f"volume {self.volume_id} still in the cloud after docker volume rm"

    def cleanup(self):
        if self.containers:
            self.docker("rm", "-f", *self.containers, check=False)


@pytest.fixture
def shared_volume(live_restore_dockerd, fuxi_plugin, volume_name):
    made = []

    def make(tag):
        vol = SharedVolume(live_restore_dockerd, fuxi_plugin, volume_name(tag))
        made.append(vol)
        return vol.start()

    yield make
    # Whatever happened, leave a dockerd that answers for the next tests ...
    if run_docker("info", check=False, timeout=30).returncode != 0:
        subprocess.run(["bash", str(DOCKER_UP)], capture_output=True, timeout=300, stdin=subprocess.DEVNULL)
    # ... and none of this test's containers.
    for vol in made:
        vol.cleanup()


# -- the tests ------------------------------------------------------------------------

def test_dockerd_restart_keeps_mounts_counted_and_attached(shared_volume, fuxi_plugin, docker):
    vol = shared_volume("dr")
    vol.assert_in_use(mounts=2)
    pids = vol.pids()
    assert all(running for running, _pid in pids.values()), pids
    before = calls_on(fuxi_plugin, vol.name)
    assert [m for m, _ in before] == ["Mount", "Mount"], before
    mount_ids = Counter(i for _, i in before)
    lines = {tag: len(read_lines(vol.log(tag))) for tag in "ab"}

    restart = restart_dockerd()

    # The very same container processes, still writing to the fuxi volume.
    assert vol.pids() == pids, f"containers changed across the restart: {pids} -> {vol.pids()}"
    for tag in "ab":
        wait_grows(vol.log(tag), lines[tag], "after dockerd restarted")
        assert_unbroken(vol.log(tag), since_counter=lines[tag])
    vol.assert_in_use(mounts=2)
    # dockerd's restore sent no Mount and no Unmount.
    during = calls_on(fuxi_plugin, vol.name)[len(before):]
    assert during == [], f"dockerd's restore sent {during} (restart {restart})"

    # dockerd (the new one) sees the volume, as fuxi has it.
    [info] = json.loads(docker("volume", "inspect", vol.name).stdout)
    assert (info["Driver"], info["Mountpoint"]) == (DRIVER, vol.mountpoint), info
    assert info["Status"]["mounts"] == 2 and info["Status"]["volume_id"] == vol.volume_id, info
    # The containers still see the volume (ext4 at /data) and each other's writes.
    mounts = docker("exec", vol.containers[0], "grep", " /data ", "/proc/mounts").stdout.split()
    assert mounts[2] == "ext4", mounts
    seen = docker("exec", vol.containers[0], "wc", "-l", "/data/log-b").stdout.split()[0]
    assert int(seen) >= lines["b"], seen

    vol.stop_and_remove()
    after = calls_on(fuxi_plugin, vol.name)[len(before):]
    # The Unmounts carry the IDs of the Mounts made before the restart; the last one releases.
    assert [m for m, _ in after] == ["Unmount", "released"], after
    assert after[0][1] in mount_ids, (after, mount_ids)
    print(f"\ndockerd restart: {restart}; fuxi saw before {before}, during restore {during}, after {after}")


def test_plugin_kill_keeps_mounts_counted_and_attached(shared_volume, fuxi_plugin, docker):
    vol = shared_volume("pk")
    vol.assert_in_use(mounts=2)
    pids = vol.pids()
    lines = {tag: len(read_lines(vol.log(tag))) for tag in "ab"}

    try:
        started, after = _kill_and_restart_plugin(vol, fuxi_plugin, docker, pids, lines)
    finally:
        if fuxi_plugin.proc.poll() is not None:  # leave the session's plugin serving
            fuxi_plugin.start()
    print(f"\nfuxi-server restarted in {started} s; after the restart fuxi saw {after}")


def _kill_and_restart_plugin(vol, fuxi_plugin, docker, pids, lines):
    # kill -9 the whole fuxi-server group (gunicorn master, worker, devcloud) ...
    pgid = fuxi_plugin.proc.pid
    os.killpg(pgid, signal.SIGKILL)
    fuxi_plugin.proc.wait(timeout=PLUGIN_KILL_TIMEOUT)
    deadline = time.monotonic() + PLUGIN_KILL_TIMEOUT
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, f"fuxi-server's group {pgid} outlived SIGKILL"
        time.sleep(0.05)
    # ... the containers write on without it ...
    for tag in "ab":
        lines[tag] = wait_grows(vol.log(tag), lines[tag], "while fuxi-server was dead")
    assert mounted_under(vol.mountpoint) == [vol.mountpoint]
    killed_log = fuxi_plugin.log(limit=100000)
    (fuxi_plugin.workdir / "fuxi-server.killed.log").write_text(killed_log)

    # ... and a new fuxi-server, started as the fixture does, finds both mounts.
    t0 = time.monotonic()
    fuxi_plugin.start()
    started = round(time.monotonic() - t0, 2)
    assert RELEASED_LINE.search(fuxi_plugin.log()) is None, fuxi_plugin.log()
    vol.assert_in_use(mounts=2)
    assert vol.pids() == pids
    for tag in "ab":
        wait_grows(vol.log(tag), lines[tag], "after fuxi-server restarted")
        assert_unbroken(vol.log(tag))
    [info] = json.loads(docker("volume", "inspect", vol.name).stdout)
    assert info["Status"]["mounts"] == 2, info

    vol.stop_and_remove()
    after = calls_on(fuxi_plugin, vol.name)
    assert [m for m, _ in after] == ["Unmount", "released"], after
    return started, after


def test_container_dying_while_dockerd_is_down_is_uncounted(shared_volume, fuxi_plugin, docker):
    vol = shared_volume("dd")
    vol.assert_in_use(mounts=2)
    dead, alive = vol.containers
    before = calls_on(fuxi_plugin, vol.name)
    dead_pid = vol.pids()[dead][1]
    dead_id = docker("inspect", "-f", "{{.Id}}", dead).stdout.strip()

    old = _dockerd_pid()
    os.kill(old, signal.SIGTERM)
    deadline = time.monotonic() + DOCKERD_STOP_TIMEOUT
    while not _gone_or_zombie(old):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(dead_pid, signal.SIGKILL)  # the container's init, from the host: the container exits
    up = subprocess.run(["bash", str(DOCKER_UP)], capture_output=True, text=True, timeout=300,
                        stdin=subprocess.DEVNULL)
    assert up.returncode == 0, up.stderr
    deadline = time.monotonic() + 30
    while vol.pids()[dead][0]:
        assert time.monotonic() < deadline, f"dockerd still reports {dead} running"
        time.sleep(0.2)
    # What dockerd kept for the dead container's mount (config.v2.json is root-only internals).
    stale_ids = []
    try:
        with open(f"/var/lib/docker/containers/{dead_id}/config.v2.json", encoding="utf-8") as f:
            stale_ids = [mp.get("ID") for mp in json.load(f)["MountPoints"].values() if mp.get("Name") == vol.name]
    except (OSError, ValueError, KeyError):
        pass

    try:
        # dockerd never sends the dead container's Unmount: fuxi drops that count
        # itself once it is older than the grace and no mount namespace holds the volume.
        time.sleep(STALE_MOUNT_GRACE)
        docker("stop", "-t", "1", alive)
        after = calls_on(fuxi_plugin, vol.name)[len(before):]
        info = plugin_get(vol.name)
        assert info["Status"]["mounts"] == 0, (
            f"after the live container stopped fuxi still counts {info['Status']['mounts']} mount(s); "
            f"dockerd sent {after} after its restart; the dead container's mount ID in dockerd's "
            f"config.v2.json: {stale_ids}")
        vol.stop_and_remove()
    finally:
        # Free what the drift left, so the session's teardown finds nothing attached.
        counted = Counter()
        for method, caller in calls_on(fuxi_plugin, vol.name):
            if method == "Mount":
                counted[caller] += 1
            elif method == "Unmount" and counted[caller]:
                counted[caller] -= 1
        still_there = vol.name in [v["Name"] for v in plugin_list()]
        if still_there and plugin_get(vol.name)["Status"]["mounts"]:
            for caller, n in counted.items():
                for _ in range(n):
                    plugin_unmount(vol.name, caller)
        vol.cleanup()
        vol.containers = []
        try:
            docker("volume", "rm", vol.name)
        except DockerError:
            pass
