"""fuxi-server as systemd runs it: the units verify, the socket fuxi.socket
passes is served (socket activation, for real with systemd-socket-activate),
readiness and stopping are told over NOTIFY_SOCKET, and a stop finishes the
calls under way and leaves every mounted volume mounted.
"""

import configparser
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fuxi import server, settings
from storage_core.devcloud.testing import Control
from tests.functional.harness import mounted_under, ok
from tests.functional.test_pool import drain_for_good, pool_config

CLOUD_KINDS = ("devcloud",)
REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "systemd"
FUXI_SERVER = Path(sys.executable).parent / "fuxi-server"


def need(command):
    path = shutil.which(command)
    assert path, f"{command} is missing: install Debian's systemd package (scripts/install.sh does)"
    return path


def read_unit(name) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # systemd keys are case-sensitive
    unit.read(UNITS / name)
    return unit


def test_the_units_pass_systemd_analyze_verify(tmp_path):
    # verify checks ExecStart exists: point it at this checkout's fuxi-server.
    for unit in ("fuxi.service", "fuxi.socket"):
        text = (UNITS / unit).read_text().replace("/usr/local/bin/fuxi-server", str(FUXI_SERVER))
        (tmp_path / unit).write_text(text)
    result = subprocess.run([need("systemd-analyze"), "verify", "fuxi.socket", "fuxi.service"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    # verify exits 0 on some bad settings ("ignoring"); any output is a finding.
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


def test_the_units_say_what_dockerd_and_a_stop_need():
    sock, service = read_unit("fuxi.socket"), read_unit("fuxi.service")
    default_socket = next(o.default for o in settings.OPTIONS if o.name == "socket")
    assert sock["Socket"]["ListenStream"] == default_socket
    assert (sock["Socket"]["SocketMode"], sock["Socket"]["SocketGroup"]) == ("0660", "docker")
    assert "docker.service" in sock["Unit"]["Before"].split()
    assert sock["Install"]["WantedBy"] == "sockets.target"
    assert service["Service"]["Type"] == "notify"
    assert service["Service"]["NotifyAccess"] == "all"  # READY=1 comes from the worker
    # Only fuxi-server is signalled: share FUSE clients in the unit must outlive a stop.
    assert service["Service"]["KillMode"] == "process"
    assert int(service["Service"]["TimeoutStopSec"]) > server.STOP_GRACE_SECONDS
    assert "fuxi.socket" in service["Unit"]["Requires"].split()


class NotifyListener:
    """What systemd's NOTIFY_SOCKET receives."""

    def __init__(self, path):
        self.path = str(path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.path)

    def next(self, timeout) -> dict:
        self._sock.settimeout(timeout)
        try:
            data = self._sock.recv(4096).decode()
        except socket.timeout:
            raise AssertionError(f"no sd_notify message within {timeout} s") from None
        return dict(line.split("=", 1) for line in data.splitlines())

    def close(self):
        self._sock.close()


@pytest.fixture
def notify_listener(tmp_path):
    listener = NotifyListener(tmp_path / "notify.sock")
    yield listener
    listener.close()


def test_socket_activation_serves_the_passed_socket_and_a_stop_keeps_mounts(
        cloud, plugin_factory, notify_listener, tmp_path):
    plugin = plugin_factory()  # its config file, socket path and state dir; started below by systemd's tool
    env = [f"--setenv={k}={v}" for k, v in {
        **{k: plugin.env[k] for k in cloud.env()}, "PATH": os.environ["PATH"],
        "NOTIFY_SOCKET": notify_listener.path}.items()]
    log = open(plugin.log_path, "ab")
    # Like systemd with fuxi.socket: the socket exists first, and the first
    # connection starts the server, which must answer it (no call is lost).
    activator = subprocess.Popen(
        [need("systemd-socket-activate"), "--listen", plugin.socket, *env, str(FUXI_SERVER),
         *plugin.cloud_args, "--socket", plugin.socket, "--state-dir", plugin.state_dir],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(plugin.socket):
            assert time.monotonic() < deadline and activator.poll() is None, plugin.log()
            time.sleep(0.05)
        plugin.process = activator  # exec'd into fuxi-server: the same pid
        assert plugin.call("Plugin.Activate", b"", timeout=90) == (200, {"Implements": ["VolumeDriver"]})
        ready = notify_listener.next(timeout=30)
        # The first word systemd hears is the worker's READY, not gunicorn's early one.
        assert ready.get("READY") == "1" and ready["STATUS"] == "serving Docker volume calls", ready
        assert f"socket activated: serving {plugin.socket}" in plugin.log()

        ok(plugin.call("VolumeDriver.Create", {"Name": "sa1", "Opts": {}}))
        mountpoint = ok(plugin.call("VolumeDriver.Mount", {"Name": "sa1", "ID": "c1"}))["Mountpoint"]
        Path(mountpoint, "kept").write_text("still here")

        plugin._session.close()
        activator.send_signal(signal.SIGTERM)  # systemd's stop: the main process only
        assert notify_listener.next(timeout=30).get("STOPPING") == "1"
        assert activator.wait(60) == 0, plugin.log()
        # systemd's socket is not gunicorn's to remove; the volume stays mounted.
        assert os.path.exists(plugin.socket)
        assert mountpoint in mounted_under(plugin.state_dir)
    finally:
        if activator.poll() is None:
            os.killpg(activator.pid, signal.SIGKILL)
            activator.wait()

    # Started again the usual way (the stale socket is taken over): the count is still there.
    plugin.process = None
    plugin.start()
    assert ok(plugin.call("VolumeDriver.Path", {"Name": "sa1"}))["Mountpoint"] == mountpoint
    assert Path(mountpoint, "kept").read_text() == "still here"
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "sa1", "ID": "c1"}))
    ok(plugin.call("VolumeDriver.Remove", {"Name": "sa1"}))


def test_a_stop_finishes_the_call_under_way_and_detaches_nothing(cloud, plugin_factory):
    plugin = plugin_factory().start()
    ok(plugin.call("VolumeDriver.Create", {"Name": "held", "Opts": {}}))
    held = ok(plugin.call("VolumeDriver.Mount", {"Name": "held", "ID": "c1"}))["Mountpoint"]
    (held_volume,) = cloud.volumes_named("held")

    control = Control(cloud.devcloud["url"])
    control.add_fault("volume.create", status=None, delay=4.0, times=1)  # then served as usual
    answers = []
    creating = threading.Thread(
        target=lambda: answers.append(plugin.call("VolumeDriver.Create", {"Name": "late", "Opts": {}})))
    creating.start()
    time.sleep(1.0)  # the Create is waiting on the cloud
    started = time.monotonic()
    os.kill(plugin.process.pid, signal.SIGTERM)  # the master alone, as KillMode=process does
    creating.join(60)
    assert answers == [(200, {"Err": ""})], plugin.log()
    assert plugin.process.wait(60) == 0, plugin.log()
    stop_seconds = time.monotonic() - started
    assert stop_seconds > 2.5, "the stop did not wait for the Create under way"

    assert held in mounted_under(plugin.state_dir)
    assert cloud.sdk.block_storage.get_volume(held_volume.id).status == "in-use"
    assert [v.status for v in cloud.volumes_named("late")] == ["available"]

    # Nothing was left half-done: the next start has nothing to mend.
    plugin.process = None
    plugin.start()
    assert "reconcile:" not in plugin.log()
    assert ok(plugin.call("VolumeDriver.Path", {"Name": "held"}))["Mountpoint"] == held
    ok(plugin.call("VolumeDriver.Unmount", {"Name": "held", "ID": "c1"}))
    for name in ("held", "late"):
        ok(plugin.call("VolumeDriver.Remove", {"Name": name}))


def test_a_stop_lets_the_pool_round_under_way_finish(cloud, plugin_factory):
    plugin = plugin_factory()
    with open(os.path.join(plugin.workdir, "fuxi.conf"), "a") as f:
        f.write(pool_config(tier=4, min_ready=2, maximum=2).replace("batch = 1", "batch = 2"))
    Control(cloud.devcloud["url"]).add_fault("volume.create", status=None, delay=3.0, times=2)
    plugin.start()
    time.sleep(1.0)  # the keeper's first round is waiting on the cloud's creates
    os.kill(plugin.process.pid, signal.SIGTERM)
    assert plugin.process.wait(60) == 0, plugin.log()

    # The round finished before the worker went: both volumes made, attached and
    # mounted here (tier 4), none left half-way for the next start to mend.
    volumes = list(cloud.sdk.block_storage.volumes(details=True))
    assert sorted(v.status for v in volumes) == ["in-use", "in-use"], [(v.name, v.status) for v in volumes]
    assert len(mounted_under(plugin.state_dir)) == 2
    plugin.process = None
    assert "deleted 2 volume(s)" in drain_for_good(plugin)
    assert "reconcile:" not in plugin.log()
