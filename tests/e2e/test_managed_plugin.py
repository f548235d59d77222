"""fuxi as a Docker managed (v2) plugin, through the real dockerd.

contrib/docker-plugin/build.py builds the plugin's root file system from this
machine (no registry, no base image) and runs `docker plugin create`; the
fixture then points the plugin's settings at a temporary config directory
(its fuxi.conf makes xfs the default file system, so the tests see the file
was read) and at the embedded devcloud (`args=--devcloud`), and enables it.

* dockerd lists and inspects it as enabled, with config.json's interface,
  and the plugin answers /Plugin.Activate on the socket dockerd made for it;
* a volume of the plugin lives through containers: written by one, mounted
  on the host under the plugin's propagated mount while another runs, read
  by a third, then removed: its backing file, loop device and mounts go;
* teardown disables and removes the plugin and fails on anything left:
  volumes, mounts under the plugin's directory, loop devices bound to the
  devcloud's volume files, the plugin itself.

The plugin name is this test's own: the legacy plugin the other e2e tests
serve is `fuxi`, on /run/docker/plugins/fuxi.sock.  Runs of this module are
serialised by a lock file, so a plugin of this name found at the start is a
leftover of an interrupted run and is removed (with what it left).

The rootfs is built afresh each time: the build takes a few seconds
(`docker plugin create`, which gzips it, takes longer), so a cache would
save little and could hide a broken build step.
"""

import fcntl
import json
import os
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import DOCKER, DOCKERD_LOGS, IMAGE, REPO, VOLUME_PREFIX, DockerError
from tests.functional.harness import mounted_under, wait_until

PLUGIN = "fuxi-managed-test:latest"
BUILD_SCRIPT = REPO / "contrib" / "docker-plugin" / "build.py"
BUILD_TIMEOUT = 300
LOCK_PATH = "/tmp/fuxi-managed-plugin-test.lock"
LOCK_TIMEOUT = 600
# Where the plugin keeps state and mounts volumes, inside it (config.json's propagatedMount).
PLUGIN_STATE_DIR = "/var/lib/fuxi"
PLUGIN_SOCKET_NAME = "fuxi.sock"  # config.json's interface.socket
# The fuxi.conf the plugin reads through its config mount; xfs shows it was read.
FUXI_CONF = "[fuxi]\ndefault_fstype = xfs\nstale_mount_grace = 1\n"
STALE_MOUNT_GRACE = 1.0
CONFIGURED_FSTYPE = "xfs"


@dataclass
class ManagedPlugin:
    id: str
    plugin_dir: Path  # DockerRootDir/plugins/<id> on the host

    @property
    def propagated(self) -> Path:
        """The host side of the plugin's propagatedMount."""
        return self.plugin_dir / "propagated-mount"

    @property
    def socket(self) -> Path:
        """Where dockerd made the plugin's socket (config.json's interface.socket)."""
        return Path("/run/docker/plugins") / self.id / PLUGIN_SOCKET_NAME

    @property
    def volume_files(self) -> Path:
        return self.propagated / "devcloud" / "volumes"

    def log(self, limit=120) -> str:
        return plugin_log(self.id, limit)


# -- host state --------------------------------------------------------------------------

def plugin_log(plugin_id, limit=120) -> str:
    """What the plugin printed: dockerd logs it line by line, tagged plugin=<id>."""
    for path in DOCKERD_LOGS:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                lines = [line.rstrip() for line in f if f"plugin={plugin_id}" in line]
        except OSError:
            continue
        return "\n".join(lines[-limit:]) or f"(no lines tagged plugin={plugin_id} in {path})"
    return f"(no dockerd log found in {', '.join(DOCKERD_LOGS)})"


def file_identity(path) -> tuple[str, int]:
    """(MAJ:MIN, inode) of a file, as losetup reports a loop device's backing file."""
    st = os.stat(path)
    return f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}", st.st_ino


def loop_devices_backed_by(identities) -> list[str]:
    """Loop devices whose backing file is one of `identities` ((MAJ:MIN, inode)).

    By inode, not by name: the kernel records the backing file's path as the
    plugin saw it (/var/lib/fuxi/...), which says nothing about the host path.
    """
    out = subprocess.run(["losetup", "--list", "--noheadings", "--output", "NAME,BACK-MAJ:MIN,BACK-INO"],
                         capture_output=True, text=True, check=True).stdout
    wanted = set(identities)
    found = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2].isdigit() and (parts[1], int(parts[2])) in wanted:
            found.append(parts[0])
    return found


def volume_file_identities(plugin) -> set:
    if not plugin.volume_files.is_dir():
        return set()
    return {file_identity(p) for p in plugin.volume_files.glob("*.img")}


def docker_root(docker) -> Path:
    return Path(docker("info", "--format", "{{.DockerRootDir}}", timeout=30).stdout.strip())


def inspect_plugin(docker) -> dict | None:
    result = docker("plugin", "inspect", PLUGIN, check=False, timeout=60)
    return json.loads(result.stdout)[0] if result.returncode == 0 else None


@contextmanager
def exclusive_lock():
    with open(LOCK_PATH, "w") as lock:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another run of this test held {LOCK_PATH} for {LOCK_TIMEOUT} s", pytrace=False)
                time.sleep(1)
        yield


@contextmanager
def plugin_log_on_failure(plugin):
    try:
        yield
    except (AssertionError, DockerError) as exc:
        raise AssertionError(f"{exc}\n--- managed plugin log (from dockerd) ---\n{plugin.log()}") from exc


def plugin_answer(plugin, method, body) -> dict:
    """The plugin's own answer to a protocol call, on the socket dockerd made for it."""
    import requests_unixsocket

    url = "http+unix://" + str(plugin.socket).replace("/", "%2F")
    answer = requests_unixsocket.Session().post(f"{url}/{method}", data=json.dumps(body), timeout=30)
    # A failure may come with any status; its body still holds the Err.
    return answer.json()


def volumes_of_plugin(docker) -> list[str]:
    # Filtered by driver, dockerd asks only this plugin.  Unfiltered, it would
    # also ask every volume driver it ever used, and one that went away (the
    # other tests' legacy `fuxi`) costs 15 s of retries per question; the same
    # goes for `docker volume inspect` or `rm -f` of a name dockerd does not know.
    return docker("volume", "ls", "-q", "--filter", f"driver={PLUGIN}").stdout.split()


# -- removing the plugin -----------------------------------------------------------------

def remove_plugin(docker, plugin) -> list[str]:
    """Remove the plugin and whatever of it is left; returns what should not have been there."""
    problems = []
    for name in volumes_of_plugin(docker):
        problems.append(f"volume {name} of {PLUGIN} left")
        docker("volume", "rm", "-f", name, check=False, timeout=90)
    identities = volume_file_identities(plugin)
    docker("plugin", "disable", "-f", PLUGIN, check=False, timeout=90)

    # dockerd's `plugin rm` unmounts all under the plugin's directory and deletes
    # it: leaks are looked for before, where they still show.
    mounts = [m for m in mounted_under(plugin.propagated) if Path(m) != plugin.propagated]
    if mounts:
        problems.append(f"mounts left under the propagated mount: {mounts}")
    loops = loop_devices_backed_by(identities)
    if loops:
        problems.append(f"loop devices left bound to the devcloud's volume files: {loops}")
        for device in loops:
            subprocess.run(["losetup", "-d", device], capture_output=True)
    leftover_files = sorted(p.name for p in plugin.volume_files.glob("*.img")) if plugin.volume_files.is_dir() else []
    if leftover_files:
        problems.append(f"devcloud volume files left: {leftover_files}")

    removed = docker("plugin", "rm", "-f", PLUGIN, check=False, timeout=90)
    if removed.returncode != 0:
        problems.append(f"docker plugin rm -f {PLUGIN}: {removed.stderr.strip()}")
    if inspect_plugin(docker) is not None:
        problems.append(f"{PLUGIN} still there after docker plugin rm")
    if plugin.plugin_dir.exists():
        problems.append(f"{plugin.plugin_dir} still there after docker plugin rm")
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        still_mounted = [line.split()[4] for line in f if plugin.id in line]
    if still_mounted:
        problems.append(f"mounts naming the plugin left: {still_mounted}")
    return problems


def plugin_from(info, root) -> ManagedPlugin:
    return ManagedPlugin(id=info["Id"], plugin_dir=root / "plugins" / info["Id"])


# -- the plugin ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def managed_plugin(docker, tmp_path_factory):
    with exclusive_lock():
        root = docker_root(docker)
        leftover = inspect_plugin(docker)
        if leftover is not None:
            # Under the lock, so an interrupted run's, not a running one's.
            found = remove_plugin(docker, plugin_from(leftover, root))
            print(f"removed {PLUGIN} left by an earlier run" + (f": {'; '.join(found)}" if found else ""))

        workdir = tmp_path_factory.mktemp("managed-plugin")
        config_dir = workdir / "etc-fuxi"
        config_dir.mkdir()
        (config_dir / "fuxi.conf").write_text(FUXI_CONF)
        # udevd does not run on every test machine, and a bind mount of a missing
        # /run/udev would stop the plugin from starting; an empty one stands in.
        udev_dir = Path("/run/udev")
        if not udev_dir.is_dir():
            udev_dir = workdir / "run-udev"
            udev_dir.mkdir()

        started = time.monotonic()
        build = subprocess.run(
            [sys.executable, str(BUILD_SCRIPT), "--name", PLUGIN, "--docker", DOCKER],
            capture_output=True, text=True, timeout=BUILD_TIMEOUT, cwd=REPO, stdin=subprocess.DEVNULL,
        )
        built = time.monotonic()
        info = inspect_plugin(docker)
        if build.returncode != 0 or info is None:
            if info is not None:
                remove_plugin(docker, plugin_from(info, root))
            pytest.fail(f"{BUILD_SCRIPT.name} exited {build.returncode} (plugin created: {info is not None}):\n"
                        f"{build.stderr.strip()[-4000:]}", pytrace=False)
        plugin = plugin_from(info, root)
        try:
            assert info["Enabled"] is False, "docker plugin create leaves a plugin disabled"
            docker("plugin", "set", PLUGIN, f"config.source={config_dir}", f"udev.source={udev_dir}",
                   "args=--devcloud", timeout=60)
            docker("plugin", "enable", PLUGIN, timeout=120)
        except (AssertionError, DockerError) as exc:
            problems = remove_plugin(docker, plugin)
            pytest.fail(f"{exc}\n--- plugin log ---\n{plugin.log()}\n{problems or ''}", pytrace=False)
        print(f"{PLUGIN}: built and created in {built - started:.1f} s, "
              f"enabled in {time.monotonic() - built:.1f} s; build log:\n{build.stderr.strip()}")

        yield plugin

        log = plugin.log()
        problems = remove_plugin(docker, plugin)
        if problems:
            pytest.fail("managed plugin teardown:\n" + "\n".join(problems) + f"\n--- plugin log ---\n{log}",
                        pytrace=False)


# -- the tests -------------------------------------------------------------------------------

def test_dockerd_creates_and_enables_the_managed_plugin(docker, managed_plugin):
    with plugin_log_on_failure(managed_plugin):
        listed = docker("plugin", "ls", "--no-trunc", "--format", "{{.ID}} {{.Name}} {{.Enabled}}").stdout.split("\n")
        assert f"{managed_plugin.id} {PLUGIN} true" in listed, listed

        info = inspect_plugin(docker)
        assert info["Enabled"] is True
        assert info["Config"]["Interface"]["Socket"] == PLUGIN_SOCKET_NAME
        assert info["Config"]["Interface"]["Types"] == ["docker.volumedriver/1.0"]
        assert info["Config"]["PropagatedMount"] == PLUGIN_STATE_DIR
        assert info["Settings"]["Args"] == ["--devcloud"]

        # dockerd made the plugin's socket directory; fuxi-server listens in it.
        assert plugin_answer(managed_plugin, "Plugin.Activate", {}) == {"Implements": ["VolumeDriver"]}

        # The propagated mount is shared with the host, so fuxi's mounts reach containers.
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            entries = [line.split() for line in f]
        propagated = [e for e in entries if e[4] == str(managed_plugin.propagated)]
        assert propagated and any(o.startswith("shared:") for o in propagated[-1][6:]), propagated


def test_a_volume_lives_through_containers_on_the_managed_plugin(docker, managed_plugin):
    name = f"{VOLUME_PREFIX}managed-{uuid.uuid4().hex[:10]}"
    with plugin_log_on_failure(managed_plugin):
        try:
            assert docker("volume", "create", "-d", PLUGIN, "-o", "size=1", name).stdout.strip() == name
            status = json.loads(docker("volume", "inspect", name).stdout)[0]["Status"]
            # The plugin's devcloud keeps the volume's file in its state dir, the propagated mount.
            image = managed_plugin.volume_files / f"{status['volume_id']}.img"
            assert image.is_file(), sorted(os.listdir(managed_plugin.volume_files))
            backing = file_identity(image)

            written = docker("run", "--rm", "-v", f"{name}:/data", IMAGE,
                             "sh", "-c", "echo managed > /data/f && grep ' /data ' /proc/mounts")
            fields = written.stdout.split()
            assert len(fields) >= 3 and fields[2] == CONFIGURED_FSTYPE, f"/data in the container: {written.stdout!r}"

            holder = docker("run", "-d", "-v", f"{name}:/data", IMAGE, "sleep", "300").stdout.strip()
            try:
                # fuxi mounted it inside the plugin; the host sees it under the propagated mount.
                host_mount = managed_plugin.propagated / "mounts" / name
                assert str(host_mount) in mounted_under(managed_plugin.propagated / "mounts")
                assert (host_mount / "f").read_text() == "managed\n"
                assert len(loop_devices_backed_by({backing})) == 1
                inspected = json.loads(docker("volume", "inspect", name).stdout)[0]
                assert inspected["Driver"] == PLUGIN
                assert inspected["Mountpoint"] == f"{PLUGIN_STATE_DIR}/mounts/{name}"
                assert inspected["Status"]["mounts"] == 1 and inspected["Status"]["attached"] is True
            finally:
                docker("rm", "-f", holder, check=False)

            read = docker("run", "--rm", "-v", f"{name}:/data", IMAGE, "cat", "/data/f")
            assert read.stdout == "managed\n"

            assert docker("volume", "rm", name).stdout.strip() == name
            assert name not in volumes_of_plugin(docker)
            assert "does not exist" in plugin_answer(managed_plugin, "VolumeDriver.Get", {"Name": name})["Err"]
            assert not image.exists(), "the devcloud still has the volume's file"
            assert loop_devices_backed_by({backing}) == []
            assert mounted_under(managed_plugin.propagated / "mounts") == []
        finally:
            if name in volumes_of_plugin(docker):
                docker("volume", "rm", "-f", name, check=False)


def test_only_a_running_container_keeps_a_count_inside_the_managed_plugin(docker, managed_plugin):
    # PID 1's namespace sees a propagated copy of every mount the plugin makes;
    # only a container's namespace may keep a count alive past the grace, and
    # the plugin must be able to read containers' namespaces (CAP_SYS_PTRACE).
    name = f"{VOLUME_PREFIX}managed-stale-{uuid.uuid4().hex[:10]}"

    def call(method, caller):
        answer = plugin_answer(managed_plugin, f"VolumeDriver.{method}", {"Name": name, "ID": caller})
        assert answer.get("Err") in ("", None), answer

    def status():
        return plugin_answer(managed_plugin, "VolumeDriver.Get", {"Name": name})["Volume"]["Status"]

    with plugin_log_on_failure(managed_plugin):
        holder = None
        try:
            docker("volume", "create", "-d", PLUGIN, name)
            holder = docker("run", "-d", "-v", f"{name}:/data", IMAGE, "sleep", "300").stdout.strip()
            # A container that died while dockerd was down: counted, never unmounted.
            call("Mount", "died-unseen")
            time.sleep(STALE_MOUNT_GRACE + 0.5)
            call("Mount", "live")
            call("Unmount", "live")
            # A running container holds the volume: no count may go, it keeps using it.
            assert status()["mounts"] == 2, status()
            docker("exec", holder, "sh", "-c", "echo held > /data/f")
            # Once it is gone, no container holds the volume: the dead one's count is
            # dropped at the next Unmount (or Remove, or start), and the volume is
            # unmounted and detached. (The holder's own Unmount may come while its
            # namespace is still being torn down.)
            docker("rm", "-f", holder)
            holder = None

            def dead_count_dropped():
                call("Mount", "live")
                call("Unmount", "live")
                return (status()["mounts"], status()["attached"]) == (0, False)

            wait_until(dead_count_dropped, timeout=15, what="the dead caller's count to be dropped")
            assert mounted_under(managed_plugin.propagated / "mounts") == []
            docker("volume", "rm", name)
        finally:
            if holder:
                docker("rm", "-f", holder, check=False)
            if name in volumes_of_plugin(docker):
                docker("volume", "rm", "-f", name, check=False)
