"""End-to-end fixtures: the real Docker engine calling a real fuxi-server.

* ``docker``: dockerd answers (scripts/docker-up.sh is run when it does not)
  and the local image ``fuxi-busybox:latest`` exists.  Skipped with a reason
  only when no Docker engine can be had; strict tiers make that a failure.
* ``fuxi_plugin``: ``python -m fuxi.server`` on dockerd's plugin socket, once
  per cloud (``--devcloud``, then the real Keystone + Cinder via clouds.yaml),
  state in a temporary directory, answering ``/Plugin.Activate`` before any
  docker command runs (dockerd gives up on a missing plugin after
  about 15 s).  Teardown removes every volume of driver fuxi, stops the server
  (SIGTERM, then SIGKILL) and checks that no loop device or mount under the
  temporary directory is left.
* On a failing test the server's log and the tail of dockerd's log are added
  to the report.
"""

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from storage_core.devcloud.testing import release_loop_devices_under
from tests.functional.harness import mounted_under
from tests.share_servers import devcloud_share_args

REPO = Path(__file__).resolve().parents[2]
DOCKER = os.environ.get("FUXI_DOCKER", "/usr/bin/docker")
IMAGE = "fuxi-busybox:latest"
DRIVER = "fuxi"
PLUGIN_SOCKET = "/run/docker/plugins/fuxi.sock"
PLUGIN_URL = "http+unix://%2Frun%2Fdocker%2Fplugins%2Ffuxi.sock"
DOCKER_UP = REPO / "scripts" / "docker-up.sh"
DOCKERD_LOGS = ("/var/log/fuxi-dockerd.log", "/tmp/fuxi-dockerd.log")
START_TIMEOUT = float(os.environ.get("FUXI_E2E_START_TIMEOUT", "90"))
STOP_TIMEOUT = 40  # an idle server stops at once; teardown never leaves a call under way
# Real containers hold their volumes in mount namespaces of their own, so the
# stale-count check sees the truth; a short grace keeps the drift test short.
STALE_MOUNT_GRACE = 10
DOCKER_TIMEOUT = 180  # above dockerd's 120 s deadline for Create and Mount
VOLUME_PREFIX = "fuxi-e2e-"


class DockerError(AssertionError):
    pass


def run_docker(*args, check=True, timeout=DOCKER_TIMEOUT):
    """Run the docker client; a CompletedProcess with text output."""
    argv = [DOCKER, *args]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise DockerError(f"{' '.join(argv)} did not finish within {timeout} s") from exc
    if check and result.returncode != 0:
        raise DockerError(
            f"{' '.join(argv)} exited {result.returncode}\n"
            f"stdout: {result.stdout.strip()}\nstderr: {result.stderr.strip()}"
        )
    return result


def _docker_answers() -> tuple[bool, str]:
    try:
        result = run_docker("version", "--format", "{{.Server.Version}}", check=False, timeout=30)
    except DockerError as exc:
        return False, str(exc)
    return result.returncode == 0, (result.stdout + result.stderr).strip()


def _image_present() -> bool:
    return run_docker("image", "inspect", IMAGE, check=False, timeout=30).returncode == 0


@pytest.fixture(scope="session")
def docker():
    """The docker client (a callable like run_docker) once the engine answers."""
    if os.geteuid() != 0:
        pytest.skip("e2e needs root: dockerd, loop devices and mounts")
    if not os.access(DOCKER, os.X_OK):
        pytest.skip(f"{DOCKER} not found: Debian package docker.io is not installed (scripts/install.sh)")
    ok, detail = _docker_answers()
    if not ok or not _image_present():
        # Starts containerd + dockerd when needed and imports the busybox image.
        up = subprocess.run(
            ["bash", str(DOCKER_UP)], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
        )
        ok, detail = _docker_answers()
        if not ok:
            pytest.skip(
                f"no Docker engine: {DOCKER} cannot reach dockerd ({detail}); "
                f"scripts/docker-up.sh exited {up.returncode}: {up.stderr.strip()[-2000:]}"
            )
        if not _image_present():
            pytest.fail(f"image {IMAGE} missing after scripts/docker-up.sh: {up.stderr.strip()[-2000:]}")
    return run_docker


def _activate(session, timeout=2.0):
    response = session.post(f"{PLUGIN_URL}/Plugin.Activate", data="", timeout=timeout)
    return response.status_code, response.text


def _socket_is_live() -> bool:
    import socket

    if not os.path.exists(PLUGIN_SOCKET):
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2)
    try:
        probe.connect(PLUGIN_SOCKET)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def _tail(path, limit=200) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "".join(lines[-limit:])


class FuxiPlugin:
    """A fuxi-server subprocess on dockerd's plugin socket."""

    def __init__(self, workdir: Path, cloud_args=("--devcloud",), env=None, volumes_root=None):
        self.workdir = workdir
        self.state_dir = workdir / "state"
        self.log_path = workdir / "fuxi-server.log"
        self.proc = None
        self.extra_env = dict(env or {})
        # Where the cloud keeps the files behind its volumes' loop devices.
        self.volumes_root = Path(volumes_root or workdir)
        self.argv = [
            sys.executable, "-m", "fuxi.server", *cloud_args,
            "--socket", PLUGIN_SOCKET, "--state-dir", str(self.state_dir),
        ]

    def log(self, limit=200) -> str:
        return _tail(self.log_path, limit)

    def start(self):
        import requests_unixsocket

        if _socket_is_live():
            pytest.fail(
                f"another fuxi is already serving on {PLUGIN_SOCKET} (scripts/serve-devcloud.sh "
                "or a fuxi-server left running?); stop it before running the e2e tests",
                pytrace=False,
            )
        os.makedirs(os.path.dirname(PLUGIN_SOCKET), exist_ok=True)
        env = dict(os.environ, **self.extra_env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        session = requests_unixsocket.Session()
        deadline = time.monotonic() + START_TIMEOUT
        delay = 0.05
        last = "no answer yet"
        while True:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"fuxi-server exited {self.proc.returncode} before answering /Plugin.Activate\n"
                    f"argv: {' '.join(self.argv)}\n--- fuxi-server log ---\n{self.log()}",
                    pytrace=False,
                )
            try:
                status, body = _activate(session)
                if status == 200:
                    try:
                        answer = json.loads(body)
                    except ValueError:
                        answer = None
                    if answer != {"Implements": ["VolumeDriver"]}:
                        self.stop()
                        pytest.fail(f"/Plugin.Activate answered {body!r}, expected "
                                    '{"Implements": ["VolumeDriver"]}', pytrace=False)
                    return self
                last = f"HTTP {status}: {body[:200]}"
            except Exception as exc:  # connection refused / socket not there yet
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(
                    f"fuxi-server did not answer /Plugin.Activate on {PLUGIN_SOCKET} within "
                    f"{START_TIMEOUT:.0f} s (last: {last})\n--- fuxi-server log ---\n{self.log()}",
                    pytrace=False,
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def stop(self) -> str | None:
        """SIGTERM, wait, SIGKILL; then make sure nothing of its group is left."""
        if self.proc is None:
            return None
        problem = None
        pgid = self.proc.pid  # start_new_session: the server leads its own group
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                problem = f"fuxi-server ignored SIGTERM for {STOP_TIMEOUT} s; killed"
                self.proc.kill()
                self.proc.wait(timeout=10)
        # Children (gunicorn worker, devcloud) get a moment to follow, then SIGKILL.
        deadline = time.monotonic() + 10
        while True:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
            if time.monotonic() > deadline:
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                problem = problem or "processes of fuxi-server's group outlived it by 10 s; killed"
                break
            time.sleep(0.1)
        return problem


def _remove_fuxi_volumes(docker) -> list[str]:
    names = docker("volume", "ls", "-q", "--filter", f"driver={DRIVER}", check=False, timeout=90).stdout.split()
    errors = []
    for name in names:
        result = docker("volume", "rm", "-f", name, check=False, timeout=90)
        if result.returncode != 0:
            errors.append(f"docker volume rm -f {name}: {result.stderr.strip()}")
    return errors


@pytest.fixture(scope="session")
def fuxi_plugin(docker, tmp_path_factory, cloud_kind, request):
    """fuxi-server on dockerd's socket: `--devcloud` (the embedded default) or real Cinder."""
    workdir = tmp_path_factory.mktemp(f"fuxi-e2e-{cloud_kind}")
    if cloud_kind == "devcloud":
        # The embedded devcloud; its Manila keeps shares on the session's real
        # GlusterFS and CephFS (which runs without cephx, hence ceph_conf).
        gluster, ceph = request.getfixturevalue("glusterfs_server"), request.getfixturevalue("cephfs_server")
        config = workdir / "fuxi.conf"
        config.write_text("[fuxi]\n"
                          f"devcloud_args = {shlex.join(devcloud_share_args(gluster, ceph))}\n"
                          f"ceph_conf = {ceph.conf}\n"
                          f"stale_mount_grace = {STALE_MOUNT_GRACE}\n")
        plugin = FuxiPlugin(workdir, ["--devcloud", "--config-file", str(config)])
    elif cloud_kind == "devcloud-nova":
        # The embedded devcloud, attaching through its emulated Nova and guest udev.
        config = workdir / "fuxi.conf"
        config.write_text("[fuxi]\nattach_mode = nova\n")
        plugin = FuxiPlugin(workdir, ["--devcloud", "--config-file", str(config)])
    else:
        cloud = request.getfixturevalue("realcloud_stack").cloud()
        config = workdir / "fuxi.conf"
        ceph = request.getfixturevalue("cephfs_server")
        options = {"cloud": cloud.cloud_name, "ceph_conf": ceph.conf, **cloud.plugin_options}
        config.write_text("[fuxi]\n" + "".join(f"{k} = {v}\n" for k, v in options.items()))
        plugin = FuxiPlugin(workdir, ["--config-file", str(config)], env=cloud.env(), volumes_root=cloud.root)
    plugin.start()
    # Volumes of driver fuxi that an interrupted earlier run left in dockerd's
    # own store would make `docker volume ls` ask for them: forget them now.
    for name in docker("volume", "ls", "-q", "--filter", f"driver={DRIVER}", check=False).stdout.split():
        if name.startswith(VOLUME_PREFIX):
            docker("volume", "rm", "-f", name, check=False)
    yield plugin

    problems = _remove_fuxi_volumes(docker)
    stop_problem = plugin.stop()
    if stop_problem:
        problems.append(stop_problem)
    # Released so the machine stays usable, but the run fails.
    loops = release_loop_devices_under(plugin.volumes_root)
    if loops:
        problems.append(f"loop devices still bound to files under {plugin.volumes_root}: {loops}")
    mounts = mounted_under(workdir)
    for mountpoint in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mountpoint], check=False)
    if mounts:
        problems.append(f"mounts left under {workdir}: {mounts}")
    if problems:
        pytest.fail("e2e teardown:\n" + "\n".join(problems) + f"\n--- fuxi-server log ---\n{plugin.log()}",
                    pytrace=False)
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def volume_name(docker):
    """A fresh volume name; removed (best effort) after the test."""
    names = []

    def make(tag="v"):
        name = f"{VOLUME_PREFIX}{tag}-{uuid.uuid4().hex[:10]}"
        names.append(name)
        return name

    yield make
    for name in names:
        docker("volume", "rm", "-f", name, check=False, timeout=90)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    plugin = getattr(item, "funcargs", {}).get("fuxi_plugin")
    if not isinstance(plugin, FuxiPlugin):
        return  # set-up failures carry their own details
    report.sections.append(("fuxi-server log (last 200 lines)", plugin.log()))
    for path in DOCKERD_LOGS:
        if os.path.exists(path):
            report.sections.append((f"{path} (last 40 lines)", _tail(path, 40)))
            break
